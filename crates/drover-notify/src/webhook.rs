//! The webhook channel: a POST of a JSON body.
//!
//! The body is the notifier's template with every value escaped for the
//! inside of a JSON string, so `{"text": "{{alert.summary}}"}` is what
//! Slack's and Mattermost's incoming webhooks want; without a template it
//! is drover's JSON document of the notification. A rendered body that is
//! not JSON (a template with a stray quote) fails at once: retrying cannot
//! mend it, and the receiver would only answer 400.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_react::template::Escape;

use crate::error::DeliveryError;
use crate::notifier::{WebhookConfig, render};
use drover_react::delivery::DeliveryId;
use drover_react::delivery::Notification;

/// The header carrying the delivery id, the same on every retry.
pub const DELIVERY_HEADER: &str = "X-Drover-Delivery";

/// The body `config` sends for `notification`.
pub fn webhook_body(config: &WebhookConfig, notification: &Notification) -> String {
    match &config.body {
        Some(template) => render(template, notification, Escape::JsonString),
        None => notification.to_json(),
    }
}

pub(crate) async fn deliver(
    http: &reqwest::Client,
    config: &WebhookConfig,
    timeout: Duration,
    delivery: &DeliveryId,
    notification: &Notification,
) -> Result<(), DeliveryError> {
    let body = webhook_body(config, notification);
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&body) {
        return Err(DeliveryError::permanent(format!(
            "the webhook body is not valid JSON once filled in ({error}); check the notifier's body template: {body}"
        )));
    }
    let mut headers = BTreeMap::from([(DELIVERY_HEADER.to_owned(), delivery.to_string())]);
    headers.extend(config.headers.iter().map(|(name, value)| (name.clone(), value.clone())));
    crate::http::post_json(http, &config.url, &headers, body, timeout).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::notifier::parse_alert_template;
    use drover_react::fixtures::tmp_full;

    #[test]
    fn slack_bodies_escape_values() {
        let config = WebhookConfig {
            url: "http://127.0.0.1:1/hook".to_owned(),
            body: Some(
                parse_alert_template(
                    r#"{"text": "{{alert.status}}: {{alert.summary}} ({{alert.annotations.description}}) {{alert.runbook}}"}"#,
                )
                .unwrap(),
            ),
            headers: BTreeMap::new(),
        };
        let body = webhook_body(&config, &tmp_full());
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            value["text"],
            "firing: tmp-full is firing on node batch07 (/tmp is \"full\") https://ops.example.org/runbooks/tmp-full"
        );
    }

    #[test]
    fn without_a_template_the_document_is_sent() {
        let config = WebhookConfig { url: "http://x".to_owned(), body: None, headers: BTreeMap::new() };
        let value: serde_json::Value = serde_json::from_str(&webhook_body(&config, &tmp_full())).unwrap();
        assert_eq!(value["name"], "tmp-full");
        assert_eq!(value["kind"], "firing");
        assert_eq!(value["runbook"], "https://ops.example.org/runbooks/tmp-full");
    }

    #[tokio::test]
    async fn bodies_that_are_not_json_fail_permanently() {
        let config = WebhookConfig {
            url: "http://127.0.0.1:1/hook".to_owned(),
            body: Some(parse_alert_template("text={{alert.name}}").unwrap()),
            headers: BTreeMap::new(),
        };
        let error = deliver(&reqwest::Client::new(), &config, Duration::from_secs(1), &DeliveryId::new(), &tmp_full())
            .await
            .unwrap_err();
        assert!(error.permanent);
        assert!(error.message.contains("not valid JSON"), "{}", error.message);
    }
}
