//! Log sinks: every line a server indexes, copied to the log engines a
//! site already runs — Grafana Loki (push API, JSON or protobuf + snappy)
//! and OpenSearch or Elasticsearch (`_bulk` API with an index pattern).
//!
//! ```text
//!  ingest loop ──commit──▶ committed records (broadcast) ──▶ reader ──▶ buffer (bounded) ──▶ batch ──▶ HTTP
//!                                                              │ full or lagged                    │ 429/5xx:
//!  checkpoint (marks per origin, resume time) ◀── delivered ───┼───────────────────────────────────┘ backoff, again
//!        │ restart, overflow                                   ▼
//!        └──────────────▶ catch-up: the server's own index read again from the resume time
//! ```
//!
//! The pure parts are the request builders and answer readers of each
//! engine ([`loki`], [`opensearch`]) and the [`backoff`]; [`runner`] is
//! the thin async layer that feeds them, and [`render_metrics`] what
//! `/v1/metrics` shows of them. Delivery is at least once: a line is
//! forgotten only once its engine stored it or refused it for good
//! (counted as dropped); docs/logs.md, "Sinks", says what a restart can
//! lose.

pub mod backoff;
pub mod loki;
pub mod opensearch;
pub mod runner;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use drover_react::{LogSink, LogSinkKind};
use drover_types::LogRecord;

/// One HTTP request to an engine, built without I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The full URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What an engine's answer to one attempt means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Every record is settled: `delivered` stored, the others refused
    /// for good (why, one entry per record).
    Done {
        /// Records stored.
        delivered: usize,
        /// Why each refused record was refused.
        rejected: Vec<String>,
    },
    /// Nothing is settled: send the records at these indexes again.
    Retry {
        /// Indexes into the batch.
        failed: Vec<usize>,
        /// The engine's answer, for the log.
        reason: String,
    },
    /// Some records are settled; send those at `failed` again.
    Partial {
        /// Indexes into the batch to send again.
        failed: Vec<usize>,
        /// Why each refused record was refused.
        rejected: Vec<String>,
        /// The first failed item's error, for the log.
        reason: String,
    },
}

/// The request that sends `records` to `sink`, with the sink's headers.
pub fn build_request(sink: &LogSink, records: &[LogRecord]) -> HttpRequest {
    let mut request = match &sink.kind {
        LogSinkKind::Loki { labels, format, tenant } => {
            loki::request(&sink.url, records, labels, *format, tenant.as_deref())
        }
        LogSinkKind::Opensearch { index } => opensearch::request(&sink.url, records, index),
    };
    request.headers.extend(sink.headers.iter().map(|(name, value)| (name.clone(), value.clone())));
    request
}

/// What an answer means for a batch of `num_records` sent to `sink`.
pub fn read_answer(sink: &LogSink, status: u16, body: &str, num_records: usize) -> Attempt {
    match &sink.kind {
        LogSinkKind::Loki { .. } => loki::outcome(status, body, num_records),
        LogSinkKind::Opensearch { .. } => opensearch::outcome(status, body, num_records),
    }
}

/// The figures of one sink, shown by `/v1/metrics`.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Lines the engine stored.
    pub delivered: AtomicU64,
    /// Lines the engine refused for good (4xx other than 429).
    pub dropped: AtomicU64,
    /// Requests that failed and were (or will be) sent again.
    pub retries: AtomicU64,
    /// Lines that did not fit the buffer (or were missed by a sink that
    /// fell behind) and are read again from the index.
    pub overflowed: AtomicU64,
    /// Lines waiting in the buffer.
    pub pending: AtomicU64,
    /// How long the oldest line being sent has waited since the sink saw
    /// it, in milliseconds; 0 when nothing waits.
    pub lag_millis: AtomicI64,
    /// 1 while the sink reads the index again (after a restart or an
    /// overflow), else 0.
    pub catching_up: AtomicU64,
}

/// A metric family: name, type, help, and its value for one sink.
type Family = (&'static str, &'static str, &'static str, fn(&SinkCounters) -> String);

/// The sinks' figures in the OpenMetrics text format (without `# EOF`),
/// for `/v1/metrics`: `drover_log_sink_delivered_lines_total`,
/// `drover_log_sink_dropped_lines_total`, `drover_log_sink_retries_total`,
/// `drover_log_sink_overflowed_lines_total`, `drover_log_sink_pending_lines`,
/// `drover_log_sink_lag_seconds` and `drover_log_sink_catching_up`, each
/// with a `sink` label.
pub fn render_metrics(sinks: &[(String, std::sync::Arc<SinkCounters>)]) -> String {
    let mut text = String::new();
    if sinks.is_empty() {
        return text;
    }
    let families: [Family; 7] = [
        ("drover_log_sink_delivered_lines", "counter", "Lines a log sink's engine stored.", |c| {
            c.delivered.load(Ordering::Relaxed).to_string()
        }),
        ("drover_log_sink_dropped_lines", "counter", "Lines a log sink's engine refused for good.", |c| {
            c.dropped.load(Ordering::Relaxed).to_string()
        }),
        (
            "drover_log_sink_retries",
            "counter",
            "Requests to a log sink's engine that failed and were sent again.",
            |c| c.retries.load(Ordering::Relaxed).to_string(),
        ),
        (
            "drover_log_sink_overflowed_lines",
            "counter",
            "Lines that did not fit a log sink's buffer, read again from the index.",
            |c| c.overflowed.load(Ordering::Relaxed).to_string(),
        ),
        ("drover_log_sink_pending_lines", "gauge", "Lines waiting in a log sink's buffer.", |c| {
            c.pending.load(Ordering::Relaxed).to_string()
        }),
        ("drover_log_sink_lag_seconds", "gauge", "How long the oldest line a log sink is sending has waited.", |c| {
            format!("{:.3}", c.lag_millis.load(Ordering::Relaxed) as f64 / 1000.0)
        }),
        ("drover_log_sink_catching_up", "gauge", "1 while a log sink reads the index again.", |c| {
            c.catching_up.load(Ordering::Relaxed).to_string()
        }),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        let suffix = if kind == "counter" { "_total" } else { "" };
        for (sink, counters) in sinks {
            let label = sink.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(text, "{name}{suffix}{{sink=\"{label}\"}} {}", value(counters));
        }
    }
    text
}

/// A task-output record for tests.
#[cfg(test)]
pub(crate) fn test_record(node: &str, seq: u64, job: Option<&str>, message: &str) -> LogRecord {
    LogRecord {
        origin: node.to_owned(),
        seq,
        timestamp: 1_796_612_645_000_000_000 + i64::try_from(seq).unwrap_or(0),
        received: 1_796_612_645_000_000_000,
        node: node.to_owned(),
        hostgroup: None,
        environment: None,
        job: job.map(str::to_owned),
        group: None,
        task: None,
        alloc: None,
        source: "task".to_owned(),
        stream: "stdout".to_owned(),
        level: None,
        message: message.to_owned(),
        fields: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_every_sink() {
        let counters = std::sync::Arc::new(SinkCounters::default());
        counters.delivered.store(5, Ordering::Relaxed);
        counters.lag_millis.store(1500, Ordering::Relaxed);
        let text = render_metrics(&[("loki".to_owned(), counters)]);
        assert!(text.contains("drover_log_sink_delivered_lines_total{sink=\"loki\"} 5\n"), "{text}");
        assert!(text.contains("drover_log_sink_lag_seconds{sink=\"loki\"} 1.500\n"), "{text}");
        assert!(render_metrics(&[]).is_empty());
    }
}
