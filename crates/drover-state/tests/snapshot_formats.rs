//! Every persisted format stays readable (docs/dev/style.md, convention 9): a
//! committed sample of each snapshot format version is decoded and checked.
//!
//! To add a version: write the new sample with `DROVER_WRITE_SAMPLES=1 cargo
//! test -p drover-state --test snapshot_formats` *before* changing the
//! current format, commit it, and keep the old file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use drover_state::{Command, State};
use drover_types::NodeRegistration;
use drover_types::{EvalId, EvalTrigger, Evaluation, JobId, NodeId, NodeLabels, Resources, Timestamp};

fn sample_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/formats").join(name)
}

/// The state the samples hold: a node and a job with its evaluation.
fn sample_state() -> State {
    let mut state = State::new();
    let registration = NodeRegistration {
        id: NodeId::new("node-1"),
        name: "batch07".into(),
        labels: NodeLabels { hostgroup: Some("bi/batch/gridworker".into()), ..Default::default() },
        attributes: BTreeMap::from([("kernel.name".to_owned(), "linux".to_owned())]),
        resources: Resources { cpu_mhz: 4000, memory_mb: 8192 },
        agent_version: "0.1.0".into(),
    };
    state.apply(
        1,
        &Command::RegisterNode { registration, evals: vec![], now: Timestamp::from_millis(1_700_000_000_000) },
    );
    let job: drover_types::Job = serde_json::from_str(include_str!("formats/job.json")).expect("sample job");
    let eval = Evaluation::new(
        EvalId::new("eval-1"),
        JobId::new("hello"),
        50,
        EvalTrigger::JobRegister,
        Timestamp::from_millis(1_700_000_000_000),
    );
    state.apply(2, &Command::RegisterJob { job, eval, now: Timestamp::from_millis(1_700_000_000_000) });
    state
}

#[test]
fn snapshot_format_version_1_still_reads() {
    let path = sample_path("snapshot-v1.bin");
    if std::env::var_os("DROVER_WRITE_SAMPLES").is_some() {
        std::fs::write(&path, drover_state::snapshot::encode_state(&sample_state()).unwrap()).unwrap();
    }
    let bytes = std::fs::read(&path).expect("the committed version-1 sample");
    let state = drover_state::snapshot::decode_state(&bytes).expect("version 1 decodes");
    assert_eq!(state.last_index(), 2);
    let node = state.node(&NodeId::new("node-1")).expect("the sample's node");
    assert_eq!(node.name, "batch07");
    assert_eq!(node.hostgroup, "bi/batch/gridworker");
    let job = state.job(&JobId::new("hello")).expect("the sample's job");
    assert_eq!(job.groups[0].tasks[0].config.command, "/bin/sh");
    assert_eq!(state.evals_for_job(&JobId::new("hello")).count(), 1);
    assert_eq!(state.open_evals().count(), 1);
}
