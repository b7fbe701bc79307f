//! The `reschedule` policy: whether a failed allocation is replaced, and
//! after what delay.
//!
//! Attempts are counted from the allocation's `reschedule_events` (the
//! history of its chain), within `interval` before the failure. The delay
//! grows with the chain: `constant` always waits `delay`, `exponential`
//! doubles the previous delay, `fibonacci` adds the previous two; both are
//! capped by `max_delay`, and start over when the allocation ran longer than
//! `max_delay` before failing (Nomad's reset rule).

use std::time::Duration;

use drover_types::{Allocation, DelayFunction, RescheduleEvent, ReschedulePolicy, Timestamp};

/// A failure whose reschedule time is at most this far away is replaced now
/// rather than through a follow-up evaluation (Nomad's window).
pub(crate) const RESCHEDULE_NOW_WINDOW: Duration = Duration::from_secs(1);

/// Delayed reschedules due within this window of each other share one
/// follow-up evaluation.
pub(crate) const FOLLOW_UP_BATCH_WINDOW: Duration = Duration::from_secs(5);

/// What the policy allows for one failed allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eligibility {
    /// Replace it at `at` (the failure time plus `delay`).
    Eligible { at: Timestamp, delay: Duration },
    /// No policy, or the attempts are used up: it stays failed.
    Exhausted,
}

/// When the allocation failed: the latest `finished_at` of a failed task,
/// else of any task, else the allocation's last change.
pub(crate) fn failure_time(alloc: &Allocation) -> Timestamp {
    let failed_task_end =
        alloc.task_states.values().filter(|state| state.failed).filter_map(|state| state.finished_at).max();
    let any_task_end = alloc.task_states.values().filter_map(|state| state.finished_at).max();
    failed_task_end.or(any_task_end).unwrap_or(alloc.modify_time)
}

/// The delay before the next reschedule of a chain with `events`, for an
/// allocation that failed at `failed_at`.
pub(crate) fn next_delay(policy: &ReschedulePolicy, events: &[RescheduleEvent], failed_at: Timestamp) -> Duration {
    let base_delay = policy.delay.get();
    let Some(last_event) = events.last() else {
        return base_delay;
    };
    let grown_delay = match policy.delay_function {
        DelayFunction::Constant => return base_delay,
        DelayFunction::Exponential => last_event.delay.get().saturating_mul(2),
        DelayFunction::Fibonacci => match events.len() {
            0 | 1 => base_delay,
            length => {
                let previous_delay = last_event.delay.get();
                let before_previous_delay = events[length - 2].delay.get();
                // After a reset the series starts again from `delay`.
                if before_previous_delay == policy.max_delay.get() && previous_delay == base_delay {
                    previous_delay
                } else {
                    previous_delay.saturating_add(before_previous_delay)
                }
            }
        },
    };
    let max_delay = policy.max_delay.get();
    if max_delay.is_zero() || grown_delay <= max_delay {
        return grown_delay;
    }
    // Capped; but an allocation that ran longer than the cap before failing
    // starts the series over.
    if failed_at.since(last_event.time) > max_delay { base_delay } else { max_delay }
}

/// Whether and when `alloc` (which failed) may be replaced under `policy`.
pub(crate) fn eligibility(alloc: &Allocation, policy: Option<&ReschedulePolicy>) -> Eligibility {
    let Some(policy) = policy else {
        return Eligibility::Exhausted;
    };
    let failed_at = failure_time(alloc);
    let delay = next_delay(policy, &alloc.reschedule_events, failed_at);
    let eligible = if policy.unlimited {
        true
    } else if policy.attempts == 0 {
        false
    } else {
        let interval = policy.interval.get();
        let num_recent_attempts =
            alloc.reschedule_events.iter().filter(|event| failed_at.since(event.time) < interval).count();
        let num_allowed = usize::try_from(policy.attempts).unwrap_or(usize::MAX);
        num_recent_attempts < num_allowed && (alloc.reschedule_events.is_empty() || delay < interval)
    };
    if eligible { Eligibility::Eligible { at: failed_at.plus(delay), delay } } else { Eligibility::Exhausted }
}

#[cfg(test)]
mod tests {
    use drover_types::{AllocId, DurationSpec, NodeId};

    use super::*;

    fn policy(delay_function: DelayFunction, delay_secs: u64, max_delay_secs: u64) -> ReschedulePolicy {
        ReschedulePolicy {
            attempts: 10,
            interval: DurationSpec::from_secs(24 * 3600),
            delay: DurationSpec::from_secs(delay_secs),
            delay_function,
            max_delay: DurationSpec::from_secs(max_delay_secs),
            unlimited: false,
        }
    }

    fn events(delays_secs: &[u64], spacing_secs: i64) -> Vec<RescheduleEvent> {
        delays_secs
            .iter()
            .zip(0_i64..)
            .map(|(delay, position)| RescheduleEvent {
                time: Timestamp::from_millis(position * spacing_secs * 1000),
                prev_alloc_id: AllocId::new(format!("a{position}")),
                prev_node_id: NodeId::new("n"),
                delay: DurationSpec::from_secs(*delay),
            })
            .collect()
    }

    #[test]
    fn delay_functions_grow_as_nomads_do() {
        // (function, delay, max, previous delays, expected next delay)
        let cases: &[(DelayFunction, u64, u64, &[u64], u64)] = &[
            (DelayFunction::Constant, 5, 0, &[], 5),
            (DelayFunction::Constant, 5, 0, &[5, 5, 5], 5),
            (DelayFunction::Exponential, 30, 3600, &[], 30),
            (DelayFunction::Exponential, 30, 3600, &[30], 60),
            (DelayFunction::Exponential, 30, 3600, &[30, 60], 120),
            (DelayFunction::Exponential, 30, 100, &[30, 60], 100),
            (DelayFunction::Fibonacci, 10, 3600, &[], 10),
            (DelayFunction::Fibonacci, 10, 3600, &[10], 10),
            (DelayFunction::Fibonacci, 10, 3600, &[10, 10], 20),
            (DelayFunction::Fibonacci, 10, 3600, &[10, 10, 20], 30),
            (DelayFunction::Fibonacci, 10, 3600, &[10, 10, 20, 30], 50),
            (DelayFunction::Fibonacci, 10, 40, &[10, 10, 20, 30], 40),
            (DelayFunction::Fibonacci, 10, 40, &[40, 10], 10),
        ];
        for (function, delay, max_delay, previous, expected) in cases {
            let chain = events(previous, 1);
            let failed_at = chain.last().map_or(Timestamp::ZERO, |event| event.time.plus(Duration::from_secs(1)));
            let computed = next_delay(&policy(*function, *delay, *max_delay), &chain, failed_at);
            assert_eq!(computed, Duration::from_secs(*expected), "{function:?} after {previous:?}");
        }
    }

    #[test]
    fn a_capped_delay_starts_over_after_a_long_run() {
        let chain = events(&[30, 60, 100], 1);
        let policy = policy(DelayFunction::Exponential, 30, 100);
        let soon = chain[2].time.plus(Duration::from_secs(50));
        let much_later = chain[2].time.plus(Duration::from_secs(500));
        assert_eq!(next_delay(&policy, &chain, soon), Duration::from_secs(100));
        assert_eq!(next_delay(&policy, &chain, much_later), Duration::from_secs(30));
    }
}
