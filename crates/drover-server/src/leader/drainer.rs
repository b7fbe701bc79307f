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

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use drover_state::{Command, State};
use drover_types::{
    AllocClientStatus, AllocDesiredStatus, AllocId, Allocation, DesiredTransition, EvalTrigger, Evaluation, JobId,
    JobType, Node, NodeChange, PlanStop, Timestamp,
};

use super::{Wakes, on_change_or_tick};
use crate::ids::new_eval_id;
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken) {
    let wakes = Wakes::every(Duration::from_secs(1)).and_on_change(&server);
    on_change_or_tick(token, wakes, async move |_| {
        let state = server.state();
        let now = Timestamp::now();
        let draining: Vec<_> = state.draining_nodes().cloned().collect();
        // The nodes' steps are proposed together (one Raft batch), each
        // node's commands in order.
        join_all(draining.iter().map(|node| async {
            for command in drain_step(&state, node, now) {
                if let Err(error) = server.propose(command).await {
                    tracing::warn!(%error, node = %node.name, "drain step not committed");
                }
            }
        }))
        .await;
    })
    .await;
}

/// Whether an allocation still occupies its node.
fn is_live(alloc: &Allocation) -> bool {
    !alloc.client_status.is_terminal()
}

/// The commands that move one draining node forward.
pub(super) fn drain_step(state: &State, node: &Node, now: Timestamp) -> Vec<Command> {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use drover_types::NodeId;

    use crate::leader::test_support::{Cluster, alloc, at, group, job};

    /// `web` (three allocations, two migrated at a time) and the system
    /// job `agent` on node `old`; `new` has room for replacements.
    fn cluster_with_a_node_to_drain() -> (Cluster, NodeId) {
        let mut cluster = Cluster::new();
        let old = cluster.node("old");
        cluster.node("new");
        cluster.register(job("web", JobType::Service, vec![group("web", 3, 2)]));
        cluster.register(job("agent", JobType::System, vec![group("agent", 1, 1)]));
        cluster.place((1..=3).map(|index| alloc(&format!("web-{index}"), "web", "web", &old)).collect(), None);
        cluster.place(vec![alloc("agent-1", "agent", "agent", &old)], None);
        (cluster, old)
    }

    fn step(cluster: &Cluster, node_id: &NodeId, now: Timestamp) -> Vec<Command> {
        let node: Arc<Node> = Arc::clone(cluster.state.node(node_id).expect("the node exists"));
        drain_step(&cluster.state, &node, now)
    }

    /// The allocations a step flags for migration, and the jobs it evaluates.
    fn flagged(commands: &[Command]) -> (Vec<&str>, Vec<&str>) {
        match commands {
            [Command::UpdateAllocDesiredTransitions { transitions, evals, .. }] => {
                assert!(transitions.iter().all(|(_, transition)| transition.migrate));
                assert!(evals.iter().all(|eval| eval.triggered_by == EvalTrigger::NodeDrain));
                (
                    transitions.iter().map(|(id, _)| id.as_str()).collect(),
                    evals.iter().map(|eval| eval.job_id.as_str()).collect(),
                )
            }
            other => panic!("expected one batch of migrations, got {other:?}"),
        }
    }

    fn is_completion(commands: &[Command]) -> bool {
        matches!(commands, [Command::UpdateNodeDrain { drain: None, mark_eligible: false, audit, .. }] if audit[0].to == "complete")
    }

    #[test]
    fn a_drain_moves_max_parallel_allocations_of_a_group_at_a_time() {
        let (mut cluster, old) = cluster_with_a_node_to_drain();
        cluster.drain(&old, None, false);
        let first = step(&cluster, &old, at(10));
        assert_eq!(flagged(&first), (vec!["web-1", "web-2"], vec!["web"]));
        let Command::UpdateAllocDesiredTransitions { evals, .. } = &first[0] else { unreachable!() };
        assert_eq!(evals[0].node_id.as_ref(), Some(&old));
        cluster.apply(&first[0]);
        assert_eq!(step(&cluster, &old, at(11)), [], "two in flight: wait");

        // The scheduler replaces web-1: the original stops, the replacement
        // starts. Until it runs, it still counts against max_parallel.
        let new = NodeId::new("new");
        let mut replacement = alloc("web-1b", "web", "web", &new);
        replacement.previous_alloc = Some(AllocId::new("web-1"));
        replacement.client_status = AllocClientStatus::Pending;
        cluster.place(vec![replacement], None);
        cluster.report("web-1", AllocClientStatus::Complete, None);
        assert_eq!(step(&cluster, &old, at(12)), [], "a replacement still starting is in flight");

        cluster.report("web-1b", AllocClientStatus::Running, None);
        assert_eq!(flagged(&step(&cluster, &old, at(13))), (vec!["web-3"], vec!["web"]));
    }

    #[test]
    fn system_jobs_leave_last_and_the_drain_completes_when_everything_stopped() {
        let (mut cluster, old) = cluster_with_a_node_to_drain();
        cluster.drain(&old, None, false);
        cluster.apply(&step(&cluster, &old, at(10))[0]);
        cluster.report("web-1", AllocClientStatus::Complete, None);
        cluster.report("web-2", AllocClientStatus::Complete, None);
        let next = step(&cluster, &old, at(11));
        assert_eq!(flagged(&next), (vec!["web-3"], vec!["web"]), "the system allocation waits");
        cluster.apply(&next[0]);

        cluster.report("web-3", AllocClientStatus::Failed, None);
        let next = step(&cluster, &old, at(12));
        assert_eq!(flagged(&next), (vec!["agent-1"], vec!["agent"]), "only system allocations are left");
        cluster.apply(&next[0]);
        assert!(!is_completion(&step(&cluster, &old, at(13))), "the system allocation still runs");

        cluster.report("agent-1", AllocClientStatus::Complete, None);
        assert!(is_completion(&step(&cluster, &old, at(14))));
    }

    #[test]
    fn ignore_system_jobs_completes_the_drain_with_system_allocations_running() {
        let (mut cluster, old) = cluster_with_a_node_to_drain();
        cluster.drain(&old, None, true);
        assert_eq!(flagged(&step(&cluster, &old, at(10))).0, ["web-1", "web-2"]);
        for id in ["web-1", "web-2", "web-3"] {
            cluster.report(id, AllocClientStatus::Complete, None);
        }
        assert!(is_completion(&step(&cluster, &old, at(11))));
        assert_eq!(cluster.alloc("agent-1").client_status, AllocClientStatus::Running);
    }

    #[test]
    fn at_the_deadline_everything_left_is_stopped_at_once() {
        let (mut cluster, old) = cluster_with_a_node_to_drain();
        cluster.drain(&old, Some(at(60)), false);
        assert_eq!(flagged(&step(&cluster, &old, at(59))).0, ["web-1", "web-2"], "before the deadline: in batches");

        let stops = step(&cluster, &old, at(60));
        let [Command::StopAllocs { stops, evals, .. }] = stops.as_slice() else {
            panic!("expected stops, got {stops:?}")
        };
        let stopped: Vec<&str> = stops.iter().map(|stop| stop.alloc_id.as_str()).collect();
        assert_eq!(stopped, ["web-1", "web-2", "web-3", "agent-1"]);
        assert!(stops.iter().all(|stop| stop.desired_status == AllocDesiredStatus::Evict));
        let mut jobs: Vec<&str> = evals.iter().map(|eval| eval.job_id.as_str()).collect();
        jobs.sort_unstable();
        assert_eq!(jobs, ["agent", "web"], "one evaluation per job places the replacements");

        // Once stopped, nothing is stopped twice, and the drain completes
        // when the agents report the allocations gone.
        cluster.apply(&Command::StopAllocs { stops: stops.clone(), evals: Vec::new(), now: at(60) });
        assert_eq!(step(&cluster, &old, at(61)), []);
        for id in ["web-1", "web-2", "web-3", "agent-1"] {
            cluster.report(id, AllocClientStatus::Complete, None);
        }
        assert!(is_completion(&step(&cluster, &old, at(62))));
    }

    #[test]
    fn at_the_deadline_ignore_system_jobs_still_spares_system_allocations() {
        let (mut cluster, old) = cluster_with_a_node_to_drain();
        cluster.drain(&old, Some(at(60)), true);
        let stops = step(&cluster, &old, at(61));
        let [Command::StopAllocs { stops, .. }] = stops.as_slice() else { panic!("expected stops, got {stops:?}") };
        let stopped: Vec<&str> = stops.iter().map(|stop| stop.alloc_id.as_str()).collect();
        assert_eq!(stopped, ["web-1", "web-2", "web-3"]);
    }

    #[test]
    fn a_node_that_is_not_draining_gets_nothing() {
        let (cluster, old) = cluster_with_a_node_to_drain();
        assert_eq!(step(&cluster, &old, at(10)), []);
    }
}
