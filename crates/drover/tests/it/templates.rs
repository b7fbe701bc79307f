//! Templates that read the cluster, end to end: a job's templates read a
//! drover variable (`nomadVar`, `key`) and the catalogue (`service`), the
//! tasks start with the rendered files, and `drover var put` re-renders
//! them on the node: the task with `change_mode = "restart"` is restarted
//! within its splay, the one with `change_mode = "signal"` gets SIGHUP
//! (its shell traps it and writes a marker) and is not restarted.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_types::AllocClientStatus;

use crate::harness::{Cluster, output_text};

/// The splay of the restarting template.
const SPLAY: Duration = Duration::from_secs(3);

/// A service `db` on a dynamic port, no check (so it passes).
const DB_JOB: &str = r#"
job "db" {
  group "db" {
    network {
      port "pg" {}
    }
    service {
      name     = "db"
      port     = "pg"
      provider = "nomad"
      tags     = ["primary"]
    }
    task "db" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// Task `restarted` appends its rendered file to `starts` at each start;
/// task `signalled` appends to `signalled-starts` at each start and its
/// rendered file to `hups` on each SIGHUP.
fn app_job(out: &Path) -> String {
    let out = out.display();
    format!(
        r#"
job "app" {{
  group "app" {{
    task "restarted" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "cat ${{NOMAD_TASK_DIR}}/app.conf >> {out}/starts && exec /bin/sleep 3600"]
      }}
      template {{
        data        = <<EOF
{{{{ with nomadVar "nomad/jobs/app" }}}}version={{{{ .version }}}}{{{{ end }}}} db={{{{ range service "primary.db" }}}}{{{{ .Address }}}}:{{{{ .Port }}}}{{{{ end }}}}
EOF
        destination = "local/app.conf"
        change_mode = "restart"
        splay       = "{splay}s"
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
    task "signalled" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "trap 'cat ${{NOMAD_TASK_DIR}}/limits.conf >> {out}/hups' HUP; echo started >> {out}/signalled-starts; while true; do sleep 0.1; done"]
      }}
      template {{
        data          = "limit={{{{ key \"nomad/jobs/app/version\" }}}} mode={{{{ keyOrDefault \"jobs/app/mode\" \"calm\" }}}}\n"
        destination   = "local/limits.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#,
        splay = SPLAY.as_secs()
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_change_rerenders_and_restarts_or_signals_the_task_within_its_splay() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let out = cluster.dir.path().join("app-out");
    std::fs::create_dir_all(&out).unwrap();

    let put = cluster.cli(&["var", "put", "nomad/jobs/app", "version=1"]);
    assert!(put.status.success(), "{}", output_text(&put));
    let output = cluster.run_job("db", DB_JOB);
    assert!(output.status.success(), "{}", output_text(&output));
    cluster.wait_for_allocs("db", AllocClientStatus::Running, 1).await;
    cluster
        .wait_for("db in the catalogue", || async {
            cluster.client.service_instances("db", None, true, None).await.is_ok_and(|(found, _)| found.len() == 1)
        })
        .await;
    let (instances, _) = cluster.client.service_instances("db", None, true, None).await.unwrap();
    let db_address = format!("{}:{}", instances[0].address, instances[0].port.expect("a port"));

    let output = cluster.run_job("app", &app_job(&out));
    assert!(output.status.success(), "{}", output_text(&output));
    let starts = out.join("starts");
    let first = format!("version=1 db={db_address}\n");
    cluster.wait_for("the first render", || async { read(&starts) == first }).await;
    cluster.wait_for("the signalled task", || async { read(&out.join("signalled-starts")) == "started\n" }).await;

    let put = cluster.cli(&["var", "put", "nomad/jobs/app", "version=2"]);
    assert!(put.status.success(), "{}", output_text(&put));
    let changed_at = Instant::now();
    let second = format!("{first}version=2 db={db_address}\n");
    // Within the splay (and the time a push and a restart take).
    let deadline = SPLAY + Duration::from_secs(15);
    crate::harness::wait_until(
        "the restart with version 2",
        deadline,
        || async { read(&starts) == second },
        || cluster.logs(),
    )
    .await;
    crate::harness::wait_until(
        "SIGHUP with the new limits",
        deadline.saturating_sub(changed_at.elapsed()),
        || async { read(&out.join("hups")) == "limit=2 mode=calm\n" },
        || cluster.logs(),
    )
    .await;
    assert_eq!(read(&out.join("signalled-starts")), "started\n", "the signalled task was not restarted");

    // A change the rendered files do not show is no change: nothing restarts.
    let put = cluster.cli(&["var", "put", "nomad/jobs/other", "x=1"]);
    assert!(put.status.success(), "{}", output_text(&put));
    // Then one they show, for the signalled task only.
    let put = cluster.cli(&["var", "put", "jobs/app/mode", "mode=busy"]);
    assert!(put.status.success(), "{}", output_text(&put));
    cluster
        .wait_for("SIGHUP with the new mode", || async {
            read(&out.join("hups")) == "limit=2 mode=calm\nlimit=2 mode=busy\n"
        })
        .await;
    assert_eq!(read(&starts), second, "the restarting task's file did not change, so it was not restarted");
}

/// Task `t` appends its rendered file to `starts` at each start; its
/// template waits for 3 s of quiet (at most 30 s) before it renders again.
fn waiting_job(out: &Path) -> String {
    let out = out.display();
    format!(
        r#"
job "waiter" {{
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "cat ${{NOMAD_TASK_DIR}}/v.conf >> {out}/starts && exec /bin/sleep 3600"]
      }}
      template {{
        data        = "{{{{ with nomadVar \"nomad/jobs/waiter\" }}}}version={{{{ .version }}}}{{{{ end }}}}\n"
        destination = "local/v.conf"
        change_mode = "restart"
        splay       = "0s"
        wait {{
          min = "3s"
          max = "30s"
        }}
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

/// A template's `wait`: a burst of three variable changes is one render
/// and one restart, with the last value, once the data has been quiet for
/// `min`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_is_one_restart_once_the_templates_wait_is_quiet() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let out = cluster.dir.path().join("waiter-out");
    std::fs::create_dir_all(&out).unwrap();
    let put = |version: u32| {
        let put = cluster.cli(&["var", "put", "nomad/jobs/waiter", &format!("version={version}")]);
        assert!(put.status.success(), "{}", output_text(&put));
    };
    put(1);
    let output = cluster.run_job("waiter", &waiting_job(&out));
    assert!(output.status.success(), "{}", output_text(&output));
    let starts = out.join("starts");
    cluster.wait_for("the first render", || async { read(&starts) == "version=1\n" }).await;

    for version in 2..=4 {
        put(version);
    }
    let last_put = Instant::now();
    // Not before 3 s of quiet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(read(&starts), "version=1\n", "rendered again before the wait's min: {}", cluster.logs());
    crate::harness::wait_until(
        "one restart with the last version",
        Duration::from_secs(30),
        || async { read(&starts) != "version=1\n" },
        || cluster.logs(),
    )
    .await;
    assert!(last_put.elapsed() >= Duration::from_secs(3), "the render waited for the quiet");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(read(&starts), "version=1\nversion=4\n", "one render, with the last value");
}

/// Two groups whose templates read one variable with `change_mode =
/// "script"`: `ok`'s script appends what it sees to a file, `strict`'s
/// fails with `fail_on_error = true`.
fn script_job(out: &Path) -> String {
    let out = out.display();
    let template = |script: &str, fail_on_error: bool| {
        format!(
            r#"
      template {{
        data        = "{{{{ with nomadVar \"nomad/jobs/reloader\" }}}}version={{{{ .version }}}}{{{{ end }}}}\n"
        destination = "local/v.conf"
        change_mode = "script"
        splay       = "0s"
        change_script {{
          command       = "/bin/sh"
          args          = ["-c", "{script}", "${{NOMAD_TASK_NAME}}"]
          timeout       = "10s"
          fail_on_error = {fail_on_error}
        }}
      }}"#
        )
    };
    let task = |name: &str, template: String| {
        format!(
            r#"
  group "{name}" {{
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "{name}" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
{template}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}"#
        )
    };
    let ok = task("ok", template(&format!("echo \\\"$0 $NOMAD_ALLOC_ID $(cat v.conf)\\\" >> {out}/reloads"), false));
    let strict = task("strict", template("echo nope >&2; exit 3", true));
    format!("job \"reloader\" {{{ok}{strict}\n}}\n")
}

/// The task `name` of the job's first allocation of group `name`.
async fn task_state(cluster: &Cluster, name: &str) -> Option<(String, drover_types::TaskState)> {
    let allocs = cluster.client.job_allocations("reloader").await.ok()?;
    let alloc = allocs.into_iter().filter(|alloc| alloc.group == name).min_by_key(|alloc| alloc.create_time)?;
    let state = alloc.task_states.get(name)?.clone();
    Some((alloc.id.to_string(), state))
}

/// `change_mode = "script"`: a re-render runs the script in the task (its
/// environment and directory, `${…}` resolved in its arguments), records
/// a `Task hook message` event and restarts nothing; a failing script
/// with `fail_on_error` kills its task, failed, with a `Task hook failed`
/// event saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_script_runs_in_the_task_and_one_that_fails_kills_it_when_told() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let out = cluster.dir.path().join("reloader-out");
    std::fs::create_dir_all(&out).unwrap();
    let put = |version: u32| {
        let put = cluster.cli(&["var", "put", "nomad/jobs/reloader", &format!("version={version}")]);
        assert!(put.status.success(), "{}", output_text(&put));
    };
    put(1);
    let output = cluster.run_job("reloader", &script_job(&out));
    assert!(output.status.success(), "{}", output_text(&output));
    cluster.wait_for_allocs("reloader", AllocClientStatus::Running, 2).await;
    let (alloc, before) = task_state(&cluster, "ok").await.unwrap();
    assert!(!out.join("reloads").exists(), "no script at the first render");

    put(2);
    let reloads = out.join("reloads");
    cluster.wait_for("the ok task's script", || async { !read(&reloads).is_empty() }).await;
    assert_eq!(read(&reloads), format!("ok {alloc} version=2\n"), "the task's env, directory and new file");
    cluster
        .wait_for("the strict task to be killed, failed", || async {
            task_state(&cluster, "strict").await.is_some_and(|(_, state)| state.failed)
        })
        .await;

    let (_, after) = task_state(&cluster, "ok").await.unwrap();
    assert_eq!((after.restarts, after.pid), (0, before.pid), "a script restarts nothing: {after:#?}");
    let ran = after.events.iter().find(|event| event.kind == drover_types::TaskEventKind::TaskHookMessage);
    assert!(ran.is_some_and(|event| event.message.contains("exit code 0")), "{:#?}", after.events);

    let (_, strict) = task_state(&cluster, "strict").await.unwrap();
    assert_eq!(strict.state, drover_types::TaskLifecycleState::Dead, "{strict:#?}");
    let failed = strict.events.iter().find(|event| event.kind == drover_types::TaskEventKind::TaskHookFailed);
    let message = failed.map(|event| event.message.clone()).unwrap_or_default();
    assert!(message.contains("exit code 3") && message.contains("nope"), "{:#?}", strict.events);
    assert!(
        strict.events.iter().any(|event| event.message.contains("Template script failed, task is being killed")),
        "{:#?}",
        strict.events
    );
    // Told in `drover alloc status` too.
    let allocs = cluster.client.job_allocations("reloader").await.unwrap();
    let strict_alloc = allocs.iter().find(|alloc| alloc.group == "strict").unwrap();
    let status = cluster.cli(&["alloc", "status", &strict_alloc.id.to_string()]);
    assert!(output_text(&status).contains("Task hook failed"), "{}", output_text(&status));
}
