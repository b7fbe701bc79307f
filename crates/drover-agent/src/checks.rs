//! The health checks of one allocation: a sans-IO decider.
//!
//! The agent, not the server, runs the checks of `service { check { … } }`
//! blocks: it is next to the task, so a check probes the task from where
//! its clients on this node would, and a node cut off from the servers
//! keeps restarting its unhealthy tasks. The checks serve two consumers:
//! the allocation's reported `checks` (and through them deployment health,
//! see `deployment_health.rs`), and `check_restart`, which restarts a task
//! whose check keeps failing.
//!
//! This module only decides. The alloc runner feeds it [`CheckEvent`]s (a
//! task is running — identified by its `started_at` —, is no longer
//! running, a probe finished) with the current time, and carries out the
//! [`CheckCommand`]s (start or stop the probes of a task, restart a task,
//! publish the statuses); `probe.rs` runs the probes. So every rule is
//! tested by feeding one event and comparing the exact command list.
//!
//! Per task with checks:
//!
//! ```text
//!            TaskRunning(new started_at)             ProbeFinished (current generation):
//!   Idle ──────────────────────────────▶ Probing ◀── status; after `grace`, count
//!    ▲ ▲       StartProbes{generation}   │  │  │      consecutive failures per check
//!    │ │                                 │  │  └─ TaskRunning(new started_at):
//!    │ └──── TaskNotRunning: StopProbes ─┘  │     StopProbes, StartProbes{next generation}
//!    │                                      │ `limit` consecutive failures:
//!    │                                      ▼ StopProbes, RestartTask (counters reset)
//!    └──── TaskNotRunning ────────────── Restarting ── TaskRunning(new started_at) ──▶ Probing
//!
//!   AllocStopping: every task ▶ Idle (StopProbes where probing); later
//!   starts are ignored, so a stopping allocation is never restarted.
//! ```
//!
//! A new run of a task resets its checks to `pending`: results belong to
//! one process, and deployment health must not count the previous
//! process's `passing`. Results carry the generation of the run that
//! started their probes, so a result that was in flight when the task
//! restarted is dropped. Statuses are published only when a status or an
//! output changes, not on every run, so a check passing every 10 s does not
//! write to the Raft log every 10 s; `checked_at` is the time of the latest
//! run as of the publication.

use std::collections::BTreeMap;

use drover_types::{CheckHealth, CheckRestart, CheckStatus, TaskGroup, Timestamp};

/// The result of one run of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProbeOutcome {
    /// Passing, warning or critical (never pending).
    pub(crate) health: CheckHealth,
    /// What the check said (truncated by the prober).
    pub(crate) output: String,
}

impl ProbeOutcome {
    pub(crate) fn new(health: CheckHealth, output: impl Into<String>) -> Self {
        ProbeOutcome { health, output: output.into() }
    }
}

/// Something that happened to the allocation's tasks or checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CheckEvent {
    /// The task is running; a `started_at` not seen before is a new run.
    TaskRunning {
        /// Task name.
        task: String,
        /// When its current process started.
        started_at: Timestamp,
    },
    /// The task is not running (waiting to restart, or dead).
    TaskNotRunning {
        /// Task name.
        task: String,
    },
    /// A probe started by [`CheckCommand::StartProbes`] finished one run.
    ProbeFinished {
        /// Task name.
        task: String,
        /// Index of the check among the task's checks, in declaration order.
        check: usize,
        /// The generation given in [`CheckCommand::StartProbes`].
        generation: u64,
        /// What it found.
        outcome: ProbeOutcome,
    },
    /// The allocation is being stopped: no more checks, no more restarts.
    AllocStopping,
}

/// What the alloc runner must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CheckCommand {
    /// Start running every check of `task`, each every `interval`, the
    /// first one at once; tag the results with `generation`.
    StartProbes {
        /// Task name.
        task: String,
        /// Tag for [`CheckEvent::ProbeFinished`].
        generation: u64,
    },
    /// Stop the probes of `task` (a run in progress is abandoned).
    StopProbes {
        /// Task name.
        task: String,
    },
    /// Restart `task` through its supervisor (`TaskControl::Restart`).
    RestartTask {
        /// Task name.
        task: String,
        /// Why, for the task's `Restart Signaled` event.
        reason: String,
    },
    /// The statuses changed: report this list (every check of the
    /// allocation, tasks in group order, checks in declaration order).
    Publish(Vec<CheckStatus>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The task is not running: no probes.
    Idle,
    /// Probes of the run that started at `started_at` are running.
    Probing { generation: u64, started_at: Timestamp },
    /// A restart was asked for the run that started at `started_at`; its
    /// probes are stopped until the next run.
    Restarting { started_at: Timestamp },
}

#[derive(Clone, Debug)]
struct TrackedCheck {
    status: CheckStatus,
    restart: Option<CheckRestart>,
    consecutive_failures: u32,
}

#[derive(Clone, Debug)]
struct TaskChecks {
    phase: Phase,
    checks: Vec<TrackedCheck>,
}

/// The check decider of one allocation.
#[derive(Clone, Debug)]
pub(crate) struct CheckWatcher {
    /// Only tasks that have checks.
    tasks: BTreeMap<String, TaskChecks>,
    /// Task names in group order, for the published list.
    order: Vec<String>,
    next_generation: u64,
    stopping: bool,
}

impl CheckWatcher {
    /// A watcher for every check of `group`, all `pending`.
    pub(crate) fn new(group: &TaskGroup) -> Self {
        let mut tasks = BTreeMap::new();
        let mut order = Vec::new();
        for task in &group.tasks {
            let checks: Vec<TrackedCheck> = task
                .services
                .iter()
                .flat_map(|service| service.checks.iter())
                .map(|check| TrackedCheck {
                    status: pending_status(&task.name, &check.name),
                    restart: check.check_restart,
                    consecutive_failures: 0,
                })
                .collect();
            if !checks.is_empty() {
                order.push(task.name.clone());
                tasks.insert(task.name.clone(), TaskChecks { phase: Phase::Idle, checks });
            }
        }
        CheckWatcher { tasks, order, next_generation: 1, stopping: false }
    }

    /// Every check's current status (tasks in group order, checks in
    /// declaration order).
    pub(crate) fn statuses(&self) -> Vec<CheckStatus> {
        self.order
            .iter()
            .filter_map(|name| self.tasks.get(name))
            .flat_map(|task| task.checks.iter().map(|check| check.status.clone()))
            .collect()
    }

    /// Applies one event at `now` and returns what to do, in order.
    pub(crate) fn handle(&mut self, event: CheckEvent, now: Timestamp) -> Vec<CheckCommand> {
        let before = self.statuses();
        let mut commands = Vec::new();
        match event {
            CheckEvent::TaskRunning { task, started_at } => self.task_running(&mut commands, task, started_at),
            CheckEvent::TaskNotRunning { task } => {
                if let Some(entry) = self.tasks.get_mut(&task) {
                    if matches!(entry.phase, Phase::Probing { .. }) {
                        commands.push(CheckCommand::StopProbes { task });
                    }
                    entry.phase = Phase::Idle;
                }
            }
            CheckEvent::ProbeFinished { task, check, generation, outcome } => {
                self.probe_finished(&mut commands, task, check, generation, outcome, now);
            }
            CheckEvent::AllocStopping => {
                self.stopping = true;
                for (name, entry) in &mut self.tasks {
                    if matches!(entry.phase, Phase::Probing { .. }) {
                        commands.push(CheckCommand::StopProbes { task: name.clone() });
                    }
                    entry.phase = Phase::Idle;
                }
            }
        }
        let after = self.statuses();
        if changed(&before, &after) {
            commands.insert(0, CheckCommand::Publish(after));
        }
        commands
    }

    fn task_running(&mut self, commands: &mut Vec<CheckCommand>, task: String, started_at: Timestamp) {
        if self.stopping {
            return;
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let previous_phase = entry.phase;
        match previous_phase {
            Phase::Probing { started_at: current, .. } | Phase::Restarting { started_at: current }
                if current == started_at =>
            {
                return;
            }
            _ => {}
        }
        for check in &mut entry.checks {
            check.status = pending_status(&check.status.task, &check.status.name);
            check.consecutive_failures = 0;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        entry.phase = Phase::Probing { generation, started_at };
        if matches!(previous_phase, Phase::Probing { .. }) {
            commands.push(CheckCommand::StopProbes { task: task.clone() });
        }
        commands.push(CheckCommand::StartProbes { task, generation });
    }

    fn probe_finished(
        &mut self,
        commands: &mut Vec<CheckCommand>,
        task: String,
        check_index: usize,
        generation: u64,
        outcome: ProbeOutcome,
        now: Timestamp,
    ) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let Phase::Probing { generation: current, started_at } = entry.phase else { return };
        if current != generation {
            return;
        }
        let Some(check) = entry.checks.get_mut(check_index) else { return };
        check.status.status = outcome.health;
        check.status.output = outcome.output;
        check.status.checked_at = now;

        let Some(rule) = check.restart.filter(|rule| rule.limit > 0) else { return };
        if now < started_at.plus(rule.grace.get()) {
            return;
        }
        let failing = match outcome.health {
            CheckHealth::Critical => true,
            CheckHealth::Warning => !rule.ignore_warnings,
            CheckHealth::Passing | CheckHealth::Pending => false,
        };
        check.consecutive_failures = if failing { check.consecutive_failures + 1 } else { 0 };
        if check.consecutive_failures < rule.limit {
            return;
        }
        let reason = format!(
            "health check {:?} unhealthy: {} consecutive failures",
            check.status.name, check.consecutive_failures
        );
        for tracked in &mut entry.checks {
            tracked.consecutive_failures = 0;
        }
        entry.phase = Phase::Restarting { started_at };
        commands.push(CheckCommand::StopProbes { task: task.clone() });
        commands.push(CheckCommand::RestartTask { task, reason });
    }
}

fn pending_status(task: &str, name: &str) -> CheckStatus {
    CheckStatus {
        task: task.to_owned(),
        name: name.to_owned(),
        status: CheckHealth::Pending,
        output: String::new(),
        checked_at: Timestamp::ZERO,
    }
}

/// Whether a status or an output differs (`checked_at` alone is no change).
fn changed(before: &[CheckStatus], after: &[CheckStatus]) -> bool {
    before.len() != after.len()
        || before.iter().zip(after).any(|(old, new)| old.status != new.status || old.output != new.output)
}

/// Whether every check passes (vacuously true without checks).
pub(crate) fn all_passing(statuses: &[CheckStatus]) -> bool {
    statuses.iter().all(|status| status.status == CheckHealth::Passing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{group, with_checks};
    use drover_types::{Check, CheckKind, DurationSpec, Task};

    const SECOND: i64 = 1000;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + millis)
    }

    fn check(name: &str, check_restart: Option<CheckRestart>) -> Check {
        let kind = CheckKind::Tcp { address: "127.0.0.1".to_owned(), port: 8080 };
        Check { check_restart, ..crate::test_support::check(name, kind, 10_000, 2_000) }
    }

    fn task(name: &str, checks: Vec<Check>) -> Task {
        let task = crate::test_support::task(name, "sleep", &["600"]);
        if checks.is_empty() { task } else { with_checks(task, checks) }
    }

    fn restart_rule(limit: u32, grace_secs: u64, ignore_warnings: bool) -> Option<CheckRestart> {
        Some(CheckRestart { limit, grace: DurationSpec::from_secs(grace_secs), ignore_warnings })
    }

    fn status(task: &str, name: &str, health: CheckHealth, output: &str, checked_at: Timestamp) -> CheckStatus {
        CheckStatus {
            task: task.to_owned(),
            name: name.to_owned(),
            status: health,
            output: output.to_owned(),
            checked_at,
        }
    }

    fn running(task: &str, started_at: Timestamp) -> CheckEvent {
        CheckEvent::TaskRunning { task: task.to_owned(), started_at }
    }

    fn finished(task: &str, check: usize, generation: u64, health: CheckHealth, output: &str) -> CheckEvent {
        CheckEvent::ProbeFinished {
            task: task.to_owned(),
            check,
            generation,
            outcome: ProbeOutcome::new(health, output),
        }
    }

    fn start(task: &str, generation: u64) -> CheckCommand {
        CheckCommand::StartProbes { task: task.to_owned(), generation }
    }

    fn stop(task: &str) -> CheckCommand {
        CheckCommand::StopProbes { task: task.to_owned() }
    }

    /// One task `web` with one check `alive` and the given rule, running
    /// since `at(0)` with probes of generation 1.
    fn probing(restart: Option<CheckRestart>) -> CheckWatcher {
        let mut watcher = CheckWatcher::new(&group(vec![task("web", vec![check("alive", restart)])]));
        assert_eq!(watcher.handle(running("web", at(0)), at(0)), vec![start("web", 1)]);
        watcher
    }

    #[test]
    fn checks_start_pending_and_probes_start_when_the_task_runs() {
        let group =
            group(vec![task("web", vec![check("alive", None), check("ready", None)]), task("sidecar", Vec::new())]);
        let mut watcher = CheckWatcher::new(&group);
        assert_eq!(
            watcher.statuses(),
            vec![
                status("web", "alive", CheckHealth::Pending, "", Timestamp::ZERO),
                status("web", "ready", CheckHealth::Pending, "", Timestamp::ZERO),
            ]
        );
        // A task without checks needs no probes.
        assert_eq!(watcher.handle(running("sidecar", at(0)), at(0)), vec![]);
        assert_eq!(watcher.handle(running("web", at(0)), at(0)), vec![start("web", 1)]);
        // The same run reported again (a new event, same process) changes nothing.
        assert_eq!(watcher.handle(running("web", at(0)), at(SECOND)), vec![]);
    }

    #[test]
    fn a_result_is_published_only_when_status_or_output_changes() {
        let mut watcher = probing(None);
        let passing = vec![status("web", "alive", CheckHealth::Passing, "ok", at(SECOND))];
        assert_eq!(
            watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok"), at(SECOND)),
            vec![CheckCommand::Publish(passing)]
        );
        // Same result again: nothing to publish, but the time of the run is kept.
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok"), at(11 * SECOND)), vec![]);
        assert_eq!(watcher.statuses()[0].checked_at, at(11 * SECOND));
        // A different output is a change.
        assert_eq!(
            watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok, 2 ms"), at(21 * SECOND)),
            vec![CheckCommand::Publish(vec![status(
                "web",
                "alive",
                CheckHealth::Passing,
                "ok, 2 ms",
                at(21 * SECOND)
            )])]
        );
        assert_eq!(
            watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(31 * SECOND)),
            vec![CheckCommand::Publish(vec![status(
                "web",
                "alive",
                CheckHealth::Critical,
                "refused",
                at(31 * SECOND)
            )])]
        );
    }

    #[test]
    fn results_of_an_earlier_run_or_an_unknown_check_are_dropped() {
        let mut watcher = probing(None);
        assert_eq!(watcher.handle(finished("web", 0, 7, CheckHealth::Passing, "ok"), at(SECOND)), vec![]);
        assert_eq!(watcher.handle(finished("web", 3, 1, CheckHealth::Passing, "ok"), at(SECOND)), vec![]);
        assert_eq!(watcher.handle(finished("db", 0, 1, CheckHealth::Passing, "ok"), at(SECOND)), vec![]);
        assert_eq!(watcher.statuses()[0].status, CheckHealth::Pending);
    }

    #[test]
    fn a_new_run_resets_the_checks_to_pending_and_restarts_the_probes() {
        let mut watcher = probing(None);
        watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok"), at(SECOND));
        assert_eq!(
            watcher.handle(running("web", at(5 * SECOND)), at(5 * SECOND)),
            vec![
                CheckCommand::Publish(vec![status("web", "alive", CheckHealth::Pending, "", Timestamp::ZERO)]),
                stop("web"),
                start("web", 2),
            ]
        );
        // The old generation's result, still in flight, is dropped.
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok"), at(6 * SECOND)), vec![]);
    }

    #[test]
    fn probes_stop_when_the_task_stops_and_the_last_results_stay() {
        let mut watcher = probing(None);
        watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(SECOND));
        assert_eq!(
            watcher.handle(CheckEvent::TaskNotRunning { task: "web".to_owned() }, at(2 * SECOND)),
            vec![stop("web")]
        );
        assert_eq!(watcher.statuses()[0].status, CheckHealth::Critical);
        assert_eq!(watcher.handle(CheckEvent::TaskNotRunning { task: "web".to_owned() }, at(3 * SECOND)), vec![]);
        // Results that were in flight are dropped.
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok"), at(3 * SECOND)), vec![]);
        // The next run starts fresh.
        assert_eq!(
            watcher.handle(running("web", at(20 * SECOND)), at(20 * SECOND)),
            vec![
                CheckCommand::Publish(vec![status("web", "alive", CheckHealth::Pending, "", Timestamp::ZERO)]),
                start("web", 2),
            ]
        );
    }

    #[test]
    fn limit_consecutive_failures_restart_the_task_exactly_once() {
        let mut watcher = probing(restart_rule(3, 0, false));
        let critical = |seconds: i64| {
            vec![CheckCommand::Publish(vec![status(
                "web",
                "alive",
                CheckHealth::Critical,
                "refused",
                at(seconds * SECOND),
            )])]
        };
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(SECOND)), critical(1));
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(2 * SECOND)), vec![]);
        assert_eq!(
            watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(3 * SECOND)),
            vec![
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"alive\" unhealthy: 3 consecutive failures".to_owned(),
                },
            ]
        );
        // Results still in flight from the old run ask for nothing more.
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(4 * SECOND)), vec![]);
        // The same process reported again (the kill is under way) changes nothing.
        assert_eq!(watcher.handle(running("web", at(0)), at(4 * SECOND)), vec![]);
        // The restarted run begins with a fresh counter.
        assert_eq!(
            watcher.handle(running("web", at(5 * SECOND)), at(5 * SECOND)),
            vec![
                CheckCommand::Publish(vec![status("web", "alive", CheckHealth::Pending, "", Timestamp::ZERO)]),
                start("web", 2),
            ]
        );
        watcher.handle(finished("web", 0, 2, CheckHealth::Critical, "refused"), at(6 * SECOND));
        assert_eq!(watcher.handle(finished("web", 0, 2, CheckHealth::Critical, "refused"), at(7 * SECOND)), vec![]);
    }

    #[test]
    fn a_passing_result_resets_the_count() {
        let mut watcher = probing(restart_rule(2, 0, false));
        watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(SECOND));
        watcher.handle(finished("web", 0, 1, CheckHealth::Passing, "ok"), at(2 * SECOND));
        watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(3 * SECOND));
        let commands = watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(4 * SECOND));
        assert_eq!(
            commands,
            vec![
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"alive\" unhealthy: 2 consecutive failures".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn results_during_grace_are_reported_but_not_counted() {
        let mut watcher = probing(restart_rule(1, 10, false));
        assert_eq!(
            watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(5 * SECOND)),
            vec![CheckCommand::Publish(vec![status("web", "alive", CheckHealth::Critical, "refused", at(5 * SECOND))])]
        );
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(9 * SECOND)), vec![]);
        // Grace ends 10 s after the start.
        assert_eq!(
            watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(10 * SECOND)),
            vec![
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"alive\" unhealthy: 1 consecutive failures".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn grace_counts_from_each_restart() {
        let mut watcher = probing(restart_rule(1, 10, false));
        watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "refused"), at(10 * SECOND));
        watcher.handle(running("web", at(12 * SECOND)), at(12 * SECOND));
        assert_eq!(
            watcher.handle(finished("web", 0, 2, CheckHealth::Critical, "refused"), at(21 * SECOND)),
            vec![CheckCommand::Publish(vec![status(
                "web",
                "alive",
                CheckHealth::Critical,
                "refused",
                at(21 * SECOND)
            )])]
        );
        assert_eq!(
            watcher.handle(finished("web", 0, 2, CheckHealth::Critical, "refused"), at(22 * SECOND)),
            vec![
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"alive\" unhealthy: 1 consecutive failures".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn warnings_count_as_failures_unless_ignored() {
        let mut strict = probing(restart_rule(2, 0, false));
        strict.handle(finished("web", 0, 1, CheckHealth::Warning, "degraded"), at(SECOND));
        assert_eq!(
            strict.handle(finished("web", 0, 1, CheckHealth::Warning, "degraded"), at(2 * SECOND)),
            vec![
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"alive\" unhealthy: 2 consecutive failures".to_owned(),
                },
            ]
        );

        let mut lenient = probing(restart_rule(2, 0, true));
        lenient.handle(finished("web", 0, 1, CheckHealth::Critical, "down"), at(SECOND));
        // A warning counts as passing: it resets the count.
        lenient.handle(finished("web", 0, 1, CheckHealth::Warning, "degraded"), at(2 * SECOND));
        for second in 3..10 {
            let commands = lenient.handle(finished("web", 0, 1, CheckHealth::Warning, "degraded"), at(second * SECOND));
            assert_eq!(commands, vec![]);
        }
        lenient.handle(finished("web", 0, 1, CheckHealth::Critical, "down"), at(10 * SECOND));
        assert_eq!(
            lenient.handle(finished("web", 0, 1, CheckHealth::Critical, "down"), at(11 * SECOND)),
            vec![
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"alive\" unhealthy: 2 consecutive failures".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn without_check_restart_or_with_limit_zero_a_task_is_never_restarted() {
        for rule in [None, restart_rule(0, 0, false)] {
            let mut watcher = probing(rule);
            for second in 1..20 {
                let commands =
                    watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "down"), at(second * SECOND));
                assert!(!commands.iter().any(|command| matches!(command, CheckCommand::RestartTask { .. })));
            }
        }
    }

    #[test]
    fn two_failing_checks_of_one_task_restart_it_once() {
        let rule = restart_rule(1, 0, false);
        let mut watcher = CheckWatcher::new(&group(vec![task("web", vec![check("a", rule), check("b", rule)])]));
        watcher.handle(running("web", at(0)), at(0));
        let first = watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "down"), at(SECOND));
        assert_eq!(
            first[1..],
            [
                stop("web"),
                CheckCommand::RestartTask {
                    task: "web".to_owned(),
                    reason: "health check \"a\" unhealthy: 1 consecutive failures".to_owned(),
                },
            ]
        );
        // The other check's result was already on its way.
        assert_eq!(watcher.handle(finished("web", 1, 1, CheckHealth::Critical, "down"), at(SECOND)), vec![]);
    }

    #[test]
    fn a_stopping_allocation_stops_probes_and_never_restarts() {
        let mut watcher = CheckWatcher::new(&group(vec![
            task("web", vec![check("alive", restart_rule(1, 0, false))]),
            task("api", vec![check("ready", None)]),
        ]));
        watcher.handle(running("web", at(0)), at(0));
        assert_eq!(watcher.handle(CheckEvent::AllocStopping, at(SECOND)), vec![stop("web")]);
        assert_eq!(watcher.handle(finished("web", 0, 1, CheckHealth::Critical, "down"), at(2 * SECOND)), vec![]);
        assert_eq!(watcher.handle(running("api", at(2 * SECOND)), at(2 * SECOND)), vec![]);
        assert_eq!(watcher.handle(running("web", at(3 * SECOND)), at(3 * SECOND)), vec![]);
    }

    #[test]
    fn all_passing_needs_every_check_passing() {
        let passing = status("web", "a", CheckHealth::Passing, "", at(0));
        let warning = status("web", "b", CheckHealth::Warning, "", at(0));
        assert!(all_passing(&[]));
        assert!(all_passing(std::slice::from_ref(&passing)));
        assert!(!all_passing(&[passing, warning]));
    }
}
