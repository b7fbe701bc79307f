//! Reading one node's usage from `/proc`, `statvfs` and cgroup v2 files.
//!
//! The sampler is the only part of the crate that does I/O. It is stateful
//! because CPU usage is a difference of counters: each call remembers the
//! counters it read so that the next call can report "since the previous
//! sample". Everything it reads is parsed by a small pure function below, so
//! the parsing is tested on fixed text as well as on this machine's `/proc`.
//!
//! Robustness is the contract: a missing or malformed file empties only its
//! own part of the sample (a container without `/proc/net/dev` still reports
//! memory), and the first failure of each part is logged once, not every
//! 10 s.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use drover_types::usage::{
    AgentSample, BlockDeviceSample, CpuSample, DiskSample, NetSample, NodeSample, PressureSample, TaskSample,
    UnameSample,
};

/// Which task the agent wants measured and where its processes are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskProbe {
    /// The allocation the task belongs to, copied into the [`TaskSample`].
    pub alloc_id: String,
    /// The task's name, copied into the [`TaskSample`].
    pub task: String,
    /// The task's cgroup v2 directory (e.g.
    /// `/sys/fs/cgroup/drover.slice/<alloc>.<task>.scope`). When it is given
    /// and its `cpu.stat` can be read, usage comes from the cgroup (exact:
    /// every process the task ever started is counted) and `pids` is ignored.
    pub cgroup: Option<PathBuf>,
    /// The task's root processes, used when there is no cgroup (the rlimit
    /// fallback of the exec driver). These processes and all their
    /// descendants are counted; CPU time of descendants that exited between
    /// two samples is lost.
    pub pids: Vec<u32>,
}

/// Measures the node it runs on. Create one per agent and call
/// [`Sampler::sample`] every 10 s.
///
/// What it reports, and from where:
///
/// - CPU: `/proc/stat`, busy time over all cores since the previous call (the
///   first call measures since [`Sampler::new`]), and each CPU's time per
///   mode since boot.
/// - Load: `/proc/loadavg`. Memory and swap: `/proc/meminfo`.
/// - Disks: `/proc/mounts` and `statvfs` of each real filesystem. Virtual
///   filesystems (proc, sysfs, cgroup, devtmpfs, squashfs, FUSE, …) are
///   skipped; `tmpfs` is kept only at `/tmp` and `/dev/shm`, `overlay` only at
///   `/` (a container's root); network filesystems (NFS, CIFS, Ceph, …) are
///   skipped because `statvfs` on a dead server blocks forever; a device
///   mounted twice (bind mounts) is reported once, at its shortest mount
///   point. `/tmp` is always reported: when it is not a mount of its own, it
///   is reported with the figures of the filesystem that holds it, so alerts
///   on `/tmp` work on every node.
/// - Block-device I/O: `/proc/diskstats`, without partitions, loop, RAM and
///   floppy devices (node_exporter's default).
/// - Network: `/proc/net/dev` of the agent's network namespace, without `lo`.
/// - Processes: the numeric entries of `/proc` (processes, not threads) and
///   `procs_running` of `/proc/stat` (runnable threads). Uptime:
///   `/proc/uptime`; boot time, context switches and interrupts: `btime`,
///   `ctxt` and `intr` of `/proc/stat`.
/// - Pressure stall information: `/proc/pressure/{cpu,memory,io,irq}` (absent
///   on kernels before 4.20 or built without PSI: no pressure then).
/// - Kernel and host names (`uname`): `/proc/sys/kernel/{ostype,osrelease,
///   version,hostname,domainname,arch}`; without `arch` (Linux before 6.1)
///   the machine is the architecture the agent was built for.
/// - Tasks: see [`TaskProbe`].
///
/// Memory held between calls is a few counters per probed task and process.
#[derive(Debug)]
pub struct Sampler {
    proc_root: PathBuf,
    ticks_per_second: u64,
    page_size: u64,
    previous: Previous,
    failing_parts: BTreeSet<&'static str>,
}

/// The counters of the previous call, the base of every "since" figure.
#[derive(Debug, Default)]
struct Previous {
    instant: Option<Instant>,
    cpu: Option<CpuTimes>,
    uptime_ticks: Option<u64>,
    cgroup_usage_usec: HashMap<PathBuf, u64>,
    pid_times: HashMap<u32, PidTimes>,
}

/// A process's CPU time, told apart from a later process with the same pid by
/// its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PidTimes {
    start_ticks: u64,
    cpu_ticks: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// A sampler of this machine's `/proc`. It reads the CPU counters once
    /// now, so the first [`Sampler::sample`] reports usage since this call.
    pub fn new() -> Self {
        Self::with_proc_root("/proc")
    }

    /// A sampler that reads `proc_root` instead of `/proc`: a fixture tree in
    /// tests, or the host's `/proc` mounted into a container. Mount points
    /// listed in `proc_root/mounts` are still measured with `statvfs` on the
    /// filesystem the sampler sees, and task cgroup paths are used as given.
    pub fn with_proc_root(proc_root: impl Into<PathBuf>) -> Self {
        let mut sampler = Self {
            proc_root: proc_root.into(),
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            page_size: u64::try_from(rustix::param::page_size()).unwrap_or(4096),
            previous: Previous::default(),
            failing_parts: BTreeSet::new(),
        };
        sampler.previous.instant = Some(Instant::now());
        sampler.previous.cpu = sampler.read("stat").and_then(|text| parse_stat(&text)).map(|stat| stat.cpu);
        sampler.previous.uptime_ticks = sampler.read_uptime_ticks();
        sampler
    }

    /// Measures the node now, and the tasks in `tasks`, stamping the sample
    /// with `now_ms` (milliseconds since the Unix epoch; the sampler reads no
    /// wall clock). Never fails: unreadable parts are zero or empty.
    ///
    /// Blocking file I/O, typically well under a few milliseconds; more when
    /// `tasks` use pids (every `/proc/<pid>/stat` is then read once).
    pub fn sample(&mut self, now_ms: i64, tasks: &[TaskProbe]) -> NodeSample {
        let instant = Instant::now();
        let elapsed = self.previous.instant.map(|previous| instant.duration_since(previous));
        let mut sample = NodeSample { time_ms: now_ms, clock_ms: now_ms, ..NodeSample::default() };

        let stat = self.read("stat").and_then(|text| parse_stat(&text));
        let stat = self.note("stat", stat);
        if let Some(stat) = &stat {
            sample.cores = stat.cores;
            sample.cpus = stat.cpus.iter().map(|(cpu, ticks)| self.cpu_sample(*cpu, ticks)).collect();
            sample.processes_running = stat.procs_running;
            sample.boot_time_secs = stat.boot_time_secs;
            sample.context_switches = stat.context_switches;
            sample.interrupts = stat.interrupts;
            sample.cpu_percent = self.previous.cpu.map(|previous| stat.cpu.busy_percent_since(previous)).unwrap_or(0.0);
        }

        let load = self.read("loadavg").and_then(|text| parse_loadavg(&text));
        if let Some([load1, load5, load15]) = self.note("loadavg", load) {
            (sample.load1, sample.load5, sample.load15) = (load1, load5, load15);
        }

        let memory = self.read("meminfo").and_then(|text| parse_meminfo(&text));
        if let Some(memory) = self.note("meminfo", memory) {
            sample.memory_total = memory.total;
            sample.memory_used = memory.used;
            sample.memory_available = memory.available;
            sample.swap_total = memory.swap_total;
            sample.swap_used = memory.swap_used;
            sample.memory_free = memory.free;
            sample.memory_buffers = memory.buffers;
            sample.memory_cached = memory.cached;
            sample.memory_sreclaimable = memory.sreclaimable;
            sample.memory_slab = memory.slab;
            sample.memory_page_tables = memory.page_tables;
            sample.memory_swap_cached = memory.swap_cached;
        }

        let file_nr = self.read("sys/fs/file-nr").and_then(|text| parse_file_nr(&text));
        if let Some((allocated, maximum)) = self.note("sys/fs/file-nr", file_nr) {
            (sample.filefd_allocated, sample.filefd_maximum) = (allocated, maximum);
        }

        let uptime_ticks = self.read_uptime_ticks();
        let uptime_ticks = self.note("uptime", uptime_ticks);
        sample.uptime_secs = uptime_ticks.map_or(0, |ticks| ticks / self.ticks_per_second);

        let mounts = self.read("mounts").map(|text| parse_mounts(&text));
        if let Some(mounts) = self.note("mounts", mounts) {
            (sample.disks, sample.devices_by_mount) = measure_disks(mounts);
        }

        let diskstats = self.read("diskstats").map(|text| parse_diskstats(&text));
        sample.block_devices = self.note("diskstats", diskstats).unwrap_or_default();

        let net = self.read("net/dev").map(|text| parse_net_dev(&text));
        sample.net = self.note("net/dev", net).unwrap_or_default();

        sample.pressure = self.read_pressure();
        let uname = self.read_uname();
        sample.uname = self.note("uname", uname);

        let pids = list_pids(&self.proc_root);
        let pids = self.note("processes", pids);
        sample.processes_total = pids.as_ref().map_or(0, |pids| u32::try_from(pids.len()).unwrap_or(u32::MAX));

        let mut next =
            Previous { instant: Some(instant), cpu: stat.map(|stat| stat.cpu), uptime_ticks, ..Previous::default() };
        let mut pid_table = None;
        let machine = Machine { elapsed, cores: sample.cores.max(1) };
        for probe in tasks {
            let task = self.sample_task(probe, machine, pids.as_deref().unwrap_or_default(), &mut pid_table, &mut next);
            sample.tasks.push(task);
        }
        self.previous = next;
        sample
    }

    /// One task's usage, from its cgroup when it has a readable one, else
    /// from its processes. Records the counters it read in `next`.
    fn sample_task(
        &self,
        probe: &TaskProbe,
        machine: Machine,
        all_pids: &[u32],
        pid_table: &mut Option<PidTable>,
        next: &mut Previous,
    ) -> TaskSample {
        let mut task =
            TaskSample { alloc_id: probe.alloc_id.clone(), task: probe.task.clone(), ..TaskSample::default() };
        if let Some(cgroup) = &probe.cgroup {
            let usage = fs::read_to_string(cgroup.join("cpu.stat")).ok().and_then(|text| parse_cgroup_cpu_usage(&text));
            if let Some(usage_usec) = usage {
                if let Some(previous_usec) = self.previous.cgroup_usage_usec.get(cgroup) {
                    let cpu_micros = usage_usec.saturating_sub(*previous_usec);
                    task.cpu_percent = machine.percent_of(cpu_micros as f64 / 1e6);
                }
                next.cgroup_usage_usec.insert(cgroup.clone(), usage_usec);
                task.memory_bytes = cgroup_working_set(cgroup);
                return task;
            }
            debug!(cgroup = %cgroup.display(), task = %probe.task, "task cgroup unreadable; measuring its pids");
        }
        if probe.pids.is_empty() {
            return task;
        }
        let table = pid_table.get_or_insert_with(|| PidTable::read(&self.proc_root, all_pids));
        let mut cpu_ticks = 0_u64;
        for pid in table.with_descendants(&probe.pids) {
            let Some(process) = table.processes.get(&pid) else { continue };
            task.memory_bytes = task.memory_bytes.saturating_add(process.rss_pages.saturating_mul(self.page_size));
            let now = PidTimes { start_ticks: process.start_ticks, cpu_ticks: process.cpu_ticks };
            cpu_ticks = cpu_ticks.saturating_add(self.cpu_ticks_since_previous(pid, now));
            next.pid_times.insert(pid, now);
        }
        task.cpu_percent = machine.percent_of(cpu_ticks as f64 / self.ticks_per_second as f64);
        task
    }

    /// CPU ticks a process used since the previous call: the difference when
    /// it was seen then, everything when it started after the previous call,
    /// and nothing when it is new to us but older (we cannot tell how much of
    /// its time falls into this interval).
    fn cpu_ticks_since_previous(&self, pid: u32, now: PidTimes) -> u64 {
        match self.previous.pid_times.get(&pid) {
            Some(previous) if previous.start_ticks == now.start_ticks => {
                now.cpu_ticks.saturating_sub(previous.cpu_ticks)
            }
            _ => match self.previous.uptime_ticks {
                Some(previous_uptime) if now.start_ticks >= previous_uptime => now.cpu_ticks,
                _ => 0,
            },
        }
    }

    /// One CPU's `/proc/stat` ticks as milliseconds per mode.
    fn cpu_sample(&self, cpu: u32, ticks: &[u64; 8]) -> CpuSample {
        let ms = |index: usize| ticks[index].saturating_mul(1000) / self.ticks_per_second;
        CpuSample {
            cpu,
            user_ms: ms(0),
            nice_ms: ms(1),
            system_ms: ms(2),
            idle_ms: ms(3),
            iowait_ms: ms(4),
            irq_ms: ms(5),
            softirq_ms: ms(6),
            steal_ms: ms(7),
        }
    }

    fn read(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.proc_root.join(relative)).ok()
    }

    /// The process that samples (the agent): its CPU time, resident memory
    /// and start from `self/stat`, the start placed after `boot_time_secs`
    /// (`btime`); the caller fills in its counters. `None` when it cannot
    /// be read.
    pub fn own_process(&self, boot_time_secs: u64) -> Option<AgentSample> {
        let stat = self.read("self/stat").and_then(|text| parse_pid_stat(&text))?;
        let ticks = self.ticks_per_second;
        Some(AgentSample {
            cpu_ms: stat.cpu_ticks.saturating_mul(1000) / ticks,
            resident_bytes: stat.rss_pages.saturating_mul(self.page_size),
            start_time_secs: if boot_time_secs > 0 { boot_time_secs + stat.start_ticks / ticks } else { 0 },
            ..AgentSample::default()
        })
    }

    /// Every pressure file there is; `None` when there is none (a kernel
    /// without PSI is not a failure worth a warning).
    fn read_pressure(&self) -> Option<PressureSample> {
        let read = |resource: &str| self.read(&format!("pressure/{resource}")).map(|text| parse_pressure(&text));
        let [cpu, memory, io, irq] = ["cpu", "memory", "io", "irq"].map(read);
        if cpu.is_none() && memory.is_none() && io.is_none() && irq.is_none() {
            return None;
        }
        let (cpu, memory, io, irq) = (cpu.unwrap_or_default(), memory.unwrap_or_default(), io.unwrap_or_default(), irq);
        Some(PressureSample {
            cpu_some_us: cpu.some_us,
            memory_some_us: memory.some_us,
            memory_full_us: memory.full_us,
            io_some_us: io.some_us,
            io_full_us: io.full_us,
            irq_full_us: irq.and_then(|irq| irq.full_us),
        })
    }

    /// `uname` from `/proc/sys/kernel`, `None` when the kernel's name and
    /// release cannot be read.
    fn read_uname(&self) -> Option<UnameSample> {
        let field = |name: &str| self.read(&format!("sys/kernel/{name}")).map(|text| text.trim_end().to_owned());
        Some(UnameSample {
            sysname: field("ostype")?,
            release: field("osrelease")?,
            version: field("version").unwrap_or_default(),
            machine: field("arch").unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
            nodename: field("hostname").unwrap_or_default(),
            domainname: field("domainname").unwrap_or_default(),
        })
    }

    fn read_uptime_ticks(&self) -> Option<u64> {
        let seconds = self.read("uptime").and_then(|text| parse_uptime(&text))?;
        Some((seconds * self.ticks_per_second as f64) as u64)
    }

    /// Passes `value` through, logging the first failure of `part` and its
    /// recovery (not every failed sample: that would be one line per 10 s).
    fn note<T>(&mut self, part: &'static str, value: Option<T>) -> Option<T> {
        let was_failing = self.failing_parts.contains(part);
        match (&value, was_failing) {
            (None, false) => {
                warn!(part, proc_root = %self.proc_root.display(), "node metrics part unreadable; reporting it empty");
                self.failing_parts.insert(part);
            }
            (Some(_), true) => {
                info!(part, "node metrics part readable again");
                self.failing_parts.remove(part);
            }
            _ => {}
        }
        value
    }
}

/// What a task's CPU time is divided by: the time since the previous sample
/// on every core.
#[derive(Debug, Clone, Copy)]
struct Machine {
    elapsed: Option<Duration>,
    cores: u32,
}

impl Machine {
    /// `cpu_seconds` as a percentage of the machine over the interval, `0.0`
    /// without an interval.
    fn percent_of(self, cpu_seconds: f64) -> f32 {
        let Some(elapsed) = self.elapsed else { return 0.0 };
        let capacity_seconds = elapsed.as_secs_f64() * f64::from(self.cores);
        if capacity_seconds <= 0.0 {
            return 0.0;
        }
        (cpu_seconds / capacity_seconds * 100.0).clamp(0.0, 100.0) as f32
    }
}

/// The numeric entries of `/proc`: one per process.
fn list_pids(proc_root: &Path) -> Option<Vec<u32>> {
    let entries = fs::read_dir(proc_root).ok()?;
    let pids = entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect::<Vec<_>>();
    Some(pids)
}

/// `/proc/<pid>/stat` of every process, read once per sample when a task is
/// measured by its pids.
#[derive(Debug, Default)]
struct PidTable {
    processes: HashMap<u32, PidStat>,
    children: HashMap<u32, Vec<u32>>,
}

impl PidTable {
    fn read(proc_root: &Path, pids: &[u32]) -> Self {
        let mut table = PidTable::default();
        for &pid in pids {
            // A process that exited since the directory was listed is skipped.
            let path = proc_root.join(pid.to_string()).join("stat");
            let Some(stat) = fs::read_to_string(path).ok().and_then(|text| parse_pid_stat(&text)) else { continue };
            table.children.entry(stat.parent).or_default().push(pid);
            table.processes.insert(pid, stat);
        }
        table
    }

    /// `roots` and all their descendants that are alive, each once.
    fn with_descendants(&self, roots: &[u32]) -> Vec<u32> {
        let mut seen = HashSet::new();
        let mut pending = roots.to_vec();
        let mut found = Vec::new();
        while let Some(pid) = pending.pop() {
            if !seen.insert(pid) || !self.processes.contains_key(&pid) {
                continue;
            }
            found.push(pid);
            pending.extend(self.children.get(&pid).into_iter().flatten().copied());
        }
        found
    }
}

/// A cgroup's working set: `memory.current` minus the file cache the kernel
/// would drop first (`inactive_file`), as `docker stats` and the kubelet
/// report it. Zero when unreadable.
fn cgroup_working_set(cgroup: &Path) -> u64 {
    let current =
        fs::read_to_string(cgroup.join("memory.current")).ok().and_then(|text| text.trim().parse::<u64>().ok());
    let inactive_file = fs::read_to_string(cgroup.join("memory.stat"))
        .ok()
        .and_then(|text| keyed_value(&text, "inactive_file"))
        .unwrap_or(0);
    current.unwrap_or(0).saturating_sub(inactive_file)
}

/// `statvfs` of every selected mount, plus `/tmp` when it is not a mount of
/// its own; and the device of each.
fn measure_disks(mounts: Vec<MountEntry>) -> (Vec<DiskSample>, BTreeMap<String, String>) {
    let tmp_holder = containing_mount(&mounts, Path::new("/tmp")).cloned();
    let mut devices = BTreeMap::new();
    let mut disks = Vec::new();
    for entry in select_mounts(mounts) {
        if let Some(disk) = measure_disk(entry.mount.clone(), entry.fs_type) {
            devices.insert(entry.mount, entry.device);
            disks.push(disk);
        }
    }
    if !disks.iter().any(|disk| disk.mount == "/tmp") {
        let (fs_type, device) = tmp_holder.map(|entry| (entry.fs_type, entry.device)).unwrap_or_default();
        if let Some(tmp) = measure_disk("/tmp".to_owned(), fs_type) {
            devices.insert(tmp.mount.clone(), device);
            disks.push(tmp);
            disks.sort_by(|left, right| left.mount.cmp(&right.mount));
        }
    }
    (disks, devices)
}

fn measure_disk(mount: String, fs_type: String) -> Option<DiskSample> {
    let stats = match rustix::fs::statvfs(mount.as_str()) {
        Ok(stats) => stats,
        Err(error) => {
            debug!(mount, %error, "cannot statvfs a mount; leaving it out");
            return None;
        }
    };
    let block = stats.f_frsize.max(1);
    let total = stats.f_blocks.saturating_mul(block);
    if total == 0 {
        return None;
    }
    let used = stats.f_blocks.saturating_sub(stats.f_bfree).saturating_mul(block);
    let avail = stats.f_bavail.saturating_mul(block);
    Some(DiskSample {
        mount,
        fs_type,
        total,
        used,
        avail,
        files: stats.f_files,
        files_free: stats.f_ffree,
        readonly: stats.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
    })
}

/// Allocated and maximum file handles of `/proc/sys/fs/file-nr`
/// (`allocated unused maximum`).
fn parse_file_nr(text: &str) -> Option<(u64, u64)> {
    let mut numbers = text.split_whitespace().map(|word| word.parse::<u64>().ok());
    let allocated = numbers.next()??;
    let _unused = numbers.next()??;
    let maximum = numbers.next()??;
    Some((allocated, maximum))
}

/// The mount that holds `path` (the longest mount point that is a prefix of
/// it), among entries where later mounts shadow earlier ones.
fn containing_mount<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts.iter().rev().filter(|entry| path.starts_with(&entry.mount)).max_by_key(|entry| entry.mount.len())
}

/// Filesystems that hold no data of their own.
const VIRTUAL_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Filesystems on another machine: `statvfs` blocks while the server is away.
const NETWORK_FILESYSTEMS: &[&str] =
    &["9p", "afs", "ceph", "cifs", "glusterfs", "lustre", "ncpfs", "nfs", "nfs4", "smb3", "smbfs"];

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    device: String,
    mount: String,
    fs_type: String,
}

/// The lines of `/proc/mounts`, in order, with `\040`-style escapes decoded.
fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = decode_mount_escapes(fields.next()?);
            let mount = decode_mount_escapes(fields.next()?);
            let fs_type = fields.next()?.to_owned();
            Some(MountEntry { device, mount, fs_type })
        })
        .collect()
}

/// The mounts worth reporting, sorted by mount point (see [`Sampler`]).
fn select_mounts(entries: Vec<MountEntry>) -> Vec<MountEntry> {
    // A later mount at the same point hides the earlier one.
    let mut by_mount = BTreeMap::new();
    for entry in entries {
        by_mount.insert(entry.mount.clone(), entry);
    }
    let real = by_mount.into_values().filter(is_real_filesystem);
    // A block device mounted more than once (bind mounts) counts once, at its
    // shortest mount point: the same blocks must not be summed twice.
    let mut by_device: BTreeMap<String, MountEntry> = BTreeMap::new();
    let mut selected = Vec::new();
    for entry in real {
        if !entry.device.starts_with("/dev/") {
            selected.push(entry);
            continue;
        }
        match by_device.get(&entry.device) {
            Some(kept) if kept.mount.len() <= entry.mount.len() => {}
            _ => {
                by_device.insert(entry.device.clone(), entry);
            }
        }
    }
    selected.extend(by_device.into_values());
    selected.sort_by(|left, right| left.mount.cmp(&right.mount));
    selected
}

fn is_real_filesystem(entry: &MountEntry) -> bool {
    let fs_type = entry.fs_type.as_str();
    match fs_type {
        "tmpfs" => entry.mount == "/tmp" || entry.mount == "/dev/shm",
        // A container's root is an overlay; other overlays are the insides of
        // container runtimes and would repeat the host's disk.
        "overlay" => entry.mount == "/",
        // FUSE filesystems are virtual (lxcfs, gvfs) or remote (sshfs, rclone).
        _ if fs_type.starts_with("fuse.") => false,
        _ => !VIRTUAL_FILESYSTEMS.contains(&fs_type) && !NETWORK_FILESYSTEMS.contains(&fs_type),
    }
}

/// Decodes the octal escapes the kernel writes for space, tab, newline and
/// backslash in `/proc/mounts` (`\040`, `\011`, `\012`, `\134`).
fn decode_mount_escapes(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal =
            bytes.get(index + 1..index + 4).filter(|digits| digits.iter().all(|digit| (b'0'..=b'7').contains(digit)));
        match (bytes[index], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0_u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                decoded.push(u8::try_from(value).unwrap_or(b'?'));
                index += 4;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The aggregate CPU line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    fn busy_percent_since(self, previous: CpuTimes) -> f32 {
        let total = self.total.saturating_sub(previous.total);
        if total == 0 {
            return 0.0;
        }
        let busy = self.busy.saturating_sub(previous.busy);
        (busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0) as f32
    }
}

/// What the sampler takes from `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    cpu: CpuTimes,
    cores: u32,
    procs_running: u32,
    boot_time_secs: u64,
    context_switches: u64,
    interrupts: u64,
    /// Per CPU number, the ticks of user nice system idle iowait irq softirq
    /// steal.
    cpus: Vec<(u32, [u64; 8])>,
}

fn parse_stat(text: &str) -> Option<Stat> {
    let mut cpu = None;
    let mut cores = 0;
    let mut procs_running = 0;
    let (mut boot_time_secs, mut context_switches, mut interrupts) = (0, 0, 0);
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal; guest time is
                // already inside user and nice.
                let ticks = fields.take(8).map(|field| field.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
                let total = ticks.iter().sum::<u64>();
                let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
                cpu = Some(CpuTimes { busy: total.saturating_sub(idle), total });
            }
            Some(name) if name.starts_with("cpu") => {
                cores += 1;
                // Kernels before 2.6.11 have fewer columns: missing ones are 0.
                let mut ticks = [0_u64; 8];
                let numbers = fields.take(8).map(|field| field.parse::<u64>().unwrap_or(0));
                for (slot, value) in ticks.iter_mut().zip(numbers) {
                    *slot = value;
                }
                if let Ok(number) = name["cpu".len()..].parse::<u32>() {
                    cpus.push((number, ticks));
                }
            }
            Some("procs_running") => procs_running = fields.next()?.parse().ok()?,
            Some("btime") => boot_time_secs = fields.next().and_then(|field| field.parse().ok()).unwrap_or(0),
            Some("ctxt") => context_switches = fields.next().and_then(|field| field.parse().ok()).unwrap_or(0),
            Some("intr") => interrupts = fields.next().and_then(|field| field.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    Some(Stat { cpu: cpu?, cores, procs_running, boot_time_secs, context_switches, interrupts, cpus })
}

fn parse_loadavg(text: &str) -> Option<[f32; 3]> {
    let mut fields = text.split_whitespace().map(|field| field.parse::<f32>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// What the sampler takes from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    total: u64,
    used: u64,
    available: u64,
    swap_total: u64,
    swap_used: u64,
    free: u64,
    buffers: u64,
    cached: u64,
    sreclaimable: u64,
    slab: u64,
    page_tables: u64,
    swap_cached: u64,
}

fn parse_meminfo(text: &str) -> Option<Memory> {
    let kib = |key: &str| keyed_value(text, &format!("{key}:")).map(|value| value.saturating_mul(1024));
    let total = kib("MemTotal")?;
    // MemAvailable exists since Linux 3.14; before, free + buffers + cache is
    // the usual estimate.
    let available = kib("MemAvailable").unwrap_or_else(|| {
        [kib("MemFree"), kib("Buffers"), kib("Cached")].into_iter().flatten().fold(0, u64::saturating_add)
    });
    let swap_total = kib("SwapTotal").unwrap_or(0);
    let swap_free = kib("SwapFree").unwrap_or(swap_total);
    Some(Memory {
        total,
        used: total.saturating_sub(available),
        available: available.min(total),
        swap_total,
        swap_used: swap_total.saturating_sub(swap_free),
        free: kib("MemFree").unwrap_or(0),
        buffers: kib("Buffers").unwrap_or(0),
        cached: kib("Cached").unwrap_or(0),
        sreclaimable: kib("SReclaimable").unwrap_or(0),
        slab: kib("Slab").unwrap_or(0),
        page_tables: kib("PageTables").unwrap_or(0),
        swap_cached: kib("SwapCached").unwrap_or(0),
    })
}

/// The `total=` figures of one `/proc/pressure/*` file, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Pressure {
    some_us: Option<u64>,
    full_us: Option<u64>,
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` and the same for
/// `full`; a line without a readable total is left out.
fn parse_pressure(text: &str) -> Pressure {
    let mut pressure = Pressure::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let kind = fields.next();
        let total = fields.find_map(|field| field.strip_prefix("total=")?.parse::<u64>().ok());
        match kind {
            Some("some") => pressure.some_us = total,
            Some("full") => pressure.full_us = total,
            _ => {}
        }
    }
    pressure
}

/// The first number after `key` at the start of a line (`key value [unit]`).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == key).then_some(())?;
        fields.next()?.parse().ok()
    })
}

/// The interfaces of `/proc/net/dev` but loopback, sorted by name.
fn parse_net_dev(text: &str) -> Vec<NetSample> {
    let mut interfaces = text
        .lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let interface = name.trim();
            if interface == "lo" {
                return None;
            }
            let counters =
                counters.split_whitespace().map(|field| field.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
            // Receive: bytes packets errs drop fifo frame compressed multicast;
            // then transmit: bytes packets errs ...
            Some(NetSample {
                interface: interface.to_owned(),
                rx_bytes: *counters.first()?,
                rx_packets: *counters.get(1)?,
                rx_errors: *counters.get(2)?,
                tx_bytes: *counters.get(8)?,
                tx_packets: *counters.get(9)?,
                tx_errors: *counters.get(10)?,
            })
        })
        .collect::<Vec<_>>();
    interfaces.sort_by(|left, right| left.interface.cmp(&right.interface));
    interfaces
}

/// The block devices of `/proc/diskstats` that node_exporter reports by
/// default, sorted by name. Sectors are 512 bytes whatever the device's own
/// sector size (the kernel's unit for these counters).
fn parse_diskstats(text: &str) -> Vec<BlockDeviceSample> {
    let mut devices = text
        .lines()
        .filter_map(|line| {
            let fields = line.split_whitespace().collect::<Vec<_>>();
            let device = *fields.get(2)?;
            if is_ignored_block_device(device) {
                return None;
            }
            // After major, minor and name: reads completed, reads merged,
            // sectors read, ms reading, writes completed, writes merged,
            // sectors written, ms writing, I/Os in progress, ms doing I/O.
            let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
            Some(BlockDeviceSample {
                device: device.to_owned(),
                reads_completed: number(3)?,
                read_bytes: number(5)?.saturating_mul(512),
                writes_completed: number(7)?,
                written_bytes: number(9)?.saturating_mul(512),
                io_time_ms: number(12)?,
            })
        })
        .collect::<Vec<_>>();
    devices.sort_by(|left, right| left.device.cmp(&right.device));
    devices
}

/// node_exporter's default `--collector.diskstats.device-exclude`,
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`: RAM disks, loop
/// and floppy devices, and partitions (whose I/O their disk already counts).
fn is_ignored_block_device(device: &str) -> bool {
    let numbered = |prefix: &str| {
        device
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_digit()))
    };
    if ["ram", "loop", "fd"].into_iter().any(numbered) {
        return true;
    }
    // hda1, sdb2, vdc3, xvda1: a letter after the prefix, then digits.
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = device.strip_prefix(prefix)
            && let Some((&letter, digits)) = rest.as_bytes().split_first()
            && letter.is_ascii_lowercase()
            && !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
        {
            return true;
        }
    }
    // nvme0n1p2: a partition of nvme0n1.
    if let Some(rest) = device.strip_prefix("nvme")
        && let Some((namespace, partition)) = rest.split_once('p')
        && let Some((controller, number)) = namespace.split_once('n')
    {
        let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        return digits(controller) && digits(number) && digits(partition);
    }
    false
}

/// What the sampler takes from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PidStat {
    parent: u32,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    start_ticks: u64,
    /// Resident set size in pages (the same figure as `VmRSS` of
    /// `/proc/<pid>/status`, without reading a second file).
    rss_pages: u64,
}

fn parse_pid_stat(text: &str) -> Option<PidStat> {
    // The command name (field 2) is in parentheses and may itself contain
    // spaces and parentheses, so fields are counted from the last ')'.
    let after_name = text.get(text.rfind(')')? + 1..)?;
    let fields = after_name.split_whitespace().collect::<Vec<_>>();
    // Field n of proc(5) is at index n - 3 here.
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    Some(PidStat {
        parent: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)?.saturating_add(field(15)?),
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

/// `usage_usec` of a cgroup v2 `cpu.stat`.
fn parse_cgroup_cpu_usage(text: &str) -> Option<u64> {
    keyed_value(text, "usage_usec")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn entry(device: &str, mount: &str, fs_type: &str) -> MountEntry {
        MountEntry { device: device.to_owned(), mount: mount.to_owned(), fs_type: fs_type.to_owned() }
    }

    #[test]
    fn parses_stat() {
        let text = "cpu  100 5 50 800 40 0 5 0 7 0\ncpu0 50 0 25 400 20 0 2 0 0 0\ncpu1 50 5 25 400 20 0 3 0 0 0\n\
                    intr 1234 2 3\nctxt 98765\nbtime 1700000000\nprocs_running 3\nprocs_blocked 0\n";
        let stat = parse_stat(text).unwrap();
        assert_eq!(
            stat,
            Stat {
                cpu: CpuTimes { busy: 160, total: 1000 },
                cores: 2,
                procs_running: 3,
                boot_time_secs: 1_700_000_000,
                context_switches: 98_765,
                interrupts: 1234,
                cpus: vec![(0, [50, 0, 25, 400, 20, 0, 2, 0]), (1, [50, 5, 25, 400, 20, 0, 3, 0])],
            }
        );
        let sampler = Sampler { ticks_per_second: 100, ..Sampler::with_proc_root("/nonexistent") };
        let cpu1 = sampler.cpu_sample(1, &stat.cpus[1].1);
        assert_eq!((cpu1.cpu, cpu1.user_ms, cpu1.nice_ms, cpu1.idle_ms, cpu1.softirq_ms), (1, 500, 50, 4000, 30));
        let later = CpuTimes { busy: 160 + 30, total: 1000 + 40 };
        assert!((later.busy_percent_since(stat.cpu) - 75.0).abs() < 1e-4);
        assert_eq!(stat.cpu.busy_percent_since(stat.cpu), 0.0);
        assert_eq!(parse_stat("intr 1\n"), None);
    }

    #[test]
    fn parses_loadavg_uptime_meminfo() {
        assert_eq!(parse_loadavg("1.70 1.44 0.05 1/89 24630\n"), Some([1.70, 1.44, 0.05]));
        assert_eq!(parse_loadavg("garbage"), None);
        assert_eq!(parse_file_nr("2080\t0\t9223372036854775807\n"), Some((2080, 9_223_372_036_854_775_807)));
        assert_eq!(parse_file_nr("12 0"), None);
        assert_eq!(parse_uptime("12345.67 20000.00\n"), Some(12345.67));
        let meminfo = "MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    4000 kB\n\
                       Buffers:          100 kB\nCached:          2000 kB\nSwapCached:        30 kB\n\
                       SwapTotal:       2000 kB\nSwapFree:        1500 kB\nSlab:             300 kB\n\
                       SReclaimable:     200 kB\nSUnreclaim:       100 kB\nPageTables:        40 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some(Memory {
                total: 16000 * 1024,
                used: 12000 * 1024,
                available: 4000 * 1024,
                swap_total: 2000 * 1024,
                swap_used: 500 * 1024,
                free: 1000 * 1024,
                buffers: 100 * 1024,
                cached: 2000 * 1024,
                sreclaimable: 200 * 1024,
                slab: 300 * 1024,
                page_tables: 40 * 1024,
                swap_cached: 30 * 1024,
            })
        );
        let old_kernel = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 150 kB\n";
        let memory = parse_meminfo(old_kernel).unwrap();
        assert_eq!((memory.available, memory.used, memory.swap_total), (300 * 1024, 700 * 1024, 0));
        assert_eq!(parse_meminfo("SwapTotal: 5 kB\n"), None);
    }

    #[test]
    fn parses_net_dev_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo: 9667 17 0 13 0 0 0 0 9667 17 0 0 0 0 0 0\n  \
                    eth1: 10 1 2 0 0 0 0 0 20 2 3 0 0 0 0 0\n  \
                    eth0: 274575376 13532 0 0 0 0 0 0 850900 8571 1 0 0 0 0 0\n";
        let interfaces = parse_net_dev(text);
        assert_eq!(
            interfaces,
            vec![
                NetSample {
                    interface: "eth0".into(),
                    rx_bytes: 274575376,
                    tx_bytes: 850900,
                    rx_errors: 0,
                    tx_errors: 1,
                    rx_packets: 13532,
                    tx_packets: 8571,
                },
                NetSample {
                    interface: "eth1".into(),
                    rx_bytes: 10,
                    tx_bytes: 20,
                    rx_errors: 2,
                    tx_errors: 3,
                    rx_packets: 1,
                    tx_packets: 2
                },
            ]
        );
    }

    #[test]
    fn parses_diskstats_like_node_exporter() {
        let text = "   7       0 loop0 10 0 20 0 0 0 0 0 0 0 0\n \
                    253       0 vda 5000 10 200000 900 7000 20 400000 800 0 1234 1700 0 0 0 0\n \
                    253       1 vda1 4000 10 150000 700 6000 20 300000 700 0 1000 1400\n \
                    259       0 nvme0n1 1 0 8 0 2 0 16 0 0 3 3\n \
                    259       1 nvme0n1p1 1 0 8 0 2 0 16 0 0 3 3\n \
                    252       0 zram0 1 0 8 0 0 0 0 0 0 0 0\n \
                    254       0 dm-0 3 0 24 0 4 0 32 0 0 5 5\n   1 0 ram0 1 0 2 0 0 0 0 0 0 0 0\nshort\n";
        let devices = parse_diskstats(text);
        let names = devices.iter().map(|device| device.device.as_str()).collect::<Vec<_>>();
        assert_eq!(names, ["dm-0", "nvme0n1", "vda", "zram0"]);
        assert_eq!(
            devices[2],
            BlockDeviceSample {
                device: "vda".into(),
                read_bytes: 200000 * 512,
                written_bytes: 400000 * 512,
                reads_completed: 5000,
                writes_completed: 7000,
                io_time_ms: 1234,
            }
        );
        for kept in ["sda", "xvda", "nvme0n1", "md0", "dm-1", "sr0", "mmcblk0"] {
            assert!(!is_ignored_block_device(kept), "{kept}");
        }
        for ignored in ["sda1", "xvdb12", "hdc3", "nvme1n2p3", "loop7", "ram15", "fd0"] {
            assert!(is_ignored_block_device(ignored), "{ignored}");
        }
    }

    #[test]
    fn parses_pid_stat_with_awkward_command_names() {
        let text = "4242 (my (weird) cmd) S 1 4242 4242 0 -1 4194560 500 0 0 0 120 30 0 0 20 0 1 0 98765 10000000 2500 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_pid_stat(text),
            Some(PidStat { parent: 1, cpu_ticks: 150, start_ticks: 98765, rss_pages: 2500 })
        );
        assert_eq!(parse_pid_stat("4242 (truncated) S 1 2"), None);
    }

    #[test]
    fn parses_cgroup_files() {
        assert_eq!(parse_cgroup_cpu_usage("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n"), Some(123456));
        assert_eq!(keyed_value("anon 10\nfile 20\ninactive_file 7\n", "inactive_file"), Some(7));
        assert_eq!(keyed_value("active_file 7\n", "file"), None);
    }

    #[test]
    fn parses_mounts_and_decodes_escapes() {
        let text = "/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n/dev/sdc1 /back\\134slash xfs rw 0 0\nshort line\n";
        let entries = parse_mounts(text);
        assert_eq!(
            entries,
            vec![entry("/dev/sdb1", "/mnt/my disk", "ext4"), entry("/dev/sdc1", "/back\\slash", "xfs")]
        );
        assert_eq!(decode_mount_escapes("a\\04b\\"), "a\\04b\\");
    }

    #[test]
    fn selects_real_filesystems_once() {
        // This machine's /proc/mounts, a container host's and a desktop's.
        let text = "proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n\
            tmpfs /dev/shm tmpfs rw 0 0\ndevpts /dev/pts devpts rw 0 0\n/dev/vda / ext4 rw 0 0\n\
            tools /mnt/sandboxing/tools tmpfs ro 0 0\ntmpfs /dev/shm tmpfs rw 0 0\ntmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
            cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
            /dev/vda /run/netns ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/sdb1 /data xfs rw 0 0\n\
            overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0\nnsfs /run/docker/netns/x nsfs rw 0 0\n\
            /dev/loop0 /snap/core/1 squashfs ro 0 0\nlxcfs /var/lib/lxcfs fuse.lxcfs rw 0 0\n\
            server:/export /mnt/nfs nfs4 rw 0 0\ntank/home /home zfs rw 0 0\n/dev/sdc1 /media/usb fuseblk rw 0 0\n";
        let selected = select_mounts(parse_mounts(text));
        let mounts = selected.iter().map(|entry| (entry.mount.as_str(), entry.fs_type.as_str())).collect::<Vec<_>>();
        assert_eq!(
            mounts,
            vec![
                ("/", "ext4"),
                ("/data", "xfs"),
                ("/dev/shm", "tmpfs"),
                ("/home", "zfs"),
                ("/media/usb", "fuseblk"),
                ("/tmp", "tmpfs")
            ]
        );
        let container = select_mounts(parse_mounts("overlay / overlay rw 0 0\n/dev/sda1 /etc/hosts ext4 rw 0 0\n"));
        assert_eq!(container.len(), 2, "a container's root and its host disk: {container:?}");
    }

    #[test]
    fn finds_the_mount_holding_tmp() {
        let entries = parse_mounts("/dev/vda / ext4 rw 0 0\n/dev/vdb /t xfs rw 0 0\n/dev/vdc /tmpx xfs rw 0 0\n");
        assert_eq!(containing_mount(&entries, Path::new("/tmp")).map(|entry| entry.mount.as_str()), Some("/"));
        let entries = parse_mounts("/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n");
        assert_eq!(containing_mount(&entries, Path::new("/tmp")).map(|entry| entry.fs_type.as_str()), Some("tmpfs"));
    }

    #[test]
    fn parses_pressure_and_reads_uname() {
        let cpu = "some avg10=8.56 avg60=9.53 avg300=13.20 total=15249433121\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_pressure(cpu), Pressure { some_us: Some(15_249_433_121), full_us: Some(0) });
        assert_eq!(parse_pressure("full avg10=0.00 total=12\n"), Pressure { some_us: None, full_us: Some(12) });
        assert_eq!(parse_pressure("some total=garbage\n"), Pressure::default());

        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("pressure")).unwrap();
        fs::write(root.path().join("pressure/io"), "some total=5\nfull total=3\n").unwrap();
        fs::create_dir_all(root.path().join("sys/kernel")).unwrap();
        for (name, value) in [("ostype", "Linux\n"), ("osrelease", "6.1.0-13-amd64\n"), ("hostname", "web-1\n")] {
            fs::write(root.path().join("sys/kernel").join(name), value).unwrap();
        }
        let sample = Sampler::with_proc_root(root.path()).sample(1, &[]);
        let pressure = sample.pressure.expect("io pressure");
        assert_eq!(
            (pressure.io_some_us, pressure.io_full_us, pressure.cpu_some_us, pressure.irq_full_us),
            (Some(5), Some(3), None, None)
        );
        let uname = sample.uname.expect("uname");
        assert_eq!(
            (uname.sysname.as_str(), uname.release.as_str(), uname.nodename.as_str()),
            ("Linux", "6.1.0-13-amd64", "web-1")
        );
        assert_eq!(uname.machine, std::env::consts::ARCH, "no arch file: the agent's own architecture");
    }

    #[test]
    fn missing_files_empty_only_their_part() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("meminfo"), "MemTotal: 1000 kB\nMemAvailable: 400 kB\n").unwrap();
        let mut sampler = Sampler::with_proc_root(root.path());
        let sample = sampler.sample(7, &[TaskProbe { alloc_id: "a".into(), task: "t".into(), ..TaskProbe::default() }]);
        assert_eq!(sample.time_ms, 7);
        assert_eq!((sample.memory_total, sample.memory_used), (1000 * 1024, 600 * 1024));
        assert_eq!((sample.cores, sample.cpu_percent, sample.load1, sample.uptime_secs), (0, 0.0, 0.0, 0));
        assert!(sample.disks.is_empty() && sample.net.is_empty());
        assert_eq!((sample.clock_ms, sample.boot_time_secs, &sample.pressure, &sample.uname), (7, 0, &None, &None));
        assert_eq!(sample.tasks, vec![TaskSample { alloc_id: "a".into(), task: "t".into(), ..TaskSample::default() }]);
    }

    #[test]
    fn measures_a_cgroup_directory() {
        let cgroup = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| fs::write(cgroup.path().join(name), text).unwrap();
        write("cpu.stat", "usage_usec 1000000\nuser_usec 900000\nsystem_usec 100000\n");
        write("memory.current", "50000000\n");
        write("memory.stat", "anon 30000000\nfile 20000000\ninactive_file 8000000\n");
        let probe = TaskProbe {
            alloc_id: "alloc-1".into(),
            task: "web".into(),
            cgroup: Some(cgroup.path().to_path_buf()),
            pids: vec![1],
        };
        let mut sampler = Sampler::new();
        let first = sampler.sample(0, std::slice::from_ref(&probe));
        assert_eq!(first.tasks[0].memory_bytes, 42_000_000);
        assert_eq!(first.tasks[0].cpu_percent, 0.0, "no interval yet for a new cgroup");

        std::thread::sleep(Duration::from_millis(200));
        // 100 ms of CPU in at least 200 ms on every core: at most 50 % of one core.
        write("cpu.stat", "usage_usec 1100000\n");
        let second = sampler.sample(1, std::slice::from_ref(&probe));
        let cores = second.cores.max(1) as f32;
        let cpu = second.tasks[0].cpu_percent;
        assert!(cpu > 0.0 && cpu <= 50.0 / cores + 0.01, "cpu {cpu} on {cores} cores");

        // An unreadable cgroup falls back to the pids (pid 1 exists everywhere).
        let gone = TaskProbe { cgroup: Some(cgroup.path().join("gone")), ..probe };
        let third = sampler.sample(2, &[gone]);
        assert!(third.tasks[0].memory_bytes > 0 || fs::read_to_string("/proc/1/stat").is_err());
    }
}
