//! `/v1/nodes`, `/v1/node/{id}`, `/v1/evaluations`, `/v1/status/*`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use drover_proto::api::{
    AllocListEntry, DrainRequest, EligibilityRequest, ExecRequest, NodeListEntry, NodePurgeRequest, NodeRetireRequest,
    NodeSelectionResponse, NodeStatusResponse, NodeUpdateRequest, NodeUpdateResponse, NodeUsageEntry,
    ProtectionRequest, ServerInfo,
};
use drover_types::{DurationSpec, Evaluation, Node, NodeChange};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiResult, AppState, ReadOptions, with_index};
use drover_types::acl::{AclScope, Capability};

/// Facts shown in node lists (the rest is in `GET /v1/node/{id}`).
const LISTED_FACTS: [&str; 7] =
    ["os.name", "os.version", "kernel.version", "cpu.arch", "cpu.numcores", "memory.totalbytes", "unique.hostname"];

/// `?filter=EXPR` (and, for the node list, `&all=true`: retired nodes
/// too), next to the read options.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct NodeFilter {
    filter: Option<String>,
    #[serde(default)]
    all: bool,
}

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(options): ApiQuery<ReadOptions>,
    ApiQuery(NodeFilter { filter, all }): ApiQuery<NodeFilter>,
) -> ApiResult<Response> {
    let (index, entries) = list_entries_of(&app, &caller, &options, filter.as_deref(), all).await?;
    Ok(with_index(index, Json(entries)))
}

/// The nodes matching `filter` that the caller may see, and the index of
/// the state read (`GET /v1/nodes` and the dashboard's node table);
/// retired nodes are left out.
pub(super) async fn list_entries(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    filter: Option<&str>,
) -> ApiResult<(u64, Vec<NodeListEntry>)> {
    list_entries_of(app, caller, options, filter, false).await
}

/// [`list_entries`], with the retired nodes when `all`. One line per node
/// name: a twin left by an older state never shows.
async fn list_entries_of(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    filter: Option<&str>,
    all: bool,
) -> ApiResult<(u64, Vec<NodeListEntry>)> {
    caller.require(AclScope::Node, Capability::Read)?;
    let filter = drover_server::parse_node_filter(filter)?;
    let state = options.read(&app.server, |state| state.table_indexes().nodes).await?;
    let entries: Vec<NodeListEntry> = state
        .nodes()
        .filter(|node| (all || node.retired.is_none()) && state.holds_its_name(node))
        .filter(|node| filter.as_ref().is_none_or(|filter| filter.matches(node.as_ref())))
        .filter(|node| caller.allows(AclScope::Node, Capability::Read, &node.hostgroup))
        .map(|node| NodeListEntry {
            id: node.id.clone(),
            name: node.name.clone(),
            status: node.display_status().to_owned(),
            hostgroup: node.hostgroup.clone(),
            environment: node.environment.clone(),
            owner: node.owner.clone(),
            zone: node.zone.clone(),
            protected: node.protected.is_some(),
            resources: node.resources,
            used: state.node_usage(&node.id),
            num_allocs: state.live_allocs_on_node(&node.id).count() as u32,
            attributes: LISTED_FACTS
                .iter()
                .filter_map(|fact| node.attributes.get(*fact).map(|value| ((*fact).to_owned(), value.clone())))
                .collect(),
            agent_version: node.agent_version.clone(),
            last_heartbeat: app.server.last_heartbeat(&node.id),
        })
        .collect();
    Ok((state.table_indexes().nodes, entries))
}

pub(super) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    let (index, response) = node_status(&app, &caller, &options, &node).await?;
    Ok(with_index(index, Json(response)))
}

/// One node as the caller may see it, and the index of the state read
/// (`GET /v1/node/{node}` and the dashboard's node page).
pub(super) async fn node_status(
    app: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    node: &str,
) -> ApiResult<(u64, NodeStatusResponse)> {
    caller.require(AclScope::Node, Capability::Read)?;
    let state =
        options.read(&app.server, |state| state.table_indexes().nodes.max(state.table_indexes().allocs)).await?;
    let node = state.resolve_node(node)?;
    caller.require_on(AclScope::Node, Capability::Read, &node.hostgroup)?;
    let allocs: Vec<AllocListEntry> =
        state.live_allocs_on_node(&node.id).map(|alloc| AllocListEntry::from(alloc.as_ref())).collect();
    let response = NodeStatusResponse {
        node: Node::clone(node),
        used: state.node_usage(&node.id),
        allocs,
        last_heartbeat: app.server.last_heartbeat(&node.id),
        usage: app.server.node_usage_anywhere(&node.id).await,
    };
    let indexes = state.table_indexes();
    Ok((indexes.nodes.max(indexes.allocs), response))
}

pub(super) async fn list_evals(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = options.read(&app.server, |state| state.table_indexes().evals).await?;
    let evals: Vec<Evaluation> = state
        .evals()
        .filter(|eval| caller.allows(AclScope::Job, Capability::Read, eval.job_id.as_str()))
        .map(|eval| Evaluation::clone(eval))
        .collect();
    Ok(with_index(state.table_indexes().evals, Json(evals)))
}

pub(super) async fn get_eval(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(eval_id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    let state = options.read(&app.server, |state| state.table_indexes().evals).await?;
    let eval = state.resolve_eval(&eval_id)?;
    caller.require_on(AclScope::Job, Capability::Read, eval.job_id.as_str())?;
    Ok(with_index(state.table_indexes().evals, Json(Evaluation::clone(eval))))
}

/// `GET /v1/status/leader`: open to every caller, as in Nomad (clients and
/// load balancers find the leader before they have a token).
pub(super) async fn leader(State(app): State<AppState>) -> ApiResult<Json<ServerInfo>> {
    Ok(Json(server_info(&app)))
}

pub(super) async fn agent_self(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ServerInfo>> {
    caller.require(AclScope::Operator, Capability::Read)?;
    Ok(Json(server_info(&app)))
}

fn server_info(app: &AppState) -> ServerInfo {
    let status = app.server.status();
    ServerInfo {
        server_id: status.server_id,
        address: status.address,
        leader_address: status.leader_address,
        leader_id: status.leader_id,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        applied_index: status.applied_index,
    }
}

pub(super) async fn drain(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
    ApiJson(request): ApiJson<DrainRequest>,
) -> ApiResult<Json<Node>> {
    require_on_node(&app, &caller, &node, Capability::Drain)?;
    let deadline = match &request.deadline {
        Some(text) => Some(
            text.parse::<DurationSpec>().map_err(|error| crate::ApiError::invalid(format!("deadline: {error}")))?.get(),
        ),
        None => None,
    };
    let request = drover_server::DrainRequest {
        deadline,
        ignore_system_jobs: request.ignore_system,
        disable: request.disable,
        reason: request.reason,
        by: caller.name.clone(),
    };
    Ok(Json(app.server.drain_node(&node, request).await?))
}

pub(super) async fn eligibility(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
    ApiJson(request): ApiJson<EligibilityRequest>,
) -> ApiResult<Json<Node>> {
    require_on_node(&app, &caller, &node, Capability::Update)?;
    Ok(Json(app.server.set_eligibility(&node, request.eligible, &caller.name).await?))
}

/// `POST /v1/nodes/update`: change the labels of many nodes (or preview).
pub(super) async fn update(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NodeUpdateRequest>,
) -> ApiResult<Json<NodeUpdateResponse>> {
    require_on_selection(
        &app,
        &caller,
        Selection { names: &request.nodes, filter: request.filter.as_deref(), dry_run: request.dry_run },
        Capability::Update,
    )
    .await?;
    Ok(Json(app.server.update_nodes(&request, &caller.name).await?))
}

/// `POST /v1/nodes/retire`: drain nodes, then keep them out of scheduling
/// and of the default node list (or preview which).
pub(super) async fn retire(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NodeRetireRequest>,
) -> ApiResult<Response> {
    require_on_selection(
        &app,
        &caller,
        Selection { names: &request.nodes, filter: request.filter.as_deref(), dry_run: request.dry_run },
        Capability::Drain,
    )
    .await?;
    let response = app.server.retire_nodes(&request, &caller.name).await?;
    let details = request.reason.clone().map(|reason| format!("reason: {reason}")).unwrap_or_default();
    Ok(with_selection_note(response, details))
}

/// `POST /v1/nodes/purge`: forget down or retired nodes entirely (or
/// check that they may be).
pub(super) async fn purge(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NodePurgeRequest>,
) -> ApiResult<Response> {
    require_on_selection(
        &app,
        &caller,
        Selection { names: &request.nodes, filter: None, dry_run: request.dry_run },
        Capability::Update,
    )
    .await?;
    let response = app.server.purge_nodes(&request).await?;
    Ok(with_selection_note(response, String::new()))
}

/// The answer of a retirement or purge, its audit event naming the nodes
/// (folded: `batch{00..09}`) and their ids.
fn with_selection_note(selection: NodeSelectionResponse, details: String) -> Response {
    let target = drover_filter::fold_names(&selection.nodes);
    let ids: Vec<&str> = selection.node_ids.iter().map(|id| id.as_str()).collect();
    let details = match (details.is_empty(), ids.is_empty()) {
        (_, true) => details,
        (true, false) => format!("node ids: {}", ids.join(", ")),
        (false, false) => format!("{details}; node ids: {}", ids.join(", ")),
    };
    crate::AuditNote { target: Some(target), details }.on(Json(selection).into_response())
}

/// `POST /v1/node/{node}/protection`: protect a node or lift it.
pub(super) async fn protection(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
    ApiJson(request): ApiJson<ProtectionRequest>,
) -> ApiResult<Json<Node>> {
    require_on_node(&app, &caller, &node, Capability::Protect)?;
    Ok(Json(app.server.set_protection(&node, request.protect, &request.reason, &caller.name).await?))
}

/// `GET /v1/node/{node}/history`: who changed what on a node, oldest first.
pub(super) async fn history(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
) -> ApiResult<Json<Vec<NodeChange>>> {
    require_on_node(&app, &caller, &node, Capability::Read)?;
    Ok(Json(app.server.node_history(&node).await?.1))
}

/// `POST /v1/exec`: run a command on many nodes; NDJSON [`ExecEvent`]s.
pub(super) async fn exec(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ExecRequest>,
) -> ApiResult<Response> {
    caller.require(AclScope::Node, Capability::Exec)?;
    let access = exec_access(&caller, &request);
    let root = |node: &Node| caller.allows(AclScope::Node, Capability::ExecAsRoot, &node.hostgroup);
    // Whether it may run as root is the server's decision, never the
    // caller's; a server relaying a request passes on its own decision.
    let relayed = caller.enforced() && matches!(caller.peer, drover_server::security::Peer::Server(_));
    let decided = ExecRequest { root_allowed: request.root_allowed || !relayed, ..request.clone() };
    let events = app.server.exec_allowed(decided, &access, &root).await?;
    // A part relayed by another server is audited there, with the whole.
    let events = if request.local { events } else { audit_results(&app, &caller, &request, events) };
    let mut response = super::ndjson(events);
    response.extensions_mut().insert(crate::AuditNote {
        target: Some(
            if request.nodes.is_empty() { String::new() } else { request.nodes.join(",") }
                + &request.filter.as_deref().map(|filter| format!(" filter: {filter}")).unwrap_or_default(),
        ),
        details: format!(
            "command: {}; user: {}",
            request.command.join(" "),
            request.user.as_deref().unwrap_or("(agent default)")
        ),
    });
    Ok(response)
}

/// Whether `caller` may run `request` on a node: `Some(true)`, or
/// `Some(false)` where it may see the node but not run there (reported
/// DENIED); `None` where it may not see it (left out, unless the caller
/// named it: then the name is not news, and it is DENIED).
pub(super) fn exec_access<'a>(
    caller: &'a Caller,
    request: &'a ExecRequest,
) -> impl Fn(&Node) -> Option<bool> + Sync + 'a {
    move |node: &Node| {
        let named = request.nodes.iter().any(|name| *name == node.name || *name == node.id.as_str());
        (caller.allows(AclScope::Node, Capability::Read, &node.hostgroup) || named)
            .then(|| caller.allows(AclScope::Node, Capability::Exec, &node.hostgroup))
    }
}

/// `GET /v1/internal/usage/{node_id}`: a node's usage if its agent is
/// connected to this server.
pub(super) async fn usage(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node_id): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require_server()?;
    Ok(Json(app.server.node_usage(&drover_types::NodeId::new(node_id))).into_response())
}

/// `GET /v1/metrics[?fleet=true]`: Prometheus (OpenMetrics) text of the
/// nodes connected to this server, or of the whole fleet (docs/metrics.md),
/// streamed chunk by chunk as it is rendered, gzip-compressed when the
/// scraper accepts gzip (Prometheus does).
pub(super) async fn metrics(
    State(app): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(scope): ApiQuery<MetricsScope>,
) -> ApiResult<Response> {
    use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};

    caller.require(AclScope::Node, Capability::Read)?;
    let visible = |node: &Node| caller.allows(AclScope::Node, Capability::Read, &node.hostgroup);
    let chunks = app.server.fleet_metrics(&visible, scope.fleet).await;
    let gzip =
        headers.get_all(ACCEPT_ENCODING).iter().any(|value| value.to_str().is_ok_and(drover_metrics::accepts_gzip));
    let vary = (VARY, "accept-encoding");
    if gzip {
        let body = axum::body::Body::from_stream(futures_util::stream::iter(
            drover_metrics::GzipChunks::new(chunks)
                .map(|chunk| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk))),
        ));
        let headers = [(CONTENT_TYPE, drover_metrics::CONTENT_TYPE), (CONTENT_ENCODING, "gzip"), vary];
        return Ok((headers, body).into_response());
    }
    let body = axum::body::Body::from_stream(futures_util::stream::iter(
        chunks.map(|chunk| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk))),
    ));
    Ok(([(CONTENT_TYPE, drover_metrics::CONTENT_TYPE), vary], body).into_response())
}

/// The query of `GET /v1/metrics`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct MetricsScope {
    /// Every node of the fleet, asking the other servers, instead of this
    /// server's agents.
    #[serde(default)]
    fleet: bool,
}

/// `GET /v1/internal/usage`: the usage of the nodes connected here.
pub(super) async fn local_usage(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_server()?;
    Ok(Json(app.server.local_usage()).into_response())
}

/// `GET /v1/internal/usage-summary`: the three figures of the nodes
/// connected here (the dashboard's node table).
pub(super) async fn local_usage_summary(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_server()?;
    Ok(Json(app.server.local_usage_summary()).into_response())
}

/// `GET /v1/nodes/usage?filter=`: every node's latest usage (`drover node top`).
pub(super) async fn fleet_usage(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(NodeFilter { filter, .. }): ApiQuery<NodeFilter>,
) -> ApiResult<Response> {
    caller.require(AclScope::Node, Capability::Read)?;
    let filter = drover_server::parse_node_filter(filter.as_deref())?;
    let state = app.server.state();
    let entries: Vec<NodeUsageEntry> = app
        .server
        .fleet_usage()
        .await
        .into_iter()
        .filter_map(|(node_id, usage)| {
            let node = state.node(&node_id)?;
            if node.retired.is_some() || !state.holds_its_name(node) {
                return None;
            }
            if !caller.allows(AclScope::Node, Capability::Read, &node.hostgroup) {
                return None;
            }
            filter.as_ref().is_none_or(|filter| filter.matches(node.as_ref())).then(|| NodeUsageEntry {
                name: node.name.clone(),
                hostgroup: node.hostgroup.clone(),
                environment: node.environment.clone(),
                status: node.display_status().to_owned(),
                usage,
            })
        })
        .collect();
    Ok(Json(entries).into_response())
}

/// Refuses a change to one node (by name or id) the caller may not make.
/// The nodes a bulk request names (by names and an optional filter), and
/// whether it only previews.
struct Selection<'a> {
    names: &'a [String],
    filter: Option<&'a str>,
    dry_run: bool,
}

/// The one check of a bulk node request: `capability` (only read for a
/// preview) on nodes in general, and with ACLs enforced, on the host group
/// of every node it selects.
async fn require_on_selection(
    app: &AppState,
    caller: &Caller,
    selection: Selection<'_>,
    capability: Capability,
) -> ApiResult<()> {
    let capability = if selection.dry_run { Capability::Read } else { capability };
    caller.require(AclScope::Node, capability)?;
    if caller.enforced() {
        let state = app.server.consistent_state().await?;
        let nodes = drover_server::inventory::select_nodes(&state, selection.names, selection.filter)?;
        for node in &nodes {
            caller.require_on(AclScope::Node, capability, &node.hostgroup)?;
        }
    }
    Ok(())
}

fn require_on_node(app: &AppState, caller: &Caller, node: &str, capability: Capability) -> ApiResult<()> {
    if !caller.enforced() {
        return Ok(());
    }
    let state = app.server.state();
    let node = state.resolve_node(node)?;
    caller.require_on(AclScope::Node, capability, &node.hostgroup)
}

/// Relays an exec's events and, once every node has answered, audits the
/// outcome per node (`exec.result`: how many succeeded, failed, timed out,
/// were unreachable or denied, and which did not succeed).
fn audit_results(
    app: &AppState,
    caller: &Caller,
    request: &ExecRequest,
    mut events: tokio::sync::mpsc::Receiver<drover_proto::api::ExecEvent>,
) -> tokio::sync::mpsc::Receiver<drover_proto::api::ExecEvent> {
    use drover_proto::api::{ExecEvent, ExecStatus};
    let (sender, relayed) = tokio::sync::mpsc::channel(64);
    let (server, caller, command) = (app.server.clone(), caller.clone(), request.command.join(" "));
    tokio::spawn(async move {
        let mut counts: std::collections::BTreeMap<&'static str, usize> = std::collections::BTreeMap::new();
        let mut unsuccessful: Vec<String> = Vec::new();
        while let Some(event) = events.recv().await {
            if let ExecEvent::Result(result) = &event {
                *counts.entry(result.status.label()).or_default() += 1;
                if result.status != ExecStatus::Success {
                    unsuccessful.push(result.node.clone());
                }
            }
            // A client that went away does not stop the count.
            let _ = sender.send(event).await;
        }
        let summary: Vec<String> =
            counts.iter().map(|(status, count)| format!("{count} {}", status.to_lowercase())).collect();
        let not_ok = if unsuccessful.is_empty() {
            String::new()
        } else {
            format!("; not successful: {}", drover_filter::fold_names(&unsuccessful))
        };
        server.audit(drover_types::acl::AuditEvent {
            at: drover_types::Timestamp::now(),
            accessor: caller.accessor.clone(),
            name: caller.name.clone(),
            action: "exec.result".to_owned(),
            target: command,
            details: format!("{}{not_ok}", summary.join(", ")),
            outcome: drover_types::acl::AuditOutcome::Ok,
            source: caller.source.clone(),
            request_id: 0,
        });
    });
    relayed
}
