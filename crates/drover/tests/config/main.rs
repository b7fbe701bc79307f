//! Golden tests of the configuration files of `drover server` and `drover
//! agent`, through the real binary and `--print-config`.
//!
//! Every directory `tests/config/golden/ROLE-NAME/` is one case, run as
//! `drover ROLE --config CONFIG --print-config ARGS…` in that directory,
//! with no `DROVER_*` variable but those of the case:
//!
//! - `CONFIG` is `config.hcl`, or `conf.d` (a directory) when there is one;
//! - `args`: more arguments, one a line;
//! - `env`: `KEY=value` lines, the environment.
//!
//! The expected result is `expected.out` (standard output, exit 0) or
//! `expected.err` (standard error, exit 1). Run with `UPDATE_GOLDEN=1` to
//! rewrite them from the current output, then review the diff.
//!
//! Besides the cases: every configuration that parses also parses again
//! from its own `--print-config` output with the same values, and the
//! example files of `packaging/` parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("config").join("golden")
}

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `drover ROLE ARGS…` in `directory`, with `env` as the only `DROVER_*`
/// variables.
fn drover(directory: &Path, role: &str, args: &[String], env: &[(String, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command.current_dir(directory).arg(role).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("DROVER_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(key, value)| (key, value))).output().expect("run drover")
}

/// The values of a `--print-config` output: its lines without comments.
fn values_of(printed: &str) -> Vec<String> {
    printed
        .lines()
        .map(|line| line.split("  # ").next().unwrap_or(line).trim_end().to_owned())
        .filter(|line| !line.trim_start().starts_with('#') && !line.is_empty())
        .collect()
}

/// What `--print-config` says about a config that parses, when its output
/// is read back as the only file (the same values), or a failure.
fn round_trip(role: &str, printed: &str, env: &[(String, String)], args: &[String]) -> Option<String> {
    let directory = tempfile::tempdir().expect("temporary directory");
    fs::write(directory.path().join("printed.hcl"), printed).expect("write the printed configuration");
    let mut arguments = vec!["--config".to_owned(), "printed.hcl".to_owned(), "--print-config".to_owned()];
    arguments.extend(args.iter().cloned());
    let output = drover(directory.path(), role, &arguments, env);
    let again = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Some(format!("its output does not parse again:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    (values_of(&again) != values_of(printed))
        .then(|| format!("read back, it prints other values:\n--- first\n{printed}--- again\n{again}"))
}

#[test]
fn golden_cases() {
    let mut failures = Vec::new();
    let mut names: Vec<String> = fs::read_dir(golden_directory())
        .expect("the golden directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the golden cases are missing: {names:?}");
    for name in names {
        let directory = golden_directory().join(&name);
        let role = name.split('-').next().expect("ROLE-NAME");
        assert!(role == "server" || role == "agent", "{name}: a case is named server-… or agent-…");
        let config = if directory.join("conf.d").is_dir() { "conf.d" } else { "config.hcl" };
        let mut args = vec!["--config".to_owned(), config.to_owned(), "--print-config".to_owned()];
        let extra = lines_of(&directory.join("args"));
        args.extend(extra.iter().cloned());
        let env: Vec<(String, String)> = lines_of(&directory.join("env"))
            .into_iter()
            .map(|line| {
                let (key, value) = line.split_once('=').expect("KEY=value");
                (key.to_owned(), value.to_owned())
            })
            .collect();
        let output = drover(&directory, role, &args, &env);
        let (out, err) = (directory.join("expected.out"), directory.join("expected.err"));
        let failure = if output.status.success() {
            let printed = String::from_utf8_lossy(&output.stdout).into_owned();
            drover_golden::compare(&name, &printed, &out, &err)
                .or_else(|| round_trip(role, &printed, &env, &extra).map(|failure| format!("{name}: {failure}")))
        } else {
            assert_eq!(output.status.code(), Some(1), "{name}: a bad configuration exits 1");
            drover_golden::compare(&name, &String::from_utf8_lossy(&output.stderr), &err, &out)
        };
        failures.extend(failure);
    }
    drover_golden::assert_no_failures(&failures);
}

#[test]
fn the_packaged_examples_parse() {
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    for role in ["server", "agent"] {
        let file = packaging.join(format!("{role}.hcl"));
        let args = vec!["--config".to_owned(), file.display().to_string(), "--print-config".to_owned()];
        let output = drover(&packaging, role, &args, &[]);
        assert!(
            output.status.success(),
            "packaging/{role}.hcl does not parse:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.contains(&format!("{role}.hcl:")), "no value came from the file:\n{printed}");
    }
}
