//! Job version changes: can an allocation of an older version be moved to
//! the new version in place, or must it be replaced?
//!
//! Only what the running tasks see forces a replacement: the tasks' driver,
//! command, environment, resources, user, services and checks, constraints,
//! meta and log settings, the set of tasks itself, and the group's ports. Everything else — count, job and
//! group meta, `update`, `migrate`, `reschedule` and `restart` blocks,
//! affinities, spreads, a task's `kill_timeout` and `kill_signal` — is
//! updated in place, as long as the group's constraints still accept the
//! allocation's node.

use drover_types::{Allocation, Job, Node, Task, TaskGroup};

use crate::constraint::PatternCache;
use crate::feasibility::{GroupRules, NodeVerdict};
use crate::view::ClusterView;

/// What a job version change means for one allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateKind {
    /// It already runs the current version.
    Current,
    /// Move it to the current version without restarting it.
    InPlace,
    /// Stop it and place a replacement.
    Destructive,
}

/// Decides how `alloc`, running on `node`, follows `job`'s current version.
///
/// An older version that the view no longer keeps makes the update
/// destructive: without it nothing proves the tasks are unchanged.
pub(crate) fn update_kind<V: ClusterView + ?Sized>(
    view: &V,
    job: &Job,
    group: &TaskGroup,
    rules: &GroupRules,
    alloc: &Allocation,
    node: &Node,
    cache: &mut PatternCache,
) -> UpdateKind {
    if alloc.job_version == job.version {
        return UpdateKind::Current;
    }
    let Some(old_group) = view.job_version(&job.id, alloc.job_version).and_then(|old_job| old_job.group(&group.name))
    else {
        return UpdateKind::Destructive;
    };
    // The ports were chosen for the old network block.
    if tasks_differ(old_group, group) || old_group.network != group.network {
        return UpdateKind::Destructive;
    }
    if rules.check_static(node, cache) != NodeVerdict::Feasible {
        return UpdateKind::Destructive;
    }
    UpdateKind::InPlace
}

/// Whether the tasks of two versions of a group differ in anything a
/// running task sees.
pub(crate) fn tasks_differ(old_group: &TaskGroup, new_group: &TaskGroup) -> bool {
    if old_group.tasks.len() != new_group.tasks.len() {
        return true;
    }
    new_group.tasks.iter().any(|new_task| {
        match old_group.tasks.iter().find(|old_task| old_task.name == new_task.name) {
            Some(old_task) => task_differs(old_task, new_task),
            None => true,
        }
    })
}

fn task_differs(old_task: &Task, new_task: &Task) -> bool {
    old_task.driver != new_task.driver
        || old_task.config != new_task.config
        || old_task.env != new_task.env
        || old_task.resources != new_task.resources
        || old_task.user != new_task.user
        || old_task.constraints != new_task.constraints
        || old_task.services != new_task.services
        || old_task.meta != new_task.meta
        || old_task.logs != new_task.logs
}
