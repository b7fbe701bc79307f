//! Detect and react, on every server: applying a site, alerts, silences,
//! acknowledgements, hammer approvals and pauses (proposed to Raft and
//! applied by `drover_state::react`), the notifications those decide
//! (delivered by this server's `drover-notify` dispatcher, whose outbox
//! lives under the data directory), and alerts received from an existing
//! Alertmanager. The leader's loop that evaluates rules and runs hammers
//! is `leader/react.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use drover_notify::{DeliveryRecord, Dispatcher, DispatcherOptions, NotifierConfig};
use drover_react::alerting::ReceivedAlert;
use drover_react::alerting::{AlertId, Notification, Silence};
use drover_react::api::{
    AlertCount, AlertView, AlertsResponse, HammerHistoryEntry, HammerView, PauseRequest, RunbookResponse,
    SilenceRequest, SiteApplyRequest, SiteResponse,
};
use drover_react::hammer::{RunId, RunState};
use drover_react::{HammerTrigger, Matcher, Runbook};
use drover_state::react::{ReactOp, ReactOutcome, SiteDoc};
use drover_state::{Command, CommandResponse};
use drover_types::{CodedError, DurationSpec, ErrorCode, Timestamp};

use crate::Result;
use crate::server::Server;

/// This server's notification outbox and the site version its notifiers
/// were last taken from.
pub(crate) struct Notify {
    dispatcher: Dispatcher,
    site_version: AtomicU64,
}

impl Notify {
    /// Opens the outbox in `dir` and resumes what was queued there.
    pub(crate) async fn open(dir: &Path) -> Result<Notify> {
        let options = DispatcherOptions { outbox_dir: Some(dir.to_path_buf()), ..Default::default() };
        let dispatcher = Dispatcher::start(Vec::new(), options)
            .await
            .map_err(|error| CodedError::internal(format!("cannot open the notification outbox: {error}")))?;
        Ok(Notify { dispatcher, site_version: AtomicU64::new(0) })
    }
}

impl Server {
    /// Proposes one detect-and-react input and sends the notifications it
    /// decided.
    pub async fn react(&self, op: ReactOp) -> Result<ReactOutcome> {
        let response = self.propose(Command::React { op }).await?.into_result()?;
        let outcome = match response {
            CommandResponse::React { outcome, .. } => outcome,
            _ => ReactOutcome::default(),
        };
        self.notify(&outcome.notifications).await;
        Ok(outcome)
    }

    /// Queues notifications in this server's outbox (delivered, retried,
    /// and recorded as delivered or failed by the dispatcher).
    pub(crate) async fn notify(&self, intents: &[Notification]) {
        if intents.is_empty() {
            return;
        }
        let notify = &self.inner.notify;
        let state = self.state();
        if let Some(doc) = &state.react().site
            && notify.site_version.swap(doc.version, Ordering::Relaxed) != doc.version
        {
            notify.dispatcher.set_notifiers(doc.site.notifiers.values().map(NotifierConfig::from_site).collect());
        }
        let now = Timestamp::now();
        let base = self.inner.network.base_url(&self.config().advertise_address);
        for intent in intents {
            let notification =
                drover_notify::Notification::from_intent(intent, now).with_generator_url(generator_url(&base, intent));
            let id = notify.dispatcher.send(&intent.notifier, notification).await;
            tracing::info!(notifier = %intent.notifier, kind = intent.kind.as_str(), source = %intent.source, delivery = %id.as_str(), "notification queued");
        }
    }

    /// Every notification this server queued (newest kept), oldest first,
    /// with its delivery status.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.notify.dispatcher.deliveries()
    }

    /// `POST /v1/alertmanager/webhook`: records the alerts an Alertmanager
    /// sends; the leader triggers the hammers and alert rules that match.
    pub async fn receive_alertmanager(&self, body: &[u8]) -> Result<usize> {
        let webhook =
            drover_notify::parse_alertmanager_webhook(body).map_err(|error| CodedError::invalid(error.to_string()))?;
        let now = Timestamp::now();
        let alerts: Vec<ReceivedAlert> = webhook
            .alerts
            .iter()
            .map(|alert| ReceivedAlert {
                fingerprint: if alert.fingerprint.is_empty() {
                    format!("{:?}", alert.labels)
                } else {
                    alert.fingerprint.clone()
                },
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                firing: alert.status == drover_notify::ReceivedStatus::Firing,
                received_at: now,
            })
            .collect();
        let count = alerts.len();
        self.react(ReactOp::Received { alerts }).await?;
        Ok(count)
    }
}

/// Operator actions and views.
impl Server {
    /// `drover apply`: replaces the site.
    pub async fn apply_site(&self, request: SiteApplyRequest, by: &str) -> Result<SiteResponse> {
        let problems = request.site.dangling_references();
        if !problems.is_empty() {
            return Err(CodedError::invalid(format!("the site is inconsistent: {}", problems.join("; "))));
        }
        let doc = SiteDoc {
            site: request.site,
            runbooks: request.runbooks,
            version: 0,
            applied_at: Timestamp::now(),
            applied_by: by.to_owned(),
        };
        self.react(ReactOp::ApplySite { doc, now: Timestamp::now() }).await?;
        Ok(self.site())
    }

    /// The applied site.
    pub fn site(&self) -> SiteResponse {
        let state = self.state();
        match &state.react().site {
            Some(doc) => SiteResponse {
                site: Some(doc.site.clone()),
                version: doc.version,
                applied_at: Some(doc.applied_at),
                applied_by: doc.applied_by.clone(),
            },
            None => SiteResponse::default(),
        }
    }

    /// Active alerts, silences and received alerts.
    pub fn alerts(&self) -> AlertsResponse {
        let state = self.state();
        let react = state.react();
        let now = Timestamp::now();
        let rules = react.site.as_ref().map(|doc| &doc.site.alerts);
        AlertsResponse {
            alerts: react
                .alerts
                .alerts()
                .map(|alert| AlertView {
                    silenced_by: react.alerts.silenced_by(&alert.labels, now).map(|silence| silence.id.clone()),
                    runbook: rules
                        .and_then(|rules| rules.get(&alert.rule))
                        .and_then(|rule| rule.runbook.as_ref())
                        .map(|runbook| runbook.as_str().to_owned()),
                    alert: alert.clone(),
                })
                .collect(),
            silences: react.alerts.silences().cloned().collect(),
            received: react.received.values().cloned().collect(),
        }
    }

    /// How often each alert fired (and each hammer escalated) since
    /// `since`, most first.
    pub fn alerts_top(&self, since: Timestamp) -> Vec<AlertCount> {
        let state = self.state();
        let mut counts: BTreeMap<String, AlertCount> = BTreeMap::new();
        for event in state.react().events.iter().filter(|event| event.at >= since && event.kind != "resolved") {
            let entry = counts.entry(event.name.clone()).or_insert_with(|| AlertCount {
                name: event.name.clone(),
                count: 0,
                last: event.at,
            });
            entry.count += 1;
            entry.last = entry.last.max(event.at);
        }
        let mut counts: Vec<AlertCount> = counts.into_values().collect();
        counts.sort_by(|left, right| right.count.cmp(&left.count).then(left.name.cmp(&right.name)));
        counts
    }

    /// Acknowledges the alert whose id is or starts with `id`.
    pub async fn ack_alert(&self, id: &str, by: &str) -> Result<()> {
        let state = self.state();
        let matching: Vec<AlertId> = state
            .react()
            .alerts
            .alerts()
            .map(|alert| alert.id.clone())
            .filter(|alert_id| alert_id.as_str() == id || alert_id.as_str().starts_with(id))
            .collect();
        let alert_id = match matching.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(CodedError::new(
                    ErrorCode::NotFound,
                    format!("no active alert {id}: see drover alert list"),
                ));
            }
            many => {
                let names: Vec<&str> = many.iter().map(AlertId::as_str).collect();
                return Err(CodedError::invalid(format!(
                    "{id} matches {} alerts ({}): give more of the id",
                    many.len(),
                    names.join(", ")
                )));
            }
        };
        self.react(ReactOp::Ack { id: alert_id, by: by.to_owned(), now: Timestamp::now() }).await?;
        Ok(())
    }

    /// Creates a silence.
    pub async fn add_silence(&self, request: &SilenceRequest, by: &str) -> Result<Silence> {
        let matchers = request
            .matchers
            .iter()
            .map(|text| {
                Matcher::parse(text).map_err(|error| CodedError::invalid(format!("bad matcher {text:?}: {error}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let duration: DurationSpec = request.duration.parse().map_err(|error| {
            CodedError::invalid(format!("bad duration {:?}: {error} (write 30m, 2h, 1d)", request.duration))
        })?;
        if request.comment.trim().is_empty() {
            return Err(CodedError::invalid("a silence needs a comment: say why (--comment TEXT)"));
        }
        let now = Timestamp::now();
        let silence = Silence {
            id: crate::ids::new_short_id(),
            matchers,
            starts: now,
            ends: now.plus(duration.get()),
            author: by.to_owned(),
            comment: request.comment.clone(),
        };
        self.react(ReactOp::Silence { silence: silence.clone() }).await?;
        Ok(silence)
    }

    /// Ends a silence now.
    pub async fn expire_silence(&self, id: &str) -> Result<()> {
        self.react(ReactOp::ExpireSilence { id: id.to_owned(), now: Timestamp::now() }).await?;
        Ok(())
    }

    /// The hammers of the applied site with their switches and counts.
    pub fn hammers(&self) -> Vec<HammerView> {
        let state = self.state();
        let react = state.react();
        let Some(doc) = &react.site else { return Vec::new() };
        let hour_ago = Timestamp::now().minus(std::time::Duration::from_secs(3600));
        doc.site
            .hammers
            .values()
            .map(|hammer| {
                let runs: Vec<_> = react.guard.runs().filter(|run| run.hammer == hammer.name).collect();
                let count = |keep: &dyn Fn(&&drover_react::hammer::Run) -> bool| {
                    u32::try_from(runs.iter().filter(|run| keep(run)).count()).unwrap_or(u32::MAX)
                };
                HammerView {
                    name: hammer.name.clone(),
                    trigger: describe_trigger(&hammer.trigger),
                    action: hammer.action.kind().to_owned(),
                    mode: hammer.mode.as_str().to_owned(),
                    paused: react.guard.is_paused(&hammer.name),
                    runs_last_hour: count(&|run| run.started_at.is_some_and(|started| started > hour_ago)),
                    per_hour: hammer.limits.per_hour,
                    waiting: count(&|run| run.state == RunState::AwaitingApproval),
                    last_run: runs.iter().map(|run| run.requested_at).max(),
                }
            })
            .collect()
    }

    /// Runs and refused triggers, newest first.
    pub fn hammer_history(&self, hammer: Option<&str>, limit: usize) -> Vec<HammerHistoryEntry> {
        let state = self.state();
        let react = state.react();
        let wanted = |name: &str| hammer.is_none_or(|hammer| hammer == name);
        let mut entries: Vec<HammerHistoryEntry> = react
            .guard
            .runs()
            .filter(|run| wanted(&run.hammer))
            .map(|run| HammerHistoryEntry {
                at: run.requested_at,
                hammer: run.hammer.clone(),
                target: run.target.clone(),
                report: react.reports.get(&run.id).cloned(),
                refused: None,
                reason: run.event.reason.clone(),
                run: Some(run.clone()),
            })
            .chain(react.refusals.iter().filter(|refusal| wanted(&refusal.event.hammer)).map(|refusal| {
                HammerHistoryEntry {
                    at: refusal.at,
                    hammer: refusal.event.hammer.clone(),
                    target: refusal.event.target(),
                    run: None,
                    report: None,
                    refused: Some(refusal.reason.clone()),
                    reason: refusal.event.reason.clone(),
                }
            }))
            .collect();
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.at));
        entries.truncate(limit);
        entries
    }

    /// Approves (or denies) a run waiting for approval.
    pub async fn decide_run(&self, run: u64, approve: bool, by: &str) -> Result<()> {
        let run = RunId(run);
        let now = Timestamp::now();
        let op = if approve {
            ReactOp::Approve { run, by: by.to_owned(), now }
        } else {
            ReactOp::Deny { run, by: by.to_owned(), now }
        };
        self.react(op).await?;
        Ok(())
    }

    /// Pauses or resumes one hammer or all.
    pub async fn pause_hammer(&self, request: PauseRequest) -> Result<()> {
        self.react(ReactOp::Pause { hammer: request.hammer, paused: request.paused }).await?;
        Ok(())
    }

    /// The runbook of an alert rule or hammer (or a runbook file by path).
    pub fn runbook(&self, name: &str) -> Result<RunbookResponse> {
        let state = self.state();
        let react = state.react();
        let Some(doc) = &react.site else {
            return Err(CodedError::new(ErrorCode::NotFound, "no site is applied: drover apply DIR"));
        };
        let runbook = doc
            .site
            .alerts
            .get(name)
            .and_then(|rule| rule.runbook.clone())
            .or_else(|| doc.site.hammers.get(name).and_then(|hammer| hammer.runbook.clone()))
            .or_else(|| react.runbook(name).map(|_| Runbook::File(name.to_owned())));
        let Some(runbook) = runbook else {
            return Err(CodedError::new(
                ErrorCode::NotFound,
                format!("no alert rule or hammer {name:?} with a runbook in the applied site"),
            ));
        };
        let markdown = match &runbook {
            Runbook::File(path) => react.runbook(path).map(str::to_owned),
            Runbook::Url(_) => None,
        };
        Ok(RunbookResponse { name: name.to_owned(), runbook: runbook.as_str().to_owned(), markdown })
    }
}

/// A hammer's trigger in words.
fn describe_trigger(trigger: &HammerTrigger) -> String {
    match trigger {
        HammerTrigger::Alert(name) => format!("alert {name}"),
        HammerTrigger::Log { source, matches, query } => {
            format!("log {}", crate::leader::log_query(query.as_deref(), source.as_deref(), matches.as_deref()))
        }
        HammerTrigger::Node(event) => format!("node {}", event.as_str()),
        HammerTrigger::Alertmanager { matchers } => {
            let matchers: Vec<String> = matchers.iter().map(ToString::to_string).collect();
            format!("alertmanager {{{}}}", matchers.join(", "))
        }
    }
}

/// Where a notification points: the alerts of its rule, or the history of
/// its hammer.
fn generator_url(base: &str, intent: &drover_react::alerting::Notification) -> String {
    use drover_proto::paths;
    use drover_react::alerting::NotificationKind;
    let name = paths::encode(&intent.source);
    match intent.kind {
        NotificationKind::Firing | NotificationKind::Resolved => format!("{base}{}?name={name}", paths::ALERTS),
        NotificationKind::HammerAction | NotificationKind::Escalation | NotificationKind::ApprovalRequested => {
            format!("{base}{}?hammer={name}", paths::HAMMERS_HISTORY)
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_react::alerting::{Notification, NotificationKind};
    use drover_react::schema::Severity;
    use drover_types::Timestamp;

    use super::generator_url;

    fn intent(kind: NotificationKind, source: &str) -> Notification {
        Notification {
            notifier: "ops".to_owned(),
            kind,
            source: source.to_owned(),
            alert_id: None,
            severity: Severity::Warning,
            labels: Default::default(),
            annotations: Default::default(),
            summary: String::new(),
            runbook: None,
            starts_at: Timestamp::from_millis(0),
            value: None,
        }
    }

    #[test]
    fn alerts_link_to_their_rule_and_hammers_to_their_history_encoded() {
        let base = "https://10.0.0.1:4646";
        assert_eq!(
            generator_url(base, &intent(NotificationKind::Firing, "tmp full")),
            "https://10.0.0.1:4646/v1/alerts?name=tmp%20full"
        );
        assert_eq!(
            generator_url(base, &intent(NotificationKind::Escalation, "reboot&x")),
            "https://10.0.0.1:4646/v1/hammers/history?hammer=reboot%26x"
        );
    }
}
