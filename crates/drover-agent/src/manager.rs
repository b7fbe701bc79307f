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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use drover_exec::ExecDriver;
use drover_proto::session::AllocAssignment;
use drover_state::ClientAllocUpdate;
use drover_types::{AllocClientStatus, AllocDesiredStatus, AllocId, Node, TaskState};

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

    /// Applies the servers' list of allocations for this node.
    pub(crate) async fn reconcile(&self, node: Option<Node>, assignments: Vec<AllocAssignment>) {
        if let Some(node) = node
            && let Ok(mut current) = self.node.write()
        {
            *current = Some(node);
        }
        let listed: HashSet<AllocId> = assignments.iter().map(|assignment| assignment.alloc.id.clone()).collect();
        let mut runners = self.runners.lock().await;
        for assignment in assignments {
            let alloc_id = assignment.alloc.id.clone();
            match runners.get(&alloc_id) {
                Some(entry) if !entry.join.is_finished() => {
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
        let retired: Vec<AllocId> = runners.keys().filter(|alloc_id| !listed.contains(*alloc_id)).cloned().collect();
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
            self.publish(&alloc_id, AllocClientStatus::Complete, "the job was removed".to_owned(), BTreeMap::new());
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
        let mut tasks: BTreeMap<String, TaskEntry> = BTreeMap::new();
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
            tokio::spawn(run_task(context, task_receiver));
            tasks.insert(
                task.name.clone(),
                TaskEntry { control: task_control, state: TaskState::default(), finished: false },
            );
        }
        drop(report_sender);

        let mut stopping = false;
        let mut retiring = false;
        let mut stop_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        if assignment.alloc.desired_status != AllocDesiredStatus::Run {
            stop_all(&tasks, &mut stopping);
        }
        let mut last_published: Option<(AllocClientStatus, String, BTreeMap<String, TaskState>)> = None;
        let mut reports_closed = false;
        loop {
            let all_finished = reports_closed || tasks.values().all(|entry| entry.finished);
            if all_finished {
                for waiter in stop_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if retiring {
                    return;
                }
            }
            tokio::select! {
                request = control.recv() => match request {
                    Some(RunnerControl::Update(update)) => {
                        if update.alloc.desired_status != AllocDesiredStatus::Run {
                            stop_all(&tasks, &mut stopping);
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
                    if let Some(entry) = tasks.get_mut(&report.task) {
                        entry.state = report.state;
                        entry.finished = report.finished;
                    }
                    // A failed task fails the allocation: stop its siblings.
                    if report.finished && report.failed {
                        stop_all(&tasks, &mut stopping);
                    }
                    let (status, description) = client_status(&tasks, stopping);
                    let task_states: BTreeMap<String, TaskState> =
                        tasks.iter().map(|(name, entry)| (name.clone(), entry.state.clone())).collect();
                    let current = (status, description.clone(), task_states.clone());
                    if last_published.as_ref() != Some(&current) {
                        self.publish(&alloc_id, status, description, task_states);
                        last_published = Some(current);
                    }
                }
            }
        }
    }

    fn publish(
        &self,
        alloc_id: &AllocId,
        client_status: AllocClientStatus,
        client_description: String,
        task_states: BTreeMap<String, TaskState>,
    ) {
        let update = ClientAllocUpdate {
            alloc_id: alloc_id.clone(),
            client_status,
            client_description,
            task_states,
            checks: Vec::new(),
        };
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(update.clone());
        }
        let _ = self.updates.send(update);
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
