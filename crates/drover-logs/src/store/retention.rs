//! Retention: which partitions are deleted, and when.
//!
//! Retention frees space a whole partition (an hour, by default) at a
//! time: a partition that ended more than `max_age` ago goes, then the
//! oldest while the store is bigger than `max_bytes`; the newest is always
//! kept, and one being compacted waits for the next pass (its merge writes
//! into its folder).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{LogStore, io_error};
use crate::error::Result;

/// What the store keeps; `None` keeps without limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Partitions that ended longer ago than this are deleted.
    pub max_age: Option<Duration>,
    /// When the store is bigger, the oldest partitions are deleted (the
    /// newest one is always kept).
    pub max_bytes: Option<u64>,
}

/// What [`LogStore::apply_retention`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Partitions deleted.
    pub num_partitions_deleted: usize,
    /// Bytes they used on disk.
    pub bytes_freed: u64,
}

impl LogStore {
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
        if let Err(error) = partition.close_writer() {
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
