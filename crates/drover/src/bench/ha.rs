//! High-availability benchmarks on three real server processes:
//! `drover bench leader-failover` (kill -9 of the leader → first
//! acknowledged write) and `drover bench writes` (committed writes per
//! second and latency, side by side with a three-member etcd cluster).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use drover_client::Client;

use super::fleet::{ChildProcess, free_port, percentiles, wait_until};
use crate::cli::output::{print_json, print_table, table};

/// Three (or N) drover servers forming one cluster.
struct Servers {
    dir: tempfile::TempDir,
    addresses: Vec<String>,
    processes: Vec<ChildProcess>,
}

impl Servers {
    async fn start(num: usize) -> anyhow::Result<Servers> {
        let dir = tempfile::Builder::new().prefix("drover-bench-ha-").tempdir()?;
        let addresses =
            (0..num).map(|_| free_port().map(|port| format!("127.0.0.1:{port}"))).collect::<Result<_, _>>()?;
        let mut servers = Servers { dir, addresses, processes: Vec::new() };
        for index in 0..num {
            let process = servers.spawn(index)?;
            servers.processes.push(process);
        }
        servers.wait_healthy().await?;
        Ok(servers)
    }

    fn spawn(&self, index: usize) -> anyhow::Result<ChildProcess> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["server", "--insecure", "--bind", &self.addresses[index], "--data-dir"]);
        command.arg(self.dir.path().join(format!("server{index}")));
        command.args(["--bootstrap-expect", &self.addresses.len().to_string(), "--join", &self.addresses.join(",")]);
        ChildProcess::spawn(&mut command, &self.dir.path().join(format!("server{index}.log")))
    }

    fn client(&self) -> Client {
        Client::new(&self.addresses.join(","))
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let client = self.client();
        wait_until(Duration::from_secs(60), || {
            let client = client.clone();
            async move { client.cluster_health().await.is_ok_and(|health| health.problems.is_empty()) }
        })
        .await
        .context("the servers did not become healthy")
    }

    async fn leader(&self) -> anyhow::Result<usize> {
        let info = self.client().leader().await?;
        let leader = info.leader_address.context("no leader")?;
        self.addresses.iter().position(|address| *address == leader).context("unknown leader address")
    }
}

#[derive(Debug, Serialize)]
struct FailoverReport {
    hardware: String,
    trials: usize,
    samples_ms: Vec<u128>,
    p50_ms: u128,
    p99_ms: u128,
    max_ms: u128,
}

/// kill -9 of the leader → the first acknowledged write, `trials` times.
pub(crate) async fn leader_failover(trials: usize, json: bool) -> anyhow::Result<ExitCode> {
    let mut servers = Servers::start(3).await?;
    let client = servers.client();
    let items = BTreeMap::from([("v".to_owned(), "x".to_owned())]);
    let mut samples = Vec::new();
    for trial in 0..trials {
        client.put_variable(&format!("bench/failover/{trial}/before"), &items, None).await?;
        let leader = servers.leader().await?;
        servers.processes[leader].kill();
        let killed = Instant::now();
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let path = format!("bench/failover/{trial}/{attempt}");
            if client.put_variable(&path, &items, None).await.is_ok() {
                break;
            }
            anyhow::ensure!(killed.elapsed() < Duration::from_secs(60), "no write acknowledged 60 s after the kill");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = killed.elapsed();
        samples.push(elapsed);
        if !json {
            eprintln!("trial {trial}: leader {leader} killed; first acknowledged write after {elapsed:?}");
        }
        let process = servers.spawn(leader)?;
        servers.processes[leader] = process;
        servers.wait_healthy().await?;
    }
    let (p50, p99) = percentiles(&samples);
    let report = FailoverReport {
        hardware: super::hardware(),
        trials,
        samples_ms: samples.iter().map(Duration::as_millis).collect(),
        p50_ms: p50.as_millis(),
        p99_ms: p99.as_millis(),
        max_ms: samples.iter().max().map_or(0, Duration::as_millis),
    };
    if json {
        print_json(&report)?;
    } else {
        let mut rows = table(&["Trials", "p50", "p99", "max", "Target"]);
        rows.add_row(vec![
            trials.to_string(),
            format!("{} ms", report.p50_ms),
            format!("{} ms", report.p99_ms),
            format!("{} ms", report.max_ms),
            "p99 < 2000 ms".to_owned(),
        ]);
        print_table(&rows);
        println!("{}", report.hardware);
    }
    Ok(ExitCode::SUCCESS)
}

/// One system's write figures.
#[derive(Debug, Serialize)]
struct WriteFigures {
    system: String,
    writes: u64,
    errors: u64,
    writes_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct WritesReport {
    hardware: String,
    concurrency: usize,
    payload_bytes: usize,
    seconds: f64,
    results: Vec<WriteFigures>,
    throughput_ratio: Option<f64>,
    p99_ratio: Option<f64>,
}

/// How one write is sent.
#[derive(Clone)]
enum Target {
    Drover { base: String },
    Etcd { base: String },
}

impl Target {
    async fn write(&self, http: &reqwest::Client, key: &str, payload: &str) -> bool {
        let response = match self {
            Target::Drover { base } => {
                http.put(format!("{base}/v1/var/{key}"))
                    .json(&serde_json::json!({ "items": { "v": payload } }))
                    .send()
                    .await
            }
            Target::Etcd { base } => {
                use base64::Engine;
                let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
                http.post(format!("{base}/v3/kv/put"))
                    .json(&serde_json::json!({ "key": encode(key), "value": encode(payload) }))
                    .send()
                    .await
            }
        };
        response.is_ok_and(|response| response.status().is_success())
    }
}

/// Closed-loop writers, `concurrency` of them spread over the members.
async fn measure(
    system: &str,
    targets: Vec<Target>,
    concurrency: usize,
    payload: usize,
    window: Duration,
) -> WriteFigures {
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap_or_default();
    let payload = "x".repeat(payload);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..concurrency {
        let (http, payload, stop) = (http.clone(), payload.clone(), Arc::clone(&stop));
        let target = targets[writer % targets.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("bench/w{writer}/{n}");
                let sent = Instant::now();
                if target.write(&http, &key, &payload).await {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut task_latencies, task_errors)) = task.await {
            latencies.append(&mut task_latencies);
            errors += task_errors;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&latencies);
    WriteFigures {
        system: system.to_owned(),
        writes: latencies.len() as u64,
        errors,
        writes_per_second: latencies.len() as f64 / seconds,
        p50_ms: p50.as_secs_f64() * 1000.0,
        p99_ms: p99.as_secs_f64() * 1000.0,
    }
}

/// A three-member etcd cluster from Debian's `etcd-server`.
struct Etcd {
    _dir: tempfile::TempDir,
    client_urls: Vec<String>,
    _processes: Vec<ChildProcess>,
}

impl Etcd {
    async fn start(binary: &PathBuf) -> anyhow::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("drover-bench-etcd-").tempdir()?;
        let mut client_urls = Vec::new();
        let mut peer_urls = Vec::new();
        for _ in 0..3 {
            client_urls.push(format!("http://127.0.0.1:{}", free_port()?));
            peer_urls.push(format!("http://127.0.0.1:{}", free_port()?));
        }
        let initial: Vec<String> = peer_urls.iter().enumerate().map(|(index, url)| format!("e{index}={url}")).collect();
        let mut processes = Vec::new();
        for index in 0..3 {
            let mut command = Command::new(binary);
            command
                .args(["--name", &format!("e{index}"), "--data-dir"])
                .arg(dir.path().join(format!("e{index}")))
                .args(["--listen-client-urls", &client_urls[index], "--advertise-client-urls", &client_urls[index]])
                .args(["--listen-peer-urls", &peer_urls[index], "--initial-advertise-peer-urls", &peer_urls[index]])
                .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "drover-bench", "--log-level", "error"]);
            processes.push(ChildProcess::spawn(&mut command, &dir.path().join(format!("e{index}.log")))?);
        }
        let etcd = Etcd { _dir: dir, client_urls, _processes: processes };
        let http = reqwest::Client::new();
        let target = Target::Etcd { base: etcd.client_urls[0].clone() };
        wait_until(Duration::from_secs(60), || {
            let (http, target) = (http.clone(), target.clone());
            async move { target.write(&http, "bench/ready", "x").await }
        })
        .await
        .context("etcd did not accept writes")?;
        Ok(etcd)
    }
}

fn find_etcd() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().map(PathBuf::from).find(|path| path.exists())
}

/// Committed writes per second and latency of three drover servers, side
/// by side with three etcd members, same payload and concurrency.
pub(crate) async fn writes(
    concurrency: usize,
    payload: usize,
    window: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let concurrency = concurrency.max(1);
    let mut results = Vec::new();
    {
        let servers = Servers::start(3).await?;
        let targets =
            servers.addresses.iter().map(|address| Target::Drover { base: format!("http://{address}") }).collect();
        results.push(measure("drover (3 servers)", targets, concurrency, payload, window).await);
    }
    match find_etcd() {
        Some(binary) => {
            let etcd = Etcd::start(&binary).await?;
            let targets = etcd.client_urls.iter().map(|url| Target::Etcd { base: url.clone() }).collect();
            results.push(measure("etcd (3 members)", targets, concurrency, payload, window).await);
        }
        None => eprintln!("etcd is not installed (apt-get install etcd-server): drover alone is measured"),
    }
    let (throughput_ratio, p99_ratio) = match results.as_slice() {
        [drover, etcd] if etcd.writes_per_second > 0.0 && drover.p99_ms > 0.0 => {
            (Some(drover.writes_per_second / etcd.writes_per_second), Some(etcd.p99_ms / drover.p99_ms))
        }
        _ => (None, None),
    };
    let report = WritesReport {
        hardware: super::hardware(),
        concurrency,
        payload_bytes: payload,
        seconds: window.as_secs_f64(),
        results,
        throughput_ratio,
        p99_ratio,
    };
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table(&["System", "Writes/s", "p50", "p99", "Errors"]);
    for figures in &report.results {
        rows.add_row(vec![
            figures.system.clone(),
            format!("{:.0}", figures.writes_per_second),
            format!("{:.2} ms", figures.p50_ms),
            format!("{:.2} ms", figures.p99_ms),
            figures.errors.to_string(),
        ]);
    }
    print_table(&rows);
    if let (Some(throughput), Some(p99)) = (report.throughput_ratio, report.p99_ratio) {
        println!(
            "drover/etcd throughput ratio {throughput:.2} (target ≥ 1.0); etcd/drover p99 ratio {p99:.2} (≥ 1.0: drover's p99 no worse)"
        );
    }
    println!("{} concurrent writers, {} byte values, {:?}; {}", concurrency, payload, window, report.hardware);
    Ok(ExitCode::SUCCESS)
}
