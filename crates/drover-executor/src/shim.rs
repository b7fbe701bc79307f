//! The executor shim: the process that owns one task process.
//!
//! `drover executor <task-dir>` runs [`run_executor`]. It is deliberately
//! plain synchronous code with threads — it supervises exactly one child,
//! and every extra moving part is one more way to lose a task when the
//! agent is gone. Its life:
//!
//! ```text
//!   setsid ─▶ read executor.json ─▶ open log files ─▶ create cgroup
//!     ─▶ spawn task (new process group; in the child before exec: join the
//!        cgroup, set rlimits, drop to the user)
//!     ─▶ start stdout/stderr pumps ─▶ write executor-state.json
//!     ─▶ wait for the task (without reaping it yet)
//!     ─▶ SIGKILL what is left of its process group and cgroup ─▶ reap
//!     ─▶ drain the pumps ─▶ remove the cgroup ─▶ write exit.json ─▶ exit
//! ```
//!
//! A task is its whole process tree: when the main process exits, the
//! processes it left behind are killed, so a restart never piles up
//! stragglers. The group is killed *before* the main process is reaped:
//! while the zombie exists its pid, which is also the group id, cannot be
//! given to an unrelated process that `killpg` would then hit.
//!
//! Anything that goes wrong before the task runs is written to
//! `launch-error.json`, which the driver turns into the start error.
//! Diagnostics go to stderr through `tracing`; the driver points the shim's
//! stderr at `executor.log` in the task directory.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use drover_types::Timestamp;
use nix::errno::Errno;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{Gid, Pid, Uid, User, geteuid, getgrouplist, setgid, setgroups, setuid};
use tracing::{error, info, warn};

use crate::cgroup;
use crate::formats::{
    EXIT_FILE, ExecutorSpec, ExecutorState, ExitRecord, FORMAT_VERSION, LAUNCH_ERROR_FILE, LaunchFailure, SPEC_FILE,
    STATE_FILE, read_versioned, write_atomic,
};
use crate::log_rotate::{LogStream, RotatingWriter};
use crate::procfs;

/// `PATH` given to tasks whose environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long the pumps may take to drain the pipes after the task's
/// process tree was killed. Only a process that escaped both the process
/// group and the cgroup can hold a pipe open longer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the executor shim for the task directory `task_dir`: starts the
/// task described by its `executor.json`, captures its output, waits for
/// it and records its exit. This is the body of the hidden
/// `drover executor <task-dir>` subcommand.
///
/// Returns success once `exit.json` is written, failure when the task
/// could not be started (the reason is in `launch-error.json`) or its exit
/// could not be recorded.
pub fn run_executor(task_dir: &Path) -> ExitCode {
    // Our own session, so that the terminal signals of the agent's session
    // (Ctrl-C, hang-up) never reach us. The driver already made us a
    // session leader, in which case this fails harmlessly.
    let _ = nix::unistd::setsid();
    let running = match launch(task_dir) {
        Ok(running) => running,
        Err(message) => {
            error!(task_dir = %task_dir.display(), %message, "task launch failed");
            let failure = LaunchFailure { version: FORMAT_VERSION, message, failed_at: Timestamp::now() };
            if let Err(write_error) = write_atomic(&task_dir.join(LAUNCH_ERROR_FILE), &failure) {
                error!(%write_error, "cannot record the launch failure");
            }
            return ExitCode::FAILURE;
        }
    };
    let record = running.wait_and_clean_up();
    match write_atomic(&task_dir.join(EXIT_FILE), &record) {
        Ok(()) => ExitCode::SUCCESS,
        Err(write_error) => {
            error!(%write_error, "cannot record the task's exit");
            ExitCode::FAILURE
        }
    }
}

/// A started task and what the shim keeps for it.
struct RunningTask {
    spec: ExecutorSpec,
    child: Child,
    /// The cgroup the task was placed in, if it got one.
    cgroup: Option<std::path::PathBuf>,
    pumps_done: mpsc::Receiver<()>,
    num_pumps: usize,
}

/// What is applied in the child between `fork` and `exec`.
struct ChildSetup {
    /// `cgroup.procs` of the task's cgroup, opened by the shim.
    cgroup_procs: Option<OwnedFd>,
    /// `RLIMIT_DATA` in bytes.
    data_limit: Option<u64>,
    /// Who to become.
    credentials: Option<Credentials>,
}

/// A user to switch to, resolved before the fork.
struct Credentials {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

impl ChildSetup {
    /// Runs in the child between `fork` and `exec`: joins the cgroup (while
    /// still privileged), sets the rlimits, then drops to the user —
    /// supplementary groups first, then the group, then the user, since
    /// each step needs the privileges the next one gives up.
    fn apply(&self) -> io::Result<()> {
        if let Some(procs) = &self.cgroup_procs {
            // "0" moves the writing process itself.
            rustix::io::write(procs, b"0")?;
        }
        if let Some(limit) = self.data_limit {
            setrlimit(Resource::RLIMIT_DATA, limit, limit)?;
        }
        if let Some(credentials) = &self.credentials {
            setgroups(&credentials.groups)?;
            setgid(credentials.gid)?;
            setuid(credentials.uid)?;
        }
        Ok(())
    }

    #[allow(unsafe_code)]
    fn install(self, command: &mut Command) {
        // SAFETY: the closure runs in the forked child, where only
        // async-signal-safe operations are allowed. `apply` only makes
        // plain system calls (write, setrlimit, setgroups, setgid, setuid)
        // on values prepared before the fork; it neither allocates nor
        // takes locks (error values are built from raw errno numbers).
        unsafe {
            command.pre_exec(move || self.apply());
        }
    }
}

/// Reads the spec, prepares logs and cgroup, starts the task and records
/// its identity. Errors are messages for the operator.
fn launch(task_dir: &Path) -> Result<RunningTask, String> {
    let spec: ExecutorSpec = read_versioned(&task_dir.join(SPEC_FILE), "executor spec")
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("{} is missing", task_dir.join(SPEC_FILE).display()))?;

    // Output files first: a task whose output cannot be stored does not
    // start.
    let open_log = |stream| {
        RotatingWriter::open(&spec.log_dir, &spec.task_name, stream, spec.log_rotation)
            .map_err(|error| format!("cannot open the {} log in {}: {error}", stream.as_str(), spec.log_dir.display()))
    };
    let stdout_log = open_log(LogStream::Stdout)?;
    let stderr_log = open_log(LogStream::Stderr)?;

    let credentials = match &spec.user {
        Some(user) => resolve_user(user)?,
        None => None,
    };

    let (cgroup, cgroup_procs) = match &spec.cgroup {
        None => (None, None),
        Some(placement) => match cgroup::create(placement).and_then(|()| cgroup::open_procs(&placement.path)) {
            Ok(procs) => (Some(placement.path.clone()), Some(OwnedFd::from(procs))),
            Err(error) => {
                let has_limits = placement.memory_max_bytes.is_some()
                    || placement.cpu_weight.is_some()
                    || placement.cpu_max.is_some();
                if has_limits {
                    return Err(format!("cannot set up the task's cgroup: {error}"));
                }
                // Tracking only: the process group still works.
                warn!(cgroup = %placement.path.display(), %error, "cannot create the tracking cgroup, continuing without");
                let _ = cgroup::remove(&placement.path, Duration::ZERO);
                (None, None)
            }
        },
    };

    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The task leads its own process group, so that it and its children
        // can be signalled together.
        .process_group(0);
    if !spec.env.contains_key("PATH") {
        command.env("PATH", DEFAULT_PATH);
    }
    ChildSetup { cgroup_procs, data_limit: spec.rlimits.data_bytes, credentials }.install(&mut command);
    let spawned = command.spawn();
    // Closes the shim's copy of cgroup.procs (held by the closure).
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            if let Some(path) = &cgroup {
                let _ = cgroup::remove(path, Duration::from_secs(1));
            }
            return Err(format!("cannot run {:?} in {}: {error}", spec.command, spec.working_dir.display()));
        }
    };

    let started = (|| -> Result<(ExecutorState, mpsc::Receiver<()>, usize), String> {
        let task_pid = child.id();
        let task_stat = procfs::read_stat(task_pid)
            .ok()
            .flatten()
            .ok_or_else(|| format!("cannot read /proc/{task_pid}/stat of the task"))?;
        let own_pid = std::process::id();
        let own_stat = procfs::read_stat(own_pid)
            .ok()
            .flatten()
            .ok_or_else(|| format!("cannot read /proc/{own_pid}/stat of the executor"))?;
        let boot_id = procfs::boot_id().map_err(|error| format!("cannot read the boot id: {error}"))?;

        let (done_sender, pumps_done) = mpsc::channel();
        let mut num_pumps = 0;
        if let Some(stdout) = child.stdout.take() {
            spawn_pump(LogStream::Stdout, stdout, stdout_log, done_sender.clone())?;
            num_pumps += 1;
        }
        if let Some(stderr) = child.stderr.take() {
            spawn_pump(LogStream::Stderr, stderr, stderr_log, done_sender)?;
            num_pumps += 1;
        }

        let state = ExecutorState {
            version: FORMAT_VERSION,
            boot_id,
            executor_pid: own_pid,
            executor_start_time: own_stat.start_time,
            task_pid,
            task_pgid: task_pid,
            task_start_time: task_stat.start_time,
            cgroup: cgroup.clone(),
            started_at: Timestamp::now(),
        };
        write_atomic(&task_dir.join(STATE_FILE), &state).map_err(|error| error.to_string())?;
        Ok((state, pumps_done, num_pumps))
    })();

    match started {
        Ok((state, pumps_done, num_pumps)) => {
            info!(task = %spec.task_name, task_pid = state.task_pid, cgroup = ?state.cgroup, "task started");
            Ok(RunningTask { spec, child, cgroup, pumps_done, num_pumps })
        }
        Err(message) => {
            // Nobody would supervise the task: take it down again.
            kill_tree(child.id(), cgroup.as_deref());
            let _ = child.wait();
            if let Some(path) = &cgroup {
                let _ = cgroup::remove(path, Duration::from_secs(1));
            }
            Err(message)
        }
    }
}

impl RunningTask {
    /// Waits for the task, cleans up its process tree, output and cgroup,
    /// and says how it ended.
    fn wait_and_clean_up(mut self) -> ExitRecord {
        let task_pid = self.child.id();
        wait_without_reaping(task_pid);
        let finished_at = Timestamp::now();
        let oom_killed = match (&self.cgroup, &self.spec.cgroup) {
            (Some(path), Some(placement)) if placement.memory_max_bytes.is_some() => {
                cgroup::oom_kill_count(path).is_some_and(|count| count > 0)
            }
            _ => false,
        };
        kill_tree(task_pid, self.cgroup.as_deref());
        let (exit_code, signal) = match self.child.wait() {
            Ok(status) => (status.code(), status.signal()),
            Err(wait_error) => {
                error!(task_pid, %wait_error, "cannot reap the task");
                (None, None)
            }
        };
        info!(task = %self.spec.task_name, task_pid, exit_code, signal, oom_killed, "task exited");

        let deadline = Instant::now() + DRAIN_TIMEOUT;
        for _ in 0..self.num_pumps {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if self.pumps_done.recv_timeout(remaining).is_err() {
                warn!(task_pid, "task output still open after the task's processes were killed, not waiting for it");
                break;
            }
        }
        if let Some(path) = &self.cgroup
            && let Err(remove_error) = cgroup::remove(path, Duration::from_secs(2))
        {
            warn!(%remove_error, "cannot remove the task's cgroup");
        }
        ExitRecord { version: FORMAT_VERSION, exit_code, signal, oom_killed, finished_at }
    }
}

/// Blocks until the task exits, leaving it a zombie (`WNOWAIT`) so that
/// its pid stays reserved.
fn wait_without_reaping(task_pid: u32) {
    let Ok(raw_pid) = i32::try_from(task_pid) else { return };
    loop {
        match waitid(Id::Pid(Pid::from_raw(raw_pid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => continue,
            // Ok, or an error from decoding an unusual status: either way
            // the task has exited or cannot be waited for; the reaping
            // `wait` reports the real status.
            _ => return,
        }
    }
}

/// SIGKILLs the task's process group and cgroup. Errors mean there was
/// nothing left to kill.
fn kill_tree(task_pid: u32, cgroup: Option<&Path>) {
    if let Ok(raw_pid) = i32::try_from(task_pid)
        && raw_pid > 1
    {
        let _ = killpg(Pid::from_raw(raw_pid), Signal::SIGKILL);
    }
    if let Some(path) = cgroup
        && let Err(kill_error) = cgroup::kill_all(path)
    {
        warn!(%kill_error, cgroup = %path.display(), "cannot kill the task's cgroup");
    }
}

/// Looks up `name`; `None` when no switch is needed (the shim already runs
/// as that user).
fn resolve_user(name: &str) -> Result<Option<Credentials>, String> {
    let user = User::from_name(name)
        .map_err(|error| format!("cannot look up user {name:?}: {error}"))?
        .ok_or_else(|| format!("user {name:?} does not exist on this node"))?;
    let current = geteuid();
    if current == user.uid {
        return Ok(None);
    }
    if !current.is_root() {
        return Err(format!(
            "running a task as user {name:?} needs the agent to run as root (it runs as uid {current})"
        ));
    }
    let c_name = CString::new(name).map_err(|_| format!("user name {name:?} contains a NUL byte"))?;
    let groups =
        getgrouplist(&c_name, user.gid).map_err(|error| format!("cannot read the groups of user {name:?}: {error}"))?;
    Ok(Some(Credentials { uid: user.uid, gid: user.gid, groups }))
}

/// Copies one of the task's pipes into its rotating files until the pipe
/// closes. A write error (disk full) drops output but keeps reading, so
/// the task never blocks on a full pipe.
fn spawn_pump(
    stream: LogStream,
    mut source: impl Read + Send + 'static,
    mut sink: RotatingWriter,
    done: mpsc::Sender<()>,
) -> Result<(), String> {
    thread::Builder::new()
        .name(format!("pump-{}", stream.as_str()))
        .spawn(move || {
            let mut buffer = vec![0; 64 * 1024];
            let mut failing = false;
            loop {
                match source.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(num_read) => match sink.write_all(&buffer[..num_read]) {
                        Ok(()) => failing = false,
                        Err(write_error) => {
                            if !failing {
                                warn!(stream = stream.as_str(), %write_error, "cannot store task output, dropping it");
                            }
                            failing = true;
                        }
                    },
                    Err(read_error) if read_error.kind() == io::ErrorKind::Interrupted => {}
                    Err(read_error) => {
                        warn!(stream = stream.as_str(), %read_error, "cannot read task output");
                        break;
                    }
                }
            }
            let _ = done.send(());
        })
        .map(drop)
        .map_err(|error| format!("cannot start the {} pump thread: {error}", stream.as_str()))
}
