//! Hostile request bodies and query strings through `router(server)` with
//! `oneshot` (docs/dev/style.md 19: a server never trusts its caller). Whatever a
//! caller sends, the answer is never a 500 (a panic in a handler is a 500
//! too: the router catches it), every failure is `{code, message}` JSON,
//! nothing panics anywhere in the process, and the server still answers
//! afterwards.
//!
//! Bodies start from valid ones (a job read from a job file, a site read
//! from a site file, …) with a few values replaced by hostile ones (huge,
//! negative and fractional numbers, long strings, NUL, unicode, nested and
//! wide arrays), keys removed, arrays and maps grown, or are random JSON,
//! random text or a valid body cut short.
//!
//! A bounded run for CI: [`DEFAULT_CASES`] cases per route. Search longer
//! by hand with `DROVER_FUZZ_CASES=5000 cargo test -p drover-api --test
//! fuzz_bodies --release`. A failure prints the minimal request; keep it
//! as a named regression test at the end of this file.
//!
//! No agent is connected to the test server, so `POST /v1/exec` never runs
//! a command, whatever the body says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

use drover_server::Server;
use support::{call, start_server};

/// Cases per route unless `DROVER_FUZZ_CASES` says otherwise.
const DEFAULT_CASES: u32 = 64;

/// The longest a request may take before the run counts it as hung.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The names of the threads of the test server's runtime.
const SERVER_THREADS: &str = "fuzzed-server";

/// Panics on the threads of the test server's runtime (the server's own
/// tasks; a panic in a handler is also a 500).
static PANICS: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------
// Valid bodies to start from.

/// Job files with most of the schema, as `drover job run` would send them.
const JOB_FILES: [&str; 3] = [
    r#"
job "web" {
  datacenters = ["dc1", "dc2"]
  priority    = 70
  meta        = { owner = "ops" }
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  constraint {
    attribute = "${attr.os.version}"
    operator  = "version"
    value     = ">= 8.0"
  }
  affinity {
    attribute = "${node.zone}"
    value     = "zone-a"
  }
  spread {
    attribute = "${node.zone}"
    target "zone-a" { percent = 50 }
    target "zone-b" { percent = 30 }
  }
  update {
    max_parallel     = 2
    min_healthy_time = "15s"
    auto_revert      = true
    canary           = 1
  }
  group "web" {
    count = 3
    restart {
      attempts = 2
      interval = "1m"
      delay    = "15s"
      mode     = "delay"
    }
    reschedule {
      delay          = "30s"
      delay_function = "exponential"
    }
    disconnect {
      lost_after = "5m"
    }
    task "server" {
      driver = "raw_exec"
      user   = "www-data"
      config {
        command = "/usr/bin/python3"
        args    = ["-m", "http.server", "8080", "${node.unique.name}"]
      }
      env {
        GREETING = "hello"
        PORT     = 8080
      }
      resources {
        cpu    = 250
        memory = 128
      }
      kill_timeout = "20s"
      kill_signal  = "SIGTERM"
      service {
        port = 8080
        check {
          type     = "http"
          path     = "/"
          interval = "10s"
          timeout  = "2s"
          check_restart { limit = 3 }
        }
      }
    }
  }
}
"#,
    r#"
job "cleanup" {
  type = "batch"
  periodic {
    cron    = "@daily"
    enabled = false
  }
  group "cleanup" {
    task "cleanup" {
      driver = "exec"
      config { command = "/usr/bin/find"  args = ["/tmp", "-mtime", "+7", "-delete"] }
    }
  }
}
"#,
    r#"
job "node-exporter" {
  type = "system"
  group "exporter" {
    task "exporter" {
      driver = "raw_exec"
      config { command = "/usr/bin/node_exporter" }
      resources { memory = 64 }
    }
  }
}
"#,
];

/// A site with one of each kind of object. Nothing in it can reach the
/// network or run anything in this test: there are no nodes and the
/// notifiers point at a closed port.
const SITE_FILE: &str = r#"
provider "ipmi" {
  default          = true
  reboot           = "true {{node.meta.bmc}}"
  console          = "true {{ node.name }}"
  timeout          = "2m"
  console_interval = "1m"
}

notifier "chat" {
  webhook {
    url     = "http://127.0.0.1:1/hooks/ops"
    body    = "{\"text\": \"{{alert.status}} {{alert.name}}\"}"
    headers = { Authorization = "Bearer x" }
  }
  retry {
    attempts = 4
    backoff  = "5s"
  }
}

alert "node-down" {
  when {
    node { status = "down" }
    for = "2m"
  }
  severity    = "critical"
  labels      = { team = "ops" }
  annotations = { summary = "node is down" }
  notify      = ["chat"]
}

alert "oom" {
  when {
    log {
      source   = "journal"
      match    = "Out of memory"
      at_least = 3
      within   = "10m"
      by       = "job"
    }
  }
}

alert "disk-full" {
  when {
    metric {
      name   = "disk_used_percent"
      labels = { mount = "/tmp" }
      above  = 95.5
    }
    for = "5m"
  }
}

hammer "drain-on-down" {
  when { node { event = "down" } }
  action { drain { deadline = "30m" } }
  mode = "dry-run"
  limits {
    per_hour          = 2
    concurrent        = 1
    cooldown          = "1h"
    max_attempts      = 2
    attempts_window   = "12h"
    fleet_max_percent = 5
    fleet_window      = "30m"
  }
  notify = ["chat"]
}

hammer "reboot-on-oom" {
  when { alert = "oom" }
  action { reboot {} }
  mode   = "approve"
  limits { max_share = 0.25 }
}
"#;

/// The valid bodies every mutation starts from, per route.
struct Seeds {
    jobs: Vec<Value>,
    variable: Value,
    node_updates: Vec<Value>,
    node_retirements: Vec<Value>,
    node_purges: Vec<Value>,
    site: Value,
    silence: Value,
    execs: Vec<Value>,
}

impl Seeds {
    fn new() -> Seeds {
        let jobs = JOB_FILES
            .iter()
            .map(|text| {
                let source = drover_jobspec::Source::new("seed.nomad.hcl", *text);
                let job = drover_jobspec::parse_job(&source, &Default::default()).expect("a valid job file");
                json!({ "job": job })
            })
            .collect();
        let site_source = drover_site::Source::new("site.hcl", SITE_FILE);
        let site = drover_site::from_sources(&[site_source], std::path::Path::new(".")).expect("a valid site");
        Seeds {
            jobs,
            variable: json!({ "items": { "user": "alice", "password": "s3cret", "port": "5432" } }),
            node_updates: vec![
                json!({
                    "nodes": ["batch01", "batch{02..04}"],
                    "labels": {
                        "hostgroup": "bi/batch/gridworker", "environment": "qa", "owner": "ops",
                        "zone": "r12", "meta": { "rack": "r12", "gpu": "" }
                    },
                    "dry_run": true
                }),
                json!({
                    "filter": "hostgroup =~ \"bi/**\" and not protected",
                    "labels": { "environment": "production" },
                    "dry_run": false
                }),
            ],
            node_retirements: vec![
                json!({ "nodes": ["batch01", "batch{02..04}"], "reason": "end of warranty", "dry_run": true }),
                json!({ "filter": "hostgroup =~ \"bi/**\" and not protected", "deadline": "1h", "dry_run": false }),
            ],
            node_purges: vec![json!({ "nodes": ["batch01", "batch{02..04}"], "dry_run": false })],
            site: json!({ "site": site, "runbooks": { "runbooks/oom.md": "# OOM\nreboot it\n" } }),
            silence: json!({
                "matchers": ["alertname=node-down", "node=~batch.*", "severity!=info"],
                "duration": "2h",
                "comment": "kernel update"
            }),
            execs: vec![
                json!({
                    "nodes": ["batch01", "batch{02..03}"], "command": ["uptime"], "timeout_ms": 5000,
                    "parallel": 4, "max_output_bytes": 65536
                }),
                json!({
                    "filter": "attr.cpu.numcores >= 16", "command": ["sh", "-c", "echo hi"], "user": "nobody",
                    "local": true
                }),
            ],
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile values.

/// Number literals that `serde_json::Value` cannot hold: put in a value as
/// a string `"\u{1}raw:LITERAL"` and written out verbatim (see [`render`]).
const RAW_NUMBERS: [&str; 6] = ["1e400", "-1e400", "123456789012345678901234567890", "-0", "1e-400", "-0.0e-0"];

const STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "\u{1}",
    "\r\n",
    "\t",
    "..",
    ".",
    "/",
    "../../etc/passwd",
    "a/../b",
    "*",
    "**",
    "?",
    "[",
    "(",
    ")",
    "{",
    "}",
    "\\",
    "\"",
    "'",
    "%",
    "%00",
    "%ZZ",
    "${node.unique.name}",
    "${attr.",
    "${",
    "$${x}",
    "${var.x}",
    "{{node.name}}",
    "{{",
    "{{ alert.nope }}",
    "-1s",
    "0s",
    "0",
    "-1",
    "1ns",
    "1ms",
    "1h",
    "1y",
    "P1D",
    "100000000000h",
    "9223372036854775807ns",
    "18446744073709551615s",
    "1e400s",
    "1.5s",
    "NaN",
    "inf",
    "true",
    "null",
    "@daily",
    "@every 1s",
    "* * * * *",
    "0 0 31 2 *",
    "61 25 32 13 8",
    "*/0 * * * *",
    "exec",
    "raw_exec",
    "docker",
    "service",
    "batch",
    "system",
    "SIGKILL",
    "SIGNOPE",
    "http",
    "tcp",
    "script",
    "regexp",
    "version",
    "semver",
    ">= 1.0",
    "~> 1.2.3",
    "< 0",
    "distinct_hosts",
    "distinct_property",
    "set_contains",
    "is_set",
    "=",
    "!=",
    "=~",
    "alertname=~(",
    "alertname=",
    "=x",
    "a=b=c",
    "hostgroup =~ \"bi/**\"",
    "name matches \"(\"",
    "status == \"dwon\"",
    "level:error",
    "NOT (",
    "node:batch* OR",
    "batch{00..99999}",
    "batch{a..}",
    "{,}",
    "localhost:0",
    "http://127.0.0.1:1/",
    "https://[::1]:99999/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "runbooks/../../x.md",
    "\u{202e}gnp.exe",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{301}",
    "é",
    "Ω≈ç√∫",
    "ｆｕｌｌ",
    "😀",
    "👨‍👩‍👧‍👦",
];

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(2),
            json!(-1),
            json!(-0.0),
            json!(0.5),
            json!(-2.5),
            json!(65535),
            json!(65536),
            json!(100_000),
            json!(100_001),
            json!(i32::MIN),
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(9_007_199_254_740_993_u64),
            json!(1e308),
            json!(-1e308),
            json!(5e-324),
        ]),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |number| number.is_finite()).prop_map(Value::from),
        prop::sample::select(&RAW_NUMBERS[..]).prop_map(|literal| Value::String(format!("\u{1}raw:{literal}"))),
    ]
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(STRINGS).prop_map(str::to_owned),
        2 => "\\PC{0,40}",
        1 => "[\\x00-\\x1f\\x7f]{1,8}",
        1 => (prop::sample::select(vec!["x", "é", "😀", "\0", "/", "{", "\\"]), 1_usize..70_000)
            .prop_map(|(unit, times)| unit.repeat(times)),
        1 => prop::collection::vec(prop::sample::select(STRINGS), 2..6).prop_map(|parts| parts.concat()),
    ]
}

/// Random JSON of every shape.
fn random_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `depth` arrays nested in each other.
fn nested_arrays(depth: usize) -> Value {
    let mut value = Value::Array(Vec::new());
    for _ in 1..depth {
        value = Value::Array(vec![value]);
    }
    value
}

fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => hostile_number(),
        4 => hostile_string().prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => (1_usize..300).prop_map(nested_arrays),
        1 => (0_usize..5000).prop_map(|length| Value::Array(vec![json!(1); length])),
        1 => Just(json!({})),
        2 => random_json(),
    ]
}

// ---------------------------------------------------------------------------
// Mutations of a valid body.

#[derive(Clone, Debug)]
enum Mutation {
    /// The value at the `at`-th place, made extreme but of the same kind: a
    /// number becomes `number`, a string `text`, a bool its opposite, an
    /// array `copies` copies of its first item, a map gains the key `text`.
    Extreme { at: usize, number: Value, text: String, copies: usize },
    /// The value at the `at`-th place replaced by `value`.
    Replace { at: usize, value: Value },
    /// The value at the `at`-th place removed from its map or array.
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let copies = prop_oneof![0_usize..4, Just(100), Just(1000), Just(3000)];
    prop_oneof![
        // Mostly of the same kind, so that many bodies get past serde.
        6 => (any::<usize>(), hostile_number(), hostile_string(), copies)
            .prop_map(|(at, number, text, copies)| Mutation::Extreme { at, number, text, copies }),
        2 => (any::<usize>(), hostile_value()).prop_map(|(at, value)| Mutation::Replace { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

/// The JSON pointer of every value inside `value` (not `value` itself).
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let pointer = format!("{prefix}/{}", key.replace('~', "~0").replace('/', "~1"));
                    out.push(pointer.clone());
                    walk(child, &pointer, out);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    let pointer = format!("{prefix}/{index}");
                    out.push(pointer.clone());
                    walk(child, &pointer, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

fn apply(seed: &Value, mutations: &[Mutation]) -> Value {
    let mut document = seed.clone();
    for mutation in mutations {
        let places = pointers(&document);
        if places.is_empty() {
            break;
        }
        let (Mutation::Extreme { at, .. } | Mutation::Replace { at, .. } | Mutation::Remove { at }) = mutation;
        let pointer = &places[at % places.len()];
        match mutation {
            Mutation::Extreme { number, text, copies, .. } => {
                let target = document.pointer_mut(pointer).unwrap();
                let extreme = match target {
                    Value::Number(_) => number.clone(),
                    Value::String(_) | Value::Null => Value::String(text.clone()),
                    Value::Bool(flag) => Value::Bool(!*flag),
                    Value::Array(items) => {
                        let first = items.first().cloned().unwrap_or_else(|| Value::String(text.clone()));
                        Value::Array(vec![first; *copies])
                    }
                    Value::Object(map) => {
                        let mut grown = map.clone();
                        let first = map.values().next().cloned().unwrap_or(Value::Null);
                        grown.insert(text.clone(), first);
                        Value::Object(grown)
                    }
                };
                *target = extreme;
            }
            Mutation::Replace { value, .. } => *document.pointer_mut(pointer).unwrap() = value.clone(),
            Mutation::Remove { .. } => {
                let (parent_pointer, last) = pointer.rsplit_once('/').unwrap();
                let key = last.replace("~1", "/").replace("~0", "~");
                match document.pointer_mut(parent_pointer).unwrap() {
                    Value::Object(map) => {
                        map.remove(&key);
                    }
                    Value::Array(items) => {
                        items.remove(key.parse::<usize>().unwrap());
                    }
                    _ => unreachable!("a pointer's parent is a map or an array"),
                }
            }
        }
    }
    document
}

/// What is sent as a body.
#[derive(Clone, Debug)]
enum BodyShape {
    /// A seed with a few mutations.
    Mutated { seed: usize, mutations: Vec<Mutation> },
    /// Random JSON.
    Random(Value),
    /// Random text.
    Text(String),
    /// A seed cut short after this many bytes.
    Truncated { seed: usize, at: usize },
}

fn body_shape() -> impl Strategy<Value = BodyShape> {
    prop_oneof![
        8 => (any::<usize>(), prop::collection::vec(mutation(), 1..4))
            .prop_map(|(seed, mutations)| BodyShape::Mutated { seed, mutations }),
        2 => random_json().prop_map(BodyShape::Random),
        1 => "\\PC{0,200}".prop_map(BodyShape::Text),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(seed, at)| BodyShape::Truncated { seed, at }),
    ]
}

/// Writes `value` as JSON with the raw number literals put in.
fn to_json_text(value: &Value) -> String {
    let mut text = value.to_string();
    for literal in RAW_NUMBERS {
        text = text.replace(&format!("\"\\u0001raw:{literal}\""), literal);
    }
    text
}

/// The body text, and the body as JSON when it is JSON.
fn render(seeds: &[Value], shape: &BodyShape) -> (String, Option<Value>) {
    match shape {
        BodyShape::Mutated { seed, mutations } => {
            let value = apply(&seeds[seed % seeds.len()], mutations);
            (to_json_text(&value), Some(value))
        }
        BodyShape::Random(value) => (to_json_text(value), Some(value.clone())),
        BodyShape::Text(text) => (text.clone(), None),
        BodyShape::Truncated { seed, at } => {
            let text = seeds[seed % seeds.len()].to_string();
            let mut end = at % text.len().max(1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (text[..end].to_owned(), None)
        }
    }
}

// ---------------------------------------------------------------------------
// Paths and query strings.

/// Percent-encodes every byte but the unreserved ones.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(byte) {
                char::from(*byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// The most bytes of one encoded path segment or query value, so that a
/// URI stays under the `http` crate's limit of 64 KiB.
const MAX_URI_PIECE_BYTES: usize = 4096;

/// `text` percent-encoded, cut after its last whole character that fits
/// in [`MAX_URI_PIECE_BYTES`] (so it stays UTF-8).
fn encoded_piece(text: &str) -> String {
    let mut encoded = String::new();
    for character in text.chars() {
        let mut buffer = [0; 4];
        let piece = percent_encode(character.encode_utf8(&mut buffer).as_bytes());
        if encoded.len() + piece.len() > MAX_URI_PIECE_BYTES {
            break;
        }
        encoded.push_str(&piece);
    }
    encoded
}

/// A query value, already encoded for a URI.
fn uri_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => hostile_string().prop_map(|text| encoded_piece(&text)),
        // Not UTF-8 once decoded.
        1 => prop::collection::vec(any::<u8>(), 1..8).prop_map(|bytes| percent_encode(&bytes)),
        // Broken escapes and separators, as they are.
        1 => prop::sample::select(vec!["%", "%G1", "%FF", "%C3", "%E2%82", "+", "%2B", "=", "==", "&", ";", ".."])
            .prop_map(str::to_owned),
    ]
}

/// A path segment, already encoded for a URI (not always UTF-8 once
/// decoded: such a segment is a coded error too, see
/// `a_path_that_is_not_utf8_is_a_coded_error`).
fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9_-]{1,12}",
        6 => uri_text(),
        1 => prop::sample::select(vec![".", "%2E%2E", "%2F"]).prop_map(str::to_owned),
    ]
}

/// The log query language's tokens, so that random queries often parse.
const LOG_QUERY_TOKENS: &[&str] = &[
    "failed",
    "error",
    "AND",
    "OR",
    "NOT",
    "-",
    "(",
    ")",
    "\"",
    "\\",
    "*",
    ":",
    "node:",
    "level:",
    "job:",
    "user:",
    "message:",
    "batch*",
    "\"Out of memory\"",
    "10.0.0.1",
    "web-1",
    "é",
    " ",
];

/// Queries that parse, so that searches get past the parser.
const VALID_LOG_QUERIES: &[&str] = &[
    "",
    "failed",
    "level:error OR level:err",
    "NOT (node:batch* OR job:web) \"Out of memory\"",
    "user:alice -message:debug",
    "10.0.0.1 web-1",
];

/// Filters that parse, so that listings get past the parser.
const VALID_FILTERS: &[&str] = &[
    "protected",
    "hostgroup =~ \"bi/**\" and not protected",
    "attr.cpu.numcores >= 16 or meta.rack in [\"r1*\", \"r12\"]",
    "name matches \"^batch[0-9]+$\"",
    "status == \"ready\" && has meta.gpu",
];

/// The node filter language's tokens.
const FILTER_TOKENS: &[&str] = &[
    "name",
    "hostgroup",
    "status",
    "attr.cpu.numcores",
    "meta.rack",
    "protected",
    "and",
    "or",
    "not",
    "has",
    "in",
    "is",
    "set",
    "matches",
    "==",
    "!=",
    "<=",
    ">",
    "=~",
    "!~",
    "(",
    ")",
    "[",
    "]",
    ",",
    "\"ready\"",
    "\"bi/**\"",
    "\"(\"",
    "16",
    "-1",
    "1e400",
    "99999999999999999999",
    " ",
    "!",
    "&&",
    "||",
];

fn token_soup(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..16).prop_map(|parts| parts.join(" "))
}

/// Values for the query parameters of the log routes.
const TIMES: &[&str] = &[
    "1h",
    "0s",
    "-1h",
    "1ns",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "2024-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "2024-02-30T25:61:61Z",
    "now",
    "1e400",
    "9223372036854775807ns",
    "100000000000h",
];

fn query_value(name: &str) -> BoxedStrategy<String> {
    let encoded = |strategy: BoxedStrategy<String>| strategy.prop_map(|text| encoded_piece(&text)).boxed();
    let valid_or_soup = |valid: &'static [&'static str], tokens: &'static [&'static str]| {
        encoded(
            prop_oneof![prop::sample::select(valid).prop_map(str::to_owned), token_soup(tokens).prop_map(|text| text)]
                .boxed(),
        )
    };
    let special = match name {
        "q" => valid_or_soup(VALID_LOG_QUERIES, LOG_QUERY_TOKENS),
        "filter" => valid_or_soup(VALID_FILTERS, FILTER_TOKENS),
        "since" | "until" | "interval" => encoded(prop::sample::select(TIMES).prop_map(str::to_owned).boxed()),
        "limit" | "top" => encoded(
            prop_oneof![
                3 => (0_u32..2000).prop_map(|number| number.to_string()),
                1 => any::<u64>().prop_map(|number| number.to_string()),
                1 => prop::sample::select(vec!["0", "-1", "18446744073709551615", "18446744073709551616", "1e3"])
                    .prop_map(str::to_owned),
            ]
            .boxed(),
        ),
        "by" => encoded(
            prop::sample::select(vec!["node", "level", "job", "source", "user", "", "message", "node.name"])
                .prop_map(str::to_owned)
                .boxed(),
        ),
        "local" => prop::sample::select(vec!["true", "false", "false"]).prop_map(str::to_owned).boxed(),
        _ => uri_text().boxed(),
    };
    prop_oneof![8 => special, 1 => uri_text()].boxed()
}

/// `name=value&…` for some of `names`, each at most once (a repeated name
/// is refused before anything else is looked at).
fn query_string(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::subsequence(names, 0..=names.len())
        .prop_flat_map(|chosen| {
            chosen
                .into_iter()
                .map(|name| query_value(name).prop_map(move |value| format!("{name}={value}")))
                .collect::<Vec<_>>()
        })
        .prop_map(|parameters| parameters.join("&"))
}

// ---------------------------------------------------------------------------
// Requests.

/// One request: what a failure prints, and what a regression test replays.
#[derive(Clone, Debug)]
struct Case {
    method: &'static str,
    uri: String,
    body: Option<String>,
}

impl Case {
    fn post(uri: impl Into<String>, body: String) -> Case {
        Case { method: "POST", uri: uri.into(), body: Some(body) }
    }

    fn get(uri: impl Into<String>) -> Case {
        Case { method: "GET", uri: uri.into(), body: None }
    }

    fn request(&self) -> Request<Body> {
        let builder = Request::builder().method(self.method).uri(&self.uri);
        match &self.body {
            Some(body) => builder.header("content-type", "application/json").body(Body::from(body.clone())),
            None => builder.body(Body::empty()),
        }
        .unwrap_or_else(|error| panic!("the test built a bad request {self:?}: {error}"))
    }
}

#[derive(Clone, Copy, Debug)]
enum Route {
    RegisterJob,
    PlanJob,
    PutVariable,
    UpdateNodes,
    RetireNodes,
    PurgeNodes,
    ApplySite,
    AddSilence,
    Exec,
    SearchLogs,
    CountLogs,
    LogHistogram,
    ListNodes,
}

const ROUTES: [Route; 13] = [
    Route::RegisterJob,
    Route::PlanJob,
    Route::PutVariable,
    Route::UpdateNodes,
    Route::RetireNodes,
    Route::PurgeNodes,
    Route::ApplySite,
    Route::AddSilence,
    Route::Exec,
    Route::SearchLogs,
    Route::CountLogs,
    Route::LogHistogram,
    Route::ListNodes,
];

fn posts(uri: &'static str, seeds: Vec<Value>) -> BoxedStrategy<Case> {
    body_shape().prop_map(move |shape| Case::post(uri, render(&seeds, &shape).0)).boxed()
}

fn cases(route: Route, seeds: &Seeds) -> BoxedStrategy<Case> {
    match route {
        Route::RegisterJob => posts("/v1/jobs", seeds.jobs.clone()),
        Route::PlanJob => {
            let jobs = seeds.jobs.clone();
            body_shape()
                .prop_map(move |shape| {
                    let (body, value) = render(&jobs, &shape);
                    // The path must name the body's job to get past the first check.
                    let job_id = value
                        .as_ref()
                        .and_then(|value| value.pointer("/job/id"))
                        .and_then(Value::as_str)
                        .unwrap_or("web")
                        .to_owned();
                    Case::post(format!("/v1/job/{}/plan", encoded_piece(&job_id)), body)
                })
                .boxed()
        }
        Route::PutVariable => {
            let seed = vec![seeds.variable.clone()];
            let cas = prop_oneof![
                4 => Just(String::new()),
                2 => any::<u64>().prop_map(|index| format!("?cas={index}")),
                1 => prop::sample::select(vec!["?cas=0", "?cas=1", "?cas=-1", "?cas=18446744073709551616", "?cas=x"])
                    .prop_map(str::to_owned),
            ];
            (prop::collection::vec(path_segment(), 1..5), cas, body_shape())
                .prop_map(move |(segments, cas, shape)| Case {
                    method: "PUT",
                    uri: format!("/v1/var/{}{cas}", segments.join("/")),
                    body: Some(render(&seed, &shape).0),
                })
                .boxed()
        }
        Route::UpdateNodes => posts("/v1/nodes/update", seeds.node_updates.clone()),
        Route::RetireNodes => posts(drover_proto::paths::NODES_RETIRE, seeds.node_retirements.clone()),
        Route::PurgeNodes => posts(drover_proto::paths::NODES_PURGE, seeds.node_purges.clone()),
        Route::ApplySite => posts("/v1/site", vec![seeds.site.clone()]),
        Route::AddSilence => posts("/v1/silences", vec![seeds.silence.clone()]),
        Route::Exec => posts(drover_proto::paths::EXEC, seeds.execs.clone()),
        Route::SearchLogs => query_string(&["q", "since", "until", "filter", "local", "limit", "cursor", "x"])
            .prop_map(|query| Case::get(format!("{}?{query}", drover_proto::paths::LOGS_SEARCH)))
            .boxed(),
        Route::CountLogs => query_string(&["q", "since", "until", "filter", "local", "by", "top", "x"])
            .prop_map(|query| Case::get(format!("{}?{query}", drover_proto::paths::LOGS_COUNT)))
            .boxed(),
        Route::LogHistogram => query_string(&["q", "since", "until", "filter", "local", "interval", "x"])
            .prop_map(|query| Case::get(format!("{}?{query}", drover_proto::paths::LOGS_HISTOGRAM)))
            .boxed(),
        Route::ListNodes => {
            query_string(&["filter", "x"]).prop_map(|query| Case::get(format!("/v1/nodes?{query}"))).boxed()
        }
    }
}

/// The error codes a body may carry (`ErrorCode`, as written on the wire).
const CODES: [&str; 8] = [
    "invalid_input",
    "not_found",
    "conflict",
    "forbidden",
    "not_leader",
    "unavailable",
    "timeout",
    "method_not_allowed",
];

/// Sends `case` and checks the answer.
async fn check(server: &Server, case: &Case) -> Result<(), TestCaseError> {
    let answer = tokio::time::timeout(REQUEST_DEADLINE, drover_api::router(server.clone()).oneshot(case.request()))
        .await
        .map_err(|_| TestCaseError::fail("no answer within the deadline"))?
        .expect("the router is infallible");
    let status = answer.status();
    let bytes = tokio::time::timeout(REQUEST_DEADLINE, answer.into_body().collect())
        .await
        .map_err(|_| TestCaseError::fail(format!("{status}: the body did not end within the deadline")))?
        .map_err(|error| TestCaseError::fail(format!("{status}: the body failed: {error}")))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    prop_assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked (see the panic message above); {} {}",
        status,
        text
    );
    prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}", text);
    if !status.is_success() {
        let error: Value =
            serde_json::from_slice(&bytes).map_err(|_| TestCaseError::fail(format!("{status}: not JSON: {text}")))?;
        let code = error["code"].as_str().unwrap_or_default();
        prop_assert!(CODES.contains(&code), "{}: no known code: {}", status, text);
        prop_assert!(error["message"].as_str().is_some_and(|message| !message.is_empty()), "{}: {}", status, text);
    }
    Ok(())
}

/// `DROVER_FUZZ_CASES`, else [`DEFAULT_CASES`].
fn num_cases() -> u32 {
    std::env::var("DROVER_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_CASES)
}

/// Counts the panics of the server's threads, not those of the tests.
fn count_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(SERVER_THREADS) {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }
        default_hook(info);
    }));
}

#[test]
fn hostile_requests_get_coded_errors_never_internal_ones() {
    count_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let (server, _dir) = runtime.block_on(start_server());
    let seeds = Seeds::new();
    let config = Config {
        cases: num_cases(),
        // A failure becomes a named regression test below, not a seed file.
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    for route in ROUTES {
        let mut runner = TestRunner::new(config.clone());
        // Each request runs on the runtime's threads, so that a panic
        // anywhere in it is counted.
        let result = runner.run(&cases(route, &seeds), |case| {
            let server = server.clone();
            runtime.block_on(async move { tokio::spawn(async move { check(&server, &case).await }).await.unwrap() })
        });
        if let Err(error) = result {
            panic!("{route:?}: {error}");
        }
        let (status, jobs) = runtime.block_on(call(&server, Request::get("/v1/jobs").body(Body::empty()).unwrap()));
        assert_eq!(status, StatusCode::OK, "after {route:?}: {jobs}");
        assert!(jobs.is_array(), "after {route:?}: {jobs}");
    }
    runtime.block_on(server.shutdown());
}

// ---------------------------------------------------------------------------
// Regression tests: what the run above found.

/// Found by `hostile_requests_get_coded_errors_never_internal_ones`: a
/// path parameter that is not UTF-8 once percent-decoded gets axum's own
/// plain-text 400 ("Invalid URL: Invalid UTF-8 in `path`") from
/// `axum::extract::Path`, not `{code, message}` JSON; every route with a
/// path parameter does.
#[tokio::test]
async fn a_path_that_is_not_utf8_is_a_coded_error() {
    let (server, _dir) = start_server().await;
    let put = Request::put("/v1/var/%FF")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"items": {"a": "b"}}"#))
        .unwrap();
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let delete = |uri: &str| Request::delete(uri).body(Body::empty()).unwrap();
    for request in
        [put, get("/v1/var/%FF"), get("/v1/job/%C3"), get("/v1/node/a%E2%82/history"), delete("/v1/silence/%FF")]
    {
        let target = format!("{} {}", request.method(), request.uri());
        let (status, body) = call(&server, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
        assert_eq!(body["code"], "invalid_input", "{target}: {body}");
    }
    server.shutdown().await;
}
