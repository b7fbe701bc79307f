//! Writing to a full disk: wait for space instead of stopping.
//!
//! openraft stops its core for good on the first storage error ("raft has
//! stopped" until the process restarts). A full disk is not a lasting
//! fault, so the Raft log and the snapshot writer retry an out-of-space
//! write with backoff until it succeeds: the server stalls (its peers go on
//! without it, a single server waits), records the stall in [`DiskHealth`]
//! for `drover server health`, and carries on by itself once space returns.
//! Every other error still fails as before.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use drover_types::Timestamp;

/// The longest wait between two attempts of a write that found the disk
/// full.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Whether this server's Raft data can be written now.
#[derive(Debug, Default)]
pub struct DiskHealth {
    stall: Mutex<Option<Stall>>,
}

/// A write that has been waiting for disk space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// When the first attempt failed.
    pub since: Timestamp,
    /// What the disk said.
    pub error: String,
}

impl DiskHealth {
    /// The write waiting for space, if any.
    pub fn stall(&self) -> Option<Stall> {
        self.stall.lock().ok().and_then(|stall| stall.clone())
    }

    fn record(&self, error: &io::Error) {
        if let Ok(mut stall) = self.stall.lock()
            && stall.is_none()
        {
            tracing::warn!(%error, "the disk is full: Raft writes wait for free space and go on by themselves");
            *stall = Some(Stall { since: Timestamp::now(), error: error.to_string() });
        }
    }

    fn clear(&self) {
        if let Ok(mut stall) = self.stall.lock()
            && stall.take().is_some()
        {
            tracing::info!("the disk has space again: Raft writes go on");
        }
    }

    /// Runs `attempt` until it succeeds or fails with something other than
    /// a full disk, sleeping between attempts (blocking: call it on a
    /// blocking thread). `after_full` runs after each out-of-space failure
    /// with what the attempt returned beside its error (to free what it
    /// left behind, or reopen the database it failed on).
    pub fn retry_while_full<T, Context>(
        &self,
        mut attempt: impl FnMut() -> Result<T, (io::Error, Context)>,
        mut after_full: impl FnMut(Context),
    ) -> io::Result<T> {
        let mut interval = Duration::from_millis(50);
        loop {
            match attempt() {
                Ok(value) => {
                    self.clear();
                    return Ok(value);
                }
                Err((error, context)) if is_out_of_space(&error) => {
                    self.record(&error);
                    after_full(context);
                    std::thread::sleep(interval);
                    interval = (interval * 2).min(MAX_RETRY_INTERVAL);
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
}

/// Whether `error` says the file system is full or the quota used up
/// (`ENOSPC`, `EDQUOT`).
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}
