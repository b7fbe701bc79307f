//! The log store: one tantivy index per time partition.
//!
//! ```text
//! DIR/
//!   store.json                      {"version":2,"partition_seconds":3600}
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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::index::{InvertedIndexReader, SegmentId};
use tantivy::indexer::{LogMergePolicy, NoMergePolicy, UserOperation};
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query};
use tantivy::schema::IndexRecordOption;
use tantivy::schema::Value as _;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{
    BitSet, COLLECT_BLOCK_BUFFER_LEN, DocAddress, DocId, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy,
    Score, SegmentReader,
};

use crate::error::{Error, Result};
use crate::parse::civil_from_days;
use crate::query;
use crate::record::{LogRecord, NANOS_PER_SECOND};
use crate::schema::{CountSource, LogSchema};
use crate::tokenizer::{KEYWORD_TOKENIZER, WORD_TOKENIZER, keyword_analyzer, word_analyzer};

/// The version of `store.json` and of the partition commit payload.
///
/// - 1: records stored as JSON, every timestamp also indexed as a term,
///   field norms on every text field.
/// - 2: records stored as compact blobs ([`crate::codec`]), timestamps in
///   the fast field only, no field norms (a third of the disk of version 1).
///
/// This build reads both and writes version 2. Opening a version 1 store
/// marks it version 2 (older builds then refuse it rather than misread
/// it); its old partitions keep their schema and are read as they are.
pub const STORE_FORMAT_VERSION: u32 = 2;

/// The oldest format version this build reads.
pub const OLDEST_READ_FORMAT_VERSION: u32 = 1;

fn is_readable_version(version: u32) -> bool {
    (OLDEST_READ_FORMAT_VERSION..=STORE_FORMAT_VERSION).contains(&version)
}

const STORE_FILE: &str = "store.json";

/// The folder, inside the store's, that damaged partitions are moved to.
pub const QUARANTINE_FOLDER: &str = "quarantine";

/// The note written into a partition moved aside: which, why and when.
const QUARANTINE_NOTE: &str = "quarantine.json";

/// The version of [`QUARANTINE_NOTE`].
const QUARANTINE_NOTE_VERSION: u32 = 1;

/// zstd level of the doc store: level 3 compresses the records to about a
/// fifth; level 6 saves a tenth more and costs a fifth more CPU per record.
const DOCSTORE_ZSTD_LEVEL: i32 = 3;

/// Bytes of records per compressed doc-store block: fetching one record
/// decompresses its block.
const DOCSTORE_BLOCK_BYTES: usize = 256 * 1024;

/// Documents handed to a partition's indexing thread at once: one channel
/// message per document made the ingest thread spin on the full channel
/// (7 % of the ingest CPU).
const DOCUMENTS_PER_SEND: usize = 1024;

/// Segments merged at once. Each commit makes a segment, and a record is
/// rewritten once per merge it goes through, which with small commits costs
/// about as much as indexing it: merging 16 at a time (tantivy's default is
/// 8) cut the instructions per line by a fifth with 2,000-line commits, for
/// more segments to search.
const MERGE_FAN_IN: usize = 16;

/// Segments merged at once in a partition whose hour is over. Compaction
/// merges such a partition into one segment once it is quiet, so merging it
/// while lines still arrive (late lines, a backlog, a replay) would rewrite
/// them twice; this only bounds the segments of one that never gets quiet.
const SETTLING_MERGE_FAN_IN: usize = 64;

fn merge_policy(fan_in: usize) -> LogMergePolicy {
    let mut policy = LogMergePolicy::default();
    policy.set_min_num_segments(fan_in);
    policy
}

/// What the store keeps; `None` keeps without limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Partitions that ended longer ago than this are deleted.
    pub max_age: Option<Duration>,
    /// When the store is bigger, the oldest partitions are deleted (the
    /// newest one is always kept).
    pub max_bytes: Option<u64>,
}

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

/// What [`LogStore::apply_retention`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Partitions deleted.
    pub num_partitions_deleted: usize,
    /// Bytes they used on disk.
    pub bytes_freed: u64,
}

/// Which records a search, count or histogram looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The query text (see [`crate::query`]); empty matches every record.
    pub query: String,
    /// Only records at or after this time (nanoseconds since the epoch).
    pub since: Option<i64>,
    /// Only records before this time (nanoseconds since the epoch).
    pub until: Option<i64>,
    /// Only records of these nodes (case-insensitive); `None` for all.
    pub nodes: Option<Vec<String>>,
}

impl Filter {
    /// A filter of the query text alone.
    pub fn query(text: &str) -> Self {
        Filter { query: text.to_owned(), ..Filter::default() }
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// Which records.
    pub filter: Filter,
    /// At most this many records on the page.
    pub limit: usize,
    /// Only records older than this cursor (the `next_cursor` of the
    /// previous page); `None` for the newest.
    pub before: Option<Cursor>,
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Newest first.
    pub records: Vec<LogRecord>,
    /// The position of each record (same order): a server merging pages of
    /// several stores continues each store after the last record it used.
    pub cursors: Vec<Cursor>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
    /// How many records match the filter in all (on every page), in the
    /// partitions that could be read.
    pub total_matching: u64,
    /// The partitions that could not be read, left out of this answer.
    pub damaged: Vec<DamagedPartition>,
}

/// The answer to [`LogStore::count_by`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldCounts {
    /// `(value, count)`, most frequent first (ties by value).
    pub counts: Vec<(String, u64)>,
    /// The partitions that could not be read, left out of the counts.
    pub damaged: Vec<DamagedPartition>,
}

/// The answer to [`LogStore::histogram`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `(bucket start, count)` of every bucket with a record, oldest first.
    pub buckets: Vec<(i64, u64)>,
    /// The partitions that could not be read, left out of the counts.
    pub damaged: Vec<DamagedPartition>,
}

/// A partition that a search, count or histogram could not read: the
/// answer was made from the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedPartition {
    /// The partition's folder name, its start in UTC: `20240102T040000Z`.
    pub name: String,
    /// Its start, nanoseconds since the epoch.
    pub start: i64,
    /// What failed, engine internals included: for the server's log and
    /// its operators, not for the answers of an API.
    pub reason: String,
}

/// A partition moved aside into [`QUARANTINE_FOLDER`] because it could not
/// be read; an operator inspects, repairs or deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedPartition {
    /// The partition's folder name, its start in UTC: `20240102T040000Z`.
    pub name: String,
    /// Where its folder is now (where it was, when it could not be moved).
    pub path: PathBuf,
    /// What was wrong, engine internals included: for the server's log
    /// and its operators, not for the answers of an API.
    pub reason: String,
    /// When it was moved aside, nanoseconds since the epoch.
    pub at: i64,
}

/// [`QUARANTINE_NOTE`]: why a partition was moved aside, for the next runs.
#[derive(Debug, Serialize, Deserialize)]
struct QuarantineNote {
    version: u32,
    partition: String,
    reason: String,
    at: i64,
}

/// A position in the newest-first order of records: `(timestamp, row)`.
///
/// Written as `TIMESTAMP-ROW` (two decimal numbers, the timestamp possibly
/// negative), e.g. `1704164645000000000-17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The record's timestamp.
    pub timestamp: i64,
    /// The record's row in its partition.
    pub row: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.timestamp, self.row)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidCursor { cursor: text.to_owned() };
        let (timestamp, row) = text.rsplit_once('-').ok_or_else(invalid)?;
        Ok(Cursor { timestamp: timestamp.parse().map_err(|_| invalid())?, row: row.parse().map_err(|_| invalid())? })
    }
}

/// `store.json`.
#[derive(Debug, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    partition_seconds: u32,
}

/// The commit payload of a partition.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartitionPayload {
    version: u32,
    /// The next row number to hand out.
    next_row: u64,
    /// Per origin, the highest seq stored in this partition.
    high_water: HashMap<String, u64>,
}

struct Partition {
    /// Start of the span, nanoseconds since the epoch.
    start: i64,
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Option<IndexWriter>,
    /// As of the last commit.
    committed: PartitionPayload,
    /// For choosing which writers to close.
    last_used: u64,
    /// When records were last added (`None`: not since the store opened).
    last_added: Option<Instant>,
    /// A compaction's merge is running in its writer: the writer stays open.
    compacting: bool,
    /// Its writer merges 16 segments at a time (its hour was running when
    /// the writer opened), not 64.
    merges_eagerly: bool,
    /// The sort columns of its segments, opened once.
    sort_columns: Arc<SortColumns>,
}

impl fmt::Debug for Partition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Partition")
            .field("start", &self.start)
            .field("path", &self.path)
            .field("writer_open", &self.writer.is_some())
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
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

    /// The partitions moved aside because they could not be read, oldest
    /// first: those of earlier runs still in [`QUARANTINE_FOLDER`] too.
    pub fn quarantined(&self) -> &[QuarantinedPartition] {
        &self.quarantined
    }

    /// The partitions that searches found damaged and that are not moved
    /// aside yet ([`LogStore::quarantine_damaged`] does), oldest first.
    /// Searches skip them and name them in their answers.
    pub fn damaged(&self) -> Vec<DamagedPartition> {
        self.damaged.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Moves aside the partitions that searches found damaged and returns
    /// them. A partition being compacted waits for the next call (its merge
    /// writes into its folder).
    pub fn quarantine_damaged(&mut self) -> Vec<QuarantinedPartition> {
        let damaged = std::mem::take(self.damaged.get_mut().unwrap_or_else(PoisonError::into_inner));
        let mut moved = Vec::new();
        for (start, damage) in damaged {
            let Some(partition) = self.partitions.get(&start) else {
                // Deleted by retention meanwhile.
                continue;
            };
            if partition.compacting {
                self.damaged.get_mut().unwrap_or_else(PoisonError::into_inner).insert(start, damage);
                continue;
            }
            // A failed search is not proof: a transient error (too many
            // open files, no memory) must not hide an hour of logs. Only
            // files that fail a fresh open or their checksums go aside.
            if files_verify(&partition.path) {
                tracing::warn!(
                    partition = %damage.name,
                    reason = %damage.reason,
                    "a search failed on a log partition whose files verify: it is kept and served"
                );
                continue;
            }
            if let Some(mut partition) = self.partitions.remove(&start) {
                // Background merges write into the folder: let them end first.
                match panic::catch_unwind(AssertUnwindSafe(|| close_writer(&mut partition))) {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(partition = %damage.name, %error, "a damaged partition's writer did not close cleanly");
                    }
                    Err(payload) => tracing::warn!(
                        partition = %damage.name,
                        panic = %panic_text(&*payload),
                        "a damaged partition's writer did not close cleanly"
                    ),
                }
            }
            moved.push(self.move_aside(start, damage.reason));
        }
        moved
    }

    /// Opens a partition found on disk. A failure is said in words: an
    /// error, or a panic of tantivy's on a damaged file.
    fn open_existing_partition(&self, start: i64) -> std::result::Result<Partition, String> {
        match panic::catch_unwind(AssertUnwindSafe(|| self.open_partition(start, false))) {
            Ok(Ok(partition)) => Ok(partition),
            Ok(Err(error)) => Err(error.to_string()),
            Err(payload) => Err(format!("the search engine failed on a damaged file: {}", panic_text(&*payload))),
        }
    }

    /// Moves the folder of the partition at `start` (no longer among the
    /// open partitions) into [`QUARANTINE_FOLDER`] with a note saying why,
    /// and lists it. A folder that cannot be moved stays where it is,
    /// listed, and left out of searches.
    fn move_aside(&mut self, start: i64, reason: String) -> QuarantinedPartition {
        let name = partition_name(start);
        let from = self.directory.join(&name);
        let at = drover_types::log::unix_nanos(SystemTime::now());
        let quarantined = match move_into_quarantine(&self.directory.join(QUARANTINE_FOLDER), &from, &name, at) {
            Ok(to) => {
                let note = QuarantineNote {
                    version: QUARANTINE_NOTE_VERSION,
                    partition: name.clone(),
                    reason: reason.clone(),
                    at,
                };
                let note_path = to.join(QUARANTINE_NOTE);
                if let Err(error) = write_atomically(&note_path, &serde_json::to_vec_pretty(&note).unwrap_or_default())
                {
                    tracing::warn!(path = %note_path.display(), %error, "cannot note why a log partition was moved aside");
                }
                tracing::warn!(
                    partition = %name,
                    from = %from.display(),
                    to = %to.display(),
                    %reason,
                    "a damaged log partition was moved aside; the other partitions are served"
                );
                QuarantinedPartition { name, path: to, reason, at }
            }
            Err(error) => {
                tracing::error!(
                    partition = %name,
                    path = %from.display(),
                    %reason,
                    %error,
                    "a damaged log partition cannot be moved aside; it is left out of searches where it is"
                );
                QuarantinedPartition {
                    name,
                    path: from,
                    reason: format!("{reason} (it could not be moved aside: {error})"),
                    at,
                }
            }
        };
        self.quarantined.push(quarantined.clone());
        quarantined
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

    fn open_partition(&self, start: i64, create: bool) -> Result<Partition> {
        let path = self.directory.join(partition_name(start));
        let index = if create {
            fs::create_dir_all(&path).map_err(io_error(&path))?;
            let settings = IndexSettings {
                docstore_compression: Compressor::Zstd(ZstdCompressor { compression_level: Some(DOCSTORE_ZSTD_LEVEL) }),
                docstore_blocksize: DOCSTORE_BLOCK_BYTES,
                ..IndexSettings::default()
            };
            Index::builder()
                .schema(self.schema.schema.clone())
                .settings(settings)
                .create_in_dir(&path)
                .map_err(index_error(&path))?
        } else {
            Index::open_in_dir(&path).map_err(index_error(&path))?
        };
        index.tokenizers().register(KEYWORD_TOKENIZER, keyword_analyzer());
        index.tokenizers().register(WORD_TOKENIZER, word_analyzer());
        let committed = match index.load_metas().map_err(index_error(&path))?.payload {
            Some(payload) => {
                let payload: PartitionPayload = serde_json::from_str(&payload).map_err(|error| Error::Corrupt {
                    path: path.clone(),
                    message: format!("cannot read the commit payload ({error}); delete the partition folder"),
                })?;
                if !is_readable_version(payload.version) {
                    return Err(Error::Corrupt {
                        path: path.clone(),
                        message: format!(
                            "partition format version {} is not supported (this build reads versions \
                             {OLDEST_READ_FORMAT_VERSION} to {STORE_FORMAT_VERSION}); use a matching drover version",
                            payload.version
                        ),
                    });
                }
                payload
            }
            None => PartitionPayload { version: STORE_FORMAT_VERSION, ..PartitionPayload::default() },
        };
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(index_error(&path))?;
        let sort_columns = Arc::new(SortColumns::default());
        Ok(Partition {
            start,
            path,
            index,
            reader,
            writer: None,
            committed,
            last_used: 0,
            last_added: None,
            compacting: false,
            merges_eagerly: false,
            sort_columns,
        })
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
    pub fn ingest(&mut self, mut batch: Vec<LogRecord>) -> Result<IngestOutcome> {
        // New records of a damaged hour go to a new partition, not into
        // the damaged one.
        if !self.damaged.get_mut().unwrap_or_else(PoisonError::into_inner).is_empty() {
            self.quarantine_damaged();
        }
        let mut outcome = IngestOutcome::default();
        // One origin's lines side by side (in their order) compress far
        // better than lines of many origins interleaved: the doc store
        // blocks and the posting lists then hold runs of similar lines.
        if !batch.windows(2).all(|pair| pair[0].origin <= pair[1].origin) {
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
            if let Err(error) = commit_partition(partition, payload) {
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
        batch: Vec<LogRecord>,
        pending: &mut BTreeMap<i64, PartitionPayload>,
        outcome: &mut IngestOutcome,
    ) -> Result<()> {
        let mut blob = Vec::with_capacity(512);
        // Documents go to the indexing thread in groups, not one by one.
        let mut queued: HashMap<i64, Vec<UserOperation>> = HashMap::new();
        self.use_counter += 1;
        let now = Instant::now();
        let wall_now = drover_types::log::unix_nanos(SystemTime::now());
        for record in batch {
            let start = self.partition_start(record.timestamp);
            if !self.partitions.contains_key(&start) {
                let partition = self.open_partition(start, true)?;
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
            let writer = open_writer(partition, &self.config, self.span_nanos, wall_now)?;
            let operations = queued.entry(start).or_default();
            operations.push(UserOperation::Add(self.schema.document(&record, payload.next_row, &mut blob)));
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
                && let Err(error) = close_writer(partition)
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
            close_writer(partition)?;
        }
        Ok(())
    }

    /// The partitions that may hold records of `[since, until)`, newest first.
    fn partitions_in(&self, since: Option<i64>, until: Option<i64>) -> impl Iterator<Item = &Partition> {
        let span = self.span_nanos;
        self.partitions.values().rev().filter(move |partition| {
            since.is_none_or(|since| partition.start.saturating_add(span) > since)
                && until.is_none_or(|until| partition.start < until)
        })
    }

    /// The tantivy query of a filter, per partition.
    fn compile(&self, filter: &Filter) -> Result<CompiledFilter> {
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since > until
        {
            return Err(Error::InvalidRequest(format!(
                "the time range starts ({since}) after it ends ({until}): swap --since and --until"
            )));
        }
        let expr = query::parse(&filter.query)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, self.schema.compile(&expr))];
        if let Some(nodes) = &filter.nodes {
            clauses.push((Occur::Must, self.schema.node_filter(nodes)));
        }
        let copy = |clauses: &[(Occur, Box<dyn Query>)]| -> Vec<(Occur, Box<dyn Query>)> {
            clauses.iter().map(|(occur, query)| (*occur, query.box_clone())).collect()
        };
        // A single clause goes unwrapped: a term query's count is then its
        // document frequency, where a boolean query would visit every match.
        let combined = |mut clauses: Vec<(Occur, Box<dyn Query>)>| -> Box<dyn Query> {
            if clauses.len() == 1 { clauses.remove(0).1 } else { Box::new(BooleanQuery::new(clauses)) }
        };
        let without_time = combined(copy(&clauses));
        let with_time = self.schema.time_range(filter.since, filter.until).map(|range| {
            clauses.push((Occur::Must, range));
            combined(clauses)
        });
        Ok(CompiledFilter { without_time, with_time, since: filter.since, until: filter.until })
    }

    /// The partitions that may hold records of `[since, until)` and can be
    /// read, newest first; those known to be damaged go to `damaged`.
    fn readable_partitions_in(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        damaged: &mut Vec<DamagedPartition>,
    ) -> Vec<&Partition> {
        let known_damaged = self.damaged.lock().unwrap_or_else(PoisonError::into_inner);
        let mut readable = Vec::new();
        for partition in self.partitions_in(since, until) {
            match known_damaged.get(&partition.start) {
                Some(damage) => damaged.push(damage.clone()),
                None => readable.push(partition),
            }
        }
        readable
    }

    /// Notes that a search failed in `partition`: in the log, in the
    /// answer (the returned value), and, when its files are damaged, in the
    /// store, so that later searches skip it until it is moved aside.
    fn note_failure(&self, partition: &Partition, failure: PartitionFailure) -> DamagedPartition {
        let damage =
            DamagedPartition { name: partition_name(partition.start), start: partition.start, reason: failure.reason };
        tracing::warn!(
            partition = %damage.name,
            path = %partition.path.display(),
            reason = %damage.reason,
            files_damaged = failure.files_damaged,
            "a log partition cannot be searched; the answer is made from the others"
        );
        if failure.files_damaged {
            self.damaged.lock().unwrap_or_else(PoisonError::into_inner).insert(partition.start, damage.clone());
        }
        damage
    }

    /// One page of the records matching the request, newest first. A
    /// partition that cannot be read is left out and named in `damaged`.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage> {
        let compiled = self.compile(&request.filter)?;
        let limit = request.limit;
        let mut damaged = Vec::new();
        let partitions = self.readable_partitions_in(request.filter.since, request.filter.until, &mut damaged);
        let mut candidates: Vec<(Cursor, usize, DocAddress)> = Vec::new();
        // Per partition (same order), its matching records.
        let mut num_matching_per_partition = vec![0u64; partitions.len()];
        for (partition_index, partition) in partitions.iter().enumerate() {
            // Partitions come newest first and do not overlap in time: once
            // a page and one more are found, older partitions are only counted.
            let num_wanted = if limit == 0 || candidates.len() > limit { 0 } else { limit.saturating_add(1) };
            match guarded(|| self.search_partition(partition, &compiled, request.before, num_wanted)) {
                Ok((num_matching, newest)) => {
                    num_matching_per_partition[partition_index] = num_matching;
                    candidates.extend(newest.into_iter().map(|(cursor, address)| (cursor, partition_index, address)));
                }
                Err(failure) => damaged.push(self.note_failure(partition, failure)),
            }
        }
        candidates.sort_unstable_by_key(|(cursor, _, _)| Reverse(*cursor));
        let has_more = candidates.len() > limit;
        candidates.truncate(limit);
        let next_cursor = if has_more { candidates.last().map(|(cursor, _, _)| *cursor) } else { None };
        let mut fetched: Vec<(Cursor, usize, LogRecord)> = Vec::with_capacity(candidates.len());
        let mut failed = vec![false; partitions.len()];
        for (cursor, partition_index, address) in candidates {
            if failed[partition_index] {
                continue;
            }
            let partition = partitions[partition_index];
            match guarded(|| self.fetch_record(partition, address, cursor.timestamp)) {
                Ok(record) => fetched.push((cursor, partition_index, record)),
                Err(failure) => {
                    failed[partition_index] = true;
                    damaged.push(self.note_failure(partition, failure));
                }
            }
        }
        // A partition whose records cannot all be read is left out whole,
        // as one whose search failed.
        fetched.retain(|(_, partition_index, _)| !failed[*partition_index]);
        let total_matching = num_matching_per_partition
            .iter()
            .zip(&failed)
            .filter(|(_, failed)| !**failed)
            .map(|(num_matching, _)| num_matching)
            .sum();
        let (cursors, records) = fetched.into_iter().map(|(cursor, _, record)| (cursor, record)).unzip();
        Ok(SearchPage { records, cursors, next_cursor, total_matching, damaged })
    }

    /// How many records of one partition match, and its newest
    /// `num_wanted` matches before `before` (none when 0).
    fn search_partition(
        &self,
        partition: &Partition,
        compiled: &CompiledFilter,
        before: Option<Cursor>,
        num_wanted: usize,
    ) -> Result<(u64, Vec<(Cursor, DocAddress)>)> {
        let searcher = partition.reader.searcher();
        let query = compiled.for_partition(partition, self.span_nanos);
        let weight =
            query.weight(EnableScoring::disabled_from_searcher(&searcher)).map_err(index_error(&partition.path))?;
        let collector =
            NewestCollector { limit: num_wanted, before, sort_columns: Arc::clone(&partition.sort_columns) };
        let mut num_matching = 0u64;
        let mut newest = Vec::new();
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            // Counting alone has fast paths (a term's count is its
            // document frequency); the newest are looked for only in
            // segments with a match, which spares opening their columns.
            let count = weight.count(segment).map_err(index_error(&partition.path))?;
            num_matching += u64::from(count);
            if num_wanted == 0 || count == 0 {
                continue;
            }
            let segment_newest = collector
                .collect_segment(weight.as_ref(), segment_ord as u32, segment)
                .map_err(index_error(&partition.path))?;
            newest.extend(segment_newest);
        }
        Ok((num_matching, newest))
    }

    /// The record at `address` of a partition.
    fn fetch_record(&self, partition: &Partition, address: DocAddress, timestamp: i64) -> Result<LogRecord> {
        let searcher = partition.reader.searcher();
        let document: tantivy::TantivyDocument = searcher.doc(address).map_err(index_error(&partition.path))?;
        let bytes = document.get_first(self.schema.record).and_then(|value| value.as_bytes()).unwrap_or_default();
        crate::codec::decode(bytes, timestamp).map_err(|error| Error::Corrupt {
            path: partition.path.clone(),
            message: format!("a stored record cannot be read ({error})"),
        })
    }

    /// The `top_n` most frequent values of `field` among the matching
    /// records, most frequent first (ties by value). `field` is a keyword
    /// field (`node`, `job`, `level`, …) or an extracted field; records
    /// without the field are not counted. A partition that cannot be read
    /// is left out and named in `damaged`.
    pub fn count_by(&self, filter: &Filter, field: &str, top_n: usize) -> Result<FieldCounts> {
        let Some(source) = self.schema.count_source(field) else {
            return Err(Error::InvalidRequest(format!(
                "cannot count by {field:?}: use node, job, level, another record field or an extracted field"
            )));
        };
        let compiled = self.compile(filter)?;
        let collector = CountByCollector { source };
        let mut damaged = Vec::new();
        let mut counts: HashMap<String, u64> = HashMap::new();
        for partition in self.readable_partitions_in(filter.since, filter.until, &mut damaged) {
            let counted = guarded(|| {
                let searcher = partition.reader.searcher();
                let query = compiled.for_partition(partition, self.span_nanos);
                searcher.search(query, &collector).map_err(index_error(&partition.path))
            });
            match counted {
                Ok(partition_counts) => {
                    for (value, count) in partition_counts {
                        *counts.entry(value).or_default() += count;
                    }
                }
                Err(failure) => damaged.push(self.note_failure(partition, failure)),
            }
        }
        let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
        sorted.sort_unstable_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
        sorted.truncate(top_n);
        Ok(FieldCounts { counts: sorted, damaged })
    }

    /// How many records match per time bucket of `bucket_nanos`: the start
    /// of every bucket with at least one record, oldest first. Buckets are
    /// aligned on multiples of `bucket_nanos` since the epoch. A partition
    /// that cannot be read is left out and named in `damaged`.
    pub fn histogram(&self, filter: &Filter, bucket_nanos: i64) -> Result<Histogram> {
        if bucket_nanos <= 0 {
            return Err(Error::InvalidRequest(format!(
                "histogram bucket of {bucket_nanos} ns: use a positive duration such as 5m"
            )));
        }
        let compiled = self.compile(filter)?;
        let mut damaged = Vec::new();
        let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
        for partition in self.readable_partitions_in(filter.since, filter.until, &mut damaged) {
            let counted = guarded(|| {
                let collector = HistogramCollector { bucket_nanos, sort_columns: Arc::clone(&partition.sort_columns) };
                let searcher = partition.reader.searcher();
                let query = compiled.for_partition(partition, self.span_nanos);
                searcher.search(query, &collector).map_err(index_error(&partition.path))
            });
            match counted {
                Ok(partition_counts) => {
                    for (bucket, count) in partition_counts {
                        *counts.entry(bucket).or_default() += count;
                    }
                }
                Err(failure) => damaged.push(self.note_failure(partition, failure)),
            }
        }
        Ok(Histogram { buckets: counts.into_iter().collect(), damaged })
    }

    /// Deletes whole partitions by the configured retention, using the
    /// system clock.
    pub fn apply_retention(&mut self) -> Result<RetentionOutcome> {
        self.apply_retention_at(drover_types::log::unix_nanos(SystemTime::now()))
    }

    /// Deletes whole partitions: those that ended more than `max_age`
    /// before `now` (nanoseconds since the epoch), then the oldest while
    /// the store is bigger than `max_bytes`, always keeping the newest.
    pub fn apply_retention_at(&mut self, now: i64) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        if let Some(max_age) = self.config.retention.max_age {
            let max_age_nanos = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
            let oldest_kept_end = now.saturating_sub(max_age_nanos);
            // One being compacted is deleted next time (its merge is writing
            // into its folder).
            let expired: Vec<i64> = self
                .partitions
                .values()
                .filter(|partition| !partition.compacting)
                .map(|partition| partition.start)
                .filter(|start| start.saturating_add(self.span_nanos) <= oldest_kept_end)
                .collect();
            for start in expired {
                outcome.bytes_freed += self.delete_partition(start)?;
                outcome.num_partitions_deleted += 1;
            }
        }
        if let Some(max_bytes) = self.config.retention.max_bytes {
            let mut sizes: Vec<(i64, u64, bool)> = self
                .partitions
                .values()
                .map(|partition| (partition.start, directory_bytes(&partition.path), partition.compacting))
                .collect();
            let mut total: u64 = sizes.iter().map(|(_, bytes, _)| bytes).sum();
            sizes.pop(); // the newest is kept
            for (start, bytes, compacting) in sizes {
                if total <= max_bytes {
                    break;
                }
                if compacting {
                    continue;
                }
                self.delete_partition(start)?;
                total = total.saturating_sub(bytes);
                outcome.bytes_freed += bytes;
                outcome.num_partitions_deleted += 1;
            }
        }
        Ok(outcome)
    }

    /// Deletes one partition; returns the bytes it used.
    fn delete_partition(&mut self, start: i64) -> Result<u64> {
        let Some(mut partition) = self.partitions.remove(&start) else {
            return Ok(0);
        };
        // Background merges write into the folder: let them end first.
        if let Err(error) = close_writer(&mut partition) {
            tracing::warn!(%error, "a partition's writer did not close cleanly before its deletion");
        }
        let bytes = directory_bytes(&partition.path);
        let path = partition.path.clone();
        drop(partition);
        tracing::info!(path = %path.display(), bytes, "deleting a log partition by retention");
        fs::remove_dir_all(&path).map_err(io_error(&path))?;
        Ok(bytes)
    }

    /// The bytes the store uses on disk.
    pub fn disk_bytes(&self) -> u64 {
        directory_bytes(&self.directory)
    }

    /// The partitions worth compacting: their span ended at least `settle`
    /// before `now` (nanoseconds since the epoch), nothing was added to
    /// them for `settle`, and they have more than one segment. Oldest first.
    pub fn settled_partitions(&self, now: i64, settle: Duration) -> Vec<i64> {
        let settle_nanos = i64::try_from(settle.as_nanos()).unwrap_or(i64::MAX);
        let known_damaged = self.damaged.lock().unwrap_or_else(PoisonError::into_inner);
        self.partitions
            .values()
            .filter(|partition| {
                partition.start.saturating_add(self.span_nanos).saturating_add(settle_nanos) <= now
                    && !partition.compacting
                    && !known_damaged.contains_key(&partition.start)
                    && partition.last_added.is_none_or(|added| added.elapsed() >= settle)
                    && partition.reader.searcher().segment_readers().len() > 1
            })
            .map(|partition| partition.start)
            .collect()
    }

    /// Starts merging every segment of the partition at `start` into one,
    /// in the writer's merge threads: ingest and searches go on meanwhile.
    /// Await (or `wait` for) the answer without holding the store, then
    /// call [`LogStore::finish_compaction`]. `None`: nothing to merge.
    ///
    /// A settled partition is searched through one segment instead of tens
    /// (a rare word is looked up once per segment), and takes less disk.
    pub fn start_compaction(&mut self, start: i64) -> Result<Option<Compaction>> {
        let (config, span_nanos) = (self.config, self.span_nanos);
        if self.damaged.get_mut().unwrap_or_else(PoisonError::into_inner).contains_key(&start) {
            // Merging would read the damaged files; it is moved aside instead.
            return Ok(None);
        }
        let Some(partition) = self.partitions.get_mut(&start) else {
            return Ok(None);
        };
        let segment_ids = partition.index.searchable_segment_ids().map_err(index_error(&partition.path))?;
        if segment_ids.len() <= 1 {
            return Ok(None);
        }
        // Not marked as used: once the merge is done, a writer opened for
        // it alone is the first that `close_idle_writers` closes.
        open_writer(partition, &config, span_nanos, drover_types::log::unix_nanos(SystemTime::now()))?;
        let Some(writer) = partition.writer.as_mut() else {
            return Ok(None);
        };
        partition.compacting = true;
        Ok(Some(Compaction { merge: writer.merge(&segment_ids), path: partition.path.clone() }))
    }

    /// Makes a finished compaction's segment visible to searches.
    pub fn finish_compaction(&mut self, start: i64) -> Result<()> {
        let Some(partition) = self.partitions.get_mut(&start) else {
            return Ok(());
        };
        partition.compacting = false;
        partition.reload()?;
        // The writer may have been opened for the compaction alone.
        self.close_idle_writers();
        Ok(())
    }

    /// Compacts every settled partition (see [`LogStore::settled_partitions`]),
    /// one after the other, holding the store throughout: for tools and
    /// tests. A server uses `start_compaction` so that it need not.
    pub fn compact_settled(&mut self, now: i64, settle: Duration) -> Result<usize> {
        let starts = self.settled_partitions(now, settle);
        let mut num_compacted = 0;
        for start in starts {
            if let Some(compaction) = self.start_compaction(start)? {
                let merged = compaction.wait();
                self.finish_compaction(start)?;
                merged?;
                num_compacted += 1;
            }
        }
        Ok(num_compacted)
    }

    /// Merges the segments of the partition starting at `start` into one
    /// (smaller and faster to search); slow, for partitions no longer
    /// written to, at a quiet moment.
    pub fn optimize_partition(&mut self, start: i64) -> Result<()> {
        let Some(partition) = self.partitions.get_mut(&start) else {
            return Ok(());
        };
        // Let the background merges of the open writer finish first, so that
        // the segment list read below is the one being merged.
        if let Some(open_writer) = partition.writer.take() {
            open_writer.wait_merging_threads().map_err(index_error(&partition.path))?;
        }
        let mut writer: IndexWriter = partition
            .index
            .writer_with_num_threads(1, self.config.writer_memory_bytes.max(15_000_000))
            .map_err(index_error(&partition.path))?;
        writer.set_merge_policy(Box::new(NoMergePolicy));
        let segment_ids = partition.index.searchable_segment_ids().map_err(index_error(&partition.path))?;
        if segment_ids.len() > 1 {
            writer.merge(&segment_ids).wait().map_err(index_error(&partition.path))?;
        }
        writer.wait_merging_threads().map_err(index_error(&partition.path))?;
        partition.reload()
    }
}

/// The records of `batch` ordered by origin, each origin's in their order.
/// Sorts positions rather than records (which are large to move).
fn grouped_by_origin(batch: Vec<LogRecord>) -> Vec<LogRecord> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|left, right| batch[*left].origin.cmp(&batch[*right].origin));
    let mut slots: Vec<Option<LogRecord>> = batch.into_iter().map(Some).collect();
    order.into_iter().filter_map(|index| slots[index].take()).collect()
}

impl Partition {
    /// Makes the last commit and merges visible to searches.
    fn reload(&mut self) -> Result<()> {
        self.reader.reload().map_err(index_error(&self.path))?;
        self.sort_columns.retain_current(&self.reader.searcher());
        Ok(())
    }
}

/// The `timestamp` and `row` columns of segments, opened on first use and
/// kept: opening them by name costs more than a rare term's whole search.
#[derive(Default)]
struct SortColumns {
    by_segment: std::sync::Mutex<HashMap<SegmentId, SegmentSortColumns>>,
}

/// The `timestamp` and `row` columns of one segment.
type SegmentSortColumns = (Column<i64>, Column<u64>);

impl SortColumns {
    fn get(&self, segment: &SegmentReader) -> tantivy::Result<SegmentSortColumns> {
        let mut by_segment = self.by_segment.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(columns) = by_segment.get(&segment.segment_id()) {
            return Ok(columns.clone());
        }
        let columns = (segment.fast_fields().i64("timestamp")?, segment.fast_fields().u64("row")?);
        by_segment.insert(segment.segment_id(), columns.clone());
        Ok(columns)
    }

    /// Forgets segments merged away (their files are freed only then).
    fn retain_current(&self, searcher: &tantivy::Searcher) {
        let current: Vec<SegmentId> = searcher.segment_readers().iter().map(SegmentReader::segment_id).collect();
        let mut by_segment = self.by_segment.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_segment.retain(|segment_id, _| current.contains(segment_id));
    }
}

/// Closes the writer of a partition, if open, after its merges; reloads
/// the reader so that searches use the merged segments.
fn close_writer(partition: &mut Partition) -> Result<()> {
    let Some(writer) = partition.writer.take() else {
        return Ok(());
    };
    partition.compacting = false;
    writer.wait_merging_threads().map_err(index_error(&partition.path))?;
    partition.reload()
}

/// A running merge of a partition's segments ([`LogStore::start_compaction`]).
#[must_use = "wait for the merge, then call LogStore::finish_compaction"]
pub struct Compaction {
    merge: tantivy::FutureResult<Option<tantivy::index::SegmentMeta>>,
    path: PathBuf,
}

impl Compaction {
    /// Blocks until the merge is done.
    pub fn wait(self) -> Result<()> {
        self.merge.wait().map(|_| ()).map_err(index_error(&self.path))
    }
}

impl fmt::Debug for Compaction {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Compaction").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The partition's writer, opened when needed: merging eagerly while the
/// partition's hour runs, lazily once it is over at `now` (compaction
/// follows), a writer kept open across the end of the hour included.
fn open_writer<'a>(
    partition: &'a mut Partition,
    config: &StoreConfig,
    span_nanos: i64,
    now: i64,
) -> Result<&'a IndexWriter> {
    let is_over = partition.start.saturating_add(span_nanos) <= now;
    match partition.writer.as_ref() {
        None => {
            let num_threads = config.indexing_threads.max(1);
            // tantivy needs at least 15 MB per thread.
            let memory_bytes = config.writer_memory_bytes.max(15_000_000 * num_threads);
            let writer = partition
                .index
                .writer_with_num_threads(num_threads, memory_bytes)
                .map_err(index_error(&partition.path))?;
            writer.set_merge_policy(Box::new(merge_policy(if is_over { SETTLING_MERGE_FAN_IN } else { MERGE_FAN_IN })));
            partition.merges_eagerly = !is_over;
            partition.writer = Some(writer);
        }
        Some(writer) if partition.merges_eagerly && is_over => {
            writer.set_merge_policy(Box::new(merge_policy(SETTLING_MERGE_FAN_IN)));
            partition.merges_eagerly = false;
        }
        Some(_) => {}
    }
    partition.writer.as_ref().ok_or_else(|| Error::Corrupt {
        path: partition.path.clone(),
        message: "the partition writer did not open".to_owned(),
    })
}

/// A filter's query, with and without its time range: a partition that
/// lies wholly inside the range skips the range (a scan of the timestamps).
struct CompiledFilter {
    without_time: Box<dyn Query>,
    with_time: Option<Box<dyn Query>>,
    since: Option<i64>,
    until: Option<i64>,
}

impl CompiledFilter {
    fn for_partition(&self, partition: &Partition, span_nanos: i64) -> &dyn Query {
        let Some(with_time) = &self.with_time else {
            return self.without_time.as_ref();
        };
        let starts_inside = self.since.is_none_or(|since| since <= partition.start);
        let ends_inside = self.until.is_none_or(|until| partition.start.saturating_add(span_nanos) <= until);
        if starts_inside && ends_inside { self.without_time.as_ref() } else { with_time.as_ref() }
    }
}

/// Commits one partition with its new marks, then makes the commit visible.
fn commit_partition(partition: &mut Partition, mut payload: PartitionPayload) -> Result<()> {
    let Some(writer) = partition.writer.as_mut() else {
        return Ok(());
    };
    let mut high_water = partition.committed.high_water.clone();
    high_water.extend(payload.high_water.drain());
    payload.high_water = high_water;
    let payload_text = serde_json::to_string(&payload).unwrap_or_default();
    let result = writer.prepare_commit().and_then(|mut prepared| {
        prepared.set_payload(&payload_text);
        prepared.commit()
    });
    if let Err(error) = result {
        let _ = writer.rollback();
        return Err(index_error(&partition.path)(error));
    }
    partition.committed = payload;
    partition.reload()
}

/// `YYYYMMDDTHHMMSSZ` of a partition start.
fn partition_name(start: i64) -> String {
    let seconds = start.div_euclid(NANOS_PER_SECOND);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

fn parse_partition_name(name: &str) -> Option<i64> {
    let bytes = name.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let text = name.get(range)?;
        text.bytes().all(|byte| byte.is_ascii_digit()).then(|| text.parse().ok())?
    };
    let days = crate::parse::days_from_civil(number(0..4)?, number(4..6)?, number(6..8)?);
    let seconds = days * 86_400 + number(9..11)? * 3600 + number(11..13)? * 60 + number(13..15)?;
    let start = seconds.checked_mul(NANOS_PER_SECOND)?;
    (partition_name(start) == name).then_some(start)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, bytes).map_err(io_error(&temporary))?;
    fs::File::open(&temporary).and_then(|file| file.sync_all()).map_err(io_error(&temporary))?;
    fs::rename(&temporary, path).map_err(io_error(path))
}

/// Whether a folder holds a file other than tantivy's hidden bookkeeping
/// (lock files, `.managed.json`): a partition folder without `meta.json`
/// that holds segment files is damaged, not empty.
fn holds_files(path: &Path) -> bool {
    let Ok(entries) = fs::read_dir(path) else {
        // Unreadable: not known to be empty.
        return true;
    };
    entries.filter_map(|entry| entry.ok()).any(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
}

/// Moves a partition folder into the quarantine folder as
/// `NAME-UNIXSECONDS` (`-N` added while taken); returns where it went.
fn move_into_quarantine(quarantine: &Path, from: &Path, name: &str, at: i64) -> Result<PathBuf> {
    fs::create_dir_all(quarantine).map_err(io_error(quarantine))?;
    let seconds = at.div_euclid(NANOS_PER_SECOND);
    let mut to = quarantine.join(format!("{name}-{seconds}"));
    let mut attempt = 1u32;
    while to.exists() {
        to = quarantine.join(format!("{name}-{seconds}-{attempt}"));
        attempt += 1;
    }
    fs::rename(from, &to).map_err(io_error(from))?;
    Ok(to)
}

/// The partitions found in the quarantine folder, oldest first, from
/// their notes (a folder without a readable note is listed all the same).
fn read_quarantine(quarantine: &Path) -> Vec<QuarantinedPartition> {
    let Ok(entries) = fs::read_dir(quarantine) else {
        return Vec::new();
    };
    let mut found: Vec<QuarantinedPartition> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|file_type| file_type.is_dir()))
        .map(|entry| {
            let path = entry.path();
            let note = fs::read(path.join(QUARANTINE_NOTE))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<QuarantineNote>(&bytes).ok());
            match note {
                Some(note) => QuarantinedPartition { name: note.partition, path, reason: note.reason, at: note.at },
                None => {
                    let folder = entry.file_name().to_string_lossy().into_owned();
                    let name = folder.split('-').next().unwrap_or_default().to_owned();
                    let at = entry
                        .metadata()
                        .and_then(|metadata| metadata.modified())
                        .map(drover_types::log::unix_nanos)
                        .unwrap_or_default();
                    let reason = "moved aside by an earlier run; why was not recorded".to_owned();
                    QuarantinedPartition { name, path, reason, at }
                }
            }
        })
        .collect();
    found.sort_by(|left, right| left.at.cmp(&right.at).then_with(|| left.path.cmp(&right.path)));
    found
}

/// Why one partition's part of a search failed.
struct PartitionFailure {
    reason: String,
    /// Its files are damaged (rather than the request failing for another
    /// reason, such as an old schema that cannot answer it): later searches
    /// skip it and it is moved aside.
    files_damaged: bool,
}

/// Runs one partition's part of a search, a panic of tantivy's included
/// (it panics on some damaged files: "range start index … out of range").
fn guarded<T>(work: impl FnOnce() -> Result<T>) -> std::result::Result<T, PartitionFailure> {
    match panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(PartitionFailure { files_damaged: is_damage(&error), reason: error.to_string() }),
        Err(payload) => Err(PartitionFailure {
            reason: format!("the search engine failed on a damaged file: {}", panic_text(&*payload)),
            files_damaged: true,
        }),
    }
}

/// Whether the index in `path` opens afresh and every file passes its
/// checksum (tantivy's footers), a panic counting as a failure.
fn files_verify(path: &Path) -> bool {
    let verified = panic::catch_unwind(AssertUnwindSafe(|| {
        Index::open_in_dir(path).and_then(|index| index.validate_checksum()).map(|damaged| damaged.is_empty())
    }));
    matches!(verified, Ok(Ok(true)))
}

/// Whether an error while reading a partition says that its files are
/// damaged or missing.
fn is_damage(error: &Error) -> bool {
    match error {
        Error::Io { .. } | Error::Corrupt { .. } => true,
        Error::Index { source, .. } => matches!(
            source,
            tantivy::TantivyError::DataCorruption(_)
                | tantivy::TantivyError::IoError(_)
                | tantivy::TantivyError::OpenReadError(_)
                | tantivy::TantivyError::OpenDirectoryError(_)
                | tantivy::TantivyError::IncompatibleIndex(_)
        ),
        Error::Query(_) | Error::InvalidRequest(_) | Error::InvalidCursor { .. } => false,
    }
}

/// The message of a caught panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        return (*text).to_owned();
    }
    if let Some(text) = payload.downcast_ref::<String>() {
        return text.clone();
    }
    "a panic without a message".to_owned()
}

fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|entry| entry.ok())
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Collectors. They read fast fields only; no scores.

/// The newest `limit` matching documents older than `before`.
struct NewestCollector {
    limit: usize,
    before: Option<Cursor>,
    sort_columns: Arc<SortColumns>,
}

struct NewestSegmentCollector {
    limit: usize,
    before: Option<Cursor>,
    segment_ord: u32,
    timestamps: Column<i64>,
    rows: Column<u64>,
    /// A min-heap of the newest seen so far.
    heap: BinaryHeap<Reverse<(Cursor, DocId)>>,
}

impl Collector for NewestCollector {
    type Fruit = Vec<(Cursor, DocAddress)>;
    type Child = NewestSegmentCollector;

    fn for_segment(&self, segment_ord: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        let (timestamps, rows) = self.sort_columns.get(segment)?;
        Ok(NewestSegmentCollector {
            limit: self.limit,
            before: self.before,
            segment_ord,
            timestamps,
            rows,
            heap: BinaryHeap::with_capacity(self.limit.min(4096) + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<(Cursor, DocAddress)> = fruits.into_iter().flatten().collect();
        all.sort_unstable_by_key(|(cursor, _)| Reverse(*cursor));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for NewestSegmentCollector {
    type Fruit = Vec<(Cursor, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.limit == 0 {
            return;
        }
        let cursor = Cursor {
            timestamp: self.timestamps.first(doc).unwrap_or_default(),
            row: self.rows.first(doc).unwrap_or_default(),
        };
        if self.before.is_some_and(|before| cursor >= before) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((cursor, doc)));
        } else if let Some(Reverse((oldest, _))) = self.heap.peek()
            && cursor > *oldest
        {
            self.heap.pop();
            self.heap.push(Reverse((cursor, doc)));
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if docs.len() > COLLECT_BLOCK_BUFFER_LEN {
            for chunk in docs.chunks(COLLECT_BLOCK_BUFFER_LEN) {
                self.collect_block(chunk);
            }
            return;
        }
        if self.limit == 0 {
            return;
        }
        let mut timestamps = [None; COLLECT_BLOCK_BUFFER_LEN];
        let timestamps = &mut timestamps[..docs.len()];
        self.timestamps.first_vals(docs, timestamps);
        for (doc, timestamp) in docs.iter().zip(timestamps.iter()) {
            let timestamp = timestamp.unwrap_or_default();
            // Most records of a full heap are older than its oldest: skip
            // them before reading their row.
            if self.heap.len() == self.limit
                && let Some(Reverse((oldest, _))) = self.heap.peek()
                && timestamp < oldest.timestamp
            {
                continue;
            }
            self.collect(*doc, 0.0);
        }
    }

    fn harvest(self) -> Self::Fruit {
        let segment_ord = self.segment_ord;
        self.heap.into_iter().map(|Reverse((cursor, doc))| (cursor, DocAddress::new(segment_ord, doc))).collect()
    }
}

/// Counts of the values of one field: from its string fast-field column,
/// or from its terms for a field without one.
struct CountByCollector {
    source: CountSource,
}

enum CountBySegmentCollector {
    Column { column: Option<StrColumn>, counts: Vec<u64> },
    Terms { inverted_index: Arc<InvertedIndexReader>, matching: BitSet },
}

impl Collector for CountByCollector {
    type Fruit = HashMap<String, u64>;
    type Child = CountBySegmentCollector;

    fn for_segment(&self, _segment_ord: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(match &self.source {
            CountSource::Column(name) => {
                let column = segment.fast_fields().str(name)?;
                let num_terms = column.as_ref().map_or(0, |column| column.num_terms());
                CountBySegmentCollector::Column { column, counts: vec![0; num_terms] }
            }
            CountSource::Terms(field) => CountBySegmentCollector::Terms {
                inverted_index: segment.inverted_index(*field)?,
                matching: BitSet::with_max_value(segment.max_doc()),
            },
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged: HashMap<String, u64> = HashMap::new();
        for fruit in fruits {
            for (value, count) in fruit {
                *merged.entry(value).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for CountBySegmentCollector {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        match self {
            CountBySegmentCollector::Column { column: Some(column), counts } => {
                // A record has one value per field; the check for repeats
                // guards multi-valued JSON without allocating for the others.
                let mut seen: Vec<u64> = Vec::new();
                for ord in column.term_ords(doc) {
                    if seen.contains(&ord) {
                        continue;
                    }
                    if let Some(count) = usize::try_from(ord).ok().and_then(|index| counts.get_mut(index)) {
                        *count += 1;
                    }
                    seen.push(ord);
                }
            }
            CountBySegmentCollector::Column { column: None, .. } => {}
            CountBySegmentCollector::Terms { matching, .. } => {
                matching.insert(doc);
            }
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if docs.len() > COLLECT_BLOCK_BUFFER_LEN {
            for chunk in docs.chunks(COLLECT_BLOCK_BUFFER_LEN) {
                self.collect_block(chunk);
            }
            return;
        }
        let CountBySegmentCollector::Column { column: Some(column), counts } = self else {
            for doc in docs {
                self.collect(*doc, 0.0);
            }
            return;
        };
        if column.ords().get_cardinality() == Cardinality::Multivalued {
            for doc in docs {
                self.collect(*doc, 0.0);
            }
            return;
        }
        let mut ords = [None; COLLECT_BLOCK_BUFFER_LEN];
        let ords = &mut ords[..docs.len()];
        column.ords().first_vals(docs, ords);
        for ord in ords.iter().flatten() {
            if let Some(count) = usize::try_from(*ord).ok().and_then(|index| counts.get_mut(index)) {
                *count += 1;
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut fruit = HashMap::new();
        match self {
            CountBySegmentCollector::Column { column: None, .. } => {}
            CountBySegmentCollector::Column { column: Some(column), counts } => {
                for (ord, count) in counts.iter().enumerate() {
                    if *count == 0 {
                        continue;
                    }
                    let mut value = String::new();
                    if column.ord_to_str(ord as u64, &mut value).unwrap_or(false) {
                        fruit.insert(value, *count);
                    }
                }
            }
            CountBySegmentCollector::Terms { inverted_index, matching } => {
                if let Err(error) = count_terms(&inverted_index, &matching, &mut fruit) {
                    // `harvest` cannot fail; a segment that cannot be read
                    // here could not have been searched either.
                    tracing::warn!(%error, "cannot count the terms of a log segment");
                }
            }
        }
        fruit
    }
}

/// For every term of the field, how many of the `matching` documents have it.
fn count_terms(
    inverted_index: &InvertedIndexReader,
    matching: &BitSet,
    counts: &mut HashMap<String, u64>,
) -> std::io::Result<()> {
    if matching.len() == 0 {
        return Ok(());
    }
    let mut terms = inverted_index.terms().stream()?;
    while terms.advance() {
        let mut postings = inverted_index.read_block_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
        let mut count = 0u64;
        loop {
            let docs = postings.docs();
            if docs.is_empty() {
                break;
            }
            count += docs.iter().filter(|doc| matching.contains(**doc)).count() as u64;
            postings.advance();
        }
        if count > 0 {
            counts.insert(String::from_utf8_lossy(terms.key()).into_owned(), count);
        }
    }
    Ok(())
}

/// Counts per time bucket.
struct HistogramCollector {
    bucket_nanos: i64,
    sort_columns: Arc<SortColumns>,
}

struct HistogramSegmentCollector {
    bucket_nanos: i64,
    timestamps: Column<i64>,
    counts: HashMap<i64, u64>,
}

impl Collector for HistogramCollector {
    type Fruit = HashMap<i64, u64>;
    type Child = HistogramSegmentCollector;

    fn for_segment(&self, _segment_ord: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(HistogramSegmentCollector {
            bucket_nanos: self.bucket_nanos,
            timestamps: self.sort_columns.get(segment)?.0,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged: HashMap<i64, u64> = HashMap::new();
        for fruit in fruits {
            for (bucket, count) in fruit {
                *merged.entry(bucket).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for HistogramSegmentCollector {
    type Fruit = HashMap<i64, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(timestamp) = self.timestamps.first(doc) {
            let bucket = timestamp - timestamp.rem_euclid(self.bucket_nanos);
            *self.counts.entry(bucket).or_default() += 1;
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if docs.len() > COLLECT_BLOCK_BUFFER_LEN {
            for chunk in docs.chunks(COLLECT_BLOCK_BUFFER_LEN) {
                self.collect_block(chunk);
            }
            return;
        }
        let mut timestamps = [None; COLLECT_BLOCK_BUFFER_LEN];
        let timestamps = &mut timestamps[..docs.len()];
        self.timestamps.first_vals(docs, timestamps);
        // Records are mostly in time order: count runs of one bucket.
        let mut run: Option<(i64, u64)> = None;
        for timestamp in timestamps.iter().flatten() {
            let bucket = timestamp - timestamp.rem_euclid(self.bucket_nanos);
            match &mut run {
                Some((run_bucket, run_count)) if *run_bucket == bucket => *run_count += 1,
                _ => {
                    if let Some((run_bucket, run_count)) = run {
                        *self.counts.entry(run_bucket).or_default() += run_count;
                    }
                    run = Some((bucket, 1));
                }
            }
        }
        if let Some((run_bucket, run_count)) = run {
            *self.counts.entry(run_bucket).or_default() += run_count;
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        for start in [0, 1_704_164_400 * NANOS_PER_SECOND, -3600 * NANOS_PER_SECOND] {
            let name = partition_name(start);
            assert_eq!(parse_partition_name(&name), Some(start), "{name}");
        }
        assert_eq!(partition_name(1_704_164_400 * NANOS_PER_SECOND), "20240102T030000Z");
        assert_eq!(parse_partition_name("20240102T030000"), None);
        assert_eq!(parse_partition_name("20241302T030000Z"), None);
        assert_eq!(parse_partition_name("store.json"), None);
    }

    #[test]
    fn the_store_can_be_shared_between_threads() {
        fn assert_send_and_sync<T: Send + Sync>() {}
        assert_send_and_sync::<LogStore>();
    }

    #[test]
    fn cursors_round_trip() {
        for cursor in [Cursor { timestamp: -5, row: 3 }, Cursor { timestamp: 1_704_164_400_000_000_000, row: 0 }] {
            assert_eq!(cursor.to_string().parse::<Cursor>().ok(), Some(cursor));
        }
        assert!("12".parse::<Cursor>().is_err());
        assert!("a-b".parse::<Cursor>().is_err());
    }
}
