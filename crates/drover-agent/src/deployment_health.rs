//! Deployment health of one allocation: a sans-IO watcher (Nomad's
//! client-side health watcher).
//!
//! A deployment replaces allocations batch by batch and only moves on when
//! the new ones are healthy, so someone must decide "healthy". Nomad has
//! the client decide, and so does drover: the agent sees every task state
//! change and every check result as it happens, where the server would only
//! see the updates that reach it. The agent decides once per allocation and
//! reports the decision in `ClientAllocUpdate::deployment_health`; the
//! server's deployment watcher does the rest.
//!
//! The rules come from the group's `update` block:
//!
//! - `health_check = "checks"`: healthy once every task is running and
//!   every check is passing, without interruption for `min_healthy_time`;
//!   `"task_states"`: the same without the checks; `"manual"`: the agent
//!   never decides (an operator does, through the API).
//! - A task restart, a task leaving `running` or a check leaving `passing`
//!   starts the `min_healthy_time` window again.
//! - Unhealthy when a task fails for good, or when `healthy_deadline` has
//!   passed since the watch started without a healthy decision.
//!
//! ```text
//!           Start: ScheduleTimer(deadline)
//!   Idle ─────────────────────────────────▶ Watching{healthy_since: None}
//!                                             │  ▲ a task not running, restarted,
//!                     all running (+ checks)  │  │ or a check not passing
//!                                             ▼  │
//!                                  Watching{healthy_since: t}: ScheduleTimer(t + min_healthy_time)
//!                                             │ TimerFired, healthy for min_healthy_time
//!                                             ▼
//!                                     Decided(healthy): Report{healthy: true}
//!   Watching ── a task failed, or TimerFired at the deadline ──▶ Decided(unhealthy): Report{healthy: false}
//!   Watching ── StopWatching (allocation stopping, or the servers decided) ──▶ Abandoned
//!   Decided and Abandoned ignore every event: a decision is made once.
//! ```
//!
//! The watcher keeps at most one timer: the earlier of the deadline and the
//! end of the current healthy window. The decision is sticky across agent
//! restarts too: the alloc runner persists it with [`save_decision`] and a
//! runner that finds one never creates a watcher again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use drover_types::{DurationSpec, HealthCheckMode, TaskLifecycleState, TaskState, Timestamp, UpdateStrategy};

/// The health rules of an allocation, from its group's `update` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HealthConfig {
    /// What makes the allocation healthy.
    pub(crate) mode: HealthCheckMode,
    /// How long it must stay healthy.
    pub(crate) min_healthy_time: Duration,
    /// How long it has to become healthy.
    pub(crate) healthy_deadline: Duration,
}

impl From<&UpdateStrategy> for HealthConfig {
    fn from(update: &UpdateStrategy) -> Self {
        HealthConfig {
            mode: update.health_check,
            min_healthy_time: update.min_healthy_time.get(),
            healthy_deadline: update.healthy_deadline.get(),
        }
    }
}

/// The part of the tasks' states that health depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TasksSummary {
    /// Every task is running.
    pub(crate) all_running: bool,
    /// A task that failed for good, if any.
    pub(crate) failed_task: Option<String>,
    /// Restarts of all tasks so far (an increase is a restart).
    pub(crate) restarts: u32,
}

impl TasksSummary {
    /// The summary of `(name, state, finished)` for every task.
    pub(crate) fn of<'a>(tasks: impl IntoIterator<Item = (&'a str, &'a TaskState, bool)>) -> Self {
        let mut summary = TasksSummary { all_running: true, failed_task: None, restarts: 0 };
        for (name, state, finished) in tasks {
            summary.all_running &= state.state == TaskLifecycleState::Running && !finished;
            if finished && state.failed && summary.failed_task.is_none() {
                summary.failed_task = Some(name.to_owned());
            }
            summary.restarts = summary.restarts.saturating_add(state.restarts);
        }
        summary
    }
}

/// Something that happened to the allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HealthEvent {
    /// The alloc runner started: the deadline counts from now.
    Start,
    /// A task's state changed.
    TasksChanged(TasksSummary),
    /// The check statuses changed.
    ChecksChanged {
        /// Every check is passing (true without checks).
        all_passing: bool,
    },
    /// The timer from the last [`HealthCommand::ScheduleTimer`] fired.
    TimerFired,
    /// Stop watching without a decision: the allocation is stopping, or
    /// the servers recorded a decision.
    StopWatching,
}

/// What the alloc runner must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HealthCommand {
    /// Fire [`HealthEvent::TimerFired`] at `at`, replacing any pending timer.
    ScheduleTimer {
        /// When.
        at: Timestamp,
    },
    /// Forget the pending timer.
    CancelTimer,
    /// The decision: persist it and report it in every later update.
    Report {
        /// Healthy or not.
        healthy: bool,
        /// Why, for logs.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Watching { deadline: Timestamp },
    Decided { healthy: bool },
    Abandoned,
}

/// The deployment-health decider of one allocation.
#[derive(Clone, Debug)]
pub(crate) struct HealthWatcher {
    config: HealthConfig,
    phase: Phase,
    tasks: TasksSummary,
    checks_passing: bool,
    /// Restarts already accounted for.
    restarts_seen: u32,
    /// Start of the current healthy window.
    healthy_since: Option<Timestamp>,
    /// The pending timer.
    timer: Option<Timestamp>,
}

impl HealthWatcher {
    /// A watcher that waits for [`HealthEvent::Start`]. Until the first
    /// [`HealthEvent::TasksChanged`] the tasks count as not running; until
    /// the first [`HealthEvent::ChecksChanged`] the checks count as passing
    /// (the alloc runner sends their initial state right after `Start`).
    pub(crate) fn new(config: HealthConfig) -> Self {
        HealthWatcher {
            config,
            phase: Phase::Idle,
            tasks: TasksSummary::default(),
            checks_passing: true,
            restarts_seen: 0,
            healthy_since: None,
            timer: None,
        }
    }

    /// The decision, once made (the runner learns it from
    /// [`HealthCommand::Report`]).
    #[cfg(test)]
    pub(crate) fn decision(&self) -> Option<bool> {
        match self.phase {
            Phase::Decided { healthy } => Some(healthy),
            Phase::Idle | Phase::Watching { .. } | Phase::Abandoned => None,
        }
    }

    /// Applies one event at `now` and returns what to do, in order.
    pub(crate) fn handle(&mut self, event: HealthEvent, now: Timestamp) -> Vec<HealthCommand> {
        let mut commands = Vec::new();
        if self.config.mode == HealthCheckMode::Manual {
            return commands;
        }
        match (self.phase, event) {
            (Phase::Decided { .. } | Phase::Abandoned, _) => {}
            (Phase::Idle, HealthEvent::Start) => {
                self.phase = Phase::Watching { deadline: now.plus(self.config.healthy_deadline) };
                self.evaluate(&mut commands, now);
            }
            (Phase::Idle, HealthEvent::TasksChanged(summary)) => {
                self.restarts_seen = summary.restarts;
                self.tasks = summary;
            }
            (Phase::Idle, HealthEvent::ChecksChanged { all_passing }) => self.checks_passing = all_passing,
            (Phase::Idle, HealthEvent::TimerFired) => {}
            (Phase::Idle | Phase::Watching { .. }, HealthEvent::StopWatching) => {
                if self.timer.take().is_some() {
                    commands.push(HealthCommand::CancelTimer);
                }
                self.phase = Phase::Abandoned;
            }
            (Phase::Watching { .. }, HealthEvent::Start) => {}
            (Phase::Watching { .. }, HealthEvent::TasksChanged(summary)) => {
                if summary.restarts != self.restarts_seen {
                    self.restarts_seen = summary.restarts;
                    self.healthy_since = None;
                }
                self.tasks = summary;
                self.evaluate(&mut commands, now);
            }
            (Phase::Watching { .. }, HealthEvent::ChecksChanged { all_passing }) => {
                self.checks_passing = all_passing;
                self.evaluate(&mut commands, now);
            }
            (Phase::Watching { .. }, HealthEvent::TimerFired) => {
                // The timer is spent; evaluate schedules the next one.
                self.timer = None;
                self.evaluate(&mut commands, now);
            }
        }
        commands
    }

    fn evaluate(&mut self, commands: &mut Vec<HealthCommand>, now: Timestamp) {
        let Phase::Watching { deadline } = self.phase else { return };
        if let Some(task) = &self.tasks.failed_task {
            let reason = format!("task {task:?} failed");
            self.decide(commands, false, reason);
            return;
        }
        let healthy_now =
            self.tasks.all_running && (self.config.mode == HealthCheckMode::TaskStates || self.checks_passing);
        self.healthy_since = match (healthy_now, self.healthy_since) {
            (false, _) => None,
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
        };
        let window_end = self.healthy_since.map(|since| since.plus(self.config.min_healthy_time));
        if let Some(end) = window_end
            && now >= end
        {
            let what = match self.config.mode {
                HealthCheckMode::TaskStates => "every task running",
                HealthCheckMode::Checks | HealthCheckMode::Manual => "every task running and every check passing",
            };
            let reason = format!("{what} for {}", DurationSpec::from(self.config.min_healthy_time));
            self.decide(commands, true, reason);
            return;
        }
        if now >= deadline {
            let reason = format!(
                "not healthy within the healthy deadline of {}",
                DurationSpec::from(self.config.healthy_deadline)
            );
            self.decide(commands, false, reason);
            return;
        }
        let next = window_end.map_or(deadline, |end| end.min(deadline));
        if self.timer != Some(next) {
            self.timer = Some(next);
            commands.push(HealthCommand::ScheduleTimer { at: next });
        }
    }

    fn decide(&mut self, commands: &mut Vec<HealthCommand>, healthy: bool, reason: String) {
        if self.timer.take().is_some() {
            commands.push(HealthCommand::CancelTimer);
        }
        self.phase = Phase::Decided { healthy };
        commands.push(HealthCommand::Report { healthy, reason });
    }
}

/// Version of `deployment-health.json`.
const DECISION_FILE_VERSION: u32 = 1;

/// The persisted decision, `<alloc dir>/deployment-health.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DecisionFile {
    /// Format version.
    pub(crate) version: u32,
    /// The decision.
    pub(crate) healthy: bool,
    /// Why.
    pub(crate) reason: String,
    /// When it was made.
    pub(crate) decided_at: Timestamp,
}

fn decision_path(alloc_dir: &Path) -> PathBuf {
    alloc_dir.join("deployment-health.json")
}

/// The decision persisted in `alloc_dir`, if any (a file of an unknown
/// version or unreadable counts as none, and is logged).
pub(crate) fn load_decision(alloc_dir: &Path) -> Option<DecisionFile> {
    let path = decision_path(alloc_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read the deployment health decision");
            return None;
        }
    };
    match serde_json::from_slice::<DecisionFile>(&bytes) {
        Ok(file) if file.version == DECISION_FILE_VERSION => Some(file),
        Ok(file) => {
            tracing::warn!(version = file.version, path = %path.display(), "unknown deployment health file version");
            None
        }
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "unreadable deployment health decision");
            None
        }
    }
}

/// Persists a decision in `alloc_dir` (atomically: write, then rename).
pub(crate) fn save_decision(alloc_dir: &Path, healthy: bool, reason: &str, now: Timestamp) -> std::io::Result<()> {
    let file = DecisionFile { version: DECISION_FILE_VERSION, healthy, reason: reason.to_owned(), decided_at: now };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    let temporary = alloc_dir.join("deployment-health.json.tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(temporary, decision_path(alloc_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1000;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + millis)
    }

    fn config(mode: HealthCheckMode) -> HealthConfig {
        HealthConfig { mode, min_healthy_time: Duration::from_secs(10), healthy_deadline: Duration::from_secs(60) }
    }

    fn tasks(all_running: bool, restarts: u32) -> HealthEvent {
        HealthEvent::TasksChanged(TasksSummary { all_running, failed_task: None, restarts })
    }

    fn checks(all_passing: bool) -> HealthEvent {
        HealthEvent::ChecksChanged { all_passing }
    }

    fn timer(seconds: i64) -> HealthCommand {
        HealthCommand::ScheduleTimer { at: at(seconds * SECOND) }
    }

    /// A decision when the timer fired (no timer left to cancel).
    fn report(healthy: bool, reason: &str) -> Vec<HealthCommand> {
        vec![HealthCommand::Report { healthy, reason: reason.to_owned() }]
    }

    /// A decision on an event while the timer is pending.
    fn cancel_and_report(healthy: bool, reason: &str) -> Vec<HealthCommand> {
        vec![HealthCommand::CancelTimer, HealthCommand::Report { healthy, reason: reason.to_owned() }]
    }

    const HEALTHY_WITH_CHECKS: &str = "every task running and every check passing for 10s";

    /// A `checks` watcher started at 0 with failing checks.
    fn started(mode: HealthCheckMode) -> HealthWatcher {
        let mut watcher = HealthWatcher::new(config(mode));
        watcher.handle(checks(false), at(0));
        assert_eq!(watcher.handle(HealthEvent::Start, at(0)), vec![timer(60)]);
        watcher
    }

    #[test]
    fn healthy_after_min_healthy_time_of_running_tasks_and_passing_checks() {
        let mut watcher = started(HealthCheckMode::Checks);
        assert_eq!(watcher.handle(tasks(true, 0), at(SECOND)), vec![]);
        assert_eq!(watcher.handle(checks(true), at(2 * SECOND)), vec![timer(12)]);
        // A timer that fires a little early schedules itself again.
        assert_eq!(
            watcher.handle(HealthEvent::TimerFired, at(12 * SECOND - 1)),
            vec![HealthCommand::ScheduleTimer { at: at(12 * SECOND) }]
        );
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(12 * SECOND)), report(true, HEALTHY_WITH_CHECKS));
        assert_eq!(watcher.decision(), Some(true));
    }

    #[test]
    fn task_states_mode_ignores_checks() {
        let mut watcher = started(HealthCheckMode::TaskStates);
        assert_eq!(watcher.handle(tasks(true, 0), at(SECOND)), vec![timer(11)]);
        assert_eq!(watcher.handle(checks(false), at(2 * SECOND)), vec![]);
        assert_eq!(
            watcher.handle(HealthEvent::TimerFired, at(11 * SECOND)),
            report(true, "every task running for 10s")
        );
    }

    #[test]
    fn a_restart_resets_the_window() {
        let mut watcher = started(HealthCheckMode::Checks);
        watcher.handle(checks(true), at(0));
        assert_eq!(watcher.handle(tasks(true, 0), at(SECOND)), vec![timer(11)]);
        // The restart happened between two reports: the task is running again.
        assert_eq!(watcher.handle(tasks(true, 1), at(5 * SECOND)), vec![timer(15)]);
        // A timer fired before it was replaced only schedules the window's end again.
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(11 * SECOND)), vec![timer(15)]);
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(15 * SECOND)), report(true, HEALTHY_WITH_CHECKS));
    }

    #[test]
    fn a_task_leaving_running_or_a_failing_check_resets_the_window() {
        let mut watcher = started(HealthCheckMode::Checks);
        watcher.handle(checks(true), at(0));
        watcher.handle(tasks(true, 0), at(SECOND));
        // Not healthy any more: only the deadline is left to wait for.
        assert_eq!(watcher.handle(checks(false), at(3 * SECOND)), vec![timer(60)]);
        assert_eq!(watcher.handle(checks(true), at(4 * SECOND)), vec![timer(14)]);
        assert_eq!(watcher.handle(tasks(false, 0), at(6 * SECOND)), vec![timer(60)]);
        assert_eq!(watcher.handle(tasks(true, 0), at(7 * SECOND)), vec![timer(17)]);
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(17 * SECOND)), report(true, HEALTHY_WITH_CHECKS));
    }

    #[test]
    fn unhealthy_at_the_deadline() {
        let mut watcher = started(HealthCheckMode::Checks);
        watcher.handle(tasks(true, 0), at(SECOND));
        assert_eq!(
            watcher.handle(HealthEvent::TimerFired, at(60 * SECOND)),
            report(false, "not healthy within the healthy deadline of 1m")
        );
        assert_eq!(watcher.decision(), Some(false));
    }

    #[test]
    fn the_deadline_is_not_extended_by_a_window_that_would_end_after_it() {
        let mut watcher = started(HealthCheckMode::TaskStates);
        assert_eq!(watcher.handle(tasks(true, 0), at(55 * SECOND)), vec![]);
        assert_eq!(
            watcher.handle(HealthEvent::TimerFired, at(60 * SECOND)),
            report(false, "not healthy within the healthy deadline of 1m")
        );
    }

    #[test]
    fn unhealthy_when_a_task_fails() {
        let mut watcher = started(HealthCheckMode::Checks);
        let failed = TasksSummary { all_running: false, failed_task: Some("web".to_owned()), restarts: 2 };
        assert_eq!(
            watcher.handle(HealthEvent::TasksChanged(failed), at(SECOND)),
            cancel_and_report(false, "task \"web\" failed")
        );
    }

    #[test]
    fn manual_never_decides() {
        let mut watcher = HealthWatcher::new(config(HealthCheckMode::Manual));
        assert_eq!(watcher.handle(HealthEvent::Start, at(0)), vec![]);
        assert_eq!(watcher.handle(tasks(true, 0), at(SECOND)), vec![]);
        assert_eq!(watcher.handle(checks(true), at(SECOND)), vec![]);
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(100 * SECOND)), vec![]);
        let failed = TasksSummary { all_running: false, failed_task: Some("web".to_owned()), restarts: 0 };
        assert_eq!(watcher.handle(HealthEvent::TasksChanged(failed), at(101 * SECOND)), vec![]);
        assert_eq!(watcher.decision(), None);
    }

    #[test]
    fn a_decision_is_sticky() {
        let mut watcher = started(HealthCheckMode::TaskStates);
        watcher.handle(tasks(true, 0), at(0));
        assert_eq!(
            watcher.handle(HealthEvent::TimerFired, at(10 * SECOND)),
            report(true, "every task running for 10s")
        );
        let failed = TasksSummary { all_running: false, failed_task: Some("web".to_owned()), restarts: 1 };
        assert_eq!(watcher.handle(HealthEvent::TasksChanged(failed), at(11 * SECOND)), vec![]);
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(60 * SECOND)), vec![]);
        assert_eq!(watcher.handle(HealthEvent::StopWatching, at(61 * SECOND)), vec![]);
        assert_eq!(watcher.decision(), Some(true));
    }

    #[test]
    fn zero_min_healthy_time_decides_at_once() {
        let mut watcher = HealthWatcher::new(HealthConfig {
            mode: HealthCheckMode::Checks,
            min_healthy_time: Duration::ZERO,
            healthy_deadline: Duration::from_secs(60),
        });
        watcher.handle(HealthEvent::Start, at(0));
        assert_eq!(
            watcher.handle(tasks(true, 0), at(SECOND)),
            cancel_and_report(true, "every task running and every check passing for 0s")
        );
    }

    #[test]
    fn stopping_abandons_the_watch() {
        let mut watcher = started(HealthCheckMode::Checks);
        assert_eq!(watcher.handle(HealthEvent::StopWatching, at(SECOND)), vec![HealthCommand::CancelTimer]);
        assert_eq!(watcher.handle(HealthEvent::TimerFired, at(60 * SECOND)), vec![]);
        let failed = TasksSummary { all_running: false, failed_task: Some("web".to_owned()), restarts: 0 };
        assert_eq!(watcher.handle(HealthEvent::TasksChanged(failed), at(61 * SECOND)), vec![]);
        assert_eq!(watcher.decision(), None);
    }

    #[test]
    fn summary_of_task_states() {
        let running = TaskState { state: TaskLifecycleState::Running, restarts: 1, ..Default::default() };
        let pending = TaskState { state: TaskLifecycleState::Pending, restarts: 2, ..Default::default() };
        let failed = TaskState { state: TaskLifecycleState::Dead, failed: true, ..Default::default() };
        assert_eq!(
            TasksSummary::of([("web", &running, false), ("api", &running, false)]),
            TasksSummary { all_running: true, failed_task: None, restarts: 2 }
        );
        assert_eq!(
            TasksSummary::of([("web", &running, false), ("api", &pending, false)]),
            TasksSummary { all_running: false, failed_task: None, restarts: 3 }
        );
        assert_eq!(
            TasksSummary::of([("web", &running, false), ("db", &failed, true)]),
            TasksSummary { all_running: false, failed_task: Some("db".to_owned()), restarts: 1 }
        );
    }

    #[test]
    fn decision_file_round_trips_and_reads_version_1() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_decision(dir.path()), None);
        save_decision(dir.path(), true, "every task running for 10s", at(0)).unwrap();
        let loaded = load_decision(dir.path()).unwrap();
        assert!(loaded.healthy);
        assert_eq!(loaded.decided_at, at(0));

        // A committed sample of version 1.
        let sample = r#"{
  "version": 1,
  "healthy": false,
  "reason": "task \"web\" failed",
  "decided_at": "2023-11-14T22:13:20.000Z"
}"#;
        std::fs::write(dir.path().join("deployment-health.json"), sample).unwrap();
        let loaded = load_decision(dir.path()).unwrap();
        assert_eq!(
            loaded,
            DecisionFile { version: 1, healthy: false, reason: "task \"web\" failed".to_owned(), decided_at: at(0) }
        );

        std::fs::write(dir.path().join("deployment-health.json"), r#"{"version": 2, "healthy": true}"#).unwrap();
        assert_eq!(load_decision(dir.path()), None);
    }
}
