//! One module per page: its view model (built from drover-proto data by
//! pure functions where the data is drover's own) and its template.

pub mod alloc;
pub mod exec;
pub mod jobs;
pub mod login;
pub mod logs;
pub mod nodes;
pub mod overview;
pub mod react;

/// Something a page lists, or why the caller does not see it.
#[derive(Clone, Debug)]
pub enum Visible<T> {
    /// The caller may see it.
    Shown(T),
    /// The caller's token may not see it (the reason, from the server).
    Hidden(String),
}

impl<T> Visible<T> {
    /// `Shown` for `Ok`, `Hidden` with the error's text for `Err`.
    pub fn from_result<E: std::fmt::Display>(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => Visible::Shown(value),
            Err(error) => Visible::Hidden(error.to_string()),
        }
    }
}

/// A count of things in one state, for the overview's tiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateCount {
    /// The state.
    pub state: String,
    /// How many.
    pub count: u64,
    /// Where the things are listed.
    pub href: String,
}

impl StateCount {
    /// The tile's class: `ok`, `warn`, `bad` or empty.
    pub fn class(&self) -> &'static str {
        if self.count == 0 { "" } else { crate::format::status_class(&self.state) }
    }
}
