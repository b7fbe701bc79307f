//! Unit tests of `State::apply`.

use std::collections::BTreeMap;

use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, EvalId, EvalStatus, EvalTrigger, Evaluation, Job,
    JobId, JobStatus, NodeId, NodeLabels, NodeStatus, Plan, PlanStop, Resources, Timestamp,
};

use super::*;
use crate::command::{Command, CommandResponse};
use drover_types::{ClientAllocUpdate, NodeRegistration, fixtures};

/// The service job `id`, without groups.
pub(crate) fn test_job(id: &str) -> Job {
    fixtures::service_job(id, 1).with_groups(Vec::new())
}

fn eval(id: &str, job: &str) -> Evaluation {
    Evaluation::new(EvalId::new(id), JobId::new(job), 50, EvalTrigger::JobRegister, Timestamp::from_millis(1))
}

/// The agent of node `id`, named `name-{id}`, in host group `bi/batch`.
/// Spelled out rather than built from `fixtures`: it is also the decoded
/// value of the format sample [`REGISTER_NODE_ENTRY_V1`], field for field.
fn registration(id: &str) -> NodeRegistration {
    NodeRegistration {
        id: NodeId::new(id),
        name: format!("name-{id}"),
        labels: NodeLabels { hostgroup: Some("bi/batch".into()), ..Default::default() },
        attributes: BTreeMap::new(),
        resources: Resources { cpu_mhz: 1000, memory_mb: 1000 },
        agent_version: "test".into(),
    }
}

/// A pending allocation of `job`'s group `web` on `node`, holding 100 MHz
/// and 200 MiB.
fn alloc(id: &str, job: &str, node: &str) -> Allocation {
    let alloc = fixtures::alloc(id, job, "web", &NodeId::new(node));
    Allocation { resources: Resources { cpu_mhz: 100, memory_mb: 200 }, ..alloc }
}

fn register(state: &mut State, index: u64, job: Job, eval_id: &str) -> CommandResponse {
    let job_id = job.id.to_string();
    state.apply(index, &Command::RegisterJob { job, eval: eval(eval_id, &job_id), now: Timestamp::from_millis(5) })
}

#[test]
fn registering_the_same_job_twice_keeps_its_version() {
    let mut state = State::new();
    let first = register(&mut state, 1, test_job("web"), "e1");
    assert!(matches!(first, CommandResponse::JobRegistered { version: 0, changed: true, .. }));
    let second = register(&mut state, 2, test_job("web"), "e2");
    assert!(matches!(second, CommandResponse::JobRegistered { version: 0, changed: false, .. }));
    let mut changed = test_job("web");
    changed.priority = 70;
    let third = register(&mut state, 3, changed, "e3");
    assert!(matches!(third, CommandResponse::JobRegistered { version: 1, changed: true, .. }));
    let job = state.job(&JobId::new("web")).unwrap();
    assert_eq!((job.version, job.create_index, job.job_modify_index, job.modify_index), (1, 1, 3, 3));
    assert_eq!(state.job_versions(&JobId::new("web")).count(), 2);
    assert_eq!(state.evals_for_job(&JobId::new("web")).count(), 3);
}

/// A job sent through the API may carry any server-managed values (a
/// revert sends an old version as stored): the state machine decides them
/// all, except a periodic launch's parent.
#[test]
fn registering_replaces_the_server_managed_fields_the_submitter_sent() {
    let mut state = State::new();
    let mut sent = test_job("web");
    sent.set_server_managed(drover_types::ServerManaged {
        version: 41,
        stop: true,
        status: JobStatus::Dead,
        parent_id: Some(JobId::new("nightly")),
        submit_time: Timestamp::from_millis(1),
        stable: true,
        create_index: 17,
        modify_index: 18,
        job_modify_index: 19,
    });
    register(&mut state, 3, sent.clone(), "e1");
    let registered = state.job(&JobId::new("web")).unwrap().server_managed();
    assert_eq!(
        registered,
        drover_types::ServerManaged {
            version: 0,
            stop: false,
            status: JobStatus::Pending,
            parent_id: Some(JobId::new("nightly")),
            submit_time: Timestamp::from_millis(5),
            stable: false,
            create_index: 3,
            modify_index: 3,
            job_modify_index: 3,
        }
    );

    sent.priority = 70;
    register(&mut state, 4, sent, "e2");
    let updated = state.job(&JobId::new("web")).unwrap().server_managed();
    assert_eq!(
        (updated.version, updated.stop, updated.stable, updated.create_index, updated.modify_index),
        (1, false, false, 3, 4)
    );
    assert_eq!(updated.job_modify_index, 4);
}

#[test]
fn deregistering_bumps_the_version_and_purging_removes_the_job() {
    let mut state = State::new();
    register(&mut state, 1, test_job("web"), "e1");
    let stop = Command::DeregisterJob {
        job_id: JobId::new("web"),
        purge: false,
        eval: eval("e2", "web"),
        now: Timestamp::from_millis(9),
    };
    assert_eq!(state.apply(2, &stop), CommandResponse::Applied { index: 2 });
    let job = state.job(&JobId::new("web")).unwrap();
    assert!(job.stop);
    assert_eq!(job.version, 1);
    assert_eq!(job.status, JobStatus::Dead);
    let purge = Command::DeregisterJob {
        job_id: JobId::new("web"),
        purge: true,
        eval: eval("e3", "web"),
        now: Timestamp::from_millis(9),
    };
    state.apply(3, &purge);
    assert!(state.job(&JobId::new("web")).is_none());
    let missing = state.apply(4, &purge);
    assert!(
        matches!(missing, CommandResponse::Rejected { error, .. } if error.code == drover_types::ErrorCode::NotFound)
    );
}

/// The heartbeat tracker marks a node down from what it saw; when the
/// node's agent registered again before that commits, the node stays ready.
#[test]
fn a_status_change_decided_before_a_registration_changes_nothing() {
    let mut state = State::new();
    let register = |now| Command::RegisterNode { registration: registration("n1"), evals: vec![], now };
    let down = |seen| Command::UpdateNodeStatus {
        node_id: NodeId::new("n1"),
        status: NodeStatus::Down,
        description: "no heartbeat for more than 8s".into(),
        evals: vec![],
        now: Timestamp::from_millis(3),
        seen_index: Some(seen),
    };
    let node = |state: &State| Node::clone(state.node(&NodeId::new("n1")).unwrap());
    state.apply(1, &register(Timestamp::from_millis(1)));
    let seen = node(&state).modify_index;
    // The agent registers again (reconnected) before the tracker's command commits.
    state.apply(2, &register(Timestamp::from_millis(2)));
    state.apply(3, &down(seen));
    assert_eq!(node(&state).status, NodeStatus::Ready);
    // Decided on the latest view, it applies.
    state.apply(4, &down(node(&state).modify_index));
    assert_eq!(node(&state).status, NodeStatus::Down);
}

#[test]
fn node_reregistration_keeps_operator_overrides() {
    let mut state = State::new();
    let command =
        Command::RegisterNode { registration: registration("n1"), evals: vec![], now: Timestamp::from_millis(1) };
    state.apply(1, &command);
    assert_eq!(state.node(&NodeId::new("n1")).unwrap().hostgroup, "bi/batch");
    let mut overridden = Node::clone(state.node(&NodeId::new("n1")).unwrap());
    overridden.overrides.hostgroup = Some("bi/batch/gridworker".into());
    state.put_node(2, overridden);
    state.apply(
        3,
        &Command::UpdateNodeStatus {
            node_id: NodeId::new("n1"),
            status: NodeStatus::Down,
            description: "missed heartbeats".into(),
            evals: vec![],
            now: Timestamp::from_millis(3),
            seen_index: None,
        },
    );
    assert_eq!(state.node(&NodeId::new("n1")).unwrap().status, NodeStatus::Down);
    state.apply(4, &command);
    let node = state.node(&NodeId::new("n1")).unwrap();
    assert_eq!(node.hostgroup, "bi/batch/gridworker");
    assert_eq!(node.status, NodeStatus::Ready);
    assert_eq!(node.create_index, 1);
    assert_eq!(node.modify_index, 4);
}

#[test]
fn plans_and_client_updates_keep_node_usage_exact() {
    let mut state = State::new();
    register(&mut state, 1, test_job("web"), "e1");
    let mut done_eval = eval("e1", "web");
    done_eval.status = EvalStatus::Complete;
    let plan = Plan {
        eval_id: EvalId::new("e1"),
        job_id: JobId::new("web"),
        place: vec![alloc("a1", "web", "n1"), alloc("a2", "web", "n1")],
        ..Default::default()
    };
    state.apply(
        2,
        &Command::ApplyPlan {
            plan: Box::new(plan),
            eval: done_eval.clone(),
            blocked_eval: None,
            now: Timestamp::from_millis(2),
        },
    );
    assert_eq!(state.node_usage(&NodeId::new("n1")), Resources { cpu_mhz: 200, memory_mb: 400 });
    assert_eq!(state.node_alloc_index(&NodeId::new("n1")), 2);
    assert_eq!(state.job(&JobId::new("web")).unwrap().status, JobStatus::Running);
    assert_eq!(state.open_evals().count(), 0);

    // Stopping keeps the resources held until the agent reports the end.
    let stop = Plan {
        eval_id: EvalId::new("e1"),
        job_id: JobId::new("web"),
        stop: vec![PlanStop {
            alloc_id: AllocId::new("a1"),
            node_id: NodeId::new("n1"),
            desired_status: AllocDesiredStatus::Stop,
            description: "scaled down".into(),
            client_status: None,
            follow_up_eval: None,
        }],
        ..Default::default()
    };
    state.apply(
        3,
        &Command::ApplyPlan {
            plan: Box::new(stop),
            eval: done_eval,
            blocked_eval: None,
            now: Timestamp::from_millis(3),
        },
    );
    assert_eq!(state.node_usage(&NodeId::new("n1")).cpu_mhz, 200);
    let update = ClientAllocUpdate {
        alloc_id: AllocId::new("a1"),
        client_status: AllocClientStatus::Complete,
        client_description: "stopped".into(),
        task_states: BTreeMap::new(),
        checks: vec![],
        deployment_health: None,
    };
    state.apply(
        4,
        &Command::UpdateAllocsFromClient { updates: vec![update], evals: vec![], now: Timestamp::from_millis(4) },
    );
    assert_eq!(state.node_usage(&NodeId::new("n1")), Resources { cpu_mhz: 100, memory_mb: 200 });
    assert_eq!(state.alloc(&AllocId::new("a1")).unwrap().modify_index, 4);
}

#[test]
fn prefixes_resolve_uniquely_or_explain() {
    let mut state = State::new();
    register(&mut state, 1, test_job("web"), "e1");
    let plan = Plan {
        eval_id: EvalId::new("e1"),
        job_id: JobId::new("web"),
        place: vec![alloc("abc123", "web", "n1"), alloc("abd456", "web", "n1")],
        ..Default::default()
    };
    state.apply(
        2,
        &Command::ApplyPlan { plan: Box::new(plan), eval: eval("e1", "web"), blocked_eval: None, now: Timestamp::ZERO },
    );
    assert_eq!(state.resolve_alloc("abc").unwrap().id.as_str(), "abc123");
    assert_eq!(state.resolve_alloc("ab").unwrap_err().code, drover_types::ErrorCode::Conflict);
    assert_eq!(state.resolve_alloc("zz").unwrap_err().code, drover_types::ErrorCode::NotFound);
    assert_eq!(state.resolve_alloc("").unwrap_err().code, drover_types::ErrorCode::InvalidInput);
}

#[test]
fn snapshots_round_trip_with_indexes() {
    let mut state = State::new();
    register(&mut state, 1, test_job("web"), "e1");
    state.apply(2, &Command::RegisterNode { registration: registration("n1"), evals: vec![], now: Timestamp::ZERO });
    let plan = Plan {
        eval_id: EvalId::new("e1"),
        job_id: JobId::new("web"),
        place: vec![alloc("a1", "web", "n1")],
        ..Default::default()
    };
    state.apply(
        3,
        &Command::ApplyPlan { plan: Box::new(plan), eval: eval("e1", "web"), blocked_eval: None, now: Timestamp::ZERO },
    );
    let bytes = crate::snapshot::encode_state(&state).unwrap();
    let restored = crate::snapshot::decode_state(&bytes).unwrap();
    assert_eq!(restored.last_index(), 3);
    assert_eq!(restored.table_indexes(), state.table_indexes());
    assert_eq!(restored.node_usage(&NodeId::new("n1")), state.node_usage(&NodeId::new("n1")));
    assert_eq!(restored.allocs_for_job(&JobId::new("web")).count(), 1);
    assert_eq!(restored.allocs_on_node(&NodeId::new("n1")).count(), 1);
    assert_eq!(restored.open_evals().count(), state.open_evals().count());
    assert_eq!(restored.job(&JobId::new("web")), state.job(&JobId::new("web")));
    assert!(crate::snapshot::decode_state(b"garbage").is_err());
}

#[test]
fn a_snapshot_is_encoded_from_the_state_as_from_its_copy() {
    let mut state = State::new();
    register(&mut state, 1, test_job("web"), "e1");
    register(&mut state, 2, test_job("api"), "e2");
    let mut changed = test_job("web");
    changed.priority = 70;
    register(&mut state, 3, changed, "e3");
    state.apply(4, &Command::RegisterNode { registration: registration("n1"), evals: vec![], now: Timestamp::ZERO });
    state.apply(5, &Command::RegisterNode { registration: registration("n2"), evals: vec![], now: Timestamp::ZERO });
    let labels = NodeLabels { hostgroup: Some("bi/web".into()), ..Default::default() };
    state.apply(
        6,
        &Command::UpdateNodeLabels {
            node_ids: vec![NodeId::new("n1")],
            labels,
            by: "test".into(),
            evals: vec![],
            now: Timestamp::from_millis(6),
        },
    );
    let plan = Plan {
        eval_id: EvalId::new("e1"),
        job_id: JobId::new("web"),
        place: vec![alloc("a1", "web", "n1"), alloc("a2", "web", "n2"), alloc("a3", "web", "n2")],
        ..Default::default()
    };
    state.apply(
        7,
        &Command::ApplyPlan { plan: Box::new(plan), eval: eval("e1", "web"), blocked_eval: None, now: Timestamp::ZERO },
    );

    let mut copied = b"DRVSNAP\0".to_vec();
    copied.extend_from_slice(&1u32.to_le_bytes());
    copied.extend(crate::codec::encode(&state.to_snapshot()).unwrap());
    assert_eq!(crate::snapshot::encode_state(&state).unwrap(), copied);
    assert!(state.node_history(&NodeId::new("n1")).count() > 0, "the history is part of what is compared");
}

#[test]
fn label_changes_are_all_or_nothing_and_every_change_is_in_the_history_and_snapshots() {
    let mut state = State::new();
    for (index, id) in [(1, "n1"), (2, "n2")] {
        state.apply(
            index,
            &Command::RegisterNode { registration: registration(id), evals: vec![], now: Timestamp::ZERO },
        );
    }
    let labels = NodeLabels {
        environment: Some("qa".into()),
        meta: [("rack".to_owned(), "r12".to_owned())].into_iter().collect(),
        ..Default::default()
    };
    let update = |node_ids: &[&str]| Command::UpdateNodeLabels {
        node_ids: node_ids.iter().map(|id| NodeId::new(*id)).collect(),
        labels: labels.clone(),
        by: "alice".into(),
        evals: vec![],
        now: Timestamp::from_millis(5),
    };
    // One unknown node: nothing changes anywhere.
    let response = state.apply(3, &update(&["n1", "nope"]));
    assert!(matches!(response, CommandResponse::Rejected { .. }), "{response:?}");
    assert_eq!(state.node(&NodeId::new("n1")).unwrap().environment, "");
    assert_eq!(state.node_history(&NodeId::new("n1")).count(), 0);

    state.apply(4, &update(&["n1", "n2"]));
    let history: Vec<(String, String, String, String)> = state
        .node_history(&NodeId::new("n2"))
        .map(|change| (change.by.clone(), change.field.clone(), change.from.clone(), change.to.clone()))
        .collect();
    assert_eq!(
        history,
        [
            ("alice".into(), "environment".into(), String::new(), "qa".into()),
            ("alice".into(), "meta.rack".into(), String::new(), "r12".into()),
        ]
    );
    // The same change again records nothing.
    state.apply(5, &update(&["n1", "n2"]));
    assert_eq!(state.node_history(&NodeId::new("n2")).count(), 2);

    // An agent restarted with another host group: recorded as the agent's change.
    let mut moved = registration("n1");
    moved.labels.hostgroup = Some("bi/other".into());
    state.apply(6, &Command::RegisterNode { registration: moved, evals: vec![], now: Timestamp::from_millis(6) });
    let last = state.node_history(&NodeId::new("n1")).last().unwrap().clone();
    assert_eq!((last.by.as_str(), last.field.as_str(), last.to.as_str()), ("agent name-n1", "hostgroup", "bi/other"));

    let protection = Protection { reason: "only copy".into(), by: "bob".into(), at: Timestamp::from_millis(7) };
    state.apply(
        7,
        &Command::SetNodeProtection {
            node_id: NodeId::new("n1"),
            protection: Some(protection),
            by: "bob".into(),
            reason: "only copy".into(),
            now: Timestamp::from_millis(7),
        },
    );
    let bytes = crate::snapshot::encode_state(&state).unwrap();
    let restored = crate::snapshot::decode_state(&bytes).unwrap();
    let fields = |state: &State| -> Vec<String> {
        state.node_history(&NodeId::new("n1")).map(|change| format!("{}:{}", change.field, change.to)).collect()
    };
    assert_eq!(fields(&restored), fields(&state));
    assert_eq!(fields(&state).last().map(String::as_str), Some("protected:yes: only copy"));
    assert!(restored.node(&NodeId::new("n1")).unwrap().protected.is_some());
}

#[test]
fn detect_and_react_decisions_are_replicated_and_survive_snapshots() {
    use crate::react::ReactOp;
    use drover_react::hammer::{Decision, TriggerEvent, TriggerNode};

    let text = r#"
notifier "ops" { webhook { url = "https://chat.example.org/hook" } }
hammer "fix" {
  when   { log { source = "file"  match = "Kernel panic" } }
  action { command { on = "server"  command = "true" } }
  mode   = "auto"
  limits { per_hour = 1  max_attempts = 1  fleet_max_percent = 50 }
  notify = ["ops"]
}
"#;
    let now = Timestamp::from_millis(1_000_000);
    let mut state = state_with_site(text, now);
    let apply = react;
    let trigger = |node: &str, at: Timestamp| ReactOp::Trigger {
        event: TriggerEvent {
            hammer: "fix".to_owned(),
            node: Some(TriggerNode { name: node.to_owned(), protected: false }),
            job: None,
            reason: "log line".to_owned(),
            forced: false,
        },
        fleet_size: 4,
        now: at,
    };
    let first = apply(&mut state, 2, trigger("n1", now));
    let [Decision::Run(run)] = first.decisions[..] else { panic!("{first:?}") };
    let report = drover_react::hammer::RunReport { action: "a".to_owned(), output: "b".to_owned(), succeeded: false };
    apply(&mut state, 3, ReactOp::Finish { run, report, now });
    // Attempts used up on n1: refused and escalated once.
    let again = apply(&mut state, 4, trigger("n1", now.plus(std::time::Duration::from_secs(3600 * 2))));
    assert!(matches!(again.decisions[..], [Decision::Refused(_)]), "{again:?}");
    assert_eq!(again.notifications.len(), 1, "one escalation to ops");
    assert_eq!(state.react().refusals.len(), 1);
    assert_eq!(state.react().events.len(), 1, "the escalation counts for alert top");

    // The guard's history (tuple-keyed maps included) survives a snapshot.
    let bytes = crate::snapshot::encode_state(&state).unwrap();
    let mut restored = crate::snapshot::decode_state(&bytes).unwrap();
    assert_eq!(restored.react().site.as_ref().unwrap().version, 1);
    assert_eq!(restored.react().reports.len(), 1);
    let later = now.plus(std::time::Duration::from_secs(3600 * 3));
    let replay = match restored.apply(5, &Command::React { op: trigger("n1", later) }) {
        CommandResponse::React { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    };
    assert!(replay.notifications.is_empty(), "already escalated before the snapshot: {replay:?}");
    // An unknown hammer is rejected and changes nothing.
    let unknown = ReactOp::Pause { hammer: Some("nope".to_owned()), paused: true };
    assert!(matches!(restored.apply(6, &Command::React { op: unknown }), CommandResponse::Rejected { .. }));
}

#[test]
fn an_alert_that_fires_asks_its_hammers_in_the_same_entry() {
    use crate::react::ReactOp;
    use drover_react::alerting::{AlertId, Observation};
    use drover_react::hammer::{Decision, TriggerEvent, TriggerNode};

    let text = r#"
alert "node-down" { when { node { status = "down" } } }
hammer "reboot" {
  when   { alert = "node-down" }
  action { command { on = "server"  command = "true" } }
  mode   = "auto"
}
"#;
    let now = Timestamp::from_millis(1_000_000);
    let mut state = state_with_site(text, now);
    let mut apply = |index: u64, op: ReactOp| react(&mut state, index, op);
    let labels = |node: &str| drover_react::Labels::from([("node".to_owned(), node.to_owned())]);
    // An alert's labels: the observation's, its name and its severity.
    let alert_id = |node: &str| {
        let mut labels = labels(node);
        labels.insert("alertname".to_owned(), "node-down".to_owned());
        labels.insert("severity".to_owned(), "warning".to_owned());
        AlertId::new("node-down", &labels)
    };
    let event = |node: &str| TriggerEvent {
        hammer: "reboot".to_owned(),
        node: Some(TriggerNode { name: node.to_owned(), protected: false }),
        job: None,
        reason: format!("alert on {node} fires"),
        forced: false,
    };
    let evaluate = |nodes: &[&str], triggers: &[&str]| ReactOp::Evaluate {
        rule: "node-down".to_owned(),
        observations: nodes.iter().map(|node| Observation { labels: labels(node), value: None }).collect(),
        now,
        triggers: triggers.iter().map(|node| (alert_id(node), event(node))).collect(),
        fleet_size: 10,
    };
    // n1 fires: its trigger is decided; n2's (not firing) is not.
    let outcome = apply(2, evaluate(&["n1"], &["n1", "n2"]));
    assert!(matches!(outcome.decisions[..], [Decision::Run(_)]), "{outcome:?}");
    // Still firing: no new transition, so the trigger is not applied again.
    let outcome = apply(3, evaluate(&["n1"], &["n1"]));
    assert!(outcome.decisions.is_empty(), "{outcome:?}");
}

/// A state with the site of `text` applied at index 1.
fn state_with_site(text: &str, now: Timestamp) -> State {
    use crate::react::{ReactOp, SiteDoc};
    let site =
        drover_site::from_sources(&[drover_site::Source::new("site.hcl", text)], std::path::Path::new(".")).unwrap();
    let mut state = State::new();
    react(&mut state, 1, ReactOp::ApplySite { doc: SiteDoc { site, ..SiteDoc::default() }, now });
    state
}

/// Applies one detect-and-react input and returns its outcome.
fn react(state: &mut State, index: u64, op: crate::react::ReactOp) -> crate::react::ReactOutcome {
    match state.apply(index, &Command::React { op }) {
        CommandResponse::React { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    }
}

#[test]
fn register_nodes_applies_each_registration_alone_and_refuses_only_the_invalid_one() {
    let mut state = State::new();
    state.apply(1, &Command::RegisterNode { registration: registration("n2"), evals: vec![], now: Timestamp::ZERO });
    state.apply(
        2,
        &Command::UpdateNodeStatus {
            node_id: NodeId::new("n2"),
            status: NodeStatus::Down,
            description: "missed heartbeats".into(),
            evals: vec![],
            now: Timestamp::from_millis(2),
            seen_index: None,
        },
    );
    let mut nameless = registration("n3");
    nameless.name = "  ".into();
    let command = Command::RegisterNodes {
        registrations: vec![
            (registration("n1"), vec![eval("e1", "system-job")]),
            (nameless, vec![eval("e3", "system-job")]),
            (registration("n2"), vec![eval("e2", "system-job")]),
        ],
        now: Timestamp::from_millis(3),
    };
    assert_eq!(state.apply(3, &command), CommandResponse::Applied { index: 3 });
    let Command::RegisterNodes { registrations, .. } = &command else { unreachable!() };
    let refused = registrations[1].0.validate().expect_err("the nameless registration is refused");
    assert_eq!(refused.code, drover_types::ErrorCode::InvalidInput);
    assert!(refused.message.contains("empty node name or id"), "{}", refused.message);
    assert!(registrations[0].0.validate().is_ok() && registrations[2].0.validate().is_ok());

    // The refused one left nothing behind, not even its evaluations.
    assert!(state.node(&NodeId::new("n3")).is_none());
    assert!(state.eval(&EvalId::new("e3")).is_none());
    assert!(state.eval(&EvalId::new("e1")).is_some() && state.eval(&EvalId::new("e2")).is_some());
    assert_eq!(state.num_nodes(), 2);
    // A node that was down is ready again, as with `RegisterNode`.
    let n2 = state.node(&NodeId::new("n2")).unwrap();
    assert_eq!(n2.status, NodeStatus::Ready);
    assert_eq!(n2.status_updated_at, Timestamp::from_millis(3));

    // Each registration of the batch makes exactly the node that
    // `RegisterNode` at the same index makes.
    let mut one_by_one = State::new();
    one_by_one.apply(
        3,
        &Command::RegisterNode {
            registration: registration("n1"),
            evals: vec![eval("e1", "system-job")],
            now: Timestamp::from_millis(3),
        },
    );
    assert_eq!(state.node(&NodeId::new("n1")), one_by_one.node(&NodeId::new("n1")));
}

#[test]
fn register_nodes_survives_the_raft_codec() {
    let command = Command::RegisterNodes {
        registrations: vec![(registration("n1"), vec![eval("e1", "j")]), (registration("n2"), vec![])],
        now: Timestamp::from_millis(7),
    };
    let bytes = crate::codec::encode(&command).unwrap();
    assert_eq!(crate::codec::decode::<Command>(&bytes).unwrap(), command);
    assert_eq!(command.kind(), "register_nodes");
    assert_eq!(command.to_string(), "register_nodes(2)");
}

/// A `RegisterNode` entry as written before registrations were batched
/// (format version 1): old logs still decode and apply the same way.
const REGISTER_NODE_ENTRY_V1: &str = "0181ac52656769737465724e6f646583ac726567697374726174696f6e86a26964a26e31a46e616d65a76e616d652d6e31a66c6162656c7385a9686f737467726f7570a862692f6261746368ab656e7669726f6e6d656e74c0a56f776e6572c0a47a6f6e65c0a46d65746180aa6174747269627574657380a97265736f757263657382a76370755f6d687acd03e8a96d656d6f72795f6d62cd03e8ad6167656e745f76657273696f6ea474657374a56576616c7391de0012a26964a26531a87072696f7269747932a66a6f625f6964a16aac7472696767657265645f6279ac6a6f622d7265676973746572a6737461747573a770656e64696e67b27374617475735f6465736372697074696f6ea0a76e6f64655f6964c0b06a6f625f6d6f646966795f696e64657800aa776169745f756e74696cc0ad70726576696f75735f6576616cc0ac626c6f636b65645f6576616cc0b16661696c65645f706c6163656d656e747380a671756575656480ab6372656174655f74696d6501ab6d6f646966795f74696d6501b3626c6f636b65645f61745f636170616369747900ac6372656174655f696e64657800ac6d6f646966795f696e64657800a36e6f77cf0000018bcfe56800";

#[test]
fn a_register_node_entry_of_format_version_1_still_applies() {
    let bytes: Vec<u8> = (0..REGISTER_NODE_ENTRY_V1.len())
        .step_by(2)
        .map(|position| u8::from_str_radix(&REGISTER_NODE_ENTRY_V1[position..position + 2], 16).unwrap())
        .collect();
    let command: Command = crate::codec::decode(&bytes).unwrap();
    let expected = Command::RegisterNode {
        registration: registration("n1"),
        evals: vec![eval("e1", "j")],
        now: Timestamp::from_millis(1_700_000_000_000),
    };
    assert_eq!(command, expected);
    let mut state = State::new();
    assert_eq!(state.apply(1, &command), CommandResponse::Applied { index: 1 });
    assert_eq!(state.node(&NodeId::new("n1")).unwrap().status, NodeStatus::Ready);
    assert!(state.eval(&EvalId::new("e1")).is_some());
}

fn token(accessor: &str, secret_hash: &str) -> drover_types::acl::AclToken {
    drover_types::acl::AclToken {
        accessor: accessor.to_owned(),
        secret_hash: secret_hash.to_owned(),
        name: accessor.to_owned(),
        policies: Vec::new(),
        management: true,
        created_at: Timestamp::from_millis(1),
        expires_at: None,
    }
}

fn access(op: crate::access::AccessOp) -> Command {
    Command::Access { op }
}

#[test]
fn an_operators_restore_keeps_the_access_state_and_a_recovery_takes_the_snapshots() {
    use crate::access::AccessOp;
    let mut state = State::new();
    let op = AccessOp::Bootstrap { token: token("old", "aa"), reset_index: None };
    assert!(matches!(state.apply(1, &access(op)), CommandResponse::Applied { .. }));
    let snapshot = crate::snapshot::encode_state(&state).unwrap();
    // Since the snapshot: the old token was revoked and a new one made.
    let revoke = AccessOp::DeleteToken { accessor: "old".to_owned() };
    assert!(matches!(state.apply(2, &access(revoke)), CommandResponse::Applied { .. }));
    let create = AccessOp::UpsertToken { token: token("new", "bb") };
    assert!(matches!(state.apply(3, &access(create)), CommandResponse::Applied { .. }));

    let mut restored = state.clone();
    restored.apply(4, &Command::RestoreState { snapshot: snapshot.clone(), keep_access: true });
    assert!(restored.access().token("old").is_none(), "a restore never brings back a revoked token");
    assert!(restored.access().token_by_secret_hash("bb").is_some());
    assert!(restored.access().bootstrapped());

    let mut recovered = state.clone();
    recovered.apply(4, &Command::RestoreState { snapshot, keep_access: false });
    assert!(recovered.access().token_by_secret_hash("aa").is_some(), "a recovery takes the snapshot's tokens");
    assert!(recovered.access().token("new").is_none());
}

#[test]
fn join_tokens_are_used_up_and_an_enrolled_name_cannot_enrol_again() {
    use crate::access::AccessOp;
    let mut state = State::new();
    let join = drover_types::acl::JoinToken {
        accessor: "j".to_owned(),
        secret_hash: "cc".to_owned(),
        role: drover_types::acl::JoinRole::Agent,
        hostgroups: vec!["bi/**".to_owned()],
        created_at: Timestamp::from_millis(1),
        expires_at: Timestamp::from_millis(10_000),
        max_uses: Some(1),
        uses: 0,
        created_by: "root".to_owned(),
    };
    state.apply(1, &access(AccessOp::CreateJoinToken { token: join }));
    let enrol = |name: &str, now: i64| {
        access(AccessOp::SetNodeCertificate {
            name: name.to_owned(),
            serial: format!("{name}-1"),
            not_after: Timestamp::from_millis(100_000),
            join_secret_hash: Some("cc".to_owned()),
            hostgroups: vec!["bi/**".to_owned()],
            now: Timestamp::from_millis(now),
        })
    };
    assert!(matches!(state.apply(2, &enrol("n1", 5)), CommandResponse::Applied { .. }));
    assert_eq!(state.access().node_certificate_refusal("n1", "n1-1"), None);
    let CommandResponse::Rejected { error, .. } = state.apply(3, &enrol("n2", 6)) else { panic!("used up") };
    assert!(error.message.contains("used up"), "{error}");
    // A revoked node is refused; so is an old certificate of a renewed one.
    assert!(state.access().node_certificate_refusal("n1", "other").is_some());
    state.apply(4, &access(AccessOp::RevokeNode { name: "n1".to_owned(), now: Timestamp::from_millis(7) }));
    assert!(state.access().node_certificate_refusal("n1", "n1-1").is_some_and(|reason| reason.contains("revoked")));
    // Expiry is decided by the time in the command, on every server alike.
    let mut expired = State::new();
    let late = drover_types::acl::JoinToken {
        accessor: "k".to_owned(),
        secret_hash: "dd".to_owned(),
        role: drover_types::acl::JoinRole::Agent,
        hostgroups: Vec::new(),
        created_at: Timestamp::from_millis(1),
        expires_at: Timestamp::from_millis(10),
        max_uses: None,
        uses: 0,
        created_by: String::new(),
    };
    expired.apply(1, &access(AccessOp::CreateJoinToken { token: late }));
    let too_late = access(AccessOp::SetNodeCertificate {
        name: "n3".to_owned(),
        serial: "s".to_owned(),
        not_after: Timestamp::from_millis(100_000),
        join_secret_hash: Some("dd".to_owned()),
        hostgroups: Vec::new(),
        now: Timestamp::from_millis(11),
    });
    assert!(matches!(expired.apply(2, &too_late), CommandResponse::Rejected { .. }));
}

/// What the incremental allocation indexes (changes per node, nodes by
/// change, counts by client status) must equal: a recomputation from
/// every allocation.
fn assert_alloc_indexes_match_a_recomputation(state: &State, nodes: &[NodeId]) {
    for status in [
        AllocClientStatus::Pending,
        AllocClientStatus::Running,
        AllocClientStatus::Complete,
        AllocClientStatus::Failed,
        AllocClientStatus::Lost,
        AllocClientStatus::Unknown,
    ] {
        let recomputed = state.allocs().filter(|alloc| alloc.client_status == status).count();
        assert_eq!(state.num_allocs_with_client_status(status), recomputed, "{status:?}");
    }
    for after in 0..=state.last_index() {
        let mut changed_nodes: Vec<&NodeId> = state.nodes_with_allocs_changed_after(after).collect();
        changed_nodes.sort();
        let mut expected_nodes: Vec<&NodeId> =
            nodes.iter().filter(|node| state.node_alloc_index(node) > after).collect();
        expected_nodes.sort();
        expected_nodes.dedup();
        assert_eq!(changed_nodes, expected_nodes, "nodes changed after {after}");
        for node in nodes {
            let mut changed: Vec<&AllocId> =
                state.allocs_on_node_changed_after(node, after).map(|alloc| &alloc.id).collect();
            changed.sort();
            let mut expected: Vec<&AllocId> = state
                .allocs()
                .filter(|alloc| &alloc.node_id == node && alloc.alloc_modify_index > after)
                .map(|alloc| &alloc.id)
                .collect();
            expected.sort();
            assert_eq!(changed, expected, "allocations on {node} changed after {after}");
        }
    }
    for node in nodes {
        let on_node = state.allocs_on_node(node).count();
        assert_eq!(on_node, state.allocs().filter(|alloc| &alloc.node_id == node).count(), "on {node}");
        // At least the newest change of an allocation on it (an allocation
        // that left the node moved the node's index too).
        let newest = state.allocs_on_node(node).map(|alloc| alloc.alloc_modify_index).max().unwrap_or(0);
        assert!(state.node_alloc_index(node) >= newest, "index of {node}");
    }
}

/// One step of the random history of
/// `incremental_alloc_indexes_equal_a_recomputation`.
#[derive(Clone, Debug)]
enum AllocStep {
    /// Places allocation `alloc` on node `node`.
    Place { alloc: u8, node: u8 },
    /// The servers stop an allocation.
    Stop { alloc: u8 },
    /// Its agent reports a client status.
    Report { alloc: u8, status: u8 },
}

fn alloc_step() -> impl proptest::strategy::Strategy<Value = AllocStep> {
    use proptest::prelude::*;
    prop_oneof![
        (0..12u8, 0..4u8).prop_map(|(alloc, node)| AllocStep::Place { alloc, node }),
        (0..12u8).prop_map(|alloc| AllocStep::Stop { alloc }),
        (0..12u8, 0..6u8).prop_map(|(alloc, status)| AllocStep::Report { alloc, status }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_alloc_indexes_equal_a_recomputation(steps in proptest::collection::vec(alloc_step(), 1..40)) {
        let nodes: Vec<NodeId> = (0..4).map(|node| NodeId::new(format!("n{node}"))).collect();
        let mut state = State::new();
        register(&mut state, 1, test_job("web"), "e1");
        let statuses = [
            AllocClientStatus::Pending,
            AllocClientStatus::Running,
            AllocClientStatus::Complete,
            AllocClientStatus::Failed,
            AllocClientStatus::Lost,
            AllocClientStatus::Unknown,
        ];
        for (offset, step) in steps.into_iter().enumerate() {
            let index = offset as u64 + 2;
            let now = Timestamp::from_millis(index as i64);
            let plan = |place: Vec<Allocation>, stop: Vec<PlanStop>| Command::ApplyPlan {
                plan: Box::new(Plan { eval_id: EvalId::new("e1"), job_id: JobId::new("web"), place, stop, ..Default::default() }),
                eval: eval("e1", "web"),
                blocked_eval: None,
                now,
            };
            let command = match step {
                AllocStep::Place { alloc: id, node } => {
                    plan(vec![alloc(&format!("a{id}"), "web", &format!("n{node}"))], vec![])
                }
                AllocStep::Stop { alloc: id } => {
                    let node_id = state.alloc(&AllocId::new(format!("a{id}"))).map_or(NodeId::new("n0"), |alloc| alloc.node_id.clone());
                    plan(vec![], vec![PlanStop {
                        alloc_id: AllocId::new(format!("a{id}")),
                        node_id,
                        desired_status: AllocDesiredStatus::Stop,
                        description: "stopped".into(),
                        client_status: None,
                        follow_up_eval: None,
                    }])
                }
                AllocStep::Report { alloc: id, status } => Command::UpdateAllocsFromClient {
                    updates: vec![ClientAllocUpdate {
                        alloc_id: AllocId::new(format!("a{id}")),
                        client_status: statuses[usize::from(status)],
                        client_description: String::new(),
                        task_states: BTreeMap::new(),
                        checks: vec![],
                        deployment_health: None,
                    }],
                    evals: vec![],
                    now,
                },
            };
            state.apply(index, &command);
            assert_alloc_indexes_match_a_recomputation(&state, &nodes);
        }
        let restored = crate::snapshot::decode_state(&crate::snapshot::encode_state(&state).unwrap()).unwrap();
        assert_alloc_indexes_match_a_recomputation(&restored, &nodes);
    }
}

#[test]
fn an_audited_write_records_its_event_with_the_writes_outcome_and_a_completion_replaces_it() {
    use drover_types::acl::{AuditEvent, AuditOutcome};
    let event = |request_id: u64, outcome: AuditOutcome| AuditEvent {
        at: Timestamp::ZERO,
        accessor: None,
        name: "alice".to_owned(),
        action: "variable.put".to_owned(),
        target: "app/a".to_owned(),
        details: String::new(),
        outcome,
        source: String::new(),
        request_id,
    };
    let put = |cas: Option<u64>| Command::PutVariable {
        path: "app/a".to_owned(),
        items: BTreeMap::from([("x".to_owned(), "1".to_owned())]),
        cas,
        now: Timestamp::ZERO,
    };
    let mut state = State::default();
    let audited = |command: Command, request_id: u64| Command::Audited {
        command: Box::new(command),
        event: event(request_id, AuditOutcome::Ok),
    };

    let response = state.apply(1, &audited(put(None), 7));
    assert!(!matches!(response, CommandResponse::Rejected { .. }), "{response:?}");
    assert!(state.variable("app/a").is_some(), "the write is applied");
    assert_eq!(state.access().audit().iter().cloned().collect::<Vec<_>>(), [event(7, AuditOutcome::Ok)]);

    // Rejected when applied: the event says why.
    let response = state.apply(2, &audited(put(Some(99)), 8));
    let CommandResponse::Rejected { error, .. } = response else { panic!("a stale check-and-set is rejected") };
    assert_eq!(state.access().audit()[1], event(8, AuditOutcome::Failed(error.message.clone())));

    // The API's completion (same request id) replaces the event in place.
    let mut completed = event(8, AuditOutcome::Failed("409 Conflict".to_owned()));
    completed.details = "cas 99".to_owned();
    let record = crate::access::AccessOp::RecordAudit { events: vec![completed.clone()] };
    state.apply(3, &Command::Access { op: record });
    assert_eq!(state.access().audit().len(), 2);
    assert_eq!(state.access().audit()[1], completed);
}
