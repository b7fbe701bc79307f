//! `/ui/logs?q=&since=&until=&cursor=`: the query in a box, a histogram of
//! matches over time whose bars are links that zoom into their bucket,
//! and the matching lines newest first with the query's words marked,
//! paged by cursor.

use askama::Template;

use drover_proto::api::{LogHistogramResponse, LogRecord, LogSearchResponse};
use drover_proto::paths;

use crate::chrome::Chrome;
use crate::format::{self, Piece};

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When it was written (UTC, milliseconds).
    pub when: String,
    /// The node.
    pub node: String,
    /// The node's page.
    pub node_href: String,
    /// `task web/stdout`, `file /var/log/syslog`, `journal sshd.service`.
    pub source: String,
    /// The level, where known.
    pub level: String,
    /// The message, cut where the query's words matched.
    pub pieces: Vec<Piece>,
    /// The allocation's page, for task output.
    pub alloc_href: Option<String>,
}

impl LogLine {
    /// The line of one record, marking `terms`.
    pub fn new(record: &LogRecord, terms: &[String]) -> Self {
        let source = match (&record.job, &record.task) {
            (Some(job), Some(task)) => format!("{job}/{task} {}", record.stream),
            _ => format!("{} {}", record.source, record.stream),
        };
        LogLine {
            when: format::time_nanos(record.timestamp),
            node: record.node.clone(),
            node_href: paths::fill(paths::UI_NODE, &[&record.node]),
            source,
            level: record.level.clone().unwrap_or_default(),
            pieces: format::highlight(&record.message, terms),
            alloc_href: record.alloc.as_ref().map(|alloc| paths::fill(paths::UI_ALLOC, &[alloc])),
        }
    }

    /// The CSS class of its level.
    pub fn level_class(&self) -> String {
        format!("level-{}", self.level.to_lowercase())
    }
}

/// One bar of the histogram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    /// The search zoomed into the bucket.
    pub href: String,
    /// Its height, in per cent of the highest bar.
    pub height_percent: u64,
    /// `42 lines from 14:05:00` (for the tooltip and screen readers).
    pub label: String,
}

impl Bar {
    /// The inline style that sets its height.
    pub fn style(&self) -> String {
        format!("height:{}%", self.height_percent)
    }
}

/// The histogram of matches over time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// The bars, oldest first.
    pub bars: Vec<Bar>,
    /// The start of the first bucket.
    pub first: String,
    /// The end of the last bucket.
    pub last: String,
    /// The highest count.
    pub max: u64,
    /// The bucket width: `1m`.
    pub interval: String,
}

impl Histogram {
    /// The histogram of `response` for query `q` (each bar links to the
    /// same query over its bucket).
    pub fn new(response: &LogHistogramResponse, q: &str) -> Option<Self> {
        let first = response.buckets.first()?;
        let last = response.buckets.last()?;
        let max = response.buckets.iter().map(|bucket| bucket.count).max().unwrap_or(0);
        let interval = response.interval_nanos.max(1);
        let bars = response
            .buckets
            .iter()
            .map(|bucket| {
                let end = bucket.start.saturating_add(interval);
                let height_percent = match bucket.count {
                    0 => 0,
                    count => format::percent(count, max).max(2),
                };
                Bar {
                    href: format!(
                        "{}{}",
                        paths::UI_LOGS,
                        format::query(&[("q", q), ("since", &bucket.start.to_string()), ("until", &end.to_string())])
                    ),
                    height_percent,
                    label: format!("{} lines from {}", bucket.count, format::time_nanos(bucket.start)),
                }
            })
            .collect();
        Some(Histogram {
            bars,
            first: format::time_nanos(first.start),
            last: format::time_nanos(last.start.saturating_add(interval)),
            max,
            interval: format::span(u64::try_from(interval / 1_000_000_000).unwrap_or(0)),
        })
    }
}

/// `/ui/logs`.
#[derive(Debug, Template)]
#[template(path = "logs.html")]
pub struct LogsPage {
    /// The frame.
    pub chrome: Chrome,
    /// The query as typed.
    pub q: String,
    /// The start of the range as typed.
    pub since: String,
    /// The end of the range as typed.
    pub until: String,
    /// Why the query was refused (the CLI's message).
    pub error: Option<String>,
    /// Matches over time.
    pub histogram: Option<Histogram>,
    /// The page of lines, newest first.
    pub lines: Vec<LogLine>,
    /// How many lines match in all.
    pub total_matching: u64,
    /// The next page, when there is one.
    pub next_href: Option<String>,
    /// Whether this is a later page (then a link back to the first).
    pub paged: bool,
    /// Servers or partitions whose lines are missing.
    pub missing: Vec<String>,
}

impl LogsPage {
    /// A page with the query and no results yet.
    pub fn new(chrome: Chrome, q: String, since: String, until: String) -> Self {
        LogsPage {
            chrome,
            q,
            since,
            until,
            error: None,
            histogram: None,
            lines: Vec::new(),
            total_matching: 0,
            next_href: None,
            paged: false,
            missing: Vec::new(),
        }
    }

    /// Fills in a search's answer, marking `terms` in the lines.
    pub fn with_results(
        mut self,
        search: &LogSearchResponse,
        histogram: &LogHistogramResponse,
        terms: &[String],
        paged: bool,
    ) -> Self {
        self.lines = search.records.iter().map(|record| LogLine::new(record, terms)).collect();
        self.total_matching = search.total_matching;
        self.histogram = Histogram::new(histogram, &self.q);
        self.next_href = search.next_cursor.as_ref().map(|cursor| {
            format!(
                "{}{}",
                paths::UI_LOGS,
                format::query(&[("q", &self.q), ("since", &self.since), ("until", &self.until), ("cursor", cursor)])
            )
        });
        self.paged = paged;
        self.missing = search
            .unreachable
            .iter()
            .map(|server| format!("server {server} did not answer: its lines are missing"))
            .chain(search.damaged.iter().map(|part| format!("{part} could not be read: its lines are missing")))
            .collect();
        self
    }

    /// The first page of the same search.
    pub fn first_href(&self) -> String {
        format!(
            "{}{}",
            paths::UI_LOGS,
            format::query(&[("q", &self.q), ("since", &self.since), ("until", &self.until)])
        )
    }
}
