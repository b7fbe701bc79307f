//! `/ui/logs?q=&since=&until=&cursor=&count_by=`: the query in a box, a
//! histogram of matches over time whose bars are links that zoom into
//! their bucket, the matching lines newest first with the query's words
//! marked, paged by cursor, a side panel counting the matches by a field
//! (`GET /v1/logs/count`) whose values link to the query narrowed to them,
//! and a live-tail switch the script drives (`/ui/logs/tail`, the API's
//! tail); every link keeps the others' parameters.

use askama::Template;

use drover_proto::api::{LogCountResponse, LogHistogramResponse, LogRecord, LogSearchResponse};
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
    /// same query over its bucket, counted by the same `count_by`).
    pub fn new(response: &LogHistogramResponse, q: &str, count_by: &str) -> Option<Self> {
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
                        format::query(&[
                            ("q", q),
                            ("since", &bucket.start.to_string()),
                            ("until", &end.to_string()),
                            ("count_by", count_by),
                        ])
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

/// The fields the count panel offers: those `GET /v1/logs/count` counts
/// from the index's columns and terms (any extracted field may be given in
/// the URL too, as `drover logs search --by` takes it).
pub const COUNT_FIELDS: [&str; 8] = ["node", "hostgroup", "environment", "job", "task", "level", "source", "stream"];

/// The query `q` narrowed to the lines whose `field` is `value`, written
/// as `drover logs search --job J` writes its shorthands.
pub fn narrowed(q: &str, field: &str, value: &str) -> String {
    let clause = format!("{field}:\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    if q.trim().is_empty() { clause } else { format!("({}) AND {clause}", q.trim()) }
}

/// One value of the count panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountRow {
    /// The field's value (`(none)` for lines without it).
    pub value: String,
    /// Matching lines with it.
    pub count: u64,
    /// The search narrowed to it.
    pub href: String,
    /// Its bar's width, in per cent of the largest count.
    pub width_percent: u64,
}

impl CountRow {
    /// The inline style that sets its bar's width.
    pub fn style(&self) -> String {
        format!("width:{}%", self.width_percent)
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
    /// The field the side panel counts by (empty: none).
    pub count_by: String,
    /// The counts, largest first.
    pub counts: Vec<CountRow>,
    /// Why the counts could not be made (an unknown field: the API's message).
    pub count_error: Option<String>,
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
            count_by: String::new(),
            counts: Vec::new(),
            count_error: None,
        }
    }

    /// The page counting by `field` (trimmed; empty: no counts).
    pub fn counting_by(mut self, field: &str) -> Self {
        self.count_by = field.trim().to_owned();
        self
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
        self.histogram = Histogram::new(histogram, &self.q, &self.count_by);
        self.next_href = search.next_cursor.as_ref().map(|cursor| {
            format!(
                "{}{}",
                paths::UI_LOGS,
                format::query(&[
                    ("q", &self.q),
                    ("since", &self.since),
                    ("until", &self.until),
                    ("count_by", &self.count_by),
                    ("cursor", cursor),
                ])
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

    /// Fills in the side panel's counts (`GET /v1/logs/count`'s answer):
    /// each value links to the search narrowed to it, still counted by the
    /// same field.
    pub fn with_counts(mut self, counts: &LogCountResponse) -> Self {
        let largest = counts.counts.first().map_or(1, |count| count.count.max(1));
        self.counts = counts
            .counts
            .iter()
            .map(|count| {
                let q = narrowed(&self.q, &self.count_by, &count.value);
                CountRow {
                    value: if count.value.is_empty() { "(none)".to_owned() } else { count.value.clone() },
                    count: count.count,
                    href: format!(
                        "{}{}",
                        paths::UI_LOGS,
                        format::query(&[
                            ("q", &q),
                            ("since", &self.since),
                            ("until", &self.until),
                            ("count_by", &self.count_by)
                        ])
                    ),
                    width_percent: format::percent(count.count, largest).max(1),
                }
            })
            .collect();
        for server in &counts.unreachable {
            self.missing.push(format!("server {server} did not answer: its counts are missing"));
        }
        self
    }

    /// The first page of the same search.
    pub fn first_href(&self) -> String {
        format!(
            "{}{}",
            paths::UI_LOGS,
            format::query(&[
                ("q", &self.q),
                ("since", &self.since),
                ("until", &self.until),
                ("count_by", &self.count_by)
            ])
        )
    }

    /// The fields of the count panel's choice: [`COUNT_FIELDS`], and the
    /// one counted by when the URL named another.
    pub fn count_fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = COUNT_FIELDS.to_vec();
        if !self.count_by.is_empty() && !fields.contains(&self.count_by.as_str()) {
            fields.push(&self.count_by);
        }
        fields
    }

    /// Whether the panel counts by `field`.
    pub fn is_counted(&self, field: &str) -> bool {
        self.count_by == field
    }

    /// Where the live tail reads matching lines as they arrive
    /// (newline-delimited JSON, the API's `GET /v1/logs/tail`).
    pub fn tail_href(&self) -> String {
        format!("{}{}", paths::UI_LOGS_TAIL, format::query(&[("q", &self.q)]))
    }
}
