//! Centralised logs, end to end: real agents follow files, task output and
//! syslog; real servers index and answer searches; processes are killed
//! with SIGKILL mid-stream.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover_client::Client;
use drover_golden::needs;
use drover_proto::api::{LogCountBy, LogPage, LogQuery, LogRecord};

use crate::harness::{Cluster, drover_binary, free_port};

fn query(text: &str) -> LogQuery {
    LogQuery { q: text.to_owned(), ..LogQuery::default() }
}

/// Every record matching `text`, following the cursor page by page.
async fn all_records(client: &Client, text: &str) -> Vec<LogRecord> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = client.search_logs(&query(text), &LogPage { limit: Some(700), cursor }).await.expect("search");
        records.extend(page.records);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return records,
        }
    }
}

async fn total(client: &Client, text: &str) -> u64 {
    client
        .search_logs(&query(text), &LogPage { limit: Some(0), cursor: None })
        .await
        .map_or(0, |page| page.total_matching)
}

/// The `n` of every `seq=n` in the records' messages, checking each is
/// there exactly once.
pub(crate) fn sequence_numbers(records: &[LogRecord]) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    for record in records {
        let number = record
            .message
            .split_whitespace()
            .find_map(|word| word.strip_prefix("seq="))
            .and_then(|number| number.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("a record without seq=: {record:?}"));
        assert!(seen.insert(number), "line seq={number} is in the results twice");
    }
    seen
}

/// An empty `applogs/app.log` in the cluster's directory, and the glob
/// that matches it.
fn app_log(cluster: &Cluster) -> (PathBuf, String) {
    let log_dir = cluster.dir.path().join("applogs");
    std::fs::create_dir_all(&log_dir).unwrap();
    let path = log_dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    (path, format!("{}/*.log", log_dir.display()))
}

/// Appends one line to a file.
fn append_line(path: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(file, "{line}").unwrap();
}

/// Appends numbered lines to a file from a thread, at `per_second`.
struct Writer {
    handle: std::thread::JoinHandle<()>,
}

impl Writer {
    fn start(
        path: PathBuf,
        tag: &'static str,
        range: std::ops::Range<u64>,
        per_second: u64,
        rotate: impl Fn(u64, &Path) -> bool + Send + 'static,
    ) -> Writer {
        let handle = std::thread::spawn(move || {
            let open = |path: &Path| std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            let mut file = open(&path);
            let pause = Duration::from_micros(1_000_000 / per_second);
            for number in range {
                if rotate(number, &path) {
                    file = open(&path);
                }
                writeln!(file, "{tag} seq={number} level=info some payload words here").unwrap();
                std::thread::sleep(pause);
            }
        });
        Writer { handle }
    }

    fn join(self) {
        self.handle.join().expect("the writer thread");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rotated_by_rename_and_by_copy_truncate_arrives_exactly_once() {
    let mut cluster = Cluster::start().await;
    let (path, glob) = app_log(&cluster);
    cluster.start_agent("n1", &["--log-file", &glob]).await;

    // 1..=1500 into app.log; at 600 it is renamed away (the writer keeps
    // writing to the renamed file until 700, then reopens app.log); at
    // 1100 it is copied and truncated in place.
    let (reached_copy, copy_reached) = std::sync::mpsc::channel::<()>();
    let (caught_up, wait_for_catch_up) = std::sync::mpsc::channel::<()>();
    let writer = Writer::start(path.clone(), "rotationtest", 1..1501, 500, move |number, path| match number {
        600 => {
            std::fs::rename(path, path.with_extension("log.1")).unwrap();
            false
        }
        700 => true,
        1100 => {
            // copytruncate loses what is written between the copy and the
            // truncation for any reader; like logrotate users, we let the
            // follower catch up first (the test says when it has).
            reached_copy.send(()).unwrap();
            wait_for_catch_up.recv_timeout(Duration::from_secs(60)).expect("the follower to catch up");
            std::fs::copy(path, path.with_extension("log.2")).unwrap();
            std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
            true
        }
        _ => false,
    });
    let client = cluster.client.clone();
    tokio::task::spawn_blocking(move || copy_reached.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the writer to reach line 1100");
    cluster.wait_for("1,099 lines to be searchable", || async { total(&client, "rotationtest").await >= 1099 }).await;
    caught_up.send(()).unwrap();
    tokio::task::spawn_blocking(move || writer.join()).await.unwrap();

    // A last line after every rotation: once it is searchable, the follower
    // has read everything before it, duplicates included.
    append_line(&path, "rotationdone sentinel");
    cluster.wait_for("1,500 lines to be searchable", || async { total(&client, "rotationtest").await >= 1500 }).await;
    cluster
        .wait_for("the sentinel line to be searchable", || async { total(&client, "rotationdone").await == 1 })
        .await;
    let records = all_records(&client, "rotationtest").await;
    let numbers = sequence_numbers(&records);
    assert_eq!(numbers, (1..1501).collect::<BTreeSet<u64>>(), "every line exactly once");
    assert_eq!(total(&client, "rotationtest").await, 1500);
    let record = &records[0];
    assert_eq!((record.node.as_str(), record.source.as_str()), ("n1", "file"));
    assert_eq!(record.fields.get("level").map(String::as_str), Some("info"));
    // Newest first.
    assert!(records.windows(2).all(|pair| pair[0].timestamp >= pair[1].timestamp));
}

const ECHO_JOB: &str = r#"
job "echoer" {
  type = "batch"
  group "g" {
    task "say" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "for i in 1 2 3 4 5; do echo \"hello-from-task line=$i\"; done; echo 'ERROR disk on fire' >&2"]
      }
    }
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_output_is_searchable_by_job_and_counted_and_drawn() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let output = cluster.run_job("echoer", ECHO_JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let client = cluster.client.clone();
    cluster.wait_for("the task's 6 lines", || async { total(&client, "job:echoer").await == 6 }).await;

    let records = all_records(&client, "hello AND job:echoer").await;
    assert_eq!(records.len(), 5);
    for record in &records {
        assert_eq!(record.task.as_deref(), Some("say"));
        assert_eq!(record.group.as_deref(), Some("g"));
        assert_eq!(record.source, "task");
        assert_eq!(record.stream, "stdout");
        assert!(record.alloc.is_some());
    }
    let errors = all_records(&client, "level:error").await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].stream, "stderr");

    // The CLI: search, --by, --histogram, --json, and a bad query.
    let search = cluster.cli(&["logs", "search", "hello", "--job", "echoer", "--since", "1h"]);
    let stdout = String::from_utf8_lossy(&search.stdout);
    assert!(search.status.success(), "{}", String::from_utf8_lossy(&search.stderr));
    assert_eq!(stdout.lines().filter(|line| line.contains("hello-from-task")).count(), 5, "{stdout}");
    assert!(stdout.contains("echoer/say"), "{stdout}");

    let by_level = cluster.cli(&["logs", "search", "job:echoer", "--by", "level", "--json"]);
    let counts: drover_proto::api::LogCountResponse = serde_json::from_slice(&by_level.stdout).expect("count JSON");
    assert_eq!(counts.counts.iter().find(|count| count.value == "error").map(|count| count.count), Some(1));

    let histogram = cluster.cli(&["logs", "search", "job:echoer", "--histogram", "1m", "--since", "10m"]);
    let drawn = String::from_utf8_lossy(&histogram.stdout);
    assert!(histogram.status.success(), "{}", String::from_utf8_lossy(&histogram.stderr));
    assert!(drawn.contains('█') && drawn.lines().count() >= 10, "{drawn}");

    let bad = cluster.cli(&["logs", "search", "(hello"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("column") && stderr.contains("docs/logs.md"), "{stderr}");
    let bad_time = cluster.cli(&["logs", "search", "hello", "--since", "last tuesday"]);
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("RFC 3339"));

    let by_node = client.count_logs(&query("job:echoer"), &LogCountBy { by: "node".to_owned(), top: None }).await;
    assert_eq!(by_node.unwrap().counts[0].count, 6);
}

/// A task whose last words have no newline (it ends with `printf "fatal:
/// …"`): the line is indexed once the output stops growing, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_without_a_newline_is_indexed() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let job = abrupt_batch_job(
        "echo 2019-03-01T10:00:00Z starting from a clock three years behind; printf 'fatal: disk quota exceeded on /scratch'; exit 3",
    );
    let output = cluster.run_job("abrupt", &job);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let client = cluster.client.clone();
    cluster.wait_for("both lines of the task", || async { total(&client, "job:abrupt").await == 2 }).await;
    let records = all_records(&client, "quota AND job:abrupt").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message, "fatal: disk quota exceeded on /scratch");
    // A line that claims a time far from when it arrived is dated when it
    // arrived (a search of the last hour finds it); its claim is a field.
    let recent = cluster.cli(&["logs", "search", "behind", "--since", "1h", "--json"]);
    let text = String::from_utf8_lossy(&recent.stdout);
    assert!(recent.status.success() && text.contains("three years behind"), "{text}");
    let records = all_records(&client, "behind AND time_adjusted:true").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].fields.get("logged_at").map(String::as_str), Some("2019-03-01T10:00:00.000Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_and_of_the_server_mid_stream_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start().await;
    let (path, glob) = app_log(&cluster);
    cluster.start_agent("n1", &["--log-file", &glob]).await;

    let writer = Writer::start(path.clone(), "crashtest", 1..3001, 400, |_, _| false);
    let client = cluster.client.clone();
    cluster.wait_for("some lines", || async { total(&client, "crashtest").await > 300 }).await;
    cluster.kill_agent("n1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.restart_agent("n1").await;
    cluster.wait_for("more lines", || async { total(&client, "crashtest").await > 1200 }).await;
    cluster.kill_server();
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.restart_server().await;
    tokio::task::spawn_blocking(move || writer.join()).await.unwrap();

    // A last line: once it is searchable, everything before it was shipped
    // and indexed, duplicates included.
    append_line(&path, "crashdone sentinel");
    cluster.wait_for("all 3,000 lines", || async { total(&client, "crashtest").await >= 3000 }).await;
    cluster.wait_for("the sentinel line to be searchable", || async { total(&client, "crashdone").await == 1 }).await;
    let numbers = sequence_numbers(&all_records(&client, "crashtest").await);
    assert_eq!(numbers, (1..3001).collect::<BTreeSet<u64>>(), "every line exactly once");
    assert_eq!(total(&client, "crashtest").await, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_from_logger_over_udp_and_tcp_is_found_on_agents_and_servers() {
    if !needs::are_met([needs::program("logger", "bsdutils")]) {
        return;
    }
    let server_port = free_port();
    let server_syslog = format!("127.0.0.1:{server_port}");
    let mut cluster = Cluster::start_servers_with(1, &["--syslog-bind", &server_syslog]).await;
    let agent_port = free_port();
    let agent_syslog = format!("127.0.0.1:{agent_port}");
    cluster.start_agent("n1", &["--syslog-bind", &agent_syslog]).await;

    let logger = |args: &[&str]| {
        let output = std::process::Command::new("logger").args(args).output().expect("run logger");
        assert!(output.status.success(), "logger {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let agent_port = agent_port.to_string();
    let server_port = server_port.to_string();
    logger(&[
        "-d",
        "-n",
        "127.0.0.1",
        "-P",
        &agent_port,
        "--rfc5424",
        "-t",
        "daq",
        "-p",
        "user.err",
        "marker-udp-5424",
    ]);
    logger(&["-T", "-n", "127.0.0.1", "-P", &agent_port, "--rfc3164", "-t", "daq", "marker-tcp-3164"]);
    logger(&["-d", "-n", "127.0.0.1", "-P", &server_port, "--rfc3164", "-t", "switch", "marker-to-server"]);

    let client = cluster.client.clone();
    for marker in ["marker-udp-5424", "marker-tcp-3164", "marker-to-server"] {
        cluster
            .wait_for(&format!("{marker} to be searchable"), || async {
                total(&client, &format!("\"{marker}\"")).await == 1
            })
            .await;
    }
    let udp = &all_records(&client, "\"marker-udp-5424\"").await[0];
    assert_eq!((udp.source.as_str(), udp.stream.as_str()), ("syslog", "daq"));
    assert_eq!(udp.level.as_deref(), Some("error"));
    let to_server = &all_records(&client, "\"marker-to-server\"").await[0];
    assert_eq!(to_server.stream, "switch");
    assert!(to_server.origin.starts_with("syslog@"), "{to_server:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_and_execs_reach_every_server_and_a_search_says_which_one_did_not_answer() {
    let mut cluster = Cluster::start_servers(3).await;
    let log_dir = cluster.dir.path().join("applogs");
    std::fs::create_dir_all(&log_dir).unwrap();
    let mut writers = Vec::new();
    for (index, name) in [(1, "left"), (2, "right")] {
        let path = log_dir.join(format!("{name}.log"));
        std::fs::write(&path, "").unwrap();
        let glob = path.display().to_string();
        cluster.start_agent_on(name, index, &["--log-file", &glob]).await;
        let first = index as u64 * 1000;
        writers.push(Writer::start(path, "fanout", first..first + 200, 1000, |_, _| false));
    }
    for writer in writers {
        tokio::task::spawn_blocking(move || writer.join()).await.unwrap();
    }
    // Asked through server 0, which has no agent: both others answer.
    let client = cluster.client_of(0);
    cluster.wait_for("400 lines from two servers", || async { total(&client, "fanout").await == 400 }).await;
    let records = all_records(&client, "fanout").await;
    assert_eq!(sequence_numbers(&records).len(), 400);
    let by_node = client.count_logs(&query("fanout"), &LogCountBy { by: "node".to_owned(), top: None }).await.unwrap();
    let nodes: Vec<(&str, u64)> = by_node.counts.iter().map(|count| (count.value.as_str(), count.count)).collect();
    assert_eq!(nodes, [("left", 200), ("right", 200)]);
    // `drover exec` through the server without agents reaches both.
    let output = Command::new(drover_binary())
        .args(["exec", "left,right", "--json", "--", "echo", "from", "afar"])
        .env("DROVER_ADDR", &cluster.addresses[0])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
    let answers: Vec<(&str, &str, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            (result["node"].as_str().unwrap(), result["status"].as_str().unwrap(), result["stdout"].as_str().unwrap())
        })
        .collect();
    assert_eq!(answers, [("left", "success", "from afar\n"), ("right", "success", "from afar\n")]);

    cluster.kill_server_at(2);
    let page = client.search_logs(&query("fanout"), &LogPage { limit: Some(1000), cursor: None }).await.unwrap();
    // Server 2's lines come from the copies another server keeps (log replication).
    assert_eq!(sequence_numbers(&page.records).len(), 400, "every line, once");
    assert_eq!(page.unreachable, vec![cluster.addresses[2].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_the_oldest_lines_and_counts_them_in_node_status_and_metrics() {
    let mut cluster = Cluster::start().await;
    let (path, glob) = app_log(&cluster);
    cluster.start_agent("n1", &["--log-file", &glob, "--log-spool-mb", "1"]).await;

    // The server is away while 4 MB of lines are written: four times the spool.
    cluster.kill_server();
    {
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        for number in 1..=40_000u64 {
            writeln!(file, "spooltest seq={number} {}", "x".repeat(80)).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart_server().await;

    let client = cluster.client.clone();
    cluster
        .wait_for("the dropped lines to be reported", || async {
            client.node("n1").await.is_ok_and(|status| status.node.log_dropped_lines > 0)
        })
        .await;
    cluster.wait_for("the newest line", || async { total(&client, "spooltest AND seq:40000").await == 1 }).await;
    let dropped = client.node("n1").await.unwrap().node.log_dropped_lines;
    let kept = total(&client, "spooltest").await;
    assert!(kept < 40_000 && kept > 1_000, "kept {kept}");
    assert!(dropped >= 40_000 - kept, "dropped {dropped}, kept {kept}");
    // The oldest were dropped, the newest kept.
    assert_eq!(total(&client, "spooltest AND seq:1").await, 0);

    let status = cluster.cli(&["node", "status", "n1"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("Log lines dropped = {dropped}")), "{text}");
    let metrics =
        reqwest::get(format!("http://{}/v1/metrics", cluster.addresses[0])).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with("drover_node_log_dropped_lines_total{node=\"n1\"")
            && line.ends_with(&format!(" {dropped}"))),
        "{metrics}"
    );
}

/// The records matching `text` dated within the last minute, as
/// `drover logs search … --since 1m` finds them.
async fn found_in_the_last_minute(client: &Client, text: &str) -> Vec<LogRecord> {
    let query = LogQuery { q: text.to_owned(), since: Some("1m".to_owned()), ..LogQuery::default() };
    client
        .search_logs(&query, &LogPage { limit: Some(100), cursor: None })
        .await
        .map_or(Vec::new(), |page| page.records)
}

/// Issue 16: every line arrives whole and is dated so that `--since 1m`
/// finds it right after it was written — a task's last output without a
/// newline, a file truncated mid-line, a 1 MB line, a zone-less timestamp
/// from an agent in Tokyo, a line claiming a time a day away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_whole_and_is_found_in_the_last_minute() {
    let mut cluster = Cluster::start().await;
    let (app, glob) = app_log(&cluster);
    let truncated = app.with_file_name("truncated.log");
    std::fs::write(&truncated, "").unwrap();
    // The agent runs in Tokyo (UTC+9, no daylight saving time).
    let data_dir = cluster.dir.path().join("agents").join("tokyo");
    let mut command = Command::new(drover_binary());
    command
        .args(["agent", "--servers", &cluster.address, "--data-dir"])
        .arg(&data_dir)
        .args(["--name", "tokyo", "--log-file", &glob])
        .env("TZ", "Asia/Tokyo");
    let log = cluster.dir.path().join("agent-tokyo.log");
    cluster.agents.push(crate::harness::Process::spawn_for_test("agent tokyo", &mut command, log));
    let client = cluster.client.clone();
    cluster
        .wait_for("the Tokyo agent to register", || async {
            client
                .nodes()
                .await
                .is_ok_and(|nodes| nodes.iter().any(|node| node.name == "tokyo" && node.status == "ready"))
        })
        .await;
    let node = client.node("tokyo").await.expect("node status").node;
    assert_eq!(node.attributes.get("time.zone").map(String::as_str), Some("Asia/Tokyo"));
    assert_eq!(node.attributes.get("time.utc_offset").map(String::as_str), Some("+09:00"));

    // A task whose last output has no newline: indexed as soon as it exited.
    let job = abrupt_batch_job("echo starting; printf 'fatal: xylophonequota'; exit 3");
    let output = cluster.run_job("abrupt", &job);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // A zone-less timestamp, Tokyo's wall clock now: read in Tokyo, it is now.
    let tokyo_now = chrono::Utc::now().naive_utc() + chrono::TimeDelta::hours(9);
    append_line(&app, &format!("{} WARN zonelessmarker from a Tokyo daemon", tokyo_now.format("%Y-%m-%d %H:%M:%S")));
    // A line that claims a time a day ago.
    let day_ago = chrono::Utc::now() - chrono::TimeDelta::days(1);
    let claimed = day_ago.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    append_line(&app, &format!("{claimed} ERROR dayawaymarker replayed"));
    // A line of 1 MB.
    let filler = "lorem ipsum ".repeat(1_000_000 / 12);
    append_line(&app, &format!("megalinestart {filler} megalineend"));
    // A file truncated (copy-truncate) while its last line has no newline.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&truncated)
        .unwrap()
        .write_all(b"beforetrunc\nhalflinetruncmarker")
        .unwrap();
    cluster
        .wait_for("the line before the truncation", || async {
            !found_in_the_last_minute(&client, "beforetrunc").await.is_empty()
        })
        .await;
    std::fs::OpenOptions::new().write(true).open(&truncated).unwrap().set_len(0).unwrap();
    append_line(&truncated, "aftertrunc");

    for word in [
        "xylophonequota",
        "zonelessmarker",
        "dayawaymarker",
        "megalinestart",
        "megalineend",
        "halflinetruncmarker",
        "aftertrunc",
    ] {
        cluster
            .wait_for(&format!("{word} within --since 1m"), || async {
                !found_in_the_last_minute(&client, word).await.is_empty()
            })
            .await;
    }
    let fatal = found_in_the_last_minute(&client, "xylophonequota").await;
    assert_eq!(fatal[0].message, "fatal: xylophonequota");
    let half = found_in_the_last_minute(&client, "halflinetruncmarker").await;
    assert_eq!(half[0].message, "halflinetruncmarker");

    // The zone-less time was read in Tokyo: plausible, kept as the event time.
    let zoneless = &found_in_the_last_minute(&client, "zonelessmarker").await[0];
    assert!(!zoneless.fields.contains_key("time_adjusted"), "{zoneless:?}");
    assert!(zoneless.timestamp.abs_diff(zoneless.received) < 60_000_000_000, "{zoneless:?}");
    assert_eq!(
        zoneless.timestamp % 1_000_000_000,
        0,
        "the event time is the claimed one (whole seconds): {zoneless:?}"
    );

    // The day-old claim is kept as a field; the record is dated on arrival.
    let replayed = &found_in_the_last_minute(&client, "dayawaymarker").await[0];
    assert_eq!(replayed.timestamp, replayed.received);
    assert_eq!(replayed.fields.get("time_adjusted").map(String::as_str), Some("true"));
    let logged_at = replayed.fields.get("logged_at").expect("logged_at");
    assert!(logged_at.starts_with(&claimed[..19]), "{logged_at} vs {claimed}");

    // The 1 MB line: 16 marked pieces that put together are the line.
    let mut pieces = all_records(&client, r#"source:file AND ("line continues" OR "line continued")"#).await;
    assert_eq!(pieces.len(), 16, "{:?}", pieces.iter().map(|piece| piece.message.len()).collect::<Vec<_>>());
    pieces.sort_by_key(|piece| piece.seq);
    let mut joined = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        let text = piece.message.as_str();
        assert_eq!(text.starts_with("[drover: line continued] "), index > 0, "piece {index}");
        assert_eq!(text.ends_with(" [drover: line continues]"), index < 15, "piece {index}");
        let text = text.strip_prefix("[drover: line continued] ").unwrap_or(text);
        joined.push_str(text.strip_suffix(" [drover: line continues]").unwrap_or(text));
    }
    assert!(joined == format!("megalinestart {filler} megalineend"), "the pieces put together are the line");
}

/// Issue 16: `drover logs export` a window, `drover logs import` it into a
/// fresh cluster: the same search gives the same counts; importing twice
/// adds nothing; bad input is refused with its line, and nothing of that
/// batch is imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imported_into_a_fresh_cluster_answers_the_same_and_twice_adds_nothing() {
    let mut source = Cluster::start().await;
    let (app, glob) = app_log(&source);
    source.start_agent("n1", &["--log-file", &glob]).await;
    for number in 0..300 {
        let level = if number % 3 == 0 { "error" } else { "info" };
        append_line(&app, &format!("exported seq={number} level={level} payload"));
    }
    let client = source.client.clone();
    source.wait_for("the 300 lines", || async { total(&client, "exported").await == 300 }).await;

    let file = source.dir.path().join("backup.ndjson.zst");
    let exported = Command::new(drover_binary())
        .args(["logs", "export", "--since", "1h", "--query", "exported"])
        .env("DROVER_ADDR", &source.address)
        .stdout(std::fs::File::create(&file).unwrap())
        .output()
        .unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    assert!(String::from_utf8_lossy(&exported.stderr).contains("300 lines exported"));

    let target = Cluster::start().await;
    let import = |extra: &[&str]| {
        Command::new(drover_binary())
            .args(["logs", "import"])
            .arg(&file)
            .args(extra)
            .env("DROVER_ADDR", &target.address)
            .output()
            .unwrap()
    };
    let first = import(&["--trust-timestamps"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("300 stored, 0 already held"), "{stderr}");
    let restored = target.client.clone();
    // (Audit events are log records too: the export itself is one.)
    for text in ["exported AND source:file", "exported AND level:error AND source:file", "exported AND payload"] {
        assert_eq!(total(&restored, text).await, total(&client, text).await, "{text}");
    }
    let by_level = |client: Client| async move {
        let query =
            LogQuery { q: "exported AND source:file".to_owned(), since: Some("1h".to_owned()), ..LogQuery::default() };
        client.count_logs(&query, &LogCountBy { by: "level".to_owned(), top: None }).await.unwrap().counts
    };
    assert_eq!(by_level(restored.clone()).await, by_level(client.clone()).await);
    let original: BTreeSet<(String, u64, i64)> = all_records(&client, "exported AND source:file")
        .await
        .into_iter()
        .map(|record| (record.origin, record.seq, record.timestamp))
        .collect();
    let copied: BTreeSet<(String, u64, i64)> = all_records(&restored, "exported AND source:file")
        .await
        .into_iter()
        .map(|record| (record.origin, record.seq, record.timestamp))
        .collect();
    let differences: Vec<_> = copied.symmetric_difference(&original).collect();
    assert!(
        differences.is_empty(),
        "{} restored, {} original; differing: {:?}",
        copied.len(),
        original.len(),
        &differences[..differences.len().min(6)]
    );

    // Twice, with or without trusting the times: nothing new.
    for extra in [&["--trust-timestamps"][..], &[][..]] {
        let again = import(extra);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success() && stderr.contains("0 stored, 300 already held"), "{stderr}");
    }
    assert_eq!(total(&restored, "exported AND source:file").await, 300);

    // Not zstd.
    let plain = target.dir.path().join("plain.ndjson");
    std::fs::write(&plain, "{}\n").unwrap();
    let refused = Command::new(drover_binary())
        .args(["logs", "import"])
        .arg(&plain)
        .env("DROVER_ADDR", &target.address)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("not zstd-compressed"), "{stderr}");

    // A malformed line 3: nothing of its batch is imported.
    let mut records = all_records(&client, "exported AND source:file").await;
    records.truncate(2);
    let mut text = String::new();
    for record in &mut records {
        record.origin = "elsewhere".to_owned();
        text.push_str(&serde_json::to_string(record).unwrap());
        text.push('\n');
    }
    text.push_str("{\"origin\": \"elsewhere\", \"seq\": \n");
    let broken = target.dir.path().join("broken.ndjson.zst");
    std::fs::write(&broken, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
    let refused = Command::new(drover_binary())
        .args(["logs", "import", "--trust-timestamps"])
        .arg(&broken)
        .env("DROVER_ADDR", &target.address)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("broken.ndjson.zst:3: not a log record"), "{stderr}");
    assert_eq!(total(&restored, "origin:elsewhere").await, 0);
}

/// The batch job `abrupt`: one raw_exec task running `script` in `sh -c`
/// (a script without double quotes or backslashes).
fn abrupt_batch_job(script: &str) -> String {
    format!(
        r#"
job "abrupt" {{
  type = "batch"
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "{script}"]
      }}
    }}
  }}
}}
"#
    )
}
