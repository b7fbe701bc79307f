//! Grafana Loki's push API: the request a batch of records makes, in JSON
//! or in protobuf compressed with snappy (as promtail sends it), and what
//! an answer means.
//!
//! Taken from the Loki 3.4 documentation ("HTTP API", `POST
//! /loki/api/v1/push`) and `pkg/push/push.proto` of the same release:
//!
//! ```text
//! message PushRequest   { repeated StreamAdapter streams = 1; }
//! message StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! message EntryAdapter  { google.protobuf.Timestamp timestamp = 1; string line = 2; … }
//! message Timestamp     { int64 seconds = 1; int32 nanos = 2; }
//! ```
//!
//! The encoder is written by hand: four messages, two wire types (varint
//! and length-delimited). `hash` and structured metadata are left out, as
//! promtail leaves them out.

use drover_types::LogRecord;

use crate::{Attempt, HttpRequest};

/// The path of the push API under a Loki base URL.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// One stream of a push: its labels (in the sink's order) and its lines,
/// as `(event time in nanoseconds, line)` in the order they were indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// `(name, value)` pairs.
    pub labels: Vec<(String, String)>,
    /// `(nanoseconds since the epoch, line)`.
    pub entries: Vec<(i64, String)>,
}

/// The value of record field `field` (one of
/// [`drover_react::schema::LOKI_LABEL_FIELDS`]), when the record has it.
pub fn field_value<'record>(record: &'record LogRecord, field: &str) -> Option<&'record str> {
    let value = match field {
        "node" => Some(record.node.as_str()),
        "hostgroup" => record.hostgroup.as_deref(),
        "environment" => record.environment.as_deref(),
        "job" => record.job.as_deref(),
        "group" => record.group.as_deref(),
        "task" => record.task.as_deref(),
        "source" => Some(record.source.as_str()),
        "stream" => Some(record.stream.as_str()),
        "level" => record.level.as_deref(),
        "origin" => Some(record.origin.as_str()),
        _ => None,
    };
    value.filter(|text| !text.is_empty())
}

/// Groups records into streams by the values of `label_fields`, streams in
/// the order they first appear and each stream's lines in record order. A
/// record without any of the fields goes to a stream labelled by its
/// `source` (Loki refuses a stream without labels).
pub fn streams(records: &[LogRecord], label_fields: &[String]) -> Vec<Stream> {
    let mut streams: Vec<Stream> = Vec::new();
    for record in records {
        let mut labels: Vec<(String, String)> = label_fields
            .iter()
            .filter_map(|field| field_value(record, field).map(|value| (field.clone(), value.to_owned())))
            .collect();
        if labels.is_empty() {
            labels.push(("source".to_owned(), record.source.clone()));
        }
        let entry = (record.timestamp.max(0), record.message.clone());
        match streams.iter_mut().find(|stream| stream.labels == labels) {
            Some(stream) => stream.entries.push(entry),
            None => streams.push(Stream { labels, entries: vec![entry] }),
        }
    }
    streams
}

/// The label set as Loki's protobuf carries it: `{node="web-1", job="api"}`,
/// values quoted with `\\`, `\"` and `\n` escaped.
pub fn label_text(labels: &[(String, String)]) -> String {
    let pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}=\"{}\"", escape(value))).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The JSON body: `{"streams":[{"stream":{…},"values":[["<ns>","line"]]}]}`.
pub fn json_body(streams: &[Stream]) -> Vec<u8> {
    let streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|stream| {
            let labels: serde_json::Map<String, serde_json::Value> = stream
                .labels
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
                .collect();
            let values: Vec<serde_json::Value> =
                stream.entries.iter().map(|(nanos, line)| serde_json::json!([nanos.to_string(), line])).collect();
            serde_json::json!({ "stream": labels, "values": values })
        })
        .collect();
    serde_json::json!({ "streams": streams }).to_string().into_bytes()
}

/// The protobuf `PushRequest`, not compressed.
pub fn encode_push_request(streams: &[Stream]) -> Vec<u8> {
    let mut request = Vec::new();
    for stream in streams {
        let mut adapter = Vec::new();
        put_bytes(&mut adapter, 1, label_text(&stream.labels).as_bytes());
        for (nanos, line) in &stream.entries {
            let mut timestamp = Vec::new();
            let seconds = nanos.div_euclid(1_000_000_000);
            let fraction = nanos.rem_euclid(1_000_000_000);
            if seconds != 0 {
                put_varint_field(&mut timestamp, 1, seconds as u64);
            }
            if fraction != 0 {
                put_varint_field(&mut timestamp, 2, fraction as u64);
            }
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, &timestamp);
            put_bytes(&mut entry, 2, line.as_bytes());
            put_bytes(&mut adapter, 2, &entry);
        }
        put_bytes(&mut request, 1, &adapter);
    }
    request
}

/// The protobuf body compressed with snappy's block format (not the
/// framed format), which is what Loki's push handler decodes.
pub fn protobuf_body(streams: &[Stream]) -> Vec<u8> {
    let raw = encode_push_request(streams);
    // Compressing a buffer in memory fails only for inputs over ~4 GB,
    // far beyond a batch: an empty body would then be refused by Loki.
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

fn put_varint(buffer: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buffer.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
}

fn put_varint_field(buffer: &mut Vec<u8>, field: u32, value: u64) {
    put_varint(buffer, u64::from(field << 3));
    put_varint(buffer, value);
}

fn put_bytes(buffer: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(buffer, u64::from((field << 3) | 2));
    put_varint(buffer, bytes.len() as u64);
    buffer.extend_from_slice(bytes);
}

/// The push request of a batch.
pub fn request(
    base_url: &str,
    records: &[LogRecord],
    label_fields: &[String],
    format: drover_react::LokiFormat,
    tenant: Option<&str>,
) -> HttpRequest {
    let streams = streams(records, label_fields);
    let mut headers = Vec::new();
    let body = match format {
        drover_react::LokiFormat::Protobuf => {
            headers.push(("Content-Type".to_owned(), "application/x-protobuf".to_owned()));
            protobuf_body(&streams)
        }
        drover_react::LokiFormat::Json => {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            json_body(&streams)
        }
    };
    if let Some(tenant) = tenant {
        headers.push(("X-Scope-OrgID".to_owned(), tenant.to_owned()));
    }
    HttpRequest { url: format!("{}{PUSH_PATH}", base_url.trim_end_matches('/')), headers, body }
}

/// What Loki's answer means for the whole batch: 2xx stored; 429 and 5xx
/// again later; any other status refuses the batch for good (too old,
/// too long, a bad label), as promtail drops such a batch.
pub fn outcome(status: u16, body: &str, num_records: usize) -> Attempt {
    match status {
        200..=299 => Attempt::Done { delivered: num_records, rejected: Vec::new() },
        429 | 500..=599 => {
            Attempt::Retry { failed: (0..num_records).collect(), reason: format!("HTTP {status}: {}", short(body)) }
        }
        _ => Attempt::Done { delivered: 0, rejected: vec![format!("HTTP {status}: {}", short(body)); num_records] },
    }
}

pub(crate) fn short(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_record;

    #[test]
    fn streams_group_by_labels_in_first_appearance_order() {
        let records = vec![
            test_record("n1", 1, Some("api"), "one"),
            test_record("n2", 2, Some("web"), "two"),
            test_record("n1", 3, Some("api"), "three"),
        ];
        let fields = vec!["node".to_owned(), "job".to_owned()];
        let streams = streams(&records, &fields);
        assert_eq!(streams.len(), 2);
        assert_eq!(label_text(&streams[0].labels), "{node=\"n1\", job=\"api\"}");
        assert_eq!(streams[0].entries.iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>(), ["one", "three"]);
    }

    #[test]
    fn missing_fields_are_left_out_and_an_empty_set_falls_back_to_source() {
        let records = vec![test_record("n1", 1, None, "x")];
        let streams = streams(&records, &["job".to_owned()]);
        assert_eq!(streams[0].labels, vec![("source".to_owned(), "task".to_owned())]);
    }

    #[test]
    fn label_values_are_escaped() {
        let labels = vec![("job".to_owned(), "a\"b\\c\nd".to_owned())];
        assert_eq!(label_text(&labels), "{job=\"a\\\"b\\\\c\\nd\"}");
    }

    #[test]
    fn json_body_has_nanosecond_strings() {
        let stream = Stream {
            labels: vec![("node".into(), "n1".into())],
            entries: vec![(1_700_000_000_123_456_789, "hi".into())],
        };
        let body: serde_json::Value = serde_json::from_slice(&json_body(&[stream])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"streams":[{"stream":{"node":"n1"},"values":[["1700000000123456789","hi"]]}]})
        );
    }

    #[test]
    fn protobuf_bytes_are_the_documented_messages() {
        let stream = Stream { labels: vec![("a".into(), "b".into())], entries: vec![(1_000_000_002, "x".into())] };
        let raw = encode_push_request(std::slice::from_ref(&stream));
        let labels = b"{a=\"b\"}";
        // Timestamp{seconds=1, nanos=2}, Entry{timestamp, line="x"}.
        let timestamp = [0x08, 1, 0x10, 2];
        let mut entry = vec![0x0a, 4];
        entry.extend_from_slice(&timestamp);
        entry.extend_from_slice(&[0x12, 1, b'x']);
        let mut adapter = vec![0x0a, labels.len() as u8];
        adapter.extend_from_slice(labels);
        adapter.extend_from_slice(&[0x12, entry.len() as u8]);
        adapter.extend_from_slice(&entry);
        let mut expected = vec![0x0a, adapter.len() as u8];
        expected.extend_from_slice(&adapter);
        assert_eq!(raw, expected);
        let decompressed = snap::raw::Decoder::new().decompress_vec(&protobuf_body(&[stream])).unwrap();
        assert_eq!(decompressed, expected);
    }

    #[test]
    fn statuses_decide_retry_or_refusal() {
        assert!(matches!(outcome(204, "", 3), Attempt::Done { delivered: 3, .. }));
        assert!(matches!(outcome(429, "slow down", 3), Attempt::Retry { .. }));
        assert!(matches!(outcome(503, "", 3), Attempt::Retry { .. }));
        let Attempt::Done { delivered, rejected } = outcome(400, "entry too far behind", 2) else { panic!() };
        assert_eq!((delivered, rejected.len()), (0, 2));
    }
}
