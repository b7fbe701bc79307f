//! What the API's test files share: a one-server cluster in a temporary
//! directory, and a call through `router(server)` with `oneshot`.

#![allow(clippy::unwrap_used, dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use drover_server::security::{SecurityMode, TlsSettings};
use drover_server::{Server, ServerConfig};
use drover_state::{Command, CommandResponse};

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

/// Starts a server with ACLs on; answers it and its management token.
pub async fn start_secure_server() -> (Server, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:1".to_owned());
    config.security = SecurityMode::Secure(TlsSettings {
        validity: std::time::Duration::from_secs(86_400),
        ..TlsSettings::default()
    });
    let server = Server::start(config).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(server.status().is_leader && server.consistent_state().await.is_ok()) {
        assert!(std::time::Instant::now() < deadline, "the server did not lead within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = call(&server, Request::post("/v1/acl/bootstrap").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let root = body["secret"].as_str().unwrap().to_owned();
    (server, root, dir)
}

/// A request with `token`, and `body` as JSON when given.
pub fn with_token(method: &str, path: &str, token: &str, body: Option<serde_json::Value>) -> Request<Body> {
    let builder = Request::builder().method(method).uri(path).header(drover_proto::api::TOKEN_HEADER, token);
    match body {
        Some(body) => {
            builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
        }
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// Proposes `command` and asserts it was applied.
pub async fn propose(server: &Server, command: Command) {
    let kind = command.kind();
    let response = server.propose(command).await.unwrap();
    assert!(!matches!(response, CommandResponse::Rejected { .. }), "{kind} was rejected: {response:?}");
}

/// Applies policy `name` with `source` and creates a token `token_name`
/// with it, as the management token `root`; answers the token's secret.
pub async fn token_with_policy(server: &Server, root: &str, name: &str, source: &str, token_name: &str) -> String {
    let policy = serde_json::json!({ "file_name": format!("{name}.hcl"), "source": source });
    let (status, body) = call(server, with_token("PUT", &format!("/v1/acl/policy/{name}"), root, Some(policy))).await;
    assert!(status.is_success(), "{body}");
    let request = serde_json::json!({ "name": token_name, "policies": [name] });
    let (status, body) = call(server, with_token("POST", "/v1/acl/tokens", root, Some(request))).await;
    assert!(status.is_success(), "{body}");
    body["secret"].as_str().unwrap().to_owned()
}
