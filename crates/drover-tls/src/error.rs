//! The one error type of this crate.
//!
//! Every message says what was wrong, where (the file, when there is one)
//! and, when the reader can do something about it, what to do.

use std::path::PathBuf;

/// Everything that can go wrong while making, reading or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file or directory could not be read, written or created.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A private key file that other users may read or write.
    #[error(
        "{} can be read or written by other users (mode {mode:03o}); a private key must be private: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFileExposed { path: PathBuf, mode: u32 },
    /// A directory of keys that other users may write into.
    #[error(
        "{} can be written by other users (mode {mode:03o}); the directory that holds keys must be private: run `chmod 700 {}`",
        path.display(),
        path.display()
    )]
    DirectoryExposed { path: PathBuf, mode: u32 },
    /// A file longer than any certificate or key (a wrong path, `/dev/zero`).
    #[error(
        "{} is larger than {} MiB, more than any certificate, key or CA bundle: check the path",
        path.display(),
        limit / (1024 * 1024)
    )]
    FileTooLarge { path: PathBuf, limit: u64 },
    /// Something that should be a directory is not.
    #[error("{} is not a directory; move it away or choose another directory", path.display())]
    NotADirectory { path: PathBuf },
    /// A certificate, key, request or name that is not what it must be.
    #[error("{what} is not valid: {reason}")]
    Invalid { what: String, reason: String },
    /// An error about the contents of a file.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<TlsError>,
    },
    /// A key, certificate or request could not be made.
    #[error("cannot make {what}: {reason}")]
    Generate { what: String, reason: String },
    /// rustls refused the configuration we built.
    #[error("cannot build the TLS configuration: {reason}")]
    Config { reason: String },
}

/// The result type of this crate.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

impl TlsError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TlsError {
        let path = path.into();
        move |source| TlsError::Io { action, path, source }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> TlsError {
        TlsError::Invalid { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn generate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> TlsError {
        let what = what.into();
        move |error| TlsError::Generate { what, reason: error.to_string() }
    }

    pub(crate) fn config(reason: impl ToString) -> TlsError {
        TlsError::Config { reason: reason.to_string() }
    }

    /// Wraps the error with the file it is about.
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> TlsError {
        match self {
            // An I/O error already names its file.
            TlsError::Io { .. }
            | TlsError::KeyFileExposed { .. }
            | TlsError::FileTooLarge { .. }
            | TlsError::InFile { .. } => self,
            other => TlsError::InFile { path: path.into(), source: Box::new(other) },
        }
    }
}
