//! The API's error contract, tested through `router(server)` with
//! `oneshot` (STYLE.md: the router is the unit of testing): every failure is
//! `{code, message}` JSON with the right status, and bad input changes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use drover_server::{Server, ServerConfig};

async fn start_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:1".to_owned());
    let server = Server::start(config).await.unwrap();
    // Wait until it is leader and has applied its first entries.
    for _ in 0..100 {
        if server.status().is_leader && server.consistent_state().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (server, dir)
}

async fn call(server: &Server, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = drover_api::router(server.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, body: &str) -> Request<Body> {
    Request::post(path).header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn errors_are_coded_json_with_the_right_status() {
    let (server, _dir) = start_server().await;

    let (status, body) = call(&server, get("/v1/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");

    let (status, body) = call(&server, get("/v1/job/missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("missing"));

    let (status, body) = call(&server, post_json("/v1/jobs", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_input");

    let (status, body) = call(&server, post_json("/v1/jobs", r#"{"job": {"id": "x"}}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_input");

    let request = Request::post("/v1/jobs").body(Body::from("{}")).unwrap();
    let (status, body) = call(&server, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("Content-Type"));

    let (status, body) = call(&server, get("/v1/jobs?index=abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_input");

    let (status, body) = call(&server, get("/v1/allocation/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = call(&server, get("/v1/allocation/zzz")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");

    // Nothing above changed the state.
    let (status, body) = call(&server, get("/v1/jobs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_job_without_groups_is_rejected_and_not_registered() {
    let (server, _dir) = start_server().await;
    let source = drover_jobspec_free_job();
    let (status, body) = call(&server, post_json("/v1/jobs", &source)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("no group"), "{body}");
    let (_, jobs) = call(&server, get("/v1/jobs")).await;
    assert_eq!(jobs, serde_json::json!([]));
    server.shutdown().await;
}

/// A syntactically complete job with no groups, as an API caller could send.
fn drover_jobspec_free_job() -> String {
    serde_json::json!({
        "job": {
            "id": "empty", "name": "empty", "type": "service", "priority": 50,
            "datacenters": ["*"], "constraints": [], "affinities": [], "spreads": [],
            "update": null, "periodic": null, "meta": {}, "groups": []
        }
    })
    .to_string()
}

#[tokio::test]
async fn blocking_queries_return_the_index_and_wait_for_changes() {
    let (server, _dir) = start_server().await;
    let response = drover_api::router(server.clone()).oneshot(get("/v1/jobs")).await.unwrap();
    let index: u64 = response.headers()["x-drover-index"].to_str().unwrap().parse().unwrap();
    let started = std::time::Instant::now();
    let (status, _) = call(&server, get(&format!("/v1/jobs?index={}&wait=300ms", index + 1000))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "the query waited");
    server.shutdown().await;
}
