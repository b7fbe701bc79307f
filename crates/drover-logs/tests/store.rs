#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The log store: ingest without duplicates or loss, search, paging,
//! counts, histograms, retention, and counts over real logs that agree with
//! `grep -c`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use drover_logs::record::NANOS_PER_SECOND;
use drover_logs::{Copies, Cursor, Filter, LogRecord, LogStore, Retention, SearchRequest, StoreConfig};

/// 2024-01-02T03:00:00Z.
const BASE: i64 = 1_704_164_400 * NANOS_PER_SECOND;
const HOUR: i64 = 3600 * NANOS_PER_SECOND;

fn record(origin: &str, seq: u64, timestamp: i64, message: &str) -> LogRecord {
    let mut record = drover_logs::record::from_line(origin, seq, origin, "task", "stdout", message, timestamp);
    record.timestamp = timestamp;
    record
}

fn small_config() -> StoreConfig {
    StoreConfig { writer_memory_bytes: 15_000_000, ..StoreConfig::default() }
}

fn open(directory: &Path) -> LogStore {
    LogStore::open_with(directory, small_config()).expect("the store opens")
}

fn all_records(store: &LogStore, filter: &Filter) -> Vec<LogRecord> {
    let page = store.search(&SearchRequest { filter: filter.clone(), limit: 100_000, before: None }).unwrap();
    assert_eq!(page.records.len() as u64, page.total_matching);
    page.records
}

fn total(store: &LogStore, query: &str) -> u64 {
    store.search(&SearchRequest { filter: Filter::query(query), limit: 0, before: None }).unwrap().total_matching
}

#[test]
fn resent_records_are_stored_once_across_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let batch: Vec<LogRecord> =
        (1..=10).map(|seq| record("node-a", seq, BASE + seq as i64, &format!("line {seq}"))).collect();
    {
        let mut store = open(directory.path());
        let outcome = store.ingest(batch.clone()).unwrap();
        assert_eq!((outcome.num_accepted, outcome.num_duplicates), (10, 0));
        // Searchable as soon as ingest returns.
        assert_eq!(total(&store, "line"), 10);
        // Sent again in the same session.
        let outcome = store.ingest(batch[5..].to_vec()).unwrap();
        assert_eq!((outcome.num_accepted, outcome.num_duplicates), (0, 5));
    }
    let mut store = open(directory.path());
    assert_eq!(total(&store, "line"), 10);
    let resend: Vec<LogRecord> =
        (5..=15).map(|seq| record("node-a", seq, BASE + seq as i64, &format!("line {seq}"))).collect();
    let outcome = store.ingest(resend).unwrap();
    assert_eq!((outcome.num_accepted, outcome.num_duplicates), (5, 6));
    // Another origin with the same seqs is not a duplicate.
    let other = store.ingest(vec![record("node-b", 3, BASE, "line from b")]).unwrap();
    assert_eq!(other.num_accepted, 1);
    let seqs: Vec<(String, u64)> =
        all_records(&store, &Filter::query("line")).into_iter().map(|record| (record.origin, record.seq)).collect();
    assert_eq!(seqs.len(), 16);
    assert_eq!(seqs.iter().collect::<HashSet<_>>().len(), 16, "no record twice");

    // Merging segments keeps the records and the high-water marks.
    for start in store.partition_starts() {
        store.optimize_partition(start).unwrap();
    }
    drop(store);
    let mut store = open(directory.path());
    assert_eq!(total(&store, "line"), 16);
    let again = store.ingest(vec![record("node-a", 15, BASE + 15, "line 15")]).unwrap();
    assert_eq!((again.num_accepted, again.num_duplicates), (0, 1));
}

#[test]
fn a_batch_committed_in_part_is_completed_by_a_resend() {
    // One origin whose lines alternate between two hours. A crash after
    // committing only the first hour's partition is the same as having
    // ingested only those records.
    let directory = tempfile::tempdir().unwrap();
    let batch: Vec<LogRecord> = (1..=20)
        .map(|seq| {
            let hour = if seq % 2 == 0 { HOUR } else { 0 };
            record("node-a", seq, BASE + hour + seq as i64, &format!("entry {seq}"))
        })
        .collect();
    {
        let mut store = open(directory.path());
        let first_hour: Vec<LogRecord> =
            batch.iter().filter(|record| record.timestamp < BASE + HOUR).cloned().collect();
        store.ingest(first_hour).unwrap();
    }
    let mut store = open(directory.path());
    let outcome = store.ingest(batch).unwrap();
    assert_eq!((outcome.num_accepted, outcome.num_duplicates), (10, 10));
    let mut seqs: Vec<u64> = all_records(&store, &Filter::query("entry")).iter().map(|record| record.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    assert_eq!(store.partition_starts(), vec![BASE, BASE + HOUR]);
}

#[test]
fn pages_cover_every_record_once_newest_first() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    // Many records share a timestamp; three partitions.
    let batch: Vec<LogRecord> =
        (0..250u64).map(|seq| record("n", seq + 1, BASE + (seq as i64 / 7) * HOUR / 20, "paged line")).collect();
    store.ingest(batch).unwrap();
    let mut seen = Vec::new();
    let mut before: Option<Cursor> = None;
    let mut num_pages = 0;
    loop {
        let page = store.search(&SearchRequest { filter: Filter::query("paged"), limit: 9, before }).unwrap();
        assert_eq!(page.total_matching, 250);
        assert!(page.records.len() <= 9);
        seen.extend(page.records.iter().map(|record| (record.timestamp, record.seq)));
        num_pages += 1;
        match page.next_cursor {
            Some(cursor) => {
                // Cursors survive being written out and read back.
                before = Some(cursor.to_string().parse().unwrap());
            }
            None => break,
        }
    }
    assert_eq!(num_pages, 28);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().map(|(_, seq)| seq).collect::<HashSet<_>>().len(), 250);
    assert!(seen.windows(2).all(|pair| pair[0].0 >= pair[1].0), "newest first");
}

#[test]
fn query_language_on_the_store() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    let mut lines = vec![
        record("web-1", 1, BASE + 1, "GET /index 200 user=alice http.status=200"),
        record("web-1", 2, BASE + 2, "2024-01-02T03:00:00Z ERROR Failed password for root"),
        record("web-2", 1, BASE + 3, r#"{"msg":"Disk full","level":"warn","user":"Bob","code":28}"#),
        record("db-1", 1, BASE + 4, "failed to connect to 10.0.0.1 port 5432"),
        record("db-1", 2, BASE + 5, "unfailed words are not failed"),
    ];
    lines[0].job = Some("frontend".to_owned());
    lines[1].job = Some("frontend".to_owned());
    lines[3].job = Some("Postgres".to_owned());
    store.ingest(lines).unwrap();
    let cases = [
        ("", 5),
        ("failed", 3),
        ("FAILED", 3),
        ("\"failed password\"", 1),
        ("failed -password", 2),
        ("failed AND NOT password", 2),
        ("level:error", 1),
        ("level:warn OR level:error", 2),
        ("node:web*", 3),
        ("node:WEB-1", 2),
        ("job:postgres", 1),
        ("job:front*", 2),
        ("user:alice", 1),
        ("user:bob", 1),
        ("code:28", 1),
        ("http.status:200", 1),
        ("disk", 1),
        ("10.0.0.1", 1),
        ("10.0.0.2", 0),
        ("fail*", 3),
        ("unfail*", 1),
        ("(failed OR disk) node:db*", 2),
        ("NOT failed", 2),
        ("source:task stream:stdout", 5),
        ("nosuchfield:x", 0),
        ("message:\"disk full\"", 1),
    ];
    for (query, expected) in cases {
        assert_eq!(total(&store, query), expected, "query {query:?}");
    }
    let json_line = all_records(&store, &Filter::query("disk")).remove(0);
    assert_eq!(json_line.message, "Disk full");
    assert_eq!(json_line.level.as_deref(), Some("warn"));

    let by_time = Filter { since: Some(BASE + 2), until: Some(BASE + 4), ..Filter::default() };
    assert_eq!(all_records(&store, &by_time).iter().map(|record| record.seq).collect::<Vec<_>>(), [1, 2]);
    let by_node = Filter { nodes: Some(vec!["db-1".to_owned(), "WEB-2".to_owned()]), ..Filter::default() };
    assert_eq!(all_records(&store, &by_node).len(), 3);

    let error = store.search(&SearchRequest { filter: Filter::query("(failed"), limit: 1, before: None }).unwrap_err();
    assert_eq!(error.to_string(), "unbalanced parenthesis at column 1: add \")\"");
    let backwards = Filter { since: Some(BASE + 10), until: Some(BASE), ..Filter::default() };
    assert!(store.search(&SearchRequest { filter: backwards, limit: 1, before: None }).is_err());
}

#[test]
fn counts_by_field_and_histogram() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    let mut batch = Vec::new();
    for seq in 0..60u64 {
        let node = ["a", "b", "c"][usize::try_from(seq % 3).unwrap()];
        let level = if seq % 4 == 0 { "ERROR" } else { "INFO" };
        let line = format!("{level} request done user=u{}", seq % 2);
        // One record a minute, from 03:00 on.
        batch.push(record(node, seq + 1, BASE + seq as i64 * 60 * NANOS_PER_SECOND, &line));
    }
    // Two origins share seqs; distinct names keep them apart.
    store.ingest(batch).unwrap();
    let all = Filter::default();
    assert_eq!(
        store.count_by(&all, "node", 10).unwrap().counts,
        vec![("a".to_owned(), 20), ("b".to_owned(), 20), ("c".to_owned(), 20)]
    );
    assert_eq!(store.count_by(&all, "node", 1).unwrap().counts, vec![("a".to_owned(), 20)]);
    assert_eq!(
        store.count_by(&all, "level", 10).unwrap().counts,
        vec![("info".to_owned(), 45), ("error".to_owned(), 15)]
    );
    assert_eq!(store.count_by(&Filter::query("level:error"), "user", 10).unwrap().counts, vec![("u0".to_owned(), 15)]);
    assert_eq!(store.count_by(&all, "job", 10).unwrap().counts, vec![]);
    assert!(store.count_by(&all, "message", 10).is_err());

    let ten_minutes = 600 * NANOS_PER_SECOND;
    let histogram = store.histogram(&all, ten_minutes).unwrap().buckets;
    assert_eq!(histogram, (0..6).map(|bucket| (BASE + bucket * ten_minutes, 10)).collect::<Vec<_>>());
    let errors = store.histogram(&Filter { since: Some(BASE + ten_minutes), ..Filter::query("level:error") }, HOUR);
    assert_eq!(errors.unwrap().buckets, vec![(BASE, 12)]);
    assert!(store.histogram(&all, 0).is_err());
}

#[test]
fn retention_deletes_whole_partitions_by_age_and_size() {
    let directory = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        retention: Retention { max_age: Some(Duration::from_secs(2 * 3600)), max_bytes: None },
        ..small_config()
    };
    let mut store = LogStore::open_with(directory.path(), config).unwrap();
    for hour in 0..5i64 {
        let batch = (0..50u64)
            .map(|index| record("n", hour as u64 * 1000 + index + 1, BASE + hour * HOUR + index as i64, "kept or not"))
            .collect();
        store.ingest(batch).unwrap();
    }
    assert_eq!(store.partition_starts().len(), 5);
    let bytes_before = store.disk_bytes();
    // At 08:30, partitions ending at or before 06:30 go: 03:00 to 05:00 (ends 06:00).
    let outcome = store.apply_retention_at(BASE + 5 * HOUR + HOUR / 2).unwrap();
    assert_eq!(outcome.num_partitions_deleted, 3);
    assert_eq!(store.partition_starts(), vec![BASE + 3 * HOUR, BASE + 4 * HOUR]);
    assert_eq!(total(&store, "kept"), 100);
    assert!(store.disk_bytes() < bytes_before);
    assert!(outcome.bytes_freed > 0);
    drop(store);

    // By size: only the newest fits.
    let config = StoreConfig { retention: Retention { max_age: None, max_bytes: Some(1) }, ..small_config() };
    let mut store = LogStore::open_with(directory.path(), config).unwrap();
    assert_eq!(store.partition_starts().len(), 2);
    let outcome = store.apply_retention().unwrap();
    assert_eq!(outcome.num_partitions_deleted, 1);
    assert_eq!(store.partition_starts(), vec![BASE + 4 * HOUR]);
    assert_eq!(total(&store, "kept"), 50);
    // The newest is written to again after retention.
    store.ingest(vec![record("n", 99_999, BASE + 4 * HOUR + 99, "kept again")]).unwrap();
    assert_eq!(total(&store, "kept"), 51);
}

#[test]
fn the_partition_span_is_kept_with_the_store() {
    let directory = tempfile::tempdir().unwrap();
    let daily = StoreConfig { partition_seconds: 86_400, ..small_config() };
    let mut store = LogStore::open_with(directory.path(), daily).unwrap();
    store.ingest(vec![record("n", 1, BASE, "x"), record("n", 2, BASE + 5 * HOUR, "y")]).unwrap();
    assert_eq!(store.partition_starts().len(), 1);
    drop(store);
    let store = open(directory.path());
    assert_eq!(store.partition_nanos(), 86_400 * NANOS_PER_SECOND);
    std::fs::write(directory.path().join("store.json"), "{").unwrap();
    let error = LogStore::open(directory.path(), Retention::default()).unwrap_err().to_string();
    assert!(error.contains("store.json: cannot read the store description"), "{error}");
}

#[test]
fn levels_and_times_of_real_logs() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub");
    let text = std::fs::read_to_string(data.join("Hadoop_2k.log")).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    let batch: Vec<LogRecord> = text
        .lines()
        .enumerate()
        .map(|(index, line)| drover_logs::record::from_line("h", index as u64 + 1, "h", "file", "hadoop", line, 0))
        .collect();
    store.ingest(batch).unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        if let Some(level) = line.split(' ').nth(2).and_then(drover_logs::parse::normalise_level) {
            *expected.entry(level.to_owned()).or_default() += 1;
        }
    }
    let counted: BTreeMap<String, u64> =
        store.count_by(&Filter::default(), "level", 10).unwrap().counts.into_iter().collect();
    assert_eq!(counted, expected);
    // Every line has its own time (2015), none fell back to the time received (0).
    assert_eq!(total(&store, ""), text.lines().count() as u64);
    let since_2015 = Filter { since: Some(1_420_070_400 * NANOS_PER_SECOND), ..Filter::default() };
    assert_eq!(
        store.search(&SearchRequest { filter: since_2015, limit: 0, before: None }).unwrap().total_matching,
        text.lines().count() as u64
    );
}

fn copy_directory(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_directory(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `tests/data/store-v1` was written by format version 1 (records as
/// JSON, timestamps indexed, field norms): five records of origin `web-1`
/// (job `frontend`, host group `bi/web`), three at 03:00 and two at 04:00
/// on 2024-01-02. This build reads it, writes into it and marks it version 3.
#[test]
fn reads_and_extends_a_format_version_1_store() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    let directory = tempfile::tempdir().unwrap();
    copy_directory(&sample, directory.path());
    let mut store = open(directory.path());
    assert_eq!(store.partition_starts(), vec![BASE, BASE + HOUR]);
    let cases = [
        ("", 5),
        ("failed", 3),
        ("\"failed password\"", 1),
        ("failed -password", 2),
        ("NOT \"failed password\"", 4),
        ("level:error", 1),
        ("user:bob", 1),
        ("http.status:200", 1),
        ("job:front*", 5),
        ("10.0.0.1", 1),
    ];
    for (query, expected) in cases {
        assert_eq!(total(&store, query), expected, "query {query:?}");
    }
    let records = all_records(&store, &Filter::query("disk"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message, "Disk full");
    assert_eq!((records[0].seq, records[0].timestamp), (3, BASE + 2));
    assert_eq!(records[0].hostgroup.as_deref(), Some("bi/web"));
    assert_eq!(store.count_by(&Filter::default(), "job", 10).unwrap().counts, vec![("frontend".to_owned(), 5)]);
    assert_eq!(store.count_by(&Filter::default(), "origin", 10).unwrap().counts, vec![("web-1".to_owned(), 5)]);
    assert_eq!(store.histogram(&Filter::default(), HOUR).unwrap().buckets, vec![(BASE, 3), (BASE + HOUR, 2)]);
    assert_eq!(
        total_in(&store, Filter { since: Some(BASE + 1), until: Some(BASE + HOUR + 1), ..Filter::default() }),
        3
    );

    // The high-water marks of version 1 still drop resent records; new
    // records go into the old partition and into a new one.
    let resent = record("web-1", 4, BASE + HOUR, "failed to connect to 10.0.0.1 port 5432");
    let newer = record("web-1", 6, BASE + HOUR + 5, "failed again");
    let later = record("web-1", 7, BASE + 2 * HOUR, "failed later");
    let outcome = store.ingest(vec![resent, newer, later]).unwrap();
    assert_eq!((outcome.num_accepted, outcome.num_duplicates), (2, 1));
    drop(store);
    let store_file = std::fs::read_to_string(directory.path().join("store.json")).unwrap();
    assert!(store_file.contains("\"version\":3"), "{store_file}");
    let store = open(directory.path());
    assert_eq!(total(&store, "failed"), 5);
    let newest = all_records(&store, &Filter::query("failed"));
    assert_eq!(newest.iter().map(|record| record.seq).collect::<Vec<_>>(), [7, 6, 5, 4, 2]);
}

/// Log replication: a server holds its agents' lines (originals) and
/// copies of other servers' lines (replicas, marked with the server they
/// are kept for); `(origin, seq)` is held once whichever way it came.
#[test]
fn replicas_are_told_apart_from_originals_and_held_once() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    let line = |origin: &str, seq: u64| record(origin, seq, BASE + seq as i64, &format!("line {seq}"));
    let originals: Vec<LogRecord> = (1..=4).map(|seq| line("node-a", seq)).collect();
    let of_server_7: Vec<LogRecord> = (1..=3).map(|seq| line("node-b", seq)).collect();
    let of_server_9: Vec<LogRecord> = (1..=2).map(|seq| line("node-c", seq)).collect();
    let outcome = store.ingest_copies(originals, vec![(7, of_server_7.clone()), (9, of_server_9.clone())]).unwrap();
    assert_eq!((outcome.num_accepted, outcome.num_duplicates), (9, 0));
    let with = |store: &LogStore, copies: Copies| total_in(store, Filter { copies, ..Filter::query("line") });
    assert_eq!(with(&store, Copies::All), 9);
    assert_eq!(with(&store, Copies::Originals), 4);
    assert_eq!(with(&store, Copies::ReplicasOf(vec![7])), 3);
    assert_eq!(with(&store, Copies::ReplicasOf(vec![7, 9])), 5);
    assert_eq!(with(&store, Copies::ReplicasOf(Vec::new())), 0);
    let of_nine = Filter { copies: Copies::ReplicasOf(vec![9]), ..Filter::default() };
    assert_eq!(store.count_by(&of_nine, "node", 10).unwrap().counts, vec![("node-c".to_owned(), 2)]);
    assert_eq!(store.histogram(&of_nine, HOUR).unwrap().buckets, vec![(BASE, 2)]);
    // A replica is the record as its primary stored it.
    assert_eq!(all_records(&store, &of_nine), of_server_9.iter().rev().cloned().collect::<Vec<_>>());

    // node-b's agent moves to this server and sends 2..=5 again: what is
    // held as a replica is not stored a second time, as an original.
    let outcome = store.ingest((2..=5).map(|seq| line("node-b", seq)).collect()).unwrap();
    assert_eq!((outcome.num_accepted, outcome.num_duplicates), (2, 2));
    // A replica of what is held as an original is dropped too; originals
    // and replicas of one origin in one call are taken in seq order.
    let outcome =
        store.ingest_copies(vec![line("node-a", 6)], vec![(7, vec![line("node-a", 4), line("node-a", 5)])]).unwrap();
    assert_eq!((outcome.num_accepted, outcome.num_duplicates), (2, 1));
    assert_eq!(with(&store, Copies::All), 13);
    drop(store);
    let store = open(directory.path());
    assert_eq!(with(&store, Copies::ReplicasOf(vec![7])), 4);
    assert_eq!(with(&store, Copies::Originals), 7);
}

/// A partition written before replicas were marked holds originals only,
/// and takes a replica unmarked (its schema has no place for the mark).
#[test]
fn a_format_version_1_partition_holds_originals_only() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    let directory = tempfile::tempdir().unwrap();
    copy_directory(&sample, directory.path());
    let mut store = open(directory.path());
    let with = |store: &LogStore, copies: Copies| total_in(store, Filter { copies, ..Filter::default() });
    assert_eq!(with(&store, Copies::Originals), 5);
    assert_eq!(with(&store, Copies::ReplicasOf(vec![7])), 0);
    let old_hour = record("web-9", 1, BASE + 10, "copied into an old hour");
    let new_hour = record("web-9", 2, BASE + 2 * HOUR, "copied into a new hour");
    let outcome = store.ingest_copies(Vec::new(), vec![(7, vec![old_hour, new_hour])]).unwrap();
    assert_eq!(outcome.num_accepted, 2);
    assert_eq!(with(&store, Copies::All), 7);
    assert_eq!(with(&store, Copies::Originals), 6);
    assert_eq!(with(&store, Copies::ReplicasOf(vec![7])), 1);
}

fn total_in(store: &LogStore, filter: Filter) -> u64 {
    store.search(&SearchRequest { filter, limit: 0, before: None }).unwrap().total_matching
}

#[test]
fn a_newer_format_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("store.json"), r#"{"version":4,"partition_seconds":3600}"#).unwrap();
    let error = LogStore::open(directory.path(), Retention::default()).unwrap_err().to_string();
    assert!(error.contains("store format version 4"), "{error}");
}

#[test]
fn a_settled_partition_is_compacted_into_one_segment_while_ingest_and_search_go_on() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    // Ten commits into the 03:00 hour: ten segments.
    for batch in 0..10u64 {
        let records: Vec<LogRecord> = (0..100)
            .map(|index| {
                let seq = batch * 100 + index + 1;
                record("node-a", seq, BASE + seq as i64, &format!("settled line {seq}"))
            })
            .collect();
        store.ingest(records).unwrap();
    }
    assert!(store.num_segments(BASE) > 1, "{} segments", store.num_segments(BASE));
    let after_the_hour = BASE + HOUR;
    // Not settled while the hour is running, nor right after it.
    assert!(store.settled_partitions(BASE + HOUR / 2, Duration::ZERO).is_empty());
    assert!(store.settled_partitions(after_the_hour, Duration::from_secs(60)).is_empty());
    // Nothing added for a while (here: no wait asked for) and the hour over.
    assert_eq!(store.settled_partitions(after_the_hour, Duration::ZERO), vec![BASE]);

    let compaction = store.start_compaction(BASE).unwrap().expect("segments to merge");
    // Meanwhile: lines for the next hour, a late line for this one, searches.
    let next: Vec<LogRecord> =
        (1..=50).map(|seq| record("node-b", seq, BASE + HOUR + seq as i64, &format!("next line {seq}"))).collect();
    store.ingest(next).unwrap();
    store.ingest(vec![record("node-a", 1001, BASE + 1001, "settled line 1001")]).unwrap();
    assert_eq!(total(&store, "settled"), 1001);
    compaction.wait().unwrap();
    store.finish_compaction(BASE).unwrap();

    // The merged segment, plus the late line's own.
    assert!(store.num_segments(BASE) <= 2, "{} segments", store.num_segments(BASE));
    assert_eq!(total(&store, "settled"), 1001);
    assert_eq!(total(&store, "next"), 50);
    assert_eq!(total(&store, "settled AND 777"), 1);
    let newest = store.search(&SearchRequest { filter: Filter::query("settled"), limit: 1, before: None }).unwrap();
    assert_eq!(newest.records[0].seq, 1001);
    // Survives a reopen, and resends are still dropped.
    drop(store);
    let mut store = open(directory.path());
    assert_eq!(total(&store, "settled"), 1001);
    let again = store.ingest(vec![record("node-a", 500, BASE + 500, "settled line 500")]).unwrap();
    assert_eq!(again.num_duplicates, 1);
    // compact_settled does the same in one call.
    assert_eq!(store.compact_settled(after_the_hour + HOUR, Duration::ZERO).unwrap(), 1);
    assert_eq!(store.num_segments(BASE), 1);
    assert_eq!(total(&store, "settled"), 1001);
}

#[test]
fn the_running_hour_is_merged_as_it_grows_and_a_past_hour_is_left_to_compaction() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    let wall = || drover_types::log::unix_nanos(std::time::SystemTime::now());
    // Not across the turn of the hour (the running hour would end mid-test).
    let left = HOUR - wall().rem_euclid(HOUR);
    if left < 30 * NANOS_PER_SECOND {
        std::thread::sleep(Duration::from_nanos(u64::try_from(left).unwrap() + 1_000_000));
    }
    let now = wall();
    let running_hour = now - now.rem_euclid(HOUR);
    let commits = |store: &mut LogStore, origin: &str, start: i64| {
        for commit in 0..20u64 {
            let records: Vec<LogRecord> = (0..10)
                .map(|index| {
                    let seq = commit * 10 + index + 1;
                    record(origin, seq, start + seq as i64, &format!("merge line {seq}"))
                })
                .collect();
            store.ingest(records).unwrap();
        }
    };
    commits(&mut store, "node-now", running_hour);
    commits(&mut store, "node-past", BASE);
    // Wait for the merges the commits started.
    store.close_writers().unwrap();
    assert!(store.num_segments(running_hour) < 20, "{} segments", store.num_segments(running_hour));
    assert_eq!(store.num_segments(BASE), 20, "a past hour waits for compaction");
    assert_eq!(total(&store, "merge"), 400);
    assert_eq!(store.compact_settled(now, Duration::ZERO).unwrap(), 1);
    assert_eq!(store.num_segments(BASE), 1);
    assert_eq!(total(&store, "merge"), 400);
}

#[test]
fn a_writer_open_when_its_span_ends_stops_merging_eagerly() {
    let directory = tempfile::tempdir().unwrap();
    // Two-second partitions, so that one ends during the test.
    let config = StoreConfig { partition_seconds: 2, ..small_config() };
    let mut store = LogStore::open_with(directory.path(), config).unwrap();
    let span = 2 * NANOS_PER_SECOND;
    let now = drover_types::log::unix_nanos(std::time::SystemTime::now());
    let start = now - now.rem_euclid(span);
    let ingest = |store: &mut LogStore, first_seq: u64| {
        let records: Vec<LogRecord> = (0..5)
            .map(|index| record("node-a", first_seq + index, start + (first_seq + index) as i64, "span line"))
            .collect();
        store.ingest(records).unwrap();
    };
    // The writer opens while the span runs (eager merges)…
    ingest(&mut store, 1);
    std::thread::sleep(Duration::from_nanos(u64::try_from(start + span - now).unwrap() + 100_000_000));
    // …and after it ended, late commits are left for compaction.
    for commit in 1..20u64 {
        ingest(&mut store, 1 + commit * 5);
    }
    store.close_writers().unwrap();
    assert_eq!(store.num_segments(start), 20, "no eager merge after the span ended");
    assert_eq!(total(&store, "span"), 100);
}

/// `tests/data/store-v2` was written by format version 2 (records as blobs
/// of tag `0x02`): the first 200 lines of loghub's OpenSSH sample as
/// `ingest_bench` ingests them (origin `bench`, nodes `node-0` to
/// `node-49`, one line per millisecond from 2024-01-02T00:00:00Z;
/// `NOSEARCH=1 target/release/examples/ingest_bench 200 DIR` with that
/// build). This build reads it, adds a version 3 partition (tag `0x03`
/// blobs) and answers phrases, words and fields alike in both: the live-tail
/// matcher's answers.
#[test]
fn reads_a_format_version_2_store_and_answers_alike_in_version_3_partitions() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v2");
    let directory = tempfile::tempdir().unwrap();
    copy_directory(&sample, directory.path());
    let day = 1_704_153_600 * NANOS_PER_SECOND;
    let mut store = open(directory.path());
    assert_eq!(store.partition_starts(), vec![day]);
    let old = all_records(&store, &Filter::default());
    assert_eq!(old.len(), 200);
    assert!(old.iter().all(|record| record.origin == "bench" && record.message.contains("sshd[")));

    // The same lines an hour later, from another origin (in seq order): a
    // new partition.
    let mut again: Vec<LogRecord> = old
        .iter()
        .map(|record| LogRecord { origin: "bench-3".to_owned(), timestamp: record.timestamp + HOUR, ..record.clone() })
        .collect();
    again.sort_by_key(|record| record.seq);
    assert_eq!(store.ingest(again).unwrap().num_accepted, 200);
    assert_eq!(store.partition_starts(), vec![day, day + HOUR]);
    let store_file = std::fs::read_to_string(directory.path().join("store.json")).unwrap();
    assert!(store_file.contains("\"version\":3"), "{store_file}");
    let queries = [
        ("\"failed password\"", true),
        ("\"password for\" root", true),
        ("\"invalid user\" -webmaster", true),
        ("NOT \"failed password\"", true),
        ("authentication.fail*", true),
        ("\"failed password for invalid\"", true),
        ("\"session opened\" OR \"received disconnect\"", true),
        ("\"possible break in attempt\"", true),
        ("\"password failed\"", false),
        ("\"user root\" AND node:node-7", true),
    ];
    for (query, has_matches) in queries {
        let expr = drover_logs::query::parse(query).unwrap();
        let expected = old.iter().filter(|record| drover_logs::matches(&expr, record)).count() as u64;
        assert_eq!(expected > 0, has_matches, "query {query:?}: {expected} lines of the sample");
        let in_hour = |start: i64| {
            total_in(
                &store,
                Filter { query: query.to_owned(), since: Some(start), until: Some(start + HOUR), ..Filter::default() },
            )
        };
        assert_eq!((in_hour(day), in_hour(day + HOUR)), (expected, expected), "query {query:?}");
    }
    // Pages of a phrase: the same records, newest first, in both formats.
    let page = all_records(&store, &Filter::query("\"failed password\""));
    let (new, old_hour): (Vec<_>, Vec<_>) = page.iter().partition(|record| record.origin == "bench-3");
    assert_eq!(new.len(), old_hour.len());
    assert!(new.iter().zip(&old_hour).all(|(new, old)| new.seq == old.seq && new.message == old.message));
}
