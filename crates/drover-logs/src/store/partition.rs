//! One time partition: a tantivy index in its own folder holding the
//! records whose timestamp falls in `[start, start + span)`, with its
//! writer, its commit payload (the per-origin high-water marks) and the
//! reads of one partition (its matches, a stored record).
//!
//! A partition opens or creates its index, indexes through a writer that
//! merges eagerly while its hour runs and lazily once it is over, commits
//! with its new marks, and searches itself with the collectors of
//! [`super::collector`]. Which partitions exist, and what happens across
//! them, is the store's business ([`super::LogStore`]).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tantivy::collector::Collector;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::{EnableScoring, Query};
use tantivy::schema::{Field, Value as _};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{DocAddress, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy};

use super::collector::{NewestCollector, SortColumns};
use super::search::Cursor;
use super::{
    OLDEST_READ_FORMAT_VERSION, STORE_FORMAT_VERSION, StoreConfig, index_error, io_error, is_readable_version,
};
use crate::error::{Error, Result};
use crate::parse::civil_from_days;
use crate::record::{LogRecord, NANOS_PER_SECOND};
use crate::schema::LogSchema;
use crate::tokenizer::{KEYWORD_TOKENIZER, WORD_TOKENIZER, keyword_analyzer, word_analyzer};

/// zstd level of the doc store: level 3 compresses the records to about a
/// fifth; level 6 saves a tenth more and costs a fifth more CPU per record.
const DOCSTORE_ZSTD_LEVEL: i32 = 3;

/// Bytes of records per compressed doc-store block: fetching one record
/// decompresses its block.
const DOCSTORE_BLOCK_BYTES: usize = 256 * 1024;

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

/// The commit payload of a partition.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct PartitionPayload {
    pub(super) version: u32,
    /// The next row number to hand out.
    pub(super) next_row: u64,
    /// Per origin, the highest seq stored in this partition.
    pub(super) high_water: HashMap<String, u64>,
}

/// One partition of the store, open.
pub(super) struct Partition {
    /// Start of the span, nanoseconds since the epoch.
    pub(super) start: i64,
    pub(super) path: PathBuf,
    pub(super) index: Index,
    pub(super) reader: IndexReader,
    pub(super) writer: Option<IndexWriter>,
    /// As of the last commit.
    pub(super) committed: PartitionPayload,
    /// For choosing which writers to close.
    pub(super) last_used: u64,
    /// When records were last added (`None`: not since the store opened).
    pub(super) last_added: Option<Instant>,
    /// A compaction's merge is running in its writer: the writer stays open.
    pub(super) compacting: bool,
    /// Its writer merges 16 segments at a time (its hour was running when
    /// the writer opened), not 64.
    merges_eagerly: bool,
    /// The sort columns of its segments, opened once.
    pub(super) sort_columns: Arc<SortColumns>,
    /// Its schema has the `replica_of` field (it was created by a build
    /// that marks replicas): copies are marked, and queries may name it.
    pub(super) marks_replicas: bool,
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

impl Partition {
    /// Opens the partition starting at `start` in the store's `directory`,
    /// or creates it (`create`) with the store's current schema.
    pub(super) fn open(directory: &Path, schema: &LogSchema, start: i64, create: bool) -> Result<Partition> {
        let path = directory.join(partition_name(start));
        let index = if create {
            fs::create_dir_all(&path).map_err(io_error(&path))?;
            let settings = IndexSettings {
                docstore_compression: Compressor::Zstd(ZstdCompressor { compression_level: Some(DOCSTORE_ZSTD_LEVEL) }),
                docstore_blocksize: DOCSTORE_BLOCK_BYTES,
                ..IndexSettings::default()
            };
            Index::builder()
                .schema(schema.schema.clone())
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
        let marks_replicas = index.schema().get_field("replica_of").is_ok();
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
            marks_replicas,
        })
    }

    /// Makes the last commit and merges visible to searches.
    pub(super) fn reload(&mut self) -> Result<()> {
        self.reader.reload().map_err(index_error(&self.path))?;
        self.sort_columns.retain_current(&self.reader.searcher());
        Ok(())
    }

    /// The partition's writer, opened when needed: merging eagerly while the
    /// partition's hour runs, lazily once it is over at `now` (compaction
    /// follows), a writer kept open across the end of the hour included.
    pub(super) fn open_writer(&mut self, config: &StoreConfig, span_nanos: i64, now: i64) -> Result<&IndexWriter> {
        let is_over = self.start.saturating_add(span_nanos) <= now;
        match self.writer.as_ref() {
            None => {
                let num_threads = config.indexing_threads.max(1);
                // tantivy needs at least 15 MB per thread.
                let memory_bytes = config.writer_memory_bytes.max(15_000_000 * num_threads);
                let writer =
                    self.index.writer_with_num_threads(num_threads, memory_bytes).map_err(index_error(&self.path))?;
                writer.set_merge_policy(Box::new(merge_policy(if is_over {
                    SETTLING_MERGE_FAN_IN
                } else {
                    MERGE_FAN_IN
                })));
                self.merges_eagerly = !is_over;
                self.writer = Some(writer);
            }
            Some(writer) if self.merges_eagerly && is_over => {
                writer.set_merge_policy(Box::new(merge_policy(SETTLING_MERGE_FAN_IN)));
                self.merges_eagerly = false;
            }
            Some(_) => {}
        }
        self.writer.as_ref().ok_or_else(|| Error::Corrupt {
            path: self.path.clone(),
            message: "the partition writer did not open".to_owned(),
        })
    }

    /// Closes the writer, if open, after its merges; reloads the reader so
    /// that searches use the merged segments.
    pub(super) fn close_writer(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        self.compacting = false;
        writer.wait_merging_threads().map_err(index_error(&self.path))?;
        self.reload()
    }

    /// Commits with the new marks of `payload`, then makes the commit visible.
    pub(super) fn commit(&mut self, mut payload: PartitionPayload) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let mut high_water = self.committed.high_water.clone();
        high_water.extend(payload.high_water.drain());
        payload.high_water = high_water;
        let payload_text = serde_json::to_string(&payload).unwrap_or_default();
        let result = writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload_text);
            prepared.commit()
        });
        if let Err(error) = result {
            let _ = writer.rollback();
            return Err(index_error(&self.path)(error));
        }
        self.committed = payload;
        self.reload()
    }

    /// How many records of the partition match `query`, and its newest
    /// `num_wanted` matches before `before` (none when 0).
    pub(super) fn search(
        &self,
        query: &dyn Query,
        before: Option<Cursor>,
        num_wanted: usize,
    ) -> Result<(u64, Vec<(Cursor, DocAddress)>)> {
        let searcher = self.reader.searcher();
        let weight = query.weight(EnableScoring::disabled_from_searcher(&searcher)).map_err(index_error(&self.path))?;
        let collector = NewestCollector { limit: num_wanted, before, sort_columns: Arc::clone(&self.sort_columns) };
        let mut num_matching = 0u64;
        let mut newest = Vec::new();
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            // Counting alone has fast paths (a term's count is its
            // document frequency); the newest are looked for only in
            // segments with a match, which spares opening their columns.
            let count = weight.count(segment).map_err(index_error(&self.path))?;
            num_matching += u64::from(count);
            if num_wanted == 0 || count == 0 {
                continue;
            }
            let segment_newest = collector
                .collect_segment(weight.as_ref(), segment_ord as u32, segment)
                .map_err(index_error(&self.path))?;
            newest.extend(segment_newest);
        }
        Ok((num_matching, newest))
    }

    /// The record at `address`, stored in the `record_field` blob.
    pub(super) fn fetch_record(&self, record_field: Field, address: DocAddress, timestamp: i64) -> Result<LogRecord> {
        let searcher = self.reader.searcher();
        let document: tantivy::TantivyDocument = searcher.doc(address).map_err(index_error(&self.path))?;
        let bytes = document.get_first(record_field).and_then(|value| value.as_bytes()).unwrap_or_default();
        crate::codec::decode(bytes, timestamp).map_err(|error| Error::Corrupt {
            path: self.path.clone(),
            message: format!("a stored record cannot be read ({error})"),
        })
    }
}

/// `YYYYMMDDTHHMMSSZ` of a partition start.
pub(super) fn partition_name(start: i64) -> String {
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

/// The start of the partition whose folder is called `name`; `None` for
/// any other name.
pub(super) fn parse_partition_name(name: &str) -> Option<i64> {
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
}
