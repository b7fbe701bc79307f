//! `drover var …`: variables, small key/value documents kept by the servers
//! (Nomad's Variables).

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;

use super::ServerAddress;
use super::output::{ago, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum VarCommand {
    /// Create or replace a variable: `drover var put site/daq version=3.2.2 owner=daq`.
    Put {
        /// The variable's path, `a/b/c`.
        path: String,
        /// Items, `key=value`.
        #[arg(required = true, value_name = "KEY=VALUE")]
        items: Vec<String>,
        /// Check-and-set: write only if the variable's modify index is this
        /// (0: only if it does not exist yet).
        #[arg(long)]
        check_index: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show a variable.
    Get {
        /// The variable's path.
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List variables under a prefix.
    List {
        /// Path prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Delete a variable.
    Purge {
        /// The variable's path.
        path: String,
        /// Check-and-set: delete only if the modify index is this.
        #[arg(long)]
        check_index: Option<u64>,
        #[command(flatten)]
        server: ServerAddress,
    },
}

fn parse_items(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => anyhow::bail!("item {item:?} is not key=value; write for example version=3.2.2"),
        })
        .collect()
}

pub(crate) async fn run(command: VarCommand) -> anyhow::Result<ExitCode> {
    match command {
        VarCommand::Put { path, items, check_index, json, server } => {
            let items = parse_items(&items)?;
            let variable = server.client()?.put_variable(&path, &items, check_index).await?;
            if json {
                print_json(&variable)?;
            } else {
                println!("variable {} written (modify index {})", variable.path, variable.modify_index);
            }
            Ok(ExitCode::SUCCESS)
        }
        VarCommand::Get { path, json, server } => {
            let variable = server.client()?.variable(&path).await?;
            if json {
                print_json(&variable)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Key", "Value"]);
            for (key, value) in &variable.items {
                rows.add_row(vec![key.clone(), value.clone()]);
            }
            println!(
                "{} (modify index {}, changed {})",
                variable.path,
                variable.modify_index,
                ago(variable.modify_time)
            );
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        VarCommand::List { prefix, json, server } => {
            let variables = server.client()?.variables(&prefix).await?;
            if json {
                print_json(&variables)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Path", "Items", "Modify index", "Changed"]);
            for variable in &variables {
                rows.add_row(vec![
                    variable.path.clone(),
                    variable.items.len().to_string(),
                    variable.modify_index.to_string(),
                    ago(variable.modify_time),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        VarCommand::Purge { path, check_index, server } => {
            server.client()?.delete_variable(&path, check_index).await?;
            println!("variable {path} deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}
