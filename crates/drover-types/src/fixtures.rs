//! Nodes, jobs and allocations for tests of this crate and of the crates
//! above it (the `test-support` feature): build them here once instead of
//! field by field in every crate's tests.
//!
//! Every value is complete and ordinary: a ready, eligible Linux node; a
//! job of one group of one task that sleeps; a pending allocation. A test
//! changes only what it is about, with the `with_…` methods below (defined
//! here, under the same feature) or with struct update syntax:
//!
//! ```
//! use drover_types::{AllocClientStatus, Allocation, Resources, fixtures};
//!
//! let node = fixtures::node("batch01").with_hostgroup("bi/batch");
//! let web = fixtures::service_job("web", 3).with_resources(Resources { cpu_mhz: 600, memory_mb: 100 });
//! let running = Allocation {
//!     client_status: AllocClientStatus::Running,
//!     ..fixtures::alloc("a1", "web", "app", &node.id)
//! };
//! ```
//!
//! Names are ids (`node("n1")` has the id `n1`), which keeps test output
//! readable. Nothing here reads the clock: every timestamp is
//! [`Timestamp::ZERO`].

use std::collections::BTreeMap;

use crate::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, DesiredTransition, Driver, DurationSpec, EvalId, Job,
    JobId, JobType, MigrateStrategy, Node, NodeEligibility, NodeId, NodeLabels, NodeRegistration, NodeStatus,
    ReschedulePolicy, Resources, RestartPolicy, Task, TaskConfig, TaskGroup, Timestamp,
};

/// Capacity of a [`node`]: room for ten [`TASK_RESOURCES`].
pub const NODE_RESOURCES: Resources = Resources { cpu_mhz: 1000, memory_mb: 1000 };

/// Resources of a [`task`] (and so of a group of one, and of an [`alloc`]).
pub const TASK_RESOURCES: Resources = Resources { cpu_mhz: 100, memory_mb: 100 };

// ----- nodes -----

/// A ready, eligible node named `name` (its id too) with
/// [`NODE_RESOURCES`], zone `dc1`, environment `production`, no host group,
/// and the facts of an x86_64 AlmaLinux 9 machine (`kernel.name`,
/// `kernel.version`, `os.name`, `os.version`, `cpu.arch`,
/// `unique.hostname`).
pub fn node(name: &str) -> Node {
    let attributes = [
        ("kernel.name", "linux"),
        ("kernel.version", "5.14.0-362.el9.x86_64"),
        ("os.name", "almalinux"),
        ("os.version", "9.3"),
        ("cpu.arch", "x86_64"),
        ("unique.hostname", name),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    Node {
        id: NodeId::new(name),
        name: name.to_owned(),
        hostgroup: String::new(),
        environment: "production".to_owned(),
        owner: String::new(),
        zone: "dc1".to_owned(),
        meta: BTreeMap::new(),
        agent_labels: NodeLabels::default(),
        overrides: NodeLabels::default(),
        attributes,
        resources: NODE_RESOURCES,
        status: NodeStatus::Ready,
        status_description: String::new(),
        eligibility: NodeEligibility::Eligible,
        drain: None,
        protected: None,
        retired: None,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        log_dropped_lines: 0,
        registered_at: Timestamp::ZERO,
        status_updated_at: Timestamp::ZERO,
        create_index: 0,
        modify_index: 0,
    }
}

/// What the agent of [`node`]`(name)` sends when it registers.
pub fn registration(name: &str) -> NodeRegistration {
    registration_of(&node(name))
}

/// What `node`'s agent sends when it registers: its id, name, own labels,
/// facts, capacity and version (the servers' labels, status, eligibility
/// and drain are not the agent's to say).
pub fn registration_of(node: &Node) -> NodeRegistration {
    NodeRegistration {
        id: node.id.clone(),
        name: node.name.clone(),
        labels: node.agent_labels.clone(),
        attributes: node.attributes.clone(),
        resources: node.resources,
        agent_version: node.agent_version.clone(),
    }
}

impl Node {
    /// This node with `resources` as its capacity.
    pub fn with_resources(mut self, resources: Resources) -> Node {
        self.resources = resources;
        self
    }

    /// This node in `hostgroup`, as its agent reports it (so its
    /// [`registration_of`] carries it too).
    pub fn with_hostgroup(mut self, hostgroup: &str) -> Node {
        self.agent_labels.hostgroup = Some(hostgroup.to_owned());
        self.hostgroup = hostgroup.to_owned();
        self
    }
}

// ----- jobs -----

/// A task `name` running `/usr/bin/sleep infinity` with the exec driver
/// and [`TASK_RESOURCES`].
pub fn task(name: &str) -> Task {
    Task {
        name: name.to_owned(),
        driver: Driver::Exec,
        config: TaskConfig { command: "/usr/bin/sleep".to_owned(), args: vec!["infinity".to_owned()] },
        env: BTreeMap::new(),
        resources: TASK_RESOURCES,
        user: None,
        kill_timeout: DurationSpec::from_secs(5),
        kill_signal: "SIGINT".to_owned(),
        restart: None,
        constraints: Vec::new(),
        services: Vec::new(),
        meta: BTreeMap::new(),
        logs: None,
        templates: Vec::new(),
        artifacts: Vec::new(),
        lifecycle: None,
        dispatch_payload: None,
    }
}

/// A group `name` of `count`, with one [`task`] named like the group and
/// the restart and reschedule defaults of `job_type`.
pub fn group(name: &str, job_type: JobType, count: u32) -> TaskGroup {
    TaskGroup {
        name: name.to_owned(),
        count,
        constraints: Vec::new(),
        affinities: Vec::new(),
        spreads: Vec::new(),
        restart: RestartPolicy::default_for(job_type),
        reschedule: ReschedulePolicy::default_for(job_type),
        update: None,
        migrate: MigrateStrategy::default(),
        disconnect: None,
        meta: BTreeMap::new(),
        tasks: vec![task(name)],
        network: None,
        ephemeral_disk: None,
        scaling: None,
    }
}

/// A job `id` of `job_type`, priority 50, in every datacenter, with one
/// [`group`] `app` of `count`; never submitted (version 0, pending).
pub fn job(id: &str, job_type: JobType, count: u32) -> Job {
    Job {
        id: JobId::new(id),
        name: id.to_owned(),
        job_type,
        priority: 50,
        datacenters: vec!["*".to_owned()],
        constraints: Vec::new(),
        affinities: Vec::new(),
        spreads: Vec::new(),
        update: None,
        periodic: None,
        meta: BTreeMap::new(),
        groups: vec![group("app", job_type, count)],
        ..Job::default()
    }
}

/// A service [`job`] `id` of `count` allocations.
pub fn service_job(id: &str, count: u32) -> Job {
    job(id, JobType::Service, count)
}

/// A batch [`job`] `id` of `count` allocations.
pub fn batch_job(id: &str, count: u32) -> Job {
    job(id, JobType::Batch, count)
}

impl Job {
    /// This job with `resources` for every task of every group.
    pub fn with_resources(mut self, resources: Resources) -> Job {
        for task in self.groups.iter_mut().flat_map(|group| group.tasks.iter_mut()) {
            task.resources = resources;
        }
        self
    }

    /// This job with `groups` instead of its own.
    pub fn with_groups(mut self, groups: Vec<TaskGroup>) -> Job {
        self.groups = groups;
        self
    }
}

impl TaskGroup {
    /// This group with `tasks` instead of its own.
    pub fn with_tasks(mut self, tasks: Vec<Task>) -> TaskGroup {
        self.tasks = tasks;
        self
    }
}

// ----- allocations -----

/// A pending allocation `id`, index 0 of `job`'s group `group` (version 0),
/// placed on `node` by the evaluation `eval-1`, holding [`TASK_RESOURCES`].
pub fn alloc(id: &str, job: &str, group: &str, node: &NodeId) -> Allocation {
    Allocation {
        id: AllocId::new(id),
        name: format!("{job}.{group}[0]"),
        index: 0,
        job_id: JobId::new(job),
        job_version: 0,
        group: group.to_owned(),
        node_id: node.clone(),
        node_name: node.to_string(),
        eval_id: EvalId::new("eval-1"),
        resources: TASK_RESOURCES,
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
        ports: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_node_is_schedulable_and_registers_as_itself() {
        let node = node("batch01").with_hostgroup("bi/batch");
        assert!(node.is_schedulable());
        assert_eq!(node.resolve("node.hostgroup").as_deref(), Some("bi/batch"));
        let registration = registration_of(&node);
        assert_eq!(registration.validate(), Ok(()));
        assert_eq!(registration.labels.hostgroup.as_deref(), Some("bi/batch"));
        assert_eq!(registration.resources, NODE_RESOURCES);
    }

    #[test]
    fn fixture_jobs_are_valid_and_fit_their_nodes() {
        for job in [service_job("web", 3), batch_job("report", 1), job("agentd", JobType::System, 1)] {
            assert_eq!(job.validate(), Ok(()), "{}", job.id);
            assert_eq!(job.groups[0].resources(), TASK_RESOURCES);
        }
        let big = Resources { cpu_mhz: 600, memory_mb: 100 };
        assert_eq!(service_job("web", 1).with_resources(big).groups[0].resources(), big);
        assert!(TASK_RESOURCES.fits_in(&NODE_RESOURCES));
    }
}
