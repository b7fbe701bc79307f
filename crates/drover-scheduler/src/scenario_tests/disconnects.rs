//! Disconnected nodes (the `disconnect` block): allocations become
//! `unknown`, are replaced (or not), are declared lost after `lost_after`,
//! and are settled against their replacement per `disconnect.reconcile`
//! when their node comes back.

use std::time::Duration;

use drover_types::fixtures;
use drover_types::{
    Affinity, AllocClientStatus, AllocDesiredStatus, AllocUpdate, Allocation, ConstraintOperator, DisconnectStrategy,
    DurationSpec, EvalTrigger, GroupChanges, JobId, NodeStatus, ReconcileMode, Timestamp,
};
use rand::rngs::StdRng;

use super::{
    alloc_by_index, assert_replan_is_noop, changes, cluster, live, node_id, register, rng, run, start, system_job,
};
use crate::harness::Cluster;
use crate::reasons;
use crate::view::ClusterView;

const LOST_AFTER_SECS: u64 = 600;

fn waits(replace: bool, reconcile: ReconcileMode) -> DisconnectStrategy {
    DisconnectStrategy { lost_after: Some(DurationSpec::from_secs(LOST_AFTER_SECS)), replace, reconcile }
}

fn at(seconds: u64) -> Timestamp {
    start().plus(Duration::from_secs(seconds))
}

/// A service job `web` of `count` allocations whose group has `strategy`.
fn disconnecting_job(count: u32, strategy: DisconnectStrategy) -> drover_types::Job {
    let mut job = fixtures::service_job("web", count);
    job.groups[0].disconnect = Some(strategy);
    job
}

fn stored(cluster: &Cluster, alloc: &Allocation) -> Allocation {
    cluster.alloc(&alloc.id).cloned().expect("the allocation")
}

#[test]
fn allocations_on_a_disconnected_node_become_unknown_and_are_replaced() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, disconnecting_job(2, waits(true, ReconcileMode::BestScore)));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    let original = alloc_by_index(&cluster, &id, 0);
    cluster.set_node_status(&original.node_id, NodeStatus::Disconnected, at(60));
    let plan = run(&mut cluster, &id, at(60), &mut rng);
    assert_eq!(
        plan.updates,
        [AllocUpdate {
            alloc_id: original.id.clone(),
            node_id: original.node_id.clone(),
            client_status: Some(AllocClientStatus::Unknown),
            follow_up_eval: None,
            description: "node is disconnected".to_owned(),
        }]
    );
    assert!(plan.stop.is_empty(), "an unknown allocation may still run: it is not stopped");
    assert_eq!(plan.place.len(), 1);
    let replacement = &plan.place[0];
    assert_eq!((replacement.index, replacement.previous_alloc.as_ref()), (0, Some(&original.id)));
    assert_ne!(replacement.node_id, original.node_id);
    assert_eq!(changes(&plan), GroupChanges { place: 1, disconnect: 1, ignore: 1, ..GroupChanges::default() });
    assert_eq!(plan.follow_ups.len(), 1);
    assert_eq!(plan.follow_ups[0].wait_until, Some(at(60 + LOST_AFTER_SECS)));
    assert_eq!(plan.follow_ups[0].triggered_by, EvalTrigger::NodeUpdate);
    let unknown = stored(&cluster, &original);
    assert_eq!((unknown.client_status, unknown.desired_status), (AllocClientStatus::Unknown, AllocDesiredStatus::Run));
    assert_eq!(unknown.client_description, reasons::ALLOC_UNKNOWN);

    // After lost_after, the follow-up declares it lost, without a second
    // replacement.
    let follow_up = plan.follow_ups[0].clone();
    let expiry = at(60 + LOST_AFTER_SECS);
    let expired = cluster.process(&follow_up, expiry, &mut rng).accepted;
    assert_eq!(expired.stop.len(), 1);
    assert_eq!(expired.stop[0].alloc_id, original.id);
    assert_eq!(expired.stop[0].client_status, Some(AllocClientStatus::Lost));
    assert_eq!(expired.stop[0].description, reasons::ALLOC_LOST_AFTER_DISCONNECT);
    assert!(expired.place.is_empty());
    assert_replan_is_noop(&cluster, &id, expiry, &mut rng);
}

#[test]
fn without_replace_an_unknown_allocation_keeps_its_slot_until_lost_after() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, disconnecting_job(2, waits(false, ReconcileMode::BestScore)));
    run(&mut cluster, &id, start(), &mut rng);
    let original = alloc_by_index(&cluster, &id, 1);
    cluster.set_node_status(&original.node_id, NodeStatus::Disconnected, at(60));
    let plan = run(&mut cluster, &id, at(60), &mut rng);
    assert_eq!(plan.updates.len(), 1);
    assert!(plan.place.is_empty(), "replace = false");
    assert_eq!(changes(&plan), GroupChanges { disconnect: 1, ignore: 2, ..GroupChanges::default() });
    assert_replan_is_noop(&cluster, &id, at(60 + LOST_AFTER_SECS - 1), &mut rng);

    let expired = run(&mut cluster, &id, at(60 + LOST_AFTER_SECS), &mut rng);
    assert_eq!(expired.stop.len(), 1);
    assert_eq!(expired.stop[0].client_status, Some(AllocClientStatus::Lost));
    assert_eq!(expired.place.len(), 1, "lost now, so replaced");
    assert_eq!(expired.place[0].previous_alloc.as_ref(), Some(&original.id));
    assert_eq!(expired.place[0].index, 1);
}

#[test]
fn a_down_node_loses_an_unknown_allocation_without_replacing_it_twice() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, disconnecting_job(2, waits(true, ReconcileMode::BestScore)));
    run(&mut cluster, &id, start(), &mut rng);
    let original = alloc_by_index(&cluster, &id, 0);
    cluster.set_node_status(&original.node_id, NodeStatus::Disconnected, at(60));
    run(&mut cluster, &id, at(60), &mut rng);
    cluster.set_node_status(&original.node_id, NodeStatus::Down, at(120));
    let plan = run(&mut cluster, &id, at(120), &mut rng);
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(
        (plan.stop[0].description.as_str(), plan.stop[0].client_status),
        (reasons::ALLOC_LOST, Some(AllocClientStatus::Lost))
    );
    assert!(plan.place.is_empty(), "its replacement runs already");
    assert_eq!(live(&cluster, &id).len(), 2);
}

#[test]
fn a_system_allocation_on_a_disconnected_node_becomes_unknown_and_stays_there() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let mut job = system_job();
    job.groups[0].disconnect = Some(waits(true, ReconcileMode::BestScore));
    let id = register(&mut cluster, job);
    run(&mut cluster, &id, start(), &mut rng);
    cluster.set_node_status(&node_id("n0"), NodeStatus::Disconnected, at(60));
    let plan = run(&mut cluster, &id, at(60), &mut rng);
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(plan.updates[0].client_status, Some(AllocClientStatus::Unknown));
    assert!(plan.place.is_empty() && plan.stop.is_empty(), "system allocations never move");
    let expired = run(&mut cluster, &id, at(60 + LOST_AFTER_SECS), &mut rng);
    assert_eq!(expired.stop.len(), 1);
    assert_eq!(expired.stop[0].description, reasons::ALLOC_LOST_AFTER_DISCONNECT);
}

// ----- reconnects -----

/// A group of one allocation whose node disconnected at 60 s (replacement
/// placed, running from 120 s) and came back at 180 s; at 240 s the agent
/// reported the original running again (it started at 0 s).
struct Reconnected {
    cluster: Cluster,
    rng: StdRng,
    id: JobId,
    original: Allocation,
    replacement: Allocation,
}

const REPORTED_AT_SECS: u64 = 240;

fn reconnected(reconcile: ReconcileMode, affinity_to_first_node: bool) -> Reconnected {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = disconnecting_job(1, waits(true, reconcile));
    if affinity_to_first_node {
        cluster.change_node(&node_id("n0"), start(), |node| {
            node.meta.insert("rack".into(), "r1".into());
        });
        job.groups[0].affinities.push(Affinity {
            attribute: "${meta.rack}".into(),
            operator: ConstraintOperator::Equal,
            value: "r1".into(),
            weight: 100,
        });
    }
    let id = register(&mut cluster, job);
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    let original = alloc_by_index(&cluster, &id, 0);
    if affinity_to_first_node {
        assert_eq!(original.node_id, node_id("n0"));
    }
    cluster.set_node_status(&original.node_id, NodeStatus::Disconnected, at(60));
    let replacement = run(&mut cluster, &id, at(60), &mut rng).place[0].clone();
    cluster.simulate_agents(at(120), true);
    cluster.set_node_status(&original.node_id, NodeStatus::Ready, at(180));
    // Back, but not heard from: the original waits, the replacement serves.
    assert_replan_is_noop(&cluster, &id, at(180), &mut rng);
    cluster.simulate_agents(at(REPORTED_AT_SECS), true);
    assert_eq!(stored(&cluster, &original).client_status, AllocClientStatus::Running);
    Reconnected { cluster, rng, id, original, replacement }
}

/// Plans the reconnect; returns the allocation it stopped and its reason.
fn settle(setup: &mut Reconnected) -> (drover_types::AllocId, String) {
    let plan = run(&mut setup.cluster, &setup.id, at(REPORTED_AT_SECS), &mut setup.rng);
    assert!(plan.place.is_empty());
    assert_eq!(plan.stop.len(), 1, "{plan:#?}");
    assert_eq!(changes(&plan).reconnect, 1);
    assert_eq!(live(&setup.cluster, &setup.id).len(), 1);
    (plan.stop[0].alloc_id.clone(), plan.stop[0].description.clone())
}

#[test]
fn reconnecting_with_keep_original_stops_the_replacement() {
    let mut setup = reconnected(ReconcileMode::KeepOriginal, false);
    let stopped = settle(&mut setup);
    assert_eq!(stopped, (setup.replacement.id.clone(), reasons::ALLOC_RECONNECT_KEPT_ORIGINAL.to_owned()));
}

#[test]
fn reconnecting_with_keep_replacement_stops_the_original() {
    let mut setup = reconnected(ReconcileMode::KeepReplacement, false);
    let stopped = settle(&mut setup);
    assert_eq!(stopped, (setup.original.id.clone(), reasons::ALLOC_RECONNECT_KEPT_REPLACEMENT.to_owned()));
}

#[test]
fn reconnecting_with_longest_running_keeps_the_one_started_first() {
    let mut setup = reconnected(ReconcileMode::LongestRunning, false);
    let (stopped, _) = settle(&mut setup);
    assert_eq!(stopped, setup.replacement.id, "the original started at 0 s, the replacement at 120 s");

    let mut restarted = reconnected(ReconcileMode::LongestRunning, false);
    let original_id = restarted.original.id.clone();
    restarted.cluster.set_client_status(&original_id, AllocClientStatus::Running, at(REPORTED_AT_SECS));
    let (stopped_after_restart, _) = settle(&mut restarted);
    assert_eq!(stopped_after_restart, original_id, "its tasks restarted at 240 s, after the replacement's");
}

#[test]
fn reconnecting_with_best_score_keeps_the_better_node_and_the_replacement_on_a_tie() {
    let mut tie = reconnected(ReconcileMode::BestScore, false);
    let (stopped_on_tie, _) = settle(&mut tie);
    assert_eq!(stopped_on_tie, tie.original.id, "identical nodes: the replacement stays, nothing flaps");

    let mut preferred = reconnected(ReconcileMode::BestScore, true);
    let (stopped_for_affinity, _) = settle(&mut preferred);
    assert_eq!(stopped_for_affinity, preferred.replacement.id, "the original's node matches the affinity");
}

// ----- chains of replacements (found by the property tests) -----

/// A group of one allocation, `original`, whose node disconnected at 60 s;
/// its replacement runs from 120 s.
fn replaced_while_disconnected(reconcile: ReconcileMode) -> Reconnected {
    let mut cluster = cluster(4);
    let mut rng = rng();
    let id = register(&mut cluster, disconnecting_job(1, waits(true, reconcile)));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    let original = alloc_by_index(&cluster, &id, 0);
    cluster.set_node_status(&original.node_id, NodeStatus::Disconnected, at(60));
    let replacement = run(&mut cluster, &id, at(60), &mut rng).place[0].clone();
    cluster.simulate_agents(at(120), true);
    Reconnected { cluster, rng, id, original, replacement }
}

#[test]
fn a_failed_replacement_is_stopped_when_its_original_is_back() {
    let mut setup = replaced_while_disconnected(ReconcileMode::BestScore);
    let replacement_id = setup.replacement.id.clone();
    setup.cluster.set_client_status(&replacement_id, AllocClientStatus::Failed, at(130));
    let waiting = run(&mut setup.cluster, &setup.id, at(130), &mut setup.rng);
    assert_eq!(waiting.updates.len(), 1, "the failed replacement waits for its reschedule delay");
    setup.cluster.set_node_status(&setup.original.node_id, NodeStatus::Ready, at(180));
    setup.cluster.simulate_agents(at(240), true);
    let plan = run(&mut setup.cluster, &setup.id, at(240), &mut setup.rng);
    assert!(plan.place.is_empty(), "the original holds the slot: no reschedule");
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(
        (&plan.stop[0].alloc_id, plan.stop[0].description.as_str()),
        (&replacement_id, reasons::ALLOC_FAILED_ORIGINAL_BACK)
    );
    assert_eq!(live(&setup.cluster, &setup.id).iter().map(|alloc| &alloc.id).collect::<Vec<_>>(), [&setup.original.id]);
}

#[test]
fn a_scale_down_stops_an_original_waiting_for_its_agent_with_its_replacement() {
    let mut setup = replaced_while_disconnected(ReconcileMode::BestScore);
    setup.cluster.set_node_status(&setup.original.node_id, NodeStatus::Ready, at(180));
    assert_replan_is_noop(&setup.cluster, &setup.id, at(180), &mut setup.rng);
    let mut scaled = setup.cluster.job(&setup.id).cloned().expect("the job");
    scaled.groups[0].count = 0;
    register(&mut setup.cluster, scaled);
    let plan = run(&mut setup.cluster, &setup.id, at(180), &mut setup.rng);
    let mut stopped: Vec<&drover_types::AllocId> = plan.stop.iter().map(|stop| &stop.alloc_id).collect();
    stopped.sort_unstable();
    let mut expected = vec![&setup.original.id, &setup.replacement.id];
    expected.sort_unstable();
    assert_eq!(stopped, expected);
    assert!(plan.stop.iter().all(|stop| stop.description == reasons::ALLOC_NOT_NEEDED));
}

#[test]
fn an_original_that_wins_is_compared_with_every_later_replacement() {
    let mut setup = replaced_while_disconnected(ReconcileMode::KeepOriginal);
    let first_replacement = setup.replacement.clone();
    setup.cluster.set_node_status(&first_replacement.node_id, NodeStatus::Disconnected, at(130));
    let second_replacement = run(&mut setup.cluster, &setup.id, at(130), &mut setup.rng).place[0].clone();
    assert_eq!(second_replacement.previous_alloc.as_ref(), Some(&first_replacement.id));
    setup.cluster.simulate_agents(at(140), true);
    setup.cluster.set_node_status(&setup.original.node_id, NodeStatus::Ready, at(150));
    setup.cluster.set_node_status(&first_replacement.node_id, NodeStatus::Ready, at(150));
    setup.cluster.simulate_agents(at(200), true);
    let plan = run(&mut setup.cluster, &setup.id, at(200), &mut setup.rng);
    let mut stopped: Vec<&drover_types::AllocId> = plan.stop.iter().map(|stop| &stop.alloc_id).collect();
    stopped.sort_unstable();
    let mut expected = vec![&first_replacement.id, &second_replacement.id];
    expected.sort_unstable();
    assert_eq!(stopped, expected, "the original is kept over both");
    assert_eq!(changes(&plan).reconnect, 2);
    assert_eq!(live(&setup.cluster, &setup.id).len(), 1);
}
