//! `drover node …`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use drover_proto::api::{DrainRequest, NodeFieldChange, NodePurgeRequest, NodeRetireRequest, NodeUpdateRequest};
use drover_types::workflow::MachineOperation;

use super::ServerAddress;
use super::output::{ago, local_time, megabytes, print_fields, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Join tokens: what a new agent enrols with (secure clusters).
    #[command(subcommand)]
    JoinToken(super::acl::JoinTokenCommand),
    /// Refuse a node's certificate from now on; its session ends and its
    /// tasks follow the lost-node rules.
    Revoke {
        /// The node's name.
        node: String,
        #[command(flatten)]
        server: ServerAddress,
    },
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
        #[arg(long, conflicts_with_all = ["deadline", "ignore_system", "force"])]
        disable: bool,
        /// Stop every allocation now (a deadline of 0).
        #[arg(long, conflicts_with = "deadline")]
        force: bool,
        /// Why; needed to drain a protected node with --deadline or
        /// --force, and recorded in `drover node history`.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Change the host group, environment, owner, zone or meta of nodes;
    /// the change overrides what their agents report and survives agent
    /// restarts.
    Update {
        /// Nodes: names, ids, comma-separated lists, brace ranges
        /// (`batch{00..99}`) and pdsh node sets (`batch[01-12,15]`).
        #[arg(value_name = "NODES")]
        nodes: Vec<String>,
        /// The nodes this filter matches (docs/nodes.md); with NODES,
        /// those of them it matches.
        #[arg(long)]
        filter: Option<String>,
        /// Leave these nodes out (names, lists, ranges, node sets), as
        /// pdsh's and clush's `-x`.
        #[arg(long, short = 'x', value_name = "NODES")]
        exclude: Vec<String>,
        /// The new values (`--meta key=` deletes an entry).
        #[command(flatten)]
        labels: crate::roles::LabelArgs,
        /// Do not ask for confirmation (asked above 10 nodes).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Retire nodes for good: drain them, then keep them out of scheduling
    /// and of `drover node list` (`--all` shows them); they stay in the
    /// history and the log search until purged.
    Retire {
        /// Nodes: names, ids, comma-separated lists, brace ranges
        /// (`batch{00..99}`) and pdsh node sets (`batch[01-12,15]`).
        #[arg(value_name = "NODES")]
        nodes: Vec<String>,
        /// The nodes this filter matches (docs/nodes.md); with NODES,
        /// those of them it matches.
        #[arg(long)]
        filter: Option<String>,
        /// Leave these nodes out (names, lists, ranges, node sets), as
        /// pdsh's and clush's `-x`.
        #[arg(long, short = 'x', value_name = "NODES")]
        exclude: Vec<String>,
        /// Force-stop whatever still runs after this long (e.g. `1h`);
        /// without it the drain waits.
        #[arg(long, value_parser = crate::roles::parse_duration)]
        deadline: Option<Duration>,
        /// Why (recorded in `drover node history`; needed with --deadline
        /// on a protected node).
        #[arg(long)]
        reason: Option<String>,
        /// Do not ask for confirmation (asked above 10 nodes).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Only show which nodes would be retired.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Forget nodes entirely (record and history; the audit log keeps the
    /// purge). Only nodes that are down, or retired and drained; never a
    /// protected one.
    Purge {
        /// Nodes: names, ids, comma-separated lists and brace ranges.
        #[arg(value_name = "NODES", required = true)]
        nodes: Vec<String>,
        /// Do not ask for confirmation (asked above 10 nodes).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Only check which nodes would be purged.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Create machines through a site provider; each step ends when an
    /// agent registers with its name (docs/machines.md).
    Create(super::machines::CreateMachineArgs),
    /// Reboot machines through their provider and wait for their agents to
    /// come back ready (docs/machines.md).
    Reboot(super::machines::ExistingMachineArgs),
    /// Reinstall machines through their provider: drain, rebuild, wait for
    /// the fresh agent to take the name, make it eligible again.
    Rebuild(super::machines::ExistingMachineArgs),
    /// Destroy machines through their provider: drain and retire, delete,
    /// wait until the node is down (it stays retired until purged).
    Delete(super::machines::ExistingMachineArgs),
    /// Power machines on through their provider's `power_on` command and
    /// wait for their agents to come back ready (docs/machines.md).
    PowerOn(super::machines::ExistingMachineArgs),
    /// Power machines off through their provider's `power_off` command:
    /// drain (unless --no-drain), power off, wait until the node is down.
    PowerOff(super::machines::ExistingMachineArgs),
    /// Rolling maintenance: per node drain, run a command through the
    /// agent, reboot, wait for the agent, verify, undrain (docs/machines.md).
    Maintain(super::machines::MaintainArgs),
    /// A node's console output now, through its provider's `console`
    /// command (docs/machines.md).
    Console(super::machines::ConsoleArgs),
    /// Mark a node as one that must never be destroyed: forced drains (and
    /// later reboots, rebuilds, deletions, automated fixes) are refused
    /// unless forced with a reason.
    Protect {
        /// Node name, id or unique id prefix.
        node: String,
        /// Why it must be protected (shown whenever something is refused).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Lift a node's protection.
    Unprotect {
        /// Node name, id or unique id prefix.
        node: String,
        /// Why (recorded in the history).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Who changed what on a node, and when.
    History {
        /// Node name, id or unique id prefix.
        node: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// List nodes with their status and facts (retired ones with --all).
    List {
        /// Only the nodes this filter matches, for example
        /// 'hostgroup =~ "bi/batch/**" and environment == "qa"' (docs/nodes.md).
        #[arg(long)]
        filter: Option<String>,
        /// Retired nodes too.
        #[arg(long)]
        all: bool,
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
    /// Show one node: labels, facts, resources and allocations; without a
    /// node, list the nodes (as `nomad node status` does).
    Status {
        /// Node name, id or unique id prefix.
        node: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

pub(crate) async fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::JoinToken(command) => super::acl::run_join_token(command).await,
        NodeCommand::Revoke { node, server } => super::acl::revoke_node(&node, &server).await,
        NodeCommand::Drain { node, deadline, ignore_system, no_wait, disable, force, reason, server } => {
            let client = server.client()?;
            let deadline = if force { Some(Duration::ZERO) } else { deadline };
            let request = DrainRequest {
                deadline: deadline.map(|deadline| format!("{}ms", deadline.as_millis())),
                ignore_system,
                disable,
                reason,
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
        NodeCommand::Update { nodes, filter, exclude, labels, yes, dry_run, server } => {
            let labels = labels.labels();
            let (nodes, filter) =
                super::exclude_nodes(super::expand_node_args(&nodes)?, filter, &super::expand_node_args(&exclude)?);
            let request = NodeUpdateRequest { nodes, filter, labels, dry_run: true };
            update_nodes(&server.client()?, request, yes, dry_run).await
        }
        NodeCommand::Retire { nodes, filter, exclude, deadline, reason, yes, dry_run, server } => {
            let (nodes, filter) =
                super::exclude_nodes(super::expand_node_args(&nodes)?, filter, &super::expand_node_args(&exclude)?);
            let request = NodeRetireRequest {
                nodes,
                filter,
                deadline: deadline.map(|deadline| format!("{}ms", deadline.as_millis())),
                reason,
                dry_run: true,
            };
            retire_nodes(&server.client()?, request, yes, dry_run).await
        }
        NodeCommand::Purge { nodes, yes, dry_run, server } => {
            let request = NodePurgeRequest { nodes: super::expand_node_args(&nodes)?, dry_run: true };
            purge_nodes(&server.client()?, request, yes, dry_run).await
        }
        NodeCommand::Create(args) => super::machines::create(args).await,
        NodeCommand::Reboot(args) => super::machines::existing(MachineOperation::Reboot, args).await,
        NodeCommand::Rebuild(args) => super::machines::existing(MachineOperation::Rebuild, args).await,
        NodeCommand::Delete(args) => super::machines::existing(MachineOperation::Delete, args).await,
        NodeCommand::PowerOn(args) => super::machines::existing(MachineOperation::PowerOn, args).await,
        NodeCommand::PowerOff(args) => super::machines::existing(MachineOperation::PowerOff, args).await,
        NodeCommand::Maintain(args) => super::machines::maintain(args).await,
        NodeCommand::Console(args) => super::machines::console(args).await,
        NodeCommand::Protect { node, reason, server } => {
            let updated = server.client()?.set_protection(&node, true, &reason).await?;
            println!("Node {} is protected: {reason}", updated.name);
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Unprotect { node, reason, server } => {
            let updated = server.client()?.set_protection(&node, false, &reason).await?;
            println!("Node {} is no longer protected.", updated.name);
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::History { node, json, server } => {
            let history = server.client()?.node_history(&node).await?;
            if json {
                print_json(&history)?;
                return Ok(ExitCode::SUCCESS);
            }
            if history.is_empty() {
                println!("No changes recorded for node {node}.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["When", "Who", "Field", "From", "To", "Reason"]);
            for change in &history {
                rows.add_row(vec![
                    local_time(change.at),
                    change.by.clone(),
                    change.field.clone(),
                    or_dash(&change.from),
                    or_dash(&change.to),
                    or_dash(&change.reason),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Eligibility { node, enable, server, .. } => {
            let updated = server.client()?.set_eligibility(&node, enable).await?;
            println!("Node {} is {}.", updated.name, if enable { "eligible" } else { "ineligible" });
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Top { filter, sort, limit, json, server } => {
            let entries = server.client()?.nodes_usage(filter.as_deref()).await?;
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
        NodeCommand::List { filter, all, json, server } => {
            let nodes = match (&filter, all) {
                (_, true) => server.client()?.all_nodes(filter.as_deref()).await?,
                (Some(filter), false) => server.client()?.nodes_matching(filter).await?,
                (None, false) => server.client()?.nodes().await?,
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
                "Version",
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
                    if node.agent_version.is_empty() { "-".to_owned() } else { node.agent_version.clone() },
                    node.last_heartbeat.map_or("-".to_owned(), ago),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Status { node, json, server } => {
            let Some(node) = node else {
                return Box::pin(run(NodeCommand::List { filter: None, all: false, json, server })).await;
            };
            let client = server.client()?;
            let status = client.node(&node).await?;
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
                        dropped => format!(
                            "{dropped} (the agent's log spool was full, or records in it were damaged on disk; see docs/logs.md)"
                        ),
                    },
                ),
            ]);
            if let Some(usage) = &status.usage {
                print_usage(usage);
            }
            match client.node_usage_history(&node.name, "24h").await {
                Ok(history) if !history.points.is_empty() => {
                    let now_ms = drover_types::Timestamp::now().as_millis();
                    println!();
                    println!("Usage, last 24 h (a column per {SPARK_MINUTES} minutes, its busiest minute)");
                    for line in usage_sparklines(&history.points, now_ms) {
                        println!("  {line}");
                    }
                }
                Ok(_) => {}
                Err(error) => eprintln!("(no usage history: {error})"),
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

/// Minutes a column of the usage sparklines covers (48 columns a day).
const SPARK_MINUTES: i64 = 30;

/// The last 24 h of a node's usage as sparklines, one line a figure: the
/// dashboard's columns ([`drover_ui::chart::usage_columns`]), one per
/// [`SPARK_MINUTES`] ending now, each the highest minute in it (a blank
/// where the node sent nothing), then the latest and highest values.
fn usage_sparklines(points: &[drover_proto::api::UsagePoint], now_ms: i64) -> Vec<String> {
    let num_columns = usize::try_from(24 * 60 / SPARK_MINUTES).unwrap_or(48);
    drover_ui::chart::usage_columns(points, now_ms, num_columns)
        .iter()
        .map(|figure| {
            format!(
                "{:<12} {}  now {}, max {}",
                figure.title,
                sparkline(&figure.columns, figure.scale()),
                figure.words(figure.latest),
                figure.words(figure.highest)
            )
        })
        .collect()
}

/// One character a value, from `▁` (nothing) to `█` (`scale` or more); a
/// blank for no value.
fn sparkline(values: &[Option<f64>], scale: f64) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|value| match value {
            None => ' ',
            Some(_) if scale <= 0.0 => LEVELS[0],
            Some(value) => {
                let level = (value / scale * 7.0).round().clamp(0.0, 7.0);
                LEVELS[level as usize]
            }
        })
        .collect()
}

/// Nodes changed per request, so that progress can be shown.
const UPDATE_BATCH: usize = 50;

/// Above this many nodes, a bulk change asks for confirmation.
const CONFIRM_ABOVE: usize = 10;

/// `drover node update`: preview, confirm above 10 nodes, apply in
/// batches with progress.
async fn update_nodes(
    client: &drover_client::Client,
    mut request: NodeUpdateRequest,
    yes: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let preview = client.update_nodes(&request).await?;
    if preview.nodes.is_empty() {
        println!("No node matches; nothing to change.");
        return Ok(ExitCode::SUCCESS);
    }
    print_changes(&preview.changes);
    // Changes come grouped by node.
    let mut changing: Vec<(&str, &drover_types::NodeId)> =
        preview.changes.iter().map(|change| (change.node.as_str(), &change.node_id)).collect();
    changing.dedup();
    println!(
        "{} of {} selected node(s) change: {}",
        changing.len(),
        preview.nodes.len(),
        drover_filter::fold_names(changing.iter().map(|(name, _)| name))
    );
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if changing.len() > CONFIRM_ABOVE && !yes && !confirm(&format!("Change {} nodes?", changing.len()))? {
        println!("Nothing changed.");
        return Ok(ExitCode::FAILURE);
    }
    let ids: Vec<String> = changing.iter().map(|(_, id)| id.to_string()).collect();
    let progress = indicatif::ProgressBar::new(ids.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} nodes updated")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    request.dry_run = false;
    request.filter = None;
    let mut changed = 0usize;
    for batch in ids.chunks(UPDATE_BATCH) {
        request.nodes = batch.to_vec();
        let response = client.update_nodes(&request).await?;
        changed += response.nodes.len();
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    println!("Updated {changed} node(s); `drover node history NODE` shows each change.");
    Ok(ExitCode::SUCCESS)
}

/// `drover node retire`: preview, confirm above 10 nodes, retire in
/// batches (by id: what was previewed is what is retired).
async fn retire_nodes(
    client: &drover_client::Client,
    mut request: NodeRetireRequest,
    yes: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let preview = client.retire_nodes(&request).await?;
    if preview.nodes.is_empty() {
        println!("No node to retire: none matches, or they are retired already.");
        return Ok(ExitCode::SUCCESS);
    }
    let count = preview.nodes.len();
    println!("{count} node(s) to retire: {}", drover_filter::fold_names(&preview.nodes));
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if count > CONFIRM_ABOVE && !yes && !confirm(&format!("Retire {count} nodes?"))? {
        println!("Nothing changed.");
        return Ok(ExitCode::FAILURE);
    }
    request.dry_run = false;
    request.filter = None;
    for batch in preview.node_ids.chunks(UPDATE_BATCH) {
        request.nodes = batch.iter().map(ToString::to_string).collect();
        client.retire_nodes(&request).await?;
    }
    println!(
        "Retired {count} node(s): they are being drained and take no new work; `drover node list --all` shows them \
         (retiring, then retired). `drover node purge NODES` forgets them once drained."
    );
    Ok(ExitCode::SUCCESS)
}

/// `drover node purge`: check every node, confirm above 10, purge in
/// batches (by id).
async fn purge_nodes(
    client: &drover_client::Client,
    mut request: NodePurgeRequest,
    yes: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let preview = client.purge_nodes(&request).await?;
    let count = preview.nodes.len();
    println!("{count} node(s) to purge: {}", drover_filter::fold_names(&preview.nodes));
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if count > CONFIRM_ABOVE && !yes && !confirm(&format!("Purge {count} nodes?"))? {
        println!("Nothing changed.");
        return Ok(ExitCode::FAILURE);
    }
    request.dry_run = false;
    for batch in preview.node_ids.chunks(UPDATE_BATCH) {
        request.nodes = batch.iter().map(ToString::to_string).collect();
        client.purge_nodes(&request).await?;
    }
    println!("Purged {count} node(s): forgotten, history and all (`drover audit` keeps the purge).");
    Ok(ExitCode::SUCCESS)
}

fn print_changes(changes: &[NodeFieldChange]) {
    if changes.is_empty() {
        return;
    }
    let mut rows = table(&["Node", "Field", "From", "To"]);
    for change in changes {
        rows.add_row(vec![change.node.clone(), change.field.clone(), or_dash(&change.from), or_dash(&change.to)]);
    }
    print_table(&rows);
}

/// Asks on the terminal; without one, refuses and says how to skip asking.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} Refusing without a terminal to ask on; add --yes to confirm. Nothing changed.");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// A value for a table cell: `-` when empty (unset).
fn or_dash(text: &str) -> String {
    if text.is_empty() { "-".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use drover_proto::api::UsagePoint;

    use super::*;

    #[test]
    fn a_sparkline_draws_each_value_against_the_scale_and_a_gap_as_a_blank() {
        let values = [Some(0.0), Some(50.0), None, Some(100.0), Some(250.0)];
        assert_eq!(sparkline(&values, 100.0), "▁▅ ██");
        assert_eq!(sparkline(&[Some(3.0)], 0.0), "▁");
    }

    #[test]
    fn the_usage_sparklines_cover_the_last_day_a_column_per_half_hour_at_its_busiest_minute() {
        let now_ms = 1_000 * 86_400_000;
        let minute = |minutes_ago: i64, cpu: f32, rx: f64| UsagePoint {
            time_ms: now_ms - minutes_ago * 60_000,
            cpu_percent: Some(cpu),
            memory_percent: None,
            disk_percent: None,
            net_rx_bytes_per_sec: Some(rx),
            net_tx_bytes_per_sec: None,
        };
        // A busy minute a day ago (the first column), a quiet and a busy
        // one in the last half hour, and one older than a day (left out).
        let points =
            [minute(2000, 100.0, 0.0), minute(1439, 100.0, 1000.0), minute(20, 10.0, 0.0), minute(1, 60.0, 2000.0)];
        let lines = usage_sparklines(&points, now_ms);
        assert_eq!(lines.len(), 2, "figures without values are left out: {lines:#?}");
        let columns = |line: &str| line.chars().skip(13).take(48).collect::<String>();
        let cpu = &lines[0];
        assert!(cpu.starts_with("CPU busy     "), "{cpu}");
        assert_eq!(columns(cpu), format!("█{}▅", " ".repeat(46)), "{cpu}");
        assert!(cpu.ends_with("▅  now 60%, max 100%"), "{cpu}");
        assert_eq!(columns(&lines[1]), format!("▅{}█", " ".repeat(46)), "{}", lines[1]);
        assert!(lines[1].ends_with("█  now 2.0 kB/s, max 2.0 kB/s"), "{}", lines[1]);
    }
}
