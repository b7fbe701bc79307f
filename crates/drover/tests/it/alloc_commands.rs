//! Nomad's muscle-memory commands on real tasks: `drover alloc restart`
//! (a new pid, one restart counted), `alloc signal` (a task that traps
//! SIGUSR1 writes a marker), `alloc exec` (the task's variables and
//! directory, the command's exit code), `alloc stop` (replaced by a new
//! allocation), `job restart` (rolling, one at a time with
//! `min_healthy_time` between), their refusals, and their audit events.

use std::time::Duration;

use drover_types::acl::AuditOutcome;
use drover_types::{AllocClientStatus, AllocDesiredStatus, Allocation, TaskEventKind, Timestamp};

use crate::harness::{Cluster, output_text, wait_until};

/// A service whose task `web` traps SIGUSR1 (writing `marker`) and has
/// `GREETING` in its environment; `count` instances, restarted one at a
/// time, each healthy after 1 s.
fn trapping_job(marker: &std::path::Path, count: u32) -> String {
    format!(
        r#"
job "web" {{
  type = "service"
  group "web" {{
    count = {count}
    update {{
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
    }}
    task "web" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "trap 'echo got-usr1 >> {marker}' USR1; while true; do sleep 0.1; done"]
      }}
      env {{
        GREETING = "hello-from-task"
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#,
        marker = marker.display()
    )
}

async fn running_alloc(cluster: &Cluster) -> Allocation {
    let status = cluster.wait_for_allocs("web", AllocClientStatus::Running, 1).await;
    let entry = status.allocs.iter().find(|alloc| alloc.client_status == AllocClientStatus::Running).unwrap();
    cluster.client.allocation(entry.id.as_str()).await.unwrap()
}

async fn wait_for_alloc(cluster: &Cluster, id: &str, what: &str, condition: impl Fn(&Allocation) -> bool) {
    cluster.wait_for(what, || async { cluster.client.allocation(id).await.is_ok_and(|alloc| condition(&alloc)) }).await;
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloc_restart_signal_exec_and_stop_act_on_a_running_task() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let marker = cluster.dir.path().join("usr1-marker");
    let registered = cluster.run_job("web", &trapping_job(&marker, 1));
    assert!(registered.status.success(), "{}", output_text(&registered));
    let alloc = running_alloc(&cluster).await;
    let short = alloc.id.short().to_owned();
    let first_pid = alloc.task_states["web"].pid.expect("a running task has a pid");

    // Restart: a new process, one restart counted, by the short id.
    let restarted = cluster.cli(&["alloc", "restart", &short]);
    assert!(restarted.status.success(), "{}", output_text(&restarted));
    assert!(stdout(&restarted).contains("restarting: web"), "{}", output_text(&restarted));
    wait_for_alloc(&cluster, &short, "the task to run again with a new pid", |alloc| {
        let task = &alloc.task_states["web"];
        task.restarts == 1
            && task.pid.is_some_and(|pid| pid != first_pid)
            && alloc.client_status == AllocClientStatus::Running
    })
    .await;
    let after_restart = cluster.client.allocation(&short).await.unwrap();
    assert!(
        after_restart.task_states["web"].events.iter().any(|event| event.kind == TaskEventKind::RestartSignaled
            && event.message.contains("drover alloc restart")),
        "{:?}",
        after_restart.task_states["web"].events
    );

    // Signal, with Nomad's flag shapes: the trap writes the marker.
    let signalled = cluster.cli(&["alloc", "signal", "-s", "SIGUSR1", &short, "-task", "web"]);
    assert!(signalled.status.success(), "{}", output_text(&signalled));
    wait_until(
        "the task to trap SIGUSR1",
        Duration::from_secs(30),
        || async { std::fs::read_to_string(&marker).is_ok_and(|text| text == "got-usr1\n") },
        || cluster.logs(),
    )
    .await;

    // Exec: the task's variables and working directory, and its exit code.
    let ran = cluster.cli(&["alloc", "exec", &short, "--", "/bin/sh", "-c", "echo $GREETING; pwd; exit 3"]);
    assert_eq!(ran.status.code(), Some(3), "{}", output_text(&ran));
    let lines: Vec<String> = stdout(&ran).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "hello-from-task", "{}", output_text(&ran));
    assert!(lines[1].ends_with(&format!("{}/web/local", alloc.id)), "{}", output_text(&ran));

    // Refusals: an unknown task, an unknown allocation, a TTY.
    let unknown_task = cluster.cli(&["alloc", "restart", &short, "db"]);
    assert!(!unknown_task.status.success());
    assert!(
        String::from_utf8_lossy(&unknown_task.stderr).contains("has the tasks web"),
        "{}",
        output_text(&unknown_task)
    );
    let unknown_alloc = cluster.cli(&["alloc", "signal", "-s", "HUP", "ffffffff"]);
    assert!(!unknown_alloc.status.success());
    assert!(
        String::from_utf8_lossy(&unknown_alloc.stderr).contains("no allocation has an id starting with \"ffffffff\""),
        "{}",
        output_text(&unknown_alloc)
    );
    let tty = cluster.cli(&["alloc", "exec", "-t", &short, "--", "true"]);
    assert!(!tty.status.success());
    assert!(String::from_utf8_lossy(&tty.stderr).contains("cannot allocate a TTY"), "{}", output_text(&tty));

    // Stop: the old allocation stops and a new one runs in its place.
    let stopped = cluster.cli(&["alloc", "stop", &short]);
    assert!(stopped.status.success(), "{}", output_text(&stopped));
    wait_for_alloc(&cluster, &short, "the stopped allocation to finish", |old| {
        old.desired_status != AllocDesiredStatus::Run && old.client_status.is_terminal()
    })
    .await;
    cluster
        .wait_for("a replacement to run", || async {
            cluster.client.job_status("web", None).await.is_ok_and(|(status, _)| {
                status
                    .allocs
                    .iter()
                    .any(|entry| entry.id != alloc.id && entry.client_status == AllocClientStatus::Running)
            })
        })
        .await;
    let not_running = cluster.cli(&["alloc", "restart", &short]);
    assert!(!not_running.status.success());
    assert!(String::from_utf8_lossy(&not_running.stderr).contains("is not running"), "{}", output_text(&not_running));

    // Each action was audited (group-committed: wait for them).
    cluster
        .wait_for("the audit events of the alloc commands", || async {
            let query = drover_proto::api::AuditQuery { kind: Some("alloc".to_owned()), ..Default::default() };
            let Ok(events) = cluster.client.audit(&query).await else { return false };
            let ok = |action: &str| {
                events.iter().any(|event| {
                    event.action == action
                        && event.target.contains(alloc.id.as_str())
                        && matches!(event.outcome, AuditOutcome::Ok)
                })
            };
            ok("alloc.restart") && ok("alloc.signal") && ok("alloc.exec") && ok("alloc.stop")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_restart_restarts_every_allocation_one_batch_at_a_time() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let marker = cluster.dir.path().join("unused-marker");
    let registered = cluster.run_job("web", &trapping_job(&marker, 3));
    assert!(registered.status.success(), "{}", output_text(&registered));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 3).await;

    let restarted = cluster.cli(&["job", "restart", "web"]);
    assert!(restarted.status.success(), "{}", output_text(&restarted));
    assert!(stdout(&restarted).contains("3 allocation(s) restarted, at most 1 at once"), "{}", output_text(&restarted));

    // From the tasks' own events: each was restarted once, and each restart
    // began only after the previous one ran again for min_healthy_time.
    let status = cluster.job_status("web").await;
    let mut windows: Vec<(Timestamp, Timestamp)> = Vec::new();
    for entry in status.allocs.iter().filter(|entry| entry.client_status == AllocClientStatus::Running) {
        let alloc = cluster.client.allocation(entry.id.as_str()).await.unwrap();
        let task = &alloc.task_states["web"];
        assert_eq!(task.restarts, 1, "{}: {:?}", alloc.id, task.events);
        let asked = task.events.iter().find(|event| event.kind == TaskEventKind::RestartSignaled).expect("asked");
        windows.push((asked.time, task.started_at.expect("started again")));
    }
    assert_eq!(windows.len(), 3);
    windows.sort();
    for pair in windows.windows(2) {
        let (_, previous_up) = pair[0];
        let (next_asked, _) = pair[1];
        assert!(
            next_asked >= previous_up.plus(Duration::from_secs(1)),
            "a batch began {} ms after the previous one was up (min_healthy_time 1 s): {windows:?}",
            next_asked.as_millis() - previous_up.as_millis()
        );
    }

    cluster
        .wait_for("the audit event of the job restart", || async {
            let query = drover_proto::api::AuditQuery { kind: Some("job.restart".to_owned()), ..Default::default() };
            cluster.client.audit(&query).await.is_ok_and(|events| {
                events.iter().any(|event| event.target == "job web" && event.details.starts_with("3 allocation(s)"))
            })
        })
        .await;
}

/// A service whose script check passes on the first start of its task and
/// fails after any restart (the task removes the file the check tests).
const FLAKY_JOB: &str = r#"
job "flaky" {
  group "web" {
    count = 2
    update {
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "8s"
    }
    service {
      name     = "flaky"
      provider = "nomad"
      check {
        type     = "script"
        name     = "ready"
        command  = "/bin/sh"
        args     = ["-c", "test -e ready || { echo not ready; exit 2; }"]
        interval = "1s"
        timeout  = "2s"
      }
    }
    task "web" {
      driver = "raw_exec"
      kill_timeout = "1s"
      config {
        command = "/bin/sh"
        args    = ["-c", "if [ -e started ]; then rm -f ready; else touch started ready; fi; exec sleep 3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// `health_check = "checks"` (the default): a restarted batch whose check
/// fails is not healthy; at the healthy deadline the restart stops, names
/// the check and what it said, and leaves the next batch alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_restart_waits_for_the_checks_and_stops_at_a_batch_whose_check_fails() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let registered = cluster.run_job("flaky", FLAKY_JOB);
    assert!(registered.status.success(), "{}", output_text(&registered));
    cluster.wait_for_allocs("flaky", AllocClientStatus::Running, 2).await;
    let passing = || async {
        let Ok((status, _)) = cluster.client.job_status("flaky", None).await else { return false };
        status.allocs.iter().filter(|alloc| alloc.client_status == AllocClientStatus::Running).all(|alloc| {
            !alloc.checks.is_empty()
                && alloc.checks.iter().all(|check| check.status == drover_types::CheckHealth::Passing)
        })
    };
    cluster.wait_for("both allocations' checks to pass", passing).await;

    let restarted = cluster.cli(&["job", "restart", "flaky"]);
    let said = output_text(&restarted);
    assert!(!restarted.status.success(), "{said}");
    assert!(said.contains("batch 1 of 2"), "{said}");
    assert!(said.contains("check \"ready\" of task \"web\""), "{said}");
    assert!(said.contains("is critical: exit code 2 / not ready"), "{said}");
    assert!(said.contains("1 allocation(s) were not restarted"), "{said}");
    let status = cluster.job_status("flaky").await;
    let mut restarts: Vec<u32> = Vec::new();
    for entry in &status.allocs {
        let alloc = cluster.client.allocation(entry.id.as_str()).await.unwrap();
        restarts.push(alloc.task_states["web"].restarts);
    }
    restarts.sort_unstable();
    assert_eq!(restarts, [0, 1], "the second batch was left alone");
}

/// An allocation whose agent is connected to one server is signalled,
/// exec'd into and restarted through the two others: the server asked
/// forwards to the one the agent is connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloc_actions_reach_an_agent_connected_to_another_server() {
    let mut cluster = Cluster::start_servers(3).await;
    cluster.start_agent_on("n1", 1, &[]).await;
    let marker = cluster.dir.path().join("marker");
    let registered = cluster.run_job("web", &trapping_job(&marker, 1));
    assert!(registered.status.success(), "{}", output_text(&registered));
    let alloc = running_alloc(&cluster).await;
    let id = alloc.id.to_string();

    // One signal at a time: two pending SIGUSR1 reach the shell as one.
    for (sent, server) in [0, 2].into_iter().enumerate() {
        let signalled = cluster.client_of(server).signal_alloc(&id, None, "SIGUSR1").await;
        assert_eq!(signalled.map(|answer| answer.tasks).ok(), Some(vec!["web".to_owned()]), "through server {server}");
        cluster
            .wait_for("the signal to reach the task", || async {
                std::fs::read_to_string(&marker).unwrap_or_default().lines().count() == sent + 1
            })
            .await;
    }

    let request = drover_proto::lifecycle::AllocExecRequest {
        task: None,
        command: vec!["/bin/sh".to_owned(), "-c".to_owned(), "echo $GREETING".to_owned()],
        timeout_ms: Some(10_000),
        max_output_bytes: None,
        stdin: Vec::new(),
    };
    let exec = cluster.client_of(2).exec_in_alloc(&id, &request).await.unwrap();
    assert_eq!((exec.exit_code, String::from_utf8_lossy(&exec.stdout).trim()), (Some(0), "hello-from-task"));

    // `alloc logs` through server 0 reaches it too (the same forwarding).
    let logs = std::process::Command::new(crate::harness::drover_binary())
        .args(["alloc", "logs", &id])
        .env("DROVER_ADDR", &cluster.addresses[0])
        .output()
        .unwrap();
    assert!(logs.status.success(), "{}", output_text(&logs));

    let restarted = cluster.client_of(0).restart_alloc(&id, None).await.unwrap();
    assert_eq!(restarted.tasks, ["web"]);
    wait_for_alloc(&cluster, &id, "the task to be restarted", |alloc| {
        alloc.task_states.get("web").is_some_and(|task| task.restarts == 1)
    })
    .await;
}
