//! Starting, exiting, signalling and stopping tasks; the shim's death.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_executor::formats::{EXIT_FILE, LAUNCH_ERROR_FILE, STATE_FILE};
use drover_executor::{ExecError, LogStream, Signal};
use drover_golden::needs;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::support::{TestTask, driver, eventually, is_alive, live_group_members, wait_exit};

#[tokio::test]
async fn exit_codes_are_reported_and_the_shim_is_reaped() {
    let task = TestTask::new("echo hello; exit 3");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let executor_pid = handle.executor_pid();
    assert_ne!(handle.task_pid(), executor_pid);
    assert_eq!(handle.state().task_pgid, handle.task_pid());
    let result = wait_exit(&handle).await;
    assert_eq!((result.exit_code, result.signal, result.executor_error.clone()), (Some(3), None, None));
    assert!(!result.is_success());
    assert_eq!(wait_exit(&handle).await, result, "wait can be called again");
    assert_eq!(task.output(LogStream::Stdout), "hello\n");
    assert!(task.task_dir().join(STATE_FILE).exists());
    assert!(task.task_dir().join(EXIT_FILE).exists());
    assert!(!Path::new(&format!("/proc/{executor_pid}")).exists(), "the shim was left a zombie");
}

#[tokio::test]
async fn a_signal_that_kills_the_task_is_reported() {
    let task = TestTask::new("kill -TERM $$; sleep 5");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let result = wait_exit(&handle).await;
    assert_eq!((result.exit_code, result.signal), (None, Some(15)));
}

#[tokio::test]
async fn stop_with_a_handled_signal_returns_as_soon_as_the_task_exits() {
    let task = TestTask::new("exec sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let started = Instant::now();
    handle.stop(Signal::SIGTERM, Duration::from_secs(20)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "stop waited {:?}", started.elapsed());
    assert_eq!(wait_exit(&handle).await.signal, Some(15));
    // Stopping a task that is gone is fine.
    handle.stop(Signal::SIGTERM, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_task_ignoring_its_kill_signal_is_sigkilled_after_the_timeout_with_its_children() {
    let task = TestTask::new("trap '' INT; sleep 1000 & sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let pgid = handle.task_pid();
    assert!(eventually(Duration::from_secs(5), || live_group_members(pgid).len() == 3).await, "sh and two sleeps");

    let started = Instant::now();
    handle.stop(Signal::SIGINT, Duration::from_millis(500)).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "SIGKILL came before the kill timeout: {waited:?}");
    let result = wait_exit(&handle).await;
    assert_eq!((result.exit_code, result.signal), (None, Some(9)), "{result:?}");
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(pgid).is_empty()).await,
        "left over: {:?}",
        live_group_members(pgid)
    );
}

#[tokio::test]
async fn leftover_children_are_killed_when_the_main_process_exits() {
    let task = TestTask::new("sleep 1000 & echo $!; exit 0");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let result = wait_exit(&handle).await;
    assert_eq!(result.exit_code, Some(0));
    let child: u32 = task.output(LogStream::Stdout).trim().parse().unwrap();
    assert!(eventually(Duration::from_secs(5), || !is_alive(child)).await, "background child {child} survived");
}

#[tokio::test]
async fn signal_reaches_the_main_process() {
    let task = TestTask::new("trap 'echo got-hup' HUP; while :; do sleep 0.05; done");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    // Give sh a moment to install its trap.
    assert!(eventually(Duration::from_secs(5), || live_group_members(handle.task_pid()).len() >= 2).await);
    handle.signal(Signal::SIGHUP).unwrap();
    let got = eventually(Duration::from_secs(5), || task.output(LogStream::Stdout).contains("got-hup")).await;
    assert!(got, "stdout {:?}", task.output(LogStream::Stdout));
    handle.stop(Signal::SIGKILL, Duration::from_secs(1)).await.unwrap();
    assert_eq!(wait_exit(&handle).await.signal, Some(9));
    assert!(matches!(handle.signal(Signal::SIGHUP), Err(ExecError::NotRunning { .. })));
}

#[tokio::test]
async fn environment_and_working_directory_are_the_specified_ones() {
    let mut task = TestTask::new("echo \"$GREETING\"; echo \"${HOME:-no home}\"; pwd");
    task.launch.env.insert("GREETING".to_owned(), "hello".to_owned());
    let work = task.root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    task.launch.working_dir = Some(work.clone());
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    assert_eq!(wait_exit(&handle).await.exit_code, Some(0));
    assert_eq!(task.output(LogStream::Stdout), format!("hello\nno home\n{}\n", work.display()));
}

#[tokio::test]
async fn a_command_that_cannot_run_fails_the_start_with_the_reason() {
    let mut task = TestTask::new("");
    task.launch.command = "/nonexistent/program".to_owned();
    task.launch.args.clear();
    let error = driver().start(&task.launch, &task.task_dir()).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ExecError::Launch { .. }), "{message}");
    assert!(message.contains("/nonexistent/program") && message.contains("No such file"), "{message}");
    assert!(task.task_dir().join(LAUNCH_ERROR_FILE).exists());

    // A later start in the same directory clears the old failure.
    let good =
        TestTask { launch: drover_executor::TaskLaunch { command: "true".to_owned(), ..task.launch.clone() }, ..task };
    let handle = driver().start(&good.launch, &good.task_dir()).await.unwrap();
    assert_eq!(wait_exit(&handle).await.exit_code, Some(0));
    assert!(!good.task_dir().join(LAUNCH_ERROR_FILE).exists());
}

#[tokio::test]
async fn an_unknown_user_fails_the_start() {
    let mut task = TestTask::new("true");
    task.launch.user = Some("no-such-user-drover".to_owned());
    let error = driver().start(&task.launch, &task.task_dir()).await.unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn the_task_runs_as_the_given_user() {
    if !needs::are_met([needs::root("running a task as another user")]) {
        return;
    }
    let mut task = TestTask::new("id -u; id -g; id -G");
    task.launch.user = Some("nobody".to_owned());
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    assert_eq!(wait_exit(&handle).await.exit_code, Some(0));
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let output = task.output(LogStream::Stdout);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[..2], [nobody.uid.to_string(), nobody.gid.to_string()], "{output}");
    assert!(!lines[2].split_whitespace().any(|group| group == "0"), "root's group was kept: {output}");
}

#[tokio::test]
async fn a_killed_shim_is_reported_and_its_task_group_killed() {
    let task = TestTask::new("sleep 1000 & sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let pgid = handle.task_pid();
    assert!(eventually(Duration::from_secs(5), || live_group_members(pgid).len() == 3).await);

    kill(Pid::from_raw(handle.executor_pid() as i32), Signal::SIGKILL).unwrap();
    let result = wait_exit(&handle).await;
    let error = result.executor_error.expect("executor death is reported");
    assert!(error.contains("without recording the task's exit"), "{error}");
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(pgid).is_empty()).await,
        "left over: {:?}",
        live_group_members(pgid)
    );
}

#[tokio::test]
async fn an_executor_that_dies_before_starting_the_task_is_reported_with_its_log() {
    let task = TestTask::new("true");
    let mut config = drover_executor::DriverConfig::new("sh", ["-c", "echo broken executor >&2; exit 3", "sh"]);
    config.start_timeout = Duration::from_secs(30);
    let driver = drover_executor::ExecDriver::new(config, crate::support::isolation());
    let error = driver.start(&task.launch, &task.task_dir()).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ExecError::ExecutorExited { .. }), "{message}");
    assert!(message.contains("broken executor") && message.contains("exit status: 3"), "{message}");
}

#[tokio::test]
async fn an_executor_that_does_not_report_in_time_is_killed() {
    let task = TestTask::new("true");
    let mut config =
        drover_executor::DriverConfig::new("sh", ["-c", "echo $$ > \"$1/executor.pid\"; exec sleep 60", "sh"]);
    config.start_timeout = Duration::from_millis(300);
    let driver = drover_executor::ExecDriver::new(config, crate::support::isolation());
    let error = driver.start(&task.launch, &task.task_dir()).await.unwrap_err();
    assert!(matches!(error, ExecError::StartTimeout { .. }), "{error}");
    let pid: u32 = std::fs::read_to_string(task.task_dir().join("executor.pid")).unwrap().trim().parse().unwrap();
    assert!(!is_alive(pid), "the executor {pid} was left running");
}
