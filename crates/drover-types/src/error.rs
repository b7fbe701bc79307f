//! The closed set of error codes that cross process boundaries.
//!
//! Servers, agents and the CLI exchange errors as `{code, message}`; the code
//! is matched, never the message. Exactly one place (the API crate) maps a
//! code to an HTTP status.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or names something invalid.
    InvalidInput,
    /// The object does not exist.
    NotFound,
    /// The request conflicts with the current state (a protected node, a
    /// stale index, an ambiguous id prefix).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// This server is not the leader and could not forward.
    NotLeader,
    /// The cluster cannot serve the request now (no leader, no quorum).
    Unavailable,
    /// The request did not finish in time.
    Timeout,
    /// A bug or an I/O failure on the server.
    Internal,
    /// The route exists but not with this HTTP method.
    MethodNotAllowed,
    /// The caller did not say who it is, or its token or certificate is
    /// not valid (unknown, expired, revoked).
    Unauthorized,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// An error with its code and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What was wrong and what to do.
    pub message: String,
}

impl CodedError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// `NotFound` for an object of `kind` with `id`.
    pub fn not_found(kind: &str, id: impl fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{kind} \"{id}\" not found"))
    }

    /// The same error with `hint` after its message, outside any quotes:
    /// `node "batch07" not found; HINT`. A hint says what to do next.
    pub fn with_hint(mut self, hint: impl fmt::Display) -> Self {
        self.message = format!("{}; {hint}", self.message);
        self
    }

    /// `InvalidInput` with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// `Conflict` with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// `Internal` with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

/// An error and its sources, `outer: inner: root cause`, each cause added
/// only when the text so far does not already hold it (reqwest's own
/// message, "error sending request", says little without its causes).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
