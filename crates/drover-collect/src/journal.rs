//! The systemd journal, read through `journalctl --follow --output=json`.
//!
//! Why a child process rather than libsystemd: no C dependency, and the
//! agent runs on machines without systemd, where the source simply reports
//! [`SourceExit::NotAvailable`]. Each entry carries its `__CURSOR` as a
//! [`Checkpoint::Journal`]; after a restart the source continues after the
//! last committed cursor, so entries are neither lost nor repeated.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::error::{Error, Result};
use crate::syslog::{SyslogFormat, SyslogMeta};
use crate::{LineSender, Source, SourceExit, SourceFuture, SourceKind, SourceLine};

/// Where to start when there is no committed cursor yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalStart {
    /// Only entries written from now on.
    #[default]
    End,
    /// Every entry the journal still holds.
    Beginning,
}

/// The configuration of the journal source.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The `journalctl` binary.
    pub journalctl: PathBuf,
    /// Read the journal files in this directory instead of the system journal.
    pub directory: Option<PathBuf>,
    /// Only these units (`--unit`); all when empty.
    pub units: Vec<String>,
    pub start: JournalStart,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            journalctl: PathBuf::from("journalctl"),
            directory: None,
            units: Vec::new(),
            start: JournalStart::End,
        }
    }
}

/// The journal source.
#[derive(Debug)]
pub struct JournalSource {
    config: JournalConfig,
    checkpoints: Arc<CheckpointStore>,
}

/// One journal entry, mapped to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub cursor: Option<String>,
    pub unit: Option<String>,
    pub text: String,
    pub meta: SyslogMeta,
}

impl JournalSource {
    pub fn new(config: JournalConfig, checkpoints: Arc<CheckpointStore>) -> JournalSource {
        JournalSource { config, checkpoints }
    }

    /// The `journalctl` arguments for the current checkpoint.
    fn arguments(&self) -> Vec<String> {
        let mut arguments = vec!["--follow".to_owned(), "--output=json".to_owned(), "--no-pager".to_owned()];
        match (self.checkpoints.journal_cursor(), self.config.start) {
            (Some(cursor), _) => {
                arguments.push(format!("--after-cursor={cursor}"));
                arguments.push("--lines=all".to_owned());
            }
            (None, JournalStart::Beginning) => arguments.push("--lines=all".to_owned()),
            (None, JournalStart::End) => arguments.push("--lines=0".to_owned()),
        }
        if let Some(directory) = &self.config.directory {
            arguments.push(format!("--directory={}", directory.display()));
        }
        for unit in &self.config.units {
            arguments.push(format!("--unit={unit}"));
        }
        arguments
    }

    /// Follows the journal until `cancel` fires or `sink` is closed. Ends with
    /// `NotAvailable` when `journalctl` is missing or exits before the first entry.
    pub async fn run(self, sink: LineSender, cancel: CancellationToken) -> Result<SourceExit> {
        let arguments = self.arguments();
        debug!(?arguments, "starting journalctl");
        let spawned = Command::new(&self.config.journalctl)
            .args(&arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                return Ok(SourceExit::NotAvailable {
                    reason: format!("cannot run {}: {err}", self.config.journalctl.display()),
                });
            }
        };
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::TaskFailed { what: "journalctl", reason: "no output pipes".to_owned() });
        };
        let stderr_task = tokio::spawn(async move {
            let mut collected = Vec::new();
            let _ = (&mut stderr).take(4096).read_to_end(&mut collected).await;
            String::from_utf8_lossy(&collected).trim().to_owned()
        });
        let mut reader = BufReader::with_capacity(256 * 1024, stdout);
        let mut buffer = Vec::new();
        let mut streams: HashMap<String, Arc<str>> = HashMap::new();
        let default_stream: Arc<str> = Arc::from("journal");
        let mut num_entries = 0u64;
        loop {
            buffer.clear();
            let read = tokio::select! {
                read = reader.read_until(b'\n', &mut buffer) => read,
                () = cancel.cancelled() => return Ok(SourceExit::Stopped),
                () = sink.closed() => return Ok(SourceExit::Stopped),
            };
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => return Err(Error::io("read from", &self.config.journalctl)(err)),
            }
            let Some(entry) = parse_entry(&buffer) else {
                debug!("skipping a journal line that is not a JSON object");
                continue;
            };
            num_entries += 1;
            let stream = match &entry.unit {
                Some(unit) => streams.entry(unit.clone()).or_insert_with(|| Arc::from(unit.as_str())).clone(),
                None => default_stream.clone(),
            };
            let line = SourceLine {
                source: SourceKind::Journal,
                stream,
                received: SystemTime::now(),
                text: entry.text,
                syslog: Some(Box::new(entry.meta)),
                checkpoint: entry.cursor.map(|cursor| Checkpoint::Journal { cursor: Arc::from(cursor) }),
            };
            tokio::select! {
                sent = sink.send(line) => if sent.is_err() { return Ok(SourceExit::Stopped) },
                () = cancel.cancelled() => return Ok(SourceExit::Stopped),
            }
        }
        let status = child.wait().await.map_err(Error::io("wait for", &self.config.journalctl))?;
        let stderr_text = stderr_task.await.unwrap_or_default();
        if num_entries == 0 {
            return Ok(SourceExit::NotAvailable { reason: format!("journalctl exited ({status}): {stderr_text}") });
        }
        Err(Error::TaskFailed { what: "journalctl", reason: format!("exited ({status}): {stderr_text}") })
    }
}

impl Source for JournalSource {
    fn run(self: Box<Self>, sink: LineSender, cancel: CancellationToken) -> SourceFuture {
        Box::pin(JournalSource::run(*self, sink, cancel))
    }
}

/// A field's text: a string, a byte array (binary or non-UTF-8 data), or the
/// first of several values.
fn field_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            let bytes: Vec<u8> = items.iter().filter_map(Value::as_u64).map(|byte| byte as u8).collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.first().and_then(field_text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Maps one line of `journalctl --output=json`; `None` if it is not a JSON object.
pub fn parse_entry(json: &[u8]) -> Option<JournalEntry> {
    let value: Value = serde_json::from_slice(json).ok()?;
    let fields = value.as_object()?;
    let text_of = |name: &str| fields.get(name).and_then(field_text);
    let number_of = |name: &str| text_of(name).and_then(|text| text.trim().parse::<u64>().ok());
    let timestamp_micros = number_of("__REALTIME_TIMESTAMP").and_then(|micros| i64::try_from(micros).ok());
    let meta = SyslogMeta {
        format: SyslogFormat::Journal,
        facility: number_of("SYSLOG_FACILITY").filter(|&facility| facility <= 23).unwrap_or(1) as u8,
        // Entries without PRIORITY are info, as journalctl shows them.
        severity: number_of("PRIORITY").filter(|&priority| priority <= 7).unwrap_or(6) as u8,
        hostname: text_of("_HOSTNAME"),
        app_name: text_of("SYSLOG_IDENTIFIER").or_else(|| text_of("_COMM")),
        proc_id: text_of("_PID").or_else(|| text_of("SYSLOG_PID")),
        msg_id: text_of("MESSAGE_ID"),
        timestamp: timestamp_micros.map(|micros| micros.to_string()),
        timestamp_micros,
        structured_data: None,
    };
    Some(JournalEntry {
        cursor: text_of("__CURSOR"),
        unit: text_of("_SYSTEMD_UNIT"),
        text: text_of("MESSAGE").unwrap_or_default(),
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_journal_entry() {
        let json = br#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1700000000123456","PRIORITY":"3","SYSLOG_FACILITY":"4","_HOSTNAME":"node-1","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd-session","_PID":"77","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"auth failed"}"#;
        let entry = parse_entry(json).unwrap();
        assert_eq!(entry.cursor.as_deref(), Some("s=abc;i=1"));
        assert_eq!(entry.unit.as_deref(), Some("ssh.service"));
        assert_eq!(entry.text, "auth failed");
        assert_eq!((entry.meta.facility, entry.meta.severity), (4, 3));
        assert_eq!(entry.meta.hostname.as_deref(), Some("node-1"));
        assert_eq!(entry.meta.app_name.as_deref(), Some("sshd"));
        assert_eq!(entry.meta.proc_id.as_deref(), Some("77"));
        assert_eq!(entry.meta.timestamp_micros, Some(1_700_000_000_123_456));
    }

    #[test]
    fn byte_array_messages_and_fallbacks() {
        let json = br#"{"MESSAGE":[104,105,255],"_COMM":"kworker","MESSAGE_ID":["a","b"]}"#;
        let entry = parse_entry(json).unwrap();
        assert_eq!(entry.text, "hi\u{fffd}");
        assert_eq!(entry.meta.app_name.as_deref(), Some("kworker"));
        assert_eq!(entry.meta.msg_id.as_deref(), Some("a"));
        assert_eq!(entry.meta.severity, 6);
        assert_eq!(entry.cursor, None);
        assert!(parse_entry(b"not json").is_none());
        assert!(parse_entry(b"[1,2]").is_none());
        assert_eq!(parse_entry(br#"{"MESSAGE":null,"PRIORITY":"99"}"#).unwrap().meta.severity, 6);
    }
}
