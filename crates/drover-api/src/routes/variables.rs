//! Variables: `GET /v1/vars?prefix=`, `GET|PUT|DELETE /v1/var/{path}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use drover_types::{CodedError, Variable};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Caller;
use crate::{ApiResult, AppState, ReadOptions, no_content, with_index};
use drover_types::acl::{AclScope, Capability};

/// `?prefix=`, next to the read options.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Prefix {
    #[serde(default)]
    prefix: String,
}

pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(options): ApiQuery<ReadOptions>,
    ApiQuery(Prefix { prefix }): ApiQuery<Prefix>,
) -> ApiResult<Response> {
    caller.require(AclScope::Variables, Capability::Read)?;
    let state = options.read(&app.server, |state| state.table_indexes().variables).await?;
    let variables: Vec<Variable> = state
        .variables_with_prefix(&prefix)
        .filter(|variable| caller.allows(AclScope::Variables, Capability::Read, &variable.path))
        .map(|variable| Variable::clone(variable))
        .collect();
    Ok(with_index(state.table_indexes().variables, Json(variables)))
}

pub(super) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Variables, Capability::Read, &path)?;
    let state = options.read(&app.server, |state| state.table_indexes().variables).await?;
    let variable = state.variable(&path).ok_or_else(|| CodedError::not_found("variable", &path))?;
    Ok(with_index(state.table_indexes().variables, Json(Variable::clone(variable))))
}

/// `?cas=N`: check-and-set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WriteOptions {
    cas: Option<u64>,
}

/// Body of `PUT /v1/var/{path}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutBody {
    items: BTreeMap<String, String>,
}

pub(super) async fn put(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<String>,
    ApiQuery(options): ApiQuery<WriteOptions>,
    ApiJson(body): ApiJson<PutBody>,
) -> ApiResult<Json<Variable>> {
    caller.require_on(AclScope::Variables, Capability::Write, &path)?;
    Ok(Json(app.server.put_variable(&path, body.items, options.cas).await?))
}

pub(super) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<String>,
    ApiQuery(options): ApiQuery<WriteOptions>,
) -> ApiResult<Response> {
    caller.require_on(AclScope::Variables, Capability::Write, &path)?;
    app.server.delete_variable(&path, options.cas).await?;
    Ok(no_content().into_response())
}
