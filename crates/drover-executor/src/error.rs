//! The crate's one error type.
//!
//! Messages say what went wrong, on which file or process, and what to do,
//! because the agent shows them to operators as `Driver Failure` events.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Everything that can go wrong while starting, re-attaching to, signalling
/// or reading the output of a task.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "writing".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A state file exists but is not valid JSON of the expected shape.
    #[error(
        "{} is not a valid {what} file ({source}); it may have been edited by hand or written by an incompatible drover",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which format was expected.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A state file was written by a newer drover.
    #[error(
        "{} has format version {found}, but this drover reads versions up to {supported}; run the newer drover that wrote it",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The launch request is unusable.
    #[error("invalid task launch: {message}")]
    InvalidLaunch {
        /// What is wrong.
        message: String,
    },
    /// The executor program could not be started at all.
    #[error("could not start the executor {}: {source}", program.display())]
    SpawnExecutor {
        /// The program that was run.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The executor ran but could not start the task (bad command, unknown
    /// user, unwritable log directory, …).
    #[error("the task could not be started: {message}")]
    Launch {
        /// The executor's explanation.
        message: String,
    },
    /// The executor exited before recording a started task.
    #[error("the executor exited ({status}) before starting the task; its own log is {}{detail}", log.display())]
    ExecutorExited {
        /// How it exited.
        status: String,
        /// The executor's log file.
        log: PathBuf,
        /// The end of that log, prefixed with ": ", or empty.
        detail: String,
    },
    /// The executor did not record a started task in time and was killed.
    #[error("the executor did not start the task within {waited:?} and was killed; its own log is {}", log.display())]
    StartTimeout {
        /// How long the driver waited.
        waited: Duration,
        /// The executor's log file.
        log: PathBuf,
    },
    /// Another executor still runs in this task directory.
    #[error(
        "an executor (pid {pid}) is still running in {}; stop that task before starting it again",
        task_dir.display()
    )]
    AlreadyRunning {
        /// The task directory.
        task_dir: PathBuf,
        /// The live executor's pid.
        pid: u32,
    },
    /// A signal name is not known.
    #[error("unknown signal {name:?}: expected a name such as SIGINT, SIGTERM, SIGHUP or SIGKILL")]
    UnknownSignal {
        /// The name that was given.
        name: String,
    },
    /// The task is no longer running, so it cannot be signalled.
    #[error("task process {pid} is no longer running")]
    NotRunning {
        /// The task's pid.
        pid: u32,
    },
    /// Sending a signal failed.
    #[error("sending {signal} to {target}: {source}")]
    Signal {
        /// The signal.
        signal: Signal,
        /// "process 12" or "process group 12".
        target: String,
        /// The operating system's error.
        #[source]
        source: nix::Error,
    },
}

impl ExecError {
    /// An [`ExecError::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ExecError::Io { action, path: path.into(), source }
    }
}

/// The crate's result type.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;
