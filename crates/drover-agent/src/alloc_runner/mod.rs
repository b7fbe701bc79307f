//! The allocation runner: one allocation's tasks on this node.
//!
//! A runner starts a task runner ([`crate::task`]) for every task of its
//! allocation, passes on the manager's changes (a new job version, a stop,
//! retirement, the agent detaching), and turns the task runners' reports
//! into the allocation's client status (Nomad's rules: any task failed →
//! failed, and its siblings are stopped; all tasks dead → complete; all
//! running → running). It publishes a [`ClientAllocUpdate`] whenever
//! anything in it changed, and keeps the latest for the manager to resend
//! after a reconnect.
//!
//! The runner's directory holds its allocation's spec (`alloc.json`, kept
//! up to date here so that a restarted agent restores the runner), the
//! shared `alloc/` directory with the tasks' logs, and one directory per
//! task. Its health side, the checks and the deployment health decision,
//! is [`health`]; the order in which tasks start and stop (Nomad's
//! `lifecycle` hooks) is decided by [`lifecycle`].

mod health;
mod lifecycle;
#[cfg(test)]
mod lifecycle_tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use drover_executor::ExecDriver;
use drover_proto::session::AllocAssignment;
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, ClientAllocUpdate, CodedError, Node, TaskState, Timestamp,
};

use crate::alloc_control::{TaskCondition, TaskExecSpec, choose_tasks};
use crate::deployment_health::load_decision;
use crate::probe::{Probe, ProbeReport, ProbeSet};
use crate::task::{TaskContext, TaskControl, TaskReport, run_task};
use health::AllocHealth;
use lifecycle::{TaskPhase, next_steps};

/// Version of `alloc.json`.
pub(crate) const ALLOC_FILE_VERSION: u32 = 1;

/// `alloc.json`: the allocation's spec as last received.
#[derive(Serialize, Deserialize)]
pub(crate) struct AllocFile {
    pub(crate) version: u32,
    pub(crate) assignment: AllocAssignment,
}

/// What the manager tells a runner.
pub(crate) enum RunnerControl {
    Update(Box<AllocAssignment>),
    /// The servers no longer list the allocation: stop it and exit.
    Retire,
    /// Leave the tasks running and exit (agent shutdown).
    Detach,
    /// Stop every task, then answer (dev-mode shutdown).
    StopAll(oneshot::Sender<()>),
    /// An operator's request (`drover alloc restart|signal|exec`), see
    /// [`crate::alloc_control`].
    Operator(OperatorRequest),
}

/// What an operator asks of an allocation's tasks; each answers on `reply`.
pub(crate) enum OperatorRequest {
    /// Restart `task` (`None`: every running task) in place.
    Restart { task: Option<String>, reply: oneshot::Sender<Result<Vec<String>, CodedError>> },
    /// Send `signal` to `task` (`None`: every running task).
    Signal {
        task: Option<String>,
        signal: drover_executor::Signal,
        reply: oneshot::Sender<Result<Vec<String>, CodedError>>,
    },
    /// Where and as whom a command runs in `task`.
    ExecSpec { task: String, reply: oneshot::Sender<Result<TaskExecSpec, CodedError>> },
}

/// The manager's hold on a running allocation runner.
pub(crate) struct RunnerHandle {
    pub(crate) control: mpsc::UnboundedSender<RunnerControl>,
    pub(crate) join: JoinHandle<()>,
    /// The runner's latest update, to resend after connecting.
    pub(crate) latest: Arc<std::sync::Mutex<Option<ClientAllocUpdate>>>,
}

/// Runs one allocation: its tasks, their reports, its updates.
pub(crate) struct AllocRunner {
    dir: PathBuf,
    driver: ExecDriver,
    node: Option<Node>,
    updates: mpsc::UnboundedSender<ClientAllocUpdate>,
    latest: Arc<std::sync::Mutex<Option<ClientAllocUpdate>>>,
}

/// What a runner knows of one of its task runners.
struct TaskEntry {
    control: mpsc::UnboundedSender<TaskControl>,
    state: TaskState,
    finished: bool,
    /// Where the task is in the group's lifecycle order.
    phase: TaskPhase,
    /// A stop was sent to its runner.
    stop_sent: bool,
}

/// A task runner not started yet (its lifecycle hook is not due).
type Unlaunched = BTreeMap<String, (TaskContext, mpsc::UnboundedReceiver<TaskControl>)>;

impl AllocRunner {
    /// Starts the runner of `assignment`, whose files are in `dir`, on
    /// the current tokio runtime.
    pub(crate) fn spawn(
        dir: PathBuf,
        driver: ExecDriver,
        node: Option<Node>,
        updates: mpsc::UnboundedSender<ClientAllocUpdate>,
        assignment: AllocAssignment,
    ) -> RunnerHandle {
        let (control, receiver) = mpsc::unbounded_channel();
        let latest = Arc::new(std::sync::Mutex::new(None));
        let runner = AllocRunner { dir, driver, node, updates, latest: Arc::clone(&latest) };
        let join = tokio::spawn(runner.run(assignment, receiver));
        RunnerHandle { control, join, latest }
    }

    async fn run(self, mut assignment: AllocAssignment, mut control: mpsc::UnboundedReceiver<RunnerControl>) {
        let alloc_id = assignment.alloc.id.clone();
        let Some(group) =
            assignment.group.as_ref().map(|group| group.with_allocated_check_ports(&assignment.alloc.ports))
        else {
            // The job was purged before this agent ever ran it.
            self.publish(ClientAllocUpdate {
                alloc_id: alloc_id.clone(),
                client_status: AllocClientStatus::Complete,
                client_description: "the job was removed".to_owned(),
                task_states: BTreeMap::new(),
                checks: Vec::new(),
                deployment_health: load_decision(&self.dir).map(|decision| decision.healthy),
            });
            while let Some(request) = control.recv().await {
                if let RunnerControl::StopAll(done) = request {
                    let _ = done.send(());
                }
            }
            return;
        };
        let alloc_dir = self.dir.join("alloc");
        let log_dir = alloc_dir.join("logs");
        if let Err(error) = std::fs::create_dir_all(&log_dir) {
            tracing::warn!(alloc = %alloc_id, %error, "cannot create the allocation directory");
        }

        let (report_sender, mut reports) = mpsc::unbounded_channel::<TaskReport>();
        let (probe_sender, mut probe_reports) = mpsc::unbounded_channel::<ProbeReport>();
        let mut tasks: BTreeMap<String, TaskEntry> = BTreeMap::new();
        let mut unlaunched: Unlaunched = BTreeMap::new();
        let mut probes: BTreeMap<String, Vec<Probe>> = BTreeMap::new();
        for task in &group.tasks {
            let (task_control, task_receiver) = mpsc::unbounded_channel();
            let context = TaskContext {
                driver: self.driver.clone(),
                node: self.node.clone(),
                job: assignment.job.clone(),
                group: group.clone(),
                alloc: assignment.alloc.clone(),
                task: task.clone(),
                alloc_dir: alloc_dir.clone(),
                task_dir: self.dir.join(&task.name),
                log_dir: log_dir.clone(),
                reports: report_sender.clone(),
            };
            // Renders the task's templates again when what they read changes.
            crate::templates::spawn_watcher(&context, task_control.clone());
            let task_probes = Probe::for_task(&context);
            if !task_probes.is_empty() {
                probes.insert(task.name.clone(), task_probes);
            }
            let mut phase = TaskPhase::of(task);
            // A task that ran before the agent restarted is re-attached at
            // once, whatever its hook, so that a stop reaches it.
            if context.task_dir.join("supervisor.json").exists() {
                phase.launched = true;
                tokio::spawn(run_task(context, task_receiver));
            } else {
                unlaunched.insert(task.name.clone(), (context, task_receiver));
            }
            tasks.insert(
                task.name.clone(),
                TaskEntry {
                    control: task_control,
                    state: TaskState::default(),
                    finished: false,
                    phase,
                    stop_sent: false,
                },
            );
        }
        drop(report_sender);
        let task_order: Vec<String> = group.tasks.iter().map(|task| task.name.clone()).collect();
        let mut health = AllocHealth::new(&self.dir, &assignment, &group, ProbeSet::new(probes, probe_sender));
        health.start(Timestamp::now());

        let mut stopping = false;
        let mut retiring = false;
        let mut stop_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        if assignment.alloc.desired_status != AllocDesiredStatus::Run {
            stop_all(&mut tasks, &mut stopping);
        }
        let mut last_published: Option<ClientAllocUpdate> = None;
        let mut reports_closed = false;
        loop {
            if stopping {
                health.stop(Timestamp::now());
            }
            if advance_lifecycle(&task_order, &mut tasks, &mut unlaunched, stopping) {
                self.publish_if_changed(&alloc_id, &tasks, stopping, &health, &mut last_published);
            }
            let all_finished = reports_closed || tasks.values().all(|entry| entry.finished);
            if all_finished {
                for waiter in stop_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if retiring {
                    return;
                }
            }
            let deployment_timer = health.deployment_timer;
            let deployment_sleep = async {
                match deployment_timer {
                    Some(at) => tokio::time::sleep(at.since(Timestamp::now())).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                request = control.recv() => match request {
                    Some(RunnerControl::Update(update)) => {
                        if update.alloc.desired_status != AllocDesiredStatus::Run {
                            stop_all(&mut tasks, &mut stopping);
                        }
                        if update.alloc.deployment_status.as_ref().is_some_and(|status| status.healthy.is_some()) {
                            health.servers_decided(Timestamp::now());
                        }
                        assignment = *update;
                        if let Err(error) = persist_assignment(&self.dir, &assignment) {
                            tracing::debug!(%error, "cannot persist allocation update");
                        }
                    }
                    Some(RunnerControl::Retire) => {
                        retiring = true;
                        stop_all(&mut tasks, &mut stopping);
                    }
                    Some(RunnerControl::StopAll(done)) => {
                        stop_waiters.push(done);
                        stop_all(&mut tasks, &mut stopping);
                    }
                    Some(RunnerControl::Operator(request)) => {
                        self.answer_operator(request, &assignment, &group, &tasks, stopping);
                    }
                    Some(RunnerControl::Detach) | None => {
                        for entry in tasks.values() {
                            let _ = entry.control.send(TaskControl::Detach);
                        }
                        return;
                    }
                },
                report = reports.recv(), if !reports_closed => {
                    let Some(report) = report else {
                        // Every task runner has returned (finished or detached).
                        reports_closed = true;
                        continue;
                    };
                    let task_name = report.task.clone();
                    if let Some(entry) = tasks.get_mut(&report.task) {
                        entry.phase.running =
                            report.state.state == drover_types::TaskLifecycleState::Running && !report.finished;
                        entry.phase.finished = report.finished;
                        entry.phase.failed = report.finished && report.failed;
                        entry.state = report.state;
                        entry.finished = report.finished;
                    }
                    // A failed task fails the allocation: stop its siblings.
                    if report.finished && report.failed {
                        stop_all(&mut tasks, &mut stopping);
                    }
                    health.task_changed(&task_name, &tasks, Timestamp::now());
                    self.publish_if_changed(&alloc_id, &tasks, stopping, &health, &mut last_published);
                }
                Some(report) = probe_reports.recv() => {
                    health.probe_finished(report, &tasks, Timestamp::now());
                    self.publish_if_changed(&alloc_id, &tasks, stopping, &health, &mut last_published);
                }
                () = deployment_sleep => {
                    health.timer_fired(Timestamp::now());
                    self.publish_if_changed(&alloc_id, &tasks, stopping, &health, &mut last_published);
                }
            }
        }
    }

    /// Answers an operator's request from the tasks as they are now.
    fn answer_operator(
        &self,
        request: OperatorRequest,
        assignment: &AllocAssignment,
        group: &drover_types::TaskGroup,
        tasks: &BTreeMap<String, TaskEntry>,
        stopping: bool,
    ) {
        let alloc = assignment.alloc.id.short().to_owned();
        let conditions: Vec<TaskCondition> = group
            .tasks
            .iter()
            .filter_map(|task| tasks.get(&task.name).map(|entry| (task, entry)))
            .map(|(task, entry)| TaskCondition {
                name: task.name.clone(),
                running: !stopping
                    && entry.phase.launched
                    && !entry.finished
                    && entry.state.state == drover_types::TaskLifecycleState::Running,
                state: entry.state.state.to_string(),
            })
            .collect();
        match request {
            OperatorRequest::Restart { task, reply } => {
                let chosen = choose_tasks(&alloc, &conditions, task.as_deref());
                if let Ok(names) = &chosen {
                    for name in names {
                        if let Some(entry) = tasks.get(name) {
                            let reason = "Restart requested by an operator (drover alloc restart)".to_owned();
                            let _ = entry.control.send(TaskControl::Restart { reason });
                        }
                    }
                }
                let _ = reply.send(chosen);
            }
            OperatorRequest::Signal { task, signal, reply } => {
                let names = match choose_tasks(&alloc, &conditions, task.as_deref()) {
                    Ok(names) => names,
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        return;
                    }
                };
                let mut answers = Vec::new();
                for name in &names {
                    if let Some(entry) = tasks.get(name) {
                        let (sent, answer) = oneshot::channel();
                        let _ = entry.control.send(TaskControl::Signal { signal, reply: sent });
                        answers.push((name.clone(), answer));
                    }
                }
                // The task runners answer in their own loops: wait off this one.
                tokio::spawn(async move {
                    let mut problems = Vec::new();
                    for (name, answer) in answers {
                        match answer.await {
                            Ok(Ok(())) => {}
                            Ok(Err(problem)) => problems.push(format!("task {name:?}: {problem}")),
                            Err(_) => problems.push(format!("task {name:?} ended before the signal was sent")),
                        }
                    }
                    let outcome = if problems.is_empty() {
                        Ok(names)
                    } else {
                        Err(CodedError::conflict(format!("cannot send {signal}: {}", problems.join("; "))))
                    };
                    let _ = reply.send(outcome);
                });
            }
            OperatorRequest::ExecSpec { task, reply } => {
                let chosen = choose_tasks(&alloc, &conditions, Some(&task)).and_then(|_| {
                    let spec_task = group.tasks.iter().find(|candidate| candidate.name == task);
                    spec_task.map_or_else(
                        || Err(CodedError::not_found("task", format!("{alloc}/{task}"))),
                        |spec_task| self.exec_spec(assignment, group, spec_task),
                    )
                });
                let _ = reply.send(chosen);
            }
        }
    }

    /// The environment, directory and user of `task`'s processes, as
    /// `task::spawn` builds them.
    fn exec_spec(
        &self,
        assignment: &AllocAssignment,
        group: &drover_types::TaskGroup,
        task: &drover_types::Task,
    ) -> Result<TaskExecSpec, CodedError> {
        let place = crate::alloc_control::TaskPlace {
            node: self.node.as_ref(),
            job: &assignment.job,
            group,
            alloc: &assignment.alloc,
            task,
            alloc_dir: &self.dir.join("alloc"),
            task_dir: &self.dir.join(&task.name),
        };
        place.exec_spec().map(|(spec, _)| spec).map_err(CodedError::internal)
    }

    /// Publishes the allocation's update when anything in it changed.
    fn publish_if_changed(
        &self,
        alloc_id: &AllocId,
        tasks: &BTreeMap<String, TaskEntry>,
        stopping: bool,
        health: &AllocHealth,
        last_published: &mut Option<ClientAllocUpdate>,
    ) {
        let (client_status, client_description) = client_status(tasks, stopping);
        let update = ClientAllocUpdate {
            alloc_id: alloc_id.clone(),
            client_status,
            client_description,
            task_states: tasks.iter().map(|(name, entry)| (name.clone(), entry.state.clone())).collect(),
            checks: health.check_statuses.clone(),
            deployment_health: health.deployment_health,
        };
        if last_published.as_ref() != Some(&update) {
            self.publish(update.clone());
            *last_published = Some(update);
        }
    }

    fn publish(&self, update: ClientAllocUpdate) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(update.clone());
        }
        let _ = self.updates.send(update);
    }
}

/// Writes `alloc.json` into the allocation's directory `dir` (atomically).
pub(crate) fn persist_assignment(dir: &Path, assignment: &AllocAssignment) -> std::io::Result<()> {
    let file = AllocFile { version: ALLOC_FILE_VERSION, assignment: assignment.clone() };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let temporary = dir.join("alloc.json.tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(temporary, dir.join("alloc.json"))
}

/// Stops every task that runs; those not started yet never will (but
/// poststop tasks, see [`lifecycle`]).
fn stop_all(tasks: &mut BTreeMap<String, TaskEntry>, stopping: &mut bool) {
    if *stopping {
        return;
    }
    *stopping = true;
    for entry in tasks.values_mut().filter(|entry| !entry.finished && entry.phase.launched) {
        send_stop(entry);
    }
}

fn send_stop(entry: &mut TaskEntry) {
    if !entry.stop_sent {
        entry.stop_sent = true;
        let _ = entry.control.send(TaskControl::Stop);
    }
}

/// Carries out the lifecycle steps due now: starts the task runners whose
/// hook came, stops sidecars whose main tasks ended, marks tasks that will
/// never run as ended. Returns whether a task was marked ended (the
/// allocation's update changed).
fn advance_lifecycle(
    task_order: &[String],
    tasks: &mut BTreeMap<String, TaskEntry>,
    unlaunched: &mut Unlaunched,
    stopping: bool,
) -> bool {
    let mut changed = false;
    loop {
        let phases: Vec<TaskPhase> =
            task_order.iter().filter_map(|name| tasks.get(name)).map(|entry| entry.phase.clone()).collect();
        let steps = next_steps(&phases, stopping);
        for name in &steps.launch {
            if let (Some((context, receiver)), Some(entry)) = (unlaunched.remove(name), tasks.get_mut(name)) {
                entry.phase.launched = true;
                tokio::spawn(run_task(context, receiver));
            }
        }
        for name in &steps.stop {
            if let Some(entry) = tasks.get_mut(name) {
                send_stop(entry);
            }
        }
        if steps.skip.is_empty() {
            return changed;
        }
        for name in &steps.skip {
            unlaunched.remove(name);
            if let Some(entry) = tasks.get_mut(name) {
                entry.finished = true;
                entry.phase.finished = true;
                entry.state.state = drover_types::TaskLifecycleState::Dead;
            }
        }
        changed = true;
    }
}

/// The allocation's status from its tasks' (Nomad's rules).
fn client_status(tasks: &BTreeMap<String, TaskEntry>, stopping: bool) -> (AllocClientStatus, String) {
    use drover_types::TaskLifecycleState as Lifecycle;
    if let Some((name, _)) = tasks.iter().find(|(_, entry)| entry.finished && entry.state.failed) {
        return (AllocClientStatus::Failed, format!("task {name:?} failed"));
    }
    if tasks.values().all(|entry| entry.finished) {
        let description = if stopping { "all tasks were stopped" } else { "all tasks completed" };
        return (AllocClientStatus::Complete, description.to_owned());
    }
    // Poststart and poststop tasks come later: they do not hold the
    // allocation back from running.
    let all_started = tasks
        .values()
        .filter(|entry| matches!(entry.phase.hook, None | Some(drover_types::LifecycleHook::Prestart)))
        .all(|entry| entry.state.state == Lifecycle::Running || (entry.finished && !entry.state.failed));
    if all_started {
        (AllocClientStatus::Running, "tasks are running".to_owned())
    } else {
        (AllocClientStatus::Pending, "tasks are starting".to_owned())
    }
}
