//! React: detect trouble and act on it — the site model and the decisions
//! made on it, without I/O.
//!
//! A *site* is one folder under version control (read by `drover-site`):
//! providers (how to reboot, rebuild or read the console of a machine),
//! notifiers (where alerts go), alert rules and hammers (automated fixes
//! with safety limits). This crate holds
//!
//! - the model of a site ([`Site`] and its objects, [`schema`]), with the
//!   checks that span objects ([`Site::dangling_references`]) and what
//!   applying one would change ([`Site::diff`], for `drover plan DIR`);
//! - what the `node` and `alloc` conditions of an alert rule mean, from
//!   typed node and allocation facts ([`conditions`]);
//! - the alert lifecycle with silences and acknowledgements ([`alerting`])
//!   and the hammer guard with its limits ([`hammer`]). Both take `now` and
//!   their inputs as arguments and return intents (notifications, runs); a
//!   runtime elsewhere (the Raft state machine, the leader) performs them;
//! - label matchers ([`matcher`]) and message templates ([`template`]);
//! - the HTTP API bodies of all this ([`api`]: the site, alerts,
//!   silences, hammers, runbooks);
//! - what a notification says and what became of its delivery
//!   ([`delivery`]), shared by the dispatcher (`drover-notify`), the API and
//!   the client.
//!
//! It depends on `drover-types` only, so the Raft state machine, the wire
//! types and the client use it without linking an HCL parser or an SMTP
//! client.

pub mod alerting;
pub mod api;
pub mod conditions;
pub mod delivery;
mod diff;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod hammer;
pub mod matcher;
pub mod schema;
pub mod template;

pub use diff::{Change, ChangeKind};
pub use matcher::{Labels, MatchOp, Matcher, Selector};
pub use schema::{
    Action, AlertRule, AllocCheck, AllocCondition, CommandTarget, Condition, GroupBy, Hammer, HammerTrigger, Limits,
    LogCondition, LogSink, LogSinkKind, LokiFormat, MetricCondition, Mode, NodeCondition, NodeEvent, Notifier,
    NotifierKind, Provider, ProviderOperation, RetryPolicy, Runbook, Severity, Site, Threshold,
};
pub use template::{Escape, PlaceholderSet, Template};

impl Site {
    /// What applying `new` over `old` adds, changes and removes.
    pub fn diff(old: &Site, new: &Site) -> Vec<Change> {
        diff::diff(old, new)
    }

    /// Names that point nowhere: notifiers, alert rules and providers a
    /// rule or hammer names but the site does not define. Empty for every
    /// site [`drover_site::load_dir`] accepts; the servers check sites that
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
            if let Some(name) = hammer.action.provider()
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
