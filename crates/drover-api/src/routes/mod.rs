//! Route tables.

mod acl;
mod allocs;
mod internal;
mod jobs;
mod logs;
mod machines;
mod node_usage;
mod nodes;
mod operator;
mod react;
mod services;
mod session;
pub(crate) mod ui;
mod variables;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use drover_proto::paths;
use tokio::sync::mpsc;

use crate::AppState;

/// A newline-delimited JSON answer, one line per item received.
fn ndjson<T: serde::Serialize + Send + 'static>(receiver: mpsc::Receiver<T>) -> Response {
    let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let item = receiver.recv().await?;
        let mut line = serde_json::to_vec(&item).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line)), receiver))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

/// A job's body is held to the size of a definition file (docs/api.md,
/// "Limits"), below the general limit of public bodies.
fn job_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(usize::try_from(drover_types::validate::limits::MAX_DEFINITION_BYTES).unwrap_or(usize::MAX))
}

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new()
        .route(paths::JOBS, get(jobs::list).post(jobs::register).layer(job_body_limit()))
        .route(paths::JOB, get(jobs::get).delete(jobs::deregister))
        .route(paths::JOB_STATUS, get(jobs::status))
        .route(paths::JOB_ALLOCATIONS, get(jobs::allocations))
        .route(paths::JOB_EVALUATIONS, get(jobs::evaluations))
        .route(paths::JOB_VERSIONS, get(jobs::versions))
        .route(paths::JOB_PLAN, post(jobs::plan).layer(job_body_limit()))
        .route(paths::JOB_DEPLOYMENT, get(jobs::deployment))
        .route(paths::JOB_PROMOTE, post(jobs::promote))
        .route(paths::JOB_REVERT, post(jobs::revert))
        .route(paths::JOB_PERIODIC_FORCE, post(jobs::force_periodic))
        .route(paths::JOB_DISPATCH, post(jobs::dispatch))
        .route(paths::JOB_SCALE, post(jobs::scale))
        .route(paths::JOB_RESTART, post(allocs::restart_job))
        .route(paths::SERVICES, get(services::list))
        .route(paths::SERVICE, get(services::instances))
        .route(paths::ALLOCATIONS, get(allocs::list))
        .route(paths::ALLOCATION, get(allocs::get))
        .route(paths::ALLOCATION_LOGS, get(allocs::logs))
        .route(paths::ALLOCATION_RESTART, post(allocs::restart))
        .route(paths::ALLOCATION_SIGNAL, post(allocs::signal))
        .route(paths::ALLOCATION_STOP, post(allocs::stop))
        .route(paths::ALLOCATION_EXEC, post(allocs::exec))
        .route(paths::NODES, get(nodes::list))
        .route(paths::METRICS, get(nodes::metrics))
        .route(paths::NODES_USAGE, get(nodes::fleet_usage))
        .route(paths::NODE, get(nodes::get))
        .route(paths::NODE_DRAIN, post(nodes::drain))
        .route(paths::NODE_ELIGIBILITY, post(nodes::eligibility))
        .route(paths::NODE_PROTECTION, post(nodes::protection))
        .route(paths::NODE_HISTORY, get(nodes::history))
        .route(paths::NODE_USAGE, get(node_usage::history))
        .route(paths::NODES_UPDATE, post(nodes::update))
        .route(paths::NODES_RETIRE, post(nodes::retire))
        .route(paths::NODES_PURGE, post(nodes::purge))
        .route(paths::WORKFLOWS, get(machines::list).post(machines::start))
        .route(paths::WORKFLOW, get(machines::get))
        .route(paths::WORKFLOW_CANCEL, post(machines::cancel))
        .route(paths::WORKFLOW_PAUSE, post(machines::pause))
        .route(paths::WORKFLOW_RESUME, post(machines::resume))
        .route(paths::NODE_CONSOLE, get(machines::console))
        .route(paths::EXEC, post(nodes::exec))
        .route(paths::EVALUATIONS, get(nodes::list_evals))
        .route(paths::EVALUATION, get(nodes::get_eval))
        .route(paths::STATUS_LEADER, get(nodes::leader))
        .route(paths::AGENT_SELF, get(nodes::agent_self))
        .route(paths::AGENT_SESSION, get(session::upgrade))
        .route(paths::LOGS_SEARCH, get(logs::search))
        .route(paths::LOGS_COUNT, get(logs::count))
        .route(paths::LOGS_HISTOGRAM, get(logs::histogram))
        .route(paths::LOGS_TAIL, get(logs::tail))
        .route(paths::LOGS_EXPORT, get(logs::export))
        .route(paths::LOGS_IMPORT, post(logs::import))
        .route(paths::VARIABLES, get(variables::list))
        .route(paths::VARIABLE, get(variables::get).put(variables::put).delete(variables::delete))
        .route(paths::OPERATOR_HEALTH, get(operator::health))
        .route(paths::OPERATOR_RAFT_MEMBERS, get(operator::members))
        .route(paths::OPERATOR_RAFT_JOIN, post(operator::join))
        .route(paths::OPERATOR_RAFT_PEER, delete(operator::remove_peer))
        .route(paths::OPERATOR_SNAPSHOT, get(operator::save_snapshot))
        // A public write, audited with its commit like the others, under
        // the internal body limit: a snapshot can be large.
        .route(
            paths::OPERATOR_SNAPSHOT_RESTORE,
            post(operator::restore_snapshot).layer(DefaultBodyLimit::max(crate::INTERNAL_BODY_LIMIT)),
        )
        .route(paths::SITE, get(react::site).post(react::apply))
        .route(paths::ALERTS, get(react::alerts))
        .route(paths::ALERTS_TOP, get(react::top))
        .route(paths::ALERT_ACK, post(react::ack))
        .route(paths::SILENCES, post(react::silence))
        .route(paths::SILENCE, delete(react::unsilence))
        .route(paths::HAMMERS, get(react::hammers))
        .route(paths::HAMMERS_HISTORY, get(react::history))
        .route(paths::HAMMERS_PAUSE, post(react::pause))
        .route(paths::HAMMER_RUN_APPROVE, post(react::approve))
        .route(paths::HAMMER_RUN_DENY, post(react::deny))
        .route(paths::RUNBOOK, get(react::runbook))
        .route(paths::NOTIFICATIONS, get(react::notifications))
        .route(paths::ALERTMANAGER_WEBHOOK, post(react::alertmanager_webhook))
        .route(paths::ACL_BOOTSTRAP, post(acl::bootstrap))
        .route(paths::ACL_POLICIES, get(acl::policies))
        .route(paths::ACL_POLICY, get(acl::policy).put(acl::apply_policy).delete(acl::delete_policy))
        .route(paths::ACL_TOKENS, get(acl::tokens).post(acl::create_token))
        .route(paths::ACL_TOKEN_SELF, get(acl::token_self))
        .route(paths::ACL_TOKEN, delete(acl::revoke_token))
        .route(paths::ACL_JOIN_TOKENS, get(acl::join_tokens).post(acl::create_join_token))
        .route(paths::ACL_JOIN_TOKEN, delete(acl::delete_join_token))
        .route(paths::NODE_REVOKE, post(acl::revoke_node))
        .route(paths::AUDIT, get(acl::audit))
        .route(paths::AGENT_ENROLL, post(acl::enroll))
        .route(paths::AGENT_RENEW, post(acl::renew))
        .route(paths::OPERATOR_TLS_JOIN, post(acl::server_join))
        .route(paths::OPERATOR_TLS, get(operator::tls_status))
        .route(paths::OPERATOR_TLS_ROTATE_CA, post(operator::rotate_ca))
        .route(paths::OPERATOR_TLS_ROTATE_CA_FINISH, post(operator::finish_ca_rotation))
        .merge(ui::routes())
}

pub(crate) fn internal_routes() -> Router<AppState> {
    Router::new()
        .route(paths::INTERNAL_RAFT_APPEND, post(internal::append))
        .route(paths::INTERNAL_RAFT_VOTE, post(internal::vote))
        .route(paths::INTERNAL_RAFT_PRE_VOTE, post(internal::pre_vote))
        .route(paths::INTERNAL_RAFT_SNAPSHOT, post(internal::snapshot))
        .route(paths::INTERNAL_PROPOSE, post(internal::propose))
        .route(paths::INTERNAL_HEARTBEATS, post(internal::heartbeats))
        .route(paths::INTERNAL_USAGE, get(nodes::local_usage))
        .route(paths::INTERNAL_USAGE_SUMMARY, get(nodes::local_usage_summary))
        .route(paths::INTERNAL_NODE_USAGE, get(nodes::usage))
        .route(paths::INTERNAL_NODE_USAGE_HISTORY, get(node_usage::local_history))
        .route(paths::INTERNAL_IDENTITY, get(operator::identity))
        .route(paths::INTERNAL_JOIN, post(operator::internal_join))
        .route(paths::INTERNAL_READ_INDEX, post(operator::read_index))
        .route(paths::INTERNAL_STATUS, get(operator::local_status))
        .route(paths::INTERNAL_TLS_ROTATION_CA, get(operator::rotation_ca))
        .route(paths::INTERNAL_LOG_REPLICA, post(internal::log_replica))
        .route(paths::INTERNAL_AGENT_REQUEST, post(internal::agent_request))
}
