//! `drover bench exec`: wall time of `drover exec -- uptime` on N nodes,
//! from the request to the last node's result, as the CLI sees it.
//!
//! With `--real`, every node is a real agent process on this machine that
//! really runs `/bin/sh -c uptime`; without, simulated agents (real
//! WebSocket sessions in this process) answer at once, which measures
//! drover's own path: the fan-out, the sessions and the collection of
//! results. Either way the server is its own process.
//!
//! With `--secure` the server is secure (HTTPS, mutual TLS, ACLs): the
//! agents enrol with a join token and keep `wss://` sessions with their
//! node certificates, and the client checks the server against the CA and
//! sends a management token, as `drover exec` with `DROVER_CACERT` and
//! `DROVER_TOKEN` does.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use drover_proto::api::{ExecEvent, ExecRequest, ExecStatus};

use super::fleet::{Fleet, percentiles};

#[derive(Debug, Serialize)]
struct Row {
    nodes: usize,
    rounds: usize,
    p50_ms: f64,
    p99_ms: f64,
    samples_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    agents: &'static str,
    secure: bool,
    rows: Vec<Row>,
}

pub(crate) async fn run(
    mut node_counts: Vec<usize>,
    rounds: usize,
    real: bool,
    secure: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    node_counts.sort_unstable();
    node_counts.dedup();
    anyhow::ensure!(node_counts.first().is_some_and(|first| *first > 0), "--nodes needs counts above 0");
    let mut fleet = if secure {
        drover_tls::install_crypto_provider();
        Fleet::start_secure_server().await?
    } else {
        Fleet::start_server().await?
    };
    let stop = CancellationToken::new();
    let mut started_nodes = 0usize;
    let mut rows = Vec::new();
    for &count in &node_counts {
        let names: Vec<String> = (started_nodes..count).map(|number| format!("bench{number:05}")).collect();
        if real {
            fleet.start_agents(&names).await?;
        } else {
            super::sim::start_many(&fleet, &names, None, &stop).await?;
        }
        started_nodes = count;
        if !json {
            let how = if secure { ", enrolled, on mutual TLS" } else { "" };
            eprintln!("{count} {} agents ready{how}", if real { "real" } else { "simulated" });
        }
        let wanted: Vec<String> = (0..count).map(|number| format!("bench{number:05}")).collect();
        // One untimed run warms the connections.
        exec_once(&fleet, &wanted).await?;
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            samples.push(exec_once(&fleet, &wanted).await?);
        }
        let (p50, p99) = percentiles(&samples);
        rows.push(Row {
            nodes: count,
            rounds,
            p50_ms: p50.as_secs_f64() * 1000.0,
            p99_ms: p99.as_secs_f64() * 1000.0,
            samples_ms: samples.iter().map(|sample| sample.as_secs_f64() * 1000.0).collect(),
        });
    }
    stop.cancel();
    let report = Report { hardware: super::hardware(), agents: if real { "real" } else { "simulated" }, secure, rows };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("hardware  {}", report.hardware);
    let server = if secure { "secure (mTLS)" } else { "plain" };
    println!("| agents | server | nodes | p50 | p99 | rounds |");
    println!("|---|---|---|---|---|---|");
    for row in &report.rows {
        println!(
            "| {} | {server} | {} | {:.1} ms | {:.1} ms | {} |",
            report.agents, row.nodes, row.p50_ms, row.p99_ms, row.rounds
        );
    }
    for row in &report.rows {
        let peer = match (real, secure) {
            (true, false) => "drover",
            (true, true) => "drover-mtls",
            (false, false) => "drover-sim",
            (false, true) => "drover-sim-mtls",
        };
        println!(
            "RESULT peer={peer} nodes={} p50_ms={:.0} p99_ms={:.0} rounds={}",
            row.nodes, row.p50_ms, row.p99_ms, row.rounds
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One `drover exec -- uptime` on `nodes`; every node must succeed.
async fn exec_once(fleet: &Fleet, nodes: &[String]) -> anyhow::Result<Duration> {
    let request = ExecRequest {
        nodes: nodes.to_vec(),
        command: vec!["uptime".to_owned()],
        timeout_ms: 60_000,
        max_output_bytes: 64 * 1024,
        ..ExecRequest::default()
    };
    let started = Instant::now();
    let mut events = fleet.client.exec(&request).await?;
    let mut succeeded = 0usize;
    let mut failures = Vec::new();
    while let Some(event) = events.next().await {
        match event? {
            ExecEvent::Result(result) if result.status == ExecStatus::Success => succeeded += 1,
            ExecEvent::Result(result) => failures.push(format!("{} {:?} {}", result.node, result.status, result.error)),
            ExecEvent::End => break,
            ExecEvent::Start { .. } => {}
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(failures.is_empty(), "some nodes failed: {}", failures.join("; "));
    anyhow::ensure!(succeeded == nodes.len(), "{succeeded} of {} nodes answered", nodes.len());
    Ok(elapsed)
}
