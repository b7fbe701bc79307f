//! Machine workflows: creating, rebooting, rebuilding and deleting the
//! machines under agents through a site provider, and rolling maintenance
//! through their agents, one step per node, at a capped rate and
//! concurrency (`drover node create|reboot|rebuild|delete|maintain`,
//! docs/machines.md).
//!
//! A [`Workflow`] lives in the replicated state, so a new leader resumes it
//! where the old one left it. Its steps move like this (the leader's
//! `leader/workflows.rs` performs each arrow, proposing the new phase
//! before it acts):
//!
//! ```text
//!  pending ─▶ draining ─▶ provider ─▶ waiting ─▶ done        (reboot, rebuild)
//!  pending ─────────────▶ provider ─▶ waiting ─▶ done        (create)
//!  pending ─▶ draining ─▶ provider ─▶ waiting ─▶ done        (delete,
//!                              power_off: waits until the node is down,
//!                              a deleted one stays retired; power_on:
//!                              until it is back and ready, no drain)
//!  pending ─▶ draining ─▶ running ─▶ provider|rebooting ─▶ waiting
//!          ─▶ verifying ─▶ done                                (maintain;
//!                             each of running, reboot, verify optional)
//!     any phase ─▶ failed (error, timeout, protected) | cancelled
//! ```
//!
//! A paused workflow starts no new step; the steps in flight go on.
//!
//! A step found in `provider`, `running` or `rebooting` by a new leader is
//! failed, not repeated: whether the old leader's command ran is unknown.
//! What is pure here: which pending steps may start at a given time
//! ([`Workflow::startable`]), and how a step update or a cancel changes a
//! workflow ([`Workflow::update_step`], [`Workflow::cancel`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{NodeId, NodeLabels, Timestamp};

/// Bytes of a provider command's output kept with its step.
pub const STEP_OUTPUT_MAX: usize = 16 * 1024;

/// Bytes of output, and as many of error, that all the steps of one
/// workflow keep together: a workflow of more than 1,280 steps keeps less
/// than [`STEP_OUTPUT_MAX`] per step ([`Workflow::step_output_max`]), so
/// 10,000 steps stay under 50 MB of replicated state (docs/benchmarks.md,
/// "Machine workflows").
pub const WORKFLOW_OUTPUT_BUDGET: usize = 20 * 1024 * 1024;

/// What a workflow does to each of its machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineOperation {
    /// Create a machine whose agent registers with the step's name.
    Create,
    /// Power-cycle a machine; its agent comes back.
    Reboot,
    /// Reinstall a machine (drained first); a fresh agent takes its name.
    Rebuild,
    /// Destroy a machine (drained and retired first); its node stays,
    /// retired, in history and log search until purged.
    Delete,
    /// Rolling maintenance: drain, run a command through the agent,
    /// reboot, verify, undrain ([`Maintenance`]).
    Maintain,
    /// Power a machine on; its agent comes back.
    PowerOn,
    /// Power a machine off (drained first); its node goes down.
    PowerOff,
}

impl MachineOperation {
    /// `create`, `reboot`, `rebuild`, `delete`, `power_on`, `power_off`
    /// (the provider attribute) or `maintain`.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineOperation::Create => "create",
            MachineOperation::Reboot => "reboot",
            MachineOperation::Rebuild => "rebuild",
            MachineOperation::Delete => "delete",
            MachineOperation::Maintain => "maintain",
            MachineOperation::PowerOn => "power_on",
            MachineOperation::PowerOff => "power_off",
        }
    }
}

impl std::fmt::Display for MachineOperation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How many failed steps a workflow tolerates (`--max-failures`): a
/// number of nodes, or a percentage of the nodes selected (Ansible's
/// `max_fail_percentage`), resolved when the workflow starts
/// ([`FailureLimit::resolve`]). On the wire a number of nodes is a JSON
/// number and a percentage the string `"10%"`; either is checked by
/// [`FailureLimit::from_str`](std::str::FromStr), so the CLI and the API
/// refuse the same values with the same words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureLimit {
    /// At most this many failed steps.
    Nodes(u32),
    /// At most this percentage (0–100) of the steps, rounded down.
    Percent(u32),
}

impl FailureLimit {
    /// The number of failed steps tolerated among `num_nodes`: a
    /// percentage is rounded down (`10%` of 25 nodes is 2; of 9 nodes, 0).
    pub fn resolve(self, num_nodes: usize) -> u32 {
        match self {
            FailureLimit::Nodes(count) => count,
            FailureLimit::Percent(percent) => {
                let nodes = u64::try_from(num_nodes).unwrap_or(u64::MAX);
                u32::try_from(nodes.saturating_mul(u64::from(percent)) / 100).unwrap_or(u32::MAX)
            }
        }
    }

    /// The percentage, when it is one.
    pub fn percent(self) -> Option<u32> {
        match self {
            FailureLimit::Percent(percent) => Some(percent),
            FailureLimit::Nodes(_) => None,
        }
    }
}

impl std::str::FromStr for FailureLimit {
    type Err = String;

    /// `N` (nodes) or `N%` (of the nodes selected, 0–100). The error names
    /// the flag and says what to write.
    fn from_str(text: &str) -> Result<FailureLimit, String> {
        let trimmed = text.trim();
        let (number, is_percent) = match trimmed.strip_suffix('%') {
            Some(number) => (number.trim(), true),
            None => (trimmed, false),
        };
        let usage = "write a number of nodes (`--max-failures 1`) or a percentage of the nodes selected, 0% to 100% (`--max-failures 10%`)";
        let Ok(value) = number.parse::<u32>() else {
            return Err(format!("--max-failures {text:?} is not a number of nodes or a percentage; {usage}"));
        };
        if !is_percent {
            return Ok(FailureLimit::Nodes(value));
        }
        if value > 100 {
            return Err(format!("--max-failures {text:?} is more than 100%; {usage}"));
        }
        Ok(FailureLimit::Percent(value))
    }
}

impl std::fmt::Display for FailureLimit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureLimit::Nodes(count) => write!(formatter, "{count}"),
            FailureLimit::Percent(percent) => write!(formatter, "{percent}%"),
        }
    }
}

impl Serialize for FailureLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FailureLimit::Nodes(count) => serializer.serialize_u32(*count),
            FailureLimit::Percent(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for FailureLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FailureLimit, D::Error> {
        /// A number of nodes, or `"N"` / `"N%"`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(i64),
            Text(String),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::Number(number) => number.to_string(),
            Written::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a workflow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Steps are pending or in progress.
    Running,
    /// Every step is done.
    Succeeded,
    /// More steps failed than `max_failures` allows (the rest were
    /// skipped), or every step ended and one failed.
    Failed,
    /// An operator cancelled it.
    Cancelled,
}

impl WorkflowStatus {
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }
}

/// Where one node's step is (see the module's diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// Not started.
    Pending,
    /// The node is draining.
    Draining,
    /// The maintenance command (`--run`) runs through the node's agent.
    Running,
    /// The provider command runs.
    Provider,
    /// The reboot command (`--reboot-command`) runs through the agent.
    Rebooting,
    /// Waiting for the node's agent to register and be ready (or, after
    /// a `delete` or `power_off` command, to be seen down).
    Waiting,
    /// A `delete` step of an older version after its command (it purged
    /// the node then); now handled as `waiting`.
    Purging,
    /// The verify command (`--verify`) runs through the node's agent.
    Verifying,
    /// Done.
    Done,
    /// Failed (see the step's `error`).
    Failed,
    /// Never started or stopped: the workflow was cancelled or failed.
    Cancelled,
}

impl StepPhase {
    /// Whether the step has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, StepPhase::Done | StepPhase::Failed | StepPhase::Cancelled)
    }

    /// Whether the step has started and not ended (it counts against
    /// `parallel`).
    pub fn is_in_flight(self) -> bool {
        !self.is_terminal() && self != StepPhase::Pending
    }

    /// The phase in words.
    pub fn as_str(self) -> &'static str {
        match self {
            StepPhase::Pending => "pending",
            StepPhase::Draining => "draining",
            StepPhase::Running => "running",
            StepPhase::Provider => "provider",
            StepPhase::Rebooting => "rebooting",
            StepPhase::Waiting => "waiting",
            StepPhase::Purging => "purging",
            StepPhase::Verifying => "verifying",
            StepPhase::Done => "done",
            StepPhase::Failed => "failed",
            StepPhase::Cancelled => "cancelled",
        }
    }
}

/// One node's step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowStep {
    /// The node's name (for `create`, the name the new agent registers with).
    pub node: String,
    /// Where the step is.
    pub phase: StepPhase,
    /// When it left `pending` (what the rate cap counts).
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When the provider command (or the reboot command) started.
    #[serde(default)]
    pub provider_started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// The node's id when the step started (a rebuilt machine's agent
    /// comes back with another).
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// The node's `modify_index` when the provider command ended: a
    /// rebooted agent's registration raises it.
    #[serde(default)]
    pub node_modify_index: u64,
    /// The provider command, rendered (for `maintain`, the last command
    /// started; a join token is never kept here).
    #[serde(default)]
    pub command: String,
    /// Its output (at most [`STEP_OUTPUT_MAX`] bytes; for `maintain`, each
    /// command's after the other).
    #[serde(default)]
    pub output: String,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
    /// Why a pending step is not started yet although its workflow has
    /// room (a job's `migrate`/`update` limits); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub waiting_for: String,
}

impl WorkflowStep {
    /// A pending step for `node`.
    pub fn pending(node: &str) -> WorkflowStep {
        WorkflowStep {
            node: node.to_owned(),
            phase: StepPhase::Pending,
            started_at: None,
            provider_started_at: None,
            finished_at: None,
            node_id: None,
            node_modify_index: 0,
            command: String::new(),
            output: String::new(),
            error: String::new(),
            waiting_for: String::new(),
        }
    }
}

/// How a rolling maintenance reboots each node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceReboot {
    /// No reboot.
    #[default]
    None,
    /// Through the node's provider (`--reboot`).
    Provider,
    /// This command through the node's agent (`--reboot-command`).
    Command(String),
}

/// What `drover node maintain` does on each node after the drain; the
/// commands may use the `{{node.name}}`, … placeholders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Run through the agent (`--run`); non-zero fails the node.
    #[serde(default)]
    pub run: Option<String>,
    /// How the node is rebooted after `run`; then its agent is waited for.
    #[serde(default)]
    pub reboot: MaintenanceReboot,
    /// Run through the agent once it is back (`--verify`); non-zero fails
    /// the node (it stays drained).
    #[serde(default)]
    pub verify: Option<String>,
    /// Who the agent commands run as (`--user`); `None`: as `drover exec`
    /// runs them (the agent's `--exec-user`, `nobody` for a root agent).
    #[serde(default)]
    pub user: Option<String>,
    /// The drain's deadline (`--drain-deadline`): allocations still running
    /// after it are stopped. `None`: wait for them (up to the step's
    /// timeout).
    #[serde(default)]
    pub drain_deadline_ms: Option<u64>,
}

/// A machine operation over nodes, kept in the replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    /// Short id (8 hex digits) chosen by the server that started it.
    pub id: String,
    /// What it does.
    pub operation: MachineOperation,
    /// The provider named on the command line; `None`: each node's own
    /// (`provider` meta key) or the site's default.
    #[serde(default)]
    pub provider: Option<String>,
    /// The labels new machines' agents should register with (`create`).
    #[serde(default)]
    pub labels: NodeLabels,
    /// At most this many steps start per minute; `None`: no cap.
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// At most this many steps in flight at once.
    pub parallel: u32,
    /// The workflow stops (the rest cancelled) when more steps than this
    /// fail (a `--max-failures` percentage already resolved against the
    /// number of steps).
    pub max_failures: u32,
    /// The percentage `max_failures` was resolved from (`--max-failures
    /// 10%`); `None`: it was given as a number of nodes.
    #[serde(default)]
    pub max_failures_percent: Option<u32>,
    /// Drain nodes before the provider command (rebuild, delete).
    pub drain: bool,
    /// How long a step waits for its drain, for the agent to come back and
    /// for each maintenance command.
    pub wait_timeout_ms: u64,
    /// `maintain`: what to do on each node.
    #[serde(default)]
    pub maintenance: Maintenance,
    /// Who paused it (no new step starts); `None`: not paused.
    #[serde(default)]
    pub paused_by: Option<String>,
    /// Who started it.
    pub by: String,
    /// When.
    pub created_at: Timestamp,
    /// Where it is.
    pub status: WorkflowStatus,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// Why it ended (a cancel's author, the failure limit).
    #[serde(default)]
    pub reason: String,
    /// One per node, in the order given.
    pub steps: Vec<WorkflowStep>,
}

impl Maintenance {
    /// Whether a command runs through the agents (`--run`,
    /// `--reboot-command`, `--verify`): it needs what `drover exec` needs.
    pub fn runs_commands(&self) -> bool {
        self.run.is_some() || self.verify.is_some() || matches!(self.reboot, MaintenanceReboot::Command(_))
    }
}

impl Workflow {
    /// The failure limit in words: `2`, or `2 (10% of 25 nodes)`.
    pub fn max_failures_text(&self) -> String {
        match self.max_failures_percent {
            Some(percent) => format!("{} ({percent}% of {} nodes)", self.max_failures, self.steps.len()),
            None => self.max_failures.to_string(),
        }
    }

    /// Bytes of output (and of error) each step keeps: [`STEP_OUTPUT_MAX`],
    /// or the workflow's share of [`WORKFLOW_OUTPUT_BUDGET`] when smaller.
    pub fn step_output_max(&self) -> usize {
        (WORKFLOW_OUTPUT_BUDGET / self.steps.len().max(1)).min(STEP_OUTPUT_MAX)
    }

    /// The least time between two step starts under the rate cap.
    pub fn start_interval(&self) -> Duration {
        match self.rate_per_minute {
            Some(rate) if rate > 0 => Duration::from_millis(60_000 / u64::from(rate)),
            _ => Duration::ZERO,
        }
    }

    /// How long a step waits for a drain or an agent.
    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    /// The pending steps (their positions) that may start at `now`: none
    /// unless running and not paused; at most `parallel` in flight; under a
    /// rate cap, one once `start_interval` has passed since the last start.
    pub fn startable(&self, now: Timestamp) -> Vec<usize> {
        if self.status != WorkflowStatus::Running || self.paused_by.is_some() {
            return Vec::new();
        }
        let in_flight = self.steps.iter().filter(|step| step.phase.is_in_flight()).count();
        let room = usize::try_from(self.parallel.max(1)).unwrap_or(usize::MAX).saturating_sub(in_flight);
        let interval = self.start_interval();
        let room = if interval.is_zero() {
            room
        } else {
            let last_start = self.steps.iter().filter_map(|step| step.started_at).max();
            match last_start {
                Some(last) if now.since(last) < interval => 0,
                _ => room.min(1),
            }
        };
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, step)| step.phase == StepPhase::Pending)
            .map(|(position, _)| position)
            .take(room)
            .collect()
    }

    /// When the next step may start under the rate cap (`None`: no cap or
    /// nothing started yet).
    pub fn next_start_at(&self) -> Option<Timestamp> {
        let interval = self.start_interval();
        if interval.is_zero() {
            return None;
        }
        self.steps.iter().filter_map(|step| step.started_at).max().map(|last| last.plus(interval))
    }

    /// Replaces step `position` with `step` (its output and error cut to
    /// [`Workflow::step_output_max`] bytes), then ends the workflow when
    /// its steps say so. A step that has ended is not changed again, and
    /// nothing changes in a workflow that has ended (a late report of a
    /// cancelled step). Returns whether the step was replaced.
    pub fn update_step(&mut self, position: usize, mut step: WorkflowStep, now: Timestamp) -> bool {
        let kept = self.step_output_max();
        let Some(current) = self.steps.get_mut(position) else { return false };
        if self.status != WorkflowStatus::Running || current.phase.is_terminal() || current.node != step.node {
            return false;
        }
        keep_first_bytes(&mut step.output, kept);
        keep_first_bytes(&mut step.error, kept);
        let ended = step.phase.is_terminal();
        *current = step;
        // Only an ended step can fail the workflow or end its last step.
        if ended {
            self.settle(now);
        }
        true
    }

    /// Cancels the workflow: steps not ended are cancelled (drained nodes
    /// stay drained; `drover node drain --disable` undoes it).
    pub fn cancel(&mut self, by: &str, now: Timestamp) {
        if self.status != WorkflowStatus::Running {
            return;
        }
        self.end(WorkflowStatus::Cancelled, format!("cancelled by {by}"), now);
    }

    /// Pauses (`Some(by)`) or resumes (`None`) a running workflow: a paused
    /// one starts no new step. Fails with why when it has ended or is
    /// already so.
    pub fn set_paused(&mut self, paused_by: Option<String>) -> Result<(), String> {
        if self.status != WorkflowStatus::Running {
            return Err(format!(
                "workflow {} has ended ({}); nothing to pause or resume",
                self.id,
                self.status.as_str()
            ));
        }
        match (&self.paused_by, &paused_by) {
            (Some(by), Some(_)) => Err(format!("workflow {} is paused already (by {by})", self.id)),
            (None, None) => Err(format!("workflow {} is not paused", self.id)),
            _ => {
                self.paused_by = paused_by;
                Ok(())
            }
        }
    }

    /// Ends the workflow when too many steps failed or every step ended.
    fn settle(&mut self, now: Timestamp) {
        let failed = self.steps.iter().filter(|step| step.phase == StepPhase::Failed).count();
        if failed > usize::try_from(self.max_failures).unwrap_or(usize::MAX) {
            let reason = format!("{failed} steps failed, more than --max-failures {}", self.max_failures_text());
            self.end(WorkflowStatus::Failed, reason, now);
        } else if self.steps.iter().all(|step| step.phase.is_terminal()) {
            let (status, reason) = if failed == 0 {
                (WorkflowStatus::Succeeded, String::new())
            } else {
                (WorkflowStatus::Failed, format!("{failed} steps failed"))
            };
            self.end(status, reason, now);
        }
    }

    fn end(&mut self, status: WorkflowStatus, reason: String, now: Timestamp) {
        for step in &mut self.steps {
            if !step.phase.is_terminal() {
                step.phase = StepPhase::Cancelled;
                step.finished_at = Some(now);
            }
        }
        self.status = status;
        self.reason = reason;
        self.finished_at = Some(now);
    }

    /// Whether a step of this running workflow holds `node` (started or
    /// not): no second workflow may take it.
    pub fn holds(&self, node: &str) -> bool {
        self.status == WorkflowStatus::Running
            && self.steps.iter().any(|step| step.node == node && !step.phase.is_terminal())
    }

    /// How many steps are in each of: done, failed, in flight, pending.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let count = |wanted: fn(StepPhase) -> bool| self.steps.iter().filter(|step| wanted(step.phase)).count();
        (
            count(|phase| phase == StepPhase::Done),
            count(|phase| phase == StepPhase::Failed),
            count(StepPhase::is_in_flight),
            count(|phase| phase == StepPhase::Pending),
        )
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary, and frees
/// what was cut.
pub fn keep_first_bytes(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.shrink_to_fit();
    }
}

/// A change to the workflows (`Command::Workflow`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkflowOp {
    /// Start a workflow. Refused when its id is taken or a running
    /// workflow holds one of its nodes.
    Start {
        /// The workflow, every step pending (boxed: it is much larger
        /// than the other changes).
        workflow: Box<Workflow>,
    },
    /// A step moved on (the leader proposes each phase before acting).
    UpdateStep {
        /// The workflow.
        id: String,
        /// The step's position.
        position: usize,
        /// The step as it is now.
        step: WorkflowStep,
        /// When.
        now: Timestamp,
    },
    /// An operator paused (`paused: true`) or resumed a workflow.
    Pause {
        /// The workflow.
        id: String,
        /// Paused, or resumed.
        paused: bool,
        /// Who.
        by: String,
    },
    /// An operator cancelled a workflow.
    Cancel {
        /// The workflow.
        id: String,
        /// Who.
        by: String,
        /// When.
        now: Timestamp,
    },
}

impl WorkflowOp {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            WorkflowOp::Start { .. } => "start",
            WorkflowOp::UpdateStep { .. } => "update_step",
            WorkflowOp::Pause { paused: true, .. } => "pause",
            WorkflowOp::Pause { paused: false, .. } => "resume",
            WorkflowOp::Cancel { .. } => "cancel",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(rate: Option<u32>, parallel: u32, num_steps: usize) -> Workflow {
        Workflow {
            id: "w1".to_owned(),
            operation: MachineOperation::Create,
            provider: None,
            labels: NodeLabels::default(),
            rate_per_minute: rate,
            parallel,
            max_failures: 1,
            max_failures_percent: None,
            drain: false,
            wait_timeout_ms: 60_000,
            maintenance: Maintenance::default(),
            paused_by: None,
            by: "alice".to_owned(),
            created_at: Timestamp::from_millis(0),
            status: WorkflowStatus::Running,
            finished_at: None,
            reason: String::new(),
            steps: (0..num_steps).map(|n| WorkflowStep::pending(&format!("n{n}"))).collect(),
        }
    }

    fn started(workflow: &mut Workflow, position: usize, at: i64) {
        let mut step = workflow.steps[position].clone();
        step.phase = StepPhase::Provider;
        step.started_at = Some(Timestamp::from_millis(at));
        assert!(workflow.update_step(position, step, Timestamp::from_millis(at)));
    }

    fn ended(workflow: &mut Workflow, position: usize, phase: StepPhase, at: i64) -> bool {
        let mut step = workflow.steps[position].clone();
        step.phase = phase;
        step.finished_at = Some(Timestamp::from_millis(at));
        workflow.update_step(position, step, Timestamp::from_millis(at))
    }

    #[test]
    fn without_a_rate_as_many_start_as_parallel_allows() {
        let mut workflow = workflow(None, 3, 5);
        assert_eq!(workflow.startable(Timestamp::from_millis(0)), vec![0, 1, 2]);
        started(&mut workflow, 0, 0);
        started(&mut workflow, 1, 0);
        assert_eq!(workflow.startable(Timestamp::from_millis(0)), vec![2]);
        assert!(ended(&mut workflow, 0, StepPhase::Done, 5));
        assert_eq!(workflow.startable(Timestamp::from_millis(5)), vec![2, 3]);
    }

    #[test]
    fn a_rate_spaces_the_starts_by_its_interval() {
        let mut workflow = workflow(Some(30), 5, 3);
        assert_eq!(workflow.start_interval(), Duration::from_secs(2));
        assert_eq!(workflow.startable(Timestamp::from_millis(0)), vec![0]);
        started(&mut workflow, 0, 1_000);
        assert!(workflow.startable(Timestamp::from_millis(2_999)).is_empty());
        assert_eq!(workflow.next_start_at(), Some(Timestamp::from_millis(3_000)));
        assert_eq!(workflow.startable(Timestamp::from_millis(3_000)), vec![1]);
    }

    #[test]
    fn more_failures_than_allowed_end_the_workflow_and_cancel_the_rest() {
        let mut workflow = workflow(None, 2, 4);
        started(&mut workflow, 0, 0);
        started(&mut workflow, 1, 0);
        assert!(ended(&mut workflow, 0, StepPhase::Failed, 1));
        assert_eq!(workflow.status, WorkflowStatus::Running);
        assert!(ended(&mut workflow, 1, StepPhase::Failed, 2));
        assert_eq!(workflow.status, WorkflowStatus::Failed);
        assert_eq!(workflow.reason, "2 steps failed, more than --max-failures 1");
        assert!(workflow.steps[2..].iter().all(|step| step.phase == StepPhase::Cancelled));
        assert!(workflow.startable(Timestamp::from_millis(3)).is_empty());
        // A late report changes nothing.
        assert!(!ended(&mut workflow, 2, StepPhase::Done, 4));
    }

    #[test]
    fn a_cancelled_workflow_releases_its_nodes_and_ignores_late_reports() {
        let mut workflow = workflow(None, 1, 2);
        started(&mut workflow, 0, 0);
        assert!(workflow.holds("n1"));
        workflow.cancel("bob", Timestamp::from_millis(1));
        assert_eq!((workflow.status, workflow.reason.as_str()), (WorkflowStatus::Cancelled, "cancelled by bob"));
        assert!(!workflow.holds("n0") && !workflow.holds("n1"));
        assert!(!ended(&mut workflow, 0, StepPhase::Done, 2));
        assert_eq!(workflow.steps[0].phase, StepPhase::Cancelled);
    }

    #[test]
    fn a_paused_workflow_starts_nothing_until_resumed_and_its_steps_in_flight_go_on() {
        let mut workflow = workflow(None, 2, 4);
        started(&mut workflow, 0, 0);
        workflow.set_paused(Some("bob".to_owned())).unwrap();
        assert!(workflow.startable(Timestamp::from_millis(1)).is_empty());
        assert!(workflow.set_paused(Some("carol".to_owned())).unwrap_err().contains("paused already (by bob)"));
        // The step in flight still ends.
        assert!(ended(&mut workflow, 0, StepPhase::Done, 2));
        assert_eq!(workflow.status, WorkflowStatus::Running);
        assert!(workflow.startable(Timestamp::from_millis(3)).is_empty());
        workflow.set_paused(None).unwrap();
        assert_eq!(workflow.startable(Timestamp::from_millis(4)), vec![1, 2]);
        assert!(workflow.set_paused(None).unwrap_err().contains("is not paused"));
        workflow.cancel("bob", Timestamp::from_millis(5));
        assert!(workflow.set_paused(Some("bob".to_owned())).unwrap_err().contains("has ended (cancelled)"));
    }

    #[test]
    fn a_workflow_of_many_steps_keeps_less_output_per_step() {
        assert_eq!(workflow(None, 1, 1_280).step_output_max(), STEP_OUTPUT_MAX);
        let mut many = workflow(None, 1, 10_000);
        assert_eq!(many.step_output_max(), WORKFLOW_OUTPUT_BUDGET / 10_000);
        let mut step = many.steps[0].clone();
        step.phase = StepPhase::Failed;
        step.output = "é".repeat(STEP_OUTPUT_MAX);
        step.error = "x".repeat(STEP_OUTPUT_MAX);
        assert!(many.update_step(0, step, Timestamp::from_millis(1)));
        let kept = &many.steps[0];
        assert!(kept.output.len() <= many.step_output_max() && kept.output.len() + 1 >= many.step_output_max());
        assert!(kept.output.chars().all(|character| character == 'é'));
        assert_eq!(kept.error.len(), many.step_output_max());
    }

    #[test]
    fn max_failures_is_a_number_of_nodes_or_a_percentage_of_them() {
        assert_eq!("3".parse::<FailureLimit>(), Ok(FailureLimit::Nodes(3)));
        assert_eq!("0".parse::<FailureLimit>(), Ok(FailureLimit::Nodes(0)));
        assert_eq!(" 10% ".parse::<FailureLimit>(), Ok(FailureLimit::Percent(10)));
        assert_eq!("100%".parse::<FailureLimit>(), Ok(FailureLimit::Percent(100)));
        assert_eq!("0%".parse::<FailureLimit>(), Ok(FailureLimit::Percent(0)));
        for (bad, why) in [
            ("150%", "is more than 100%"),
            ("-1", "is not a number of nodes or a percentage"),
            ("x%", "is not a number of nodes or a percentage"),
            ("%", "is not a number of nodes or a percentage"),
            ("-5%", "is not a number of nodes or a percentage"),
            ("", "is not a number of nodes or a percentage"),
        ] {
            let error = bad.parse::<FailureLimit>().unwrap_err();
            assert!(error.starts_with(&format!("--max-failures {bad:?} {why}")), "{bad}: {error}");
            assert!(error.contains("`--max-failures 10%`"), "{error}");
        }
    }

    #[test]
    fn a_percentage_resolves_against_the_nodes_selected_rounded_down() {
        assert_eq!(FailureLimit::Percent(10).resolve(25), 2);
        assert_eq!(FailureLimit::Percent(10).resolve(9), 0);
        assert_eq!(FailureLimit::Percent(50).resolve(3), 1);
        assert_eq!(FailureLimit::Percent(100).resolve(7), 7);
        assert_eq!(FailureLimit::Percent(0).resolve(1_000), 0);
        assert_eq!(FailureLimit::Percent(33).resolve(10_000), 3_300);
        assert_eq!(FailureLimit::Nodes(4).resolve(2), 4);
    }

    #[test]
    fn a_failure_limit_travels_as_a_number_or_a_percentage_text() {
        assert_eq!(serde_json::to_string(&FailureLimit::Nodes(2)).unwrap(), "2");
        assert_eq!(serde_json::to_string(&FailureLimit::Percent(10)).unwrap(), "\"10%\"");
        assert_eq!(serde_json::from_str::<FailureLimit>("2").unwrap(), FailureLimit::Nodes(2));
        assert_eq!(serde_json::from_str::<FailureLimit>("\"10%\"").unwrap(), FailureLimit::Percent(10));
        let refused = serde_json::from_str::<FailureLimit>("\"150%\"").unwrap_err().to_string();
        assert!(refused.contains("more than 100%"), "{refused}");
        let negative = serde_json::from_str::<FailureLimit>("-1").unwrap_err().to_string();
        assert!(negative.contains("--max-failures \"-1\""), "{negative}");
    }

    #[test]
    fn a_resolved_percentage_stops_the_workflow_and_says_where_it_came_from() {
        let mut workflow = workflow(None, 4, 20);
        workflow.max_failures = FailureLimit::Percent(10).resolve(20);
        workflow.max_failures_percent = Some(10);
        assert_eq!(workflow.max_failures_text(), "2 (10% of 20 nodes)");
        for position in 0..3 {
            started(&mut workflow, position, 0);
            assert!(ended(&mut workflow, position, StepPhase::Failed, 1));
        }
        assert_eq!(workflow.status, WorkflowStatus::Failed);
        assert_eq!(workflow.reason, "3 steps failed, more than --max-failures 2 (10% of 20 nodes)");
    }

    #[test]
    fn every_step_done_is_success() {
        let mut workflow = workflow(None, 2, 2);
        started(&mut workflow, 0, 0);
        started(&mut workflow, 1, 0);
        assert!(ended(&mut workflow, 0, StepPhase::Done, 1));
        assert!(ended(&mut workflow, 1, StepPhase::Done, 2));
        assert_eq!(
            (workflow.status, workflow.finished_at),
            (WorkflowStatus::Succeeded, Some(Timestamp::from_millis(2)))
        );
        assert_eq!(workflow.counts(), (2, 0, 0, 0));
    }
}
