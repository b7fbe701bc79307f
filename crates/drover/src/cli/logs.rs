//! `drover logs search|tail|export|import`: the centralised log index of
//! every server; export and import move it to a zstd-compressed file of
//! newline-delimited records and back (a backup, a move to another
//! cluster).

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt;

use drover_client::Client;
use drover_proto::api::{LogCountBy, LogInterval, LogPage, LogQuery, LogRecord};

use super::ServerAddress;
use super::output::{print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum LogsCommand {
    /// Search every node's logs, newest first: `drover logs search '"Kernel panic"' --since 6h`.
    Search {
        /// The query: words, "phrases", field:value, field:prefix*, AND, OR,
        /// NOT, parentheses (see docs/logs.md). Empty: every line.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        scope: Scope,
        /// Lines per page.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after an earlier page (its printed cursor).
        #[arg(long)]
        cursor: Option<String>,
        /// Count matching lines by a field instead (node, job, level,
        /// source, or an extracted field).
        #[arg(long, value_name = "FIELD", conflicts_with_all = ["histogram", "cursor"])]
        by: Option<String>,
        /// With --by: how many values.
        #[arg(long, default_value_t = 10, requires = "by")]
        top: usize,
        /// Count matching lines over time instead, in buckets of INTERVAL
        /// (default: about 60 buckets over the range).
        #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "auto", conflicts_with = "cursor")]
        histogram: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// The newest matching lines; with -f, keep printing new ones.
    Tail {
        /// The query (as for search). Empty: every line.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        scope: Scope,
        /// Keep printing lines as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// How many of the newest lines to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Write every matching line, whole records, as zstd-compressed
    /// newline-delimited JSON to stdout:
    /// `drover logs export --since 24h > day.ndjson.zst`.
    Export {
        /// The query (as for search). Empty: every line.
        #[arg(long, short, default_value = "")]
        query: String,
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Store the lines of an export in this cluster: `drover logs import
    /// day.ndjson.zst`. A line already held (same origin and seq) is not
    /// stored again, so importing a file twice adds nothing.
    Import {
        /// A file written by `drover logs export`.
        file: std::path::PathBuf,
        /// Keep the times the records carry (restoring a backup, replaying
        /// old logs on purpose). Without it, a record whose time is further
        /// than the servers' --log-max-skew from now is dated now, its own
        /// time kept as logged_at (docs/logs.md, "Event time").
        #[arg(long)]
        trust_timestamps: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// Which lines, besides the query.
#[derive(Debug, Args)]
pub(crate) struct Scope {
    /// Only lines at or after: a duration back (6h), or a time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only lines before: a duration back, or a time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only nodes matching this node filter (see docs/nodes.md).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Only this node (repeatable).
    #[arg(long)]
    node: Vec<String>,
    /// Only this job's tasks.
    #[arg(long)]
    job: Option<String>,
    /// Only this level (error, warn, info, …).
    #[arg(long)]
    level: Option<String>,
    /// Only this source (task, file, journal, syslog, console).
    #[arg(long)]
    source: Option<String>,
}

impl Scope {
    fn query(&self, text: &str) -> LogQuery {
        let quoted = |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        let mut clauses = Vec::new();
        if !text.trim().is_empty() {
            clauses.push(format!("({text})"));
        }
        if !self.node.is_empty() {
            let nodes: Vec<String> = self.node.iter().map(|node| format!("node:{}", quoted(node))).collect();
            clauses.push(format!("({})", nodes.join(" OR ")));
        }
        for (field, value) in [("job", &self.job), ("level", &self.level), ("source", &self.source)] {
            if let Some(value) = value {
                clauses.push(format!("{field}:{}", quoted(value)));
            }
        }
        LogQuery {
            q: clauses.join(" AND "),
            since: self.since.clone(),
            until: self.until.clone(),
            filter: self.filter.clone(),
            local: false,
        }
    }
}

pub(crate) async fn run(command: LogsCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogsCommand::Search { query, scope, limit, cursor, by, top, histogram, json, server } => {
            let client = server.client()?;
            let query = scope.query(&query);
            if let Some(by) = by {
                return count(&client, &query, by, top, json).await;
            }
            if let Some(interval) = histogram {
                return draw_histogram(&client, &query, interval, json).await;
            }
            let page = client.search_logs(&query, &LogPage { limit: Some(limit), cursor }).await?;
            if json {
                print_json(&page)?;
            } else {
                for entry in &page.records {
                    print_entry(entry);
                }
                warn_missing(&page.unreachable, &page.damaged);
                eprintln!("{} of {} matching lines", page.records.len(), page.total_matching);
                if let Some(cursor) = &page.next_cursor {
                    eprintln!("more: add --cursor '{cursor}'");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LogsCommand::Tail { query, scope, follow, lines, json, server } => {
            tail(&server.client()?, &scope.query(&query), follow, lines, json).await
        }
        LogsCommand::Export { query, scope, server } => export(&server.client()?, &scope.query(&query)).await,
        LogsCommand::Import { file, trust_timestamps, server } => {
            import(&server.client()?, &file, trust_timestamps).await
        }
    }
}

/// The zstd level of exports: fast, and about a tenth of the JSON.
const EXPORT_ZSTD_LEVEL: i32 = 3;

async fn export(client: &Client, query: &LogQuery) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the export is compressed data: send it to a file, e.g. `drover logs export --since 24h > logs.ndjson.zst`"
        );
    }
    let (total, mut records) = client.export_logs(query).await?;
    let progress = progress_bar(total, "{bar:40} {pos}/{len} lines exported ({per_sec}, {eta} left)");
    let mut encoder =
        zstd::stream::write::Encoder::new(std::io::BufWriter::new(std::io::stdout().lock()), EXPORT_ZSTD_LEVEL)?;
    let mut num_written: u64 = 0;
    while let Some(record) = records.next().await {
        let record = record.map_err(|error| {
            anyhow::anyhow!("the export broke off after {num_written} lines, so the output is incomplete: {error}")
        })?;
        serde_json::to_writer(&mut encoder, &record)?;
        encoder.write_all(b"\n")?;
        num_written += 1;
        progress.inc(1);
    }
    encoder.finish()?.flush()?;
    progress.finish_and_clear();
    eprintln!("{num_written} lines exported");
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr when it is a terminal, else none.
fn progress_bar(length: u64, template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let progress = indicatif::ProgressBar::new(length);
    progress.set_style(
        indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress
}

/// Records per import request, at most.
const IMPORT_BATCH_RECORDS: usize = 5_000;
/// JSON bytes per import request, about (the API takes up to 16 MiB).
const IMPORT_BATCH_BYTES: usize = 4 * 1024 * 1024;

async fn import(client: &Client, path: &std::path::Path, trust_timestamps: bool) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, Read};
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|error| anyhow::anyhow!("cannot open {shown}: {error}"))?;
    let mut magic = [0u8; 4];
    let is_zstd = file.read_exact(&mut magic).is_ok() && magic == [0x28, 0xb5, 0x2f, 0xfd];
    if !is_zstd {
        anyhow::bail!(
            "{shown} is not zstd-compressed (it does not start with zstd's magic number): give a file written by \
             `drover logs export` (zstd-compressed newline-delimited JSON)"
        );
    }
    let file = std::fs::File::open(path).map_err(|error| anyhow::anyhow!("cannot open {shown}: {error}"))?;
    let file_len = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let progress = progress_bar(file_len, "{bar:40} {bytes}/{total_bytes} read ({eta} left)");
    let decoder = zstd::stream::read::Decoder::new(progress.wrap_read(file))?;
    let mut lines = std::io::BufReader::new(decoder);
    let mut batch = drover_proto::api::LogImportRequest { records: Vec::new(), trust_timestamps };
    let (mut batch_bytes, mut batch_first_line) = (0usize, 1u64);
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    let mut line_number = 0u64;
    let mut text = String::new();
    loop {
        text.clear();
        let read = lines.read_line(&mut text).map_err(|error| {
            anyhow::anyhow!(
                "{shown}: cannot read past line {line_number} ({error}): the file is damaged or cut short; \
                 lines before {batch_first_line} were imported, none after"
            )
        })?;
        let is_end = read == 0;
        if !is_end {
            line_number += 1;
            if text.trim().is_empty() {
                continue;
            }
            let record: LogRecord = serde_json::from_str(&text).map_err(|error| {
                anyhow::anyhow!(
                    "{shown}:{line_number}: not a log record ({error}); nothing of lines {batch_first_line}-{line_number} \
                     was imported{}",
                    if batch_first_line > 1 { format!(", lines before {batch_first_line} were") } else { String::new() }
                )
            })?;
            batch_bytes += text.len();
            batch.records.push(record);
        }
        let is_full = batch.records.len() >= IMPORT_BATCH_RECORDS || batch_bytes >= IMPORT_BATCH_BYTES;
        if (is_full || is_end) && !batch.records.is_empty() {
            let answer = client.import_logs(&batch).await.map_err(|error| {
                anyhow::anyhow!("{shown}: lines {batch_first_line}-{line_number} were not imported: {error}")
            })?;
            accepted += answer.accepted;
            duplicates += answer.duplicates;
            batch.records.clear();
            batch_bytes = 0;
            batch_first_line = line_number + 1;
        }
        if is_end {
            break;
        }
    }
    progress.finish_and_clear();
    eprintln!("{} lines read from {shown}: {accepted} stored, {duplicates} already held", accepted + duplicates);
    Ok(ExitCode::SUCCESS)
}

async fn count(client: &Client, query: &LogQuery, by: String, top: usize, json: bool) -> anyhow::Result<ExitCode> {
    let counts = client.count_logs(query, &LogCountBy { by, top: Some(top) }).await?;
    if json {
        print_json(&counts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let largest = counts.counts.first().map_or(1, |count| count.count.max(1));
    let mut rows = table(&[counts.by.as_str(), "Lines", ""]);
    for count in &counts.counts {
        rows.add_row(vec![count.value.clone(), count.count.to_string(), bar(count.count, largest, 40)]);
    }
    print_table(&rows);
    warn_missing(&counts.unreachable, &counts.damaged);
    Ok(ExitCode::SUCCESS)
}

async fn draw_histogram(client: &Client, query: &LogQuery, interval: String, json: bool) -> anyhow::Result<ExitCode> {
    let interval = (interval != "auto").then_some(interval);
    let histogram = client.log_histogram(query, &LogInterval { interval }).await?;
    if json {
        print_json(&histogram)?;
        return Ok(ExitCode::SUCCESS);
    }
    let largest = histogram.buckets.iter().map(|bucket| bucket.count).max().unwrap_or(0).max(1);
    let total: u64 = histogram.buckets.iter().map(|bucket| bucket.count).sum();
    for bucket in &histogram.buckets {
        println!("{}  {:>8}  {}", time_of(bucket.start), bucket.count, bar(bucket.count, largest, 50));
    }
    warn_missing(&histogram.unreachable, &histogram.damaged);
    eprintln!(
        "{total} matching lines in {} buckets of {}",
        histogram.buckets.len(),
        drover_types::DurationSpec(Duration::from_nanos(u64::try_from(histogram.interval_nanos).unwrap_or(0)))
    );
    Ok(ExitCode::SUCCESS)
}

async fn tail(client: &Client, query: &LogQuery, follow: bool, lines: usize, json: bool) -> anyhow::Result<ExitCode> {
    // Subscribe before reading the newest lines, so nothing falls between.
    let mut live = if follow { Some(client.tail_logs(query).await?) } else { None };
    let newest = client.search_logs(query, &LogPage { limit: Some(lines), cursor: None }).await?;
    let mut seen: HashSet<(String, u64)> = HashSet::new();
    for entry in newest.records.iter().rev() {
        seen.insert((entry.origin.clone(), entry.seq));
        emit(entry, json)?;
    }
    warn_missing(&newest.unreachable, &newest.damaged);
    let Some(stream) = live.as_mut() else { return Ok(ExitCode::SUCCESS) };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            next = stream.next() => match next {
                Some(Ok(entry)) => {
                    if !seen.remove(&(entry.origin.clone(), entry.seq)) {
                        emit(&entry, json)?;
                    }
                }
                Some(Err(error)) => anyhow::bail!("the live stream ended: {error}"),
                None => anyhow::bail!("the server ended the live stream"),
            },
        }
    }
}

fn emit(entry: &LogRecord, json: bool) -> anyhow::Result<()> {
    if json {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, entry)?;
        writeln!(stdout)?;
        stdout.flush()?;
    } else {
        print_entry(entry);
    }
    Ok(())
}

fn print_entry(entry: &LogRecord) {
    let origin = match (&entry.job, &entry.task) {
        (Some(job), Some(task)) => format!("{job}/{task}"),
        _ => entry.stream.clone(),
    };
    let level = super::output::paint_status_words(&entry.level.as_deref().map(str::to_uppercase).unwrap_or_default());
    println!("{}  {}  {}  {}  {}", time_of(entry.timestamp), entry.node, origin, level, entry.message);
}

/// Says which servers and which damaged hourly partitions an answer lacks.
fn warn_missing(servers: &[String], damaged: &[String]) {
    if !servers.is_empty() {
        eprintln!("warning: {} did not answer; lines indexed there are missing from this answer", servers.join(", "));
    }
    if !damaged.is_empty() {
        eprintln!(
            "warning: {} could not be read (damaged; see `drover server health`); their lines are missing from this answer",
            damaged.join(", ")
        );
    }
}

/// A local time with milliseconds.
fn time_of(nanos: i64) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(nanos).with_timezone(&chrono::Local);
    time.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

fn bar(value: u64, largest: u64, width: u64) -> String {
    let cells = (value * width).div_ceil(largest.max(1));
    "█".repeat(usize::try_from(cells).unwrap_or(0))
}
