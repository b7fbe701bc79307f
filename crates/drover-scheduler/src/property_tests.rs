//! Property tests: random fleets, random jobs and random sequences of
//! events (scaling, job changes, node failures, allocation failures,
//! drains, time passing) applied through the harness, that is through the
//! Raft state machine's own commands (plans by its `ApplyPlan`). After
//! every committed plan:
//!
//! - no node is over-committed (cpu and memory of the allocations that want
//!   to run);
//! - every placement is on a schedulable node that satisfies every
//!   constraint, checked by an oracle written independently of the
//!   scheduler's matcher, and `distinct_hosts` holds;
//! - no group has more allocations that want to run (and whose status is
//!   known) than its count plus the canaries its deployment asked for, and
//!   no more canaries than that;
//! - a plan that replaces allocations destructively leaves at most
//!   `max_parallel` allocations of the current version not healthy in the
//!   group, and makes no destructive update while the group's deployment
//!   waits for a promotion, failed or was cancelled;
//! - every live allocation on a disconnected node is `unknown`;
//! - only the job's latest deployment may be active, only for its current
//!   registration, never for a stopped job, and placements join it;
//! - every deployment's counters (placed, canaries, healthy, unhealthy),
//!   kept by the state machine, agree with its allocations;
//! - no two allocations that hold resources on a node share a port, and
//!   every allocation of the current job version holds exactly its group's
//!   ports, static ones with their number, dynamic ones from the node's
//!   range;
//! - a system job runs on every schedulable, matching node with room (and
//!   the ports it asks for), and only on matching nodes that are up;
//! - planning again is a no-op;
//! - a plan computed on an unchanged state is accepted in full.
//!
//! Histories include disconnects and reconnects (with every `disconnect`
//! variant), canaries, promotions, failed deployments and health reports.

use std::collections::BTreeMap;

use drover_types::fixtures;
use drover_types::network::DYNAMIC_PORTS_META;
use drover_types::{
    AllocClientStatus, Allocation, Constraint, ConstraintOperator, Deployment, DeploymentStatus, DisconnectStrategy,
    DrainStrategy, DurationSpec, EvalTrigger, Evaluation, Job, JobId, JobType, NetworkSpec, Node, NodeEligibility,
    NodeStatus, Plan, PortSpec, ReconcileMode, Resources, Timestamp, UpdateStrategy,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::harness::Cluster;
use crate::ledger::is_live;
use crate::reasons;
use crate::view::ClusterView;
use crate::{schedule, verify_plan};

/// A constraint and the oracle that says which nodes satisfy it.
struct PoolConstraint {
    attribute: &'static str,
    operator: ConstraintOperator,
    value: &'static str,
    holds: fn(&Node) -> bool,
}

fn attribute<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    node.attributes.get(key).map(String::as_str)
}

const POOL: [PoolConstraint; 9] = [
    PoolConstraint {
        attribute: "${attr.kernel.name}",
        operator: ConstraintOperator::Equal,
        value: "linux",
        holds: |node| attribute(node, "kernel.name") == Some("linux"),
    },
    PoolConstraint {
        attribute: "${node.environment}",
        operator: ConstraintOperator::NotEqual,
        value: "qa",
        holds: |node| node.environment != "qa",
    },
    PoolConstraint {
        attribute: "${node.hostgroup}",
        operator: ConstraintOperator::Glob,
        value: "bi/batch/**",
        holds: |node| node.hostgroup.starts_with("bi/batch/"),
    },
    PoolConstraint {
        attribute: "${meta.rack}",
        operator: ConstraintOperator::Regexp,
        value: "^r[12]$",
        holds: |node| matches!(node.meta.get("rack").map(String::as_str), Some("r1" | "r2")),
    },
    PoolConstraint {
        attribute: "${attr.kernel.version}",
        operator: ConstraintOperator::Version,
        value: ">= 4.0",
        holds: |node| {
            let major = attribute(node, "kernel.version").and_then(|version| version.split('.').next());
            major.and_then(|major| major.parse::<u32>().ok()).is_some_and(|major| major >= 4)
        },
    },
    PoolConstraint {
        attribute: "${meta.gpu}",
        operator: ConstraintOperator::IsSet,
        value: "",
        holds: |node| node.meta.contains_key("gpu"),
    },
    PoolConstraint {
        attribute: "${meta.gpu}",
        operator: ConstraintOperator::IsNotSet,
        value: "",
        holds: |node| !node.meta.contains_key("gpu"),
    },
    PoolConstraint {
        attribute: "${attr.cpu.numcores}",
        operator: ConstraintOperator::GreaterOrEqual,
        value: "16",
        holds: |node| matches!(attribute(node, "cpu.numcores"), Some("16" | "32")),
    },
    PoolConstraint {
        attribute: "${attr.features}",
        operator: ConstraintOperator::SetContains,
        value: "avx2",
        holds: |node| attribute(node, "features").is_some_and(|features| features.split(',').any(|f| f == "avx2")),
    },
];

const HOSTGROUPS: [&str; 4] = ["bi/batch/gridworker", "bi/batch/cream", "belle2/daq", "bi"];
const KERNELS: [(&str, &str); 4] =
    [("linux", "3.10.0-1160.el7"), ("linux", "4.18.0-513.el8"), ("linux", "5.14.0-362.el9"), ("freebsd", "13.2")];
const CAPACITIES: [Resources; 3] = [
    Resources { cpu_mhz: 500, memory_mb: 500 },
    Resources { cpu_mhz: 1000, memory_mb: 1000 },
    Resources { cpu_mhz: 2000, memory_mb: 4000 },
];

#[derive(Clone, Debug)]
struct NodeSpec {
    capacity: usize,
    hostgroup: usize,
    qa: bool,
    kernel: usize,
    rack: u8,
    gpu: bool,
    cores: usize,
    avx2: bool,
    /// 0: down, 1: ineligible, 2: draining, otherwise ready.
    state: u8,
    /// A dynamic port range of four ports (else Nomad's default).
    small_port_range: bool,
}

/// The small dynamic port range of some nodes, so that ports run out.
const SMALL_PORT_RANGE: &str = "30000-30003";

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        (
            0..3_usize,
            0..4_usize,
            any::<bool>(),
            0..4_usize,
            1..5_u8,
            any::<bool>(),
            0..3_usize,
            any::<bool>(),
            0..10_u8,
        ),
        any::<bool>(),
    )
        .prop_map(|((capacity, hostgroup, qa, kernel, rack, gpu, cores, avx2, state), small_port_range)| {
            NodeSpec { capacity, hostgroup, qa, kernel, rack, gpu, cores, avx2, state, small_port_range }
        })
}

fn build_node(number: usize, spec: &NodeSpec) -> Node {
    let mut node = fixtures::node(&format!("n{number:02}")).with_resources(CAPACITIES[spec.capacity]);
    node.hostgroup = HOSTGROUPS[spec.hostgroup].to_owned();
    node.environment = if spec.qa { "qa" } else { "production" }.to_owned();
    let (kernel_name, kernel_version) = KERNELS[spec.kernel];
    node.attributes.insert("kernel.name".into(), kernel_name.into());
    node.attributes.insert("kernel.version".into(), kernel_version.into());
    node.attributes.insert("cpu.numcores".into(), ["8", "16", "32"][spec.cores].into());
    node.attributes.insert("features".into(), if spec.avx2 { "sse4,avx2" } else { "sse4" }.into());
    node.meta.insert("rack".into(), format!("r{}", spec.rack));
    if spec.gpu {
        node.meta.insert("gpu".into(), "a100".into());
    }
    if spec.small_port_range {
        node.meta.insert(DYNAMIC_PORTS_META.into(), SMALL_PORT_RANGE.into());
    }
    match spec.state {
        0 => node.status = NodeStatus::Down,
        1 => node.eligibility = NodeEligibility::Ineligible,
        2 => {
            node.drain = Some(DrainStrategy { started_at: Timestamp::ZERO, deadline: None, ignore_system_jobs: false })
        }
        _ => {}
    }
    node
}

#[derive(Clone, Debug)]
struct JobSpec {
    /// 0..=2: service, 3: batch, 4: system.
    kind: u8,
    count: u32,
    cpu: u64,
    memory: u64,
    constraints: Vec<usize>,
    /// 0: none, 1: job level, 2: group level.
    distinct_hosts: u8,
    two_groups: bool,
    max_parallel: u32,
    /// Canaries of the `update` block (with `max_parallel > 0`).
    canary: u32,
    /// 0: no `disconnect` block, 1: without `lost_after`, 2: `lost_after`
    /// with `replace`, 3: `lost_after` without `replace`.
    disconnect: u8,
    /// `disconnect.reconcile`, in the order of [`RECONCILE_MODES`].
    reconcile: usize,
    /// The group's ports, in the order of [`PORT_SHAPES`].
    ports: usize,
}

/// Network blocks of the generated groups: `(label, static port)`.
const PORT_SHAPES: [&[(&str, Option<u16>)]; 4] = [
    &[],
    &[("http", None)],
    &[("admin", Some(9000)), ("http", None)],
    &[("http", None), ("grpc", None), ("low", Some(30_001))],
];

const RECONCILE_MODES: [ReconcileMode; 4] = [
    ReconcileMode::BestScore,
    ReconcileMode::KeepOriginal,
    ReconcileMode::KeepReplacement,
    ReconcileMode::LongestRunning,
];

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        (
            0..5_u8,
            0..7_u32,
            prop::sample::select(vec![50_u64, 100, 200, 400]),
            prop::sample::select(vec![50_u64, 100, 300]),
            prop::collection::vec(0..POOL.len(), 0..3),
            0..6_u8,
            any::<bool>(),
            0..3_u32,
        ),
        (0..3_u32, 0..4_u8, 0..RECONCILE_MODES.len(), 0..PORT_SHAPES.len()),
    )
        .prop_map(
            |(
                (kind, count, cpu, memory, constraints, distinct_hosts, two_groups, max_parallel),
                (canary, disconnect, reconcile, ports),
            )| JobSpec {
                kind,
                count,
                cpu,
                memory,
                constraints,
                distinct_hosts: if distinct_hosts < 3 { distinct_hosts } else { 0 },
                two_groups,
                max_parallel,
                canary,
                disconnect,
                reconcile,
                ports,
            },
        )
}

fn build_job(number: usize, spec: &JobSpec) -> Job {
    let job_type = match spec.kind {
        0..=2 => JobType::Service,
        3 => JobType::Batch,
        _ => JobType::System,
    };
    let resources = Resources { cpu_mhz: spec.cpu, memory_mb: spec.memory };
    let mut job = fixtures::job(&format!("job{number}"), job_type, spec.count).with_resources(resources);
    let (job_level, group_level) = spec.constraints.split_at(spec.constraints.len() / 2);
    job.constraints = job_level.iter().map(|index| pool_constraint(*index)).collect();
    job.groups[0].constraints = group_level.iter().map(|index| pool_constraint(*index)).collect();
    let distinct =
        Constraint { attribute: String::new(), operator: ConstraintOperator::DistinctHosts, value: String::new() };
    match spec.distinct_hosts {
        1 => job.constraints.push(distinct),
        2 => job.groups[0].constraints.push(distinct),
        _ => {}
    }
    if spec.max_parallel > 0 {
        job.update =
            Some(UpdateStrategy { max_parallel: spec.max_parallel, canary: spec.canary, ..UpdateStrategy::default() });
    }
    let reconcile = RECONCILE_MODES[spec.reconcile % RECONCILE_MODES.len()];
    let lost_after = Some(DurationSpec::from_secs(300));
    job.groups[0].disconnect = match spec.disconnect {
        1 => Some(DisconnectStrategy { lost_after: None, replace: true, reconcile }),
        2 => Some(DisconnectStrategy { lost_after, replace: true, reconcile }),
        3 => Some(DisconnectStrategy { lost_after, replace: false, reconcile }),
        _ => None,
    };
    let ports = PORT_SHAPES[spec.ports % PORT_SHAPES.len()];
    if !ports.is_empty() {
        job.groups[0].network = Some(NetworkSpec {
            ports: ports
                .iter()
                .map(|(label, static_port)| PortSpec { label: (*label).to_owned(), static_port: *static_port })
                .collect(),
        });
    }
    if spec.two_groups {
        let mut second = job.groups[0].clone();
        second.name = "second".into();
        second.tasks[0].name = "second".into();
        job.groups.push(second);
    }
    job
}

fn pool_constraint(index: usize) -> Constraint {
    let entry = &POOL[index];
    Constraint { attribute: entry.attribute.into(), operator: entry.operator, value: entry.value.into() }
}

fn oracle_accepts(job: &Job, group_name: &str, node: &Node) -> bool {
    let group_constraints = job.group(group_name).map(|group| group.constraints.as_slice()).unwrap_or_default();
    job.constraints.iter().chain(group_constraints).all(|constraint| {
        match POOL.iter().find(|entry| entry.attribute == constraint.attribute && entry.operator == constraint.operator)
        {
            Some(entry) => (entry.holds)(node),
            None => constraint.operator == ConstraintOperator::DistinctHosts,
        }
    })
}

#[derive(Clone, Debug)]
enum Operation {
    Evaluate(usize),
    Scale(usize, u32),
    ChangeTasks(usize),
    ChangeMeta(usize),
    StopJob(usize),
    SetNodeState(usize, u8),
    /// A disconnected node (picked among them) is ready again.
    Reconnect(usize),
    FlipEnvironment(usize),
    AddNode(NodeSpec),
    FailAlloc(usize),
    CompleteAlloc(usize),
    Migrate(usize),
    SimulateAgents(bool),
    SetHealth(usize, bool),
    Promote(usize),
    FailDeployment(usize),
    AdvanceTime(u16),
    RunDueFollowUps,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (0..3_usize).prop_map(Operation::Evaluate),
        (0..3_usize, 0..7_u32).prop_map(|(job, count)| Operation::Scale(job, count)),
        (0..3_usize).prop_map(Operation::ChangeTasks),
        (0..3_usize).prop_map(Operation::ChangeMeta),
        (0..3_usize).prop_map(Operation::StopJob),
        (0..20_usize, 0..6_u8).prop_map(|(node, state)| Operation::SetNodeState(node, state)),
        (0..20_usize).prop_map(Operation::Reconnect),
        (0..20_usize).prop_map(Operation::FlipEnvironment),
        node_spec().prop_map(Operation::AddNode),
        (0..100_usize).prop_map(Operation::FailAlloc),
        (0..100_usize).prop_map(Operation::CompleteAlloc),
        (0..100_usize).prop_map(Operation::Migrate),
        any::<bool>().prop_map(Operation::SimulateAgents),
        (0..100_usize, any::<bool>()).prop_map(|(alloc, healthy)| Operation::SetHealth(alloc, healthy)),
        (0..3_usize).prop_map(Operation::Promote),
        (0..3_usize).prop_map(Operation::FailDeployment),
        (1..600_u16).prop_map(Operation::AdvanceTime),
        Just(Operation::RunDueFollowUps),
    ]
}

/// Operations around disconnects: nodes disconnecting, coming back or
/// going down, agents reporting, time passing, follow-ups running, and
/// some job changes and failures in between.
fn disconnect_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => (0..20_usize).prop_map(|node| Operation::SetNodeState(node, 4)),
        3 => (0..20_usize).prop_map(Operation::Reconnect),
        1 => (0..20_usize, 0..6_u8).prop_map(|(node, state)| Operation::SetNodeState(node, state)),
        3 => any::<bool>().prop_map(Operation::SimulateAgents),
        2 => (1..400_u16).prop_map(Operation::AdvanceTime),
        2 => Just(Operation::RunDueFollowUps),
        1 => (0..3_usize).prop_map(Operation::ChangeTasks),
        1 => (0..3_usize, 0..7_u32).prop_map(|(job, count)| Operation::Scale(job, count)),
        1 => (0..100_usize).prop_map(Operation::FailAlloc),
        1 => (0..3_usize).prop_map(Operation::Promote),
    ]
}

/// The world a case runs in.
struct World {
    cluster: Cluster,
    job_ids: Vec<JobId>,
    rng: StdRng,
    now: Timestamp,
    num_follow_ups_run: usize,
    num_nodes_added: usize,
}

impl World {
    fn new(nodes: &[NodeSpec], jobs: &[JobSpec], seed: u64) -> World {
        let mut cluster = Cluster::new();
        for (number, spec) in nodes.iter().enumerate() {
            cluster.add_node(build_node(number, spec));
        }
        let now = Timestamp::from_millis(1_700_000_000_000);
        let job_ids = jobs
            .iter()
            .enumerate()
            .map(|(number, spec)| cluster.register_job(build_job(number, spec), now).id.clone())
            .collect();
        World { cluster, job_ids, rng: StdRng::seed_from_u64(seed), now, num_follow_ups_run: 0, num_nodes_added: 0 }
    }

    fn job(&self, pick: usize) -> Option<JobId> {
        (!self.job_ids.is_empty()).then(|| self.job_ids[pick % self.job_ids.len()].clone())
    }

    fn live_alloc(&self, pick: usize) -> Option<drover_types::AllocId> {
        let live: Vec<_> = self.cluster.allocations().filter(|alloc| is_live(alloc)).collect();
        (!live.is_empty()).then(|| live[pick % live.len()].id.clone())
    }

    fn node_id(&self, pick: usize) -> Option<drover_types::NodeId> {
        let nodes: Vec<_> = self.cluster.node_list().collect();
        (!nodes.is_empty()).then(|| nodes[pick % nodes.len()].id.clone())
    }

    fn change_job(&mut self, pick: usize, change: impl FnOnce(&mut Job)) -> Result<(), TestCaseError> {
        let Some(id) = self.job(pick) else {
            return Ok(());
        };
        let Some(mut job) = self.cluster.job(&id).cloned() else {
            return Ok(());
        };
        change(&mut job);
        self.cluster.register_job(job, self.now);
        self.evaluate(&id)
    }

    fn evaluate_all(&mut self) -> Result<(), TestCaseError> {
        for id in self.job_ids.clone() {
            self.evaluate(&id)?;
        }
        Ok(())
    }

    fn evaluate(&mut self, id: &JobId) -> Result<(), TestCaseError> {
        let eval = self.cluster.evaluation(id, EvalTrigger::JobRegister, self.now, &mut self.rng);
        self.process(&eval)
    }

    /// Schedules, checks, commits and re-plans one evaluation.
    fn process(&mut self, eval: &Evaluation) -> Result<(), TestCaseError> {
        let job = self.cluster.job(&eval.job_id).cloned();
        let deployment_before = self.cluster.latest_deployment(&eval.job_id).cloned();
        let plan = schedule(&self.cluster, job.as_ref(), eval, self.now, &mut self.rng);
        if let Some(job) = &job {
            for alloc in &plan.place {
                let node = self.cluster.node(&alloc.node_id);
                prop_assert!(node.is_some_and(Node::is_schedulable), "placed on an unschedulable node: {alloc:?}");
                let accepted = node.is_some_and(|node| oracle_accepts(job, &alloc.group, node));
                prop_assert!(accepted, "placement violates a constraint: {} on {}", alloc.name, alloc.node_id);
            }
        }
        let verified = verify_plan(&self.cluster, &plan);
        prop_assert!(verified.is_fully_accepted(), "a plan on an unchanged state is accepted: {verified:?}");
        self.cluster.apply(&plan, self.now);
        self.check_invariants(job.as_ref())?;
        if let Some(job) = &job {
            self.check_rollout(job, &plan, deployment_before.as_ref())?;
            self.check_deployments(job, &plan)?;
            self.check_disconnects(job)?;
        }
        let again_eval = self.cluster.evaluation(&eval.job_id, EvalTrigger::JobRegister, self.now, &mut self.rng);
        let again = schedule(&self.cluster, job.as_ref(), &again_eval, self.now, &mut self.rng);
        prop_assert!(again.is_noop(), "planning again must be a no-op, got {again:#?}");
        Ok(())
    }

    fn check_invariants(&self, job: Option<&Job>) -> Result<(), TestCaseError> {
        // No over-commit.
        for node in self.cluster.node_list() {
            let wanted = self
                .cluster
                .allocs_on_node(&node.id)
                .into_iter()
                .filter(|alloc| alloc.wants_to_run() && alloc.holds_resources())
                .fold(Resources::default(), |total, alloc| total + alloc.resources);
            prop_assert!(wanted.fits_in(&node.resources), "{} over-committed: {wanted:?}", node.id);
            let mut taken: BTreeMap<u16, &str> = BTreeMap::new();
            // Stopping allocations give their ports back at once, as their
            // resources (see crate::ports).
            let running = |alloc: &&Allocation| alloc.wants_to_run() && alloc.holds_resources();
            for alloc in self.cluster.allocs_on_node(&node.id).into_iter().filter(running) {
                for port in &alloc.ports {
                    let earlier = taken.insert(port.value, alloc.id.as_str());
                    prop_assert!(
                        earlier.is_none(),
                        "port {} on {} held by {earlier:?} and {}",
                        port.value,
                        node.id,
                        alloc.id
                    );
                }
            }
        }
        let Some(job) = job else {
            return Ok(());
        };
        let live = self.cluster.live_allocs(&job.id);
        for alloc in live.iter().filter(|alloc| alloc.job_version == job.version) {
            self.check_ports_of(job, alloc)?;
        }
        let deployment = self.current_deployment(job);
        let mut per_group: BTreeMap<&str, u32> = BTreeMap::new();
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        let mut per_group_node: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for alloc in &live {
            // An `unknown` allocation may be gone: its replacement counts.
            if alloc.client_status != AllocClientStatus::Unknown {
                *per_group.entry(&alloc.group).or_default() += 1;
            }
            *per_node.entry(alloc.node_id.as_str()).or_default() += 1;
            *per_group_node.entry((&alloc.group, alloc.node_id.as_str())).or_default() += 1;
        }
        if job.stop {
            prop_assert!(live.is_empty(), "a stopped job keeps nothing running");
            return Ok(());
        }
        let job_distinct = job.constraints.iter().any(|c| c.operator == ConstraintOperator::DistinctHosts);
        if job_distinct {
            prop_assert!(per_node.values().all(|count| *count <= 1), "job distinct_hosts: {per_node:?}");
        }
        for group in &job.groups {
            let group_distinct = group.constraints.iter().any(|c| c.operator == ConstraintOperator::DistinctHosts);
            if group_distinct || job.job_type == JobType::System {
                prop_assert!(
                    per_group_node.iter().filter(|((name, _), _)| *name == group.name).all(|(_, count)| *count <= 1),
                    "one per node for {}: {per_group_node:?}",
                    group.name
                );
            }
            if job.job_type == JobType::System {
                self.check_system_coverage(job, &group.name, &per_group_node)?;
                continue;
            }
            let num_live = per_group.get(group.name.as_str()).copied().unwrap_or(0);
            let desired_canaries = deployment
                .and_then(|deployment| deployment.groups.get(&group.name))
                .map_or(0, |state| state.desired_canaries);
            let num_canaries = self
                .cluster
                .allocs_for_job(&job.id)
                .into_iter()
                .filter(|alloc| alloc.group == group.name && alloc.wants_to_run())
                .filter(|alloc| {
                    deployment.is_some_and(|deployment| alloc.deployment_id.as_ref() == Some(&deployment.id))
                })
                .filter(|alloc| alloc.deployment_status.as_ref().is_some_and(|status| status.canary))
                .count();
            prop_assert!(
                num_canaries <= desired_canaries as usize,
                "{} has {num_canaries} canaries, its deployment asked for {desired_canaries}",
                group.name
            );
            let num_completed = if job.job_type == JobType::Batch {
                self.cluster
                    .allocs_for_job(&job.id)
                    .into_iter()
                    .filter(|alloc| alloc.group == group.name && alloc.client_status == AllocClientStatus::Complete)
                    .filter(|alloc| alloc.desired_status != drover_types::AllocDesiredStatus::Evict)
                    .count()
            } else {
                0
            };
            prop_assert!(
                num_live <= group.count + desired_canaries,
                "{} has {num_live} live allocations for a count of {} and {desired_canaries} canaries",
                group.name,
                group.count
            );
            if num_live > 0 {
                let num_completed_u32 = u32::try_from(num_completed).unwrap_or(u32::MAX);
                prop_assert!(num_live + num_completed_u32 <= (group.count + desired_canaries).max(num_completed_u32));
            }
        }
        Ok(())
    }

    /// The deployment of the job's current registration, if any.
    fn current_deployment(&self, job: &Job) -> Option<&Deployment> {
        self.cluster.latest_deployment(&job.id).filter(|deployment| {
            deployment.job_version == job.version && deployment.job_modify_index == job.job_modify_index
        })
    }

    /// Destructive updates respect `max_parallel` and the deployment.
    fn check_rollout(&self, job: &Job, plan: &Plan, before: Option<&Deployment>) -> Result<(), TestCaseError> {
        let before = before.filter(|deployment| {
            deployment.job_version == job.version && deployment.job_modify_index == job.job_modify_index
        });
        for group in &job.groups {
            let num_destructive = plan
                .stop
                .iter()
                .filter(|stop| stop.description == reasons::ALLOC_UPDATING)
                .filter(|stop| self.cluster.alloc(&stop.alloc_id).is_some_and(|alloc| alloc.group == group.name))
                .count();
            if num_destructive == 0 {
                continue;
            }
            if let Some(deployment) = before {
                let halted = matches!(deployment.status, DeploymentStatus::Failed | DeploymentStatus::Cancelled);
                let has_group = deployment.groups.contains_key(&group.name);
                prop_assert!(
                    !(has_group && (halted || deployment.awaits_promotion(&group.name))),
                    "destructive updates in {} while its deployment is {} or waits for a promotion",
                    group.name,
                    deployment.status
                );
            }
            if let Some(started) = &plan.deployment {
                prop_assert!(!started.awaits_promotion(&group.name), "destructive updates next to new canaries");
            }
            let max_parallel = job.update_for(group).map_or(u32::MAX, |update| update.max_parallel);
            let num_unhealthy = self
                .cluster
                .live_allocs(&job.id)
                .into_iter()
                .filter(|alloc| alloc.group == group.name && alloc.job_version == job.version)
                .filter(|alloc| alloc.deployment_status.as_ref().is_some_and(|status| status.healthy != Some(true)))
                .count();
            prop_assert!(
                num_unhealthy <= max_parallel as usize,
                "{} has {num_unhealthy} unhealthy allocations of the new version after destructive updates, \
                 max_parallel is {max_parallel}",
                group.name
            );
        }
        Ok(())
    }

    /// Only the latest deployment may be active, for the current
    /// registration of a running job, and placements join it.
    fn check_deployments(&self, job: &Job, plan: &Plan) -> Result<(), TestCaseError> {
        let deployments = self.cluster.deployments(&job.id);
        let Some((latest, older)) = deployments.split_last() else {
            prop_assert!(plan.place.iter().all(|alloc| alloc.deployment_id.is_none()));
            return Ok(());
        };
        prop_assert!(older.iter().all(|deployment| !deployment.status.is_active()), "an older deployment is active");
        if latest.status.is_active() {
            prop_assert!(!job.stop, "a stopped job keeps an active deployment");
            prop_assert!(
                latest.job_version == job.version && latest.job_modify_index == job.job_modify_index,
                "the active deployment is for an older registration"
            );
            prop_assert!(job.job_type == JobType::Service, "only service jobs have deployments");
        }
        for alloc in &plan.place {
            if let Some(deployment_id) = &alloc.deployment_id {
                prop_assert!(
                    deployment_id == &latest.id && latest.status.is_active(),
                    "{} joins {deployment_id}",
                    alloc.name
                );
            } else if latest.status.is_active() {
                prop_assert!(!latest.groups.contains_key(&alloc.group), "{} does not join the deployment", alloc.name);
            }
        }
        self.check_deployment_counters(job, &deployments)
    }

    /// Every deployment's counters (kept by the state machine as plans and
    /// health reports are committed) agree with its allocations: placed,
    /// canaries, healthy and unhealthy.
    fn check_deployment_counters(&self, job: &Job, deployments: &[&Deployment]) -> Result<(), TestCaseError> {
        let allocs = self.cluster.allocs_for_job(&job.id);
        for deployment in deployments {
            for (name, group) in &deployment.groups {
                let members: Vec<&&Allocation> = allocs
                    .iter()
                    .filter(|alloc| alloc.deployment_id.as_ref() == Some(&deployment.id) && &alloc.group == name)
                    .collect();
                let health = |verdict: bool| {
                    members
                        .iter()
                        .filter(|alloc| {
                            alloc.deployment_status.as_ref().is_some_and(|status| status.healthy == Some(verdict))
                        })
                        .count()
                };
                let mut canaries: Vec<_> = members
                    .iter()
                    .filter(|alloc| alloc.deployment_status.as_ref().is_some_and(|status| status.canary))
                    .map(|alloc| alloc.id.clone())
                    .collect();
                canaries.sort();
                let mut counted_canaries = group.placed_canaries.clone();
                counted_canaries.sort();
                let label = format!("deployment {} group {name}", deployment.id);
                prop_assert_eq!(group.placed_allocs as usize, members.len(), "{} placed", label);
                prop_assert_eq!(counted_canaries, canaries, "{} canaries", label);
                prop_assert_eq!(group.healthy_allocs as usize, health(true), "{} healthy", label);
                prop_assert_eq!(group.unhealthy_allocs as usize, health(false), "{} unhealthy", label);
            }
        }
        Ok(())
    }

    /// Live allocations on disconnected nodes are `unknown`.
    fn check_disconnects(&self, job: &Job) -> Result<(), TestCaseError> {
        let live: Vec<&Allocation> = self.cluster.live_allocs(&job.id);
        for alloc in live {
            let disconnected =
                self.cluster.node(&alloc.node_id).is_some_and(|node| node.status == NodeStatus::Disconnected);
            if disconnected {
                prop_assert_eq!(
                    alloc.client_status,
                    AllocClientStatus::Unknown,
                    "{} on a disconnected node",
                    &alloc.name
                );
            }
        }
        Ok(())
    }

    /// The allocation holds exactly its group's ports: static ones with
    /// their number, dynamic ones from its node's range.
    fn check_ports_of(&self, job: &Job, alloc: &Allocation) -> Result<(), TestCaseError> {
        let wanted = job.group(&alloc.group).and_then(|group| group.network.as_ref()).map_or(&[][..], |n| &n.ports);
        let labels: Vec<&str> = alloc.ports.iter().map(|port| port.label.as_str()).collect();
        let wanted_labels: Vec<&str> = wanted.iter().map(|port| port.label.as_str()).collect();
        prop_assert_eq!(labels, wanted_labels, "ports of {}", alloc.id);
        let range = self.cluster.node(&alloc.node_id).map(Node::dynamic_ports);
        for (port, spec) in alloc.ports.iter().zip(wanted) {
            match spec.static_port {
                Some(number) => prop_assert_eq!(port.value, number, "static port {} of {}", spec.label, alloc.id),
                None => prop_assert!(
                    range.is_none_or(|range| range.contains(port.value)),
                    "dynamic port {} of {} outside {range:?}",
                    port.value,
                    alloc.id
                ),
            }
        }
        Ok(())
    }

    /// An oracle for ports, independent of the scheduler's: whether `node`
    /// has the static ports of `group` free and enough free ports in its
    /// dynamic range (a port is taken while its allocation holds resources,
    /// as cpu and memory are: `node_usage`).
    fn has_ports_for(&self, job: &Job, group_name: &str, node: &Node) -> bool {
        let Some(network) = job.group(group_name).and_then(|group| group.network.as_ref()) else {
            return true;
        };
        let taken: std::collections::BTreeSet<u16> = self
            .cluster
            .allocs_on_node(&node.id)
            .into_iter()
            .filter(|alloc| alloc.holds_resources())
            .flat_map(|alloc| alloc.ports.iter().map(|port| port.value))
            .collect();
        if network.static_ports().any(|port| taken.contains(&port)) {
            return false;
        }
        let range = node.dynamic_ports();
        let num_free = (range.low..=range.high)
            .filter(|port| !taken.contains(port) && !network.static_ports().any(|own| own == *port))
            .count();
        num_free >= network.num_dynamic()
    }

    fn check_system_coverage(
        &self,
        job: &Job,
        group_name: &str,
        per_group_node: &BTreeMap<(&str, &str), u32>,
    ) -> Result<(), TestCaseError> {
        let ask = job.group(group_name).map(|group| group.resources()).unwrap_or_default();
        for node in self.cluster.node_list() {
            let count = per_group_node.get(&(group_name, node.id.as_str())).copied().unwrap_or(0);
            let matches = oracle_accepts(job, group_name, node);
            if !matches || node.status == NodeStatus::Down {
                prop_assert_eq!(count, 0, "system allocation on a node that is down or does not match: {}", node.id);
                continue;
            }
            if node.is_schedulable() && count == 0 {
                let job_distinct = job.constraints.iter().any(|c| c.operator == ConstraintOperator::DistinctHosts)
                    && self.cluster.live_allocs(&job.id).iter().any(|alloc| alloc.node_id == node.id);
                let has_room = (self.cluster.node_usage(&node.id) + ask).fits_in(&node.resources)
                    && self.has_ports_for(job, group_name, node);
                prop_assert!(
                    !has_room || job_distinct,
                    "a schedulable, matching node with room has no system allocation: {}",
                    node.id
                );
            }
        }
        Ok(())
    }

    fn run(&mut self, operation: &Operation) -> Result<(), TestCaseError> {
        match operation {
            Operation::Evaluate(pick) => {
                if let Some(id) = self.job(*pick) {
                    self.evaluate(&id)?;
                }
            }
            Operation::Scale(pick, count) => {
                self.change_job(*pick, |job| job.groups.iter_mut().for_each(|group| group.count = *count))?;
            }
            Operation::ChangeTasks(pick) => {
                let value = self.now.as_millis().to_string();
                self.change_job(*pick, |job| {
                    for group in &mut job.groups {
                        group.tasks[0].env.insert("VERSION".into(), value.clone());
                    }
                })?;
            }
            Operation::ChangeMeta(pick) => {
                let value = self.now.as_millis().to_string();
                self.change_job(*pick, |job| {
                    job.meta.insert("revision".into(), value);
                })?;
            }
            Operation::StopJob(pick) => {
                if let Some(id) = self.job(*pick) {
                    self.cluster.stop_job(&id, self.now);
                    self.evaluate(&id)?;
                }
            }
            Operation::SetNodeState(pick, state) => {
                if let Some(id) = self.node_id(*pick) {
                    match state {
                        0 => self.cluster.set_node_status(&id, NodeStatus::Down, self.now),
                        1 => self.cluster.set_node_eligibility(&id, NodeEligibility::Ineligible, self.now),
                        2 => self.cluster.set_node_eligibility(&id, NodeEligibility::Eligible, self.now),
                        3 => self.cluster.set_node_status(&id, NodeStatus::Ready, self.now),
                        4 => self.cluster.set_node_status(&id, NodeStatus::Disconnected, self.now),
                        _ => self.cluster.remove_node(&id).is_some(),
                    };
                    self.evaluate_all()?;
                }
            }
            Operation::Reconnect(pick) => {
                let disconnected: Vec<_> = self
                    .cluster
                    .node_list()
                    .filter(|node| node.status == NodeStatus::Disconnected)
                    .map(|node| node.id.clone())
                    .collect();
                if !disconnected.is_empty() {
                    let id = &disconnected[*pick % disconnected.len()];
                    self.cluster.set_node_status(id, NodeStatus::Ready, self.now);
                    self.evaluate_all()?;
                }
            }
            Operation::FlipEnvironment(pick) => {
                if let Some(id) = self.node_id(*pick)
                    && self.cluster.change_node(&id, self.now, |node| {
                        node.environment = if node.environment == "qa" { "production" } else { "qa" }.into();
                    })
                {
                    self.evaluate_all()?;
                }
            }
            Operation::AddNode(spec) => {
                // Names never repeat: re-adding a name would replace a node.
                self.num_nodes_added += 1;
                self.cluster.add_node(build_node(100 + self.num_nodes_added, spec));
                self.evaluate_all()?;
            }
            Operation::FailAlloc(pick) | Operation::CompleteAlloc(pick) => {
                if let Some(id) = self.live_alloc(*pick) {
                    let status = if matches!(operation, Operation::FailAlloc(_)) {
                        AllocClientStatus::Failed
                    } else {
                        AllocClientStatus::Complete
                    };
                    self.cluster.set_client_status(&id, status, self.now);
                    let job_id = self.cluster.alloc(&id).map(|alloc| alloc.job_id.clone());
                    if let Some(job_id) = job_id {
                        self.evaluate(&job_id)?;
                    }
                }
            }
            Operation::Migrate(pick) => {
                if let Some(id) = self.live_alloc(*pick) {
                    self.cluster.mark_for_migration(&id, self.now);
                    let job_id = self.cluster.alloc(&id).map(|alloc| alloc.job_id.clone());
                    if let Some(job_id) = job_id {
                        self.evaluate(&job_id)?;
                    }
                }
            }
            Operation::SimulateAgents(healthy) => {
                self.cluster.simulate_agents(self.now, *healthy);
                self.evaluate_all()?;
            }
            Operation::SetHealth(pick, healthy) => {
                if let Some(id) = self.live_alloc(*pick) {
                    self.cluster.set_healthy(&id, *healthy, self.now);
                    let job_id = self.cluster.alloc(&id).map(|alloc| alloc.job_id.clone());
                    if let Some(job_id) = job_id {
                        self.evaluate(&job_id)?;
                    }
                }
            }
            Operation::Promote(pick) => {
                if let Some(id) = self.job(*pick)
                    && self.cluster.promote_deployment(&id, self.now)
                {
                    self.evaluate(&id)?;
                }
            }
            Operation::FailDeployment(pick) => {
                if let Some(id) = self.job(*pick)
                    && self.cluster.set_deployment_status(&id, DeploymentStatus::Failed, "failed by the test", self.now)
                {
                    self.evaluate(&id)?;
                }
            }
            Operation::AdvanceTime(seconds) => {
                self.now = self.now.plus(std::time::Duration::from_secs(u64::from(*seconds)));
            }
            Operation::RunDueFollowUps => {
                let due: Vec<Evaluation> = self.cluster.evaluations()[self.num_follow_ups_run..]
                    .iter()
                    .filter(|eval| eval.wait_until.is_none_or(|at| at <= self.now))
                    .cloned()
                    .collect();
                self.num_follow_ups_run = self.cluster.evaluations().len();
                for eval in due {
                    self.process(&eval)?;
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_invariant(
        nodes in prop::collection::vec(node_spec(), 0..12),
        jobs in prop::collection::vec(job_spec(), 1..4),
        operations in prop::collection::vec(operation(), 0..24),
        seed in any::<u64>(),
    ) {
        let mut world = World::new(&nodes, &jobs, seed);
        world.evaluate_all()?;
        for operation in &operations {
            world.run(operation)?;
        }
    }

    #[test]
    fn disconnects_and_reconnects_keep_every_invariant(
        nodes in prop::collection::vec(node_spec(), 2..10),
        jobs in prop::collection::vec(job_spec(), 1..3),
        operations in prop::collection::vec(disconnect_operation(), 0..32),
        seed in any::<u64>(),
    ) {
        // Every job waits `lost_after` for a disconnected node, with or
        // without replacements.
        let waiting_jobs: Vec<JobSpec> =
            jobs.into_iter().map(|spec| JobSpec { disconnect: 2 + spec.disconnect % 2, ..spec }).collect();
        let mut world = World::new(&nodes, &waiting_jobs, seed);
        world.evaluate_all()?;
        for operation in &operations {
            world.run(operation)?;
        }
    }

    #[test]
    fn a_system_job_covers_exactly_the_feasible_nodes(
        nodes in prop::collection::vec(node_spec(), 1..16),
        constraints in prop::collection::vec(0..POOL.len(), 0..3),
        changes in prop::collection::vec((0..16_usize, 0..7_u8), 0..6),
        seed in any::<u64>(),
    ) {
        let spec = JobSpec {
            kind: 4,
            count: 0,
            cpu: 10,
            memory: 10,
            constraints,
            distinct_hosts: 0,
            two_groups: false,
            max_parallel: 0,
            canary: 0,
            disconnect: 0,
            reconcile: 0,
            ports: 2,
        };
        let mut world = World::new(&nodes, &[spec], seed);
        world.evaluate_all()?;
        for (pick, change) in changes {
            let operation = match change {
                0..=5 => Operation::SetNodeState(pick, change),
                _ => Operation::FlipEnvironment(pick),
            };
            world.run(&operation)?;
        }
    }
}
