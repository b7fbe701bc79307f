//! The dispatcher: an outbox of deliveries, each retried with backoff until
//! it is delivered or has visibly failed.
//!
//! ```text
//!  send ──▶ queued ──▶ sending ──▶ delivered
//!             ▲           │
//!             └── wait ◀──┤  retryable error, attempts and age left
//!                         ▼
//!                      failed ── retry (by hand) ──▶ queued
//! ```
//!
//! Every [`Dispatcher::send`] makes a [`DeliveryRecord`] with a fresh
//! [`DeliveryId`]; the record says where the delivery is (queued, being
//! sent, delivered, failed), how many attempts it took and the last error.
//! [`Dispatcher::deliveries`] lists them: a notification that cannot be
//! delivered ends as `failed` with its reason, never silently dropped.
//!
//! Each delivery runs as its own task: it waits for its next attempt, takes
//! one of its notifier's `max_concurrent` permits, makes the attempt under
//! the notifier's timeout, and either finishes or waits out the backoff of
//! the notifier's [`RetryPolicy`](crate::RetryPolicy). The notifier is
//! looked up by name at every attempt, so a changed site applies to
//! retries, and a removed notifier fails the deliveries still queued for
//! it.
//!
//! With an outbox directory, every change of a record is appended to
//! `outbox.jsonl` there and synced before the change counts
//! ([`crate::outbox`]); a dispatcher started on the same directory resumes
//! the queued deliveries (one that was being sent is tried again: delivery
//! is at least once, and the delivery id travels with every attempt so a
//! receiver can tell a repeat).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use drover_types::Timestamp;
use rand::Rng as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::error::{DeliveryError, Error, Result};
use crate::notifier::NotifierConfig;
use crate::outbox::Outbox;
use drover_react::delivery::{DeliveryId, DeliveryRecord, DeliveryStatus, Notification};

/// Finished (delivered or failed) records kept for [`Dispatcher::deliveries`]
/// unless [`DispatcherOptions::keep_finished`] says otherwise.
pub const DEFAULT_KEEP_FINISHED: usize = 1000;

/// How a [`Dispatcher`] is set up.
#[derive(Clone, Debug)]
pub struct DispatcherOptions {
    /// Where the outbox file lives; `None` keeps deliveries in memory only
    /// (queued ones are lost with the process).
    pub outbox_dir: Option<PathBuf>,
    /// Finished deliveries kept (and listed); older ones are forgotten.
    pub keep_finished: usize,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions { outbox_dir: None, keep_finished: DEFAULT_KEEP_FINISHED }
    }
}

/// A notifier with the permits that bound its concurrent deliveries.
#[derive(Debug)]
struct Slot {
    config: Arc<NotifierConfig>,
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct Shared {
    notifiers: RwLock<BTreeMap<String, Slot>>,
    records: Mutex<HashMap<DeliveryId, DeliveryRecord>>,
    /// Taken around every change of a record, so that the order of the
    /// lines in the file is the order of the changes.
    outbox: tokio::sync::Mutex<Option<Outbox>>,
    http: reqwest::Client,
    keep_finished: usize,
    changed: tokio::sync::watch::Sender<u64>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// Delivers notifications, retries them and remembers what became of each.
///
/// Cheap to clone: clones share one outbox. Needs a tokio runtime.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl Dispatcher {
    /// A dispatcher for `notifiers`; with an outbox directory, it reads the
    /// outbox back and resumes the deliveries left queued there.
    ///
    /// Fails when the outbox cannot be created or read, or the HTTP client
    /// cannot be built.
    pub async fn start(notifiers: Vec<NotifierConfig>, options: DispatcherOptions) -> Result<Dispatcher> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| Error::HttpClient(drover_types::error::error_chain(&error)))?;
        let (outbox, loaded) = match &options.outbox_dir {
            Some(dir) => {
                let (outbox, records) = Outbox::open(dir).await?;
                (Some(outbox), records)
            }
            None => (None, Vec::new()),
        };
        let (changed, _) = tokio::sync::watch::channel(0);
        let dispatcher = Dispatcher {
            shared: Arc::new(Shared {
                notifiers: RwLock::new(BTreeMap::new()),
                records: Mutex::new(HashMap::new()),
                outbox: tokio::sync::Mutex::new(outbox),
                http,
                keep_finished: options.keep_finished,
                changed,
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        dispatcher.set_notifiers(notifiers);
        let mut resumed = Vec::new();
        {
            let mut records = dispatcher.shared.lock_records();
            for mut record in loaded {
                if record.status == DeliveryStatus::Sending {
                    // The attempt was cut off by the restart: whether it
                    // arrived is unknown, so it is made again.
                    record.status = DeliveryStatus::Queued;
                    record.next_attempt_at = Some(Timestamp::now());
                }
                if record.status == DeliveryStatus::Queued {
                    resumed.push(record.id.clone());
                }
                records.insert(record.id.clone(), record);
            }
        }
        if !resumed.is_empty() {
            info!(num_resumed = resumed.len(), "resuming queued notification deliveries from the outbox");
        }
        for id in resumed {
            dispatcher.spawn(id);
        }
        Ok(dispatcher)
    }

    /// Replaces the notifiers (after a site was applied). Deliveries still
    /// queued use the new definition of their notifier at their next
    /// attempt, and fail there if it is gone.
    pub fn set_notifiers(&self, notifiers: Vec<NotifierConfig>) {
        let mut slots = self.shared.notifiers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = BTreeMap::new();
        for config in notifiers {
            let max_concurrent = config.max_concurrent.max(1);
            let permits = match slots.remove(&config.name) {
                Some(slot) if slot.config.max_concurrent.max(1) == max_concurrent => slot.permits,
                _ => Arc::new(Semaphore::new(max_concurrent)),
            };
            next.insert(config.name.clone(), Slot { config: Arc::new(config), permits });
        }
        *slots = next;
    }

    /// Queues `notification` for the notifier named `notifier` and answers
    /// its delivery id at once; delivery happens in the background.
    ///
    /// With an outbox, the record is on disk when this returns. Nothing
    /// fails here: an unknown notifier makes a delivery that fails (and
    /// shows why), an outbox that cannot be written is logged and the
    /// delivery goes on in memory.
    pub async fn send(&self, notifier: &str, notification: Notification) -> DeliveryId {
        let record = DeliveryRecord::queued(notifier, notification, Timestamp::now());
        let id = record.id.clone();
        // The first attempt need not wait for the outbox's fsync: its outcome
        // is written after the queued record (the outbox lock orders them),
        // and a crash before that fsync loses the notification either way.
        self.shared.store_then(record, || self.spawn(id.clone())).await;
        id
    }

    /// Every delivery known, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        let mut records: Vec<DeliveryRecord> = self.shared.lock_records().values().cloned().collect();
        records.sort_by(|left, right| left.queued_at.cmp(&right.queued_at).then_with(|| left.id.cmp(&right.id)));
        records
    }

    /// One delivery.
    pub fn delivery(&self, id: &DeliveryId) -> Option<DeliveryRecord> {
        self.shared.lock_records().get(id).cloned()
    }

    /// Queues a failed delivery again, with its attempts counted afresh.
    pub async fn retry(&self, id: &DeliveryId) -> Result<()> {
        let record = {
            let records = self.shared.lock_records();
            let record = records.get(id).ok_or_else(|| Error::UnknownDelivery(id.clone()))?;
            if record.status != DeliveryStatus::Failed {
                return Err(Error::NotFailed { id: id.clone(), status: record.status.as_str() });
            }
            let mut record = record.clone();
            let now = Timestamp::now();
            record.status = DeliveryStatus::Queued;
            record.attempts = 0;
            record.queued_at = now;
            record.next_attempt_at = Some(now);
            record.failed_at = None;
            record.failure = None;
            record
        };
        self.shared.store(record).await;
        self.spawn(id.clone());
        Ok(())
    }

    /// Waits until the delivery `id` is delivered or failed, and answers
    /// its record.
    pub async fn wait_finished(&self, id: &DeliveryId) -> Result<DeliveryRecord> {
        let mut changes = self.shared.changed.subscribe();
        loop {
            let record = self.delivery(id).ok_or_else(|| Error::UnknownDelivery(id.clone()))?;
            if record.status.is_finished() {
                return Ok(record);
            }
            if changes.changed().await.is_err() {
                return Ok(record);
            }
        }
    }

    /// Stops every delivery task and waits for them. Deliveries not
    /// finished stay in the outbox for the next start.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    fn spawn(&self, id: DeliveryId) {
        let shared = Arc::clone(&self.shared);
        self.shared.tasks.spawn(async move {
            let cancel = shared.cancel.clone();
            tokio::select! {
                () = cancel.cancelled() => {}
                () = run_delivery(&shared, &id) => {}
            }
        });
    }
}

impl Shared {
    fn lock_records(&self) -> MutexGuard<'_, HashMap<DeliveryId, DeliveryRecord>> {
        // A panic while holding the lock cannot leave a record half
        // written: every change replaces a whole record.
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts `record` in place in memory only.
    fn remember(&self, record: DeliveryRecord) {
        self.lock_records().insert(record.id.clone(), record);
        self.changed.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Puts `record` in place, in memory and in the outbox.
    async fn store(&self, record: DeliveryRecord) {
        self.store_then(record, || {}).await;
    }

    /// [`Shared::store`], calling `in_memory` once the record is in memory,
    /// before it is written to the outbox.
    async fn store_then(&self, record: DeliveryRecord, in_memory: impl FnOnce()) {
        let mut outbox = self.outbox.lock().await;
        let num_live = {
            let mut records = self.lock_records();
            let finished = record.status.is_finished();
            records.insert(record.id.clone(), record.clone());
            if finished {
                forget_oldest_finished(&mut records, self.keep_finished);
            }
            records.len()
        };
        in_memory();
        if let Some(file) = outbox.as_mut() {
            match file.append(&record, num_live).await {
                Ok(false) => {}
                Ok(true) => {
                    let snapshot: Vec<DeliveryRecord> = {
                        let records = self.lock_records();
                        let mut snapshot: Vec<DeliveryRecord> = records.values().cloned().collect();
                        snapshot.sort_by_key(|record| record.queued_at);
                        snapshot
                    };
                    if let Err(error) = file.rewrite(&snapshot).await {
                        error!(%error, "cannot compact the notification outbox");
                    }
                }
                Err(error) => {
                    error!(delivery = %record.id, %error, "cannot write the notification outbox; the delivery is kept in memory only");
                }
            }
        }
        drop(outbox);
        self.changed.send_modify(|version| *version = version.wrapping_add(1));
    }

    fn slot(&self, name: &str) -> Option<(Arc<NotifierConfig>, Arc<Semaphore>)> {
        let slots = self.notifiers.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.get(name).map(|slot| (Arc::clone(&slot.config), Arc::clone(&slot.permits)))
    }
}

fn forget_oldest_finished(records: &mut HashMap<DeliveryId, DeliveryRecord>, keep: usize) {
    let mut finished: Vec<(Timestamp, DeliveryId)> = records
        .values()
        .filter(|record| record.status.is_finished())
        .map(|record| (record.finished_at().unwrap_or(record.queued_at), record.id.clone()))
        .collect();
    if finished.len() <= keep {
        return;
    }
    finished.sort();
    let excess = finished.len() - keep;
    for (_, id) in finished.into_iter().take(excess) {
        records.remove(&id);
    }
}

/// One delivery's life, from queued to finished.
async fn run_delivery(shared: &Shared, id: &DeliveryId) {
    loop {
        let Some(record) = shared.lock_records().get(id).cloned() else {
            return;
        };
        if record.status.is_finished() {
            return;
        }
        if let Some(due) = record.next_attempt_at {
            let wait = due.since(Timestamp::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let Some((config, permits)) = shared.slot(&record.notifier) else {
            let mut failed = record;
            let reason = format!("no notifier named {:?} (was it removed from the site?)", failed.notifier);
            error!(delivery = %id, notifier = %failed.notifier, "notification delivery failed: no such notifier");
            failed.fail(reason, Timestamp::now());
            shared.store(failed).await;
            return;
        };
        // The semaphore is never closed.
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        let mut sending = record;
        sending.status = DeliveryStatus::Sending;
        sending.attempts += 1;
        sending.last_attempt_at = Some(Timestamp::now());
        sending.next_attempt_at = None;
        // Not written to the outbox: after a crash mid-attempt the queued
        // record on disk is sent again either way (at least once), and the
        // attempt's outcome is written as soon as it is known.
        shared.remember(sending.clone());

        let result = config.deliver(&shared.http, id, &sending.notification).await;
        let now = Timestamp::now();
        let mut after = sending;
        match result {
            Ok(()) => {
                info!(delivery = %id, notifier = %after.notifier, attempts = after.attempts, "notification delivered");
                after.status = DeliveryStatus::Delivered;
                after.delivered_at = Some(now);
                shared.store(after).await;
                return;
            }
            Err(failure) => {
                let next = next_step(&config, &after, &failure, now, rand::rng().random::<f64>());
                after.last_error = Some(failure.message.clone());
                match next {
                    Next::RetryAt(due) => {
                        warn!(
                            delivery = %id,
                            notifier = %after.notifier,
                            attempt = after.attempts,
                            error = %failure.message,
                            retry_in_ms = due.since(now).as_millis(),
                            "notification delivery failed; will retry"
                        );
                        after.status = DeliveryStatus::Queued;
                        after.next_attempt_at = Some(due);
                        shared.store(after).await;
                    }
                    Next::GiveUp(reason) => {
                        error!(
                            delivery = %id,
                            notifier = %after.notifier,
                            attempts = after.attempts,
                            error = %failure.message,
                            reason = %reason,
                            "notification delivery failed"
                        );
                        after.fail(reason, now);
                        shared.store(after).await;
                        return;
                    }
                }
            }
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, PartialEq)]
enum Next {
    RetryAt(Timestamp),
    GiveUp(String),
}

fn next_step(
    config: &NotifierConfig,
    record: &DeliveryRecord,
    failure: &DeliveryError,
    now: Timestamp,
    random: f64,
) -> Next {
    if failure.permanent {
        return Next::GiveUp(format!("not retried: {}", failure.message));
    }
    let policy = &config.retry;
    if record.attempts >= policy.max_attempts {
        return Next::GiveUp(format!("gave up after {} attempts: {}", record.attempts, failure.message));
    }
    let mut wait = policy.backoff(record.attempts, random);
    if let Some(asked) = failure.retry_after {
        wait = wait.max(asked.min(policy.max_backoff));
    }
    let due = now.plus(wait);
    if let Some(max_age) = policy.max_age
        && due.since(record.queued_at) > max_age
    {
        return Next::GiveUp(format!(
            "gave up after {} attempts: not delivered within {} of being queued: {}",
            record.attempts,
            drover_types::DurationSpec::from(max_age),
            failure.message
        ));
    }
    Next::RetryAt(due)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::notifier::{Notifier, RetryPolicy, WebhookConfig};
    use drover_react::fixtures::tmp_full;

    fn config(retry: RetryPolicy) -> NotifierConfig {
        let mut config = NotifierConfig::new(
            "ops-chat",
            Notifier::Webhook(WebhookConfig { url: "http://x".to_owned(), body: None, headers: BTreeMap::new() }),
        );
        config.retry = retry;
        config
    }

    #[test]
    fn next_step_follows_the_policy() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            max_age: Some(Duration::from_secs(25)),
            jitter: 0.0,
        };
        let start = Timestamp::from_millis(1_000_000);
        let mut record = DeliveryRecord::queued("ops-chat", tmp_full(), start);
        record.attempts = 1;
        let transient = DeliveryError::retryable("503");
        assert_eq!(
            next_step(&config(policy), &record, &transient, start, 0.0),
            Next::RetryAt(start.plus(Duration::from_secs(10)))
        );
        let permanent = DeliveryError::permanent("400 bad request");
        assert_eq!(
            next_step(&config(policy), &record, &permanent, start, 0.0),
            Next::GiveUp("not retried: 400 bad request".to_owned())
        );
        // The second retry would wait 20 s more, past the 25 s age limit.
        record.attempts = 2;
        let later = start.plus(Duration::from_secs(10));
        assert!(
            matches!(next_step(&config(policy), &record, &transient, later, 0.0), Next::GiveUp(reason) if reason.contains("within 25s"))
        );
        record.attempts = 3;
        assert_eq!(
            next_step(&config(policy), &record, &transient, start, 0.0),
            Next::GiveUp("gave up after 3 attempts: 503".to_owned())
        );
        // Retry-After is honoured, within the cap.
        record.attempts = 1;
        let slow_down = DeliveryError { retry_after: Some(Duration::from_secs(15)), ..transient };
        assert_eq!(
            next_step(&config(policy), &record, &slow_down, start, 0.0),
            Next::RetryAt(start.plus(Duration::from_secs(15)))
        );
    }

    #[test]
    fn delivery_ids_parse_back() {
        let id = DeliveryId::new();
        assert_eq!(DeliveryId::parse(id.as_str()), Some(id));
        assert_eq!(DeliveryId::parse("../etc"), None);
    }

    #[tokio::test]
    async fn unknown_notifiers_fail_visibly() {
        let dispatcher = Dispatcher::start(Vec::new(), DispatcherOptions::default()).await.unwrap();
        let id = dispatcher.send("nobody", tmp_full()).await;
        let record = dispatcher.wait_finished(&id).await.unwrap();
        assert_eq!(record.status, DeliveryStatus::Failed);
        assert_eq!(record.failure.as_deref(), Some("no notifier named \"nobody\" (was it removed from the site?)"));
        assert_eq!(dispatcher.deliveries().len(), 1);
        assert!(matches!(dispatcher.retry(&DeliveryId::new()).await, Err(Error::UnknownDelivery(_))));
    }

    #[test]
    fn old_finished_records_are_forgotten() {
        let mut records = HashMap::new();
        for second in 0..5 {
            let mut record = DeliveryRecord::queued("n", tmp_full(), Timestamp::from_millis(second * 1000));
            if second < 4 {
                record.status = DeliveryStatus::Delivered;
                record.delivered_at = Some(Timestamp::from_millis(second * 1000 + 1));
            }
            records.insert(record.id.clone(), record);
        }
        forget_oldest_finished(&mut records, 2);
        assert_eq!(records.len(), 3);
        assert_eq!(records.values().filter(|record| record.status == DeliveryStatus::Queued).count(), 1);
        assert!(records.values().all(|record| record.queued_at >= Timestamp::from_millis(2000)));
    }
}
