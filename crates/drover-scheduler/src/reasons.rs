//! The descriptions the scheduler writes on the allocations it stops
//! (`desired_description`), so that `drover alloc status` says why.

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
/// It failed and a replacement was placed.
pub const ALLOC_RESCHEDULED: &str = "alloc was rescheduled because it failed";
/// It failed and will be replaced by the follow-up evaluation named in its
/// `follow_up_eval` (this entry keeps the desired status `run`).
pub const ALLOC_RESCHEDULE_LATER: &str = "alloc failed; a follow-up evaluation will reschedule it after a delay";
/// An operator asked for it to be replaced.
pub const ALLOC_RESCHEDULE_REQUESTED: &str = "alloc is being rescheduled as requested";
/// A system job's allocation on a node that no longer matches the job.
pub const NODE_NOT_FEASIBLE: &str = "alloc not needed as node is no longer feasible for the job";
