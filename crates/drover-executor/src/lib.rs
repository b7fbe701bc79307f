//! Running one task process, robustly.
//!
//! The agent supervises tasks, but killing the agent (even with `kill -9`)
//! must neither kill nor disturb them, and a restarted agent must take over
//! supervision *and output capture* where the old one left off. So the agent
//! never owns a task process directly. For every start it launches an
//! **executor shim** — the `drover` binary run as the hidden `executor`
//! subcommand, which calls [`run_executor`] — and the shim owns the task:
//!
//! ```text
//!  agent (drover agent)                         task directory
//!  ───────────────────                          ──────────────
//!  ExecDriver::start ──writes──────────────────▶ executor.json       (spec)
//!        │ spawns, new session
//!        ▼
//!  executor shim (drover executor DIR)
//!        │ spawns, new process group, limits
//!        ├──────────▶ task process ──stdout/stderr pipes──┐
//!        │ writes ─────────────────────────────▶ executor-state.json (pids)
//!        │ pumps ◀────────────────────────────────────────┘
//!        │   └──────────────────────────────────▶ logs/<task>.stdout.N
//!        │ waits, then writes ─────────────────▶ exit.json           (result)
//!        ▼ exits
//!  TaskHandle::wait (child wait or pidfd) ─reads─▶ exit.json
//! ```
//!
//! If the agent dies, the shim lives on in its own session and keeps
//! writing the task's output; the next agent calls [`ExecDriver::reattach`],
//! which checks (pid *and* start time, so a reused pid is never mistaken
//! for the task) that the shim and task are still the recorded processes.
//! If the shim itself dies, nobody can capture the output any more, so the
//! task is treated as lost and its process group is killed.
//!
//! The crate also holds what surrounds one task: [`Isolation`] (cgroup v2
//! limits where the controllers are available, rlimits otherwise, and a
//! tracking cgroup whenever cgroup2 is writable), the rotating log files and
//! their [`LogReader`], and the [`Supervisor`], a sans-IO state machine
//! implementing Nomad's restart policy.
//!
//! Linux only: the crate relies on `/proc`, process groups, pidfds and
//! cgroup v2.

mod cgroup;
pub mod driver;
pub mod error;
pub mod formats;
pub mod isolation;
pub mod log_reader;
pub mod log_rotate;
mod procfs;
mod shim;
pub mod supervisor;

pub use driver::{DriverConfig, ExecDriver, ExitResult, ReattachOutcome, TaskHandle, TaskLaunch, parse_signal};
pub use error::{ExecError, Result};
pub use formats::{ExecutorSpec, ExecutorState, ExitRecord, LaunchFailure};
pub use isolation::{Isolation, IsolationMode, NodeCpu};
pub use log_reader::{LogChunk, LogOrigin, LogPosition, LogReader};
pub use log_rotate::{LogRotation, LogStream, RotatingWriter};
pub use nix::sys::signal::Signal;
pub use procfs::kill_processes_under;
pub use shim::run_executor;
pub use supervisor::{Event, Instruction, RestartTracker, Supervisor, SupervisorConfig};
