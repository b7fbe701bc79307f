//! Simulated agents for benchmarks: real WebSocket sessions to a real
//! server, but no tasks. A simulated agent registers, heartbeats, and
//! acknowledges every allocation it is given as running (and every stop as
//! complete) at once, and answers every `drover exec` at once with an
//! `uptime`-like line; `sim-reboot SECONDS` also closes its session and
//! comes back that much later (a reboot of known length).
//!
//! Like a real agent, a simulated one that cannot connect, is refused, or
//! loses its session tries again after a jittered exponential backoff, under
//! the same node id: a fleet that connects at once (a thundering herd, such
//! as every agent reconnecting after a server restart) spreads itself out
//! instead of giving up.
//!
//! Against a secure server (HTTPS and mutual TLS), a simulated agent first
//! enrols as a real one does (its own key and certificate request, the join
//! token's secret, a client pinned to the token's CA hash: see
//! [`super::enrol`]) and then opens `wss://` sessions presenting its node
//! certificate.
//!
//! Large fleets run in processes of their own (`drover bench sim-agents`,
//! hidden; [`SimProcesses`] starts them): an agent costs one open file in
//! its process and the server one more in its own, so the server and the
//! agents of a 10,000-node fleet do not share one process's limit.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use drover_proto::session::{self, AgentMessage, RequestBody, ResponseBody, ServerMessage};
use drover_types::{AllocClientStatus, AllocDesiredStatus, AllocId, NodeId, NodeLabels, Resources};
use drover_types::{ClientAllocUpdate, NodeRegistration};

/// First wait before trying again, doubled after each failure up to
/// [`MAX_BACKOFF`] (the real agent's values).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to answer `Hello` (it commits the
/// registration first).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);

/// Simulated agents per process started by [`SimProcesses`].
pub(crate) const AGENTS_PER_PROCESS: usize = 2_500;

/// Open files a simulated-agents process needs besides one per agent.
pub(crate) const SIM_PROCESS_RESERVED_FILES: u64 = 256;

/// Settings of one simulated agent.
#[derive(Clone)]
pub(crate) struct SimAgent {
    pub(crate) server: String,
    pub(crate) name: String,
    pub(crate) hostgroup: String,
    /// Counts the heartbeats sent, when set.
    pub(crate) heartbeats: Option<Arc<AtomicU64>>,
    /// TLS presenting the node certificate (`wss://`); `None` for an
    /// insecure server (`ws://`).
    pub(crate) tls: Option<tokio_tungstenite::Connector>,
}

impl std::fmt::Debug for SimAgent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SimAgent")
            .field("server", &self.server)
            .field("name", &self.name)
            .field("hostgroup", &self.hostgroup)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// How one session ended.
enum SessionEnd {
    /// `stop` was cancelled.
    Stopped,
    /// The session was established and later lost: reconnect soon.
    Lost(String),
    /// No session: cannot connect, refused, or no `Welcome`.
    Failed(String),
    /// Asked to reboot (`drover exec` of `sim-reboot SECONDS`): away this
    /// long, then back under the same node id.
    Rebooting(Duration),
}

/// How long a `sim-reboot SECONDS` command keeps the simulated machine
/// away (machine workflow benchmarks); `None` for any other message.
fn reboot_asked(message: &ServerMessage) -> Option<Duration> {
    let ServerMessage::Request { body: RequestBody::Exec { command, .. }, .. } = message else { return None };
    let seconds: f64 = command.trim().strip_prefix("sim-reboot ")?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Jittered exponential backoff, as the real agent's: the wait doubles
/// after every failure, plus up to a quarter of it at random so that agents
/// that failed together do not all come back together.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: FIRST_BACKOFF }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    /// The wait before the next attempt.
    fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.next;
        let jitter_millis = rng.random_range(0..=base.as_millis() as u64 / 4);
        self.next = (base * 2).min(MAX_BACKOFF);
        base + Duration::from_millis(jitter_millis)
    }
}

impl SimAgent {
    /// The node id: the same for every session of this agent (a
    /// reconnection registers the same node again, as a real agent's does
    /// from its `node-id` file), different for the same name in another
    /// process.
    fn node_id(&self) -> NodeId {
        static PROCESS_SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let salt = *PROCESS_SALT.get_or_init(rand::random);
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.name, &mut hasher);
        let name_hash = std::hash::Hasher::finish(&hasher);
        NodeId::new(uuid::Uuid::from_u64_pair(salt, name_hash).to_string())
    }

    fn registration(&self) -> NodeRegistration {
        let attributes: BTreeMap<String, String> = [
            ("kernel.name", "linux"),
            ("os.name", "debian"),
            ("cpu.arch", "amd64"),
            ("unique.hostname", self.name.as_str()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        NodeRegistration {
            id: self.node_id(),
            name: self.name.clone(),
            labels: NodeLabels { hostgroup: Some(self.hostgroup.clone()), ..Default::default() },
            attributes,
            resources: Resources { cpu_mhz: 64_000, memory_mb: 256 * 1024 },
            agent_version: "simulated".to_owned(),
        }
    }

    /// Runs until `stop` is cancelled, connecting again (with backoff)
    /// whenever the session cannot be opened or is lost.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new();
        // Allocations acknowledged as running, across sessions: a new
        // session's full list is not acknowledged twice.
        let mut acknowledged: HashSet<AllocId> = HashSet::new();
        loop {
            match self.session(&stop, &mut acknowledged).await {
                SessionEnd::Stopped => return,
                SessionEnd::Lost(reason) => {
                    tracing::debug!(agent = %self.name, %reason, "simulated session lost; reconnecting");
                    backoff.reset();
                }
                SessionEnd::Failed(reason) => {
                    tracing::debug!(agent = %self.name, %reason, "simulated session not opened; retrying");
                }
                SessionEnd::Rebooting(away) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(away) => {}
                    }
                    backoff.reset();
                    continue;
                }
            }
            let delay = backoff.next_delay(&mut rand::rng());
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One session: connect, `Hello`, wait for `Welcome`, then serve until
    /// the session ends or `stop` is cancelled.
    async fn session(&self, stop: &CancellationToken, acknowledged: &mut HashSet<AllocId>) -> SessionEnd {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}{}", self.server, drover_proto::paths::AGENT_SESSION);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(session::READ_BUFFER_BYTES);
        let connecting = tokio_tungstenite::connect_async_tls_with_config(&url, Some(config), false, self.tls.clone());
        let socket = tokio::select! {
            () = stop.cancelled() => return SessionEnd::Stopped,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting) => match connected {
                Ok(Ok((socket, _))) => socket,
                Ok(Err(error)) => return SessionEnd::Failed(format!("cannot connect: {error}")),
                Err(_) => return SessionEnd::Failed(format!("cannot connect within {CONNECT_TIMEOUT:?}")),
            },
        };
        let (mut sink, mut stream) = socket.split();
        let hello = AgentMessage::Hello { protocol: drover_proto::SESSION_PROTOCOL, registration: self.registration() };
        if let Err(reason) = send(&mut sink, &hello).await {
            return SessionEnd::Failed(reason);
        }
        let welcome = async {
            loop {
                match stream.next().await {
                    Some(Ok(Message::Binary(bytes))) => return session::decode::<ServerMessage>(&bytes).ok(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
        };
        let heartbeat_interval = tokio::select! {
            () = stop.cancelled() => return SessionEnd::Stopped,
            answer = tokio::time::timeout(WELCOME_TIMEOUT, welcome) => match answer {
                Ok(Some(ServerMessage::Welcome { heartbeat_interval_ms, .. })) => {
                    Duration::from_millis(heartbeat_interval_ms.max(100))
                }
                Ok(Some(ServerMessage::Refused { message })) => return SessionEnd::Failed(format!("refused: {message}")),
                Ok(_) => return SessionEnd::Failed("the session closed before Welcome".to_owned()),
                Err(_) => return SessionEnd::Failed(format!("no Welcome within {WELCOME_TIMEOUT:?}")),
            },
        };
        let mut heartbeat = tokio::time::interval(heartbeat_interval);
        loop {
            tokio::select! {
                () = stop.cancelled() => return SessionEnd::Stopped,
                _ = heartbeat.tick() => {
                    if let Err(reason) = send(&mut sink, &AgentMessage::Heartbeat).await {
                        return SessionEnd::Lost(reason);
                    }
                    if let Some(counter) = &self.heartbeats {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                frame = stream.next() => {
                    let bytes = match frame {
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return SessionEnd::Lost(error.to_string()),
                        None => return SessionEnd::Lost("the server closed the session".to_owned()),
                    };
                    let message = match session::decode::<ServerMessage>(&bytes) {
                        Ok(message) => message,
                        Err(error) => return SessionEnd::Lost(format!("undecodable frame: {error}")),
                    };
                    let reboot = reboot_asked(&message);
                    if let Some(answer) = answer(message, acknowledged)
                        && let Err(reason) = send(&mut sink, &answer).await
                    {
                        return SessionEnd::Lost(reason);
                    }
                    if let Some(away) = reboot {
                        let _ = sink.close().await;
                        return SessionEnd::Rebooting(away);
                    }
                }
            }
        }
    }
}

/// What a simulated agent answers to a server's message, if anything.
fn answer(message: ServerMessage, acknowledged: &mut HashSet<AllocId>) -> Option<AgentMessage> {
    match message {
        ServerMessage::Allocations { allocs, .. } => {
            let mut updates = Vec::new();
            for assignment in allocs {
                let alloc = assignment.alloc;
                let (status, description) = if alloc.desired_status == AllocDesiredStatus::Run {
                    (AllocClientStatus::Running, "simulated")
                } else {
                    (AllocClientStatus::Complete, "simulated stop")
                };
                if status == AllocClientStatus::Running && !acknowledged.insert(alloc.id.clone()) {
                    continue;
                }
                updates.push(ClientAllocUpdate {
                    alloc_id: alloc.id,
                    client_status: status,
                    client_description: description.to_owned(),
                    task_states: BTreeMap::new(),
                    checks: Vec::new(),
                    deployment_health: None,
                });
            }
            (!updates.is_empty()).then_some(AgentMessage::AllocUpdates { updates })
        }
        ServerMessage::Request { request_id, body: RequestBody::Exec { .. } } => {
            // Answer at once, as a fast `uptime` would: what is measured
            // is drover's path, not the command.
            let body = ResponseBody::Exited {
                exit_code: Some(0),
                error: String::new(),
                timed_out: false,
                stdout: b" 12:00:00 up 42 days,  3:14,  0 users,  load average: 0.00, 0.01, 0.05\n".to_vec(),
                stderr: Vec::new(),
                truncated: false,
            };
            Some(AgentMessage::Response { request_id, body })
        }
        ServerMessage::Welcome { .. }
        | ServerMessage::Request { .. }
        | ServerMessage::Refused { .. }
        | ServerMessage::LogsAck { .. }
        | ServerMessage::Tls { .. }
        | ServerMessage::TemplateInputs(_) => None,
    }
}

async fn send<S>(sink: &mut S, message: &AgentMessage) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let frame = session::encode(message).map_err(|error| error.to_string())?;
    sink.send(Message::Binary(frame.into())).await.map_err(|error| error.to_string())
}

/// The name of simulated agent `number`.
pub(crate) fn agent_name(prefix: &str, number: usize) -> String {
    format!("{prefix}{number:05}")
}

/// Starts a simulated agent per name (host group `bench`) against the
/// fleet's server and waits until every node is ready. They run until
/// `stop` is cancelled; `heartbeats` counts what they send. Against a
/// secure server every agent enrols first (at most
/// [`super::enrol::MAX_ENROLMENTS_IN_FLIGHT`] at a time) and connects with
/// its node certificate.
pub(crate) async fn start_many(
    fleet: &super::fleet::Fleet,
    names: &[String],
    heartbeats: Option<Arc<AtomicU64>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut connectors: Vec<Option<tokio_tungstenite::Connector>> = vec![None; names.len()];
    if let Some(security) = &fleet.security {
        let enrolled =
            super::enrol::enrol_many(&fleet.address, security, names, super::enrol::MAX_ENROLMENTS_IN_FLIGHT).await?;
        connectors = enrolled.into_iter().map(|enrolment| Some(enrolment.tls)).collect();
    }
    for (name, tls) in names.iter().zip(connectors) {
        let agent = SimAgent {
            server: fleet.address.clone(),
            name: name.clone(),
            hostgroup: "bench".to_owned(),
            heartbeats: heartbeats.clone(),
            tls,
        };
        tokio::spawn(agent.run(stop.clone()));
    }
    fleet.wait_ready(names).await
}

/// `drover bench sim-agents` (hidden): runs agents `start..start + count`
/// in this process until its standard input closes (the benchmark that
/// started it ended, or died) or it is told to stop (SIGTERM, SIGINT).
pub(crate) async fn run_process(
    servers: Vec<String>,
    count: usize,
    prefix: String,
    start: usize,
    hostgroup: String,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!servers.is_empty(), "--servers needs at least one address");
    super::ensure_open_files(
        count as u64 + SIM_PROCESS_RESERVED_FILES,
        &format!("{count} simulated agents (one connection each)"),
    )?;
    let stop = CancellationToken::new();
    let mut agents = tokio::task::JoinSet::new();
    for number in start..start + count {
        let server = servers[number % servers.len()].clone();
        let agent = SimAgent {
            server,
            name: agent_name(&prefix, number),
            hostgroup: hostgroup.clone(),
            heartbeats: None,
            tls: None,
        };
        agents.spawn(agent.run(stop.clone()));
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        () = stdin_closed() => {}
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while agents.join_next().await.is_some() {} }).await;
    Ok(ExitCode::SUCCESS)
}

/// Returns once standard input reaches its end (or cannot be read).
async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0u8; 64];
    while let Ok(read) = stdin.read(&mut buffer).await {
        if read == 0 {
            return;
        }
    }
}

/// Simulated agents running in processes of their own (`drover bench
/// sim-agents`), [`AGENTS_PER_PROCESS`] each. Every process is killed by
/// its pid (SIGKILL, then reaped) when this is dropped; should this process
/// die first, their standard input closes and they exit by themselves.
pub(crate) struct SimProcesses {
    processes: Vec<SimProcess>,
}

struct SimProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl SimProcesses {
    /// Starts `num_agents` simulated agents named `{prefix}00000`… against
    /// `server`, logging each process's output to `dir/sim-agents-N.log`.
    pub(crate) fn spawn(
        server: &str,
        num_agents: usize,
        prefix: &str,
        hostgroup: &str,
        dir: &Path,
    ) -> anyhow::Result<SimProcesses> {
        let executable = std::env::current_exe()?;
        let mut processes = SimProcesses { processes: Vec::new() };
        for (process_number, start) in (0..num_agents).step_by(AGENTS_PER_PROCESS).enumerate() {
            let count = AGENTS_PER_PROCESS.min(num_agents - start);
            let log = dir.join(format!("sim-agents-{process_number}.log"));
            let log_file = std::fs::File::create(&log)?;
            let child = std::process::Command::new(&executable)
                .args(["bench", "sim-agents", "--servers", server, "--prefix", prefix, "--hostgroup", hostgroup])
                .args(["--count", &count.to_string(), "--start", &start.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::from(log_file.try_clone()?))
                .stderr(Stdio::from(log_file))
                .env("DROVER_LOG", "warn")
                .spawn()?;
            processes.processes.push(SimProcess { child: Some(child), log });
        }
        Ok(processes)
    }

    /// The number of processes.
    pub(crate) fn len(&self) -> usize {
        self.processes.len()
    }

    /// Fails when one of the processes has exited, with the end of its log.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        for process in &mut self.processes {
            let Some(child) = process.child.as_mut() else { continue };
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
                anyhow::bail!(
                    "a simulated-agents process (pid {}) exited with {status}; the end of {}:\n{}",
                    child.id(),
                    process.log.display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// kill -9 of every process, by pid, and reap them.
    pub(crate) fn kill(&mut self) {
        for process in &mut self.processes {
            if let Some(mut child) = process.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for SimProcesses {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use rand::SeedableRng;

    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_maximum_and_resets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new();
        let mut base = FIRST_BACKOFF;
        for _ in 0..12 {
            let delay = backoff.next_delay(&mut rng);
            assert!(delay >= base && delay <= base + base / 4, "{delay:?} for {base:?}");
            base = (base * 2).min(MAX_BACKOFF);
        }
        assert_eq!(backoff.next, MAX_BACKOFF);
        backoff.reset();
        assert!(backoff.next_delay(&mut rng) <= FIRST_BACKOFF + FIRST_BACKOFF / 4);
    }

    /// A thundering herd: 300 simulated agents dial a real server (HTTP
    /// API, WebSocket sessions, Raft with fsync) all at once, as a fleet
    /// does after a server restart, and are all registered within the
    /// deadline; their registrations share Raft entries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_herd_of_300_agents_connecting_at_once_is_registered_within_the_deadline() {
        const NUM_AGENTS: usize = 300;
        const DEADLINE: Duration = Duration::from_secs(60);
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let config = drover_server::ServerConfig::new(dir.path().join("server"), address.clone());
        let server = drover_server::Server::start(config).await.unwrap();
        let router = drover_api::router(server.clone());
        let serving = tokio::spawn(async move { axum::serve(listener, router).await });
        let leader_deadline = Instant::now() + Duration::from_secs(30);
        while !server.status().is_leader {
            assert!(Instant::now() < leader_deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let index_before = server.state().last_index();

        let stop = CancellationToken::new();
        let started = Instant::now();
        let agents: Vec<SimAgent> = (0..NUM_AGENTS)
            .map(|number| SimAgent {
                server: address.clone(),
                name: agent_name("herd", number),
                hostgroup: "bench".to_owned(),
                heartbeats: None,
                tls: None,
            })
            .collect();
        for agent in agents {
            tokio::spawn(agent.run(stop.clone()));
        }
        while server.state().num_nodes() < NUM_AGENTS {
            assert!(
                started.elapsed() < DEADLINE,
                "{} of {NUM_AGENTS} agents registered after {DEADLINE:?}",
                server.state().num_nodes()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let num_entries = server.state().last_index() - index_before;
        stop.cancel();
        server.shutdown().await;
        serving.abort();
        eprintln!("{NUM_AGENTS} agents registered in {elapsed:?} using {num_entries} Raft entries");
        assert!(
            num_entries < NUM_AGENTS as u64 / 2,
            "registrations are group-committed: {num_entries} entries for {NUM_AGENTS} agents"
        );
    }
}
