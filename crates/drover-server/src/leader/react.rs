//! The reactor: the leader's loop of detect and react.
//!
//! Every tick (and at once when the state changes) it
//!
//! 1. evaluates the alert rules of the applied site against the cluster —
//!    node and allocation states and alerts received from an Alertmanager
//!    at every state change; log counts over the rule's window and usage
//!    metrics (queries to every server) on the tick only — and proposes an
//!    evaluation when it changes something (a transition or a
//!    notification), so idle ticks write nothing to the Raft log;
//! 2. turns what happened into hammer triggers: alerts that started
//!    firing, node events (status changes), newly firing Alertmanager
//!    alerts; log-line triggers arrive on their own, from a live tail of
//!    every server's index per hammer;
//! 3. proposes each trigger to the guard (replicated: limits survive a
//!    leader change) and starts the runs it allows (`actions.rs`),
//!    including runs a human approved on any server;
//! 4. polls the `console` command of every node whose provider has one —
//!    down nodes too — and indexes new console lines as source `console`.
//!
//! Runs left `running` by a previous leader are closed as failed at the
//! start: whether their action happened is unknown, and a reboot must not
//! be repeated blindly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::api::{LogCountBy, LogQuery};
use drover_react::alerting::{AlertId, Observation, Transition};
use drover_react::conditions::{self, AllocFacts, NodeFacts};
use drover_react::hammer::RunReport;
use drover_react::hammer::{Decision, RunId, RunState, TriggerEvent, TriggerNode};
use drover_react::matcher::all_match;
use drover_react::{Condition, GroupBy, HammerTrigger, Labels, NodeEvent};
use drover_state::State;
use drover_state::react::ReactOp;
use drover_types::{Allocation, NodeStatus, TaskEventKind, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Wake, Wakes, on_change_or_tick};
use crate::server::Server;

/// How often rules are evaluated when nothing changes.
const TICK: Duration = Duration::from_millis(500);
/// How often old runs, silences and received alerts are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(super) async fn run(server: Server, token: CancellationToken) {
    let (triggers, triggered) = mpsc::channel(1024);
    let mut reactor = Reactor {
        server: server.clone(),
        token: token.clone(),
        triggers,
        site_version: 0,
        site_token: token.child_token(),
        node_status: HashMap::new(),
        received_firing: HashMap::new(),
        executing: Arc::new(std::sync::Mutex::new(HashSet::new())),
        last_prune: Instant::now(),
    };
    reactor.close_interrupted_runs().await;
    let wakes = Wakes::every(TICK).and_on_change(&server).and_on_events(triggered);
    on_change_or_tick(token, wakes, async move |wake| match wake {
        Wake::Tick => reactor.step(Queries::Run).await,
        Wake::Changed => reactor.step(Queries::Skip).await,
        Wake::Event(event) => reactor.trigger(event).await,
    })
    .await;
}

/// Whether a step evaluates the rules that query every server (log counts,
/// usage metrics): on the tick, not on each of the many state changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queries {
    Run,
    Skip,
}

struct Reactor {
    server: Server,
    token: CancellationToken,
    /// Log watchers send their triggers here.
    triggers: mpsc::Sender<TriggerEvent>,
    /// The site version the watchers and console pollers were started for.
    site_version: u64,
    /// Cancels the watchers and pollers of the current site version.
    site_token: CancellationToken,
    /// Each node's last seen status and whether it was draining.
    node_status: HashMap<String, (NodeStatus, bool)>,
    /// Received Alertmanager alerts by fingerprint: whether firing.
    received_firing: HashMap<String, bool>,
    /// Runs whose action this leader is performing.
    executing: Arc<std::sync::Mutex<HashSet<RunId>>>,
    last_prune: Instant,
}

impl Reactor {
    async fn close_interrupted_runs(&mut self) {
        let state = self.server.state();
        let interrupted: Vec<RunId> =
            state.react().guard.runs().filter(|run| run.state == RunState::Running).map(|run| run.id).collect();
        for run in interrupted {
            let report = RunReport {
                action: "unknown".to_owned(),
                output: "the leader changed while the action ran; whether it happened is unknown".to_owned(),
                succeeded: false,
            };
            if let Err(error) = self.server.react(ReactOp::Finish { run, report, now: Timestamp::now() }).await {
                tracing::warn!(%run, %error, "cannot close an interrupted hammer run");
            }
        }
        let state = self.server.state();
        for node in state.nodes() {
            self.node_status.insert(node.name.clone(), (node.status, node.drain.is_some()));
        }
        for alert in state.react().received.values() {
            self.received_firing.insert(alert.fingerprint.clone(), alert.firing);
        }
    }

    async fn step(&mut self, queries: Queries) {
        let state = self.server.state();
        let Some(doc) = state.react().site.clone() else { return };
        if doc.version != self.site_version {
            self.site_version = doc.version;
            self.site_token.cancel();
            self.site_token = self.token.child_token();
            self.start_log_watchers(&doc.site);
            crate::leader::console::start(&self.server, &doc.site, &self.site_token);
        }
        let now = Timestamp::now();
        self.evaluate_rules(&state, &doc.site, now, queries).await;
        self.node_events(&state).await;
        self.received_alerts(&state).await;
        self.start_approved_runs();
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.last_prune = Instant::now();
            if let Err(error) = self.server.react(ReactOp::Prune { now }).await {
                tracing::debug!(%error, "cannot prune detect-and-react state");
            }
        }
    }

    async fn evaluate_rules(
        &mut self,
        state: &Arc<State>,
        site: &drover_react::Site,
        now: Timestamp,
        queries: Queries,
    ) {
        // The fleet's usage, fetched once per step for every metric rule.
        let mut usage = None;
        // Each rule is evaluated on a copy first (rules own disjoint alerts,
        // so one copy serves them all): only changes go through Raft.
        let mut engine = state.react().alerts.clone();
        for rule in site.alerts.values() {
            let queried = matches!(rule.condition, Condition::Log(_) | Condition::Metric(_));
            if queried && queries == Queries::Skip {
                continue;
            }
            let observations = match self.observe(state, &rule.condition, now, &mut usage).await {
                Ok(observations) => observations,
                Err(error) => {
                    tracing::debug!(rule = %rule.name, %error, "cannot evaluate alert rule");
                    continue;
                }
            };
            let preview = engine.evaluate(rule, &observations, now);
            if preview.transitions.is_empty() && preview.notifications.is_empty() {
                continue;
            }
            // The hammers of the alerts that fire are asked in the same entry.
            let mut triggers = Vec::new();
            for transition in &preview.transitions {
                let Transition::Firing(id) = transition else { continue };
                let labels = engine.alert(id).map(|alert| alert.labels.clone()).unwrap_or_default();
                for hammer in site.hammers.values() {
                    if matches!(&hammer.trigger, HammerTrigger::Alert(name) if *name == rule.name) {
                        let event = event_for(state, &hammer.name, &labels, format!("alert {id} fires"));
                        triggers.push((id.clone(), event));
                    }
                }
            }
            let expected: HashSet<AlertId> = triggers.iter().map(|(id, _)| id.clone()).collect();
            let op = ReactOp::Evaluate {
                rule: rule.name.clone(),
                observations,
                now,
                triggers,
                fleet_size: state.num_nodes(),
            };
            match self.server.react(op).await {
                Ok(outcome) => {
                    for decision in outcome.decisions {
                        self.act_on(decision);
                    }
                    // An alert that fired although the preview did not expect
                    // it (the site changed in between): its hammers are asked now.
                    let state = self.server.state();
                    for transition in &outcome.transitions {
                        let Transition::Firing(id) = transition else { continue };
                        if expected.contains(id) {
                            continue;
                        }
                        let labels =
                            state.react().alerts.alert(id).map(|alert| alert.labels.clone()).unwrap_or_default();
                        for hammer in site.hammers.values() {
                            if matches!(&hammer.trigger, HammerTrigger::Alert(name) if *name == rule.name) {
                                let event = event_for(&state, &hammer.name, &labels, format!("alert {id} fires"));
                                self.trigger(event).await;
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(rule = %rule.name, %error, "cannot record an alert evaluation"),
            }
        }
    }

    /// The label sets for which a condition holds now.
    async fn observe(
        &self,
        state: &State,
        condition: &Condition,
        now: Timestamp,
        usage: &mut Option<Vec<(drover_types::NodeId, drover_metrics::NodeSample)>>,
    ) -> crate::Result<Vec<Observation>> {
        let observations = match condition {
            Condition::Node(check) => {
                let taken_down = taken_down(state);
                let nodes = state.nodes().filter(|node| is_watched(&taken_down, node)).map(|node| NodeFacts {
                    name: &node.name,
                    status: node.status,
                    eligibility: node.eligibility,
                    drain_started_at: node.drain.as_ref().map(|drain| drain.started_at),
                    last_heartbeat: self.server.last_heartbeat(&node.id),
                });
                conditions::node_observations(check, nodes, now)
            }
            Condition::Alloc(condition) => {
                let allocs = state.allocs().map(|alloc| alloc_facts(state, alloc));
                conditions::alloc_observations(condition, allocs, now)
            }
            Condition::Log(condition) => {
                let query = LogQuery {
                    q: log_query(condition.query.as_deref(), condition.source.as_deref(), condition.matches.as_deref()),
                    since: Some(format!("{}ms", condition.within.get().as_millis())),
                    ..LogQuery::default()
                };
                let by = match condition.by {
                    GroupBy::Node => "node",
                    GroupBy::Job => "job",
                };
                let counts = self.server.count_logs(query, LogCountBy { by: by.to_owned(), top: Some(1000) }).await?;
                counts
                    .counts
                    .into_iter()
                    .filter(|count| count.count >= u64::from(condition.at_least) && !count.value.is_empty())
                    .map(|count| Observation {
                        labels: Labels::from([(by.to_owned(), count.value)]),
                        value: Some(count.count as f64),
                    })
                    .collect()
            }
            Condition::Metric(condition) => {
                let mut found = Vec::new();
                if usage.is_none() {
                    *usage = Some(self.server.fleet_usage().await);
                }
                for (node_id, sample) in usage.iter().flatten() {
                    let Some(node) = state.node(node_id) else { continue };
                    for (metric, mut labels, value) in metric_values(sample) {
                        let name = condition.selector.metric.trim_start_matches("drover_node_");
                        if metric != name {
                            continue;
                        }
                        labels.insert("node".to_owned(), node.name.clone());
                        labels.insert("hostgroup".to_owned(), node.hostgroup.clone());
                        labels.insert("environment".to_owned(), node.environment.clone());
                        if all_match(&condition.selector.matchers, &labels) && condition.threshold.is_crossed_by(value)
                        {
                            found.push(Observation { labels, value: Some(value) });
                        }
                    }
                }
                found
            }
            Condition::Alertmanager { matchers } => state
                .react()
                .received
                .values()
                .filter(|alert| alert.firing && all_match(matchers, &alert.labels))
                .map(|alert| Observation { labels: alert.labels.clone(), value: None })
                .collect(),
        };
        Ok(observations)
    }

    async fn node_events(&mut self, state: &State) {
        let Some(doc) = &state.react().site else { return };
        let watched: Vec<(&String, NodeEvent)> = doc
            .site
            .hammers
            .iter()
            .filter_map(|(name, hammer)| match hammer.trigger {
                HammerTrigger::Node(event) => Some((name, event)),
                _ => None,
            })
            .collect();
        let taken_down = taken_down(state);
        let mut events = Vec::new();
        for node in state.nodes() {
            let now = (node.status, node.drain.is_some());
            let before = self.node_status.insert(node.name.clone(), now);
            if !is_watched(&taken_down, node) {
                continue;
            }
            let happened = match before {
                None => Some(NodeEvent::Registered),
                Some((old, _)) if old != now.0 => match now.0 {
                    NodeStatus::Down => Some(NodeEvent::Down),
                    NodeStatus::Disconnected => Some(NodeEvent::Disconnected),
                    NodeStatus::Ready => Some(NodeEvent::Up),
                    NodeStatus::Initializing => None,
                },
                Some((_, true)) if !now.1 => Some(NodeEvent::Drained),
                _ => None,
            };
            if let Some(happened) = happened {
                events.push((node.name.clone(), happened));
            }
        }
        for (node, happened) in events {
            for (hammer, event) in &watched {
                if *event == happened {
                    let labels = Labels::from([("node".to_owned(), node.clone())]);
                    let reason = format!("node {node} is {}", happened.as_str());
                    let trigger = event_for(state, hammer, &labels, reason);
                    self.trigger(trigger).await;
                }
            }
        }
    }

    async fn received_alerts(&mut self, state: &State) {
        let Some(doc) = &state.react().site else { return };
        let mut newly_firing = Vec::new();
        for alert in state.react().received.values() {
            let was_firing = self.received_firing.insert(alert.fingerprint.clone(), alert.firing);
            if alert.firing && was_firing != Some(true) {
                newly_firing.push(alert.clone());
            }
        }
        for alert in newly_firing {
            for hammer in doc.site.hammers.values() {
                if let HammerTrigger::Alertmanager { matchers } = &hammer.trigger
                    && all_match(matchers, &alert.labels)
                {
                    let name = alert.labels.get("alertname").cloned().unwrap_or_default();
                    let reason = format!("Alertmanager alert {name} fires");
                    let event = event_for(state, &hammer.name, &alert.labels, reason);
                    self.trigger(event).await;
                }
            }
        }
    }

    /// Asks the guard; starts the run it allows.
    async fn trigger(&mut self, event: TriggerEvent) {
        let state = self.server.state();
        let fleet_size = state.num_nodes();
        let hammer = event.hammer.clone();
        let outcome = match self.server.react(ReactOp::Trigger { event, fleet_size, now: Timestamp::now() }).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%hammer, %error, "cannot record a hammer trigger");
                return;
            }
        };
        for decision in outcome.decisions {
            self.act_on(decision);
        }
    }

    /// Starts (or records) what the guard decided.
    fn act_on(&self, decision: Decision) {
        match decision {
            Decision::Run(run) => self.start(run),
            Decision::DryRun(run) => {
                let server = self.server.clone();
                tokio::spawn(async move { super::actions::dry_run(&server, run).await });
            }
            Decision::WaitApproval(run) => tracing::info!(%run, "hammer run waits for approval"),
            Decision::Refused(refusal) => tracing::info!(%refusal, "hammer trigger refused"),
        }
    }

    /// Starts every running run nobody performs (approved ones).
    fn start_approved_runs(&mut self) {
        let state = self.server.state();
        let runs: Vec<RunId> =
            state.react().guard.runs().filter(|run| run.state == RunState::Running).map(|run| run.id).collect();
        for run in runs {
            self.start(run);
        }
    }

    fn start(&self, run: RunId) {
        {
            let mut executing = self.executing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !executing.insert(run) {
                return;
            }
        }
        let server = self.server.clone();
        let executing = self.executing.clone();
        tokio::spawn(async move {
            super::actions::perform(&server, run).await;
            executing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&run);
        });
    }

    /// One live tail per hammer triggered by log lines.
    fn start_log_watchers(&self, site: &drover_react::Site) {
        for hammer in site.hammers.values() {
            let HammerTrigger::Log { source, matches, query } = &hammer.trigger else { continue };
            let q = log_query(query.as_deref(), source.as_deref(), matches.as_deref());
            let server = self.server.clone();
            let triggers = self.triggers.clone();
            let token = self.site_token.clone();
            let name = hammer.name.clone();
            tokio::spawn(async move { watch_log(server, name, q, triggers, token).await });
        }
    }
}

/// Follows the live lines matching `q` on every server; each one is a
/// trigger. Restarts the tail when a server's stream ends.
async fn watch_log(
    server: Server,
    hammer: String,
    q: String,
    triggers: mpsc::Sender<TriggerEvent>,
    token: CancellationToken,
) {
    while !token.is_cancelled() {
        let mut lines = match server.tail_logs(LogQuery { q: q.clone(), ..LogQuery::default() }).await {
            Ok(lines) => lines,
            Err(error) => {
                tracing::warn!(%hammer, %error, "cannot follow the log lines of a hammer's trigger");
                return;
            }
        };
        loop {
            let record = tokio::select! {
                () = token.cancelled() => return,
                record = lines.recv() => record,
            };
            let Some(record) = record else { break };
            let state = server.state();
            let mut labels = Labels::from([("node".to_owned(), record.node.clone())]);
            if let Some(job) = &record.job {
                labels.insert("job".to_owned(), job.clone());
            }
            let reason = format!("log line on {}: {}", record.node, record.message);
            let event = event_for(&state, &hammer, &labels, reason);
            if triggers.send(event).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A trigger of `hammer` about the node and job named in `labels`.
fn event_for(state: &State, hammer: &str, labels: &Labels, reason: String) -> TriggerEvent {
    let node = labels.get("node").filter(|name| !name.is_empty()).map(|name| TriggerNode {
        name: name.clone(),
        protected: state.resolve_node(name).is_ok_and(|node| node.protected.is_some()),
    });
    TriggerEvent {
        hammer: hammer.to_owned(),
        node,
        job: labels.get("job").filter(|job| !job.is_empty()).cloned(),
        reason,
        forced: false,
    }
}

/// An allocation as the alert conditions see it.
/// The nodes a running delete or power-off workflow is taking down on
/// purpose (found once per look: a workflow may have thousands of steps).
fn taken_down(state: &State) -> std::collections::HashSet<&str> {
    use drover_types::workflow::{MachineOperation, WorkflowStatus};
    state
        .workflows()
        .filter(|workflow| workflow.status == WorkflowStatus::Running)
        .filter(|workflow| matches!(workflow.operation, MachineOperation::Delete | MachineOperation::PowerOff))
        .flat_map(|workflow| workflow.steps.iter())
        .filter(|step| !step.phase.is_terminal())
        .map(|step| step.node.as_str())
        .collect()
}

/// Whether alert rules and node-event hammers look at `node`: not a
/// retired one (a deleted machine stays, retired and down, until purged),
/// nor one of `taken_down`.
fn is_watched(taken_down: &std::collections::HashSet<&str>, node: &drover_types::Node) -> bool {
    node.retired.is_none() && !taken_down.contains(node.name.as_str())
}

fn alloc_facts<'a>(state: &'a State, alloc: &'a Allocation) -> AllocFacts<'a> {
    AllocFacts {
        id: alloc.id.as_str(),
        job: alloc.job_id.as_str(),
        group: &alloc.group,
        node: state.node(&alloc.node_id).map_or("", |node| node.name.as_str()),
        client_status: alloc.client_status,
        desired_status: alloc.desired_status,
        restarts: alloc
            .task_states
            .values()
            .flat_map(|task| task.events.iter())
            .filter(|event| event.kind == TaskEventKind::Restarting)
            .map(|event| event.time)
            .collect(),
        checks: &alloc.checks,
    }
}

/// The log search query of a `log` condition or trigger.
pub(crate) fn log_query(query: Option<&str>, source: Option<&str>, matches: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(query) = query.filter(|query| !query.trim().is_empty()) {
        parts.push(format!("({query})"));
    }
    if let Some(source) = source {
        parts.push(format!("source:{source}"));
    }
    if let Some(text) = matches {
        parts.push(format!("\"{}\"", text.replace('"', " ")));
    }
    parts.join(" ")
}

/// The metrics of a usage sample, by the names alert rules use, with the
/// labels beyond the node's.
fn metric_values(sample: &drover_metrics::NodeSample) -> Vec<(&'static str, Labels, f64)> {
    let percent = |used: u64, total: u64| if total == 0 { 0.0 } else { used as f64 * 100.0 / total as f64 };
    let mut values = vec![
        ("cpu_percent", Labels::new(), f64::from(sample.cpu_percent)),
        ("load1", Labels::new(), f64::from(sample.load1)),
        ("load5", Labels::new(), f64::from(sample.load5)),
        ("load15", Labels::new(), f64::from(sample.load15)),
        ("memory_used_percent", Labels::new(), percent(sample.memory_used, sample.memory_total)),
        ("swap_used_percent", Labels::new(), percent(sample.swap_used, sample.swap_total)),
    ];
    for disk in &sample.disks {
        let labels = Labels::from([("mount".to_owned(), disk.mount.clone())]);
        values.push(("disk_used_percent", labels, percent(disk.used, disk.total)));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_queries_combine_the_parts() {
        assert_eq!(log_query(None, Some("console"), Some("Kernel panic")), "source:console \"Kernel panic\"");
        assert_eq!(log_query(Some("a OR b"), None, Some("say \"hi\"")), "(a OR b) \"say  hi \"");
        assert_eq!(log_query(None, None, None), "");
    }

    #[test]
    fn disks_become_labelled_metrics() {
        let sample = drover_metrics::NodeSample {
            memory_total: 200,
            memory_used: 50,
            disks: vec![drover_metrics::DiskSample {
                mount: "/tmp".to_owned(),
                used: 97,
                total: 100,
                ..Default::default()
            }],
            ..Default::default()
        };
        let values = metric_values(&sample);
        let memory = values.iter().find(|(name, _, _)| *name == "memory_used_percent").unwrap();
        assert!((memory.2 - 25.0).abs() < 1e-9);
        let disk = values.iter().find(|(name, _, _)| *name == "disk_used_percent").unwrap();
        assert_eq!(disk.1["mount"], "/tmp");
        assert!((disk.2 - 97.0).abs() < 1e-9);
    }
}
