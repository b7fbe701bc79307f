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
    /// The node's host group, when the line carries it.
    pub hostgroup: Option<String>,
    /// The "here or everywhere?" switch: lines like this one on its node,
    /// in its host group, in the whole fleet (empty on pages without it,
    /// or when the message has no word to search by).
    pub like: Vec<LikeLink>,
}

/// One choice of the "here or everywhere?" switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LikeLink {
    /// `node`, `group`, `fleet`.
    pub label: &'static str,
    /// `lines like this one on batch01`.
    pub title: String,
    /// The search.
    pub href: String,
}

/// Where the "here or everywhere?" switch looks for lines like one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The line's node.
    Node,
    /// The line's host group.
    Hostgroup,
    /// Every node.
    Fleet,
}

impl Scope {
    /// Every scope, nearest first.
    pub const ALL: [Scope; 3] = [Scope::Node, Scope::Hostgroup, Scope::Fleet];

    /// From `?scope=`: `node`, `hostgroup`, `fleet`.
    pub fn parse(text: &str) -> Option<Self> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// Its name in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::Hostgroup => "hostgroup",
            Scope::Fleet => "fleet",
        }
    }
}

/// Longest phrase the switch searches for, in words.
const KIND_WORDS: usize = 8;

/// The words that say what kind of line `message` is, as a phrase: the
/// longest run of words without digits (at most [`KIND_WORDS`]), so
/// `Failed password for root from 10.1.2.3 port 22` gives `"Failed
/// password for root from"` and matches the same failure from any
/// address. `None` when no word is free of digits.
pub fn kind_phrase(message: &str) -> Option<String> {
    let constant = |word: &&str| {
        word.len() <= 40 && !word.chars().any(|c| c.is_ascii_digit()) && word.chars().any(char::is_alphabetic)
    };
    let words: Vec<&str> = message.split_whitespace().collect();
    let (mut best, mut start) = (0..0, 0);
    for (index, word) in words.iter().enumerate() {
        if !constant(word) {
            start = index + 1;
        } else if index + 1 - start > best.len() {
            best = start..index + 1;
        }
    }
    let run = &words[best.clone()];
    if run.is_empty() {
        return None;
    }
    let phrase = run[..run.len().min(KIND_WORDS)].join(" ");
    Some(format::quoted(&phrase))
}

/// The query for lines like `message` in `scope`: its [`kind_phrase`],
/// narrowed to `node` or `hostgroup`; `None` when the message has no
/// phrase or the line no host group.
pub fn like_query(message: &str, scope: Scope, node: &str, hostgroup: Option<&str>) -> Option<String> {
    let phrase = kind_phrase(message)?;
    match scope {
        Scope::Node => Some(format!("{phrase} node:{}", format::quoted(node))),
        Scope::Hostgroup => hostgroup
            .filter(|group| !group.is_empty())
            .map(|group| format!("{phrase} hostgroup:{}", format::quoted(group))),
        Scope::Fleet => Some(phrase),
    }
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
            hostgroup: record.hostgroup.clone(),
            like: Vec::new(),
        }
    }

    /// The line with its "here or everywhere?" switch, each choice a
    /// search over `since`..`until` counted by `count_by`.
    pub fn with_like(mut self, message: &str, since: &str, until: &str, count_by: &str) -> Self {
        self.like = Scope::ALL
            .into_iter()
            .filter_map(|scope| {
                let q = like_query(message, scope, &self.node, self.hostgroup.as_deref())?;
                let (label, place) = match scope {
                    Scope::Node => ("node", format!("on {}", self.node)),
                    Scope::Hostgroup => ("group", format!("in {}", self.hostgroup.as_deref().unwrap_or_default())),
                    Scope::Fleet => ("fleet", "on every node".to_owned()),
                };
                Some(LikeLink {
                    label,
                    title: format!("lines like this one {place}"),
                    href: format!(
                        "{}{}",
                        paths::UI_LOGS,
                        format::query(&[("q", &q), ("since", since), ("until", until), ("count_by", count_by)])
                    ),
                })
            })
            .collect();
        self
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
    let clause = format!("{field}:{}", format::quoted(value));
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
        self.lines = search
            .records
            .iter()
            .map(|record| {
                LogLine::new(record, terms).with_like(&record.message, &self.since, &self.until, &self.count_by)
            })
            .collect();
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

    /// Where the live tail's lines link for their "here or everywhere?"
    /// switch (the script adds `scope`, `node`, `hostgroup`, `message`).
    pub fn like_href(&self) -> String {
        format!(
            "{}{}",
            paths::UI_LOGS_LIKE,
            format::query(&[("since", &self.since), ("until", &self.until), ("count_by", &self.count_by)])
        )
    }

    /// Where the live tail reads matching lines as they arrive
    /// (newline-delimited JSON, the API's `GET /v1/logs/tail`).
    pub fn tail_href(&self) -> String {
        format!("{}{}", paths::UI_LOGS_TAIL, format::query(&[("q", &self.q)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_kind_is_its_longest_run_of_words_without_digits() {
        let kind = |message: &str| kind_phrase(message);
        assert_eq!(
            kind("Failed password for root from 10.1.2.3 port 22 ssh2").as_deref(),
            Some(r#""Failed password for root from""#)
        );
        assert_eq!(kind("pid 4242: connection reset by peer").as_deref(), Some(r#""connection reset by peer""#));
        assert_eq!(kind("a b c d e f g h i j k").as_deref(), Some(r#""a b c d e f g h""#), "at most eight words");
        assert_eq!(kind(r#"said "hi\there" twice"#).as_deref(), Some(r#""said \"hi\\there\" twice""#));
        assert_eq!(kind("12:00:01 404 -- 17"), None, "no word to search by");
        assert_eq!(kind(""), None);
    }

    #[test]
    fn like_queries_narrow_the_kind_to_the_node_or_host_group() {
        let message = "disk /dev/sda1 full on volume scratch";
        assert_eq!(
            like_query(message, Scope::Node, "batch01", Some("bi/batch")).as_deref(),
            Some(r#""full on volume scratch" node:"batch01""#)
        );
        assert_eq!(
            like_query(message, Scope::Hostgroup, "batch01", Some("bi/batch")).as_deref(),
            Some(r#""full on volume scratch" hostgroup:"bi/batch""#)
        );
        assert_eq!(like_query(message, Scope::Hostgroup, "batch01", None), None, "a line without a host group");
        assert_eq!(like_query(message, Scope::Fleet, "batch01", None).as_deref(), Some(r#""full on volume scratch""#));
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            let query = like_query(message, scope, "we\"ird", Some("a\\b")).unwrap();
            assert_quotes_balanced(&query);
        }
        assert_eq!(Scope::parse("galaxy"), None);
    }

    /// Quotes in the query are balanced (the log query parser lives in
    /// drover-filter, which this crate does not depend on).
    fn assert_quotes_balanced(query: &str) {
        let unescaped_quotes = query.replace("\\\\", "").replace("\\\"", "").matches('"').count();
        assert_eq!(unescaped_quotes % 2, 0, "{query}");
    }
}
