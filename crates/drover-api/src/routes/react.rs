//! `/v1/site`, `/v1/alerts`, `/v1/silences`, `/v1/hammers`, `/v1/runbook`,
//! `/v1/notifications` and the Alertmanager webhook receiver.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;

use drover_react::alerting::Silence;
use drover_react::api::{
    AckRequest, AlertCount, AlertsResponse, HammerHistoryEntry, HammerView, PauseRequest, RunbookResponse,
    SilenceRequest, SiteApplyRequest, SiteResponse,
};
use drover_react::delivery::DeliveryRecord;
use drover_types::{CodedError, Timestamp};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiResult, AppState};
use drover_types::acl::{AclScope, Capability};

/// `GET /v1/site`: the applied site.
pub(super) async fn site(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<SiteResponse>> {
    caller.require(AclScope::Site, Capability::Read)?;
    Ok(Json(app.server.site()))
}

/// `POST /v1/site`: `drover apply DIR`.
pub(super) async fn apply(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<SiteApplyRequest>,
) -> ApiResult<Json<SiteResponse>> {
    caller.require(AclScope::Site, Capability::Apply)?;
    Ok(Json(app.server.apply_site(request, &caller.name).await?))
}

/// `?name=RULE` of `GET /v1/alerts`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct AlertsQuery {
    name: Option<String>,
}

/// `GET /v1/alerts[?name=RULE]`: with `name` (the link in a notification),
/// only the alerts of that rule and the received alerts of that
/// `alertname`; silences are all listed either way.
pub(super) async fn alerts(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(AlertsQuery { name }): ApiQuery<AlertsQuery>,
) -> ApiResult<Json<AlertsResponse>> {
    caller.require(AclScope::Site, Capability::Read)?;
    let alerts = app.server.alerts();
    Ok(Json(match name {
        Some(name) => only_named(alerts, &name),
        None => alerts,
    }))
}

/// The alerts of rule `name` (and the received alerts named `name`).
fn only_named(mut alerts: AlertsResponse, name: &str) -> AlertsResponse {
    alerts.alerts.retain(|view| view.alert.rule == name);
    alerts.received.retain(|received| received.labels.get("alertname").is_some_and(|alertname| alertname == name));
    alerts
}

/// `?since=6h` of `GET /v1/alerts/top`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct TopQuery {
    since: Option<String>,
}

/// `GET /v1/alerts/top?since=6h`: firings per alert over a window.
pub(super) async fn top(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(TopQuery { since }): ApiQuery<TopQuery>,
) -> ApiResult<Json<Vec<AlertCount>>> {
    caller.require(AclScope::Site, Capability::Read)?;
    let since = since.as_deref().unwrap_or("24h");
    let window: drover_types::DurationSpec = since
        .parse()
        .map_err(|error| CodedError::invalid(format!("bad since {since:?}: {error} (write 30m, 6h, 7d)")))?;
    Ok(Json(app.server.alerts_top(Timestamp::now().minus(window.get()))))
}

/// `POST /v1/alert/ack`.
pub(super) async fn ack(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<AckRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(AclScope::Site, Capability::Apply)?;
    app.server.ack_alert(&request.id, &caller.name).await?;
    Ok(Json(serde_json::json!({ "acknowledged": request.id })))
}

/// `POST /v1/silences`.
pub(super) async fn silence(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<SilenceRequest>,
) -> ApiResult<Json<Silence>> {
    caller.require(AclScope::Site, Capability::Apply)?;
    Ok(Json(app.server.add_silence(&request, &caller.name).await?))
}

/// `DELETE /v1/silence/{id}`.
pub(super) async fn unsilence(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(AclScope::Site, Capability::Apply)?;
    app.server.expire_silence(&id).await?;
    Ok(Json(serde_json::json!({ "expired": id })))
}

/// `GET /v1/hammers`.
pub(super) async fn hammers(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<HammerView>>> {
    caller.require(AclScope::Site, Capability::Read)?;
    Ok(Json(app.server.hammers()))
}

/// `?hammer=NAME&limit=N` of `GET /v1/hammers/history`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct HistoryQuery {
    hammer: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/hammers/history`: runs and refused triggers, newest first.
pub(super) async fn history(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<HammerHistoryEntry>>> {
    caller.require(AclScope::Site, Capability::Read)?;
    Ok(Json(app.server.hammer_history(query.hammer.as_deref(), query.limit.unwrap_or(100))))
}

/// `POST /v1/hammers/run/{run}/approve`.
pub(super) async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(run): ApiPath<u64>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(AclScope::Site, Capability::HammerApprove)?;
    app.server.decide_run(run, true, &caller.name).await?;
    Ok(Json(serde_json::json!({ "approved": run })))
}

/// `POST /v1/hammers/run/{run}/deny`.
pub(super) async fn deny(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(run): ApiPath<u64>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(AclScope::Site, Capability::HammerApprove)?;
    app.server.decide_run(run, false, &caller.name).await?;
    Ok(Json(serde_json::json!({ "denied": run })))
}

/// `POST /v1/hammers/pause`.
pub(super) async fn pause(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PauseRequest>,
) -> ApiResult<Json<PauseRequest>> {
    caller.require(AclScope::Site, Capability::Apply)?;
    app.server.pause_hammer(request.clone()).await?;
    Ok(Json(request))
}

/// `GET /v1/runbook/{name}`.
pub(super) async fn runbook(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RunbookResponse>> {
    caller.require(AclScope::Site, Capability::Read)?;
    Ok(Json(app.server.runbook(&name)?))
}

/// `GET /v1/notifications`: what this server queued and what became of it.
pub(super) async fn notifications(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<DeliveryRecord>>> {
    caller.require(AclScope::Site, Capability::Read)?;
    Ok(Json(app.server.deliveries()))
}

/// `POST /v1/alertmanager/webhook`: an Alertmanager's webhook receiver.
pub(super) async fn alertmanager_webhook(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(AclScope::Site, Capability::Apply)?;
    let received = app.server.receive_alertmanager(&body).await?;
    Ok(Json(serde_json::json!({ "received": received })))
}
