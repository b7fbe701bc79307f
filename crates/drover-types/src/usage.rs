//! The data an agent sends every 10 s: one node's usage at one moment.
//!
//! These are plain values without behaviour beyond a few derived figures.
//! They travel as MessagePack with named fields inside the agent session, so
//! they are kept small: percentages and load averages are `f32` (five bytes
//! on the wire instead of nine), counts are integers (MessagePack writes small
//! integers in one to five bytes), and empty lists are left out. Every struct
//! is `#[serde(default)]`, so a field added later is read as zero from an
//! older agent, and an older server ignores a field it does not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One node's usage at one moment, as measured by `drover_metrics::Sampler`.
///
/// Byte figures are bytes, CPU figures are percent of the whole machine (all
/// cores together, `0.0..=100.0`). A part the agent could not read is zero or
/// empty (`memory_total == 0` means "memory unknown", not "no memory").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSample {
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// CPU busy time over all cores since the previous sample, `0.0..=100.0`
    /// (time not spent idle or waiting for I/O).
    pub cpu_percent: f32,
    /// Online CPU cores.
    pub cores: u32,
    /// Load average over 1 minute.
    pub load1: f32,
    /// Load average over 5 minutes.
    pub load5: f32,
    /// Load average over 15 minutes.
    pub load15: f32,
    /// Physical memory.
    pub memory_total: u64,
    /// Memory in use: `memory_total - memory_available`, i.e. what cannot be
    /// reclaimed without swapping (page cache that can be dropped is not
    /// "used").
    pub memory_used: u64,
    /// Memory available to new work without swapping (`MemAvailable`).
    pub memory_available: u64,
    /// Swap space.
    pub swap_total: u64,
    /// Swap space in use.
    pub swap_used: u64,
    /// Usage of every real filesystem, sorted by mount point; `/tmp` is always
    /// present (see `drover_metrics::Sampler`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSample>,
    /// Counters of every network interface but loopback, sorted by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<NetSample>,
    /// Processes (not threads) on the node.
    pub processes_total: u32,
    /// Threads running or ready to run at the moment of the sample.
    pub processes_running: u32,
    /// Seconds since the node booted.
    pub uptime_secs: u64,
    /// Usage of the tasks the agent runs, in the order they were probed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSample>,
    /// Time each CPU spent in each mode since boot (`/proc/stat`), by CPU
    /// number: the counters behind `node_cpu_seconds_total`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<CpuSample>,
    /// Free memory (`MemFree`: not even used as cache).
    pub memory_free: u64,
    /// Memory used as block-device buffers (`Buffers`).
    pub memory_buffers: u64,
    /// Memory used as page cache (`Cached`).
    pub memory_cached: u64,
    /// The device each mount of [`NodeSample::disks`] is mounted from
    /// (`/dev/vda1`, `tmpfs`), by mount point; kept apart from
    /// [`DiskSample`] so that its shape stays as it was.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub devices_by_mount: BTreeMap<String, String>,
    /// I/O counters of every block device (`/proc/diskstats`), sorted by
    /// name, without partitions, loop and RAM disks (as node_exporter).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub block_devices: Vec<BlockDeviceSample>,
    /// The node's own clock when the sample was taken, in milliseconds since
    /// the Unix epoch (`node_time_seconds`); [`NodeSample::time_ms`] is
    /// replaced by the server's clock on arrival. 0 from an older agent.
    pub clock_ms: i64,
    /// When the node booted, Unix seconds (`btime` of `/proc/stat`); 0 when
    /// unknown.
    pub boot_time_secs: u64,
    /// Context switches since boot (`ctxt` of `/proc/stat`).
    pub context_switches: u64,
    /// Interrupts serviced since boot (the first number of `intr` in
    /// `/proc/stat`).
    pub interrupts: u64,
    /// Slab memory the kernel can reclaim (`SReclaimable`).
    pub memory_sreclaimable: u64,
    /// Kernel slab memory (`Slab`).
    pub memory_slab: u64,
    /// Memory used by page tables (`PageTables`).
    pub memory_page_tables: u64,
    /// The agent's own cost and work (`drover_agent_*` series); `None` from
    /// an older agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSample>,
    /// File handles the kernel has allocated (the first number of
    /// `/proc/sys/fs/file-nr`).
    pub filefd_allocated: u64,
    /// The most file handles it will allocate (`file-nr`'s third number,
    /// `fs.file-max`); 0 when unknown.
    pub filefd_maximum: u64,
    /// Swapped-out memory also kept in memory (`SwapCached`).
    pub memory_swap_cached: u64,
    /// Stall time from pressure stall information (`/proc/pressure`);
    /// `None` on kernels without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<PressureSample>,
    /// The kernel's `uname`; `None` from an older agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uname: Option<UnameSample>,
}

/// Time tasks were stalled waiting for a resource since boot, in
/// microseconds, from `/proc/pressure/{cpu,memory,io,irq}`: "some" is time
/// at least one task waited, "full" time all non-idle tasks did. A figure
/// the kernel does not offer (irq pressure needs Linux 6.1 and
/// `CONFIG_IRQ_TIME_ACCOUNTING`) is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PressureSample {
    /// `cpu` some.
    pub cpu_some_us: Option<u64>,
    /// `memory` some.
    pub memory_some_us: Option<u64>,
    /// `memory` full.
    pub memory_full_us: Option<u64>,
    /// `io` some.
    pub io_some_us: Option<u64>,
    /// `io` full.
    pub io_full_us: Option<u64>,
    /// `irq` full (irq pressure has no "some").
    pub irq_full_us: Option<u64>,
}

/// The fields of `uname(2)`, as `node_uname_info` labels them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnameSample {
    /// `sysname`, e.g. `Linux`.
    pub sysname: String,
    /// `release`, e.g. `6.1.0-13-amd64`.
    pub release: String,
    /// `version`, e.g. `#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1`.
    pub version: String,
    /// `machine`, e.g. `x86_64`.
    pub machine: String,
    /// `nodename`: the host name.
    pub nodename: String,
    /// `domainname`: the NIS domain, `(none)` when unset.
    pub domainname: String,
}

impl NodeSample {
    /// Memory in use as a percentage of physical memory, `0.0` when memory is
    /// unknown.
    pub fn memory_used_percent(&self) -> f32 {
        percent(self.memory_used, self.memory_total)
    }

    /// The disk with the highest [`DiskSample::used_percent`], the one that
    /// will fill first; `None` when no disk was sampled.
    pub fn fullest_disk(&self) -> Option<&DiskSample> {
        self.disks.iter().max_by(|left, right| left.used_percent().total_cmp(&right.used_percent()))
    }

    /// The disk mounted exactly at `mount`.
    pub fn disk(&self, mount: &str) -> Option<&DiskSample> {
        self.disks.iter().find(|disk| disk.mount == mount)
    }

    /// The three figures the node table shows and sorts by.
    pub fn summary(&self) -> UsageSummary {
        UsageSummary {
            time_ms: self.time_ms,
            cpu_percent: self.cpu_percent,
            memory_percent: (self.memory_total > 0).then(|| self.memory_used_percent()),
            disk_percent: self.fullest_disk().map(DiskSample::used_percent),
        }
    }
}

/// A node's latest usage in three figures (the servers pass the fleet's
/// summaries to each other for the dashboard's node table: about 130
/// bytes of JSON a node, where a whole sample with its CPUs, disks,
/// interfaces and tasks takes kilobytes).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageSummary {
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// CPU busy, `0.0..=100.0` of the whole machine.
    pub cpu_percent: f32,
    /// Memory in use, in per cent; `None` when memory is unknown.
    pub memory_percent: Option<f32>,
    /// The fullest disk's use, in per cent; `None` when no disk was sampled.
    pub disk_percent: Option<f32>,
}

/// The agent process itself: what it costs the node and what it did,
/// counted from its start (or, for log lines, from the node's log origin:
/// they survive agent restarts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSample {
    /// CPU time the agent process used since it started, user and
    /// system, in milliseconds (its tasks are not counted).
    pub cpu_ms: u64,
    /// Its resident memory, in bytes.
    pub resident_bytes: u64,
    /// When it started, Unix seconds.
    pub start_time_secs: u64,
    /// Sessions it opened to a server since it started (more than 1: it
    /// reconnected).
    pub sessions: u64,
    /// Log lines it read and spooled, ever (its log origin's last seq).
    pub log_lines_read: u64,
    /// Log lines the servers acknowledged, ever.
    pub log_lines_acknowledged: u64,
}

/// One mounted filesystem's usage, as `df` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskSample {
    /// The mount point, e.g. `/` or `/tmp`.
    pub mount: String,
    /// The filesystem type from `/proc/mounts`, e.g. `ext4`, `xfs`, `tmpfs`.
    pub fs_type: String,
    /// Size of the filesystem in bytes.
    pub total: u64,
    /// Bytes in use (`total - free`).
    pub used: u64,
    /// Bytes an unprivileged user can still write (free minus the blocks
    /// reserved for root).
    pub avail: u64,
    /// File nodes (inodes) the filesystem has, `f_files` of `statvfs`; 0
    /// where the filesystem does not count them (btrfs) or from an older
    /// agent.
    #[serde(skip_serializing_if = "is_zero")]
    pub files: u64,
    /// File nodes still free (`f_ffree`).
    #[serde(skip_serializing_if = "is_zero")]
    pub files_free: u64,
    /// Mounted read-only (`ST_RDONLY` in `f_flag`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl DiskSample {
    /// Used space as a percentage of the space a user can have
    /// (`used / (used + avail)`), as `df` computes it: 100 means "full for
    /// everyone but root".
    pub fn used_percent(&self) -> f32 {
        percent(self.used, self.used.saturating_add(self.avail))
    }
}

/// One network interface's counters since boot (they only grow, until the
/// node reboots or the interface is recreated).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetSample {
    /// The interface name, e.g. `eth0`.
    pub interface: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// One CPU's time in each mode since boot, in milliseconds (the kernel counts
/// in ticks of 10 ms on almost every machine). Guest time is inside `user`
/// and `nice`, as in `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuSample {
    /// The CPU's number (`cpu3` of `/proc/stat` is 3).
    pub cpu: u32,
    /// Running user code.
    pub user_ms: u64,
    /// Running user code at a lowered priority.
    pub nice_ms: u64,
    /// Running kernel code.
    pub system_ms: u64,
    /// Idle.
    pub idle_ms: u64,
    /// Idle while I/O was pending.
    pub iowait_ms: u64,
    /// Serving interrupts.
    pub irq_ms: u64,
    /// Serving soft interrupts.
    pub softirq_ms: u64,
    /// Taken by the hypervisor for other guests.
    pub steal_ms: u64,
}

impl CpuSample {
    /// Every mode with its name as node_exporter spells it (label `mode`).
    pub fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user_ms),
            ("nice", self.nice_ms),
            ("system", self.system_ms),
            ("idle", self.idle_ms),
            ("iowait", self.iowait_ms),
            ("irq", self.irq_ms),
            ("softirq", self.softirq_ms),
            ("steal", self.steal_ms),
        ]
    }
}

/// One block device's I/O counters since boot (`/proc/diskstats`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockDeviceSample {
    /// The kernel's name of the device, e.g. `vda`, `nvme0n1`, `dm-0`.
    pub device: String,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub written_bytes: u64,
    /// Reads completed.
    pub reads_completed: u64,
    /// Writes completed.
    pub writes_completed: u64,
    /// Time spent doing I/O, in milliseconds.
    pub io_time_ms: u64,
}

/// One task's usage, as measured for a `drover_metrics::TaskProbe`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskSample {
    /// The allocation the task belongs to.
    pub alloc_id: String,
    /// The task's name within its group.
    pub task: String,
    /// CPU used since the previous sample, as a percentage of the whole
    /// machine (like [`NodeSample::cpu_percent`], so the tasks of a node add
    /// up to at most the node's figure; multiply by `cores` for "percent of
    /// one core"). `0.0` the first time a task is seen.
    pub cpu_percent: f32,
    /// Memory the task holds: the cgroup's working set (`memory.current`
    /// minus inactive file cache), or the sum of the resident set sizes of
    /// its processes.
    pub memory_bytes: u64,
}

/// `part / whole` in percent, `0.0` when `whole` is zero.
fn percent(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        return 0.0;
    }
    let ratio = part as f64 / whole as f64;
    (ratio * 100.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(mount: &str, used: u64, avail: u64) -> DiskSample {
        DiskSample {
            mount: mount.to_owned(),
            fs_type: "ext4".to_owned(),
            total: used + avail + 5,
            used,
            avail,
            ..DiskSample::default()
        }
    }

    #[test]
    fn derived_figures() {
        let sample = NodeSample {
            memory_total: 1000,
            memory_used: 250,
            disks: vec![disk("/", 10, 90), disk("/data", 75, 25), disk("/tmp", 0, 0)],
            ..NodeSample::default()
        };
        assert!((sample.memory_used_percent() - 25.0).abs() < 1e-4);
        assert_eq!(sample.fullest_disk().map(|disk| disk.mount.as_str()), Some("/data"));
        assert!((sample.disk("/data").map(DiskSample::used_percent).unwrap_or_default() - 75.0).abs() < 1e-4);
        assert_eq!(sample.disk("/tmp").map(DiskSample::used_percent), Some(0.0));
        assert_eq!(NodeSample::default().memory_used_percent(), 0.0);
        assert_eq!(NodeSample::default().fullest_disk(), None);
    }
}
