//! Recovering the state of a cluster that lost its quorum for good, from
//! one surviving server's data directory (`drover operator raft recover`,
//! as etcd's `--force-new-cluster` and Nomad's `peers.json`).
//!
//! Offline, with the server stopped: the latest snapshot plus every entry
//! of the Raft log after it are applied, in order, to make the state this
//! server knew. Entries past the recorded commit index are applied too:
//! they may have been acknowledged by a majority that is gone, and losing
//! an acknowledged write is worse than keeping one that was not (they are
//! counted in [`RecoveredState::num_beyond_commit`]; the recorded index is
//! written without an fsync, so it may lag by the last commits before a
//! crash, which are then counted there too). The result is written
//! as a snapshot file that a new one-server cluster restores.

use std::io;
use std::path::Path;
use std::sync::Arc;

use openraft::EntryPayload;
use openraft::storage::{RaftLogReader, RaftLogStorage};

use crate::disk::DiskHealth;
use crate::log_store::LogStore;
use crate::snapshot::decode_state;
use crate::state::State;
use crate::state_machine::SnapshotStore;

/// What a surviving server's data directory held.
#[derive(Debug)]
pub struct RecoveredState {
    /// The state after the snapshot and every log entry.
    pub state: State,
    /// The index of the last entry applied (0: none).
    pub last_index: u64,
    /// Log entries applied after the snapshot.
    pub num_replayed: u64,
    /// Of those, entries past the commit index this server had recorded.
    pub num_beyond_commit: u64,
}

/// Reads the state of the Raft data in `directory` (a server's
/// `DATA_DIR/raft`). Fails when the server still runs (its log is locked).
pub async fn read_state(directory: &Path) -> io::Result<RecoveredState> {
    let health = Arc::new(DiskHealth::default());
    let snapshots = SnapshotStore::open(&directory.join("snapshots"), Arc::clone(&health))?;
    let (mut state, snapshot_index) = match snapshots.load()? {
        Some((meta, data)) => (decode_state(&data)?, meta.last_log_id.map_or(0, |log_id| log_id.index)),
        None => (State::new(), 0),
    };
    let log_path = directory.join("raft.redb");
    if !log_path.exists() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} does not exist", log_path.display())));
    }
    let mut log = LogStore::open(&log_path, health)?;
    let committed = log.read_committed().await?.map_or(0, |log_id| log_id.index);
    let entries = log.try_get_log_entries(snapshot_index.saturating_add(1)..).await?;
    let mut recovered =
        RecoveredState { state: State::new(), last_index: snapshot_index, num_replayed: 0, num_beyond_commit: 0 };
    for entry in entries {
        let index = entry.log_id.index;
        match &entry.payload {
            EntryPayload::Normal(command) => {
                state.apply(index, command);
            }
            EntryPayload::Blank | EntryPayload::Membership(_) => state.apply_without_command(index),
        }
        recovered.last_index = index;
        recovered.num_replayed += 1;
        if index > committed {
            recovered.num_beyond_commit += 1;
        }
    }
    recovered.state = state;
    Ok(recovered)
}

/// Whether the Raft log in `directory` holds anything a member needs: a
/// vote or log entries (purged ones included). A snapshot alone does not
/// count: without the vote, a voter could vote twice in one term.
pub async fn has_raft_history(directory: &Path) -> io::Result<bool> {
    let log_path = directory.join("raft.redb");
    if !log_path.exists() {
        return Ok(false);
    }
    let mut log = LogStore::open(&log_path, Arc::new(DiskHealth::default()))?;
    let has_vote = log.read_vote().await?.is_some();
    let log_state = log.get_log_state().await?;
    Ok(has_vote || log_state.last_log_id.is_some())
}
