//! The plan's running account of what it changes on each node.
//!
//! While a plan is built, the view still shows the state before it. The
//! ledger keeps the difference — resources placed and freed per node, and
//! how many live allocations of the job and of each group sit on each
//! node, and the ports it takes and frees — in small maps that only hold
//! the nodes the plan touches, so a placement never costs more than a few
//! lookups.

use drover_types::{AllocatedPort, Allocation, NodeId, Resources};

use crate::fast_hash::FastMap;
use crate::ports::{NodePorts, PortLedger};
use crate::view::ClusterView;

/// Whether an allocation is running or about to: the servers want it and
/// the agent has not finished it.
pub(crate) fn is_live(alloc: &Allocation) -> bool {
    alloc.wants_to_run() && !alloc.is_terminal()
}

/// Per-node changes made by the plan under construction.
#[derive(Debug, Default)]
pub(crate) struct Ledger<'a> {
    /// Resources of the allocations the plan places, per node.
    placed: FastMap<&'a NodeId, Resources>,
    /// Resources of the allocations the plan stops that held resources.
    freed: FastMap<&'a NodeId, Resources>,
    /// Live allocations of the job per node, after the plan.
    job_allocs_on_node: FastMap<&'a NodeId, u32>,
    /// Live allocations of each group per node, after the plan.
    group_allocs_on_node: FastMap<&'a str, FastMap<&'a NodeId, u32>>,
    /// Ports placed and freed.
    ports: PortLedger<'a>,
}

impl<'a> Ledger<'a> {
    /// A ledger that starts from the job's existing live allocations.
    pub(crate) fn new(job_allocs: &[&'a Allocation]) -> Ledger<'a> {
        let mut ledger = Ledger::default();
        for alloc in job_allocs.iter().copied().filter(|alloc| is_live(alloc)) {
            ledger.add_live(&alloc.node_id, &alloc.group);
        }
        ledger
    }

    /// Resources in use on a node once the plan so far is applied.
    pub(crate) fn used_on<V: ClusterView + ?Sized>(&self, view: &V, node: &NodeId) -> Resources {
        let placed = self.placed.get(node).copied().unwrap_or_default();
        let freed = self.freed.get(node).copied().unwrap_or_default();
        (view.node_usage(node) + placed).saturating_sub(&freed)
    }

    /// Ports taken on a node once the plan so far is applied.
    pub(crate) fn ports_used_on<V: ClusterView + ?Sized>(&self, view: &V, node: &NodeId) -> NodePorts {
        self.ports.used_on(view, node)
    }

    /// Live allocations of the job on a node.
    pub(crate) fn num_job_allocs(&self, node: &NodeId) -> u32 {
        self.job_allocs_on_node.get(node).copied().unwrap_or(0)
    }

    /// Live allocations of a group on a node.
    pub(crate) fn num_group_allocs(&self, group: &str, node: &NodeId) -> u32 {
        self.group_allocs_on_node.get(group).and_then(|per_node| per_node.get(node)).copied().unwrap_or(0)
    }

    /// The plan stops `alloc`: its resources are free for this plan and it
    /// no longer counts as a neighbour.
    pub(crate) fn record_stop(&mut self, alloc: &'a Allocation) {
        self.ports.record_stop(alloc);
        if alloc.holds_resources() {
            *self.freed.entry(&alloc.node_id).or_default() += alloc.resources;
        }
        if is_live(alloc) {
            self.remove_live(&alloc.node_id, &alloc.group);
        }
    }

    /// Takes back [`record_stop`](Self::record_stop) (a destructive update
    /// whose replacement found no node keeps the old allocation).
    pub(crate) fn undo_stop(&mut self, alloc: &'a Allocation) {
        self.ports.undo_stop(alloc);
        if alloc.holds_resources()
            && let Some(freed) = self.freed.get_mut(&alloc.node_id)
        {
            *freed = freed.saturating_sub(&alloc.resources);
        }
        if is_live(alloc) {
            self.add_live(&alloc.node_id, &alloc.group);
        }
    }

    /// The plan places an allocation of `group` on `node`.
    pub(crate) fn record_placement(
        &mut self,
        node: &'a NodeId,
        group: &'a str,
        resources: Resources,
        ports: &[AllocatedPort],
    ) {
        *self.placed.entry(node).or_default() += resources;
        self.ports.record_placement(node, ports);
        self.add_live(node, group);
    }

    fn add_live(&mut self, node: &'a NodeId, group: &'a str) {
        *self.job_allocs_on_node.entry(node).or_insert(0) += 1;
        *self.group_allocs_on_node.entry(group).or_default().entry(node).or_insert(0) += 1;
    }

    fn remove_live(&mut self, node: &'a NodeId, group: &'a str) {
        if let Some(count) = self.job_allocs_on_node.get_mut(node) {
            debug_assert!(*count > 0, "a live allocation was counted on its node");
            *count = count.saturating_sub(1);
        }
        if let Some(count) = self.group_allocs_on_node.get_mut(group).and_then(|per_node| per_node.get_mut(node)) {
            debug_assert!(*count > 0, "a live allocation was counted for its group");
            *count = count.saturating_sub(1);
        }
    }
}
