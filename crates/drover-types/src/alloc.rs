//! Allocations: one placement of a task group on a node, and the state of
//! its tasks as the agent reports it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{AllocId, EvalId, JobId, NodeId};
use crate::resources::Resources;
use crate::time::{DurationSpec, Timestamp};

/// What the servers want for an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AllocDesiredStatus {
    /// Keep it running.
    #[default]
    Run,
    /// Stop it (job stopped, count lowered, replaced by a new version, …).
    Stop,
    /// Stop it because the node is being drained or it lost a placement
    /// conflict.
    Evict,
}

impl fmt::Display for AllocDesiredStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            AllocDesiredStatus::Run => "run",
            AllocDesiredStatus::Stop => "stop",
            AllocDesiredStatus::Evict => "evict",
        })
    }
}

/// What the agent (or, for lost allocations, the server) says is happening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AllocClientStatus {
    /// Not started yet.
    #[default]
    Pending,
    /// Every task is running (or finished successfully, for batch groups
    /// still waiting on other tasks).
    Running,
    /// Every task finished successfully.
    Complete,
    /// A task failed and will not be restarted.
    Failed,
    /// The node went down; the allocation is presumed gone.
    Lost,
    /// The node is disconnected; the allocation may still be running.
    Unknown,
}

impl AllocClientStatus {
    /// Whether the allocation can no longer change by itself.
    pub fn is_terminal(self) -> bool {
        matches!(self, AllocClientStatus::Complete | AllocClientStatus::Failed | AllocClientStatus::Lost)
    }

    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            AllocClientStatus::Pending => "pending",
            AllocClientStatus::Running => "running",
            AllocClientStatus::Complete => "complete",
            AllocClientStatus::Failed => "failed",
            AllocClientStatus::Lost => "lost",
            AllocClientStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for AllocClientStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Requests to the scheduler about an allocation that is otherwise fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DesiredTransition {
    /// Move it off its node (set by a drain).
    pub migrate: bool,
    /// Replace it even though it has not failed.
    pub reschedule: bool,
}

/// Deployment health of an allocation created by a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AllocDeploymentStatus {
    /// `None` while undecided.
    pub healthy: Option<bool>,
    /// When health was decided.
    pub timestamp: Timestamp,
    /// Whether this allocation is a canary.
    pub canary: bool,
}

/// One earlier reschedule of the allocation chain this allocation belongs
/// to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescheduleEvent {
    /// When the reschedule happened.
    pub time: Timestamp,
    /// The failed allocation that was replaced.
    pub prev_alloc_id: AllocId,
    /// The node it failed on.
    pub prev_node_id: NodeId,
    /// The delay that was applied.
    pub delay: DurationSpec,
}

/// The health of one check of one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// Task the check belongs to.
    pub task: String,
    /// Check name.
    pub name: String,
    /// `passing`, `warning`, `critical` or `pending`.
    pub status: CheckHealth,
    /// Last output (truncated).
    pub output: String,
    /// When it last ran.
    pub checked_at: Timestamp,
}

/// The result of a check run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckHealth {
    /// Not run yet.
    #[default]
    Pending,
    /// Healthy.
    Passing,
    /// Degraded (a script check exiting 1).
    Warning,
    /// Failing.
    Critical,
}

impl fmt::Display for CheckHealth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            CheckHealth::Pending => "pending",
            CheckHealth::Passing => "passing",
            CheckHealth::Warning => "warning",
            CheckHealth::Critical => "critical",
        })
    }
}

/// One placement of a task group on a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// Allocation id (UUID).
    pub id: AllocId,
    /// `job.group[index]`, stable across replacements.
    pub name: String,
    /// The index in `name`.
    pub index: u32,
    /// Owning job.
    pub job_id: JobId,
    /// Version of the job this allocation runs.
    pub job_version: u64,
    /// The task group.
    pub group: String,
    /// Where it runs.
    pub node_id: NodeId,
    /// The node's name at placement time, for display.
    pub node_name: String,
    /// The evaluation that placed it.
    pub eval_id: EvalId,
    /// Resources reserved on the node.
    pub resources: Resources,
    /// What the servers want.
    pub desired_status: AllocDesiredStatus,
    /// Why (for `stop` and `evict`).
    pub desired_description: String,
    /// Requests to the scheduler.
    pub desired_transition: DesiredTransition,
    /// What the agent reports.
    pub client_status: AllocClientStatus,
    /// Human-readable detail of `client_status`.
    pub client_description: String,
    /// Per-task state, keyed by task name.
    pub task_states: BTreeMap<String, TaskState>,
    /// Health check results.
    pub checks: Vec<CheckStatus>,
    /// The allocation this one replaces.
    pub previous_alloc: Option<AllocId>,
    /// The allocation that replaced this one.
    pub next_alloc: Option<AllocId>,
    /// Reschedules of this allocation's chain, oldest first.
    pub reschedule_events: Vec<RescheduleEvent>,
    /// Evaluation that will reschedule this allocation after a delay.
    pub follow_up_eval: Option<EvalId>,
    /// Deployment that created it.
    pub deployment_id: Option<crate::ids::DeploymentId>,
    /// Deployment health.
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// Placement time.
    pub create_time: Timestamp,
    /// Last change.
    pub modify_time: Timestamp,
    /// Raft index of creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
    /// Raft index of the last change made by the servers (placement, stop,
    /// new version, transition) — not by the agent's own status reports.
    /// Agents are sent the allocations whose `alloc_modify_index` moved.
    #[serde(default)]
    pub alloc_modify_index: u64,
    /// The ports the scheduler reserved on the node for the group's
    /// `network` block, one per port label; taken while the allocation
    /// [holds resources](Self::holds_resources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::network::AllocatedPort>,
}

impl Allocation {
    /// Whether the allocation is over: the servers want it stopped and the
    /// agent has stopped it, or it finished by itself.
    pub fn is_terminal(&self) -> bool {
        self.client_status.is_terminal()
            || (self.desired_status != AllocDesiredStatus::Run
                && self.client_status == AllocClientStatus::Pending
                && self.task_states.is_empty())
    }

    /// Whether the servers still want it running.
    pub fn wants_to_run(&self) -> bool {
        self.desired_status == AllocDesiredStatus::Run
    }

    /// Whether it still holds resources on its node: it is not terminal on
    /// the client side. A stopped allocation holds its resources until the
    /// agent reports it finished.
    pub fn holds_resources(&self) -> bool {
        !self.client_status.is_terminal()
    }

    /// Total restarts of its tasks.
    pub fn num_restarts(&self) -> u32 {
        self.task_states.values().map(|state| state.restarts).sum()
    }
}

/// The lifecycle of one task inside an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskLifecycleState {
    /// Not started yet, or waiting to restart.
    #[default]
    Pending,
    /// Its process is running.
    Running,
    /// Finished for good.
    Dead,
}

impl fmt::Display for TaskLifecycleState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            TaskLifecycleState::Pending => "pending",
            TaskLifecycleState::Running => "running",
            TaskLifecycleState::Dead => "dead",
        })
    }
}

/// A task's state as the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskState {
    /// Lifecycle state.
    pub state: TaskLifecycleState,
    /// Whether it ended in failure.
    pub failed: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// Time of the last restart.
    pub last_restart: Option<Timestamp>,
    /// When the current (or last) process started.
    pub started_at: Option<Timestamp>,
    /// When it finished for good.
    pub finished_at: Option<Timestamp>,
    /// Process id of the running process.
    pub pid: Option<u32>,
    /// Recent events, oldest first (at most [`TaskState::MAX_EVENTS`]).
    pub events: Vec<TaskEvent>,
}

impl TaskState {
    /// How many events a task keeps.
    pub const MAX_EVENTS: usize = 10;

    /// Appends an event, dropping the oldest beyond [`Self::MAX_EVENTS`].
    pub fn push_event(&mut self, event: TaskEvent) {
        self.events.push(event);
        if self.events.len() > Self::MAX_EVENTS {
            let excess = self.events.len() - Self::MAX_EVENTS;
            self.events.drain(..excess);
        }
    }
}

/// Something that happened to a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// When.
    pub time: Timestamp,
    /// What kind of event.
    pub kind: TaskEventKind,
    /// Detail for humans.
    pub message: String,
    /// Exit code, for `Terminated`.
    pub exit_code: Option<i32>,
    /// Signal that ended the process, for `Terminated`.
    pub signal: Option<i32>,
}

/// The kinds of task events, named as Nomad names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskEventKind {
    /// The agent received the allocation.
    Received,
    /// The task directory is being prepared.
    #[serde(rename = "Task Setup")]
    TaskSetup,
    /// The process started.
    Started,
    /// The process exited.
    Terminated,
    /// The task will be restarted after a delay.
    Restarting,
    /// The restart policy gave up.
    #[serde(rename = "Not Restarting")]
    NotRestarting,
    /// The agent is stopping the task.
    Killing,
    /// The task was stopped.
    Killed,
    /// The driver could not start the process.
    #[serde(rename = "Driver Failure")]
    DriverFailure,
    /// A failing check asked for a restart.
    #[serde(rename = "Restart Signaled")]
    RestartSignaled,
    /// A restarted agent took over supervision of the running process.
    Reattached,
    /// A hook around the task said something (a template's change script
    /// ran).
    #[serde(rename = "Task hook message")]
    TaskHookMessage,
    /// A hook around the task failed (a template's change script).
    #[serde(rename = "Task hook failed")]
    TaskHookFailed,
}

impl TaskEventKind {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskEventKind::Received => "Received",
            TaskEventKind::TaskSetup => "Task Setup",
            TaskEventKind::Started => "Started",
            TaskEventKind::Terminated => "Terminated",
            TaskEventKind::Restarting => "Restarting",
            TaskEventKind::NotRestarting => "Not Restarting",
            TaskEventKind::Killing => "Killing",
            TaskEventKind::Killed => "Killed",
            TaskEventKind::DriverFailure => "Driver Failure",
            TaskEventKind::RestartSignaled => "Restart Signaled",
            TaskEventKind::Reattached => "Reattached",
            TaskEventKind::TaskHookMessage => "Task hook message",
            TaskEventKind::TaskHookFailed => "Task hook failed",
        }
    }
}

impl fmt::Display for TaskEventKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One allocation's state as reported by its agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientAllocUpdate {
    /// The allocation.
    pub alloc_id: AllocId,
    /// Overall status.
    pub client_status: AllocClientStatus,
    /// Detail.
    pub client_description: String,
    /// Per-task state.
    pub task_states: BTreeMap<String, TaskState>,
    /// Health check results.
    #[serde(default)]
    pub checks: Vec<CheckStatus>,
    /// Deployment health decided by the agent (allocations placed by a
    /// deployment only): `Some(true)` once healthy for `min_healthy_time`,
    /// `Some(false)` when a task failed or `healthy_deadline` passed.
    #[serde(default)]
    pub deployment_health: Option<bool>,
}
