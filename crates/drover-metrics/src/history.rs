//! A node's recent usage on the server: a bounded ring of one-minute points.
//!
//! Agents send a [`NodeSample`] every 10 s; keeping them all for a day would
//! be 8640 samples with their disk and task lists per node. The history keeps
//! instead one fixed-size [`MinutePoint`] per minute (mean CPU, the peaks of
//! memory and disk, the last network counters), at most `capacity` of them,
//! plus the latest raw sample for `drover node status`.
//!
//! ```text
//!  push(sample) ──▶ open minute (accumulating) ──minute changes──▶ ring of closed points
//!                                                                  oldest dropped when full
//! ```
//!
//! Memory per node, with the default capacity of 1440 points (24 h):
//! `1440 × size_of::<MinutePoint>()` = 1440 × 64 B = 92,160 B (90 KiB),
//! allocated once when the history is created, plus the latest sample (about
//! 170 B plus 40–80 B per disk, interface and task) and the open minute (a
//! point and a sum). [`History::approximate_bytes`] gives the figure for a
//! live history.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::sample::NodeSample;

/// Minutes kept by [`History::default`]: 24 hours.
pub const DEFAULT_HISTORY_MINUTES: usize = 24 * 60;

/// Milliseconds in a minute: the resolution of the history.
pub const MINUTE_MS: i64 = 60_000;

/// One minute of one node, aggregated from the samples received in it.
///
/// Fixed-size (no strings, no lists) so that the ring's memory is known in
/// advance; the per-mount and per-task detail lives only in the latest
/// sample.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MinutePoint {
    /// Start of the minute, in milliseconds since the Unix epoch (a multiple
    /// of [`MINUTE_MS`]).
    pub minute_ms: i64,
    /// Highest memory in use.
    pub memory_used_max: u64,
    /// Highest swap in use.
    pub swap_used_max: u64,
    /// Bytes received on all interfaces, as of the last sample of the minute
    /// (a counter since boot: the rate is the difference between two points).
    pub net_rx_bytes: u64,
    /// Bytes sent on all interfaces, as of the last sample of the minute.
    pub net_tx_bytes: u64,
    /// Mean CPU usage over the samples, percent of the machine.
    pub cpu_percent_mean: f32,
    /// Highest CPU usage of one sample.
    pub cpu_percent_max: f32,
    /// Highest one-minute load average.
    pub load1_max: f32,
    /// Highest used percentage of the fullest disk.
    pub disk_used_percent_max: f32,
    /// Highest process count.
    pub processes_max: u32,
    /// How many samples the point aggregates (saturates at `u16::MAX`).
    pub samples: u16,
}

impl MinutePoint {
    /// A point for the minute of `sample`, holding only that sample.
    fn first(minute_ms: i64, sample: &NodeSample) -> Self {
        let (rx, tx) = net_totals(sample);
        Self {
            minute_ms,
            memory_used_max: sample.memory_used,
            swap_used_max: sample.swap_used,
            net_rx_bytes: rx,
            net_tx_bytes: tx,
            cpu_percent_mean: sample.cpu_percent,
            cpu_percent_max: sample.cpu_percent,
            load1_max: sample.load1,
            disk_used_percent_max: fullest_disk_percent(sample),
            processes_max: sample.processes_total,
            samples: 1,
        }
    }
}

/// The point being filled: a [`MinutePoint`] and the CPU sum behind its mean.
#[derive(Debug, Clone, Copy)]
struct OpenMinute {
    point: MinutePoint,
    cpu_percent_sum: f64,
    /// Samples in the sum; not `point.samples`, which saturates.
    sample_count: u32,
}

impl OpenMinute {
    fn new(minute_ms: i64, sample: &NodeSample) -> Self {
        Self {
            point: MinutePoint::first(minute_ms, sample),
            cpu_percent_sum: f64::from(sample.cpu_percent),
            sample_count: 1,
        }
    }

    fn add(&mut self, sample: &NodeSample) {
        let point = &mut self.point;
        self.cpu_percent_sum += f64::from(sample.cpu_percent);
        self.sample_count = self.sample_count.saturating_add(1);
        point.cpu_percent_mean = (self.cpu_percent_sum / f64::from(self.sample_count)) as f32;
        point.cpu_percent_max = point.cpu_percent_max.max(sample.cpu_percent);
        point.load1_max = point.load1_max.max(sample.load1);
        point.memory_used_max = point.memory_used_max.max(sample.memory_used);
        point.swap_used_max = point.swap_used_max.max(sample.swap_used);
        point.disk_used_percent_max = point.disk_used_percent_max.max(fullest_disk_percent(sample));
        point.processes_max = point.processes_max.max(sample.processes_total);
        (point.net_rx_bytes, point.net_tx_bytes) = net_totals(sample);
        point.samples = point.samples.saturating_add(1);
    }
}

/// One node's recent usage: the latest raw sample and up to `capacity`
/// one-minute points, oldest first.
///
/// Samples are expected in time order (the agent session is ordered). A
/// sample older than the minute being filled is folded into that minute
/// rather than reordering the ring; a server that does not trust agent
/// clocks stamps `time_ms` with its own receive time before pushing.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    closed: VecDeque<MinutePoint>,
    open: Option<OpenMinute>,
    latest: Option<NodeSample>,
}

impl Default for History {
    /// A history of [`DEFAULT_HISTORY_MINUTES`] (24 h).
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY_MINUTES)
    }
}

impl History {
    /// An empty history keeping `capacity_minutes` closed points (at least
    /// one) besides the minute being filled. The ring is allocated now, so
    /// its memory does not grow later.
    pub fn new(capacity_minutes: usize) -> Self {
        let capacity = capacity_minutes.max(1);
        Self { capacity, closed: VecDeque::with_capacity(capacity), open: None, latest: None }
    }

    /// Records a sample: it becomes the latest, and joins the point of its
    /// minute. A sample in a later minute closes the open point into the
    /// ring, dropping the oldest point when the ring is full.
    pub fn push(&mut self, sample: NodeSample) {
        let minute_ms = sample.time_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        match &mut self.open {
            Some(open) if minute_ms <= open.point.minute_ms => open.add(&sample),
            _ => {
                let finished = self.open.replace(OpenMinute::new(minute_ms, &sample));
                if let Some(finished) = finished {
                    self.close(finished.point);
                }
            }
        }
        self.latest = Some(sample);
    }

    fn close(&mut self, point: MinutePoint) {
        if self.closed.len() == self.capacity {
            self.closed.pop_front();
        }
        self.closed.push_back(point);
        debug_assert!(self.closed.len() <= self.capacity);
    }

    /// The last sample pushed.
    pub fn latest(&self) -> Option<&NodeSample> {
        self.latest.as_ref()
    }

    /// The points whose minute starts in `from_ms..to_ms`, oldest first,
    /// including the minute still being filled (its figures cover the
    /// samples so far).
    pub fn range(&self, from_ms: i64, to_ms: i64) -> Vec<MinutePoint> {
        let in_range = |point: &MinutePoint| (from_ms..to_ms).contains(&point.minute_ms);
        // The ring is sorted by minute: skip to the first point in range.
        let start = self.closed.partition_point(|point| point.minute_ms < from_ms);
        let mut points =
            self.closed.range(start..).take_while(|point| point.minute_ms < to_ms).copied().collect::<Vec<_>>();
        points.extend(self.open.map(|open| open.point).filter(in_range));
        points
    }

    /// Every point, oldest first, including the minute being filled.
    pub fn points(&self) -> Vec<MinutePoint> {
        self.range(i64::MIN, i64::MAX)
    }

    /// Closed points held (not counting the minute being filled).
    pub fn len(&self) -> usize {
        self.closed.len()
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.latest.is_none()
    }

    /// The most closed points kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes this history holds: the ring's allocation, the open minute and
    /// the latest sample with its lists (an estimate of the heap use of the
    /// strings, not counting allocator overhead).
    pub fn approximate_bytes(&self) -> usize {
        let ring = self.closed.capacity() * size_of::<MinutePoint>();
        let latest = self.latest.as_ref().map_or(0, sample_bytes);
        size_of::<Self>() + ring + latest
    }
}

/// Heap bytes of a sample's lists and strings, roughly.
fn sample_bytes(sample: &NodeSample) -> usize {
    let disks =
        sample.disks.iter().map(|disk| size_of_val(disk) + disk.mount.len() + disk.fs_type.len()).sum::<usize>();
    let net = sample.net.iter().map(|net| size_of_val(net) + net.interface.len()).sum::<usize>();
    let tasks =
        sample.tasks.iter().map(|task| size_of_val(task) + task.alloc_id.len() + task.task.len()).sum::<usize>();
    size_of::<NodeSample>() + disks + net + tasks
}

fn fullest_disk_percent(sample: &NodeSample) -> f32 {
    sample.fullest_disk().map_or(0.0, |disk| disk.used_percent())
}

fn net_totals(sample: &NodeSample) -> (u64, u64) {
    sample.net.iter().fold((0, 0), |(rx, tx), net| (rx.saturating_add(net.rx_bytes), tx.saturating_add(net.tx_bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sample::{DiskSample, NetSample};

    fn sample(time_ms: i64, cpu_percent: f32, memory_used: u64) -> NodeSample {
        NodeSample { time_ms, cpu_percent, memory_used, memory_total: 1000, ..NodeSample::default() }
    }

    #[test]
    fn aggregates_one_minute() {
        let mut history = History::new(10);
        let mut first = sample(60_000, 10.0, 100);
        first.disks = vec![DiskSample { mount: "/".into(), used: 30, avail: 70, total: 100, ..DiskSample::default() }];
        first.net = vec![NetSample { interface: "eth0".into(), rx_bytes: 5, tx_bytes: 6, ..NetSample::default() }];
        first.load1 = 2.0;
        history.push(first);
        let mut second = sample(70_000, 30.0, 300);
        second.disks = vec![DiskSample { mount: "/".into(), used: 20, avail: 80, total: 100, ..DiskSample::default() }];
        second.net = vec![
            NetSample { interface: "eth0".into(), rx_bytes: 50, tx_bytes: 60, ..NetSample::default() },
            NetSample { interface: "eth1".into(), rx_bytes: 1, tx_bytes: 2, ..NetSample::default() },
        ];
        second.load1 = 1.0;
        history.push(second);
        history.push(sample(119_999, 20.0, 200));

        assert_eq!(history.len(), 0, "the minute is still open");
        let points = history.points();
        assert_eq!(
            points,
            vec![MinutePoint {
                minute_ms: 60_000,
                memory_used_max: 300,
                swap_used_max: 0,
                net_rx_bytes: 0,
                net_tx_bytes: 0,
                cpu_percent_mean: 20.0,
                cpu_percent_max: 30.0,
                load1_max: 2.0,
                disk_used_percent_max: 30.0,
                processes_max: 0,
                samples: 3,
            }],
            "the last sample had no network: counters are the last ones seen"
        );
        assert_eq!(history.latest().map(|latest| latest.time_ms), Some(119_999));

        history.push(sample(120_000, 50.0, 10));
        assert_eq!(history.len(), 1);
        let points = history.points();
        assert_eq!(
            points.iter().map(|point| (point.minute_ms, point.samples)).collect::<Vec<_>>(),
            [(60_000, 3), (120_000, 1)]
        );
    }

    #[test]
    fn wraps_around_keeping_the_newest() {
        let capacity = 5;
        let mut history = History::new(capacity);
        // Twelve minutes with a gap (minute 8 missing), two samples each.
        for minute in (0..13).filter(|minute| *minute != 8) {
            for second in [0, 30] {
                history.push(sample(minute * MINUTE_MS + second * 1000, minute as f32, minute as u64));
            }
        }
        assert_eq!(history.len(), capacity);
        let minutes = history.points().iter().map(|point| point.minute_ms / MINUTE_MS).collect::<Vec<_>>();
        assert_eq!(minutes, [6, 7, 9, 10, 11, 12], "five closed points and the open minute");
        assert!(history.points().iter().all(|point| point.samples == 2));
        assert_eq!(history.closed.capacity(), capacity, "the ring never grows");

        let range = history.range(7 * MINUTE_MS, 11 * MINUTE_MS);
        assert_eq!(range.iter().map(|point| point.minute_ms / MINUTE_MS).collect::<Vec<_>>(), [7, 9, 10]);
        assert_eq!(history.range(12 * MINUTE_MS, 13 * MINUTE_MS).len(), 1, "the open minute is in range");
        assert!(history.range(0, 6 * MINUTE_MS).is_empty(), "dropped minutes are gone");
    }

    #[test]
    fn late_samples_join_the_open_minute() {
        let mut history = History::new(3);
        history.push(sample(5 * MINUTE_MS, 10.0, 1));
        history.push(sample(3 * MINUTE_MS, 30.0, 2));
        assert_eq!(history.points().len(), 1);
        assert_eq!(history.points()[0].minute_ms, 5 * MINUTE_MS);
        assert_eq!(history.points()[0].cpu_percent_mean, 20.0);
        assert_eq!(history.latest().map(|latest| latest.time_ms), Some(3 * MINUTE_MS));
        // Negative times (before 1970) still land on minute boundaries.
        let mut old = History::new(3);
        old.push(sample(-1, 0.0, 0));
        assert_eq!(old.points()[0].minute_ms, -MINUTE_MS);
    }

    #[test]
    fn default_history_size_is_documented() {
        let history = History::default();
        assert!(history.is_empty());
        assert_eq!(history.capacity(), 1440);
        assert_eq!(size_of::<MinutePoint>(), 64, "update the module docs");
        let bytes = history.approximate_bytes();
        assert!((92_160..92_160 + 512).contains(&bytes), "{bytes}");
        assert_eq!(History::new(0).capacity(), 1);
    }
}
