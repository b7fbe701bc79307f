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
