//! Deployments, from the scheduler's side: which deployment a service job's
//! placements join, when a plan starts a new one, and when it cancels an
//! old one (Nomad's reconciler rules).
//!
//! A deployment belongs to one *registration* of a job: its `job_version`
//! and `job_modify_index` are the job's. Only the newest deployment of a
//! job matters ([`ClusterView::latest_deployment`](crate::ClusterView::latest_deployment)):
//!
//! ```text
//!  job stopped or purged ........................ an active one is cancelled
//!  latest is for an older registration .......... an active one is cancelled
//!  │                                               ("superseded by job version N");
//!  │                                               then as if there were none:
//!  none for the current registration ............ Starting: the plan creates one when a
//!  │                                               group with an update strategy places
//!  │                                               allocations or replaces older ones
//!  latest is for the current registration:
//!  ├─ running, blocked .......................... Deployed: placements join it; canaries
//!  │                                               until the group is promoted
//!  ├─ failed, cancelled ......................... Deployed, halted: no destructive update,
//!  │                                               no canary, until a new version arrives
//!  └─ successful ................................ Free: nothing more to roll out
//! ```
//!
//! One deployment per registration: a registration whose deployment is
//! over never gets another one, so repairs after a rollout (a failed
//! allocation rescheduled, a lost one replaced) do not restart it, and a
//! failed rollout stays halted.
//!
//! The scheduler writes deployments only when it creates or cancels them;
//! the state machine keeps their counters from the allocations, and the
//! leader's deployment watcher promotes, fails and completes them.

use drover_types::{
    Deployment, DeploymentGroup, DeploymentId, DeploymentStatus, Job, JobType, Plan, TaskGroup, Timestamp,
    UpdateStrategy,
};

use crate::reasons;

/// The update strategy of `group` when it rolls out under a limit: an
/// `update` block with `max_parallel > 0` (Nomad treats `max_parallel = 0`
/// as no strategy).
pub(crate) fn rollout_strategy<'j>(job: &'j Job, group: &'j TaskGroup) -> Option<&'j UpdateStrategy> {
    job.update_for(group).filter(|update| update.max_parallel > 0)
}

/// Whether `deployment` was started for the job's current registration.
fn is_for_registration(deployment: &Deployment, job: &Job) -> bool {
    deployment.job_version == job.version && deployment.job_modify_index == job.job_modify_index
}

/// A copy of `deployment`, cancelled at `now`.
fn cancelled(deployment: &Deployment, description: String, now: Timestamp) -> Deployment {
    Deployment {
        status: DeploymentStatus::Cancelled,
        status_description: description,
        modify_time: now,
        ..deployment.clone()
    }
}

/// Cancels the job's deployment if it is still active, for a job that was
/// stopped or purged.
pub(crate) fn cancel_for_stopped_job(
    latest: Option<&Deployment>,
    description: &'static str,
    now: Timestamp,
    plan: &mut Plan,
) {
    if let Some(deployment) = latest.filter(|deployment| deployment.status.is_active()) {
        plan.deployment_updates.push(cancelled(deployment, description.to_owned(), now));
    }
}

/// How one group stands towards the job's deployment, before this plan.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GroupRollout<'d> {
    /// No deployment applies: the job is not a service job, the group has
    /// no update strategy, the current registration's deployment succeeded,
    /// or it does not include the group. Destructive updates keep the
    /// `max_parallel` limit of the strategy, if any.
    Free,
    /// No deployment exists for the current registration: if the group has
    /// work, the plan starts one, asking for `canary` canaries when the
    /// group replaces allocations of an older version.
    Starting { canary: u32 },
    /// The current registration's deployment includes the group.
    Deployed { deployment: &'d Deployment, state: &'d DeploymentGroup },
}

impl<'d> GroupRollout<'d> {
    /// Whether the deployment failed or was cancelled: the rollout stops
    /// until a new version arrives.
    pub(crate) fn is_halted(&self) -> bool {
        match self {
            GroupRollout::Deployed { deployment, .. } => {
                matches!(deployment.status, DeploymentStatus::Failed | DeploymentStatus::Cancelled)
            }
            GroupRollout::Free | GroupRollout::Starting { .. } => false,
        }
    }

    /// The deployment whose canaries the group still waits to promote, and
    /// how many it asked for.
    pub(crate) fn unpromoted_canaries(&self) -> Option<(&'d DeploymentId, u32)> {
        match self {
            GroupRollout::Deployed { deployment, state } if state.desired_canaries > 0 && !state.promoted => {
                Some((&deployment.id, state.desired_canaries))
            }
            GroupRollout::Deployed { .. } | GroupRollout::Free | GroupRollout::Starting { .. } => None,
        }
    }
}

/// The job's deployments as this evaluation sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JobDeployments<'d> {
    /// The deployment of the current registration, any status.
    current: Option<&'d Deployment>,
}

impl<'d> JobDeployments<'d> {
    /// Reads the job's latest deployment and cancels it in `plan` if it is
    /// active and belongs to an older registration.
    pub(crate) fn new(
        latest: Option<&'d Deployment>,
        job: &Job,
        now: Timestamp,
        plan: &mut Plan,
    ) -> JobDeployments<'d> {
        let Some(latest) = latest else {
            return JobDeployments { current: None };
        };
        if is_for_registration(latest, job) {
            return JobDeployments { current: Some(latest) };
        }
        if latest.status.is_active() {
            plan.deployment_updates.push(cancelled(latest, reasons::deployment_superseded(job.version), now));
        }
        JobDeployments { current: None }
    }

    /// How `group` stands towards the deployment.
    pub(crate) fn rollout_for(&self, job: &Job, group: &TaskGroup) -> GroupRollout<'d> {
        if job.job_type != JobType::Service {
            return GroupRollout::Free;
        }
        let Some(strategy) = rollout_strategy(job, group) else {
            return GroupRollout::Free;
        };
        let Some(deployment) = self.current else {
            return GroupRollout::Starting { canary: strategy.canary };
        };
        if deployment.status == DeploymentStatus::Successful {
            return GroupRollout::Free;
        }
        match deployment.groups.get(&group.name) {
            Some(state) => GroupRollout::Deployed { deployment, state },
            None => GroupRollout::Free,
        }
    }

    /// The deployment new placements join: the current registration's, while
    /// it is active.
    pub(crate) fn active(&self) -> Option<&'d Deployment> {
        self.current.filter(|deployment| deployment.status.is_active())
    }
}

/// What a group brings to a deployment this plan starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StartingGroup<'j> {
    pub(crate) group: &'j TaskGroup,
    pub(crate) strategy: &'j UpdateStrategy,
    /// Canaries the group asked for (0 when it replaces nothing).
    pub(crate) desired_canaries: u32,
    /// New-version allocations the deployment is to place.
    pub(crate) desired_total: u32,
}

/// A new running deployment of the job's current registration.
pub(crate) fn start_deployment(
    id: DeploymentId,
    job: &Job,
    groups: &[StartingGroup<'_>],
    now: Timestamp,
) -> Deployment {
    let needs_promotion =
        groups.iter().any(|starting| starting.desired_canaries > 0 && !starting.strategy.auto_promote);
    let status_description =
        if needs_promotion { reasons::DEPLOYMENT_RUNNING_NEEDS_PROMOTION } else { reasons::DEPLOYMENT_RUNNING };
    let group_states = groups
        .iter()
        .map(|starting| {
            let strategy = starting.strategy;
            let state = DeploymentGroup {
                auto_revert: strategy.auto_revert,
                auto_promote: strategy.auto_promote,
                promoted: starting.desired_canaries == 0,
                desired_canaries: starting.desired_canaries,
                desired_total: starting.desired_total,
                placed_canaries: Vec::new(),
                placed_allocs: 0,
                healthy_allocs: 0,
                unhealthy_allocs: 0,
                progress_deadline: strategy.progress_deadline,
                require_progress_by: Some(now.plus(strategy.progress_deadline.get())),
            };
            (starting.group.name.clone(), state)
        })
        .collect();
    Deployment {
        id,
        job_id: job.id.clone(),
        job_version: job.version,
        job_modify_index: job.job_modify_index,
        status: DeploymentStatus::Running,
        status_description: status_description.to_owned(),
        groups: group_states,
        create_time: now,
        modify_time: now,
        create_index: 0,
        modify_index: 0,
    }
}
