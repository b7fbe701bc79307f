//! Log replication (docs/logs.md, "Replication"): every line an agent was
//! told is stored survives the loss of the server it sent it to — killed
//! with SIGKILL and its data directory deleted — and searches and counts
//! see each line once, with every server up and with one gone.

use std::collections::BTreeSet;

use drover_client::Client;
use drover_proto::api::{LogCountBy, LogInterval, LogPage, LogQuery, LogRecord, LogSearchResponse};

use crate::harness::{Cluster, drover_binary};

/// Lines the task writes.
const NUM_LINES: u64 = 5000;

const NUMBERED_JOB: &str = r#"
job "numbered" {
  type = "batch"
  group "g" {
    task "count" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "seq -f 'replicated seq=%g level=info' 1 5000"]
      }
    }
  }
}
"#;

fn query(text: &str) -> LogQuery {
    LogQuery { q: text.to_owned(), ..LogQuery::default() }
}

/// Every record matching `text`, page by page.
async fn all_records(client: &Client, query: &LogQuery) -> Vec<LogRecord> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = client.search_logs(query, &LogPage { limit: Some(700), cursor }).await.expect("search");
        records.extend(page.records);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return records,
        }
    }
}

/// How many matching lines one server holds itself (originals and copies).
async fn held_by(cluster: &Cluster, index: usize) -> u64 {
    let local = LogQuery { local: true, ..query("replicated") };
    let page = cluster.client_of(index).search_logs(&local, &LogPage { limit: Some(0), cursor: None }).await;
    page.map_or(0, |page| page.total_matching)
}

/// The counts of `replicated` lines a server gives: the total of a search,
/// by node, and the sum of a histogram.
async fn counts(client: &Client) -> (u64, Vec<(String, u64)>, u64) {
    let search = client.search_logs(&query("replicated"), &LogPage { limit: Some(0), cursor: None }).await.unwrap();
    let by_node =
        client.count_logs(&query("replicated"), &LogCountBy { by: "node".to_owned(), top: None }).await.unwrap();
    let histogram = client
        .log_histogram(
            &LogQuery { since: Some("1h".to_owned()), ..query("replicated") },
            &LogInterval { interval: Some("1m".to_owned()) },
        )
        .await
        .unwrap();
    (
        search.total_matching,
        by_node.counts.into_iter().map(|count| (count.value, count.count)).collect(),
        histogram.buckets.iter().map(|bucket| bucket.count).sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_line_survives_the_loss_of_its_server_and_its_disk() {
    let mut cluster = Cluster::start_servers(3).await;
    // The agent knows every server and connects to the first.
    cluster.start_agent("n1", &[]).await;
    let connected = cluster.agents[0].output();
    assert!(
        connected.lines().any(|line| line.contains("connected to server") && line.contains(&cluster.addresses[0])),
        "the agent is connected to server 0:\n{connected}"
    );
    let output = cluster.run_job("numbered", NUMBERED_JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Every line is held by two servers: its agent's and one other.
    cluster
        .wait_for(&format!("{NUM_LINES} lines on two servers each"), || async {
            let mut held = 0;
            for index in 0..3 {
                held += held_by(&cluster, index).await;
            }
            held == 2 * NUM_LINES
        })
        .await;
    assert_eq!(held_by(&cluster, 0).await, NUM_LINES, "server 0 holds its agent's lines");

    // With every server up, each line is found and counted once.
    let everyone = cluster.client.clone();
    let found = crate::logs::sequence_numbers(&all_records(&everyone, &query("replicated")).await);
    assert_eq!(found, (1..=NUM_LINES).collect::<BTreeSet<u64>>());
    let (total, by_node, histogram) = counts(&everyone).await;
    assert_eq!(total, NUM_LINES, "the total of a search");
    assert_eq!(by_node, [("n1".to_owned(), NUM_LINES)], "counts by node");
    assert_eq!(histogram, NUM_LINES, "the histogram");

    // The server the agent sent its lines to is lost, and its disk with it.
    cluster.kill_server_at(0);
    std::fs::remove_dir_all(cluster.dir.path().join("server0")).expect("delete server 0's data directory");

    // At once, through the others: every line once, from the copies.
    let remaining = Client::new(&format!("{},{}", cluster.addresses[1], cluster.addresses[2]));
    let records = all_records(&remaining, &query("replicated")).await;
    assert_eq!(
        crate::logs::sequence_numbers(&records),
        (1..=NUM_LINES).collect::<BTreeSet<u64>>(),
        "every acknowledged line"
    );
    assert_eq!(records.len() as u64, NUM_LINES);
    let (total, by_node, histogram) = counts(&remaining).await;
    assert_eq!(total, NUM_LINES, "the total of a search without server 0");
    assert_eq!(by_node, [("n1".to_owned(), NUM_LINES)], "counts by node without server 0");
    assert_eq!(histogram, NUM_LINES, "the histogram without server 0");

    // And with the CLI, which says which server did not answer.
    let search = std::process::Command::new(drover_binary())
        .args(["logs", "search", "replicated", "--limit", "10000", "--json"])
        .env("DROVER_ADDR", format!("{},{}", cluster.addresses[1], cluster.addresses[2]))
        .output()
        .expect("run the drover CLI");
    assert!(search.status.success(), "{}", String::from_utf8_lossy(&search.stderr));
    let page: LogSearchResponse = serde_json::from_slice(&search.stdout).expect("search JSON");
    assert_eq!(page.records.len() as u64, NUM_LINES);
    assert_eq!(crate::logs::sequence_numbers(&page.records).len() as u64, NUM_LINES);
    assert_eq!(page.total_matching, NUM_LINES);
    assert_eq!(page.unreachable, vec![cluster.addresses[0].clone()]);
}
