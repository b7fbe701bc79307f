//! A cluster state for the tests of the leader's steps, built the only way
//! a real one is: by applying Raft commands to a `drover_state::State`.

use std::collections::BTreeMap;

use drover_state::{Command, CommandResponse, State};
use drover_types::fixtures;
use drover_types::{
    AllocClientStatus, AllocDeploymentStatus, AllocId, Allocation, ClientAllocUpdate, Deployment, DeploymentGroup,
    DeploymentId, DeploymentStatus, DrainStrategy, DurationSpec, EvalId, EvalStatus, EvalTrigger, Evaluation, Job,
    JobId, JobType, MigrateStrategy, NodeId, NodeStatus, Plan, TaskGroup, Timestamp,
};

/// `seconds` after the epoch: the tests' clock.
pub(crate) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_millis(seconds * 1000)
}

/// A state and the next Raft index to apply at.
pub(crate) struct Cluster {
    pub(crate) state: State,
    next_index: u64,
}

impl Cluster {
    pub(crate) fn new() -> Cluster {
        Cluster { state: State::new(), next_index: 1 }
    }

    /// Applies `command`, which must not be rejected.
    pub(crate) fn apply(&mut self, command: &Command) {
        let response = self.state.apply(self.next_index, command);
        self.next_index += 1;
        assert!(!matches!(response, CommandResponse::Rejected { .. }), "{} was rejected: {response:?}", command.kind());
    }

    /// Registers the ready node `name` (its id is its name).
    pub(crate) fn node(&mut self, name: &str) -> NodeId {
        let registration = fixtures::registration(name);
        self.apply(&Command::RegisterNode { registration, evals: Vec::new(), now: at(0) });
        NodeId::new(name)
    }

    /// Sets a node's status as the heartbeat tracker would, at `now`.
    pub(crate) fn set_status(&mut self, node_id: &NodeId, status: NodeStatus, now: Timestamp) {
        let command = Command::UpdateNodeStatus {
            node_id: node_id.clone(),
            status,
            description: String::new(),
            evals: Vec::new(),
            now,
            seen_index: None,
        };
        self.apply(&command);
    }

    /// Starts a drain of `node_id`.
    pub(crate) fn drain(&mut self, node_id: &NodeId, deadline: Option<Timestamp>, ignore_system_jobs: bool) {
        let drain = DrainStrategy { started_at: at(0), deadline, ignore_system_jobs };
        let command = Command::UpdateNodeDrain {
            node_id: node_id.clone(),
            drain: Some(drain),
            mark_eligible: false,
            now: at(0),
            audit: Vec::new(),
        };
        self.apply(&command);
    }

    /// Registers `job` (a new version when it exists and differs).
    pub(crate) fn register(&mut self, job: Job) {
        let eval = evaluation(&format!("register-{}", self.next_index), job.id.as_str(), EvalStatus::Complete);
        self.apply(&Command::RegisterJob { job, eval, now: at(0) });
    }

    /// Places allocations through a plan (and starts `deployment` with it).
    pub(crate) fn place(&mut self, allocs: Vec<Allocation>, deployment: Option<Deployment>) {
        let job_id = allocs.first().map(|alloc| alloc.job_id.clone()).unwrap_or_default();
        let eval = evaluation(&format!("plan-{}", self.next_index), job_id.as_str(), EvalStatus::Complete);
        let plan = Plan { eval_id: eval.id.clone(), job_id, place: allocs, deployment, ..Plan::default() };
        self.apply(&Command::ApplyPlan { plan: Box::new(plan), eval, blocked_eval: None, now: at(0) });
    }

    /// An agent's report on an allocation.
    pub(crate) fn report(&mut self, alloc_id: &str, client_status: AllocClientStatus, deployment_health: Option<bool>) {
        let update = ClientAllocUpdate {
            alloc_id: AllocId::new(alloc_id),
            client_status,
            client_description: String::new(),
            task_states: BTreeMap::new(),
            checks: Vec::new(),
            deployment_health,
        };
        self.apply(&Command::UpdateAllocsFromClient { updates: vec![update], evals: Vec::new(), now: at(0) });
    }

    /// Stores `deployment` as it is.
    pub(crate) fn upsert_deployment(&mut self, deployment: Deployment, stable_version: Option<u64>) {
        self.apply(&Command::UpsertDeployment { deployment, evals: Vec::new(), stable_version });
    }

    /// The allocation `id` as the state has it.
    pub(crate) fn alloc(&self, id: &str) -> &Allocation {
        self.state.alloc(&AllocId::new(id)).unwrap_or_else(|| panic!("no allocation {id}"))
    }
}

/// An evaluation of `job` in `status`.
pub(crate) fn evaluation(id: &str, job: &str, status: EvalStatus) -> Evaluation {
    let mut eval = Evaluation::new(EvalId::new(id), JobId::new(job), 50, EvalTrigger::JobRegister, at(0));
    eval.status = status;
    eval
}

/// A job `id` of `job_type` with `groups`.
pub(crate) fn job(id: &str, job_type: JobType, groups: Vec<TaskGroup>) -> Job {
    fixtures::job(id, job_type, 0).with_groups(groups)
}

/// A service group `name` of `count` without tasks (the leader's steps
/// never look at tasks), migrated `max_parallel` at a time.
pub(crate) fn group(name: &str, count: u32, max_parallel: u32) -> TaskGroup {
    let group = fixtures::group(name, JobType::Service, count).with_tasks(Vec::new());
    TaskGroup { reschedule: None, migrate: MigrateStrategy { max_parallel, ..MigrateStrategy::default() }, ..group }
}

/// A running allocation `id` of `job`'s group `group` on `node`.
pub(crate) fn alloc(id: &str, job: &str, group: &str, node: &NodeId) -> Allocation {
    Allocation { client_status: AllocClientStatus::Running, ..fixtures::alloc(id, job, group, node) }
}

/// `alloc` placed by `deployment` (as a canary or not), health undecided.
pub(crate) fn in_deployment(mut alloc: Allocation, deployment: &str, canary: bool) -> Allocation {
    alloc.deployment_id = Some(DeploymentId::new(deployment));
    alloc.deployment_status = Some(AllocDeploymentStatus { healthy: None, timestamp: Timestamp::ZERO, canary });
    alloc
}

/// A running deployment `id` of `job` at `version` with one group `web`.
pub(crate) fn deployment(id: &str, job: &str, version: u64, group: DeploymentGroup) -> Deployment {
    Deployment {
        id: DeploymentId::new(id),
        job_id: JobId::new(job),
        job_version: version,
        job_modify_index: 0,
        status: DeploymentStatus::Running,
        status_description: "deployment is running".to_owned(),
        groups: BTreeMap::from([("web".to_owned(), group)]),
        create_time: at(0),
        modify_time: at(0),
        create_index: 0,
        modify_index: 0,
    }
}

/// A deployment group wanting `desired_total` allocations (and
/// `desired_canaries` canaries first), with a 10-minute progress deadline.
pub(crate) fn deployment_group(desired_total: u32, desired_canaries: u32) -> DeploymentGroup {
    DeploymentGroup {
        desired_total,
        desired_canaries,
        progress_deadline: DurationSpec::from_secs(600),
        ..DeploymentGroup::default()
    }
}
