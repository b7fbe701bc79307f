#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden tests of the log query language.
//!
//! Every `tests/golden/NAME.query` is one case: the query text (a trailing
//! newline is not part of it). The expected result is `NAME.ast` (the
//! canonical printed form of the parsed query) or `NAME.err` (the exact
//! error message). Run with `UPDATE_GOLDEN=1` to rewrite the expected files
//! from the current output, then review the diff.

use std::fs;
use std::path::{Path, PathBuf};

fn golden_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

#[test]
fn golden_queries() {
    let directory = golden_directory();
    let names = drover_golden::case_names(&directory, ".query");
    assert!(names.len() >= 20, "expected the golden cases in {}", directory.display());
    let mut failures = Vec::new();
    for name in names {
        let text = fs::read_to_string(directory.join(format!("{name}.query"))).expect("readable case");
        let query = text.strip_suffix('\n').unwrap_or(&text);
        let ast_path = directory.join(format!("{name}.ast"));
        let error_path = directory.join(format!("{name}.err"));
        let (actual, expected_path, other_path) = match drover_logs::query::parse(query) {
            Ok(expr) => (format!("{expr}\n"), ast_path, error_path),
            Err(error) => (format!("{error}\n"), error_path, ast_path),
        };
        failures.extend(drover_golden::compare(&name, &actual, &expected_path, &other_path));
    }
    drover_golden::assert_no_failures(&failures);
}
