//! Golden tests of the policy file reader.
//!
//! `tests/golden/NAME.hcl` is one policy file. The expected result is
//! `NAME.rules` (the description, then each rule as [`format_rule`] writes
//! it, in the order read) or `NAME.err` (the exact diagnostics, one
//! `file:line:column: message` a line).
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files from the current
//! output, then review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use drover_acl::{format_rule, parse_policy};

fn golden_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

/// The actual text of a case, and whether the file was read.
fn run(file_name: &str, text: &str) -> (String, bool) {
    match parse_policy(file_name, text) {
        Ok(policy) => {
            let mut output = format!("description: {}\n", policy.description.as_deref().unwrap_or("(none)"));
            for rule in &policy.rules {
                output.push_str(&format_rule(rule));
                output.push('\n');
            }
            // What is printed reads back to the same rules.
            let printed: Vec<String> = policy.rules.iter().map(format_rule).collect();
            let reread = parse_policy("printed", &printed.join("\n")).unwrap();
            assert_eq!(reread.rules, policy.rules, "{file_name}: the printed rules read back differently");
            (output, true)
        }
        Err(diagnostics) => (format!("{diagnostics}\n"), false),
    }
}

#[test]
fn policy_files() {
    let directory = golden_directory();
    let names = drover_golden::case_names(&directory, ".hcl");
    assert!(!names.is_empty(), "no cases in {}", directory.display());
    let mut failures = Vec::new();
    for name in names {
        let file_name = format!("{name}.hcl");
        let text = fs::read_to_string(directory.join(&file_name)).expect("readable case");
        let (actual, succeeded) = run(&file_name, &text);
        assert_eq!(
            succeeded,
            name.starts_with("ok_"),
            "{name}: cases named ok_* must read, others must not:\n{actual}"
        );
        let rules_path = directory.join(format!("{name}.rules"));
        let error_path = directory.join(format!("{name}.err"));
        let (expected_path, other_path) = if succeeded { (rules_path, error_path) } else { (error_path, rules_path) };
        failures.extend(drover_golden::compare(&name, &actual, &expected_path, &other_path));
    }
    drover_golden::assert_no_failures(&failures);
}
