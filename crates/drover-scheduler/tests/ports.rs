//! Property tests of ports (issue 14), through the scheduler's public API
//! only, against the real state machine: random fleets (small dynamic
//! ranges, reserved ports) and random jobs asking for dynamic and static
//! ports are scheduled, verified and committed with `ApplyPlan` one after
//! the other, some jobs stopped on the way, and after every step:
//!
//! - no two allocations that hold resources on a node share a port, and
//!   none holds a port the node reserves;
//! - every allocation holds its group's ports, static ones with their
//!   number, dynamic ones from its node's dynamic range;
//! - a group that could not be placed because every node had its static
//!   port taken has a placement failure naming that port
//!   (`static port 9000 in use`), and a failure that names a static port
//!   names one the group asked for, taken on some node.
//!
//! The in-crate property tests (`src/property_tests.rs`) drive richer
//! clusters through the `#[cfg(test)]` harness; this file checks the same
//! port invariants as a user of the crate would see them.

use std::collections::{BTreeMap, BTreeSet};

use drover_scheduler::{ClusterView, schedule, verify_plan};
use drover_state::{Command, State};
use drover_types::network::{DYNAMIC_PORTS_META, NetworkSpec, PortSpec, RESERVED_PORTS_META};
use drover_types::{
    AllocClientStatus, AllocId, Allocation, ClientAllocUpdate, Deployment, EvalId, EvalStatus, EvalTrigger, Evaluation,
    Job, JobId, Node, NodeId, Resources, Timestamp, fixtures,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The replicated state as the scheduler reads it.
struct View(State);

impl ClusterView for View {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.0.nodes().map(|node| node.as_ref()))
    }

    fn node(&self, id: &NodeId) -> Option<&Node> {
        self.0.node(id).map(|node| node.as_ref())
    }

    fn job(&self, id: &JobId) -> Option<&Job> {
        self.0.job(id).map(|job| job.as_ref())
    }

    fn job_version(&self, id: &JobId, version: u64) -> Option<&Job> {
        self.0.job_version(id, version).map(|job| job.as_ref())
    }

    fn alloc(&self, id: &AllocId) -> Option<&Allocation> {
        self.0.alloc(id).map(|alloc| alloc.as_ref())
    }

    fn allocs_for_job(&self, job: &JobId) -> Vec<&Allocation> {
        self.0.allocs_for_job(job).map(|alloc| alloc.as_ref()).collect()
    }

    fn allocs_on_node(&self, node: &NodeId) -> Vec<&Allocation> {
        self.0.allocs_on_node(node).map(|alloc| alloc.as_ref()).collect()
    }

    fn node_usage(&self, node: &NodeId) -> Resources {
        self.0.node_usage(node)
    }

    fn latest_deployment(&self, job: &JobId) -> Option<&Deployment> {
        self.0.latest_deployment(job).map(|deployment| deployment.as_ref())
    }
}

impl View {
    /// Applies `command` at the next Raft index, as every server does.
    fn propose(&mut self, command: &Command) {
        let index = self.0.last_index() + 1;
        self.0.apply(index, command);
    }

    fn add_node(&mut self, node: &Node) {
        self.propose(&Command::RegisterNode {
            registration: fixtures::registration_of(node),
            evals: Vec::new(),
            now: Timestamp::ZERO,
        });
    }

    fn evaluation(&self, job_id: &JobId, trigger: EvalTrigger) -> Evaluation {
        let id = EvalId::new(format!("eval-{}", self.0.last_index() + 1));
        let mut eval = Evaluation::new(id, job_id.clone(), 50, trigger, Timestamp::ZERO);
        eval.job_modify_index = self.0.job(job_id).map_or(0, |job| job.job_modify_index);
        eval
    }

    /// Schedules `eval`, verifies the plan and commits what was accepted,
    /// as the leader does; returns the plan's placement failures.
    fn process(&mut self, eval: &Evaluation, rng: &mut StdRng) -> BTreeMap<String, drover_types::PlacementFailure> {
        let plan = schedule(&*self, self.job(&eval.job_id), eval, Timestamp::ZERO, rng);
        let verified = verify_plan(&*self, &plan);
        let mut completed = eval.clone();
        completed.status = EvalStatus::Complete;
        completed.failed_placements = verified.accepted.failed.clone();
        self.propose(&Command::ApplyPlan {
            plan: Box::new(verified.accepted.clone()),
            eval: completed,
            blocked_eval: None,
            now: Timestamp::ZERO,
        });
        verified.accepted.failed
    }

    fn register(&mut self, job: Job, rng: &mut StdRng) -> BTreeMap<String, drover_types::PlacementFailure> {
        let id = job.id.clone();
        let eval = self.evaluation(&id, EvalTrigger::JobRegister);
        self.propose(&Command::RegisterJob { job, eval: eval.clone(), now: Timestamp::ZERO });
        self.process(&eval, rng)
    }

    fn stop(&mut self, id: &JobId, rng: &mut StdRng) {
        let eval = self.evaluation(id, EvalTrigger::JobDeregister);
        self.propose(&Command::DeregisterJob {
            job_id: id.clone(),
            purge: false,
            eval: eval.clone(),
            now: Timestamp::ZERO,
        });
        self.process(&eval, rng);
        // Its agent stops the allocations and says so: their ports are
        // free once they no longer hold resources.
        let updates: Vec<ClientAllocUpdate> = self
            .allocs_for_job(id)
            .into_iter()
            .filter(|alloc| alloc.holds_resources())
            .map(|alloc| ClientAllocUpdate {
                alloc_id: alloc.id.clone(),
                client_status: AllocClientStatus::Complete,
                client_description: String::new(),
                task_states: alloc.task_states.clone(),
                checks: Vec::new(),
                deployment_health: None,
            })
            .collect();
        self.propose(&Command::UpdateAllocsFromClient { updates, evals: Vec::new(), now: Timestamp::ZERO });
    }

    /// The ports held on `node` by allocations that hold resources.
    fn ports_taken(&self, node: &NodeId) -> Vec<(u16, AllocId)> {
        self.allocs_on_node(node)
            .into_iter()
            .filter(|alloc| alloc.holds_resources())
            .flat_map(|alloc| alloc.ports.iter().map(|port| (port.value, alloc.id.clone())))
            .collect()
    }
}

/// A node of the generated fleets.
#[derive(Clone, Debug)]
struct NodeSpec {
    /// A dynamic range of three ports (else Nomad's default).
    small_range: bool,
    /// Reserves static port 9001 (`drover.reserved_ports`).
    reserves_9001: bool,
}

/// A job of the generated runs: its allocation count, ports, and whether
/// it is stopped once the next job is placed.
#[derive(Clone, Debug)]
struct JobSpec {
    count: u32,
    dynamic_ports: usize,
    static_port: Option<u16>,
    stopped_later: bool,
}

const SMALL_RANGE: &str = "30000-30002";

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (any::<bool>(), prop::bool::weighted(0.3))
        .prop_map(|(small_range, reserves_9001)| NodeSpec { small_range, reserves_9001 })
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        1..4_u32,
        0..3_usize,
        prop::option::weighted(0.6, prop::sample::select(vec![9000_u16, 9001, 9002])),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(count, dynamic_ports, static_port, stopped_later)| JobSpec {
            count,
            dynamic_ports,
            static_port,
            stopped_later,
        })
}

fn node_of(index: usize, spec: &NodeSpec) -> Node {
    let mut node =
        fixtures::node(&format!("node-{index}")).with_resources(Resources { cpu_mhz: 100_000, memory_mb: 100_000 });
    if spec.small_range {
        node.agent_labels.meta.insert(DYNAMIC_PORTS_META.to_owned(), SMALL_RANGE.to_owned());
    }
    if spec.reserves_9001 {
        node.agent_labels.meta.insert(RESERVED_PORTS_META.to_owned(), "9001".to_owned());
    }
    node
}

fn job_of(index: usize, spec: &JobSpec) -> Job {
    let mut job = fixtures::service_job(&format!("job-{index}"), spec.count)
        .with_resources(Resources { cpu_mhz: 10, memory_mb: 10 });
    let mut ports: Vec<PortSpec> =
        (0..spec.dynamic_ports).map(|number| PortSpec { label: format!("dyn{number}"), static_port: None }).collect();
    if let Some(port) = spec.static_port {
        ports.push(PortSpec { label: "fixed".to_owned(), static_port: Some(port) });
    }
    if !ports.is_empty() {
        job.groups[0].network = Some(NetworkSpec { ports });
    }
    job
}

/// The invariants every committed state keeps.
fn check_ports(view: &View) -> Result<(), TestCaseError> {
    for node in view.nodes() {
        let reserved = node.reserved_ports();
        let mut holders: BTreeMap<u16, AllocId> = BTreeMap::new();
        for (port, alloc) in view.ports_taken(&node.id) {
            if let Some(earlier) = holders.insert(port, alloc.clone()) {
                return Err(TestCaseError::fail(format!("port {port} on {} held by {earlier} and {alloc}", node.id)));
            }
            prop_assert!(
                !reserved.iter().any(|range| range.contains(port)),
                "{alloc} holds port {port}, reserved on {}",
                node.id
            );
        }
        for alloc in view.allocs_on_node(&node.id).into_iter().filter(|alloc| alloc.holds_resources()) {
            let job = view.job_version(&alloc.job_id, alloc.job_version).or_else(|| view.job(&alloc.job_id));
            let Some(job) = job else { continue };
            let wanted = job.groups[0].network.as_ref().map_or(&[][..], |network| &network.ports);
            prop_assert_eq!(alloc.ports.len(), wanted.len(), "ports of {}", alloc.id);
            for (port, spec) in alloc.ports.iter().zip(wanted) {
                prop_assert_eq!(&port.label, &spec.label);
                match spec.static_port {
                    Some(number) => prop_assert_eq!(port.value, number, "static port of {}", alloc.id),
                    None => prop_assert!(
                        node.dynamic_ports().contains(port.value),
                        "{}'s dynamic port {} outside {}'s range",
                        alloc.id,
                        port.value,
                        node.id
                    ),
                }
            }
        }
    }
    Ok(())
}

/// Whether `port` is taken on `node` (an allocation or the node's
/// reserved ports).
fn static_port_taken(view: &View, node: &Node, port: u16) -> bool {
    node.reserved_ports().iter().any(|range| range.contains(port))
        || view.ports_taken(&node.id).iter().any(|(taken, _)| *taken == port)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ports_are_never_shared_static_ports_are_honoured_and_a_taken_one_is_named(
        nodes in prop::collection::vec(node_spec(), 1..5),
        jobs in prop::collection::vec(job_spec(), 1..10),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut view = View(State::default());
        for (index, spec) in nodes.iter().enumerate() {
            view.add_node(&node_of(index, spec));
        }
        let mut to_stop: Option<JobId> = None;
        for (index, spec) in jobs.iter().enumerate() {
            let job = job_of(index, spec);
            let id = job.id.clone();
            // Whether every node had the static port taken before placing.
            let blocked_everywhere = spec.static_port.is_some_and(|port| {
                view.nodes().all(|node| static_port_taken(&view, node, port))
            });
            let failed = view.register(job, &mut rng);
            check_ports(&view)?;
            let named: BTreeSet<String> =
                failed.values().flat_map(|failure| failure.ports_exhausted.keys().cloned()).collect();
            if let Some(port) = spec.static_port {
                let reason = format!("static port {port} in use");
                if blocked_everywhere {
                    prop_assert!(
                        named.contains(&reason),
                        "every node has port {} taken, yet the failures {:?} do not say so",
                        port,
                        failed
                    );
                }
            }
            for reason in named.iter().filter(|reason| reason.starts_with("static port")) {
                prop_assert_eq!(
                    Some(reason.clone()),
                    spec.static_port.map(|port| format!("static port {port} in use")),
                    "a failure names a port the group did not ask for"
                );
            }
            if let Some(earlier) = to_stop.take() {
                view.stop(&earlier, &mut rng);
                check_ports(&view)?;
            }
            if spec.stopped_later {
                to_stop = Some(id);
            }
        }
    }
}

/// The example the issue gives: a node whose static port 9000 is taken is
/// infeasible, the placement failure says so, and the port is given again
/// once its holder stops.
#[test]
fn a_node_whose_static_port_is_taken_is_infeasible_and_the_failure_names_the_port() {
    let mut rng = StdRng::seed_from_u64(14);
    let mut view = View(State::default());
    view.add_node(&node_of(0, &NodeSpec { small_range: false, reserves_9001: false }));
    let spec = JobSpec { count: 1, dynamic_ports: 1, static_port: Some(9000), stopped_later: false };
    let first = view.register(job_of(0, &spec), &mut rng);
    assert!(first.is_empty(), "the first job is placed: {first:?}");
    let second = view.register(job_of(1, &spec), &mut rng);
    let failure = second.get("app").expect("the second job's group fails to place");
    assert_eq!(failure.ports_exhausted.get("static port 9000 in use"), Some(&1), "{failure:?}");
    assert!(failure.summary().contains("static port 9000 in use"), "{}", failure.summary());
    check_ports(&view).expect("ports are consistent");

    view.stop(&JobId::new("job-0"), &mut rng);
    let eval = view.evaluation(&JobId::new("job-1"), EvalTrigger::JobRegister);
    let retried = view.process(&eval, &mut rng);
    assert!(retried.is_empty(), "port 9000 is free again once job-0 stops: {retried:?}");
    let holders: Vec<AllocId> = view
        .ports_taken(&NodeId::new("node-0"))
        .into_iter()
        .filter(|(port, _)| *port == 9000)
        .map(|(_, alloc)| alloc)
        .collect();
    let [holder] = holders.as_slice() else { panic!("one holder of port 9000, not {holders:?}") };
    assert_eq!(view.alloc(holder).map(|alloc| alloc.job_id.as_str()), Some("job-1"));
    check_ports(&view).expect("ports are consistent");
}
