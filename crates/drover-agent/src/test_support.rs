//! Builders of the domain values the agent's tests need: a task, a group,
//! an allocation and its assignment, from `drover_types::fixtures`.

use std::collections::BTreeMap;

use drover_proto::session::{AllocAssignment, JobSummary};
use drover_types::fixtures;
use drover_types::{
    Allocation, Check, CheckKind, CheckRestart, Driver, DurationSpec, JobId, JobType, NodeId, Resources, Service, Task,
    TaskConfig, TaskGroup, UpdateStrategy,
};

/// A `raw_exec` task running `command args` with Nomad's default
/// resources, without services.
pub(crate) fn task(name: &str, command: &str, args: &[&str]) -> Task {
    Task {
        driver: Driver::RawExec,
        config: TaskConfig { command: command.to_owned(), args: args.iter().map(|arg| (*arg).to_owned()).collect() },
        resources: Resources::TASK_DEFAULT,
        ..fixtures::task(name)
    }
}

/// `task` with one service holding `checks`.
pub(crate) fn with_checks(mut task: Task, checks: Vec<Check>) -> Task {
    task.services = vec![Service {
        name: format!("{}-service", task.name),
        port: None,
        checks,
        port_label: None,
        tags: Vec::new(),
        ..Service::default()
    }];
    task
}

/// A check of `kind` every `interval_millis`, with a `timeout_millis`.
pub(crate) fn check(name: &str, kind: CheckKind, interval_millis: u64, timeout_millis: u64) -> Check {
    Check {
        name: name.to_owned(),
        kind,
        interval: DurationSpec::from_millis(interval_millis),
        timeout: DurationSpec::from_millis(timeout_millis),
        check_restart: None,
        port_label: None,
    }
}

/// A `check_restart` rule.
pub(crate) fn restart_rule(limit: u32, grace_millis: u64, ignore_warnings: bool) -> Option<CheckRestart> {
    Some(CheckRestart { limit, grace: DurationSpec::from_millis(grace_millis), ignore_warnings })
}

/// A group `web` of `tasks` with the service restart policy and no
/// reschedule policy.
pub(crate) fn group(tasks: Vec<Task>) -> TaskGroup {
    TaskGroup { reschedule: None, tasks, ..fixtures::group("web", JobType::Service, 1) }
}

/// The job `shop`, a service job.
pub(crate) fn job() -> JobSummary {
    JobSummary {
        id: JobId::new("shop"),
        name: "shop".to_owned(),
        job_type: JobType::Service,
        version: 0,
        meta: BTreeMap::new(),
        payload: Vec::new(),
    }
}

/// A pending allocation `shop.web[0]` on `node-1` with the given id.
pub(crate) fn allocation(id: &str) -> Allocation {
    Allocation { resources: Resources::TASK_DEFAULT, ..fixtures::alloc(id, "shop", "web", &NodeId::new("node-1")) }
}

/// The assignment of `alloc` running `group` under `update`.
pub(crate) fn assignment(alloc: Allocation, group: TaskGroup, update: Option<UpdateStrategy>) -> AllocAssignment {
    AllocAssignment { alloc, job: job(), group: Some(group), update }
}

/// The executor shim built by `cargo build -p drover-executor`, next to
/// this test binary's folder (`target/debug/deps/..`) wherever the target
/// directory is, or `None` (the test is then skipped, or fails under CI)
/// when it is not there.
pub(crate) fn executor_helper() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap_or_default();
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap_or(std::path::Path::new("."))
        .join("drover-executor-helper");
    if path.exists() {
        return Some(path);
    }
    drover_golden::needs::unmet(drover_golden::needs::Missing::build(
        format!("the executor shim {} is missing", path.display()),
        "cargo build -p drover-executor --bin drover-executor-helper",
    ));
    None
}

/// An allocation manager as the agent builds one, its tasks run through
/// the exec driver and the executor shim at `helper`, under `root`; the
/// receiver gets the allocations' updates.
pub(crate) fn alloc_manager(
    root: &std::path::Path,
    helper: &std::path::Path,
) -> (crate::manager::AllocManager, tokio::sync::mpsc::UnboundedReceiver<drover_types::ClientAllocUpdate>) {
    let mut config = drover_executor::DriverConfig::new(helper, ["executor"]);
    config.start_timeout = std::time::Duration::from_secs(30);
    let driver = drover_executor::ExecDriver::new(config, drover_executor::Isolation::detect());
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    (crate::manager::AllocManager::new(root.to_owned(), driver, sender), receiver)
}
