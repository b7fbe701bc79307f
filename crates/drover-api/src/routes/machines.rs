//! `/v1/workflows`, `/v1/workflow/{id}`: machine workflows — create,
//! reboot, rebuild and delete machines through a site provider
//! (docs/machines.md). Starting or cancelling one needs `update` on the
//! nodes' host groups (for `create`, on the host group asked for); reading
//! them, `read`. The identity middleware audits both (`workflow.start`,
//! `workflow.cancel`); the leader audits each step.

use axum::Json;
use axum::extract::State;

use drover_proto::machines::{WorkflowRequest, WorkflowStarted};
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
            for node in &nodes {
                caller.require_on(AclScope::Node, capability, &node.hostgroup)?;
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
    caller.require(AclScope::Node, Capability::Update)?;
    Ok(Json(app.server.cancel_workflow(&id, &caller.name).await?))
}
