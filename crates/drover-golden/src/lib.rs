//! Golden-file tests, shared by the crates that pin parser output and error
//! messages in files (`tests/golden/`): each case's actual text is compared
//! with the expected file for its outcome (`NAME.json`/`NAME.ast`/… on
//! success, `NAME.err` on failure). With `UPDATE_GOLDEN=1` the expected
//! files are rewritten from the actual output instead (review the diff).
//!
//! [`needs`] is the other test support shared here: what a test needs from
//! the machine (a peer program, root), skipped locally and failed under CI
//! when missing.

pub mod needs;

use std::fs;
use std::path::Path;

/// Whether the expected files are being rewritten (`UPDATE_GOLDEN=1`).
pub fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1")
}

/// The case names (file names without `suffix`) in `directory`, sorted.
pub fn case_names(directory: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", directory.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|file_name| file_name.strip_suffix(suffix).map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Checks one case: `actual` against `expected_path` (the file of the
/// outcome that happened; `other_path` is the file of the other outcome).
/// Returns the failure to report, if any. When updating, writes
/// `expected_path`, removes `other_path` and never fails.
pub fn compare(name: &str, actual: &str, expected_path: &Path, other_path: &Path) -> Option<String> {
    if updating() {
        if let Some(parent) = expected_path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|error| panic!("cannot create {}: {error}", parent.display()));
        }
        fs::write(expected_path, actual)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", expected_path.display()));
        let _ = fs::remove_file(other_path);
        return None;
    }
    match fs::read_to_string(expected_path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => {
            Some(format!("{name}: {} differs\n--- expected\n{expected}--- actual\n{actual}", expected_path.display()))
        }
        Err(_) => Some(format!(
            "{name}: {} is missing (the other outcome was expected); actual:\n{actual}",
            expected_path.display()
        )),
    }
}

/// Panics with every failure, and how to rewrite the files.
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed (UPDATE_GOLDEN=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_and_a_missing_file_are_failures() {
        let directory = std::env::temp_dir().join(format!("drover-golden-{}", std::process::id()));
        fs::create_dir_all(&directory).unwrap_or_else(|error| panic!("{error}"));
        let expected = directory.join("case.ast");
        let other = directory.join("case.err");
        fs::write(&expected, "a\n").unwrap_or_else(|error| panic!("{error}"));
        if !updating() {
            assert_eq!(compare("case", "a\n", &expected, &other), None);
            assert!(compare("case", "b\n", &expected, &other).is_some_and(|failure| failure.contains("differs")));
            assert!(compare("case", "a\n", &other, &expected).is_some_and(|failure| failure.contains("missing")));
        }
        let _ = fs::remove_dir_all(&directory);
    }
}
