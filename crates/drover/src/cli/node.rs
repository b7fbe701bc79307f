//! `drover node …`.

use std::process::ExitCode;

use clap::Subcommand;

use super::ServerAddress;
use super::output::{ago, megabytes, print_fields, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// List nodes with their status and facts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show one node: labels, facts, resources and allocations.
    Status {
        /// Node name, id or unique id prefix.
        node: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

pub(crate) async fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::List { json, server } => {
            let nodes = server.client().nodes().await?;
            if json {
                print_json(&nodes)?;
                return Ok(ExitCode::SUCCESS);
            }
            if nodes.is_empty() {
                println!("No nodes. Start an agent with `drover agent --servers ADDR --data-dir DIR`.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&[
                "ID",
                "Name",
                "Status",
                "Host Group",
                "Environment",
                "Allocs",
                "CPU (MHz)",
                "Memory",
                "OS",
                "Kernel",
                "Heartbeat",
            ]);
            for node in &nodes {
                let fact = |name: &str| node.attributes.get(name).cloned().unwrap_or_else(|| "-".to_owned());
                rows.add_row(vec![
                    node.id.short().to_owned(),
                    node.name.clone(),
                    format!("{}{}", node.status, if node.protected { " (protected)" } else { "" }),
                    node.hostgroup.clone(),
                    node.environment.clone(),
                    node.num_allocs.to_string(),
                    format!("{}/{}", node.used.cpu_mhz, node.resources.cpu_mhz),
                    format!("{}/{}", megabytes(node.used.memory_mb), megabytes(node.resources.memory_mb)),
                    format!("{} {}", fact("os.name"), fact("os.version")),
                    fact("kernel.version"),
                    node.last_heartbeat.map_or("-".to_owned(), ago),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Status { node, json, server } => {
            let status = server.client().node(&node).await?;
            if json {
                print_json(&status)?;
                return Ok(ExitCode::SUCCESS);
            }
            let node = &status.node;
            print_fields(&[
                ("ID", node.id.to_string()),
                ("Name", node.name.clone()),
                ("Status", format!("{} ({})", node.display_status(), node.status_description)),
                ("Eligibility", format!("{:?}", node.eligibility).to_lowercase()),
                ("Host Group", node.hostgroup.clone()),
                ("Environment", node.environment.clone()),
                ("Owner", if node.owner.is_empty() { "-".to_owned() } else { node.owner.clone() }),
                ("Zone", node.zone.clone()),
                (
                    "Protected",
                    node.protected.as_ref().map_or("no".to_owned(), |protection| format!("yes: {}", protection.reason)),
                ),
                ("Agent", node.agent_version.clone()),
                ("Registered", ago(node.registered_at)),
                ("Last heartbeat", status.last_heartbeat.map_or("-".to_owned(), ago)),
                ("CPU", format!("{} / {} MHz", status.used.cpu_mhz, node.resources.cpu_mhz)),
                ("Memory", format!("{} / {}", megabytes(status.used.memory_mb), megabytes(node.resources.memory_mb))),
            ]);
            if !node.meta.is_empty() {
                println!();
                println!("Meta");
                for (key, value) in &node.meta {
                    println!("  {key} = {value}");
                }
            }
            println!();
            println!("Facts");
            for (key, value) in &node.attributes {
                println!("  {key} = {value}");
            }
            println!();
            println!("Allocations");
            if status.allocs.is_empty() {
                println!("  none");
            } else {
                let mut rows = table(&["ID", "Job", "Task Group", "Version", "Desired", "Status", "Created"]);
                for alloc in &status.allocs {
                    rows.add_row(vec![
                        alloc.id.short().to_owned(),
                        alloc.job_id.to_string(),
                        alloc.group.clone(),
                        alloc.job_version.to_string(),
                        alloc.desired_status.to_string(),
                        alloc.client_status.to_string(),
                        ago(alloc.create_time),
                    ]);
                }
                print_table(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
