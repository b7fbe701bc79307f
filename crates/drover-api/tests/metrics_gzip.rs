//! `/v1/metrics` answers gzip to a scraper that accepts it (Prometheus
//! sends `Accept-Encoding: gzip`), through `router(server)`: the body
//! decodes to exactly the plain answer, and a client that does not ask, or
//! refuses gzip with `q=0`, gets plain text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use drover_server::Server;
use support::start_server;

/// The status, `Content-Encoding` and body of `GET path`.
async fn get(server: &Server, path: &str, accept_encoding: Option<&str>) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut request = Request::get(path);
    if let Some(accept_encoding) = accept_encoding {
        request = request.header("accept-encoding", accept_encoding);
    }
    let response = drover_api::router(server.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let encoding = response.headers().get("content-encoding").map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, encoding, bytes.to_vec())
}

#[tokio::test]
async fn a_gzip_request_gets_the_same_text_compressed() {
    let (server, _dir) = start_server().await;
    // The fleet scope holds no per-request counters, so two answers agree.
    let path = "/v1/metrics?fleet=true";
    let (status, encoding, plain) = get(&server, path, None).await;
    assert_eq!((status, encoding), (StatusCode::OK, None));
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain.contains("# TYPE node_uname_info gauge\n") && plain.ends_with("# EOF\n"), "{plain}");

    let (status, encoding, compressed) = get(&server, path, Some("deflate, gzip;q=0.9, br")).await;
    assert_eq!((status, encoding.as_deref()), (StatusCode::OK, Some("gzip")));
    assert_eq!(&compressed[..2], [0x1f, 0x8b], "a gzip member");
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(compressed.as_slice()).read_to_string(&mut decoded).unwrap();
    assert_eq!(decoded, plain);
    assert!(compressed.len() < plain.len() / 3, "{} bytes for {}", compressed.len(), plain.len());

    let (_, encoding, refused) = get(&server, path, Some("gzip;q=0, identity")).await;
    assert_eq!(encoding, None);
    assert_eq!(String::from_utf8(refused).unwrap(), plain);
}
