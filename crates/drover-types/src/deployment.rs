//! Deployments: the rollout of a new job version under its `update` block.
//!
//! A deployment is created by the scheduler when a job version replaces
//! running allocations of an older one in groups that have an `update`
//! block. It tracks, per group, how many new allocations were placed and how
//! many proved healthy; the leader's deployment watcher moves it to
//! `successful` (and marks the version stable) or `failed` (and, with
//! `auto_revert`, registers the last stable version again).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{AllocId, DeploymentId, JobId};
use crate::time::{DurationSpec, Timestamp};

/// Where a deployment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    /// Rolling out.
    #[default]
    Running,
    /// Canaries are healthy; waiting for `drover job promote`.
    Blocked,
    /// Every new allocation is healthy.
    Successful,
    /// An allocation proved unhealthy, or no progress before the deadline.
    Failed,
    /// A newer version (or a stop) superseded it.
    Cancelled,
}

impl DeploymentStatus {
    /// Whether the deployment is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, DeploymentStatus::Successful | DeploymentStatus::Failed | DeploymentStatus::Cancelled)
    }

    /// Whether the scheduler may still place allocations for it.
    pub fn is_active(self) -> bool {
        matches!(self, DeploymentStatus::Running | DeploymentStatus::Blocked)
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::Blocked => "blocked",
            DeploymentStatus::Successful => "successful",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Cancelled => "cancelled",
        })
    }
}

/// The state of one group in a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeploymentGroup {
    /// Revert to the last stable version on failure.
    pub auto_revert: bool,
    /// Promote automatically once the canaries are healthy.
    pub auto_promote: bool,
    /// Whether the canaries were promoted (always true without canaries).
    pub promoted: bool,
    /// Canaries asked for.
    pub desired_canaries: u32,
    /// Allocations of the new version wanted in the end (the group's count).
    pub desired_total: u32,
    /// The canaries placed.
    pub placed_canaries: Vec<AllocId>,
    /// New-version allocations placed so far.
    pub placed_allocs: u32,
    /// Of those, healthy.
    pub healthy_allocs: u32,
    /// Of those, unhealthy.
    pub unhealthy_allocs: u32,
    /// How long the deployment may go without a new healthy allocation.
    pub progress_deadline: DurationSpec,
    /// When the next healthy allocation is due (reset at each one).
    pub require_progress_by: Option<Timestamp>,
}

/// One rollout of one job version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Deployment id (a UUID).
    pub id: DeploymentId,
    /// The job.
    pub job_id: JobId,
    /// The version being rolled out.
    pub job_version: u64,
    /// The job's `job_modify_index` for that version.
    pub job_modify_index: u64,
    /// Where it is.
    pub status: DeploymentStatus,
    /// Detail for humans.
    pub status_description: String,
    /// Per group.
    pub groups: BTreeMap<String, DeploymentGroup>,
    /// Creation.
    pub create_time: Timestamp,
    /// Last change.
    pub modify_time: Timestamp,
    /// Raft index of creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

impl Deployment {
    /// Whether every group's canaries are promoted (or it has none).
    pub fn is_promoted(&self) -> bool {
        self.groups.values().all(|group| group.promoted || group.desired_canaries == 0)
    }

    /// Whether the group `name` still waits for a promotion.
    pub fn awaits_promotion(&self, name: &str) -> bool {
        self.groups.get(name).is_some_and(|group| group.desired_canaries > 0 && !group.promoted)
    }
}
