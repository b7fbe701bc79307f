//! What the scheduler's tests run against, and the synthetic fleets and
//! jobs that `drover bench scheduler` builds.
//!
//! `Cluster` (tests only) is a real server's replicated state,
//! `drover_state::State`, changed only through the Raft commands the
//! servers propose: a plan is committed by the state machine's own
//! `ApplyPlan`, so the property tests check the scheduler against the
//! state it really meets (deployment counters included), not a copy of
//! the commit. Helpers propose what agents (client status, health, reports
//! after a reconnect), operators (node status, labels, drains, job stops,
//! promotions) and the deployment watcher (a deployment's status) would.
//!
//! The generators build synthetic fleets and jobs shaped like the users'
//! (host groups such as `bi/batch/gridworker`, `production` and `qa`
//! environments, kernel and OS facts, racks). The tests build their nodes
//! and jobs with `drover_types::fixtures` (a test-only feature);
//! [`simple_node`] and [`simple_job`] build the same values here because
//! the bench runs in the released binary, which has no fixtures.
//!
//! Everything here is pure: randomness comes from the caller's generator and
//! time from `now` arguments, so a seeded run is reproducible.

use std::collections::BTreeMap;

use drover_types::{
    Constraint, ConstraintOperator, Driver, DurationSpec, Job, JobId, JobStatus, JobType, MigrateStrategy, Node,
    NodeEligibility, NodeId, NodeLabels, NodeRegistration, NodeStatus, ReschedulePolicy, Resources, RestartPolicy,
    Task, TaskConfig, TaskGroup, Timestamp,
};
use rand::Rng;

use crate::ids::random_uuid;

#[cfg(test)]
mod cluster;

#[cfg(test)]
pub use cluster::Cluster;

/// Capacity of a synthetic node: 32 cores of 2400 MHz and 128 GiB.
pub const SYNTHETIC_NODE_RESOURCES: Resources = Resources { cpu_mhz: 32 * 2400, memory_mb: 128 * 1024 };

/// Resources of the task of a synthetic service job: small, so that
/// thousands fit on a synthetic node.
pub const SYNTHETIC_TASK_RESOURCES: Resources = Resources { cpu_mhz: 20, memory_mb: 32 };

/// Host groups of synthetic nodes, repeated by weight: 70 % are under
/// `bi/batch/`.
const SYNTHETIC_HOSTGROUPS: [&str; 10] = [
    "bi/batch/gridworker",
    "bi/batch/gridworker",
    "bi/batch/gridworker",
    "bi/batch/gridworker",
    "bi/batch/cream",
    "bi/batch/cream",
    "bi/batch/gridworker/terminate",
    "belle2/daq/readout",
    "alice/build/alibuild",
    "chameleon/testbed/compute",
];

/// Operating systems of synthetic nodes: (os.name, os.version, kernel.version).
const SYNTHETIC_SYSTEMS: [(&str, &str, &str); 3] = [
    ("almalinux", "9.3", "5.14.0-362.el9.x86_64"),
    ("almalinux", "8.9", "4.18.0-513.el8.x86_64"),
    ("centos", "7.9", "3.10.0-1160.el7.x86_64"),
];

// ----- generators -----

/// What `node`'s agent sends when it registers: its id, name, own labels,
/// facts, capacity and version (the servers' labels, status, eligibility
/// and drain are not the agent's to say).
pub fn registration(node: &Node) -> NodeRegistration {
    NodeRegistration {
        id: node.id.clone(),
        name: node.name.clone(),
        labels: node.agent_labels.clone(),
        attributes: node.attributes.clone(),
        resources: node.resources,
        agent_version: node.agent_version.clone(),
    }
}

/// A ready node named `name` with the given capacity, zone `dc1`, Linux
/// facts and no host group; the id is `name` itself, which keeps test
/// output readable.
pub fn simple_node(name: &str, resources: Resources) -> Node {
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
        resources,
        status: NodeStatus::Ready,
        status_description: String::new(),
        eligibility: NodeEligibility::Eligible,
        drain: None,
        protected: None,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        log_dropped_lines: 0,
        registered_at: Timestamp::ZERO,
        status_updated_at: Timestamp::ZERO,
        create_index: 0,
        modify_index: 0,
    }
}

/// Synthetic node number `number`: a random id, name `node-00042`, a host
/// group (70 % under `bi/batch/`), 80 % `production` and 20 % `qa`, one of
/// three zones, one of three OS generations, 90 % `x86_64`, 98 % Linux, a
/// rack among 40, and [`SYNTHETIC_NODE_RESOURCES`].
pub fn synthetic_node<R: Rng + ?Sized>(number: usize, rng: &mut R) -> Node {
    let name = format!("node-{number:05}");
    let mut node = simple_node(&name, SYNTHETIC_NODE_RESOURCES);
    node.id = NodeId::new(random_uuid(rng));
    let hostgroup = SYNTHETIC_HOSTGROUPS[rng.random_range(0..SYNTHETIC_HOSTGROUPS.len())];
    let environment = if rng.random_bool(0.8) { "production" } else { "qa" };
    let zone = ["zone-a", "zone-b", "zone-c"][rng.random_range(0..3)];
    let rack = format!("r{:02}", rng.random_range(1..=40));
    node.agent_labels = NodeLabels {
        hostgroup: Some(hostgroup.to_owned()),
        environment: Some(environment.to_owned()),
        owner: Some("batch-team".to_owned()),
        zone: Some(zone.to_owned()),
        meta: [("rack".to_owned(), rack)].into(),
    };
    node.apply_labels();
    let (os_name, os_version, kernel_version) = SYNTHETIC_SYSTEMS[rng.random_range(0..SYNTHETIC_SYSTEMS.len())];
    let kernel_name = if rng.random_bool(0.98) { "linux" } else { "freebsd" };
    let cpu_arch = if rng.random_bool(0.9) { "x86_64" } else { "aarch64" };
    for (key, value) in [
        ("kernel.name", kernel_name),
        ("kernel.version", kernel_version),
        ("os.name", os_name),
        ("os.version", os_version),
        ("cpu.arch", cpu_arch),
        ("cpu.numcores", "32"),
        ("cpu.frequency", "2400"),
        ("driver.exec", "1"),
    ] {
        node.attributes.insert(key.to_owned(), value.to_owned());
    }
    node
}

/// A task running `/usr/bin/sleep infinity` with the given resources.
pub fn simple_task(name: &str, resources: Resources) -> Task {
    Task {
        name: name.to_owned(),
        driver: Driver::Exec,
        config: TaskConfig { command: "/usr/bin/sleep".to_owned(), args: vec!["infinity".to_owned()] },
        env: BTreeMap::new(),
        resources,
        user: None,
        kill_timeout: DurationSpec::from_secs(5),
        kill_signal: "SIGINT".to_owned(),
        restart: None,
        constraints: Vec::new(),
        services: Vec::new(),
        meta: BTreeMap::new(),
    }
}

/// A group of one [`simple_task`] named like the group, with the defaults
/// of `job_type`.
pub fn simple_group(name: &str, job_type: JobType, count: u32, resources: Resources) -> TaskGroup {
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
        tasks: vec![simple_task(name, resources)],
    }
}

/// A job of one [`simple_group`] named `app`, in every datacenter.
pub fn simple_job(id: &str, job_type: JobType, count: u32, resources: Resources) -> Job {
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
        groups: vec![simple_group("app", job_type, count, resources)],
        version: 0,
        stop: false,
        status: JobStatus::Pending,
        parent_id: None,
        submit_time: Timestamp::ZERO,
        stable: false,
        create_index: 0,
        modify_index: 0,
        job_modify_index: 0,
    }
}

/// A service job of `count` small allocations ([`SYNTHETIC_TASK_RESOURCES`]);
/// with `with_constraints`, it runs only on Linux nodes of the `bi/batch/`
/// host groups (about 69 % of synthetic nodes).
pub fn synthetic_service_job(id: &str, count: u32, with_constraints: bool) -> Job {
    let mut job = simple_job(id, JobType::Service, count, SYNTHETIC_TASK_RESOURCES);
    if with_constraints {
        job.constraints = vec![
            Constraint {
                attribute: "${attr.kernel.name}".to_owned(),
                operator: ConstraintOperator::Equal,
                value: "linux".to_owned(),
            },
            Constraint {
                attribute: "${node.hostgroup}".to_owned(),
                operator: ConstraintOperator::Glob,
                value: "bi/batch/**".to_owned(),
            },
        ];
    }
    job
}
