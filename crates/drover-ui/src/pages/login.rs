//! `/ui/login` and the error page.

use askama::Template;

use drover_proto::paths;

use crate::chrome::Chrome;

/// `/ui/login`: a token in, a session cookie out.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// The frame.
    pub chrome: Chrome,
    /// Why the last attempt failed (the server's message).
    pub error: Option<String>,
    /// Where to go after logging in (a dashboard path).
    pub next: String,
}

impl LoginPage {
    /// Where the form posts.
    pub fn action(&self) -> &'static str {
        paths::UI_LOGIN
    }
}

/// A refusal or failure, with the same message the CLI would print.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The frame.
    pub chrome: Chrome,
    /// The HTTP status, as `403 Forbidden`.
    pub status: String,
    /// The error code (`forbidden`, `not_found`, …).
    pub code: String,
    /// The message.
    pub message: String,
}
