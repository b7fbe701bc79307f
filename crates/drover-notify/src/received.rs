//! Alerts *from* an existing Alertmanager: its webhook payload (version
//! 4), read into typed values.
//!
//! An Alertmanager receiver `webhook_configs: [{url: …}]` pointing at
//! drover POSTs one group of alerts per notification:
//!
//! ```json
//! {"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
//!  "status": "firing", "receiver": "drover", "groupLabels": {…},
//!  "commonLabels": {…}, "commonAnnotations": {…}, "externalURL": "…",
//!  "alerts": [{"status": "firing", "labels": {…}, "annotations": {…},
//!              "startsAt": "…", "endsAt": "0001-01-01T00:00:00Z",
//!              "generatorURL": "…", "fingerprint": "…"}]}
//! ```
//!
//! The zero time Go writes for "no end" becomes `None`. Unknown fields are
//! ignored (Alertmanager adds fields within a version); a different
//! `version`, a missing field or a malformed time is an error that says
//! which and where.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike};
use drover_react::Labels;
use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The webhook payload version this parser reads.
pub const ALERTMANAGER_WEBHOOK_VERSION: &str = "4";

/// Whether a group or an alert fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceivedStatus {
    /// At least one alert (for a group) or this alert fires.
    Firing,
    /// Every alert (for a group) or this alert has resolved.
    Resolved,
}

/// One POST of an Alertmanager webhook receiver.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertmanagerWebhook {
    /// The payload version (always [`ALERTMANAGER_WEBHOOK_VERSION`]).
    pub version: String,
    /// Identifies the group of alerts (for de-duplication).
    pub group_key: String,
    /// Alerts left out because the receiver's `max_alerts` was reached.
    pub truncated_alerts: u64,
    /// The group's status.
    pub status: ReceivedStatus,
    /// The receiver's name in the Alertmanager configuration.
    pub receiver: String,
    /// The labels the group is grouped by.
    pub group_labels: Labels,
    /// The labels every alert of the group has.
    pub common_labels: Labels,
    /// The annotations every alert of the group has.
    pub common_annotations: BTreeMap<String, String>,
    /// The Alertmanager's own URL.
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a webhook payload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookAlert {
    /// Whether it fires.
    pub status: ReceivedStatus,
    /// Its labels (`alertname` among them); what hammer and alert-rule
    /// matchers are matched against.
    pub labels: Labels,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started.
    pub starts_at: Timestamp,
    /// When it ended; `None` while it fires without a known end.
    pub ends_at: Option<Timestamp>,
    /// Where it came from (a Prometheus graph, drover's dashboard).
    pub generator_url: String,
    /// The Alertmanager's identity of its label set.
    pub fingerprint: String,
}

impl WebhookAlert {
    /// The `alertname` label, or `""`.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePayload {
    version: String,
    #[serde(default)]
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
    status: ReceivedStatus,
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    group_labels: Labels,
    #[serde(default)]
    common_labels: Labels,
    #[serde(default)]
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    external_url: String,
    alerts: Vec<WireAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert {
    status: ReceivedStatus,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
}

/// Reads the body of an Alertmanager webhook POST.
///
/// Fails with [`Error::InvalidPayload`] saying what is wrong: not JSON (with
/// line and column), a missing field, an unsupported `version`, a time that
/// is not RFC 3339 (with the alert's position).
pub fn parse_alertmanager_webhook(body: &[u8]) -> Result<AlertmanagerWebhook> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidPayload("the body is empty".to_owned()));
    }
    // Read the version first, so a payload of another version is reported
    // as such rather than as a missing field.
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| Error::InvalidPayload(format!("not JSON: {error}")))?;
    let Some(object) = document.as_object() else {
        return Err(Error::InvalidPayload("expected a JSON object".to_owned()));
    };
    match object.get("version") {
        Some(serde_json::Value::String(version)) if version == ALERTMANAGER_WEBHOOK_VERSION => {}
        Some(other) => {
            return Err(Error::InvalidPayload(format!(
                "version {other} is not supported: drover reads version \"{ALERTMANAGER_WEBHOOK_VERSION}\""
            )));
        }
        None => return Err(Error::InvalidPayload("missing field `version`".to_owned())),
    }
    let wire: WirePayload = serde_json::from_slice(body).map_err(|error| Error::InvalidPayload(error.to_string()))?;
    let alerts = wire
        .alerts
        .into_iter()
        .enumerate()
        .map(|(position, alert)| {
            let starts_at = parse_time(&alert.starts_at)
                .map_err(|message| Error::InvalidPayload(format!("alerts[{position}].startsAt: {message}")))?
                .ok_or_else(|| Error::InvalidPayload(format!("alerts[{position}].startsAt is the zero time")))?;
            let ends_at = match alert.ends_at.as_deref() {
                None | Some("") => None,
                Some(text) => parse_time(text)
                    .map_err(|message| Error::InvalidPayload(format!("alerts[{position}].endsAt: {message}")))?,
            };
            Ok(WebhookAlert {
                status: alert.status,
                labels: alert.labels,
                annotations: alert.annotations,
                starts_at,
                ends_at,
                generator_url: alert.generator_url,
                fingerprint: alert.fingerprint,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AlertmanagerWebhook {
        version: wire.version,
        group_key: wire.group_key,
        truncated_alerts: wire.truncated_alerts,
        status: wire.status,
        receiver: wire.receiver,
        group_labels: wire.group_labels,
        common_labels: wire.common_labels,
        common_annotations: wire.common_annotations,
        external_url: wire.external_url,
        alerts,
    })
}

/// An RFC 3339 time; Go's zero time (year 1) is `None`.
fn parse_time(text: &str) -> std::result::Result<Option<Timestamp>, String> {
    let parsed =
        DateTime::parse_from_rfc3339(text).map_err(|error| format!("{text:?} is not an RFC 3339 time ({error})"))?;
    if parsed.year() <= 1 {
        return Ok(None);
    }
    Ok(Some(Timestamp::from_millis(parsed.timestamp_millis())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Payloads a real Alertmanager (0.25, Debian bookworm) sent in the
    /// integration test, and what they read as. `UPDATE_GOLDEN=1` rewrites
    /// the `.parsed.json` files.
    #[test]
    fn reads_real_payloads() {
        let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples");
        for (name, status) in [
            ("alertmanager-webhook-v4", ReceivedStatus::Firing),
            ("alertmanager-webhook-v4-resolved", ReceivedStatus::Resolved),
        ] {
            let body = std::fs::read(samples.join(format!("{name}.json"))).unwrap();
            let payload = parse_alertmanager_webhook(&body).unwrap();
            assert_eq!(payload.status, status);
            assert_eq!(payload.alerts[0].name(), "tmp-full");
            assert_eq!(payload.alerts[0].ends_at.is_some(), status == ReceivedStatus::Resolved);
            let parsed = serde_json::to_string_pretty(&payload).unwrap() + "\n";
            let expected_path = samples.join(format!("{name}.parsed.json"));
            if std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1") {
                std::fs::write(&expected_path, &parsed).unwrap();
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            assert_eq!(parsed, expected, "UPDATE_GOLDEN=1 rewrites {}", expected_path.display());
        }
    }

    fn error_of(body: &str) -> String {
        parse_alertmanager_webhook(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert_eq!(error_of(""), "not an Alertmanager webhook payload: the body is empty");
        assert!(error_of("{\"version\": \"4\",").contains("line 1 column"), "{}", error_of("{\"version\": \"4\","));
        assert!(error_of("[1]").contains("expected a JSON object"), "{}", error_of("[1]"));
        assert_eq!(
            error_of(r#"{"version": "3", "status": "firing", "alerts": []}"#),
            "not an Alertmanager webhook payload: version \"3\" is not supported: drover reads version \"4\""
        );
        assert_eq!(
            error_of(r#"{"status": "firing", "alerts": []}"#),
            "not an Alertmanager webhook payload: missing field `version`"
        );
        assert!(error_of(r#"{"version": "4", "status": "firing"}"#).contains("missing field `alerts`"));
        assert!(
            error_of(r#"{"version": "4", "status": "burning", "alerts": []}"#).contains("unknown variant `burning`")
        );
        let bad_time = r#"{"version": "4", "status": "firing",
            "alerts": [{"status": "firing", "startsAt": "yesterday"}]}"#;
        assert!(
            error_of(bad_time).contains("alerts[0].startsAt: \"yesterday\" is not an RFC 3339 time"),
            "{}",
            error_of(bad_time)
        );
    }
}
