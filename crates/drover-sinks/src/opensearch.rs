//! OpenSearch's (and Elasticsearch's) `_bulk` API: the NDJSON body a
//! batch of records makes, and which of its items to send again.
//!
//! Taken from the OpenSearch 2.17 documentation ("Bulk", `POST _bulk`),
//! which Elasticsearch 8.15 ("Bulk API") matches for everything used here.
//! Each line becomes a `create` action with `_id` = `origin:seq`, so a
//! line sent twice (at least once) is stored once: the second answer is a
//! 409 for that item, which counts as delivered. `create` also works for
//! data streams.
//!
//! The answer is 200 even when items failed: `"errors": true` and an
//! `items` array in request order, each `{"create": {"status": …}}`. Items
//! with 429 or 5xx are sent again (only those); other 4xx (a mapping
//! conflict) are refused for good. A 429 or 5xx for the whole request
//! sends the whole batch again.

use chrono::{DateTime, Utc};
use drover_types::LogRecord;
use serde_json::{Map, Value, json};

use crate::loki::short;
use crate::{Attempt, HttpRequest};

/// The path of the bulk API under a base URL.
pub const BULK_PATH: &str = "/_bulk";

/// The index of a record: `%Y`, `%m`, `%d`, `%H` of its event time (UTC)
/// replaced, `%%` a percent sign (patterns are checked by the site reader).
pub fn index_name(pattern: &str, timestamp_nanos: i64) -> String {
    let time = DateTime::<Utc>::from_timestamp_nanos(timestamp_nanos);
    let mut name = String::with_capacity(pattern.len() + 8);
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        if character != '%' {
            name.push(character);
            continue;
        }
        match characters.next() {
            Some('Y') => name.push_str(&time.format("%Y").to_string()),
            Some('m') => name.push_str(&time.format("%m").to_string()),
            Some('d') => name.push_str(&time.format("%d").to_string()),
            Some('H') => name.push_str(&time.format("%H").to_string()),
            Some(other) => name.push(other),
            None => name.push('%'),
        }
    }
    name
}

fn rfc3339(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The document of a record: `@timestamp` (the event time), `message`,
/// the record's other fields by their names, and its extracted fields
/// under `fields`.
pub fn document(record: &LogRecord) -> Value {
    let mut document = Map::new();
    document.insert("@timestamp".into(), Value::String(rfc3339(record.timestamp)));
    document.insert("received".into(), Value::String(rfc3339(record.received)));
    document.insert("message".into(), Value::String(record.message.clone()));
    for (name, value) in [
        ("node", Some(&record.node)),
        ("hostgroup", record.hostgroup.as_ref()),
        ("environment", record.environment.as_ref()),
        ("job", record.job.as_ref()),
        ("group", record.group.as_ref()),
        ("task", record.task.as_ref()),
        ("alloc", record.alloc.as_ref()),
        ("source", Some(&record.source)),
        ("stream", Some(&record.stream)),
        ("level", record.level.as_ref()),
        ("origin", Some(&record.origin)),
    ] {
        if let Some(value) = value {
            document.insert(name.into(), Value::String(value.clone()));
        }
    }
    document.insert("seq".into(), json!(record.seq));
    if !record.fields.is_empty() {
        document.insert("fields".into(), json!(record.fields));
    }
    Value::Object(document)
}

/// The id of a record's document: `origin:seq`, unique in a cluster.
pub fn document_id(record: &LogRecord) -> String {
    format!("{}:{}", record.origin, record.seq)
}

/// The NDJSON body: an action line and a document line per record, each
/// ending with a newline (the last one too, as the API requires).
pub fn bulk_body(records: &[LogRecord], index_pattern: &str) -> String {
    let mut body = String::new();
    for record in records {
        let action =
            json!({ "create": { "_index": index_name(index_pattern, record.timestamp), "_id": document_id(record) } });
        body.push_str(&action.to_string());
        body.push('\n');
        body.push_str(&document(record).to_string());
        body.push('\n');
    }
    body
}

/// The bulk request of a batch.
pub fn request(base_url: &str, records: &[LogRecord], index_pattern: &str) -> HttpRequest {
    HttpRequest {
        url: format!("{}{BULK_PATH}", base_url.trim_end_matches('/')),
        headers: vec![("Content-Type".to_owned(), "application/x-ndjson".to_owned())],
        body: bulk_body(records, index_pattern).into_bytes(),
    }
}

/// What an answer to a bulk request of `num_records` items means.
pub fn outcome(status: u16, body: &str, num_records: usize) -> Attempt {
    match status {
        200..=299 => {}
        429 | 500..=599 => {
            return Attempt::Retry {
                failed: (0..num_records).collect(),
                reason: format!("HTTP {status}: {}", short(body)),
            };
        }
        _ => {
            return Attempt::Done {
                delivered: 0,
                rejected: vec![format!("HTTP {status}: {}", short(body)); num_records],
            };
        }
    }
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        // A 2xx that is not a bulk answer (a proxy's page): nothing says
        // the lines were stored.
        return Attempt::Retry {
            failed: (0..num_records).collect(),
            reason: format!("not a bulk answer: {}", short(body)),
        };
    };
    if answer.get("errors").and_then(Value::as_bool) != Some(true) {
        return Attempt::Done { delivered: num_records, rejected: Vec::new() };
    }
    let items = answer.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut failed = Vec::new();
    let mut rejected = Vec::new();
    let mut reason = String::new();
    for index in 0..num_records {
        // Each item is an object with one key, the action.
        let item = items.get(index).and_then(Value::as_object).and_then(|item| item.values().next());
        let Some(item) = item else {
            failed.push(index);
            continue;
        };
        let item_status = item.get("status").and_then(Value::as_u64).unwrap_or(0);
        let error = item.get("error").map(|error| {
            let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
            let text = error.get("reason").and_then(Value::as_str).unwrap_or("");
            format!("{kind}: {text}")
        });
        match item_status {
            200..=299 | 409 => {}
            429 | 500..=599 | 0 => {
                if reason.is_empty() {
                    reason = format!("item status {item_status}: {}", error.unwrap_or_default());
                }
                failed.push(index);
            }
            _ => rejected.push(format!("item status {item_status}: {}", error.unwrap_or_default())),
        }
    }
    if failed.is_empty() {
        Attempt::Done { delivered: num_records - rejected.len(), rejected }
    } else {
        Attempt::Partial { failed, rejected, reason }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_record;

    #[test]
    fn index_patterns_use_the_event_time_in_utc() {
        // 2026-12-07T03:04:05Z
        let nanos = 1_796_612_645_000_000_000;
        assert_eq!(index_name("drover-%Y.%m.%d", nanos), "drover-2026.12.07");
        assert_eq!(index_name("logs-%Y%m%d%H-100%%", nanos), "logs-2026120703-100%");
    }

    #[test]
    fn bulk_bodies_are_action_and_document_lines() {
        let records = vec![test_record("n1", 7, Some("api"), "hello")];
        let body = bulk_body(&records, "drover-%Y");
        let lines: Vec<&str> = body.split_terminator('\n').collect();
        assert!(body.ends_with('\n'));
        assert_eq!(lines.len(), 2);
        let action: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["create"]["_id"], "n1:7");
        let document: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(document["message"], "hello");
        assert_eq!(document["job"], "api");
        assert_eq!(document["seq"], 7);
        assert!(document["@timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn partial_failures_retry_only_429_and_5xx_items() {
        let answer = json!({"took": 3, "errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
            {"create": {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "x"}}}
        ]});
        let Attempt::Partial { failed, rejected, reason } = outcome(200, &answer.to_string(), 5) else { panic!() };
        assert_eq!(failed, vec![1, 4]);
        assert_eq!(rejected.len(), 1);
        assert!(reason.contains("queue full"), "{reason}");
    }

    #[test]
    fn whole_request_statuses() {
        assert!(matches!(outcome(200, r#"{"errors":false,"items":[]}"#, 2), Attempt::Done { delivered: 2, .. }));
        assert!(matches!(outcome(429, "", 2), Attempt::Retry { .. }));
        assert!(matches!(outcome(200, "<html>", 2), Attempt::Retry { .. }));
        assert!(matches!(outcome(413, "too large", 2), Attempt::Done { delivered: 0, .. }));
    }
}
