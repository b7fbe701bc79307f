//! Golden tests of the job file parser.
//!
//! Every `tests/golden/NAME.nomad.hcl` is one case. Optional inputs beside
//! it:
//!
//! - `NAME.vars`: `name=value` lines, passed as `-var` arguments in order;
//! - `NAME.var-file.hcl`: passed as a `-var-file`;
//! - `NAME.env`: `KEY=value` lines, the environment.
//!
//! The expected result is `NAME.json` (the parsed job as pretty JSON) or
//! `NAME.err` (the exact diagnostics text). The files in the repository's
//! `examples/` folder are cases too, expected to parse, with their JSON in
//! `tests/golden/examples/`.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files from the current
//! output, then review the diff.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use drover_jobspec::{Source, VarInputs, parse_job, parse_job_file};

const INPUT_SUFFIX: &str = ".nomad.hcl";

fn golden_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

fn examples_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("examples")
}

fn key_value_lines(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| VarInputs::parse_cli_var(line).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
        .collect()
}

fn inputs_for(directory: &Path, name: &str) -> VarInputs {
    let var_file_path = directory.join(format!("{name}.var-file.hcl"));
    let files = fs::read_to_string(&var_file_path)
        .map(|text| vec![Source::new(format!("{name}.var-file.hcl"), text)])
        .unwrap_or_default();
    let env: BTreeMap<String, String> = key_value_lines(&directory.join(format!("{name}.env"))).into_iter().collect();
    VarInputs { cli: key_value_lines(&directory.join(format!("{name}.vars"))), files, env }
}

/// The output of one case and the file it is compared with.
fn run_case(input_directory: &Path, expected_directory: &Path, name: &str) -> (String, PathBuf, PathBuf) {
    let file_name = format!("{name}{INPUT_SUFFIX}");
    let text = fs::read_to_string(input_directory.join(&file_name)).expect("readable case");
    let result = parse_job(&Source::new(file_name, text), &inputs_for(input_directory, name));
    let json_path = expected_directory.join(format!("{name}.json"));
    let error_path = expected_directory.join(format!("{name}.err"));
    match result {
        Ok(job) => (serde_json::to_string_pretty(&job).expect("jobs serialise") + "\n", json_path, error_path),
        Err(diagnostics) => (format!("{diagnostics}\n"), error_path, json_path),
    }
}

/// Compares (or, when updating, writes) every case of a directory; returns
/// the failures.
fn check_directory(input_directory: &Path, expected_directory: &Path, must_parse: bool) -> Vec<String> {
    let names = drover_golden::case_names(input_directory, INPUT_SUFFIX);
    assert!(!names.is_empty(), "no cases in {}", input_directory.display());
    let mut failures = Vec::new();
    for name in names {
        let (actual, expected_path, other_path) = run_case(input_directory, expected_directory, &name);
        if must_parse && expected_path.extension().is_some_and(|extension| extension == "err") {
            failures.push(format!("{name}: expected to parse, got:\n{actual}"));
            continue;
        }
        failures.extend(drover_golden::compare(&name, &actual, &expected_path, &other_path));
    }
    failures
}

#[test]
fn golden_cases() {
    let directory = golden_directory();
    drover_golden::assert_no_failures(&check_directory(&directory, &directory, false));
}

#[test]
fn job_files_are_read_from_disk_with_their_path_as_name() {
    let path = examples_directory().join("hello.nomad.hcl");
    let job = parse_job_file(&path, &VarInputs::default()).expect("the hello example parses");
    assert_eq!(job.id.as_str(), "hello");

    let missing = golden_directory().join("does-not-exist.nomad.hcl");
    let error = parse_job_file(&missing, &VarInputs::default()).expect_err("a missing file is an error");
    let message = error.to_string();
    assert!(message.starts_with(&format!("{}: cannot read the file:", missing.display())), "{message}");
}

#[test]
fn examples_parse() {
    let failures = check_directory(&examples_directory(), &golden_directory().join("examples"), true);
    assert!(failures.is_empty(), "{} example(s) failed:\n\n{}", failures.len(), failures.join("\n"));
}
