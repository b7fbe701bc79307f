//! Ports: what a group's `network` block asks for, what the scheduler
//! reserves for an allocation, and which ports of a node are taken.
//!
//! drover runs tasks in the host's network (Nomad's `mode = "host"`): a
//! task listens on the node's port itself. A port is either *static* (the
//! job names the number, `port "admin" { static = 9000 }`) or *dynamic*
//! (`port "http" {}`: the scheduler picks a free number from the node's
//! dynamic range, 20000–32000 unless the node says otherwise). The numbers
//! chosen travel in the plan and are stored with the allocation
//! ([`AllocatedPort`]), so they survive agent restarts and leader changes,
//! and a port is taken on its node for as long as its allocation holds
//! resources ([`crate::Allocation::holds_resources`]).
//!
//! A node's dynamic range and reserved ports are node meta entries, set
//! with the agent's `--meta` or centrally with `drover node update --meta`:
//! [`DYNAMIC_PORTS_META`] (`"20000-32000"`) and [`RESERVED_PORTS_META`]
//! (`"22,80,8000-8100"`, never handed out).

use serde::{Deserialize, Serialize};

use crate::node::Node;

/// The node meta key that sets a node's dynamic port range, `"low-high"`.
pub const DYNAMIC_PORTS_META: &str = "drover.dynamic_ports";

/// The node meta key that lists ports never given to allocations,
/// `"22,80,8000-8100"`.
pub const RESERVED_PORTS_META: &str = "drover.reserved_ports";

/// The node attribute whose address tasks' ports are announced on
/// (`NOMAD_IP_<label>`); `127.0.0.1` when the node has none.
pub const ADDRESS_ATTRIBUTE: &str = "unique.network.ip-address";

/// Nomad's default dynamic port range.
pub const DEFAULT_DYNAMIC_PORTS: PortRange = PortRange { low: 20_000, high: 32_000 };

/// A group's `network` block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The ports, in file order (group-level ports first, then those of the
    /// tasks' legacy `resources { network { … } }` blocks).
    pub ports: Vec<PortSpec>,
}

impl NetworkSpec {
    /// Whether the block asks for no port.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The static ports it asks for.
    pub fn static_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().filter_map(|port| port.static_port)
    }

    /// How many dynamic ports it asks for.
    pub fn num_dynamic(&self) -> usize {
        self.ports.iter().filter(|port| port.static_port.is_none()).count()
    }
}

/// One `port "<label>" { … }` block.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// The label: `http` in `port "http" {}`, the suffix of
    /// `NOMAD_PORT_http`.
    pub label: String,
    /// The number the job asks for (`static = 9000`); `None` for a dynamic
    /// port.
    #[serde(rename = "static")]
    pub static_port: Option<u16>,
}

/// A port the scheduler reserved for an allocation on its node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AllocatedPort {
    /// The port's label in the group's `network` block.
    pub label: String,
    /// The port number on the node.
    pub value: u16,
    /// The node address the port is announced on (`NOMAD_IP_<label>`).
    pub host_ip: String,
}

/// An inclusive range of port numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port of the range.
    pub low: u16,
    /// Last port of the range (included).
    pub high: u16,
}

impl PortRange {
    /// Reads `"20000-32000"` (or a single number).
    pub fn parse(text: &str) -> Result<PortRange, String> {
        let text = text.trim();
        let (low_text, high_text) = text.split_once('-').unwrap_or((text, text));
        let number = |part: &str| -> Result<u16, String> {
            part.trim().parse::<u16>().ok().filter(|port| *port != 0).ok_or_else(|| {
                format!("{part:?} in {text:?} is not a port number from 1 to 65535: write a range such as 20000-32000")
            })
        };
        let low = number(low_text)?;
        let high = number(high_text)?;
        if low > high {
            return Err(format!("the port range {text:?} ends before it starts: write low-high, e.g. 20000-32000"));
        }
        Ok(PortRange { low, high })
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        usize::from(self.high - self.low) + 1
    }

    /// Whether the range is empty (never: a range holds at least one port).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Reads a list of ports and ranges, `"22,80,8000-8100"`.
pub fn parse_port_list(text: &str) -> Result<Vec<PortRange>, String> {
    text.split(',').filter(|part| !part.trim().is_empty()).map(PortRange::parse).collect()
}

impl Node {
    /// The node's dynamic port range: its [`DYNAMIC_PORTS_META`] entry, or
    /// [`DEFAULT_DYNAMIC_PORTS`] when it has none or it cannot be read.
    pub fn dynamic_ports(&self) -> PortRange {
        self.meta.get(DYNAMIC_PORTS_META).and_then(|text| PortRange::parse(text).ok()).unwrap_or(DEFAULT_DYNAMIC_PORTS)
    }

    /// The ports never given to allocations on this node (its
    /// [`RESERVED_PORTS_META`] entry; an entry that cannot be read reserves
    /// nothing).
    pub fn reserved_ports(&self) -> Vec<PortRange> {
        self.meta.get(RESERVED_PORTS_META).and_then(|text| parse_port_list(text).ok()).unwrap_or_default()
    }

    /// The address tasks' ports are announced on.
    pub fn port_address(&self) -> String {
        self.attributes.get(ADDRESS_ATTRIBUTE).cloned().unwrap_or_else(|| "127.0.0.1".to_owned())
    }
}

/// What is wrong with a port label, if anything: it becomes part of
/// environment variable names, so letters, digits, `_` and `-` only.
pub fn port_label_problem(label: &str) -> Option<String> {
    if label.is_empty() {
        return Some("a port label must not be empty: port \"http\" { }".to_owned());
    }
    if label.len() > 64 {
        return Some(format!("port label \"{label}\" is longer than 64 characters"));
    }
    let is_allowed = |character: char| character.is_ascii_alphanumeric() || character == '_' || character == '-';
    if let Some(bad) = label.chars().find(|character| !is_allowed(*character)) {
        return Some(format!(
            "port label \"{label}\" has the character {bad:?}: use letters, digits, _ and - (it names NOMAD_PORT_{label})"
        ));
    }
    None
}

/// The problems of a group's network block: labels, duplicates, static
/// ports used twice.
pub fn network_problems(network: &NetworkSpec) -> Vec<String> {
    let mut problems = Vec::new();
    for (position, port) in network.ports.iter().enumerate() {
        problems.extend(port_label_problem(&port.label));
        let earlier = &network.ports[..position];
        if earlier.iter().any(|other| other.label == port.label) {
            problems.push(format!("port \"{}\" is declared twice: port labels must be unique in a group", port.label));
        }
        if let Some(number) = port.static_port {
            if number == 0 {
                problems.push(format!("port \"{}\" has static = 0: give a port from 1 to 65535", port.label));
            }
            if let Some(other) = earlier.iter().find(|other| other.static_port == Some(number)) {
                problems.push(format!(
                    "ports \"{}\" and \"{}\" both ask for static port {number}: a port can be taken once per node",
                    other.label, port.label
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn port_ranges_read_like_nomad_writes_them() {
        assert_eq!(PortRange::parse("20000-32000"), Ok(PortRange { low: 20_000, high: 32_000 }));
        assert_eq!(PortRange::parse(" 80 "), Ok(PortRange { low: 80, high: 80 }));
        assert!(PortRange::parse("32000-20000").unwrap_err().contains("ends before it starts"));
        assert!(PortRange::parse("0-10").unwrap_err().contains("not a port number"));
        assert!(PortRange::parse("http").is_err());
        assert_eq!(
            parse_port_list("22, 8000-8002"),
            Ok(vec![PortRange { low: 22, high: 22 }, PortRange { low: 8000, high: 8002 }])
        );
        assert_eq!(PortRange { low: 8000, high: 8002 }.len(), 3);
    }

    #[test]
    fn a_node_without_settings_has_nomads_range() {
        let mut node = fixtures::node("n1");
        assert_eq!(node.dynamic_ports(), DEFAULT_DYNAMIC_PORTS);
        assert!(node.reserved_ports().is_empty());
        assert_eq!(node.port_address(), "127.0.0.1");
        node.meta.insert(DYNAMIC_PORTS_META.to_owned(), "30000-30009".to_owned());
        node.meta.insert(RESERVED_PORTS_META.to_owned(), "30000".to_owned());
        node.attributes.insert(ADDRESS_ATTRIBUTE.to_owned(), "10.0.0.7".to_owned());
        assert_eq!(node.dynamic_ports(), PortRange { low: 30_000, high: 30_009 });
        assert_eq!(node.reserved_ports(), vec![PortRange { low: 30_000, high: 30_000 }]);
        assert_eq!(node.port_address(), "10.0.0.7");
    }

    #[test]
    fn labels_duplicates_and_shared_static_ports_are_problems() {
        let port = |label: &str, static_port: Option<u16>| PortSpec { label: label.to_owned(), static_port };
        let fine = NetworkSpec { ports: vec![port("http", None), port("admin", Some(9000))] };
        assert!(network_problems(&fine).is_empty());
        let bad = NetworkSpec {
            ports: vec![port("http", None), port("http", None), port("a.b", Some(9000)), port("c", Some(9000))],
        };
        let problems = network_problems(&bad).join("\n");
        assert!(problems.contains("port \"http\" is declared twice"), "{problems}");
        assert!(problems.contains("has the character '.'"), "{problems}");
        assert!(problems.contains("both ask for static port 9000"), "{problems}");
    }
}
