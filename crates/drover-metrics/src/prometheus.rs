//! Node samples in the Prometheus exposition format, for `GET /v1/metrics`.
//!
//! Written by hand ([`FleetText`], in chunks a server streams) rather than
//! through a `prometheus-client` registry built per scrape: 10,000 nodes are
//! about 900,000 series and 100 MB of text, which the registry's encoder
//! could only build as one `String`. The bytes are the ones that encoder
//! wrote (tests/render_golden.rs pins them); [`render_fleet`] still writes a
//! registry of drover's own metrics first when given one.
//!
//! The output is the OpenMetrics text format (Prometheus' text format plus
//! `# UNIT` lines and a closing `# EOF`). Serve it with [`CONTENT_TYPE`] so
//! that Prometheus picks its OpenMetrics parser.
//!
//! Node series are named and labelled as node_exporter 1.5 names them, so
//! its dashboards and alert rules carry over; every series also carries
//! `node`, `hostgroup` and `environment` ([`NodeLabels`]). Counters are
//! marked (c); everything else is a gauge.
//!
//! | metric | extra labels |
//! |---|---|
//! | `node_cpu_seconds_total` (c) | `cpu`, `mode` |
//! | `node_load1`, `node_load5`, `node_load15` | |
//! | `node_memory_{MemTotal,MemAvailable,MemFree,Buffers,Cached,SwapTotal,SwapFree,SwapCached,Slab,SReclaimable,PageTables}_bytes` | |
//! | `node_filesystem_{size,avail,free}_bytes`, `node_filesystem_{files,files_free,readonly,device_error}` | `mountpoint`, `device`, `fstype` |
//! | `node_disk_{read,written}_bytes_total`, `node_disk_{reads,writes}_completed_total`, `node_disk_io_time_seconds_total` (c) | `device` |
//! | `node_network_{receive,transmit}_{bytes,packets,errs}_total` (c) | `device` |
//! | `node_procs_running`, `node_boot_time_seconds`, `node_time_seconds`, `node_filefd_{allocated,maximum}` | |
//! | `node_context_switches_total`, `node_intr_total` (c) | |
//! | `node_pressure_{cpu_waiting,memory_waiting,memory_stalled,io_waiting,io_stalled,irq_stalled}_seconds_total` (c) | |
//! | `node_uname_info` | `sysname`, `release`, `version`, `machine`, `nodename`, `domainname` |
//! | `drover_node_processes`, `drover_node_sample_timestamp_seconds` | |
//! | `drover_node_up`, `drover_node_status` (one series per status, 1 for the current one) | `status` |
//! | `drover_node_log_dropped_lines_total` (c) | |
//! | `drover_task_cpu_percent`, `drover_task_memory_bytes` | `job`, `group`, `task`, `alloc_id` |

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use drover_types::NodeStatus;
use drover_types::usage::NodeSample;

use crate::text::FleetText;

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

/// One node as `/v1/metrics` shows it: what the cluster state knows of it
/// and, when its agent is connected, its latest sample.
#[derive(Debug, Clone, Default)]
pub struct FleetNode {
    /// Its labels.
    pub labels: NodeLabels,
    /// Its status in the cluster state, for `drover_node_up` and
    /// `drover_node_status`; `None` leaves both out.
    pub status: Option<NodeStatus>,
    /// Log lines its agent dropped, for `drover_node_log_dropped_lines_total`;
    /// `None` leaves it out.
    pub log_dropped_lines: Option<u64>,
    /// Its latest usage sample; `None` when its agent is not connected (or
    /// not to this server).
    pub sample: Option<NodeSample>,
}

/// The job and group an allocation belongs to: labels of its task series.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskOwner {
    /// The job's name (label `job`).
    pub job: String,
    /// The task group's name (label `group`).
    pub group: String,
}

/// The nodes of one `/v1/metrics` answer, written by [`FleetText`].
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// The nodes, each exposed once (first wins: a scrape with duplicate
    /// series is partly rejected by Prometheus).
    pub nodes: Vec<FleetNode>,
    /// By allocation id, the job and group of the tasks in the samples; a
    /// task whose allocation is missing gets empty `job` and `group`.
    pub task_owners: HashMap<String, TaskOwner>,
}

/// The samples of `nodes` in the OpenMetrics text format, without
/// `drover_node_up`/`_status`, log drops or task owners: [`render_fleet`]
/// with only samples.
pub fn render_prometheus<'a>(nodes: impl IntoIterator<Item = (&'a NodeLabels, &'a NodeSample)>) -> String {
    let nodes = nodes
        .into_iter()
        .map(|(labels, sample)| FleetNode {
            labels: labels.clone(),
            sample: Some(sample.clone()),
            ..FleetNode::default()
        })
        .collect();
    render_fleet(None, Fleet { nodes, task_owners: HashMap::new() })
}

/// `registry` (drover's own metrics, when given) followed by `fleet` in the
/// OpenMetrics text format, ready to be served at `/v1/metrics` with
/// [`CONTENT_TYPE`].
pub fn render_fleet(registry: Option<&Registry>, fleet: Fleet) -> String {
    let mut text = String::new();
    if let Some(registry) = registry {
        // Writing to a String cannot fail.
        if let Err(error) = prometheus_client::encoding::text::encode_registry(&mut text, registry) {
            debug_assert!(false, "encoding to a String failed: {error}");
        }
    }
    text.extend(FleetText::new(fleet));
    text
}

/// `value` as the `f64` with the same shortest decimal form, so that 3.64 is
/// written `3.64` and not `3.640000104904175` (the exact value of the `f32`
/// nearest to 3.64). Non-finite values, which the sampler never produces but
/// a sample from the network might hold, become 0 rather than break alerts.
pub(crate) fn widen(value: f32) -> f64 {
    if !value.is_finite() {
        return 0.0;
    }
    // Written on the stack rather than in a `String`: a scrape widens every
    // node's load averages and every task's CPU figure.
    let mut text = ShortText { bytes: [0; 64], len: 0 };
    let shortest = match write!(text, "{value}") {
        Ok(()) => std::str::from_utf8(&text.bytes[..text.len]).ok().and_then(|text| text.parse().ok()),
        // Never: an f32 is at most 48 characters long.
        Err(_) => value.to_string().parse().ok(),
    };
    shortest.unwrap_or(f64::from(value))
}

/// Up to 64 bytes of text, on the stack; longer writes fail.
#[derive(Debug)]
struct ShortText {
    bytes: [u8; 64],
    len: usize,
}

impl fmt::Write for ShortText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::usage::{BlockDeviceSample, CpuSample, DiskSample, NetSample, TaskSample};

    fn labels(node: &str, hostgroup: &str, environment: &str) -> NodeLabels {
        NodeLabels { node: node.into(), hostgroup: hostgroup.into(), environment: environment.into() }
    }

    fn sample() -> NodeSample {
        NodeSample {
            time_ms: 1_700_000_000_500,
            cpu_percent: 12.5,
            cores: 1,
            load1: 0.5,
            load5: 0.25,
            load15: 0.125,
            memory_total: 8 << 30,
            memory_used: 2 << 30,
            memory_available: 6 << 30,
            memory_free: 1 << 30,
            swap_total: 4 << 30,
            swap_used: 1 << 30,
            disks: vec![DiskSample {
                mount: "/tmp".into(),
                fs_type: "tmpfs".into(),
                total: 100,
                used: 25,
                avail: 70,
                files: 4096,
                files_free: 4000,
                readonly: false,
            }],
            devices_by_mount: [("/tmp".to_owned(), "tmpfs".to_owned())].into(),
            block_devices: vec![BlockDeviceSample {
                device: "vda".into(),
                read_bytes: 512,
                written_bytes: 1024,
                io_time_ms: 1500,
                ..BlockDeviceSample::default()
            }],
            cpus: vec![CpuSample { cpu: 0, user_ms: 12_340, idle_ms: 100_000, ..CpuSample::default() }],
            net: vec![NetSample {
                interface: "eth0".into(),
                rx_bytes: 1000,
                tx_bytes: 2000,
                rx_errors: 1,
                tx_errors: 2,
                ..NetSample::default()
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
            ..NodeSample::default()
        }
    }

    #[test]
    fn renders_node_exporter_families_with_node_labels() {
        let node = labels("n1", "web", "prod");
        let text = render_prometheus([(&node, &sample())]);
        let base = r#"node="n1",hostgroup="web",environment="prod""#;
        for expected in [
            "# HELP node_cpu_seconds Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds counter\n\
             # UNIT node_cpu_seconds seconds\n"
                .to_owned(),
            format!("node_cpu_seconds_total{{{base},cpu=\"0\",mode=\"user\"}} 12.34\n"),
            format!("node_cpu_seconds_total{{{base},cpu=\"0\",mode=\"idle\"}} 100.0\n"),
            format!("node_cpu_seconds_total{{{base},cpu=\"0\",mode=\"steal\"}} 0.0\n"),
            format!("node_load1{{{base}}} 0.5\n"),
            format!("node_load15{{{base}}} 0.125\n"),
            format!("node_memory_MemTotal_bytes{{{base}}} 8589934592\n"),
            format!("node_memory_MemAvailable_bytes{{{base}}} 6442450944\n"),
            format!("node_memory_MemFree_bytes{{{base}}} 1073741824\n"),
            format!("node_memory_SwapFree_bytes{{{base}}} 3221225472\n"),
            format!("node_filesystem_avail_bytes{{{base},device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/tmp\"}} 70\n"),
            format!("node_filesystem_size_bytes{{{base},device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/tmp\"}} 100\n"),
            format!("node_filesystem_free_bytes{{{base},device=\"tmpfs\",fstype=\"tmpfs\",mountpoint=\"/tmp\"}} 75\n"),
            "# TYPE node_disk_read_bytes counter\n".to_owned(),
            format!("node_disk_read_bytes_total{{{base},device=\"vda\"}} 512\n"),
            format!("node_disk_written_bytes_total{{{base},device=\"vda\"}} 1024\n"),
            format!("node_disk_io_time_seconds_total{{{base},device=\"vda\"}} 1.5\n"),
            format!("node_network_receive_bytes_total{{{base},device=\"eth0\"}} 1000\n"),
            format!("node_network_transmit_errs_total{{{base},device=\"eth0\"}} 2\n"),
            format!("node_procs_running{{{base}}} 2\n"),
            format!("node_boot_time_seconds{{{base}}} 1699996400.0\n"),
            format!("drover_node_processes{{{base}}} 120\n"),
            format!("drover_node_sample_timestamp_seconds{{{base}}} 1700000000.5\n"),
            format!("drover_task_cpu_percent{{{base},job=\"\",group=\"\",task=\"web\",alloc_id=\"a1\"}} 3.0\n"),
            format!("drover_task_memory_bytes{{{base},job=\"\",group=\"\",task=\"web\",alloc_id=\"a1\"}} 1048576\n"),
        ] {
            assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains("drover_node_up{"), "no status without a state: {text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn every_known_node_has_up_and_status_and_tasks_their_owners() {
        let fleet = Fleet {
            nodes: vec![
                FleetNode {
                    labels: labels("up1", "", ""),
                    status: Some(NodeStatus::Ready),
                    log_dropped_lines: Some(7),
                    sample: Some(sample()),
                },
                FleetNode {
                    labels: labels("dead1", "", ""),
                    status: Some(NodeStatus::Down),
                    log_dropped_lines: Some(0),
                    sample: None,
                },
            ],
            task_owners: [("a1".to_owned(), TaskOwner { job: "shop".into(), group: "front".into() })].into(),
        };
        let text = render_fleet(None, fleet);
        for expected in [
            r#"drover_node_up{node="up1",hostgroup="",environment=""} 1"#,
            r#"drover_node_up{node="dead1",hostgroup="",environment=""} 0"#,
            r#"drover_node_status{node="dead1",hostgroup="",environment="",status="down"} 1"#,
            r#"drover_node_status{node="dead1",hostgroup="",environment="",status="ready"} 0"#,
            r#"drover_node_status{node="up1",hostgroup="",environment="",status="ready"} 1"#,
            r#"drover_node_log_dropped_lines_total{node="up1",hostgroup="",environment=""} 7"#,
            r#"drover_task_memory_bytes{node="up1",hostgroup="",environment="",job="shop",group="front",task="web",alloc_id="a1"} 1048576"#,
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains(r#"node_load1{node="dead1""#), "{text}");

        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        counter.inc();
        registry.register("drover_server_things", "Things", counter);
        let text = render_fleet(Some(&registry), Fleet::default());
        assert!(text.starts_with("# HELP drover_server_things Things.\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }

    #[test]
    fn floats_keep_their_short_form() {
        assert_eq!(widen(3.64), 3.64);
        assert_eq!(widen(60.442757), 60.442757);
        assert_eq!(widen(f32::NAN), 0.0);
        assert_eq!(widen(f32::INFINITY), 0.0);
        // The longest forms (the smallest subnormal, negated, is 48
        // characters) and a sweep of the others: the f64 read from a `String`.
        let extremes = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, f32::from_bits(1), -f32::from_bits(1), -0.0];
        let sweep = (0..u32::MAX).step_by(65_537).map(f32::from_bits).filter(|value| value.is_finite());
        for value in extremes.into_iter().chain(sweep) {
            let through_string: f64 = value.to_string().parse().expect("an f32's text is a number");
            assert_eq!(widen(value).to_bits(), through_string.to_bits(), "{value}");
        }
        let node = labels("n1", "", "");
        let text = render_prometheus([(&node, &NodeSample { load1: 3.64, ..sample() })]);
        assert!(text.contains("node_load1{node=\"n1\",hostgroup=\"\",environment=\"\"} 3.64\n"), "{text}");
    }

    #[test]
    fn escapes_label_values_and_drops_duplicate_nodes() {
        let odd = labels("n\"1", "a\\b", "line\nbreak");
        let duplicate = labels("n\"1", "other", "other");
        let text = render_prometheus([(&odd, &sample()), (&duplicate, &sample())]);
        assert!(text.contains(r#"node_load1{node="n\"1",hostgroup="a\\b",environment="line\nbreak"} 0.5"#), "{text}");
        assert!(!text.contains(r#"hostgroup="other""#), "{text}");
    }

    #[test]
    fn leaves_out_unknown_memory_and_empty_fleets() {
        let node = labels("n1", "", "");
        let unknown = NodeSample { memory_total: 0, ..sample() };
        let text = render_prometheus([(&node, &unknown)]);
        assert!(!text.contains("node_memory_MemAvailable_bytes{"), "{text}");
        assert!(text.contains(r#"node_load1{node="n1",hostgroup="",environment=""} 0.5"#), "{text}");

        let empty = render_prometheus(std::iter::empty());
        assert!(empty.contains("# TYPE node_cpu_seconds counter\n") && empty.ends_with("# EOF\n"));
    }
}
