//! The restart-policy supervisor of one task: a sans-IO state machine.
//!
//! It decides, and does nothing: the agent feeds it [`Event`]s (the process
//! started, exited, a timer fired, a stop or restart was asked for) with the
//! current time, and carries out the [`Instruction`]s it returns (spawn,
//! kill, schedule the timer, report state and events). So every rule of
//! Nomad's restart policy is tested by feeding one event and comparing the
//! exact instruction list, without processes or clocks.
//!
//! ```text
//!             Start                 Started
//!   Idle ─────────────▶ Starting ─────────────▶ Running ◀──── Reattached (from Idle or Resumed)
//!    │                   ▲    │ DriverFailed    │   │ RestartRequested
//!    │ StopRequested     │    │ (policy)        │   ▼
//!    │        TimerFired │    ▼                 │  Killing{restart} ── Exited ──▶ Starting
//!    │      ┌────────────┴─ WaitingToRestart ◀──┤ Exited (policy: restart)
//!    │      │ StopRequested                     │ StopRequested
//!    │      ▼                                   ▼
//!    └──▶ Dead ◀── Exited (policy: no restart) ─ Killing{stop} ── Exited ──▶ Dead (not failed)
//!                                                 Killing{fail} ── Exited ──▶ Dead (failed)
//!
//!   FailRequested (Running ▶ Killing{fail}; WaitingToRestart ▶ Dead,
//!   failed): a template's change script failed with `fail_on_error`.
//!   Note: an event only, in any phase but Dead.
//!
//!   Resumed (after an agent restart): Reattached ▶ Running; Exited or
//!   DriverFailed (the task ended or was lost meanwhile) ▶ policy, as from
//!   Running; Start ▶ Starting; StopRequested ▶ Dead.
//! ```
//!
//! The policy is Nomad's `restart` block: `attempts` restarts are allowed
//! within a window of `interval`, each after `delay`. The window starts
//! when the supervisor is created and a new one starts at the first exit
//! after it ran out. When an exit would exceed the attempts, mode `fail`
//! ends the task as failed and mode `delay` waits until the window ends,
//! then restarts (and the next exit opens a new window). `attempts = 0`
//! never restarts. Batch tasks that exit 0 are done (dead, not failed);
//! service and system tasks are restarted after any exit. A restart asked
//! for by a failing health check kills the task and starts it again at
//! once, without using an attempt. Unlike Nomad, the delay has no random
//! jitter, so decisions are deterministic.

use std::time::Duration;

use drover_types::{
    DurationSpec, JobType, RestartMode, RestartPolicy, Task, TaskEvent, TaskEventKind, TaskLifecycleState, TaskState,
    Timestamp,
};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::driver::parse_signal;
use crate::error::Result;

/// The restart-relevant settings of one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// The task's (or its group's) `restart` block.
    pub policy: RestartPolicy,
    /// Whether the task belongs to a batch job (exit 0 means done).
    pub batch: bool,
    /// First signal sent when stopping.
    pub kill_signal: Signal,
    /// Wait after `kill_signal` before SIGKILL.
    pub kill_timeout: Duration,
}

impl SupervisorConfig {
    /// The settings of `task` in a group with `group_policy`, in a job of
    /// `job_type`. Fails when the task's `kill_signal` is not a signal.
    pub fn for_task(task: &Task, group_policy: RestartPolicy, job_type: JobType) -> Result<Self> {
        Ok(SupervisorConfig {
            policy: task.restart.unwrap_or(group_policy),
            batch: job_type.runs_to_completion(),
            kill_signal: parse_signal(&task.kill_signal)?,
            kill_timeout: task.kill_timeout.get(),
        })
    }
}

/// Something that happened to the task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The agent wants the task running (first start).
    Start,
    /// The driver started the process.
    Started {
        /// Its pid.
        pid: u32,
    },
    /// The process exited.
    Exited {
        /// Exit code, when it exited by itself.
        exit_code: Option<i32>,
        /// Signal, when one killed it.
        signal: Option<i32>,
    },
    /// The timer from the last [`Instruction::ScheduleTimer`] fired.
    TimerFired,
    /// The agent wants the task stopped for good.
    StopRequested,
    /// A failing health check asks for a restart.
    RestartRequested {
        /// Why, for the event.
        reason: String,
    },
    /// The driver could not start the process, or lost it (its executor
    /// died).
    DriverFailed {
        /// What went wrong.
        error: String,
    },
    /// A restarted agent found the process still running.
    Reattached {
        /// Its pid.
        pid: u32,
    },
    /// Something happened around the task worth an event (a template's
    /// change script ran); changes nothing else.
    Note {
        /// The event's kind.
        kind: TaskEventKind,
        /// Its message.
        message: String,
    },
    /// Kill the task and end it failed, without a restart (a template's
    /// change script failed with `fail_on_error`).
    FailRequested {
        /// Why, for the event.
        reason: String,
    },
}

/// What the agent must do: one step of what the supervisor decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Start the process (prepare the task directory, call the driver) and
    /// report [`Event::Started`] or [`Event::DriverFailed`].
    Spawn,
    /// Stop the process: `signal` to its group, SIGKILL after `timeout`;
    /// then report [`Event::Exited`].
    Kill {
        /// First signal.
        signal: Signal,
        /// Wait before SIGKILL.
        timeout: Duration,
    },
    /// Fire [`Event::TimerFired`] at `at`, replacing any pending timer (the
    /// supervisor has at most one).
    ScheduleTimer {
        /// When.
        at: Timestamp,
    },
    /// Forget the pending timer.
    CancelTimer,
    /// Record this task event (already added to
    /// [`Supervisor::task_state`]).
    ReportEvent(TaskEvent),
    /// The task's state changed (already in [`Supervisor::task_state`]).
    ReportState {
        /// The new lifecycle state.
        state: TaskLifecycleState,
        /// Whether the task failed.
        failed: bool,
    },
    /// The task is over for good; the supervisor ignores further events.
    Finished {
        /// Whether it failed.
        failed: bool,
    },
}

/// The restart counter of a policy window, to persist across agent
/// restarts so that a crash-looping task does not get fresh attempts each
/// time the agent restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartTracker {
    /// Restarts counted in the current window.
    pub count: u32,
    /// When the current window started.
    pub window_start: Timestamp,
}

/// Where the task is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Created, nothing asked yet.
    Idle,
    /// Re-created by a restarted agent; the process may or may not run.
    Resumed,
    /// [`Instruction::Spawn`] issued, waiting for `Started` or `DriverFailed`.
    Starting {
        /// A stop arrived meanwhile: kill as soon as the process is there.
        stop_requested: bool,
    },
    /// The process runs.
    Running,
    /// [`Instruction::Kill`] issued, waiting for `Exited`.
    Killing {
        /// Start again once it exited (restart asked by a check).
        restart: bool,
        /// End failed once it exited ([`Event::FailRequested`]).
        fail: bool,
    },
    /// A restart is scheduled.
    WaitingToRestart,
    /// Over.
    Dead,
}

/// What the restart policy says after an exit.
enum Decision {
    /// Start again after `delay`.
    Restart { delay: Duration, reason: String },
    /// Done, successfully (a batch task that exited 0).
    Complete,
    /// Done, failed.
    Fail { reason: String },
}

/// The supervisor of one task.
#[derive(Clone, Debug)]
pub struct Supervisor {
    config: SupervisorConfig,
    phase: Phase,
    tracker: RestartTracker,
    task_state: TaskState,
}

impl Supervisor {
    /// A supervisor for a task that has not run yet; the policy window
    /// starts at `now`.
    pub fn new(config: SupervisorConfig, now: Timestamp) -> Self {
        Supervisor {
            config,
            phase: Phase::Idle,
            tracker: RestartTracker { count: 0, window_start: now },
            task_state: TaskState::default(),
        }
    }

    /// A supervisor continuing from a state and restart counter persisted
    /// by an earlier agent. Feed it what [`crate::ExecDriver::reattach`]
    /// found: [`Event::Reattached`] when the process still runs,
    /// [`Event::Exited`] when it ended meanwhile, [`Event::DriverFailed`]
    /// when it was lost, [`Event::Start`] when it was never started (a
    /// pending restart delay is not resumed: the task starts at once). A
    /// task persisted as dead stays dead.
    pub fn resume(config: SupervisorConfig, task_state: TaskState, tracker: RestartTracker) -> Self {
        let phase = if task_state.state == TaskLifecycleState::Dead { Phase::Dead } else { Phase::Resumed };
        Supervisor { config, phase, tracker, task_state }
    }

    /// The task's state, with its recent events, to report to the servers.
    pub fn task_state(&self) -> &TaskState {
        &self.task_state
    }

    /// The restart counter, to persist.
    pub fn restart_tracker(&self) -> RestartTracker {
        self.tracker
    }

    /// Whether the task is over for good.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Dead
    }

    /// Takes one event at time `now` and returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Vec<Instruction> {
        let mut instructions = Vec::new();
        match (self.phase, event) {
            (Phase::Idle, Event::Start) => {
                self.report_event(&mut instructions, now, TaskEventKind::Received, "Task received by client");
                self.report_event(&mut instructions, now, TaskEventKind::TaskSetup, "Building Task Directory");
                self.spawn(&mut instructions);
            }
            (Phase::Idle | Phase::Resumed, Event::Reattached { pid }) => {
                self.task_state.pid = Some(pid);
                let message = format!("Reattached to the running task (pid {pid})");
                self.report_event(&mut instructions, now, TaskEventKind::Reattached, message);
                self.report_state(&mut instructions, TaskLifecycleState::Running, false);
                self.phase = Phase::Running;
            }
            (Phase::Idle | Phase::Resumed, Event::StopRequested) => self.finish(&mut instructions, now, false),
            (Phase::Resumed, Event::Start) => self.spawn(&mut instructions),
            (Phase::Resumed, Event::Exited { exit_code, signal }) => {
                self.report_exit(&mut instructions, now, exit_code, signal);
                self.apply_policy(&mut instructions, now, is_success(exit_code, signal));
            }
            (Phase::Resumed, Event::DriverFailed { error }) => {
                self.task_state.pid = None;
                self.report_event(&mut instructions, now, TaskEventKind::DriverFailure, error);
                self.apply_policy(&mut instructions, now, false);
            }

            (Phase::Starting { stop_requested }, Event::Started { pid }) => {
                self.task_state.pid = Some(pid);
                self.task_state.started_at = Some(now);
                self.report_event(&mut instructions, now, TaskEventKind::Started, "Task started by client");
                self.report_state(&mut instructions, TaskLifecycleState::Running, false);
                self.phase = Phase::Running;
                if stop_requested {
                    self.kill(&mut instructions, now, false);
                }
            }
            (Phase::Starting { stop_requested: false }, Event::DriverFailed { error }) => {
                self.report_event(&mut instructions, now, TaskEventKind::DriverFailure, error);
                self.apply_policy(&mut instructions, now, false);
            }
            (Phase::Starting { stop_requested: true }, Event::DriverFailed { error }) => {
                self.report_event(&mut instructions, now, TaskEventKind::DriverFailure, error);
                self.finish(&mut instructions, now, false);
            }
            (Phase::Starting { .. }, Event::StopRequested) => {
                self.phase = Phase::Starting { stop_requested: true };
            }
            // An exit reported without a start first: treat it as the
            // exit of a started process.
            (Phase::Starting { stop_requested }, Event::Exited { exit_code, signal }) => {
                self.report_exit(&mut instructions, now, exit_code, signal);
                if stop_requested {
                    self.finish(&mut instructions, now, false);
                } else {
                    self.apply_policy(&mut instructions, now, is_success(exit_code, signal));
                }
            }

            (Phase::Running, Event::Exited { exit_code, signal }) => {
                self.report_exit(&mut instructions, now, exit_code, signal);
                self.apply_policy(&mut instructions, now, is_success(exit_code, signal));
            }
            (Phase::Running, Event::DriverFailed { error }) => {
                self.task_state.pid = None;
                self.report_event(&mut instructions, now, TaskEventKind::DriverFailure, error);
                self.apply_policy(&mut instructions, now, false);
            }
            (Phase::Running, Event::StopRequested) => self.kill(&mut instructions, now, false),
            (Phase::Running, Event::RestartRequested { reason }) => {
                self.report_event(&mut instructions, now, TaskEventKind::RestartSignaled, reason);
                self.kill(&mut instructions, now, true);
            }
            (Phase::Running, Event::FailRequested { reason }) => {
                self.report_event(&mut instructions, now, TaskEventKind::Killing, reason);
                self.kill(&mut instructions, now, false);
                self.phase = Phase::Killing { restart: false, fail: true };
            }
            (Phase::WaitingToRestart, Event::FailRequested { reason }) => {
                instructions.push(Instruction::CancelTimer);
                self.report_event(&mut instructions, now, TaskEventKind::Killed, reason);
                self.finish(&mut instructions, now, true);
            }

            (Phase::Killing { restart, fail }, Event::Exited { exit_code, signal }) => {
                self.report_exit(&mut instructions, now, exit_code, signal);
                self.after_kill(&mut instructions, now, restart, fail);
            }
            (Phase::Killing { restart, fail }, Event::DriverFailed { error }) => {
                self.task_state.pid = None;
                self.report_event(&mut instructions, now, TaskEventKind::DriverFailure, error);
                self.after_kill(&mut instructions, now, restart, fail);
            }
            (Phase::Killing { restart: true, fail }, Event::StopRequested) => {
                self.phase = Phase::Killing { restart: false, fail };
            }
            // Being killed for a restart: it ends failed instead.
            (Phase::Killing { restart: true, .. }, Event::FailRequested { reason }) => {
                self.report_event(&mut instructions, now, TaskEventKind::Killing, reason);
                self.phase = Phase::Killing { restart: false, fail: true };
            }
            (phase, Event::Note { kind, message }) if phase != Phase::Dead => {
                self.report_event(&mut instructions, now, kind, message);
            }

            (Phase::WaitingToRestart, Event::TimerFired) => self.spawn(&mut instructions),
            (Phase::WaitingToRestart, Event::StopRequested) => {
                instructions.push(Instruction::CancelTimer);
                self.report_event(
                    &mut instructions,
                    now,
                    TaskEventKind::Killed,
                    "Task killed while waiting to restart",
                );
                self.finish(&mut instructions, now, false);
            }

            // Everything else is stale or does not apply in this phase: a
            // timer that fired after a stop, a restart asked while the task
            // is not running, events after the end.
            _ => {}
        }
        instructions
    }

    fn spawn(&mut self, instructions: &mut Vec<Instruction>) {
        instructions.push(Instruction::Spawn);
        self.phase = Phase::Starting { stop_requested: false };
    }

    fn kill(&mut self, instructions: &mut Vec<Instruction>, now: Timestamp, restart: bool) {
        let timeout = self.config.kill_timeout;
        let message =
            format!("Sent {}, waiting {} before force killing", self.config.kill_signal, DurationSpec::from(timeout));
        self.report_event(instructions, now, TaskEventKind::Killing, message);
        instructions.push(Instruction::Kill { signal: self.config.kill_signal, timeout });
        self.phase = Phase::Killing { restart, fail: false };
    }

    fn after_kill(&mut self, instructions: &mut Vec<Instruction>, now: Timestamp, restart: bool, fail: bool) {
        if restart {
            self.restart_after(instructions, now, Duration::ZERO, "Restart signaled".to_owned());
        } else if fail {
            self.report_event(instructions, now, TaskEventKind::Killed, "Task killed: it fails");
            self.finish(instructions, now, true);
        } else {
            self.report_event(instructions, now, TaskEventKind::Killed, "Task successfully killed");
            self.finish(instructions, now, false);
        }
    }

    fn report_exit(
        &mut self,
        instructions: &mut Vec<Instruction>,
        now: Timestamp,
        exit_code: Option<i32>,
        signal: Option<i32>,
    ) {
        self.task_state.pid = None;
        let event = TaskEvent {
            time: now,
            kind: TaskEventKind::Terminated,
            message: terminated_message(exit_code, signal),
            exit_code,
            signal,
        };
        self.push_event(instructions, event);
    }

    fn apply_policy(&mut self, instructions: &mut Vec<Instruction>, now: Timestamp, success: bool) {
        match self.decide(now, success) {
            Decision::Complete => self.finish(instructions, now, false),
            Decision::Fail { reason } => {
                self.report_event(instructions, now, TaskEventKind::NotRestarting, reason);
                self.finish(instructions, now, true);
            }
            Decision::Restart { delay, reason } => self.restart_after(instructions, now, delay, reason),
        }
    }

    /// Nomad's `RestartTracker.GetState`, without jitter.
    fn decide(&mut self, now: Timestamp, success: bool) -> Decision {
        let policy = self.config.policy;
        if self.config.batch && success {
            return Decision::Complete;
        }
        if policy.attempts == 0 {
            return Decision::Fail { reason: "Policy allows no restarts".to_owned() };
        }
        let window_end = self.tracker.window_start.plus(policy.interval.get());
        if now > window_end {
            self.tracker = RestartTracker { count: 0, window_start: now };
        }
        self.tracker.count += 1;
        if self.tracker.count <= policy.attempts {
            return Decision::Restart { delay: policy.delay.get(), reason: "Restart within policy".to_owned() };
        }
        match policy.mode {
            RestartMode::Fail => Decision::Fail {
                reason: format!(
                    "Exceeded allowed attempts {} in interval {} and mode is \"fail\"",
                    policy.attempts, policy.interval
                ),
            },
            RestartMode::Delay => Decision::Restart {
                delay: window_end.since(now),
                reason: format!(
                    "Exceeded allowed attempts {} in interval {}, delaying until the interval ends",
                    policy.attempts, policy.interval
                ),
            },
        }
    }

    fn restart_after(&mut self, instructions: &mut Vec<Instruction>, now: Timestamp, delay: Duration, reason: String) {
        self.task_state.restarts += 1;
        self.task_state.last_restart = Some(now);
        let message = if delay.is_zero() {
            format!("{reason}: restarting now")
        } else {
            format!("{reason}: restarting in {}", DurationSpec::from(delay))
        };
        self.report_event(instructions, now, TaskEventKind::Restarting, message);
        self.report_state(instructions, TaskLifecycleState::Pending, false);
        if delay.is_zero() {
            self.spawn(instructions);
        } else {
            instructions.push(Instruction::ScheduleTimer { at: now.plus(delay) });
            self.phase = Phase::WaitingToRestart;
        }
    }

    fn finish(&mut self, instructions: &mut Vec<Instruction>, now: Timestamp, failed: bool) {
        self.task_state.finished_at = Some(now);
        self.task_state.pid = None;
        self.report_state(instructions, TaskLifecycleState::Dead, failed);
        instructions.push(Instruction::Finished { failed });
        self.phase = Phase::Dead;
    }

    fn report_event(
        &mut self,
        instructions: &mut Vec<Instruction>,
        now: Timestamp,
        kind: TaskEventKind,
        message: impl Into<String>,
    ) {
        let event = TaskEvent { time: now, kind, message: message.into(), exit_code: None, signal: None };
        self.push_event(instructions, event);
    }

    fn push_event(&mut self, instructions: &mut Vec<Instruction>, event: TaskEvent) {
        self.task_state.push_event(event.clone());
        instructions.push(Instruction::ReportEvent(event));
    }

    fn report_state(&mut self, instructions: &mut Vec<Instruction>, state: TaskLifecycleState, failed: bool) {
        self.task_state.state = state;
        self.task_state.failed = failed;
        instructions.push(Instruction::ReportState { state, failed });
    }
}

fn is_success(exit_code: Option<i32>, signal: Option<i32>) -> bool {
    exit_code == Some(0) && signal.is_none()
}

/// Nomad's wording: `Exit Code: 1`, `Exit Code: 137, Signal: 9`.
fn terminated_message(exit_code: Option<i32>, signal: Option<i32>) -> String {
    let signal_name = |number: i32| Signal::try_from(number).map(|signal| format!(" ({signal})")).unwrap_or_default();
    match (exit_code, signal) {
        (Some(code), None) => format!("Exit Code: {code}"),
        (Some(code), Some(number)) => format!("Exit Code: {code}, Signal: {number}{}", signal_name(number)),
        (None, Some(number)) => format!("Signal: {number}{}", signal_name(number)),
        (None, None) => "Exit status unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1000;
    const MINUTE: i64 = 60 * SECOND;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + millis)
    }

    fn config(attempts: u32, mode: RestartMode, batch: bool) -> SupervisorConfig {
        SupervisorConfig {
            policy: RestartPolicy {
                attempts,
                interval: DurationSpec::from_secs(30 * 60),
                delay: DurationSpec::from_secs(15),
                mode,
            },
            batch,
            kill_signal: Signal::SIGINT,
            kill_timeout: Duration::from_secs(5),
        }
    }

    fn event(time: Timestamp, kind: TaskEventKind, message: &str) -> Instruction {
        Instruction::ReportEvent(TaskEvent { time, kind, message: message.to_owned(), exit_code: None, signal: None })
    }

    fn terminated(time: Timestamp, exit_code: Option<i32>, signal: Option<i32>, message: &str) -> Instruction {
        Instruction::ReportEvent(TaskEvent {
            time,
            kind: TaskEventKind::Terminated,
            message: message.to_owned(),
            exit_code,
            signal,
        })
    }

    fn state(state: TaskLifecycleState, failed: bool) -> Instruction {
        Instruction::ReportState { state, failed }
    }

    fn exited(code: i32) -> Event {
        Event::Exited { exit_code: Some(code), signal: None }
    }

    /// A supervisor whose task runs as pid 100 since `at(0)`.
    fn running(config: SupervisorConfig) -> Supervisor {
        let mut supervisor = Supervisor::new(config, at(0));
        supervisor.handle(Event::Start, at(0));
        supervisor.handle(Event::Started { pid: 100 }, at(0));
        supervisor
    }

    #[test]
    fn start_reports_received_and_setup_then_spawns() {
        let mut supervisor = Supervisor::new(config(2, RestartMode::Fail, false), at(0));
        assert_eq!(
            supervisor.handle(Event::Start, at(0)),
            vec![
                event(at(0), TaskEventKind::Received, "Task received by client"),
                event(at(0), TaskEventKind::TaskSetup, "Building Task Directory"),
                Instruction::Spawn,
            ]
        );
        assert_eq!(
            supervisor.handle(Event::Started { pid: 100 }, at(10)),
            vec![
                event(at(10), TaskEventKind::Started, "Task started by client"),
                state(TaskLifecycleState::Running, false),
            ]
        );
        assert_eq!(supervisor.task_state().pid, Some(100));
        assert_eq!(supervisor.task_state().started_at, Some(at(10)));
        assert_eq!(supervisor.task_state().events.len(), 3);
    }

    #[test]
    fn fail_mode_restarts_within_attempts_then_fails() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        assert_eq!(
            supervisor.handle(exited(1), at(MINUTE)),
            vec![
                terminated(at(MINUTE), Some(1), None, "Exit Code: 1"),
                event(at(MINUTE), TaskEventKind::Restarting, "Restart within policy: restarting in 15s"),
                state(TaskLifecycleState::Pending, false),
                Instruction::ScheduleTimer { at: at(MINUTE + 15 * SECOND) },
            ]
        );
        assert_eq!(supervisor.handle(Event::TimerFired, at(MINUTE + 15 * SECOND)), vec![Instruction::Spawn]);
        supervisor.handle(Event::Started { pid: 101 }, at(MINUTE + 15 * SECOND));
        assert_eq!(
            supervisor.handle(exited(1), at(2 * MINUTE)).last(),
            Some(&Instruction::ScheduleTimer { at: at(2 * MINUTE + 15 * SECOND) })
        );
        supervisor.handle(Event::TimerFired, at(2 * MINUTE + 15 * SECOND));
        supervisor.handle(Event::Started { pid: 102 }, at(2 * MINUTE + 15 * SECOND));
        assert_eq!(
            supervisor.handle(Event::Exited { exit_code: None, signal: Some(9) }, at(3 * MINUTE)),
            vec![
                terminated(at(3 * MINUTE), None, Some(9), "Signal: 9 (SIGKILL)"),
                event(
                    at(3 * MINUTE),
                    TaskEventKind::NotRestarting,
                    "Exceeded allowed attempts 2 in interval 30m and mode is \"fail\""
                ),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );
        assert!(supervisor.is_finished());
        assert_eq!(supervisor.task_state().restarts, 2);
        assert_eq!(supervisor.task_state().finished_at, Some(at(3 * MINUTE)));
        assert_eq!(supervisor.handle(Event::TimerFired, at(4 * MINUTE)), vec![]);
    }

    #[test]
    fn the_attempt_counter_resets_after_the_interval() {
        let mut supervisor = running(config(1, RestartMode::Fail, false));
        supervisor.handle(exited(1), at(MINUTE));
        supervisor.handle(Event::TimerFired, at(MINUTE + 15 * SECOND));
        supervisor.handle(Event::Started { pid: 101 }, at(MINUTE + 15 * SECOND));
        // 31 minutes after the window started: a new window, so a restart.
        let instructions = supervisor.handle(exited(1), at(31 * MINUTE));
        assert_eq!(
            instructions[1],
            event(at(31 * MINUTE), TaskEventKind::Restarting, "Restart within policy: restarting in 15s")
        );
        assert_eq!(supervisor.restart_tracker(), RestartTracker { count: 1, window_start: at(31 * MINUTE) });
    }

    #[test]
    fn delay_mode_waits_for_the_window_to_end_then_restarts() {
        let mut supervisor = running(config(1, RestartMode::Delay, false));
        supervisor.handle(exited(2), at(MINUTE));
        supervisor.handle(Event::TimerFired, at(MINUTE + 15 * SECOND));
        supervisor.handle(Event::Started { pid: 101 }, at(MINUTE + 15 * SECOND));
        assert_eq!(
            supervisor.handle(exited(2), at(10 * MINUTE)),
            vec![
                terminated(at(10 * MINUTE), Some(2), None, "Exit Code: 2"),
                event(
                    at(10 * MINUTE),
                    TaskEventKind::Restarting,
                    "Exceeded allowed attempts 1 in interval 30m, delaying until the interval ends: restarting in 20m"
                ),
                state(TaskLifecycleState::Pending, false),
                Instruction::ScheduleTimer { at: at(30 * MINUTE) },
            ]
        );
        assert_eq!(supervisor.handle(Event::TimerFired, at(30 * MINUTE)), vec![Instruction::Spawn]);
        supervisor.handle(Event::Started { pid: 102 }, at(30 * MINUTE));
        // The next exit opens a new window with a fresh count.
        let instructions = supervisor.handle(exited(2), at(30 * MINUTE + SECOND));
        assert_eq!(
            instructions[1],
            event(at(30 * MINUTE + SECOND), TaskEventKind::Restarting, "Restart within policy: restarting in 15s")
        );
        assert_eq!(supervisor.task_state().restarts, 3);
    }

    #[test]
    fn a_batch_task_that_succeeds_is_done_and_one_that_fails_restarts() {
        let mut supervisor = running(config(3, RestartMode::Fail, true));
        assert_eq!(
            supervisor.handle(exited(0), at(MINUTE)),
            vec![
                terminated(at(MINUTE), Some(0), None, "Exit Code: 0"),
                state(TaskLifecycleState::Dead, false),
                Instruction::Finished { failed: false },
            ]
        );
        let mut failing = running(config(3, RestartMode::Fail, true));
        assert_eq!(
            failing.handle(exited(1), at(MINUTE)).last(),
            Some(&Instruction::ScheduleTimer { at: at(MINUTE + 15 * SECOND) })
        );
    }

    #[test]
    fn a_service_task_restarts_even_after_exit_zero() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        let instructions = supervisor.handle(exited(0), at(MINUTE));
        assert_eq!(
            instructions[1],
            event(at(MINUTE), TaskEventKind::Restarting, "Restart within policy: restarting in 15s")
        );
    }

    #[test]
    fn zero_attempts_never_restart() {
        let mut supervisor = running(config(0, RestartMode::Delay, false));
        assert_eq!(
            supervisor.handle(exited(0), at(MINUTE)),
            vec![
                terminated(at(MINUTE), Some(0), None, "Exit Code: 0"),
                event(at(MINUTE), TaskEventKind::NotRestarting, "Policy allows no restarts"),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );
    }

    #[test]
    fn stop_kills_then_ends_dead_and_not_failed() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        assert_eq!(
            supervisor.handle(Event::StopRequested, at(MINUTE)),
            vec![
                event(at(MINUTE), TaskEventKind::Killing, "Sent SIGINT, waiting 5s before force killing"),
                Instruction::Kill { signal: Signal::SIGINT, timeout: Duration::from_secs(5) },
            ]
        );
        assert_eq!(supervisor.handle(Event::StopRequested, at(MINUTE)), vec![], "a second stop changes nothing");
        assert_eq!(
            supervisor.handle(Event::Exited { exit_code: None, signal: Some(2) }, at(MINUTE + SECOND)),
            vec![
                terminated(at(MINUTE + SECOND), None, Some(2), "Signal: 2 (SIGINT)"),
                event(at(MINUTE + SECOND), TaskEventKind::Killed, "Task successfully killed"),
                state(TaskLifecycleState::Dead, false),
                Instruction::Finished { failed: false },
            ]
        );
    }

    #[test]
    fn a_failure_asked_for_kills_then_ends_failed_without_a_restart_and_a_note_is_only_an_event() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        let note = Event::Note { kind: TaskEventKind::TaskHookMessage, message: "script ran".to_owned() };
        assert_eq!(
            supervisor.handle(note.clone(), at(MINUTE)),
            vec![event(at(MINUTE), TaskEventKind::TaskHookMessage, "script ran")]
        );
        assert_eq!(
            supervisor.handle(Event::FailRequested { reason: "script failed".to_owned() }, at(MINUTE)),
            vec![
                event(at(MINUTE), TaskEventKind::Killing, "script failed"),
                event(at(MINUTE), TaskEventKind::Killing, "Sent SIGINT, waiting 5s before force killing"),
                Instruction::Kill { signal: Signal::SIGINT, timeout: Duration::from_secs(5) },
            ]
        );
        assert_eq!(
            supervisor.handle(Event::Exited { exit_code: None, signal: Some(2) }, at(MINUTE + SECOND)),
            vec![
                terminated(at(MINUTE + SECOND), None, Some(2), "Signal: 2 (SIGINT)"),
                event(at(MINUTE + SECOND), TaskEventKind::Killed, "Task killed: it fails"),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );
        assert_eq!(supervisor.handle(note, at(MINUTE + 2 * SECOND)), vec![], "nothing after the end");

        // Asked while being killed for a restart: it ends failed instead.
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        supervisor.handle(Event::RestartRequested { reason: "check".to_owned() }, at(MINUTE));
        assert_eq!(
            supervisor.handle(Event::FailRequested { reason: "script failed".to_owned() }, at(MINUTE)),
            vec![event(at(MINUTE), TaskEventKind::Killing, "script failed")]
        );
        let ended = supervisor.handle(Event::Exited { exit_code: None, signal: Some(2) }, at(MINUTE + SECOND));
        assert_eq!(ended.last(), Some(&Instruction::Finished { failed: true }), "{ended:?}");

        // While waiting to restart: ended failed at once.
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        supervisor.handle(exited(1), at(MINUTE));
        assert_eq!(
            supervisor.handle(Event::FailRequested { reason: "script failed".to_owned() }, at(MINUTE + SECOND)),
            vec![
                Instruction::CancelTimer,
                event(at(MINUTE + SECOND), TaskEventKind::Killed, "script failed"),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );
    }

    #[test]
    fn stop_during_the_restart_delay_cancels_the_restart() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        supervisor.handle(exited(1), at(MINUTE));
        assert_eq!(
            supervisor.handle(Event::StopRequested, at(MINUTE + SECOND)),
            vec![
                Instruction::CancelTimer,
                event(at(MINUTE + SECOND), TaskEventKind::Killed, "Task killed while waiting to restart"),
                state(TaskLifecycleState::Dead, false),
                Instruction::Finished { failed: false },
            ]
        );
        assert_eq!(supervisor.handle(Event::TimerFired, at(MINUTE + 15 * SECOND)), vec![], "a stale timer is ignored");
    }

    #[test]
    fn stop_while_starting_kills_once_the_process_is_there() {
        let mut supervisor = Supervisor::new(config(2, RestartMode::Fail, false), at(0));
        supervisor.handle(Event::Start, at(0));
        assert_eq!(supervisor.handle(Event::StopRequested, at(1)), vec![]);
        assert_eq!(
            supervisor.handle(Event::Started { pid: 100 }, at(2)),
            vec![
                event(at(2), TaskEventKind::Started, "Task started by client"),
                state(TaskLifecycleState::Running, false),
                event(at(2), TaskEventKind::Killing, "Sent SIGINT, waiting 5s before force killing"),
                Instruction::Kill { signal: Signal::SIGINT, timeout: Duration::from_secs(5) },
            ]
        );
    }

    #[test]
    fn stop_before_start_finishes_at_once() {
        let mut supervisor = Supervisor::new(config(2, RestartMode::Fail, false), at(0));
        assert_eq!(
            supervisor.handle(Event::StopRequested, at(0)),
            vec![state(TaskLifecycleState::Dead, false), Instruction::Finished { failed: false }]
        );
    }

    #[test]
    fn a_restart_requested_by_a_check_kills_and_starts_again_without_using_an_attempt() {
        let mut supervisor = running(config(1, RestartMode::Fail, false));
        let reason = "healthcheck: check \"alive\" unhealthy";
        assert_eq!(
            supervisor.handle(Event::RestartRequested { reason: reason.to_owned() }, at(MINUTE)),
            vec![
                event(at(MINUTE), TaskEventKind::RestartSignaled, reason),
                event(at(MINUTE), TaskEventKind::Killing, "Sent SIGINT, waiting 5s before force killing"),
                Instruction::Kill { signal: Signal::SIGINT, timeout: Duration::from_secs(5) },
            ]
        );
        assert_eq!(
            supervisor.handle(Event::Exited { exit_code: Some(130), signal: None }, at(MINUTE + SECOND)),
            vec![
                terminated(at(MINUTE + SECOND), Some(130), None, "Exit Code: 130"),
                event(at(MINUTE + SECOND), TaskEventKind::Restarting, "Restart signaled: restarting now"),
                state(TaskLifecycleState::Pending, false),
                Instruction::Spawn,
            ]
        );
        assert_eq!(supervisor.restart_tracker().count, 0);
        assert_eq!(supervisor.task_state().restarts, 1);
        // The one policy attempt is still there.
        supervisor.handle(Event::Started { pid: 101 }, at(MINUTE + SECOND));
        assert_eq!(
            supervisor.handle(exited(1), at(2 * MINUTE)).last(),
            Some(&Instruction::ScheduleTimer { at: at(2 * MINUTE + 15 * SECOND) })
        );
    }

    #[test]
    fn a_restart_request_when_not_running_is_ignored_and_stop_wins_over_it() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        supervisor.handle(exited(1), at(MINUTE));
        assert_eq!(supervisor.handle(Event::RestartRequested { reason: "check".into() }, at(MINUTE)), vec![]);

        let mut killing = running(config(2, RestartMode::Fail, false));
        killing.handle(Event::RestartRequested { reason: "check".into() }, at(MINUTE));
        assert_eq!(killing.handle(Event::StopRequested, at(MINUTE)), vec![]);
        assert_eq!(
            killing.handle(exited(0), at(MINUTE + SECOND))[1..],
            [
                event(at(MINUTE + SECOND), TaskEventKind::Killed, "Task successfully killed"),
                state(TaskLifecycleState::Dead, false),
                Instruction::Finished { failed: false },
            ]
        );
    }

    #[test]
    fn a_driver_failure_counts_as_a_failed_attempt() {
        let mut supervisor = Supervisor::new(config(1, RestartMode::Fail, false), at(0));
        supervisor.handle(Event::Start, at(0));
        let error = "the task could not be started: cannot run \"nope\"".to_owned();
        assert_eq!(
            supervisor.handle(Event::DriverFailed { error: error.clone() }, at(1)),
            vec![
                event(at(1), TaskEventKind::DriverFailure, &error),
                event(at(1), TaskEventKind::Restarting, "Restart within policy: restarting in 15s"),
                state(TaskLifecycleState::Pending, false),
                Instruction::ScheduleTimer { at: at(1 + 15 * SECOND) },
            ]
        );
        supervisor.handle(Event::TimerFired, at(1 + 15 * SECOND));
        assert_eq!(
            supervisor.handle(Event::DriverFailed { error: error.clone() }, at(2 + 15 * SECOND))[1..],
            [
                event(
                    at(2 + 15 * SECOND),
                    TaskEventKind::NotRestarting,
                    "Exceeded allowed attempts 1 in interval 30m and mode is \"fail\""
                ),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );
    }

    #[test]
    fn reattach_resumes_supervision_with_the_persisted_counter() {
        let previous = running(config(1, RestartMode::Fail, false));
        let mut persisted_state = previous.task_state().clone();
        persisted_state.restarts = 1;
        let tracker = RestartTracker { count: 1, window_start: at(0) };
        let mut supervisor = Supervisor::resume(config(1, RestartMode::Fail, false), persisted_state, tracker);
        assert_eq!(
            supervisor.handle(Event::Reattached { pid: 100 }, at(MINUTE)),
            vec![
                event(at(MINUTE), TaskEventKind::Reattached, "Reattached to the running task (pid 100)"),
                state(TaskLifecycleState::Running, false),
            ]
        );
        assert_eq!(supervisor.task_state().pid, Some(100));
        // The persisted count already used the one attempt.
        assert_eq!(
            supervisor.handle(exited(1), at(2 * MINUTE))[1..],
            [
                event(
                    at(2 * MINUTE),
                    TaskEventKind::NotRestarting,
                    "Exceeded allowed attempts 1 in interval 30m and mode is \"fail\""
                ),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );
        assert_eq!(supervisor.handle(Event::Reattached { pid: 100 }, at(3 * MINUTE)), vec![]);
    }

    #[test]
    fn a_resumed_supervisor_applies_the_policy_to_an_exit_that_happened_while_the_agent_was_away() {
        let previous = running(config(2, RestartMode::Fail, false));
        let tracker = RestartTracker { count: 2, window_start: at(0) };
        let mut supervisor =
            Supervisor::resume(config(2, RestartMode::Fail, false), previous.task_state().clone(), tracker);
        assert_eq!(
            supervisor.handle(exited(1), at(MINUTE)),
            vec![
                terminated(at(MINUTE), Some(1), None, "Exit Code: 1"),
                event(
                    at(MINUTE),
                    TaskEventKind::NotRestarting,
                    "Exceeded allowed attempts 2 in interval 30m and mode is \"fail\""
                ),
                state(TaskLifecycleState::Dead, true),
                Instruction::Finished { failed: true },
            ]
        );

        let mut lost = Supervisor::resume(
            config(2, RestartMode::Fail, false),
            previous.task_state().clone(),
            RestartTracker { count: 0, window_start: at(0) },
        );
        let error = "the executor (pid 7) died while the agent was away".to_owned();
        assert_eq!(
            lost.handle(Event::DriverFailed { error: error.clone() }, at(MINUTE)),
            vec![
                event(at(MINUTE), TaskEventKind::DriverFailure, &error),
                event(at(MINUTE), TaskEventKind::Restarting, "Restart within policy: restarting in 15s"),
                state(TaskLifecycleState::Pending, false),
                Instruction::ScheduleTimer { at: at(MINUTE + 15 * SECOND) },
            ]
        );
    }

    #[test]
    fn a_resumed_supervisor_starts_a_task_that_never_ran_and_a_dead_task_stays_dead() {
        let tracker = RestartTracker { count: 0, window_start: at(0) };
        let mut pending = Supervisor::resume(config(2, RestartMode::Fail, false), TaskState::default(), tracker);
        assert_eq!(pending.handle(Event::Start, at(MINUTE)), vec![Instruction::Spawn]);

        let dead_state = TaskState { state: TaskLifecycleState::Dead, ..TaskState::default() };
        let mut dead = Supervisor::resume(config(2, RestartMode::Fail, false), dead_state, tracker);
        assert!(dead.is_finished());
        assert_eq!(dead.handle(Event::Start, at(MINUTE)), vec![]);
        assert_eq!(dead.handle(Event::Reattached { pid: 5 }, at(MINUTE)), vec![]);
    }

    #[test]
    fn the_executor_dying_while_running_is_a_driver_failure() {
        let mut supervisor = running(config(2, RestartMode::Fail, false));
        let error = "the executor (pid 7) exited without recording the task's exit".to_owned();
        let instructions = supervisor.handle(Event::DriverFailed { error: error.clone() }, at(MINUTE));
        assert_eq!(instructions[0], event(at(MINUTE), TaskEventKind::DriverFailure, &error));
        assert_eq!(instructions.last(), Some(&Instruction::ScheduleTimer { at: at(MINUTE + 15 * SECOND) }));
        assert_eq!(supervisor.task_state().pid, None);
    }

    #[test]
    fn config_comes_from_the_task_with_the_group_policy_as_default() {
        let task = Task {
            name: "web".into(),
            driver: drover_types::Driver::Exec,
            config: drover_types::TaskConfig { command: "/bin/true".into(), args: vec![] },
            env: Default::default(),
            resources: drover_types::Resources::TASK_DEFAULT,
            user: None,
            kill_timeout: DurationSpec::from_secs(7),
            kill_signal: "SIGTERM".into(),
            restart: None,
            constraints: vec![],
            services: vec![],
            meta: Default::default(),
            logs: None,
            templates: vec![],
            artifacts: vec![],
            lifecycle: None,
            dispatch_payload: None,
        };
        let config = SupervisorConfig::for_task(&task, RestartPolicy::BATCH_DEFAULT, JobType::Batch).unwrap();
        assert_eq!(config.policy, RestartPolicy::BATCH_DEFAULT);
        assert!(config.batch);
        assert_eq!(config.kill_signal, Signal::SIGTERM);
        assert_eq!(config.kill_timeout, Duration::from_secs(7));
        let bad = Task { kill_signal: "SIGWHAT".into(), ..task };
        assert!(SupervisorConfig::for_task(&bad, RestartPolicy::SERVICE_DEFAULT, JobType::Service).is_err());
    }
}
