//! Running a command with a deadline: the one way drover runs a short
//! command and waits for its result — `drover exec` and script checks on an
//! agent, console polls, and hammer and provider commands on a server.
//!
//! ```text
//!  spawn in its own ──▶ running ──exits──▶ linger: read what is left ──pipes closed──▶ Finished
//!  process group           │                  └─ linger over: SIGKILL the group, drain ─┘
//!                          └─ deadline or cancel ─▶ SIGTERM the group, wait `grace` (if any)
//!                                                   ─▶ SIGKILL the group ─▶ reap ─▶ drain ─▶ Finished
//!  the run dropped mid-way ─▶ SIGKILL the group
//! ```
//!
//! Why one runner: the command runs in its own process group, and the
//! group, not just the process, is killed at the deadline, so a timed-out
//! command leaves no grandchild running. Each captured stream keeps at
//! most `max_output_bytes` (its start or its end, see [`Keep`]) and is
//! read to its end with the rest dropped, so a chatty command never blocks
//! on a full pipe and never makes the caller hold more than the cap.
//! Stdin is always `/dev/null`.
//!
//! When the command exits but something it started in the background
//! still holds its output open, the output is read for `linger` more (at
//! most until the deadline); then the group is killed. Background
//! processes that closed their output are left alone.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How long output is still read after the command exited, unless
/// [`BoundedCommand::linger`] says otherwise.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(2);
/// How long output is still read after the group was killed: a process that
/// left the group (`setsid`) may hold the pipes open for ever.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(1);
/// How long reaping a killed command may take. SIGKILL cannot be caught,
/// but a process in uninterruptible sleep dies only when it wakes.
const REAP_TIME: Duration = Duration::from_secs(2);
/// Bytes read from a pipe at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Which part of a stream longer than the cap is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// The first bytes: what a command printed first (results, errors).
    #[default]
    Head,
    /// The last bytes: the newest part of a window of output (a console).
    Tail,
}

/// Where the command's stderr goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StderrMode {
    /// Captured on its own, with its own cap.
    #[default]
    Capture,
    /// Into the stdout pipe, interleaved as written; one cap for both.
    IntoStdout,
    /// To `/dev/null`.
    Discard,
}

/// A command with its deadline and output cap, ready to run (as often as
/// wanted). Built like [`std::process::Command`]:
///
/// ```no_run
/// # async fn example() -> drover_collect::Result<()> {
/// use std::time::Duration;
/// use drover_collect::process::BoundedCommand;
///
/// let mut command = BoundedCommand::new("/bin/sh", Duration::from_secs(30), 64 * 1024);
/// command.arg("-c").arg("df -h /tmp");
/// let finished = command.run().await?;
/// println!("{}", String::from_utf8_lossy(&finished.stdout.bytes));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BoundedCommand {
    program: OsString,
    args: Vec<OsString>,
    clear_env: bool,
    env: Vec<(OsString, OsString)>,
    working_dir: Option<PathBuf>,
    user: Option<(u32, u32)>,
    stderr: StderrMode,
    timeout: Duration,
    grace: Duration,
    linger: Duration,
    max_output_bytes: usize,
    keep: Keep,
    /// Written to stdin then closed; `None`: stdin is `/dev/null`.
    stdin: Option<Arc<[u8]>>,
}

/// One stream as captured: at most the cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    pub bytes: Vec<u8>,
    /// Whether bytes beyond the cap were dropped.
    pub truncated: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// How the command's process ended, when it was reaped: by itself, or
    /// by the signal that killed it at the deadline. `None` only when a
    /// killed command could not be reaped in time (it is reaped later).
    pub status: Option<ExitStatus>,
    /// The deadline passed and the group was killed.
    pub timed_out: bool,
    /// The run was cancelled and the group was killed.
    pub cancelled: bool,
    pub stdout: CapturedOutput,
    /// Empty unless stderr is [`StderrMode::Capture`]d.
    pub stderr: CapturedOutput,
    /// From the start to the end of the run, output drained.
    pub duration: Duration,
}

impl Finished {
    /// The exit code, when the process exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|status| status.code())
    }

    /// The signal that ended the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|status| status.signal())
    }

    /// Exit code 0, in time and not cancelled.
    pub fn success(&self) -> bool {
        !self.timed_out && !self.cancelled && self.exit_code() == Some(0)
    }

    /// Whether either stream lost bytes to the cap.
    pub fn truncated(&self) -> bool {
        self.stdout.truncated || self.stderr.truncated
    }
}

impl BoundedCommand {
    /// `program` (a path, or a name looked up in `PATH`), killed with its
    /// whole process group `timeout` after it started; stdout and stderr
    /// keep at most `max_output_bytes` each.
    pub fn new(program: impl AsRef<OsStr>, timeout: Duration, max_output_bytes: usize) -> Self {
        BoundedCommand {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            clear_env: false,
            env: Vec::new(),
            working_dir: None,
            user: None,
            stderr: StderrMode::Capture,
            timeout,
            grace: Duration::ZERO,
            linger: DEFAULT_LINGER,
            max_output_bytes,
            keep: Keep::Head,
            stdin: None,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args(&mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> &mut Self {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Starts from an empty environment instead of the caller's.
    pub fn env_clear(&mut self) -> &mut Self {
        self.clear_env = true;
        self.env.clear();
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs(&mut self, vars: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>) -> &mut Self {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Runs as this uid and gid (supplementary groups are dropped when the
    /// caller is root); switching to another user needs a root caller.
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.user = Some((uid, gid));
        self
    }

    pub fn stderr(&mut self, mode: StderrMode) -> &mut Self {
        self.stderr = mode;
        self
    }

    /// At the deadline, SIGTERM the group first and SIGKILL it only after
    /// `grace` (or at once when the command exits sooner). Zero, the
    /// default, kills at once.
    pub fn grace(&mut self, grace: Duration) -> &mut Self {
        self.grace = grace;
        self
    }

    /// How long output is still read after the command exited, while a
    /// background child holds it open; then the group is killed.
    pub fn linger(&mut self, linger: Duration) -> &mut Self {
        self.linger = linger;
        self
    }

    /// Which part of an overlong stream is kept (the start by default).
    pub fn keep(&mut self, keep: Keep) -> &mut Self {
        self.keep = keep;
        self
    }

    /// Writes these bytes to the command's stdin, then closes it (by
    /// default stdin is `/dev/null`). A command that exits or closes its
    /// stdin without reading them all is not an error.
    pub fn stdin_bytes(&mut self, bytes: impl Into<Arc<[u8]>>) -> &mut Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs the command to its end or its deadline.
    pub async fn run(&self) -> Result<Finished> {
        self.run_until_cancelled(&CancellationToken::new()).await
    }

    /// Runs the command to its end, its deadline or `cancel`, whichever
    /// comes first. Dropping the future mid-run kills the group too.
    ///
    /// Errors only when the command could not be started or watched
    /// ([`Error::Spawn`], [`Error::Process`]); how it ended, timeouts
    /// included, is in the [`Finished`].
    pub async fn run_until_cancelled(&self, cancel: &CancellationToken) -> Result<Finished> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let process_error = |action: &'static str| {
            let program = self.program_text();
            move |source| Error::Process { action, program, source }
        };
        let (stdout_reader, stdout_writer) = std::io::pipe().map_err(process_error("create the output pipe of"))?;
        let (stderr_reader, stderr_target) = match self.stderr {
            StderrMode::Capture => {
                let (reader, writer) = std::io::pipe().map_err(process_error("create the output pipe of"))?;
                (Some(reader), Stdio::from(writer))
            }
            StderrMode::IntoStdout => {
                (None, Stdio::from(stdout_writer.try_clone().map_err(process_error("create the output pipe of"))?))
            }
            StderrMode::Discard => (None, Stdio::null()),
        };
        let mut child = {
            // The command, and with it this process's copies of the pipes'
            // write ends, is dropped at the end of this block: the readers
            // see the end of the output once the command's group is done.
            let mut command = tokio::process::Command::new(&self.program);
            command
                .args(&self.args)
                .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
                .stdout(stdout_writer)
                .stderr(stderr_target)
                .process_group(0)
                .kill_on_drop(true);
            if self.clear_env {
                command.env_clear();
            }
            command.envs(self.env.iter().map(|(key, value)| (key, value)));
            if let Some(dir) = &self.working_dir {
                command.current_dir(dir);
            }
            if let Some((uid, gid)) = self.user {
                command.uid(uid).gid(gid);
            }
            command.spawn().map_err(|source| Error::Spawn { program: self.program_text(), source })?
        };
        // The child is its group's leader: its pid is the group's id.
        let pid = child.id().and_then(|pid| i32::try_from(pid).ok());
        let pid = pid.ok_or_else(|| Error::Process {
            action: "watch",
            program: self.program_text(),
            source: std::io::Error::other("the process has no id"),
        })?;
        let mut group = ProcessGroup { pgid: Pid::from_raw(pid), armed: true };

        let stdout = Arc::new(Mutex::new(Capture::new(self.max_output_bytes, self.keep)));
        let stderr = Arc::new(Mutex::new(Capture::new(self.max_output_bytes, self.keep)));
        // Fed from its own task: a command that reads slowly or not at all
        // does not hold up its output readers; a broken pipe (it exited or
        // closed stdin) ends the feeding quietly.
        let mut feeder = JoinSet::new();
        if let (Some(bytes), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            feeder.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            });
        }
        let mut readers = JoinSet::new();
        let stdout_pipe = receiver(stdout_reader).map_err(process_error("read the output of"))?;
        readers.spawn(read_into(stdout_pipe, Arc::clone(&stdout)));
        if let Some(stderr_reader) = stderr_reader {
            let stderr_pipe = receiver(stderr_reader).map_err(process_error("read the output of"))?;
            readers.spawn(read_into(stderr_pipe, Arc::clone(&stderr)));
        }

        let ending = loop {
            tokio::select! {
                waited = child.wait() => break Ending::Exited(waited.map_err(process_error("wait for"))?),
                () = output_closed(&mut readers), if !readers.is_empty() => {}
                () = tokio::time::sleep_until(deadline) => break Ending::TimedOut,
                () = cancel.cancelled() => break Ending::Cancelled,
            }
        };
        let status = match ending {
            Ending::Exited(status) => {
                let linger_end = deadline.min(Instant::now() + self.linger);
                if tokio::time::timeout_at(linger_end, output_closed(&mut readers)).await.is_err() {
                    group.signal(Signal::SIGKILL);
                    let _ = tokio::time::timeout(DRAIN_AFTER_KILL, output_closed(&mut readers)).await;
                }
                Some(status)
            }
            Ending::TimedOut | Ending::Cancelled => {
                let status = self.stop(&mut child, &group).await;
                let _ = tokio::time::timeout(DRAIN_AFTER_KILL, output_closed(&mut readers)).await;
                status
            }
        };
        // What is left of the group (background processes that closed their
        // output) is the command's business.
        group.armed = false;
        // Readers still running hold a pipe some process outside the group
        // keeps open: they stop here.
        readers.abort_all();
        // A background process that kept stdin open without reading it.
        feeder.abort_all();
        Ok(Finished {
            status,
            timed_out: matches!(ending, Ending::TimedOut),
            cancelled: matches!(ending, Ending::Cancelled),
            stdout: take(&stdout),
            stderr: take(&stderr),
            duration: started.elapsed(),
        })
    }

    /// Kills the group (politely first when there is a grace) and reaps
    /// the command.
    async fn stop(&self, child: &mut tokio::process::Child, group: &ProcessGroup) -> Option<ExitStatus> {
        if !self.grace.is_zero() {
            group.signal(Signal::SIGTERM);
            if let Ok(Ok(status)) = tokio::time::timeout(self.grace, child.wait()).await {
                // Its children may have ignored SIGTERM.
                group.signal(Signal::SIGKILL);
                return Some(status);
            }
        }
        // Killed before the leader is reaped, so the group id cannot have
        // been reused by an unrelated process.
        group.signal(Signal::SIGKILL);
        tokio::time::timeout(REAP_TIME, child.wait()).await.ok().and_then(std::result::Result::ok)
    }

    fn program_text(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// Why the wait for the command ended.
enum Ending {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
}

/// The command's process group; killed when dropped armed (the run was
/// abandoned mid-way).
struct ProcessGroup {
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    fn signal(&self, signal: Signal) {
        if !self.armed {
            return;
        }
        match killpg(self.pgid, signal) {
            // Nobody left in the group: nothing to kill.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => {
                tracing::warn!(%error, pgid = self.pgid.as_raw(), ?signal, "cannot signal a command's process group")
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Bytes of one stream kept so far.
#[derive(Debug)]
struct Capture {
    bytes: VecDeque<u8>,
    max_bytes: usize,
    keep: Keep,
    truncated: bool,
}

impl Capture {
    fn new(max_bytes: usize, keep: Keep) -> Self {
        Capture { bytes: VecDeque::new(), max_bytes, keep, truncated: false }
    }

    /// Appends `chunk`, keeping at most `max_bytes` of all that was pushed.
    fn push(&mut self, chunk: &[u8]) {
        match self.keep {
            Keep::Head => {
                let room = self.max_bytes.saturating_sub(self.bytes.len());
                if chunk.len() > room {
                    self.truncated = true;
                }
                self.bytes.extend(&chunk[..chunk.len().min(room)]);
            }
            Keep::Tail => {
                let kept_of_chunk = &chunk[chunk.len().saturating_sub(self.max_bytes)..];
                let overflow = (self.bytes.len() + kept_of_chunk.len()).saturating_sub(self.max_bytes);
                if overflow > 0 || kept_of_chunk.len() < chunk.len() {
                    self.truncated = true;
                }
                self.bytes.drain(..overflow);
                self.bytes.extend(kept_of_chunk);
            }
        }
        debug_assert!(self.bytes.len() <= self.max_bytes);
    }
}

fn take(shared: &Mutex<Capture>) -> CapturedOutput {
    let mut capture = shared.lock().unwrap_or_else(PoisonError::into_inner);
    CapturedOutput { bytes: Vec::from(std::mem::take(&mut capture.bytes)), truncated: capture.truncated }
}

fn receiver(reader: std::io::PipeReader) -> std::io::Result<pipe::Receiver> {
    pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
}

/// Reads a pipe to its end into `capture`, which keeps what fits.
async fn read_into(mut pipe: pipe::Receiver, capture: Arc<Mutex<Capture>>) {
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) => return,
            Ok(count) => capture.lock().unwrap_or_else(PoisonError::into_inner).push(&buffer[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::debug!(%error, "cannot read a command's output");
                return;
            }
        }
    }
}

/// Resolves when every reader reached the end of its pipe. Cancel-safe:
/// a reader that finished stays finished.
async fn output_closed(readers: &mut JoinSet<()>) {
    while readers.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_head_keeps_the_first_bytes_and_says_it_dropped_the_rest() {
        let mut capture = Capture::new(5, Keep::Head);
        capture.push(b"abc");
        assert!(!capture.truncated);
        capture.push(b"def");
        capture.push(b"ghi");
        assert_eq!(Vec::from(capture.bytes.clone()), b"abcde");
        assert!(capture.truncated);

        let mut exact = Capture::new(3, Keep::Head);
        exact.push(b"abc");
        exact.push(b"");
        assert!(!exact.truncated);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_across_chunks_of_any_size() {
        let mut capture = Capture::new(5, Keep::Tail);
        capture.push(b"abc");
        capture.push(b"de");
        assert!(!capture.truncated);
        capture.push(b"fg");
        assert_eq!(Vec::from(capture.bytes.clone()), b"cdefg");
        assert!(capture.truncated);
        capture.push(b"0123456789");
        assert_eq!(Vec::from(capture.bytes.clone()), b"56789");

        let mut empty = Capture::new(0, Keep::Tail);
        empty.push(b"x");
        assert!(empty.bytes.is_empty() && empty.truncated);
    }
}
