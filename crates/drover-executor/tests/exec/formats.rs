//! The committed samples of every persisted format still read, and this
//! build still writes them byte for byte.

use std::path::{Path, PathBuf};

use drover_executor::formats::read_versioned;
use drover_executor::{ExecutorSpec, ExecutorState, ExitRecord, LaunchFailure};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1").join(name)
}

/// Reads a sample and checks that writing it back gives the same text.
fn read_and_rewrite<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let path = golden(name);
    let value: T = read_versioned(&path, "golden").unwrap().unwrap();
    let mut written = serde_json::to_string_pretty(&value).unwrap();
    written.push('\n');
    assert_eq!(written, std::fs::read_to_string(&path).unwrap(), "{name} is no longer written the same way");
    value
}

#[test]
fn executor_spec_v1() {
    let spec: ExecutorSpec = read_and_rewrite("executor.json");
    assert_eq!(spec.command, "/opt/daq/bin/nsmd2");
    assert_eq!(spec.user.as_deref(), Some("daq"));
    assert_eq!(spec.cgroup.unwrap().memory_max_bytes, Some(300 * 1024 * 1024));
    assert_eq!(spec.log_rotation.max_files, 10);
}

#[test]
fn executor_state_v1() {
    let state: ExecutorState = read_and_rewrite("executor-state.json");
    assert_eq!((state.executor_pid, state.task_pid, state.task_pgid), (4100, 4107, 4107));
    assert_eq!(state.task_start_time, 123_460);
    assert_eq!(state.started_at.as_millis(), 1_714_564_800_250);
}

#[test]
fn exit_record_v1() {
    let record: ExitRecord = read_and_rewrite("exit.json");
    assert_eq!((record.exit_code, record.signal, record.oom_killed), (None, Some(9), true));
}

#[test]
fn launch_failure_v1() {
    let failure: LaunchFailure = read_and_rewrite("launch-error.json");
    assert!(failure.message.contains("does not exist"));
}
