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

use std::collections::{HashMap, HashSet};

use drover_types::NodeStatus;
use drover_types::usage::{BlockDeviceSample, DiskSample, NetSample, NodeSample, PressureSample, TaskSample};

use crate::prometheus::{Fleet, FleetNode, TaskOwner, widen};

/// The chunks of a fleet's exposition text, in order; see the module docs.
#[derive(Debug)]
pub struct FleetText {
    fleet: Fleet,
    /// Each unique node's labels, written and escaped once:
    /// `node="…",hostgroup="…",environment="…"`, by position in `fleet.nodes`
    /// (first of a name wins; later duplicates are not listed).
    nodes: Vec<(usize, String)>,
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
    pub fn new(fleet: Fleet) -> Self {
        let mut seen = HashSet::new();
        let nodes = fleet
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| seen.insert(node.labels.node.as_str()))
            .map(|(index, node)| {
                let mut base = String::with_capacity(64);
                label(&mut base, "node", &node.labels.node);
                base.push(',');
                label(&mut base, "hostgroup", &node.labels.hostgroup);
                base.push(',');
                label(&mut base, "environment", &node.labels.environment);
                (index, base)
            })
            .collect();
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
            }
            let series = &self.series_names[self.family];
            while self.node < self.nodes.len() && out.len() < self.chunk_size {
                let (index, base) = &self.nodes[self.node];
                family.write(&mut out, series, base, &self.fleet.nodes[*index], &self.fleet.task_owners);
                self.node += 1;
            }
            if self.node < self.nodes.len() {
                return Some(out);
            }
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
const FAMILIES: [Family; 48] = [
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
    Family::NodeCounter(0),
    Family::NodeCounter(1),
    Family::NodeCounter(2),
    Family::NodeCounter(3),
    Family::NodeCounter(4),
    Family::NodeCounter(5),
    Family::NodeCounter(6),
    Family::NodeCounter(7),
    Family::Uname,
    Family::Filesystem(0),
    Family::Filesystem(1),
    Family::Filesystem(2),
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
                let (name, help, _) = FILESYSTEM_GAUGES[index];
                (name, help, BYTES, false)
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
    fn write(
        self,
        out: &mut String,
        series: &str,
        base: &str,
        node: &FleetNode,
        task_owners: &HashMap<String, TaskOwner>,
    ) {
        let sample = node.sample.as_ref();
        match self {
            Family::Cpu => {
                let mut number = itoa::Buffer::new();
                for cpu in sample.iter().flat_map(|sample| &sample.cpus) {
                    let number = number.format(cpu.cpu);
                    for (mode, millis) in cpu.modes() {
                        let value = Number::Float(millis as f64 / 1000.0);
                        line(out, series, base, &[("cpu", number), ("mode", mode)], value);
                    }
                }
            }
            Family::Node(index) => {
                if let Some(value) = sample.and_then(NODE_GAUGES[index].3) {
                    line(out, series, base, &[], value.gauge());
                }
            }
            Family::NodeCounter(index) => {
                if let Some(value) = sample.and_then(NODE_COUNTERS[index].3) {
                    line(out, series, base, &[], value.counter());
                }
            }
            Family::Uname => {
                if let Some(uname) = sample.and_then(|sample| sample.uname.as_ref()) {
                    let labels = [
                        ("domainname", uname.domainname.as_str()),
                        ("machine", uname.machine.as_str()),
                        ("nodename", uname.nodename.as_str()),
                        ("release", uname.release.as_str()),
                        ("sysname", uname.sysname.as_str()),
                        ("version", uname.version.as_str()),
                    ];
                    line(out, series, base, &labels, Number::Integer(1));
                }
            }
            Family::Filesystem(index) => {
                let Some(sample) = sample else { return };
                for disk in &sample.disks {
                    let device = sample.devices_by_mount.get(&disk.mount).map_or("", String::as_str);
                    let labels = [("device", device), ("fstype", disk.fs_type.as_str()), ("mountpoint", &disk.mount)];
                    line(out, series, base, &labels, Number::Integer(FILESYSTEM_GAUGES[index].2(disk)));
                }
            }
            Family::Disk(index) => {
                for disk in sample.iter().flat_map(|sample| &sample.block_devices) {
                    line(out, series, base, &[("device", &disk.device)], DISK_COUNTERS[index].3(disk).counter());
                }
            }
            Family::Net(index) => {
                for net in sample.iter().flat_map(|sample| &sample.net) {
                    line(out, series, base, &[("device", &net.interface)], Number::Integer(NET_COUNTERS[index].3(net)));
                }
            }
            Family::Task(index) => {
                let nobody = TaskOwner::default();
                for task in sample.iter().flat_map(|sample| &sample.tasks) {
                    let owner = task_owners.get(&task.alloc_id).unwrap_or(&nobody);
                    let labels = [
                        ("job", owner.job.as_str()),
                        ("group", owner.group.as_str()),
                        ("task", task.task.as_str()),
                        ("alloc_id", task.alloc_id.as_str()),
                    ];
                    line(out, series, base, &labels, TASK_GAUGES[index].3(task).gauge());
                }
            }
            Family::Up => {
                if let Some(status) = node.status {
                    line(out, series, base, &[], Number::Integer(u64::from(status == NodeStatus::Ready)));
                }
            }
            Family::Status => {
                if let Some(status) = node.status {
                    for candidate in ALL_STATUSES {
                        let value = Number::Integer(u64::from(status == candidate));
                        line(out, series, base, &[("status", candidate.as_str())], value);
                    }
                }
            }
            Family::LogDropped => {
                if let Some(dropped) = node.log_dropped_lines {
                    line(out, series, base, &[], Number::Integer(dropped));
                }
            }
        }
    }
}

/// Every status, in the order `drover_node_status` lists them.
const ALL_STATUSES: [NodeStatus; 4] =
    [NodeStatus::Initializing, NodeStatus::Ready, NodeStatus::Disconnected, NodeStatus::Down];

type NodeRead = fn(&NodeSample) -> Option<Value>;
type DiskRead = fn(&DiskSample) -> u64;
type DeviceRead = fn(&BlockDeviceSample) -> Value;
type NetRead = fn(&NetSample) -> u64;
type TaskRead = fn(&TaskSample) -> Value;

const NODE_GAUGES: [(&str, &str, Option<&str>, NodeRead); 19] = [
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
    ("drover_node_processes", "Processes on the node.", None, |sample| {
        Some(Value::Integer(u64::from(sample.processes_total)))
    }),
    (
        "drover_node_sample_timestamp",
        "When the server received the node's latest sample, Unix time.",
        SECONDS,
        |sample| Some(Value::Seconds(sample.time_ms)),
    ),
];

const NODE_COUNTERS: [(&str, &str, Option<&str>, NodeRead); 8] = [
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
];

/// One pressure figure, when the node's kernel offers it.
fn pressure(sample: &NodeSample, figure: fn(&PressureSample) -> Option<u64>) -> Option<Value> {
    sample.pressure.as_ref().and_then(figure).map(Value::Micros)
}

const FILESYSTEM_GAUGES: [(&str, &str, DiskRead); 3] = [
    ("node_filesystem_size", "Filesystem size in bytes.", |disk| disk.total),
    ("node_filesystem_avail", "Filesystem space available to non-root users in bytes.", |disk| disk.avail),
    ("node_filesystem_free", "Filesystem free space in bytes.", |disk| disk.total.saturating_sub(disk.used)),
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
            Value::Seconds(millis) => Number::Float(millis as f64 / 1000.0),
            Value::Micros(micros) => Number::Float(micros as f64 / 1_000_000.0),
        }
    }

    /// Counters never go below 0.
    fn counter(self) -> Number {
        match self {
            Value::Seconds(millis) => Number::Float(millis.max(0) as f64 / 1000.0),
            other => other.gauge(),
        }
    }
}

/// A number as written.
#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(u64),
    Float(f64),
}

/// One series: `series{base,extra…} value`.
fn line(out: &mut String, series: &str, base: &str, extra: &[(&str, &str)], value: Number) {
    out.push_str(series);
    out.push('{');
    out.push_str(base);
    for (name, value) in extra {
        out.push(',');
        label(out, name, value);
    }
    out.push_str("} ");
    match value {
        Number::Integer(value) => out.push_str(itoa::Buffer::new().format(value)),
        Number::Float(value) => out.push_str(dtoa::Buffer::new().format(value)),
    }
    out.push('\n');
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
