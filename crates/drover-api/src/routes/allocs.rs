//! `/v1/allocations` and `/v1/allocation/{id}/…`, including task output
//! streamed from the agent, and the lifecycle routes (Nomad's `alloc
//! restart|signal|stop|exec` and `job restart`, carried out by
//! `drover_server::alloc_lifecycle`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;

use drover_proto::api::AllocListEntry;
use drover_proto::session::{LogStream, RequestBody, ResponseBody};
use drover_types::{Allocation, CodedError};

use drover_proto::lifecycle::{AllocExecRequest, AllocRestartRequest, AllocSignalRequest, JobRestartRequest};
use drover_server::alloc_lifecycle::check_task;

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiError, ApiResult, AppState, ReadOptions, with_index};
use drover_types::acl::{AclScope, Capability};

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = options.read(&app.server, |state| state.table_indexes().allocs).await?;
    let allocs: Vec<AllocListEntry> = state
        .allocs()
        .filter(|alloc| caller.allows(AclScope::Job, Capability::Read, alloc.job_id.as_str()))
        .map(|alloc| AllocListEntry::from(alloc.as_ref()))
        .collect();
    Ok(with_index(state.table_indexes().allocs, Json(allocs)))
}

pub(super) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(alloc_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    let (index, alloc) = find_alloc(&app, &caller, &options, &alloc_id).await?;
    Ok(with_index(index, Json(alloc)))
}

/// One allocation (by id or unique prefix) if the caller may see it, and
/// the index of the state read (`GET /v1/allocation/{id}` and the
/// dashboard's allocation page).
pub(super) async fn find_alloc(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    alloc_id: &str,
) -> ApiResult<(u64, Allocation)> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = options.read(&app.server, |state| state.table_indexes().allocs).await?;
    let alloc = state.resolve_alloc(alloc_id)?;
    caller.require_on(AclScope::Job, Capability::Read, alloc.job_id.as_str())?;
    Ok((state.table_indexes().allocs, Allocation::clone(alloc)))
}

#[derive(Debug, Deserialize)]
pub(super) struct LogOptions {
    /// Task name; optional when the group has one task.
    task: Option<String>,
    /// `stdout` (default) or `stderr`.
    #[serde(rename = "type", default = "default_stream")]
    stream: LogStream,
    /// Keep streaming.
    #[serde(default)]
    follow: bool,
    /// Start this many bytes before the end.
    tail: Option<u64>,
    /// Answer only from this server's agent sessions (set by a server
    /// forwarding the request, so that it is never forwarded twice).
    #[serde(default)]
    local: bool,
}

fn default_stream() -> LogStream {
    LogStream::Stdout
}

pub(super) async fn logs(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(alloc_id): ApiPath<String>,
    uri: axum::http::Uri,
    ApiQuery(options): ApiQuery<LogOptions>,
) -> ApiResult<Response> {
    caller.require(AclScope::Logs, Capability::Read)?;
    let state = app.server.state();
    let alloc = state.resolve_alloc(&alloc_id)?.clone();
    caller.require_on(AclScope::Job, Capability::Read, alloc.job_id.as_str())?;
    let hostgroup = state.node(&alloc.node_id).map(|node| node.hostgroup.clone()).unwrap_or_default();
    caller.require_on(AclScope::Logs, Capability::Read, &hostgroup)?;
    let task = match options.task {
        Some(task) => {
            if !alloc.task_states.is_empty() && !alloc.task_states.contains_key(&task) {
                let known: Vec<&str> = alloc.task_states.keys().map(String::as_str).collect();
                return Err(ApiError::invalid(format!(
                    "allocation {} has no task {task:?}; its tasks are: {}",
                    alloc.id.short(),
                    known.join(", ")
                )));
            }
            task
        }
        None => single_task(&state, &alloc)?,
    };
    let request = RequestBody::ReadLogs {
        alloc_id: alloc.id.clone(),
        task,
        stream: options.stream,
        follow: options.follow,
        tail_bytes: options.tail,
    };
    let local_only = options.local;
    let (request_id, mut answers) = match app.server.request_agent(&alloc.node_id, request).await {
        Ok(opened) => opened,
        Err(error) if error.code == drover_types::ErrorCode::Unavailable && !local_only => {
            // The agent is connected to another server: ask them.
            let query = uri.query().map_or_else(|| "local=true".to_owned(), |query| format!("{query}&local=true"));
            let forwarded = app.server.forward_agent_request(&format!("{}?{query}", uri.path())).await?;
            return Ok(
                ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(forwarded)).into_response()
            );
        }
        Err(error) => return Err(ApiError(error)),
    };
    // Wait for the first part so that an error becomes a proper status.
    let first = answers.recv().await;
    let first_chunk = match first {
        Some(ResponseBody::Chunk { data }) => Some(data),
        Some(ResponseBody::End { error: Some(error) }) => return Err(ApiError(error)),
        Some(ResponseBody::End { error: None } | ResponseBody::Exited { .. } | ResponseBody::TasksReached { .. }) => {
            None
        }
        None => {
            return Err(ApiError(CodedError::new(
                drover_types::ErrorCode::Unavailable,
                "the agent went away before answering",
            )));
        }
    };
    let finished = first_chunk.is_none();
    let guard = CancelOnDrop { server: app.server.clone(), node_id: alloc.node_id.clone(), request_id, finished };
    let head = futures_util::stream::iter(first_chunk.map(|data| Ok::<_, std::io::Error>(bytes::Bytes::from(data))));
    let rest = futures_util::stream::unfold((answers, guard), |(mut answers, mut guard)| async move {
        if guard.finished {
            return None;
        }
        match answers.recv().await {
            Some(ResponseBody::Chunk { data }) => Some((Ok(bytes::Bytes::from(data)), (answers, guard))),
            Some(ResponseBody::Exited { .. } | ResponseBody::TasksReached { .. }) => None,
            Some(ResponseBody::End { error }) => {
                guard.finished = true;
                error.map(|error| (Err(std::io::Error::other(error.message)), (answers, guard)))
            }
            None => None,
        }
    });
    let body = Body::from_stream(head.chain(rest));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// The allocation's only task, or an error listing the tasks.
fn single_task(state: &drover_state::State, alloc: &Allocation) -> ApiResult<String> {
    let group = state.job_version(&alloc.job_id, alloc.job_version).and_then(|job| job.group(&alloc.group).cloned());
    let tasks: Vec<String> = match group {
        Some(group) => group.tasks.iter().map(|task| task.name.clone()).collect(),
        None => alloc.task_states.keys().cloned().collect(),
    };
    match tasks.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ApiError::invalid(format!("allocation {} has no known task", alloc.id.short()))),
        several => Err(ApiError::invalid(format!(
            "allocation {} has several tasks ({}); choose one with task=NAME",
            alloc.id.short(),
            several.join(", ")
        ))),
    }
}

/// Tells the agent to stop streaming when the HTTP client goes away.
struct CancelOnDrop {
    server: drover_server::Server,
    node_id: drover_types::NodeId,
    request_id: u64,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let server = self.server.clone();
        let node_id = self.node_id.clone();
        let request_id = self.request_id;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { server.cancel_agent_request(&node_id, request_id).await });
        }
    }
}

/// The allocation `alloc_id` names (id or unique prefix), from a state
/// that has every committed write, once the caller may see its job.
async fn alloc_for_action(app: &AppState, caller: &Caller, alloc_id: &str) -> ApiResult<Allocation> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = app.server.consistent_state().await?;
    let alloc = state.resolve_alloc(alloc_id)?;
    caller.require_on(AclScope::Job, Capability::Read, alloc.job_id.as_str())?;
    Ok(Allocation::clone(alloc))
}

/// A response with its audit note: on the allocation, with `details`.
fn audited<T: serde::Serialize>(body: T, alloc: &Allocation, details: String) -> Response {
    crate::AuditNote { target: Some(format!("allocation {} (job {})", alloc.id, alloc.job_id)), details }
        .on(Json(body).into_response())
}

/// `POST /v1/allocation/{id}/restart`: restarts tasks in place (job
/// `submit`).
pub(super) async fn restart(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(alloc_id): ApiPath<String>,
    ApiJson(request): ApiJson<AllocRestartRequest>,
) -> ApiResult<Response> {
    let alloc = alloc_for_action(&app, &caller, &alloc_id).await?;
    caller.require_on(AclScope::Job, Capability::Submit, alloc.job_id.as_str())?;
    let task = check_task(&app.server.state(), &alloc, request.task.as_deref(), false)?;
    let reached = app.server.restart_alloc(&alloc, task).await?;
    let details = format!("tasks: {}", reached.tasks.join(", "));
    Ok(audited(reached, &alloc, details))
}

/// `POST /v1/allocation/{id}/signal`: sends a signal to tasks (job
/// `submit`).
pub(super) async fn signal(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(alloc_id): ApiPath<String>,
    ApiJson(request): ApiJson<AllocSignalRequest>,
) -> ApiResult<Response> {
    let alloc = alloc_for_action(&app, &caller, &alloc_id).await?;
    caller.require_on(AclScope::Job, Capability::Submit, alloc.job_id.as_str())?;
    let task = check_task(&app.server.state(), &alloc, request.task.as_deref(), false)?;
    let reached = app.server.signal_alloc(&alloc, task, request.signal.clone()).await?;
    let details = format!("signal: {}; tasks: {}", request.signal, reached.tasks.join(", "));
    Ok(audited(reached, &alloc, details))
}

/// `POST /v1/allocation/{id}/stop`: stops the allocation and has it
/// replaced (job `stop`).
pub(super) async fn stop(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(alloc_id): ApiPath<String>,
) -> ApiResult<Response> {
    let alloc = alloc_for_action(&app, &caller, &alloc_id).await?;
    caller.require_on(AclScope::Job, Capability::Stop, alloc.job_id.as_str())?;
    let stopped = app.server.stop_alloc(&alloc).await?;
    let details = format!("evaluation: {}", stopped.eval_id);
    Ok(audited(stopped, &alloc, details))
}

/// `POST /v1/allocation/{id}/exec`: runs a command in a task's environment
/// (job `read`, and node `exec` on the allocation's node; `exec-as-root`
/// when the task runs as root).
pub(super) async fn exec(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(alloc_id): ApiPath<String>,
    ApiJson(request): ApiJson<AllocExecRequest>,
) -> ApiResult<Response> {
    let alloc = alloc_for_action(&app, &caller, &alloc_id).await?;
    let state = app.server.state();
    let hostgroup = state.node(&alloc.node_id).map(|node| node.hostgroup.clone()).unwrap_or_default();
    caller.require_on(AclScope::Node, Capability::Exec, &hostgroup)?;
    let root_allowed = caller.allows(AclScope::Node, Capability::ExecAsRoot, &hostgroup);
    let task = check_task(&state, &alloc, request.task.as_deref(), true)?.unwrap_or_default();
    drop(state);
    let ran = app.server.exec_in_alloc(&alloc, task.clone(), &request, root_allowed).await?;
    let details = format!(
        "task: {task}; command: {}; exit code: {}",
        request.command.join(" "),
        ran.exit_code.map_or_else(|| format!("none ({})", ran.error), |code| code.to_string())
    );
    Ok(audited(ran, &alloc, details))
}

/// `POST /v1/job/{id}/restart`: restarts the job's allocations in rolling
/// batches (job `submit`); answers when the last batch is back.
pub(super) async fn restart_job(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiJson(request): ApiJson<JobRestartRequest>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    let restarted = app.server.restart_job(&drover_types::JobId::new(&job_id), request.task.clone()).await?;
    let count: usize = restarted.batches.iter().map(Vec::len).sum();
    let details = format!(
        "{count} allocation(s) in {} batch(es){}",
        restarted.batches.len(),
        request.task.as_deref().map(|task| format!("; task: {task}")).unwrap_or_default()
    );
    Ok(crate::AuditNote { target: Some(format!("job {job_id}")), details }.on(Json(restarted).into_response()))
}
