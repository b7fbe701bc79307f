//! Centralised logs on a server: the time-partitioned index of the lines
//! its agents ship (and of syslog received by the server itself), and the
//! queries that fan out to every server.
//!
//! ```text
//!  agent ─Logs{lines}─▶ on_agent_logs ─IngestJob─▶ ingest loop ──▶ LogStore (tantivy, one per server)
//!                                                    │          └─▶ live (tail -f, hammers:
//!                                                    │               on arrival, before the commit)
//!                                                    │          └─▶ committed (log sinks: after the commit)
//!                                                    └─▶ replication loop ─POST /v1/internal/logs/replica─▶
//!     ◀──LogsAck{upto}──────────────────────────────────(once a second server holds them)   another server's
//!                                                                                          ingest loop (a copy)
//!
//!  GET /v1/logs/search ─▶ originals of this server and every other  ┐
//!                      ─▶ copies kept for the servers that are down ┴─ merge (newest first,
//!                                                                      de-duplicated by (origin, seq))
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
//! Each server indexes what its own agents send (originals) and, with log
//! replication (`--log-replication 2`, the default), a copy of what another
//! server's agents sent it, chosen per origin by rendezvous hashing over
//! the voters ([`replica_order`]). A query asks every server for its
//! originals and, for the servers that do not answer, asks the others for
//! the copies they keep for them: each line is read and counted once. The
//! answer still names a server that did not answer (`unreachable`).
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
    LogInterval, LogPage, LogQuery, LogSearchResponse, Member,
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
    /// `--log-replication`: how many servers hold each line, 1 or 2
    /// (default 2; with one server there is no second to hold it).
    pub replication: u8,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            retention: Retention::default(),
            syslog: None,
            max_skew: DEFAULT_LOG_MAX_SKEW,
            replication: DEFAULT_LOG_REPLICATION,
        }
    }
}

/// `--log-replication` by default: every line on two servers when there are two.
pub const DEFAULT_LOG_REPLICATION: u8 = 2;

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
/// How long a server waits for another to take a copy of a batch before it
/// tries the next one.
const REPLICA_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that did not take a copy is not asked again for this long
/// (the batches meanwhile go to the next server in their order).
const REPLICA_PEER_PAUSE: Duration = Duration::from_secs(10);
/// Committed batches waiting for their copies to be taken, at most.
const REPLICATION_QUEUE: usize = 64;

struct IngestJob {
    records: Vec<LogRecord>,
    /// `Some(server)`: copies of lines that server received from its
    /// agents, kept here for it (log replication); `None`: this server's
    /// own lines (originals).
    replica_of: Option<u64>,
    done: Option<oneshot::Sender<std::result::Result<(), String>>>,
}

/// Originals this server committed, on their way to a second server; the
/// jobs' answers wait for it.
struct Replication {
    records: Arc<Vec<LogRecord>>,
    answers: Vec<oneshot::Sender<std::result::Result<(), String>>>,
}

/// The body of `POST /v1/internal/logs/replica`: lines a server received
/// from its agents (and committed), for another server to keep a copy of.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct LogReplica {
    /// The server that received them.
    pub primary: u64,
    /// The records, as the primary stored them.
    pub records: Vec<LogRecord>,
}

/// [`LogReplica`] as it is sent, without copying the records.
#[derive(Serialize)]
struct LogReplicaRef<'a> {
    primary: u64,
    records: &'a [&'a LogRecord],
}

/// Which copies a server answers a `local` query from, next to the
/// [`LogQuery`] one server sends another: `all` (the default: every line
/// held), `originals` (the lines its own agents sent), or
/// `replicas-of:ID,ID` (the copies it keeps for those servers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogCopies {
    /// As above; absent means `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<String>,
}

impl LogCopies {
    fn of(copies: &drover_logs::Copies) -> LogCopies {
        let text = match copies {
            drover_logs::Copies::All => return LogCopies::default(),
            drover_logs::Copies::Originals => "originals".to_owned(),
            drover_logs::Copies::ReplicasOf(servers) => {
                format!("replicas-of:{}", servers.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            }
        };
        LogCopies { copies: Some(text) }
    }

    fn parse(&self) -> Result<drover_logs::Copies> {
        let Some(text) = self.copies.as_deref().map(str::trim) else { return Ok(drover_logs::Copies::All) };
        let bad = || {
            CodedError::invalid(format!(
                "copies {text:?}: use all, originals or replicas-of:ID,ID (servers set it when they ask each other)"
            ))
        };
        match text {
            "" | "all" => Ok(drover_logs::Copies::All),
            "originals" => Ok(drover_logs::Copies::Originals),
            other => {
                let list = other.strip_prefix("replicas-of:").ok_or_else(bad)?;
                let servers = list
                    .split(',')
                    .filter(|part| !part.trim().is_empty())
                    .map(|part| part.trim().parse::<u64>().map_err(|_| bad()))
                    .collect::<Result<Vec<u64>>>()?;
                Ok(drover_logs::Copies::ReplicasOf(servers))
            }
        }
    }
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
    /// Committed originals, to the replication loop.
    replication: mpsc::Sender<Replication>,
    replication_batches: std::sync::Mutex<Option<mpsc::Receiver<Replication>>>,
    /// Lines acknowledged to agents while no other server took a copy.
    replication_debt: std::sync::atomic::AtomicU64,
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
        let (replication, replication_batches) = mpsc::channel(REPLICATION_QUEUE);
        Ok(LogService {
            store,
            ingest,
            ingest_jobs: std::sync::Mutex::new(Some(jobs)),
            live,
            committed,
            sink_dir,
            sinks: crate::sinks::RunningSinks::default(),
            settings,
            replication,
            replication_batches: std::sync::Mutex::new(Some(replication_batches)),
            replication_debt: std::sync::atomic::AtomicU64::new(0),
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
    let replicating = logs.settings.replication >= 2;
    if let Some(jobs) = jobs {
        let metrics = Arc::clone(&server.inner.self_metrics);
        let outlets = Outlets {
            live: logs.live.clone(),
            committed: logs.committed.clone(),
            replication: replicating.then(|| logs.replication.clone()),
        };
        tokio::spawn(ingest_loop(Arc::clone(index), jobs, outlets, metrics));
    }
    let batches = logs.replication_batches.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(batches) = batches.filter(|_| replicating) {
        tokio::spawn(replication_loop(server.clone(), batches));
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
/// With log replication, the originals of each commit go to the
/// replication loop, which answers their jobs once a second server holds
/// them; copies kept for other servers are answered after the commit and
/// go neither to live readers nor to sinks (their primary serves those).
/// The loop never waits for another server: two servers sending each
/// other copies cannot wait on each other.
async fn ingest_loop(
    store: Arc<RwLock<LogStore>>,
    mut jobs: mpsc::Receiver<IngestJob>,
    outlets: Outlets,
    metrics: Arc<crate::self_metrics::SelfMetrics>,
) {
    let Outlets { live, committed, replication } = outlets;
    // Per origin, the highest seq handed to live readers: a resent line is
    // not shown (nor does it trigger) twice.
    let mut published: HashMap<String, u64> = HashMap::new();
    let mut publish = |job: &IngestJob| {
        if job.replica_of.is_some() {
            return;
        }
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
        let mut originals = Vec::with_capacity(num_records);
        let mut replicas: BTreeMap<u64, Vec<LogRecord>> = BTreeMap::new();
        let mut answers = Vec::with_capacity(batch.len());
        let mut replica_answers = Vec::new();
        for job in batch {
            match job.replica_of {
                None => {
                    originals.extend(job.records);
                    answers.extend(job.done);
                }
                Some(primary) => {
                    replicas.entry(primary).or_default().extend(job.records);
                    replica_answers.extend(job.done);
                }
            }
        }
        // Log sinks and the replication take the originals once durable
        // (a copy only when one of them wants it).
        let wanted = !originals.is_empty() && (committed.receiver_count() > 0 || replication.is_some());
        let shared = wanted.then(|| Arc::new(originals.clone()));
        let records = originals.iter().chain(replicas.values().flatten());
        let (num_lines, num_bytes) = (num_records, records.map(|record| record.message.len()).sum());
        let store = Arc::clone(&store);
        let commit_started = std::time::Instant::now();
        let outcome =
            tokio::task::spawn_blocking(move || write(&store).ingest_copies(originals, replicas.into_iter().collect()))
                .await
                .map_err(|error| error.to_string())
                .and_then(|outcome| outcome.map_err(|error| error.to_string()))
                .map(|_| ());
        metrics.logs.committed(outcome.is_ok(), num_lines, num_bytes, commit_started.elapsed());
        for answer in replica_answers {
            let _ = answer.send(outcome.clone());
        }
        if let Err(error) = &outcome {
            tracing::warn!(%error, "cannot index log lines; agents will send them again");
            for answer in answers {
                let _ = answer.send(outcome.clone());
            }
            continue;
        }
        if let Some(records) = &shared
            && committed.receiver_count() > 0
        {
            let _ = committed.send(Arc::clone(records));
        }
        match (shared, &replication) {
            (Some(records), Some(replication)) => {
                if let Err(mpsc::error::SendError(batch)) = replication.send(Replication { records, answers }).await {
                    for answer in batch.answers {
                        let _ = answer.send(Ok(()));
                    }
                }
            }
            _ => {
                for answer in answers {
                    let _ = answer.send(Ok(()));
                }
            }
        }
    }
}

/// One origin's records of a batch on their way to a second server, with
/// the servers it has left to try, in its order.
type OriginCopy<'a> = (Vec<&'a LogRecord>, std::vec::IntoIter<u64>);

/// Where the ingest loop hands what it committed.
struct Outlets {
    /// Each original as it arrives (`tail -f`, hammers).
    live: broadcast::Sender<Arc<LogRecord>>,
    /// Each commit's originals (log sinks).
    committed: broadcast::Sender<Arc<Vec<LogRecord>>>,
    /// Each commit's originals and their jobs' answers (log replication), when on.
    replication: Option<mpsc::Sender<Replication>>,
}

/// Sends each committed batch of originals to a second server, in commit
/// order (so a server receives each origin's copies in seq order, as the
/// store's de-duplication wants), then answers the batch's jobs: agents get
/// their acknowledgement once two servers hold their lines. Lines no
/// other server would take are acknowledged all the same and counted as
/// replication debt ([`Server::log_replication_debt`]).
async fn replication_loop(server: Server, mut batches: mpsc::Receiver<Replication>) {
    let mut paused: HashMap<u64, tokio::time::Instant> = HashMap::new();
    while let Some(batch) = batches.recv().await {
        let without_copy = server.replicate(&batch.records, &mut paused).await;
        if without_copy > 0 {
            server.inner.logs.replication_debt.fetch_add(without_copy, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                lines = without_copy,
                "no other server took a copy of these log lines: they are acknowledged and held by this server only"
            );
        }
        for answer in batch.answers {
            let _ = answer.send(Ok(()));
        }
    }
}

/// The order in which `origin`'s lines try the servers for their copy:
/// highest score first (rendezvous hashing). The same on every server, and
/// a server joining or leaving moves only the origins it wins or held.
fn replica_order(origin: &str, candidates: &[u64]) -> Vec<u64> {
    let mut scored: Vec<(u64, u64)> =
        candidates.iter().map(|server| (rendezvous_score(origin, *server), *server)).collect();
    scored.sort_unstable_by(|left, right| right.cmp(left));
    scored.into_iter().map(|(_, server)| server).collect()
}

/// FNV-1a of the origin and the server id, finished by a 64-bit mix: stable
/// across builds and platforms.
fn rendezvous_score(origin: &str, server: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in origin.bytes().chain([0u8]).chain(server.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
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
            let _ = server.inner.logs.ingest.send(IngestJob { records, replica_of: None, done: None }).await;
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

/// Where one source stands in a paged search across servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    Start,
    At(Cursor),
    End,
    /// Only for a server's originals: it did not answer, its lines are
    /// read from the replicas the others keep for it until the last page.
    Down,
}

/// What a search across servers reads page by page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// A server's originals.
    Originals(u64),
    /// The replicas a server keeps for the servers that are down.
    Replicas(u64),
}

impl Source {
    fn server_id(self) -> u64 {
        match self {
            Source::Originals(id) | Source::Replicas(id) => id,
        }
    }
}

/// `id=position,…` (`rID=` for a server's replicas): the position of every
/// source in a search across servers.
fn encode_positions(positions: &BTreeMap<Source, Position>) -> String {
    positions
        .iter()
        .map(|(source, position)| {
            let key = match source {
                Source::Originals(id) => id.to_string(),
                Source::Replicas(id) => format!("r{id}"),
            };
            match position {
                Position::Start => format!("{key}=start"),
                Position::At(cursor) => format!("{key}={cursor}"),
                Position::End => format!("{key}=end"),
                Position::Down => format!("{key}=down"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_positions(text: &str) -> Result<BTreeMap<Source, Position>> {
    let bad = || CodedError::invalid(format!("bad cursor {text:?}: pass the next_cursor of a previous page unchanged"));
    let mut positions = BTreeMap::new();
    for part in text.split(',').filter(|part| !part.is_empty()) {
        let (key, position) = part.split_once('=').ok_or_else(bad)?;
        let source = match key.strip_prefix('r') {
            Some(id) => Source::Replicas(id.parse().map_err(|_| bad())?),
            None => Source::Originals(key.parse().map_err(|_| bad())?),
        };
        let position = match position {
            "start" => Position::Start,
            "end" => Position::End,
            "down" => Position::Down,
            cursor => Position::At(cursor.parse().map_err(|_| bad())?),
        };
        positions.insert(source, position);
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
            .send(IngestJob { records, replica_of: None, done: Some(done) })
            .await
            .map_err(|_| CodedError::internal("the log index is shut down"))?;
        Ok(stored)
    }

    /// Keeps the copies another server sent of lines its agents sent it
    /// (log replication), and answers once they are durable here.
    pub async fn store_replica(&self, replica: LogReplica) -> Result<()> {
        if replica.primary == self.id() {
            return Err(CodedError::invalid("a server sent log lines to itself for replication"));
        }
        if replica.records.is_empty() {
            return Ok(());
        }
        if self.inner.logs.store.is_err() {
            return Err(no_log_index());
        }
        let (done, stored) = oneshot::channel();
        let job = IngestJob { records: replica.records, replica_of: Some(replica.primary), done: Some(done) };
        self.inner.logs.ingest.send(job).await.map_err(|_| CodedError::internal("the log index is shut down"))?;
        match stored.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(CodedError::internal(format!("cannot index the copies of log lines: {error}"))),
            Err(_) => Err(CodedError::internal("the log index is shut down")),
        }
    }

    /// Lines this server acknowledged to agents while no other server took
    /// a copy (since it started): they are held by this server only.
    pub fn log_replication_debt(&self) -> u64 {
        self.inner.logs.replication_debt.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends each origin's records of a committed batch to the first
    /// server of [`replica_order`] that takes them; returns how many no
    /// server took. Servers that failed are `paused` for a while.
    async fn replicate(&self, records: &[LogRecord], paused: &mut HashMap<u64, tokio::time::Instant>) -> u64 {
        let own_id = self.id();
        let members = self.members();
        let candidates: Vec<u64> = members
            .iter()
            .filter(|member| member.role == "voter" && member.server_id != own_id)
            .map(|member| member.server_id)
            .collect();
        if candidates.is_empty() {
            // One server: there is no second to hold a copy.
            return 0;
        }
        let address_of: HashMap<u64, &str> =
            members.iter().map(|member| (member.server_id, member.address.as_str())).collect();
        // Per origin: its records and the servers it has left to try.
        let mut by_origin: BTreeMap<&str, Vec<&LogRecord>> = BTreeMap::new();
        for record in records {
            by_origin.entry(record.origin.as_str()).or_default().push(record);
        }
        let mut pending: Vec<OriginCopy<'_>> = by_origin
            .into_iter()
            .map(|(origin, records)| (records, replica_order(origin, &candidates).into_iter()))
            .collect();
        let mut without_copy = 0u64;
        while !pending.is_empty() {
            let now = tokio::time::Instant::now();
            paused.retain(|_, until| *until > now);
            // Each origin to its next server that is not paused.
            let mut by_target: BTreeMap<u64, Vec<OriginCopy<'_>>> = BTreeMap::new();
            for (group, mut order) in pending.drain(..) {
                match order.by_ref().find(|server| !paused.contains_key(server)) {
                    Some(target) => by_target.entry(target).or_default().push((group, order)),
                    None => without_copy += group.len() as u64,
                }
            }
            let sends = by_target.into_iter().map(|(target, groups)| {
                let address = address_of.get(&target).copied().unwrap_or_default().to_owned();
                async move {
                    let all: Vec<&LogRecord> = groups.iter().flat_map(|(group, _)| group.iter().copied()).collect();
                    let outcome = self.send_replica(&address, &all).await;
                    (target, groups, outcome)
                }
            });
            for (target, groups, outcome) in futures_util::future::join_all(sends).await {
                if let Err(error) = outcome {
                    tracing::warn!(server = target, %error, "another server did not take a copy of log lines; trying the next");
                    paused.insert(target, tokio::time::Instant::now() + REPLICA_PEER_PAUSE);
                    pending.extend(groups);
                }
            }
        }
        without_copy
    }

    /// `POST /v1/internal/logs/replica` to the server at `address`.
    async fn send_replica(&self, address: &str, records: &[&LogRecord]) -> std::result::Result<(), String> {
        let body = drover_state::codec::encode(&LogReplicaRef { primary: self.id(), records })
            .map_err(|error| error.to_string())?;
        let url = format!("{}{}", self.inner.network.base_url(address), paths::INTERNAL_LOG_REPLICA);
        let response = crate::network::post_msgpack(self.inner.network.client(), &url, body, REPLICA_TIMEOUT)
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| format!("{url}: {error}"))?;
        if !status.is_success() {
            return Err(format!("{url} answered {status}: {}", String::from_utf8_lossy(&bytes)));
        }
        let answer: std::result::Result<(), String> =
            drover_state::codec::decode(&bytes).map_err(|error| format!("{url}: {error}"))?;
        answer
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
            copies: drover_logs::Copies::All,
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
        let debt = self.log_replication_debt();
        let mut problems: Vec<String> = Vec::new();
        if debt > 0 {
            problems.push(format!(
                "{debt} log lines were acknowledged to agents while no other server took a copy (replication debt \
                 since this server started): they are held by this server only, and lost with its disk"
            ));
        }
        problems.extend(quarantined.iter().map(|partition| {
            format!(
                "its log partition {} is damaged and was moved aside to {}: its lines are left out of searches; \
                     the server log and quarantine.json in that folder say why; delete the folder once inspected",
                partition.name,
                partition.path.display()
            )
        }));
        problems.extend(damaged.iter().map(|partition| {
            format!(
                "its log partition {} is damaged: its lines are left out of searches and it is moved aside shortly",
                partition.name
            )
        }));
        problems
    }

    /// Asks `members` (other servers); returns their answers and the
    /// members that did not answer. A server that refuses the request (a
    /// bad query) makes the whole request fail.
    async fn ask_peers<T: DeserializeOwned + Send>(
        &self,
        members: &[Member],
        path: &str,
        query: &LogQuery,
        extra: &(impl Serialize + Sync),
        copies: &LogCopies,
    ) -> Result<(Vec<T>, Vec<Member>)> {
        let asks = members.iter().map(|member| async move {
            (member, self.ask_one_peer::<T>(&member.address, path, query, extra, copies).await)
        });
        let mut answers = Vec::new();
        let mut unreachable = Vec::new();
        for (member, answer) in futures_util::future::join_all(asks).await {
            match answer? {
                Some(answer) => answers.push(answer),
                None => unreachable.push(member.clone()),
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
        self.search_logs_of(query, page, &LogCopies::default()).await
    }

    /// [`Server::search_logs`]; a `local` query answers from the `copies`
    /// asked for (servers ask each other so). Across servers, each line is
    /// read once: every server's originals, and for a server that does not
    /// answer, the replicas the others keep for it; lines held twice all
    /// the same (an agent that moved mid-batch) are shown once.
    pub async fn search_logs_of(
        &self,
        query: LogQuery,
        page: LogPage,
        copies: &LogCopies,
    ) -> Result<LogSearchResponse> {
        let limit = page.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let filter = self.log_filter(&query, now_nanos())?;
        if query.local {
            let filter = Filter { copies: copies.parse()?, ..filter };
            return self.search_local(filter, &page).await;
        }
        let mut positions = match page.cursor.as_deref() {
            Some(text) => decode_positions(text)?,
            None => BTreeMap::new(),
        };
        let peer_query = Self::peer_query(&query, &filter);
        let page_of = |position: Option<&Position>| match position {
            Some(Position::At(cursor)) => LogPage { limit: Some(limit), cursor: Some(cursor.to_string()) },
            Some(Position::End | Position::Down) => LogPage { limit: Some(0), cursor: None },
            Some(Position::Start) | None => LogPage { limit: Some(limit), cursor: None },
        };
        let own_id = self.id();
        let peers: Vec<Member> = self.peers();
        // Every server's originals at once, each from its own position (a
        // server already read through replicas is not asked).
        let is_down = |positions: &BTreeMap<Source, Position>, id: u64| {
            positions.get(&Source::Originals(id)) == Some(&Position::Down)
        };
        let asked: Vec<(Source, Option<&Member>)> = std::iter::once((Source::Originals(own_id), None))
            .chain(peers.iter().map(|member| (Source::Originals(member.server_id), Some(member))))
            .filter(|(source, _)| !is_down(&positions, source.server_id()))
            .collect();
        let (mut pages, missing) = self
            .search_sources(&asked, &filter, &peer_query, &drover_logs::Copies::Originals, &positions, &page_of)
            .await?;
        let mut unreachable: Vec<String> = missing.iter().map(|member| member.address.clone()).collect();
        for member in &missing {
            let source = Source::Originals(member.server_id);
            if positions.get(&source) != Some(&Position::End) {
                positions.insert(source, Position::Down);
            }
        }
        // The lines of the servers that are down, from the replicas the
        // others keep for them.
        let down: Vec<u64> = positions
            .iter()
            .filter(|(_, position)| **position == Position::Down)
            .map(|(source, _)| source.server_id())
            .collect();
        if !down.is_empty() {
            let answering: Vec<(Source, Option<&Member>)> = std::iter::once((Source::Replicas(own_id), None))
                .chain(
                    peers
                        .iter()
                        .filter(|member| !missing.iter().any(|gone| gone.server_id == member.server_id))
                        .map(|member| (Source::Replicas(member.server_id), Some(member))),
                )
                .collect();
            let replicas = drover_logs::Copies::ReplicasOf(down);
            let (replica_pages, also_missing) =
                self.search_sources(&answering, &filter, &peer_query, &replicas, &positions, &page_of).await?;
            pages.extend(replica_pages);
            for member in also_missing {
                if !unreachable.contains(&member.address) {
                    unreachable.push(member.address.clone());
                }
            }
        }
        let damaged: Vec<String> = pages.iter().flat_map(|(_, page)| page.damaged.iter().cloned()).collect();
        let total_matching = pages.iter().map(|(_, page)| page.total_matching).sum();
        // Merge newest first; within a source its own order is kept.
        let mut merged: Vec<(i64, Source, usize, usize)> = Vec::new();
        for (page_index, (source, page)) in pages.iter().enumerate() {
            for (record_index, record) in page.records.iter().enumerate() {
                merged.push((record.timestamp, *source, page_index, record_index));
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
        for (page_index, (source, page)) in pages.iter().enumerate() {
            let taken = taken_per_page[page_index];
            let position = if taken == page.records.len() && page.next_cursor.is_none() {
                Position::End
            } else if taken > 0 {
                match page.cursors.get(taken - 1).map(|text| text.parse::<Cursor>()) {
                    Some(Ok(cursor)) => Position::At(cursor),
                    _ => return Err(CodedError::internal("a server answered a search without cursors")),
                }
            } else {
                positions.get(source).copied().unwrap_or(Position::Start)
            };
            positions.insert(*source, position);
        }
        let next_cursor = positions
            .values()
            .any(|position| !matches!(position, Position::End | Position::Down))
            .then(|| encode_positions(&positions));
        Ok(LogSearchResponse { records, cursors: Vec::new(), next_cursor, total_matching, unreachable, damaged })
    }

    /// One page of each source (`None`: this server), of the `copies`
    /// given, from its position; the pages of those that answered and the
    /// members that did not.
    async fn search_sources(
        &self,
        sources: &[(Source, Option<&Member>)],
        filter: &Filter,
        peer_query: &LogQuery,
        copies: &drover_logs::Copies,
        positions: &BTreeMap<Source, Position>,
        page_of: &(impl Fn(Option<&Position>) -> LogPage + Sync),
    ) -> Result<(Vec<(Source, LogSearchResponse)>, Vec<Member>)> {
        let peer_copies = LogCopies::of(copies);
        let asks = sources.iter().map(|(source, member)| {
            let paging = page_of(positions.get(source));
            let peer_copies = &peer_copies;
            async move {
                let page = match member {
                    None => {
                        let filter = Filter { copies: copies.clone(), ..filter.clone() };
                        self.search_local(filter, &paging).await.map(Some)
                    }
                    Some(member) => {
                        self.ask_one_peer::<LogSearchResponse>(
                            &member.address,
                            paths::LOGS_SEARCH,
                            peer_query,
                            &paging,
                            peer_copies,
                        )
                        .await
                    }
                };
                (*source, *member, page)
            }
        });
        let mut pages = Vec::new();
        let mut missing = Vec::new();
        for (source, member, page) in futures_util::future::join_all(asks).await {
            match (page?, member) {
                (Some(page), _) => pages.push((source, page)),
                (None, Some(member)) => missing.push(member.clone()),
                (None, None) => {}
            }
        }
        Ok((pages, missing))
    }

    /// GET one peer; `Ok(None)` when it cannot be reached.
    async fn ask_one_peer<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        query: &LogQuery,
        extra: &(impl Serialize + Sync),
        copies: &LogCopies,
    ) -> Result<Option<T>> {
        let url = format!("{}{path}", self.inner.network.base_url(address));
        let request =
            self.inner.network.client().get(&url).query(query).query(extra).query(copies).timeout(PEER_TIMEOUT);
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

    /// Asks this server (`local`, given the copies to read) and every other
    /// for each line once: every server's originals, then, for the servers
    /// that did not answer, the replicas the others keep for them. The
    /// answers, and the addresses of the servers that did not answer.
    async fn ask_everyone<T, Local, Answer>(
        &self,
        path: &str,
        peer_query: &LogQuery,
        extra: &(impl Serialize + Sync),
        local: Local,
    ) -> Result<(Vec<T>, Vec<String>)>
    where
        T: DeserializeOwned + Send,
        Local: Fn(drover_logs::Copies) -> Answer,
        Answer: std::future::Future<Output = Result<T>>,
    {
        let originals = drover_logs::Copies::Originals;
        let peers = self.peers();
        let peer_copies = LogCopies::of(&originals);
        let (local_answer, peer_answers) =
            tokio::join!(local(originals), self.ask_peers::<T>(&peers, path, peer_query, extra, &peer_copies));
        let (mut answers, missing) = peer_answers?;
        answers.insert(0, local_answer?);
        let mut unreachable: Vec<String> = missing.iter().map(|member| member.address.clone()).collect();
        if !missing.is_empty() {
            let replicas = drover_logs::Copies::ReplicasOf(missing.iter().map(|member| member.server_id).collect());
            let answering: Vec<Member> = peers
                .into_iter()
                .filter(|member| !missing.iter().any(|gone| gone.server_id == member.server_id))
                .collect();
            let peer_copies = LogCopies::of(&replicas);
            let (local_answer, peer_answers) =
                tokio::join!(local(replicas), self.ask_peers::<T>(&answering, path, peer_query, extra, &peer_copies));
            let (replica_answers, also_missing) = peer_answers?;
            answers.push(local_answer?);
            answers.extend(replica_answers);
            unreachable.extend(also_missing.into_iter().map(|member| member.address));
        }
        Ok((answers, unreachable))
    }

    /// The most frequent values of a field among matching records, from
    /// every server.
    pub async fn count_logs(&self, query: LogQuery, count_by: LogCountBy) -> Result<LogCountResponse> {
        self.count_logs_of(query, count_by, &LogCopies::default()).await
    }

    /// [`Server::count_logs`]; a `local` query counts the `copies` asked
    /// for. Across servers each line is counted once (see
    /// [`Server::search_logs_of`]).
    pub async fn count_logs_of(
        &self,
        query: LogQuery,
        count_by: LogCountBy,
        copies: &LogCopies,
    ) -> Result<LogCountResponse> {
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
        let count_here = |copies: drover_logs::Copies| {
            let (filter, by) = (Filter { copies, ..filter.clone() }, by.clone());
            async move {
                let local = self.with_store(move |store| store.count_by(&filter, &by, wanted)).await?;
                Ok(LogCountResponse {
                    by: String::new(),
                    counts: local.counts.into_iter().map(|(value, count)| LogCount { value, count }).collect(),
                    unreachable: Vec::new(),
                    damaged: self.name_damaged(&local.damaged),
                })
            }
        };
        let (answers, unreachable) = if query.local {
            (vec![count_here(copies.parse()?).await?], Vec::new())
        } else {
            let peer = LogCountBy { by: by.clone(), top: Some(wanted) };
            let peer_query = Self::peer_query(&query, &filter);
            self.ask_everyone::<LogCountResponse, _, _>(paths::LOGS_COUNT, &peer_query, &peer, count_here).await?
        };
        let mut damaged = Vec::new();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for answer in answers {
            damaged.extend(answer.damaged);
            for count in answer.counts {
                *totals.entry(count.value).or_default() += count.count;
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
        self.log_histogram_of(query, interval, &LogCopies::default()).await
    }

    /// [`Server::log_histogram`]; a `local` query counts the `copies`
    /// asked for. Across servers each line is counted once (see
    /// [`Server::search_logs_of`]).
    pub async fn log_histogram_of(
        &self,
        query: LogQuery,
        interval: LogInterval,
        copies: &LogCopies,
    ) -> Result<LogHistogramResponse> {
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
        let count_here = |copies: drover_logs::Copies| {
            let filter = Filter { copies, ..filter.clone() };
            async move {
                let local = self.with_store(move |store| store.histogram(&filter, interval)).await?;
                Ok(LogHistogramResponse {
                    interval_nanos: interval,
                    buckets: local.buckets.into_iter().map(|(start, count)| LogBucket { start, count }).collect(),
                    unreachable: Vec::new(),
                    damaged: self.name_damaged(&local.damaged),
                })
            }
        };
        let (answers, unreachable) = if query.local {
            (vec![count_here(copies.parse()?).await?], Vec::new())
        } else {
            let peer = LogInterval { interval: Some(format!("{interval}ns")) };
            let peer_query = Self::peer_query(&query, &filter);
            self.ask_everyone::<LogHistogramResponse, _, _>(paths::LOGS_HISTOGRAM, &peer_query, &peer, count_here)
                .await?
        };
        let mut damaged = Vec::new();
        let mut totals: BTreeMap<i64, u64> = BTreeMap::new();
        for answer in answers {
            damaged.extend(answer.damaged);
            for bucket in answer.buckets {
                *totals.entry(bucket.start).or_default() += bucket.count;
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
        // Its own lines: another server's copies are that server's to send.
        let filter = Filter {
            since: Some(since),
            until: Some(until),
            copies: drover_logs::Copies::Originals,
            ..Filter::default()
        };
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
            (Source::Originals(1), Position::At(Cursor { timestamp: -5, row: 3 })),
            (Source::Originals(2), Position::End),
            (Source::Originals(3), Position::Start),
            (Source::Originals(4), Position::Down),
            (Source::Replicas(1), Position::At(Cursor { timestamp: 7, row: 0 })),
        ]);
        let text = encode_positions(&positions);
        assert_eq!(text, "1=-5-3,2=end,3=start,4=down,r1=7-0");
        assert_eq!(decode_positions(&text).unwrap(), positions);
        assert!(decode_positions("1=nonsense").is_err());
        assert!(decode_positions("x=end").is_err());
        assert!(decode_positions("rx=end").is_err());
    }

    #[test]
    fn copies_between_servers_round_trip_and_garbage_is_refused() {
        use drover_logs::Copies;
        for copies in [Copies::All, Copies::Originals, Copies::ReplicasOf(vec![3]), Copies::ReplicasOf(vec![1, 22])] {
            assert_eq!(LogCopies::of(&copies).parse().unwrap(), copies);
        }
        assert_eq!(LogCopies::of(&Copies::ReplicasOf(vec![1, 22])).copies.as_deref(), Some("replicas-of:1,22"));
        for garbage in ["some", "replicas-of:x", "replicas:1"] {
            let error = LogCopies { copies: Some(garbage.to_owned()) }.parse().unwrap_err();
            assert!(error.message.contains("replicas-of:ID"), "{}", error.message);
        }
    }

    #[test]
    fn each_origin_tries_the_servers_in_one_order_everywhere() {
        let servers = [11, 22, 33, 44];
        let order = replica_order("node-a", &servers);
        assert_eq!(order.len(), 4);
        assert_eq!(order, replica_order("node-a", &[44, 33, 22, 11]), "the order does not depend on the listing");
        // Without its first choice an origin goes to its second; the others keep theirs.
        let without_first: Vec<u64> = servers.iter().copied().filter(|server| *server != order[0]).collect();
        assert_eq!(replica_order("node-a", &without_first), order[1..]);
        // Origins spread over the servers.
        let firsts: HashSet<u64> = (0..64).map(|index| replica_order(&format!("node-{index}"), &servers)[0]).collect();
        assert_eq!(firsts.len(), 4);
    }

    #[test]
    fn default_histogram_intervals_give_about_sixty_buckets() {
        assert_eq!(default_interval(3_600_000_000_000), 60_000_000_000);
        assert_eq!(default_interval(6 * 3_600_000_000_000), 600_000_000_000);
        assert_eq!(default_interval(1), 1_000_000_000);
    }
}
