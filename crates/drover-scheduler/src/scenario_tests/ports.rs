//! Ports (a group's `network` block): static ports reserved, dynamic ones
//! drawn from the node's range, both part of feasibility, kept by the
//! allocation through in-place updates and given back by replacements.

use drover_types::fixtures::{self, service_job};
use drover_types::network::DYNAMIC_PORTS_META;
use drover_types::{JobType, NetworkSpec, PortSpec};

use super::{cluster, compute_plan, live, register, rng, run, start};
use crate::harness::Cluster;
use crate::verify_plan;
use crate::view::ClusterView;

fn network(ports: &[(&str, Option<u16>)]) -> Option<NetworkSpec> {
    Some(NetworkSpec {
        ports: ports
            .iter()
            .map(|(label, static_port)| PortSpec { label: (*label).to_owned(), static_port: *static_port })
            .collect(),
    })
}

fn job_with_ports(id: &str, job_type: JobType, count: u32, ports: &[(&str, Option<u16>)]) -> drover_types::Job {
    let mut job = fixtures::job(id, job_type, count);
    job.groups[0].network = network(ports);
    job
}

#[test]
fn a_taken_static_port_makes_a_node_infeasible_and_the_failure_says_so() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let first = register(&mut cluster, job_with_ports("first", JobType::Service, 2, &[("admin", Some(9000))]));
    run(&mut cluster, &first, start(), &mut rng);
    let second = register(&mut cluster, job_with_ports("second", JobType::Service, 2, &[("admin", Some(9000))]));
    let plan = run(&mut cluster, &second, start(), &mut rng);

    assert_eq!(plan.place.len(), 1, "only the third node has port 9000 free");
    // When the second instance fails, every node holds port 9000: two for
    // the first job, one for this job's first instance.
    let failure = plan.failed.get("app").expect("the second instance failed");
    assert_eq!(failure.ports_exhausted.get("static port 9000 in use"), Some(&3));
    assert_eq!(failure.summary(), "3 nodes evaluated: 3 with static port 9000 in use");
    let mut nodes: Vec<String> =
        cluster.allocations().filter(|alloc| alloc.wants_to_run()).map(|alloc| alloc.node_id.to_string()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n0", "n1", "n2"], "one holder of port 9000 per node");
    assert!(cluster.allocations().all(|alloc| alloc.ports[0].value == 9000 && alloc.ports[0].label == "admin"));
}

#[test]
fn dynamic_ports_on_a_node_are_distinct_until_its_range_is_full() {
    let mut cluster = Cluster::new();
    let mut node = fixtures::node("n0");
    node.meta.insert(DYNAMIC_PORTS_META.into(), "30000-30002".into());
    cluster.add_node(node);
    let mut rng = rng();
    let id = register(&mut cluster, job_with_ports("web", JobType::Service, 4, &[("http", None)]));
    let plan = run(&mut cluster, &id, start(), &mut rng);

    let mut ports: Vec<u16> = live(&cluster, &id).iter().map(|alloc| alloc.ports[0].value).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![30_000, 30_001, 30_002]);
    let failure = plan.failed.get("app").expect("the fourth instance has no port");
    assert_eq!(failure.ports_exhausted.get("no free dynamic port"), Some(&1));
    assert!(live(&cluster, &id).iter().all(|alloc| alloc.ports[0].host_ip == "127.0.0.1"));
}

#[test]
fn a_system_job_update_takes_over_its_static_port_on_the_same_node() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, job_with_ports("exporter", JobType::System, 1, &[("metrics", Some(9100))]));
    run(&mut cluster, &id, start(), &mut rng);
    let mut changed = cluster.job(&id).cloned().expect("registered");
    changed.groups[0].tasks[0].env.insert("VERSION".into(), "2".into());
    cluster.register_job(changed, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);

    assert_eq!(plan.place.len(), 2, "{plan:#?}");
    assert_eq!(plan.stop.len(), 2);
    assert!(plan.place.iter().all(|alloc| alloc.ports[0].value == 9100));
}

#[test]
fn an_in_place_update_keeps_the_ports_and_a_new_network_replaces_them() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let id = register(&mut cluster, job_with_ports("web", JobType::Service, 1, &[("http", None)]));
    run(&mut cluster, &id, start(), &mut rng);
    let before = live(&cluster, &id)[0].clone();

    let mut scaled = cluster.job(&id).cloned().expect("registered");
    scaled.meta.insert("owner".into(), "ops".into());
    cluster.register_job(scaled, start());
    let in_place = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(in_place.in_place.len(), 1);
    assert_eq!(live(&cluster, &id)[0].ports, before.ports);

    let mut more_ports = cluster.job(&id).cloned().expect("registered");
    more_ports.groups[0].network = network(&[("http", None), ("admin", Some(9000))]);
    cluster.register_job(more_ports, start());
    let replaced = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(replaced.place.len(), 1, "{replaced:#?}");
    let labels: Vec<&str> = replaced.place[0].ports.iter().map(|port| port.label.as_str()).collect();
    assert_eq!(labels, vec!["http", "admin"]);
}

#[test]
fn the_leader_refuses_a_port_another_plan_took_since() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let first = register(&mut cluster, job_with_ports("first", JobType::Service, 1, &[("admin", Some(9000))]));
    let second = register(&mut cluster, job_with_ports("second", JobType::Service, 1, &[("admin", Some(9000))]));
    let (_, first_plan) = compute_plan(&cluster, &first, start(), &mut rng);
    let (_, second_plan) = compute_plan(&cluster, &second, start(), &mut rng);
    assert_eq!(second_plan.place.len(), 1, "computed on the same snapshot, both plans take the port");

    cluster.apply(&first_plan, start());
    let verified = verify_plan(&cluster, &second_plan);
    assert_eq!(verified.rejected_nodes, vec![drover_types::NodeId::new("n0")]);
    assert!(verified.accepted.place.is_empty());
}

#[test]
fn a_group_without_ports_gets_none() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("plain", 2));
    run(&mut cluster, &id, start(), &mut rng);
    assert!(live(&cluster, &id).iter().all(|alloc| alloc.ports.is_empty()));
}
