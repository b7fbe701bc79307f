#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden tests of the filter parser and of node-name expansion.
//!
//! - `tests/golden/NAME.filter` is one filter (the file's text without its
//!   final newline). The expected result is `NAME.ast` (the canonical form
//!   on the first line, then the expression as a tree) or `NAME.err` (the
//!   exact error text, caret lines included).
//! - `tests/golden/names/NAME.names` is one node-name pattern list; the
//!   expected result is `NAME.out` (one name a line) or `NAME.err`.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files from the current
//! output, then review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use drover_filter::{Filter, expand_names};

fn golden_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

/// The text of a case's input, without the final newline an editor adds.
fn read_input(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("readable case");
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

/// Compares (or, when updating, writes) every case of `directory`;
/// `run` gives the actual text and whether it is a success.
fn check_directory(
    directory: &Path,
    input_suffix: &str,
    success_suffix: &str,
    run: impl Fn(&str) -> (String, bool),
) -> Vec<String> {
    let names = drover_golden::case_names(directory, input_suffix);
    assert!(!names.is_empty(), "no cases in {}", directory.display());
    let mut failures = Vec::new();
    for name in names {
        let input = read_input(&directory.join(format!("{name}{input_suffix}")));
        let (actual, succeeded) = run(&input);
        let success_path = directory.join(format!("{name}{success_suffix}"));
        let error_path = directory.join(format!("{name}.err"));
        let (expected_path, other_path) =
            if succeeded { (success_path, error_path) } else { (error_path, success_path) };
        failures.extend(drover_golden::compare(&name, &actual, &expected_path, &other_path));
    }
    failures
}

fn run_filter(input: &str) -> (String, bool) {
    match Filter::parse(input) {
        Ok(filter) => (format!("{filter}\n\n{}", filter.expr().tree()), true),
        Err(error) => (format!("{error}\n"), false),
    }
}

fn run_names(input: &str) -> (String, bool) {
    match expand_names(input) {
        Ok(names) => (names.iter().map(|name| format!("{name}\n")).collect(), true),
        Err(error) => (format!("{error}\n"), false),
    }
}

#[test]
fn filter_cases() {
    drover_golden::assert_no_failures(&check_directory(&golden_directory(), ".filter", ".ast", run_filter));
}

#[test]
fn name_cases() {
    drover_golden::assert_no_failures(&check_directory(&golden_directory().join("names"), ".names", ".out", run_names));
}

/// Every successful case's canonical form parses back to the same filter.
#[test]
fn canonical_forms_of_the_cases_parse_back() {
    let directory = golden_directory();
    for name in drover_golden::case_names(&directory, ".filter") {
        let input = read_input(&directory.join(format!("{name}.filter")));
        if let Ok(filter) = Filter::parse(&input) {
            let reparsed = Filter::parse(&filter.to_string()).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(reparsed, filter, "{name}");
        }
    }
}
