//! Re-attaching after the agent died: the task keeps running and writing
//! its output, and a new agent finds it again.

use std::process::Command;
use std::time::Duration;

use drover_executor::formats::{EXIT_FILE, FORMAT_VERSION, STATE_FILE, write_atomic};
use drover_executor::{ExecError, ExecutorState, LogStream, ReattachOutcome, Signal};
use drover_types::Timestamp;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::support::{HELPER, TestTask, driver, eventually, is_alive, live_group_members, wait_exit};

/// Starts the task from a separate process that exits at once: an agent
/// that died right after starting the task. Returns what it recorded.
fn launch_from_a_dying_agent(task: &TestTask) -> ExecutorState {
    let output = Command::new(HELPER)
        .arg("launch")
        .arg(task.task_dir())
        .arg(task.write_launch_file())
        .output()
        .expect("run the helper");
    assert!(output.status.success(), "helper failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the helper prints the executor state")
}

#[tokio::test]
async fn a_new_agent_reattaches_and_still_gets_the_exit_and_the_output() {
    let task = TestTask::new("echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 7");
    let recorded = launch_from_a_dying_agent(&task);
    assert!(is_alive(recorded.executor_pid) && is_alive(recorded.task_pid));

    let ReattachOutcome::Running(handle) = driver().reattach(&task.task_dir()).await.unwrap() else {
        panic!("the task should still run");
    };
    assert_eq!(handle.task_pid(), recorded.task_pid);
    assert_eq!(handle.executor_pid(), recorded.executor_pid);
    // Output written while no agent was attached is captured.
    assert!(eventually(Duration::from_secs(5), || task.output(LogStream::Stdout) == "before\n").await);

    std::fs::write(task.task_dir().join("go"), "").unwrap();
    let result = wait_exit(&handle).await;
    assert_eq!((result.exit_code, result.executor_error), (Some(7), None));
    assert_eq!(task.output(LogStream::Stdout), "before\nafter\n");
}

#[tokio::test]
async fn a_reattached_task_can_be_stopped() {
    let task = TestTask::new("trap '' TERM; sleep 1000 & sleep 1000");
    let recorded = launch_from_a_dying_agent(&task);
    let ReattachOutcome::Running(handle) = driver().reattach(&task.task_dir()).await.unwrap() else {
        panic!("the task should still run");
    };
    handle.stop(Signal::SIGTERM, Duration::from_millis(300)).await.unwrap();
    let result = wait_exit(&handle).await;
    assert_eq!(result.signal, Some(9));
    assert!(eventually(Duration::from_secs(5), || live_group_members(recorded.task_pgid).is_empty()).await);
}

#[tokio::test]
async fn an_exit_while_no_agent_was_attached_is_found() {
    let task = TestTask::new("echo done; exit 4");
    launch_from_a_dying_agent(&task);
    assert!(eventually(Duration::from_secs(10), || task.task_dir().join(EXIT_FILE).exists()).await);
    match driver().reattach(&task.task_dir()).await.unwrap() {
        ReattachOutcome::Exited(result) => assert_eq!(result.exit_code, Some(4)),
        other => panic!("expected the recorded exit, got {other:?}"),
    }
    assert_eq!(task.output(LogStream::Stdout), "done\n");
}

#[tokio::test]
async fn a_shim_that_died_while_no_agent_was_attached_means_the_task_is_lost_and_killed() {
    let task = TestTask::new("sleep 1000 & sleep 1000");
    let recorded = launch_from_a_dying_agent(&task);
    assert!(eventually(Duration::from_secs(5), || live_group_members(recorded.task_pgid).len() == 3).await);
    kill(Pid::from_raw(recorded.executor_pid as i32), Signal::SIGKILL).unwrap();
    assert!(eventually(Duration::from_secs(5), || !is_alive(recorded.executor_pid)).await);

    match driver().reattach(&task.task_dir()).await.unwrap() {
        ReattachOutcome::Lost { reason } => assert!(reason.contains("died"), "{reason}"),
        other => panic!("expected a lost task, got {other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(recorded.task_pgid).is_empty()).await,
        "left over: {:?}",
        live_group_members(recorded.task_pgid)
    );
}

#[tokio::test]
async fn a_reused_pid_is_not_mistaken_for_the_task() {
    // A state naming this very test process, with other start times: as if
    // the shim and task had died and the pids gone to an unrelated process.
    let task = TestTask::new("true");
    std::fs::create_dir_all(task.task_dir()).unwrap();
    let own_pid = std::process::id();
    let state = ExecutorState {
        version: FORMAT_VERSION,
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().to_owned(),
        executor_pid: own_pid,
        executor_start_time: 1,
        task_pid: own_pid,
        task_pgid: own_pid,
        task_start_time: 1,
        cgroup: None,
        started_at: Timestamp::now(),
    };
    write_atomic(&task.task_dir().join(STATE_FILE), &state).unwrap();
    // Reaching the assertion at all shows this process was not killed.
    assert!(matches!(driver().reattach(&task.task_dir()).await.unwrap(), ReattachOutcome::Lost { .. }));
}

#[tokio::test]
async fn a_state_from_an_earlier_boot_is_lost() {
    let task = TestTask::new("true");
    std::fs::create_dir_all(task.task_dir()).unwrap();
    let state = ExecutorState {
        version: FORMAT_VERSION,
        boot_id: "00000000-0000-0000-0000-000000000000".to_owned(),
        executor_pid: 1,
        executor_start_time: 1,
        task_pid: 1,
        task_pgid: 1,
        task_start_time: 1,
        cgroup: None,
        started_at: Timestamp::now(),
    };
    write_atomic(&task.task_dir().join(STATE_FILE), &state).unwrap();
    match driver().reattach(&task.task_dir()).await.unwrap() {
        ReattachOutcome::Lost { reason } => assert!(reason.contains("rebooted"), "{reason}"),
        other => panic!("expected a lost task, got {other:?}"),
    }
}

#[tokio::test]
async fn an_empty_directory_has_nothing_to_reattach() {
    let task = TestTask::new("true");
    assert!(matches!(driver().reattach(&task.task_dir()).await.unwrap(), ReattachOutcome::NotStarted));
}

#[tokio::test]
async fn starting_over_a_live_executor_is_refused() {
    let task = TestTask::new("exec sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let error = driver().start(&task.launch, &task.task_dir()).await.unwrap_err();
    assert!(matches!(error, ExecError::AlreadyRunning { .. }), "{error}");
    handle.stop(Signal::SIGKILL, Duration::from_secs(1)).await.unwrap();
    assert_eq!(wait_exit(&handle).await.signal, Some(9));
}
