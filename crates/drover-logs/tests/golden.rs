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

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1")
}

#[test]
fn golden_queries() {
    let directory = golden_directory();
    let mut names: Vec<String> = fs::read_dir(&directory)
        .expect("the golden directory is readable")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|file_name| file_name.strip_suffix(".query").map(str::to_owned))
        .collect();
    names.sort();
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
        if updating() {
            fs::write(&expected_path, &actual).expect("writable golden file");
            let _ = fs::remove_file(&other_path);
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: {} differs\n--- expected\n{expected}--- actual\n{actual}",
                expected_path.display()
            )),
            Err(_) => failures.push(format!(
                "{name}: {} is missing (the other outcome was expected); actual:\n{actual}",
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed (UPDATE_GOLDEN=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
