//! Detect and react with real agents: a console showing a kernel panic
//! gets its node rebooted through the provider; hammer limits, modes and
//! protection hold in a storm of triggers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_golden::needs;

use crate::harness::{Cluster, Peer, wait_until};

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A webhook receiver: every body POSTed to it.
async fn hook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// The site folder of a test, with a console file per node (read by the
/// test provider's `console` command) showing `boot`.
fn site_with_consoles(cluster: &Cluster, names: &[String], boot: &str) -> std::path::PathBuf {
    let site = cluster.dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    for name in names {
        write(&site.join(format!("console-{name}")), boot);
    }
    site
}

/// `drover apply SITE`, which must succeed.
fn apply(cluster: &Cluster, site: &Path) {
    let applied = cluster.cli(&["apply", site.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
}

async fn history(cluster: &Cluster, hammer: &str) -> Vec<drover_react::api::HammerHistoryEntry> {
    cluster.client.hammer_history(Some(hammer), 1000).await.unwrap()
}

/// Waits until the history of `hammer` satisfies `found`.
async fn wait_for_history(
    cluster: &Cluster,
    hammer: &str,
    what: &str,
    found: impl Fn(&[drover_react::api::HammerHistoryEntry]) -> bool + Clone,
) {
    let client = cluster.client.clone();
    cluster
        .wait_for(what, || {
            let (client, found) = (client.clone(), found.clone());
            let hammer = hammer.to_owned();
            async move { client.hammer_history(Some(&hammer), 1000).await.is_ok_and(|entries| found(&entries)) }
        })
        .await;
}

/// Waits until the webhook receiver got a body containing `needle`.
async fn wait_for_body(cluster: &Cluster, bodies: &Arc<Mutex<Vec<String>>>, needle: &str) {
    let bodies = bodies.clone();
    wait_until(
        &format!("a notification with {needle}"),
        Duration::from_secs(20),
        || {
            let bodies = bodies.clone();
            async move { bodies.lock().unwrap().iter().any(|body| body.contains(needle)) }
        },
        || cluster.logs(),
    )
    .await;
}

/// Waits until the console poller of every node in `names` has indexed a
/// line containing `word`.
async fn wait_for_console_lines(cluster: &Cluster, names: &[String], word: &str) {
    let client = cluster.client.clone();
    cluster
        .wait_for(&format!("console lines with {word:?} of {} nodes in the index", names.len()), || {
            let client = client.clone();
            async move {
                let query = drover_proto::api::LogQuery { q: format!("source:console {word}"), ..Default::default() };
                let by_node = drover_proto::api::LogCountBy { by: "node".to_owned(), top: Some(names.len()) };
                client.count_logs(&query, &by_node).await.is_ok_and(|counted| {
                    names.iter().all(|name| counted.counts.iter().any(|count| count.value == *name && count.count > 0))
                })
            }
        })
        .await;
}

fn run_state(entry: &drover_react::api::HammerHistoryEntry) -> String {
    entry.run.as_ref().map(|run| run.state.as_str().to_owned()).unwrap_or_else(|| "refused".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_panic_on_the_console_reboots_the_node_through_the_provider() {
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = ["web01", "web02", "web03"].map(str::to_owned).to_vec();
    cluster.start_agents(&names, &[]).await;
    let site = site_with_consoles(&cluster, &names, "Linux version 6.1\nlogin:\n");
    std::fs::create_dir_all(site.join("runbooks")).unwrap();
    // The provider's reboot: kill the node's agent and start it again
    // with the same command line; the console shows a fresh boot.
    let reboot = site.join("reboot.sh");
    write(
        &reboot,
        &format!(
            r#"#!/bin/sh
set -e
name="$1"
echo "reboot $name" >> "{dir}/reboots"
pid=$(pgrep -f -- "--name $name\$" | head -n 1)
cmd=$(tr '\0' ' ' < /proc/$pid/cmdline)
kill -9 "$pid"
printf 'Linux version 6.1 (rebooted)\nlogin:\n' > "{dir}/console-$name"
setsid sh -c "exec $cmd" > "{dir}/agent-$name-after-reboot.log" 2>&1 < /dev/null &
echo "rebooted $name"
"#,
            dir = site.display()
        ),
    );
    std::process::Command::new("chmod").arg("+x").arg(&reboot).status().unwrap();
    let (hook, bodies) = hook_receiver().await;
    write(
        &site.join("runbooks/kernel-panic.md"),
        "# Kernel panic\n\nThe hammer reboots the node. If it panics again, rebuild it.\n",
    );
    write(
        &site.join("site.hcl"),
        &format!(
            r#"
provider "lab" {{
  console          = "cat {dir}/console-{{{{node.name}}}}"
  reboot           = "{dir}/reboot.sh {{{{node.name}}}}"
  console_interval = "500ms"
  timeout          = "20s"
}}
notifier "ops-hook" {{
  webhook {{ url = "{hook}" }}
}}
hammer "reboot-on-kernel-panic" {{
  when    {{ log {{ source = "console"  match = "Kernel panic" }} }}
  action  {{ reboot {{}} }}
  mode    = "auto"
  limits  {{ per_hour = 5  concurrent = 2  cooldown = "10m"  fleet_max_percent = 34 }}
  runbook = "runbooks/kernel-panic.md"
  notify  = ["ops-hook"]
}}
"#,
            dir = site.display()
        ),
    );
    let site_arg = site.to_str().unwrap();
    let planned = cluster.cli(&["plan", site_arg]);
    assert!(planned.status.success(), "{}", text(&planned));
    assert!(text(&planned).contains("+ hammer \"reboot-on-kernel-panic\""), "{}", text(&planned));
    apply(&cluster, &site);
    assert!(cluster.cli(&["plan", site_arg]).stdout.starts_with(b"Site: no changes."));

    // The console's boot lines are indexed as source console.
    let client = cluster.client.clone();
    cluster
        .wait_for("console lines of web02 in the index", || {
            let client = client.clone();
            async move {
                let query = drover_proto::api::LogQuery {
                    q: "source:console node:web02 login".to_owned(),
                    ..Default::default()
                };
                client.search_logs(&query, &Default::default()).await.is_ok_and(|found| !found.records.is_empty())
            }
        })
        .await;
    let agent_pid = || {
        let found = std::process::Command::new("pgrep").args(["-f", "--", "--name web02$"]).output().unwrap();
        String::from_utf8_lossy(&found.stdout).trim().to_owned()
    };
    let before = agent_pid();

    append(&site.join("console-web02"), "Kernel panic - not syncing: Fatal exception in interrupt\n");
    let started = std::time::Instant::now();
    let reboots = site.join("reboots");
    wait_until(
        "the provider's reboot of web02",
        Duration::from_secs(30),
        || {
            let reboots = reboots.clone();
            async move { std::fs::read_to_string(&reboots).is_ok_and(|text| text.contains("reboot web02")) }
        },
        || cluster.logs(),
    )
    .await;
    // How fast is measured (scripts/bench-react), not asserted here.
    eprintln!("the provider rebooted web02 {:?} after the panic", started.elapsed());

    wait_for_history(&cluster, "reboot-on-kernel-panic", "the run to succeed in the history", |entries| {
        entries
            .iter()
            .any(|entry| entry.target == "node/web02" && entry.report.as_ref().is_some_and(|report| report.succeeded))
    })
    .await;
    let entries = history(&cluster, "reboot-on-kernel-panic").await;
    let run = entries.iter().find(|entry| entry.run.is_some()).unwrap();
    assert!(run.reason.contains("Kernel panic"), "{run:?}");
    assert!(run.report.as_ref().unwrap().action.contains("through provider lab"), "{run:?}");
    assert!(run.report.as_ref().unwrap().output.contains("rebooted web02"), "{run:?}");
    assert_eq!(std::fs::read_to_string(&reboots).unwrap().lines().count(), 1, "rebooted once");

    // The node comes back (a new agent process), and the notification
    // carried the runbook.
    cluster
        .wait_for("web02 to be ready again after its reboot", || {
            let client = client.clone();
            async move {
                client
                    .nodes()
                    .await
                    .is_ok_and(|nodes| nodes.iter().any(|node| node.name == "web02" && node.status == "ready"))
            }
        })
        .await;
    let after = agent_pid();
    assert!(!after.is_empty() && after != before, "a new agent runs: {after:?} (was {before})");
    wait_for_body(&cluster, &bodies, "hammer_action").await;
    let notification = bodies.lock().unwrap().iter().find(|body| body.contains("hammer_action")).cloned().unwrap();
    assert!(notification.contains("runbooks/kernel-panic.md") && notification.contains("web02"), "{notification}");

    let shown = cluster.cli(&["runbook", "show", "reboot-on-kernel-panic"]);
    assert!(text(&shown).contains("If it panics again, rebuild it."), "{}", text(&shown));
    let listed = cluster.cli(&["hammer", "list"]);
    assert!(text(&listed).contains("reboot-on-kernel-panic") && text(&listed).contains("1/5"), "{}", text(&listed));

    // The rebooted agent is not the harness's: stop it.
    let _ = std::process::Command::new("pkill").args(["-9", "-f", "--", "--name web02$"]).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_triggers_stays_within_the_limits_and_approve_dry_run_and_protection_hold() {
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = (0..10).map(|number| format!("n{number:02}")).collect();
    cluster.start_agents(&names, &[]).await;
    let site = site_with_consoles(&cluster, &names, "boot\n");
    let (hook, bodies) = hook_receiver().await;
    write(
        &site.join("site.hcl"),
        &format!(
            r#"
provider "lab" {{
  console          = "cat {dir}/console-{{{{node.name}}}}"
  console_interval = "300ms"
}}
notifier "ops-hook" {{ webhook {{ url = "{hook}" }} }}
hammer "fix-oom" {{
  when   {{ log {{ source = "console"  match = "Out of memory" }} }}
  action {{ command {{ on = "server"  command = "echo {{{{node.name}}}} >> {dir}/fixed" }} }}
  mode   = "auto"
  limits {{ per_hour = 3  concurrent = 1  cooldown = "1h"  fleet_max_percent = 30 }}
  notify = ["ops-hook"]
}}
hammer "drain-on-disk-failure" {{
  when   {{ log {{ source = "console"  match = "disk failure" }} }}
  action {{ drain {{ deadline = "1m" }} }}
  mode   = "approve"
}}
hammer "fan-check" {{
  when   {{ log {{ source = "console"  match = "fan error" }} }}
  action {{ command {{ on = "server"  command = "touch {dir}/fan-{{{{node.name}}}}" }} }}
  mode   = "dry-run"
}}
"#,
            dir = site.display()
        ),
    );
    apply(&cluster, &site);
    // The pollers index the boot lines first (the hammers' log watchers
    // start with them).
    wait_for_console_lines(&cluster, &names, "boot").await;

    // 100 triggers over 5 of 10 nodes, more than the guard's 30 %.
    for round in 0..20 {
        for name in &names[..5] {
            append(&site.join(format!("console-{name}")), &format!("Out of memory: killed process {round}\n"));
        }
    }
    wait_for_history(&cluster, "fix-oom", "the fleet guard to trip", |entries| {
        entries.iter().any(|entry| entry.refused.as_deref().is_some_and(|reason| reason.contains("a human must look")))
    })
    .await;
    // Each node's lines trigger in order: once every node's last line is in
    // the history and every run has finished, the guard has decided on
    // every trigger and every run has acted.
    let targets: Vec<String> = names[..5].iter().map(|name| format!("node/{name}")).collect();
    wait_for_history(&cluster, "fix-oom", "every node's last trigger, and every run finished", move |entries| {
        let last_trigger_of = |target: &String| {
            entries.iter().any(|entry| entry.target == *target && entry.reason.ends_with("killed process 19"))
        };
        targets.iter().all(last_trigger_of) && entries.iter().all(|entry| entry.run.is_none() || entry.report.is_some())
    })
    .await;
    let entries = history(&cluster, "fix-oom").await;
    let runs: Vec<_> = entries.iter().filter(|entry| entry.run.is_some()).collect();
    assert!(!runs.is_empty() && runs.len() <= 3, "at least the first node ran, at most per_hour runs: {runs:?}");
    let fixed = std::fs::read_to_string(site.join("fixed")).unwrap_or_default();
    assert_eq!(fixed.lines().count(), runs.len(), "every run acted once: {fixed:?}");
    let distinct: std::collections::HashSet<&str> = fixed.lines().collect();
    assert_eq!(distinct.len(), fixed.lines().count(), "the cooldown kept a node from a second run: {fixed:?}");
    assert!(entries.len() >= 90, "every trigger is in the history: {}", entries.len());
    wait_for_body(&cluster, &bodies, "escalation").await;
    // Every notification of the storm has been delivered (or given up).
    cluster
        .wait_for("every notification to be delivered", || async {
            cluster
                .client
                .notifications()
                .await
                .is_ok_and(|records| records.iter().all(|record| record.status.is_finished()))
        })
        .await;
    let escalations = bodies.lock().unwrap().iter().filter(|body| body.contains("\"escalation\"")).count();
    assert_eq!(escalations, 1, "one escalation, not one per trigger");
    let top = cluster.cli(&["alert", "top", "--since", "1h"]);
    assert!(text(&top).contains("fix-oom"), "{}", text(&top));

    // approve: nothing happens until a human says so.
    append(&site.join("console-n05"), "ata1: disk failure\n");
    wait_for_history(&cluster, "drain-on-disk-failure", "a run waiting for approval", |entries| {
        entries.iter().any(|entry| {
            entry.run.as_ref().is_some_and(|run| run.state == drover_react::hammer::RunState::AwaitingApproval)
        })
    })
    .await;
    let node = cluster.client.node("n05").await.unwrap().node;
    assert!(node.drain.is_none(), "not drained before approval");
    let waiting = history(&cluster, "drain-on-disk-failure").await;
    let run = waiting[0].run.as_ref().unwrap().id.0;
    let approved = cluster.cli(&["hammer", "approve", &run.to_string()]);
    assert!(approved.status.success(), "{}", text(&approved));
    let client = cluster.client.clone();
    cluster
        .wait_for("n05 to drain after approval", || {
            let client = client.clone();
            async move {
                client.node("n05").await.is_ok_and(|status| {
                    status.node.drain.is_some() || status.node.eligibility == drover_types::NodeEligibility::Ineligible
                })
            }
        })
        .await;

    // A protected node is refused.
    let protected = cluster.cli(&["node", "protect", "n06", "--reason", "disk vendor RMA in progress"]);
    assert!(protected.status.success(), "{}", text(&protected));
    append(&site.join("console-n06"), "ata2: disk failure\n");
    wait_for_history(&cluster, "drain-on-disk-failure", "the protected node's trigger to be refused", |entries| {
        entries.iter().any(|entry| {
            entry.target == "node/n06" && entry.refused.as_deref().is_some_and(|reason| reason.contains("protected"))
        })
    })
    .await;
    assert!(cluster.client.node("n06").await.unwrap().node.drain.is_none());

    // dry-run: recorded, nothing done.
    append(&site.join("console-n07"), "fan error on FAN2\n");
    wait_for_history(&cluster, "fan-check", "the dry run in the history", |entries| {
        entries.iter().any(|entry| entry.report.is_some())
    })
    .await;
    let entries = history(&cluster, "fan-check").await;
    assert_eq!(run_state(&entries[0]), "dry_run");
    assert!(entries[0].report.as_ref().unwrap().action.starts_with("would run on the server"), "{:?}", entries[0]);
    assert!(!site.join("fan-n07").exists(), "dry-run changed nothing");

    // Pause: a paused hammer refuses.
    let paused = cluster.cli(&["hammer", "pause", "fan-check"]);
    assert!(paused.status.success(), "{}", text(&paused));
    append(&site.join("console-n08"), "fan error on FAN1\n");
    wait_for_history(&cluster, "fan-check", "the paused hammer to refuse", |entries| {
        entries
            .iter()
            .any(|entry| entry.target == "node/n08" && entry.refused.as_deref() == Some("the hammer is paused"))
    })
    .await;
}

/// Kills a peer process when the test ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_smtp_server_and_alertmanager_whose_webhook_triggers_a_hammer() {
    let alertmanager_binary = Path::new("/usr/bin/prometheus-alertmanager");
    if !needs::are_met([
        needs::program("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager"),
        needs::python_module("/usr/bin/python3", "aiosmtpd", "python3-aiosmtpd"),
    ]) {
        return;
    }
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = ["db01", "db02"].map(str::to_owned).to_vec();
    cluster.start_agents(&names, &[]).await;
    let site = site_with_consoles(&cluster, &names, "boot\n");

    let smtp_port = crate::harness::free_port();
    let maildir = cluster.dir.path().join("mail");
    let _smtpd = Peer(
        std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp_port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Alertmanager sends what it receives back to drover's webhook receiver.
    let am_port = crate::harness::free_port();
    let am_dir = cluster.dir.path().join("alertmanager");
    std::fs::create_dir_all(&am_dir).unwrap();
    let server = cluster.addresses[0].clone();
    write(
        &am_dir.join("am.yml"),
        &format!(
            "route:\n  receiver: drover\n  group_by: ['alertname', 'node']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: drover\n    webhook_configs:\n      - url: 'http://{server}/v1/alertmanager/webhook'\n"
        ),
    );
    let _alertmanager = Peer(
        std::process::Command::new(alertmanager_binary)
            .arg(format!("--config.file={}", am_dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", am_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    write(
        &site.join("site.hcl"),
        &format!(
            r#"
provider "lab" {{
  console          = "cat {dir}/console-{{{{node.name}}}}"
  console_interval = "300ms"
}}
notifier "ops-mail" {{
  email {{
    smtp    = "127.0.0.1:{smtp_port}"
    from    = "drover@example.org"
    to      = ["ops@example.org"]
    subject = "[drover] {{{{alert.status}}}}: {{{{alert.name}}}} on {{{{alert.labels.node}}}}"
  }}
}}
notifier "site-alertmanager" {{
  alertmanager {{ url = "http://127.0.0.1:{am_port}" }}
}}
alert "ecc-errors" {{
  when {{
    log {{ source = "console"  match = "EDAC MC0"  at_least = 2  within = "5m" }}
  }}
  severity = "critical"
  notify   = ["ops-mail", "site-alertmanager"]
  runbook  = "https://ops.example.org/runbooks/ecc"
}}
hammer "drain-on-ecc" {{
  when   {{ alertmanager {{ matchers = ["alertname=\"ecc-errors\""] }} }}
  action {{ command {{ on = "server"  command = "echo {{{{node.name}}}} >> {dir}/from-alertmanager" }} }}
  mode   = "auto"
}}
"#,
            dir = site.display()
        ),
    );
    apply(&cluster, &site);
    wait_for_console_lines(&cluster, &names, "boot").await;

    append(&site.join("console-db02"), "EDAC MC0: 1 CE memory read error\nEDAC MC0: 1 CE memory read error\n");

    // The e-mail arrives at the SMTP server.
    let new_mail = maildir.join("new");
    wait_until(
        "the e-mail at the SMTP server",
        Duration::from_secs(30),
        || {
            let new_mail = new_mail.clone();
            async move { std::fs::read_dir(&new_mail).is_ok_and(|mut entries| entries.next().is_some()) }
        },
        || cluster.logs(),
    )
    .await;
    let message = std::fs::read_dir(&new_mail).unwrap().flatten().next().unwrap();
    let message = std::fs::read_to_string(message.path()).unwrap();
    assert!(message.contains("Subject: [drover] firing: ecc-errors on db02"), "{message}");
    assert!(message.contains("https://ops.example.org/runbooks/ecc"), "{message}");

    // Alertmanager got the alert, sent its webhook to drover, and the
    // hammer matching it acted.
    let marker = site.join("from-alertmanager");
    wait_until(
        "the hammer triggered by Alertmanager's webhook",
        Duration::from_secs(30),
        || {
            let marker = marker.clone();
            async move { std::fs::read_to_string(&marker).is_ok_and(|text| text.trim() == "db02") }
        },
        || cluster.logs(),
    )
    .await;
    let alerts = cluster.client.alerts().await.unwrap();
    assert!(alerts.alerts.iter().any(|view| view.alert.rule == "ecc-errors"), "{alerts:?}");
    assert!(
        alerts
            .received
            .iter()
            .any(|alert| alert.firing && alert.labels.get("alertname").map(String::as_str) == Some("ecc-errors")),
        "{alerts:?}"
    );
    let listed = cluster.cli(&["alert", "list"]);
    assert!(text(&listed).contains("From Alertmanager"), "{}", text(&listed));
    let notifications = cluster.client.notifications().await.unwrap();
    let delivered =
        notifications.iter().filter(|record| record.status == drover_notify::DeliveryStatus::Delivered).count();
    assert!(delivered >= 2, "the e-mail and the Alertmanager post are delivered: {notifications:?}");

    // Acknowledged: visible in the list.
    let acked = cluster.cli(&["alert", "ack", "ecc-errors"]);
    assert!(acked.status.success(), "{}", text(&acked));
    let listed = cluster.cli(&["alert", "list"]);
    assert!(text(&listed).contains("acked by"), "{}", text(&listed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_check_walks_the_happy_path_and_fails_on_a_missed_sla() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("smoke01", &[]).await;
    let passed = cluster.cli(&["check", "--sla", "job_start_p95 < 30s", "--sla", "total < 60s", "--runs", "2"]);
    assert!(passed.status.success(), "{}", text(&passed));
    for line in ["Smoke check on smoke01 (2 runs)", "job_complete", "logs", "exec", "PASS job_start_p95 < 30s"] {
        assert!(text(&passed).contains(line), "{line}: {}", text(&passed));
    }
    let jobs = cluster.client.jobs().await.unwrap();
    assert!(jobs.is_empty(), "the smoke jobs are purged: {jobs:?}");

    let missed = cluster.cli(&["check", "--sla", "exec_max < 1ms", "--json"]);
    assert_eq!(missed.status.code(), Some(1), "{}", text(&missed));
    let report: serde_json::Value = serde_json::from_slice(&missed.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["slas"][0]["met"], false);
    assert!(report["steps"][4]["max_ms"].as_f64().unwrap() > 0.0, "{report}");

    let bad = cluster.cli(&["check", "--sla", "boot < 1s"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("unknown step \"boot\""), "{}", text(&bad));
}
