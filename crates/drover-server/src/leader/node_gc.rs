//! The node GC: forgets nodes that have been down for longer than
//! `--node-gc-after` (7 days unless told), and twins left behind by a state
//! written before names were unique (two ids, one name: the one that does
//! not hold the name goes once it is not up), each with an audit event
//! (`node.gc`). Protected nodes are never forgotten automatically.
//!
//! ```text
//!  down ── status unchanged for --node-gc-after ──▶ purged (PurgeNodes), audited
//!  twin (not up) of a node holding its name ──────▶ purged at once, audited
//! ```

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::acl::{AuditEvent, AuditOutcome};
use drover_types::{DurationSpec, NodeId, NodeStatus, Timestamp};

use super::{Wakes, on_change_or_tick};
use crate::server::Server;

/// The most nodes one pass forgets (the next pass takes the rest).
const MAX_PER_PASS: usize = 1000;

pub(super) async fn run(server: Server, token: CancellationToken) {
    let gc_after = server.config().node_gc_after;
    // A quarter of the limit, within [1 s, 1 min]: a node is forgotten at
    // most a minute late, and a tiny limit (tests) is honoured closely.
    let period = (gc_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    on_change_or_tick(token, Wakes::every(period), async move |_| {
        let state = server.state();
        let now = Timestamp::now();
        let forgotten = nodes_to_forget(&state, now, gc_after);
        if forgotten.is_empty() {
            return;
        }
        let node_ids: Vec<NodeId> = forgotten.iter().map(|node| node.node_id.clone()).collect();
        let evals = crate::inventory::evals_for_node_loss(&state, &node_ids, now);
        drop(state);
        let proposed =
            server.propose(Command::PurgeNodes { node_ids, evals }).await.and_then(|response| response.into_result());
        if let Err(error) = proposed {
            // A node came back between the decision and the commit: the
            // next pass decides again.
            tracing::warn!(%error, num_nodes = forgotten.len(), "could not purge nodes");
            return;
        }
        for node in forgotten {
            tracing::info!(node = %node.name, node_id = %node.node_id, why = %node.why, "node purged by the node GC");
            server.audit(AuditEvent {
                at: now,
                accessor: None,
                name: format!("server:{}", server.id()),
                action: "node.gc".to_owned(),
                target: node.name,
                details: format!("node id {}: {}", node.node_id, node.why),
                outcome: AuditOutcome::Ok,
                source: String::new(),
                request_id: 0,
            });
        }
    })
    .await;
}

/// A node the GC forgets, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Forgotten {
    /// The node.
    pub(super) node_id: NodeId,
    /// Its name, for the audit event.
    pub(super) name: String,
    /// Why, for the audit event.
    pub(super) why: String,
}

/// The nodes to forget at `now`: down (and not protected) since at least
/// `gc_after` before, and twins that do not hold their name and are not
/// up (nor protected). At most [`MAX_PER_PASS`], in id order.
pub(super) fn nodes_to_forget(state: &State, now: Timestamp, gc_after: Duration) -> Vec<Forgotten> {
    let down_too_long = state
        .unready_nodes()
        .filter(|node| {
            node.status == NodeStatus::Down && node.protected.is_none() && now.since(node.status_updated_at) >= gc_after
        })
        .map(|node| Forgotten {
            node_id: node.id.clone(),
            name: node.name.clone(),
            why: format!("down for more than {} (--node-gc-after)", DurationSpec(gc_after)),
        });
    let twins =
        state.shadowed_nodes().into_iter().filter(|node| !node.is_up() && node.protected.is_none()).map(|node| {
            Forgotten {
                node_id: node.id.clone(),
                name: node.name.clone(),
                why: format!(
                    "a {} twin of node {} (node id {}), left from before names were unique",
                    node.status,
                    node.name,
                    state.node_by_name(&node.name).map_or_else(String::new, |holder| holder.id.to_string())
                ),
            }
        });
    let mut forgotten: Vec<Forgotten> = down_too_long.chain(twins).collect();
    forgotten.sort_by(|left, right| left.node_id.cmp(&right.node_id));
    forgotten.dedup_by(|left, right| left.node_id == right.node_id);
    forgotten.truncate(MAX_PER_PASS);
    forgotten
}

#[cfg(test)]
mod tests {
    use drover_types::{Node, NodeId, Protection};

    use super::*;
    use crate::leader::test_support::{Cluster, at};

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    fn ids(forgotten: &[Forgotten]) -> Vec<&str> {
        forgotten.iter().map(|node| node.node_id.as_str()).collect()
    }

    #[test]
    fn a_node_down_for_longer_than_the_limit_is_forgotten_and_one_that_came_back_is_not() {
        let mut cluster = Cluster::new();
        let gone = cluster.node("gone");
        let back = cluster.node("back");
        let ready = cluster.node("ready");
        cluster.set_status(&gone, NodeStatus::Down, at(100));
        cluster.set_status(&back, NodeStatus::Down, at(100));
        cluster.set_status(&back, NodeStatus::Ready, at(200));
        let week = WEEK.as_secs() as i64;

        assert_eq!(nodes_to_forget(&cluster.state, at(100 + week - 1), WEEK), [], "not quite a week");
        let forgotten = nodes_to_forget(&cluster.state, at(100 + week), WEEK);
        assert_eq!(
            forgotten,
            [Forgotten {
                node_id: gone.clone(),
                name: "gone".to_owned(),
                why: "down for more than 7days (--node-gc-after)".to_owned(),
            }]
        );
        // What the leader proposes is accepted and forgets exactly that node.
        cluster.apply(&Command::PurgeNodes { node_ids: vec![gone.clone()], evals: Vec::new() });
        assert!(cluster.state.node(&gone).is_none());
        assert!(cluster.state.node(&back).is_some() && cluster.state.node(&ready).is_some());
        assert_eq!(nodes_to_forget(&cluster.state, at(100 + 2 * week), WEEK), []);
    }

    #[test]
    fn a_disconnected_or_protected_node_is_never_forgotten() {
        let mut cluster = Cluster::new();
        let waiting = cluster.node("waiting");
        let kept = cluster.node("kept");
        cluster.set_status(&waiting, NodeStatus::Disconnected, at(0));
        let protection = Protection { reason: "release volume".to_owned(), by: "alice".to_owned(), at: at(0) };
        cluster.apply(&Command::SetNodeProtection {
            node_id: kept.clone(),
            protection: Some(protection),
            by: "alice".to_owned(),
            reason: String::new(),
            now: at(0),
        });
        cluster.set_status(&kept, NodeStatus::Down, at(0));
        assert_eq!(nodes_to_forget(&cluster.state, at(10_000_000), Duration::from_secs(1)), []);
    }

    /// `state` with `twins` added as a server written before names were
    /// unique would have stored them (through a snapshot: registration
    /// never makes twins now).
    fn with_twins(state: &State, twins: Vec<Node>) -> State {
        let bytes = drover_state::snapshot::encode_state(state).expect("encode the state");
        let (header, payload) = bytes.split_at(12);
        let mut snapshot: drover_state::snapshot::SnapshotV1 =
            drover_state::codec::decode(payload).expect("decode the snapshot");
        snapshot.nodes.extend(twins);
        let mut bytes = header.to_vec();
        bytes.extend(drover_state::codec::encode(&snapshot).expect("encode the snapshot"));
        drover_state::snapshot::decode_state(&bytes).expect("decode the state")
    }

    #[test]
    fn a_twin_left_from_an_older_state_is_forgotten_at_once_unless_it_is_up_or_protected() {
        let mut cluster = Cluster::new();
        let holder = cluster.node("batch01");
        let other = cluster.node("batch02");
        let twin_of = |node_id: &NodeId, id: &str, status: NodeStatus| {
            let mut twin = Node::clone(cluster.state.node(node_id).expect("the holder"));
            twin.id = NodeId::new(id);
            twin.status = status;
            twin.create_index = 0;
            twin
        };
        let mut protected = twin_of(&other, "batch02-protected", NodeStatus::Down);
        protected.protected = Some(Protection { reason: "evidence".to_owned(), by: "bob".to_owned(), at: at(0) });
        let twins = vec![
            twin_of(&holder, "batch01-dead", NodeStatus::Down),
            twin_of(&holder, "batch01-also-up", NodeStatus::Ready),
            protected,
        ];
        let state = with_twins(&cluster.state, twins);
        assert_eq!(state.nodes_named("batch01").count(), 3);

        let forgotten = nodes_to_forget(&state, at(1), WEEK);
        assert_eq!(ids(&forgotten), ["batch01-dead"]);
        assert_eq!(
            forgotten[0].why,
            "a down twin of node batch01 (node id batch01), left from before names were unique"
        );
    }

    #[test]
    fn one_pass_forgets_a_bounded_number_of_nodes() {
        let mut cluster = Cluster::new();
        for number in 0..MAX_PER_PASS + 5 {
            let node = cluster.node(&format!("n{number:05}"));
            cluster.set_status(&node, NodeStatus::Down, at(0));
        }
        let forgotten = nodes_to_forget(&cluster.state, at(10), Duration::from_secs(10));
        assert_eq!(forgotten.len(), MAX_PER_PASS);
        assert_eq!(forgotten[0].node_id.as_str(), "n00000");
    }
}
