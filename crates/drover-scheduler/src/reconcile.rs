//! Reconciliation of service and batch groups: what must change so that a
//! group has `count` allocations that want to run, given the allocations it
//! has (Nomad's reconciler).
//!
//! Every allocation of the group lands in exactly one class:
//!
//! ```text
//!  live (wants to run, not terminal)        terminal
//!  ├─ node down / gone ......... lost       ├─ batch, complete ........... completed (counts, never re-run)
//!  ├─ node disconnected with a              ├─ failed, not replaced:
//!  │  `disconnect.lost_after` .. kept       │   ├─ due now (or its follow-up runs) .. reschedule now
//!  ├─ migrate flag ............. migrate    │   ├─ due later, no follow-up yet ...... reschedule later
//!  ├─ reschedule flag .......... replace    │   ├─ due later, follow-up pending ..... waiting
//!  └─ by job version:                       │   └─ attempts used up ................. exhausted (counts)
//!     current / in-place / destructive      └─ anything else ..................... ignored
//! ```
//!
//! Then the counts: lost allocations do not count; all others occupy their
//! name index. If more than `count` occupy indices, the surplus is stopped —
//! failed ones first, then migrating, destructive, in-place and running
//! ones, highest index first within a class. If fewer, lost allocations are
//! replaced (same index) and new ones fill the lowest free indices.
//! Destructive replacements are limited by the `update` block's
//! `max_parallel`, minus the allocations of the current version that are not
//! healthy yet, minus this plan's other placements.

use std::time::Duration;

use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, EvalId, Evaluation, GroupChanges, Job, JobType, Node,
    NodeId, NodeStatus, TaskGroup, Timestamp,
};

use crate::constraint::PatternCache;
use crate::fast_hash::FastSet;
use crate::feasibility::GroupRules;
use crate::ledger::is_live;
use crate::reasons;
use crate::reschedule::{self, Eligibility, RESCHEDULE_NOW_WINDOW};
use crate::update::{UpdateKind, update_kind};
use crate::view::ClusterView;

/// An allocation the plan stops, and how.
#[derive(Clone, Debug)]
pub(crate) struct StopDecision<'a> {
    pub(crate) alloc: &'a Allocation,
    pub(crate) desired_status: AllocDesiredStatus,
    pub(crate) description: &'static str,
    pub(crate) client_status: Option<AllocClientStatus>,
    pub(crate) follow_up_eval: Option<EvalId>,
}

impl<'a> StopDecision<'a> {
    /// A plain stop.
    pub(crate) fn stop(alloc: &'a Allocation, description: &'static str) -> StopDecision<'a> {
        StopDecision {
            alloc,
            desired_status: AllocDesiredStatus::Stop,
            description,
            client_status: None,
            follow_up_eval: None,
        }
    }

    /// A stop because the node is being drained.
    pub(crate) fn evict(alloc: &'a Allocation) -> StopDecision<'a> {
        StopDecision {
            desired_status: AllocDesiredStatus::Evict,
            ..StopDecision::stop(alloc, reasons::ALLOC_MIGRATING)
        }
    }

    /// A stop because the node is down: the server declares it lost.
    pub(crate) fn lost(alloc: &'a Allocation) -> StopDecision<'a> {
        StopDecision { client_status: Some(AllocClientStatus::Lost), ..StopDecision::stop(alloc, reasons::ALLOC_LOST) }
    }
}

/// Why a new allocation is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlacementKind {
    /// A missing instance.
    New,
    /// Replaces an allocation lost with its node.
    LostReplacement,
    /// Replaces a failed allocation (or one an operator asked to replace).
    Reschedule,
    /// Replaces an allocation leaving a draining node.
    Migration,
    /// Replaces an allocation of an older version whose tasks changed.
    Destructive,
}

/// One allocation to place.
#[derive(Clone, Debug)]
pub(crate) struct PlacementRequest<'a> {
    /// Name index (`job.group[index]`).
    pub(crate) index: u32,
    pub(crate) kind: PlacementKind,
    /// The allocation it replaces.
    pub(crate) previous: Option<&'a Allocation>,
    /// For reschedules: the delay recorded in the new reschedule event.
    pub(crate) reschedule_delay: Option<Duration>,
    /// For destructive updates and reschedules: the stop of the old
    /// allocation, emitted only if the replacement is placed (otherwise the
    /// old one keeps running, or stays failed and is retried).
    pub(crate) paired_stop: Option<StopDecision<'a>>,
    /// For system jobs: the node it must go to.
    pub(crate) target_node: Option<&'a Node>,
}

impl<'a> PlacementRequest<'a> {
    fn new(index: u32, kind: PlacementKind, previous: Option<&'a Allocation>) -> PlacementRequest<'a> {
        PlacementRequest { index, kind, previous, reschedule_delay: None, paired_stop: None, target_node: None }
    }
}

/// A failed allocation to replace after its delay, through a follow-up
/// evaluation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DelayedReschedule<'a> {
    pub(crate) alloc: &'a Allocation,
    pub(crate) at: Timestamp,
}

/// Everything the reconciler decided for one group.
#[derive(Debug, Default)]
pub(crate) struct GroupDecisions<'a> {
    pub(crate) stops: Vec<StopDecision<'a>>,
    pub(crate) in_place: Vec<&'a Allocation>,
    pub(crate) placements: Vec<PlacementRequest<'a>>,
    pub(crate) reschedule_later: Vec<DelayedReschedule<'a>>,
    pub(crate) changes: GroupChanges,
}

/// What the reconcilers read besides the group's allocations.
#[derive(Debug)]
pub(crate) struct ReconcileContext<'a, 'c, V: ?Sized> {
    pub(crate) view: &'a V,
    pub(crate) job: &'a Job,
    pub(crate) eval: &'c Evaluation,
    pub(crate) now: Timestamp,
    /// Allocations that already have a replacement.
    pub(crate) replaced: &'c FastSet<&'a AllocId>,
}

/// The state of an allocation's node, as far as its allocations care.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NodeCondition<'a> {
    /// Down, removed, or disconnected without a `disconnect` block that
    /// keeps allocations: its allocations are lost.
    Lost,
    /// Disconnected, and the group waits `lost_after` before declaring its
    /// allocations lost. They are left alone for now (see the crate docs on
    /// the `unknown` status).
    DisconnectedKept,
    /// Up (ready, initializing, ineligible or draining).
    Up(&'a Node),
}

/// Classifies the node an allocation of `group` runs on.
pub(crate) fn node_condition<'a, V: ClusterView + ?Sized>(
    view: &'a V,
    node_id: &NodeId,
    group: Option<&TaskGroup>,
) -> NodeCondition<'a> {
    let Some(node) = view.node(node_id) else {
        return NodeCondition::Lost;
    };
    match node.status {
        NodeStatus::Down => NodeCondition::Lost,
        NodeStatus::Disconnected => {
            let waits = group.and_then(|group| group.disconnect).is_some_and(|strategy| strategy.lost_after.is_some());
            if waits { NodeCondition::DisconnectedKept } else { NodeCondition::Lost }
        }
        NodeStatus::Ready | NodeStatus::Initializing => NodeCondition::Up(node),
    }
}

/// Allocations that already have a replacement: named by another
/// allocation's `previous_alloc`, or carrying a `next_alloc`.
pub(crate) fn replaced_allocs<'a>(job_allocs: &[&'a Allocation]) -> FastSet<&'a AllocId> {
    job_allocs.iter().filter_map(|alloc| alloc.previous_alloc.as_ref()).collect()
}

/// Whether `alloc` was replaced already.
pub(crate) fn is_replaced(alloc: &Allocation, replaced: &FastSet<&AllocId>) -> bool {
    alloc.next_alloc.is_some() || replaced.contains(&alloc.id)
}

/// Stops every live allocation in `allocs` (job stopped or purged, group
/// removed); allocations on down nodes are declared lost.
pub(crate) fn stop_all<'a, V: ClusterView + ?Sized>(
    view: &V,
    allocs: &[&'a Allocation],
    description: &'static str,
) -> GroupDecisions<'a> {
    let mut decisions = GroupDecisions::default();
    for alloc in allocs.iter().copied().filter(|alloc| is_live(alloc)) {
        if matches!(node_condition(view, &alloc.node_id, None), NodeCondition::Lost) {
            decisions.stops.push(StopDecision::lost(alloc));
            decisions.changes.lost += 1;
        } else {
            decisions.stops.push(StopDecision::stop(alloc, description));
            decisions.changes.stop += 1;
        }
    }
    decisions
}

/// The class of an allocation that occupies a name index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Running,
    Disconnected,
    InPlace,
    Destructive,
    Migrate,
    RescheduleRequested,
    RescheduleNow { delay: Duration },
    RescheduleLater { at: Timestamp },
    WaitingForFollowUp,
    Exhausted,
    Completed,
}

impl Slot {
    /// Lower ranks are stopped first when the group has too many.
    fn removal_rank(self) -> u8 {
        match self {
            Slot::RescheduleNow { .. } | Slot::RescheduleLater { .. } | Slot::WaitingForFollowUp | Slot::Exhausted => 0,
            Slot::Migrate | Slot::RescheduleRequested => 1,
            Slot::Destructive | Slot::Disconnected => 2,
            Slot::InPlace => 3,
            Slot::Running => 4,
            Slot::Completed => 5,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Occupant<'a> {
    alloc: &'a Allocation,
    slot: Slot,
}

/// Reconciles one service or batch group.
pub(crate) fn reconcile_group<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &'a TaskGroup,
    rules: &GroupRules,
    allocs: &[&'a Allocation],
    cache: &mut PatternCache,
) -> GroupDecisions<'a> {
    let job = context.job;
    debug_assert!(job.job_type != JobType::System, "system groups have their own reconciler");
    let mut decisions = GroupDecisions::default();
    let mut lost: Vec<&'a Allocation> = Vec::new();
    let mut occupants: Vec<Occupant<'a>> = Vec::new();
    for alloc in allocs.iter().copied() {
        if !is_live(alloc) {
            if let Some(slot) = terminal_slot(context, group, alloc) {
                occupants.push(Occupant { alloc, slot });
            }
            continue;
        }
        let node = match node_condition(context.view, &alloc.node_id, Some(group)) {
            NodeCondition::Lost => {
                lost.push(alloc);
                continue;
            }
            NodeCondition::DisconnectedKept => {
                occupants.push(Occupant { alloc, slot: Slot::Disconnected });
                continue;
            }
            NodeCondition::Up(node) => node,
        };
        let slot = if alloc.desired_transition.migrate {
            Slot::Migrate
        } else if alloc.desired_transition.reschedule {
            Slot::RescheduleRequested
        } else {
            match update_kind(context.view, job, group, rules, alloc, node, cache) {
                UpdateKind::Current => Slot::Running,
                UpdateKind::InPlace => Slot::InPlace,
                UpdateKind::Destructive => Slot::Destructive,
            }
        };
        occupants.push(Occupant { alloc, slot });
    }

    // Counts: completed batch allocations are fixed; the surplus of the
    // others is stopped.
    let num_desired = usize::try_from(group.count).unwrap_or(usize::MAX);
    let (completed, mut kept): (Vec<Occupant<'a>>, Vec<Occupant<'a>>) =
        occupants.into_iter().partition(|occupant| occupant.slot == Slot::Completed);
    let num_wanted_others = num_desired.saturating_sub(completed.len());
    if kept.len() > num_wanted_others {
        kept.sort_by(|first, second| {
            first
                .slot
                .removal_rank()
                .cmp(&second.slot.removal_rank())
                .then(second.alloc.index.cmp(&first.alloc.index))
                .then(first.alloc.id.cmp(&second.alloc.id))
        });
        let num_surplus = kept.len() - num_wanted_others;
        for surplus in kept.drain(..num_surplus) {
            decisions.stops.push(StopDecision::stop(surplus.alloc, reasons::ALLOC_NOT_NEEDED));
            decisions.changes.stop += 1;
        }
    }
    kept.sort_by(|first, second| first.alloc.index.cmp(&second.alloc.index).then(first.alloc.id.cmp(&second.alloc.id)));

    let mut indexes = NameIndexes::new(completed.iter().chain(kept.iter()).map(|occupant| occupant.alloc.index));
    let mut num_missing = num_desired.saturating_sub(completed.len() + kept.len());

    // Lost allocations are always declared lost; replaced while missing.
    lost.sort_by_key(|alloc| alloc.index);
    for lost_alloc in &lost {
        decisions.stops.push(StopDecision::lost(lost_alloc));
        decisions.changes.lost += 1;
    }
    for lost_alloc in lost.iter().copied().take(num_missing) {
        let index = indexes.claim_or_next(lost_alloc.index);
        decisions.placements.push(PlacementRequest::new(index, PlacementKind::LostReplacement, Some(lost_alloc)));
        decisions.changes.place += 1;
    }
    num_missing = num_missing.saturating_sub(lost.len());
    for _ in 0..num_missing {
        let index = indexes.next_free();
        decisions.placements.push(PlacementRequest::new(index, PlacementKind::New, None));
        decisions.changes.place += 1;
    }

    decisions.changes.ignore += u32::try_from(completed.len()).unwrap_or(u32::MAX);
    let num_in_flight =
        kept.iter().filter(|occupant| is_live(occupant.alloc) && is_in_flight(job, occupant.alloc)).count();
    let mut destructive: Vec<&'a Allocation> = Vec::new();
    for occupant in kept {
        let alloc = occupant.alloc;
        match occupant.slot {
            Slot::Running | Slot::Disconnected | Slot::WaitingForFollowUp | Slot::Exhausted | Slot::Completed => {
                decisions.changes.ignore += 1;
            }
            Slot::InPlace => {
                decisions.in_place.push(alloc);
                decisions.changes.in_place += 1;
            }
            Slot::Migrate => {
                decisions.stops.push(StopDecision::evict(alloc));
                decisions.placements.push(PlacementRequest::new(alloc.index, PlacementKind::Migration, Some(alloc)));
                decisions.changes.migrate += 1;
            }
            Slot::RescheduleRequested => {
                decisions.placements.push(PlacementRequest {
                    reschedule_delay: Some(Duration::ZERO),
                    paired_stop: Some(StopDecision::stop(alloc, reasons::ALLOC_RESCHEDULE_REQUESTED)),
                    ..PlacementRequest::new(alloc.index, PlacementKind::Reschedule, Some(alloc))
                });
                decisions.changes.reschedule_now += 1;
            }
            Slot::RescheduleNow { delay } => {
                // The failed allocation is stopped only if its replacement
                // is placed, so that a failed placement keeps the chain (and
                // its attempt count) for the next evaluation.
                let stop = StopDecision {
                    follow_up_eval: alloc.follow_up_eval.clone(),
                    ..StopDecision::stop(alloc, reasons::ALLOC_RESCHEDULED)
                };
                decisions.placements.push(PlacementRequest {
                    reschedule_delay: Some(delay),
                    paired_stop: Some(stop),
                    ..PlacementRequest::new(alloc.index, PlacementKind::Reschedule, Some(alloc))
                });
                decisions.changes.reschedule_now += 1;
            }
            Slot::RescheduleLater { at } => {
                decisions.reschedule_later.push(DelayedReschedule { alloc, at });
                decisions.changes.reschedule_later += 1;
            }
            Slot::Destructive => destructive.push(alloc),
        }
    }

    // Canaries would be placed here, before any destructive update, with a
    // limit of 0 until they are promoted.
    let num_other_placements =
        decisions.placements.iter().filter(|request| request.kind != PlacementKind::Migration).count();
    let limit = destructive_limit(job, group, num_in_flight, num_other_placements);
    let num_destructive_now = destructive.len().min(limit);
    for alloc in destructive.iter().copied().take(num_destructive_now) {
        decisions.placements.push(PlacementRequest {
            paired_stop: Some(StopDecision::stop(alloc, reasons::ALLOC_UPDATING)),
            ..PlacementRequest::new(alloc.index, PlacementKind::Destructive, Some(alloc))
        });
        decisions.changes.destructive += 1;
    }
    decisions.changes.ignore += u32::try_from(destructive.len() - num_destructive_now).unwrap_or(u32::MAX);
    decisions
}

/// The class of a terminal allocation that still matters, if any.
fn terminal_slot<V: ClusterView + ?Sized>(
    context: &ReconcileContext<'_, '_, V>,
    group: &TaskGroup,
    alloc: &Allocation,
) -> Option<Slot> {
    if context.job.job_type == JobType::Batch
        && alloc.client_status == AllocClientStatus::Complete
        && alloc.desired_status != AllocDesiredStatus::Evict
    {
        return Some(Slot::Completed);
    }
    // A failed allocation the servers stopped was replaced or is not wanted
    // any more (scale-down, job stop).
    if alloc.client_status != AllocClientStatus::Failed
        || alloc.desired_status != AllocDesiredStatus::Run
        || is_replaced(alloc, context.replaced)
    {
        return None;
    }
    let has_follow_up = alloc.follow_up_eval.is_some();
    match reschedule::eligibility(alloc, group.reschedule.as_ref()) {
        Eligibility::Exhausted => Some(Slot::Exhausted),
        Eligibility::Eligible { at, delay } => {
            let is_due = at <= context.now.plus(RESCHEDULE_NOW_WINDOW)
                || alloc.follow_up_eval.as_ref() == Some(&context.eval.id);
            if is_due {
                Some(Slot::RescheduleNow { delay })
            } else if has_follow_up {
                Some(Slot::WaitingForFollowUp)
            } else {
                Some(Slot::RescheduleLater { at })
            }
        }
    }
}

/// Whether an allocation of the current version is part of a rollout and
/// not healthy yet: it holds back further destructive updates.
pub(crate) fn is_in_flight(job: &Job, alloc: &Allocation) -> bool {
    alloc.job_version == job.version
        && alloc.deployment_status.as_ref().is_some_and(|status| status.healthy != Some(true))
}

/// How many destructive updates this plan may make: unlimited without an
/// `update` block, else `max_parallel` minus the allocations in flight
/// (among those the plan keeps) minus this plan's other placements.
pub(crate) fn destructive_limit(
    job: &Job,
    group: &TaskGroup,
    num_in_flight: usize,
    num_other_placements: usize,
) -> usize {
    let Some(update) = job.update_for(group).filter(|update| update.max_parallel > 0) else {
        return usize::MAX;
    };
    usize::try_from(update.max_parallel)
        .unwrap_or(usize::MAX)
        .saturating_sub(num_in_flight)
        .saturating_sub(num_other_placements)
}

/// The name indexes in use in a group, handing out the lowest free ones.
#[derive(Debug)]
struct NameIndexes {
    used: FastSet<u32>,
    /// No index below this one is free.
    lowest_candidate: u32,
}

impl NameIndexes {
    fn new(used: impl Iterator<Item = u32>) -> NameIndexes {
        NameIndexes { used: used.collect(), lowest_candidate: 0 }
    }

    /// `wanted` if it is free, else the lowest free index.
    fn claim_or_next(&mut self, wanted: u32) -> u32 {
        if self.used.insert(wanted) { wanted } else { self.next_free() }
    }

    fn next_free(&mut self) -> u32 {
        while self.used.contains(&self.lowest_candidate) {
            self.lowest_candidate += 1;
        }
        let index = self.lowest_candidate;
        self.used.insert(index);
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_indexes_are_handed_out_lowest_first() {
        let mut indexes = NameIndexes::new([0, 2, 5].into_iter());
        assert_eq!(indexes.next_free(), 1);
        assert_eq!(indexes.claim_or_next(2), 3);
        assert_eq!(indexes.claim_or_next(7), 7);
        assert_eq!(indexes.next_free(), 4);
        assert_eq!(indexes.next_free(), 6);
        assert_eq!(indexes.next_free(), 8);
    }
}
