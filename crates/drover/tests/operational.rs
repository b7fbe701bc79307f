//! drover's operational output, tested on the real binary: its own log
//! lines (plain, short, quiet at a clean stop; JSON; journal priorities),
//! the `drover dev` banner, a closed stdout, colour on a terminal only,
//! Nomad's single-dash flags, shell completion and man pages.
//!
//! Run with `cargo test -p drover --test operational`. Each test starts its
//! own `drover dev` on a free port and stops it (tasks included) at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use drover_golden::needs;

/// The drover binary under test.
fn drover_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drover"))
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `drover dev` with its stdout and stderr in files, stopped (and its
/// tasks killed) when dropped.
struct Dev {
    dir: tempfile::TempDir,
    address: String,
    child: Option<Child>,
}

impl Dev {
    /// Starts `drover dev` with drover's default log settings (whatever
    /// `DROVER_LOG*`, `NO_COLOR` or `JOURNAL_STREAM` the test runner has is
    /// removed), plus `env` and `args`, and waits for its banner.
    fn start(env: &[(&str, &str)], args: &[&str]) -> Dev {
        Dev::start_with(env, args, |_| {})
    }

    fn start_with(env: &[(&str, &str)], args: &[&str], prepare: impl FnOnce(&mut Command)) -> Dev {
        let dir = tempfile::Builder::new().prefix("drover-op-").tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(drover_binary());
        command
            .args(["dev", "--bind", &address, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("DROVER_LOG")
            .env_remove("DROVER_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout")).unwrap())
            .stderr(File::create(dir.path().join("stderr")).unwrap());
        prepare(&mut command);
        let child = command.spawn().unwrap();
        let dev = Dev { dir, address, child: Some(child) };
        dev.wait_for("the banner", |dev| dev.stdout().contains("Press Ctrl-C to stop"));
        dev
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Polls until `condition` holds; panics with both outputs after 60 s.
    fn wait_for(&self, what: &str, condition: impl Fn(&Dev) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, and the exit status.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "drover dev did not stop on SIGINT\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A CLI command against this dev server, stdout and stderr captured.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().unwrap()
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(drover_binary());
        command.args(args).env("DROVER_ADDR", &self.address).env_remove("NO_COLOR").stdin(Stdio::null());
        command
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drover_executor::kill_processes_under(self.dir.path());
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dev_logs_are_plain_short_lines_and_a_clean_stop_prints_no_error_or_warning() {
    let mut dev = Dev::start(&[], &[]);
    let started = dev.stderr();
    let num_startup_lines = started.lines().count();

    // The banner: printed last, with the API and dashboard URLs, the example
    // job and what to do next.
    let stdout = dev.stdout();
    let banner = &stdout[stdout.find("drover dev is running").expect("a banner")..];
    assert!(banner.contains(&format!("  API          http://{}\n", dev.address)), "{banner}");
    assert!(banner.contains(&format!("  Dashboard    http://{}/ui/\n", dev.address)), "{banner}");
    assert!(banner.contains("job \"hello\" running, allocation "), "{banner}");
    assert!(banner.contains("Next steps"), "{banner}");
    assert!(banner.contains("drover job status hello"), "{banner}");
    // Last: the start-up is over (the task runs) before it is printed.
    assert!(started.contains("task started"), "start-up lines come first:\n{started}");

    let status = dev.interrupt();
    assert!(status.success(), "a clean exit: {status:?}\n{}", dev.stderr());
    let stderr = dev.stderr();
    assert!(!stderr.contains('\x1b'), "no escape codes in a log file:\n{stderr}");
    assert!(!dev.stdout().contains('\x1b'), "no escape codes on a piped stdout");
    for line in stderr.lines() {
        assert!(line.len() <= 2000, "a log line of {} bytes: {}…", line.len(), &line[..200]);
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(level != "ERROR" && level != "WARN", "an error or warning in a clean run and stop: {line}\n{stderr}");
    }
    // Libraries log at warn: nothing of openraft's start-up chatter.
    assert!(!stderr.contains("RaftCore") && !stderr.contains("get_initial_state"), "{stderr}");
    eprintln!("drover dev: {num_startup_lines} log lines up to the banner, {} in all", stderr.lines().count());
}

#[test]
fn json_log_lines_are_one_object_each_and_journal_lines_carry_their_priority() {
    // `-log-format=json`, Nomad style, on the command line.
    let mut dev = Dev::start(&[], &["-log-format=json"]);
    dev.interrupt();
    let stderr = dev.stderr();
    assert!(stderr.lines().count() >= 3, "{stderr}");
    for line in stderr.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
        assert!(event["message"].is_string(), "{line}");
    }
    drop(dev);

    // stderr is the journal when JOURNAL_STREAM names it: the priority
    // prefix of sd-daemon(3), no colour, no timestamp. (A file stands in
    // for the journal's socket: what counts is that its device and inode
    // are those JOURNAL_STREAM names.)
    let journal_dir = tempfile::tempdir().unwrap();
    let journal_path = journal_dir.path().join("journal");
    let journal_stream = File::create(&journal_path).unwrap();
    let stream_id = {
        use std::os::unix::fs::MetadataExt;
        let metadata = journal_stream.metadata().unwrap();
        format!("{}:{}", metadata.dev(), metadata.ino())
    };
    let mut dev = Dev::start_with(&[("JOURNAL_STREAM", &stream_id)], &[], |command| {
        command.stderr(journal_stream);
    });
    dev.interrupt();
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    assert!(journal.lines().any(|line| line.starts_with("<6>")), "info lines carry <6>:\n{journal}");
    for line in journal.lines() {
        assert!(line.starts_with('<') && line.as_bytes().get(2) == Some(&b'>'), "a priority prefix: {line}");
        assert!(!line.contains('\x1b'), "{line}");
        assert!(!line[3..].trim_start().starts_with("20"), "no timestamp in the journal: {line}");
    }
}

/// Runs a command with stdout connected to a pipe whose reader has already
/// gone, as when `head` has exited.
fn with_closed_stdout(mut command: Command) -> Output {
    let (reader, writer): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(reader);
    command.stdout(Stdio::from(writer)).stderr(Stdio::piped());
    command.output().unwrap()
}

#[test]
fn a_closed_stdout_ends_cli_commands_quietly_with_status_zero() {
    let dev = Dev::start(&[], &[]);
    // The example's first line is indexed, so `logs search` has a line to print.
    dev.wait_for("a log line of the example job", |dev| {
        text(&dev.cli(&["logs", "search", "hello", "--json"]).stdout).contains("hello from")
    });
    for args in [
        &["job", "status", "hello"][..],
        &["job", "status"],
        &["node", "status"],
        &["logs", "search", "hello"],
        &["alloc", "logs", "--help"],
        &["completions", "bash"],
        &["man"],
    ] {
        let output = with_closed_stdout(dev.cli_command(args));
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "drover {args:?}: {:?}\n{stderr}", output.status);
        // `logs search` counts its lines on stderr; nothing else is said.
        let said: Vec<&str> = stderr.lines().filter(|line| !line.contains("matching lines")).collect();
        assert!(said.is_empty(), "drover {args:?} says nothing more on stderr: {stderr}");
    }
    // And as typed in a shell.
    let pipeline =
        format!("{} job status hello | head -1; echo \"status ${{PIPESTATUS[0]}}\"", drover_binary().display());
    let output = Command::new("bash").args(["-c", &pipeline]).env("DROVER_ADDR", &dev.address).output().unwrap();
    assert_eq!(text(&output.stderr), "");
    assert!(text(&output.stdout).ends_with("status 0\n"), "{}", text(&output.stdout));
}

#[test]
fn status_words_are_coloured_on_a_terminal_only() {
    if !needs::are_met([needs::program("script", "bsdutils")]) {
        return;
    }
    let dev = Dev::start(&[], &[]);
    let on_a_terminal = |no_color: Option<&str>| {
        let line = format!("{} job status hello", drover_binary().display());
        let mut command = Command::new("script");
        command.args(["-qec", &line, "/dev/null"]).env("DROVER_ADDR", &dev.address).env("TERM", "xterm");
        match no_color {
            Some(value) => command.env("NO_COLOR", value),
            None => command.env_remove("NO_COLOR"),
        };
        let output = command.stdin(Stdio::null()).output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stdout));
        text(&output.stdout)
    };
    let coloured = on_a_terminal(None);
    assert!(coloured.contains("\x1b[32mrunning\x1b[0m"), "running is green on a terminal:\n{coloured:?}");
    let plain = on_a_terminal(Some("1"));
    assert!(!plain.contains('\x1b') && plain.contains("running"), "NO_COLOR: no colour\n{plain:?}");
    let piped = dev.cli(&["job", "status", "hello"]);
    assert!(!text(&piped.stdout).contains('\x1b') && text(&piped.stdout).contains("running"));
}

#[test]
fn nomad_single_dash_long_flags_are_accepted_everywhere() {
    let dev = Dev::start(&[], &[]);
    let address = format!("-address=http://{}", dev.address);
    // `-json` and `-address=…` on `job status`.
    let output = Command::new(drover_binary())
        .args(["job", "status", "-json", &address, "hello"])
        .env_remove("DROVER_ADDR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["job"]["id"], "hello", "{status}");

    // `node status` without a node lists the nodes, as Nomad's does.
    let output = dev.cli(&["node", "status", "-json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
    let listed = dev.cli(&["node", "status"]);
    assert!(text(&listed.stdout).contains("ready"), "{}", text(&listed.stdout));

    // `job run -detach -var …`, `job stop -purge`.
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("sleepy.nomad.hcl");
    std::fs::write(
        &job,
        r#"variable "seconds" { default = "1" }
job "sleepy" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/sleep"
        args    = ["${var.seconds}"]
      }
    }
  }
}
"#,
    )
    .unwrap();
    let run = dev.cli(&["job", "run", "-detach", "-var", "seconds=30", job.to_str().unwrap()]);
    assert!(run.status.success(), "{}{}", text(&run.stdout), text(&run.stderr));
    let stop = dev.cli(&["job", "stop", "-purge", "sleepy"]);
    assert!(stop.status.success(), "{}{}", text(&stop.stdout), text(&stop.stderr));
    let gone = dev.cli(&["job", "status", "sleepy"]);
    assert!(!gone.status.success(), "purged: {}", text(&gone.stdout));

    // Short flags stay short flags; an unknown `-word` is still an error.
    let help = dev.cli(&["job", "status", "-h"]);
    assert!(help.status.success() && text(&help.stdout).contains("Usage"));
    let unknown = dev.cli(&["job", "status", "-nosuchflag"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
}

/// Asks the bash completion script what follows `words` (the last one being
/// completed), as bash does at a TAB.
fn complete_in_bash(dev: &Dev, words: &[&str]) -> Vec<String> {
    let binary_dir = drover_binary().parent().unwrap().to_owned();
    let path = format!("{}:{}", binary_dir.display(), std::env::var("PATH").unwrap_or_default());
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let script = format!(
        r#"set -e
source <(drover completions bash)
function=$(complete -p drover | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
"$function" drover "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" ")
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env("PATH", path)
        .env("DROVER_ADDR", &dev.address)
        .output()
        .unwrap();
    assert!(output.status.success(), "bash: {}", text(&output.stderr));
    text(&output.stdout).lines().map(|line| line.trim().to_owned()).filter(|line| !line.is_empty()).collect()
}

#[test]
fn bash_completes_subcommands_flags_and_the_cluster_names() {
    let dev = Dev::start(&[], &[]);
    let subcommands = complete_in_bash(&dev, &["drover", "jo"]);
    assert_eq!(subcommands, ["job"]);
    let jobs = complete_in_bash(&dev, &["drover", "job", "status", ""]);
    assert!(jobs.contains(&"hello".to_owned()), "a registered job is completed: {jobs:?}");
    let flags = complete_in_bash(&dev, &["drover", "job", "status", "--js"]);
    assert_eq!(flags, ["--json"]);

    let nodes = dev.cli(&["node", "list", "--json"]);
    let nodes: serde_json::Value = serde_json::from_slice(&nodes.stdout).unwrap();
    let node = nodes[0]["name"].as_str().unwrap().to_owned();
    let completed = complete_in_bash(&dev, &["drover", "node", "status", ""]);
    assert!(completed.contains(&node), "node {node} completed: {completed:?}");

    let status = dev.cli(&["job", "status", "hello", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let alloc = status["allocs"][0]["id"].as_str().unwrap().to_owned();
    let completed = complete_in_bash(&dev, &["drover", "alloc", "logs", ""]);
    assert!(completed.contains(&alloc), "alloc {alloc} completed: {completed:?}");

    for shell in ["zsh", "fish"] {
        let script = dev.cli(&["completions", shell]);
        assert!(script.status.success());
        assert!(text(&script.stdout).contains("DROVER_COMPLETE"), "{shell}: {}", text(&script.stdout));
    }
}

#[test]
fn man_pages_are_written_for_every_subcommand_and_render() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(drover_binary()).args(["man", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    for page in ["drover.1", "drover-job.1", "drover-job-status.1", "drover-node-status.1", "drover-completions.1"] {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|error| panic!("{page}: {error}"));
        assert!(roff.starts_with(".ie \\n(.g") || roff.contains("\n.TH "), "{page} is roff:\n{roff}");
        assert!(roff.contains(".SH NAME"), "{page}");
    }
    assert!(!dir.path().join("drover-executor.1").exists(), "hidden commands have no page");
    let printed = Command::new(drover_binary()).arg("man").output().unwrap();
    assert_eq!(
        text(&printed.stdout).trim_end(),
        std::fs::read_to_string(dir.path().join("drover.1")).unwrap().trim_end()
    );

    if !needs::are_met([needs::program("man", "man-db")]) {
        return;
    }
    let rendered = Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(dir.path().join("drover-job-status.1"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let page = text(&rendered.stdout);
    assert!(page.contains("drover-job-status") && page.contains("--json"), "{page}");
}
