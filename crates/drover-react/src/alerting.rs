//! The alert lifecycle: a sans-IO state machine per (rule, label set).
//!
//! ```text
//!              condition true                 held for `for`
//!  (inactive) ───────────────▶ pending ─────────────────────────▶ firing
//!      ▲                          │                                │
//!      └──── condition false ─────┘        condition false         ▼
//!      ▲                                                        resolved
//!      └────────────────────────────────────────────────────────────┘
//! ```
//!
//! The runtime evaluates a rule's condition against the cluster (node
//! states, allocations, log counts, metric samples), and hands the engine
//! the label sets for which it holds *now* ([`Observation`]s) with
//! [`AlertEngine::evaluate`]. A label set that was active and is not
//! observed any more has recovered. The engine answers with the state
//! changes and the [`Notification`]s to send; it never sends anything,
//! reads no clock and does no I/O.
//!
//! Notification rules, in the order they apply:
//!
//! - one firing notification per notifier per firing episode; again every
//!   `repeat_interval` when the rule has one;
//! - an acknowledged alert ([`AlertEngine::ack`]) is not notified again
//!   until it resolves;
//! - a silenced alert ([`Silence`]) is not notified while the silence is
//!   active, but its state moves on as usual: when the silence ends on a
//!   still-firing alert that was never notified, it is notified then;
//! - a resolved notification goes to the notifiers that were told the
//!   alert was firing, and to no one else.

use std::collections::BTreeMap;
use std::fmt;

use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::matcher::{Labels, Matcher, all_match};
use crate::schema::{AlertRule, Severity};

/// An alert's identity: its rule and its full label set, printed as
/// `rule{label="value", …}`. Stable across evaluations and restarts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(String);

impl AlertId {
    /// The id of the alert of `rule` with `labels`.
    pub fn new(rule: &str, labels: &Labels) -> AlertId {
        let inner: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value:?}")).collect();
        AlertId(format!("{rule}{{{}}}", inner.join(", ")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for AlertId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "AlertId({})", self.0)
    }
}

/// One label set for which a rule's condition holds now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// What identifies the affected thing: `node`, `job`, `mount`, …
    pub labels: Labels,
    /// The observed value (metric value, log count, heartbeat age in
    /// seconds), for the notification.
    pub value: Option<f64>,
}

/// Where an alert is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
}

/// Who acknowledged an alert, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The user.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// An active (pending or firing) alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The identity.
    pub id: AlertId,
    /// The rule's name.
    pub rule: String,
    /// Every label: the observation's, the rule's, `alertname` and
    /// `severity`.
    pub labels: Labels,
    /// Pending or firing.
    pub state: AlertState,
    /// Since when the condition holds without a break.
    pub active_since: Timestamp,
    /// When it started firing.
    pub firing_since: Option<Timestamp>,
    /// The last observed value.
    pub value: Option<f64>,
    /// The last firing notification.
    pub last_notified: Option<Timestamp>,
    /// The notifiers told it is firing (who gets the resolved message).
    pub notified: Vec<String>,
    /// The acknowledgement, if any.
    pub acknowledged: Option<Acknowledgement>,
}

/// A silence: alerts whose labels match are not notified between `starts`
/// and `ends`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Chosen by whoever creates it.
    pub id: String,
    /// Every matcher must match (`alertname`, `node`, … are labels too).
    pub matchers: Vec<Matcher>,
    /// The start (inclusive).
    pub starts: Timestamp,
    /// The end (exclusive).
    pub ends: Timestamp,
    /// Who created it.
    pub author: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether the silence is in force at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.starts <= now && now < self.ends
    }

    /// Whether it covers an alert with `labels` at `now`.
    pub fn silences(&self, labels: &Labels, now: Timestamp) -> bool {
        self.is_active(now) && all_match(&self.matchers, labels)
    }
}

/// What a notification announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// An alert fires (or still fires, for a repeat).
    Firing,
    /// An alert that was notified has resolved.
    Resolved,
    /// A hammer acted (or, in `dry-run` mode, would have acted).
    HammerAction,
    /// A hammer stopped and hands over to a human.
    Escalation,
    /// A hammer in `approve` mode asks for approval.
    ApprovalRequested,
}

impl NotificationKind {
    /// The name used in templates (`{{alert.status}}`).
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Firing => "firing",
            NotificationKind::Resolved => "resolved",
            NotificationKind::HammerAction => "hammer_action",
            NotificationKind::Escalation => "escalation",
            NotificationKind::ApprovalRequested => "approval_requested",
        }
    }

    /// Whether an Alertmanager should see the alert as resolved.
    pub fn is_resolved(self) -> bool {
        self == NotificationKind::Resolved
    }
}

/// The intent to tell a notifier something; the runtime renders the
/// notifier's template with these fields and delivers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The notifier's name.
    pub notifier: String,
    /// What is announced.
    pub kind: NotificationKind,
    /// The alert rule or hammer it comes from.
    pub source: String,
    /// The alert, for alert notifications.
    pub alert_id: Option<AlertId>,
    /// How urgent.
    pub severity: Severity,
    /// The labels (`{{alert.labels.x}}`).
    pub labels: Labels,
    /// The annotations (`{{alert.annotations.x}}`).
    pub annotations: BTreeMap<String, String>,
    /// One line for humans.
    pub summary: String,
    /// The runbook, as written in the site.
    pub runbook: Option<String>,
    /// When the alert started firing (or the escalation happened).
    pub starts_at: Timestamp,
    /// The last observed value.
    pub value: Option<f64>,
}

/// A change of an alert's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Inactive → pending.
    Pending(AlertId),
    /// Pending (or inactive, with `for = 0`) → firing. Hammers with
    /// `when { alert = … }` trigger on this.
    Firing(AlertId),
    /// Pending → inactive: the condition stopped before `for`.
    Cleared(AlertId),
    /// Firing → resolved.
    Resolved(AlertId),
}

/// What one evaluation decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluated {
    /// State changes, in alert id order.
    pub transitions: Vec<Transition>,
    /// Notifications to send.
    pub notifications: Vec<Notification>,
}

/// Why an operator action on alerts failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertError {
    /// No active alert has this id.
    UnknownAlert(AlertId),
    /// No silence has this id.
    UnknownSilence(String),
    /// A silence must end after it starts and have at least one matcher.
    InvalidSilence(String),
}

impl fmt::Display for AlertError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertError::UnknownAlert(id) => write!(formatter, "no active alert {id}: see drover alert list"),
            AlertError::UnknownSilence(id) => write!(formatter, "no silence {id:?}"),
            AlertError::InvalidSilence(reason) => write!(formatter, "invalid silence: {reason}"),
        }
    }
}

impl std::error::Error for AlertError {}

/// Every active alert and silence; the state the evaluator keeps between
/// evaluations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AlertEngine {
    alerts: BTreeMap<AlertId, Alert>,
    silences: BTreeMap<String, Silence>,
}

impl AlertEngine {
    /// No alerts, no silences.
    pub fn new() -> AlertEngine {
        AlertEngine::default()
    }

    /// The active alerts, in id order.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// One active alert.
    pub fn alert(&self, id: &AlertId) -> Option<&Alert> {
        self.alerts.get(id)
    }

    /// The silences, expired ones included until [`AlertEngine::prune`].
    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.silences.values()
    }

    /// Feeds one evaluation of `rule`: `active` holds the label sets for
    /// which its condition holds at `now`; every other alert of the rule
    /// has recovered.
    pub fn evaluate(&mut self, rule: &AlertRule, active: &[Observation], now: Timestamp) -> Evaluated {
        let mut evaluated = Evaluated::default();
        let mut seen = std::collections::BTreeSet::new();
        for observation in active {
            let labels = alert_labels(rule, &observation.labels);
            let id = AlertId::new(&rule.name, &labels);
            if !seen.insert(id.clone()) {
                continue;
            }
            match self.alerts.get_mut(&id) {
                Some(alert) => {
                    alert.value = observation.value;
                    if alert.state == AlertState::Pending && now.since(alert.active_since) >= rule.hold.get() {
                        alert.state = AlertState::Firing;
                        alert.firing_since = Some(now);
                        evaluated.transitions.push(Transition::Firing(id.clone()));
                    }
                }
                None => {
                    let fires_at_once = rule.hold.get().is_zero();
                    let alert = Alert {
                        id: id.clone(),
                        rule: rule.name.clone(),
                        labels,
                        state: if fires_at_once { AlertState::Firing } else { AlertState::Pending },
                        active_since: now,
                        firing_since: fires_at_once.then_some(now),
                        value: observation.value,
                        last_notified: None,
                        notified: Vec::new(),
                        acknowledged: None,
                    };
                    evaluated.transitions.push(if fires_at_once {
                        Transition::Firing(id.clone())
                    } else {
                        Transition::Pending(id.clone())
                    });
                    self.alerts.insert(id.clone(), alert);
                }
            }
        }

        let recovered: Vec<AlertId> = self
            .alerts
            .values()
            .filter(|alert| alert.rule == rule.name && !seen.contains(&alert.id))
            .map(|alert| alert.id.clone())
            .collect();
        for id in recovered {
            let Some(alert) = self.alerts.remove(&id) else {
                continue;
            };
            match alert.state {
                AlertState::Pending => evaluated.transitions.push(Transition::Cleared(id)),
                AlertState::Firing => {
                    for notifier in &alert.notified {
                        evaluated.notifications.push(notification(
                            rule,
                            &alert,
                            notifier,
                            NotificationKind::Resolved,
                            now,
                        ));
                    }
                    evaluated.transitions.push(Transition::Resolved(id));
                }
            }
        }

        let silences = &self.silences;
        for alert in self.alerts.values_mut().filter(|alert| alert.rule == rule.name) {
            if alert.state != AlertState::Firing || alert.acknowledged.is_some() {
                continue;
            }
            if silences.values().any(|silence| silence.silences(&alert.labels, now)) {
                continue;
            }
            let due = match (alert.last_notified, rule.repeat_interval) {
                (None, _) => true,
                (Some(last), Some(repeat)) => now.since(last) >= repeat.get(),
                (Some(_), None) => false,
            };
            if !due {
                continue;
            }
            for notifier in &rule.notify {
                evaluated.notifications.push(notification(rule, alert, notifier, NotificationKind::Firing, now));
                if !alert.notified.contains(notifier) {
                    alert.notified.push(notifier.clone());
                }
            }
            alert.last_notified = Some(now);
        }
        evaluated.transitions.sort_by(|left, right| transition_id(left).cmp(transition_id(right)));
        evaluated
    }

    /// Resolves every alert of a rule that was removed from the site (its
    /// notifiers hear it resolved).
    pub fn remove_rule(&mut self, rule: &AlertRule, now: Timestamp) -> Evaluated {
        self.evaluate(rule, &[], now)
    }

    /// Acknowledges an alert: no more firing notifications until it
    /// resolves.
    pub fn ack(&mut self, id: &AlertId, who: &str, now: Timestamp) -> Result<(), AlertError> {
        let alert = self.alerts.get_mut(id).ok_or_else(|| AlertError::UnknownAlert(id.clone()))?;
        alert.acknowledged = Some(Acknowledgement { by: who.to_owned(), at: now });
        Ok(())
    }

    /// Adds (or replaces, by id) a silence.
    pub fn add_silence(&mut self, silence: Silence) -> Result<(), AlertError> {
        if silence.ends <= silence.starts {
            return Err(AlertError::InvalidSilence("it must end after it starts".to_owned()));
        }
        if silence.matchers.is_empty() {
            return Err(AlertError::InvalidSilence(
                "it needs at least one matcher, such as alertname=\"tmp-full\"".to_owned(),
            ));
        }
        self.silences.insert(silence.id.clone(), silence);
        Ok(())
    }

    /// Ends a silence at `now`.
    pub fn expire_silence(&mut self, id: &str, now: Timestamp) -> Result<(), AlertError> {
        let silence = self.silences.get_mut(id).ok_or_else(|| AlertError::UnknownSilence(id.to_owned()))?;
        if silence.ends > now {
            silence.ends = now.max(silence.starts);
        }
        Ok(())
    }

    /// The active silence covering `labels` at `now`, if any.
    pub fn silenced_by(&self, labels: &Labels, now: Timestamp) -> Option<&Silence> {
        self.silences.values().find(|silence| silence.silences(labels, now))
    }

    /// Forgets silences that ended before `now`.
    pub fn prune(&mut self, now: Timestamp) {
        self.silences.retain(|_, silence| silence.ends > now);
    }
}

fn transition_id(transition: &Transition) -> &AlertId {
    match transition {
        Transition::Pending(id) | Transition::Firing(id) | Transition::Cleared(id) | Transition::Resolved(id) => id,
    }
}

/// An alert's labels: the observation's, then the rule's (which win), then
/// `alertname` and `severity`.
pub fn alert_labels(rule: &AlertRule, observed: &Labels) -> Labels {
    let mut labels = observed.clone();
    labels.extend(rule.labels.iter().map(|(key, value)| (key.clone(), value.clone())));
    labels.insert("alertname".to_owned(), rule.name.clone());
    labels.insert("severity".to_owned(), rule.severity.as_str().to_owned());
    labels
}

fn notification(
    rule: &AlertRule,
    alert: &Alert,
    notifier: &str,
    kind: NotificationKind,
    now: Timestamp,
) -> Notification {
    let subject = ["node", "job", "instance"]
        .iter()
        .find_map(|key| alert.labels.get(*key).map(|value| format!(" on {key} {value}")))
        .unwrap_or_default();
    let summary = match rule.annotations.get("summary") {
        Some(summary) => summary.clone(),
        None => format!("{} is {}{subject}", rule.name, kind.as_str()),
    };
    Notification {
        notifier: notifier.to_owned(),
        kind,
        source: rule.name.clone(),
        alert_id: Some(alert.id.clone()),
        severity: rule.severity,
        labels: alert.labels.clone(),
        annotations: rule.annotations.clone(),
        summary,
        runbook: rule.runbook.as_ref().map(|runbook| runbook.as_str().to_owned()),
        starts_at: alert.firing_since.unwrap_or(now),
        value: alert.value,
    }
}

/// An alert received from an external Alertmanager's webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedAlert {
    /// Alertmanager's fingerprint (or the labels printed when none).
    pub fingerprint: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Whether it fires (`false`: resolved).
    pub firing: bool,
    /// When drover received it last.
    pub received_at: Timestamp,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schema::{Condition, NodeCondition};
    use drover_types::DurationSpec;
    use proptest::prelude::*;

    fn rule(hold_seconds: u64, repeat: Option<u64>) -> AlertRule {
        AlertRule {
            name: "node-down".to_owned(),
            condition: Condition::Node(NodeCondition::Status("down".to_owned())),
            hold: DurationSpec::from_secs(hold_seconds),
            severity: Severity::Critical,
            labels: [("team".to_owned(), "ops".to_owned())].into(),
            annotations: BTreeMap::new(),
            notify: vec!["chat".to_owned(), "mail".to_owned()],
            runbook: Some(crate::schema::Runbook::Url("https://ops.example.org/node-down".to_owned())),
            repeat_interval: repeat.map(DurationSpec::from_secs),
        }
    }

    fn on(node: &str) -> Observation {
        Observation { labels: [("node".to_owned(), node.to_owned())].into(), value: None }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000_000 + seconds * 1000)
    }

    fn kinds(evaluated: &Evaluated) -> Vec<(String, NotificationKind)> {
        evaluated.notifications.iter().map(|n| (n.notifier.clone(), n.kind)).collect()
    }

    #[test]
    fn pending_then_firing_then_resolved_with_one_notification_per_episode() {
        let rule = rule(60, None);
        let mut engine = AlertEngine::new();
        let first = engine.evaluate(&rule, &[on("n1")], at(0));
        let id = AlertId::new("node-down", &alert_labels(&rule, &on("n1").labels));
        assert_eq!(id.as_str(), "node-down{alertname=\"node-down\", node=\"n1\", severity=\"critical\", team=\"ops\"}");
        assert_eq!(first.transitions, [Transition::Pending(id.clone())]);
        assert!(first.notifications.is_empty());

        assert_eq!(engine.evaluate(&rule, &[on("n1")], at(59)), Evaluated::default());
        let firing = engine.evaluate(&rule, &[on("n1")], at(60));
        assert_eq!(firing.transitions, [Transition::Firing(id.clone())]);
        assert_eq!(
            kinds(&firing),
            [("chat".to_owned(), NotificationKind::Firing), ("mail".to_owned(), NotificationKind::Firing)]
        );
        assert_eq!(firing.notifications[0].summary, "node-down is firing on node n1");
        assert_eq!(firing.notifications[0].runbook.as_deref(), Some("https://ops.example.org/node-down"));
        assert_eq!(firing.notifications[0].starts_at, at(60));

        assert_eq!(engine.evaluate(&rule, &[on("n1")], at(6000)), Evaluated::default(), "no repeat by default");
        let resolved = engine.evaluate(&rule, &[], at(6001));
        assert_eq!(resolved.transitions, [Transition::Resolved(id.clone())]);
        assert_eq!(
            kinds(&resolved),
            [("chat".to_owned(), NotificationKind::Resolved), ("mail".to_owned(), NotificationKind::Resolved)]
        );
        assert_eq!(engine.alerts().count(), 0);

        let again = engine.evaluate(&rule, &[on("n1")], at(7000));
        assert_eq!(again.transitions, [Transition::Pending(id)], "a new episode starts over");
    }

    #[test]
    fn a_pending_alert_that_recovers_is_cleared_silently() {
        let rule = rule(60, None);
        let mut engine = AlertEngine::new();
        engine.evaluate(&rule, &[on("n1"), on("n2")], at(0));
        let cleared = engine.evaluate(&rule, &[on("n2")], at(30));
        assert_eq!(cleared.transitions.len(), 1);
        assert!(matches!(cleared.transitions[0], Transition::Cleared(_)));
        assert!(cleared.notifications.is_empty());
        // n1 comes back: its `for` starts again.
        engine.evaluate(&rule, &[on("n1"), on("n2")], at(40));
        let fired = engine.evaluate(&rule, &[on("n1"), on("n2")], at(60));
        assert_eq!(fired.transitions.len(), 1, "only n2 held for 60s: {fired:?}");
    }

    #[test]
    fn repeat_interval_renotifies_until_acknowledged() {
        let rule = rule(0, Some(3600));
        let mut engine = AlertEngine::new();
        let fired = engine.evaluate(&rule, &[on("n1")], at(0));
        assert_eq!(fired.notifications.len(), 2);
        assert!(engine.evaluate(&rule, &[on("n1")], at(3599)).notifications.is_empty());
        assert_eq!(engine.evaluate(&rule, &[on("n1")], at(3600)).notifications.len(), 2);
        let id = engine.alerts().next().unwrap().id.clone();
        engine.ack(&id, "alice", at(3700)).unwrap();
        assert_eq!(engine.alert(&id).unwrap().acknowledged.as_ref().unwrap().by, "alice");
        assert!(engine.evaluate(&rule, &[on("n1")], at(7300)).notifications.is_empty());
        let resolved = engine.evaluate(&rule, &[], at(7400));
        assert_eq!(resolved.notifications.len(), 2, "an acknowledged alert still resolves");
        assert_eq!(engine.ack(&id, "alice", at(7500)), Err(AlertError::UnknownAlert(id)));
    }

    #[test]
    fn silences_suppress_notifications_not_state() {
        let rule = rule(0, None);
        let mut engine = AlertEngine::new();
        let silence = Silence {
            id: "s1".to_owned(),
            matchers: vec![Matcher::parse("node=~n[12]").unwrap(), Matcher::parse("alertname=node-down").unwrap()],
            starts: at(0),
            ends: at(600),
            author: "bob".to_owned(),
            comment: "maintenance".to_owned(),
        };
        engine.add_silence(silence).unwrap();
        let fired = engine.evaluate(&rule, &[on("n1"), on("n3")], at(10));
        assert_eq!(fired.transitions.len(), 2, "both fire");
        assert!(fired.notifications.iter().all(|n| n.labels["node"] == "n3"), "only n3 is notified: {fired:?}");
        assert!(engine.silenced_by(&engine.alerts().next().unwrap().labels, at(10)).is_some());
        // The silence ends while n1 still fires: n1 is notified then, once.
        let after = engine.evaluate(&rule, &[on("n1"), on("n3")], at(600));
        assert_eq!(after.notifications.len(), 2);
        assert!(after.notifications.iter().all(|n| n.labels["node"] == "n1"));
        assert!(engine.evaluate(&rule, &[on("n1"), on("n3")], at(700)).notifications.is_empty());
    }

    #[test]
    fn silences_that_were_active_at_firing_mean_no_resolved_message() {
        let rule = rule(0, None);
        let mut engine = AlertEngine::new();
        let silence = Silence {
            id: "s1".to_owned(),
            matchers: vec![Matcher::equal("node", "n1")],
            starts: at(0),
            ends: at(100),
            author: "bob".to_owned(),
            comment: String::new(),
        };
        engine.add_silence(silence.clone()).unwrap();
        engine.evaluate(&rule, &[on("n1")], at(1));
        let resolved = engine.evaluate(&rule, &[], at(2));
        assert!(resolved.notifications.is_empty());
        assert!(matches!(resolved.transitions[0], Transition::Resolved(_)));

        engine.expire_silence("s1", at(50)).unwrap();
        engine.prune(at(51));
        assert_eq!(engine.silences().count(), 0);
        let invalid = Silence { ends: at(0), ..silence.clone() };
        assert!(engine.add_silence(invalid).is_err());
        assert!(engine.add_silence(Silence { matchers: Vec::new(), ..silence }).is_err());
        assert_eq!(engine.expire_silence("nope", at(0)), Err(AlertError::UnknownSilence("nope".to_owned())));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Observe(Vec<u8>),
        Ack(u8),
    }

    fn step() -> impl Strategy<Value = (u32, Step)> {
        (
            1_u32..120,
            prop_oneof![
                4 => proptest::collection::vec(0_u8..4, 0..4).prop_map(Step::Observe),
                1 => (0_u8..4).prop_map(Step::Ack),
            ],
        )
    }

    proptest! {
        /// Without a repeat interval every notifier hears "firing" at most
        /// once per episode and "resolved" only after "firing"; nothing
        /// fires before its condition held for `for`.
        #[test]
        fn one_firing_notification_per_episode(hold in 0_u64..200, steps in proptest::collection::vec(step(), 1..60)) {
            let rule = rule(hold, None);
            let mut engine = AlertEngine::new();
            let mut now = at(0);
            // Per node: notified firing in the current episode, and since when active.
            let mut told: BTreeMap<String, bool> = BTreeMap::new();
            let mut since: BTreeMap<String, Timestamp> = BTreeMap::new();
            for (gap, action) in steps {
                now = now.plus(std::time::Duration::from_secs(u64::from(gap)));
                match action {
                    Step::Ack(node) => {
                        let labels = alert_labels(&rule, &on(&format!("n{node}")).labels);
                        let _ = engine.ack(&AlertId::new(&rule.name, &labels), "prop", now);
                    }
                    Step::Observe(nodes) => {
                        let observations: Vec<Observation> = nodes.iter().map(|node| on(&format!("n{node}"))).collect();
                        let active: std::collections::BTreeSet<String> =
                            observations.iter().map(|o| o.labels["node"].clone()).collect();
                        since.retain(|node, _| active.contains(node));
                        for node in &active {
                            since.entry(node.clone()).or_insert(now);
                        }
                        let evaluated = engine.evaluate(&rule, &observations, now);
                        for transition in &evaluated.transitions {
                            if let Transition::Firing(id) = transition {
                                let alert = engine.alert(id).unwrap();
                                let node = &alert.labels["node"];
                                prop_assert!(now.since(since[node]) >= rule.hold.get());
                            }
                        }
                        let mut firing_per_node: BTreeMap<String, usize> = BTreeMap::new();
                        for notification in &evaluated.notifications {
                            let node = notification.labels["node"].clone();
                            match notification.kind {
                                NotificationKind::Firing => {
                                    prop_assert!(!told.get(&node).copied().unwrap_or(false), "second firing for {node}");
                                    *firing_per_node.entry(node).or_default() += 1;
                                }
                                NotificationKind::Resolved => {
                                    prop_assert!(told.get(&node).copied().unwrap_or(false));
                                    prop_assert!(!active.contains(&node));
                                }
                                _ => prop_assert!(false, "unexpected kind"),
                            }
                        }
                        for (node, count) in firing_per_node {
                            prop_assert_eq!(count, rule.notify.len());
                            told.insert(node, true);
                        }
                        told.retain(|node, _| active.contains(node));
                    }
                }
            }
        }
    }
}
