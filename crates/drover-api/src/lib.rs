//! drover's HTTP API.
//!
//! [`router`] builds the whole API for one [`Server`]: the public `/v1`
//! routes used by the CLI and the dashboard, the agent session WebSocket,
//! and the internal routes servers use among themselves. It is the unit of
//! testing (`tower::ServiceExt::oneshot`, no socket needed).
//!
//! Invariants: every error is `{"code", "message"}` JSON with the status
//! chosen in [`error::status_of`]; every handler takes the [`Caller`] and
//! checks a [`Capability`]; a handler never panics (a panic would still be
//! turned into a 500 JSON answer by the catch-panic layer).

pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod identity;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use drover_server::Server;
use drover_state::State;
use drover_types::{CodedError, DurationSpec, ErrorCode};

pub use error::{ApiError, ApiResult};
pub use identity::{AuditNote, Caller};

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The server this API fronts.
    pub server: Server,
}

/// Largest body of a public request (a job is a few kilobytes).
const PUBLIC_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Largest body of an internal request (a Raft snapshot).
pub(crate) const INTERNAL_BODY_LIMIT: usize = 4 * 1024 * 1024 * 1024 - 1;

/// The whole API of one server.
pub fn router(server: Server) -> Router {
    let state = AppState { server };
    let public = routes::public_routes().layer(DefaultBodyLimit::max(PUBLIC_BODY_LIMIT));
    let internal = routes::internal_routes()
        .layer(DefaultBodyLimit::max(INTERNAL_BODY_LIMIT))
        .route_layer(axum::middleware::map_response(quiet));
    public
        .merge(internal)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), identity::identify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.server.self_metrics_shared(), http_metrics::record))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn quiet(mut response: Response) -> Response {
    response.extensions_mut().insert(identity::Quiet);
    response
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(CodedError::new(
        ErrorCode::NotFound,
        format!("no API route {}; see docs/api.md for the routes", uri.path()),
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError(CodedError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not a method of {}; see docs/api.md for the routes", uri.path()),
    ))
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError(CodedError::internal("the server hit a bug while answering; see its log")).into_response()
}

/// `?index=N&wait=30s&stale=true`: Nomad's blocking queries and stale reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReadOptions {
    /// Answer only once the data's index is above this.
    pub index: Option<u64>,
    /// How long to wait for that (default 5 min, at most 10 min).
    pub wait: Option<String>,
    /// Answer from this server's state without asking the leader.
    #[serde(default)]
    pub stale: bool,
}

impl ReadOptions {
    /// Reads the state these options ask for. `table_index` picks the index
    /// the blocking query watches.
    pub async fn read(&self, server: &Server, table_index: impl Fn(&State) -> u64) -> ApiResult<Arc<State>> {
        if let Some(index) = self.index {
            let wait = match &self.wait {
                Some(text) => {
                    text.parse::<DurationSpec>().map_err(|error| ApiError::invalid(format!("wait: {error}")))?.get()
                }
                None => Duration::from_secs(300),
            }
            .min(Duration::from_secs(600));
            return Ok(server.wait_for_change(index, wait, table_index).await);
        }
        if self.stale {
            return Ok(server.state());
        }
        Ok(server.consistent_state().await?)
    }
}

/// Adds the `X-Drover-Index` header to a response.
pub fn with_index(index: u64, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    if let Ok(value) = HeaderValue::from_str(&index.to_string()) {
        response.headers_mut().insert(drover_proto::api::INDEX_HEADER, value);
    }
    response
}

/// A plain `204 No Content`.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
