//! The deployment watcher: moves each active deployment forward from the
//! health of its allocations.
//!
//! ```text
//!                 new healthy allocation ──▶ evaluation (next batch)
//!  Running ──┬── canaries healthy, auto_promote ──▶ promoted (Running)
//!            ├── canaries healthy, manual ──────▶ Blocked ── drover job promote ──▶ Running
//!            ├── every allocation healthy ──────▶ Successful (version marked stable)
//!            └── unhealthy allocation, or no progress by the deadline
//!                                               ──▶ Failed ── auto_revert ──▶ last stable version registered
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::{Deployment, DeploymentId, DeploymentStatus, EvalTrigger, Evaluation, Job, Timestamp};

use super::{Wakes, on_change_or_tick};
use crate::ids::new_eval_id;
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken) {
    let mut watcher = Watcher::default();
    let wakes = Wakes::every(Duration::from_secs(1)).and_on_change(&server);
    on_change_or_tick(token, wakes, async move |_| {
        let state = server.state();
        for decision in watcher.step(&state, Timestamp::now()) {
            if let Err(error) = server.propose(decision.command).await {
                tracing::warn!(%error, deployment = %decision.deployment_id, "deployment update not committed");
                continue;
            }
            match decision.revert {
                None => {}
                Some(AutoRevert::NothingStable { job_id }) => {
                    tracing::warn!(job = %job_id, "deployment failed and auto_revert is set, but no earlier version is stable");
                }
                Some(AutoRevert::To(stable)) => {
                    let job_id = stable.id.clone();
                    tracing::warn!(job = %job_id, version = stable.version, "deployment failed; reverting to the last stable version");
                    if let Err(error) = server.register_job(Job::clone(&stable)).await {
                        tracing::warn!(%error, job = %job_id, "automatic revert failed");
                    }
                }
            }
        }
    })
    .await;
}

/// What the watcher decided about one deployment.
#[derive(Debug)]
pub(super) struct Decision {
    /// The deployment.
    pub(super) deployment_id: DeploymentId,
    /// The change to propose.
    pub(super) command: Command,
    /// What to do once the change is committed: set when it fails the
    /// deployment and one of its groups has `auto_revert`.
    pub(super) revert: Option<AutoRevert>,
}

/// The roll-back of a failed deployment with `auto_revert`.
#[derive(Debug, PartialEq)]
pub(super) enum AutoRevert {
    /// Register this version again: the newest stable one older than the
    /// failed one.
    To(Arc<Job>),
    /// No earlier version is stable: nothing to roll back to.
    NothingStable {
        /// The job.
        job_id: drover_types::JobId,
    },
}

/// The deployment watcher's memory between passes.
#[derive(Default)]
pub(super) struct Watcher {
    /// The counters each deployment had when last looked at, to create one
    /// evaluation per change rather than one per pass.
    seen: HashMap<DeploymentId, u64>,
}

impl Watcher {
    /// One pass over the active deployments of `state`: what to change
    /// about each, in the order to propose it.
    pub(super) fn step(&mut self, state: &State, now: Timestamp) -> Vec<Decision> {
        let mut decisions = Vec::new();
        for deployment in state.active_deployments() {
            let Some(command) = change_for(state, deployment, now, &mut self.seen) else { continue };
            let fails = match &command {
                Command::UpsertDeployment { deployment: updated, .. } => updated.status == DeploymentStatus::Failed,
                _ => false,
            };
            let revert = (fails && deployment.groups.values().any(|group| group.auto_revert))
                .then(|| stable_before(state, deployment));
            decisions.push(Decision { deployment_id: deployment.id.clone(), command, revert });
        }
        self.seen.retain(|id, _| state.deployment(id).is_some_and(|deployment| deployment.status.is_active()));
        decisions
    }
}

/// The version to revert to when `failed` fails.
fn stable_before(state: &State, failed: &Deployment) -> AutoRevert {
    let stable = state.job_versions(&failed.job_id).filter(|job| job.stable && job.version < failed.job_version).last();
    match stable {
        Some(stable) => AutoRevert::To(Arc::clone(stable)),
        None => AutoRevert::NothingStable { job_id: failed.job_id.clone() },
    }
}

/// What to change about one deployment, if anything.
fn change_for(
    state: &State,
    deployment: &Deployment,
    now: Timestamp,
    seen: &mut HashMap<DeploymentId, u64>,
) -> Option<Command> {
    let job = state.job(&deployment.job_id);
    let mut updated = deployment.clone();
    updated.modify_time = now;
    let mut evals = Vec::new();
    let mut stable_version = None;

    let superseded = match job {
        None => true,
        Some(job) => job.stop || job.version != deployment.job_version,
    };
    if superseded {
        updated.status = DeploymentStatus::Cancelled;
        updated.status_description = "superseded by a newer job version or a stop".to_owned();
        return Some(Command::UpsertDeployment { deployment: updated, evals, stable_version });
    }
    let priority = job.map_or(50, |job| job.priority);

    let mut failure: Option<String> = None;
    let mut all_done = true;
    let mut waiting_for_promotion = false;
    let mut promoted_now = false;
    for (name, group) in updated.groups.iter_mut() {
        if group.unhealthy_allocs > 0 {
            failure = Some(format!("{} allocation(s) of group {name:?} are unhealthy", group.unhealthy_allocs));
            break;
        }
        let awaiting = group.desired_canaries > 0 && !group.promoted;
        if awaiting {
            let healthy_canaries = group
                .placed_canaries
                .iter()
                .filter(|id| {
                    state
                        .alloc(id)
                        .and_then(|alloc| alloc.deployment_status.as_ref())
                        .is_some_and(|status| status.healthy == Some(true))
                })
                .count() as u32;
            if healthy_canaries >= group.desired_canaries {
                if group.auto_promote {
                    group.promoted = true;
                    promoted_now = true;
                } else {
                    waiting_for_promotion = true;
                }
            }
        }
        let done = group.promoted || group.desired_canaries == 0;
        let done = done && group.healthy_allocs >= group.desired_total;
        if !done {
            all_done = false;
            if !waiting_for_promotion
                && let Some(deadline) = group.require_progress_by
                && now > deadline
            {
                failure = Some(format!(
                    "group {name:?} made no progress within its progress_deadline of {}",
                    group.progress_deadline
                ));
                break;
            }
        }
    }

    if let Some(reason) = failure {
        updated.status = DeploymentStatus::Failed;
        updated.status_description = reason;
    } else if all_done {
        updated.status = DeploymentStatus::Successful;
        updated.status_description = "every allocation is healthy".to_owned();
        stable_version = Some(updated.job_version);
    } else if waiting_for_promotion && updated.status != DeploymentStatus::Blocked {
        updated.status = DeploymentStatus::Blocked;
        updated.status_description =
            format!("canaries are healthy; promote with `drover job promote {}`", updated.job_id);
    }

    // Progress (a newly healthy allocation, or a promotion): the scheduler
    // places the next batch.
    let counters: u64 =
        updated.groups.values().map(|group| u64::from(group.healthy_allocs)).sum::<u64>() + u64::from(promoted_now);
    let progressed = seen.insert(updated.id.clone(), counters) != Some(counters);
    if updated.status.is_active() && (progressed || promoted_now) {
        let mut eval =
            Evaluation::new(new_eval_id(), updated.job_id.clone(), priority, EvalTrigger::DeploymentWatcher, now);
        eval.status_description = format!("deployment {} progressed", updated.id.short());
        evals.push(eval);
    }

    let unchanged = updated.status == deployment.status
        && updated.status_description == deployment.status_description
        && updated.groups == deployment.groups;
    if unchanged && evals.is_empty() {
        return None;
    }
    if unchanged {
        return Some(Command::UpsertEvals { evals });
    }
    Some(Command::UpsertDeployment { deployment: updated, evals, stable_version })
}

#[cfg(test)]
mod tests {
    use drover_types::{AllocClientStatus, DeploymentGroup, JobType};

    use super::*;
    use crate::leader::test_support::{Cluster, alloc, at, deployment, deployment_group, group, in_deployment, job};

    /// The job `web` (version 0, group `web` of two) on node `n1`, and a
    /// deployment `d1` of it with `group`.
    fn rolling_out(group_state: DeploymentGroup) -> Cluster {
        let mut cluster = Cluster::new();
        cluster.node("n1");
        cluster.register(job("web", JobType::Service, vec![group("web", 2, 1)]));
        cluster.upsert_deployment(deployment("d1", "web", 0, group_state), None);
        cluster
    }

    /// Places `id` for deployment `d1` on `n1`.
    fn place(cluster: &mut Cluster, id: &str, canary: bool) {
        let node = drover_types::NodeId::new("n1");
        cluster.place(vec![in_deployment(alloc(id, "web", "web", &node), "d1", canary)], None);
    }

    /// The deployment a decision writes.
    fn written(decision: &Decision) -> &Deployment {
        match &decision.command {
            Command::UpsertDeployment { deployment, .. } => deployment,
            other => panic!("expected a deployment update, got {other:?}"),
        }
    }

    /// The evaluations a decision creates.
    fn evals(decision: &Decision) -> &[Evaluation] {
        match &decision.command {
            Command::UpsertDeployment { evals, .. } | Command::UpsertEvals { evals } => evals,
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[test]
    fn every_allocation_healthy_completes_the_deployment_and_marks_the_version_stable() {
        let mut cluster = rolling_out(deployment_group(2, 0));
        let mut watcher = Watcher::default();
        place(&mut cluster, "a1", false);
        place(&mut cluster, "a2", false);
        cluster.report("a1", AllocClientStatus::Running, Some(true));

        // One healthy: the scheduler is asked for the next batch, once.
        let decisions = watcher.step(&cluster.state, at(10));
        assert!(matches!(decisions[0].command, Command::UpsertEvals { .. }), "{decisions:?}");
        assert_eq!(evals(&decisions[0])[0].triggered_by, EvalTrigger::DeploymentWatcher);
        assert!(watcher.step(&cluster.state, at(11)).is_empty(), "no new progress, no new evaluation");

        cluster.report("a2", AllocClientStatus::Running, Some(true));
        let decisions = watcher.step(&cluster.state, at(12));
        assert_eq!(decisions.len(), 1);
        assert_eq!(written(&decisions[0]).status, DeploymentStatus::Successful);
        assert!(matches!(decisions[0].command, Command::UpsertDeployment { stable_version: Some(0), .. }));
        assert!(evals(&decisions[0]).is_empty(), "a finished deployment places nothing more");
        assert_eq!(decisions[0].revert, None);
    }

    #[test]
    fn healthy_canaries_are_promoted_with_auto_promote() {
        let mut cluster = rolling_out(DeploymentGroup { auto_promote: true, ..deployment_group(2, 1) });
        place(&mut cluster, "canary", true);
        let mut watcher = Watcher::default();
        assert!(
            watcher.step(&cluster.state, at(10)).iter().all(|decision| !written_promoted(decision)),
            "not before the canary is healthy"
        );
        cluster.report("canary", AllocClientStatus::Running, Some(true));
        let decisions = watcher.step(&cluster.state, at(11));
        assert!(written_promoted(&decisions[0]));
        assert_eq!(written(&decisions[0]).status, DeploymentStatus::Running);
        assert_eq!(evals(&decisions[0]).len(), 1, "the promotion places the rest");
    }

    fn written_promoted(decision: &Decision) -> bool {
        matches!(&decision.command, Command::UpsertDeployment { deployment, .. } if deployment.groups["web"].promoted)
    }

    #[test]
    fn healthy_canaries_without_auto_promote_wait_for_a_human_however_long() {
        let mut cluster = rolling_out(deployment_group(2, 1));
        place(&mut cluster, "canary", true);
        cluster.report("canary", AllocClientStatus::Running, Some(true));
        let mut watcher = Watcher::default();
        let decisions = watcher.step(&cluster.state, at(10));
        let blocked = written(&decisions[0]);
        assert_eq!(blocked.status, DeploymentStatus::Blocked);
        assert!(!blocked.groups["web"].promoted);
        assert!(blocked.status_description.contains("drover job promote web"), "{}", blocked.status_description);
        cluster.apply(&decisions[0].command);

        // Waiting for a promotion is not a lack of progress.
        let deadline = cluster.state.deployment(&DeploymentId::new("d1")).unwrap().groups["web"].require_progress_by;
        assert_eq!(deadline, Some(at(600)));
        assert!(watcher.step(&cluster.state, at(10_000)).is_empty());
    }

    #[test]
    fn an_unhealthy_allocation_fails_the_deployment_and_auto_revert_rolls_back_to_the_last_stable_version() {
        let mut cluster = Cluster::new();
        cluster.node("n1");
        cluster.register(job("web", JobType::Service, vec![group("web", 2, 1)]));
        cluster.upsert_deployment(deployment("d0", "web", 0, deployment_group(2, 0)), Some(0));
        let mut newer = job("web", JobType::Service, vec![group("web", 2, 1)]);
        newer.priority = 60;
        cluster.register(newer);
        let auto_revert = DeploymentGroup { auto_revert: true, ..deployment_group(2, 0) };
        cluster.upsert_deployment(deployment("d1", "web", 1, auto_revert), None);
        place(&mut cluster, "a1", false);
        cluster.report("a1", AllocClientStatus::Failed, Some(false));

        let decisions = Watcher::default().step(&cluster.state, at(10));
        let failed: Vec<&Decision> =
            decisions.iter().filter(|decision| written(decision).id == DeploymentId::new("d1")).collect();
        assert_eq!(written(failed[0]).status, DeploymentStatus::Failed);
        assert_eq!(written(failed[0]).status_description, "1 allocation(s) of group \"web\" are unhealthy");
        let Some(AutoRevert::To(stable)) = &failed[0].revert else { panic!("expected a revert: {:?}", failed[0]) };
        assert_eq!((stable.version, stable.stable, stable.priority), (0, true, 50));
    }

    #[test]
    fn a_failure_without_auto_revert_or_without_a_stable_version_reverts_nothing() {
        let mut cluster = rolling_out(deployment_group(2, 0));
        place(&mut cluster, "a1", false);
        cluster.report("a1", AllocClientStatus::Failed, Some(false));
        let decisions = Watcher::default().step(&cluster.state, at(10));
        assert_eq!(written(&decisions[0]).status, DeploymentStatus::Failed);
        assert_eq!(decisions[0].revert, None);

        let mut cluster = rolling_out(DeploymentGroup { auto_revert: true, ..deployment_group(2, 0) });
        place(&mut cluster, "a1", false);
        cluster.report("a1", AllocClientStatus::Failed, Some(false));
        let decisions = Watcher::default().step(&cluster.state, at(10));
        assert_eq!(decisions[0].revert, Some(AutoRevert::NothingStable { job_id: "web".into() }));
    }

    #[test]
    fn no_progress_by_the_deadline_fails_the_deployment() {
        let mut cluster = rolling_out(deployment_group(2, 0));
        place(&mut cluster, "a1", false);
        place(&mut cluster, "a2", false);
        // Healthy at 0: the next healthy allocation is due by 600 s.
        cluster.report("a1", AllocClientStatus::Running, Some(true));
        let mut watcher = Watcher::default();
        let on_time = watcher.step(&cluster.state, at(600));
        assert!(on_time.iter().all(|decision| matches!(decision.command, Command::UpsertEvals { .. })));

        let late = watcher.step(&cluster.state, at(601));
        let failed = written(&late[0]);
        assert_eq!(failed.status, DeploymentStatus::Failed);
        assert_eq!(failed.status_description, "group \"web\" made no progress within its progress_deadline of 10m");
    }

    #[test]
    fn a_newer_job_version_cancels_the_deployment() {
        let mut cluster = rolling_out(deployment_group(2, 0));
        let mut newer = job("web", JobType::Service, vec![group("web", 3, 1)]);
        newer.meta.insert("release".to_owned(), "2".to_owned());
        cluster.register(newer);
        let decisions = Watcher::default().step(&cluster.state, at(10));
        assert_eq!(written(&decisions[0]).status, DeploymentStatus::Cancelled);
        assert_eq!(decisions[0].revert, None);
    }
}
