//! Ranking: how good a feasible node is for one more allocation.
//!
//! Every candidate gets a few component scores and its final score is their
//! average, as in Nomad:
//!
//! - **bin-packing** (always): Nomad's `ScoreFitBinPack`, which prefers
//!   fuller nodes so that whole nodes stay free for large allocations,
//!   normalised to `0..=1`;
//! - **job anti-affinity** (service and batch): minus the number of live
//!   allocations of the same group already on the node, so that a group's
//!   allocations spread over nodes (a strong penalty: one neighbour costs
//!   as much as the whole bin-packing range);
//! - **reschedule penalty** (replacing a failed allocation): -1 on the node
//!   it failed on;
//! - **affinity** (when the job or group has affinities): the matching
//!   weights over the sum of all weights, `-1..=1`;
//! - **spread** (when the job or group has spreads): Nomad's spread boost,
//!   even or towards target percentages.
//!
//! Unlike Nomad, a component that applies to a placement is averaged in for
//! every candidate of that placement (as 0 when neutral), so that the
//! candidates' final scores are comparable.

use std::collections::HashMap;

use drover_types::{Node, Resources, Spread};

use crate::constraint::NodeAttribute;

/// The value id of a node that does not have the spread attribute.
pub(crate) const MISSING_VALUE: u32 = u32::MAX;

/// Nomad's bin-packing score of a node whose usage would become
/// `used_after`, normalised to `0..=1` (1 = full).
pub(crate) fn binpack_score(capacity: &Resources, used_after: &Resources) -> f64 {
    let free_cpu = free_fraction(capacity.cpu_mhz, used_after.cpu_mhz);
    let free_memory = free_fraction(capacity.memory_mb, used_after.memory_mb);
    let total = 10_f64.powf(free_cpu) + 10_f64.powf(free_memory);
    (20.0 - total).clamp(0.0, 18.0) / 18.0
}

fn free_fraction(capacity: u64, used: u64) -> f64 {
    if capacity == 0 {
        return 0.0;
    }
    1.0 - (used as f64 / capacity as f64).min(1.0)
}

/// The job anti-affinity component for a node holding `num_neighbours`
/// live allocations of the same group.
pub(crate) fn anti_affinity_score(num_neighbours: u32) -> f64 {
    -f64::from(num_neighbours)
}

/// Spread scoring for one task group: the count of its allocations per
/// attribute value, and how that compares to the wanted distribution.
#[derive(Debug)]
pub(crate) struct SpreadScorer {
    trackers: Vec<SpreadTracker>,
}

#[derive(Debug)]
struct SpreadTracker {
    attribute: NodeAttribute,
    /// This spread's weight over the sum of the weights of all spreads.
    relative_weight: f64,
    /// Interned attribute values.
    value_ids: HashMap<String, u32>,
    /// Live allocations of the group per value id.
    counts: Vec<u32>,
    /// Wanted allocations per value id (targets only); `None` for a value
    /// without a target.
    desired: Vec<Option<f64>>,
    /// Wanted allocations on values without a target (the rest of 100 %).
    implicit_desired: Option<f64>,
    /// Whether targets were given (else the spread is even).
    has_targets: bool,
}

impl SpreadScorer {
    /// A scorer for `spreads`, for a group that wants `desired_total`
    /// allocations.
    pub(crate) fn new<'s>(spreads: impl Iterator<Item = &'s Spread>, desired_total: u32) -> SpreadScorer {
        let spreads: Vec<&Spread> = spreads.collect();
        let weight_sum: f64 = spreads.iter().map(|spread| f64::from(spread.weight)).sum();
        let trackers = spreads
            .iter()
            .map(|spread| {
                let mut tracker = SpreadTracker {
                    attribute: NodeAttribute::new(&spread.attribute),
                    relative_weight: if weight_sum > 0.0 { f64::from(spread.weight) / weight_sum } else { 0.0 },
                    value_ids: HashMap::new(),
                    counts: Vec::new(),
                    desired: Vec::new(),
                    implicit_desired: None,
                    has_targets: !spread.targets.is_empty(),
                };
                let total = f64::from(desired_total);
                let mut desired_sum = 0.0;
                for target in &spread.targets {
                    let value_id = tracker.intern(&target.value);
                    let wanted = f64::from(target.percent) / 100.0 * total;
                    tracker.desired[value_id as usize] = Some(wanted);
                    desired_sum += wanted;
                }
                if tracker.has_targets && desired_sum < total {
                    tracker.implicit_desired = Some(total - desired_sum);
                }
                tracker
            })
            .collect();
        SpreadScorer { trackers }
    }

    /// Whether the group has no spreads.
    pub(crate) fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    /// How many spreads the group has (value ids per node).
    pub(crate) fn num_spreads(&self) -> usize {
        self.trackers.len()
    }

    /// Appends the node's value id for every spread to `output`.
    pub(crate) fn value_ids_of(&mut self, node: &Node, output: &mut Vec<u32>) {
        for tracker in &mut self.trackers {
            let value_id = match tracker.attribute.resolve(node).map(std::borrow::Cow::into_owned) {
                Some(value) => tracker.intern(&value),
                None => MISSING_VALUE,
            };
            output.push(value_id);
        }
    }

    /// Counts one more allocation on a node with these value ids.
    pub(crate) fn add_alloc(&mut self, value_ids: &[u32]) {
        debug_assert_eq!(value_ids.len(), self.trackers.len(), "one value id per spread");
        for (tracker, value_id) in self.trackers.iter_mut().zip(value_ids) {
            if let Some(count) = tracker.counts.get_mut(*value_id as usize) {
                *count += 1;
            }
        }
    }

    /// Counts one allocation less on a node with these value ids.
    pub(crate) fn remove_alloc(&mut self, value_ids: &[u32]) {
        for (tracker, value_id) in self.trackers.iter_mut().zip(value_ids) {
            if let Some(count) = tracker.counts.get_mut(*value_id as usize) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// The spread component for one more allocation on a node with these
    /// value ids.
    pub(crate) fn score(&self, value_ids: &[u32]) -> f64 {
        self.trackers
            .iter()
            .zip(value_ids)
            .map(|(tracker, value_id)| {
                if *value_id == MISSING_VALUE {
                    // Maximum penalty, as in Nomad.
                    return -1.0;
                }
                let boost =
                    if tracker.has_targets { tracker.target_boost(*value_id) } else { tracker.even_boost(*value_id) };
                boost * tracker.relative_weight
            })
            .sum()
    }
}

impl SpreadTracker {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(value_id) = self.value_ids.get(value) {
            return *value_id;
        }
        let value_id = u32::try_from(self.counts.len()).unwrap_or(MISSING_VALUE - 1);
        self.value_ids.insert(value.to_owned(), value_id);
        self.counts.push(0);
        self.desired.push(None);
        value_id
    }

    /// Positive while the value has fewer allocations than its target.
    fn target_boost(&self, value_id: u32) -> f64 {
        let index = value_id as usize;
        let Some(wanted) = self.desired.get(index).copied().flatten().or(self.implicit_desired) else {
            return -1.0;
        };
        if wanted <= 0.0 {
            return -1.0;
        }
        let num_used_with_this = f64::from(self.counts.get(index).copied().unwrap_or(0)) + 1.0;
        (wanted - num_used_with_this) / wanted
    }

    /// Nomad's `evenSpreadScoreBoost`: +1 for a value at the minimum count
    /// (or without allocations), negative above it, -1 when all are even.
    fn even_boost(&self, value_id: u32) -> f64 {
        let mut used_counts = self.counts.iter().copied().filter(|count| *count > 0);
        let Some(first) = used_counts.next() else {
            return 0.0;
        };
        let (min_count, max_count) =
            used_counts.fold((first, first), |(low, high), count| (low.min(count), high.max(count)));
        let current = self.counts.get(value_id as usize).copied().unwrap_or(0);
        if current != min_count {
            return (f64::from(min_count) - f64::from(current)) / f64::from(min_count);
        }
        if min_count == max_count { -1.0 } else { 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use drover_types::SpreadTarget;

    use super::*;

    #[test]
    fn binpack_prefers_fuller_nodes() {
        let capacity = Resources { cpu_mhz: 1000, memory_mb: 1000 };
        let empty = binpack_score(&capacity, &Resources { cpu_mhz: 10, memory_mb: 10 });
        let half = binpack_score(&capacity, &Resources { cpu_mhz: 500, memory_mb: 500 });
        let full = binpack_score(&capacity, &capacity);
        assert!(empty < half && half < full, "{empty} {half} {full}");
        assert!((0.0..=1.0).contains(&empty) && (full - 1.0).abs() < 1e-9);
    }

    #[test]
    fn even_spread_prefers_the_least_used_value() {
        let spread = Spread { attribute: "${node.zone}".into(), weight: 50, targets: Vec::new() };
        let mut scorer = SpreadScorer::new(std::iter::once(&spread), 6);
        let zone_a = [scorer.trackers[0].intern("a")];
        let zone_b = [scorer.trackers[0].intern("b")];
        assert_eq!(scorer.score(&zone_a), 0.0, "nothing placed yet");
        scorer.add_alloc(&zone_a);
        assert!(scorer.score(&zone_b) > scorer.score(&zone_a));
        scorer.add_alloc(&zone_b);
        assert_eq!(scorer.score(&zone_a), -1.0, "even distribution");
        assert_eq!(scorer.score(&[MISSING_VALUE]), -1.0);
    }

    #[test]
    fn target_spread_fills_values_towards_their_share() {
        let spread = Spread {
            attribute: "${node.zone}".into(),
            weight: 100,
            targets: vec![SpreadTarget { value: "a".into(), percent: 75 }],
        };
        let mut scorer = SpreadScorer::new(std::iter::once(&spread), 4);
        let zone_a = [scorer.trackers[0].intern("a")];
        let zone_b = [scorer.trackers[0].intern("b")];
        // a wants 3 of 4, every other zone shares the remaining 1.
        assert!(scorer.score(&zone_a) > scorer.score(&zone_b));
        scorer.add_alloc(&zone_b);
        assert!(scorer.score(&zone_a) > scorer.score(&zone_b));
        scorer.add_alloc(&zone_a);
        scorer.add_alloc(&zone_a);
        scorer.add_alloc(&zone_a);
        assert!(scorer.score(&zone_a) < 0.0);
    }
}
