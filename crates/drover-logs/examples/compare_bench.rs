//! drover-logs side by side with PostgreSQL 15 (full-text GIN index) and
//! ripgrep over the raw files, on the same generated corpus (not a test).
//!
//! ```text
//! cargo run --release -p drover-logs --example compare_bench -- \
//!     [--lines 1000000] [--hosts 200] [--runs 20] [--batch 20000] [--dir DIR] [--no-postgres] [--no-rg]
//! ```
//!
//! `scripts/bench-logs` installs the peers and runs this. The corpus is the
//! loghub samples (`shared/data/loghub/*_2k.log`) replayed over one day
//! (2024-01-02, UTC) from `--hosts` host names, written as one raw file per
//! hour, each line `TIMESTAMP HOST ORIGINAL-LINE` as a central syslog
//! writes it. Each system gets the same lines:
//!
//! - drover: every raw line becomes a record (host → node, timestamp, the
//!   original line → message, enriched with `LogRecord::from_line`),
//!   ingested in batches of `--batch`, one commit each;
//! - PostgreSQL 15: a table `(ts timestamptz, host text, message text)`
//!   with a GIN index on `to_tsvector('simple', message)` and a B-tree on
//!   `ts`, created first and loaded with one `COPY` per hour file (CSV
//!   made beforehand), then `ANALYZE`; a throwaway cluster in DIR;
//! - ripgrep: the raw files as they are.
//!
//! Every query runs once to warm up, then `--runs` times; the counts each
//! system found are printed, and must agree. The Markdown table at the end
//! goes into `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use drover_logs::record::NANOS_PER_SECOND;
use drover_logs::{Filter, LogStore, Retention, SearchRequest, StoreConfig};

/// 2024-01-02T00:00:00Z.
const DAY_START: i64 = 1_704_153_600 * NANOS_PER_SECOND;
const HOUR: i64 = 3600 * NANOS_PER_SECOND;
/// The hour of the histogram: 12:00 to 13:00.
const HISTOGRAM_HOUR: i64 = 12;
/// A word of one line of the samples (so about one line in 14,000).
const NEEDLE: &str = "cryptographic";
/// A word of about one line in 13.
const COMMON: &str = "connection";
const PG_PORT: u16 = 54_329;
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Options {
    num_lines: usize,
    num_hosts: usize,
    num_runs: usize,
    batch_size: usize,
    directory: Option<PathBuf>,
    postgres: bool,
    ripgrep: bool,
}

fn options() -> Options {
    let mut options = Options {
        num_lines: 1_000_000,
        num_hosts: 200,
        num_runs: 20,
        batch_size: 20_000,
        directory: None,
        postgres: true,
        ripgrep: true,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut number = || arguments.next().and_then(|text| text.replace('_', "").parse().ok()).expect("a number");
        match argument.as_str() {
            "--lines" => options.num_lines = number(),
            "--hosts" => options.num_hosts = number(),
            "--runs" => options.num_runs = number(),
            "--batch" => options.batch_size = number(),
            "--dir" => options.directory = arguments.next().map(PathBuf::from),
            "--no-postgres" => options.postgres = false,
            "--no-rg" => options.ripgrep = false,
            other => panic!("unknown argument {other}; see the top of compare_bench.rs"),
        }
    }
    options
}

/// Latencies of one query, in milliseconds.
#[derive(Clone, Default)]
struct Timings(Vec<f64>);

impl Timings {
    fn percentile(&self, fraction: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    }
}

/// What one system measured.
#[derive(Default)]
struct Results {
    ingest_seconds: f64,
    ingest_cpu_seconds: f64,
    /// drover: merging each settled hour into one segment afterwards, as a
    /// server does two minutes after the hour (wall, CPU).
    compaction: Option<(f64, f64)>,
    disk_bytes: u64,
    /// Per query name: timings and the count found.
    queries: Vec<(&'static str, Timings, u64)>,
}

const QUERY_NAMES: [&str; 4] = ["needle", "common count", "count by node", "1-hour histogram"];

fn main() {
    let options = options();
    let temporary = tempfile::Builder::new().prefix("drover-compare-").tempdir_in("/tmp").unwrap();
    let directory = options.directory.clone().unwrap_or_else(|| temporary.path().to_owned());
    fs::create_dir_all(&directory).unwrap();
    set_mode(&directory, 0o755);

    let started = Instant::now();
    let corpus = write_corpus(&directory, &options);
    println!(
        "corpus: {} lines, {} hosts, {} raw bytes in {} hour files ({:.1}s)",
        options.num_lines,
        options.num_hosts,
        corpus.raw_bytes,
        corpus.raw_files.len(),
        started.elapsed().as_secs_f64()
    );

    let drover = run_drover(&directory.join("drover"), &corpus, &options);
    let postgres = options.postgres.then(|| run_postgres(&directory.join("postgres"), &corpus, &options));
    let ripgrep = options.ripgrep.then(|| run_ripgrep(&corpus, &options));

    println!();
    println!("{}", table(&corpus, &options, &drover, postgres.as_ref(), ripgrep.as_ref()));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------
// The corpus.

struct Corpus {
    raw_files: Vec<PathBuf>,
    csv_files: Vec<PathBuf>,
    raw_bytes: u64,
}

fn sample_lines() -> Vec<String> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub");
    let mut names: Vec<PathBuf> = fs::read_dir(&directory)
        .expect("the loghub samples")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.to_string_lossy().ends_with("_2k.log"))
        .collect();
    names.sort();
    let mut lines = Vec::new();
    for path in names {
        let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
        lines.extend(text.lines().map(|line| line.replace(['\0', '\r'], " ")));
    }
    lines
}

/// `2024-01-02T03:04:05.123456Z`.
fn format_timestamp(timestamp: i64) -> String {
    let seconds = timestamp.div_euclid(NANOS_PER_SECOND);
    let micros = timestamp.rem_euclid(NANOS_PER_SECOND) / 1000;
    let second_of_day = seconds.rem_euclid(86_400);
    // Every line is on 2024-01-02.
    format!(
        "2024-01-02T{:02}:{:02}:{:02}.{micros:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

fn parse_timestamp(text: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    DAY_START
        + number(11..13) * HOUR
        + number(14..16) * 60 * NANOS_PER_SECOND
        + number(17..19) * NANOS_PER_SECOND
        + number(20..26) * 1000
}

fn write_corpus(directory: &Path, options: &Options) -> Corpus {
    let lines = sample_lines();
    let raw_directory = directory.join("raw");
    let csv_directory = directory.join("csv");
    for path in [&raw_directory, &csv_directory] {
        fs::create_dir_all(path).unwrap();
        set_mode(path, 0o755);
    }
    let step = 24 * HOUR / options.num_lines as i64;
    let mut corpus = Corpus { raw_files: Vec::new(), csv_files: Vec::new(), raw_bytes: 0 };
    let mut current_hour = -1;
    let mut raw: Option<BufWriter<fs::File>> = None;
    let mut csv: Option<BufWriter<fs::File>> = None;
    for index in 0..options.num_lines {
        let timestamp = DAY_START + index as i64 * step;
        let hour = (timestamp - DAY_START) / HOUR;
        if hour != current_hour {
            current_hour = hour;
            let raw_path = raw_directory.join(format!("2024-01-02T{hour:02}.log"));
            let csv_path = csv_directory.join(format!("2024-01-02T{hour:02}.csv"));
            raw = Some(BufWriter::with_capacity(1 << 20, fs::File::create(&raw_path).unwrap()));
            csv = Some(BufWriter::with_capacity(1 << 20, fs::File::create(&csv_path).unwrap()));
            corpus.raw_files.push(raw_path);
            corpus.csv_files.push(csv_path);
        }
        // Hosts interleave; each host replays the samples from its own
        // offset, the offsets spread evenly over the samples.
        let host_index = index % options.num_hosts;
        let offset = host_index * (lines.len() / options.num_hosts).max(1);
        let line = &lines[(index / options.num_hosts + offset) % lines.len()];
        let host = format!("host-{host_index:03}");
        let time = format_timestamp(timestamp);
        let raw_line = format!("{time} {host} {line}\n");
        corpus.raw_bytes += raw_line.len() as u64;
        raw.as_mut().unwrap().write_all(raw_line.as_bytes()).unwrap();
        let quoted = line.replace('"', "\"\"");
        writeln!(csv.as_mut().unwrap(), "{time},{host},\"{quoted}\"").unwrap();
    }
    for writer in [raw, csv].into_iter().flatten() {
        writer.into_inner().unwrap().sync_all().unwrap();
    }
    corpus
}

/// User + system CPU seconds of a process (and of its children it waited for).
fn process_cpu_seconds(pid: u32, with_children: bool) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let indexes: &[usize] = if with_children { &[11, 12, 13, 14] } else { &[11, 12] };
    let ticks: f64 = indexes.iter().filter_map(|index| fields.get(*index)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// Runs once to warm up, then `num_runs` times (at most 5 times when one
/// run takes over 2 s, to keep the benchmark within minutes).
fn time_runs(num_runs: usize, mut run: impl FnMut() -> u64) -> (Timings, u64) {
    let started = Instant::now();
    let count = run();
    let num_runs = if started.elapsed().as_secs_f64() > 2.0 { num_runs.min(5) } else { num_runs };
    let mut timings = Timings::default();
    for _ in 0..num_runs {
        let started = Instant::now();
        let again = run();
        timings.0.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(again, count, "a query gave two answers");
    }
    (timings, count)
}

// ---------------------------------------------------------------------------
// drover.

fn run_drover(directory: &Path, corpus: &Corpus, options: &Options) -> Results {
    let mut results = Results::default();
    let mut store = LogStore::open_with(directory, StoreConfig::default()).unwrap();
    let started = Instant::now();
    let cpu_started = process_cpu_seconds(std::process::id(), false);
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(options.batch_size);
    for path in &corpus.raw_files {
        let file = std::io::BufReader::with_capacity(1 << 20, fs::File::open(path).unwrap());
        for line in file.lines() {
            let line = line.unwrap();
            let (time, rest) = line.split_once(' ').unwrap();
            let (host, text) = rest.split_once(' ').unwrap();
            let timestamp = parse_timestamp(time);
            let seq = seqs.entry(host.to_owned()).or_default();
            *seq += 1;
            let mut record = drover_logs::record::from_line(host, *seq, host, "file", "syslog", text, timestamp);
            record.timestamp = timestamp;
            batch.push(record);
            if batch.len() == options.batch_size {
                store.ingest(std::mem::take(&mut batch)).unwrap();
            }
        }
    }
    store.ingest(batch).unwrap();
    // Wait for the merges the ingest started, so that their CPU is counted.
    store.close_writers().unwrap();
    results.ingest_seconds = started.elapsed().as_secs_f64();
    results.ingest_cpu_seconds = process_cpu_seconds(std::process::id(), false) - cpu_started;
    // The day is over: every hour is settled and compacted, as a server
    // does in the background (`compact_settled` is what it runs, partition
    // by partition, without holding the store during the merges).
    let (compaction_started, compaction_cpu_started) = (Instant::now(), process_cpu_seconds(std::process::id(), false));
    let num_compacted = store.compact_settled(i64::MAX, std::time::Duration::ZERO).unwrap();
    results.compaction = Some((
        compaction_started.elapsed().as_secs_f64(),
        process_cpu_seconds(std::process::id(), false) - compaction_cpu_started,
    ));
    results.disk_bytes = store.disk_bytes();
    println!(
        "drover: ingest {:.1}s, {:.1} CPU-s; {num_compacted} partitions compacted in {:.1}s, {:.1} CPU-s; {} bytes on disk",
        results.ingest_seconds,
        results.ingest_cpu_seconds,
        results.compaction.map_or(0.0, |(wall, _)| wall),
        results.compaction.map_or(0.0, |(_, cpu)| cpu),
        results.disk_bytes
    );
    drop(store);
    // Searches see the store as a server opening it does.
    let store = LogStore::open(directory, Retention::default()).unwrap();

    let search = |query: &str, limit: usize| {
        store.search(&SearchRequest { filter: Filter::query(query), limit, before: None }).unwrap()
    };
    let (timings, count) = time_runs(options.num_runs, || {
        let page = search(NEEDLE, 100);
        assert!(page.records.len() <= 100);
        page.total_matching
    });
    results.queries.push(("needle", timings, count));
    let (timings, count) = time_runs(options.num_runs, || search(COMMON, 0).total_matching);
    results.queries.push(("common count", timings, count));
    let (timings, count) = time_runs(options.num_runs, || {
        let counts = store.count_by(&Filter::default(), "node", 100_000).unwrap().counts;
        counts.len() as u64
    });
    results.queries.push(("count by node", timings, count));
    let (timings, count) = time_runs(options.num_runs, || {
        let since = DAY_START + HISTOGRAM_HOUR * HOUR;
        let filter = Filter { since: Some(since), until: Some(since + HOUR), ..Filter::default() };
        let buckets = store.histogram(&filter, 60 * NANOS_PER_SECOND).unwrap().buckets;
        buckets.iter().map(|(_, count)| count).sum()
    });
    results.queries.push(("1-hour histogram", timings, count));
    print_counts("drover", &results);
    results
}

fn print_counts(system: &str, results: &Results) {
    let counts: Vec<String> = results.queries.iter().map(|(name, _, count)| format!("{name} {count}")).collect();
    println!("{system}: found {}", counts.join(", "));
}

// ---------------------------------------------------------------------------
// PostgreSQL.

struct Postgres {
    data: PathBuf,
    socket: PathBuf,
}

impl Postgres {
    fn as_postgres(program: &str) -> Command {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    }

    fn start(directory: &Path) -> Postgres {
        fs::create_dir_all(directory).unwrap();
        set_mode(directory, 0o777);
        let data = directory.join("data");
        let socket = directory.to_owned();
        let status = Postgres::as_postgres(&format!("{PG_BIN}/initdb"))
            .args(["-D", data.to_str().unwrap(), "--no-sync", "-E", "UTF8", "--locale=C", "-A", "trust"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let settings = format!(
            "-p {PG_PORT} -k {} -c listen_addresses='' -c shared_buffers=2GB -c work_mem=256MB \
             -c maintenance_work_mem=1GB -c max_wal_size=16GB -c checkpoint_timeout=1h \
             -c max_parallel_workers_per_gather=2",
            socket.display()
        );
        let status = Postgres::as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-o", &settings, "-l"])
            .arg(directory.join("server.log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed; see {}", directory.join("server.log").display());
        Postgres { data, socket }
    }

    /// Runs SQL through psql; returns its standard output.
    fn psql(&self, script: &str) -> String {
        let mut child = Postgres::as_postgres("psql")
            .args(["-h", self.socket.to_str().unwrap(), "-p", &PG_PORT.to_string(), "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "psql failed on:\n{script}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// CPU seconds of the server processes so far (those that exited are
    /// in the postmaster's children time).
    fn cpu_seconds(&self) -> f64 {
        let pid_file = fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut total = process_cpu_seconds(postmaster, true);
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if parent == Some(&postmaster.to_string()) {
                total += process_cpu_seconds(pid, false);
            }
        }
        total
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Postgres::as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

fn run_postgres(directory: &Path, corpus: &Corpus, options: &Options) -> Results {
    let mut results = Results::default();
    let postgres = Postgres::start(directory);
    postgres.psql(
        "CREATE TABLE logs (ts timestamptz NOT NULL, host text NOT NULL, message text NOT NULL);
         CREATE INDEX logs_message ON logs USING gin (to_tsvector('simple', message));
         CREATE INDEX logs_ts ON logs (ts);",
    );
    let started = Instant::now();
    let cpu_started = postgres.cpu_seconds();
    for path in &corpus.csv_files {
        postgres.psql(&format!("COPY logs FROM '{}' WITH (FORMAT csv);", path.display()));
    }
    postgres.psql("ANALYZE logs;");
    results.ingest_seconds = started.elapsed().as_secs_f64();
    results.ingest_cpu_seconds = postgres.cpu_seconds() - cpu_started;
    results.disk_bytes = postgres.psql("SELECT pg_total_relation_size('logs');").trim().parse().unwrap();
    println!(
        "postgres: ingest {:.1}s, {:.1} CPU-s, {} bytes on disk",
        results.ingest_seconds, results.ingest_cpu_seconds, results.disk_bytes
    );

    let since = format!("2024-01-02 {HISTOGRAM_HOUR:02}:00:00+00");
    let until = format!("2024-01-02 {:02}:00:00+00", HISTOGRAM_HOUR + 1);
    let queries: [(&str, String, &str); 4] = [
        (
            "needle",
            format!(
                "SELECT ts, host, message FROM logs WHERE to_tsvector('simple', message) @@ \
                 to_tsquery('simple', '{NEEDLE}') ORDER BY ts DESC LIMIT 100"
            ),
            // The count, not timed: the timed query fetches the newest 100.
            "needle count",
        ),
        (
            "common count",
            format!(
                "SELECT count(*) FROM logs WHERE to_tsvector('simple', message) @@ to_tsquery('simple', '{COMMON}')"
            ),
            "",
        ),
        ("count by node", "SELECT host, count(*) FROM logs GROUP BY host".to_owned(), ""),
        (
            "1-hour histogram",
            format!(
                "SELECT date_trunc('minute', ts) AS minute, count(*) FROM logs WHERE ts >= '{since}' AND ts < \
                 '{until}' GROUP BY minute ORDER BY minute"
            ),
            "",
        ),
    ];
    for (name, sql, _) in &queries {
        let mut script = String::from("SET TIME ZONE 'UTC';\n");
        script.push_str(&format!("{sql};\n")); // warm-up, not timed
        script.push_str("\\timing on\n\\o /dev/null\n");
        for _ in 0..options.num_runs {
            script.push_str(&format!("{sql};\n"));
        }
        let output = postgres.psql(&script);
        let timings = Timings(
            output
                .lines()
                .filter_map(|line| line.strip_prefix("Time: "))
                .filter_map(|rest| rest.split(' ').next()?.parse::<f64>().ok())
                .collect(),
        );
        assert_eq!(timings.0.len(), options.num_runs, "psql printed:\n{output}");
        let count_sql = match *name {
            "needle" => format!(
                "SELECT count(*) FROM logs WHERE to_tsvector('simple', message) @@ to_tsquery('simple', '{NEEDLE}')"
            ),
            "count by node" => format!("SELECT count(*) FROM ({sql}) AS counted"),
            "1-hour histogram" => format!("SELECT coalesce(sum(count), 0) FROM ({sql}) AS counted"),
            _ => sql.clone(),
        };
        let count: u64 = postgres.psql(&format!("{count_sql};")).trim().parse().unwrap();
        results.queries.push((name, timings, count));
    }
    let plans = postgres.psql(&format!("EXPLAIN {};", queries[0].1));
    println!("postgres: needle plan: {}", plans.lines().map(str::trim).collect::<Vec<_>>().join(" | "));
    print_counts("postgres", &results);
    results
}

// ---------------------------------------------------------------------------
// ripgrep.

/// Runs rg with `arguments` over the raw files; returns its output lines.
fn rg_lines(corpus: &Corpus, arguments: &[&str], mut each: impl FnMut(&[u8])) {
    let mut child = Command::new("rg")
        .args(["--no-filename", "--no-line-number", "--no-config"])
        .args(arguments)
        .args(&corpus.raw_files)
        .stdout(Stdio::piped())
        .spawn()
        .expect("rg runs (apt-get install ripgrep)");
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        each(&line);
    }
    let status = child.wait().unwrap();
    assert!(status.code().is_some_and(|code| code <= 1), "rg failed");
}

fn run_ripgrep(corpus: &Corpus, options: &Options) -> Results {
    let mut results = Results { disk_bytes: corpus.raw_bytes, ..Results::default() };
    let (timings, count) = time_runs(options.num_runs, || {
        let mut count = 0u64;
        rg_lines(corpus, &["-i", "-w", "-F", NEEDLE], |_| count += 1);
        count
    });
    results.queries.push(("needle", timings, count));
    let (timings, count) = time_runs(options.num_runs, || {
        let mut count = 0u64;
        rg_lines(corpus, &["-c", "-i", "-w", "-F", COMMON], |line| {
            count += String::from_utf8_lossy(line).trim().parse::<u64>().unwrap_or(0);
        });
        count
    });
    results.queries.push(("common count", timings, count));
    let (timings, count) = time_runs(options.num_runs, || {
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        rg_lines(corpus, &["-o", "-r", "$1", r"^\S+ (\S+) "], |line| *counts.entry(line.to_vec()).or_default() += 1);
        counts.len() as u64
    });
    results.queries.push(("count by node", timings, count));
    let (timings, count) = time_runs(options.num_runs, || {
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        let pattern = format!(r"^2024-01-02T{HISTOGRAM_HOUR:02}:(\d\d)");
        rg_lines(corpus, &["-o", "-r", "$1", &pattern], |line| *counts.entry(line.to_vec()).or_default() += 1);
        counts.values().sum()
    });
    results.queries.push(("1-hour histogram", timings, count));
    print_counts("ripgrep", &results);
    results
}

// ---------------------------------------------------------------------------
// The table.

fn table(
    corpus: &Corpus,
    options: &Options,
    drover: &Results,
    postgres: Option<&Results>,
    ripgrep: Option<&Results>,
) -> String {
    let lines = options.num_lines as f64;
    let megabytes = corpus.raw_bytes as f64 / 1e6;
    let mut out = String::new();
    writeln!(
        out,
        "{} lines ({:.0} MB raw), {} hosts, {} runs per query; ratios: how many times drover is better",
        options.num_lines, megabytes, options.num_hosts, options.num_runs
    )
    .unwrap();
    writeln!(out).unwrap();
    writeln!(out, "| measure | drover | PostgreSQL 15 | ripgrep | vs PostgreSQL | vs ripgrep |").unwrap();
    writeln!(out, "|---|---|---|---|---|---|").unwrap();
    let cell = |results: Option<&Results>, value: &dyn Fn(&Results) -> String| results.map_or("—".to_owned(), value);
    let ratio = |peer: Option<&Results>, value: &dyn Fn(&Results) -> f64, higher_is_better: bool| {
        peer.map_or("—".to_owned(), |peer| {
            let (ours, theirs) = (value(drover), value(peer));
            let times = if higher_is_better { ours / theirs } else { theirs / ours };
            format!("{times:.1}×")
        })
    };
    let ingest_rate = |results: &Results| lines / results.ingest_seconds;
    let per_core = |results: &Results| lines / results.ingest_cpu_seconds;
    writeln!(
        out,
        "| ingest to searchable, lines/s | {:.0} | {} | — | {} | — |",
        ingest_rate(drover),
        cell(postgres, &|results| format!("{:.0}", ingest_rate(results))),
        ratio(postgres, &ingest_rate, true)
    )
    .unwrap();
    writeln!(
        out,
        "| ingest, MB/s | {:.1} | {} | — | — | — |",
        megabytes / drover.ingest_seconds,
        cell(postgres, &|results| format!("{:.1}", megabytes / results.ingest_seconds))
    )
    .unwrap();
    writeln!(
        out,
        "| ingest, lines per CPU-second | {:.0} | {} | — | {} | — |",
        per_core(drover),
        cell(postgres, &|results| format!("{:.0}", per_core(results))),
        ratio(postgres, &per_core, true)
    )
    .unwrap();
    if let Some((wall, cpu)) = drover.compaction {
        writeln!(
            out,
            "| compaction afterwards (each hour into one segment), s / CPU-s | {wall:.1} / {cpu:.1} | — | — | — | — |"
        )
        .unwrap();
    }
    for (index, name) in QUERY_NAMES.iter().enumerate() {
        for (label, fraction) in [("p50", 0.5), ("p99", 0.99)] {
            let latency = |results: &Results| results.queries[index].1.percentile(fraction);
            writeln!(
                out,
                "| {name} {label}, ms | {:.2} | {} | {} | {} | {} |",
                latency(drover),
                cell(postgres, &|results| format!("{:.2}", latency(results))),
                cell(ripgrep, &|results| format!("{:.2}", latency(results))),
                ratio(postgres, &latency, false),
                ratio(ripgrep, &latency, false)
            )
            .unwrap();
        }
    }
    let disk = |results: &Results| results.disk_bytes as f64 / corpus.raw_bytes as f64;
    writeln!(
        out,
        "| disk bytes per raw byte | {:.2} | {} | {} | {} | {} |",
        disk(drover),
        cell(postgres, &|results| format!("{:.2}", disk(results))),
        cell(ripgrep, &|results| format!("{:.2}", disk(results))),
        ratio(postgres, &disk, false),
        ratio(ripgrep, &disk, false)
    )
    .unwrap();
    writeln!(out).unwrap();
    let found = |results: Option<&Results>| {
        results.map_or("—".to_owned(), |results| {
            results.queries.iter().map(|(_, _, count)| count.to_string()).collect::<Vec<_>>().join(" / ")
        })
    };
    writeln!(
        out,
        "Found (needle / common / nodes / lines in the hour): drover {}, PostgreSQL {}, ripgrep {}",
        found(Some(drover)),
        found(postgres),
        found(ripgrep)
    )
    .unwrap();
    out
}
