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
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::{DeploymentId, DeploymentStatus, EvalTrigger, Evaluation, Job, Timestamp};

use crate::ids::new_eval_id;
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken) {
    // The counters each deployment had when last looked at, to create one
    // evaluation per change rather than one per pass.
    let mut seen: HashMap<DeploymentId, u64> = HashMap::new();
    let mut states = server.watch_state();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let state = server.state();
        let now = Timestamp::now();
        let active: Vec<_> = state.active_deployments().cloned().collect();
        for deployment in active {
            let Some(command) = step(&state, &deployment, now, &mut seen) else { continue };
            if let Err(error) = server.propose(command).await {
                tracing::warn!(%error, deployment = %deployment.id, "deployment update not committed");
                continue;
            }
            // On failure with auto_revert, roll back to the last stable version.
            let failed = server
                .state()
                .deployment(&deployment.id)
                .is_some_and(|latest| latest.status == DeploymentStatus::Failed);
            if failed && deployment.groups.values().any(|group| group.auto_revert) {
                revert_to_stable(&server, &state, &deployment.job_id, deployment.job_version).await;
            }
        }
        seen.retain(|id, _| state.deployment(id).is_some_and(|deployment| deployment.status.is_active()));
    }
}

/// What to change about one deployment, if anything.
fn step(
    state: &State,
    deployment: &drover_types::Deployment,
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

/// Registers the newest stable version older than `failed_version` again.
async fn revert_to_stable(server: &Server, state: &State, job_id: &drover_types::JobId, failed_version: u64) {
    let stable: Option<Job> = state
        .job_versions(job_id)
        .filter(|job| job.stable && job.version < failed_version)
        .last()
        .map(|job| Job::clone(job));
    let Some(stable) = stable else {
        tracing::warn!(job = %job_id, "deployment failed and auto_revert is set, but no earlier version is stable");
        return;
    };
    tracing::warn!(job = %job_id, version = stable.version, "deployment failed; reverting to the last stable version");
    if let Err(error) = server.register_job(stable).await {
        tracing::warn!(%error, job = %job_id, "automatic revert failed");
    }
}
