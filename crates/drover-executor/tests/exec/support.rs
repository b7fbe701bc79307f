//! Shared helpers: a driver using the helper binary as the shim, task
//! launches for `sh` scripts in temporary directories, and `/proc` checks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use drover_executor::log_rotate::list_log_files;
use drover_executor::{
    DriverConfig, ExecDriver, ExitResult, Isolation, LogRotation, LogStream, TaskHandle, TaskLaunch,
};
use drover_types::{AllocId, Driver, Resources};
use tempfile::TempDir;

/// The shim binary built with this crate.
pub const HELPER: &str = env!("CARGO_BIN_EXE_drover-executor-helper");

/// The host's isolation, detected once.
pub fn isolation() -> Isolation {
    static DETECTED: OnceLock<Isolation> = OnceLock::new();
    DETECTED
        .get_or_init(|| {
            let isolation = Isolation::detect();
            eprintln!("isolation on this host: {isolation}");
            isolation
        })
        .clone()
}

/// A driver whose shim is the helper binary.
pub fn driver() -> ExecDriver {
    let mut config = DriverConfig::new(HELPER, ["executor"]);
    config.start_timeout = Duration::from_secs(30);
    ExecDriver::new(config, isolation())
}

/// A task running `sh -c SCRIPT` in its own temporary directory.
pub struct TestTask {
    pub root: TempDir,
    pub launch: TaskLaunch,
}

impl TestTask {
    pub fn new(script: &str) -> TestTask {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let root = tempfile::tempdir().expect("temporary directory");
        let alloc_id = AllocId::new(format!("test-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst)));
        let launch = TaskLaunch {
            alloc_id,
            task_name: "web".to_owned(),
            driver: Driver::RawExec,
            command: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
            working_dir: None,
            user: None,
            resources: Resources::default(),
            cpu_hard_limit: false,
            log_dir: root.path().join("logs"),
            log_rotation: LogRotation::DEFAULT,
        };
        TestTask { root, launch }
    }

    pub fn task_dir(&self) -> PathBuf {
        self.root.path().join("web")
    }

    /// Everything retained of a stream, read straight from the files.
    pub fn output(&self, stream: LogStream) -> String {
        let files = list_log_files(&self.launch.log_dir, &self.launch.task_name, stream).expect("list log files");
        files.into_iter().map(|(_, path)| fs::read_to_string(path).expect("read log file")).collect()
    }

    /// Writes the launch as JSON, for the helper's `launch` command.
    pub fn write_launch_file(&self) -> PathBuf {
        let path = self.root.path().join("launch.json");
        fs::write(&path, serde_json::to_string(&self.launch).expect("serialise launch")).expect("write launch");
        path
    }
}

/// Fields of `/proc/<pid>/stat`: (state, pgid).
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(2)?.parse().ok()?))
}

/// Whether `pid` is a live (not zombie) process.
pub fn is_alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Live processes whose process group is `pgid`.
pub fn live_group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if let Some((state, group)) = stat(pid)
            && group == pgid
            && state != 'Z'
            && state != 'X'
        {
            members.push(pid);
        }
    }
    members
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pids in a cgroup directory.
pub fn cgroup_pids(cgroup: &Path) -> Vec<u32> {
    fs::read_to_string(cgroup.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The task's exit, failing the test instead of hanging when it never
/// comes.
pub async fn wait_exit(handle: &TaskHandle) -> ExitResult {
    tokio::time::timeout(Duration::from_secs(30), handle.wait()).await.expect("the task's exit within 30 s")
}
