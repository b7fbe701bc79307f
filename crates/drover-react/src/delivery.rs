//! What is sent, and what became of it: one notification, the same value
//! whatever the channel, and the record of its delivery.
//!
//! The alert engine and the hammer guard decide *that* something must be
//! told ([`crate::alerting::Notification`], an intent addressed to one
//! notifier); this module's [`Notification`] is *what* is told, with the fields every channel needs (Alertmanager's
//! `endsAt` and `generatorURL`, an e-mail's plain-text body) and the
//! values of the `{{alert.…}}` placeholders of body and subject templates.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use std::fmt;

use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alerting::Notification as NotificationIntent;
pub use crate::alerting::NotificationKind;
use crate::matcher::Labels;
use crate::schema::Severity;

/// One thing to tell a notifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// What is announced.
    pub kind: NotificationKind,
    /// The alert rule or hammer it comes from: `{{alert.name}}`, and the
    /// `alertname` label sent to an Alertmanager.
    pub name: String,
    /// The alert's identity (`rule{label="value"}`), for alert
    /// notifications.
    #[serde(default)]
    pub alert_id: Option<String>,
    /// How urgent.
    pub severity: Severity,
    /// The labels (`{{alert.labels.x}}`).
    #[serde(default)]
    pub labels: Labels,
    /// The annotations (`{{alert.annotations.x}}`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// One line for humans.
    pub summary: String,
    /// Where a human reads what to do: a URL (or a site-relative file name
    /// when nobody mapped it to a URL).
    #[serde(default)]
    pub runbook: Option<String>,
    /// When the alert started firing (or the hammer acted).
    pub starts_at: Timestamp,
    /// When the alert resolved; `None` while it fires.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Where the alert can be looked at (drover's dashboard), sent as
    /// Alertmanager's `generatorURL`.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// The last observed value.
    #[serde(default)]
    pub value: Option<f64>,
}

impl Notification {
    /// The notification for an intent of the alert engine or the hammer
    /// guard, made at `now`: a resolved alert ends at `now`.
    pub fn from_intent(intent: &NotificationIntent, now: Timestamp) -> Notification {
        let kind = intent.kind;
        Notification {
            kind,
            name: intent.source.clone(),
            alert_id: intent.alert_id.as_ref().map(ToString::to_string),
            severity: intent.severity,
            labels: intent.labels.clone(),
            annotations: intent.annotations.clone(),
            summary: intent.summary.clone(),
            runbook: intent.runbook.clone(),
            starts_at: intent.starts_at,
            ends_at: kind.is_resolved().then_some(now),
            generator_url: None,
            value: intent.value,
        }
    }

    /// The same notification with a `generatorURL` (a link to the alert
    /// in drover's dashboard).
    pub fn with_generator_url(mut self, url: impl Into<String>) -> Notification {
        self.generator_url = Some(url.into());
        self
    }

    /// The value of an alert placeholder (`alert.name`,
    /// `alert.labels.node`, …), or `None` for a name this notification has
    /// no value for. Besides the placeholders a template accepts in
    /// templates, `alert.kind`, `alert.ends_at` and `alert.generator_url`
    /// are known.
    pub fn value_of(&self, placeholder: &str) -> Option<String> {
        if let Some(key) = placeholder.strip_prefix("alert.labels.") {
            return self.labels.get(key).cloned();
        }
        if let Some(key) = placeholder.strip_prefix("alert.annotations.") {
            return self.annotations.get(key).cloned();
        }
        let value = match placeholder {
            "alert.id" => self.alert_id.clone().unwrap_or_default(),
            "alert.name" => self.name.clone(),
            "alert.status" | "alert.kind" => self.kind.as_str().to_owned(),
            "alert.severity" => self.severity.as_str().to_owned(),
            "alert.summary" => self.summary.clone(),
            "alert.runbook" => self.runbook.clone().unwrap_or_default(),
            "alert.starts_at" => self.starts_at.to_string(),
            "alert.ends_at" => self.ends_at.map(|ends_at| ends_at.to_string()).unwrap_or_default(),
            "alert.generator_url" => self.generator_url.clone().unwrap_or_default(),
            "alert.value" => self.value.map(|value| value.to_string()).unwrap_or_default(),
            "alert.json" => self.to_json(),
            _ => return None,
        };
        Some(value)
    }

    /// The notification as one JSON document: the body of a webhook
    /// without a `body` template, and `{{alert.json}}`.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail; an empty
        // object is a safe answer if it ever did.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The plain-text body of an e-mail: what happened, the runbook link,
    /// when, and every label and annotation.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let headline = match self.kind {
            NotificationKind::Firing => "FIRING",
            NotificationKind::Resolved => "RESOLVED",
            NotificationKind::HammerAction => "HAMMER ACTION",
            NotificationKind::Escalation => "ESCALATION",
            NotificationKind::ApprovalRequested => "APPROVAL REQUESTED",
        };
        // Writing into a String cannot fail.
        let _ = writeln!(text, "[{headline}] {} ({})", self.name, self.severity.as_str());
        let _ = writeln!(text, "{}", self.summary);
        text.push('\n');
        match &self.runbook {
            Some(runbook) => {
                let _ = writeln!(text, "Runbook: {runbook}");
            }
            None => text.push_str("Runbook: none\n"),
        }
        let _ = writeln!(text, "Started: {}", self.starts_at);
        if let Some(ends_at) = self.ends_at {
            let _ = writeln!(text, "Ended: {ends_at}");
        }
        if let Some(value) = self.value {
            let _ = writeln!(text, "Value: {value}");
        }
        if let Some(url) = &self.generator_url {
            let _ = writeln!(text, "Details: {url}");
        }
        if let Some(id) = &self.alert_id {
            let _ = writeln!(text, "Alert: {id}");
        }
        if !self.labels.is_empty() {
            text.push_str("\nLabels:\n");
            for (key, value) in &self.labels {
                let _ = writeln!(text, "  {key} = {value}");
            }
        }
        if !self.annotations.is_empty() {
            text.push_str("\nAnnotations:\n");
            for (key, value) in &self.annotations {
                let _ = writeln!(text, "  {key} = {value}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fixtures::tmp_full;

    #[test]
    fn intents_become_notifications() {
        let intent = NotificationIntent {
            notifier: "ops-chat".to_owned(),
            kind: NotificationKind::Resolved,
            source: "tmp-full".to_owned(),
            alert_id: None,
            severity: Severity::Critical,
            labels: Labels::from([("node".to_owned(), "batch07".to_owned())]),
            annotations: BTreeMap::new(),
            summary: "tmp-full is resolved".to_owned(),
            runbook: Some("https://ops.example.org/rb".to_owned()),
            starts_at: Timestamp::from_millis(1000),
            value: None,
        };
        let now = Timestamp::from_millis(5000);
        let notification = Notification::from_intent(&intent, now).with_generator_url("http://drover/ui/alerts");
        assert_eq!(notification.kind, NotificationKind::Resolved);
        assert_eq!(notification.ends_at, Some(now));
        assert_eq!(notification.name, "tmp-full");
        assert_eq!(notification.value_of("alert.status").unwrap(), "resolved");
        assert_eq!(notification.value_of("alert.runbook").unwrap(), "https://ops.example.org/rb");
        assert_eq!(notification.value_of("alert.labels.node").unwrap(), "batch07");
        assert_eq!(notification.value_of("alert.labels.rack"), None);
        assert_eq!(notification.value_of("alert.generator_url").unwrap(), "http://drover/ui/alerts");
    }

    #[test]
    fn text_carries_the_runbook_and_labels() {
        let text = tmp_full().text();
        assert!(text.starts_with("[FIRING] tmp-full (warning)\ntmp-full is firing on node batch07\n"), "{text}");
        assert!(text.contains("Runbook: https://ops.example.org/runbooks/tmp-full\n"), "{text}");
        assert!(text.contains("  node = batch07\n"), "{text}");
    }

    #[test]
    fn json_round_trips() {
        let notification = tmp_full();
        let back: Notification = serde_json::from_str(&notification.to_json()).unwrap();
        assert_eq!(back, notification);
    }
}

/// The identity of one delivery: one notification to one notifier.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// A fresh random id.
    #[allow(clippy::new_without_default)] // a default id would be a random one, which surprises
    pub fn new() -> DeliveryId {
        DeliveryId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Reads an id as printed (32 hexadecimal digits), for API paths.
    pub fn parse(text: &str) -> Option<DeliveryId> {
        let is_id = text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit());
        is_id.then(|| DeliveryId(text.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for DeliveryId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "DeliveryId({})", self.0)
    }
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or for its next retry
    /// (`next_attempt_at`).
    Queued,
    /// An attempt is in progress.
    Sending,
    /// The notifier accepted it (`delivered_at`).
    Delivered,
    /// It will not be tried again by itself (`failed_at`, `failure`).
    Failed,
}

impl DeliveryStatus {
    /// The name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Whether nothing more happens to it by itself.
    pub fn is_finished(self) -> bool {
        matches!(self, DeliveryStatus::Delivered | DeliveryStatus::Failed)
    }
}

/// One notification to one notifier, and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The identity.
    pub id: DeliveryId,
    /// The notifier's name.
    pub notifier: String,
    /// What is delivered.
    pub notification: Notification,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made (started) so far.
    pub attempts: u32,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When the last attempt started.
    #[serde(default)]
    pub last_attempt_at: Option<Timestamp>,
    /// When the next attempt is due, while queued.
    #[serde(default)]
    pub next_attempt_at: Option<Timestamp>,
    /// What went wrong in the last failed attempt.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the notifier accepted it.
    #[serde(default)]
    pub delivered_at: Option<Timestamp>,
    /// When it was given up.
    #[serde(default)]
    pub failed_at: Option<Timestamp>,
    /// Why it was given up: a permanent error, no attempts or time left,
    /// no such notifier.
    #[serde(default)]
    pub failure: Option<String>,
}

impl DeliveryRecord {
    /// A new delivery of `notification` to `notifier`, queued at `now`.
    pub fn queued(notifier: &str, notification: Notification, now: Timestamp) -> DeliveryRecord {
        DeliveryRecord {
            id: DeliveryId::new(),
            notifier: notifier.to_owned(),
            notification,
            status: DeliveryStatus::Queued,
            attempts: 0,
            queued_at: now,
            last_attempt_at: None,
            next_attempt_at: Some(now),
            last_error: None,
            delivered_at: None,
            failed_at: None,
            failure: None,
        }
    }

    /// Gives the delivery up for `failure`.
    pub fn fail(&mut self, failure: String, now: Timestamp) {
        self.status = DeliveryStatus::Failed;
        self.next_attempt_at = None;
        self.failed_at = Some(now);
        self.failure = Some(failure);
    }

    /// When it finished, if it did.
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.delivered_at.or(self.failed_at)
    }
}
