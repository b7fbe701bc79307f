//! drover's dashboard, as pure functions: view models in, HTML out.
//!
//! ```text
//!  drover-api (routes/ui/): caller + the same server calls as the JSON API
//!        │ builds a view model (this crate's structs, from drover-proto data)
//!        ▼
//!  render(&page) ──askama──▶ HTML String          assets: style.css, dashboard.js
//! ```
//!
//! Nothing here reads a clock, a socket or a file: times arrive as values
//! (`now` travels in [`Chrome`]), so every page is unit-tested by building
//! a view model and reading the HTML. Templates are in `templates/`, the
//! stylesheet and the script in `assets/`, both compiled into the binary
//! (askama, rust-embed): the dashboard needs no build step and no network.
//! Every page is readable without JavaScript; the script only refreshes
//! pages that ask for it.

pub mod assets;
pub mod chart;
pub mod chrome;
pub mod format;
pub mod markdown;
pub mod pages;
pub mod session;

pub use chrome::{Chrome, Section};

/// Renders a page. A template that cannot render (a bug: templates are
/// checked at compile time, only a value's `Display` can fail) becomes a
/// short HTML error instead of a panic.
pub fn render(page: &impl askama::Template) -> String {
    page.render().unwrap_or_else(|error| {
        format!(
            "<!doctype html><title>drover</title><p>the dashboard could not render this page: {}</p>",
            format::escape(&error.to_string())
        )
    })
}
