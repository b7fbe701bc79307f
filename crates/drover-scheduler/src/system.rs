//! Reconciliation of system groups: one allocation on every feasible node.
//!
//! Per node, for the group's live allocations there:
//!
//! ```text
//!  node down / gone .................. declared lost, not replaced elsewhere
//!  node disconnected, group waits
//!  `disconnect.lost_after` ........... `unknown` until then (stopped if the
//!                                      node no longer matches, or a second
//!                                      one), then lost
//!  node disconnected otherwise ........ lost
//!  migrate flag (drain) .............. evicted, not replaced (the node drains)
//!  zone or constraints no longer match  stopped
//!  a second one on the node .......... stopped
//!  older job version ................. in place, or destructive (same node,
//!                                      once it is schedulable again)
//!  otherwise ......................... left alone
//! ```
//!
//! A node that is schedulable, matches the group and keeps no allocation of
//! it gets a new one (`job.group[0]`), linked to the last terminal
//! allocation there. A sysbatch group runs once per node and job version:
//! a node where an allocation of the current version ran to its end
//! (complete or failed, not stopped by the servers) gets no new one. Ineligible and draining nodes keep what they run but
//! get nothing new: only placement looks at readiness.
//!
//! System jobs have no deployments: destructive updates roll under the
//! `update` block's `max_parallel`, counting the allocations of the current
//! version that are not healthy yet.

use std::collections::{HashMap, HashSet};

use drover_types::{AllocClientStatus, AllocDesiredStatus, Allocation, Node, NodeId, PlacementFailure, TaskGroup};

use crate::constraint::PatternCache;
use crate::feasibility::{GroupRules, NodeVerdict};
use crate::ledger::is_live;
use crate::reasons;
use crate::reconcile::{
    GroupDecisions, NodeCondition, PlacementKind, PlacementRequest, ReconcileContext, StopDecision, destructive_limit,
    is_in_flight, is_replaced, is_unhealthy, node_condition, note_unknown,
};
use crate::update::{UpdateKind, update_kind};
use crate::view::ClusterView;

/// Reconciles one system group over `nodes`, counting every node's
/// placement verdict in `metrics`.
pub(crate) fn reconcile_system_group<'a, V: ClusterView + ?Sized>(
    context: &ReconcileContext<'a, '_, V>,
    group: &'a TaskGroup,
    rules: &GroupRules,
    allocs: &[&'a Allocation],
    nodes: &[&'a Node],
    cache: &mut PatternCache,
    metrics: &mut PlacementFailure,
) -> GroupDecisions<'a> {
    let mut decisions = GroupDecisions::default();
    let mut live_by_node: HashMap<&'a NodeId, Vec<&'a Allocation>> = HashMap::new();
    let mut last_terminal_by_node: HashMap<&'a NodeId, &'a Allocation> = HashMap::new();
    let mut ran_on: HashSet<&'a NodeId> = HashSet::new();
    let runs_once = context.job.job_type.runs_to_completion();
    for alloc in allocs.iter().copied() {
        if runs_once && ran_to_its_end(alloc, context.job.version) {
            ran_on.insert(&alloc.node_id);
        }
        if is_live(alloc) {
            live_by_node.entry(&alloc.node_id).or_default().push(alloc);
        } else if !is_replaced(alloc, context.replacements) {
            let newest = last_terminal_by_node.entry(&alloc.node_id).or_insert(alloc);
            if (alloc.create_time, &alloc.id) > (newest.create_time, &newest.id) {
                *newest = alloc;
            }
        }
    }

    let mut destructive: Vec<(&'a Allocation, &'a Node)> = Vec::new();
    // Allocations of the current version the plan keeps that are not
    // healthy yet.
    let mut num_in_flight = 0;
    for node in nodes.iter().copied() {
        let static_verdict = rules.check_static(node, cache);
        let placement_verdict = if node.is_schedulable() { static_verdict } else { NodeVerdict::NotReady };
        rules.record(placement_verdict, metrics);
        let mut node_allocs = live_by_node.remove(&node.id).unwrap_or_default();
        node_allocs.sort_by(|first, second| {
            (second.job_version, second.create_time, &second.id).cmp(&(first.job_version, first.create_time, &first.id))
        });
        let condition = node_condition(context.view, &node.id, Some(group), context.now);
        let mut keeps_one = false;
        for alloc in node_allocs {
            if let NodeCondition::Lost { description } = condition {
                decisions.stops.push(StopDecision::lost(alloc, description));
                decisions.changes.lost += 1;
                continue;
            }
            // The servers' wishes hold for a disconnected node too: its agent
            // acts on them when it reconnects.
            let is_disconnected = matches!(condition, NodeCondition::Disconnected { .. });
            if alloc.desired_transition.migrate && !is_disconnected {
                decisions.stops.push(StopDecision::evict(alloc));
                decisions.changes.migrate += 1;
                continue;
            }
            if static_verdict != NodeVerdict::Feasible {
                decisions.stops.push(StopDecision::stop(alloc, reasons::NODE_NOT_FEASIBLE));
                decisions.changes.stop += 1;
                continue;
            }
            if keeps_one {
                decisions.stops.push(StopDecision::stop(alloc, reasons::ALLOC_NOT_NEEDED));
                decisions.changes.stop += 1;
                continue;
            }
            keeps_one = true;
            if let NodeCondition::Disconnected { lost_at } = condition {
                note_unknown(alloc, lost_at, &mut decisions);
                num_in_flight += usize::from(is_in_flight(context.job, alloc));
                decisions.changes.ignore += 1;
                continue;
            }
            match update_kind(context.view, context.job, group, rules, alloc, node, cache) {
                UpdateKind::Current => {
                    num_in_flight += usize::from(is_in_flight(context.job, alloc));
                    decisions.changes.ignore += 1;
                }
                UpdateKind::InPlace => {
                    // Of the current version once the plan is applied.
                    num_in_flight += usize::from(is_unhealthy(alloc));
                    decisions.in_place.push(alloc);
                    decisions.changes.in_place += 1;
                }
                // The replacement would go to the same node, which takes no
                // new work while ineligible or draining: wait.
                UpdateKind::Destructive if node.is_schedulable() => destructive.push((alloc, node)),
                UpdateKind::Destructive => decisions.changes.ignore += 1,
            }
        }
        if !keeps_one && ran_on.contains(&node.id) {
            decisions.changes.ignore += 1;
            continue;
        }
        let wants_new = !keeps_one && placement_verdict == NodeVerdict::Feasible;
        if wants_new {
            let previous = last_terminal_by_node.get(&node.id).copied();
            decisions.placements.push(PlacementRequest {
                target_node: Some(node),
                ..PlacementRequest::new(0, PlacementKind::New, previous)
            });
            decisions.changes.place += 1;
        }
    }

    // Allocations on nodes that no longer exist are lost.
    let mut orphans: Vec<&'a Allocation> = live_by_node.into_values().flatten().collect();
    orphans.sort_by(|first, second| first.id.cmp(&second.id));
    for alloc in orphans {
        decisions.stops.push(StopDecision::lost(alloc, reasons::ALLOC_LOST));
        decisions.changes.lost += 1;
    }

    let limit = destructive_limit(context.job, group, num_in_flight, decisions.placements.len());
    let num_destructive_now = destructive.len().min(limit);
    for (alloc, node) in destructive.iter().copied().take(num_destructive_now) {
        decisions.placements.push(PlacementRequest {
            paired_stop: Some(StopDecision::stop(alloc, reasons::ALLOC_UPDATING)),
            target_node: Some(node),
            ..PlacementRequest::new(alloc.index, PlacementKind::Destructive, Some(alloc))
        });
        decisions.changes.destructive += 1;
    }
    decisions.changes.ignore += u32::try_from(destructive.len() - num_destructive_now).unwrap_or(u32::MAX);
    decisions
}

/// Whether `alloc`, of a sysbatch job now at `job_version`, ran to its end
/// and is not to run again on its node.
fn ran_to_its_end(alloc: &Allocation, job_version: u64) -> bool {
    alloc.job_version == job_version
        && alloc.desired_status == AllocDesiredStatus::Run
        && matches!(alloc.client_status, AllocClientStatus::Complete | AllocClientStatus::Failed)
}
