//! Small formatting helpers the pages share: times, sizes, URLs, and the
//! marking of query terms in log lines.

use drover_types::Timestamp;

/// HTML-escapes text (for the few strings built outside templates).
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `2026-03-01 14:05:09` (UTC), or `never` for the zero time.
pub fn time(at: Timestamp) -> String {
    if at.is_zero() {
        return "never".to_owned();
    }
    at.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time given in nanoseconds since the epoch, as [`time`] writes it
/// (with milliseconds: log lines come many per second).
pub fn time_nanos(nanos: i64) -> String {
    Timestamp::from_millis(nanos / 1_000_000).to_datetime().format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// How long before `now`: `42s ago`, `5m ago`, `3h ago`, `2d ago`;
/// `never` for the zero time; `in 5m` for the future.
pub fn ago(at: Timestamp, now: Timestamp) -> String {
    if at.is_zero() {
        return "never".to_owned();
    }
    if at > now {
        return format!("in {}", span(at.since(now).as_secs()));
    }
    format!("{} ago", span(now.since(at).as_secs()))
}

/// A duration in seconds, in its largest whole unit: `42s`, `5m`, `3h`, `2d`.
pub fn span(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// Megabytes, in the largest unit that keeps a whole number: `512 MB`, `16 GB`.
pub fn megabytes(megabytes: u64) -> String {
    if megabytes >= 10 * 1024 { format!("{} GB", megabytes / 1024) } else { format!("{megabytes} MB") }
}

/// `part` of `whole` in per cent, rounded down (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

/// A query string from pairs, each value percent-encoded; pairs with an
/// empty value are left out. `?` included when anything is left.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", drover_proto::paths::encode(value)))
        .collect();
    if encoded.is_empty() { String::new() } else { format!("?{}", encoded.join("&")) }
}

/// A piece of a log line: marked when it matched a term of the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The text.
    pub text: String,
    /// Whether it is highlighted.
    pub marked: bool,
}

/// Cuts `text` into pieces, marking every case-insensitive occurrence of
/// any of `terms` (longest first where two start at the same place).
pub fn highlight(text: &str, terms: &[String]) -> Vec<Piece> {
    let lower = text.to_lowercase();
    // Lower-casing may change byte lengths (rare letters): then no marks,
    // rather than marks in the wrong place.
    let terms: Vec<String> =
        terms.iter().map(|term| term.to_lowercase()).filter(|term| !term.trim().is_empty()).collect();
    if lower.len() != text.len() || terms.is_empty() {
        return vec![Piece { text: text.to_owned(), marked: false }];
    }
    let mut pieces = Vec::new();
    let mut plain_start = 0;
    let mut position = 0;
    while position < lower.len() {
        let longest = terms.iter().filter(|term| lower[position..].starts_with(term.as_str())).map(String::len).max();
        match longest {
            Some(length) if text.is_char_boundary(position + length) => {
                if plain_start < position {
                    pieces.push(Piece { text: text[plain_start..position].to_owned(), marked: false });
                }
                pieces.push(Piece { text: text[position..position + length].to_owned(), marked: true });
                position += length;
                plain_start = position;
            }
            _ => {
                position += lower[position..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    if plain_start < text.len() {
        pieces.push(Piece { text: text[plain_start..].to_owned(), marked: false });
    }
    pieces
}

/// The CSS class of a status word: `ok`, `warn`, `bad` or empty.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "ready" | "running" | "complete" | "successful" | "healthy" | "passing" | "ok" | "leader" | "succeeded"
        | "resolved" | "up" => "ok",
        "down" | "failed" | "lost" | "unhealthy" | "critical" | "refused" | "firing" | "dead" | "denied" => "bad",
        "draining" | "ineligible" | "pending" | "blocked" | "unknown" | "disconnected" | "warning"
        | "awaiting approval" | "awaiting_approval" | "waiting" | "queued" | "starting" | "restarting" => "warn",
        _ => "",
    }
}

/// `1 node`, `2 nodes`.
pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// `text` in double quotes as the filter and log query languages read a
/// quoted value: `"bi/batch"`, with backslashes and quotes escaped.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_their_largest_unit() {
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(ago(Timestamp::from_millis(10_000_000 - 42_000), now), "42s ago");
        assert_eq!(ago(Timestamp::from_millis(10_000_000 - 3 * 3_600_000), now), "3h ago");
        assert_eq!(ago(Timestamp::ZERO, now), "never");
        assert_eq!(ago(Timestamp::from_millis(10_000_000 + 300_000), now), "in 5m");
    }

    #[test]
    fn highlighting_marks_every_term_without_case_and_keeps_the_text() {
        let pieces = highlight("Disk FULL on /var, disk again", &["disk".to_owned(), "full".to_owned()]);
        let joined: String = pieces.iter().map(|piece| piece.text.as_str()).collect();
        assert_eq!(joined, "Disk FULL on /var, disk again");
        let marked: Vec<&str> = pieces.iter().filter(|piece| piece.marked).map(|piece| piece.text.as_str()).collect();
        assert_eq!(marked, ["Disk", "FULL", "disk"]);
        assert_eq!(highlight("nothing", &[]), vec![Piece { text: "nothing".to_owned(), marked: false }]);
        assert_eq!(highlight("ümlaut Ü", &["ü".to_owned()]).iter().filter(|piece| piece.marked).count(), 2);
    }

    #[test]
    fn query_strings_encode_values_and_drop_empty_ones() {
        assert_eq!(
            query(&[("q", "level:error disk"), ("since", ""), ("until", "1h")]),
            "?q=level%3Aerror%20disk&until=1h"
        );
        assert_eq!(query(&[("q", "")]), "");
    }
}
