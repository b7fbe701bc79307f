//! The memory a server spends on usage history: 10,000 nodes with a full
//! day each (a sample a minute for 23 h, then every 10 s for the last
//! hour, so that both resolutions are full), recorded as a server records
//! them (time by time, the closed blocks written to the block file every
//! 10 s of the day), counted by a global allocator that adds up what is
//! allocated (redb's cache included). Two fleets: one whose every figure
//! jumps at random every sample (nothing to pack), and one shaped like a
//! site (batch workers running jobs back to back, services following the
//! day, idle spares). docs/nodes.md states the figures this test measures
//! and bounds, and the size of the file the history is saved in.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use drover_server::usage_blocks::UsageBlocks;
use drover_server::usage_history::{MINUTES, Step, TEN_SECOND_POINTS, UsageRing, decode_history, encode_history};
use drover_types::NodeId;
use drover_types::usage::{DiskSample, NetSample, NodeSample};

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// 1,000 nodes of each fleet, bounded (a debug build records about
/// 70,000 samples a second, so 10,000 nodes take 10 minutes: that figure is
/// `usage_history_memory_10k` below).
#[test]
fn usage_history_memory() {
    // In memory: the open blocks (300 bytes), the ring, the table's entry;
    // redb's cache (2 MiB) is shared by all the nodes.
    let noisy = measure(1_000, "every figure at random", Fleet::Noisy);
    assert!(noisy.at_end < 4_000, "{noisy:?}");
    let site = measure(1_000, "a site's mix", Fleet::Site);
    assert!(site.at_end < 4_000, "{site:?}");
}

/// The figures docs/nodes.md and docs/benchmarks.md give: 10,000 nodes.
/// `cargo test -p drover-server --test usage_history_memory -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: 10,000 nodes take minutes in a debug build"]
fn usage_history_memory_10k() {
    for (name, fleet) in [("every figure at random", Fleet::Noisy), ("a site's mix", Fleet::Site)] {
        let held = measure(10_000, name, fleet);
        assert!(held.at_end < 2_000 && held.peak < 2_000, "{held:?}: over the 20 MB for 10,000 nodes");
    }
}

/// Bytes held a node: at the end of the day, and the most just before a
/// flush (when a block boundary has closed every node's block at once).
#[derive(Debug)]
struct Held {
    at_end: usize,
    peak: usize,
}

#[derive(Clone, Copy)]
enum Fleet {
    Noisy,
    Site,
}

/// Records a day of `nodes` nodes of `fleet`, time by time, flushing the
/// closed blocks every 10 s of the day as the server does; prints and
/// returns the bytes a node; saves and reads the history back.
fn measure(nodes: usize, name: &str, fleet: Fleet) -> Held {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("a temporary directory: {error}"));
    let ids: Vec<NodeId> =
        (0..nodes).map(|index| NodeId::new(format!("{index:08x}-0000-0000-0000-000000000000"))).collect();
    let mut generators: Vec<Generator> = (0..nodes).map(|index| Generator::new(index, fleet)).collect();
    let before = HELD.load(Ordering::Relaxed);
    let (mut blocks, error) = UsageBlocks::open(dir.path());
    assert_eq!(error, None);
    let mut table: HashMap<NodeId, UsageRing> = HashMap::new();
    let mut sampler = Sampler::new();
    let mut peak = 0;
    let started = std::time::Instant::now();
    for time_ms in times() {
        for (node_id, generator) in ids.iter().zip(generators.iter_mut()) {
            let sample = generator.sample(time_ms, &mut sampler);
            table.entry(node_id.clone()).or_default().record(sample, node_id.as_str(), &mut blocks);
        }
        if blocks.waiting() > 0 {
            peak = peak.max(HELD.load(Ordering::Relaxed) - before);
            let flush = blocks.flush();
            let written = flush.write();
            assert_eq!(written, Ok(()));
            blocks.flushed(&flush, &written);
        }
    }
    let recorded = started.elapsed();
    let held = HELD.load(Ordering::Relaxed) - before;
    let at_end = held / nodes;
    println!(
        "usage history, {name}: {nodes} nodes × 24 h hold {:.1} MB ({at_end} bytes a node), {:.1} MB at most just \
         before a flush; recorded in {} s; block file {:.1} MB",
        held as f64 / 1e6,
        peak as f64 / 1e6,
        recorded.as_secs(),
        std::fs::metadata(dir.path().join("usage-blocks.redb")).map_or(0, |file| file.len()) as f64 / 1e6,
    );
    let (id, ring) = table.iter().next().unwrap_or_else(|| unreachable!());
    assert_eq!(ring.points(0, id.as_str(), &blocks).len(), MINUTES);
    assert_eq!(ring.points_every(Step::TenSeconds, 0, id.as_str(), &blocks).len(), TEN_SECOND_POINTS);

    // The file a server writes of them (docs/nodes.md, "Usage history"),
    // and reading it back.
    let now_ms = DAY_MS - 10_000;
    let started = std::time::Instant::now();
    let file = encode_history(table.iter().map(|(id, ring)| (id.as_str(), ring)), &blocks, now_ms);
    let encoded = started.elapsed();
    let started = std::time::Instant::now();
    let mut read_blocks = drover_server::usage_history::BlockMap::default();
    let read = decode_history(&file, now_ms, &mut read_blocks)
        .unwrap_or_else(|error| panic!("the file does not read back: {error}"));
    let decoded = started.elapsed();
    println!(
        "usage history file, {name}: {:.1} MB for {nodes} nodes × 24 h, encoded and compressed in {} ms, read in {} ms",
        file.len() as f64 / 1e6,
        encoded.as_millis(),
        decoded.as_millis()
    );
    assert_eq!(read.len(), nodes);
    let (id, back) = &read[0];
    let kept = &table[&NodeId::new(id.clone())];
    assert_eq!(back.points(0, id, &read_blocks), kept.points(0, id, &blocks));
    assert_eq!(
        back.points_every(Step::TenSeconds, 0, id, &read_blocks),
        kept.points_every(Step::TenSeconds, 0, id, &blocks)
    );
    Held { at_end, peak: peak / nodes }
}

const DAY_MS: i64 = MINUTES as i64 * 60_000;

/// The sample times of a day: a minute apart for 23 h, then 10 s apart.
fn times() -> impl Iterator<Item = i64> {
    let last_hour = DAY_MS - 3_600_000;
    (0..last_hour).step_by(60_000).chain((last_hour..DAY_MS).step_by(10_000))
}

/// The sample the generators fill in and record, again and again (as the
/// server receives them; none is kept).
struct Sampler {
    sample: NodeSample,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            sample: NodeSample {
                memory_total: 1 << 30,
                disks: vec![DiskSample { mount: "/".to_owned(), ..DiskSample::default() }],
                net: vec![NetSample { interface: "eth0".to_owned(), ..NetSample::default() }],
                ..NodeSample::default()
            },
        }
    }
}

/// One node's figures over the day. `Fleet::Noisy`: CPU anywhere in
/// 0–100 % and traffic anywhere in 0–2 MB/s every sample, memory drifting
/// by up to 0.2 % a sample. `Fleet::Site`, by the node's index: half are
/// batch workers, 3 in 10 services, 2 in 10 idle spares.
///
/// - A batch worker runs jobs back to back, 20 to 180 minutes each with
///   1 to 5 idle minutes between: each job holds the CPU at its own level
///   (60–100 %, ±2 % a sample) and memory at its own (20–90 %, ±0.5 %),
///   receives at its own rate (1–100 MB/s, ±10 %) and sends a tenth of
///   it; its scratch disk fills 0.5 % a job and is cleaned at 90 %.
/// - A service follows the day: CPU 15 % ± 10 % over 24 h (±3 % a
///   sample), memory 55 % (±0.5 %), traffic 2 MB/s ± 1 MB/s (±20 %).
/// - A spare idles: CPU 0–1 %, memory 10 %, 500–1,500 bytes/s in.
struct Generator {
    index: usize,
    fleet: Fleet,
    noise: Noise,
    previous_ms: i64,
    rx: u64,
    tx: u64,
    memory: f64,
    job_ends: i64,
    idle_until: i64,
    cpu_level: f64,
    rate: f64,
    disk: f64,
}

impl Generator {
    fn new(index: usize, fleet: Fleet) -> Generator {
        Generator {
            index,
            fleet,
            noise: Noise(index as u64 + 1),
            previous_ms: 0,
            rx: 0,
            tx: 0,
            memory: 50.0,
            job_ends: 0,
            idle_until: 0,
            cpu_level: 0.0,
            rate: 0.0,
            disk: 20.0,
        }
    }

    fn sample<'a>(&mut self, time_ms: i64, sampler: &'a mut Sampler) -> &'a NodeSample {
        let seconds = (time_ms - self.previous_ms) as f64 / 1000.0;
        self.previous_ms = time_ms;
        let (cpu, memory, disk, rx_rate, tx_rate) = match self.fleet {
            Fleet::Noisy => {
                self.memory = (self.memory + self.noise.uniform(-0.2, 0.2)).clamp(0.0, 100.0);
                let disk = 40.0 + time_ms as f64 / DAY_MS as f64;
                let (rx_rate, tx_rate) = (self.noise.uniform(0.0, 2e6), self.noise.uniform(0.0, 5e5));
                (self.noise.uniform(0.0, 100.0), self.memory, disk, rx_rate, tx_rate)
            }
            Fleet::Site => self.site(time_ms),
        };
        self.rx += (rx_rate * seconds) as u64;
        self.tx += (tx_rate * seconds) as u64;
        let sample = &mut sampler.sample;
        sample.time_ms = time_ms;
        sample.cpu_percent = cpu.clamp(0.0, 100.0) as f32;
        sample.memory_used = ((memory.clamp(0.0, 100.0) / 100.0) * f64::from(1u32 << 30)) as u64;
        sample.disks[0].used = (disk.clamp(0.0, 100.0) * 10.0) as u64;
        sample.disks[0].avail = 1000 - sample.disks[0].used;
        sample.net[0].rx_bytes = self.rx;
        sample.net[0].tx_bytes = self.tx;
        sample
    }

    /// CPU, memory and disk percent, bytes/s in and out.
    fn site(&mut self, time_ms: i64) -> (f64, f64, f64, f64, f64) {
        let day = std::f64::consts::TAU * time_ms as f64 / DAY_MS as f64;
        let noise = &mut self.noise;
        match self.index % 10 {
            0..=4 => {
                if time_ms >= self.job_ends && time_ms >= self.idle_until {
                    if self.cpu_level > 0.0 {
                        // The job ended: idle a few minutes.
                        self.cpu_level = 0.0;
                        self.rate = 0.0;
                        self.idle_until = time_ms + 60_000 * (1 + noise.below(5) as i64);
                    } else {
                        self.job_ends = time_ms + 60_000 * (20 + noise.below(160) as i64);
                        self.cpu_level = noise.uniform(60.0, 100.0);
                        self.memory = noise.uniform(20.0, 90.0);
                        self.rate = noise.uniform(1e6, 1e8);
                        self.disk = if self.disk >= 90.0 { 20.0 } else { self.disk + 0.5 };
                    }
                }
                let cpu = if self.cpu_level > 0.0 {
                    self.cpu_level + noise.uniform(-2.0, 2.0)
                } else {
                    noise.uniform(0.0, 1.0)
                };
                let received = self.rate * noise.uniform(0.9, 1.1);
                let memory = self.memory + noise.uniform(-0.5, 0.5);
                (cpu, memory, self.disk, received, received / 10.0 * noise.uniform(0.9, 1.1))
            }
            5..=7 => (
                15.0 + 10.0 * day.sin() + noise.uniform(-3.0, 3.0),
                55.0 + noise.uniform(-0.5, 0.5),
                40.0,
                (2e6 + 1e6 * day.sin()) * noise.uniform(0.8, 1.2),
                (1e6 + 5e5 * day.sin()) * noise.uniform(0.8, 1.2),
            ),
            _ => (noise.uniform(0.0, 1.0), 10.0, 40.0, noise.uniform(500.0, 1500.0), noise.uniform(200.0, 600.0)),
        }
    }
}

/// A small deterministic generator (xorshift), for figures that move.
struct Noise(u64);

impl Noise {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }

    /// A number in `low..high`.
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.below(1 << 20) as f64 / f64::from(1u32 << 20)
    }
}
