//! `GET /v1/node/{node}/usage?since=24h&step=1m`: a node's usage over the last
//! 24 h a point a minute (or the last hour every 10 s, `step=10s`), merged
//! from every server (each keeps the points of the agents connected to
//! it); and the internal route a server asks the others with.

use axum::Json;
use axum::extract::State;
use drover_proto::api::{NodeUsageHistory, UsagePoint};
use drover_server::usage_history::Step;
use drover_types::CodedError;
use drover_types::NodeId;
use drover_types::acl::{AclScope, Capability};

use crate::extract::{ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiResult, AppState};

/// `?since=`: a duration back from now (`6h`), an RFC 3339 time or
/// nanoseconds since the epoch, as for log searches; default `24h`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct UsageSince {
    since: Option<String>,
    /// `?step=`: the points' spacing, `1m` (the default) or `10s`.
    step: Option<String>,
}

/// `?since_ms=&step_secs=` of the internal route (a server that sends no
/// step asks for minutes).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct UsageSinceMs {
    #[serde(default)]
    since_ms: i64,
    #[serde(default)]
    step_secs: Option<u32>,
}

pub(super) async fn history(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
    ApiQuery(UsageSince { since, step }): ApiQuery<UsageSince>,
) -> ApiResult<Json<NodeUsageHistory>> {
    let step = match step.as_deref() {
        Some(step) => parse_step(step)?,
        None => Step::Minute,
    };
    Ok(Json(node_usage_history(&app, &caller, &node, since.as_deref(), step).await?))
}

/// `?step=` names one of the two resolutions kept: a minute (`1m`, `60s`)
/// or 10 seconds (`10s`).
fn parse_step(step: &str) -> Result<Step, CodedError> {
    let seconds = step.parse::<drover_types::DurationSpec>().map(|spec| spec.get().as_secs_f64());
    match seconds {
        Ok(60.0) => Ok(Step::Minute),
        Ok(10.0) => Ok(Step::TenSeconds),
        _ => Err(CodedError::invalid(format!(
            "step {step:?}: the history is kept a point a minute over 24 h and every 10 s over the last \
             hour; give step=1m or step=10s (or leave it out)"
        ))),
    }
}

/// A node's usage history as the caller may see it (`GET
/// /v1/node/{node}/usage` and the dashboard's node page): the same checks
/// as `GET /v1/node/{node}`.
pub(crate) async fn node_usage_history(
    app: &AppState,
    caller: &Caller,
    node: &str,
    since: Option<&str>,
    step: Step,
) -> ApiResult<NodeUsageHistory> {
    caller.require(AclScope::Node, Capability::Read)?;
    let now = drover_server::logs::now_nanos();
    let since_nanos = drover_server::logs::parse_time(since.unwrap_or("24h"), now)
        .map_err(|error| CodedError::invalid(format!("since: {error}")))?;
    let (node_id, name) = {
        let state = app.server.state();
        let node = state.resolve_node(node)?;
        caller.require_on(AclScope::Node, Capability::Read, &node.hostgroup)?;
        (node.id.clone(), node.name.clone())
    };
    let points = app.server.node_usage_history_anywhere(&node_id, since_nanos / 1_000_000, step).await;
    Ok(NodeUsageHistory { node: name, step_secs: (step.millis() / 1000) as u32, points })
}

/// `GET /v1/internal/usage/{node_id}/history?since_ms=`: what this server
/// kept of one node.
pub(super) async fn local_history(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node_id): ApiPath<String>,
    ApiQuery(UsageSinceMs { since_ms, step_secs }): ApiQuery<UsageSinceMs>,
) -> ApiResult<Json<Vec<UsagePoint>>> {
    caller.require_server()?;
    let step = if step_secs == Some(10) { Step::TenSeconds } else { Step::Minute };
    Ok(Json(app.server.node_usage_history(&NodeId::new(node_id), since_ms, step)))
}
