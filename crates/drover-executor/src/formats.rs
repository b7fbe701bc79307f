//! The files the agent and the executor shim exchange in a task directory.
//!
//! They are the only channel between the two processes, and they outlive
//! both: a shim started by one agent version is re-attached by the next
//! version after an upgrade. So every file carries a format `version`, a
//! reader refuses versions newer than it knows (instead of misreading
//! them), and `tests/golden/v1/` holds a committed sample of each version
//! that the tests read back.
//!
//! | file                  | written by | when                          |
//! |-----------------------|------------|-------------------------------|
//! | `executor.json`       | agent      | before spawning the shim      |
//! | `executor-state.json` | shim       | right after the task started  |
//! | `launch-error.json`   | shim       | when the task could not start |
//! | `exit.json`           | shim       | after the task exited         |
//! | `executor.log`        | shim       | its own diagnostics (stderr)  |
//!
//! Every JSON file is written atomically (temporary file, `fsync`,
//! `rename`), so a reader sees either nothing or the whole file, even if
//! the writer is killed halfway.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use drover_types::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ExecError, Result};
use crate::log_rotate::LogRotation;

/// The launch specification, written by the agent.
pub const SPEC_FILE: &str = "executor.json";
/// The running executor's and task's identity, written by the shim.
pub const STATE_FILE: &str = "executor-state.json";
/// Why the shim could not start the task.
pub const LAUNCH_ERROR_FILE: &str = "launch-error.json";
/// The task's exit, written by the shim.
pub const EXIT_FILE: &str = "exit.json";
/// The shim's own stderr.
pub const EXECUTOR_LOG_FILE: &str = "executor.log";

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// `executor.json`: everything the shim needs to start the task.
///
/// The agent resolves every decision (which limits, which cgroup, which
/// environment) before writing it, so the shim only carries them out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorSpec {
    /// Format version, [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// The task's name; names the log files.
    pub task_name: String,
    /// Program to run: an absolute path, or a name looked up in the `PATH`
    /// of `env`.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// The task's complete environment: nothing is inherited from the
    /// agent. When it has no `PATH`, the shim adds a standard one.
    pub env: BTreeMap<String, String>,
    /// The task's working directory.
    pub working_dir: PathBuf,
    /// User to run as (name from the passwd database); `None` keeps the
    /// agent's user.
    pub user: Option<String>,
    /// The cgroup to place the task in, if any.
    pub cgroup: Option<CgroupPlacement>,
    /// Resource limits set with `setrlimit` in the task process.
    pub rlimits: Rlimits,
    /// Where the rotating output files go.
    pub log_dir: PathBuf,
    /// How big the output files grow and how many are kept.
    pub log_rotation: LogRotation,
}

/// A task's own cgroup v2 directory and the limits written into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlacement {
    /// The cgroup directory, e.g. `/sys/fs/cgroup/drover/<alloc>-<task>`;
    /// created by the shim before the task starts and removed after it
    /// exited.
    pub path: PathBuf,
    /// `memory.max` in bytes, when the memory controller is enabled; swap
    /// is then disabled for the task (`memory.swap.max` = 0) where the
    /// kernel accounts it.
    pub memory_max_bytes: Option<u64>,
    /// `cpu.weight` (1–10000), when the cpu controller is enabled.
    pub cpu_weight: Option<u64>,
    /// `cpu.max`, a hard CPU cap, when asked for.
    pub cpu_max: Option<CpuMax>,
}

/// A cgroup v2 `cpu.max` value: `quota_us` of CPU time per `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMax {
    /// Microseconds of CPU time allowed per period (across all cores).
    pub quota_us: u64,
    /// The period in microseconds.
    pub period_us: u64,
}

/// Resource limits applied with `setrlimit` when cgroup limits are not
/// available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimits {
    /// `RLIMIT_DATA` (soft and hard) in bytes: caps each process's heap and
    /// private anonymous mappings. See [`crate::isolation`] for why not
    /// `RLIMIT_AS`.
    pub data_bytes: Option<u64>,
}

/// `executor-state.json`: which processes run the task, so that an agent
/// can find them again.
///
/// Pids alone are not identities: after a process exits, the kernel hands
/// its pid to a new process. The start times (field 22 of
/// `/proc/<pid>/stat`, in clock ticks since boot) and the boot id tell a
/// recorded process from a later one with the same pid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorState {
    /// Format version.
    pub version: u32,
    /// `/proc/sys/kernel/random/boot_id` when the task started.
    pub boot_id: String,
    /// The shim's pid.
    pub executor_pid: u32,
    /// The shim's start time in clock ticks since boot.
    pub executor_start_time: u64,
    /// The task's pid.
    pub task_pid: u32,
    /// The task's process group, equal to its pid.
    pub task_pgid: u32,
    /// The task's start time in clock ticks since boot.
    pub task_start_time: u64,
    /// The task's cgroup directory, when it has one.
    pub cgroup: Option<PathBuf>,
    /// When the task started.
    pub started_at: Timestamp,
}

/// `exit.json`: how the task ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Format version.
    pub version: u32,
    /// The exit code, when the task exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that killed the task, when one did.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer killed a process of the task. Only
    /// knowable with a cgroup memory limit (`memory.events`); `false`
    /// otherwise.
    pub oom_killed: bool,
    /// When the shim saw the task exit.
    pub finished_at: Timestamp,
}

/// `launch-error.json`: why the shim could not start the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchFailure {
    /// Format version.
    pub version: u32,
    /// What went wrong, for the operator.
    pub message: String,
    /// When.
    pub failed_at: Timestamp,
}

/// The part every format shares, read first to refuse unknown versions.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

/// Writes `value` as pretty JSON to `path`, atomically: the file is
/// written under a temporary name in the same directory, synced, then
/// renamed over `path`.
pub fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|error| ExecError::io("serialising", path, io::Error::other(error)))?;
    bytes.push(b'\n');
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or("state");
    let temporary = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    let write_result = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()
    })();
    if let Err(error) = write_result {
        let _ = fs::remove_file(&temporary);
        return Err(ExecError::io("writing", &temporary, error));
    }
    fs::rename(&temporary, path).map_err(|error| ExecError::io("renaming into place", path, error))
}

/// Reads a versioned JSON file; `Ok(None)` when it does not exist.
pub fn read_versioned<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ExecError::io("reading", path, error)),
    };
    let probe: VersionProbe =
        serde_json::from_slice(&bytes).map_err(|source| ExecError::Corrupt { path: path.to_owned(), what, source })?;
    if probe.version > FORMAT_VERSION {
        return Err(ExecError::UnsupportedVersion {
            path: path.to_owned(),
            found: probe.version,
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|source| ExecError::Corrupt {
        path: path.to_owned(),
        what,
        source,
    })
}

/// Removes a file, ignoring that it does not exist.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ExecError::io("removing", path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EXIT_FILE);
        let record = ExitRecord {
            version: FORMAT_VERSION,
            exit_code: Some(3),
            signal: None,
            oom_killed: false,
            finished_at: Timestamp::from_millis(1_700_000_000_000),
        };
        write_atomic(&path, &record).unwrap();
        let read: Option<ExitRecord> = read_versioned(&path, "exit").unwrap();
        assert_eq!(read, Some(record));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(EXIT_FILE)]);
    }

    #[test]
    fn missing_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let read: Option<ExitRecord> = read_versioned(&dir.path().join(EXIT_FILE), "exit").unwrap();
        assert_eq!(read, None);
    }

    #[test]
    fn newer_versions_are_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EXIT_FILE);
        fs::write(&path, r#"{"version": 2, "something": "new"}"#).unwrap();
        let error = read_versioned::<ExitRecord>(&path, "exit").unwrap_err();
        assert!(matches!(error, ExecError::UnsupportedVersion { found: 2, supported: 1, .. }), "{error}");
        fs::write(&path, "{").unwrap();
        let error = read_versioned::<ExitRecord>(&path, "exit").unwrap_err();
        assert!(matches!(error, ExecError::Corrupt { .. }), "{error}");
    }
}
