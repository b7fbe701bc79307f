//! Instruments for drover's own metrics (a server's Raft, HTTP, scheduler,
//! log ingest…) and the OpenMetrics text they are written in.
//!
//! [`Counter`] and [`Histogram`] are plain atomics: recording is one or two
//! relaxed `fetch_add`s, with no lock, no allocation and no name looked up.
//! Whoever owns them (`drover-server`'s `self_metrics`) holds them as typed
//! fields and writes them at scrape time with [`OwnText`], which adds the
//! `# HELP`/`# TYPE`/`# UNIT` lines the way the node families of
//! [`crate::FleetText`] have them: a counter's family has no `_total` (its
//! samples do), a family whose name ends in `_seconds` or `_bytes` gets a
//! `# UNIT` line, and a histogram's samples are `_bucket{le="…"}`
//! (cumulative, ending with `+Inf`), `_sum` and `_count`.
//!
//! The text never ends with `# EOF`: it is placed before the fleet's
//! (`FleetText::before_eof`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::text::label;

/// A number that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn increment(&self) {
        self.add(1);
    }

    /// Adds `amount`.
    pub fn add(&self, amount: u64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, for durations of a request or a commit: from
/// a millisecond to 10 s, roughly ×2.5 apart (Prometheus' default buckets
/// shifted down one step).
pub const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds, in seconds, for work that may wait on Raft and retries
/// (a scheduler's evaluation): from 5 ms to 60 s.
pub const SLOW_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A distribution of durations in fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is above
    /// every bound (`+Inf`).
    buckets: Box<[AtomicU64]>,
    /// The sum of the observations, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "bounds must ascend: {bounds:?}");
        Self { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_nanos: AtomicU64::new(0) }
    }

    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self.bounds.iter().position(|bound| seconds <= *bound).unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).sum()
    }
}

/// What a family is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; samples are named `…_total`.
    Counter,
    /// Any current value.
    Gauge,
    /// Durations in buckets.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The text of drover's own families, written one after the other.
///
/// Start each family with [`OwnText::family`], then write its samples
/// ([`OwnText::counter`], [`OwnText::gauge`], [`OwnText::histogram`]) with
/// the same name. The convenience methods [`OwnText::single_counter`] and
/// [`OwnText::single_gauge`] write a family of one unlabelled sample.
#[derive(Debug, Default)]
pub struct OwnText {
    text: String,
}

impl OwnText {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// The family's `# HELP`, `# TYPE` and (for `…_seconds` and `…_bytes`)
    /// `# UNIT` lines. `name` is the family's: without `_total`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(!name.ends_with("_total"), "a family is named without _total: {name}");
        for (prefix, suffix) in [("# HELP ", help), ("# TYPE ", kind.as_str())] {
            self.text.push_str(prefix);
            self.text.push_str(name);
            self.text.push(' ');
            self.text.push_str(suffix);
            self.text.push('\n');
        }
        let unit_of = |unit: &str| name.strip_suffix(unit).is_some_and(|rest| rest.ends_with('_'));
        if let Some(unit) = ["seconds", "bytes"].into_iter().find(|unit| unit_of(unit)) {
            self.text.push_str("# UNIT ");
            self.text.push_str(name);
            self.text.push(' ');
            self.text.push_str(unit);
            self.text.push('\n');
        }
    }

    /// One sample of a counter family: `name_total{labels} value`.
    pub fn counter(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.sample(name, "_total", labels, None, Number::Integer(value));
    }

    /// One sample of a gauge family.
    pub fn gauge(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.sample(name, "", labels, None, Number::Integer(value));
    }

    /// The samples of one histogram of a histogram family: cumulative
    /// buckets up to `+Inf`, then `_sum` (seconds) and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let mut cumulative = 0;
        let mut bound_text = dtoa::Buffer::new();
        for (index, bucket) in histogram.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = match histogram.bounds.get(index) {
                Some(bound) => bound_text.format(*bound),
                None => "+Inf",
            };
            self.sample(name, "_bucket", labels, Some(("le", bound)), Number::Integer(cumulative));
        }
        let sum_seconds = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(name, "_sum", labels, None, Number::Float(sum_seconds));
        // The count is the buckets' total, so that it equals `+Inf` even
        // while observations land during the scrape.
        self.sample(name, "_count", labels, None, Number::Integer(cumulative));
    }

    /// A counter family with one unlabelled sample.
    pub fn single_counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help);
        self.counter(name, &[], value);
    }

    /// A gauge family with one unlabelled sample.
    pub fn single_gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Gauge, help);
        self.gauge(name, &[], value);
    }

    /// The text written (no `# EOF`).
    pub fn into_text(self) -> String {
        self.text
    }

    fn sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<(&str, &str)>, value: Number) {
        let out = &mut self.text;
        out.push_str(name);
        out.push_str(suffix);
        let mut all = labels.iter().copied().chain(le).peekable();
        if all.peek().is_some() {
            out.push('{');
            for (position, (label_name, label_value)) in all.enumerate() {
                if position > 0 {
                    out.push(',');
                }
                label(out, label_name, label_value);
            }
            out.push('}');
        }
        out.push(' ');
        match value {
            Number::Integer(value) => out.push_str(itoa::Buffer::new().format(value)),
            Number::Float(value) => out.push_str(dtoa::Buffer::new().format(value)),
        }
        out.push('\n');
    }
}

/// A sample's value as written.
#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(u64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_are_written_in_openmetrics_form() {
        let requests = Counter::default();
        requests.increment();
        requests.add(2);
        let latency = Histogram::new(&[0.01, 0.1, 1.0]);
        latency.observe(Duration::from_millis(5));
        latency.observe(Duration::from_millis(10)); // on a bound: in it
        latency.observe(Duration::from_millis(50));
        latency.observe(Duration::from_secs(3));

        let mut text = OwnText::new();
        text.single_gauge("drover_raft_term", "The current term.", 7);
        text.family("drover_http_requests", Kind::Counter, "Requests answered.");
        text.counter("drover_http_requests", &[("route", "/v1/job/{job_id}"), ("status", "4\"0\\4")], requests.get());
        text.family("drover_http_request_duration_seconds", Kind::Histogram, "Time to answer.");
        text.histogram("drover_http_request_duration_seconds", &[("route", "/v1/jobs")], &latency);

        let expected = "\
# HELP drover_raft_term The current term.
# TYPE drover_raft_term gauge
drover_raft_term 7
# HELP drover_http_requests Requests answered.
# TYPE drover_http_requests counter
drover_http_requests_total{route=\"/v1/job/{job_id}\",status=\"4\\\"0\\\\4\"} 3
# HELP drover_http_request_duration_seconds Time to answer.
# TYPE drover_http_request_duration_seconds histogram
# UNIT drover_http_request_duration_seconds seconds
drover_http_request_duration_seconds_bucket{route=\"/v1/jobs\",le=\"0.01\"} 2
drover_http_request_duration_seconds_bucket{route=\"/v1/jobs\",le=\"0.1\"} 3
drover_http_request_duration_seconds_bucket{route=\"/v1/jobs\",le=\"1.0\"} 3
drover_http_request_duration_seconds_bucket{route=\"/v1/jobs\",le=\"+Inf\"} 4
drover_http_request_duration_seconds_sum{route=\"/v1/jobs\"} 3.065
drover_http_request_duration_seconds_count{route=\"/v1/jobs\"} 4
";
        assert_eq!(text.into_text(), expected);
        assert_eq!(latency.count(), 4);
    }

    #[test]
    fn a_duration_beyond_every_bound_lands_in_inf_and_huge_ones_saturate_the_sum() {
        let histogram = Histogram::new(LATENCY_BUCKETS);
        histogram.observe(Duration::MAX);
        histogram.observe(Duration::ZERO);
        let mut text = OwnText::new();
        text.histogram("x_seconds", &[], &histogram);
        let text = text.into_text();
        assert!(text.contains("x_seconds_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"10.0\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_count 2\n"), "{text}");
    }
}
