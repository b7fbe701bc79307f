//! Fingerprinting the machine: the facts an agent registers, with Nomad's
//! attribute names (`kernel.name`, `os.name`, `cpu.arch`, …), drover's
//! `time.zone` (the IANA name the server reads zone-less log timestamps
//! in) and `time.utc_offset` (`+09:00`, when the agent registered), and
//! the schedulable capacity.

use std::collections::BTreeMap;

use drover_types::Resources;

/// The facts of this machine and its capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Attributes, usable in constraints as `${attr.<name>}`.
    pub attributes: BTreeMap<String, String>,
    /// CPU (cores × MHz) and memory (MiB) offered to tasks.
    pub resources: Resources,
}

/// Reads the machine's facts from `/proc`, `/etc/os-release`, `uname` and
/// the network interfaces. Never fails: a fact that cannot be read is left
/// out.
pub fn fingerprint() -> Fingerprint {
    let mut attributes = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        if !value.is_empty() {
            attributes.insert(key.to_owned(), value);
        }
    };

    if let Ok(uname) = nix::sys::utsname::uname() {
        set("kernel.name", uname.sysname().to_string_lossy().to_lowercase());
        let release = uname.release().to_string_lossy().into_owned();
        set("kernel.version", release.split(['-', '+']).next().unwrap_or(&release).to_owned());
        set("kernel.release", release);
        set("cpu.arch", normalise_arch(&uname.machine().to_string_lossy()));
        set("unique.hostname", uname.nodename().to_string_lossy().into_owned());
    }

    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let os_field = |name: &str| {
        os_release
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(|value| value.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    set("os.name", os_field("ID"));
    set("os.version", os_field("VERSION_ID"));
    set("os.pretty_name", os_field("PRETTY_NAME"));

    let num_cores = std::thread::available_parallelism().map_or(1, |cores| cores.get() as u64);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mhz = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("cpu MHz").and_then(|rest| rest.split(':').nth(1)))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(2000, |mhz| mhz.round() as u64)
        .max(1);
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split(':').nth(1)))
        .map(|value| value.trim().to_owned())
        .unwrap_or_default();
    set("cpu.numcores", num_cores.to_string());
    set("cpu.frequency", mhz.to_string());
    set("cpu.totalcompute", (num_cores * mhz).to_string());
    set("cpu.modelname", model);

    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    set("memory.totalbytes", (memory_kib * 1024).to_string());

    if let Ok(statvfs) = nix::sys::statvfs::statvfs("/") {
        let total = statvfs.blocks() * statvfs.fragment_size();
        let free = statvfs.blocks_available() * statvfs.fragment_size();
        set("unique.storage.bytestotal", total.to_string());
        set("unique.storage.bytesfree", free.to_string());
    }

    let addresses = ipv4_addresses();
    if let Some(first) = addresses.first() {
        set("unique.network.ip-address", first.clone());
    }
    if !addresses.is_empty() {
        set("network.addresses", addresses.join(","));
    }

    // Timestamps written without a zone are read in this one (docs/logs.md).
    let (zone, _found_in) = drover_collect::zone::local_zone();
    set("time.zone", zone.name().to_owned());
    let now_seconds = drover_types::Timestamp::now().as_millis().div_euclid(1000);
    set("time.utc_offset", drover_collect::zone::utc_offset_text(zone, now_seconds));

    let resources = Resources { cpu_mhz: num_cores * mhz, memory_mb: memory_kib / 1024 };
    Fingerprint { attributes, resources }
}

fn normalise_arch(machine: &str) -> String {
    match machine {
        "x86_64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        other => other.to_owned(),
    }
}

/// Non-loopback IPv4 addresses, loopback last if nothing else.
fn ipv4_addresses() -> Vec<String> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    let mut addresses: Vec<String> = interfaces
        .filter_map(|interface| {
            let address = interface.address?;
            let ipv4 = address.as_sockaddr_in()?.ip();
            (!ipv4.is_loopback()).then(|| ipv4.to_string())
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_the_basic_facts() {
        let fingerprint = fingerprint();
        for key in ["kernel.name", "cpu.arch", "cpu.numcores", "memory.totalbytes", "unique.hostname", "time.zone"] {
            assert!(fingerprint.attributes.contains_key(key), "missing fact {key}");
        }
        assert_eq!(fingerprint.attributes["kernel.name"], "linux");
        assert!(fingerprint.resources.cpu_mhz > 0);
        assert!(fingerprint.resources.memory_mb > 0);
    }
}
