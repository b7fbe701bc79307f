//! Roles run from configuration files: an agent's labels come from its
//! directory, a `SIGHUP` after an edit re-registers the new ones with the
//! servers, and a bad file changes nothing; a server's log level changes
//! on `SIGHUP`.

use std::fs;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{Cluster, Process, drover_binary, free_port, wait_until};

fn node_status(cluster: &Cluster, name: &str) -> String {
    let output = cluster.cli(&["node", "status", name]);
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Whether `text` has a line `Field = value` (the CLI aligns the `=`).
fn has_field(text: &str, field: &str, value: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.trim_start().strip_prefix('='))
            .is_some_and(|rest| rest.trim() == value)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reloads_edited_labels_on_sighup_and_keeps_running_on_a_bad_file() {
    let mut cluster = Cluster::start().await;
    let config_dir = cluster.dir.path().join("agent.d");
    fs::create_dir_all(&config_dir).unwrap();
    let labels_file = config_dir.join("10-labels.hcl");
    fs::write(&labels_file, "hostgroup   = \"bi/batch\"\nenvironment = \"production\"\nmeta { rack = \"r1\" }\n")
        .unwrap();
    fs::write(config_dir.join("20-logs.hcl"), "logs {\n  spool_mb = 256\n}\n").unwrap();
    let config_path = config_dir.to_str().unwrap().to_owned();
    cluster.start_agent("n1", &["--config", &config_path]).await;

    let status = node_status(&cluster, "n1");
    assert!(has_field(&status, "Host Group", "bi/batch"), "labels from the files:\n{status}");
    assert!(status.contains("rack = r1"), "{status}");

    // Edit: new labels (reloaded) and a log setting (needs a restart).
    fs::write(
        &labels_file,
        "hostgroup   = \"bi/interactive\"\nenvironment = \"qa\"\nmeta {\n  rack = \"r2\"\n  row  = \"b\"\n}\n",
    )
    .unwrap();
    fs::write(config_dir.join("20-logs.hcl"), "logs {\n  spool_mb = 64\n}\n").unwrap();
    cluster.signal_agent("n1", Signal::SIGHUP);
    let agent_log = |cluster: &Cluster| cluster.agents[cluster.agent_index("n1")].output();
    wait_until(
        "the servers to show the reloaded labels",
        Duration::from_secs(30),
        || async {
            let status = node_status(&cluster, "n1");
            has_field(&status, "Host Group", "bi/interactive")
                && has_field(&status, "Environment", "qa")
                && status.contains("rack = r2")
                && status.contains("row = b")
        },
        || format!("{}\n--- agent log\n{}", node_status(&cluster, "n1"), agent_log(&cluster)),
    )
    .await;
    let log = agent_log(&cluster);
    let reload_line =
        log.lines().find(|line| line.contains("configuration reloaded")).unwrap_or_else(|| panic!("{log}"));
    assert!(reload_line.contains("reloaded=hostgroup, environment, meta"), "{reload_line}");
    assert!(reload_line.contains("needs_restart=logs.spool_mb"), "{reload_line}");
    let status = node_status(&cluster, "n1");
    assert!(status.contains("ready"), "the node stayed ready:\n{status}");

    // A misspelt key: logged with its position, the running labels stay.
    fs::write(&labels_file, "hostgrop = \"bi/other\"\n").unwrap();
    cluster.signal_agent("n1", Signal::SIGHUP);
    wait_until(
        "the agent to log the bad file",
        Duration::from_secs(30),
        || async { agent_log(&cluster).contains("configuration not reloaded") },
        || agent_log(&cluster),
    )
    .await;
    let log = agent_log(&cluster);
    assert!(
        log.contains(
            "10-labels.hcl:1:1: unknown attribute \\\"hostgrop\\\" in the file; did you mean \\\"hostgroup\\\"?"
        ) || log.contains("10-labels.hcl:1:1: unknown attribute \"hostgrop\" in the file; did you mean \"hostgroup\"?"),
        "{log}"
    );
    let status = node_status(&cluster, "n1");
    assert!(has_field(&status, "Host Group", "bi/interactive"), "{status}");
    // Still running: a second SIGHUP after a fix is applied.
    fs::write(&labels_file, "hostgroup = \"bi/fixed\"\n").unwrap();
    cluster.signal_agent("n1", Signal::SIGHUP);
    wait_until(
        "the fixed file to be applied",
        Duration::from_secs(30),
        || async { has_field(&node_status(&cluster, "n1"), "Host Group", "bi/fixed") },
        || agent_log(&cluster),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reloads_its_log_level_on_sighup() {
    let dir = tempfile::Builder::new().prefix("drover-it-").tempdir().unwrap();
    let config_file = dir.path().join("server.hcl");
    let address = format!("127.0.0.1:{}", free_port());
    let data_dir = dir.path().join("server");
    let write_config = |log_level: &str| {
        fs::write(
            &config_file,
            format!(
                "data_dir = \"{}\"\nbind = \"{address}\"\ninsecure = true\nmin_free_disk_mb = 0\nlog_level = \"{log_level}\"\n",
                data_dir.display()
            ),
        )
        .unwrap();
    };
    write_config("warn");
    let mut command = std::process::Command::new(drover_binary());
    // No DROVER_LOG: the file's log_level is the filter.
    command.env_remove("DROVER_LOG").arg("server").arg("--config").arg(&config_file);
    let server = Process::spawn_for_test("server", &mut command, dir.path().join("server.log"));
    let client = drover_client::Client::new(&address);
    wait_until(
        "the server to answer",
        Duration::from_secs(60),
        || async { client.leader().await.is_ok_and(|info| info.leader_id.is_some()) },
        || server.output(),
    )
    .await;
    assert!(!server.output().contains("server running"), "log_level = \"warn\" hides info:\n{}", server.output());

    write_config("warn,drover=info");
    server.signal(Signal::SIGHUP);
    wait_until(
        "the reload to be logged at info",
        Duration::from_secs(30),
        || async { server.output().contains("configuration reloaded") },
        || server.output(),
    )
    .await;
    let log = server.output();
    let line = log.lines().find(|line| line.contains("configuration reloaded")).unwrap();
    assert!(line.contains("reloaded=log_level") && line.contains("needs_restart=nothing"), "{line}");

    // A key that needs a restart is named as such; the server keeps running.
    fs::write(
        &config_file,
        format!(
            "data_dir = \"{}\"\nbind = \"{address}\"\ninsecure = true\nmin_free_disk_mb = 0\nlog_level = \"warn,drover=info\"\nheartbeat {{\n  ttl = \"20s\"\n}}\n",
            data_dir.display()
        ),
    )
    .unwrap();
    server.signal(Signal::SIGHUP);
    wait_until(
        "the second reload",
        Duration::from_secs(30),
        || async { server.output().contains("needs_restart=heartbeat.ttl") },
        || server.output(),
    )
    .await;
    assert!(client.leader().await.is_ok(), "the server still answers");
}
