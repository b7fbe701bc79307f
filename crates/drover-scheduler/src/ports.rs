//! Ports: whether a node can give a group the ports its `network` block
//! asks for, and which ones it gives.
//!
//! A port is taken on a node by every allocation there that holds
//! resources ([`Allocation::holds_resources`]) and is not stopped by the
//! plan being built, by the plan's own placements there, and by the node's
//! reserved ports (`drover.reserved_ports` meta), as for cpu and memory.
//! As in Nomad, an allocation the plan stops gives its ports back to the
//! plan at once, so that a
//! replacement on the same node (a system job's update) can take its
//! static port; its process may still be stopping when the replacement
//! starts, so dynamic ports avoid the ports of stopping allocations while
//! others are free. A static port must be
//! free; dynamic ports are drawn from the node's range
//! (`drover.dynamic_ports` meta, 20000–32000 by default): up to
//! [`RANDOM_TRIES`] random picks, as Nomad does, so that a port freed a
//! moment ago is not handed out again at once, then the first free port
//! from a random offset. The feasibility check uses the same walk without
//! the random picks, so a node that passes it always yields its ports.
//!
//! Looking at a node's allocations costs O(allocations on the node), and
//! only for groups that ask for ports and nodes that are candidates.

use drover_types::network::{AllocatedPort, NetworkSpec, PortRange};
use drover_types::{AllocId, Allocation, Node, NodeId};
use rand::Rng;

use crate::fast_hash::{FastMap, FastSet};
use crate::view::ClusterView;

/// Random picks tried before walking the range.
pub(crate) const RANDOM_TRIES: usize = 20;

/// The reason a node has not the ports a group asks for, as counted in
/// [`drover_types::PlacementFailure::ports_exhausted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PortShortage {
    /// A static port is taken (by an allocation or the node's reserved
    /// ports).
    StaticInUse(u16),
    /// Not enough free ports in the node's dynamic range.
    NoDynamic,
}

impl PortShortage {
    /// The words of placement failures: `static port 9000 in use`.
    pub(crate) fn describe(&self) -> String {
        match self {
            PortShortage::StaticInUse(port) => format!("static port {port} in use"),
            PortShortage::NoDynamic => "no free dynamic port".to_owned(),
        }
    }
}

/// The plan's own effect on ports: what it places and what it frees.
#[derive(Debug, Default)]
pub(crate) struct PortLedger<'a> {
    /// Ports of the allocations the plan places, per node.
    placed: FastMap<&'a NodeId, Vec<u16>>,
    /// Allocations the plan stops, whose ports are free for its placements
    /// (counted, so that a stop taken back is undone once).
    stopped: FastMap<&'a AllocId, u32>,
}

impl<'a> PortLedger<'a> {
    /// The plan places an allocation holding `ports` on `node`.
    pub(crate) fn record_placement(&mut self, node: &'a NodeId, ports: &[AllocatedPort]) {
        if ports.is_empty() {
            return;
        }
        self.placed.entry(node).or_default().extend(ports.iter().map(|port| port.value));
    }

    /// The plan stops `alloc`: its ports are free for this plan.
    pub(crate) fn record_stop(&mut self, alloc: &'a Allocation) {
        if !alloc.ports.is_empty() {
            *self.stopped.entry(&alloc.id).or_insert(0) += 1;
        }
    }

    /// Takes back [`record_stop`](Self::record_stop).
    pub(crate) fn undo_stop(&mut self, alloc: &'a Allocation) {
        if let Some(count) = self.stopped.get_mut(&alloc.id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.stopped.remove(&alloc.id);
            }
        }
    }

    /// The ports of `node` once the plan so far is applied.
    pub(crate) fn used_on<V: ClusterView + ?Sized>(&self, view: &V, node: &NodeId) -> NodePorts {
        let mut ports = NodePorts::default();
        for alloc in view.allocs_on_node(node) {
            if !alloc.holds_resources() {
                continue;
            }
            let set = if self.stopped.contains_key(&alloc.id) { &mut ports.stopping } else { &mut ports.taken };
            set.extend(alloc.ports.iter().map(|port| port.value));
        }
        if let Some(placed) = self.placed.get(node) {
            ports.taken.extend(placed.iter().copied());
        }
        ports
    }
}

/// The ports of one node, as a placement sees them.
#[derive(Debug, Default)]
pub(crate) struct NodePorts {
    /// Held by allocations that run on and by the plan's placements.
    pub(crate) taken: FastSet<u16>,
    /// Held by allocations the plan stops: free, but dynamic ports avoid
    /// them while others are free.
    pub(crate) stopping: FastSet<u16>,
}

/// Chooses the ports of `network` on `node`, with `used` taken. `rng`
/// adds Nomad's random picks for dynamic ports; without it the choice is
/// the deterministic walk the feasibility check uses.
pub(crate) fn assign_ports<R: Rng + ?Sized>(
    network: &NetworkSpec,
    node: &Node,
    node_ports: &NodePorts,
    rng: Option<&mut R>,
) -> Result<Vec<AllocatedPort>, PortShortage> {
    let used = &node_ports.taken;
    let reserved = node.reserved_ports();
    let is_reserved = |port: u16| reserved.iter().any(|range| range.contains(port));
    let mut taken: FastSet<u16> = FastSet::default();
    for port in network.static_ports() {
        if used.contains(&port) || is_reserved(port) {
            return Err(PortShortage::StaticInUse(port));
        }
        taken.insert(port);
    }
    let range = node.dynamic_ports();
    let address = node.port_address();
    let mut rng = rng;
    let mut ports = Vec::with_capacity(network.ports.len());
    for spec in &network.ports {
        let value = match spec.static_port {
            Some(port) => port,
            None => {
                let is_free = |port: u16| !used.contains(&port) && !taken.contains(&port) && !is_reserved(port);
                let is_fresh = |port: u16| is_free(port) && !node_ports.stopping.contains(&port);
                let fresh = match rng.as_deref_mut() {
                    Some(rng) if !node_ports.stopping.is_empty() => pick_dynamic(range, &is_fresh, Some(rng)),
                    _ => None,
                };
                let port = fresh
                    .or_else(|| pick_dynamic(range, &is_free, rng.as_deref_mut()))
                    .ok_or(PortShortage::NoDynamic)?;
                taken.insert(port);
                port
            }
        };
        ports.push(AllocatedPort { label: spec.label.clone(), value, host_ip: address.clone() });
    }
    Ok(ports)
}

/// A free port of `range`: random picks first when `rng` is given, then
/// the first free one walking from a random offset (from the start
/// without `rng`).
fn pick_dynamic<R: Rng + ?Sized>(range: PortRange, is_free: &dyn Fn(u16) -> bool, rng: Option<&mut R>) -> Option<u16> {
    let mut start = range.low;
    if let Some(rng) = rng {
        for _ in 0..RANDOM_TRIES {
            let candidate = rng.random_range(range.low..=range.high);
            if is_free(candidate) {
                return Some(candidate);
            }
        }
        start = rng.random_range(range.low..=range.high);
    }
    let span = u32::from(range.high - range.low) + 1;
    let offset = u32::from(start - range.low);
    (0..span).map(|step| range.low + u16::try_from((offset + step) % span).unwrap_or(0)).find(|port| is_free(*port))
}

#[cfg(test)]
mod tests {
    use drover_types::fixtures;
    use drover_types::network::{DYNAMIC_PORTS_META, RESERVED_PORTS_META};
    use drover_types::{NetworkSpec, PortSpec};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn network(ports: &[(&str, Option<u16>)]) -> NetworkSpec {
        NetworkSpec {
            ports: ports
                .iter()
                .map(|(label, static_port)| PortSpec { label: (*label).to_owned(), static_port: *static_port })
                .collect(),
        }
    }

    fn taken(ports: &[u16]) -> NodePorts {
        NodePorts { taken: ports.iter().copied().collect(), stopping: FastSet::default() }
    }

    #[test]
    fn dynamic_ports_avoid_stopping_allocations_while_others_are_free() {
        let node = node_with_range("30000-30001");
        let node_ports = NodePorts { taken: FastSet::default(), stopping: [30_000].into_iter().collect() };
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let ports = assign_ports(&network(&[("http", None)]), &node, &node_ports, Some(&mut rng)).unwrap();
            assert_eq!(ports[0].value, 30_001);
        }
        let both = assign_ports::<StdRng>(&network(&[("a", None), ("b", None)]), &node, &node_ports, None).unwrap();
        assert_eq!(both.len(), 2, "a stopping allocation's port is free when nothing else is");
        let static_reuse = assign_ports::<StdRng>(&network(&[("a", Some(30_000))]), &node, &node_ports, None);
        assert!(static_reuse.is_ok(), "a replacement takes over a stopping allocation's static port");
    }

    fn node_with_range(range: &str) -> Node {
        let mut node = fixtures::node("n1");
        node.meta.insert(DYNAMIC_PORTS_META.to_owned(), range.to_owned());
        node
    }

    #[test]
    fn static_ports_are_kept_and_dynamic_ones_come_from_the_range() {
        let node = node_with_range("30000-30002");
        let used = taken(&[30_000]);
        let mut rng = StdRng::seed_from_u64(7);
        let ports =
            assign_ports(&network(&[("admin", Some(9000)), ("http", None)]), &node, &used, Some(&mut rng)).unwrap();
        assert_eq!(ports[0], AllocatedPort { label: "admin".into(), value: 9000, host_ip: "127.0.0.1".into() });
        assert!(matches!(ports[1].value, 30_001 | 30_002), "{ports:?}");
        let deterministic = assign_ports::<StdRng>(&network(&[("http", None)]), &node, &used, None).unwrap();
        assert_eq!(deterministic[0].value, 30_001);
    }

    #[test]
    fn a_taken_or_reserved_static_port_and_a_full_range_are_shortages() {
        let mut node = node_with_range("30000-30001");
        let used = taken(&[9000, 30_000]);
        let none = None::<&mut StdRng>;
        assert_eq!(
            assign_ports(&network(&[("admin", Some(9000))]), &node, &used, none),
            Err(PortShortage::StaticInUse(9000))
        );
        let two_dynamic = network(&[("a", None), ("b", None)]);
        assert_eq!(assign_ports::<StdRng>(&two_dynamic, &node, &used, None), Err(PortShortage::NoDynamic));
        node.meta.insert(RESERVED_PORTS_META.to_owned(), "22,30001".to_owned());
        assert_eq!(
            assign_ports::<StdRng>(&network(&[("ssh", Some(22))]), &node, &NodePorts::default(), None),
            Err(PortShortage::StaticInUse(22))
        );
        assert_eq!(assign_ports::<StdRng>(&network(&[("a", None)]), &node, &used, None), Err(PortShortage::NoDynamic));
        assert_eq!(PortShortage::StaticInUse(9000).describe(), "static port 9000 in use");
    }

    #[test]
    fn a_static_port_inside_the_range_is_not_handed_out_as_dynamic() {
        let node = node_with_range("30000-30001");
        let ports =
            assign_ports::<StdRng>(&network(&[("a", None), ("b", Some(30_000))]), &node, &NodePorts::default(), None)
                .unwrap();
        assert_eq!(ports.iter().map(|port| port.value).collect::<Vec<_>>(), vec![30_001, 30_000]);
    }
}
