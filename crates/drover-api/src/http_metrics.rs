//! The middleware that counts every API request for `/v1/metrics`
//! (`drover_http_requests_total`, `drover_http_request_duration_seconds`;
//! the figures are `drover_server::self_metrics::HttpMetrics`).
//!
//! It is added with `Router::layer`, so it runs after routing and reads
//! the route template axum matched ([`MatchedPath`], `/v1/job/{job_id}`)
//! rather than the path asked for: the number of series stays bounded
//! whatever clients ask. It sits outside the identity check, so refused
//! requests (401, 403) are counted too. The duration is until the answer's
//! head is ready; a streamed body (logs, metrics, exec output) is not
//! waited for.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use drover_server::self_metrics::SelfMetrics;

/// Counts one request and how long its answer took (public for the
/// overhead measurement, `examples/http_metrics_overhead.rs`).
pub async fn record(State(metrics): State<Arc<SelfMetrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.http.record(
        route.as_ref().map(MatchedPath::as_str),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
