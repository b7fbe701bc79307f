//! The job kinds beyond service and batch, end to end: a parameterized job
//! dispatched with meta and a payload file that its task reads (and a
//! dispatch without the required meta refused), a sysbatch job that runs
//! once on every node, and lifecycle hooks in order.

use drover_types::AllocClientStatus;

use crate::harness::{Cluster, output_text};

/// The child id in `drover job dispatch`'s first line:
/// `Dispatched job "build/dispatch-…" (…`.
fn dispatched_id(output: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout);
    let start = text.find('"').expect("a quoted job id") + 1;
    let length = text[start..].find('"').expect("a closing quote");
    text[start..start + length].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatched_job_reads_its_payload_and_meta_and_missing_meta_is_refused() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let out = cluster.dir.path().join("build-output.txt");
    let job = format!(
        r#"
job "build" {{
  type = "batch"
  parameterized {{
    payload       = "required"
    meta_required = ["commit"]
    meta_optional = ["branch"]
  }}
  group "build" {{
    task "build" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "cat ${{NOMAD_TASK_DIR}}/input/spec.json && (cat ${{NOMAD_TASK_DIR}}/input/spec.json; echo \" commit=${{NOMAD_META_commit}}\") > {out}"]
      }}
      dispatch_payload {{
        file = "input/spec.json"
      }}
      resources {{
        cpu    = 50
        memory = 16
      }}
    }}
  }}
}}
"#,
        out = out.display()
    );
    let registered = cluster.run_job("build", &job);
    assert!(registered.status.success(), "{}", output_text(&registered));
    // The parent is never placed.
    cluster.wait_until_evaluated("build").await;
    assert!(cluster.job_status("build").await.allocs.is_empty());

    let payload = cluster.dir.path().join("spec.json");
    std::fs::write(&payload, r#"{"target":"release"}"#).unwrap();
    let payload_arg = payload.to_str().unwrap();
    let refused = cluster.cli(&["job", "dispatch", "build", "-detach", payload_arg]);
    assert!(!refused.status.success(), "a dispatch without the required meta ran: {}", output_text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("job \"build\" requires the meta key commit: add -meta commit=…"),
        "{}",
        output_text(&refused)
    );

    let dispatched = cluster.cli(&["job", "dispatch", "build", "-meta", "commit=abc123", "-detach", payload_arg]);
    assert!(dispatched.status.success(), "{}", output_text(&dispatched));
    let child = dispatched_id(&dispatched);
    assert!(child.starts_with("build/dispatch-"), "{child}");
    cluster.wait_for_allocs(&child, AllocClientStatus::Complete, 1).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"target\":\"release\"} commit=abc123\n");
    let child_job = cluster.client.job(&child).await.unwrap();
    assert_eq!(child_job.parent_id.as_ref().map(|parent| parent.as_str()), Some("build"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sysbatch_job_runs_once_on_every_node_and_on_nodes_that_join() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    let out = cluster.dir.path().join("ran-on.txt");
    let job = format!(
        r#"
job "inventory" {{
  type = "sysbatch"
  group "collect" {{
    task "collect" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo $DROVER_NODE_NAME >> {out}"]
      }}
      resources {{
        cpu    = 50
        memory = 16
      }}
    }}
  }}
}}
"#,
        out = out.display()
    );
    let registered = cluster.run_job("inventory", &job);
    assert!(registered.status.success(), "{}", output_text(&registered));
    cluster.wait_for_allocs("inventory", AllocClientStatus::Complete, 2).await;

    cluster.start_agent("n3", &[]).await;
    let status = cluster.wait_for_allocs("inventory", AllocClientStatus::Complete, 3).await;
    assert_eq!(status.allocs.len(), 3, "completed runs were repeated: {:#?}", status.allocs);
    // The job is evaluated again after the last run (its status changes):
    // still nothing new.
    cluster.wait_until_evaluated("inventory").await;
    assert_eq!(cluster.job_status("inventory").await.allocs.len(), 3);
    let mut ran_on: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(str::to_owned).collect();
    ran_on.sort();
    assert_eq!(ran_on, ["n1", "n2", "n3"]);
}
