//! `drover bench e2e`: placements per second from job submission to
//! acknowledgement by the agents, through the HTTP API, the Raft log (with
//! fsync), the scheduler and the agent sessions.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use drover_client::Client;
use drover_server::{Server, ServerConfig};
use drover_types::AllocClientStatus;

use super::sim::SimAgent;

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    num_nodes: usize,
    num_allocs: usize,
    num_jobs: usize,
    seconds_to_placed: f64,
    seconds_to_acknowledged: f64,
    placements_per_second: f64,
}

pub(crate) async fn run(num_nodes: usize, num_allocs: usize, per_job: usize, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(num_nodes > 0 && per_job > 0 && num_allocs >= per_job, "need nodes > 0 and allocs >= per-job > 0");
    let dir = tempfile::Builder::new().prefix("drover-bench-").tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = Server::start(ServerConfig::new(dir.path().join("server"), address.clone()))
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let router = drover_api::router(server.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });

    let stop = CancellationToken::new();
    for number in 0..num_nodes {
        let agent = SimAgent {
            server: address.clone(),
            name: format!("sim{number:05}"),
            hostgroup: "bi/batch/gridworker".to_owned(),
            heartbeats: None,
        };
        let agent_stop = stop.clone();
        tokio::spawn(async move {
            if let Err(error) = agent.run(agent_stop).await {
                tracing::warn!(%error, "simulated agent failed");
            }
        });
    }
    wait(Duration::from_secs(120), || server.state().num_nodes() >= num_nodes).await?;
    if !json {
        eprintln!("{num_nodes} simulated agents registered; submitting {num_allocs} allocations");
    }

    let client = Client::new(&address);
    let num_jobs = num_allocs / per_job;
    let started = Instant::now();
    let mut submissions = Vec::new();
    for number in 0..num_jobs {
        let client = client.clone();
        let job = bench_job(number, per_job)?;
        submissions.push(tokio::spawn(async move { client.register_job(&job).await }));
    }
    for submission in submissions {
        submission.await??;
    }
    let total = num_jobs * per_job;
    let mut placed_at = None;
    loop {
        let state = server.state();
        let num_placed = state.num_allocs();
        if placed_at.is_none() && num_placed >= total {
            placed_at = Some(started.elapsed());
        }
        let num_running = state.allocs().filter(|alloc| alloc.client_status == AllocClientStatus::Running).count();
        if num_running >= total {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "gave up after 10 minutes ({num_running}/{total} running)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acknowledged = started.elapsed();
    let report = Report {
        hardware: super::hardware(),
        num_nodes,
        num_allocs: total,
        num_jobs,
        seconds_to_placed: placed_at.unwrap_or(acknowledged).as_secs_f64(),
        seconds_to_acknowledged: acknowledged.as_secs_f64(),
        placements_per_second: total as f64 / acknowledged.as_secs_f64(),
    };
    stop.cancel();
    server.shutdown().await;
    serving.abort();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("hardware                 {}", report.hardware);
        println!("simulated agents         {}", report.num_nodes);
        println!("allocations              {} ({} jobs)", report.num_allocs, report.num_jobs);
        println!("all placed (committed)   {:.2} s", report.seconds_to_placed);
        println!("all acknowledged running {:.2} s", report.seconds_to_acknowledged);
        println!("placements/s end to end  {:.0}", report.placements_per_second);
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_job(number: usize, count: usize) -> anyhow::Result<drover_types::Job> {
    let source = format!(
        r#"
job "bench-{number:05}" {{
  constraint {{
    attribute = "${{attr.kernel.name}}"
    value     = "linux"
  }}
  constraint {{
    attribute = "${{node.hostgroup}}"
    operator  = "glob"
    value     = "bi/batch/**"
  }}
  group "work" {{
    count = {count}
    task "work" {{
      driver = "raw_exec"
      config {{ command = "/bin/true" }}
      resources {{
        cpu    = 20
        memory = 32
      }}
    }}
  }}
}}
"#
    );
    drover_jobspec::parse_job(
        &drover_jobspec::Source::new("bench.nomad.hcl", source),
        &drover_jobspec::VarInputs::default(),
    )
    .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))
}

async fn wait(timeout: Duration, condition: impl Fn() -> bool) -> anyhow::Result<()> {
    let started = Instant::now();
    while !condition() {
        anyhow::ensure!(started.elapsed() < timeout, "timed out after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
