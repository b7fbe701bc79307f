//! Ordering nodes by how busy they are, for `drover node top`.
//!
//! Filtering (`--filter EXPR`) is `drover-filter`'s job and happens before;
//! this module only ranks what is left.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use drover_types::usage::NodeSample;

/// What `drover node top --sort` ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// [`NodeSample::cpu_percent`].
    #[default]
    Cpu,
    /// [`NodeSample::memory_used_percent`].
    Mem,
    /// The used percentage of the node's fullest disk
    /// ([`NodeSample::fullest_disk`]): the disk that will fill first.
    Disk,
}

impl SortBy {
    /// The figure a node is ranked by, in percent (`0.0` when unknown).
    pub fn value(self, sample: &NodeSample) -> f32 {
        match self {
            SortBy::Cpu => sample.cpu_percent,
            SortBy::Mem => sample.memory_used_percent(),
            SortBy::Disk => sample.fullest_disk().map_or(0.0, |disk| disk.used_percent()),
        }
    }
}

impl FromStr for SortBy {
    type Err = Error;

    /// `cpu`, `mem` (or `memory`), `disk`, in any case.
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "cpu" => Ok(SortBy::Cpu),
            "mem" | "memory" => Ok(SortBy::Mem),
            "disk" => Ok(SortBy::Disk),
            _ => Err(Error::UnknownSortKey { given: text.to_owned() }),
        }
    }
}

impl fmt::Display for SortBy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            SortBy::Cpu => "cpu",
            SortBy::Mem => "mem",
            SortBy::Disk => "disk",
        })
    }
}

/// `nodes` from the busiest to the idlest by `sort_by`. Nodes that are as
/// busy as each other keep their input order, so pass them sorted by name for
/// a stable display; take the first N for a "top N".
pub fn busiest<'a, T>(
    nodes: impl IntoIterator<Item = (T, &'a NodeSample)>,
    sort_by: SortBy,
) -> Vec<(T, &'a NodeSample)> {
    let mut ranked = nodes.into_iter().collect::<Vec<_>>();
    ranked.sort_by(|(_, left), (_, right)| sort_by.value(right).total_cmp(&sort_by.value(left)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::usage::DiskSample;

    fn node(cpu_percent: f32, memory_used: u64, disk_used: &[u64]) -> NodeSample {
        let disks = disk_used
            .iter()
            .enumerate()
            .map(|(index, used)| DiskSample {
                mount: format!("/d{index}"),
                fs_type: "ext4".into(),
                total: 100,
                used: *used,
                avail: 100 - used,
                ..DiskSample::default()
            })
            .collect();
        NodeSample { cpu_percent, memory_used, memory_total: 100, disks, ..NodeSample::default() }
    }

    #[test]
    fn ranks_by_each_key() {
        let nodes = [("a", node(10.0, 90, &[10])), ("b", node(80.0, 10, &[5, 95])), ("c", node(80.0, 50, &[]))];
        let names = |sort_by| busiest(nodes.iter().map(|(name, sample)| (*name, sample)), sort_by);
        let order = |sort_by| names(sort_by).into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        assert_eq!(order(SortBy::Cpu), ["b", "c", "a"], "ties keep input order");
        assert_eq!(order(SortBy::Mem), ["a", "c", "b"]);
        assert_eq!(order(SortBy::Disk), ["b", "a", "c"], "the fullest disk counts; no disk ranks last");
    }

    #[test]
    fn parses_sort_keys() {
        assert_eq!("cpu".parse(), Ok(SortBy::Cpu));
        assert_eq!("MEM".parse(), Ok(SortBy::Mem));
        assert_eq!("memory".parse(), Ok(SortBy::Mem));
        assert_eq!("disk".parse(), Ok(SortBy::Disk));
        let error = "io".parse::<SortBy>().unwrap_err();
        assert_eq!(error.to_string(), r#"unknown sort key "io"; use cpu, mem or disk"#);
        assert_eq!(SortBy::Disk.to_string(), "disk");
    }
}
