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
use drover_types::{DurationSpec, EvalTrigger, NodeId, NodeStatus, Timestamp};

use super::{Wakes, on_change_or_tick};
use crate::config::HeartbeatConfig;
use crate::server::Server;
use crate::updates::HeartbeatTable;

pub(super) async fn run(server: Server, token: CancellationToken, leadership_started: Instant) {
    let mut tracker = Tracker::new(server.config().heartbeat, leadership_started);
    // Every 2 s: with the default 8 s TTL a dead node is still marked down
    // within 10 s, and scanning 10,000 nodes stays cheap.
    on_change_or_tick(token, Wakes::every(Duration::from_secs(2)), async move |_| {
        let wall_now = Timestamp::now();
        let state = server.state();
        let changes = tracker.step(&state, &server.inner.heartbeats, Instant::now(), wall_now);
        for change in changes {
            let command = command_for(&server, &state, change, wall_now);
            if let Err(error) = server.propose(command).await {
                tracing::warn!(%error, "could not change a node's status");
            }
        }
    })
    .await;
}

/// The Raft command of a status change, with its evaluations: a node back
/// gets those of a joining node (its system jobs, its jobs) marked as a
/// reconnect; a node gone, one per job with live allocations on it.
fn command_for(server: &Server, state: &State, change: StatusChange, now: Timestamp) -> Command {
    let StatusChange { node_id, status, description } = change;
    if status != NodeStatus::Ready {
        return status_change(state, &node_id, status, description, now);
    }
    let mut evals = server.evals_for_node_join(state, &node_id, now);
    for eval in &mut evals {
        eval.triggered_by = EvalTrigger::Reconnect;
    }
    let seen_index = state.node(&node_id).map(|node| node.modify_index);
    Command::UpdateNodeStatus { node_id, status, description, evals, now, seen_index }
}

/// A node's new status, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StatusChange {
    /// The node.
    pub(super) node_id: NodeId,
    /// `Ready` (heard again), `Disconnected` or `Down`.
    pub(super) status: NodeStatus,
    /// For `drover node status`.
    pub(super) description: String,
}

/// The tracker's settings and its memory between passes.
pub(super) struct Tracker {
    config: HeartbeatConfig,
    /// When this server became leader: every node's grace period starts here.
    leadership_started: Instant,
    /// When this leader last changed each node's status for silence.
    marked_silent: HashMap<NodeId, Instant>,
}

impl Tracker {
    pub(super) fn new(config: HeartbeatConfig, leadership_started: Instant) -> Tracker {
        Tracker { config, leadership_started, marked_silent: HashMap::new() }
    }

    /// One pass: the nodes whose status changes, from what `heartbeats`
    /// heard. Two clocks: heartbeats are timed by the monotonic `now`, a
    /// node's last status change (in the state) by the wall clock's
    /// `wall_now`.
    pub(super) fn step(
        &mut self,
        state: &State,
        heartbeats: &HeartbeatTable,
        now: Instant,
        wall_now: Timestamp,
    ) -> Vec<StatusChange> {
        let ttl = self.config.ttl;
        let earliest_deadline = self.leadership_started + ttl + self.config.leader_grace;
        let mut changes = Vec::new();

        // Ready nodes that fell silent. Nodes heard from are found among the
        // heartbeat cells without touching the node map; a node never heard
        // since this server became leader needs a scan of the nodes, which
        // happens only while such nodes exist.
        if now > earliest_deadline {
            let mut silent: Vec<NodeId> = heartbeats.silent_since(now - ttl);
            if heartbeats.num_cells() < state.num_nodes() {
                silent.extend(
                    state.nodes().filter(|node| heartbeats.last_seen(&node.id).is_none()).map(|node| node.id.clone()),
                );
            }
            for node_id in silent {
                // A cell for every node seen here, so that the scan of the
                // node map above stops once every node has been accounted for.
                heartbeats.cell(&node_id);
                let Some(node) = state.node(&node_id) else { continue };
                if !matches!(node.status, NodeStatus::Ready | NodeStatus::Initializing) {
                    continue;
                }
                // Registered (or back) within the TTL: heard from then,
                // whatever the table says yet (the agent's first heartbeat
                // follows its registration, a follower forwards it later).
                if wall_now.since(node.status_updated_at) < ttl {
                    continue;
                }
                let (status, description) = match max_lost_after(state, &node.id) {
                    Some(lost_after) => (
                        NodeStatus::Disconnected,
                        format!(
                            "no heartbeat for more than {}; allocations wait up to {} (disconnect.lost_after)",
                            DurationSpec(ttl),
                            DurationSpec(lost_after)
                        ),
                    ),
                    None => (NodeStatus::Down, format!("no heartbeat for more than {}", DurationSpec(ttl))),
                };
                tracing::warn!(node = %node.name, %status, "node missed its heartbeat deadline");
                self.marked_silent.insert(node.id.clone(), now);
                changes.push(StatusChange { node_id: node.id.clone(), status, description });
            }
        }

        // Nodes that are not ready: heard again, or disconnected too long.
        for node in state.unready_nodes() {
            if !matches!(node.status, NodeStatus::Disconnected | NodeStatus::Down) {
                continue;
            }
            let last_seen = heartbeats.last_seen(&node.id);
            let baseline = self.marked_silent.get(&node.id).copied().unwrap_or(self.leadership_started);
            if last_seen.is_some_and(|last| last > baseline) {
                tracing::info!(node = %node.name, "node heartbeats again");
                self.marked_silent.remove(&node.id);
                changes.push(StatusChange {
                    node_id: node.id.clone(),
                    status: NodeStatus::Ready,
                    description: "heartbeats resumed".to_owned(),
                });
                continue;
            }
            if node.status == NodeStatus::Disconnected {
                let lost_after = max_lost_after(state, &node.id).unwrap_or_default();
                if wall_now.since(node.status_updated_at) >= lost_after {
                    let description = format!("disconnected for more than {}", DurationSpec(lost_after));
                    tracing::warn!(node = %node.name, "disconnected node is now down");
                    changes.push(StatusChange { node_id: node.id.clone(), status: NodeStatus::Down, description });
                }
            }
        }
        changes
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
    let evals = crate::inventory::evals_for_jobs_on_nodes(state, std::slice::from_ref(node_id), "", now);
    // Decided on this view of the node: a registration committed before
    // this command (the agent back) wins.
    let seen_index = state.node(node_id).map(|node| node.modify_index);
    Command::UpdateNodeStatus { node_id: node_id.clone(), status, description, evals, now, seen_index }
}

#[cfg(test)]
mod tests {
    use drover_types::{AllocClientStatus, DisconnectStrategy, JobType};

    use super::*;
    use crate::leader::test_support::{Cluster, alloc, at, group, job};

    /// An 8 s TTL and 5 s of grace after a leader change.
    fn config() -> HeartbeatConfig {
        HeartbeatConfig {
            interval: Duration::from_secs(4),
            ttl: Duration::from_secs(8),
            leader_grace: Duration::from_secs(5),
        }
    }

    /// The tracker of a leader that started at `start`, with a heartbeat
    /// table that has heard nothing yet.
    fn tracker(start: Instant) -> (Tracker, HeartbeatTable) {
        (Tracker::new(config(), start), HeartbeatTable::default())
    }

    fn change(node: &str, status: NodeStatus, description: &str) -> StatusChange {
        StatusChange { node_id: NodeId::new(node), status, description: description.to_owned() }
    }

    #[test]
    fn a_silent_node_goes_down_after_the_ttl_but_not_within_the_leaders_grace() {
        let start = Instant::now();
        let secs = |seconds: u64| start + Duration::from_secs(seconds);
        let (mut tracker, heartbeats) = tracker(start);
        let mut cluster = Cluster::new();
        let silent = cluster.node("silent");
        let talking = cluster.node("talking");
        cluster.node("never-heard");
        heartbeats.record([&silent], secs(1));
        heartbeats.record([&talking], secs(10));

        // Silent past the TTL at 9 s, but every node has until 13 s.
        assert_eq!(tracker.step(&cluster.state, &heartbeats, secs(12), at(12)), []);
        let mut changes = tracker.step(&cluster.state, &heartbeats, secs(14), at(14));
        changes.sort_by(|left, right| left.node_id.cmp(&right.node_id));
        let down = |node| change(node, NodeStatus::Down, "no heartbeat for more than 8s");
        assert_eq!(changes, [down("never-heard"), down("silent")]);

        // Marked down: nothing more to say until it speaks.
        cluster.set_status(&silent, NodeStatus::Down, at(14));
        cluster.set_status(&NodeId::new("never-heard"), NodeStatus::Down, at(14));
        heartbeats.record([&talking], secs(15));
        assert_eq!(tracker.step(&cluster.state, &heartbeats, secs(16), at(16)), []);
    }

    #[test]
    fn a_node_that_registered_again_is_not_marked_down_before_its_first_heartbeat() {
        let start = Instant::now();
        let secs = |seconds: u64| start + Duration::from_secs(seconds);
        let (mut tracker, heartbeats) = tracker(start);
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        heartbeats.record([&node], secs(1));
        cluster.set_status(&node, NodeStatus::Down, at(20));
        // Rebooted: its agent registers again at 30 s (ready), and its
        // first heartbeat is not in the table yet.
        let registration = drover_types::fixtures::registration("n1");
        cluster.apply(&Command::RegisterNode { registration, evals: Vec::new(), now: at(30) });
        assert_eq!(cluster.state.node(&node).unwrap().status, NodeStatus::Ready);
        assert_eq!(tracker.step(&cluster.state, &heartbeats, secs(31), at(31)), []);
        // Silent for a TTL after registering: down.
        let changes = tracker.step(&cluster.state, &heartbeats, secs(39), at(39));
        assert_eq!(changes, [change("n1", NodeStatus::Down, "no heartbeat for more than 8s")]);
    }

    #[test]
    fn a_node_heard_after_it_was_marked_down_is_ready_again() {
        let start = Instant::now();
        let secs = |seconds: u64| start + Duration::from_secs(seconds);
        let (mut tracker, heartbeats) = tracker(start);
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        heartbeats.record([&node], secs(1));
        assert_eq!(tracker.step(&cluster.state, &heartbeats, secs(20), at(20)).len(), 1);
        cluster.set_status(&node, NodeStatus::Down, at(20));

        // A heartbeat that left before the node was marked down is old news.
        heartbeats.record([&node], secs(19));
        assert_eq!(tracker.step(&cluster.state, &heartbeats, secs(21), at(21)), []);
        heartbeats.record([&node], secs(22));
        let changes = tracker.step(&cluster.state, &heartbeats, secs(23), at(23));
        assert_eq!(changes, [change("n1", NodeStatus::Ready, "heartbeats resumed")]);
    }

    #[test]
    fn a_node_down_before_this_leader_is_ready_once_heard_after_it_took_over() {
        let start = Instant::now();
        let (mut tracker, heartbeats) = tracker(start);
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        cluster.set_status(&node, NodeStatus::Down, at(0));
        assert_eq!(tracker.step(&cluster.state, &heartbeats, start + Duration::from_secs(1), at(1)), []);
        heartbeats.record([&node], start + Duration::from_secs(2));
        let changes = tracker.step(&cluster.state, &heartbeats, start + Duration::from_secs(3), at(3));
        assert_eq!(changes, [change("n1", NodeStatus::Ready, "heartbeats resumed")]);
    }

    #[test]
    fn with_lost_after_a_silent_node_waits_disconnected_then_goes_down() {
        let start = Instant::now();
        let (mut tracker, heartbeats) = tracker(start);
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        let mut waiting = group("web", 1, 1);
        waiting.disconnect =
            Some(DisconnectStrategy { lost_after: Some(DurationSpec::from_secs(60)), ..DisconnectStrategy::default() });
        cluster.register(job("web", JobType::Service, vec![waiting]));
        cluster.place(vec![alloc("web-1", "web", "web", &node)], None);
        heartbeats.record([&node], start + Duration::from_secs(1));

        let changes = tracker.step(&cluster.state, &heartbeats, start + Duration::from_secs(14), at(14));
        let waits = "no heartbeat for more than 8s; allocations wait up to 1m (disconnect.lost_after)";
        assert_eq!(changes, [change("n1", NodeStatus::Disconnected, waits)]);
        cluster.set_status(&node, NodeStatus::Disconnected, at(14));

        let later = start + Duration::from_secs(70);
        assert_eq!(tracker.step(&cluster.state, &heartbeats, later, at(73)), [], "59 s of 60");
        let changes = tracker.step(&cluster.state, &heartbeats, later, at(74));
        assert_eq!(changes, [change("n1", NodeStatus::Down, "disconnected for more than 1m")]);
    }

    #[test]
    fn a_status_change_evaluates_each_job_with_live_allocations_once() {
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        cluster.register(job("web", JobType::Service, vec![group("web", 2, 1)]));
        cluster.register(job("batch", JobType::Batch, vec![group("run", 1, 1)]));
        cluster.place(vec![alloc("web-1", "web", "web", &node), alloc("web-2", "web", "web", &node)], None);
        cluster.place(vec![alloc("run-1", "batch", "run", &node)], None);
        cluster.report("run-1", AllocClientStatus::Complete, None);

        let command = status_change(&cluster.state, &node, NodeStatus::Down, "silent".to_owned(), at(5));
        let Command::UpdateNodeStatus { status, evals, .. } = command else { panic!("expected a status change") };
        assert_eq!(status, NodeStatus::Down);
        let jobs: Vec<(&str, EvalTrigger, Option<&NodeId>)> =
            evals.iter().map(|eval| (eval.job_id.as_str(), eval.triggered_by, eval.node_id.as_ref())).collect();
        assert_eq!(jobs, [("web", EvalTrigger::NodeUpdate, Some(&node))], "the finished batch job is left alone");
    }
}
