//! The cgroup v2 file operations: create a task's cgroup with its limits,
//! kill everything in it, remove it, read its OOM count.
//!
//! cgroup v2 is a file system: a cgroup is a directory, a limit is a file
//! written with a number, moving a process is writing its pid to
//! `cgroup.procs`, and `cgroup.kill` (Linux 5.14) SIGKILLs every process
//! inside at once, including those that left the task's process group.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::formats::CgroupPlacement;

/// Writes one cgroup interface file.
fn write_file(cgroup: &Path, name: &str, value: &str) -> io::Result<()> {
    let path = cgroup.join(name);
    fs::write(&path, value)
        .map_err(|error| io::Error::new(error.kind(), format!("writing {}: {error}", path.display())))
}

/// Creates the task's cgroup and writes its limits. A leftover cgroup of
/// an earlier run of the same task (an executor that died) is emptied and
/// replaced first.
pub(crate) fn create(placement: &CgroupPlacement) -> io::Result<()> {
    let path = &placement.path;
    if path.exists() {
        kill_all(path)?;
        remove(path, Duration::from_secs(2))?;
    }
    fs::create_dir_all(path)
        .map_err(|error| io::Error::new(error.kind(), format!("creating cgroup {}: {error}", path.display())))?;
    if let Some(bytes) = placement.memory_max_bytes {
        write_file(path, "memory.max", &bytes.to_string())?;
        // Without this, a task at its limit swaps instead of being stopped
        // by it. The file exists only where the kernel accounts swap.
        if path.join("memory.swap.max").exists() {
            write_file(path, "memory.swap.max", "0")?;
        }
    }
    if let Some(weight) = placement.cpu_weight {
        write_file(path, "cpu.weight", &weight.to_string())?;
    }
    if let Some(cpu_max) = placement.cpu_max {
        write_file(path, "cpu.max", &format!("{} {}", cpu_max.quota_us, cpu_max.period_us))?;
    }
    Ok(())
}

/// Opens `cgroup.procs` for writing; the task's child side writes `0` to
/// it (meaning "myself") before `exec`.
pub(crate) fn open_procs(cgroup: &Path) -> io::Result<fs::File> {
    let path = cgroup.join("cgroup.procs");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|error| io::Error::new(error.kind(), format!("opening {}: {error}", path.display())))
}

/// SIGKILLs every process in the cgroup: through `cgroup.kill` where the
/// kernel has it, else pid by pid from `cgroup.procs`. A missing cgroup is
/// already empty.
pub(crate) fn kill_all(cgroup: &Path) -> io::Result<()> {
    if !cgroup.exists() {
        return Ok(());
    }
    let kill_file = cgroup.join("cgroup.kill");
    if kill_file.exists() {
        return write_file(cgroup, "cgroup.kill", "1");
    }
    // Before Linux 5.14: kill what is listed, a few rounds in case a
    // process forked meanwhile.
    for _ in 0..5 {
        let procs = match fs::read_to_string(cgroup.join("cgroup.procs")) {
            Ok(procs) => procs,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let pids: Vec<i32> = procs.lines().filter_map(|line| line.trim().parse().ok()).collect();
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Removes the cgroup once its processes are gone, retrying while the
/// kernel still reports it busy, for up to `timeout`.
pub(crate) fn remove(cgroup: &Path, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match fs::remove_dir(cgroup) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(io::Error::new(error.kind(), format!("removing cgroup {}: {error}", cgroup.display())));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// How many times the OOM killer killed a process of the cgroup, from
/// `memory.events`; `None` without the memory controller.
pub(crate) fn oom_kill_count(cgroup: &Path) -> Option<u64> {
    let events = fs::read_to_string(cgroup.join("memory.events")).ok()?;
    events.lines().find_map(|line| line.strip_prefix("oom_kill ")).and_then(|count| count.trim().parse().ok())
}

/// The controllers listed in a `cgroup.controllers` or
/// `cgroup.subtree_control` file.
pub(crate) fn read_controller_list(path: &Path) -> io::Result<Vec<String>> {
    Ok(fs::read_to_string(path)?.split_whitespace().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::CpuMax;

    /// The limit files are plain files in a temporary directory here; on a
    /// host with cgroup2 controllers the integration tests check the real
    /// thing.
    #[test]
    fn limits_are_written_in_cgroup_v2_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let placement = CgroupPlacement {
            path: dir.path().join("alloc-web"),
            memory_max_bytes: Some(256 * 1024 * 1024),
            cpu_weight: Some(500),
            cpu_max: Some(CpuMax { quota_us: 50_000, period_us: 100_000 }),
        };
        create(&placement).unwrap();
        let read = |name: &str| fs::read_to_string(placement.path.join(name)).unwrap();
        assert_eq!(read("memory.max"), "268435456");
        assert_eq!(read("cpu.weight"), "500");
        assert_eq!(read("cpu.max"), "50000 100000");
    }

    #[test]
    fn oom_kills_are_read_from_memory_events() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(oom_kill_count(dir.path()), None);
        fs::write(dir.path().join("memory.events"), "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n")
            .unwrap();
        assert_eq!(oom_kill_count(dir.path()), Some(1));
    }
}
