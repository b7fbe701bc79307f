//! The heartbeat tracker: marks nodes down when they fall silent, and back
//! up when they speak again.
//!
//! ```text
//!            silent > TTL, an allocation has disconnect.lost_after
//!  ready ──────────────────────────────────────────────▶ disconnected ── lost_after passed ──▶ down
//!    │ silent > TTL                                           │                                 │
//!    └──────────────────────────────────────────────────────▶ down                             │
//!    ▲                      heartbeat heard again (or the agent registers again)                │
//!    └───────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A node's deadline is its last heartbeat plus the TTL, but never earlier
//! than the moment this server became leader plus the TTL and the grace
//! period: after a leader change every node gets a fresh grace period, so a
//! control-plane hiccup never marks the fleet down.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::{EvalTrigger, Evaluation, NodeId, NodeStatus, Timestamp};

use crate::ids::new_eval_id;
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken, leadership_started: Instant) {
    let config = server.config().heartbeat;
    // Every 2 s: with the default 8 s TTL a dead node is still marked down
    // within 10 s, and scanning 10,000 nodes stays cheap.
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    // When this leader last changed each node's status for silence.
    let mut marked_silent: HashMap<NodeId, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let wall_now = Timestamp::now();
        let earliest_deadline = leadership_started + config.ttl + config.leader_grace;
        let state = server.state();
        let mut commands = Vec::new();

        // Ready nodes that fell silent. Nodes heard from are found among the
        // heartbeat cells without touching the node map; a node never heard
        // since this server became leader needs a scan of the nodes, which
        // happens only while such nodes exist.
        if now > earliest_deadline {
            let mut silent: Vec<NodeId> = server.inner.heartbeats.silent_since(now - config.ttl);
            if server.inner.heartbeats.num_cells() < state.num_nodes() {
                silent.extend(
                    state
                        .nodes()
                        .filter(|node| server.inner.heartbeats.last_seen(&node.id).is_none())
                        .map(|node| node.id.clone()),
                );
            }
            for node_id in silent {
                // A cell for every node seen here, so that the scan of the
                // node map above stops once every node has been accounted for.
                server.inner.heartbeats.cell(&node_id);
                let Some(node) = state.node(&node_id) else { continue };
                if !matches!(node.status, NodeStatus::Ready | NodeStatus::Initializing) {
                    continue;
                }
                let (status, description) = match max_lost_after(&state, &node.id) {
                    Some(lost_after) => (
                        NodeStatus::Disconnected,
                        format!(
                            "no heartbeat for more than {}; allocations wait up to {} (disconnect.lost_after)",
                            drover_types::DurationSpec(config.ttl),
                            drover_types::DurationSpec(lost_after)
                        ),
                    ),
                    None => (
                        NodeStatus::Down,
                        format!("no heartbeat for more than {}", drover_types::DurationSpec(config.ttl)),
                    ),
                };
                tracing::warn!(node = %node.name, %status, "node missed its heartbeat deadline");
                marked_silent.insert(node.id.clone(), now);
                commands.push(status_change(&state, &node.id, status, description, wall_now));
            }
        }

        // Nodes that are not ready: heard again, or disconnected too long.
        for node in state.unready_nodes() {
            if !matches!(node.status, NodeStatus::Disconnected | NodeStatus::Down) {
                continue;
            }
            let last_seen = server.inner.heartbeats.last_seen(&node.id);
            let baseline = marked_silent.get(&node.id).copied().unwrap_or(leadership_started);
            if last_seen.is_some_and(|last| last > baseline) {
                tracing::info!(node = %node.name, "node heartbeats again");
                marked_silent.remove(&node.id);
                let mut evals = server.evals_for_node_join(&state, &node.id, wall_now);
                for eval in &mut evals {
                    eval.triggered_by = EvalTrigger::Reconnect;
                }
                commands.push(Command::UpdateNodeStatus {
                    node_id: node.id.clone(),
                    status: NodeStatus::Ready,
                    description: "heartbeats resumed".to_owned(),
                    evals,
                    now: wall_now,
                });
                continue;
            }
            if node.status == NodeStatus::Disconnected {
                let lost_after = max_lost_after(&state, &node.id).unwrap_or_default();
                if wall_now.since(node.status_updated_at) >= lost_after {
                    let description = format!("disconnected for more than {}", drover_types::DurationSpec(lost_after));
                    tracing::warn!(node = %node.name, "disconnected node is now down");
                    commands.push(status_change(&state, &node.id, NodeStatus::Down, description, wall_now));
                }
            }
        }
        for command in commands {
            if let Err(error) = server.propose(command).await {
                tracing::warn!(%error, "could not change a node's status");
            }
        }
    }
}

/// The longest `disconnect.lost_after` among the groups of the node's live
/// allocations; `None` when none of them asks to wait.
fn max_lost_after(state: &State, node_id: &NodeId) -> Option<Duration> {
    state
        .live_allocs_on_node(node_id)
        .filter_map(|alloc| {
            let job = state.job_version(&alloc.job_id, alloc.job_version).or_else(|| state.job(&alloc.job_id))?;
            job.group(&alloc.group)?.disconnect?.lost_after.map(|lost_after| lost_after.get())
        })
        .max()
}

/// A status change with one evaluation per job that has live allocations
/// on the node.
fn status_change(state: &State, node_id: &NodeId, status: NodeStatus, description: String, now: Timestamp) -> Command {
    let mut evals: Vec<Evaluation> = Vec::new();
    for alloc in state.live_allocs_on_node(node_id) {
        if evals.iter().any(|eval| eval.job_id == alloc.job_id) {
            continue;
        }
        let priority = state.job(&alloc.job_id).map_or(50, |job| job.priority);
        let mut eval = Evaluation::new(new_eval_id(), alloc.job_id.clone(), priority, EvalTrigger::NodeUpdate, now);
        eval.node_id = Some(node_id.clone());
        evals.push(eval);
    }
    Command::UpdateNodeStatus { node_id: node_id.clone(), status, description, evals, now }
}
