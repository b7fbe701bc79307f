//! Damaged partitions: found, guarded against, moved aside.
//!
//! One damaged hour never stops the store (the store's **Damage** note
//! says how): this module moves aside a partition that cannot be opened,
//! with a note saying why ([`QUARANTINE_FOLDER`]), lists what earlier runs
//! moved aside, runs every read of a partition under `catch_unwind`
//! ([`guarded`]: tantivy reads some damaged files by panicking), notes the
//! partitions whose files a search found damaged, and moves those aside
//! once a fresh open or their checksums confirm the damage.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tantivy::Index;

use super::partition::{Partition, partition_name};
use super::{LogStore, io_error, write_atomically};
use crate::error::{Error, Result};
use crate::record::NANOS_PER_SECOND;

/// The folder, inside the store's, that damaged partitions are moved to.
pub const QUARANTINE_FOLDER: &str = "quarantine";

/// The note written into a partition moved aside: which, why and when.
const QUARANTINE_NOTE: &str = "quarantine.json";

/// The version of [`QUARANTINE_NOTE`].
const QUARANTINE_NOTE_VERSION: u32 = 1;

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

impl LogStore {
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
                match panic::catch_unwind(AssertUnwindSafe(|| partition.close_writer())) {
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
    pub(super) fn open_existing_partition(&self, start: i64) -> std::result::Result<Partition, String> {
        match panic::catch_unwind(AssertUnwindSafe(|| Partition::open(&self.directory, &self.schema, start, false))) {
            Ok(Ok(partition)) => Ok(partition),
            Ok(Err(error)) => Err(error.to_string()),
            Err(payload) => Err(format!("the search engine failed on a damaged file: {}", panic_text(&*payload))),
        }
    }

    /// Moves the folder of the partition at `start` (no longer among the
    /// open partitions) into [`QUARANTINE_FOLDER`] with a note saying why,
    /// and lists it. A folder that cannot be moved stays where it is,
    /// listed, and left out of searches.
    pub(super) fn move_aside(&mut self, start: i64, reason: String) -> QuarantinedPartition {
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

    /// Notes that a search failed in `partition`: in the log, in the
    /// answer (the returned value), and, when its files are damaged, in the
    /// store, so that later searches skip it until it is moved aside.
    pub(super) fn note_failure(&self, partition: &Partition, failure: PartitionFailure) -> DamagedPartition {
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
}

/// Whether a folder holds a file other than tantivy's hidden bookkeeping
/// (lock files, `.managed.json`): a partition folder without `meta.json`
/// that holds segment files is damaged, not empty.
pub(super) fn holds_files(path: &Path) -> bool {
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
pub(super) fn read_quarantine(quarantine: &Path) -> Vec<QuarantinedPartition> {
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
pub(super) struct PartitionFailure {
    reason: String,
    /// Its files are damaged (rather than the request failing for another
    /// reason, such as an old schema that cannot answer it): later searches
    /// skip it and it is moved aside.
    files_damaged: bool,
}

/// Runs one partition's part of a search, a panic of tantivy's included
/// (it panics on some damaged files: "range start index … out of range").
pub(super) fn guarded<T>(work: impl FnOnce() -> Result<T>) -> std::result::Result<T, PartitionFailure> {
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
