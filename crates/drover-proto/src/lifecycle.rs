//! Request and response bodies of the allocation lifecycle routes (Nomad's
//! `alloc restart|stop|signal|exec` and `job restart`), under `/v1`.

use serde::{Deserialize, Serialize};

use drover_types::{AllocId, EvalId};

/// `POST /v1/allocation/{id}/restart`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocRestartRequest {
    /// Restart only this task; `None`: every running task of the allocation.
    #[serde(default)]
    pub task: Option<String>,
}

/// `POST /v1/allocation/{id}/signal`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocSignalRequest {
    /// Signal only this task; `None`: every running task of the allocation.
    #[serde(default)]
    pub task: Option<String>,
    /// The signal's name (`SIGUSR1`, `USR1`, `hup`).
    pub signal: String,
}

/// The answer of a restart or a signal: what was done where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocActionResponse {
    /// The allocation (its full id).
    pub alloc_id: AllocId,
    /// The tasks the action reached.
    pub tasks: Vec<String>,
}

/// `POST /v1/allocation/{id}/stop`: the allocation is marked for migration
/// and an evaluation places its replacement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocStopResponse {
    /// The allocation (its full id).
    pub alloc_id: AllocId,
    /// The evaluation that replaces it.
    pub eval_id: EvalId,
}

/// `POST /v1/allocation/{id}/exec`: one command in a task's environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocExecRequest {
    /// The task; `None` when the group has one task.
    #[serde(default)]
    pub task: Option<String>,
    /// The program and its arguments (run directly, not by a shell).
    pub command: Vec<String>,
    /// Kill the command after this long (default 5 minutes).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Bytes kept of stdout and of stderr each (default 1 MiB).
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
    /// Bytes written to the command's stdin, then closed.
    #[serde(default, with = "drover_types::serde_bytes")]
    pub stdin: Vec<u8>,
}

/// What an [`AllocExecRequest`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocExecResponse {
    /// The allocation (its full id).
    pub alloc_id: AllocId,
    /// The task the command ran in.
    pub task: String,
    /// The command's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Why there is no exit code (killed, timed out, could not start).
    pub error: String,
    /// Whether it was killed at its deadline.
    pub timed_out: bool,
    /// Standard output, capped.
    #[serde(with = "drover_types::serde_bytes")]
    pub stdout: Vec<u8>,
    /// Standard error, capped.
    #[serde(with = "drover_types::serde_bytes")]
    pub stderr: Vec<u8>,
    /// Whether output beyond the cap was dropped.
    pub truncated: bool,
}

/// `POST /v1/job/{id}/restart`: a rolling restart of the job's running
/// allocations, in batches of the group's `update` `max_parallel`, each
/// batch healthy for `min_healthy_time` before the next one starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRestartRequest {
    /// Restart only this task of each allocation; `None`: all its tasks.
    #[serde(default)]
    pub task: Option<String>,
}

/// What a job restart did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRestartResponse {
    /// The batches, in order: the allocations restarted together.
    pub batches: Vec<Vec<AllocId>>,
    /// The most allocations that were restarting at once.
    pub max_restarting_at_once: usize,
}
