//! `network` blocks: the ports a group's tasks listen on.
//!
//! drover runs tasks in the host's network, Nomad's `mode = "host"`: a task
//! listens on the node's port itself, which the agent tells it in
//! `NOMAD_PORT_<label>`. What only makes sense with a network namespace —
//! `mode = "bridge"` or `"cni/…"`, `to` mapping a port to another inside
//! the namespace, `dns`, `hostname` — needs a container driver, which drover
//! does not have, and is refused at its position.
//!
//! Nomad also still reads the older task-level form, `resources { network {
//! mbits = 10  port "http" {} } }`; its ports join the group's (every task
//! of the group sees every port), and `mbits`, which Nomad no longer
//! enforces either, is accepted and ignored.

use drover_hcl::BlockReader;
use drover_hcl::expression::{describe_value, value_as_integer};
use drover_types::network::port_label_problem;
use drover_types::{NetworkSpec, PortSpec};

use crate::policies::read_choice;

/// What needs a network namespace: refused with this hint.
const NAMESPACE_HINT: &str = "it needs a network namespace and a container driver, which drover does not have: \
     tasks listen on the node's port, given in ${NOMAD_PORT_<label>}";

/// A group's `network` block; `None` when it has problems (reported).
pub(crate) fn read_group_network(mut block: BlockReader<'_>) -> Option<NetworkSpec> {
    let mode_is_host = read_mode(&mut block);
    block.value("mbits");
    block.unsupported("dns", NAMESPACE_HINT);
    block.unsupported("hostname", NAMESPACE_HINT);
    block.unsupported("cni", NAMESPACE_HINT);
    let ports = read_ports(&mut block);
    block.finish();
    let ports = ports?;
    mode_is_host.then_some(NetworkSpec { ports })
}

/// The ports of a task's legacy `resources { network { … } }` block.
pub(crate) fn read_task_network(mut block: BlockReader<'_>) -> Option<Vec<PortSpec>> {
    block.value("mbits");
    block.unsupported("mode", "set the network mode in the group's network block");
    block.unsupported("dns", NAMESPACE_HINT);
    let ports = read_ports(&mut block);
    block.finish();
    ports
}

/// `mode`: `host` (the default) is the only one drover runs.
fn read_mode(block: &mut BlockReader<'_>) -> bool {
    if !block.has("mode") {
        return true;
    }
    let Some(text) = block.string("mode") else {
        return false;
    };
    if text.starts_with("cni/") || text == "bridge" || text == "none" {
        block.attribute_error(
            "mode",
            format!("network mode \"{text}\" is not supported by drover: {NAMESPACE_HINT}; use mode = \"host\" (the default)"),
        );
        return false;
    }
    read_choice(block, "mode", &[("host", ())]).is_some()
}

/// Every `port "<label>" { … }` block.
fn read_ports(block: &mut BlockReader<'_>) -> Option<Vec<PortSpec>> {
    let mut ports: Vec<PortSpec> = Vec::new();
    let mut all_valid = true;
    for mut port_block in block.labeled_blocks("port") {
        let label = port_block.label().to_owned();
        let location = port_block.label_location();
        let port = port_from(&mut port_block, &label);
        port_block.finish();
        match port {
            Some(port) if ports.iter().any(|earlier| earlier.label == port.label) => {
                block.report(
                    location,
                    format!(
                        "port \"{label}\" is declared twice in {}: port labels must be unique",
                        block.description()
                    ),
                );
                all_valid = false;
            }
            Some(port) => ports.push(port),
            None => all_valid = false,
        }
    }
    all_valid.then_some(ports)
}

fn port_from(block: &mut BlockReader<'_>, label: &str) -> Option<PortSpec> {
    if let Some(problem) = port_label_problem(label) {
        block.report(block.label_location(), problem);
        return None;
    }
    let static_port = read_port_number(block, "static")?;
    block.unsupported(
        "host_network",
        "drover announces ports on the node's address (attribute unique.network.ip-address)",
    );
    if let Some(value) = block.value("to") {
        let to = value_as_integer(&value);
        let same_as_host = matches!(to, Some(-1 | 0)) || (to.is_some() && to == static_port.map(i128::from));
        if !same_as_host {
            block.attribute_error(
                "to",
                format!(
                    "to = {} maps port \"{label}\" to another port inside a network namespace (bridge mode), which drover does not have: {NAMESPACE_HINT}; remove \"to\"",
                    drover_hcl::expression::value_as_text(&value).unwrap_or_else(|| describe_value(&value))
                ),
            );
            return None;
        }
    }
    Some(PortSpec { label: label.to_owned(), static_port })
}

/// `static`: a port number from 1 to 65535; `Some(None)` when absent.
fn read_port_number(block: &mut BlockReader<'_>, name: &str) -> Option<Option<u16>> {
    if !block.has(name) {
        return Some(None);
    }
    let number = block.integer(name, 1, 65_535)?;
    u16::try_from(number).ok().map(Some)
}
