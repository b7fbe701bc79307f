//! Upgrades (docs/operations.md, "Upgrades"): a rolling restart of three
//! servers, one at a time with SIGTERM as `systemctl restart` does, while a
//! job runs and its agent ships numbered log lines and a client writes
//! variables: every acknowledged write and every line the task wrote is
//! there afterwards, once, and the task was never restarted (same
//! allocation, same pid, no restart counted). An upgrade replaces the binary
//! between the stop and the start of each server; this is the same
//! sequence with the current binary (why no older one: see the docs).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use drover_client::Client;
use drover_proto::api::{LogPage, LogQuery, LogRecord};
use drover_types::AllocClientStatus;
use nix::sys::signal::Signal;

use crate::ha::Writer;
use crate::harness::{Cluster, process_alive};

/// Lines the task writes, about 50 a second, then it sleeps on.
const NUM_LINES: u64 = 2000;

const TICKER_JOB: &str = r#"
job "ticker" {
  type = "service"
  group "g" {
    task "ticker" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo \"rolling seq=$i level=info\"; sleep 0.02; done; exec sleep 3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// Every `rolling` line the servers hold, page by page.
async fn rolling_lines(client: &Client) -> Vec<LogRecord> {
    let query = LogQuery { q: "rolling".to_owned(), ..LogQuery::default() };
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        // One page holds them all: a line in flight while its agent moved
        // servers can be held by two of them, and a page shows it once
        // (docs/logs.md, "Where logs are stored; several servers").
        let Ok(page) = client.search_logs(&query, &LogPage { limit: Some(10_000), cursor }).await else {
            return records;
        };
        records.extend(page.records);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return records,
        }
    }
}

/// The `n` of a line's `seq=n`.
fn line_number(record: &LogRecord) -> Option<u64> {
    record.message.split_whitespace().find_map(|word| word.strip_prefix("seq=")).and_then(|number| number.parse().ok())
}

/// The ticker's allocation id, pid and restart count.
async fn ticker(cluster: &Cluster) -> (String, u32, u32) {
    let status = cluster.job_status("ticker").await;
    let alloc = status.allocs.iter().find(|alloc| alloc.client_status == AllocClientStatus::Running).unwrap();
    let task = &alloc.task_states["ticker"];
    (alloc.id.to_string(), task.pid.unwrap(), task.restarts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_servers_loses_no_write_no_line_and_restarts_no_task() {
    // The production heartbeat timings (docs/operations.md): the tests'
    // usual 4 s TTL is shorter than a loaded machine's restart takes.
    let mut cluster = Cluster::start_servers_with(3, &["--heartbeat-interval", "4s", "--heartbeat-ttl", "8s"]).await;
    cluster.start_agent("n1", &[]).await;
    let output = cluster.run_job("ticker", TICKER_JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for_allocs("ticker", AllocClientStatus::Running, 1).await;
    let before = ticker(&cluster).await;
    let writer = Writer::start(&cluster.address, "written");
    cluster.wait_for("the first lines shipped", || async { rolling_lines(&cluster.client).await.len() >= 50 }).await;

    // Followers first, the leader last, as docs/operations.md says.
    let leader = cluster.leader_index().await;
    let order: Vec<usize> = (0..3).filter(|index| *index != leader).chain([leader]).collect();
    let started = Instant::now();
    let mut lines_during = Vec::new();
    for index in order {
        cluster.servers[index].signal(Signal::SIGTERM);
        let status = cluster.servers[index].wait_exit(Duration::from_secs(30));
        assert!(status.is_some_and(|status| status.success()), "server {index} stopped with {status:?}");
        cluster.spawn_server_at(index);
        cluster.wait_for_leader().await;
        // The restarted server has caught up with every write acknowledged
        // before it came back, before the next one goes.
        let wanted = writer.num_acked();
        let restarted = cluster.client_of(index).with_stale(true);
        cluster
            .wait_for(&format!("server {index} to catch up with {wanted} writes"), || async {
                restarted.variables("written/").await.is_ok_and(|variables| variables.len() >= wanted)
            })
            .await;
        lines_during.push(rolling_lines(&cluster.client).await.len());
    }
    let rolled_in = started.elapsed();
    let acked = writer.stop().await;

    // Every acknowledged write, through a consistent read.
    let stored: BTreeSet<String> =
        cluster.client.variables("written/").await.unwrap().into_iter().map(|variable| variable.path).collect();
    let lost: Vec<&u64> = acked.iter().filter(|n| !stored.contains(&format!("written/{n}"))).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost: {lost:?}", lost.len());

    // Every line the task wrote, once: a line in flight while its agent
    // moved servers may be held by two of them, and a page shows it once.
    let all: BTreeSet<u64> = (1..=NUM_LINES).collect();
    let found = Mutex::new(Vec::new());
    cluster
        .wait_for(&format!("all {NUM_LINES} lines"), || async {
            let records = rolling_lines(&cluster.client).await;
            let complete = records.iter().filter_map(line_number).collect::<BTreeSet<u64>>() == all;
            *found.lock().unwrap() = records;
            complete
        })
        .await;
    let records = found.into_inner().unwrap();
    let mut numbers: Vec<u64> = records.iter().filter_map(line_number).collect();
    numbers.sort_unstable();
    let twice: Vec<&u64> = numbers.windows(2).filter(|pair| pair[0] == pair[1]).map(|pair| &pair[0]).collect();
    assert!(twice.is_empty(), "{} records for {NUM_LINES} lines; shown twice: {twice:?}", records.len());

    // The same allocation and process, never restarted.
    let after = ticker(&cluster).await;
    assert_eq!(after, before, "the task's allocation, pid and restarts");
    assert!(process_alive(before.1));
    eprintln!(
        "rolling restart of 3 servers in {rolled_in:?}; {} writes acknowledged; lines stored after each server: {lines_during:?}",
        acked.len()
    );
}

/// The job the format fixtures hold: three lines, then it sleeps.
const FIXTURE_JOB: &str = r#"
job "fixture" {
  type = "service"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "for i in 1 2 3; do echo fixture line $i; done; exec sleep 3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// Where the data directories written by each version are kept, one
/// `drover-VERSION.tar.gz` each (docs/operations.md, "Upgrades").
fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade")
}

/// The `fixture line` records the servers hold.
async fn fixture_lines(client: &Client) -> Vec<LogRecord> {
    let query = LogQuery { q: "\"fixture line\"".to_owned(), ..LogQuery::default() };
    client.search_logs(&query, &LogPage::default()).await.map(|page| page.records).unwrap_or_default()
}

/// Writes this version's fixture: a server's and an agent's data
/// directories after a job ran, a variable was written and lines shipped,
/// both stopped cleanly. Run once per release whose formats changed:
/// `cargo test -p drover --test it -- --ignored upgrade::write_this_versions_data_directory_fixture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/data/upgrade/drover-VERSION.tar.gz; run by hand at a release"]
async fn write_this_versions_data_directory_fixture() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("fx1", &[]).await;
    let output = cluster.run_job("fixture", FIXTURE_JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for_allocs("fixture", AllocClientStatus::Running, 1).await;
    let output = cluster.cli(&["var", "put", "fixture/a", "x=1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for("the fixture's lines", || async { fixture_lines(&cluster.client).await.len() == 3 }).await;

    cluster.agents[0].signal(Signal::SIGTERM);
    assert!(cluster.agents[0].wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()));
    crate::harness::kill_processes_under(&cluster.agent_dir("fx1"));
    cluster.servers[0].signal(Signal::SIGTERM);
    assert!(cluster.servers[0].wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()));

    std::fs::create_dir_all(fixtures_dir()).unwrap();
    let fixture = fixtures_dir().join(format!("drover-{}.tar.gz", env!("CARGO_PKG_VERSION")));
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&fixture)
        .arg("-C")
        .arg(cluster.dir.path())
        .args(["--exclude=*.sock", "server", "agents/fx1"])
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    eprintln!("wrote {}", fixture.display());
}

/// Every kept fixture starts with this build: the server reads its Raft
/// log and log store (the job, the variable, the lines, the audit event are
/// all there) and the agent keeps its node id and runs the job again (its
/// task ended when the fixture was written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directories_written_by_each_kept_version_start_with_this_build() {
    let mut fixtures: Vec<std::path::PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "no fixture under {}", fixtures_dir().display());
    for fixture in fixtures {
        let dir = tempfile::Builder::new().prefix("drover-it-").tempdir().unwrap();
        let status =
            std::process::Command::new("tar").arg("-xzf").arg(&fixture).arg("-C").arg(dir.path()).status().unwrap();
        assert!(status.success(), "cannot unpack {}", fixture.display());
        let node_id = std::fs::read_to_string(dir.path().join("agents/fx1/node-id")).unwrap().trim().to_owned();
        // A fixture is as old as its release: nothing in it may expire.
        let keep = ["--log-retention", "36500d", "--audit-retention", "36500d", "--node-gc-after", "36500d"];
        let mut cluster = Cluster::start_in(dir, 1, &keep).await;
        let name = fixture.display();

        let job = cluster.client.job("fixture").await.unwrap_or_else(|error| panic!("{name}: the job: {error}"));
        assert_eq!(job.version, 0, "{name}");
        let variable = cluster.client.variable("fixture/a").await.unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(variable.items.get("x").map(String::as_str), Some("1"), "{name}");
        let lines = fixture_lines(&cluster.client).await;
        assert_eq!(lines.len(), 3, "{name}: the fixture's lines: {lines:?}");
        assert!(lines.iter().all(|line| line.node == "fx1"), "{name}: {lines:?}");
        let query = drover_proto::api::AuditQuery { kind: Some("variable.put".to_owned()), ..Default::default() };
        let events = cluster.client.audit(&query).await.unwrap();
        assert!(events.iter().any(|event| event.target.contains("fixture/a")), "{name}: {events:?}");

        cluster.start_agent("fx1", &[]).await;
        let nodes = cluster.client.nodes().await.unwrap();
        let fx1 = nodes.iter().find(|node| node.name == "fx1").unwrap();
        assert_eq!(fx1.id.as_str(), node_id, "{name}: the agent kept its node id");
        cluster.wait_for_allocs("fixture", AllocClientStatus::Running, 1).await;
        cluster.wait_for("the job's lines again", || async { fixture_lines(&cluster.client).await.len() >= 6 }).await;
    }
}
