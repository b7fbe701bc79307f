//! Telling people: drover's notifiers and the outbox that delivers to them.
//!
//! The alert engine and the hammer guard (`drover-react`) decide that a
//! notifier must be told something; this crate tells it, and remembers
//! whether that worked:
//!
//! - [`Notification`] is what is told (an alert firing or resolved, a
//!   hammer's action, escalation or approval request), with its labels,
//!   annotations, severity, runbook link and times;
//! - [`NotifierConfig`] / [`Notifier`] is where it goes, built from a
//!   site's `notifier` block ([`NotifierConfig::from_site`]): a webhook
//!   (JSON body from a template: Slack, Mattermost, anything), an e-mail
//!   through an SMTP relay (a small client of our own, see
//!   [E-mail](#e-mail)), or an existing Alertmanager (its
//!   `/api/v2/alerts`);
//! - [`Dispatcher`] delivers, retries with exponential backoff and jitter
//!   within the notifier's limits, bounds the deliveries in flight per
//!   notifier, and keeps a [`DeliveryRecord`] of every notification
//!   (queued, attempts, last error, delivered or failed): a notification
//!   that cannot be delivered ends as *failed*, visibly, never dropped.
//!   Given a directory, it keeps its outbox there as JSON lines so queued
//!   notifications survive a restart;
//! - [`parse_alertmanager_webhook`] reads what an existing Alertmanager
//!   sends *to* drover (its webhook payload, version 4), for hammers and
//!   alert rules that react to it.
//!
//! ```no_run
//! # async fn example(site: drover_react::Site, intent: drover_react::alerting::Notification) -> drover_notify::Result<()> {
//! use drover_notify::{Dispatcher, DispatcherOptions, Notification, NotifierConfig};
//! use drover_types::Timestamp;
//!
//! let notifiers = site.notifiers.values().map(NotifierConfig::from_site).collect();
//! let options = DispatcherOptions { outbox_dir: Some("/var/lib/drover/notify".into()), ..Default::default() };
//! let dispatcher = Dispatcher::start(notifiers, options).await?;
//! let id = dispatcher.send(&intent.notifier, Notification::from_intent(&intent, Timestamp::now())).await;
//! println!("{:?}", dispatcher.delivery(&id));
//! # Ok(()) }
//! ```
//!
//! # E-mail
//!
//! E-mail goes through a small SMTP client written here on tokio rather
//! than `lettre`: the few commands a notification needs (`EHLO`,
//! `AUTH PLAIN`, `MAIL FROM`, `RCPT TO`, `DATA`, `QUIT`) are a page of
//! code, while `lettre` (with rustls, no default features) brings six more
//! crates (lettre, nom, email-encoding, email_address, quoted_printable,
//! hostname: about 13 s of compile time) for features drover does not use,
//! and we want its error classes our way (a 4xx reply is retried, a
//! rejected recipient stops the message before `DATA`). It has no TLS
//! (`STARTTLS`): it is meant for the site's own relay.

mod alertmanager;
mod dispatch;
mod error;
mod http;
mod notifier;
pub mod outbox;
mod received;
mod smtp;
mod webhook;

pub use alertmanager::{PostableAlert, alerts_url, label_name, postable_alert};
pub use dispatch::{DEFAULT_KEEP_FINISHED, Dispatcher, DispatcherOptions};
pub use drover_react::delivery::{DeliveryId, DeliveryRecord, DeliveryStatus, Notification, NotificationKind};
pub use error::{DeliveryError, Error, Result};
pub use notifier::{
    AlertmanagerConfig, DEFAULT_EMAIL_SUBJECT, DEFAULT_MAX_CONCURRENT, DEFAULT_TIMEOUT, EmailConfig, Notifier,
    NotifierConfig, RetryPolicy, SmtpAuth, WebhookConfig, parse_alert_template,
};
pub use received::{
    ALERTMANAGER_WEBHOOK_VERSION, AlertmanagerWebhook, ReceivedStatus, WebhookAlert, parse_alertmanager_webhook,
};
pub use webhook::{DELIVERY_HEADER, webhook_body};
