//! The service catalogue: `GET /v1/services` and
//! `GET /v1/service/{name}?tag=&healthy=true` (docs/services.md).
//!
//! Both answer from the catalogue derived from the state
//! (`drover_server::services`), block with `?index=&wait=` like the other
//! reads, and show a caller only the instances of jobs it may read on
//! nodes it may read.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use drover_proto::api::{ServiceHealth, ServiceInstance};
use drover_server::services::{Catalogue, summarize};
use drover_state::State as ClusterState;
use drover_types::acl::{AclScope, Capability};

use crate::extract::{ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiResult, AppState, ReadOptions, with_index};

/// `?tag=&healthy=true`, next to the read options.
#[derive(Debug, Default, Deserialize)]
pub(super) struct InstanceFilter {
    /// Only instances announcing this tag.
    tag: Option<String>,
    /// Only instances whose checks pass.
    #[serde(default)]
    healthy: bool,
}

/// The index a catalogue read watches: the catalogue changes with
/// allocations, jobs, nodes and deployments.
fn catalogue_index(state: &ClusterState) -> u64 {
    let indexes = state.table_indexes();
    indexes.allocs.max(indexes.jobs).max(indexes.nodes).max(indexes.deployments)
}

/// Whether the caller may see `instance`: it may read its job and its node.
fn visible(caller: &Caller, state: &ClusterState, instance: &ServiceInstance) -> bool {
    let hostgroup = state.node(&instance.node_id).map_or("", |node| node.hostgroup.as_str());
    caller.allows(AclScope::Job, Capability::Read, instance.job_id.as_str())
        && caller.allows(AclScope::Node, Capability::Read, hostgroup)
}

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = options.read(&app.server, catalogue_index).await?;
    let catalogue = Catalogue::of(&state);
    let entries = summarize(catalogue.instances().iter().filter(|instance| visible(&caller, &state, instance)));
    Ok(with_index(catalogue_index(&state), Json(entries)))
}

pub(super) async fn instances(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
    ApiQuery(filter): ApiQuery<InstanceFilter>,
) -> ApiResult<Response> {
    caller.require(AclScope::Job, Capability::Read)?;
    let state = options.read(&app.server, catalogue_index).await?;
    let catalogue = Catalogue::of(&state);
    let instances: Vec<ServiceInstance> = catalogue
        .service(&name)
        .iter()
        .filter(|instance| filter.tag.as_ref().is_none_or(|tag| instance.tags.contains(tag)))
        .filter(|instance| !filter.healthy || instance.health == ServiceHealth::Passing)
        .filter(|instance| visible(&caller, &state, instance))
        .cloned()
        .collect();
    Ok(with_index(catalogue_index(&state), Json(instances)))
}
