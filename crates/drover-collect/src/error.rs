//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while collecting or spooling logs, or
/// running a command ([`crate::process`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind syslog {transport} socket on {addr}: {source}; choose a free address or port")]
    Bind {
        transport: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what}: {reason}; move it away to start afresh")]
    Corrupt { path: PathBuf, what: &'static str, reason: String },
    #[error("{path} has format version {found}, this agent reads up to version {supported}; upgrade the agent")]
    UnsupportedVersion { path: PathBuf, found: u32, supported: u32 },
    #[error("a spool record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    #[error("the {what} task failed: {reason}")]
    TaskFailed { what: &'static str, reason: String },
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    Glob { pattern: String, reason: String },
    /// A command could not be started: no such program, not executable,
    /// no such working directory, not allowed to switch user.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A command was started but could not be watched (its pipes, its exit).
    #[error("cannot {action} {program}: {source}")]
    Process {
        action: &'static str,
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }
}
