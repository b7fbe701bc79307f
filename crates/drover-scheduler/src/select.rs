//! Selection: choosing the node for one placement of a service or batch
//! group, the way Nomad's stack does.
//!
//! - The evaluation's node list is shuffled once; each group walks it from
//!   a random offset and keeps its position between placements, so
//!   consecutive placements look at different nodes.
//! - Feasibility is computed lazily, once per node and group, and cached
//!   (with the node's affinity score and spread values).
//! - Only `limit` nodes that are feasible and have room are scored: 2 for
//!   batch jobs, `max(2, ceil(log2(nodes)))` for service jobs (Nomad's
//!   limit iterator); every feasible node when the group has affinities or
//!   spreads, as in Nomad. Nodes that already hold an allocation of the group are
//!   set aside (up to [`MAX_SKIP`] of them) and only scored when too few
//!   other nodes were found.
//! - When no node has room, the scan has visited every node, so later
//!   placements of the group with the same ask fail at once instead of
//!   scanning again.
//!
//! A placement therefore costs `O(limit)` lookups in the common case and
//! never depends on the number of allocations in the cluster. A group that
//! asks for ports also looks at the allocations of each node that has room
//! (see [`crate::ports`]).

use std::collections::BTreeMap;

use drover_types::{Job, JobType, NetworkSpec, Node, NodeId, PlacementFailure, Resources, TaskGroup};
use rand::Rng;
use rand::rngs::StdRng;

use crate::constraint::PatternCache;
use crate::feasibility::{DISTINCT_HOSTS_LABEL, GroupRules, NodeVerdict};
use crate::ledger::Ledger;
use crate::ports::assign_ports;
use crate::rank::{MISSING_VALUE, SpreadScorer, anti_affinity_score, binpack_score};
use crate::view::ClusterView;

/// At most this many nodes holding allocations of the group are set aside
/// per placement (Nomad's `maxSkip`).
pub(crate) const MAX_SKIP: usize = 3;

/// How many fitting candidates are scored per placement.
pub(crate) fn candidate_limit(job_type: JobType, num_ready_nodes: usize) -> usize {
    match job_type {
        JobType::Batch | JobType::SysBatch => 2,
        JobType::Service | JobType::System => {
            let ceil_log2 = if num_ready_nodes <= 1 {
                0
            } else {
                usize::try_from(usize::BITS - (num_ready_nodes - 1).leading_zeros()).unwrap_or(usize::MAX)
            };
            ceil_log2.max(2)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feasibility {
    Unknown,
    Infeasible,
    Feasible,
}

/// Options of one placement.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PlacementOptions<'r> {
    /// A node to penalise (where the allocation being rescheduled failed).
    pub(crate) avoid_node: Option<&'r NodeId>,
    /// The placement comes with resources freed just for it (a destructive
    /// update), so an earlier failure of the group does not predict its
    /// failure.
    pub(crate) has_own_credit: bool,
}

/// Resources and distinct-host rejections seen by one scan.
#[derive(Debug, Default)]
struct ScanTally {
    num_exhausted: u32,
    num_cpu_exhausted: u32,
    num_memory_exhausted: u32,
    num_distinct_hosts_filtered: u32,
    /// Nodes without the group's ports, per reason.
    ports_exhausted: BTreeMap<String, u32>,
}

/// The placement machinery of one task group for one evaluation.
#[derive(Debug)]
pub(crate) struct GroupStack<'a> {
    rules: GroupRules,
    spreads: SpreadScorer,
    group_name: &'a str,
    ask: Resources,
    /// The ports the group asks for, when it asks for any.
    network: Option<&'a NetworkSpec>,
    limit: usize,
    /// Position in the evaluation's node list where the next scan starts.
    cursor: usize,
    feasibility: Vec<Feasibility>,
    /// Affinity score per node position (empty without affinities).
    affinity_scores: Vec<f64>,
    /// Spread value ids, `num_spreads` per node position (empty without
    /// spreads).
    spread_value_ids: Vec<u32>,
    metrics: PlacementFailure,
    /// A scan already found no room for this group's ask.
    failed_once: bool,
    /// The exhaustion counters were filled by a failing scan.
    exhaustion_recorded: bool,
}

impl<'a> GroupStack<'a> {
    /// A stack over `num_nodes` nodes (the evaluation's shuffled list), of
    /// which `num_ready_nodes` are schedulable.
    pub(crate) fn new<R: Rng + ?Sized>(
        rules: GroupRules,
        job: &Job,
        group: &'a TaskGroup,
        num_nodes: usize,
        num_ready_nodes: usize,
        rng: &mut R,
    ) -> GroupStack<'a> {
        // A group inherits the job's spreads, as in Nomad.
        let spreads = SpreadScorer::new(job.spreads.iter().chain(group.spreads.iter()), group.count);
        let num_spreads = spreads.num_spreads();
        let affinity_len = if rules.has_affinities() { num_nodes } else { 0 };
        // With affinities or spreads every feasible node is scored, as in
        // Nomad: a preference cannot be honoured by looking at a few nodes.
        let limit = if rules.has_affinities() || !spreads.is_empty() {
            usize::MAX
        } else {
            candidate_limit(job.job_type, num_ready_nodes)
        };
        GroupStack {
            rules,
            spreads,
            group_name: &group.name,
            ask: group.resources(),
            network: group.network.as_ref().filter(|network| !network.is_empty()),
            limit,
            cursor: if num_nodes == 0 { 0 } else { rng.random_range(0..num_nodes) },
            feasibility: vec![Feasibility::Unknown; num_nodes],
            affinity_scores: vec![0.0; affinity_len],
            spread_value_ids: vec![MISSING_VALUE; num_nodes * num_spreads],
            metrics: PlacementFailure::default(),
            failed_once: false,
            exhaustion_recorded: false,
        }
    }

    /// Whether the group has spreads (existing allocations must then be
    /// counted with [`count_existing`](Self::count_existing)).
    pub(crate) fn has_spreads(&self) -> bool {
        !self.spreads.is_empty()
    }

    /// Counts an existing allocation of the group on `node` for spreads.
    pub(crate) fn count_existing(&mut self, node: &Node) {
        self.adjust_spread_count(node, true);
    }

    /// Stops counting an allocation on `node` for spreads (a destructive
    /// update is about to replace it); `count_existing` takes it back.
    pub(crate) fn forget_existing(&mut self, node: &Node) {
        self.adjust_spread_count(node, false);
    }

    fn adjust_spread_count(&mut self, node: &Node, add: bool) {
        if self.spreads.is_empty() {
            return;
        }
        let mut value_ids = Vec::with_capacity(self.spreads.num_spreads());
        self.spreads.value_ids_of(node, &mut value_ids);
        if add {
            self.spreads.add_alloc(&value_ids);
        } else {
            self.spreads.remove_alloc(&value_ids);
        }
    }

    /// Chooses a node for one allocation, or `None` (counted as unplaced).
    pub(crate) fn select<V: ClusterView + ?Sized>(
        &mut self,
        nodes: &[&'a Node],
        view: &V,
        ledger: &Ledger<'a>,
        cache: &mut PatternCache,
        options: PlacementOptions<'_>,
    ) -> Option<&'a Node> {
        let num_nodes = nodes.len();
        debug_assert_eq!(num_nodes, self.feasibility.len(), "the stack was built for this node list");
        if num_nodes == 0 || (self.failed_once && !options.has_own_credit) {
            self.metrics.num_unplaced += 1;
            return None;
        }
        let mut best: Option<(f64, usize)> = None;
        let mut num_found = 0;
        let mut skipped: Vec<(f64, usize)> = Vec::with_capacity(MAX_SKIP);
        let mut tally = ScanTally::default();
        let mut num_steps = 0;
        for step in 0..num_nodes {
            num_steps = step + 1;
            let position = (self.cursor + step) % num_nodes;
            let node = nodes[position];
            if !self.is_feasible(position, node, cache) {
                continue;
            }
            let violates_distinct_hosts = (self.rules.distinct_hosts_job && ledger.num_job_allocs(&node.id) > 0)
                || (self.rules.distinct_hosts_group && ledger.num_group_allocs(self.group_name, &node.id) > 0);
            if violates_distinct_hosts {
                tally.num_distinct_hosts_filtered += 1;
                continue;
            }
            let used_after = ledger.used_on(view, &node.id) + self.ask;
            if !used_after.fits_in(&node.resources) {
                tally.num_exhausted += 1;
                if used_after.cpu_mhz > node.resources.cpu_mhz {
                    tally.num_cpu_exhausted += 1;
                }
                if used_after.memory_mb > node.resources.memory_mb {
                    tally.num_memory_exhausted += 1;
                }
                continue;
            }
            if let Some(network) = self.network {
                let used_ports = ledger.ports_used_on(view, &node.id);
                if let Err(shortage) = assign_ports::<StdRng>(network, node, &used_ports, None) {
                    *tally.ports_exhausted.entry(shortage.describe()).or_insert(0) += 1;
                    continue;
                }
            }
            let num_neighbours = ledger.num_group_allocs(self.group_name, &node.id);
            let score = self.score(position, node, &used_after, num_neighbours, options.avoid_node);
            if num_neighbours > 0 && skipped.len() < MAX_SKIP {
                skipped.push((score, position));
                continue;
            }
            consider(&mut best, score, position);
            num_found += 1;
            if num_found >= self.limit {
                break;
            }
        }
        if num_found < self.limit {
            for (score, position) in skipped {
                consider(&mut best, score, position);
            }
        }
        self.cursor = (self.cursor + num_steps) % num_nodes;
        let Some((_, chosen_position)) = best else {
            self.record_failure(&tally);
            return None;
        };
        if !self.spreads.is_empty() {
            let num_spreads = self.spreads.num_spreads();
            let start = chosen_position * num_spreads;
            let value_ids: Vec<u32> = self.spread_value_ids[start..start + num_spreads].to_vec();
            self.spreads.add_alloc(&value_ids);
        }
        Some(nodes[chosen_position])
    }

    /// The placement metrics, when at least one placement failed.
    pub(crate) fn into_failure(self) -> Option<PlacementFailure> {
        (self.metrics.num_unplaced > 0).then_some(self.metrics)
    }

    fn record_failure(&mut self, tally: &ScanTally) {
        self.failed_once = true;
        self.metrics.num_unplaced += 1;
        if self.exhaustion_recorded {
            return;
        }
        // The scan visited every node: these counters describe the cluster.
        self.exhaustion_recorded = true;
        self.metrics.nodes_exhausted += tally.num_exhausted;
        if tally.num_cpu_exhausted > 0 {
            *self.metrics.dimension_exhausted.entry("cpu".to_owned()).or_insert(0) += tally.num_cpu_exhausted;
        }
        if tally.num_memory_exhausted > 0 {
            *self.metrics.dimension_exhausted.entry("memory".to_owned()).or_insert(0) += tally.num_memory_exhausted;
        }
        if tally.num_distinct_hosts_filtered > 0 {
            *self.metrics.constraint_filtered.entry(DISTINCT_HOSTS_LABEL.to_owned()).or_insert(0) +=
                tally.num_distinct_hosts_filtered;
        }
        for (reason, count) in &tally.ports_exhausted {
            *self.metrics.ports_exhausted.entry(reason.clone()).or_insert(0) += count;
        }
    }

    fn is_feasible(&mut self, position: usize, node: &Node, cache: &mut PatternCache) -> bool {
        match self.feasibility[position] {
            Feasibility::Feasible => return true,
            Feasibility::Infeasible => return false,
            Feasibility::Unknown => {}
        }
        let verdict = self.rules.check_for_placement(node, cache);
        self.rules.record(verdict, &mut self.metrics);
        if verdict != NodeVerdict::Feasible {
            self.feasibility[position] = Feasibility::Infeasible;
            return false;
        }
        self.feasibility[position] = Feasibility::Feasible;
        if self.rules.has_affinities() {
            self.affinity_scores[position] = self.rules.affinity_score(node, cache);
        }
        if !self.spreads.is_empty() {
            let num_spreads = self.spreads.num_spreads();
            let mut value_ids = Vec::with_capacity(num_spreads);
            self.spreads.value_ids_of(node, &mut value_ids);
            self.spread_value_ids[position * num_spreads..(position + 1) * num_spreads].copy_from_slice(&value_ids);
        }
        true
    }

    fn score(
        &self,
        position: usize,
        node: &Node,
        used_after: &Resources,
        num_neighbours: u32,
        avoid_node: Option<&NodeId>,
    ) -> f64 {
        let mut sum = binpack_score(&node.resources, used_after) + anti_affinity_score(num_neighbours);
        let mut num_components = 2.0;
        if let Some(avoided) = avoid_node {
            if &node.id == avoided {
                sum -= 1.0;
            }
            num_components += 1.0;
        }
        if self.rules.has_affinities() {
            sum += self.affinity_scores[position];
            num_components += 1.0;
        }
        if !self.spreads.is_empty() {
            let num_spreads = self.spreads.num_spreads();
            sum += self.spreads.score(&self.spread_value_ids[position * num_spreads..(position + 1) * num_spreads]);
            num_components += 1.0;
        }
        sum / num_components
    }
}

fn consider(best: &mut Option<(f64, usize)>, score: f64, position: usize) {
    if best.is_none_or(|(best_score, _)| score > best_score) {
        *best = Some((score, position));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_nomad() {
        let cases = [
            (JobType::Batch, 10_000, 2),
            (JobType::Service, 0, 2),
            (JobType::Service, 1, 2),
            (JobType::Service, 4, 2),
            (JobType::Service, 5, 3),
            (JobType::Service, 1000, 10),
            (JobType::Service, 1024, 10),
            (JobType::Service, 1025, 11),
            (JobType::Service, 10_000, 14),
        ];
        for (job_type, num_nodes, expected) in cases {
            assert_eq!(candidate_limit(job_type, num_nodes), expected, "{job_type} with {num_nodes} nodes");
        }
    }
}
