//! The service catalogue's routes through `router(server)`: empty answers
//! of a cluster without services, the blocking query, and bad queries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use support::{call, start_server};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_cluster_without_services_lists_none_and_a_blocking_watch_waits() {
    let (server, _dir) = start_server().await;
    let (status, body) = call(&server, get("/v1/services")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));
    let (status, body) = call(&server, get("/v1/service/web?tag=v1&healthy=true")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));

    let response = drover_api::router(server.clone()).oneshot(get("/v1/service/web")).await.unwrap();
    let index: u64 = response.headers()["x-drover-index"].to_str().unwrap().parse().unwrap();
    let started = std::time::Instant::now();
    let (status, _) = call(&server, get(&format!("/v1/service/web?index={}&wait=300ms", index + 1000))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "the query waited for a change");

    let (status, body) = call(&server, get("/v1/service/web?healthy=maybe")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    server.shutdown().await;
}
