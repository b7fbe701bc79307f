//! `drover bench …`: benchmarks, separate from tests. Each prints a table,
//! or JSON with `--json`; `docs/benchmarks.md` records results with the
//! exact command.

mod e2e;
mod exec;
mod failover;
mod fleet;
mod ha;
mod heartbeats;
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
    /// agents over real WebSocket sessions, jobs submitted over HTTP, until
    /// every allocation is acknowledged as running by its agent.
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
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The server's CPU time per 1,000 heartbeats.
    Heartbeats {
        /// Number of simulated agents.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Measurement window.
        #[arg(long, default_value = "30s", value_parser = crate::roles::parse_duration)]
        window: std::time::Duration,
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
        BenchCommand::Exec { nodes, rounds, real, json } => exec::run(nodes, rounds, real, json).await,
        BenchCommand::Heartbeats { nodes, window, json } => heartbeats::run(nodes, window, json).await,
        BenchCommand::LeaderFailover { trials, json } => ha::leader_failover(trials, json).await,
        BenchCommand::Writes { concurrency, payload, window, json } => {
            ha::writes(concurrency, payload, window, json).await
        }
    }
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
