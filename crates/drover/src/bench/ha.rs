//! High-availability benchmarks on three real server processes:
//! `drover bench leader-failover` (kill -9 of the leader → first
//! acknowledged write) and `drover bench writes` (committed writes per
//! second and latency, side by side with a three-member etcd cluster).
//!
//! `drover bench writes --secure` puts both clusters on TLS with one CA the
//! benchmark makes ([`drover_tls::Ca`]): the drover servers are secure
//! (`--tls-ca-cert/--tls-ca-key`, mutual TLS between them, ACLs; the load
//! generator checks them against the CA and sends a management token from
//! `/v1/acl/bootstrap`), and etcd serves HTTPS on its client and peer URLs
//! and requires client certificates (`--client-cert-auth`,
//! `--peer-client-cert-auth`; the load generator presents one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use drover_client::{Client, Credentials};

use super::fleet::{ChildProcess, free_port, percentiles, wait_until};
use crate::cli::output::{print_json, print_table, table};

/// The CA of `bench writes --secure`, in files both clusters read.
struct BenchCa {
    ca: drover_tls::Ca,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl BenchCa {
    /// Makes a CA and writes `ca.pem` and `ca-key.pem` (0600) into `dir`.
    fn create(dir: &Path) -> anyhow::Result<BenchCa> {
        drover_tls::install_crypto_provider();
        let ca = drover_tls::Ca::generate("bench-writes")?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        drover_tls::write_public(&cert_path, ca.cert_pem())?;
        drover_tls::write_private(&key_path, ca.key_pem())?;
        Ok(BenchCa { ca, cert_path, key_path })
    }

    /// An HTTPS client trusting this CA, presenting `identity` if given.
    fn http(
        &self,
        identity: Option<Arc<drover_tls::Identity>>,
        headers: reqwest::header::HeaderMap,
        concurrency: usize,
    ) -> anyhow::Result<reqwest::Client> {
        let roots = drover_tls::Roots::new(&[self.ca.cert_pem().to_owned()])?;
        let config = drover_tls::client_config(roots, identity)?;
        Ok(reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .default_headers(headers)
            .tls_backend_preconfigured(config)
            .build()?)
    }
}

/// Three (or N) drover servers forming one cluster.
struct Servers {
    dir: tempfile::TempDir,
    addresses: Vec<String>,
    processes: Vec<ChildProcess>,
    /// The CA files the servers are started with; `None`: `--insecure`.
    ca_files: Option<(PathBuf, PathBuf)>,
    /// The CA certificate and the management token, when secure.
    credentials: Credentials,
}

impl Servers {
    async fn start(num: usize) -> anyhow::Result<Servers> {
        Servers::start_with(num, None).await
    }

    /// Secure servers on `ca` (mutual TLS between them, ACLs), bootstrapped
    /// through the API: [`Servers::client`] holds the management token.
    async fn start_secure(num: usize, ca: &BenchCa) -> anyhow::Result<Servers> {
        Servers::start_with(num, Some(ca)).await
    }

    async fn start_with(num: usize, ca: Option<&BenchCa>) -> anyhow::Result<Servers> {
        let dir = tempfile::Builder::new().prefix("drover-bench-ha-").tempdir()?;
        let addresses =
            (0..num).map(|_| free_port().map(|port| format!("127.0.0.1:{port}"))).collect::<Result<_, _>>()?;
        let mut servers = Servers {
            dir,
            addresses,
            processes: Vec::new(),
            ca_files: ca.map(|ca| (ca.cert_path.clone(), ca.key_path.clone())),
            credentials: Credentials { ca_pem: ca.map(|ca| ca.ca.cert_pem().to_owned()), token: None },
        };
        for index in 0..num {
            let process = servers.spawn(index)?;
            servers.processes.push(process);
        }
        if ca.is_some() {
            servers.bootstrap_acls().await?;
        }
        servers.wait_healthy().await?;
        Ok(servers)
    }

    fn spawn(&self, index: usize) -> anyhow::Result<ChildProcess> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("server");
        match &self.ca_files {
            Some((cert, key)) => {
                command.arg("--tls-ca-cert").arg(cert).arg("--tls-ca-key").arg(key);
            }
            None => {
                command.arg("--insecure");
            }
        }
        command.args(["--bind", &self.addresses[index], "--data-dir"]);
        command.arg(self.dir.path().join(format!("server{index}")));
        command.args(["--bootstrap-expect", &self.addresses.len().to_string(), "--join", &self.addresses.join(",")]);
        ChildProcess::spawn(&mut command, &self.dir.path().join(format!("server{index}.log")))
    }

    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::secured(&self.addresses.join(","), &self.credentials)?)
    }

    /// `drover acl bootstrap` once the cluster has a leader; keeps the
    /// management token.
    async fn bootstrap_acls(&mut self) -> anyhow::Result<()> {
        let client = self.client()?;
        let started = Instant::now();
        let created = loop {
            match client.acl_bootstrap().await {
                Ok(created) => break created,
                Err(error) => {
                    anyhow::ensure!(
                        started.elapsed() < Duration::from_secs(60),
                        "the secure servers could not bootstrap their ACLs within 60 s: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        self.credentials.token = Some(created.secret);
        Ok(())
    }

    /// The load generator's headers: the management token when secure.
    fn headers(&self) -> anyhow::Result<reqwest::header::HeaderMap> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.credentials.token {
            let mut value = reqwest::header::HeaderValue::from_str(token)?;
            value.set_sensitive(true);
            headers.insert(drover_proto::api::TOKEN_HEADER, value);
        }
        Ok(headers)
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let client = self.client()?;
        wait_until(Duration::from_secs(60), || {
            let client = client.clone();
            async move { client.cluster_health().await.is_ok_and(|health| health.problems.is_empty()) }
        })
        .await
        .context("the servers did not become healthy")
    }

    async fn leader(&self) -> anyhow::Result<usize> {
        let info = self.client()?.leader().await?;
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
    let client = servers.client()?;
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
    secure: bool,
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
                http.put(format!("{base}{}", drover_proto::paths::fill(drover_proto::paths::VARIABLE, &[key])))
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

/// Closed-loop writers, `concurrency` of them spread over the members,
/// sharing `http` (its connection pool, TLS and headers).
async fn measure(
    system: &str,
    http: reqwest::Client,
    targets: Vec<Target>,
    concurrency: usize,
    payload: usize,
    window: Duration,
) -> WriteFigures {
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
    /// The load generator's client (HTTPS with a client certificate when
    /// secure).
    http: reqwest::Client,
}

impl Etcd {
    /// Starts three members; with `ca`, on HTTPS client and peer URLs with
    /// certificates from it (127.0.0.1 names), client certificates
    /// required on both.
    async fn start(binary: &PathBuf, ca: Option<&BenchCa>, concurrency: usize) -> anyhow::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("drover-bench-etcd-").tempdir()?;
        let scheme = if ca.is_some() { "https" } else { "http" };
        let mut client_urls = Vec::new();
        let mut peer_urls = Vec::new();
        for _ in 0..3 {
            client_urls.push(format!("{scheme}://127.0.0.1:{}", free_port()?));
            peer_urls.push(format!("{scheme}://127.0.0.1:{}", free_port()?));
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
            if let Some(ca) = ca {
                // Server and client authentication, names 127.0.0.1 and
                // localhost: good for the client and the peer URLs.
                let host_port = client_urls[index].trim_start_matches("https://").to_owned();
                let issued = ca.ca.issue_server(100 + index as u64, &[host_port], CERT_VALIDITY)?;
                let (cert, key) =
                    (dir.path().join(format!("e{index}.pem")), dir.path().join(format!("e{index}-key.pem")));
                drover_tls::write_public(&cert, &issued.cert_pem)?;
                drover_tls::write_private(&key, &issued.key_pem)?;
                command
                    .arg("--cert-file")
                    .arg(&cert)
                    .arg("--key-file")
                    .arg(&key)
                    .arg("--trusted-ca-file")
                    .arg(&ca.cert_path)
                    .arg("--client-cert-auth")
                    .arg("--peer-cert-file")
                    .arg(&cert)
                    .arg("--peer-key-file")
                    .arg(&key)
                    .arg("--peer-trusted-ca-file")
                    .arg(&ca.cert_path)
                    .arg("--peer-client-cert-auth");
            }
            processes.push(ChildProcess::spawn(&mut command, &dir.path().join(format!("e{index}.log")))?);
        }
        let http = match ca {
            Some(ca) => {
                let (csr, key) = drover_tls::node_csr("etcd-load")?;
                let cert = ca.ca.sign_node_csr(&csr, "etcd-load", CERT_VALIDITY)?;
                let identity = drover_tls::Identity::new(&cert, &key)?;
                ca.http(Some(identity), reqwest::header::HeaderMap::new(), concurrency)?
            }
            None => reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?,
        };
        let etcd = Etcd { _dir: dir, client_urls, _processes: processes, http: http.clone() };
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

/// Validity of the certificates `bench writes --secure` issues.
const CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

fn find_etcd() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().map(PathBuf::from).find(|path| path.exists())
}

/// Committed writes per second and latency of three drover servers, side
/// by side with three etcd members, same payload and concurrency.
pub(crate) async fn writes(
    concurrency: usize,
    payload: usize,
    window: Duration,
    secure: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let concurrency = concurrency.max(1);
    let ca_dir = tempfile::Builder::new().prefix("drover-bench-ca-").tempdir()?;
    let ca = if secure { Some(BenchCa::create(ca_dir.path())?) } else { None };
    let (drover_name, etcd_name) = if secure {
        ("drover (3 servers, mTLS)", "etcd (3 members, TLS)")
    } else {
        ("drover (3 servers)", "etcd (3 members)")
    };
    let mut results = Vec::new();
    {
        let servers = match &ca {
            Some(ca) => Servers::start_secure(3, ca).await?,
            None => Servers::start(3).await?,
        };
        let scheme = if secure { "https" } else { "http" };
        let targets =
            servers.addresses.iter().map(|address| Target::Drover { base: format!("{scheme}://{address}") }).collect();
        let http = match &ca {
            Some(ca) => ca.http(None, servers.headers()?, concurrency)?,
            None => reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?,
        };
        results.push(measure(drover_name, http, targets, concurrency, payload, window).await);
    }
    match find_etcd() {
        Some(binary) => {
            let etcd = Etcd::start(&binary, ca.as_ref(), concurrency).await?;
            let targets = etcd.client_urls.iter().map(|url| Target::Etcd { base: url.clone() }).collect();
            results.push(measure(etcd_name, etcd.http.clone(), targets, concurrency, payload, window).await);
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
        secure,
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
