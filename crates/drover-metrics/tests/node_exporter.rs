//! drover's node series against node_exporter's own output on this
//! machine: every `node_*` series drover writes must exist in
//! node_exporter's output with the same name and the same labels (plus
//! drover's `node`, `hostgroup` and `environment`), so dashboards and alert
//! rules written for node_exporter carry over.
//!
//! Needs Debian's `prometheus-node-exporter` package, which
//! `scripts/install-test-deps` installs; without it the test fails under CI
//! and prints `SKIPPED: …` elsewhere (`drover_golden::needs`). It listens on
//! 127.0.0.1 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_golden::needs;
use drover_metrics::{NodeLabels, Sampler, render_prometheus};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The series the issue names, which both sides must have on any Linux
/// machine with a disk and a network interface.
const REQUIRED: &[&str] = &[
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_load1",
    "node_load5",
    "node_load15",
];

#[test]
fn drovers_node_series_are_named_and_labelled_as_node_exporters() {
    if !needs::are_met([needs::program(NODE_EXPORTER, "prometheus-node-exporter")]) {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exporter = Exporter(
        Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter"),
    );
    let theirs = series_labels(&scrape(port));
    drop(exporter);

    let mut sampler = Sampler::new();
    let sample = sampler.sample(1_700_000_000_000, &[]);
    let labels = NodeLabels { node: "n1".into(), hostgroup: "g".into(), environment: "e".into() };
    let ours = series_labels(&render_prometheus([(&labels, &sample)]));

    for name in REQUIRED {
        assert!(ours.contains_key(*name), "drover does not write {name}: {:?}", ours.keys());
        assert!(theirs.contains_key(*name), "node_exporter does not write {name}: {:?}", theirs.keys());
    }
    if !sample.block_devices.is_empty() {
        for name in ["node_disk_read_bytes_total", "node_disk_written_bytes_total"] {
            assert!(ours.contains_key(name) && theirs.contains_key(name), "{name}");
        }
    }
    let drovers_own = BTreeSet::from(["node", "hostgroup", "environment"]);
    let mut compared = 0;
    for (name, label_names) in ours.iter().filter(|(name, _)| name.starts_with("node_")) {
        let Some(expected) = theirs.get(name) else {
            panic!("node_exporter has no {name}; it has {:?}", theirs.keys())
        };
        let without_ours =
            label_names.iter().filter(|label| !drovers_own.contains(label.as_str())).cloned().collect::<BTreeSet<_>>();
        assert_eq!(&without_ours, expected, "labels of {name}");
        assert!(drovers_own.iter().all(|own| label_names.contains(*own)), "{name} lacks node labels");
        compared += 1;
    }
    eprintln!("{compared} node_* series names compared with node_exporter's");
}

/// Kills node_exporter when dropped, also when the test panics.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// node_exporter's `/metrics`, waiting for it to listen.
fn scrape(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get_metrics(port) {
            Ok(body) => return body,
            Err(error) if Instant::now() > deadline => panic!("node_exporter did not answer: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn get_metrics(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!("unexpected answer: {response:.200}"))),
    }
}

/// Every series name of an exposition with the names of its labels (the
/// union over its series).
fn series_labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = names.entry(line[..end].to_owned()).or_default();
        if line[end..].starts_with('{') {
            let inside = &line[end + 1..line.rfind('}').unwrap()];
            // Label names are before `="`; values are quoted and may hold
            // anything, so skip from each `="` to its closing quote.
            let mut rest = inside;
            while let Some(equals) = rest.find("=\"") {
                labels.insert(rest[..equals].trim_start_matches(',').to_owned());
                let mut value = rest[equals + 2..].char_indices();
                let mut close = None;
                let mut escaped = false;
                for (index, character) in value.by_ref() {
                    match (character, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => {
                            close = Some(index);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                rest = &rest[equals + 2 + close.unwrap() + 1..];
            }
        }
    }
    names
}
