//! `drover node create|reboot|rebuild|delete|maintain` and `drover workflow
//! list|status|pause|resume|cancel`: machine operations through a site
//! provider and rolling maintenance through the agents, run by the leader
//! as a replicated workflow (docs/machines.md). The CLI previews (the
//! server renders every command and refuses protected or unknown nodes),
//! asks above 10 nodes, starts the workflow and follows it until it ends;
//! Ctrl-C or `--wait=false` leaves it running. `drover node console` prints
//! a node's console through its provider, now (and then as it grows with
//! `--follow`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};

use drover_proto::machines::WorkflowRequest;
use drover_types::workflow::{
    FailureLimit, MachineOperation, Maintenance, MaintenanceReboot, StepPhase, Workflow, WorkflowStatus,
};

use super::ServerAddress;
use super::output::{print_table, table};

/// Above this many nodes, a workflow asks for confirmation.
const CONFIRM_ABOVE: usize = 10;
/// How often a followed workflow is read.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// How often a followed console is read, unless told.
const CONSOLE_EVERY: &str = "2s";

/// What every machine operation takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkflowOptions {
    /// The provider (a `provider` block of the applied site); default:
    /// each node's `provider` meta key, else the site's default provider.
    #[arg(long)]
    provider: Option<String>,
    /// Start at most this many nodes per minute: `10/min` (or `10`).
    #[arg(long, value_parser = parse_rate, value_name = "N/min")]
    rate: Option<u32>,
    /// At most this many nodes in progress at once (default 1).
    #[arg(long)]
    parallel: Option<u32>,
    /// Stop (leaving the rest untouched) when more than this many nodes
    /// fail: a number (default 1) or a percentage of the nodes selected,
    /// rounded down (`10%`).
    #[arg(long, value_name = "N|N%", allow_hyphen_values = true)]
    max_failures: Option<FailureLimit>,
    /// How long a node may take to drain, and its agent to come back
    /// after the provider command (default 10m).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Do not ask for confirmation (asked above 10 nodes).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Only show the nodes and the exact commands it would run.
    #[arg(long)]
    dry_run: bool,
    /// Follow the workflow until it ends (`--wait=false`: start it and
    /// return; Ctrl-C detaches, the workflow goes on).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    wait: bool,
    /// Print the workflow as JSON when it ends (or at once with --wait=false).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerAddress,
}

/// `drover node reboot|rebuild|delete|power-on|power-off`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExistingMachineArgs {
    /// Nodes: names, ids, comma-separated lists and brace ranges
    /// (`batch{00..99}`).
    #[arg(value_name = "NODES")]
    nodes: Vec<String>,
    /// The nodes this filter matches (docs/nodes.md); with NODES, those of
    /// them it matches.
    #[arg(long)]
    filter: Option<String>,
    /// Do not drain before a rebuild, delete or power-off.
    #[arg(long)]
    no_drain: bool,
    #[command(flatten)]
    options: WorkflowOptions,
}

/// `drover node create`.
#[derive(Debug, Args)]
pub(crate) struct CreateMachineArgs {
    /// Names of the new machines: comma-separated lists and brace ranges
    /// (`batch{100..149}`); each one's agent is expected to register
    /// with its name.
    #[arg(value_name = "NAMES", required = true)]
    names: Vec<String>,
    /// The labels the new machines get (rendered into the provider's
    /// create command as `{{node.hostgroup}}`, `{{node.meta.KEY}}`, …).
    #[command(flatten)]
    labels: crate::roles::LabelArgs,
    #[command(flatten)]
    options: WorkflowOptions,
}

/// `drover node maintain`.
#[derive(Debug, Args)]
pub(crate) struct MaintainArgs {
    /// Nodes: names, ids, comma-separated lists and brace ranges
    /// (`hv{01..40}`).
    #[arg(value_name = "NODES")]
    nodes: Vec<String>,
    /// The nodes this filter matches (docs/nodes.md); with NODES, those of
    /// them it matches.
    #[arg(long)]
    filter: Option<String>,
    /// Run this through each node's agent once it is drained (`/bin/sh
    /// -c`, as the agent's user; `{{node.name}}`, … placeholders); a
    /// non-zero exit fails the node.
    #[arg(long, value_name = "CMD")]
    run: Option<String>,
    /// Then reboot each node through its provider and wait for its agent.
    #[arg(long, conflicts_with = "reboot_command")]
    reboot: bool,
    /// Then run this reboot command through the agent instead (its agent
    /// going away is expected) and wait for the agent to come back.
    #[arg(long, value_name = "CMD")]
    reboot_command: Option<String>,
    /// Then run this through the agent; a non-zero exit fails the node (it
    /// stays drained).
    #[arg(long, value_name = "CMD")]
    verify: Option<String>,
    /// Run the commands as this user (default: as `drover exec` does, the
    /// agent's exec user; `root` needs exec-as-root).
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Stop what still runs on a node this long after its drain started
    /// (default: wait for it, up to --timeout).
    #[arg(long, value_name = "DURATION")]
    drain_deadline: Option<String>,
    #[command(flatten)]
    options: WorkflowOptions,
}

/// `drover node console`.
#[derive(Debug, Args)]
pub(crate) struct ConsoleArgs {
    /// The node (name or id).
    node: String,
    /// Keep reading it and print the new lines as they come (Ctrl-C stops).
    #[arg(long, short = 'f')]
    follow: bool,
    /// How often --follow reads the console.
    #[arg(long, value_name = "DURATION", default_value = CONSOLE_EVERY)]
    every: String,
    #[command(flatten)]
    server: ServerAddress,
}

/// `drover workflow …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// List machine workflows, newest first.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show one workflow and each node's step.
    Status {
        /// The workflow id.
        id: String,
        /// Follow it until it ends.
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Pause a workflow: no new node step starts; the steps in flight go
    /// on to their end.
    Pause {
        /// The workflow id.
        id: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Resume a paused workflow.
    Resume {
        /// The workflow id.
        id: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Cancel a workflow: steps not started never start, steps in flight
    /// stop where they are (drained nodes stay drained).
    Cancel {
        /// The workflow id.
        id: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.strip_suffix("/min").unwrap_or(text);
    match number.trim().parse::<u32>() {
        Ok(rate) if rate > 0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate; write N/min with N ≥ 1, e.g. 10/min")),
    }
}

/// `drover node reboot|rebuild|delete`.
pub(crate) async fn existing(operation: MachineOperation, args: ExistingMachineArgs) -> anyhow::Result<ExitCode> {
    let request = WorkflowRequest {
        operation,
        nodes: super::expand_node_args(&args.nodes)?,
        filter: args.filter,
        no_drain: args.no_drain,
        ..request_of(operation, &args.options)
    };
    if request.nodes.is_empty() && request.filter.is_none() {
        anyhow::bail!("name the nodes to {operation} (`batch{{00..09}}`) or give --filter EXPR; nothing was started");
    }
    start(request, &args.options).await
}

/// `drover node create`.
pub(crate) async fn create(args: CreateMachineArgs) -> anyhow::Result<ExitCode> {
    let request = WorkflowRequest {
        nodes: super::expand_node_args(&args.names)?,
        labels: args.labels.labels(),
        ..request_of(MachineOperation::Create, &args.options)
    };
    start(request, &args.options).await
}

/// `drover node maintain`.
pub(crate) async fn maintain(args: MaintainArgs) -> anyhow::Result<ExitCode> {
    let reboot = match (args.reboot, args.reboot_command) {
        (_, Some(command)) => MaintenanceReboot::Command(command),
        (true, None) => MaintenanceReboot::Provider,
        (false, None) => MaintenanceReboot::None,
    };
    let drain_deadline_ms = match args.drain_deadline.as_deref() {
        Some(text) => {
            let deadline = text
                .parse::<drover_types::DurationSpec>()
                .map_err(|error| anyhow::anyhow!("--drain-deadline {text:?}: {error}"))?;
            Some(u64::try_from(deadline.get().as_millis()).unwrap_or(u64::MAX))
        }
        None => None,
    };
    let request = WorkflowRequest {
        nodes: super::expand_node_args(&args.nodes)?,
        filter: args.filter,
        maintenance: Maintenance { run: args.run, reboot, verify: args.verify, user: args.user, drain_deadline_ms },
        ..request_of(MachineOperation::Maintain, &args.options)
    };
    if request.nodes.is_empty() && request.filter.is_none() {
        anyhow::bail!("name the nodes to maintain (`hv{{01..40}}`) or give --filter EXPR; nothing was started");
    }
    start(request, &args.options).await
}

/// `drover node console`.
pub(crate) async fn console(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let every = args
        .every
        .parse::<drover_types::DurationSpec>()
        .map_err(|error| anyhow::anyhow!("--every {:?}: {error}", args.every))?
        .get()
        .max(Duration::from_millis(100));
    let client = args.server.client()?;
    let mut previous: Vec<String> = Vec::new();
    loop {
        let console = client.node_console(&args.node).await?;
        let current: Vec<String> = console.output.lines().map(str::to_owned).collect();
        for line in new_lines(&previous, &current) {
            println!("{line}");
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        previous = current;
        tokio::time::sleep(every).await;
    }
}

/// The lines of `current` after the longest prefix of it that ends
/// `previous` (a console shows a moving window of its output; the log
/// collector's console poller reads it the same way).
fn new_lines<'a>(previous: &[String], current: &'a [String]) -> &'a [String] {
    if previous.is_empty() {
        return current;
    }
    let max_overlap = previous.len().min(current.len());
    for overlap in (1..=max_overlap).rev() {
        if previous[previous.len() - overlap..] == current[..overlap] {
            return &current[overlap..];
        }
    }
    current
}

fn request_of(operation: MachineOperation, options: &WorkflowOptions) -> WorkflowRequest {
    WorkflowRequest {
        operation,
        nodes: Vec::new(),
        filter: None,
        provider: options.provider.clone(),
        labels: drover_types::NodeLabels::default(),
        rate_per_minute: options.rate,
        parallel: options.parallel,
        max_failures: options.max_failures,
        no_drain: false,
        timeout: options.timeout.clone(),
        dry_run: true,
        maintenance: Maintenance::default(),
    }
}

/// Previews, confirms above 10 nodes, starts, follows.
async fn start(mut request: WorkflowRequest, options: &WorkflowOptions) -> anyhow::Result<ExitCode> {
    let client = options.server.client()?;
    let preview = client.start_workflow(&request).await?;
    let names: Vec<String> = preview.workflow.steps.iter().map(|step| step.node.clone()).collect();
    let count = names.len();
    let operation = request.operation;
    eprintln!("{count} node(s) to {operation}: {}", drover_filter::fold_names(&names));
    if options.dry_run {
        for (node, command) in &preview.commands {
            println!("{node}: {command}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if count > CONFIRM_ABOVE && !options.yes && !confirm(&format!("{operation} {count} nodes?"))? {
        eprintln!("Nothing was started.");
        return Ok(ExitCode::FAILURE);
    }
    // What was previewed is what is started, even if the filter would now
    // match other nodes.
    request.nodes = names;
    request.filter = None;
    request.dry_run = false;
    let started = client.start_workflow(&request).await?;
    let id = started.workflow.id.clone();
    eprintln!(
        "Workflow {id} started ({operation} of {count} node(s)); `drover workflow status {id}` shows it, \
         `drover workflow cancel {id}` stops it."
    );
    if !options.wait {
        if options.json {
            super::output::print_json(&started.workflow)?;
        } else {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow(&client, &id, options.json).await
}

/// Prints each step's changes until the workflow ends; success when it
/// succeeded. On a terminal a progress bar (steps ended of all, what is in
/// flight) stays under the lines; otherwise only the lines are printed.
async fn follow(client: &drover_client::Client, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let progress = WorkflowProgress::on_stderr();
    let mut seen: Vec<(StepPhase, String)> = Vec::new();
    loop {
        let workflow = client.workflow(id).await?;
        progress.show(&workflow);
        for (position, step) in workflow.steps.iter().enumerate() {
            let now = (step.phase, format!("{}{}", step.error, step.waiting_for));
            if seen.get(position) != Some(&now) {
                if !step.waiting_for.is_empty() {
                    progress.line(&format!("  {}: waiting: {}", step.node, step.waiting_for));
                } else if !(step.phase == StepPhase::Pending && seen.get(position).is_none()) {
                    let error = if step.error.is_empty() { String::new() } else { format!(": {}", step.error) };
                    progress.line(&format!("  {}: {}{error}", step.node, step.phase.as_str()));
                }
                if position < seen.len() {
                    seen[position] = now;
                } else {
                    seen.push(now);
                }
            }
        }
        if workflow.status != WorkflowStatus::Running {
            progress.finish();
            let (done, failed, _, _) = workflow.counts();
            let reason = if workflow.reason.is_empty() { String::new() } else { format!(" ({})", workflow.reason) };
            eprintln!("Workflow {id} {}{reason}: {done} done, {failed} failed.", workflow.status.as_str());
            if json {
                super::output::print_json(&workflow)?;
            }
            let code = if workflow.status == WorkflowStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE };
            return Ok(code);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// The progress bar of a followed workflow: on a terminal, a bar of the
/// steps ended with the counts beside it, the phase lines printed above
/// it; elsewhere (a pipe, a file, CI) no bar and plain lines.
struct WorkflowProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl WorkflowProgress {
    fn on_stderr() -> WorkflowProgress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return WorkflowProgress { bar: None };
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} nodes {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        WorkflowProgress { bar: Some(bar) }
    }

    /// Moves the bar to where `workflow` is.
    fn show(&self, workflow: &Workflow) {
        let Some(bar) = &self.bar else { return };
        let (ended, message) = progress_of(workflow);
        bar.set_length(u64::try_from(workflow.steps.len()).unwrap_or(u64::MAX));
        bar.set_position(u64::try_from(ended).unwrap_or(u64::MAX));
        bar.set_message(message);
    }

    /// Prints a line (above the bar when there is one).
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Takes the bar away (the summary line follows).
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// How many steps of `workflow` have ended, and the counts in words:
/// `3 done, 1 failed, 2 in flight` (`, paused by bob` when paused).
fn progress_of(workflow: &Workflow) -> (usize, String) {
    let (done, failed, in_flight, _) = workflow.counts();
    let ended = workflow.steps.iter().filter(|step| step.phase.is_terminal()).count();
    let mut message = format!("{done} done, {failed} failed, {in_flight} in flight");
    if let Some(by) = &workflow.paused_by {
        message.push_str(&format!(", paused by {by}"));
    }
    (ended, message)
}

/// `drover workflow …`.
pub(crate) async fn run(command: WorkflowCommand) -> anyhow::Result<ExitCode> {
    match command {
        WorkflowCommand::List { json, server } => {
            let workflows = server.client()?.workflows().await?;
            if json {
                super::output::print_json(&workflows)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows =
                table(&["ID", "Operation", "Status", "Nodes", "Done", "Failed", "In flight", "By", "Created"]);
            for workflow in &workflows {
                let (done, failed, in_flight, _) = workflow.counts();
                rows.add_row(vec![
                    workflow.id.clone(),
                    workflow.operation.to_string(),
                    status_text(workflow),
                    workflow.steps.len().to_string(),
                    done.to_string(),
                    failed.to_string(),
                    in_flight.to_string(),
                    workflow.by.clone(),
                    workflow.created_at.to_string(),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Status { id, follow: true, json, server } => follow(&server.client()?, &id, json).await,
        WorkflowCommand::Status { id, follow: false, json, server } => {
            let workflow = server.client()?.workflow(&id).await?;
            if json {
                super::output::print_json(&workflow)?;
            } else {
                print_workflow(&workflow);
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Pause { id, server } => {
            let workflow = server.client()?.pause_workflow(&id, true).await?;
            let (_, _, in_flight, pending) = workflow.counts();
            println!(
                "Workflow {} paused: {pending} node(s) will not start until `drover workflow resume {}`; \
                 {in_flight} in flight go on.",
                workflow.id, workflow.id
            );
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Resume { id, server } => {
            let workflow = server.client()?.pause_workflow(&id, false).await?;
            println!("Workflow {} resumed.", workflow.id);
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Cancel { id, server } => {
            let workflow = server.client()?.cancel_workflow(&id).await?;
            println!(
                "Workflow {} cancelled; nodes it drained stay drained (`drover node drain NODE --disable`).",
                workflow.id
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_workflow(workflow: &Workflow) {
    let rate = workflow.rate_per_minute.map_or_else(|| "none".to_owned(), |rate| format!("{rate}/min"));
    println!("ID          = {}", workflow.id);
    println!("Operation   = {}", workflow.operation);
    println!("Status      = {}", status_text(workflow));
    if !workflow.reason.is_empty() {
        println!("Reason      = {}", workflow.reason);
    }
    println!("Provider    = {}", workflow.provider.as_deref().unwrap_or("(each node's, or the default)"));
    println!("Rate        = {rate}, parallel {}, max failures {}", workflow.parallel, workflow.max_failures_text());
    println!("By          = {} at {}", workflow.by, workflow.created_at);
    let maintenance = &workflow.maintenance;
    if let Some(run) = &maintenance.run {
        println!("Run         = {run}");
    }
    match &maintenance.reboot {
        MaintenanceReboot::Provider => println!("Reboot      = through the provider"),
        MaintenanceReboot::Command(command) => println!("Reboot      = {command} (through the agent)"),
        MaintenanceReboot::None => {}
    }
    if let Some(verify) = &maintenance.verify {
        println!("Verify      = {verify}");
    }
    println!();
    let mut rows = table(&["Node", "Phase", "Started", "Finished", "Command", "Error"]);
    let time = |at: Option<drover_types::Timestamp>| at.map_or_else(|| "-".to_owned(), |at| at.to_string());
    for step in &workflow.steps {
        rows.add_row(vec![
            step.node.clone(),
            phase_text(step),
            time(step.started_at),
            time(step.finished_at),
            if step.command.is_empty() { "-".to_owned() } else { step.command.clone() },
            if step.error.is_empty() { "-".to_owned() } else { step.error.clone() },
        ]);
    }
    print_table(&rows);
}

/// A step's phase; a pending step held back by a job's limits says why
/// (`pending (waiting: job web …)`).
fn phase_text(step: &drover_types::workflow::WorkflowStep) -> String {
    if step.waiting_for.is_empty() {
        step.phase.as_str().to_owned()
    } else {
        format!("{} (waiting: {})", step.phase.as_str(), step.waiting_for)
    }
}

/// `running`, `running (paused by bob)`, `succeeded`, …
fn status_text(workflow: &Workflow) -> String {
    match &workflow.paused_by {
        Some(by) if workflow.status == WorkflowStatus::Running => format!("running (paused by {by})"),
        _ => workflow.status.as_str().to_owned(),
    }
}

/// Asks on the terminal; without one, refuses and says how to skip asking.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} Refusing without a terminal to ask on; add --yes to confirm. Nothing was started.");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_n_per_minute() {
        assert_eq!(parse_rate("10/min"), Ok(10));
        assert_eq!(parse_rate("3"), Ok(3));
        assert!(parse_rate("0/min").is_err());
        assert!(parse_rate("fast").unwrap_err().contains("10/min"));
    }

    #[test]
    fn the_progress_bar_counts_the_steps_ended_and_says_what_is_in_flight() {
        use drover_types::workflow::WorkflowStep;
        let step = |node: &str, phase: StepPhase| WorkflowStep { phase, ..WorkflowStep::pending(node) };
        let mut workflow = Workflow {
            id: "w1".to_owned(),
            operation: MachineOperation::Maintain,
            provider: None,
            labels: drover_types::NodeLabels::default(),
            rate_per_minute: None,
            parallel: 2,
            max_failures: 1,
            max_failures_percent: None,
            drain: true,
            wait_timeout_ms: 1_000,
            maintenance: Maintenance::default(),
            paused_by: None,
            by: "alice".to_owned(),
            created_at: drover_types::Timestamp::from_millis(0),
            status: WorkflowStatus::Running,
            finished_at: None,
            reason: String::new(),
            steps: vec![
                step("a", StepPhase::Done),
                step("b", StepPhase::Failed),
                step("c", StepPhase::Verifying),
                step("d", StepPhase::Pending),
            ],
        };
        assert_eq!(progress_of(&workflow), (2, "1 done, 1 failed, 1 in flight".to_owned()));
        workflow.paused_by = Some("bob".to_owned());
        assert_eq!(progress_of(&workflow).1, "1 done, 1 failed, 1 in flight, paused by bob");
    }

    #[test]
    fn a_followed_console_prints_only_the_lines_after_the_overlap() {
        let lines = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(new_lines(&[], &lines("a b")), lines("a b"));
        assert_eq!(new_lines(&lines("a b c"), &lines("b c d e")), lines("d e"));
        assert!(new_lines(&lines("a b"), &lines("a b")).is_empty());
        // No overlap: the window moved past everything seen.
        assert_eq!(new_lines(&lines("a b"), &lines("x y")), lines("x y"));
    }
}
