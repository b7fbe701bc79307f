//! The agent's session with the servers: connect (trying each server in
//! turn, with exponential backoff), say `Hello`, heartbeat, apply
//! allocation lists, send task-state updates, answer requests.
//!
//! Updates are kept until sent; after every (re)connection the agent also
//! sends the latest state of every allocation, so a server that restarted
//! or a new leader learns everything it may have missed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use drover_proto::session::{self, AgentMessage, RequestBody, ResponseBody, ServerMessage};
use drover_types::AllocId;
use drover_types::{ClientAllocUpdate, NodeRegistration};

use crate::logship::{LogShipper, SHIP_WINDOW_LINES};
use crate::manager::AllocManager;

/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the server may take to accept a registration (it may be
/// waiting for a leader).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// A session on which nothing (not even a pong) arrived for this many
/// heartbeat intervals is dead: the server vanished without closing it (a
/// cut link, a frozen machine), and the agent moves to another server.
const SILENT_INTERVALS: u32 = 3;
/// How long connecting to a server may take (a cut link never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the machine's usage is sampled and sent.
const METRICS_INTERVAL: Duration = Duration::from_secs(10);

/// What a session works with, besides the socket.
pub(crate) struct Machine {
    manager: Arc<AllocManager>,
    shipper: Arc<LogShipper>,
    sampler: Arc<std::sync::Mutex<drover_metrics::Sampler>>,
    exec: crate::exec::ExecPolicy,
    /// Sessions opened since the agent started (`drover_agent_sessions_total`).
    sessions: std::sync::atomic::AtomicU64,
}

impl Machine {
    pub(crate) fn new(manager: Arc<AllocManager>, shipper: Arc<LogShipper>, exec: crate::exec::ExecPolicy) -> Self {
        Machine {
            manager,
            shipper,
            sampler: Arc::new(std::sync::Mutex::new(drover_metrics::Sampler::new())),
            exec,
            sessions: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Why a session ended.
#[derive(Debug, PartialEq, Eq)]
enum SessionEnd {
    Shutdown,
    Disconnected(String),
    /// Nothing arrived for [`SILENT_INTERVALS`] heartbeats.
    Silent(String),
    /// The node's labels changed (a configuration reload): register again.
    Relabelled,
    /// The server said it is stopping ("going away"): another one takes over.
    ServerStopping,
}

impl SessionEnd {
    /// Why the session ended, in words.
    fn reason(&self) -> String {
        match self {
            SessionEnd::Shutdown => "this agent is stopping".to_owned(),
            SessionEnd::Disconnected(reason) | SessionEnd::Silent(reason) => reason.clone(),
            SessionEnd::Relabelled => "the node's labels changed".to_owned(),
            SessionEnd::ServerStopping => "the server is stopping".to_owned(),
        }
    }
}

pub(crate) async fn run(
    configured_servers: Vec<String>,
    tls: Option<Arc<crate::enrol::NodeTls>>,
    mut registration: tokio::sync::watch::Receiver<NodeRegistration>,
    machine: Machine,
    mut updates: mpsc::UnboundedReceiver<ClientAllocUpdate>,
    shutdown: CancellationToken,
    done: Arc<Notify>,
) {
    let mut servers = configured_servers.clone();
    let mut next_server = 0usize;
    let mut backoff = Duration::from_millis(100);
    let mut pending: BTreeMap<AllocId, ClientAllocUpdate> = BTreeMap::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let address = servers[next_server % servers.len()].clone();
        next_server += 1;
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}{}", crate::enrol::bare(&address), drover_proto::paths::AGENT_SESSION);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(session::READ_BUFFER_BYTES)
            .max_message_size(Some(session::MAX_MESSAGE_BYTES))
            .max_frame_size(Some(session::MAX_MESSAGE_BYTES));
        // Built per connection: a renewed certificate is presented at the next one.
        let connector = match tls.as_ref().map(|tls| tls.client_config()).transpose() {
            Ok(tls_config) => tls_config.map(|tls_config| tokio_tungstenite::Connector::Rustls(Arc::new(tls_config))),
            Err(error) => {
                tracing::error!(%error, "cannot set up TLS to the servers");
                None
            }
        };
        let connecting = tokio_tungstenite::connect_async_tls_with_config(&url, Some(config), false, connector);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok((socket, _))) => {
                tracing::info!(server = %address, "connected to server");
                machine.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let outcome =
                    connected(socket, &mut registration, &machine, tls.as_ref(), &mut updates, &mut pending, &shutdown)
                        .await;
                match outcome {
                    Ok((SessionEnd::Shutdown, _)) => break,
                    Ok((SessionEnd::Relabelled, _)) => {
                        // The same server at once, with the new labels.
                        tracing::info!(server = %address, "registering again with new labels");
                        next_server -= 1;
                        continue;
                    }
                    Ok((end, known_servers)) => {
                        // A silent or stopping server is not asked again first.
                        let silent = matches!(end, SessionEnd::Silent(_) | SessionEnd::ServerStopping);
                        if end == SessionEnd::ServerStopping {
                            tracing::info!(server = %address, "the server is stopping; moving to another");
                        } else {
                            tracing::warn!(server = %address, reason = %end.reason(), "session ended; reconnecting");
                        }
                        if !known_servers.is_empty() {
                            servers = merge_servers(&configured_servers, &known_servers);
                        }
                        backoff = Duration::from_millis(100);
                        // The same server again first, unless it went silent.
                        let position = servers.iter().position(|server| *server == address);
                        next_server = position.map_or(0, |position| position + usize::from(silent));
                    }
                    Err(reason) => tracing::warn!(server = %address, %reason, "session refused"),
                }
            }
            Ok(Err(error)) => tracing::debug!(server = %address, %error, "cannot connect"),
            Err(_) => tracing::debug!(server = %address, "cannot connect: no answer within 5 s"),
        }
        let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 4);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff + Duration::from_millis(jitter)) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    done.notify_waiters();
}

fn merge_servers(configured: &[String], known: &[String]) -> Vec<String> {
    let mut servers: Vec<String> = known.to_vec();
    for server in configured {
        if !servers.contains(server) {
            servers.push(server.clone());
        }
    }
    servers
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connected(
    socket: Socket,
    registration: &mut tokio::sync::watch::Receiver<NodeRegistration>,
    machine: &Machine,
    tls: Option<&Arc<crate::enrol::NodeTls>>,
    updates: &mut mpsc::UnboundedReceiver<ClientAllocUpdate>,
    pending: &mut BTreeMap<AllocId, ClientAllocUpdate>,
    shutdown: &CancellationToken,
) -> Result<(SessionEnd, Vec<String>), String> {
    let Machine { manager, shipper, sampler, exec, sessions } = machine;
    let (mut sink, mut stream) = socket.split();
    let node_id = registration.borrow().id.clone();
    let hello = AgentMessage::Hello {
        protocol: drover_proto::SESSION_PROTOCOL,
        registration: registration.borrow_and_update().clone(),
    };
    send(&mut sink, &hello).await?;

    let welcome = async {
        loop {
            if let Some(message) = next_message(&mut stream).await? {
                return Ok::<_, SessionEnd>(message);
            }
        }
    };
    let (heartbeat_interval, servers) = match tokio::time::timeout(WELCOME_TIMEOUT, welcome).await {
        Ok(Ok(ServerMessage::Welcome { heartbeat_interval_ms, servers, .. })) => {
            (Duration::from_millis(heartbeat_interval_ms.max(100)), servers)
        }
        Ok(Ok(ServerMessage::Refused { message })) => return Err(message),
        Ok(Ok(_)) => return Err("the server did not answer Hello with Welcome".to_owned()),
        Ok(Err(end)) => return Err(end.reason()),
        Err(_) => return Err("no Welcome within 30 s".to_owned()),
    };

    for update in manager.current_updates().await {
        pending.entry(update.alloc_id.clone()).or_insert(update);
    }
    if let Err(reason) = flush_pending(&mut sink, pending).await {
        return Ok((SessionEnd::Disconnected(reason), servers));
    }
    let (outbound_sender, mut outbound) = mpsc::channel::<AgentMessage>(256);
    let mut requests: HashMap<u64, CancellationToken> = HashMap::new();
    let mut heartbeat = tokio::time::interval(heartbeat_interval);
    let mut metrics = tokio::time::interval(METRICS_INTERVAL);
    metrics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut last_tick = tokio::time::Instant::now();
    let silence_limit = heartbeat_interval * SILENT_INTERVALS;
    // Lines not acknowledged by the last session are sent again.
    let mut logs =
        LogWindow { sent_upto: shipper.acked_upto(), acked_upto: shipper.acked_upto(), reported_dropped: None };
    loop {
        if let Err(reason) = ship_logs(&mut sink, shipper, &mut logs).await {
            return Ok((SessionEnd::Disconnected(reason), servers));
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                flush_pending(&mut sink, pending).await.ok();
                let _ = sink.close().await;
                return Ok((SessionEnd::Shutdown, servers));
            }
            Ok(()) = registration.changed() => {
                // `Hello` is said once per session: a new one carries the labels.
                flush_pending(&mut sink, pending).await.ok();
                let _ = sink.close().await;
                return Ok((SessionEnd::Relabelled, servers));
            }
            _ = heartbeat.tick() => {
                // A late tick means this process was stopped or starved (SIGSTOP,
                // a suspended VM), not that the server went quiet: give the
                // server a fresh chance to answer.
                if last_tick.elapsed() > heartbeat_interval * 2 {
                    last_heard = tokio::time::Instant::now();
                }
                last_tick = tokio::time::Instant::now();
                if last_heard.elapsed() > silence_limit {
                    let reason = format!("nothing heard from the server for {} s", silence_limit.as_secs());
                    return Ok((SessionEnd::Silent(reason), servers));
                }
                if let Err(reason) = send(&mut sink, &AgentMessage::Heartbeat).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
                // The server's WebSocket answers with a pong: proof of life
                // even when it has nothing to say.
                if let Err(error) = sink.send(Message::Ping(Vec::new().into())).await {
                    return Ok((SessionEnd::Disconnected(format!("send failed: {error}")), servers));
                }
                let dropped = shipper.dropped_lines();
                if logs.reported_dropped != Some(dropped) && (dropped > 0 || logs.reported_dropped.is_some()) {
                    if let Err(reason) = send(&mut sink, &AgentMessage::LogStats { dropped_lines: dropped }).await {
                        return Ok((SessionEnd::Disconnected(reason), servers));
                    }
                    logs.reported_dropped = Some(dropped);
                }
            }
            () = shipper.appended.notified(), if logs.has_room() => {}
            _ = metrics.tick() => {
                let mut sample = sample_usage(manager, sampler).await;
                if let Some(agent) = sample.agent.as_mut() {
                    agent.sessions = sessions.load(std::sync::atomic::Ordering::Relaxed);
                    agent.log_lines_read = shipper.readable_upto();
                    agent.log_lines_acknowledged = shipper.acked_upto();
                }
                if let Err(reason) = send(&mut sink, &AgentMessage::Metrics { sample: Box::new(sample) }).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
            }
            Some(update) = updates.recv() => {
                // Sent at once (a failed task may trigger a hammer), with
                // whatever else is already waiting.
                pending.insert(update.alloc_id.clone(), update);
                while let Ok(update) = updates.try_recv() {
                    pending.insert(update.alloc_id.clone(), update);
                }
                if let Err(reason) = flush_pending(&mut sink, pending).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
            }
            Some(message) = outbound.recv() => {
                if let Err(reason) = send(&mut sink, &message).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
            }
            message = next_message(&mut stream) => match message {
                Ok(None) => last_heard = tokio::time::Instant::now(),
                Ok(Some(ServerMessage::LogsAck { upto_seq })) => {
                    last_heard = tokio::time::Instant::now();
                    if upto_seq > logs.acked_upto {
                        logs.acked_upto = upto_seq;
                        shipper.ack(upto_seq);
                    }
                }
                Ok(Some(ServerMessage::Allocations { node, allocs, full, .. })) => {
                    last_heard = tokio::time::Instant::now();
                    manager.reconcile(node.map(|node| *node), allocs, full).await;
                }
                Ok(Some(ServerMessage::Request { request_id, body })) => {
                    last_heard = tokio::time::Instant::now();
                    handle_request(request_id, body, manager, exec, &outbound_sender, &mut requests);
                }
                Ok(Some(ServerMessage::Refused { message })) => {
                    return Ok((SessionEnd::Disconnected(message), servers));
                }
                Ok(Some(ServerMessage::Welcome { .. })) => last_heard = tokio::time::Instant::now(),
                Ok(Some(ServerMessage::TemplateInputs(inputs))) => {
                    last_heard = tokio::time::Instant::now();
                    crate::templates::publish(&node_id, *inputs);
                }
                Ok(Some(ServerMessage::Tls { trusted_cas, issuer })) => {
                    last_heard = tokio::time::Instant::now();
                    if let Some(tls) = tls {
                        tls.follow_servers(&trusted_cas, &issuer);
                    }
                }
                Err(end) => return Ok((end, servers)),
            },
        }
    }
}

/// The machine's usage and its running tasks' (by their process trees).
async fn sample_usage(
    manager: &Arc<AllocManager>,
    sampler: &Arc<std::sync::Mutex<drover_metrics::Sampler>>,
) -> drover_metrics::NodeSample {
    let probes: Vec<drover_metrics::TaskProbe> = manager
        .current_updates()
        .await
        .into_iter()
        .flat_map(|update| {
            let alloc_id = update.alloc_id.to_string();
            update.task_states.into_iter().filter_map(move |(task, state)| {
                let pid = state.pid.filter(|_| state.state == drover_types::TaskLifecycleState::Running)?;
                Some(drover_metrics::TaskProbe { alloc_id: alloc_id.clone(), task, cgroup: None, pids: vec![pid] })
            })
        })
        .collect();
    let sampler = Arc::clone(sampler);
    tokio::task::spawn_blocking(move || {
        let now_ms = drover_types::Timestamp::now().as_millis();
        let mut sampler = sampler.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut sample = sampler.sample(now_ms, &probes);
        sample.agent = sampler.own_process(sample.boot_time_secs);
        sample
    })
    .await
    .unwrap_or_default()
}

fn handle_request(
    request_id: u64,
    body: RequestBody,
    manager: &Arc<AllocManager>,
    exec: &crate::exec::ExecPolicy,
    outbound: &mpsc::Sender<AgentMessage>,
    requests: &mut HashMap<u64, CancellationToken>,
) {
    requests.retain(|_, token| !token.is_cancelled());
    match body {
        RequestBody::ReadLogs { alloc_id, task, stream, follow, tail_bytes } => {
            let token = CancellationToken::new();
            requests.insert(request_id, token.clone());
            let request = crate::logs::LogRequest {
                request_id,
                alloc_dir: manager.alloc_dir(&alloc_id),
                task,
                stream,
                follow,
                tail_bytes,
            };
            tokio::spawn(crate::logs::serve(request, outbound.clone(), token));
        }
        RequestBody::Exec { command, user, timeout_ms, max_output_bytes, root_allowed, stdin } => {
            let token = CancellationToken::new();
            requests.insert(request_id, token.clone());
            let outbound = outbound.clone();
            let request = crate::exec::ExecRequest {
                command,
                user: user.or_else(|| exec.default_user.clone()),
                timeout: Duration::from_millis(timeout_ms),
                max_output_bytes: usize::try_from(max_output_bytes).unwrap_or(usize::MAX),
                root_allowed,
                stdin,
            };
            let allow_exec = exec.allowed;
            tokio::spawn(async move {
                let body = if allow_exec {
                    crate::exec::run(request, token.clone()).await
                } else {
                    ResponseBody::Exited {
                        exit_code: None,
                        error: "exec is disabled on this node's agent (started with --disable-exec)".to_owned(),
                        timed_out: false,
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        truncated: false,
                    }
                };
                // Done: a later Cancel of this id finds nothing to stop.
                token.cancel();
                let _ = outbound.send(AgentMessage::Response { request_id, body }).await;
            });
        }
        RequestBody::RestartTasks { .. } | RequestBody::SignalTasks { .. } | RequestBody::ExecInTask { .. } => {
            let token = CancellationToken::new();
            requests.insert(request_id, token.clone());
            let (manager, outbound, exec) = (Arc::clone(manager), outbound.clone(), exec.clone());
            tokio::spawn(async move {
                let body = crate::alloc_control::serve(body, &manager, &exec, token.clone()).await;
                token.cancel();
                let _ = outbound.send(AgentMessage::Response { request_id, body }).await;
            });
        }
        RequestBody::Cancel { request_id: canceled } => {
            if let Some(token) = requests.remove(&canceled) {
                token.cancel();
            }
        }
    }
}

async fn flush_pending(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    pending: &mut BTreeMap<AllocId, ClientAllocUpdate>,
) -> Result<(), String> {
    if pending.is_empty() {
        return Ok(());
    }
    let message = AgentMessage::AllocUpdates { updates: pending.values().cloned().collect() };
    send(sink, &message).await?;
    pending.clear();
    Ok(())
}

async fn send(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    message: &AgentMessage,
) -> Result<(), String> {
    let frame = session::encode(message).map_err(|error| error.to_string())?;
    sink.send(Message::Binary(frame.into())).await.map_err(|error| format!("send failed: {error}"))
}

/// The next frame: a message, or `None` for a control frame (a pong); the
/// end of the session when there is none.
async fn next_message(
    stream: &mut futures_util::stream::SplitStream<Socket>,
) -> Result<Option<ServerMessage>, SessionEnd> {
    match stream.next().await {
        // A message this agent cannot read (a newer server's) is skipped,
        // not the end of the session: servers send an older agent nothing
        // it cannot read (docs/operations.md, "Upgrades"), so this is a
        // bug worth a warning, not a reason to drop the node.
        Some(Ok(Message::Binary(frame))) => match session::decode::<ServerMessage>(&frame) {
            Ok(message) => Ok(Some(message)),
            Err(error) => {
                tracing::warn!(%error, "skipped a message from the server this agent cannot read");
                Ok(None)
            }
        },
        Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Away => Err(SessionEnd::ServerStopping),
        Some(Ok(Message::Close(_))) | None => Err(SessionEnd::Disconnected("the server closed the session".to_owned())),
        Some(Ok(_)) => Ok(None),
        Some(Err(error)) => Err(SessionEnd::Disconnected(format!("receive failed: {error}"))),
    }
}

/// Where log shipping stands in one session.
struct LogWindow {
    /// The highest seq sent on this session.
    sent_upto: u64,
    /// The highest seq the server acknowledged.
    acked_upto: u64,
    /// The dropped-lines total last told to the server.
    reported_dropped: Option<u64>,
}

impl LogWindow {
    fn has_room(&self) -> bool {
        self.sent_upto.saturating_sub(self.acked_upto) < SHIP_WINDOW_LINES
    }
}

/// Sends spooled lines while the window has room.
async fn ship_logs(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    shipper: &Arc<LogShipper>,
    window: &mut LogWindow,
) -> Result<(), String> {
    while window.has_room() && shipper.readable_upto() > window.sent_upto {
        let (last_seq, lines) = match shipper.read_batch(window.sent_upto + 1) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, "cannot read the log spool");
                return Ok(());
            }
        };
        if last_seq <= window.sent_upto {
            return Ok(());
        }
        window.sent_upto = last_seq;
        if !lines.is_empty() {
            send(sink, &AgentMessage::Logs { lines }).await?;
        }
    }
    Ok(())
}
