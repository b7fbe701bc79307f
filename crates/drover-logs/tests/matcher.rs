#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The live-tail matcher gives the store's answer: generated records are
//! ingested once, then generated queries are run both ways and the sets of
//! records must be the same.

use std::collections::BTreeSet;

use drover_logs::matcher::Matcher;
use drover_logs::record::NANOS_PER_SECOND;
use drover_logs::{Filter, LogRecord, LogStore, SearchRequest, StoreConfig, query};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// 2024-01-02T03:00:00Z.
const BASE: i64 = 1_704_164_400 * NANOS_PER_SECOND;

/// Pieces of messages: words in several cases, punctuation, non-ASCII
/// (a final sigma lower-cases differently in `str::to_lowercase`), a word
/// too long to index, key=value pairs and level words.
const PIECES: [&str; 24] = [
    "failed",
    "Failed",
    "password",
    "PASSWORD",
    "root",
    "for",
    "from",
    "10.0.0.1",
    "10.0.0.2",
    "port",
    "22",
    "disk-full",
    "ΟΔΟΣ",
    "Straße",
    "東京",
    "user=alice",
    "user=Bob",
    "code=28",
    "http.status=200",
    "ERROR",
    "warn",
    "jk2_init()",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "a",
];

const NODES: [&str; 5] = ["web-1", "Web-2", "db-1", "ΟΔΟΣ", "cache"];
const JOBS: [Option<&str>; 4] = [None, Some("frontend"), Some("Postgres"), Some("batch-x")];

/// A small deterministic generator, so that a failure is reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

fn generated_records(count: usize) -> Vec<LogRecord> {
    let mut random = Lcg(7);
    (0..count)
        .map(|index| {
            let num_pieces = 1 + random.next(7);
            let separators = [" ", " ", ", ", " - ", ":"];
            let mut line = String::new();
            for piece_index in 0..num_pieces {
                if piece_index > 0 {
                    line.push_str(separators[random.next(separators.len())]);
                }
                line.push_str(PIECES[random.next(PIECES.len())]);
            }
            let node = NODES[random.next(NODES.len())];
            let origin = format!("origin-{}", index % 3);
            let mut record =
                drover_logs::record::from_line(&origin, index as u64 + 1, node, "task", "stdout", &line, BASE);
            record.timestamp = BASE + index as i64;
            record.job = JOBS[random.next(JOBS.len())].map(str::to_owned);
            if random.next(4) == 0 {
                record.stream = "Stderr".to_owned();
            }
            record
        })
        .collect()
}

/// A term of the query language, as text.
fn term() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "failed", "FAILED", "password", "root", "for", "22", "disk", "full", "ΟΔΟΣ", "οδοσ", "οδος", "straße",
            "東京", "alice", "error", "jk2", "init", "a", "nosuch",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "fail*",
            "pass*",
            "ro*",
            "10.0.*",
            "10.0.0.1",
            "10.0.0.2",
            "disk-full",
            "jk2_init",
            "failed.pass*",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "aaaa*",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "\"failed password\"",
            "\"password failed\"",
            "\"for root\"",
            "\"root from 10.0.0.1\"",
            "\"failed password for\"",
            "\"disk full\"",
            "\"ΟΔΟΣ straße\"",
            "\"a a\"",
            "\"...\"",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "node:web-1",
            "node:WEB-2",
            "node:web*",
            "node:οδοσ",
            "node:ΟΔΟΣ",
            "node:οδος",
            "job:frontend",
            "job:postgres",
            "job:batch*",
            "job:\"batch-x\"",
            "level:error",
            "level:warn",
            "level:w*",
            "user:alice",
            "user:bob",
            "user:b*",
            "code:28",
            "http.status:200",
            "origin:origin-1",
            "origin:ORIGIN*",
            "stream:stderr",
            "stream:std*",
            "source:task",
            "message:root",
            "message:\"for root\"",
            "nosuchfield:x",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A whole query: terms combined with AND, OR, NOT, `-` and parentheses.
fn query_text() -> impl Strategy<Value = String> {
    term().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("{left} {right}")),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("{left} AND {right}")),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("({left} OR {right})")),
            inner.clone().prop_map(|child| format!("NOT ({child})")),
            inner.prop_map(|child| format!("-({child})")),
        ]
    })
}

#[test]
fn the_matcher_agrees_with_the_store() {
    let directory = tempfile::tempdir().unwrap();
    let config = StoreConfig { writer_memory_bytes: 15_000_000, ..StoreConfig::default() };
    let mut store = LogStore::open_with(directory.path(), config).unwrap();
    let records = generated_records(400);
    // Several commits, so several segments.
    for chunk in records.chunks(150) {
        store.ingest(chunk.to_vec()).unwrap();
    }
    let identity = |record: &LogRecord| (record.origin.clone(), record.seq);
    let check = |text: &str| -> Result<usize, TestCaseError> {
        let expr = query::parse(text).map_err(|error| TestCaseError::fail(format!("{text:?}: {error}")))?;
        let page = store.search(&SearchRequest { filter: Filter::query(text), limit: 10_000, before: None }).unwrap();
        let from_store: BTreeSet<(String, u64)> = page.records.iter().map(identity).collect();
        let matcher = Matcher::new(&expr);
        let from_matcher: BTreeSet<(String, u64)> =
            records.iter().filter(|record| matcher.matches(record)).map(identity).collect();
        prop_assert_eq!(&from_store, &from_matcher, "query {:?}", text);
        Ok(from_store.len())
    };

    // Hand-picked cases first, with the counts they must have.
    for text in ["", "failed", "\"failed password\"", "node:οδοσ", "user:bob", "NOT nosuch", "\"...\""] {
        check(text).unwrap();
    }
    assert_eq!(check("nosuch").unwrap(), 0);
    assert_eq!(check("").unwrap(), records.len());
    assert!(check("\"failed password\"").unwrap() > 0);
    assert!(check("node:οδοσ").unwrap() > 0, "the final sigma is lower-cased as in the index");
    assert_eq!(check("node:οδος").unwrap(), 0);

    let mut runner = TestRunner::new(Config { cases: 300, ..Config::default() });
    let num_non_empty = std::cell::Cell::new(0usize);
    let result = runner.run(&query_text(), |text| {
        if check(&text)? > 0 {
            num_non_empty.set(num_non_empty.get() + 1);
        }
        Ok(())
    });
    let num_non_empty = num_non_empty.get();
    if let Err(error) = result {
        panic!("{error}");
    }
    assert!(num_non_empty > 50, "too few queries matched anything ({num_non_empty}): widen the generators");
}
