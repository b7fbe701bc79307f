//! Node samples in the Prometheus exposition format, for `GET /v1/metrics`.
//!
//! Written with `prometheus-client`, drover's metrics crate, rather than by
//! hand: its text encoder already gets the details right (label value
//! escaping, `# HELP`/`# TYPE`/`# UNIT` lines, `_total` on counters, number
//! formatting), and [`encode_node_metrics`] plugs into the same
//! `prometheus_client::registry::Registry` that will hold drover's own
//! metrics, so one endpoint can serve both. The price is that the crate's
//! registry only takes `'static` collectors, so [`render_prometheus`] copies
//! the samples it is given once per call.
//!
//! The output is the OpenMetrics text format (Prometheus' text format plus
//! `# UNIT` lines and a closing `# EOF`). Serve it with [`CONTENT_TYPE`] so
//! that Prometheus picks its OpenMetrics parser.
//!
//! Every series carries the labels `node`, `hostgroup` and `environment`
//! ([`NodeLabels`]); disk series add `mount`, network series `interface`,
//! task series `alloc` and `task`. Metrics, all gauges unless noted:
//!
//! | metric | extra labels |
//! |---|---|
//! | `drover_node_cpu_percent`, `drover_node_cpu_cores` | |
//! | `drover_node_load1`, `drover_node_load5`, `drover_node_load15` | |
//! | `drover_node_memory_total_bytes`, `_used_bytes`, `_available_bytes` | |
//! | `drover_node_swap_total_bytes`, `drover_node_swap_used_bytes` | |
//! | `drover_node_disk_total_bytes`, `_used_bytes`, `_available_bytes`, `_used_percent` | `mount` |
//! | `drover_node_network_{receive,transmit}_{bytes,errors}_total` (counters) | `interface` |
//! | `drover_node_processes`, `drover_node_processes_running` | |
//! | `drover_node_uptime_seconds`, `drover_node_sample_timestamp_seconds` | |
//! | `drover_task_cpu_percent`, `drover_task_memory_bytes` | `alloc`, `task` |

use std::collections::HashSet;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};

use drover_types::usage::{DiskSample, NetSample, NodeSample, TaskSample};

/// The `Content-Type` of [`render_prometheus`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Who a sample belongs to, as labels on every series of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct NodeLabels {
    /// The node's name (label `node`); unique in the fleet.
    pub node: String,
    /// The node's host group (label `hostgroup`), empty when it has none.
    pub hostgroup: String,
    /// The node's environment, e.g. `prod` (label `environment`), empty when
    /// it has none.
    pub environment: String,
}

/// The current samples of `nodes` in the OpenMetrics text format, ready to
/// be served at `/v1/metrics` with [`CONTENT_TYPE`].
///
/// Give the latest sample of each node that is up: a sample is exposed as a
/// current value whatever its age (`drover_node_sample_timestamp_seconds`
/// tells its age). A node name given twice is exposed once, first wins: a
/// scrape with duplicate series is partly rejected by Prometheus.
pub fn render_prometheus<'a>(nodes: impl IntoIterator<Item = (&'a NodeLabels, &'a NodeSample)>) -> String {
    let mut seen = HashSet::new();
    let snapshot = nodes
        .into_iter()
        .filter(|(labels, _)| seen.insert(labels.node.as_str()))
        .map(|(labels, sample)| (labels.clone(), sample.clone()))
        .collect::<Vec<_>>();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(snapshot)));
    let mut text = String::new();
    // Writing to a String cannot fail, and our collector only fails when the
    // writer does.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        debug_assert!(false, "encoding to a String failed: {error}");
    }
    text
}

/// Owned samples, because a registry only takes `'static` collectors.
#[derive(Debug)]
struct Snapshot(Vec<(NodeLabels, NodeSample)>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let nodes = self.0.iter().map(|(labels, sample)| (labels, sample)).collect::<Vec<_>>();
        encode_node_metrics(&mut encoder, &nodes)
    }
}

/// Writes the metric families of `nodes` into `encoder`: the building block
/// of [`render_prometheus`], for a server whose own
/// [`Collector`] adds the nodes' metrics to the registry of drover's metrics.
///
/// # Errors
///
/// Only when the underlying writer fails.
pub fn encode_node_metrics(encoder: &mut DescriptorEncoder, nodes: &[(&NodeLabels, &NodeSample)]) -> fmt::Result {
    let node_gauges: &[Family<NodeRead>] = &[
        ("drover_node_cpu_percent", "CPU busy time over all cores since the previous sample, 0-100.", None, |sample| {
            Some(Value::Float(sample.cpu_percent))
        }),
        ("drover_node_cpu_cores", "Online CPU cores.", None, |sample| Some(Value::Integer(u64::from(sample.cores)))),
        ("drover_node_load1", "Load average over 1 minute.", None, |sample| Some(Value::Float(sample.load1))),
        ("drover_node_load5", "Load average over 5 minutes.", None, |sample| Some(Value::Float(sample.load5))),
        ("drover_node_load15", "Load average over 15 minutes.", None, |sample| Some(Value::Float(sample.load15))),
        ("drover_node_memory_total", "Physical memory.", Some(Unit::Bytes), |sample| {
            known_memory(sample, sample.memory_total)
        }),
        ("drover_node_memory_used", "Memory in use (total minus available).", Some(Unit::Bytes), |sample| {
            known_memory(sample, sample.memory_used)
        }),
        ("drover_node_memory_available", "Memory available without swapping.", Some(Unit::Bytes), |sample| {
            known_memory(sample, sample.memory_available)
        }),
        ("drover_node_swap_total", "Swap space.", Some(Unit::Bytes), |sample| known_memory(sample, sample.swap_total)),
        ("drover_node_swap_used", "Swap space in use.", Some(Unit::Bytes), |sample| {
            known_memory(sample, sample.swap_used)
        }),
        ("drover_node_processes", "Processes on the node.", None, |sample| {
            Some(Value::Integer(u64::from(sample.processes_total)))
        }),
        ("drover_node_processes_running", "Threads running or ready to run.", None, |sample| {
            Some(Value::Integer(u64::from(sample.processes_running)))
        }),
        ("drover_node_uptime", "Time since the node booted.", Some(Unit::Seconds), |sample| {
            Some(Value::Integer(sample.uptime_secs))
        }),
        ("drover_node_sample_timestamp", "When the node took this sample, Unix time.", Some(Unit::Seconds), |sample| {
            Some(Value::Seconds(sample.time_ms))
        }),
    ];
    for (name, help, unit, value) in node_gauges {
        let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, sample) in nodes {
            if let Some(value) = value(sample) {
                let label_set = node_label_set(labels, &[]);
                value.encode_gauge(family.encode_family(&label_set)?)?;
            }
        }
    }

    let disk_gauges: &[Family<DiskRead>] = &[
        ("drover_node_disk_total", "Size of the filesystem.", Some(Unit::Bytes), |disk| Value::Integer(disk.total)),
        ("drover_node_disk_used", "Bytes in use on the filesystem.", Some(Unit::Bytes), |disk| {
            Value::Integer(disk.used)
        }),
        ("drover_node_disk_available", "Bytes a user can still write.", Some(Unit::Bytes), |disk| {
            Value::Integer(disk.avail)
        }),
        (
            "drover_node_disk_used_percent",
            "Used space as df shows it: used / (used + available), 0-100.",
            None,
            |disk| Value::Float(disk.used_percent()),
        ),
    ];
    for (name, help, unit, value) in disk_gauges {
        let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, sample) in nodes {
            for disk in &sample.disks {
                let label_set = node_label_set(labels, &[("mount", &disk.mount)]);
                value(disk).encode_gauge(family.encode_family(&label_set)?)?;
            }
        }
    }

    let net_counters: &[Family<NetRead>] = &[
        ("drover_node_network_receive", "Bytes received.", Some(Unit::Bytes), |net| net.rx_bytes),
        ("drover_node_network_transmit", "Bytes sent.", Some(Unit::Bytes), |net| net.tx_bytes),
        ("drover_node_network_receive_errors", "Receive errors.", None, |net| net.rx_errors),
        ("drover_node_network_transmit_errors", "Transmit errors.", None, |net| net.tx_errors),
    ];
    for (name, help, unit, value) in net_counters {
        let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        for (labels, sample) in nodes {
            for net in &sample.net {
                let label_set = node_label_set(labels, &[("interface", &net.interface)]);
                ConstCounter::new(value(net)).encode(family.encode_family(&label_set)?)?;
            }
        }
    }

    let task_gauges: &[Family<TaskRead>] = &[
        (
            "drover_task_cpu_percent",
            "CPU used by the task since the previous sample, percent of the node.",
            None,
            |task| Value::Float(task.cpu_percent),
        ),
        (
            "drover_task_memory",
            "Memory the task holds (cgroup working set or resident set).",
            Some(Unit::Bytes),
            |task| Value::Integer(task.memory_bytes),
        ),
    ];
    for (name, help, unit, value) in task_gauges {
        let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, sample) in nodes {
            for task in &sample.tasks {
                let label_set = node_label_set(labels, &[("alloc", &task.alloc_id), ("task", &task.task)]);
                value(task).encode_gauge(family.encode_family(&label_set)?)?;
            }
        }
    }
    Ok(())
}

/// A metric family: its name (without the unit suffix, which the encoder
/// adds), its help text, its unit, and how to read a value.
type Family<Read> = (&'static str, &'static str, Option<Unit>, Read);
type NodeRead = fn(&NodeSample) -> Option<Value>;
type DiskRead = fn(&DiskSample) -> Value;
type NetRead = fn(&NetSample) -> u64;
type TaskRead = fn(&TaskSample) -> Value;

/// A node's labels followed by the series' own.
fn node_label_set<'a>(labels: &'a NodeLabels, extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut label_set = vec![
        ("node", labels.node.as_str()),
        ("hostgroup", labels.hostgroup.as_str()),
        ("environment", labels.environment.as_str()),
    ];
    label_set.extend_from_slice(extra);
    label_set
}

/// Memory figures are left out when the node could not read its memory.
fn known_memory(sample: &NodeSample, value: u64) -> Option<Value> {
    (sample.memory_total > 0).then_some(Value::Integer(value))
}

/// A gauge's value, written exactly: integers stay integers (a byte count of
/// 2^53 and more would lose digits as a float).
#[derive(Debug, Clone, Copy)]
enum Value {
    Integer(u64),
    Float(f32),
    Seconds(i64),
}

impl Value {
    fn encode_gauge(self, encoder: prometheus_client::encoding::MetricEncoder) -> fmt::Result {
        match self {
            Value::Integer(value) => ConstGauge::new(value).encode(encoder),
            Value::Float(value) => ConstGauge::new(widen(value)).encode(encoder),
            Value::Seconds(millis) => ConstGauge::new(millis as f64 / 1000.0).encode(encoder),
        }
    }
}

/// `value` as the `f64` with the same shortest decimal form, so that 3.64 is
/// written `3.64` and not `3.640000104904175` (the exact value of the `f32`
/// nearest to 3.64). Non-finite values, which the sampler never produces but
/// a sample from the network might hold, become 0 rather than break alerts.
fn widen(value: f32) -> f64 {
    if !value.is_finite() {
        return 0.0;
    }
    value.to_string().parse().unwrap_or(f64::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(node: &str, hostgroup: &str, environment: &str) -> NodeLabels {
        NodeLabels { node: node.into(), hostgroup: hostgroup.into(), environment: environment.into() }
    }

    fn sample() -> NodeSample {
        NodeSample {
            time_ms: 1_700_000_000_500,
            cpu_percent: 12.5,
            cores: 4,
            load1: 0.5,
            load5: 0.25,
            load15: 0.125,
            memory_total: 8 << 30,
            memory_used: 2 << 30,
            memory_available: 6 << 30,
            swap_total: 0,
            swap_used: 0,
            disks: vec![DiskSample { mount: "/tmp".into(), fs_type: "tmpfs".into(), total: 100, used: 25, avail: 75 }],
            net: vec![NetSample {
                interface: "eth0".into(),
                rx_bytes: 1000,
                tx_bytes: 2000,
                rx_errors: 1,
                tx_errors: 2,
            }],
            processes_total: 120,
            processes_running: 2,
            uptime_secs: 3600,
            tasks: vec![TaskSample {
                alloc_id: "a1".into(),
                task: "web".into(),
                cpu_percent: 3.0,
                memory_bytes: 1 << 20,
            }],
        }
    }

    #[test]
    fn renders_families_with_labels() {
        let node = labels("n1", "web", "prod");
        let text = render_prometheus([(&node, &sample())]);
        let base = r#"node="n1",hostgroup="web",environment="prod""#;
        for expected in [
            "# HELP drover_node_cpu_percent CPU busy time over all cores since the previous sample, 0-100.\n\
             # TYPE drover_node_cpu_percent gauge\n"
                .to_owned(),
            format!("drover_node_cpu_percent{{{base}}} 12.5\n"),
            format!("drover_node_cpu_cores{{{base}}} 4\n"),
            "# TYPE drover_node_memory_used_bytes gauge\n# UNIT drover_node_memory_used_bytes bytes\n".to_owned(),
            format!("drover_node_memory_used_bytes{{{base}}} 2147483648\n"),
            format!("drover_node_swap_used_bytes{{{base}}} 0\n"),
            format!("drover_node_disk_used_bytes{{{base},mount=\"/tmp\"}} 25\n"),
            format!("drover_node_disk_used_percent{{{base},mount=\"/tmp\"}} 25.0\n"),
            "# TYPE drover_node_network_receive_bytes counter\n".to_owned(),
            format!("drover_node_network_receive_bytes_total{{{base},interface=\"eth0\"}} 1000\n"),
            format!("drover_node_network_transmit_errors_total{{{base},interface=\"eth0\"}} 2\n"),
            format!("drover_node_processes{{{base}}} 120\n"),
            format!("drover_node_uptime_seconds{{{base}}} 3600\n"),
            format!("drover_node_sample_timestamp_seconds{{{base}}} 1700000000.5\n"),
            format!("drover_task_cpu_percent{{{base},alloc=\"a1\",task=\"web\"}} 3.0\n"),
            format!("drover_task_memory_bytes{{{base},alloc=\"a1\",task=\"web\"}} 1048576\n"),
        ] {
            assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn floats_keep_their_short_form() {
        assert_eq!(widen(3.64), 3.64);
        assert_eq!(widen(60.442757), 60.442757);
        assert_eq!(widen(f32::NAN), 0.0);
        assert_eq!(widen(f32::INFINITY), 0.0);
        let node = labels("n1", "", "");
        let text = render_prometheus([(&node, &NodeSample { load1: 3.64, ..sample() })]);
        assert!(text.contains("drover_node_load1{node=\"n1\",hostgroup=\"\",environment=\"\"} 3.64\n"), "{text}");
    }

    #[test]
    fn escapes_label_values_and_drops_duplicate_nodes() {
        let odd = labels("n\"1", "a\\b", "line\nbreak");
        let duplicate = labels("n\"1", "other", "other");
        let text = render_prometheus([(&odd, &sample()), (&duplicate, &sample())]);
        assert!(
            text.contains(r#"drover_node_load1{node="n\"1",hostgroup="a\\b",environment="line\nbreak"} 0.5"#),
            "{text}"
        );
        assert!(!text.contains("other"), "{text}");
    }

    #[test]
    fn leaves_out_unknown_memory_and_empty_fleets() {
        let node = labels("n1", "", "");
        let unknown = NodeSample { memory_total: 0, ..sample() };
        let text = render_prometheus([(&node, &unknown)]);
        assert!(!text.contains("drover_node_memory_used_bytes{"), "{text}");
        assert!(text.contains(r#"drover_node_load1{node="n1",hostgroup="",environment=""} 0.5"#), "{text}");

        let empty = render_prometheus(std::iter::empty());
        assert!(empty.contains("# TYPE drover_node_cpu_percent gauge\n") && empty.ends_with("# EOF\n"));
    }
}
