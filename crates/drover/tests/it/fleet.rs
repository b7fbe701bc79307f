//! The fleet: `--filter` over real agents.

use drover_golden::needs;

use crate::harness::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_list_filters_by_hostgroup_environment_and_meta() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("batch01", &["--hostgroup", "bi/batch/gridworker", "--environment", "qa"]).await;
    cluster.start_agent("batch02", &["--hostgroup", "bi/batch/gridworker", "--environment", "production"]).await;
    cluster.start_agent("db01", &["--hostgroup", "db/postgres", "--environment", "qa", "--meta", "rack=r12"]).await;

    let names = |filter: &str| {
        let output = cluster.cli(&["node", "list", "--json", "--filter", filter]);
        assert!(output.status.success(), "{filter}: {}", String::from_utf8_lossy(&output.stderr));
        let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut names: Vec<String> =
            nodes.as_array().unwrap().iter().map(|node| node["name"].as_str().unwrap().to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(names(r#"hostgroup =~ "bi/batch/**" and environment == "qa""#), ["batch01"]);
    assert_eq!(names(r#"environment == "qa""#), ["batch01", "db01"]);
    assert_eq!(names(r#"meta.rack == "r12" and not protected"#), ["db01"]);
    assert_eq!(names(r#"status == "ready" and name in ["batch0*"]"#), ["batch01", "batch02"]);

    let output = cluster.cli(&["node", "list", "--filter", r#"hostgrup == "x""#]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r#"did you mean "hostgroup""#), "{stderr}");
    assert!(stderr.contains("column 1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_every_node_and_node_status_shows_usage() {
    let prometheus = "prometheus";
    if !needs::are_met([needs::program(prometheus, "prometheus")]) {
        return;
    }
    let mut cluster = Cluster::start().await;
    let nodes = ["gw01", "gw02", "db01", "db02"];
    for name in nodes {
        let hostgroup = if name.starts_with("gw") { "bi/batch/gridworker" } else { "db/postgres" };
        cluster.start_agent(name, &["--hostgroup", hostgroup, "--environment", "qa"]).await;
    }
    let client = cluster.client.clone();
    cluster
        .wait_for("every node's first sample", || async {
            let mut all = true;
            for name in nodes {
                all &= client.node(name).await.is_ok_and(|status| status.usage.is_some());
            }
            all
        })
        .await;

    let status = cluster.cli(&["node", "status", "gw01"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("Usage (measured") && text.contains("/tmp"), "{text}");
    // The last day as sparklines (issue 18): this minute is the last column.
    assert!(text.contains("Usage, last 24 h (a column per 30 minutes"), "{text}");
    let cpu = text.lines().find(|line| line.starts_with("  CPU busy ") && line.contains("%, max ")).unwrap_or_default();
    let last_column = cpu.chars().nth(2 + 13 + 47);
    assert!(last_column.is_some_and(|column| !column.is_whitespace()), "the last column is now: {cpu:?}\n{text}");

    let top = cluster.cli(&["node", "top", "--sort", "mem", "--filter", r#"hostgroup =~ "bi/**""#, "--json"]);
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    let entries: Vec<drover_proto::api::NodeUsageEntry> = serde_json::from_slice(&top.stdout).unwrap();
    let mut names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["gw01", "gw02"]);
    assert!(entries.windows(2).all(|pair| pair[0].usage.memory_used >= pair[1].usage.memory_used));
    let bad_sort = cluster.cli(&["node", "top", "--sort", "colour"]);
    assert!(!bad_sort.status.success());

    // The recipe of docs/metrics.md: the whole fleet from one server,
    // drover's `job` label kept, `instance` = the node.
    let scrape = crate::harness::fleet_scrape_config(&cluster.addresses[0]);
    let prometheus = crate::harness::Prometheus::start(prometheus, cluster.dir.path(), &scrape);
    let query = |promql: &'static str| prometheus.query(promql);
    cluster
        .wait_for("Prometheus to have every node's CPU rate", || async {
            let promql =
                r#"sum by (node, hostgroup, environment, instance) (rate(node_cpu_seconds_total{mode!="idle"}[5s]))"#;
            query(promql).await.is_some_and(|series| series.len() == nodes.len())
        })
        .await;
    let series = query("node_load1").await.unwrap();
    let mut seen: Vec<(String, String, String)> = series
        .iter()
        .map(|one| {
            let labels = &one["metric"];
            let label = |name: &str| labels[name].as_str().unwrap_or_default().to_owned();
            assert_eq!(label("instance"), label("node"), "metric_relabel_configs made the node the instance");
            (label("node"), label("hostgroup"), label("environment"))
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("db01".into(), "db/postgres".into(), "qa".into()),
            ("db02".into(), "db/postgres".into(), "qa".into()),
            ("gw01".into(), "bi/batch/gridworker".into(), "qa".into()),
            ("gw02".into(), "bi/batch/gridworker".into(), "qa".into()),
        ]
    );
    // node_exporter's names and labels, as its dashboards query them.
    let tmp = query(r#"node_filesystem_avail_bytes{mountpoint="/tmp",fstype!=""} / node_filesystem_size_bytes"#)
        .await
        .unwrap();
    assert_eq!(tmp.len(), nodes.len(), "{tmp:?}");
    let by_group =
        query("count by (hostgroup) (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)").await.unwrap();
    assert_eq!(by_group.len(), 2, "{by_group:?}");
    let received = query("sum by (node) (node_network_receive_bytes_total)").await.unwrap();
    assert_eq!(received.len(), nodes.len(), "{received:?}");
    let loads = query("node_load15 >= 0").await.unwrap();
    assert_eq!(loads.len(), nodes.len(), "{loads:?}");
    // Every known node is up, once, whatever server its agent uses.
    let up = query("drover_node_up == 1").await.unwrap();
    assert_eq!(up.len(), nodes.len(), "{up:?}");
    let ready = query(r#"sum(drover_node_status{status="ready"})"#).await.unwrap();
    assert_eq!(ready[0]["value"][1], nodes.len().to_string(), "{ready:?}");
}
