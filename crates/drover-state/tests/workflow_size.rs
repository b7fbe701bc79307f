//! How big a machine workflow of 10,000 node steps is in the replicated
//! state (issue 19: "stays under 50 MB"): a rolling `maintain` (drain,
//! `--run`, `--reboot-command`, `--verify`) whose every command prints
//! more than the runner keeps, applied step by step through `State::apply`
//! as the leader's runner proposes it (`leader/workflows.rs` in
//! drover-server). Measures the workflow in a snapshot, the Raft entries
//! the run appends and an estimate of its size in memory; asserts the
//! bound on the snapshot. The figures are in docs/benchmarks.md ("Machine
//! workflows"); print them with
//! `cargo test -p drover-state --test workflow_size -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use drover_state::{Command, CommandResponse, State, codec, snapshot};
use drover_types::workflow::{
    MachineOperation, Maintenance, MaintenanceReboot, STEP_OUTPUT_MAX, StepPhase, Workflow, WorkflowOp, WorkflowStatus,
    WorkflowStep, keep_first_bytes,
};
use drover_types::{NodeId, NodeLabels, Timestamp};

const NODES: usize = 10_000;
const BOUND_BYTES: usize = 50_000_000;

/// A workflow over `batch00001`… as `drover node maintain` starts it.
fn maintain_workflow() -> Workflow {
    Workflow {
        id: "3f9a0c1e".to_owned(),
        operation: MachineOperation::Maintain,
        provider: None,
        labels: NodeLabels::default(),
        rate_per_minute: None,
        parallel: 50,
        max_failures: NODES as u32,
        max_failures_percent: None,
        drain: true,
        wait_timeout_ms: 900_000,
        maintenance: Maintenance {
            run: Some("apt-get -y dist-upgrade && echo upgraded {{node.name}}".to_owned()),
            reboot: MaintenanceReboot::Command("systemctl reboot".to_owned()),
            verify: Some("systemctl is-system-running --wait".to_owned()),
            user: Some("root".to_owned()),
            drain_deadline_ms: Some(600_000),
        },
        paused_by: None,
        by: "alice@ops".to_owned(),
        created_at: Timestamp::from_millis(1_765_000_000_000),
        status: WorkflowStatus::Running,
        finished_at: None,
        reason: String::new(),
        steps: (1..=NODES).map(|n| WorkflowStep::pending(&format!("batch{n:05}"))).collect(),
    }
}

/// What a command through an agent prints: more than is kept.
fn command_output(node: &str, what: &str) -> String {
    let line = format!("{node}: {what}: Unpacking linux-image-6.1.0-28-amd64 (6.1.119-1) over (6.1.115-1) ...\n");
    line.repeat(STEP_OUTPUT_MAX / line.len() + 2)
}

/// The leader's `append_output`: appended, then cut to [`STEP_OUTPUT_MAX`].
fn append_output(output: &mut String, more: &str) {
    output.push_str(more);
    keep_first_bytes(output, STEP_OUTPUT_MAX);
}

/// Sizes a run produced.
#[derive(Default)]
struct Run {
    entries: usize,
    entry_bytes: usize,
    largest_entry: usize,
}

impl Run {
    fn propose(&mut self, state: &mut State, op: WorkflowOp) {
        let command = Command::Workflow { op };
        let bytes = codec::encode(&command).unwrap().len();
        self.entries += 1;
        self.entry_bytes += bytes;
        self.largest_entry = self.largest_entry.max(bytes);
        let index = self.entries as u64;
        assert_eq!(state.apply(index, &command), CommandResponse::Applied { index });
    }

    /// The runner's next proposal for step `position`: the step as the
    /// state has it, changed by `change`.
    fn update(&mut self, state: &mut State, position: usize, at: i64, change: impl FnOnce(&mut WorkflowStep)) {
        let workflow = state.workflow("3f9a0c1e").unwrap();
        let mut step = workflow.steps[position].clone();
        change(&mut step);
        let op = WorkflowOp::UpdateStep { id: workflow.id.clone(), position, step, now: Timestamp::from_millis(at) };
        self.propose(state, op);
    }
}

/// Heap and inline bytes of a workflow in memory (strings at capacity).
fn in_memory_bytes(workflow: &Workflow) -> usize {
    let steps: usize = workflow
        .steps
        .iter()
        .map(|step| {
            step.node.capacity()
                + step.command.capacity()
                + step.output.capacity()
                + step.error.capacity()
                + step.node_id.as_ref().map_or(0, |id| id.as_str().len())
        })
        .sum();
    std::mem::size_of::<Workflow>() + workflow.steps.capacity() * std::mem::size_of::<WorkflowStep>() + steps
}

#[test]
fn a_maintain_workflow_of_10000_steps_stays_under_50_mb_of_replicated_state() {
    let mut state = State::new();
    let mut run = Run::default();
    let workflow = maintain_workflow();
    let kept = workflow.step_output_max();
    run.propose(&mut state, WorkflowOp::Start { workflow: Box::new(workflow) });
    let start_entry = run.entry_bytes;

    for position in 0..NODES {
        let at = 1_765_000_000_000 + position as i64 * 1_000;
        run.update(&mut state, position, at, |step| {
            step.phase = StepPhase::Draining;
            step.started_at = Some(Timestamp::from_millis(at));
            step.node_id = Some(NodeId::new(format!("6f1c2a9e-8b3d-4e5f-a1b2-{position:012}")));
        });
        run.update(&mut state, position, at + 1, |step| {
            step.phase = StepPhase::Running;
            step.command = format!("apt-get -y dist-upgrade && echo upgraded {}", step.node);
        });
        run.update(&mut state, position, at + 2, |step| {
            let output = command_output(&step.node, "--run");
            append_output(&mut step.output, &output);
            step.phase = StepPhase::Rebooting;
            step.command = "systemctl reboot".to_owned();
            step.provider_started_at = Some(Timestamp::from_millis(at + 2));
            step.node_modify_index = 42 + position as u64;
        });
        run.update(&mut state, position, at + 3, |step| {
            let output = command_output(&step.node, "reboot");
            append_output(&mut step.output, &output);
            step.phase = StepPhase::Waiting;
        });
        run.update(&mut state, position, at + 4, |step| {
            step.phase = StepPhase::Verifying;
            step.command = "systemctl is-system-running --wait".to_owned();
        });
        run.update(&mut state, position, at + 5, |step| {
            let output = command_output(&step.node, "--verify");
            append_output(&mut step.output, &output);
            step.phase = StepPhase::Done;
            step.finished_at = Some(Timestamp::from_millis(at + 5));
        });
    }

    let workflow = state.workflow("3f9a0c1e").unwrap();
    assert_eq!(workflow.status, WorkflowStatus::Succeeded);
    assert!(workflow.steps.iter().all(|step| step.output.len() == kept), "every step keeps {kept} bytes of output");
    let in_memory = in_memory_bytes(workflow);
    let alone = codec::encode(&**workflow).unwrap().len();
    let snapshot = snapshot::encode_state(&state).unwrap();
    let restored = snapshot::decode_state(&snapshot).unwrap();
    assert_eq!(restored.workflow("3f9a0c1e").unwrap().steps.len(), NODES);
    // What it would take if every step kept STEP_OUTPUT_MAX bytes.
    let mut uncut = Workflow::clone(workflow);
    for step in &mut uncut.steps {
        step.output = command_output(&step.node, "--run");
        keep_first_bytes(&mut step.output, STEP_OUTPUT_MAX);
    }
    let uncut = codec::encode(&uncut).unwrap().len();
    let all_failed = all_failed_encoded_bytes();

    println!("machine workflow: maintain over {NODES} nodes, every command printing more than is kept");
    println!("  output kept per step:       {kept} bytes (STEP_OUTPUT_MAX {STEP_OUTPUT_MAX})");
    println!("  workflow, encoded:          {alone} bytes");
    println!("  snapshot (whole state):     {} bytes", snapshot.len());
    println!("  every step failed, encoded: {all_failed} bytes (output and error kept)");
    println!("  were {STEP_OUTPUT_MAX} bytes kept per step: {uncut} bytes");
    println!("  in memory (estimate):       {in_memory} bytes");
    println!("  raft entries appended:      {} ({start_entry} bytes the start)", run.entries);
    println!("  raft entry bytes, total:    {} bytes", run.entry_bytes);
    println!("  largest raft entry:         {} bytes", run.largest_entry);
    assert!(
        snapshot.len() < BOUND_BYTES,
        "a workflow of {NODES} steps takes {} bytes in a snapshot, more than the {BOUND_BYTES} issue 19 allows",
        snapshot.len()
    );
    assert!(all_failed < BOUND_BYTES, "{NODES} failed steps take {all_failed} bytes, more than {BOUND_BYTES}");
}

/// The worst case: every step failed with more output and error than is
/// kept (the runner puts an agent command's failure in both).
fn all_failed_encoded_bytes() -> usize {
    let mut workflow = maintain_workflow();
    for position in 0..NODES {
        let mut step = workflow.steps[position].clone();
        step.phase = StepPhase::Failed;
        step.node_id = Some(NodeId::new(format!("6f1c2a9e-8b3d-4e5f-a1b2-{position:012}")));
        step.command = format!("apt-get -y dist-upgrade && echo upgraded {}", step.node);
        step.output = command_output(&step.node, "--run");
        keep_first_bytes(&mut step.output, STEP_OUTPUT_MAX);
        step.error = format!("the --run command failed on {}: exit code 100\n{}", step.node, step.output);
        step.started_at = Some(Timestamp::from_millis(1));
        step.finished_at = Some(Timestamp::from_millis(2));
        assert!(workflow.update_step(position, step, Timestamp::from_millis(2)));
    }
    assert_eq!(workflow.status, WorkflowStatus::Failed);
    codec::encode(&workflow).unwrap().len()
}
