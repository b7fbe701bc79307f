//! The evaluation broker, the scheduler workers and the plan applier.
//!
//! ```text
//!   open evaluations ──▶ broker ──(one per job at a time)──▶ worker × N
//!                                                            │ schedule(snapshot)
//!                                                            ▼
//!                          plan applier (one, sequential): verify_plan(latest state)
//!                                                            │ propose ApplyPlan
//!                          partly rejected? ◀── worker re-plans on a fresh snapshot
//! ```
//!
//! The applier handles one plan at a time and waits for it to be applied
//! before verifying the next, so two workers can never over-commit a node:
//! the second plan is checked against a state that already contains the
//! first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::{EvalId, EvalStatus, EvalTrigger, Evaluation, JobId, Plan, Timestamp};

use crate::ids::new_eval_id;
use crate::server::Server;
use crate::view::StateView;

/// Attempts to commit a plan for one evaluation before it is failed.
const MAX_PLAN_ATTEMPTS: usize = 5;
/// Minimum time between two releases of blocked evaluations.
const UNBLOCK_INTERVAL: Duration = Duration::from_secs(1);

struct PlanRequest {
    plan: Plan,
    eval: Arc<Evaluation>,
    /// The capacity index of the snapshot the plan was made on.
    capacity_index: u64,
    reply: oneshot::Sender<PlanOutcome>,
}

enum PlanOutcome {
    /// The whole plan was committed and the evaluation closed.
    Committed,
    /// Part of the plan was rejected (or the job changed): plan again on a
    /// fresh snapshot.
    Retry,
}

pub(super) async fn run(server: Server, token: CancellationToken) {
    let (plan_sender, plan_receiver) = mpsc::channel::<PlanRequest>(64);
    tokio::spawn(apply_plans(server.clone(), plan_receiver, token.clone()));

    let workers = Arc::new(Semaphore::new(server.config().num_scheduler_workers.max(1)));
    let (done_sender, mut done_receiver) = mpsc::unbounded_channel::<JobId>();
    let mut jobs_in_flight: HashSet<JobId> = HashSet::new();
    let mut states = server.watch_state();
    let mut last_unblock = tokio::time::Instant::now() - UNBLOCK_INTERVAL;

    loop {
        let state: Arc<State> = states.borrow_and_update().clone();
        let now = Timestamp::now();

        let mut unblock_due = None;
        if has_releasable(&state) {
            let elapsed = last_unblock.elapsed();
            if elapsed >= UNBLOCK_INTERVAL {
                last_unblock = tokio::time::Instant::now();
                release_blocked(&server, &state, now).await;
            } else {
                unblock_due = Some(UNBLOCK_INTERVAL - elapsed);
            }
        }

        let mut ready: Vec<Arc<Evaluation>> = state
            .open_evals()
            .filter(|eval| eval.status == EvalStatus::Pending)
            .filter(|eval| eval.wait_until.is_none_or(|due| due <= now))
            .filter(|eval| !jobs_in_flight.contains(&eval.job_id))
            .cloned()
            .collect();
        ready
            .sort_by(|left, right| right.priority.cmp(&left.priority).then(left.create_index.cmp(&right.create_index)));
        for eval in ready {
            if jobs_in_flight.contains(&eval.job_id) {
                continue;
            }
            let Ok(permit) = Arc::clone(&workers).try_acquire_owned() else { break };
            jobs_in_flight.insert(eval.job_id.clone());
            let server = server.clone();
            let plans = plan_sender.clone();
            let done = done_sender.clone();
            tokio::spawn(async move {
                let job_id = eval.job_id.clone();
                let started = std::time::Instant::now();
                evaluate(&server, eval, &plans).await;
                server.self_metrics().scheduler.evaluated(started.elapsed());
                drop(permit);
                let _ = done.send(job_id);
            });
        }

        let next_due = state
            .open_evals()
            .filter_map(|eval| eval.wait_until)
            .filter(|due| *due > now)
            .min()
            .map(|due| due.since(now))
            .unwrap_or(Duration::from_secs(5))
            .min(unblock_due.unwrap_or(Duration::MAX))
            .max(Duration::from_millis(10));
        tokio::select! {
            () = token.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            Some(job_id) = done_receiver.recv() => { jobs_in_flight.remove(&job_id); }
            () = tokio::time::sleep(next_due) => {}
        }
    }
}

/// Runs the scheduler for one evaluation until its plan is committed.
async fn evaluate(server: &Server, eval: Arc<Evaluation>, plans: &mpsc::Sender<PlanRequest>) {
    for attempt in 1..=MAX_PLAN_ATTEMPTS {
        let state = server.state();
        // The evaluation may have been closed meanwhile (a duplicate).
        if state.eval(&eval.id).is_none_or(|current| current.status != EvalStatus::Pending) {
            return;
        }
        let now = Timestamp::now();
        let job = state.job(&eval.job_id).map(|job| job.as_ref());
        let plan = match job {
            // A periodic parent never runs itself: its children do.
            Some(parent) if parent.is_periodic() => Plan {
                eval_id: eval.id.clone(),
                job_id: parent.id.clone(),
                job_modify_index: parent.job_modify_index,
                ..Plan::default()
            },
            _ => drover_scheduler::schedule(&StateView::new(&state), job, &eval, now, &mut rand::rng()),
        };
        let (reply, outcome) = oneshot::channel();
        let request = PlanRequest { plan, eval: Arc::clone(&eval), capacity_index: state.capacity_index(), reply };
        if plans.send(request).await.is_err() {
            return;
        }
        match outcome.await {
            Ok(PlanOutcome::Committed) => return,
            Ok(PlanOutcome::Retry) => {
                tracing::debug!(eval = %eval.id, attempt, "plan partly rejected; planning again");
            }
            Err(_) => return,
        }
    }
    let mut failed = Evaluation::clone(&eval);
    failed.status = EvalStatus::Failed;
    failed.status_description = format!("no plan could be committed in {MAX_PLAN_ATTEMPTS} attempts");
    server.self_metrics().scheduler.evaluation_failed();
    failed.modify_time = Timestamp::now();
    if let Err(error) = server.propose(Command::UpsertEvals { evals: vec![failed] }).await {
        tracing::warn!(%error, eval = %eval.id, "could not mark evaluation failed");
    }
}

/// Verifies and commits plans one at a time.
async fn apply_plans(server: Server, mut receiver: mpsc::Receiver<PlanRequest>, token: CancellationToken) {
    loop {
        let request = tokio::select! {
            () = token.cancelled() => return,
            request = receiver.recv() => match request { Some(request) => request, None => return },
        };
        let outcome = apply_one(&server, request.plan, &request.eval, request.capacity_index).await;
        let _ = request.reply.send(outcome);
    }
}

async fn apply_one(server: &Server, plan: Plan, eval: &Evaluation, capacity_index: u64) -> PlanOutcome {
    let state = server.state();
    let verified = drover_scheduler::verify_plan(&StateView::new(&state), &plan);
    server.self_metrics().scheduler.plan_checked(verified.job_changed, verified.rejected_nodes.len());
    if verified.job_changed {
        return PlanOutcome::Retry;
    }
    let fully_accepted = verified.rejected_nodes.is_empty();
    let mut accepted = verified.accepted;
    let now = Timestamp::now();

    let mut updated_eval = eval.clone();
    updated_eval.modify_time = now;
    let mut blocked_eval = None;
    if fully_accepted {
        updated_eval.status = EvalStatus::Complete;
        updated_eval.failed_placements = accepted.failed.clone();
        updated_eval.queued =
            accepted.failed.iter().map(|(group, failure)| (group.clone(), failure.num_unplaced)).collect();
        // At most one blocked evaluation per job: close the older ones.
        for old in state.evals_for_job(&eval.job_id).filter(|old| old.status == EvalStatus::Blocked) {
            let mut canceled = Evaluation::clone(old);
            canceled.status = EvalStatus::Canceled;
            canceled.status_description = format!("superseded by evaluation {}", eval.id);
            canceled.modify_time = now;
            accepted.follow_ups.push(canceled);
        }
        if !accepted.failed.is_empty() {
            let mut blocked =
                Evaluation::new(new_eval_id(), eval.job_id.clone(), eval.priority, EvalTrigger::QueuedAllocs, now);
            blocked.status = EvalStatus::Blocked;
            blocked.status_description = "waiting for capacity".to_owned();
            blocked.blocked_at_capacity = capacity_index;
            blocked.previous_eval = Some(eval.id.clone());
            blocked.failed_placements = accepted.failed.clone();
            blocked.queued = updated_eval.queued.clone();
            updated_eval.blocked_eval = Some(blocked.id.clone());
            blocked_eval = Some(blocked);
        }
    }

    let num_placed = accepted.place.len();
    let command = Command::ApplyPlan { plan: Box::new(accepted), eval: updated_eval, blocked_eval, now };
    let proposed = server.propose(command).await;
    if proposed.is_ok() {
        server.self_metrics().scheduler.plan_committed(num_placed);
    }
    match proposed {
        Ok(_) if fully_accepted => PlanOutcome::Committed,
        Ok(_) => PlanOutcome::Retry,
        Err(error) => {
            tracing::warn!(%error, eval = %eval.id, "plan not committed");
            tokio::time::sleep(Duration::from_millis(200)).await;
            PlanOutcome::Retry
        }
    }
}

/// Whether a blocked evaluation waits for capacity that has since changed.
fn is_releasable(state: &State, eval: &Evaluation) -> bool {
    eval.status == EvalStatus::Blocked && eval.blocked_at_capacity < state.capacity_index()
}

fn has_releasable(state: &State) -> bool {
    state.open_evals().any(|eval| is_releasable(state, eval))
}

/// Returns blocked evaluations to the queue after capacity changed.
async fn release_blocked(server: &Server, state: &State, now: Timestamp) {
    let released = released_evals(state, now);
    if released.is_empty() {
        return;
    }
    let ids: Vec<EvalId> = released.iter().map(|eval| eval.id.clone()).collect();
    tracing::debug!(num_evals = ids.len(), "releasing blocked evaluations");
    if let Err(error) = server.propose(Command::UpsertEvals { evals: released }).await {
        tracing::warn!(%error, "could not release blocked evaluations");
    }
}

/// The blocked evaluations whose wait is over, pending again: those
/// blocked before capacity last changed (any change to a node, or an
/// allocation that stopped holding resources).
fn released_evals(state: &State, now: Timestamp) -> Vec<Evaluation> {
    state
        .open_evals()
        .filter(|eval| is_releasable(state, eval))
        .map(|eval| {
            let mut released = Evaluation::clone(eval);
            released.status = EvalStatus::Pending;
            released.status_description = "capacity changed; retrying placement".to_owned();
            released.modify_time = now;
            released
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use drover_types::{AllocClientStatus, JobType};

    use super::*;
    use crate::leader::test_support::{Cluster, alloc, at, evaluation, group, job};

    /// A cluster with the job `web` running on `n1` and a blocked
    /// evaluation of `web` that saw the capacity as it is now.
    fn blocked_for_capacity() -> Cluster {
        let mut cluster = Cluster::new();
        let node = cluster.node("n1");
        cluster.register(job("web", JobType::Service, vec![group("web", 2, 1)]));
        cluster.place(vec![alloc("web-1", "web", "web", &node)], None);
        let mut blocked = evaluation("blocked", "web", EvalStatus::Blocked);
        blocked.blocked_at_capacity = cluster.state.capacity_index();
        cluster.apply(&Command::UpsertEvals { evals: vec![blocked, evaluation("queued", "web", EvalStatus::Pending)] });
        cluster
    }

    fn released_ids(cluster: &Cluster) -> Vec<String> {
        released_evals(&cluster.state, at(100)).iter().map(|eval| eval.id.to_string()).collect()
    }

    #[test]
    fn a_blocked_evaluation_waits_while_capacity_stays_the_same() {
        let mut cluster = blocked_for_capacity();
        assert!(released_ids(&cluster).is_empty());
        // A change that frees nothing (a new evaluation) is no reason.
        cluster.apply(&Command::UpsertEvals { evals: vec![evaluation("other", "web", EvalStatus::Pending)] });
        assert!(released_ids(&cluster).is_empty());
        assert!(!has_releasable(&cluster.state));
    }

    #[test]
    fn a_new_node_releases_the_blocked_evaluation() {
        let mut cluster = blocked_for_capacity();
        cluster.node("n2");
        assert!(has_releasable(&cluster.state));
        let released = released_evals(&cluster.state, at(100));
        assert_eq!(released.len(), 1, "only the blocked one: {released:?}");
        assert_eq!(released[0].id.as_str(), "blocked");
        assert_eq!(released[0].status, EvalStatus::Pending);
        assert_eq!(released[0].status_description, "capacity changed; retrying placement");
        assert_eq!(released[0].modify_time, at(100));

        // Once pending again, it is the broker's, not released twice.
        cluster.apply(&Command::UpsertEvals { evals: released });
        assert!(released_ids(&cluster).is_empty());
    }

    #[test]
    fn an_allocation_that_stops_holding_resources_releases_the_blocked_evaluation() {
        let mut cluster = blocked_for_capacity();
        cluster.report("web-1", AllocClientStatus::Running, None);
        assert!(released_ids(&cluster).is_empty(), "a running allocation still holds its resources");
        cluster.report("web-1", AllocClientStatus::Failed, None);
        assert_eq!(released_ids(&cluster), ["blocked"]);
    }
}
