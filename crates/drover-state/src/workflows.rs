//! The replicated machine workflows (`Command::Workflow`): reads, and the
//! deterministic `apply` of a start, a step update, a pause or resume and
//! a cancel. What a
//! change does to one workflow is `drover_types::workflow`'s; here are the
//! rules across workflows (one workflow per node at a time, a bound on the
//! ended ones kept).

use std::sync::Arc;

use drover_types::CodedError;
use drover_types::workflow::{Workflow, WorkflowOp, WorkflowStatus};

use super::State;

/// Ended workflows kept (the oldest go first when a new one starts).
pub const ENDED_WORKFLOWS_KEPT: usize = 200;

impl State {
    /// Every workflow, by id.
    pub fn workflows(&self) -> impl Iterator<Item = &Arc<Workflow>> {
        self.workflows.values()
    }

    /// One workflow.
    pub fn workflow(&self, id: &str) -> Option<&Arc<Workflow>> {
        self.workflows.get(id)
    }

    /// The running workflow that holds `node`, if any.
    pub fn workflow_holding(&self, node: &str) -> Option<&Arc<Workflow>> {
        self.workflows.values().find(|workflow| workflow.holds(node))
    }

    pub(crate) fn apply_workflow(&mut self, op: &WorkflowOp) -> Result<(), CodedError> {
        match op {
            WorkflowOp::Start { workflow } => {
                if self.workflows.contains_key(&workflow.id) {
                    return Err(CodedError::conflict(format!("workflow {} exists already", workflow.id)));
                }
                for step in &workflow.steps {
                    if let Some(holder) = self.workflow_holding(&step.node) {
                        return Err(CodedError::conflict(format!(
                            "node {} is in running workflow {} ({}); wait for it or `drover workflow cancel {}`",
                            step.node, holder.id, holder.operation, holder.id
                        )));
                    }
                }
                self.prune_ended_workflows();
                self.workflows.insert(workflow.id.clone(), Arc::new(Workflow::clone(workflow)));
                Ok(())
            }
            WorkflowOp::UpdateStep { id, position, step, now } => {
                let workflow = self.workflows.get_mut(id).ok_or_else(|| CodedError::not_found("workflow", id))?;
                // In place unless a published state shares it: a workflow of
                // 10,000 steps is not copied for each of its step updates.
                if !Arc::make_mut(workflow).update_step(*position, step.clone(), *now) {
                    return Err(CodedError::conflict(format!(
                        "step {position} of workflow {id} has ended or does not exist; not changed"
                    )));
                }
                Ok(())
            }
            WorkflowOp::Pause { id, paused, by } => {
                let workflow = self.workflows.get_mut(id).ok_or_else(|| CodedError::not_found("workflow", id))?;
                let mut changed = Workflow::clone(workflow);
                changed.set_paused(paused.then(|| by.clone())).map_err(CodedError::conflict)?;
                *workflow = Arc::new(changed);
                Ok(())
            }
            WorkflowOp::Cancel { id, by, now } => {
                let workflow = self.workflows.get_mut(id).ok_or_else(|| CodedError::not_found("workflow", id))?;
                if workflow.status != WorkflowStatus::Running {
                    return Err(CodedError::conflict(format!(
                        "workflow {id} has ended ({}); nothing to cancel",
                        workflow.status.as_str()
                    )));
                }
                let mut changed = Workflow::clone(workflow);
                changed.cancel(by, *now);
                *workflow = Arc::new(changed);
                Ok(())
            }
        }
    }

    fn prune_ended_workflows(&mut self) {
        let mut ended: Vec<(drover_types::Timestamp, String)> = self
            .workflows
            .values()
            .filter(|workflow| workflow.status != WorkflowStatus::Running)
            .map(|workflow| (workflow.finished_at.unwrap_or(workflow.created_at), workflow.id.clone()))
            .collect();
        if ended.len() < ENDED_WORKFLOWS_KEPT {
            return;
        }
        ended.sort();
        for (_, id) in ended.iter().take(ended.len() + 1 - ENDED_WORKFLOWS_KEPT) {
            self.workflows.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use drover_types::workflow::{MachineOperation, StepPhase, WorkflowStep};
    use drover_types::{NodeLabels, Timestamp};

    use super::*;
    use crate::{Command, CommandResponse};

    fn workflow(id: &str, nodes: &[&str]) -> Workflow {
        Workflow {
            id: id.to_owned(),
            operation: MachineOperation::Reboot,
            provider: None,
            labels: NodeLabels::default(),
            rate_per_minute: None,
            parallel: 1,
            max_failures: 0,
            max_failures_percent: None,
            drain: false,
            wait_timeout_ms: 1_000,
            maintenance: drover_types::workflow::Maintenance::default(),
            paused_by: None,
            by: "alice".to_owned(),
            created_at: Timestamp::from_millis(1),
            status: WorkflowStatus::Running,
            finished_at: None,
            reason: String::new(),
            steps: nodes.iter().map(|node| WorkflowStep::pending(node)).collect(),
        }
    }

    fn apply(state: &mut State, index: u64, op: WorkflowOp) -> CommandResponse {
        // Through the Raft codec, as a follower reads it.
        let command = Command::Workflow { op };
        let bytes = crate::codec::encode(&command).unwrap();
        let decoded: Command = crate::codec::decode(&bytes).unwrap();
        state.apply(index, &decoded)
    }

    #[test]
    fn a_node_is_in_one_running_workflow_at_a_time() {
        let mut state = State::new();
        let started = apply(&mut state, 1, WorkflowOp::Start { workflow: Box::new(workflow("a", &["n1", "n2"])) });
        assert_eq!(started, CommandResponse::Applied { index: 1 });
        let refused = apply(&mut state, 2, WorkflowOp::Start { workflow: Box::new(workflow("b", &["n2"])) });
        let CommandResponse::Rejected { error, .. } = refused else { panic!("{refused:?}") };
        assert!(error.message.contains("node n2 is in running workflow a (reboot)"), "{}", error.message);

        let cancel = WorkflowOp::Cancel { id: "a".to_owned(), by: "bob".to_owned(), now: Timestamp::from_millis(3) };
        assert_eq!(apply(&mut state, 3, cancel), CommandResponse::Applied { index: 3 });
        assert_eq!(state.workflow("a").unwrap().status, WorkflowStatus::Cancelled);
        let started = apply(&mut state, 4, WorkflowOp::Start { workflow: Box::new(workflow("b", &["n2"])) });
        assert_eq!(started, CommandResponse::Applied { index: 4 });
    }

    #[test]
    fn a_pause_is_replicated_and_survives_a_snapshot() {
        let mut state = State::new();
        apply(&mut state, 1, WorkflowOp::Start { workflow: Box::new(workflow("a", &["n1", "n2"])) });
        let pause = WorkflowOp::Pause { id: "a".to_owned(), paused: true, by: "bob".to_owned() };
        assert_eq!(apply(&mut state, 2, pause.clone()), CommandResponse::Applied { index: 2 });
        let again = apply(&mut state, 3, pause);
        let CommandResponse::Rejected { error, .. } = again else { panic!("{again:?}") };
        assert!(error.message.contains("paused already (by bob)"), "{}", error.message);
        let bytes = crate::snapshot::encode_state(&state).unwrap();
        let restored = crate::snapshot::decode_state(&bytes).unwrap();
        let paused = restored.workflow("a").unwrap();
        assert_eq!(paused.paused_by.as_deref(), Some("bob"));
        assert!(paused.startable(Timestamp::from_millis(5)).is_empty());
        let resume = WorkflowOp::Pause { id: "a".to_owned(), paused: false, by: "bob".to_owned() };
        assert_eq!(apply(&mut state, 4, resume), CommandResponse::Applied { index: 4 });
        assert_eq!(state.workflow("a").unwrap().startable(Timestamp::from_millis(6)), vec![0]);
    }

    #[test]
    fn a_step_update_survives_a_snapshot() {
        let mut state = State::new();
        apply(&mut state, 1, WorkflowOp::Start { workflow: Box::new(workflow("a", &["n1"])) });
        let mut step = WorkflowStep::pending("n1");
        step.phase = StepPhase::Provider;
        step.started_at = Some(Timestamp::from_millis(2));
        step.command = "reboot n1".to_owned();
        let update = WorkflowOp::UpdateStep { id: "a".to_owned(), position: 0, step, now: Timestamp::from_millis(2) };
        assert_eq!(apply(&mut state, 2, update), CommandResponse::Applied { index: 2 });
        let bytes = crate::snapshot::encode_state(&state).unwrap();
        let restored = crate::snapshot::decode_state(&bytes).unwrap();
        let step = &restored.workflow("a").unwrap().steps[0];
        assert_eq!((step.phase, step.command.as_str()), (StepPhase::Provider, "reboot n1"));
    }
}
