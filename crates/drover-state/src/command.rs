//! The commands of the Raft log.
//!
//! Every change to the cluster state is one [`Command`] in the Raft log.
//! Rules (docs/dev/style.md, convention 4):
//!
//! - A command carries every id and timestamp it needs; `apply` never reads
//!   the clock or generates randomness, so every server reaches the same
//!   state.
//! - The enum only grows. Variants are never removed or reordered, and new
//!   fields are `#[serde(default)]`. A server that meets a command it cannot
//!   decode (written by a newer version) stops applying and reports an error
//!   telling the operator to upgrade it; it never skips the entry, because
//!   skipping would let its state diverge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use drover_types::{
    AllocId, ClientAllocUpdate, CodedError, Deployment, DesiredTransition, DrainStrategy, EvalId, Evaluation, Job,
    JobId, NodeChange, NodeEligibility, NodeId, NodeLabels, NodeRegistration, NodeStatus, Plan, PlanStop, Protection,
    Retirement, Timestamp,
};

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Register a job or a new version of it, with the evaluation that
    /// schedules it.
    RegisterJob {
        /// The parsed job (server-managed fields are recomputed).
        job: Job,
        /// Evaluation to create.
        eval: Evaluation,
        /// Submission time.
        now: Timestamp,
    },
    /// Stop a job (a new version with `stop = true`), optionally removing it.
    DeregisterJob {
        /// The job.
        job_id: JobId,
        /// Remove the job and its versions instead of keeping it stopped.
        purge: bool,
        /// Evaluation that stops its allocations.
        eval: Evaluation,
        /// When.
        now: Timestamp,
    },
    /// An agent registered (first start or restart). With the name of
    /// another node that is not up, it takes that node's place; with the
    /// name of one that is up, it is rejected
    /// ([`crate::State::registration_refusal`]).
    RegisterNode {
        /// What the agent reports.
        registration: NodeRegistration,
        /// Evaluations for jobs that may now place on the node.
        evals: Vec<Evaluation>,
        /// When.
        now: Timestamp,
    },
    /// The leader changed a node's heartbeat status.
    UpdateNodeStatus {
        /// The node.
        node_id: NodeId,
        /// New status.
        status: NodeStatus,
        /// Why.
        description: String,
        /// Evaluations for the jobs with allocations on the node.
        evals: Vec<Evaluation>,
        /// When.
        now: Timestamp,
        /// Applied only if the node's record is still at this modify index:
        /// the heartbeat tracker's view, which a registration committed
        /// since (the agent back) outdates. `None`: whatever it is.
        #[serde(default)]
        seen_index: Option<u64>,
    },
    /// Commit a verified plan and the evaluation's new status.
    ApplyPlan {
        /// The accepted part of the plan (boxed: it is the largest command).
        plan: Box<Plan>,
        /// The evaluation, updated (complete, or blocked follow-up recorded).
        eval: Evaluation,
        /// A blocked evaluation for placements that could not be made.
        blocked_eval: Option<Evaluation>,
        /// When.
        now: Timestamp,
    },
    /// An agent reported how many log lines it dropped (spool full).
    UpdateNodeLogStats {
        /// The node.
        node_id: NodeId,
        /// The agent's total of dropped lines.
        dropped_lines: u64,
    },
    /// Create or update evaluations.
    UpsertEvals {
        /// The evaluations.
        evals: Vec<Evaluation>,
    },
    /// Task states reported by agents.
    UpdateAllocsFromClient {
        /// One entry per allocation.
        updates: Vec<ClientAllocUpdate>,
        /// Evaluations for failed allocations.
        evals: Vec<Evaluation>,
        /// When the server received them.
        now: Timestamp,
    },
    /// An operator changed a node's scheduling eligibility.
    UpdateNodeEligibility {
        /// The node.
        node_id: NodeId,
        /// New eligibility.
        eligibility: NodeEligibility,
        /// Evaluations to create (capacity appeared).
        evals: Vec<Evaluation>,
        /// When.
        now: Timestamp,
        /// Entries for the node's audit history.
        #[serde(default)]
        audit: Vec<NodeChange>,
    },
    /// A drain started (`Some`) or ended (`None`, cancelled or complete).
    UpdateNodeDrain {
        /// The node.
        node_id: NodeId,
        /// The drain, or `None` to end it.
        drain: Option<DrainStrategy>,
        /// When ending: make the node eligible again.
        mark_eligible: bool,
        /// When.
        now: Timestamp,
        /// Entries for the node's audit history (an operator's drains).
        #[serde(default)]
        audit: Vec<NodeChange>,
    },
    /// Ask the scheduler to move or replace allocations (the drainer's
    /// batches), with the evaluations that act on it.
    UpdateAllocDesiredTransitions {
        /// Allocation and its new desired transition.
        transitions: Vec<(AllocId, DesiredTransition)>,
        /// Evaluations to create.
        evals: Vec<Evaluation>,
        /// When.
        now: Timestamp,
    },
    /// The deployment watcher changed a deployment (status, promotion).
    UpsertDeployment {
        /// The deployment as it should be.
        deployment: Deployment,
        /// Evaluations to create (the next batch of a rolling update).
        evals: Vec<Evaluation>,
        /// Mark this job version stable (a successful deployment).
        stable_version: Option<u64>,
    },
    /// A periodic job launches a child job.
    LaunchPeriodic {
        /// The periodic parent.
        parent_id: JobId,
        /// The launch time the child is for.
        launch_time: Timestamp,
        /// The child job (its id derived from the parent's and the time).
        child: Job,
        /// The child's evaluation.
        eval: Evaluation,
        /// When.
        now: Timestamp,
    },
    /// Stop allocations directly, without a scheduler plan (a drain's
    /// deadline: they stop even when no replacement can be placed).
    StopAllocs {
        /// The stops.
        stops: Vec<PlanStop>,
        /// Evaluations that will place replacements when they can.
        evals: Vec<Evaluation>,
        /// When.
        now: Timestamp,
    },
    /// Replace the whole state with a snapshot (`drover operator snapshot
    /// restore`): disaster recovery. The bytes are a `snapshot::encode_state`
    /// file; decoding is deterministic, so every server ends with the same
    /// state.
    RestoreState {
        /// The encoded snapshot.
        #[serde(with = "drover_types::serde_bytes")]
        snapshot: Vec<u8>,
        /// Keep the running cluster's tokens, policies, enrolled nodes and
        /// audit log (`drover operator snapshot restore`: an old snapshot
        /// must not bring back a revoked token); without it they come from
        /// the snapshot (recovering a lost cluster).
        #[serde(default)]
        keep_access: bool,
    },
    /// A periodic launch was skipped (`prohibit_overlap`): record it so the
    /// next launch is computed after it.
    SkipPeriodicLaunch {
        /// The periodic parent.
        parent_id: JobId,
        /// The skipped launch time.
        launch_time: Timestamp,
    },
    /// Create or replace a variable.
    PutVariable {
        /// Its path.
        path: String,
        /// Its items.
        items: BTreeMap<String, String>,
        /// Check-and-set: apply only if the variable's `modify_index` is
        /// this (0: only if it does not exist).
        cas: Option<u64>,
        /// When.
        now: Timestamp,
    },
    /// Delete a variable.
    DeleteVariable {
        /// Its path.
        path: String,
        /// Check-and-set, as for `PutVariable`.
        cas: Option<u64>,
    },
    /// An operator changed the labels of nodes (`drover node update`):
    /// `labels` is laid over each node's overrides ([`NodeLabels::merge`]),
    /// and every effective change is recorded in the node's history.
    UpdateNodeLabels {
        /// The nodes.
        node_ids: Vec<NodeId>,
        /// The overrides to lay over the current ones.
        labels: NodeLabels,
        /// Who.
        by: String,
        /// Evaluations for system jobs (a node may now match them).
        evals: Vec<Evaluation>,
        /// When.
        now: Timestamp,
    },
    /// An operator protected (`Some`) or unprotected (`None`) a node.
    SetNodeProtection {
        /// The node.
        node_id: NodeId,
        /// The protection, or `None` to lift it.
        protection: Option<Protection>,
        /// Who.
        by: String,
        /// Why (for the history; a protection carries its own reason).
        reason: String,
        /// When.
        now: Timestamp,
    },
    /// Detect and react: the site, alerts, silences, hammer runs.
    React {
        /// The input.
        op: crate::react::ReactOp,
    },
    /// Agents registered: the registrations that reached a server while
    /// its previous one was being committed, in one entry (group commit;
    /// a fleet reconnecting after a server restart is thousands of them).
    /// Each is applied as [`Command::RegisterNode`] would, on its own: one
    /// that [`NodeRegistration::validate`] refuses is skipped (with its
    /// evaluations) and does not stop the others. The refusal depends on
    /// the registration alone, so the proposing server tells each agent
    /// its outcome by running the same check. A registration whose name
    /// another node holds while it is up is skipped too
    /// ([`crate::State::registration_refusal`]); the answer names those in
    /// `NodesRegistered` (or is `Applied` when there are none).
    RegisterNodes {
        /// Each registration with the evaluations for jobs that may now
        /// place on its node.
        registrations: Vec<(NodeRegistration, Vec<Evaluation>)>,
        /// When.
        now: Timestamp,
    },
    /// A write and the audit event of the request that made it, in one
    /// entry: a secure server answers the request after one commit, not
    /// two. The event's outcome becomes `failed` when `command` is
    /// rejected. The API may complete the event later (same
    /// `request_id`), when the request's answer says more.
    Audited {
        /// The write.
        command: Box<Command>,
        /// Its audit event.
        event: drover_types::acl::AuditEvent,
    },
    /// Access control and audit: tokens, policies, enrolment, revocation,
    /// audit events.
    Access {
        /// The change.
        op: crate::access::AccessOp,
    },
    /// An operator retired nodes (`drover node retire`): from now on each
    /// takes no new work and leaves the default node list, and it is
    /// drained (with `drain`, unless it is draining already); its record
    /// and history stay until it is purged. Nodes retired already are left
    /// as they are; all must exist, else nothing changes.
    RetireNodes {
        /// The nodes.
        node_ids: Vec<NodeId>,
        /// Who, when and why.
        retirement: Retirement,
        /// The drain that moves their allocations away.
        drain: DrainStrategy,
    },
    /// Forget nodes entirely (`drover node purge`, or the leader's node GC
    /// of nodes down for longer than `--node-gc-after`): their records and
    /// histories go, and allocations still on them are lost (the
    /// evaluations place their replacements). All or nothing: refused when
    /// one does not exist, is protected, or is up and not retired
    /// ([`crate::purge_refusal`]).
    PurgeNodes {
        /// The nodes.
        node_ids: Vec<NodeId>,
        /// Evaluations for the jobs with live allocations on them.
        evals: Vec<Evaluation>,
    },
    /// Machine workflows (`drover node create|reboot|rebuild|delete`):
    /// start one, move a step on, cancel one (docs/machines.md).
    Workflow {
        /// The change.
        op: drover_types::workflow::WorkflowOp,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::RegisterJob { .. } => "register_job",
            Command::DeregisterJob { .. } => "deregister_job",
            Command::RegisterNode { .. } => "register_node",
            Command::UpdateNodeStatus { .. } => "update_node_status",
            Command::ApplyPlan { .. } => "apply_plan",
            Command::UpdateNodeLogStats { .. } => "update_node_log_stats",
            Command::UpsertEvals { .. } => "upsert_evals",
            Command::UpdateAllocsFromClient { .. } => "update_allocs_from_client",
            Command::UpdateNodeEligibility { .. } => "update_node_eligibility",
            Command::UpdateNodeDrain { .. } => "update_node_drain",
            Command::UpdateAllocDesiredTransitions { .. } => "update_alloc_desired_transitions",
            Command::UpsertDeployment { .. } => "upsert_deployment",
            Command::LaunchPeriodic { .. } => "launch_periodic",
            Command::SkipPeriodicLaunch { .. } => "skip_periodic_launch",
            Command::StopAllocs { .. } => "stop_allocs",
            Command::RestoreState { .. } => "restore_state",
            Command::PutVariable { .. } => "put_variable",
            Command::DeleteVariable { .. } => "delete_variable",
            Command::UpdateNodeLabels { .. } => "update_node_labels",
            Command::SetNodeProtection { .. } => "set_node_protection",
            Command::React { .. } => "react",
            Command::RegisterNodes { .. } => "register_nodes",
            Command::Access { .. } => "access",
            Command::Audited { command, .. } => command.kind(),
            Command::RetireNodes { .. } => "retire_nodes",
            Command::PurgeNodes { .. } => "purge_nodes",
            Command::Workflow { .. } => "workflow",
        }
    }
}

/// The outcome of applying a command, returned to the proposer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Applied; nothing more to say.
    Applied {
        /// The log index.
        index: u64,
    },
    /// A job was registered.
    JobRegistered {
        /// The log index.
        index: u64,
        /// The job's version after registration.
        version: u64,
        /// Whether the specification changed (a new version).
        changed: bool,
        /// The evaluation created.
        eval_id: EvalId,
    },
    /// A detect-and-react input was applied.
    React {
        /// The log index.
        index: u64,
        /// What was decided.
        outcome: crate::react::ReactOutcome,
    },
    /// Agents registered (`RegisterNodes`); the registrations named here
    /// were refused and changed nothing (another node holds their name and
    /// is up: [`crate::State::registration_refusal`]).
    NodesRegistered {
        /// The log index.
        index: u64,
        /// Each refused registration's node id, and why.
        refused: Vec<(NodeId, CodedError)>,
    },
    /// The command was valid Raft-wise but rejected by the state machine
    /// (for example, stopping a job that does not exist). Nothing changed.
    Rejected {
        /// The log index.
        index: u64,
        /// Why.
        error: CodedError,
    },
}

impl CommandResponse {
    /// The log index the command was applied at.
    pub fn index(&self) -> u64 {
        match self {
            CommandResponse::Applied { index }
            | CommandResponse::React { index, .. }
            | CommandResponse::NodesRegistered { index, .. }
            | CommandResponse::JobRegistered { index, .. }
            | CommandResponse::Rejected { index, .. } => *index,
        }
    }

    /// `Err` when the state machine rejected the command.
    pub fn into_result(self) -> Result<CommandResponse, CodedError> {
        match self {
            CommandResponse::Rejected { error, .. } => Err(error),
            other => Ok(other),
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::RegisterJob { job, .. } => write!(formatter, "register_job({})", job.id),
            Command::DeregisterJob { job_id, purge, .. } => {
                write!(formatter, "deregister_job({job_id}, purge={purge})")
            }
            Command::RegisterNode { registration, .. } => write!(formatter, "register_node({})", registration.name),
            Command::UpdateNodeStatus { node_id, status, .. } => {
                write!(formatter, "update_node_status({node_id}, {status})")
            }
            Command::ApplyPlan { plan, .. } => {
                write!(formatter, "apply_plan({}, place={}, stop={})", plan.job_id, plan.place.len(), plan.stop.len())
            }
            Command::UpdateNodeLogStats { node_id, dropped_lines } => {
                write!(formatter, "update_node_log_stats({node_id}, dropped={dropped_lines})")
            }
            Command::UpsertEvals { evals } => write!(formatter, "upsert_evals({})", evals.len()),
            Command::UpdateAllocsFromClient { updates, .. } => {
                write!(formatter, "update_allocs_from_client({})", updates.len())
            }
            Command::UpdateNodeEligibility { node_id, eligibility, .. } => {
                write!(formatter, "update_node_eligibility({node_id}, {eligibility:?})")
            }
            Command::UpdateNodeDrain { node_id, drain, .. } => {
                write!(formatter, "update_node_drain({node_id}, draining={})", drain.is_some())
            }
            Command::UpdateAllocDesiredTransitions { transitions, .. } => {
                write!(formatter, "update_alloc_desired_transitions({})", transitions.len())
            }
            Command::UpsertDeployment { deployment, .. } => {
                write!(formatter, "upsert_deployment({}, {})", deployment.id, deployment.status)
            }
            Command::LaunchPeriodic { parent_id, .. } => write!(formatter, "launch_periodic({parent_id})"),
            Command::SkipPeriodicLaunch { parent_id, .. } => write!(formatter, "skip_periodic_launch({parent_id})"),
            Command::StopAllocs { stops, .. } => write!(formatter, "stop_allocs({})", stops.len()),
            Command::RestoreState { snapshot, .. } => write!(formatter, "restore_state({} bytes)", snapshot.len()),
            Command::PutVariable { path, .. } => write!(formatter, "put_variable({path})"),
            Command::DeleteVariable { path, .. } => write!(formatter, "delete_variable({path})"),
            Command::UpdateNodeLabels { node_ids, .. } => {
                write!(formatter, "update_node_labels({} nodes)", node_ids.len())
            }
            Command::SetNodeProtection { node_id, protection, .. } => {
                write!(formatter, "set_node_protection({node_id}, {})", protection.is_some())
            }
            Command::React { op } => write!(formatter, "react({})", op.name()),
            Command::RegisterNodes { registrations, .. } => {
                write!(formatter, "register_nodes({})", registrations.len())
            }
            Command::Access { op } => write!(formatter, "access({})", op.name()),
            Command::Audited { command, event } => write!(formatter, "audited({command}, {})", event.action),
            Command::RetireNodes { node_ids, .. } => write!(formatter, "retire_nodes({} nodes)", node_ids.len()),
            Command::PurgeNodes { node_ids, .. } => write!(formatter, "purge_nodes({} nodes)", node_ids.len()),
            Command::Workflow { op } => write!(formatter, "workflow({})", op.name()),
        }
    }
}

impl std::fmt::Display for CommandResponse {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandResponse::Applied { index } => write!(formatter, "applied at {index}"),
            CommandResponse::React { index, .. } => write!(formatter, "react applied at {index}"),
            CommandResponse::NodesRegistered { index, refused } => {
                write!(formatter, "registrations applied at {index}, {} refused", refused.len())
            }
            CommandResponse::JobRegistered { index, version, .. } => {
                write!(formatter, "job version {version} registered at {index}")
            }
            CommandResponse::Rejected { index, error } => write!(formatter, "rejected at {index}: {error}"),
        }
    }
}
