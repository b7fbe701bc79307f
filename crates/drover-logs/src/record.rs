//! The log record: one line of output, with where it came from.
//!
//! Times are `i64` **nanoseconds since the Unix epoch, UTC**: that is what
//! the agents read from the clock, it orders records within a second, and it
//! fits tantivy's `i64` fast fields without conversion (the range is the
//! years 1678 to 2262).

/// Nanoseconds in one second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

pub use drover_types::LogRecord;

/// A record of `line` with everything [`crate::parse::enrich`] recognises
/// filled in; the caller sets the remaining context (job, task, …).
pub fn from_line(
    origin: &str,
    seq: u64,
    node: &str,
    source: &str,
    stream: &str,
    line: &str,
    received: i64,
) -> LogRecord {
    let parsed = crate::parse::enrich(line, received);
    LogRecord {
        origin: origin.to_owned(),
        seq,
        timestamp: parsed.timestamp.unwrap_or(received),
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

/// How far the time a line claims may be from when it was received and
/// still be its event time.
pub const MAX_CLAIMED_SKEW_NANOS: i64 = 15 * 60 * 1_000_000_000;

/// Makes the record's time one that can never hide a freshly received
/// line: the time the line claims when it is within
/// [`MAX_CLAIMED_SKEW_NANOS`] of when it was received, else the receive
/// time, with the claimed time kept as the field `logged_at` (RFC 3339)
/// and `time_adjusted=true` (a skewed clock, a zone-less timestamp read as
/// UTC, an old line replayed).
pub fn settle_event_time(record: &mut LogRecord) {
    if record.timestamp.abs_diff(record.received) <= MAX_CLAIMED_SKEW_NANOS.unsigned_abs() {
        return;
    }
    let claimed = drover_types::Timestamp::from_millis(record.timestamp.div_euclid(1_000_000)).to_string();
    record.fields.insert("logged_at".to_owned(), claimed);
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
        settle_event_time(&mut old);
        assert_eq!(old.timestamp, NOW);
        assert_eq!(old.fields.get("logged_at").map(String::as_str), Some("2026-12-03T10:00:00.000Z"));
        assert_eq!(old.fields.get("time_adjusted").map(String::as_str), Some("true"));
        // Ten minutes off: plausible, kept as the event time.
        let claimed = NOW - 10 * 60 * 1_000_000_000;
        let mut near = from_line("n", 2, "n", "task", "stdout", "near", NOW);
        near.timestamp = claimed;
        settle_event_time(&mut near);
        assert_eq!(near.timestamp, claimed);
        assert!(!near.fields.contains_key("time_adjusted"));
    }
}
