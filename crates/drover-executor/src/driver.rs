//! The agent's side of a task: start it through an executor shim, re-attach
//! to it after an agent restart, wait for it, signal and stop it.
//!
//! A [`TaskHandle`] watches the *shim*, not the task: the shim exits only
//! after it recorded the task's exit in `exit.json`, so "shim exited" plus
//! "exit.json exists" is the one reliable signal that the task is over and
//! its output is complete. A shim started by this agent is its child and is
//! reaped through tokio; a shim found by [`ExecDriver::reattach`] belongs
//! to an earlier agent, so it is watched through a pidfd, which becomes
//! readable when the process exits whether or not it is our child. A shim
//! that exits without `exit.json` was killed: its task can no longer be
//! captured, so the task's process group (and cgroup) is killed and the
//! result says so.
//!
//! Signals go to the task's process group (its pid, since the task leads
//! its group), so that children of a shell script are stopped with it.
//! Every recorded pid is checked against its recorded start time before it
//! is signalled, so a pid reused by an unrelated process is never hit.
//!
//! File work runs on tokio's blocking pool. The small reads of
//! `/proc/<pid>/stat` done inline are served from kernel memory and do not
//! block.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use drover_types::{AllocId, Driver, Resources, Task, Timestamp};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Mutex, OnceCell};
use tracing::{info, warn};

use crate::cgroup;
use crate::error::{ExecError, Result};
use crate::formats::{
    EXECUTOR_LOG_FILE, EXIT_FILE, ExecutorSpec, ExecutorState, ExitRecord, FORMAT_VERSION, LAUNCH_ERROR_FILE,
    LaunchFailure, SPEC_FILE, STATE_FILE, read_versioned, remove_if_exists, write_atomic,
};
use crate::isolation::{Isolation, NodeCpu};
use crate::log_rotate::LogRotation;
use crate::procfs::{self, Liveness};

/// `executor.log` is truncated at start when it grew beyond this.
const EXECUTOR_LOG_MAX_BYTES: u64 = 1024 * 1024;

/// How often `start` looks for the shim's state file.
const START_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Everything needed to start one task process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLaunch {
    /// The allocation the task belongs to (names its cgroup).
    pub alloc_id: AllocId,
    /// The task's name (names its log files and cgroup).
    pub task_name: String,
    /// `exec` (limits) or `raw_exec` (none).
    pub driver: Driver,
    /// Program: absolute path, or name looked up in `env`'s `PATH`.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// The complete environment, already interpolated.
    pub env: BTreeMap<String, String>,
    /// Working directory; the task directory when `None`.
    pub working_dir: Option<PathBuf>,
    /// User to run as (needs an agent running as root); the agent's user
    /// when `None`. The working directory must be accessible to that user;
    /// log files are written by the executor and need not be.
    pub user: Option<String>,
    /// CPU (MHz) and memory (MiB) of the task.
    pub resources: Resources,
    /// Also cap CPU hard with `cpu.max` (Nomad's `cpu_hard_limit`), where
    /// cgroup limits are available.
    pub cpu_hard_limit: bool,
    /// Directory of the rotating output files (Nomad's `alloc/logs`).
    pub log_dir: PathBuf,
    /// Size and number of output files.
    pub log_rotation: LogRotation,
}

impl TaskLaunch {
    /// The launch of `task` of allocation `alloc_id`, with the environment
    /// the agent built (`task.env` interpolated, plus drover's variables)
    /// and the allocation's log directory.
    pub fn from_task(alloc_id: &AllocId, task: &Task, env: BTreeMap<String, String>, log_dir: PathBuf) -> Self {
        TaskLaunch {
            alloc_id: alloc_id.clone(),
            task_name: task.name.clone(),
            driver: task.driver,
            command: task.config.command.clone(),
            args: task.config.args.clone(),
            env,
            working_dir: None,
            user: task.user.clone(),
            resources: task.resources,
            cpu_hard_limit: false,
            log_dir,
            log_rotation: LogRotation::DEFAULT,
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(ExecError::InvalidLaunch { message });
        if self.task_name.is_empty() || self.task_name == "." || self.task_name == ".." || self.task_name.contains('/')
        {
            return invalid(format!(
                "task name {:?} cannot name files: use letters, digits, '-' or '_'",
                self.task_name
            ));
        }
        if self.command.is_empty() {
            return invalid(format!("task {:?} has an empty command", self.task_name));
        }
        Ok(())
    }
}

/// How the driver runs the executor shim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// The program to run, normally the `drover` binary itself.
    pub executor_program: PathBuf,
    /// Arguments before the task directory, normally `["executor"]`.
    pub executor_args: Vec<OsString>,
    /// How long the shim may take to start the task (10 s by default).
    pub start_timeout: Duration,
    /// The node's CPU, needed for `cpu_hard_limit`; without it no hard CPU
    /// cap is set.
    pub node_cpu: Option<NodeCpu>,
}

impl DriverConfig {
    /// Runs `program ARGS… <task-dir>` as the shim.
    pub fn new(program: impl Into<PathBuf>, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        DriverConfig {
            executor_program: program.into(),
            executor_args: args.into_iter().map(Into::into).collect(),
            start_timeout: Duration::from_secs(10),
            node_cpu: None,
        }
    }

    /// Runs the current executable as `<exe> executor <task-dir>`: the
    /// configuration of the `drover` binary.
    pub fn current_exe() -> Result<Self> {
        let program = std::env::current_exe()
            .map_err(|error| ExecError::io("finding the current executable", "/proc/self/exe", error))?;
        Ok(Self::new(program, ["executor"]))
    }
}

/// Starts tasks and re-attaches to running ones.
#[derive(Clone, Debug)]
pub struct ExecDriver {
    config: DriverConfig,
    isolation: Isolation,
}

/// How a task ended, as [`TaskHandle::wait`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitResult {
    /// Exit code, when the task exited by itself.
    pub exit_code: Option<i32>,
    /// Signal that killed the task, when one did.
    pub signal: Option<i32>,
    /// Whether the OOM killer struck (only known with a cgroup memory
    /// limit).
    pub oom_killed: bool,
    /// When the exit was seen.
    pub finished_at: Timestamp,
    /// Set when the executor shim died without recording the exit: the task
    /// was lost and its processes killed. The agent reports this as a
    /// driver failure.
    pub executor_error: Option<String>,
}

impl ExitResult {
    /// Whether the task exited with code 0.
    pub fn is_success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none() && self.executor_error.is_none()
    }
}

impl From<ExitRecord> for ExitResult {
    fn from(record: ExitRecord) -> Self {
        ExitResult {
            exit_code: record.exit_code,
            signal: record.signal,
            oom_killed: record.oom_killed,
            finished_at: record.finished_at,
            executor_error: None,
        }
    }
}

/// What [`ExecDriver::reattach`] found in a task directory.
#[derive(Debug)]
pub enum ReattachOutcome {
    /// The shim (and normally the task) still runs: supervise it.
    Running(Box<TaskHandle>),
    /// The task exited while no agent was attached.
    Exited(ExitResult),
    /// The shim died without recording the task's exit, or the node
    /// rebooted; the task's remaining processes were killed.
    Lost {
        /// What happened, for a `Driver Failure` event.
        reason: String,
    },
    /// No task was ever started in this directory (or its start failed).
    NotStarted,
}

/// The shim process a handle watches.
#[derive(Debug)]
enum ExecutorProcess {
    /// Started by this process: reaped through tokio.
    Child(Mutex<tokio::process::Child>),
    /// Started by an earlier agent: watched through a pidfd.
    Pidfd(AsyncFd<OwnedFd>),
}

/// A running task (through its shim).
///
/// Dropping the handle leaves the task running: that is how an agent
/// shuts down without disturbing its tasks.
#[derive(Debug)]
pub struct TaskHandle {
    task_dir: PathBuf,
    state: ExecutorState,
    executor: ExecutorProcess,
    result: OnceCell<ExitResult>,
}

/// Parses a signal name as written in job files: `SIGINT`, `INT`, `sigterm`.
pub fn parse_signal(name: &str) -> Result<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&full).map_err(|_| ExecError::UnknownSignal { name: name.to_owned() })
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join_error| Err(ExecError::io("running", "blocking task", io::Error::other(join_error))))
}

impl ExecDriver {
    /// A driver running shims as `config` says, with limits as `isolation`
    /// allows (normally [`Isolation::detect`]).
    pub fn new(config: DriverConfig, isolation: Isolation) -> Self {
        ExecDriver { config, isolation }
    }

    /// The node's isolation, for node facts.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// The `executor.json` a launch turns into: every decision about limits
    /// and placement, made here so that the shim only carries it out.
    pub fn executor_spec(&self, launch: &TaskLaunch, task_dir: &Path) -> ExecutorSpec {
        let (cgroup, rlimits) = self.isolation.plan_limits(
            &launch.alloc_id,
            &launch.task_name,
            launch.driver,
            launch.resources,
            launch.cpu_hard_limit,
            self.config.node_cpu,
        );
        ExecutorSpec {
            version: FORMAT_VERSION,
            task_name: launch.task_name.clone(),
            command: launch.command.clone(),
            args: launch.args.clone(),
            env: launch.env.clone(),
            working_dir: launch.working_dir.clone().unwrap_or_else(|| task_dir.to_owned()),
            user: launch.user.clone(),
            cgroup,
            rlimits,
            log_dir: launch.log_dir.clone(),
            log_rotation: launch.log_rotation,
        }
    }

    /// Starts the task through a new shim in `task_dir` and waits (up to the
    /// start timeout) until the shim reports the task started.
    ///
    /// Errors: the launch is invalid, an executor still runs in the
    /// directory, the shim could not start the task (bad command, unknown
    /// user, …: [`ExecError::Launch`]), or it did not report in time.
    ///
    /// Cancelling the returned future leaves a shim that already started
    /// running; [`ExecDriver::reattach`] finds it.
    pub async fn start(&self, launch: &TaskLaunch, task_dir: &Path) -> Result<TaskHandle> {
        launch.validate()?;
        let spec = self.executor_spec(launch, task_dir);
        let dir = task_dir.to_owned();
        let executor_log = blocking(move || prepare_task_dir(&dir, &spec)).await?;

        let mut command = tokio::process::Command::new(&self.config.executor_program);
        command
            .args(&self.config.executor_args)
            .arg(task_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(executor_log)
            .kill_on_drop(false);
        start_new_session(&mut command);
        let mut child = command
            .spawn()
            .map_err(|source| ExecError::SpawnExecutor { program: self.config.executor_program.clone(), source })?;

        let log_path = task_dir.join(EXECUTOR_LOG_FILE);
        let deadline = Instant::now() + self.config.start_timeout;
        let state = loop {
            match read_startup(task_dir).await? {
                Startup::Started(state) => break state,
                Startup::Failed(failure) => {
                    let _ = child.wait().await;
                    return Err(ExecError::Launch { message: failure.message });
                }
                Startup::Pending => {}
            }
            let exited = child.try_wait().map_err(|error| ExecError::io("waiting for", &log_path, error))?;
            if let Some(status) = exited {
                // A task that exits at once can be recorded and gone
                // between two looks: check once more.
                match read_startup(task_dir).await? {
                    Startup::Started(state) => break state,
                    Startup::Failed(failure) => return Err(ExecError::Launch { message: failure.message }),
                    Startup::Pending => {
                        let log = log_path.clone();
                        let detail = blocking(move || Ok(read_log_end(&log))).await.unwrap_or_default();
                        return Err(ExecError::ExecutorExited { status: status.to_string(), log: log_path, detail });
                    }
                }
            }
            if Instant::now() >= deadline {
                let _ = child.start_kill();
                let _ = child.wait().await;
                // The task may have started after all: take it down.
                if let Startup::Started(state) = read_startup(task_dir).await? {
                    kill_task_tree_in_background(state).await;
                }
                return Err(ExecError::StartTimeout { waited: self.config.start_timeout, log: log_path });
            }
            tokio::time::sleep(START_POLL_INTERVAL).await;
        };
        info!(task = %launch.task_name, task_pid = state.task_pid, executor_pid = state.executor_pid, "task started");
        Ok(TaskHandle {
            task_dir: task_dir.to_owned(),
            state,
            executor: ExecutorProcess::Child(Mutex::new(child)),
            result: OnceCell::new(),
        })
    }

    /// Finds the task a shim runs (or ran) in `task_dir`, as a restarted
    /// agent does for every task it had.
    ///
    /// The shim and task are only taken as running when their pids still
    /// belong to processes with the recorded start times, in this boot.
    /// When the shim is gone without a recorded exit, the task's leftover
    /// processes are killed and the outcome is [`ReattachOutcome::Lost`].
    pub async fn reattach(&self, task_dir: &Path) -> Result<ReattachOutcome> {
        let dir = task_dir.to_owned();
        let (state, exit) = blocking(move || {
            let state: Option<ExecutorState> = read_versioned(&dir.join(STATE_FILE), "executor state")?;
            let exit: Option<ExitRecord> = read_versioned(&dir.join(EXIT_FILE), "exit")?;
            Ok((state, exit))
        })
        .await?;
        if let Some(exit) = exit {
            return Ok(ReattachOutcome::Exited(exit.into()));
        }
        let Some(state) = state else { return Ok(ReattachOutcome::NotStarted) };
        let boot_id =
            procfs::boot_id().map_err(|error| ExecError::io("reading", "/proc/sys/kernel/random/boot_id", error))?;
        if state.boot_id != boot_id {
            return Ok(ReattachOutcome::Lost { reason: "the node rebooted while the task was running".to_owned() });
        }

        // The pidfd is opened *before* the identity check: if the check
        // then finds the recorded process, that process existed (with this
        // pid) when the pidfd was opened, so the pidfd refers to it.
        let pidfd = open_pidfd(state.executor_pid);
        let executor = procfs::liveness(state.executor_pid, state.executor_start_time);
        if let (Liveness::Running, Some(pidfd)) = (executor, pidfd) {
            let pidfd =
                watch_pidfd(pidfd).map_err(|error| ExecError::io("watching the executor of", task_dir, error))?;
            info!(task_dir = %task_dir.display(), task_pid = state.task_pid, executor_pid = state.executor_pid, "reattached");
            return Ok(ReattachOutcome::Running(Box::new(TaskHandle {
                task_dir: task_dir.to_owned(),
                state,
                executor: ExecutorProcess::Pidfd(pidfd),
                result: OnceCell::new(),
            })));
        }

        // The shim is gone. It may have finished just now.
        let exit_path = task_dir.join(EXIT_FILE);
        if let Some(exit) = blocking(move || read_versioned::<ExitRecord>(&exit_path, "exit")).await? {
            return Ok(ReattachOutcome::Exited(exit.into()));
        }
        let executor_pid = state.executor_pid;
        kill_task_tree_in_background(state).await;
        let reason = format!(
            "the executor (pid {executor_pid}) died while the agent was away, without recording the task's exit; \
             the task's processes were killed"
        );
        warn!(task_dir = %task_dir.display(), %reason, "task lost");
        Ok(ReattachOutcome::Lost { reason })
    }
}

impl TaskHandle {
    /// The task's pid (also its process group id).
    pub fn task_pid(&self) -> u32 {
        self.state.task_pid
    }

    /// The shim's pid.
    pub fn executor_pid(&self) -> u32 {
        self.state.executor_pid
    }

    /// What the shim recorded at start.
    pub fn state(&self) -> &ExecutorState {
        &self.state
    }

    /// The task directory.
    pub fn task_dir(&self) -> &Path {
        &self.task_dir
    }

    /// Resolves when the task has exited and the shim recorded it (output
    /// complete, cgroup removed), or when the shim died — then the task's
    /// processes are killed and [`ExitResult::executor_error`] says so.
    ///
    /// Can be awaited from several places and again after it resolved; it
    /// is cancellation-safe.
    pub async fn wait(&self) -> ExitResult {
        self.result.get_or_init(|| self.observe_exit()).await.clone()
    }

    /// Stops the task: sends `signal` to its process group, waits up to
    /// `kill_timeout` for the task to exit, then SIGKILLs the group and its
    /// cgroup. Returns once the task's main process has exited (or 5 s
    /// after the SIGKILL); [`TaskHandle::wait`] then gives the result.
    pub async fn stop(&self, signal: Signal, kill_timeout: Duration) -> Result<()> {
        let Some(task_exit) = self.task_pidfd()? else { return Ok(()) };
        self.signal_group(signal)?;
        if tokio::time::timeout(kill_timeout, task_exit.readable()).await.is_ok() {
            return Ok(());
        }
        warn!(task_pid = self.state.task_pid, %signal, ?kill_timeout, "task ignored its kill signal, sending SIGKILL");
        kill_task_tree_in_background(self.state.clone()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), task_exit.readable()).await;
        Ok(())
    }

    /// Sends `signal` to the task's main process only (as Nomad's
    /// `alloc signal` does): a reload signal such as SIGHUP is meant for the
    /// process that reads the configuration, not for each of its workers.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let target = format!("process {}", self.state.task_pid);
        let pidfd = self.task_pidfd()?.ok_or(ExecError::NotRunning { pid: self.state.task_pid })?;
        let rustix_signal = rustix::process::Signal::from_named_raw(signal as i32)
            .ok_or(ExecError::UnknownSignal { name: signal.to_string() })?;
        rustix::process::pidfd_send_signal(pidfd.get_ref(), rustix_signal).map_err(|errno| ExecError::Signal {
            signal,
            target,
            source: nix::Error::from_raw(errno.raw_os_error()),
        })
    }

    /// A pidfd of the task's main process, if it still runs.
    fn task_pidfd(&self) -> Result<Option<AsyncFd<OwnedFd>>> {
        let Some(pidfd) = open_pidfd(self.state.task_pid) else { return Ok(None) };
        if procfs::liveness(self.state.task_pid, self.state.task_start_time) != Liveness::Running {
            return Ok(None);
        }
        watch_pidfd(pidfd).map(Some).map_err(|error| ExecError::io("watching the task in", &self.task_dir, error))
    }

    /// Sends `signal` to the task's process group.
    fn signal_group(&self, signal: Signal) -> Result<()> {
        let pgid = self.state.task_pgid;
        if procfs::liveness(self.state.task_pid, self.state.task_start_time) == Liveness::Reused {
            return Ok(());
        }
        let Some(raw_pgid) = i32::try_from(pgid).ok().filter(|pgid| *pgid > 1) else {
            return Err(ExecError::NotRunning { pid: pgid });
        };
        match killpg(Pid::from_raw(raw_pgid), signal) {
            Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
            Err(source) => Err(ExecError::Signal { signal, target: format!("process group {pgid}"), source }),
        }
    }

    async fn observe_exit(&self) -> ExitResult {
        self.wait_for_executor().await;
        let exit_path = self.task_dir.join(EXIT_FILE);
        match blocking(move || read_versioned::<ExitRecord>(&exit_path, "exit")).await {
            Ok(Some(record)) => record.into(),
            Ok(None) => self.executor_died("exited without recording the task's exit".to_owned()).await,
            Err(error) => self.executor_died(format!("left an unreadable exit record ({error})")).await,
        }
    }

    async fn wait_for_executor(&self) {
        let watched = match &self.executor {
            ExecutorProcess::Child(child) => child.lock().await.wait().await.map(drop),
            ExecutorProcess::Pidfd(pidfd) => pidfd.readable().await.map(drop),
        };
        if let Err(wait_error) = watched {
            // Should not happen; fall back to polling /proc.
            warn!(executor_pid = self.state.executor_pid, %wait_error, "cannot wait for the executor, polling instead");
            while procfs::liveness(self.state.executor_pid, self.state.executor_start_time) == Liveness::Running {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn executor_died(&self, what: String) -> ExitResult {
        let message =
            format!("the executor (pid {}) {what}; the task's processes were killed", self.state.executor_pid);
        warn!(task_pid = self.state.task_pid, %message, "task lost");
        kill_task_tree_in_background(self.state.clone()).await;
        ExitResult {
            exit_code: None,
            signal: None,
            oom_killed: false,
            finished_at: Timestamp::now(),
            executor_error: Some(message),
        }
    }
}

/// What the shim has reported so far.
enum Startup {
    Pending,
    Started(ExecutorState),
    Failed(LaunchFailure),
}

async fn read_startup(task_dir: &Path) -> Result<Startup> {
    let dir = task_dir.to_owned();
    blocking(move || {
        if let Some(state) = read_versioned(&dir.join(STATE_FILE), "executor state")? {
            return Ok(Startup::Started(state));
        }
        if let Some(failure) = read_versioned(&dir.join(LAUNCH_ERROR_FILE), "launch error")? {
            return Ok(Startup::Failed(failure));
        }
        Ok(Startup::Pending)
    })
    .await
}

/// Creates the task directory, refuses to start over a live shim, clears
/// the previous run's files, writes `executor.json` and opens
/// `executor.log` for the shim's stderr.
fn prepare_task_dir(task_dir: &Path, spec: &ExecutorSpec) -> Result<fs::File> {
    fs::create_dir_all(task_dir).map_err(|error| ExecError::io("creating", task_dir, error))?;
    let state_path = task_dir.join(STATE_FILE);
    let exit_path = task_dir.join(EXIT_FILE);
    // A readable state without an exit may belong to a live shim. An
    // unreadable one is overwritten below, like any stale file.
    if let Ok(Some(state)) = read_versioned::<ExecutorState>(&state_path, "executor state")
        && !exit_path.exists()
        && procfs::liveness(state.executor_pid, state.executor_start_time) == Liveness::Running
    {
        return Err(ExecError::AlreadyRunning { task_dir: task_dir.to_owned(), pid: state.executor_pid });
    }
    for stale in [&state_path, &exit_path, &task_dir.join(LAUNCH_ERROR_FILE)] {
        remove_if_exists(stale)?;
    }
    write_atomic(&task_dir.join(SPEC_FILE), spec)?;
    let log_path = task_dir.join(EXECUTOR_LOG_FILE);
    let too_big = fs::metadata(&log_path).is_ok_and(|metadata| metadata.len() > EXECUTOR_LOG_MAX_BYTES);
    fs::OpenOptions::new()
        .create(true)
        .append(!too_big)
        .write(true)
        .truncate(too_big)
        .open(&log_path)
        .map_err(|error| ExecError::io("opening", &log_path, error))
}

/// The last lines of the shim's log, for an error message.
fn read_log_end(path: &Path) -> String {
    let Ok(mut file) = fs::File::open(path) else { return String::new() };
    let len = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(2048)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let last_lines: Vec<&str> = text.lines().rev().take(5).collect();
    if last_lines.is_empty() {
        return String::new();
    }
    let joined: Vec<&str> = last_lines.into_iter().rev().collect();
    format!(": {}", joined.join(" | "))
}

/// A pidfd for `pid`; `None` when there is no such process.
fn open_pidfd(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok()
}

/// [`kill_task_tree`] on the blocking pool (it may sleep while removing
/// the cgroup).
async fn kill_task_tree_in_background(state: ExecutorState) {
    if let Err(join_error) = tokio::task::spawn_blocking(move || kill_task_tree(&state)).await {
        warn!(%join_error, "killing the task's processes failed");
    }
}

/// Registers a pidfd with tokio's reactor: it becomes readable when the
/// process exits.
#[allow(unsafe_code)]
fn watch_pidfd(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `register` needs the descriptor to stay open and unchanged
    // while registered. An `OwnedFd` owns its descriptor, closes it only
    // when dropped (after the `AsyncFd` deregistered it) and always returns
    // the same raw descriptor.
    unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }.map_err(|error| error.into_parts().1)
}

/// SIGKILLs the task's process group and cgroup, and removes the cgroup.
///
/// The group is skipped when the task's pid now belongs to another
/// process: a pid is never reused while it is still some process's group
/// id, so a reused pid means the group is empty.
fn kill_task_tree(state: &ExecutorState) {
    if procfs::liveness(state.task_pid, state.task_start_time) != Liveness::Reused
        && let Some(raw_pgid) = i32::try_from(state.task_pgid).ok().filter(|pgid| *pgid > 1)
    {
        let _ = killpg(Pid::from_raw(raw_pgid), Signal::SIGKILL);
    }
    if let Some(path) = &state.cgroup {
        if let Err(kill_error) = cgroup::kill_all(path) {
            warn!(%kill_error, cgroup = %path.display(), "cannot kill the task's cgroup");
        }
        if let Err(remove_error) = cgroup::remove(path, Duration::from_secs(1)) {
            warn!(%remove_error, "cannot remove the task's cgroup");
        }
    }
}

/// Makes the shim a session leader before it runs, so that neither the
/// agent's terminal (Ctrl-C, hang-up) nor the agent's process group reach
/// it, not even in the instant before the shim could detach itself.
#[allow(unsafe_code)]
fn start_new_session(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe, allocates nothing and
    // takes no locks.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_parse_with_or_without_prefix() {
        assert_eq!(parse_signal("SIGINT").unwrap(), Signal::SIGINT);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal(" sighup ").unwrap(), Signal::SIGHUP);
        assert!(matches!(parse_signal("SIGNOPE"), Err(ExecError::UnknownSignal { .. })));
    }

    #[test]
    fn task_names_that_cannot_name_files_are_refused() {
        let launch = TaskLaunch {
            alloc_id: AllocId::new("a1"),
            task_name: "../etc".into(),
            driver: Driver::RawExec,
            command: "true".into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            user: None,
            resources: Resources::default(),
            cpu_hard_limit: false,
            log_dir: "/tmp".into(),
            log_rotation: LogRotation::DEFAULT,
        };
        assert!(matches!(launch.validate(), Err(ExecError::InvalidLaunch { .. })));
        let good = TaskLaunch { task_name: "web".into(), ..launch };
        assert!(good.validate().is_ok());
    }
}
