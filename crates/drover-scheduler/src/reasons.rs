//! The descriptions the scheduler writes: on the allocations it stops
//! (`desired_description`), on the allocations it updates in place of their
//! agent (`client_description`), and on the deployments it starts or
//! cancels (`status_description`), so that `drover alloc status` and
//! `drover job status` say why.

/// Scale-down, or a duplicate instance.
pub const ALLOC_NOT_NEEDED: &str = "alloc not needed due to job update";
/// The job was stopped by an operator.
pub const JOB_STOPPED: &str = "alloc not needed since the job was stopped";
/// The job was purged.
pub const JOB_PURGED: &str = "alloc not needed since the job was purged";
/// The group no longer exists in the job.
pub const GROUP_REMOVED: &str = "alloc not needed since its group was removed from the job";
/// A destructive update replaces it.
pub const ALLOC_UPDATING: &str = "alloc is being updated due to job update";
/// A drain moves it to another node.
pub const ALLOC_MIGRATING: &str = "alloc is being migrated";
/// Its node is down (the stop also sets the client status to `lost`).
pub const ALLOC_LOST: &str = "alloc is lost since its node is down";
/// Its node is disconnected and its group has no `disconnect.lost_after`
/// (the stop also sets the client status to `lost`).
pub const ALLOC_LOST_DISCONNECTED: &str = "alloc is lost since its node is disconnected";
/// Its node stayed disconnected longer than the group's
/// `disconnect.lost_after` (the stop also sets the client status to `lost`).
pub const ALLOC_LOST_AFTER_DISCONNECT: &str =
    "alloc is lost since its node has been disconnected for longer than disconnect.lost_after";
/// Its node is disconnected and its group waits `disconnect.lost_after`:
/// the update sets the client status to `unknown` (the allocation may
/// still be running).
pub const ALLOC_UNKNOWN: &str = "node is disconnected";
/// It replaced an allocation whose node was disconnected; that node came
/// back, the original runs again and `disconnect.reconcile` kept the
/// original.
pub const ALLOC_RECONNECT_KEPT_ORIGINAL: &str = "alloc not needed: the allocation it replaced runs again since its node reconnected, \
     and disconnect.reconcile kept the original";
/// Its node was disconnected and came back; it runs again next to its
/// replacement and `disconnect.reconcile` kept the replacement.
pub const ALLOC_RECONNECT_KEPT_REPLACEMENT: &str =
    "alloc not needed: it runs again since its node reconnected, but disconnect.reconcile kept its replacement";
/// It failed after it replaced an allocation whose node was disconnected,
/// and that allocation is back: it is not needed any more.
pub const ALLOC_FAILED_ORIGINAL_BACK: &str =
    "alloc not needed: it failed, and the allocation it replaced is back with its node";
/// It failed and a replacement was placed.
pub const ALLOC_RESCHEDULED: &str = "alloc was rescheduled because it failed";
/// It failed and will be replaced by the follow-up evaluation named in its
/// `follow_up_eval` (written by an allocation update: the allocation keeps
/// its desired status `run`).
pub const ALLOC_RESCHEDULE_LATER: &str = "alloc failed; a follow-up evaluation will reschedule it after a delay";
/// An operator asked for it to be replaced.
pub const ALLOC_RESCHEDULE_REQUESTED: &str = "alloc is being rescheduled as requested";
/// A system job's allocation on a node that no longer matches the job.
pub const NODE_NOT_FEASIBLE: &str = "alloc not needed as node is no longer feasible for the job";

/// A deployment this scheduler started.
pub const DEPLOYMENT_RUNNING: &str = "deployment is running";
/// A deployment this scheduler started whose canaries wait for
/// `drover job promote` (a group without `auto_promote` asked for some).
pub const DEPLOYMENT_RUNNING_NEEDS_PROMOTION: &str = "deployment is running but requires promotion";
/// A deployment cancelled because its job was stopped.
pub const DEPLOYMENT_CANCELLED_JOB_STOPPED: &str = "cancelled because the job was stopped";
/// A deployment cancelled because its job was purged.
pub const DEPLOYMENT_CANCELLED_JOB_PURGED: &str = "cancelled because the job was purged";

/// The description of a deployment cancelled because a newer registration
/// of its job (version `job_version`) replaced it.
pub fn deployment_superseded(job_version: u64) -> String {
    format!("superseded by job version {job_version}")
}
