//! The Raft state machine: applies committed commands to [`State`] and
//! publishes every new state to readers.
//!
//! The state lives in memory. It is made durable by snapshots (one file,
//! replaced atomically) plus the Raft log: on restart the latest snapshot is
//! loaded and openraft re-applies the committed entries after it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use tokio::sync::watch;

use crate::codec;
use crate::command::CommandResponse;
use crate::disk::DiskHealth;
use crate::raft_types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::snapshot::{decode_state, encode_state};
use crate::state::State;

const SNAPSHOT_MAGIC: &[u8; 8] = b"DRVRAFT\0";
const SNAPSHOT_FILE: &str = "snapshot.bin";

/// Where the latest snapshot lives on disk.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    directory: PathBuf,
    health: Arc<DiskHealth>,
}

impl SnapshotStore {
    /// A store in `directory` (created if missing).
    pub fn open(directory: &Path, health: Arc<DiskHealth>) -> io::Result<Self> {
        std::fs::create_dir_all(directory)?;
        Ok(Self { directory: directory.to_owned(), health })
    }

    fn path(&self) -> PathBuf {
        self.directory.join(SNAPSHOT_FILE)
    }

    /// Writes a snapshot atomically (temporary file, fsync, rename). On a
    /// full disk it removes the partial file and tries again until there is
    /// room (blocking: call it on a blocking thread).
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let bytes = encode_snapshot_file(meta, data)?;
        let temporary = self.directory.join(format!("{SNAPSHOT_FILE}.tmp"));
        let write = || {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()
        };
        self.health.retry_while_full(
            || write().map_err(|error| (error, ())),
            |()| {
                let _ = std::fs::remove_file(&temporary);
            },
        )?;
        std::fs::rename(&temporary, self.path())?;
        if let Ok(directory) = std::fs::File::open(&self.directory) {
            directory.sync_all().ok();
        }
        Ok(())
    }

    /// Reads the latest snapshot, if any.
    pub fn load(&self) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
        match std::fs::read(self.path()) {
            Ok(bytes) => decode_snapshot_file(&bytes).map(Some),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// A snapshot file: magic, meta length (u32 LE), meta, state bytes. The same
/// layout is what `drover operator snapshot save` writes.
pub fn encode_snapshot_file(meta: &SnapshotMeta, data: &[u8]) -> io::Result<Vec<u8>> {
    let meta_bytes = codec::encode(meta)?;
    let meta_length = u32::try_from(meta_bytes.len()).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(12 + meta_bytes.len() + data.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&meta_length.to_le_bytes());
    bytes.extend_from_slice(&meta_bytes);
    bytes.extend_from_slice(data);
    Ok(bytes)
}

/// Reads a file written by [`encode_snapshot_file`].
pub fn decode_snapshot_file(bytes: &[u8]) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    let invalid = |message: &str| io::Error::new(io::ErrorKind::InvalidData, message.to_owned());
    if bytes.len() < 12 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(invalid("not a drover snapshot file"));
    }
    let mut length_bytes = [0u8; 4];
    length_bytes.copy_from_slice(&bytes[8..12]);
    let meta_length = u32::from_le_bytes(length_bytes) as usize;
    let meta_end = 12usize.checked_add(meta_length).filter(|end| *end <= bytes.len());
    let Some(meta_end) = meta_end else {
        return Err(invalid("truncated drover snapshot file"));
    };
    let meta: SnapshotMeta = codec::decode(&bytes[12..meta_end])?;
    Ok((meta, bytes[meta_end..].to_vec()))
}

/// openraft's state machine over [`State`].
pub struct StateMachineStore {
    state: State,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    publisher: watch::Sender<Arc<State>>,
    snapshots: SnapshotStore,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("StateMachineStore").field("last_applied", &self.last_applied).finish_non_exhaustive()
    }
}

impl StateMachineStore {
    /// Opens the state machine, loading the latest snapshot from
    /// `snapshot_directory`. Returns the store and a receiver that sees every
    /// newly applied state.
    pub fn open(snapshot_directory: &Path, health: Arc<DiskHealth>) -> io::Result<(Self, watch::Receiver<Arc<State>>)> {
        let snapshots = SnapshotStore::open(snapshot_directory, health)?;
        let (state, last_applied, last_membership) = match snapshots.load()? {
            Some((meta, data)) => (decode_state(&data)?, meta.last_log_id, meta.last_membership),
            None => (State::new(), None, StoredMembership::default()),
        };
        let (publisher, receiver) = watch::channel(Arc::new(state.clone()));
        Ok((Self { state, last_applied, last_membership, publisher, snapshots }, receiver))
    }

    /// Another receiver of applied states.
    pub fn subscribe(&self) -> watch::Receiver<Arc<State>> {
        self.publisher.subscribe()
    }

    fn publish(&self) {
        self.publisher.send_replace(Arc::new(self.state.clone()));
    }
}

/// Builds a snapshot from a frozen copy of the state (cheap to take: the
/// maps are persistent), off the apply path.
#[derive(Debug)]
pub struct SnapshotBuilder {
    state: State,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshots: SnapshotStore,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let meta = SnapshotMeta { last_log_id: self.last_applied, last_membership: self.last_membership.clone() };
        let state = self.state.clone();
        let snapshots = self.snapshots.clone();
        let meta_for_disk = meta.clone();
        let data = tokio::task::spawn_blocking(move || {
            let data = encode_state(&state)?;
            snapshots.save(&meta_for_disk, &data)?;
            Ok::<_, io::Error>(data)
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(
            last_index = meta.last_log_id.map_or(0, |log_id| log_id.index),
            bytes = data.len(),
            "snapshot built"
        );
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: futures_util::Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Answers wait until the batch is published: whoever is told a
        // write is applied must find it in the state this server shows
        // (the scheduler hands a job to its next evaluation on that word).
        let mut answers = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => {
                    self.state.apply_without_command(index);
                    CommandResponse::Applied { index }
                }
                EntryPayload::Normal(command) => self.state.apply(index, &command),
                EntryPayload::Membership(membership) => {
                    self.state.apply_without_command(index);
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResponse::Applied { index }
                }
            };
            if let Some(responder) = responder {
                answers.push((responder, response));
            }
        }
        self.publish();
        for (responder, response) in answers {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Self::SnapshotData) -> io::Result<()> {
        let state = decode_state(&snapshot)?;
        let snapshots = self.snapshots.clone();
        let meta_for_disk = meta.clone();
        tokio::task::spawn_blocking(move || snapshots.save(&meta_for_disk, &snapshot))
            .await
            .map_err(io::Error::other)??;
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.publish();
        tracing::info!(last_index = meta.last_log_id.map_or(0, |log_id| log_id.index), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let snapshots = self.snapshots.clone();
        let loaded = tokio::task::spawn_blocking(move || snapshots.load()).await.map_err(io::Error::other)??;
        Ok(loaded.map(|(meta, data)| Snapshot { meta, snapshot: data }))
    }
}
