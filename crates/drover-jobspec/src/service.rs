//! `service` and `check` blocks: the health checks the agent runs for a
//! task, and what the service catalogue announces of it (tags, canary
//! tags, meta, address; docs/services.md).

use drover_hcl::expression::{describe_value, value_as_integer};
use drover_hcl::suggest::did_you_mean;
use drover_hcl::{BlockReader, Value};
use drover_types::job::ServiceAddressMode;
use drover_types::{Check, CheckKind, CheckRestart, DurationSpec, Service};

/// Names of a service's task, for the default service name
/// `<job>-<group>-<task>` (`<job>-<group>` for a group-level service,
/// whose task is `None`).
pub(crate) struct ServiceOwner<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) group_name: &'a str,
    pub(crate) task_name: Option<&'a str>,
}

/// A port attribute as written: a number, or the label of a port of the
/// group's `network` block.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PortRef {
    Number(u16),
    Label(String),
}

/// A `service` block.
pub(crate) fn read_service(mut block: BlockReader<'_>, owner: &ServiceOwner<'_>) -> Option<Service> {
    let service = service_from(&mut block, owner);
    for (name, hint) in UNSUPPORTED_SERVICE_ATTRIBUTES {
        block.unsupported(name, hint);
    }
    block.finish();
    service
}

const UNSUPPORTED_SERVICE_ATTRIBUTES: [(&str, &str); 10] = [
    ("canary_meta", "use meta: drover announces the same meta for canaries"),
    ("tagged_addresses", "use address"),
    ("enable_tag_override", "drover's catalogue has no tag overrides"),
    ("weights", "drover's DNS answers every healthy instance alike"),
    ("connect", "drover has no service mesh"),
    ("cluster", "drover has one catalogue per cluster"),
    ("task", "declare the service inside its task"),
    ("on_update", ""),
    ("identity", ""),
    ("kind", ""),
];

/// `provider`: only drover's own catalogue (`"nomad"`, the name Nomad job
/// files use for it). `None` when refused (reported).
fn read_provider(block: &mut BlockReader<'_>) -> Option<()> {
    match block.string("provider").as_deref() {
        None | Some("nomad") => Some(()),
        Some("consul") => {
            block.attribute_error(
                "provider",
                "provider = \"consul\" is not supported: drover has its own service catalogue and DNS \
                 (docs/services.md); write provider = \"nomad\" or remove the attribute"
                    .to_owned(),
            );
            None
        }
        Some(other) => {
            block.attribute_error(
                "provider",
                format!(
                    "unknown service provider {other:?}: drover has its own service catalogue, write provider = \"nomad\" \
                     or remove the attribute{}",
                    did_you_mean(other, ["nomad"])
                ),
            );
            None
        }
    }
}

/// `address_mode`: `"auto"` or `"host"` (drover runs tasks in the host's
/// network). `None` when refused (reported).
fn read_address_mode(block: &mut BlockReader<'_>) -> Option<ServiceAddressMode> {
    match block.string("address_mode").as_deref() {
        None | Some("auto") => Some(ServiceAddressMode::Auto),
        Some("host") => Some(ServiceAddressMode::Host),
        Some(other @ ("driver" | "alloc")) => {
            block.attribute_error(
                "address_mode",
                format!(
                    "address_mode = {other:?} is not supported: drover runs tasks in the host's network, \
                     use \"host\" or \"auto\""
                ),
            );
            None
        }
        Some(other) => {
            block.attribute_error(
                "address_mode",
                format!(
                    "unknown address_mode {other:?}: use \"host\" or \"auto\"{}",
                    did_you_mean(other, ["host", "auto"])
                ),
            );
            None
        }
    }
}

fn service_from(block: &mut BlockReader<'_>, owner: &ServiceOwner<'_>) -> Option<Service> {
    let name = block.string("name").unwrap_or_else(|| match owner.task_name {
        Some(task_name) => format!("{}-{}-{task_name}", owner.job_id, owner.group_name),
        None => format!("{}-{}", owner.job_id, owner.group_name),
    });
    let tags = block.string_list("tags").unwrap_or_default();
    let canary_tags = block.string_list("canary_tags").unwrap_or_default();
    let meta = block.string_map("meta").unwrap_or_default();
    let provider = read_provider(block);
    let address_mode = read_address_mode(block);
    let address = block.string("address");
    if address.as_deref().is_some_and(|text| text.trim().is_empty()) {
        block.attribute_error(
            "address",
            format!("{} must not be empty: remove it to announce the node's address", block.phrase("address")),
        );
    }
    if address.is_some() && address_mode == Some(ServiceAddressMode::Host) {
        block.attribute_error(
            "address",
            "address is announced only with address_mode = \"auto\": remove address_mode, or remove address to announce the node's address".to_owned(),
        );
    }
    if name.trim().is_empty() {
        block.attribute_error("name", format!("{} must not be empty", block.phrase("name")));
    }
    let service_port = read_port(block, "port");
    let mut checks: Vec<Check> = Vec::new();
    let mut all_checks_valid = true;
    for mut check_block in block.blocks("check") {
        let location = check_block.location();
        let maybe_check = check_from(&mut check_block, &name, service_port.clone().flatten());
        for (unsupported_name, hint) in UNSUPPORTED_CHECK_ATTRIBUTES {
            check_block.unsupported(unsupported_name, hint);
        }
        check_block.finish();
        match maybe_check {
            Some(check) if checks.iter().any(|existing| existing.name == check.name) => {
                block.report(
                    location,
                    format!(
                        "two checks of service \"{name}\" are named \"{}\": give each check its own name",
                        check.name
                    ),
                );
                all_checks_valid = false;
            }
            Some(check) => checks.push(check),
            None => all_checks_valid = false,
        }
    }
    let (port, port_label) = match service_port? {
        Some(PortRef::Number(number)) => (Some(number), None),
        Some(PortRef::Label(label)) => (None, Some(label)),
        None => (None, None),
    };
    provider?;
    let address_mode = address_mode?;
    all_checks_valid.then_some(Service {
        name,
        port,
        checks,
        port_label,
        tags,
        canary_tags,
        meta,
        address,
        address_mode,
    })
}

const UNSUPPORTED_CHECK_ATTRIBUTES: [(&str, &str); 15] = [
    ("header", "drover's http checks send no custom headers yet"),
    ("protocol", "drover's http checks speak plain http"),
    ("tls_skip_verify", "drover's http checks speak plain http"),
    ("tls_server_name", "drover's http checks speak plain http"),
    ("grpc_service", "use a tcp or script check"),
    ("grpc_use_tls", "use a tcp or script check"),
    ("initial_status", ""),
    ("success_before_passing", ""),
    ("failures_before_critical", "use check_restart { limit = … }"),
    ("failures_before_warning", ""),
    ("task", "declare the check inside its task's service"),
    ("on_update", ""),
    ("expose", "drover has no service mesh"),
    ("address_mode", "set address instead"),
    ("notes", ""),
];

/// A port attribute: a number from 1 to 65535 (or a numeric string), or
/// the label of a port of the group's network block (checked against it by
/// the group). `Some(None)` when absent, `None` when invalid (reported).
pub(crate) fn read_port(block: &mut BlockReader<'_>, name: &str) -> Option<Option<PortRef>> {
    let Some(value) = block.value(name) else {
        return Some(None);
    };
    if let Value::String(label) = &value
        && value_as_integer(&value).is_none()
    {
        return Some(Some(PortRef::Label(label.clone())));
    }
    match value_as_integer(&value).and_then(|number| u16::try_from(number).ok()).filter(|port| *port != 0) {
        Some(port) => Some(Some(PortRef::Number(port))),
        None => {
            block.attribute_error(
                name,
                format!("{} must be a port number from 1 to 65535, not {}", block.phrase(name), describe_value(&value)),
            );
            None
        }
    }
}

/// Which kind of check a block describes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckType {
    Tcp,
    Http,
    Script,
}

fn check_from(block: &mut BlockReader<'_>, service_name: &str, service_port: Option<PortRef>) -> Option<Check> {
    let had_type = block.has("type");
    let check_type = match block.string("type").as_deref() {
        Some("tcp") => Some(CheckType::Tcp),
        Some("http") => Some(CheckType::Http),
        Some("script") => Some(CheckType::Script),
        Some("grpc") => {
            block.attribute_error(
                "type",
                "check type \"grpc\" is not supported by drover: use \"tcp\", \"http\" or \"script\"".to_owned(),
            );
            None
        }
        Some(other) => {
            block.attribute_error(
                "type",
                format!(
                    "unknown check type {other:?}: use \"tcp\", \"http\" or \"script\"{}",
                    did_you_mean(other, ["tcp", "http", "script"])
                ),
            );
            None
        }
        None => {
            if !had_type {
                block.error(format!("{} needs a type: type = \"tcp\", \"http\" or \"script\"", block.description()));
            }
            None
        }
    };
    let name = block.string("name").unwrap_or_else(|| format!("service: \"{service_name}\" check"));
    let check_port = read_port(block, "port");
    let address = block.string("address");
    let given_path = block.string("path");
    let method = block.string("method");
    let expected_status = if block.has("expected_status") {
        block.integer("expected_status", 100, 599).and_then(|integer| u16::try_from(integer).ok()).map(Some)
    } else {
        Some(None)
    };
    let body = block.string("body");
    let given_command = block.string("command");
    let args = block.string_list("args");
    let interval = read_required_duration(block, "interval", "10s");
    let timeout = read_required_duration(block, "timeout", "2s");
    let check_restart = block.block("check_restart").map(read_check_restart);

    let mut port_label = None;
    let kind = match check_type? {
        CheckType::Tcp => {
            reject_attributes(block, "tcp", &["path", "method", "expected_status", "body", "command", "args"]);
            let port = require_port(block, check_port?, service_port)?;
            port_label = label_of(&port);
            CheckKind::Tcp { address: address.unwrap_or_else(default_address), port: number_of(&port) }
        }
        CheckType::Http => {
            reject_attributes(block, "http", &["command", "args"]);
            let Some(path) = given_path else {
                block.error(format!(
                    "{} is an http check and needs a path, e.g. path = \"/health\"",
                    block.description()
                ));
                return None;
            };
            let port = require_port(block, check_port?, service_port)?;
            port_label = label_of(&port);
            CheckKind::Http {
                address: address.unwrap_or_else(default_address),
                port: number_of(&port),
                path,
                method: method.unwrap_or_else(|| "GET".to_owned()),
                expected_status: expected_status?,
                body,
            }
        }
        CheckType::Script => {
            reject_attributes(block, "script", &["port", "address", "path", "method", "expected_status", "body"]);
            let Some(command) = given_command.filter(|text| !text.is_empty()) else {
                block.error(format!(
                    "{} is a script check and needs a command, e.g. command = \"/usr/bin/test\"",
                    block.description()
                ));
                return None;
            };
            CheckKind::Script { command, args: args.unwrap_or_default() }
        }
    };
    Some(Check {
        name,
        kind,
        interval: interval?,
        timeout: timeout?,
        check_restart: check_restart.flatten(),
        port_label,
    })
}

/// A label's port is 0 until the agent knows the allocated one.
fn number_of(port: &PortRef) -> u16 {
    match port {
        PortRef::Number(number) => *number,
        PortRef::Label(_) => 0,
    }
}

fn label_of(port: &PortRef) -> Option<String> {
    match port {
        PortRef::Number(_) => None,
        PortRef::Label(label) => Some(label.clone()),
    }
}

fn default_address() -> String {
    "127.0.0.1".to_owned()
}

/// The check's port, else the service's; reported when neither is set.
fn require_port(
    block: &BlockReader<'_>,
    check_port: Option<PortRef>,
    service_port: Option<PortRef>,
) -> Option<PortRef> {
    let port = check_port.or(service_port);
    if port.is_none() {
        block
            .error(format!("{} needs a port: set port = <number> in the check or in its service", block.description()));
    }
    port
}

/// Reports attributes that the check type does not use.
fn reject_attributes(block: &BlockReader<'_>, check_type: &str, names: &[&str]) {
    for name in names {
        if block.has(name) {
            block.attribute_error(name, format!("\"{name}\" is not used by {check_type} checks: remove it"));
        }
    }
}

/// A duration that must be set and longer than zero.
fn read_required_duration(block: &mut BlockReader<'_>, name: &str, example: &str) -> Option<DurationSpec> {
    if !block.has(name) {
        block.error(format!("{} needs {name}, e.g. {name} = \"{example}\"", block.description()));
        return None;
    }
    let duration = block.duration(name)?;
    if duration.get().is_zero() {
        block.attribute_error(name, format!("{} must be longer than 0s", block.phrase(name)));
        return None;
    }
    Some(duration)
}

fn read_check_restart(mut block: BlockReader<'_>) -> Option<CheckRestart> {
    let limit = block.u32("limit");
    let grace = block.duration("grace");
    let ignore_warnings = block.bool("ignore_warnings");
    let valid =
        [block.has("limit") && limit.is_none(), block.has("grace") && grace.is_none()].iter().all(|failed| !failed);
    block.finish();
    valid.then(|| CheckRestart {
        limit: limit.unwrap_or(0),
        grace: grace.unwrap_or(DurationSpec::from_secs(1)),
        ignore_warnings: ignore_warnings.unwrap_or(false),
    })
}
