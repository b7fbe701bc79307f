//! Size-capped rotating output files, named as Nomad names them.
//!
//! A task's stdout goes to `<log_dir>/<task>.stdout.0`; when that file
//! reaches `max_file_bytes` the writer continues in `<task>.stdout.1`, and
//! so on, deleting the oldest files so that at most `max_files` remain.
//! Files are split at exactly `max_file_bytes`, in the middle of a line if
//! need be, so the concatenation of the retained files in index order is
//! exactly the tail of the stream — which is what [`crate::LogReader`]
//! relies on. Indexes only grow: a restarted task appends to the newest
//! file of its previous run, so an operator sees one continuous stream.
//!
//! Writes go straight to the file (no user-space buffer), so a line the
//! task wrote is readable by the agent as soon as the shim's pump copied
//! it, typically within a millisecond.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How big output files grow and how many are kept, per stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// Files kept per stream (at least 1); the oldest are deleted.
    pub max_files: u32,
    /// Size at which a file is closed and the next one started (at least
    /// 1 byte).
    pub max_file_bytes: u64,
}

impl LogRotation {
    /// Nomad's defaults: 10 files of 10 MiB per stream.
    pub const DEFAULT: LogRotation = LogRotation { max_files: 10, max_file_bytes: 10 * 1024 * 1024 };
}

impl Default for LogRotation {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One of a task's two output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`, as used in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// The name of output file `index` of `task`'s `stream`:
/// `<task>.<stream>.<index>`.
pub fn log_file_name(task: &str, stream: LogStream, index: u64) -> String {
    format!("{task}.{}.{index}", stream.as_str())
}

/// The existing output files of `task`'s `stream` in `dir`, as
/// `(index, path)` sorted by index. A missing directory has no files.
pub fn list_log_files(dir: &Path, task: &str, stream: LogStream) -> io::Result<Vec<(u64, PathBuf)>> {
    let prefix = format!("{task}.{}.", stream.as_str());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(suffix) = name.strip_prefix(&prefix) else { continue };
        if suffix.is_empty() || !suffix.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        if let Ok(index) = suffix.parse::<u64>() {
            files.push((index, entry.path()));
        }
    }
    files.sort_unstable_by_key(|(index, _)| *index);
    Ok(files)
}

/// Writes one stream into size-capped rotating files.
#[derive(Debug)]
pub struct RotatingWriter {
    dir: PathBuf,
    task: String,
    stream: LogStream,
    max_files: u64,
    max_file_bytes: u64,
    index: u64,
    file: File,
    file_len: u64,
}

impl RotatingWriter {
    /// Opens the stream for appending: continues the newest existing file
    /// while it has room, else starts the next index. Creates `dir` if
    /// needed.
    pub fn open(dir: &Path, task: &str, stream: LogStream, rotation: LogRotation) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let max_file_bytes = rotation.max_file_bytes.max(1);
        let existing = list_log_files(dir, task, stream)?;
        let (index, file_len) = match existing.last() {
            None => (0, 0),
            Some((index, path)) => {
                let len = fs::metadata(path)?.len();
                if len < max_file_bytes { (*index, len) } else { (index + 1, 0) }
            }
        };
        let file = Self::open_file(dir, task, stream, index)?;
        let writer = RotatingWriter {
            dir: dir.to_owned(),
            task: task.to_owned(),
            stream,
            max_files: u64::from(rotation.max_files.max(1)),
            max_file_bytes,
            index,
            file,
            file_len,
        };
        writer.prune()?;
        Ok(writer)
    }

    fn open_file(dir: &Path, task: &str, stream: LogStream, index: u64) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(dir.join(log_file_name(task, stream, index)))
    }

    /// The index of the file currently written.
    pub fn current_index(&self) -> u64 {
        self.index
    }

    /// Appends `data`, rotating at the size cap as often as needed.
    ///
    /// On error, part of `data` may have been written.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.file_len >= self.max_file_bytes {
                self.rotate()?;
            }
            let room = self.max_file_bytes - self.file_len;
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
            self.file.write_all(&data[..take])?;
            self.file_len += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    /// Starts the next file, then deletes the files that fell out of the
    /// window. The new file is created before old ones are deleted, so a
    /// reader following the stream always finds a successor.
    fn rotate(&mut self) -> io::Result<()> {
        let next_index = self.index + 1;
        self.file = Self::open_file(&self.dir, &self.task, self.stream, next_index)?;
        self.index = next_index;
        self.file_len = 0;
        self.prune()
    }

    /// Deletes files older than the newest `max_files`.
    fn prune(&self) -> io::Result<()> {
        let Some(oldest_kept) = (self.index + 1).checked_sub(self.max_files) else { return Ok(()) };
        for (index, path) in list_log_files(&self.dir, &self.task, self.stream)? {
            if index >= oldest_kept {
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(dir: &Path, task: &str) -> Vec<(u64, String)> {
        list_log_files(dir, task, LogStream::Stdout)
            .unwrap()
            .into_iter()
            .map(|(index, path)| (index, fs::read_to_string(path).unwrap()))
            .collect()
    }

    #[test]
    fn files_split_at_exactly_the_cap_and_the_oldest_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = LogRotation { max_files: 3, max_file_bytes: 4 };
        let mut writer = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap();
        writer.write_all(b"abcdefghij").unwrap();
        assert_eq!(contents(dir.path(), "web"), vec![(0, "abcd".into()), (1, "efgh".into()), (2, "ij".into())]);
        writer.write_all(b"klmnopq").unwrap();
        assert_eq!(contents(dir.path(), "web"), vec![(2, "ijkl".into()), (3, "mnop".into()), (4, "q".into())]);
        assert_eq!(writer.current_index(), 4);
    }

    #[test]
    fn reopening_continues_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = LogRotation { max_files: 10, max_file_bytes: 4 };
        RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap().write_all(b"abcdef").unwrap();
        RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap().write_all(b"gh").unwrap();
        assert_eq!(contents(dir.path(), "web"), vec![(0, "abcd".into()), (1, "efgh".into())]);
        let mut third = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap();
        assert_eq!(third.current_index(), 2, "a full newest file is not appended to");
        third.write_all(b"i").unwrap();
        assert_eq!(contents(dir.path(), "web").last(), Some(&(2, "i".into())));
    }

    #[test]
    fn other_tasks_and_streams_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for name in
            ["web.stdout.1", "web.stdout.x", "web.stdout.", "web.stderr.0", "web.stdout.stdout.0", "webx.stdout.0"]
        {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let files = list_log_files(dir.path(), "web", LogStream::Stdout).unwrap();
        assert_eq!(files, vec![(1, dir.path().join("web.stdout.1"))]);
    }
}
