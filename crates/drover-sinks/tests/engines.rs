#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sinks against receivers that check requests as Loki and OpenSearch
//! would: the snappy + protobuf (or JSON) push body decoded, the NDJSON
//! bulk body parsed, partial failures and 429s answered; every line must
//! arrive at least once, in order per stream, and a restarted sink must
//! send what was committed while it was down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use drover_react::{LogSink, LogSinkKind, LokiFormat};
use drover_sinks::SinkCounters;
use drover_sinks::runner::{Backlog, RunnerSettings};
use drover_types::{DurationSpec, LogRecord};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Received {
    /// Per stream (labels or index), the lines in arrival order.
    streams: BTreeMap<String, Vec<String>>,
    requests: usize,
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// `(field, wire type, payload)` of one protobuf message.
fn fields(bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = varint(bytes, &mut at);
                out.push((field, wire, value.to_le_bytes().to_vec()));
            }
            2 => {
                let length = varint(bytes, &mut at) as usize;
                out.push((field, wire, bytes[at..at + length].to_vec()));
                at += length;
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    out
}

/// Loki's push handler: 429 on the first request, 503 on the second,
/// then 204; the body decoded as Loki does (snappy block, PushRequest).
async fn loki_push(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut received = shared.lock().unwrap();
    received.requests += 1;
    match received.requests {
        1 => return (StatusCode::TOO_MANY_REQUESTS, "Ingestion rate limit exceeded").into_response(),
        2 => return (StatusCode::SERVICE_UNAVAILABLE, "").into_response(),
        _ => {}
    }
    let content_type = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
    if content_type == "application/x-protobuf" {
        let raw = match snap::raw::Decoder::new().decompress_vec(&body) {
            Ok(raw) => raw,
            Err(error) => {
                received.problems.push(format!("not snappy: {error}"));
                return (StatusCode::BAD_REQUEST, "bad snappy").into_response();
            }
        };
        for (field, _, stream) in fields(&raw) {
            assert_eq!(field, 1, "PushRequest has streams only");
            let mut labels = String::new();
            let mut lines = Vec::new();
            let mut last_time = 0i128;
            for (field, _, payload) in fields(&stream) {
                match field {
                    1 => labels = String::from_utf8(payload).unwrap(),
                    2 => {
                        let entry = fields(&payload);
                        let timestamp = fields(&entry.iter().find(|(f, _, _)| *f == 1).unwrap().2);
                        let seconds = timestamp
                            .iter()
                            .find(|(f, _, _)| *f == 1)
                            .map_or(0, |(_, _, v)| u64::from_le_bytes(v.as_slice().try_into().unwrap()));
                        let nanos = timestamp
                            .iter()
                            .find(|(f, _, _)| *f == 2)
                            .map_or(0, |(_, _, v)| u64::from_le_bytes(v.as_slice().try_into().unwrap()));
                        let time = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
                        assert!(time >= last_time, "entries of a stream in time order");
                        last_time = time;
                        let line = entry.iter().find(|(f, _, _)| *f == 2).unwrap().2.clone();
                        lines.push(String::from_utf8(line).unwrap());
                    }
                    other => panic!("unexpected StreamAdapter field {other}"),
                }
            }
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{labels}");
            received.streams.entry(labels).or_default().extend(lines);
        }
    } else if content_type == "application/json" {
        let push: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for stream in push["streams"].as_array().unwrap() {
            let labels = stream["stream"].to_string();
            for value in stream["values"].as_array().unwrap() {
                let nanos = value[0].as_str().unwrap();
                assert!(nanos.parse::<i128>().is_ok(), "timestamps are nanosecond strings");
                received.streams.entry(labels.clone()).or_default().push(value[1].as_str().unwrap().to_owned());
            }
        }
    } else {
        received.problems.push(format!("content type {content_type:?}"));
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "").into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// OpenSearch's `_bulk`: a 429 for the whole first request, then items
/// 429 / 503 for every third document of the second, then success; a
/// document id seen before answers 409 as OpenSearch does for `create`.
async fn bulk(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut received = shared.lock().unwrap();
    received.requests += 1;
    let request_number = received.requests;
    if request_number == 1 {
        return (StatusCode::TOO_MANY_REQUESTS, r#"{"error":"rejected","status":429}"#).into_response();
    }
    assert_eq!(headers.get("content-type").unwrap(), "application/x-ndjson");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with('\n'), "a bulk body ends with a newline");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len() % 2, 0);
    let mut items = Vec::new();
    let mut errors = false;
    for (position, pair) in lines.chunks(2).enumerate() {
        let action: serde_json::Value = serde_json::from_str(pair[0]).unwrap();
        let document: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
        let create = &action["create"];
        let index = create["_index"].as_str().unwrap().to_owned();
        let id = create["_id"].as_str().unwrap().to_owned();
        let status = if request_number == 2 && position % 3 == 1 {
            429
        } else if request_number == 2 && position % 3 == 2 {
            503
        } else {
            let stream = received.streams.entry(format!("{index} ids")).or_default();
            if stream.contains(&id) {
                409
            } else {
                stream.push(id);
                let message = document["message"].as_str().unwrap().to_owned();
                received.streams.entry(index).or_default().push(message);
                201
            }
        };
        errors |= status >= 300;
        items.push(serde_json::json!({"create": {"_index": create["_index"], "_id": create["_id"], "status": status,
            "error": if status >= 300 { serde_json::json!({"type": "x", "reason": "y"}) } else { serde_json::Value::Null }}}));
    }
    axum::Json(serde_json::json!({"took": 1, "errors": errors, "items": items})).into_response()
}

async fn receiver() -> (String, Shared) {
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

fn sink(name: &str, url: &str, kind: LogSinkKind) -> LogSink {
    LogSink {
        name: name.to_owned(),
        kind,
        url: url.to_owned(),
        headers: BTreeMap::new(),
        batch_size: 7,
        batch_wait: DurationSpec::from_millis(20),
        buffer: 1000,
        max_backoff: DurationSpec::from_millis(50),
    }
}

fn record(node: &str, seq: u64) -> LogRecord {
    LogRecord {
        origin: node.to_owned(),
        seq,
        timestamp: 1_796_612_645_000_000_000 + i64::try_from(seq).unwrap() * 1000,
        received: 1_796_612_645_000_000_000,
        node: node.to_owned(),
        hostgroup: None,
        environment: None,
        job: Some("api".to_owned()),
        group: None,
        task: None,
        alloc: None,
        source: "task".to_owned(),
        stream: "stdout".to_owned(),
        level: Some("info".to_owned()),
        message: format!("{node} line {seq}"),
        fields: BTreeMap::new(),
    }
}

/// Waits until `check` holds on what was received, at most 20 s.
async fn wait_for(shared: &Shared, what: &str, check: impl Fn(&Received) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        {
            let received = shared.lock().unwrap();
            assert!(received.problems.is_empty(), "{:?}", received.problems);
            if check(&received) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {:?}", received.streams);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every node's lines, in seq order, as one list per stream containing `node`.
fn lines_of(received: &Received, node: &str) -> Vec<String> {
    received
        .streams
        .iter()
        .filter(|(key, _)| !key.ends_with(" ids"))
        .flat_map(|(_, lines)| lines.iter().filter(|line| line.starts_with(node)).cloned())
        .collect()
}

fn expected(node: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<String> {
    seqs.map(|seq| format!("{node} line {seq}")).collect()
}

struct Running {
    committed: broadcast::Sender<Arc<Vec<LogRecord>>>,
    stop: CancellationToken,
    counters: Arc<SinkCounters>,
    handle: tokio::task::JoinHandle<()>,
}

fn start(sink: LogSink, checkpoint_dir: &std::path::Path, store: Arc<Mutex<Vec<LogRecord>>>) -> Running {
    let (committed, receiver) = broadcast::channel(64);
    let backlog: Backlog = Arc::new(move |since, until| {
        let records: Vec<LogRecord> = store
            .lock()
            .unwrap()
            .iter()
            .filter(|record| record.timestamp >= since && record.timestamp < until)
            .cloned()
            .collect();
        Box::pin(async move { Ok(records) })
    });
    let settings = RunnerSettings {
        checkpoint_dir: checkpoint_dir.to_owned(),
        lookback: Duration::from_secs(3600 * 24 * 365 * 20),
    };
    let counters = Arc::new(SinkCounters::default());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(drover_sinks::runner::run(
        sink,
        reqwest::Client::new(),
        receiver,
        backlog,
        settings,
        Arc::clone(&counters),
        stop.clone(),
    ));
    Running { committed, stop, counters, handle }
}

async fn commit(running: &Running, store: &Arc<Mutex<Vec<LogRecord>>>, records: Vec<LogRecord>) {
    store.lock().unwrap().extend(records.iter().cloned());
    // The runner subscribes at once; wait for it before sending.
    while running.committed.receiver_count() == 0 {
        tokio::task::yield_now().await;
    }
    running.committed.send(Arc::new(records)).unwrap();
}

/// `ordered`: lines must arrive in order per stream (Loki). OpenSearch
/// orders by `@timestamp` and `seq`, not by arrival: retrying only the
/// failed items of a bulk request stores them after later ones.
async fn every_line_arrives(kind: LogSinkKind, ordered: bool) -> (Shared, Arc<SinkCounters>) {
    let (url, shared) = receiver().await;
    let folder = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Vec::new()));
    let running = start(sink("test", &url, kind), folder.path(), Arc::clone(&store));
    for chunk in 0..5u64 {
        let records: Vec<LogRecord> =
            (chunk * 10 + 1..=chunk * 10 + 10).flat_map(|seq| [record("alpha", seq), record("beta", seq)]).collect();
        commit(&running, &store, records).await;
    }
    wait_for(&shared, "50 lines of each node", |received| {
        lines_of(received, "alpha").len() >= 50 && lines_of(received, "beta").len() >= 50
    })
    .await;
    {
        let received = shared.lock().unwrap();
        for node in ["alpha", "beta"] {
            let mut lines = lines_of(&received, node);
            // At least once: a resent batch may repeat lines, never reorder them.
            lines.dedup();
            if !ordered {
                lines.sort_by_key(|line| line.rsplit(' ').next().and_then(|seq| seq.parse::<u64>().ok()));
                lines.dedup();
            }
            assert_eq!(lines, expected(node, 1..=50), "{node}");
        }
    }
    running.stop.cancel();
    running.handle.await.unwrap();
    (shared, running.counters)
}

#[tokio::test]
async fn loki_protobuf_gets_every_line_in_order_through_429_and_503() {
    let kind =
        LogSinkKind::Loki { labels: vec!["node".into(), "job".into()], format: LokiFormat::Protobuf, tenant: None };
    let (shared, counters) = every_line_arrives(kind, true).await;
    assert!(shared.lock().unwrap().streams.contains_key("{node=\"alpha\", job=\"api\"}"));
    assert!(counters.retries.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(counters.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn loki_json_gets_every_line_in_order() {
    let kind = LogSinkKind::Loki { labels: vec!["node".into()], format: LokiFormat::Json, tenant: Some("ops".into()) };
    every_line_arrives(kind, true).await;
}

#[tokio::test]
async fn opensearch_retries_only_failed_items_and_whole_429s() {
    let kind = LogSinkKind::Opensearch { index: "drover-%Y.%m.%d".into() };
    let (shared, counters) = every_line_arrives(kind, false).await;
    let received = shared.lock().unwrap();
    // Each id stored once: partial retries resend only the failed items.
    let ids: usize = received.streams.iter().filter(|(key, _)| key.ends_with(" ids")).map(|(_, ids)| ids.len()).sum();
    assert_eq!(ids, 100);
    assert!(received.streams.contains_key("drover-2026.12.07"));
    assert!(counters.retries.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

/// Lines committed while a sink was stopped are read from the index when
/// it starts again, and those delivered before are not sent again.
#[tokio::test]
async fn a_restarted_sink_resumes_from_its_checkpoint() {
    let (url, shared) = receiver().await;
    let folder = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Vec::new()));
    let kind = LogSinkKind::Opensearch { index: "drover".into() };
    let first = start(sink("resume", &url, kind.clone()), folder.path(), Arc::clone(&store));
    commit(&first, &store, (1..=20).map(|seq| record("alpha", seq)).collect()).await;
    wait_for(&shared, "the first 20 lines", |received| lines_of(received, "alpha").len() >= 20).await;
    first.stop.cancel();
    first.handle.await.unwrap();
    // Committed while no sink ran.
    store.lock().unwrap().extend((21..=30).map(|seq| record("alpha", seq)));
    let second = start(sink("resume", &url, kind), folder.path(), Arc::clone(&store));
    wait_for(&shared, "the lines committed while stopped", |received| lines_of(received, "alpha").len() >= 30).await;
    commit(&second, &store, (31..=35).map(|seq| record("alpha", seq)).collect()).await;
    wait_for(&shared, "live lines after the catch-up", |received| lines_of(received, "alpha").len() >= 35).await;
    let mut lines = lines_of(&shared.lock().unwrap(), "alpha");
    lines.sort_by_key(|line| line.rsplit(' ').next().and_then(|seq| seq.parse::<u64>().ok()));
    // Every line, each stored once (by its `_id`).
    assert_eq!(lines, expected("alpha", 1..=35));
    second.stop.cancel();
    second.handle.await.unwrap();
}
