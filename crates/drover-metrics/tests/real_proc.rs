//! The sampler against this machine's real `/proc`, `statvfs` and processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use drover_metrics::{NodeSample, Sampler, TaskProbe};

/// A child process group, killed with all its members when dropped, even when
/// the test panics.
struct ChildGroup(Child);

impl ChildGroup {
    fn spawn(script: &str) -> Self {
        let child = Command::new("sh").arg("-c").arg(script).process_group(0).spawn().expect("spawn sh");
        ChildGroup(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(i32::MAX));
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
    }
}

fn busy_loop(duration: Duration) {
    let start = Instant::now();
    let mut counter = 0_u64;
    while start.elapsed() < duration {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

#[test]
fn node_figures_are_plausible() {
    let mut sampler = Sampler::new();
    busy_loop(Duration::from_millis(300));
    let sample = sampler.sample(now_ms(), &[]);
    eprintln!("{sample:#?}");

    assert!(sample.cores >= 1);
    assert!(sample.cpu_percent > 0.0 && sample.cpu_percent <= 100.0, "cpu {} after a busy loop", sample.cpu_percent);
    assert!(sample.load1 >= 0.0 && sample.load5 >= 0.0 && sample.load15 >= 0.0);
    assert!(sample.memory_total > 64 << 20, "memory {}", sample.memory_total);
    assert!(sample.memory_used > 0 && sample.memory_used < sample.memory_total);
    assert_eq!(sample.memory_used + sample.memory_available, sample.memory_total);
    assert!(sample.swap_used <= sample.swap_total);
    assert!(sample.uptime_secs > 0);
    assert!(sample.processes_total >= 2, "this test and its parent: {}", sample.processes_total);
    assert!(sample.processes_running >= 1, "this test is running");
    assert!(sample.net.iter().all(|net| net.interface != "lo"));
    let clock_secs = u64::try_from(sample.clock_ms / 1000).unwrap();
    assert!(sample.boot_time_secs > 0 && sample.boot_time_secs < clock_secs, "btime {}", sample.boot_time_secs);
    assert!(sample.boot_time_secs.abs_diff(clock_secs - sample.uptime_secs) <= 2, "btime agrees with uptime");
    assert!(sample.context_switches > 0 && sample.interrupts > 0);
    assert!(sample.memory_slab >= sample.memory_sreclaimable && sample.memory_page_tables > 0);
    let uname = sample.uname.as_ref().expect("uname from /proc/sys/kernel");
    assert_eq!(uname.sysname, "Linux");
    assert!(!uname.release.is_empty() && !uname.nodename.is_empty() && !uname.machine.is_empty(), "{uname:?}");
    if std::path::Path::new("/proc/pressure/cpu").exists() {
        let pressure = sample.pressure.as_ref().expect("pressure when /proc/pressure exists");
        assert!(pressure.cpu_some_us.is_some() && pressure.io_full_us.is_some(), "{pressure:?}");
    }

    let tmp = sample.disk("/tmp").expect("/tmp is always reported");
    assert!(tmp.total > 0 && tmp.used <= tmp.total && tmp.avail <= tmp.total, "{tmp:?}");
    assert!((0.0..=100.0).contains(&tmp.used_percent()));
    let root = sample.disk("/").expect("the root filesystem");
    assert!(!root.fs_type.is_empty());
    assert!(root.files_free <= root.files, "inodes {root:?}");
    assert!(
        sample.filefd_maximum > 0 && (1..=sample.filefd_maximum).contains(&sample.filefd_allocated),
        "file handles {} of {}",
        sample.filefd_allocated,
        sample.filefd_maximum
    );
    let mounts = sample.disks.iter().map(|disk| disk.mount.as_str()).collect::<Vec<_>>();
    assert!(mounts.windows(2).all(|pair| pair[0] < pair[1]), "sorted and unique: {mounts:?}");
    assert!(!mounts.iter().any(|mount| mount.starts_with("/proc") || mount.starts_with("/sys")), "{mounts:?}");

    // An idle interval right after reads a valid percentage too.
    let again = sampler.sample(now_ms(), &[]);
    assert!((0.0..=100.0).contains(&again.cpu_percent));
}

#[test]
fn a_spawned_process_and_its_children_are_measured_by_pid() {
    // Created first, so the first sample counts the whole life of processes
    // that started after it.
    let mut sampler = Sampler::new();
    // The root shell only waits; the CPU is burnt by its child, and memory is
    // held by both.
    let child = ChildGroup::spawn("sh -c 'while :; do :; done' & wait");
    let probe =
        TaskProbe { alloc_id: "alloc-1".to_owned(), task: "burner".to_owned(), cgroup: None, pids: vec![child.pid()] };
    std::thread::sleep(Duration::from_millis(600));
    let first = sampler.sample(now_ms(), std::slice::from_ref(&probe));
    std::thread::sleep(Duration::from_millis(600));
    let second = sampler.sample(now_ms(), std::slice::from_ref(&probe));
    eprintln!("{:?}\n{:?}", first.tasks, second.tasks);

    for sample in [&first, &second] {
        let task = &sample.tasks[0];
        assert_eq!((task.alloc_id.as_str(), task.task.as_str()), ("alloc-1", "burner"));
        assert!(task.memory_bytes > 100 << 10, "two shells hold more than 100 KiB: {}", task.memory_bytes);
        // One busy core, shared with whatever else runs here.
        let cores = sample.cores as f32;
        assert!(
            task.cpu_percent > 10.0 / cores && task.cpu_percent <= 100.0 / cores + 5.0,
            "a busy loop on {cores} cores: {}",
            task.cpu_percent
        );
    }
    // The memory figure matches the kernel's VmRSS of the two shells.
    let root = child.pid().to_string();
    let field = |status: &str, key: &str| {
        status
            .lines()
            .find(|line| line.starts_with(key))
            .and_then(|line| line.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let rss_kib = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("status")).ok())
        .filter(|status| {
            field(status, "Pid:").as_ref() == Some(&root) || field(status, "PPid:").as_ref() == Some(&root)
        })
        .filter_map(|status| field(&status, "VmRSS:")?.parse::<u64>().ok())
        .sum::<u64>();
    let measured = second.tasks[0].memory_bytes;
    assert!(measured.abs_diff(rss_kib * 1024) <= 1 << 20, "sampled {measured} vs VmRSS {} KiB", rss_kib);

    // A probe whose processes are gone measures zero, without failing.
    let gone = TaskProbe { pids: vec![u32::MAX - 1], ..probe };
    let third = sampler.sample(now_ms(), &[gone]);
    assert_eq!((third.tasks[0].cpu_percent, third.tasks[0].memory_bytes), (0.0, 0));
}

/// What a sample costs is printed, not asserted: a wall-clock bound fails
/// on a loaded machine and proves nothing on an idle one.
#[test]
fn one_sample_is_small_and_decodes_to_itself() {
    let mut sampler = Sampler::new();
    let probes =
        [TaskProbe { alloc_id: "a".into(), task: "self".into(), cgroup: None, pids: vec![std::process::id()] }];
    sampler.sample(now_ms(), &probes);
    let rounds = 50_u32;
    let start = Instant::now();
    let mut sample = NodeSample::default();
    for _ in 0..rounds {
        sample = sampler.sample(now_ms(), &[]);
    }
    let node_only = start.elapsed() / rounds;
    let start = Instant::now();
    for _ in 0..rounds {
        sample = sampler.sample(now_ms(), &probes);
    }
    let with_pid_task = start.elapsed() / rounds;
    let named = rmp_serde::to_vec_named(&sample).unwrap();
    let json = serde_json::to_vec(&sample).unwrap();
    eprintln!(
        "sample(): {node_only:?} for the node, {with_pid_task:?} with one pid-measured task ({} processes); \
         {} disks, {} interfaces; MessagePack (named fields) {} B, JSON {} B",
        sample.processes_total,
        sample.disks.len(),
        sample.net.len(),
        named.len(),
        json.len()
    );
    assert!(named.len() < 2048, "{} bytes", named.len());
    let decoded: NodeSample = rmp_serde::from_slice(&named).unwrap();
    assert_eq!(decoded, sample);
}
