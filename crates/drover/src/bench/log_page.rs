//! `drover bench log-page`: how soon the dashboard's log page shows its
//! first results, side by side with `drover logs search` for the same
//! query, in one run against one server.
//!
//! The server (its own process, insecure) is given the loghub samples
//! (`--loghub DIR`, every `*.log` in it, replayed to `--lines` lines over
//! 50 nodes) through `POST /v1/logs/import`. Then, per query, each round
//! times
//!
//! - **the CLI**: `drover logs search QUERY --since 1h` as a person runs
//!   it, a new process (this binary) from its start until it exits, its
//!   100 lines printed to a pipe that is read to the end;
//! - **the page**: `GET /ui/logs?q=QUERY&since=1h` from the request to the
//!   last byte of the page (the page is rendered whole on the server, so
//!   its first lines show when it has arrived: its search, its histogram
//!   and the rendering of 100 lines);
//!
//! one after the other, alternating which goes first; and, for what the
//! page adds to the search, `GET /v1/logs/search` alone (the request the
//! CLI sends) from this process.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use drover_proto::api::LogImportRequest;

use super::fleet::{Fleet, percentiles};

/// Nodes the lines are spread over.
const NODES: usize = 50;

/// Records per import request.
const IMPORT_BATCH: usize = 5_000;

/// The queries: a rare word, a common one, a phrase, a field.
const QUERIES: [(&str, &str); 4] = [
    ("rare word", "cryptographic"),
    ("common word", "connection"),
    ("phrase", "\"Failed password\""),
    ("field and word", "level:error AND node:node0007"),
];

#[derive(Debug, Serialize)]
struct Row {
    name: &'static str,
    query: &'static str,
    matching: u64,
    cli_p50_ms: f64,
    cli_p99_ms: f64,
    api_p50_ms: f64,
    page_p50_ms: f64,
    page_p99_ms: f64,
    page_bytes: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    hardware: String,
    lines: usize,
    rounds: usize,
    rows: Vec<Row>,
}

pub(crate) async fn run(loghub: PathBuf, lines: usize, rounds: usize, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(lines > 0, "--lines must be at least 1");
    let samples = read_loghub(&loghub)?;
    let fleet = Fleet::start_server().await?;
    import(&fleet, &samples, lines).await?;
    if !json {
        eprintln!("{lines} lines imported over {NODES} nodes");
    }
    let http = reqwest::Client::new();
    let binary = std::env::current_exe()?;
    let mut rows = Vec::new();
    for (name, query) in QUERIES {
        let log_query =
            drover_proto::api::LogQuery { q: query.to_owned(), since: Some("1h".to_owned()), ..Default::default() };
        let first_page = drover_proto::api::LogPage::default();
        let search = || fleet.client.search_logs(&log_query, &first_page);
        let matching = search().await?.total_matching;
        let url = format!("http://{}/ui/logs?q={}&since=1h", fleet.address, drover_proto::paths::encode(query));
        // One untimed round of each warms the caches and the connection.
        cli_once(&binary, &fleet.address, query)?;
        let mut page_bytes = page_once(&http, &url).await?.1;
        let (mut cli, mut page, mut api) =
            (Vec::with_capacity(rounds), Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for round in 0..rounds {
            let started = Instant::now();
            search().await?;
            api.push(started.elapsed());
            if round % 2 == 0 {
                cli.push(cli_once(&binary, &fleet.address, query)?);
                let (took, bytes) = page_once(&http, &url).await?;
                page.push(took);
                page_bytes = bytes;
            } else {
                page.push(page_once(&http, &url).await?.0);
                cli.push(cli_once(&binary, &fleet.address, query)?);
            }
        }
        let ((cli_p50, cli_p99), (page_p50, page_p99)) = (percentiles(&cli), percentiles(&page));
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        rows.push(Row {
            name,
            query,
            matching,
            cli_p50_ms: ms(cli_p50),
            cli_p99_ms: ms(cli_p99),
            api_p50_ms: ms(percentiles(&api).0),
            page_p50_ms: ms(page_p50),
            page_p99_ms: ms(page_p99),
            page_bytes,
        });
    }
    let report = Report { hardware: super::hardware(), lines, rounds, rows };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("hardware  {}", report.hardware);
    println!(
        "| query | matching | `drover logs search` p50 / p99 | log page p50 / p99 | page / CLI (p50) | `GET /v1/logs/search` p50 | page bytes |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &report.rows {
        println!(
            "| {} `{}` | {} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.2} | {:.1} ms | {} |",
            row.name,
            row.query,
            row.matching,
            row.cli_p50_ms,
            row.cli_p99_ms,
            row.page_p50_ms,
            row.page_p99_ms,
            row.page_p50_ms / row.cli_p50_ms.max(f64::MIN_POSITIVE),
            row.api_p50_ms,
            row.page_bytes
        );
    }
    for row in &report.rows {
        println!(
            "RESULT query={:?} cli_p50_ms={:.1} page_p50_ms={:.1} ratio={:.2}",
            row.query,
            row.cli_p50_ms,
            row.page_p50_ms,
            row.page_p50_ms / row.cli_p50_ms.max(f64::MIN_POSITIVE)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every line of every `*.log` file in `dir`, in name order.
fn read_loghub(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| anyhow::anyhow!("{}: {error}; give the loghub samples with --loghub DIR", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
        lines.extend(text.lines().filter(|line| !line.trim().is_empty()).map(str::to_owned));
    }
    anyhow::ensure!(!lines.is_empty(), "{}: no *.log file with lines", dir.display());
    Ok(lines)
}

/// `lines` records, the samples replayed in turn, node by node, received
/// now (so `--since 1h` holds them all).
async fn import(fleet: &Fleet, samples: &[String], lines: usize) -> anyhow::Result<()> {
    let now = drover_types::Timestamp::now().as_millis() * 1_000_000;
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    for index in 0..lines {
        let node = format!("node{:04}", index % NODES);
        let received = now - i64::try_from(lines - index).unwrap_or(0) * 1_000;
        let mut record = drover_logs::record::from_line(
            &format!("bench-{node}"),
            // Seqs start at 1, per origin.
            (index / NODES) as u64 + 1,
            &node,
            "file /var/log/bench.log",
            "stdout",
            &samples[index % samples.len()],
            received,
        );
        record.hostgroup = Some(format!("bench/{}", index % 5));
        batch.push(record);
        if batch.len() == IMPORT_BATCH || index + 1 == lines {
            let request = LogImportRequest { records: std::mem::take(&mut batch), trust_timestamps: false };
            fleet.client.import_logs(&request).await?;
        }
    }
    Ok(())
}

/// One `drover logs search QUERY --since 1h`, its output read to the end.
fn cli_once(binary: &Path, address: &str, query: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = std::process::Command::new(binary)
        .args(["logs", "search", query, "--since", "1h", "--address", address])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    let took = started.elapsed();
    anyhow::ensure!(output.status.success(), "drover logs search {query:?} failed: {}", output.status);
    Ok(took)
}

/// One log page, read to its last byte.
async fn page_once(http: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let response = http.get(url).send().await?;
    anyhow::ensure!(response.status().is_success(), "{url}: {}", response.status());
    let body = response.bytes().await?;
    Ok((started.elapsed(), body.len()))
}
