//! Reading a task's output back from its rotating files, for
//! `drover alloc logs`.
//!
//! A stream is the concatenation of its retained files in index order (see
//! [`crate::log_rotate`]). A place in it is a [`LogPosition`]: a file index
//! and an offset in that file. Unlike a single byte offset, a position stays
//! valid while old files are deleted, and a client can resume from the
//! `next` position of the last chunk it got.
//!
//! Following works by polling, which needs no inotify and survives
//! rotation simply: the reader checks whether the *next* file exists
//! *before* reading the current one to its end. The writer finishes a file
//! before creating its successor, so if the successor existed before the
//! read, the read saw all of the current file and the reader may move on
//! without losing a byte. A reader that falls so far behind that its file
//! was deleted continues with the oldest file still there.
//!
//! File reads are blocking, so they run on tokio's blocking pool.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::error::{ExecError, Result};
use crate::log_rotate::{LogStream, list_log_files, log_file_name};

/// How much a single read returns at most while following.
const FOLLOW_CHUNK_BYTES: usize = 64 * 1024;

/// A place in a stream: byte `offset` of file `file_index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct LogPosition {
    /// The file's index (the `N` of `<task>.stdout.N`).
    pub file_index: u64,
    /// Byte offset in that file.
    pub offset: u64,
}

impl LogPosition {
    /// The beginning of the oldest retained file.
    pub const START: LogPosition = LogPosition { file_index: 0, offset: 0 };
}

/// Where to start reading, in bytes of the retained stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOrigin {
    /// This many bytes after the start of the oldest retained file.
    Start(u64),
    /// This many bytes before the current end.
    End(u64),
}

/// Bytes read from a stream and where the next read continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    /// The bytes, exactly as the task wrote them.
    pub data: Vec<u8>,
    /// The position just after `data`.
    pub next: LogPosition,
}

/// Reads one stream (stdout or stderr) of one task.
#[derive(Clone, Debug)]
pub struct LogReader {
    dir: PathBuf,
    task: String,
    stream: LogStream,
    poll_interval: Duration,
}

impl LogReader {
    /// A reader of `task`'s `stream` in `log_dir`.
    pub fn new(log_dir: impl Into<PathBuf>, task: impl Into<String>, stream: LogStream) -> Self {
        LogReader { dir: log_dir.into(), task: task.into(), stream, poll_interval: Duration::from_millis(50) }
    }

    /// How often [`LogReader::follow`] looks for new data when it has
    /// caught up (50 ms by default).
    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// Turns a byte offset into a position, against the files as they are
    /// now. Offsets past the end give the end; `End` past the start gives
    /// the start.
    pub async fn seek(&self, origin: LogOrigin) -> Result<LogPosition> {
        let (dir, task, stream) = (self.dir.clone(), self.task.clone(), self.stream);
        run_blocking(&self.dir, move || seek_blocking(&dir, &task, stream, origin)).await
    }

    /// Reads up to `max_bytes` from `from`; fewer (possibly none) when the
    /// end is reached.
    pub async fn read(&self, from: LogPosition, max_bytes: usize) -> Result<LogChunk> {
        let mut cursor = self.cursor(from);
        run_blocking(&self.dir, move || {
            let mut data = Vec::new();
            while data.len() < max_bytes {
                let piece = cursor.read_some(max_bytes - data.len())?;
                if piece.is_empty() {
                    break;
                }
                data.extend_from_slice(&piece);
            }
            Ok(LogChunk { data, next: cursor.position() })
        })
        .await
    }

    /// The last `num_bytes` bytes of the stream (fewer when the stream is
    /// shorter), and the position after them, to follow from.
    pub async fn tail(&self, num_bytes: u64) -> Result<LogChunk> {
        let start = self.seek(LogOrigin::End(num_bytes)).await?;
        self.read(start, usize::try_from(num_bytes).unwrap_or(usize::MAX)).await
    }

    /// New data from `from` on, as it is written, across rotations.
    ///
    /// The stream never ends by itself (a task may be restarted and write
    /// again); drop it to stop following. An item is an error when the
    /// files cannot be read; the stream retries after the poll interval.
    pub fn follow(&self, from: LogPosition) -> impl Stream<Item = Result<LogChunk>> + Send + 'static {
        let poll_interval = self.poll_interval;
        let dir = self.dir.clone();
        let initial = Some(self.cursor(from));
        futures_util::stream::unfold(initial, move |state| {
            let dir = dir.clone();
            async move {
                let mut cursor = state?;
                loop {
                    let outcome = tokio::task::spawn_blocking(move || {
                        let result = cursor.read_some(FOLLOW_CHUNK_BYTES);
                        (cursor, result)
                    })
                    .await;
                    let (returned_cursor, result) = match outcome {
                        Ok(pair) => pair,
                        // The blocking read panicked or the runtime is
                        // shutting down: report it once and end the stream.
                        Err(join_error) => {
                            return Some((Err(ExecError::io("reading", &dir, io::Error::other(join_error))), None));
                        }
                    };
                    cursor = returned_cursor;
                    match result {
                        Ok(data) if !data.is_empty() => {
                            let next = cursor.position();
                            return Some((Ok(LogChunk { data, next }), Some(cursor)));
                        }
                        Ok(_) => tokio::time::sleep(poll_interval).await,
                        Err(error) => {
                            let path = cursor.current_path();
                            tokio::time::sleep(poll_interval).await;
                            return Some((Err(ExecError::io("reading", path, error)), Some(cursor)));
                        }
                    }
                }
            }
        })
    }

    fn cursor(&self, from: LogPosition) -> Cursor {
        Cursor {
            dir: self.dir.clone(),
            task: self.task.clone(),
            stream: self.stream,
            index: from.file_index,
            offset: from.offset,
            file: None,
        }
    }
}

/// Runs blocking file work on tokio's blocking pool.
async fn run_blocking<T: Send + 'static>(
    dir: &Path,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|error| ExecError::io("reading logs in", dir, error)),
        Err(join_error) => Err(ExecError::io("reading logs in", dir, io::Error::other(join_error))),
    }
}

fn seek_blocking(dir: &Path, task: &str, stream: LogStream, origin: LogOrigin) -> io::Result<LogPosition> {
    let mut sizes = Vec::new();
    for (index, path) in list_log_files(dir, task, stream)? {
        match fs::metadata(&path) {
            Ok(metadata) => sizes.push((index, metadata.len())),
            // Rotated away between listing and stat: it is no longer
            // retained.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    let (Some(&(first_index, _)), Some(&(last_index, last_size))) = (sizes.first(), sizes.last()) else {
        return Ok(LogPosition::START);
    };
    match origin {
        LogOrigin::Start(mut remaining) => {
            for &(index, size) in &sizes {
                if remaining < size {
                    return Ok(LogPosition { file_index: index, offset: remaining });
                }
                remaining -= size;
            }
            Ok(LogPosition { file_index: last_index, offset: last_size })
        }
        LogOrigin::End(mut remaining) => {
            for &(index, size) in sizes.iter().rev() {
                if remaining <= size {
                    return Ok(LogPosition { file_index: index, offset: size - remaining });
                }
                remaining -= size;
            }
            Ok(LogPosition { file_index: first_index, offset: 0 })
        }
    }
}

/// A blocking reader at a position, keeping the current file open so that
/// its deletion by rotation does not disturb the read.
#[derive(Debug)]
struct Cursor {
    dir: PathBuf,
    task: String,
    stream: LogStream,
    index: u64,
    offset: u64,
    file: Option<File>,
}

impl Cursor {
    fn position(&self) -> LogPosition {
        LogPosition { file_index: self.index, offset: self.offset }
    }

    fn path_of(&self, index: u64) -> PathBuf {
        self.dir.join(log_file_name(&self.task, self.stream, index))
    }

    fn current_path(&self) -> PathBuf {
        self.path_of(self.index)
    }

    /// Reads up to `max_bytes` of data available now; empty at the end.
    fn read_some(&mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        loop {
            let file = match self.file.take() {
                Some(file) => file,
                None => match File::open(self.current_path()) {
                    Ok(file) => file,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        // Rotated away (or, for the start position, never
                        // had this index): continue with the oldest later
                        // file. When there is none, the file is not written
                        // yet.
                        let later = list_log_files(&self.dir, &self.task, self.stream)?
                            .into_iter()
                            .map(|(index, _)| index)
                            .find(|index| *index > self.index);
                        match later {
                            Some(index) => {
                                self.index = index;
                                self.offset = 0;
                                continue;
                            }
                            None => return Ok(Vec::new()),
                        }
                    }
                    Err(error) => return Err(error),
                },
            };
            // Checked before reading: see the module documentation.
            let successor_exists = self.path_of(self.index + 1).exists();
            let mut buffer = vec![0; max_bytes];
            let num_read = file.read_at(&mut buffer, self.offset)?;
            self.file = Some(file);
            if num_read > 0 {
                buffer.truncate(num_read);
                self.offset += num_read as u64;
                return Ok(buffer);
            }
            if !successor_exists {
                return Ok(Vec::new());
            }
            self.index += 1;
            self.offset = 0;
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::log_rotate::{LogRotation, RotatingWriter};

    fn writer(dir: &Path, max_files: u32, max_file_bytes: u64) -> RotatingWriter {
        RotatingWriter::open(dir, "web", LogStream::Stdout, LogRotation { max_files, max_file_bytes }).unwrap()
    }

    #[tokio::test]
    async fn seek_read_and_tail_span_files() {
        let dir = tempfile::tempdir().unwrap();
        writer(dir.path(), 3, 4).write_all(b"0123456789").unwrap();
        let reader = LogReader::new(dir.path(), "web", LogStream::Stdout);
        let start = reader.seek(LogOrigin::Start(5)).await.unwrap();
        assert_eq!(start, LogPosition { file_index: 1, offset: 1 });
        let chunk = reader.read(start, 100).await.unwrap();
        assert_eq!(chunk.data, b"56789");
        assert_eq!(chunk.next, LogPosition { file_index: 2, offset: 2 });
        assert_eq!(reader.tail(7).await.unwrap().data, b"3456789");
        assert_eq!(reader.tail(100).await.unwrap().data, b"0123456789");
        assert_eq!(reader.tail(0).await.unwrap().data, b"");
        assert_eq!(reader.read(LogPosition::START, 3).await.unwrap().data, b"012");
    }

    #[tokio::test]
    async fn reading_from_a_deleted_file_continues_with_the_oldest_retained() {
        let dir = tempfile::tempdir().unwrap();
        writer(dir.path(), 2, 2).write_all(b"abcdefgh").unwrap();
        let reader = LogReader::new(dir.path(), "web", LogStream::Stdout);
        let chunk = reader.read(LogPosition { file_index: 0, offset: 1 }, 100).await.unwrap();
        assert_eq!(chunk.data, b"efgh");
    }

    #[tokio::test]
    async fn an_empty_directory_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let reader = LogReader::new(dir.path().join("missing"), "web", LogStream::Stderr);
        assert_eq!(reader.tail(10).await.unwrap(), LogChunk { data: Vec::new(), next: LogPosition::START });
    }

    #[tokio::test]
    async fn follow_sees_writes_after_it_started_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = writer(dir.path(), 100, 3);
        output.write_all(b"ab").unwrap();
        let reader = LogReader::new(dir.path(), "web", LogStream::Stdout).with_poll_interval(Duration::from_millis(5));
        let mut follow = Box::pin(reader.follow(LogPosition::START));
        let mut seen = Vec::new();
        seen.extend(follow.next().await.unwrap().unwrap().data);
        output.write_all(b"cdefghijk").unwrap();
        while seen.len() < 11 {
            seen.extend(follow.next().await.unwrap().unwrap().data);
        }
        assert_eq!(seen, b"abcdefghijk");
    }
}
