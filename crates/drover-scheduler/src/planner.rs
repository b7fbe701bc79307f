//! Building the plan: runs the reconciler of the job's type, turns its
//! decisions into plan entries, and places the new allocations.
//!
//! Order matters for resources: unconditional stops are recorded first, so
//! that the resources they free are available to this plan's placements;
//! the stop paired with a replacement (destructive update, reschedule) is
//! recorded just before the replacement is placed, and taken back if no
//! node has room (the old allocation then keeps running, or stays failed
//! and is retried by the next evaluation).

use std::collections::BTreeMap;
use std::mem;

use drover_types::{
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, AllocId, Allocation, DesiredTransition, DurationSpec,
    EvalId, EvalTrigger, Evaluation, GroupChanges, InPlaceUpdate, Job, JobType, Node, PlacementFailure, Plan, PlanStop,
    RescheduleEvent, TaskGroup, Timestamp,
};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::constraint::PatternCache;
use crate::fast_hash::FastSet;
use crate::feasibility::{DISTINCT_HOSTS_LABEL, GroupRules};
use crate::ids::random_uuid;
use crate::ledger::{Ledger, is_live};
use crate::reasons;
use crate::reconcile::{
    DelayedReschedule, GroupDecisions, PlacementKind, PlacementRequest, ReconcileContext, StopDecision,
    reconcile_group, replaced_allocs, stop_all,
};
use crate::reschedule::FOLLOW_UP_BATCH_WINDOW;
use crate::select::{GroupStack, PlacementOptions};
use crate::system::reconcile_system_group;
use crate::view::ClusterView;

/// Computes the plan for one evaluation of one job.
///
/// `job` is the job's current version, or `None` when it was purged (every
/// live allocation is then stopped). `now` stamps new allocations and
/// decides which delayed reschedules are due; `rng` chooses allocation and
/// evaluation ids and the order in which nodes are visited, so a seeded
/// generator gives a reproducible plan.
///
/// The plan is complete (ids, names, resources, reasons) and is meant to
/// be checked with [`verify_plan`](crate::verify_plan) against the latest
/// state before it is committed. Never panics (debug builds assert that
/// `job` is the evaluation's job).
pub fn schedule<V, R>(view: &V, job: Option<&Job>, eval: &Evaluation, now: Timestamp, rng: &mut R) -> Plan
where
    V: ClusterView + ?Sized,
    R: Rng + ?Sized,
{
    debug_assert!(job.is_none_or(|job| job.id == eval.job_id), "the evaluation is for this job");
    let job_id = job.map_or(&eval.job_id, |job| &job.id);
    let mut plan = Plan {
        eval_id: eval.id.clone(),
        job_id: job_id.clone(),
        job_modify_index: job.map_or(0, |job| job.job_modify_index),
        ..Plan::default()
    };
    let job_allocs = view.allocs_for_job(job_id);
    match job {
        None => stop_everything(view, &job_allocs, reasons::JOB_PURGED, &mut plan),
        Some(job) if job.stop => stop_everything(view, &job_allocs, reasons::JOB_STOPPED, &mut plan),
        // A periodic parent only launches children; it never runs itself.
        Some(job) if job.is_periodic() => {}
        Some(job) => {
            let mut builder = PlanBuilder::new(view, job, eval, now, job_allocs, plan);
            match job.job_type {
                JobType::System => builder.schedule_system(rng),
                JobType::Service | JobType::Batch => builder.schedule_generic(rng),
            }
            plan = builder.plan;
        }
    }
    plan
}

/// Stops every live allocation of a stopped or purged job.
fn stop_everything<V: ClusterView + ?Sized>(
    view: &V,
    job_allocs: &[&Allocation],
    description: &'static str,
    plan: &mut Plan,
) {
    for (group_name, allocs) in allocs_by_group(job_allocs) {
        let decisions = stop_all(view, &allocs, description);
        plan.stop.extend(decisions.stops.into_iter().map(plan_stop));
        plan.annotations.insert(group_name.to_owned(), decisions.changes);
    }
}

/// The job's allocations per group name, in a stable order.
fn allocs_by_group<'a>(job_allocs: &[&'a Allocation]) -> BTreeMap<&'a str, Vec<&'a Allocation>> {
    let mut by_group: BTreeMap<&'a str, Vec<&'a Allocation>> = BTreeMap::new();
    for alloc in job_allocs {
        by_group.entry(alloc.group.as_str()).or_default().push(alloc);
    }
    by_group
}

fn plan_stop(decision: StopDecision<'_>) -> PlanStop {
    PlanStop {
        alloc_id: decision.alloc.id.clone(),
        node_id: decision.alloc.node_id.clone(),
        desired_status: decision.desired_status,
        description: decision.description.to_owned(),
        client_status: decision.client_status,
        follow_up_eval: decision.follow_up_eval,
    }
}

/// A replacement that found no node leaves the old allocation as it is:
/// the annotations count it as left alone. (New instances stay counted as
/// placements; `failed` says how many could not be made.)
fn count_unplaced_replacement(changes: &mut GroupChanges, kind: PlacementKind) {
    match kind {
        PlacementKind::Destructive => {
            changes.destructive = changes.destructive.saturating_sub(1);
            changes.ignore += 1;
        }
        PlacementKind::Reschedule => {
            changes.reschedule_now = changes.reschedule_now.saturating_sub(1);
            changes.ignore += 1;
        }
        PlacementKind::New | PlacementKind::LostReplacement | PlacementKind::Migration => {}
    }
}

/// One group's reconciliation, waiting for its placements.
struct PendingGroup<'a> {
    group: &'a TaskGroup,
    rules: GroupRules,
    allocs: Vec<&'a Allocation>,
    decisions: GroupDecisions<'a>,
}

/// The plan under construction, with the ledger of its effects.
struct PlanBuilder<'a, V: ?Sized> {
    view: &'a V,
    job: &'a Job,
    eval: &'a Evaluation,
    now: Timestamp,
    job_allocs: Vec<&'a Allocation>,
    ledger: Ledger<'a>,
    stopped: FastSet<&'a AllocId>,
    patterns: PatternCache,
    plan: Plan,
}

impl<'a, V: ClusterView + ?Sized> PlanBuilder<'a, V> {
    fn new(
        view: &'a V,
        job: &'a Job,
        eval: &'a Evaluation,
        now: Timestamp,
        job_allocs: Vec<&'a Allocation>,
        plan: Plan,
    ) -> PlanBuilder<'a, V> {
        PlanBuilder {
            view,
            job,
            eval,
            now,
            ledger: Ledger::new(&job_allocs),
            job_allocs,
            stopped: FastSet::default(),
            patterns: PatternCache::default(),
            plan,
        }
    }

    /// Service and batch jobs: reconcile every group, then place through
    /// each group's stack.
    fn schedule_generic<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let job = self.job;
        let replaced = replaced_allocs(&self.job_allocs);
        let mut by_group = allocs_by_group(&self.job_allocs);
        let mut pending: Vec<PendingGroup<'a>> = Vec::with_capacity(job.groups.len());
        {
            let context =
                ReconcileContext { view: self.view, job, eval: self.eval, now: self.now, replaced: &replaced };
            for group in &job.groups {
                let allocs = by_group.remove(group.name.as_str()).unwrap_or_default();
                let rules = GroupRules::new(job, group);
                let decisions = reconcile_group(&context, group, &rules, &allocs, &mut self.patterns);
                pending.push(PendingGroup { group, rules, allocs, decisions });
            }
        }
        self.stop_removed_groups(by_group);

        let mut delayed: Vec<DelayedReschedule<'a>> = Vec::new();
        for entry in &mut pending {
            for stop in mem::take(&mut entry.decisions.stops) {
                self.emit_stop(stop);
            }
            for alloc in mem::take(&mut entry.decisions.in_place) {
                self.emit_in_place(alloc);
            }
            delayed.append(&mut entry.decisions.reschedule_later);
        }
        self.emit_delayed_reschedules(delayed, rng);

        let needs_nodes = pending.iter().any(|entry| !entry.decisions.placements.is_empty());
        let mut nodes: Vec<&'a Node> = if needs_nodes { self.view.nodes().collect() } else { Vec::new() };
        nodes.shuffle(rng);
        let num_ready_nodes = nodes.iter().filter(|node| node.is_schedulable()).count();
        for entry in pending {
            let PendingGroup { group, rules, allocs, decisions } = entry;
            let mut changes = decisions.changes;
            if !decisions.placements.is_empty() {
                let mut stack = GroupStack::new(rules, job, group, nodes.len(), num_ready_nodes, rng);
                if stack.has_spreads() {
                    for alloc in allocs.iter().filter(|alloc| is_live(alloc) && !self.stopped.contains(&alloc.id)) {
                        if let Some(node) = self.view.node(&alloc.node_id) {
                            stack.count_existing(node);
                        }
                    }
                }
                for request in decisions.placements {
                    let kind = request.kind;
                    let was_placed = self.place_with_stack(&mut stack, &nodes, group, request, rng);
                    if !was_placed {
                        count_unplaced_replacement(&mut changes, kind);
                    }
                }
                if let Some(failure) = stack.into_failure() {
                    self.plan.failed.insert(group.name.clone(), failure);
                }
            }
            self.plan.annotations.insert(group.name.clone(), changes);
        }
    }

    /// Places one allocation through the group's stack; returns whether it
    /// found a node.
    fn place_with_stack<R: Rng + ?Sized>(
        &mut self,
        stack: &mut GroupStack<'a>,
        nodes: &[&'a Node],
        group: &'a TaskGroup,
        request: PlacementRequest<'a>,
        rng: &mut R,
    ) -> bool {
        // Spreads count live allocations only; a failed one was never counted.
        let old_live_node = request
            .paired_stop
            .as_ref()
            .filter(|stop| is_live(stop.alloc))
            .and_then(|stop| self.view.node(&stop.alloc.node_id));
        if let Some(stop) = &request.paired_stop {
            self.ledger.record_stop(stop.alloc);
            if let Some(node) = old_live_node {
                stack.forget_existing(node);
            }
        }
        let avoid_node = match request.kind {
            PlacementKind::Reschedule => request.previous.map(|previous| &previous.node_id),
            _ => None,
        };
        let has_own_credit = request.paired_stop.as_ref().is_some_and(|stop| stop.alloc.holds_resources());
        let options = PlacementOptions { avoid_node, has_own_credit };
        let chosen = stack.select(nodes, self.view, &self.ledger, &mut self.patterns, options);
        match chosen {
            Some(node) => {
                if let Some(stop) = request.paired_stop.clone() {
                    self.stopped.insert(&stop.alloc.id);
                    self.plan.stop.push(plan_stop(stop));
                }
                self.emit_placement(group, &request, node, rng);
                true
            }
            None => {
                if let Some(stop) = &request.paired_stop {
                    self.ledger.undo_stop(stop.alloc);
                    if let Some(node) = old_live_node {
                        stack.count_existing(node);
                    }
                }
                false
            }
        }
    }

    /// System jobs: reconcile every group node by node, then place on the
    /// chosen nodes directly.
    fn schedule_system<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let job = self.job;
        let replaced = replaced_allocs(&self.job_allocs);
        let mut by_group = allocs_by_group(&self.job_allocs);
        let nodes: Vec<&'a Node> = self.view.nodes().collect();
        for group in &job.groups {
            let allocs = by_group.remove(group.name.as_str()).unwrap_or_default();
            let rules = GroupRules::new(job, group);
            let mut metrics = PlacementFailure::default();
            let decisions = {
                let context =
                    ReconcileContext { view: self.view, job, eval: self.eval, now: self.now, replaced: &replaced };
                reconcile_system_group(&context, group, &rules, &allocs, &nodes, &mut self.patterns, &mut metrics)
            };
            let GroupDecisions { stops, in_place, placements, reschedule_later, mut changes } = decisions;
            debug_assert!(reschedule_later.is_empty(), "system allocations are never rescheduled");
            for stop in stops {
                self.emit_stop(stop);
            }
            for alloc in in_place {
                self.emit_in_place(alloc);
            }
            for request in placements {
                let kind = request.kind;
                let was_placed = self.place_on_target(group, &rules, request, &mut metrics, rng);
                if !was_placed {
                    count_unplaced_replacement(&mut changes, kind);
                }
            }
            if metrics.num_unplaced > 0 {
                self.plan.failed.insert(group.name.clone(), metrics);
            }
            self.plan.annotations.insert(group.name.clone(), changes);
        }
        self.stop_removed_groups(by_group);
    }

    /// Places a system allocation on its node if it still fits there.
    fn place_on_target<R: Rng + ?Sized>(
        &mut self,
        group: &'a TaskGroup,
        rules: &GroupRules,
        request: PlacementRequest<'a>,
        metrics: &mut PlacementFailure,
        rng: &mut R,
    ) -> bool {
        let Some(node) = request.target_node else {
            debug_assert!(false, "system placements name their node");
            return false;
        };
        if let Some(stop) = &request.paired_stop {
            self.ledger.record_stop(stop.alloc);
        }
        let violates_distinct_hosts = (rules.distinct_hosts_job && self.ledger.num_job_allocs(&node.id) > 0)
            || (rules.distinct_hosts_group && self.ledger.num_group_allocs(&group.name, &node.id) > 0);
        let used_after = self.ledger.used_on(self.view, &node.id) + group.resources();
        let fits = used_after.fits_in(&node.resources);
        if !violates_distinct_hosts && fits {
            if let Some(stop) = request.paired_stop.clone() {
                self.stopped.insert(&stop.alloc.id);
                self.plan.stop.push(plan_stop(stop));
            }
            self.emit_placement(group, &request, node, rng);
            return true;
        }
        if let Some(stop) = &request.paired_stop {
            self.ledger.undo_stop(stop.alloc);
        }
        metrics.num_unplaced += 1;
        if violates_distinct_hosts {
            *metrics.constraint_filtered.entry(DISTINCT_HOSTS_LABEL.to_owned()).or_insert(0) += 1;
        } else {
            metrics.nodes_exhausted += 1;
            if used_after.cpu_mhz > node.resources.cpu_mhz {
                *metrics.dimension_exhausted.entry("cpu".to_owned()).or_insert(0) += 1;
            }
            if used_after.memory_mb > node.resources.memory_mb {
                *metrics.dimension_exhausted.entry("memory".to_owned()).or_insert(0) += 1;
            }
        }
        false
    }

    /// Stops the live allocations of groups the job no longer has.
    fn stop_removed_groups(&mut self, removed: BTreeMap<&'a str, Vec<&'a Allocation>>) {
        for (group_name, allocs) in removed {
            let decisions = stop_all(self.view, &allocs, reasons::GROUP_REMOVED);
            for stop in decisions.stops {
                self.emit_stop(stop);
            }
            self.plan.annotations.insert(group_name.to_owned(), decisions.changes);
        }
    }

    fn emit_stop(&mut self, decision: StopDecision<'a>) {
        let newly_stopped = self.stopped.insert(&decision.alloc.id);
        debug_assert!(newly_stopped, "an allocation is stopped at most once per plan");
        self.ledger.record_stop(decision.alloc);
        self.plan.stop.push(plan_stop(decision));
    }

    fn emit_in_place(&mut self, alloc: &'a Allocation) {
        self.plan.in_place.push(InPlaceUpdate {
            alloc_id: alloc.id.clone(),
            node_id: alloc.node_id.clone(),
            job_version: self.job.version,
        });
    }

    /// Creates follow-up evaluations for failed allocations whose delay has
    /// not passed, one per window of [`FOLLOW_UP_BATCH_WINDOW`], and marks
    /// each allocation with its follow-up.
    ///
    /// The mark travels as a [`PlanStop`] whose desired status stays `run`:
    /// drover-types has no plan entry for "update these fields" yet. The
    /// allocation keeps wanting to run (as in Nomad), so a later scale-down
    /// or job stop that stops it for good also cancels the reschedule, and
    /// the follow-up evaluation, or any evaluation after the delay, replaces
    /// it.
    fn emit_delayed_reschedules<R: Rng + ?Sized>(&mut self, mut delayed: Vec<DelayedReschedule<'a>>, rng: &mut R) {
        delayed.sort_by(|first, second| (first.at, &first.alloc.id).cmp(&(second.at, &second.alloc.id)));
        let mut current_batch: Option<(EvalId, Timestamp)> = None;
        for reschedule in delayed {
            let eval_id = match &current_batch {
                Some((eval_id, batch_start)) if reschedule.at.since(*batch_start) < FOLLOW_UP_BATCH_WINDOW => {
                    eval_id.clone()
                }
                _ => {
                    let follow_up = self.follow_up_eval(reschedule.at, rng);
                    let new_eval_id = follow_up.id.clone();
                    self.plan.follow_ups.push(follow_up);
                    current_batch = Some((new_eval_id.clone(), reschedule.at));
                    new_eval_id
                }
            };
            self.emit_stop(StopDecision {
                desired_status: AllocDesiredStatus::Run,
                follow_up_eval: Some(eval_id),
                ..StopDecision::stop(reschedule.alloc, reasons::ALLOC_RESCHEDULE_LATER)
            });
        }
    }

    fn follow_up_eval<R: Rng + ?Sized>(&self, wait_until: Timestamp, rng: &mut R) -> Evaluation {
        let mut follow_up = Evaluation::new(
            EvalId::new(random_uuid(rng)),
            self.job.id.clone(),
            self.job.priority,
            EvalTrigger::RetryFailedAlloc,
            self.now,
        );
        follow_up.wait_until = Some(wait_until);
        follow_up.previous_eval = Some(self.eval.id.clone());
        follow_up.job_modify_index = self.job.job_modify_index;
        follow_up.status_description = "created for delayed rescheduling".to_owned();
        follow_up
    }

    fn emit_placement<R: Rng + ?Sized>(
        &mut self,
        group: &'a TaskGroup,
        request: &PlacementRequest<'a>,
        node: &'a Node,
        rng: &mut R,
    ) {
        let alloc = self.new_allocation(group, request, node, rng);
        self.ledger.record_placement(&node.id, &group.name, alloc.resources);
        self.plan.place.push(alloc);
    }

    fn new_allocation<R: Rng + ?Sized>(
        &self,
        group: &TaskGroup,
        request: &PlacementRequest<'a>,
        node: &Node,
        rng: &mut R,
    ) -> Allocation {
        let job = self.job;
        let reschedule_events = match (request.kind, request.previous) {
            (PlacementKind::Reschedule, Some(previous)) => {
                let mut events = previous.reschedule_events.clone();
                events.push(RescheduleEvent {
                    time: self.now,
                    prev_alloc_id: previous.id.clone(),
                    prev_node_id: previous.node_id.clone(),
                    delay: DurationSpec::from(request.reschedule_delay.unwrap_or_default()),
                });
                events
            }
            _ => Vec::new(),
        };
        let has_rollout = job.update_for(group).is_some_and(|update| update.max_parallel > 0);
        Allocation {
            id: AllocId::new(random_uuid(rng)),
            name: format!("{}.{}[{}]", job.id, group.name, request.index),
            index: request.index,
            job_id: job.id.clone(),
            job_version: job.version,
            group: group.name.clone(),
            node_id: node.id.clone(),
            node_name: node.name.clone(),
            eval_id: self.eval.id.clone(),
            resources: group.resources(),
            desired_status: AllocDesiredStatus::Run,
            desired_description: String::new(),
            desired_transition: DesiredTransition::default(),
            client_status: AllocClientStatus::Pending,
            client_description: String::new(),
            task_states: BTreeMap::new(),
            checks: Vec::new(),
            previous_alloc: request.previous.map(|previous| previous.id.clone()),
            next_alloc: None,
            reschedule_events,
            follow_up_eval: None,
            deployment_id: None,
            // Allocations of a rolling update are watched for health; the
            // destructive limit counts the ones not healthy yet.
            deployment_status: has_rollout.then(AllocDeploymentStatus::default),
            create_time: self.now,
            modify_time: self.now,
            create_index: 0,
            modify_index: 0,
        }
    }
}
