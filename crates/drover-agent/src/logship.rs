//! Log shipping: the agent's log sources, its durable spool, and what the
//! session needs to ship the spool to a server without loss.
//!
//! ```text
//!  task output files ─┐
//!  --log-file globs ──┤ SourceLine  ┌──────────┐ append+fsync ┌───────┐  read_batch   ┌─────────┐
//!  --syslog-bind ─────┼──(mpsc)───▶ │ collector│ ───────────▶ │ Spool │ ────────────▶ │ session │──Logs──▶ server
//!  --journal ─────────┘             └──────────┘              └───────┘ ◀── ack ───── └─────────┘◀─LogsAck─
//!                                       └─ then commits the sources' checkpoints
//! ```
//!
//! A line is "acknowledged" to its source (its checkpoint committed) only
//! after the spool fsynced it; the spool forgets it only after a server said
//! it indexed it. Lines sent but not acknowledged when a session ends are
//! sent again on the next one; the server drops the ones it already has by
//! `(node id, seq)`.
//!
//! Every line gets out whole, whatever its source: a partial last line is
//! sent when its task exits (the executor's `exit.json`), when its file is
//! rotated away, deleted or truncated, and after `partial_line_idle`
//! without growth (files, syslog over TCP); a line longer than
//! [`drover_collect::MAX_LINE_BYTES`] is sent in marked pieces
//! ([`drover_collect::split`]), by the file follower and syslog as they
//! read, and here for the journal.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use drover_collect::{
    Checkpoint, CheckpointStore, FileId, FilePosition, FileSourceConfig, JournalConfig, SourceConfig, SourceKind,
    SourceLine, Spool, SpoolOptions, SyslogConfig,
};
use drover_proto::session::LogLine;

/// Which logs an agent collects, besides its tasks' output (always).
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Glob patterns of files to follow (`/var/log/*.log`).
    pub files: Vec<String>,
    /// Receive syslog (UDP and TCP) on this address.
    pub syslog: Option<SocketAddr>,
    /// Read the systemd journal (where `journalctl` exists).
    pub journal: bool,
    /// The most disk the spool may use; the oldest unshipped lines are
    /// dropped (and counted) beyond it.
    pub spool_max_bytes: u64,
    /// A last line without its newline is sent as a line once its file
    /// (or syslog connection) has been quiet this long: a prompt, a writer
    /// that waits.
    pub partial_line_idle: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            files: Vec::new(),
            syslog: None,
            journal: false,
            spool_max_bytes: 256 * 1024 * 1024,
            partial_line_idle: DEFAULT_PARTIAL_LINE_IDLE,
        }
    }
}

/// How long a partial last line waits for its newline, by default.
pub const DEFAULT_PARTIAL_LINE_IDLE: Duration = Duration::from_secs(5);

/// How many lines one source channel holds before sources wait.
const CHANNEL_LINES: usize = 16 * 1024;
/// Most lines appended to the spool in one fsync.
const MAX_APPEND_LINES: usize = 8 * 1024;
/// What a spooled line takes besides its text (fields, framing), about.
const SPOOLED_LINE_OVERHEAD: usize = 256;
/// Payload bytes per `Logs` message.
pub(crate) const SHIP_BATCH_BYTES: usize = 512 * 1024;
/// Lines sent and not yet acknowledged, per session.
pub(crate) const SHIP_WINDOW_LINES: u64 = 32 * 1024;

/// One line as the spool keeps it: the shipped line and, for the last line
/// of each source in a batch, the source position after it.
#[derive(Debug, Serialize, Deserialize)]
struct SpooledLine {
    line: LogLine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<SpooledCheckpoint>,
}

/// [`Checkpoint`] in a form the spool can keep.
#[derive(Debug, Serialize, Deserialize)]
enum SpooledCheckpoint {
    File { dev: u64, inode: u64, generation: u64, offset_after: u64 },
    Journal { cursor: String },
}

impl SpooledCheckpoint {
    fn of(checkpoint: &Checkpoint) -> SpooledCheckpoint {
        match checkpoint {
            Checkpoint::File(position) => SpooledCheckpoint::File {
                dev: position.file_id.dev,
                inode: position.file_id.inode,
                generation: position.generation,
                offset_after: position.offset_after,
            },
            Checkpoint::Journal { cursor } => SpooledCheckpoint::Journal { cursor: cursor.to_string() },
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        match self {
            SpooledCheckpoint::File { dev, inode, generation, offset_after } => Checkpoint::File(FilePosition {
                file_id: FileId { dev: *dev, inode: *inode },
                generation: *generation,
                offset_after: *offset_after,
            }),
            SpooledCheckpoint::Journal { cursor } => Checkpoint::Journal { cursor: Arc::from(cursor.as_str()) },
        }
    }
}

/// The spool and its signals, shared by the collector and the session.
///
/// Exactly once, across a crash at any point: a batch is appended to the
/// spool (fsync) with the source positions it reaches, then the positions
/// are written to the checkpoint file, and only then does the batch become
/// shippable (`readable_upto`). A crash between the two writes leaves the
/// batch unshipped in the spool; the next start re-commits its positions
/// before any source reads, so no line is read twice.
#[derive(Debug)]
pub(crate) struct LogShipper {
    spool: Mutex<Spool>,
    /// The highest seq whose source positions are committed.
    readable_upto: AtomicU64,
    /// Lines were appended.
    pub(crate) appended: Notify,
}

impl LogShipper {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The highest seq a server acknowledged (0: none).
    pub(crate) fn acked_upto(&self) -> u64 {
        let stats = self.spool().stats();
        stats.acked_upto.max(stats.first_available_seq.saturating_sub(1))
    }

    /// The highest seq that may be shipped (0: none yet).
    pub(crate) fn readable_upto(&self) -> u64 {
        self.readable_upto.load(Ordering::Acquire)
    }

    /// Lines dropped because the spool was full or their records were
    /// damaged on disk, ever.
    pub(crate) fn dropped_lines(&self) -> u64 {
        self.spool().stats().dropped_lines
    }

    /// Up to [`SHIP_BATCH_BYTES`] of lines from `from_seq` on (or from the
    /// oldest line still held, if later), with the last seq read (0 when
    /// there was nothing).
    pub(crate) fn read_batch(&self, from_seq: u64) -> Result<(u64, Vec<LogLine>), String> {
        let readable_upto = self.readable_upto();
        let records = self.spool().read_from(from_seq, SHIP_BATCH_BYTES).map_err(|error| error.to_string())?;
        let last_seq = records.last().map_or(0, |(seq, _)| *seq).min(readable_upto);
        let mut lines = Vec::with_capacity(records.len());
        for (seq, bytes) in records.into_iter().filter(|(seq, _)| *seq <= readable_upto) {
            match rmp_serde::from_slice::<SpooledLine>(&bytes) {
                Ok(SpooledLine { mut line, .. }) => {
                    line.seq = seq;
                    lines.push(line);
                }
                // Skip what cannot be decoded (it would block the spool
                // forever); the seq gap is harmless.
                Err(error) => tracing::warn!(seq, %error, "undecodable line in the log spool; skipped"),
            }
        }
        Ok((last_seq, lines))
    }

    /// A server stored everything up to `upto_seq`.
    pub(crate) fn ack(self: &Arc<Self>, upto_seq: u64) {
        let shipper = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            if let Err(error) = shipper.spool().ack(upto_seq) {
                tracing::warn!(%error, "cannot record a log acknowledgement; lines will be sent again");
            }
        });
    }
}

/// Starts the sources and the collector. Task output is read from
/// `alloc_root/*/alloc/logs/`.
pub(crate) async fn start(
    config: &LogConfig,
    data_dir: &Path,
    alloc_root: &Path,
    shutdown: CancellationToken,
) -> Result<Arc<LogShipper>, String> {
    let log_dir = data_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|error| format!("cannot create {}: {error}", log_dir.display()))?;
    let spool = Spool::open(log_dir.join("spool"), config.spool_max_bytes).map_err(|error| error.to_string())?;
    let checkpoints = CheckpointStore::open(log_dir.join("checkpoints.json")).map_err(|error| error.to_string())?;
    recommit_last_batch(&spool, &checkpoints)?;
    let last_seq = spool.stats().next_seq.saturating_sub(1);
    let shipper = Arc::new(LogShipper {
        spool: Mutex::new(spool),
        readable_upto: AtomicU64::new(last_seq),
        appended: Notify::new(),
    });

    let mut task_output = FileSourceConfig::new(vec![format!("{}/*/alloc/logs/*", alloc_root.display())]);
    // Task output is all wanted, including what was written before the
    // agent (re)started.
    task_output.read_existing_from_start = true;
    task_output.partial_line_idle = config.partial_line_idle;
    task_output.writer_exit_file = Some(task_exit_file);
    let mut sources = vec![SourceConfig::File(task_output)];
    if !config.files.is_empty() {
        let mut files = FileSourceConfig::new(config.files.clone());
        files.partial_line_idle = config.partial_line_idle;
        sources.push(SourceConfig::File(files));
    }
    if let Some(address) = config.syslog {
        let mut syslog = SyslogConfig::new(address);
        syslog.partial_line_idle = config.partial_line_idle;
        sources.push(SourceConfig::Syslog(syslog));
    }
    if config.journal {
        sources.push(SourceConfig::Journal(JournalConfig::default()));
    }

    let (sender, receiver) = mpsc::channel(CHANNEL_LINES);
    for source in sources {
        let description = format!("{source:?}");
        let source = source.build(Arc::clone(&checkpoints)).await.map_err(|error| error.to_string())?;
        let (sender, shutdown) = (sender.clone(), shutdown.clone());
        tokio::spawn(async move {
            match source.run(sender, shutdown).await {
                Ok(drover_collect::SourceExit::Stopped) => {}
                Ok(drover_collect::SourceExit::NotAvailable { reason }) => {
                    tracing::info!(source = %description, %reason, "log source not available here");
                }
                Err(error) => tracing::warn!(source = %description, %error, "log source failed"),
            }
        });
    }
    drop(sender);
    // A batch fits in a spool segment, so a full spool drops the oldest
    // segments and keeps about its size of the newest lines.
    let max_batch_bytes =
        usize::try_from(SpoolOptions::new(config.spool_max_bytes).segment_bytes).unwrap_or(usize::MAX);
    let collector = Collector {
        shipper: Arc::clone(&shipper),
        checkpoints,
        alloc_root: Arc::new(PathBuf::from(alloc_root)),
        max_batch_bytes,
    };
    tokio::spawn(collector.run(receiver, shutdown));
    Ok(shipper)
}

/// Commits the source positions of the newest spooled batch (a crash may
/// have come between the spool's fsync and the checkpoint file's).
fn recommit_last_batch(spool: &Spool, checkpoints: &CheckpointStore) -> Result<(), String> {
    let stats = spool.stats();
    let from = stats.next_seq.saturating_sub(MAX_APPEND_LINES as u64).max(stats.acked_upto + 1);
    let mut any = false;
    let mut from_seq = from;
    loop {
        let records = spool.read_from(from_seq, 4 * 1024 * 1024).map_err(|error| error.to_string())?;
        let Some((last, _)) = records.last() else { break };
        from_seq = last + 1;
        for (_, bytes) in &records {
            if let Ok(SpooledLine { checkpoint: Some(checkpoint), .. }) = rmp_serde::from_slice::<SpooledLine>(bytes) {
                checkpoints.commit(&checkpoint.checkpoint());
                any = true;
            }
        }
    }
    if any {
        checkpoints.flush().map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// Moves lines from the sources into the spool, then commits the sources'
/// checkpoints.
struct Collector {
    shipper: Arc<LogShipper>,
    checkpoints: Arc<CheckpointStore>,
    alloc_root: Arc<PathBuf>,
    /// The most text one append (one fsync) takes.
    max_batch_bytes: usize,
}

impl Collector {
    /// Appends what is waiting at once, one fsync per batch; lines that
    /// arrive meanwhile make the next batch (no waiting when a line comes
    /// alone, large batches when sources are busy).
    async fn run(self, mut receiver: mpsc::Receiver<SourceLine>, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                line = receiver.recv() => match line { Some(line) => line, None => return },
            };
            let mut num_bytes = first.text.len() + SPOOLED_LINE_OVERHEAD;
            let mut batch = vec![first];
            while batch.len() < MAX_APPEND_LINES
                && num_bytes < self.max_batch_bytes
                && let Ok(line) = receiver.try_recv()
            {
                num_bytes += line.text.len() + SPOOLED_LINE_OVERHEAD;
                batch.push(line);
            }
            if !self.append(batch, &shutdown).await {
                return;
            }
            self.shipper.appended.notify_one();
        }
    }

    /// Appends `batch`, retrying until it is written; false on shutdown.
    async fn append(&self, batch: Vec<SourceLine>, shutdown: &CancellationToken) -> bool {
        let batch = Arc::new(batch);
        let mut delay = Duration::from_millis(100);
        loop {
            let (shipper, checkpoints, alloc_root, lines) = (
                Arc::clone(&self.shipper),
                Arc::clone(&self.checkpoints),
                Arc::clone(&self.alloc_root),
                Arc::clone(&batch),
            );
            let appended = tokio::task::spawn_blocking(move || append(&shipper, &checkpoints, &alloc_root, &lines))
                .await
                .unwrap_or_else(|error| Err(error.to_string()));
            match appended {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(%error, "cannot write to the log spool; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

fn append(
    shipper: &LogShipper,
    checkpoints: &CheckpointStore,
    alloc_root: &Path,
    lines: &[SourceLine],
) -> Result<(), String> {
    // Only the last position of each file (or of the journal) matters.
    let mut last_of_source: Vec<bool> = vec![false; lines.len()];
    let mut seen: HashSet<Option<FileId>> = HashSet::new();
    for (index, line) in lines.iter().enumerate().rev() {
        let key = match &line.checkpoint {
            Some(Checkpoint::File(position)) => Some(position.file_id),
            Some(Checkpoint::Journal { .. }) => None,
            None => continue,
        };
        last_of_source[index] = seen.insert(key);
    }
    let mut records = Vec::with_capacity(lines.len());
    for (line, is_last) in lines.iter().zip(last_of_source) {
        let mut shipped = to_log_line(line, alloc_root);
        // A line too long for one record (a journal entry; files and
        // syslog split as they read) becomes marked pieces, appended
        // together; the source position goes with the last.
        let text = std::mem::take(&mut shipped.text);
        let mut pieces = drover_collect::split_overlong(text, drover_collect::MAX_LINE_BYTES);
        let last_piece = pieces.pop().unwrap_or_default();
        for piece in pieces {
            let spooled = SpooledLine { line: LogLine { text: piece, ..shipped.clone() }, checkpoint: None };
            records.push(rmp_serde::to_vec_named(&spooled).map_err(|error| error.to_string())?);
        }
        let spooled = SpooledLine {
            line: LogLine { text: last_piece, ..shipped },
            checkpoint: line.checkpoint.as_ref().filter(|_| is_last).map(SpooledCheckpoint::of),
        };
        records.push(rmp_serde::to_vec_named(&spooled).map_err(|error| error.to_string())?);
    }
    // The lock covers the append only: the session reads the spool while
    // the checkpoints are flushed (lines are shipped only up to
    // `readable_upto`, set after the flush).
    let appended = shipper.spool().append(&records).map_err(|error| error.to_string())?;
    let mut any_checkpoint = false;
    for line in lines {
        if let Some(checkpoint) = &line.checkpoint {
            checkpoints.commit(checkpoint);
            any_checkpoint = true;
        }
    }
    // The batch is in the spool: never append it again. Its positions must
    // reach the disk before it may be shipped.
    while any_checkpoint && let Err(error) = checkpoints.flush() {
        tracing::warn!(%error, "cannot write the log checkpoints; retrying");
        std::thread::sleep(Duration::from_secs(1));
    }
    if let Some((_, last)) = appended {
        shipper.readable_upto.store(last, Ordering::Release);
    }
    Ok(())
}

/// What the agent knows of a line, in the shipped form.
fn to_log_line(line: &SourceLine, alloc_root: &Path) -> LogLine {
    let received = drover_types::log::unix_nanos(line.received);
    let mut shipped = LogLine {
        seq: 0,
        received,
        timestamp: None,
        source: String::new(),
        stream: line.stream.to_string(),
        host: None,
        alloc: None,
        task: None,
        level: None,
        text: line.text.clone(),
    };
    if let Some(meta) = &line.syslog {
        shipped.timestamp = meta.timestamp_micros.map(|micros| micros.saturating_mul(1000));
        shipped.level = Some(severity_name(meta.severity).to_owned());
    }
    match &line.source {
        SourceKind::File { path } => match task_output(path, alloc_root) {
            Some((alloc, task, stream)) => {
                shipped.source = "task".to_owned();
                shipped.alloc = Some(alloc);
                shipped.task = Some(task);
                shipped.stream = stream;
            }
            None => {
                shipped.source = "file".to_owned();
                shipped.stream = path.display().to_string();
            }
        },
        SourceKind::Journal => shipped.source = "journal".to_owned(),
        SourceKind::Syslog { peer, .. } => {
            shipped.source = "syslog".to_owned();
            let meta = line.syslog.as_deref();
            shipped.host = Some(
                meta.and_then(|meta| meta.hostname.clone())
                    .filter(|host| host != "-" && !host.is_empty())
                    .unwrap_or_else(|| peer.ip().to_string()),
            );
            if let Some(app) = meta.and_then(|meta| meta.app_name.clone()).filter(|app| app != "-") {
                shipped.stream = app;
            }
        }
        SourceKind::Console { name } => {
            shipped.source = "console".to_owned();
            shipped.host = Some(name.to_string());
        }
    }
    shipped
}

/// Where the executor of the task writing output file
/// `<alloc_root>/<alloc>/alloc/logs/<task>.<stream>.<n>` records the task's
/// exit: `<alloc_root>/<alloc>/<task>/exit.json`, written after the last
/// byte of output and removed when the task starts again.
fn task_exit_file(path: &Path) -> Option<PathBuf> {
    let logs = path.parent()?;
    let alloc_dir = logs.parent()?.parent()?;
    let file = path.file_name()?.to_str()?;
    let (rest, _index) = file.rsplit_once('.')?;
    let (task, _stream) = rest.rsplit_once('.')?;
    Some(alloc_dir.join(task).join("exit.json"))
}

/// `(alloc, task, stream)` of a task output file
/// `<alloc_root>/<alloc>/alloc/logs/<task>.<stdout|stderr>.<n>`.
fn task_output(path: &Path, alloc_root: &Path) -> Option<(String, String, String)> {
    let relative = path.strip_prefix(alloc_root).ok()?;
    let mut parts = relative.iter().map(|part| part.to_str());
    let alloc = parts.next()??;
    if parts.next()? != Some("alloc") || parts.next()? != Some("logs") {
        return None;
    }
    let file = parts.next()??;
    let (rest, index) = file.rsplit_once('.')?;
    index.parse::<u64>().ok()?;
    let (task, stream) = rest.rsplit_once('.')?;
    matches!(stream, "stdout" | "stderr").then(|| (alloc.to_owned(), task.to_owned(), stream.to_owned()))
}

fn severity_name(severity: u8) -> &'static str {
    match severity {
        0 => "emerg",
        1 => "alert",
        2 => "crit",
        3 => "err",
        4 => "warning",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_output_paths_name_the_allocation_task_and_stream() {
        let root = Path::new("/data/allocs");
        assert_eq!(
            task_output(Path::new("/data/allocs/a1/alloc/logs/web.app.stderr.3"), root),
            Some(("a1".to_owned(), "web.app".to_owned(), "stderr".to_owned()))
        );
        assert_eq!(task_output(Path::new("/data/allocs/a1/alloc/logs/web.stdout.x"), root), None);
        assert_eq!(task_output(Path::new("/data/allocs/a1/alloc/logs/web.log.0"), root), None);
        assert_eq!(task_output(Path::new("/var/log/syslog"), root), None);
    }

    #[test]
    fn a_task_output_file_ends_with_its_executors_exit_record() {
        assert_eq!(
            task_exit_file(Path::new("/data/allocs/a1/alloc/logs/web.app.stderr.3")),
            Some(PathBuf::from("/data/allocs/a1/web.app/exit.json"))
        );
    }
}
