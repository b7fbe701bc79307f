//! The [`Server`] handle: proposals (forwarded to the leader), reads, and
//! the operations the API exposes.

use drover_proto::paths;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use drover_proto::api::{DeregisterJobResponse, PlanResponse, RegisterJobResponse};
use drover_state::{Command, CommandResponse, State, StateMachineStore, TypeConfig};
use drover_types::{CodedError, ErrorCode, EvalTrigger, Evaluation, Job, JobId, Timestamp};

use crate::Result;
use crate::config::{Bootstrap, ServerConfig};
use crate::ids::new_eval_id;
use crate::network::PeerNetwork;
use crate::sessions::Sessions;
use crate::updates::{ClientUpdateBatcher, HeartbeatTable};

/// The Raft node type.
pub type Raft = openraft::Raft<TypeConfig, StateMachineStore>;

/// How long a proposal waits for a leader to be elected before giving up.
const PROPOSE_LEADER_WAIT: Duration = Duration::from_secs(15);

/// A handle to a running server; cheap to clone.
#[derive(Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Server").field("id", &self.inner.server_id).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    pub(crate) server_id: u64,
    pub(crate) raft: Raft,
    pub(crate) states: watch::Receiver<Arc<State>>,
    pub(crate) network: PeerNetwork,
    pub(crate) sessions: Sessions,
    pub(crate) heartbeats: HeartbeatTable,
    pub(crate) client_updates: ClientUpdateBatcher,
    pub(crate) logs: crate::logs::LogService,
    pub(crate) usage: crate::usage::UsageTable,
    pub(crate) notify: crate::react::Notify,
    pub(crate) shutdown: CancellationToken,
    /// Whether a Raft write is waiting for disk space.
    pub(crate) disk: Arc<drover_state::disk::DiskHealth>,
    /// The CA and this server's certificate (`None`: insecure).
    pub(crate) tls: Option<Arc<crate::security::ServerTls>>,
    /// Audit events waiting to be committed.
    pub(crate) audit: crate::audit::AuditLog,
    /// Compiled permissions of recently seen tokens.
    pub(crate) permissions: crate::acl::PermissionCache,
    /// What this server counts about its own work (`/v1/metrics`).
    pub(crate) self_metrics: Arc<crate::self_metrics::SelfMetrics>,
}

/// A summary of this server for `drover server members` and health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// Raft id.
    pub server_id: u64,
    /// Advertised address.
    pub address: String,
    /// Leader id, when known.
    pub leader_id: Option<u64>,
    /// Leader address, when known.
    pub leader_address: Option<String>,
    /// Last applied index.
    pub applied_index: u64,
    /// Whether this server is the leader.
    pub is_leader: bool,
}

impl Server {
    /// Opens the server's storage in `config.data_dir`, starts Raft, and
    /// (for a new single-server cluster) initialises it.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        let new_data_dir = !config.data_dir.exists();
        std::fs::create_dir_all(&config.data_dir).map_err(|error| {
            CodedError::internal(format!("cannot create data directory {}: {error}", config.data_dir.display()))
        })?;
        if new_data_dir {
            // It will hold the cluster's secrets: its owner's alone.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700)).map_err(|error| {
                CodedError::internal(format!("cannot restrict data directory {}: {error}", config.data_dir.display()))
            })?;
        }
        let recorded_member = crate::membership::check_data_dir(&config.data_dir, config.forget_cluster).await?;
        let server_id = load_or_create_server_id(&config.data_dir)?;
        let disk = Arc::new(drover_state::disk::DiskHealth::default());
        let (log_store, state_machine, states) =
            drover_state::open_storage(&config.data_dir.join("raft"), Arc::clone(&disk))
                .map_err(|error| CodedError::internal(format!("cannot open server storage: {error}")))?;
        let raft_config = Config {
            cluster_name: "drover".to_owned(),
            heartbeat_interval: config.raft_heartbeat.as_millis() as u64,
            election_timeout_min: config.election_timeout.0.as_millis() as u64,
            election_timeout_max: config.election_timeout.1.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: 1000,
            ..Default::default()
        }
        .validate()
        .map_err(|error| CodedError::invalid(format!("invalid Raft timing: {error}")))?;
        if let crate::security::SecurityMode::Secure(settings) = &config.security
            && let Some(token) = &settings.join_token
            && settings.ca_cert.is_none()
        {
            let join = match &config.bootstrap {
                Bootstrap::Cluster { join, .. } => join.clone(),
                Bootstrap::Single => Vec::new(),
            };
            crate::security::fetch_ca_with_join_token(&config.data_dir, &join, token).await?;
        }
        let tls = match &config.security {
            crate::security::SecurityMode::Insecure => None,
            crate::security::SecurityMode::Secure(settings) => Some(Arc::new(crate::security::ServerTls::prepare(
                &config.data_dir,
                server_id,
                &config.advertise_address,
                settings,
                config.bootstrap == Bootstrap::Single,
            )?)),
        };
        let network = PeerNetwork::new(tls.as_ref().map(|tls| tls.client_config()).transpose()?);
        let raft = Raft::new(server_id, Arc::new(raft_config), network.clone(), log_store, state_machine)
            .await
            .map_err(|error| CodedError::internal(format!("cannot start Raft: {error}")))?;

        let logs = crate::logs::LogService::open(&config.data_dir.join("logs"), config.logs.clone())?;
        let notify = crate::react::Notify::open(&config.data_dir.join("notify")).await?;
        let shutdown = CancellationToken::new();
        let usage = crate::usage::UsageTable::open(&config.data_dir);
        let inner = Arc::new(Inner {
            server_id,
            raft,
            states,
            network,
            sessions: Sessions::default(),
            heartbeats: HeartbeatTable::default(),
            client_updates: ClientUpdateBatcher::default(),
            logs,
            usage,
            notify,
            shutdown,
            config,
            disk,
            tls,
            audit: crate::audit::AuditLog::default(),
            permissions: crate::acl::PermissionCache::default(),
            self_metrics: Arc::default(),
        });
        let server = Server { inner };
        server.bootstrap().await?;
        crate::membership::spawn_recorder(server.clone(), recorded_member.is_some());
        crate::sessions::spawn_disk_watch(server.clone());
        crate::membership::spawn_recovery_restore(server.clone());
        crate::leader::spawn_leadership_watch(server.clone());
        crate::sessions::spawn_pusher(server.clone());
        crate::updates::spawn_client_update_batcher(server.clone());
        crate::updates::spawn_heartbeat_forwarder(server.clone());
        crate::logs::spawn_log_tasks(&server).await?;
        crate::security::spawn_renewal(server.clone());
        crate::usage::spawn_history_saver(server.clone());
        crate::audit::spawn_audit_writer(server.clone());
        crate::acl::spawn_revocation_watch(server.clone());
        crate::self_metrics::spawn_leader_change_counter(server.clone());
        Ok(server)
    }

    async fn bootstrap(&self) -> Result<()> {
        let initialized =
            self.inner.raft.is_initialized().await.map_err(|error| CodedError::internal(format!("raft: {error}")))?;
        if initialized {
            return Ok(());
        }
        match &self.inner.config.bootstrap {
            Bootstrap::Single => {
                let members =
                    BTreeMap::from([(self.inner.server_id, BasicNode::new(&self.inner.config.advertise_address))]);
                self.inner
                    .raft
                    .initialize(members)
                    .await
                    .map_err(|error| CodedError::internal(format!("cannot initialise the cluster: {error}")))?;
                tracing::info!(server_id = self.inner.server_id, "initialised a single-server cluster");
                Ok(())
            }
            Bootstrap::Cluster { expect, join } => {
                self.spawn_cluster_formation(*expect, join.clone());
                Ok(())
            }
        }
    }

    /// This server's Raft id.
    pub fn id(&self) -> u64 {
        self.inner.server_id
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The Raft node (for the internal endpoints).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The latest state applied on this server (may lag the leader).
    pub fn state(&self) -> Arc<State> {
        self.inner.states.borrow().clone()
    }

    /// A receiver of applied states, for blocking queries.
    pub fn watch_state(&self) -> watch::Receiver<Arc<State>> {
        self.inner.states.clone()
    }

    /// A state that includes every write acknowledged before this call
    /// (a linearizable read through the leader).
    pub async fn consistent_state(&self) -> Result<Arc<State>> {
        match self.inner.raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => {
                let wanted = read_log_id.index();
                self.wait_for_index(wanted, Duration::from_secs(10)).await
            }
            Err(RaftError::APIError(openraft::errors::LinearizableReadError::ForwardToLeader(forward))) => {
                // A follower asks the leader for its read index and waits
                // until it has applied that far.
                let leader = forward.leader_node.map(|node| node.addr).ok_or_else(|| {
                    CodedError::new(ErrorCode::Unavailable, "no leader; read with --stale to get this server's view")
                })?;
                let index = self.leader_read_index(&leader).await?;
                self.wait_for_index(index, Duration::from_secs(10)).await
            }
            Err(error) => Err(CodedError::new(ErrorCode::Unavailable, format!("cannot read consistently: {error}"))),
        }
    }

    async fn leader_read_index(&self, leader_address: &str) -> Result<u64> {
        let url = format!("{}{}", self.inner.network.base_url(leader_address), paths::INTERNAL_READ_INDEX);
        let response =
            self.inner.network.client().post(&url).timeout(Duration::from_secs(5)).send().await.map_err(|error| {
                CodedError::new(ErrorCode::Unavailable, format!("cannot reach the leader at {leader_address}: {error}"))
            })?;
        if !response.status().is_success() {
            return Err(CodedError::new(
                ErrorCode::Unavailable,
                format!("the leader at {leader_address} could not serve a read index"),
            ));
        }
        response.json::<u64>().await.map_err(|error| CodedError::new(ErrorCode::Unavailable, error.to_string()))
    }

    /// Waits until this server has applied `index`.
    pub async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<Arc<State>> {
        let mut receiver = self.inner.states.clone();
        let waited = tokio::time::timeout(timeout, receiver.wait_for(|state| state.last_index() >= index)).await;
        match waited {
            Ok(Ok(state)) => Ok(state.clone()),
            Ok(Err(_)) => Err(CodedError::new(ErrorCode::Unavailable, "the server is shutting down")),
            Err(_) => Err(CodedError::new(
                ErrorCode::Timeout,
                format!("this server has not applied index {index} after {timeout:?}"),
            )),
        }
    }

    /// Waits until the state changes after `index` (a blocking query), or
    /// `wait` passes; returns the newest state either way.
    pub async fn wait_for_change(&self, index: u64, wait: Duration, changed: impl Fn(&State) -> u64) -> Arc<State> {
        let mut receiver = self.inner.states.clone();
        let _ = tokio::time::timeout(wait, receiver.wait_for(|state| changed(state) > index)).await;
        self.state()
    }

    /// Raft status of this server.
    pub fn status(&self) -> ServerStatus {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let leader_address = metrics
            .current_leader
            .and_then(|leader| metrics.membership_config.membership().get_node(&leader).map(|node| node.addr.clone()));
        ServerStatus {
            server_id: self.inner.server_id,
            address: self.inner.config.advertise_address.clone(),
            leader_id: metrics.current_leader,
            leader_address,
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            is_leader: metrics.state == ServerState::Leader,
        }
    }

    /// Every server's address, as the membership knows it.
    pub fn server_addresses(&self) -> Vec<String> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        metrics.membership_config.membership().nodes().map(|(_, node)| node.addr.clone()).collect()
    }

    /// Proposes a command; on a follower, forwards it to the leader. Waits
    /// up to 15 s for a leader during an election.
    pub async fn propose(&self, command: Command) -> Result<CommandResponse> {
        // The audit event of the request being served rides on its first write.
        let (command, carries_audit) = crate::audit::with_waiting_request_audit(command);
        let result = self.propose_command(command).await;
        if carries_audit {
            crate::audit::settle_request_audit(result.is_ok());
        }
        result
    }

    async fn propose_command(&self, command: Command) -> Result<CommandResponse> {
        let started = Instant::now();
        loop {
            // A follower that knows its leader forwards at once, without
            // asking its own Raft first.
            let leader = match self.leader_elsewhere() {
                Some(address) => Some(address),
                None => match self.inner.raft.client_write(command.clone()).await {
                    Ok(response) => return Ok(response.data),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                        forward.leader_node.map(|node| node.addr)
                    }
                    Err(RaftError::APIError(other)) => {
                        return Err(CodedError::internal(format!("raft rejected the write: {other}")));
                    }
                    Err(RaftError::Fatal(fatal)) => {
                        return Err(CodedError::new(ErrorCode::Unavailable, format!("raft has stopped: {fatal}")));
                    }
                },
            };
            if let Some(leader) = leader {
                match self.forward_propose(&leader, &command).await {
                    Ok(response) => return Ok(response),
                    Err(error) if error.code == ErrorCode::NotLeader || error.code == ErrorCode::Unavailable => {
                        tracing::debug!(%error, "forwarded proposal failed; retrying");
                    }
                    Err(error) => return Err(error),
                }
            }
            if started.elapsed() > PROPOSE_LEADER_WAIT {
                return Err(CodedError::new(
                    ErrorCode::Unavailable,
                    "no leader could be reached within 15 s; check `drover server members` — a majority of servers must be up",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader's address when this server knows it and it is another
    /// server.
    fn leader_elsewhere(&self) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        let leader = metrics.current_leader.filter(|leader| *leader != self.inner.server_id)?;
        if metrics.state == ServerState::Leader {
            return None;
        }
        metrics.membership_config.membership().get_node(&leader).map(|node| node.addr.clone())
    }

    /// Applies a proposal forwarded by a follower, without forwarding again.
    pub async fn propose_as_leader(&self, command: Command) -> Result<CommandResponse> {
        match self.inner.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(CodedError::new(ErrorCode::NotLeader, "this server is no longer the leader"))
            }
            Err(error) => Err(CodedError::new(ErrorCode::Unavailable, error.to_string())),
        }
    }

    async fn forward_propose(&self, leader_address: &str, command: &Command) -> Result<CommandResponse> {
        let body = drover_state::codec::encode(command).map_err(|error| CodedError::internal(error.to_string()))?;
        let url = format!("{}{}", self.inner.network.base_url(leader_address), paths::INTERNAL_PROPOSE);
        let response = crate::network::post_msgpack(self.inner.network.client(), &url, body, Duration::from_secs(30))
            .await
            .map_err(|error| {
                CodedError::new(ErrorCode::Unavailable, format!("cannot reach the leader at {url}: {error}"))
            })?;
        let bytes = response
            .bytes()
            .await
            .map_err(|error| CodedError::new(ErrorCode::Unavailable, format!("leader at {url}: {error}")))?;
        let result: std::result::Result<CommandResponse, CodedError> =
            drover_state::codec::decode(&bytes).map_err(|error| CodedError::internal(error.to_string()))?;
        result
    }

    /// Registers a job (or a new version of it) and creates its evaluation.
    pub async fn register_job(&self, job: Job) -> Result<RegisterJobResponse> {
        check_job(&job)?;
        let now = Timestamp::now();
        let eval = Evaluation::new(new_eval_id(), job.id.clone(), job.priority, EvalTrigger::JobRegister, now);
        let response = self.propose(Command::RegisterJob { job, eval, now }).await?.into_result()?;
        match response {
            CommandResponse::JobRegistered { index, version, changed, eval_id } => {
                Ok(RegisterJobResponse { eval_id, job_version: version, changed, index })
            }
            other => Err(CodedError::internal(format!("unexpected response to a job registration: {other}"))),
        }
    }

    /// Stops a job (and removes it with `purge`).
    pub async fn deregister_job(&self, job_id: &JobId, purge: bool) -> Result<DeregisterJobResponse> {
        let state = self.consistent_state().await?;
        let Some(job) = state.job(job_id) else {
            return Err(CodedError::not_found("job", job_id));
        };
        let now = Timestamp::now();
        let eval = Evaluation::new(new_eval_id(), job_id.clone(), job.priority, EvalTrigger::JobDeregister, now);
        let eval_id = eval.id.clone();
        let response =
            self.propose(Command::DeregisterJob { job_id: job_id.clone(), purge, eval, now }).await?.into_result()?;
        Ok(DeregisterJobResponse { eval_id, index: response.index() })
    }

    /// What registering `job` would do, without changing anything.
    pub async fn plan_job(&self, job: Job) -> Result<PlanResponse> {
        check_job(&job)?;
        let state = self.consistent_state().await?;
        let now = Timestamp::now();
        let current = state.job(&job.id).cloned();
        let mut simulated = State::clone(&state);
        let eval = Evaluation::new(new_eval_id(), job.id.clone(), job.priority, EvalTrigger::JobRegister, now);
        let response = simulated
            .apply(state.last_index() + 1, &Command::RegisterJob { job: job.clone(), eval: eval.clone(), now });
        let (next_version, changed) = match response {
            CommandResponse::JobRegistered { version, changed, .. } => (version, changed),
            CommandResponse::Rejected { error, .. } => return Err(error),
            CommandResponse::Applied { .. }
            | CommandResponse::React { .. }
            | CommandResponse::NodesRegistered { .. } => (0, true),
        };
        let registered = simulated.job(&job.id).cloned();
        let view = crate::view::StateView::new(&simulated);
        let plan = drover_scheduler::schedule(&view, registered.as_deref(), &eval, now, &mut rand::rng());
        let diff = match &current {
            Some(current) => drover_types::diff::job_diff(current, &job),
            None => Vec::new(),
        };
        Ok(PlanResponse { changed, next_version, changes: plan.annotations, failed: plan.failed, diff })
    }

    /// The agent-session registry.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Records heartbeats of nodes (from local sessions or forwarded by a
    /// follower).
    pub fn record_heartbeats<'a>(&self, node_ids: impl IntoIterator<Item = &'a drover_types::NodeId>) {
        self.inner.heartbeats.record(node_ids, Instant::now());
    }

    /// When the leader last heard from a node (`None` on followers or for
    /// nodes not heard since this server became leader).
    pub fn last_heartbeat(&self, node_id: &drover_types::NodeId) -> Option<Timestamp> {
        self.inner.heartbeats.last_seen_wall(node_id)
    }

    /// Stops Raft and every loop; tasks on agents are not touched.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        // The last task-state updates are committed before Raft stops.
        let flushed = self.inner.client_updates.flushed.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), flushed.cancelled()).await;
        // Each agent session tells its agent the server is going away.
        let sessions_closed = async {
            while self.sessions().num_connected().await > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), sessions_closed).await;
        self.save_usage_history().await;
        if let Err(error) = self.inner.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown failed");
        }
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

/// Checks a job submitted through the API before it is proposed: the CLI
/// validates job files fully, but API callers may send any JSON.
/// The checks every job meets, the same the job file reader runs
/// ([`Job::validate`]), with the same messages.
fn check_job(job: &Job) -> Result<()> {
    job.validate().map_err(|problems| CodedError::invalid(drover_types::validate::describe(&problems)))
}

fn load_or_create_server_id(data_dir: &std::path::Path) -> Result<u64> {
    let path = data_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            CodedError::internal(format!(
                "{} does not hold a server id; remove it only if this server is new",
                path.display()
            ))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = rand::random::<u64>() >> 1;
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|error| CodedError::internal(format!("cannot write {}: {error}", path.display())))?;
            Ok(id)
        }
        Err(error) => Err(CodedError::internal(format!("cannot read {}: {error}", path.display()))),
    }
}
