//! Evaluations: the servers' record of *why* the scheduler looked at a job.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{EvalId, JobId, NodeId};
use crate::time::Timestamp;

/// What caused an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvalTrigger {
    /// The job was registered or changed.
    JobRegister,
    /// The job was stopped.
    JobDeregister,
    /// A node joined, left or changed.
    NodeUpdate,
    /// A node is being drained.
    NodeDrain,
    /// An allocation failed.
    AllocFailure,
    /// An allocation was stopped by an operator.
    AllocStop,
    /// A delayed reschedule came due.
    RetryFailedAlloc,
    /// Capacity changed while placements were blocked.
    QueuedAllocs,
    /// A deployment moved on to its next batch.
    DeploymentWatcher,
    /// A periodic job launched a child.
    PeriodicJob,
    /// A disconnected node came back.
    Reconnect,
    /// An operator forced a new evaluation.
    Forced,
}

impl EvalTrigger {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalTrigger::JobRegister => "job-register",
            EvalTrigger::JobDeregister => "job-deregister",
            EvalTrigger::NodeUpdate => "node-update",
            EvalTrigger::NodeDrain => "node-drain",
            EvalTrigger::AllocFailure => "alloc-failure",
            EvalTrigger::AllocStop => "alloc-stop",
            EvalTrigger::RetryFailedAlloc => "retry-failed-alloc",
            EvalTrigger::QueuedAllocs => "queued-allocs",
            EvalTrigger::DeploymentWatcher => "deployment-watcher",
            EvalTrigger::PeriodicJob => "periodic-job",
            EvalTrigger::Reconnect => "reconnect",
            EvalTrigger::Forced => "forced",
        }
    }
}

impl fmt::Display for EvalTrigger {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Where an evaluation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EvalStatus {
    /// Waiting for a scheduler worker.
    #[default]
    Pending,
    /// Some placements could not be made; retried when capacity changes.
    Blocked,
    /// Done.
    Complete,
    /// The scheduler gave up (see `status_description`).
    Failed,
    /// Superseded by a newer evaluation of the same job.
    Canceled,
}

impl EvalStatus {
    /// Whether the evaluation needs no more work.
    pub fn is_terminal(self) -> bool {
        matches!(self, EvalStatus::Complete | EvalStatus::Failed | EvalStatus::Canceled)
    }
}

impl fmt::Display for EvalStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            EvalStatus::Pending => "pending",
            EvalStatus::Blocked => "blocked",
            EvalStatus::Complete => "complete",
            EvalStatus::Failed => "failed",
            EvalStatus::Canceled => "canceled",
        })
    }
}

/// Why some instances of a group could not be placed, in numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlacementFailure {
    /// Instances that could not be placed.
    pub num_unplaced: u32,
    /// Nodes looked at.
    pub nodes_evaluated: u32,
    /// Nodes that were down, ineligible or draining.
    pub nodes_not_ready: u32,
    /// Nodes outside the job's datacenters.
    pub nodes_wrong_zone: u32,
    /// Nodes rejected per constraint (`${node.hostgroup} glob belle2/**`).
    pub constraint_filtered: BTreeMap<String, u32>,
    /// Nodes without room.
    pub nodes_exhausted: u32,
    /// Which resource ran out, per node count (`cpu`, `memory`).
    pub dimension_exhausted: BTreeMap<String, u32>,
    /// Nodes without the ports the group asks for, per reason (`static
    /// port 9000 in use`, `no free dynamic port`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports_exhausted: BTreeMap<String, u32>,
}

impl PlacementFailure {
    /// A one-line explanation for status output.
    pub fn summary(&self) -> String {
        if self.nodes_evaluated == 0 {
            return "no nodes are registered".to_owned();
        }
        let mut parts = Vec::new();
        if self.nodes_not_ready > 0 {
            parts.push(format!("{} not ready", self.nodes_not_ready));
        }
        if self.nodes_wrong_zone > 0 {
            parts.push(format!("{} outside the job's datacenters", self.nodes_wrong_zone));
        }
        for (constraint, count) in &self.constraint_filtered {
            parts.push(format!("{count} filtered by constraint {constraint}"));
        }
        for (dimension, count) in &self.dimension_exhausted {
            parts.push(format!("{count} out of {dimension}"));
        }
        for (reason, count) in &self.ports_exhausted {
            parts.push(format!("{count} with {reason}"));
        }
        format!("{} nodes evaluated: {}", self.nodes_evaluated, parts.join(", "))
    }
}

/// The record of one scheduling decision's cause and outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Evaluation id (UUID).
    pub id: EvalId,
    /// The job's priority at creation.
    pub priority: u8,
    /// The job to evaluate.
    pub job_id: JobId,
    /// What caused it.
    pub triggered_by: EvalTrigger,
    /// Where it is.
    pub status: EvalStatus,
    /// Detail for humans.
    pub status_description: String,
    /// The node involved, for node triggers.
    pub node_id: Option<NodeId>,
    /// The job's `job_modify_index` when the evaluation was created.
    pub job_modify_index: u64,
    /// Do not process before this time (delayed reschedules).
    pub wait_until: Option<Timestamp>,
    /// Evaluation this one follows up.
    pub previous_eval: Option<EvalId>,
    /// Blocked evaluation created for the placements this one could not
    /// make.
    pub blocked_eval: Option<EvalId>,
    /// Groups that could not be placed in full.
    pub failed_placements: BTreeMap<String, PlacementFailure>,
    /// Instances still waiting for placement, per group.
    pub queued: BTreeMap<String, u32>,
    /// Creation time.
    pub create_time: Timestamp,
    /// Last change.
    pub modify_time: Timestamp,
    /// For blocked evaluations: the state's capacity index when the
    /// placements failed. Capacity that changed after it (a node joined
    /// while the scheduler was planning) releases the evaluation at once.
    #[serde(default)]
    pub blocked_at_capacity: u64,
    /// Raft index of creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

impl Evaluation {
    /// A new pending evaluation.
    pub fn new(id: EvalId, job_id: JobId, priority: u8, triggered_by: EvalTrigger, now: Timestamp) -> Self {
        Evaluation {
            id,
            priority,
            job_id,
            triggered_by,
            status: EvalStatus::Pending,
            status_description: String::new(),
            node_id: None,
            job_modify_index: 0,
            wait_until: None,
            previous_eval: None,
            blocked_eval: None,
            failed_placements: BTreeMap::new(),
            queued: BTreeMap::new(),
            create_time: now,
            modify_time: now,
            blocked_at_capacity: 0,
            create_index: 0,
            modify_index: 0,
        }
    }
}
