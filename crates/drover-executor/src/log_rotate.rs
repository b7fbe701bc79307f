//! Size-capped rotating output files, named as Nomad names them.
//!
//! A task's stdout goes to `<log_dir>/<task>.stdout.0`; when that file
//! reaches `max_file_bytes` the writer continues in `<task>.stdout.1`, and
//! so on, deleting the oldest files so that at most `max_files` remain.
//! The concatenation of the retained files in index order is exactly the
//! tail of the stream — which is what [`crate::LogReader`] relies on.
//! Indexes only grow: a restarted task appends to the newest file of its
//! previous run, so an operator sees one continuous stream.
//!
//! Files are cut at line ends, never inside a line, because the agent's
//! log collector follows each file on its own and would otherwise ship the
//! two halves of a straddling line as two records (or hold the first half
//! back for good). When a write does not fit in the current file, the file
//! ends after the last newline that fits and the rest goes to the next
//! file. A line that already began in the current file is finished there,
//! so a file may exceed `max_file_bytes` by less than one line. The one
//! exception: a line longer than `max_file_bytes` is split into pieces of
//! `max_file_bytes` bytes (the first piece counting what of the line was
//! already in the file), one per file — such a line cannot fit in any file.
//!
//! Writes go straight to the file (no user-space buffer), so a line the
//! task wrote is readable by the agent as soon as the shim's pump copied
//! it, typically within a millisecond.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
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

/// One of a task's two output streams (defined with the domain types, as
/// the agent protocol names it too).
pub use drover_types::LogStream;

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

/// Writes one stream into size-capped rotating files, cut at line ends.
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
    /// The bytes at the end of the current file after its last newline: a
    /// line begun and not finished yet (0 at a line start).
    open_line_len: u64,
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
        let open_line_len = unfinished_line_len(&file, file_len)?;
        let writer = RotatingWriter {
            dir: dir.to_owned(),
            task: task.to_owned(),
            stream,
            max_files: u64::from(rotation.max_files.max(1)),
            max_file_bytes,
            index,
            file,
            file_len,
            open_line_len,
        };
        writer.prune()?;
        Ok(writer)
    }

    fn open_file(dir: &Path, task: &str, stream: LogStream, index: u64) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).read(true).open(dir.join(log_file_name(task, stream, index)))
    }

    /// The index of the file currently written.
    pub fn current_index(&self) -> u64 {
        self.index
    }

    /// Appends `data`, rotating at line ends as often as needed (see the
    /// module documentation for where files are cut).
    ///
    /// On error, part of `data` may have been written.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = usize::try_from(self.max_file_bytes.saturating_sub(self.file_len)).unwrap_or(usize::MAX);
            if data.len() <= room {
                self.write_to_file(data)?;
                return Ok(());
            }
            let fitting = data.get(..room).unwrap_or(data);
            // It does not all fit: the file ends after the last line that does.
            if let Some(newline) = fitting.iter().rposition(|&byte| byte == b'\n') {
                let (lines, rest) = data.split_at(newline + 1);
                self.write_to_file(lines)?;
                self.rotate()?;
                data = rest;
                continue;
            }
            // No line ends in the room left. A line starting here goes whole
            // into the next file.
            if self.open_line_len == 0 && self.file_len > 0 {
                self.rotate()?;
                continue;
            }
            // A line begun in this file is finished here, unless it is longer
            // than a whole file: then it is split when it reaches that length.
            let line_room =
                usize::try_from(self.max_file_bytes.saturating_sub(self.open_line_len)).unwrap_or(usize::MAX);
            let line_end = data.iter().position(|&byte| byte == b'\n').map(|newline| newline + 1);
            match line_end {
                Some(line_end) if line_end <= line_room => {
                    let (line, rest) = data.split_at(line_end);
                    self.write_to_file(line)?;
                    self.rotate()?;
                    data = rest;
                }
                None if data.len() <= line_room => {
                    self.write_to_file(data)?;
                    return Ok(());
                }
                _ => {
                    let (piece, rest) = data.split_at(line_room.min(data.len()));
                    self.write_to_file(piece)?;
                    self.rotate()?;
                    data = rest;
                }
            }
        }
        Ok(())
    }

    fn write_to_file(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file_len += bytes.len() as u64;
        self.open_line_len = match bytes.iter().rposition(|&byte| byte == b'\n') {
            Some(newline) => (bytes.len() - newline - 1) as u64,
            None => self.open_line_len + bytes.len() as u64,
        };
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
        self.open_line_len = 0;
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

/// How many bytes at the end of the first `len` bytes of `file` follow its
/// last newline. Reads backwards, at most `len` bytes (less than one file).
fn unfinished_line_len(file: &File, len: u64) -> io::Result<u64> {
    let mut buffer = [0u8; 8192];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buffer.len() as u64);
        let Some(chunk) = buffer.get_mut(..(end - start) as usize) else { break };
        file.read_exact_at(chunk, start)?;
        if let Some(newline) = chunk.iter().rposition(|&byte| byte == b'\n') {
            return Ok(len - (start + newline as u64 + 1));
        }
        end = start;
    }
    Ok(len)
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

    /// Output without newlines is one line longer than a file: the only
    /// case where a line is split, at the cap.
    #[test]
    fn a_line_longer_than_a_file_is_split_at_the_cap_and_the_oldest_files_are_deleted() {
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
    fn a_file_ends_after_the_last_line_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = LogRotation { max_files: 10, max_file_bytes: 10 };
        let mut writer = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap();
        writer.write_all(b"aaa\nbbb\nccc\n").unwrap();
        writer.write_all(b"dd\neeeeeee\n").unwrap();
        assert_eq!(
            contents(dir.path(), "web"),
            vec![(0, "aaa\nbbb\n".into()), (1, "ccc\ndd\n".into()), (2, "eeeeeee\n".into())]
        );
    }

    #[test]
    fn a_line_begun_before_the_cap_is_finished_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = LogRotation { max_files: 10, max_file_bytes: 10 };
        let mut writer = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap();
        writer.write_all(b"aaaa\nbbb").unwrap();
        writer.write_all(b"bbbbb\ncc\n").unwrap();
        assert_eq!(contents(dir.path(), "web"), vec![(0, "aaaa\nbbbbbbbb\n".into()), (1, "cc\n".into())]);
    }

    #[test]
    fn reopening_knows_the_unfinished_line_of_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = LogRotation { max_files: 10, max_file_bytes: 10 };
        RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap().write_all(b"aaaa\nbbb").unwrap();
        let mut reopened = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap();
        reopened.write_all(b"bbbbb\ncc\n").unwrap();
        assert_eq!(contents(dir.path(), "web"), vec![(0, "aaaa\nbbbbbbbb\n".into()), (1, "cc\n".into())]);
    }

    /// The files of the stream in index order, as bytes.
    fn files_in_order(dir: &Path) -> Vec<Vec<u8>> {
        list_log_files(dir, "web", LogStream::Stdout)
            .unwrap()
            .into_iter()
            .map(|(_, path)| fs::read(path).unwrap())
            .collect()
    }

    /// Issue item 11: with 25,000 numbered lines of about 1 KB, the lines
    /// straddling the 10 MiB rotation were cut in two. Written as the
    /// shim's pump writes (64 KiB pipe reads that end anywhere), read back
    /// file by file as the agent's collector reads them: every line is
    /// there exactly once and whole.
    #[test]
    fn lines_straddling_the_ten_mebibyte_rotation_are_never_split_or_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, LogRotation::DEFAULT).unwrap();
        let padding = "x".repeat(993);
        let stream: Vec<u8> =
            (1..=25_000).flat_map(|number| format!("line {number:05} {padding}\n").into_bytes()).collect();
        for chunk in stream.chunks(64 * 1024) {
            writer.write_all(chunk).unwrap();
        }

        let files = files_in_order(dir.path());
        assert_eq!(files.len(), 3, "25 MB in files of 10 MiB");
        assert_eq!(files.concat(), stream, "nothing lost, nothing reordered");
        let line_bytes = stream.len() as u64 / 25_000;
        let mut seen = vec![0u32; 25_001];
        for (position, file) in files.iter().enumerate() {
            // A line begun before the cap (a pipe read ended inside it) is finished in its file.
            let max_len = LogRotation::DEFAULT.max_file_bytes + line_bytes;
            assert!(file.len() as u64 <= max_len, "file {position}: {} bytes", file.len());
            assert!(file.ends_with(b"\n"), "file {position} ends inside a line");
            for line in file.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
                let text = std::str::from_utf8(line).unwrap();
                let number: usize = text.strip_prefix("line ").and_then(|rest| rest.get(..5)).unwrap().parse().unwrap();
                assert_eq!(text, format!("line {number:05} {padding}"), "line {number} is whole");
                seen[number] += 1;
            }
        }
        assert!(seen[1..].iter().all(|&count| count == 1), "every line exactly once");
    }

    /// Lines of every length (some longer than a file), written in reads of
    /// every size, against several caps: the files are the stream, and a
    /// line that fits in a file is never split across two.
    #[test]
    fn random_lines_and_reads_never_split_a_line_that_fits_in_a_file() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next_random = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for max_file_bytes in [1u64, 2, 7, 64, 100, 1000] {
            let dir = tempfile::tempdir().unwrap();
            let rotation = LogRotation { max_files: u32::MAX, max_file_bytes };
            let mut writer = RotatingWriter::open(dir.path(), "web", LogStream::Stdout, rotation).unwrap();
            let mut stream = Vec::new();
            let mut line_ends = Vec::new();
            for number in 0..2000 {
                let mut line = format!("{number}:").into_bytes();
                line.resize(line.len() + next_random(2 * max_file_bytes) as usize, b'x');
                line.push(b'\n');
                stream.extend_from_slice(&line);
                line_ends.push(stream.len());
            }
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                let read_len = (1 + next_random(3 * max_file_bytes) as usize).min(rest.len());
                let (read, after) = rest.split_at(read_len);
                writer.write_all(read).unwrap();
                rest = after;
            }

            let files = files_in_order(dir.path());
            assert_eq!(files.concat(), stream, "cap {max_file_bytes}");
            let mut file_ends = Vec::new();
            let mut end = 0;
            for file in &files {
                assert!((file.len() as u64) < 2 * max_file_bytes, "cap {max_file_bytes}: a file of {}", file.len());
                end += file.len();
                file_ends.push(end);
            }
            let mut line_start = 0;
            for &line_end in &line_ends {
                if ((line_end - line_start) as u64) <= max_file_bytes {
                    let cut = file_ends.iter().find(|&&file_end| file_end > line_start && file_end < line_end);
                    assert_eq!(cut, None, "cap {max_file_bytes}: line at {line_start}..{line_end} split");
                }
                line_start = line_end;
            }
        }
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
