#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A damaged partition on disk (garbage in `meta.json`, a truncated
//! postings file, a missing segment file, flipped footer bytes, a corrupt
//! term dictionary) costs its hour only: the store opens, the partition is
//! moved aside and listed, searches, counts and histograms answer from the
//! other partitions, and nothing panics.
//!
//! Every test builds a real store of three hourly partitions (03:00, 04:00,
//! 05:00), closes it, damages the 04:00 one's files, and opens it again.

use std::ops::Range;
use std::path::{Path, PathBuf};

use drover_logs::record::NANOS_PER_SECOND;
use drover_logs::store::QUARANTINE_FOLDER;
use drover_logs::{Filter, LogRecord, LogStore, SearchRequest, StoreConfig};

/// 2024-01-02T03:00:00Z.
const BASE: i64 = 1_704_164_400 * NANOS_PER_SECOND;
const HOUR: i64 = 3600 * NANOS_PER_SECOND;
/// The partition that is damaged: 04:00.
const DAMAGED_HOUR: &str = "20240102T040000Z";
const RECORDS_PER_HOUR: usize = 10;
/// The note written into a partition moved aside.
const QUARANTINE_NOTE_NAME: &str = "quarantine.json";

fn record(origin: &str, seq: u64, timestamp: i64, message: &str) -> LogRecord {
    let mut record = drover_logs::record::from_line(origin, seq, origin, "task", "stdout", message, timestamp);
    record.timestamp = timestamp;
    record
}

fn open(directory: &Path) -> LogStore {
    LogStore::open_with(directory, StoreConfig { writer_memory_bytes: 15_000_000, ..StoreConfig::default() })
        .expect("the store opens whatever one partition holds")
}

/// A store of three hours of `line in hour N` records, closed.
fn three_hours() -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    let mut store = open(directory.path());
    for hour in 0..3u64 {
        let batch = (0..RECORDS_PER_HOUR as u64)
            .map(|index| {
                let seq = hour * 100 + index + 1;
                record("node-a", seq, BASE + hour as i64 * HOUR + index as i64, &format!("line in hour {hour}"))
            })
            .collect();
        store.ingest(batch).unwrap();
    }
    store.close_writers().unwrap();
    directory
}

/// The damaged partition's files ending in `.extension`.
fn damaged_files(directory: &Path, extension: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = std::fs::read_dir(directory.join(DAMAGED_HOUR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|found| found == extension))
        .collect();
    assert!(!files.is_empty(), "no .{extension} file to damage");
    files
}

fn search_all(store: &LogStore) -> drover_logs::SearchPage {
    store.search(&SearchRequest { filter: Filter::query("line"), limit: 1000, before: None }).unwrap()
}

fn hours_of(records: &[LogRecord]) -> Vec<i64> {
    let mut hours: Vec<i64> = records.iter().map(|record| (record.timestamp - BASE) / HOUR).collect();
    hours.dedup();
    hours
}

/// The store opened over a damaged 04:00 partition: 03:00 and 05:00 are
/// served, 04:00 is moved aside and listed, new records of 04:00 go to a
/// new partition, and the quarantine is listed again after a restart.
fn assert_quarantined_and_the_others_served(directory: &Path) {
    let mut store = open(directory);
    assert_eq!(store.partition_starts(), vec![BASE, BASE + 2 * HOUR]);
    let quarantined = store.quarantined().to_vec();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].name, DAMAGED_HOUR);
    assert!(!quarantined[0].reason.is_empty());
    assert!(quarantined[0].path.starts_with(directory.join(QUARANTINE_FOLDER)), "{:?}", quarantined[0].path);
    assert!(quarantined[0].path.join("meta.json").exists(), "the folder is moved as it was, not deleted");
    assert!(!directory.join(DAMAGED_HOUR).exists());

    let page = search_all(&store);
    assert_eq!(hours_of(&page.records), [2, 0], "newest first, without the damaged hour");
    assert_eq!(page.total_matching, 2 * RECORDS_PER_HOUR as u64);
    assert_eq!(page.damaged, vec![]);
    let counts = store.count_by(&Filter::query("line"), "node", 10).unwrap();
    assert_eq!(counts.counts, vec![("node-a".to_owned(), 2 * RECORDS_PER_HOUR as u64)]);
    let histogram = store.histogram(&Filter::query("line"), HOUR).unwrap();
    assert_eq!(histogram.buckets, vec![(BASE, 10), (BASE + 2 * HOUR, 10)]);

    // The hour goes on in a new partition.
    store.ingest(vec![record("node-b", 1, BASE + HOUR + 5, "line late in hour 1")]).unwrap();
    assert_eq!(hours_of(&search_all(&store).records), [2, 1, 0]);
    drop(store);

    let store = open(directory);
    assert_eq!(store.partition_starts(), vec![BASE, BASE + HOUR, BASE + 2 * HOUR]);
    assert_eq!(store.quarantined(), quarantined.as_slice(), "listed until an operator deals with it");
    assert_eq!(search_all(&store).records.len(), 2 * RECORDS_PER_HOUR + 1);
}

#[test]
fn garbage_in_a_partitions_meta_json_quarantines_that_partition_only() {
    let directory = three_hours();
    std::fs::write(directory.path().join(DAMAGED_HOUR).join("meta.json"), b"\x00{\"segments\": [garbage").unwrap();
    assert_quarantined_and_the_others_served(directory.path());
}

#[test]
fn a_truncated_postings_file_quarantines_its_partition_only() {
    let directory = three_hours();
    for path in damaged_files(directory.path(), "idx") {
        let length = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(length / 2).unwrap();
    }
    assert_quarantined_and_the_others_served(directory.path());
}

#[test]
fn a_missing_segment_file_quarantines_its_partition_only() {
    let directory = three_hours();
    for path in damaged_files(directory.path(), "store") {
        std::fs::remove_file(path).unwrap();
    }
    assert_quarantined_and_the_others_served(directory.path());
}

#[test]
fn flipped_bytes_in_a_footer_quarantine_their_partition_only() {
    let directory = three_hours();
    for path in damaged_files(directory.path(), "fast") {
        let mut bytes = std::fs::read(&path).unwrap();
        let length = bytes.len();
        // tantivy's footer ends with its length and a magic number.
        for byte in &mut bytes[length - 6..] {
            *byte ^= 0xff;
        }
        std::fs::write(&path, bytes).unwrap();
    }
    assert_quarantined_and_the_others_served(directory.path());
}

#[test]
fn a_footer_that_makes_tantivy_panic_while_opening_quarantines_its_partition_only() {
    let directory = three_hours();
    for path in damaged_files(directory.path(), "term") {
        let mut bytes = std::fs::read(&path).unwrap();
        let body_end = tantivy_body_end(&bytes);
        // The length of the composite file's table of fields: beyond the
        // start of the file, tantivy subtracts past zero.
        bytes[body_end - 4..body_end].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
    }
    assert_quarantined_and_the_others_served(directory.path());
}

#[test]
fn a_partition_folder_with_segment_files_but_no_meta_json_is_quarantined_not_deleted() {
    let directory = three_hours();
    std::fs::remove_file(directory.path().join(DAMAGED_HOUR).join("meta.json")).unwrap();
    let store = open(directory.path());
    assert_eq!(store.partition_starts(), vec![BASE, BASE + 2 * HOUR]);
    let quarantined = store.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].path.join(QUARANTINE_NOTE_NAME).exists());
    let num_segment_files = std::fs::read_dir(&quarantined[0].path)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|extension| extension == "store"))
        .count();
    assert_eq!(num_segment_files, 1, "the records are kept");
}

#[test]
fn a_corrupt_term_dictionary_fails_only_its_partition_in_searches_counts_and_histograms() {
    let directory = three_hours();
    for path in damaged_files(directory.path(), "term") {
        let mut bytes = std::fs::read(&path).unwrap();
        // Every field's term dictionary ends with the length of its term
        // infos (u64), the fst version (u32) and the dictionary type (u32):
        // a length beyond the dictionary makes tantivy slice out of range
        // ("range start index 18446744073709551587 out of range" in a
        // release build) when a search opens it.
        for section in term_dictionaries(&bytes) {
            let too_long = (section.len() as u64 + 29).to_le_bytes();
            bytes[section.end - 16..section.end - 8].copy_from_slice(&too_long);
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let mut store = open(directory.path());
    assert_eq!(store.partition_starts(), vec![BASE, BASE + HOUR, BASE + 2 * HOUR], "the damage is not seen at open");

    let page = search_all(&store);
    assert_eq!(hours_of(&page.records), [2, 0]);
    assert_eq!(page.total_matching, 2 * RECORDS_PER_HOUR as u64);
    assert_eq!(page.damaged.len(), 1, "{:?}", page.damaged);
    assert_eq!(page.damaged[0].name, DAMAGED_HOUR);
    assert_eq!(page.damaged[0].start, BASE + HOUR);
    assert!(page.damaged[0].reason.contains("damaged"), "{}", page.damaged[0].reason);
    assert_eq!(store.damaged(), page.damaged, "remembered until moved aside");

    // Later searches skip it (no second panic) and still name it.
    let counts = store.count_by(&Filter::query("line"), "node", 10).unwrap();
    assert_eq!(counts.counts, vec![("node-a".to_owned(), 2 * RECORDS_PER_HOUR as u64)]);
    assert_eq!(counts.damaged, page.damaged);
    let histogram = store.histogram(&Filter::query("line"), HOUR).unwrap();
    assert_eq!(histogram.buckets, vec![(BASE, 10), (BASE + 2 * HOUR, 10)]);
    assert_eq!(histogram.damaged, page.damaged);
    // A search that does not reach the damaged hour does not name it.
    let old_hour = Filter { since: Some(BASE), until: Some(BASE + HOUR), ..Filter::query("line") };
    let page_of_old_hour = store.search(&SearchRequest { filter: old_hour, limit: 100, before: None }).unwrap();
    assert_eq!((page_of_old_hour.records.len(), page_of_old_hour.damaged.len()), (RECORDS_PER_HOUR, 0));

    let moved = store.quarantine_damaged();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].name, DAMAGED_HOUR);
    assert!(moved[0].reason.contains("damaged"), "{}", moved[0].reason);
    assert_eq!(store.quarantined(), moved.as_slice());
    assert_eq!(store.damaged(), vec![]);
    assert_eq!(store.partition_starts(), vec![BASE, BASE + 2 * HOUR]);
    assert_eq!(search_all(&store).damaged, vec![]);
    drop(store);

    let store = open(directory.path());
    assert_eq!(store.quarantined(), moved.as_slice(), "the reason is kept with the folder");
}

#[test]
fn records_of_an_hour_found_damaged_go_to_a_new_partition() {
    let directory = three_hours();
    for path in damaged_files(directory.path(), "term") {
        let mut bytes = std::fs::read(&path).unwrap();
        for section in term_dictionaries(&bytes) {
            let too_long = (section.len() as u64 + 29).to_le_bytes();
            bytes[section.end - 16..section.end - 8].copy_from_slice(&too_long);
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let mut store = open(directory.path());
    assert_eq!(search_all(&store).damaged.len(), 1);
    // Not into the damaged partition, which is moved aside first: an
    // acknowledged record stays searchable.
    store.ingest(vec![record("node-b", 1, BASE + HOUR + 5, "line late in hour 1")]).unwrap();
    assert_eq!(store.quarantined().len(), 1);
    let page = search_all(&store);
    assert_eq!(page.damaged, vec![]);
    assert_eq!(hours_of(&page.records), [2, 1, 0]);
    assert_eq!(page.total_matching, 2 * RECORDS_PER_HOUR as u64 + 1);
}

// ---------------------------------------------------------------------------
// tantivy's file layout, just enough to damage the right bytes.

/// Where the data of a tantivy file ends: every file ends with a footer of
/// JSON, its length (u32) and a magic number (u32).
fn tantivy_body_end(bytes: &[u8]) -> usize {
    let footer_json_length = u32_at(bytes, bytes.len() - 8);
    bytes.len() - 8 - footer_json_length
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// tantivy's variable-length integer: 7 bits a byte, the last byte's high bit set.
fn read_vint(bytes: &[u8], at: &mut usize) -> usize {
    let mut value = 0;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 != 0 {
            return value;
        }
        shift += 7;
    }
}

/// The byte ranges of the fields' term dictionaries in a `.term` file (a
/// composite file: the fields' data, then a table of `(offset delta,
/// field, index)` and its length).
fn term_dictionaries(bytes: &[u8]) -> Vec<Range<usize>> {
    let body_end = tantivy_body_end(bytes);
    let table_start = body_end - 4 - u32_at(bytes, body_end - 4);
    let mut at = table_start;
    let num_fields = read_vint(bytes, &mut at);
    let mut offsets = Vec::with_capacity(num_fields + 1);
    let mut offset = 0;
    for _ in 0..num_fields {
        offset += read_vint(bytes, &mut at);
        offsets.push(offset);
        at += 4; // the field
        read_vint(bytes, &mut at); // the index
    }
    offsets.push(table_start);
    offsets.windows(2).map(|pair| pair[0]..pair[1]).filter(|range| range.len() >= 16).collect()
}
