//! Server-to-server routes: Raft RPCs, forwarded proposals, forwarded
//! heartbeats and copies of log lines (log replication). Bodies are
//! MessagePack (`drover_state::codec`), answers are an encoded `Result`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use drover_server::network::SnapshotTransfer;
use drover_state::Command;
use drover_state::codec;
use drover_types::{CodedError, NodeId};

use crate::extract::PeerJson;
use crate::identity::Caller;
use crate::{ApiError, ApiResult, AppState, no_content};

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    codec::decode(body).map_err(|error| ApiError::invalid(format!("bad internal request body: {error}")))
}

fn encoded<T: Serialize>(value: &T) -> ApiResult<Response> {
    let bytes = codec::encode(value).map_err(|error| ApiError(CodedError::internal(error.to_string())))?;
    Ok(([(header::CONTENT_TYPE, "application/msgpack")], bytes).into_response())
}

pub(super) async fn append(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_server()?;
    let request = decode_body(&body)?;
    let result = app.server.raft().append_entries(request).await.map_err(|error| error.to_string());
    encoded(&result)
}

pub(super) async fn vote(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_server()?;
    let request = decode_body(&body)?;
    let result = app.server.raft().vote(request).await.map_err(|error| error.to_string());
    encoded(&result)
}

pub(super) async fn pre_vote(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_server()?;
    let request = decode_body(&body)?;
    let result = app.server.raft().pre_vote(request).await.map_err(|error| error.to_string());
    encoded(&result)
}

pub(super) async fn snapshot(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_server()?;
    let transfer: SnapshotTransfer = decode_body(&body)?;
    let snapshot = openraft::alias::SnapshotOf::<drover_state::TypeConfig, Vec<u8>> {
        meta: transfer.meta,
        snapshot: transfer.data,
    };
    let result =
        app.server.raft().install_full_snapshot(transfer.vote, snapshot).await.map_err(|error| error.to_string());
    encoded(&result)
}

pub(super) async fn propose(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_server()?;
    let command: Command = decode_body(&body)?;
    let result = app.server.propose_as_leader(command).await;
    encoded(&result)
}

/// A peer's request for an agent connected here (`drover alloc
/// restart|signal|exec` asked of that peer): its one answer. The peer
/// checked the caller and audits the request.
pub(super) async fn agent_request(
    State(app): State<AppState>,
    caller: Caller,
    PeerJson(forwarded): PeerJson<drover_proto::session::ForwardedAgentRequest>,
) -> ApiResult<Response> {
    caller.require_server()?;
    use drover_proto::session::RequestBody;
    match &forwarded.body {
        RequestBody::RestartTasks { .. } | RequestBody::SignalTasks { .. } => {}
        // This server's own --disable-exec holds for exec forwarded to it.
        RequestBody::ExecInTask { .. } if !app.server.config().exec_enabled => {
            return Err(CodedError::new(
                drover_types::ErrorCode::Forbidden,
                "exec is disabled on the server this node's agent is connected to (--disable-exec)",
            )
            .into());
        }
        RequestBody::ExecInTask { .. } => {}
        other => {
            return Err(CodedError::invalid(format!("not a request a peer forwards: {other:?}")).into());
        }
    }
    let patience = std::time::Duration::from_millis(forwarded.patience_ms);
    let answer = app.server.ask_local_agent(&forwarded.node_id, forwarded.body, patience).await?;
    Ok(axum::Json(answer).into_response())
}

pub(super) async fn heartbeats(
    State(app): State<AppState>,
    caller: Caller,
    PeerJson(node_ids): PeerJson<Vec<NodeId>>,
) -> ApiResult<Response> {
    caller.require_server()?;
    app.server.record_heartbeats(node_ids.iter());
    Ok(no_content())
}

/// A copy of log lines another server received from its agents, kept
/// here; answered once durable (docs/logs.md, "Replication").
pub(super) async fn log_replica(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_server()?;
    let replica: drover_server::logs::LogReplica = decode_body(&body)?;
    let result = app.server.store_replica(replica).await.map_err(|error| error.message);
    encoded(&result)
}
