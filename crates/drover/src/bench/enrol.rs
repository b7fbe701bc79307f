//! `drover bench enrol`: agent enrolment against a secure server.
//!
//! A secure server (its own CA, in a temporary directory) as a process of
//! its own, `drover acl bootstrap` through the API, one join token, then N
//! simulated agents enrolling at once, each as `drover agent
//! --join-token` does (crates/drover-agent/src/enrol.rs): it makes its key
//! and certificate request, trusts the server only through the CA hash of
//! the token (a fresh pinned HTTPS client, so a TLS handshake per agent),
//! `POST /v1/agent/enroll`, and then opens its `wss://` session presenting
//! the node certificate it got. Wall time until every node is registered
//! ready, and the time of each enrolment (key, request, answer), p50/p99.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use drover_proto::api::{EnrollRequest, NodeCertificateResponse};

use super::fleet::{Fleet, FleetSecurity, cpu_seconds, percentiles};
use super::sim::SimAgent;

/// How long an enrolment keeps trying to reach the server (the real
/// agent's patience).
const ENROL_PATIENCE: Duration = Duration::from_secs(60);

/// The real agent's wait between two attempts to reach a server.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Enrolments [`super::sim::start_many`] runs at once for the other
/// benchmarks (this one runs them all at once).
pub(crate) const MAX_ENROLMENTS_IN_FLIGHT: usize = 1_000;

/// One enrolled simulated agent.
pub(crate) struct Enrolment {
    /// TLS presenting the node certificate, for its `wss://` sessions.
    pub(crate) tls: tokio_tungstenite::Connector,
    /// From making the key to holding the certificate.
    pub(crate) took: Duration,
    /// Attempts that could not reach the server (and were retried).
    pub(crate) retries: u32,
}

/// Enrols node `name` with the join token's secret at `address`, trusting
/// the server only if its chain holds the CA whose SHA-256 is `ca_sha256`,
/// as a real agent does on its first start.
pub(crate) async fn enrol_one(address: &str, ca_sha256: &str, secret: &str, name: &str) -> anyhow::Result<Enrolment> {
    let started = Instant::now();
    let (csr, key) = drover_tls::node_csr(name)?;
    let pinned = drover_tls::pinned_client_config(ca_sha256)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tls_backend_preconfigured(pinned)
        .build()?;
    let request = EnrollRequest { secret: secret.to_owned(), name: name.to_owned(), hostgroup: None, csr };
    let url = format!("https://{address}{}", drover_proto::paths::AGENT_ENROLL);
    let mut retries = 0u32;
    let answer = loop {
        match http.post(&url).json(&request).send().await {
            Ok(response) if response.status().is_success() => {
                break response
                    .json::<NodeCertificateResponse>()
                    .await
                    .with_context(|| format!("node {name}: unreadable enrolment answer"))?;
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!("node {name}: enrolment refused ({status}): {text}");
            }
            Err(error) => {
                anyhow::ensure!(
                    started.elapsed() < ENROL_PATIENCE,
                    "node {name}: cannot enrol within {ENROL_PATIENCE:?}: {}",
                    drover_types::error::error_chain(&error)
                );
                retries += 1;
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    };
    let identity = drover_tls::Identity::new(&answer.certificate, &key)?;
    let roots = drover_tls::Roots::new(&[answer.ca])?;
    let config = drover_tls::client_config(roots, Some(identity))?;
    let took = started.elapsed();
    Ok(Enrolment { tls: tokio_tungstenite::Connector::Rustls(Arc::new(config)), took, retries })
}

/// Enrols every name (at most `in_flight` at once); the enrolments come
/// back in the order of `names`.
pub(crate) async fn enrol_many(
    address: &str,
    security: &FleetSecurity,
    names: &[String],
    in_flight: usize,
) -> anyhow::Result<Vec<Enrolment>> {
    let (ca_sha256, secret) = security.join_parts()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (position, name) in names.iter().enumerate() {
        let (address, ca_sha256, secret, name) = (address.to_owned(), ca_sha256.clone(), secret.clone(), name.clone());
        let slots = Arc::clone(&slots);
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            enrol_one(&address, &ca_sha256, &secret, &name).await.map(|enrolment| (position, enrolment))
        });
    }
    let mut enrolments: Vec<Option<Enrolment>> = names.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (position, enrolment) = joined??;
        enrolments[position] = Some(enrolment);
    }
    enrolments.into_iter().map(|enrolment| enrolment.context("an enrolment went missing")).collect()
}

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    num_nodes: usize,
    /// From the first key to the last enrolment answered.
    enrolled_seconds: f64,
    /// From the first key to every node registered ready.
    ready_seconds: f64,
    enrolments_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    retries: u32,
    server_cpu_seconds: f64,
    target_seconds: f64,
    target_met: bool,
}

/// The target of issue 15: 1,000 agents enrolled and ready within 30 s.
const TARGET: Duration = Duration::from_secs(30);

pub(crate) async fn run(num_nodes: usize, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(num_nodes > 0, "--nodes must be at least 1");
    super::ensure_open_files(
        2 * num_nodes as u64 + super::SERVER_RESERVED_FILES,
        &format!("bench enrol --nodes {num_nodes} (an enrolment connection and a session per agent)"),
    )?;
    drover_tls::install_crypto_provider();
    let fleet = Fleet::start_secure_server().await?;
    let security = fleet.security.clone().context("the secure fleet has no security settings")?;
    let (ca_sha256, secret) = security.join_parts()?;
    if !json {
        eprintln!("secure server up, ACLs bootstrapped, join token made; enrolling {num_nodes} simulated agents");
    }
    let names: Vec<String> = (0..num_nodes).map(|number| super::sim::agent_name("enrol", number)).collect();
    let stop = CancellationToken::new();
    let cpu_before = cpu_seconds(fleet.server.pid());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for name in &names {
        let (address, ca_sha256, secret, name) =
            (fleet.address.clone(), ca_sha256.clone(), secret.clone(), name.clone());
        let stop = stop.clone();
        tasks.spawn(async move {
            let enrolment = enrol_one(&address, &ca_sha256, &secret, &name).await?;
            let agent = SimAgent {
                server: address,
                name,
                hostgroup: "bench".to_owned(),
                heartbeats: None,
                tls: Some(enrolment.tls),
            };
            tokio::spawn(agent.run(stop));
            anyhow::Ok((enrolment.took, enrolment.retries))
        });
    }
    let mut samples = Vec::with_capacity(num_nodes);
    let mut retries = 0u32;
    while let Some(joined) = tasks.join_next().await {
        let (took, agent_retries) = joined??;
        samples.push(took);
        retries += agent_retries;
    }
    let enrolled = started.elapsed();
    fleet.wait_ready(&names).await.context("not every enrolled agent became ready")?;
    let ready = started.elapsed();
    let server_cpu = cpu_seconds(fleet.server.pid()) - cpu_before;
    stop.cancel();

    let (p50, p99) = percentiles(&samples);
    let max = samples.iter().max().copied().unwrap_or_default();
    let report = Report {
        hardware: super::hardware(),
        num_nodes,
        enrolled_seconds: enrolled.as_secs_f64(),
        ready_seconds: ready.as_secs_f64(),
        enrolments_per_second: num_nodes as f64 / enrolled.as_secs_f64().max(f64::MIN_POSITIVE),
        p50_ms: p50.as_secs_f64() * 1000.0,
        p99_ms: p99.as_secs_f64() * 1000.0,
        max_ms: max.as_secs_f64() * 1000.0,
        retries,
        server_cpu_seconds: server_cpu,
        target_seconds: TARGET.as_secs_f64(),
        target_met: num_nodes < 1_000 || ready <= TARGET,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("hardware                 {}", report.hardware);
    println!("agents                   {}", report.num_nodes);
    println!(
        "all enrolled             {:.2} s ({:.0} enrolments/s, {} retries)",
        report.enrolled_seconds, report.enrolments_per_second, report.retries
    );
    println!("all registered ready     {:.2} s", report.ready_seconds);
    println!(
        "per enrolment            p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        report.p50_ms, report.p99_ms, report.max_ms
    );
    println!("server CPU               {:.2} s", report.server_cpu_seconds);
    if num_nodes >= 1_000 {
        println!(
            "target                   1,000 agents ready within {:.0} s: {}",
            report.target_seconds,
            if report.target_met { "met" } else { "not met" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
