//! The dashboard's buttons: each is a form whose post is checked for its
//! CSRF token and then handed to the `/v1` handler of the same action, so
//! that the capability check, the work and the audit are the API's.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use drover_proto::paths;
use drover_react::api::{AckRequest, SilenceRequest};
use drover_types::CodedError;

use super::{UiError, UiForm, Viewer, see_other};
use crate::AppState;
use crate::extract::{ApiJson, ApiPath};
use crate::identity::AuditNote;

/// A form with its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    csrf: Option<String>,
    /// The alert to acknowledge.
    id: Option<String>,
    /// The job version to revert to.
    version: Option<String>,
}

/// The audit note of an action taken through the dashboard: the API
/// path it stands for, so both read the same in `drover audit`.
fn noted(response: Response, api_path: String) -> Response {
    AuditNote { target: Some(api_path), details: "from the dashboard".to_owned() }.on(response)
}

/// A person's decision on a hammer run waiting for approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Approve,
    Deny,
}

impl Decision {
    /// The past tense, for the notice after the redirect.
    fn done(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Deny => "denied",
        }
    }

    /// The API route the decision stands for.
    fn api_path(self) -> &'static str {
        match self {
            Decision::Approve => paths::HAMMER_RUN_APPROVE,
            Decision::Deny => paths::HAMMER_RUN_DENY,
        }
    }
}

/// `POST /ui/hammers/run/{run}/approve`.
pub(super) async fn approve(
    state: State<AppState>,
    viewer: Viewer,
    run: ApiPath<u64>,
    form: UiForm<ActionForm>,
) -> Result<Response, UiError> {
    decide(state, viewer, run, form, Decision::Approve).await
}

/// `POST /ui/hammers/run/{run}/deny`.
pub(super) async fn deny(
    state: State<AppState>,
    viewer: Viewer,
    run: ApiPath<u64>,
    form: UiForm<ActionForm>,
) -> Result<Response, UiError> {
    decide(state, viewer, run, form, Decision::Deny).await
}

/// Approves or denies a run through the API's handler of that decision.
async fn decide(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(run): ApiPath<u64>,
    UiForm(form): UiForm<ActionForm>,
    decision: Decision,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let (app, caller) = (State(app), viewer.caller.clone());
    match decision {
        Decision::Approve => drop(super::super::react::approve(app, caller, ApiPath(run)).await?),
        Decision::Deny => drop(super::super::react::deny(app, caller, ApiPath(run)).await?),
    }
    let done = see_other(paths::UI_HAMMERS, &format!("run {run} {}", decision.done()));
    Ok(noted(done, paths::fill(decision.api_path(), &[&run.to_string()])))
}

/// `POST /ui/alerts/ack` (`id=ALERT`).
pub(super) async fn ack(
    State(app): State<AppState>,
    viewer: Viewer,
    UiForm(form): UiForm<ActionForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let id = form.id.unwrap_or_default();
    let _acknowledged =
        super::super::react::ack(State(app), viewer.caller.clone(), ApiJson(AckRequest { id: id.clone() })).await?;
    Ok(noted(see_other(paths::UI_ALERTS, &format!("alert {id} acknowledged")), paths::ALERT_ACK.to_owned()))
}

/// `POST /ui/job/{job_id}/promote`.
pub(super) async fn promote(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(job_id): ApiPath<String>,
    UiForm(form): UiForm<ActionForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let _deployment = super::super::jobs::promote(State(app), viewer.caller.clone(), ApiPath(job_id.clone())).await?;
    Ok(back_to_job(&job_id, "canaries promoted", paths::JOB_PROMOTE))
}

/// Back to the job's page with `notice`, audited as the job's `api_path`.
fn back_to_job(job_id: &str, notice: &str, api_path: &str) -> Response {
    let page = paths::fill(paths::UI_JOB, &[job_id]);
    noted(see_other(&page, notice), paths::fill(api_path, &[job_id]))
}

/// `POST /ui/job/{job_id}/revert` (`version=N`): the job's version N
/// submitted again, through `POST /v1/job/{job_id}/revert`.
pub(super) async fn revert(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(job_id): ApiPath<String>,
    UiForm(form): UiForm<ActionForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let text = form.version.unwrap_or_default();
    let version = text.trim().parse::<u64>().map_err(|_| {
        CodedError::invalid(format!("version {text:?}: give the number of the version to revert to (version=3)"))
    })?;
    let request = ApiJson(drover_proto::api::RevertJobRequest { version });
    let registered =
        super::super::jobs::revert(State(app), viewer.caller.clone(), ApiPath(job_id.clone()), request).await?;
    let notice = format!("version {version} submitted again as version {}", registered.0.job_version);
    Ok(back_to_job(&job_id, &notice, paths::JOB_REVERT))
}

/// The silence form: matchers one a line, how long, why.
#[derive(Debug, Deserialize)]
pub(super) struct SilenceForm {
    csrf: Option<String>,
    #[serde(default)]
    matchers: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    comment: String,
}

impl SilenceForm {
    /// The API's request. Like `drover alert silence`, at least one
    /// matcher is needed: a silence without any would hush every alert.
    fn request(&self) -> Result<SilenceRequest, CodedError> {
        let matchers: Vec<String> =
            self.matchers.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect();
        if matchers.is_empty() {
            return Err(CodedError::invalid(
                "a silence needs at least one matcher, one a line, such as alertname=\"tmp-full\": one without any \
                 would silence every alert",
            ));
        }
        Ok(SilenceRequest {
            matchers,
            duration: self.duration.trim().to_owned(),
            comment: self.comment.trim().to_owned(),
        })
    }
}

/// `POST /ui/alerts/silence` (`matchers=…&duration=2h&comment=…`), through
/// `POST /v1/silences`'s handler.
pub(super) async fn silence(
    State(app): State<AppState>,
    viewer: Viewer,
    UiForm(form): UiForm<SilenceForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let request = form.request().map_err(|error| UiError::new(error, &viewer.caller.name))?;
    let silence = super::super::react::silence(State(app), viewer.caller.clone(), ApiJson(request)).await?.0;
    let notice = format!("silence {} until {} UTC", silence.id, drover_ui::format::time(silence.ends));
    Ok(noted(see_other(paths::UI_ALERTS, &notice), paths::SILENCES.to_owned()))
}

/// `POST /ui/silence/{id}/expire`, through `DELETE /v1/silence/{id}`'s
/// handler.
pub(super) async fn expire_silence(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(id): ApiPath<String>,
    UiForm(form): UiForm<ActionForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let _expired = super::super::react::unsilence(State(app), viewer.caller.clone(), ApiPath(id.clone())).await?;
    let done = see_other(paths::UI_ALERTS, &format!("silence {id} expired"));
    Ok(noted(done, paths::fill(paths::SILENCE, &[&id])))
}
