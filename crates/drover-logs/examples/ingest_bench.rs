//! A quick benchmark of the ingest path and of needle queries over the
//! loghub samples replayed many times (not a test).
//!
//! `cargo run --release -p drover-logs --example ingest_bench -- [NUM_LINES] [DIR]`
//!
//! `BATCH=N` sets the lines per ingest call (20,000); `NOSEARCH=1` stops
//! after the ingest (no merge into one segment, no searches);
//! `NOQUERIES=1` stops after the disk figures (where the bytes go).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use drover_logs::record::NANOS_PER_SECOND;
use drover_logs::{Filter, LogRecord, LogStore, Retention, SearchRequest};

fn main() {
    let mut arguments = std::env::args().skip(1);
    let num_lines: usize = arguments.next().map_or(1_000_000, |text| text.parse().expect("NUM_LINES is a number"));
    let directory = arguments.next();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub");
    let mut lines = Vec::new();
    for name in ["OpenSSH_2k.log", "Linux_2k.log", "Hadoop_2k.log", "Spark_2k.log", "Apache_2k.log", "BGL_2k.log"] {
        let text = std::fs::read_to_string(data.join(name)).expect("loghub sample");
        lines.extend(text.lines().map(str::to_owned));
    }
    // 2024-01-02T00:00:00Z; one line every millisecond.
    let start = 1_704_153_600 * NANOS_PER_SECOND;

    let enrich_started = Instant::now();
    let num_enrich_lines = if std::env::var_os("NOSEARCH").is_some() { 0 } else { num_lines };
    let mut num_with_time = 0usize;
    for (index, line) in lines.iter().cycle().take(num_enrich_lines).enumerate() {
        let parsed = drover_logs::parse::enrich(line, start + index as i64 * 1_000_000);
        num_with_time += usize::from(parsed.timestamp.is_some());
    }
    let enrich_seconds = enrich_started.elapsed().as_secs_f64();
    println!(
        "enrich: {num_lines} lines in {enrich_seconds:.2}s = {:.0} lines/s ({num_with_time} with a time)",
        num_lines as f64 / enrich_seconds
    );

    let temporary = tempfile::tempdir().unwrap();
    let store_directory = directory.map_or_else(|| temporary.path().to_owned(), Into::into);
    let mut store = LogStore::open(&store_directory, Retention::default()).unwrap();
    let mut raw_bytes = 0u64;
    let ingest_started = Instant::now();
    let cpu_started = cpu_seconds();
    let batch_size: usize = std::env::var("BATCH").ok().and_then(|text| text.parse().ok()).unwrap_or(20_000);
    let mut seq = 0u64;
    while (seq as usize) < num_lines {
        let batch: Vec<LogRecord> = (0..batch_size.min(num_lines - seq as usize))
            .map(|offset| {
                let index = seq as usize + offset;
                let line = &lines[index % lines.len()];
                raw_bytes += line.len() as u64 + 1;
                let node = format!("node-{}", index % 50);
                // The replayed lines keep their own times; the store sees a
                // steady stream, each line received as it is written.
                let timestamp = start + index as i64 * 1_000_000;
                let mut record =
                    drover_logs::record::from_line(&node, index as u64 + 1, &node, "file", "syslog", line, timestamp);
                record.origin = "bench".to_owned();
                record.timestamp = timestamp;
                record
            })
            .collect();
        seq += batch.len() as u64;
        store.ingest(batch).unwrap();
    }
    let ingest_seconds = ingest_started.elapsed().as_secs_f64();
    // Count the background merges the ingest started.
    store.close_writers().unwrap();
    let ingest_cpu_seconds = cpu_seconds() - cpu_started;
    println!(
        "ingest (enrich + index + commit per {batch_size}): {num_lines} lines in {ingest_seconds:.2}s = {:.0} lines/s; \
         {ingest_cpu_seconds:.2} CPU-s = {:.0} lines per CPU-second",
        num_lines as f64 / ingest_seconds,
        num_lines as f64 / ingest_cpu_seconds
    );
    if std::env::var_os("NOSEARCH").is_some() {
        return;
    }
    for start in store.partition_starts() {
        store.optimize_partition(start).unwrap();
    }
    let disk = store.disk_bytes();
    println!(
        "disk: {disk} bytes for {raw_bytes} raw bytes ({:.2} of raw), {} partitions",
        disk as f64 / raw_bytes as f64,
        store.partition_starts().len()
    );
    print_space_usage(&store_directory, raw_bytes);
    if std::env::var_os("NOQUERIES").is_some() {
        return;
    }

    for query in ["\"Failed password\" root", "level:error", "jk2_init", "node:node-7 preauth", "nosuchword"] {
        let mut timings = Vec::new();
        let mut total = 0;
        for _ in 0..21 {
            let started = Instant::now();
            let page = store.search(&SearchRequest { filter: Filter::query(query), limit: 100, before: None }).unwrap();
            timings.push(started.elapsed().as_secs_f64() * 1000.0);
            total = page.total_matching;
        }
        timings.sort_by(f64::total_cmp);
        println!("search {query:?}: {total} matching, p50 {:.2} ms, max {:.2} ms", timings[10], timings[20]);
    }
}

/// Where the bytes of the store go: per part of a segment (term
/// dictionary, postings, positions, fast fields, doc store) and, within
/// each, per field, as bytes per raw byte of the corpus.
fn print_space_usage(directory: &Path, raw_bytes: u64) {
    use std::collections::BTreeMap;
    let mut parts: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&path).unwrap();
        let searcher = index.reader().unwrap().searcher();
        let usage = searcher.space_usage().unwrap();
        for segment in usage.segments() {
            for (part, per_field) in [
                ("term dictionary", segment.termdict()),
                ("postings", segment.postings()),
                ("positions", segment.positions()),
                ("fast fields", segment.fast_fields()),
                ("field norms", segment.fieldnorms()),
            ] {
                for field in per_field.fields() {
                    *parts.entry(part).or_default().entry(field.field_name().to_owned()).or_default() +=
                        field.total().get_bytes();
                }
            }
            *parts.entry("doc store").or_default().entry("record".to_owned()).or_default() +=
                segment.store().total().get_bytes();
        }
    }
    let ratio = |bytes: u64| bytes as f64 / raw_bytes as f64;
    println!("where the bytes go (bytes per raw byte):");
    for (part, fields) in &parts {
        let total: u64 = fields.values().sum();
        let mut fields: Vec<_> = fields.iter().filter(|(_, bytes)| **bytes > 0).collect();
        fields.sort_by_key(|(_, bytes)| std::cmp::Reverse(**bytes));
        let detail: Vec<String> =
            fields.iter().take(6).map(|(name, bytes)| format!("{name} {:.4}", ratio(**bytes))).collect();
        println!("  {part}: {:.4} ({})", ratio(total), detail.join(", "));
    }
}

/// User + system CPU time of this process (all threads) so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}
