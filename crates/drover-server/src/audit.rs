//! The audit log: every write and every refused request, replicated and
//! indexed.
//!
//! ```text
//!  API middleware ──Server::audit(event)──▶ pending ──(group commit)──▶ Raft: Access::RecordAudit
//!                                                               └──▶ this server's log index, source "audit"
//!  a secure server's write request: with_request_audit(event) ─▶ its first Server::propose
//!      carries it: Command::Audited{write, event}, one entry ─▶ indexed as above
//!  leader, hourly: Access::PruneAudit (older than --audit-retention, default 90 days)
//! ```
//!
//! Events are group-committed like task-state updates: what arrives while
//! one batch commits goes into the next. The event of a write request
//! rides on the write itself, so that the request is answered after one
//! commit, not two; when the answer says more (a note, a failure), the
//! API commits the completed event with the same `request_id`, which
//! replaces the first. The server that received the
//! request indexes the event in its own log index (searches ask every
//! server, so one copy is enough), where it can be searched
//! (`source:audit`), tailed and alerted on like any line.

use std::sync::Mutex;
use std::time::Duration;

use drover_types::acl::{AuditEvent, AuditOutcome};
use drover_types::{LogRecord, Timestamp};
use tokio::sync::{Notify, oneshot};

use crate::server::Server;

/// How long audit events are kept by default.
pub const AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The most events waiting for a commit; beyond it the oldest are
/// dropped (and counted in the server's log), so a server cut off from
/// its leader cannot grow without bound.
const PENDING_MAX: usize = 100_000;

/// Events waiting to be committed.
#[derive(Debug, Default)]
pub(crate) struct AuditLog {
    pending: Mutex<Pending>,
    wake: Notify,
}

/// Events not yet committed, and who waits for them; and events already
/// committed with their request's write, waiting only to be indexed.
#[derive(Debug, Default)]
struct Pending {
    events: Vec<AuditEvent>,
    waiters: Vec<oneshot::Sender<()>>,
    committed: Vec<AuditEvent>,
}

tokio::task_local! {
    /// The audit event of the request this task serves, while it waits to
    /// ride on the request's first write ([`Server::propose`]).
    static REQUEST_AUDIT: std::sync::Arc<Mutex<RequestAudit>>;
}

/// Where a request's audit event stands.
#[derive(Debug)]
enum RequestAudit {
    /// Not yet written: the next proposal of the request carries it.
    Waiting(AuditEvent),
    /// A proposal carrying it is under way.
    Proposing(AuditEvent),
    /// Committed with the request's write, as it was then.
    Committed(AuditEvent),
}

/// Runs a request's handler with `event` ready to be committed with its
/// first write, in the same Raft entry ([`drover_state::Command::Audited`]):
/// the request is answered after one commit instead of two. Returns the
/// handler's output and the event as committed, if a write carried it.
/// The event gets a random `request_id`, by which a completion replaces it.
pub async fn with_request_audit<F: std::future::Future>(
    mut event: AuditEvent,
    handler: F,
) -> (F::Output, Option<AuditEvent>) {
    event.request_id = rand::random::<u64>().max(1);
    let slot = std::sync::Arc::new(Mutex::new(RequestAudit::Waiting(event)));
    let output = REQUEST_AUDIT.scope(std::sync::Arc::clone(&slot), handler).await;
    let committed = match &*slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
        RequestAudit::Committed(event) => Some(event.clone()),
        RequestAudit::Waiting(_) | RequestAudit::Proposing(_) => None,
    };
    (output, committed)
}

/// Wraps `command` with the waiting audit event of the request this task
/// serves, if any; [`settle_request_audit`] records how the proposal ended.
pub(crate) fn with_waiting_request_audit(command: drover_state::Command) -> (drover_state::Command, bool) {
    let event = REQUEST_AUDIT
        .try_with(|slot| {
            let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*slot {
                RequestAudit::Waiting(event) => {
                    let event = event.clone();
                    *slot = RequestAudit::Proposing(event.clone());
                    Some(event)
                }
                RequestAudit::Proposing(_) | RequestAudit::Committed(_) => None,
            }
        })
        .ok()
        .flatten();
    match event {
        Some(event) => (drover_state::Command::Audited { command: Box::new(command), event }, true),
        None => (command, false),
    }
}

/// After a proposal that carried the request's audit event: committed, or
/// waiting again for the next write (or for the API to commit it alone).
pub(crate) fn settle_request_audit(committed: bool) {
    let _ = REQUEST_AUDIT.try_with(|slot| {
        let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let RequestAudit::Proposing(event) = &*slot {
            let event = event.clone();
            *slot = if committed { RequestAudit::Committed(event) } else { RequestAudit::Waiting(event) };
        }
    });
}

/// Which audit events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only events at or after this.
    pub since: Option<Timestamp>,
    /// Only events by this name or accessor.
    pub by: Option<String>,
    /// Only events whose action starts with this (`exec`, `job.register`).
    pub kind: Option<String>,
    /// Only events with this outcome (`ok`, `refused`, `failed`).
    pub outcome: Option<String>,
    /// At most this many (the newest).
    pub limit: usize,
}

impl AuditFilter {
    fn matches(&self, event: &AuditEvent) -> bool {
        self.since.is_none_or(|since| event.at >= since)
            && self.by.as_ref().is_none_or(|by| event.name == *by || event.accessor.as_deref() == Some(by.as_str()))
            && self.kind.as_ref().is_none_or(|kind| {
                event.action == *kind
                    || event.action.strip_prefix(kind.as_str()).is_some_and(|rest| rest.starts_with('.'))
            })
            && self.outcome.as_ref().is_none_or(|outcome| event.outcome.as_str() == outcome)
    }
}

impl Server {
    /// Records an audit event (committed in the next batch).
    pub fn audit(&self, event: AuditEvent) {
        drop(self.queue_audit(event));
    }

    /// Records an audit event and waits (at most `patience`) until it is
    /// committed: a write is acknowledged only once its audit event would
    /// survive the loss of this server.
    pub async fn audit_committed(&self, event: AuditEvent, patience: Duration) {
        let committed = self.queue_audit(event);
        if tokio::time::timeout(patience, committed).await.is_err() {
            tracing::warn!("an audit event is not committed yet (no leader?); answering without waiting longer");
        }
    }

    /// Indexes an event already committed with its request's write.
    pub fn audit_committed_with_write(&self, event: AuditEvent) {
        let mut pending = self.inner.audit.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.committed.len() >= PENDING_MAX {
            pending.committed.remove(0);
        }
        pending.committed.push(event);
        drop(pending);
        self.inner.audit.wake.notify_one();
    }

    fn queue_audit(&self, event: AuditEvent) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut pending = self.inner.audit.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.events.len() >= PENDING_MAX {
            pending.events.remove(0);
            tracing::warn!("audit events are not being committed (no leader?); dropped the oldest");
        }
        pending.events.push(event);
        pending.waiters.push(sender);
        drop(pending);
        self.inner.audit.wake.notify_one();
        receiver
    }

    fn take_audit(&self) -> Pending {
        std::mem::take(&mut *self.inner.audit.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Puts a batch that could not be committed back before what came since.
    fn requeue_audit(&self, mut batch: Pending) {
        let mut pending = self.inner.audit.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        batch.events.append(&mut pending.events);
        batch.waiters.append(&mut pending.waiters);
        batch.committed.append(&mut pending.committed);
        let excess = batch.events.len().saturating_sub(PENDING_MAX);
        batch.events.drain(..excess);
        *pending = batch;
    }

    /// The audit events `filter` selects, oldest first: a consistent read,
    /// so what any server acknowledged is in the answer whichever server
    /// gives it.
    pub async fn audit_events(&self, filter: &AuditFilter) -> crate::Result<Vec<AuditEvent>> {
        let state = self.consistent_state().await?;
        let mut events: Vec<AuditEvent> = state
            .access()
            .audit()
            .iter()
            .rev()
            .filter(|event| filter.matches(event))
            .take(filter.limit.max(1))
            .cloned()
            .collect();
        events.reverse();
        Ok(events)
    }
}

/// Commits audit events in batches and indexes them; on the leader, prunes
/// old ones every hour.
pub(crate) fn spawn_audit_writer(server: Server) {
    let writer = server.clone();
    tokio::spawn(async move {
        let mut last_seq = 0u64;
        loop {
            tokio::select! {
                () = writer.shutdown_token().cancelled() => return,
                () = writer.inner.audit.wake.notified() => {}
            }
            loop {
                let batch = writer.take_audit();
                if batch.events.is_empty() && batch.committed.is_empty() {
                    break;
                }
                let proposed = if batch.events.is_empty() {
                    Ok(())
                } else {
                    let command = drover_state::Command::Access {
                        op: drover_state::access::AccessOp::RecordAudit { events: batch.events.clone() },
                    };
                    writer.propose(command).await.map(drop)
                };
                match proposed {
                    Ok(()) => {
                        for waiter in batch.waiters {
                            let _ = waiter.send(());
                        }
                        let records = batch
                            .committed
                            .iter()
                            .chain(&batch.events)
                            .map(|event| record_of(event, writer.id(), &mut last_seq))
                            .collect();
                        if let Err(error) = writer.ingest_local(records).await {
                            tracing::debug!(%error, "cannot index audit events");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, events = batch.events.len(), "cannot commit audit events; retrying");
                        writer.requeue_audit(batch);
                        tokio::select! {
                            () = writer.shutdown_token().cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = server.shutdown_token().cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
            if !server.is_leader() {
                continue;
            }
            let before = Timestamp::now().minus(server.config().audit_retention);
            let oldest = server.state().access().audit().front().map(|event| event.at);
            if oldest.is_some_and(|oldest| oldest < before) {
                let command =
                    drover_state::Command::Access { op: drover_state::access::AccessOp::PruneAudit { before } };
                if let Err(error) = server.propose(command).await {
                    tracing::warn!(%error, "cannot prune old audit events");
                }
            }
        }
    });
}

/// An audit event as a log line: `action target outcome` with every
/// field as a searchable `key=value`.
fn record_of(event: &AuditEvent, server_id: u64, last_seq: &mut u64) -> LogRecord {
    let received = crate::logs::now_nanos();
    *last_seq = last_seq.saturating_add(1).max(u64::try_from(received).unwrap_or(0));
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("action".to_owned(), event.action.clone());
    fields.insert("by".to_owned(), event.name.clone());
    fields.insert("target".to_owned(), event.target.clone());
    fields.insert("outcome".to_owned(), event.outcome.as_str().to_owned());
    if let Some(accessor) = &event.accessor {
        fields.insert("accessor".to_owned(), accessor.clone());
    }
    let reason = match &event.outcome {
        AuditOutcome::Ok => String::new(),
        AuditOutcome::Refused(reason) | AuditOutcome::Failed(reason) => format!(": {reason}"),
    };
    let details = if event.details.is_empty() { String::new() } else { format!(" ({})", event.details) };
    LogRecord {
        origin: format!("audit@{server_id}"),
        seq: *last_seq,
        timestamp: event.at.as_millis().saturating_mul(1_000_000),
        received,
        node: format!("server-{server_id}"),
        hostgroup: None,
        environment: None,
        job: None,
        group: None,
        task: None,
        alloc: None,
        source: "audit".to_owned(),
        stream: event.action.clone(),
        level: Some(if matches!(event.outcome, AuditOutcome::Ok) { "info" } else { "warning" }.to_owned()),
        message: format!(
            "{} {} by {} {}{reason}{details}",
            event.action,
            event.target,
            event.name,
            event.outcome.as_str()
        ),
        fields,
    }
}
