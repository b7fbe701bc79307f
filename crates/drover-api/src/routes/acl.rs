//! Access control: `/v1/acl/*` (bootstrap, policies, tokens, join tokens),
//! `/v1/audit`, node revocation, and the agent's enrolment and renewal
//! (`/v1/agent/enroll`, `/v1/agent/renew`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use drover_proto::api::{
    AuditQuery, EnrollRequest, JoinTokenCreateRequest, JoinTokenCreated, JoinTokenEntry, NodeCertificateResponse,
    PolicyApplyRequest, RenewRequest, TokenCreateRequest, TokenCreated, TokenEntry,
};
use drover_types::acl::{AclPolicy, AclScope, AuditEvent, Capability, JoinRole};
use drover_types::{DurationSpec, Timestamp};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::{AuditNote, Caller};
use crate::{ApiError, ApiResult, AppState};

/// How long a join token works when no `ttl` is given.
const DEFAULT_JOIN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn duration(what: &str, text: Option<&str>) -> ApiResult<Option<std::time::Duration>> {
    text.map(|text| {
        text.parse::<DurationSpec>()
            .map(DurationSpec::get)
            .map_err(|error| ApiError::invalid(format!("{what}: {error}")))
    })
    .transpose()
}

fn noted<T: serde::Serialize>(status: StatusCode, body: T, target: String) -> Response {
    AuditNote { target: Some(target), details: String::new() }.on((status, Json(body)).into_response())
}

pub(super) async fn bootstrap(State(app): State<AppState>) -> ApiResult<Response> {
    let created = app.server.acl_bootstrap().await?;
    let entry = TokenEntry::from(&created.token);
    let target = entry.accessor.clone();
    Ok(noted(StatusCode::OK, TokenCreated { token: entry, secret: created.secret }, target))
}

pub(super) async fn policies(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<AclPolicy>>> {
    caller.require(AclScope::Acl, Capability::Read)?;
    Ok(Json(app.server.state().access().policies().cloned().collect()))
}

pub(super) async fn policy(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<AclPolicy>> {
    caller.require(AclScope::Acl, Capability::Read)?;
    let state = app.server.state();
    let policy = state.access().policy(&name).cloned();
    Ok(Json(policy.ok_or_else(|| ApiError(drover_types::CodedError::not_found("ACL policy", &name)))?))
}

pub(super) async fn apply_policy(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<PolicyApplyRequest>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    let file_name = if request.file_name.is_empty() { format!("{name}.hcl") } else { request.file_name };
    let policy = app.server.apply_acl_policy(&name, &file_name, &request.source).await?;
    Ok(noted(StatusCode::OK, policy, name))
}

pub(super) async fn delete_policy(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    app.server.delete_acl_policy(&name).await?;
    Ok(crate::no_content())
}

pub(super) async fn tokens(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<TokenEntry>>> {
    caller.require(AclScope::Acl, Capability::Read)?;
    Ok(Json(app.server.state().access().tokens().map(TokenEntry::from).collect()))
}

/// `GET /v1/acl/token/self`: the caller's own token.
pub(super) async fn token_self(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<TokenEntry>> {
    let state = app.server.state();
    match caller.accessor.as_deref().and_then(|accessor| state.access().token(accessor)) {
        Some(token) => Ok(Json(TokenEntry::from(token))),
        None => Err(ApiError(drover_types::CodedError::new(
            drover_types::ErrorCode::NotFound,
            format!("{} has no token (anonymous, or a server without ACLs)", caller.name),
        ))),
    }
}

pub(super) async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<TokenCreateRequest>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    let ttl = duration("ttl", request.ttl.as_deref())?;
    let created = app.server.create_acl_token(&request.name, request.policies, request.management, ttl).await?;
    let entry = TokenEntry::from(&created.token);
    let target = format!("{} ({})", entry.name, entry.accessor);
    Ok(noted(StatusCode::OK, TokenCreated { token: entry, secret: created.secret }, target))
}

pub(super) async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(accessor): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    app.server.revoke_acl_token(&accessor).await?;
    Ok(crate::no_content())
}

pub(super) async fn join_tokens(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<JoinTokenEntry>>> {
    caller.require(AclScope::Acl, Capability::Read)?;
    Ok(Json(app.server.state().access().join_tokens().map(JoinTokenEntry::from).collect()))
}

pub(super) async fn create_join_token(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<JoinTokenCreateRequest>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    let ttl = duration("ttl", request.ttl.as_deref())?.unwrap_or(DEFAULT_JOIN_TTL);
    let role = if request.server { JoinRole::Server } else { JoinRole::Agent };
    let (token, text) = app.server.create_join_token(role, request.hostgroups, ttl, request.uses, &caller.name).await?;
    let target = format!("{} (host groups: {})", token.accessor, token.hostgroups.join(", "));
    Ok(noted(
        StatusCode::OK,
        JoinTokenCreated { accessor: token.accessor.clone(), token: text, expires_at: token.expires_at },
        target,
    ))
}

pub(super) async fn delete_join_token(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(accessor): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    app.server.delete_join_token(&accessor).await?;
    Ok(crate::no_content())
}

pub(super) async fn revoke_node(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require(AclScope::Acl, Capability::Write)?;
    app.server.revoke_node(&node).await?;
    Ok(crate::no_content())
}

pub(super) async fn audit(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEvent>>> {
    caller.require(AclScope::Acl, Capability::Read)?;
    let since = match query.since.as_deref() {
        Some(text) => {
            let nanos = drover_server::logs::parse_time(text, drover_server::logs::now_nanos())
                .map_err(|error| ApiError::invalid(format!("since: {error}")))?;
            Some(Timestamp::from_millis(nanos / 1_000_000))
        }
        None => None,
    };
    let filter = drover_server::audit::AuditFilter {
        since,
        by: query.by,
        kind: query.kind,
        outcome: query.outcome,
        limit: query.limit.unwrap_or(1000).min(100_000),
    };
    Ok(Json(app.server.audit_events(&filter).await?))
}

pub(super) async fn enroll(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> ApiResult<Response> {
    let (certificate, ca) =
        app.server.enroll_node(&request.secret, &request.name, request.hostgroup.as_deref(), &request.csr).await?;
    Ok(noted(StatusCode::OK, NodeCertificateResponse { certificate, ca }, request.name))
}

pub(super) async fn renew(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<RenewRequest>,
) -> ApiResult<Response> {
    let certificate = app.server.renew_node(&caller.peer, &request.csr).await?;
    let ca = app.server.tls().map(|tls| tls.ca_pem().to_owned()).unwrap_or_default();
    let target = caller.name.clone();
    Ok(noted(StatusCode::OK, NodeCertificateResponse { certificate, ca }, target))
}

/// `POST /v1/operator/tls/join`: the cluster CA for a server joining with a
/// server join token (the token is the credential).
pub(super) async fn server_join(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<drover_proto::api::ServerJoinRequest>,
) -> ApiResult<Response> {
    let (ca, ca_key) = app.server.release_ca_to_server(&request.secret).await?;
    Ok(noted(StatusCode::OK, drover_proto::api::ServerJoinResponse { ca, ca_key }, "the cluster CA".to_owned()))
}
