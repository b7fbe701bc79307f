//! The memory a server spends on usage history: 10,000 nodes with a full
//! day each, counted by a global allocator that adds up what is allocated.
//! docs/nodes.md states the figure this test measures and bounds, and the
//! size of the file the history is saved in.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use drover_server::usage_history::{MINUTES, UsageRing, decode_history, encode_history};
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

#[test]
fn usage_history_memory() {
    const NODES: usize = 10_000;
    let ids: Vec<NodeId> =
        (0..NODES).map(|index| NodeId::new(format!("{index:08x}-0000-0000-0000-000000000000"))).collect();
    let before = HELD.load(Ordering::Relaxed);
    let mut table: HashMap<NodeId, UsageRing> = HashMap::new();
    for (index, node_id) in ids.iter().enumerate() {
        table.insert(node_id.clone(), UsageRing::default());
        let ring = table.get_mut(node_id).unwrap_or_else(|| unreachable!());
        // A sample a minute for 24 h: every slot written, with figures
        // that move as a busy node's do (CPU and traffic jump about,
        // memory drifts, the disk fills slowly), so that the saved file's
        // size is not flattered by constant values.
        let mut noise = Noise(index as u64 + 1);
        let (mut rx, mut tx, mut memory) = (0u64, 0u64, 1u64 << 29);
        for minute in 0..MINUTES as i64 {
            rx += noise.below(2_000_000);
            tx += noise.below(500_000);
            memory = (memory + noise.below(1 << 22)).saturating_sub(1 << 21).min(1 << 30);
            ring.record(&NodeSample {
                time_ms: minute * 60_000,
                cpu_percent: noise.below(10_000) as f32 / 100.0,
                memory_total: 1 << 30,
                memory_used: memory,
                disks: vec![DiskSample {
                    mount: "/".to_owned(),
                    used: 400 + minute as u64 / 60,
                    avail: 600 - minute as u64 / 60,
                    ..DiskSample::default()
                }],
                net: vec![NetSample {
                    interface: "eth0".to_owned(),
                    rx_bytes: rx,
                    tx_bytes: tx,
                    ..NetSample::default()
                }],
                ..NodeSample::default()
            });
        }
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    let per_node = held / NODES;
    println!("usage history: {NODES} nodes × 24 h hold {:.1} MB ({per_node} bytes a node)", held as f64 / 1e6);
    assert_eq!(table.values().next().map(|ring| ring.points(0).len()), Some(MINUTES));
    // 1440 minutes × 5 bytes, plus the table's entry and the id: under 8 KB a node.
    assert!(per_node < 8_000, "{per_node} bytes a node");

    // The file a server writes of them (docs/nodes.md, "Usage history"),
    // and reading it back.
    let now_ms = MINUTES as i64 * 60_000;
    let started = std::time::Instant::now();
    let file = encode_history(table.iter().map(|(id, ring)| (id.as_str(), ring)), now_ms);
    let encoded = started.elapsed();
    let started = std::time::Instant::now();
    let read = decode_history(&file, now_ms).unwrap();
    let decoded = started.elapsed();
    println!(
        "usage history file: {:.1} MB for {NODES} nodes × 24 h, encoded and compressed in {} ms, read in {} ms",
        file.len() as f64 / 1e6,
        encoded.as_millis(),
        decoded.as_millis()
    );
    assert_eq!(read.len(), NODES);
    assert!(file.len() < 8_000 * NODES, "{} bytes", file.len());
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
}
