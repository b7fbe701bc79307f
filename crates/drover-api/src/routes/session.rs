//! The agent session WebSocket (`GET /v1/agent/session`): moves binary
//! frames between the socket and the server's session logic.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use drover_proto::session::{self, AgentMessage, ServerMessage};
use drover_server::Server;

use crate::identity::{Caller, Capability};
use crate::{ApiResult, AppState};

/// How long an agent has to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame an agent may send (a batch of task states).
const MAX_FRAME: usize = 64 * 1024 * 1024;

pub(super) async fn upgrade(
    State(app): State<AppState>,
    caller: Caller,
    socket: WebSocketUpgrade,
) -> ApiResult<Response> {
    caller.require(Capability::Internal)?;
    let server = app.server.clone();
    Ok(socket
        .max_message_size(MAX_FRAME)
        .read_buffer_size(session::READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run(server, socket)))
}

async fn run(server: Server, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Binary(frame)))) => session::decode::<AgentMessage>(&frame),
        _ => {
            tracing::debug!("agent session closed before Hello");
            return;
        }
    };
    let (protocol, registration) = match hello {
        Ok(AgentMessage::Hello { protocol, registration }) => (protocol, registration),
        Ok(_) | Err(_) => {
            refuse(&mut sink, "the first message of a session must be Hello".to_owned()).await;
            return;
        }
    };
    let (agent_session, mut outbound) = match server.open_session(protocol, registration).await {
        Ok(opened) => opened,
        Err(error) => {
            refuse(&mut sink, error.message).await;
            return;
        }
    };
    loop {
        tokio::select! {
            message = outbound.recv() => {
                let Some(message) = message else { break };
                let Ok(frame) = session::encode(&message) else { continue };
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => {
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
        }
    }
    server.close_session(&agent_session).await;
}

async fn refuse(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, message: String) {
    tracing::warn!(%message, "agent session refused");
    if let Ok(frame) = session::encode(&ServerMessage::Refused { message }) {
        let _ = sink.send(Message::Binary(frame.into())).await;
    }
    let _ = sink.close().await;
}
