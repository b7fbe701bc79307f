//! Request and response bodies of the HTTP API (`/v1/...`).
//!
//! Errors are always `{"code": "...", "message": "..."}`
//! ([`drover_types::CodedError`]); list endpoints return the Raft index of
//! their data in the `X-Drover-Index` header and accept `?index=N&wait=30s`
//! to block until the data is newer than `N` (Nomad's blocking queries).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, Deployment, EvalId, Evaluation, GroupChanges, Job,
    JobId, JobStatus, JobType, Node, NodeId, PlacementFailure, Resources, TaskState, Timestamp,
};

/// The header carrying the Raft index of a response's data.
pub const INDEX_HEADER: &str = "x-drover-index";

/// `POST /v1/jobs` and `POST /v1/job/{id}/plan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterJobRequest {
    /// The parsed job.
    pub job: Job,
}

/// Answer to `POST /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterJobResponse {
    /// The evaluation that schedules the job.
    pub eval_id: EvalId,
    /// The job's version after registration.
    pub job_version: u64,
    /// Whether this registration changed the job (a new version).
    pub changed: bool,
    /// Raft index of the registration.
    pub index: u64,
}

/// Body of `POST /v1/job/{id}/dispatch`: what a child of a parameterized
/// job carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchJobRequest {
    /// Meta added to the child's (the parent's `meta_required` and
    /// `meta_optional` keys only).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// The payload (at most 16 KiB), written to the tasks'
    /// `dispatch_payload` files.
    #[serde(default, with = "drover_types::serde_bytes")]
    pub payload: Vec<u8>,
}

/// Answer to `POST /v1/job/{id}/dispatch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchJobResponse {
    /// The child job, `<parent>/dispatch-<unix seconds>-<8 hex digits>`.
    pub dispatched_job_id: drover_types::JobId,
    /// The evaluation that places it.
    pub eval_id: EvalId,
    /// Raft index of the registration.
    pub index: u64,
}

/// Answer to `DELETE /v1/job/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterJobResponse {
    /// The evaluation that stops the allocations.
    pub eval_id: EvalId,
    /// Raft index.
    pub index: u64,
}

/// Answer to `POST /v1/job/{id}/plan`: what registering the job would do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    /// Whether the job would get a new version.
    pub changed: bool,
    /// The version the job would get.
    pub next_version: u64,
    /// Per group, what would happen.
    pub changes: BTreeMap<String, GroupChanges>,
    /// Groups that could not be placed in full, and why.
    pub failed: BTreeMap<String, PlacementFailure>,
    /// Lines of a field-by-field difference to the current version
    /// (`+`, `-`, `~` prefixes); empty for a new job.
    pub diff: Vec<String>,
}

/// Allocation counts by client status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocCounts {
    /// Pending.
    pub pending: u32,
    /// Running.
    pub running: u32,
    /// Complete.
    pub complete: u32,
    /// Failed.
    pub failed: u32,
    /// Lost.
    pub lost: u32,
    /// Unknown (node disconnected).
    pub unknown: u32,
}

impl AllocCounts {
    /// Counts one allocation.
    pub fn add(&mut self, status: AllocClientStatus) {
        match status {
            AllocClientStatus::Pending => self.pending += 1,
            AllocClientStatus::Running => self.running += 1,
            AllocClientStatus::Complete => self.complete += 1,
            AllocClientStatus::Failed => self.failed += 1,
            AllocClientStatus::Lost => self.lost += 1,
            AllocClientStatus::Unknown => self.unknown += 1,
        }
    }
}

/// A line of `GET /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobListEntry {
    /// Job id.
    pub id: JobId,
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Priority.
    pub priority: u8,
    /// Status.
    pub status: JobStatus,
    /// Current version.
    pub version: u64,
    /// Stopped by an operator.
    pub stop: bool,
    /// Submission time of the current version.
    pub submit_time: Timestamp,
    /// Allocation counts (current allocations only: not replaced ones).
    pub allocs: AllocCounts,
}

/// `GET /v1/job/{id}/status`: everything `drover job status` shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatusResponse {
    /// The job's current version.
    pub job: Job,
    /// The job's latest deployment.
    #[serde(default)]
    pub deployment: Option<Deployment>,
    /// For a periodic job: its children, newest first.
    #[serde(default)]
    pub children: Vec<JobListEntry>,
    /// Per group allocation counts.
    pub summary: BTreeMap<String, AllocCounts>,
    /// The job's allocations, newest first.
    pub allocs: Vec<AllocListEntry>,
    /// The latest evaluations, newest first.
    pub evals: Vec<Evaluation>,
}

/// A line of allocation lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocListEntry {
    /// Allocation id.
    pub id: AllocId,
    /// `job.group[index]`.
    pub name: String,
    /// Job.
    pub job_id: JobId,
    /// Job version.
    pub job_version: u64,
    /// Group.
    pub group: String,
    /// Node id.
    pub node_id: NodeId,
    /// Node name.
    pub node_name: String,
    /// What the servers want.
    pub desired_status: AllocDesiredStatus,
    /// Why.
    pub desired_description: String,
    /// What the agent reports.
    pub client_status: AllocClientStatus,
    /// Detail.
    pub client_description: String,
    /// Total task restarts.
    pub restarts: u32,
    /// Per-task state, with recent events.
    pub task_states: BTreeMap<String, TaskState>,
    /// Deployment health, when decided.
    pub healthy: Option<bool>,
    /// Health check results.
    #[serde(default)]
    pub checks: Vec<drover_types::CheckStatus>,
    /// Creation.
    pub create_time: Timestamp,
    /// Last change.
    pub modify_time: Timestamp,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl From<&Allocation> for AllocListEntry {
    fn from(alloc: &Allocation) -> Self {
        AllocListEntry {
            id: alloc.id.clone(),
            name: alloc.name.clone(),
            job_id: alloc.job_id.clone(),
            job_version: alloc.job_version,
            group: alloc.group.clone(),
            node_id: alloc.node_id.clone(),
            node_name: alloc.node_name.clone(),
            desired_status: alloc.desired_status,
            desired_description: alloc.desired_description.clone(),
            client_status: alloc.client_status,
            client_description: alloc.client_description.clone(),
            restarts: alloc.num_restarts(),
            task_states: alloc.task_states.clone(),
            healthy: alloc.deployment_status.as_ref().and_then(|status| status.healthy),
            checks: alloc.checks.clone(),
            create_time: alloc.create_time,
            modify_time: alloc.modify_time,
            modify_index: alloc.modify_index,
        }
    }
}

/// A line of `GET /v1/nodes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeListEntry {
    /// Node id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// `ready`, `down`, `draining`, `ineligible`, …
    pub status: String,
    /// Host group.
    pub hostgroup: String,
    /// Environment.
    pub environment: String,
    /// Owner.
    pub owner: String,
    /// Zone.
    pub zone: String,
    /// Protected?
    pub protected: bool,
    /// Capacity.
    pub resources: Resources,
    /// Resources held by allocations.
    pub used: Resources,
    /// Allocations that are not terminal.
    pub num_allocs: u32,
    /// Selected facts: `os.name`, `kernel.version`, `cpu.arch`, ….
    pub attributes: BTreeMap<String, String>,
    /// Agent version.
    pub agent_version: String,
    /// Last heartbeat seen by the leader, when known.
    pub last_heartbeat: Option<Timestamp>,
}

/// `GET /v1/node/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatusResponse {
    /// The node.
    pub node: Node,
    /// Resources held by allocations.
    pub used: Resources,
    /// Its allocations that are not terminal.
    pub allocs: Vec<AllocListEntry>,
    /// Last heartbeat seen by the leader, when known.
    pub last_heartbeat: Option<Timestamp>,
    /// The machine's latest measured usage (CPU, memory, disks, tasks),
    /// when its agent is connected.
    #[serde(default)]
    pub usage: Option<drover_types::usage::NodeSample>,
}

/// `GET /v1/node/{node}/usage?since=24h`: a node's usage, one point a
/// minute, oldest first (docs/nodes.md, "Usage history").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeUsageHistory {
    /// The node's name.
    pub node: String,
    /// Seconds between points (60).
    pub step_secs: u32,
    /// The minutes with at least one sample, oldest first; a minute
    /// without one (agent away) is absent.
    pub points: Vec<UsagePoint>,
}

/// One minute of a node's usage: the mean of the samples of that minute,
/// kept to one byte a figure (percentages to 0.5, byte rates to 9 %).
/// A figure the agent could not measure is `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsagePoint {
    /// The start of the minute, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// CPU busy over all cores, `0.0..=100.0`.
    pub cpu_percent: Option<f32>,
    /// Memory in use, percent of physical memory.
    pub memory_percent: Option<f32>,
    /// Use of the fullest disk, percent (as `df`).
    pub disk_percent: Option<f32>,
    /// Bytes received per second over every interface but loopback.
    pub net_rx_bytes_per_sec: Option<f64>,
    /// Bytes sent per second over every interface but loopback.
    pub net_tx_bytes_per_sec: Option<f64>,
}

/// `POST /v1/job/{id}/revert`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertJobRequest {
    /// The version to run again.
    pub version: u64,
}

/// `POST /v1/node/{node}/drain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DrainRequest {
    /// Force-stop what remains after this long (`"1h"`); none waits forever.
    #[serde(default)]
    pub deadline: Option<String>,
    /// Leave system-job allocations running.
    #[serde(default)]
    pub ignore_system: bool,
    /// Cancel the drain and make the node eligible again.
    #[serde(default)]
    pub disable: bool,
    /// Why: required for a drain with a deadline on a protected node (it
    /// stops tasks by force), and recorded in the node's history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The header a client names its user in (`drover` sends `$USER@hostname`,
/// or `$DROVER_USER`). Without tokens it is a claim, not a proof: it labels
/// the audit history and grants nothing.
pub const USER_HEADER: &str = "x-drover-user";

/// The header that carries an ACL token's secret (`Authorization: Bearer
/// SECRET` is accepted too).
pub const TOKEN_HEADER: &str = "x-drover-token";

/// `POST /v1/nodes/update`: change the labels of many nodes at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUpdateRequest {
    /// Node names or ids (brace ranges already expanded).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Or (and) the nodes this filter matches.
    #[serde(default)]
    pub filter: Option<String>,
    /// The overrides to set.
    pub labels: drover_types::NodeLabels,
    /// Only tell what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to [`NodeUpdateRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUpdateResponse {
    /// The nodes selected, by name.
    pub nodes: Vec<String>,
    /// What changes (or changed), per node; nodes with nothing to change
    /// are absent.
    pub changes: Vec<NodeFieldChange>,
    /// The Raft index of the change (0 for a dry run or no change).
    pub index: u64,
}

/// One field of one node, before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFieldChange {
    /// The node's name.
    pub node: String,
    /// The node's id.
    pub node_id: NodeId,
    /// The field (`hostgroup`, `meta.rack`, …).
    pub field: String,
    /// Before (empty: unset).
    pub from: String,
    /// After (empty: unset).
    pub to: String,
}

/// `POST /v1/nodes/retire`: drain nodes, then keep them out of scheduling
/// and of the default node list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRetireRequest {
    /// Node names or ids (brace ranges already expanded).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Or (and) the nodes this filter matches.
    #[serde(default)]
    pub filter: Option<String>,
    /// Stop what still runs after this long (`1h`); none: wait.
    #[serde(default)]
    pub deadline: Option<String>,
    /// Why (recorded in the history; needed with a deadline on a
    /// protected node).
    #[serde(default)]
    pub reason: Option<String>,
    /// Only tell which nodes would be retired.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/nodes/purge`: forget down or retired nodes entirely.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePurgeRequest {
    /// Node names or ids (brace ranges already expanded).
    pub nodes: Vec<String>,
    /// Only tell which nodes would be purged (refusals included).
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to [`NodeRetireRequest`] and [`NodePurgeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSelectionResponse {
    /// The nodes changed (or, for a dry run, that would change), by name.
    pub nodes: Vec<String>,
    /// Their ids, in the same order.
    pub node_ids: Vec<NodeId>,
    /// The Raft index of the change (0 for a dry run or no change).
    pub index: u64,
}

/// `POST /v1/node/{node}/protection`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRequest {
    /// Protect (`true`) or lift the protection.
    pub protect: bool,
    /// Why; required to protect.
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/exec`: run a command on many nodes through their agents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Node names or ids (brace ranges already expanded).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Or (and) the nodes this filter matches.
    #[serde(default)]
    pub filter: Option<String>,
    /// The command and its arguments, run by `/bin/sh -c` joined by spaces
    /// (as `ssh` does).
    pub command: Vec<String>,
    /// Per-node deadline in milliseconds.
    #[serde(default = "default_exec_timeout_ms")]
    pub timeout_ms: u64,
    /// At most this many nodes run the command at once (per server); 0:
    /// no limit.
    #[serde(default)]
    pub parallel: usize,
    /// Run as this user instead of the agent's.
    #[serde(default)]
    pub user: Option<String>,
    /// Bytes kept of each node's stdout and of its stderr.
    #[serde(default = "default_exec_output_bytes")]
    pub max_output_bytes: u64,
    /// Answer only for the nodes whose agents are connected to this server
    /// (set by a server that fans a request out to its peers).
    #[serde(default)]
    pub local: bool,
    /// Refuse the whole request when the caller may not run it on one of
    /// the selected nodes (instead of running it on the others and
    /// reporting those as denied).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_or_nothing: bool,
    /// Set by the server, never by callers: whether the command may run
    /// as root (the caller has `exec-as-root` on every node it runs on).
    /// Servers pass it on when they ask each other.
    #[serde(default = "root_allowed", skip_serializing_if = "Clone::clone")]
    pub root_allowed: bool,
    /// Bytes written to the command's stdin, then closed (`drover exec …
    /// < script`, `drover copy`); empty: stdin is closed from the start.
    /// In JSON an array of byte values; at most [`MAX_EXEC_STDIN_BYTES`].
    #[serde(default, with = "drover_types::serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub stdin: Vec<u8>,
}

/// The largest [`ExecRequest::stdin`]: its JSON form (up to 4 characters
/// a byte) must fit the 16 MiB request body limit.
pub const MAX_EXEC_STDIN_BYTES: usize = 3 * 1024 * 1024;

fn root_allowed() -> bool {
    true
}

fn default_exec_timeout_ms() -> u64 {
    30_000
}

fn default_exec_output_bytes() -> u64 {
    64 * 1024
}

/// How one node's command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    /// Exit code 0.
    Success,
    /// Non-zero exit code, killed by a signal, or could not start.
    Failure,
    /// No answer by the deadline (the command was killed if it ran).
    Timeout,
    /// The node's agent is not connected to any server.
    Unreachable,
    /// The caller's token may not run commands on the node.
    Denied,
}

impl ExecStatus {
    /// The word parallel-ssh prints.
    pub fn label(self) -> &'static str {
        match self {
            ExecStatus::Success => "SUCCESS",
            ExecStatus::Failure => "FAILURE",
            ExecStatus::Timeout => "TIMEOUT",
            ExecStatus::Unreachable => "UNREACHABLE",
            ExecStatus::Denied => "DENIED",
        }
    }

    /// The lower-case word, as JSON counts, summaries and metric labels
    /// write it.
    pub fn key(self) -> &'static str {
        match self {
            ExecStatus::Success => "success",
            ExecStatus::Failure => "failure",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Unreachable => "unreachable",
            ExecStatus::Denied => "denied",
        }
    }
}

/// One node's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecNodeResult {
    /// The node's name.
    pub node: String,
    /// The node's id.
    pub node_id: NodeId,
    /// How it ended.
    pub status: ExecStatus,
    /// The exit code, when the command exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What went wrong (signal, could not start, not connected).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Standard output (lossy UTF-8), capped.
    #[serde(default)]
    pub stdout: String,
    /// Standard error (lossy UTF-8), capped.
    #[serde(default)]
    pub stderr: String,
    /// Whether output beyond the cap was dropped.
    #[serde(default)]
    pub truncated: bool,
    /// Milliseconds from sending the command to its answer.
    pub duration_ms: u64,
}

/// Nodes whose command printed the same thing (`drover exec`'s grouped
/// output, as ClusterShell's `-b`, and the dashboard's exec page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutputGroup<'a> {
    /// What they printed on stdout.
    pub stdout: &'a str,
    /// What they printed on stderr.
    pub stderr: &'a str,
    /// Their names, in the order of the results.
    pub nodes: Vec<&'a str>,
}

/// The results that printed anything, one group per distinct stdout and
/// stderr, the most common output first (then by node names).
pub fn group_exec_outputs(results: &[ExecNodeResult]) -> Vec<ExecOutputGroup<'_>> {
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<&str>> = std::collections::BTreeMap::new();
    for result in results.iter().filter(|result| !result.stdout.is_empty() || !result.stderr.is_empty()) {
        groups.entry((&result.stdout, &result.stderr)).or_default().push(&result.node);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1.cmp(&b.1)));
    groups.into_iter().map(|((stdout, stderr), nodes)| ExecOutputGroup { stdout, stderr, nodes }).collect()
}

/// How an exec went, status by status in a fixed order, as the CLI's
/// summary line and the dashboard print it: `18 success, 1 failure
/// (node07)` — the nodes of every status but success named, folded by
/// `fold` (`drover_filter::fold_names`, which this crate does not depend
/// on). `None` when there are no results.
pub fn exec_status_parts(results: &[ExecNodeResult], fold: impl Fn(&[&str]) -> String) -> Option<String> {
    let mut parts = Vec::new();
    for status in
        [ExecStatus::Success, ExecStatus::Failure, ExecStatus::Timeout, ExecStatus::Unreachable, ExecStatus::Denied]
    {
        let nodes: Vec<&str> =
            results.iter().filter(|result| result.status == status).map(|result| result.node.as_str()).collect();
        if nodes.is_empty() {
            continue;
        }
        let word = status.key();
        if status == ExecStatus::Success {
            parts.push(format!("{} {word}", nodes.len()));
        } else {
            parts.push(format!("{} {word} ({})", nodes.len(), fold(&nodes)));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The lines of `POST /v1/exec`'s NDJSON answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum ExecEvent {
    /// First: the nodes selected.
    Start {
        /// Their names.
        nodes: Vec<String>,
    },
    /// One node finished (in the order they finish).
    Result(ExecNodeResult),
    /// Last: every node has its result.
    End,
}

/// `POST /v1/node/{node}/eligibility`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibilityRequest {
    /// Whether new allocations may be placed on the node.
    pub eligible: bool,
}

/// `GET /v1/status/leader` and `GET /v1/agent/self`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// This server's Raft id.
    pub server_id: u64,
    /// This server's address.
    pub address: String,
    /// The leader's address, when known.
    pub leader_address: Option<String>,
    /// The leader's id, when known.
    pub leader_id: Option<u64>,
    /// drover version.
    pub version: String,
    /// Last applied Raft index on this server.
    pub applied_index: u64,
}

// ---- servers (`drover server …`, `drover operator …`) ----

/// Who a server is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// Raft id.
    pub server_id: u64,
    /// Advertised address.
    pub address: String,
}

/// One member, as `drover server members` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft id.
    pub server_id: u64,
    /// Address.
    pub address: String,
    /// `voter` or `learner`.
    pub role: String,
    /// Whether it is the leader.
    pub leader: bool,
    /// The last log index the leader knows it has (leader's view).
    pub matched_index: Option<u64>,
    /// The drover version it runs (`None`: it did not answer, or is older
    /// than the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The commit it was built from, when the build recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// One server's view of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStatus {
    /// Raft id.
    pub server_id: u64,
    /// Address.
    pub address: String,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub raft_state: String,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Raft term.
    pub term: u64,
    /// Last index in its log.
    pub last_log_index: u64,
    /// Last index applied to its state.
    pub applied_index: u64,
    /// Entries kept in its log (bounded by snapshots).
    pub num_log_entries: u64,
    /// Agents connected to it.
    pub num_agents: usize,
    /// Free bytes on the file system of its data directory.
    pub disk_free_bytes: u64,
    /// Size of that file system.
    pub disk_total_bytes: u64,
    /// Problems of its log index (a damaged hourly partition moved aside,
    /// an index that cannot be opened), in words starting with "its".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_problems: Vec<String>,
    /// Set while a write of its Raft data waits for disk space: what the
    /// disk said, and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_write_stalled: Option<String>,
    /// The drover version it runs (empty from a server older than the field).
    #[serde(default)]
    pub version: String,
    /// The commit it was built from, when the build recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// One line of `drover server health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// Raft id.
    pub server_id: u64,
    /// Address.
    pub address: String,
    /// Whether it answered.
    pub up: bool,
    /// Its status, when it answered.
    pub status: Option<LocalStatus>,
    /// How far its applied index is behind the leader's last log index.
    pub lag: Option<u64>,
}

/// `drover server health`: the operators' checklist in one report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHealth {
    /// The leader, when there is one.
    pub leader_id: Option<u64>,
    /// Every member.
    pub servers: Vec<ServerHealth>,
    /// What is wrong, in words; empty when healthy.
    pub problems: Vec<String>,
}

/// Which log records a search, count, histogram or tail looks at: the query
/// string of `GET /v1/logs/...`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// The query (see docs/logs.md); empty matches every record.
    #[serde(default)]
    pub q: String,
    /// Only records at or after: a duration back from now (`6h`), an RFC
    /// 3339 time, or nanoseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only records before (same forms as `since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only records of the nodes matching this node filter (docs/nodes.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Answer from this server's index alone (servers set it when they fan
    /// a query out to each other).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

/// Paging of `GET /v1/logs/search`, next to a [`LogQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    /// Records per page (default 100, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The field of `GET /v1/logs/count`, next to a [`LogQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCountBy {
    /// The field: `node`, `job`, `level`, `source`, or any extracted field.
    #[serde(default)]
    pub by: String,
    /// How many values (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<usize>,
}

/// The bucket width of `GET /v1/logs/histogram`, next to a [`LogQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInterval {
    /// Bucket width such as `5m` (default: about 60 buckets over the range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// One log record as the API returns it (the same type the index stores).
pub use drover_types::LogRecord;

/// `POST /v1/logs/import`: records as `GET /v1/logs/export` wrote them
/// (`drover logs import`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogImportRequest {
    /// The records, each keeping its `origin` and `seq`: one already
    /// stored is not stored again.
    pub records: Vec<LogRecord>,
    /// Keep the times the records carry (a restore, a replay). Without it
    /// the event-time rule applies with the import as the receive time
    /// (docs/logs.md, "Event time").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_timestamps: bool,
}

/// What `POST /v1/logs/import` did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogImportResponse {
    /// Records stored now.
    pub accepted: u64,
    /// Records this server already held (same `origin` and `seq`).
    pub duplicates: u64,
}

/// The header of `GET /v1/logs/export` that says how many records the
/// export holds (as counted when it started).
pub const LOG_EXPORT_TOTAL_HEADER: &str = "x-drover-log-records";

/// Answer to `GET /v1/logs/search`: newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSearchResponse {
    /// The page.
    pub records: Vec<LogRecord>,
    /// With `local`: the position of each record, for merging pages of
    /// several servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cursors: Vec<String>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// How many records match in all.
    pub total_matching: u64,
    /// Servers that did not answer: their records are missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    /// Hourly log partitions that could not be read (damaged, being moved
    /// aside): their records are missing. `server N: log partition NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// One value and its count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCount {
    /// The field's value.
    pub value: String,
    /// Matching records with that value.
    pub count: u64,
}

/// Answer to `GET /v1/logs/count`: largest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCountResponse {
    /// The field counted by.
    pub by: String,
    /// The top values.
    pub counts: Vec<LogCount>,
    /// Servers that did not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    /// Hourly log partitions that could not be read (damaged, being moved
    /// aside): their records are missing. `server N: log partition NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// One histogram bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBucket {
    /// Start of the bucket, nanoseconds since the epoch.
    pub start: i64,
    /// Matching records in it.
    pub count: u64,
}

/// Answer to `GET /v1/logs/histogram`: oldest first, empty buckets included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHistogramResponse {
    /// Bucket width in nanoseconds.
    pub interval_nanos: i64,
    /// The buckets.
    pub buckets: Vec<LogBucket>,
    /// Servers that did not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    /// Hourly log partitions that could not be read (damaged, being moved
    /// aside): their records are missing. `server N: log partition NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// One node's latest usage, for `GET /v1/nodes/usage` (`drover node top`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeUsageEntry {
    /// Node name.
    pub name: String,
    /// Host group.
    pub hostgroup: String,
    /// Environment.
    pub environment: String,
    /// Status (`ready`, `down`, …).
    pub status: String,
    /// The latest sample.
    pub usage: drover_types::usage::NodeSample,
}

/// `POST /v1/acl/bootstrap` and `POST /v1/acl/tokens`: a token just made,
/// with its secret (shown this once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The token (without its secret).
    pub token: TokenEntry,
    /// The secret: `X-Drover-Token` / `DROVER_TOKEN`.
    pub secret: String,
}

/// An ACL token as listed (never its secret nor its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// The public id.
    pub accessor: String,
    /// Who holds it.
    pub name: String,
    /// Its policies.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Whether it may do everything.
    #[serde(default)]
    pub management: bool,
    /// When it was made.
    pub created_at: drover_types::Timestamp,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<drover_types::Timestamp>,
}

impl From<&drover_types::acl::AclToken> for TokenEntry {
    fn from(token: &drover_types::acl::AclToken) -> Self {
        TokenEntry {
            accessor: token.accessor.clone(),
            name: token.name.clone(),
            policies: token.policies.clone(),
            management: token.management,
            created_at: token.created_at,
            expires_at: token.expires_at,
        }
    }
}

/// `POST /v1/acl/tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreateRequest {
    /// Who will hold it.
    pub name: String,
    /// Its policies.
    #[serde(default)]
    pub policies: Vec<String>,
    /// May do everything.
    #[serde(default)]
    pub management: bool,
    /// How long it works (`30d`); forever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// `PUT /v1/acl/policy/{name}`: the policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyApplyRequest {
    /// The file's name, for error positions.
    #[serde(default)]
    pub file_name: String,
    /// The file's text.
    pub source: String,
}

/// `POST /v1/acl/join-tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenCreateRequest {
    /// Globs of the host groups enrolled nodes may claim (any when empty).
    #[serde(default)]
    pub hostgroups: Vec<String>,
    /// How long the token works (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// How many nodes it may enrol (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// A token for servers (`drover server join-token create`): it gives
    /// a joining server the cluster CA.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server: bool,
}

/// A join token just made, with its text (shown this once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenCreated {
    /// The public id.
    pub accessor: String,
    /// `drover1.<CA sha256>.<secret>`: what `drover agent --join-token` takes.
    pub token: String,
    /// When it stops working.
    pub expires_at: drover_types::Timestamp,
}

/// A join token as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenEntry {
    /// The public id.
    pub accessor: String,
    /// Host group globs.
    #[serde(default)]
    pub hostgroups: Vec<String>,
    /// When it was made.
    pub created_at: drover_types::Timestamp,
    /// When it stops working.
    pub expires_at: drover_types::Timestamp,
    /// Enrolments allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// Enrolments made.
    pub uses: u32,
    /// Who made it.
    #[serde(default)]
    pub created_by: String,
    /// What it enrols.
    pub role: drover_types::acl::JoinRole,
}

impl From<&drover_types::acl::JoinToken> for JoinTokenEntry {
    fn from(token: &drover_types::acl::JoinToken) -> Self {
        JoinTokenEntry {
            accessor: token.accessor.clone(),
            hostgroups: token.hostgroups.clone(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            max_uses: token.max_uses,
            uses: token.uses,
            created_by: token.created_by.clone(),
            role: token.role,
        }
    }
}

/// `POST /v1/agent/enroll`: an agent's first start with a join token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The join token's secret (the last part of its text).
    pub secret: String,
    /// The node's name (what its certificate will prove).
    pub name: String,
    /// The host group it will claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostgroup: Option<String>,
    /// Its certificate request (PEM).
    pub csr: String,
}

/// The answer to an enrolment or a renewal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCertificateResponse {
    /// The node's certificate (PEM).
    pub certificate: String,
    /// The cluster CA (PEM).
    pub ca: String,
}

/// `POST /v1/agent/renew`: a new certificate for the calling node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// A certificate request for a new key (PEM).
    pub csr: String,
}

/// `GET /v1/audit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only events since: a duration back (`24h`) or an RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only events by this token name or accessor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Only events whose action is or starts with this (`exec`, `job.register`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only `ok`, `refused` or `failed` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// At most this many, the newest (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `POST /v1/operator/tls/join`: a server joining with a server join token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerJoinRequest {
    /// The join token's secret (the last part of its text).
    pub secret: String,
}

impl std::fmt::Debug for ServerJoinRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServerJoinRequest { .. }")
    }
}

/// The cluster CA, for a server that joined with a server join token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerJoinResponse {
    /// The CA certificate (PEM).
    pub ca: String,
    /// Its key (PEM).
    pub ca_key: String,
}

impl std::fmt::Debug for ServerJoinResponse {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServerJoinResponse { .. }")
    }
}

/// `POST /v1/operator/tls/rotate-ca`: start a rotation of the cluster CA,
/// to a CA the servers make (`{}`) or to the operator's next one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateCaRequest {
    /// The operator's CA to rotate to; without it the servers make one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_ca: Option<OperatorCaFiles>,
}

/// An operator's CA, as read from its two files by the CLI
/// (`rotate-ca --new-ca-cert FILE --new-ca-key FILE`). The servers check
/// it as they check `--tls-ca-cert/--tls-ca-key` at start.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCaFiles {
    /// The CA certificate (PEM); of several, the first is the CA's.
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
    /// The certificate file's path, to name it in messages.
    #[serde(default)]
    pub cert_file: String,
    /// The key file's path, to name it in messages.
    #[serde(default)]
    pub key_file: String,
    /// The key file's permission bits as read (`384` for 0600); a key
    /// file group or others may read or write is refused. Leave it out
    /// for a key that was never in a file.
    #[serde(default)]
    pub key_mode: Option<u32>,
}

impl std::fmt::Debug for OperatorCaFiles {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        formatter
            .debug_struct("OperatorCaFiles")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("key_mode", &self.key_mode)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/operator/tls` (and the answer of a rotation's start and
/// finish): the cluster's CAs and how far a rotation has got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsStatus {
    /// The CAs the cluster trusts, the issuing one first.
    pub cas: Vec<CaSummary>,
    /// The rotation in progress, if one is.
    #[serde(default)]
    pub rotation: Option<CaRotationStatus>,
}

/// One CA certificate the cluster trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaSummary {
    /// `current` (no rotation), `new` or `old` (during one).
    pub role: String,
    /// SHA-256 of the certificate, lowercase hex.
    pub fingerprint: String,
    /// Its subject, e.g. `CN=drover cluster CA drover`.
    pub subject: String,
    /// When it expires, Unix seconds.
    pub not_after: i64,
}

/// The progress of a CA rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRotationStatus {
    /// When it started, Unix milliseconds.
    pub started_at: i64,
    /// Who started it.
    pub started_by: String,
    /// Every server: whether it trusts the new CA and holds a certificate of it.
    pub servers: Vec<ServerCaStatus>,
    /// Live nodes (ready) that still hold a certificate of the old CA.
    pub nodes_on_old_ca: Vec<String>,
    /// Enrolled nodes that hold a certificate of the new CA.
    pub nodes_reissued: usize,
    /// Whether `drover operator tls rotate-ca --finish` would be accepted.
    pub ready_to_finish: bool,
}

/// A server's part in a CA rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCaStatus {
    /// Its Raft id.
    pub server_id: u64,
    /// Its address.
    pub address: String,
    /// It trusts the new CA.
    pub trusts_new: bool,
    /// Its own certificate was issued by the new CA.
    pub reissued: bool,
}

/// The health of one service instance in the catalogue: passing while its
/// allocation runs and every check of the service passes (or warns), or
/// the service has no check; critical otherwise (docs/services.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceHealth {
    /// Announced by DNS.
    Passing,
    /// Listed by the API, left out of DNS.
    #[default]
    Critical,
}

/// One instance of a service: one running allocation's registration of it
/// (`GET /v1/service/{name}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// The service's name, `${…}` references resolved.
    pub service: String,
    /// The allocation that runs it.
    pub alloc_id: AllocId,
    /// Its job.
    pub job_id: JobId,
    /// Its group.
    pub group: String,
    /// The task the service belongs to (a group-level service belongs to
    /// the group's first task).
    pub task: String,
    /// The node it runs on.
    pub node_id: NodeId,
    /// The node's name.
    pub node_name: String,
    /// The address it is announced on: the service's `address`, else the
    /// node's address.
    pub address: String,
    /// The port: the allocated port of the service's label, or its number;
    /// `None` for a service without a port.
    pub port: Option<u16>,
    /// `tags`, or `canary_tags` while the allocation is an unpromoted
    /// canary.
    pub tags: Vec<String>,
    /// The service's `meta`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Whether the allocation is an unpromoted canary.
    #[serde(default)]
    pub canary: bool,
    /// Passing or critical.
    pub health: ServiceHealth,
}

/// One service of `GET /v1/services`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceListEntry {
    /// The service's name.
    pub name: String,
    /// Its instances the caller may see.
    pub instances: usize,
    /// Those of them that pass their checks.
    pub healthy: usize,
    /// Every tag of those instances, sorted, once each.
    pub tags: Vec<String>,
}
