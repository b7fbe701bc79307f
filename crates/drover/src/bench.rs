//! `drover bench …`: benchmarks, separate from tests.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Placements per second of the pure scheduler.
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
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Scheduler { .. } => {
            anyhow::bail!("the scheduler benchmark is not built yet")
        }
    }
}
