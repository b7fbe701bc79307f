//! `/v1/jobs` and `/v1/job/{id}/…`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use drover_proto::api::{
    AllocCounts, AllocListEntry, DeregisterJobResponse, DispatchJobRequest, DispatchJobResponse, JobListEntry,
    JobStatusResponse, PlanResponse, RegisterJobRequest, RegisterJobResponse, RevertJobRequest,
};
use drover_types::{Allocation, CodedError, Deployment, Evaluation, Job, JobId};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiError, ApiResult, AppState, ReadOptions, with_index};
use drover_types::acl::{AclScope, Capability};

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    let (index, entries) = list_entries(&app, &caller, &options).await?;
    Ok(with_index(index, Json(entries)))
}

/// The jobs the caller may see, and the index of the state read
/// (`GET /v1/jobs` and the dashboard's job list).
pub(super) async fn list_entries(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
) -> ApiResult<(u64, Vec<JobListEntry>)> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = options.read(&app.server, |state| state.table_indexes().jobs.max(state.table_indexes().allocs)).await?;
    let entries: Vec<JobListEntry> = state
        .jobs()
        .filter(|job| caller.allows(AclScope::Job, Capability::Read, job.id.as_str()))
        .map(|job| list_entry(&state, job))
        .collect();
    Ok((state.table_indexes().jobs, entries))
}

pub(super) async fn register(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<RegisterJobRequest>,
) -> ApiResult<Json<RegisterJobResponse>> {
    caller.require_on(AclScope::Job, Capability::Submit, request.job.id.as_str())?;
    Ok(Json(app.server.register_job(request.job).await?))
}

pub(super) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Job, Capability::Read, &job_id)?;
    let state = options.read(&app.server, |state| state.table_indexes().jobs).await?;
    let job = find_job(&state, &job_id)?;
    Ok(with_index(state.table_indexes().jobs, Json(Job::clone(job))))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeregisterOptions {
    #[serde(default)]
    purge: bool,
}

pub(super) async fn deregister(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<DeregisterOptions>,
) -> ApiResult<Json<DeregisterJobResponse>> {
    caller.require_on(AclScope::Job, Capability::Stop, &job_id)?;
    Ok(Json(app.server.deregister_job(&JobId::new(job_id), options.purge).await?))
}

pub(super) async fn status(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    let (index, response) = status_response(&app, &caller, &options, &job_id).await?;
    Ok(with_index(index, Json(response)))
}

/// Everything `drover job status` shows, and the index of the state read
/// (`GET /v1/job/{id}/status` and the dashboard's job page).
pub(super) async fn status_response(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    job_id: &str,
) -> ApiResult<(u64, JobStatusResponse)> {
    caller.require_on(AclScope::Job, Capability::Read, job_id)?;
    let state = options
        .read(&app.server, |state| {
            let indexes = state.table_indexes();
            indexes.jobs.max(indexes.allocs).max(indexes.evals).max(indexes.deployments)
        })
        .await?;
    let job = find_job(&state, job_id)?;
    let mut summary: BTreeMap<String, AllocCounts> =
        job.groups.iter().map(|group| (group.name.clone(), AllocCounts::default())).collect();
    let mut allocs: Vec<&Allocation> = state.allocs_for_job(&job.id).map(|alloc| alloc.as_ref()).collect();
    for alloc in allocs.iter().filter(|alloc| is_current(alloc)) {
        summary.entry(alloc.group.clone()).or_default().add(alloc.client_status);
    }
    allocs.sort_by(|left, right| right.create_index.cmp(&left.create_index).then(left.name.cmp(&right.name)));
    let mut evals: Vec<&Evaluation> = state.evals_for_job(&job.id).map(|eval| eval.as_ref()).collect();
    evals.sort_by_key(|eval| std::cmp::Reverse(eval.create_index));
    evals.truncate(5);
    let mut children: Vec<JobListEntry> = state
        .jobs()
        .filter(|child| child.parent_id.as_ref() == Some(&job.id))
        .map(|child| list_entry(&state, child))
        .collect();
    children.sort_by_key(|child| std::cmp::Reverse(child.submit_time));
    let response = JobStatusResponse {
        job: Job::clone(job),
        deployment: state.latest_deployment(&job.id).map(|deployment| Deployment::clone(deployment)),
        children,
        summary,
        allocs: allocs.into_iter().map(AllocListEntry::from).collect(),
        evals: evals.into_iter().cloned().collect(),
    };
    let indexes = state.table_indexes();
    let index = indexes.jobs.max(indexes.allocs).max(indexes.evals).max(indexes.deployments);
    Ok((index, response))
}

pub(super) async fn allocations(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Job, Capability::Read, &job_id)?;
    let state = options.read(&app.server, |state| state.table_indexes().allocs).await?;
    find_job(&state, &job_id)?;
    let allocs: Vec<AllocListEntry> =
        state.allocs_for_job(&JobId::new(job_id)).map(|alloc| AllocListEntry::from(alloc.as_ref())).collect();
    Ok(with_index(state.table_indexes().allocs, Json(allocs)))
}

pub(super) async fn evaluations(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Job, Capability::Read, &job_id)?;
    let state = options.read(&app.server, |state| state.table_indexes().evals).await?;
    let evals: Vec<Evaluation> = state.evals_for_job(&JobId::new(job_id)).map(|eval| Evaluation::clone(eval)).collect();
    Ok(with_index(state.table_indexes().evals, Json(evals)))
}

pub(super) async fn versions(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    let (index, versions) = version_list(&app, &caller, &options, &job_id).await?;
    Ok(with_index(index, Json(versions)))
}

/// A job's versions, newest first, and the index of the state read
/// (`GET /v1/job/{id}/versions` and the dashboard's job page).
pub(super) async fn version_list(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    job_id: &str,
) -> ApiResult<(u64, Vec<Job>)> {
    caller.require_on(AclScope::Job, Capability::Read, job_id)?;
    let state = options.read(&app.server, |state| state.table_indexes().jobs).await?;
    find_job(&state, job_id)?;
    let mut versions: Vec<Job> = state.job_versions(&JobId::new(job_id)).map(|job| Job::clone(job)).collect();
    versions.reverse();
    Ok((state.table_indexes().jobs, versions))
}

pub(super) async fn plan(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiJson(request): ApiJson<RegisterJobRequest>,
) -> ApiResult<Json<PlanResponse>> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    if request.job.id.as_str() != job_id {
        return Err(ApiError::invalid(format!(
            "the path names job {job_id:?} but the body holds job {:?}",
            request.job.id.as_str()
        )));
    }
    Ok(Json(app.server.plan_job(request.job).await?))
}

fn list_entry(state: &drover_state::State, job: &Job) -> JobListEntry {
    let mut counts = AllocCounts::default();
    for alloc in state.allocs_for_job(&job.id).filter(|alloc| is_current(alloc)) {
        counts.add(alloc.client_status);
    }
    JobListEntry {
        id: job.id.clone(),
        name: job.name.clone(),
        job_type: job.job_type,
        priority: job.priority,
        status: job.status,
        version: job.version,
        stop: job.stop,
        submit_time: job.submit_time,
        allocs: counts,
    }
}

fn find_job<'a>(state: &'a drover_state::State, job_id: &str) -> ApiResult<&'a std::sync::Arc<Job>> {
    state.job(&JobId::new(job_id)).ok_or_else(|| ApiError(CodedError::not_found("job", job_id)))
}

/// Whether an allocation counts in summaries: not one that was replaced by
/// a newer allocation.
fn is_current(alloc: &Allocation) -> bool {
    alloc.next_alloc.is_none() || !alloc.client_status.is_terminal()
}

pub(super) async fn deployment(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Job, Capability::Read, &job_id)?;
    let state = options.read(&app.server, |state| state.table_indexes().deployments).await?;
    find_job(&state, &job_id)?;
    let deployment = state
        .latest_deployment(&JobId::new(job_id.as_str()))
        .ok_or_else(|| ApiError(CodedError::not_found("deployment of job", &job_id)))?;
    Ok(with_index(state.table_indexes().deployments, Json(Deployment::clone(deployment))))
}

pub(super) async fn promote(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<Deployment>> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    Ok(Json(app.server.promote_job(&JobId::new(job_id)).await?))
}

pub(super) async fn revert(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiJson(request): ApiJson<RevertJobRequest>,
) -> ApiResult<Json<RegisterJobResponse>> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    Ok(Json(app.server.revert_job(&JobId::new(job_id), request.version).await?))
}

pub(super) async fn force_periodic(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<RegisterJobResponse>> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    Ok(Json(app.server.force_periodic(&JobId::new(job_id)).await?))
}

/// `POST /v1/job/{id}/dispatch`: launches a child of a parameterized job.
/// Dispatching submits a job, so it takes the same capability as a job
/// submission, on the parent's id.
pub(super) async fn dispatch(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiJson(request): ApiJson<DispatchJobRequest>,
) -> ApiResult<Json<DispatchJobResponse>> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    Ok(Json(app.server.dispatch_job(&JobId::new(job_id), request).await?))
}

/// The body of `POST /v1/job/{id}/scale`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleRequest {
    /// The group whose count changes.
    group: String,
    /// The new count.
    count: u32,
}

/// `POST /v1/job/{id}/scale`: registers a new version of the job with one
/// group's count changed. It goes through the job registration path, so
/// validation (a `scaling` block's `min`/`max`), versioning and the
/// evaluation are those of `drover job run`; it takes the capability of a
/// job submission on the job's id and is audited as `job.scale`.
pub(super) async fn scale(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<String>,
    ApiJson(request): ApiJson<ScaleRequest>,
) -> ApiResult<Json<RegisterJobResponse>> {
    caller.require_on(AclScope::Job, Capability::Submit, &job_id)?;
    let state = app.server.consistent_state().await?;
    let mut job = Job::clone(find_job(&state, &job_id)?);
    scaled(&mut job, &request.group, request.count)?;
    Ok(Json(app.server.register_job(job).await?))
}

/// `job` with `group`'s count set to `count`, or why not: an unknown group,
/// or a count outside the group's `scaling` bounds (checked here too, so
/// the message names the command rather than the job file).
fn scaled(job: &mut Job, group_name: &str, count: u32) -> ApiResult<()> {
    let known: Vec<&str> = job.groups.iter().map(|group| group.name.as_str()).collect();
    let known = known.join(", ");
    let job_id = job.id.to_string();
    let Some(group) = job.groups.iter_mut().find(|group| group.name == group_name) else {
        return Err(ApiError(
            CodedError::not_found("group", format!("{job_id}/{group_name}"))
                .with_hint(format!("job {job_id:?} has the groups {known}")),
        ));
    };
    if let Some(scaling) = &group.scaling
        && !(scaling.min..=scaling.max).contains(&count)
    {
        return Err(ApiError::invalid(format!(
            "cannot scale group {group_name:?} of job {job_id:?} to {count}: its scaling block allows {} to {}; \
             pick a count in that range or change the scaling block in the job file",
            scaling.min, scaling.max
        )));
    }
    group.count = count;
    Ok(())
}
