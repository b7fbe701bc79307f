//! The scheduler's read-only view over the replicated [`State`].

use drover_scheduler::ClusterView;
use drover_state::State;
use drover_types::{AllocId, Allocation, Deployment, Job, JobId, Node, NodeId, Resources};

/// Adapts a [`State`] snapshot to the scheduler's [`ClusterView`].
#[derive(Clone, Copy, Debug)]
pub struct StateView<'a> {
    state: &'a State,
}

impl<'a> StateView<'a> {
    /// A view over `state`.
    pub fn new(state: &'a State) -> Self {
        Self { state }
    }
}

impl ClusterView for StateView<'_> {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.state.nodes().map(|node| node.as_ref()))
    }

    fn node(&self, id: &NodeId) -> Option<&Node> {
        self.state.node(id).map(|node| node.as_ref())
    }

    fn job(&self, id: &JobId) -> Option<&Job> {
        self.state.job(id).map(|job| job.as_ref())
    }

    fn job_version(&self, id: &JobId, version: u64) -> Option<&Job> {
        self.state.job_version(id, version).map(|job| job.as_ref())
    }

    fn alloc(&self, id: &AllocId) -> Option<&Allocation> {
        self.state.alloc(id).map(|alloc| alloc.as_ref())
    }

    fn allocs_for_job(&self, job: &JobId) -> Vec<&Allocation> {
        self.state.allocs_for_job(job).map(|alloc| alloc.as_ref()).collect()
    }

    fn allocs_on_node(&self, node: &NodeId) -> Vec<&Allocation> {
        self.state.allocs_on_node(node).map(|alloc| alloc.as_ref()).collect()
    }

    fn node_usage(&self, node: &NodeId) -> Resources {
        self.state.node_usage(node)
    }

    fn latest_deployment(&self, job: &JobId) -> Option<&Deployment> {
        self.state.latest_deployment(job).map(|deployment| deployment.as_ref())
    }
}
