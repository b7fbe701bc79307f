//! The OpenMetrics text of a [`Fleet`], written by hand into chunks.
//!
//! [`FleetText`] is an iterator of text chunks of about
//! [`FleetText::DEFAULT_CHUNK_SIZE`] bytes whose concatenation is the
//! exposition of the fleet: families in a fixed order (node_exporter's names,
//! then drover's, then `drover_node_up`/`_status`/log drops), each family's
//! series node by node, then the text given to [`FleetText::before_eof`] and
//! `# EOF`. A server streams the chunks as the response body, so it never
//! holds the whole answer (about 100 MB for 10,000 nodes), and no
//! `prometheus_client` registry is built per scrape.
//!
//! The bytes are the ones `prometheus-client` 0.25's text encoder wrote
//! before (tests/render_golden.rs pins them): integers with `itoa`, floats
//! with `dtoa` (`100.0`, `12.34`), label values with `\`, `"` and newline
//! escaped as `\\`, `\"` and `\n`, counters' samples named `…_total`.
//!
//! Every family walks all the nodes, whose samples lie scattered over the
//! heap (about 43 MB for 10,000 nodes), so most of the time goes to reading
//! them from memory and to freeing them. Three habits follow: what several
//! families read is read once and kept (the nodes' labels in one string, the
//! items' labels of a group in [`ItemLabels`]); each part of a sample is
//! freed right after the last family that reads it, while it is still in the
//! cache ([`Family::release`], [`TaskOwners`]), rather than with the fleet at
//! the end; and CPU seconds are written without going through a float
//! ([`write_millis`]).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use drover_types::NodeStatus;
use drover_types::usage::{
    AgentSample, BlockDeviceSample, DiskSample, NetSample, NodeSample, PressureSample, TaskSample,
};

use crate::prometheus::{Fleet, FleetNode, TaskOwner, widen};

/// The chunks of a fleet's exposition text, in order; see the module docs.
#[derive(Debug)]
pub struct FleetText {
    fleet: Fleet,
    /// Every unique node's labels, written and escaped once and laid end to
    /// end: `node="…",hostgroup="…",environment="…"` (one allocation, read in
    /// order by every family, rather than one per node).
    node_labels: String,
    /// Each unique node: its position in `fleet.nodes` and its labels in
    /// `node_labels` (first of a name wins; later duplicates are not listed).
    nodes: Vec<(usize, Range<usize>)>,
    /// The labels of the nodes' items in the group being written.
    item_labels: ItemLabels,
    /// The fleet's task owners, taken out of it.
    task_owners: TaskOwners,
    /// The sample names of [`FAMILIES`] (`name[_unit][_total]`).
    series_names: Vec<String>,
    family: usize,
    node: usize,
    header_written: bool,
    before_eof: String,
    chunk_size: usize,
    done: bool,
}

impl FleetText {
    /// The size a chunk reaches before it is handed out (it ends at a line's
    /// end, so it is a little larger).
    pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;

    /// The text of `fleet`; each node is exposed once (first of a name wins:
    /// a scrape with duplicate series is partly rejected by Prometheus).
    pub fn new(mut fleet: Fleet) -> Self {
        let mut seen = HashSet::new();
        let mut node_labels = String::with_capacity(fleet.nodes.len() * 64);
        let nodes: Vec<(usize, Range<usize>)> = fleet
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| seen.insert(node.labels.node.as_str()))
            .map(|(index, node)| {
                let start = node_labels.len();
                label(&mut node_labels, "node", &node.labels.node);
                node_labels.push(',');
                label(&mut node_labels, "hostgroup", &node.labels.hostgroup);
                node_labels.push(',');
                label(&mut node_labels, "environment", &node.labels.environment);
                (index, start..node_labels.len())
            })
            .collect();
        let tasks =
            nodes.iter().flat_map(|(index, _)| fleet.nodes[*index].sample.iter().flat_map(|sample| &sample.tasks));
        let task_owners = TaskOwners::new(std::mem::take(&mut fleet.task_owners), tasks);
        let series_names = FAMILIES
            .iter()
            .map(|family| {
                let header = family.header();
                let mut name = header.name.to_owned();
                if let Some(unit) = header.unit {
                    name.push('_');
                    name.push_str(unit);
                }
                if header.counter {
                    name.push_str("_total");
                }
                name
            })
            .collect();
        Self {
            fleet,
            node_labels,
            item_labels: ItemLabels::new(nodes.len()),
            task_owners,
            nodes,
            series_names,
            family: 0,
            node: 0,
            header_written: false,
            before_eof: String::new(),
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
            done: false,
        }
    }

    /// Writes `text` (more families, complete with their `# TYPE` lines)
    /// after the fleet's families, before `# EOF`.
    pub fn before_eof(mut self, text: String) -> Self {
        self.before_eof = text;
        self
    }

    /// Hands out chunks of about `bytes` bytes instead of
    /// [`Self::DEFAULT_CHUNK_SIZE`] (at least one line each).
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }
}

impl Iterator for FleetText {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        let mut out = String::with_capacity(self.chunk_size + 1024);
        loop {
            let Some(family) = FAMILIES.get(self.family) else {
                out.push_str(&std::mem::take(&mut self.before_eof));
                out.push_str("# EOF\n");
                self.done = true;
                return Some(out);
            };
            if !self.header_written {
                family.header().write(&mut out);
                self.header_written = true;
                self.item_labels.start_family(family.starts_group());
            }
            let series = &self.series_names[self.family];
            while self.node < self.nodes.len() && out.len() < self.chunk_size {
                let (index, labels) = &self.nodes[self.node];
                let base = &self.node_labels[labels.clone()];
                let node = &mut self.fleet.nodes[*index];
                let item_labels = (&mut self.item_labels, self.node);
                let mut lines = NodeLines { out: &mut out, series, base };
                family.write(&mut lines, node, &mut self.task_owners, item_labels);
                family.release(node, (&mut self.item_labels, self.node));
                self.node += 1;
            }
            if self.node < self.nodes.len() {
                return Some(out);
            }
            family.finish(&mut self.task_owners);
            self.family += 1;
            self.node = 0;
            self.header_written = false;
            if out.len() >= self.chunk_size {
                return Some(out);
            }
        }
    }
}

/// One metric family of the fleet's text.
#[derive(Debug, Clone, Copy)]
enum Family {
    Cpu,
    Node(usize),
    NodeCounter(usize),
    Uname,
    Filesystem(usize),
    Disk(usize),
    Net(usize),
    Task(usize),
    Up,
    Status,
    LogDropped,
}

/// Every family, in the order of the text.
const FAMILIES: [Family; 60] = [
    Family::Cpu,
    Family::Node(0),
    Family::Node(1),
    Family::Node(2),
    Family::Node(3),
    Family::Node(4),
    Family::Node(5),
    Family::Node(6),
    Family::Node(7),
    Family::Node(8),
    Family::Node(9),
    Family::Node(10),
    Family::Node(11),
    Family::Node(12),
    Family::Node(13),
    Family::Node(14),
    Family::Node(15),
    Family::Node(16),
    Family::Node(17),
    Family::Node(18),
    Family::Node(19),
    Family::Node(20),
    Family::Node(21),
    Family::Node(22),
    Family::Node(23),
    Family::NodeCounter(0),
    Family::NodeCounter(1),
    Family::NodeCounter(2),
    Family::NodeCounter(3),
    Family::NodeCounter(4),
    Family::NodeCounter(5),
    Family::NodeCounter(6),
    Family::NodeCounter(7),
    Family::NodeCounter(8),
    Family::NodeCounter(9),
    Family::NodeCounter(10),
    Family::Uname,
    Family::Filesystem(0),
    Family::Filesystem(1),
    Family::Filesystem(2),
    Family::Filesystem(3),
    Family::Filesystem(4),
    Family::Filesystem(5),
    Family::Filesystem(6),
    Family::Disk(0),
    Family::Disk(1),
    Family::Disk(2),
    Family::Disk(3),
    Family::Disk(4),
    Family::Net(0),
    Family::Net(1),
    Family::Net(2),
    Family::Net(3),
    Family::Net(4),
    Family::Net(5),
    Family::Task(0),
    Family::Task(1),
    Family::Up,
    Family::Status,
    Family::LogDropped,
];

/// A family's `# HELP`/`# TYPE`/`# UNIT` lines.
struct Header {
    name: &'static str,
    help: &'static str,
    unit: Option<&'static str>,
    counter: bool,
}

impl Header {
    fn write(&self, out: &mut String) {
        for (prefix, suffix) in [("# HELP ", self.help), ("# TYPE ", if self.counter { "counter" } else { "gauge" })] {
            out.push_str(prefix);
            out.push_str(self.name);
            if let Some(unit) = self.unit {
                out.push('_');
                out.push_str(unit);
            }
            out.push(' ');
            out.push_str(suffix);
            out.push('\n');
        }
        if let Some(unit) = self.unit {
            out.push_str("# UNIT ");
            out.push_str(self.name);
            out.push('_');
            out.push_str(unit);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
    }
}

const SECONDS: Option<&str> = Some("seconds");
const BYTES: Option<&str> = Some("bytes");

impl Family {
    /// Whether the family is the first of a group that shares its items'
    /// labels ([`ItemLabels`]).
    fn starts_group(self) -> bool {
        matches!(self, Family::Filesystem(0) | Family::Disk(0) | Family::Net(0) | Family::Task(0))
    }

    fn header(self) -> Header {
        let (name, help, unit, counter) = match self {
            Family::Cpu => ("node_cpu", "Seconds the CPUs spent in each mode.", SECONDS, true),
            Family::Node(index) => {
                let (name, help, unit, _) = NODE_GAUGES[index];
                (name, help, unit, false)
            }
            Family::NodeCounter(index) => {
                let (name, help, unit, _) = NODE_COUNTERS[index];
                (name, help, unit, true)
            }
            Family::Uname => {
                ("node_uname_info", "Labeled system information as provided by the uname system call.", None, false)
            }
            Family::Filesystem(index) => {
                let (name, help, unit, _) = FILESYSTEM_GAUGES[index];
                (name, help, unit, false)
            }
            Family::Disk(index) => {
                let (name, help, unit, _) = DISK_COUNTERS[index];
                (name, help, unit, true)
            }
            Family::Net(index) => {
                let (name, help, unit, _) = NET_COUNTERS[index];
                (name, help, unit, true)
            }
            Family::Task(index) => {
                let (name, help, unit, _) = TASK_GAUGES[index];
                (name, help, unit, false)
            }
            Family::Up => {
                ("drover_node_up", "1 when the node's agent is heartbeating (status ready), else 0.", None, false)
            }
            Family::Status => (
                "drover_node_status",
                "The node's status: 1 on the series of its current status, 0 on the others.",
                None,
                false,
            ),
            Family::LogDropped => (
                "drover_node_log_dropped_lines",
                "Log lines an agent dropped because its spool was full or its records were damaged on disk.",
                None,
                true,
            ),
        };
        Header { name, help, unit, counter }
    }

    /// The family's series of one node (none when it lacks the data).
    /// `item_labels` keeps the labels of its group's items ([`ItemLabels`]),
    /// with the node's position among the unique nodes.
    fn write(
        self,
        lines: &mut NodeLines,
        node: &FleetNode,
        task_owners: &mut TaskOwners,
        (item_labels, position): (&mut ItemLabels, usize),
    ) {
        let sample = node.sample.as_ref();
        match self {
            Family::Cpu => {
                let mut number = itoa::Buffer::new();
                for cpu in sample.iter().flat_map(|sample| &sample.cpus) {
                    let number = number.format(cpu.cpu);
                    for (mode, millis) in cpu.modes() {
                        let out = lines.start();
                        // Digits and fixed names: nothing to escape.
                        out.push_str(",cpu=\"");
                        out.push_str(number);
                        out.push_str("\",mode=\"");
                        out.push_str(mode);
                        out.push('"');
                        lines.end(Number::millis(millis));
                    }
                }
            }
            Family::Node(index) => {
                if let Some(value) = sample.and_then(NODE_GAUGES[index].3) {
                    lines.line("", value.gauge());
                }
            }
            Family::NodeCounter(index) => {
                if let Some(value) = sample.and_then(NODE_COUNTERS[index].3) {
                    lines.line("", value.counter());
                }
            }
            Family::Uname => {
                if let Some(uname) = sample.and_then(|sample| sample.uname.as_ref()) {
                    let out = lines.start();
                    label(out, ",domainname", &uname.domainname);
                    label(out, ",machine", &uname.machine);
                    label(out, ",nodename", &uname.nodename);
                    label(out, ",release", &uname.release);
                    label(out, ",sysname", &uname.sysname);
                    label(out, ",version", &uname.version);
                    lines.end(Number::Integer(1));
                }
            }
            Family::Filesystem(index) => {
                let Some(sample) = sample else { return };
                let write_labels = |labels: &mut String, disk: &DiskSample| {
                    let device = sample.devices_by_mount.get(&disk.mount).map_or("", String::as_str);
                    label(labels, ",device", device);
                    label(labels, ",fstype", &disk.fs_type);
                    label(labels, ",mountpoint", &disk.mount);
                };
                let value = |disk: &DiskSample| Number::Integer(FILESYSTEM_GAUGES[index].3(disk));
                item_labels.lines(position, lines, &sample.disks, write_labels, value);
            }
            Family::Disk(index) => {
                let Some(sample) = sample else { return };
                let write_labels =
                    |labels: &mut String, disk: &BlockDeviceSample| label(labels, ",device", &disk.device);
                let value = |disk: &BlockDeviceSample| DISK_COUNTERS[index].3(disk).counter();
                item_labels.lines(position, lines, &sample.block_devices, write_labels, value);
            }
            Family::Net(index) => {
                let Some(sample) = sample else { return };
                let write_labels = |labels: &mut String, net: &NetSample| label(labels, ",device", &net.interface);
                let value = |net: &NetSample| Number::Integer(NET_COUNTERS[index].3(net));
                item_labels.lines(position, lines, &sample.net, write_labels, value);
            }
            Family::Task(index) => {
                let Some(sample) = sample else { return };
                let write_labels = |labels: &mut String, task: &TaskSample| {
                    task_owners.with_next(&task.alloc_id, |owner| {
                        label(labels, ",job", owner.map_or("", |owner| owner.job.as_str()));
                        label(labels, ",group", owner.map_or("", |owner| owner.group.as_str()));
                    });
                    label(labels, ",task", &task.task);
                    label(labels, ",alloc_id", &task.alloc_id);
                };
                let value = |task: &TaskSample| TASK_GAUGES[index].3(task).gauge();
                item_labels.lines(position, lines, &sample.tasks, write_labels, value);
            }
            Family::Up => {
                if let Some(status) = node.status {
                    lines.line("", Number::Integer(u64::from(status == NodeStatus::Ready)));
                }
            }
            Family::Status => {
                if let Some(status) = node.status {
                    for candidate in ALL_STATUSES {
                        label(lines.start(), ",status", candidate.as_str());
                        lines.end(Number::Integer(u64::from(status == candidate)));
                    }
                }
            }
            Family::LogDropped => {
                if let Some(dropped) = node.log_dropped_lines {
                    lines.line("", Number::Integer(dropped));
                }
            }
        }
    }

    /// Frees what of `node` no later family of [`FAMILIES`] reads, once this
    /// family's series of it are written, while it is still in the cache:
    /// dropping the whole fleet at the end (about 500,000 allocations for
    /// 10,000 nodes) took more than a quarter of the rendering time.
    /// tests/render_golden.rs, whose fleet has every part, would miss a
    /// series read after its release.
    fn release(self, node: &mut FleetNode, (item_labels, position): (&mut ItemLabels, usize)) {
        let is_last = |index: usize, count: usize| index + 1 == count;
        if matches!(self, Family::Task(index) if is_last(index, TASK_GAUGES.len())) {
            // The last family that reads samples or item labels.
            node.sample = None;
            item_labels.release(position);
            return;
        }
        let Some(sample) = node.sample.as_mut() else { return };
        match self {
            Family::Cpu => sample.cpus = Vec::new(),
            Family::Uname => sample.uname = None,
            Family::Filesystem(index) if is_last(index, FILESYSTEM_GAUGES.len()) => {
                sample.disks = Vec::new();
                sample.devices_by_mount.clear();
            }
            Family::Disk(index) if is_last(index, DISK_COUNTERS.len()) => sample.block_devices = Vec::new(),
            Family::Net(index) if is_last(index, NET_COUNTERS.len()) => sample.net = Vec::new(),
            _ => {}
        }
    }

    /// Frees what no later family reads, once every node's series of this
    /// family are written: the task owners left after the first task family
    /// (the second reads the labels it kept).
    fn finish(self, task_owners: &mut TaskOwners) {
        if self.starts_group() && matches!(self, Family::Task(_)) {
            task_owners.clear();
        }
    }
}

/// The labels of every node's items (filesystems, block devices, interfaces
/// or tasks) in the group of families being written. An item's labels are
/// the same in every family of its group (the 3 filesystem families, the 5
/// disk ones, …): the group's first family looks them up (a task's owner is
/// a hash lookup), escapes them and keeps them here, and the others copy
/// them. Each node's are kept in a string of its own, which fits in the room
/// its released parts left: one string for all nodes grew the process by
/// the largest group's (about 5 MB of task labels for 10,000 nodes).
#[derive(Debug)]
struct ItemLabels {
    /// Per unique node, its items' labels end to end.
    by_node: Vec<String>,
    /// The length of each item's labels, every node's items in order.
    lengths: Vec<usize>,
    /// Whether the family being written starts its group.
    first_of_group: bool,
    /// The next item of `lengths` to read.
    next: usize,
}

impl ItemLabels {
    fn new(num_nodes: usize) -> Self {
        Self { by_node: vec![String::new(); num_nodes], lengths: Vec::new(), first_of_group: false, next: 0 }
    }

    /// A family starts: the first of its group writes the labels anew.
    fn start_family(&mut self, first_of_group: bool) {
        self.first_of_group = first_of_group;
        self.next = 0;
        if first_of_group {
            self.lengths.clear();
        }
    }

    /// The series of the family for the node at `position` among the unique
    /// nodes, a line per item.
    fn lines<Item>(
        &mut self,
        position: usize,
        lines: &mut NodeLines,
        items: &[Item],
        mut write_labels: impl FnMut(&mut String, &Item),
        value: impl Fn(&Item) -> Number,
    ) {
        let text = &mut self.by_node[position];
        if self.first_of_group {
            text.clear();
            // Most items' labels fit (a task's are 80 bytes or so): one
            // allocation per node, grown once for tasks.
            text.reserve(items.len() * 64);
            for item in items {
                let start = text.len();
                write_labels(text, item);
                self.lengths.push(text.len() - start);
            }
        }
        let mut start = 0;
        for item in items {
            let end = start + self.lengths[self.next];
            self.next += 1;
            lines.line(&text[start..end], value(item));
            start = end;
        }
    }

    /// Frees the labels of the node at `position`, read for the last time.
    fn release(&mut self, position: usize) {
        self.by_node[position] = String::new();
    }
}

/// The fleet's task owners, each freed by the first task family right
/// after it writes the labels of the last task of its allocation, while the
/// owner is in the cache: dropping the map of 40,000 owners (10,000 nodes)
/// at the end, in its own order, took about 30 ms.
#[derive(Debug)]
struct TaskOwners {
    by_alloc: HashMap<String, TaskOwner>,
    /// For every task of the unique nodes' samples, in the order the task
    /// families write them, whether no later task has its allocation id.
    is_last: Vec<bool>,
    /// The next task of `is_last`.
    next: usize,
}

impl TaskOwners {
    fn new<'a>(by_alloc: HashMap<String, TaskOwner>, tasks: impl Iterator<Item = &'a TaskSample>) -> Self {
        // The tasks by the hash of their allocation id, then by position: the
        // last of each hash is the last of its allocation. Two ids with the
        // same hash count as one: the earlier is only freed with the rest.
        let mut by_hash: Vec<(u64, usize)> =
            tasks.enumerate().map(|(position, task)| (quick_hash(&task.alloc_id), position)).collect();
        by_hash.sort_unstable();
        let mut is_last = vec![false; by_hash.len()];
        for (index, (hash, position)) in by_hash.iter().enumerate() {
            if by_hash.get(index + 1).is_none_or(|(next_hash, _)| next_hash != hash) {
                is_last[*position] = true;
            }
        }
        Self { by_alloc, is_last, next: 0 }
    }

    /// Calls `write` with the owner of the next task, whose allocation is
    /// `alloc_id` (`None` when it has none), then frees the owner if no later
    /// task needs it.
    fn with_next(&mut self, alloc_id: &str, write: impl FnOnce(Option<&TaskOwner>)) {
        let is_last = self.is_last.get(self.next).copied().unwrap_or(false);
        self.next += 1;
        if is_last {
            write(self.by_alloc.remove(alloc_id).as_ref());
        } else {
            write(self.by_alloc.get(alloc_id));
        }
    }

    /// Frees the owners no task asked for, once every task is written.
    fn clear(&mut self) {
        debug_assert_eq!(self.next, self.is_last.len(), "task owners asked for out of order");
        self.by_alloc = HashMap::new();
        self.is_last = Vec::new();
    }
}

/// A hash of `text` 8 bytes at a time (FxHash's step), cheaper than the
/// map's SipHash, whose resistance to chosen keys is not needed here: a
/// collision only keeps an owner until the end.
fn quick_hash(text: &str) -> u64 {
    let mut hash = text.len() as u64;
    for word in text.as_bytes().chunks(8) {
        let mut bytes = [0; 8];
        bytes[..word.len()].copy_from_slice(word);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(bytes)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    hash
}

/// Every status, in the order `drover_node_status` lists them.
const ALL_STATUSES: [NodeStatus; 4] =
    [NodeStatus::Initializing, NodeStatus::Ready, NodeStatus::Disconnected, NodeStatus::Down];

type NodeRead = fn(&NodeSample) -> Option<Value>;
type DiskRead = fn(&DiskSample) -> u64;
type DeviceRead = fn(&BlockDeviceSample) -> Value;
type NetRead = fn(&NetSample) -> u64;
type TaskRead = fn(&TaskSample) -> Value;

const NODE_GAUGES: [(&str, &str, Option<&str>, NodeRead); 24] = [
    ("node_load1", "1m load average.", None, |sample| Some(Value::Float(sample.load1))),
    ("node_load5", "5m load average.", None, |sample| Some(Value::Float(sample.load5))),
    ("node_load15", "15m load average.", None, |sample| Some(Value::Float(sample.load15))),
    ("node_memory_MemTotal", "Memory information field MemTotal_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_total)
    }),
    ("node_memory_MemAvailable", "Memory information field MemAvailable_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_available)
    }),
    ("node_memory_MemFree", "Memory information field MemFree_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_free)
    }),
    ("node_memory_Buffers", "Memory information field Buffers_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_buffers)
    }),
    ("node_memory_Cached", "Memory information field Cached_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_cached)
    }),
    ("node_memory_SwapTotal", "Memory information field SwapTotal_bytes.", BYTES, |sample| {
        known_memory(sample, sample.swap_total)
    }),
    ("node_memory_SwapFree", "Memory information field SwapFree_bytes.", BYTES, |sample| {
        known_memory(sample, sample.swap_total.saturating_sub(sample.swap_used))
    }),
    ("node_memory_SwapCached", "Memory information field SwapCached_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_swap_cached)
    }),
    ("node_memory_Slab", "Memory information field Slab_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_slab)
    }),
    ("node_memory_SReclaimable", "Memory information field SReclaimable_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_sreclaimable)
    }),
    ("node_memory_PageTables", "Memory information field PageTables_bytes.", BYTES, |sample| {
        known_memory(sample, sample.memory_page_tables)
    }),
    ("node_procs_running", "Number of processes in runnable state.", None, |sample| {
        Some(Value::Integer(u64::from(sample.processes_running)))
    }),
    ("node_boot_time", "Node boot time, in unixtime.", SECONDS, |sample| {
        if sample.boot_time_secs > 0 {
            let boot_time_ms = i64::try_from(sample.boot_time_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
            return Some(Value::Seconds(boot_time_ms));
        }
        // An older agent sends no boot time: the server's clock minus uptime.
        let uptime_ms = i64::try_from(sample.uptime_secs).unwrap_or(i64::MAX).saturating_mul(1000);
        (sample.uptime_secs > 0).then(|| Value::Seconds(sample.time_ms.saturating_sub(uptime_ms) / 1000 * 1000))
    }),
    ("node_time", "System time in seconds since epoch (1970).", SECONDS, |sample| {
        (sample.clock_ms > 0).then_some(Value::Seconds(sample.clock_ms))
    }),
    ("node_filefd_allocated", "File descriptor statistics: allocated.", None, |sample| {
        (sample.filefd_maximum > 0).then_some(Value::Integer(sample.filefd_allocated))
    }),
    ("node_filefd_maximum", "File descriptor statistics: maximum.", None, |sample| {
        (sample.filefd_maximum > 0).then_some(Value::Integer(sample.filefd_maximum))
    }),
    ("drover_node_processes", "Processes on the node.", None, |sample| {
        Some(Value::Integer(u64::from(sample.processes_total)))
    }),
    (
        "drover_node_sample_timestamp",
        "When the server received the node's latest sample, Unix time.",
        SECONDS,
        |sample| Some(Value::Seconds(sample.time_ms)),
    ),
    ("drover_agent_resident_memory", "Resident memory of the drover agent process.", BYTES, |sample| {
        agent(sample, |agent| Value::Integer(agent.resident_bytes))
    }),
    ("drover_agent_start_time", "When the drover agent process started, Unix time.", SECONDS, |sample| {
        agent(sample, |agent| {
            Value::Seconds(i64::try_from(agent.start_time_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000))
        })
    }),
    ("drover_agent_log_lines_pending", "Log lines the agent read and no server acknowledged yet.", None, |sample| {
        agent(sample, |agent| Value::Integer(agent.log_lines_read.saturating_sub(agent.log_lines_acknowledged)))
    }),
];

/// A figure of the agent's own, when the agent sent them.
fn agent(sample: &NodeSample, figure: fn(&AgentSample) -> Value) -> Option<Value> {
    sample.agent.as_ref().map(figure)
}

const NODE_COUNTERS: [(&str, &str, Option<&str>, NodeRead); 11] = [
    ("node_context_switches", "Total number of context switches.", None, |sample| {
        (sample.context_switches > 0).then_some(Value::Integer(sample.context_switches))
    }),
    ("node_intr", "Total number of interrupts serviced.", None, |sample| {
        (sample.interrupts > 0).then_some(Value::Integer(sample.interrupts))
    }),
    ("node_pressure_cpu_waiting", "Total time in seconds that processes have waited for CPU time", SECONDS, |sample| {
        pressure(sample, |pressure| pressure.cpu_some_us)
    }),
    (
        "node_pressure_memory_waiting",
        "Total time in seconds that processes have waited for memory",
        SECONDS,
        |sample| pressure(sample, |pressure| pressure.memory_some_us),
    ),
    (
        "node_pressure_memory_stalled",
        "Total time in seconds no process could make progress due to memory congestion",
        SECONDS,
        |sample| pressure(sample, |pressure| pressure.memory_full_us),
    ),
    (
        "node_pressure_io_waiting",
        "Total time in seconds that processes have waited due to IO congestion",
        SECONDS,
        |sample| pressure(sample, |pressure| pressure.io_some_us),
    ),
    (
        "node_pressure_io_stalled",
        "Total time in seconds no process could make progress due to IO congestion",
        SECONDS,
        |sample| pressure(sample, |pressure| pressure.io_full_us),
    ),
    (
        "node_pressure_irq_stalled",
        "Total time in seconds no process could make progress due to IRQ congestion",
        SECONDS,
        |sample| pressure(sample, |pressure| pressure.irq_full_us),
    ),
    ("drover_agent_cpu", "CPU time the drover agent process used, user and system.", SECONDS, |sample| {
        agent(sample, |agent| Value::Seconds(i64::try_from(agent.cpu_ms).unwrap_or(i64::MAX)))
    }),
    ("drover_agent_connections", "Sessions the drover agent opened to a server since it started.", None, |sample| {
        agent(sample, |agent| Value::Integer(agent.sessions))
    }),
    (
        "drover_agent_log_lines_acknowledged",
        "Log lines of the node that a server acknowledged, since the node's log spool began.",
        None,
        |sample| agent(sample, |agent| Value::Integer(agent.log_lines_acknowledged)),
    ),
];

/// One pressure figure, when the node's kernel offers it.
fn pressure(sample: &NodeSample, figure: fn(&PressureSample) -> Option<u64>) -> Option<Value> {
    sample.pressure.as_ref().and_then(figure).map(Value::Micros)
}

const FILESYSTEM_GAUGES: [(&str, &str, Option<&str>, DiskRead); 7] = [
    ("node_filesystem_size", "Filesystem size in bytes.", BYTES, |disk| disk.total),
    ("node_filesystem_avail", "Filesystem space available to non-root users in bytes.", BYTES, |disk| disk.avail),
    ("node_filesystem_free", "Filesystem free space in bytes.", BYTES, |disk| disk.total.saturating_sub(disk.used)),
    ("node_filesystem_files", "Filesystem total file nodes.", None, |disk| disk.files),
    ("node_filesystem_files_free", "Filesystem total free file nodes.", None, |disk| disk.files_free),
    ("node_filesystem_readonly", "Filesystem read-only status.", None, |disk| u64::from(disk.readonly)),
    // A filesystem whose statvfs fails is left out of the sample, so every
    // one listed read without an error.
    (
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
        None,
        |_| 0,
    ),
];

const DISK_COUNTERS: [(&str, &str, Option<&str>, DeviceRead); 5] = [
    ("node_disk_read", "The total number of bytes read successfully.", BYTES, |disk| Value::Integer(disk.read_bytes)),
    ("node_disk_written", "The total number of bytes written successfully.", BYTES, |disk| {
        Value::Integer(disk.written_bytes)
    }),
    ("node_disk_reads_completed", "The total number of reads completed successfully.", None, |disk| {
        Value::Integer(disk.reads_completed)
    }),
    ("node_disk_writes_completed", "The total number of writes completed successfully.", None, |disk| {
        Value::Integer(disk.writes_completed)
    }),
    ("node_disk_io_time", "Total seconds spent doing I/Os.", SECONDS, |disk| {
        Value::Seconds(i64::try_from(disk.io_time_ms).unwrap_or(i64::MAX))
    }),
];

const NET_COUNTERS: [(&str, &str, Option<&str>, NetRead); 6] = [
    ("node_network_receive", "Network device statistic receive_bytes.", BYTES, |net| net.rx_bytes),
    ("node_network_transmit", "Network device statistic transmit_bytes.", BYTES, |net| net.tx_bytes),
    ("node_network_receive_packets", "Network device statistic receive_packets.", None, |net| net.rx_packets),
    ("node_network_transmit_packets", "Network device statistic transmit_packets.", None, |net| net.tx_packets),
    ("node_network_receive_errs", "Network device statistic receive_errs.", None, |net| net.rx_errors),
    ("node_network_transmit_errs", "Network device statistic transmit_errs.", None, |net| net.tx_errors),
];

const TASK_GAUGES: [(&str, &str, Option<&str>, TaskRead); 2] = [
    ("drover_task_cpu_percent", "CPU used by the task since the previous sample, percent of the node.", None, |task| {
        Value::Float(task.cpu_percent)
    }),
    ("drover_task_memory", "Memory the task holds (cgroup working set or resident set).", BYTES, |task| {
        Value::Integer(task.memory_bytes)
    }),
];

/// Memory figures are left out when the node could not read its memory.
fn known_memory(sample: &NodeSample, value: u64) -> Option<Value> {
    (sample.memory_total > 0).then_some(Value::Integer(value))
}

/// A value as read from a sample: integers stay integers (a byte count of
/// 2^53 and more would lose digits as a float).
#[derive(Debug, Clone, Copy)]
enum Value {
    Integer(u64),
    Float(f32),
    /// Milliseconds, written as seconds.
    Seconds(i64),
    /// Microseconds, written as seconds.
    Micros(u64),
}

impl Value {
    fn gauge(self) -> Number {
        match self {
            Value::Integer(value) => Number::Integer(value),
            Value::Float(value) => Number::Float(widen(value)),
            Value::Seconds(millis) => Number::Millis(millis),
            Value::Micros(micros) => Number::Float(micros as f64 / 1_000_000.0),
        }
    }

    /// Counters never go below 0.
    fn counter(self) -> Number {
        match self {
            Value::Seconds(millis) => Number::Millis(millis.max(0)),
            other => other.gauge(),
        }
    }
}

/// A number as written.
#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(u64),
    Float(f64),
    /// Milliseconds, written as seconds (see [`write_millis`]).
    Millis(i64),
}

impl Number {
    fn millis(millis: u64) -> Number {
        i64::try_from(millis).map_or(Number::Float(millis as f64 / 1000.0), Number::Millis)
    }
}

/// Where one node's series of one family go: the chunk, with the family's
/// series name and the node's labels.
struct NodeLines<'a> {
    out: &'a mut String,
    series: &'a str,
    base: &'a str,
}

impl NodeLines<'_> {
    /// One series: `series{base,labels} value`, `labels` written and escaped
    /// (`,name="value"` each).
    fn line(&mut self, labels: &str, value: Number) {
        self.start().push_str(labels);
        self.end(value);
    }

    /// Starts a series, `series{base`, for its own labels to follow.
    fn start(&mut self) -> &mut String {
        self.out.push_str(self.series);
        self.out.push('{');
        self.out.push_str(self.base);
        self.out
    }

    /// Ends a series: `} value` and the line's end.
    fn end(&mut self, value: Number) {
        self.out.push_str("} ");
        match value {
            Number::Integer(value) => self.out.push_str(itoa::Buffer::new().format(value)),
            Number::Float(value) => self.out.push_str(dtoa::Buffer::new().format(value)),
            Number::Millis(millis) => write_millis(self.out, millis),
        }
        self.out.push('\n');
    }
}

/// `millis` in seconds, as dtoa writes `millis as f64 / 1000.0` (`12.345`,
/// `0.5`, `3.0`, `-0.001`), without the float: a third of the series are CPU
/// seconds, and dtoa took 8 % of the rendering time.
///
/// Below 10^15 milliseconds the decimal `millis / 1000` has at most 15
/// significant digits, so it is the shortest text that reads back as that
/// f64, and it lies at least 1/250 of the f64's spacing inside the f64's
/// rounding interval, clear of the error of dtoa's Grisu2 (it does not find
/// the shortest text when that lies close to the interval's edge). The test
/// `millis_are_written_as_dtoa_writes_them` compares the two, the values
/// closest to the edge included. Microseconds may lie 1/31,250 from it, and
/// dtoa writes some with 17 digits (`1.9995559999999999`): they stay floats.
fn write_millis(out: &mut String, millis: i64) {
    const SHORTEST_BELOW: u64 = 1_000_000_000_000_000;
    let magnitude = millis.unsigned_abs();
    if magnitude >= SHORTEST_BELOW {
        out.push_str(dtoa::Buffer::new().format(millis as f64 / 1000.0));
        return;
    }
    if millis < 0 {
        out.push('-');
    }
    out.push_str(itoa::Buffer::new().format(magnitude / 1000));
    out.push('.');
    let thousandths = magnitude % 1000;
    // At least one decimal, no trailing zero.
    let num_decimals = match thousandths {
        0 => 1,
        _ if thousandths.is_multiple_of(100) => 1,
        _ if thousandths.is_multiple_of(10) => 2,
        _ => 3,
    };
    let decimals = [thousandths / 100, thousandths / 10 % 10, thousandths % 10];
    for decimal in &decimals[..num_decimals] {
        out.push(char::from(b'0' + *decimal as u8));
    }
}

/// `name="value"`, with `\`, `"` and newlines in the value escaped.
pub(crate) fn label(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    if !value.bytes().any(|byte| matches!(byte, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        out.push('"');
        return;
    }
    let mut last = 0;
    for (index, byte) in value.bytes().enumerate() {
        let escaped = match byte {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&value[last..index]);
        out.push_str(escaped);
        last = index + 1;
    }
    out.push_str(&value[last..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::NodeLabels;

    fn through_dtoa(millis: i64) -> String {
        dtoa::Buffer::new().format(millis as f64 / 1000.0).to_owned()
    }

    fn written(millis: i64) -> String {
        let mut out = String::new();
        write_millis(&mut out, millis);
        out
    }

    #[test]
    fn tasks_of_one_allocation_all_get_its_owner() {
        // Owners are freed after their allocation's last task: two tasks of
        // one allocation, and the same allocation again on a later node.
        let task = |alloc_id: &str, name: &str| TaskSample {
            alloc_id: alloc_id.into(),
            task: name.into(),
            ..TaskSample::default()
        };
        let node = |name: &str, tasks: Vec<TaskSample>| FleetNode {
            labels: NodeLabels { node: name.into(), ..NodeLabels::default() },
            sample: Some(NodeSample { tasks, ..NodeSample::default() }),
            ..FleetNode::default()
        };
        let owner = |job: &str| TaskOwner { job: job.into(), group: "g".into() };
        let fleet = Fleet {
            nodes: vec![
                node("n1", vec![task("x", "web"), task("y", "api"), task("x", "sidecar")]),
                node("n2", vec![task("x", "late"), task("z", "orphan")]),
            ],
            task_owners: [("x".to_owned(), owner("shop")), ("y".to_owned(), owner("cart"))].into(),
        };
        let text: String = FleetText::new(fleet).collect();
        for series in ["drover_task_cpu_percent", "drover_task_memory_bytes"] {
            for (node, job, task, alloc_id) in [
                ("n1", "shop", "web", "x"),
                ("n1", "cart", "api", "y"),
                ("n1", "shop", "sidecar", "x"),
                ("n2", "shop", "late", "x"),
                ("n2", "", "orphan", "z"),
            ] {
                let group = if job.is_empty() { "" } else { "g" };
                let labels = format!(
                    "{series}{{node=\"{node}\",hostgroup=\"\",environment=\"\",job=\"{job}\",group=\"{group}\",task=\"{task}\",alloc_id=\"{alloc_id}\"}} "
                );
                assert!(text.contains(&labels), "{labels} missing from\n{text}");
            }
        }
    }

    #[test]
    fn millis_are_written_as_dtoa_writes_them() {
        let edges = [0, 1, -1, 999, 1000, 1001, 999_999_999_999_999, 1_000_000_000_000_000, i64::MAX, i64::MIN];
        let every_small = -20_000..200_000;
        // A few values on each side of every power of two (where the f64
        // spacing halves), in seconds from 2^-10 to 2^49.
        let powers_of_two = (-10..50).flat_map(|exponent| {
            let center = (2_f64.powi(exponent) * 1000.0) as i64;
            (center - 300).max(0)..center + 300
        });
        // Pseudo-random values of every length up to 15 digits (xorshift).
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let random = std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let num_digits = 1 + (state >> 60) as u32 % 15;
            (state % 10_u64.pow(num_digits)) as i64
        })
        .take(100_000);
        for millis in edges.into_iter().chain(every_small).chain(powers_of_two).chain(random) {
            assert_eq!(written(millis), through_dtoa(millis), "{millis} ms");
            assert_eq!(written(-millis.saturating_abs()), through_dtoa(-millis.saturating_abs()), "-{millis} ms");
        }
    }

    #[test]
    fn millis_closest_to_the_rounding_edge_are_written_as_dtoa_writes_them() {
        // The decimals that lie closest to the edge of their f64's rounding
        // interval: `millis / 1000` at 1/250 of the f64 spacing from a point
        // halfway between two f64s, i.e. `millis * 2^k` within 8 of an odd
        // multiple of 1000, where 2^-k is half the spacing. Some in every
        // binade from 1/1024 s to 2^49 s.
        let mut num_checked = 0;
        for exponent in -10_i32..50 {
            let half_spacing_shift = 53 - exponent;
            let low = (2_f64.powi(exponent) * 1000.0).ceil() as i64;
            let high = (2_f64.powi(exponent + 1) * 1000.0) as i64;
            let mut found = 0;
            let mut millis = low;
            while millis < high && found < 50 {
                let scaled = i128::from(millis) << half_spacing_shift;
                let from_halfway = (scaled.rem_euclid(2000) - 1000).abs();
                if from_halfway <= 8 {
                    assert_eq!(written(millis), through_dtoa(millis), "{millis} ms");
                    found += 1;
                }
                millis += 1;
            }
            num_checked += found;
        }
        assert!(num_checked > 2000, "only {num_checked} values near an edge");
    }
}
