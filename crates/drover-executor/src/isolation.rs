//! How tasks are confined on this node: cgroup v2 limits when the kernel
//! offers them, rlimits otherwise.
//!
//! Three kinds of host exist in the wild, and drover must do the best
//! possible on each:
//!
//! - **pure cgroup v2** (`/sys/fs/cgroup` is cgroup2 and its
//!   `cgroup.controllers` lists `cpu` and `memory`): every `exec` task gets
//!   its own cgroup `/sys/fs/cgroup/drover/<alloc>-<task>` with
//!   `memory.max` (the task's memory in MiB), `cpu.weight` (proportional to
//!   its MHz) and optionally a hard `cpu.max`. Mode [`IsolationMode::Cgroup2`].
//! - **hybrid v1/v2** (cgroup2 at `/sys/fs/cgroup/unified` with no or few
//!   controllers; memory and cpu belong to the v1 hierarchies): cgroup2 is
//!   still writable, so every task still gets a cgroup there, *for
//!   tracking*: `cgroup.kill` then kills the whole process tree, even
//!   processes that left the task's process group. Limits fall back to
//!   rlimits. Mode [`IsolationMode::Rlimits`].
//! - **no writable cgroup2** (old kernels, read-only `/sys/fs/cgroup` in a
//!   container): rlimits only, and stopping relies on the process group.
//!
//! The rlimit fallback for memory is `RLIMIT_DATA`, not `RLIMIT_AS`.
//! `RLIMIT_AS` caps *address space*, and many runtimes reserve far more
//! than they use (the JVM, Go, V8 and glibc's per-thread arenas reserve
//! gigabytes up front), so an `RLIMIT_AS` equal to the task's memory makes
//! them fail at start-up. `RLIMIT_DATA` (Linux ≥ 4.7) caps the heap and
//! private writable mappings, which is what a memory figure means in
//! practice. It is per process, not per task, and an allocation beyond it
//! fails with `ENOMEM` instead of waking the OOM killer, so it is a
//! guard-rail rather than an accounting limit; the docs say so. There is
//! no rlimit for a CPU share (`RLIMIT_CPU` caps total CPU seconds and would
//! kill a long-running service), so CPU is not limited in that mode.
//!
//! `raw_exec` tasks get no limits in any mode, but are tracked in a cgroup
//! whenever one is writable.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use drover_types::{AllocId, Driver, Resources};
use serde::{Deserialize, Serialize};

use crate::cgroup;
use crate::formats::{CgroupPlacement, CpuMax, Rlimits};

/// Name of drover's parent cgroup under the cgroup2 mount.
pub const CGROUP_PARENT_NAME: &str = "drover";

/// The `cpu.max` period drover uses, in microseconds (the kernel's default).
const CPU_MAX_PERIOD_US: u64 = 100_000;

/// How resource limits are enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// cgroup v2 `memory.max`, `cpu.weight` and `cpu.max`.
    Cgroup2,
    /// `RLIMIT_DATA` for memory; CPU is not limited.
    Rlimits,
}

impl IsolationMode {
    /// `cgroup2` or `rlimits`, as shown in node facts.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationMode::Cgroup2 => "cgroup2",
            IsolationMode::Rlimits => "rlimits",
        }
    }
}

/// The node's isolation capabilities, found once at agent start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// How limits are enforced.
    pub mode: IsolationMode,
    /// drover's parent cgroup (`<cgroup2 mount>/drover`) when cgroup2 is
    /// writable; every task then gets a cgroup below it, at least for
    /// tracking its processes.
    pub cgroup_parent: Option<PathBuf>,
    /// Why this mode, in words an operator can act on (shown as a node
    /// fact).
    pub reason: String,
}

/// The machine's CPU, for turning a task's MHz into a hard `cpu.max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCpu {
    /// Total MHz of the node (cores × MHz per core), as fingerprinted.
    pub total_mhz: u64,
    /// Number of cores.
    pub num_cores: u32,
}

impl Isolation {
    /// Inspects the host and prepares drover's parent cgroup.
    ///
    /// Side effects: creates `<cgroup2 mount>/drover` when missing and
    /// enables the `cpu` and `memory` controllers for it when the kernel
    /// offers them. Never fails: anything that does not work is a reason
    /// for the rlimit fallback.
    pub fn detect() -> Isolation {
        let mountinfo = match fs::read_to_string("/proc/self/mountinfo") {
            Ok(text) => text,
            Err(error) => return Isolation::rlimits_only(format!("cannot read /proc/self/mountinfo: {error}")),
        };
        match find_cgroup2_mount(&mountinfo) {
            Some(mount) => Isolation::detect_at(&mount),
            None => Isolation::rlimits_only("no cgroup2 file system is mounted; memory is limited with RLIMIT_DATA"),
        }
    }

    /// [`Isolation::detect`] for a given cgroup2 mount point.
    pub fn detect_at(mount: &Path) -> Isolation {
        let parent = mount.join(CGROUP_PARENT_NAME);
        if let Err(error) = fs::create_dir_all(&parent) {
            return Isolation::rlimits_only(format!(
                "cgroup2 at {} is not writable ({error}); memory is limited with RLIMIT_DATA and tasks are \
                 tracked by process group only",
                mount.display()
            ));
        }
        let available = cgroup::read_controller_list(&mount.join("cgroup.controllers")).unwrap_or_default();
        let has = |name: &str| available.iter().any(|controller| controller == name);
        if !(has("cpu") && has("memory")) {
            let listed = if available.is_empty() { "none".to_owned() } else { available.join(" ") };
            return Isolation {
                mode: IsolationMode::Rlimits,
                cgroup_parent: Some(parent.clone()),
                reason: format!(
                    "cgroup2 at {} offers the controllers [{listed}] but not cpu and memory (on a hybrid cgroup \
                     v1/v2 host they belong to cgroup v1); memory is limited with RLIMIT_DATA, CPU is not \
                     limited, tasks are tracked in {}",
                    mount.display(),
                    parent.display()
                ),
            };
        }
        match enable_controllers(mount, &parent) {
            Ok(()) => Isolation {
                mode: IsolationMode::Cgroup2,
                cgroup_parent: Some(parent.clone()),
                reason: format!("cgroup2 at {} with the cpu and memory controllers", mount.display()),
            },
            Err(error) => Isolation {
                mode: IsolationMode::Rlimits,
                cgroup_parent: Some(parent.clone()),
                reason: format!(
                    "could not enable the cpu and memory controllers for {} ({error}); memory is limited with \
                     RLIMIT_DATA, CPU is not limited",
                    parent.display()
                ),
            },
        }
    }

    /// No cgroups at all: rlimits, and process groups for tracking.
    pub fn rlimits_only(reason: impl Into<String>) -> Isolation {
        Isolation { mode: IsolationMode::Rlimits, cgroup_parent: None, reason: reason.into() }
    }

    /// Whether tasks get a cgroup (for limits or only for tracking).
    pub fn tracks_processes(&self) -> bool {
        self.cgroup_parent.is_some()
    }

    /// The cgroup a task of `alloc_id` named `task_name` gets, if any.
    pub fn task_cgroup(&self, alloc_id: &AllocId, task_name: &str) -> Option<PathBuf> {
        let parent = self.cgroup_parent.as_ref()?;
        let name: String = format!("{alloc_id}-{task_name}")
            .chars()
            .map(
                |character| {
                    if character.is_ascii_alphanumeric() || "-_.".contains(character) { character } else { '_' }
                },
            )
            .collect();
        Some(parent.join(name))
    }

    /// Decides a task's cgroup and rlimits.
    ///
    /// `exec` gets `memory.max` = memory MiB, `cpu.weight` = MHz clamped to
    /// 1–10000 (so two tasks' CPU shares are in the ratio of their MHz) and,
    /// when `cpu_hard_limit` is set and `node_cpu` known, `cpu.max` = the
    /// task's fraction of the node's MHz; without the controllers,
    /// `RLIMIT_DATA` = memory MiB. `raw_exec` gets a tracking cgroup only.
    pub fn plan_limits(
        &self,
        alloc_id: &AllocId,
        task_name: &str,
        driver: Driver,
        resources: Resources,
        cpu_hard_limit: bool,
        node_cpu: Option<NodeCpu>,
    ) -> (Option<CgroupPlacement>, Rlimits) {
        let memory_bytes = (resources.memory_mb > 0).then(|| resources.memory_mb.saturating_mul(1024 * 1024));
        let mut placement = self.task_cgroup(alloc_id, task_name).map(|path| CgroupPlacement {
            path,
            memory_max_bytes: None,
            cpu_weight: None,
            cpu_max: None,
        });
        if driver == Driver::RawExec {
            return (placement, Rlimits::default());
        }
        match (self.mode, placement.as_mut()) {
            (IsolationMode::Cgroup2, Some(placement)) => {
                placement.memory_max_bytes = memory_bytes;
                placement.cpu_weight = Some(resources.cpu_mhz.clamp(1, 10_000));
                placement.cpu_max = match node_cpu {
                    Some(node_cpu) if cpu_hard_limit && node_cpu.total_mhz > 0 => {
                        let all_cores_us = CPU_MAX_PERIOD_US.saturating_mul(u64::from(node_cpu.num_cores.max(1)));
                        let quota_us = all_cores_us.saturating_mul(resources.cpu_mhz) / node_cpu.total_mhz;
                        Some(CpuMax { quota_us: quota_us.max(1_000), period_us: CPU_MAX_PERIOD_US })
                    }
                    _ => None,
                };
                (Some(placement.clone()), Rlimits::default())
            }
            _ => (placement, Rlimits { data_bytes: memory_bytes }),
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.mode.as_str(), self.reason)
    }
}

/// Enables `cpu` and `memory` for drover's parent cgroup and its children.
fn enable_controllers(mount: &Path, parent: &Path) -> io::Result<()> {
    for cgroup in [mount, parent] {
        let subtree_control = cgroup.join("cgroup.subtree_control");
        let enabled = cgroup::read_controller_list(&subtree_control)?;
        if !(enabled.iter().any(|name| name == "cpu") && enabled.iter().any(|name| name == "memory")) {
            fs::write(&subtree_control, "+cpu +memory")?;
        }
    }
    let enabled = cgroup::read_controller_list(&parent.join("cgroup.subtree_control"))?;
    if enabled.iter().any(|name| name == "cpu") && enabled.iter().any(|name| name == "memory") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cgroup.subtree_control of {} lists only [{}]",
            parent.display(),
            enabled.join(" ")
        )))
    }
}

/// The mount point of the cgroup2 file system, from
/// `/proc/self/mountinfo`: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
/// [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS`.
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = before.split_whitespace().nth(4)?;
        Some(PathBuf::from(mount_point.replace("\\040", " ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 24 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
39 35 0:34 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory";

    #[test]
    fn the_cgroup2_mount_is_found_among_v1_mounts() {
        assert_eq!(find_cgroup2_mount(HYBRID), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(find_cgroup2_mount("39 35 0:34 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory"), None);
    }

    #[test]
    fn a_mount_without_cpu_and_memory_tracks_but_limits_with_rlimits() {
        let mount = tempfile::tempdir().unwrap();
        fs::write(mount.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
        let isolation = Isolation::detect_at(mount.path());
        assert_eq!(isolation.mode, IsolationMode::Rlimits);
        assert_eq!(isolation.cgroup_parent, Some(mount.path().join("drover")));
        assert!(isolation.reason.contains("[hugetlb]"), "{}", isolation.reason);
    }

    #[test]
    fn exec_limits_follow_the_mode_and_raw_exec_gets_none() {
        let alloc = AllocId::new("a1");
        let resources = Resources { cpu_mhz: 500, memory_mb: 256 };
        let node_cpu = Some(NodeCpu { total_mhz: 4000, num_cores: 2 });
        let cgroup2 =
            Isolation { mode: IsolationMode::Cgroup2, cgroup_parent: Some("/cg/drover".into()), reason: String::new() };
        let (placement, rlimits) = cgroup2.plan_limits(&alloc, "web/1", Driver::Exec, resources, true, node_cpu);
        assert_eq!(
            placement,
            Some(CgroupPlacement {
                path: "/cg/drover/a1-web_1".into(),
                memory_max_bytes: Some(256 * 1024 * 1024),
                cpu_weight: Some(500),
                cpu_max: Some(CpuMax { quota_us: 25_000, period_us: 100_000 }),
            })
        );
        assert_eq!(rlimits, Rlimits::default());

        let hybrid = Isolation { mode: IsolationMode::Rlimits, ..cgroup2.clone() };
        let (placement, rlimits) = hybrid.plan_limits(&alloc, "web", Driver::Exec, resources, true, node_cpu);
        assert_eq!(placement.map(|placement| placement.memory_max_bytes), Some(None));
        assert_eq!(rlimits.data_bytes, Some(256 * 1024 * 1024));

        let (placement, rlimits) = cgroup2.plan_limits(&alloc, "web", Driver::RawExec, resources, true, node_cpu);
        assert_eq!(placement.map(|placement| (placement.memory_max_bytes, placement.cpu_weight)), Some((None, None)));
        assert_eq!(rlimits, Rlimits::default());

        let bare = Isolation::rlimits_only("test");
        assert_eq!(bare.plan_limits(&alloc, "web", Driver::Exec, resources, false, None).0, None);
    }
}
