//! Small things a new user hit (issue 13), with the real binary: `drover
//! exec` without nodes is a usage error, and `drover job run` of a service
//! whose task exits at once fails instead of reporting it running.

use std::process::Command;

use crate::harness::{Cluster, drover_binary, free_port};

#[test]
fn exec_without_nodes_or_filter_is_a_usage_error_before_any_server_is_asked() {
    // Nothing listens on this address: a request would fail with exit 1.
    let address = format!("127.0.0.1:{}", free_port());
    let output =
        Command::new(drover_binary()).args(["exec", "--", "true"]).env("DROVER_ADDR", &address).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "usage errors exit 2: {stderr}");
    assert!(stderr.contains("<NODES|--filter <FILTER>>"), "says what to give: {stderr}");
    assert!(stderr.contains("Usage: drover exec"), "{stderr}");
}

/// A service without an `update` block whose task exits 3 at once, allowed
/// one restart a second later.
const CRASHING_SERVICE: &str = r#"
job "crash" {
  group "crash" {
    restart {
      attempts = 1
      interval = "1m"
      delay    = "1s"
      mode     = "fail"
    }
    task "crash" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 3"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_run_of_a_service_that_exits_at_once_fails() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let path = cluster.dir.path().join("crash.nomad.hcl");
    std::fs::write(&path, CRASHING_SERVICE).unwrap();
    let output = cluster.cli(&["job", "run", "--timeout", "1m", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "a task that exits 3 fails `job run`:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("are running"), "{stdout}");
    assert!(stderr.contains("allocation ") && stderr.contains("on node n1"), "names the allocation: {stderr}");
    assert!(stderr.contains("crash: Terminated: Exit Code: 3"), "shows the task's last events: {stderr}");
    assert!(stderr.contains("drover job status crash"), "{stderr}");
}
