//! Running one sink on a server: committed records in, engine requests
//! out, with a bounded buffer, retries with backoff, and a checkpoint so
//! that a restart (or a buffer that overflowed) reads the server's own
//! index again instead of losing lines.
//!
//! ```text
//!  start ──checkpoint?──yes──▶ catching up (index from resume − lookback) ──┐
//!    │no                                                                    ▼
//!    └──────────────────────────────────────────────────────────────▶ live (buffer) ──overflow/lag──▶ catching up
//! ```
//!
//! The checkpoint (`<dir>/<sink>.json`) holds, per origin, the highest seq
//! delivered (so nothing is sent twice after a catch-up, and nothing out of
//! order is skipped) and the resume time: when the sink saw the last line
//! it delivered. Lines seen later were committed later, so a catch-up that
//! reads event times from `resume − lookback` finds them when their event
//! time is at most `lookback` before that (docs/logs.md, "Sinks").

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use drover_react::LogSink;
use drover_types::LogRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::{Attempt, SinkCounters, build_request, read_answer};

/// Reads the server's own index: every record with an event time in
/// `[since, until)` nanoseconds, in any order.
pub type Backlog =
    Arc<dyn Fn(i64, i64) -> Pin<Box<dyn Future<Output = Result<Vec<LogRecord>, String>> + Send>> + Send + Sync>;

/// The window a catch-up reads at once: the index's partition, an hour.
const CATCH_UP_WINDOW: i64 = 3_600_000_000_000;

/// Where and how a sink keeps its place.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// The folder of the checkpoint files.
    pub checkpoint_dir: PathBuf,
    /// How far before the resume time a catch-up reads (at least the
    /// servers' `--log-max-skew`).
    pub lookback: Duration,
}

/// What a sink remembers across restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    /// Per origin, the highest seq delivered.
    marks: HashMap<String, u64>,
    /// Nanoseconds: lines seen after this have not all been delivered.
    resume: i64,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

/// A record and when the sink saw it.
struct Seen {
    record: LogRecord,
    at: i64,
}

/// Runs `sink` until `stop`.
pub async fn run(
    sink: LogSink,
    client: reqwest::Client,
    committed: broadcast::Receiver<Arc<Vec<LogRecord>>>,
    backlog: Backlog,
    settings: RunnerSettings,
    counters: Arc<SinkCounters>,
    stop: CancellationToken,
) {
    let path = settings.checkpoint_dir.join(format!("{}.json", sink.name));
    let (mut checkpoint, mut behind) = match load(&path) {
        Some(checkpoint) => (checkpoint, true),
        None => (Checkpoint { version: 1, marks: HashMap::new(), resume: now_nanos() }, false),
    };
    save(&path, &checkpoint);
    let capacity = usize::try_from(sink.buffer).unwrap_or(usize::MAX).max(1);
    let (buffer, mut buffered) = mpsc::channel::<Seen>(capacity);
    let overflowed = Arc::new(AtomicBool::new(false));
    tokio::spawn(read_committed(committed, buffer, Arc::clone(&overflowed), Arc::clone(&counters), stop.clone()));
    let mut delivery = Delivery { sink: &sink, client: &client, counters: &counters, stop: &stop };
    loop {
        if behind {
            counters.catching_up.store(1, Ordering::Relaxed);
            let started = now_nanos();
            let Some(()) = catch_up(&mut delivery, &backlog, &settings, &path, &mut checkpoint).await else { return };
            checkpoint.resume = started;
            save(&path, &checkpoint);
            counters.catching_up.store(0, Ordering::Relaxed);
            behind = false;
        }
        let first = tokio::select! {
            () = stop.cancelled() => return,
            first = buffered.recv() => first,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + sink.batch_wait.get();
        let batch_size = usize::try_from(sink.batch_size).unwrap_or(usize::MAX);
        while batch.len() < batch_size {
            match tokio::time::timeout_at(deadline, buffered.recv()).await {
                Ok(Some(seen)) => batch.push(seen),
                Ok(None) | Err(_) => break,
            }
        }
        counters.pending.store(buffered.len() as u64, Ordering::Relaxed);
        let last_seen = batch.last().map_or(checkpoint.resume, |seen| seen.at);
        let oldest_seen = batch.first().map_or(last_seen, |seen| seen.at);
        let records: Vec<LogRecord> = batch
            .into_iter()
            .map(|seen| seen.record)
            .filter(|record| checkpoint.marks.get(&record.origin).is_none_or(|mark| record.seq > *mark))
            .collect();
        let Some(()) = delivery.deliver(records.clone(), oldest_seen).await else { return };
        advance_marks(&mut checkpoint, &records);
        if overflowed.swap(false, Ordering::Relaxed) {
            // Lines after these were not buffered: keep the resume time
            // and read them from the index.
            behind = true;
        } else {
            checkpoint.resume = last_seen;
        }
        save(&path, &checkpoint);
    }
}

/// Copies committed records into the bounded buffer; what does not fit
/// (or was missed) is flagged for a catch-up.
async fn read_committed(
    mut committed: broadcast::Receiver<Arc<Vec<LogRecord>>>,
    buffer: mpsc::Sender<Seen>,
    overflowed: Arc<AtomicBool>,
    counters: Arc<SinkCounters>,
    stop: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            () = stop.cancelled() => return,
            batch = committed.recv() => batch,
        };
        match batch {
            Ok(records) => {
                let at = now_nanos();
                for record in records.iter() {
                    if buffer.try_send(Seen { record: record.clone(), at }).is_err() {
                        counters.overflowed.fetch_add(1, Ordering::Relaxed);
                        overflowed.store(true, Ordering::Relaxed);
                    }
                }
                counters
                    .pending
                    .store(buffer.max_capacity().saturating_sub(buffer.capacity()) as u64, Ordering::Relaxed);
            }
            Err(broadcast::error::RecvError::Lagged(missed_batches)) => {
                tracing::warn!(missed_batches, "a log sink fell behind the ingest; it reads the index again");
                counters.overflowed.fetch_add(missed_batches, Ordering::Relaxed);
                overflowed.store(true, Ordering::Relaxed);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Reads the index from the resume time (less the lookback) to now, hour
/// by hour, and sends what is past the marks, by `(origin, seq)`.
async fn catch_up(
    delivery: &mut Delivery<'_>,
    backlog: &Backlog,
    settings: &RunnerSettings,
    path: &Path,
    checkpoint: &mut Checkpoint,
) -> Option<()> {
    let lookback = i64::try_from(settings.lookback.as_nanos()).unwrap_or(i64::MAX);
    let since = checkpoint.resume.saturating_sub(lookback);
    let until = now_nanos().saturating_add(lookback);
    // Marks as they were: a record of a later window with a lower seq
    // than one sent from an earlier window is still sent.
    let marks = checkpoint.marks.clone();
    let mut window_start = since;
    while window_start < until {
        let window_end = window_start.saturating_add(CATCH_UP_WINDOW).min(until);
        let mut records = loop {
            let read = tokio::select! {
                () = delivery.stop.cancelled() => return None,
                read = backlog(window_start, window_end) => read,
            };
            match read {
                Ok(records) => break records,
                Err(error) => {
                    tracing::warn!(sink = %delivery.sink.name, %error, "a log sink cannot read the index; trying again");
                    delivery.pause(Duration::from_secs(1)).await?;
                }
            }
        };
        records.retain(|record| marks.get(&record.origin).is_none_or(|mark| record.seq > *mark));
        records.sort_by(|left, right| left.origin.cmp(&right.origin).then(left.seq.cmp(&right.seq)));
        records.dedup_by(|right, left| left.origin == right.origin && left.seq == right.seq);
        let batch_size = usize::try_from(delivery.sink.batch_size).unwrap_or(usize::MAX).max(1);
        for chunk in records.chunks(batch_size) {
            delivery.deliver(chunk.to_vec(), now_nanos()).await?;
            advance_marks(checkpoint, chunk);
            save(path, checkpoint);
        }
        window_start = window_end;
    }
    Some(())
}

fn advance_marks(checkpoint: &mut Checkpoint, records: &[LogRecord]) {
    for record in records {
        let mark = checkpoint.marks.entry(record.origin.clone()).or_insert(record.seq);
        *mark = (*mark).max(record.seq);
    }
}

struct Delivery<'a> {
    sink: &'a LogSink,
    client: &'a reqwest::Client,
    counters: &'a SinkCounters,
    stop: &'a CancellationToken,
}

impl Delivery<'_> {
    /// Sends `records` until each is stored or refused for good; `None`
    /// when stopped first.
    async fn deliver(&mut self, mut records: Vec<LogRecord>, seen_at: i64) -> Option<()> {
        let mut backoff = Backoff::new(self.sink.max_backoff.get());
        while !records.is_empty() {
            let lag = (now_nanos() - seen_at).max(0) / 1_000_000;
            self.counters.lag_millis.store(lag, Ordering::Relaxed);
            let (attempt, retry_after) = self.attempt(&records).await;
            let (failed, reason) = match attempt {
                Attempt::Done { delivered, rejected } => {
                    self.settle(delivered, &rejected);
                    break;
                }
                Attempt::Partial { failed, rejected, reason } => {
                    self.settle(records.len() - failed.len() - rejected.len(), &rejected);
                    (failed, reason)
                }
                Attempt::Retry { failed, reason } => (failed, reason),
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = backoff.next_wait(retry_after);
            tracing::warn!(
                sink = %self.sink.name,
                lines = failed.len(),
                %reason,
                wait = ?wait,
                "a log sink's engine did not take every line; sending them again"
            );
            records = failed.into_iter().filter_map(|index| records.get(index).cloned()).collect();
            self.pause(wait).await?;
        }
        self.counters.lag_millis.store(0, Ordering::Relaxed);
        Some(())
    }

    fn settle(&self, delivered: usize, rejected: &[String]) {
        self.counters.delivered.fetch_add(delivered as u64, Ordering::Relaxed);
        if let Some(reason) = rejected.first() {
            self.counters.dropped.fetch_add(rejected.len() as u64, Ordering::Relaxed);
            tracing::warn!(sink = %self.sink.name, lines = rejected.len(), %reason, "a log sink's engine refused lines; they are dropped");
        }
    }

    /// One request; a transport error counts as a retry of everything.
    async fn attempt(&self, records: &[LogRecord]) -> (Attempt, Option<Duration>) {
        let request = build_request(self.sink, records);
        let mut builder = self.client.post(&request.url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let everything = || (0..records.len()).collect();
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return (Attempt::Retry { failed: everything(), reason: error.to_string() }, None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match response.text().await {
            Ok(body) => (read_answer(self.sink, status, &body, records.len()), retry_after),
            Err(error) => (Attempt::Retry { failed: everything(), reason: error.to_string() }, retry_after),
        }
    }

    async fn pause(&self, wait: Duration) -> Option<()> {
        tokio::select! {
            () = self.stop.cancelled() => None,
            () = tokio::time::sleep(wait) => Some(()),
        }
    }
}

fn load(path: &Path) -> Option<Checkpoint> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(checkpoint) => Some(checkpoint),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "a log sink's checkpoint is damaged; the sink starts from now");
            None
        }
    }
}

/// Writes the checkpoint (a temporary file renamed over the old one).
fn save(path: &Path, checkpoint: &Checkpoint) {
    let write = || -> std::io::Result<()> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_vec(checkpoint).unwrap_or_default())?;
        std::fs::rename(&temporary, path)
    };
    if let Err(error) = write() {
        tracing::warn!(path = %path.display(), %error, "cannot write a log sink's checkpoint");
    }
}
