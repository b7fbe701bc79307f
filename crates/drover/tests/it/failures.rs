//! Failure and change: dead and frozen machines, agent restarts, drains,
//! periodic jobs (issue 3), with real servers, agents and tasks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use drover_types::{AllocClientStatus, AllocDesiredStatus, EvalTrigger, NodeStatus, TaskEventKind};

use crate::harness::{Cluster, last_heartbeat, process_alive};

fn service_job(name: &str, count: u32, extra_group: &str) -> String {
    format!(
        r#"
job "{name}" {{
  group "{name}" {{
    count = {count}
    {extra_group}
    restart {{
      attempts = 3
      interval = "1m"
      delay    = "1s"
      mode     = "fail"
    }}
    task "{name}" {{
      driver = "raw_exec"
      kill_timeout = "2s"
      config {{
        command = "/bin/sh"
        args    = ["-c", "while true; do echo tick $(date +%s%N); sleep 0.2; done"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

fn run_ok(cluster: &Cluster, name: &str, hcl: &str) {
    let output = cluster.run_job(name, hcl);
    assert!(output.status.success(), "job run failed: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_machine_has_its_allocations_replaced_on_other_nodes() {
    let mut cluster = Cluster::start().await;
    for name in ["n1", "n2", "n3"] {
        cluster.start_agent(name, &[]).await;
    }
    run_ok(&cluster, "web", &service_job("web", 3, ""));
    let status = cluster.wait_for_allocs("web", AllocClientStatus::Running, 3).await;
    let on_n1: Vec<String> =
        status.allocs.iter().filter(|alloc| alloc.node_name == "n1").map(|alloc| alloc.id.to_string()).collect();
    assert!(!on_n1.is_empty(), "spread puts an allocation on n1");

    let died = Instant::now();
    cluster.kill_machine("n1");
    cluster
        .wait_for("n1's allocations to be replaced and running elsewhere", || async {
            let status = cluster.job_status("web").await;
            let running_elsewhere = status
                .allocs
                .iter()
                .filter(|alloc| alloc.node_name != "n1" && alloc.client_status == AllocClientStatus::Running)
                .count();
            running_elsewhere == 3
        })
        .await;
    // Test servers use a 4 s TTL: detection plus scheduling and start take
    // about 7 s here. The time is measured by `drover bench failover`, not
    // asserted here: other tests load the same two cores meanwhile.
    eprintln!("n1's allocations replaced {:?} after it died", died.elapsed());
    let status = cluster.job_status("web").await;
    for alloc_id in &on_n1 {
        let alloc = status.allocs.iter().find(|alloc| &alloc.id.to_string() == alloc_id).unwrap();
        assert_eq!(alloc.client_status, AllocClientStatus::Lost, "{alloc:?}");
    }
    let nodes = cluster.client.nodes().await.unwrap();
    assert_eq!(nodes.iter().find(|node| node.name == "n1").unwrap().status, "down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_briefly_frozen_agent_moves_nothing() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    run_ok(&cluster, "web", &service_job("web", 2, ""));
    let before = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let ids: Vec<String> = before.allocs.iter().map(|alloc| alloc.id.to_string()).collect();
    let status_changed_at = cluster.client.node("n1").await.unwrap().node.status_updated_at;

    // Frozen for half the TTL (4 s), then thawed: the freeze's length is
    // the scenario, so this sleep stays.
    cluster.signal_agent("n1", Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let heard_while_frozen = last_heartbeat(&cluster.client, "n1").await;
    cluster.signal_agent("n1", Signal::SIGCONT);

    // The server hears n1 again, so its heartbeat deadline moved on; the
    // marker write commits after anything the heartbeat tracker proposed
    // before that, and the scheduler has processed every evaluation.
    cluster
        .wait_for("a heartbeat of n1 after the thaw", || async {
            last_heartbeat(&cluster.client, "n1").await > heard_while_frozen
        })
        .await;
    cluster.wait_until_evaluated("web").await;

    let n1 = cluster.client.node("n1").await.unwrap().node;
    assert_eq!(n1.status_updated_at, status_changed_at, "n1 was never marked down (and back): {n1:?}");
    let after = cluster.job_status("web").await;
    let after_ids: Vec<String> = after.allocs.iter().map(|alloc| alloc.id.to_string()).collect();
    assert_eq!(after_ids, ids, "no allocation was added or replaced");
    assert!(after.allocs.iter().all(|alloc| alloc.client_status == AllocClientStatus::Running));
    let evals = cluster.evaluations_of("web").await.unwrap();
    assert!(
        evals.iter().all(|eval| !matches!(eval.triggered_by, EvalTrigger::NodeUpdate | EvalTrigger::Reconnect)),
        "no evaluation was made for n1: {evals:?}"
    );
    let nodes = cluster.client.nodes().await.unwrap();
    assert!(nodes.iter().all(|node| node.status == "ready"), "{nodes:?}");
}

/// The number of lines the task of every allocation in `alloc_ids` has
/// written so far, read from its output files in the agent's data
/// directory (where the executor writes them, agent or not).
fn lines_written(agent_dir: &Path, alloc_ids: &[String], task: &str) -> Vec<usize> {
    alloc_ids
        .iter()
        .map(|alloc_id| {
            let log_dir = agent_dir.join("allocs").join(alloc_id).join("alloc/logs");
            let prefix = format!("{task}.stdout.");
            std::fs::read_dir(&log_dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
                        .map(|entry| std::fs::read(entry.path()).unwrap_or_default())
                        .map(|bytes| bytes.iter().filter(|byte| **byte == b'\n').count())
                        .sum()
                })
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_agent_alone_keeps_tasks_and_reattaches() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    run_ok(&cluster, "web", &service_job("web", 2, ""));
    let before = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let pids: BTreeMap<String, u32> =
        before.allocs.iter().map(|alloc| (alloc.id.to_string(), alloc.task_states["web"].pid.unwrap())).collect();

    let alloc_ids: Vec<String> = pids.keys().cloned().collect();
    cluster.kill_agent("n1");
    // Every task writes two more lines with no agent: its executor, which
    // holds its output, outlived the agent, and so did the task.
    let at_kill = lines_written(&cluster.agent_dir("n1"), &alloc_ids, "web");
    cluster
        .wait_for("every task to write two lines after the agent died", || async {
            let now = lines_written(&cluster.agent_dir("n1"), &alloc_ids, "web");
            now.iter().zip(&at_kill).all(|(now, then)| *now >= then + 2)
        })
        .await;
    assert!(pids.values().all(|pid| process_alive(*pid)), "tasks survive the agent");
    cluster.restart_agent("n1").await;

    // Re-attached: same processes, a Reattached event.
    let alloc_id = pids.keys().next().unwrap().clone();
    cluster
        .wait_for("the restarted agent to re-attach", || async {
            let alloc = cluster.client.allocation(&alloc_id).await.unwrap();
            alloc.task_states["web"].events.iter().any(|event| event.kind == TaskEventKind::Reattached)
        })
        .await;
    let after = cluster.job_status("web").await;
    let after_pids: BTreeMap<String, u32> =
        after.allocs.iter().map(|alloc| (alloc.id.to_string(), alloc.task_states["web"].pid.unwrap())).collect();
    assert_eq!(after_pids, pids, "the same processes, not restarted");
    assert!(after.allocs.iter().all(|alloc| alloc.client_status == AllocClientStatus::Running));

    // Output capture went on while no agent was attached, and what was
    // written meanwhile is read through the server.
    let logs = String::from_utf8_lossy(&cluster.cli(&["alloc", "logs", &alloc_id[..8]]).stdout).into_owned();
    let written_by_then = at_kill[alloc_ids.iter().position(|id| *id == alloc_id).unwrap()] + 2;
    assert!(logs.lines().count() >= written_by_then, "output kept being written: {logs:?}");

    // Supervision resumed: kill the task and the new agent restarts it.
    let old_pid = pids[&alloc_id];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old_pid as i32), Signal::SIGKILL).unwrap();
    cluster
        .wait_for("the task to be restarted by the new agent", || async {
            let alloc = cluster.client.allocation(&alloc_id).await.unwrap();
            let task = &alloc.task_states["web"];
            task.restarts >= 1
                && task.pid.is_some_and(|pid| pid != old_pid)
                && alloc.client_status == AllocClientStatus::Running
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_services_stops_system_allocations_last_and_finishes_only_when_all_stopped() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    let constraint = r#"constraint {
      attribute = "${node.unique.name}"
      value     = "n1"
    }"#;
    // Two service allocations start on n1 (pinned), then the pin is lifted
    // in place so that they may move to n2.
    run_ok(&cluster, "web", &service_job("web", 2, &format!("{constraint}\n migrate {{ max_parallel = 1 }}")));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let system = service_job("agentd", 1, "").replace("job \"agentd\" {", "job \"agentd\" {\n  type = \"system\"");
    run_ok(&cluster, "agentd", &system);
    cluster.wait_for_allocs("agentd", AllocClientStatus::Running, 2).await;
    run_ok(&cluster, "web", &service_job("web", 2, "migrate { max_parallel = 1 }"));

    let output = cluster.cli(&["node", "drain", "n1"]);
    let finished = Instant::now();
    assert!(output.status.success(), "{}\n{}", String::from_utf8_lossy(&output.stderr), cluster.logs());
    assert!(String::from_utf8_lossy(&output.stdout).contains("Drain complete"));

    // Reported done only when every allocation on n1 has stopped.
    let node = cluster.client.node("n1").await.unwrap();
    assert!(node.allocs.is_empty(), "live allocations left on n1: {:?}", node.allocs);
    assert!(node.node.drain.is_none());
    assert_eq!(node.node.eligibility, drover_types::NodeEligibility::Ineligible);
    let web = cluster.job_status("web").await;
    let running: Vec<_> = web.allocs.iter().filter(|alloc| alloc.client_status == AllocClientStatus::Running).collect();
    assert_eq!(running.len(), 2, "both web allocations run again: {:?}", web.allocs);
    assert!(running.iter().all(|alloc| alloc.node_name == "n2"));

    // The system allocation on n1 stopped after the services had moved.
    let agentd = cluster.job_status("agentd").await;
    let system_on_n1 = agentd.allocs.iter().find(|alloc| alloc.node_name == "n1").unwrap();
    assert!(system_on_n1.client_status.is_terminal());
    let last_service_stop =
        web.allocs.iter().filter(|alloc| alloc.node_name == "n1").map(|alloc| alloc.modify_time).max().unwrap();
    let system_stopped = system_on_n1.task_states["agentd"].finished_at.unwrap();
    assert!(system_stopped >= last_service_stop.minus(Duration::from_millis(500)), "system allocations go last");
    let _ = finished;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_a_deadline_stops_what_remains_at_the_deadline() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    // Tasks that ignore SIGINT take kill_timeout (6 s) to stop, and only one
    // allocation migrates at a time: without a deadline the drain of two
    // allocations takes about 12 s.
    let slow_to_stop = |pinned: bool| {
        let pin = if pinned { "constraint {\n attribute = \"${node.unique.name}\"\n value = \"n1\"\n }" } else { "" };
        service_job("web", 2, &format!("{pin}\n migrate {{ max_parallel = 1 }}"))
            .replace("kill_timeout = \"2s\"", "kill_timeout = \"6s\"")
            .replace("while true;", "trap '' INT; while true;")
    };
    run_ok(&cluster, "web", &slow_to_stop(true));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    run_ok(&cluster, "web", &slow_to_stop(false));

    let started = Instant::now();
    let output = cluster.cli(&["node", "drain", "n1", "--deadline", "2s"]);
    let elapsed = started.elapsed();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(elapsed >= Duration::from_secs(6), "allocations take kill_timeout to stop ({elapsed:?})");
    assert!(elapsed < Duration::from_secs(11), "the deadline stops the second allocation early ({elapsed:?})");

    let web = cluster.job_status("web").await;
    let on_n1: Vec<_> = web.allocs.iter().filter(|alloc| alloc.node_name == "n1").collect();
    assert_eq!(on_n1.len(), 2);
    assert!(
        on_n1
            .iter()
            .all(|alloc| alloc.client_status.is_terminal() && alloc.desired_status == AllocDesiredStatus::Evict)
    );
    assert!(
        on_n1.iter().any(|alloc| alloc.desired_description.contains("deadline")),
        "one allocation was stopped by the deadline: {on_n1:?}"
    );
    assert!(cluster.client.node("n1").await.unwrap().allocs.is_empty());
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_job_with_prohibit_overlap_never_runs_twice_at_once() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let job = r#"
job "tick" {
  type = "batch"
  periodic {
    crons            = ["* * * * * *"]
    prohibit_overlap = true
  }
  group "tick" {
    task "tick" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo start $(date +%s%N); sleep 2.5; echo end $(date +%s%N)"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;
    run_ok(&cluster, "tick", job);
    let started = Instant::now();
    let mut max_concurrent = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let status = cluster.job_status("tick").await;
        let mut running = 0;
        for child in &status.children {
            running += child.allocs.running + child.allocs.pending;
        }
        max_concurrent = max_concurrent.max(running);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = cluster.job_status("tick").await;
    assert!(status.children.len() >= 2, "launched every few seconds: {:?}", status.children);
    assert!(max_concurrent <= 1, "two launches ran at once");

    // The children's task lifetimes never overlap either.
    let mut intervals = Vec::new();
    for child in &status.children {
        for alloc in cluster.client.job_allocations(child.id.as_str()).await.unwrap() {
            let state = &alloc.task_states["tick"];
            if let (Some(start), Some(end)) = (state.started_at, state.finished_at) {
                intervals.push((start, end));
            }
        }
    }
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlapping runs: {pair:?}");
    }
    assert_eq!(status.job.status, drover_types::JobStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_comes_back_keeps_the_replacements_and_stops_its_originals() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    run_ok(&cluster, "web", &service_job("web", 2, ""));
    let before = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let original = before.allocs.iter().find(|alloc| alloc.node_name == "n1").expect("one allocation on n1").clone();
    let original_pid = original.task_states["web"].pid.unwrap();

    // Frozen longer than the TTL (4 s): n1 is down, its allocation lost and
    // replaced on n2; the process itself still exists.
    cluster.signal_agent("n1", Signal::SIGSTOP);
    cluster
        .wait_for("a replacement running on n2", || async {
            let status = cluster.job_status("web").await;
            status
                .allocs
                .iter()
                .filter(|alloc| alloc.node_name == "n2" && alloc.client_status == AllocClientStatus::Running)
                .count()
                == 2
        })
        .await;
    assert!(process_alive(original_pid));
    cluster.signal_agent("n1", Signal::SIGCONT);

    // n1 is back: the original is stopped by its agent, the replacement stays.
    cluster
        .wait_for("n1 ready and its original stopped", || async {
            let nodes = cluster.client.nodes().await.unwrap();
            let ready = nodes.iter().any(|node| node.name == "n1" && node.status == "ready");
            ready && !process_alive(original_pid)
        })
        .await;
    let after = cluster.job_status("web").await;
    let ids_after: Vec<String> = after.allocs.iter().map(|alloc| alloc.id.to_string()).collect();
    // Whatever n1's agent reports about the stop goes down its session
    // before its next heartbeat. Once the server has heard that heartbeat
    // and the scheduler has processed every evaluation made so far (by n1's
    // return, by the report), it has had its say on the returned node.
    let heard_at_stop = last_heartbeat(&cluster.client, "n1").await;
    cluster
        .wait_for("a heartbeat of n1 after its original stopped", || async {
            last_heartbeat(&cluster.client, "n1").await > heard_at_stop
        })
        .await;
    cluster.wait_until_evaluated("web").await;
    let settled = cluster.job_status("web").await;
    let ids_settled: Vec<String> = settled.allocs.iter().map(|alloc| alloc.id.to_string()).collect();
    assert_eq!(ids_after, ids_settled, "nothing flaps after the node returns");
    let running: Vec<_> =
        settled.allocs.iter().filter(|alloc| alloc.client_status == AllocClientStatus::Running).collect();
    assert_eq!(running.len(), 2, "{:?}", settled.allocs);
    assert!(running.iter().all(|alloc| alloc.node_name == "n2"), "the replacements stay");
    let original_now = settled.allocs.iter().find(|alloc| alloc.id == original.id).unwrap();
    assert_ne!(original_now.desired_status, AllocDesiredStatus::Run);
    assert!(original_now.client_status.is_terminal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_block_waits_for_the_node_instead_of_replacing() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    let pinned_waiting = r#"constraint {
      attribute = "${node.unique.name}"
      value     = "n1"
    }
    disconnect {
      lost_after = "1m"
      replace    = false
    }"#;
    run_ok(&cluster, "db", &service_job("db", 1, pinned_waiting));
    let before = cluster.wait_for_allocs("db", AllocClientStatus::Running, 1).await;
    let alloc = before.allocs[0].clone();
    let pid = alloc.task_states["db"].pid.unwrap();

    cluster.signal_agent("n1", Signal::SIGSTOP);
    cluster
        .wait_for("n1 disconnected and the allocation unknown", || async {
            let nodes = cluster.client.nodes().await.unwrap();
            let disconnected =
                nodes.iter().any(|node| node.name == "n1" && node.status == NodeStatus::Disconnected.as_str());
            let status = cluster.job_status("db").await;
            disconnected && status.allocs.iter().any(|alloc| alloc.client_status == AllocClientStatus::Unknown)
        })
        .await;
    let during = cluster.job_status("db").await;
    assert_eq!(during.allocs.len(), 1, "replace = false: no replacement");

    cluster.signal_agent("n1", Signal::SIGCONT);
    cluster
        .wait_for("the original to run again", || async {
            let status = cluster.job_status("db").await;
            status.allocs.len() == 1 && status.allocs[0].client_status == AllocClientStatus::Running
        })
        .await;
    let after = cluster.job_status("db").await;
    assert_eq!(after.allocs[0].id, alloc.id);
    assert_eq!(after.allocs[0].task_states["db"].pid, Some(pid), "the same process, never stopped");
    assert!(process_alive(pid));
}
