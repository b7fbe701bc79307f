//! The dashboard's pages. Each gathers its data through the functions the
//! `/v1` handlers use, under the same caller, and renders a `drover-ui`
//! view model.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use drover_proto::api::{AllocCounts, AuditQuery, LogCountBy, LogInterval, LogPage, LogQuery};
use drover_proto::paths;
use drover_react::alerting::AlertState;
use drover_types::usage::UsageSummary;
use drover_types::{CodedError, NodeId, Timestamp};
use drover_ui::Section;
use drover_ui::format;
use drover_ui::pages::alloc::AllocPage;
use drover_ui::pages::jobs::{AllocView, JobPage, JobRow, JobsPage};
use drover_ui::pages::logs::{LogLine, LogsPage, Scope};
use drover_ui::pages::nodes::{NodePage, NodeSort, NodeTable, NodesPage};
use drover_ui::pages::overview::{self, AuditRow, DeploymentRow, OverviewPage, ServerRow};
use drover_ui::pages::react::{AlertRow, AlertsPage, HammerRow, HammersPage, RunRow, RunbookPage, SilenceRow, TopRow};

use super::{UiError, Viewer, visible};
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiResult, AppState, ReadOptions};
use drover_types::acl::{AclScope, Capability};

/// `?notice=` (what the last action did, after its redirect); on the
/// alert page also `?silence=` (the silence form's matchers).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Notice {
    notice: Option<String>,
    silence: Option<String>,
}

impl Notice {
    fn text(self) -> Option<String> {
        self.notice.map(|text| text.chars().take(200).collect()).filter(|text: &String| !text.trim().is_empty())
    }
}

/// `GET /ui/`.
pub(super) async fn overview(State(app): State<AppState>, viewer: Viewer) -> Response {
    let caller = &viewer.caller;
    let options = ReadOptions::default();
    let mut chrome = viewer.chrome("Overview", Section::Overview);
    chrome.refresh_seconds = 15;
    let now = chrome.now;

    let health = super::super::operator::health(State(app.clone()), caller.clone()).await.map(|json| json.0);
    let problems = health.as_ref().map(|health| health.problems.clone()).unwrap_or_default();
    let servers = visible(health.map(|health| ServerRow::from_health(&health)));
    let nodes = visible(
        super::super::nodes::list_entries(&app, caller, &options, None)
            .await
            .map(|(_, nodes)| overview::node_counts(nodes.iter().map(|node| node.status.as_str()))),
    );
    let jobs = super::super::jobs::list_entries(&app, caller, &options).await;
    let allocs = visible(jobs.as_ref().map_err(copy_error).map(|(_, jobs)| {
        let mut total = AllocCounts::default();
        for job in jobs {
            let counts = job.allocs;
            total.pending += counts.pending;
            total.running += counts.running;
            total.complete += counts.complete;
            total.failed += counts.failed;
            total.lost += counts.lost;
            total.unknown += counts.unknown;
        }
        overview::alloc_counts(&total)
    }));
    let deployments = visible(jobs.map(|(_, jobs)| {
        let state = app.server.state();
        jobs.iter()
            .filter_map(|job| state.latest_deployment(&job.id))
            .filter(|deployment| DeploymentRow::worth_showing(deployment, now))
            .map(|deployment| DeploymentRow::new(deployment))
            .collect()
    }));
    let alerts = visible(
        super::super::react::alerts(State(app.clone()), caller.clone(), ApiQuery(Default::default()))
            .await
            .map(|json| alert_rows(&json.0, now)),
    );
    let awaiting = visible(
        super::super::react::history(State(app.clone()), caller.clone(), ApiQuery(Default::default()))
            .await
            .map(|json| run_rows(&json.0, now).into_iter().filter(RunRow::awaits_approval).collect()),
    );
    let audit_query = AuditQuery { limit: Some(20), ..AuditQuery::default() };
    let audit = visible(super::super::acl::audit(State(app.clone()), caller.clone(), ApiQuery(audit_query)).await.map(
        |json| {
            let mut events = json.0;
            events.sort_by_key(|event| std::cmp::Reverse(event.at));
            events.iter().map(|event| AuditRow::new(event, now)).collect()
        },
    ));
    let page = OverviewPage { chrome, servers, problems, nodes, allocs, alerts, awaiting, deployments, audit };
    viewer.page(drover_ui::render(&page))
}

fn copy_error(error: &crate::ApiError) -> crate::ApiError {
    crate::ApiError(error.0.clone())
}

/// `?filter=&sort=&page=` of the node table.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NodesQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    sort: String,
    /// From 1 ([`drover_ui::pages::nodes::NODES_PER_PAGE`] nodes a page).
    page: Option<usize>,
}

/// `GET /ui/nodes`. A filter that does not parse is shown above an empty
/// table with the CLI's message.
pub(super) async fn nodes(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiQuery(query): ApiQuery<NodesQuery>,
) -> Result<Response, UiError> {
    let chrome = viewer.chrome("Nodes", Section::Nodes);
    let sort = NodeSort::parse(&query.sort);
    let filter = Some(query.filter.as_str()).filter(|filter| !filter.trim().is_empty());
    let page = match super::super::nodes::list_entries(&app, &viewer.caller, &ReadOptions::default(), filter).await {
        Ok((_, entries)) => {
            let usage: HashMap<NodeId, UsageSummary> = app.server.fleet_usage_summary().await.into_iter().collect();
            let table = NodeTable { entries: &entries, usage: &usage };
            NodesPage::on_page(chrome, query.filter, sort, table, query.page.unwrap_or(1))
        }
        Err(error) if error.0.code == drover_types::ErrorCode::InvalidInput => {
            let mut page = NodesPage::new(chrome, query.filter, sort, &[]);
            page.error = Some(error.0.message);
            page
        }
        Err(error) => return Err(error.into()),
    };
    Ok(viewer.page(drover_ui::render(&page)))
}

/// `GET /ui/node/{node}`.
pub(super) async fn node(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, UiError> {
    let caller = &viewer.caller;
    let (_, status) = super::super::nodes::node_status(&app, caller, &ReadOptions::default(), &name).await?;
    let history = visible(
        super::super::nodes::history(State(app.clone()), caller.clone(), ApiPath(status.node.name.clone()))
            .await
            .map(|json| json.0),
    );
    let query = LogQuery {
        q: format!("node:{}", format::quoted(&status.node.name)),
        since: Some("24h".to_owned()),
        ..LogQuery::default()
    };
    let logs = visible(search_lines(&app, caller, query, 20).await);
    let usage_history = visible(
        super::super::node_usage::node_usage_history(
            &app,
            caller,
            &status.node.name,
            None,
            drover_server::usage_history::Step::Minute,
        )
        .await
        .map(|history| history.points),
    );
    let chrome = viewer.chrome(format!("Node {}", status.node.name), Section::Nodes);
    let page = NodePage::new(chrome, &status, history, usage_history, logs);
    Ok(viewer.page(drover_ui::render(&page)))
}

/// The newest `limit` lines of a log query, as the caller may read them.
async fn search_lines(
    app: &AppState,
    caller: &crate::Caller,
    query: LogQuery,
    limit: usize,
) -> ApiResult<Vec<LogLine>> {
    let query = super::super::logs::visible(caller, query)?;
    let page = LogPage { limit: Some(limit), cursor: None };
    let found = app.server.search_logs(query, page).await?;
    Ok(found.records.iter().map(|record| LogLine::new(record, &[])).collect())
}

/// `GET /ui/jobs`.
pub(super) async fn jobs(State(app): State<AppState>, viewer: Viewer) -> Result<Response, UiError> {
    let (_, mut entries) = super::super::jobs::list_entries(&app, &viewer.caller, &ReadOptions::default()).await?;
    entries.sort_by(|left, right| left.id.as_str().cmp(right.id.as_str()));
    let mut chrome = viewer.chrome("Jobs", Section::Jobs);
    chrome.refresh_seconds = 15;
    let now = chrome.now;
    let page = JobsPage { jobs: entries.iter().map(|entry| JobRow::new(entry, now)).collect(), chrome };
    Ok(viewer.page(drover_ui::render(&page)))
}

/// `?version=N&against=M&state=S&page=P` of a job page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct JobQuery {
    version: Option<u64>,
    against: Option<u64>,
    notice: Option<String>,
    /// Every allocation in this state, paged.
    state: Option<String>,
    page: Option<usize>,
}

/// `GET /ui/job/{job_id}`.
pub(super) async fn job(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> Result<Response, UiError> {
    let caller = &viewer.caller;
    let options = ReadOptions::default();
    let (_, status) = super::super::jobs::status_response(&app, caller, &options, &job_id).await?;
    let (_, versions) = super::super::jobs::version_list(&app, caller, &options, &job_id).await?;
    let mut chrome = viewer.chrome(format!("Job {job_id}"), Section::Jobs);
    chrome.refresh_seconds = 15;
    let view = AllocView { state: query.state.filter(|state| !state.is_empty()), page: query.page.unwrap_or(1) };
    let mut page = JobPage::listing(chrome, &status, &versions, query.version, query.against, &view);
    page.can_submit = caller.allows(AclScope::Job, Capability::Submit, &job_id);
    page.notice = Notice { notice: query.notice, silence: None }.text();
    Ok(viewer.page(drover_ui::render(&page)))
}

/// `GET /ui/alloc/{alloc_id}`.
pub(super) async fn alloc(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(alloc_id): ApiPath<String>,
) -> Result<Response, UiError> {
    let (_, alloc) = super::super::allocs::find_alloc(&app, &viewer.caller, &ReadOptions::default(), &alloc_id).await?;
    let mut chrome = viewer.chrome(format!("Allocation {}", alloc.name), Section::Jobs);
    chrome.refresh_seconds = 15;
    let page = AllocPage::new(chrome, &alloc);
    Ok(viewer.page(drover_ui::render(&page)))
}

/// `GET /ui/alloc/{alloc_id}/output?task=&type=`: the task's output as
/// text, through the API's own log handler (its checks included).
pub(super) async fn alloc_output(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(alloc_id): ApiPath<String>,
    uri: axum::http::Uri,
) -> Result<Response, UiError> {
    let options = axum::extract::Query::try_from_uri(&uri)
        .map_err(|rejection| UiError::from(drover_types::CodedError::invalid(rejection.body_text())))?;
    let api_path = drover_proto::paths::fill(drover_proto::paths::ALLOCATION_LOGS, &[&alloc_id]);
    let api_uri: axum::http::Uri = format!("{api_path}?{}", uri.query().unwrap_or_default())
        .parse()
        .map_err(|_| UiError::from(drover_types::CodedError::invalid("invalid query")))?;
    let mut response =
        super::super::allocs::logs(State(app), viewer.caller.clone(), ApiPath(alloc_id), api_uri, ApiQuery(options.0))
            .await?;
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response.into_response())
}

/// `?q=&since=&until=&cursor=&count_by=` of the log page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LogsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<String>,
    #[serde(default)]
    count_by: String,
}

/// Lines per page of the log page.
const LOG_PAGE_LINES: usize = 100;

/// Values in the log page's count panel.
const LOG_COUNT_VALUES: usize = 15;

/// `GET /ui/logs`. A query that does not parse is shown with the CLI's
/// message; a field the count panel cannot count by, with the API's, next
/// to the lines.
pub(super) async fn logs(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, UiError> {
    let chrome = viewer.chrome("Logs", Section::Logs);
    let since = if query.since.trim().is_empty() { "1h".to_owned() } else { query.since.trim().to_owned() };
    let page = LogsPage::new(chrome, query.q.clone(), since.clone(), query.until.trim().to_owned())
        .counting_by(&query.count_by);
    let log_query = LogQuery {
        q: query.q.clone(),
        since: Some(since),
        until: Some(query.until.trim().to_owned()).filter(|until| !until.is_empty()),
        ..LogQuery::default()
    };
    let answer = async {
        let visible_query = super::super::logs::visible(&viewer.caller, log_query)?;
        let paged = query.cursor.is_some();
        let search = app
            .server
            .search_logs(visible_query.clone(), LogPage { limit: Some(LOG_PAGE_LINES), cursor: query.cursor.clone() })
            .await?;
        let histogram = app.server.log_histogram(visible_query.clone(), LogInterval::default()).await?;
        let counts = match page.count_by.as_str() {
            "" => None,
            by => {
                let count_by = LogCountBy { by: by.to_owned(), top: Some(LOG_COUNT_VALUES) };
                Some(app.server.count_logs(visible_query, count_by).await)
            }
        };
        ApiResult::Ok((search, histogram, counts, paged))
    }
    .await;
    let page = match answer {
        Ok((search, histogram, counts, paged)) => {
            let page = page.with_results(&search, &histogram, &words_of(&query.q), paged);
            match counts {
                None => page,
                Some(Ok(counts)) => page.with_counts(&counts),
                Some(Err(error)) if error.code == drover_types::ErrorCode::InvalidInput => {
                    LogsPage { count_error: Some(error.message), ..page }
                }
                Some(Err(error)) => return Err(error.into()),
            }
        }
        Err(error) if error.0.code == drover_types::ErrorCode::InvalidInput => {
            LogsPage { error: Some(error.0.message), ..page }
        }
        Err(error) => return Err(error.into()),
    };
    Ok(viewer.page(drover_ui::render(&page)))
}

/// `?q=` of the live tail.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TailQuery {
    #[serde(default)]
    q: String,
}

/// `GET /ui/logs/tail?q=`: the matching lines as they reach a server, one
/// JSON record per line, through the API's tail handler (its checks and
/// narrowing to what the caller may read included). The log page's script
/// reads it with the session cookie, which the JSON API does not take.
pub(super) async fn logs_tail(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiQuery(query): ApiQuery<TailQuery>,
) -> Result<Response, UiError> {
    let log_query = LogQuery { q: query.q, ..LogQuery::default() };
    Ok(super::super::logs::tail(State(app), viewer.caller.clone(), ApiQuery(log_query)).await?)
}

/// `?scope=&node=&hostgroup=&message=&since=&until=&count_by=` of the
/// "here or everywhere?" switch of a live-tailed line.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LikeQuery {
    scope: String,
    node: String,
    hostgroup: String,
    message: String,
    since: String,
    until: String,
    count_by: String,
}

/// `GET /ui/logs/like`: a redirect (303) to the search for lines like
/// one line, in its node, its host group or the whole fleet (what the
/// log page links to directly for the lines it renders; the live tail's
/// lines come to the browser as JSON and link here).
pub(super) async fn logs_like(viewer: Viewer, ApiQuery(like): ApiQuery<LikeQuery>) -> Result<Response, UiError> {
    viewer.caller.require(AclScope::Logs, Capability::Read)?;
    let scope = Scope::parse(&like.scope).ok_or_else(|| {
        let error = CodedError::invalid(format!("scope {:?}: give node, hostgroup or fleet", like.scope));
        UiError::new(error, &viewer.caller.name)
    })?;
    let hostgroup = Some(like.hostgroup.as_str()).filter(|group| !group.is_empty());
    let q = drover_ui::pages::logs::like_query(&like.message, scope, &like.node, hostgroup).ok_or_else(|| {
        let why = match hostgroup {
            None if scope == Scope::Hostgroup => "the line has no host group: look on its node or everywhere",
            _ => "the line has no word without digits to search for: search for part of it in the box",
        };
        UiError::new(CodedError::invalid(why), &viewer.caller.name)
    })?;
    let to = format!(
        "{}{}",
        paths::UI_LOGS,
        format::query(&[("q", &q), ("since", &like.since), ("until", &like.until), ("count_by", &like.count_by)])
    );
    Ok(Redirect::to(&to).into_response())
}

/// The words and phrases of a log query that search the message (not
/// under a `NOT`): what the log page marks in the lines.
fn words_of(query: &str) -> Vec<String> {
    use drover_filter::log_query::{Expr, Value, parse};
    fn collect(expr: &Expr, words: &mut Vec<String>) {
        match expr {
            Expr::Match { field: None, value: Value::Word(word) | Value::Phrase(word) | Value::Prefix(word) } => {
                words.push(word.clone());
            }
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|part| collect(part, words)),
            _ => {}
        }
    }
    let mut words = Vec::new();
    if let Ok(expr) = parse(query) {
        collect(&expr, &mut words);
    }
    words
}

/// `GET /ui/alerts`.
pub(super) async fn alerts(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiQuery(notice): ApiQuery<Notice>,
) -> Result<Response, UiError> {
    let caller = &viewer.caller;
    let alerts = super::super::react::alerts(State(app.clone()), caller.clone(), ApiQuery(Default::default())).await?.0;
    let top = super::super::react::top(State(app.clone()), caller.clone(), ApiQuery(Default::default())).await?.0;
    let mut chrome = viewer.chrome("Alerts", Section::Alerts);
    chrome.refresh_seconds = 15;
    let now = chrome.now;
    let page = AlertsPage {
        alerts: alert_rows(&alerts, now),
        silences: alerts
            .silences
            .iter()
            .filter(|silence| silence.ends > now)
            .map(|silence| SilenceRow {
                id: silence.id.clone(),
                matchers: silence.matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                ends: format::ago(silence.ends, now),
                author: silence.author.clone(),
                comment: silence.comment.clone(),
            })
            .collect(),
        top: top
            .iter()
            .map(|count| TopRow { name: count.name.clone(), count: count.count, last: format::ago(count.last, now) })
            .collect(),
        can_ack: caller.require(AclScope::Site, Capability::Apply).is_ok(),
        // The capability `POST /v1/silences` and `DELETE /v1/silence/{id}` require.
        can_silence: caller.require(AclScope::Site, Capability::Apply).is_ok(),
        silence_matchers: notice.silence.clone().unwrap_or_default(),
        notice: notice.text(),
        chrome,
    };
    Ok(viewer.page(drover_ui::render(&page)))
}

/// The rows of the pending and firing alerts, firing first.
fn alert_rows(alerts: &drover_react::api::AlertsResponse, now: Timestamp) -> Vec<AlertRow> {
    let mut rows: Vec<AlertRow> = alerts
        .alerts
        .iter()
        .map(|view| {
            let alert = &view.alert;
            AlertRow {
                id: alert.id.to_string(),
                name: alert.rule.clone(),
                state: match alert.state {
                    AlertState::Firing => "firing".to_owned(),
                    AlertState::Pending => "pending".to_owned(),
                },
                severity: alert.labels.get("severity").cloned().unwrap_or_default(),
                summary: alert
                    .labels
                    .iter()
                    .filter(|(name, _)| !matches!(name.as_str(), "alertname" | "severity"))
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                since: format::ago(alert.firing_since.unwrap_or(alert.active_since), now),
                runbook: view.runbook.as_ref().map(|runbook| AlertRow::runbook_href(&alert.rule, runbook)),
                acknowledged_by: alert
                    .acknowledged
                    .as_ref()
                    .map(|ack| format!("{} {}", ack.by, format::ago(ack.at, now)))
                    .unwrap_or_default(),
                acknowledged: alert.acknowledged.is_some(),
                silenced_by: view.silenced_by.clone().unwrap_or_default(),
                matchers: alert
                    .labels
                    .iter()
                    .map(|(name, value)| drover_react::matcher::Matcher::equal(name, value).to_string())
                    .collect(),
            }
        })
        .collect();
    rows.sort_by_key(|row| (row.state != "firing", row.name.clone()));
    rows
}

/// The rows of hammer runs and refusals.
fn run_rows(entries: &[drover_react::api::HammerHistoryEntry], now: Timestamp) -> Vec<RunRow> {
    entries
        .iter()
        .map(|entry| {
            let report = entry.report.as_ref().map(|report| format!("{}: {}", report.action, report.output.trim()));
            RunRow {
                id: entry.run.as_ref().map(|run| run.id.0).unwrap_or(0),
                hammer: entry.hammer.clone(),
                target: entry.target.clone(),
                state: match (&entry.run, &entry.refused) {
                    (Some(run), _) => run.state.as_str().to_owned(),
                    (None, _) => "refused".to_owned(),
                },
                when: format::ago(entry.at, now),
                detail: [Some(entry.reason.clone()), entry.refused.clone(), report]
                    .into_iter()
                    .flatten()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
                decided_by: entry.run.as_ref().and_then(|run| run.decided_by.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// `GET /ui/hammers`.
pub(super) async fn hammers(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiQuery(notice): ApiQuery<Notice>,
) -> Result<Response, UiError> {
    let caller = &viewer.caller;
    let hammers = super::super::react::hammers(State(app.clone()), caller.clone()).await?.0;
    let history =
        super::super::react::history(State(app.clone()), caller.clone(), ApiQuery(Default::default())).await?.0;
    let mut chrome = viewer.chrome("Hammers", Section::Hammers);
    chrome.refresh_seconds = 15;
    let now = chrome.now;
    let history = run_rows(&history, now);
    let page = HammersPage {
        hammers: hammers
            .iter()
            .map(|hammer| HammerRow {
                name: hammer.name.clone(),
                trigger: hammer.trigger.clone(),
                action: hammer.action.clone(),
                mode: hammer.mode.clone(),
                paused: hammer.paused,
                runs_last_hour: format!("{} / {}", hammer.runs_last_hour, hammer.per_hour),
                waiting: hammer.waiting,
                last_run: hammer.last_run.map(|at| format::ago(at, now)).unwrap_or_else(|| "never".to_owned()),
            })
            .collect(),
        awaiting: history.iter().filter(|run| run.awaits_approval()).cloned().collect(),
        history,
        can_decide: caller.require(AclScope::Site, Capability::HammerApprove).is_ok(),
        notice: notice.text(),
        chrome,
    };
    Ok(viewer.page(drover_ui::render(&page)))
}

/// `GET /ui/runbook/{name}`.
pub(super) async fn runbook(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, UiError> {
    let runbook = super::super::react::runbook(State(app), viewer.caller.clone(), ApiPath(name)).await?.0;
    let chrome = viewer.chrome(format!("Runbook {}", runbook.name), Section::Alerts);
    let page = RunbookPage { chrome, name: runbook.name, runbook: runbook.runbook, markdown: runbook.markdown };
    Ok(viewer.page(drover_ui::render(&page)))
}
