//! A real Prometheus scrapes `render_prometheus` output and answers PromQL
//! queries about it.
//!
//! Needs Debian's `prometheus` package (`/usr/bin/prometheus`), which
//! `scripts/install-test-deps` installs; without it the test fails under CI
//! and prints `SKIPPED: …` elsewhere (`drover_golden::needs`). Everything
//! listens on 127.0.0.1 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use drover_golden::needs;
use drover_metrics::{CONTENT_TYPE, NodeLabels, NodeSample, Sampler, TaskProbe, render_prometheus};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const DEADLINE: Duration = Duration::from_secs(25);

#[test]
fn prometheus_scrapes_node_metrics() {
    if !needs::are_met([needs::program(PROMETHEUS, "prometheus")]) {
        return;
    }
    let started = Instant::now();

    // Three nodes with fake labels (one needing escapes), from real samples.
    let nodes = [
        label("node-a", "web", "prod"),
        label("node-b", "web", "prod"),
        label("node-c", r#"db "primary"\shard"#, "staging"),
    ];
    let samples = real_samples(nodes.len());
    let body = render_prometheus(nodes.iter().zip(&samples));

    let exporter = Exporter::serve(body);
    let workdir = tempfile::tempdir().unwrap();
    let prometheus = PrometheusProcess::start(workdir.path(), exporter.port);

    // Wait for a scrape to be queryable: one series per node.
    let load = prometheus.wait_for("node_load1", nodes.len(), &exporter);
    let mut seen = load
        .iter()
        .map(|series| {
            let labels = &series["metric"];
            let value = series["value"][1].as_str().unwrap().parse::<f64>().unwrap();
            assert!(value >= 0.0, "{series}");
            assert_eq!(labels["job"], "drover");
            label(
                labels["node"].as_str().unwrap(),
                labels["hostgroup"].as_str().unwrap(),
                labels["environment"].as_str().unwrap(),
            )
        })
        .collect::<Vec<_>>();
    seen.sort_by(|left, right| left.node.cmp(&right.node));
    assert_eq!(seen, nodes, "labels survive the exposition and Prometheus' parser, escapes included");

    // node_exporter's names and labels, so its dashboards' queries work.
    let tmp = prometheus.query(
        r#"100 - 100 * node_filesystem_avail_bytes{mountpoint="/tmp"} / node_filesystem_size_bytes{mountpoint="/tmp"}"#,
    );
    assert_eq!(tmp.len(), nodes.len(), "{tmp:?}");
    for series in &tmp {
        let value = series["value"][1].as_str().unwrap().parse::<f64>().unwrap();
        assert!((0.0..=100.0).contains(&value), "{series}");
        assert!(series["metric"]["fstype"].is_string() && series["metric"]["device"].is_string(), "{series}");
    }
    let cpus = samples.iter().map(|sample| sample.cpus.len()).sum::<usize>();
    assert!(cpus > 0, "this machine's /proc/stat lists its CPUs");
    let idle = prometheus.query(r#"node_cpu_seconds_total{mode="idle"}"#);
    assert_eq!(idle.len(), cpus, "{idle:?}");
    let by_mode = prometheus.query("count by (mode) (node_cpu_seconds_total)");
    assert_eq!(by_mode.len(), 8, "{by_mode:?}");

    // Exact integers, and PromQL over the node labels.
    let memory = prometheus.query(r#"node_memory_MemAvailable_bytes{node="node-b"}"#);
    assert_eq!(memory.len(), 1);
    assert_eq!(memory[0]["value"][1], samples[1].memory_available.to_string());
    let web = prometheus.query(r#"count(node_load1{hostgroup="web",environment="prod"})"#);
    assert_eq!(web[0]["value"][1], "2");

    // Counters are typed as counters (OpenMetrics `_total`), tasks carry their labels.
    let interfaces = samples.iter().map(|sample| sample.net.len()).sum::<usize>();
    let received = prometheus.query("node_network_receive_bytes_total");
    assert_eq!(received.len(), interfaces, "{received:?}");
    let metadata = prometheus.get("/api/v1/metadata?metric=node_network_receive_bytes");
    assert_eq!(metadata["data"]["node_network_receive_bytes"][0]["type"], "counter", "{metadata}");
    let devices = samples.iter().map(|sample| sample.block_devices.len()).sum::<usize>();
    let written = prometheus.query("node_disk_written_bytes_total");
    assert_eq!(written.len(), devices, "{written:?}");
    let tasks = prometheus.query(r#"drover_task_memory_bytes{alloc_id="alloc-1",task="self"}"#);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["metric"]["node"], "node-a");

    eprintln!(
        "prometheus test: {:?} in all, {} scrapes served, {} bytes of exposition",
        started.elapsed(),
        exporter.scrapes.load(Ordering::Relaxed),
        exporter.body_len
    );
}

fn label(node: &str, hostgroup: &str, environment: &str) -> NodeLabels {
    NodeLabels { node: node.to_owned(), hostgroup: hostgroup.to_owned(), environment: environment.to_owned() }
}

/// `count` successive samples of this machine; the first measures this test
/// process as a task.
fn real_samples(count: usize) -> Vec<NodeSample> {
    let mut sampler = Sampler::new();
    let own =
        TaskProbe { alloc_id: "alloc-1".into(), task: "self".into(), cgroup: None, pids: vec![std::process::id()] };
    (0..count)
        .map(|index| {
            std::thread::sleep(Duration::from_millis(100));
            let probes = if index == 0 { std::slice::from_ref(&own) } else { &[] };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            sampler.sample(i64::try_from(now.as_millis()).unwrap(), probes)
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A tiny HTTP server answering `GET /v1/metrics` with a fixed body, stopped
/// when dropped.
struct Exporter {
    port: u16,
    body_len: usize,
    scrapes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    fn serve(body: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let body_len = body.len();
        let scrapes = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let scrapes = Arc::clone(&scrapes);
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if answer(stream, &body).is_ok() {
                                scrapes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(error) => panic!("accept: {error}"),
                    }
                }
            }
        });
        Exporter { port, body_len, scrapes, stop, thread: Some(thread) }
    }
}

fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let response = if request.starts_with(b"GET /v1/metrics ") {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    };
    stream.write_all(response.as_bytes())
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A Prometheus server scraping the exporter every second, killed when
/// dropped (also when the test panics).
struct PrometheusProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl PrometheusProcess {
    fn start(workdir: &Path, exporter_port: u16) -> Self {
        let config = workdir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: drover\n    metrics_path: /v1/metrics\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = workdir.join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", workdir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start prometheus");
        PrometheusProcess { child, port, log }
    }

    /// Polls `query` until it returns `series` series, or fails the test
    /// with Prometheus' log and its view of the target.
    fn wait_for(&self, query: &str, series: usize, exporter: &Exporter) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(result) = self.try_query(query) {
                if result.len() == series {
                    return result;
                }
                last = Some(result);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let targets = self.try_get("/api/v1/targets").map(|targets| targets.to_string());
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!(
            "{query} did not return {series} series within {DEADLINE:?} (last: {last:?}; {} scrapes served)\n\
             targets: {targets:?}\nprometheus log:\n{log}",
            exporter.scrapes.load(Ordering::Relaxed)
        );
    }

    fn query(&self, query: &str) -> Vec<Value> {
        self.try_query(query).unwrap_or_else(|error| panic!("{query}: {error}"))
    }

    fn try_query(&self, query: &str) -> Result<Vec<Value>, String> {
        let answer = self.try_get(&format!("/api/v1/query?query={}", percent_encode(query)))?;
        match answer["data"]["result"].as_array() {
            Some(result) if answer["status"] == "success" => Ok(result.clone()),
            _ => Err(answer.to_string()),
        }
    }

    fn get(&self, path: &str) -> Value {
        self.try_get(path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    /// A blocking HTTP/1.0 GET, returning the JSON body.
    fn try_get(&self, path: &str) -> Result<Value, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|error| error.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .map_err(|error| error.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|error| error.to_string())?;
        let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP body in {response:?}"))?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(format!("{head}\n{body}"));
        }
        serde_json::from_str(body).map_err(|error| format!("{error}: {body}"))
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}
