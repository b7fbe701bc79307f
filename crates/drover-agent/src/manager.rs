//! The allocation manager and the allocation runners.
//!
//! The manager reconciles the servers' list of allocations with what runs
//! here: it starts a runner for every new allocation, forwards changes
//! (a stop, a new job version) to existing ones, and retires runners of
//! allocations the servers no longer list. Each runner owns the task
//! runners of its allocation and turns their reports into the allocation's
//! client status (Nomad's rules: any task failed → failed; all tasks dead →
//! complete; all running → running).
//!
//! Allocation specs are kept in `<data>/allocs/<id>/alloc.json` so that a
//! restarted agent restores its runners before the servers answer.
//!
//! A runner also runs its allocation's health checks and, for allocations
//! placed by a deployment, decides their deployment health: it feeds task
//! reports and probe results to the two sans-IO deciders (`checks.rs`,
//! `deployment_health.rs`) and carries out their commands ([`AllocHealth`]).
//! Check statuses and the health decision travel in every later update of
//! the allocation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use drover_exec::ExecDriver;
use drover_proto::session::AllocAssignment;
use drover_types::ClientAllocUpdate;
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, CheckStatus, Node, TaskLifecycleState, TaskState, Timestamp,
};

use crate::checks::{CheckCommand, CheckEvent, CheckWatcher, all_passing};
use crate::deployment_health::{
    HealthCommand, HealthConfig, HealthEvent, HealthWatcher, TasksSummary, load_decision, save_decision,
};
use crate::probe::{Probe, ProbeReport, ProbeSet};
use crate::task::{TaskContext, TaskControl, TaskReport, run_task};

/// Version of `alloc.json`.
const ALLOC_FILE_VERSION: u32 = 1;
/// Terminal allocation directories kept for `drover alloc logs`.
const MAX_RETIRED_ALLOC_DIRS: usize = 50;

#[derive(Serialize, Deserialize)]
struct AllocFile {
    version: u32,
    assignment: AllocAssignment,
}

enum RunnerControl {
    Update(Box<AllocAssignment>),
    /// The servers no longer list the allocation: stop it and exit.
    Retire,
    /// Leave the tasks running and exit (agent shutdown).
    Detach,
    /// Stop every task, then answer (dev-mode shutdown).
    StopAll(oneshot::Sender<()>),
}

struct RunnerEntry {
    control: mpsc::UnboundedSender<RunnerControl>,
    join: JoinHandle<()>,
    latest: Arc<std::sync::Mutex<Option<ClientAllocUpdate>>>,
}

/// Runs the allocations of this node.
pub(crate) struct AllocManager {
    root: PathBuf,
    driver: ExecDriver,
    updates: mpsc::UnboundedSender<ClientAllocUpdate>,
    node: RwLock<Option<Node>>,
    runners: Mutex<HashMap<AllocId, RunnerEntry>>,
}

impl AllocManager {
    pub(crate) fn new(root: PathBuf, driver: ExecDriver, updates: mpsc::UnboundedSender<ClientAllocUpdate>) -> Self {
        AllocManager { root, driver, updates, node: RwLock::new(None), runners: Mutex::new(HashMap::new()) }
    }

    /// Where an allocation's files are.
    pub(crate) fn alloc_dir(&self, alloc_id: &AllocId) -> PathBuf {
        self.root.join(alloc_id.as_str())
    }

    /// Restarts runners for the allocations left by an earlier agent.
    pub(crate) async fn restore(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        let mut runners = self.runners.lock().await;
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.join("retired").exists() {
                continue;
            }
            let Ok(bytes) = std::fs::read(dir.join("alloc.json")) else { continue };
            let Ok(file) = serde_json::from_slice::<AllocFile>(&bytes) else {
                tracing::warn!(dir = %dir.display(), "unreadable alloc.json; leaving the directory alone");
                continue;
            };
            if file.version != ALLOC_FILE_VERSION {
                continue;
            }
            let alloc_id = file.assignment.alloc.id.clone();
            tracing::info!(alloc = %alloc_id, "restoring allocation");
            let entry = self.spawn_runner(file.assignment);
            runners.insert(alloc_id, entry);
        }
    }

    /// Applies a list of allocations from the servers: the complete set
    /// (`full`: anything not listed is retired) or a change (listed
    /// allocations the servers made terminal are retired).
    pub(crate) async fn reconcile(&self, node: Option<Node>, assignments: Vec<AllocAssignment>, full: bool) {
        if let Some(node) = node
            && let Ok(mut current) = self.node.write()
        {
            *current = Some(node);
        }
        let listed: HashSet<AllocId> = assignments.iter().map(|assignment| assignment.alloc.id.clone()).collect();
        let mut retired: Vec<AllocId> = Vec::new();
        let mut runners = self.runners.lock().await;
        for assignment in assignments {
            let alloc_id = assignment.alloc.id.clone();
            if assignment.alloc.client_status.is_terminal() {
                retired.push(alloc_id);
                continue;
            }
            match runners.get(&alloc_id) {
                Some(entry) if !entry.join.is_finished() => {
                    // The servers decided a status of their own (`unknown`
                    // while this node was silent): tell them what is true.
                    let latest = entry.latest.lock().ok().and_then(|latest| latest.clone());
                    if let Some(latest) = latest
                        && latest.client_status != assignment.alloc.client_status
                    {
                        let _ = self.updates.send(latest);
                    }
                    let _ = entry.control.send(RunnerControl::Update(Box::new(assignment)));
                }
                Some(_) => {}
                None => {
                    if let Err(error) = self.persist(&assignment) {
                        tracing::warn!(alloc = %alloc_id, %error, "cannot persist allocation");
                    }
                    let entry = self.spawn_runner(assignment);
                    runners.insert(alloc_id, entry);
                }
            }
        }
        if full {
            retired.extend(runners.keys().filter(|alloc_id| !listed.contains(*alloc_id)).cloned());
        }
        for alloc_id in retired {
            if let Some(entry) = runners.remove(&alloc_id) {
                let _ = entry.control.send(RunnerControl::Retire);
                let marker = self.alloc_dir(&alloc_id).join("retired");
                if let Err(error) = std::fs::write(&marker, b"") {
                    tracing::debug!(%error, "cannot mark allocation retired");
                }
            }
        }
        drop(runners);
        self.collect_garbage();
    }

    /// The last known update of every allocation, to send after connecting.
    pub(crate) async fn current_updates(&self) -> Vec<ClientAllocUpdate> {
        let runners = self.runners.lock().await;
        runners.values().filter_map(|entry| entry.latest.lock().ok().and_then(|latest| latest.clone())).collect()
    }

    /// Stops every task and waits (dev-mode shutdown).
    pub(crate) async fn stop_all(&self) {
        let mut waiters = Vec::new();
        let runners = self.runners.lock().await;
        for entry in runners.values() {
            let (done, waiter) = oneshot::channel();
            if entry.control.send(RunnerControl::StopAll(done)).is_ok() {
                waiters.push(waiter);
            }
        }
        drop(runners);
        for waiter in waiters {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), waiter).await;
        }
    }

    /// Stops supervising, leaving tasks running for the next agent.
    pub(crate) async fn detach_all(&self) {
        let runners = self.runners.lock().await;
        for entry in runners.values() {
            let _ = entry.control.send(RunnerControl::Detach);
        }
    }

    fn persist(&self, assignment: &AllocAssignment) -> std::io::Result<()> {
        let dir = self.alloc_dir(&assignment.alloc.id);
        std::fs::create_dir_all(&dir)?;
        persist_assignment(&dir, assignment)
    }

    fn spawn_runner(&self, assignment: AllocAssignment) -> RunnerEntry {
        let (control, receiver) = mpsc::unbounded_channel();
        let latest = Arc::new(std::sync::Mutex::new(None));
        let runner = AllocRunner {
            dir: self.alloc_dir(&assignment.alloc.id),
            driver: self.driver.clone(),
            node: self.node.read().ok().and_then(|node| node.clone()),
            updates: self.updates.clone(),
            latest: Arc::clone(&latest),
        };
        let join = tokio::spawn(runner.run(assignment, receiver));
        RunnerEntry { control, join, latest }
    }

    /// Deletes the oldest retired allocation directories beyond the limit.
    fn collect_garbage(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        let mut retired: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let marker = entry.path().join("retired");
                let modified = std::fs::metadata(&marker).and_then(|metadata| metadata.modified()).ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        if retired.len() <= MAX_RETIRED_ALLOC_DIRS {
            return;
        }
        retired.sort();
        let excess = retired.len() - MAX_RETIRED_ALLOC_DIRS;
        for (_, dir) in retired.into_iter().take(excess) {
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::debug!(%error, dir = %dir.display(), "cannot remove old allocation directory");
            }
        }
    }
}

struct AllocRunner {
    dir: PathBuf,
    driver: ExecDriver,
    node: Option<Node>,
    updates: mpsc::UnboundedSender<ClientAllocUpdate>,
    latest: Arc<std::sync::Mutex<Option<ClientAllocUpdate>>>,
}

struct TaskEntry {
    control: mpsc::UnboundedSender<TaskControl>,
    state: TaskState,
    finished: bool,
}

impl AllocRunner {
    async fn run(self, mut assignment: AllocAssignment, mut control: mpsc::UnboundedReceiver<RunnerControl>) {
        let alloc_id = assignment.alloc.id.clone();
        let Some(group) = assignment.group.clone() else {
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
            let task_probes = Probe::for_task(&context);
            if !task_probes.is_empty() {
                probes.insert(task.name.clone(), task_probes);
            }
            tokio::spawn(run_task(context, task_receiver));
            tasks.insert(
                task.name.clone(),
                TaskEntry { control: task_control, state: TaskState::default(), finished: false },
            );
        }
        drop(report_sender);
        let mut health = AllocHealth::new(&self.dir, &assignment, &group, ProbeSet::new(probes, probe_sender));
        health.start(Timestamp::now());

        let mut stopping = false;
        let mut retiring = false;
        let mut stop_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        if assignment.alloc.desired_status != AllocDesiredStatus::Run {
            stop_all(&tasks, &mut stopping);
        }
        let mut last_published: Option<ClientAllocUpdate> = None;
        let mut reports_closed = false;
        loop {
            if stopping {
                health.stop(Timestamp::now());
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
                            stop_all(&tasks, &mut stopping);
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
                        stop_all(&tasks, &mut stopping);
                    }
                    Some(RunnerControl::StopAll(done)) => {
                        stop_waiters.push(done);
                        stop_all(&tasks, &mut stopping);
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
                        entry.state = report.state;
                        entry.finished = report.finished;
                    }
                    // A failed task fails the allocation: stop its siblings.
                    if report.finished && report.failed {
                        stop_all(&tasks, &mut stopping);
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

/// The health side of an allocation runner: runs the checks and decides
/// deployment health by carrying out the commands of the allocation's
/// [`CheckWatcher`] and [`HealthWatcher`].
struct AllocHealth {
    alloc_id: AllocId,
    /// The allocation's directory, where the decision is persisted.
    dir: PathBuf,
    checks: CheckWatcher,
    probes: ProbeSet,
    /// The statuses last published by `checks`.
    check_statuses: Vec<CheckStatus>,
    /// `None` when there is nothing to decide (not a deployment's
    /// allocation, decided already, or decided by the servers).
    deployment: Option<HealthWatcher>,
    deployment_timer: Option<Timestamp>,
    /// The decision, reported in every update once made.
    deployment_health: Option<bool>,
    stopped: bool,
}

impl AllocHealth {
    fn new(dir: &Path, assignment: &AllocAssignment, group: &drover_types::TaskGroup, probes: ProbeSet) -> Self {
        let alloc = &assignment.alloc;
        let decision = load_decision(dir);
        let undecided = alloc.deployment_status.as_ref().is_some_and(|status| status.healthy.is_none());
        let deployment =
            (decision.is_none() && undecided && alloc.desired_status == AllocDesiredStatus::Run).then(|| {
                let update = assignment.update.unwrap_or_else(|| {
                    tracing::debug!(alloc = %alloc.id, "no update strategy with the allocation; using the defaults");
                    drover_types::UpdateStrategy::default()
                });
                HealthWatcher::new(HealthConfig::from(&update))
            });
        let checks = CheckWatcher::new(group);
        AllocHealth {
            alloc_id: alloc.id.clone(),
            dir: dir.to_owned(),
            check_statuses: checks.statuses(),
            checks,
            probes,
            deployment,
            deployment_timer: None,
            deployment_health: decision.map(|decision| decision.healthy),
            stopped: false,
        }
    }

    /// The runner started: the deployment deadline counts from `now`.
    fn start(&mut self, now: Timestamp) {
        let all_passing = all_passing(&self.check_statuses);
        self.deployment_event(HealthEvent::ChecksChanged { all_passing }, now);
        self.deployment_event(HealthEvent::Start, now);
    }

    /// A task reported a new state.
    fn task_changed(&mut self, task_name: &str, tasks: &BTreeMap<String, TaskEntry>, now: Timestamp) {
        if let Some(entry) = tasks.get(task_name) {
            let event = if entry.state.state == TaskLifecycleState::Running && !entry.finished {
                // A running task always has a start time; ZERO only keeps
                // a malformed state from looking like a new run each time.
                CheckEvent::TaskRunning {
                    task: task_name.to_owned(),
                    started_at: entry.state.started_at.unwrap_or(Timestamp::ZERO),
                }
            } else {
                CheckEvent::TaskNotRunning { task: task_name.to_owned() }
            };
            let commands = self.checks.handle(event, now);
            self.check_commands(commands, tasks, now);
        }
        let summary = TasksSummary::of(tasks.iter().map(|(name, entry)| (name.as_str(), &entry.state, entry.finished)));
        self.deployment_event(HealthEvent::TasksChanged(summary), now);
    }

    /// A check ran.
    fn probe_finished(&mut self, report: ProbeReport, tasks: &BTreeMap<String, TaskEntry>, now: Timestamp) {
        let event = CheckEvent::ProbeFinished {
            task: report.task,
            check: report.check,
            generation: report.generation,
            outcome: report.outcome,
        };
        let commands = self.checks.handle(event, now);
        self.check_commands(commands, tasks, now);
    }

    /// The deployment timer fired.
    fn timer_fired(&mut self, now: Timestamp) {
        self.deployment_timer = None;
        self.deployment_event(HealthEvent::TimerFired, now);
    }

    /// The allocation is stopping: no more checks, restarts or decisions.
    fn stop(&mut self, now: Timestamp) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let commands = self.checks.handle(CheckEvent::AllocStopping, now);
        self.check_commands(commands, &BTreeMap::new(), now);
        self.deployment_event(HealthEvent::StopWatching, now);
    }

    /// The servers recorded the allocation's deployment health.
    fn servers_decided(&mut self, now: Timestamp) {
        self.deployment_event(HealthEvent::StopWatching, now);
    }

    fn check_commands(&mut self, commands: Vec<CheckCommand>, tasks: &BTreeMap<String, TaskEntry>, now: Timestamp) {
        for command in commands {
            match command {
                CheckCommand::StartProbes { task, generation } => self.probes.start(&task, generation),
                CheckCommand::StopProbes { task } => self.probes.stop(&task),
                CheckCommand::RestartTask { task, reason } => {
                    tracing::info!(alloc = %self.alloc_id, task = %task, %reason, "restarting task for a failing check");
                    if let Some(entry) = tasks.get(&task) {
                        let _ = entry.control.send(TaskControl::Restart { reason });
                    }
                }
                CheckCommand::Publish(statuses) => {
                    let all_passing = all_passing(&statuses);
                    self.check_statuses = statuses;
                    self.deployment_event(HealthEvent::ChecksChanged { all_passing }, now);
                }
            }
        }
    }

    fn deployment_event(&mut self, event: HealthEvent, now: Timestamp) {
        let Some(watcher) = self.deployment.as_mut() else { return };
        for command in watcher.handle(event, now) {
            match command {
                HealthCommand::ScheduleTimer { at } => self.deployment_timer = Some(at),
                HealthCommand::CancelTimer => self.deployment_timer = None,
                HealthCommand::Report { healthy, reason } => {
                    tracing::info!(alloc = %self.alloc_id, healthy, %reason, "deployment health decided");
                    self.deployment_health = Some(healthy);
                    if let Err(error) = save_decision(&self.dir, healthy, &reason, now) {
                        tracing::warn!(alloc = %self.alloc_id, %error, "cannot persist the deployment health decision");
                    }
                }
            }
        }
    }
}

fn persist_assignment(dir: &Path, assignment: &AllocAssignment) -> std::io::Result<()> {
    let file = AllocFile { version: ALLOC_FILE_VERSION, assignment: assignment.clone() };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let temporary = dir.join("alloc.json.tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(temporary, dir.join("alloc.json"))
}

fn stop_all(tasks: &BTreeMap<String, TaskEntry>, stopping: &mut bool) {
    if *stopping {
        return;
    }
    *stopping = true;
    for entry in tasks.values().filter(|entry| !entry.finished) {
        let _ = entry.control.send(TaskControl::Stop);
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
    let all_started =
        tasks.values().all(|entry| entry.state.state == Lifecycle::Running || (entry.finished && !entry.state.failed));
    if all_started {
        (AllocClientStatus::Running, "tasks are running".to_owned())
    } else {
        (AllocClientStatus::Pending, "tasks are starting".to_owned())
    }
}

#[cfg(test)]
mod tests {
    //! Allocation runners running real tasks through the exec driver, with
    //! the executor shim of drover-exec's tests and real check targets.

    use std::time::Duration;

    use drover_exec::{DriverConfig, Isolation};
    use drover_types::{
        AllocDeploymentStatus, CheckHealth, CheckKind, DurationSpec, HealthCheckMode, TaskEventKind, UpdateStrategy,
    };

    use super::*;
    use crate::test_support;

    const WAIT: Duration = Duration::from_secs(60);

    /// The executor shim built by `cargo build -p drover-exec`, or `None`
    /// (the test is then skipped) when it is not there.
    fn executor_helper() -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/drover-exec-helper");
        if path.exists() {
            Some(path)
        } else {
            eprintln!(
                "skipped: {} is missing; build it with `cargo build -p drover-exec --bin drover-exec-helper`",
                path.display()
            );
            None
        }
    }

    fn manager(root: &Path, helper: &Path) -> (AllocManager, mpsc::UnboundedReceiver<ClientAllocUpdate>) {
        let mut config = DriverConfig::new(helper, ["executor"]);
        config.start_timeout = Duration::from_secs(30);
        let driver = ExecDriver::new(config, Isolation::detect());
        let (sender, receiver) = mpsc::unbounded_channel();
        (AllocManager::new(root.to_owned(), driver, sender), receiver)
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// An allocation placed by a deployment (health undecided).
    fn deployment_allocation(id: &str) -> drover_types::Allocation {
        let mut alloc = test_support::allocation(id);
        alloc.deployment_status =
            Some(AllocDeploymentStatus { healthy: None, timestamp: Timestamp::ZERO, canary: false });
        alloc
    }

    fn update_strategy(min_healthy_secs: u64, deadline_secs: u64) -> UpdateStrategy {
        UpdateStrategy {
            health_check: HealthCheckMode::Checks,
            min_healthy_time: DurationSpec::from_secs(min_healthy_secs),
            healthy_deadline: DurationSpec::from_secs(deadline_secs),
            ..UpdateStrategy::default()
        }
    }

    /// Reads updates until one satisfies `condition`; every update read is
    /// appended to `seen`.
    async fn wait_for(
        updates: &mut mpsc::UnboundedReceiver<ClientAllocUpdate>,
        seen: &mut Vec<ClientAllocUpdate>,
        what: &str,
        condition: impl Fn(&ClientAllocUpdate) -> bool,
    ) -> ClientAllocUpdate {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Some(update)) => {
                    seen.push(update.clone());
                    if condition(&update) {
                        return update;
                    }
                }
                Ok(None) | Err(_) => panic!("no update where {what} within {WAIT:?}; the last one: {:#?}", seen.last()),
            }
        }
    }

    fn check_health(update: &ClientAllocUpdate) -> Vec<CheckHealth> {
        update.checks.iter().map(|check| check.status).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_served_http_check_passes_and_the_deployment_allocation_becomes_healthy_for_good() {
        let Some(helper) = executor_helper() else { return };
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let port_text = port.to_string();
        let http = CheckKind::Http {
            address: "127.0.0.1".to_owned(),
            port,
            path: "/".to_owned(),
            method: "GET".to_owned(),
            expected_status: None,
            body: None,
        };
        let task = test_support::with_checks(
            test_support::task("web", "python3", &["-m", "http.server", &port_text, "--bind", "127.0.0.1"]),
            vec![test_support::check("http", http, 200, 1_000)],
        );
        let assignment = test_support::assignment(
            deployment_allocation("alloc-healthy"),
            test_support::group(vec![task]),
            Some(update_strategy(1, 60)),
        );
        let alloc_dir = root.path().join("alloc-healthy");

        let (manager, mut updates) = manager(root.path(), &helper);
        manager.reconcile(None, vec![assignment], true).await;
        let mut seen = Vec::new();
        let healthy = wait_for(&mut updates, &mut seen, "the allocation is healthy", |update| {
            update.deployment_health == Some(true)
        })
        .await;
        assert_eq!(healthy.client_status, AllocClientStatus::Running);
        assert_eq!(check_health(&healthy), vec![CheckHealth::Passing]);
        assert_eq!(healthy.checks[0].output, format!("GET http://127.0.0.1:{port}/: HTTP 200 OK"));
        assert_eq!((healthy.checks[0].task.as_str(), healthy.checks[0].name.as_str()), ("web", "http"));
        // Checks were pending until the task ran, health undecided until then.
        assert_eq!(check_health(&seen[0]), vec![CheckHealth::Pending]);
        assert!(seen.iter().take(seen.len() - 1).all(|update| update.deployment_health.is_none()));
        // Healthy means healthy for min_healthy_time: the first passing
        // result came at least a second before the decision.
        let first_passing = seen.iter().find(|update| check_health(update) == [CheckHealth::Passing]).unwrap();
        let decision = load_decision(&alloc_dir).unwrap();
        assert!(decision.healthy);
        assert!(
            decision.decided_at.since(first_passing.checks[0].checked_at) >= Duration::from_secs(1),
            "decided at {} after a first pass at {}",
            decision.decided_at,
            first_passing.checks[0].checked_at
        );

        // A restarted agent re-attaches, re-reports the decision in its
        // first update and never decides again.
        manager.detach_all().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (restarted, mut restarted_updates) = self::manager(root.path(), &helper);
        restarted.restore().await;
        let mut seen_after_restart = Vec::new();
        let first = wait_for(&mut restarted_updates, &mut seen_after_restart, "any update", |_| true).await;
        assert_eq!(first.deployment_health, Some(true));
        wait_for(&mut restarted_updates, &mut seen_after_restart, "the check passes again", |update| {
            check_health(update) == [CheckHealth::Passing]
        })
        .await;
        assert!(seen_after_restart.iter().all(|update| update.deployment_health == Some(true)));
        restarted.stop_all().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_check_restarts_its_task_and_the_deadline_makes_the_allocation_unhealthy() {
        let Some(helper) = executor_helper() else { return };
        let root = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut check =
            test_support::check("tcp", CheckKind::Tcp { address: "127.0.0.1".to_owned(), port: closed_port }, 200, 500);
        check.check_restart = test_support::restart_rule(2, 0, false);
        let task = test_support::with_checks(test_support::task("sleeper", "sleep", &["600"]), vec![check]);
        let assignment = test_support::assignment(
            deployment_allocation("alloc-unhealthy"),
            test_support::group(vec![task]),
            Some(update_strategy(1, 3)),
        );

        let (manager, mut updates) = manager(root.path(), &helper);
        manager.reconcile(None, vec![assignment], true).await;
        let mut seen = Vec::new();
        let restarted = wait_for(&mut updates, &mut seen, "the check restarted the task", |update| {
            update.task_states.get("sleeper").is_some_and(|state| {
                state.restarts >= 1
                    && state.state == TaskLifecycleState::Running
                    && state.events.iter().any(|event| event.kind == TaskEventKind::RestartSignaled)
            })
        })
        .await;
        let events = &restarted.task_states["sleeper"].events;
        let signaled = events.iter().find(|event| event.kind == TaskEventKind::RestartSignaled).unwrap();
        assert_eq!(signaled.message, "health check \"tcp\" unhealthy: 2 consecutive failures");
        assert!(seen.iter().any(|update| check_health(update) == [CheckHealth::Critical]));

        let unhealthy = wait_for(&mut updates, &mut seen, "the allocation is unhealthy", |update| {
            update.deployment_health == Some(false)
        })
        .await;
        assert_eq!(unhealthy.client_status, AllocClientStatus::Running);
        assert!(load_decision(&root.path().join("alloc-unhealthy")).is_some_and(
            |decision| !decision.healthy && decision.reason == "not healthy within the healthy deadline of 3s"
        ));
        manager.stop_all().await;
    }
}
