//! The workflow runner: moves every running machine workflow on, one step
//! per node (docs/machines.md; the steps' diagram is in
//! `drover_types::workflow`).
//!
//! On every tick and state change it looks at each step in flight — a
//! drain that finished, an agent that came back, a deadline that passed —
//! and starts the pending steps that the workflow's rate and concurrency
//! caps allow ([`Workflow::startable`]). Each phase is proposed to Raft
//! before the leader acts on it, so a new leader knows where every step
//! is. Provider commands run exactly as a hammer's do
//! (`actions::shell`: `/bin/sh -c`, own process group killed at the
//! provider's timeout, output capped). A step a previous leader left in
//! `provider` is failed, never repeated: whether its command ran is
//! unknown. Each phase change is audited (`workflow.create`, …).
//!
//! `maintain` steps run their `--run`, `--reboot-command` and `--verify`
//! commands through the node's agent, as `drover exec` does
//! (`Server::exec`). A command's end is noted in memory and wakes the
//! runner, which acts on it at once, so every transition happens in
//! [`Runner::watch`]. A step a
//! previous leader left `running` or `rebooting` is failed, not repeated;
//! one left `verifying` runs its verify command again (it only looks). A
//! paused workflow starts no new step ([`Workflow::startable`]); the steps
//! in flight go on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::api::{ExecStatus, NodeRetireRequest};
use drover_react::{PlaceholderSet, Template};
use drover_state::{Command, State};
use drover_types::acl::{AuditEvent, AuditOutcome, JoinRole};
use drover_types::workflow::{
    MachineOperation, MaintenanceReboot, STEP_OUTPUT_MAX, StepPhase, Workflow, WorkflowOp, WorkflowStatus,
    WorkflowStep, keep_first_bytes,
};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, JobId, JobType, Node, NodeEligibility, NodeStatus, Timestamp,
};
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use super::{Wakes, on_change_or_tick};
use crate::controls::DrainRequest;
use crate::server::Server;

/// How often steps are looked at when nothing changes (rate caps and
/// timeouts are honoured this closely).
const TICK: Duration = Duration::from_millis(100);

/// The longest a command run through an agent may take (`drover exec`'s
/// limit).
const MAX_AGENT_COMMAND: Duration = Duration::from_secs(24 * 3600);

/// A step: its workflow's id and its position.
type StepKey = (String, usize);

/// How a command run through a node's agent ended.
type AgentOutcome = Result<String, AgentFailure>;

/// A command through an agent that did not succeed.
#[derive(Clone, Debug)]
struct AgentFailure {
    /// The agent went away while it ran (no exit code): what a reboot
    /// command does.
    lost: bool,
    /// What happened and what it printed.
    text: String,
}

/// The maintenance stages of a step, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Run,
    Reboot,
    Verify,
}

pub(super) async fn run(server: Server, token: CancellationToken) {
    // A command through an agent that ended wakes the runner (one pending
    // wake is enough).
    let (wake, woken) = tokio::sync::mpsc::channel(1);
    let runner = Runner { server: server.clone(), commands: Arc::new(Mutex::new(HashMap::new())), wake };
    let wakes = Wakes::every(TICK).and_on_change(&server).and_on_events(woken);
    on_change_or_tick(token, wakes, async move |_| runner.step().await).await;
}

#[derive(Clone)]
struct Runner {
    server: Server,
    /// Steps whose command (provider or through an agent) this leader
    /// runs: `None` while it runs, then how an agent command ended (taken
    /// by the next look at the step).
    commands: Arc<Mutex<HashMap<StepKey, Option<AgentOutcome>>>>,
    /// Wakes the runner when such a command ends.
    wake: tokio::sync::mpsc::Sender<()>,
}

/// What this leader knows of a step's command.
enum Progress {
    /// It runs.
    Running,
    /// It ended so.
    Ended(AgentOutcome),
    /// This leader did not start it.
    Unknown,
}

impl Runner {
    async fn step(&self) {
        let state = self.server.state();
        let running: Vec<Arc<Workflow>> =
            state.workflows().filter(|workflow| workflow.status == WorkflowStatus::Running).cloned().collect();
        for workflow in running {
            // The steps are independent: their transitions are proposed
            // together (Raft appends them as one batch), not one commit
            // after another.
            let in_flight = workflow.steps.iter().enumerate().filter(|(_, step)| step.phase.is_in_flight());
            join_all(in_flight.map(|(position, step)| self.watch(&state, &workflow, position, step))).await;
            // Read again: a step that just ended makes room at once.
            let Some(workflow) = self.server.state().workflow(&workflow.id).cloned() else { continue };
            let now = Timestamp::now();
            // A node that runs nothing changes no job's limits when taken
            // out: those start together. The others one after another,
            // each reading the state again, so that a node the last step
            // took out counts against the next one's job limits.
            let latest = self.server.state();
            let (idle, busy): (Vec<usize>, Vec<usize>) = workflow
                .startable(now)
                .into_iter()
                .partition(|&position| runs_nothing(&latest, &workflow.steps[position].node));
            join_all(idle.into_iter().map(|position| self.begin(&latest, &workflow, position, now))).await;
            for position in busy {
                self.begin(&self.server.state(), &workflow, position, now).await;
            }
        }
    }

    fn is_executing(&self, key: &StepKey) -> bool {
        self.commands.lock().map(|commands| commands.contains_key(key)).unwrap_or(false)
    }

    fn mark_executing(&self, key: &StepKey) {
        if let Ok(mut commands) = self.commands.lock() {
            commands.insert(key.clone(), None);
        }
    }

    fn forget(&self, key: &StepKey) {
        if let Ok(mut commands) = self.commands.lock() {
            commands.remove(key);
        }
    }

    /// Whether the step is still where `step` (read from an older state)
    /// says: its command may have ended, and moved it on, since.
    fn still_in(&self, workflow: &Workflow, position: usize, step: &WorkflowStep) -> bool {
        let state = self.server.state();
        state
            .workflow(&workflow.id)
            .and_then(|current| current.steps.get(position))
            .is_some_and(|current| current.phase == step.phase && current.phase.is_in_flight())
    }

    /// What became of a step's agent command (an ended one is taken).
    fn progress(&self, key: &StepKey) -> Progress {
        let Ok(mut commands) = self.commands.lock() else { return Progress::Unknown };
        match commands.get(key) {
            None => Progress::Unknown,
            Some(None) => Progress::Running,
            Some(Some(_)) => match commands.remove(key) {
                Some(Some(outcome)) => Progress::Ended(outcome),
                _ => Progress::Unknown,
            },
        }
    }

    /// Moves a step in flight on when what it waits for happened.
    async fn watch(&self, state: &State, workflow: &Workflow, position: usize, step: &WorkflowStep) {
        let now = Timestamp::now();
        let node = state.node_by_name(&step.node).cloned();
        let timed_out =
            |since: Option<Timestamp>| since.is_some_and(|since| now.since(since) > workflow.wait_timeout());
        match step.phase {
            StepPhase::Draining => match node {
                None => self.fail(workflow, position, step, "the node disappeared while draining".to_owned()).await,
                Some(node) if node.drain.is_none() => {
                    if workflow.operation == MachineOperation::Maintain {
                        self.maintain(state, workflow, position, step.clone(), &node, Stage::Run).await;
                    } else {
                        self.run_provider(state, workflow, position, step, &node).await;
                    }
                }
                Some(_) if step.started_at.is_some_and(|since| now.since(since) > drain_timeout(workflow)) => {
                    let error = format!(
                        "the drain did not finish within {}",
                        drover_types::DurationSpec(drain_timeout(workflow))
                    );
                    self.fail(workflow, position, step, error).await;
                }
                Some(_) => {}
            },
            StepPhase::Running | StepPhase::Rebooting | StepPhase::Verifying => {
                self.watch_agent_command(state, workflow, position, step, node.as_deref()).await;
            }
            StepPhase::Provider => {
                if !self.is_executing(&(workflow.id.clone(), position)) && self.still_in(workflow, position, step) {
                    let error = "the leader changed while the provider command ran; whether it ran is unknown, so it is not repeated".to_owned();
                    self.fail(workflow, position, step, error).await;
                }
            }
            // `purging`: a delete step of an older version, which purged.
            StepPhase::Waiting | StepPhase::Purging
                if matches!(workflow.operation, MachineOperation::PowerOff | MachineOperation::Delete) =>
            {
                // Its agent stopped heartbeating: disconnected or down.
                let node = node.filter(|node| step.node_id.as_ref().is_none_or(|id| *id == node.id));
                if node.as_ref().is_none_or(|node| !node.is_up()) {
                    self.gone(workflow, position, step, node.as_deref()).await;
                } else if timed_out(step.provider_started_at) {
                    let error = format!(
                        "{} was not seen down within {} of the {} command",
                        step.node,
                        timeout_text(workflow),
                        if workflow.operation == MachineOperation::Delete { "delete" } else { "power_off" }
                    );
                    self.fail(workflow, position, step, error).await;
                }
            }
            StepPhase::Waiting => {
                if let Some(node) = node.filter(|node| has_come_back(workflow.operation, step, node)) {
                    let mismatches = if workflow.operation == MachineOperation::Create {
                        label_mismatches(&workflow.labels, &node)
                    } else {
                        Vec::new()
                    };
                    if !mismatches.is_empty() {
                        let error = format!(
                            "the agent of {} registered other labels than asked for: {}; make the provider's create command start the agent with them ({{{{node.hostgroup}}}}, {{{{node.meta.KEY}}}}, …)",
                            step.node,
                            mismatches.join("; ")
                        );
                        self.fail(workflow, position, step, error).await;
                    } else if workflow.operation == MachineOperation::Maintain {
                        self.maintain(state, workflow, position, step.clone(), &node, Stage::Verify).await;
                    } else {
                        self.finish(workflow, position, step, &node, "agent back").await;
                    }
                } else if timed_out(step.provider_started_at) {
                    let error = format!(
                        "the agent of {} did not come back ready within {} of the provider command",
                        step.node,
                        timeout_text(workflow)
                    );
                    self.fail(workflow, position, step, error).await;
                }
            }
            StepPhase::Pending | StepPhase::Purging | StepPhase::Done | StepPhase::Failed | StepPhase::Cancelled => {}
        }
    }

    /// A `maintain` step whose command runs through the agent: moved on
    /// when it ended.
    async fn watch_agent_command(
        &self,
        state: &State,
        workflow: &Workflow,
        position: usize,
        step: &WorkflowStep,
        node: Option<&Node>,
    ) {
        let key = (workflow.id.clone(), position);
        let outcome = match self.progress(&key) {
            Progress::Running => return,
            Progress::Ended(outcome) => outcome,
            Progress::Unknown if !self.still_in(workflow, position, step) => return,
            Progress::Unknown if step.phase == StepPhase::Verifying => {
                // The verify command only looks: run it again.
                let Some(node) = node else {
                    return self.fail(workflow, position, step, "the node disappeared".to_owned()).await;
                };
                return self.maintain(state, workflow, position, step.clone(), node, Stage::Verify).await;
            }
            Progress::Unknown => {
                let error = format!(
                    "the leader changed while the {} command ran; whether it ran is unknown, so it is not repeated",
                    if step.phase == StepPhase::Running { "--run" } else { "reboot" }
                );
                return self.fail(workflow, position, step, error).await;
            }
        };
        let mut step = step.clone();
        match (step.phase, outcome) {
            (StepPhase::Rebooting, Ok(output) | Err(AgentFailure { lost: true, text: output })) => {
                append_output(&mut step.output, &output);
                step.phase = StepPhase::Waiting;
                self.record(workflow, position, step, "reboot command sent; waiting for the agent").await;
            }
            (StepPhase::Running, Ok(output)) => {
                append_output(&mut step.output, &output);
                let Some(node) = node else {
                    return self.fail(workflow, position, &step, "the node disappeared".to_owned()).await;
                };
                self.maintain(state, workflow, position, step, node, Stage::Reboot).await;
            }
            (StepPhase::Verifying, Ok(output)) => {
                append_output(&mut step.output, &output);
                let Some(node) = node else {
                    return self.fail(workflow, position, &step, "the node disappeared".to_owned()).await;
                };
                self.finish(workflow, position, &step, node, "verified").await;
            }
            (phase, Err(failure)) => {
                append_output(&mut step.output, &failure.text);
                let what = match phase {
                    StepPhase::Running => "--run",
                    StepPhase::Rebooting => "--reboot-command",
                    _ => "--verify",
                };
                let error = format!("the {what} command failed on {}: {}", step.node, failure.text.trim_end());
                self.fail(workflow, position, &step, error).await;
            }
            (_, Ok(_)) => {}
        }
    }

    /// Moves a `maintain` step to its next stage from `from` on: the
    /// `--run` command, the reboot, the `--verify` command, then done
    /// (made eligible again). Stages not asked for are skipped.
    async fn maintain(
        &self,
        state: &State,
        workflow: &Workflow,
        position: usize,
        step: WorkflowStep,
        node: &Node,
        from: Stage,
    ) {
        let maintenance = &workflow.maintenance;
        if from <= Stage::Run
            && let Some(run) = &maintenance.run
        {
            return self.on_agent(workflow, position, step, node, StepPhase::Running, run).await;
        }
        if from <= Stage::Reboot {
            match &maintenance.reboot {
                MaintenanceReboot::Provider => {
                    return self.run_provider_for(state, workflow, position, step, Some(node)).await;
                }
                MaintenanceReboot::Command(command) => {
                    return self.on_agent(workflow, position, step, node, StepPhase::Rebooting, command).await;
                }
                MaintenanceReboot::None => {}
            }
        }
        if let Some(verify) = &maintenance.verify {
            return self.on_agent(workflow, position, step, node, StepPhase::Verifying, verify).await;
        }
        self.finish(workflow, position, &step, node, "maintained").await;
    }

    /// Records `phase`, then runs `template` (rendered for the node)
    /// through its agent in the background; its end is noted for the next
    /// look at the step.
    async fn on_agent(
        &self,
        workflow: &Workflow,
        position: usize,
        mut step: WorkflowStep,
        node: &Node,
        phase: StepPhase,
        template: &str,
    ) {
        let command = match Template::parse(template, PlaceholderSet::Node) {
            Ok(parsed) => match super::actions::render_checked(&parsed, node) {
                Ok(command) => command,
                Err(missing) => {
                    let what = format!("the {} command {template:?}", phase.as_str());
                    let error = crate::machines::missing_placeholders_message(&what, &missing, node);
                    return self.fail(workflow, position, &step, error).await;
                }
            },
            Err(errors) => {
                let error = format!("cannot read the command {template:?}: {}", errors[0].message);
                return self.fail(workflow, position, &step, error).await;
            }
        };
        let key = (workflow.id.clone(), position);
        self.mark_executing(&key);
        step.phase = phase;
        step.command.clone_from(&command);
        if phase == StepPhase::Rebooting {
            step.provider_started_at = Some(Timestamp::now());
            step.node_modify_index = node.modify_index;
        }
        if !self.record(workflow, position, step, &format!("{} command started: {command}", phase.as_str())).await {
            return self.forget(&key);
        }
        let runner = self.clone();
        let node = node.clone();
        let timeout = workflow.wait_timeout().min(MAX_AGENT_COMMAND);
        let workflow_user = workflow.maintenance.user.clone();
        let waker = self.wake.clone();
        tokio::spawn(async move {
            let user = workflow_user.as_deref();
            let outcome = run_on_agent(&runner.server, &node, &command, user, timeout).await;
            if let Ok(mut commands) = runner.commands.lock() {
                commands.insert(key, Some(outcome));
            }
            // The next look acts on it now, not at the next tick.
            let _ = waker.try_send(());
        });
    }

    /// Starts a pending step: drains (rebuild, delete) or runs the provider
    /// command at once (create, reboot, no drain).
    async fn begin(&self, state: &State, workflow: &Workflow, position: usize, now: Timestamp) {
        let Some(pending) = workflow.steps.get(position) else { return };
        let mut step = pending.clone();
        step.started_at = Some(now);
        let node = state.node_by_name(&step.node).cloned();
        if workflow.operation == MachineOperation::Create {
            // A node that is not up (down, disconnected) is taken over by
            // the new agent.
            if node.as_ref().is_some_and(|node| node.is_up()) {
                let error = format!("a node named {} exists already", step.node);
                return self.fail(workflow, position, &step, error).await;
            }
            return self.run_provider_for(state, workflow, position, step, None).await;
        }
        let Some(node) = node else {
            return self.fail(workflow, position, &step, format!("no node named {}", step.node)).await;
        };
        if let Some(refusal) = crate::machines::protection_refusal(&node, workflow.operation) {
            return self.fail(workflow, position, &step, refusal.message).await;
        }
        step.node_id = Some(node.id.clone());
        if !workflow.drain {
            return self.run_provider_for(state, workflow, position, step, Some(&node)).await;
        }
        // Taking the node out must leave every job within its migrate and
        // update limits; else the step waits (and says why).
        if let Some(reason) = migration_hold(state, &node) {
            if pending.waiting_for != reason {
                let mut held = pending.clone();
                held.waiting_for.clone_from(&reason);
                self.record(workflow, position, held, &format!("waiting: {reason}")).await;
            }
            return;
        }
        step.waiting_for.clear();
        let by = format!("workflow {}", workflow.id);
        let drained = if workflow.operation == MachineOperation::Delete {
            let request = NodeRetireRequest {
                nodes: vec![node.id.to_string()],
                reason: Some(format!("{by}: delete")),
                ..NodeRetireRequest::default()
            };
            self.server.retire_nodes(&request, &by).await.map(drop)
        } else if node.drain.is_some() {
            Ok(())
        } else {
            let deadline = workflow.maintenance.drain_deadline_ms.map(Duration::from_millis);
            let request = DrainRequest {
                reason: Some(format!("{by}: {}", workflow.operation)),
                by,
                deadline,
                ..DrainRequest::default()
            };
            self.server.drain_node(node.id.as_str(), request).await.map(drop)
        };
        if let Err(error) = drained {
            return self.fail(workflow, position, &step, format!("cannot drain: {error}")).await;
        }
        step.phase = StepPhase::Draining;
        self.record(workflow, position, step, "draining").await;
    }

    async fn run_provider(
        &self,
        state: &State,
        workflow: &Workflow,
        position: usize,
        step: &WorkflowStep,
        node: &Node,
    ) {
        self.run_provider_for(state, workflow, position, step.clone(), Some(node)).await;
    }

    /// Records the `provider` phase, then runs the command in the
    /// background; its end is recorded when it comes.
    async fn run_provider_for(
        &self,
        state: &State,
        workflow: &Workflow,
        position: usize,
        mut step: WorkflowStep,
        node: Option<&Node>,
    ) {
        let Some(doc) = state.react().site.as_ref() else {
            return self.fail(workflow, position, &step, "no site is applied any more".to_owned()).await;
        };
        let site = &doc.site;
        let join_token = match self.join_token_for(site, workflow, &step).await {
            Ok(token) => token,
            Err(error) => return self.fail(workflow, position, &step, error).await,
        };
        let render = |join_token: &str| {
            crate::machines::machine_command(
                site,
                workflow.operation,
                workflow.provider.as_deref(),
                &step.node,
                node,
                &workflow.labels,
                join_token,
            )
        };
        // The command run has the token; the one recorded (replicated,
        // audited, shown) never does.
        let rendered = render(join_token.as_deref().unwrap_or_default()).and_then(|(command, timeout)| {
            let shown = if join_token.is_some() { render(JOIN_TOKEN_SHOWN)?.0 } else { command.clone() };
            Ok((command, shown, timeout))
        });
        let (command, shown, timeout) = match rendered {
            Ok(rendered) => rendered,
            Err(error) => return self.fail(workflow, position, &step, error).await,
        };
        let key = (workflow.id.clone(), position);
        self.mark_executing(&key);
        let now = Timestamp::now();
        step.phase = StepPhase::Provider;
        step.provider_started_at = Some(now);
        step.started_at = step.started_at.or(Some(now));
        step.command.clone_from(&shown);
        step.node_modify_index = node.map_or(0, |node| node.modify_index);
        if !self.record(workflow, position, step.clone(), &format!("provider command started: {shown}")).await {
            return self.forget(&key);
        }
        let runner = self.clone();
        let workflow = workflow.clone();
        tokio::spawn(async move {
            let outcome = super::actions::shell(&command, timeout).await;
            let mut step = step;
            match outcome {
                Ok(output) => {
                    append_output(&mut step.output, &output);
                    step.phase = StepPhase::Waiting;
                    runner.record(&workflow, position, step, "provider command succeeded").await;
                }
                Err(mut error) => {
                    truncate(&mut error);
                    let reason = format!("the provider command failed: {error}");
                    runner.fail(&workflow, position, &step, reason).await;
                }
            }
            runner.forget(&key);
        });
    }

    /// A fresh single-use join token for a machine a `create` step makes,
    /// when its template has `{{join_token}}` and the cluster is secure:
    /// scoped to the host group asked for, valid while the step may wait.
    /// `None` on an insecure cluster (the placeholder renders empty).
    async fn join_token_for(
        &self,
        site: &drover_react::Site,
        workflow: &Workflow,
        step: &WorkflowStep,
    ) -> Result<Option<String>, String> {
        let wanted = workflow.operation == MachineOperation::Create
            && crate::machines::create_uses_join_token(site, workflow.provider.as_deref(), &workflow.labels);
        if !wanted || self.server.tls().is_none() {
            return Ok(None);
        }
        let hostgroups: Vec<String> =
            workflow.labels.hostgroup.iter().filter(|group| !group.is_empty()).cloned().collect();
        let ttl = workflow.wait_timeout() + Duration::from_secs(3600);
        let by = format!("workflow {} ({})", workflow.id, step.node);
        match self.server.create_join_token(JoinRole::Agent, hostgroups, ttl, Some(1), &by).await {
            Ok((_, text)) => Ok(Some(text)),
            Err(error) => Err(format!("cannot mint a join token for {}: {error}", step.node)),
        }
    }

    /// The node is seen down after a `power_off` or `delete` command. A
    /// deleted machine's node stays, retired: out of `drover node list`,
    /// in its history and the log search, until purged (`drover node
    /// purge`, or the node GC after `--node-gc-after`). One deleted
    /// `--no-drain` is retired now (down, it runs nothing any more).
    async fn gone(&self, workflow: &Workflow, position: usize, step: &WorkflowStep, node: Option<&Node>) {
        let what = if workflow.operation == MachineOperation::Delete {
            if let Some(node) = node.filter(|node| node.retired.is_none()) {
                let by = format!("workflow {}", workflow.id);
                let request = NodeRetireRequest {
                    nodes: vec![node.id.to_string()],
                    reason: Some(format!("{by}: delete")),
                    ..NodeRetireRequest::default()
                };
                if let Err(error) = self.server.retire_nodes(&request, &by).await {
                    return self.fail(workflow, position, step, format!("cannot retire the node: {error}")).await;
                }
            }
            "node down (machine deleted), retired; done"
        } else {
            "node down (powered off); done"
        };
        let mut done = step.clone();
        done.phase = StepPhase::Done;
        done.finished_at = Some(Timestamp::now());
        self.record(workflow, position, done, what).await;
    }

    /// The agent is back (or verified): a drained node is made eligible
    /// again.
    async fn finish(&self, workflow: &Workflow, position: usize, step: &WorkflowStep, node: &Node, what: &str) {
        let undrain = workflow.drain
            || (workflow.operation == MachineOperation::PowerOn
                && drained_by_power_off(&self.server.state(), workflow, &node.name));
        if undrain && node.eligibility == NodeEligibility::Ineligible && node.drain.is_none() {
            let by = format!("workflow {}", workflow.id);
            if let Err(error) = self.server.set_eligibility(node.id.as_str(), true, &by).await {
                return self.fail(workflow, position, step, format!("cannot make it eligible again: {error}")).await;
            }
        }
        let mut done = step.clone();
        done.phase = StepPhase::Done;
        done.finished_at = Some(Timestamp::now());
        self.record(workflow, position, done, &format!("{what}: node id {} ready; done", node.id)).await;
    }

    async fn fail(&self, workflow: &Workflow, position: usize, step: &WorkflowStep, error: String) {
        let mut failed = step.clone();
        failed.phase = StepPhase::Failed;
        failed.finished_at = Some(Timestamp::now());
        failed.error.clone_from(&error);
        tracing::warn!(workflow = %workflow.id, node = %step.node, %error, "workflow step failed");
        self.record(workflow, position, failed, &format!("failed: {error}")).await;
    }

    /// Proposes the step's new phase and audits it; whether it was recorded.
    /// The step's output and error are cut to the workflow's share of the
    /// output budget here, so that no proposal carries more than the state
    /// keeps.
    async fn record(&self, workflow: &Workflow, position: usize, mut step: WorkflowStep, what: &str) -> bool {
        let keep = workflow.step_output_max();
        keep_first_bytes(&mut step.output, keep);
        keep_first_bytes(&mut step.error, keep);
        let now = Timestamp::now();
        let node = step.node.clone();
        let phase = step.phase;
        let op = WorkflowOp::UpdateStep { id: workflow.id.clone(), position, step, now };
        let recorded = self.server.propose(Command::Workflow { op }).await.and_then(|response| response.into_result());
        let outcome = match &recorded {
            Ok(_) if phase == StepPhase::Failed => AuditOutcome::Failed(what.to_owned()),
            Ok(_) => AuditOutcome::Ok,
            Err(error) => {
                tracing::warn!(workflow = %workflow.id, %node, %error, "cannot record a workflow step");
                AuditOutcome::Failed(error.to_string())
            }
        };
        self.server.audit(AuditEvent {
            at: now,
            accessor: None,
            name: format!("server:{}", self.server.id()),
            action: format!("workflow.{}", workflow.operation),
            target: node,
            details: format!("workflow {} step {}: {}: {what}", workflow.id, position, phase.as_str()),
            outcome,
            source: String::new(),
            request_id: 0,
        });
        recorded.is_ok()
    }
}

/// Whether the node named `name` (if there is one) has no allocation that
/// still occupies it.
fn runs_nothing(state: &State, name: &str) -> bool {
    state
        .node_by_name(name)
        .is_none_or(|node| state.allocs_on_node(&node.id).all(|alloc| alloc.client_status.is_terminal()))
}

/// Whether the node of a step waiting for its agent is back: ready, and
/// (but for a new machine) registered since the provider command started
/// — another node id (a rebuilt machine's fresh agent), or a change of its
/// record (a registration or a status change) after the command started.
fn has_come_back(operation: MachineOperation, step: &WorkflowStep, node: &Node) -> bool {
    if node.status != NodeStatus::Ready {
        return false;
    }
    if operation == MachineOperation::Create {
        return true;
    }
    let other_id = step.node_id.as_ref().is_some_and(|id| *id != node.id);
    let changed_since = node.modify_index > step.node_modify_index;
    let status_since = step.provider_started_at.is_some_and(|started| node.status_updated_at > started);
    other_id || changed_since || status_since
}

/// The labels a created machine's node has other than asked for, each as
/// `hostgroup "bi/batch" asked for, "bi/other" registered`. Only the labels
/// asked for are compared, with the node's effective ones (what its agent
/// registered, or the record a new agent took over). A meta key asked with
/// an empty value asks for it to be unset.
fn label_mismatches(asked: &drover_types::NodeLabels, node: &Node) -> Vec<String> {
    let mut mismatches = Vec::new();
    let mut compare = |what: String, wanted: &str, registered: Option<&str>| {
        if registered.unwrap_or_default() != wanted {
            let registered = registered.map_or_else(|| "nothing".to_owned(), |value| format!("{value:?}"));
            mismatches.push(format!("{what} {wanted:?} asked for, {registered} registered"));
        }
    };
    let fixed = [
        ("hostgroup", &asked.hostgroup, &node.hostgroup),
        ("environment", &asked.environment, &node.environment),
        ("owner", &asked.owner, &node.owner),
        ("zone", &asked.zone, &node.zone),
    ];
    for (what, wanted, registered) in fixed {
        if let Some(wanted) = wanted.as_deref().filter(|wanted| !wanted.is_empty()) {
            compare(what.to_owned(), wanted, Some(registered.as_str()).filter(|value| !value.is_empty()));
        }
    }
    for (key, wanted) in &asked.meta {
        compare(
            format!("meta {key}"),
            wanted,
            node.meta.get(key).map(String::as_str).filter(|value| !value.is_empty()),
        );
    }
    mismatches
}

/// Whether the last workflow before `workflow` that ended a step on node
/// `name` was a `power_off` that drained it: powering the node on then
/// makes it eligible again (an operator's own ineligibility is kept).
fn drained_by_power_off(state: &State, workflow: &Workflow, name: &str) -> bool {
    state
        .workflows()
        .filter(|earlier| earlier.id != workflow.id && earlier.created_at <= workflow.created_at)
        .filter(|earlier| earlier.steps.iter().any(|step| step.node == name && step.phase == StepPhase::Done))
        .max_by_key(|earlier| (earlier.created_at, earlier.id.clone()))
        .is_some_and(|last| last.operation == MachineOperation::PowerOff && last.drain)
}

/// Why taking `node` out now would leave a job with more allocations
/// unhealthy or migrating than its group's `migrate.max_parallel` (or, for
/// a service, its `update.max_parallel`) allows; `None` when it may go.
///
/// An allocation is healthy when it runs, is meant to, is not being
/// migrated and its node is up and not draining. A group with none of
/// its allocations out may always lose this node's, however many: the
/// drainer then moves them `migrate.max_parallel` at a time.
fn migration_hold(state: &State, node: &Node) -> Option<String> {
    let is_healthy = |alloc: &drover_types::Allocation| {
        alloc.client_status == AllocClientStatus::Running
            && alloc.desired_status == AllocDesiredStatus::Run
            && !alloc.desired_transition.migrate
            && state.node(&alloc.node_id).is_some_and(|node| node.is_up() && node.drain.is_none())
    };
    let mut groups: BTreeMap<(JobId, String), usize> = BTreeMap::new();
    for alloc in state.allocs_on_node(&node.id).filter(|alloc| is_healthy(alloc)) {
        *groups.entry((alloc.job_id.clone(), alloc.group.clone())).or_default() += 1;
    }
    for ((job_id, group_name), on_node) in groups {
        let Some(job) = state.job(&job_id) else { continue };
        let Some(group) = job.group(&group_name) else { continue };
        if job.job_type == JobType::System || job.stop {
            continue;
        }
        let healthy =
            state.allocs_for_job(&job_id).filter(|alloc| alloc.group == group_name && is_healthy(alloc)).count();
        let out = usize::try_from(group.count).unwrap_or(usize::MAX).saturating_sub(healthy);
        let migrate = group.migrate.max_parallel.max(1);
        let update = group.update.as_ref().or(job.update.as_ref()).filter(|_| job.job_type == JobType::Service);
        let limit = update.map_or(migrate, |update| migrate.min(update.max_parallel.max(1)));
        if out > 0 && out + on_node > usize::try_from(limit).unwrap_or(usize::MAX) {
            let update_text =
                update.map_or(String::new(), |update| format!(", update.max_parallel = {}", update.max_parallel));
            return Some(format!(
                "job {job_id} group {group_name}: {out} of {} allocations unhealthy or migrating; taking {} out ({on_node} more) would pass migrate.max_parallel = {}{update_text}",
                group.count, node.name, group.migrate.max_parallel
            ));
        }
    }
    None
}

/// What a recorded command shows instead of a join token.
const JOIN_TOKEN_SHOWN: &str = "<join-token>";

/// How long a step may drain: its timeout, or the drain's deadline and a
/// minute to stop what remained.
fn drain_timeout(workflow: &Workflow) -> Duration {
    let deadline = workflow.maintenance.drain_deadline_ms.map_or(Duration::ZERO, Duration::from_millis);
    workflow.wait_timeout().max(deadline + Duration::from_secs(60))
}

/// Runs `command` through `node`'s agent, as `drover exec` does, as `user`
/// (`None`: the agent's exec user).
async fn run_on_agent(
    server: &Server,
    node: &Node,
    command: &str,
    user: Option<&str>,
    timeout: Duration,
) -> AgentOutcome {
    let result = match server.exec_on_node(node, command, user, timeout, STEP_OUTPUT_MAX).await {
        Ok(Some(result)) => result,
        Ok(None) => return Err(AgentFailure { lost: true, text: format!("no answer from {}'s agent", node.name) }),
        Err(error) => return Err(AgentFailure { lost: false, text: error.to_string() }),
    };
    let mut text = format!("{}{}{}", result.stdout, result.stderr, result.error);
    truncate(&mut text);
    match result.status {
        ExecStatus::Success => Ok(text),
        ExecStatus::Failure if result.exit_code.is_some() => {
            let code = result.exit_code.unwrap_or_default();
            Err(AgentFailure { lost: false, text: format!("exit code {code}\n{text}") })
        }
        ExecStatus::Denied => Err(AgentFailure { lost: false, text: format!("denied\n{text}") }),
        status => Err(AgentFailure { lost: true, text: format!("{}\n{text}", status.label()) }),
    }
}

/// Appends a command's output to a step's, kept to [`STEP_OUTPUT_MAX`].
fn append_output(output: &mut String, more: &str) {
    output.push_str(more);
    truncate(output);
}

fn timeout_text(workflow: &Workflow) -> String {
    drover_types::DurationSpec(workflow.wait_timeout()).to_string()
}

/// Cuts an output to [`STEP_OUTPUT_MAX`] bytes at a character boundary.
fn truncate(text: &mut String) {
    keep_first_bytes(text, STEP_OUTPUT_MAX);
}

#[cfg(test)]
mod tests {
    use drover_types::NodeId;

    use super::*;

    fn node(id: &str, status: NodeStatus, modify_index: u64, status_updated_at: i64) -> Node {
        let mut node = drover_types::fixtures::node(id);
        node.status = status;
        node.modify_index = modify_index;
        node.status_updated_at = Timestamp::from_millis(status_updated_at);
        node
    }

    fn waiting(node_id: &str, modify_index: u64, started: i64) -> WorkflowStep {
        let mut step = WorkflowStep::pending("n1");
        step.phase = StepPhase::Waiting;
        step.node_id = Some(NodeId::new(node_id));
        step.node_modify_index = modify_index;
        step.provider_started_at = Some(Timestamp::from_millis(started));
        step
    }

    #[test]
    fn a_node_waits_while_a_job_it_runs_has_as_many_allocations_out_as_its_limits_allow() {
        use crate::leader::test_support::{Cluster, alloc, group, job};
        use drover_types::job::UpdateStrategy;

        let mut cluster = Cluster::new();
        let nodes: Vec<NodeId> = ["a", "b", "c", "d"].iter().map(|name| cluster.node(name)).collect();
        // web: 3 on a, b, c, migrated 2 at a time but updated 1 at a time.
        let mut web = job("web", JobType::Service, vec![group("web", 3, 2)]);
        web.update = Some(UpdateStrategy { max_parallel: 1, ..UpdateStrategy::default() });
        cluster.register(web);
        cluster.place((0..3).map(|index| alloc(&format!("web-{index}"), "web", "web", &nodes[index])).collect(), None);
        let node = |cluster: &Cluster, index: usize| Arc::clone(cluster.state.node(&nodes[index]).unwrap());

        // Nothing out: any node may go, and d (running nothing) always.
        assert_eq!(migration_hold(&cluster.state, &node(&cluster, 0)), None);
        // b drains: web has one out, its update limit; a and c wait, d not.
        cluster.drain(&nodes[1], None, false);
        let reason = migration_hold(&cluster.state, &node(&cluster, 0)).expect("a waits");
        assert!(reason.contains("job web group web: 1 of 3 allocations unhealthy or migrating"), "{reason}");
        assert!(reason.contains("update.max_parallel = 1"), "{reason}");
        assert_eq!(migration_hold(&cluster.state, &node(&cluster, 3)), None);
        // Its replacement runs on d: a may go.
        cluster.place(vec![alloc("web-3", "web", "web", &nodes[3])], None);
        assert_eq!(migration_hold(&cluster.state, &node(&cluster, 0)), None);
    }

    #[test]
    fn a_created_node_must_have_the_labels_asked_for() {
        let mut node = drover_types::fixtures::node("a");
        node.hostgroup = "bi/other".to_owned();
        node.environment = "qa".to_owned();
        node.meta = [("rack".to_owned(), "r1".to_owned())].into();
        let mut asked = drover_types::NodeLabels {
            hostgroup: Some("bi/batch".to_owned()),
            environment: Some("qa".to_owned()),
            owner: Some("alice".to_owned()),
            ..drover_types::NodeLabels::default()
        };
        asked.meta.insert("rack".to_owned(), "r2".to_owned());
        asked.meta.insert("gone".to_owned(), String::new());
        node.owner = String::new();
        assert_eq!(
            label_mismatches(&asked, &node),
            [
                "hostgroup \"bi/batch\" asked for, \"bi/other\" registered",
                "owner \"alice\" asked for, nothing registered",
                "meta rack \"r2\" asked for, \"r1\" registered",
            ]
        );
        node.hostgroup = "bi/batch".to_owned();
        node.owner = "alice".to_owned();
        node.meta.insert("rack".to_owned(), "r2".to_owned());
        assert!(label_mismatches(&asked, &node).is_empty());
        // Nothing asked for: nothing to compare.
        assert!(label_mismatches(&drover_types::NodeLabels::default(), &node).is_empty());
    }

    #[test]
    fn a_rebooted_node_is_back_once_ready_and_registered_since_the_command() {
        let step = waiting("a", 10, 100);
        // Unchanged since the command started: not back yet.
        assert!(!has_come_back(MachineOperation::Reboot, &step, &node("a", NodeStatus::Ready, 10, 50)));
        // Down, then registered again.
        assert!(!has_come_back(MachineOperation::Reboot, &step, &node("a", NodeStatus::Down, 11, 150)));
        assert!(has_come_back(MachineOperation::Reboot, &step, &node("a", NodeStatus::Ready, 12, 200)));
        // A rebuilt machine's fresh agent took the name.
        assert!(has_come_back(MachineOperation::Rebuild, &step, &node("b", NodeStatus::Ready, 5, 50)));
        // A new machine: ready is enough.
        assert!(has_come_back(
            MachineOperation::Create,
            &WorkflowStep::pending("n1"),
            &node("c", NodeStatus::Ready, 1, 1)
        ));
    }
}
