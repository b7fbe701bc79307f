//! An in-memory cluster for tests, property tests and benchmarks.
//!
//! [`Cluster`] implements [`ClusterView`] over plain maps, with node usage
//! kept incrementally (O(1) per lookup, as the state store must), and
//! [`Cluster::apply`] commits a plan the way the Raft state machine does.
//! Helpers simulate agents (client status, health, reports after a
//! reconnect), operators (nodes going down or disconnecting, drains, job
//! stops, promotions) and the deployment watcher (a deployment's status),
//! and generators build synthetic fleets
//! and jobs shaped like the users' (host groups such as
//! `bi/batch/gridworker`, `production` and `qa` environments, kernel and OS
//! facts, racks).
//!
//! Everything here is pure: randomness comes from the caller's generator and
//! time from `now` arguments, so a seeded run is reproducible.

use std::collections::BTreeMap;

use drover_types::{
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, AllocId, Allocation, Constraint, ConstraintOperator,
    Deployment, DeploymentId, DeploymentStatus, DrainStrategy, Driver, DurationSpec, EvalId, EvalTrigger, Evaluation,
    Job, JobId, JobStatus, JobType, MigrateStrategy, Node, NodeEligibility, NodeId, NodeLabels, NodeStatus, Plan,
    ReschedulePolicy, Resources, RestartPolicy, Task, TaskConfig, TaskGroup, TaskLifecycleState, Timestamp,
};
use rand::Rng;

use crate::fast_hash::FastMap;
use crate::ids::random_uuid;
use crate::planner::schedule;
use crate::verify::{VerifiedPlan, verify_plan};
use crate::view::ClusterView;

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

/// An in-memory cluster state.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    jobs: FastMap<JobId, Job>,
    job_versions: FastMap<JobId, BTreeMap<u64, Job>>,
    /// Every allocation ever placed; never removed (no garbage collection).
    allocs: Vec<Allocation>,
    alloc_positions: FastMap<AllocId, usize>,
    allocs_by_job: FastMap<JobId, Vec<usize>>,
    allocs_by_node: FastMap<NodeId, Vec<usize>>,
    usage: FastMap<NodeId, Resources>,
    /// Every deployment, in creation order; never removed.
    deployments: Vec<Deployment>,
    deployment_positions: FastMap<DeploymentId, usize>,
    /// Per job, its deployments' positions in creation order.
    deployments_by_job: FastMap<JobId, Vec<usize>>,
    evaluations: Vec<Evaluation>,
    raft_index: u64,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// A cluster of `num_nodes` synthetic nodes (see [`synthetic_node`]).
    pub fn synthetic<R: Rng + ?Sized>(num_nodes: usize, rng: &mut R) -> Cluster {
        let mut cluster = Cluster::new();
        for number in 0..num_nodes {
            cluster.add_node(synthetic_node(number, rng));
        }
        cluster
    }

    // ----- nodes -----

    /// Registers (or replaces) a node.
    pub fn add_node(&mut self, mut node: Node) {
        self.raft_index += 1;
        node.create_index = self.raft_index;
        node.modify_index = self.raft_index;
        self.nodes.insert(node.id.clone(), node);
    }

    /// Removes a node; its allocations stay (the scheduler declares them
    /// lost).
    pub fn remove_node(&mut self, id: &NodeId) -> Option<Node> {
        self.raft_index += 1;
        self.nodes.remove(id)
    }

    /// A node, for changes that do not affect usage (labels, attributes,
    /// capacity).
    pub fn node_mut(&mut self, id: &NodeId) -> Option<&mut Node> {
        self.raft_index += 1;
        let raft_index = self.raft_index;
        let node = self.nodes.get_mut(id)?;
        node.modify_index = raft_index;
        Some(node)
    }

    /// Sets a node's heartbeat status at `now` (`Down` to simulate a dead
    /// machine, `Disconnected` a silent one); `status_updated_at` changes
    /// only with the status, as in the state machine (a disconnected
    /// group's `lost_after` counts from it).
    pub fn set_node_status(&mut self, id: &NodeId, status: NodeStatus, now: Timestamp) -> bool {
        self.node_mut(id)
            .map(|node| {
                if node.status != status {
                    node.status = status;
                    node.status_updated_at = now;
                }
            })
            .is_some()
    }

    /// Sets a node's scheduling eligibility.
    pub fn set_node_eligibility(&mut self, id: &NodeId, eligibility: NodeEligibility) -> bool {
        self.node_mut(id).map(|node| node.eligibility = eligibility).is_some()
    }

    /// Starts or ends a drain of a node (the drainer's flags are set with
    /// [`mark_for_migration`](Self::mark_for_migration)).
    pub fn set_node_drain(&mut self, id: &NodeId, drain: Option<DrainStrategy>) -> bool {
        self.node_mut(id).map(|node| node.drain = drain).is_some()
    }

    /// Every node, in id order.
    pub fn node_list(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    // ----- jobs -----

    /// Registers a job, as `drover job run` does: a new job gets version 0,
    /// a changed specification the next version; the Raft indexes are set.
    /// Returns the stored job.
    pub fn register_job(&mut self, mut job: Job, now: Timestamp) -> &Job {
        self.raft_index += 1;
        let previous = self.jobs.get(&job.id);
        let spec_changed = previous.is_none_or(|previous| previous.spec_differs(&job) || previous.stop);
        job.version = match previous {
            None => 0,
            Some(previous) if previous.spec_differs(&job) => previous.version + 1,
            Some(previous) => previous.version,
        };
        job.create_index = previous.map_or(self.raft_index, |previous| previous.create_index);
        job.job_modify_index =
            if spec_changed { self.raft_index } else { previous.map_or(self.raft_index, |p| p.job_modify_index) };
        job.modify_index = self.raft_index;
        job.stop = false;
        job.submit_time = now;
        self.job_versions.entry(job.id.clone()).or_default().insert(job.version, job.clone());
        self.jobs.entry(job.id.clone()).insert_entry(job).into_mut()
    }

    /// Stops a job (`drover job stop`): its specification index changes, so
    /// plans computed before are refused.
    pub fn stop_job(&mut self, id: &JobId) -> bool {
        self.raft_index += 1;
        let raft_index = self.raft_index;
        self.jobs
            .get_mut(id)
            .map(|job| {
                job.stop = true;
                job.job_modify_index = raft_index;
                job.modify_index = raft_index;
            })
            .is_some()
    }

    /// Purges a job and all its versions (its allocations stay until the
    /// scheduler stops them).
    pub fn purge_job(&mut self, id: &JobId) -> Option<Job> {
        self.raft_index += 1;
        self.job_versions.remove(id);
        self.jobs.remove(id)
    }

    // ----- evaluations and plans -----

    /// A new pending evaluation of a job (whose id comes from `rng`).
    pub fn evaluation<R: Rng + ?Sized>(
        &self,
        job_id: &JobId,
        trigger: EvalTrigger,
        now: Timestamp,
        rng: &mut R,
    ) -> Evaluation {
        let job = self.jobs.get(job_id);
        let mut eval = Evaluation::new(
            EvalId::new(random_uuid(rng)),
            job_id.clone(),
            job.map_or(50, |job| job.priority),
            trigger,
            now,
        );
        eval.job_modify_index = job.map_or(0, |job| job.job_modify_index);
        eval
    }

    /// Schedules `eval` against the current state, verifies the plan and
    /// commits what was accepted, like the leader's evaluation loop (one
    /// round, no retry). Returns the verification outcome.
    pub fn process<R: Rng + ?Sized>(&mut self, eval: &Evaluation, now: Timestamp, rng: &mut R) -> VerifiedPlan {
        let plan = schedule(&*self, self.jobs.get(&eval.job_id), eval, now, rng);
        let verified = verify_plan(&*self, &plan);
        self.apply(&verified.accepted, now);
        verified
    }

    /// Creates an evaluation of `job_id` and [`process`](Self::process)es
    /// it; returns the accepted plan.
    pub fn evaluate<R: Rng + ?Sized>(
        &mut self,
        job_id: &JobId,
        trigger: EvalTrigger,
        now: Timestamp,
        rng: &mut R,
    ) -> Plan {
        let eval = self.evaluation(job_id, trigger, now, rng);
        self.process(&eval, now, rng).accepted
    }

    /// Commits a plan like the state machine (`drover-state`): stops set the
    /// desired status and description, the client status when given, and
    /// the follow-up evaluation when given; in-place updates move
    /// allocations to the new version; updates set the client status (with
    /// the description) and the follow-up evaluation when given; placements
    /// are inserted and linked to the allocation they replace; the new
    /// deployment is inserted and deployment updates replace the stored
    /// ones; follow-up evaluations are recorded.
    ///
    /// Unlike the state machine, the harness does not keep a deployment's
    /// counters (placed, healthy, canaries): the scheduler does not read
    /// them.
    pub fn apply(&mut self, plan: &Plan, now: Timestamp) {
        self.raft_index += 1;
        let raft_index = self.raft_index;
        for stop in &plan.stop {
            self.update_alloc(&stop.alloc_id, |alloc| {
                alloc.desired_status = stop.desired_status;
                alloc.desired_description.clone_from(&stop.description);
                if let Some(client_status) = stop.client_status {
                    alloc.client_status = client_status;
                    alloc.client_description.clone_from(&stop.description);
                }
                if stop.follow_up_eval.is_some() {
                    alloc.follow_up_eval.clone_from(&stop.follow_up_eval);
                }
                alloc.modify_time = now;
                alloc.modify_index = raft_index;
            });
        }
        for update in &plan.in_place {
            self.update_alloc(&update.alloc_id, |alloc| {
                alloc.job_version = update.job_version;
                alloc.modify_time = now;
                alloc.modify_index = raft_index;
            });
        }
        for update in &plan.updates {
            self.update_alloc(&update.alloc_id, |alloc| {
                if let Some(client_status) = update.client_status {
                    alloc.client_status = client_status;
                    alloc.client_description.clone_from(&update.description);
                }
                if update.follow_up_eval.is_some() {
                    alloc.follow_up_eval.clone_from(&update.follow_up_eval);
                }
                alloc.modify_time = now;
                alloc.modify_index = raft_index;
            });
        }
        for new_alloc in &plan.place {
            let mut alloc = new_alloc.clone();
            alloc.create_index = raft_index;
            alloc.modify_index = raft_index;
            if let Some(previous_id) = &alloc.previous_alloc {
                let next_id = alloc.id.clone();
                self.update_alloc(previous_id, |previous| previous.next_alloc = Some(next_id));
            }
            self.insert_alloc(alloc);
        }
        if let Some(deployment) = &plan.deployment {
            let mut inserted = deployment.clone();
            inserted.create_index = raft_index;
            inserted.modify_index = raft_index;
            self.upsert_deployment(inserted);
        }
        for deployment in &plan.deployment_updates {
            let mut updated = deployment.clone();
            updated.modify_index = raft_index;
            self.upsert_deployment(updated);
        }
        self.evaluations.extend(plan.follow_ups.iter().cloned());
    }

    // ----- deployments -----

    /// Every deployment of a job, oldest first.
    pub fn deployments(&self, job_id: &JobId) -> Vec<&Deployment> {
        self.deployments_by_job
            .get(job_id)
            .map(|positions| positions.iter().map(|position| &self.deployments[*position]).collect())
            .unwrap_or_default()
    }

    /// Promotes the canaries of every group of the job's latest deployment,
    /// as `drover job promote` (or `auto_promote`) does. Returns whether the
    /// job has an active deployment.
    pub fn promote_deployment(&mut self, job_id: &JobId, now: Timestamp) -> bool {
        self.change_latest_deployment(job_id, now, |deployment| {
            if !deployment.status.is_active() {
                return false;
            }
            for group in deployment.groups.values_mut() {
                group.promoted = true;
            }
            deployment.status = DeploymentStatus::Running;
            true
        })
    }

    /// Sets the status of the job's latest deployment, as the deployment
    /// watcher does (`Failed`, `Successful`). Returns whether the job has a
    /// deployment.
    pub fn set_deployment_status(
        &mut self,
        job_id: &JobId,
        status: DeploymentStatus,
        description: &str,
        now: Timestamp,
    ) -> bool {
        self.change_latest_deployment(job_id, now, |deployment| {
            deployment.status = status;
            description.clone_into(&mut deployment.status_description);
            true
        })
    }

    fn change_latest_deployment(
        &mut self,
        job_id: &JobId,
        now: Timestamp,
        change: impl FnOnce(&mut Deployment) -> bool,
    ) -> bool {
        let Some(&position) = self.deployments_by_job.get(job_id).and_then(|positions| positions.last()) else {
            return false;
        };
        self.raft_index += 1;
        let deployment = &mut self.deployments[position];
        let changed = change(deployment);
        if changed {
            deployment.modify_time = now;
            deployment.modify_index = self.raft_index;
        }
        changed
    }

    fn upsert_deployment(&mut self, deployment: Deployment) {
        if let Some(&position) = self.deployment_positions.get(&deployment.id) {
            self.deployments[position] = deployment;
            return;
        }
        let position = self.deployments.len();
        self.deployment_positions.insert(deployment.id.clone(), position);
        self.deployments_by_job.entry(deployment.job_id.clone()).or_default().push(position);
        self.deployments.push(deployment);
    }

    /// Evaluations created by committed plans (follow-ups), oldest first.
    pub fn evaluations(&self) -> &[Evaluation] {
        &self.evaluations
    }

    // ----- agents -----

    /// Sets an allocation's client status as its agent would report it.
    /// `Running` starts every task; `Complete` and `Failed` finish them at
    /// `now` (so reschedule delays count from `now`).
    pub fn set_client_status(&mut self, id: &AllocId, status: AllocClientStatus, now: Timestamp) -> bool {
        let task_names = self.task_names(id);
        self.update_alloc(id, |alloc| {
            alloc.client_status = status;
            alloc.modify_time = now;
            for task_name in &task_names {
                let state = alloc.task_states.entry(task_name.clone()).or_default();
                match status {
                    AllocClientStatus::Running => {
                        state.state = TaskLifecycleState::Running;
                        state.started_at = Some(now);
                    }
                    AllocClientStatus::Complete | AllocClientStatus::Failed | AllocClientStatus::Lost => {
                        state.state = TaskLifecycleState::Dead;
                        state.failed = status == AllocClientStatus::Failed;
                        state.finished_at = Some(now);
                    }
                    AllocClientStatus::Pending | AllocClientStatus::Unknown => {}
                }
            }
        })
    }

    /// Sets an allocation's deployment health, as the health watcher would.
    pub fn set_healthy(&mut self, id: &AllocId, healthy: bool, now: Timestamp) -> bool {
        self.update_alloc(id, |alloc| {
            let status = alloc.deployment_status.get_or_insert_with(AllocDeploymentStatus::default);
            status.healthy = Some(healthy);
            status.timestamp = now;
        })
    }

    /// Flags an allocation for migration, as the drainer does.
    pub fn mark_for_migration(&mut self, id: &AllocId) -> bool {
        self.update_alloc(id, |alloc| alloc.desired_transition.migrate = true)
    }

    /// Asks for an allocation to be replaced although it has not failed
    /// (`desired_transition.reschedule`).
    pub fn mark_for_reschedule(&mut self, id: &AllocId) -> bool {
        self.update_alloc(id, |alloc| alloc.desired_transition.reschedule = true)
    }

    /// Simulates every agent that can reach the servers (its node is ready
    /// or initializing) catching up: allocations that should run and are
    /// pending start running (and, with `healthy`, are reported healthy);
    /// allocations that should stop finish; allocations marked `unknown`
    /// while their node was disconnected are reported running again, their
    /// tasks untouched. Returns how many allocations changed.
    pub fn simulate_agents(&mut self, now: Timestamp, healthy: bool) -> usize {
        let mut num_changed = 0;
        for position in 0..self.allocs.len() {
            let alloc = &self.allocs[position];
            let agent_reachable = self
                .nodes
                .get(&alloc.node_id)
                .is_some_and(|node| matches!(node.status, NodeStatus::Ready | NodeStatus::Initializing));
            if !agent_reachable {
                continue;
            }
            let new_status = match (alloc.desired_status, alloc.client_status) {
                (AllocDesiredStatus::Run, AllocClientStatus::Pending) => AllocClientStatus::Running,
                (AllocDesiredStatus::Run, AllocClientStatus::Unknown) => {
                    let id = alloc.id.clone();
                    self.report_reconnected(&id, now);
                    num_changed += 1;
                    continue;
                }
                (AllocDesiredStatus::Stop | AllocDesiredStatus::Evict, status) if !status.is_terminal() => {
                    AllocClientStatus::Complete
                }
                _ => continue,
            };
            let id = alloc.id.clone();
            self.set_client_status(&id, new_status, now);
            if healthy && new_status == AllocClientStatus::Running {
                self.set_healthy(&id, true, now);
            }
            num_changed += 1;
        }
        num_changed
    }

    /// Reports an allocation running again after its node reconnected: its
    /// client status becomes `running`, its tasks keep their start times.
    pub fn report_reconnected(&mut self, id: &AllocId, now: Timestamp) -> bool {
        self.update_alloc(id, |alloc| {
            alloc.client_status = AllocClientStatus::Running;
            alloc.client_description.clear();
            alloc.modify_time = now;
        })
    }

    // ----- reading -----

    /// Every allocation, in placement order.
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.allocs.iter()
    }

    /// How many allocations were ever placed.
    pub fn num_allocs(&self) -> usize {
        self.allocs.len()
    }

    /// The live allocations of a job (wanted and not terminal).
    pub fn live_allocs(&self, job_id: &JobId) -> Vec<&Allocation> {
        self.allocs_for_job(job_id).into_iter().filter(|alloc| alloc.wants_to_run() && !alloc.is_terminal()).collect()
    }

    fn task_names(&self, id: &AllocId) -> Vec<String> {
        let Some(alloc) = self.alloc(id) else {
            return Vec::new();
        };
        let group = self
            .job_versions
            .get(&alloc.job_id)
            .and_then(|versions| versions.get(&alloc.job_version))
            .and_then(|job| job.group(&alloc.group));
        match group {
            Some(group) => group.tasks.iter().map(|task| task.name.clone()).collect(),
            None => vec![alloc.group.clone()],
        }
    }

    /// Applies `change` to an allocation, keeping node usage right.
    fn update_alloc(&mut self, id: &AllocId, change: impl FnOnce(&mut Allocation)) -> bool {
        let Some(&position) = self.alloc_positions.get(id) else {
            return false;
        };
        let alloc = &mut self.allocs[position];
        let held_before = alloc.holds_resources();
        change(alloc);
        let holds_after = alloc.holds_resources();
        let node_usage = self.usage.entry(alloc.node_id.clone()).or_default();
        if held_before && !holds_after {
            *node_usage = node_usage.saturating_sub(&alloc.resources);
        } else if !held_before && holds_after {
            *node_usage += alloc.resources;
        }
        true
    }

    fn insert_alloc(&mut self, alloc: Allocation) {
        let position = self.allocs.len();
        if alloc.holds_resources() {
            *self.usage.entry(alloc.node_id.clone()).or_default() += alloc.resources;
        }
        self.alloc_positions.insert(alloc.id.clone(), position);
        self.allocs_by_job.entry(alloc.job_id.clone()).or_default().push(position);
        self.allocs_by_node.entry(alloc.node_id.clone()).or_default().push(position);
        self.allocs.push(alloc);
    }
}

impl ClusterView for Cluster {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.nodes.values())
    }

    fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    fn job_version(&self, id: &JobId, version: u64) -> Option<&Job> {
        self.job_versions.get(id).and_then(|versions| versions.get(&version))
    }

    fn alloc(&self, id: &AllocId) -> Option<&Allocation> {
        self.alloc_positions.get(id).map(|position| &self.allocs[*position])
    }

    fn allocs_for_job(&self, job: &JobId) -> Vec<&Allocation> {
        self.allocs_by_job
            .get(job)
            .map(|positions| positions.iter().map(|position| &self.allocs[*position]).collect())
            .unwrap_or_default()
    }

    fn allocs_on_node(&self, node: &NodeId) -> Vec<&Allocation> {
        self.allocs_by_node
            .get(node)
            .map(|positions| positions.iter().map(|position| &self.allocs[*position]).collect())
            .unwrap_or_default()
    }

    fn node_usage(&self, node: &NodeId) -> Resources {
        self.usage.get(node).copied().unwrap_or_default()
    }

    fn latest_deployment(&self, job: &JobId) -> Option<&Deployment> {
        let position = self.deployments_by_job.get(job).and_then(|positions| positions.last())?;
        self.deployments.get(*position)
    }
}

// ----- generators -----

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
