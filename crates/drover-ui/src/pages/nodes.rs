//! `/ui/nodes?filter=…&sort=…&page=N` and `/ui/node/NAME`. The node table
//! shows [`NODES_PER_PAGE`] nodes a page (10,000 rows would weigh about
//! 5 MB), with previous/next links; the host-group tree counts them all.

use std::collections::{BTreeMap, HashMap};

use askama::Template;

use drover_proto::api::{NodeListEntry, NodeStatusResponse, UsagePoint};
use drover_proto::paths;
use drover_types::usage::UsageSummary;
use drover_types::{NodeChange, NodeId, Timestamp};

use super::Visible;
use super::jobs::AllocRow;
use super::logs::LogLine;
use crate::chart::{UsageChart, usage_charts};
use crate::chrome::Chrome;
use crate::format;

/// How the node table is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeSort {
    /// By name.
    #[default]
    Name,
    /// By reserved CPU, fullest first.
    Cpu,
    /// By reserved memory, fullest first.
    Memory,
    /// By number of allocations, most first.
    Allocs,
    /// By measured CPU use, busiest first (nodes without a sample last).
    CpuUsed,
    /// By measured memory use, fullest first.
    MemoryUsed,
    /// By the fullest disk's use, fullest first.
    DiskUsed,
}

impl NodeSort {
    /// From `?sort=`: `name`, `cpu`, `memory`, `allocs` (what allocations
    /// reserve), `cpu-used`, `memory-used`, `disk-used` (what the agents
    /// measured last); anything else: name.
    pub fn parse(text: &str) -> Self {
        match text {
            "cpu" => NodeSort::Cpu,
            "memory" => NodeSort::Memory,
            "allocs" => NodeSort::Allocs,
            "cpu-used" => NodeSort::CpuUsed,
            "memory-used" => NodeSort::MemoryUsed,
            "disk-used" => NodeSort::DiskUsed,
            _ => NodeSort::Name,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            NodeSort::Name => "name",
            NodeSort::Cpu => "cpu",
            NodeSort::Memory => "memory",
            NodeSort::Allocs => "allocs",
            NodeSort::CpuUsed => "cpu-used",
            NodeSort::MemoryUsed => "memory-used",
            NodeSort::DiskUsed => "disk-used",
        }
    }
}

/// A line of the node table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    /// Name.
    pub name: String,
    /// Its page.
    pub href: String,
    /// `ready`, `down`, …
    pub status: String,
    /// Host group.
    pub hostgroup: String,
    /// Environment.
    pub environment: String,
    /// `1200 / 4000 MHz`.
    pub cpu: String,
    /// Reserved CPU in per cent.
    pub cpu_percent: u64,
    /// `2 / 16 GB`.
    pub memory: String,
    /// Reserved memory in per cent.
    pub memory_percent: u64,
    /// Live allocations.
    pub num_allocs: u32,
    /// Whether the node is protected.
    pub protected: bool,
    /// `Debian 13 amd64`.
    pub os: String,
    /// Measured CPU busy, `37%`, or `–` without a sample.
    pub cpu_used: String,
    /// Measured memory in use.
    pub memory_used: String,
    /// The fullest disk's use.
    pub disk_used: String,
    /// When the figures were measured (the cells' tooltip).
    pub measured: String,
}

impl NodeRow {
    /// The row of one node, with its latest measured usage if any.
    pub fn new(node: &NodeListEntry, usage: Option<&UsageSummary>, now: Timestamp) -> Self {
        let fact = |name: &str| node.attributes.get(name).cloned().unwrap_or_default();
        let shown = |figure: Option<f32>| figure.map_or_else(|| "–".to_owned(), |value| format!("{value:.0}%"));
        NodeRow {
            name: node.name.clone(),
            href: paths::fill(paths::UI_NODE, &[&node.name]),
            status: node.status.clone(),
            hostgroup: node.hostgroup.clone(),
            environment: node.environment.clone(),
            cpu: format!("{} / {} MHz", node.used.cpu_mhz, node.resources.cpu_mhz),
            cpu_percent: format::percent(node.used.cpu_mhz, node.resources.cpu_mhz),
            memory: format!(
                "{} / {}",
                format::megabytes(node.used.memory_mb),
                format::megabytes(node.resources.memory_mb)
            ),
            memory_percent: format::percent(node.used.memory_mb, node.resources.memory_mb),
            num_allocs: node.num_allocs,
            protected: node.protected,
            os: [fact("os.name"), fact("os.version"), fact("cpu.arch")]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            cpu_used: shown(usage.map(|usage| usage.cpu_percent)),
            memory_used: shown(usage.and_then(|usage| usage.memory_percent)),
            disk_used: shown(usage.and_then(|usage| usage.disk_percent)),
            measured: usage.map_or_else(
                || "no sample: its agent is not connected".to_owned(),
                |usage| format!("measured {}", format::ago(Timestamp::from_millis(usage.time_ms), now)),
            ),
        }
    }
}

/// A host group (or a level above some) and how many listed nodes are in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCount {
    /// The last segment of the path.
    pub label: String,
    /// Nesting depth (0 for the top).
    pub depth: usize,
    /// Nodes at or under it.
    pub count: usize,
    /// The node table filtered to it.
    pub href: String,
}

impl GroupCount {
    /// The indentation of the tree line.
    pub fn indent(&self) -> String {
        format!("padding-left:{}rem", self.depth)
    }
}

/// The host-group tree of the given host groups: every prefix with the
/// number of nodes at or under it, in path order.
pub fn group_tree<'a>(hostgroups: impl IntoIterator<Item = &'a str>) -> Vec<GroupCount> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for hostgroup in hostgroups {
        let segments: Vec<&str> = hostgroup.split('/').filter(|segment| !segment.is_empty()).collect();
        for end in 1..=segments.len() {
            *counts.entry(segments[..end].join("/")).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(path, count)| {
            let depth = path.matches('/').count();
            let filter = format!(
                "hostgroup =~ {} or hostgroup == {}",
                format::quoted(&format!("{path}/**")),
                format::quoted(&path)
            );
            GroupCount {
                label: path.rsplit('/').next().unwrap_or_default().to_owned(),
                depth,
                count,
                href: format!("{}{}", paths::UI_NODES, format::query(&[("filter", &filter)])),
            }
        })
        .collect()
}

/// What the node table is made of: the nodes, and the latest measured
/// usage of those whose agents are connected.
#[derive(Clone, Copy, Debug)]
pub struct NodeTable<'a> {
    /// The matching nodes the caller may see.
    pub entries: &'a [NodeListEntry],
    /// Their latest usage, by node id.
    pub usage: &'a HashMap<NodeId, UsageSummary>,
}

/// Rows of the node table per page.
pub const NODES_PER_PAGE: usize = 200;

/// `/ui/nodes`.
#[derive(Debug, Template)]
#[template(path = "nodes.html")]
pub struct NodesPage {
    /// The frame.
    pub chrome: Chrome,
    /// The filter as typed.
    pub filter: String,
    /// Why the filter was refused (the CLI's message).
    pub error: Option<String>,
    /// The order.
    pub sort: NodeSort,
    /// The matching nodes the caller may see, on this page.
    pub nodes: Vec<NodeRow>,
    /// Their host groups (all matching nodes, not only this page's).
    pub groups: Vec<GroupCount>,
    /// How many nodes match in all.
    pub total: usize,
    /// The page shown, from 1.
    pub page: usize,
}

impl NodesPage {
    /// The first page of the table of `entries` (the nodes matching
    /// `filter`), sorted, without measured usage.
    pub fn new(chrome: Chrome, filter: String, sort: NodeSort, entries: &[NodeListEntry]) -> Self {
        NodesPage::on_page(chrome, filter, sort, NodeTable { entries, usage: &HashMap::new() }, 1)
    }

    /// The page `page` (from 1; past the end: the last) of the table,
    /// sorted.
    pub fn on_page(chrome: Chrome, filter: String, sort: NodeSort, table: NodeTable<'_>, page: usize) -> Self {
        let NodeTable { entries, usage } = table;
        // A measured figure as a sort key: busiest first, no figure last.
        let measured = |node: &NodeListEntry, figure: fn(&UsageSummary) -> Option<f32>| {
            std::cmp::Reverse(usage.get(&node.id).and_then(figure).map(|value| (value * 100.0) as i64))
        };
        // Sorted by the rows' keys, but only the page's rows are made.
        let mut order: Vec<&NodeListEntry> = entries.iter().collect();
        match sort {
            NodeSort::Name => order.sort_by(|left, right| left.name.cmp(&right.name)),
            NodeSort::Cpu => {
                order.sort_by_key(|node| std::cmp::Reverse(format::percent(node.used.cpu_mhz, node.resources.cpu_mhz)))
            }
            NodeSort::Memory => order
                .sort_by_key(|node| std::cmp::Reverse(format::percent(node.used.memory_mb, node.resources.memory_mb))),
            NodeSort::Allocs => order.sort_by_key(|node| std::cmp::Reverse(node.num_allocs)),
            // One lookup a node, not one a comparison.
            NodeSort::CpuUsed => order.sort_by_cached_key(|node| measured(node, |usage| Some(usage.cpu_percent))),
            NodeSort::MemoryUsed => order.sort_by_cached_key(|node| measured(node, |usage| usage.memory_percent)),
            NodeSort::DiskUsed => order.sort_by_cached_key(|node| measured(node, |usage| usage.disk_percent)),
        }
        let groups = group_tree(entries.iter().map(|node| node.hostgroup.as_str()));
        let total = order.len();
        let page = page.clamp(1, total.div_ceil(NODES_PER_PAGE).max(1));
        let now = chrome.now;
        let nodes = order
            .into_iter()
            .skip((page - 1) * NODES_PER_PAGE)
            .take(NODES_PER_PAGE)
            .map(|node| NodeRow::new(node, usage.get(&node.id), now))
            .collect();
        NodesPage { chrome, filter, error: None, sort, nodes, groups, total, page }
    }

    /// `1 shown`, or `201–400 of 10000 shown` when there are several pages.
    pub fn shown(&self) -> String {
        if self.total <= NODES_PER_PAGE {
            return format!("{} shown", self.nodes.len());
        }
        let start = (self.page - 1) * NODES_PER_PAGE + 1;
        format!("{start}–{} of {} shown", start + self.nodes.len() - 1, self.total)
    }

    /// The page before, if any.
    pub fn prev_href(&self) -> Option<String> {
        (self.page > 1).then(|| self.page_href(self.page - 1))
    }

    /// The page after, if any.
    pub fn next_href(&self) -> Option<String> {
        (self.page * NODES_PER_PAGE < self.total).then(|| self.page_href(self.page + 1))
    }

    fn page_href(&self, page: usize) -> String {
        let page = if page == 1 { String::new() } else { page.to_string() };
        format!(
            "{}{}",
            paths::UI_NODES,
            format::query(&[("filter", &self.filter), ("sort", self.sort.as_str()), ("page", &page)])
        )
    }

    /// The link that sorts the table by `by`, keeping the filter.
    pub fn sort_href(&self, by: &str) -> String {
        format!("{}{}", paths::UI_NODES, format::query(&[("filter", &self.filter), ("sort", by)]))
    }

    /// `aria-sort` of a column.
    pub fn sorted_by(&self, by: &str) -> bool {
        self.sort.as_str() == by
    }
}

/// One change of a node's labels, protection or drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRow {
    /// When.
    pub at: String,
    /// Who.
    pub by: String,
    /// `hostgroup`, `meta.rack`, …
    pub field: String,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
    /// Why.
    pub reason: String,
}

impl ChangeRow {
    /// The row of one change.
    pub fn new(change: &NodeChange) -> Self {
        ChangeRow {
            at: format::time(change.at),
            by: change.by.clone(),
            field: change.field.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
            reason: change.reason.clone(),
        }
    }
}

/// `/ui/node/NAME`.
#[derive(Debug, Template)]
#[template(path = "node.html")]
pub struct NodePage {
    /// The frame.
    pub chrome: Chrome,
    /// Name.
    pub name: String,
    /// `ready`, `down`, …
    pub status: String,
    /// What the status means here.
    pub status_description: String,
    /// Labels: host group, environment, owner, zone, then meta.
    pub labels: Vec<(String, String)>,
    /// Facts the agent found.
    pub facts: Vec<(String, String)>,
    /// `protected by alice 2h ago: database primary`.
    pub protection: Option<String>,
    /// `draining since …, deadline …`.
    pub drain: Option<String>,
    /// Capacity and what allocations hold.
    pub resources: Vec<(String, String)>,
    /// The latest measured usage, when its agent is connected.
    pub usage: Vec<(String, String)>,
    /// Its usage over the last 24 h, a chart per figure.
    pub charts: Visible<Vec<UsageChart>>,
    /// Its live allocations.
    pub allocs: Vec<AllocRow>,
    /// Who changed what, newest first.
    pub history: Visible<Vec<ChangeRow>>,
    /// Its latest log lines, newest first.
    pub logs: Visible<Vec<LogLine>>,
    /// All of its log lines.
    pub logs_href: String,
}

impl NodePage {
    /// The page of one node, with its history and log lines as the caller
    /// may see them.
    pub fn new(
        chrome: Chrome,
        status: &NodeStatusResponse,
        history: Visible<Vec<NodeChange>>,
        usage_history: Visible<Vec<UsagePoint>>,
        logs: Visible<Vec<LogLine>>,
    ) -> Self {
        let node = &status.node;
        let now = chrome.now;
        let mut labels = vec![
            ("hostgroup".to_owned(), node.hostgroup.clone()),
            ("environment".to_owned(), node.environment.clone()),
            ("owner".to_owned(), node.owner.clone()),
            ("zone".to_owned(), node.zone.clone()),
        ];
        labels.extend(node.meta.iter().map(|(key, value)| (format!("meta.{key}"), value.clone())));
        let mut resources = vec![
            ("CPU reserved".to_owned(), format!("{} / {} MHz", status.used.cpu_mhz, node.resources.cpu_mhz)),
            (
                "memory reserved".to_owned(),
                format!(
                    "{} / {}",
                    format::megabytes(status.used.memory_mb),
                    format::megabytes(node.resources.memory_mb)
                ),
            ),
            ("agent".to_owned(), node.agent_version.clone()),
            ("eligibility".to_owned(), format!("{:?}", node.eligibility).to_lowercase()),
        ];
        if let Some(heartbeat) = status.last_heartbeat {
            resources.push(("last heartbeat".to_owned(), format::ago(heartbeat, now)));
        }
        let usage = status.usage.as_ref().map(|sample| usage_lines(sample, now)).unwrap_or_default();
        NodePage {
            name: node.name.clone(),
            status: node.display_status().to_owned(),
            status_description: node.status_description.clone(),
            labels,
            facts: node.attributes.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
            protection: node.protected.as_ref().map(|protection| {
                format!("protected by {} {}: {}", protection.by, format::ago(protection.at, now), protection.reason)
            }),
            drain: node.drain.as_ref().map(|drain| {
                let deadline = drain.deadline.map(|deadline| format!(", deadline {}", format::ago(deadline, now)));
                format!("draining since {}{}", format::ago(drain.started_at, now), deadline.unwrap_or_default())
            }),
            resources,
            usage,
            charts: match usage_history {
                Visible::Shown(points) => Visible::Shown(usage_charts(&points, now)),
                Visible::Hidden(why) => Visible::Hidden(why),
            },
            allocs: status.allocs.iter().map(|alloc| AllocRow::new(alloc, now)).collect(),
            history: match history {
                Visible::Shown(changes) => Visible::Shown(changes.iter().rev().map(ChangeRow::new).collect()),
                Visible::Hidden(why) => Visible::Hidden(why),
            },
            logs,
            logs_href: format!(
                "{}{}",
                paths::UI_LOGS,
                format::query(&[("q", &format!("node:{}", format::quoted(&node.name))), ("since", "24h")])
            ),
            chrome,
        }
    }
}

fn usage_lines(sample: &drover_types::usage::NodeSample, now: Timestamp) -> Vec<(String, String)> {
    const MIB: u64 = 1024 * 1024;
    let mut lines = vec![
        ("sampled".to_owned(), format::ago(Timestamp::from_millis(sample.time_ms), now)),
        ("CPU busy".to_owned(), format!("{:.0}% of {} cores", sample.cpu_percent, sample.cores)),
        ("load".to_owned(), format!("{:.2} {:.2} {:.2}", sample.load1, sample.load5, sample.load15)),
        (
            "memory used".to_owned(),
            format!(
                "{} of {} ({}%)",
                format::megabytes(sample.memory_used / MIB),
                format::megabytes(sample.memory_total / MIB),
                format::percent(sample.memory_used, sample.memory_total)
            ),
        ),
    ];
    for disk in &sample.disks {
        lines.push((
            format!("disk {}", disk.mount),
            format!("{}% used of {}", format::percent(disk.used, disk.total), format::megabytes(disk.total / MIB)),
        ));
    }
    lines
}
