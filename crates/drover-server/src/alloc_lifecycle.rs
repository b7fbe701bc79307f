//! An operator's hands on running allocations, as Nomad's `alloc restart`,
//! `alloc signal`, `alloc exec`, `alloc stop` and `job restart`.
//!
//! Restart, signal and exec are requests to the agent that runs the
//! allocation, over its session (see `drover_proto::session`); stop is a
//! Raft command: the allocation is marked for migration and an evaluation
//! lets the scheduler stop it and place its replacement, as a drain does.
//!
//! A job restart is rolling: per group, batches of the `update` block's
//! `max_parallel`, each batch healthy again for `min_healthy_time` before
//! the next starts, within `healthy_deadline`. Healthy is the `update`
//! block's `health_check`: `checks` (the default) wants every restarted
//! task running and every check of the allocation passing, as run since
//! the restart; `task_states` (and `manual`) only the tasks running.
//!
//! ```text
//!  batch ──restart──▶ waiting ──(healthy, without a break, for min_healthy_time)──▶ next batch
//!                        └──(an allocation failed, or healthy_deadline passed)──▶ stop, error
//! ```
//!
//! The decisions ([`restart_batches`], [`batch_progress`]) are pure; the
//! async shell sends the requests and watches the state.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_proto::lifecycle::{
    AllocActionResponse, AllocExecRequest, AllocExecResponse, AllocStopResponse, JobRestartResponse,
};
use drover_proto::paths;
use drover_proto::session::{ForwardedAgentRequest, RequestBody, ResponseBody};
use drover_state::{Command, State};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, CheckHealth, CodedError, DesiredTransition,
    DurationSpec, ErrorCode, EvalTrigger, Evaluation, HealthCheckMode, Job, JobId, NodeId, TaskLifecycleState,
    Timestamp,
};

use crate::ids::new_eval_id;
use crate::sessions::Retry;
use crate::{Result, Server};

/// Why [`Server::ask_local_agent`] did not ask: the agent is connected to
/// another server, or to none.
pub const NOT_CONNECTED_HERE: &str = "the agent is not connected to this server";

/// How long a restart or signal waits for the agent's answer.
const AGENT_PATIENCE: Duration = Duration::from_secs(30);

/// A command in a task runs this long at most unless asked otherwise.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest deadline of a command in a task.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Output kept per stream unless asked otherwise, and at most.
const DEFAULT_EXEC_OUTPUT_BYTES: u64 = 1024 * 1024;
const MAX_EXEC_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Batches of allocations restarted together: per group in the job's order,
/// `max_parallel` at a time (at least one), in allocation-name order.
pub fn restart_batches(job: &Job, allocs: &[&Allocation]) -> Vec<Vec<AllocId>> {
    let mut batches = Vec::new();
    for group in &job.groups {
        let max_parallel = job.update_for(group).map_or(1, |update| update.max_parallel.max(1)) as usize;
        let mut members: Vec<&&Allocation> = allocs.iter().filter(|alloc| alloc.group == group.name).collect();
        members.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
        for chunk in members.chunks(max_parallel) {
            batches.push(chunk.iter().map(|alloc| alloc.id.clone()).collect());
        }
    }
    batches
}

/// Where a restarted batch is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchProgress {
    /// Every allocation is back and has been up for `min_healthy_time`.
    Healthy,
    /// Not yet; look again at the latest by `recheck_at` (a healthy time
    /// running out) or when the state changes. `waiting_for` says what is
    /// not healthy yet (for the error at the deadline).
    Waiting { recheck_at: Option<Timestamp>, waiting_for: String },
    /// An allocation failed or went away: stop the restart.
    Failed { reason: String },
}

/// What a restarted batch waits for.
#[derive(Clone, Debug)]
pub struct BatchWatch {
    /// The allocations restarted, with their restarted tasks' restart
    /// counts before.
    pub before: BTreeMap<AllocId, BTreeMap<String, u32>>,
    /// When the restarts were asked for.
    pub restarted_at: Timestamp,
    /// How long each must be healthy without a break.
    pub min_healthy_time: Duration,
    /// Whether healthy needs the allocation's checks passing
    /// (`health_check = "checks"`).
    pub checks: bool,
    /// Since when each allocation has been seen healthy (its tasks back,
    /// its checks passing): kept from one look to the next, forgotten when
    /// it is seen unhealthy.
    pub healthy_since: BTreeMap<AllocId, Timestamp>,
}

/// Whether the allocations of a batch are healthy again at `now`.
pub fn batch_progress(state: &State, watch: &mut BatchWatch, now: Timestamp) -> BatchProgress {
    let mut recheck_at: Option<Timestamp> = None;
    let mut waiting_for: Vec<String> = Vec::new();
    for (alloc_id, counts) in &watch.before {
        let Some(alloc) = state.alloc(alloc_id) else {
            return BatchProgress::Failed { reason: format!("allocation {} went away", alloc_id.short()) };
        };
        if alloc.client_status.is_terminal() || alloc.desired_status != AllocDesiredStatus::Run {
            return BatchProgress::Failed {
                reason: format!(
                    "allocation {} is {} after its restart ({})",
                    alloc_id.short(),
                    alloc.client_status,
                    alloc.client_description
                ),
            };
        }
        let mut back_since: Option<Timestamp> = None;
        let mut unhealthy: Option<String> = None;
        for (task, restarts) in counts {
            let state = alloc.task_states.get(task);
            let up_since = state
                .filter(|state| state.restarts > *restarts && state.state == TaskLifecycleState::Running)
                .and_then(|state| state.started_at)
                .filter(|started| *started >= watch.restarted_at);
            match up_since {
                Some(started) => back_since = Some(back_since.map_or(started, |latest| latest.max(started))),
                None => {
                    unhealthy = Some(format!("task {task:?} of allocation {} is not running again", alloc.id.short()))
                }
            }
        }
        if unhealthy.is_none() && watch.checks {
            let since = back_since.unwrap_or(watch.restarted_at);
            unhealthy = alloc.checks.iter().find_map(|check| {
                let passing = check.status == CheckHealth::Passing && check.checked_at >= since;
                (!passing).then(|| {
                    // Its output on one line, as much as a message takes.
                    let lines: Vec<&str> =
                        check.output.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
                    let joined = lines.join(" / ");
                    let output = drover_types::text::truncated(&joined, 200);
                    let status = if check.checked_at >= since {
                        format!("is {}", check.status)
                    } else {
                        "has not run since the restart".to_owned()
                    };
                    format!(
                        "check {:?} of task {:?} of allocation {} {status}{}",
                        check.name,
                        check.task,
                        alloc.id.short(),
                        if output.is_empty() { String::new() } else { format!(": {output}") }
                    )
                })
            });
        }
        if let Some(reason) = unhealthy {
            watch.healthy_since.remove(alloc_id);
            waiting_for.push(reason);
            continue;
        }
        // A task restarted between two looks starts the time again.
        let seen = watch.healthy_since.entry(alloc_id.clone()).or_insert(now);
        if let Some(back) = back_since
            && back > *seen
        {
            *seen = back;
        }
        let healthy_since = *seen;
        let healthy_at = healthy_since.plus(watch.min_healthy_time);
        if healthy_at > now {
            waiting_for.push(format!(
                "allocation {} is healthy, not yet for min_healthy_time {}",
                alloc.id.short(),
                DurationSpec(watch.min_healthy_time)
            ));
            recheck_at = Some(recheck_at.map_or(healthy_at, |earliest| earliest.min(healthy_at)));
        }
    }
    if waiting_for.is_empty() {
        BatchProgress::Healthy
    } else {
        BatchProgress::Waiting { recheck_at, waiting_for: waiting_for.join("; ") }
    }
}

/// Refuses an allocation that does not run.
fn require_running(alloc: &Allocation) -> Result<()> {
    if alloc.desired_status != AllocDesiredStatus::Run || alloc.client_status != AllocClientStatus::Running {
        return Err(CodedError::conflict(format!(
            "allocation {} is not running (desired {}, status {}: {}); see `drover alloc status {}`",
            alloc.id.short(),
            alloc.desired_status,
            alloc.client_status,
            alloc.client_description,
            alloc.id.short()
        )));
    }
    Ok(())
}

/// The task `requested` names, checked against the allocation's group; or
/// with `None`, the group's only task (`single`) or no task (every one).
pub fn check_task(state: &State, alloc: &Allocation, requested: Option<&str>, single: bool) -> Result<Option<String>> {
    let group = state.job_version(&alloc.job_id, alloc.job_version).and_then(|job| job.group(&alloc.group).cloned());
    let tasks: Vec<String> = match &group {
        Some(group) => group.tasks.iter().map(|task| task.name.clone()).collect(),
        None => alloc.task_states.keys().cloned().collect(),
    };
    match requested {
        Some(task) if tasks.iter().any(|known| known == task) => Ok(Some(task.to_owned())),
        Some(task) => Err(CodedError::not_found("task", format!("{}/{task}", alloc.id.short())).with_hint(format!(
            "allocation {} has the tasks {}",
            alloc.id.short(),
            tasks.join(", ")
        ))),
        None if !single => Ok(None),
        None => match tasks.as_slice() {
            [only] => Ok(Some(only.clone())),
            several => Err(CodedError::invalid(format!(
                "allocation {} has several tasks ({}); choose one with -task NAME",
                alloc.id.short(),
                several.join(", ")
            ))),
        },
    }
}

impl Server {
    /// Sends an operator request to the agent of `alloc`'s node and returns
    /// its one answer; an `End` with an error becomes that error. An agent
    /// connected to another server is asked through that server.
    async fn ask_alloc_agent(&self, alloc: &Allocation, body: RequestBody, patience: Duration) -> Result<ResponseBody> {
        match self.ask_local_agent(&alloc.node_id, body.clone(), patience).await {
            Err(error) if error.code == ErrorCode::Unavailable && error.message == NOT_CONNECTED_HERE => {}
            answered => return answered,
        }
        let forwarded = ForwardedAgentRequest {
            node_id: alloc.node_id.clone(),
            body,
            patience_ms: u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
        };
        let not_found = CodedError::new(
            ErrorCode::Unavailable,
            format!(
                "the agent of node {} (running allocation {}) is not connected to any server; retry once it \
                 reconnects (see `drover node status {}`)",
                alloc.node_name,
                alloc.id.short(),
                alloc.node_name
            ),
        );
        let response = self
            .ask_peers_in_turn(
                |client, base| {
                    client
                        .post(format!("{base}{}", paths::INTERNAL_AGENT_REQUEST))
                        .json(&forwarded)
                        .timeout(patience + Duration::from_secs(5))
                },
                |error| error.code == ErrorCode::Unavailable && error.message == NOT_CONNECTED_HERE,
                Retry::OnlyIfNeverSent,
                not_found,
            )
            .await?;
        response.json().await.map_err(|error| {
            CodedError::new(ErrorCode::Unavailable, format!("the answer of the agent's server was cut: {error}"))
        })
    }

    /// Sends an operator request to the agent of `node_id` if it is
    /// connected to this server, and returns its one answer; an `End` with
    /// an error becomes that error. An agent not connected here is the
    /// error `Unavailable` [`NOT_CONNECTED_HERE`].
    pub async fn ask_local_agent(
        &self,
        node_id: &NodeId,
        body: RequestBody,
        patience: Duration,
    ) -> Result<ResponseBody> {
        if !self.sessions().is_connected(node_id).await {
            return Err(CodedError::new(ErrorCode::Unavailable, NOT_CONNECTED_HERE));
        }
        // Connected: an old agent's protocol or a congested session is
        // said as it is.
        let (request_id, mut answers) = self.request_agent(node_id, body).await?;
        let name = self.state().node(node_id).map_or_else(|| node_id.to_string(), |node| node.name.clone());
        match tokio::time::timeout(patience, answers.recv()).await {
            Err(_) => {
                self.cancel_agent_request(node_id, request_id).await;
                Err(CodedError::new(
                    ErrorCode::Timeout,
                    format!("the agent of node {name} gave no answer within {}", DurationSpec(patience)),
                ))
            }
            Ok(None) => Err(CodedError::new(
                ErrorCode::Unavailable,
                format!("the session of node {name} closed before its agent answered"),
            )),
            Ok(Some(ResponseBody::End { error: Some(error) })) => Err(error),
            Ok(Some(answer)) => Ok(answer),
        }
    }

    /// Restarts `task` of `alloc` (`None`: every running task) in place.
    pub async fn restart_alloc(&self, alloc: &Allocation, task: Option<String>) -> Result<AllocActionResponse> {
        require_running(alloc)?;
        let body = RequestBody::RestartTasks { alloc_id: alloc.id.clone(), task };
        self.tasks_reached(alloc, body).await
    }

    /// Sends `signal` to `task` of `alloc` (`None`: every running task).
    pub async fn signal_alloc(
        &self,
        alloc: &Allocation,
        task: Option<String>,
        signal: String,
    ) -> Result<AllocActionResponse> {
        require_running(alloc)?;
        if signal.trim().is_empty() {
            return Err(CodedError::invalid("no signal given: drover alloc signal -s SIGNAL ALLOC [TASK]"));
        }
        let body = RequestBody::SignalTasks { alloc_id: alloc.id.clone(), task, signal };
        self.tasks_reached(alloc, body).await
    }

    async fn tasks_reached(&self, alloc: &Allocation, body: RequestBody) -> Result<AllocActionResponse> {
        match self.ask_alloc_agent(alloc, body, AGENT_PATIENCE).await? {
            ResponseBody::TasksReached { tasks } => Ok(AllocActionResponse { alloc_id: alloc.id.clone(), tasks }),
            other => Err(CodedError::internal(format!(
                "the agent answered with {other:?}; is it the same drover version as the servers?"
            ))),
        }
    }

    /// Runs a command in `task` of `alloc`, with the task's environment,
    /// working directory and user; `root_allowed` says whether the caller
    /// may run it when that user is root.
    pub async fn exec_in_alloc(
        &self,
        alloc: &Allocation,
        task: String,
        request: &AllocExecRequest,
        root_allowed: bool,
    ) -> Result<AllocExecResponse> {
        if !self.config().exec_enabled {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                "exec is disabled on this server (it was started with --disable-exec)",
            ));
        }
        require_running(alloc)?;
        if request.command.first().is_none_or(|program| program.trim().is_empty()) {
            return Err(CodedError::invalid("no command given: drover alloc exec ALLOC [-task TASK] -- COMMAND ARGS…"));
        }
        let timeout = request.timeout_ms.map_or(DEFAULT_EXEC_TIMEOUT, Duration::from_millis);
        if timeout.is_zero() || timeout > MAX_EXEC_TIMEOUT {
            return Err(CodedError::invalid("the timeout must be more than 0 and at most 24h"));
        }
        let max_output_bytes = request.max_output_bytes.unwrap_or(DEFAULT_EXEC_OUTPUT_BYTES);
        if max_output_bytes > MAX_EXEC_OUTPUT_BYTES {
            return Err(CodedError::invalid("at most 16 MiB of output per stream can be kept"));
        }
        if request.stdin.len() > drover_proto::api::MAX_EXEC_STDIN_BYTES {
            return Err(CodedError::invalid(format!(
                "the command's stdin is {} bytes; at most {} MiB can be sent",
                request.stdin.len(),
                drover_proto::api::MAX_EXEC_STDIN_BYTES / 1024 / 1024
            )));
        }
        let body = RequestBody::ExecInTask {
            alloc_id: alloc.id.clone(),
            task: task.clone(),
            command: request.command.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            max_output_bytes,
            root_allowed,
            stdin: request.stdin.clone(),
        };
        // The agent kills the command at its deadline; leave it time to say so.
        match self.ask_alloc_agent(alloc, body, timeout + AGENT_PATIENCE).await? {
            ResponseBody::Exited { exit_code, error, timed_out, stdout, stderr, truncated } => Ok(AllocExecResponse {
                alloc_id: alloc.id.clone(),
                task,
                exit_code,
                error,
                timed_out,
                stdout,
                stderr,
                truncated,
            }),
            other => Err(CodedError::internal(format!(
                "the agent answered with {other:?}; is it the same drover version as the servers?"
            ))),
        }
    }

    /// Stops `alloc` and has the scheduler replace it (Nomad's `alloc
    /// stop`): the allocation is marked for migration, and an evaluation
    /// stops it and places its replacement.
    pub async fn stop_alloc(&self, alloc: &Allocation) -> Result<AllocStopResponse> {
        if alloc.desired_status != AllocDesiredStatus::Run || alloc.client_status.is_terminal() {
            return Err(CodedError::conflict(format!(
                "allocation {} is already stopped (desired {}, status {}); see `drover alloc status {}`",
                alloc.id.short(),
                alloc.desired_status,
                alloc.client_status,
                alloc.id.short()
            )));
        }
        let now = Timestamp::now();
        let state = self.state();
        let priority = state.job(&alloc.job_id).map_or(50, |job| job.priority);
        let eval = Evaluation::new(new_eval_id(), alloc.job_id.clone(), priority, EvalTrigger::AllocStop, now);
        let eval_id = eval.id.clone();
        let transition = DesiredTransition { migrate: true, ..alloc.desired_transition };
        self.propose(Command::UpdateAllocDesiredTransitions {
            transitions: vec![(alloc.id.clone(), transition)],
            evals: vec![eval],
            now,
        })
        .await?;
        Ok(AllocStopResponse { alloc_id: alloc.id.clone(), eval_id })
    }

    /// Restarts every running allocation of `job_id` in rolling batches
    /// (`task`: only that task of each), returning once the last batch is
    /// healthy again; stops at the first batch that is not.
    pub async fn restart_job(&self, job_id: &JobId, task: Option<String>) -> Result<JobRestartResponse> {
        let state = self.consistent_state().await?;
        let job = state.job(job_id).ok_or_else(|| CodedError::not_found("job", job_id))?.clone();
        let running: Vec<&Allocation> = state
            .allocs_for_job(job_id)
            .map(AsRef::as_ref)
            .filter(|alloc| alloc.desired_status == AllocDesiredStatus::Run)
            .filter(|alloc| alloc.client_status == AllocClientStatus::Running)
            .collect();
        if running.is_empty() {
            return Err(CodedError::conflict(format!(
                "job {job_id:?} has no running allocation to restart; see `drover job status {job_id}`"
            )));
        }
        if let Some(task) = &task
            && !job.groups.iter().any(|group| group.tasks.iter().any(|known| &known.name == task))
        {
            return Err(CodedError::not_found("task", format!("{job_id}/{task}")));
        }
        let batches = restart_batches(&job, &running);
        drop(state);
        let mut response = JobRestartResponse::default();
        for (number, batch) in batches.iter().enumerate() {
            self.restart_batch(&job, batch, task.as_deref()).await.map_err(|error| {
                let left: usize = batches[number + 1..].iter().map(Vec::len).sum();
                CodedError::new(
                    error.code,
                    format!(
                        "batch {} of {} ({}) did not come back: {}; {left} allocation(s) were not restarted",
                        number + 1,
                        batches.len(),
                        batch.iter().map(|id| id.short()).collect::<Vec<_>>().join(", "),
                        error.message
                    ),
                )
            })?;
            response.max_restarting_at_once = response.max_restarting_at_once.max(batch.len());
            response.batches.push(batch.clone());
        }
        Ok(response)
    }

    /// Restarts one batch and waits until it is healthy again.
    async fn restart_batch(&self, job: &Job, batch: &[AllocId], task: Option<&str>) -> Result<()> {
        let state = self.state();
        let restarted_at = Timestamp::now();
        let mut before: BTreeMap<AllocId, BTreeMap<String, u32>> = BTreeMap::new();
        let mut update = None;
        for alloc_id in batch {
            let alloc = state.alloc(alloc_id).ok_or_else(|| CodedError::not_found("allocation", alloc_id))?;
            let group = job.group(&alloc.group);
            update = update.or_else(|| group.and_then(|group| job.update_for(group)).cloned());
            let task_here = task.filter(|name| group.is_none_or(|group| group.tasks.iter().any(|t| &t.name == name)));
            let reached = self.restart_alloc(alloc, task_here.map(str::to_owned)).await?;
            let counts = reached
                .tasks
                .iter()
                .map(|name| (name.clone(), alloc.task_states.get(name).map_or(0, |state| state.restarts)))
                .collect();
            before.insert(alloc_id.clone(), counts);
        }
        let min_healthy_time = update.as_ref().map_or(Duration::ZERO, |update| update.min_healthy_time.0);
        let healthy_deadline =
            update.as_ref().map_or(Duration::from_secs(300), |update| update.healthy_deadline.0.max(min_healthy_time));
        let deadline = restarted_at.plus(healthy_deadline);
        let mut watch = BatchWatch {
            before,
            restarted_at,
            min_healthy_time,
            // Nomad's default without an update block is checks too.
            checks: update.as_ref().is_none_or(|update| update.health_check == HealthCheckMode::Checks),
            healthy_since: BTreeMap::new(),
        };
        loop {
            let state = self.state();
            let index = state.table_indexes().allocs;
            let now = Timestamp::now();
            let (recheck_at, waiting_for) = match batch_progress(&state, &mut watch, now) {
                BatchProgress::Healthy => return Ok(()),
                BatchProgress::Failed { reason } => return Err(CodedError::conflict(reason)),
                BatchProgress::Waiting { recheck_at, waiting_for } => (recheck_at, waiting_for),
            };
            if now >= deadline {
                return Err(CodedError::new(
                    ErrorCode::Timeout,
                    format!(
                        "not healthy again within the healthy_deadline of {}: {waiting_for}",
                        DurationSpec(healthy_deadline)
                    ),
                ));
            }
            let wake_at = recheck_at.map_or(deadline, |at| at.min(deadline));
            self.wait_for_change(index, wake_at.since(now), |state| state.table_indexes().allocs).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::leader::test_support::{Cluster, at};
    use drover_types::fixtures;

    /// An agent's report of allocation `a1`: its task running with
    /// `restarts`, started at `started`, and its one check.
    fn report(cluster: &mut Cluster, task: &str, restarts: u32, started: i64, check: (CheckHealth, i64)) {
        let state = drover_types::TaskState {
            state: TaskLifecycleState::Running,
            restarts,
            started_at: Some(at(started)),
            ..Default::default()
        };
        let check = drover_types::CheckStatus {
            task: task.to_owned(),
            name: "http".to_owned(),
            status: check.0,
            output: "HTTP 503".to_owned(),
            checked_at: at(check.1),
        };
        let update = drover_types::ClientAllocUpdate {
            alloc_id: AllocId::new("a1"),
            client_status: AllocClientStatus::Running,
            client_description: String::new(),
            task_states: BTreeMap::from([(task.to_owned(), state)]),
            checks: vec![check],
            deployment_health: None,
        };
        cluster.apply(&Command::UpdateAllocsFromClient { updates: vec![update], evals: Vec::new(), now: at(started) });
    }

    fn waiting_for(progress: BatchProgress) -> String {
        match progress {
            BatchProgress::Waiting { waiting_for, .. } => waiting_for,
            other => panic!("not waiting: {other:?}"),
        }
    }

    #[test]
    fn with_checks_a_batch_is_healthy_once_its_checks_pass_since_the_restart_for_min_healthy_time_unbroken() {
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        let job = fixtures::service_job("web", 1);
        let (group, task) = (job.groups[0].name.clone(), job.groups[0].tasks[0].name.clone());
        cluster.register(job);
        cluster.place(vec![fixtures::alloc("a1", "web", &group, &node)], None);
        report(&mut cluster, &task, 0, 0, (CheckHealth::Passing, 9));
        let mut watch = BatchWatch {
            before: BTreeMap::from([(AllocId::new("a1"), BTreeMap::from([(task.clone(), 0)]))]),
            restarted_at: at(10),
            min_healthy_time: Duration::from_secs(5),
            checks: true,
            healthy_since: BTreeMap::new(),
        };
        let mut look = |cluster: &Cluster, now: i64| batch_progress(&cluster.state, &mut watch, at(now));
        assert!(waiting_for(look(&cluster, 11)).contains("is not running again"));
        // Back, but its check passed before the restart only.
        report(&mut cluster, &task, 1, 12, (CheckHealth::Passing, 9));
        assert!(waiting_for(look(&cluster, 12)).contains("has not run since the restart"));
        report(&mut cluster, &task, 1, 12, (CheckHealth::Critical, 13));
        let why = waiting_for(look(&cluster, 13));
        assert!(
            why.contains(&format!("check \"http\" of task {task:?} of allocation a1 is critical: HTTP 503")),
            "{why}"
        );
        // Passing from 14: healthy at 19, unless it breaks.
        report(&mut cluster, &task, 1, 12, (CheckHealth::Passing, 14));
        assert_eq!(
            look(&cluster, 14),
            BatchProgress::Waiting {
                recheck_at: Some(at(19)),
                waiting_for: "allocation a1 is healthy, not yet for min_healthy_time 5s".to_owned()
            }
        );
        report(&mut cluster, &task, 1, 12, (CheckHealth::Critical, 16));
        assert!(waiting_for(look(&cluster, 16)).contains("is critical"));
        report(&mut cluster, &task, 1, 12, (CheckHealth::Passing, 17));
        assert!(matches!(look(&cluster, 17), BatchProgress::Waiting { recheck_at: Some(time), .. } if time == at(22)));
        assert!(matches!(look(&cluster, 21), BatchProgress::Waiting { .. }));
        assert_eq!(look(&cluster, 22), BatchProgress::Healthy);

        // A crash and restart between two looks (back at 24, its check
        // passing at 25) starts min_healthy_time again from 24.
        report(&mut cluster, &task, 2, 24, (CheckHealth::Passing, 25));
        assert!(matches!(look(&cluster, 25), BatchProgress::Waiting { recheck_at: Some(time), .. } if time == at(29)));
        assert_eq!(look(&cluster, 29), BatchProgress::Healthy);

        // health_check = "task_states": the failing check does not matter.
        report(&mut cluster, &task, 2, 24, (CheckHealth::Critical, 30));
        watch.checks = false;
        watch.healthy_since.clear();
        assert!(matches!(batch_progress(&cluster.state, &mut watch, at(30)), BatchProgress::Waiting { .. }));
        assert_eq!(batch_progress(&cluster.state, &mut watch, at(35)), BatchProgress::Healthy);
    }

    #[test]
    fn batches_follow_max_parallel_per_group() {
        let mut job = fixtures::service_job("web", 5);
        job.groups[0].update = Some(drover_types::UpdateStrategy { max_parallel: 2, ..Default::default() });
        let node = fixtures::node("n1");
        let allocs: Vec<Allocation> = (0..5)
            .map(|index| {
                let mut alloc = fixtures::alloc(&format!("a{index}"), "web", &job.groups[0].name, &node.id);
                alloc.name = format!("web.{}[{index}]", job.groups[0].name);
                alloc
            })
            .collect();
        let refs: Vec<&Allocation> = allocs.iter().collect();
        let sizes: Vec<usize> = restart_batches(&job, &refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
    }
}
