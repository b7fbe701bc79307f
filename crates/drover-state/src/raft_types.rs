//! drover's openraft type configuration.

use crate::command::{Command, CommandResponse};

openraft::declare_raft_types!(
    /// Raft types: log entries carry [`Command`]s, applying one yields a
    /// [`CommandResponse`], servers are `u64` ids with their HTTP address.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A Raft log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id (term/leader and index).
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot with its data.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
