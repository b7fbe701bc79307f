//! What the API's test files share: a one-server cluster in a temporary
//! directory, and a call through `router(server)` with `oneshot`.

#![allow(clippy::unwrap_used, dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use drover_server::{Server, ServerConfig};

/// Starts a server in a temporary directory and waits until it leads and
/// has applied its first entries.
pub async fn start_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:1".to_owned());
    let server = Server::start(config).await.unwrap();
    for _ in 0..100 {
        if server.status().is_leader && server.consistent_state().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (server, dir)
}

/// One request through the router: the status and the body as JSON (null
/// when it is not JSON).
pub async fn call(server: &Server, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = drover_api::router(server.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}
