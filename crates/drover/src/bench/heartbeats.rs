//! `drover bench heartbeats`: the server's CPU cost of heartbeats.
//!
//! Starts a server as a separate process, connects simulated agents to it
//! (heartbeating every 4 s, the default), waits until every node is ready
//! and registration has settled, then measures the server process's CPU
//! time (user + system, from `/proc`) over a window while counting the
//! heartbeats the agents sent.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::fleet::{Fleet, cpu_seconds};

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    num_nodes: usize,
    window_seconds: f64,
    num_heartbeats: u64,
    server_cpu_seconds: f64,
    cpu_milliseconds_per_1000_heartbeats: f64,
    share_of_one_core: f64,
}

pub(crate) async fn run(num_nodes: usize, window: Duration, json: bool) -> anyhow::Result<ExitCode> {
    // The agents run in this process and the server (started from here,
    // so with the raised limit) holds one connection per agent too.
    super::ensure_open_files(
        num_nodes as u64 + super::SERVER_RESERVED_FILES,
        &format!("bench heartbeats --nodes {num_nodes} (one connection per agent here and in the server)"),
    )?;
    let fleet = Fleet::start_server().await?;
    let counter = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let names: Vec<String> = (0..num_nodes).map(|number| format!("sim{number:05}")).collect();
    super::sim::start_many(&fleet, &names, Some(Arc::clone(&counter)), &stop).await?;
    if !json {
        eprintln!("{num_nodes} simulated agents ready; letting registration settle");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    let pid = fleet.server.pid();
    let cpu_before = cpu_seconds(pid);
    let heartbeats_before = counter.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(pid) - cpu_before;
    let num_heartbeats = counter.load(Ordering::Relaxed) - heartbeats_before;
    stop.cancel();

    let report = Report {
        hardware: super::hardware(),
        num_nodes,
        window_seconds: elapsed,
        num_heartbeats,
        server_cpu_seconds: server_cpu,
        cpu_milliseconds_per_1000_heartbeats: server_cpu * 1000.0
            / (num_heartbeats as f64 / 1000.0).max(f64::MIN_POSITIVE),
        share_of_one_core: server_cpu / elapsed,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("hardware                    {}", report.hardware);
        println!("nodes                       {}", report.num_nodes);
        println!("window                      {:.1} s, {} heartbeats", report.window_seconds, report.num_heartbeats);
        println!("server CPU                  {:.3} s", report.server_cpu_seconds);
        println!("CPU per 1,000 heartbeats    {:.2} ms", report.cpu_milliseconds_per_1000_heartbeats);
        println!("share of one core           {:.2} %", report.share_of_one_core * 100.0);
    }
    Ok(ExitCode::SUCCESS)
}
