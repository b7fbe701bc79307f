//! What the HTTP metrics middleware costs a request (docs/metrics.md,
//! "drover's own metrics"): one route answered through a bare axum router,
//! then through the same router with `drover_api::http_metrics::record`,
//! the layer every API request goes through (read the matched route, time
//! the answer, record it in the server's `HttpMetrics`), each driven
//! with `oneshot` in a loop, no socket.
//!
//! `cargo run -p drover-api --release --example http_metrics_overhead`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use axum::routing::get;
use drover_server::self_metrics::SelfMetrics;
use tower::ServiceExt;

const ROUNDS: u32 = 200_000;

fn routes() -> Router {
    Router::new().route("/v1/job/{job_id}", get(|| async { "ok" })).route("/v1/jobs", get(|| async { "ok" }))
}

async fn per_request(router: Router) -> Duration {
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let request = HttpRequest::get("/v1/job/web").body(Body::empty()).unwrap_or_default();
        let response = router.clone().oneshot(request).await;
        assert!(response.is_ok_and(|response| response.status().is_success()));
    }
    started.elapsed() / ROUNDS
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let metrics = Arc::new(SelfMetrics::default());
    let bare = routes();
    let counted =
        routes().layer(axum::middleware::from_fn_with_state(Arc::clone(&metrics), drover_api::http_metrics::record));
    // Warm up both, then measure each twice, alternating.
    per_request(bare.clone()).await;
    per_request(counted.clone()).await;
    let mut bare_times = Vec::new();
    let mut counted_times = Vec::new();
    for _ in 0..2 {
        bare_times.push(per_request(bare.clone()).await);
        counted_times.push(per_request(counted.clone()).await);
    }
    let (bare_best, counted_best) = (bare_times.iter().min(), counted_times.iter().min());
    let (Some(bare_best), Some(counted_best)) = (bare_best, counted_best) else { return };
    println!("bare router:        {bare_best:?} per request");
    println!("with the middleware: {counted_best:?} per request");
    println!("overhead:            {:?} per request", counted_best.saturating_sub(*bare_best));

    let started = Instant::now();
    for _ in 0..ROUNDS {
        metrics.http.record(Some("/v1/job/{job_id}"), "GET", 200, Duration::from_micros(150));
    }
    println!("HttpMetrics::record alone: {:?}", started.elapsed() / ROUNDS);
}
