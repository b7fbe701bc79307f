//! The packages' pieces, checked against the binary without building one
//! (scripts/package and docs/install.md): the systemd units start drover
//! with flags and a configuration it accepts, their state directories are
//! the data directories of packaging/*.hcl, the agent's unit leaves tasks
//! running when it stops, `systemd-analyze verify` accepts both units, the
//! package metadata names files that exist, the maintainer scripts are
//! valid shell and `scripts/package --help` works.
//!
//! Run with `cargo test -p drover --test packaging`. The release build and
//! the packages themselves are made by scripts/package, not here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use drover_golden::needs;

/// The drover binary under test.
fn drover_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drover"))
}

/// The root of the workspace.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The text of a file of the workspace.
fn read(relative: &str) -> String {
    let path = workspace().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// A systemd unit of packaging/systemd: its name and its `Key=value` lines.
struct Unit {
    name: &'static str,
    text: String,
}

impl Unit {
    fn load(name: &'static str) -> Unit {
        Unit { name, text: read(&format!("packaging/systemd/{name}")) }
    }

    /// Every value of `key`, in order (comments excluded).
    fn values(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}=");
        self.text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    }

    /// The one value of `key`; fails the test if there is none or several.
    fn value(&self, key: &str) -> String {
        let values = self.values(key);
        assert_eq!(values.len(), 1, "{}: expected one {key}=, found {values:?}", self.name);
        values.into_iter().next().unwrap()
    }
}

/// The units' `ExecStart`, run with the binary under test, the repository's
/// example configuration for `/etc/drover/…` and `--print-config` added.
fn print_config_of(unit: &Unit) -> Output {
    let exec_start = unit.value("ExecStart");
    let mut words = exec_start.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/drover"), "{}: ExecStart runs /usr/bin/drover", unit.name);
    let arguments: Vec<String> = words
        .map(|word| match word.strip_prefix("/etc/drover/") {
            Some(file) => workspace().join("packaging").join(file).display().to_string(),
            None => word.to_owned(),
        })
        .collect();
    Command::new(drover_binary()).args(&arguments).arg("--print-config").env_remove("DROVER_LOG").output().unwrap()
}

#[test]
fn units_start_drover_with_flags_and_files_it_accepts() {
    for (name, file) in [("drover-server.service", "server.hcl"), ("drover-agent.service", "agent.hcl")] {
        let unit = Unit::load(name);
        let output = print_config_of(&unit);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: its ExecStart with --print-config failed: {stderr}");
        let config = workspace().join("packaging").join(file);
        assert!(
            stdout.contains(&format!("Files read, in order: {}", config.display())),
            "{name}: --print-config does not say it read {}:\n{stdout}",
            config.display()
        );
    }
}

#[test]
fn state_directories_are_the_data_directories_of_the_example_configuration() {
    for (name, role) in [("drover-server.service", "server"), ("drover-agent.service", "agent")] {
        let unit = Unit::load(name);
        let state_directory = unit.value("StateDirectory");
        assert_eq!(state_directory, format!("drover/{role}"), "{name}");
        let stdout = String::from_utf8(print_config_of(&unit).stdout).unwrap();
        let data_dir = format!("data_dir = \"/var/lib/{state_directory}\"");
        assert!(stdout.contains(&data_dir), "{name}: the effective configuration lacks {data_dir}:\n{stdout}");
        // Older systemd (EL7's 219) has no StateDirectory=: the packages
        // create the directory themselves, with the same owner.
        for script in ["packaging/deb/postinst", "packaging/rpm/post"] {
            assert!(
                read(script).contains(&format!("/var/lib/{state_directory}")),
                "{script} creates /var/lib/{state_directory}"
            );
        }
    }
}

#[test]
fn units_restart_on_failure_with_many_files_and_no_notify() {
    // drover does not implement sd_notify: Type=notify would leave systemd
    // waiting for a READY=1 that never comes.
    let sources_notify = std::fs::read_dir(workspace().join("crates")).unwrap().any(|krate| {
        let src = krate.unwrap().path().join("src");
        contains_recursively(&src, "NOTIFY_SOCKET")
    });
    for name in ["drover-server.service", "drover-agent.service"] {
        let unit = Unit::load(name);
        let expected_type = if sources_notify { "notify" } else { "simple" };
        assert_eq!(unit.value("Type"), expected_type, "{name}");
        assert_eq!(unit.value("Restart"), "on-failure", "{name}");
        let files: u64 = unit.value("LimitNOFILE").parse().unwrap();
        assert!(files >= 65536, "{name}: LimitNOFILE={files}");
        assert_eq!(unit.value("ExecReload"), "/bin/kill -HUP $MAINPID", "{name}: SIGHUP reloads");
    }
}

/// Whether a file under `dir` contains `needle`.
fn contains_recursively(dir: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            contains_recursively(&path, needle)
        } else {
            std::fs::read_to_string(&path).is_ok_and(|text| text.contains(needle))
        }
    })
}

#[test]
fn the_server_runs_as_drover_in_a_sandbox_and_the_agent_as_root_without_one() {
    let server = Unit::load("drover-server.service");
    assert_eq!(server.value("User"), "drover");
    assert_eq!(server.value("ProtectSystem"), "strict");
    assert_eq!(server.value("ProtectHome"), "true");

    let agent = Unit::load("drover-agent.service");
    // Tasks run under executor shims that must outlive the agent.
    assert_eq!(agent.value("KillMode"), "process");
    assert!(agent.values("User").is_empty(), "the agent runs as root: it switches to the tasks' users");
    // A sandbox of the agent would be the sandbox of every task.
    for key in ["ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges"] {
        assert!(agent.values(key).is_empty(), "drover-agent.service sets {key}, which every task would inherit");
    }
    // Both maintainer scripts create the server's user.
    for script in ["packaging/deb/postinst", "packaging/rpm/pre"] {
        assert!(read(script).contains("useradd --system --gid drover"), "{script} creates the drover user");
    }
}

#[test]
fn systemd_analyze_verifies_both_units() {
    if !needs::are_met([needs::program("systemd-analyze", "systemd")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The units as installed, but starting the binary under test; the man
    // pages their Documentation= names, generated by it.
    let man1 = dir.path().join("man/man1");
    let status = Command::new(drover_binary()).arg("man").arg("--dir").arg(&man1).output().unwrap();
    assert!(status.status.success(), "drover man --dir: {}", String::from_utf8_lossy(&status.stderr));
    let mut units = Vec::new();
    for name in ["drover-server.service", "drover-agent.service"] {
        let text = read(&format!("packaging/systemd/{name}"))
            .replace("/usr/bin/drover", &drover_binary().display().to_string());
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("MANPATH", dir.path().join("man"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify failed:\n{stderr}");
    let complaints: Vec<&str> = stderr.lines().filter(|line| line.contains("drover-")).collect();
    assert!(complaints.is_empty(), "systemd-analyze verify complains:\n{stderr}");
}

#[test]
fn package_metadata_installs_the_binary_units_configuration_man_pages_and_completions() {
    let manifest = read("crates/drover/Cargo.toml");
    let (_, metadata) =
        manifest.split_once("[package.metadata.deb]").expect("crates/drover/Cargo.toml has [package.metadata.deb]");
    let (deb, rpm) =
        metadata.split_once("[package.metadata.generate-rpm]").expect("and [package.metadata.generate-rpm]");
    for (format, section, units) in [("deb", deb, "lib/systemd/system"), ("rpm", rpm, "/usr/lib/systemd/system")] {
        for destination in [
            "usr/bin/drover".to_owned(),
            "etc/drover/server.hcl".to_owned(),
            "etc/drover/agent.hcl".to_owned(),
            format!("{units}/drover-server.service"),
            format!("{units}/drover-agent.service"),
            "usr/share/man/man1/".to_owned(),
            "bash-completion/completions/drover".to_owned(),
            "_drover".to_owned(),
            "drover.fish".to_owned(),
        ] {
            assert!(section.contains(&destination), "the {format} installs nothing at {destination}");
        }
    }
    // Files of the repository the packages take as they are must exist.
    let crate_dir = workspace().join("crates/drover");
    for source in metadata.split('"').filter(|word| word.starts_with("../../") && !word.starts_with("../../target/")) {
        assert!(crate_dir.join(source).exists(), "the package metadata names {source}, which does not exist");
    }
    assert!(deb.contains(r#"conf-files = ["/etc/drover/server.hcl", "/etc/drover/agent.hcl"]"#));
    assert_eq!(rpm.matches(r#"config = "noreplace""#).count(), 2, "both .hcl files are %config(noreplace)");
}

#[test]
fn maintainer_scripts_are_valid_shell() {
    for script in ["deb/postinst", "deb/prerm", "deb/postrm", "rpm/pre", "rpm/post", "rpm/preun", "rpm/postun"] {
        let path = workspace().join("packaging").join(script);
        let output = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(output.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn package_script_explains_itself_and_refuses_unknown_arguments() {
    let script = workspace().join("scripts/package");
    let help = Command::new(&script).arg("--help").output().unwrap();
    assert!(help.status.success());
    let usage = String::from_utf8(help.stdout).unwrap();
    assert!(usage.contains("x86_64-unknown-linux-gnu.2.17"), "{usage}");
    assert!(usage.contains("--binary PATH"), "{usage}");

    let wrong = Command::new(&script).arg("--frobnicate").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unknown argument '--frobnicate'"));
}
