//! Building the plan: reads the job's deployment, runs the reconciler of
//! the job's type, turns its decisions into plan entries (starting or
//! cancelling a deployment when needed), and places the new allocations.
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
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, AllocId, AllocUpdate, AllocatedPort, Allocation,
    DeploymentId, DesiredTransition, DurationSpec, EvalId, EvalTrigger, Evaluation, GroupChanges, InPlaceUpdate, Job,
    JobType, Node, PlacementFailure, Plan, PlanStop, RescheduleEvent, TaskGroup, Timestamp,
};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::constraint::PatternCache;
use crate::deployment::{
    GroupRollout, JobDeployments, StartingGroup, cancel_for_stopped_job, rollout_strategy, start_deployment,
};
use crate::fast_hash::FastSet;
use crate::feasibility::{DISTINCT_HOSTS_LABEL, GroupRules};
use crate::ids::random_uuid;
use crate::ledger::{Ledger, is_live};
use crate::ports::{PortShortage, assign_ports};
use crate::reasons;
use crate::reconcile::{
    DelayedReschedule, GroupDecisions, PlacementKind, PlacementRequest, ReconcileContext, StopDecision,
    UnknownTransition, reconcile_group, replacement_links, stop_all,
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
/// The plan is complete (ids, names, resources, reasons, the deployment it
/// starts or cancels) and is meant to be checked with
/// [`verify_plan`](crate::verify_plan) against the latest state before it
/// is committed. Never panics (debug builds assert that `job` is the
/// evaluation's job).
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
    let latest_deployment = view.latest_deployment(job_id);
    match job {
        None => {
            cancel_for_stopped_job(latest_deployment, reasons::DEPLOYMENT_CANCELLED_JOB_PURGED, now, &mut plan);
            stop_everything(view, &job_allocs, reasons::JOB_PURGED, now, &mut plan);
        }
        Some(job) if job.stop => {
            cancel_for_stopped_job(latest_deployment, reasons::DEPLOYMENT_CANCELLED_JOB_STOPPED, now, &mut plan);
            stop_everything(view, &job_allocs, reasons::JOB_STOPPED, now, &mut plan);
        }
        // A periodic or parameterized parent only launches children; it
        // never runs itself.
        Some(job) if job.is_template() => {}
        Some(job) => {
            let mut builder = PlanBuilder::new(view, job, eval, now, job_allocs, plan);
            match job.job_type {
                JobType::System | JobType::SysBatch => builder.schedule_system(rng),
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
    now: Timestamp,
    plan: &mut Plan,
) {
    for (group_name, allocs) in allocs_by_group(job_allocs) {
        let decisions = stop_all(view, &allocs, description, now);
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
        PlacementKind::New
        | PlacementKind::LostReplacement
        | PlacementKind::DisconnectReplacement
        | PlacementKind::Migration
        | PlacementKind::Canary => {}
    }
}

/// One group's reconciliation, waiting for its placements.
struct PendingGroup<'a> {
    group: &'a TaskGroup,
    rules: GroupRules,
    rollout: GroupRollout<'a>,
    allocs: Vec<&'a Allocation>,
    decisions: GroupDecisions<'a>,
    /// The deployment its placements join.
    deployment_id: Option<DeploymentId>,
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

    /// Service and batch jobs: reconcile every group, start or join the
    /// deployment, then place through each group's stack.
    fn schedule_generic<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let job = self.job;
        let deployments = JobDeployments::new(self.view.latest_deployment(&job.id), job, self.now, &mut self.plan);
        let replacements = replacement_links(&self.job_allocs);
        let mut by_group = allocs_by_group(&self.job_allocs);
        let mut pending: Vec<PendingGroup<'a>> = Vec::with_capacity(job.groups.len());
        {
            let context =
                ReconcileContext { view: self.view, job, eval: self.eval, now: self.now, replacements: &replacements };
            for group in &job.groups {
                let allocs = by_group.remove(group.name.as_str()).unwrap_or_default();
                let rules = GroupRules::new(job, group);
                let rollout = deployments.rollout_for(job, group);
                let decisions = reconcile_group(&context, group, &rules, rollout, &allocs, &mut self.patterns);
                pending.push(PendingGroup { group, rules, rollout, allocs, decisions, deployment_id: None });
            }
        }
        self.stop_removed_groups(by_group);
        self.join_or_start_deployment(&deployments, &mut pending, rng);

        let mut delayed: Vec<DelayedReschedule<'a>> = Vec::new();
        let mut unknown: Vec<UnknownTransition<'a>> = Vec::new();
        for entry in &mut pending {
            for stop in mem::take(&mut entry.decisions.stops) {
                self.emit_stop(stop);
            }
            for alloc in mem::take(&mut entry.decisions.in_place) {
                self.emit_in_place(alloc);
            }
            delayed.append(&mut entry.decisions.reschedule_later);
            unknown.append(&mut entry.decisions.unknown);
        }
        self.emit_delayed_reschedules(delayed, rng);
        self.emit_unknown(unknown, rng);

        let needs_nodes = pending.iter().any(|entry| !entry.decisions.placements.is_empty());
        let mut nodes: Vec<&'a Node> = if needs_nodes { self.view.nodes().collect() } else { Vec::new() };
        nodes.shuffle(rng);
        let num_ready_nodes = nodes.iter().filter(|node| node.is_schedulable()).count();
        for entry in pending {
            let PendingGroup { group, rules, rollout: _, allocs, decisions, deployment_id } = entry;
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
                    let target = PlacementTarget { group, deployment_id: deployment_id.as_ref() };
                    let was_placed = self.place_with_stack(&mut stack, &nodes, target, request, rng);
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

    /// Decides which deployment each group's placements join: the
    /// current registration's while it is active, or one this plan starts
    /// for the groups that roll something out (see [`crate::deployment`]).
    fn join_or_start_deployment<R: Rng + ?Sized>(
        &mut self,
        deployments: &JobDeployments<'a>,
        pending: &mut [PendingGroup<'a>],
        rng: &mut R,
    ) {
        let job = self.job;
        if let Some(active) = deployments.active() {
            for entry in pending.iter_mut() {
                if matches!(entry.rollout, GroupRollout::Deployed { .. }) {
                    entry.deployment_id = Some(active.id.clone());
                }
            }
            return;
        }
        let mut starting: Vec<StartingGroup<'a>> = Vec::new();
        let mut joining: Vec<usize> = Vec::new();
        for (position, entry) in pending.iter().enumerate() {
            let GroupRollout::Starting { .. } = entry.rollout else {
                continue;
            };
            let Some(strategy) = rollout_strategy(job, entry.group) else {
                continue;
            };
            let summary = entry.decisions.rollout;
            let has_work = !entry.decisions.placements.is_empty() || summary.num_destructive > 0;
            if !has_work {
                continue;
            }
            // Allocations that stay without being replaced never carry the
            // deployment's id: the deployment cannot wait for them (an
            // in-place update keeps its allocation out of it).
            let desired_total = entry.group.count.saturating_sub(summary.num_staying);
            starting.push(StartingGroup {
                group: entry.group,
                strategy,
                desired_canaries: summary.desired_canaries,
                desired_total,
            });
            joining.push(position);
        }
        if starting.is_empty() {
            return;
        }
        let deployment = start_deployment(DeploymentId::new(random_uuid(rng)), job, &starting, self.now);
        for position in joining {
            if let Some(entry) = pending.get_mut(position) {
                entry.deployment_id = Some(deployment.id.clone());
            }
        }
        self.plan.deployment = Some(deployment);
    }

    /// Places one allocation through the group's stack; returns whether it
    /// found a node.
    fn place_with_stack<R: Rng + ?Sized>(
        &mut self,
        stack: &mut GroupStack<'a>,
        nodes: &[&'a Node],
        target: PlacementTarget<'a, '_>,
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
        // The stack checked that the node has the ports; this draws them.
        let with_ports =
            chosen.and_then(|node| self.ports_for(target.group, node, rng).ok().map(|ports| (node, ports)));
        debug_assert_eq!(chosen.is_some(), with_ports.is_some(), "a node chosen for its ports yields them");
        match with_ports {
            Some((node, ports)) => {
                if let Some(stop) = request.paired_stop.clone() {
                    self.stopped.insert(&stop.alloc.id);
                    self.plan.stop.push(plan_stop(stop));
                }
                self.emit_placement(target, &request, node, ports, rng);
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
        let replacements = replacement_links(&self.job_allocs);
        let mut by_group = allocs_by_group(&self.job_allocs);
        let nodes: Vec<&'a Node> = self.view.nodes().collect();
        for group in &job.groups {
            let allocs = by_group.remove(group.name.as_str()).unwrap_or_default();
            let rules = GroupRules::new(job, group);
            let mut metrics = PlacementFailure::default();
            let decisions = {
                let context = ReconcileContext {
                    view: self.view,
                    job,
                    eval: self.eval,
                    now: self.now,
                    replacements: &replacements,
                };
                reconcile_system_group(&context, group, &rules, &allocs, &nodes, &mut self.patterns, &mut metrics)
            };
            let GroupDecisions { stops, in_place, placements, reschedule_later, unknown, rollout: _, mut changes } =
                decisions;
            debug_assert!(reschedule_later.is_empty(), "system allocations are never rescheduled");
            for stop in stops {
                self.emit_stop(stop);
            }
            for alloc in in_place {
                self.emit_in_place(alloc);
            }
            self.emit_unknown(unknown, rng);
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
        let ports = if !violates_distinct_hosts && fits { Some(self.ports_for(group, node, rng)) } else { None };
        if let Some(Ok(ports)) = ports {
            if let Some(stop) = request.paired_stop.clone() {
                self.stopped.insert(&stop.alloc.id);
                self.plan.stop.push(plan_stop(stop));
            }
            self.emit_placement(PlacementTarget { group, deployment_id: None }, &request, node, ports, rng);
            return true;
        }
        if let Some(stop) = &request.paired_stop {
            self.ledger.undo_stop(stop.alloc);
        }
        metrics.num_unplaced += 1;
        if let Some(Err(shortage)) = ports {
            *metrics.ports_exhausted.entry(shortage.describe()).or_insert(0) += 1;
        } else if violates_distinct_hosts {
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
            let decisions = stop_all(self.view, &allocs, reasons::GROUP_REMOVED, self.now);
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
    /// each allocation with its follow-up through an allocation update.
    ///
    /// The allocation keeps wanting to run (as in Nomad), so a later
    /// scale-down or job stop that stops it for good also cancels the
    /// reschedule, and the follow-up evaluation, or any evaluation after the
    /// delay, replaces it.
    fn emit_delayed_reschedules<R: Rng + ?Sized>(&mut self, mut delayed: Vec<DelayedReschedule<'a>>, rng: &mut R) {
        delayed.sort_by(|first, second| (first.at, &first.alloc.id).cmp(&(second.at, &second.alloc.id)));
        let times: Vec<Timestamp> = delayed.iter().map(|reschedule| reschedule.at).collect();
        let eval_ids = self.batch_follow_ups(&times, FollowUpReason::RetryFailedAlloc, rng);
        for (reschedule, eval_id) in delayed.into_iter().zip(eval_ids) {
            self.plan.updates.push(AllocUpdate {
                alloc_id: reschedule.alloc.id.clone(),
                node_id: reschedule.alloc.node_id.clone(),
                client_status: None,
                follow_up_eval: Some(eval_id),
                description: reasons::ALLOC_RESCHEDULE_LATER.to_owned(),
            });
        }
    }

    /// Marks allocations on disconnected nodes `unknown`, and creates the
    /// follow-up evaluations that declare them lost once `lost_after` has
    /// passed (one per window of [`FOLLOW_UP_BATCH_WINDOW`]).
    ///
    /// The follow-up is created only with the transition, which happens
    /// once per disconnect; it is not recorded on the allocation, whose
    /// `follow_up_eval` belongs to delayed reschedules.
    fn emit_unknown<R: Rng + ?Sized>(&mut self, mut unknown: Vec<UnknownTransition<'a>>, rng: &mut R) {
        if unknown.is_empty() {
            return;
        }
        unknown.sort_by(|first, second| (first.lost_at, &first.alloc.id).cmp(&(second.lost_at, &second.alloc.id)));
        let times: Vec<Timestamp> = unknown.iter().map(|transition| transition.lost_at).collect();
        self.batch_follow_ups(&times, FollowUpReason::DisconnectTimeout, rng);
        for transition in unknown {
            self.plan.updates.push(AllocUpdate {
                alloc_id: transition.alloc.id.clone(),
                node_id: transition.alloc.node_id.clone(),
                client_status: Some(AllocClientStatus::Unknown),
                follow_up_eval: None,
                description: reasons::ALLOC_UNKNOWN.to_owned(),
            });
        }
    }

    /// Creates follow-up evaluations for sorted `times`: a time within
    /// [`FOLLOW_UP_BATCH_WINDOW`] of its batch's first shares its
    /// evaluation. Returns the evaluation of each time.
    ///
    /// A delayed reschedule's evaluation waits until the batch's first time
    /// (its allocations carry its id, which makes them due); a disconnect
    /// timeout's waits until the batch's last, so that every allocation of
    /// the batch is past its `lost_after` when it runs.
    fn batch_follow_ups<R: Rng + ?Sized>(
        &mut self,
        times: &[Timestamp],
        reason: FollowUpReason,
        rng: &mut R,
    ) -> Vec<EvalId> {
        let mut eval_ids = Vec::with_capacity(times.len());
        let mut batch: Option<(usize, Timestamp)> = None;
        for time in times.iter().copied() {
            let joins_batch = batch.is_some_and(|(_, batch_start)| time.since(batch_start) < FOLLOW_UP_BATCH_WINDOW);
            match batch {
                Some((position, _)) if joins_batch => {
                    if reason == FollowUpReason::DisconnectTimeout
                        && let Some(follow_up) = self.plan.follow_ups.get_mut(position)
                    {
                        follow_up.wait_until = Some(time);
                    }
                    let eval_id = self.plan.follow_ups.get(position).map(|follow_up| follow_up.id.clone());
                    eval_ids.extend(eval_id);
                }
                _ => {
                    let follow_up = self.follow_up_eval(time, reason, rng);
                    eval_ids.push(follow_up.id.clone());
                    batch = Some((self.plan.follow_ups.len(), time));
                    self.plan.follow_ups.push(follow_up);
                }
            }
        }
        debug_assert_eq!(eval_ids.len(), times.len(), "every time has its evaluation");
        eval_ids
    }

    fn follow_up_eval<R: Rng + ?Sized>(
        &self,
        wait_until: Timestamp,
        reason: FollowUpReason,
        rng: &mut R,
    ) -> Evaluation {
        let (trigger, description) = match reason {
            FollowUpReason::RetryFailedAlloc => (EvalTrigger::RetryFailedAlloc, "created for delayed rescheduling"),
            FollowUpReason::DisconnectTimeout => {
                (EvalTrigger::NodeUpdate, "created to declare allocations lost once disconnect.lost_after has passed")
            }
        };
        let mut follow_up =
            Evaluation::new(EvalId::new(random_uuid(rng)), self.job.id.clone(), self.job.priority, trigger, self.now);
        follow_up.wait_until = Some(wait_until);
        follow_up.previous_eval = Some(self.eval.id.clone());
        follow_up.job_modify_index = self.job.job_modify_index;
        follow_up.status_description = description.to_owned();
        follow_up
    }

    /// The ports of `group` on `node` once the plan so far is applied
    /// (none for a group without a network block).
    fn ports_for<R: Rng + ?Sized>(
        &self,
        group: &TaskGroup,
        node: &Node,
        rng: &mut R,
    ) -> Result<Vec<AllocatedPort>, PortShortage> {
        match group.network.as_ref().filter(|network| !network.is_empty()) {
            Some(network) => {
                let used = self.ledger.ports_used_on(self.view, &node.id);
                assign_ports(network, node, &used, Some(rng))
            }
            None => Ok(Vec::new()),
        }
    }

    fn emit_placement<R: Rng + ?Sized>(
        &mut self,
        target: PlacementTarget<'a, '_>,
        request: &PlacementRequest<'a>,
        node: &'a Node,
        ports: Vec<AllocatedPort>,
        rng: &mut R,
    ) {
        let mut alloc = self.new_allocation(target, request, node, rng);
        alloc.ports = ports;
        self.ledger.record_placement(&node.id, &target.group.name, alloc.resources, &alloc.ports);
        self.plan.place.push(alloc);
    }

    fn new_allocation<R: Rng + ?Sized>(
        &self,
        target: PlacementTarget<'_, '_>,
        request: &PlacementRequest<'a>,
        node: &Node,
        rng: &mut R,
    ) -> Allocation {
        let job = self.job;
        let group = target.group;
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
        // Allocations of a rolling update are watched for health; the
        // destructive limit counts the ones not healthy yet, deployment or
        // not (system jobs have none).
        let deployment_status = rollout_strategy(job, group).map(|_| AllocDeploymentStatus {
            canary: request.kind == PlacementKind::Canary,
            ..AllocDeploymentStatus::default()
        });
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
            deployment_id: target.deployment_id.cloned(),
            deployment_status,
            create_time: self.now,
            modify_time: self.now,
            create_index: 0,
            modify_index: 0,
            alloc_modify_index: 0,
            ports: Vec::new(),
        }
    }
}

/// Where a placement goes: its group, and the deployment it joins.
#[derive(Clone, Copy, Debug)]
struct PlacementTarget<'a, 'd> {
    group: &'a TaskGroup,
    deployment_id: Option<&'d DeploymentId>,
}

/// Why a follow-up evaluation is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowUpReason {
    /// A failed allocation's reschedule delay passes.
    RetryFailedAlloc,
    /// Allocations on a disconnected node reach their `lost_after`.
    DisconnectTimeout,
}
