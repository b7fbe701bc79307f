//! `drover bench failover`: how long a machine's death takes to heal.
//!
//! `--real`: a server and real agents as separate processes (this binary),
//! default heartbeat settings (2 s interval, 8 s TTL), a service job with
//! one allocation per node. Each trial kills -9 one agent and every
//! process it started (a machine dying), and measures the time until the
//! job runs its full count on the other nodes; the agent then comes back
//! for the next trial.
//!
//! Without `--real`: the same against an in-process server and simulated
//! agents (real WebSocket sessions, no tasks), where a trial closes one
//! simulated agent's session.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use drover_client::Client;
use drover_server::{Server, ServerConfig};
use drover_types::AllocClientStatus;

use super::fleet::{Fleet, percentiles, wait_until};
use super::sim::SimAgent;

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    mode: &'static str,
    num_nodes: usize,
    num_trials: usize,
    heartbeat_interval_seconds: f64,
    heartbeat_ttl_seconds: f64,
    p50_seconds: f64,
    p99_seconds: f64,
    samples_seconds: Vec<f64>,
}

pub(crate) async fn run(num_nodes: usize, num_trials: usize, real: bool, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(num_nodes >= 2 && num_trials >= 1, "need at least 2 nodes and 1 trial");
    let samples = if real {
        real_trials(num_nodes, num_trials, json).await?
    } else {
        simulated_trials(num_nodes, num_trials, json).await?
    };
    let (p50, p99) = percentiles(&samples);
    let defaults = drover_server::HeartbeatConfig::default();
    let report = Report {
        hardware: super::hardware(),
        mode: if real { "real agents" } else { "simulated agents" },
        num_nodes,
        num_trials,
        heartbeat_interval_seconds: defaults.interval.as_secs_f64(),
        heartbeat_ttl_seconds: defaults.ttl.as_secs_f64(),
        p50_seconds: p50.as_secs_f64(),
        p99_seconds: p99.as_secs_f64(),
        samples_seconds: samples.iter().map(Duration::as_secs_f64).collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("hardware            {}", report.hardware);
        println!("mode                {} ({} nodes, {} trials)", report.mode, num_nodes, num_trials);
        println!(
            "heartbeat           every {} s, down after {} s",
            report.heartbeat_interval_seconds, report.heartbeat_ttl_seconds
        );
        println!("death → replaced    p50 {:.2} s   p99 {:.2} s", report.p50_seconds, report.p99_seconds);
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_job(count: usize) -> anyhow::Result<drover_types::Job> {
    let source = format!(
        r#"
job "failover" {{
  group "work" {{
    count = {count}
    task "work" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "exec sleep 100000"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    );
    drover_jobspec::parse_job(
        &drover_jobspec::Source::new("failover.nomad.hcl", source),
        &drover_jobspec::VarInputs::default(),
    )
    .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))
}

/// Nodes holding running allocations of the bench job, with their counts.
async fn running_per_node(client: &Client) -> anyhow::Result<HashMap<String, usize>> {
    let (status, _) = client.job_status("failover", None).await?;
    let mut per_node = HashMap::new();
    for alloc in status.allocs.iter().filter(|alloc| alloc.client_status == AllocClientStatus::Running) {
        *per_node.entry(alloc.node_name.clone()).or_default() += 1;
    }
    Ok(per_node)
}

async fn wait_replaced(client: &Client, victim: &str, count: usize) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(120), || async {
        running_per_node(client).await.is_ok_and(|per_node| {
            per_node.get(victim).copied().unwrap_or(0) == 0 && per_node.values().sum::<usize>() == count
        })
    })
    .await
}

async fn real_trials(num_nodes: usize, num_trials: usize, json: bool) -> anyhow::Result<Vec<Duration>> {
    let mut fleet = Fleet::start_server().await?;
    for number in 0..num_nodes {
        fleet.start_agent(&format!("node{number:03}")).await?;
    }
    let client = fleet.client.clone();
    client.register_job(&bench_job(num_nodes)?).await?;
    wait_until(Duration::from_secs(120), || async {
        running_per_node(&client).await.is_ok_and(|per_node| per_node.values().sum::<usize>() == num_nodes)
    })
    .await?;
    let mut samples = Vec::new();
    for trial in 0..num_trials {
        let per_node = running_per_node(&client).await?;
        let mut candidates: Vec<&String> = per_node.keys().collect();
        candidates.sort();
        let victim = candidates[trial % candidates.len()].clone();
        let died = Instant::now();
        fleet.kill_machine(&victim);
        wait_replaced(&client, &victim, num_nodes).await?;
        let elapsed = died.elapsed();
        if !json {
            eprintln!("trial {}: {victim} died, replaced in {:.2} s", trial + 1, elapsed.as_secs_f64());
        }
        samples.push(elapsed);
        fleet.start_agent(&victim).await?;
    }
    Ok(samples)
}

async fn simulated_trials(num_nodes: usize, num_trials: usize, json: bool) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::Builder::new().prefix("drover-bench-").tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = Server::start(ServerConfig::new(dir.path().join("server"), address.clone()))
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let router = drover_api::router(server.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });
    let mut stops: HashMap<String, CancellationToken> = HashMap::new();
    let mut next_number = 0usize;
    let mut start_agent = |stops: &mut HashMap<String, CancellationToken>| {
        let name = format!("sim{next_number:05}");
        next_number += 1;
        let stop = CancellationToken::new();
        stops.insert(name.clone(), stop.clone());
        let agent =
            SimAgent { server: address.clone(), name, hostgroup: "bench".to_owned(), heartbeats: None, tls: None };
        tokio::spawn(async move {
            let _ = agent.run(stop).await;
        });
    };
    for _ in 0..num_nodes {
        start_agent(&mut stops);
    }
    let client = Client::new(&address);
    wait_until(Duration::from_secs(120), || async { server.state().num_nodes() >= num_nodes }).await?;
    let count = num_nodes.min(100);
    client.register_job(&bench_job(count)?).await?;
    wait_until(Duration::from_secs(120), || async {
        running_per_node(&client).await.is_ok_and(|per_node| per_node.values().sum::<usize>() == count)
    })
    .await?;
    let mut samples = Vec::new();
    for trial in 0..num_trials {
        let per_node = running_per_node(&client).await?;
        let mut candidates: Vec<&String> = per_node.keys().collect();
        candidates.sort();
        let victim = candidates[trial % candidates.len()].clone();
        let died = Instant::now();
        if let Some(stop) = stops.remove(&victim) {
            stop.cancel();
        }
        wait_replaced(&client, &victim, count).await?;
        let elapsed = died.elapsed();
        if !json {
            eprintln!("trial {}: {victim} died, replaced in {:.2} s", trial + 1, elapsed.as_secs_f64());
        }
        samples.push(elapsed);
        start_agent(&mut stops);
    }
    for stop in stops.values() {
        stop.cancel();
    }
    server.shutdown().await;
    serving.abort();
    Ok(samples)
}
