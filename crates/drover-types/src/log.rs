//! The log record: one line of output, with where it came from. Indexed by
//! the servers (`drover-logs`) and returned by the API as it is. And
//! [`LogStream`], which of a task's two output streams: shared by the
//! executor's rotating files and the agent protocol.
//!
//! Times are `i64` **nanoseconds since the Unix epoch, UTC**: that is what
//! the agents read from the clock, it orders records within a second, and it
//! fits tantivy's `i64` fast fields without conversion (the range is the
//! years 1678 to 2262).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One log line as stored and searched.
///
/// `(origin, seq)` identifies a record: the store keeps a line once however
/// often it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Who numbered the record: a node id, or `syslog:<peer>` for lines
    /// received over syslog.
    pub origin: String,
    /// Position in the origin's stream; strictly increasing per origin.
    pub seq: u64,
    /// The event time (nanoseconds since the epoch, UTC): the time the line
    /// claims when it is within the servers' skew bound of `received`
    /// (a zone-less claim read in the node's zone), else `received`, with
    /// the claim kept in the field `logged_at` (docs/logs.md, "Event time").
    pub timestamp: i64,
    /// When the first agent or server saw the line (nanoseconds since the epoch, UTC).
    pub received: i64,
    /// The node that produced the line (its name).
    pub node: String,
    /// The node's host group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostgroup: Option<String>,
    /// The node's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The job, for task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The task group, for task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The task, for task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The allocation id, for task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc: Option<String>,
    /// The kind of source: `task`, `file`, `journal`, `syslog` or `console`.
    pub source: String,
    /// Which stream of the source: `stdout`, `stderr`, a file path, a unit.
    pub stream: String,
    /// The normalised level (see [`crate::parse::normalise_level`]), where present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The text of the line (for JSON lines, their `msg`/`message`).
    pub message: String,
    /// Fields extracted from `key=value` pairs and JSON lines.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// One of a task's two output streams: which rotating files the executor
/// writes (`<task>.stdout.N`) and which one `drover alloc logs` reads.
///
/// On the wire (agent sessions, the API's `stream` parameter) it is
/// `"stdout"` or `"stderr"`, the same text as [`LogStream::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`: the name used in file names, flags and on the
    /// wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// A time as nanoseconds since the Unix epoch, the unit of log record
/// times (0 before the epoch, `i64::MAX` past 2262).
pub fn unix_nanos(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agents and servers of different versions exchange the stream by
    /// name: the representation must not change.
    #[test]
    fn log_stream_is_its_lowercase_name_on_the_wire() {
        for (stream, name) in [(LogStream::Stdout, "stdout"), (LogStream::Stderr, "stderr")] {
            assert_eq!(stream.as_str(), name);
            assert_eq!(serde_json::to_string(&stream).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<LogStream>(&format!("\"{name}\"")).unwrap(), stream);
        }
        assert!(serde_json::from_str::<LogStream>("\"Stdout\"").is_err());
    }
}
