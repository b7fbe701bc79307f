//! The wait between attempts of a failed request: doubling from
//! [`FIRST_WAIT`] up to the sink's `max_backoff`, or what the engine asked
//! for in `Retry-After` when that is longer. Pure: no clock, no sleep.

use std::time::Duration;

/// The first wait after a failure.
pub const FIRST_WAIT: Duration = Duration::from_millis(500);

/// Exponential backoff.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at [`FIRST_WAIT`] (or `max`, if shorter).
    pub fn new(max: Duration) -> Backoff {
        Backoff { next: FIRST_WAIT.min(max), max }
    }

    /// The wait before the next attempt; `retry_after` is the engine's
    /// `Retry-After`, honoured up to `max`.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.map_or(self.next, |asked| asked.max(self.next)).min(self.max);
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// After a success: the next failure waits [`FIRST_WAIT`] again.
    pub fn reset(&mut self) {
        self.next = FIRST_WAIT.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_and_reset() {
        let mut backoff = Backoff::new(Duration::from_secs(3));
        let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait(None).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff.next_wait(Some(Duration::from_secs(60))), Duration::from_secs(3));
    }
}
