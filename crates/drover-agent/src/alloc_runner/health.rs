//! The health side of an allocation runner: it runs the allocation's
//! checks and, for allocations placed by a deployment, decides their
//! deployment health.
//!
//! It feeds task reports and probe results to the two sans-IO deciders
//! ([`crate::checks`], [`crate::deployment_health`]) and carries out their
//! commands: start and stop probes ([`crate::probe`]), restart a task
//! whose check keeps failing, keep the deployment timer, persist the
//! decision. Check statuses and the health decision travel in every later
//! update of the allocation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drover_proto::session::AllocAssignment;
use drover_types::{AllocDesiredStatus, AllocId, CheckStatus, TaskLifecycleState, Timestamp};

use super::TaskEntry;
use crate::checks::{CheckCommand, CheckEvent, CheckWatcher, all_passing};
use crate::deployment_health::{
    HealthCommand, HealthConfig, HealthEvent, HealthWatcher, TasksSummary, load_decision, save_decision,
};
use crate::probe::{ProbeReport, ProbeSet};
use crate::task::TaskControl;

/// The health side of an allocation runner: runs the checks and decides
/// deployment health by carrying out the commands of the allocation's
/// [`CheckWatcher`] and [`HealthWatcher`].
pub(super) struct AllocHealth {
    alloc_id: AllocId,
    /// The allocation's directory, where the decision is persisted.
    dir: PathBuf,
    checks: CheckWatcher,
    probes: ProbeSet,
    /// The statuses last published by `checks`.
    pub(super) check_statuses: Vec<CheckStatus>,
    /// `None` when there is nothing to decide (not a deployment's
    /// allocation, decided already, or decided by the servers).
    deployment: Option<HealthWatcher>,
    pub(super) deployment_timer: Option<Timestamp>,
    /// The decision, reported in every update once made.
    pub(super) deployment_health: Option<bool>,
    stopped: bool,
}

impl AllocHealth {
    pub(super) fn new(
        dir: &Path,
        assignment: &AllocAssignment,
        group: &drover_types::TaskGroup,
        probes: ProbeSet,
    ) -> Self {
        let alloc = &assignment.alloc;
        let decision = load_decision(dir);
        let undecided = alloc.deployment_status.as_ref().is_some_and(|status| status.healthy.is_none());
        let deployment =
            (decision.is_none() && undecided && alloc.desired_status == AllocDesiredStatus::Run).then(|| {
                let update = assignment.update.unwrap_or_else(|| {
                    tracing::debug!(alloc = %alloc.id, "no update strategy with the allocation; using the defaults");
                    drover_types::UpdateStrategy::default()
                });
                HealthWatcher::new(HealthConfig::from(&update))
            });
        let checks = CheckWatcher::new(group);
        AllocHealth {
            alloc_id: alloc.id.clone(),
            dir: dir.to_owned(),
            check_statuses: checks.statuses(),
            checks,
            probes,
            deployment,
            deployment_timer: None,
            deployment_health: decision.map(|decision| decision.healthy),
            stopped: false,
        }
    }

    /// The runner started: the deployment deadline counts from `now`.
    pub(super) fn start(&mut self, now: Timestamp) {
        let all_passing = all_passing(&self.check_statuses);
        self.deployment_event(HealthEvent::ChecksChanged { all_passing }, now);
        self.deployment_event(HealthEvent::Start, now);
    }

    /// A task reported a new state.
    pub(super) fn task_changed(&mut self, task_name: &str, tasks: &BTreeMap<String, TaskEntry>, now: Timestamp) {
        if let Some(entry) = tasks.get(task_name) {
            let event = if entry.state.state == TaskLifecycleState::Running && !entry.finished {
                // A running task always has a start time; ZERO only keeps
                // a malformed state from looking like a new run each time.
                CheckEvent::TaskRunning {
                    task: task_name.to_owned(),
                    started_at: entry.state.started_at.unwrap_or(Timestamp::ZERO),
                }
            } else {
                CheckEvent::TaskNotRunning { task: task_name.to_owned() }
            };
            let commands = self.checks.handle(event, now);
            self.check_commands(commands, tasks, now);
        }
        // Tasks that run once at a lifecycle hook count only when they
        // failed: the allocation is healthy while its main tasks and
        // sidecars run.
        let counted = tasks.iter().filter(|(_, entry)| {
            entry.phase.hook.is_none() || entry.phase.sidecar || (entry.finished && entry.state.failed)
        });
        let summary = TasksSummary::of(counted.map(|(name, entry)| (name.as_str(), &entry.state, entry.finished)));
        self.deployment_event(HealthEvent::TasksChanged(summary), now);
    }

    /// A check ran.
    pub(super) fn probe_finished(&mut self, report: ProbeReport, tasks: &BTreeMap<String, TaskEntry>, now: Timestamp) {
        let event = CheckEvent::ProbeFinished {
            task: report.task,
            check: report.check,
            generation: report.generation,
            outcome: report.outcome,
        };
        let commands = self.checks.handle(event, now);
        self.check_commands(commands, tasks, now);
    }

    /// The deployment timer fired.
    pub(super) fn timer_fired(&mut self, now: Timestamp) {
        self.deployment_timer = None;
        self.deployment_event(HealthEvent::TimerFired, now);
    }

    /// The allocation is stopping: no more checks, restarts or decisions.
    pub(super) fn stop(&mut self, now: Timestamp) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let commands = self.checks.handle(CheckEvent::AllocStopping, now);
        self.check_commands(commands, &BTreeMap::new(), now);
        self.deployment_event(HealthEvent::StopWatching, now);
    }

    /// The servers recorded the allocation's deployment health.
    pub(super) fn servers_decided(&mut self, now: Timestamp) {
        self.deployment_event(HealthEvent::StopWatching, now);
    }

    fn check_commands(&mut self, commands: Vec<CheckCommand>, tasks: &BTreeMap<String, TaskEntry>, now: Timestamp) {
        for command in commands {
            match command {
                CheckCommand::StartProbes { task, generation } => self.probes.start(&task, generation),
                CheckCommand::StopProbes { task } => self.probes.stop(&task),
                CheckCommand::RestartTask { task, reason } => {
                    tracing::info!(alloc = %self.alloc_id, task = %task, %reason, "restarting task for a failing check");
                    if let Some(entry) = tasks.get(&task) {
                        let _ = entry.control.send(TaskControl::Restart { reason });
                    }
                }
                CheckCommand::Publish(statuses) => {
                    let all_passing = all_passing(&statuses);
                    self.check_statuses = statuses;
                    self.deployment_event(HealthEvent::ChecksChanged { all_passing }, now);
                }
            }
        }
    }

    fn deployment_event(&mut self, event: HealthEvent, now: Timestamp) {
        let Some(watcher) = self.deployment.as_mut() else { return };
        for command in watcher.handle(event, now) {
            match command {
                HealthCommand::ScheduleTimer { at } => self.deployment_timer = Some(at),
                HealthCommand::CancelTimer => self.deployment_timer = None,
                HealthCommand::Report { healthy, reason } => {
                    tracing::info!(alloc = %self.alloc_id, healthy, %reason, "deployment health decided");
                    self.deployment_health = Some(healthy);
                    if let Err(error) = save_decision(&self.dir, healthy, &reason, now) {
                        tracing::warn!(alloc = %self.alloc_id, %error, "cannot persist the deployment health decision");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Checks and deployment health of allocation runners running real
    //! tasks through the exec driver (started by the manager, as the agent
    //! does), with the executor shim of drover-executor's tests and real check
    //! targets.

    use std::time::Duration;

    use tokio::sync::mpsc;

    use drover_types::{
        AllocClientStatus, AllocDeploymentStatus, CheckHealth, CheckKind, ClientAllocUpdate, DurationSpec,
        HealthCheckMode, TaskEventKind, TaskLifecycleState, Timestamp, UpdateStrategy,
    };

    use crate::deployment_health::load_decision;
    use crate::test_support;

    const WAIT: Duration = Duration::from_secs(60);

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// An allocation placed by a deployment (health undecided).
    fn deployment_allocation(id: &str) -> drover_types::Allocation {
        let mut alloc = test_support::allocation(id);
        alloc.deployment_status =
            Some(AllocDeploymentStatus { healthy: None, timestamp: Timestamp::ZERO, canary: false });
        alloc
    }

    fn update_strategy(min_healthy_secs: u64, deadline_secs: u64) -> UpdateStrategy {
        UpdateStrategy {
            health_check: HealthCheckMode::Checks,
            min_healthy_time: DurationSpec::from_secs(min_healthy_secs),
            healthy_deadline: DurationSpec::from_secs(deadline_secs),
            ..UpdateStrategy::default()
        }
    }

    /// Reads updates until one satisfies `condition`; every update read is
    /// appended to `seen`.
    async fn wait_for(
        updates: &mut mpsc::UnboundedReceiver<ClientAllocUpdate>,
        seen: &mut Vec<ClientAllocUpdate>,
        what: &str,
        condition: impl Fn(&ClientAllocUpdate) -> bool,
    ) -> ClientAllocUpdate {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Some(update)) => {
                    seen.push(update.clone());
                    if condition(&update) {
                        return update;
                    }
                }
                Ok(None) | Err(_) => panic!("no update where {what} within {WAIT:?}; the last one: {:#?}", seen.last()),
            }
        }
    }

    fn check_health(update: &ClientAllocUpdate) -> Vec<CheckHealth> {
        update.checks.iter().map(|check| check.status).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_served_http_check_passes_and_the_deployment_allocation_becomes_healthy_for_good() {
        let Some(helper) = test_support::executor_helper() else { return };
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let port_text = port.to_string();
        let http = CheckKind::Http {
            address: "127.0.0.1".to_owned(),
            port,
            path: "/".to_owned(),
            method: "GET".to_owned(),
            expected_status: None,
            body: None,
        };
        let task = test_support::with_checks(
            test_support::task("web", "python3", &["-m", "http.server", &port_text, "--bind", "127.0.0.1"]),
            vec![test_support::check("http", http, 200, 1_000)],
        );
        let assignment = test_support::assignment(
            deployment_allocation("alloc-healthy"),
            test_support::group(vec![task]),
            Some(update_strategy(1, 60)),
        );
        let alloc_dir = root.path().join("alloc-healthy");

        let (manager, mut updates) = test_support::alloc_manager(root.path(), &helper);
        manager.reconcile(None, vec![assignment], true).await;
        let mut seen = Vec::new();
        let healthy = wait_for(&mut updates, &mut seen, "the allocation is healthy", |update| {
            update.deployment_health == Some(true)
        })
        .await;
        assert_eq!(healthy.client_status, AllocClientStatus::Running);
        assert_eq!(check_health(&healthy), vec![CheckHealth::Passing]);
        assert_eq!(healthy.checks[0].output, format!("GET http://127.0.0.1:{port}/: HTTP 200 OK"));
        assert_eq!((healthy.checks[0].task.as_str(), healthy.checks[0].name.as_str()), ("web", "http"));
        // Checks were pending until the task ran, health undecided until then.
        assert_eq!(check_health(&seen[0]), vec![CheckHealth::Pending]);
        assert!(seen.iter().take(seen.len() - 1).all(|update| update.deployment_health.is_none()));
        // Healthy means healthy for min_healthy_time: the first passing
        // result came at least a second before the decision.
        let first_passing = seen.iter().find(|update| check_health(update) == [CheckHealth::Passing]).unwrap();
        let decision = load_decision(&alloc_dir).unwrap();
        assert!(decision.healthy);
        assert!(
            decision.decided_at.since(first_passing.checks[0].checked_at) >= Duration::from_secs(1),
            "decided at {} after a first pass at {}",
            decision.decided_at,
            first_passing.checks[0].checked_at
        );

        // A restarted agent re-attaches, re-reports the decision in its
        // first update and never decides again.
        manager.detach_all().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (restarted, mut restarted_updates) = test_support::alloc_manager(root.path(), &helper);
        restarted.restore().await;
        let mut seen_after_restart = Vec::new();
        let first = wait_for(&mut restarted_updates, &mut seen_after_restart, "any update", |_| true).await;
        assert_eq!(first.deployment_health, Some(true));
        wait_for(&mut restarted_updates, &mut seen_after_restart, "the check passes again", |update| {
            check_health(update) == [CheckHealth::Passing]
        })
        .await;
        assert!(seen_after_restart.iter().all(|update| update.deployment_health == Some(true)));
        restarted.stop_all().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_check_restarts_its_task_and_the_deadline_makes_the_allocation_unhealthy() {
        let Some(helper) = test_support::executor_helper() else { return };
        let root = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut check =
            test_support::check("tcp", CheckKind::Tcp { address: "127.0.0.1".to_owned(), port: closed_port }, 200, 500);
        check.check_restart = test_support::restart_rule(2, 0, false);
        let task = test_support::with_checks(test_support::task("sleeper", "sleep", &["600"]), vec![check]);
        let assignment = test_support::assignment(
            deployment_allocation("alloc-unhealthy"),
            test_support::group(vec![task]),
            Some(update_strategy(1, 3)),
        );

        let (manager, mut updates) = test_support::alloc_manager(root.path(), &helper);
        manager.reconcile(None, vec![assignment], true).await;
        let mut seen = Vec::new();
        let restarted = wait_for(&mut updates, &mut seen, "the check restarted the task", |update| {
            update.task_states.get("sleeper").is_some_and(|state| {
                state.restarts >= 1
                    && state.state == TaskLifecycleState::Running
                    && state.events.iter().any(|event| event.kind == TaskEventKind::RestartSignaled)
            })
        })
        .await;
        let events = &restarted.task_states["sleeper"].events;
        let signaled = events.iter().find(|event| event.kind == TaskEventKind::RestartSignaled).unwrap();
        assert_eq!(signaled.message, "health check \"tcp\" unhealthy: 2 consecutive failures");
        assert!(seen.iter().any(|update| check_health(update) == [CheckHealth::Critical]));

        let unhealthy = wait_for(&mut updates, &mut seen, "the allocation is unhealthy", |update| {
            update.deployment_health == Some(false)
        })
        .await;
        assert_eq!(unhealthy.client_status, AllocClientStatus::Running);
        assert!(load_decision(&root.path().join("alloc-unhealthy")).is_some_and(
            |decision| !decision.healthy && decision.reason == "not healthy within the healthy deadline of 3s"
        ));
        manager.stop_all().await;
    }
}
