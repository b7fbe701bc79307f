//! What is sent: one notification, the same value whatever the channel.
//!
//! The alert engine and the hammer guard of `drover-site` decide *that*
//! something must be told ([`drover_site::alerting::Notification`], an
//! intent addressed to one notifier); this crate's [`Notification`] is
//! *what* is told, with the fields every channel needs (Alertmanager's
//! `endsAt` and `generatorURL`, an e-mail's plain-text body) and the
//! values of the `{{alert.…}}` placeholders of body and subject templates.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use drover_site::Labels;
use drover_site::alerting::Notification as NotificationIntent;
pub use drover_site::alerting::NotificationKind;
use drover_site::schema::Severity;
use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

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
    /// no value for. Besides the placeholders `drover-site` accepts in
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
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A firing notification for tests.
    pub(crate) fn tmp_full() -> Notification {
        Notification {
            kind: NotificationKind::Firing,
            name: "tmp-full".to_owned(),
            alert_id: Some("tmp-full{node=\"batch07\"}".to_owned()),
            severity: Severity::Warning,
            labels: Labels::from([
                ("alertname".to_owned(), "tmp-full".to_owned()),
                ("node".to_owned(), "batch07".to_owned()),
                ("severity".to_owned(), "warning".to_owned()),
            ]),
            annotations: BTreeMap::from([("description".to_owned(), "/tmp is \"full\"".to_owned())]),
            summary: "tmp-full is firing on node batch07".to_owned(),
            runbook: Some("https://ops.example.org/runbooks/tmp-full".to_owned()),
            starts_at: Timestamp::from_millis(1_700_000_000_000),
            ends_at: None,
            generator_url: None,
            value: Some(97.5),
        }
    }

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
