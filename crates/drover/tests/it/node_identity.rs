//! A node is its name: a reinstalled machine (fresh data directory, same
//! name) takes its down twin's place, an agent with the name of a live
//! node is refused, nodes are retired and purged, and down nodes are
//! purged automatically after `--node-gc-after`. Real servers and agents.

use std::process::Command;

use drover_proto::api::AuditQuery;
use drover_types::NodeChange;

use crate::harness::{Cluster, Process, drover_binary};

/// The CLI as user `alice`, without a terminal.
fn cli(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    cluster.cli_as("alice", args)
}

/// What a command printed.
fn text(output: &std::process::Output) -> String {
    crate::harness::output_text(output)
}

/// `drover node list --json [--all]`: (name, id, status) of each node, by
/// name.
fn listed(cluster: &Cluster, all: bool) -> Vec<(String, String, String)> {
    let mut args = vec!["node", "list", "--json"];
    if all {
        args.push("--all");
    }
    let output = cli(cluster, &args);
    assert!(output.status.success(), "{}", text(&output));
    let nodes: Vec<drover_proto::api::NodeListEntry> = serde_json::from_slice(&output.stdout).unwrap();
    let mut listed: Vec<(String, String, String)> =
        nodes.into_iter().map(|node| (node.name, node.id.to_string(), node.status)).collect();
    listed.sort();
    listed
}

/// The audit events of `kind` (`node.register`, `node.gc`, …).
async fn audited(cluster: &Cluster, kind: &str) -> Vec<drover_types::acl::AuditEvent> {
    let query = AuditQuery { kind: Some(kind.to_owned()), ..AuditQuery::default() };
    cluster.client.audit(&query).await.unwrap_or_default()
}

/// Starts an agent process named `name` with its own data directory
/// `dir_name`, without waiting for it to register.
fn spawn_agent(cluster: &Cluster, name: &str, dir_name: &str) -> Process {
    let mut command = Command::new(drover_binary());
    command
        .args(["agent", "--servers", &cluster.address, "--data-dir"])
        .arg(cluster.dir.path().join("agents").join(dir_name))
        .args(["--name", name]);
    Process::spawn_for_test(
        &format!("agent {name} ({dir_name})"),
        &mut command,
        cluster.dir.path().join(format!("agent-{dir_name}.log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_with_a_wiped_data_dir_takes_the_place_of_its_down_twin() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("batch01", &["--hostgroup", "bi/batch"]).await;
    cluster.start_agent("batch02", &[]).await;
    let output = cli(&cluster, &["node", "update", "batch01", "--environment", "qa", "--yes"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli(&cluster, &["node", "protect", "batch01", "--reason", "holds the release volume"]);
    assert!(output.status.success(), "{}", text(&output));
    let old_id = cluster.client.node("batch01").await.unwrap().node.id.to_string();

    // The machine dies and is reinstalled: a fresh data directory.
    cluster.kill_machine("batch01");
    cluster
        .wait_for("batch01 to be marked down", || async {
            cluster.client.node("batch01").await.is_ok_and(|status| status.node.status.as_str() == "down")
        })
        .await;
    std::fs::remove_dir_all(cluster.agent_dir("batch01")).unwrap();
    cluster.restart_agent("batch01").await;

    let nodes = listed(&cluster, true);
    let named: Vec<&(String, String, String)> = nodes.iter().filter(|(name, _, _)| name == "batch01").collect();
    assert_eq!(named.len(), 1, "one batch01, not a twin: {nodes:?}");
    let (_, new_id, status) = named[0];
    assert_ne!(*new_id, old_id, "the reinstalled agent has a new node id");
    assert_eq!(status, "ready");
    let node = cluster.client.node("batch01").await.unwrap().node;
    assert_eq!((node.hostgroup.as_str(), node.environment.as_str()), ("bi/batch", "qa"), "labels kept");
    assert_eq!(node.protected.map(|protection| protection.reason).as_deref(), Some("holds the release volume"));

    let output = cli(&cluster, &["node", "history", "batch01", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let history: Vec<NodeChange> = serde_json::from_slice(&output.stdout).unwrap();
    let fields: Vec<&str> = history.iter().map(|change| change.field.as_str()).collect();
    assert_eq!(fields, ["environment", "protected", "replaced"], "the history came along: {history:?}");
    let replaced = &history[2];
    assert_eq!(replaced.from, format!("node id {old_id} (down)"));
    assert_eq!(replaced.to, format!("node id {new_id}"));

    // Name-based commands reach the one node.
    let output = cli(&cluster, &["exec", "batch01", "--timeout", "20s", "--", "echo", "reinstalled"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("reinstalled"), "{}", text(&output));
    let output = cli(&cluster, &["node", "update", "batch01", "--owner", "bob", "--yes"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli(&cluster, &["node", "list", "--filter", r#"name == "batch01""#, "--json"]);
    let filtered: Vec<drover_proto::api::NodeListEntry> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].owner, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_the_name_of_a_live_node_is_refused_until_that_node_is_down() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("batch01", &[]).await;
    let live_id = cluster.client.node("batch01").await.unwrap().node.id.to_string();

    // A second machine configured with the same name.
    let mut intruder = spawn_agent(&cluster, "batch01", "intruder");
    cluster
        .wait_for("the second agent to log its refusal", || async {
            intruder.output().contains("Stop the other agent, or start this one with another name (--name)")
        })
        .await;
    let log = intruder.output();
    assert!(log.contains("session refused"), "{log}");
    assert!(log.contains(&format!("node batch01 is ready with another agent (node id {live_id})")), "{log}");
    // The servers audited the refusal.
    cluster
        .wait_for("the refusal to be audited", || async {
            audited(&cluster, "node.register").await.iter().any(|event| {
                event.target == "batch01" && event.outcome.as_str() == "refused" && event.name == "node:batch01"
            })
        })
        .await;
    let nodes = listed(&cluster, true);
    assert_eq!(nodes, [("batch01".to_owned(), live_id.clone(), "ready".to_owned())], "the live node is untouched");

    // It keeps retrying: once the first machine is gone and marked down,
    // the second takes its place.
    cluster.kill_machine("batch01");
    cluster
        .wait_for("the second agent to take batch01's place", || async {
            cluster.client.nodes().await.is_ok_and(|nodes| {
                nodes.iter().any(|node| node.name == "batch01" && node.id.as_str() != live_id && node.status == "ready")
            })
        })
        .await;
    assert_eq!(listed(&cluster, true).len(), 1);
    intruder.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_node_leaves_the_list_and_is_purged_only_when_allowed() {
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = (0..3).map(|number| format!("old{number:02}")).collect();
    cluster.start_agents(&names, &[]).await;

    // A dry run changes nothing.
    let output = cli(&cluster, &["node", "retire", "old01", "--dry-run"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("1 node(s) to retire: old01"), "{}", text(&output));
    assert_eq!(listed(&cluster, false).len(), 3);

    let output = cli(&cluster, &["node", "retire", "old01", "--reason", "end of warranty"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Retired 1 node(s)"), "{}", text(&output));
    // Drained (nothing ran there), then retired: out of the default list.
    cluster
        .wait_for("old01 to be retired", || async {
            cluster.client.node("old01").await.is_ok_and(|status| status.node.display_status() == "retired")
        })
        .await;
    let default_names: Vec<String> = listed(&cluster, false).into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(default_names, ["old00", "old02"]);
    let all = listed(&cluster, true);
    assert!(all.iter().any(|(name, _, status)| name == "old01" && status == "retired"), "{all:?}");
    let history: Vec<NodeChange> =
        serde_json::from_slice(&cli(&cluster, &["node", "history", "old01", "--json"]).stdout).unwrap();
    assert!(
        history
            .iter()
            .any(|change| change.field == "retired" && change.reason == "end of warranty" && change.by == "alice"),
        "{history:?}"
    );
    // A filter leaves retired nodes out.
    let output = cli(&cluster, &["exec", "--filter", r#"name =~ "old*""#, "--timeout", "20s", "--", "true"]);
    assert!(text(&output).contains("2 nodes in "), "{}", text(&output));

    // Purge: refused for a node that is up and not retired, and for a
    // protected one (with its reason); nothing changes.
    let output = cli(&cluster, &["node", "purge", "old00"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("retire it first (`drover node retire old00`)"), "{}", text(&output));
    let output = cli(&cluster, &["node", "protect", "old02", "--reason", "evidence for ticket 42"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli(&cluster, &["node", "retire", "old02"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli(&cluster, &["node", "purge", "old01,old02"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("node old02 is protected (\"evidence for ticket 42\""), "{}", text(&output));
    assert_eq!(listed(&cluster, true).len(), 3, "a refused purge purges nothing");

    let output = cli(&cluster, &["node", "purge", "old01"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Purged 1 node(s)"), "{}", text(&output));
    let all_names: Vec<String> = listed(&cluster, true).into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(all_names, ["old00", "old02"]);
    let output = cli(&cluster, &["node", "status", "old01"]);
    assert!(!output.status.success(), "a purged node is forgotten: {}", text(&output));
    for kind in ["node.retire", "node.purge"] {
        let events = audited(&cluster, kind).await;
        assert!(
            events.iter().any(|event| event.target.contains("old01") && event.name == "alice"),
            "{kind}: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_longer_than_node_gc_after_is_purged_and_audited() {
    let mut cluster = Cluster::start_servers_with(1, &["--node-gc-after", "3s"]).await;
    cluster.start_agent("gone01", &[]).await;
    cluster.start_agent("stays01", &[]).await;
    let gone_id = cluster.client.node("gone01").await.unwrap().node.id.to_string();
    cluster.kill_machine("gone01");
    cluster
        .wait_for("gone01 to be marked down", || async {
            cluster.client.node("gone01").await.is_ok_and(|status| status.node.status.as_str() == "down")
        })
        .await;
    cluster
        .wait_for("gone01 to be purged", || async {
            cluster.client.all_nodes(None).await.is_ok_and(|nodes| nodes.iter().all(|node| node.name != "gone01"))
        })
        .await;
    let events = audited(&cluster, "node.gc").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].target, "gone01");
    assert!(events[0].details.contains(&format!("node id {gone_id}: down for more than 3s")), "{events:?}");
    assert!(events[0].name.starts_with("server:"), "{events:?}");
    // The live node stays.
    assert_eq!(listed(&cluster, true).iter().map(|(name, _, _)| name.as_str()).collect::<Vec<_>>(), ["stays01"]);
}
