//! The node drainer: moves allocations off draining nodes, a few at a time.
//!
//! For each draining node, per task group, at most `migrate.max_parallel`
//! allocations are in flight at once: flagged for migration and not yet
//! both stopped and replaced by a running allocation. System-job
//! allocations go last, once everything else on the node has stopped (or
//! are left alone with `--ignore-system`). At the deadline every remaining
//! allocation is flagged at once. The drain is complete — and reported
//! done — only when every allocation on the node has actually stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, DesiredTransition, EvalTrigger, Evaluation, JobId,
    JobType, Node, NodeChange, PlanStop, Timestamp,
};

use crate::ids::new_eval_id;
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken) {
    let mut states = server.watch_state();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let state = server.state();
        let now = Timestamp::now();
        let draining: Vec<_> = state.draining_nodes().cloned().collect();
        for node in draining {
            for command in drain_step(&state, &node, now) {
                if let Err(error) = server.propose(command).await {
                    tracing::warn!(%error, node = %node.name, "drain step not committed");
                }
            }
        }
    }
}

/// Whether an allocation still occupies its node.
fn is_live(alloc: &Allocation) -> bool {
    !alloc.client_status.is_terminal()
}

/// The commands that move one draining node forward.
pub(crate) fn drain_step(state: &State, node: &Node, now: Timestamp) -> Vec<Command> {
    let Some(strategy) = node.drain.as_ref() else { return Vec::new() };
    let job_type = |alloc: &Allocation| state.job(&alloc.job_id).map_or(JobType::Service, |job| job.job_type);
    let live: Vec<&Allocation> =
        state.allocs_on_node(&node.id).map(|alloc| alloc.as_ref()).filter(|alloc| is_live(alloc)).collect();
    let (system, others): (Vec<&Allocation>, Vec<&Allocation>) =
        live.iter().partition(|alloc| job_type(alloc) == JobType::System);
    let remaining = if strategy.ignore_system_jobs { others.len() } else { live.len() };
    if remaining == 0 {
        tracing::info!(node = %node.name, "drain complete");
        return vec![Command::UpdateNodeDrain {
            node_id: node.id.clone(),
            drain: None,
            mark_eligible: false,
            now,
            audit: vec![NodeChange {
                at: now,
                by: "drover".to_owned(),
                field: "drain".to_owned(),
                from: "draining".to_owned(),
                to: "complete".to_owned(),
                reason: String::new(),
            }],
        }];
    }

    let forced = strategy.deadline.is_some_and(|deadline| now >= deadline);
    if forced {
        // The deadline: stop what remains directly, whether or not a
        // replacement can be placed (the evaluations place them when they can).
        let mut remaining: Vec<&Allocation> = others.clone();
        if !strategy.ignore_system_jobs {
            remaining.extend(system.iter());
        }
        let remaining: Vec<&Allocation> =
            remaining.into_iter().filter(|alloc| alloc.desired_status == AllocDesiredStatus::Run).collect();
        if remaining.is_empty() {
            return Vec::new();
        }
        let stops = remaining
            .iter()
            .map(|alloc| PlanStop {
                alloc_id: alloc.id.clone(),
                node_id: node.id.clone(),
                desired_status: AllocDesiredStatus::Evict,
                description: "the node's drain deadline passed".to_owned(),
                client_status: None,
                follow_up_eval: None,
            })
            .collect();
        tracing::warn!(node = %node.name, num_allocs = remaining.len(), "drain deadline passed; stopping what remains");
        return vec![Command::StopAllocs { stops, evals: drain_evals(state, node, &remaining, now), now }];
    }
    let mut to_flag: Vec<&Allocation> = Vec::new();
    if others.is_empty() {
        if !strategy.ignore_system_jobs {
            to_flag.extend(system.iter().filter(|alloc| !alloc.desired_transition.migrate));
        }
    } else {
        // Per group, respect migrate.max_parallel.
        let mut by_group: BTreeMap<(JobId, String), Vec<&Allocation>> = BTreeMap::new();
        for alloc in &others {
            by_group.entry((alloc.job_id.clone(), alloc.group.clone())).or_default().push(alloc);
        }
        for ((job_id, group_name), allocs) in by_group {
            let max_parallel = state
                .job(&job_id)
                .and_then(|job| job.group(&group_name).map(|group| group.migrate.max_parallel))
                .unwrap_or(1)
                .max(1) as usize;
            let in_flight = allocs.iter().filter(|alloc| alloc.desired_transition.migrate).count()
                + replacements_starting(state, &node.id, &job_id, &group_name);
            let budget = max_parallel.saturating_sub(in_flight);
            to_flag.extend(allocs.iter().filter(|alloc| !alloc.desired_transition.migrate).take(budget));
        }
    }
    if to_flag.is_empty() {
        return Vec::new();
    }
    let transitions: Vec<(AllocId, DesiredTransition)> = to_flag
        .iter()
        .map(|alloc| (alloc.id.clone(), DesiredTransition { migrate: true, ..alloc.desired_transition }))
        .collect();
    tracing::info!(node = %node.name, num_allocs = transitions.len(), "draining allocations");
    vec![Command::UpdateAllocDesiredTransitions { transitions, evals: drain_evals(state, node, &to_flag, now), now }]
}

/// One `node-drain` evaluation per job of `allocs`.
fn drain_evals(state: &State, node: &Node, allocs: &[&Allocation], now: Timestamp) -> Vec<Evaluation> {
    let jobs: BTreeSet<&JobId> = allocs.iter().map(|alloc| &alloc.job_id).collect();
    jobs.into_iter()
        .map(|job_id| {
            let priority = state.job(job_id).map_or(50, |job| job.priority);
            let mut eval = Evaluation::new(new_eval_id(), job_id.clone(), priority, EvalTrigger::NodeDrain, now);
            eval.node_id = Some(node.id.clone());
            eval
        })
        .collect()
}

/// Replacements of this node's migrated allocations (of one group) that are
/// placed but not yet running: they still count against `max_parallel`.
fn replacements_starting(state: &State, node_id: &drover_types::NodeId, job_id: &JobId, group: &str) -> usize {
    state
        .allocs_on_node(node_id)
        .filter(|alloc| &alloc.job_id == job_id && alloc.group == group && alloc.desired_transition.migrate)
        .filter_map(|alloc| alloc.next_alloc.as_ref().and_then(|next| state.alloc(next)))
        .filter(|replacement| replacement.client_status == AllocClientStatus::Pending)
        .count()
}
