//! drover's own series on `/v1/metrics` (docs/metrics.md, "drover's own
//! metrics"), from a real server and agent: after a job, a command and a
//! few requests, the Raft, HTTP, scheduler, session, heartbeat, log ingest
//! and exec series have moved; a real Prometheus parses the text and
//! computes a rate and a quantile from them.

use drover_golden::needs;
use drover_types::AllocClientStatus;

use crate::harness::Cluster;

const JOB: &str = r#"
job "ticker" {
  type = "service"
  group "ticker" {
    task "ticker" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo ticker started; exec sleep 600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// The text of `GET /v1/metrics` of the server at `address` (per-server scope).
async fn scrape(address: &str) -> String {
    let response = reqwest::get(format!("http://{address}/v1/metrics")).await.expect("GET /v1/metrics");
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.expect("metrics text")
}

/// The value of the sample written exactly as `series` (name and labels), 0
/// when it is absent (a counter nothing has moved yet).
fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_series_move_with_its_work_and_prometheus_reads_them() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("m1", &[]).await;
    let output = cluster.run_job("ticker", JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for_allocs("ticker", AllocClientStatus::Running, 1).await;
    let exec = cluster.cli(&["exec", "m1", "--", "true"]);
    assert!(exec.status.success(), "{}", String::from_utf8_lossy(&exec.stderr));

    let address = cluster.addresses[0].clone();
    let job_route = r#"drover_http_requests_total{route="/v1/job/{job_id}",method="GET",status="200"}"#;
    let before = value(&scrape(&address).await, job_route);
    for _ in 0..3 {
        let response = reqwest::get(format!("http://{address}/v1/job/ticker")).await.unwrap();
        assert!(response.status().is_success());
    }
    let text = scrape(&address).await;
    assert_eq!(value(&text, job_route) - before, 3.0, "three GETs of one job, under its template\n{text}");
    assert!(!text.contains("/v1/job/ticker"), "a raw path became a label:\n{text}");
    assert!(value(&text, "drover_raft_commit_index") > 0.0, "{text}");
    assert!(value(&text, "drover_raft_applied_index") > 0.0, "{text}");
    assert_eq!(value(&text, "drover_raft_is_leader"), 1.0, "{text}");
    assert!(value(&text, "drover_raft_leader_changes_total") >= 1.0, "{text}");
    assert!(value(&text, "drover_scheduler_evaluations_total") >= 1.0, "{text}");
    assert!(value(&text, r#"drover_scheduler_plans_total{result="accepted"}"#) >= 1.0, "{text}");
    assert!(value(&text, "drover_scheduler_placements_total") >= 1.0, "{text}");
    assert!(value(&text, "drover_scheduler_evaluation_duration_seconds_count") >= 1.0, "{text}");
    assert_eq!(value(&text, "drover_agent_sessions"), 1.0, "{text}");
    assert_eq!(value(&text, r#"drover_exec_commands_total{status="success"}"#), 1.0, "{text}");

    // Heartbeats and the task's line arrive on their own schedule.
    cluster
        .wait_for("a heartbeat and the task's log line to be counted", || async {
            let text = scrape(&address).await;
            value(&text, "drover_agent_heartbeats_total") > 0.0
                && value(&text, "drover_log_ingested_lines_total") > 0.0
                && value(&text, "drover_log_ingested_bytes_total") > 0.0
                && value(&text, "drover_log_commit_duration_seconds_count") > 0.0
        })
        .await;

    // The agent's own series, with its node's labels, from its samples
    // (every 10 s): its cost, its one session, its acknowledged lines.
    let of_m1 = |text: &str, name: &str| -> Option<f64> {
        let prefix = format!("{name}{{node=\"m1\",");
        let line = text.lines().find(|line| line.starts_with(&prefix))?;
        line.rsplit(' ').next()?.parse().ok()
    };
    cluster
        .wait_for("the agent's own series with an acknowledged line", || async {
            of_m1(&scrape(&address).await, "drover_agent_log_lines_acknowledged_total").is_some_and(|lines| lines > 0.0)
        })
        .await;
    let text = scrape(&address).await;
    let figure = |name: &str| of_m1(&text, name).unwrap_or_else(|| panic!("no {name} of m1: {text}"));
    assert!(figure("drover_agent_cpu_seconds_total") > 0.0, "{text}");
    let resident = figure("drover_agent_resident_memory_bytes");
    assert!(resident > 1e6 && resident < 2e9, "{resident}: {text}");
    assert_eq!(figure("drover_agent_connections_total"), 1.0, "{text}");
    let started = figure("drover_agent_start_time_seconds");
    let now = drover_types::Timestamp::now().as_millis() as f64 / 1000.0;
    assert!(started > now - 600.0 && started <= now + 1.0, "started {started}, now {now}");
    assert!(figure("drover_agent_log_lines_pending") >= 0.0);

    let prometheus = "prometheus";
    if !needs::are_met([needs::program(prometheus, "prometheus")]) {
        return;
    }
    // The per-server scope: drover's own series are only there.
    let scrape = format!(
        "  - job_name: drover-servers\n    metrics_path: /v1/metrics\n    static_configs:\n      - targets: ['{address}']\n"
    );
    let prometheus = crate::harness::Prometheus::start(prometheus, cluster.dir.path(), &scrape);
    let query = |promql: &'static str| prometheus.query(promql);
    // Every scrape is a request: its own route's rate turns positive after two.
    cluster
        .wait_for("Prometheus to compute the rate of the scrapes", || async {
            let promql = r#"rate(drover_http_requests_total{route="/v1/metrics",method="GET",status="200"}[1m]) > 0"#;
            query(promql).await.is_some_and(|series| series.len() == 1)
        })
        .await;
    let quantile = query(
        r#"histogram_quantile(0.9, sum by (le) (rate(drover_http_request_duration_seconds_bucket{route="/v1/metrics"}[1m])))"#,
    )
    .await
    .unwrap();
    let seconds: f64 = quantile[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(seconds > 0.0 && seconds <= 10.0, "{quantile:?}");
    let leader = query("drover_raft_is_leader == 1").await.unwrap();
    assert_eq!(leader.len(), 1, "{leader:?}");
}
