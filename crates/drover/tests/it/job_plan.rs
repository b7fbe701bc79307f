//! `drover job plan` and `drover job scale` against a real server and
//! agent: plan's exit status is Nomad's (0 unchanged, 1 changes, 255
//! error) and it says "0 nodes match" when a constraint excludes every
//! node; scale registers a new version with the group's count changed and
//! refuses a count outside the group's `scaling` bounds.

use drover_types::AllocClientStatus;

use crate::harness::{Cluster, output_text};

/// A service job of `count` sleeping instances, bounded by `scaling`, with
/// `extra` inside the group (a constraint).
fn web_job(count: u32, extra: &str) -> String {
    format!(
        r#"
job "web" {{
  group "web" {{
    count = {count}
    scaling {{
      min = 1
      max = 3
    }}
    {extra}
    task "sleep" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = 50
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

fn code(output: &std::process::Output) -> Option<i32> {
    output.status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_exits_one_on_changes_and_names_a_constraint_that_matches_no_node() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let file = cluster.dir.path().join("web.nomad.hcl");
    let file_arg = file.to_str().unwrap();

    std::fs::write(&file, web_job(1, "")).unwrap();
    let new_job = cluster.cli(&["job", "plan", file_arg]);
    assert_eq!(code(&new_job), Some(1), "a new job is a change: {}", output_text(&new_job));
    assert!(
        String::from_utf8_lossy(&new_job.stdout).contains("All allocations can be placed"),
        "{}",
        output_text(&new_job)
    );

    let registered = cluster.run_job("web", &web_job(1, ""));
    assert!(registered.status.success(), "{}", output_text(&registered));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 1).await;
    let unchanged = cluster.cli(&["job", "plan", file_arg]);
    assert_eq!(code(&unchanged), Some(0), "{}", output_text(&unchanged));

    let nowhere = "constraint {\n      attribute = \"${node.hostgroup}\"\n      value     = \"nowhere\"\n    }";
    std::fs::write(&file, web_job(1, nowhere)).unwrap();
    let unplaceable = cluster.cli(&["job", "plan", file_arg]);
    let text = output_text(&unplaceable);
    assert_eq!(code(&unplaceable), Some(1), "{text}");
    assert!(text.contains("0 nodes match"), "{text}");
    assert!(text.contains("${node.hostgroup}"), "the failing constraint is named: {text}");
    assert!(!text.contains("All allocations can be placed"), "{text}");

    std::fs::write(&file, "job \"web\" {\n  group \"web\" {\n    count = \"many\"\n  }\n}\n").unwrap();
    let invalid = cluster.cli(&["job", "plan", file_arg]);
    assert_eq!(code(&invalid), Some(255), "an error is not a change: {}", output_text(&invalid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_registers_a_new_count_within_the_scaling_bounds() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let registered = cluster.run_job("web", &web_job(1, ""));
    assert!(registered.status.success(), "{}", output_text(&registered));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 1).await;
    let before = cluster.client.job("web").await.unwrap().version;

    let scaled = cluster.cli(&["job", "scale", "web", "web", "3", "--timeout", "60s"]);
    assert!(scaled.status.success(), "{}", output_text(&scaled));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 3).await;
    let job = cluster.client.job("web").await.unwrap();
    assert_eq!(job.version, before + 1);
    assert_eq!(job.groups[0].count, 3);

    let beyond = cluster.cli(&["job", "scale", "web", "web", "4"]);
    let text = output_text(&beyond);
    assert!(!beyond.status.success(), "a count above max was accepted: {text}");
    assert!(text.contains("its scaling block allows 1 to 3"), "{text}");
    assert_eq!(cluster.client.job("web").await.unwrap().version, before + 1, "a refused scale registered a version");

    let unknown = cluster.cli(&["job", "scale", "web", "db", "2"]);
    assert!(!unknown.status.success(), "{}", output_text(&unknown));
    assert!(
        output_text(&unknown).contains("group \"web/db\" not found; job \"web\" has the groups web"),
        "{}",
        output_text(&unknown)
    );

    let client = cluster.client.clone();
    cluster
        .wait_for("the scale to be audited as job.scale", || {
            let client = client.clone();
            async move {
                client.audit(&Default::default()).await.is_ok_and(|events| {
                    events.iter().any(|event| event.action == "job.scale" && event.target.contains("web"))
                })
            }
        })
        .await;
}
