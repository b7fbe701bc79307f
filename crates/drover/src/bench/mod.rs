//! `drover bench …`: benchmarks, separate from tests. Each prints a table,
//! or JSON with `--json`; `docs/benchmarks.md` records results with the
//! exact command.

mod e2e;
mod enrol;
mod exec;
mod failover;
mod fleet;
mod ha;
mod heartbeats;
mod log_page;
mod scheduler;
pub(crate) mod sim;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Placements per second of the pure scheduler on a synthetic fleet
    /// (service jobs of 1,000 allocations with constraints).
    Scheduler {
        /// Number of nodes.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Number of allocations to place.
        #[arg(long, default_value_t = 100_000)]
        allocs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Placements per second end to end: an in-process server, simulated
    /// agents over real WebSocket sessions (in processes of their own, all
    /// dialing at once), jobs submitted over HTTP, until every allocation
    /// is acknowledged as running by its agent.
    E2e {
        /// Number of simulated agents.
        #[arg(long, default_value_t = 1_000)]
        nodes: usize,
        /// Number of allocations to place.
        #[arg(long, default_value_t = 100_000)]
        allocs: usize,
        /// Allocations per job.
        #[arg(long, default_value_t = 1_000)]
        per_job: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time from a machine's death to its replacements running, p50/p99.
    Failover {
        /// Number of nodes.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Number of deaths to measure.
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Real agents (separate processes with real tasks) instead of
        /// simulated ones.
        #[arg(long)]
        real: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Three servers: time from kill -9 of the leader to the first
    /// acknowledged write, p50/p99.
    LeaderFailover {
        /// Number of leader kills to measure.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Committed writes per second and latency of three servers, side by
    /// side with a three-member etcd cluster (Debian's etcd-server).
    Writes {
        /// Concurrent writers (closed loop).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Bytes per value.
        #[arg(long, default_value_t = 256)]
        payload: usize,
        /// Measurement window per system.
        #[arg(long, default_value = "20s", value_parser = crate::roles::parse_duration)]
        window: std::time::Duration,
        /// Both clusters with TLS on one CA made here: drover servers
        /// secure (mutual TLS between them, a management token), etcd with
        /// HTTPS client and peer URLs and client certificates required.
        #[arg(long)]
        secure: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wall time of `drover exec -- uptime` on N nodes, p50/p99: real
    /// agents (separate processes) with --real, else simulated agents that
    /// answer at once (the control path alone).
    Exec {
        /// Node counts, comma-separated, measured in turn.
        #[arg(long, value_delimiter = ',', default_value = "50,200")]
        nodes: Vec<usize>,
        /// Timed runs per node count.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Real agents instead of simulated ones.
        #[arg(long)]
        real: bool,
        /// A secure server (HTTPS, mutual TLS, ACLs): the agents enrol with
        /// a join token and the client sends the CA and a management token.
        #[arg(long)]
        secure: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// How soon the dashboard's log page shows its first results, side by
    /// side with `drover logs search` (a new process each time) for the
    /// same query, p50/p99, on the loghub samples.
    LogPage {
        /// The loghub samples (every `*.log` in it).
        #[arg(long, default_value = "../shared/data/loghub")]
        loghub: std::path::PathBuf,
        /// Lines to import (the samples replayed in turn over 50 nodes).
        #[arg(long, default_value_t = 200_000)]
        lines: usize,
        /// Timed runs of each per query.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs simulated agents in this process until its standard input
    /// closes (`bench e2e` starts several of these).
    #[command(hide = true)]
    SimAgents {
        /// Server addresses (agent N dials address N modulo their number).
        #[arg(long, value_delimiter = ',', required = true)]
        servers: Vec<String>,
        /// Number of agents.
        #[arg(long)]
        count: usize,
        /// Agent names are the prefix and a 5-digit number.
        #[arg(long, default_value = "sim")]
        prefix: String,
        /// Number of the first agent.
        #[arg(long, default_value_t = 0)]
        start: usize,
        /// Host group of the agents' nodes.
        #[arg(long, default_value = "bench")]
        hostgroup: String,
    },
    /// The server's CPU time per 1,000 heartbeats.
    Heartbeats {
        /// Number of simulated agents.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Measurement window.
        #[arg(long, default_value = "30s", value_parser = crate::roles::parse_duration)]
        window: std::time::Duration,
        /// Also measure a secure server (the agents enrolled, on `wss://`
        /// with their node certificates), after the plain one, and report
        /// both and their ratio.
        #[arg(long)]
        secure: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Agent enrolment: a secure server, ACLs bootstrapped, one join
    /// token, then N simulated agents enrolling at once (key, certificate
    /// request, pinned HTTPS) and opening their `wss://` sessions until all
    /// are ready; wall time and p50/p99 per enrolment.
    Enrol {
        /// Number of simulated agents.
        #[arg(long, default_value_t = 1_000)]
        nodes: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Scheduler { nodes, allocs, json } => scheduler::run(nodes, allocs, json),
        BenchCommand::E2e { nodes, allocs, per_job, json } => e2e::run(nodes, allocs, per_job, json).await,
        BenchCommand::Failover { nodes, trials, real, json } => failover::run(nodes, trials, real, json).await,
        BenchCommand::Exec { nodes, rounds, real, secure, json } => exec::run(nodes, rounds, real, secure, json).await,
        BenchCommand::LogPage { loghub, lines, rounds, json } => log_page::run(loghub, lines, rounds, json).await,
        BenchCommand::Heartbeats { nodes, window, secure, json } => heartbeats::run(nodes, window, secure, json).await,
        BenchCommand::Enrol { nodes, json } => enrol::run(nodes, json).await,
        BenchCommand::LeaderFailover { trials, json } => ha::leader_failover(trials, json).await,
        BenchCommand::Writes { concurrency, payload, window, secure, json } => {
            ha::writes(concurrency, payload, window, secure, json).await
        }
        BenchCommand::SimAgents { servers, count, prefix, start, hostgroup } => {
            sim::run_process(servers, count, prefix, start, hostgroup).await
        }
    }
}

/// Open files a process running a server needs besides one per agent
/// connection: its Raft and log data, HTTP clients, the runtime.
pub(crate) const SERVER_RESERVED_FILES: u64 = 1024;

/// Raises this process's soft limit of open files (RLIMIT_NOFILE) to its
/// hard limit, so that `needed` files fit if the hard limit allows, and
/// fails at once, saying which limit to raise and how, if they do not.
/// (Processes started afterwards inherit the raised limit.) Without this a
/// large fleet runs out of descriptors halfway and the server loops on
/// `accept error: Too many open files`.
pub(crate) fn ensure_open_files(needed: u64, what: &str) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let mut limit = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => limit = hard,
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the soft limit of open files"),
        }
    }
    check_open_files(needed, limit, hard, what).map_err(anyhow::Error::msg)
}

/// The check of [`ensure_open_files`]: `Err` with the message to print
/// when `needed` open files do not fit under `limit` (the soft limit after
/// raising it; `hard` is the hard limit).
pub(crate) fn check_open_files(needed: u64, limit: u64, hard: u64, what: &str) -> Result<(), String> {
    if needed <= limit {
        return Ok(());
    }
    let raise = if hard < needed {
        format!(
            "raise the hard limit to at least {needed}: as root `ulimit -Hn {needed}` in the shell that runs \
             drover, `LimitNOFILE={needed}` in a systemd unit, or `* hard nofile {needed}` in \
             /etc/security/limits.conf (then log in again)"
        )
    } else {
        format!("raise the soft limit: `ulimit -Sn {needed}`")
    };
    Err(format!(
        "{what} needs about {needed} open files in one process, but this process may open only {limit} \
         (RLIMIT_NOFILE: soft {limit}, hard {hard}); {raise}; or ask for fewer nodes"
    ))
}

/// The machine, for benchmark reports.
pub(crate) fn hardware() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split(':').nth(1)))
        .map(|model| model.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    format!("{cores} × {model}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_open_files_fail_at_once_saying_what_to_raise() {
        assert!(check_open_files(11_024, 20_000, 20_000, "bench e2e --nodes 10000").is_ok());

        let message = check_open_files(21_024, 20_000, 20_000, "bench e2e --nodes 20000").unwrap_err();
        assert_eq!(
            message,
            "bench e2e --nodes 20000 needs about 21024 open files in one process, but this process may open \
             only 20000 (RLIMIT_NOFILE: soft 20000, hard 20000); raise the hard limit to at least 21024: as \
             root `ulimit -Hn 21024` in the shell that runs drover, `LimitNOFILE=21024` in a systemd unit, or \
             `* hard nofile 21024` in /etc/security/limits.conf (then log in again); or ask for fewer nodes"
        );

        // The soft limit could not be raised although the hard one allows.
        let message = check_open_files(3_000, 1_024, 20_000, "2744 simulated agents").unwrap_err();
        assert!(message.contains("raise the soft limit: `ulimit -Sn 3000`"), "{message}");
    }
}
