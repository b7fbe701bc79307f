//! What a test needs from the machine — a peer program (Prometheus,
//! Alertmanager, aiosmtpd, `logger`, `ip`), a Python module, root, a host
//! capability such as a writable cgroup2 — and the one decision about a
//! need that is not met:
//!
//! - under CI (`CI=true`) the test fails, naming what is missing and how to
//!   get it, so that a CI run cannot pass without having run the test;
//! - elsewhere it prints `SKIPPED: <what is missing> (<how to get it>)` and
//!   the test returns, passing: a developer without Prometheus can still
//!   run the suite, and reads in the output what it did not run.
//!
//! Installing is never a test's job: `scripts/install-test-deps` installs
//! every Debian package a test needs, and `scripts/test` runs it first.
//!
//! ```no_run
//! use drover_golden::needs::{self, Missing};
//!
//! // A test that talks to a real Prometheus:
//! if !needs::are_met([needs::program("/usr/bin/prometheus", "prometheus")]) {
//!     return;
//! }
//! // A need found out only by trying (mounting a tmpfs, say):
//! # let mounted: Result<(), String> = Ok(());
//! if let Err(reason) = mounted {
//!     return needs::unmet(Missing::privilege(format!("a tmpfs could not be mounted ({reason})")));
//! }
//! ```

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The script that installs every package a test needs.
pub const INSTALL_SCRIPT: &str = "scripts/install-test-deps";

/// Whether this run is under CI (the `CI` environment variable is `true`,
/// as CI services set it), where a test may not skip.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|value| value == "true")
}

/// Something a test needs that this machine lacks, and how to get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    what: String,
    remedy: Remedy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remedy {
    /// A Debian package that `scripts/install-test-deps` installs.
    Install,
    /// Root, or a capability of the host that comes with it.
    Root,
    /// A program of this workspace, built by the cargo command given.
    Build(&'static str),
}

impl Missing {
    /// A program or library from a Debian package: `what` names it and the
    /// package, e.g. "`prometheus` is not installed (Debian package
    /// prometheus)". `scripts/install-test-deps` installs it.
    pub fn package(what: impl Into<String>) -> Missing {
        Missing { what: what.into(), remedy: Remedy::Install }
    }

    /// A privilege, or a capability of the host that needs it (network
    /// namespaces, mounting, a writable cgroup2): `what` says what could
    /// not be done and why. The tests get it by running as root, as CI does.
    pub fn privilege(what: impl Into<String>) -> Missing {
        Missing { what: what.into(), remedy: Remedy::Root }
    }

    /// A program this workspace builds (`cargo test --workspace` builds it;
    /// a test of one crate may run before it exists): `command` builds it.
    pub fn build(what: impl Into<String>, command: &'static str) -> Missing {
        Missing { what: what.into(), remedy: Remedy::Build(command) }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.remedy {
            Remedy::Install => write!(formatter, "{} ({INSTALL_SCRIPT} installs it)", self.what),
            Remedy::Root => write!(formatter, "{} (run the tests as root, as CI does)", self.what),
            Remedy::Build(command) => write!(formatter, "{} (`{command}` builds it)", self.what),
        }
    }
}

/// Checks that `program` is installed: an absolute path must be a file, a
/// bare name must be a file in a `PATH` directory. `package` is the Debian
/// package that brings it.
pub fn program(program: &str, package: &str) -> Result<(), Missing> {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|directory| directory.join(program).is_file()))
    };
    if found {
        return Ok(());
    }
    Err(Missing::package(format!("`{program}` is not installed (Debian package {package})")))
}

/// Checks that `python` (a path or a name in `PATH`) can import `module`;
/// `package` is the Debian package that brings the module.
pub fn python_module(python: &str, module: &str, package: &str) -> Result<(), Missing> {
    let imported = Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if imported {
        return Ok(());
    }
    Err(Missing::package(format!("{python} cannot import {module} (Debian package {package})")))
}

/// Checks that the test runs as root; `purpose` says what needs it, e.g.
/// "switching users".
pub fn root(purpose: &str) -> Result<(), Missing> {
    match effective_uid() {
        Some(0) => Ok(()),
        Some(uid) => Err(Missing::privilege(format!("{purpose} needs root, and the tests run as uid {uid}"))),
        None => Err(Missing::privilege(format!("{purpose} needs root, and /proc/self/status gives no uid"))),
    }
}

/// The effective uid of this process, from `/proc/self/status` (its
/// `Uid:` line lists the real, effective, saved and file-system uids).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Whether every check passed. When one did not, decides as the module
/// says: under CI panics naming everything missing; elsewhere prints one
/// `SKIPPED: …` line per missing need and answers `false`, and the test
/// returns.
///
/// # Panics
///
/// Under CI, when a need is not met.
pub fn are_met(checks: impl IntoIterator<Item = Result<(), Missing>>) -> bool {
    let missing: Vec<Missing> = checks.into_iter().filter_map(Result::err).collect();
    if missing.is_empty() {
        return true;
    }
    decide(&missing, under_ci());
    false
}

/// Decides about a need found missing by trying (a mount, a namespace):
/// under CI panics, elsewhere prints `SKIPPED: …`; the test returns after
/// it (`return needs::unmet(…)`).
///
/// # Panics
///
/// Under CI.
pub fn unmet(missing: Missing) {
    decide(&[missing], under_ci());
}

fn decide(missing: &[Missing], is_ci: bool) {
    if is_ci {
        panic!("{}", ci_failure(missing));
    }
    for need in missing {
        eprintln!("{}", skipped_line(need));
    }
}

fn skipped_line(need: &Missing) -> String {
    format!("SKIPPED: {need}")
}

fn ci_failure(missing: &[Missing]) -> String {
    let lines: Vec<String> = missing.iter().map(|need| format!("  - {need}")).collect();
    format!("this test needs what the machine lacks, and under CI (CI=true) a test may not skip:\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_package_names_the_install_script() {
        let missing = program("/nonexistent/prometheus", "prometheus").unwrap_err();
        assert_eq!(
            skipped_line(&missing),
            "SKIPPED: `/nonexistent/prometheus` is not installed (Debian package prometheus) \
             (scripts/install-test-deps installs it)"
        );
    }

    #[test]
    fn a_missing_privilege_says_to_run_as_root() {
        let missing = Missing::privilege("switching users needs root, and the tests run as uid 1000");
        assert_eq!(
            skipped_line(&missing),
            "SKIPPED: switching users needs root, and the tests run as uid 1000 (run the tests as root, as CI does)"
        );
    }

    #[test]
    fn programs_are_found_by_path_and_by_name() {
        assert_eq!(program("/bin/sh", "dash"), Ok(()));
        assert_eq!(program("sh", "dash"), Ok(()));
        assert!(program("no-such-program-drover", "none").is_err());
    }

    #[test]
    fn python_modules_that_do_not_exist_are_missing() {
        let missing = python_module("/nonexistent/python3", "aiosmtpd", "python3-aiosmtpd").unwrap_err();
        assert!(missing.to_string().contains("cannot import aiosmtpd (Debian package python3-aiosmtpd)"), "{missing}");
    }

    #[test]
    fn the_effective_uid_is_read() {
        assert!(effective_uid().is_some());
    }

    #[test]
    fn met_needs_pass_everywhere() {
        assert!(are_met([Ok(()), Ok(())]));
    }

    #[test]
    fn outside_ci_a_missing_need_skips() {
        decide(&[Missing::package("x is not installed")], false);
    }

    #[test]
    fn under_ci_a_missing_need_fails_naming_all_of_them() {
        let missing = [Missing::package("x is not installed"), Missing::privilege("y needs root")];
        let failure = std::panic::catch_unwind(|| decide(&missing, true)).unwrap_err();
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(message.contains("under CI (CI=true) a test may not skip"), "{message}");
        assert!(message.contains("  - x is not installed (scripts/install-test-deps installs it)"), "{message}");
        assert!(message.contains("  - y needs root (run the tests as root, as CI does)"), "{message}");
    }
}
