#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden tests of the site reader.
//!
//! Every `tests/golden/NAME.hcl` is a one-file site; every folder
//! `tests/golden/NAME.site/` is a whole site read with `drover_site::load_dir`.
//! Runbook paths are relative to `tests/golden/` (see `runbooks/`). The
//! expected result is `NAME.json` (the site as pretty JSON) or `NAME.err`
//! (the exact diagnostics).
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files from the
//! current output, then review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use drover_react::Site;
use drover_site::Source;

/// Relative, so that diagnostics of folder cases name files as a user
/// would see them (cargo runs tests in the package directory).
fn golden_directory() -> PathBuf {
    PathBuf::from("tests/golden")
}

fn render(result: Result<Site, drover_site::Diagnostics>, directory: &Path, name: &str) -> (String, PathBuf, PathBuf) {
    let json_path = directory.join(format!("{name}.json"));
    let error_path = directory.join(format!("{name}.err"));
    match result {
        Ok(site) => (serde_json::to_string_pretty(&site).expect("sites serialise") + "\n", json_path, error_path),
        Err(diagnostics) => (format!("{diagnostics}\n"), error_path, json_path),
    }
}

fn run_case(directory: &Path, file_name: &str) -> Option<(String, String, PathBuf, PathBuf)> {
    let path = directory.join(file_name);
    if let Some(name) = file_name.strip_suffix(".site") {
        if !path.is_dir() {
            return None;
        }
        let (actual, expected, other) = render(drover_site::load_dir(&path), directory, name);
        return Some((name.to_owned(), actual, expected, other));
    }
    let name = file_name.strip_suffix(".hcl")?;
    let text = fs::read_to_string(&path).expect("readable case");
    let result = drover_site::from_sources(&[Source::new(file_name, text)], directory);
    let (actual, expected, other) = render(result, directory, name);
    Some((name.to_owned(), actual, expected, other))
}

#[test]
fn golden_cases() {
    let directory = golden_directory();
    let mut file_names: Vec<String> = fs::read_dir(&directory)
        .expect("golden directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    file_names.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for file_name in file_names {
        let Some((name, actual, expected_path, other_path)) = run_case(&directory, &file_name) else {
            continue;
        };
        count += 1;
        failures.extend(drover_golden::compare(&name, &actual, &expected_path, &other_path));
    }
    assert!(count >= 10, "only {count} golden cases found");
    drover_golden::assert_no_failures(&failures);
}

#[test]
fn parsed_sites_round_trip_through_json() {
    let site = drover_site::load_dir(&golden_directory().join("product.site")).expect("the product example parses");
    let json = serde_json::to_string(&site).unwrap();
    let back: Site = serde_json::from_str(&json).unwrap();
    assert_eq!(back, site);
    assert!(Site::diff(&site, &back).is_empty());
}

#[test]
fn a_missing_folder_is_one_clear_error() {
    let error = drover_site::load_dir(Path::new("tests/golden/does-not-exist")).unwrap_err();
    assert!(error.to_string().starts_with("tests/golden/does-not-exist: cannot read the site folder:"), "{error}");
}

/// The product brief's example alert exactly as the brief writes it: a `{` inside the selector string
/// must not confuse drover-hcl's one-line-block splitter.
#[test]
fn product_md_one_line_when_parses() {
    let text = r#"
notifier "ops-chat" { webhook { url = "https://chat.example.org/hooks/ops" } }
alert "tmp-full" {
  when { metric = "disk_used_percent{mount=\"/tmp\"}"  above = 95  for = "5m" }
  severity = "warning"
  notify   = ["ops-chat"]
  runbook  = "https://ops.example.org/runbooks/tmp-full"
}
"#;
    let site = drover_site::from_sources(&[Source::new("alerts.hcl", text)], Path::new(".")).unwrap();
    assert_eq!(site.alerts["tmp-full"].hold.to_string(), "5m");
}
