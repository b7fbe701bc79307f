//! Centralised logs: `GET /v1/logs/search`, `/v1/logs/count`,
//! `/v1/logs/histogram`, `/v1/logs/tail` (newline-delimited JSON, live)
//! and `/v1/logs/export` (newline-delimited JSON, every record, audited as
//! `logs.export`). Every route takes the same [`LogQuery`] (`q`, `since`,
//! `until`, `filter`); the server asks every other server and merges.
//! Servers asking each other set `local` and say which copies to answer
//! from (`copies`, [`drover_server::logs::LogCopies`]): with log
//! replication each line is counted once.
//! `POST /v1/logs/import` stores what an export wrote (operator write,
//! audited as `logs.import`).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use axum::body::Body;
use axum::http::header;
use drover_proto::api::{LogCountBy, LogImportRequest, LogInterval, LogPage, LogQuery};
use drover_server::logs::LogCopies;

use crate::extract::{ApiJson, ApiQuery};
use crate::identity::Caller;
use crate::{ApiResult, AppState};
use drover_types::acl::{AclScope, Capability};

pub(super) async fn search(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(page): ApiQuery<LogPage>,
    ApiQuery(copies): ApiQuery<LogCopies>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(Json(app.server.search_logs_of(query, page, &copies).await?).into_response())
}

pub(super) async fn count(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(by): ApiQuery<LogCountBy>,
    ApiQuery(copies): ApiQuery<LogCopies>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(Json(app.server.count_logs_of(query, by, &copies).await?).into_response())
}

pub(super) async fn histogram(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
    ApiQuery(interval): ApiQuery<LogInterval>,
    ApiQuery(copies): ApiQuery<LogCopies>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(Json(app.server.log_histogram_of(query, interval, &copies).await?).into_response())
}

pub(super) async fn tail(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    Ok(super::ndjson(app.server.tail_logs(query).await?))
}

/// Every matching record the caller may read, as newline-delimited JSON,
/// with their number in [`drover_proto::api::LOG_EXPORT_TOTAL_HEADER`]. A
/// failure on the way (a server gone) breaks the stream off, so that a
/// client never takes a partial export for a whole one.
pub(super) async fn export(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    let query = visible(&caller, query)?;
    let target = format!(
        "q={:?} since={} until={}",
        query.q,
        query.since.as_deref().unwrap_or("-"),
        query.until.as_deref().unwrap_or("-")
    );
    let (total, records) = app.server.export_logs(query).await?;
    // It copies everything it reaches, so it is audited like a snapshot.
    crate::identity::record(&app, &caller, "logs.export", &target).await;
    let lines = futures_util::stream::unfold(records, |mut records| async move {
        let item = match records.recv().await? {
            Ok(record) => {
                let mut line = serde_json::to_vec(&record).unwrap_or_default();
                line.push(b'\n');
                Ok(bytes::Bytes::from(line))
            }
            Err(error) => Err(std::io::Error::other(error.message)),
        };
        Some((item, records))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::HeaderName::from_static(drover_proto::api::LOG_EXPORT_TOTAL_HEADER), total.to_string()),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Stores a batch of exported records on this server; restoring logs is
/// an operator's write.
pub(super) async fn import(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<LogImportRequest>,
) -> ApiResult<Response> {
    caller.require(AclScope::Operator, Capability::Write)?;
    let (num_records, trust_timestamps) = (request.records.len(), request.trust_timestamps);
    let answer = app.server.import_logs(request).await?;
    let details = format!(
        "{num_records} records: {} stored, {} already held; trust_timestamps={trust_timestamps}",
        answer.accepted, answer.duplicates
    );
    Ok(crate::AuditNote { target: None, details }.on(Json(answer).into_response()))
}

/// The query narrowed to the lines the caller may read: those of nodes in
/// the host groups its `logs` rules name (no line of another host group,
/// nor a count of them, ever reaches the caller). A caller who may read
/// every host group gets the query as it is.
pub(super) fn visible(caller: &Caller, mut query: LogQuery) -> ApiResult<LogQuery> {
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
