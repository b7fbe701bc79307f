//! The site reader: a folder of HCL files into the react model.
//!
//! A site is one folder under version control: providers (how to reboot,
//! rebuild or read the console of a machine), notifiers (where alerts go),
//! alert rules, hammers (automated fixes with safety limits) and log sinks
//! (Loki, OpenSearch: docs/logs.md, "Sinks"), written in
//! HCL in the style of job files. This crate reads such a folder into a
//! [`Site`] ([`load_dir`]), reporting every problem of every file at once
//! with file:line:column, and checks what spans files: duplicate names,
//! references to notifiers, alert rules and providers, runbook files.
//!
//! The model itself and the decisions made on it (the alert lifecycle, the
//! hammer guard) live in `drover-react`, which has no HCL in it, so the
//! Raft state machine does not link a parser.
//!
//! Job files (`*.nomad.hcl`) in the same folder are skipped: they belong to
//! `drover-jobspec`.
//!
//! ```
//! use drover_site::Source;
//!
//! let text = r#"
//! notifier "ops-chat" { webhook { url = "https://chat.example.org/hooks/ops" } }
//! alert "node-down" {
//!   when { node { status = "down" }  for = "2m" }
//!   severity = "critical"
//!   notify   = ["ops-chat"]
//! }
//! "#;
//! let site = drover_site::from_sources(&[Source::new("site.hcl", text)], std::path::Path::new(".")).unwrap();
//! assert_eq!(site.alerts["node-down"].hold.to_string(), "2m");
//! ```

mod load;
mod read;

use std::path::Path;

pub use drover_hcl::{Diagnostic, Diagnostics, Source};
use drover_react::Site;
pub use load::{JOB_FILE_SUFFIX, is_site_file};

/// Reads every site file (`*.hcl`, except job files `*.nomad.hcl` and
/// hidden files) directly in `folder`, in name order. Every problem of
/// every file is returned at once, each with its file, line and column
/// (files are named by their path as `folder` was given).
pub fn load_dir(folder: &Path) -> Result<Site, Diagnostics> {
    load::load_dir(folder)
}

/// Reads site files already in memory; `folder` is where relative runbook
/// paths are looked up.
pub fn from_sources(sources: &[Source], folder: &Path) -> Result<Site, Diagnostics> {
    load::from_sources(sources, folder)
}
