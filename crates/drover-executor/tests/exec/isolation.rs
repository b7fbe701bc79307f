//! Resource limits and cgroup tracking on the real host. What applies
//! depends on the host: here a hybrid cgroup v1/v2 machine tracks tasks in
//! a cgroup and limits memory with RLIMIT_DATA; a pure cgroup2 host with
//! the cpu and memory controllers gets `memory.max` and `cpu.weight`.

use std::fs;
use std::time::Duration;

use drover_executor::{IsolationMode, LogStream, Signal};
use drover_golden::needs::{self, Missing};
use drover_types::{Driver, Resources};

use crate::support::{TestTask, cgroup_pids, driver, eventually, is_alive, isolation, wait_exit};

fn exec_task(script: &str) -> TestTask {
    let mut task = TestTask::new(script);
    task.launch.driver = Driver::Exec;
    task.launch.resources = Resources { cpu_mhz: 250, memory_mb: 64 };
    task
}

#[tokio::test]
async fn the_memory_limit_is_enforced_by_the_detected_mode() {
    let task = exec_task("exec sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let limits = fs::read_to_string(format!("/proc/{}/limits", handle.task_pid())).unwrap();
    let data_line = limits.lines().find(|line| line.starts_with("Max data size")).unwrap().to_owned();
    match isolation().mode {
        IsolationMode::Rlimits => {
            let fields: Vec<&str> = data_line.split_whitespace().collect();
            assert_eq!(fields[3..], ["67108864", "67108864", "bytes"], "{data_line}");
        }
        IsolationMode::Cgroup2 => {
            let cgroup = handle.state().cgroup.clone().expect("an exec task gets a cgroup");
            assert_eq!(fs::read_to_string(cgroup.join("memory.max")).unwrap().trim(), "67108864");
            assert_eq!(fs::read_to_string(cgroup.join("cpu.weight")).unwrap().trim(), "250");
            assert!(data_line.contains("unlimited"), "no rlimit with cgroup limits: {data_line}");
        }
    }
    handle.stop(Signal::SIGTERM, Duration::from_secs(5)).await.unwrap();
    wait_exit(&handle).await;
}

#[tokio::test]
async fn a_task_over_its_rlimit_cannot_allocate() {
    // One of this test and the next cgroup one runs on every host: which
    // depends on the mode detected (checked by the detection test below).
    if isolation().mode != IsolationMode::Rlimits {
        eprintln!("not applicable: this host limits memory with cgroups (cgroup_limits_apply_… covers it)");
        return;
    }
    // Holding 100 MB in a shell variable needs more than the 64 MiB of
    // heap the exec task gets; the same script without limits succeeds.
    let script = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}";
    let limited = exec_task(script);
    let handle = driver().start(&limited.launch, &limited.task_dir()).await.unwrap();
    let result = wait_exit(&handle).await;
    assert!(!result.is_success(), "{result:?}");
    assert_eq!(limited.output(LogStream::Stdout), "", "{result:?}");

    let mut unlimited = exec_task(script);
    unlimited.launch.driver = Driver::RawExec;
    let handle = driver().start(&unlimited.launch, &unlimited.task_dir()).await.unwrap();
    assert_eq!(wait_exit(&handle).await.exit_code, Some(0));
    assert_eq!(unlimited.output(LogStream::Stdout), "survived 100000000\n");
}

#[tokio::test]
async fn raw_exec_gets_no_limits() {
    let mut task = exec_task("exec sleep 1000");
    task.launch.driver = Driver::RawExec;
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let limits = fs::read_to_string(format!("/proc/{}/limits", handle.task_pid())).unwrap();
    let data_line = limits.lines().find(|line| line.starts_with("Max data size")).unwrap();
    assert!(data_line.contains("unlimited"), "{data_line}");
    handle.stop(Signal::SIGKILL, Duration::from_secs(1)).await.unwrap();
    wait_exit(&handle).await;
}

#[tokio::test]
async fn the_whole_tree_is_tracked_and_killed_through_the_cgroup() {
    let Some(parent) = isolation().cgroup_parent else {
        // Without any cgroup2 the process group is all there is to track
        // (by design); a cgroup2 that is there but not writable needs root.
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        if drover_executor::isolation::find_cgroup2_mount(&mountinfo).is_none() {
            eprintln!("not applicable: no cgroup2 is mounted here, tasks are tracked by process group");
            return;
        }
        return needs::unmet(Missing::privilege(format!(
            "tracking a task's processes in a cgroup needs a writable cgroup2, and {}",
            isolation().reason
        )));
    };
    // The background sleep leaves the task's session and process group:
    // only the cgroup still knows it belongs to the task.
    let task = TestTask::new("setsid sleep 1000 & exec sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let cgroup = handle.state().cgroup.clone().expect("a tracking cgroup");
    assert!(cgroup.starts_with(&parent), "{}", cgroup.display());
    let own_cgroup = fs::read_to_string(format!("/proc/{}/cgroup", handle.task_pid())).unwrap();
    let cgroup_name = cgroup.file_name().unwrap().to_str().unwrap();
    assert!(own_cgroup.contains(&format!("/drover/{cgroup_name}")), "{own_cgroup}");
    assert!(eventually(Duration::from_secs(5), || cgroup_pids(&cgroup).len() == 2).await);
    let escaped: Vec<u32> = cgroup_pids(&cgroup).into_iter().filter(|pid| *pid != handle.task_pid()).collect();

    handle.stop(Signal::SIGTERM, Duration::from_secs(5)).await.unwrap();
    assert_eq!(wait_exit(&handle).await.signal, Some(15));
    assert!(eventually(Duration::from_secs(5), || escaped.iter().all(|pid| !is_alive(*pid))).await, "{escaped:?}");
    assert!(!cgroup.exists(), "the cgroup was not removed");
}

#[tokio::test]
async fn cgroup_limits_apply_where_the_controllers_exist() {
    // The other half of a_task_over_its_rlimit_cannot_allocate.
    if isolation().mode != IsolationMode::Cgroup2 {
        eprintln!(
            "not applicable: no cgroup2 cpu and memory controllers here, memory is limited with rlimits \
             (a_task_over_its_rlimit_cannot_allocate covers it): {}",
            isolation().reason
        );
        return;
    }
    // 16 MiB of memory.max: the kernel's OOM killer ends a 100 MB shell
    // variable, and the shim notices through memory.events.
    let mut task = exec_task("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}");
    task.launch.resources.memory_mb = 16;
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let result = wait_exit(&handle).await;
    assert!(result.oom_killed, "{result:?}");
}

#[test]
fn detection_matches_the_hosts_controllers() {
    let isolation = isolation();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(mount) = drover_executor::isolation::find_cgroup2_mount(&mountinfo) else {
        assert_eq!(isolation.mode, IsolationMode::Rlimits);
        return;
    };
    let controllers = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let offers_limits = controllers.split_whitespace().any(|name| name == "memory")
        && controllers.split_whitespace().any(|name| name == "cpu");
    if !offers_limits {
        assert_eq!(isolation.mode, IsolationMode::Rlimits, "{isolation}");
        assert!(isolation.reason.contains("RLIMIT_DATA"), "{isolation}");
    }
}
