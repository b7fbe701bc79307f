//! Following log files that match globs, across rotations and restarts.
//!
//! Every followed file is read to its end as soon as inotify reports a
//! change in its directory (or in a glob's fixed leading directory), and at least every `poll_interval` (where inotify
//! is unavailable or its events overflow, this is the only way); every
//! `rescan_interval` — or at once when a file is created or renamed in a
//! watched directory — the globs are expanded again. A file is known by its
//! identity (device, inode), not its path:
//!
//! ```text
//!  first seen ──▶ following ──(path now names another file, or is gone)──▶ rotated
//!      │  start: checkpoint offset,        │ size < offset: copy-truncate,       │ read to the end, keep
//!      │  else end (existed at start),     │ restart at 0, generation + 1        │ reading for rotate_wait,
//!      │  else 0 (created later)           ▼                                     ▼ then flush the partial
//!                                                                                  line and forget it
//! ```
//!
//! Lines end at `\n` (a trailing `\r` is dropped); a partial last line waits
//! for its newline, except when the file has not grown for
//! `partial_line_idle` (a prompt, a writer that waits), when its writer
//! exited (`writer_exit_file`: a task that ended with `printf "fatal: …"`
//! is sent as soon as its executor recorded the exit, which it does after
//! the last byte of output), in a rotated or deleted file at the end of
//! `rotate_wait`, when the file is truncated (what was read of it is sent
//! before reading it again from the start), and
//! in a file rotated by index (`ends_at_next_index`): once `<name>.<N+1>`
//! exists, `<name>.<N>` is complete, and its last line is sent when read to
//! the end (drover's executor finishes a file before creating the next, so
//! a successor seen before the read means the read saw all of the file).
//! Lines longer than `max_line_bytes` are split into pieces marked as
//! [`crate::split`] describes. Each line carries the
//! [`FilePosition`] just after it; the follower registers files in the
//! [`CheckpointStore`] but never advances it.
//!
//! Known limits of reading after the fact: lines written between a copy and the truncate of
//! copy-truncate rotation are lost, and a truncation followed by regrowth
//! beyond our offset within one poll is not seen. An inode reused by a new file
//! while the agent was down resumes at the old offset if the new file is larger.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::os::fd::AsFd;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::checkpoint::{Checkpoint, CheckpointStore, FileId, FilePosition};
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::{LineSender, Source, SourceExit, SourceFuture, SourceKind, SourceLine};

/// Files created or renamed are looked for this soon, but not more often
/// (a busy directory must not make the follower expand its globs constantly).
const MIN_RESCAN_GAP: Duration = Duration::from_millis(20);

/// Reads of pending inotify events per wake, at most (4 KiB each).
const MAX_EVENT_READS: usize = 64;

/// How often a follower waiting for changes looks at its cancellation.
const CANCEL_CHECK: Duration = Duration::from_millis(500);

/// At most this much is read from one file per poll, so one busy file cannot starve the others.
const READ_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// The configuration of a file source.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// Glob patterns of the files to follow: `*`, `?` and `[...]` per path component.
    pub include: Vec<String>,
    /// Read files that already exist when the agent starts (and have no
    /// checkpoint) from their beginning instead of their end.
    pub read_existing_from_start: bool,
    /// How often followed files are read.
    pub poll_interval: Duration,
    /// How often the globs are expanded to find new and rotated files.
    pub rescan_interval: Duration,
    /// Longer lines are split into pieces of this many bytes.
    pub max_line_bytes: usize,
    /// How long a rotated-away file is still read after it was noticed.
    pub rotate_wait: Duration,
    /// A file named `<name>.<N>` is complete once `<name>.<N+1>` exists, as
    /// with the task output files of drover's executor (rotated by index,
    /// never renamed): its unfinished last line is then sent instead of
    /// waiting for a newline that will never come. Files rotated by renaming
    /// are followed by identity and keep the name they were first seen under,
    /// so this only concerns files first seen with a numbered name.
    pub ends_at_next_index: bool,
    /// A partial last line is sent as a line once the file has not grown
    /// for this long: the writer exited or waits (text it adds later to
    /// the same line becomes a line of its own).
    pub partial_line_idle: Duration,
    /// The file whose existence says that the writer of a followed file
    /// exited (drover's executor writes `<task dir>/exit.json` after the
    /// last byte of output): its partial last line is then sent at once
    /// when read to the end.
    pub writer_exit_file: Option<fn(&Path) -> Option<PathBuf>>,
}

impl FileSourceConfig {
    /// Follows `include` with the defaults: poll every 250 ms, rescan every second,
    /// split lines at [`crate::MAX_LINE_BYTES`] (64 KiB), read rotated files for 5 more seconds, a numbered
    /// file complete once its successor exists, a partial line sent after 5 s
    /// without growth.
    pub fn new(include: Vec<String>) -> FileSourceConfig {
        FileSourceConfig {
            include,
            read_existing_from_start: false,
            poll_interval: Duration::from_millis(250),
            rescan_interval: Duration::from_secs(1),
            max_line_bytes: crate::MAX_LINE_BYTES,
            rotate_wait: Duration::from_secs(5),
            ends_at_next_index: true,
            partial_line_idle: Duration::from_secs(5),
            writer_exit_file: None,
        }
    }
}

/// The file source: follows every file matching the configured globs.
#[derive(Debug)]
pub struct FileFollower {
    config: FileSourceConfig,
    checkpoints: Arc<CheckpointStore>,
}

impl FileFollower {
    pub fn new(config: FileSourceConfig, checkpoints: Arc<CheckpointStore>) -> FileFollower {
        FileFollower { config, checkpoints }
    }

    /// Follows the files until `cancel` fires or `sink` is closed. The reading
    /// runs on a blocking thread.
    pub async fn run(self, sink: LineSender, cancel: CancellationToken) -> Result<SourceExit> {
        let globs = self.config.include.iter().map(|pattern| Glob::new(pattern)).collect::<Result<Vec<_>>>()?;
        let mut state = FollowerState {
            config: self.config,
            globs,
            checkpoints: self.checkpoints,
            tracked: Vec::new(),
            is_first_scan: true,
            last_scan: None,
            read_buffer: vec![0; 64 * 1024],
            stream: Arc::from("file"),
            changes: Changes::new(),
        };
        tokio::task::spawn_blocking(move || state.run_blocking(&sink, &cancel))
            .await
            .map_err(|err| Error::TaskFailed { what: "file follower", reason: err.to_string() })?
    }
}

impl Source for FileFollower {
    fn run(self: Box<Self>, sink: LineSender, cancel: CancellationToken) -> SourceFuture {
        Box::pin(FileFollower::run(*self, sink, cancel))
    }
}

#[derive(Debug)]
struct Tracked {
    source: SourceKind,
    file_id: FileId,
    file: File,
    generation: u64,
    /// The file offset of `pending[0]`.
    pending_offset: u64,
    /// Bytes read but not yet emitted: the start of a line without its newline.
    pending: Vec<u8>,
    /// When we noticed that no followed path names this file any more.
    rotated_at: Option<Instant>,
    /// `<name>.<N+1>` for a file named `<name>.<N>` (with `ends_at_next_index`).
    successor: Option<PathBuf>,
    /// The successor was seen: the file is complete.
    is_complete: bool,
    /// When bytes were last read from the file.
    grew_at: Instant,
    /// Where the writer records its exit (`writer_exit_file`).
    exit_file: Option<PathBuf>,
    /// The last piece sent was cut at `max_line_bytes`: the next one
    /// continues its line.
    is_continuing: bool,
}

impl Tracked {
    fn read_offset(&self) -> u64 {
        self.pending_offset + self.pending.len() as u64
    }
}

#[derive(Debug)]
struct FollowerState {
    config: FileSourceConfig,
    globs: Vec<Glob>,
    checkpoints: Arc<CheckpointStore>,
    /// Rotated files first, so their last lines come before those of their successors.
    tracked: Vec<Tracked>,
    is_first_scan: bool,
    last_scan: Option<Instant>,
    read_buffer: Vec<u8>,
    stream: Arc<str>,
    changes: Changes,
}

/// What wakes the follower between polls: inotify watches on the
/// directories of the followed files.
struct Changes {
    inotify: Option<Inotify>,
    /// The watched directories.
    watched: HashSet<PathBuf>,
    /// The same, by watch.
    by_watch: HashMap<WatchDescriptor, PathBuf>,
    /// Directories that could not be watched (a limit, permissions): tried
    /// again after the next rescan, polled meanwhile.
    failed: HashSet<PathBuf>,
}

/// Something in a watched directory was written.
const WRITTEN: AddWatchFlags = AddWatchFlags::IN_MODIFY;
/// A file appeared in or left a watched directory: rotation or a new file.
const RENAMED: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE);

impl std::fmt::Debug for Changes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Changes")
            .field("inotify", &self.inotify.is_some())
            .field("watched", &self.watched)
            .finish()
    }
}

/// What [`Changes::wait`] saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// Files may have been created, renamed or deleted: rescan the globs.
    renamed: bool,
}

impl Changes {
    fn new() -> Changes {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .inspect_err(|err| warn!(error = %err, "inotify unavailable: followed files are polled only"))
            .ok();
        Changes { inotify, watched: HashSet::new(), by_watch: HashMap::new(), failed: HashSet::new() }
    }

    /// Watches `directory` (once).
    fn watch(&mut self, directory: &Path) {
        let Some(inotify) = &self.inotify else { return };
        if self.watched.contains(directory) || self.failed.contains(directory) {
            return;
        }
        match inotify.add_watch(directory, WRITTEN | RENAMED) {
            Ok(watch) => {
                self.watched.insert(directory.to_path_buf());
                self.by_watch.insert(watch, directory.to_path_buf());
            }
            Err(err) => {
                debug!(directory = %directory.display(), error = %err, "cannot watch directory; polling it");
                self.failed.insert(directory.to_path_buf());
            }
        }
    }

    /// Waits until a watched directory changes, `timeout` passes or
    /// `cancel` fires (noticed within [`CANCEL_CHECK`]).
    fn wait(&mut self, timeout: Duration, cancel: &CancellationToken) -> Seen {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || cancel.is_cancelled() {
                return Seen::default();
            }
            let slice = left.min(CANCEL_CHECK);
            let Some(inotify) = &self.inotify else {
                std::thread::sleep(slice);
                continue;
            };
            let millis = u16::try_from(slice.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => continue,
                Ok(_) => break,
                Err(err) => {
                    debug!(error = %err, "inotify poll failed");
                    std::thread::sleep(slice);
                }
            }
        }
        let Some(inotify) = &self.inotify else { return Seen::default() };
        let mut seen = Seen::default();
        // A bounded drain: in a very busy directory, events keep coming.
        for _ in 0..MAX_EVENT_READS {
            let Ok(events) = inotify.read_events() else { break };
            if events.is_empty() {
                break;
            }
            for event in &events {
                // A watched directory went away: watch it again if it comes back.
                if event.mask.contains(AddWatchFlags::IN_IGNORED)
                    && let Some(directory) = self.by_watch.remove(&event.wd)
                {
                    self.watched.remove(&directory);
                }
                seen.renamed |=
                    event.mask.intersects(RENAMED | AddWatchFlags::IN_Q_OVERFLOW | AddWatchFlags::IN_IGNORED);
            }
        }
        seen
    }
}

enum Sent {
    Ok,
    Stop,
}

impl FollowerState {
    fn run_blocking(&mut self, sink: &LineSender, cancel: &CancellationToken) -> Result<SourceExit> {
        let mut lines = Vec::new();
        // A file was created or renamed in a watched directory.
        let mut rescan_soon = false;
        loop {
            if cancel.is_cancelled() || sink.is_closed() {
                return Ok(SourceExit::Stopped);
            }
            let is_scan_due = self.last_scan.is_none_or(|last| {
                last.elapsed() >= self.config.rescan_interval || (rescan_soon && last.elapsed() >= MIN_RESCAN_GAP)
            });
            if is_scan_due {
                self.scan();
                self.last_scan = Some(Instant::now());
                rescan_soon = false;
                self.changes.failed.clear();
            }
            for glob in &self.globs {
                if glob.base().is_dir() {
                    self.changes.watch(glob.base());
                }
            }
            for tracked in &self.tracked {
                if let SourceKind::File { path } = &tracked.source
                    && let Some(directory) = path.parent()
                {
                    self.changes.watch(directory);
                }
            }
            let mut index = 0;
            while index < self.tracked.len() {
                let is_done = self.read_file(index, &mut lines);
                for line in lines.drain(..) {
                    if let Sent::Stop = send_blocking(sink, cancel, line) {
                        return Ok(SourceExit::Stopped);
                    }
                }
                if is_done {
                    let tracked = self.tracked.remove(index);
                    debug!(file = ?tracked.source, "stopped following rotated file");
                    self.checkpoints.forget_file(tracked.file_id);
                } else {
                    index += 1;
                }
            }
            let timeout =
                if rescan_soon { self.config.poll_interval.min(MIN_RESCAN_GAP) } else { self.config.poll_interval };
            rescan_soon |= self.changes.wait(timeout, cancel).renamed;
        }
    }

    /// Expands the globs, starts following new files and marks rotated ones.
    fn scan(&mut self) {
        let mut seen: HashMap<FileId, PathBuf> = HashMap::new();
        for glob in &self.globs {
            for path in glob.expand() {
                if let Ok(metadata) = std::fs::metadata(&path) {
                    seen.entry(FileId { dev: metadata.dev(), inode: metadata.ino() }).or_insert(path);
                }
            }
        }
        let mut is_store_changed = false;
        let now = Instant::now();
        for tracked in &mut self.tracked {
            let is_seen = seen.contains_key(&tracked.file_id);
            if !is_seen && tracked.rotated_at.is_none() {
                debug!(file = ?tracked.source, "file rotated away");
                tracked.rotated_at = Some(now);
            } else if is_seen {
                tracked.rotated_at = None;
            }
        }
        let tracked_ids: HashSet<FileId> = self.tracked.iter().map(|tracked| tracked.file_id).collect();
        let mut new_ids: Vec<(&FileId, &PathBuf)> = seen.iter().filter(|(id, _)| !tracked_ids.contains(id)).collect();
        new_ids.sort_by(|left, right| left.1.cmp(right.1));
        for (&file_id, path) in new_ids {
            match self.start_following(file_id, path) {
                Ok(Some(tracked)) => {
                    self.tracked.push(tracked);
                    is_store_changed = true;
                }
                Ok(None) => {}
                Err(err) => warn!(path = %path.display(), error = %err, "cannot follow file"),
            }
        }
        if self.is_first_scan {
            // Entries of our files that are gone: nothing will ever resume there.
            let globs = &self.globs;
            self.checkpoints.retain_files(|entry| {
                seen.contains_key(&entry.file_id) || !globs.iter().any(|glob| glob.matches(&entry.path))
            });
            self.is_first_scan = false;
            is_store_changed = true;
        }
        self.tracked.sort_by_key(|tracked| tracked.rotated_at.is_none());
        if is_store_changed && let Err(err) = self.checkpoints.flush() {
            warn!(error = %err, "cannot write the file checkpoints");
        }
    }

    fn start_following(&self, file_id: FileId, path: &Path) -> Result<Option<Tracked>> {
        let mut file = File::open(path).map_err(Error::io("open", path))?;
        let metadata = file.metadata().map_err(Error::io("stat", path))?;
        if (FileId { dev: metadata.dev(), inode: metadata.ino() }) != file_id {
            // Replaced between the scan and the open: the next scan sees the new one.
            return Ok(None);
        }
        let size = metadata.len();
        let (generation, offset) = match self.checkpoints.file(file_id) {
            Some(entry) if entry.offset <= size => (entry.generation, entry.offset),
            Some(entry) => (entry.generation + 1, 0),
            None if self.is_first_scan && !self.config.read_existing_from_start => (0, size),
            None => (0, 0),
        };
        file.seek(SeekFrom::Start(offset)).map_err(Error::io("seek", path))?;
        self.checkpoints.track_file(file_id, path, generation, offset);
        debug!(path = %path.display(), offset, "following file");
        Ok(Some(Tracked {
            source: SourceKind::File { path: Arc::from(path) },
            file_id,
            file,
            generation,
            pending_offset: offset,
            pending: Vec::new(),
            rotated_at: None,
            successor: if self.config.ends_at_next_index { next_index_path(path) } else { None },
            is_complete: false,
            grew_at: Instant::now(),
            exit_file: self.config.writer_exit_file.and_then(|exit_file_of| exit_file_of(path)),
            is_continuing: false,
        }))
    }

    /// Reads what is new in one file into `lines`. Returns true when the file
    /// is rotated away, fully read and its grace period is over.
    fn read_file(&mut self, index: usize, lines: &mut Vec<SourceLine>) -> bool {
        let max_line_bytes = self.config.max_line_bytes.max(1);
        let rotate_wait = self.config.rotate_wait;
        let partial_line_idle = self.config.partial_line_idle;
        let stream = &self.stream;
        let read_buffer = &mut self.read_buffer;
        let Some(tracked) = self.tracked.get_mut(index) else { return true };
        match tracked.file.metadata() {
            Ok(metadata) if metadata.len() < tracked.read_offset() => {
                warn!(file = ?tracked.source, size = metadata.len(), offset = tracked.read_offset(), "file truncated, reading it again from the start");
                // What was read of the old contents is a line of its own.
                split_lines(tracked, stream, max_line_bytes, true, lines);
                if tracked.file.seek(SeekFrom::Start(0)).is_err() {
                    return true;
                }
                tracked.generation += 1;
                tracked.pending.clear();
                tracked.pending_offset = 0;
            }
            Ok(_) => {}
            Err(err) => {
                warn!(file = ?tracked.source, error = %err, "cannot stat followed file");
                return true;
            }
        }
        // Checked before reading: see the module documentation.
        if !tracked.is_complete && tracked.successor.as_deref().is_some_and(Path::exists) {
            debug!(file = ?tracked.source, "file complete: its successor exists");
            tracked.is_complete = true;
        }
        // Checked before reading, like the successor: the exit is recorded
        // after the last byte of output.
        let has_writer_exited = tracked.exit_file.as_deref().is_some_and(Path::exists);
        let mut num_read = 0usize;
        let mut is_at_end = false;
        while num_read < READ_BUDGET_BYTES {
            let count = match tracked.file.read(read_buffer) {
                Ok(0) => {
                    is_at_end = true;
                    break;
                }
                Ok(count) => count,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    warn!(file = ?tracked.source, error = %err, "cannot read followed file");
                    return true;
                }
            };
            num_read += count;
            tracked.pending.extend_from_slice(&read_buffer[..count]);
            split_lines(tracked, stream, max_line_bytes, false, lines);
        }
        if num_read > 0 {
            tracked.grew_at = Instant::now();
        }
        let is_done = is_at_end && tracked.rotated_at.is_some_and(|rotated_at| rotated_at.elapsed() >= rotate_wait);
        let is_idle = is_at_end && tracked.grew_at.elapsed() >= partial_line_idle;
        let is_final = is_at_end && (tracked.is_complete || has_writer_exited);
        if is_done || is_final || (is_idle && !tracked.pending.is_empty()) {
            split_lines(tracked, stream, max_line_bytes, true, lines);
        }
        is_done
    }
}

/// `<name>.<N+1>` for a path named `<name>.<N>`.
fn next_index_path(path: &Path) -> Option<PathBuf> {
    let file_name = path.file_name()?.to_str()?;
    let (name, index) = file_name.rsplit_once('.')?;
    if name.is_empty() || index.is_empty() || !index.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let next_index = index.parse::<u64>().ok()?.checked_add(1)?;
    Some(path.with_file_name(format!("{name}.{next_index}")))
}

/// Moves the complete lines of `tracked.pending` into `lines`; with
/// `flush_partial`, also the incomplete last one.
fn split_lines(
    tracked: &mut Tracked,
    stream: &Arc<str>,
    max_line_bytes: usize,
    flush_partial: bool,
    lines: &mut Vec<SourceLine>,
) {
    let received = SystemTime::now();
    let mut consumed = 0usize;
    loop {
        let rest = &tracked.pending[consumed..];
        let (line_len, used, continues) = match rest.iter().take(max_line_bytes + 1).position(|&byte| byte == b'\n') {
            Some(newline) if newline <= max_line_bytes => (newline, newline + 1, false),
            _ if rest.len() > max_line_bytes => {
                let cut = utf8_cut(&rest[..max_line_bytes]);
                (cut, cut, true)
            }
            _ if flush_partial && !rest.is_empty() => (rest.len(), rest.len(), false),
            _ => break,
        };
        let mut text_bytes = &rest[..line_len];
        if let Some(without_cr) = text_bytes.strip_suffix(b"\r") {
            text_bytes = without_cr;
        }
        let text = String::from_utf8_lossy(text_bytes).into_owned();
        let text = crate::split::mark_piece(text, tracked.is_continuing, continues);
        tracked.is_continuing = continues;
        consumed += used;
        lines.push(SourceLine {
            source: tracked.source.clone(),
            stream: stream.clone(),
            received,
            text,
            syslog: None,
            checkpoint: Some(Checkpoint::File(FilePosition {
                file_id: tracked.file_id,
                generation: tracked.generation,
                offset_after: tracked.pending_offset + consumed as u64,
            })),
        });
    }
    tracked.pending.drain(..consumed);
    tracked.pending_offset += consumed as u64;
}

use crate::split::utf8_cut;

/// Sends from a blocking thread without ignoring cancellation while the channel is full.
fn send_blocking(sink: &LineSender, cancel: &CancellationToken, line: SourceLine) -> Sent {
    let mut line = line;
    loop {
        match sink.try_send(line) {
            Ok(()) => return Sent::Ok,
            Err(TrySendError::Closed(_)) => return Sent::Stop,
            Err(TrySendError::Full(returned)) => {
                if cancel.is_cancelled() {
                    return Sent::Stop;
                }
                line = returned;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked_for(bytes: &[u8]) -> Tracked {
        let file = tempfile::tempfile().unwrap();
        Tracked {
            source: SourceKind::File { path: Arc::from(Path::new("/x.log")) },
            file_id: FileId { dev: 1, inode: 2 },
            file,
            generation: 0,
            pending_offset: 100,
            pending: bytes.to_vec(),
            rotated_at: None,
            successor: None,
            is_complete: false,
            grew_at: Instant::now(),
            exit_file: None,
            is_continuing: false,
        }
    }

    #[test]
    fn the_next_index_of_a_numbered_file() {
        let next = |path: &str| next_index_path(Path::new(path)).map(|next_path| next_path.display().to_string());
        assert_eq!(next("/a/logs/web.stdout.0"), Some("/a/logs/web.stdout.1".to_owned()));
        assert_eq!(next("/a/logs/web.stderr.99"), Some("/a/logs/web.stderr.100".to_owned()));
        assert_eq!(next("/var/log/app.log"), None);
        assert_eq!(next("/var/log/app."), None);
        assert_eq!(next("/var/log/.7"), None);
        assert_eq!(next("/var/log/app.1x"), None);
    }

    fn split(bytes: &[u8], max: usize, flush: bool) -> (Vec<(String, u64)>, Tracked) {
        let mut tracked = tracked_for(bytes);
        let mut lines = Vec::new();
        split_lines(&mut tracked, &Arc::from("file"), max, flush, &mut lines);
        let texts = lines
            .into_iter()
            .map(|line| match line.checkpoint {
                Some(Checkpoint::File(position)) => (line.text, position.offset_after),
                other => panic!("unexpected checkpoint {other:?}"),
            })
            .collect();
        (texts, tracked)
    }

    #[test]
    fn splits_complete_lines_and_keeps_the_partial_one() {
        let (lines, tracked) = split(b"one\r\ntwo\n\nthr", 100, false);
        assert_eq!(lines, vec![("one".into(), 105), ("two".into(), 109), (String::new(), 110)]);
        assert_eq!(tracked.pending, b"thr");
        assert_eq!(tracked.pending_offset, 110);
        let (flushed, _) = split(b"thr", 100, true);
        assert_eq!(flushed, vec![("thr".into(), 103)]);
    }

    #[test]
    fn splits_long_lines_and_replaces_invalid_utf8() {
        let (lines, tracked) = split(b"abcdefgh\nxy", 3, false);
        let texts: Vec<&str> = lines.iter().map(|(text, _)| text.as_str()).collect();
        let (continues, continued) = (crate::CONTINUES_MARKER, crate::CONTINUED_MARKER);
        assert_eq!(
            texts,
            vec![format!("abc{continues}"), format!("{continued}def{continues}"), format!("{continued}gh")]
        );
        assert_eq!(tracked.pending, b"xy");
        let (invalid, _) = split(b"a\xffb\n", 100, false);
        assert_eq!(invalid[0].0, "a\u{fffd}b");
        // A two-byte character is not cut in half.
        let (accented, _) = split("aé\n".as_bytes(), 2, false);
        let accented: Vec<&str> = accented.iter().map(|(text, _)| text.as_str()).collect();
        assert_eq!(accented, vec![format!("a{}", crate::CONTINUES_MARKER), format!("{}é", crate::CONTINUED_MARKER)]);
    }
}
