//! `drover bench e2e`: placements per second from job submission to
//! acknowledgement by the agents, through the HTTP API, the Raft log (with
//! fsync), the scheduler and the agent sessions.
//!
//! The server runs in this process; the simulated agents run in processes
//! of their own ([`SimProcesses`]), all dialing at once as a fleet does
//! after a server restart, so that the time to register them all is
//! measured too.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use drover_client::Client;
use drover_server::{Server, ServerConfig};
use drover_types::AllocClientStatus;

use super::sim::SimProcesses;

/// How long the simulated fleet may take to register.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Jobs submitted at once (each is one HTTP request, and one connection
/// at each end of it in this process).
const SUBMISSIONS_IN_FLIGHT: usize = 64;

/// The listening socket's accept queue: room for a fleet dialing at once
/// (the kernel caps it at `net.core.somaxconn`).
const ACCEPT_BACKLOG: u32 = 4096;

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    num_nodes: usize,
    num_sim_processes: usize,
    seconds_to_registered: f64,
    num_allocs: usize,
    num_jobs: usize,
    seconds_to_placed: f64,
    seconds_to_acknowledged: f64,
    placements_per_second: f64,
    server_peak_rss_mb: f64,
}

pub(crate) async fn run(num_nodes: usize, num_allocs: usize, per_job: usize, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(num_nodes > 0 && per_job > 0 && num_allocs >= per_job, "need nodes > 0 and allocs >= per-job > 0");
    super::ensure_open_files(
        num_nodes as u64 + super::SERVER_RESERVED_FILES,
        &format!("bench e2e --nodes {num_nodes} (its in-process server holds one connection per agent)"),
    )?;
    let dir = tempfile::Builder::new().prefix("drover-bench-").tempdir()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(ACCEPT_BACKLOG)?;
    let address = listener.local_addr()?.to_string();
    let server = Server::start(ServerConfig::new(dir.path().join("server"), address.clone()))
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let router = drover_api::router(server.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });

    let registering = Instant::now();
    let mut agents = SimProcesses::spawn(&address, num_nodes, "sim", "bi/batch/gridworker", dir.path())?;
    let mut last_progress = Instant::now();
    loop {
        let num_registered = server.state().num_nodes();
        if num_registered >= num_nodes {
            break;
        }
        agents.check_running()?;
        anyhow::ensure!(
            registering.elapsed() < REGISTRATION_TIMEOUT,
            "only {num_registered} of {num_nodes} simulated agents registered after {REGISTRATION_TIMEOUT:?}"
        );
        if !json && last_progress.elapsed() >= Duration::from_secs(5) {
            eprintln!("{num_registered} of {num_nodes} simulated agents registered");
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let registered = registering.elapsed();
    if !json {
        eprintln!(
            "{num_nodes} simulated agents ({} processes) registered in {:.2} s; submitting {num_allocs} allocations",
            agents.len(),
            registered.as_secs_f64()
        );
    }

    let client = Client::new(&address);
    let num_jobs = num_allocs / per_job;
    let started = Instant::now();
    let jobs = (0..num_jobs).map(|number| bench_job(number, per_job)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut submissions = futures_util::stream::iter(jobs)
        .map(|job| {
            let client = client.clone();
            async move { client.register_job(&job).await }
        })
        .buffer_unordered(SUBMISSIONS_IN_FLIGHT);
    while let Some(submitted) = submissions.next().await {
        submitted?;
    }
    let total = num_jobs * per_job;
    let mut placed_at = None;
    loop {
        let state = server.state();
        let num_placed = state.num_allocs();
        if placed_at.is_none() && num_placed >= total {
            placed_at = Some(started.elapsed());
        }
        // A counter the state keeps: scanning a million allocations every
        // 20 ms would load the server this benchmark measures.
        let num_running = state.num_allocs_with_client_status(AllocClientStatus::Running);
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
        num_sim_processes: agents.len(),
        seconds_to_registered: registered.as_secs_f64(),
        num_allocs: total,
        num_jobs,
        seconds_to_placed: placed_at.unwrap_or(acknowledged).as_secs_f64(),
        seconds_to_acknowledged: acknowledged.as_secs_f64(),
        placements_per_second: total as f64 / acknowledged.as_secs_f64(),
        server_peak_rss_mb: peak_rss_mb(),
    };
    agents.kill();
    server.shutdown().await;
    serving.abort();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("hardware                 {}", report.hardware);
        println!("simulated agents         {} ({} processes)", report.num_nodes, report.num_sim_processes);
        println!("all registered           {:.2} s", report.seconds_to_registered);
        println!("allocations              {} ({} jobs)", report.num_allocs, report.num_jobs);
        println!("all placed (committed)   {:.2} s", report.seconds_to_placed);
        println!("all acknowledged running {:.2} s", report.seconds_to_acknowledged);
        println!("placements/s end to end  {:.0}", report.placements_per_second);
        println!("server peak RSS          {:.0} MB", report.server_peak_rss_mb);
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

/// The peak resident memory of this process (the server: the simulated
/// agents run elsewhere), in MB, from `/proc/self/status`.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kilobytes| kilobytes / 1024.0)
}
