//! Builders of the domain values the agent's tests need: a task, a group,
//! an allocation and its assignment, with every field explicit.

use std::collections::BTreeMap;

use drover_proto::session::{AllocAssignment, JobSummary};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, Check, CheckKind, CheckRestart, DesiredTransition,
    Driver, DurationSpec, EvalId, JobId, JobType, MigrateStrategy, NodeId, Resources, RestartPolicy, Service, Task,
    TaskConfig, TaskGroup, Timestamp, UpdateStrategy,
};

/// A `raw_exec` task running `command args`, without services.
pub(crate) fn task(name: &str, command: &str, args: &[&str]) -> Task {
    Task {
        name: name.to_owned(),
        driver: Driver::RawExec,
        config: TaskConfig { command: command.to_owned(), args: args.iter().map(|arg| (*arg).to_owned()).collect() },
        env: BTreeMap::new(),
        resources: Resources::TASK_DEFAULT,
        user: None,
        kill_timeout: DurationSpec::from_secs(5),
        kill_signal: "SIGINT".to_owned(),
        restart: None,
        constraints: Vec::new(),
        services: Vec::new(),
        meta: BTreeMap::new(),
    }
}

/// `task` with one service holding `checks`.
pub(crate) fn with_checks(mut task: Task, checks: Vec<Check>) -> Task {
    task.services = vec![Service { name: format!("{}-service", task.name), port: None, checks }];
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
    }
}

/// A `check_restart` rule.
pub(crate) fn restart_rule(limit: u32, grace_millis: u64, ignore_warnings: bool) -> Option<CheckRestart> {
    Some(CheckRestart { limit, grace: DurationSpec::from_millis(grace_millis), ignore_warnings })
}

/// A group `web` of `tasks` with the service restart policy.
pub(crate) fn group(tasks: Vec<Task>) -> TaskGroup {
    TaskGroup {
        name: "web".to_owned(),
        count: 1,
        constraints: Vec::new(),
        affinities: Vec::new(),
        spreads: Vec::new(),
        restart: RestartPolicy::SERVICE_DEFAULT,
        reschedule: None,
        update: None,
        migrate: MigrateStrategy::default(),
        disconnect: None,
        meta: BTreeMap::new(),
        tasks,
    }
}

/// The job `shop`, a service job.
pub(crate) fn job() -> JobSummary {
    JobSummary {
        id: JobId::new("shop"),
        name: "shop".to_owned(),
        job_type: JobType::Service,
        version: 0,
        meta: BTreeMap::new(),
    }
}

/// A pending allocation `shop.web[0]` with the given id.
pub(crate) fn allocation(id: &str) -> Allocation {
    Allocation {
        id: AllocId::new(id),
        name: "shop.web[0]".to_owned(),
        index: 0,
        job_id: JobId::new("shop"),
        job_version: 0,
        group: "web".to_owned(),
        node_id: NodeId::new("node-1"),
        node_name: "node-1".to_owned(),
        eval_id: EvalId::new("eval-1"),
        resources: Resources::TASK_DEFAULT,
        desired_status: AllocDesiredStatus::Run,
        desired_description: String::new(),
        desired_transition: DesiredTransition::default(),
        client_status: AllocClientStatus::Pending,
        client_description: String::new(),
        task_states: BTreeMap::new(),
        checks: Vec::new(),
        previous_alloc: None,
        next_alloc: None,
        reschedule_events: Vec::new(),
        follow_up_eval: None,
        deployment_id: None,
        deployment_status: None,
        create_time: Timestamp::ZERO,
        modify_time: Timestamp::ZERO,
        create_index: 0,
        modify_index: 0,
        alloc_modify_index: 0,
    }
}

/// The assignment of `alloc` running `group` under `update`.
pub(crate) fn assignment(alloc: Allocation, group: TaskGroup, update: Option<UpdateStrategy>) -> AllocAssignment {
    AllocAssignment { alloc, job: job(), group: Some(group), update }
}
