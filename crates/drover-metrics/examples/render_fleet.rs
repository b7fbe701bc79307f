//! How long `/v1/metrics` takes to render, and how much memory, for a fleet
//! of synthetic nodes shaped like a small server (4 CPUs, 3 filesystems,
//! 2 block devices, 2 network interfaces, 4 tasks).
//!
//! ```text
//! cargo run --release -p drover-metrics --example render_fleet -- 10000
//! ```
//!
//! Prints the time of each of 5 renders, the size of the text, and the
//! process's peak resident memory (`VmHWM`) before and after; then the time
//! and size of 3 renders compressed with [`GzipChunks`], as the server
//! answers a scraper that sends `Accept-Encoding: gzip`. Each render
//! goes through [`FleetText`] chunk by chunk, dropping each chunk once
//! counted, as the server does when it streams `/v1/metrics`; each run's
//! fleet is built before the clock starts (the server builds its own from
//! the state).
//!
//! The nodes' counters differ from node to node (a per-node factor), so that
//! gzip is not flattered by a thousand identical numbers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use drover_metrics::{
    AgentSample, BlockDeviceSample, CpuSample, DiskSample, Fleet, FleetNode, FleetText, GzipChunks, NetSample,
    NodeLabels, NodeSample, PressureSample, TaskOwner, TaskSample, UnameSample,
};
use drover_types::NodeStatus;

fn main() {
    let count = std::env::args().nth(1).and_then(|text| text.parse::<usize>().ok()).unwrap_or(10_000);
    let before = peak_rss_kib();
    let (nodes, task_owners) = fleet(count);
    let with_samples = peak_rss_kib();
    let mut input = Some(Fleet { nodes, task_owners });
    let mut size = 0;
    let mut series = 0;
    for run in 1..=5 {
        // A fresh fleet per run, built before the clock starts and after the
        // previous one is dropped, so that the peak is one fleet's samples
        // plus what rendering adds.
        let input = input.take().unwrap_or_else(|| {
            let (nodes, task_owners) = fleet(count);
            Fleet { nodes, task_owners }
        });
        // Only rendering is timed (building the chunks and dropping the
        // fleet), not the counting of what was rendered.
        let mut elapsed = Duration::ZERO;
        size = 0;
        series = 0;
        let mut started = Instant::now();
        let mut text = FleetText::new(input);
        for chunk in text.by_ref() {
            elapsed += started.elapsed();
            size += chunk.len();
            series += chunk.lines().filter(|line| !line.starts_with('#')).count();
            drop(chunk);
            started = Instant::now();
        }
        drop(text);
        elapsed += started.elapsed();
        println!("render {run}: {:.1} ms", elapsed.as_secs_f64() * 1000.0);
    }
    let after = peak_rss_kib();
    println!(
        "{count} nodes: {} series, {:.1} MB of text; peak RSS {:.1} MB before the fleet, {:.1} MB with it, {:.1} MB after rendering",
        series,
        size as f64 / 1e6,
        before as f64 / 1024.0,
        with_samples as f64 / 1024.0,
        after as f64 / 1024.0
    );

    for run in 1..=3 {
        let (nodes, task_owners) = fleet(count);
        let mut elapsed = Duration::ZERO;
        let mut compressed = 0;
        let mut started = Instant::now();
        let mut chunks = GzipChunks::new(FleetText::new(Fleet { nodes, task_owners }));
        for chunk in chunks.by_ref() {
            elapsed += started.elapsed();
            compressed += chunk.len();
            drop(chunk);
            started = Instant::now();
        }
        drop(chunks);
        elapsed += started.elapsed();
        println!(
            "gzip {run}: {:.1} ms, {:.2} MB ({:.1}x smaller)",
            elapsed.as_secs_f64() * 1000.0,
            compressed as f64 / 1e6,
            size as f64 / compressed.max(1) as f64
        );
    }
}

fn fleet(count: usize) -> (Vec<FleetNode>, HashMap<String, TaskOwner>) {
    let mut owners = HashMap::new();
    let nodes = (0..count)
        .map(|index| {
            // A factor in 1..2 per node, so that numbers differ between nodes.
            let spread = |value: u64| value + value / 1_000_003 * ((index as u64 * 2_654_435_761) % 1_000_003);
            let tasks = (0..4)
                .map(|task| {
                    let alloc_id = format!("{index:08x}-0000-4000-8000-{task:012x}");
                    owners
                        .insert(alloc_id.clone(), TaskOwner { job: format!("job{}", index % 50), group: "web".into() });
                    TaskSample { alloc_id, task: format!("task{task}"), cpu_percent: 1.5, memory_bytes: 123_456_789 }
                })
                .collect();
            let sample = NodeSample {
                time_ms: 1_700_000_000_000,
                cpu_percent: 12.5,
                cores: 4,
                load1: 0.5,
                load5: 0.4,
                load15: 0.3,
                memory_total: 16 << 30,
                memory_used: 4 << 30,
                memory_available: spread(6 << 30),
                memory_free: spread(1 << 30),
                memory_buffers: 1 << 28,
                memory_cached: spread(4 << 30),
                swap_total: 2 << 30,
                swap_used: 0,
                agent: Some(AgentSample {
                    cpu_ms: spread(345_678),
                    resident_bytes: spread(31 << 20),
                    start_time_secs: 1_699_990_000,
                    sessions: 1,
                    log_lines_read: spread(1_234_567),
                    log_lines_acknowledged: spread(1_234_560),
                }),
                filefd_allocated: spread(2_080),
                filefd_maximum: 9_223_372_036_854_775_807,
                cpus: (0..4)
                    .map(|cpu| CpuSample {
                        cpu,
                        user_ms: spread(123_456_780),
                        system_ms: spread(23_456_780),
                        idle_ms: spread(987_654_320),
                        ..CpuSample::default()
                    })
                    .collect(),
                disks: ["/", "/data", "/tmp"]
                    .iter()
                    .map(|mount| DiskSample {
                        mount: (*mount).into(),
                        fs_type: "ext4".into(),
                        total: 1 << 40,
                        used: 1 << 39,
                        avail: 1 << 38,
                        files: 1 << 26,
                        files_free: 1 << 25,
                        readonly: false,
                    })
                    .collect(),
                devices_by_mount: [("/", "/dev/vda1"), ("/data", "/dev/vdb"), ("/tmp", "tmpfs")]
                    .iter()
                    .map(|(mount, device)| ((*mount).to_owned(), (*device).to_owned()))
                    .collect(),
                block_devices: ["vda", "vdb"]
                    .iter()
                    .map(|device| BlockDeviceSample {
                        device: (*device).into(),
                        read_bytes: spread(1 << 35),
                        written_bytes: spread(1 << 36),
                        reads_completed: spread(1 << 20),
                        writes_completed: spread(1 << 21),
                        io_time_ms: spread(1 << 24),
                    })
                    .collect(),
                net: ["eth0", "eth1"]
                    .iter()
                    .map(|interface| NetSample {
                        interface: (*interface).into(),
                        rx_bytes: spread(1 << 40),
                        tx_bytes: spread(1 << 39),
                        rx_packets: spread(1 << 30),
                        tx_packets: spread(1 << 29),
                        ..NetSample::default()
                    })
                    .collect(),
                processes_total: 250,
                processes_running: 3,
                uptime_secs: 86_400,
                tasks,
                clock_ms: 1_700_000_000_000 + index as i64,
                boot_time_secs: 1_699_913_600,
                context_switches: spread(1 << 33),
                interrupts: spread(1 << 32),
                memory_sreclaimable: spread(1 << 28),
                memory_slab: spread(1 << 29),
                memory_page_tables: spread(1 << 25),
                memory_swap_cached: 0,
                pressure: Some(PressureSample {
                    cpu_some_us: Some(spread(1 << 34)),
                    memory_some_us: Some(spread(1 << 30)),
                    memory_full_us: Some(spread(1 << 29)),
                    io_some_us: Some(spread(1 << 32)),
                    io_full_us: Some(spread(1 << 31)),
                    irq_full_us: None,
                }),
                uname: Some(UnameSample {
                    sysname: "Linux".into(),
                    release: "6.1.0-13-amd64".into(),
                    version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)".into(),
                    machine: "x86_64".into(),
                    nodename: format!("node{index:05}"),
                    domainname: "(none)".into(),
                }),
            };
            FleetNode {
                labels: NodeLabels {
                    node: format!("node{index:05}"),
                    hostgroup: format!("group{}", index % 20),
                    environment: "prod".into(),
                },
                status: Some(NodeStatus::Ready),
                log_dropped_lines: Some(0),
                sample: Some(sample),
            }
        })
        .collect();
    (nodes, owners)
}

/// The process's peak resident memory so far, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
