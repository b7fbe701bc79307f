//! Log sinks end to end: a real server (`--insecure`) receives syslog,
//! a site folder with a Loki and an OpenSearch sink is applied with
//! `drover apply`, and receivers in the test that answer as the engines
//! do (a 429 first, then success; a bulk answer with a failed item) get
//! every line, at least once and, for Loki, in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;

use crate::harness::{Cluster, free_port, wait_until};

#[derive(Debug, Default)]
struct Engines {
    /// Loki lines by stream labels, in arrival order.
    loki: BTreeMap<String, Vec<String>>,
    loki_requests: usize,
    /// OpenSearch documents by `_id`: (index, message).
    documents: BTreeMap<String, (String, String)>,
    bulk_requests: usize,
}

type Shared = Arc<Mutex<Engines>>;

/// Loki's push API (JSON): the first request is rate limited.
async fn loki_push(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut engines = shared.lock().unwrap();
    engines.loki_requests += 1;
    if engines.loki_requests == 1 {
        return (StatusCode::TOO_MANY_REQUESTS, "Ingestion rate limit exceeded").into_response();
    }
    if headers.get("content-type").and_then(|value| value.to_str().ok()) != Some("application/json") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "").into_response();
    }
    let Ok(push) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    for stream in push["streams"].as_array().into_iter().flatten() {
        let labels = stream["stream"].to_string();
        for value in stream["values"].as_array().into_iter().flatten() {
            if value[0].as_str().and_then(|nanos| nanos.parse::<i128>().ok()).is_none() {
                return (StatusCode::BAD_REQUEST, "timestamp").into_response();
            }
            let line = value[1].as_str().unwrap_or_default().to_owned();
            engines.loki.entry(labels.clone()).or_default().push(line);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// OpenSearch's `_bulk`: the first request's first item fails with 429.
async fn bulk(State(shared): State<Shared>, body: Bytes) -> impl IntoResponse {
    let mut engines = shared.lock().unwrap();
    engines.bulk_requests += 1;
    let first_request = engines.bulk_requests == 1;
    let text = String::from_utf8_lossy(&body).into_owned();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if !text.ends_with('\n') || !lines.len().is_multiple_of(2) {
        return (StatusCode::BAD_REQUEST, "bad ndjson").into_response();
    }
    let mut items = Vec::new();
    for (position, pair) in lines.chunks(2).enumerate() {
        let action: serde_json::Value = serde_json::from_str(pair[0]).unwrap();
        let document: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
        let id = action["create"]["_id"].as_str().unwrap().to_owned();
        let index = action["create"]["_index"].as_str().unwrap().to_owned();
        let status = if first_request && position == 0 {
            429
        } else {
            match engines.documents.entry(id) {
                std::collections::btree_map::Entry::Occupied(_) => 409,
                std::collections::btree_map::Entry::Vacant(vacant) => {
                    vacant.insert((index, document["message"].as_str().unwrap().to_owned()));
                    201
                }
            }
        };
        items.push(serde_json::json!({"create": {"status": status}}));
    }
    axum::Json(serde_json::json!({"took": 1, "errors": first_request, "items": items})).into_response()
}

async fn engines() -> (String, Shared) {
    let shared = Shared::default();
    let app = Router::new()
        .route("/loki/api/v1/push", post(loki_push))
        .route("/_bulk", post(bulk))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_lines_reach_loki_and_opensearch_sinks_applied_from_the_site_folder() {
    let (engine_url, shared) = engines().await;
    let syslog_port = free_port();
    let syslog = format!("127.0.0.1:{syslog_port}");
    let cluster = Cluster::start_servers_with(1, &["--syslog-bind", &syslog]).await;
    let site = cluster.dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("sinks.hcl"),
        format!(
            r#"
log_sink "loki" {{
  url        = "{engine_url}"
  labels     = ["node", "source"]
  format     = "json"
  batch_size = 5
  batch_wait = "50ms"
  max_backoff = "200ms"
}}
log_sink "opensearch" {{
  url        = "{engine_url}"
  index      = "drover-%Y.%m.%d"
  batch_wait = "50ms"
  max_backoff = "200ms"
}}
"#
        ),
    )
    .unwrap();
    let applied = cluster.cli(&["apply", site.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    // The sinks run once /v1/metrics shows them.
    let metrics_url = format!("http://{}{}", cluster.addresses[0], drover_proto::paths::METRICS);
    let http = reqwest::Client::new();
    let metrics = || async { http.get(&metrics_url).send().await.unwrap().text().await.unwrap() };
    wait_until(
        "both sinks to run",
        Duration::from_secs(30),
        || async {
            let text = metrics().await;
            text.contains("drover_log_sink_delivered_lines_total{sink=\"loki\"}")
                && text.contains("drover_log_sink_delivered_lines_total{sink=\"opensearch\"}")
        },
        String::new,
    )
    .await;

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let count = 30;
    for number in 1..=count {
        let line = format!("<14>Dec  7 03:00:00 switch1 daemon: sink-marker-{number:03}");
        socket.send_to(line.as_bytes(), &syslog).unwrap();
        // One datagram at a time keeps the receiver's order (UDP).
        if number % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let expected: Vec<String> = (1..=count).map(|number| format!("sink-marker-{number:03}")).collect();
    let snapshot = || format!("{:?}", shared.lock().unwrap());
    wait_until(
        "every line at both engines",
        Duration::from_secs(60),
        || async {
            let engines = shared.lock().unwrap();
            let is_marker = |line: &String| line.contains("sink-marker");
            let loki_lines = engines.loki.values().flatten().filter(|line| is_marker(line)).count();
            let documents = engines.documents.values().filter(|(_, message)| is_marker(message)).count();
            loki_lines >= count && documents >= count
        },
        snapshot,
    )
    .await;
    {
        let engines = shared.lock().unwrap();
        let mut loki_lines: Vec<String> =
            engines.loki.values().flatten().filter(|line| line.contains("sink-marker")).cloned().collect();
        loki_lines.dedup();
        assert_eq!(loki_lines, expected, "Loki gets every line, in order");
        assert!(
            engines.loki.keys().any(|labels| labels.contains("\"source\":\"syslog\"")),
            "{:?}",
            engines.loki.keys()
        );
        // Audit events are indexed too, so they reach the sinks as well.
        let mut documents: Vec<String> = engines
            .documents
            .values()
            .filter(|(_, message)| message.contains("sink-marker"))
            .map(|(_, message)| message.clone())
            .collect();
        documents.sort();
        assert_eq!(documents, expected, "OpenSearch stores every line once");
        assert!(engines.documents.values().all(|(index, _)| index.starts_with("drover-20")));
    }
    let text = metrics().await;
    let figure = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(figure("drover_log_sink_retries_total{sink=\"loki\"}") >= 1, "the 429 was retried");
    assert!(figure("drover_log_sink_retries_total{sink=\"opensearch\"}") >= 1, "the failed item was retried");
    assert!(figure("drover_log_sink_delivered_lines_total{sink=\"opensearch\"}") >= count as u64);
    assert_eq!(figure("drover_log_sink_dropped_lines_total{sink=\"loki\"}"), 0);
}
