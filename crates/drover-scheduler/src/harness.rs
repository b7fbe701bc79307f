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
//! and jobs with `drover_types::fixtures`, and so do the generators here
//! ([`simple_node`], [`simple_job`]: the bench runs in the released binary,
//! which builds the fixtures through their `fixtures` feature).
//!
//! Everything here is pure: randomness comes from the caller's generator and
//! time from `now` arguments, so a seeded run is reproducible.

use drover_types::fixtures;
use drover_types::{
    Constraint, ConstraintOperator, Job, JobType, Node, NodeId, NodeLabels, NodeRegistration, Resources,
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

/// What `node`'s agent sends when it registers: the fixture
/// [`drover_types::fixtures::registration_of`].
pub fn registration(node: &Node) -> NodeRegistration {
    fixtures::registration_of(node)
}

/// A ready node named `name` with the given capacity: the fixture
/// [`drover_types::fixtures::node`] (zone `dc1`, Linux facts, no host
/// group; the id is `name` itself, which keeps test output readable).
pub fn simple_node(name: &str, resources: Resources) -> Node {
    fixtures::node(name).with_resources(resources)
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

/// A job of one group `app` of `count` tasks running `sleep infinity`
/// with `resources`: the fixture [`drover_types::fixtures::job`].
pub fn simple_job(id: &str, job_type: JobType, count: u32, resources: Resources) -> Job {
    fixtures::job(id, job_type, count).with_resources(resources)
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
