//! The URL space of the HTTP API, in one place.
//!
//! Every route is one constant here, written as the router's template
//! (`/v1/job/{job_id}`): the router registers it, the identity middleware
//! names its audit action by it, and the client, the agents and the servers
//! build their requests from it with [`fill`]. docs/api.md lists the same
//! routes for people.
//!
//! A placeholder `{name}` stands for one path segment and is filled
//! percent-encoded; `{*name}` (last only) stands for the rest of the path,
//! each of its segments percent-encoded and the slashes kept.

// Jobs.
/// `GET` the job list, `POST` a job.
pub const JOBS: &str = "/v1/jobs";
/// `GET` a job, `DELETE` (stop) it.
pub const JOB: &str = "/v1/job/{job_id}";
/// `GET` a job's status (blocking query).
pub const JOB_STATUS: &str = "/v1/job/{job_id}/status";
/// `GET` a job's allocations.
pub const JOB_ALLOCATIONS: &str = "/v1/job/{job_id}/allocations";
/// `GET` a job's evaluations.
pub const JOB_EVALUATIONS: &str = "/v1/job/{job_id}/evaluations";
/// `GET` a job's versions.
pub const JOB_VERSIONS: &str = "/v1/job/{job_id}/versions";
/// `POST` a dry run of a job.
pub const JOB_PLAN: &str = "/v1/job/{job_id}/plan";
/// `GET` a job's latest deployment.
pub const JOB_DEPLOYMENT: &str = "/v1/job/{job_id}/deployment";
/// `POST` promote a job's canaries.
pub const JOB_PROMOTE: &str = "/v1/job/{job_id}/promote";
/// `POST` revert a job to a version.
pub const JOB_REVERT: &str = "/v1/job/{job_id}/revert";
/// `POST` run a periodic job now.
pub const JOB_PERIODIC_FORCE: &str = "/v1/job/{job_id}/periodic/force";
/// Launch a child of a parameterized job (`drover job dispatch`).
pub const JOB_DISPATCH: &str = "/v1/job/{job_id}/dispatch";
/// `POST`: a new version of the job with one group's count changed
/// (`drover job scale`).
pub const JOB_SCALE: &str = "/v1/job/{job_id}/scale";
/// `POST`: restart the job's allocations in rolling batches
/// (`drover job restart`).
pub const JOB_RESTART: &str = "/v1/job/{job_id}/restart";

// Services (docs/services.md).
/// `GET` the services of the catalogue (blocking query).
pub const SERVICES: &str = "/v1/services";
/// `GET` a service's instances, `?tag=&healthy=true` (blocking query).
pub const SERVICE: &str = "/v1/service/{name}";

// Allocations and evaluations.
/// `GET` all allocations.
pub const ALLOCATIONS: &str = "/v1/allocations";
/// `GET` one allocation (by id or unique prefix).
pub const ALLOCATION: &str = "/v1/allocation/{alloc_id}";
/// `GET` an allocation's task logs.
pub const ALLOCATION_LOGS: &str = "/v1/allocation/{alloc_id}/logs";
/// `POST` restart an allocation's tasks in place (`drover alloc restart`).
pub const ALLOCATION_RESTART: &str = "/v1/allocation/{alloc_id}/restart";
/// `POST` send a signal to an allocation's tasks (`drover alloc signal`).
pub const ALLOCATION_SIGNAL: &str = "/v1/allocation/{alloc_id}/signal";
/// `POST` stop an allocation and replace it (`drover alloc stop`).
pub const ALLOCATION_STOP: &str = "/v1/allocation/{alloc_id}/stop";
/// `POST` run a command in a task's environment (`drover alloc exec`).
pub const ALLOCATION_EXEC: &str = "/v1/allocation/{alloc_id}/exec";
/// `GET` all evaluations.
pub const EVALUATIONS: &str = "/v1/evaluations";
/// `GET` one evaluation (by id or unique prefix).
pub const EVALUATION: &str = "/v1/evaluation/{eval_id}";

// Nodes.
/// `GET` the node list (`?filter=`).
pub const NODES: &str = "/v1/nodes";
/// `GET` the fleet's usage (`?filter=`).
pub const NODES_USAGE: &str = "/v1/nodes/usage";
/// `POST` label and meta changes to many nodes.
pub const NODES_UPDATE: &str = "/v1/nodes/update";
/// `POST` retire many nodes (drain, then out of scheduling and listings).
pub const NODES_RETIRE: &str = "/v1/nodes/retire";
/// `POST` forget many down or retired nodes.
pub const NODES_PURGE: &str = "/v1/nodes/purge";
/// `GET` the fleet's usage in the Prometheus text format.
pub const METRICS: &str = "/v1/metrics";
/// `GET` one node.
pub const NODE: &str = "/v1/node/{node}";
/// `POST` drain a node.
pub const NODE_DRAIN: &str = "/v1/node/{node}/drain";
/// `POST` a node's scheduling eligibility.
pub const NODE_ELIGIBILITY: &str = "/v1/node/{node}/eligibility";
/// `POST` a node's protection.
pub const NODE_PROTECTION: &str = "/v1/node/{node}/protection";
/// `GET` a node's change history.
pub const NODE_HISTORY: &str = "/v1/node/{node}/history";
/// `GET` a node's usage over the last 24 h, a point a minute (`?since=`).
pub const NODE_USAGE: &str = "/v1/node/{node}/usage";
/// `POST` revoke a node's certificate.
pub const NODE_REVOKE: &str = "/v1/node/{node}/revoke";
/// `GET` the machine workflows, `POST` a new one (docs/machines.md).
pub const WORKFLOWS: &str = "/v1/workflows";
/// `GET` one machine workflow.
pub const WORKFLOW: &str = "/v1/workflow/{id}";
/// `POST` cancel a machine workflow.
pub const WORKFLOW_CANCEL: &str = "/v1/workflow/{id}/cancel";
/// `POST` pause a machine workflow (no new node step starts).
pub const WORKFLOW_PAUSE: &str = "/v1/workflow/{id}/pause";
/// `POST` resume a paused machine workflow.
pub const WORKFLOW_RESUME: &str = "/v1/workflow/{id}/resume";
/// `GET` a node's console output, now, through its provider.
pub const NODE_CONSOLE: &str = "/v1/node/{node}/console";
/// `POST` a command to run on many nodes (`drover exec`).
pub const EXEC: &str = "/v1/exec";

// Status and agents.
/// `GET` the leader's address (open to anyone).
pub const STATUS_LEADER: &str = "/v1/status/leader";
/// `GET` the answering server itself.
pub const AGENT_SELF: &str = "/v1/agent/self";
/// `GET` the agent session (WebSocket upgrade).
pub const AGENT_SESSION: &str = "/v1/agent/session";
/// `POST` an agent's enrolment with a join token.
pub const AGENT_ENROLL: &str = "/v1/agent/enroll";
/// `POST` the renewal of a node certificate.
pub const AGENT_RENEW: &str = "/v1/agent/renew";

// Logs.
/// `GET` log search.
pub const LOGS_SEARCH: &str = "/v1/logs/search";
/// `GET` log counts.
pub const LOGS_COUNT: &str = "/v1/logs/count";
/// `GET` a log histogram.
pub const LOGS_HISTOGRAM: &str = "/v1/logs/histogram";
/// `GET` the live tail (newline-delimited JSON).
pub const LOGS_TAIL: &str = "/v1/logs/tail";
/// `GET` every matching record, oldest hour first (newline-delimited JSON).
pub const LOGS_EXPORT: &str = "/v1/logs/export";
/// `POST` records written by an export.
pub const LOGS_IMPORT: &str = "/v1/logs/import";

// Variables.
/// `GET` variables under a prefix (`?prefix=`).
pub const VARIABLES: &str = "/v1/vars";
/// `GET`, `PUT` or `DELETE` one variable.
pub const VARIABLE: &str = "/v1/var/{*path}";

// Operator.
/// `GET` the cluster's health.
pub const OPERATOR_HEALTH: &str = "/v1/operator/health";
/// `GET` the Raft members.
pub const OPERATOR_RAFT_MEMBERS: &str = "/v1/operator/raft/members";
/// `POST` add a server.
pub const OPERATOR_RAFT_JOIN: &str = "/v1/operator/raft/join";
/// `DELETE` remove a server.
pub const OPERATOR_RAFT_PEER: &str = "/v1/operator/raft/peer/{server_id}";
/// `GET` a snapshot of the state.
pub const OPERATOR_SNAPSHOT: &str = "/v1/operator/snapshot";
/// `POST` a snapshot to restore.
pub const OPERATOR_SNAPSHOT_RESTORE: &str = "/v1/operator/snapshot/restore";
/// `POST` a new server's join token for the cluster CA.
pub const OPERATOR_TLS_JOIN: &str = "/v1/operator/tls/join";
/// `GET` the cluster's CAs and the progress of a CA rotation.
pub const OPERATOR_TLS: &str = "/v1/operator/tls";
/// `POST` start a rotation of the cluster CA.
pub const OPERATOR_TLS_ROTATE_CA: &str = "/v1/operator/tls/rotate-ca";
/// `POST` finish the rotation of the cluster CA (drop the old CA).
pub const OPERATOR_TLS_ROTATE_CA_FINISH: &str = "/v1/operator/tls/rotate-ca/finish";

// Detect and react.
/// `GET` the applied site, `POST` a site.
pub const SITE: &str = "/v1/site";
/// `GET` active alerts and silences.
pub const ALERTS: &str = "/v1/alerts";
/// `GET` the alerts that fired most.
pub const ALERTS_TOP: &str = "/v1/alerts/top";
/// `POST` acknowledge an alert.
pub const ALERT_ACK: &str = "/v1/alert/ack";
/// `POST` a silence.
pub const SILENCES: &str = "/v1/silences";
/// `DELETE` a silence.
pub const SILENCE: &str = "/v1/silence/{id}";
/// `GET` the hammers.
pub const HAMMERS: &str = "/v1/hammers";
/// `GET` the hammer runs and refusals.
pub const HAMMERS_HISTORY: &str = "/v1/hammers/history";
/// `POST` pause or resume hammers.
pub const HAMMERS_PAUSE: &str = "/v1/hammers/pause";
/// `POST` approve a run waiting for approval.
pub const HAMMER_RUN_APPROVE: &str = "/v1/hammers/run/{run}/approve";
/// `POST` deny a run waiting for approval.
pub const HAMMER_RUN_DENY: &str = "/v1/hammers/run/{run}/deny";
/// `GET` a runbook's Markdown.
pub const RUNBOOK: &str = "/v1/runbook/{*name}";
/// `GET` notification deliveries.
pub const NOTIFICATIONS: &str = "/v1/notifications";
/// `POST` an Alertmanager's webhook.
pub const ALERTMANAGER_WEBHOOK: &str = "/v1/alertmanager/webhook";

// Access.
/// `POST` the first management token.
pub const ACL_BOOTSTRAP: &str = "/v1/acl/bootstrap";
/// `GET` the policies.
pub const ACL_POLICIES: &str = "/v1/acl/policies";
/// `GET`, `PUT` or `DELETE` one policy.
pub const ACL_POLICY: &str = "/v1/acl/policy/{name}";
/// `GET` the tokens, `POST` a token.
pub const ACL_TOKENS: &str = "/v1/acl/tokens";
/// `GET` the caller's own token.
pub const ACL_TOKEN_SELF: &str = "/v1/acl/token/self";
/// `DELETE` (revoke) a token.
pub const ACL_TOKEN: &str = "/v1/acl/token/{accessor}";
/// `GET` the join tokens, `POST` a join token.
pub const ACL_JOIN_TOKENS: &str = "/v1/acl/join-tokens";
/// `DELETE` a join token.
pub const ACL_JOIN_TOKEN: &str = "/v1/acl/join-token/{accessor}";
/// `GET` the audit log.
pub const AUDIT: &str = "/v1/audit";

// Between servers (server certificates only).
/// `POST` a Raft append.
pub const INTERNAL_RAFT_APPEND: &str = "/v1/internal/raft/append";
/// `POST` a Raft vote.
pub const INTERNAL_RAFT_VOTE: &str = "/v1/internal/raft/vote";
/// `POST` a Raft pre-vote.
pub const INTERNAL_RAFT_PRE_VOTE: &str = "/v1/internal/raft/pre-vote";
/// `POST` a Raft snapshot.
pub const INTERNAL_RAFT_SNAPSHOT: &str = "/v1/internal/raft/snapshot";
/// `POST` a command for the leader to propose.
pub const INTERNAL_PROPOSE: &str = "/v1/internal/propose";
/// `POST` agents' heartbeats relayed to the leader.
pub const INTERNAL_HEARTBEATS: &str = "/v1/internal/heartbeats";
/// `GET` the usage of the agents connected to a server.
pub const INTERNAL_USAGE: &str = "/v1/internal/usage";
/// `GET` the three figures of every node connected to a server (the node table).
pub const INTERNAL_USAGE_SUMMARY: &str = "/v1/internal/usage-summary";
/// `GET` the usage of one agent connected to a server.
pub const INTERNAL_NODE_USAGE: &str = "/v1/internal/usage/{node_id}";
/// `GET` the usage history one server kept of a node (`?since_ms=`).
pub const INTERNAL_NODE_USAGE_HISTORY: &str = "/v1/internal/usage/{node_id}/history";
/// `GET` a server's identity.
pub const INTERNAL_IDENTITY: &str = "/v1/internal/identity";
/// `POST` a server's request to join.
pub const INTERNAL_JOIN: &str = "/v1/internal/join";
/// `POST` a read index from the leader.
pub const INTERNAL_READ_INDEX: &str = "/v1/internal/read-index";
/// `GET` a server's own status.
pub const INTERNAL_STATUS: &str = "/v1/internal/status";
/// `GET` the new CA (certificate and key) of a rotation in progress, from another server.
pub const INTERNAL_TLS_ROTATION_CA: &str = "/v1/internal/tls/rotation-ca";
/// `POST` a copy of log lines another server received, to keep (log replication).
pub const INTERNAL_LOG_REPLICA: &str = "/v1/internal/logs/replica";
/// `POST` a request for an agent connected to this server, on behalf of
/// a peer that was asked (`alloc restart`, `signal`, `exec`).
pub const INTERNAL_AGENT_REQUEST: &str = "/v1/internal/agent-request";

// The dashboard (HTML, served by every server; docs/dashboard.md).
/// `GET` redirects to the dashboard.
pub const UI_ROOT: &str = "/";
/// `GET` the overview.
pub const UI: &str = "/ui/";
/// `GET` the login form, `POST` a token (sets the session cookie).
pub const UI_LOGIN: &str = "/ui/login";
/// `POST` forget the session cookie.
pub const UI_LOGOUT: &str = "/ui/logout";
/// `GET` the node table (`?filter=&sort=`).
pub const UI_NODES: &str = "/ui/nodes";
/// `GET` one node.
pub const UI_NODE: &str = "/ui/node/{node}";
/// `GET` the job list.
pub const UI_JOBS: &str = "/ui/jobs";
/// `GET` one job (`?version=N`).
pub const UI_JOB: &str = "/ui/job/{job_id}";
/// `POST` promote a job's canaries (a form).
pub const UI_JOB_PROMOTE: &str = "/ui/job/{job_id}/promote";
/// The dashboard's revert button on a job page (`version=N`).
pub const UI_JOB_REVERT: &str = "/ui/job/{job_id}/revert";
/// `GET` one allocation.
pub const UI_ALLOC: &str = "/ui/alloc/{alloc_id}";
/// `GET` a task's output (`?task=&type=stdout|stderr`), as text.
pub const UI_ALLOC_OUTPUT: &str = "/ui/alloc/{alloc_id}/output";
/// `GET` log search (`?q=&since=&until=&cursor=&count_by=`).
pub const UI_LOGS: &str = "/ui/logs";
/// `GET` matching log lines as they arrive (`?q=`), the live tail of the log page.
pub const UI_LOGS_TAIL: &str = "/ui/logs/tail";
/// The "here or everywhere?" switch of a live-tailed line: a redirect to
/// the search for lines like it.
pub const UI_LOGS_LIKE: &str = "/ui/logs/like";
/// `GET` alerts, silences and what fires most.
pub const UI_ALERTS: &str = "/ui/alerts";
/// `POST` acknowledge an alert (a form).
pub const UI_ALERT_ACK: &str = "/ui/alerts/ack";
/// `POST` silence an alert (a form: `matchers`, `duration`, `comment`).
pub const UI_ALERT_SILENCE: &str = "/ui/alerts/silence";
/// `POST` expire a silence now (a form).
pub const UI_SILENCE_EXPIRE: &str = "/ui/silence/{id}/expire";
/// `GET` hammers, their runs and refusals.
pub const UI_HAMMERS: &str = "/ui/hammers";
/// `POST` approve a hammer run (a form).
pub const UI_HAMMER_RUN_APPROVE: &str = "/ui/hammers/run/{run}/approve";
/// `POST` deny a hammer run (a form).
pub const UI_HAMMER_RUN_DENY: &str = "/ui/hammers/run/{run}/deny";
/// `GET` a runbook, by its alert rule or hammer.
pub const UI_RUNBOOK: &str = "/ui/runbook/{*name}";
/// `GET` the exec form; `POST` run it (`drover exec`).
pub const UI_EXEC: &str = "/ui/exec";
/// `GET` the dashboard's stylesheet and script.
pub const UI_ASSET: &str = "/ui/assets/{file}";

/// Every dashboard route, for checks that span them.
pub const UI_ALL: &[&str] = &[
    UI_ROOT,
    UI,
    UI_LOGIN,
    UI_LOGOUT,
    UI_NODES,
    UI_NODE,
    UI_JOBS,
    UI_JOB,
    UI_JOB_PROMOTE,
    UI_JOB_REVERT,
    UI_ALLOC,
    UI_ALLOC_OUTPUT,
    UI_LOGS,
    UI_LOGS_TAIL,
    UI_LOGS_LIKE,
    UI_ALERTS,
    UI_ALERT_ACK,
    UI_ALERT_SILENCE,
    UI_SILENCE_EXPIRE,
    UI_HAMMERS,
    UI_HAMMER_RUN_APPROVE,
    UI_HAMMER_RUN_DENY,
    UI_RUNBOOK,
    UI_EXEC,
    UI_ASSET,
];

/// Every route above, for checks that span them.
pub const ALL: &[&str] = &[
    JOBS,
    JOB,
    JOB_STATUS,
    JOB_ALLOCATIONS,
    JOB_EVALUATIONS,
    JOB_VERSIONS,
    JOB_PLAN,
    JOB_DEPLOYMENT,
    JOB_PROMOTE,
    JOB_REVERT,
    JOB_PERIODIC_FORCE,
    JOB_DISPATCH,
    JOB_SCALE,
    JOB_RESTART,
    SERVICES,
    SERVICE,
    ALLOCATIONS,
    ALLOCATION,
    ALLOCATION_LOGS,
    ALLOCATION_RESTART,
    ALLOCATION_SIGNAL,
    ALLOCATION_STOP,
    ALLOCATION_EXEC,
    EVALUATIONS,
    EVALUATION,
    NODES,
    NODES_USAGE,
    NODES_UPDATE,
    NODES_RETIRE,
    NODES_PURGE,
    METRICS,
    NODE,
    NODE_DRAIN,
    NODE_ELIGIBILITY,
    NODE_PROTECTION,
    NODE_HISTORY,
    NODE_USAGE,
    NODE_REVOKE,
    WORKFLOWS,
    WORKFLOW,
    WORKFLOW_CANCEL,
    WORKFLOW_PAUSE,
    WORKFLOW_RESUME,
    NODE_CONSOLE,
    EXEC,
    STATUS_LEADER,
    AGENT_SELF,
    AGENT_SESSION,
    AGENT_ENROLL,
    AGENT_RENEW,
    LOGS_SEARCH,
    LOGS_COUNT,
    LOGS_HISTOGRAM,
    LOGS_TAIL,
    LOGS_EXPORT,
    LOGS_IMPORT,
    VARIABLES,
    VARIABLE,
    OPERATOR_HEALTH,
    OPERATOR_RAFT_MEMBERS,
    OPERATOR_RAFT_JOIN,
    OPERATOR_RAFT_PEER,
    OPERATOR_SNAPSHOT,
    OPERATOR_SNAPSHOT_RESTORE,
    OPERATOR_TLS_JOIN,
    OPERATOR_TLS,
    OPERATOR_TLS_ROTATE_CA,
    OPERATOR_TLS_ROTATE_CA_FINISH,
    SITE,
    ALERTS,
    ALERTS_TOP,
    ALERT_ACK,
    SILENCES,
    SILENCE,
    HAMMERS,
    HAMMERS_HISTORY,
    HAMMERS_PAUSE,
    HAMMER_RUN_APPROVE,
    HAMMER_RUN_DENY,
    RUNBOOK,
    NOTIFICATIONS,
    ALERTMANAGER_WEBHOOK,
    ACL_BOOTSTRAP,
    ACL_POLICIES,
    ACL_POLICY,
    ACL_TOKENS,
    ACL_TOKEN_SELF,
    ACL_TOKEN,
    ACL_JOIN_TOKENS,
    ACL_JOIN_TOKEN,
    AUDIT,
    INTERNAL_RAFT_APPEND,
    INTERNAL_RAFT_VOTE,
    INTERNAL_RAFT_PRE_VOTE,
    INTERNAL_RAFT_SNAPSHOT,
    INTERNAL_PROPOSE,
    INTERNAL_HEARTBEATS,
    INTERNAL_USAGE,
    INTERNAL_USAGE_SUMMARY,
    INTERNAL_NODE_USAGE,
    INTERNAL_NODE_USAGE_HISTORY,
    INTERNAL_IDENTITY,
    INTERNAL_JOIN,
    INTERNAL_READ_INDEX,
    INTERNAL_STATUS,
    INTERNAL_TLS_ROTATION_CA,
    INTERNAL_LOG_REPLICA,
    INTERNAL_AGENT_REQUEST,
];

/// A route's path with its placeholders filled in order: `{name}` with one
/// percent-encoded segment, `{*name}` with the rest (each segment encoded,
/// slashes kept). Placeholders without a value are left as they are.
///
/// ```
/// use drover_proto::paths::{self, fill};
///
/// assert_eq!(fill(paths::JOB_STATUS, &["web api"]), "/v1/job/web%20api/status");
/// assert_eq!(fill(paths::VARIABLE, &["app/db password"]), "/v1/var/app/db%20password");
/// ```
pub fn fill(template: &str, values: &[&str]) -> String {
    let mut path = String::with_capacity(template.len() + values.iter().map(|value| value.len()).sum::<usize>());
    let mut values = values.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|close| open + close) else { break };
        path.push_str(&rest[..open]);
        let placeholder = &rest[open + 1..close];
        match values.next() {
            Some(value) if placeholder.starts_with('*') => path.push_str(&encode_path(value)),
            Some(value) => path.push_str(&encode(value)),
            None => path.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    path
}

/// Percent-encodes one path segment (everything but letters, digits and
/// `-_.~`).
pub fn encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Percent-encodes each segment of a slash-separated path.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_in_order_and_encode() {
        assert_eq!(fill(JOB, &["a/b"]), "/v1/job/a%2Fb");
        assert_eq!(fill(HAMMER_RUN_APPROVE, &["r1"]), "/v1/hammers/run/r1/approve");
        assert_eq!(fill(RUNBOOK, &["disk/full.md"]), "/v1/runbook/disk/full.md");
        assert_eq!(fill(JOBS, &["ignored"]), "/v1/jobs");
        assert_eq!(fill(JOB, &[]), JOB);
        assert_eq!(fill("/v1/{unclosed", &["x"]), "/v1/{unclosed");
    }

    #[test]
    fn every_dashboard_route_is_under_ui_and_unique() {
        let unique: std::collections::BTreeSet<_> = UI_ALL.iter().collect();
        assert_eq!(unique.len(), UI_ALL.len());
        assert!(UI_ALL.iter().all(|path| *path == UI_ROOT || path.starts_with("/ui/")));
    }

    #[test]
    fn every_route_is_under_v1_and_unique() {
        let all = ALL;
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert!(all.iter().all(|path| path.starts_with("/v1/")));
    }
}
