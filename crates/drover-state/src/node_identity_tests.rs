//! Unit tests of node identity: registration by name, retirement, purge.

use drover_types::{
    AllocClientStatus, Allocation, CodedError, DrainStrategy, EvalId, EvalTrigger, Evaluation, JobId, Node, NodeId,
    NodeLabels, NodeRegistration, NodeStatus, Plan, Protection, Retirement, Timestamp, fixtures,
};

use crate::command::{Command, CommandResponse};
use crate::state::State;
use drover_types::workflow::WorkflowOp;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_millis(seconds * 1000)
}

/// The agent with node id `id` calling itself `name`.
fn agent(id: &str, name: &str) -> NodeRegistration {
    NodeRegistration { id: NodeId::new(id), name: name.to_owned(), ..fixtures::registration(name) }
}

/// A state and the next index to apply at.
struct Cluster {
    state: State,
    next_index: u64,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster { state: State::new(), next_index: 1 }
    }

    fn apply(&mut self, command: &Command) -> CommandResponse {
        let response = self.state.apply(self.next_index, command);
        self.next_index += 1;
        response
    }

    /// Applies a command that must be accepted.
    fn accept(&mut self, command: &Command) {
        let response = self.apply(command);
        assert!(!matches!(response, CommandResponse::Rejected { .. }), "{command} was rejected: {response}");
    }

    /// Applies a command that must be rejected; returns why.
    fn reject(&mut self, command: &Command) -> CodedError {
        match self.apply(command) {
            CommandResponse::Rejected { error, .. } => error,
            other => panic!("{command} was accepted: {other}"),
        }
    }

    fn register(&mut self, id: &str, name: &str, now: Timestamp) -> CommandResponse {
        self.apply(&Command::RegisterNode { registration: agent(id, name), evals: Vec::new(), now })
    }

    fn set_status(&mut self, id: &str, status: NodeStatus, now: Timestamp) {
        let command = Command::UpdateNodeStatus {
            node_id: NodeId::new(id),
            status,
            description: String::new(),
            evals: Vec::new(),
            now,
            seen_index: None,
        };
        self.accept(&command);
    }

    fn protect(&mut self, id: &str, reason: &str) {
        let protection = Protection { reason: reason.to_owned(), by: "alice".to_owned(), at: at(2) };
        self.accept(&Command::SetNodeProtection {
            node_id: NodeId::new(id),
            protection: Some(protection),
            by: "alice".to_owned(),
            reason: String::new(),
            now: at(2),
        });
    }

    fn retire(&mut self, ids: &[&str], now: Timestamp) {
        self.accept(&retire_command(ids, now));
    }

    fn end_drain(&mut self, id: &str) {
        self.accept(&Command::UpdateNodeDrain {
            node_id: NodeId::new(id),
            drain: None,
            mark_eligible: false,
            now: at(9),
            audit: Vec::new(),
        });
    }

    fn node(&self, id: &str) -> &Node {
        self.state.node(&NodeId::new(id)).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Every (name, id) the state holds, in id order.
    fn names(&self) -> Vec<(String, String)> {
        self.state.nodes().map(|node| (node.name.clone(), node.id.to_string())).collect()
    }

    /// `(field, from, to)` of the node's history.
    fn history(&self, id: &str) -> Vec<(String, String, String)> {
        self.state
            .node_history(&NodeId::new(id))
            .map(|change| (change.field.clone(), change.from.clone(), change.to.clone()))
            .collect()
    }
}

fn retire_command(ids: &[&str], now: Timestamp) -> Command {
    Command::RetireNodes {
        node_ids: ids.iter().map(|id| NodeId::new(*id)).collect(),
        retirement: Retirement { reason: "end of warranty".to_owned(), by: "alice".to_owned(), at: now },
        drain: DrainStrategy { started_at: now, deadline: None, ignore_system_jobs: false },
    }
}

fn purge_command(ids: &[&str]) -> Command {
    Command::PurgeNodes { node_ids: ids.iter().map(|id| NodeId::new(*id)).collect(), evals: Vec::new() }
}

/// A running `create` workflow of one machine, `name`.
fn create_workflow(name: &str) -> drover_types::workflow::Workflow {
    use drover_types::workflow::{MachineOperation, Maintenance, Workflow, WorkflowStatus, WorkflowStep};
    Workflow {
        id: "c1".to_owned(),
        operation: MachineOperation::Create,
        provider: None,
        labels: drover_types::NodeLabels::default(),
        rate_per_minute: None,
        parallel: 1,
        max_failures: 0,
        max_failures_percent: None,
        drain: false,
        wait_timeout_ms: 600_000,
        maintenance: Maintenance::default(),
        paused_by: None,
        by: "alice".to_owned(),
        created_at: at(6),
        status: WorkflowStatus::Running,
        finished_at: None,
        reason: String::new(),
        steps: vec![WorkflowStep::pending(name)],
    }
}

fn triple(field: &str, from: &str, to: &str) -> (String, String, String) {
    (field.to_owned(), from.to_owned(), to.to_owned())
}

#[test]
fn a_new_agent_with_the_name_of_a_down_node_takes_its_place_with_its_labels_history_and_protection() {
    let mut cluster = Cluster::new();
    cluster.register("old", "batch01", at(1));
    let labels = NodeLabels { hostgroup: Some("bi/batch/gridworker".to_owned()), ..NodeLabels::default() };
    cluster.accept(&Command::UpdateNodeLabels {
        node_ids: vec![NodeId::new("old")],
        labels,
        by: "alice".to_owned(),
        evals: Vec::new(),
        now: at(2),
    });
    cluster.protect("old", "holds the release volume");
    // A job runs there when the machine dies.
    let alloc = Allocation {
        client_status: AllocClientStatus::Running,
        ..fixtures::alloc("web-1", "web", "web", &NodeId::new("old"))
    };
    let eval = Evaluation::new(EvalId::new("e1"), JobId::new("web"), 50, EvalTrigger::JobRegister, at(3));
    let plan = Plan { eval_id: eval.id.clone(), job_id: JobId::new("web"), place: vec![alloc], ..Plan::default() };
    cluster.accept(&Command::ApplyPlan { plan: Box::new(plan), eval, blocked_eval: None, now: at(3) });
    cluster.set_status("old", NodeStatus::Down, at(4));

    // The machine is reinstalled: a fresh data directory, a new node id.
    assert_eq!(cluster.register("new", "batch01", at(5)), CommandResponse::Applied { index: 6 });

    assert_eq!(cluster.names(), [("batch01".to_owned(), "new".to_owned())], "one node, under the new id");
    let node = cluster.node("new");
    assert_eq!(node.hostgroup, "bi/batch/gridworker");
    assert_eq!(node.protected.as_ref().map(|protection| protection.reason.as_str()), Some("holds the release volume"));
    assert_eq!((node.status, node.registered_at, node.create_index), (NodeStatus::Ready, at(5), 6));
    assert_eq!(node.status_description, "agent registered in place of node id old");
    assert_eq!(
        cluster.history("new"),
        [
            triple("hostgroup", "", "bi/batch/gridworker"),
            triple("protected", "", "yes: holds the release volume"),
            triple("replaced", "node id old (down)", "node id new"),
        ]
    );
    assert_eq!(cluster.history("old"), [], "the old id is forgotten, history and all");
    assert_eq!(cluster.state.resolve_node("batch01").unwrap().id.as_str(), "new");
    // Its allocation stays, on a node that no longer exists: the scheduler
    // declares it lost when the proposer's evaluation runs.
    let alloc = cluster.state.alloc(&drover_types::AllocId::new("web-1")).unwrap();
    assert_eq!(alloc.node_id.as_str(), "old");
    assert!(cluster.state.node(&alloc.node_id).is_none());
    assert_eq!(cluster.state.unready_nodes().count(), 0);
}

#[test]
fn a_new_agent_with_the_name_of_an_up_node_is_refused_and_changes_nothing() {
    let mut cluster = Cluster::new();
    cluster.register("live", "batch01", at(1));
    let before = cluster.state.node(&NodeId::new("live")).cloned();

    let refused = cluster.reject(&Command::RegisterNode {
        registration: agent("intruder", "batch01"),
        evals: vec![Evaluation::new(EvalId::new("e1"), JobId::new("sys"), 50, EvalTrigger::NodeUpdate, at(2))],
        now: at(2),
    });
    assert_eq!(refused.code, drover_types::ErrorCode::Conflict);
    for hint in ["node batch01 is ready with another agent (node id live)", "Stop the other agent", "--name"] {
        assert!(refused.message.contains(hint), "{hint:?} missing from: {}", refused.message);
    }
    assert_eq!(cluster.names(), [("batch01".to_owned(), "live".to_owned())]);
    assert_eq!(cluster.state.node(&NodeId::new("live")).cloned(), before);
    assert!(cluster.state.eval(&EvalId::new("e1")).is_none(), "a refused registration's evaluations are dropped");

    // In a batch, the refused one is named and the others go through.
    let response = cluster.apply(&Command::RegisterNodes {
        registrations: vec![(agent("intruder", "batch01"), Vec::new()), (agent("other", "batch02"), Vec::new())],
        now: at(3),
    });
    let CommandResponse::NodesRegistered { refused, .. } = response else { panic!("expected refusals: {response}") };
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0.as_str(), "intruder");
    assert_eq!(refused[0].1, cluster.state.registration_refusal(&agent("intruder", "batch01")).unwrap());
    assert_eq!(cluster.names().len(), 2);

    // Its own agent re-registering is no twin.
    assert_eq!(cluster.state.registration_refusal(&agent("live", "batch01")), None);
    // Disconnected is not up: its place may be taken.
    cluster.set_status("live", NodeStatus::Disconnected, at(4));
    assert!(matches!(cluster.register("intruder", "batch01", at(5)), CommandResponse::Applied { .. }));
    assert_eq!(cluster.state.node_by_name("batch01").unwrap().id.as_str(), "intruder");
}

#[test]
fn in_a_secure_cluster_a_name_enrolled_again_after_a_revocation_takes_over_at_once() {
    use crate::access::AccessOp;
    let mut cluster = Cluster::new();
    let join = drover_types::acl::JoinToken {
        accessor: "j".to_owned(),
        secret_hash: "cc".to_owned(),
        role: drover_types::acl::JoinRole::Agent,
        hostgroups: Vec::new(),
        created_at: at(0),
        expires_at: at(10_000),
        max_uses: None,
        uses: 0,
        created_by: "root".to_owned(),
    };
    cluster.accept(&Command::Access { op: AccessOp::CreateJoinToken { token: join } });
    let enrol = |serial: &str, now: Timestamp| Command::Access {
        op: AccessOp::SetNodeCertificate {
            name: "batch01".to_owned(),
            serial: serial.to_owned(),
            not_after: at(100_000),
            join_secret_hash: Some("cc".to_owned()),
            hostgroups: Vec::new(),
            now,
        },
    };
    cluster.accept(&enrol("s1", at(1)));
    cluster.register("old", "batch01", at(2));
    // The same certificate on a second machine (a copied tls/ directory)
    // proves nothing new: refused while the first is up.
    assert!(matches!(cluster.register("copy", "batch01", at(3)), CommandResponse::Rejected { .. }));

    // Reinstalled: revoked, enrolled again, and the new agent takes over
    // before the old node is marked down.
    cluster.accept(&Command::Access { op: AccessOp::RevokeNode { name: "batch01".to_owned(), now: at(4) } });
    cluster.accept(&enrol("s2", at(5)));
    assert!(matches!(cluster.register("new", "batch01", at(6)), CommandResponse::Applied { .. }));
    assert_eq!(cluster.names(), [("batch01".to_owned(), "new".to_owned())]);
    assert_eq!(cluster.history("new"), [triple("replaced", "node id old (ready)", "node id new")]);
}

#[test]
fn an_agent_renamed_to_the_name_of_a_down_node_keeps_its_own_record() {
    let mut cluster = Cluster::new();
    cluster.register("a", "batch01", at(1));
    cluster.register("b", "batch02", at(1));
    cluster.set_status("a", NodeStatus::Down, at(2));
    assert!(matches!(cluster.register("b", "batch01", at(3)), CommandResponse::Applied { .. }));
    assert_eq!(cluster.names(), [("batch01".to_owned(), "b".to_owned())]);
    assert_eq!(cluster.history("b"), [triple("replaced", "node id a (down)", "node id b")]);
    assert!(cluster.state.node_by_name("batch02").is_none(), "the old name is free");
    assert_eq!(cluster.node("b").create_index, 2);
}

#[test]
fn a_retired_down_node_is_back_in_service_only_when_a_create_workflow_makes_its_name_again() {
    let mut cluster = Cluster::new();
    cluster.register("old", "batch01", at(1));
    cluster.retire(&["old"], at(2));
    cluster.end_drain("old");
    // Up and retired: the name is still held.
    let refused = cluster.register("new", "batch01", at(3));
    assert!(format!("{refused:?}").contains("may not take its name"), "{refused:?}");
    // Down: a reinstalled machine's agent takes its place, still retired.
    cluster.set_status("old", NodeStatus::Down, at(4));
    cluster.register("again", "batch01", at(5));
    assert_eq!(cluster.node("again").display_status(), "retired");
    assert_eq!(cluster.history("again").last(), Some(&triple("replaced", "node id old (down)", "node id again")));
    // Made again by a create workflow: in service, with the history.
    cluster.set_status("again", NodeStatus::Down, at(6));
    cluster.accept(&Command::Workflow { op: WorkflowOp::Start { workflow: Box::new(create_workflow("batch01")) } });
    cluster.register("new", "batch01", at(7));
    let node = cluster.node("new");
    assert!(node.retired.is_none() && node.drain.is_none() && node.is_schedulable(), "{node:#?}");
    assert_eq!(node.display_status(), "ready");
    let history = cluster.history("new");
    assert_eq!(
        history,
        [
            triple("retired", "", "yes"),
            triple("replaced", "node id old (down)", "node id again"),
            triple("replaced", "node id again (down)", "node id new"),
            triple("retired", "yes", "no")
        ]
    );
    assert_eq!(cluster.names(), [("batch01".to_owned(), "new".to_owned())]);
}

#[test]
fn a_retired_node_is_drained_never_scheduled_and_purged_once_its_drain_is_done() {
    let mut cluster = Cluster::new();
    cluster.register("n1", "batch01", at(1));
    cluster.register("n2", "batch02", at(1));
    cluster.retire(&["n1"], at(2));
    let node = cluster.node("n1");
    assert!(!node.is_schedulable());
    assert_eq!(node.display_status(), "retiring");
    assert_eq!(node.retired.as_ref().map(|retired| retired.by.as_str()), Some("alice"));
    assert_eq!(cluster.state.draining_nodes().count(), 1, "the drainer moves its allocations away");
    assert_eq!(cluster.history("n1"), [triple("retired", "", "yes")]);

    // Still draining and up: its allocations would be lost.
    let refused = cluster.reject(&purge_command(&["n1"]));
    assert!(refused.message.contains("still being drained"), "{}", refused.message);
    cluster.end_drain("n1");
    assert_eq!(cluster.node("n1").display_status(), "retired");
    // Retiring again changes nothing (not even the history).
    cluster.retire(&["n1"], at(10));
    assert_eq!(cluster.node("n1").retired.as_ref().map(|retired| retired.at), Some(at(2)));
    assert_eq!(cluster.history("n1").len(), 1);
    // An agent restart keeps it retired.
    cluster.register("n1", "batch01", at(11));
    assert_eq!(cluster.node("n1").display_status(), "retired");

    // All or nothing: batch02 is up and not retired.
    let refused = cluster.reject(&purge_command(&["n1", "n2"]));
    assert!(refused.message.contains("node batch02 is ready"), "{}", refused.message);
    assert!(refused.message.contains("drover node retire batch02"), "{}", refused.message);
    assert_eq!(cluster.names().len(), 2);

    cluster.accept(&purge_command(&["n1"]));
    assert_eq!(cluster.names(), [("batch02".to_owned(), "n2".to_owned())]);
    assert_eq!(cluster.history("n1"), []);
    assert!(cluster.state.resolve_node("batch01").is_err());
    assert_eq!(cluster.reject(&purge_command(&["n1"])).code, drover_types::ErrorCode::NotFound);
    assert_eq!(cluster.reject(&retire_command(&["n2", "n1"], at(12))).code, drover_types::ErrorCode::NotFound);
    assert!(cluster.node("n2").retired.is_none(), "a refused retirement retires none");
}

#[test]
fn a_protected_node_is_never_purged_and_a_down_one_is() {
    let mut cluster = Cluster::new();
    cluster.register("n1", "batch01", at(1));
    cluster.register("n2", "batch02", at(1));
    cluster.protect("n1", "holds the release volume");
    cluster.set_status("n1", NodeStatus::Down, at(3));
    cluster.set_status("n2", NodeStatus::Down, at(3));
    let refused = cluster.reject(&purge_command(&["n2", "n1"]));
    assert!(refused.message.contains("node batch01 is protected (\"holds the release volume\""), "{}", refused.message);
    assert!(refused.message.contains("drover node unprotect batch01"), "{}", refused.message);
    assert_eq!(cluster.names().len(), 2);
    cluster.accept(&purge_command(&["n2"]));
    assert_eq!(cluster.names(), [("batch01".to_owned(), "n1".to_owned())]);
    // The name is free: a new agent registers as a new node.
    assert!(matches!(cluster.register("n3", "batch02", at(4)), CommandResponse::Applied { .. }));
    assert_eq!(cluster.history("n3"), []);
}

#[test]
fn twins_left_by_an_older_state_show_as_one_node_until_purged() {
    let mut cluster = Cluster::new();
    cluster.register("dead", "batch01", at(1));
    cluster.set_status("dead", NodeStatus::Down, at(2));
    // Before names were unique, a reinstalled machine became a second
    // `batch01`: written here as an old server would have.
    let mut twin = Node::clone(cluster.node("dead"));
    twin.id = NodeId::new("alive");
    twin.status = NodeStatus::Ready;
    twin.create_index = 3;
    cluster.state.put_node(3, twin);
    cluster.next_index = 4;
    assert_eq!(cluster.state.nodes_named("batch01").count(), 2);

    assert_eq!(cluster.state.node_by_name("batch01").unwrap().id.as_str(), "alive", "the up one holds the name");
    assert!(cluster.state.holds_its_name(cluster.node("alive")));
    assert!(!cluster.state.holds_its_name(cluster.node("dead")));
    let shadowed: Vec<&str> = cluster.state.shadowed_nodes().iter().map(|node| node.id.as_str()).collect();
    assert_eq!(shadowed, ["dead"]);
    assert_eq!(cluster.state.resolve_node("batch01").unwrap().id.as_str(), "alive");
    // A third agent with the name is refused: one twin is up.
    assert!(matches!(cluster.register("third", "batch01", at(5)), CommandResponse::Rejected { .. }));
    cluster.accept(&purge_command(&["dead"]));
    assert!(cluster.state.shadowed_nodes().is_empty());
}

#[test]
fn retirements_and_purges_survive_the_codec_and_snapshots() {
    let mut cluster = Cluster::new();
    cluster.register("n1", "batch01", at(1));
    cluster.register("n2", "batch02", at(1));
    cluster.retire(&["n1"], at(2));
    for command in [retire_command(&["n1"], at(2)), purge_command(&["n1", "n2"])] {
        let bytes = crate::codec::encode(&command).unwrap();
        assert_eq!(crate::codec::decode::<Command>(&bytes).unwrap(), command);
    }
    assert_eq!(retire_command(&["n1"], at(2)).to_string(), "retire_nodes(1 nodes)");
    assert_eq!(purge_command(&["n1"]).kind(), "purge_nodes");

    let snapshot = crate::snapshot::encode_state(&cluster.state).unwrap();
    let restored = crate::snapshot::decode_state(&snapshot).unwrap();
    assert_eq!(restored.node(&NodeId::new("n1")).unwrap().display_status(), "retiring");
    assert_eq!(restored.node_by_name("batch02").unwrap().id.as_str(), "n2", "the name index is rebuilt");
    assert!(restored.registration_refusal(&agent("other", "batch02")).is_some());
}
