//! The site definition and the decisions made on it.
//!
//! A site is one folder under version control: providers (how to reboot,
//! rebuild or read the console of a machine), notifiers (where alerts go),
//! alert rules and hammers (automated fixes with safety limits), written in
//! HCL in the style of job files. This crate
//!
//! - reads such a folder into a [`Site`] ([`Site::load_dir`]), reporting
//!   every problem of every file at once with file:line:column, and checks
//!   what spans files: duplicate names, references to notifiers, alert
//!   rules and providers, runbook files;
//! - tells what applying a site would change ([`Site::diff`], for
//!   `drover plan DIR`);
//! - holds the sans-IO decision logic: the alert lifecycle with silences
//!   and acknowledgements ([`alerting`]) and the hammer guard with its
//!   limits ([`hammer`]). Both take `now` and their inputs as arguments and
//!   return intents (notifications, runs); a runtime elsewhere performs them.
//!
//! Job files (`*.nomad.hcl`) in the same folder are skipped: they belong to
//! `drover-jobspec`.
//!
//! ```
//! use drover_hcl::Source;
//! use drover_site::Site;
//!
//! let text = r#"
//! notifier "ops-chat" { webhook { url = "https://chat.example.org/hooks/ops" } }
//! alert "node-down" {
//!   when { node { status = "down" }  for = "2m" }
//!   severity = "critical"
//!   notify   = ["ops-chat"]
//! }
//! "#;
//! let site = Site::from_sources(&[Source::new("site.hcl", text)], std::path::Path::new(".")).unwrap();
//! assert_eq!(site.alerts["node-down"].hold.to_string(), "2m");
//! ```

pub mod alerting;
mod diff;
pub mod hammer;
mod load;
pub mod matcher;
mod read;
pub mod schema;
pub mod template;

use std::path::Path;

pub use diff::{Change, ChangeKind};
pub use drover_hcl::{Diagnostic, Diagnostics, Source};
pub use load::{JOB_FILE_SUFFIX, is_site_file};
pub use matcher::{Labels, MatchOp, Matcher, Selector};
pub use schema::{
    Action, AlertRule, AllocCheck, AllocCondition, CommandTarget, Condition, GroupBy, Hammer, HammerTrigger, Limits,
    LogCondition, MetricCondition, Mode, NodeCondition, NodeEvent, Notifier, NotifierKind, Provider, ProviderOperation,
    RetryPolicy, Runbook, Severity, Site, Threshold,
};
pub use template::{Escape, PlaceholderSet, Template};

impl Site {
    /// Reads every site file (`*.hcl`, except job files `*.nomad.hcl` and
    /// hidden files) directly in `folder`, in name order. Every problem of
    /// every file is returned at once, each with its file, line and column
    /// (files are named by their path as `folder` was given).
    pub fn load_dir(folder: &Path) -> Result<Site, Diagnostics> {
        load::load_dir(folder)
    }

    /// Reads site files already in memory; `folder` is where relative
    /// runbook paths are looked up.
    pub fn from_sources(sources: &[Source], folder: &Path) -> Result<Site, Diagnostics> {
        load::from_sources(sources, folder)
    }

    /// What applying `new` over `old` adds, changes and removes.
    pub fn diff(old: &Site, new: &Site) -> Vec<Change> {
        diff::diff(old, new)
    }

    /// Names that point nowhere: notifiers, alert rules and providers a
    /// rule or hammer names but the site does not define. Empty for every
    /// site [`Site::load_dir`] accepts; the servers check sites that
    /// arrive through the API with it.
    pub fn dangling_references(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut notifiers = |from: String, names: &[String]| {
            for name in names.iter().filter(|name| !self.notifiers.contains_key(*name)) {
                problems.push(format!("{from} names notifier {name:?}, which is not defined"));
            }
        };
        for rule in self.alerts.values() {
            notifiers(format!("alert {:?}", rule.name), &rule.notify);
        }
        for hammer in self.hammers.values() {
            notifiers(format!("hammer {:?}", hammer.name), &hammer.notify);
        }
        for hammer in self.hammers.values() {
            if let HammerTrigger::Alert(rule) = &hammer.trigger
                && !self.alerts.contains_key(rule)
            {
                problems.push(format!("hammer {:?} names alert {rule:?}, which is not defined", hammer.name));
            }
            if let Action::Reboot { provider: Some(name) } | Action::Rebuild { provider: Some(name) } = &hammer.action
                && !self.providers.contains_key(name)
            {
                problems.push(format!("hammer {:?} names provider {name:?}, which is not defined", hammer.name));
            }
        }
        problems
    }

    /// The provider for a node: the one its `provider` meta key names, else
    /// the default one.
    pub fn provider_for(&self, node_provider: Option<&str>) -> Option<&Provider> {
        match node_provider {
            Some(name) => self.providers.get(name),
            None => self.providers.values().find(|provider| provider.default),
        }
    }
}
