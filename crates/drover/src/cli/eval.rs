//! `drover eval …`.

use std::process::ExitCode;

use clap::Subcommand;

use super::ServerAddress;
use super::output::{ago, print_fields, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum EvalCommand {
    /// Show an evaluation: why the scheduler ran and what it could not place.
    Status {
        /// Evaluation id or unique prefix.
        eval: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

pub(crate) async fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Status { eval, json, server } => {
            let eval = server.client()?.evaluation(&eval).await?;
            if json {
                print_json(&eval)?;
                return Ok(ExitCode::SUCCESS);
            }
            print_fields(&[
                ("ID", eval.id.to_string()),
                ("Job", eval.job_id.to_string()),
                ("Triggered by", eval.triggered_by.to_string()),
                ("Status", eval.status.to_string()),
                ("Description", eval.status_description.clone()),
                ("Priority", eval.priority.to_string()),
                ("Created", ago(eval.create_time)),
                ("Wait until", eval.wait_until.map_or("-".to_owned(), super::output::local_time)),
            ]);
            for (group, failure) in &eval.failed_placements {
                println!();
                println!("Group {group:?}: {} not placed", failure.num_unplaced);
                println!("  {}", failure.summary());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
