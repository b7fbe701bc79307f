//! Reconciliation and placement scenarios, one per behaviour, run through
//! the harness: schedule, check the plan, commit it, and check that
//! planning again changes nothing. Deployments and canaries are in
//! [`rollouts`], disconnected nodes in [`disconnects`].

mod disconnects;
mod ports;
mod rollouts;

use std::time::Duration;

use drover_types::fixtures::{self, batch_job, service_job};
use drover_types::{
    Affinity, AllocClientStatus, AllocDesiredStatus, AllocId, AllocUpdate, Allocation, Constraint, ConstraintOperator,
    DelayFunction, DisconnectStrategy, DrainStrategy, DurationSpec, EvalTrigger, Evaluation, GroupChanges, Job, JobId,
    JobType, NodeEligibility, NodeId, NodeStatus, PeriodicConfig, Plan, PlanStop, ReschedulePolicy, Resources, Spread,
    Timestamp, UpdateStrategy,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::harness::Cluster;
use crate::reasons;
use crate::view::ClusterView;
use crate::{schedule, verify_plan};

/// What each task of a fixture job holds: ten fit on a fixture node
/// (1000 MHz and 1000 MiB).
const SMALL: Resources = fixtures::TASK_RESOURCES;

fn start() -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000)
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn cluster(num_nodes: usize) -> Cluster {
    let mut cluster = Cluster::new();
    for number in 0..num_nodes {
        cluster.add_node(fixtures::node(&format!("n{number}")));
    }
    cluster
}

fn node_id(name: &str) -> NodeId {
    NodeId::new(name)
}

/// Schedules `job_id` without committing.
fn compute_plan(cluster: &Cluster, job_id: &JobId, now: Timestamp, rng: &mut StdRng) -> (Evaluation, Plan) {
    let eval = cluster.evaluation(job_id, EvalTrigger::JobRegister, now, rng);
    let plan = schedule(cluster, cluster.job(job_id), &eval, now, rng);
    (eval, plan)
}

/// Schedules and commits, then checks that planning again is a no-op.
fn run(cluster: &mut Cluster, job_id: &JobId, now: Timestamp, rng: &mut StdRng) -> Plan {
    let (_, plan) = compute_plan(cluster, job_id, now, rng);
    let verified = verify_plan(&*cluster, &plan);
    assert!(verified.is_fully_accepted(), "{verified:?}");
    cluster.apply(&plan, now);
    assert_replan_is_noop(cluster, job_id, now, rng);
    plan
}

fn assert_replan_is_noop(cluster: &Cluster, job_id: &JobId, now: Timestamp, rng: &mut StdRng) {
    let (_, again) = compute_plan(cluster, job_id, now, rng);
    assert!(again.is_noop(), "planning again must change nothing: {again:#?}");
}

fn live(cluster: &Cluster, job_id: &JobId) -> Vec<Allocation> {
    let mut allocs: Vec<Allocation> = cluster.live_allocs(job_id).into_iter().cloned().collect();
    allocs.sort_by_key(|alloc| alloc.index);
    allocs
}

fn live_indexes(cluster: &Cluster, job_id: &JobId) -> Vec<u32> {
    live(cluster, job_id).iter().map(|alloc| alloc.index).collect()
}

fn stops_with<'p>(plan: &'p Plan, description: &str) -> Vec<&'p PlanStop> {
    plan.stop.iter().filter(|stop| stop.description == description).collect()
}

fn alloc_by_index(cluster: &Cluster, job_id: &JobId, index: u32) -> Allocation {
    live(cluster, job_id).into_iter().find(|alloc| alloc.index == index).expect("a live allocation with that index")
}

fn register(cluster: &mut Cluster, job: Job) -> JobId {
    let id = job.id.clone();
    cluster.register_job(job, start());
    id
}

fn changes(plan: &Plan) -> GroupChanges {
    plan.annotations.get("app").copied().unwrap_or_default()
}

// ----- service -----

#[test]
fn a_service_job_gets_count_complete_allocations() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 5));
    let (eval, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 5);
    assert_eq!(plan.eval_id, eval.id);
    assert_eq!(plan.job_modify_index, cluster.job(&id).map(|job| job.job_modify_index).unwrap_or_default());
    let mut names: Vec<&str> = plan.place.iter().map(|alloc| alloc.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["web.app[0]", "web.app[1]", "web.app[2]", "web.app[3]", "web.app[4]"]);
    for alloc in &plan.place {
        assert_eq!(alloc.id.as_str().len(), 36);
        assert_eq!(alloc.eval_id, eval.id);
        assert_eq!(alloc.create_time, start());
        assert_eq!(alloc.resources, SMALL);
        assert_eq!(alloc.job_version, 0);
        assert_eq!(alloc.group, "app");
        assert_eq!(alloc.desired_status, AllocDesiredStatus::Run);
        assert_eq!(alloc.client_status, AllocClientStatus::Pending);
        assert_eq!(alloc.node_name, alloc.node_id.as_str());
        assert_eq!(alloc.deployment_status, None, "no update block, no rollout");
    }
    let unique_ids: std::collections::BTreeSet<&AllocId> = plan.place.iter().map(|alloc| &alloc.id).collect();
    assert_eq!(unique_ids.len(), 5);
    assert_eq!(changes(&plan), GroupChanges { place: 5, ..GroupChanges::default() });
    assert!(plan.failed.is_empty());
    cluster.apply(&plan, start());
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
}

#[test]
fn a_groups_allocations_spread_over_nodes() {
    let mut cluster = cluster(5);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 5));
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let nodes: std::collections::BTreeSet<&NodeId> = plan.place.iter().map(|alloc| &alloc.node_id).collect();
    assert_eq!(nodes.len(), 5, "anti-affinity puts one allocation on each node");
}

#[test]
fn scaling_down_stops_the_highest_indexes() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 5);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    job.groups[0].count = 3;
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let stopped = stops_with(&plan, reasons::ALLOC_NOT_NEEDED);
    assert_eq!(stopped.len(), 2);
    assert!(plan.place.is_empty());
    assert_eq!(live_indexes(&cluster, &id), [0, 1, 2]);
    assert_eq!(changes(&plan).stop, 2);
    assert_eq!(changes(&plan).in_place, 3, "count is not a task change");
}

#[test]
fn scaling_up_reuses_free_indexes_lowest_first() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 3);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    // An operator stops web.app[1] and scales to 2 at once: index 1 is free.
    job.groups[0].count = 2;
    register(&mut cluster, job.clone());
    let freed = alloc_by_index(&cluster, &id, 1);
    let operator_stop = Plan {
        stop: vec![PlanStop {
            alloc_id: freed.id.clone(),
            node_id: freed.node_id.clone(),
            desired_status: AllocDesiredStatus::Stop,
            description: "stopped by operator".into(),
            client_status: None,
            follow_up_eval: None,
        }],
        ..Plan::default()
    };
    cluster.apply(&operator_stop, start());
    assert_eq!(live_indexes(&cluster, &id), [0, 2]);
    job.groups[0].count = 5;
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let mut new_indexes: Vec<u32> = plan.place.iter().map(|alloc| alloc.index).collect();
    new_indexes.sort_unstable();
    assert_eq!(new_indexes, [1, 3, 4]);
    assert_eq!(live_indexes(&cluster, &id), [0, 1, 2, 3, 4]);
}

#[test]
fn stopping_a_job_stops_every_live_allocation() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 4));
    run(&mut cluster, &id, start(), &mut rng);
    let down_node = alloc_by_index(&cluster, &id, 0).node_id;
    cluster.set_node_status(&down_node, NodeStatus::Down, start());
    cluster.stop_job(&id, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 4);
    assert!(plan.place.is_empty());
    for stop in &plan.stop {
        if stop.node_id == down_node {
            assert_eq!(
                (stop.description.as_str(), stop.client_status),
                (reasons::ALLOC_LOST, Some(AllocClientStatus::Lost))
            );
        } else {
            assert_eq!((stop.description.as_str(), stop.client_status), (reasons::JOB_STOPPED, None));
        }
    }
    assert!(live(&cluster, &id).is_empty());
}

#[test]
fn purging_a_job_stops_every_live_allocation() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 3));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.purge_job(&id, start());
    let eval = cluster.evaluation(&id, EvalTrigger::JobDeregister, start(), &mut rng);
    let plan = schedule(&cluster, None, &eval, start(), &mut rng);
    assert_eq!(stops_with(&plan, reasons::JOB_PURGED).len(), 3);
    assert_eq!(plan.job_modify_index, 0);
    assert!(verify_plan(&cluster, &plan).is_fully_accepted());
    cluster.apply(&plan, start());
    let again = schedule(&cluster, None, &eval, start(), &mut rng);
    assert!(again.is_noop());
}

#[test]
fn a_removed_group_is_stopped() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let mut job = service_job("web", 2);
    let mut second_group = job.groups[0].clone();
    second_group.name = "worker".into();
    job.groups.push(second_group);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    job.groups.truncate(1);
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(stops_with(&plan, reasons::GROUP_REMOVED).len(), 2);
    assert_eq!(plan.annotations.get("worker").map(|changes| changes.stop), Some(2));
}

#[test]
fn allocations_on_a_down_node_are_lost_and_replaced_elsewhere() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 3));
    run(&mut cluster, &id, start(), &mut rng);
    let lost = alloc_by_index(&cluster, &id, 1);
    cluster.set_node_status(&lost.node_id, NodeStatus::Down, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].alloc_id, lost.id);
    assert_eq!(plan.stop[0].client_status, Some(AllocClientStatus::Lost));
    assert_eq!(plan.stop[0].description, reasons::ALLOC_LOST);
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].index, 1, "the replacement keeps the name");
    assert_eq!(plan.place[0].previous_alloc.as_ref(), Some(&lost.id));
    assert_ne!(plan.place[0].node_id, lost.node_id);
    assert_eq!(changes(&plan), GroupChanges { place: 1, lost: 1, ignore: 2, ..GroupChanges::default() });
}

#[test]
fn allocations_on_a_removed_node_are_lost() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 2));
    run(&mut cluster, &id, start(), &mut rng);
    let lost = alloc_by_index(&cluster, &id, 0);
    cluster.remove_node(&lost.node_id);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].client_status, Some(AllocClientStatus::Lost));
    assert_eq!(plan.place.len(), 1);
}

#[test]
fn a_disconnected_node_loses_its_allocations_unless_the_group_waits() {
    for (disconnect, expect_lost) in [
        (None, true),
        (Some(DisconnectStrategy { lost_after: None, ..DisconnectStrategy::default() }), true),
        (
            Some(DisconnectStrategy {
                lost_after: Some(DurationSpec::from_secs(600)),
                replace: false,
                ..DisconnectStrategy::default()
            }),
            false,
        ),
    ] {
        let mut cluster = cluster(2);
        let mut rng = rng();
        let mut job = service_job("web", 2);
        job.groups[0].disconnect = disconnect;
        let id = register(&mut cluster, job);
        run(&mut cluster, &id, start(), &mut rng);
        let first = alloc_by_index(&cluster, &id, 0);
        cluster.set_node_status(&first.node_id, NodeStatus::Disconnected, start());
        let plan = run(&mut cluster, &id, start(), &mut rng);
        if expect_lost {
            assert_eq!(plan.stop.len(), 1, "{disconnect:?}");
            assert_eq!(plan.stop[0].description, reasons::ALLOC_LOST_DISCONNECTED);
            assert_eq!(plan.stop[0].client_status, Some(AllocClientStatus::Lost));
            assert_eq!(plan.place.len(), 1, "{disconnect:?}");
        } else {
            assert!(plan.stop.is_empty() && plan.place.is_empty(), "{disconnect:?}: {plan:#?}");
            assert_eq!(plan.updates.len(), 1, "it only becomes unknown");
        }
    }
}

// ----- failures and rescheduling -----

fn fail(cluster: &mut Cluster, job_id: &JobId, index: u32, at: Timestamp) -> Allocation {
    let alloc = alloc_by_index(cluster, job_id, index);
    assert!(cluster.set_client_status(&alloc.id, AllocClientStatus::Failed, at));
    alloc
}

#[test]
fn a_failed_allocation_whose_delay_has_passed_is_replaced_now() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 2));
    run(&mut cluster, &id, start(), &mut rng);
    let failed = fail(&mut cluster, &id, 0, start());
    let later = start().plus(Duration::from_secs(31));
    let plan = run(&mut cluster, &id, later, &mut rng);
    assert_eq!(plan.place.len(), 1);
    let replacement = &plan.place[0];
    assert_eq!(replacement.index, 0);
    assert_eq!(replacement.previous_alloc.as_ref(), Some(&failed.id));
    assert_eq!(replacement.reschedule_events.len(), 1);
    let event = &replacement.reschedule_events[0];
    assert_eq!((&event.prev_alloc_id, &event.prev_node_id), (&failed.id, &failed.node_id));
    assert_eq!(event.delay, DurationSpec::from_secs(30), "the service default's first delay");
    assert_eq!(event.time, later);
    assert_ne!(replacement.node_id, failed.node_id, "the node it failed on is penalised");
    let stopped = stops_with(&plan, reasons::ALLOC_RESCHEDULED);
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].alloc_id, failed.id);
    assert_eq!(stopped[0].desired_status, AllocDesiredStatus::Stop);
    assert_eq!(changes(&plan).reschedule_now, 1);
}

#[test]
fn a_failed_allocation_waits_for_its_delay_through_a_follow_up_evaluation() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 2));
    run(&mut cluster, &id, start(), &mut rng);
    let failed_at = start().plus(Duration::from_secs(100));
    let failed = fail(&mut cluster, &id, 1, failed_at);
    let soon = failed_at.plus(Duration::from_secs(10));
    let plan = run(&mut cluster, &id, soon, &mut rng);
    assert!(plan.place.is_empty());
    assert_eq!(plan.follow_ups.len(), 1);
    let follow_up = &plan.follow_ups[0];
    assert_eq!(follow_up.triggered_by, EvalTrigger::RetryFailedAlloc);
    assert_eq!(follow_up.wait_until, Some(failed_at.plus(Duration::from_secs(30))));
    assert_eq!(follow_up.job_id, id);
    assert!(plan.stop.is_empty(), "it waits, wanted, for its replacement");
    assert_eq!(
        plan.updates,
        [AllocUpdate {
            alloc_id: failed.id.clone(),
            node_id: failed.node_id.clone(),
            client_status: None,
            follow_up_eval: Some(follow_up.id.clone()),
            description: reasons::ALLOC_RESCHEDULE_LATER.to_owned(),
        }]
    );
    assert_eq!(changes(&plan).reschedule_later, 1);
    let marked = cluster.alloc(&failed.id).expect("the failed allocation");
    assert_eq!(marked.follow_up_eval.as_ref(), Some(&follow_up.id));
    assert_eq!(marked.desired_status, AllocDesiredStatus::Run);
    assert_eq!(marked.client_status, AllocClientStatus::Failed, "the update leaves the client status alone");

    // The follow-up evaluation runs at its time and places the replacement.
    let due = follow_up.wait_until.unwrap_or(soon);
    let follow_up_eval = follow_up.clone();
    let verified = cluster.process(&follow_up_eval, due, &mut rng);
    let replacement_plan = verified.accepted;
    assert_eq!(replacement_plan.place.len(), 1);
    assert_eq!(replacement_plan.place[0].previous_alloc.as_ref(), Some(&failed.id));
    assert_eq!(replacement_plan.place[0].index, 1);
    assert_eq!(stops_with(&replacement_plan, reasons::ALLOC_RESCHEDULED).len(), 1);
    assert_replan_is_noop(&cluster, &id, due, &mut rng);

    // The replacement fails too: the next delay doubles (exponential).
    let replacement_id = replacement_plan.place[0].id.clone();
    let second_failure = due.plus(Duration::from_secs(5));
    cluster.set_client_status(&replacement_id, AllocClientStatus::Failed, second_failure);
    let next_plan = run(&mut cluster, &id, second_failure, &mut rng);
    assert_eq!(next_plan.follow_ups[0].wait_until, Some(second_failure.plus(Duration::from_secs(60))));
}

#[test]
fn scaling_down_cancels_a_pending_reschedule() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 2);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    let failed = fail(&mut cluster, &id, 1, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let follow_up = plan.follow_ups[0].clone();
    job.groups[0].count = 1;
    register(&mut cluster, job);
    let scaled = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(stops_with(&scaled, reasons::ALLOC_NOT_NEEDED).len(), 1);
    assert_eq!(scaled.stop[0].alloc_id, failed.id);
    // The follow-up evaluation finds nothing to do.
    let verified = cluster.process(&follow_up, start().plus(Duration::from_secs(30)), &mut rng);
    assert!(verified.accepted.is_noop(), "{:#?}", verified.accepted);
}

#[test]
fn delayed_reschedules_due_close_together_share_a_follow_up() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 3));
    run(&mut cluster, &id, start(), &mut rng);
    fail(&mut cluster, &id, 0, start());
    fail(&mut cluster, &id, 1, start().plus(Duration::from_secs(2)));
    fail(&mut cluster, &id, 2, start().plus(Duration::from_secs(20)));
    let plan = run(&mut cluster, &id, start().plus(Duration::from_secs(21)), &mut rng);
    assert_eq!(plan.follow_ups.len(), 2);
    assert!(plan.stop.is_empty());
    assert_eq!(plan.updates.len(), 3);
    let first_batch = &plan.follow_ups[0].id;
    let num_in_first_batch =
        plan.updates.iter().filter(|update| update.follow_up_eval.as_ref() == Some(first_batch)).count();
    assert_eq!(num_in_first_batch, 2, "due 2 s apart, they share one follow-up");
}

#[test]
fn a_failed_allocation_without_room_for_its_replacement_stays_failed_and_keeps_its_chain() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 1).with_resources(Resources { cpu_mhz: 600, memory_mb: 100 }));
    run(&mut cluster, &id, start(), &mut rng);
    let failed = fail(&mut cluster, &id, 0, start());
    // Another job takes the room the failed allocation left.
    let other =
        register(&mut cluster, service_job("other", 1).with_resources(Resources { cpu_mhz: 600, memory_mb: 100 }));
    run(&mut cluster, &other, start(), &mut rng);
    let later = start().plus(Duration::from_secs(60));
    let plan = run(&mut cluster, &id, later, &mut rng);
    assert!(plan.stop.is_empty(), "the failed allocation is stopped only with a replacement");
    assert!(plan.place.is_empty());
    assert_eq!(plan.failed.get("app").map(|failure| failure.num_unplaced), Some(1));
    assert_eq!(changes(&plan).reschedule_now, 0);
    let still_failed = cluster.alloc(&failed.id).expect("the failed allocation");
    assert_eq!(still_failed.desired_status, AllocDesiredStatus::Run);
    // Room comes back: the replacement continues the chain.
    cluster.stop_job(&other, later);
    run(&mut cluster, &other, later, &mut rng);
    cluster.simulate_agents(later, true);
    let replaced = run(&mut cluster, &id, later, &mut rng);
    assert_eq!(replaced.place.len(), 1);
    assert_eq!(replaced.place[0].previous_alloc.as_ref(), Some(&failed.id));
    assert_eq!(replaced.place[0].reschedule_events.len(), 1);
}

#[test]
fn a_failed_allocation_with_no_attempts_left_stays_failed() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 2);
    job.groups[0].reschedule = Some(ReschedulePolicy {
        attempts: 1,
        interval: DurationSpec::from_secs(3600),
        delay: DurationSpec::from_secs(5),
        delay_function: DelayFunction::Constant,
        max_delay: DurationSpec::from_secs(0),
        unlimited: false,
    });
    let id = register(&mut cluster, job);
    run(&mut cluster, &id, start(), &mut rng);
    fail(&mut cluster, &id, 0, start());
    let first_retry = start().plus(Duration::from_secs(10));
    let plan = run(&mut cluster, &id, first_retry, &mut rng);
    assert_eq!(plan.place.len(), 1, "the one attempt is used");
    fail(&mut cluster, &id, 0, first_retry.plus(Duration::from_secs(1)));
    let much_later = first_retry.plus(Duration::from_secs(60));
    let (_, exhausted) = compute_plan(&cluster, &id, much_later, &mut rng);
    assert!(exhausted.is_noop(), "no attempt left within the interval: {exhausted:#?}");
    assert_eq!(changes(&exhausted).ignore, 2);
    // Attempts are counted back from the failure, not from now: waiting
    // does not bring one back.
    let (_, much_much_later) = compute_plan(&cluster, &id, first_retry.plus(Duration::from_secs(7200)), &mut rng);
    assert!(much_much_later.is_noop());
}

#[test]
fn an_operator_requested_reschedule_replaces_a_running_allocation() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 1));
    run(&mut cluster, &id, start(), &mut rng);
    let original = alloc_by_index(&cluster, &id, 0);
    assert!(cluster.mark_for_reschedule(&original.id, start()));
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(stops_with(&plan, reasons::ALLOC_RESCHEDULE_REQUESTED).len(), 1);
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].previous_alloc.as_ref(), Some(&original.id));
}

// ----- batch -----

#[test]
fn completed_batch_allocations_are_never_run_again_and_failed_ones_are_rescheduled() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, batch_job("report", 3));
    let first = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(first.place.len(), 3);
    let allocs = live(&cluster, &id);
    cluster.set_client_status(&allocs[0].id, AllocClientStatus::Complete, start());
    cluster.set_client_status(&allocs[1].id, AllocClientStatus::Complete, start());
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    cluster.set_client_status(&allocs[2].id, AllocClientStatus::Failed, start());
    // The batch default: one attempt after 5 s.
    let plan = run(&mut cluster, &id, start().plus(Duration::from_secs(6)), &mut rng);
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].index, 2);
    let replacement = plan.place[0].id.clone();
    cluster.set_client_status(&replacement, AllocClientStatus::Complete, start().plus(Duration::from_secs(60)));
    assert_replan_is_noop(&cluster, &id, start().plus(Duration::from_secs(60)), &mut rng);
    // Scaling the finished job down stops nothing and places nothing.
    let mut job = cluster.job(&id).cloned().expect("job");
    job.groups[0].count = 1;
    register(&mut cluster, job);
    assert_replan_is_noop(&cluster, &id, start().plus(Duration::from_secs(60)), &mut rng);
}

// ----- system -----

fn system_job() -> Job {
    let mut job = fixtures::job("agentd", JobType::System, 0);
    job.constraints.push(Constraint {
        attribute: "${node.environment}".into(),
        operator: ConstraintOperator::Equal,
        value: "production".into(),
    });
    job
}

#[test]
fn a_system_job_runs_on_every_feasible_node_and_only_there() {
    let mut cluster = cluster(4);
    let mut rng = rng();
    cluster.change_node(&node_id("n1"), start(), |node| node.environment = "qa".into());
    cluster.set_node_eligibility(&node_id("n2"), NodeEligibility::Ineligible, start());
    let id = register(&mut cluster, system_job());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let mut placed: Vec<&str> = plan.place.iter().map(|alloc| alloc.node_id.as_str()).collect();
    placed.sort_unstable();
    assert_eq!(placed, ["n0", "n3"]);
    assert!(plan.place.iter().all(|alloc| alloc.name == "agentd.app[0]"));
    assert!(plan.failed.is_empty(), "infeasible nodes are not failures: {:?}", plan.failed);

    // A node that joins later gets one.
    cluster.add_node(fixtures::node("n4"));
    let joined = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(joined.place.len(), 1);
    assert_eq!(joined.place[0].node_id, node_id("n4"));

    // Becoming ineligible keeps the allocation; becoming eligible places.
    cluster.set_node_eligibility(&node_id("n0"), NodeEligibility::Ineligible, start());
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    cluster.set_node_eligibility(&node_id("n2"), NodeEligibility::Eligible, start());
    let eligible = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(eligible.place.len(), 1);
    assert_eq!(eligible.place[0].node_id, node_id("n2"));

    // A node that no longer matches the constraint loses its allocation.
    cluster.change_node(&node_id("n3"), start(), |node| node.environment = "qa".into());
    let infeasible = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(stops_with(&infeasible, reasons::NODE_NOT_FEASIBLE).len(), 1);
    assert_eq!(infeasible.stop[0].node_id, node_id("n3"));
    assert!(infeasible.place.is_empty());

    // A down node's allocation is lost and not replaced anywhere else.
    cluster.set_node_status(&node_id("n4"), NodeStatus::Down, start());
    let down = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(down.stop.len(), 1);
    assert_eq!(down.stop[0].client_status, Some(AllocClientStatus::Lost));
    assert!(down.place.is_empty());
    let mut live_nodes: Vec<String> = live(&cluster, &id).iter().map(|alloc| alloc.node_id.to_string()).collect();
    live_nodes.sort_unstable();
    assert_eq!(live_nodes, ["n0", "n2"]);
}

#[test]
fn a_failed_system_allocation_is_replaced_on_the_same_node() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, system_job());
    run(&mut cluster, &id, start(), &mut rng);
    let failed = live(&cluster, &id).remove(0);
    cluster.set_client_status(&failed.id, AllocClientStatus::Failed, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].node_id, failed.node_id);
    assert_eq!(plan.place[0].previous_alloc.as_ref(), Some(&failed.id));
}

#[test]
fn a_sysbatch_job_runs_once_to_completion_on_every_feasible_node() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    cluster.change_node(&node_id("n1"), start(), |node| node.environment = "qa".into());
    let mut job = system_job();
    job.job_type = JobType::SysBatch;
    let id = register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let mut placed: Vec<&str> = plan.place.iter().map(|alloc| alloc.node_id.as_str()).collect();
    placed.sort_unstable();
    assert_eq!(placed, ["n0", "n2"]);

    // Runs that ended, completed or failed, are not repeated.
    let allocs = live(&cluster, &id);
    cluster.set_client_status(&allocs[0].id, AllocClientStatus::Complete, start());
    cluster.set_client_status(&allocs[1].id, AllocClientStatus::Failed, start());
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    assert!(live(&cluster, &id).is_empty());

    // A node that joins later gets one, and only that node.
    cluster.add_node(fixtures::node("n3"));
    let joined = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(joined.place.len(), 1);
    assert_eq!(joined.place[0].node_id, node_id("n3"));

    // A new version of the job runs again everywhere.
    cluster.set_client_status(&joined.place[0].id, AllocClientStatus::Complete, start());
    let mut changed = cluster.job(&id).cloned().expect("job");
    changed.meta.insert("build".into(), "2".into());
    register(&mut cluster, changed);
    let rerun = run(&mut cluster, &id, start(), &mut rng);
    let mut rerun_nodes: Vec<&str> = rerun.place.iter().map(|alloc| alloc.node_id.as_str()).collect();
    rerun_nodes.sort_unstable();
    assert_eq!(rerun_nodes, ["n0", "n2", "n3"]);
}

#[test]
fn a_system_job_reports_nodes_without_room() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    cluster.change_node(&node_id("n1"), start(), |node| node.resources = Resources { cpu_mhz: 50, memory_mb: 1000 });
    let id = register(&mut cluster, system_job());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 1);
    let failure = plan.failed.get("app").expect("a failure for the group");
    assert_eq!(failure.num_unplaced, 1);
    assert_eq!(failure.nodes_exhausted, 1);
    assert_eq!(failure.dimension_exhausted.get("cpu"), Some(&1));
    assert_eq!(failure.nodes_evaluated, 2);
}

#[test]
fn draining_evicts_system_allocations_without_replacing_them() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, system_job());
    run(&mut cluster, &id, start(), &mut rng);
    let drained = live(&cluster, &id).remove(0);
    cluster.set_node_drain(
        &drained.node_id,
        Some(DrainStrategy { started_at: start(), deadline: None, ignore_system_jobs: false }),
        start(),
    );
    cluster.mark_for_migration(&drained.id, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].desired_status, AllocDesiredStatus::Evict);
    assert!(plan.place.is_empty());
}

// ----- drain -----

#[test]
fn a_flagged_allocation_is_evicted_and_replaced_on_another_node() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 2));
    run(&mut cluster, &id, start(), &mut rng);
    let moving = alloc_by_index(&cluster, &id, 0);
    cluster.set_node_drain(
        &moving.node_id,
        Some(DrainStrategy { started_at: start(), deadline: None, ignore_system_jobs: false }),
        start(),
    );
    cluster.mark_for_migration(&moving.id, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].alloc_id, moving.id);
    assert_eq!(plan.stop[0].desired_status, AllocDesiredStatus::Evict);
    assert_eq!(plan.stop[0].description, reasons::ALLOC_MIGRATING);
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].index, 0);
    assert_eq!(plan.place[0].previous_alloc.as_ref(), Some(&moving.id));
    assert_ne!(plan.place[0].node_id, moving.node_id, "a draining node takes nothing new");
    assert_eq!(changes(&plan).migrate, 1);
}

// ----- job versions -----

#[test]
fn a_change_tasks_do_not_see_is_applied_in_place() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 3);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    job.meta.insert("owner".into(), "daq-team".into());
    job.groups[0].meta.insert("tier".into(), "2".into());
    job.groups[0].tasks[0].kill_timeout = DurationSpec::from_secs(30);
    job.update = Some(UpdateStrategy { max_parallel: 1, ..UpdateStrategy::default() });
    let version = cluster.register_job(job, start()).version;
    assert_eq!(version, 1);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.in_place.len(), 3);
    assert!(plan.in_place.iter().all(|update| update.job_version == 1));
    assert!(plan.stop.is_empty() && plan.place.is_empty());
    assert_eq!(changes(&plan).in_place, 3);
    assert!(live(&cluster, &id).iter().all(|alloc| alloc.job_version == 1));
}

#[test]
fn a_change_tasks_see_replaces_every_allocation_without_an_update_block() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 3);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    let before = live(&cluster, &id);
    job.groups[0].tasks[0].config.args = vec!["3600".into()];
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(stops_with(&plan, reasons::ALLOC_UPDATING).len(), 3);
    assert_eq!(plan.place.len(), 3);
    let mut replaced_indexes: Vec<u32> = plan.place.iter().map(|alloc| alloc.index).collect();
    replaced_indexes.sort_unstable();
    assert_eq!(replaced_indexes, [0, 1, 2]);
    for alloc in &plan.place {
        let previous = before.iter().find(|old| old.index == alloc.index).expect("old allocation");
        assert_eq!(alloc.previous_alloc.as_ref(), Some(&previous.id));
        assert_eq!(alloc.job_version, 1);
    }
    assert_eq!(changes(&plan).destructive, 3);
}

#[test]
fn destructive_updates_respect_max_parallel_and_health() {
    let mut cluster = cluster(5);
    let mut rng = rng();
    let mut job = service_job("web", 5);
    job.update = Some(UpdateStrategy { max_parallel: 2, ..UpdateStrategy::default() });
    let id = register(&mut cluster, job.clone());
    let first = run(&mut cluster, &id, start(), &mut rng);
    assert!(
        first.place.iter().all(|alloc| alloc.deployment_status.as_ref().is_some_and(|status| status.healthy.is_none()))
    );
    cluster.simulate_agents(start(), true);
    job.groups[0].tasks[0].env.insert("LEVEL".into(), "debug".into());
    register(&mut cluster, job);
    let mut num_rounds = 0;
    loop {
        let plan = run(&mut cluster, &id, start(), &mut rng);
        if plan.is_noop() {
            break;
        }
        num_rounds += 1;
        assert!(plan.place.len() <= 2, "at most max_parallel at a time");
        assert_eq!(plan.stop.len(), plan.place.len());
        assert!(live(&cluster, &id).len() == 5);
        cluster.simulate_agents(start(), true);
        assert!(num_rounds < 10);
    }
    assert_eq!(num_rounds, 3, "5 allocations, 2 at a time");
    assert!(live(&cluster, &id).iter().all(|alloc| alloc.job_version == 1));
}

#[test]
fn unhealthy_new_allocations_hold_the_rollout() {
    let mut cluster = cluster(4);
    let mut rng = rng();
    let mut job = service_job("web", 4);
    job.update = Some(UpdateStrategy { max_parallel: 1, ..UpdateStrategy::default() });
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    job.groups[0].tasks[0].resources.cpu_mhz += 10;
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 1);
    cluster.simulate_agents(start(), false);
    // Running but not healthy yet: nothing more moves.
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    cluster.set_healthy(&plan.place[0].id, true, start());
    let next = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(next.place.len(), 1);
}

#[test]
fn a_node_the_new_constraints_reject_gets_a_destructive_update() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 3);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    let on_n0 = live(&cluster, &id).into_iter().find(|alloc| alloc.node_id == node_id("n0")).expect("one on n0");
    job.groups[0].constraints.push(Constraint {
        attribute: "${node.unique.name}".into(),
        operator: ConstraintOperator::NotEqual,
        value: "n0".into(),
    });
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.in_place.len(), 2);
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].alloc_id, on_n0.id);
    assert_eq!(plan.place.len(), 1);
    assert_ne!(plan.place[0].node_id, node_id("n0"));
}

#[test]
fn a_destructive_update_without_room_keeps_the_old_allocation() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let mut job = service_job("web", 1);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    job.groups[0].tasks[0].resources = Resources { cpu_mhz: 2000, memory_mb: 100 };
    register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(plan.stop.is_empty(), "the old allocation keeps running");
    assert!(plan.place.is_empty());
    assert_eq!(plan.failed.get("app").map(|failure| failure.num_unplaced), Some(1));
    assert_eq!(changes(&plan).destructive, 0);
}

#[test]
fn a_destructive_update_can_reuse_the_resources_it_frees() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let big = Resources { cpu_mhz: 900, memory_mb: 900 };
    let mut job = service_job("web", 1).with_resources(big);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    job.groups[0].tasks[0].env.insert("A".into(), "b".into());
    register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.stop.len(), 1);
}

// ----- placement -----

/// Issue 13: the `glob` constraint is `--filter`'s glob, sets and ranges
/// included (it used to take `[` literally and select no node).
#[test]
fn a_glob_constraint_with_a_range_selects_the_nodes_drover_exec_would() {
    let mut cluster = Cluster::new();
    let mut rng = rng();
    for name in ["batch01", "batch02", "batch03", "batch04", "gpu01"] {
        cluster.add_node(fixtures::node(name));
    }
    let mut job = fixtures::job("agentd", JobType::System, 0);
    job.constraints.push(Constraint {
        attribute: "${node.unique.name}".into(),
        operator: ConstraintOperator::Glob,
        value: "batch0[1-3]".into(),
    });
    let id = register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let mut placed: Vec<&str> = plan.place.iter().map(|alloc| alloc.node_id.as_str()).collect();
    placed.sort_unstable();
    assert_eq!(placed, ["batch01", "batch02", "batch03"]);
    let filter = drover_types::glob::Glob::new("batch0[1-3]").expect("the same glob as --filter's");
    let selected: Vec<&str> =
        cluster.node_list().filter(|node| filter.matches(&node.name)).map(|node| node.name.as_str()).collect();
    assert_eq!(selected, placed, "a job constraint and --filter select the same nodes");
}

#[test]
fn distinct_hosts_allows_one_allocation_per_node() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("web", 5);
    job.constraints.push(Constraint {
        attribute: String::new(),
        operator: ConstraintOperator::DistinctHosts,
        value: String::new(),
    });
    let id = register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 3);
    let failure = plan.failed.get("app").expect("two could not be placed");
    assert_eq!(failure.num_unplaced, 2);
    assert_eq!(failure.constraint_filtered.get("distinct_hosts"), Some(&3));
}

#[test]
fn group_level_distinct_hosts_lets_other_groups_share_nodes() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let mut job = service_job("web", 2);
    job.groups[0].constraints.push(Constraint {
        attribute: String::new(),
        operator: ConstraintOperator::DistinctHosts,
        value: String::new(),
    });
    let mut second = job.groups[0].clone();
    second.name = "sidecar".into();
    job.groups.push(second);
    let id = register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 4);
    assert!(plan.failed.is_empty());
    for group in ["app", "sidecar"] {
        let nodes: std::collections::BTreeSet<&NodeId> =
            plan.place.iter().filter(|alloc| alloc.group == group).map(|alloc| &alloc.node_id).collect();
        assert_eq!(nodes.len(), 2, "{group}");
    }
}

#[test]
fn a_failed_placement_explains_every_node() {
    let mut cluster = Cluster::new();
    let mut rng = rng();
    let mut down = fixtures::node("down");
    down.status = NodeStatus::Down;
    let mut elsewhere = fixtures::node("elsewhere");
    elsewhere.zone = "dc2".into();
    let mut freebsd = fixtures::node("freebsd");
    freebsd.attributes.insert("kernel.name".into(), "freebsd".into());
    let low_cpu = fixtures::node("low-cpu").with_resources(Resources { cpu_mhz: 50, memory_mb: 1000 });
    let low_memory = fixtures::node("low-memory").with_resources(Resources { cpu_mhz: 1000, memory_mb: 50 });
    for node in [down, elsewhere, freebsd, low_cpu, low_memory] {
        cluster.add_node(node);
    }
    let mut job = service_job("web", 2);
    job.datacenters = vec!["dc1".into()];
    job.constraints.push(Constraint {
        attribute: "${attr.kernel.name}".into(),
        operator: ConstraintOperator::Equal,
        value: "linux".into(),
    });
    let id = register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(plan.place.is_empty());
    let failure = plan.failed.get("app").expect("failure metrics");
    assert_eq!(failure.num_unplaced, 2);
    assert_eq!(failure.nodes_evaluated, 5);
    assert_eq!(failure.nodes_not_ready, 1);
    assert_eq!(failure.nodes_wrong_zone, 1);
    assert_eq!(failure.constraint_filtered.get("${attr.kernel.name} = linux"), Some(&1));
    assert_eq!(failure.nodes_exhausted, 2);
    assert_eq!(failure.dimension_exhausted.get("cpu"), Some(&1));
    assert_eq!(failure.dimension_exhausted.get("memory"), Some(&1));
    assert_eq!(changes(&plan).place, 2, "the annotations show what the plan wanted");
}

#[test]
fn nodes_are_never_over_committed() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, service_job("web", 25).with_resources(Resources { cpu_mhz: 250, memory_mb: 10 }));
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.place.len(), 8, "four fit on each node");
    assert_eq!(plan.failed.get("app").map(|failure| failure.num_unplaced), Some(17));
    for node in ["n0", "n1"] {
        assert_eq!(cluster.node_usage(&node_id(node)), Resources { cpu_mhz: 1000, memory_mb: 40 });
    }
}

#[test]
fn affinities_attract_allocations() {
    let mut cluster = cluster(6);
    let mut rng = rng();
    for name in ["n2", "n4"] {
        cluster.change_node(&node_id(name), start(), |node| {
            node.meta.insert("rack".into(), "r1".into());
        });
    }
    let mut job = service_job("web", 2);
    job.groups[0].affinities.push(Affinity {
        attribute: "${meta.rack}".into(),
        operator: ConstraintOperator::Equal,
        value: "r1".into(),
        weight: 100,
    });
    let id = register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let mut placed: Vec<&str> = plan.place.iter().map(|alloc| alloc.node_id.as_str()).collect();
    placed.sort_unstable();
    assert_eq!(placed, ["n2", "n4"]);
}

#[test]
fn spreads_balance_allocations_over_attribute_values() {
    let mut cluster = cluster(6);
    let mut rng = rng();
    for (name, zone) in [("n0", "a"), ("n1", "a"), ("n2", "a"), ("n3", "a"), ("n4", "b"), ("n5", "c")] {
        cluster.change_node(&node_id(name), start(), |node| node.zone = zone.into());
    }
    let mut job = service_job("web", 3);
    job.spreads.push(Spread { attribute: "${node.zone}".into(), weight: 100, targets: Vec::new() });
    let id = register(&mut cluster, job);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let zones: std::collections::BTreeSet<String> = plan
        .place
        .iter()
        .map(|alloc| cluster.node(&alloc.node_id).map(|node| node.zone.clone()).unwrap_or_default())
        .collect();
    assert_eq!(zones.len(), 3, "one per zone: {zones:?}");
}

#[test]
fn a_periodic_parent_is_never_placed() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let mut job = batch_job("nightly", 1);
    job.periodic = Some(PeriodicConfig {
        crons: vec!["0 3 * * *".into()],
        time_zone: "UTC".into(),
        prohibit_overlap: true,
        enabled: true,
    });
    let id = register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(plan.is_noop());
}

#[test]
fn a_parameterized_parent_is_never_placed() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let mut job = batch_job("build", 1);
    job.parameterized = Some(drover_types::ParameterizedConfig::default());
    let id = register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(plan.is_noop());
}

#[test]
fn the_same_seed_gives_the_same_plan() {
    let mut cluster = cluster(20);
    let id = register(&mut cluster, service_job("web", 10));
    let (_, first) = compute_plan(&cluster, &id, start(), &mut rng());
    let (_, second) = compute_plan(&cluster, &id, start(), &mut rng());
    assert_eq!(first, second);
}

// ----- verification -----

#[test]
fn a_plan_overtaken_by_another_is_accepted_only_where_it_still_fits() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let whole_node = Resources { cpu_mhz: 1000, memory_mb: 100 };
    let first = register(&mut cluster, service_job("first", 1).with_resources(whole_node));
    let second = register(&mut cluster, service_job("second", 3).with_resources(whole_node));
    // Both plans are computed against the same snapshot.
    let (_, first_plan) = compute_plan(&cluster, &first, start(), &mut rng);
    let (_, second_plan) = compute_plan(&cluster, &second, start(), &mut rng);
    assert_eq!(second_plan.place.len(), 3);
    cluster.apply(&verify_plan(&cluster, &first_plan).accepted, start());
    let taken = first_plan.place[0].node_id.clone();

    let verified = verify_plan(&cluster, &second_plan);
    assert!(!verified.job_changed);
    assert_eq!(verified.rejected_nodes, vec![taken.clone()]);
    assert_eq!(verified.accepted.place.len(), 2);
    assert!(verified.accepted.place.iter().all(|alloc| alloc.node_id != taken));
    cluster.apply(&verified.accepted, start());
    for node in cluster.node_list() {
        assert!(cluster.node_usage(&node.id).fits_in(&node.resources), "{}", node.id);
    }
    // The worker re-plans: the third instance has nowhere to go.
    let (_, replan) = compute_plan(&cluster, &second, start(), &mut rng);
    assert!(replan.place.is_empty());
    assert_eq!(replan.failed.get("app").map(|failure| failure.num_unplaced), Some(1));
}

#[test]
fn a_plan_for_a_changed_job_is_refused_whole() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let mut job = service_job("web", 2);
    let id = register(&mut cluster, job.clone());
    let (_, stale) = compute_plan(&cluster, &id, start(), &mut rng);
    job.groups[0].count = 3;
    register(&mut cluster, job);
    let verified = verify_plan(&cluster, &stale);
    assert!(verified.job_changed);
    assert!(verified.accepted.is_noop());
    assert!(!verified.is_fully_accepted());
}

#[test]
fn placements_on_a_node_that_went_down_are_refused_but_stops_are_kept() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let mut job = service_job("web", 2);
    let id = register(&mut cluster, job.clone());
    run(&mut cluster, &id, start(), &mut rng);
    job.groups[0].tasks[0].user = Some("nobody".into());
    register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 2);
    let target = plan.place[0].node_id.clone();
    cluster.set_node_status(&target, NodeStatus::Down, start());
    let verified = verify_plan(&cluster, &plan);
    assert_eq!(verified.rejected_nodes, vec![target.clone()]);
    assert_eq!(verified.accepted.stop.len(), 2, "stops are always accepted");
    assert!(verified.accepted.place.iter().all(|alloc| alloc.node_id != target));
}

/// Regression (hardening issue, item 1): a job registered before servers
/// refused `count` above the limit, replayed at start, must not make the
/// planner allocate per requested instance.
#[test]
fn a_count_above_the_limit_is_capped_not_allocated() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = service_job("huge", 1);
    job.groups[0].count = u32::MAX;
    job.constraints.push(drover_types::Constraint {
        attribute: "${node.unique.name}".to_owned(),
        operator: drover_types::ConstraintOperator::Equal,
        value: "no-such-node".to_owned(),
    });
    let id = register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(plan.place.is_empty());
    let failure = plan.failed.get("app").expect("the group's placements failed");
    assert_eq!(failure.num_unplaced, drover_types::validate::limits::MAX_COUNT);
}
