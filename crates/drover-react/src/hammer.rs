//! The hammer guard: whether a triggered hammer may act, sans-IO.
//!
//! ```text
//!  trigger ──▶ guard ──┬─▶ Refused(reason)            (recorded nowhere but the answer)
//!                      ├─▶ DryRun                      (recorded, counts against nothing)
//!                      ├─▶ WaitApproval ──approve──▶ (guard again) ──▶ Running ──finished──▶ Succeeded/Failed
//!                      │                 └──deny───▶ Denied
//!                      └─▶ Run ──────────────────────────────────────▶ Running ──finished──▶ Succeeded/Failed
//! ```
//!
//! A hammer is an automated fix, and an automated fix that goes wrong goes
//! wrong everywhere at once. So before a run, in this order:
//!
//! 1. the hammer (or every hammer) is not paused;
//! 2. the node is not protected, unless the trigger is forced by a human;
//! 3. the fleet-wide guard: when triggers of this hammer hit more than
//!    `fleet_max_percent` of the fleet within `fleet_window` (and always
//!    more than one node), it is a storm, not a known error: every trigger
//!    is refused, and one escalation goes to the hammer's notifiers;
//! 4. nothing is in progress for the same target (a run or a request);
//! 5. `max_attempts` runs on the target within `attempts_window` have not
//!    failed to fix it; past that, refuse and escalate once per window;
//! 6. the target's `cooldown` since its last run is over;
//! 7. (`dry-run` mode stops here, with `DryRun`;)
//! 8. fewer than `per_hour` runs started in the sliding hour;
//! 9. fewer than `concurrent` runs are running.
//!
//! Approving a request re-checks 1, 2, 8 and 9 at approval time, so a pile
//! of approvals cannot break the limits either. The guard reads no clock:
//! `now` is an argument, and run ids are a counter inside the state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use drover_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alerting::{Notification, NotificationKind};
use crate::matcher::Labels;
use crate::schema::{Hammer, Mode, Severity};

/// The sliding window of `per_hour`.
pub const HOUR: Duration = Duration::from_secs(3600);

/// A run's number, unique within one guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// The node a trigger is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerNode {
    /// The node's name.
    pub name: String,
    /// Whether the node is protected (`drover node protect`).
    pub protected: bool,
}

/// One trigger of one hammer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerEvent {
    /// The hammer's name.
    pub hammer: String,
    /// The node, when the trigger is about one.
    pub node: Option<TriggerNode>,
    /// The job, when the trigger is about one (used as the target when
    /// there is no node).
    pub job: Option<String>,
    /// What happened, for the history (`log line "Kernel panic" on …`).
    pub reason: String,
    /// A human asked for it: protection does not stop it (every other
    /// limit still applies). The guard honours it; no command sets it yet.
    pub forced: bool,
}

impl TriggerEvent {
    /// What cooldown, attempts and in-progress checks are counted by: the
    /// node, else the job, else the hammer as a whole (`*`).
    pub fn target(&self) -> String {
        match (&self.node, &self.job) {
            (Some(node), _) => format!("node/{}", node.name),
            (None, Some(job)) => format!("job/{job}"),
            (None, None) => "*".to_owned(),
        }
    }
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for `drover hammer approve`.
    AwaitingApproval,
    /// Acting.
    Running,
    /// Done, the action reported success.
    Succeeded,
    /// Done, the action failed.
    Failed,
    /// A human said no.
    Denied,
    /// Recorded in `dry-run` mode; nothing was done.
    DryRun,
}

impl RunState {
    /// The name used in listings and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::AwaitingApproval => "awaiting_approval",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Denied => "denied",
            RunState::DryRun => "dry_run",
        }
    }

    /// Whether the run was started (counts against `per_hour`, cooldown,
    /// attempts).
    pub fn was_started(self) -> bool {
        matches!(self, RunState::Running | RunState::Succeeded | RunState::Failed)
    }
}

/// One entry of `drover hammer history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The number.
    pub id: RunId,
    /// The hammer.
    pub hammer: String,
    /// The target (see [`TriggerEvent::target`]).
    pub target: String,
    /// The trigger.
    pub event: TriggerEvent,
    /// Where it is.
    pub state: RunState,
    /// When it was triggered.
    pub requested_at: Timestamp,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// When it finished (or was denied).
    pub finished_at: Option<Timestamp>,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
}

/// Why a trigger (or an approval) was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The hammer, or every hammer, is paused.
    Paused,
    /// The node is protected and the trigger was not forced.
    Protected {
        /// The node.
        node: String,
    },
    /// A storm: too much of the fleet triggered within the window.
    FleetGuard {
        /// Distinct nodes triggered within the window.
        affected: usize,
        /// Nodes in the fleet.
        fleet_size: usize,
        /// The limit.
        max_percent: f64,
    },
    /// A run or request for the same target is in progress.
    InProgress {
        /// That run.
        run: RunId,
    },
    /// The hammer already ran this often on the target without fixing it.
    MaxAttempts {
        /// Runs within the attempts window.
        attempts: u32,
    },
    /// The target ran too recently.
    Cooldown {
        /// When the next run is allowed.
        until: Timestamp,
    },
    /// `per_hour` runs already started in the sliding hour.
    PerHour {
        /// The limit.
        limit: u32,
    },
    /// `concurrent` runs are running.
    Concurrency {
        /// The limit.
        limit: u32,
    },
    /// No such run, or not waiting for approval.
    NotAwaitingApproval {
        /// The run asked about.
        run: RunId,
    },
    /// The run belongs to another hammer than the one given.
    WrongHammer {
        /// The run asked about.
        run: RunId,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Paused => write!(formatter, "the hammer is paused"),
            Refusal::Protected { node } => {
                write!(formatter, "node {node} is protected: unprotect it or force the run")
            }
            Refusal::FleetGuard { affected, fleet_size, max_percent } => write!(
                formatter,
                "{affected} of {fleet_size} nodes triggered within the fleet window, more than {max_percent}%: a human must look"
            ),
            Refusal::InProgress { run } => write!(formatter, "run {run} for the same target is in progress"),
            Refusal::MaxAttempts { attempts } => {
                write!(formatter, "{attempts} runs on this target did not fix it: escalated to a human")
            }
            Refusal::Cooldown { until } => write!(formatter, "the target is cooling down until {until}"),
            Refusal::PerHour { limit } => write!(formatter, "{limit} runs already started in the last hour"),
            Refusal::Concurrency { limit } => write!(formatter, "{limit} runs are already running"),
            Refusal::NotAwaitingApproval { run } => write!(formatter, "run {run} is not waiting for approval"),
            Refusal::WrongHammer { run } => write!(formatter, "run {run} belongs to another hammer"),
        }
    }
}

/// The guard's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Act now; the runtime reports back with [`HammerGuard::finished`].
    Run(RunId),
    /// Ask a human; [`HammerGuard::approve`] or [`HammerGuard::deny`].
    WaitApproval(RunId),
    /// Record what would have been done.
    DryRun(RunId),
    /// Do nothing.
    Refused(Refusal),
}

/// The decision and the notifications that go with it (escalations,
/// approval requests).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What to do.
    pub decision: Decision,
    /// Who to tell.
    pub notifications: Vec<Notification>,
}

impl Outcome {
    fn refused(refusal: Refusal) -> Outcome {
        Outcome { decision: Decision::Refused(refusal), notifications: Vec::new() }
    }
}

/// The history and switches the guard decides on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HammerGuard {
    runs: BTreeMap<RunId, Run>,
    next_run: u64,
    all_paused: bool,
    paused: BTreeSet<String>,
    /// Recent triggers that named a node: (hammer, node, when).
    recent_triggers: Vec<(String, String, Timestamp)>,
    /// Hammers whose fleet-wide guard tripped (escalation sent).
    fleet_tripped: BTreeSet<String>,
    /// When each (hammer, target) was last escalated for `max_attempts`.
    escalated: BTreeMap<(String, String), Timestamp>,
}

impl HammerGuard {
    /// No history.
    pub fn new() -> HammerGuard {
        HammerGuard::default()
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    /// One run.
    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
    }

    /// Pauses one hammer, or all with `None`.
    pub fn pause(&mut self, hammer: Option<&str>) {
        match hammer {
            Some(name) => {
                self.paused.insert(name.to_owned());
            }
            None => self.all_paused = true,
        }
    }

    /// Resumes one hammer (also clearing its tripped fleet guard), or lifts
    /// the pause of all with `None`.
    pub fn resume(&mut self, hammer: Option<&str>) {
        match hammer {
            Some(name) => {
                self.paused.remove(name);
                self.fleet_tripped.remove(name);
                self.recent_triggers.retain(|(trigger_hammer, _, _)| trigger_hammer != name);
            }
            None => self.all_paused = false,
        }
    }

    /// Whether a hammer is paused.
    pub fn is_paused(&self, hammer: &str) -> bool {
        self.all_paused || self.paused.contains(hammer)
    }

    /// Decides on one trigger of `hammer` in a fleet of `fleet_size` nodes.
    ///
    /// `event.hammer` must name `hammer` (checked by a `debug_assert!`;
    /// release builds decide with `hammer`'s limits).
    pub fn trigger(&mut self, hammer: &Hammer, event: &TriggerEvent, fleet_size: usize, now: Timestamp) -> Outcome {
        debug_assert_eq!(hammer.name, event.hammer, "the event must be for this hammer");
        let limits = hammer.limits;
        let target = event.target();
        if let Some(node) = &event.node {
            self.recent_triggers.push((hammer.name.clone(), node.name.clone(), now));
        }
        let oldest_kept = now.minus(limits.fleet_window.get());
        self.recent_triggers.retain(|(trigger_hammer, _, at)| trigger_hammer != &hammer.name || *at > oldest_kept);

        if self.is_paused(&hammer.name) {
            return Outcome::refused(Refusal::Paused);
        }
        if let Some(node) = &event.node
            && node.protected
            && !event.forced
        {
            return Outcome::refused(Refusal::Protected { node: node.name.clone() });
        }
        if let Some(outcome) = self.fleet_guard(hammer, fleet_size, now) {
            return outcome;
        }
        if let Some(in_progress) = self.runs.values().find(|run| {
            run.hammer == hammer.name
                && run.target == target
                && matches!(run.state, RunState::Running | RunState::AwaitingApproval)
        }) {
            return Outcome::refused(Refusal::InProgress { run: in_progress.id });
        }
        let attempts_since = now.minus(limits.attempts_window.get());
        let attempts = self
            .started_runs(&hammer.name)
            .filter(|run| run.target == target && run.started_at.is_some_and(|started| started > attempts_since))
            .count();
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts >= limits.max_attempts {
            let key = (hammer.name.clone(), target.clone());
            let already_escalated = self.escalated.get(&key).is_some_and(|at| *at > attempts_since);
            let mut outcome = Outcome::refused(Refusal::MaxAttempts { attempts });
            if !already_escalated {
                self.escalated.insert(key, now);
                outcome.notifications = escalation(
                    hammer,
                    event,
                    format!(
                        "hammer {} ran {attempts} times on {target} within {} without fixing it: over to a human",
                        hammer.name, limits.attempts_window
                    ),
                    now,
                );
            }
            return outcome;
        }
        let last_start =
            self.started_runs(&hammer.name).filter(|run| run.target == target).filter_map(|run| run.started_at).max();
        if let Some(started) = last_start {
            let until = started.plus(limits.cooldown.get());
            if now < until {
                return Outcome::refused(Refusal::Cooldown { until });
            }
        }
        if hammer.mode == Mode::DryRun {
            let id = self.record(hammer, event, target, RunState::DryRun, now);
            return Outcome { decision: Decision::DryRun(id), notifications: Vec::new() };
        }
        if let Some(refusal) = self.rate_limits(hammer, now) {
            return Outcome::refused(refusal);
        }
        match hammer.mode {
            Mode::Approve => {
                let id = self.record(hammer, event, target.clone(), RunState::AwaitingApproval, now);
                let summary = format!(
                    "hammer {} wants to {} {target} ({}): drover hammer approve {id}",
                    hammer.name,
                    hammer.action.kind(),
                    event.reason
                );
                let notifications =
                    hammer_notifications(hammer, event, NotificationKind::ApprovalRequested, summary, now);
                Outcome { decision: Decision::WaitApproval(id), notifications }
            }
            Mode::Auto | Mode::DryRun => {
                let id = self.record(hammer, event, target, RunState::Running, now);
                Outcome { decision: Decision::Run(id), notifications: Vec::new() }
            }
        }
    }

    /// A human approves a waiting run: it starts if pause, protection and
    /// the hourly and concurrency limits allow it now, else stays waiting.
    pub fn approve(&mut self, hammer: &Hammer, run_id: RunId, who: &str, now: Timestamp) -> Outcome {
        let Some(run) = self.runs.get(&run_id) else {
            return Outcome::refused(Refusal::NotAwaitingApproval { run: run_id });
        };
        if run.hammer != hammer.name {
            return Outcome::refused(Refusal::WrongHammer { run: run_id });
        }
        if run.state != RunState::AwaitingApproval {
            return Outcome::refused(Refusal::NotAwaitingApproval { run: run_id });
        }
        if self.is_paused(&hammer.name) {
            return Outcome::refused(Refusal::Paused);
        }
        if let Some(node) = &run.event.node
            && node.protected
            && !run.event.forced
        {
            return Outcome::refused(Refusal::Protected { node: node.name.clone() });
        }
        if let Some(refusal) = self.rate_limits(hammer, now) {
            return Outcome::refused(refusal);
        }
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.state = RunState::Running;
            run.started_at = Some(now);
            run.decided_by = Some(who.to_owned());
        }
        Outcome { decision: Decision::Run(run_id), notifications: Vec::new() }
    }

    /// A human refuses a waiting run.
    pub fn deny(&mut self, run_id: RunId, who: &str, now: Timestamp) -> Result<(), Refusal> {
        match self.runs.get_mut(&run_id) {
            Some(run) if run.state == RunState::AwaitingApproval => {
                run.state = RunState::Denied;
                run.finished_at = Some(now);
                run.decided_by = Some(who.to_owned());
                Ok(())
            }
            _ => Err(Refusal::NotAwaitingApproval { run: run_id }),
        }
    }

    /// The runtime reports that a running action ended. Unknown or
    /// not-running runs are ignored (a report may arrive twice).
    pub fn finished(&mut self, run_id: RunId, succeeded: bool, now: Timestamp) {
        if let Some(run) = self.runs.get_mut(&run_id)
            && run.state == RunState::Running
        {
            run.state = if succeeded { RunState::Succeeded } else { RunState::Failed };
            run.finished_at = Some(now);
        }
    }

    /// Forgets finished runs older than `keep` (never running or waiting
    /// ones). Keep at least the longest `attempts_window` of the site, or
    /// attempts are forgotten early.
    pub fn prune(&mut self, keep: Duration, now: Timestamp) {
        let oldest_kept = now.minus(keep);
        self.runs.retain(|_, run| match run.finished_at {
            Some(finished) => finished > oldest_kept,
            None => !matches!(run.state, RunState::DryRun) || run.requested_at > oldest_kept,
        });
        self.escalated.retain(|_, at| *at > oldest_kept);
    }

    fn started_runs<'guard>(&'guard self, hammer: &'guard str) -> impl Iterator<Item = &'guard Run> + 'guard {
        self.runs.values().filter(move |run| run.hammer == hammer && run.state.was_started())
    }

    /// `per_hour` and `concurrent`.
    fn rate_limits(&self, hammer: &Hammer, now: Timestamp) -> Option<Refusal> {
        let hour_ago = now.minus(HOUR);
        let started_in_hour = self
            .started_runs(&hammer.name)
            .filter(|run| run.started_at.is_some_and(|started| started > hour_ago))
            .count();
        if started_in_hour >= usize::try_from(hammer.limits.per_hour).unwrap_or(usize::MAX) {
            return Some(Refusal::PerHour { limit: hammer.limits.per_hour });
        }
        let running = self.started_runs(&hammer.name).filter(|run| run.state == RunState::Running).count();
        if running >= usize::try_from(hammer.limits.concurrent).unwrap_or(usize::MAX) {
            return Some(Refusal::Concurrency { limit: hammer.limits.concurrent });
        }
        None
    }

    /// The fleet-wide guard; `Some` refuses (with the one escalation when it
    /// trips).
    fn fleet_guard(&mut self, hammer: &Hammer, fleet_size: usize, now: Timestamp) -> Option<Outcome> {
        let affected: BTreeSet<&str> = self
            .recent_triggers
            .iter()
            .filter(|(trigger_hammer, _, _)| trigger_hammer == &hammer.name)
            .map(|(_, node, _)| node.as_str())
            .collect();
        let affected = affected.len();
        let max_percent = hammer.limits.fleet_max_percent;
        let allowed = allowed_nodes(fleet_size, max_percent);
        if affected <= allowed {
            self.fleet_tripped.remove(&hammer.name);
            return None;
        }
        let refusal = Refusal::FleetGuard { affected, fleet_size, max_percent };
        let mut outcome = Outcome::refused(refusal.clone());
        if self.fleet_tripped.insert(hammer.name.clone()) {
            let summary = format!("hammer {} stopped: {refusal}", hammer.name);
            let event = TriggerEvent {
                hammer: hammer.name.clone(),
                node: None,
                job: None,
                reason: summary.clone(),
                forced: false,
            };
            outcome.notifications = escalation(hammer, &event, summary, now);
        }
        Some(outcome)
    }

    fn record(
        &mut self,
        hammer: &Hammer,
        event: &TriggerEvent,
        target: String,
        state: RunState,
        now: Timestamp,
    ) -> RunId {
        self.next_run += 1;
        let id = RunId(self.next_run);
        let started_at = (state == RunState::Running).then_some(now);
        self.runs.insert(
            id,
            Run {
                id,
                hammer: hammer.name.clone(),
                target,
                event: event.clone(),
                state,
                requested_at: now,
                started_at,
                finished_at: None,
                decided_by: None,
            },
        );
        id
    }
}

/// How many distinct nodes may trigger within the window before the fleet
/// guard trips: the share of the fleet, but never less than one.
pub fn allowed_nodes(fleet_size: usize, max_percent: f64) -> usize {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let share = ((fleet_size as f64) * max_percent / 100.0).floor().max(0.0) as usize;
    share.max(1)
}

fn escalation(hammer: &Hammer, event: &TriggerEvent, summary: String, now: Timestamp) -> Vec<Notification> {
    hammer_notifications(hammer, event, NotificationKind::Escalation, summary, now)
}

/// The notifications of a hammer's `kind` (its action, an escalation, an
/// approval request) to each of its notifiers, carrying its runbook.
pub fn hammer_notifications(
    hammer: &Hammer,
    event: &TriggerEvent,
    kind: NotificationKind,
    summary: String,
    now: Timestamp,
) -> Vec<Notification> {
    let mut labels = Labels::new();
    labels.insert("hammer".to_owned(), hammer.name.clone());
    if let Some(node) = &event.node {
        labels.insert("node".to_owned(), node.name.clone());
    }
    if let Some(job) = &event.job {
        labels.insert("job".to_owned(), job.clone());
    }
    hammer
        .notify
        .iter()
        .map(|notifier| Notification {
            notifier: notifier.clone(),
            kind,
            source: hammer.name.clone(),
            alert_id: None,
            severity: Severity::Critical,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
            summary: summary.clone(),
            runbook: hammer.runbook.as_ref().map(|runbook| runbook.as_str().to_owned()),
            starts_at: now,
            value: None,
        })
        .collect()
}

/// The most output kept per run.
pub const RUN_OUTPUT_MAX: usize = 16 * 1024;

/// What a hammer run did, reported when its action ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The action as performed (`reboot through provider lab: …`).
    pub action: String,
    /// The action's output (truncated to [`RUN_OUTPUT_MAX`]).
    pub output: String,
    /// Whether it succeeded.
    pub succeeded: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schema::{Action, HammerTrigger, Limits};
    use drover_types::DurationSpec;
    use proptest::prelude::*;

    fn hammer(mode: Mode, limits: Limits) -> Hammer {
        Hammer {
            name: "reboot-on-panic".to_owned(),
            trigger: HammerTrigger::Log {
                source: Some("console".to_owned()),
                matches: Some("Kernel panic".to_owned()),
                query: None,
            },
            action: Action::Reboot { provider: None },
            mode,
            limits,
            runbook: None,
            notify: vec!["ops-chat".to_owned()],
        }
    }

    fn limits(per_hour: u32, concurrent: u32, cooldown_seconds: u64, max_attempts: u32) -> Limits {
        Limits {
            per_hour,
            concurrent,
            cooldown: DurationSpec::from_secs(cooldown_seconds),
            max_attempts,
            attempts_window: DurationSpec::from_secs(24 * 3600),
            fleet_max_percent: 100.0,
            fleet_window: DurationSpec::from_secs(3600),
        }
    }

    fn event(node: &str) -> TriggerEvent {
        TriggerEvent {
            hammer: "reboot-on-panic".to_owned(),
            node: Some(TriggerNode { name: node.to_owned(), protected: false }),
            job: None,
            reason: "Kernel panic on console".to_owned(),
            forced: false,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000_000 + seconds * 1000)
    }

    #[test]
    fn auto_runs_within_limits_and_refuses_past_them() {
        let hammer = hammer(Mode::Auto, limits(2, 1, 1800, 3));
        let mut guard = HammerGuard::new();
        let first = guard.trigger(&hammer, &event("n1"), 100, at(0));
        assert_eq!(first.decision, Decision::Run(RunId(1)));
        assert_eq!(
            guard.trigger(&hammer, &event("n1"), 100, at(1)).decision,
            Decision::Refused(Refusal::InProgress { run: RunId(1) })
        );
        assert_eq!(
            guard.trigger(&hammer, &event("n2"), 100, at(2)).decision,
            Decision::Refused(Refusal::Concurrency { limit: 1 })
        );
        guard.finished(RunId(1), true, at(60));
        assert_eq!(guard.run(RunId(1)).unwrap().state, RunState::Succeeded);
        assert_eq!(
            guard.trigger(&hammer, &event("n1"), 100, at(61)).decision,
            Decision::Refused(Refusal::Cooldown { until: at(1800) })
        );
        assert_eq!(guard.trigger(&hammer, &event("n2"), 100, at(62)).decision, Decision::Run(RunId(2)));
        guard.finished(RunId(2), false, at(70));
        assert_eq!(
            guard.trigger(&hammer, &event("n3"), 100, at(80)).decision,
            Decision::Refused(Refusal::PerHour { limit: 2 })
        );
        // The hour slides: the first run started at 0s.
        assert_eq!(guard.trigger(&hammer, &event("n3"), 100, at(3601)).decision, Decision::Run(RunId(3)));
    }

    #[test]
    fn protected_nodes_need_force_and_pause_stops_everything() {
        let hammer = hammer(Mode::Auto, limits(10, 10, 0, 3));
        let mut guard = HammerGuard::new();
        let mut protected = event("alibuild03");
        protected.node = Some(TriggerNode { name: "alibuild03".to_owned(), protected: true });
        assert_eq!(
            guard.trigger(&hammer, &protected, 100, at(0)).decision,
            Decision::Refused(Refusal::Protected { node: "alibuild03".to_owned() })
        );
        protected.forced = true;
        assert!(matches!(guard.trigger(&hammer, &protected, 100, at(1)).decision, Decision::Run(_)));

        guard.pause(Some("reboot-on-panic"));
        assert_eq!(guard.trigger(&hammer, &event("n1"), 100, at(2)).decision, Decision::Refused(Refusal::Paused));
        guard.resume(Some("reboot-on-panic"));
        guard.pause(None);
        assert_eq!(guard.trigger(&hammer, &event("n1"), 100, at(3)).decision, Decision::Refused(Refusal::Paused));
        guard.resume(None);
        assert!(matches!(guard.trigger(&hammer, &event("n1"), 100, at(4)).decision, Decision::Run(_)));
    }

    #[test]
    fn max_attempts_refuses_and_escalates_once() {
        let hammer = hammer(Mode::Auto, limits(100, 10, 0, 2));
        let mut guard = HammerGuard::new();
        for (index, second) in [0, 100].into_iter().enumerate() {
            let outcome = guard.trigger(&hammer, &event("n1"), 100, at(second));
            assert_eq!(outcome.decision, Decision::Run(RunId(index as u64 + 1)));
            guard.finished(RunId(index as u64 + 1), true, at(second + 10));
        }
        let third = guard.trigger(&hammer, &event("n1"), 100, at(200));
        assert_eq!(third.decision, Decision::Refused(Refusal::MaxAttempts { attempts: 2 }));
        assert_eq!(third.notifications.len(), 1);
        assert_eq!(third.notifications[0].kind, NotificationKind::Escalation);
        assert_eq!(third.notifications[0].notifier, "ops-chat");
        assert_eq!(third.notifications[0].labels["node"], "n1");
        let fourth = guard.trigger(&hammer, &event("n1"), 100, at(300));
        assert!(fourth.notifications.is_empty(), "escalated once per window");
        // Another node is unaffected.
        assert!(matches!(guard.trigger(&hammer, &event("n2"), 100, at(301)).decision, Decision::Run(_)));
    }

    #[test]
    fn a_storm_trips_the_fleet_guard_once() {
        let mut storm_limits = limits(100, 100, 0, 3);
        storm_limits.fleet_max_percent = 10.0;
        let hammer = hammer(Mode::Auto, storm_limits);
        let mut guard = HammerGuard::new();
        // 20 nodes, 10%: two nodes may trigger within the hour.
        assert!(matches!(guard.trigger(&hammer, &event("n1"), 20, at(0)).decision, Decision::Run(_)));
        assert!(matches!(guard.trigger(&hammer, &event("n2"), 20, at(1)).decision, Decision::Run(_)));
        let tripped = guard.trigger(&hammer, &event("n3"), 20, at(2));
        assert_eq!(
            tripped.decision,
            Decision::Refused(Refusal::FleetGuard { affected: 3, fleet_size: 20, max_percent: 10.0 })
        );
        assert_eq!(tripped.notifications.len(), 1);
        assert_eq!(tripped.notifications[0].kind, NotificationKind::Escalation);
        let still = guard.trigger(&hammer, &event("n4"), 20, at(3));
        assert!(matches!(still.decision, Decision::Refused(Refusal::FleetGuard { .. })));
        assert!(still.notifications.is_empty());
        // A node that already ran is refused too: the storm stops everything.
        assert!(matches!(guard.trigger(&hammer, &event("n1"), 20, at(4)).decision, Decision::Refused(_)));
        // An hour later the window is empty again.
        assert!(matches!(guard.trigger(&hammer, &event("n5"), 20, at(3700)).decision, Decision::Run(_)));
        assert_eq!(allowed_nodes(1, 10.0), 1);
        assert_eq!(allowed_nodes(0, 10.0), 1);
        assert_eq!(allowed_nodes(1000, 2.5), 25);
    }

    #[test]
    fn approve_mode_waits_and_rechecks_limits_at_approval() {
        let hammer = hammer(Mode::Approve, limits(1, 1, 0, 3));
        let mut guard = HammerGuard::new();
        let first = guard.trigger(&hammer, &event("n1"), 100, at(0));
        assert_eq!(first.decision, Decision::WaitApproval(RunId(1)));
        assert_eq!(first.notifications.len(), 1);
        assert_eq!(first.notifications[0].kind, NotificationKind::ApprovalRequested);
        assert!(
            first.notifications[0].summary.contains("drover hammer approve 1"),
            "{}",
            first.notifications[0].summary
        );
        assert_eq!(guard.trigger(&hammer, &event("n2"), 100, at(1)).decision, Decision::WaitApproval(RunId(2)));

        assert_eq!(guard.approve(&hammer, RunId(1), "alice", at(10)).decision, Decision::Run(RunId(1)));
        assert_eq!(guard.run(RunId(1)).unwrap().decided_by.as_deref(), Some("alice"));
        assert_eq!(
            guard.approve(&hammer, RunId(2), "alice", at(11)).decision,
            Decision::Refused(Refusal::PerHour { limit: 1 })
        );
        assert_eq!(guard.run(RunId(2)).unwrap().state, RunState::AwaitingApproval, "it still waits");
        guard.deny(RunId(2), "bob", at(12)).unwrap();
        assert_eq!(guard.run(RunId(2)).unwrap().state, RunState::Denied);
        assert_eq!(guard.deny(RunId(2), "bob", at(13)), Err(Refusal::NotAwaitingApproval { run: RunId(2) }));
        assert_eq!(
            guard.approve(&hammer, RunId(9), "alice", at(14)).decision,
            Decision::Refused(Refusal::NotAwaitingApproval { run: RunId(9) })
        );
    }

    #[test]
    fn dry_run_records_without_counting() {
        let hammer = hammer(Mode::DryRun, limits(1, 1, 0, 1));
        let mut guard = HammerGuard::new();
        for second in 0..5 {
            assert!(matches!(guard.trigger(&hammer, &event("n1"), 100, at(second)).decision, Decision::DryRun(_)));
        }
        assert_eq!(guard.runs().count(), 5);
        assert!(guard.runs().all(|run| run.state == RunState::DryRun));
        guard.prune(Duration::from_secs(1), at(100));
        assert_eq!(guard.runs().count(), 0);
    }

    #[derive(Clone, Debug)]
    enum StormStep {
        Trigger { node: u8, protected: bool },
        Finish { nth_running: u8, succeeded: bool },
        Approve { nth_waiting: u8 },
    }

    fn storm_step() -> impl Strategy<Value = (u16, StormStep)> {
        (
            0_u16..900,
            prop_oneof![
                6 => (0_u8..30, proptest::bool::weighted(0.1)).prop_map(|(node, protected)| StormStep::Trigger { node, protected }),
                3 => (0_u8..8, any::<bool>()).prop_map(|(nth_running, succeeded)| StormStep::Finish { nth_running, succeeded }),
                2 => (0_u8..8).prop_map(|nth_waiting| StormStep::Approve { nth_waiting }),
            ],
        )
    }

    proptest! {
        /// A storm of triggers, finishes and approvals never starts more
        /// runs than `per_hour` in any sliding hour, never has more than
        /// `concurrent` running, never touches a protected node, and never
        /// runs a target twice within its cooldown.
        #[test]
        fn a_storm_never_breaks_the_limits(
            per_hour in 1_u32..8,
            concurrent in 1_u32..4,
            cooldown in 0_u64..1800,
            max_attempts in 1_u32..5,
            fleet_max_percent in 5.0_f64..100.0,
            approve in any::<bool>(),
            steps in proptest::collection::vec(storm_step(), 1..200),
        ) {
            let mode = if approve { Mode::Approve } else { Mode::Auto };
            let mut storm_limits = limits(per_hour, concurrent, cooldown, max_attempts);
            storm_limits.fleet_max_percent = fleet_max_percent;
            let hammer = hammer(mode, storm_limits);
            let mut guard = HammerGuard::new();
            let mut now = at(0);
            for (gap, step) in steps {
                now = now.plus(Duration::from_secs(u64::from(gap)));
                match step {
                    StormStep::Trigger { node, protected } => {
                        let mut trigger = event(&format!("n{node}"));
                        trigger.node = Some(TriggerNode { name: format!("n{node}"), protected });
                        let outcome = guard.trigger(&hammer, &trigger, 30, now);
                        if protected {
                            prop_assert!(matches!(outcome.decision, Decision::Refused(_)));
                        }
                    }
                    StormStep::Finish { nth_running, succeeded } => {
                        let running: Vec<RunId> =
                            guard.runs().filter(|run| run.state == RunState::Running).map(|run| run.id).collect();
                        if !running.is_empty() {
                            guard.finished(running[usize::from(nth_running) % running.len()], succeeded, now);
                        }
                    }
                    StormStep::Approve { nth_waiting } => {
                        let waiting: Vec<RunId> = guard
                            .runs()
                            .filter(|run| run.state == RunState::AwaitingApproval)
                            .map(|run| run.id)
                            .collect();
                        if !waiting.is_empty() {
                            guard.approve(&hammer, waiting[usize::from(nth_waiting) % waiting.len()], "prop", now);
                        }
                    }
                }
                let running = guard.runs().filter(|run| run.state == RunState::Running).count();
                prop_assert!(running <= concurrent as usize, "{running} running > {concurrent}");
                let mut starts: Vec<(Timestamp, String)> = guard
                    .runs()
                    .filter_map(|run| run.started_at.map(|started| (started, run.target.clone())))
                    .collect();
                starts.sort();
                for (index, (start, _)) in starts.iter().enumerate() {
                    let window_start = start.minus(HOUR);
                    let in_window = starts[..=index].iter().filter(|(other, _)| *other > window_start).count();
                    prop_assert!(in_window <= per_hour as usize, "{in_window} starts in an hour > {per_hour}");
                }
                for (index, (start, target)) in starts.iter().enumerate() {
                    for (earlier, earlier_target) in &starts[..index] {
                        if earlier_target == target {
                            prop_assert!(start.since(*earlier) >= Duration::from_secs(cooldown), "cooldown broken on {target}");
                        }
                    }
                }
                prop_assert!(guard.runs().all(|run| run.started_at.is_none()
                    || !run.event.node.as_ref().is_some_and(|node| node.protected)));
            }
        }
    }
}
