//! Reconciliation of service and batch groups: what must change so that a
//! group has `count` allocations that want to run, given the allocations it
//! has and the state of its deployment (Nomad's reconciler).
//!
//! First, originals whose disconnected node came back are settled against
//! their replacements (see [Reconnects](#reconnects)). Then every other
//! allocation of the group lands in exactly one class (set-aside
//! allocations do not count):
//!
//! ```text
//!  unpromoted canary of the deployment ..... set aside: does not count, is not
//!  │                                          replaced when it fails; lost ones are
//!  │                                          stopped, migrating ones evicted
//!  live (wants to run, not terminal)         terminal
//!  ├─ node down / gone ........... lost      ├─ batch, complete ........... completed (counts, never re-run)
//!  ├─ node disconnected:                     ├─ failed, not replaced:
//!  │  ├─ no `lost_after`, or it   lost       │   ├─ its predecessor is back ........... stopped
//!  │  │  has passed                          │   ├─ due now (or its follow-up runs) .. reschedule now
//!  │  ├─ `replace` ............... unknown,  │   ├─ due later, no follow-up yet ...... reschedule later
//!  │  │                           set aside, │   ├─ due later, follow-up pending ..... waiting
//!  │  │                           replaced   │   └─ attempts used up ................. exhausted (counts)
//!  │  │                                      └─ anything else ..................... ignored
//!  │  └─ otherwise ............... unknown, kept
//!  ├─ migrate flag ............... migrate
//!  ├─ reschedule flag ............ replace
//!  └─ by job version:
//!     current / in-place / destructive
//! ```
//!
//! Then the counts: lost and set-aside allocations do not count; all others
//! occupy their name index. If more than `count` occupy indices, the surplus
//! is stopped — an allocation whose index another one holds first (an old
//! allocation next to a promoted canary of the same name), then failed,
//! migrating, destructive, in-place and running ones, highest index first
//! within a class. If fewer, lost allocations and those on disconnected
//! nodes are replaced (same index) and new ones fill the lowest free
//! indexes.
//!
//! Last, the rollout. While the group waits for its canaries to be
//! promoted, the missing canaries are placed (named after the allocations
//! they will replace) and nothing is replaced destructively; a deployment
//! that failed or was cancelled replaces nothing either. Otherwise
//! destructive replacements are limited by the `update` block's
//! `max_parallel`, minus the live allocations of the current version
//! (in-place updates included) that are not healthy yet and that the plan
//! does not stop, minus this plan's other placements: after the plan, at
//! most `max_parallel` allocations of the new version are not healthy.
//!
//! # Reconnects
//!
//! An allocation on a disconnected node that was replaced, and the
//! replacement, form a chain (`previous_alloc`); one name's slot is held by
//! one allocation of the chain at a time, and the others are set aside:
//!
//! - While the node is disconnected, the replacement holds the slot.
//! - When the node is up again, the original waits, set aside, until its
//!   agent reports it again (its client status is no longer `unknown`).
//!   Then it is compared with the first live allocation down its chain that
//!   runs on an up node, and one of the two is stopped per the group's
//!   `disconnect.reconcile`: `keep_original`, `keep_replacement`,
//!   `longest_running` (the earlier start of the running tasks wins; a tie
//!   keeps the replacement) or `best_score` (a replacement of a newer job
//!   version wins; otherwise the node scoring better now, as a placement
//!   would score it; a tie keeps the replacement, so that nothing flaps).
//!   An original that wins is compared with the next live allocation of its
//!   chain, if several of its nodes came back.
//! - An allocation of the chain whose predecessor is back (live, on an up
//!   node) is not replaced when it is lost or disconnected, and is stopped
//!   when it failed: the predecessor holds the slot. Missing instances are
//!   placed as new ones, outside the chain.
//! - A set-aside allocation follows the allocation holding its slot: when a
//!   scale-down stops the holder, it is stopped too.
//!
//! These rules make every decision a function of the chain as it stands,
//! so that planning again after a plan is committed changes nothing.

use std::time::Duration;

use drover_types::validate::limits::MAX_COUNT;
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, DeploymentId, EvalId, Evaluation, GroupChanges, Job,
    JobType, Node, NodeId, NodeStatus, ReconcileMode, TaskGroup, TaskLifecycleState, Timestamp,
};

use crate::constraint::PatternCache;
use crate::deployment::GroupRollout;
use crate::fast_hash::{FastMap, FastSet};
use crate::feasibility::{GroupRules, NodeVerdict};
use crate::ledger::is_live;
use crate::rank::{anti_affinity_score, binpack_score};
use crate::reasons;
use crate::reschedule::{self, Eligibility, RESCHEDULE_NOW_WINDOW};
use crate::update::{UpdateKind, update_kind};
use crate::view::ClusterView;

/// Two reconnect scores closer than this are a tie.
const SCORE_TOLERANCE: f64 = 1e-9;

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

    /// A stop because the node is gone: the server declares the allocation
    /// lost, for the reason in `description`.
    pub(crate) fn lost(alloc: &'a Allocation, description: &'static str) -> StopDecision<'a> {
        StopDecision { client_status: Some(AllocClientStatus::Lost), ..StopDecision::stop(alloc, description) }
    }
}

/// Why a new allocation is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlacementKind {
    /// A missing instance.
    New,
    /// Replaces an allocation lost with its node.
    LostReplacement,
    /// Replaces an allocation whose node is disconnected (it becomes
    /// `unknown` and may come back).
    DisconnectReplacement,
    /// Replaces a failed allocation (or one an operator asked to replace).
    Reschedule,
    /// Replaces an allocation leaving a draining node.
    Migration,
    /// Replaces an allocation of an older version whose tasks changed.
    Destructive,
    /// A canary of the new version, next to the old allocations.
    Canary,
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
    pub(crate) fn new(index: u32, kind: PlacementKind, previous: Option<&'a Allocation>) -> PlacementRequest<'a> {
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

/// A live allocation on a disconnected node whose client status becomes
/// `unknown`; it is declared lost at `lost_at` unless its node comes back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnknownTransition<'a> {
    pub(crate) alloc: &'a Allocation,
    pub(crate) lost_at: Timestamp,
}

/// What the group brings to its deployment, for the planner.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RolloutSummary {
    /// Canaries the group wants while it waits for promotion (for a
    /// deployment this plan starts: the strategy's `canary` when the group
    /// replaces older allocations, else 0).
    pub(crate) desired_canaries: u32,
    /// Allocations of an older version to replace destructively, whether
    /// this plan replaces them or holds them back.
    pub(crate) num_destructive: usize,
    /// Allocations the group keeps without replacing them: they never join
    /// a deployment this plan starts.
    pub(crate) num_staying: u32,
}

/// Everything the reconciler decided for one group.
#[derive(Debug, Default)]
pub(crate) struct GroupDecisions<'a> {
    pub(crate) stops: Vec<StopDecision<'a>>,
    pub(crate) in_place: Vec<&'a Allocation>,
    pub(crate) placements: Vec<PlacementRequest<'a>>,
    pub(crate) reschedule_later: Vec<DelayedReschedule<'a>>,
    pub(crate) unknown: Vec<UnknownTransition<'a>>,
    pub(crate) rollout: RolloutSummary,
    pub(crate) changes: GroupChanges,
}

/// What the reconcilers read besides the group's allocations.
#[derive(Debug)]
pub(crate) struct ReconcileContext<'a, 'c, V: ?Sized> {
    pub(crate) view: &'a V,
    pub(crate) job: &'a Job,
    pub(crate) eval: &'c Evaluation,
    pub(crate) now: Timestamp,
    /// The allocation that replaced each replaced allocation (by
    /// `previous_alloc`).
    pub(crate) replacements: &'c FastMap<&'a AllocId, &'a Allocation>,
}

/// The state of an allocation's node, as far as its allocations care.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NodeCondition<'a> {
    /// Down, removed, or disconnected without a `disconnect.lost_after` (or
    /// for longer): its allocations are lost, for this reason.
    Lost { description: &'static str },
    /// Disconnected, and the group waits until `lost_at` before declaring
    /// its allocations lost: they are `unknown` until then.
    Disconnected { lost_at: Timestamp },
    /// Up (ready, initializing, ineligible or draining).
    Up(&'a Node),
}

/// Classifies the node an allocation of `group` runs on at `now`.
///
/// `lost_after` counts from the node's `status_updated_at`, the time it
/// became disconnected.
pub(crate) fn node_condition<'a, V: ClusterView + ?Sized>(
    view: &'a V,
    node_id: &NodeId,
    group: Option<&TaskGroup>,
    now: Timestamp,
) -> NodeCondition<'a> {
    let Some(node) = view.node(node_id) else {
        return NodeCondition::Lost { description: reasons::ALLOC_LOST };
    };
    match node.status {
        NodeStatus::Down => NodeCondition::Lost { description: reasons::ALLOC_LOST },
        NodeStatus::Disconnected => {
            let lost_after = group.and_then(|group| group.disconnect).and_then(|strategy| strategy.lost_after);
            let Some(lost_after) = lost_after else {
                return NodeCondition::Lost { description: reasons::ALLOC_LOST_DISCONNECTED };
            };
            let lost_at = node.status_updated_at.plus(lost_after.get());
            if lost_at <= now {
                NodeCondition::Lost { description: reasons::ALLOC_LOST_AFTER_DISCONNECT }
            } else {
                NodeCondition::Disconnected { lost_at }
            }
        }
        NodeStatus::Ready | NodeStatus::Initializing => NodeCondition::Up(node),
    }
}

/// For every replaced allocation of the job, its replacement (the
/// allocation naming it in `previous_alloc`).
pub(crate) fn replacement_links<'a>(job_allocs: &[&'a Allocation]) -> FastMap<&'a AllocId, &'a Allocation> {
    job_allocs.iter().filter_map(|alloc| alloc.previous_alloc.as_ref().map(|previous| (previous, *alloc))).collect()
}

/// Whether `alloc` was replaced already.
pub(crate) fn is_replaced(alloc: &Allocation, replacements: &FastMap<&AllocId, &Allocation>) -> bool {
    alloc.next_alloc.is_some() || replacements.contains_key(&alloc.id)
}

/// Stops every live allocation in `allocs` (job stopped or purged, group
/// removed); allocations on down or disconnected nodes are declared lost.
pub(crate) fn stop_all<'a, V: ClusterView + ?Sized>(
    view: &V,
    allocs: &[&'a Allocation],
    description: &'static str,
    now: Timestamp,
) -> GroupDecisions<'a> {
    let mut decisions = GroupDecisions::default();
    for alloc in allocs.iter().copied().filter(|alloc| is_live(alloc)) {
        if let NodeCondition::Lost { description: lost_description } = node_condition(view, &alloc.node_id, None, now) {
            decisions.stops.push(StopDecision::lost(alloc, lost_description));
            decisions.changes.lost += 1;
        } else {
            decisions.stops.push(StopDecision::stop(alloc, description));
            decisions.changes.stop += 1;
        }
    }
    decisions
}

/// Records that a live allocation on a disconnected node becomes `unknown`
/// (once: an allocation already `unknown` needs nothing).
pub(crate) fn note_unknown<'a>(alloc: &'a Allocation, lost_at: Timestamp, decisions: &mut GroupDecisions<'a>) {
    if alloc.client_status != AllocClientStatus::Unknown {
        decisions.unknown.push(UnknownTransition { alloc, lost_at });
        decisions.changes.disconnect += 1;
    }
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

impl Occupant<'_> {
    /// Which of two occupants of one name index keeps it: the higher
    /// removal rank, then the newer version, then the newer allocation.
    fn precedence(&self) -> (u8, u64, Timestamp, &AllocId) {
        (self.slot.removal_rank(), self.alloc.job_version, self.alloc.create_time, &self.alloc.id)
    }
}

/// The unpromoted canaries of the group's deployment that still count.
#[derive(Debug, Default)]
struct CanaryTally {
    num_counted: usize,
    indexes: FastSet<u32>,
}

/// An allocation set aside (on a disconnected node, or back and not heard
/// from yet) while another one of its chain holds its name's slot.
#[derive(Clone, Copy, Debug)]
struct Attachment<'a> {
    alloc: &'a Allocation,
    holder: &'a AllocId,
}

/// The allocations the reconnect pass and the disconnect rules took out of
/// the count.
#[derive(Debug, Default)]
struct SetAside<'a> {
    /// Decided before the count: reconnect losers (stopped) and originals
    /// waiting for their agent (attached).
    settled: FastSet<&'a AllocId>,
    /// Allocations whose name's slot another one holds.
    attached: Vec<Attachment<'a>>,
}

/// Reconciles one service or batch group.
pub(crate) fn reconcile_group<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &'a TaskGroup,
    rules: &GroupRules,
    rollout: GroupRollout<'a>,
    allocs: &[&'a Allocation],
    cache: &mut PatternCache,
) -> GroupDecisions<'a> {
    let job = context.job;
    debug_assert!(!job.job_type.places_on_every_node(), "system groups have their own reconciler");
    let mut decisions = GroupDecisions::default();
    // Allocations decided already: reconnect losers and originals waiting
    // for their agent.
    let mut set_aside = SetAside::default();
    reconcile_reconnects(context, group, rules, allocs, cache, &mut decisions, &mut set_aside);

    let unpromoted = rollout.unpromoted_canaries();
    let mut canaries = CanaryTally::default();
    let mut lost: Vec<(&'a Allocation, &'static str)> = Vec::new();
    let mut disconnected: Vec<&'a Allocation> = Vec::new();
    let mut occupants: Vec<Occupant<'a>> = Vec::new();
    for alloc in allocs.iter().copied() {
        if set_aside.settled.contains(&alloc.id) {
            continue;
        }
        if let Some((deployment_id, _)) = unpromoted
            && is_canary_of(alloc, deployment_id)
        {
            classify_canary(context, group, alloc, &mut canaries, &mut decisions);
            continue;
        }
        if !is_live(alloc) {
            if is_failed_replacement_of_a_returned_original(context, group, alloc, allocs.len(), &set_aside.settled) {
                decisions.stops.push(StopDecision::stop(alloc, reasons::ALLOC_FAILED_ORIGINAL_BACK));
                decisions.changes.stop += 1;
                continue;
            }
            if let Some(slot) = terminal_slot(context, group, alloc) {
                occupants.push(Occupant { alloc, slot });
            }
            continue;
        }
        let node = match node_condition(context.view, &alloc.node_id, Some(group), context.now) {
            NodeCondition::Lost { description } => {
                lost.push((alloc, description));
                continue;
            }
            NodeCondition::Disconnected { lost_at } => {
                note_unknown(alloc, lost_at, &mut decisions);
                if group.disconnect.is_some_and(|strategy| strategy.replace) {
                    // Set aside: its replacement (placed now, or already),
                    // or the allocation it replaced that is back, holds the
                    // slot until the node comes back.
                    let holder = first_live_successor(context, alloc, allocs.len())
                        .or_else(|| holding_predecessor(context, group, alloc, allocs.len(), &set_aside.settled));
                    if let Some(holder) = holder {
                        set_aside.attached.push(Attachment { alloc, holder: &holder.id });
                    } else if is_replaced(alloc, context.replacements) {
                        // Its replacement failed and waits for its own.
                        decisions.changes.ignore += 1;
                    } else {
                        disconnected.push(alloc);
                    }
                } else {
                    occupants.push(Occupant { alloc, slot: Slot::Disconnected });
                }
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
    // Servers refuse a count above the limit (`Job::validate`); the cap here
    // keeps a job registered before that check (replayed at every start)
    // from making the leader allocate per instance without bound.
    let num_desired = usize::try_from(group.count.min(MAX_COUNT)).unwrap_or(usize::MAX);
    let (completed, mut kept): (Vec<Occupant<'a>>, Vec<Occupant<'a>>) =
        occupants.into_iter().partition(|occupant| occupant.slot == Slot::Completed);
    let num_wanted_others = num_desired.saturating_sub(completed.len());
    let mut surplus_ids: FastSet<&'a AllocId> = FastSet::default();
    if kept.len() > num_wanted_others {
        let shadowed = shadowed_occupants(&kept);
        kept.sort_by(|first, second| {
            let first_shadowed = shadowed.contains(&first.alloc.id);
            let second_shadowed = shadowed.contains(&second.alloc.id);
            second_shadowed
                .cmp(&first_shadowed)
                .then(first.slot.removal_rank().cmp(&second.slot.removal_rank()))
                .then(second.alloc.index.cmp(&first.alloc.index))
                .then(first.alloc.id.cmp(&second.alloc.id))
        });
        let num_surplus = kept.len() - num_wanted_others;
        for surplus in kept.drain(..num_surplus) {
            decisions.stops.push(StopDecision::stop(surplus.alloc, reasons::ALLOC_NOT_NEEDED));
            decisions.changes.stop += 1;
            surplus_ids.insert(&surplus.alloc.id);
        }
    }
    stop_with_their_holders(&set_aside.attached, &mut surplus_ids, &mut decisions);
    kept.sort_by(|first, second| first.alloc.index.cmp(&second.alloc.index).then(first.alloc.id.cmp(&second.alloc.id)));

    let occupied_indexes = completed.iter().chain(kept.iter()).map(|occupant| occupant.alloc.index);
    let mut indexes = NameIndexes::new(occupied_indexes.chain(canaries.indexes.iter().copied()));
    let mut num_missing = num_desired.saturating_sub(completed.len() + kept.len());

    // Lost allocations are always declared lost. They, and the allocations
    // set aside on disconnected nodes, are replaced while the group misses
    // some (unless replaced already, or their predecessor is back).
    lost.sort_by_key(|(alloc, _)| alloc.index);
    for (lost_alloc, description) in &lost {
        decisions.stops.push(StopDecision::lost(lost_alloc, description));
        decisions.changes.lost += 1;
    }
    let mut to_replace: Vec<(&'a Allocation, PlacementKind)> = lost
        .iter()
        .filter(|(alloc, _)| {
            !is_replaced(alloc, context.replacements)
                && holding_predecessor(context, group, alloc, allocs.len(), &set_aside.settled).is_none()
        })
        .map(|(alloc, _)| (*alloc, PlacementKind::LostReplacement))
        .chain(disconnected.iter().map(|alloc| (*alloc, PlacementKind::DisconnectReplacement)))
        .collect();
    to_replace.sort_by(|first, second| (first.0.index, &first.0.id).cmp(&(second.0.index, &second.0.id)));
    let num_replaced = to_replace.len().min(num_missing);
    for (replaced_alloc, kind) in to_replace.iter().copied().take(num_replaced) {
        let index = indexes.claim_or_next(replaced_alloc.index);
        decisions.placements.push(PlacementRequest::new(index, kind, Some(replaced_alloc)));
        decisions.changes.place += 1;
    }
    let num_unknown_left_alone =
        to_replace[num_replaced..].iter().filter(|(_, kind)| *kind == PlacementKind::DisconnectReplacement).count();
    decisions.changes.ignore += u32::try_from(num_unknown_left_alone).unwrap_or(u32::MAX);
    num_missing -= num_replaced;
    for _ in 0..num_missing {
        let index = indexes.next_free();
        decisions.placements.push(PlacementRequest::new(index, PlacementKind::New, None));
        decisions.changes.place += 1;
    }

    decisions.changes.ignore += u32::try_from(completed.len()).unwrap_or(u32::MAX);
    let num_staying = kept
        .iter()
        .filter(|occupant| match occupant.slot {
            Slot::Running | Slot::InPlace | Slot::Exhausted | Slot::Completed => true,
            Slot::Disconnected => occupant.alloc.job_version == job.version,
            _ => false,
        })
        .count();
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

    // The rollout: canaries first; destructive updates only once they are
    // promoted, and never for a halted deployment.
    let (desired_canaries, num_canaries_to_place) = match rollout {
        GroupRollout::Starting { canary } if canary > 0 && !destructive.is_empty() => {
            (canary, usize::try_from(canary).unwrap_or(usize::MAX))
        }
        GroupRollout::Deployed { .. } => match unpromoted {
            Some((_, desired)) if !rollout.is_halted() => {
                (desired, usize::try_from(desired).unwrap_or(usize::MAX).saturating_sub(canaries.num_counted))
            }
            Some((_, desired)) => (desired, 0),
            None => (0, 0),
        },
        GroupRollout::Starting { .. } | GroupRollout::Free => (0, 0),
    };
    let awaits_promotion = desired_canaries > 0;
    // A canary takes the name of an allocation it will replace (sorted by
    // index, so the lowest first), then a free one.
    let mut names_to_shadow: Vec<u32> =
        destructive.iter().map(|alloc| alloc.index).filter(|index| !canaries.indexes.contains(index)).collect();
    names_to_shadow.dedup();
    let mut canary_names = names_to_shadow.into_iter();
    for _ in 0..num_canaries_to_place {
        let index = canary_names.next().unwrap_or_else(|| indexes.next_free());
        decisions.placements.push(PlacementRequest::new(index, PlacementKind::Canary, None));
        decisions.changes.canary += 1;
    }

    let limit = if destructive.is_empty() || awaits_promotion || rollout.is_halted() {
        0
    } else {
        let num_in_flight = count_in_flight(job, allocs, &decisions.stops, &decisions.in_place);
        destructive_limit(job, group, num_in_flight, decisions.placements.len())
    };
    let num_destructive_now = destructive.len().min(limit);
    for alloc in destructive.iter().copied().take(num_destructive_now) {
        decisions.placements.push(PlacementRequest {
            paired_stop: Some(StopDecision::stop(alloc, reasons::ALLOC_UPDATING)),
            ..PlacementRequest::new(alloc.index, PlacementKind::Destructive, Some(alloc))
        });
        decisions.changes.destructive += 1;
    }
    decisions.changes.ignore += u32::try_from(destructive.len() - num_destructive_now).unwrap_or(u32::MAX);
    decisions.rollout = RolloutSummary {
        desired_canaries,
        num_destructive: destructive.len(),
        num_staying: u32::try_from(num_staying).unwrap_or(u32::MAX),
    };
    decisions
}

/// Whether `alloc` is a canary placed by the deployment `deployment_id`.
fn is_canary_of(alloc: &Allocation, deployment_id: &DeploymentId) -> bool {
    alloc.deployment_id.as_ref() == Some(deployment_id)
        && alloc.deployment_status.as_ref().is_some_and(|status| status.canary)
}

/// Classifies an unpromoted canary of the group's deployment. Canaries do
/// not occupy the group's count; those still wanted are tallied so that no
/// more than the deployment asked for are placed.
fn classify_canary<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &TaskGroup,
    alloc: &'a Allocation,
    canaries: &mut CanaryTally,
    decisions: &mut GroupDecisions<'a>,
) {
    if !is_live(alloc) {
        // A failed canary is not rescheduled while the group waits for
        // promotion: its health fails the deployment.
        if alloc.wants_to_run() {
            canaries.num_counted += 1;
            canaries.indexes.insert(alloc.index);
        }
        return;
    }
    match node_condition(context.view, &alloc.node_id, Some(group), context.now) {
        NodeCondition::Lost { description } => {
            decisions.stops.push(StopDecision::lost(alloc, description));
            decisions.changes.lost += 1;
        }
        NodeCondition::Disconnected { lost_at } => {
            note_unknown(alloc, lost_at, decisions);
            canaries.num_counted += 1;
            canaries.indexes.insert(alloc.index);
            decisions.changes.ignore += 1;
        }
        NodeCondition::Up(_) if alloc.desired_transition.migrate => {
            decisions.stops.push(StopDecision::evict(alloc));
            decisions.changes.migrate += 1;
        }
        NodeCondition::Up(_) if alloc.desired_transition.reschedule => {
            decisions.stops.push(StopDecision::stop(alloc, reasons::ALLOC_RESCHEDULE_REQUESTED));
            decisions.changes.stop += 1;
        }
        NodeCondition::Up(_) => {
            canaries.num_counted += 1;
            canaries.indexes.insert(alloc.index);
            decisions.changes.ignore += 1;
        }
    }
}

/// The occupants whose name index another occupant holds with precedence.
fn shadowed_occupants<'a>(occupants: &[Occupant<'a>]) -> FastSet<&'a AllocId> {
    let mut holder_by_index: FastMap<u32, Occupant<'a>> = FastMap::default();
    for occupant in occupants {
        let holder = holder_by_index.entry(occupant.alloc.index).or_insert(*occupant);
        if occupant.precedence() > holder.precedence() {
            *holder = *occupant;
        }
    }
    occupants
        .iter()
        .filter(|occupant| {
            holder_by_index.get(&occupant.alloc.index).is_some_and(|holder| holder.alloc.id != occupant.alloc.id)
        })
        .map(|occupant| &occupant.alloc.id)
        .collect()
}

/// Live allocations of the current version (after this plan's in-place
/// updates) that are not healthy yet and that this plan does not stop.
fn count_in_flight(job: &Job, allocs: &[&Allocation], stops: &[StopDecision<'_>], in_place: &[&Allocation]) -> usize {
    let stopped: FastSet<&AllocId> = stops.iter().map(|stop| &stop.alloc.id).collect();
    let moved: FastSet<&AllocId> = in_place.iter().map(|alloc| &alloc.id).collect();
    allocs
        .iter()
        .filter(|alloc| is_live(alloc) && !stopped.contains(&alloc.id))
        .filter(|alloc| is_in_flight(job, alloc) || (moved.contains(&alloc.id) && is_unhealthy(alloc)))
        .count()
}

/// Settles originals that run again next to their replacement after their
/// node came back (see the module docs); the loser is stopped.
fn reconcile_reconnects<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &TaskGroup,
    rules: &GroupRules,
    allocs: &[&'a Allocation],
    cache: &mut PatternCache,
    decisions: &mut GroupDecisions<'a>,
    set_aside: &mut SetAside<'a>,
) {
    for original in allocs.iter().copied() {
        if !is_live(original)
            || !is_replaced(original, context.replacements)
            || set_aside.settled.contains(&original.id)
        {
            continue;
        }
        let NodeCondition::Up(original_node) =
            node_condition(context.view, &original.node_id, Some(group), context.now)
        else {
            continue;
        };
        // An original that wins is compared with the next live allocation
        // of its chain, if any (several nodes of the chain came back).
        while let Some((replacement, replacement_node)) =
            live_successor(context, group, original, allocs.len(), &set_aside.settled)
        {
            if original.client_status == AllocClientStatus::Unknown {
                // Its agent has not reported since the node came back: the
                // replacement holds the slot meanwhile.
                set_aside.settled.insert(&original.id);
                set_aside.attached.push(Attachment { alloc: original, holder: &replacement.id });
                break;
            }
            let pair = ReconnectPair { original, original_node, replacement, replacement_node };
            let keeps = keeps_original(context, group, rules, allocs, &pair, cache);
            let (loser, description) = if keeps {
                (replacement, reasons::ALLOC_RECONNECT_KEPT_ORIGINAL)
            } else {
                (original, reasons::ALLOC_RECONNECT_KEPT_REPLACEMENT)
            };
            decisions.stops.push(StopDecision::stop(loser, description));
            decisions.changes.reconnect += 1;
            set_aside.settled.insert(&loser.id);
            if !keeps {
                break;
            }
        }
    }
}

/// An allocation that came back with its node, and its live replacement.
#[derive(Clone, Copy, Debug)]
struct ReconnectPair<'a> {
    original: &'a Allocation,
    original_node: &'a Node,
    replacement: &'a Allocation,
    replacement_node: &'a Node,
}

/// The first allocation down `original`'s chain of replacements that is
/// live, not settled, and on an up node (a chain is at most `max_length`
/// long: the group's allocations).
fn live_successor<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &TaskGroup,
    original: &'a Allocation,
    max_length: usize,
    settled: &FastSet<&'a AllocId>,
) -> Option<(&'a Allocation, &'a Node)> {
    let mut current = original;
    for _ in 0..max_length {
        let next = replacement_of(context, current)?;
        if is_live(next)
            && !settled.contains(&next.id)
            && let NodeCondition::Up(node) = node_condition(context.view, &next.node_id, Some(group), context.now)
        {
            return Some((next, node));
        }
        current = next;
    }
    None
}

/// The live predecessor on an up node, not stopped by a reconnect, of an
/// allocation that replaced another (after a disconnect), if any: it holds
/// the name's slot, so the allocation needs no replacement of its own (the
/// group's missing instances, if any, are placed as new ones, which keeps
/// the chain from flipping between plans).
fn holding_predecessor<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &TaskGroup,
    alloc: &'a Allocation,
    max_length: usize,
    settled: &FastSet<&AllocId>,
) -> Option<&'a Allocation> {
    let mut current = alloc;
    for _ in 0..max_length {
        let previous = current.previous_alloc.as_ref().and_then(|id| context.view.alloc(id))?;
        let holds = is_live(previous)
            && !settled.contains(&previous.id)
            && matches!(
                node_condition(context.view, &previous.node_id, Some(group), context.now),
                NodeCondition::Up(_)
            );
        if holds {
            return Some(previous);
        }
        current = previous;
    }
    None
}

/// The first live allocation down `alloc`'s chain of replacements, wherever
/// it runs.
fn first_live_successor<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    alloc: &'a Allocation,
    max_length: usize,
) -> Option<&'a Allocation> {
    let mut current = alloc;
    for _ in 0..max_length {
        let next = replacement_of(context, current)?;
        if is_live(next) {
            return Some(next);
        }
        current = next;
    }
    None
}

/// The allocation that replaced `alloc`, if any.
fn replacement_of<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    alloc: &Allocation,
) -> Option<&'a Allocation> {
    context
        .replacements
        .get(&alloc.id)
        .copied()
        .or_else(|| alloc.next_alloc.as_ref().and_then(|id| context.view.alloc(id)))
}

/// A set-aside allocation follows the allocation holding its name's slot:
/// when that one is stopped as surplus (the group shrank), so is it (with
/// the holders stopped this way, transitively); otherwise it is left alone.
fn stop_with_their_holders<'a>(
    attached: &[Attachment<'a>],
    stopped: &mut FastSet<&'a AllocId>,
    decisions: &mut GroupDecisions<'a>,
) {
    let mut num_followed = 0;
    loop {
        let newly_stopped: Vec<&Attachment<'a>> = attached
            .iter()
            .filter(|attachment| !stopped.contains(&attachment.alloc.id) && stopped.contains(attachment.holder))
            .collect();
        if newly_stopped.is_empty() {
            break;
        }
        for attachment in newly_stopped {
            decisions.stops.push(StopDecision::stop(attachment.alloc, reasons::ALLOC_NOT_NEEDED));
            decisions.changes.stop += 1;
            stopped.insert(&attachment.alloc.id);
            num_followed += 1;
        }
    }
    let num_left_alone = attached.len() - num_followed;
    decisions.changes.ignore += u32::try_from(num_left_alone).unwrap_or(u32::MAX);
}

/// Whether `disconnect.reconcile` keeps the original of a reconnect pair.
fn keeps_original<V: ClusterView + ?Sized>(
    context: &ReconcileContext<'_, '_, V>,
    group: &TaskGroup,
    rules: &GroupRules,
    allocs: &[&Allocation],
    pair: &ReconnectPair<'_>,
    cache: &mut PatternCache,
) -> bool {
    let mode = group.disconnect.map_or(ReconcileMode::BestScore, |strategy| strategy.reconcile);
    match mode {
        ReconcileMode::KeepOriginal => true,
        ReconcileMode::KeepReplacement => false,
        ReconcileMode::LongestRunning => match (last_task_start(pair.original), last_task_start(pair.replacement)) {
            (Some(original_start), Some(replacement_start)) => original_start < replacement_start,
            (Some(_), None) => true,
            (None, _) => false,
        },
        ReconcileMode::BestScore => {
            if pair.replacement.job_version > pair.original.job_version {
                return false;
            }
            let original_score = reconnect_score(context.view, rules, pair.original_node, allocs, cache);
            let replacement_score = reconnect_score(context.view, rules, pair.replacement_node, allocs, cache);
            original_score > replacement_score + SCORE_TOLERANCE
        }
    }
}

/// When the latest of an allocation's running tasks started; `None` when
/// none runs.
fn last_task_start(alloc: &Allocation) -> Option<Timestamp> {
    alloc
        .task_states
        .values()
        .filter(|state| state.state == TaskLifecycleState::Running)
        .filter_map(|state| state.started_at)
        .max()
}

/// How a node scores now for an allocation of the group that runs there:
/// the average of bin-packing (its usage, which includes the allocation),
/// anti-affinity (the group's other allocations there) and affinities, as a
/// placement is scored (spreads are left out: both allocations count in
/// them). A node the group's constraints reject scores lowest.
fn reconnect_score<V: ClusterView + ?Sized>(
    view: &V,
    rules: &GroupRules,
    node: &Node,
    allocs: &[&Allocation],
    cache: &mut PatternCache,
) -> f64 {
    if rules.check_static(node, cache) != NodeVerdict::Feasible {
        return f64::NEG_INFINITY;
    }
    let num_on_node = allocs.iter().filter(|alloc| is_live(alloc) && alloc.node_id == node.id).count();
    let num_neighbours = u32::try_from(num_on_node.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut sum = binpack_score(&node.resources, &view.node_usage(&node.id)) + anti_affinity_score(num_neighbours);
    let mut num_components = 2.0;
    if rules.has_affinities() {
        sum += rules.affinity_score(node, cache);
        num_components += 1.0;
    }
    sum / num_components
}

/// Whether `alloc` failed, is wanted, has no replacement, and replaced an
/// allocation that is back with its node (it holds the name's slot): it
/// will never be needed again.
fn is_failed_replacement_of_a_returned_original<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &TaskGroup,
    alloc: &'a Allocation,
    max_length: usize,
    settled: &FastSet<&AllocId>,
) -> bool {
    alloc.client_status == AllocClientStatus::Failed
        && alloc.desired_status == AllocDesiredStatus::Run
        && alloc.previous_alloc.is_some()
        && !is_replaced(alloc, context.replacements)
        && holding_predecessor(context, group, alloc, max_length, settled).is_some()
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
        || is_replaced(alloc, context.replacements)
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
    alloc.job_version == job.version && is_unhealthy(alloc)
}

/// Whether an allocation placed by a rollout is not healthy yet (its
/// health is undecided, or it proved unhealthy).
pub(crate) fn is_unhealthy(alloc: &Allocation) -> bool {
    alloc.deployment_status.as_ref().is_some_and(|status| status.healthy != Some(true))
}

/// How many destructive updates this plan may make: unlimited without an
/// `update` block, else `max_parallel` minus the allocations in flight
/// minus this plan's other placements (all of them new allocations of the
/// current version that are not healthy yet).
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
