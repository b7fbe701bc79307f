//! The Alertmanager channel: `POST {url}/api/v2/alerts` with a list of one
//! alert.
//!
//! The alert's labels are the notification's, with `alertname` (the rule
//! or hammer) and `severity` added when missing; the Alertmanager groups,
//! de-duplicates and routes on them. Its annotations are the
//! notification's, with `summary` and `runbook_url` (the name Prometheus
//! rules use by convention) added. A resolved notification carries
//! `endsAt`, which resolves the alert in the Alertmanager.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::DeliveryError;
use crate::notifier::AlertmanagerConfig;
use drover_react::delivery::Notification;

/// One element of the body of `POST /api/v2/alerts` (Alertmanager's
/// `postableAlert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostableAlert {
    /// Identifying labels, `alertname` among them.
    pub labels: BTreeMap<String, String>,
    /// Informational texts.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339; absent while firing without a `firing_ttl`.
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none", default)]
    pub ends_at: Option<String>,
    /// A link back to drover; absent when unknown (the Alertmanager
    /// refuses an empty one).
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none", default)]
    pub generator_url: Option<String>,
}

/// The alert sent for `notification` at `now`.
pub fn postable_alert(notification: &Notification, firing_ttl: Option<Duration>, now: Timestamp) -> PostableAlert {
    // In Prometheus' model an empty value is the same as no label, and a
    // label name is `[a-zA-Z_][a-zA-Z0-9_]*`: drover's `host-group` becomes
    // `host_group` rather than have the whole alert refused.
    let mut labels: BTreeMap<String, String> = notification
        .labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (label_name(name), value.clone()))
        .collect();
    labels.entry("alertname".to_owned()).or_insert_with(|| notification.name.clone());
    labels.entry("severity".to_owned()).or_insert_with(|| notification.severity.as_str().to_owned());
    let mut annotations = notification.annotations.clone();
    if !notification.summary.is_empty() {
        annotations.entry("summary".to_owned()).or_insert_with(|| notification.summary.clone());
    }
    if let Some(runbook) = &notification.runbook {
        annotations.entry("runbook_url".to_owned()).or_insert_with(|| runbook.clone());
    }
    let ends_at = match (notification.ends_at, notification.kind.is_resolved()) {
        (Some(ends_at), _) => Some(ends_at),
        (None, true) => Some(now),
        (None, false) => firing_ttl.map(|ttl| now.plus(ttl)),
    };
    PostableAlert {
        labels,
        annotations,
        starts_at: notification.starts_at.to_string(),
        ends_at: ends_at.map(|ends| ends.to_string()),
        generator_url: notification.generator_url.clone().filter(|url| !url.is_empty()),
    }
}

/// `name` as a Prometheus label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` before it.
pub fn label_name(name: &str) -> String {
    let mut label: String =
        name.chars().map(|character| if character.is_ascii_alphanumeric() { character } else { '_' }).collect();
    if label.is_empty() || label.starts_with(|character: char| character.is_ascii_digit()) {
        label.insert(0, '_');
    }
    label
}

/// The URL alerts are posted to.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

pub(crate) async fn deliver(
    http: &reqwest::Client,
    config: &AlertmanagerConfig,
    timeout: Duration,
    notification: &Notification,
) -> Result<(), DeliveryError> {
    let alerts = [postable_alert(notification, config.firing_ttl, Timestamp::now())];
    let body = serde_json::to_string(&alerts)
        .map_err(|error| DeliveryError::permanent(format!("cannot encode the alert: {error}")))?;
    crate::http::post_json(http, &alerts_url(&config.url), &config.headers, body, timeout).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use drover_react::delivery::NotificationKind;
    use drover_react::fixtures::tmp_full;

    #[test]
    fn firing_and_resolved_alerts() {
        let now = Timestamp::from_millis(1_700_000_600_000);
        let firing = postable_alert(&tmp_full(), None, now);
        let json = serde_json::to_value(&firing).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "labels": {"alertname": "tmp-full", "node": "batch07", "severity": "warning"},
                "annotations": {
                    "description": "/tmp is \"full\"",
                    "summary": "tmp-full is firing on node batch07",
                    "runbook_url": "https://ops.example.org/runbooks/tmp-full",
                },
                "startsAt": "2023-11-14T22:13:20.000Z",
            })
        );
        let with_ttl = postable_alert(&tmp_full(), Some(Duration::from_secs(3600)), now);
        assert_eq!(with_ttl.ends_at.as_deref(), Some("2023-11-14T23:23:20.000Z"));

        let mut resolved = tmp_full().with_generator_url("http://drover.example.org/ui/alerts");
        resolved.kind = NotificationKind::Resolved;
        let alert = postable_alert(&resolved, None, now);
        assert_eq!(alert.ends_at.as_deref(), Some("2023-11-14T22:23:20.000Z"));
        assert_eq!(alert.generator_url.as_deref(), Some("http://drover.example.org/ui/alerts"));
    }

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("host-group"), "host_group");
        assert_eq!(label_name("node"), "node");
        assert_eq!(label_name("1x"), "_1x");
        assert_eq!(label_name(""), "_");
    }

    #[test]
    fn alerts_url_joins() {
        assert_eq!(alerts_url("http://am:9093/"), "http://am:9093/api/v2/alerts");
        assert_eq!(alerts_url("http://am:9093/prefix"), "http://am:9093/prefix/api/v2/alerts");
    }
}
