//! Centralised logs on a server: the time-partitioned index of the lines
//! its agents ship (and of syslog received by the server itself), and the
//! queries that fan out to every server.
//!
//! ```text
//!  agent ─Logs{lines}─▶ on_agent_logs ─IngestJob─▶ ingest loop ──▶ LogStore (tantivy, one per server)
//!     ◀──LogsAck{upto}─────────────────────────────── (after the commit)  └─▶ live (tail -f, hammers:
//!                                                                              on arrival, before the commit)
//!                                                                           └─▶ committed (log sinks:
//!                                                                              after the commit)
//!
//!  GET /v1/logs/search ─▶ this server's store  ┐
//!                      ─▶ every other server ──┴─ merge (newest first, de-duplicated by (origin, seq))
//!
//!  GET /v1/logs/export ─▶ histogram by hour ─▶ per non-empty hour, oldest first: every page of the
//!                         search, sorted by (origin, seq) ─▶ newline-delimited records
//!  POST /v1/logs/import ─▶ event time settled (or trusted) ─▶ sorted by (origin, seq) ─▶ LogStore
//! ```
//!
//! An export comes out hour by hour (the store's partitions), each hour's
//! records by `(origin, seq)`: imported in that order, with their times
//! kept, every record reaches its partition after the lower seqs of its
//! origin, so the store's `(origin, seq)` de-duplication (a high-water mark
//! per origin and partition) stores each record once, however often the
//! file is imported.
//!
//! Each server indexes what its own agents send; a query asks all of them.
//! A server that does not answer makes the answer incomplete, and the answer
//! says so (`unreachable`): its agents' lines are not lost (they are on its
//! disk) but cannot be seen until it is back.
//!
//! Log data never keeps the control plane down. A damaged hourly partition
//! is moved aside by the store (at start, or once a search found it
//! damaged) and the others are served; an index that cannot be opened at
//! all (its `store.json` damaged) leaves the server running without one:
//! agents' lines then wait in their spools, unacknowledged. Both are said
//! by [`Server::log_index_problems`] (for `drover server health`) and in
//! the log. Internal failures of a query reach the API as an error id
//! only; the details are in this server's log under that id.

use drover_proto::paths;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot};

use drover_logs::{Cursor, Filter, LogRecord, LogStore, Retention, SearchRequest};
use drover_proto::api::{
    LogBucket, LogCount, LogCountBy, LogCountResponse, LogHistogramResponse, LogImportRequest, LogImportResponse,
    LogInterval, LogPage, LogQuery, LogSearchResponse,
};
use drover_proto::session::{LogLine, ServerMessage};
use drover_state::{Command, State};
use drover_types::{AllocId, CodedError, DurationSpec, Node};

use crate::Result;
use crate::server::Server;
use crate::sessions::AgentSession;

/// Log settings of a server.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// What the index keeps.
    pub retention: Retention,
    /// Receive syslog (UDP and TCP) on this address.
    pub syslog: Option<SocketAddr>,
    /// The time a line claims is its event time only within this of when
    /// it was received (`drover_logs::record::settle_event_time`).
    pub max_skew: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { retention: Retention::default(), syslog: None, max_skew: DEFAULT_LOG_MAX_SKEW }
    }
}

/// `--log-max-skew` by default: 15 minutes.
pub const DEFAULT_LOG_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Default records per search page.
const DEFAULT_LIMIT: usize = 100;
/// Largest page.
const MAX_LIMIT: usize = 10_000;
/// Records ingested in one commit, at most.
const MAX_INGEST_RECORDS: usize = 50_000;
/// How long the ingest waits for more lines before a commit, at most.
const INGEST_GATHER: Duration = Duration::from_millis(200);
/// A commit happens as soon as no more lines arrived for this long: a
/// quiet fleet's line is searchable (and triggers hammers) at once, a busy
/// one still commits in large batches.
const INGEST_IDLE: Duration = Duration::from_millis(20);
/// The window an export gathers and sorts at once: the store's partition.
const EXPORT_WINDOW_NANOS: i64 = 3_600_000_000_000;
/// Records per search page of an export.
const EXPORT_PAGE: usize = 10_000;
/// Records in one import request, at most.
pub const MAX_IMPORT_RECORDS: usize = 50_000;
/// How long a fan-out waits for another server.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// How often settled partitions are looked for.
const COMPACTION_EVERY: Duration = Duration::from_secs(30);
/// A partition is compacted (merged into one segment) once its hour has
/// been over and nothing was added to it for this long.
const COMPACTION_SETTLE: Duration = Duration::from_secs(120);
/// Live lines buffered per `tail -f` reader before it misses some.
const LIVE_BUFFER: usize = 16 * 1024;

struct IngestJob {
    records: Vec<LogRecord>,
    done: Option<oneshot::Sender<std::result::Result<(), String>>>,
}

/// The log index of one server.
pub(crate) struct LogService {
    /// `Err`: the index could not be opened, and why; the server runs
    /// without one.
    store: std::result::Result<Arc<RwLock<LogStore>>, String>,
    ingest: mpsc::Sender<IngestJob>,
    ingest_jobs: std::sync::Mutex<Option<mpsc::Receiver<IngestJob>>>,
    live: broadcast::Sender<Arc<LogRecord>>,
    /// Each commit's records, once durable: what log sinks send.
    pub(crate) committed: broadcast::Sender<Arc<Vec<LogRecord>>>,
    /// Where log sinks keep their checkpoints (`DATA_DIR/log-sinks`).
    pub(crate) sink_dir: std::path::PathBuf,
    /// The figures of the running log sinks, for `/v1/metrics`.
    pub(crate) sinks: crate::sinks::RunningSinks,
    settings: LogSettings,
}

impl LogService {
    /// Opens (or creates) the index in `dir`. Never fails: an index that
    /// cannot be opened leaves the server without one (see
    /// [`Server::log_index_problems`]), and a damaged partition costs only
    /// its hour.
    pub(crate) fn open(dir: &Path, settings: LogSettings) -> Result<LogService> {
        let store = match LogStore::open(dir, settings.retention) {
            Ok(store) => {
                for quarantined in store.quarantined() {
                    tracing::warn!(
                        partition = %quarantined.name,
                        path = %quarantined.path.display(),
                        reason = %quarantined.reason,
                        "a damaged log partition is set aside; delete its folder once inspected"
                    );
                }
                Ok(Arc::new(RwLock::new(store)))
            }
            Err(error) => {
                tracing::error!(
                    path = %dir.display(),
                    %error,
                    "cannot open the log index: this server runs without one until it is repaired and restarted"
                );
                Err(error.to_string())
            }
        };
        let (ingest, jobs) = mpsc::channel(1024);
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let (committed, _) = broadcast::channel(crate::sinks::COMMITTED_BUFFER);
        let sink_dir = dir.parent().unwrap_or(dir).join("log-sinks");
        Ok(LogService {
            store,
            ingest,
            ingest_jobs: std::sync::Mutex::new(Some(jobs)),
            live,
            committed,
            sink_dir,
            sinks: crate::sinks::RunningSinks::default(),
            settings,
        })
    }
}

impl LogService {
    /// `--log-max-skew`.
    pub(crate) fn max_skew(&self) -> Duration {
        self.settings.max_skew
    }
}

/// Starts the ingest loop, retention, and the server's own syslog receiver.
pub(crate) async fn spawn_log_tasks(server: &Server) -> Result<()> {
    let logs = &server.inner.logs;
    let Ok(index) = &logs.store else {
        // Without an index nothing is ingested: `on_agent_logs` leaves
        // agents' lines unacknowledged in their spools.
        return Ok(());
    };
    let jobs = logs.ingest_jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(jobs) = jobs {
        tokio::spawn(ingest_loop(Arc::clone(index), jobs, logs.live.clone(), logs.committed.clone()));
    }
    crate::sinks::spawn_log_sinks(server.clone());
    tokio::spawn(compact_settled(Arc::clone(index), server.shutdown_token().clone()));
    let (store, shutdown) = (Arc::clone(index), server.shutdown_token().clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let store = Arc::clone(&store);
            let outcome = tokio::task::spawn_blocking(move || write(&store).apply_retention()).await;
            match outcome {
                Ok(Ok(outcome)) if outcome.num_partitions_deleted > 0 => tracing::info!(
                    partitions = outcome.num_partitions_deleted,
                    bytes = outcome.bytes_freed,
                    "log retention deleted old partitions"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "log retention failed"),
                Err(error) => tracing::warn!(%error, "log retention panicked"),
            }
        }
    });
    if let Some(address) = logs.settings.syslog {
        spawn_syslog(server, address).await?;
    }
    Ok(())
}

/// Moves aside the partitions that searches found damaged, then merges
/// each settled partition into one segment (searched once per rare word
/// instead of once per segment, and smaller), one at a time, without
/// holding the store while the merge runs: ingest and searches go on.
async fn compact_settled(store: Arc<RwLock<LogStore>>, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(COMPACTION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let store = Arc::clone(&store);
        let outcome = tokio::task::spawn_blocking(move || {
            // The store logs each one it moves.
            if !read(&store).damaged().is_empty() {
                write(&store).quarantine_damaged();
            }
            let settled = read(&store).settled_partitions(now_nanos(), COMPACTION_SETTLE);
            for start in settled {
                // The store is held only to start and to finish the merge.
                let Some(compaction) = write(&store).start_compaction(start)? else { continue };
                let started = std::time::Instant::now();
                let merged = compaction.wait();
                write(&store).finish_compaction(start)?;
                merged?;
                tracing::info!(partition = start, millis = started.elapsed().as_millis(), "log partition compacted");
            }
            Ok::<(), drover_logs::Error>(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "compacting a log partition failed; it is tried again later"),
            Err(error) => tracing::warn!(%error, "compacting a log partition panicked"),
        }
    }
}

fn write(store: &RwLock<LogStore>) -> std::sync::RwLockWriteGuard<'_, LogStore> {
    store.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read(store: &RwLock<LogStore>) -> std::sync::RwLockReadGuard<'_, LogStore> {
    store.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Commits batches of records, as many jobs per commit as are waiting, and
/// answers each job once its records are durable. Live readers (`tail -f`,
/// hammers triggered by log lines) get each record as it arrives, before the
/// commit; a line an agent sends again (its session ended before the
/// acknowledgement) is not shown twice.
/// Log sinks (`crate::sinks`) get each commit's records once durable.
async fn ingest_loop(
    store: Arc<RwLock<LogStore>>,
    mut jobs: mpsc::Receiver<IngestJob>,
    live: broadcast::Sender<Arc<LogRecord>>,
    committed: broadcast::Sender<Arc<Vec<LogRecord>>>,
) {
    // Per origin, the highest seq handed to live readers: a resent line is
    // not shown (nor does it trigger) twice.
    let mut published: HashMap<String, u64> = HashMap::new();
    let mut publish = |job: &IngestJob| {
        for record in &job.records {
            match published.get_mut(&record.origin) {
                Some(mark) if record.seq <= *mark => continue,
                Some(mark) => *mark = record.seq,
                None => {
                    published.insert(record.origin.clone(), record.seq);
                }
            }
            if live.receiver_count() > 0 {
                let _ = live.send(Arc::new(record.clone()));
            }
        }
    };
    while let Some(first) = jobs.recv().await {
        publish(&first);
        let mut batch = vec![first];
        let mut num_records = batch[0].records.len();
        // Every commit costs about the same whatever its size: gather for a
        // moment (docs/benchmarks.md, "Log search": 1,000 lines per call
        // index at a third of the speed of 20,000).
        let deadline = tokio::time::Instant::now() + INGEST_GATHER;
        while num_records < MAX_INGEST_RECORDS {
            let wait_until = deadline.min(tokio::time::Instant::now() + INGEST_IDLE);
            match tokio::time::timeout_at(wait_until, jobs.recv()).await {
                Ok(Some(job)) => {
                    publish(&job);
                    num_records += job.records.len();
                    batch.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(num_records);
        let mut answers = Vec::with_capacity(batch.len());
        for job in batch {
            records.extend(job.records);
            answers.extend(job.done);
        }
        // Log sinks take the records once durable (a copy only when one runs).
        let for_sinks = (committed.receiver_count() > 0).then(|| records.clone());
        let store = Arc::clone(&store);
        let outcome = tokio::task::spawn_blocking(move || write(&store).ingest(records))
            .await
            .map_err(|error| error.to_string())
            .and_then(|outcome| outcome.map_err(|error| error.to_string()));
        if let Err(error) = &outcome {
            tracing::warn!(%error, "cannot index log lines; agents will send them again");
        } else if let Some(records) = for_sinks {
            let _ = committed.send(Arc::new(records));
        }
        for answer in answers {
            let _ = answer.send(outcome.clone().map(|_| ()));
        }
    }
}

async fn spawn_syslog(server: &Server, address: SocketAddr) -> Result<()> {
    let source = drover_collect::SyslogSource::bind(drover_collect::SyslogConfig::new(address))
        .await
        .map_err(|error| CodedError::invalid(format!("cannot receive syslog on {address}: {error}")))?;
    let (sender, mut lines) = mpsc::channel::<drover_collect::SourceLine>(4096);
    let shutdown = server.shutdown_token().clone();
    tokio::spawn(async move {
        if let Err(error) = source.run(sender, shutdown).await {
            tracing::warn!(%error, "the server's syslog receiver failed");
        }
    });
    let server = server.clone();
    // Senders without an agent have no zone fact: their zone-less times
    // are read in this server's.
    let (zone, _found_in) = drover_collect::zone::local_zone();
    tokio::spawn(async move {
        let origin = format!("syslog@{}", server.id());
        // Nanoseconds since the epoch, kept strictly increasing: unique
        // across restarts of this server without storing anything.
        let mut last_seq = 0u64;
        while let Some(first) = lines.recv().await {
            let mut batch = vec![first];
            while let Ok(line) = lines.try_recv() {
                batch.push(line);
                if batch.len() >= 4096 {
                    break;
                }
            }
            let mut records = Vec::with_capacity(batch.len());
            for line in batch {
                last_seq = last_seq.saturating_add(1).max(u64::try_from(now_nanos()).unwrap_or(0));
                let meta = line.syslog.as_deref();
                let host = match (&line.source, meta.and_then(|meta| meta.hostname.clone())) {
                    (_, Some(host)) if host != "-" && !host.is_empty() => host,
                    (drover_collect::SourceKind::Syslog { peer, .. }, _) => peer.ip().to_string(),
                    _ => "unknown".to_owned(),
                };
                let stream = meta
                    .and_then(|meta| meta.app_name.clone())
                    .filter(|app| app != "-")
                    .unwrap_or_else(|| "syslog".to_owned());
                let shipped = LogLine {
                    seq: last_seq,
                    received: drover_types::log::unix_nanos(line.received),
                    timestamp: meta.and_then(|meta| meta.timestamp_micros).map(|micros| micros.saturating_mul(1000)),
                    source: "syslog".to_owned(),
                    stream,
                    host: Some(host),
                    alloc: None,
                    task: None,
                    level: meta.map(|meta| severity_level(meta.severity).to_owned()),
                    text: line.text,
                };
                let context = LineContext {
                    origin: &origin,
                    node: None,
                    zone: Some(zone),
                    max_skew: server.log_max_skew_nanos(),
                };
                records.push(record_of(shipped, &context, &server.state()));
            }
            let _ = server.inner.logs.ingest.send(IngestJob { records, done: None }).await;
        }
    });
    tracing::info!(%address, "receiving syslog");
    Ok(())
}

fn severity_level(severity: u8) -> &'static str {
    ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
        .get(usize::from(severity))
        .copied()
        .unwrap_or("debug")
}

/// What the lines of one batch share: where they come from and how their
/// times are read.
struct LineContext<'a> {
    origin: &'a str,
    node: Option<&'a Node>,
    /// The zone zone-less timestamps are read in (the node's `time.zone`).
    zone: Option<chrono_tz::Tz>,
    max_skew: i64,
}

/// The time zone a node reported (`attr.time.zone`), if it is a known one.
fn zone_of(node: &Node) -> Option<chrono_tz::Tz> {
    node.attributes.get("time.zone").and_then(|name| name.parse().ok())
}

/// A shipped line as a record: the node's labels and the allocation's job
/// added, the text parsed, the event time settled.
fn record_of(line: LogLine, context: &LineContext<'_>, state: &State) -> LogRecord {
    let node = context.node;
    let node_name = line.host.clone().or_else(|| node.map(|node| node.name.clone())).unwrap_or_default();
    let time = drover_logs::record::LineTime { received: line.received, zone: context.zone };
    let mut record = drover_logs::record::from_line(
        context.origin,
        line.seq,
        &node_name,
        &line.source,
        &line.stream,
        &line.text,
        time,
    );
    if let Some(timestamp) = line.timestamp {
        record.timestamp = timestamp;
    }
    drover_logs::record::settle_event_time(&mut record, context.max_skew);
    if record.level.is_none() {
        record.level = line.level.as_deref().and_then(drover_logs::parse::normalise_level).map(str::to_owned);
    }
    if line.host.is_none()
        && let Some(node) = node
    {
        record.hostgroup = Some(node.hostgroup.clone()).filter(|text| !text.is_empty());
        record.environment = Some(node.environment.clone()).filter(|text| !text.is_empty());
    }
    if let Some(alloc_id) = line.alloc {
        if let Some(alloc) = state.alloc(&AllocId::new(alloc_id.as_str())) {
            record.job = Some(alloc.job_id.to_string());
            record.group = Some(alloc.group.clone());
        }
        record.alloc = Some(alloc_id);
        record.task = line.task;
    }
    record
}

/// Now, in nanoseconds since the epoch (the unit of log record times).
pub fn now_nanos() -> i64 {
    drover_types::log::unix_nanos(SystemTime::now())
}

/// A time as the API accepts it: `6h` (ago), RFC 3339, or nanoseconds
/// since the epoch.
pub fn parse_time(text: &str, now: i64) -> std::result::Result<i64, String> {
    let nanos = parse_unchecked_time(text.trim(), now)?;
    if !(0..=LATEST_TIME_NANOS).contains(&nanos) {
        return Err(format!("time {text:?} is out of range: give a time between 1970 and 2200"));
    }
    Ok(nanos)
}

/// 2200-01-01T00:00:00Z in nanoseconds: the latest time a query may name.
/// Bounding every time keeps spans, bucket counts and alignments far from
/// `i64` overflow.
const LATEST_TIME_NANOS: i64 = 7_258_118_400 * 1_000_000_000;

fn parse_unchecked_time(text: &str, now: i64) -> std::result::Result<i64, String> {
    if let Ok(nanos) = text.parse::<i64>() {
        return Ok(nanos);
    }
    if let Ok(duration) = text.parse::<DurationSpec>() {
        let nanos = i64::try_from(duration.get().as_nanos()).unwrap_or(i64::MAX);
        // A duration reaching back before 1970 means "from the start".
        return Ok(now.saturating_sub(nanos).max(0));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return time.timestamp_nanos_opt().ok_or_else(|| format!("time {text:?} is out of range"));
    }
    Err(format!(
        "cannot read time {text:?}: use a duration back from now (6h, 30m), an RFC 3339 time (2026-11-22T10:00:00Z) or nanoseconds since the epoch"
    ))
}

fn invalid(error: drover_logs::Error) -> CodedError {
    match error {
        drover_logs::Error::Query(error) => CodedError::invalid(format!("bad query: {error}\nsee docs/logs.md")),
        drover_logs::Error::InvalidRequest(_) | drover_logs::Error::InvalidCursor { .. } => {
            CodedError::invalid(error.to_string())
        }
        other => internal_query_error(&other),
    }
}

/// An internal failure of a log query as the API gives it: an id only
/// (paths, engine and panic messages are no business of a caller); the
/// details go to this server's log under that id.
fn internal_query_error(error: &dyn std::fmt::Display) -> CodedError {
    let error_id = crate::ids::new_short_id();
    tracing::error!(error_id = %error_id, %error, "a log query failed");
    CodedError::internal(format!(
        "the log query failed on this server (error id {error_id}); its log has the details under that id"
    ))
}

/// Refuses an export that would miss records.
fn incomplete(unreachable: &[String], damaged: &[String]) -> Result<()> {
    if !unreachable.is_empty() {
        return Err(CodedError::new(
            drover_types::ErrorCode::Unavailable,
            format!(
                "servers {} did not answer: the export would miss their agents' lines; try again when they are back",
                unreachable.join(", ")
            ),
        ));
    }
    if !damaged.is_empty() {
        return Err(CodedError::internal(format!(
            "{} cannot be read: the export would miss their lines (`drover server health` says more)",
            damaged.join(", ")
        )));
    }
    Ok(())
}

/// What an imported record must be to be stored.
fn check_imported(record: &LogRecord) -> std::result::Result<(), String> {
    if record.origin.trim().is_empty() {
        return Err("it has no origin".to_owned());
    }
    if record.seq == 0 {
        return Err("its seq is 0 (seqs start at 1)".to_owned());
    }
    for (name, time) in [("timestamp", record.timestamp), ("received", record.received)] {
        if !(0..=LATEST_TIME_NANOS).contains(&time) {
            return Err(format!("its {name} {time} is not between 1970 and 2200 (nanoseconds since the epoch)"));
        }
    }
    Ok(())
}

/// The answer of a server without a log index.
fn no_log_index() -> CodedError {
    CodedError::internal("this server's log index cannot be opened; `drover server health` says why")
}

/// Where one server stands in a paged search across servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    Start,
    At(Cursor),
    End,
}

/// `id=position,…`: the position of every server in a search across servers.
fn encode_positions(positions: &BTreeMap<u64, Position>) -> String {
    positions
        .iter()
        .map(|(id, position)| match position {
            Position::Start => format!("{id}=start"),
            Position::At(cursor) => format!("{id}={cursor}"),
            Position::End => format!("{id}=end"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_positions(text: &str) -> Result<BTreeMap<u64, Position>> {
    let bad = || CodedError::invalid(format!("bad cursor {text:?}: pass the next_cursor of a previous page unchanged"));
    let mut positions = BTreeMap::new();
    for part in text.split(',').filter(|part| !part.is_empty()) {
        let (id, position) = part.split_once('=').ok_or_else(bad)?;
        let id: u64 = id.parse().map_err(|_| bad())?;
        let position = match position {
            "start" => Position::Start,
            "end" => Position::End,
            cursor => Position::At(cursor.parse().map_err(|_| bad())?),
        };
        positions.insert(id, position);
    }
    Ok(positions)
}

/// The most buckets one histogram answers.
const MAX_HISTOGRAM_BUCKETS: i128 = 100_000;

fn too_many_buckets(num_buckets: i128) -> CodedError {
    CodedError::invalid(format!(
        "{num_buckets} histogram buckets are more than the limit of {MAX_HISTOGRAM_BUCKETS}: choose a larger interval or a shorter range"
    ))
}

/// A histogram width that gives about 60 buckets over `span` nanoseconds.
fn default_interval(span: i64) -> i64 {
    const STEPS: [i64; 14] =
        [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400];
    let wanted = span / 60;
    STEPS
        .iter()
        .map(|seconds| seconds * 1_000_000_000)
        .find(|step| *step >= wanted)
        .unwrap_or(7 * 86_400 * 1_000_000_000)
}

impl Server {
    /// How far a line's claimed time may be from its receive time and
    /// still be its event time (`--log-max-skew`), in nanoseconds.
    pub(crate) fn log_max_skew_nanos(&self) -> i64 {
        i64::try_from(self.inner.logs.settings.max_skew.as_nanos()).unwrap_or(i64::MAX)
    }

    /// The receive time of a line about `node`, with the zone its
    /// zone-less timestamps are read in.
    pub(crate) fn log_line_time(&self, received: i64, node: Option<&Node>) -> drover_logs::record::LineTime {
        drover_logs::record::LineTime { received, zone: node.and_then(zone_of) }
    }

    /// Every record matching `query` (across servers), for a backup: the
    /// number of them (as counted now) and the records, hour by hour,
    /// oldest first, each hour by `(origin, seq)`. An error ends the
    /// stream: a server that does not answer or a damaged partition makes
    /// the export fail rather than be silently incomplete.
    pub async fn export_logs(&self, query: LogQuery) -> Result<(u64, mpsc::Receiver<Result<LogRecord>>)> {
        let filter = self.log_filter(&query, now_nanos())?;
        // Times made absolute once: every page sees the same window.
        let query = LogQuery {
            since: filter.since.map(|nanos| nanos.to_string()),
            until: filter.until.map(|nanos| nanos.to_string()),
            ..query
        };
        let hours = self
            .log_histogram(query.clone(), LogInterval { interval: Some(format!("{EXPORT_WINDOW_NANOS}ns")) })
            .await?;
        incomplete(&hours.unreachable, &hours.damaged)?;
        let windows: Vec<(i64, u64)> =
            hours.buckets.iter().filter(|bucket| bucket.count > 0).map(|bucket| (bucket.start, bucket.count)).collect();
        let total = windows.iter().map(|(_, count)| count).sum();
        let (sender, receiver) = mpsc::channel(EXPORT_PAGE);
        let server = self.clone();
        tokio::spawn(async move {
            for (start, _) in windows {
                let since = filter.since.map_or(start, |since| since.max(start));
                let end = start.saturating_add(EXPORT_WINDOW_NANOS);
                let until = filter.until.map_or(end, |until| until.min(end));
                let window =
                    LogQuery { since: Some(since.to_string()), until: Some(until.to_string()), ..query.clone() };
                let records = match server.export_window(window).await {
                    Ok(records) => records,
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                for record in records {
                    if sender.send(Ok(record)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok((total, receiver))
    }

    /// Every record of one export window, by `(origin, seq)`.
    async fn export_window(&self, query: LogQuery) -> Result<Vec<LogRecord>> {
        let mut records = Vec::new();
        let mut cursor = None;
        loop {
            let page = LogPage { limit: Some(EXPORT_PAGE), cursor: cursor.take() };
            let answer = self.search_logs(query.clone(), page).await?;
            incomplete(&answer.unreachable, &answer.damaged)?;
            records.extend(answer.records);
            match answer.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        records.sort_by(|left, right| left.origin.cmp(&right.origin).then(left.seq.cmp(&right.seq)));
        records.dedup_by(|right, left| left.origin == right.origin && left.seq == right.seq);
        Ok(records)
    }

    /// Stores imported records on this server, each once: `(origin, seq)`
    /// already held are dropped. Without `trust_timestamps` the event-time
    /// rule applies with now as the receive time. Nothing of the batch is
    /// stored when a record is invalid.
    pub async fn import_logs(&self, request: LogImportRequest) -> Result<LogImportResponse> {
        let LogImportRequest { mut records, trust_timestamps } = request;
        if records.len() > MAX_IMPORT_RECORDS {
            return Err(CodedError::invalid(format!(
                "{} records in one import request are more than the limit of {MAX_IMPORT_RECORDS}: send smaller batches",
                records.len()
            )));
        }
        for (index, record) in records.iter().enumerate() {
            if let Err(problem) = check_imported(record) {
                return Err(CodedError::invalid(format!(
                    "record {} of the batch (origin {:?}, seq {}): {problem}; nothing of this batch was imported",
                    index + 1,
                    record.origin,
                    record.seq
                )));
            }
        }
        let store = Arc::clone(self.inner.logs.store.as_ref().map_err(|_| no_log_index())?);
        if !trust_timestamps {
            let (received, max_skew) = (now_nanos(), self.log_max_skew_nanos());
            for record in &mut records {
                record.received = received;
                drover_logs::record::settle_event_time(record, max_skew);
            }
        }
        // Each origin's seqs in increasing order: the store's de-duplication
        // keeps a high-water mark per origin.
        records.sort_by(|left, right| left.origin.cmp(&right.origin).then(left.seq.cmp(&right.seq)));
        let outcome = tokio::task::spawn_blocking(move || write(&store).ingest(records))
            .await
            .map_err(|error| internal_query_error(&error))?
            .map_err(|error| CodedError::internal(format!("cannot index the imported records: {error}")))?;
        Ok(LogImportResponse { accepted: outcome.num_accepted as u64, duplicates: outcome.num_duplicates as u64 })
    }

    /// Indexes records this server made itself (console lines) and waits
    /// until they are durable.
    pub(crate) async fn ingest_local(&self, records: Vec<LogRecord>) -> Result<()> {
        if self.inner.logs.store.is_err() {
            return Err(no_log_index());
        }
        match self.submit_ingest(records).await?.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(CodedError::internal(format!("cannot index log lines: {error}"))),
            Err(_) => Err(CodedError::internal("the log index is shut down")),
        }
    }

    /// Queues records for the ingest loop; the receiver answers once they
    /// are durable (or why not).
    async fn submit_ingest(
        &self,
        records: Vec<LogRecord>,
    ) -> Result<oneshot::Receiver<std::result::Result<(), String>>> {
        let (done, stored) = oneshot::channel();
        self.inner
            .logs
            .ingest
            .send(IngestJob { records, done: Some(done) })
            .await
            .map_err(|_| CodedError::internal("the log index is shut down"))?;
        Ok(stored)
    }

    /// Indexes lines from an agent and acknowledges them once durable. A
    /// failure ends the session so that the agent sends them again.
    pub(crate) async fn on_agent_logs(&self, session: &AgentSession, lines: Vec<LogLine>) -> Result<()> {
        let Some(upto_seq) = lines.last().map(|line| line.seq) else { return Ok(()) };
        if self.inner.logs.store.is_err() {
            // Without an index the lines stay in the agent's spool,
            // unacknowledged; the session goes on.
            return Ok(());
        }
        let state = self.state();
        let node = state.node(&session.node_id).map(|node| node.as_ref());
        let origin = session.node_id.to_string();
        let context =
            LineContext { origin: &origin, node, zone: node.and_then(zone_of), max_skew: self.log_max_skew_nanos() };
        let records: Vec<LogRecord> = lines.into_iter().map(|line| record_of(line, &context, &state)).collect();
        let stored = self.submit_ingest(records).await?;
        let outbound = session.outbound.clone();
        tokio::spawn(async move {
            let message = match stored.await {
                Ok(Ok(())) => ServerMessage::LogsAck { upto_seq },
                Ok(Err(error)) => ServerMessage::Refused { message: format!("cannot index log lines: {error}") },
                Err(_) => return,
            };
            // A session that ended meanwhile: the agent sends the lines again.
            if let Some(outbound) = outbound.upgrade() {
                let _ = outbound.send(message).await;
            }
        });
        Ok(())
    }

    /// Records an agent's count of dropped log lines (when it changed).
    pub(crate) fn on_agent_log_stats(&self, session: &AgentSession, dropped_lines: u64) {
        let known = self.state().node(&session.node_id).map(|node| node.log_dropped_lines);
        if known == Some(dropped_lines) {
            return;
        }
        if dropped_lines > known.unwrap_or(0) {
            tracing::warn!(node = %session.node_id, dropped_lines, "an agent's log spool was full: lines were dropped");
        }
        let (server, node_id) = (self.clone(), session.node_id.clone());
        tokio::spawn(async move {
            if let Err(error) = server.propose(Command::UpdateNodeLogStats { node_id, dropped_lines }).await {
                tracing::debug!(%error, "cannot record dropped log lines");
            }
        });
    }

    /// The store filter of a query, with relative times resolved at `now`.
    fn log_filter(&self, query: &LogQuery, now: i64) -> Result<Filter> {
        let time = |text: &Option<String>, name: &str| {
            text.as_deref()
                .filter(|text| !text.trim().is_empty())
                .map(|text| parse_time(text, now).map_err(|error| CodedError::invalid(format!("{name}: {error}"))))
                .transpose()
        };
        let nodes = crate::parse_node_filter(query.filter.as_deref())?.map(|filter| {
            let state = self.state();
            state.nodes().filter(|node| filter.matches(node.as_ref())).map(|node| node.name.clone()).collect()
        });
        drover_logs::query::parse(&query.q)
            .map_err(|error| CodedError::invalid(format!("bad query: {error}\nsee docs/logs.md")))?;
        Ok(Filter {
            query: query.q.clone(),
            since: time(&query.since, "since")?,
            until: time(&query.until, "until")?,
            nodes,
        })
    }

    /// The query a coordinating server sends to the others: times made
    /// absolute, `local` set.
    fn peer_query(query: &LogQuery, filter: &Filter) -> LogQuery {
        LogQuery {
            q: query.q.clone(),
            since: filter.since.map(|nanos| nanos.to_string()),
            until: filter.until.map(|nanos| nanos.to_string()),
            filter: query.filter.clone(),
            local: true,
        }
    }

    async fn with_store<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&LogStore) -> drover_logs::Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(self.inner.logs.store.as_ref().map_err(|_| no_log_index())?);
        tokio::task::spawn_blocking(move || operation(&read(&store)))
            .await
            .map_err(|error| internal_query_error(&error))?
            .map_err(invalid)
    }

    /// What is wrong with this server's log index, in words, for `drover
    /// server health`: an index that cannot be opened, partitions moved
    /// aside, partitions found damaged and about to be. Empty when healthy.
    pub async fn log_index_problems(&self) -> Vec<String> {
        let store = match &self.inner.logs.store {
            Ok(store) => Arc::clone(store),
            Err(reason) => {
                return vec![format!(
                    "its log index cannot be opened ({reason}): it runs without one and its agents keep their \
                     log lines until the index is repaired or moved away and the server restarted"
                )];
            }
        };
        let found = tokio::task::spawn_blocking(move || {
            let store = read(&store);
            let damaged = store.damaged();
            let quarantined = store.quarantined().to_vec();
            (damaged, quarantined)
        })
        .await;
        let Ok((damaged, quarantined)) = found else {
            return vec!["its log index could not be asked for its state".to_owned()];
        };
        let mut problems: Vec<String> = quarantined
            .iter()
            .map(|partition| {
                format!(
                    "its log partition {} is damaged and was moved aside to {}: its lines are left out of searches; \
                     the server log and quarantine.json in that folder say why; delete the folder once inspected",
                    partition.name,
                    partition.path.display()
                )
            })
            .collect();
        problems.extend(damaged.iter().map(|partition| {
            format!(
                "its log partition {} is damaged: its lines are left out of searches and it is moved aside shortly",
                partition.name
            )
        }));
        problems
    }

    /// Asks every other server; returns their answers and the addresses of
    /// those that did not answer. A server that refuses the request (a bad
    /// query) makes the whole request fail.
    async fn ask_peers<T: DeserializeOwned + Send>(
        &self,
        path: &str,
        query: &LogQuery,
        extra: &(impl Serialize + Sync),
    ) -> Result<(Vec<T>, Vec<String>)> {
        let peers: Vec<_> = self.peers();
        let asks = peers
            .iter()
            .map(|member| async move { (member, self.ask_one_peer::<T>(&member.address, path, query, extra).await) });
        let mut answers = Vec::new();
        let mut unreachable = Vec::new();
        for (member, answer) in futures_util::future::join_all(asks).await {
            match answer? {
                Some(answer) => answers.push(answer),
                None => unreachable.push(member.address.clone()),
            }
        }
        Ok((answers, unreachable))
    }

    /// The partitions a query could not read, named for an API answer
    /// (the reason holds engine internals: it is in the server's log).
    fn name_damaged(&self, damaged: &[drover_logs::store::DamagedPartition]) -> Vec<String> {
        damaged.iter().map(|partition| format!("server {}: log partition {}", self.id(), partition.name)).collect()
    }

    /// One page of this server's own matching records.
    async fn search_local(&self, filter: Filter, page: &LogPage) -> Result<LogSearchResponse> {
        let limit = page.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let before = match page.cursor.as_deref() {
            Some(text) => Some(text.parse::<Cursor>().map_err(invalid)?),
            None => None,
        };
        let search = SearchRequest { filter, limit, before };
        // A damaged partition is left out of the page (the store logs it,
        // and moves it aside): the page is made from the others.
        let page = self.with_store(move |store| store.search(&search)).await?;
        Ok(LogSearchResponse {
            records: page.records,
            cursors: page.cursors.iter().map(ToString::to_string).collect(),
            next_cursor: page.next_cursor.map(|cursor| cursor.to_string()),
            total_matching: page.total_matching,
            unreachable: Vec::new(),
            damaged: self.name_damaged(&page.damaged),
        })
    }

    /// One page of matching records, newest first, from every server.
    pub async fn search_logs(&self, query: LogQuery, page: LogPage) -> Result<LogSearchResponse> {
        let limit = page.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let filter = self.log_filter(&query, now_nanos())?;
        if query.local {
            return self.search_local(filter, &page).await;
        }
        let mut positions = match page.cursor.as_deref() {
            Some(text) => decode_positions(text)?,
            None => BTreeMap::new(),
        };
        let peer_query = Self::peer_query(&query, &filter);
        let page_of = |position: Option<&Position>| match position {
            Some(Position::At(cursor)) => LogPage { limit: Some(limit), cursor: Some(cursor.to_string()) },
            Some(Position::End) => LogPage { limit: Some(0), cursor: None },
            Some(Position::Start) | None => LogPage { limit: Some(limit), cursor: None },
        };
        // This server's part and the peers' at once; each gets its own position.
        let local_page = page_of(positions.get(&self.id()));
        let local = self.search_local(filter, &local_page);
        let peers: Vec<_> = self.peers();
        let asks = peers.iter().map(|member| {
            let paging = page_of(positions.get(&member.server_id));
            let peer_query = &peer_query;
            async move {
                let page =
                    self.ask_one_peer::<LogSearchResponse>(&member.address, paths::LOGS_SEARCH, peer_query, &paging);
                (member, page.await)
            }
        });
        let (local, answers) = tokio::join!(local, futures_util::future::join_all(asks));
        let mut pages = vec![(self.id(), local?)];
        let mut unreachable = Vec::new();
        for (member, page) in answers {
            match page? {
                Some(page) => pages.push((member.server_id, page)),
                None => unreachable.push(member.address.clone()),
            }
        }
        let damaged: Vec<String> = pages.iter().flat_map(|(_, page)| page.damaged.iter().cloned()).collect();
        let total_matching = pages.iter().map(|(_, page)| page.total_matching).sum();
        // Merge newest first; within a server its own order is kept.
        let mut merged: Vec<(i64, u64, usize, usize)> = Vec::new();
        for (page_index, (server_id, page)) in pages.iter().enumerate() {
            for (record_index, record) in page.records.iter().enumerate() {
                merged.push((record.timestamp, *server_id, page_index, record_index));
            }
        }
        merged.sort_by(|left, right| right.0.cmp(&left.0).then(left.1.cmp(&right.1)).then(left.3.cmp(&right.3)));
        let mut taken_per_page = vec![0usize; pages.len()];
        let mut seen: HashSet<(String, u64)> = HashSet::new();
        let mut records = Vec::with_capacity(limit);
        for (_, _, page_index, record_index) in merged {
            if records.len() == limit {
                break;
            }
            taken_per_page[page_index] = record_index + 1;
            let record = &pages[page_index].1.records[record_index];
            if seen.insert((record.origin.clone(), record.seq)) {
                records.push(record.clone());
            }
        }
        for (page_index, (server_id, page)) in pages.iter().enumerate() {
            let taken = taken_per_page[page_index];
            let position = if taken == page.records.len() && page.next_cursor.is_none() {
                Position::End
            } else if taken > 0 {
                match page.cursors.get(taken - 1).map(|text| text.parse::<Cursor>()) {
                    Some(Ok(cursor)) => Position::At(cursor),
                    _ => return Err(CodedError::internal("a server answered a search without cursors")),
                }
            } else {
                positions.get(server_id).copied().unwrap_or(Position::Start)
            };
            positions.insert(*server_id, position);
        }
        let next_cursor =
            positions.values().any(|position| *position != Position::End).then(|| encode_positions(&positions));
        Ok(LogSearchResponse { records, cursors: Vec::new(), next_cursor, total_matching, unreachable, damaged })
    }

    /// GET one peer; `Ok(None)` when it cannot be reached.
    async fn ask_one_peer<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        query: &LogQuery,
        extra: &(impl Serialize + Sync),
    ) -> Result<Option<T>> {
        let url = format!("{}{path}", self.inner.network.base_url(address));
        let request = self.inner.network.client().get(&url).query(query).query(extra).timeout(PEER_TIMEOUT);
        let Ok(response) = request.send().await else {
            return Ok(None);
        };
        if response.status().is_client_error() {
            return Err(response
                .json::<CodedError>()
                .await
                .unwrap_or_else(|_| CodedError::invalid(format!("server {address} refused the query"))));
        }
        Ok(response.json::<T>().await.ok())
    }

    /// The most frequent values of a field among matching records, from
    /// every server.
    pub async fn count_logs(&self, query: LogQuery, count_by: LogCountBy) -> Result<LogCountResponse> {
        let top = count_by.top.unwrap_or(10).clamp(1, 10_000);
        let filter = self.log_filter(&query, now_nanos())?;
        let by = count_by.by.trim().to_owned();
        if by.is_empty() {
            return Err(CodedError::invalid(
                "count by what? give a field: node, job, level, source or an extracted field",
            ));
        }
        // Each server returns more than asked so the merged top is right
        // unless a value is spread thinly over many servers.
        let wanted = top.saturating_mul(2).saturating_add(10);
        let local = {
            let (filter, by) = (filter.clone(), by.clone());
            self.with_store(move |store| store.count_by(&filter, &by, wanted)).await?
        };
        let mut damaged = self.name_damaged(&local.damaged);
        let mut totals: BTreeMap<String, u64> = local.counts.into_iter().collect();
        let mut unreachable = Vec::new();
        if !query.local {
            let peer = LogCountBy { by: by.clone(), top: Some(wanted) };
            let peer_query = Self::peer_query(&query, &filter);
            let (answers, missing) = self.ask_peers::<LogCountResponse>(paths::LOGS_COUNT, &peer_query, &peer).await?;
            unreachable = missing;
            for answer in answers {
                damaged.extend(answer.damaged);
                for count in answer.counts {
                    *totals.entry(count.value).or_default() += count.count;
                }
            }
        }
        let mut counts: Vec<LogCount> = totals.into_iter().map(|(value, count)| LogCount { value, count }).collect();
        counts.sort_by(|left, right| right.count.cmp(&left.count).then_with(|| left.value.cmp(&right.value)));
        counts.truncate(if query.local { wanted } else { top });
        Ok(LogCountResponse { by, counts, unreachable, damaged })
    }

    /// Matching records per time bucket, from every server; empty buckets
    /// between the first and the last are included.
    pub async fn log_histogram(&self, query: LogQuery, interval: LogInterval) -> Result<LogHistogramResponse> {
        let now = now_nanos();
        let filter = self.log_filter(&query, now)?;
        let interval = match interval.interval.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
            Some(text) => {
                let duration = text.parse::<DurationSpec>().map_err(|error| {
                    CodedError::invalid(format!("histogram interval: {error}; use a duration such as 5m"))
                })?;
                i64::try_from(duration.get().as_nanos()).unwrap_or(i64::MAX)
            }
            None => filter
                .since
                .map_or(3_600_000_000_000, |since| default_interval(filter.until.unwrap_or(now).saturating_sub(since))),
        };
        if interval < 1_000_000 {
            return Err(CodedError::invalid("histogram interval must be at least 1ms"));
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until) {
            let num_buckets = (i128::from(until) - i128::from(since)) / i128::from(interval) + 1;
            if num_buckets > MAX_HISTOGRAM_BUCKETS {
                return Err(too_many_buckets(num_buckets));
            }
        }
        let local = {
            let filter = filter.clone();
            self.with_store(move |store| store.histogram(&filter, interval)).await?
        };
        let mut damaged = self.name_damaged(&local.damaged);
        let mut totals: BTreeMap<i64, u64> = local.buckets.into_iter().collect();
        let mut unreachable = Vec::new();
        if !query.local {
            let peer = LogInterval { interval: Some(format!("{interval}ns")) };
            let peer_query = Self::peer_query(&query, &filter);
            let (answers, missing) =
                self.ask_peers::<LogHistogramResponse>(paths::LOGS_HISTOGRAM, &peer_query, &peer).await?;
            unreachable = missing;
            for answer in answers {
                damaged.extend(answer.damaged);
                for bucket in answer.buckets {
                    *totals.entry(bucket.start).or_default() += bucket.count;
                }
            }
        }
        let mut buckets = Vec::new();
        if !query.local {
            let align = |time: i64| time.div_euclid(interval) * interval;
            let first = filter.since.map(align).or_else(|| totals.keys().next().copied());
            let last = totals.keys().next_back().copied().or(first);
            if let (Some(first), Some(last)) = (first, last) {
                let last = filter.until.map_or(last, |until| align(until.saturating_sub(1))).max(last);
                // Records can carry any time, so the span is computed wide.
                let num_buckets = (i128::from(last) - i128::from(first)) / i128::from(interval) + 1;
                if num_buckets > MAX_HISTOGRAM_BUCKETS {
                    return Err(too_many_buckets(num_buckets));
                }
                let mut start = first;
                while start <= last {
                    buckets.push(LogBucket { start, count: totals.get(&start).copied().unwrap_or(0) });
                    let Some(next) = start.checked_add(interval) else { break };
                    start = next;
                }
            }
        } else {
            buckets = totals.into_iter().map(|(start, count)| LogBucket { start, count }).collect();
        }
        Ok(LogHistogramResponse { interval_nanos: interval, buckets, unreachable, damaged })
    }

    /// Live matching records from this server's agents (with `local`) or
    /// from every server.
    pub async fn tail_logs(&self, query: LogQuery) -> Result<mpsc::Receiver<LogRecord>> {
        let filter = self.log_filter(&query, now_nanos())?;
        let expr = drover_logs::query::parse(&filter.query)
            .map_err(|error| CodedError::invalid(format!("bad query: {error}\nsee docs/logs.md")))?;
        let matcher = drover_logs::matcher::Matcher::new(&expr);
        let nodes: Option<HashSet<String>> =
            filter.nodes.map(|nodes| nodes.into_iter().map(|node| node.to_lowercase()).collect());
        let (sender, receiver) = mpsc::channel(1024);
        let mut live = self.inner.logs.live.subscribe();
        let local_sender = sender.clone();
        let shutdown = self.shutdown_token().clone();
        tokio::spawn(async move {
            loop {
                let entry = tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = local_sender.closed() => return,
                    entry = live.recv() => entry,
                };
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a log tail reader fell behind; lines skipped");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if nodes.as_ref().is_some_and(|nodes| !nodes.contains(&entry.node.to_lowercase())) {
                    continue;
                }
                if !matcher.matches(&entry) {
                    continue;
                }
                if local_sender.send(LogRecord::clone(&entry)).await.is_err() {
                    return;
                }
            }
        });
        if !query.local {
            let peer_query = LogQuery { local: true, ..query };
            for member in self.peers() {
                let url = format!("{}{}", self.inner.network.base_url(&member.address), paths::LOGS_TAIL);
                let (client, sender, peer_query) =
                    (self.inner.network.client().clone(), sender.clone(), peer_query.clone());
                tokio::spawn(async move { relay_tail(client, url, peer_query, sender).await });
            }
        }
        Ok(receiver)
    }
}

impl Server {
    /// Every record of this server's own index with an event time in
    /// `[since, until)`: what a log sink reads again after a restart or
    /// an overflow (`crate::sinks`).
    pub(crate) async fn sink_backlog(&self, since: i64, until: i64) -> Result<Vec<LogRecord>> {
        let filter = Filter { since: Some(since), until: Some(until), ..Filter::default() };
        let mut records = Vec::new();
        let mut cursor = None;
        loop {
            let page = LogPage { limit: Some(EXPORT_PAGE), cursor: cursor.take() };
            let answer = self.search_local(filter.clone(), &page).await?;
            records.extend(answer.records);
            match answer.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(records),
            }
        }
    }
}

/// Copies another server's live lines (newline-delimited JSON) into
/// `sender` until either side ends.
async fn relay_tail(client: reqwest::Client, url: String, query: LogQuery, sender: mpsc::Sender<LogRecord>) {
    use futures_util::StreamExt;
    let Ok(response) = client.get(&url).query(&query).send().await else { return };
    if !response.status().is_success() {
        return;
    }
    let mut stream = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            () = sender.closed() => return,
            chunk = stream.next() => chunk,
        };
        let Some(Ok(chunk)) = chunk else { return };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if let Ok(entry) = serde_json::from_slice::<LogRecord>(&line)
                && sender.send(entry).await.is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_durations_back_rfc3339_or_nanoseconds() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(parse_time("6h", now), Ok(now - 6 * 3_600_000_000_000));
        assert_eq!(parse_time("1700000000000000000", now), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", now), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("1000y", now), Ok(0));
        assert!(parse_time("-9000000000000000000", now).unwrap_err().contains("out of range"));
        assert!(parse_time("9223372036854775807", now).unwrap_err().contains("out of range"));
        let error = parse_time("yesterday", now).unwrap_err();
        assert!(error.contains("RFC 3339"), "{error}");
    }

    #[test]
    fn positions_round_trip_and_garbage_is_refused() {
        let positions = BTreeMap::from([
            (1, Position::At(Cursor { timestamp: -5, row: 3 })),
            (2, Position::End),
            (3, Position::Start),
        ]);
        let text = encode_positions(&positions);
        assert_eq!(text, "1=-5-3,2=end,3=start");
        assert_eq!(decode_positions(&text).unwrap(), positions);
        assert!(decode_positions("1=nonsense").is_err());
        assert!(decode_positions("x=end").is_err());
    }

    #[test]
    fn default_histogram_intervals_give_about_sixty_buckets() {
        assert_eq!(default_interval(3_600_000_000_000), 60_000_000_000);
        assert_eq!(default_interval(6 * 3_600_000_000_000), 600_000_000_000);
        assert_eq!(default_interval(1), 1_000_000_000);
    }
}
