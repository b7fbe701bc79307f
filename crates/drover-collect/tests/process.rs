//! The bounded runner with real processes: deadlines kill the whole process
//! group, output is capped without blocking the command, exit codes and
//! signals are reported, a missing program is a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use drover_collect::Error;
use drover_collect::process::{BoundedCommand, Keep, StderrMode};
use tokio_util::sync::CancellationToken;

const KIB: usize = 1024;

/// `sh -c script`, with the given deadline and a 64 KiB cap.
fn shell(script: &str, timeout: Duration) -> BoundedCommand {
    let mut command = BoundedCommand::new("/bin/sh", timeout, 64 * KIB);
    command.arg("-c").arg(script);
    command
}

/// Whether `pid` is gone (or a zombie nobody reaped yet), waiting up to 5 s
/// for the group's SIGKILL to land and init to reap.
async fn process_ends(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

/// The pid a script wrote to `path`, waiting up to 5 s for it.
async fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no pid in {}", path.display());
}

#[tokio::test]
async fn a_timed_out_commands_grandchild_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("echo started; sleep 300 & echo $! > {}; sleep 300", pid_file.display());
    let started = Instant::now();
    let finished = shell(&script, Duration::from_secs(1)).run().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(finished.timed_out && !finished.cancelled);
    assert_eq!((finished.exit_code(), finished.signal()), (None, Some(9)));
    assert_eq!(finished.stdout.bytes, b"started\n", "what was printed before the deadline is kept");
    let grandchild = read_pid(&pid_file).await;
    assert!(process_ends(grandchild).await, "the grandchild {grandchild} still runs");
}

#[tokio::test]
async fn output_past_the_cap_is_truncated_and_flagged_while_the_command_exits_normally() {
    // 10 MiB: far more than a pipe holds, so the command would block for
    // ever if the runner stopped reading at the cap.
    let finished = shell("yes | head -c 10485760; echo done >&2", Duration::from_secs(30)).run().await.unwrap();
    assert_eq!(finished.exit_code(), Some(0));
    assert!(!finished.timed_out);
    assert_eq!(finished.stdout.bytes.len(), 64 * KIB);
    assert!(finished.stdout.bytes.starts_with(b"y\ny\n"));
    assert!(finished.stdout.truncated && finished.truncated());
    assert_eq!(finished.stderr.bytes, b"done\n");
    assert!(!finished.stderr.truncated);

    let mut tail = BoundedCommand::new("seq", Duration::from_secs(30), 13);
    tail.args(["1", "100000"]).keep(Keep::Tail);
    let finished = tail.run().await.unwrap();
    assert_eq!(String::from_utf8(finished.stdout.bytes).unwrap(), "99999\n100000\n");
    assert!(finished.stdout.truncated);

    let finished = shell("printf 12345", Duration::from_secs(30)).run().await.unwrap();
    assert_eq!((finished.stdout.bytes.as_slice(), finished.stdout.truncated), (&b"12345"[..], false));
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let finished = shell("echo out; echo err >&2; exit 3", Duration::from_secs(30)).run().await.unwrap();
    assert_eq!((finished.exit_code(), finished.signal(), finished.success()), (Some(3), None, false));
    assert_eq!((finished.stdout.bytes.as_slice(), finished.stderr.bytes.as_slice()), (&b"out\n"[..], &b"err\n"[..]));

    let finished = shell("kill -TERM $$", Duration::from_secs(30)).run().await.unwrap();
    assert_eq!((finished.exit_code(), finished.signal(), finished.timed_out), (None, Some(15), false));

    let finished = shell("true", Duration::from_secs(30)).run().await.unwrap();
    assert!(finished.success());
}

#[tokio::test]
async fn stderr_can_be_merged_into_stdout_or_discarded() {
    let mut merged = shell("echo one; echo two >&2; echo three", Duration::from_secs(30));
    merged.stderr(StderrMode::IntoStdout);
    let finished = merged.run().await.unwrap();
    assert_eq!(finished.stdout.bytes, b"one\ntwo\nthree\n");
    assert!(finished.stderr.bytes.is_empty());

    let mut discarded = shell("echo one; echo two >&2", Duration::from_secs(30));
    discarded.stderr(StderrMode::Discard);
    let finished = discarded.run().await.unwrap();
    assert_eq!((finished.stdout.bytes.as_slice(), finished.stderr.bytes.as_slice()), (&b"one\n"[..], &b""[..]));
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let error = BoundedCommand::new("/nonexistent/program", Duration::from_secs(5), KIB).run().await.unwrap_err();
    assert!(matches!(&error, Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    assert_eq!(error.to_string(), "cannot run /nonexistent/program: No such file or directory (os error 2)");

    let mut nowhere = shell("true", Duration::from_secs(5));
    nowhere.current_dir("/nonexistent/dir");
    assert!(matches!(nowhere.run().await, Err(Error::Spawn { .. })));
}

#[tokio::test]
async fn a_grace_lets_the_command_end_on_sigterm_and_kills_it_after() {
    // "ready" printed before the deadline: the trap is set when SIGTERM comes.
    let mut polite = BoundedCommand::new("/bin/sh", Duration::from_secs(1), 64 * KIB);
    polite
        .arg("-c")
        .arg("trap 'echo terminated; exit 0' TERM; echo ready; while :; do sleep 0.1; done")
        .grace(Duration::from_secs(20));
    let started = Instant::now();
    let finished = polite.run().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "waited the whole grace: {:?}", started.elapsed());
    assert!(finished.timed_out);
    assert_eq!(finished.exit_code(), Some(0));
    assert_eq!(finished.stdout.bytes, b"ready\nterminated\n");

    let mut stubborn = BoundedCommand::new("/bin/sh", Duration::from_millis(300), 64 * KIB);
    stubborn.arg("-c").arg("trap '' TERM; echo ready; while :; do sleep 0.1; done").grace(Duration::from_millis(300));
    let finished = stubborn.run().await.unwrap();
    assert!(finished.timed_out);
    assert_eq!(finished.signal(), Some(9));
}

#[tokio::test]
async fn cancelling_or_dropping_a_run_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("cancelled.pid");
    let command = shell(&format!("sleep 300 & echo $! > {}; sleep 300", pid_file.display()), Duration::from_secs(300));
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { command.run_until_cancelled(&cancel).await }
    });
    let grandchild = read_pid(&pid_file).await;
    cancel.cancel();
    let finished = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap().unwrap();
    assert!(finished.cancelled && !finished.timed_out);
    assert!(process_ends(grandchild).await, "the cancelled command's child {grandchild} still runs");

    let pid_file = dir.path().join("dropped.pid");
    let command = shell(&format!("sleep 300 & echo $! > {}; sleep 300", pid_file.display()), Duration::from_secs(300));
    let run = tokio::spawn(async move { command.run().await });
    let grandchild = read_pid(&pid_file).await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    assert!(process_ends(grandchild).await, "the dropped command's child {grandchild} still runs");
}

#[tokio::test]
async fn a_background_child_holding_the_output_is_killed_after_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("background.pid");
    let mut command =
        shell(&format!("sleep 300 & echo $! > {}; echo done", pid_file.display()), Duration::from_secs(300));
    command.linger(Duration::from_millis(200));
    let started = Instant::now();
    let finished = command.run().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!((finished.exit_code(), finished.timed_out), (Some(0), false));
    assert_eq!(finished.stdout.bytes, b"done\n");
    let background = read_pid(&pid_file).await;
    assert!(process_ends(background).await, "the background child {background} still runs");
}

#[tokio::test]
async fn environment_working_directory_and_user_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = shell("echo \"$GREETING ${HOME:-no home}\"; pwd", Duration::from_secs(30));
    command.env_clear().env("GREETING", "hello").current_dir(dir.path());
    let finished = command.run().await.unwrap();
    let expected_dir = dir.path().canonicalize().unwrap();
    assert_eq!(
        String::from_utf8(finished.stdout.bytes).unwrap(),
        format!("hello no home\n{}\n", expected_dir.display())
    );

    if nix::unistd::geteuid().is_root() {
        let mut command = shell("id -u; id -g", Duration::from_secs(30));
        command.user(65534, 65534);
        let finished = command.run().await.unwrap();
        assert_eq!(finished.stdout.bytes, b"65534\n65534\n");
    } else {
        eprintln!("not root: switching user is not tested");
    }
}
