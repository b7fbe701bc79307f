//! The crate's one error type.
//!
//! Sampling never fails (a part that cannot be read is left empty), and
//! rendering writes to a `String`; what remains is reading user input.

/// What went wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `drover node top --sort` was given a key it does not know.
    #[error("unknown sort key {given:?}; use cpu, mem or disk")]
    UnknownSortKey {
        /// The text that was given.
        given: String,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
