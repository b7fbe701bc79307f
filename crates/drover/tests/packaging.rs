//! The packages' pieces, checked against the binary without building one
//! (scripts/package and docs/install.md): the systemd units start drover
//! with flags and a configuration it accepts, their state directories are
//! the data directories of packaging/*.hcl, the agent's unit leaves tasks
//! running when it stops, `systemd-analyze verify` accepts both units, the
//! package metadata names files that exist, the maintainer scripts are
//! valid shell and `scripts/package --help` works.
//!
//! As root, one test also builds the .deb and the .rpm from the binary under
//! test (`scripts/package --fast --deb-only --rpm-only --binary …`), lists
//! the rpm with `rpm -qlp`, and installs, removes and purges the .deb on
//! this machine with dpkg, putting the machine back as it was.
//!
//! Run with `cargo test -p drover --test packaging`. The glibc 2.17 release
//! build is made by scripts/package, not here.

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
    let scripts = ["deb/postinst", "deb/prerm", "deb/postrm", "rpm/pre", "rpm/post", "rpm/preun", "rpm/postun"];
    for script in scripts.into_iter().chain(["stop-without-systemd"]) {
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

/// What `dpkg-query` says of the `drover` package: `None` when dpkg knows
/// no such package, else its status ("install ok installed",
/// "deinstall ok config-files").
fn drover_package_status() -> Option<String> {
    let output = Command::new("dpkg-query").args(["-W", "-f=${Status}", "drover"]).output().unwrap();
    let status = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !status.is_empty() && status != "unknown ok not-installed").then_some(status)
}

/// The pids of the processes running /usr/bin/drover (also a deleted one).
fn installed_drover_processes() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(entry.path().join("exe")).ok()?;
            exe.to_str()?.starts_with("/usr/bin/drover").then_some(pid)
        })
        .collect()
}

/// Runs `command`, failing the test with its output unless it succeeds.
fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Puts the machine back as the dpkg test found it, also when it fails:
/// purges the package, and deletes what the package keeps on purge (the
/// state directory, the `drover` user and group) unless they were there
/// before.
struct Restore {
    had_state: bool,
    had_user: bool,
    had_group: bool,
    server: Option<std::process::Child>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = Command::new("dpkg").args(["--purge", "drover"]).output();
        if !self.had_state {
            let _ = std::fs::remove_dir_all("/var/lib/drover");
        }
        if !self.had_user {
            let _ = Command::new("userdel").arg("drover").output();
        }
        if !self.had_group {
            let _ = Command::new("groupdel").arg("drover").output();
        }
    }
}

fn entry_exists(database: &str, name: &str) -> bool {
    Command::new("getent").args([database, name]).output().unwrap().status.success()
}

/// The whole life of the .deb on this machine, made by scripts/package from
/// the binary under test (`--fast`, no glibc 2.17 build): `dpkg -i` creates
/// the `drover` user and the state directories without a running systemd,
/// installs the binary, the units, the conffiles, the man pages and the
/// completions; `dpkg -r` stops a running `drover server` of /usr/bin/drover
/// and keeps /var/lib/drover and the conffiles; `dpkg -P` deletes the
/// conffiles and still keeps /var/lib/drover and the user (docs/install.md).
/// The .rpm of the same run is checked with `rpm -qlp`. Needs root, dpkg,
/// rpm, cargo-deb and cargo-generate-rpm; refuses to run where a drover
/// package is installed already.
#[test]
fn the_deb_installs_runs_and_removes_cleanly_and_the_rpm_lists_its_files() {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let cargo_tool = |name: &str| -> Result<(), needs::Missing> {
        let in_cargo_home = cargo_home.as_ref().is_some_and(|home| home.join("bin").join(name).is_file());
        if in_cargo_home || needs::program(name, "none").is_ok() {
            Ok(())
        } else {
            Err(needs::Missing::build(format!("`{name}` is not installed"), "scripts/install-test-deps"))
        }
    };
    if !needs::are_met([
        needs::root("installing a .deb"),
        needs::program("dpkg", "dpkg"),
        needs::program("rpm", "rpm"),
        needs::program("objcopy", "binutils"),
        cargo_tool("cargo-deb"),
        cargo_tool("cargo-generate-rpm"),
    ]) {
        return;
    }
    if let Some(status) = drover_package_status() {
        let message = format!(
            "a drover package is already on this machine ({status}); this test installs and purges its own, so it does not run here"
        );
        assert!(!needs::under_ci(), "{message}");
        eprintln!("SKIPPED: {message}");
        return;
    }
    assert!(
        !Path::new("/usr/bin/drover").exists(),
        "/usr/bin/drover exists but belongs to no package: remove it before running this test"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let package = run_ok(
        Command::new(workspace().join("scripts/package"))
            .args(["--fast", "--deb-only", "--rpm-only", "--binary"])
            .arg(drover_binary())
            .arg("--out")
            .arg(&out)
            .env("DROVER_PACKAGE_ANY_GLIBC", "1")
            .current_dir(workspace()),
    );
    let version = env!("CARGO_PKG_VERSION");
    let deb = out.join(format!("drover_{version}-1_amd64.deb"));
    let rpm = out.join(format!("drover-{version}-1.x86_64.rpm"));
    assert!(
        deb.is_file() && rpm.is_file(),
        "scripts/package made no {} or {}:\n{package}",
        deb.display(),
        rpm.display()
    );

    // The rpm: its files, its configuration files and its scriptlets.
    let files = run_ok(Command::new("rpm").arg("-qlp").arg(&rpm));
    for path in [
        "/usr/bin/drover",
        "/usr/lib/drover/stop-without-systemd",
        "/etc/drover/server.hcl",
        "/etc/drover/agent.hcl",
        "/usr/lib/systemd/system/drover-server.service",
        "/usr/lib/systemd/system/drover-agent.service",
        "/usr/share/man/man1/drover.1.gz",
        "/usr/share/bash-completion/completions/drover",
    ] {
        assert!(files.lines().any(|line| line == path), "rpm -qlp lists no {path}:\n{files}");
    }
    let config = run_ok(Command::new("rpm").arg("-qcp").arg(&rpm));
    assert_eq!(config.lines().collect::<Vec<_>>(), ["/etc/drover/agent.hcl", "/etc/drover/server.hcl"]);
    let scripts = run_ok(Command::new("rpm").arg("-qp").arg("--scripts").arg(&rpm));
    assert!(scripts.contains("useradd --system --gid drover"), "{scripts}");
    // An erase without systemd stops server and agent as the .deb's prerm
    // does (that one is run for real below).
    let preuninstall = scripts.split("preuninstall scriptlet").nth(1).unwrap_or_default();
    assert!(preuninstall.contains("/usr/lib/drover/stop-without-systemd"), "{scripts}");

    let mut restore = Restore {
        had_state: Path::new("/var/lib/drover").exists(),
        had_user: entry_exists("passwd", "drover"),
        had_group: entry_exists("group", "drover"),
        server: None,
    };

    // Install: no systemd runs here, the postinst copes.
    run_ok(Command::new("dpkg").arg("-i").arg(&deb).env("DEBIAN_FRONTEND", "noninteractive"));
    assert_eq!(drover_package_status().as_deref(), Some("install ok installed"));
    let reported = run_ok(Command::new("/usr/bin/drover").arg("--version"));
    assert_eq!(reported.trim(), format!("drover {version}"));
    for path in [
        "/lib/systemd/system/drover-server.service",
        "/lib/systemd/system/drover-agent.service",
        "/usr/share/man/man1/drover.1.gz",
        "/usr/share/bash-completion/completions/drover",
        "/usr/share/zsh/vendor-completions/_drover",
        "/usr/share/fish/vendor_completions.d/drover.fish",
    ] {
        assert!(Path::new(path).is_file(), "the .deb installed no {path}");
    }
    let conffiles = run_ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "drover"]));
    let conffiles: Vec<&str> = conffiles.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert_eq!(conffiles, ["/etc/drover/server.hcl", "/etc/drover/agent.hcl"]);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let agent_hcl = std::fs::metadata("/etc/drover/agent.hcl").unwrap();
    assert_eq!(agent_hcl.permissions().mode() & 0o777, 0o600, "agent.hcl may hold the join token");
    let user = run_ok(Command::new("getent").args(["passwd", "drover"]));
    assert!(user.trim_end().ends_with(":/var/lib/drover:/usr/sbin/nologin"), "the drover user: {user}");
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(std::fs::metadata("/var/lib/drover/server").unwrap().uid(), uid, "the server owns its state");
    assert_eq!(std::fs::metadata("/var/lib/drover/agent").unwrap().permissions().mode() & 0o777, 0o700);
    // The installed units, with the installed binary and man pages.
    if needs::program("systemd-analyze", "systemd").is_ok() {
        let verify = Command::new("systemd-analyze")
            .args(["verify", "/lib/systemd/system/drover-server.service", "/lib/systemd/system/drover-agent.service"])
            .env("SYSTEMD_LOG_LEVEL", "notice")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success(), "systemd-analyze verify of the installed units:\n{stderr}");
    }

    // A server of the installed binary, as the unit would run it (without
    // systemd to stop it, the prerm does), and state that must survive.
    let marker = Path::new("/var/lib/drover/agent/kept-by-the-test");
    std::fs::write(marker, "kept").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Command::new("/usr/bin/drover")
        .args(["server", "--insecure", "--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("server"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server_pid = server.id();
    restore.server = Some(server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the installed drover server never listened on {port}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Remove: the server stops, the state and the conffiles stay.
    let removed = run_ok(Command::new("dpkg").args(["-r", "drover"]));
    assert!(removed.contains("Removing drover"), "{removed}");
    assert!(removed.contains(&format!("drover: stopping drover server/agent processes: {server_pid}")), "{removed}");
    let status = restore.server.as_mut().unwrap().wait().unwrap();
    assert!(status.code().is_some(), "the server exited on SIGTERM by itself, not killed: {status}");
    restore.server = None;
    let left = installed_drover_processes();
    assert!(left.is_empty(), "dpkg -r left drover processes {left:?} (the server was {server_pid})");
    assert!(!Path::new("/usr/bin/drover").exists());
    assert_eq!(drover_package_status().as_deref(), Some("deinstall ok config-files"));
    assert!(Path::new("/etc/drover/server.hcl").is_file(), "dpkg -r keeps the conffiles");
    assert_eq!(std::fs::read_to_string(marker).unwrap(), "kept", "dpkg -r keeps /var/lib/drover");

    // Purge: the conffiles go; the state and the user stay (postrm).
    run_ok(Command::new("dpkg").args(["-P", "drover"]));
    assert_eq!(drover_package_status(), None);
    assert!(!Path::new("/etc/drover/server.hcl").exists(), "dpkg -P deletes the conffiles");
    assert!(marker.is_file(), "dpkg -P keeps /var/lib/drover");
    assert!(entry_exists("passwd", "drover"), "dpkg -P keeps the drover user (it may own files elsewhere)");
    drop(restore);
    if !Path::new("/var/lib/drover").exists() {
        assert!(!marker.exists());
    }
}
