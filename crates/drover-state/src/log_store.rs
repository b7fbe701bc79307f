//! The Raft log, vote and commit index in a redb database.
//!
//! One `raft.redb` file per server. Appends are one write transaction with
//! immediate durability (an fsync) per batch handed over by openraft, and run
//! on tokio's blocking pool so the runtime never waits on the disk.
//!
//! A full disk does not stop Raft for good: a write that finds no space is
//! retried with backoff until it succeeds ([`crate::disk`]). redb refuses
//! every operation on a database after one failed write ("previous I/O
//! error"), so the database is closed and opened again (redb repairs it
//! from its last commit) before the next attempt; reads made meanwhile wait
//! for it.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::codec;
use crate::disk::{DiskHealth, is_out_of_space};
use crate::raft_types::{Entry, LogId, TypeConfig, Vote};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// The redb-backed Raft log store. Cloning shares the database.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// The open database and its generation (bumped at every reopen); the
    /// database is `None` while it cannot be opened again after a failed
    /// write.
    database: RwLock<(u64, Option<Arc<Database>>)>,
    /// Why the last reopen failed, when it was not for lack of space: then
    /// callers get that error instead of waiting.
    reopen_error: std::sync::Mutex<Option<String>>,
    health: Arc<DiskHealth>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// A redb error as an `io::Error`, keeping the kind of an I/O failure (a
/// full disk must be recognised as such). "A previous I/O error" is
/// reported as out of space: it only follows a failed write, which the
/// caller answers by opening the database again.
fn storage_error(error: impl Into<redb::Error>) -> io::Error {
    match error.into() {
        redb::Error::Io(error) => error,
        redb::Error::PreviousIo => io::Error::new(
            io::ErrorKind::StorageFull,
            "an earlier write of the Raft log failed: the database is opened again",
        ),
        other => io::Error::other(other.to_string()),
    }
}

fn open_database(path: &Path) -> io::Result<Database> {
    let database = Database::create(path).map_err(|error| {
        let error = storage_error(error);
        io::Error::new(error.kind(), format!("cannot open the Raft log {}: {error}", path.display()))
    })?;
    let transaction = database.begin_write().map_err(storage_error)?;
    transaction.open_table(LOGS).map_err(storage_error)?;
    transaction.open_table(META).map_err(storage_error)?;
    transaction.commit().map_err(storage_error)?;
    Ok(database)
}

impl Shared {
    /// The current database and its generation. Never blocks: while a
    /// reopen holds the lock, it answers "being opened again" (callers on
    /// the async runtime must not wait on a lock held across disk work).
    fn database(&self) -> io::Result<(u64, Arc<Database>)> {
        let being_reopened =
            || io::Error::new(io::ErrorKind::StorageFull, "the Raft log is being opened again after a failed write");
        let slot = match self.database.try_read() {
            Ok(slot) => slot,
            Err(std::sync::TryLockError::WouldBlock) => return Err(being_reopened()),
            Err(std::sync::TryLockError::Poisoned(_)) => {
                return Err(io::Error::other("the Raft log's lock is poisoned"));
            }
        };
        match &slot.1 {
            Some(database) => Ok((slot.0, Arc::clone(database))),
            None => match self.reopen_error.lock().ok().and_then(|error| error.clone()) {
                Some(error) => Err(io::Error::other(error)),
                None => Err(being_reopened()),
            },
        }
    }

    /// Closes the database of `generation` (the one an attempt failed on)
    /// and opens the file again (blocking). Nothing is done when another
    /// caller already reopened it. While a reader still holds the old
    /// database it is kept, and the next attempt tries again: two handles
    /// on one file are never open at once.
    fn reopen(&self, generation: u64) {
        let Ok(mut slot) = self.database.write() else { return };
        if slot.0 != generation {
            return;
        }
        if let Some(old) = slot.1.take() {
            match Arc::try_unwrap(old) {
                Ok(database) => drop(database),
                Err(still_used) => {
                    slot.1 = Some(still_used);
                    return;
                }
            }
        }
        slot.0 = slot.0.wrapping_add(1);
        match open_database(&self.path) {
            Ok(database) => {
                slot.1 = Some(Arc::new(database));
                if let Ok(mut error) = self.reopen_error.lock() {
                    *error = None;
                }
            }
            Err(error) if is_out_of_space(&error) => {
                tracing::debug!(%error, "the Raft log cannot be opened yet: the disk is still full");
            }
            Err(error) => {
                tracing::warn!(%error, "the Raft log cannot be opened again");
                if let Ok(mut slot_error) = self.reopen_error.lock() {
                    *slot_error = Some(error.to_string());
                }
            }
        }
    }

    /// One attempt of `work` on the current database; on failure, the
    /// generation of the database it ran on (to reopen it).
    fn attempt<T>(&self, work: &impl Fn(&Database) -> io::Result<T>) -> Result<T, (io::Error, u64)> {
        let (generation, database) = self.database().map_err(|error| (error, self.generation()))?;
        work(&database).map_err(|error| (error, generation))
    }

    fn generation(&self) -> u64 {
        self.database.try_read().map_or(u64::MAX, |slot| slot.0)
    }

    /// One read, waiting (without blocking the runtime) while a full disk
    /// keeps the database unusable; reopens a database a failed I/O left
    /// unusable when no write is doing it.
    async fn read<T>(self: &Arc<Self>, work: impl Fn(&Database) -> io::Result<T>) -> io::Result<T> {
        let mut interval = Duration::from_millis(10);
        loop {
            match self.attempt(&work) {
                Ok(value) => return Ok(value),
                Err((error, generation)) if is_out_of_space(&error) => {
                    tokio::time::sleep(interval).await;
                    interval = (interval * 2).min(crate::disk::MAX_RETRY_INTERVAL);
                    let shared = Arc::clone(self);
                    tokio::task::spawn_blocking(move || shared.reopen(generation)).await.map_err(io::Error::other)?;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
}

impl LogStore {
    /// Opens (or creates) the log database at `path`; `health` records
    /// writes waiting for disk space.
    pub fn open(path: &Path, health: Arc<DiskHealth>) -> io::Result<Self> {
        let database = open_database(path)?;
        Ok(Self {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                database: RwLock::new((0, Some(Arc::new(database)))),
                reopen_error: std::sync::Mutex::new(None),
                health,
            }),
        })
    }

    async fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &'static str) -> io::Result<Option<T>> {
        self.shared
            .read(move |database| {
                let transaction = database.begin_read().map_err(storage_error)?;
                let table = transaction.open_table(META).map_err(storage_error)?;
                match table.get(key).map_err(storage_error)? {
                    Some(bytes) => Ok(Some(codec::decode(bytes.value())?)),
                    None => Ok(None),
                }
            })
            .await
    }

    /// One write transaction, retried until the disk has room.
    async fn write<F>(&self, work: F) -> io::Result<()>
    where
        F: Fn(&redb::WriteTransaction) -> io::Result<()> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let work = |database: &Database| {
                let transaction = database.begin_write().map_err(storage_error)?;
                work(&transaction)?;
                transaction.commit().map_err(storage_error)
            };
            shared.health.retry_while_full(|| shared.attempt(&work), |failed| shared.reopen(failed))
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &'static str, value: &T) -> io::Result<()> {
        let bytes = codec::encode(value)?;
        self.write(move |transaction| {
            let mut table = transaction.open_table(META).map_err(storage_error)?;
            table.insert(key, bytes.as_slice()).map_err(storage_error)?;
            Ok(())
        })
        .await
    }

    /// The number of entries currently in the log (bounded by snapshots and
    /// purging), for `drover server health`.
    pub async fn num_entries(&self) -> io::Result<u64> {
        self.shared
            .read(|database| {
                let transaction = database.begin_read().map_err(storage_error)?;
                let table = transaction.open_table(LOGS).map_err(storage_error)?;
                table.len().map_err(storage_error)
            })
            .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(index) => *index,
            Bound::Excluded(index) => index.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let range_to_check = range.clone();
        let range = (range_to_check.start_bound().cloned(), range_to_check.end_bound().cloned());
        self.shared
            .read(move |database| {
                let transaction = database.begin_read().map_err(storage_error)?;
                let table = transaction.open_table(LOGS).map_err(storage_error)?;
                let mut entries = Vec::new();
                for item in table.range(start..).map_err(storage_error)? {
                    let (index, bytes) = item.map_err(storage_error)?;
                    if !range.contains(&index.value()) {
                        break;
                    }
                    entries.push(codec::decode::<Entry>(bytes.value())?);
                }
                Ok(entries)
            })
            .await
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(KEY_VOTE).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED).await?;
        let last_log_id = self
            .shared
            .read(move |database| {
                let transaction = database.begin_read().map_err(storage_error)?;
                let table = transaction.open_table(LOGS).map_err(storage_error)?;
                match table.last().map_err(storage_error)? {
                    Some((_, bytes)) => Ok(Some(codec::decode::<Entry>(bytes.value())?.log_id)),
                    None => Ok(last_purged_log_id),
                }
            })
            .await?;
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(KEY_VOTE, vote).await
    }

    /// Durable, like every other write here. Written without an fsync
    /// (redb's `Durability::None`) for a while, it made CI lose an
    /// acknowledged write once when all three servers were killed at once
    /// and started again (`ha::all_servers_stopped_and_started_again_come_back_with_all_state`,
    /// 2026-12-07); the cause was not found, so the faster form is not used.
    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        self.write_meta(KEY_COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED).await?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|entry| codec::encode(&entry).map(|bytes| (entry.log_id.index, bytes)))
            .collect::<io::Result<_>>()?;
        let result = self
            .write(move |transaction| {
                let mut table = transaction.open_table(LOGS).map_err(storage_error)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice()).map_err(storage_error)?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.io_completed(Err(io::Error::new(error.kind(), error.to_string())));
                Err(error)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index + 1);
        self.write(move |transaction| {
            let mut table = transaction.open_table(LOGS).map_err(storage_error)?;
            table.retain_in(first_removed.., |_, _| false).map_err(storage_error)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let bytes = codec::encode(&log_id)?;
        let last_removed = log_id.index;
        self.write(move |transaction| {
            let mut meta = transaction.open_table(META).map_err(storage_error)?;
            meta.insert(KEY_LAST_PURGED, bytes.as_slice()).map_err(storage_error)?;
            let mut table = transaction.open_table(LOGS).map_err(storage_error)?;
            table.retain_in(..=last_removed, |_, _| false).map_err(storage_error)?;
            Ok(())
        })
        .await
    }
}
