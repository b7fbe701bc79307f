//! No input makes the selection languages panic or run away: arbitrary
//! text, soups of each grammar's tokens, edits of the golden cases and
//! pathological shapes (deep nesting, huge ranges, long input) into the log
//! query parser, the node filter parser (and the evaluation and printing of
//! what parses) and the node-name expansion all end in `Ok` or in an error
//! that prints.
//!
//! `tests/properties.rs` holds the round-trip properties; this file is
//! only about hostile input. 256 cases per property by default;
//! `PROPTEST_CASES=20000` searches longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use drover_filter::{Filter, MapRecord, expand_names, fold_names, log_query};
use proptest::prelude::*;

/// Pieces that are special somewhere: separators, quotes, escapes, numbers
/// at and past the limits of their types, unicode of every width.
const HOSTILE_PIECES: &[&str] = &[
    "",
    " ",
    "\0",
    "\t",
    "\n",
    "\r",
    "\\",
    "\\\\",
    "\"",
    "'",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "..",
    "-",
    "*",
    "?",
    ":",
    "!",
    "=",
    "~",
    "0",
    "-0",
    "00",
    "1e400",
    "-1e400",
    "NaN",
    "inf",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999",
    "0.",
    ".5",
    "é",
    "\u{301}",
    "\u{202e}",
    "\u{feff}",
    "\u{10ffff}",
    "😀",
    "👨‍👩‍👧‍👦",
    "ｆ",
];

/// The log query language's tokens.
const QUERY_TOKENS: &[&str] = &[
    "failed",
    "error",
    "AND",
    "OR",
    "NOT",
    "and",
    "or",
    "not",
    "-",
    "(",
    ")",
    "\"",
    "\\\"",
    "\\\\",
    "*",
    ":",
    "node:",
    "level:",
    "job:",
    "user:",
    "message:",
    "_x.y-z:",
    "batch*",
    "bat*ch",
    "\"Out of memory\"",
    "\"",
    "10.0.0.1",
    "http://x",
    "web-1",
    "-web",
    "--",
    "é:",
    "1:2:3",
    " ",
    "  ",
    "\t",
];

/// The node filter language's tokens.
const FILTER_TOKENS: &[&str] = &[
    "name",
    "id",
    "hostgroup",
    "environment",
    "owner",
    "zone",
    "datacenter",
    "status",
    "eligibility",
    "eligible",
    "protected",
    "draining",
    "attr.cpu.numcores",
    "attr.kernel.version",
    "attr.",
    "attr..x",
    "meta.rack",
    "meta.",
    "node.unique.name",
    "node.hostgroup",
    "nmae",
    "and",
    "or",
    "not",
    "has",
    "in",
    "is",
    "set",
    "matches",
    "true",
    "false",
    "&&",
    "||",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "!~",
    "=",
    "(",
    ")",
    "[",
    "]",
    ",",
    "\"ready\"",
    "\"dwon\"",
    "\"bi/**\"",
    "\"bi/**/b\"",
    "\"[!a-z]\"",
    "\"[\"",
    "\"[]\"",
    "\"\\\\\"",
    "\"\\\"",
    "'x'",
    "\"5.10\"",
    "\"(\"",
    "\"(a+)+$\"",
    "\"\\\\p{Greek}\"",
    "\"a{1000}{1000}\"",
    "\"",
    "16",
    "-1",
    "1.5",
    "1.",
    "1e3",
    "99999999999999999999999",
];

/// Node-name pattern pieces.
const NAME_TOKENS: &[&str] = &[
    "batch",
    "gpu",
    "n",
    "-",
    "_",
    ".",
    "{",
    "}",
    ",",
    "..",
    "0",
    "00",
    "1",
    "01",
    "9",
    "10",
    "99",
    "099",
    "100",
    "-1",
    "a",
    "z",
    "A",
    "é",
    "4294967296",
    "18446744073709551616",
    "{00..99}",
    "{1..20}",
    "{10..1}",
    "{0..20..5}",
    "{0..20..0}",
    "{0..20..-5}",
    "{a..f}",
    "{z..a}",
    "{a..}",
    "{..1}",
    "{gpu,cpu}",
    "{,-canary}",
    "{,}",
    "{{",
    "}}",
    " ",
    ", ",
];

/// A record with every kind of field, to evaluate what parses against.
fn record() -> MapRecord {
    MapRecord::new()
        .with("name", "batch07")
        .with("id", "0b7e-44")
        .with("hostgroup", "bi/batch/gridworker")
        .with("environment", "qa")
        .with("status", "ready")
        .with("eligibility", "eligible")
        .with("eligible", true)
        .with("protected", false)
        .with("attr.cpu.numcores", "16")
        .with("attr.kernel.version", "5.14.0-362")
        .with("meta.rack", "r12")
}

fn check_query(text: &str) {
    match log_query::parse(text) {
        Ok(expression) => {
            let _ = expression.to_string();
        }
        Err(error) => {
            assert!(error.column >= 1, "{text:?}: {error}");
            let _ = error.to_string();
        }
    }
}

fn check_filter(text: &str) {
    match Filter::parse(text) {
        Ok(filter) => {
            let _ = filter.matches(&record());
            let _ = filter.matches(&MapRecord::new());
            let _ = filter.expr().tree();
            // What is printed parses again (the properties test says to the same filter).
            let printed = filter.to_string();
            assert!(Filter::parse(&printed).is_ok(), "{text:?} printed as {printed:?}, which does not parse");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

fn check_names(text: &str) {
    if let Ok(names) = expand_names(text) {
        assert!(names.len() <= drover_filter::MAX_NAMES, "{text:?}");
        assert!(names.iter().all(|name| !name.is_empty()), "{text:?}");
        let _ = fold_names(&names);
    }
}

/// Text made of `tokens` and hostile pieces.
fn soup(tokens: &'static [&'static str], max_len: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(tokens),
        1 => prop::sample::select(HOSTILE_PIECES),
    ];
    let separator = prop::sample::select(vec!["", " ", " ", " "]);
    prop::collection::vec((piece, separator), 0..max_len)
        .prop_map(|parts| parts.into_iter().map(|(piece, separator)| format!("{piece}{separator}")).collect())
}

/// `text` with the pieces at `edits` (position, piece) put in place of
/// one character each.
fn edit(text: &str, edits: &[(usize, usize)], pieces: &[&str]) -> String {
    let mut characters: Vec<char> = text.chars().collect();
    for (position, piece) in edits {
        let replacement: Vec<char> = pieces[piece % pieces.len()].chars().collect();
        if characters.is_empty() {
            characters = replacement;
            continue;
        }
        let index = position % characters.len();
        characters.splice(index..=index, replacement);
    }
    characters.into_iter().collect()
}

/// The inputs of the golden cases with `suffix` in `folder`.
fn golden_inputs(folder: &Path, suffix: &str) -> Vec<String> {
    let mut inputs: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .map(|path| std::fs::read_to_string(path).unwrap().trim_end_matches('\n').to_owned())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no {suffix} cases in {}", folder.display());
    inputs
}

fn golden_folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

proptest! {
    #[test]
    fn log_queries_of_arbitrary_text_never_panic(text in any::<String>()) {
        check_query(&text);
    }

    #[test]
    fn log_queries_of_tokens_never_panic(text in soup(QUERY_TOKENS, 40)) {
        check_query(&text);
    }

    #[test]
    fn filters_of_arbitrary_text_never_panic(text in any::<String>()) {
        check_filter(&text);
    }

    #[test]
    fn filters_of_tokens_never_panic(text in soup(FILTER_TOKENS, 30)) {
        check_filter(&text);
    }

    #[test]
    fn edited_golden_filters_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<usize>(), any::<usize>()), 1..5),
    ) {
        let seeds = golden_inputs(&golden_folder(), ".filter");
        let mut pieces = FILTER_TOKENS.to_vec();
        pieces.extend_from_slice(HOSTILE_PIECES);
        check_filter(&edit(seed.get::<String>(&seeds), &edits, &pieces));
    }

    #[test]
    fn names_of_arbitrary_text_never_panic(text in any::<String>()) {
        check_names(&text);
    }

    #[test]
    fn names_of_tokens_never_panic(text in soup(NAME_TOKENS, 24)) {
        check_names(&text);
    }

    #[test]
    fn edited_golden_names_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<usize>(), any::<usize>()), 1..5),
    ) {
        let seeds = golden_inputs(&golden_folder().join("names"), ".names");
        let mut pieces = NAME_TOKENS.to_vec();
        pieces.extend_from_slice(HOSTILE_PIECES);
        check_names(&edit(seed.get::<String>(&seeds), &edits, &pieces));
    }

    #[test]
    fn folding_arbitrary_names_never_panics(names in prop::collection::vec(soup(NAME_TOKENS, 4), 0..20)) {
        let _ = fold_names(&names);
    }
}

/// Shapes that a recursive parser or an eager expansion would choke on:
/// each must end quickly in an error (or a bounded result).
#[test]
fn pathological_inputs_end_in_errors() {
    const DEEP: usize = 100_000;
    for text in [
        "(".repeat(DEEP),
        ")".repeat(DEEP),
        "NOT ".repeat(DEEP) + "a",
        "- ".repeat(DEEP) + "a",
        "-".repeat(DEEP) + "a",
        "(".repeat(DEEP) + "a" + &")".repeat(DEEP),
        "a OR ".repeat(DEEP) + "a",
        "\"".repeat(DEEP + 1),
        "\\".repeat(DEEP),
        "x:".repeat(DEEP),
        "a".repeat(10 * DEEP),
    ] {
        check_query(&text);
    }
    for text in [
        "(".repeat(DEEP),
        "not ".repeat(DEEP) + "protected",
        "!".repeat(DEEP) + "protected",
        "(".repeat(DEEP) + "protected" + &")".repeat(DEEP),
        "protected and ".repeat(DEEP) + "protected",
        "name =~ \"a*\" or ".repeat(1000) + "protected",
        format!("name matches \"{}\"", "(a+)+".repeat(1000)),
        format!("name matches \"{}\"", "a{1000}".repeat(100)),
        format!("hostgroup =~ \"{}\"", "**/".repeat(10_000)),
        format!("name in [{}]", "\"a*\",".repeat(10_000)),
        format!("attr.cpu.numcores > {}", "9".repeat(10_000)),
        format!("meta.{} is set", "a.".repeat(10_000) + "a"),
        "\"".repeat(DEEP + 1),
        "x".repeat(drover_filter::MAX_INPUT_CHARS + 1),
    ] {
        check_filter(&text);
    }
    for text in [
        "{".repeat(DEEP),
        "}".repeat(DEEP),
        "{a,".repeat(DEEP),
        "n{0..18446744073709551615}".to_owned(),
        "n{0..99999999999999999999999}".to_owned(),
        "n{0..4294967295..1}".to_owned(),
        "n{0..10..18446744073709551615}".to_owned(),
        "n{00..99}".repeat(20),
        "{0..9}".repeat(64),
        "{a,b}".repeat(200),
        "{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h}"
            .to_owned(),
        "n{1..99999},".repeat(100),
        "a,".repeat(DEEP),
        "x".repeat(DEEP),
        format!("{}x{}", "{a,".repeat(31), "}".repeat(31)),
    ] {
        check_names(&text);
    }
}

/// Found by `names_of_arbitrary_text_never_panic`: `fold_names` cut a name
/// one byte after the last non-digit before its number, inside that
/// character when it is not ASCII ("start byte index 1 is not a char
/// boundary" in `split_number`). Node names come from the agents.
#[test]
fn folding_names_with_a_non_ascii_character_before_the_number() {
    assert_eq!(fold_names(["é0"]), "é0");
    assert_eq!(fold_names(["በ0"]), "በ0");
    assert_eq!(fold_names(["сервер01", "сервер02", "сервер03"]), "сервер{01..03}");
    assert_eq!(expand_names("сервер{01..03}").unwrap(), ["сервер01", "сервер02", "сервер03"]);
}
