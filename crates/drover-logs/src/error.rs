//! The crate's one error type.

use std::path::PathBuf;

use crate::query::QueryError;

/// Everything that can go wrong in the log store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text does not parse; the message names the column and what to do.
    #[error("{0}")]
    Query(#[from] QueryError),
    /// A search request is inconsistent (for example `since` after `until`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A paging cursor that this store did not hand out.
    #[error("invalid cursor {cursor:?}: pass the `next_cursor` of a previous page unchanged")]
    InvalidCursor {
        /// The cursor as given.
        cursor: String,
    },
    /// Reading or writing a file of the store failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A metadata file of the store exists but cannot be understood.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The search engine failed.
    #[error("index {}: {source}", path.display())]
    Index {
        /// The partition folder.
        path: PathBuf,
        /// The underlying error.
        source: tantivy::TantivyError,
    },
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
