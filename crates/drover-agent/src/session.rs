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
use tokio_util::sync::CancellationToken;

use drover_proto::session::{self, AgentMessage, RequestBody, ServerMessage};
use drover_state::{ClientAllocUpdate, NodeRegistration};
use drover_types::AllocId;

use crate::manager::AllocManager;

/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the server may take to accept a registration (it may be
/// waiting for a leader).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// How often pending task-state updates are flushed.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Why a session ended.
enum SessionEnd {
    Shutdown,
    Disconnected(String),
}

pub(crate) async fn run(
    configured_servers: Vec<String>,
    registration: NodeRegistration,
    manager: Arc<AllocManager>,
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
        let url = format!("ws://{}/v1/agent/session", address.trim_start_matches("http://"));
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(session::READ_BUFFER_BYTES);
        match tokio_tungstenite::connect_async_with_config(&url, Some(config), false).await {
            Ok((socket, _)) => {
                tracing::info!(server = %address, "connected to server");
                let outcome = connected(socket, &registration, &manager, &mut updates, &mut pending, &shutdown).await;
                match outcome {
                    Ok((SessionEnd::Shutdown, _)) => break,
                    Ok((SessionEnd::Disconnected(reason), known_servers)) => {
                        tracing::warn!(server = %address, %reason, "session ended; reconnecting");
                        if !known_servers.is_empty() {
                            servers = merge_servers(&configured_servers, &known_servers);
                        }
                        backoff = Duration::from_millis(100);
                        // Prefer the same server again first.
                        next_server = next_server.saturating_sub(1);
                    }
                    Err(reason) => tracing::warn!(server = %address, %reason, "session refused"),
                }
            }
            Err(error) => tracing::debug!(server = %address, %error, "cannot connect"),
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
    registration: &NodeRegistration,
    manager: &Arc<AllocManager>,
    updates: &mut mpsc::UnboundedReceiver<ClientAllocUpdate>,
    pending: &mut BTreeMap<AllocId, ClientAllocUpdate>,
    shutdown: &CancellationToken,
) -> Result<(SessionEnd, Vec<String>), String> {
    let (mut sink, mut stream) = socket.split();
    let hello = AgentMessage::Hello { protocol: drover_proto::SESSION_PROTOCOL, registration: registration.clone() };
    send(&mut sink, &hello).await?;

    let (heartbeat_interval, servers) = match tokio::time::timeout(WELCOME_TIMEOUT, next_message(&mut stream)).await {
        Ok(Ok(ServerMessage::Welcome { heartbeat_interval_ms, servers, .. })) => {
            (Duration::from_millis(heartbeat_interval_ms.max(100)), servers)
        }
        Ok(Ok(ServerMessage::Refused { message })) => return Err(message),
        Ok(Ok(_)) => return Err("the server did not answer Hello with Welcome".to_owned()),
        Ok(Err(reason)) => return Err(reason),
        Err(_) => return Err("no Welcome within 30 s".to_owned()),
    };

    for update in manager.current_updates().await {
        pending.entry(update.alloc_id.clone()).or_insert(update);
    }
    let (outbound_sender, mut outbound) = mpsc::channel::<AgentMessage>(256);
    let mut requests: HashMap<u64, CancellationToken> = HashMap::new();
    let mut heartbeat = tokio::time::interval(heartbeat_interval);
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                flush_pending(&mut sink, pending).await.ok();
                let _ = sink.close().await;
                return Ok((SessionEnd::Shutdown, servers));
            }
            _ = heartbeat.tick() => {
                if let Err(reason) = send(&mut sink, &AgentMessage::Heartbeat).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
            }
            _ = flush.tick() => {
                if let Err(reason) = flush_pending(&mut sink, pending).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
            }
            Some(update) = updates.recv() => {
                pending.insert(update.alloc_id.clone(), update);
            }
            Some(message) = outbound.recv() => {
                if let Err(reason) = send(&mut sink, &message).await {
                    return Ok((SessionEnd::Disconnected(reason), servers));
                }
            }
            message = next_message(&mut stream) => match message {
                Ok(ServerMessage::Allocations { node, allocs, full, .. }) => {
                    manager.reconcile(node.map(|node| *node), allocs, full).await;
                }
                Ok(ServerMessage::Request { request_id, body }) => {
                    handle_request(request_id, body, manager, &outbound_sender, &mut requests);
                }
                Ok(ServerMessage::Refused { message }) => return Ok((SessionEnd::Disconnected(message), servers)),
                Ok(ServerMessage::Welcome { .. }) => {}
                Err(reason) => return Ok((SessionEnd::Disconnected(reason), servers)),
            },
        }
    }
}

fn handle_request(
    request_id: u64,
    body: RequestBody,
    manager: &Arc<AllocManager>,
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

async fn next_message(stream: &mut futures_util::stream::SplitStream<Socket>) -> Result<ServerMessage, String> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Binary(frame))) => {
                return session::decode::<ServerMessage>(&frame).map_err(|error| error.to_string());
            }
            Some(Ok(Message::Close(_))) | None => return Err("the server closed the session".to_owned()),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(format!("receive failed: {error}")),
        }
    }
}
