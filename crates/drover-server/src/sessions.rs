//! Agent sessions: the registry of agents connected to this server, the
//! pusher that sends each agent its allocations whenever they change, and
//! request/response streams to agents (log reads).
//!
//! The transport (a WebSocket in `drover-api`) only moves frames: it calls
//! [`Server::open_session`] with the agent's `Hello`, forwards inbound
//! messages to [`Server::on_agent_message`] and writes whatever arrives on
//! the session's outbound channel.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use drover_proto::session::{AgentMessage, AllocAssignment, JobSummary, RequestBody, ResponseBody, ServerMessage};
use drover_state::State;
use drover_types::NodeRegistration;
use drover_types::{CodedError, ErrorCode, EvalTrigger, Evaluation, JobType, NodeId, Timestamp};

use crate::Result;
use crate::ids::new_eval_id;
use crate::server::Server;

/// Outbound messages of one session.
pub type SessionOutbound = mpsc::Receiver<ServerMessage>;

/// Capacity of a session's outbound queue.
const OUTBOUND_CAPACITY: usize = 256;

/// Identifies one session of one agent (an agent that reconnects gets a new
/// generation; the old session's cleanup must not remove the new one).
#[derive(Clone, Debug)]
pub struct AgentSession {
    /// The node.
    pub node_id: NodeId,
    generation: u64,
    heartbeat: Arc<crate::updates::HeartbeatCell>,
    /// The session's outbound queue, for answers sent later (log acks).
    /// Weak: a session ends when the registry drops its sender (a newer
    /// session of the same agent replaced it).
    pub(crate) outbound: mpsc::WeakSender<ServerMessage>,
}

struct SessionEntry {
    generation: u64,
    outbound: mpsc::Sender<ServerMessage>,
    last_pushed_index: u64,
    /// The last push found the queue full: retry on the next tick.
    congested: bool,
    /// The pusher compared it with the state once: from then on it visits
    /// the session only when its node's allocations change (or it is
    /// congested), not on every pass.
    checked: bool,
    pending_requests: HashMap<u64, mpsc::Sender<ResponseBody>>,
    /// What was last sent of its templates' inputs (see
    /// `template_inputs.rs`).
    last_template_inputs: Option<drover_proto::session::TemplateInputs>,
    /// The agent's session protocol: nothing newer is sent to it.
    protocol: u32,
}

/// The registry of sessions on this server.
#[derive(Default)]
pub struct Sessions {
    entries: Mutex<HashMap<NodeId, SessionEntry>>,
    next_generation: AtomicU64,
    next_request_id: AtomicU64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    /// The number of connected agents.
    pub async fn num_connected(&self) -> usize {
        self.entries.lock().await.len()
    }

    /// The nodes whose agents are connected to this server.
    pub async fn connected_nodes(&self) -> std::collections::HashSet<NodeId> {
        self.entries.lock().await.keys().cloned().collect()
    }

    /// Whether a node's agent is connected to this server.
    pub async fn is_connected(&self, node_id: &NodeId) -> bool {
        self.entries.lock().await.contains_key(node_id)
    }
}

impl Server {
    /// Registers an agent: proposes its registration, records the session
    /// and queues the `Welcome` and the node's current allocations.
    pub async fn open_session(
        &self,
        protocol: u32,
        registration: NodeRegistration,
    ) -> Result<(AgentSession, SessionOutbound)> {
        let accepted = drover_proto::OLDEST_AGENT_PROTOCOL..=drover_proto::SESSION_PROTOCOL;
        if !accepted.contains(&protocol) {
            let what_to_do = if protocol < *accepted.start() {
                "upgrade the agent: agents may be at most one release older than the servers"
            } else {
                "upgrade the servers first, then the agents"
            };
            return Err(CodedError::invalid(format!(
                "agent speaks session protocol {protocol}, this server accepts {} to {}; {what_to_do} (docs/operations.md, \"Upgrades\")",
                accepted.start(),
                accepted.end()
            )));
        }
        if registration.name.trim().is_empty() || registration.id.as_str().is_empty() {
            return Err(CodedError::invalid("the agent sent an empty node name or id"));
        }
        let node_id = registration.id.clone();
        if self.should_hand_agents_off().await {
            return Err(CodedError::new(
                drover_types::ErrorCode::Unavailable,
                "this server cannot write its Raft data (its disk is full): connect to another server",
            ));
        }
        self.refuse_second_live_session(&node_id, &registration.name).await?;
        let name = registration.name.clone();
        // A node is its name: an agent may not take the name of another
        // node that is up (answered here at once; the state machine checks
        // again). Group-committed with the registrations of other agents (a
        // fleet reconnecting at once): see `updates.rs`.
        let refusal = self.state().registration_refusal(&registration);
        let registered = match refusal {
            Some(refusal) => Err(refusal),
            None => self.register_node_group_committed(registration).await,
        };
        if let Err(error) = registered {
            if error.code == ErrorCode::Conflict {
                self.audit_registration_refusal(&name, &node_id, &error);
            }
            return Err(error);
        }
        self.record_heartbeats([&node_id]);

        let (sender, receiver) = mpsc::channel(OUTBOUND_CAPACITY);
        let generation = self.inner.sessions.next_generation.fetch_add(1, Ordering::Relaxed);
        let welcome = ServerMessage::Welcome {
            node_id: node_id.clone(),
            heartbeat_interval_ms: self.inner.config.heartbeat.interval.as_millis() as u64,
            servers: self.server_addresses(),
        };
        sender.try_send(welcome).map_err(|_| CodedError::internal("session queue full at start"))?;
        let state = self.state();
        let assignments = assignments_for(&state, &node_id, None);
        // Before the allocations, so that their templates render with it.
        let template_inputs = if protocol >= drover_proto::session::TEMPLATE_INPUTS_SINCE {
            crate::template_inputs::template_inputs_for(&state, &node_id, &mut None)
        } else {
            None
        };
        if let Some(inputs) = &template_inputs {
            sender
                .try_send(ServerMessage::TemplateInputs(Box::new(inputs.clone())))
                .map_err(|_| CodedError::internal("session queue full at start"))?;
        }
        sender
            .try_send(ServerMessage::Allocations {
                index: state.last_index(),
                full: true,
                node: state.node(&node_id).map(|node| Box::new(drover_types::Node::clone(node))),
                allocs: assignments,
            })
            .map_err(|_| CodedError::internal("session queue full at start"))?;
        // The CAs to trust and the issuing one (a CA rotation: security/ca_rotation.rs).
        if let Some(tls_message) = self.tls_message() {
            let _ = sender.try_send(tls_message);
        }
        let weak_outbound = sender.downgrade();
        let mut entries = self.inner.sessions.entries.lock().await;
        entries.insert(
            node_id.clone(),
            SessionEntry {
                generation,
                outbound: sender,
                last_pushed_index: state.node_alloc_index(&node_id),
                congested: false,
                checked: false,
                pending_requests: HashMap::new(),
                last_template_inputs: template_inputs,
                protocol,
            },
        );
        drop(entries);
        tracing::info!(node = %node_id, "agent session opened");
        // Its registration is the first time it is heard from.
        let heartbeat = self.inner.heartbeats.cell(&node_id);
        self.inner.heartbeats.touch(&heartbeat, &node_id, std::time::Instant::now());
        Ok((AgentSession { node_id, generation, heartbeat, outbound: weak_outbound }, receiver))
    }

    /// Refuses a session for a node whose agent is already connected here
    /// and heard from within the heartbeat TTL: a second agent claiming the
    /// same node id (copied `node-id` file, or an impostor) must not take
    /// over its allocations, and two agents must not kick each other off.
    /// A session that went silent (its agent restarted behind a dead TCP
    /// connection) is replaced as before.
    async fn refuse_second_live_session(&self, node_id: &NodeId, name: &str) -> Result<()> {
        if !self.inner.sessions.is_connected(node_id).await {
            return Ok(());
        }
        let ttl = self.inner.config.heartbeat.ttl;
        let heard_recently =
            self.inner.heartbeats.last_seen(node_id).is_some_and(|last_seen| last_seen.elapsed() < ttl);
        if !heard_recently {
            return Ok(());
        }
        tracing::warn!(node = %node_id, name, "refused a second session for a connected node");
        Err(CodedError::conflict(format!(
            "node {node_id} ({name}) is already connected to this server and heard from within {}s: \
             another agent is running with this node's id. Stop it, or give this agent its own data \
             directory (a new node-id); if the node's agent restarted, it is accepted once the old \
             session has been silent for {}s",
            ttl.as_secs(),
            ttl.as_secs()
        )))
    }

    /// Logs and audits an agent refused because another node holds its
    /// name (`node.register`, refused), so that the operator finds out on
    /// the servers' side too.
    fn audit_registration_refusal(&self, name: &str, node_id: &NodeId, error: &CodedError) {
        tracing::warn!(node = name, node_id = %node_id, %error, "refused an agent: its name is taken");
        self.audit(drover_types::acl::AuditEvent {
            at: Timestamp::now(),
            accessor: None,
            name: format!("node:{name}"),
            action: "node.register".to_owned(),
            target: name.to_owned(),
            details: format!("node id {node_id}"),
            outcome: drover_types::acl::AuditOutcome::Refused(error.message.clone()),
            source: String::new(),
            request_id: 0,
        });
    }

    /// Handles one message from an agent.
    pub async fn on_agent_message(&self, session: &AgentSession, message: AgentMessage) -> Result<()> {
        match message {
            AgentMessage::Hello { .. } => Err(CodedError::invalid("Hello sent twice in one session")),
            AgentMessage::Heartbeat => {
                self.self_metrics().heartbeats.increment();
                self.inner.heartbeats.touch(&session.heartbeat, &session.node_id, std::time::Instant::now());
                Ok(())
            }
            AgentMessage::AllocUpdates { updates } => {
                self.inner.heartbeats.touch(&session.heartbeat, &session.node_id, std::time::Instant::now());
                // A node reports on its own allocations only.
                let state = self.state();
                let (own, foreign): (Vec<_>, Vec<_>) = updates.into_iter().partition(|update| {
                    state.alloc(&update.alloc_id).is_none_or(|alloc| alloc.node_id == session.node_id)
                });
                if !foreign.is_empty() {
                    tracing::warn!(node = %session.node_id, updates = foreign.len(), "ignored updates of allocations on other nodes");
                }
                self.inner.client_updates.push(own).await;
                Ok(())
            }
            AgentMessage::Logs { lines } => self.on_agent_logs(session, lines).await,
            AgentMessage::Metrics { sample } => {
                self.on_agent_metrics(session, *sample);
                Ok(())
            }
            AgentMessage::LogStats { dropped_lines } => {
                self.on_agent_log_stats(session, dropped_lines);
                Ok(())
            }
            AgentMessage::Response { request_id, body } => {
                let mut entries = self.inner.sessions.entries.lock().await;
                let Some(entry) =
                    entries.get_mut(&session.node_id).filter(|entry| entry.generation == session.generation)
                else {
                    return Ok(());
                };
                let finished = body.is_last();
                if let Some(sender) = entry.pending_requests.get(&request_id) {
                    let sender = sender.clone();
                    if finished {
                        entry.pending_requests.remove(&request_id);
                    }
                    drop(entries);
                    // A reader that went away is not an error of the agent.
                    let _ = sender.send(body).await;
                }
                Ok(())
            }
        }
    }

    /// Forgets a session (the agent disconnected). Pending requests end.
    pub async fn close_session(&self, session: &AgentSession) {
        let mut entries = self.inner.sessions.entries.lock().await;
        if entries.get(&session.node_id).is_some_and(|entry| entry.generation == session.generation) {
            entries.remove(&session.node_id);
            tracing::info!(node = %session.node_id, "agent session closed");
        }
    }

    /// Ends a node's session on this server, whatever its generation (the
    /// node was revoked): its outbound queue closes, and so does the socket.
    /// Queues `message` for every agent connected to this server; an
    /// agent whose queue is full misses it (a CA rotation's message is
    /// sent again when its next session opens).
    pub(crate) async fn tell_connected_agents(&self, message: &ServerMessage) {
        let entries = self.inner.sessions.entries.lock().await;
        for entry in entries.values() {
            let _ = entry.outbound.try_send(message.clone());
        }
    }

    pub(crate) async fn drop_session(&self, node_id: &NodeId) {
        self.inner.sessions.entries.lock().await.remove(node_id);
    }

    /// Sends a request to a node's agent and returns the stream of its
    /// answer. The agent must be connected to this server.
    pub async fn request_agent(
        &self,
        node_id: &NodeId,
        body: RequestBody,
    ) -> Result<(u64, mpsc::Receiver<ResponseBody>)> {
        let request_id = self.inner.sessions.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(64);
        let mut entries = self.inner.sessions.entries.lock().await;
        let Some(entry) = entries.get_mut(node_id) else {
            return Err(CodedError::new(
                ErrorCode::Unavailable,
                format!("the agent of node {node_id} is not connected to this server"),
            ));
        };
        if body.since_protocol() > entry.protocol {
            return Err(CodedError::new(
                ErrorCode::Unavailable,
                format!(
                    "the agent of node {node_id} speaks session protocol {}, and this needs {}: upgrade drover on that node",
                    entry.protocol,
                    body.since_protocol()
                ),
            ));
        }
        entry.pending_requests.insert(request_id, sender);
        entry.outbound.try_send(ServerMessage::Request { request_id, body }).map_err(|_| {
            CodedError::new(ErrorCode::Unavailable, format!("the session of node {node_id} is congested"))
        })?;
        Ok((request_id, receiver))
    }

    /// Tells an agent to stop streaming an earlier request.
    pub async fn cancel_agent_request(&self, node_id: &NodeId, request_id: u64) {
        let mut entries = self.inner.sessions.entries.lock().await;
        if let Some(entry) = entries.get_mut(node_id) {
            entry.pending_requests.remove(&request_id);
            let cancel = RequestBody::Cancel { request_id };
            let next_id = self.inner.sessions.next_request_id.fetch_add(1, Ordering::Relaxed);
            let _ = entry.outbound.try_send(ServerMessage::Request { request_id: next_id, body: cancel });
        }
    }

    /// Evaluations to create when a node (re)joins: every system job (it may
    /// now run there) and every job with allocations on the node.
    pub(crate) fn evals_for_node_join(&self, state: &State, node_id: &NodeId, now: Timestamp) -> Vec<Evaluation> {
        let mut job_ids: Vec<_> = state
            .jobs()
            .filter(|job| job.job_type.places_on_every_node() && !job.stop)
            .map(|job| (job.id.clone(), job.priority))
            .collect();
        for alloc in state.live_allocs_on_node(node_id) {
            if let Some(job) = state.job(&alloc.job_id)
                && !job_ids.iter().any(|(id, _)| id == &job.id)
            {
                job_ids.push((job.id.clone(), job.priority));
            }
        }
        job_ids
            .into_iter()
            .map(|(job_id, priority)| {
                let mut eval = Evaluation::new(new_eval_id(), job_id, priority, EvalTrigger::NodeUpdate, now);
                eval.node_id = Some(node_id.clone());
                eval
            })
            .collect()
    }
}

/// The allocations to send an agent, with their task groups: with
/// `changed_after`, those the servers changed after that index (terminal
/// ones included, so the agent stops them); without, every allocation on
/// the node that is not terminal on the client side.
pub(crate) fn assignments_for(state: &State, node_id: &NodeId, changed_after: Option<u64>) -> Vec<AllocAssignment> {
    let allocs: Box<dyn Iterator<Item = &Arc<drover_types::Allocation>>> = match changed_after {
        Some(index) => Box::new(state.allocs_on_node_changed_after(node_id, index)),
        None => Box::new(state.allocs_on_node(node_id).filter(|alloc| !alloc.client_status.is_terminal())),
    };
    allocs
        .map(|alloc| {
            let job = state.job_version(&alloc.job_id, alloc.job_version).or_else(|| state.job(&alloc.job_id));
            let summary = match job {
                Some(job) => JobSummary {
                    id: job.id.clone(),
                    name: job.name.clone(),
                    job_type: job.job_type,
                    version: job.version,
                    meta: job.meta.clone(),
                    payload: job.payload.clone(),
                },
                None => JobSummary {
                    id: alloc.job_id.clone(),
                    name: alloc.job_id.to_string(),
                    job_type: JobType::Service,
                    version: alloc.job_version,
                    meta: Default::default(),
                    payload: Vec::new(),
                },
            };
            let group = job.and_then(|job| job.group(&alloc.group));
            AllocAssignment {
                alloc: drover_types::Allocation::clone(alloc),
                job: summary,
                update: job.zip(group).and_then(|(job, group)| job.update_for(group).copied()),
                group: group.cloned(),
            }
        })
        .collect()
}

/// How long a Raft write waits for disk space before the server hands its
/// agents to the other servers.
const STALL_BEFORE_HANDOFF: std::time::Duration = std::time::Duration::from_secs(3);

impl Server {
    /// Whether this server should send its agents elsewhere: a Raft write
    /// has waited for disk space for a while and another server answers
    /// and can write (a lone server, or one whose peers are down or full
    /// too, keeps its agents: their heartbeats need no disk, and sending
    /// them away would only make them look silent everywhere).
    async fn should_hand_agents_off(&self) -> bool {
        let stalled_for_long =
            self.inner.disk.stall().is_some_and(|stall| Timestamp::now().since(stall.since) >= STALL_BEFORE_HANDOFF);
        if !stalled_for_long {
            return false;
        }
        for peer in self.peers() {
            if let Ok(status) = self.fetch_status(&peer.address).await
                && status.raft_write_stalled.is_none()
            {
                return true;
            }
        }
        false
    }
}

/// Ends every agent session of this server while it cannot write its Raft
/// data and other servers can take them (the agents reconnect elsewhere at
/// once), and refuses new ones until the disk has room again.
pub(crate) fn spawn_disk_watch(server: Server) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                () = server.shutdown_token().cancelled() => return,
                _ = tick.tick() => {}
            }
            if server.should_hand_agents_off().await {
                let mut entries = server.inner.sessions.entries.lock().await;
                if !entries.is_empty() {
                    tracing::warn!(
                        num_agents = entries.len(),
                        "cannot write Raft data (disk full): handing agents to the other servers"
                    );
                    entries.clear();
                }
            }
        }
    });
}

/// Whether any kept version of any job has a task with a template: when
/// none has, no session has template inputs to receive, and the pusher
/// skips computing them (a walk of every allocation of every node).
fn any_job_has_templates(state: &State) -> bool {
    state.jobs().any(|job| {
        state
            .job_versions(&job.id)
            .chain(std::iter::once(job))
            .any(|version| version.groups.iter().any(|group| group.tasks.iter().any(|task| !task.templates.is_empty())))
    })
}

/// Pushes each connected agent its allocations whenever they change.
/// Changes are coalesced for a few milliseconds so that a burst of applied
/// entries costs one pass over the sessions.
pub(crate) fn spawn_pusher(server: Server) {
    tokio::spawn(async move {
        let mut states = server.watch_state();
        let shutdown = server.shutdown_token().clone();
        // The tick retries sessions that were congested on the last pass.
        let mut retry_tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_state_index = 0;
        let mut last_restore_index = server.state().restore_index();
        let mut last_template_indexes = (0, 0, 0, 0);
        loop {
            let retry_only = tokio::select! {
                () = shutdown.cancelled() => return,
                changed = states.changed() => if changed.is_err() { return } else { false },
                _ = retry_tick.tick() => true,
            };
            if !retry_only {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let state: Arc<State> = states.borrow_and_update().clone();
            // Nothing changed since the last pass: only congested sessions
            // need another try (the tick must stay cheap with 10,000 agents).
            let retry_only = retry_only && state.last_index() == last_state_index;
            // The nodes whose allocations changed since the last pass: found
            // in the state's index, so a pass costs what changed, not a
            // lookup per connected agent.
            let changed_nodes: HashSet<&NodeId> = if retry_only {
                HashSet::new()
            } else {
                state.nodes_with_allocs_changed_after(last_state_index).collect()
            };
            last_state_index = state.last_index();
            // After a snapshot restore every agent gets its full list again:
            // what it runs may not exist any more.
            let full = state.restore_index() > last_restore_index;
            last_restore_index = state.restore_index();
            let indexes = state.table_indexes();
            let template_indexes = (indexes.variables, indexes.allocs, indexes.jobs, indexes.nodes);
            let templates_may_differ =
                (full || template_indexes != last_template_indexes) && any_job_has_templates(&state);
            last_template_indexes = template_indexes;
            let mut catalogue = None;
            let mut entries = server.inner.sessions.entries.lock().await;
            for (node_id, entry) in entries.iter_mut() {
                // Before the allocations, so that their templates render with it.
                if templates_may_differ && entry.protocol >= drover_proto::session::TEMPLATE_INPUTS_SINCE {
                    let inputs = crate::template_inputs::template_inputs_for(&state, node_id, &mut catalogue);
                    if inputs.is_some() && inputs != entry.last_template_inputs {
                        let message = ServerMessage::TemplateInputs(Box::new(inputs.clone().unwrap_or_default()));
                        if entry.outbound.try_send(message).is_ok() {
                            entry.last_template_inputs = inputs;
                        } else {
                            // Congested: the next pass computes it again.
                            last_template_indexes = (0, 0, 0, 0);
                        }
                    }
                }
                if full {
                    let message = ServerMessage::Allocations {
                        index: state.last_index(),
                        full: true,
                        node: state.node(node_id).map(|node| Box::new(drover_types::Node::clone(node))),
                        allocs: assignments_for(&state, node_id, None),
                    };
                    entry.congested = entry.outbound.try_send(message).is_err();
                    entry.last_pushed_index = state.node_alloc_index(node_id);
                    continue;
                }
                if retry_only && !entry.congested {
                    continue;
                }
                if entry.checked && !entry.congested && !changed_nodes.contains(node_id) {
                    continue;
                }
                entry.checked = true;
                let index = state.node_alloc_index(node_id);
                if index <= entry.last_pushed_index {
                    continue;
                }
                let message = ServerMessage::Allocations {
                    index: state.last_index(),
                    full: false,
                    node: state.node(node_id).map(|node| Box::new(drover_types::Node::clone(node))),
                    allocs: assignments_for(&state, node_id, Some(entry.last_pushed_index)),
                };
                match entry.outbound.try_send(message) {
                    Ok(()) => {
                        entry.last_pushed_index = index;
                        entry.congested = false;
                    }
                    // Congested: leave the index so the next pass retries.
                    Err(mpsc::error::TrySendError::Full(_)) => entry.congested = true,
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    });
}

/// Whether asking the next server after a failed one is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The request only reads (`alloc logs`): after any failure.
    AfterAnyFailure,
    /// The request acts (a restart, an exec): only after one that never
    /// reached its server, for one that did may have run.
    OnlyIfNeverSent,
}

impl Server {
    /// Asks the other servers in turn for an agent that is not connected
    /// here, each with the request `build` makes for its base URL, and
    /// returns the first successful answer. A server whose error `absent`
    /// says the agent is not connected there either, or that cannot be
    /// reached, is passed over; `retry` says after which other failures
    /// the next one is asked. `not_found` is the error when none answered.
    pub(crate) async fn ask_peers_in_turn(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
        absent: fn(&CodedError) -> bool,
        retry: Retry,
        not_found: CodedError,
    ) -> Result<reqwest::Response> {
        let mut last_error = not_found;
        for member in self.members() {
            if member.server_id == self.id() {
                continue;
            }
            let base = self.inner.network.base_url(&member.address);
            let response = match build(self.inner.network.client(), &base).send().await {
                Ok(response) => response,
                Err(error) if error.is_connect() || retry == Retry::AfterAnyFailure => continue,
                Err(error) => {
                    return Err(CodedError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "the server {}, which has the agent's session, did not answer: {error}",
                            member.address
                        ),
                    ));
                }
            };
            if response.status().is_success() {
                return Ok(response);
            }
            match response.json::<CodedError>().await {
                Ok(error) if absent(&error) => {}
                Ok(error) if retry == Retry::OnlyIfNeverSent => return Err(error),
                Ok(error) => last_error = error,
                Err(_) => {}
            }
        }
        Err(last_error)
    }

    /// Asks the other servers to serve an agent request whose agent is not
    /// connected here: re-sends the API request `path_and_query` (which must
    /// already carry `local=true`, so that no server forwards again) to each
    /// member in turn and streams the first successful answer.
    pub async fn forward_agent_request(
        &self,
        path_and_query: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        use futures_util::StreamExt;
        let not_found = CodedError::new(ErrorCode::Unavailable, "the node's agent is not connected to any server");
        let response = self
            .ask_peers_in_turn(
                |client, base| client.get(format!("{base}{path_and_query}")),
                |error| error.code == ErrorCode::Unavailable,
                Retry::AfterAnyFailure,
                not_found,
            )
            .await?;
        Ok(response.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed())
    }
}
