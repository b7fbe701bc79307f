//! The versioned snapshot format.
//!
//! A snapshot is the whole state as flat lists; indexes are rebuilt on
//! load. Each format version is its own struct and older versions stay
//! readable (a committed sample of every version is tested in
//! `tests/snapshot_formats.rs`).

use std::io;

use std::cell::RefCell;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

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

/// [`SnapshotV1`] borrowed from a state: the same fields, written in the
/// same order and encoding, but each table is serialised straight from the
/// state's maps instead of being copied first (a copy of a million
/// allocations is more than a gigabyte, at the moment a snapshot is taken).
#[derive(Serialize)]
#[serde(bound(
    serialize = "Seq<Jobs>: Serialize, Seq<Versions>: Serialize, Seq<Nodes>: Serialize, Seq<Allocs>: Serialize, Seq<Evals>: Serialize, Seq<Deployments>: Serialize, Seq<Launches>: Serialize, Seq<Variables>: Serialize, Seq<History>: Serialize, Seq<Workflows>: Serialize"
))]
pub(crate) struct SnapshotV1Ref<
    'a,
    Jobs,
    Versions,
    Nodes,
    Allocs,
    Evals,
    Deployments,
    Launches,
    Variables,
    History,
    Workflows,
> {
    pub last_index: u64,
    pub table_indexes: TableIndexes,
    pub capacity_index: u64,
    pub restore_index: u64,
    pub jobs: Seq<Jobs>,
    pub job_versions: Seq<Versions>,
    pub nodes: Seq<Nodes>,
    pub allocs: Seq<Allocs>,
    pub evals: Seq<Evals>,
    pub deployments: Seq<Deployments>,
    pub periodic_launches: Seq<Launches>,
    pub variables: Seq<Variables>,
    pub node_history: Seq<History>,
    pub react: Option<&'a crate::react::ReactState>,
    pub access: Option<&'a crate::access::AccessState>,
    pub workflows: Seq<Workflows>,
}

/// A sequence serialised from an iterator of `len` items, once.
pub(crate) struct Seq<I> {
    items: RefCell<Option<I>>,
    len: usize,
}

impl<I> Seq<I> {
    /// The sequence of `len` items `items` yields (the length comes first
    /// in the encoding, so it is given, not counted by a second walk).
    pub(crate) fn new(len: usize, items: I) -> Seq<I> {
        Seq { items: RefCell::new(Some(items)), len }
    }
}

impl<I> Serialize for Seq<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.items.borrow_mut().take();
        let mut sequence = serializer.serialize_seq(Some(self.len))?;
        let mut written = 0;
        for item in items.into_iter().flatten() {
            sequence.serialize_element(&item)?;
            written += 1;
        }
        if written != self.len {
            return Err(serde::ser::Error::custom(format!(
                "a snapshot table announced {} entries and yielded {written}",
                self.len
            )));
        }
        sequence.end()
    }
}

/// Serialises a state: magic, format version (u32 little-endian), payload.
pub fn encode_state(state: &State) -> io::Result<Vec<u8>> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.push(crate::codec::FORMAT_MSGPACK_V1);
    rmp_serde::encode::write_named(&mut bytes, &state.snapshot_ref()).map_err(io::Error::other)?;
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
