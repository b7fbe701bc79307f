//! The crate's errors: [`Error`] for what a caller asked that could not be
//! done, [`DeliveryError`] for one failed delivery attempt (which the
//! dispatcher records and may retry, never returns).

use std::path::PathBuf;
use std::time::Duration;

use drover_react::delivery::DeliveryId;

/// What went wrong, for callers of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The outbox directory or file could not be read or written.
    #[error("outbox {path}: {source}")]
    Outbox {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP client could not be built (no TLS roots, …).
    #[error("cannot build the HTTP client for notifiers: {0}")]
    HttpClient(String),
    /// No delivery has this id (it never existed, or it finished long ago
    /// and was forgotten).
    #[error("no delivery {0}: see the list of deliveries")]
    UnknownDelivery(DeliveryId),
    /// Only a failed delivery can be retried by hand.
    #[error("delivery {id} is {status}, not failed: only failed deliveries can be retried")]
    NotFailed {
        /// The delivery.
        id: DeliveryId,
        /// Its status.
        status: &'static str,
    },
    /// A request body is not an Alertmanager webhook payload drover reads.
    #[error("not an Alertmanager webhook payload: {0}")]
    InvalidPayload(String),
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one delivery attempt failed, and whether trying again may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What went wrong, for the delivery record: the peer's answer, or why
    /// it could not be reached.
    pub message: String,
    /// Trying again cannot help (a rejected recipient, a 400 answer, a
    /// body that is not JSON): the delivery fails at once.
    pub permanent: bool,
    /// The peer asked to wait at least this long (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    /// A failure that may pass: a timeout, a refused connection, a 5xx or
    /// 429 answer, an SMTP 4xx reply.
    pub fn retryable(message: impl Into<String>) -> DeliveryError {
        DeliveryError { message: message.into(), permanent: false, retry_after: None }
    }

    /// A failure that will not pass by trying again.
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError { message: message.into(), permanent: true, retry_after: None }
    }
}
