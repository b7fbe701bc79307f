//! Machine workflows through a real provider: `fixtures/provider.sh`,
//! whose machines are `drover agent` processes on this host. Machines are
//! created at a capped rate (the pacing read back from the audit), one is
//! rebuilt (a fresh agent takes its name), one deleted (gone from the node
//! list, its agent stopped), a protected one refused with the protection's
//! reason, and a workflow goes on after its leader is killed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_proto::api::AuditQuery;
use drover_types::workflow::{StepPhase, Workflow, WorkflowStatus};

use crate::harness::{Cluster, drover_binary, process_alive, wait_until};

/// The CLI as user `alice`, without a terminal.
fn cli(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    cluster.cli_as("alice", args)
}

/// What a command printed.
fn text(output: &std::process::Output) -> String {
    crate::harness::output_text(output)
}

/// The machines the test provider made; kills their agents (by the pid
/// files the provider wrote, nothing else) when the test ends.
struct Machines {
    dir: PathBuf,
}

impl Machines {
    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(name).join("pid")).ok()?.trim().parse().ok()
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let Ok(pid) = std::fs::read_to_string(entry.path().join("pid")) else { continue };
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Applies a site whose provider `test` is `fixtures/provider.sh`.
fn apply_test_provider(cluster: &Cluster) -> Machines {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/provider.sh");
    let machines = cluster.dir.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    let common = format!("{} {} {}", machines.display(), cluster.address, drover_binary().display());
    let command = |operation: &str| {
        format!("sh {} {operation} {{{{node.name}}}} {common} --hostgroup {{{{node.hostgroup}}}}", script.display())
    };
    let site = cluster.dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    let hcl = format!(
        "provider \"test\" {{\n  create = \"{}\"\n  reboot = \"{}\"\n  rebuild = \"{}\"\n  delete = \"{}\"\n  timeout = \"30s\"\n}}\n",
        command("create"),
        command("reboot"),
        command("rebuild"),
        command("delete"),
    );
    std::fs::write(site.join("providers.hcl"), hcl).unwrap();
    let applied = cli(cluster, &["apply", site.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    Machines { dir: machines }
}

/// The ready node named `name`'s id, if there is one.
async fn ready_node_id(cluster: &Cluster, name: &str) -> Option<String> {
    let status = cluster.client.node(name).await.ok()?;
    (status.node.status.as_str() == "ready").then(|| status.node.id.to_string())
}

/// The one workflow the cluster has started last.
async fn latest_workflow(cluster: &Cluster) -> Workflow {
    cluster.client.workflows().await.unwrap().into_iter().next().expect("a workflow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_are_created_at_the_rate_asked_then_rebuilt_deleted_and_a_protected_one_refused() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);

    // Five machines at 30/min: one start every 2 s, five at once allowed.
    let started = std::time::Instant::now();
    let created = cli(
        &cluster,
        &["node", "create", "batch{1..5}", "--provider", "test", "--hostgroup", "bi/batch", "--rate", "30/min"],
    );
    assert!(created.status.success(), "{}\n{}", text(&created), cluster.logs());
    let elapsed = started.elapsed();
    let workflow = latest_workflow(&cluster).await;
    assert_eq!(workflow.status, WorkflowStatus::Succeeded, "{workflow:#?}");
    assert!(workflow.steps.iter().all(|step| step.phase == StepPhase::Done), "{workflow:#?}");
    for name in ["batch1", "batch2", "batch3", "batch4", "batch5"] {
        let status = cluster.client.node(name).await.unwrap();
        assert_eq!((status.node.status.as_str(), status.node.hostgroup.as_str()), ("ready", "bi/batch"), "{name}");
    }

    // The pacing, from the audit: each provider command 2 s after the last.
    let query = AuditQuery { kind: Some("workflow.create".to_owned()), ..AuditQuery::default() };
    let mut starts: Vec<i64> = cluster
        .client
        .audit(&query)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.details.contains("provider command started"))
        .map(|event| event.at.as_millis())
        .collect();
    starts.sort_unstable();
    assert_eq!(starts.len(), 5, "{starts:?}");
    let gaps: Vec<i64> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    println!("create at 30/min: gaps between provider commands {gaps:?} ms, whole workflow {elapsed:?}");
    for gap in &gaps {
        assert!((1_950..=3_500).contains(gap), "gaps {gaps:?}: the rate cap is 2 s between starts");
    }

    // Rebuild batch2: drained, reinstalled (fresh data dir), a new agent
    // takes its name, eligible again.
    let old_id = ready_node_id(&cluster, "batch2").await.unwrap();
    let rebuilt = cli(&cluster, &["node", "rebuild", "batch2"]);
    assert!(rebuilt.status.success(), "{}\n{}", text(&rebuilt), cluster.logs());
    let status = cluster.client.node("batch2").await.unwrap();
    assert_ne!(status.node.id.to_string(), old_id, "a rebuilt machine's agent has a new id");
    assert_eq!(status.node.status.as_str(), "ready");
    assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Eligible);
    let history = cluster.client.node_history("batch2").await.unwrap();
    assert!(history.iter().any(|change| change.field == "replaced"), "{history:#?}");

    // Delete batch3: drained and retired, its agent stopped, purged.
    let pid = machines.pid("batch3").unwrap();
    let deleted = cli(&cluster, &["node", "delete", "batch3"]);
    assert!(deleted.status.success(), "{}\n{}", text(&deleted), cluster.logs());
    assert!(cluster.client.node("batch3").await.is_err(), "batch3 is forgotten");
    assert!(!process_alive(pid), "batch3's agent ({pid}) was stopped");
    assert!(!machines.dir.join("batch3").exists());

    // A protected node: refused with the protection's reason, nothing done.
    let protected = cli(&cluster, &["node", "protect", "batch4", "--reason", "holds the release volume"]);
    assert!(protected.status.success(), "{}", text(&protected));
    let pid = machines.pid("batch4").unwrap();
    for operation in ["delete", "rebuild", "reboot"] {
        let refused = cli(&cluster, &["node", operation, "batch4"]);
        assert!(!refused.status.success());
        let message = text(&refused);
        assert!(message.contains("protected") && message.contains("holds the release volume"), "{message}");
    }
    assert!(process_alive(pid) && ready_node_id(&cluster, "batch4").await.is_some());

    // Reboot batch5: its agent restarts on the same data dir, same id.
    let old_id = ready_node_id(&cluster, "batch5").await.unwrap();
    let old_pid = machines.pid("batch5").unwrap();
    let rebooted = cli(&cluster, &["node", "reboot", "batch5"]);
    assert!(rebooted.status.success(), "{}\n{}", text(&rebooted), cluster.logs());
    assert_eq!(ready_node_id(&cluster, "batch5").await, Some(old_id));
    assert_ne!(machines.pid("batch5"), Some(old_pid));

    // The workflows are listed.
    let listed = cli(&cluster, &["workflow", "list"]);
    assert!(listed.status.success() && text(&listed).contains("rebuild"), "{}", text(&listed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_stops_the_workflow_and_a_cancel_stops_the_rest() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    // The second machine's provider fails; --max-failures 0 stops at once.
    std::fs::create_dir_all(machines.dir.join("fail2")).unwrap();
    std::fs::write(machines.dir.join("fail2").join("fail"), "").unwrap();
    let created = cli(
        &cluster,
        &[
            "node",
            "create",
            "fail1,fail2,fail3",
            "--provider",
            "test",
            "--hostgroup",
            "bi/batch",
            "--max-failures",
            "0",
        ],
    );
    assert!(!created.status.success(), "{}", text(&created));
    let workflow = latest_workflow(&cluster).await;
    let phases: Vec<StepPhase> = workflow.steps.iter().map(|step| step.phase).collect();
    assert_eq!(workflow.status, WorkflowStatus::Failed, "{workflow:#?}");
    assert_eq!(phases, [StepPhase::Done, StepPhase::Failed, StepPhase::Cancelled], "{workflow:#?}");
    assert!(workflow.steps[1].error.contains("simulated provider failure"), "{}", workflow.steps[1].error);
    assert!(machines.pid("fail3").is_none(), "the step after the failure never ran");

    // A slow rate, cancelled after the first start.
    let started = cli(
        &cluster,
        &[
            "node",
            "create",
            "slow{1..3}",
            "--provider",
            "test",
            "--hostgroup",
            "bi/batch",
            "--rate",
            "1/min",
            "--wait=false",
        ],
    );
    assert!(started.status.success(), "{}", text(&started));
    let id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    cluster
        .wait_for("the first slow machine to register", || async { ready_node_id(&cluster, "slow1").await.is_some() })
        .await;
    // slow2 is pending in the running workflow: no second one takes it.
    let held = cli(&cluster, &["node", "create", "slow2", "--provider", "test"]);
    assert!(!held.status.success() && text(&held).contains(&format!("running workflow {id}")), "{}", text(&held));
    let cancelled = cli(&cluster, &["workflow", "cancel", &id]);
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    let workflow = cluster.client.workflow(&id).await.unwrap();
    assert_eq!(workflow.status, WorkflowStatus::Cancelled);
    assert_eq!(workflow.steps[1].phase, StepPhase::Cancelled);
    let status = cli(&cluster, &["workflow", "status", &id]);
    assert!(text(&status).contains("cancelled by alice"), "{}", text(&status));
    assert!(machines.pid("slow2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_goes_on_under_the_next_leader_when_its_leader_is_killed() {
    let mut cluster = Cluster::start_servers(3).await;
    let machines = apply_test_provider(&cluster);
    // 4 machines, one start every 3 s: the leader dies after the first.
    let started = cli(
        &cluster,
        &[
            "node",
            "create",
            "ha{1..4}",
            "--provider",
            "test",
            "--hostgroup",
            "bi/batch",
            "--rate",
            "20/min",
            "--wait=false",
        ],
    );
    assert!(started.status.success(), "{}", text(&started));
    let id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    cluster.wait_for("ha1 to register", || async { ready_node_id(&cluster, "ha1").await.is_some() }).await;
    let leader = cluster.leader_index().await;
    cluster.kill_server_at(leader);
    let survivor = cluster.client_of((leader + 1) % 3);
    wait_until(
        "the workflow to end under the new leader",
        Duration::from_secs(90),
        || async { survivor.workflow(&id).await.is_ok_and(|workflow| workflow.status != WorkflowStatus::Running) },
        || cluster.logs(),
    )
    .await;
    let workflow = survivor.workflow(&id).await.unwrap();
    for step in &workflow.steps {
        // A step whose command the dead leader was running is failed, not
        // repeated; every other one is done.
        let interrupted = step.phase == StepPhase::Failed && step.error.contains("leader changed");
        assert!(step.phase == StepPhase::Done || interrupted, "{workflow:#?}");
    }
    let num_done = workflow.steps.iter().filter(|step| step.phase == StepPhase::Done).count();
    assert!(num_done >= 3, "{workflow:#?}");
    // No provider command ran twice: a second `create` of a running
    // machine fails ("exists already"), which the loop above refuses.
    assert!(machines.pid("ha1").is_some());
}
