//! Extractors whose rejections are API errors (`{code, message}` JSON),
//! never axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    /// Reads the body as `T`, refusing fields `T` does not have (a typo in
    /// a field name must not be silently ignored), with the path of the
    /// first one in the message.
    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = json_body(request, state).await?;
        let mut unknown_fields = Vec::new();
        let mut deserializer = serde_json::Deserializer::from_slice(&body);
        let value: T = serde_ignored::deserialize(&mut deserializer, |path| unknown_fields.push(path.to_string()))
            .map_err(|error| ApiError::invalid(format!("invalid request body: {error}")))?;
        deserializer.end().map_err(|error| ApiError::invalid(format!("invalid request body: {error}")))?;
        if let Some(first) = unknown_fields.first() {
            return Err(ApiError::invalid(format!(
                "invalid request body: unknown field `{first}`{}; see docs/api.md for the fields",
                if unknown_fields.len() > 1 {
                    format!(" (and {} more)", unknown_fields.len() - 1)
                } else {
                    String::new()
                }
            )));
        }
        Ok(ApiJson(value))
    }
}

/// A JSON body sent by another server (internal routes): fields this
/// server does not know are ignored, so that servers of two versions still
/// talk during a rolling upgrade.
#[derive(Debug)]
pub struct PeerJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PeerJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = json_body(request, state).await?;
        serde_json::from_slice(&body)
            .map(PeerJson)
            .map_err(|error| ApiError::invalid(format!("invalid request body: {error}")))
    }
}

/// The body of a request that says it is JSON.
async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(request.headers()) {
        return Err(ApiError::invalid("the body must be JSON: send the header `Content-Type: application/json`"));
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| ApiError::invalid(format!("cannot read the request body: {}", rejection.body_text())))
}

/// Whether the request says its body is JSON (`application/json`, also
/// with parameters or as a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters. A segment that is not UTF-8 after percent-decoding
/// (`/v1/var/%FF`) is a coded `invalid_input`, not axum's plain text.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid(format!("invalid path: {}", rejection.body_text()))),
        }
    }
}

/// Query-string parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::invalid(format!("invalid query parameters: {}", rejection.body_text()))
}
