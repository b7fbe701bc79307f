//! The login session: the cookie that carries the token, the CSRF token
//! of forms, and `/ui/login` and `/ui/logout`.
//!
//! The cookie holds the token's secret (insecure servers: a random value)
//! and is `HttpOnly` (no script reads it), `SameSite=Strict` (no other
//! site's page sends it) and, over TLS, `Secure`. The CSRF token is
//! HMAC-SHA256 keyed by the cookie's value, so every server of the
//! cluster computes the same one and no page of another site can know it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use drover_proto::paths;
use drover_types::{CodedError, ErrorCode, Timestamp};
use drover_ui::pages::login::LoginPage;
use drover_ui::session::COOKIE;
use drover_ui::{Chrome, Section};

use super::{UiError, UiForm, Viewer};
use crate::AppState;
use crate::extract::ApiQuery;

/// The session cookie's value, if the request has one.
pub(crate) fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The token a request sends in a header (scripts and tests).
pub(super) fn token_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(drover_proto::api::TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
}

/// The CSRF token of a session keyed by `key` (lower-case hex).
pub(super) fn csrf_of(key: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else { return String::new() };
    mac.update(b"drover dashboard form");
    mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compares two tokens in constant time.
pub(super) fn same_token(sent: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    sent.len() == expected.len() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// The `Set-Cookie` value of a session.
pub(super) fn set_cookie(value: &str, secure: bool) -> String {
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}", if secure { "; Secure" } else { "" })
}

/// The `Set-Cookie` value that forgets the session.
fn clear_cookie(secure: bool) -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

/// The login page; `forget` (with whether the cookie is `Secure`) also
/// clears the session cookie.
pub(super) fn login_page(error: Option<String>, next: String, status: StatusCode, forget: Option<bool>) -> Response {
    let page = LoginPage { chrome: Chrome::new("Log in", Section::Login, Timestamp::now()), error, next };
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], Html(drover_ui::render(&page))).into_response();
    if let Some(secure) = forget
        && let Ok(value) = HeaderValue::from_str(&clear_cookie(secure))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Where to go after logging in: a dashboard path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains('\\') => next.to_owned(),
        _ => paths::UI.to_owned(),
    }
}

/// `?next=` of the login form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/login`. On an insecure server there is nothing to log in to.
pub(super) async fn login_form(State(app): State<AppState>, ApiQuery(query): ApiQuery<NextQuery>) -> Response {
    let next = safe_next(query.next.as_deref());
    if !app.server.acl_enabled() {
        return axum::response::Redirect::to(&next).into_response();
    }
    login_page(None, next, StatusCode::OK, None)
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /ui/login`: checks the token as every request's is checked, and
/// keeps it in the session cookie. Audited (`ui.login`) by the identity
/// middleware, a refusal with the reason.
pub(super) async fn login(State(app): State<AppState>, UiForm(form): UiForm<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let secret = form.token.trim();
    let error = if secret.is_empty() {
        Some(CodedError::new(ErrorCode::Unauthorized, "no token given: paste the secret of an ACL token"))
    } else if !app.server.acl_enabled() {
        None
    } else {
        app.server.resolve_secret(Some(secret)).err()
    };
    if let Some(error) = error {
        let mut response = login_page(Some(error.message.clone()), next, StatusCode::UNAUTHORIZED, None);
        response.extensions_mut().insert(error);
        return response;
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(secret, app.server.tls().is_some())) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

impl CsrfForm {
    /// The token sent.
    pub(super) fn token(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// `POST /ui/logout`: forgets the session cookie.
pub(super) async fn logout(
    State(app): State<AppState>,
    viewer: Viewer,
    UiForm(form): UiForm<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(form.token())?;
    let mut response = login_page(None, paths::UI.to_owned(), StatusCode::OK, Some(app.server.tls().is_some()));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}
