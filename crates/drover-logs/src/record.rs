//! The log record: one line of output, with where it came from, and the
//! one rule that dates it (its **event time**).
//!
//! Times are `i64` **nanoseconds since the Unix epoch, UTC**: that is what
//! the agents read from the clock, it orders records within a second, and it
//! fits tantivy's `i64` fast fields without conversion (the range is the
//! years 1678 to 2262).
//!
//! # The event time
//!
//! Every record has the time drover received it (`received`, the agent's
//! clock) and, when the line writes one, the time it claims. Windows,
//! ordering, histograms, tails and hammer/alert windows use one time, the
//! record's `timestamp`, settled by [`settle_event_time`]:
//!
//! ```text
//!  claimed time (a zone-less one read in the node's zone, LineTime::zone)
//!     │ within max_skew of received? ── yes ──▶ timestamp = claimed
//!     └─ no ──▶ timestamp = received, fields logged_at = claimed (RFC 3339), time_adjusted = true
//! ```
//!
//! so a freshly received line is never dated hours or years away (a skewed
//! clock, a zone-less timestamp, an old line replayed) and missed by
//! `--since 1h`. `drover logs import --trust-timestamps` is the one way
//! to keep claimed times on purpose.

use chrono::{Offset, TimeZone};

/// Nanoseconds in one second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

pub use drover_types::LogRecord;

/// When a line was received and how to read the times it writes.
#[derive(Clone, Copy, Debug)]
pub struct LineTime {
    /// When drover received the line, in nanoseconds since the epoch.
    pub received: i64,
    /// The time zone of the node that wrote the line: a timestamp without
    /// a zone is its wall-clock time there. `None`: read as UTC.
    pub zone: Option<chrono_tz::Tz>,
}

impl From<i64> for LineTime {
    fn from(received: i64) -> LineTime {
        LineTime { received, zone: None }
    }
}

/// A record of `line` with everything [`crate::parse::enrich`] recognises
/// filled in; the caller sets the remaining context (job, task, …).
/// `time` is the receive time (nanoseconds), or a [`LineTime`] with the
/// writer's time zone. The timestamp is the claimed one, not yet settled
/// ([`settle_event_time`]).
pub fn from_line(
    origin: &str,
    seq: u64,
    node: &str,
    source: &str,
    stream: &str,
    line: &str,
    time: impl Into<LineTime>,
) -> LogRecord {
    let LineTime { received, zone } = time.into();
    let parsed = crate::parse::enrich(line, received);
    let claimed = match (parsed.timestamp, zone) {
        (Some(local), Some(zone)) if parsed.timestamp_is_local => Some(local_to_utc(local, zone)),
        (claimed, _) => claimed,
    };
    LogRecord {
        origin: origin.to_owned(),
        seq,
        timestamp: claimed.unwrap_or(received),
        received,
        node: node.to_owned(),
        hostgroup: None,
        environment: None,
        job: None,
        group: None,
        task: None,
        alloc: None,
        source: source.to_owned(),
        stream: stream.to_owned(),
        level: parsed.level.map(str::to_owned),
        message: parsed.message.unwrap_or_else(|| line.to_owned()),
        fields: parsed.fields,
    }
}

/// The instant of a wall-clock time in `zone`, given as nanoseconds
/// counted as if it were UTC. A time that happens twice (the hour the
/// clocks go back) is the first; one that never happens (the hour they go
/// forward) is read with the offset in force just before.
pub fn local_to_utc(wall_clock_nanos: i64, zone: chrono_tz::Tz) -> i64 {
    let seconds = wall_clock_nanos.div_euclid(NANOS_PER_SECOND);
    let Some(as_utc) = chrono::DateTime::from_timestamp(seconds, 0) else { return wall_clock_nanos };
    let naive = as_utc.naive_utc();
    let offset_seconds = match zone.offset_from_local_datetime(&naive) {
        chrono::LocalResult::Single(offset) | chrono::LocalResult::Ambiguous(offset, _) => {
            offset.fix().local_minus_utc()
        }
        chrono::LocalResult::None => {
            let day_before = naive - chrono::TimeDelta::days(1);
            zone.offset_from_utc_datetime(&day_before).fix().local_minus_utc()
        }
    };
    wall_clock_nanos.saturating_sub(i64::from(offset_seconds) * NANOS_PER_SECOND)
}

/// How far the time a line claims may be from when it was received and
/// still be its event time, by default (`drover server --log-max-skew`).
pub const DEFAULT_MAX_SKEW_NANOS: i64 = 15 * 60 * NANOS_PER_SECOND;

/// Makes the record's time one that can never hide a freshly received
/// line: the time the line claims when it is within `max_skew_nanos` of
/// when it was received, else the receive time, with the claimed time kept
/// as the field `logged_at` (RFC 3339) and `time_adjusted=true` (a skewed
/// clock, a zone-less timestamp read in the wrong zone, an old line
/// replayed). A `logged_at` already there (a record imported again) is kept.
pub fn settle_event_time(record: &mut LogRecord, max_skew_nanos: i64) {
    if record.timestamp.abs_diff(record.received) <= max_skew_nanos.unsigned_abs() {
        return;
    }
    let claimed = drover_types::Timestamp::from_millis(record.timestamp.div_euclid(1_000_000)).to_string();
    record.fields.entry("logged_at".to_owned()).or_insert(claimed);
    record.fields.insert("time_adjusted".to_owned(), "true".to_owned());
    record.timestamp = record.received;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000_000_000;

    #[test]
    fn a_claimed_time_far_from_the_receive_time_is_kept_as_a_field_only() {
        // Three days old: the record is dated when it arrived.
        let mut old = from_line("n", 1, "n", "task", "stdout", "2026-12-03T10:00:00Z ERROR old news", NOW);
        settle_event_time(&mut old, DEFAULT_MAX_SKEW_NANOS);
        assert_eq!(old.timestamp, NOW);
        assert_eq!(old.fields.get("logged_at").map(String::as_str), Some("2026-12-03T10:00:00.000Z"));
        assert_eq!(old.fields.get("time_adjusted").map(String::as_str), Some("true"));
        // Ten minutes off: plausible, kept as the event time.
        let claimed = NOW - 10 * 60 * 1_000_000_000;
        let mut near = from_line("n", 2, "n", "task", "stdout", "near", NOW);
        near.timestamp = claimed;
        settle_event_time(&mut near, DEFAULT_MAX_SKEW_NANOS);
        assert_eq!(near.timestamp, claimed);
        assert!(!near.fields.contains_key("time_adjusted"));
        // With a bound of five minutes it is not.
        settle_event_time(&mut near, 5 * 60 * NANOS_PER_SECOND);
        assert_eq!(near.timestamp, NOW);
    }

    #[test]
    fn a_zone_less_time_is_read_in_the_writers_zone() {
        // 2026-11-30T00:00:00Z; the line was written in Tokyo (UTC+9) at 09:00 local.
        let received = 1_795_996_800 * NANOS_PER_SECOND;
        let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let line = "2026-11-30 09:00:00 ERROR disk full";
        let in_tokyo = from_line("n", 1, "n", "file", "x", line, LineTime { received, zone: Some(tokyo) });
        assert_eq!(in_tokyo.timestamp, received);
        // Read as UTC it would claim nine hours in the future.
        let as_utc = from_line("n", 1, "n", "file", "x", line, received);
        assert_eq!(as_utc.timestamp, received + 9 * 3600 * NANOS_PER_SECOND);
        // A time with a zone is not moved.
        let zoned =
            from_line("n", 1, "n", "file", "x", "2026-11-30T00:00:00Z x", LineTime { received, zone: Some(tokyo) });
        assert_eq!(zoned.timestamp, received);
        // BSD syslog times carry no zone either.
        let syslog = from_line(
            "n",
            1,
            "n",
            "file",
            "x",
            "Nov 30 09:00:00 host sshd[1]: x",
            LineTime { received, zone: Some(tokyo) },
        );
        assert_eq!(syslog.timestamp, received);
    }

    #[test]
    fn daylight_saving_edges_pick_one_instant() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let wall = |text: &str| crate::parse::enrich(text, 0).timestamp.unwrap();
        // 2026-10-25 02:30 happens twice in Berlin: the first (CEST, +2).
        let twice = local_to_utc(wall("2026-10-25 02:30:00 x"), berlin);
        assert_eq!(twice, wall("2026-10-25 00:30:00 x"));
        // 2026-03-29 02:30 never happens: read with +1.
        let never = local_to_utc(wall("2026-03-29 02:30:00 x"), berlin);
        assert_eq!(never, wall("2026-03-29 01:30:00 x"));
    }
}
