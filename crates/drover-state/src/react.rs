//! Detect and react, replicated: the applied site, the alert engine, the
//! hammer guard and their audit trail.
//!
//! The decision logic of `drover-react` is sans-IO and takes `now` as an
//! argument, so it runs *inside* the state machine: the leader proposes the
//! inputs (an evaluation of a rule, a hammer trigger, an approval) and every
//! server applies them the same way. A new leader therefore continues with
//! the same alerts, silences, cooldowns and attempt counts, and any server
//! answers `drover alert list` or `drover hammer history`. The leader acts
//! on the outcome it gets back from its proposal (the notifications to
//! send, the run to start).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use drover_react::Site;
use drover_react::alerting::{
    AlertEngine, AlertId, Evaluated, Notification, Observation, ReceivedAlert, Silence, Transition,
};
use drover_react::hammer::{Decision, HammerGuard, Outcome, RUN_OUTPUT_MAX, RunId, RunReport, TriggerEvent};
use drover_types::{CodedError, ErrorCode, Timestamp};
use serde::{Deserialize, Serialize};

/// How many refused triggers are kept for `drover hammer history`.
pub const REFUSALS_KEPT: usize = 2000;
/// How many alert events are kept for `drover alert top`.
pub const ALERT_EVENTS_KEPT: usize = 20_000;
/// How long finished runs are kept at least (longer when a hammer's
/// `attempts_window` is longer).
pub const RUNS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The applied site: the objects, the Markdown of its runbook files (so
/// `drover runbook show` works on any machine), and who applied it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteDoc {
    /// The objects.
    pub site: Site,
    /// Runbook files of the site folder, by their path in the site.
    pub runbooks: BTreeMap<String, String>,
    /// Counts applies, from 1.
    pub version: u64,
    /// When it was applied.
    pub applied_at: Timestamp,
    /// Who applied it.
    pub applied_by: String,
}

/// A trigger the guard refused, for the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusalRecord {
    /// When.
    pub at: Timestamp,
    /// The trigger.
    pub event: TriggerEvent,
    /// Why, as a sentence.
    pub reason: String,
}

/// A firing, resolution or escalation, for `drover alert top`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// When.
    pub at: Timestamp,
    /// The alert rule or hammer.
    pub name: String,
    /// The alert (empty for escalations).
    pub alert_id: String,
    /// `firing`, `resolved` or `escalation`.
    pub kind: String,
}

/// One input of detect-and-react, proposed by the leader or an operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactOp {
    /// `drover apply`: replaces the site; alerts of removed rules resolve.
    ApplySite {
        /// The new site (its `version` is set by the state machine).
        doc: SiteDoc,
        /// When.
        now: Timestamp,
    },
    /// One evaluation of an alert rule.
    Evaluate {
        /// The rule.
        rule: String,
        /// The label sets for which its condition holds.
        observations: Vec<Observation>,
        /// When.
        now: Timestamp,
        /// Hammers triggered by alerts of this rule: for each alert the
        /// leader expects to fire, its triggers. Only those of alerts that
        /// do fire are applied, in the same entry (one commit from the
        /// condition to the hammer's decision).
        #[serde(default)]
        triggers: Vec<(AlertId, TriggerEvent)>,
        /// Nodes in the fleet, for the fleet-wide guard.
        #[serde(default)]
        fleet_size: usize,
    },
    /// `drover alert ack`.
    Ack {
        /// The alert.
        id: AlertId,
        /// Who.
        by: String,
        /// When.
        now: Timestamp,
    },
    /// `drover alert silence`.
    Silence {
        /// The silence.
        silence: Silence,
    },
    /// `drover alert unsilence`.
    ExpireSilence {
        /// The silence.
        id: String,
        /// When.
        now: Timestamp,
    },
    /// A hammer's trigger fired.
    Trigger {
        /// What happened.
        event: TriggerEvent,
        /// Nodes in the fleet, for the fleet-wide guard.
        fleet_size: usize,
        /// When.
        now: Timestamp,
    },
    /// `drover hammer approve`.
    Approve {
        /// The run.
        run: RunId,
        /// Who.
        by: String,
        /// When.
        now: Timestamp,
    },
    /// `drover hammer deny`.
    Deny {
        /// The run.
        run: RunId,
        /// Who.
        by: String,
        /// When.
        now: Timestamp,
    },
    /// A run's action ended.
    Finish {
        /// The run.
        run: RunId,
        /// What it did.
        report: RunReport,
        /// When.
        now: Timestamp,
    },
    /// `drover hammer pause|resume [NAME]`.
    Pause {
        /// One hammer, or all with `None`.
        hammer: Option<String>,
        /// Pause (`true`) or resume.
        paused: bool,
    },
    /// Alerts from an external Alertmanager's webhook.
    Received {
        /// The alerts, as received.
        alerts: Vec<ReceivedAlert>,
    },
    /// Forgets expired silences, old runs and resolved received alerts.
    Prune {
        /// When.
        now: Timestamp,
    },
}

impl ReactOp {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ReactOp::ApplySite { .. } => "apply_site",
            ReactOp::Evaluate { .. } => "evaluate",
            ReactOp::Ack { .. } => "ack",
            ReactOp::Silence { .. } => "silence",
            ReactOp::ExpireSilence { .. } => "expire_silence",
            ReactOp::Trigger { .. } => "trigger",
            ReactOp::Approve { .. } => "approve",
            ReactOp::Deny { .. } => "deny",
            ReactOp::Finish { .. } => "finish",
            ReactOp::Pause { .. } => "pause",
            ReactOp::Received { .. } => "received",
            ReactOp::Prune { .. } => "prune",
        }
    }
}

/// What applying a [`ReactOp`] decided: for the leader to act on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReactOutcome {
    /// Alert state changes.
    pub transitions: Vec<Transition>,
    /// Notifications to send.
    pub notifications: Vec<Notification>,
    /// The guard's decisions, for triggers and approvals.
    pub decisions: Vec<Decision>,
}

impl From<Evaluated> for ReactOutcome {
    fn from(evaluated: Evaluated) -> Self {
        ReactOutcome {
            transitions: evaluated.transitions,
            notifications: evaluated.notifications,
            decisions: Vec::new(),
        }
    }
}

impl From<Outcome> for ReactOutcome {
    fn from(outcome: Outcome) -> Self {
        ReactOutcome {
            transitions: Vec::new(),
            notifications: outcome.notifications,
            decisions: vec![outcome.decision],
        }
    }
}

/// The replicated detect-and-react state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReactState {
    /// The applied site, if any.
    pub site: Option<SiteDoc>,
    /// Active alerts and silences.
    pub alerts: AlertEngine,
    /// Hammer runs, pauses and limits.
    pub guard: HammerGuard,
    /// What each finished run did.
    pub reports: BTreeMap<RunId, RunReport>,
    /// Refused triggers, oldest first.
    pub refusals: VecDeque<RefusalRecord>,
    /// Firings, resolutions and escalations, oldest first.
    pub events: VecDeque<AlertEvent>,
    /// Alerts received from external Alertmanagers, by fingerprint.
    pub received: BTreeMap<String, ReceivedAlert>,
}

impl ReactState {
    /// Applies one input. Deterministic: the outcome depends only on the
    /// state and the input.
    pub fn apply(&mut self, op: &ReactOp) -> Result<ReactOutcome, CodedError> {
        match op {
            ReactOp::ApplySite { doc, now } => Ok(self.apply_site(doc, *now)),
            ReactOp::Evaluate { rule, observations, now, triggers, fleet_size } => {
                let Some(rule) = self.site.as_ref().and_then(|doc| doc.site.alerts.get(rule)) else {
                    // The rule was removed after the leader evaluated it.
                    return Ok(ReactOutcome::default());
                };
                let evaluated = self.alerts.evaluate(rule, observations, *now);
                self.record_transitions(&evaluated.transitions, *now);
                let mut outcome = ReactOutcome::from(evaluated);
                let fired: Vec<&AlertId> = outcome
                    .transitions
                    .iter()
                    .filter_map(|transition| match transition {
                        Transition::Firing(id) => Some(id),
                        _ => None,
                    })
                    .collect();
                let mut decided = ReactOutcome::default();
                for (alert, event) in triggers {
                    // A hammer removed meanwhile is skipped (nothing changed for it).
                    if fired.contains(&alert)
                        && let Ok(triggered) = self.trigger(event, *fleet_size, *now)
                    {
                        decided.notifications.extend(triggered.notifications);
                        decided.decisions.extend(triggered.decisions);
                    }
                }
                outcome.notifications.extend(decided.notifications);
                outcome.decisions = decided.decisions;
                Ok(outcome)
            }
            ReactOp::Ack { id, by, now } => {
                self.alerts
                    .ack(id, by, *now)
                    .map_err(|error| CodedError::new(ErrorCode::NotFound, error.to_string()))?;
                Ok(ReactOutcome::default())
            }
            ReactOp::Silence { silence } => {
                self.alerts.add_silence(silence.clone()).map_err(|error| CodedError::invalid(error.to_string()))?;
                Ok(ReactOutcome::default())
            }
            ReactOp::ExpireSilence { id, now } => {
                self.alerts
                    .expire_silence(id, *now)
                    .map_err(|error| CodedError::new(ErrorCode::NotFound, error.to_string()))?;
                Ok(ReactOutcome::default())
            }
            ReactOp::Trigger { event, fleet_size, now } => self.trigger(event, *fleet_size, *now),
            ReactOp::Approve { run, by, now } => {
                let name = self.run_hammer(*run)?;
                let hammer = self.hammer(&name)?.clone();
                let outcome = self.guard.approve(&hammer, *run, by, *now);
                if let Decision::Refused(refusal) = &outcome.decision {
                    return Err(CodedError::conflict(format!("run {run} cannot start now: {refusal}")));
                }
                Ok(outcome.into())
            }
            ReactOp::Deny { run, by, now } => {
                self.guard.deny(*run, by, *now).map_err(|refusal| CodedError::conflict(refusal.to_string()))?;
                Ok(ReactOutcome::default())
            }
            ReactOp::Finish { run, report, now } => {
                self.guard.finished(*run, report.succeeded, *now);
                let mut report = report.clone();
                truncate_output(&mut report.output);
                self.reports.insert(*run, report);
                Ok(ReactOutcome::default())
            }
            ReactOp::Pause { hammer, paused } => {
                if let Some(name) = hammer {
                    self.hammer(name)?;
                }
                if *paused {
                    self.guard.pause(hammer.as_deref());
                } else {
                    self.guard.resume(hammer.as_deref());
                }
                Ok(ReactOutcome::default())
            }
            ReactOp::Received { alerts } => {
                for alert in alerts {
                    self.received.insert(alert.fingerprint.clone(), alert.clone());
                }
                Ok(ReactOutcome::default())
            }
            ReactOp::Prune { now } => {
                self.prune(*now);
                Ok(ReactOutcome::default())
            }
        }
    }

    /// Asks the guard about one trigger; refusals and escalations are kept.
    fn trigger(&mut self, event: &TriggerEvent, fleet_size: usize, now: Timestamp) -> Result<ReactOutcome, CodedError> {
        let hammer = self.hammer(&event.hammer)?.clone();
        let outcome = self.guard.trigger(&hammer, event, fleet_size, now);
        if let Decision::Refused(refusal) = &outcome.decision {
            push_bounded(
                &mut self.refusals,
                RefusalRecord { at: now, event: event.clone(), reason: refusal.to_string() },
                REFUSALS_KEPT,
            );
        }
        self.record_escalations(&outcome.notifications, now);
        Ok(outcome.into())
    }

    fn apply_site(&mut self, doc: &SiteDoc, now: Timestamp) -> ReactOutcome {
        let mut outcome = ReactOutcome::default();
        if let Some(old) = &self.site {
            let removed: Vec<_> =
                old.site.alerts.values().filter(|rule| !doc.site.alerts.contains_key(&rule.name)).cloned().collect();
            for rule in removed {
                let evaluated = self.alerts.remove_rule(&rule, now);
                self.record_transitions(&evaluated.transitions, now);
                outcome.transitions.extend(evaluated.transitions);
                outcome.notifications.extend(evaluated.notifications);
            }
        }
        let version = self.site.as_ref().map_or(0, |old| old.version) + 1;
        self.site = Some(SiteDoc { version, ..doc.clone() });
        outcome
    }

    fn hammer(&self, name: &str) -> Result<&drover_react::Hammer, CodedError> {
        self.site.as_ref().and_then(|doc| doc.site.hammers.get(name)).ok_or_else(|| {
            CodedError::new(
                ErrorCode::NotFound,
                format!("no hammer {name:?} in the applied site: see drover hammer list"),
            )
        })
    }

    fn run_hammer(&self, run: RunId) -> Result<String, CodedError> {
        self.guard.run(run).map(|run| run.hammer.clone()).ok_or_else(|| {
            CodedError::new(ErrorCode::NotFound, format!("no hammer run {run}: see drover hammer history"))
        })
    }

    fn record_transitions(&mut self, transitions: &[Transition], now: Timestamp) {
        for transition in transitions {
            let (id, kind) = match transition {
                Transition::Firing(id) => (id, "firing"),
                Transition::Resolved(id) => (id, "resolved"),
                Transition::Pending(_) | Transition::Cleared(_) => continue,
            };
            let name = id.as_str().split('{').next().unwrap_or_default().to_owned();
            let event = AlertEvent { at: now, name, alert_id: id.to_string(), kind: kind.to_owned() };
            push_bounded(&mut self.events, event, ALERT_EVENTS_KEPT);
        }
    }

    fn record_escalations(&mut self, notifications: &[Notification], now: Timestamp) {
        let escalated = notifications
            .iter()
            .find(|notification| notification.kind == drover_react::alerting::NotificationKind::Escalation);
        if let Some(notification) = escalated {
            let event = AlertEvent {
                at: now,
                name: notification.source.clone(),
                alert_id: String::new(),
                kind: "escalation".to_owned(),
            };
            push_bounded(&mut self.events, event, ALERT_EVENTS_KEPT);
        }
    }

    fn prune(&mut self, now: Timestamp) {
        self.alerts.prune(now);
        let longest_window = self
            .site
            .iter()
            .flat_map(|doc| doc.site.hammers.values())
            .map(|hammer| hammer.limits.attempts_window.get())
            .max()
            .unwrap_or_default();
        self.guard.prune(RUNS_KEPT.max(longest_window), now);
        let guard = &self.guard;
        self.reports.retain(|run, _| guard.run(*run).is_some());
        let day_ago = now.minus(Duration::from_secs(24 * 3600));
        self.received.retain(|_, alert| alert.firing || alert.received_at > day_ago);
    }

    /// The Markdown of a runbook file of the applied site.
    pub fn runbook(&self, path: &str) -> Option<&str> {
        self.site.as_ref().and_then(|doc| doc.runbooks.get(path)).map(String::as_str)
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) {
    queue.push_back(item);
    while queue.len() > limit {
        queue.pop_front();
    }
}

/// Cuts an action's output to at most [`RUN_OUTPUT_MAX`] bytes, marker
/// included (so cutting again changes nothing).
pub fn truncate_output(output: &mut String) {
    const MARKER: &str = "\n[output truncated]";
    if output.len() > RUN_OUTPUT_MAX {
        let kept = drover_types::text::truncated(output, RUN_OUTPUT_MAX - MARKER.len()).len();
        output.truncate(kept);
        output.push_str(MARKER);
    }
}
