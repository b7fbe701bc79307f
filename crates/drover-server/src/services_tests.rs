//! Tests of the service catalogue's derivation.

use std::collections::BTreeMap;

use drover_proto::api::{ServiceHealth, ServiceListEntry};
use drover_state::{Command, CommandResponse, State};
use drover_types::job::ServiceAddressMode;
use drover_types::network::ADDRESS_ATTRIBUTE;
use drover_types::{
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, AllocId, AllocatedPort, Allocation, Check,
    CheckHealth, CheckKind, CheckStatus, ClientAllocUpdate, Deployment, DeploymentGroup, DeploymentId,
    DeploymentStatus, DurationSpec, EvalId, EvalStatus, EvalTrigger, Evaluation, Job, JobId, Node, NodeId, Plan,
    PlanStop, Service, TaskLifecycleState, TaskState, Timestamp, fixtures,
};

use super::{Catalogue, instances_of, summarize};

/// A node `name` whose address is `address`.
fn node(name: &str, address: &str) -> Node {
    let mut node = fixtures::node(name);
    node.attributes.insert(ADDRESS_ATTRIBUTE.to_owned(), address.to_owned());
    node
}

fn script_check(name: &str) -> Check {
    Check {
        name: name.to_owned(),
        kind: CheckKind::Script { command: "/bin/true".to_owned(), args: Vec::new() },
        interval: DurationSpec::from_secs(1),
        timeout: DurationSpec::from_secs(1),
        check_restart: None,
        port_label: None,
    }
}

/// The job `shop` whose group `web` (task `server`) declares `services`.
fn job_with(services: Vec<Service>) -> Job {
    let mut group = fixtures::group("web", drover_types::JobType::Service, 2);
    group.tasks[0].name = "server".to_owned();
    group.tasks[0].services = services;
    fixtures::service_job("shop", 2).with_groups(vec![group])
}

/// The service `web` on the port labelled `http`, with a check `alive`.
fn web_service() -> Service {
    Service {
        name: "web".to_owned(),
        port_label: Some("http".to_owned()),
        tags: vec!["v1".to_owned()],
        canary_tags: vec!["canary".to_owned()],
        meta: BTreeMap::from([("team".to_owned(), "shop-${NOMAD_ALLOC_INDEX}".to_owned())]),
        checks: vec![script_check("alive")],
        ..Service::default()
    }
}

/// A running allocation `id` of `shop.web` on `node` holding port `port`
/// for `http`, whose check `alive` reports `health`.
fn running_alloc(id: &str, node: &str, port: u16, health: CheckHealth) -> Allocation {
    let mut alloc = fixtures::alloc(id, "shop", "web", &NodeId::new(node));
    alloc.client_status = AllocClientStatus::Running;
    alloc.index = 1;
    alloc.ports = vec![AllocatedPort { label: "http".to_owned(), value: port, host_ip: "10.0.0.9".to_owned() }];
    alloc.task_states = BTreeMap::from([(
        "server".to_owned(),
        TaskState { state: TaskLifecycleState::Running, ..TaskState::default() },
    )]);
    alloc.checks = vec![check_status("alive", health)];
    alloc
}

fn check_status(name: &str, health: CheckHealth) -> CheckStatus {
    CheckStatus {
        task: "server".to_owned(),
        name: name.to_owned(),
        status: health,
        output: String::new(),
        checked_at: Timestamp::ZERO,
    }
}

#[test]
fn a_running_allocation_announces_its_allocated_port_on_its_node_address() {
    let job = job_with(vec![web_service()]);
    let alloc = running_alloc("a1", "n1", 23456, CheckHealth::Passing);
    let instances = instances_of(&alloc, &job, Some(&node("n1", "192.0.2.1")), None);

    assert_eq!(instances.len(), 1);
    let instance = &instances[0];
    assert_eq!(instance.service, "web");
    assert_eq!((instance.node_name.as_str(), instance.address.as_str()), ("n1", "192.0.2.1"));
    assert_eq!(instance.port, Some(23456));
    assert_eq!((instance.group.as_str(), instance.task.as_str()), ("web", "server"));
    assert_eq!(instance.tags, vec!["v1".to_owned()]);
    assert_eq!(instance.meta.get("team").map(String::as_str), Some("shop-1"));
    assert_eq!(instance.health, ServiceHealth::Passing);
    assert!(!instance.canary);
}

#[test]
fn a_node_without_an_address_announces_the_address_of_its_ports() {
    let job = job_with(vec![web_service()]);
    let alloc = running_alloc("a1", "n1", 23456, CheckHealth::Passing);
    let instances = instances_of(&alloc, &job, Some(&fixtures::node("n1")), None);
    assert_eq!(instances[0].address, "10.0.0.9");
}

#[test]
fn health_is_passing_only_when_every_check_passes_or_warns() {
    let job = job_with(vec![web_service()]);
    let node = node("n1", "192.0.2.1");
    let health =
        |check: CheckHealth| instances_of(&running_alloc("a1", "n1", 1, check), &job, Some(&node), None)[0].health;
    assert_eq!(health(CheckHealth::Passing), ServiceHealth::Passing);
    assert_eq!(health(CheckHealth::Warning), ServiceHealth::Passing);
    assert_eq!(health(CheckHealth::Critical), ServiceHealth::Critical);
    assert_eq!(health(CheckHealth::Pending), ServiceHealth::Critical);

    let mut unreported = running_alloc("a1", "n1", 1, CheckHealth::Passing);
    unreported.checks.clear();
    assert_eq!(instances_of(&unreported, &job, Some(&node), None)[0].health, ServiceHealth::Critical);

    let mut task_restarting = running_alloc("a1", "n1", 1, CheckHealth::Passing);
    task_restarting.task_states.get_mut("server").expect("task state").state = TaskLifecycleState::Pending;
    assert_eq!(instances_of(&task_restarting, &job, Some(&node), None)[0].health, ServiceHealth::Critical);
}

#[test]
fn a_service_without_checks_passes_once_running_and_keeps_its_port_number() {
    let service = Service { name: "admin".to_owned(), port: Some(9000), ..Service::default() };
    let job = job_with(vec![service]);
    let mut alloc = running_alloc("a1", "n1", 1, CheckHealth::Critical);
    alloc.checks.clear();
    let instances = instances_of(&alloc, &job, Some(&node("n1", "192.0.2.1")), None);
    assert_eq!((instances[0].port, instances[0].health), (Some(9000), ServiceHealth::Passing));
}

#[test]
fn names_tags_and_address_resolve_the_allocations_references() {
    let service = Service {
        name: "${NOMAD_JOB_NAME}-${NOMAD_GROUP_NAME}-${node.unique.name}".to_owned(),
        tags: vec!["port-${NOMAD_PORT_http}".to_owned(), "${unknown.reference}".to_owned()],
        address: Some("${NOMAD_IP_http}".to_owned()),
        ..Service::default()
    };
    let job = job_with(vec![service]);
    let alloc = running_alloc("a1", "n1", 20001, CheckHealth::Passing);
    let instance = &instances_of(&alloc, &job, Some(&node("n1", "192.0.2.1")), None)[0];
    assert_eq!(instance.service, "shop-web-n1");
    assert_eq!(instance.tags, vec!["port-20001".to_owned(), "${unknown.reference}".to_owned()]);
    assert_eq!(instance.address, "10.0.0.9");
}

#[test]
fn address_mode_host_announces_the_node_address() {
    let service = Service {
        name: "web".to_owned(),
        address: Some("198.51.100.7".to_owned()),
        address_mode: ServiceAddressMode::Host,
        ..Service::default()
    };
    let job = job_with(vec![service.clone()]);
    let alloc = running_alloc("a1", "n1", 1, CheckHealth::Passing);
    assert_eq!(instances_of(&alloc, &job, Some(&node("n1", "192.0.2.1")), None)[0].address, "192.0.2.1");

    let auto = job_with(vec![Service { address_mode: ServiceAddressMode::Auto, ..service }]);
    assert_eq!(instances_of(&alloc, &auto, Some(&node("n1", "192.0.2.1")), None)[0].address, "198.51.100.7");
}

fn deployment(promoted: bool) -> Deployment {
    let group = DeploymentGroup { desired_canaries: 1, promoted, desired_total: 2, ..DeploymentGroup::default() };
    Deployment {
        id: DeploymentId::new("d1"),
        job_id: JobId::new("shop"),
        job_version: 0,
        job_modify_index: 0,
        status: DeploymentStatus::Running,
        status_description: String::new(),
        groups: BTreeMap::from([("web".to_owned(), group)]),
        create_time: Timestamp::ZERO,
        modify_time: Timestamp::ZERO,
        create_index: 0,
        modify_index: 0,
    }
}

#[test]
fn a_canary_announces_its_canary_tags_until_promoted() {
    let job = job_with(vec![web_service()]);
    let mut alloc = running_alloc("a1", "n1", 1, CheckHealth::Passing);
    alloc.deployment_id = Some(DeploymentId::new("d1"));
    alloc.deployment_status = Some(AllocDeploymentStatus { healthy: None, timestamp: Timestamp::ZERO, canary: true });
    let node = node("n1", "192.0.2.1");

    let waiting = &instances_of(&alloc, &job, Some(&node), Some(&deployment(false)))[0];
    assert!(waiting.canary);
    assert_eq!(waiting.tags, vec!["canary".to_owned()]);

    let promoted = &instances_of(&alloc, &job, Some(&node), Some(&deployment(true)))[0];
    assert!(!promoted.canary);
    assert_eq!(promoted.tags, vec!["v1".to_owned()]);
}

/// A state built the way a real one is: by applying commands.
struct Cluster {
    state: State,
    next_index: u64,
}

impl Cluster {
    fn apply(&mut self, command: &Command) {
        let response = self.state.apply(self.next_index, command);
        self.next_index += 1;
        assert!(!matches!(response, CommandResponse::Rejected { .. }), "{} was rejected: {response:?}", command.kind());
    }

    fn evaluation(&self) -> Evaluation {
        let mut eval = Evaluation::new(
            EvalId::new(format!("eval-{}", self.next_index)),
            JobId::new("shop"),
            50,
            EvalTrigger::JobRegister,
            Timestamp::ZERO,
        );
        eval.status = EvalStatus::Complete;
        eval
    }

    fn report(&mut self, alloc: &Allocation) {
        let update = ClientAllocUpdate {
            alloc_id: alloc.id.clone(),
            client_status: alloc.client_status,
            client_description: String::new(),
            task_states: alloc.task_states.clone(),
            checks: alloc.checks.clone(),
            deployment_health: None,
        };
        self.apply(&Command::UpdateAllocsFromClient { updates: vec![update], evals: Vec::new(), now: Timestamp::ZERO });
    }
}

#[test]
fn the_catalogue_lists_running_allocations_only_and_follows_their_checks() {
    let mut cluster = Cluster { state: State::new(), next_index: 1 };
    for (name, address) in [("n1", "192.0.2.1"), ("n2", "192.0.2.2")] {
        let registration = fixtures::registration_of(&node(name, address));
        cluster.apply(&Command::RegisterNode { registration, evals: Vec::new(), now: Timestamp::ZERO });
    }
    let eval = cluster.evaluation();
    cluster.apply(&Command::RegisterJob { job: job_with(vec![web_service()]), eval, now: Timestamp::ZERO });
    let first = running_alloc("a1", "n1", 20001, CheckHealth::Passing);
    let second = running_alloc("a2", "n2", 20002, CheckHealth::Passing);
    let pending = Allocation {
        client_status: AllocClientStatus::Pending,
        ..running_alloc("a3", "n2", 20003, CheckHealth::Passing)
    };
    let eval = cluster.evaluation();
    let placed = [first.clone(), second.clone(), pending.clone()]
        .map(|alloc| Allocation { client_status: AllocClientStatus::Pending, ..alloc })
        .to_vec();
    let plan = Plan { eval_id: eval.id.clone(), job_id: JobId::new("shop"), place: placed, ..Plan::default() };
    cluster.apply(&Command::ApplyPlan { plan: Box::new(plan), eval, blocked_eval: None, now: Timestamp::ZERO });
    assert!(Catalogue::of(&cluster.state).instances().is_empty(), "nothing runs yet");

    cluster.report(&first);
    cluster.report(&second);
    let catalogue = Catalogue::of(&cluster.state);
    let ports: Vec<(String, Option<u16>, ServiceHealth)> = catalogue
        .service("web")
        .iter()
        .map(|instance| (instance.node_name.clone(), instance.port, instance.health))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("n1".to_owned(), Some(20001), ServiceHealth::Passing),
            ("n2".to_owned(), Some(20002), ServiceHealth::Passing)
        ]
    );
    assert_eq!(catalogue.index(), cluster.state.last_index());
    assert!(catalogue.service("other").is_empty());

    let failing = Allocation { checks: vec![check_status("alive", CheckHealth::Critical)], ..second.clone() };
    cluster.report(&failing);
    let catalogue = Catalogue::of(&cluster.state);
    assert_eq!(
        summarize(catalogue.instances()),
        vec![ServiceListEntry { name: "web".to_owned(), instances: 2, healthy: 1, tags: vec!["v1".to_owned()] }]
    );

    let stop = PlanStop {
        alloc_id: AllocId::new("a1"),
        node_id: NodeId::new("n1"),
        desired_status: AllocDesiredStatus::Stop,
        description: "stopped by the test".to_owned(),
        client_status: None,
        follow_up_eval: None,
    };
    cluster.apply(&Command::StopAllocs { stops: vec![stop], evals: Vec::new(), now: Timestamp::ZERO });
    let remaining: Vec<String> =
        Catalogue::of(&cluster.state).instances().iter().map(|instance| instance.alloc_id.to_string()).collect();
    assert_eq!(remaining, vec!["a2".to_owned()], "a stopped allocation leaves the catalogue at once");
}
