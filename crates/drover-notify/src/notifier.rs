//! Notifiers as config that builds deliveries: one [`NotifierConfig`] per
//! `notifier "NAME" { … }` block of the site, its channel a [`Notifier`].
//!
//! [`NotifierConfig::from_site`] maps the site model's definition (`drover-react`) and writes
//! in the defaults for what a site file cannot say yet (timeout,
//! concurrency, SMTP authentication, the retry cap and age limit); the
//! fields are public so the caller can set them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use drover_react::schema::{Notifier as SiteNotifier, NotifierKind, RetryPolicy as SiteRetryPolicy};
use drover_react::template::{Escape, PlaceholderSet, Template};

use crate::error::DeliveryError;
use crate::{alertmanager, smtp, webhook};
use drover_react::delivery::DeliveryId;
use drover_react::delivery::Notification;

pub use drover_react::schema::DEFAULT_EMAIL_SUBJECT;

/// How long one delivery attempt may take, connecting included, unless a
/// notifier says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many deliveries to one notifier run at once, unless it says
/// otherwise.
pub const DEFAULT_MAX_CONCURRENT: usize = 4;

/// One named notifier: its channel and how deliveries to it behave.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifierConfig {
    /// The notifier's name (the label of its `notifier` block).
    pub name: String,
    /// The channel.
    pub notifier: Notifier,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// Deliveries to this notifier in progress at once (at least one).
    pub max_concurrent: usize,
}

/// A notifier's channel.
#[derive(Clone, Debug, PartialEq)]
pub enum Notifier {
    /// An HTTP POST of a JSON body (Slack, Mattermost, anything).
    Webhook(WebhookConfig),
    /// An e-mail through an SMTP relay.
    Email(EmailConfig),
    /// An existing Alertmanager, through its `/api/v2/alerts`.
    Alertmanager(AlertmanagerConfig),
}

/// `webhook { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// The URL (http or https).
    pub url: String,
    /// The body, a JSON document with `{{alert.…}}` placeholders whose
    /// values are escaped for JSON strings; `None` sends
    /// [`Notification::to_json`]. For Slack and Mattermost:
    /// `{"text": "{{alert.status}}: {{alert.summary}} {{alert.runbook}}"}`.
    pub body: Option<Template>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
}

/// `email { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailConfig {
    /// `host:port` of the SMTP relay.
    pub smtp: String,
    /// The sender address.
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// The subject line.
    pub subject: Template,
    /// The plain-text body; `None` sends [`Notification::text`] (which
    /// carries the runbook link).
    pub body: Option<Template>,
    /// `AUTH PLAIN` credentials; `None` sends without authenticating.
    /// There is no TLS: only give credentials for a relay on a trusted
    /// network (see the crate documentation).
    pub auth: Option<SmtpAuth>,
    /// The name given in `EHLO`; `None` gives the address literal of the
    /// local end of the connection (`[192.0.2.1]`).
    pub hello_name: Option<String>,
}

/// Credentials for SMTP `AUTH PLAIN`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpAuth {
    /// The user name.
    pub username: String,
    /// The password (never printed by `Debug`).
    pub password: String,
}

impl fmt::Debug for SmtpAuth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("SmtpAuth").field("username", &self.username).field("password", &"…").finish()
    }
}

/// `alertmanager { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerConfig {
    /// The Alertmanager's base URL (`http://alertmanager:9093`); alerts go
    /// to `{url}/api/v2/alerts`.
    pub url: String,
    /// Extra request headers (an `Authorization` for a proxy in front).
    pub headers: BTreeMap<String, String>,
    /// For a firing notification without an end, the `endsAt` sent is
    /// this long after the delivery. `None` sends no `endsAt`, so the
    /// Alertmanager resolves the alert by itself after its
    /// `resolve_timeout` (five minutes by default) unless it is sent again:
    /// give alert rules that notify an Alertmanager a `repeat_interval`
    /// shorter than that, or set this.
    pub firing_ttl: Option<Duration>,
}

/// Retries of a failed delivery: exponential backoff with jitter, up to a
/// number of attempts and an age.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least one).
    pub max_attempts: u32,
    /// The wait before the first retry, doubled after each failure.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// A delivery not done this long after it was queued fails instead of
    /// being retried again; `None` has no age limit.
    pub max_age: Option<Duration>,
    /// The share of each wait that is random, in `0.0..=1.0`: `0.2` waits
    /// between 80 % and 100 % of the backoff, so that notifications that
    /// failed together do not retry together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_site(SiteRetryPolicy::default())
    }
}

impl RetryPolicy {
    /// The policy of a site's `retry { attempts  backoff }`, with a backoff
    /// cap of ten minutes, a one-day age limit and 20 % jitter.
    pub fn from_site(retry: SiteRetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: retry.attempts.max(1),
            initial_backoff: retry.backoff.get(),
            max_backoff: Duration::from_secs(600),
            max_age: Some(Duration::from_secs(24 * 3600)),
            jitter: 0.2,
        }
    }

    /// The wait after the `failed_attempts`-th failed attempt (1 for the
    /// first), with `random` in `0.0..1.0` choosing within the jitter.
    pub fn backoff(&self, failed_attempts: u32, random: f64) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(30);
        let full = self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter)
    }
}

impl NotifierConfig {
    /// The notifier of a site's `notifier` block, with the defaults for
    /// what a site file cannot say: [`DEFAULT_TIMEOUT`],
    /// [`DEFAULT_MAX_CONCURRENT`], no SMTP authentication, no e-mail body
    /// template, no Alertmanager `firing_ttl`, and
    /// [`RetryPolicy::from_site`].
    pub fn from_site(notifier: &SiteNotifier) -> NotifierConfig {
        let channel = match &notifier.kind {
            NotifierKind::Webhook { url, body, headers } => {
                Notifier::Webhook(WebhookConfig { url: url.clone(), body: body.clone(), headers: headers.clone() })
            }
            NotifierKind::Email { smtp, from, to, subject } => Notifier::Email(EmailConfig {
                smtp: smtp.clone(),
                from: from.clone(),
                to: to.clone(),
                subject: subject.clone(),
                body: None,
                auth: None,
                hello_name: None,
            }),
            NotifierKind::Alertmanager { url } => Notifier::Alertmanager(AlertmanagerConfig {
                url: url.clone(),
                headers: BTreeMap::new(),
                firing_ttl: None,
            }),
        };
        NotifierConfig {
            name: notifier.name.clone(),
            notifier: channel,
            retry: RetryPolicy::from_site(notifier.retry),
            timeout: DEFAULT_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }

    /// A notifier with the default retry policy, timeout and concurrency.
    pub fn new(name: impl Into<String>, notifier: Notifier) -> NotifierConfig {
        NotifierConfig {
            name: name.into(),
            notifier,
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }

    /// Makes one delivery attempt of `notification`, bounded by the
    /// notifier's timeout. `delivery` travels with it (the
    /// `X-Drover-Delivery` header, the e-mail's `Message-ID`) so a receiver
    /// can recognise a retry of something it already has.
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        delivery: &DeliveryId,
        notification: &Notification,
    ) -> Result<(), DeliveryError> {
        let attempt = async {
            match &self.notifier {
                Notifier::Webhook(config) => webhook::deliver(http, config, self.timeout, delivery, notification).await,
                Notifier::Email(config) => smtp::deliver(config, delivery, notification).await,
                Notifier::Alertmanager(config) => alertmanager::deliver(http, config, self.timeout, notification).await,
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::retryable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// An alert template (webhook body, e-mail subject or body) read from
/// `text` and checked as the site reader checks it: every problem, with its
/// character offset, in one message.
pub fn parse_alert_template(text: &str) -> Result<Template, String> {
    Template::parse(text, PlaceholderSet::Alert).map_err(|errors| {
        errors
            .iter()
            .map(|error| format!("at character {}: {}", error.offset, error.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Renders `template` for `notification`, values escaped by `escape`. A
/// placeholder without a value (a label the alert does not have) becomes
/// empty: a notification with a gap still tells more than none.
pub(crate) fn render(template: &Template, notification: &Notification, escape: Escape) -> String {
    template
        .render(|name| Some(notification.value_of(name).unwrap_or_default()), escape)
        .unwrap_or_else(|_| template.text().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use drover_site::Source;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_down() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            max_age: None,
            jitter: 0.5,
        };
        assert_eq!(policy.backoff(1, 0.0), Duration::from_secs(10));
        assert_eq!(policy.backoff(2, 0.0), Duration::from_secs(20));
        assert_eq!(policy.backoff(3, 0.0), Duration::from_secs(40));
        assert_eq!(policy.backoff(4, 0.0), Duration::from_secs(60));
        assert_eq!(policy.backoff(400, 0.0), Duration::from_secs(60));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_secs(5));
        assert_eq!(policy.backoff(2, 0.5), Duration::from_secs(15));
    }

    #[test]
    fn site_notifiers_map_to_configs() {
        let text = r#"
notifier "ops-chat" {
  webhook {
    url  = "https://chat.example.org/hooks/ops"
    body = "{\"text\": \"{{alert.summary}}\"}"
  }
  retry { attempts = 5  backoff = "30s" }
}
notifier "ops-mail" {
  email {
    smtp = "mail.example.org:25"
    from = "drover@example.org"
    to   = ["ops@example.org"]
  }
}
notifier "am" { alertmanager { url = "http://am.example.org:9093" } }
"#;
        let site = drover_site::from_sources(&[Source::new("site.hcl", text)], std::path::Path::new(".")).unwrap();
        let chat = NotifierConfig::from_site(&site.notifiers["ops-chat"]);
        assert_eq!(chat.retry.max_attempts, 5);
        assert_eq!(chat.retry.initial_backoff, Duration::from_secs(30));
        let Notifier::Webhook(webhook) = &chat.notifier else { panic!("{chat:?}") };
        assert_eq!(webhook.body.as_ref().unwrap().text(), "{\"text\": \"{{alert.summary}}\"}");
        let mail = NotifierConfig::from_site(&site.notifiers["ops-mail"]);
        let Notifier::Email(email) = &mail.notifier else { panic!("{mail:?}") };
        assert_eq!(email.subject.text(), DEFAULT_EMAIL_SUBJECT);
        assert_eq!(email.to, ["ops@example.org"]);
        let am = NotifierConfig::from_site(&site.notifiers["am"]);
        assert!(matches!(&am.notifier, Notifier::Alertmanager(config) if config.url == "http://am.example.org:9093"));
    }

    #[test]
    fn credentials_are_not_printed() {
        let auth = SmtpAuth { username: "drover".to_owned(), password: "hunter2".to_owned() };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
