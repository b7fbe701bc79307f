//! The inventory and fan-out over twenty real agents: bulk label changes
//! with an audit history, protection, and `drover exec`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use drover_types::AllocClientStatus;

use crate::harness::{Cluster, drover_binary};

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|number| format!("{prefix}{number:02}")).collect()
}

/// The CLI as user `alice` (the name the audit history records).
fn cli_as_alice(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    cluster.cli_as("alice", args)
}

/// What a command printed.
fn text(output: &std::process::Output) -> String {
    crate::harness::output_text(output)
}

async fn names_matching(cluster: &Cluster, filter: &str) -> Vec<String> {
    let mut names: Vec<String> =
        cluster.client.nodes_matching(filter).await.unwrap().into_iter().map(|node| node.name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_agents_are_relabelled_by_brace_range_and_filter_with_an_audit_history_and_protection() {
    let mut cluster = Cluster::start().await;
    let all = names("batch", 20);
    cluster.start_agents(&all, &["--hostgroup", "bi/batch/gridworker", "--environment", "production"]).await;

    // By brace range.
    let output = cli_as_alice(&cluster, &["node", "update", "batch{00..09}", "--environment", "qa", "--yes"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Updated 10 node(s)"), "{}", text(&output));
    assert_eq!(names_matching(&cluster, r#"environment == "qa""#).await, all[..10]);

    // Above 10 nodes without a terminal and without --yes: refused, nothing changed.
    let output = cli_as_alice(
        &cluster,
        &["node", "update", "--filter", r#"hostgroup == "bi/batch/gridworker""#, "--hostgroup", "bi/batch/retired"],
    );
    assert!(!output.status.success());
    assert!(text(&output).contains("add --yes"), "{}", text(&output));
    assert!(names_matching(&cluster, r#"hostgroup == "bi/batch/retired""#).await.is_empty());

    // A dry run previews and changes nothing.
    let output = cli_as_alice(
        &cluster,
        &["node", "update", "--filter", r#"environment == "qa""#, "--hostgroup", "bi/batch/retired", "--dry-run"],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("10 of 10 selected node(s) change: batch{00..09}"), "{}", text(&output));
    assert!(names_matching(&cluster, r#"hostgroup == "bi/batch/retired""#).await.is_empty());

    // By filter.
    let output = cli_as_alice(
        &cluster,
        &[
            "node",
            "update",
            "--filter",
            r#"environment == "qa""#,
            "--hostgroup",
            "bi/batch/retired",
            "--meta",
            "rack=r12",
            "--yes",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(names_matching(&cluster, r#"hostgroup =~ "bi/batch/retired" and meta.rack == "r12""#).await, all[..10]);

    // Bad input changes nothing and says what is wrong.
    let output = cli_as_alice(&cluster, &["node", "update", "batch{18..21}", "--owner", "bob", "--yes"]);
    assert!(!output.status.success());
    assert!(text(&output).contains(r#"nodes "batch20", "batch21" not found"#), "{}", text(&output));
    assert!(names_matching(&cluster, r#"owner == "bob""#).await.is_empty());
    let output = cli_as_alice(&cluster, &["node", "update", "batch01", "--hostgroup", "bi//batch", "--yes"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("is not a path of names"), "{}", text(&output));
    let output = cli_as_alice(&cluster, &["node", "update", "batch{01..", "--owner", "bob", "--yes"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("bad node list"), "{}", text(&output));

    // Operator settings survive an agent restart.
    cluster.restart_agent("batch03").await;
    let node = cluster.client.node("batch03").await.unwrap().node;
    assert_eq!((node.hostgroup.as_str(), node.environment.as_str()), ("bi/batch/retired", "qa"));

    // The history says who changed what, from what, to what.
    let output = cli_as_alice(&cluster, &["node", "history", "batch03", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let history: Vec<drover_types::NodeChange> = serde_json::from_slice(&output.stdout).unwrap();
    let summary: Vec<(&str, &str, &str, &str)> = history
        .iter()
        .map(|change| (change.by.as_str(), change.field.as_str(), change.from.as_str(), change.to.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice", "environment", "production", "qa"),
            ("alice", "hostgroup", "bi/batch/gridworker", "bi/batch/retired"),
            ("alice", "meta.rack", "", "r12"),
        ]
    );

    // A protected node refuses a forced drain without a reason.
    let output = cli_as_alice(&cluster, &["node", "protect", "batch05", "--reason", "holds the only copy of run 42"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli_as_alice(&cluster, &["node", "drain", "batch05", "--force", "--no-wait"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("is protected (\"holds the only copy of run 42\""), "{}", text(&output));
    assert!(cluster.client.node("batch05").await.unwrap().node.drain.is_none(), "a refused drain changed the node");
    let output = cli_as_alice(&cluster, &["node", "drain", "batch05", "--deadline", "1h", "--no-wait"]);
    assert!(!output.status.success(), "a deadline is a forced drain too");
    // A drain that only moves work away is not destructive.
    let output = cli_as_alice(&cluster, &["node", "drain", "batch06", "--no-wait"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli_as_alice(&cluster, &["node", "protect", "batch07", "--reason", "  "]);
    assert!(!output.status.success());
    assert!(text(&output).contains("say why"), "{}", text(&output));
    // With a reason: done, and audited.
    let output =
        cli_as_alice(&cluster, &["node", "drain", "batch05", "--force", "--reason", "disk replaced", "--no-wait"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = cli_as_alice(&cluster, &["node", "unprotect", "batch05"]);
    assert!(output.status.success(), "{}", text(&output));
    let history = cluster.client.node_history("batch05").await.unwrap();
    let fields: Vec<(&str, &str, &str)> =
        history.iter().map(|change| (change.field.as_str(), change.to.as_str(), change.reason.as_str())).collect();
    let protected = ("protected", "yes: holds the only copy of run 42", "holds the only copy of run 42");
    assert!(fields.contains(&protected), "{fields:?}");
    assert!(
        fields
            .iter()
            .any(|(field, to, reason)| *field == "drain" && to.contains("deadline 0") && *reason == "disk replaced"),
        "{fields:?}"
    );
    assert_eq!(fields.last().map(|(field, to, _)| (*field, *to)), Some(("protected", "")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_twenty_agents_reports_a_frozen_one_as_timeout_without_waiting_for_it() {
    let mut cluster = Cluster::start().await;
    let all = names("n", 20);
    cluster.start_agents(&all, &["--hostgroup", "bi/batch/gridworker"]).await;
    cluster.start_agent("locked", &["--disable-exec"]).await;
    cluster.signal_agent("n07", Signal::SIGSTOP);

    // Status lines stream as nodes finish: the 19 others do not wait for n07.
    let started = Instant::now();
    let mut child = Command::new(drover_binary())
        .args(["exec", "n{00..19}", "--timeout", "8s", "--", "uptime"])
        .env("DROVER_ADDR", &cluster.address)
        // Not the test runner's stdin: exec would send it to the nodes.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        lines.push((started.elapsed(), line.unwrap()));
    }
    let status = child.wait().unwrap();
    cluster.signal_agent("n07", Signal::SIGCONT);
    let all_text: String = lines.iter().map(|(_, line)| format!("{line}\n")).collect();
    assert_eq!(status.code(), Some(1), "{all_text}");
    let successes: Vec<&Duration> =
        lines.iter().filter(|(_, line)| line.contains("[SUCCESS]")).map(|(at, _)| at).collect();
    assert_eq!(successes.len(), 19, "{all_text}");
    let (timeout_at, timeout_line) =
        lines.iter().find(|(_, line)| line.contains("[TIMEOUT]")).unwrap_or_else(|| panic!("{all_text}"));
    assert!(timeout_line.ends_with("[TIMEOUT] n07 (no answer within 8s)"), "{timeout_line}");
    assert!(*timeout_at >= Duration::from_secs(8), "TIMEOUT before the deadline: {timeout_at:?}");
    assert!(successes.iter().all(|at| **at < Duration::from_secs(7)), "successes waited for n07:\n{all_text}");
    assert!(all_text.contains("20 nodes in "), "{all_text}");
    assert!(all_text.contains("19 success, 1 timeout (n07)"), "{all_text}");

    // Identical outputs are grouped; failures carry their exit code; JSON for scripts.
    let output = cluster.cli(&["exec", "--filter", r#"hostgroup == "bi/batch/gridworker""#, "--", "echo same; exit 3"]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert_eq!(shown.matches("[FAILURE]").count(), 20, "{shown}");
    assert!(shown.contains("[FAILURE] n12 exit 3"), "{shown}");
    assert!(shown.contains("n{00..19} (20)\n"), "{shown}");
    let output = cluster.cli(&["exec", "n{00..02},locked", "--json", "--user", "nobody", "--", "id", "-un"]);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", text(&output)));
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for result in results {
        if result["node"] == "locked" {
            assert_eq!(result["status"], "failure");
            assert!(result["error"].as_str().unwrap().contains("exec is disabled on this node"), "{result}");
        } else {
            assert_eq!((result["status"].as_str(), result["stdout"].as_str()), (Some("success"), Some("nobody\n")));
        }
    }
    assert_eq!(report["summary"]["success"], 3);

    // A machine that is gone is UNREACHABLE at once, not after the deadline.
    cluster.kill_agent("n19");
    let started = Instant::now();
    let output = cluster.cli(&["exec", "n18,n19", "--timeout", "20s", "--", "true"]);
    assert!(text(&output).contains("[UNREACHABLE] n19"), "{}", text(&output));
    assert!(text(&output).contains("[SUCCESS] n18"), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());

    // Bad input: nothing runs.
    let output = cluster.cli(&["exec", "--", "uptime"]);
    assert_eq!(output.status.code(), Some(2), "a usage error: {}", text(&output));
    assert!(text(&output).contains("<NODES|--filter <FILTER>>"), "{}", text(&output));
    let output = cluster.cli(&["exec", "n01", "--timeout", "0s", "--", "uptime"]);
    assert!(text(&output).contains("more than 0"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_with_disable_exec_refuses_every_command() {
    let mut cluster = Cluster::start_servers_with(1, &["--disable-exec"]).await;
    cluster.start_agent("n01", &[]).await;
    let marker = cluster.dir.path().join("ran");
    let command = format!("touch {}", marker.display());
    let output = cluster.cli(&["exec", "n01", "--", &command]);
    assert!(!output.status.success());
    assert!(text(&output).contains("exec is disabled on this server"), "{}", text(&output));
    // A batch job placed on n01 after the refusal runs to completion: its
    // allocation went down n01's session after anything the server could
    // have sent for the command, so the agent has had its chance to run it.
    let witness = cluster.dir.path().join("witness");
    let job = format!(
        r#"
job "witness" {{
  type = "batch"
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "touch {}"]
      }}
    }}
  }}
}}
"#,
        witness.display()
    );
    let ran = cluster.run_job("witness", &job);
    assert!(ran.status.success(), "{}", text(&ran));
    cluster.wait_for_allocs("witness", AllocClientStatus::Complete, 1).await;
    assert!(witness.exists(), "the witness job ran on n01");
    assert!(!marker.exists(), "the command ran");
}

/// pdsh's muscle memory: a node set in brackets, `-x` to leave nodes out
/// (of names and of a filter's matches), and `--prefix` for `node: line`
/// output that grep and sort can take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_node_update_take_pdsh_node_sets_and_exclusions_and_exec_prefixes_lines() {
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = (1..=3).map(|number| format!("n{number}")).collect();
    cluster.start_agents(&names, &[]).await;

    let output = cluster.cli(&["exec", "n[1-3]", "-x", "n2", "--prefix", "--", "echo", "hi;", "echo", "oops", ">&2"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "n1: hi\nn3: hi\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("n1: oops") && stderr.contains("n3: oops") && !stderr.contains("n2"), "{stderr}");
    assert!(stderr.contains("2 nodes in"), "the summary goes to stderr: {stderr}");

    let output = cluster.cli(&["exec", "--filter", "name =~ \"n*\"", "-x", "n[2-3]", "--prefix", "--", "echo", "hi"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "n1: hi\n");

    let output = cluster.cli(&["node", "update", "n[1-3]", "-x", "n2", "--owner", "team", "--yes"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(names_matching(&cluster, "owner == \"team\"").await, ["n1", "n3"]);

    let output = cluster.cli(&["exec", "n[3-1]", "--", "true"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad node set [3-1]") && stderr.contains("counts down"), "{stderr}");
}

/// parallel-ssh's muscle memory: a script on stdin reaches every node's
/// command (`pssh -I`), and `drover copy` puts a file on many nodes (pscp),
/// both with exec's status lines and summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sends_a_script_on_stdin_and_copy_puts_a_file_on_every_node() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = (1..=2).map(|number| format!("n{number}")).collect();
    cluster.start_agents(&names, &[]).await;

    let script = cluster.dir.path().join("script.sh");
    std::fs::write(&script, "echo from the script\nexit 0\n").unwrap();
    let output = Command::new(drover_binary())
        .args(["exec", "n1,n2", "--", "sh"])
        .env("DROVER_ADDR", &cluster.address)
        .stdin(std::fs::File::open(&script).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("[SUCCESS] n1") && stdout.contains("[SUCCESS] n2"), "{stdout}");
    assert!(stdout.contains("\nfrom the script\n") && stdout.contains("2 nodes in"), "{stdout}");

    let source = cluster.dir.path().join("motd");
    std::fs::write(&source, "welcome, it's copied\n").unwrap();
    // Commands may run as another user than this test's: a directory
    // anyone can write and reach.
    let shared = tempfile::Builder::new().prefix("drover-copy-").tempdir().unwrap();
    let destination = shared.path().join("copied dir");
    std::fs::create_dir(&destination).unwrap();
    for dir in [shared.path(), destination.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let destination = destination.join("motd");
    let target = format!("n[1-2]:{}", destination.display());
    let output = cluster.cli(&["copy", source.to_str().unwrap(), &target, "--mode", "640"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("[SUCCESS] n1") && stdout.contains("2 nodes in"), "{stdout}");
    let output = cluster.cli(&["exec", "n1,n2", "--prefix", "--", "cat", &format!("'{}'", destination.display())]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "n1: welcome, it's copied\nn2: welcome, it's copied\n");
    assert_eq!(std::fs::metadata(&destination).unwrap().permissions().mode() & 0o777, 0o640);

    let output = cluster.cli(&["copy", source.to_str().unwrap(), "n1:relative/path"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an absolute path"));
}
