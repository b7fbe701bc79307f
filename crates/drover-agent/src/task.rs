//! The task runner: carries out the commands of one task's [`Supervisor`]
//! (spawn through the exec driver, kill, timers) and feeds it events
//! (started, exited, timer fired, stop or restart asked).
//!
//! The supervisor's state is written to `<task dir>/supervisor.json` after
//! every change, so that a restarted agent resumes with the same restart
//! counters and events, and re-attaches to the process if it still runs.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use drover_executor::{
    Event, ExecDriver, ExitResult, Instruction, ReattachOutcome, RestartTracker, Supervisor, SupervisorConfig,
    TaskHandle, TaskLaunch,
};
use drover_proto::session::JobSummary;
use drover_types::{
    Allocation, Node, Task, TaskEvent, TaskEventKind, TaskGroup, TaskLifecycleState, TaskState, Timestamp,
};

use crate::env::{AllocDirs, task_command_line};
use crate::prepare::{prepare_task_files, template_env};

/// Version of `supervisor.json`.
const SUPERVISOR_FILE_VERSION: u32 = 1;

/// What the alloc runner asks of a task runner.
#[derive(Debug)]
pub(crate) enum TaskControl {
    /// Stop the task for good.
    Stop,
    /// Restart it now (a failing check).
    Restart {
        /// Why.
        reason: String,
    },
    /// Stop supervising but leave the process running (agent shutdown).
    Detach,
    /// Send a signal to the task's main process (`drover alloc signal`)
    /// and answer whether it was sent.
    Signal { signal: drover_executor::Signal, reply: tokio::sync::oneshot::Sender<Result<(), String>> },
    /// Record an event (a template's change script ran).
    Note { kind: drover_types::TaskEventKind, message: String },
    /// Kill the task and end it failed, without a restart (a template's
    /// change script failed with `fail_on_error`).
    Fail { reason: String },
}

/// What a task runner tells its alloc runner.
#[derive(Clone, Debug)]
pub(crate) struct TaskReport {
    pub(crate) task: String,
    pub(crate) state: TaskState,
    pub(crate) finished: bool,
    pub(crate) failed: bool,
}

/// Everything a task runner needs.
pub(crate) struct TaskContext {
    pub(crate) driver: ExecDriver,
    pub(crate) node: Option<Node>,
    pub(crate) job: JobSummary,
    pub(crate) group: TaskGroup,
    pub(crate) alloc: Allocation,
    pub(crate) task: Task,
    pub(crate) alloc_dir: PathBuf,
    pub(crate) task_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    pub(crate) reports: mpsc::UnboundedSender<TaskReport>,
}

#[derive(Serialize, Deserialize)]
struct SupervisorFile {
    version: u32,
    task_state: TaskState,
    tracker: RestartTracker,
}

fn supervisor_path(task_dir: &Path) -> PathBuf {
    task_dir.join("supervisor.json")
}

fn load_supervisor_file(task_dir: &Path) -> Option<SupervisorFile> {
    let bytes = std::fs::read(supervisor_path(task_dir)).ok()?;
    let file: SupervisorFile = serde_json::from_slice(&bytes).ok()?;
    (file.version == SUPERVISOR_FILE_VERSION).then_some(file)
}

fn save_supervisor_file(task_dir: &Path, supervisor: &Supervisor) {
    let file = SupervisorFile {
        version: SUPERVISOR_FILE_VERSION,
        task_state: supervisor.task_state().clone(),
        tracker: supervisor.restart_tracker(),
    };
    let path = supervisor_path(task_dir);
    let temporary = task_dir.join("supervisor.json.tmp");
    let written = serde_json::to_vec(&file)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&temporary, bytes))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = written {
        tracing::warn!(%error, path = %path.display(), "cannot save task state");
    }
}

/// Runs one task until it is finished, stopped, or detached.
pub(crate) async fn run_task(context: TaskContext, mut control: mpsc::UnboundedReceiver<TaskControl>) {
    let task_name = context.task.name.clone();
    // A lifecycle task that is not a sidecar runs to completion once, in
    // any job (Nomad's rule): restarted only when it fails.
    let job_type = if context.task.lifecycle.is_some_and(|lifecycle| !lifecycle.sidecar) {
        drover_types::JobType::Batch
    } else {
        context.job.job_type
    };
    let config = match SupervisorConfig::for_task(&context.task, context.group.restart, job_type) {
        Ok(config) => config,
        Err(error) => {
            report_setup_failure(&context, format!("invalid task settings: {error}"));
            return;
        }
    };
    if let Err(error) = std::fs::create_dir_all(context.task_dir.join("local")) {
        report_setup_failure(&context, format!("cannot create the task directory: {error}"));
        return;
    }

    let persisted = load_supervisor_file(&context.task_dir);
    if persisted.is_none()
        && let Some(file) = &context.task.dispatch_payload
        && let Err(message) = write_payload(&context.task_dir, file, &context.job.payload)
    {
        report_failure(&context, TaskEventKind::TaskSetup, message);
        return;
    }
    if persisted.is_none()
        && (!context.task.artifacts.is_empty() || !context.task.templates.is_empty())
        && let Err(message) = prepare_files(&context).await
    {
        report_failure(&context, TaskEventKind::TaskSetup, message);
        return;
    }
    let mut events: VecDeque<Event> = VecDeque::new();
    let mut handle: Option<Arc<TaskHandle>> = None;
    let mut generation = 0u64;
    let (exit_sender, mut exit_receiver) = mpsc::unbounded_channel::<(u64, ExitResult)>();

    let mut supervisor = match persisted {
        Some(file) if file.task_state.state == TaskLifecycleState::Dead => {
            // Finished before the agent restarted: report and stay quiet.
            let _ = context.reports.send(TaskReport {
                task: task_name,
                failed: file.task_state.failed,
                state: file.task_state,
                finished: true,
            });
            return;
        }
        Some(file) => {
            let previous_pid = file.task_state.pid.unwrap_or(0);
            let supervisor = Supervisor::resume(config, file.task_state, file.tracker);
            match context.driver.reattach(&context.task_dir).await {
                Ok(ReattachOutcome::Running(task_handle)) => {
                    events.push_back(Event::Reattached { pid: task_handle.task_pid() });
                    generation += 1;
                    let task_handle: Arc<TaskHandle> = Arc::from(task_handle);
                    spawn_waiter(Arc::clone(&task_handle), generation, exit_sender.clone());
                    handle = Some(task_handle);
                }
                Ok(ReattachOutcome::Exited(result)) => {
                    events.push_back(Event::Reattached { pid: previous_pid });
                    events.push_back(exit_event(&result));
                }
                Ok(ReattachOutcome::Lost { reason }) => {
                    events.push_back(Event::Reattached { pid: previous_pid });
                    events.push_back(Event::DriverFailed { error: reason });
                }
                Ok(ReattachOutcome::NotStarted) => events.push_back(Event::Start),
                Err(error) => {
                    tracing::warn!(task = %task_name, %error, "cannot re-attach; starting the task again");
                    events.push_back(Event::Start);
                }
            }
            supervisor
        }
        None => {
            events.push_back(Event::Start);
            Supervisor::new(config, Timestamp::now())
        }
    };

    let mut timer: Option<Timestamp> = None;
    loop {
        let mut changed = false;
        let mut finished = false;
        while let Some(event) = events.pop_front() {
            for instruction in supervisor.handle(event, Timestamp::now()) {
                match instruction {
                    Instruction::Spawn => match spawn(&context).await {
                        Ok(task_handle) => {
                            generation += 1;
                            let task_handle = Arc::new(task_handle);
                            events.push_back(Event::Started { pid: task_handle.task_pid() });
                            spawn_waiter(Arc::clone(&task_handle), generation, exit_sender.clone());
                            handle = Some(task_handle);
                        }
                        Err(error) => events.push_back(Event::DriverFailed { error }),
                    },
                    Instruction::Kill { signal, timeout } => match &handle {
                        Some(task_handle) => {
                            let task_handle = Arc::clone(task_handle);
                            tokio::spawn(async move {
                                if let Err(error) = task_handle.stop(signal, timeout).await {
                                    tracing::warn!(%error, "stopping a task failed");
                                }
                            });
                        }
                        None => events.push_back(Event::Exited { exit_code: None, signal: None }),
                    },
                    Instruction::ScheduleTimer { at } => timer = Some(at),
                    Instruction::CancelTimer => timer = None,
                    Instruction::ReportEvent(_) | Instruction::ReportState { .. } => changed = true,
                    Instruction::Finished { .. } => {
                        finished = true;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            save_supervisor_file(&context.task_dir, &supervisor);
            let state = supervisor.task_state().clone();
            let _ = context.reports.send(TaskReport {
                task: task_name.clone(),
                failed: state.failed,
                state,
                finished: supervisor.is_finished(),
            });
        }
        if finished || supervisor.is_finished() {
            return;
        }

        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep(at.since(Timestamp::now())).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            request = control.recv() => match request {
                Some(TaskControl::Stop) => events.push_back(Event::StopRequested),
                Some(TaskControl::Restart { reason }) => events.push_back(Event::RestartRequested { reason }),
                Some(TaskControl::Note { kind, message }) => events.push_back(Event::Note { kind, message }),
                Some(TaskControl::Fail { reason }) => events.push_back(Event::FailRequested { reason }),
                Some(TaskControl::Signal { signal, reply }) => {
                    let sent = match &handle {
                        Some(task_handle) => task_handle.signal(signal).map_err(|error| error.to_string()),
                        None => Err(format!("task {task_name:?} is not running")),
                    };
                    let _ = reply.send(sent);
                }
                Some(TaskControl::Detach) | None => return,
            },
            Some((exited_generation, result)) = exit_receiver.recv() => {
                if exited_generation == generation {
                    handle = None;
                    events.push_back(exit_event(&result));
                }
            }
            () = sleep => {
                timer = None;
                events.push_back(Event::TimerFired);
            }
        }
    }
}

fn exit_event(result: &ExitResult) -> Event {
    match &result.executor_error {
        Some(error) => Event::DriverFailed { error: error.clone() },
        None => Event::Exited { exit_code: result.exit_code, signal: result.signal },
    }
}

fn spawn_waiter(handle: Arc<TaskHandle>, generation: u64, exits: mpsc::UnboundedSender<(u64, ExitResult)>) {
    tokio::spawn(async move {
        let result = handle.wait().await;
        let _ = exits.send((generation, result));
    });
}

/// Downloads the task's artifacts and renders its templates (see
/// `prepare.rs`), with the environment the task will have.
async fn prepare_files(context: &TaskContext) -> Result<(), String> {
    let working_dir = context.task_dir.join("local");
    let dirs = AllocDirs { alloc_dir: &context.alloc_dir, task_dir: &working_dir };
    let command_line =
        task_command_line(context.node.as_ref(), &context.job, &context.group, &context.alloc, &context.task, &dirs);
    let cluster = crate::templates::cluster_data(&context.alloc.node_id, &context.job.id);
    prepare_task_files(&context.task, &context.task_dir, &command_line.env, &cluster).await
}

/// Writes a dispatched job's payload to `local/<file>` in the task
/// directory (Nomad's `dispatch_payload`); an empty file when the dispatch
/// had none. The path is checked again here: the agent runs as root.
fn write_payload(task_dir: &Path, file: &str, payload: &[u8]) -> Result<(), String> {
    if let Some(problem) = drover_types::validate::dispatch_payload_problem(file) {
        return Err(problem);
    }
    let path = task_dir.join("local").join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {} for the dispatch payload: {error}", parent.display()))?;
    }
    std::fs::write(&path, payload)
        .map_err(|error| format!("cannot write the dispatch payload to {}: {error}", path.display()))
}

async fn spawn(context: &TaskContext) -> Result<TaskHandle, String> {
    let working_dir = context.task_dir.join("local");
    let dirs = AllocDirs { alloc_dir: &context.alloc_dir, task_dir: &working_dir };
    // The variables of `env = true` templates join the task's env block.
    let mut task = context.task.clone();
    task.env.extend(template_env(&context.task, &context.task_dir)?);
    let command_line =
        task_command_line(context.node.as_ref(), &context.job, &context.group, &context.alloc, &task, &dirs);
    let mut launch = TaskLaunch::from_task(&context.alloc.id, &context.task, command_line.env, context.log_dir.clone());
    launch.command = command_line.command;
    launch.args = command_line.args;
    if let Some(logs) = context.task.logs {
        launch.log_rotation = drover_executor::LogRotation {
            max_files: logs.max_files,
            max_file_bytes: logs.max_file_size_mb.saturating_mul(1024 * 1024),
        };
    }
    launch.working_dir = Some(working_dir);
    context.driver.start(&launch, &context.task_dir).await.map_err(|error| error.to_string())
}

fn report_setup_failure(context: &TaskContext, message: String) {
    report_failure(context, TaskEventKind::DriverFailure, message);
}

/// Reports the task dead and failed before it started, with one event of
/// `kind`.
fn report_failure(context: &TaskContext, kind: TaskEventKind, message: String) {
    let now = Timestamp::now();
    let mut state =
        TaskState { state: TaskLifecycleState::Dead, failed: true, finished_at: Some(now), ..Default::default() };
    state.push_event(TaskEvent { time: now, kind, message, exit_code: None, signal: None });
    let _ = context.reports.send(TaskReport { task: context.task.name.clone(), state, finished: true, failed: true });
}
