//! The dashboard's buttons: each is a form whose post is checked for its
//! CSRF token and then handed to the `/v1` handler of the same action, so
//! that the capability check, the work and the audit are the API's.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use drover_proto::paths;
use drover_react::api::AckRequest;

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
}

/// The audit note of an action taken through the dashboard: the API
/// path it stands for, so both read the same in `drover audit`.
fn noted(mut response: Response, api_path: String) -> Response {
    response.extensions_mut().insert(AuditNote { target: Some(api_path), details: "from the dashboard".to_owned() });
    response
}

/// `POST /ui/hammers/run/{run}/approve`.
pub(super) async fn approve(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(run): ApiPath<u64>,
    UiForm(form): UiForm<ActionForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let _approved = super::super::react::approve(State(app), viewer.caller.clone(), ApiPath(run)).await?;
    let done = see_other(paths::UI_HAMMERS, &format!("run {run} approved"));
    Ok(noted(done, paths::fill(paths::HAMMER_RUN_APPROVE, &[&run.to_string()])))
}

/// `POST /ui/hammers/run/{run}/deny`.
pub(super) async fn deny(
    State(app): State<AppState>,
    viewer: Viewer,
    ApiPath(run): ApiPath<u64>,
    UiForm(form): UiForm<ActionForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let _denied = super::super::react::deny(State(app), viewer.caller.clone(), ApiPath(run)).await?;
    let done = see_other(paths::UI_HAMMERS, &format!("run {run} denied"));
    Ok(noted(done, paths::fill(paths::HAMMER_RUN_DENY, &[&run.to_string()])))
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
    let page = paths::fill(paths::UI_JOB, &[&job_id]);
    Ok(noted(see_other(&page, "canaries promoted"), paths::fill(paths::JOB_PROMOTE, &[&job_id])))
}
