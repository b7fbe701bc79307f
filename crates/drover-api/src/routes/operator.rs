//! The servers themselves: identity and joining (server to server),
//! membership, health, snapshots and the rotation of the cluster CA
//! (operators).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use drover_server::cluster::{Member, ServerIdentity};
use drover_server::operator::{ClusterHealth, LocalStatus};

use crate::extract::{ApiJson, ApiPath, PeerJson};
use crate::identity::{AuditNote, Caller};
use crate::{ApiError, ApiResult, AppState, no_content};
use drover_proto::api::{RotateCaRequest, ServerJoinResponse, TlsStatus};
use drover_types::acl::{AclScope, Capability};

pub(super) async fn identity(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ServerIdentity>> {
    caller.require_server()?;
    Ok(Json(app.server.identity()))
}

pub(super) async fn internal_join(
    State(app): State<AppState>,
    caller: Caller,
    PeerJson(identity): PeerJson<ServerIdentity>,
) -> ApiResult<Response> {
    caller.require_server()?;
    app.server.add_server(identity).await?;
    Ok(no_content())
}

pub(super) async fn read_index(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<u64>> {
    caller.require_server()?;
    Ok(Json(app.server.read_index().await?))
}

pub(super) async fn local_status(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<LocalStatus>> {
    caller.require(AclScope::Operator, Capability::Read)?;
    Ok(Json(app.server.local_status().await))
}

pub(super) async fn health(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ClusterHealth>> {
    caller.require(AclScope::Operator, Capability::Read)?;
    Ok(Json(app.server.cluster_health().await))
}

pub(super) async fn members(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Member>>> {
    caller.require(AclScope::Operator, Capability::Read)?;
    Ok(Json(app.server.members_with_versions().await))
}

/// Body of `POST /v1/operator/raft/join`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinRequest {
    address: String,
}

pub(super) async fn join(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<JoinRequest>,
) -> ApiResult<Json<ServerIdentity>> {
    caller.require(AclScope::Operator, Capability::Write)?;
    if request.address.trim().is_empty() {
        return Err(ApiError::invalid("`address` is empty: give the new server's address, host:port"));
    }
    Ok(Json(app.server.join_address(request.address.trim()).await?))
}

pub(super) async fn remove_peer(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(server_id): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require(AclScope::Operator, Capability::Write)?;
    let server_id: u64 = server_id.parse().map_err(|_| {
        ApiError::invalid(format!("{server_id:?} is not a server id; `drover server members` lists the ids"))
    })?;
    app.server.remove_server(server_id).await?;
    Ok(no_content())
}

pub(super) async fn save_snapshot(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(AclScope::Operator, Capability::Write)?;
    let bytes = app.server.save_snapshot().await?;
    // A read, but a copy of everything: audited like a write.
    crate::identity::record(&app, &caller, "operator.snapshot_save", &format!("{} bytes", bytes.len())).await;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Answer of a snapshot restore.
#[derive(Debug, Serialize)]
pub(super) struct Restored {
    index: u64,
}

pub(super) async fn restore_snapshot(State(app): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require(AclScope::Operator, Capability::Write)?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the request body is empty: send a file written by `drover operator snapshot save`",
        ));
    }
    let index = app.server.restore_snapshot(body.to_vec(), true).await?;
    let note = AuditNote { target: Some(format!("at index {index}")), details: String::new() };
    Ok(note.on(Json(Restored { index }).into_response()))
}

/// `GET /v1/operator/tls`: the cluster's CAs and a rotation's progress.
pub(super) async fn tls_status(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<TlsStatus>> {
    caller.require(AclScope::Operator, Capability::Read)?;
    Ok(Json(app.server.tls_status()?))
}

/// `POST /v1/operator/tls/rotate-ca`: a new cluster CA (made by the
/// servers, or the operator's `new_ca`), trusted alongside the old one
/// until every certificate is reissued. Management tokens only. An
/// operator's CA that fails its checks is audited as refused.
pub(super) async fn rotate_ca(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<RotateCaRequest>,
) -> ApiResult<Response> {
    caller.require_management()?;
    let target = "the cluster CA".to_owned();
    let (new_ca, details) = match &request.new_ca {
        None => (None, "to a CA made by the servers".to_owned()),
        Some(files) => {
            let named = format!("to the operator's CA {} (key {})", files.cert_file, files.key_file);
            match drover_server::security::operator_ca(files) {
                Ok(ca) => {
                    let details = format!("{named}, SHA-256 {}", ca.fingerprint());
                    (Some(ca), details)
                }
                Err(error) => {
                    let mut response = ApiError(error).into_response();
                    response.extensions_mut().insert(crate::identity::RefusedInput);
                    return Ok(AuditNote { target: Some(target), details: named }.on(response));
                }
            }
        }
    };
    let status = app.server.start_ca_rotation(&caller.name, new_ca).await?;
    Ok(AuditNote { target: Some(target), details }.on(Json(status).into_response()))
}

/// `POST /v1/operator/tls/rotate-ca/finish`: drops the old CA once nothing
/// live uses it. Management tokens only.
pub(super) async fn finish_ca_rotation(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<TlsStatus>> {
    caller.require_management()?;
    Ok(Json(app.server.finish_ca_rotation().await?))
}

/// `GET /v1/internal/tls/rotation-ca`: the new CA and its key, for another
/// server of the cluster taking part in the rotation.
pub(super) async fn rotation_ca(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ServerJoinResponse>> {
    caller.require_server()?;
    Ok(Json(app.server.rotation_ca_for_peer()?))
}
