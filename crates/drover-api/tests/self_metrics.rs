//! drover's own series on `/v1/metrics`, through `router(server)`: the
//! HTTP middleware counts requests under their route template (not the
//! path asked for), unmatched ones as `route="other"`, and the Raft figures
//! of a one-server cluster are there; the fleet scope leaves them out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use drover_server::Server;
use support::{call, start_server};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn metrics_text(server: &Server, path: &str) -> String {
    let response = drover_api::router(server.clone()).oneshot(get(path)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The value of the sample written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_raft_figures_are_exposed() {
    let (server, _dir) = start_server().await;
    for job in ["web", "db", "cache"] {
        let (status, _) = call(&server, get(&format!("/v1/job/{job}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = call(&server, get("/v1/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let text = metrics_text(&server, "/v1/metrics").await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    let job_route = r#"route="/v1/job/{job_id}""#;
    assert_eq!(
        value(&text, &format!(r#"drover_http_requests_total{{{job_route},method="GET",status="404"}}"#)),
        Some(3.0),
        "{text}"
    );
    assert_eq!(value(&text, &format!("drover_http_request_duration_seconds_count{{{job_route}}}")), Some(3.0));
    assert_eq!(value(&text, r#"drover_http_requests_total{route="other",method="GET",status="404"}"#), Some(1.0));
    assert!(!text.contains("/v1/job/web"), "a raw path became a label: {text}");

    assert_eq!(value(&text, "drover_raft_is_leader"), Some(1.0), "{text}");
    assert!(value(&text, "drover_raft_term").unwrap() >= 1.0);
    assert!(value(&text, "drover_raft_commit_index").unwrap() >= 1.0);
    assert!(value(&text, "drover_raft_leader_changes_total").unwrap() >= 1.0);
    assert_eq!(value(&text, "drover_agent_sessions"), Some(0.0));

    // The scrape itself was counted once its answer's head was ready.
    let again = metrics_text(&server, "/v1/metrics").await;
    assert_eq!(
        value(&again, r#"drover_http_requests_total{route="/v1/metrics",method="GET",status="200"}"#),
        Some(1.0),
        "{again}"
    );

    let fleet = metrics_text(&server, "/v1/metrics?fleet=true").await;
    assert!(!fleet.contains("drover_raft_term"), "own series in the fleet scope: {fleet}");
}
