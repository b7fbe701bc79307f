//! `/v1/workflows`, `/v1/workflow/{id}`: machine workflows — create,
//! reboot, rebuild, delete and maintain machines (docs/machines.md) — and
//! `/v1/node/{node}/console`, a node's console now through its provider.
//! Starting, pausing, resuming or cancelling a workflow needs `update` on
//! the nodes' host groups (for `create`, on the host group asked for; a
//! maintenance that runs commands, `exec` too, and `exec-as-root` to run
//! them as root);
//! reading them, `read`; a console, `read` on the node's host group. The
//! identity middleware audits the writes (`workflow.start`,
//! `workflow.pause`, `workflow.resume`, `workflow.cancel`), the console
//! route audits itself (`node.console`: it runs a command); the leader
//! audits each step.

use axum::Json;
use axum::extract::State;

use drover_proto::machines::{NodeConsole, WorkflowRequest, WorkflowStarted};
use drover_types::acl::{AclScope, Capability};
use drover_types::workflow::{MachineOperation, Workflow};

use crate::extract::{ApiJson, ApiPath};
use crate::identity::Caller;
use crate::{ApiResult, AppState};

/// `POST /v1/workflows`: start a machine workflow (or preview it).
pub(super) async fn start(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<WorkflowRequest>,
) -> ApiResult<Json<WorkflowStarted>> {
    let capability = if request.dry_run { Capability::Read } else { Capability::Update };
    caller.require(AclScope::Node, capability)?;
    if caller.enforced() {
        if request.operation == MachineOperation::Create {
            caller.require_on(AclScope::Node, capability, request.labels.hostgroup.as_deref().unwrap_or_default())?;
        } else {
            let state = app.server.consistent_state().await?;
            let nodes = drover_server::inventory::select_nodes(&state, &request.nodes, request.filter.as_deref())?;
            // A maintenance's commands run as `drover exec` runs them, and
            // need what it needs.
            let maintenance = &request.maintenance;
            let runs = request.operation == MachineOperation::Maintain && maintenance.runs_commands();
            let as_root = runs && maintenance.user.as_deref() == Some("root");
            for node in &nodes {
                caller.require_on(AclScope::Node, capability, &node.hostgroup)?;
                if runs && !request.dry_run {
                    caller.require_on(AclScope::Node, Capability::Exec, &node.hostgroup)?;
                }
                if as_root && !request.dry_run {
                    caller.require_on(AclScope::Node, Capability::ExecAsRoot, &node.hostgroup)?;
                }
            }
        }
    }
    Ok(Json(app.server.start_workflow(&request, &caller.name).await?))
}

/// `GET /v1/workflows`: every workflow, newest first.
pub(super) async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Workflow>>> {
    caller.require(AclScope::Node, Capability::Read)?;
    Ok(Json(app.server.workflows().await?))
}

/// `GET /v1/workflow/{id}`.
pub(super) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    caller.require(AclScope::Node, Capability::Read)?;
    Ok(Json(app.server.workflow(&id).await?))
}

/// `POST /v1/workflow/{id}/cancel`.
pub(super) async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    require_update_on_workflow(&app, &caller, &id).await?;
    Ok(Json(app.server.cancel_workflow(&id, &caller.name).await?))
}

/// `POST /v1/workflow/{id}/pause`: no new node step starts.
pub(super) async fn pause(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    require_update_on_workflow(&app, &caller, &id).await?;
    Ok(Json(app.server.pause_workflow(&id, true, &caller.name).await?))
}

/// `POST /v1/workflow/{id}/resume`.
pub(super) async fn resume(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    require_update_on_workflow(&app, &caller, &id).await?;
    Ok(Json(app.server.pause_workflow(&id, false, &caller.name).await?))
}

/// `update` on nodes, and (when ACLs are enforced) on the host group of
/// every node of the workflow that exists (for `create`, the one asked
/// for), as starting it needed.
async fn require_update_on_workflow(app: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    caller.require(AclScope::Node, Capability::Update)?;
    if caller.enforced() {
        let workflow = app.server.workflow(id).await?;
        if workflow.operation == MachineOperation::Create {
            caller.require_on(
                AclScope::Node,
                Capability::Update,
                workflow.labels.hostgroup.as_deref().unwrap_or_default(),
            )?;
        } else {
            let state = app.server.consistent_state().await?;
            for step in &workflow.steps {
                if let Some(node) = state.node_by_name(&step.node) {
                    caller.require_on(AclScope::Node, Capability::Update, &node.hostgroup)?;
                }
            }
        }
    }
    Ok(())
}

/// `GET /v1/node/{node}/console`: the provider's `console` command's
/// output, now (run once on the answering server).
pub(super) async fn console(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(node): ApiPath<String>,
) -> ApiResult<Json<NodeConsole>> {
    caller.require(AclScope::Node, Capability::Read)?;
    if caller.enforced() {
        let state = app.server.consistent_state().await?;
        let found = state.resolve_node(&node)?;
        caller.require_on(AclScope::Node, Capability::Read, &found.hostgroup)?;
    }
    let console = app.server.node_console(&node).await?;
    crate::identity::record(&app, &caller, "node.console", &console.node).await;
    Ok(Json(console))
}
