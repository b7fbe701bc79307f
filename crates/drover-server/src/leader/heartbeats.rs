//! The heartbeat tracker: marks nodes down when they fall silent.
//!
//! A node's deadline is its last heartbeat plus the TTL, but never earlier
//! than the moment this server became leader plus the TTL and the grace
//! period: after a leader change every node gets a fresh grace period, so a
//! control-plane hiccup never marks the fleet down.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use drover_state::Command;
use drover_types::{EvalTrigger, Evaluation, NodeStatus, Timestamp};

use crate::ids::new_eval_id;
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken, leadership_started: Instant) {
    let config = server.config().heartbeat;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let earliest_deadline = leadership_started + config.ttl + config.leader_grace;
        let state = server.state();
        let expired: Vec<_> = state
            .nodes()
            .filter(|node| matches!(node.status, NodeStatus::Ready | NodeStatus::Initializing))
            .filter(|node| {
                let last = server.inner.heartbeats.last_seen(&node.id);
                let deadline = last.map_or(earliest_deadline, |last| (last + config.ttl).max(earliest_deadline));
                now > deadline
            })
            .map(|node| node.id.clone())
            .collect();
        for node_id in expired {
            let wall_now = Timestamp::now();
            let mut evals = Vec::new();
            for alloc in state.live_allocs_on_node(&node_id) {
                if evals.iter().any(|eval: &Evaluation| eval.job_id == alloc.job_id) {
                    continue;
                }
                let priority = state.job(&alloc.job_id).map_or(50, |job| job.priority);
                let mut eval =
                    Evaluation::new(new_eval_id(), alloc.job_id.clone(), priority, EvalTrigger::NodeUpdate, wall_now);
                eval.node_id = Some(node_id.clone());
                evals.push(eval);
            }
            let description = format!("no heartbeat for more than {}", drover_types::DurationSpec(config.ttl));
            tracing::warn!(node = %node_id, "node missed its heartbeat deadline; marking it down");
            let command = Command::UpdateNodeStatus {
                node_id: node_id.clone(),
                status: NodeStatus::Down,
                description,
                evals,
                now: wall_now,
            };
            if let Err(error) = server.propose(command).await {
                tracing::warn!(%error, node = %node_id, "could not mark node down");
            }
        }
    }
}
