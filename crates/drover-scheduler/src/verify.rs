//! The leader's re-check of a plan before it is committed (Nomad's plan
//! applier).
//!
//! A plan is computed against a snapshot; by the time it reaches the leader
//! other plans may have been committed. [`verify_plan`] checks it against
//! the latest state:
//!
//! - if the job's specification changed (`job_modify_index`), the whole plan
//!   is refused: it was computed for a job that no longer exists;
//! - otherwise each node's placements are accepted only if the node still
//!   exists, is schedulable, and everything fits given its latest usage
//!   plus this plan's placements minus what this plan stops there, and no
//!   port a placement holds is taken there (by an allocation that runs on
//!   and is not stopped by this plan, or by another placement of the
//!   plan);
//! - stops, in-place updates, allocation updates, the deployment the plan
//!   starts or cancels, and follow-up evaluations are always accepted (a
//!   deployment whose placements were refused waits for the next plan).
//!
//! The worker re-plans with a fresh snapshot when nodes were refused.

use std::collections::{BTreeMap, HashMap, HashSet};

use drover_types::{NodeId, Plan, Resources};

use crate::view::ClusterView;

/// The outcome of [`verify_plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPlan {
    /// The part of the plan that may be committed (everything but the
    /// refused placements; nothing when `job_changed`).
    pub accepted: Plan,
    /// Nodes whose placements were refused, sorted.
    pub rejected_nodes: Vec<NodeId>,
    /// The job changed since the plan was computed: nothing was accepted.
    pub job_changed: bool,
}

impl VerifiedPlan {
    /// Whether the plan was accepted in full.
    pub fn is_fully_accepted(&self) -> bool {
        !self.job_changed && self.rejected_nodes.is_empty()
    }
}

/// Re-checks `plan` against the latest state in `view`. Never panics.
pub fn verify_plan<V: ClusterView + ?Sized>(view: &V, plan: &Plan) -> VerifiedPlan {
    let current_job_modify_index = view.job(&plan.job_id).map_or(0, |job| job.job_modify_index);
    if current_job_modify_index != plan.job_modify_index {
        let rejected: BTreeMap<&NodeId, ()> = plan.placement_nodes().map(|node| (node, ())).collect();
        return VerifiedPlan {
            accepted: Plan {
                eval_id: plan.eval_id.clone(),
                job_id: plan.job_id.clone(),
                job_modify_index: plan.job_modify_index,
                ..Plan::default()
            },
            rejected_nodes: rejected.into_keys().cloned().collect(),
            job_changed: true,
        };
    }

    let mut placed_by_node: BTreeMap<&NodeId, Resources> = BTreeMap::new();
    for alloc in &plan.place {
        *placed_by_node.entry(&alloc.node_id).or_default() += alloc.resources;
    }
    let mut freed_by_node: HashMap<&NodeId, Resources> = HashMap::new();
    let mut counted_stops = HashSet::new();
    for stop in &plan.stop {
        if !counted_stops.insert(&stop.alloc_id) {
            continue;
        }
        let Some(alloc) = view.alloc(&stop.alloc_id) else {
            continue;
        };
        if alloc.node_id == stop.node_id && alloc.holds_resources() {
            *freed_by_node.entry(&stop.node_id).or_default() += alloc.resources;
        }
    }

    let mut rejected_nodes: Vec<NodeId> = Vec::new();
    for (node_id, placed) in placed_by_node {
        let fits = view.node(node_id).is_some_and(|node| {
            let freed = freed_by_node.get(node_id).copied().unwrap_or_default();
            let used_after = (view.node_usage(node_id) + placed).saturating_sub(&freed);
            node.is_schedulable() && used_after.fits_in(&node.resources)
        });
        if !fits || !ports_are_free(view, plan, node_id, &counted_stops) {
            rejected_nodes.push(node_id.clone());
        }
    }

    let mut accepted = plan.clone();
    if !rejected_nodes.is_empty() {
        let rejected: HashSet<&NodeId> = rejected_nodes.iter().collect();
        accepted.place.retain(|alloc| !rejected.contains(&alloc.node_id));
    }
    VerifiedPlan { accepted, rejected_nodes, job_changed: false }
}

/// Whether the ports of the plan's placements on `node` are free there:
/// not held by an allocation that runs on (wants to run, holds resources,
/// is not stopped by the plan), and not held twice by the plan.
fn ports_are_free<V: ClusterView + ?Sized>(
    view: &V,
    plan: &Plan,
    node: &NodeId,
    stopped: &HashSet<&drover_types::AllocId>,
) -> bool {
    let mut placed_ports = plan.place.iter().filter(|alloc| &alloc.node_id == node).flat_map(|alloc| &alloc.ports);
    let Some(first) = placed_ports.next() else {
        return true;
    };
    let mut taken: HashSet<u16> = view
        .allocs_on_node(node)
        .into_iter()
        .filter(|alloc| alloc.wants_to_run() && alloc.holds_resources() && !stopped.contains(&alloc.id))
        .flat_map(|alloc| alloc.ports.iter().map(|port| port.value))
        .collect();
    std::iter::once(first).chain(placed_ports).all(|port| taken.insert(port.value))
}
