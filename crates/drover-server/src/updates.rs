//! Heartbeats and task-state updates from agents.
//!
//! Heartbeats are not written to Raft: every server records the heartbeats
//! of its own sessions in a [`HeartbeatTable`] and followers forward what
//! they heard to the leader every second; the leader's tracker decides
//! when a node is down. Task-state updates are proposed at once; those that
//! arrive while a proposal is being committed go together into the next
//! `UpdateAllocsFromClient` (group commit: no waiting when the fleet is
//! quiet, large batches when it is busy).
//!
//! Registrations are group-committed the same way: the `Hello`s that arrive
//! while one `RegisterNodes` entry commits go into the next, so a fleet
//! reconnecting at once after a server restart costs a few dozen Raft
//! entries, not one per agent. Each session still waits for, and gets, the
//! outcome of its own registration.

use drover_proto::paths;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use drover_state::Command;
use drover_types::{AllocClientStatus, AllocId, CodedError, ErrorCode, EvalTrigger, Evaluation, NodeId, Timestamp};
use drover_types::{ClientAllocUpdate, NodeRegistration};

use crate::Result;
use crate::ids::new_eval_id;
use crate::server::Server;

/// Most updates in one proposal.
const MAX_BATCH: usize = 2000;

/// Most registrations in one proposal (a real agent's registration with
/// its facts is a few KB: this keeps an entry to a few MB).
const MAX_REGISTRATION_BATCH: usize = 1000;

/// How many registrations may wait for the registration batcher.
const REGISTRATION_QUEUE: usize = 16_384;

/// When one node was last heard from: milliseconds since the table's
/// epoch (0: never). Sessions hold their node's cell, so recording a
/// heartbeat is one atomic store, not a map lookup.
#[derive(Debug, Default)]
pub struct HeartbeatCell {
    last_millis: AtomicU64,
}

/// FNV-1a: node ids are short strings looked up for every node on every
/// tracker tick, where SipHash showed in profiles. Node ids come from
/// registered agents only, so hash flooding is not a concern here.
#[derive(Default)]
struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type CellMap = HashMap<NodeId, Arc<HeartbeatCell>, std::hash::BuildHasherDefault<FnvHasher>>;

/// When each node was last heard from.
pub(crate) struct HeartbeatTable {
    epoch: Instant,
    epoch_wall: Timestamp,
    cells: Mutex<CellMap>,
    /// Followers collect what they heard for the leader; the leader does not.
    forwarding: AtomicBool,
    unforwarded: Mutex<Vec<NodeId>>,
}

impl Default for HeartbeatTable {
    fn default() -> Self {
        HeartbeatTable {
            epoch: Instant::now(),
            epoch_wall: Timestamp::now(),
            cells: Mutex::new(CellMap::default()),
            forwarding: AtomicBool::new(true),
            unforwarded: Mutex::new(Vec::new()),
        }
    }
}

impl HeartbeatTable {
    /// The cell of `node_id`, created on first use.
    pub(crate) fn cell(&self, node_id: &NodeId) -> Arc<HeartbeatCell> {
        let Ok(mut cells) = self.cells.lock() else { return Arc::new(HeartbeatCell::default()) };
        Arc::clone(cells.entry(node_id.clone()).or_default())
    }

    fn millis_since_epoch(&self, now: Instant) -> u64 {
        // Never 0, which means "never heard".
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Records a heartbeat through a session's cell (the hot path).
    pub(crate) fn touch(&self, cell: &HeartbeatCell, node_id: &NodeId, now: Instant) {
        cell.last_millis.store(self.millis_since_epoch(now), Ordering::Relaxed);
        if self.forwarding.load(Ordering::Relaxed)
            && let Ok(mut unforwarded) = self.unforwarded.lock()
        {
            unforwarded.push(node_id.clone());
        }
    }

    /// Records heartbeats by node id (forwarded by a follower, or a new
    /// session).
    pub(crate) fn record<'a>(&self, node_ids: impl IntoIterator<Item = &'a NodeId>, now: Instant) {
        for node_id in node_ids {
            let cell = self.cell(node_id);
            self.touch(&cell, node_id, now);
        }
    }

    /// When `node_id` was last heard from.
    pub(crate) fn last_seen(&self, node_id: &NodeId) -> Option<Instant> {
        let millis = self.cells.lock().ok()?.get(node_id)?.last_millis.load(Ordering::Relaxed);
        (millis > 0).then(|| self.epoch + Duration::from_millis(millis))
    }

    /// Nodes heard from at some point but not since `deadline`: one pass of
    /// atomic loads, no lookups (the tracker runs it for 10,000 nodes).
    pub(crate) fn silent_since(&self, deadline: Instant) -> Vec<NodeId> {
        let Ok(cells) = self.cells.lock() else { return Vec::new() };
        let deadline_millis = self.millis_since_epoch(deadline);
        cells
            .iter()
            .filter(|(_, cell)| {
                let millis = cell.last_millis.load(Ordering::Relaxed);
                millis > 0 && millis < deadline_millis
            })
            .map(|(node_id, _)| node_id.clone())
            .collect()
    }

    /// How many nodes have a cell.
    pub(crate) fn num_cells(&self) -> usize {
        self.cells.lock().map_or(0, |cells| cells.len())
    }

    pub(crate) fn last_seen_wall(&self, node_id: &NodeId) -> Option<Timestamp> {
        let millis = self.cells.lock().ok()?.get(node_id)?.last_millis.load(Ordering::Relaxed);
        (millis > 0).then(|| self.epoch_wall.plus(Duration::from_millis(millis)))
    }

    fn set_forwarding(&self, forwarding: bool) {
        self.forwarding.store(forwarding, Ordering::Relaxed);
        if !forwarding && let Ok(mut unforwarded) = self.unforwarded.lock() {
            unforwarded.clear();
        }
    }

    fn take_unforwarded(&self) -> Vec<NodeId> {
        let Ok(mut unforwarded) = self.unforwarded.lock() else { return Vec::new() };
        let mut node_ids = std::mem::take(&mut *unforwarded);
        node_ids.sort();
        node_ids.dedup();
        node_ids
    }

    /// Puts back heartbeats the leader did not take (no leader known yet,
    /// the leader restarting): dropped, they would count as silence, and
    /// during a rolling restart two dropped in a row marked a live node
    /// down. Deduplicated here so a long election cannot grow the queue
    /// past one entry per node plus what arrived since.
    fn requeue(&self, node_ids: Vec<NodeId>) {
        if !self.forwarding.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut unforwarded) = self.unforwarded.lock() else { return };
        unforwarded.extend(node_ids);
        unforwarded.sort();
        unforwarded.dedup();
    }
}

/// The queue of task-state updates waiting for the batcher, and the queue
/// of registrations waiting for theirs (kept here so that both group
/// commits of what agents write live in one place).
pub(crate) struct ClientUpdateBatcher {
    sender: mpsc::Sender<Vec<ClientAllocUpdate>>,
    receiver: Mutex<Option<mpsc::Receiver<Vec<ClientAllocUpdate>>>>,
    registrations: RegistrationQueue,
    /// Cancelled once the batcher has proposed what it held at shutdown;
    /// `Server::shutdown` waits for it before stopping Raft.
    pub(crate) flushed: tokio_util::sync::CancellationToken,
}

impl Default for ClientUpdateBatcher {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(4096);
        ClientUpdateBatcher {
            sender,
            receiver: Mutex::new(Some(receiver)),
            registrations: RegistrationQueue::default(),
            flushed: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// One registration waiting to be proposed, and where its outcome goes
/// (the log index it was applied at, or why it was refused).
struct PendingRegistration {
    registration: NodeRegistration,
    outcome: oneshot::Sender<Result<u64>>,
}

/// Registrations waiting for the registration batcher.
struct RegistrationQueue {
    sender: mpsc::Sender<PendingRegistration>,
    receiver: Mutex<Option<mpsc::Receiver<PendingRegistration>>>,
}

impl Default for RegistrationQueue {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(REGISTRATION_QUEUE);
        RegistrationQueue { sender, receiver: Mutex::new(Some(receiver)) }
    }
}

impl Server {
    /// Registers an agent's node through the registration batcher: waits
    /// until the `RegisterNodes` entry holding it is committed and applied
    /// here, and returns that entry's log index, or why this registration
    /// was refused (it fails the check the state machine applies, or the
    /// entry could not be committed).
    pub(crate) async fn register_node_group_committed(&self, registration: NodeRegistration) -> Result<u64> {
        let (outcome, receiver) = oneshot::channel();
        let pending = PendingRegistration { registration, outcome };
        let queue = &self.inner.client_updates.registrations;
        if queue.sender.send(pending).await.is_err() {
            return Err(shutting_down());
        }
        receiver.await.unwrap_or_else(|_| Err(shutting_down()))
    }
}

fn shutting_down() -> CodedError {
    CodedError::new(ErrorCode::Unavailable, "the server is shutting down: connect to another server")
}

/// Proposes the registrations that wait, together, one entry at a time: what
/// arrives while an entry commits goes into the next. Unlike task-state
/// updates, a registration that cannot be committed is not retried here:
/// its session is refused and the agent retries (with backoff), as it did
/// when each registration was its own entry.
fn spawn_registration_batcher(server: Server) {
    let Some(mut receiver) =
        server.inner.client_updates.registrations.receiver.lock().ok().and_then(|mut slot| slot.take())
    else {
        return;
    };
    tokio::spawn(async move {
        let shutdown = server.shutdown_token().clone();
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                received = receiver.recv() => match received {
                    Some(pending) => pending,
                    None => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_REGISTRATION_BATCH
                && let Ok(pending) = receiver.try_recv()
            {
                batch.push(pending);
            }
            // A session that went away while waiting needs no registration.
            batch.retain(|pending| !pending.outcome.is_closed());
            if batch.is_empty() {
                continue;
            }
            register_batch(&server, batch).await;
        }
    });
}

/// Proposes one `RegisterNodes` entry and tells each waiting session its
/// own outcome: a registration the state machine would refuse is answered
/// with the same check's error and left out; the others share the entry's
/// fate, except those the state machine refuses after all (another agent
/// with their name registered in between), which get its reason.
async fn register_batch(server: &Server, batch: Vec<PendingRegistration>) {
    let now = Timestamp::now();
    let state = server.state();
    let mut accepted = Vec::with_capacity(batch.len());
    let mut registrations: Vec<(NodeRegistration, Vec<Evaluation>)> = Vec::with_capacity(batch.len());
    for PendingRegistration { registration, outcome } in batch {
        if let Err(error) = registration.validate() {
            let _ = outcome.send(Err(error));
            continue;
        }
        if let Some(refusal) = state.registration_refusal(&registration) {
            let _ = outcome.send(Err(refusal));
            continue;
        }
        let evals = evals_for_registration(server, &state, &registration, now);
        accepted.push((registration.id.clone(), outcome));
        registrations.push((registration, evals));
    }
    drop(state);
    if registrations.is_empty() {
        return;
    }
    let num_registrations = registrations.len();
    let mut refused: HashMap<NodeId, CodedError> = HashMap::new();
    let outcome = match server.propose(Command::RegisterNodes { registrations, now }).await {
        Ok(response) => response.into_result().map(|response| {
            if let drover_state::CommandResponse::NodesRegistered { refused: refusals, .. } = &response {
                refused.extend(refusals.iter().cloned());
            }
            response.index()
        }),
        Err(error) => Err(error),
    };
    match &outcome {
        // On a follower, the session's Welcome and allocations are read
        // from this server's state: wait until it has applied the entry.
        Ok(index) => {
            if let Err(error) = server.wait_for_index(*index, Duration::from_secs(5)).await {
                tracing::debug!(%error, "registrations applied elsewhere first");
            }
            tracing::debug!(num_registrations, index, "registrations committed");
        }
        Err(error) => {
            tracing::warn!(%error, num_registrations, "registrations not committed; their agents will retry");
        }
    }
    for (node_id, sender) in accepted {
        // A session that went away in the meantime needs no answer.
        let _ = sender.send(match refused.remove(&node_id) {
            Some(refusal) => Err(refusal),
            None => outcome.clone(),
        });
    }
}

/// The evaluations of an agent's registration: those of a joining node,
/// and, when it takes the place of a node that had its name, those that
/// declare the old node's allocations lost and replace them.
fn evals_for_registration(
    server: &Server,
    state: &drover_state::State,
    registration: &NodeRegistration,
    now: Timestamp,
) -> Vec<Evaluation> {
    let mut evals = server.evals_for_node_join(state, &registration.id, now);
    let replaced: Vec<NodeId> = state
        .nodes_named(&registration.name)
        .filter(|node| node.id != registration.id)
        .map(|node| node.id.clone())
        .collect();
    for eval in crate::inventory::evals_for_node_loss(state, &replaced, now) {
        if !evals.iter().any(|joining| joining.job_id == eval.job_id) {
            evals.push(eval);
        }
    }
    evals
}

impl ClientUpdateBatcher {
    pub(crate) async fn push(&self, updates: Vec<ClientAllocUpdate>) {
        if self.sender.send(updates).await.is_err() {
            // Only after the batcher stopped, which it does once this server
            // is being shut down on purpose: not a fault to warn about.
            tracing::info!("task-state update not recorded: this server is shutting down");
        }
    }
}

/// Collects task-state updates and proposes them in batches, retrying until
/// they are committed (the newest update per allocation wins). Starts the
/// registration batcher too.
pub(crate) fn spawn_client_update_batcher(server: Server) {
    spawn_registration_batcher(server.clone());
    let Some(mut receiver) = server.inner.client_updates.receiver.lock().ok().and_then(|mut slot| slot.take()) else {
        return;
    };
    tokio::spawn(async move {
        let shutdown = server.shutdown_token().clone();
        let mut pending: BTreeMap<AllocId, ClientAllocUpdate> = BTreeMap::new();
        loop {
            if pending.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    received = receiver.recv() => match received {
                        Some(updates) => merge(&mut pending, updates),
                        None => break,
                    },
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            while pending.len() < MAX_BATCH
                && let Ok(updates) = receiver.try_recv()
            {
                merge(&mut pending, updates);
            }
            let updates: Vec<ClientAllocUpdate> = pending.values().cloned().collect();
            let now = Timestamp::now();
            let evals = failure_evals(&server, &updates, now);
            match server.propose(Command::UpdateAllocsFromClient { updates, evals, now }).await {
                Ok(response) => {
                    pending.clear();
                    // The next batch decides "newly failed" against this
                    // server's state: on a follower, wait until it has
                    // applied this one (else a failure counts twice).
                    if let Err(error) = server.wait_for_index(response.index(), Duration::from_secs(5)).await {
                        tracing::debug!(%error, "task-state updates applied elsewhere first");
                    }
                }
                Err(error) => {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    tracing::warn!(%error, num_updates = pending.len(), "task-state updates not committed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        // An orderly stop: what the agents reported last (a dev agent's
        // stopped tasks) is proposed once more before Raft stops.
        while let Ok(updates) = receiver.try_recv() {
            merge(&mut pending, updates);
        }
        if !pending.is_empty() {
            let updates: Vec<ClientAllocUpdate> = pending.into_values().collect();
            let num_updates = updates.len();
            let evals = failure_evals(&server, &updates, Timestamp::now());
            let command = Command::UpdateAllocsFromClient { updates, evals, now: Timestamp::now() };
            if let Err(error) = server.propose(command).await {
                tracing::info!(%error, num_updates, "task-state updates not committed before the server stopped; agents report them again when they reconnect");
            }
        }
        server.inner.client_updates.flushed.cancel();
    });
}

fn merge(pending: &mut BTreeMap<AllocId, ClientAllocUpdate>, updates: Vec<ClientAllocUpdate>) {
    for update in updates {
        pending.insert(update.alloc_id.clone(), update);
    }
}

/// Evaluations the updates call for, one per job: `alloc-failure` for a
/// newly failed allocation, `reconnect` for an allocation whose agent speaks
/// again after its node was disconnected (the scheduler then keeps either
/// it or its replacement).
fn failure_evals(server: &Server, updates: &[ClientAllocUpdate], now: Timestamp) -> Vec<Evaluation> {
    let state = server.state();
    let mut evals: Vec<Evaluation> = Vec::new();
    for update in updates {
        let Some(alloc) = state.alloc(&update.alloc_id) else { continue };
        let trigger = if state.is_new_failure(update) {
            EvalTrigger::AllocFailure
        } else if alloc.client_status == AllocClientStatus::Unknown
            && update.client_status != AllocClientStatus::Unknown
        {
            EvalTrigger::Reconnect
        } else {
            continue;
        };
        if evals.iter().any(|eval| eval.job_id == alloc.job_id) {
            continue;
        }
        let priority = state.job(&alloc.job_id).map_or(50, |job| job.priority);
        evals.push(Evaluation::new(new_eval_id(), alloc.job_id.clone(), priority, trigger, now));
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
            let status = server.status();
            // The leader's own table is the one that counts.
            server.inner.heartbeats.set_forwarding(!status.is_leader);
            if status.is_leader {
                continue;
            }
            // Kept until a leader is known and has taken them.
            let Some(leader_address) = status.leader_address else { continue };
            let node_ids = server.inner.heartbeats.take_unforwarded();
            if node_ids.is_empty() {
                continue;
            }
            let url = format!("{}{}", server.inner.network.base_url(&leader_address), paths::INTERNAL_HEARTBEATS);
            let sent = server
                .inner
                .network
                .client()
                .post(&url)
                .timeout(Duration::from_secs(2))
                .json(&node_ids)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            if let Err(error) = sent {
                tracing::debug!(%error, "heartbeats not forwarded to the leader; kept for the next try");
                server.inner.heartbeats.requeue(node_ids);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_the_leader_did_not_take_are_forwarded_at_the_next_try() {
        let table = HeartbeatTable::default();
        let (first, second) = (NodeId::new("n1"), NodeId::new("n2"));
        table.record([&first, &second, &first], Instant::now());
        let taken = table.take_unforwarded();
        assert_eq!(taken, [first.clone(), second.clone()]);
        assert!(table.take_unforwarded().is_empty());

        // The send failed while n2 spoke again: each is forwarded once.
        table.record([&second], Instant::now());
        table.requeue(taken);
        assert_eq!(table.take_unforwarded(), [first.clone(), second]);

        // Became leader meanwhile: its own table counts, nothing is kept.
        table.set_forwarding(false);
        table.requeue(vec![first]);
        assert!(table.take_unforwarded().is_empty());
    }
}
