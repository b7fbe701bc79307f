//! Centralised logs: `GET /v1/logs/search`, `/v1/logs/count`,
//! `/v1/logs/histogram` and `/v1/logs/tail` (newline-delimited JSON, live).
//! Every route takes the same [`LogQuery`] (`q`, `since`, `until`,
//! `filter`); the server asks every other server and merges.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use drover_proto::api::{LogCountBy, LogInterval, LogPage, LogQuery};

use crate::extract::ApiQuery;
use crate::identity::Caller;
use crate::{ApiResult, AppState};
use drover_types::acl::{AclScope, Capability};

pub(super) async fn search(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(page): ApiQuery<LogPage>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(Json(app.server.search_logs(query, page).await?).into_response())
}

pub(super) async fn count(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(by): ApiQuery<LogCountBy>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(Json(app.server.count_logs(query, by).await?).into_response())
}

pub(super) async fn histogram(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(interval): ApiQuery<LogInterval>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(Json(app.server.log_histogram(query, interval).await?).into_response())
}

pub(super) async fn tail(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(super::ndjson(app.server.tail_logs(query).await?))
}

/// The query narrowed to the lines the caller may read: those of nodes in
/// the host groups its `logs` rules name (no line of another host group,
/// nor a count of them, ever reaches the caller). A caller who may read
/// every host group gets the query as it is.
fn visible(caller: &Caller, mut query: LogQuery) -> ApiResult<LogQuery> {
    caller.require(AclScope::Logs, Capability::Read)?;
    let Some(globs) = caller.patterns(AclScope::Logs, Capability::Read) else { return Ok(query) };
    let allowed = globs
        .iter()
        .map(|glob| format!("hostgroup =~ \"{}\"", glob.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" or ");
    query.filter = Some(match query.filter.as_deref().map(str::trim).filter(|filter| !filter.is_empty()) {
        Some(filter) => format!("({filter}) and ({allowed})"),
        None => allowed,
    });
    Ok(query)
}
