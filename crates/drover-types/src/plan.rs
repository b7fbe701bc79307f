//! Plans: what the scheduler wants to change, before the leader commits it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alloc::{AllocClientStatus, AllocDesiredStatus, Allocation};
use crate::deployment::Deployment;
use crate::eval::{Evaluation, PlacementFailure};
use crate::ids::{AllocId, EvalId, JobId, NodeId};

/// The scheduler's answer to an evaluation.
///
/// A plan is computed against a snapshot; the leader re-checks it against
/// the latest state before committing, and commits only the part that still
/// fits (see `drover_state::verify_plan`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Plan {
    /// The evaluation being processed.
    pub eval_id: EvalId,
    /// The job being scheduled.
    pub job_id: JobId,
    /// The job's `job_modify_index` in the snapshot; a plan for an outdated
    /// job is rejected as a whole.
    pub job_modify_index: u64,
    /// New allocations, complete with ids.
    pub place: Vec<Allocation>,
    /// Existing allocations moved to a new job version without a restart.
    pub in_place: Vec<InPlaceUpdate>,
    /// Allocations to stop.
    pub stop: Vec<PlanStop>,
    /// Groups that could not be placed in full.
    pub failed: BTreeMap<String, PlacementFailure>,
    /// Evaluations to create, such as delayed reschedules.
    pub follow_ups: Vec<Evaluation>,
    /// Changes to existing allocations that neither stop nor move them (an
    /// allocation on a disconnected node becoming `unknown`, a failed one
    /// waiting for its reschedule delay).
    #[serde(default)]
    pub updates: Vec<AllocUpdate>,
    /// A deployment this plan starts (its placements carry its id).
    #[serde(default)]
    pub deployment: Option<Deployment>,
    /// Deployments this plan changes (a superseded one cancelled, counters
    /// of placed allocations, canaries).
    #[serde(default)]
    pub deployment_updates: Vec<Deployment>,
    /// Per group, what the plan does: the preview of `drover job plan`.
    pub annotations: BTreeMap<String, GroupChanges>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.place.is_empty()
            && self.in_place.is_empty()
            && self.stop.is_empty()
            && self.follow_ups.is_empty()
            && self.updates.is_empty()
            && self.deployment.is_none()
            && self.deployment_updates.is_empty()
    }

    /// The nodes the plan places allocations on.
    pub fn placement_nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.place.iter().map(|alloc| &alloc.node_id)
    }
}

/// An allocation moved to a newer job version without restarting it (only
/// fields that do not affect its tasks changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InPlaceUpdate {
    /// The allocation.
    pub alloc_id: AllocId,
    /// Its node.
    pub node_id: NodeId,
    /// The job version it now belongs to.
    pub job_version: u64,
}

/// A change to an allocation that keeps it where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocUpdate {
    /// The allocation.
    pub alloc_id: AllocId,
    /// Its node.
    pub node_id: NodeId,
    /// A client status decided by the server (`unknown` for an allocation
    /// on a disconnected node).
    pub client_status: Option<AllocClientStatus>,
    /// Evaluation that will act on it later.
    pub follow_up_eval: Option<EvalId>,
    /// Why, for humans.
    pub description: String,
}

/// An allocation the plan stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStop {
    /// The allocation.
    pub alloc_id: AllocId,
    /// Its node.
    pub node_id: NodeId,
    /// `stop` or `evict`.
    pub desired_status: AllocDesiredStatus,
    /// Why, for humans.
    pub description: String,
    /// Set when the server decides the client status itself (`lost` for an
    /// allocation on a down node).
    pub client_status: Option<AllocClientStatus>,
    /// Evaluation that will replace it later.
    pub follow_up_eval: Option<EvalId>,
}

/// Counts of what a plan does to one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GroupChanges {
    /// New allocations.
    pub place: u32,
    /// Allocations stopped for good.
    pub stop: u32,
    /// Allocations moved to the new version without a restart.
    pub in_place: u32,
    /// Allocations replaced because their tasks changed.
    pub destructive: u32,
    /// Allocations left alone.
    pub ignore: u32,
    /// Allocations moved off a draining node.
    pub migrate: u32,
    /// Allocations lost with their node.
    pub lost: u32,
    /// Failed allocations replaced now.
    pub reschedule_now: u32,
    /// Failed allocations to be replaced after a delay.
    pub reschedule_later: u32,
    /// Canaries placed.
    pub canary: u32,
    /// Allocations on a disconnected node marked `unknown`.
    #[serde(default)]
    pub disconnect: u32,
    /// Allocations on a node that came back, kept or stopped per
    /// `disconnect.reconcile`.
    #[serde(default)]
    pub reconnect: u32,
}

/// Convenience for tests and callers building allocations.
impl Allocation {
    /// Whether the allocation sits on `node`.
    pub fn is_on(&self, node: &NodeId) -> bool {
        &self.node_id == node
    }
}
