//! Rolling updates with health checks, automatic revert, canaries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use drover_golden::needs;
use drover_types::{AllocClientStatus, AllocDesiredStatus, CheckHealth, DeploymentStatus};

use crate::harness::Cluster;

/// A service of 5 HTTP servers (python3 -m http.server) on distinct nodes,
/// each node with its own loopback address, rolled 2 at a time. Each test
/// uses its own ports: tests run in parallel on the same addresses.
fn api_job(version: &str, port: u16, check_port: u16, canaries: u32) -> String {
    format!(
        r#"
job "api" {{
  update {{
    max_parallel      = 2
    min_healthy_time  = "1s"
    healthy_deadline  = "8s"
    progress_deadline = "30s"
    auto_revert       = true
    canary            = {canaries}
  }}
  group "api" {{
    count = 5
    constraint {{
      operator = "distinct_hosts"
      value    = "true"
    }}
    restart {{
      attempts = 5
      interval = "1m"
      delay    = "1s"
      mode     = "delay"
    }}
    task "api" {{
      driver = "raw_exec"
      kill_timeout = "2s"
      env {{
        API_VERSION = "{version}"
      }}
      config {{
        command = "python3"
        args    = ["-m", "http.server", "--bind", "${{meta.addr}}", "{port}"]
      }}
      resources {{
        cpu    = 20
        memory = 32
      }}
      service {{
        name = "api"
        port = {check_port}
        check {{
          type     = "http"
          address  = "${{meta.addr}}"
          path     = "/"
          interval = "500ms"
          timeout  = "1s"
        }}
      }}
    }}
  }}
}}
"#
    )
}

async fn start_cluster() -> Cluster {
    let mut cluster = Cluster::start().await;
    for number in 1..=7 {
        let address = format!("addr=127.0.0.{}", number + 1);
        cluster.start_agent(&format!("n{number}"), &["--meta", &address]).await;
    }
    cluster
}

/// Allocations that want to run, run, and pass their check.
async fn num_healthy(cluster: &Cluster) -> usize {
    let Ok((status, _)) = cluster.client.job_status("api", None).await else { return 0 };
    status
        .allocs
        .iter()
        .filter(|alloc| {
            alloc.desired_status == AllocDesiredStatus::Run
                && alloc.client_status == AllocClientStatus::Running
                && !alloc.checks.is_empty()
                && alloc.checks.iter().all(|check| check.status == CheckHealth::Passing)
        })
        .count()
}

fn job_run(cluster: &Cluster, hcl: &str) -> std::process::Output {
    let path = cluster.dir.path().join("api.nomad.hcl");
    std::fs::write(&path, hcl).unwrap();
    cluster.cli(&["job", "run", "--timeout", "2m", path.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_three_healthy_and_a_broken_version_is_reverted() {
    if !needs::are_met([needs::program("python3", "python3")]) {
        return;
    }
    let cluster = Arc::new(start_cluster().await);
    let first = job_run(&cluster, &api_job("1", 18080, 18080, 0));
    assert!(first.status.success(), "{}\n{}", String::from_utf8_lossy(&first.stderr), cluster.logs());
    cluster.wait_for("five healthy allocations", || async { num_healthy(&cluster).await == 5 }).await;
    let first_status = cluster.job_status("api").await;
    assert!(first_status.job.stable, "a successful deployment marks the version stable");

    // Watch health during everything that follows.
    let watching = Arc::new(AtomicBool::new(true));
    let minimum = Arc::new(AtomicUsize::new(5));
    let monitor = {
        let (cluster, watching, minimum) = (Arc::clone(&cluster), Arc::clone(&watching), Arc::clone(&minimum));
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                minimum.fetch_min(num_healthy(&cluster).await, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // A good new version rolls out two at a time.
    let second = job_run(&cluster, &api_job("2", 18080, 18080, 0));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&second.stderr));
    assert!(stdout.contains("succeeded"), "{stdout}");
    let status = cluster.job_status("api").await;
    assert_eq!(status.job.version, 1);
    assert_eq!(status.deployment.as_ref().unwrap().status, DeploymentStatus::Successful);

    // A broken version (serving on the wrong port) fails its checks, its
    // deployment fails, and the last stable version comes back.
    let third = job_run(&cluster, &api_job("3", 18999, 18080, 0));
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(!third.status.success(), "a failed deployment fails `job run`");
    assert!(stderr.contains("failed"), "{stderr}");
    cluster
        .wait_for("the revert's deployment to succeed", || async {
            let status = cluster.job_status("api").await;
            status.job.version == 3
                && status.deployment.as_ref().is_some_and(|deployment| {
                    deployment.job_version == 3 && deployment.status == DeploymentStatus::Successful
                })
        })
        .await;
    let reverted = cluster.job_status("api").await;
    assert_eq!(reverted.job.groups[0].tasks[0].env["API_VERSION"], "2", "version 3 is version 1's specification");
    cluster.wait_for("five healthy allocations again", || async { num_healthy(&cluster).await == 5 }).await;

    watching.store(false, Ordering::Relaxed);
    monitor.await.unwrap();
    let lowest = minimum.load(Ordering::Relaxed);
    assert!(lowest >= 3, "healthy allocations dropped to {lowest} during the updates");

    // History shows every version with its change.
    let history = String::from_utf8_lossy(&cluster.cli(&["job", "history", "api"]).stdout).into_owned();
    assert!(history.contains("Version 3") && history.contains("Version 0"), "{history}");
    assert!(history.contains("API_VERSION"), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_wait_for_promotion_then_the_rollout_continues() {
    if !needs::are_met([needs::program("python3", "python3")]) {
        return;
    }
    let cluster = start_cluster().await;
    let first = job_run(&cluster, &api_job("1", 28080, 28080, 1));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    cluster.wait_for("five healthy allocations", || async { num_healthy(&cluster).await == 5 }).await;

    let second = job_run(&cluster, &api_job("2", 28080, 28080, 1));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}{}", String::from_utf8_lossy(&second.stderr));
    assert!(stdout.contains("promote"), "job run stops at the promotion: {stdout}");
    let status = cluster.job_status("api").await;
    let deployment = status.deployment.clone().unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Blocked);
    let running: Vec<_> =
        status.allocs.iter().filter(|alloc| alloc.desired_status == AllocDesiredStatus::Run).collect();
    assert_eq!(running.len(), 6, "five old allocations plus one canary: {running:?}");
    assert_eq!(running.iter().filter(|alloc| alloc.job_version == 1).count(), 1);

    let promoted = cluster.cli(&["job", "promote", "api"]);
    assert!(promoted.status.success(), "{}", String::from_utf8_lossy(&promoted.stderr));
    cluster
        .wait_for("the promoted deployment to succeed", || async {
            cluster
                .job_status("api")
                .await
                .deployment
                .is_some_and(|deployment| deployment.status == DeploymentStatus::Successful)
        })
        .await;
    let done = cluster.job_status("api").await;
    let running: Vec<_> = done.allocs.iter().filter(|alloc| alloc.desired_status == AllocDesiredStatus::Run).collect();
    assert_eq!(running.len(), 5);
    assert!(running.iter().all(|alloc| alloc.job_version == 1));
}
