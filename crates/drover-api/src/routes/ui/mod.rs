//! The dashboard (`/ui/…`): HTML pages rendered by `drover-ui` from what
//! the JSON API's handlers return.
//!
//! ```text
//!  request ─▶ identify (middleware; the session cookie counts as the token on /ui/ pages)
//!          ─▶ Viewer: the Caller, the cookie, the CSRF token
//!             (ACLs on and no token: redirect to /ui/login)
//!          ─▶ page handler: the SAME functions as the /v1 handlers (same capability checks)
//!          ─▶ drover-ui view model ─▶ HTML
//!  form post ─▶ CSRF checked ─▶ the /v1 handler of the action ─▶ redirect (303)
//! ```
//!
//! So a page shows only what the token may see, an action is audited as
//! its API call is (the identity middleware names it the same), and a
//! refusal reads as the CLI's.

mod actions;
mod exec;
mod pages;
pub(crate) mod session;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use drover_proto::paths;
use drover_types::{CodedError, ErrorCode, Timestamp};
use drover_ui::pages::Visible;
use drover_ui::pages::login::ErrorPage;
use drover_ui::{Chrome, Section};

use crate::identity::Caller;
use crate::{ApiError, ApiResult, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::UI_ROOT, get(|| async { Redirect::to(paths::UI) }))
        .route(paths::UI, get(pages::overview))
        .route(paths::UI_LOGIN, get(session::login_form).post(session::login))
        .route(paths::UI_LOGOUT, post(session::logout))
        .route(paths::UI_NODES, get(pages::nodes))
        .route(paths::UI_NODE, get(pages::node))
        .route(paths::UI_JOBS, get(pages::jobs))
        .route(paths::UI_JOB, get(pages::job))
        .route(paths::UI_JOB_PROMOTE, post(actions::promote))
        .route(paths::UI_JOB_REVERT, post(actions::revert))
        .route(paths::UI_ALLOC, get(pages::alloc))
        .route(paths::UI_ALLOC_OUTPUT, get(pages::alloc_output))
        .route(paths::UI_LOGS, get(pages::logs))
        .route(paths::UI_LOGS_TAIL, get(pages::logs_tail))
        .route(paths::UI_LOGS_LIKE, get(pages::logs_like))
        .route(paths::UI_ALERTS, get(pages::alerts))
        .route(paths::UI_ALERT_ACK, post(actions::ack))
        .route(paths::UI_ALERT_SILENCE, post(actions::silence))
        .route(paths::UI_SILENCE_EXPIRE, post(actions::expire_silence))
        .route(paths::UI_HAMMERS, get(pages::hammers))
        .route(paths::UI_HAMMER_RUN_APPROVE, post(actions::approve))
        .route(paths::UI_HAMMER_RUN_DENY, post(actions::deny))
        .route(paths::UI_RUNBOOK, get(pages::runbook))
        .route(paths::UI_EXEC, get(exec::form).post(exec::run))
        .route(paths::UI_ASSET, get(asset))
}

/// `GET /ui/assets/{file}`: the embedded stylesheet and script.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match drover_ui::assets::asset(&file) {
        Some((bytes, content_type)) => (
            [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")],
            bytes.into_owned(),
        )
            .into_response(),
        None => UiError::from(CodedError::not_found("dashboard file", &file)).into_response(),
    }
}

/// Who is looking: the caller as the identity middleware decided, and
/// the session behind the page's forms.
#[derive(Clone, Debug)]
pub(super) struct Viewer {
    caller: Caller,
    /// The CSRF token of this session.
    csrf: String,
    /// A new session cookie to set (insecure servers: a random value that
    /// only keys the CSRF token).
    new_cookie: Option<String>,
    /// Whether the cookie must be `Secure` (the server speaks TLS).
    secure: bool,
}

impl Viewer {
    /// The frame of a page.
    fn chrome(&self, title: impl Into<String>, section: Section) -> Chrome {
        let mut chrome = Chrome::new(title, section, Timestamp::now());
        chrome.user = self.caller.name.clone();
        chrome.logged_in = self.caller.enforced() && self.caller.accessor.is_some();
        chrome.csrf = self.csrf.clone();
        chrome
    }

    /// A rendered page, with the session cookie when it is new.
    fn page(&self, html: String) -> Response {
        let mut response =
            ([(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, "text/html; charset=utf-8")], Html(html))
                .into_response();
        if let Some(cookie) = &self.new_cookie
            && let Ok(value) = HeaderValue::from_str(&session::set_cookie(cookie, self.secure))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    /// Refuses a form whose CSRF token is missing or wrong.
    fn check_csrf(&self, sent: Option<&str>) -> Result<(), UiError> {
        if session::same_token(sent.unwrap_or_default(), &self.csrf) && !self.csrf.is_empty() {
            return Ok(());
        }
        Err(UiError::new(
            CodedError::new(
                ErrorCode::Forbidden,
                "the form's CSRF token is missing or wrong, so the action was refused: reload the page and submit \
                 it again (a form posted from another site or an old session is refused)",
            ),
            &self.caller.name,
        ))
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, app).await.map_err(IntoResponse::into_response)?;
        let secure = app.server.tls().is_some();
        let cookie = session::cookie_of(&parts.headers);
        if caller.enforced() {
            // With ACLs on, the dashboard is for a logged-in token (or a
            // request that sent one in a header).
            if caller.accessor.is_none() {
                let next = parts.uri.path_and_query().map(|path| path.as_str()).unwrap_or(paths::UI);
                let target = format!("{}{}", paths::UI_LOGIN, drover_ui::format::query(&[("next", next)]));
                return Err(Redirect::to(&target).into_response());
            }
            let key = cookie.or_else(|| session::token_header(&parts.headers)).unwrap_or_default();
            return Ok(Viewer { csrf: session::csrf_of(&key), caller, new_cookie: None, secure });
        }
        let (key, new_cookie) = match cookie {
            Some(cookie) => (cookie, None),
            None => {
                let fresh = drover_acl::new_secret();
                (fresh.clone(), Some(fresh))
            }
        };
        Ok(Viewer { csrf: session::csrf_of(&key), caller, new_cookie, secure })
    }
}

/// A form body; a body that is not a form is refused with an HTML page.
pub(super) struct UiForm<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for UiForm<T> {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Form::<T>::from_request(request, state)
            .await
            .map(|axum::extract::Form(value)| UiForm(value))
            .map_err(|rejection| UiError::from(CodedError::invalid(format!("invalid form: {}", rejection.body_text()))))
    }
}

/// An error shown as a page: the status and message the JSON API gives.
#[derive(Debug)]
pub(super) struct UiError {
    error: CodedError,
    user: String,
}

impl UiError {
    fn new(error: CodedError, user: &str) -> Self {
        UiError { error, user: user.to_owned() }
    }
}

impl From<CodedError> for UiError {
    fn from(error: CodedError) -> Self {
        UiError { error, user: String::new() }
    }
}

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        UiError::from(error.0)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = crate::error::status_of(self.error.code);
        let mut chrome = Chrome::new(status.to_string(), Section::Overview, Timestamp::now());
        if !self.user.is_empty() {
            chrome.user = self.user;
        }
        let page = ErrorPage {
            chrome,
            status: status.to_string(),
            code: self.error.code.to_string(),
            message: self.error.message.clone(),
        };
        let mut response = (status, Html(drover_ui::render(&page))).into_response();
        // The audit middleware records why a request was refused.
        response.extensions_mut().insert(self.error);
        response
    }
}

/// What a page section shows: the value, or the refusal's message.
fn visible<T>(result: ApiResult<T>) -> Visible<T> {
    match result {
        Ok(value) => Visible::Shown(value),
        Err(error) => Visible::Hidden(error.0.message),
    }
}

/// The redirect after a form: back to `to`, with what happened.
fn see_other(to: &str, notice: &str) -> Response {
    let separator = if to.contains('?') { '&' } else { '?' };
    let target = format!("{to}{separator}notice={}", paths::encode(notice));
    (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
}

/// Whether a request path is a dashboard page on which the session
/// cookie stands for the token (not the login form, nor the assets).
pub(crate) fn takes_session_cookie(path: &str) -> bool {
    (path == paths::UI || path.starts_with("/ui/")) && path != paths::UI_LOGIN && !path.starts_with("/ui/assets/")
}

/// The answer to a dashboard request whose session cookie names no valid
/// token: the login form with the reason, and the cookie forgotten.
pub(crate) fn login_again(error: &CodedError, secure: bool) -> Response {
    session::login_page(Some(error.message.clone()), paths::UI.to_owned(), StatusCode::UNAUTHORIZED, Some(secure))
}
