//! Enrichment of one raw line: its timestamp, its level and its fields.
//!
//! This runs on the ingest path for every line, so it is a hand-written
//! scanner over bytes (no regular expression, no allocation for lines
//! without fields). It never fails: what it does not recognise it leaves
//! out, and the caller falls back to the time received.
//!
//! # Timestamps
//!
//! Recognised at the start of a line (after an optional syslog `<PRI>` and
//! RFC 5424 version):
//!
//! | form | example | source |
//! |---|---|---|
//! | ISO 8601 / RFC 3339 | `2024-01-02T03:04:05.123+02:00`, `2015-10-18 18:01:47,978` | most modern logs, log4j (Hadoop) |
//! | slashed date | `2024/01/02 03:04:05` | Go's `log` |
//! | two-digit year | `17/06/09 20:10:40` (yy/mm/dd) | Spark |
//! | BSD syslog | `Jun 14 15:16:01` | syslog, OpenSSH, Linux |
//! | ctime | `[Sun Dec 04 04:47:44 2005]`, with or without brackets | Apache error log |
//!
//! Elsewhere in the line: a bracketed common-log time
//! `[10/Oct/2000:13:55:36 -0700]` (Apache access log), and a bare ten-digit
//! Unix time among the first six words when it lies within a year of the
//! time received (BlueGene/L, LANL HPC logs). For `key=value` and JSON
//! lines, a `time`, `ts`, `timestamp` or `@timestamp` field (text in one of
//! the forms above, or a number of seconds, milliseconds, microseconds or
//! nanoseconds since the epoch).
//!
//! Times without a zone are returned as if they were UTC, with
//! [`Parsed::timestamp_is_local`] set: the caller knows the time zone of
//! the node that wrote the line and reads them in it
//! ([`crate::record::from_line`] with a [`crate::record::LineTime`] zone).
//! Syslog times carry no year: they get the year of the time received, or
//! the year before if that would put them more than a day after it.
//!
//! # Levels
//!
//! A level word is recognised among the first ten words of a line when it
//! is upper case (`INFO`, `WARN`), in brackets (`[notice]`, `<error>`), or
//! followed by a colon (`error:`); from a `level=`/`lvl=`/`severity=` pair;
//! from a JSON `level`/`lvl`/`severity` field; and from a syslog `<PRI>`.
//! Bare lower-case words are not levels: "parity error corrected" is a
//! message. See [`normalise_level`] for the names levels are mapped to.
//!
//! # Fields
//!
//! `key=value` pairs (a key starts a word and is made of letters, digits,
//! `_`, `.` and `-`; a value runs to the next space or is `"quoted"`), and
//! the top-level scalars of a JSON object line (strings as they are, numbers
//! and booleans as their JSON text; `null`, arrays and objects are left
//! out). A JSON line's `msg` or `message` becomes the record's message. At
//! most [`MAX_FIELDS`] fields are kept per line; keys longer than
//! [`MAX_KEY_LEN`] and values longer than [`MAX_VALUE_LEN`] bytes are left
//! out, so that one odd line cannot blow up the index.

use std::collections::BTreeMap;

use crate::record::NANOS_PER_SECOND;

/// At most this many fields are extracted from one line.
pub const MAX_FIELDS: usize = 64;
/// Longer keys are not extracted.
pub const MAX_KEY_LEN: usize = 64;
/// Longer values are not extracted.
pub const MAX_VALUE_LEN: usize = 1024;

/// How many leading words are looked at for a level.
const LEVEL_WORDS: usize = 10;
/// How many leading words are looked at for a bare Unix time.
const EPOCH_WORDS: usize = 6;

const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;
const NANOS_PER_YEAR: i64 = 366 * NANOS_PER_DAY;

/// What [`enrich`] found in a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The time written in the line, in nanoseconds since the epoch (UTC),
    /// or, when [`Parsed::timestamp_is_local`], the wall-clock time it
    /// writes counted as if it were UTC.
    pub timestamp: Option<i64>,
    /// The timestamp carried no zone (`2024-01-02 03:04:05`, `Jun 14
    /// 15:16:01`): it is the writer's local time.
    pub timestamp_is_local: bool,
    /// The normalised level.
    pub level: Option<&'static str>,
    /// The message, when it is not the whole line (JSON `msg`/`message`).
    pub message: Option<String>,
    /// Extracted fields.
    pub fields: BTreeMap<String, String>,
}

/// Finds the timestamp, level and fields of `line`; `received` (nanoseconds
/// since the epoch) dates syslog times that carry no year and bounds bare
/// Unix times.
pub fn enrich(line: &str, received: i64) -> Parsed {
    let line = line.trim_end_matches(['\n', '\r']);
    let trimmed = line.trim_start();
    if trimmed.starts_with('{')
        && let Some(parsed) = enrich_json(trimmed, received)
    {
        return parsed;
    }
    enrich_text(trimmed, received)
}

/// Maps a level word, in any case, to one of `trace`, `debug`, `info`,
/// `notice`, `warn`, `error`, `critical` or `fatal`.
///
/// | normalised | words |
/// |---|---|
/// | trace | trace, trc, finest, finer |
/// | debug | debug, dbg, fine, verbose |
/// | info | info, information, informational |
/// | notice | notice |
/// | warn | warn, warning, wrn |
/// | error | error, err, severe, failure |
/// | critical | crit, critical, alert |
/// | fatal | fatal, panic, emerg, emergency |
pub fn normalise_level(word: &str) -> Option<&'static str> {
    if word.len() < 3 || word.len() > 13 {
        return None;
    }
    let mut buffer = [0u8; 13];
    for (slot, byte) in buffer.iter_mut().zip(word.bytes()) {
        *slot = byte.to_ascii_lowercase();
    }
    let lowered = &buffer[..word.len()];
    let level = match lowered {
        b"trace" | b"trc" | b"finest" | b"finer" => "trace",
        b"debug" | b"dbg" | b"fine" | b"verbose" => "debug",
        b"info" | b"information" | b"informational" => "info",
        b"notice" => "notice",
        b"warn" | b"warning" | b"wrn" => "warn",
        b"error" | b"err" | b"severe" | b"failure" => "error",
        b"crit" | b"critical" | b"alert" => "critical",
        b"fatal" | b"panic" | b"emerg" | b"emergency" => "fatal",
        _ => return None,
    };
    Some(level)
}

/// The level of a syslog severity (the low three bits of `<PRI>`).
fn syslog_severity_level(severity: u32) -> &'static str {
    match severity {
        0 => "fatal",
        1 | 2 => "critical",
        3 => "error",
        4 => "warn",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

fn enrich_text(line: &str, received: i64) -> Parsed {
    let mut parsed = Parsed::default();
    let mut rest = line;
    if let Some((severity, after)) = strip_syslog_priority(rest) {
        parsed.level = Some(syslog_severity_level(severity));
        rest = after;
    }
    if let Some((timestamp, after)) = leading_timestamp(rest, received) {
        parsed.timestamp = Some(timestamp.nanos);
        parsed.timestamp_is_local = timestamp.is_local;
        rest = after;
    }
    if parsed.level.is_none() {
        parsed.level = level_among_first_words(rest);
    }
    if parsed.timestamp.is_none() {
        parsed.timestamp = inner_timestamp(rest, received);
    }
    if rest.contains('=') {
        extract_key_values(rest, &mut parsed.fields);
        apply_well_known_fields(&mut parsed, received);
    }
    parsed
}

/// A `level=`/`time=` pair fills in what the line itself did not say; the
/// pair stays a field.
fn apply_well_known_fields(parsed: &mut Parsed, received: i64) {
    if parsed.level.is_none() {
        parsed.level = ["level", "lvl", "severity", "loglevel"]
            .iter()
            .find_map(|key| parsed.fields.get(*key).and_then(|value| normalise_level(value)));
    }
    if parsed.timestamp.is_none() {
        let found = ["time", "ts", "timestamp", "@timestamp"]
            .iter()
            .find_map(|key| parsed.fields.get(*key).and_then(|value| timestamp_from_text(value, received)));
        parsed.timestamp = found.map(|claimed| claimed.nanos);
        parsed.timestamp_is_local = found.is_some_and(|claimed| claimed.is_local);
    }
}

fn enrich_json(line: &str, received: i64) -> Option<Parsed> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let mut parsed = Parsed::default();
    for (key, value) in object {
        match (key.as_str(), &value) {
            ("msg" | "message", serde_json::Value::String(text)) if parsed.message.is_none() => {
                parsed.message = Some(text.clone());
                continue;
            }
            ("level" | "lvl" | "severity" | "loglevel", serde_json::Value::String(text)) if parsed.level.is_none() => {
                if let Some(level) = normalise_level(text) {
                    parsed.level = Some(level);
                    continue;
                }
            }
            ("time" | "ts" | "timestamp" | "@timestamp", _) if parsed.timestamp.is_none() => {
                let timestamp = match &value {
                    serde_json::Value::String(text) => timestamp_from_text(text, received),
                    serde_json::Value::Number(number) => number
                        .as_i64()
                        .and_then(timestamp_from_number)
                        .or_else(|| number.as_f64().and_then(timestamp_from_fractional_seconds))
                        .map(Claimed::zoned),
                    _ => None,
                };
                if let Some(timestamp) = timestamp {
                    parsed.timestamp = Some(timestamp.nanos);
                    parsed.timestamp_is_local = timestamp.is_local;
                    continue;
                }
            }
            _ => {}
        }
        if parsed.fields.len() >= MAX_FIELDS || key.is_empty() || key.len() > MAX_KEY_LEN {
            continue;
        }
        let text = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => continue,
        };
        if text.len() <= MAX_VALUE_LEN {
            parsed.fields.insert(key, text);
        }
    }
    Some(parsed)
}

/// Seconds, milliseconds, microseconds or nanoseconds since the epoch,
/// told apart by magnitude (valid for the years 2001 to 2286).
fn timestamp_from_number(number: i64) -> Option<i64> {
    const SECONDS_2001: i64 = 1_000_000_000;
    let magnitude = number.checked_abs()?;
    if magnitude < SECONDS_2001 {
        None
    } else if magnitude < SECONDS_2001 * 10 {
        number.checked_mul(NANOS_PER_SECOND)
    } else if magnitude < SECONDS_2001 * 10_000 {
        number.checked_mul(1_000_000)
    } else if magnitude < SECONDS_2001 * 10_000_000 {
        number.checked_mul(1_000)
    } else {
        Some(number)
    }
}

fn timestamp_from_fractional_seconds(seconds: f64) -> Option<i64> {
    if !(1.0e9..1.0e10).contains(&seconds) {
        return None;
    }
    // In range by the check above, so the cast neither saturates nor wraps.
    #[allow(clippy::cast_possible_truncation)]
    Some((seconds * 1.0e9) as i64)
}

/// A time found in a line: nanoseconds since the epoch, or the local
/// wall-clock time counted as if it were UTC.
#[derive(Clone, Copy, Debug)]
struct Claimed {
    nanos: i64,
    is_local: bool,
}

impl Claimed {
    fn zoned(nanos: i64) -> Claimed {
        Claimed { nanos, is_local: false }
    }

    fn local(nanos: i64) -> Claimed {
        Claimed { nanos, is_local: true }
    }
}

/// A timestamp that makes up the whole of `text` (a field value).
fn timestamp_from_text(text: &str, received: i64) -> Option<Claimed> {
    if let Ok(number) = text.parse::<i64>() {
        return timestamp_from_number(number).map(Claimed::zoned);
    }
    let (timestamp, rest) = leading_timestamp(text, received)?;
    rest.trim().is_empty().then_some(timestamp)
}

/// `<PRI>` (and an RFC 5424 version `1 `) at the start of a line; returns
/// the severity.
fn strip_syslog_priority(line: &str) -> Option<(u32, &str)> {
    let after_open = line.strip_prefix('<')?;
    let close = after_open.find('>')?;
    let digits = &after_open[..close];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let priority: u32 = digits.parse().ok()?;
    if priority > 191 {
        return None;
    }
    let mut rest = &after_open[close + 1..];
    if let Some(after_version) = rest.strip_prefix("1 ") {
        rest = after_version;
    }
    Some((priority & 7, rest.trim_start()))
}

/// The timestamp at the start of `text` and the text after it.
fn leading_timestamp(text: &str, received: i64) -> Option<(Claimed, &str)> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    let (timestamp, consumed) = if first.is_ascii_digit() {
        iso_timestamp(bytes)
            .or_else(|| two_digit_year_timestamp(bytes).map(|(nanos, consumed)| (Claimed::local(nanos), consumed)))?
    } else if first == b'[' {
        let (nanos, consumed) = ctime_timestamp(&bytes[1..])?;
        if bytes.get(1 + consumed) != Some(&b']') {
            return None;
        }
        (Claimed::local(nanos), consumed + 2)
    } else if first.is_ascii_alphabetic() {
        let (nanos, consumed) = syslog_timestamp(bytes, received).or_else(|| ctime_timestamp(bytes))?;
        (Claimed::local(nanos), consumed)
    } else {
        return None;
    };
    // Every parser above consumes ASCII only, so `consumed` is a char boundary.
    Some((timestamp, text.get(consumed..)?.trim_start()))
}

/// A timestamp written somewhere after the start of the line.
fn inner_timestamp(text: &str, received: i64) -> Option<i64> {
    let head = text.get(..text.len().min(160)).unwrap_or(text);
    if let Some(open) = head.find('[')
        && let Some(timestamp) = common_log_timestamp(&text.as_bytes()[open + 1..])
    {
        return Some(timestamp);
    }
    text.split_ascii_whitespace().take(EPOCH_WORDS).find_map(|word| {
        if word.len() != 10 || !word.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let timestamp = word.parse::<i64>().ok()?.checked_mul(NANOS_PER_SECOND)?;
        (timestamp.abs_diff(received) <= NANOS_PER_YEAR.unsigned_abs()).then_some(timestamp)
    })
}

fn level_among_first_words(text: &str) -> Option<&'static str> {
    for word in text.split_ascii_whitespace().take(LEVEL_WORDS) {
        let first = word.as_bytes()[0];
        let (inner, marked) = if matches!(first, b'[' | b'<' | b'(') {
            let inner = word[1..].trim_end_matches([':', ',']);
            (inner.trim_end_matches([']', '>', ')']), true)
        } else if let Some(inner) = word.strip_suffix(':') {
            (inner, true)
        } else {
            (word, false)
        };
        let upper_case = inner.bytes().all(|byte| byte.is_ascii_uppercase());
        if (marked || upper_case)
            && let Some(level) = normalise_level(inner)
        {
            return Some(level);
        }
    }
    None
}

fn extract_key_values(text: &str, fields: &mut BTreeMap<String, String>) {
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() && fields.len() < MAX_FIELDS {
        let Some(offset) = bytes[position..].iter().position(|&byte| byte == b'=') else {
            return;
        };
        let equals = position + offset;
        let key_start =
            bytes[..equals].iter().rposition(|&byte| !is_key_byte(byte)).map_or(0, |separator| separator + 1);
        let key = &text[key_start..equals];
        let key_is_word = key_start == 0 || bytes[key_start - 1].is_ascii_whitespace();
        let (value, value_end) = read_value(text, equals + 1);
        position = value_end.max(equals + 1);
        let key_ok =
            key.len() <= MAX_KEY_LEN && (key.starts_with(|first: char| first.is_ascii_alphabetic() || first == '_'));
        if key_is_word && key_ok && !value.is_empty() && value.len() <= MAX_VALUE_LEN {
            fields.insert(key.to_owned(), value);
        }
    }
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'@')
}

/// The value starting at `start` (quoted or up to the next space) and where it ends.
fn read_value(text: &str, start: usize) -> (String, usize) {
    let bytes = text.as_bytes();
    if bytes.get(start) == Some(&b'"') {
        let mut value = String::new();
        let mut index = start + 1;
        let mut segment_start = index;
        while index < bytes.len() {
            match bytes[index] {
                b'\\' if index + 1 < bytes.len() => {
                    value.push_str(&text[segment_start..index]);
                    index += 1;
                    segment_start = index;
                    index += 1;
                }
                b'"' => {
                    value.push_str(&text[segment_start..index]);
                    return (value, index + 1);
                }
                _ => index += 1,
            }
        }
        // No closing quote: take the rest as it is.
        value.push_str(&text[segment_start..]);
        return (value, bytes.len());
    }
    let end =
        bytes[start..].iter().position(|byte| byte.is_ascii_whitespace()).map_or(bytes.len(), |offset| start + offset);
    let value = text[start..end].trim_end_matches([',', ';']);
    (value.to_owned(), end)
}

// ---------------------------------------------------------------------------
// Timestamp forms. Each takes the bytes where the form should start and
// returns the time and the number of bytes it used.

/// `YYYY-MM-DD[T ]HH:MM:SS[.,fraction][Z|±HH[:MM]]` or with `/` in the date.
fn iso_timestamp(bytes: &[u8]) -> Option<(Claimed, usize)> {
    let mut cursor = Cursor::new(bytes);
    let year = cursor.digits(4)?;
    let separator = cursor.one_of(b"-/")?;
    let month = cursor.digits(2)?;
    cursor.expect(separator)?;
    let day = cursor.digits(2)?;
    cursor.one_of(b"T ")?;
    let (seconds_of_day, nanos) = cursor.clock()?;
    let offset_seconds = cursor.zone_offset();
    let timestamp = civil_to_nanos(year, month, day, seconds_of_day, nanos)?;
    let claimed = match offset_seconds {
        Some(offset_seconds) => Claimed::zoned(timestamp.checked_sub(i64::from(offset_seconds) * NANOS_PER_SECOND)?),
        None => Claimed::local(timestamp),
    };
    Some((claimed, cursor.position))
}

/// `YY/MM/DD HH:MM:SS` (Spark).
fn two_digit_year_timestamp(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut cursor = Cursor::new(bytes);
    let year = 2000 + cursor.digits(2)?;
    cursor.expect(b'/')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'/')?;
    let day = cursor.digits(2)?;
    cursor.expect(b' ')?;
    let (seconds_of_day, nanos) = cursor.clock()?;
    Some((civil_to_nanos(year, month, day, seconds_of_day, nanos)?, cursor.position))
}

/// `Mon DD HH:MM:SS` (BSD syslog), dated by `received`.
fn syslog_timestamp(bytes: &[u8], received: i64) -> Option<(i64, usize)> {
    let mut cursor = Cursor::new(bytes);
    let month = cursor.month_name()?;
    cursor.expect(b' ')?;
    let day = cursor.day_padded()?;
    cursor.expect(b' ')?;
    let (seconds_of_day, nanos) = cursor.clock()?;
    let received_year = nanos_to_year(received);
    let this_year = civil_to_nanos(received_year, month, day, seconds_of_day, nanos)?;
    let timestamp = if this_year > received.saturating_add(NANOS_PER_DAY) {
        civil_to_nanos(received_year - 1, month, day, seconds_of_day, nanos)?
    } else {
        this_year
    };
    Some((timestamp, cursor.position))
}

/// `Www Mon DD HH:MM:SS[.fraction] YYYY` (ctime, Apache error log).
fn ctime_timestamp(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut cursor = Cursor::new(bytes);
    for _ in 0..3 {
        if !cursor.peek()?.is_ascii_alphabetic() {
            return None;
        }
        cursor.position += 1;
    }
    cursor.expect(b' ')?;
    let month = cursor.month_name()?;
    cursor.expect(b' ')?;
    let day = cursor.day_padded()?;
    cursor.expect(b' ')?;
    let (seconds_of_day, nanos) = cursor.clock()?;
    cursor.expect(b' ')?;
    let year = cursor.digits(4)?;
    Some((civil_to_nanos(year, month, day, seconds_of_day, nanos)?, cursor.position))
}

/// `DD/Mon/YYYY:HH:MM:SS ±HHMM]` (common log format, after the `[`).
fn common_log_timestamp(bytes: &[u8]) -> Option<i64> {
    let mut cursor = Cursor::new(bytes);
    let day = cursor.digits(2)?;
    cursor.expect(b'/')?;
    let month = cursor.month_name()?;
    cursor.expect(b'/')?;
    let year = cursor.digits(4)?;
    cursor.expect(b':')?;
    let (seconds_of_day, nanos) = cursor.clock()?;
    cursor.expect(b' ');
    let offset_seconds = cursor.zone_offset().unwrap_or(0);
    cursor.expect(b']')?;
    civil_to_nanos(year, month, day, seconds_of_day, nanos)?.checked_sub(i64::from(offset_seconds) * NANOS_PER_SECOND)
}

/// A position in ASCII bytes with small readers for timestamp parts.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.peek()? == wanted).then(|| self.position += 1)
    }

    fn one_of(&mut self, wanted: &[u8]) -> Option<u8> {
        let byte = self.peek()?;
        wanted.contains(&byte).then(|| {
            self.position += 1;
            byte
        })
    }

    /// Exactly `count` decimal digits.
    fn digits(&mut self, count: usize) -> Option<u32> {
        let slice = self.bytes.get(self.position..self.position + count)?;
        let mut value = 0u32;
        for &byte in slice {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        self.position += count;
        Some(value)
    }

    /// A day of month as `DD`, ` D` or `D`.
    fn day_padded(&mut self) -> Option<u32> {
        if self.peek()? == b' ' {
            self.position += 1;
            return self.digits(1);
        }
        self.digits(2).or_else(|| self.digits(1))
    }

    fn month_name(&mut self) -> Option<u32> {
        let name = self.bytes.get(self.position..self.position + 3)?;
        let month = MONTHS.iter().position(|month| month.eq_ignore_ascii_case(name))?;
        self.position += 3;
        u32::try_from(month + 1).ok()
    }

    /// `HH:MM:SS[.,fraction]`: seconds of the day and nanoseconds.
    fn clock(&mut self) -> Option<(u32, u32)> {
        let hours = self.digits(2)?;
        self.expect(b':')?;
        let minutes = self.digits(2)?;
        self.expect(b':')?;
        let seconds = self.digits(2)?;
        if hours > 23 || minutes > 59 || seconds > 60 {
            return None;
        }
        let mut nanos = 0u32;
        if matches!(self.peek(), Some(b'.' | b',')) && self.bytes.get(self.position + 1).is_some_and(u8::is_ascii_digit)
        {
            self.position += 1;
            let mut scale = 100_000_000u32;
            while let Some(byte) = self.peek().filter(u8::is_ascii_digit) {
                nanos += u32::from(byte - b'0') * scale;
                scale /= 10;
                self.position += 1;
            }
        }
        Some((hours * 3600 + minutes * 60 + seconds, nanos))
    }

    /// `Z`, `±HH:MM`, `±HHMM` or `±HH` (east of UTC is positive); `None`
    /// when absent.
    fn zone_offset(&mut self) -> Option<i32> {
        match self.peek() {
            Some(b'Z' | b'z') => {
                self.position += 1;
                Some(0)
            }
            Some(sign @ (b'+' | b'-')) => {
                let start = self.position;
                self.position += 1;
                let Some(hours) = self.digits(2) else {
                    self.position = start;
                    return None;
                };
                let had_colon = self.expect(b':').is_some();
                let minutes = match self.digits(2) {
                    Some(minutes) => minutes,
                    None => {
                        if had_colon {
                            self.position -= 1;
                        }
                        0
                    }
                };
                if hours > 23 || minutes > 59 {
                    self.position = start;
                    return None;
                }
                let magnitude = i32::try_from(hours * 3600 + minutes * 60).unwrap_or(0);
                Some(if sign == b'-' { -magnitude } else { magnitude })
            }
            _ => None,
        }
    }
}

const MONTHS: [&[u8]; 12] =
    [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];

/// Nanoseconds since the epoch of a UTC civil time; `None` for impossible
/// dates and years outside 1678..=2261 (the range of `i64` nanoseconds).
fn civil_to_nanos(year: u32, month: u32, day: u32, seconds_of_day: u32, nanos: u32) -> Option<i64> {
    if !(1678..=2261).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds = days * 86_400 + i64::from(seconds_of_day);
    seconds.checked_mul(NANOS_PER_SECOND)?.checked_add(i64::from(nanos))
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31 and 1..=12).
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

fn nanos_to_year(nanos: i64) -> u32 {
    let (year, _, _) = civil_from_days(nanos.div_euclid(NANOS_PER_DAY));
    u32::try_from(year).unwrap_or(1970)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-01T00:00:00Z.
    const RECEIVED: i64 = 1_709_251_200 * NANOS_PER_SECOND;

    fn seconds(line: &str, received: i64) -> Option<i64> {
        enrich(line, received).timestamp.map(|nanos| nanos.div_euclid(NANOS_PER_SECOND))
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 11_016, 19_783, 100_000] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, i64::from(month), i64::from(day)), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn iso_timestamps_with_zones_and_fractions() {
        assert_eq!(seconds("2024-01-02T03:04:05Z hello", RECEIVED), Some(1_704_164_645));
        assert_eq!(seconds("2024-01-02T05:04:05+02:00 hello", RECEIVED), Some(1_704_164_645));
        assert_eq!(seconds("2024-01-02T01:04:05-0200 hello", RECEIVED), Some(1_704_164_645));
        assert_eq!(seconds("2024/01/02 03:04:05 hello", RECEIVED), Some(1_704_164_645));
        let parsed = enrich("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop: Created", RECEIVED);
        assert_eq!(parsed.timestamp, Some(1_445_191_307_978_000_000));
        assert_eq!(parsed.level, Some("info"));
        assert_eq!(enrich("2024-01-02T03:04:05.123456789Z x", RECEIVED).timestamp, Some(1_704_164_645_123_456_789));
    }

    #[test]
    fn impossible_dates_are_not_timestamps() {
        assert_eq!(seconds("2023-02-29 00:00:00 x", RECEIVED), None);
        assert_eq!(seconds("2024-13-01 00:00:00 x", RECEIVED), None);
        assert_eq!(seconds("2024-01-01 24:00:00 x", RECEIVED), None);
        assert_eq!(seconds("9999-01-01 00:00:00 x", RECEIVED), None);
    }

    #[test]
    fn loghub_formats() {
        // Spark
        let spark = enrich("17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered", RECEIVED);
        assert_eq!(spark.timestamp.map(|nanos| nanos / NANOS_PER_SECOND), Some(1_497_039_040));
        assert_eq!(spark.level, Some("info"));
        // Apache error log
        let apache = enrich("[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6", RECEIVED);
        assert_eq!(apache.timestamp.map(|nanos| nanos / NANOS_PER_SECOND), Some(1_133_671_664));
        assert_eq!(apache.level, Some("error"));
        let notice = enrich("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok", RECEIVED);
        assert_eq!(notice.level, Some("notice"));
        // BSD syslog: the year comes from the time received.
        let received_2005 = 1_104_537_600 * NANOS_PER_SECOND + 200 * NANOS_PER_DAY;
        assert_eq!(
            seconds("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass", received_2005),
            Some(1_118_762_161)
        );
        // December lines received in January belong to the year before.
        let january_2006 = 1_136_073_600 * NANOS_PER_SECOND + NANOS_PER_DAY;
        assert_eq!(seconds("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user", january_2006), Some(1_134_197_746));
        assert_eq!(seconds("Jun  4 01:02:03 host x", received_2005), Some(1_117_846_923));
        // OpenSSH "error:" is a level; "failed" in the text is not.
        let ssh = enrich("Dec 10 11:03:40 LabSZ sshd[25448]: error: Received disconnect", RECEIVED);
        assert_eq!(ssh.level, Some("error"));
        assert_eq!(enrich("Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping failed", RECEIVED).level, None);
        // BlueGene/L: Unix seconds in the second word, upper-case level.
        let bgl_line = "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 \
                        R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected";
        let bgl = enrich(bgl_line, received_2005);
        assert_eq!(bgl.timestamp.map(|nanos| nanos / NANOS_PER_SECOND), Some(1_117_838_570));
        assert_eq!(bgl.level, Some("info"));
        // Far from the time received, ten digits are just a number.
        assert_eq!(enrich(bgl_line, RECEIVED).timestamp, None);
        // LANL HPC: Unix seconds in the fifth word.
        let hpc = "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change";
        assert_eq!(seconds(hpc, 1_077_804_742 * NANOS_PER_SECOND), Some(1_077_804_742));
    }

    #[test]
    fn access_log_and_syslog_priority() {
        let access = "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326";
        assert_eq!(seconds(access, RECEIVED), Some(971_211_336));
        let rfc5424 = enrich("<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - 'su root' failed", RECEIVED);
        assert_eq!(rfc5424.level, Some("critical"));
        assert_eq!(rfc5424.timestamp, Some(1_065_910_455_003_000_000));
        assert_eq!(enrich("<13>Feb  5 17:32:18 host app: hi", RECEIVED).level, Some("notice"));
    }

    #[test]
    fn key_values() {
        let parsed = enrich(
            "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 \
             tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
            RECEIVED,
        );
        let expected: BTreeMap<String, String> = [
            ("euid", "0"),
            ("rhost", "220-135-151-1.hinet-ip.hinet.net"),
            ("tty", "NODEVssh"),
            ("uid", "0"),
            ("user", "root"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(parsed.fields, expected);

        let logfmt = enrich(r#"time=2024-01-02T03:04:05Z level=warning msg="disk \"sda\" full" path=/var"#, RECEIVED);
        assert_eq!(logfmt.level, Some("warn"));
        assert_eq!(logfmt.timestamp.map(|nanos| nanos / NANOS_PER_SECOND), Some(1_704_164_645));
        assert_eq!(logfmt.fields.get("msg").map(String::as_str), Some("disk \"sda\" full"));
        assert_eq!(logfmt.fields.get("path").map(String::as_str), Some("/var"));
        // `a=b` inside a word (a URL query) is not a field.
        assert!(enrich("GET /x?a=b&c=d", RECEIVED).fields.is_empty());
        // An unterminated quote takes the rest of the line.
        assert_eq!(enrich(r#"k="abc"#, RECEIVED).fields.get("k").map(String::as_str), Some("abc"));
    }

    #[test]
    fn json_lines() {
        let parsed = enrich(
            r#"{"ts":1704164645.5,"level":"ERROR","msg":"boom","user":"alice","n":3,"ok":true,"nested":{"a":1},"nothing":null}"#,
            RECEIVED,
        );
        assert_eq!(parsed.timestamp, Some(1_704_164_645_500_000_000));
        assert_eq!(parsed.level, Some("error"));
        assert_eq!(parsed.message.as_deref(), Some("boom"));
        let keys: Vec<&str> = parsed.fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["n", "ok", "user"]);
        assert_eq!(
            enrich(r#"{"time":"2024-01-02T03:04:05Z"}"#, RECEIVED).timestamp,
            Some(1_704_164_645 * NANOS_PER_SECOND)
        );
        assert_eq!(enrich(r#"{"time":1704164645123}"#, RECEIVED).timestamp, Some(1_704_164_645_123_000_000));
        // Not JSON after all: a text line.
        let broken = enrich("{not json level=info", RECEIVED);
        assert_eq!(broken.level, Some("info"));
        assert_eq!(broken.message, None);
    }

    #[test]
    fn levels_are_normalised() {
        assert_eq!(normalise_level("WARNING"), Some("warn"));
        assert_eq!(normalise_level("Severe"), Some("error"));
        assert_eq!(normalise_level("emerg"), Some("fatal"));
        assert_eq!(normalise_level("KERNEL"), None);
        assert_eq!(normalise_level("informational!"), None);
        assert_eq!(enrich("some text INFO later", RECEIVED).level, Some("info"));
        assert_eq!(enrich("a b c d e f g h i j k ERROR", RECEIVED).level, None);
    }

    proptest::proptest! {
        #[test]
        fn enrich_never_panics(line in "\\PC{0,200}") {
            let _ = enrich(&line, RECEIVED);
        }

        #[test]
        fn enrich_never_panics_on_near_misses(line in "[0-9a-zA-Z :/.,+\\-\\[\\]<>=\"{}TZ]{0,60}") {
            let _ = enrich(&line, RECEIVED);
            let _ = enrich(&line, i64::MIN);
            let _ = enrich(&line, i64::MAX);
        }
    }
}
