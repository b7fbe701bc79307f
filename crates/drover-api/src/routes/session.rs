//! The agent session WebSocket (`GET /v1/agent/session`): moves binary
//! frames between the socket and the server's session logic.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;

use drover_proto::session::{self, AgentMessage, ServerMessage};
use drover_server::Server;

use crate::identity::Caller;
use crate::{ApiResult, AppState};

/// How long an agent has to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn upgrade(
    State(app): State<AppState>,
    caller: Caller,
    socket: WebSocketUpgrade,
) -> ApiResult<Response> {
    let server = app.server.clone();
    let peer = caller.peer.clone();
    Ok(socket
        .max_message_size(session::MAX_MESSAGE_BYTES)
        .max_frame_size(session::MAX_MESSAGE_BYTES)
        .read_buffer_size(session::READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run(server, peer, socket)))
}

async fn run(server: Server, peer: drover_server::security::Peer, mut socket: WebSocket) {
    // One task owns the unsplit socket: splitting it costs a lock per
    // message, which showed in the heartbeat profile.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Binary(frame)))) => session::decode::<AgentMessage>(&frame),
        _ => {
            tracing::debug!("agent session closed before Hello");
            return;
        }
    };
    let (protocol, registration) = match hello {
        Ok(AgentMessage::Hello { protocol, registration }) => (protocol, registration),
        Ok(_) | Err(_) => {
            refuse(&mut socket, "the first message of a session must be Hello".to_owned()).await;
            return;
        }
    };
    // The certificate says which node is speaking: it may register as
    // itself only, under a host group its join token allowed, and never
    // take over another node's id.
    let claimed = registration.labels.hostgroup.clone();
    let checked = server.check_node_peer(&peer, &registration.name, claimed.as_deref()).and_then(|()| {
        match server.state().node(&registration.id) {
            Some(node) if server.acl_enabled() && node.name != registration.name => Err(drover_types::CodedError::new(
                drover_types::ErrorCode::Forbidden,
                format!("node id {} belongs to node {}, not {}", registration.id, node.name, registration.name),
            )),
            _ => Ok(()),
        }
    });
    if let Err(error) = checked {
        server.audit(drover_types::acl::AuditEvent {
            at: drover_types::Timestamp::now(),
            accessor: None,
            name: format!("node:{}", registration.name),
            action: "node.session".to_owned(),
            target: registration.name.clone(),
            details: String::new(),
            outcome: drover_types::acl::AuditOutcome::Refused(error.message.clone()),
            source: String::new(),
            request_id: 0,
        });
        refuse(&mut socket, error.message).await;
        return;
    }
    let (agent_session, mut outbound) = match server.open_session(protocol, registration).await {
        Ok(opened) => opened,
        Err(error) => {
            refuse(&mut socket, error.message).await;
            return;
        }
    };
    let shutdown = server.shutdown_token().clone();
    let mut stopping = false;
    loop {
        // Biased: the socket first (heartbeats are most of the traffic), and
        // no random draw per poll.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                stopping = true;
                break;
            }
            frame = socket.recv() => {
                match frame {
                    Some(Ok(Message::Binary(frame))) => match session::decode::<AgentMessage>(&frame) {
                        Ok(message) => {
                            if let Err(error) = server.on_agent_message(&agent_session, message).await {
                                tracing::warn!(node = %agent_session.node_id, %error, "bad agent message");
                            }
                        }
                        Err(error) => tracing::warn!(node = %agent_session.node_id, %error, "undecodable agent frame"),
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            message = outbound.recv() => {
                let Some(message) = message else { break };
                let Ok(frame) = session::encode(&message) else { continue };
                if socket.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    if stopping {
        // "Going away": the agent moves to another server without a warning.
        let frame = CloseFrame { code: close_code::AWAY, reason: "the server is stopping".into() };
        let _ = socket.send(Message::Close(Some(frame))).await;
        // The closing handshake: read until the agent's Close, so that
        // nothing it sent meanwhile is left unread (the kernel would answer
        // unread data with a reset, which the agent sees as a failure).
        let handshake = async {
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), handshake).await;
    }
    server.close_session(&agent_session).await;
}

async fn refuse(socket: &mut WebSocket, message: String) {
    tracing::warn!(%message, "agent session refused");
    if let Ok(frame) = session::encode(&ServerMessage::Refused { message }) {
        let _ = socket.send(Message::Binary(frame.into())).await;
    }
    let _ = socket.send(Message::Close(None)).await;
}
