//! The replicated state and its deterministic `apply`.
//!
//! [`State`] is built from persistent (`imbl`) maps, so cloning it is O(1):
//! the state machine publishes a new `Arc<State>` after every applied batch
//! and readers (the API, the scheduler, agent sessions) keep whatever
//! snapshot they took for as long as they need it, without locks.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use drover_types::{
    AllocClientStatus, AllocId, Allocation, CodedError, Deployment, DeploymentId, ErrorCode, EvalId, Evaluation, Job,
    JobId, JobStatus, JobType, Node, NodeChange, NodeEligibility, NodeId, NodeLabels, NodeStatus, PlanStop, Protection,
    Resources, ServerManaged, Timestamp, Variable,
};

use crate::command::{Command, CommandResponse};
use drover_types::ClientAllocUpdate;

/// How many versions of a job are kept, beyond those still referenced by
/// running allocations.
pub const JOB_VERSIONS_KEPT: usize = 10;

/// How many audit entries are kept per node (the oldest go first).
pub const NODE_HISTORY_LIMIT: usize = 1000;

/// The Raft index at which each table last changed; blocking queries wait
/// on these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableIndexes {
    /// Jobs and job versions.
    pub jobs: u64,
    /// Nodes.
    pub nodes: u64,
    /// Allocations.
    pub allocs: u64,
    /// Evaluations.
    pub evals: u64,
    /// Deployments.
    #[serde(default)]
    pub deployments: u64,
    /// Variables.
    #[serde(default)]
    pub variables: u64,
}

/// The cluster state: jobs, nodes, allocations, evaluations, and indexes
/// over them.
#[derive(Clone, Debug, Default)]
pub struct State {
    jobs: OrdMap<JobId, Arc<Job>>,
    job_versions: OrdMap<JobId, OrdMap<u64, Arc<Job>>>,
    nodes: OrdMap<NodeId, Arc<Node>>,
    /// The nodes of each name: one, except for twins registered before
    /// names were kept unique (the node GC purges those).
    node_names: OrdMap<String, OrdSet<NodeId>>,
    /// Nodes whose status is not `ready` (small; scanned by the heartbeat
    /// tracker instead of every node).
    unready_nodes: OrdSet<NodeId>,
    /// Nodes being drained.
    draining_nodes: OrdSet<NodeId>,
    allocs: OrdMap<AllocId, Arc<Allocation>>,
    /// Each node's allocations, ordered by [`Allocation::alloc_modify_index`]
    /// then id, so that the allocations the servers changed on a node after
    /// an index are a range, not a walk of all of them (agent sessions ask
    /// for exactly that after every change).
    allocs_by_node: OrdMap<NodeId, OrdSet<(u64, AllocId)>>,
    allocs_by_job: OrdMap<JobId, OrdSet<AllocId>>,
    node_usage: OrdMap<NodeId, Resources>,
    node_alloc_index: OrdMap<NodeId, u64>,
    /// The same as `node_alloc_index`, ordered by index: the nodes whose
    /// allocations changed after an index are a range (the session pusher
    /// visits only those, not every connected node).
    nodes_by_alloc_index: OrdSet<(u64, NodeId)>,
    /// How many allocations have each client status (indexed by
    /// [`client_status_slot`]), kept as allocations change.
    allocs_by_client_status: [usize; NUM_CLIENT_STATUSES],
    evals: OrdMap<EvalId, Arc<Evaluation>>,
    evals_by_job: OrdMap<JobId, OrdSet<EvalId>>,
    open_evals: OrdSet<EvalId>,
    deployments: OrdMap<DeploymentId, Arc<Deployment>>,
    deployments_by_job: OrdMap<JobId, OrdSet<DeploymentId>>,
    periodic_launches: OrdMap<JobId, Timestamp>,
    variables: OrdMap<String, Arc<Variable>>,
    /// Each node's audit history, oldest first, at most
    /// [`NODE_HISTORY_LIMIT`] entries.
    node_history: OrdMap<NodeId, imbl::Vector<NodeChange>>,
    /// The site, alerts and hammers (copied on write: changes are rare).
    react: Arc<crate::react::ReactState>,
    /// Tokens, policies, enrolled nodes and the audit log (kept across
    /// snapshot restores).
    access: Arc<crate::access::AccessState>,
    /// Machine workflows by id (`drover node create|reboot|…`).
    workflows: OrdMap<String, Arc<drover_types::workflow::Workflow>>,
    capacity_index: u64,
    /// Index of the last `RestoreState`: agents get their full allocation
    /// list again after it.
    restore_index: u64,
    last_index: u64,
    table_indexes: TableIndexes,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    // ----- reads -----

    /// The last applied Raft index.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Per-table change indexes.
    pub fn table_indexes(&self) -> TableIndexes {
        self.table_indexes
    }

    /// The site, alerts, silences and hammer runs.
    pub fn react(&self) -> &crate::react::ReactState {
        &self.react
    }

    /// Tokens, policies, join tokens, enrolled nodes and the audit log.
    pub fn access(&self) -> &crate::access::AccessState {
        &self.access
    }

    /// The Raft index of the last snapshot restore (0: never).
    pub fn restore_index(&self) -> u64 {
        self.restore_index
    }

    /// The Raft index of the last change that may have freed or added
    /// capacity (a node changed, or an allocation released its resources);
    /// blocked evaluations are retried when it moves.
    pub fn capacity_index(&self) -> u64 {
        self.capacity_index
    }

    /// The current version of a job.
    pub fn job(&self, id: &JobId) -> Option<&Arc<Job>> {
        self.jobs.get(id)
    }

    /// Every job, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.jobs.values()
    }

    /// Every kept version of a job, oldest first.
    pub fn job_versions(&self, id: &JobId) -> impl Iterator<Item = &Arc<Job>> {
        self.job_versions.get(id).into_iter().flat_map(|versions| versions.values())
    }

    /// One version of a job.
    pub fn job_version(&self, id: &JobId, version: u64) -> Option<&Arc<Job>> {
        self.job_versions.get(id).and_then(|versions| versions.get(&version))
    }

    /// A node by id.
    pub fn node(&self, id: &NodeId) -> Option<&Arc<Node>> {
        self.nodes.get(id)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.values()
    }

    /// The number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes whose status is not `ready`.
    pub fn unready_nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.unready_nodes.iter().filter_map(|id| self.nodes.get(id))
    }

    /// Nodes being drained.
    pub fn draining_nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.draining_nodes.iter().filter_map(|id| self.nodes.get(id))
    }

    /// Resources held on a node by allocations that are not terminal.
    pub fn node_usage(&self, id: &NodeId) -> Resources {
        self.node_usage.get(id).copied().unwrap_or_default()
    }

    /// The Raft index of the last server-side change to an allocation on a
    /// node (see [`Allocation::alloc_modify_index`]); agent sessions push
    /// the node's changed allocations when it moves.
    pub fn node_alloc_index(&self, id: &NodeId) -> u64 {
        self.node_alloc_index.get(id).copied().unwrap_or(0)
    }

    /// The nodes whose allocations the servers changed after `index`
    /// (their [`node_alloc_index`](Self::node_alloc_index) is greater), in
    /// the order of that index. O(log nodes + the nodes returned).
    pub fn nodes_with_allocs_changed_after(&self, index: u64) -> impl Iterator<Item = &NodeId> {
        self.nodes_by_alloc_index.range((index.saturating_add(1), NodeId::from(String::new()))..).map(|(_, id)| id)
    }

    /// The allocations on a node that the servers changed after `index`
    /// (their [`Allocation::alloc_modify_index`] is greater), terminal ones
    /// included. O(log + the allocations returned), whatever the number of
    /// allocations on the node.
    pub fn allocs_on_node_changed_after(&self, id: &NodeId, index: u64) -> impl Iterator<Item = &Arc<Allocation>> {
        let from = (index.saturating_add(1), AllocId::from(String::new()));
        self.allocs_by_node
            .get(id)
            .into_iter()
            .flat_map(move |ids| ids.range(from.clone()..).filter_map(|(_, alloc_id)| self.allocs.get(alloc_id)))
    }

    /// The number of allocations whose client status is `status`. O(1).
    pub fn num_allocs_with_client_status(&self, status: AllocClientStatus) -> usize {
        self.allocs_by_client_status[client_status_slot(status)]
    }

    /// An allocation by id.
    pub fn alloc(&self, id: &AllocId) -> Option<&Arc<Allocation>> {
        self.allocs.get(id)
    }

    /// Every allocation, by id.
    pub fn allocs(&self) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs.values()
    }

    /// The number of allocations.
    pub fn num_allocs(&self) -> usize {
        self.allocs.len()
    }

    /// A job's allocations (all, including terminal ones).
    pub fn allocs_for_job(&self, id: &JobId) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs_by_job
            .get(id)
            .into_iter()
            .flat_map(|ids| ids.iter().filter_map(|alloc_id| self.allocs.get(alloc_id)))
    }

    /// A node's allocations (all, including terminal ones), in the order
    /// the servers last changed them.
    pub fn allocs_on_node(&self, id: &NodeId) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs_by_node
            .get(id)
            .into_iter()
            .flat_map(|ids| ids.iter().filter_map(|(_, alloc_id)| self.allocs.get(alloc_id)))
    }

    /// An evaluation by id.
    pub fn eval(&self, id: &EvalId) -> Option<&Arc<Evaluation>> {
        self.evals.get(id)
    }

    /// Every evaluation, by id.
    pub fn evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.evals.values()
    }

    /// A job's evaluations.
    pub fn evals_for_job(&self, id: &JobId) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.evals_by_job.get(id).into_iter().flat_map(|ids| ids.iter().filter_map(|eval_id| self.evals.get(eval_id)))
    }

    /// Evaluations that are pending or blocked.
    pub fn open_evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.open_evals.iter().filter_map(|eval_id| self.evals.get(eval_id))
    }

    /// A deployment by id.
    pub fn deployment(&self, id: &DeploymentId) -> Option<&Arc<Deployment>> {
        self.deployments.get(id)
    }

    /// A job's deployments, oldest first.
    pub fn deployments_for_job(&self, job_id: &JobId) -> impl Iterator<Item = &Arc<Deployment>> {
        let mut deployments: Vec<&Arc<Deployment>> = self
            .deployments_by_job
            .get(job_id)
            .into_iter()
            .flat_map(|ids| ids.iter().filter_map(|id| self.deployments.get(id)))
            .collect();
        deployments.sort_by_key(|deployment| deployment.create_index);
        deployments.into_iter()
    }

    /// The newest deployment of a job.
    pub fn latest_deployment(&self, job_id: &JobId) -> Option<&Arc<Deployment>> {
        self.deployments_for_job(job_id).last()
    }

    /// Deployments that are running or waiting for promotion.
    pub fn active_deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.deployments.values().filter(|deployment| deployment.status.is_active())
    }

    /// When a periodic job last launched a child.
    pub fn last_periodic_launch(&self, job_id: &JobId) -> Option<Timestamp> {
        self.periodic_launches.get(job_id).copied()
    }

    /// Resolves a deployment id or unique id prefix.
    pub fn resolve_deployment(&self, prefix: &str) -> Result<&Arc<Deployment>, CodedError> {
        resolve_prefix(&self.deployments, prefix, "deployment")
    }

    /// Resolves an allocation id or unique id prefix.
    pub fn resolve_alloc(&self, prefix: &str) -> Result<&Arc<Allocation>, CodedError> {
        resolve_prefix(&self.allocs, prefix, "allocation")
    }

    /// Resolves an evaluation id or unique id prefix.
    pub fn resolve_eval(&self, prefix: &str) -> Result<&Arc<Evaluation>, CodedError> {
        resolve_prefix(&self.evals, prefix, "evaluation")
    }

    /// Resolves a node by exact name (the node that holds it, see
    /// [`State::node_by_name`]), exact id, or unique id prefix.
    pub fn resolve_node(&self, name_or_id: &str) -> Result<&Arc<Node>, CodedError> {
        match self.node_by_name(name_or_id) {
            Some(node) => Ok(node),
            None => self.resolve_node_id(name_or_id),
        }
    }

    /// Resolves a node by exact id or unique id prefix (not by name).
    pub fn resolve_node_id(&self, prefix: &str) -> Result<&Arc<Node>, CodedError> {
        resolve_prefix(&self.nodes, prefix, "node")
    }

    // ----- apply -----

    /// Records that the entry at `index` carried no command (a leader's
    /// blank entry or a membership change), so that readers waiting for
    /// that index are released.
    pub fn apply_without_command(&mut self, index: u64) {
        self.last_index = self.last_index.max(index);
    }

    /// Applies one command at `index`. Deterministic: the result depends only
    /// on the state, the index and the command.
    pub fn apply(&mut self, index: u64, command: &Command) -> CommandResponse {
        debug_assert!(index > self.last_index || self.last_index == 0, "log indexes only grow");
        self.last_index = index;
        self.apply_command(index, command)
    }

    fn apply_command(&mut self, index: u64, command: &Command) -> CommandResponse {
        let result = match command {
            Command::Audited { command, event } => {
                let response = self.apply_command(index, command);
                let mut event = event.clone();
                if let CommandResponse::Rejected { error, .. } = &response {
                    event.outcome = drover_types::acl::AuditOutcome::Failed(error.message.clone());
                }
                Arc::make_mut(&mut self.access).record_audit_with_write(event);
                return response;
            }
            Command::RegisterJob { job, eval, now } => Ok(self.register_job(index, job, eval, *now)),
            Command::DeregisterJob { job_id, purge, eval, now } => {
                self.deregister_job(index, job_id, *purge, eval, *now)
            }
            Command::RegisterNode { registration, evals, now } => {
                self.register_node(index, registration, *now).map(|()| {
                    self.put_evals(index, evals);
                    CommandResponse::Applied { index }
                })
            }
            Command::RegisterNodes { registrations, now } => {
                // A refused registration is skipped alone: an invalid one
                // silently (its proposer already told the agent why, by the
                // same check), one whose name is taken with its reason.
                let mut refused = Vec::new();
                for (registration, evals) in registrations {
                    if registration.validate().is_err() {
                        continue;
                    }
                    match self.register_node(index, registration, *now) {
                        Ok(()) => self.put_evals(index, evals),
                        Err(error) => refused.push((registration.id.clone(), error)),
                    }
                }
                if refused.is_empty() {
                    Ok(CommandResponse::Applied { index })
                } else {
                    Ok(CommandResponse::NodesRegistered { index, refused })
                }
            }
            Command::UpdateNodeStatus { node_id, seen_index: Some(seen), .. }
                if self.nodes.get(node_id).is_some_and(|node| node.modify_index != *seen) =>
            {
                // Decided on an older view of the node (its agent registered
                // again since): nothing changes; the tracker looks again.
                Ok(CommandResponse::Applied { index })
            }
            Command::UpdateNodeStatus { node_id, status, description, evals, now, .. } => {
                self.update_node_status(index, node_id, *status, description, *now).map(|()| {
                    self.put_evals(index, evals);
                    CommandResponse::Applied { index }
                })
            }
            Command::ApplyPlan { plan, eval, blocked_eval, now } => {
                self.apply_plan(index, plan, eval, blocked_eval.as_ref(), *now);
                Ok(CommandResponse::Applied { index })
            }
            Command::UpsertEvals { evals } => {
                self.put_evals(index, evals);
                Ok(CommandResponse::Applied { index })
            }
            Command::UpdateAllocsFromClient { updates, evals, now } => {
                self.update_allocs_from_client(index, updates, *now);
                self.put_evals(index, evals);
                Ok(CommandResponse::Applied { index })
            }
            Command::UpdateNodeLogStats { node_id, dropped_lines } => self
                .modify_node(index, node_id, |node| node.log_dropped_lines = *dropped_lines)
                .map(|()| CommandResponse::Applied { index }),
            Command::UpdateNodeEligibility { node_id, eligibility, evals, now, audit } => self
                .modify_node(index, node_id, |node| {
                    node.eligibility = *eligibility;
                    node.status_updated_at = *now;
                })
                .map(|()| {
                    self.record_node_changes(node_id, audit.iter().cloned());
                    self.put_evals(index, evals);
                    CommandResponse::Applied { index }
                }),
            Command::UpdateNodeDrain { node_id, drain, mark_eligible, now, audit } => self
                .modify_node(index, node_id, |node| {
                    if drain.is_some() {
                        node.eligibility = NodeEligibility::Ineligible;
                    } else if *mark_eligible {
                        node.eligibility = NodeEligibility::Eligible;
                    }
                    node.drain = drain.clone();
                    node.status_updated_at = *now;
                })
                .map(|()| {
                    self.record_node_changes(node_id, audit.iter().cloned());
                    CommandResponse::Applied { index }
                }),
            Command::UpdateNodeLabels { node_ids, labels, by, evals, now } => {
                self.update_node_labels(index, node_ids, labels, by, *now).map(|()| {
                    self.put_evals(index, evals);
                    CommandResponse::Applied { index }
                })
            }
            Command::SetNodeProtection { node_id, protection, by, reason, now } => {
                let before = self.nodes.get(node_id).and_then(|node| node.protected.clone());
                self.modify_node(index, node_id, |node| node.protected = protection.clone()).map(|()| {
                    let describe = |protection: &Option<Protection>| {
                        protection.as_ref().map(|protection| format!("yes: {}", protection.reason)).unwrap_or_default()
                    };
                    let change = NodeChange {
                        at: *now,
                        by: by.clone(),
                        field: "protected".to_owned(),
                        from: describe(&before),
                        to: describe(protection),
                        reason: reason.clone(),
                    };
                    self.record_node_changes(node_id, [change]);
                    CommandResponse::Applied { index }
                })
            }
            Command::UpdateAllocDesiredTransitions { transitions, evals, now } => {
                for (alloc_id, transition) in transitions {
                    let Some(existing) = self.allocs.get(alloc_id) else { continue };
                    let mut alloc = Allocation::clone(existing);
                    alloc.desired_transition = *transition;
                    alloc.modify_time = *now;
                    self.put_alloc(index, alloc);
                }
                self.put_evals(index, evals);
                Ok(CommandResponse::Applied { index })
            }
            Command::UpsertDeployment { deployment, evals, stable_version } => {
                self.put_deployment(index, deployment.clone());
                if let Some(version) = stable_version {
                    self.mark_stable(index, &deployment.job_id, *version);
                }
                self.put_evals(index, evals);
                Ok(CommandResponse::Applied { index })
            }
            Command::LaunchPeriodic { parent_id, launch_time, child, eval, now } => {
                self.periodic_launches.insert(parent_id.clone(), *launch_time);
                Ok(self.register_job(index, child, eval, *now))
            }
            Command::StopAllocs { stops, evals, now } => {
                let jobs: OrdSet<JobId> = stops
                    .iter()
                    .filter_map(|stop| self.allocs.get(&stop.alloc_id).map(|alloc| alloc.job_id.clone()))
                    .collect();
                self.apply_stops(index, stops, *now);
                self.put_evals(index, evals);
                for job_id in &jobs {
                    self.refresh_job_status(index, job_id);
                }
                Ok(CommandResponse::Applied { index })
            }
            Command::RestoreState { snapshot, keep_access } => match crate::snapshot::decode_state(snapshot) {
                Ok(mut restored) => {
                    restored.last_index = index;
                    if *keep_access {
                        restored.access = Arc::clone(&self.access);
                    }
                    restored.restore_index = index;
                    restored.capacity_index = index;
                    restored.table_indexes = TableIndexes {
                        jobs: index,
                        nodes: index,
                        allocs: index,
                        evals: index,
                        deployments: index,
                        variables: index,
                    };
                    *self = restored;
                    Ok(CommandResponse::Applied { index })
                }
                Err(error) => Err(CodedError::invalid(format!("not a drover snapshot: {error}"))),
            },
            Command::SkipPeriodicLaunch { parent_id, launch_time } => {
                self.periodic_launches.insert(parent_id.clone(), *launch_time);
                Ok(CommandResponse::Applied { index })
            }
            Command::PutVariable { path, items, cas, now } => self.put_variable(index, path, items, *cas, *now),
            Command::DeleteVariable { path, cas } => self.delete_variable(index, path, *cas),
            Command::React { op } => {
                Arc::make_mut(&mut self.react).apply(op).map(|outcome| CommandResponse::React { index, outcome })
            }
            Command::Access { op } => {
                Arc::make_mut(&mut self.access).apply(index, op).map(|()| CommandResponse::Applied { index })
            }
            Command::RetireNodes { node_ids, retirement, drain } => {
                self.retire_nodes(index, node_ids, retirement, drain).map(|()| CommandResponse::Applied { index })
            }
            Command::PurgeNodes { node_ids, evals } => self.purge_nodes(index, node_ids).map(|()| {
                self.put_evals(index, evals);
                CommandResponse::Applied { index }
            }),
            Command::Workflow { op } => self.apply_workflow(op).map(|()| CommandResponse::Applied { index }),
        };
        result.unwrap_or_else(|error| CommandResponse::Rejected { index, error })
    }

    fn register_job(&mut self, index: u64, submitted: &Job, eval: &Evaluation, now: Timestamp) -> CommandResponse {
        let previous = self.jobs.get(&submitted.id).cloned();
        let changed = match &previous {
            Some(previous) => previous.stop || previous.spec_differs(submitted),
            None => true,
        };
        // What the server decides of the job, whatever the submitter sent;
        // only a periodic launch's parent comes from the submitted job.
        let (mut job, managed) = match &previous {
            Some(previous) if !changed => {
                (Job::clone(previous), ServerManaged { stop: false, modify_index: index, ..previous.server_managed() })
            }
            Some(previous) => (
                submitted.clone(),
                ServerManaged {
                    version: previous.version + 1,
                    stop: false,
                    status: previous.status,
                    parent_id: submitted.parent_id.clone(),
                    submit_time: now,
                    stable: false,
                    create_index: previous.create_index,
                    modify_index: index,
                    job_modify_index: index,
                },
            ),
            None => (
                submitted.clone(),
                ServerManaged {
                    version: 0,
                    stop: false,
                    status: JobStatus::Pending,
                    parent_id: submitted.parent_id.clone(),
                    submit_time: now,
                    stable: false,
                    create_index: index,
                    modify_index: index,
                    job_modify_index: index,
                },
            ),
        };
        job.set_server_managed(managed);
        let version = job.version;
        let job_modify_index = job.job_modify_index;
        self.put_job(index, job, changed);

        let mut eval = eval.clone();
        eval.job_modify_index = job_modify_index;
        let eval_id = eval.id.clone();
        self.put_eval(index, eval);
        self.refresh_job_status(index, &submitted.id);
        CommandResponse::JobRegistered { index, version, changed, eval_id }
    }

    fn deregister_job(
        &mut self,
        index: u64,
        job_id: &JobId,
        purge: bool,
        eval: &Evaluation,
        now: Timestamp,
    ) -> Result<CommandResponse, CodedError> {
        let Some(previous) = self.jobs.get(job_id).cloned() else {
            return Err(CodedError::not_found("job", job_id));
        };
        if purge {
            self.jobs.remove(job_id);
            self.job_versions.remove(job_id);
            self.table_indexes.jobs = index;
        } else if !previous.stop {
            let mut job = Job::clone(&previous);
            job.set_server_managed(ServerManaged {
                version: previous.version + 1,
                stop: true,
                submit_time: now,
                stable: false,
                modify_index: index,
                job_modify_index: index,
                ..previous.server_managed()
            });
            self.put_job(index, job, true);
        }
        let mut eval = eval.clone();
        eval.job_modify_index = self.jobs.get(job_id).map_or(index, |job| job.job_modify_index);
        self.put_eval(index, eval);
        self.refresh_job_status(index, job_id);
        Ok(CommandResponse::Applied { index })
    }

    fn update_node_status(
        &mut self,
        index: u64,
        node_id: &NodeId,
        status: NodeStatus,
        description: &str,
        now: Timestamp,
    ) -> Result<(), CodedError> {
        let Some(existing) = self.nodes.get(node_id) else {
            return Err(CodedError::not_found("node", node_id));
        };
        let mut node = Node::clone(existing);
        if node.status != status {
            // `disconnect.lost_after` counts from here: only a real change moves it.
            node.status_updated_at = now;
        }
        node.status = status;
        node.status_description = description.to_owned();
        self.put_node(index, node);
        Ok(())
    }

    fn apply_plan(
        &mut self,
        index: u64,
        plan: &drover_types::Plan,
        eval: &Evaluation,
        blocked_eval: Option<&Evaluation>,
        now: Timestamp,
    ) {
        self.apply_stops(index, &plan.stop, now);
        for update in &plan.updates {
            let Some(existing) = self.allocs.get(&update.alloc_id) else { continue };
            let mut alloc = Allocation::clone(existing);
            if let Some(client_status) = update.client_status {
                alloc.client_status = client_status;
                alloc.client_description = update.description.clone();
            }
            if update.follow_up_eval.is_some() {
                alloc.follow_up_eval = update.follow_up_eval.clone();
            }
            alloc.modify_time = now;
            self.put_alloc(index, alloc);
        }
        if let Some(deployment) = &plan.deployment {
            self.put_deployment(index, deployment.clone());
        }
        // The scheduler only changes a deployment's status (cancelling a
        // superseded one); its counters and promotions belong to the state
        // machine and the watcher, so they are kept.
        for update in &plan.deployment_updates {
            match self.deployments.get(&update.id) {
                Some(existing) => {
                    let mut deployment = Deployment::clone(existing);
                    deployment.status = update.status;
                    deployment.status_description = update.status_description.clone();
                    deployment.modify_time = update.modify_time;
                    self.put_deployment(index, deployment);
                }
                None => self.put_deployment(index, update.clone()),
            }
        }
        for update in &plan.in_place {
            let Some(existing) = self.allocs.get(&update.alloc_id) else { continue };
            let mut alloc = Allocation::clone(existing);
            alloc.job_version = update.job_version;
            alloc.modify_time = now;
            self.put_alloc(index, alloc);
        }
        for placed in &plan.place {
            let mut alloc = placed.clone();
            alloc.create_index = index;
            if let Some(previous_id) = &alloc.previous_alloc
                && let Some(previous) = self.allocs.get(previous_id)
            {
                let mut previous = Allocation::clone(previous);
                previous.next_alloc = Some(alloc.id.clone());
                previous.modify_time = now;
                self.put_alloc(index, previous);
            }
            self.count_placement(index, &alloc);
            self.put_alloc(index, alloc);
        }
        self.put_evals(index, &plan.follow_ups);
        self.put_eval(index, eval.clone());
        if let Some(blocked) = blocked_eval {
            self.put_eval(index, blocked.clone());
        }
        self.refresh_job_status(index, &plan.job_id);
    }

    fn apply_stops(&mut self, index: u64, stops: &[PlanStop], now: Timestamp) {
        for stop in stops {
            let Some(existing) = self.allocs.get(&stop.alloc_id) else { continue };
            let mut alloc = Allocation::clone(existing);
            alloc.desired_status = stop.desired_status;
            alloc.desired_description = stop.description.clone();
            if let Some(client_status) = stop.client_status {
                alloc.client_status = client_status;
                alloc.client_description = stop.description.clone();
            }
            if stop.follow_up_eval.is_some() {
                alloc.follow_up_eval = stop.follow_up_eval.clone();
            }
            alloc.modify_time = now;
            self.put_alloc(index, alloc);
        }
    }

    fn update_allocs_from_client(&mut self, index: u64, updates: &[ClientAllocUpdate], now: Timestamp) {
        let mut touched_jobs = OrdSet::new();
        for update in updates {
            let Some(existing) = self.allocs.get(&update.alloc_id) else { continue };
            let mut alloc = Allocation::clone(existing);
            alloc.client_status = update.client_status;
            alloc.client_description = update.client_description.clone();
            alloc.task_states = update.task_states.clone();
            alloc.checks = update.checks.clone();
            alloc.modify_time = now;
            if let Some(healthy) = update.deployment_health
                && let Some(status) = alloc.deployment_status.as_mut()
                && status.healthy.is_none()
            {
                status.healthy = Some(healthy);
                status.timestamp = now;
                self.count_health(index, &alloc, healthy, now);
            }
            touched_jobs.insert(alloc.job_id.clone());
            self.put_alloc_from_client(index, alloc);
        }
        for job_id in &touched_jobs {
            self.refresh_job_status(index, job_id);
        }
    }

    // ----- table maintenance -----

    fn put_job(&mut self, index: u64, job: Job, new_version: bool) {
        let job = Arc::new(job);
        if new_version {
            let mut versions = self.job_versions.get(&job.id).cloned().unwrap_or_default();
            versions.insert(job.version, Arc::clone(&job));
            self.prune_versions(&job.id, &mut versions);
            self.job_versions.insert(job.id.clone(), versions);
        } else if let Some(versions) = self.job_versions.get_mut(&job.id) {
            versions.insert(job.version, Arc::clone(&job));
        }
        self.jobs.insert(job.id.clone(), job);
        self.table_indexes.jobs = index;
    }

    fn prune_versions(&self, job_id: &JobId, versions: &mut OrdMap<u64, Arc<Job>>) {
        if versions.len() <= JOB_VERSIONS_KEPT {
            return;
        }
        let in_use: OrdSet<u64> = self
            .allocs_for_job(job_id)
            .filter(|alloc| !alloc.client_status.is_terminal())
            .map(|alloc| alloc.job_version)
            .collect();
        let newest_kept: Vec<u64> = versions.keys().rev().take(JOB_VERSIONS_KEPT).copied().collect();
        let removable: Vec<u64> = versions
            .keys()
            .copied()
            .filter(|version| !newest_kept.contains(version) && !in_use.contains(version))
            .collect();
        for version in removable {
            versions.remove(&version);
        }
    }

    fn put_node(&mut self, index: u64, mut node: Node) {
        node.apply_labels();
        node.modify_index = index;
        if let Some(previous) = self.nodes.get(&node.id)
            && previous.name != node.name
        {
            let previous_name = previous.name.clone();
            self.unindex_name(&previous_name, &node.id);
        }
        self.index_node(&node);
        self.nodes.insert(node.id.clone(), Arc::new(node));
        self.table_indexes.nodes = index;
        self.capacity_index = index;
    }

    /// Stores an allocation changed by the servers: agents will be told.
    fn put_alloc(&mut self, index: u64, mut alloc: Allocation) {
        alloc.alloc_modify_index = index;
        self.set_node_alloc_index(&alloc.node_id, index);
        self.store_alloc(index, alloc);
    }

    /// Moves a node's [`node_alloc_index`](Self::node_alloc_index), and its
    /// place in `nodes_by_alloc_index`.
    fn set_node_alloc_index(&mut self, node_id: &NodeId, index: u64) {
        if let Some(previous) = self.node_alloc_index.insert(node_id.clone(), index) {
            if previous == index {
                return;
            }
            self.nodes_by_alloc_index.remove(&(previous, node_id.clone()));
        }
        self.nodes_by_alloc_index.insert((index, node_id.clone()));
    }

    /// Stores an allocation changed by its agent's report: nothing to tell
    /// the agent, which knows.
    fn put_alloc_from_client(&mut self, index: u64, alloc: Allocation) {
        self.store_alloc(index, alloc);
    }

    fn store_alloc(&mut self, index: u64, mut alloc: Allocation) {
        alloc.modify_index = index;
        let previous = self.allocs.get(&alloc.id).cloned();
        if let Some(previous) = &previous {
            self.allocs_by_client_status[client_status_slot(previous.client_status)] -= 1;
            if previous.holds_resources() {
                let usage = self.node_usage.entry(previous.node_id.clone()).or_default();
                *usage = usage.saturating_sub(&previous.resources);
                if !alloc.holds_resources() {
                    self.capacity_index = index;
                }
            }
        }
        self.allocs_by_client_status[client_status_slot(alloc.client_status)] += 1;
        if alloc.holds_resources() {
            *self.node_usage.entry(alloc.node_id.clone()).or_default() += alloc.resources;
        }
        // An agent's report leaves the servers' index, and so the entry, alone.
        let moved = previous.as_ref().is_none_or(|previous| {
            previous.alloc_modify_index != alloc.alloc_modify_index || previous.node_id != alloc.node_id
        });
        if moved {
            if let Some(previous) = &previous
                && let Some(on_node) = self.allocs_by_node.get_mut(&previous.node_id)
            {
                on_node.remove(&(previous.alloc_modify_index, alloc.id.clone()));
            }
            self.allocs_by_node
                .entry(alloc.node_id.clone())
                .or_default()
                .insert((alloc.alloc_modify_index, alloc.id.clone()));
        }
        if previous.is_none() {
            self.allocs_by_job.entry(alloc.job_id.clone()).or_default().insert(alloc.id.clone());
        }
        self.allocs.insert(alloc.id.clone(), Arc::new(alloc));
        self.table_indexes.allocs = index;
    }

    fn put_evals(&mut self, index: u64, evals: &[Evaluation]) {
        for eval in evals {
            self.put_eval(index, eval.clone());
        }
    }

    fn put_eval(&mut self, index: u64, mut eval: Evaluation) {
        if let Some(previous) = self.evals.get(&eval.id) {
            eval.create_index = previous.create_index;
        } else {
            eval.create_index = index;
        }
        eval.modify_index = index;
        if eval.status.is_terminal() {
            self.open_evals.remove(&eval.id);
        } else {
            self.open_evals.insert(eval.id.clone());
        }
        self.evals_by_job.entry(eval.job_id.clone()).or_default().insert(eval.id.clone());
        let job_id = eval.job_id.clone();
        self.evals.insert(eval.id.clone(), Arc::new(eval));
        self.table_indexes.evals = index;
        self.refresh_job_status(index, &job_id);
    }

    fn index_node(&mut self, node: &Node) {
        self.node_names.entry(node.name.clone()).or_default().insert(node.id.clone());
        if node.status == NodeStatus::Ready {
            self.unready_nodes.remove(&node.id);
        } else {
            self.unready_nodes.insert(node.id.clone());
        }
        if node.drain.is_some() {
            self.draining_nodes.insert(node.id.clone());
        } else {
            self.draining_nodes.remove(&node.id);
        }
    }

    /// Lays `labels` over the overrides of every node in `node_ids` (all
    /// must exist, else nothing changes) and records what changed.
    fn update_node_labels(
        &mut self,
        index: u64,
        node_ids: &[NodeId],
        labels: &NodeLabels,
        by: &str,
        now: Timestamp,
    ) -> Result<(), CodedError> {
        if let Some(missing) = node_ids.iter().find(|node_id| !self.nodes.contains_key(*node_id)) {
            return Err(CodedError::not_found("node", missing));
        }
        for node_id in node_ids {
            let Some(existing) = self.nodes.get(node_id) else { continue };
            let mut node = Node::clone(existing);
            node.overrides.merge(labels);
            node.apply_labels();
            let changes: Vec<NodeChange> = existing
                .label_diff(&node)
                .into_iter()
                .map(|(field, from, to)| NodeChange {
                    at: now,
                    by: by.to_owned(),
                    field,
                    from,
                    to,
                    reason: String::new(),
                })
                .collect();
            if existing.overrides != node.overrides {
                self.put_node(index, node);
            }
            self.record_node_changes(node_id, changes);
        }
        Ok(())
    }

    /// Appends to a node's audit history, keeping the newest entries.
    fn record_node_changes(&mut self, node_id: &NodeId, changes: impl IntoIterator<Item = NodeChange>) {
        let mut changes = changes.into_iter().peekable();
        if changes.peek().is_none() {
            return;
        }
        let history = self.node_history.entry(node_id.clone()).or_default();
        history.extend(changes);
        while history.len() > NODE_HISTORY_LIMIT {
            history.pop_front();
        }
    }

    /// A node's audit history, oldest first.
    pub fn node_history(&self, node_id: &NodeId) -> impl Iterator<Item = &NodeChange> {
        self.node_history.get(node_id).into_iter().flat_map(|history| history.iter())
    }

    fn modify_node(&mut self, index: u64, node_id: &NodeId, change: impl FnOnce(&mut Node)) -> Result<(), CodedError> {
        let Some(existing) = self.nodes.get(node_id) else {
            return Err(CodedError::not_found("node", node_id));
        };
        let mut node = Node::clone(existing);
        change(&mut node);
        self.put_node(index, node);
        Ok(())
    }

    fn put_deployment(&mut self, index: u64, mut deployment: Deployment) {
        deployment.create_index = self.deployments.get(&deployment.id).map_or(index, |previous| previous.create_index);
        deployment.modify_index = index;
        self.deployments_by_job.entry(deployment.job_id.clone()).or_default().insert(deployment.id.clone());
        self.deployments.insert(deployment.id.clone(), Arc::new(deployment));
        self.table_indexes.deployments = index;
    }

    /// A deployment's counters follow its allocations: one more placed (and
    /// a canary recorded).
    fn count_placement(&mut self, index: u64, alloc: &Allocation) {
        let Some(deployment_id) = &alloc.deployment_id else { return };
        let Some(existing) = self.deployments.get(deployment_id) else { return };
        let mut deployment = Deployment::clone(existing);
        let Some(group) = deployment.groups.get_mut(&alloc.group) else { return };
        group.placed_allocs += 1;
        if alloc.deployment_status.as_ref().is_some_and(|status| status.canary) {
            group.placed_canaries.push(alloc.id.clone());
        }
        self.put_deployment(index, deployment);
    }

    /// A deployment's counters follow its allocations: one more healthy (the
    /// progress deadline moves) or unhealthy.
    fn count_health(&mut self, index: u64, alloc: &Allocation, healthy: bool, now: Timestamp) {
        let Some(deployment_id) = &alloc.deployment_id else { return };
        let Some(existing) = self.deployments.get(deployment_id) else { return };
        let mut deployment = Deployment::clone(existing);
        let Some(group) = deployment.groups.get_mut(&alloc.group) else { return };
        if healthy {
            group.healthy_allocs += 1;
            group.require_progress_by = Some(now.plus(group.progress_deadline.get()));
        } else {
            group.unhealthy_allocs += 1;
        }
        deployment.modify_time = now;
        self.put_deployment(index, deployment);
    }

    fn mark_stable(&mut self, index: u64, job_id: &JobId, version: u64) {
        if let Some(job) = self.job_version(job_id, version) {
            let mut stable = Job::clone(job);
            stable.stable = true;
            if let Some(versions) = self.job_versions.get_mut(job_id) {
                versions.insert(version, Arc::new(stable));
            }
        }
        if let Some(current) = self.jobs.get(job_id)
            && current.version == version
        {
            let mut job = Job::clone(current);
            job.stable = true;
            job.modify_index = index;
            self.jobs.insert(job_id.clone(), Arc::new(job));
        }
        self.table_indexes.jobs = index;
    }

    /// Recomputes a job's status from its allocations and open evaluations
    /// (Nomad's rules: running while any allocation is live, dead once
    /// stopped or finished, pending otherwise).
    fn refresh_job_status(&mut self, index: u64, job_id: &JobId) {
        let Some(job) = self.jobs.get(job_id) else { return };
        let any_live = self.allocs_for_job(job_id).any(|alloc| !alloc.is_terminal());
        let any_alloc = self.allocs_for_job(job_id).next().is_some();
        let any_open_eval = self.evals_for_job(job_id).any(|eval| !eval.status.is_terminal());
        let status = if any_live {
            JobStatus::Running
        } else if job.stop {
            JobStatus::Dead
        } else if job.is_template() {
            JobStatus::Running
        } else if any_open_eval || !any_alloc {
            JobStatus::Pending
        } else if job.job_type == JobType::System {
            JobStatus::Running
        } else {
            JobStatus::Dead
        };
        if status == job.status {
            return;
        }
        let mut updated = Job::clone(job);
        updated.status = status;
        updated.modify_index = index;
        self.put_job(index, updated, false);
    }

    /// Allocations that are not terminal and whose node is `node_id`, for
    /// node-status evaluations.
    pub fn live_allocs_on_node(&self, node_id: &NodeId) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs_on_node(node_id).filter(|alloc| !alloc.client_status.is_terminal())
    }

    /// Whether a client status change counts as an allocation failure that
    /// should trigger a reschedule evaluation.
    pub fn is_new_failure(&self, update: &ClientAllocUpdate) -> bool {
        update.client_status == AllocClientStatus::Failed
            && self
                .allocs
                .get(&update.alloc_id)
                .is_some_and(|alloc| alloc.client_status != AllocClientStatus::Failed && alloc.wants_to_run())
    }

    // ----- snapshots -----

    /// A variable.
    pub fn variable(&self, path: &str) -> Option<&Arc<Variable>> {
        self.variables.get(path)
    }

    /// Variables whose path starts with `prefix`, in path order.
    pub fn variables_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Arc<Variable>> + 'a {
        self.variables
            .range(prefix.to_owned()..)
            .take_while(move |(path, _)| path.starts_with(prefix))
            .map(|(_, variable)| variable)
    }

    fn check_cas(&self, path: &str, cas: Option<u64>) -> Result<Option<Arc<Variable>>, CodedError> {
        let current = self.variables.get(path).cloned();
        match (cas, &current) {
            (None, _) => Ok(current),
            (Some(0), None) => Ok(None),
            (Some(0), Some(existing)) => Err(CodedError::conflict(format!(
                "variable {path} already exists (modify index {}); give that index to replace it",
                existing.modify_index
            ))),
            (Some(wanted), Some(existing)) if existing.modify_index == wanted => Ok(current),
            (Some(wanted), Some(existing)) => Err(CodedError::conflict(format!(
                "variable {path} changed: its modify index is {}, not {wanted}; read it again and retry",
                existing.modify_index
            ))),
            (Some(wanted), None) => Err(CodedError::conflict(format!(
                "variable {path} does not exist (check-and-set index {wanted} given); use 0 to create it"
            ))),
        }
    }

    fn put_variable(
        &mut self,
        index: u64,
        path: &str,
        items: &BTreeMap<String, String>,
        cas: Option<u64>,
        now: Timestamp,
    ) -> Result<CommandResponse, CodedError> {
        drover_types::variable::check_path(path)?;
        drover_types::variable::check_items(items)?;
        let current = self.check_cas(path, cas)?;
        let variable = Variable {
            path: path.to_owned(),
            items: items.clone(),
            create_index: current.as_ref().map_or(index, |current| current.create_index),
            modify_index: index,
            create_time: current.as_ref().map_or(now, |current| current.create_time),
            modify_time: now,
        };
        self.variables.insert(path.to_owned(), Arc::new(variable));
        self.table_indexes.variables = index;
        Ok(CommandResponse::Applied { index })
    }

    fn delete_variable(&mut self, index: u64, path: &str, cas: Option<u64>) -> Result<CommandResponse, CodedError> {
        if self.check_cas(path, cas)?.is_none() {
            return Err(CodedError::not_found("variable", path));
        }
        self.variables.remove(path);
        self.table_indexes.variables = index;
        Ok(CommandResponse::Applied { index })
    }

    /// Every object, for snapshots.
    /// The state as a [`SnapshotV1`](crate::snapshot::SnapshotV1) to
    /// serialise, borrowed: nothing is copied.
    #[allow(clippy::type_complexity, reason = "one iterator type per table, each named where it is built")]
    pub(crate) fn snapshot_ref(
        &self,
    ) -> crate::snapshot::SnapshotV1Ref<
        '_,
        impl Iterator<Item = &Job>,
        impl Iterator<Item = &Job>,
        impl Iterator<Item = &Node>,
        impl Iterator<Item = &Allocation>,
        impl Iterator<Item = &Evaluation>,
        impl Iterator<Item = &Deployment>,
        impl Iterator<Item = (&JobId, &Timestamp)>,
        impl Iterator<Item = &Variable>,
        impl Iterator<Item = (&NodeId, crate::snapshot::Seq<impl Iterator<Item = &NodeChange>>)>,
        impl Iterator<Item = &drover_types::workflow::Workflow>,
    > {
        use crate::snapshot::Seq;
        let num_job_versions = self.job_versions.values().map(OrdMap::len).sum();
        crate::snapshot::SnapshotV1Ref {
            last_index: self.last_index,
            table_indexes: self.table_indexes,
            capacity_index: self.capacity_index,
            restore_index: self.restore_index,
            jobs: Seq::new(self.jobs.len(), self.jobs.values().map(|job| &**job)),
            job_versions: Seq::new(
                num_job_versions,
                self.job_versions.values().flat_map(|versions| versions.values().map(|job| &**job)),
            ),
            nodes: Seq::new(self.nodes.len(), self.nodes.values().map(|node| &**node)),
            allocs: Seq::new(self.allocs.len(), self.allocs.values().map(|alloc| &**alloc)),
            evals: Seq::new(self.evals.len(), self.evals.values().map(|eval| &**eval)),
            deployments: Seq::new(self.deployments.len(), self.deployments.values().map(|deployment| &**deployment)),
            periodic_launches: Seq::new(self.periodic_launches.len(), self.periodic_launches.iter()),
            variables: Seq::new(self.variables.len(), self.variables.values().map(|variable| &**variable)),
            node_history: Seq::new(
                self.node_history.len(),
                self.node_history.iter().map(|(node_id, history)| (node_id, Seq::new(history.len(), history.iter()))),
            ),
            react: Some(&self.react),
            access: Some(&self.access),
            workflows: Seq::new(self.workflows.len(), self.workflows.values().map(|workflow| &**workflow)),
        }
    }

    /// The state copied into a [`SnapshotV1`](crate::snapshot::SnapshotV1):
    /// what [`snapshot_ref`](Self::snapshot_ref) must encode the same.
    #[cfg(test)]
    pub(crate) fn to_snapshot(&self) -> crate::snapshot::SnapshotV1 {
        crate::snapshot::SnapshotV1 {
            last_index: self.last_index,
            capacity_index: self.capacity_index,
            restore_index: self.restore_index,
            table_indexes: self.table_indexes,
            jobs: self.jobs.values().map(|job| Job::clone(job)).collect(),
            job_versions: self
                .job_versions
                .values()
                .flat_map(|versions| versions.values().map(|job| Job::clone(job)))
                .collect(),
            nodes: self.nodes.values().map(|node| Node::clone(node)).collect(),
            allocs: self.allocs.values().map(|alloc| Allocation::clone(alloc)).collect(),
            evals: self.evals.values().map(|eval| Evaluation::clone(eval)).collect(),
            deployments: self.deployments.values().map(|deployment| Deployment::clone(deployment)).collect(),
            periodic_launches: self.periodic_launches.iter().map(|(job_id, time)| (job_id.clone(), *time)).collect(),
            variables: self.variables.values().map(|variable| Variable::clone(variable)).collect(),
            node_history: self
                .node_history
                .iter()
                .map(|(node_id, history)| (node_id.clone(), history.iter().cloned().collect()))
                .collect(),
            react: Some(crate::react::ReactState::clone(&self.react)),
            access: Some(crate::access::AccessState::clone(&self.access)),
            workflows: self
                .workflows
                .values()
                .map(|workflow| drover_types::workflow::Workflow::clone(workflow))
                .collect(),
        }
    }

    /// Rebuilds a state, with all its indexes, from a snapshot.
    pub(crate) fn from_snapshot(snapshot: crate::snapshot::SnapshotV1) -> State {
        let mut state = State::new();
        for job in snapshot.job_versions {
            let job = Arc::new(job);
            state.job_versions.entry(job.id.clone()).or_default().insert(job.version, job);
        }
        for job in snapshot.jobs {
            state.jobs.insert(job.id.clone(), Arc::new(job));
        }
        for node in snapshot.nodes {
            state.index_node(&node);
            state.nodes.insert(node.id.clone(), Arc::new(node));
        }
        for alloc in snapshot.allocs {
            let (modify_index, alloc_modify_index) = (alloc.modify_index, alloc.alloc_modify_index);
            if alloc_modify_index > state.node_alloc_index(&alloc.node_id) {
                state.set_node_alloc_index(&alloc.node_id, alloc_modify_index);
            }
            state.store_alloc(modify_index, alloc);
        }
        for eval in snapshot.evals {
            let (create_index, modify_index) = (eval.create_index, eval.modify_index);
            if !eval.status.is_terminal() {
                state.open_evals.insert(eval.id.clone());
            }
            state.evals_by_job.entry(eval.job_id.clone()).or_default().insert(eval.id.clone());
            let mut eval = eval;
            eval.create_index = create_index;
            eval.modify_index = modify_index;
            state.evals.insert(eval.id.clone(), Arc::new(eval));
        }
        for deployment in snapshot.deployments {
            state.deployments_by_job.entry(deployment.job_id.clone()).or_default().insert(deployment.id.clone());
            state.deployments.insert(deployment.id.clone(), Arc::new(deployment));
        }
        state.periodic_launches = snapshot.periodic_launches.into_iter().collect();
        state.variables =
            snapshot.variables.into_iter().map(|variable| (variable.path.clone(), Arc::new(variable))).collect();
        state.node_history = snapshot
            .node_history
            .into_iter()
            .map(|(node_id, history)| (node_id, history.into_iter().collect::<imbl::Vector<NodeChange>>()))
            .collect();
        state.react = Arc::new(snapshot.react.unwrap_or_default());
        let mut access = snapshot.access.unwrap_or_default();
        access.reindex();
        state.access = Arc::new(access);
        state.workflows =
            snapshot.workflows.into_iter().map(|workflow| (workflow.id.clone(), Arc::new(workflow))).collect();
        state.last_index = snapshot.last_index;
        state.capacity_index = snapshot.capacity_index;
        state.restore_index = snapshot.restore_index;
        state.table_indexes = snapshot.table_indexes;
        state
    }
}

/// How many client statuses there are (the size of
/// `State::allocs_by_client_status`).
const NUM_CLIENT_STATUSES: usize = 6;

/// Where a client status is counted in `State::allocs_by_client_status`.
fn client_status_slot(status: AllocClientStatus) -> usize {
    match status {
        AllocClientStatus::Pending => 0,
        AllocClientStatus::Running => 1,
        AllocClientStatus::Complete => 2,
        AllocClientStatus::Failed => 3,
        AllocClientStatus::Lost => 4,
        AllocClientStatus::Unknown => 5,
    }
}

fn resolve_prefix<'a, K, V>(map: &'a OrdMap<K, Arc<V>>, prefix: &str, kind: &str) -> Result<&'a Arc<V>, CodedError>
where
    K: Ord + Clone + std::borrow::Borrow<str> + std::fmt::Display,
    V: Clone,
{
    if prefix.is_empty() {
        return Err(CodedError::invalid(format!("an empty {kind} id was given")));
    }
    if let Some(exact) = map.get(prefix) {
        return Ok(exact);
    }
    let mut matches = map
        .range::<_, str>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
        .take_while(|(key, _)| key.borrow().starts_with(prefix));
    let Some((first_key, first)) = matches.next() else {
        return Err(CodedError::new(ErrorCode::NotFound, format!("no {kind} has an id starting with {prefix:?}")));
    };
    let others: Vec<String> = matches.take(4).map(|(key, _)| key.to_string()).collect();
    if others.is_empty() {
        return Ok(first);
    }
    Err(CodedError::conflict(format!(
        "the prefix {prefix:?} matches several {kind}s ({}, {}, …); type more characters",
        first_key,
        others.join(", ")
    )))
}

#[path = "node_identity.rs"]
mod node_identity;
#[path = "workflows.rs"]
mod workflows;
pub use node_identity::purge_refusal;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
