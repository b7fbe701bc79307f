#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Counts over real logs agree with the real `grep`: every line of the
//! loghub samples (`shared/data/loghub/*_2k.log`) is stored as a record,
//! and queries whose tokenization equals `grep -i -w` (whole words, any
//! case) count what `grep -c` counts in the same file.
//!
//! Phrases are chosen whose words are separated by one space in the files,
//! and words without `_` next to them (`grep -w` counts `_` as part of a
//! word, the message tokenizer does not).

use std::path::{Path, PathBuf};
use std::process::Command;

use drover_logs::record::NANOS_PER_SECOND;
use drover_logs::{Filter, LogRecord, LogStore, SearchRequest, StoreConfig};

/// 2024-01-02T03:00:00Z.
const BASE: i64 = 1_704_164_400 * NANOS_PER_SECOND;

/// Per sample: queries on the message, as `grep -i -w` patterns.
const WORD_QUERIES: [(&str, &[&str]); 7] = [
    ("OpenSSH_2k.log", &["preauth", "root", "Failed password", "Invalid user", "Accepted password", "error"]),
    ("Linux_2k.log", &["session opened", "authentication failure", "ftpd", "connection from", "kernel"]),
    ("Apache_2k.log", &["error", "notice", "mod_jk child", "workerEnv", "scoreboard"]),
    ("BGL_2k.log", &["KERNEL", "FATAL", "ciod", "instruction cache parity error"]),
    ("HPC_2k.log", &["unavailable", "Component State Change", "error"]),
    ("Hadoop_2k.log", &["INFO", "WARN", "ERROR", "RMContainerAllocator", "Address change detected"]),
    ("Spark_2k.log", &["INFO", "BlockManager", "Registered signal handlers"]),
];

fn loghub_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub")
}

/// `grep -c ARGS… FILE`, run for real.
fn grep_count(arguments: &[&str], file: &Path) -> u64 {
    let output = Command::new("grep").arg("-c").args(arguments).arg("--").arg(file).output().expect("grep runs");
    // Exit status 1 means no line matched; the count (0) is printed all the same.
    assert!(output.status.code().is_some_and(|code| code <= 1), "grep failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("grep prints a count")
}

fn count(store: &LogStore, query: &str) -> u64 {
    store.search(&SearchRequest { filter: Filter::query(query), limit: 0, before: None }).unwrap().total_matching
}

/// The node of a line: the second column of the HPC sample (`node-246`),
/// the sample's name otherwise.
fn node_of(file_name: &str, line: &str) -> String {
    if file_name.starts_with("HPC") {
        line.split_whitespace().nth(1).unwrap_or("none").to_owned()
    } else {
        file_name.trim_end_matches("_2k.log").to_owned()
    }
}

#[test]
fn counts_match_grep_on_loghub_samples() {
    let directory = loghub_directory();
    assert!(directory.is_dir(), "the loghub samples are missing at {}", directory.display());
    let mut file_names: Vec<String> = std::fs::read_dir(&directory)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with("_2k.log"))
        .collect();
    file_names.sort();
    assert!(!file_names.is_empty(), "no *_2k.log in {}", directory.display());

    let store_directory = tempfile::tempdir().unwrap();
    let config = StoreConfig { writer_memory_bytes: 15_000_000, ..StoreConfig::default() };
    let mut store = LogStore::open_with(store_directory.path(), config).unwrap();
    let mut seq = 0u64;
    for file_name in &file_names {
        let text = String::from_utf8_lossy(&std::fs::read(directory.join(file_name)).unwrap()).into_owned();
        let batch: Vec<LogRecord> = text
            .lines()
            .map(|line| {
                seq += 1;
                let node = node_of(file_name, line);
                let mut record = drover_logs::record::from_line("loghub", seq, &node, "file", file_name, line, BASE);
                // One partition: the samples span years.
                record.timestamp = BASE + seq as i64;
                record
            })
            .collect();
        store.ingest(batch).unwrap();
    }

    let mut num_checked = 0;
    for file_name in &file_names {
        let path = directory.join(file_name);
        let in_file = format!("stream:\"{file_name}\"");
        assert_eq!(count(&store, &in_file), grep_count(&[""], &path), "{file_name}: every line");
        let queries = WORD_QUERIES.iter().find(|(name, _)| name == file_name).map_or(&[][..], |(_, queries)| queries);
        for pattern in queries {
            let words: Vec<&str> = pattern.split(' ').collect();
            let query = if words.len() > 1 { format!("\"{pattern}\"") } else { (*pattern).to_owned() };
            let expected = grep_count(&["-i", "-w", "-F", pattern], &path);
            assert!(expected > 0, "{file_name}: {pattern:?} does not occur; pick another");
            assert_eq!(count(&store, &format!("{in_file} {query}")), expected, "{file_name}: {query}");
            num_checked += 1;
        }
    }

    // A field: the node column of the HPC sample, against a grep anchored on that column.
    if let Some(hpc) = file_names.iter().find(|name| name.starts_with("HPC")) {
        for node in ["node-246", "node-109", "node-1"] {
            let expected = grep_count(&["-E", &format!("^[0-9]+ {node} ")], &directory.join(hpc));
            assert_eq!(count(&store, &format!("node:{node}")), expected, "node:{node}");
            assert_eq!(count(&store, &format!("node:{}", node.to_uppercase())), expected, "node:{node}, any case");
            num_checked += 1;
        }
        let counted = store.count_by(&Filter::query("node:node-*"), "node", 1000).unwrap().counts;
        let total: u64 = counted.iter().map(|(_, count)| count).sum();
        assert_eq!(total, grep_count(&["-E", "^[0-9]+ node-"], &directory.join(hpc)));
    }
    assert!(num_checked >= 20, "only {num_checked} queries checked");
}
