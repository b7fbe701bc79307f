//! The bytes of `/v1/metrics` for a small fleet, pinned: the hand-written
//! streaming writer must answer exactly what the `prometheus-client`
//! encoder it replaced answered (the golden file was written by that
//! encoder). Covers label escaping, a duplicate node, a down node without a
//! sample, unknown memory, a task without an owner, floats, text placed
//! before `# EOF`, and the series added since (uname, pressure, node time,
//! more memory fields, file handles, inodes, the agent's own), which that encoder never wrote.
//!
//! `DROVER_METRICS_BLESS=1 cargo test -p drover-metrics --test render_golden`
//! rewrites the golden file from the current renderer.

use std::collections::HashMap;

use drover_metrics::{
    AgentSample, BlockDeviceSample, CpuSample, DiskSample, Fleet, FleetNode, FleetText, NetSample, NodeLabels,
    NodeSample, PressureSample, TaskOwner, TaskSample, UnameSample, render_fleet,
};
use drover_types::NodeStatus;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/fleet.openmetrics");

#[test]
fn renders_the_pinned_bytes_whole_and_in_chunks() {
    let whole = render_fleet(None, fleet());
    if std::env::var_os("DROVER_METRICS_BLESS").is_some() {
        std::fs::write(GOLDEN, &whole).expect("write the golden file");
    }
    let golden = std::fs::read_to_string(GOLDEN).expect("read tests/golden/fleet.openmetrics");
    assert_eq!(whole, golden, "render_fleet differs from {GOLDEN}");

    // Small chunks split families mid-way; joined they must be the same.
    let chunks = FleetText::new(fleet()).with_chunk_size(64).collect::<Vec<_>>();
    assert!(chunks.len() > 10, "expected many chunks, got {}", chunks.len());
    assert_eq!(chunks.concat(), golden);

    let with_extra = FleetText::new(fleet()).before_eof("# TYPE x gauge\nx 1\n".into()).collect::<String>();
    let expected = format!("{}# TYPE x gauge\nx 1\n# EOF\n", golden.strip_suffix("# EOF\n").expect("ends with EOF"));
    assert_eq!(with_extra, expected);
}

fn labels(node: &str, hostgroup: &str, environment: &str) -> NodeLabels {
    NodeLabels { node: node.into(), hostgroup: hostgroup.into(), environment: environment.into() }
}

fn sample(load1: f32, memory_total: u64, tasks: Vec<TaskSample>) -> NodeSample {
    NodeSample {
        time_ms: 1_700_000_000_500,
        load1,
        load5: 0.25,
        load15: 60.442757,
        memory_total,
        memory_available: 6 << 30,
        memory_free: 1 << 30,
        memory_buffers: 12345,
        memory_cached: 1 << 53 | 1,
        swap_total: 4 << 30,
        swap_used: 1 << 30,
        cpus: (0..2)
            .map(|cpu| CpuSample { cpu, user_ms: 12_340, system_ms: 1, idle_ms: 100_000, ..CpuSample::default() })
            .collect(),
        disks: vec![
            DiskSample {
                mount: "/tmp".into(),
                fs_type: "tmpfs".into(),
                total: 100,
                used: 25,
                avail: 70,
                files: 4096,
                files_free: 4000,
                readonly: false,
            },
            DiskSample {
                mount: "/odd \"dir\"".into(),
                fs_type: "ext4".into(),
                total: 1 << 40,
                used: 0,
                avail: 0,
                files: 0,
                files_free: 0,
                readonly: true,
            },
        ],
        devices_by_mount: [("/tmp".to_owned(), "tmpfs".to_owned())].into(),
        block_devices: vec![BlockDeviceSample {
            device: "vda".into(),
            read_bytes: 512,
            written_bytes: 1024,
            reads_completed: 3,
            writes_completed: 4,
            io_time_ms: 1500,
        }],
        net: vec![NetSample {
            interface: "eth0".into(),
            rx_bytes: 1000,
            tx_bytes: 2000,
            rx_packets: u64::MAX,
            rx_errors: 1,
            tx_errors: 2,
            ..NetSample::default()
        }],
        processes_total: 120,
        processes_running: 2,
        uptime_secs: 3600,
        tasks,
        clock_ms: 1_700_000_000_250,
        boot_time_secs: 1_699_996_000,
        context_switches: 123_456_789,
        interrupts: 98_765,
        memory_sreclaimable: 1 << 20,
        memory_slab: 3 << 20,
        memory_page_tables: 4 << 10,
        memory_swap_cached: 0,
        agent: Some(AgentSample {
            cpu_ms: 12_345,
            resident_bytes: 24 << 20,
            start_time_secs: 1_699_999_000,
            sessions: 2,
            log_lines_read: 1_000,
            log_lines_acknowledged: 990,
        }),
        filefd_allocated: 2_080,
        filefd_maximum: 9_223_372_036_854_775_807,
        pressure: Some(PressureSample {
            cpu_some_us: Some(15_249_433_121),
            memory_full_us: Some(1),
            io_some_us: Some(0),
            ..PressureSample::default()
        }),
        uname: Some(UnameSample {
            sysname: "Linux".into(),
            release: "6.1.0-13-amd64".into(),
            version: "#1 SMP \"quoted\"".into(),
            machine: "x86_64".into(),
            nodename: "web-1".into(),
            domainname: "(none)".into(),
        }),
        ..NodeSample::default()
    }
}

fn task(alloc_id: &str, name: &str, cpu_percent: f32) -> TaskSample {
    TaskSample { alloc_id: alloc_id.into(), task: name.into(), cpu_percent, memory_bytes: 1 << 20 }
}

fn fleet() -> Fleet {
    let owners: HashMap<String, TaskOwner> =
        [("a1".to_owned(), TaskOwner { job: "shop".into(), group: "fr\"ont".into() })].into();
    Fleet {
        nodes: vec![
            FleetNode {
                labels: labels("n\"1", "a\\b", "line\nbreak"),
                status: Some(NodeStatus::Ready),
                log_dropped_lines: Some(7),
                sample: Some(sample(3.64, 8 << 30, vec![task("a1", "web", 3.0), task("a9", "orphan", 0.1)])),
            },
            FleetNode {
                labels: labels("n\"1", "duplicate", ""),
                status: Some(NodeStatus::Down),
                log_dropped_lines: Some(1),
                sample: Some(sample(9.0, 1, Vec::new())),
            },
            FleetNode {
                labels: labels("dead1", "", ""),
                status: Some(NodeStatus::Down),
                log_dropped_lines: Some(0),
                sample: None,
            },
            FleetNode {
                labels: labels("nomem", "g", "prod"),
                status: None,
                log_dropped_lines: None,
                sample: Some(NodeSample { uptime_secs: 0, ..sample(f32::NAN, 0, vec![task("a1", "api", 1e-7)]) }),
            },
            FleetNode {
                labels: labels("init", "", "staging"),
                status: Some(NodeStatus::Initializing),
                log_dropped_lines: None,
                sample: None,
            },
        ],
        task_owners: owners,
    }
}
