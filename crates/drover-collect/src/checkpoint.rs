//! Where each source resumes after a restart: file offsets and the journal cursor.
//!
//! Sources read the store at start and register what they track, but only the
//! caller advances it ([`CheckpointStore::commit`]) once the lines are durable in
//! the spool. The file is JSON with a `version`, replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory) by [`CheckpointStore::flush`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const CHECKPOINT_VERSION: u32 = 1;

/// The identity of a file on this machine: survives renames, changes when a
/// path is re-created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub inode: u64,
}

/// The point in a file just after a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePosition {
    pub file_id: FileId,
    /// Incremented each time the file was truncated under us (copy-truncate),
    /// so an offset after a truncation compares as newer than a larger, older one.
    pub generation: u64,
    /// The byte offset just after the line (and its newline).
    pub offset_after: u64,
}

/// What to commit once a line is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    File(FilePosition),
    Journal { cursor: Arc<str> },
}

/// The persisted record of one followed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    pub file_id: FileId,
    /// The path the file had when last seen; used to prune entries of files
    /// that no longer match any pattern.
    pub path: PathBuf,
    pub generation: u64,
    pub offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    #[serde(default)]
    files: Vec<FileCheckpoint>,
    #[serde(default)]
    journal_cursor: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<FileId, FileCheckpoint>,
    journal_cursor: Option<Arc<str>>,
    dirty: bool,
}

/// The checkpoints of all sources of one agent, shared between them and the caller.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl CheckpointStore {
    /// Opens the store at `path`; a missing file is an empty store.
    pub fn open(path: impl Into<PathBuf>) -> Result<Arc<CheckpointStore>> {
        let path = path.into();
        let mut state = State::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: CheckpointFile = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
                    path: path.clone(),
                    what: "checkpoint file",
                    reason: err.to_string(),
                })?;
                if file.version > CHECKPOINT_VERSION {
                    return Err(Error::UnsupportedVersion { path, found: file.version, supported: CHECKPOINT_VERSION });
                }
                state.files = file.files.into_iter().map(|entry| (entry.file_id, entry)).collect();
                state.journal_cursor = file.journal_cursor.map(Arc::from);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("read checkpoint file", &path)(err)),
        }
        Ok(Arc::new(CheckpointStore { path, state: Mutex::new(state) }))
    }

    /// The file path of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters more than losing the checkpoints: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that everything up to `checkpoint` is durable. Never moves a
    /// file backwards; ignores files that are not tracked (any more).
    pub fn commit(&self, checkpoint: &Checkpoint) {
        let mut state = self.lock();
        match checkpoint {
            Checkpoint::File(position) => {
                if let Some(entry) = state.files.get_mut(&position.file_id)
                    && (position.generation, position.offset_after) > (entry.generation, entry.offset)
                {
                    entry.generation = position.generation;
                    entry.offset = position.offset_after;
                    state.dirty = true;
                }
            }
            Checkpoint::Journal { cursor } => {
                state.journal_cursor = Some(cursor.clone());
                state.dirty = true;
            }
        }
    }

    /// The stored checkpoint of a file, if it is tracked.
    pub fn file(&self, file_id: FileId) -> Option<FileCheckpoint> {
        self.lock().files.get(&file_id).cloned()
    }

    /// Starts tracking a file at `offset`, or keeps the existing entry.
    pub fn track_file(&self, file_id: FileId, path: &Path, generation: u64, offset: u64) {
        let mut state = self.lock();
        match state.files.get_mut(&file_id) {
            Some(entry) => {
                if entry.path != path {
                    entry.path = path.to_path_buf();
                    state.dirty = true;
                }
            }
            None => {
                state.files.insert(file_id, FileCheckpoint { file_id, path: path.to_path_buf(), generation, offset });
                state.dirty = true;
            }
        }
    }

    /// Stops tracking a file: later commits for it are ignored.
    pub fn forget_file(&self, file_id: FileId) {
        let mut state = self.lock();
        if state.files.remove(&file_id).is_some() {
            state.dirty = true;
        }
    }

    /// Drops the entries for which `keep` returns false.
    pub fn retain_files(&self, mut keep: impl FnMut(&FileCheckpoint) -> bool) {
        let mut state = self.lock();
        let num_before = state.files.len();
        state.files.retain(|_, entry| keep(entry));
        if state.files.len() != num_before {
            state.dirty = true;
        }
    }

    /// The cursor after the last durable journal entry.
    pub fn journal_cursor(&self) -> Option<Arc<str>> {
        self.lock().journal_cursor.clone()
    }

    /// Writes the store to disk if it changed since the last flush. Blocking
    /// (one fsync): call it from `spawn_blocking` or a blocking context.
    pub fn flush(&self) -> Result<()> {
        let contents = {
            let mut state = self.lock();
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            let mut files: Vec<FileCheckpoint> = state.files.values().cloned().collect();
            files.sort_by_key(|entry| entry.file_id);
            let file = CheckpointFile {
                version: CHECKPOINT_VERSION,
                files,
                journal_cursor: state.journal_cursor.as_deref().map(str::to_owned),
            };
            serde_json::to_vec_pretty(&file).map_err(|err| Error::Corrupt {
                path: self.path.clone(),
                what: "checkpoint",
                reason: err.to_string(),
            })?
        };
        let result = write_atomically(&self.path, &contents);
        if result.is_err() {
            self.lock().dirty = true;
        }
        result
    }
}

/// Replaces `path` by `contents` so that a crash leaves either the old or the new file.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let mut temporary_name = path.as_os_str().to_owned();
    temporary_name.push(".tmp");
    let temporary_path = PathBuf::from(temporary_name);
    let mut file = File::create(&temporary_path).map_err(Error::io("create", &temporary_path))?;
    file.write_all(contents).map_err(Error::io("write", &temporary_path))?;
    file.sync_all().map_err(Error::io("fsync", &temporary_path))?;
    drop(file);
    std::fs::rename(&temporary_path, path).map_err(Error::io("rename into place", path))?;
    sync_parent_dir(path)
}

/// Makes a created, renamed or deleted directory entry durable.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = File::open(parent).map_err(Error::io("open directory", parent))?;
    dir.sync_all().map_err(Error::io("fsync directory", parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(inode: u64, generation: u64, offset_after: u64) -> Checkpoint {
        Checkpoint::File(FilePosition { file_id: FileId { dev: 1, inode }, generation, offset_after })
    }

    #[test]
    fn commit_only_moves_forward_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        let store = CheckpointStore::open(&path).unwrap();
        let file_id = FileId { dev: 1, inode: 7 };
        store.track_file(file_id, Path::new("/var/log/a.log"), 0, 0);
        store.commit(&position(7, 0, 100));
        store.commit(&position(7, 0, 50));
        store.commit(&position(8, 0, 500)); // not tracked: ignored
        store.commit(&Checkpoint::Journal { cursor: Arc::from("s=abc") });
        store.flush().unwrap();
        let reopened = CheckpointStore::open(&path).unwrap();
        assert_eq!(reopened.file(file_id).unwrap().offset, 100);
        assert!(reopened.file(FileId { dev: 1, inode: 8 }).is_none());
        assert_eq!(reopened.journal_cursor().as_deref(), Some("s=abc"));
        // After a truncation the generation wins over the larger old offset.
        reopened.commit(&position(7, 1, 10));
        assert_eq!(reopened.file(file_id).unwrap().offset, 10);
    }

    #[test]
    fn version_one_sample_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        std::fs::write(&path, include_str!("../tests/samples/checkpoints-v1.json")).unwrap();
        let store = CheckpointStore::open(&path).unwrap();
        let entry = store.file(FileId { dev: 2049, inode: 131 }).unwrap();
        assert_eq!(entry.offset, 4096);
        assert_eq!(entry.path, PathBuf::from("/var/log/app.log"));
        assert_eq!(store.journal_cursor().as_deref(), Some("s=1;i=2"));
    }

    #[test]
    fn corrupt_and_future_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(CheckpointStore::open(&path), Err(Error::Corrupt { .. })));
        std::fs::write(&path, br#"{"version": 99}"#).unwrap();
        assert!(matches!(CheckpointStore::open(&path), Err(Error::UnsupportedVersion { found: 99, .. })));
    }
}
