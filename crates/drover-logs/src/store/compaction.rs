//! Compaction: merging a settled partition into one segment.
//!
//! Which partitions are settled (their hour over and quiet, more than one
//! segment), and the merge of one into one segment in its writer's merge
//! threads, started and finished in two calls so that the caller need not
//! hold the store while it runs (the store's **Compaction** note).

use std::fmt;
use std::path::PathBuf;
use std::sync::PoisonError;
use std::time::{Duration, SystemTime};

use tantivy::IndexWriter;
use tantivy::indexer::NoMergePolicy;

use super::{LogStore, index_error};
use crate::error::Result;

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

impl LogStore {
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
        partition.open_writer(&config, span_nanos, drover_types::log::unix_nanos(SystemTime::now()))?;
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
