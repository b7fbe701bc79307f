//! Wall-clock timestamps and human-readable durations.
//!
//! [`Timestamp`] is milliseconds since the Unix epoch, serialised as an
//! RFC 3339 string so that API output is readable. [`DurationSpec`] is a
//! `std::time::Duration` that reads and writes Nomad's duration strings
//! (`"15s"`, `"30m"`, `"1h30m"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The epoch itself: used as "never" by fields that have no time yet.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// The current wall-clock time. Only runtimes call this; domain logic
    /// receives `now` as an argument.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This timestamp moved forward by `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This timestamp moved back by `duration` (saturating).
    pub fn minus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Whether this is [`Timestamp::ZERO`].
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The timestamp as a `chrono` UTC date-time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_datetime().to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(self) } else { serializer.serialize_i64(self.0) }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            let parsed = DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?;
            Ok(Timestamp(parsed.timestamp_millis()))
        } else {
            Ok(Timestamp(i64::deserialize(deserializer)?))
        }
    }
}

/// A duration written the way Nomad job files write them: `"15s"`, `"30m"`,
/// `"1h30m"`, `"250ms"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    /// A duration of `seconds` seconds.
    pub const fn from_secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// The wrapped duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for DurationSpec {
    fn from(duration: Duration) -> Self {
        Self(duration)
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return formatter.write_str("0s");
        }
        write!(formatter, "{}", humantime::format_duration(self.0)).map(|_| ())
    }
}

impl fmt::Debug for DurationSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a number and a unit such as \"15s\", \"30m\", \"1h30m\" or \"250ms\"")]
pub struct DurationParseError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for DurationSpec {
    type Err = DurationParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed == "0" {
            return Ok(Self(Duration::ZERO));
        }
        // humantime accepts spaces between parts; Nomad (Go) does not, and
        // neither do we, so that `"1 h"` is reported rather than guessed.
        if trimmed.is_empty() || trimmed.contains(char::is_whitespace) {
            return Err(DurationParseError { input: text.to_owned() });
        }
        humantime::parse_duration(trimmed).map(Self).map_err(|_| DurationParseError { input: text.to_owned() })
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX))
        }
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Self(Duration::from_millis(u64::deserialize(deserializer)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_through_text() {
        for text in ["15s", "30m", "1h 30m", "250ms", "0s"] {
            let compact = text.replace(' ', "");
            let parsed: DurationSpec = compact.parse().unwrap();
            let printed = parsed.to_string().replace(' ', "");
            assert_eq!(printed.parse::<DurationSpec>().unwrap(), parsed, "{text}");
        }
        assert_eq!("1h30m".parse::<DurationSpec>().unwrap().get(), Duration::from_secs(5400));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in ["", "15", "fast", "1 h", "-5s"] {
            assert!(text.parse::<DurationSpec>().is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn timestamps_serialise_as_rfc3339_in_json() {
        let timestamp = Timestamp::from_millis(1_700_000_000_123);
        let json = serde_json::to_string(&timestamp).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), timestamp);
    }
}
