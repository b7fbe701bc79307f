//! Machine workflows through a real provider: `fixtures/provider.sh`,
//! whose machines are `drover agent` processes on this host. Twenty
//! machines are created at 10/min (the pacing read back from the audit),
//! five rebuilt three at once (a long build on one is moved by the drain
//! before its node's command; fresh agents take their names), three
//! deleted (out of the node list, kept retired in `--all`, the history and
//! the log search; one created again under its name is in service), a
//! protected one refused with the protection's reason, and a workflow goes
//! on after its leader is killed. A paused
//! workflow starts no new node until resumed; a rolling maintenance runs
//! its commands through the agents at most `--parallel` nodes out at once
//! and stops at a failing verify; a node's console is read through its
//! provider; a delete with `--no-drain` never drains. `--max-failures`
//! takes a percentage of the nodes selected; a machine is powered off and
//! on through `power_off`/`power_on` templates that read the node's facts;
//! a created machine must register the labels asked for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_golden::needs;
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
    // power_off passes a fact the agent registered; the provider `ipmi`
    // uses one no agent has.
    let power_off =
        format!("sh {} power_off {{{{node.name}}}} {common} --kernel {{{{node.facts.kernel.name}}}}", script.display());
    let hcl = format!(
        "provider \"test\" {{\n  default = true\n  create = \"{}\"\n  reboot = \"{}\"\n  rebuild = \"{}\"\n  delete = \"{}\"\n  console = \"{}\"\n  power_on = \"{}\"\n  power_off = \"{power_off}\"\n  timeout = \"30s\"\n}}\n\
         provider \"ipmi\" {{\n  power_off = \"ipmitool -H {{{{node.facts.bmc.address}}}} chassis power off\"\n}}\n",
        command("create"),
        command("reboot"),
        command("rebuild"),
        command("delete"),
        command("console"),
        command("power_on"),
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

/// A long build: prints a line, then runs for an hour.
const BUILD_JOB: &str = r#"
job "build" {
  type = "batch"
  group "build" {
    task "make" {
      driver = "raw_exec"
      kill_timeout = "1s"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo build started; exec sleep 3600"]
      }
      resources {
        cpu    = 10
        memory = 16
      }
    }
  }
}
"#;

/// The node the build's one running allocation is on.
async fn build_node(cluster: &Cluster) -> String {
    let running = cluster.wait_for_allocs("build", drover_types::AllocClientStatus::Running, 1).await;
    let alloc = running
        .allocs
        .iter()
        .find(|alloc| alloc.client_status == drover_types::AllocClientStatus::Running)
        .expect("a running build");
    alloc.node_name.clone()
}

/// How many `build started` lines node `name` logged, by the log search.
async fn build_lines_on(cluster: &Cluster, name: &str) -> u64 {
    let query = drover_proto::api::LogQuery { q: format!("\"build started\" AND node:{name}"), ..Default::default() };
    let page = drover_proto::api::LogPage { limit: Some(0), cursor: None };
    cluster.client.search_logs(&query, &page).await.map_or(0, |page| page.total_matching)
}

/// The nodes `drover node list` shows (`--all`: retired ones too), each
/// with the status it shows.
fn listed_nodes(cluster: &Cluster, all: bool) -> Vec<(String, String)> {
    let mut args = vec!["node", "list", "--json"];
    if all {
        args.push("--all");
    }
    let listed = cli(cluster, &args);
    assert!(listed.status.success(), "{}", text(&listed));
    let nodes: Vec<drover_proto::api::NodeListEntry> =
        serde_json::from_slice(&listed.stdout).expect("node list --json");
    nodes.into_iter().map(|node| (node.name, node.status)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_are_created_at_the_rate_asked_then_rebuilt_deleted_and_a_protected_one_refused() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    let names: Vec<String> = (1..=20).map(|number| format!("batch{number:02}")).collect();

    // Twenty machines at 10/min, five at once allowed: one start every 6 s.
    let started = std::time::Instant::now();
    let created = cli(
        &cluster,
        &[
            "node",
            "create",
            "batch{01..20}",
            "--provider",
            "test",
            "--hostgroup",
            "bi/batch",
            "--rate",
            "10/min",
            "--parallel",
            "5",
            "--yes",
        ],
    );
    assert!(created.status.success(), "{}\n{}", text(&created), cluster.logs());
    let elapsed = started.elapsed();
    let workflow = latest_workflow(&cluster).await;
    assert_eq!(workflow.status, WorkflowStatus::Succeeded, "{workflow:#?}");
    assert!(workflow.steps.iter().all(|step| step.phase == StepPhase::Done), "{workflow:#?}");
    for name in &names {
        let status = cluster.client.node(name).await.unwrap();
        assert_eq!((status.node.status.as_str(), status.node.hostgroup.as_str()), ("ready", "bi/batch"), "{name}");
    }

    // The pacing, from the audit: each provider command 6 s after the last.
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
    assert_eq!(starts.len(), 20, "{starts:?}");
    let gaps: Vec<i64> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    println!("create of 20 at 10/min: gaps between provider commands {gaps:?} ms, whole workflow {elapsed:?}");
    for gap in &gaps {
        assert!((5_950..=12_000).contains(gap), "gaps {gaps:?}: the rate cap is 6 s between starts");
    }

    // A long build runs on one node; that node and four others are
    // rebuilt, three at once. Each is drained first: the build is moved
    // (stopped there, started again elsewhere) before its node's provider
    // command, never cut by it; every node comes back under a new agent.
    let ran = cluster.run_job("build", BUILD_JOB);
    assert!(ran.status.success(), "{}", text(&ran));
    let builder = build_node(&cluster).await;
    cluster
        .wait_for("the build's line to be searchable", || {
            let (cluster, builder) = (&cluster, builder.clone());
            async move { build_lines_on(cluster, &builder).await == 1 }
        })
        .await;
    let mut rebuilt_names = vec![builder.clone()];
    rebuilt_names.extend(names.iter().filter(|name| **name != builder).take(4).cloned());
    let mut old_ids = Vec::new();
    for name in &rebuilt_names {
        old_ids.push(ready_node_id(&cluster, name).await.unwrap());
    }
    let rebuilt = cli(&cluster, &["node", "rebuild", &rebuilt_names.join(","), "--parallel", "3"]);
    assert!(rebuilt.status.success(), "{}\n{}", text(&rebuilt), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert_eq!((workflow.status, workflow.steps.len()), (WorkflowStatus::Succeeded, 5), "{workflow:#?}");
    assert!(most_at_once(&workflow) <= 3, "{workflow:#?}");
    for (name, old_id) in rebuilt_names.iter().zip(&old_ids) {
        let status = cluster.client.node(name).await.unwrap();
        assert_ne!(status.node.id.to_string(), *old_id, "{name}: a rebuilt machine's agent has a new id");
        assert_eq!(status.node.status.as_str(), "ready", "{name}");
        assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Eligible, "{name}");
        let history = cluster.client.node_history(name).await.unwrap();
        assert!(history.iter().any(|change| change.field == "replaced"), "{name}: {history:#?}");
    }
    let phases = phases_from_audit(&cluster, "workflow.rebuild", &workflow.id, 5).await;
    let expected = ["draining", "provider", "waiting", "done"].map(str::to_owned);
    assert_eq!(phases.get(&builder).map(Vec::as_slice), Some(&expected[..]), "{phases:#?}");
    // The build was moved by the drain before the rebuild ran: its task on
    // the old node ended before the node's provider command started, and
    // it runs again on another node.
    let allocs = cluster.client.job_allocations("build").await.unwrap();
    let moved = allocs.iter().find(|alloc| alloc.node_id.to_string() == old_ids[0]).expect("the first build");
    let ended = moved.task_states.get("make").and_then(|task| task.finished_at);
    let step = workflow.steps.iter().find(|step| step.node == builder).unwrap();
    assert!(moved.client_status.is_terminal(), "{moved:#?}");
    assert!(ended.is_some_and(|ended| Some(ended) <= step.provider_started_at), "{moved:#?}\n{step:#?}");
    let mover = build_node(&cluster).await;
    assert!(allocs.len() >= 2, "{allocs:#?}");
    cluster
        .wait_for("the moved build's line to be searchable", || {
            let (cluster, mover) = (&cluster, mover.clone());
            async move { build_lines_on(cluster, &mover).await >= 1 }
        })
        .await;

    // Delete three, the build's node among them: drained and retired, the
    // machine destroyed, then out of `drover node list` but in `--all`,
    // in its history and in the log search.
    let mut deleted_names = vec![mover.clone()];
    deleted_names
        .extend(names.iter().rev().filter(|name| **name != mover && !rebuilt_names.contains(name)).take(2).cloned());
    let pids: Vec<u32> = deleted_names.iter().map(|name| machines.pid(name).unwrap()).collect();
    let deleted = cli(&cluster, &["node", "delete", &deleted_names.join(","), "--parallel", "3"]);
    assert!(deleted.status.success(), "{}\n{}", text(&deleted), cluster.logs());
    let listed = listed_nodes(&cluster, false);
    let all = listed_nodes(&cluster, true);
    for (name, pid) in deleted_names.iter().zip(&pids) {
        assert!(!process_alive(*pid), "{name}'s agent ({pid}) was stopped");
        assert!(!machines.dir.join(name).exists(), "{name}'s machine is gone");
        assert!(!listed.iter().any(|(listed, _)| listed == name), "{name} is not listed: {listed:?}");
        assert!(all.contains(&(name.clone(), "retired".to_owned())), "{name} is listed with --all: {all:?}");
        let history = cluster.client.node_history(name).await.unwrap();
        assert!(history.iter().any(|change| change.field == "retired"), "{name}: {history:#?}");
    }
    assert!(build_lines_on(&cluster, &mover).await >= 1, "the deleted node's lines stay searchable");
    assert_eq!(listed.len(), 17, "{listed:?}");
    // The build moved once more, off the deleted node.
    assert!(!deleted_names.contains(&build_node(&cluster).await));

    // A machine created again under a deleted name is in service.
    let again = cli(&cluster, &["node", "create", &deleted_names[1], "--provider", "test", "--hostgroup", "bi/batch"]);
    assert!(again.status.success(), "{}\n{}", text(&again), cluster.logs());
    let status = cluster.client.node(&deleted_names[1]).await.unwrap();
    assert_eq!(
        (status.node.display_status(), status.node.eligibility),
        ("ready", drover_types::NodeEligibility::Eligible)
    );
    let history = cluster.client.node_history(&deleted_names[1]).await.unwrap();
    assert!(history.iter().any(|change| change.field == "retired" && change.to == "no"), "{history:#?}");

    // A protected node: refused with the protection's reason, nothing done.
    let mut kept = names.iter().filter(|name| !deleted_names.contains(name));
    let (keeper, rebooter) = (kept.next().unwrap().as_str(), kept.next().unwrap().as_str());
    let protected = cli(&cluster, &["node", "protect", keeper, "--reason", "holds the release volume"]);
    assert!(protected.status.success(), "{}", text(&protected));
    let pid = machines.pid(keeper).unwrap();
    for operation in ["delete", "rebuild", "reboot"] {
        let refused = cli(&cluster, &["node", operation, keeper]);
        assert!(!refused.status.success());
        let message = text(&refused);
        assert!(message.contains("protected") && message.contains("holds the release volume"), "{message}");
    }
    assert!(process_alive(pid) && ready_node_id(&cluster, keeper).await.is_some());

    // Reboot another: its agent restarts on the same data dir, same id.
    let old_id = ready_node_id(&cluster, rebooter).await.unwrap();
    let old_pid = machines.pid(rebooter).unwrap();
    let rebooted = cli(&cluster, &["node", "reboot", rebooter]);
    assert!(rebooted.status.success(), "{}\n{}", text(&rebooted), cluster.logs());
    assert_eq!(ready_node_id(&cluster, rebooter).await, Some(old_id));
    assert_ne!(machines.pid(rebooter), Some(old_pid));

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

    // --max-failures as a percentage of the nodes selected, rounded down:
    // 25% of 4 is 1, so the second failure stops it.
    for name in ["pct1", "pct2"] {
        std::fs::create_dir_all(machines.dir.join(name)).unwrap();
        std::fs::write(machines.dir.join(name).join("fail"), "").unwrap();
    }
    let create_pct = |limit: &str| {
        cli(
            &cluster,
            &["node", "create", "pct{1..4}", "--provider", "test", "--hostgroup", "bi/batch", "--max-failures", limit],
        )
    };
    for (bad, why) in [("150%", "is more than 100%"), ("-1", "is not a number"), ("x%", "is not a number")] {
        let refused = create_pct(bad);
        let message = text(&refused);
        assert!(!refused.status.success() && message.contains(&format!("--max-failures {bad:?} {why}")), "{message}");
    }
    let stopped = create_pct("25%");
    assert!(!stopped.status.success(), "{}", text(&stopped));
    let workflow = latest_workflow(&cluster).await;
    let phases: Vec<StepPhase> = workflow.steps.iter().map(|step| step.phase).collect();
    assert_eq!((workflow.max_failures, workflow.max_failures_percent), (1, Some(25)), "{workflow:#?}");
    assert_eq!(phases, [StepPhase::Failed, StepPhase::Failed, StepPhase::Cancelled, StepPhase::Cancelled]);
    assert_eq!(workflow.reason, "2 steps failed, more than --max-failures 1 (25% of 4 nodes)");
    let status = cli(&cluster, &["workflow", "status", &workflow.id]);
    assert!(text(&status).contains("max failures 1 (25% of 4 nodes)"), "{}", text(&status));
    assert!(machines.pid("pct3").is_none() && machines.pid("pct4").is_none());

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

/// Creates machines `names` (a brace range) through the test provider and
/// waits for the workflow to succeed.
fn create_machines(cluster: &Cluster, names: &str) {
    let created =
        cli(cluster, &["node", "create", names, "--provider", "test", "--hostgroup", "bi/batch", "--parallel", "5"]);
    assert!(created.status.success(), "{}\n{}", text(&created), cluster.logs());
}

/// The phases each node's step went through in workflow `id`, in order,
/// from the audit log, once each of the `nodes` steps has its `done`
/// event (audit events are committed in groups after the workflow's own
/// state, so the last may lag the workflow's status), or after 30 s.
async fn phases_from_audit(
    cluster: &Cluster,
    kind: &str,
    id: &str,
    nodes: usize,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let query = AuditQuery { kind: Some(kind.to_owned()), ..AuditQuery::default() };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut events: Vec<_> = cluster
            .client
            .audit(&query)
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.details.starts_with(&format!("workflow {id} ")))
            .collect();
        events.sort_by_key(|event| event.at.as_millis());
        let mut phases: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        for event in events {
            // "workflow ID step N: PHASE: what"
            let phase = event.details.split(": ").nth(1).unwrap_or_default().to_owned();
            phases.entry(event.target.clone()).or_default().push(phase);
        }
        let all_done =
            phases.len() >= nodes && phases.values().all(|list| list.last().is_some_and(|last| last == "done"));
        if all_done || std::time::Instant::now() > deadline {
            return phases;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most steps of `workflow` in flight at once, from their start and
/// end times.
fn most_at_once(workflow: &Workflow) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for step in &workflow.steps {
        if let (Some(start), Some(end)) = (step.started_at, step.finished_at) {
            edges.push((start.as_millis(), 1));
            edges.push((end.as_millis(), -1));
        }
    }
    // An end and a start at the same millisecond: the end first.
    edges.sort_unstable();
    let (mut now, mut most) = (0, 0);
    for (_, change) in edges {
        now += change;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_workflow_starts_no_new_node_until_resumed() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "base1");

    let started =
        cli(&cluster, &["node", "create", "p{1..6}", "--provider", "test", "--hostgroup", "bi/batch", "--wait=false"]);
    assert!(started.status.success(), "{}", text(&started));
    let id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let paused = cli(&cluster, &["workflow", "pause", &id]);
    assert!(paused.status.success(), "{}", text(&paused));
    let again = cli(&cluster, &["workflow", "pause", &id]);
    assert!(!again.status.success() && text(&again).contains("paused already (by alice)"), "{}", text(&again));

    // The step in flight (if the leader had started one) goes on to its end.
    cluster
        .wait_for("the steps in flight to end", || async {
            cluster.client.workflow(&id).await.is_ok_and(|workflow| workflow.counts().2 == 0)
        })
        .await;
    let at_pause = cluster.client.workflow(&id).await.unwrap();
    let (_, _, _, pending) = at_pause.counts();
    assert!(pending >= 1, "the pause came after every start: {at_pause:#?}");
    // A whole reboot of another node (many runner ticks) later, still
    // nothing new started.
    let rebooted = cli(&cluster, &["node", "reboot", "base1"]);
    assert!(rebooted.status.success(), "{}\n{}", text(&rebooted), cluster.logs());
    let still = cluster.client.workflow(&id).await.unwrap();
    assert_eq!(still.counts(), at_pause.counts(), "{still:#?}");
    assert_eq!((still.status, still.paused_by.as_deref()), (WorkflowStatus::Running, Some("alice")));
    assert!(machines.pid("p6").is_none());
    let status = cli(&cluster, &["workflow", "status", &id]);
    assert!(text(&status).contains("running (paused by alice)"), "{}", text(&status));
    let listed = cli(&cluster, &["workflow", "list"]);
    assert!(text(&listed).contains("paused by alice"), "{}", text(&listed));

    let resumed = cli(&cluster, &["workflow", "resume", &id]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let followed = cli(&cluster, &["workflow", "status", &id, "--follow"]);
    assert!(followed.status.success(), "{}\n{}", text(&followed), cluster.logs());
    let workflow = cluster.client.workflow(&id).await.unwrap();
    assert_eq!((workflow.status, workflow.paused_by.as_deref()), (WorkflowStatus::Succeeded, None));
    assert!(machines.pid("p6").is_some());

    // Both are in the audit log, by whom.
    for action in ["workflow.pause", "workflow.resume"] {
        cluster
            .wait_for(&format!("{action} by alice in the audit log"), || async {
                let query = AuditQuery { kind: Some(action.to_owned()), ..AuditQuery::default() };
                let events = cluster.client.audit(&query).await.unwrap_or_default();
                events.iter().any(|event| event.action == action && event.name == "alice")
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_maintenance_runs_reboots_and_verifies_two_nodes_at_a_time_and_stops_at_a_failing_verify() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "m{1..4}");
    let dir = machines.dir.display().to_string();
    let names = ["m1", "m2", "m3", "m4"];
    let old_pids: Vec<u32> = names.iter().map(|name| machines.pid(name).unwrap()).collect();

    // --dry-run shows each node's stages, its commands rendered.
    let run = format!("echo run >> {dir}/{{{{node.name}}}}/ran");
    let verify = format!("echo verify >> {dir}/{{{{node.name}}}}/verified");
    let args = [
        "node",
        "maintain",
        "m{1..4}",
        "--parallel",
        "2",
        "--max-failures",
        "0",
        "--run",
        &run,
        "--reboot",
        "--verify",
        &verify,
        "--user",
        "root",
    ];
    let preview = cli(&cluster, &[&args[..], &["--dry-run"]].concat());
    assert!(preview.status.success(), "{}", text(&preview));
    let shown = String::from_utf8_lossy(&preview.stdout).into_owned();
    assert!(shown.contains(&format!("m3: drain → run: echo run >> {dir}/m3/ran → reboot: sh ")), "{shown}");
    assert!(shown.contains(&format!("verify: echo verify >> {dir}/m3/verified → undrain")), "{shown}");
    assert!(!machines.dir.join("m1/ran").exists(), "a dry run runs nothing");

    let maintained = cli(&cluster, &args);
    assert!(maintained.status.success(), "{}\n{}", text(&maintained), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert_eq!(workflow.status, WorkflowStatus::Succeeded, "{workflow:#?}");
    for (name, old_pid) in names.iter().zip(&old_pids) {
        let ran = std::fs::read_to_string(machines.dir.join(name).join("ran")).unwrap_or_default();
        let verified = std::fs::read_to_string(machines.dir.join(name).join("verified")).unwrap_or_default();
        assert_eq!((ran.as_str(), verified.as_str()), ("run\n", "verify\n"), "{name}: each command once");
        assert_ne!(machines.pid(name), Some(*old_pid), "{name} was rebooted through the provider");
        let status = cluster.client.node(name).await.unwrap();
        assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Eligible, "{name} undrained");
    }
    // Each node went drain → run → reboot → wait → verify → done, and at
    // most two were out at once (two were).
    let phases = phases_from_audit(&cluster, "workflow.maintain", &workflow.id, names.len()).await;
    for name in names {
        let expected = ["draining", "running", "provider", "waiting", "verifying", "done"];
        assert_eq!(phases.get(name).map(Vec::as_slice), Some(&expected.map(str::to_owned)[..]), "{phases:#?}");
    }
    let most = most_at_once(&workflow);
    println!("maintain of 4 nodes, --parallel 2: at most {most} out at once");
    assert_eq!(most, 2, "{workflow:#?}");

    // A verify failing on m1 with --max-failures 0 stops the rest: m2 (out
    // with m1) holds in its --run until released, m3 and m4 never start.
    std::fs::write(machines.dir.join("m1/bad"), "").unwrap();
    let release = machines.dir.join("release");
    let hold = format!(
        "if [ {{{{node.name}}}} != m1 ]; then while [ ! -e {} ]; do sleep 0.1; done; fi; echo run >> {dir}/{{{{node.name}}}}/ran2",
        release.display()
    );
    let check = format!("test ! -e {dir}/{{{{node.name}}}}/bad");
    let failed = cli(
        &cluster,
        &[
            "node",
            "maintain",
            "m{1..4}",
            "--parallel",
            "2",
            "--max-failures",
            "0",
            "--run",
            &hold,
            "--verify",
            &check,
            "--user",
            "root",
        ],
    );
    std::fs::write(&release, "").unwrap();
    assert!(!failed.status.success(), "{}", text(&failed));
    let workflow = latest_workflow(&cluster).await;
    assert_eq!(workflow.status, WorkflowStatus::Failed, "{workflow:#?}");
    assert_eq!(workflow.steps[0].phase, StepPhase::Failed, "{workflow:#?}");
    assert!(workflow.steps[0].error.contains("the --verify command failed on m1"), "{}", workflow.steps[0].error);
    assert!(workflow.steps[2..].iter().all(|step| step.phase == StepPhase::Cancelled), "{workflow:#?}");
    for name in ["m3", "m4"] {
        assert!(!machines.dir.join(name).join("ran2").exists(), "{name} never started");
        let status = cluster.client.node(name).await.unwrap();
        assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Eligible, "{name} untouched");
    }
    // m1 failed its verify: it stays drained for a human to look at.
    let m1 = cluster.client.node("m1").await.unwrap();
    assert_eq!(m1.node.eligibility, drover_types::NodeEligibility::Ineligible);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_console_is_read_through_its_provider_now_and_followed() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "c1");
    let console = machines.dir.join("c1/console");
    std::fs::write(&console, "boot ok\nKernel panic - not syncing: VFS\n").unwrap();
    let shown = cli(&cluster, &["node", "console", "c1"]);
    assert!(shown.status.success(), "{}", text(&shown));
    assert_eq!(String::from_utf8_lossy(&shown.stdout), "boot ok\nKernel panic - not syncing: VFS\n");
    let missing = cli(&cluster, &["node", "console", "nosuch"]);
    assert!(!missing.status.success() && text(&missing).contains("nosuch"), "{}", text(&missing));

    // --follow prints what is there, then each new line once.
    let mut follower = std::process::Command::new(drover_binary())
        .args(["node", "console", "c1", "--follow", "--every", "200ms"])
        .env("DROVER_ADDR", &cluster.address)
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| lines.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no {what}"));
    assert_eq!(next("first line"), "boot ok");
    assert_eq!(next("second line"), "Kernel panic - not syncing: VFS");
    std::fs::write(&console, "boot ok\nKernel panic - not syncing: VFS\nrebooting in 10s\n").unwrap();
    assert_eq!(next("new line"), "rebooting in 10s");
    let _ = follower.kill();
    let _ = follower.wait();

    let query = AuditQuery { kind: Some("node.console".to_owned()), ..AuditQuery::default() };
    let audited = cluster.client.audit(&query).await.unwrap();
    assert!(audited.iter().any(|event| event.target == "c1" && event.name == "alice"), "{audited:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_without_drain_never_drains_and_retires_the_node_once_its_agent_is_gone() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "d1");
    let pid = machines.pid("d1").unwrap();
    let deleted = cli(&cluster, &["node", "delete", "d1", "--no-drain"]);
    assert!(deleted.status.success(), "{}\n{}", text(&deleted), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert!(!workflow.drain && workflow.status == WorkflowStatus::Succeeded, "{workflow:#?}");
    let phases = phases_from_audit(&cluster, "workflow.delete", &workflow.id, 1).await;
    let expected = ["provider", "waiting", "done"].map(str::to_owned);
    assert_eq!(phases.get("d1").map(Vec::as_slice), Some(&expected[..]), "{phases:#?}");
    assert!(!process_alive(pid) && !machines.dir.join("d1").exists());
    // Seen down, then retired: kept, out of the list, until purged.
    let status = cluster.client.node("d1").await.unwrap();
    assert!(!status.node.is_up() && status.node.retired.is_some(), "{:#?}", status.node);
    let history = cluster.client.node_history("d1").await.unwrap();
    let retired = history.iter().find(|change| change.field == "retired").expect("retired in the history");
    assert!(retired.reason.contains("delete"), "{history:#?}");
    // Not drained while it ran: the retirement came once it was down.
    let provider_started = workflow.steps[0].provider_started_at.unwrap();
    assert!(retired.at >= provider_started, "{history:#?}");
    cluster
        .wait_for("d1 to be retired", || async {
            cluster.client.node("d1").await.is_ok_and(|status| status.node.display_status() == "retired")
        })
        .await;
    let purged = cli(&cluster, &["node", "purge", "d1", "--yes"]);
    assert!(purged.status.success(), "{}", text(&purged));
    assert!(cluster.client.node("d1").await.is_err(), "d1 is forgotten once purged");
}

/// A service of `count` `sleep`s on distinct nodes, replaced one at a time.
fn spread_service(count: u32) -> String {
    format!(
        r#"
job "web" {{
  update {{
    max_parallel = 1
  }}
  group "web" {{
    count = {count}
    constraint {{
      operator = "distinct_hosts"
      value    = "true"
    }}
    task "web" {{
      driver = "raw_exec"
      kill_timeout = "1s"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

/// How many allocations of `job` run and are meant to.
async fn num_running(cluster: &Cluster, job: &str) -> Option<usize> {
    let (status, _) = cluster.client.job_status(job, None).await.ok()?;
    Some(
        status
            .allocs
            .iter()
            .filter(|alloc| {
                alloc.client_status == drover_types::AllocClientStatus::Running
                    && alloc.desired_status == drover_types::AllocDesiredStatus::Run
            })
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_maintenance_never_takes_more_of_a_service_out_than_its_update_block_allows() {
    let cluster = Cluster::start().await;
    let _machines = apply_test_provider(&cluster);
    create_machines(&cluster, "r{1..10}");
    let ran = cluster.run_job("web", &spread_service(8));
    assert!(ran.status.success(), "{}", text(&ran));
    cluster.wait_for_allocs("web", drover_types::AllocClientStatus::Running, 8).await;

    // Three nodes out at once are allowed, but web (one per node, updated
    // one at a time) may only ever lose one: the other nodes running it wait.
    let mut maintain = std::process::Command::new(drover_binary())
        .args(["node", "maintain", "r{1..10}", "--parallel", "3", "--max-failures", "0", "--reboot", "--yes"])
        .env("DROVER_ADDR", &cluster.address)
        .env("DROVER_USER", "alice")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let (mut fewest, mut num_looks) = (8, 0);
    let mut reasons: Vec<String> = Vec::new();
    let status = loop {
        if let Some(running) = num_running(&cluster, "web").await {
            fewest = fewest.min(running);
            num_looks += 1;
        }
        if let Ok(workflow) = cluster.client.workflows().await.map(|list| list.into_iter().next()) {
            for step in workflow.iter().flat_map(|workflow| &workflow.steps) {
                if !step.waiting_for.is_empty() && !reasons.contains(&step.waiting_for) {
                    reasons.push(step.waiting_for.clone());
                }
            }
        }
        if let Some(status) = maintain.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the maintenance did not end in 300 s\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = maintain.wait_with_output().unwrap();
    assert!(status.success(), "{}\n{}", text(&output), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert_eq!(workflow.status, WorkflowStatus::Succeeded, "{workflow:#?}");
    println!(
        "maintain of 10 nodes, --parallel 3, web count 8 update.max_parallel 1: fewest running {fewest} over {num_looks} looks; most nodes out at once {}",
        most_at_once(&workflow)
    );
    assert!(fewest >= 7, "web fell to {fewest} running: more than update.max_parallel = 1 out at once");
    assert!(num_looks > 20, "looked only {num_looks} times");
    // The nodes held back said why (in `workflow status` and its follow).
    assert!(
        reasons.iter().any(|reason| reason.contains("job web group web: 1 of 8 allocations unhealthy or migrating")),
        "{reasons:#?}"
    );
    assert!(text(&output).contains("waiting: job web group web"), "{}", text(&output));
    cluster.wait_for_allocs("web", drover_types::AllocClientStatus::Running, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_reboots_through_its_reboot_command_when_given_one() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "k{1..2}");
    let old_pids: Vec<u32> = ["k1", "k2"].iter().map(|name| machines.pid(name).unwrap()).collect();
    let old_ids = [ready_node_id(&cluster, "k1").await.unwrap(), ready_node_id(&cluster, "k2").await.unwrap()];
    // The machine reboots itself: a command run through its own agent
    // restarts that agent, detached (as `systemctl reboot` returns at once).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/provider.sh");
    let dir = machines.dir.display();
    let reboot = format!(
        "echo by-command >> {dir}/{{{{node.name}}}}/rebooted; setsid sh {} reboot {{{{node.name}}}} {dir} {} {} --hostgroup bi/batch >/dev/null 2>&1 </dev/null &",
        script.display(),
        cluster.address,
        drover_binary().display()
    );
    let maintained =
        cli(&cluster, &["node", "maintain", "k1,k2", "--parallel", "1", "--reboot-command", &reboot, "--user", "root"]);
    assert!(maintained.status.success(), "{}\n{}", text(&maintained), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert_eq!(workflow.status, WorkflowStatus::Succeeded, "{workflow:#?}");
    for (index, name) in ["k1", "k2"].iter().enumerate() {
        let rebooted = std::fs::read_to_string(machines.dir.join(name).join("rebooted")).unwrap_or_default();
        assert_eq!(rebooted, "by-command\n", "{name}: the reboot command ran once");
        assert_ne!(machines.pid(name), Some(old_pids[index]), "{name}'s agent restarted");
        assert_eq!(ready_node_id(&cluster, name).await.as_ref(), Some(&old_ids[index]), "{name} came back as itself");
        let step = &workflow.steps[index];
        assert!(step.command.contains(&format!("echo by-command >> {dir}/{name}/rebooted")), "{step:#?}");
        let status = cluster.client.node(name).await.unwrap();
        assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Eligible, "{name} undrained");
    }
    // drain → reboot command → wait for the agent → done: the provider is
    // never called.
    let phases = phases_from_audit(&cluster, "workflow.maintain", &workflow.id, 2).await;
    for name in ["k1", "k2"] {
        let expected = ["draining", "rebooting", "waiting", "done"].map(str::to_owned);
        assert_eq!(phases.get(name).map(Vec::as_slice), Some(&expected[..]), "{phases:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_makes_a_hammer_replace_the_dead_machine_through_its_provider() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "h{1..2}");
    let old_id = ready_node_id(&cluster, "h1").await.unwrap();
    // The alert and the hammer join the provider in the site.
    let site = cluster.dir.path().join("site");
    std::fs::write(
        site.join("hammers.hcl"),
        r#"
alert "machine-down" {
  when { node { status = "down" } }
}
hammer "replace-dead" {
  when   { alert = "machine-down" }
  action { replace {} }
  mode   = "auto"
  limits { per_hour = 2  concurrent = 1  cooldown = "10m"  fleet_max_percent = 50 }
}
"#,
    )
    .unwrap();
    let applied = cli(&cluster, &["apply", site.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));

    // h1's machine dies: its agent is killed, the node goes down, the
    // alert fires, the hammer deletes the machine and makes it again.
    let pid = machines.pid("h1").unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    wait_until(
        "the hammer's run to succeed",
        Duration::from_secs(120),
        || async {
            cluster.client.hammer_history(Some("replace-dead"), 100).await.is_ok_and(|entries| {
                entries.iter().any(|entry| {
                    entry.run.as_ref().is_some_and(|run| run.state == drover_react::hammer::RunState::Succeeded)
                })
            })
        },
        || cluster.logs(),
    )
    .await;
    let new_id = ready_node_id(&cluster, "h1").await.expect("h1 is back, ready");
    assert_ne!(new_id, old_id, "a new machine's agent has a new id");
    let status = cluster.client.node("h1").await.unwrap();
    assert_eq!(status.node.hostgroup, "bi/batch", "made again with its labels");
    assert_ne!(machines.pid("h1"), Some(pid));
    assert!(process_alive(machines.pid("h1").unwrap()));
    // Two one-node workflows by the hammer: delete (no drain: it was down),
    // then create; h2 untouched.
    let by_hammer: Vec<Workflow> = cluster
        .client
        .workflows()
        .await
        .unwrap()
        .into_iter()
        .filter(|workflow| workflow.by == "hammer replace-dead")
        .collect();
    let operations: Vec<String> = by_hammer.iter().rev().map(|workflow| workflow.operation.to_string()).collect();
    assert_eq!(operations, ["delete", "create"], "{by_hammer:#?}");
    assert!(by_hammer.iter().all(|workflow| workflow.status == WorkflowStatus::Succeeded && !workflow.drain));
    assert!(by_hammer.iter().all(|workflow| workflow.steps.len() == 1 && workflow.steps[0].node == "h1"));
    assert!(ready_node_id(&cluster, "h2").await.is_some());
    let history = cluster.client.hammer_history(Some("replace-dead"), 100).await.unwrap();
    let report = history.iter().find_map(|entry| entry.report.as_ref()).expect("a report");
    assert!(report.action.starts_with("replace h1"), "{report:#?}");
    assert!(report.output.contains("deleted machine h1") && report.output.contains("started agent h1"), "{report:#?}");

    // A machine deleted on purpose raises no alert: its node stays,
    // retired and down, and alert rules and hammers do not look at it.
    let deleted = cli(&cluster, &["node", "delete", "h2"]);
    assert!(deleted.status.success(), "{}\n{}", text(&deleted), cluster.logs());
    let status = cluster.client.node("h2").await.unwrap();
    assert!(!status.node.is_up() && status.node.retired.is_some(), "{:#?}", status.node);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alerts = cluster.client.alerts_named("machine-down").await.unwrap();
    assert!(!alerts.alerts.iter().any(|view| format!("{:?}", view.alert.labels).contains("\"h2\"")), "{alerts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_secure_cluster_created_machines_enrol_with_their_own_single_use_join_token() {
    use crate::harness::{Process, free_port};

    // A secure server (no --insecure): it makes its CA; ACLs bootstrapped.
    let dir = tempfile::Builder::new().prefix("drover-it-secure-machines-").tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut server = std::process::Command::new(drover_binary());
    server.args(["server", "--bind", &address, "--data-dir"]).arg(dir.path().join("server")).args([
        "--heartbeat-interval",
        "1s",
        "--heartbeat-ttl",
        "4s",
        "--min-free-disk-mb",
        "0",
    ]);
    let server = Process::spawn_for_test("secure server", &mut server, dir.path().join("server.log"));
    let ca = dir.path().join("server/tls/ca.pem");
    let client = |token: Option<&str>| {
        let ca_pem = std::fs::read_to_string(&ca).unwrap_or_default();
        let credentials = drover_client::Credentials { ca_pem: Some(ca_pem), token: token.map(str::to_owned) };
        drover_client::Client::secured(&address, &credentials).unwrap()
    };
    wait_until(
        "the secure server to answer",
        Duration::from_secs(60),
        || async { ca.exists() && client(None).leader().await.is_ok_and(|info| info.leader_id.is_some()) },
        || server.output(),
    )
    .await;
    let root = client(None).acl_bootstrap().await.unwrap().secret;
    let management = client(Some(&root));
    let secure_cli = |args: &[&str]| {
        std::process::Command::new(drover_binary())
            .args(args)
            .env("DROVER_ADDR", &address)
            .env("DROVER_CACERT", &ca)
            .env("DROVER_TOKEN", &root)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    // The provider hands each new machine its token as an agent would get
    // it: DROVER_JOIN_TOKEN.
    let machines = Machines { dir: dir.path().join("machines") };
    std::fs::create_dir_all(&machines.dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/provider.sh");
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("providers.hcl"),
        format!(
            "provider \"test\" {{\n  create = \"DROVER_JOIN_TOKEN={{{{join_token}}}} sh {} create {{{{node.name}}}} {} {address} {} --hostgroup {{{{node.hostgroup}}}}\"\n  timeout = \"30s\"\n}}\n",
            script.display(),
            machines.dir.display(),
            drover_binary().display()
        ),
    )
    .unwrap();
    let applied = secure_cli(&["apply", site.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));

    let created = secure_cli(&[
        "node",
        "create",
        "sec{1..3}",
        "--provider",
        "test",
        "--hostgroup",
        "bi/batch/secure",
        "--parallel",
        "3",
    ]);
    let logs = || {
        let agents: String = ["sec1", "sec2", "sec3"]
            .iter()
            .map(|name| std::fs::read_to_string(machines.dir.join(name).join("agent.log")).unwrap_or_default())
            .collect();
        format!("{}\n{agents}", server.output())
    };
    assert!(created.status.success(), "{}\n{}", text(&created), logs());
    let nodes = management.nodes().await.unwrap();
    let mut tokens = Vec::new();
    for name in ["sec1", "sec2", "sec3"] {
        let node = nodes.iter().find(|node| node.name == name).unwrap_or_else(|| panic!("{name}: {nodes:#?}"));
        assert_eq!((node.status.as_str(), node.hostgroup.as_str()), ("ready", "bi/batch/secure"), "{name}");
        // Enrolled: its own certificate and key, the key private.
        let tls = machines.dir.join(name).join("data/tls");
        assert!(tls.join("node.pem").exists(), "{name} has a certificate");
        let key = std::fs::metadata(tls.join("node-key.pem")).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
        tokens.push(std::fs::read_to_string(machines.dir.join(name).join("token")).unwrap().trim().to_owned());
    }
    // Each machine got its own token; none is shown in the workflow.
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "one token per machine");
    let workflow = management.workflows().await.unwrap().into_iter().next().unwrap();
    assert!(
        workflow.steps.iter().all(|step| step.command.contains("DROVER_JOIN_TOKEN='<join-token>'")),
        "{workflow:#?}"
    );
    assert!(!format!("{workflow:?}").contains(&tokens[0]));

    // A token used once is refused the second time.
    let mut again = std::process::Command::new(drover_binary());
    again
        .args(["agent", "--servers", &address, "--name", "sec4", "--hostgroup", "bi/batch/secure", "--data-dir"])
        .arg(dir.path().join("sec4"))
        .env("DROVER_JOIN_TOKEN", &tokens[0]);
    let mut again = Process::spawn_for_test("agent sec4", &mut again, dir.path().join("sec4.log"));
    let status = again.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|status| !status.success()), "a reused token must be refused:\n{}", again.output());
    assert!(again.output().contains("used up"), "{}", again.output());
    assert!(!management.nodes().await.unwrap().iter().any(|node| node.name == "sec4"));
}

/// Benchmark (docs/benchmarks.md, "Machine workflows"): a rolling
/// maintenance of 200 simulated nodes, `--parallel 20`, each rebooted by a
/// command that keeps it away exactly `AWAY` (`sim-reboot`, answered by the
/// simulated agent, which closes its session and comes back under the same
/// id). The nodes' own steps allow 10 waves × `AWAY`; the engine (drain,
/// proposals, the agent's return, undrain) may add at most 5 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p drover --test it machines::bench -- --ignored --nocapture"]
async fn bench_a_rolling_maintenance_of_200_simulated_nodes_costs_the_engine_under_5_percent() {
    const NUM_NODES: usize = 200;
    const PARALLEL: usize = 20;
    const AWAY: Duration = Duration::from_secs(5);
    let cluster = Cluster::start().await;
    let sims = std::process::Command::new(drover_binary())
        .args(["bench", "sim-agents", "--servers", &cluster.address, "--count", &NUM_NODES.to_string()])
        .args(["--prefix", "sim", "--hostgroup", "bench"])
        // A session refused or failed is told (a late return's cause).
        .env("DROVER_LOG", "warn,drover::bench::sim=debug")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _sims = crate::harness::Peer(sims);
    wait_until(
        "200 simulated nodes to be ready",
        Duration::from_secs(120),
        || async {
            cluster.client.nodes().await.is_ok_and(|nodes| {
                nodes.iter().filter(|node| node.status == "ready" && node.hostgroup == "bench").count() == NUM_NODES
            })
        },
        || cluster.logs(),
    )
    .await;

    let away = format!("sim-reboot {}", AWAY.as_secs_f64());
    let started = std::time::Instant::now();
    let maintained = cli(
        &cluster,
        &[
            "node",
            "maintain",
            "--filter",
            "hostgroup == \"bench\"",
            "--parallel",
            &PARALLEL.to_string(),
            "--max-failures",
            "0",
            "--reboot-command",
            &away,
            "--yes",
        ],
    );
    let wall = started.elapsed();
    assert!(maintained.status.success(), "{}\n{}", text(&maintained), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert_eq!((workflow.status, workflow.steps.len()), (WorkflowStatus::Succeeded, NUM_NODES), "{workflow:#?}");
    let took = Duration::from_millis(
        u64::try_from(workflow.finished_at.unwrap().as_millis() - workflow.created_at.as_millis()).unwrap(),
    );
    // Each node really was away for AWAY (its reboot to its return).
    let step_ms: Vec<i64> = workflow
        .steps
        .iter()
        .map(|step| step.finished_at.unwrap().as_millis() - step.started_at.unwrap().as_millis())
        .collect();
    let away_ms = i64::try_from(AWAY.as_millis()).unwrap();
    assert!(step_ms.iter().all(|ms| *ms >= away_ms), "a step shorter than the reboot: {step_ms:?}");
    let waves = NUM_NODES.div_ceil(PARALLEL);
    let allowed = AWAY * u32::try_from(waves).unwrap();
    let overhead = took.as_secs_f64() / allowed.as_secs_f64() - 1.0;
    let mean = |values: &[i64]| values.iter().sum::<i64>() / i64::try_from(values.len().max(1)).unwrap();
    let mean_step = mean(&step_ms);
    // Where a step's own overhead goes: before its reboot command (drain,
    // its completion, the proposals), and after it (the command's trip,
    // the agent's return, making it eligible, done).
    let before_ms: Vec<i64> = workflow
        .steps
        .iter()
        .map(|step| step.provider_started_at.unwrap().as_millis() - step.started_at.unwrap().as_millis())
        .collect();
    let after_ms: Vec<i64> = workflow
        .steps
        .iter()
        .map(|step| step.finished_at.unwrap().as_millis() - step.provider_started_at.unwrap().as_millis() - away_ms)
        .collect();
    let server_log = cluster.servers[0].output();
    for (step, after) in workflow.steps.iter().zip(&after_ms).filter(|(_, after)| **after > 500) {
        let id = step.node_id.as_ref().map(ToString::to_string).unwrap_or_default();
        for line in
            server_log.lines().filter(|line| line.contains(&step.node) || (!id.is_empty() && line.contains(&id)))
        {
            println!("  {line}");
        }
        let at = |time: Option<drover_types::Timestamp>| time.unwrap().as_millis() - workflow.created_at.as_millis();
        println!(
            "slow return: {} started +{} ms, reboot command +{} ms, done +{} ms ({after} ms more than away)",
            step.node,
            at(step.started_at),
            at(step.provider_started_at),
            at(step.finished_at)
        );
    }
    // Time no step used: the lanes' gaps between one node and the next.
    let busy_ms: i64 = step_ms.iter().sum();
    let idle_ms = i64::try_from(took.as_millis()).unwrap() * i64::try_from(PARALLEL).unwrap() - busy_ms;
    println!(
        "maintain of {NUM_NODES} simulated nodes, --parallel {PARALLEL}, reboot {AWAY:?} each: workflow {took:?} (CLI {wall:?}); \
         the steps allow {allowed:?} ({waves} waves); engine overhead {:.1} %; per node step mean {mean_step} ms, max {} ms \
         (before the reboot command {} ms, after the node's time away {} ms, means; the latter's p50/p90/max {:?}); \
         lanes idle {} ms a node; most out at once {}",
        overhead * 100.0,
        step_ms.iter().max().unwrap(),
        mean(&before_ms),
        mean(&after_ms),
        {
            let mut sorted = after_ms.clone();
            sorted.sort_unstable();
            [sorted[sorted.len() / 2], sorted[sorted.len() * 9 / 10], sorted[sorted.len() - 1]]
        },
        idle_ms / i64::try_from(NUM_NODES).unwrap(),
        most_at_once(&workflow)
    );
    assert!(most_at_once(&workflow) <= PARALLEL);
    assert!(overhead <= 0.05, "the engine added {:.1} % to the {allowed:?} the steps allow", overhead * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_is_powered_off_and_on_through_its_provider_with_its_facts_in_the_template() {
    let cluster = Cluster::start().await;
    let machines = apply_test_provider(&cluster);
    create_machines(&cluster, "pw1");
    let node_id = ready_node_id(&cluster, "pw1").await.unwrap();
    let old_pid = machines.pid("pw1").unwrap();

    // Power off: drained, the agent stopped, the node seen down; the
    // template got the agent's kernel.name fact.
    let off = cli(&cluster, &["node", "power-off", "pw1"]);
    assert!(off.status.success(), "{}\n{}", text(&off), cluster.logs());
    let workflow = latest_workflow(&cluster).await;
    assert!(workflow.drain && workflow.status == WorkflowStatus::Succeeded, "{workflow:#?}");
    assert!(workflow.steps[0].command.contains("--kernel linux"), "{workflow:#?}");
    let phases = phases_from_audit(&cluster, "workflow.power_off", &workflow.id, 1).await;
    let expected = ["draining", "provider", "waiting", "done"].map(str::to_owned);
    assert_eq!(phases.get("pw1").map(Vec::as_slice), Some(&expected[..]), "{phases:#?}");
    assert!(!process_alive(old_pid), "pw1's agent ({old_pid}) was stopped");
    let args = std::fs::read_to_string(machines.dir.join("pw1/power_off.args")).unwrap();
    assert_eq!(args.trim(), "--kernel linux");
    let status = cluster.client.node("pw1").await.unwrap();
    assert!(matches!(status.node.status.as_str(), "down" | "disconnected"), "{:?}", status.node.status);
    assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Ineligible);
    // Off already: a second power-off is refused, and says why.
    let again = cli(&cluster, &["node", "power-off", "pw1"]);
    assert!(!again.status.success() && text(&again).contains("power-off is for a node that is up"), "{}", text(&again));

    // Power on: the agent starts again on the same data dir (same node
    // id), the node is ready and eligible again.
    // Followed on a terminal (a pty from `script`), with a progress bar;
    // piped (every other command here), plain lines only.
    assert!(!text(&off).contains("/1 nodes"), "no bar without a terminal: {}", text(&off));
    let on = if needs::are_met([needs::program("script", "bsdutils")]) {
        let command = format!("'{}' node power-on pw1", drover_binary().display());
        let on = std::process::Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .env("DROVER_ADDR", &cluster.address)
            .env("DROVER_USER", "alice")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let transcript = text(&on);
        assert!(transcript.contains("/1 nodes") && transcript.contains("in flight"), "a bar: {transcript}");
        on
    } else {
        cli(&cluster, &["node", "power-on", "pw1"])
    };
    assert!(on.status.success(), "{}\n{}", text(&on), cluster.logs());
    assert_eq!(ready_node_id(&cluster, "pw1").await, Some(node_id));
    let new_pid = machines.pid("pw1").unwrap();
    assert!(new_pid != old_pid && process_alive(new_pid));
    let status = cluster.client.node("pw1").await.unwrap();
    assert_eq!(status.node.eligibility, drover_types::NodeEligibility::Eligible);
    let again = cli(&cluster, &["node", "power-on", "pw1"]);
    assert!(
        !again.status.success() && text(&again).contains("power-on is for a node that is down"),
        "{}",
        text(&again)
    );

    // A fact the node does not have: refused before anything runs, naming
    // the template and the fact.
    let unknown = cli(&cluster, &["node", "power-off", "pw1", "--provider", "ipmi"]);
    let message = text(&unknown);
    assert!(!unknown.status.success(), "{message}");
    assert!(
        message.contains(
            "provider ipmi's power_off command uses {{node.facts.bmc.address}}, which node pw1 has not registered"
        ),
        "{message}"
    );
    assert!(message.contains("kernel.name"), "the facts it has are listed: {message}");
    assert!(ready_node_id(&cluster, "pw1").await.is_some(), "nothing was powered off");

    // A created machine whose agent registers other labels than asked for
    // (the test provider passes only --hostgroup) fails its step, naming
    // both values.
    let created = cli(
        &cluster,
        &["node", "create", "lbl1", "--provider", "test", "--hostgroup", "bi/batch", "--environment", "qa"],
    );
    assert!(!created.status.success(), "{}", text(&created));
    let workflow = latest_workflow(&cluster).await;
    let error = &workflow.steps[0].error;
    assert_eq!(workflow.steps[0].phase, StepPhase::Failed, "{workflow:#?}");
    assert!(
        error.contains("the agent of lbl1 registered other labels than asked for: environment \"qa\" asked for, "),
        "{error}"
    );
    assert!(!error.contains("hostgroup \"bi/batch\" asked for"), "the host group matched: {error}");
}
