//! `drover job …`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use drover_client::{Client, ClientError, Wait};
use drover_jobspec::{Source, VarInputs};
use drover_proto::api::{AllocListEntry, DispatchJobRequest, JobListEntry, JobStatusResponse, PlanResponse};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, DeploymentStatus, EvalStatus, Job, JobType, PlacementFailure,
    TaskEvent,
};

use super::ServerAddress;
use super::output::{ago, newest_first, print_fields, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Register a job file (or a new version of it) and wait until its
    /// allocations run.
    Run {
        /// The job file.
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Return once the job is registered, without waiting.
        #[arg(long)]
        detach: bool,
        /// How long to wait for the allocations.
        #[arg(long, default_value = "5m", value_parser = crate::roles::parse_duration)]
        timeout: Duration,
        /// Print the registration as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show a job's status, allocations and recent task events; without a
    /// job, list the jobs.
    Status {
        /// The job.
        job: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List jobs.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Stop a job's allocations (and remove it with --purge).
    Stop {
        /// The job.
        job: String,
        /// Remove the job and its history.
        #[arg(long)]
        purge: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Check a job file without contacting a server; every error is reported.
    Validate {
        /// The job file.
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Print the parsed job as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what running a job file would change, without changing anything.
    Plan {
        /// The job file.
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List a job's versions, newest first, each with its changes.
    History {
        /// The job.
        job: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Run an earlier version of a job again (as a new version).
    Revert {
        /// The job.
        job: String,
        /// The version to run.
        #[arg(id = "job_version", value_name = "VERSION")]
        version: u64,
        /// Return once registered, without waiting.
        #[arg(long)]
        detach: bool,
        /// How long to wait for the rollout.
        #[arg(long, default_value = "10m", value_parser = crate::roles::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Change how many instances of a group run: registers a new version
    /// of the job with the group's count changed, and waits for the rollout.
    Scale {
        /// The job.
        job: String,
        /// The group.
        group: String,
        /// The new count (within the group's `scaling` bounds, if any).
        count: u32,
        /// Return once registered, without waiting.
        #[arg(long)]
        detach: bool,
        /// How long to wait for the rollout.
        #[arg(long, default_value = "10m", value_parser = crate::roles::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Restart every running allocation of a job in place, in rolling
    /// batches: the group's `update` `max_parallel` at a time, each batch
    /// running again for `min_healthy_time` before the next (Nomad's `job
    /// restart`). Waits for the last batch.
    Restart {
        /// The job.
        job: String,
        /// Restart only this task of each allocation.
        #[arg(long)]
        task: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Promote the canaries of a job's deployment: the rollout continues.
    Promote {
        /// The job.
        job: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Launch a child of a parameterized job with meta and a payload (how
    /// a CI server starts a build), and wait until it runs.
    Dispatch {
        /// The parameterized job.
        job: String,
        /// A file whose content is the payload (at most 16 KiB), or - to
        /// read it from standard input.
        payload: Option<PathBuf>,
        /// Meta of the child: `-meta key=value` (repeatable).
        #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
        /// Return once dispatched, without waiting.
        #[arg(long)]
        detach: bool,
        /// How long to wait for the child's allocations.
        #[arg(long, default_value = "5m", value_parser = crate::roles::parse_duration)]
        timeout: Duration,
        /// Print the dispatch as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Periodic jobs.
    #[command(subcommand)]
    Periodic(PeriodicCommand),
    /// Print a job's current version as JSON.
    Inspect {
        /// The job.
        job: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeriodicCommand {
    /// Launch a periodic job now, whatever its schedule.
    Force {
        /// The periodic job.
        job: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// `-var name=value` and `-var-file FILE`.
#[derive(Debug, Args)]
pub(crate) struct VarArgs {
    /// Set a variable: `-var name=value` (repeatable; later wins).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = drover_hcl::VarInputs::parse_cli_var)]
    vars: Vec<(String, String)>,
    /// Read variables from an HCL file (repeatable; later wins).
    #[arg(long = "var-file", value_name = "FILE")]
    var_files: Vec<PathBuf>,
}

impl VarArgs {
    fn inputs(&self) -> anyhow::Result<VarInputs> {
        let mut files = Vec::new();
        for path in &self.var_files {
            files.push(Source::read(path).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?);
        }
        Ok(VarInputs { cli: self.vars.clone(), files, env: VarInputs::process_environment() })
    }
}

/// Parses a job file, printing every diagnostic on failure.
pub(crate) fn parse_file(file: &Path, vars: &VarArgs) -> anyhow::Result<Result<Job, ExitCode>> {
    let inputs = vars.inputs()?;
    match drover_jobspec::parse_job_file(file, &inputs) {
        Ok(job) => Ok(Ok(job)),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            let count = diagnostics.len();
            eprintln!("{count} error{} in {}", if count == 1 { "" } else { "s" }, file.display());
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

pub(crate) async fn run(command: JobCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Run { file, vars, detach, timeout, json, server } => {
            let job = match parse_file(&file, &vars)? {
                Ok(job) => job,
                Err(code) => return Ok(code),
            };
            job_run(&server.client()?, job, detach, timeout, json).await
        }
        JobCommand::Status { job: Some(job), json, server } => job_status(&server.client()?, &job, json).await,
        JobCommand::Status { job: None, json, server } | JobCommand::List { json, server } => {
            job_list(&server.client()?, json).await
        }
        JobCommand::Stop { job, purge, json, server } => {
            let response = server.client()?.deregister_job(&job, purge).await?;
            if json {
                print_json(&response)?;
            } else {
                println!(
                    "job {job:?} {}; evaluation {} stops its allocations",
                    if purge { "purged" } else { "stopped" },
                    response.eval_id.short()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Validate { file, vars, json } => match parse_file(&file, &vars)? {
            Ok(job) => {
                if json {
                    print_json(&job)?;
                } else {
                    let num_tasks: usize = job.groups.iter().map(|group| group.tasks.len()).sum();
                    println!(
                        "{}: job {:?} is valid ({} job, {} group(s), {} task(s))",
                        file.display(),
                        job.id.as_str(),
                        job.job_type,
                        job.groups.len(),
                        num_tasks
                    );
                    for note in scaling_notes(&job) {
                        eprintln!("note: {note}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        JobCommand::Plan { file, vars, json, server } => {
            // Like `nomad job plan`: 0 without changes, 1 with changes,
            // 255 for any error (so that a CI step can tell them apart).
            let job = match parse_file(&file, &vars) {
                Ok(Ok(job)) => job,
                Ok(Err(_)) => return Ok(plan_error()),
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return Ok(plan_error());
                }
            };
            let planned = async { job_plan(&server.client()?, &job, json).await };
            match planned.await {
                Ok(code) => Ok(code),
                Err(error) => {
                    eprintln!("error: {error:#}");
                    Ok(plan_error())
                }
            }
        }
        JobCommand::Scale { job, group, count, detach, timeout, server } => {
            let client = server.client()?;
            let registered = client.scale_job(&job, &group, count).await?;
            if !registered.changed {
                println!("Group {group:?} of job {job:?} already runs {count} instance(s); nothing changed.");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Group {group:?} of job {job:?} scaled to {count}, registered as version {}",
                registered.job_version
            );
            follow_unless_detached(&client, &job, &registered, detach, timeout).await
        }
        JobCommand::Restart { job, task, json, server } => {
            let restarted = server.client()?.restart_job(&job, task.as_deref()).await?;
            if json {
                print_json(&restarted)?;
                return Ok(ExitCode::SUCCESS);
            }
            for (number, batch) in restarted.batches.iter().enumerate() {
                let ids: Vec<&str> = batch.iter().map(|id| id.short()).collect();
                println!("Batch {} of {}: restarted {}", number + 1, restarted.batches.len(), ids.join(", "));
            }
            let count: usize = restarted.batches.iter().map(Vec::len).sum();
            println!(
                "Job {job:?}: {count} allocation(s) restarted, at most {} at once",
                restarted.max_restarting_at_once
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::History { job, json, server } => job_history(&server.client()?, &job, json).await,
        JobCommand::Revert { job, version, detach, timeout, server } => {
            let client = server.client()?;
            let registered = client.revert_job(&job, version).await?;
            println!(
                "Job {job:?} reverted to the specification of version {version}, registered as version {}",
                registered.job_version
            );
            follow_unless_detached(&client, &job, &registered, detach, timeout).await
        }
        JobCommand::Promote { job, server } => {
            let deployment = server.client()?.promote_job(&job).await?;
            println!("Deployment {} of job {job:?} promoted; the rollout continues.", deployment.id.short());
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Dispatch { job, payload, meta, detach, timeout, json, server } => {
            let payload = match payload {
                Some(path) => read_payload(&path)?,
                None => Vec::new(),
            };
            let request = DispatchJobRequest { meta: meta.into_iter().collect(), payload };
            job_dispatch(&server.client()?, &job, &request, detach, timeout, json).await
        }
        JobCommand::Periodic(PeriodicCommand::Force { job, server }) => {
            let launched = server.client()?.force_periodic(&job).await?;
            println!("Job {job:?} launched now; evaluation {}", launched.eval_id.short());
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Inspect { job, server } => {
            print_json(&server.client()?.job(&job).await?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn job_list(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let jobs = client.jobs().await?;
    if json {
        print_json(&jobs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!("No jobs. Run one with `drover job run FILE`.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table(&JOB_LIST_HEADER);
    for job in &jobs {
        rows.add_row(job_list_row(job));
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// The columns of the job list. Complete counts the allocations that
/// finished successfully: without it a batch job that did its work would
/// read "dead, Running 0, Pending 0, Failed 0".
const JOB_LIST_HEADER: [&str; 10] =
    ["ID", "Type", "Priority", "Status", "Version", "Running", "Pending", "Complete", "Failed", "Submitted"];

/// One job's line of the job list, under [`JOB_LIST_HEADER`].
fn job_list_row(job: &JobListEntry) -> Vec<String> {
    vec![
        job.id.to_string(),
        job.job_type.to_string(),
        job.priority.to_string(),
        if job.stop { "dead (stopped)".to_owned() } else { job.status.to_string() },
        job.version.to_string(),
        job.allocs.running.to_string(),
        job.allocs.pending.to_string(),
        job.allocs.complete.to_string(),
        job.allocs.failed.to_string(),
        ago(job.submit_time),
    ]
}

async fn job_status(client: &Client, job_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let (status, _) = client.job_status(job_id, None).await?;
    if json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_job_status(&status);
    Ok(ExitCode::SUCCESS)
}

fn print_job_status(status: &JobStatusResponse) {
    let job = &status.job;
    print_fields(&[
        ("ID", job.id.to_string()),
        ("Name", job.name.clone()),
        ("Type", job.job_type.to_string()),
        ("Priority", job.priority.to_string()),
        ("Status", if job.stop { "dead (stopped)".to_owned() } else { job.status.to_string() }),
        ("Version", job.version.to_string()),
        ("Submitted", format!("{} ({})", super::output::local_time(job.submit_time), ago(job.submit_time))),
    ]);

    println!();
    println!("Summary");
    let mut summary = table(&["Task Group", "Pending", "Running", "Complete", "Failed", "Lost", "Unknown"]);
    for (group, counts) in &status.summary {
        summary.add_row(vec![
            group.clone(),
            counts.pending.to_string(),
            counts.running.to_string(),
            counts.complete.to_string(),
            counts.failed.to_string(),
            counts.lost.to_string(),
            counts.unknown.to_string(),
        ]);
    }
    print_table(&summary);

    if let Some(eval) =
        status.evals.iter().find(|eval| !eval.failed_placements.is_empty() && eval.status != EvalStatus::Canceled)
    {
        println!();
        println!("Placement Failure (evaluation {})", eval.id.short());
        for (group, failure) in &eval.failed_placements {
            println!("  group {group:?}: {} could not be placed; {}", failure.num_unplaced, failure.summary());
        }
    }

    if let Some(deployment) = &status.deployment {
        println!();
        println!(
            "Latest Deployment {} (version {}): {} — {}",
            deployment.id.short(),
            deployment.job_version,
            deployment.status,
            deployment.status_description
        );
        let mut rows = table(&[
            "Task Group",
            "Desired",
            "Placed",
            "Healthy",
            "Unhealthy",
            "Canaries",
            "Promoted",
            "Progress Deadline",
        ]);
        for (name, group) in &deployment.groups {
            rows.add_row(vec![
                name.clone(),
                group.desired_total.to_string(),
                group.placed_allocs.to_string(),
                group.healthy_allocs.to_string(),
                group.unhealthy_allocs.to_string(),
                format!("{}/{}", group.placed_canaries.len(), group.desired_canaries),
                if group.desired_canaries == 0 { "-".to_owned() } else { group.promoted.to_string() },
                group.require_progress_by.map_or("-".to_owned(), super::output::local_time),
            ]);
        }
        print_table(&rows);
    }
    if !status.children.is_empty() {
        println!();
        println!("Launches");
        let mut rows = table(&["ID", "Status", "Running", "Complete", "Failed", "Launched"]);
        for child in status.children.iter().take(10) {
            rows.add_row(vec![
                child.id.to_string(),
                child.status.to_string(),
                child.allocs.running.to_string(),
                child.allocs.complete.to_string(),
                child.allocs.failed.to_string(),
                ago(child.submit_time),
            ]);
        }
        print_table(&rows);
    }
    println!();
    println!("Allocations");
    if status.allocs.is_empty() {
        println!("No allocations placed");
    } else {
        let mut allocs =
            table(&["ID", "Node", "Task Group", "Version", "Desired", "Status", "Restarts", "Created", "Modified"]);
        for alloc in &status.allocs {
            allocs.add_row(vec![
                alloc.id.short().to_owned(),
                alloc.node_name.clone(),
                alloc.group.clone(),
                alloc.job_version.to_string(),
                alloc.desired_status.to_string(),
                alloc.client_status.to_string(),
                alloc.restarts.to_string(),
                ago(alloc.create_time),
                ago(alloc.modify_time),
            ]);
        }
        print_table(&allocs);
    }

    let events = recent_task_events(&status.allocs, RECENT_TASK_EVENTS);
    if !events.is_empty() {
        println!();
        println!("Recent Task Events");
        let mut rows = table(&["Time", "Alloc", "Task", "Event", "Message"]);
        for ((alloc, task), event) in events {
            rows.add_row(vec![
                super::output::local_time(event.time),
                alloc.id.short().to_owned(),
                task.to_owned(),
                event.kind.to_string(),
                event.message.clone(),
            ]);
        }
        print_table(&rows);
    }
}

/// How many task events `drover job status` shows.
const RECENT_TASK_EVENTS: usize = 10;

/// The `limit` newest task events of the allocations, newest first, in
/// the order `drover alloc status` shows them.
fn recent_task_events(allocs: &[AllocListEntry], limit: usize) -> Vec<((&AllocListEntry, &str), &TaskEvent)> {
    let lists = allocs.iter().flat_map(|alloc| {
        alloc.task_states.iter().map(move |(task, state)| ((alloc, task.as_str()), state.events.as_slice()))
    });
    let mut events = newest_first(lists);
    events.truncate(limit);
    events
}

/// `drover job plan`'s status for an error, as `nomad job plan`'s.
fn plan_error() -> ExitCode {
    ExitCode::from(255)
}

/// `drover job plan`'s status: 1 when registering would change the job or
/// its allocations (like `nomad job plan`, for CI), 0 otherwise.
fn plan_status(plan: &PlanResponse) -> ExitCode {
    let places_or_stops = plan
        .changes
        .values()
        .any(|changes| changes.place + changes.stop + changes.in_place + changes.destructive + changes.migrate > 0);
    if plan.changed || places_or_stops { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Why a group cannot be placed, for `drover job plan`: "0 nodes match"
/// and the constraint that filtered every ready node, when one did;
/// otherwise the failure's summary.
fn placement_failure_line(group: &str, failure: &PlacementFailure) -> String {
    let candidates = failure.nodes_evaluated.saturating_sub(failure.nodes_not_ready + failure.nodes_wrong_zone);
    let filtered: u32 = failure.constraint_filtered.values().sum();
    if failure.nodes_evaluated > 0 && filtered > 0 && filtered >= candidates {
        let constraints: Vec<String> = failure
            .constraint_filtered
            .iter()
            .map(|(constraint, count)| {
                format!("constraint {constraint} filtered {count} of {candidates} ready node(s)")
            })
            .collect();
        return format!(
            "group {group:?}: 0 nodes match: {}; {} allocation(s) cannot be placed",
            constraints.join(", "),
            failure.num_unplaced
        );
    }
    format!("group {group:?}: {} cannot be placed: {}", failure.num_unplaced, failure.summary())
}

pub(crate) async fn job_plan(client: &Client, job: &Job, json: bool) -> anyhow::Result<ExitCode> {
    let plan = client.plan_job(job).await?;
    if json {
        print_json(&plan)?;
        return Ok(plan_status(&plan));
    }
    if plan.changed {
        println!("Job {:?} would be registered as version {}.", job.id.as_str(), plan.next_version);
    } else {
        println!("Job {:?} is unchanged (version {}).", job.id.as_str(), plan.next_version);
    }
    if !plan.diff.is_empty() {
        println!();
        println!("Changes to the job:");
        for line in &plan.diff {
            println!("  {line}");
        }
    }
    println!();
    println!("Scheduler dry-run:");
    let mut rows = table(&["Task Group", "Place", "Stop", "In-place", "Destructive", "Migrate", "Ignore"]);
    for (group, changes) in &plan.changes {
        rows.add_row(vec![
            group.clone(),
            changes.place.to_string(),
            changes.stop.to_string(),
            changes.in_place.to_string(),
            changes.destructive.to_string(),
            changes.migrate.to_string(),
            changes.ignore.to_string(),
        ]);
    }
    print_table(&rows);
    if plan.failed.is_empty() {
        println!("- All allocations can be placed.");
    } else {
        for (group, failure) in &plan.failed {
            println!("- {}", placement_failure_line(group, failure));
        }
    }
    Ok(plan_status(&plan))
}

/// `-meta key=value`.
fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value: write -meta commit=abc123")),
    }
}

/// What `job validate` says of `scaling` policies, which drover keeps and
/// never acts on: it has no autoscaler, so nothing is silently ignored.
fn scaling_notes(job: &Job) -> Vec<String> {
    job.groups
        .iter()
        .filter_map(|group| Some((group, group.scaling.as_ref()?)))
        .filter(|(_, scaling)| scaling.has_policy)
        .map(|(group, scaling)| {
            format!(
                "group {:?}: the scaling policy is kept but not acted on (drover has no autoscaler); \
                 change the count with drover job scale {} {} N, between {} and {}",
                group.name,
                job.id.as_str(),
                group.name,
                scaling.min,
                scaling.max
            )
        })
        .collect()
}

/// Follows the rollout of a version the servers registered for `job`
/// (a revert, a scale) unless `--detach`.
async fn follow_unless_detached(
    client: &Client,
    job: &str,
    registered: &drover_proto::api::RegisterJobResponse,
    detach: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    let current = client.job(job).await?;
    follow_with_progress(client, &current, registered, timeout, false).await
}

/// A dispatch's payload from `path`, `-` for standard input, refused past
/// 16 KiB before anything is sent.
fn read_payload(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let limit = drover_types::ParameterizedConfig::MAX_PAYLOAD_BYTES;
    let mut payload = Vec::new();
    let source = if path == Path::new("-") { "standard input".to_owned() } else { path.display().to_string() };
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("cannot open the payload file {source}"))?)
    };
    reader
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut payload)
        .with_context(|| format!("cannot read the payload from {source}"))?;
    if payload.len() > limit {
        anyhow::bail!(
            "the payload in {source} is larger than the limit of {limit} bytes (16 KiB): pass a path or a URL in -meta instead"
        );
    }
    Ok(payload)
}

async fn job_dispatch(
    client: &Client,
    parent_id: &str,
    request: &DispatchJobRequest,
    detach: bool,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dispatched = client.dispatch_job(parent_id, request).await.context("cannot dispatch the job")?;
    if json {
        print_json(&dispatched)?;
    } else {
        println!(
            "Dispatched job {:?} ({} bytes of payload); evaluation {}",
            dispatched.dispatched_job_id.as_str(),
            request.payload.len(),
            dispatched.eval_id.short()
        );
    }
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    let child = client.job(dispatched.dispatched_job_id.as_str()).await?;
    let registered = drover_proto::api::RegisterJobResponse {
        eval_id: dispatched.eval_id.clone(),
        job_version: child.version,
        changed: true,
        index: dispatched.index,
    };
    follow_with_progress(client, &child, &registered, timeout, json).await
}

async fn job_run(client: &Client, job: Job, detach: bool, timeout: Duration, json: bool) -> anyhow::Result<ExitCode> {
    let job_id = job.id.to_string();
    let registered = client.register_job(&job).await.context("cannot register the job")?;
    if json {
        print_json(&registered)?;
    } else {
        println!(
            "Job {job_id:?} registered as version {}{}; evaluation {}",
            registered.job_version,
            if registered.changed { "" } else { " (unchanged)" },
            registered.eval_id.short()
        );
    }
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    if job.is_parameterized() {
        if !json {
            println!(
                "Job {job_id:?} is parameterized: it runs nothing itself; launch it with `drover job dispatch {job_id} [-meta key=value]… [payload-file|-]`"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow_with_progress(client, &job, &registered, timeout, json).await
}

/// Follows a registration with a progress display; the exit code says how
/// it ended.
async fn follow_with_progress(
    client: &Client,
    job: &Job,
    registered: &drover_proto::api::RegisterJobResponse,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let job_id = job.id.to_string();
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(120));
    if json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let outcome =
        follow(client, job, registered.job_version, &registered.eval_id.to_string(), timeout, &progress).await;
    progress.finish_and_clear();
    match outcome {
        Ok(message) => {
            if !json {
                println!("{message}");
                println!("See `drover job status {job_id}` for details.");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(FollowError::Failed(message)) => {
            eprintln!("{message}");
            eprintln!("See `drover job status {job_id}` for details.");
            Ok(ExitCode::FAILURE)
        }
        Err(FollowError::Client(error)) => Err(error.into()),
    }
}

enum FollowError {
    Failed(String),
    Client(ClientError),
}

impl From<ClientError> for FollowError {
    fn from(error: ClientError) -> Self {
        FollowError::Client(error)
    }
}

/// Follows the registration until the new version's allocations run (batch:
/// run or complete), or something fails.
async fn follow(
    client: &Client,
    job: &Job,
    version: u64,
    eval_id: &str,
    timeout: Duration,
    progress: &ProgressBar,
) -> Result<String, FollowError> {
    let started = Instant::now();
    let mut index = 0;
    let mut watch = AllocWatch::new(job, version);
    loop {
        if started.elapsed() > timeout {
            return Err(FollowError::Failed(format!(
                "gave up waiting after {}; the job keeps deploying in the background",
                drover_types::DurationSpec(timeout)
            )));
        }
        let eval = client.evaluation(eval_id).await?;
        let (status, new_index) =
            client.job_status(job.id.as_str(), Some(Wait { index, timeout: Duration::from_secs(2) })).await?;
        index = new_index;
        match eval.status {
            EvalStatus::Pending | EvalStatus::Blocked => {
                progress.set_message(format!("evaluation {} {}", &eval_id[..8.min(eval_id.len())], eval.status));
                continue;
            }
            EvalStatus::Failed => {
                return Err(FollowError::Failed(format!("evaluation failed: {}", eval.status_description)));
            }
            EvalStatus::Complete | EvalStatus::Canceled => {}
        }
        if let Some((group, failure)) = eval.failed_placements.iter().next() {
            return Err(FollowError::Failed(format!(
                "{} allocation(s) of group {group:?} could not be placed: {}\nThe job stays registered and is placed when capacity appears.",
                failure.num_unplaced,
                failure.summary()
            )));
        }
        if let Some(deployment) = status.deployment.as_ref().filter(|deployment| deployment.job_version == version) {
            let summary = deployment_summary(deployment);
            match deployment.status {
                DeploymentStatus::Running => {
                    progress.set_message(format!("deployment {}: {summary}", deployment.id.short()));
                    continue;
                }
                DeploymentStatus::Blocked => {
                    return Ok(format!(
                        "Deployment {} is waiting for promotion ({summary}); check the canaries, then run `drover job promote {}`.",
                        deployment.id.short(),
                        job.id
                    ));
                }
                DeploymentStatus::Successful => {
                    return Ok(format!(
                        "Deployment {} of version {version} succeeded: {summary}.",
                        deployment.id.short()
                    ));
                }
                DeploymentStatus::Failed | DeploymentStatus::Cancelled => {
                    let mut message = format!(
                        "Deployment {} of version {version} {}: {}",
                        deployment.id.short(),
                        deployment.status,
                        deployment.status_description
                    );
                    if status.job.version > version {
                        message.push_str(&format!(
                            "\nThe job now runs version {}{}.",
                            status.job.version,
                            if deployment.groups.values().any(|group| group.auto_revert) {
                                " (automatic revert to the last stable version)"
                            } else {
                                ""
                            }
                        ));
                    }
                    return Err(FollowError::Failed(message));
                }
            }
        }
        match watch.observe(&status.allocs, Instant::now()) {
            Verdict::Waiting(message) => progress.set_message(message),
            Verdict::Done(message) => return Ok(message),
            Verdict::Failed(message) => return Err(FollowError::Failed(message)),
        }
    }
}

/// What the allocations of a new version say so far.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Not there yet; the progress line.
    Waiting(String),
    /// They run (batch: run or completed).
    Done(String),
    /// One failed, or restarted before it had run for the minimum
    /// healthy time.
    Failed(String),
}

/// Watches the allocations of a new version that no deployment judges (a
/// service group without an `update` block, a system job, a batch job).
/// Batch allocations are done once they run or have completed. Others are
/// done only once every one has run, without a restart, for the minimum
/// healthy time (the `update` block's `min_healthy_time`, else Nomad's
/// default of 10 s): a task that exits at once is running for a moment.
///
/// ```text
/// waiting ──all running──▶ steady ──min_healthy_time──▶ done
///    ▲                       │ an allocation restarts, fails
///    └──── new allocation ───┤ or stops running
///                            ▼
///                          failed   (also: any allocation failed)
/// ```
struct AllocWatch {
    job_type: JobType,
    version: u64,
    /// How many allocations the job wants (system jobs: as many as placed).
    num_wanted: usize,
    min_healthy_time: Duration,
    /// Since when every allocation has been running, with the restarts of
    /// each then.
    steady: Option<(Instant, BTreeMap<AllocId, u32>)>,
}

impl AllocWatch {
    fn new(job: &Job, version: u64) -> AllocWatch {
        let min_healthy_time = job
            .groups
            .iter()
            .map(|group| group.update.or(job.update).unwrap_or_default().min_healthy_time.get())
            .max()
            .unwrap_or_default();
        AllocWatch {
            job_type: job.job_type,
            version,
            num_wanted: job.groups.iter().map(|group| group.count as usize).sum(),
            min_healthy_time,
            steady: None,
        }
    }

    /// Judges the job's allocations as seen at `now`.
    fn observe(&mut self, allocs: &[AllocListEntry], now: Instant) -> Verdict {
        let version = self.version;
        let current: Vec<&AllocListEntry> = allocs
            .iter()
            .filter(|alloc| alloc.job_version == version && alloc.desired_status == AllocDesiredStatus::Run)
            .collect();
        if let Some(failed) = current.iter().find(|alloc| alloc.client_status == AllocClientStatus::Failed) {
            return Verdict::Failed(failure_report(failed));
        }
        if let Some((since, restarts_then)) = &self.steady
            && let Some(unsteady) = current.iter().find(|alloc| {
                restarts_then.get(&alloc.id).is_some_and(|restarts| {
                    alloc.restarts > *restarts || alloc.client_status != AllocClientStatus::Running
                })
            })
        {
            let what = if unsteady.restarts > restarts_then[&unsteady.id] { "restarted" } else { "stopped running" };
            return Verdict::Failed(format!(
                "allocation {} on node {} {what} {} after it was seen running; it must run {} without a restart (the minimum healthy time){}",
                unsteady.id.short(),
                unsteady.node_name,
                whole_seconds(now.duration_since(*since)),
                drover_types::DurationSpec(self.min_healthy_time),
                last_task_events(unsteady)
            ));
        }
        let expected = match self.job_type {
            JobType::System | JobType::SysBatch => current.len(),
            JobType::Service | JobType::Batch => self.num_wanted,
        };
        if expected == 0 && self.job_type.places_on_every_node() {
            return Verdict::Done(format!(
                "No node matches this {} job yet; it will run on matching nodes when they join.",
                self.job_type
            ));
        }
        let running = |alloc: &&&AllocListEntry| {
            if self.job_type.runs_to_completion() {
                matches!(alloc.client_status, AllocClientStatus::Running | AllocClientStatus::Complete)
            } else {
                alloc.client_status == AllocClientStatus::Running
            }
        };
        let num_running = current.iter().filter(running).count();
        let progress = format!("{num_running}/{expected} allocations running");
        if num_running < expected || expected == 0 {
            self.steady = None;
            return Verdict::Waiting(progress);
        }
        if self.job_type.runs_to_completion() {
            return Verdict::Done(format!("All {expected} allocation(s) of version {version} are running."));
        }
        let restarts_now: BTreeMap<AllocId, u32> =
            current.iter().map(|alloc| (alloc.id.clone(), alloc.restarts)).collect();
        let since = match &self.steady {
            // The same allocations as before (none restarted: checked above).
            Some((since, restarts_then)) if restarts_then.keys().eq(restarts_now.keys()) => *since,
            _ => {
                self.steady = Some((now, restarts_now));
                now
            }
        };
        let steady_for = now.duration_since(since);
        if steady_for >= self.min_healthy_time {
            return Verdict::Done(format!(
                "All {expected} allocation(s) of version {version} are running (for {} without a restart).",
                drover_types::DurationSpec(self.min_healthy_time)
            ));
        }
        Verdict::Waiting(format!(
            "{progress}; healthy after {} more without a restart",
            whole_seconds(self.min_healthy_time - steady_for)
        ))
    }
}

/// `7s` for 6.2 s: a wait for humans, rounded up.
fn whole_seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
}

/// "web: 2/5 healthy, 3 placed, canaries 1/1" for each group.
fn deployment_summary(deployment: &drover_types::Deployment) -> String {
    deployment
        .groups
        .iter()
        .map(|(name, group)| {
            let mut text = format!(
                "{name}: {}/{} healthy, {} placed",
                group.healthy_allocs, group.desired_total, group.placed_allocs
            );
            if group.unhealthy_allocs > 0 {
                text.push_str(&format!(", {} unhealthy", group.unhealthy_allocs));
            }
            if group.desired_canaries > 0 {
                text.push_str(&format!(
                    ", canaries {}/{}{}",
                    group.placed_canaries.len(),
                    group.desired_canaries,
                    if group.promoted { " (promoted)" } else { "" }
                ));
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn job_history(client: &Client, job_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let versions = client.job_versions(job_id).await?;
    if json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (position, job) in versions.iter().enumerate() {
        println!(
            "Version {}{}{}  submitted {} ({})",
            job.version,
            if job.stable { "  stable" } else { "" },
            if job.stop { "  stopped" } else { "" },
            super::output::local_time(job.submit_time),
            ago(job.submit_time)
        );
        match versions.get(position + 1) {
            Some(previous) => {
                let diff = drover_types::diff::job_diff(previous, job);
                if diff.is_empty() {
                    println!("  (no change to the specification)");
                }
                for line in diff {
                    println!("  {line}");
                }
            }
            None => println!("  (oldest version kept)"),
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn failure_report(alloc: &AllocListEntry) -> String {
    format!(
        "allocation {} on node {} failed: {}{}",
        alloc.id.short(),
        alloc.node_name,
        alloc.client_description,
        last_task_events(alloc)
    )
}

/// The last three events of each task, one indented line each.
fn last_task_events(alloc: &AllocListEntry) -> String {
    let mut lines = String::new();
    for (task, state) in &alloc.task_states {
        for event in state.events.iter().rev().take(3).collect::<Vec<_>>().into_iter().rev() {
            lines.push_str(&format!("\n  {task}: {}: {}", event.kind, event.message));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use drover_types::{TaskEventKind, TaskLifecycleState, TaskState, Timestamp};

    use super::*;

    fn job(hcl: &str) -> Job {
        let source = Source::new("test.nomad.hcl", hcl);
        drover_jobspec::parse_job(&source, &VarInputs::default()).unwrap()
    }

    #[test]
    fn validate_notes_a_scaling_policy_it_will_not_act_on() {
        let with_policy = job(r#"
job "web" {
  group "web" {
    count = 2
    scaling {
      min = 1
      max = 4
      policy { cooldown = "1m" }
    }
    task "web" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}
"#);
        assert_eq!(
            scaling_notes(&with_policy),
            ["group \"web\": the scaling policy is kept but not acted on (drover has no autoscaler); \
                 change the count with drover job scale web web N, between 1 and 4"]
        );
        let bounds_only = job(r#"
job "web" {
  group "web" {
    scaling { max = 4 }
    task "web" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}
"#);
        assert!(scaling_notes(&bounds_only).is_empty());
    }

    /// A service of two allocations that exits at once (`exit 3`), with no
    /// `update` block.
    const SERVICE: &str = r#"
job "web" {
  group "web" {
    count = 2
    task "web" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 3"]
      }
    }
  }
}
"#;

    fn event(millis: i64, kind: TaskEventKind) -> TaskEvent {
        TaskEvent {
            time: Timestamp::from_millis(millis),
            kind,
            message: kind.to_string(),
            exit_code: None,
            signal: None,
        }
    }

    fn alloc(id: &str, status: AllocClientStatus, restarts: u32, events: Vec<TaskEvent>) -> AllocListEntry {
        let task = TaskState { state: TaskLifecycleState::Running, restarts, events, ..TaskState::default() };
        AllocListEntry {
            id: AllocId::new(id),
            name: "web.web[0]".to_owned(),
            job_id: drover_types::JobId::new("web"),
            job_version: 0,
            group: "web".to_owned(),
            node_id: drover_types::NodeId::new("node-1"),
            node_name: "n1".to_owned(),
            desired_status: AllocDesiredStatus::Run,
            desired_description: String::new(),
            client_status: status,
            client_description: match status {
                AllocClientStatus::Failed => "task \"web\" failed".to_owned(),
                _ => "tasks are running".to_owned(),
            },
            restarts,
            task_states: BTreeMap::from([("web".to_owned(), task)]),
            healthy: None,
            checks: Vec::new(),
            create_time: Timestamp::from_millis(1),
            modify_time: Timestamp::from_millis(1),
            modify_index: 1,
        }
    }

    fn running(id: &str, restarts: u32) -> AllocListEntry {
        alloc(id, AllocClientStatus::Running, restarts, vec![event(5, TaskEventKind::Started)])
    }

    #[test]
    fn recent_task_events_show_a_failure_above_the_start_of_the_same_millisecond() {
        let events = vec![
            event(1_000, TaskEventKind::Received),
            event(1_005, TaskEventKind::Started),
            event(1_005, TaskEventKind::Terminated),
            event(1_005, TaskEventKind::NotRestarting),
        ];
        let failed = alloc("aaaaaaaa-1", AllocClientStatus::Failed, 0, events);
        let other = alloc("bbbbbbbb-2", AllocClientStatus::Running, 0, vec![event(1_003, TaskEventKind::Started)]);
        let allocs = [failed, other];
        let recent = recent_task_events(&allocs, 3);
        let shown: Vec<(&str, TaskEventKind)> =
            recent.iter().map(|((alloc, _), event)| (alloc.id.short(), event.kind)).collect();
        assert_eq!(
            shown,
            [
                ("aaaaaaaa", TaskEventKind::NotRestarting),
                ("aaaaaaaa", TaskEventKind::Terminated),
                ("aaaaaaaa", TaskEventKind::Started),
            ]
        );
    }

    #[test]
    fn the_job_list_counts_complete_allocations() {
        let mut batch = JobListEntry {
            id: drover_types::JobId::new("report"),
            name: "report".to_owned(),
            job_type: JobType::Batch,
            priority: 50,
            status: drover_types::JobStatus::Dead,
            version: 0,
            stop: false,
            submit_time: Timestamp::now(),
            allocs: drover_proto::api::AllocCounts::default(),
        };
        batch.allocs.add(AllocClientStatus::Complete);
        batch.allocs.add(AllocClientStatus::Complete);
        let row = job_list_row(&batch);
        assert_eq!(row.len(), JOB_LIST_HEADER.len());
        let column = |name: &str| row[JOB_LIST_HEADER.iter().position(|header| *header == name).unwrap()].as_str();
        assert_eq!(
            [column("Status"), column("Running"), column("Pending"), column("Complete"), column("Failed")],
            ["dead", "0", "0", "2", "0"]
        );
    }

    #[test]
    fn a_service_without_update_is_running_only_after_the_minimum_healthy_time() {
        let mut watch = AllocWatch::new(&job(SERVICE), 0);
        assert_eq!(watch.min_healthy_time, Duration::from_secs(10), "Nomad's default, as docs/jobs.md says");
        let start = Instant::now();
        let pending = alloc("a1", AllocClientStatus::Pending, 0, Vec::new());
        assert_eq!(
            watch.observe(&[pending, running("a2", 0)], start),
            Verdict::Waiting("1/2 allocations running".to_owned())
        );
        let both = [running("a1", 0), running("a2", 0)];
        assert_eq!(
            watch.observe(&both, start + Duration::from_millis(500)),
            Verdict::Waiting("2/2 allocations running; healthy after 10s more without a restart".to_owned())
        );
        assert!(matches!(watch.observe(&both, start + Duration::from_secs(6)), Verdict::Waiting(_)));
        let Verdict::Done(message) = watch.observe(&both, start + Duration::from_millis(10_500)) else {
            panic!("running for 10 s is running")
        };
        assert_eq!(message, "All 2 allocation(s) of version 0 are running (for 10s without a restart).");
    }

    #[test]
    fn a_service_that_restarts_within_the_minimum_healthy_time_fails() {
        let mut watch = AllocWatch::new(&job(SERVICE), 0);
        let start = Instant::now();
        assert!(matches!(watch.observe(&[running("a1", 0), running("a2", 0)], start), Verdict::Waiting(_)));
        // The task exited 3 and was started again: running, one restart more.
        let restarted = alloc(
            "a1",
            AllocClientStatus::Running,
            1,
            vec![
                event(5, TaskEventKind::Started),
                event(5, TaskEventKind::Terminated),
                event(6, TaskEventKind::Restarting),
                event(7, TaskEventKind::Started),
            ],
        );
        let Verdict::Failed(message) = watch.observe(&[restarted, running("a2", 0)], start + Duration::from_secs(2))
        else {
            panic!("a restart within the minimum healthy time is a failure")
        };
        assert!(
            message.starts_with("allocation a1 on node n1 restarted 2s after it was seen running; it must run 10s without a restart (the minimum healthy time)\n  web: "),
            "{message}"
        );
        assert!(message.ends_with("web: Started: Started"), "the last events are shown: {message}");

        // Waiting out a restart delay (running again later) is a failure too.
        let mut watch = AllocWatch::new(&job(SERVICE), 0);
        assert!(matches!(watch.observe(&[running("a1", 0), running("a2", 0)], start), Verdict::Waiting(_)));
        let waiting = alloc("a1", AllocClientStatus::Pending, 0, Vec::new());
        let Verdict::Failed(message) = watch.observe(&[waiting, running("a2", 0)], start + Duration::from_secs(1))
        else {
            panic!("an allocation that stops running within the minimum healthy time fails")
        };
        assert!(message.contains("a1 on node n1 stopped running 1s after"), "{message}");
    }

    #[test]
    fn a_failed_allocation_fails_at_once_and_a_batch_job_does_not_wait() {
        let start = Instant::now();
        let mut watch = AllocWatch::new(&job(SERVICE), 0);
        let failed = alloc("a1", AllocClientStatus::Failed, 0, vec![event(5, TaskEventKind::NotRestarting)]);
        assert_eq!(
            watch.observe(&[failed, running("a2", 0)], start),
            Verdict::Failed(
                "allocation a1 on node n1 failed: task \"web\" failed\n  web: Not Restarting: Not Restarting"
                    .to_owned()
            )
        );

        let mut batch =
            AllocWatch::new(&job(&SERVICE.replace("job \"web\" {", "job \"web\" {\n  type = \"batch\"")), 0);
        let complete = alloc("a1", AllocClientStatus::Complete, 0, Vec::new());
        assert_eq!(
            batch.observe(&[complete, running("a2", 0)], start),
            Verdict::Done("All 2 allocation(s) of version 0 are running.".to_owned())
        );
    }

    #[test]
    fn the_update_blocks_minimum_healthy_time_is_used_and_a_new_allocation_starts_the_wait_again() {
        let system = SERVICE
            .replace(
                "job \"web\" {",
                "job \"web\" {\n  type = \"system\"\n  update {\n    min_healthy_time = \"3s\"\n  }",
            )
            .replace("count = 2", "");
        let mut watch = AllocWatch::new(&job(&system), 0);
        assert_eq!(watch.min_healthy_time, Duration::from_secs(3));
        let start = Instant::now();
        assert!(matches!(watch.observe(&[running("a1", 0)], start), Verdict::Waiting(_)));
        // A node joins at 2 s: its allocation must run 3 s too.
        let two = [running("a1", 0), running("a2", 0)];
        assert!(matches!(watch.observe(&two, start + Duration::from_secs(2)), Verdict::Waiting(_)));
        assert!(matches!(watch.observe(&two, start + Duration::from_secs(4)), Verdict::Waiting(_)));
        assert!(matches!(watch.observe(&two, start + Duration::from_secs(5)), Verdict::Done(_)));
    }
}
