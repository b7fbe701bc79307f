//! The memory a server spends on usage history: 10,000 nodes with a full
//! day each, counted by a global allocator that adds up what is allocated.
//! docs/nodes.md states the figure this test measures and bounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use drover_server::usage_history::{MINUTES, UsageRing};
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
        // A sample a minute for 24 h: every slot written.
        for minute in 0..MINUTES as i64 {
            ring.record(&NodeSample {
                time_ms: minute * 60_000,
                cpu_percent: (index % 100) as f32,
                memory_total: 1 << 30,
                memory_used: 1 << 29,
                disks: vec![DiskSample { mount: "/".to_owned(), used: 1, avail: 1, ..DiskSample::default() }],
                net: vec![NetSample {
                    interface: "eth0".to_owned(),
                    rx_bytes: minute as u64 * 1000,
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
}
