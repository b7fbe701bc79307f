//! `drover`: one binary with roles.
//!
//! - `drover dev`, `drover server`, `drover agent`: long-running roles;
//! - `drover job …`, `drover node …`, `drover alloc …`, `drover eval …`: the
//!   CLI, which talks to a server through `drover-client` only;
//! - `drover bench …`: benchmarks;
//! - `drover completions SHELL`, `drover man`: shell completion and manual
//!   pages made from the command definitions;
//! - `drover executor DIR` (hidden): the per-task executor shim started by
//!   agents.
//!
//! Before clap parses, a shell asking for completions is answered
//! (`cli::completions`) and Nomad's single-dash long flags become long
//! flags (`cli::normalise_arguments`).

mod bench;
mod cli;
mod config;
mod dev_banner;
mod logging;
mod roles;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// drover runs a fleet of machines from one binary: it schedules jobs from
/// Nomad-style job files, supervises them, keeps the inventory, and more.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
    /// How drover writes its own log lines on stderr: text or json.
    #[arg(long, global = true, env = "DROVER_LOG_FORMAT", value_enum, default_value_t, value_name = "FORMAT")]
    log_format: logging::LogFormat,
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
    /// The service catalogue: list services, show a service's instances.
    #[command(subcommand)]
    Service(cli::service::ServiceCommand),
    /// Machine workflows (node create, reboot, rebuild, delete): list, status, cancel.
    #[command(subcommand)]
    Workflow(cli::machines::WorkflowCommand),
    /// Run a command on many nodes at once, through their agents.
    Exec(cli::exec::ExecArgs),
    /// Copy a file to many nodes through their agents (as pscp).
    Copy(cli::copy::CopyArgs),
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
    /// Print a shell completion script (bash, zsh, fish) that completes job, node and alloc names too.
    Completions(cli::completions::CompletionsArgs),
    /// Print drover's man page, or write all of them (one per subcommand) with --dir.
    Man(cli::man::ManArgs),
    /// The executor shim of one task (started by agents).
    #[command(hide = true)]
    Executor {
        /// The task directory.
        task_dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    cli::completions::complete_if_asked(Cli::command);
    let arguments = cli::normalise_arguments(&Cli::command(), std::env::args_os());
    let cli = match Cli::try_parse_from(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match &cli.command {
        Verb::Executor { task_dir } => {
            // The shim's stderr is its own log file (`executor.log` in the
            // task directory); it never writes to the task's streams.
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
            return drover_executor::run_executor(task_dir);
        }
        Verb::Completions(args) => {
            exit_quietly_on_closed_pipe();
            return cli::completions::print_script(args);
        }
        Verb::Man(args) => {
            exit_quietly_on_closed_pipe();
            return match cli::man::run(args, Cli::command()) {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let long_running =
        matches!(cli.command, Verb::Dev(_) | Verb::Server(roles::ServerCli { command: None, .. }) | Verb::Agent(_));
    if !long_running && !matches!(cli.command, Verb::Bench(_)) {
        exit_quietly_on_closed_pipe();
    }
    logging::init(cli.log_format, long_running);
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
            Verb::Copy(args) => cli::copy::run(args).await,
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
            Verb::Service(command) => cli::service::run(command).await,
            Verb::Workflow(command) => cli::machines::run(command).await,
            Verb::Bench(command) => bench::run(command).await,
            Verb::Executor { .. } | Verb::Completions(_) | Verb::Man(_) => Ok(ExitCode::SUCCESS),
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

/// A CLI command whose output is cut short (`drover job status | head -1`,
/// `drover logs search … | head`) ends quietly with status 0, as `head`
/// expects, instead of panicking in `println!` or printing "Broken pipe".
///
/// Rust's runtime ignores SIGPIPE, so a write to a closed pipe fails with
/// `EPIPE` wherever it happens; CLI commands instead get a SIGPIPE handler
/// that exits 0 at once. Only CLI commands: `drover server`, `agent` and
/// `dev` keep ignoring SIGPIPE (a client that goes away mid-answer is an
/// error on that one connection, never the end of the process), and their
/// own stdout writes go through `cli::output`, which exits 0 on
/// `BrokenPipe`. The CLI's sockets are written with `MSG_NOSIGNAL` (Rust's
/// and tokio's TCP streams on Linux), so a server that closes a connection
/// is an error, not this handler.
#[allow(unsafe_code)]
fn exit_quietly_on_closed_pipe() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    extern "C" fn exit_zero(_: nix::libc::c_int) {
        // SAFETY: `_exit` is async-signal-safe and takes no pointer;
        // buffered output has nowhere to go anyway.
        unsafe { nix::libc::_exit(0) }
    }
    let action = SigAction::new(SigHandler::Handler(exit_zero), SaFlags::empty(), SigSet::empty());
    // SAFETY: called at the start of `main`, before any other thread
    // exists; the handler only calls `_exit`, which is async-signal-safe.
    if let Err(error) = unsafe { sigaction(Signal::SIGPIPE, &action) } {
        eprintln!("warning: cannot handle SIGPIPE: {error}");
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand's definition is valid (clap checks a subcommand
    /// only when it is used; completion, man pages and the Nomad flag
    /// rewriting build them all).
    #[test]
    fn every_command_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
