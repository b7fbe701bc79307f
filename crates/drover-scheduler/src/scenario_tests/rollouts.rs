//! Deployments and canaries: one deployment per job version, placements
//! joining it, superseded and stopped ones cancelled, canaries next to the
//! old allocations until promoted, and rollouts halted by a failed or
//! cancelled deployment.

use std::time::Duration;

use drover_types::fixtures;
use drover_types::{
    AllocClientStatus, AllocDeploymentStatus, Deployment, DeploymentStatus, DurationSpec, EvalTrigger, GroupChanges,
    Job, JobId, NodeStatus, UpdateStrategy,
};

use super::{
    alloc_by_index, assert_replan_is_noop, changes, cluster, compute_plan, live, live_indexes, register, rng, run,
    start, stops_with, system_job,
};
use crate::harness::Cluster;
use crate::reasons;
use crate::view::ClusterView;
use crate::{schedule, verify_plan};

/// A service job `web` of one group `app` that rolls out `max_parallel`
/// at a time, after `canary` canaries.
fn rolling_job(count: u32, max_parallel: u32, canary: u32) -> Job {
    let mut job = fixtures::service_job("web", count);
    job.update = Some(UpdateStrategy { max_parallel, canary, ..UpdateStrategy::default() });
    job
}

/// Registers a new version of the job whose tasks changed (every
/// allocation must be replaced); returns the version.
fn change_tasks(cluster: &mut Cluster, job_id: &JobId, release: &str) -> u64 {
    let mut job = cluster.job(job_id).cloned().expect("the job");
    job.groups[0].tasks[0].env.insert("RELEASE".into(), release.into());
    cluster.register_job(job, start()).version
}

fn latest_deployment(cluster: &Cluster, job_id: &JobId) -> Deployment {
    cluster.latest_deployment(job_id).cloned().expect("the job has a deployment")
}

fn is_canary(alloc: &drover_types::Allocation) -> bool {
    alloc.deployment_status.as_ref().is_some_and(|status| status.canary)
}

/// Runs plans, reporting every allocation healthy after each, until one
/// changes nothing; returns how many changed something.
fn roll_to_the_end(cluster: &mut Cluster, job_id: &JobId, rng: &mut rand::rngs::StdRng) -> usize {
    let mut num_rounds = 0;
    loop {
        cluster.simulate_agents(start(), true);
        let plan = run(cluster, job_id, start(), rng);
        if plan.is_noop() {
            return num_rounds;
        }
        num_rounds += 1;
        assert!(num_rounds < 20, "the rollout ends");
    }
}

#[test]
fn a_deployment_starts_once_per_version_and_later_placements_join_it() {
    let mut cluster = cluster(4);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 1, 0));
    let first = run(&mut cluster, &id, start(), &mut rng);
    let deployment = first.deployment.clone().expect("placing the first version starts a deployment");
    assert_eq!((&deployment.job_id, deployment.job_version), (&id, 0));
    assert_eq!(deployment.job_modify_index, cluster.job(&id).map(|job| job.job_modify_index).unwrap_or_default());
    assert_eq!(deployment.status, DeploymentStatus::Running);
    assert_eq!(deployment.status_description, reasons::DEPLOYMENT_RUNNING);
    assert_eq!((deployment.create_time, deployment.modify_time), (start(), start()));
    let group = deployment.groups.get("app").expect("the group is part of it");
    assert_eq!((group.desired_total, group.desired_canaries, group.promoted), (3, 0, true));
    assert_eq!(group.progress_deadline, DurationSpec::from_secs(600));
    assert_eq!(group.require_progress_by, Some(start().plus(Duration::from_secs(600))));
    assert!(first.deployment_updates.is_empty());
    for alloc in &first.place {
        assert_eq!(alloc.deployment_id.as_ref(), Some(&deployment.id));
        assert_eq!(alloc.deployment_status, Some(AllocDeploymentStatus::default()), "not healthy yet, no canary");
    }

    // A lost allocation's replacement joins the running deployment.
    cluster.simulate_agents(start(), true);
    let lost = alloc_by_index(&cluster, &id, 0);
    cluster.set_node_status(&lost.node_id, NodeStatus::Down, start());
    let replaced = run(&mut cluster, &id, start(), &mut rng);
    assert!(replaced.deployment.is_none(), "the version has its deployment");
    assert_eq!(replaced.place.len(), 1);
    assert_eq!(replaced.place[0].deployment_id.as_ref(), Some(&deployment.id));
    assert_eq!(cluster.deployments(&id).len(), 1);
}

#[test]
fn a_new_version_cancels_the_running_deployment_it_supersedes() {
    let mut cluster = cluster(4);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 1, 0));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    let first = latest_deployment(&cluster, &id);
    assert_eq!(change_tasks(&mut cluster, &id, "2"), 1);
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.deployment_updates.len(), 1);
    let cancelled = &plan.deployment_updates[0];
    assert_eq!(cancelled.id, first.id);
    assert_eq!(cancelled.status, DeploymentStatus::Cancelled);
    assert_eq!(cancelled.status_description, "superseded by job version 1");
    let second = plan.deployment.clone().expect("the new version starts its own");
    assert_eq!((second.job_version, second.groups["app"].desired_total), (1, 3));
    assert_eq!(plan.place.len(), 1, "max_parallel = 1");
    assert_eq!(plan.place[0].deployment_id.as_ref(), Some(&second.id));
    let stored: Vec<DeploymentStatus> = cluster.deployments(&id).iter().map(|deployment| deployment.status).collect();
    assert_eq!(stored, [DeploymentStatus::Cancelled, DeploymentStatus::Running]);

    // Every later batch joins the same deployment.
    assert_eq!(roll_to_the_end(&mut cluster, &id, &mut rng), 2);
    assert_eq!(cluster.deployments(&id).len(), 2);
    assert!(
        live(&cluster, &id).iter().all(|alloc| alloc.deployment_id.as_ref() == Some(&second.id)),
        "every allocation of version 1 was placed by its deployment"
    );

    // A deployment that is over is left as it is.
    cluster.set_deployment_status(&id, DeploymentStatus::Successful, "deployment completed successfully", start());
    change_tasks(&mut cluster, &id, "3");
    let third = run(&mut cluster, &id, start(), &mut rng);
    assert!(third.deployment_updates.is_empty());
    assert_eq!(third.deployment.map(|deployment| deployment.job_version), Some(2));
}

#[test]
fn stopping_a_job_cancels_its_deployment() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 1, 0));
    run(&mut cluster, &id, start(), &mut rng);
    let running = latest_deployment(&cluster, &id);
    cluster.stop_job(&id, start());
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(plan.stop.len(), 3);
    assert_eq!(plan.deployment_updates.len(), 1);
    assert_eq!(plan.deployment_updates[0].id, running.id);
    assert_eq!(plan.deployment_updates[0].status, DeploymentStatus::Cancelled);
    assert_eq!(plan.deployment_updates[0].status_description, reasons::DEPLOYMENT_CANCELLED_JOB_STOPPED);
    assert_eq!(latest_deployment(&cluster, &id).status, DeploymentStatus::Cancelled);

    // Running the job again is a new registration: a new deployment.
    let restarted = cluster.job(&id).cloned().expect("the job");
    register(&mut cluster, restarted);
    let again = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(again.place.len(), 3);
    let restarted_deployment = again.deployment.expect("a new deployment for the restarted job");
    assert!(again.place.iter().all(|alloc| alloc.deployment_id.as_ref() == Some(&restarted_deployment.id)));
}

#[test]
fn purging_a_job_cancels_its_deployment() {
    let mut cluster = cluster(2);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(2, 1, 0));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.purge_job(&id, start());
    let eval = cluster.evaluation(&id, EvalTrigger::JobDeregister, start(), &mut rng);
    let plan = schedule(&cluster, None, &eval, start(), &mut rng);
    assert_eq!(plan.deployment_updates.len(), 1);
    assert_eq!(plan.deployment_updates[0].status_description, reasons::DEPLOYMENT_CANCELLED_JOB_PURGED);
    assert!(verify_plan(&cluster, &plan).is_fully_accepted());
    cluster.apply(&plan, start());
    assert!(schedule(&cluster, None, &eval, start(), &mut rng).is_noop());
}

#[test]
fn a_version_whose_deployment_is_over_never_gets_another() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(2, 1, 0));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    cluster.set_deployment_status(&id, DeploymentStatus::Successful, "deployment completed successfully", start());
    let failed = alloc_by_index(&cluster, &id, 0);
    cluster.set_client_status(&failed.id, AllocClientStatus::Failed, start());
    let plan = run(&mut cluster, &id, start().plus(Duration::from_secs(31)), &mut rng);
    assert_eq!(plan.place.len(), 1, "the failed allocation is rescheduled");
    assert!(plan.deployment.is_none(), "a repair does not restart the rollout");
    assert_eq!(plan.place[0].deployment_id, None);
    assert_eq!(plan.place[0].deployment_status, Some(AllocDeploymentStatus::default()), "still watched for health");
    assert_eq!(cluster.deployments(&id).len(), 1);
}

#[test]
fn a_first_version_has_no_canaries() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 1, 2));
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let deployment = plan.deployment.expect("a deployment");
    assert_eq!((deployment.groups["app"].desired_canaries, deployment.groups["app"].promoted), (0, true));
    assert_eq!(plan.place.len(), 3);
    assert!(!plan.place.iter().any(is_canary));
}

#[test]
fn canaries_run_next_to_the_old_allocations_until_promoted() {
    let mut cluster = cluster(5);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 1, 1));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    let old = live(&cluster, &id);
    change_tasks(&mut cluster, &id, "2");
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let deployment = plan.deployment.clone().expect("the new version starts a deployment");
    let group = &deployment.groups["app"];
    assert_eq!((group.desired_canaries, group.promoted, group.desired_total), (1, false, 3));
    assert_eq!(deployment.status_description, reasons::DEPLOYMENT_RUNNING_NEEDS_PROMOTION);
    assert!(plan.stop.is_empty(), "no old allocation is stopped for a canary");
    assert_eq!(plan.place.len(), 1);
    let canary = &plan.place[0];
    assert!(is_canary(canary));
    assert_eq!((canary.job_version, canary.index, canary.previous_alloc.as_ref()), (1, 0, None));
    assert_eq!(canary.deployment_id.as_ref(), Some(&deployment.id));
    assert_eq!(changes(&plan), GroupChanges { canary: 1, ignore: 3, ..GroupChanges::default() });
    assert_eq!(live(&cluster, &id).len(), 4, "the canary does not count towards count");
    assert!(old.iter().all(|alloc| cluster.alloc(&alloc.id).is_some_and(|stored| stored.wants_to_run())));

    // A healthy canary changes nothing until it is promoted.
    cluster.simulate_agents(start(), true);
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
}

#[test]
fn no_more_canaries_are_placed_than_the_deployment_asked_for() {
    let mut cluster = cluster(6);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 1, 2));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    change_tasks(&mut cluster, &id, "2");
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let mut canary_indexes: Vec<u32> = plan.place.iter().filter(|alloc| is_canary(alloc)).map(|a| a.index).collect();
    canary_indexes.sort_unstable();
    assert_eq!(canary_indexes, [0, 1], "named after the allocations they will replace");
    assert_eq!(plan.place.len(), 2);
    cluster.simulate_agents(start(), true);

    // A failed canary is not replaced: its health fails the deployment.
    let failed = plan.place[0].id.clone();
    cluster.set_client_status(&failed, AllocClientStatus::Failed, start());
    assert_replan_is_noop(&cluster, &id, start().plus(Duration::from_secs(3600)), &mut rng);

    // A lost one is.
    let lost = plan.place[1].clone();
    cluster.set_node_status(&lost.node_id, NodeStatus::Down, start());
    let replaced = run(&mut cluster, &id, start(), &mut rng);
    let lost_stop = replaced.stop.iter().find(|stop| stop.alloc_id == lost.id).expect("the lost canary is stopped");
    assert_eq!(lost_stop.client_status, Some(AllocClientStatus::Lost));
    let new_canaries: Vec<_> = replaced.place.iter().filter(|alloc| is_canary(alloc)).collect();
    assert_eq!(new_canaries.len(), 1);
    let num_canaries_wanted =
        cluster.allocs_for_job(&id).into_iter().filter(|alloc| is_canary(alloc) && alloc.wants_to_run()).count();
    assert_eq!(num_canaries_wanted, 2);
}

#[test]
fn promoted_canaries_replace_old_allocations_and_the_rollout_continues_max_parallel_at_a_time() {
    let mut cluster = cluster(6);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(4, 2, 1));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    change_tasks(&mut cluster, &id, "2");
    let canary_plan = run(&mut cluster, &id, start(), &mut rng);
    let canary = canary_plan.place[0].clone();
    let deployment_id = canary.deployment_id.clone();
    let shadowed = alloc_by_index(&cluster, &id, 0);
    assert_ne!(shadowed.id, canary.id);
    cluster.simulate_agents(start(), true);
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);

    assert!(cluster.promote_deployment(&id, start()));
    let plan = run(&mut cluster, &id, start(), &mut rng);
    let not_needed = stops_with(&plan, reasons::ALLOC_NOT_NEEDED);
    assert_eq!(not_needed.len(), 1);
    assert_eq!(not_needed[0].alloc_id, shadowed.id, "the old allocation with the canary's name goes first");
    assert_eq!(stops_with(&plan, reasons::ALLOC_UPDATING).len(), 2, "then max_parallel replacements");
    assert_eq!(plan.place.len(), 2);
    for alloc in &plan.place {
        assert!(!is_canary(alloc));
        assert_eq!((alloc.job_version, &alloc.deployment_id), (1, &deployment_id));
    }
    assert_eq!(changes(&plan).destructive, 2);

    // Not healthy yet: the two hold the last replacement back.
    cluster.simulate_agents(start(), false);
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    for alloc in &plan.place {
        cluster.set_healthy(&alloc.id, true, start());
    }
    let last = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!((last.place.len(), stops_with(&last, reasons::ALLOC_UPDATING).len()), (1, 1));
    cluster.simulate_agents(start(), true);
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    assert_eq!(live_indexes(&cluster, &id), [0, 1, 2, 3]);
    assert!(live(&cluster, &id).iter().all(|alloc| alloc.job_version == 1));
}

/// Issue 13: the harness used to commit plans with its own copy of the
/// commit, which dropped these counters; it now commits through the state
/// machine, which keeps them as a real server does.
#[test]
fn a_deployment_counts_its_placements_canaries_and_health_verdicts() {
    let mut cluster = cluster(4);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(3, 3, 0));
    let first = run(&mut cluster, &id, start(), &mut rng);
    let deployment_id = first.deployment.expect("a deployment").id;
    let counters = |cluster: &Cluster| {
        let deployment = latest_deployment(cluster, &id);
        assert_eq!(deployment.id, deployment_id);
        let group = deployment.groups.get("app").cloned().expect("the group");
        (group.placed_allocs, group.placed_canaries.len(), group.healthy_allocs, group.unhealthy_allocs)
    };
    assert_eq!(counters(&cluster), (3, 0, 0, 0));
    cluster.simulate_agents(start(), false);
    let placed = live(&cluster, &id);
    cluster.set_healthy(&placed[0].id, true, start());
    cluster.set_healthy(&placed[1].id, true, start());
    cluster.set_healthy(&placed[2].id, false, start());
    assert_eq!(counters(&cluster), (3, 0, 2, 1));
    // An agent's first verdict counts; a repeated report does not.
    cluster.set_healthy(&placed[0].id, true, start());
    assert_eq!(counters(&cluster), (3, 0, 2, 1));

    // A canary of the next version joins its own deployment's counters.
    let mut canaried = cluster.job(&id).cloned().expect("the job");
    canaried.update = Some(UpdateStrategy { max_parallel: 1, canary: 1, ..UpdateStrategy::default() });
    canaried.groups[0].tasks[0].env.insert("RELEASE".into(), "2".into());
    cluster.register_job(canaried, start());
    let canary_plan = run(&mut cluster, &id, start(), &mut rng);
    let canary_deployment = canary_plan.deployment.expect("the new version's deployment");
    let group = latest_deployment(&cluster, &id).groups.get("app").cloned().expect("the group");
    assert_eq!(latest_deployment(&cluster, &id).id, canary_deployment.id);
    assert_eq!((group.placed_allocs, group.placed_canaries.len()), (1, 1));
    assert!(canary_plan.place.iter().all(is_canary));
}

#[test]
fn a_failed_or_cancelled_deployment_halts_the_rollout_until_a_new_version() {
    for status in [DeploymentStatus::Failed, DeploymentStatus::Cancelled] {
        let mut cluster = cluster(4);
        let mut rng = rng();
        let id = register(&mut cluster, rolling_job(3, 1, 0));
        run(&mut cluster, &id, start(), &mut rng);
        cluster.simulate_agents(start(), true);
        let stable = cluster.job(&id).cloned().expect("version 0");
        change_tasks(&mut cluster, &id, "2");
        let first_batch = run(&mut cluster, &id, start(), &mut rng);
        assert_eq!(first_batch.place.len(), 1);
        cluster.simulate_agents(start(), true);
        cluster.set_deployment_status(&id, status, "halted by the test", start());

        // The old allocations keep running.
        assert_replan_is_noop(&cluster, &id, start(), &mut rng);
        let versions: Vec<u64> = live(&cluster, &id).iter().map(|alloc| alloc.job_version).collect();
        assert_eq!(versions.iter().filter(|version| **version == 0).count(), 2, "{status}");

        // The watcher's revert registers the stable specification again.
        assert_eq!(cluster.register_job(stable, start()).version, 2);
        let revert = run(&mut cluster, &id, start(), &mut rng);
        assert!(revert.deployment_updates.is_empty(), "a deployment that is over stays as it is");
        assert_eq!(revert.in_place.len(), 2, "{status}");
        assert_eq!(stops_with(&revert, reasons::ALLOC_UPDATING).len(), 1);
        assert_eq!(revert.place.len(), 1);
        let reverting = revert.deployment.expect("the revert rolls out under its own deployment");
        assert_eq!(reverting.groups["app"].desired_total, 1, "in-place updates stay out of it");
    }
}

#[test]
fn canaries_of_a_failed_deployment_are_stopped_by_the_revert() {
    let mut cluster = cluster(4);
    let mut rng = rng();
    let id = register(&mut cluster, rolling_job(2, 1, 1));
    run(&mut cluster, &id, start(), &mut rng);
    cluster.simulate_agents(start(), true);
    let stable = cluster.job(&id).cloned().expect("version 0");
    change_tasks(&mut cluster, &id, "2");
    let canary = run(&mut cluster, &id, start(), &mut rng).place[0].clone();
    cluster.simulate_agents(start(), false);
    cluster.set_healthy(&canary.id, false, start());
    cluster.set_deployment_status(&id, DeploymentStatus::Failed, "canary unhealthy", start());
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);

    cluster.register_job(stable, start());
    let revert = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(
        stops_with(&revert, reasons::ALLOC_NOT_NEEDED).iter().map(|stop| &stop.alloc_id).collect::<Vec<_>>(),
        [&canary.id]
    );
    assert_eq!(revert.in_place.len(), 2);
    assert!(revert.place.is_empty());
    assert!(revert.deployment.is_none(), "nothing to roll out");
}

#[test]
fn a_system_job_rolls_out_max_parallel_at_a_time_without_a_deployment() {
    let mut cluster = cluster(3);
    let mut rng = rng();
    let mut job = system_job();
    job.update = Some(UpdateStrategy { max_parallel: 1, ..UpdateStrategy::default() });
    let id = register(&mut cluster, job);
    let first = run(&mut cluster, &id, start(), &mut rng);
    assert_eq!(first.place.len(), 3);
    assert!(first.deployment.is_none());
    cluster.simulate_agents(start(), true);
    change_tasks(&mut cluster, &id, "2");
    let plan = run(&mut cluster, &id, start(), &mut rng);
    assert!(plan.deployment.is_none() && plan.deployment_updates.is_empty());
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].deployment_id, None);
    assert_eq!(plan.place[0].deployment_status, Some(AllocDeploymentStatus::default()));
    cluster.simulate_agents(start(), false);
    assert_replan_is_noop(&cluster, &id, start(), &mut rng);
    cluster.set_healthy(&plan.place[0].id, true, start());
    assert_eq!(run(&mut cluster, &id, start(), &mut rng).place.len(), 1);
}

#[test]
fn a_plan_that_cannot_be_placed_still_starts_the_deployment_once() {
    let mut cluster = cluster(1);
    let mut rng = rng();
    let mut job = rolling_job(1, 1, 0);
    job.groups[0].tasks[0].resources.cpu_mhz = 5000;
    let id = register(&mut cluster, job);
    let (_, plan) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(plan.place.is_empty());
    assert!(plan.deployment.is_some(), "the deployment waits for its placements (and its progress deadline)");
    cluster.apply(&plan, start());
    let (_, again) = compute_plan(&cluster, &id, start(), &mut rng);
    assert!(again.deployment.is_none() && again.place.is_empty());
}
