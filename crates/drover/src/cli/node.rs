//! `drover node …`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use drover_proto::api::DrainRequest;

use super::ServerAddress;
use super::output::{ago, megabytes, print_fields, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Move a node's allocations elsewhere and keep new ones away; reports
    /// done only when every allocation on the node has stopped.
    Drain {
        /// Node name, id or unique id prefix.
        node: String,
        /// Force-stop whatever remains after this long (e.g. `1h`).
        #[arg(long, value_parser = crate::roles::parse_duration)]
        deadline: Option<Duration>,
        /// Leave system-job allocations running.
        #[arg(long)]
        ignore_system: bool,
        /// Return at once instead of waiting for the drain to finish.
        #[arg(long)]
        no_wait: bool,
        /// Cancel a drain (the node becomes eligible again).
        #[arg(long, conflicts_with_all = ["deadline", "ignore_system"])]
        disable: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Allow or forbid new allocations on a node (running ones stay).
    Eligibility {
        /// Node name, id or unique id prefix.
        node: String,
        /// Allow new allocations.
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        /// Forbid new allocations.
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List nodes with their status and facts.
    List {
        /// Only the nodes this filter matches, for example
        /// 'hostgroup =~ "bi/batch/**" and environment == "qa"' (docs/nodes.md).
        #[arg(long)]
        filter: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// The busiest nodes by measured usage.
    Top {
        /// Only the nodes this filter matches (docs/nodes.md).
        #[arg(long)]
        filter: Option<String>,
        /// Order by cpu, mem or disk (the fullest mount).
        #[arg(long, default_value = "cpu")]
        sort: drover_metrics::SortBy,
        /// How many nodes.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
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
        NodeCommand::Drain { node, deadline, ignore_system, no_wait, disable, server } => {
            let client = server.client();
            let request = DrainRequest {
                deadline: deadline.map(|deadline| drover_types::DurationSpec(deadline).to_string().replace(' ', "")),
                ignore_system,
                disable,
            };
            let drained = client.drain_node(&node, &request).await?;
            if disable {
                println!("Drain of node {} cancelled; it is eligible again.", drained.name);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Node {} is draining{}{}.",
                drained.name,
                deadline
                    .map(|deadline| format!(", deadline in {}", drover_types::DurationSpec(deadline)))
                    .unwrap_or_default(),
                if ignore_system { ", system allocations stay" } else { "" }
            );
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            follow_drain(&client, &drained.id.to_string(), ignore_system).await
        }
        NodeCommand::Eligibility { node, enable, server, .. } => {
            let updated = server.client().set_eligibility(&node, enable).await?;
            println!("Node {} is {}.", updated.name, if enable { "eligible" } else { "ineligible" });
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Top { filter, sort, limit, json, server } => {
            let entries = server.client().nodes_usage(filter.as_deref()).await?;
            let mut busiest: Vec<_> = drover_metrics::busiest(entries.iter().map(|entry| (entry, &entry.usage)), sort)
                .into_iter()
                .map(|(entry, _)| entry)
                .collect();
            busiest.truncate(limit);
            if json {
                print_json(&busiest)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Node", "Host Group", "CPU", "Load", "Memory", "Fullest disk", "Procs"]);
            for entry in busiest {
                let usage = &entry.usage;
                let disk = usage
                    .fullest_disk()
                    .map_or("-".to_owned(), |disk| format!("{:.0} % {}", disk.used_percent(), disk.mount));
                rows.add_row(vec![
                    entry.name.clone(),
                    entry.hostgroup.clone(),
                    format!("{:.1} %", usage.cpu_percent),
                    format!("{:.2}", usage.load1),
                    format!("{:.0} %", usage.memory_used_percent()),
                    disk,
                    usage.processes_total.to_string(),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::List { filter, json, server } => {
            let nodes = match &filter {
                Some(filter) => server.client().nodes_matching(filter).await?,
                None => server.client().nodes().await?,
            };
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
                (
                    "Log lines dropped",
                    match node.log_dropped_lines {
                        0 => "0".to_owned(),
                        dropped => format!("{dropped} (the agent's log spool was full; see docs/logs.md)"),
                    },
                ),
            ]);
            if let Some(usage) = &status.usage {
                print_usage(usage);
            }
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

/// Waits until the node's drain ends, showing what remains on it.
async fn follow_drain(client: &drover_client::Client, node_id: &str, ignore_system: bool) -> anyhow::Result<ExitCode> {
    let progress = indicatif::ProgressBar::new_spinner();
    progress.enable_steady_tick(Duration::from_millis(120));
    let mut index = 0;
    loop {
        let (status, new_index) =
            client.node_wait(node_id, Some(drover_client::Wait { index, timeout: Duration::from_secs(2) })).await?;
        index = new_index;
        let remaining = status.allocs.len();
        if status.node.drain.is_none() {
            progress.finish_and_clear();
            if status.node.eligibility == drover_types::NodeEligibility::Eligible {
                println!("The drain was cancelled.");
                return Ok(ExitCode::FAILURE);
            }
            if ignore_system {
                println!("Drain complete: only system allocations remain ({remaining}).");
            } else {
                println!("Drain complete: every allocation on {} has stopped.", status.node.name);
            }
            return Ok(ExitCode::SUCCESS);
        }
        progress.set_message(format!("{remaining} allocation(s) still on {}", status.node.name));
    }
}

/// The machine's latest measured usage.
fn print_usage(usage: &drover_metrics::NodeSample) {
    let gib = |bytes: u64| format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0));
    println!();
    println!("Usage (measured {})", ago(drover_types::Timestamp::from_millis(usage.time_ms)));
    print_fields(&[
        ("  CPU", format!("{:.1} % of {} cores", usage.cpu_percent, usage.cores)),
        ("  Load", format!("{:.2} {:.2} {:.2}", usage.load1, usage.load5, usage.load15)),
        (
            "  Memory",
            format!("{} / {} ({:.0} %)", gib(usage.memory_used), gib(usage.memory_total), usage.memory_used_percent()),
        ),
        ("  Swap", format!("{} / {}", gib(usage.swap_used), gib(usage.swap_total))),
        ("  Processes", format!("{} ({} running)", usage.processes_total, usage.processes_running)),
    ]);
    let mut rows = table(&["  Mount", "Used", "Size", "Use%"]);
    for disk in &usage.disks {
        rows.add_row(vec![
            format!("  {}", disk.mount),
            gib(disk.used),
            gib(disk.total),
            format!("{:.0} %", disk.used_percent()),
        ]);
    }
    print_table(&rows);
    if !usage.tasks.is_empty() {
        let mut rows = table(&["  Alloc", "Task", "CPU", "Memory"]);
        for task in &usage.tasks {
            rows.add_row(vec![
                format!("  {}", task.alloc_id.chars().take(8).collect::<String>()),
                task.task.clone(),
                format!("{:.1} %", task.cpu_percent),
                format!("{:.0} MiB", task.memory_bytes as f64 / (1024.0 * 1024.0)),
            ]);
        }
        print_table(&rows);
    }
}
