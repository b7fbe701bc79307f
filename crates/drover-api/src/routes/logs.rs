//! Centralised logs: `GET /v1/logs/search`, `/v1/logs/count`,
//! `/v1/logs/histogram` and `/v1/logs/tail` (newline-delimited JSON, live).
//! Every route takes the same [`LogQuery`] (`q`, `since`, `until`,
//! `filter`); the server asks every other server and merges.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use drover_proto::api::{LogCountBy, LogInterval, LogPage, LogQuery};

use crate::extract::ApiQuery;
use crate::identity::{Caller, Capability};
use crate::{ApiResult, AppState};

pub(super) async fn search(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(page): ApiQuery<LogPage>,
) -> ApiResult<Response> {
    caller.require(Capability::Read)?;
    Ok(Json(app.server.search_logs(query, page).await?).into_response())
}

pub(super) async fn count(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(by): ApiQuery<LogCountBy>,
) -> ApiResult<Response> {
    caller.require(Capability::Read)?;
    Ok(Json(app.server.count_logs(query, by).await?).into_response())
}

pub(super) async fn histogram(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(interval): ApiQuery<LogInterval>,
) -> ApiResult<Response> {
    caller.require(Capability::Read)?;
    Ok(Json(app.server.log_histogram(query, interval).await?).into_response())
}

pub(super) async fn tail(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    caller.require(Capability::Read)?;
    Ok(super::ndjson(app.server.tail_logs(query).await?))
}
