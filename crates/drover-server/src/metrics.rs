//! `/v1/metrics`: the fleet's node and task series (node_exporter's names,
//! see `drover_metrics`), in the OpenMetrics text format.
//!
//! Two scopes, because every server holds only the samples of the agents
//! connected to it:
//!
//! - per server (the default): the samples of the agents connected to this
//!   server; `drover_node_up`, `drover_node_status` and
//!   `drover_node_log_dropped_lines_total` of every known node (down ones
//!   included) come from the Raft leader only, so that scraping every server
//!   gives each series once.
//! - fleet (`?fleet=true`): this server asks its peers for their samples
//!   (as `drover node top` does) and answers for every node, statuses
//!   included; a peer that does not answer leaves its nodes' samples out.
//!
//! Task series are labelled with their allocation's job and group, looked up
//! in the replicated state. The per-server scope ends with this server's
//! own series (`self_metrics`); both scopes with its log sinks' figures.
//!
//! The answer is a [`FleetText`]: chunks rendered one at a time as the API
//! streams them, so the whole text (about 100 MB for 10,000 nodes) is never
//! held; what is held is the nodes' samples, copied out of the state.

use std::collections::HashMap;

use drover_metrics::{Fleet, FleetNode, FleetText, NodeLabels, NodeSample, TaskOwner};
use drover_types::{AllocId, Node, NodeId};

use crate::server::Server;

impl Server {
    /// The text of `/v1/metrics` for the nodes `visible` lets the caller
    /// read: this server's agents, or the whole fleet when `fleet` is set
    /// (see the module's documentation), as chunks to stream.
    pub async fn fleet_metrics(&self, visible: &(dyn Fn(&Node) -> bool + Sync), fleet: bool) -> FleetText {
        let samples: HashMap<NodeId, NodeSample> = if fleet {
            self.fleet_usage().await.into_iter().collect()
        } else {
            let connected = self.sessions().connected_nodes().await;
            self.local_usage().into_iter().filter(|(node_id, _)| connected.contains(node_id)).collect()
        };
        let with_status = fleet || self.is_leader();
        let state = self.state();
        let mut nodes = Vec::new();
        let mut task_owners = HashMap::new();
        let mut samples = samples;
        for node in state.nodes().filter(|node| visible(node)) {
            let sample = samples.remove(&node.id);
            if sample.is_none() && !with_status {
                continue;
            }
            for task in sample.iter().flat_map(|sample| &sample.tasks) {
                if let Some(alloc) = state.alloc(&AllocId::new(task.alloc_id.clone())) {
                    let owner = TaskOwner { job: alloc.job_id.as_str().to_owned(), group: alloc.group.clone() };
                    task_owners.insert(task.alloc_id.clone(), owner);
                }
            }
            nodes.push(FleetNode {
                labels: NodeLabels {
                    node: node.name.clone(),
                    hostgroup: node.hostgroup.clone(),
                    environment: node.environment.clone(),
                },
                status: with_status.then_some(node.status),
                log_dropped_lines: with_status.then_some(node.log_dropped_lines),
                sample,
            });
        }
        drop(state);
        // drover's own series are this server's: per-server scope only.
        let own = if fleet { String::new() } else { self.self_metrics_text().await };
        FleetText::new(Fleet { nodes, task_owners }).before_eof(own + &self.log_sink_metrics())
    }
}
