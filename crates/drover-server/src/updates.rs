//! Heartbeats and task-state updates from agents.
//!
//! Heartbeats are not written to Raft: every server records the heartbeats
//! of its own sessions in a [`HeartbeatTable`] and followers forward what
//! they heard to the leader every second; the leader's tracker decides
//! when a node is down. Task-state updates are batched for a few
//! milliseconds into one `UpdateAllocsFromClient` proposal.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use drover_state::{ClientAllocUpdate, Command};
use drover_types::{AllocId, EvalTrigger, Evaluation, NodeId, Timestamp};

use crate::ids::new_eval_id;
use crate::network::base_url;
use crate::server::Server;

/// The internal endpoint followers forward heartbeats to.
pub const HEARTBEATS_PATH: &str = "/v1/internal/heartbeats";

/// How long updates are collected into one proposal.
const BATCH_WINDOW: Duration = Duration::from_millis(15);
/// Most updates in one proposal.
const MAX_BATCH: usize = 2000;

/// When each node was last heard from.
#[derive(Default)]
pub(crate) struct HeartbeatTable {
    seen: Mutex<HashMap<NodeId, (Instant, Timestamp)>>,
    unforwarded: Mutex<Vec<NodeId>>,
}

impl HeartbeatTable {
    pub(crate) fn record<'a>(&self, node_ids: impl IntoIterator<Item = &'a NodeId>, now: Instant) {
        let wall = Timestamp::now();
        let Ok(mut seen) = self.seen.lock() else { return };
        let Ok(mut unforwarded) = self.unforwarded.lock() else { return };
        for node_id in node_ids {
            seen.insert(node_id.clone(), (now, wall));
            unforwarded.push(node_id.clone());
        }
    }

    pub(crate) fn last_seen(&self, node_id: &NodeId) -> Option<Instant> {
        self.seen.lock().ok()?.get(node_id).map(|(instant, _)| *instant)
    }

    pub(crate) fn last_seen_wall(&self, node_id: &NodeId) -> Option<Timestamp> {
        self.seen.lock().ok()?.get(node_id).map(|(_, wall)| *wall)
    }

    fn take_unforwarded(&self) -> Vec<NodeId> {
        let Ok(mut unforwarded) = self.unforwarded.lock() else { return Vec::new() };
        let mut node_ids = std::mem::take(&mut *unforwarded);
        node_ids.sort();
        node_ids.dedup();
        node_ids
    }
}

/// The queue of task-state updates waiting for the batcher.
pub(crate) struct ClientUpdateBatcher {
    sender: mpsc::Sender<Vec<ClientAllocUpdate>>,
    receiver: Mutex<Option<mpsc::Receiver<Vec<ClientAllocUpdate>>>>,
}

impl Default for ClientUpdateBatcher {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(4096);
        ClientUpdateBatcher { sender, receiver: Mutex::new(Some(receiver)) }
    }
}

impl ClientUpdateBatcher {
    pub(crate) async fn push(&self, updates: Vec<ClientAllocUpdate>) {
        if self.sender.send(updates).await.is_err() {
            tracing::warn!("task-state update dropped: the server is shutting down");
        }
    }
}

/// Collects task-state updates and proposes them in batches, retrying until
/// they are committed (the newest update per allocation wins).
pub(crate) fn spawn_client_update_batcher(server: Server) {
    let Some(mut receiver) = server.inner.client_updates.receiver.lock().ok().and_then(|mut slot| slot.take()) else {
        return;
    };
    tokio::spawn(async move {
        let shutdown = server.shutdown_token().clone();
        let mut pending: BTreeMap<AllocId, ClientAllocUpdate> = BTreeMap::new();
        loop {
            if pending.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = receiver.recv() => match received {
                        Some(updates) => merge(&mut pending, updates),
                        None => return,
                    },
                }
            }
            let window_end = tokio::time::Instant::now() + BATCH_WINDOW;
            while pending.len() < MAX_BATCH {
                match tokio::time::timeout_at(window_end, receiver.recv()).await {
                    Ok(Some(updates)) => merge(&mut pending, updates),
                    Ok(None) | Err(_) => break,
                }
            }
            let updates: Vec<ClientAllocUpdate> = pending.values().cloned().collect();
            let now = Timestamp::now();
            let evals = failure_evals(&server, &updates, now);
            match server.propose(Command::UpdateAllocsFromClient { updates, evals, now }).await {
                Ok(_) => pending.clear(),
                Err(error) => {
                    tracing::warn!(%error, num_updates = pending.len(), "task-state updates not committed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    });
}

fn merge(pending: &mut BTreeMap<AllocId, ClientAllocUpdate>, updates: Vec<ClientAllocUpdate>) {
    for update in updates {
        pending.insert(update.alloc_id.clone(), update);
    }
}

/// One `alloc-failure` evaluation per job with a newly failed allocation.
fn failure_evals(server: &Server, updates: &[ClientAllocUpdate], now: Timestamp) -> Vec<Evaluation> {
    let state = server.state();
    let mut evals: Vec<Evaluation> = Vec::new();
    for update in updates {
        if !state.is_new_failure(update) {
            continue;
        }
        let Some(alloc) = state.alloc(&update.alloc_id) else { continue };
        if evals.iter().any(|eval| eval.job_id == alloc.job_id) {
            continue;
        }
        let priority = state.job(&alloc.job_id).map_or(50, |job| job.priority);
        evals.push(Evaluation::new(new_eval_id(), alloc.job_id.clone(), priority, EvalTrigger::AllocFailure, now));
    }
    evals
}

/// On followers, forwards the heartbeats heard to the leader every second.
pub(crate) fn spawn_heartbeat_forwarder(server: Server) {
    tokio::spawn(async move {
        let shutdown = server.shutdown_token().clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let node_ids = server.inner.heartbeats.take_unforwarded();
            let status = server.status();
            if status.is_leader || node_ids.is_empty() {
                continue;
            }
            let Some(leader_address) = status.leader_address else { continue };
            let url = format!("{}{HEARTBEATS_PATH}", base_url(&leader_address));
            let sent =
                server.inner.network.client().post(&url).timeout(Duration::from_secs(2)).json(&node_ids).send().await;
            if let Err(error) = sent {
                tracing::debug!(%error, "heartbeats not forwarded to the leader");
            }
        }
    });
}
