//! Shell completion: `drover completions bash|zsh|fish` prints a script that
//! asks drover itself what to complete (clap_complete's dynamic engine), so
//! subcommands and flags are always those of the installed binary, and job
//! names, node names and allocation ids come from the cluster.
//!
//! The script runs `DROVER_COMPLETE=<shell> drover -- <words…>` at every
//! TAB; `main` answers it before anything else ([`complete_if_asked`]).
//! Names are read from the server in `DROVER_ADDR` (with `DROVER_TOKEN`,
//! `DROVER_TOKEN_FILE` and `DROVER_CACERT`), not from `--address` on the
//! line being typed; a server that does not answer within
//! [`LOOKUP_TIMEOUT`] completes nothing, silently.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, CompleteEnv, EnvCompleter, Fish, Shells, Zsh};

use super::ServerAddress;

/// The environment variable through which the shell asks for completions.
pub(crate) const COMPLETE_VAR: &str = "DROVER_COMPLETE";

/// How long a TAB waits for the server.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The shells drover prints completion scripts for.
const SHELLS: Shells<'static> = Shells(&[&Bash, &Zsh, &Fish]);

/// `drover completions SHELL`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh or fish.
    shell: Shell,
    /// The drover the script calls at every TAB (default: `drover` on the
    /// PATH, right for a package; give a path to try a build).
    #[arg(long, value_name = "PATH", default_value = "drover")]
    binary: String,
}

/// A shell drover completes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn completer(self) -> &'static dyn EnvCompleter {
        match self {
            Shell::Bash => &Bash,
            Shell::Zsh => &Zsh,
            Shell::Fish => &Fish,
        }
    }
}

/// Prints the completion script of a shell.
pub(crate) fn print_script(args: &CompletionsArgs) -> ExitCode {
    let mut script = Vec::new();
    if let Err(error) =
        args.shell.completer().write_registration(COMPLETE_VAR, "drover", "drover", &args.binary, &mut script)
    {
        eprintln!("error: cannot write the completion script: {error}");
        return ExitCode::FAILURE;
    }
    super::output::print_line(String::from_utf8_lossy(&script).trim_end());
    ExitCode::SUCCESS
}

/// Answers a completion request from a shell (`DROVER_COMPLETE` set) and
/// exits; returns at once otherwise.
pub(crate) fn complete_if_asked(command: impl Fn() -> clap::Command) {
    CompleteEnv::with_factory(|| with_candidates(command())).var(COMPLETE_VAR).shells(SHELLS).complete();
}

/// What an argument names, by its id: `job`, `node`/`nodes`, `alloc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Jobs,
    Nodes,
    Allocs,
}

fn names_of(argument_id: &str) -> Option<Names> {
    match argument_id {
        "job" | "jobs" => Some(Names::Jobs),
        "node" | "nodes" => Some(Names::Nodes),
        "alloc" | "allocs" | "alloc_id" => Some(Names::Allocs),
        _ => None,
    }
}

/// The command tree with cluster names as the candidates of every argument
/// that takes a job, node or allocation (positional or `--job`, `--node`…).
pub(crate) fn with_candidates(command: clap::Command) -> clap::Command {
    command
        .mut_args(|argument| match names_of(argument.get_id().as_str()) {
            Some(names) => argument.add(ArgValueCandidates::new(move || lookup(names))),
            None => argument,
        })
        .mut_subcommands(with_candidates)
}

/// Only the `ServerAddress` flags, read from their environment variables
/// and defaults.
#[derive(Debug, Parser)]
struct FromEnvironment {
    #[command(flatten)]
    server: ServerAddress,
}

/// The names the server knows; nothing when it cannot be asked.
fn lookup(names: Names) -> Vec<CompletionCandidate> {
    let Ok(FromEnvironment { server }) = FromEnvironment::try_parse_from(["drover"]) else { return Vec::new() };
    let Ok(client) = server.client() else { return Vec::new() };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    runtime.block_on(async move {
        let answer = async {
            let candidates: Vec<CompletionCandidate> = match names {
                Names::Jobs => client
                    .jobs()
                    .await
                    .ok()?
                    .into_iter()
                    .map(|job| {
                        CompletionCandidate::new(job.id.to_string())
                            .help(Some(format!("{:?}", job.status).to_lowercase().into()))
                    })
                    .collect(),
                Names::Nodes => client
                    .nodes()
                    .await
                    .ok()?
                    .into_iter()
                    .map(|node| CompletionCandidate::new(node.name).help(Some(node.status.into())))
                    .collect(),
                Names::Allocs => client
                    .allocations()
                    .await
                    .ok()?
                    .into_iter()
                    .map(|alloc| CompletionCandidate::new(alloc.id.to_string()).help(Some(alloc.name.into())))
                    .collect(),
            };
            Some(candidates)
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, answer).await.ok().flatten().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_completed_by_what_they_name() {
        assert_eq!(names_of("job"), Some(Names::Jobs));
        assert_eq!(names_of("nodes"), Some(Names::Nodes));
        assert_eq!(names_of("alloc"), Some(Names::Allocs));
        assert_eq!(names_of("file"), None);
    }
}
