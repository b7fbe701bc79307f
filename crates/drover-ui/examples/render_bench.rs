//! How long each dashboard page takes to build and render, and how much it
//! weighs, for a fleet of 10,000 nodes and 100,000 allocations
//! (docs/benchmarks.md, "Dashboard").
//!
//! ```text
//! cargo run --release -p drover-ui --example render_bench [RUNS]
//! ```
//!
//! The fleet is synthetic, shaped like the API's answers (`drover-proto`
//! types): 10,000 nodes in 40 host groups with 10 allocations each; 100
//! jobs, one a system job on every node (10,000 allocations, the largest
//! job page) and 99 services of about 909 each. Each run builds the view
//! model from those answers (rows, sorting, paging, the host-group tree,
//! the diff, the charts) and renders it: what the route does after its
//! state reads. The state reads and the ACL narrowing are not timed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use drover_proto::api::{
    AllocCounts, AllocListEntry, JobListEntry, JobStatusResponse, LogBucket, LogCount, LogCountResponse,
    LogHistogramResponse, LogSearchResponse, NodeListEntry, NodeStatusResponse, UsagePoint,
};
use drover_types::acl::{AuditEvent, AuditOutcome};
use drover_types::usage::UsageSummary;
use drover_types::{
    AllocClientStatus, Allocation, Job, JobStatus, JobType, LogRecord, NodeChange, NodeId, TaskEvent, TaskEventKind,
    TaskState, Timestamp, fixtures,
};
use drover_ui::pages::Visible;
use drover_ui::pages::alloc::AllocPage;
use drover_ui::pages::jobs::{JobPage, JobRow, JobsPage};
use drover_ui::pages::logs::{LogLine, LogsPage};
use drover_ui::pages::nodes::{NodePage, NodeSort, NodeTable, NodesPage};
use drover_ui::pages::overview::{self, AuditRow, OverviewPage, ServerRow};
use drover_ui::pages::react::AlertRow;
use drover_ui::{Chrome, Section, render};

const NODES: usize = 10_000;
const JOBS: usize = 100;
const ALLOCS: usize = 100_000;

/// The synthetic fleet, as the API's handlers would hand it over.
struct Fleet {
    now: Timestamp,
    nodes: Vec<NodeListEntry>,
    jobs: Vec<JobListEntry>,
    /// Each job's allocations.
    allocs: Vec<Vec<AllocListEntry>>,
    job_specs: Vec<Job>,
    /// Every node's latest measured usage.
    usage: HashMap<NodeId, UsageSummary>,
}

fn node_name(index: usize) -> String {
    format!("batch{index:05}")
}

fn fleet() -> Fleet {
    let now = Timestamp::from_millis(1_800_000_000_000);
    let nodes: Vec<NodeListEntry> = (0..NODES)
        .map(|index| {
            let node = fixtures::node(&node_name(index));
            NodeListEntry {
                id: node.id.clone(),
                name: node.name.clone(),
                status: if index % 97 == 0 { "down".to_owned() } else { "ready".to_owned() },
                hostgroup: format!("site{}/rack{:02}/batch", index % 4, index % 10),
                environment: if index % 3 == 0 { "qa".to_owned() } else { "production".to_owned() },
                owner: "hpc".to_owned(),
                zone: "dc1".to_owned(),
                protected: index % 50 == 0,
                resources: node.resources,
                used: drover_types::Resources {
                    cpu_mhz: (index as u64 * 37) % node.resources.cpu_mhz.max(1),
                    memory_mb: (index as u64 * 53) % node.resources.memory_mb.max(1),
                },
                num_allocs: 10,
                attributes: node.attributes.clone(),
                agent_version: "0.1.0".to_owned(),
                last_heartbeat: Some(now),
            }
        })
        .collect();
    let mut job_specs = Vec::new();
    let mut jobs = Vec::new();
    let mut allocs = Vec::new();
    let mut placed = 0;
    for job_index in 0..JOBS {
        let (job, count) = if job_index == 0 {
            (fixtures::job("node-exporter", JobType::System, 1), NODES)
        } else {
            let count = (ALLOCS - NODES) / (JOBS - 1) + usize::from(job_index <= (ALLOCS - NODES) % (JOBS - 1));
            (fixtures::service_job(&format!("service-{job_index:03}"), u32::try_from(count).unwrap()), count)
        };
        let mut counts = AllocCounts::default();
        let entries: Vec<AllocListEntry> = (0..count)
            .map(|index| {
                let node = NodeId::new(node_name((placed + index) % NODES));
                let mut alloc = fixtures::alloc(
                    &format!("{:08x}-{job_index:04x}-{index:06}", placed + index),
                    job.id.as_str(),
                    &job.groups[0].name,
                    &node,
                );
                alloc.name = format!("{}.{}[{index}]", job.id.as_str(), job.groups[0].name);
                alloc.client_status = match index % 50 {
                    0 => AllocClientStatus::Failed,
                    1 => AllocClientStatus::Pending,
                    _ => AllocClientStatus::Running,
                };
                match alloc.client_status {
                    AllocClientStatus::Failed => counts.failed += 1,
                    AllocClientStatus::Pending => counts.pending += 1,
                    _ => counts.running += 1,
                }
                alloc.create_time = now.minus(Duration::from_secs(3600));
                alloc.modify_time = now.minus(Duration::from_secs(60));
                AllocListEntry::from(&alloc)
            })
            .collect();
        placed += count;
        jobs.push(JobListEntry {
            id: job.id.clone(),
            name: job.name.clone(),
            job_type: job.job_type,
            priority: job.priority,
            status: JobStatus::Running,
            version: 1,
            stop: false,
            submit_time: now.minus(Duration::from_secs(7200)),
            allocs: counts,
        });
        allocs.push(entries);
        job_specs.push(job);
    }
    assert_eq!(placed, ALLOCS);
    // Every node measured but every 13th (its agent not connected).
    let usage = nodes
        .iter()
        .enumerate()
        .filter(|(index, _)| index % 13 != 0)
        .map(|(index, node)| {
            let summary = UsageSummary {
                time_ms: now.as_millis() - 5_000,
                cpu_percent: (index * 7919 % 1000) as f32 / 10.0,
                memory_percent: Some((index * 104_729 % 1000) as f32 / 10.0),
                disk_percent: (index % 29 != 0).then(|| (index * 31 % 1000) as f32 / 10.0),
            };
            (node.id.clone(), summary)
        })
        .collect();
    Fleet { now, nodes, jobs, allocs, job_specs, usage }
}

fn chrome(fleet: &Fleet, title: &str, section: Section) -> Chrome {
    let mut chrome = Chrome::new(title, section, fleet.now);
    chrome.user = "alice".to_owned();
    chrome.csrf = "0123456789abcdef0123456789abcdef".to_owned();
    chrome
}

fn overview_page(fleet: &Fleet) -> String {
    let now = fleet.now;
    let mut total = AllocCounts::default();
    for job in &fleet.jobs {
        total.pending += job.allocs.pending;
        total.running += job.allocs.running;
        total.failed += job.allocs.failed;
    }
    let alerts = (0..5)
        .map(|index| AlertRow {
            id: format!("alert-{index}"),
            name: "disk-full".to_owned(),
            state: "firing".to_owned(),
            severity: "critical".to_owned(),
            summary: format!("node={}", node_name(index)),
            since: "5m ago".to_owned(),
            runbook: Some(AlertRow::runbook_href("disk-full", "runbooks/disk.md")),
            acknowledged_by: String::new(),
            acknowledged: false,
            silenced_by: String::new(),
            matchers: vec![r#"alertname="disk-full""#.to_owned(), format!("node={:?}", node_name(index))],
        })
        .collect();
    let audit = (0..20)
        .map(|index| {
            let event = AuditEvent {
                at: now.minus(Duration::from_secs(index * 60)),
                accessor: Some("acc-1".to_owned()),
                name: "alice".to_owned(),
                action: "node.drain".to_owned(),
                target: format!("/v1/node/{}/drain", node_name(usize::try_from(index).unwrap())),
                details: String::new(),
                outcome: AuditOutcome::Ok,
                source: "127.0.0.1".to_owned(),
                request_id: 0,
            };
            AuditRow::new(&event, now)
        })
        .collect();
    let page = OverviewPage {
        chrome: chrome(fleet, "Overview", Section::Overview),
        servers: Visible::Shown(
            (1..=3)
                .map(|id| ServerRow {
                    id,
                    address: format!("10.0.0.{id}:4646"),
                    state: if id == 1 { "leader".to_owned() } else { "follower".to_owned() },
                    lag: "0".to_owned(),
                    num_agents: "3333".to_owned(),
                })
                .collect(),
        ),
        problems: Vec::new(),
        nodes: Visible::Shown(overview::node_counts(fleet.nodes.iter().map(|node| node.status.as_str()))),
        allocs: Visible::Shown(overview::alloc_counts(&total)),
        alerts: Visible::Shown(alerts),
        awaiting: Visible::Shown(Vec::new()),
        deployments: Visible::Shown(Vec::new()),
        audit: Visible::Shown(audit),
    };
    render(&page)
}

fn nodes_page(fleet: &Fleet) -> String {
    let table = NodeTable { entries: &fleet.nodes, usage: &fleet.usage };
    let page = NodesPage::on_page(chrome(fleet, "Nodes", Section::Nodes), String::new(), NodeSort::CpuUsed, table, 1);
    render(&page)
}

fn log_record(fleet: &Fleet, index: usize) -> LogRecord {
    let at = fleet.now.as_millis() * 1_000_000 - i64::try_from(index).unwrap() * 1_000_000_000;
    LogRecord {
        origin: node_name(index),
        seq: index as u64,
        timestamp: at,
        received: at,
        node: node_name(index % NODES),
        hostgroup: Some("site0/rack00/batch".to_owned()),
        environment: Some("production".to_owned()),
        job: None,
        group: None,
        task: None,
        alloc: None,
        source: "file".to_owned(),
        stream: "/var/log/syslog".to_owned(),
        level: Some("error".to_owned()),
        message: format!("kernel: EXT4-fs error (device sda{}): disk full on /data, inode {index}", index % 4),
        fields: BTreeMap::new(),
    }
}

/// What the node page's handler reads for one node.
struct NodeInputs {
    status: NodeStatusResponse,
    history: Vec<NodeChange>,
    points: Vec<UsagePoint>,
    logs: Vec<LogLine>,
}

fn node_inputs(fleet: &Fleet) -> NodeInputs {
    let node = fixtures::node(&node_name(42));
    let allocs: Vec<AllocListEntry> = fleet
        .allocs
        .iter()
        .flat_map(|allocs| allocs.iter())
        .filter(|alloc| alloc.node_name == node.name)
        .cloned()
        .collect();
    let status = NodeStatusResponse {
        node,
        used: drover_types::Resources { cpu_mhz: 1000, memory_mb: 2048 },
        allocs,
        last_heartbeat: Some(fleet.now),
        usage: None,
    };
    let start = fleet.now.as_millis() - 24 * 3_600_000;
    let points: Vec<UsagePoint> = (0..1440)
        .map(|minute| UsagePoint {
            time_ms: start + minute * 60_000,
            cpu_percent: Some((minute % 100) as f32),
            memory_percent: Some(40.0),
            disk_percent: Some(71.5),
            net_rx_bytes_per_sec: Some(1.0e6 + minute as f64),
            net_tx_bytes_per_sec: Some(2.0e5),
        })
        .collect();
    let history: Vec<NodeChange> = (0..20)
        .map(|index| NodeChange {
            at: fleet.now.minus(Duration::from_secs(index * 3600)),
            by: "alice".to_owned(),
            field: "meta.rack".to_owned(),
            from: format!("r{index}"),
            to: format!("r{}", index + 1),
            reason: "moved".to_owned(),
        })
        .collect();
    let logs = (0..20).map(|index| LogLine::new(&log_record(fleet, index), &[])).collect();
    NodeInputs { status, history, points, logs }
}

fn node_page(fleet: &Fleet, inputs: &NodeInputs) -> String {
    let page = NodePage::new(
        chrome(fleet, "Node batch00042", Section::Nodes),
        &inputs.status,
        Visible::Shown(inputs.history.clone()),
        Visible::Shown(inputs.points.clone()),
        Visible::Shown(inputs.logs.clone()),
    );
    render(&page)
}

fn jobs_page(fleet: &Fleet) -> String {
    let chrome = chrome(fleet, "Jobs", Section::Jobs);
    let page = JobsPage { jobs: fleet.jobs.iter().map(|entry| JobRow::new(entry, fleet.now)).collect(), chrome };
    render(&page)
}

/// What the job page's handler reads: the job's status and versions.
fn job_inputs(fleet: &Fleet, index: usize) -> (JobStatusResponse, Vec<Job>) {
    let mut current = fleet.job_specs[index].clone();
    current.version = 1;
    let mut older = current.clone();
    older.version = 0;
    older.groups[0].tasks[0].resources.memory_mb /= 2;
    let status = JobStatusResponse {
        job: current.clone(),
        deployment: None,
        children: Vec::new(),
        summary: BTreeMap::new(),
        allocs: fleet.allocs[index].clone(),
        evals: Vec::new(),
    };
    (status, vec![current, older])
}

fn job_page(fleet: &Fleet, (status, versions): &(JobStatusResponse, Vec<Job>)) -> String {
    let title = format!("Job {}", status.job.id.as_str());
    render(&JobPage::new(chrome(fleet, &title, Section::Jobs), status, versions, None, None))
}

fn the_alloc(fleet: &Fleet) -> Allocation {
    let job = &fleet.job_specs[1];
    let mut alloc =
        fixtures::alloc("0000002a-0001-000042", job.id.as_str(), &job.groups[0].name, &NodeId::new("batch00042"));
    alloc.client_status = AllocClientStatus::Running;
    for task in &job.groups[0].tasks {
        let events = (0..30)
            .map(|index| TaskEvent {
                time: fleet.now.minus(Duration::from_secs(index * 600)),
                kind: if index % 2 == 0 { TaskEventKind::Started } else { TaskEventKind::Received },
                message: format!("restart {index}: exit code 1 after the health check failed"),
                exit_code: Some(1),
                signal: None,
            })
            .collect();
        alloc.task_states.insert(task.name.clone(), TaskState { restarts: 15, events, ..TaskState::default() });
    }
    alloc
}

fn alloc_page(fleet: &Fleet, alloc: &Allocation) -> String {
    render(&AllocPage::new(chrome(fleet, "Allocation", Section::Jobs), alloc))
}

fn logs_page(fleet: &Fleet) -> String {
    let search = LogSearchResponse {
        records: (0..100).map(|index| log_record(fleet, index)).collect(),
        next_cursor: Some("c-2".to_owned()),
        total_matching: 123_456,
        ..LogSearchResponse::default()
    };
    let minute = 60_000_000_000_i64;
    let start = fleet.now.as_millis() * 1_000_000 - 60 * minute;
    let histogram = LogHistogramResponse {
        interval_nanos: minute,
        buckets: (0..60)
            .map(|index| LogBucket { start: start + index * minute, count: (index as u64 * 37) % 500 })
            .collect(),
        ..LogHistogramResponse::default()
    };
    let counts = LogCountResponse {
        by: "node".to_owned(),
        counts: (0..15).map(|index| LogCount { value: node_name(index), count: 1000 - index as u64 }).collect(),
        ..LogCountResponse::default()
    };
    let page =
        LogsPage::new(chrome(fleet, "Logs", Section::Logs), "disk full".to_owned(), "1h".to_owned(), String::new())
            .counting_by("node")
            .with_results(&search, &histogram, &["disk".to_owned(), "full".to_owned()], false)
            .with_counts(&counts);
    render(&page)
}

/// The `fraction` quantile of sorted durations.
fn quantile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(100);
    let started = Instant::now();
    let fleet = fleet();
    let alloc = the_alloc(&fleet);
    let node = node_inputs(&fleet);
    let (service, system) = (job_inputs(&fleet, 1), job_inputs(&fleet, 0));
    println!(
        "fleet: {} nodes, {} jobs, {} allocations (built in {:.1?}); {runs} runs a page",
        fleet.nodes.len(),
        fleet.jobs.len(),
        fleet.allocs.iter().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
    type Page<'a> = (&'a str, Box<dyn Fn() -> String + 'a>);
    let pages: Vec<Page> = vec![
        ("overview", Box::new(|| overview_page(&fleet))),
        ("nodes (page 1 of 50, by CPU used)", Box::new(|| nodes_page(&fleet))),
        ("node (10 allocs, 24 h charts)", Box::new(|| node_page(&fleet, &node))),
        ("jobs (100)", Box::new(|| jobs_page(&fleet))),
        ("job (service, 909 allocs)", Box::new(|| job_page(&fleet, &service))),
        ("job (system, 10,000 allocs)", Box::new(|| job_page(&fleet, &system))),
        ("alloc (2 tasks, 30 events)", Box::new(|| alloc_page(&fleet, &alloc))),
        ("logs (100 lines, 60 bars, 15 counts)", Box::new(|| logs_page(&fleet))),
    ];
    println!("{:<38} {:>9} {:>9} {:>9} {:>10}", "page", "p50", "p99", "max", "bytes");
    for (name, page) in &pages {
        let bytes = page().len();
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let html = page();
                let took = start.elapsed();
                assert_eq!(html.len(), bytes);
                took
            })
            .collect();
        times.sort();
        println!(
            "{name:<38} {:>9.2?} {:>9.2?} {:>9.2?} {:>10}",
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            times[times.len() - 1],
            bytes
        );
    }
}
