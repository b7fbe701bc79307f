//! `drover`: one binary with roles.
//!
//! - `drover dev`, `drover server`, `drover agent`: long-running roles;
//! - `drover job …`, `drover node …`, `drover alloc …`, `drover eval …`: the
//!   CLI, which talks to a server through `drover-client` only;
//! - `drover bench …`: benchmarks;
//! - `drover executor DIR` (hidden): the per-task executor shim started by
//!   agents.

mod bench;
mod cli;
mod roles;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// drover runs a fleet of machines from one binary: it schedules jobs from
/// Nomad-style job files, supervises them, keeps the inventory, and more.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

/// What to do: a role to run, or a command for the cluster.
#[derive(Debug, Subcommand)]
enum Verb {
    /// Run a server and an agent in one process, with an example job.
    Dev(roles::DevArgs),
    /// Run a server (the control plane), or manage the servers.
    Server(roles::ServerCli),
    /// Run an agent (on every machine).
    Agent(roles::AgentArgs),
    /// Work with jobs.
    #[command(subcommand)]
    Job(cli::job::JobCommand),
    /// Work with allocations.
    #[command(subcommand)]
    Alloc(cli::alloc::AllocCommand),
    /// Work with nodes.
    #[command(subcommand)]
    Node(cli::node::NodeCommand),
    /// Work with evaluations.
    #[command(subcommand)]
    Eval(cli::eval::EvalCommand),
    /// Run a command on many nodes at once, through their agents.
    Exec(cli::exec::ExecArgs),
    /// Search and follow the logs of every node.
    #[command(subcommand)]
    Logs(cli::logs::LogsCommand),
    /// Show what `apply` would change: the site's alerts, hammers, notifiers, providers and its jobs.
    Plan(cli::react::SiteArgs),
    /// Apply a site folder: alerts, hammers, notifiers, providers, and register its jobs.
    Apply(cli::react::SiteArgs),
    /// Alerts: list, top, acknowledge, silence.
    #[command(subcommand)]
    Alert(cli::react::AlertCommand),
    /// Hammers (automated fixes): list, history, approve, deny, pause, resume.
    #[command(subcommand)]
    Hammer(cli::react::HammerCommand),
    /// Walk the happy path (submit, start, complete, logs, exec, clean up), timed, against SLAs.
    Check(cli::check::CheckArgs),
    /// Runbooks of alerts and hammers.
    #[command(subcommand)]
    Runbook(cli::react::RunbookCommand),
    /// Work with variables (key/value documents kept by the servers).
    #[command(subcommand)]
    Var(cli::var::VarCommand),
    /// Access control: bootstrap, policies, tokens.
    #[command(subcommand)]
    Acl(cli::acl::AclCommand),
    /// Who did what: every write and every refused request.
    Audit(cli::acl::AuditArgs),
    /// Operate the servers: Raft peers, snapshots.
    #[command(subcommand)]
    Operator(cli::server::OperatorCommand),
    /// Measure drover.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The executor shim of one task (started by agents).
    #[command(hide = true)]
    Executor {
        /// The task directory.
        task_dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let arguments = cli::normalise_arguments(std::env::args_os());
    let cli = match Cli::try_parse_from(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    if let Verb::Executor { task_dir } = &cli.command {
        // The shim's stderr is its own log file (`executor.log` in the task
        // directory); it never writes to the task's streams.
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
        return drover_executor::run_executor(task_dir);
    }
    let long_running =
        matches!(cli.command, Verb::Dev(_) | Verb::Server(roles::ServerCli { command: None, .. }) | Verb::Agent(_));
    if !long_running && !matches!(cli.command, Verb::Bench(_)) {
        die_quietly_on_closed_pipe();
    }
    init_logging(long_running);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Verb::Dev(args) => roles::dev(args).await,
            Verb::Server(roles::ServerCli { command: Some(command), .. }) => cli::server::run(command).await,
            Verb::Server(roles::ServerCli { command: None, run }) => roles::server(*run).await,
            Verb::Operator(command) => cli::server::run_operator(command).await,
            Verb::Var(command) => cli::var::run(command).await,
            Verb::Acl(command) => cli::acl::run(command).await,
            Verb::Audit(args) => cli::acl::audit(args).await,
            Verb::Logs(command) => cli::logs::run(command).await,
            Verb::Exec(args) => cli::exec::run(args).await,
            Verb::Plan(args) => cli::react::plan(args).await,
            Verb::Check(args) => cli::check::run(args).await,
            Verb::Apply(args) => cli::react::apply(args).await,
            Verb::Alert(command) => cli::react::run_alert(command).await,
            Verb::Hammer(command) => cli::react::run_hammer(command).await,
            Verb::Runbook(command) => cli::react::run_runbook(command).await,
            Verb::Agent(args) => roles::agent(args).await,
            Verb::Job(command) => cli::job::run(command).await,
            Verb::Alloc(command) => cli::alloc::run(command).await,
            Verb::Node(command) => cli::node::run(command).await,
            Verb::Eval(command) => cli::eval::run(command).await,
            Verb::Bench(command) => bench::run(command).await,
            Verb::Executor { .. } => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs of drover itself go to stderr; `DROVER_LOG` sets the filter
/// (default `info` for roles, `warn` for the CLI).
/// A CLI command whose output is cut short (`drover job status | head -1`)
/// ends quietly, as `cat` or `grep` do, instead of panicking or printing
/// "Broken pipe": the default action of SIGPIPE is restored, which Rust's
/// runtime sets to "ignore". Only for CLI commands: servers and agents keep
/// ignoring it (their sockets report a closed peer as an error, and so do
/// the CLI's: they are written with `MSG_NOSIGNAL`).
#[allow(unsafe_code)]
fn die_quietly_on_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called once at the start of `main`, before any other thread
    // exists, and installs the default disposition (no handler code runs).
    if let Err(error) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        eprintln!("warning: cannot restore SIGPIPE: {error}");
    }
}

fn init_logging(long_running: bool) {
    let default = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
