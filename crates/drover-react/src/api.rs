//! HTTP API bodies of detect and react: the site, alerts, silences,
//! hammers and runbooks. They live beside the model they carry, so
//! `drover-proto` (the other API bodies) depends on `drover-types` only.

use std::collections::BTreeMap;

use crate::Site;
use crate::alerting::ReceivedAlert;
use crate::alerting::{Alert, Silence};
use crate::hammer::Run;
use crate::hammer::RunReport;
use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

/// `POST /v1/site`: the site `drover apply DIR` read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteApplyRequest {
    /// The objects.
    pub site: Site,
    /// The Markdown of the runbook files the site names, by path.
    #[serde(default)]
    pub runbooks: BTreeMap<String, String>,
}

/// `GET /v1/site` and the answer to `POST /v1/site`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteResponse {
    /// The applied site; `None` before the first `drover apply`.
    pub site: Option<Site>,
    /// Its version (0: none).
    pub version: u64,
    /// When it was applied.
    pub applied_at: Option<Timestamp>,
    /// Who applied it.
    pub applied_by: String,
}

/// One active alert in `GET /v1/alerts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// The silence covering it now, if any.
    pub silenced_by: Option<String>,
    /// Its rule's runbook.
    pub runbook: Option<String>,
}

/// `GET /v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsResponse {
    /// Pending and firing alerts.
    pub alerts: Vec<AlertView>,
    /// Silences, expired ones until they are pruned.
    pub silences: Vec<Silence>,
    /// Alerts received from an Alertmanager.
    pub received: Vec<ReceivedAlert>,
}

/// One line of `GET /v1/alerts/top`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCount {
    /// The alert rule, or the hammer for escalations.
    pub name: String,
    /// Times it started firing (or escalated) in the window.
    pub count: u64,
    /// The last time.
    pub last: Timestamp,
}

/// `POST /v1/alert/ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRequest {
    /// The alert's id (`rule{label="value", …}`), or a unique prefix of it.
    pub id: String,
}

/// `POST /v1/silences`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRequest {
    /// Matchers (`alertname="tmp-full"`, `node=~"batch.*"`), all must match.
    pub matchers: Vec<String>,
    /// How long from now (`2h`).
    pub duration: String,
    /// Why.
    pub comment: String,
}

/// One hammer in `GET /v1/hammers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HammerView {
    /// The name.
    pub name: String,
    /// What sets it off, in words.
    pub trigger: String,
    /// What it does (`reboot`, `drain`, …).
    pub action: String,
    /// `auto`, `approve` or `dry-run`.
    pub mode: String,
    /// Paused by `drover hammer pause`.
    pub paused: bool,
    /// Runs started in the last hour, and the limit.
    pub runs_last_hour: u32,
    /// The `per_hour` limit.
    pub per_hour: u32,
    /// Runs waiting for approval.
    pub waiting: u32,
    /// The newest run.
    pub last_run: Option<Timestamp>,
}

/// One entry of `GET /v1/hammers/history`: a run, or a refused trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HammerHistoryEntry {
    /// When it was triggered.
    pub at: Timestamp,
    /// The hammer.
    pub hammer: String,
    /// The target (`node/NAME`, `job/NAME`).
    pub target: String,
    /// The run; `None` for a refused trigger.
    pub run: Option<Run>,
    /// What the run did, once finished.
    pub report: Option<RunReport>,
    /// Why it was refused.
    pub refused: Option<String>,
    /// The trigger.
    pub reason: String,
}

/// `POST /v1/hammers/pause`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRequest {
    /// One hammer, or every hammer with `None`.
    pub hammer: Option<String>,
    /// Pause or resume.
    pub paused: bool,
}

/// `GET /v1/runbook/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookResponse {
    /// The alert rule or hammer asked for.
    pub name: String,
    /// The runbook as written (a URL or a file of the site).
    pub runbook: String,
    /// The Markdown, for a file.
    pub markdown: Option<String>,
}
