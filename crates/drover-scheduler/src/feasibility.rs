//! Feasibility: which nodes a task group may run on at all.
//!
//! A node is feasible for a group when it is ready for new work
//! ([`Node::is_schedulable`]), its zone matches one of the job's
//! datacenters, and it satisfies every constraint of the job, the group and
//! the group's tasks. `distinct_hosts` is the exception: it depends on the
//! allocations already on the node, so the selection step checks it against
//! the plan being built (see [`crate::select`]).

use drover_types::glob::Glob;
use drover_types::{ConstraintOperator, Job, Node, PlacementFailure, TaskGroup};

use crate::constraint::{CompiledRule, PatternCache};

/// Label under which `distinct_hosts` rejections are counted in
/// [`PlacementFailure::constraint_filtered`].
pub(crate) const DISTINCT_HOSTS_LABEL: &str = "distinct_hosts";

/// Why a node is, or is not, a place for a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeVerdict {
    /// Every static check passes.
    Feasible,
    /// Down, disconnected, initializing, ineligible or draining.
    NotReady,
    /// Its zone is not one of the job's datacenters.
    WrongZone,
    /// The constraint at this index of [`GroupRules::constraints`] rejects it.
    Filtered(usize),
}

/// The compiled placement rules of one task group in one evaluation.
#[derive(Debug)]
pub(crate) struct GroupRules {
    /// Job, group and task constraints, `distinct_hosts` excluded.
    constraints: Vec<CompiledRule>,
    /// Which zones the job's datacenters allow.
    zones: ZoneFilter,
    /// A job-level `distinct_hosts`: one allocation of the job per node.
    pub(crate) distinct_hosts_job: bool,
    /// A group- or task-level `distinct_hosts`: one allocation of the group
    /// per node.
    pub(crate) distinct_hosts_group: bool,
    /// Affinities of the job and the group, with their weights.
    affinities: Vec<(CompiledRule, f64)>,
    /// Sum of the absolute affinity weights.
    affinity_weight_sum: f64,
}

impl GroupRules {
    /// Compiles the rules of `group` in `job`.
    pub(crate) fn new(job: &Job, group: &TaskGroup) -> GroupRules {
        let task_constraints = group.tasks.iter().flat_map(|task| task.constraints.iter());
        let group_constraints = group.constraints.iter().chain(task_constraints);
        let mut constraints = Vec::new();
        let mut distinct_hosts_job = false;
        let mut distinct_hosts_group = false;
        for constraint in &job.constraints {
            if constraint.operator == ConstraintOperator::DistinctHosts {
                distinct_hosts_job |= distinct_hosts_enabled(&constraint.value);
            } else {
                constraints.push(CompiledRule::from_constraint(constraint));
            }
        }
        for constraint in group_constraints {
            if constraint.operator == ConstraintOperator::DistinctHosts {
                distinct_hosts_group |= distinct_hosts_enabled(&constraint.value);
            } else {
                constraints.push(CompiledRule::from_constraint(constraint));
            }
        }
        let matches_every_zone = job.datacenters.is_empty() || job.datacenters.iter().any(|pattern| pattern == "*");
        let zones = if matches_every_zone {
            ZoneFilter::Any
        } else {
            // A pattern that does not compile (refused by `Job::validate`
            // since, but a job may predate the check) matches no zone.
            // Servers refuse more than the limit (`Job::validate`); the cap
            // keeps a job registered before that check from costing a
            // compiled pattern per entry at every evaluation.
            ZoneFilter::Globs(
                job.datacenters
                    .iter()
                    .take(drover_types::validate::limits::MAX_DATACENTERS)
                    .filter_map(|pattern| Glob::new(pattern).ok())
                    .collect(),
            )
        };
        let affinities: Vec<(CompiledRule, f64)> = job
            .affinities
            .iter()
            .chain(group.affinities.iter())
            .map(|affinity| {
                let rule = CompiledRule::new(&affinity.attribute, affinity.operator, &affinity.value);
                (rule, f64::from(affinity.weight))
            })
            .collect();
        let affinity_weight_sum = affinities.iter().map(|(_, weight)| weight.abs()).sum();
        GroupRules { constraints, zones, distinct_hosts_job, distinct_hosts_group, affinities, affinity_weight_sum }
    }

    /// The checks that do not depend on the node's readiness: zone and
    /// constraints. Used for existing allocations, which stay on ineligible
    /// or draining nodes.
    pub(crate) fn check_static(&self, node: &Node, cache: &mut PatternCache) -> NodeVerdict {
        if let ZoneFilter::Globs(patterns) = &self.zones
            && !patterns.iter().any(|pattern| pattern.matches(&node.zone))
        {
            return NodeVerdict::WrongZone;
        }
        for (index, rule) in self.constraints.iter().enumerate() {
            if !rule.matches(node, cache) {
                return NodeVerdict::Filtered(index);
            }
        }
        NodeVerdict::Feasible
    }

    /// Every check a new placement needs, readiness first.
    pub(crate) fn check_for_placement(&self, node: &Node, cache: &mut PatternCache) -> NodeVerdict {
        if !node.is_schedulable() {
            return NodeVerdict::NotReady;
        }
        self.check_static(node, cache)
    }

    /// Counts a verdict in placement metrics (the node was looked at).
    pub(crate) fn record(&self, verdict: NodeVerdict, metrics: &mut PlacementFailure) {
        metrics.nodes_evaluated += 1;
        match verdict {
            NodeVerdict::Feasible => {}
            NodeVerdict::NotReady => metrics.nodes_not_ready += 1,
            NodeVerdict::WrongZone => metrics.nodes_wrong_zone += 1,
            NodeVerdict::Filtered(index) => {
                let label = self.constraints.get(index).map_or("constraint", |rule| rule.label.as_str());
                *metrics.constraint_filtered.entry(label.to_owned()).or_insert(0) += 1;
            }
        }
    }

    /// Whether the group has affinities (then every candidate gets an
    /// affinity score).
    pub(crate) fn has_affinities(&self) -> bool {
        !self.affinities.is_empty()
    }

    /// Nomad's node affinity score: the weights of the matching affinities
    /// over the sum of all absolute weights, in `-1..=1`.
    pub(crate) fn affinity_score(&self, node: &Node, cache: &mut PatternCache) -> f64 {
        if self.affinity_weight_sum <= 0.0 {
            return 0.0;
        }
        let matched: f64 =
            self.affinities.iter().filter(|(rule, _)| rule.matches(node, cache)).map(|(_, weight)| weight).sum();
        matched / self.affinity_weight_sum
    }
}

/// The zones a job may run in.
#[derive(Debug)]
enum ZoneFilter {
    /// No datacenters, or `*`.
    Any,
    /// Zones matching one of these globs.
    Globs(Vec<Glob>),
}

/// `distinct_hosts` is on unless its value says `false`, as in Nomad.
fn distinct_hosts_enabled(value: &str) -> bool {
    !value.trim().eq_ignore_ascii_case("false")
}
