//! Lifecycle hooks with real processes: allocation runners started by the
//! manager, as the agent does, running shell tasks through the exec driver
//! and the executor shim of drover-executor's tests. The tasks leave files
//! in the allocation's shared directory, and their recorded start and end
//! times show the order.

use std::path::Path;
use std::time::Duration;

use drover_types::{
    AllocClientStatus, ClientAllocUpdate, DurationSpec, JobType, LifecycleHook, RestartMode, RestartPolicy, Task,
    TaskLifecycle, TaskState,
};

use crate::test_support;

const WAIT: Duration = Duration::from_secs(60);

/// A task running `script` with `sh -c`, at `hook` (`None`: a main task).
fn shell_task(name: &str, script: &str, hook: Option<LifecycleHook>, sidecar: bool) -> Task {
    Task {
        lifecycle: hook.map(|hook| TaskLifecycle { hook, sidecar }),
        kill_signal: "SIGTERM".to_owned(),
        ..test_support::task(name, "/bin/sh", &["-c", script])
    }
}

/// Runs `tasks` as one batch allocation `id` (no restarts) until it is
/// complete or failed; returns the last update and the allocation's shared
/// directory.
async fn run_to_the_end(
    root: &Path,
    helper: &Path,
    id: &str,
    tasks: Vec<Task>,
) -> (ClientAllocUpdate, std::path::PathBuf) {
    let mut group = test_support::group(tasks);
    group.restart = RestartPolicy {
        attempts: 0,
        interval: DurationSpec::from_secs(60),
        delay: DurationSpec::from_secs(1),
        mode: RestartMode::Fail,
    };
    let mut assignment = test_support::assignment(test_support::allocation(id), group, None);
    assignment.job.job_type = JobType::Batch;
    let (manager, mut updates) = test_support::alloc_manager(root, helper);
    manager.reconcile(None, vec![assignment], true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(update)) => {
                let ended = matches!(update.client_status, AllocClientStatus::Complete | AllocClientStatus::Failed);
                last = Some(update);
                if ended {
                    break;
                }
            }
            Ok(None) | Err(_) => panic!("the allocation did not end within {WAIT:?}; the last update: {last:#?}"),
        }
    }
    manager.stop_all().await;
    (last.unwrap(), root.join(id).join("alloc"))
}

fn state<'a>(update: &'a ClientAllocUpdate, task: &str) -> &'a TaskState {
    update.task_states.get(task).unwrap_or_else(|| panic!("no state of task {task:?} in {update:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prestart_completes_before_main_starts_sidecars_stop_with_main_and_poststop_runs_last() {
    let Some(helper) = test_support::executor_helper() else { return };
    let root = tempfile::tempdir().unwrap();
    let tasks = vec![
        // The main task fails if it starts before this wrote its file.
        shell_task(
            "setup",
            "sleep 1; echo configured > \"$NOMAD_ALLOC_DIR/setup.txt\"",
            Some(LifecycleHook::Prestart),
            false,
        ),
        shell_task("shipper", "exec sleep 600", Some(LifecycleHook::Prestart), true),
        shell_task("main", "cat \"$NOMAD_ALLOC_DIR/setup.txt\" > \"$NOMAD_ALLOC_DIR/main.txt\"", None, false),
        shell_task(
            "cleanup",
            "cat \"$NOMAD_ALLOC_DIR/main.txt\" > \"$NOMAD_ALLOC_DIR/cleanup.txt\"",
            Some(LifecycleHook::Poststop),
            false,
        ),
    ];
    let (last, shared) = run_to_the_end(root.path(), &helper, "alloc-lifecycle", tasks).await;

    assert_eq!(last.client_status, AllocClientStatus::Complete, "{last:#?}");
    assert_eq!(std::fs::read_to_string(shared.join("main.txt")).unwrap(), "configured\n");
    assert_eq!(std::fs::read_to_string(shared.join("cleanup.txt")).unwrap(), "configured\n");
    let setup = state(&last, "setup");
    let shipper = state(&last, "shipper");
    let main = state(&last, "main");
    let cleanup = state(&last, "cleanup");
    for (name, task) in [("setup", setup), ("shipper", shipper), ("main", main), ("cleanup", cleanup)] {
        assert!(!task.failed, "{name} failed: {task:#?}");
    }
    assert!(main.started_at.unwrap() >= setup.finished_at.unwrap(), "main started while setup ran");
    assert!(main.started_at.unwrap() >= shipper.started_at.unwrap(), "main started before the sidecar");
    assert!(shipper.finished_at.unwrap() >= main.finished_at.unwrap(), "the sidecar stopped before main ended");
    assert!(cleanup.started_at.unwrap() >= main.finished_at.unwrap(), "poststop started before main ended");
    assert!(cleanup.started_at.unwrap() >= shipper.finished_at.unwrap(), "poststop started before the sidecar ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_prestart_task_fails_the_allocation_and_main_never_starts() {
    let Some(helper) = test_support::executor_helper() else { return };
    let root = tempfile::tempdir().unwrap();
    let tasks = vec![
        shell_task("setup", "exit 3", Some(LifecycleHook::Prestart), false),
        shell_task("main", "touch \"$NOMAD_ALLOC_DIR/main-ran\"", None, false),
        shell_task("cleanup", "touch \"$NOMAD_ALLOC_DIR/cleanup-ran\"", Some(LifecycleHook::Poststop), false),
    ];
    let (last, shared) = run_to_the_end(root.path(), &helper, "alloc-prestart-fails", tasks).await;

    assert_eq!(last.client_status, AllocClientStatus::Failed, "{last:#?}");
    assert_eq!(last.client_description, "task \"setup\" failed");
    assert!(!shared.join("main-ran").exists(), "the main task ran after its prestart task failed");
    assert_eq!(state(&last, "main").started_at, None);
    // The allocation ran something, so its poststop task cleans up; the
    // update that says the allocation failed may come before it ends.
    let deadline = std::time::Instant::now() + WAIT;
    while !shared.join("cleanup-ran").exists() {
        assert!(std::time::Instant::now() < deadline, "the poststop task did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
