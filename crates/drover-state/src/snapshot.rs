//! The versioned snapshot format.
//!
//! A snapshot is the whole state as flat lists; indexes are rebuilt on
//! load. Each format version is its own struct and older versions stay
//! readable (a committed sample of every version is tested in
//! `tests/snapshot_formats.rs`).

use std::io;

use serde::{Deserialize, Serialize};

use drover_types::{Allocation, Deployment, Evaluation, Job, JobId, Node, NodeChange, NodeId, Timestamp, Variable};

use crate::state::{State, TableIndexes};

const MAGIC: &[u8; 8] = b"DRVSNAP\0";

/// Snapshot format version 1.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotV1 {
    /// Last applied Raft index.
    pub last_index: u64,
    /// Per-table change indexes.
    pub table_indexes: TableIndexes,
    /// Index of the last capacity change.
    #[serde(default)]
    pub capacity_index: u64,
    /// Index of the last snapshot restore.
    #[serde(default)]
    pub restore_index: u64,
    /// Current job versions.
    pub jobs: Vec<Job>,
    /// Every kept job version.
    pub job_versions: Vec<Job>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Allocations.
    pub allocs: Vec<Allocation>,
    /// Evaluations.
    pub evals: Vec<Evaluation>,
    /// Deployments.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// Last launch of each periodic job.
    #[serde(default)]
    pub periodic_launches: Vec<(JobId, Timestamp)>,
    /// Variables.
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// Each node's audit history.
    #[serde(default)]
    pub node_history: Vec<(NodeId, Vec<NodeChange>)>,
    /// The site, alerts and hammers.
    #[serde(default)]
    pub react: Option<crate::react::ReactState>,
    /// Tokens, policies, enrolled nodes and the audit log.
    #[serde(default)]
    pub access: Option<crate::access::AccessState>,
    /// Machine workflows.
    #[serde(default)]
    pub workflows: Vec<drover_types::workflow::Workflow>,
}

/// Serialises a state: magic, format version (u32 little-endian), payload.
pub fn encode_state(state: &State) -> io::Result<Vec<u8>> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend(crate::codec::encode(&state.to_snapshot())?);
    Ok(bytes)
}

/// Reads a state written by [`encode_state`] (any known format version).
pub fn decode_state(bytes: &[u8]) -> io::Result<State> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(invalid("not a drover snapshot (bad magic)".to_owned()));
    }
    let mut version_bytes = [0u8; 4];
    version_bytes.copy_from_slice(&bytes[8..12]);
    match u32::from_le_bytes(version_bytes) {
        1 => Ok(State::from_snapshot(crate::codec::decode::<SnapshotV1>(&bytes[12..])?)),
        other => Err(invalid(format!("snapshot format version {other} is newer than this drover; upgrade it"))),
    }
}
