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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::api::{NodePurgeRequest, NodeRetireRequest};
use drover_state::{Command, State};
use drover_types::acl::{AuditEvent, AuditOutcome};
use drover_types::workflow::{
    MachineOperation, STEP_OUTPUT_MAX, StepPhase, Workflow, WorkflowOp, WorkflowStatus, WorkflowStep,
};
use drover_types::{Node, NodeEligibility, NodeStatus, Timestamp};
use tokio_util::sync::CancellationToken;

use super::{Wakes, on_change_or_tick};
use crate::controls::DrainRequest;
use crate::server::Server;

/// How often steps are looked at when nothing changes (rate caps and
/// timeouts are honoured this closely).
const TICK: Duration = Duration::from_millis(250);

/// A step: its workflow's id and its position.
type StepKey = (String, usize);

pub(super) async fn run(server: Server, token: CancellationToken) {
    let runner = Runner { server: server.clone(), executing: Arc::new(Mutex::new(HashSet::new())) };
    let wakes = Wakes::every(TICK).and_on_change(&server);
    on_change_or_tick(token, wakes, async move |_| runner.step().await).await;
}

struct Runner {
    server: Server,
    /// Steps whose provider command this leader is running.
    executing: Arc<Mutex<HashSet<StepKey>>>,
}

impl Runner {
    async fn step(&self) {
        let state = self.server.state();
        let running: Vec<Arc<Workflow>> =
            state.workflows().filter(|workflow| workflow.status == WorkflowStatus::Running).cloned().collect();
        for workflow in running {
            for (position, step) in workflow.steps.iter().enumerate() {
                if step.phase.is_in_flight() {
                    self.watch(&state, &workflow, position, step).await;
                }
            }
            let now = Timestamp::now();
            for position in workflow.startable(now) {
                self.begin(&state, &workflow, position, now).await;
            }
        }
    }

    fn is_executing(&self, key: &StepKey) -> bool {
        self.executing.lock().map(|executing| executing.contains(key)).unwrap_or(false)
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
                Some(node) if node.drain.is_none() => self.run_provider(state, workflow, position, step, &node).await,
                Some(_) if timed_out(step.started_at) => {
                    let error = format!("the drain did not finish within {}", timeout_text(workflow));
                    self.fail(workflow, position, step, error).await;
                }
                Some(_) => {}
            },
            StepPhase::Provider => {
                if !self.is_executing(&(workflow.id.clone(), position)) {
                    let error = "the leader changed while the provider command ran; whether it ran is unknown, so it is not repeated".to_owned();
                    self.fail(workflow, position, step, error).await;
                }
            }
            StepPhase::Waiting => {
                if let Some(node) = node.filter(|node| has_come_back(workflow.operation, step, node)) {
                    self.finish(workflow, position, step, &node).await;
                } else if timed_out(step.provider_started_at) {
                    let error = format!(
                        "the agent of {} did not come back ready within {} of the provider command",
                        step.node,
                        timeout_text(workflow)
                    );
                    self.fail(workflow, position, step, error).await;
                }
            }
            StepPhase::Purging => self.purge(workflow, position, step, node.as_deref()).await,
            StepPhase::Pending | StepPhase::Done | StepPhase::Failed | StepPhase::Cancelled => {}
        }
    }

    /// Starts a pending step: drains (rebuild, delete) or runs the provider
    /// command at once (create, reboot, no drain).
    async fn begin(&self, state: &State, workflow: &Workflow, position: usize, now: Timestamp) {
        let Some(pending) = workflow.steps.get(position) else { return };
        let mut step = pending.clone();
        step.started_at = Some(now);
        let node = state.node_by_name(&step.node).cloned();
        if workflow.operation == MachineOperation::Create {
            if node.is_some() {
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
            let request =
                DrainRequest { reason: Some(format!("{by}: {}", workflow.operation)), by, ..DrainRequest::default() };
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
        let rendered = crate::machines::machine_command(
            &doc.site,
            workflow.operation,
            workflow.provider.as_deref(),
            &step.node,
            node,
            &workflow.labels,
        );
        let (command, timeout) = match rendered {
            Ok(rendered) => rendered,
            Err(error) => return self.fail(workflow, position, &step, error).await,
        };
        let key = (workflow.id.clone(), position);
        if let Ok(mut executing) = self.executing.lock() {
            executing.insert(key.clone());
        }
        let now = Timestamp::now();
        step.phase = StepPhase::Provider;
        step.provider_started_at = Some(now);
        step.started_at = step.started_at.or(Some(now));
        step.command = command.clone();
        step.node_modify_index = node.map_or(0, |node| node.modify_index);
        if !self.record(workflow, position, step.clone(), &format!("provider command started: {command}")).await {
            if let Ok(mut executing) = self.executing.lock() {
                executing.remove(&key);
            }
            return;
        }
        let server = self.server.clone();
        let executing = Arc::clone(&self.executing);
        let workflow = workflow.clone();
        tokio::spawn(async move {
            let outcome = super::actions::shell(&command, timeout).await;
            let runner = Runner { server, executing: Arc::clone(&executing) };
            let mut step = step;
            match outcome {
                Ok(mut output) => {
                    truncate(&mut output);
                    step.output = output;
                    step.phase = if workflow.operation == MachineOperation::Delete {
                        StepPhase::Purging
                    } else {
                        StepPhase::Waiting
                    };
                    runner.record(&workflow, position, step, "provider command succeeded").await;
                }
                Err(mut error) => {
                    truncate(&mut error);
                    let reason = format!("the provider command failed: {error}");
                    runner.fail(&workflow, position, &step, reason).await;
                }
            }
            if let Ok(mut executing) = executing.lock() {
                executing.remove(&key);
            }
        });
    }

    /// A deleted machine's node is forgotten: at once when it was retired
    /// (drained), else once its agent is seen down.
    async fn purge(&self, workflow: &Workflow, position: usize, step: &WorkflowStep, node: Option<&Node>) {
        let mut done = step.clone();
        if let Some(node) = node.filter(|node| Some(&node.id) == step.node_id.as_ref()) {
            // Not retired (`--no-drain`): forgotten once its agent is seen
            // down.
            if node.is_up() && node.retired.is_none() {
                let waited = step.provider_started_at.map_or(Duration::ZERO, |started| Timestamp::now().since(started));
                if waited > workflow.wait_timeout() {
                    let error = format!("the deleted node stayed up for {}", timeout_text(workflow));
                    self.fail(workflow, position, step, error).await;
                }
                return;
            }
            let request = NodePurgeRequest { nodes: vec![node.id.to_string()], ..NodePurgeRequest::default() };
            if let Err(error) = self.server.purge_nodes(&request).await {
                return self.fail(workflow, position, step, format!("cannot purge the node: {error}")).await;
            }
        }
        done.phase = StepPhase::Done;
        done.finished_at = Some(Timestamp::now());
        self.record(workflow, position, done, "node purged; done").await;
    }

    /// The agent is back: a drained node is made eligible again.
    async fn finish(&self, workflow: &Workflow, position: usize, step: &WorkflowStep, node: &Node) {
        if workflow.drain && node.eligibility == NodeEligibility::Ineligible && node.drain.is_none() {
            let by = format!("workflow {}", workflow.id);
            if let Err(error) = self.server.set_eligibility(node.id.as_str(), true, &by).await {
                return self.fail(workflow, position, step, format!("cannot make it eligible again: {error}")).await;
            }
        }
        let mut done = step.clone();
        done.phase = StepPhase::Done;
        done.finished_at = Some(Timestamp::now());
        self.record(workflow, position, done, &format!("agent back ready as node id {}; done", node.id)).await;
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
    async fn record(&self, workflow: &Workflow, position: usize, step: WorkflowStep, what: &str) -> bool {
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
        });
        recorded.is_ok()
    }
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

fn timeout_text(workflow: &Workflow) -> String {
    drover_types::DurationSpec(workflow.wait_timeout()).to_string()
}

/// Cuts an output to [`STEP_OUTPUT_MAX`] bytes at a character boundary.
fn truncate(text: &mut String) {
    if text.len() > STEP_OUTPUT_MAX {
        let mut end = STEP_OUTPUT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
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
