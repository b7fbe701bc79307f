//! [`Cluster`]: the replicated state of a real server, changed by the
//! commands servers propose, as the scheduler's tests see it.
//!
//! Nothing here changes the state directly: every helper proposes the
//! [`Command`] the server would (an agent's report, an operator's change,
//! the deployment watcher's decision, the plan applier's `ApplyPlan`) and
//! `drover_state::State::apply` does the rest, at the next Raft index. So
//! plan commit, usage accounting and deployment counters (placed, healthy,
//! unhealthy, canaries) exist once, in the state machine.

use std::collections::BTreeSet;

use drover_state::{Command, CommandResponse, State};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, ClientAllocUpdate, Deployment, DeploymentStatus,
    DesiredTransition, DrainStrategy, EvalId, EvalStatus, EvalTrigger, Evaluation, Job, JobId, Node, NodeEligibility,
    NodeId, NodeLabels, NodeStatus, Plan, Resources, TaskLifecycleState, Timestamp,
};
use rand::Rng;

use super::registration;
use crate::ids::random_uuid;
use crate::planner::schedule;
use crate::verify::{VerifiedPlan, verify_plan};
use crate::view::ClusterView;

/// Who the harness's operator changes are recorded as, in node histories.
const OPERATOR: &str = "scheduler harness";

/// An in-memory cluster: drover-state's [`State`], driven by commands.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    state: State,
    /// Nodes hidden from the scheduler (see [`Cluster::remove_node`]).
    removed_nodes: BTreeSet<NodeId>,
    /// Evaluations created by committed plans, in commit order.
    follow_ups: Vec<Evaluation>,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Applies `command` at the next Raft index, as every server does once
    /// it is committed.
    fn propose(&mut self, command: &Command) -> CommandResponse {
        let index = self.state.last_index() + 1;
        self.state.apply(index, command)
    }

    /// Proposes `command`; whether the state machine applied it.
    fn propose_applied(&mut self, command: &Command) -> bool {
        !matches!(self.propose(command), CommandResponse::Rejected { .. })
    }

    /// An evaluation proposed with a change, as servers attach one; its id
    /// is the Raft index it is proposed at, so that runs stay reproducible.
    fn new_eval(&self, job_id: &JobId, trigger: EvalTrigger, now: Timestamp) -> Evaluation {
        let id = EvalId::new(format!("harness-{}", self.state.last_index() + 1));
        let priority = self.state.job(job_id).map_or(50, |job| job.priority);
        Evaluation::new(id, job_id.clone(), priority, trigger, now)
    }

    // ----- nodes -----

    /// Registers (or changes) a node so that the state holds `node`: its
    /// agent registers at `node.registered_at` with its own labels, facts
    /// and capacity, then an operator sets the labels, drain, eligibility,
    /// status and protection where they differ.
    pub fn add_node(&mut self, node: Node) {
        self.removed_nodes.remove(&node.id);
        let now = node.registered_at;
        self.reach(&node, now);
    }

    /// Hides a node from the scheduler as if it were gone from the state;
    /// its allocations stay (the scheduler declares them lost). The state
    /// machine never deletes a node, so this is the harness's only change
    /// made outside it, and it touches the view, not the state.
    pub fn remove_node(&mut self, id: &NodeId) -> Option<Node> {
        if self.removed_nodes.contains(id) {
            return None;
        }
        let node = self.state.node(id).map(|node| Node::clone(node))?;
        self.removed_nodes.insert(id.clone());
        Some(node)
    }

    /// Changes a node at `now` through the commands that would make the
    /// change: an agent's new registration for facts and capacity, an
    /// operator's label, drain, eligibility, status or protection change
    /// for the rest. Returns whether the node exists.
    pub fn change_node(&mut self, id: &NodeId, now: Timestamp, change: impl FnOnce(&mut Node)) -> bool {
        let Some(mut wanted) = self.node(id).cloned() else {
            return false;
        };
        change(&mut wanted);
        debug_assert_eq!(&wanted.id, id, "a node's id cannot change");
        self.reach(&wanted, now);
        true
    }

    /// Proposes what makes the stored node equal to `wanted` in everything
    /// the scheduler reads.
    fn reach(&mut self, wanted: &Node, now: Timestamp) {
        let agent_registration = registration(wanted);
        let registered = self.state.node(&wanted.id).is_some_and(|node| registration(node) == agent_registration);
        if !registered {
            self.propose(&Command::RegisterNode { registration: agent_registration, evals: Vec::new(), now });
        }
        let Some(current) = self.state.node(&wanted.id).cloned() else {
            debug_assert!(false, "a registered node is stored");
            return;
        };
        let labels = label_changes(&current, wanted);
        if labels != NodeLabels::default() {
            self.propose(&Command::UpdateNodeLabels {
                node_ids: vec![wanted.id.clone()],
                labels,
                by: OPERATOR.to_owned(),
                evals: Vec::new(),
                now,
            });
        }
        if current.drain != wanted.drain {
            self.set_node_drain(&wanted.id, wanted.drain.clone(), now);
        }
        if self.state.node(&wanted.id).is_some_and(|node| node.eligibility != wanted.eligibility) {
            self.set_node_eligibility(&wanted.id, wanted.eligibility, now);
        }
        if current.status != wanted.status || current.status_description != wanted.status_description {
            self.propose(&Command::UpdateNodeStatus {
                node_id: wanted.id.clone(),
                status: wanted.status,
                description: wanted.status_description.clone(),
                evals: Vec::new(),
                now,
                seen_index: None,
            });
        }
        if current.protected != wanted.protected {
            self.propose(&Command::SetNodeProtection {
                node_id: wanted.id.clone(),
                protection: wanted.protected.clone(),
                by: OPERATOR.to_owned(),
                reason: String::new(),
                now,
            });
        }
    }

    /// Sets a node's heartbeat status at `now` (`Down` to simulate a dead
    /// machine, `Disconnected` a silent one), as the heartbeat tracker
    /// does; `status_updated_at` changes only with the status (a
    /// disconnected group's `lost_after` counts from it).
    pub fn set_node_status(&mut self, id: &NodeId, status: NodeStatus, now: Timestamp) -> bool {
        self.node(id).is_some()
            && self.propose_applied(&Command::UpdateNodeStatus {
                node_id: id.clone(),
                status,
                description: String::new(),
                evals: Vec::new(),
                now,
                seen_index: None,
            })
    }

    /// Sets a node's scheduling eligibility at `now`, as `drover node
    /// eligibility` does.
    pub fn set_node_eligibility(&mut self, id: &NodeId, eligibility: NodeEligibility, now: Timestamp) -> bool {
        self.node(id).is_some()
            && self.propose_applied(&Command::UpdateNodeEligibility {
                node_id: id.clone(),
                eligibility,
                evals: Vec::new(),
                now,
                audit: Vec::new(),
            })
    }

    /// Starts or ends a drain of a node at `now`, as `drover node drain`
    /// does: a drain makes the node ineligible (the drainer's flags are set
    /// with [`mark_for_migration`](Self::mark_for_migration)).
    pub fn set_node_drain(&mut self, id: &NodeId, drain: Option<DrainStrategy>, now: Timestamp) -> bool {
        self.node(id).is_some()
            && self.propose_applied(&Command::UpdateNodeDrain {
                node_id: id.clone(),
                drain,
                mark_eligible: false,
                now,
                audit: Vec::new(),
            })
    }

    /// Every node the scheduler sees, in id order.
    pub fn node_list(&self) -> impl Iterator<Item = &Node> {
        self.state.nodes().map(|node| node.as_ref()).filter(|node| !self.removed_nodes.contains(&node.id))
    }

    // ----- jobs -----

    /// Registers a job at `now`, as `drover job run` does (with its
    /// evaluation); the state machine sets its version and indexes.
    /// Returns the stored job.
    pub fn register_job(&mut self, job: Job, now: Timestamp) -> &Job {
        let id = job.id.clone();
        let eval = self.new_eval(&id, EvalTrigger::JobRegister, now);
        self.propose(&Command::RegisterJob { job, eval, now });
        self.state.job(&id).map(|job| job.as_ref()).expect("a registered job is stored")
    }

    /// Stops a job at `now` (`drover job stop`): a new version, stopped,
    /// so plans computed before are refused.
    pub fn stop_job(&mut self, id: &JobId, now: Timestamp) -> bool {
        let eval = self.new_eval(id, EvalTrigger::JobDeregister, now);
        self.propose_applied(&Command::DeregisterJob { job_id: id.clone(), purge: false, eval, now })
    }

    /// Purges a job and all its versions at `now` (`drover job stop
    /// -purge`); its allocations stay until the scheduler stops them.
    pub fn purge_job(&mut self, id: &JobId, now: Timestamp) -> Option<Job> {
        let purged = self.state.job(id).map(|job| Job::clone(job))?;
        let eval = self.new_eval(id, EvalTrigger::JobDeregister, now);
        self.propose(&Command::DeregisterJob { job_id: id.clone(), purge: true, eval, now });
        Some(purged)
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
        let job = self.state.job(job_id);
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
        let plan = schedule(&*self, self.job(&eval.job_id), eval, now, rng);
        let verified = verify_plan(&*self, &plan);
        self.commit(&verified.accepted, eval, now);
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

    /// Commits a plan at `now` through the state machine's `ApplyPlan`, as
    /// the plan applier does, with the plan's evaluation marked complete
    /// (the one the state holds, or a job-register evaluation of that id).
    pub fn apply(&mut self, plan: &Plan, now: Timestamp) {
        let eval = match self.state.eval(&plan.eval_id) {
            Some(eval) => Evaluation::clone(eval),
            None => {
                let priority = self.state.job(&plan.job_id).map_or(50, |job| job.priority);
                Evaluation::new(plan.eval_id.clone(), plan.job_id.clone(), priority, EvalTrigger::JobRegister, now)
            }
        };
        self.commit(plan, &eval, now);
    }

    /// Proposes `ApplyPlan` for `plan`, the answer to `eval`.
    fn commit(&mut self, plan: &Plan, eval: &Evaluation, now: Timestamp) {
        let mut completed = eval.clone();
        completed.status = EvalStatus::Complete;
        completed.modify_time = now;
        completed.failed_placements = plan.failed.clone();
        completed.queued = plan.failed.iter().map(|(group, failure)| (group.clone(), failure.num_unplaced)).collect();
        self.propose(&Command::ApplyPlan { plan: Box::new(plan.clone()), eval: completed, blocked_eval: None, now });
        self.follow_ups.extend(plan.follow_ups.iter().cloned());
    }

    /// Evaluations created by committed plans (follow-ups), oldest first.
    pub fn evaluations(&self) -> &[Evaluation] {
        &self.follow_ups
    }

    // ----- deployments -----

    /// Every deployment of a job, oldest first.
    pub fn deployments(&self, job_id: &JobId) -> Vec<&Deployment> {
        self.state.deployments_for_job(job_id).map(|deployment| deployment.as_ref()).collect()
    }

    /// Promotes the canaries of every group of the job's latest deployment
    /// at `now`, as `drover job promote` (or `auto_promote`) does. Returns
    /// whether the job has an active deployment.
    pub fn promote_deployment(&mut self, job_id: &JobId, now: Timestamp) -> bool {
        let Some(latest) = self.state.latest_deployment(job_id) else {
            return false;
        };
        if !latest.status.is_active() {
            return false;
        }
        let mut promoted = Deployment::clone(latest);
        for group in promoted.groups.values_mut() {
            group.promoted = true;
        }
        promoted.status = DeploymentStatus::Running;
        "promoted by an operator".clone_into(&mut promoted.status_description);
        promoted.modify_time = now;
        self.propose_applied(&Command::UpsertDeployment {
            deployment: promoted,
            evals: Vec::new(),
            stable_version: None,
        })
    }

    /// Sets the status of the job's latest deployment at `now`, as the
    /// deployment watcher does (`Failed`, `Successful`; a successful one
    /// marks its job version stable). Returns whether the job has a
    /// deployment.
    pub fn set_deployment_status(
        &mut self,
        job_id: &JobId,
        status: DeploymentStatus,
        description: &str,
        now: Timestamp,
    ) -> bool {
        let Some(latest) = self.state.latest_deployment(job_id) else {
            return false;
        };
        let mut updated = Deployment::clone(latest);
        updated.status = status;
        description.clone_into(&mut updated.status_description);
        updated.modify_time = now;
        let stable_version = (status == DeploymentStatus::Successful).then_some(updated.job_version);
        self.propose_applied(&Command::UpsertDeployment { deployment: updated, evals: Vec::new(), stable_version })
    }

    // ----- agents -----

    /// Proposes agents' reports, as the server group-commits them.
    fn report(&mut self, updates: Vec<ClientAllocUpdate>, now: Timestamp) {
        if !updates.is_empty() {
            self.propose(&Command::UpdateAllocsFromClient { updates, evals: Vec::new(), now });
        }
    }

    /// What an allocation's agent reports when it reaches `status` at
    /// `now`: `Running` starts every task; `Complete`, `Failed` and `Lost`
    /// finish them at `now` (so reschedule delays count from `now`).
    fn status_report(&self, alloc: &Allocation, status: AllocClientStatus, now: Timestamp) -> ClientAllocUpdate {
        let mut task_states = alloc.task_states.clone();
        for task_name in self.task_names(alloc) {
            let state = task_states.entry(task_name).or_default();
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
        ClientAllocUpdate { client_status: status, task_states, ..unchanged_report(alloc) }
    }

    /// Reports an allocation's client status at `now`, as its agent would.
    pub fn set_client_status(&mut self, id: &AllocId, status: AllocClientStatus, now: Timestamp) -> bool {
        let Some(alloc) = self.state.alloc(id) else {
            return false;
        };
        let update = self.status_report(alloc, status, now);
        self.report(vec![update], now);
        true
    }

    /// Reports an allocation's deployment health at `now`, as its agent's
    /// health watcher would. The state machine records the first verdict
    /// of an allocation placed by a deployment, and counts it in the
    /// deployment; it ignores the rest, as for a real agent.
    pub fn set_healthy(&mut self, id: &AllocId, healthy: bool, now: Timestamp) -> bool {
        let Some(alloc) = self.state.alloc(id) else {
            return false;
        };
        let update = ClientAllocUpdate { deployment_health: Some(healthy), ..unchanged_report(alloc) };
        self.report(vec![update], now);
        true
    }

    /// Flags an allocation for migration at `now`, as the drainer does.
    pub fn mark_for_migration(&mut self, id: &AllocId, now: Timestamp) -> bool {
        self.change_transition(id, now, |transition| transition.migrate = true)
    }

    /// Asks at `now` for an allocation to be replaced although it has not
    /// failed (`desired_transition.reschedule`).
    pub fn mark_for_reschedule(&mut self, id: &AllocId, now: Timestamp) -> bool {
        self.change_transition(id, now, |transition| transition.reschedule = true)
    }

    fn change_transition(&mut self, id: &AllocId, now: Timestamp, change: impl FnOnce(&mut DesiredTransition)) -> bool {
        let Some(alloc) = self.state.alloc(id) else {
            return false;
        };
        let mut transition = alloc.desired_transition;
        change(&mut transition);
        self.propose_applied(&Command::UpdateAllocDesiredTransitions {
            transitions: vec![(id.clone(), transition)],
            evals: Vec::new(),
            now,
        })
    }

    /// Simulates every agent that can reach the servers (its node is ready
    /// or initializing) catching up at `now`, in one group-committed
    /// report: allocations that should run and are pending start running
    /// (and, with `healthy`, those placed by a deployment are reported
    /// healthy); allocations that should stop finish; allocations marked
    /// `unknown` while their node was disconnected are reported running
    /// again, their tasks untouched. Returns how many allocations changed.
    pub fn simulate_agents(&mut self, now: Timestamp, healthy: bool) -> usize {
        let mut updates = Vec::new();
        for alloc in self.state.allocs() {
            let agent_reachable = self
                .node(&alloc.node_id)
                .is_some_and(|node| matches!(node.status, NodeStatus::Ready | NodeStatus::Initializing));
            if !agent_reachable {
                continue;
            }
            let update = match (alloc.desired_status, alloc.client_status) {
                (AllocDesiredStatus::Run, AllocClientStatus::Pending) => {
                    let mut update = self.status_report(alloc, AllocClientStatus::Running, now);
                    if healthy && alloc.deployment_status.is_some() {
                        update.deployment_health = Some(true);
                    }
                    update
                }
                (AllocDesiredStatus::Run, AllocClientStatus::Unknown) => reconnect_report(alloc),
                (AllocDesiredStatus::Stop | AllocDesiredStatus::Evict, status) if !status.is_terminal() => {
                    self.status_report(alloc, AllocClientStatus::Complete, now)
                }
                _ => continue,
            };
            updates.push(update);
        }
        let num_changed = updates.len();
        self.report(updates, now);
        num_changed
    }

    /// Reports an allocation running again at `now` after its node
    /// reconnected: its client status becomes `running`, its tasks keep
    /// their start times.
    pub fn report_reconnected(&mut self, id: &AllocId, now: Timestamp) -> bool {
        let Some(alloc) = self.state.alloc(id) else {
            return false;
        };
        let update = reconnect_report(alloc);
        self.report(vec![update], now);
        true
    }

    // ----- reading -----

    /// Every allocation, in id order.
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.state.allocs().map(|alloc| alloc.as_ref())
    }

    /// How many allocations were ever placed.
    pub fn num_allocs(&self) -> usize {
        self.state.num_allocs()
    }

    /// The live allocations of a job (wanted and not terminal).
    pub fn live_allocs(&self, job_id: &JobId) -> Vec<&Allocation> {
        self.allocs_for_job(job_id).into_iter().filter(|alloc| alloc.wants_to_run() && !alloc.is_terminal()).collect()
    }

    /// The names of an allocation's tasks in its job version (the group's
    /// name when the version is gone).
    fn task_names(&self, alloc: &Allocation) -> Vec<String> {
        let group = self.state.job_version(&alloc.job_id, alloc.job_version).and_then(|job| job.group(&alloc.group));
        match group {
            Some(group) => group.tasks.iter().map(|task| task.name.clone()).collect(),
            None => vec![alloc.group.clone()],
        }
    }
}

/// An agent's report of an allocation as the state already has it.
fn unchanged_report(alloc: &Allocation) -> ClientAllocUpdate {
    ClientAllocUpdate {
        alloc_id: alloc.id.clone(),
        client_status: alloc.client_status,
        client_description: alloc.client_description.clone(),
        task_states: alloc.task_states.clone(),
        checks: alloc.checks.clone(),
        deployment_health: None,
    }
}

/// What an agent reports for an allocation it runs again after its node
/// reconnected: `running`, tasks as they were.
fn reconnect_report(alloc: &Allocation) -> ClientAllocUpdate {
    ClientAllocUpdate {
        client_status: AllocClientStatus::Running,
        client_description: String::new(),
        ..unchanged_report(alloc)
    }
}

/// The operator's labels that turn `current`'s effective labels into
/// `wanted`'s (a meta key to remove is set to `""`).
fn label_changes(current: &Node, wanted: &Node) -> NodeLabels {
    let changed = |ours: &String, theirs: &String| (ours != theirs).then(|| theirs.clone());
    let mut meta: std::collections::BTreeMap<String, String> = wanted
        .meta
        .iter()
        .filter(|(key, value)| current.meta.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for key in current.meta.keys().filter(|key| !wanted.meta.contains_key(*key)) {
        meta.insert(key.clone(), String::new());
    }
    NodeLabels {
        hostgroup: changed(&current.hostgroup, &wanted.hostgroup),
        environment: changed(&current.environment, &wanted.environment),
        owner: changed(&current.owner, &wanted.owner),
        zone: changed(&current.zone, &wanted.zone),
        meta,
    }
}

/// The scheduler's view: the state's, less the removed nodes.
impl ClusterView for Cluster {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.node_list())
    }

    fn node(&self, id: &NodeId) -> Option<&Node> {
        if self.removed_nodes.contains(id) {
            return None;
        }
        self.state.node(id).map(|node| node.as_ref())
    }

    fn job(&self, id: &JobId) -> Option<&Job> {
        self.state.job(id).map(|job| job.as_ref())
    }

    fn job_version(&self, id: &JobId, version: u64) -> Option<&Job> {
        self.state.job_version(id, version).map(|job| job.as_ref())
    }

    fn alloc(&self, id: &AllocId) -> Option<&Allocation> {
        self.state.alloc(id).map(|alloc| alloc.as_ref())
    }

    fn allocs_for_job(&self, job: &JobId) -> Vec<&Allocation> {
        self.state.allocs_for_job(job).map(|alloc| alloc.as_ref()).collect()
    }

    fn allocs_on_node(&self, node: &NodeId) -> Vec<&Allocation> {
        self.state.allocs_on_node(node).map(|alloc| alloc.as_ref()).collect()
    }

    fn node_usage(&self, node: &NodeId) -> Resources {
        self.state.node_usage(node)
    }

    fn latest_deployment(&self, job: &JobId) -> Option<&Deployment> {
        self.state.latest_deployment(job).map(|deployment| deployment.as_ref())
    }
}
