//! The scheduler's read-only window on the cluster state.
//!
//! The scheduler sees the state only through [`ClusterView`]: the Raft state
//! store implements it over its persistent (`imbl`) maps, the
//! [`harness`](crate::harness) implements it over plain maps. Every method
//! borrows from the view, so a snapshot of persistent maps can hand out
//! references without copying; an implementation that holds `Arc<Node>` or
//! `Arc<Allocation>` returns `&**arc`.

use drover_types::{AllocId, Allocation, Deployment, Job, JobId, Node, NodeId, Resources};

/// A consistent, read-only snapshot of the cluster state.
///
/// The trait is object-safe: `&dyn ClusterView` works wherever
/// `&impl ClusterView` does.
///
/// Cost contract (the scheduler's speed depends on it):
/// - [`node`](Self::node), [`job`](Self::job), [`job_version`](Self::job_version),
///   [`alloc`](Self::alloc) and [`node_usage`](Self::node_usage) are O(1) or
///   O(log n) lookups: they are called for every candidate node of every
///   placement.
/// - [`allocs_for_job`](Self::allocs_for_job) is O(allocations of that job)
///   and is called once per evaluation.
/// - [`nodes`](Self::nodes) is O(nodes) and is called once per evaluation.
/// - [`latest_deployment`](Self::latest_deployment) is O(1) or O(log n)
///   and is called once per evaluation.
pub trait ClusterView {
    /// Every registered node, in any order that is stable for one snapshot
    /// (a seeded scheduler run is only reproducible if it is).
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_>;

    /// One node, or `None` if it was removed.
    fn node(&self, id: &NodeId) -> Option<&Node>;

    /// The current version of a job, or `None` if it was purged.
    fn job(&self, id: &JobId) -> Option<&Job>;

    /// Any retained version of a job, the current one included; used to
    /// decide whether an allocation of an older version can be updated in
    /// place. `None` when that version is no longer kept, which makes the
    /// update destructive.
    fn job_version(&self, id: &JobId, version: u64) -> Option<&Job>;

    /// One allocation, terminal or not.
    fn alloc(&self, id: &AllocId) -> Option<&Allocation>;

    /// Every allocation of a job, terminal ones included, in a stable order.
    fn allocs_for_job(&self, job: &JobId) -> Vec<&Allocation>;

    /// Every allocation placed on a node, terminal ones included.
    fn allocs_on_node(&self, node: &NodeId) -> Vec<&Allocation>;

    /// The sum of the resources of the allocations on `node` that hold
    /// resources ([`Allocation::holds_resources`]); zero for an unknown
    /// node. Must be O(1): it is maintained incrementally by the store.
    fn node_usage(&self, node: &NodeId) -> Resources;

    /// The newest deployment of a job (the last one created), whatever its
    /// status; `None` when the job never had one.
    ///
    /// The scheduler reads it to decide whether the job's placements join
    /// a running deployment, whether a new one starts, and which one to
    /// cancel. The default returns `None`, for stores that do not keep
    /// deployments yet: every plan that places allocations in a group with
    /// an `update` block then starts a new deployment, and canaries are
    /// never promoted.
    fn latest_deployment(&self, job: &JobId) -> Option<&Deployment> {
        let _ = job;
        None
    }
}

impl<T: ClusterView + ?Sized> ClusterView for &T {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        (**self).nodes()
    }

    fn node(&self, id: &NodeId) -> Option<&Node> {
        (**self).node(id)
    }

    fn job(&self, id: &JobId) -> Option<&Job> {
        (**self).job(id)
    }

    fn job_version(&self, id: &JobId, version: u64) -> Option<&Job> {
        (**self).job_version(id, version)
    }

    fn alloc(&self, id: &AllocId) -> Option<&Allocation> {
        (**self).alloc(id)
    }

    fn allocs_for_job(&self, job: &JobId) -> Vec<&Allocation> {
        (**self).allocs_for_job(job)
    }

    fn allocs_on_node(&self, node: &NodeId) -> Vec<&Allocation> {
        (**self).allocs_on_node(node)
    }

    fn node_usage(&self, node: &NodeId) -> Resources {
        (**self).node_usage(node)
    }

    fn latest_deployment(&self, job: &JobId) -> Option<&Deployment> {
        (**self).latest_deployment(job)
    }
}
