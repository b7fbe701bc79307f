//! The Raft log, vote and commit index in a redb database.
//!
//! One `raft.redb` file per server. Appends are one write transaction with
//! immediate durability (an fsync) per batch handed over by openraft, and run
//! on tokio's blocking pool so the runtime never waits on the disk.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::codec;
use crate::raft_types::{Entry, LogId, TypeConfig, Vote};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// The redb-backed Raft log store. Cloning shares the database.
#[derive(Clone)]
pub struct LogStore {
    database: Arc<Database>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LogStore").finish_non_exhaustive()
    }
}

fn storage_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl LogStore {
    /// Opens (or creates) the log database at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let database = Database::create(path)
            .map_err(|error| io::Error::other(format!("cannot open the Raft log {}: {error}", path.display())))?;
        let transaction = database.begin_write().map_err(storage_error)?;
        transaction.open_table(LOGS).map_err(storage_error)?;
        transaction.open_table(META).map_err(storage_error)?;
        transaction.commit().map_err(storage_error)?;
        Ok(Self { database: Arc::new(database) })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let transaction = self.database.begin_read().map_err(storage_error)?;
        let table = transaction.open_table(META).map_err(storage_error)?;
        match table.get(key).map_err(storage_error)? {
            Some(bytes) => Ok(Some(codec::decode(bytes.value())?)),
            None => Ok(None),
        }
    }

    async fn write<F>(&self, work: F) -> io::Result<()>
    where
        F: FnOnce(&redb::WriteTransaction) -> io::Result<()> + Send + 'static,
    {
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || {
            let transaction = database.begin_write().map_err(storage_error)?;
            work(&transaction)?;
            transaction.commit().map_err(storage_error)
        })
        .await
        .map_err(storage_error)?
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
    pub fn num_entries(&self) -> io::Result<u64> {
        let transaction = self.database.begin_read().map_err(storage_error)?;
        let table = transaction.open_table(LOGS).map_err(storage_error)?;
        table.len().map_err(storage_error)
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
        let transaction = self.database.begin_read().map_err(storage_error)?;
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
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        let transaction = self.database.begin_read().map_err(storage_error)?;
        let table = transaction.open_table(LOGS).map_err(storage_error)?;
        let last_log_id = match table.last().map_err(storage_error)? {
            Some((_, bytes)) => Some(codec::decode::<Entry>(bytes.value())?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(KEY_VOTE, vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        self.write_meta(KEY_COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
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
