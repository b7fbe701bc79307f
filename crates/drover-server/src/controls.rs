//! Operator controls on jobs and nodes, beyond registering jobs:
//! promotions, reverts, periodic launches, drains and eligibility. (The
//! servers themselves are `operator.rs`.)

use std::time::Duration;

use drover_proto::api::RegisterJobResponse;
use drover_state::{Command, CommandResponse};
use drover_types::{
    CodedError, DeploymentStatus, DrainStrategy, EvalTrigger, Evaluation, Job, JobId, Node, NodeChange,
    NodeEligibility, Timestamp,
};

use crate::Result;
use crate::ids::new_eval_id;
use crate::server::Server;

/// What `drover node drain` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainRequest {
    /// Force-stop what remains after this long; `None` waits forever.
    pub deadline: Option<Duration>,
    /// Leave system-job allocations running.
    pub ignore_system_jobs: bool,
    /// Cancel the drain instead (and make the node eligible again).
    pub disable: bool,
    /// Why; overrides a node's protection for a drain with a deadline.
    pub reason: Option<String>,
    /// Who asks, for the node's history.
    pub by: String,
}

impl Server {
    /// Promotes the canaries of a job's active deployment.
    pub async fn promote_job(&self, job_id: &JobId) -> Result<drover_types::Deployment> {
        let state = self.consistent_state().await?;
        let job = state.job(job_id).ok_or_else(|| CodedError::not_found("job", job_id))?;
        let deployment = state
            .latest_deployment(job_id)
            .filter(|deployment| deployment.status.is_active() && deployment.job_version == job.version)
            .ok_or_else(|| CodedError::conflict(format!("job {job_id:?} has no active deployment to promote")))?;
        if !deployment.groups.values().any(|group| group.desired_canaries > 0 && !group.promoted) {
            return Err(CodedError::conflict(format!(
                "deployment {} has no canaries waiting for promotion",
                deployment.id.short()
            )));
        }
        let now = Timestamp::now();
        let mut promoted = drover_types::Deployment::clone(deployment);
        for group in promoted.groups.values_mut() {
            group.promoted = true;
        }
        promoted.status = DeploymentStatus::Running;
        promoted.status_description = "promoted by an operator".to_owned();
        promoted.modify_time = now;
        let mut eval =
            Evaluation::new(new_eval_id(), job_id.clone(), job.priority, EvalTrigger::DeploymentWatcher, now);
        eval.status_description = "deployment promoted".to_owned();
        self.propose(Command::UpsertDeployment {
            deployment: promoted.clone(),
            evals: vec![eval],
            stable_version: None,
        })
        .await?
        .into_result()?;
        Ok(promoted)
    }

    /// Registers version `version` of a job again, as a new version.
    pub async fn revert_job(&self, job_id: &JobId, version: u64) -> Result<RegisterJobResponse> {
        let state = self.consistent_state().await?;
        let target = state.job_version(job_id, version).ok_or_else(|| {
            let known: Vec<String> = state.job_versions(job_id).map(|job| job.version.to_string()).collect();
            CodedError::not_found("job version", format!("{job_id} v{version}")).with_hint(format!(
                "kept versions: {} (`drover job history {job_id}` lists them)",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })?;
        let current = state.job(job_id).map_or(0, |job| job.version);
        if current == version {
            return Err(CodedError::conflict(format!("job {job_id:?} already runs version {version}")));
        }
        self.register_job(Job::clone(target)).await
    }

    /// Launches a child of a periodic job for `launch_time`.
    pub async fn launch_periodic(&self, parent: &Job, launch_time: Timestamp) -> Result<RegisterJobResponse> {
        let child = crate::periodic::child_job(parent, launch_time);
        let now = Timestamp::now();
        let eval = Evaluation::new(new_eval_id(), child.id.clone(), child.priority, EvalTrigger::PeriodicJob, now);
        let command = Command::LaunchPeriodic { parent_id: parent.id.clone(), launch_time, child, eval, now };
        match self.propose(command).await?.into_result()? {
            CommandResponse::JobRegistered { index, version, changed, eval_id } => {
                tracing::info!(job = %parent.id, launch = %launch_time, "periodic job launched");
                Ok(RegisterJobResponse { eval_id, job_version: version, changed, index })
            }
            other => Err(CodedError::internal(format!("unexpected response to a periodic launch: {other}"))),
        }
    }

    /// Records a launch skipped because the previous one still runs.
    pub(crate) async fn record_periodic_skip(&self, parent_id: &JobId, launch_time: Timestamp) -> Result<()> {
        self.propose(Command::SkipPeriodicLaunch { parent_id: parent_id.clone(), launch_time }).await?.into_result()?;
        Ok(())
    }

    /// Launches a periodic job now (`drover job periodic force`), even if a
    /// previous launch still runs.
    pub async fn force_periodic(&self, job_id: &JobId) -> Result<RegisterJobResponse> {
        let state = self.consistent_state().await?;
        let parent = state.job(job_id).ok_or_else(|| CodedError::not_found("job", job_id))?;
        if !parent.is_periodic() {
            return Err(CodedError::invalid(format!("job {job_id:?} is not periodic")));
        }
        let parent = Job::clone(parent);
        self.launch_periodic(&parent, Timestamp::now()).await
    }

    /// Starts or cancels a drain.
    pub async fn drain_node(&self, name_or_id: &str, request: DrainRequest) -> Result<Node> {
        let state = self.consistent_state().await?;
        let node = state.resolve_node(name_or_id)?.clone();
        if !request.disable && request.deadline.is_some() {
            crate::inventory::check_protection(
                &node,
                "a drain with a deadline (it stops tasks by force)",
                request.reason.as_deref(),
            )?;
        }
        let now = Timestamp::now();
        let drain = if request.disable {
            None
        } else {
            Some(DrainStrategy {
                started_at: now,
                deadline: request.deadline.map(|deadline| now.plus(deadline)),
                ignore_system_jobs: request.ignore_system_jobs,
            })
        };
        let describe = |drain: Option<&DrainStrategy>| match drain {
            None => String::new(),
            Some(DrainStrategy { deadline: None, .. }) => "draining".to_owned(),
            Some(DrainStrategy { deadline: Some(deadline), started_at, .. }) => {
                format!("draining, deadline {}", drover_types::DurationSpec(deadline.since(*started_at)))
            }
        };
        let audit = vec![NodeChange {
            at: now,
            by: request.by.clone(),
            field: "drain".to_owned(),
            from: describe(node.drain.as_ref()),
            to: if request.disable { "cancelled".to_owned() } else { describe(drain.as_ref()) },
            reason: request.reason.clone().unwrap_or_default(),
        }];
        let command =
            Command::UpdateNodeDrain { node_id: node.id.clone(), drain, mark_eligible: request.disable, now, audit };
        let response = self.propose(command).await?.into_result()?;
        let state = self.wait_for_index(response.index(), Duration::from_secs(10)).await?;
        state.node(&node.id).map(|node| Node::clone(node)).ok_or_else(|| CodedError::not_found("node", &node.id))
    }

    /// Makes a node eligible or ineligible for new allocations.
    pub async fn set_eligibility(&self, name_or_id: &str, eligible: bool, by: &str) -> Result<Node> {
        let state = self.consistent_state().await?;
        let node = state.resolve_node(name_or_id)?.clone();
        if node.drain.is_some() && eligible {
            return Err(CodedError::conflict(format!(
                "node {} is draining; cancel the drain with `drover node drain {} --disable`",
                node.name, node.name
            )));
        }
        let now = Timestamp::now();
        let eligibility = if eligible { NodeEligibility::Eligible } else { NodeEligibility::Ineligible };
        // New capacity: let blocked placements retry.
        let evals = if eligible { self.evals_for_node_join(&state, &node.id, now) } else { Vec::new() };
        let name = |eligibility: NodeEligibility| match eligibility {
            NodeEligibility::Eligible => "eligible".to_owned(),
            NodeEligibility::Ineligible => "ineligible".to_owned(),
        };
        let audit = vec![NodeChange {
            at: now,
            by: by.to_owned(),
            field: "eligibility".to_owned(),
            from: name(node.eligibility),
            to: name(eligibility),
            reason: String::new(),
        }];
        let command = Command::UpdateNodeEligibility { node_id: node.id.clone(), eligibility, evals, now, audit };
        let response = self.propose(command).await?.into_result()?;
        let state = self.wait_for_index(response.index(), Duration::from_secs(10)).await?;
        state.node(&node.id).map(|node| Node::clone(node)).ok_or_else(|| CodedError::not_found("node", &node.id))
    }
}
