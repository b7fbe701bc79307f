//! Route tables.

mod acl;
mod allocs;
mod internal;
mod jobs;
mod logs;
mod nodes;
mod operator;
mod react;
mod session;
mod variables;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
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
        .route("/v1/jobs", get(jobs::list).post(jobs::register).layer(job_body_limit()))
        .route("/v1/job/{job_id}", get(jobs::get).delete(jobs::deregister))
        .route("/v1/job/{job_id}/status", get(jobs::status))
        .route("/v1/job/{job_id}/allocations", get(jobs::allocations))
        .route("/v1/job/{job_id}/evaluations", get(jobs::evaluations))
        .route("/v1/job/{job_id}/versions", get(jobs::versions))
        .route("/v1/job/{job_id}/plan", post(jobs::plan).layer(job_body_limit()))
        .route("/v1/job/{job_id}/deployment", get(jobs::deployment))
        .route("/v1/job/{job_id}/promote", post(jobs::promote))
        .route("/v1/job/{job_id}/revert", post(jobs::revert))
        .route("/v1/job/{job_id}/periodic/force", post(jobs::force_periodic))
        .route("/v1/allocations", get(allocs::list))
        .route("/v1/allocation/{alloc_id}", get(allocs::get))
        .route("/v1/allocation/{alloc_id}/logs", get(allocs::logs))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/metrics", get(nodes::metrics))
        .route("/v1/nodes/usage", get(nodes::fleet_usage))
        .route("/v1/node/{node}", get(nodes::get))
        .route("/v1/node/{node}/drain", post(nodes::drain))
        .route("/v1/node/{node}/eligibility", post(nodes::eligibility))
        .route("/v1/node/{node}/protection", post(nodes::protection))
        .route("/v1/node/{node}/history", get(nodes::history))
        .route("/v1/nodes/update", post(nodes::update))
        .route(drover_server::exec::EXEC_PATH, post(nodes::exec))
        .route("/v1/evaluations", get(nodes::list_evals))
        .route("/v1/evaluation/{eval_id}", get(nodes::get_eval))
        .route("/v1/status/leader", get(nodes::leader))
        .route("/v1/agent/self", get(nodes::agent_self))
        .route("/v1/agent/session", get(session::upgrade))
        .route(drover_server::logs::paths::SEARCH, get(logs::search))
        .route(drover_server::logs::paths::COUNT, get(logs::count))
        .route(drover_server::logs::paths::HISTOGRAM, get(logs::histogram))
        .route(drover_server::logs::paths::TAIL, get(logs::tail))
        .route("/v1/vars", get(variables::list))
        .route("/v1/var/{*path}", get(variables::get).put(variables::put).delete(variables::delete))
        .route("/v1/operator/health", get(operator::health))
        .route("/v1/operator/raft/members", get(operator::members))
        .route("/v1/operator/raft/join", post(operator::join))
        .route(&format!("{}/{{server_id}}", drover_server::cluster::paths::PEER), delete(operator::remove_peer))
        .route("/v1/operator/snapshot", get(operator::save_snapshot))
        .route("/v1/site", get(react::site).post(react::apply))
        .route("/v1/alerts", get(react::alerts))
        .route("/v1/alerts/top", get(react::top))
        .route("/v1/alert/ack", post(react::ack))
        .route("/v1/silences", post(react::silence))
        .route("/v1/silence/{id}", delete(react::unsilence))
        .route("/v1/hammers", get(react::hammers))
        .route("/v1/hammers/history", get(react::history))
        .route("/v1/hammers/pause", post(react::pause))
        .route("/v1/hammers/run/{run}/approve", post(react::approve))
        .route("/v1/hammers/run/{run}/deny", post(react::deny))
        .route("/v1/runbook/{*name}", get(react::runbook))
        .route("/v1/notifications", get(react::notifications))
        .route("/v1/alertmanager/webhook", post(react::alertmanager_webhook))
        .route("/v1/acl/bootstrap", post(acl::bootstrap))
        .route("/v1/acl/policies", get(acl::policies))
        .route("/v1/acl/policy/{name}", get(acl::policy).put(acl::apply_policy).delete(acl::delete_policy))
        .route("/v1/acl/tokens", get(acl::tokens).post(acl::create_token))
        .route("/v1/acl/token/self", get(acl::token_self))
        .route("/v1/acl/token/{accessor}", delete(acl::revoke_token))
        .route("/v1/acl/join-tokens", get(acl::join_tokens).post(acl::create_join_token))
        .route("/v1/acl/join-token/{accessor}", delete(acl::delete_join_token))
        .route("/v1/node/{node}/revoke", post(acl::revoke_node))
        .route("/v1/audit", get(acl::audit))
        .route("/v1/agent/enroll", post(acl::enroll))
        .route("/v1/agent/renew", post(acl::renew))
        .route(drover_server::security::SERVER_JOIN_PATH, post(acl::server_join))
}

pub(crate) fn internal_routes() -> Router<AppState> {
    Router::new()
        .route(drover_server::network::paths::APPEND, post(internal::append))
        .route(drover_server::network::paths::VOTE, post(internal::vote))
        .route(drover_server::network::paths::PRE_VOTE, post(internal::pre_vote))
        .route(drover_server::network::paths::SNAPSHOT, post(internal::snapshot))
        .route("/v1/internal/propose", post(internal::propose))
        .route("/v1/internal/heartbeats", post(internal::heartbeats))
        .route(drover_server::usage::USAGE_PATH, get(nodes::local_usage))
        .route(&format!("{}/{{node_id}}", drover_server::usage::USAGE_PATH), get(nodes::usage))
        .route(drover_server::cluster::paths::IDENTITY, get(operator::identity))
        .route(drover_server::cluster::paths::JOIN, post(operator::internal_join))
        .route(drover_server::cluster::paths::READ_INDEX, post(operator::read_index))
        .route(drover_server::operator::STATUS_PATH, get(operator::local_status))
        // Under the internal body limit: a snapshot can be large.
        .route("/v1/operator/snapshot/restore", post(operator::restore_snapshot))
}
