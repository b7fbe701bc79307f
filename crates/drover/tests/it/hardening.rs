//! Hostile input against real processes (the hardening issue): a copied
//! node id, dot segments, endless files, closed pipes, exec at its
//! documented maximum output.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;

use drover_proto::api::{ExecEvent, ExecRequest, ExecStatus};
use drover_types::AllocClientStatus;

use crate::harness::{Cluster, Process, drover_binary, last_heartbeat};

const SLEEPER: &str = r#"
job "sleeper" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
    }
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_connected_nodes_id_is_refused_and_takes_nothing_over() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("real", &[]).await;
    assert!(cluster.run_job("sleeper", SLEEPER).status.success());
    let before = cluster.wait_for_allocs("sleeper", AllocClientStatus::Running, 1).await;
    let alloc_id = before.allocs[0].id.clone();

    // An impostor with a copy of the real node's id file.
    let impostor_dir = cluster.dir.path().join("agents/impostor");
    std::fs::create_dir_all(&impostor_dir).unwrap();
    std::fs::copy(cluster.agent_dir("real").join("node-id"), impostor_dir.join("node-id")).unwrap();
    let log = cluster.dir.path().join("agent-impostor.log");
    let mut command = Command::new(drover_binary());
    command
        .args(["agent", "--servers", &cluster.address, "--data-dir"])
        .arg(&impostor_dir)
        .args(["--name", "impostor"]);
    let mut impostor = Process::spawn_for_test("agent impostor", &mut command, log);

    // The impostor retries: refused three times …
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while impostor.output().matches("already connected").count() < 3 {
        assert!(std::time::Instant::now() < deadline, "the impostor was not refused:\n{}", impostor.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // … while the real node's session lives on: the server hears it after
    // the refusals. The marker write commits after anything the servers
    // proposed before; then the real node still runs its task, untouched,
    // under its own name.
    let heard_at_refusal = last_heartbeat(&cluster.client, "real").await;
    cluster
        .wait_for("a heartbeat of the real node after the refusals", || async {
            last_heartbeat(&cluster.client, "real").await > heard_at_refusal
        })
        .await;
    cluster.commit_marker().await;
    let after = cluster.job_status("sleeper").await;
    let running: Vec<_> =
        after.allocs.iter().filter(|alloc| alloc.client_status == AllocClientStatus::Running).collect();
    assert_eq!(running.len(), 1, "{:?}", after.allocs);
    assert_eq!(running[0].id, alloc_id);
    let nodes = cluster.client.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "real");
    assert!(cluster.logs().contains("refused a second session"), "the server says so too");
    let impostor_allocs = std::fs::read_dir(impostor_dir.join("allocs")).map_or(0, |entries| entries.count());
    assert_eq!(impostor_allocs, 0, "the impostor was given no allocation");
    impostor.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_dot_segments_endless_files_and_ends_quietly_on_a_closed_pipe() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("node1", &[]).await;
    assert!(cluster.run_job("sleeper", SLEEPER).status.success());
    cluster.wait_for_allocs("sleeper", AllocClientStatus::Running, 1).await;

    // Used to stop the job through /v1/job/sleeper.
    let purge = cluster.cli(&["var", "purge", "../job/sleeper"]);
    assert!(!purge.status.success());
    let stderr = String::from_utf8_lossy(&purge.stderr);
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    let status = cluster.job_status("sleeper").await;
    assert!(!status.job.stop, "the job was not stopped");

    let started = std::time::Instant::now();
    let validate = cluster.cli(&["job", "validate", "/dev/zero"]);
    assert!(!validate.status.success());
    let stderr = String::from_utf8_lossy(&validate.stderr);
    assert!(stderr.contains("larger than 4 MiB"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Credential files are read through a bound too (the token file used
    // to be read until memory ran out).
    for flag in ["--token-file", "--ca-cert"] {
        let started = std::time::Instant::now();
        let status = cluster.cli(&["job", "status", "sleeper", flag, "/dev/zero"]);
        assert!(!status.status.success());
        let stderr = String::from_utf8_lossy(&status.stderr);
        assert!(stderr.contains("larger than 1 MiB"), "{flag}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "{flag}");
    }
    let restore = cluster.cli(&["operator", "snapshot", "restore", "/dev/zero"]);
    assert!(!restore.status.success());
    let stderr = String::from_utf8_lossy(&restore.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");

    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' job status sleeper | true", drover_binary().display()))
        .env("DROVER_ADDR", &cluster.address)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_at_the_documented_maximum_output_keeps_the_session() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("node1", &[]).await;
    let request = ExecRequest {
        nodes: vec!["node1".to_owned()],
        filter: None,
        command: vec![
            "head -c 16777216 /dev/zero | tr '\\0' y; head -c 16777216 /dev/zero | tr '\\0' n >&2".to_owned(),
        ],
        timeout_ms: 60_000,
        parallel: 0,
        user: None,
        max_output_bytes: 16 * 1024 * 1024,
        local: false,
        all_or_nothing: false,
        root_allowed: true,
        stdin: Vec::new(),
    };
    let mut events = cluster.client.exec(&request).await.unwrap();
    let mut result = None;
    while let Some(event) = events.next().await {
        if let ExecEvent::Result(node_result) = event.unwrap() {
            result = Some(node_result);
        }
    }
    let result = result.expect("a result for node1");
    assert_eq!(result.status, ExecStatus::Success, "{} {}", result.error, cluster.logs());
    assert_eq!(result.stdout.len(), 16 * 1024 * 1024);
    assert_eq!(result.stderr.len(), 16 * 1024 * 1024);
    assert!(!result.truncated);
    // The session survived: the node is ready and answers the next command.
    let request = ExecRequest { command: vec!["echo still here".to_owned()], max_output_bytes: 1024, ..request };
    let mut events = cluster.client.exec(&request).await.unwrap();
    let mut answered = false;
    while let Some(event) = events.next().await {
        if let ExecEvent::Result(node_result) = event.unwrap() {
            answered = node_result.stdout.contains("still here");
        }
    }
    assert!(answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_lost_its_quorum_for_good_is_recovered_from_one_survivor() {
    let mut cluster = Cluster::start_servers(3).await;
    let items = std::collections::BTreeMap::from([("version".to_owned(), "3.2.2".to_owned())]);
    cluster.client.put_variable("site/daq", &items, None).await.unwrap();
    assert!(cluster.run_job("sleeper", SLEEPER).status.success());
    let data_dir = cluster.dir.path().join("server2");

    // While the server runs, its Raft data is locked: refused, nothing moved.
    let running = Command::new(drover_binary())
        .args(["operator", "raft", "recover", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(!running.status.success());
    assert!(String::from_utf8_lossy(&running.stderr).contains("Stop it first"), "{running:?}");
    assert!(data_dir.join("raft").exists());

    // Two servers are lost for good; the third is stopped.
    for index in 0..3 {
        cluster.kill_server_at(index);
    }
    let recover = Command::new(drover_binary())
        .args(["operator", "raft", "recover", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&recover.stdout);
    assert!(recover.status.success(), "{recover:?}");
    assert!(stdout.contains("recovered the state"), "{stdout}");

    // Started alone, it forms a new cluster of one with the state it knew.
    let address = cluster.addresses[2].clone();
    let mut command = Command::new(drover_binary());
    command
        .args(["server", "--insecure", "--bind", &address, "--data-dir"])
        .arg(&data_dir)
        .args(["--min-free-disk-mb", "0"]);
    let mut server = Process::spawn_for_test("recovered", &mut command, cluster.dir.path().join("recovered.log"));
    let client = drover_client::Client::new(&address);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if client.variable("site/daq").await.is_ok() && client.job("sleeper").await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not recovered:\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.variable("site/daq").await.unwrap().items["version"], "3.2.2");
    assert_eq!(client.members().await.unwrap().len(), 1);
    client.put_variable("after/recovery", &items, None).await.unwrap();
    server.kill9();
}
