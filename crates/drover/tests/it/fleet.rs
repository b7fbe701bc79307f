//! The fleet: `--filter` over real agents.

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
