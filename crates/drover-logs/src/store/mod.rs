//! The log store: one tantivy index per time partition.
//!
//! ```text
//! DIR/
//!   store.json                      {"version":3,"partition_seconds":3600}
//!   20240102T030000Z/               one tantivy index: records whose timestamp
//!   20240102T040000Z/               falls in [start, start + partition_seconds)
//! ```
//!
//! **Partitions are hourly by default** (by the record's timestamp, UTC):
//! retention frees space an hour at a time, a search over the last hours
//! opens only a few indexes, and a day of logs is 24 indexes, few enough to
//! search all at once. The span is chosen when the store is created and
//! kept in `store.json`; opening an existing store uses the span it was
//! created with.
//!
//! **No duplicates, no loss.** `(origin, seq)` identifies a record. Each
//! partition keeps, per origin, the highest `seq` it holds (its high-water
//! mark), in the payload of its tantivy commit — so the mark and the
//! documents are made durable by one atomic commit. A record is a duplicate
//! when its seq is not above the mark of the partition its timestamp falls
//! in. This relies on the contract of the agents: the seqs of one origin
//! are sent in increasing order (and may be sent again). Because a record
//! always falls in the same partition, the check is exact even when a
//! crash commits some partitions of a batch and not others: what was not
//! committed is accepted when sent again, what was committed is dropped.
//! [`LogStore::ingest`] returns only after every partition it touched is
//! committed and its reader reloaded: an acknowledged record is searchable
//! at once and after any restart.
//!
//! A partition deleted by retention forgets its marks; a record older than
//! the retention sent again would be stored again, until the next
//! retention pass deletes it.
//!
//! **Writers.** A partition keeps its writer open while it is written to;
//! only the [`StoreConfig::max_open_writers`] most recently used stay open
//! (each holds [`StoreConfig::writer_memory_bytes`] of indexing memory and
//! a thread), so late lines for old hours cost an open, not memory forever.
//!
//! **What an ingest costs.** Every call commits each partition it touched
//! (a new segment, its files and `meta.json` synced): a fixed cost of a few
//! milliseconds per partition and call, and small segments are merged
//! again later (16 at a time), each merge rewriting their records. So a
//! server should gather lines for about a second, or up to 10,000–50,000
//! lines, and ingest them in one call rather than one call per agent
//! message. Within a call the records are grouped by origin before they are
//! indexed (each origin's in their order): one origin's lines side by side
//! compress to about two thirds of the same lines interleaved, in the doc
//! store and in the posting lists.
//!
//! **Compaction.** Once an hour is over and quiet, `start_compaction` merges
//! its partition into one segment in the writer's merge threads; the caller
//! waits for the [`Compaction`] without holding the store (ingest and
//! searches go on), then calls `finish_compaction`.
//!
//! **Damage.** One damaged hour never stops the store. A partition that
//! cannot be opened (garbage in its `meta.json`, a truncated or missing
//! segment file, a damaged footer) is moved aside, with a note saying why:
//!
//! ```text
//! DIR/quarantine/20240102T040000Z-1704200000/   the folder as it was, and
//!   quarantine.json                             {"version":1,"partition":…,"reason":…,"at":…}
//! ```
//!
//! and the store opens with the others; [`LogStore::quarantined`] lists
//! what is there (this run's and earlier ones'). tantivy reads some damaged
//! files by panicking (a slice out of range) rather than by returning an
//! error, so every read of a partition runs under `catch_unwind` (the
//! process's panic hook still prints the panic). A search, count or
//! histogram whose part in one partition fails answers from the others
//! and names the partition in its `damaged` list; a partition whose files
//! are damaged (rather than, say, a request its old schema cannot answer)
//! is then skipped by later searches and moved aside by
//! [`LogStore::quarantine_damaged`], which `ingest` calls first, so that new
//! records of that hour go to a new partition. Nothing is deleted: an
//! operator inspects, repairs (and moves back) or deletes a quarantined
//! folder, and it is listed until then.
//!
//! **Sharing.** `ingest`, `apply_retention*`, `close_writers`,
//! `start_compaction`/`finish_compaction`, `optimize_partition` and
//! `quarantine_damaged` take `&mut self`; the searches (`search`,
//! `count_by`, `histogram`) take `&self` and may run on several threads at
//! once. Behind an `RwLock`, an ingest holds the write lock for its whole
//! call, commits included, and searches wait for it. All calls block
//! (disk I/O, CPU): from async code, run them with `spawn_blocking`.
//!
//! **Where things are.** This module holds the store as a whole: its
//! folder, `store.json`, its lifecycle (open, ingest, writers), its
//! configuration, and the re-exports of the submodules' public types (every
//! one is named `drover_logs::store::…`). One concern per submodule:
//!
//! - `partition.rs`: one time partition (open or create its index, its
//!   writer and commit payload, the reads of one partition);
//! - `search.rs`: searches, counts and histograms across partitions, their
//!   requests and answers;
//! - `collector.rs`: the tantivy collectors those use;
//! - `retention.rs`: which partitions are deleted, by age and by disk use;
//! - `compaction.rs`: merging settled partitions;
//! - `damage.rs`: damaged partitions, guarded reads and the quarantine.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tantivy::indexer::UserOperation;

use crate::error::{Error, Result};
use crate::record::{LogRecord, NANOS_PER_SECOND};
use crate::schema::LogSchema;

mod collector;
mod compaction;
mod damage;
mod partition;
mod retention;
mod search;

pub use compaction::Compaction;
pub use damage::{DamagedPartition, QUARANTINE_FOLDER, QuarantinedPartition};
pub use retention::{Retention, RetentionOutcome};
pub use search::{Copies, Cursor, FieldCounts, Filter, Histogram, SearchPage, SearchRequest};

use damage::{holds_files, read_quarantine};
use partition::{Partition, PartitionPayload, parse_partition_name};

/// The version of `store.json` and of the partition commit payload.
///
/// - 1: records stored as JSON, every timestamp also indexed as a term,
///   field norms on every text field.
/// - 2: records stored as compact blobs ([`crate::codec`]), timestamps in
///   the fast field only, no field norms (a third of the disk of version 1).
///
/// - 3: records written as blobs with tag `0x03` ([`crate::codec`]: what
///   repeats line after line first, seq and receive time last); blobs of
///   tag `0x02` and JSON are still read, in any partition.
///
/// This build reads all three and writes version 3. Opening an older store
/// marks it version 3 (older builds then refuse it rather than misread
/// it); its old partitions keep their schema and are read as they are.
pub const STORE_FORMAT_VERSION: u32 = 3;

/// The oldest format version this build reads.
pub const OLDEST_READ_FORMAT_VERSION: u32 = 1;

fn is_readable_version(version: u32) -> bool {
    (OLDEST_READ_FORMAT_VERSION..=STORE_FORMAT_VERSION).contains(&version)
}

const STORE_FILE: &str = "store.json";

/// Documents handed to a partition's indexing thread at once: one channel
/// message per document made the ingest thread spin on the full channel
/// (7 % of the ingest CPU).
const DOCUMENTS_PER_SEND: usize = 1024;

/// How a store is laid out and how much it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// What to keep.
    pub retention: Retention,
    /// The time span of a partition for a new store, in seconds (default
    /// one hour). An existing store keeps the span it was created with.
    pub partition_seconds: u32,
    /// Indexing memory per open writer (default 64 MB; tantivy needs at
    /// least 15 MB).
    pub writer_memory_bytes: usize,
    /// How many partitions keep their writer open (default 2: the current
    /// hour and the previous one).
    pub max_open_writers: usize,
    /// Indexing threads per open writer (default 1). A second thread
    /// indexes faster on an idle machine but makes two segments per commit,
    /// so more merging: the cost per line goes up, not down.
    pub indexing_threads: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention: Retention::default(),
            partition_seconds: 3600,
            writer_memory_bytes: 64 * 1024 * 1024,
            max_open_writers: 2,
            indexing_threads: 1,
        }
    }
}

/// What [`LogStore::ingest`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records stored now.
    pub num_accepted: usize,
    /// Records already stored (seen again after a resend), dropped.
    pub num_duplicates: usize,
}

/// `store.json`.
#[derive(Debug, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    partition_seconds: u32,
}

/// A time-partitioned log store in one folder. Not shared between
/// processes (tantivy locks each partition's writer).
#[derive(Debug)]
pub struct LogStore {
    directory: PathBuf,
    config: StoreConfig,
    schema: LogSchema,
    /// By start time.
    partitions: BTreeMap<i64, Partition>,
    span_nanos: i64,
    use_counter: u64,
    /// Partitions moved aside, oldest first (earlier runs' included).
    quarantined: Vec<QuarantinedPartition>,
    /// By start: partitions whose files a search found damaged, skipped by
    /// searches until `quarantine_damaged` moves them aside. Searches take
    /// `&self`, hence the lock.
    damaged: Mutex<BTreeMap<i64, DamagedPartition>>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

fn index_error(path: &Path) -> impl FnOnce(tantivy::TantivyError) -> Error + '_ {
    move |source| Error::Index { path: path.to_owned(), source }
}

impl LogStore {
    /// Opens the store in `directory`, creating it if needed, with hourly
    /// partitions and the default writer settings.
    pub fn open(directory: impl AsRef<Path>, retention: Retention) -> Result<Self> {
        LogStore::open_with(directory, StoreConfig { retention, ..StoreConfig::default() })
    }

    /// Opens the store in `directory`, creating it if needed. A partition
    /// that cannot be opened is moved aside (see **Damage** above): only a
    /// store that cannot be read at all (its folder, its `store.json`)
    /// fails to open.
    pub fn open_with(directory: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let directory = directory.as_ref().to_owned();
        fs::create_dir_all(&directory).map_err(io_error(&directory))?;
        let store_file_path = directory.join(STORE_FILE);
        let partition_seconds = match fs::read(&store_file_path) {
            Ok(bytes) => {
                let store_file: StoreFile = serde_json::from_slice(&bytes).map_err(|error| Error::Corrupt {
                    path: store_file_path.clone(),
                    message: format!("cannot read the store description ({error}); restore it or move the folder away"),
                })?;
                if !is_readable_version(store_file.version) || store_file.partition_seconds == 0 {
                    return Err(Error::Corrupt {
                        path: store_file_path,
                        message: format!(
                            "store format version {} with {}-second partitions is not supported (this build reads \
                             versions {OLDEST_READ_FORMAT_VERSION} to {STORE_FORMAT_VERSION}); use a matching drover \
                             version",
                            store_file.version, store_file.partition_seconds
                        ),
                    });
                }
                if store_file.version < STORE_FORMAT_VERSION {
                    tracing::info!(
                        path = %store_file_path.display(),
                        from = store_file.version,
                        to = STORE_FORMAT_VERSION,
                        "upgrading the log store format"
                    );
                    let upgraded = StoreFile { version: STORE_FORMAT_VERSION, ..store_file };
                    write_atomically(&store_file_path, &serde_json::to_vec(&upgraded).unwrap_or_default())?;
                }
                store_file.partition_seconds
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if config.partition_seconds == 0 {
                    return Err(Error::InvalidRequest("partition_seconds must be at least 1".to_owned()));
                }
                let store_file =
                    StoreFile { version: STORE_FORMAT_VERSION, partition_seconds: config.partition_seconds };
                write_atomically(&store_file_path, &serde_json::to_vec(&store_file).unwrap_or_default())?;
                config.partition_seconds
            }
            Err(error) => return Err(io_error(&store_file_path)(error)),
        };
        let mut store = LogStore {
            directory: directory.clone(),
            config,
            schema: LogSchema::new(),
            partitions: BTreeMap::new(),
            span_nanos: i64::from(partition_seconds) * NANOS_PER_SECOND,
            use_counter: 0,
            quarantined: read_quarantine(&directory.join(QUARANTINE_FOLDER)),
            damaged: Mutex::default(),
        };
        // From here on nothing fails the whole store: a partition that
        // cannot be opened is moved aside and the others are served.
        for entry in fs::read_dir(&directory).map_err(io_error(&directory))? {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::warn!(path = %directory.display(), %error, "cannot read an entry of the log store folder");
                    continue;
                }
            };
            let Some(start) = entry.file_name().to_str().and_then(parse_partition_name) else {
                continue;
            };
            let path = entry.path();
            if !path.join("meta.json").exists() && !holds_files(&path) {
                // Created but never committed (a crash in between): holds nothing.
                tracing::warn!(path = %path.display(), "removing an empty partition folder");
                if let Err(error) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), %error, "cannot remove an empty partition folder");
                }
                continue;
            }
            match store.open_existing_partition(start) {
                Ok(partition) => {
                    store.partitions.insert(start, partition);
                }
                Err(reason) => {
                    store.move_aside(start, reason);
                }
            }
        }
        Ok(store)
    }

    /// The folder of the store.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The span of one partition, in nanoseconds.
    pub fn partition_nanos(&self) -> i64 {
        self.span_nanos
    }

    /// The start times of the partitions, oldest first.
    pub fn partition_starts(&self) -> Vec<i64> {
        self.partitions.keys().copied().collect()
    }

    /// The searchable segments of the partition at `start` (0 when none).
    pub fn num_segments(&self, start: i64) -> usize {
        self.partitions.get(&start).map_or(0, |partition| partition.reader.searcher().segment_readers().len())
    }

    fn partition_start(&self, timestamp: i64) -> i64 {
        timestamp - timestamp.rem_euclid(self.span_nanos)
    }

    /// Stores the records of `batch` that are not stored yet, and returns
    /// once they are durable and searchable.
    ///
    /// A record is dropped as a duplicate when its partition already holds
    /// a seq at least as high for its origin; so the seqs of one origin must
    /// be sent in increasing order (they may be sent again).
    ///
    /// On an error, the partitions committed before it keep their records;
    /// send the whole batch again: what was stored is dropped then.
    pub fn ingest(&mut self, batch: Vec<LogRecord>) -> Result<IngestOutcome> {
        self.ingest_copies(batch, Vec::new())
    }

    /// Stores `originals` as [`LogStore::ingest`] does, and with them
    /// `replicas`: copies of lines other servers received from their
    /// agents, each group with the id of the server it is kept for
    /// (marked, so that [`Copies`] can tell them apart). One commit per
    /// touched partition for all of them. The `(origin, seq)`
    /// de-duplication does not tell copies apart: a line already held, as
    /// an original or a replica, is dropped.
    pub fn ingest_copies(
        &mut self,
        originals: Vec<LogRecord>,
        replicas: Vec<(u64, Vec<LogRecord>)>,
    ) -> Result<IngestOutcome> {
        // New records of a damaged hour go to a new partition, not into
        // the damaged one.
        if !self.damaged.get_mut().unwrap_or_else(PoisonError::into_inner).is_empty() {
            self.quarantine_damaged();
        }
        let mut outcome = IngestOutcome::default();
        let mut batch: Vec<(LogRecord, Option<u64>)> =
            Vec::with_capacity(originals.len() + replicas.iter().map(|(_, records)| records.len()).sum::<usize>());
        batch.extend(originals.into_iter().map(|record| (record, None)));
        let has_replicas = !replicas.is_empty();
        for (primary, records) in replicas {
            batch.extend(records.into_iter().map(|record| (record, Some(primary))));
        }
        // One origin's lines side by side (in their order) compress far
        // better than lines of many origins interleaved: the doc store
        // blocks and the posting lists then hold runs of similar lines.
        // Originals and replicas of one origin are put in seq order, so
        // that the high-water mark drops only what is held.
        if has_replicas {
            batch.sort_by(|left, right| left.0.origin.cmp(&right.0.origin).then(left.0.seq.cmp(&right.0.seq)));
        } else if !batch.windows(2).all(|pair| pair[0].0.origin <= pair[1].0.origin) {
            batch = grouped_by_origin(batch);
        }
        // Per touched partition: the marks and next row as they will be after the commit.
        let mut pending: BTreeMap<i64, PartitionPayload> = BTreeMap::new();
        if let Err(error) = self.add_documents(batch, &mut pending, &mut outcome) {
            // Nothing of this call may reach a later commit: the batch is sent again.
            for start in pending.keys() {
                if let Some(partition) = self.partitions.get_mut(start)
                    && let Some(writer) = partition.writer.as_mut()
                    && writer.rollback().is_err()
                {
                    // A writer that cannot roll back is dropped; the next call opens a new one.
                    partition.writer = None;
                }
            }
            return Err(error);
        }
        let mut first_error = None;
        for (start, payload) in pending {
            let Some(partition) = self.partitions.get_mut(&start) else {
                continue;
            };
            if first_error.is_some() {
                if let Some(writer) = partition.writer.as_mut() {
                    let _ = writer.rollback();
                }
                continue;
            }
            if let Err(error) = partition.commit(payload) {
                first_error = Some(error);
            }
        }
        self.close_idle_writers();
        match first_error {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }

    /// Hands the records of `batch` that are new to their partitions'
    /// writers, recording in `pending` what each partition's commit will
    /// make durable.
    fn add_documents(
        &mut self,
        batch: Vec<(LogRecord, Option<u64>)>,
        pending: &mut BTreeMap<i64, PartitionPayload>,
        outcome: &mut IngestOutcome,
    ) -> Result<()> {
        let mut blob = Vec::with_capacity(512);
        // Documents go to the indexing thread in groups, not one by one.
        let mut queued: HashMap<i64, Vec<UserOperation>> = HashMap::new();
        self.use_counter += 1;
        let now = Instant::now();
        let wall_now = drover_types::log::unix_nanos(SystemTime::now());
        for (record, replica_of) in batch {
            let start = self.partition_start(record.timestamp);
            if !self.partitions.contains_key(&start) {
                let partition = Partition::open(&self.directory, &self.schema, start, true)?;
                self.partitions.insert(start, partition);
            }
            let Some(partition) = self.partitions.get_mut(&start) else {
                continue;
            };
            partition.last_used = self.use_counter;
            let payload = pending.entry(start).or_insert_with(|| PartitionPayload {
                version: STORE_FORMAT_VERSION,
                next_row: partition.committed.next_row,
                high_water: HashMap::new(),
            });
            let mark =
                payload.high_water.get(&record.origin).or_else(|| partition.committed.high_water.get(&record.origin));
            if mark.is_some_and(|mark| record.seq <= *mark) {
                outcome.num_duplicates += 1;
                continue;
            }
            partition.last_added = Some(now);
            // A partition made before replicas were marked cannot take the mark.
            let replica_of = replica_of.filter(|_| partition.marks_replicas);
            let writer = partition.open_writer(&self.config, self.span_nanos, wall_now)?;
            let operations = queued.entry(start).or_default();
            operations.push(UserOperation::Add(self.schema.document(&record, payload.next_row, replica_of, &mut blob)));
            if operations.len() >= DOCUMENTS_PER_SEND {
                writer.run(operations.drain(..)).map_err(index_error(&partition.path))?;
            }
            payload.next_row += 1;
            payload.high_water.insert(record.origin, record.seq);
            outcome.num_accepted += 1;
        }
        for (start, operations) in queued {
            if let Some(partition) = self.partitions.get(&start)
                && let Some(writer) = partition.writer.as_ref()
                && !operations.is_empty()
            {
                writer.run(operations).map_err(index_error(&partition.path))?;
            }
        }
        Ok(())
    }

    /// Keeps at most `max_open_writers` writers open, the most recently used.
    fn close_idle_writers(&mut self) {
        let mut open: Vec<(u64, i64)> = self
            .partitions
            .values()
            .filter(|partition| partition.writer.is_some() && !partition.compacting)
            .map(|partition| (partition.last_used, partition.start))
            .collect();
        if open.len() <= self.config.max_open_writers {
            return;
        }
        open.sort_unstable();
        let num_to_close = open.len() - self.config.max_open_writers;
        for (_, start) in open.into_iter().take(num_to_close) {
            if let Some(partition) = self.partitions.get_mut(&start)
                && let Err(error) = partition.close_writer()
            {
                tracing::warn!(%error, "closing a partition writer failed");
            }
        }
    }

    /// Closes every open writer once its background merges are done, and
    /// makes the merged segments visible to searches. For shutdown, before
    /// copying the folder, or to measure: [`LogStore::ingest`] reopens
    /// writers as needed.
    pub fn close_writers(&mut self) -> Result<()> {
        for partition in self.partitions.values_mut() {
            partition.close_writer()?;
        }
        Ok(())
    }
}

/// The records of `batch` ordered by origin, each origin's in their order.
/// Sorts positions rather than records (which are large to move).
fn grouped_by_origin(batch: Vec<(LogRecord, Option<u64>)>) -> Vec<(LogRecord, Option<u64>)> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|left, right| batch[*left].0.origin.cmp(&batch[*right].0.origin));
    let mut slots: Vec<Option<(LogRecord, Option<u64>)>> = batch.into_iter().map(Some).collect();
    order.into_iter().filter_map(|index| slots[index].take()).collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, bytes).map_err(io_error(&temporary))?;
    fs::File::open(&temporary).and_then(|file| file.sync_all()).map_err(io_error(&temporary))?;
    fs::rename(&temporary, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_can_be_shared_between_threads() {
        fn assert_send_and_sync<T: Send + Sync>() {}
        assert_send_and_sync::<LogStore>();
    }
}
