//! Scheduling and supervision with a real server and real agents.

use std::collections::BTreeMap;

use drover_types::{AllocClientStatus, TaskEventKind};

use crate::harness::{Cluster, process_alive};

const SERVICE_JOB: &str = r#"
job "web" {
  type = "service"
  group "web" {
    count = 5
    restart {
      attempts = 3
      interval = "1m"
      delay    = "1s"
      mode     = "fail"
    }
    task "web" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo started on ${node.unique.name}; exec sleep 600"]
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
async fn a_service_job_spreads_over_agents_and_a_killed_task_is_restarted() {
    let mut cluster = Cluster::start().await;
    for name in ["n1", "n2", "n3"] {
        cluster.start_agent(name, &[]).await;
    }
    let output = cluster.run_job("web", SERVICE_JOB);
    assert!(output.status.success(), "job run failed: {}", String::from_utf8_lossy(&output.stderr));
    let status = cluster.wait_for_allocs("web", AllocClientStatus::Running, 5).await;

    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for alloc in &status.allocs {
        *per_node.entry(alloc.node_name.clone()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "5 allocations should use all 3 nodes: {per_node:?}");
    assert!(per_node.values().all(|count| *count <= 2), "allocations should be spread: {per_node:?}");

    // Kill one task's process: the restart policy starts it again.
    let victim = &status.allocs[0];
    let old_pid = victim.task_states["web"].pid.expect("a running task has a pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old_pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let victim_id = victim.id.clone();
    cluster
        .wait_for("the killed task to be restarted", || async {
            let alloc = cluster.client.allocation(victim_id.as_str()).await.unwrap();
            let task = &alloc.task_states["web"];
            task.restarts == 1
                && alloc.client_status == AllocClientStatus::Running
                && task.pid.is_some_and(|pid| pid != old_pid)
        })
        .await;
    let alloc = cluster.client.allocation(victim_id.as_str()).await.unwrap();
    let kinds: Vec<TaskEventKind> = alloc.task_states["web"].events.iter().map(|event| event.kind).collect();
    let terminated = kinds.iter().rposition(|kind| *kind == TaskEventKind::Terminated).expect("a Terminated event");
    assert_eq!(kinds[terminated + 1..].first(), Some(&TaskEventKind::Restarting), "events: {kinds:?}");
    assert!(process_alive(alloc.task_states["web"].pid.unwrap()));

    // The task's output is readable through the server.
    let logs = cluster.cli(&["alloc", "logs", victim_id.short()]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.matches("started on ").count() >= 2, "both runs' output expected, got {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_runs_to_completion_and_is_not_rerun() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    let job = r#"
job "report" {
  type = "batch"
  group "report" {
    count = 2
    task "report" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo report ${NOMAD_ALLOC_INDEX} done"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;
    let output = cluster.run_job("report", job);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status = cluster.wait_for_allocs("report", AllocClientStatus::Complete, 2).await;
    cluster
        .wait_for("the batch job to be dead", || async {
            cluster.job_status("report").await.job.status == drover_types::JobStatus::Dead
        })
        .await;
    let logs = cluster.cli(&["alloc", "logs", status.allocs[0].id.short()]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("done"), "{logs:?}");

    // Nothing is ever rerun: the scheduler has processed every evaluation
    // made before or with the completions, and placed nothing new.
    cluster.wait_until_evaluated("report").await;
    let later = cluster.job_status("report").await;
    assert_eq!(later.allocs.len(), 2, "a finished batch job must not be rerun: {:?}", later.allocs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_job_runs_on_every_matching_node_including_late_joiners() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("daq1", &["--hostgroup", "belle2/daq/hlt"]).await;
    cluster.start_agent("daq2", &["--hostgroup", "belle2/daq/storage"]).await;
    cluster.start_agent("web1", &["--hostgroup", "web/frontend"]).await;
    let job = r#"
variable "daq_slc_version" { default = "3.2.1" }
job "nsmd2" {
  type = "system"
  constraint {
    attribute = "${node.hostgroup}"
    operator  = "glob"
    value     = "belle2/daq/**"
  }
  group "nsmd2" {
    task "nsmd2" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo nsmd2 ${var.daq_slc_version}; exec sleep 600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;
    let output = cluster.run_job("nsmd2", job);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for_allocs("nsmd2", AllocClientStatus::Running, 2).await;

    cluster.start_agent("daq3", &["--hostgroup", "belle2/daq/hlt/unit3"]).await;
    let status = cluster.wait_for_allocs("nsmd2", AllocClientStatus::Running, 3).await;
    let mut nodes: Vec<&str> = status.allocs.iter().map(|alloc| alloc.node_name.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["daq1", "daq2", "daq3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_server_keeps_state_and_running_tasks() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let output = cluster.run_job("web", &SERVICE_JOB.replace("count = 5", "count = 2"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let before = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let pids: BTreeMap<String, u32> =
        before.allocs.iter().map(|alloc| (alloc.id.to_string(), alloc.task_states["web"].pid.unwrap())).collect();

    let agent = cluster.agent_index("n1");
    let sessions_ended = cluster.agents[agent].output().matches("session ended").count();
    cluster.kill_server();
    // The agent has noticed that its server is gone, and its tasks live on.
    cluster
        .wait_for("the agent to see its session end", || async {
            cluster.agents[agent].output().matches("session ended").count() > sessions_ended
        })
        .await;
    assert!(pids.values().all(|pid| process_alive(*pid)), "tasks must survive the server");
    cluster.restart_server().await;

    let after = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let after_pids: BTreeMap<String, u32> =
        after.allocs.iter().map(|alloc| (alloc.id.to_string(), alloc.task_states["web"].pid.unwrap())).collect();
    assert_eq!(after_pids, pids, "the same allocations, with the same processes");
    assert_eq!(after.job.version, before.job.version);
    // The restarted server gave every node a grace period: none went down.
    let nodes = cluster.client.nodes().await.unwrap();
    assert!(nodes.iter().all(|node| node.status == "ready"), "{nodes:?}");

    // Scheduling continues after the restart.
    let output = cluster.run_job("web", &SERVICE_JOB.replace("count = 5", "count = 3"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 3).await;
    assert!(pids.values().all(|pid| process_alive(*pid)), "scaling up must not restart existing tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplaceable_job_fails_job_run_with_the_reason() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &["--hostgroup", "web"]).await;
    let job = SERVICE_JOB.replace(
        "group \"web\" {",
        "constraint {\n attribute = \"${node.hostgroup}\"\n value = \"database\"\n }\n group \"web\" {",
    );
    let path = cluster.dir.path().join("web.nomad.hcl");
    std::fs::write(&path, job).unwrap();
    let output = cluster.cli(&["job", "run", "--timeout", "30s", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("could not be placed"), "{stderr}");
    assert!(stderr.contains("filtered by constraint"), "the reason should name the constraint: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_job_file_is_reported_with_positions_and_changes_nothing() {
    let cluster = Cluster::start().await;
    let path = cluster.dir.path().join("bad.nomad.hcl");
    std::fs::write(&path, "job \"bad\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config { comand = \"x\" }\n    }\n  }\n}\n").unwrap();
    let output = cluster.cli(&["job", "run", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.nomad.hcl:4:"), "driver error with its line: {stderr}");
    assert!(stderr.contains("docker"), "{stderr}");
    assert!(stderr.contains("bad.nomad.hcl:5:"), "both errors at once: {stderr}");
    assert!(cluster.client.jobs().await.unwrap().is_empty(), "nothing registered");
}
