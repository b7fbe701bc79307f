//! The one error type of the API and the one place where an error code
//! becomes an HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use drover_types::{CodedError, ErrorCode};

/// Every handler's error: rendered as `{"code": "...", "message": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub CodedError);

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An `invalid_input` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(CodedError::invalid(message))
    }
}

impl From<CodedError> for ApiError {
    fn from(error: CodedError) -> Self {
        Self(error)
    }
}

/// The HTTP status of an error code. The only such mapping in drover.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotLeader => StatusCode::MISDIRECTED_REQUEST,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.code == ErrorCode::Internal {
            tracing::error!(message = %self.0.message, "internal error answered");
        }
        let mut response = (status_of(self.0.code), Json(&self.0)).into_response();
        // The audit middleware records why a request was refused.
        response.extensions_mut().insert(self.0);
        response
    }
}
