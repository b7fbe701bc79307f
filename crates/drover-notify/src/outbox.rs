//! The durable outbox: every delivery record, as JSON lines in
//! `<dir>/outbox.jsonl`, so queued notifications survive a restart.
//!
//! Each change of a record appends the whole record as one line
//! `{"v":1,"record":{…}}` and syncs the file before the change counts; the
//! last line of an id wins when the file is read back. The file is
//! rewritten with only the live records when it is opened and whenever it
//! has grown to several times their number (a new file, synced, renamed
//! over the old one). A torn last line (a crash while appending) and lines
//! of an unknown version are skipped with a warning, never fatal: losing a
//! record is bad, refusing to start the server over it is worse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use drover_react::delivery::{DeliveryId, DeliveryRecord};

/// The file name inside the outbox directory.
pub const OUTBOX_FILE: &str = "outbox.jsonl";

/// The version of the line format.
pub const OUTBOX_VERSION: u32 = 1;

/// Appended lines past which the file is rewritten, at the least.
const MIN_LINES_BEFORE_COMPACTION: usize = 1000;

#[derive(Serialize)]
struct LineOut<'a> {
    v: u32,
    record: &'a DeliveryRecord,
}

#[derive(Deserialize)]
struct LineIn {
    v: u32,
    record: serde_json::Value,
}

/// The open outbox file.
#[derive(Debug)]
pub(crate) struct Outbox {
    path: PathBuf,
    file: tokio::fs::File,
    lines: usize,
}

impl Outbox {
    /// Opens (creating it when needed) the outbox in `dir` and reads its
    /// records back, in file order of their last change.
    pub(crate) async fn open(dir: &Path) -> Result<(Outbox, Vec<DeliveryRecord>)> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Outbox { path, source }
        };
        tokio::fs::create_dir_all(dir).await.map_err(io_error(dir))?;
        let path = dir.join(OUTBOX_FILE);
        let text = match tokio::fs::read(&path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(io_error(&path)(error)),
        };
        let records = parse(&path, &text);
        let file =
            tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await.map_err(io_error(&path))?;
        let mut outbox = Outbox { path, file, lines: 0 };
        outbox.rewrite(&records).await?;
        Ok((outbox, records))
    }

    /// Appends `record` and syncs. Answers whether the file should now be
    /// rewritten (it holds many more lines than `num_live` records).
    pub(crate) async fn append(&mut self, record: &DeliveryRecord, num_live: usize) -> Result<bool> {
        let mut line = serde_json::to_vec(&LineOut { v: OUTBOX_VERSION, record })
            .map_err(|error| Error::Outbox { path: self.path.clone(), source: std::io::Error::other(error) })?;
        line.push(b'\n');
        let io_error = |source| Error::Outbox { path: self.path.clone(), source };
        self.file.write_all(&line).await.map_err(io_error)?;
        self.file.sync_data().await.map_err(io_error)?;
        self.lines += 1;
        Ok(self.lines > MIN_LINES_BEFORE_COMPACTION.max(4 * num_live))
    }

    /// Replaces the file by one holding `records` only.
    pub(crate) async fn rewrite(&mut self, records: &[DeliveryRecord]) -> Result<()> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Outbox { path, source }
        };
        let temporary = self.path.with_extension("jsonl.tmp");
        let mut text = Vec::new();
        for record in records {
            let line = serde_json::to_vec(&LineOut { v: OUTBOX_VERSION, record })
                .map_err(|error| io_error(&temporary)(std::io::Error::other(error)))?;
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        let mut file = tokio::fs::File::create(&temporary).await.map_err(io_error(&temporary))?;
        file.write_all(&text).await.map_err(io_error(&temporary))?;
        file.sync_all().await.map_err(io_error(&temporary))?;
        drop(file);
        tokio::fs::rename(&temporary, &self.path).await.map_err(io_error(&self.path))?;
        if let Some(dir) = self.path.parent()
            && let Ok(directory) = tokio::fs::File::open(dir).await
        {
            // Makes the rename itself durable; not every file system can.
            let _ = directory.sync_all().await;
        }
        self.file = tokio::fs::OpenOptions::new().append(true).open(&self.path).await.map_err(io_error(&self.path))?;
        self.lines = records.len();
        Ok(())
    }
}

/// The records of an outbox file's text: the last line of each id, in the
/// order of those lines.
fn parse(path: &Path, text: &str) -> Vec<DeliveryRecord> {
    let mut latest: HashMap<DeliveryId, (usize, DeliveryRecord)> = HashMap::new();
    let num_lines = text.lines().count();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<LineIn>(line).map_err(|error| error.to_string()).and_then(|line| {
            if line.v == OUTBOX_VERSION {
                serde_json::from_value::<DeliveryRecord>(line.record).map_err(|error| error.to_string())
            } else {
                Err(format!("unknown outbox line version {} (this drover reads {OUTBOX_VERSION})", line.v))
            }
        });
        match parsed {
            Ok(record) => {
                latest.insert(record.id.clone(), (index, record));
            }
            Err(error) if line_number == num_lines && !text.ends_with('\n') => {
                tracing::warn!(path = %path.display(), line = line_number, %error, "skipping a torn last outbox line");
            }
            Err(error) => {
                tracing::error!(path = %path.display(), line = line_number, %error, "skipping an unreadable outbox line");
            }
        }
    }
    let mut records: Vec<(usize, DeliveryRecord)> = latest.into_values().collect();
    records.sort_by_key(|(index, _)| *index);
    records.into_iter().map(|(_, record)| record).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use drover_react::delivery::DeliveryStatus;

    const SAMPLE_V1: &str = include_str!("../tests/samples/outbox-v1.jsonl");

    /// Reads the committed sample of version 1; a change of the record
    /// format that breaks this needs a new version, not an edit here.
    #[test]
    fn reads_the_version_1_sample() {
        let records = parse(Path::new("outbox-v1.jsonl"), SAMPLE_V1);
        assert_eq!(records.len(), 3);
        let statuses: Vec<DeliveryStatus> = records.iter().map(|record| record.status).collect();
        assert_eq!(statuses, [DeliveryStatus::Delivered, DeliveryStatus::Failed, DeliveryStatus::Queued]);
        let failed = &records[1];
        assert_eq!(failed.attempts, 3);
        assert_eq!(failed.notifier, "ops-chat");
        assert!(failed.last_error.as_deref().unwrap().contains("503"));
        assert_eq!(records[2].notification.runbook.as_deref(), Some("https://ops.example.org/runbooks/tmp-full"));
    }

    #[test]
    fn torn_and_foreign_lines_are_skipped() {
        let mut text = SAMPLE_V1.to_owned();
        text.push_str("{\"v\":9,\"record\":{}}\n{\"v\":1,\"rec");
        let records = parse(Path::new("x"), &text);
        assert_eq!(records.len(), 3);
    }

    #[tokio::test]
    async fn rewrites_to_the_live_records() {
        let dir = tempfile::tempdir().unwrap();
        tokio::fs::write(dir.path().join(OUTBOX_FILE), SAMPLE_V1).await.unwrap();
        let (mut outbox, records) = Outbox::open(dir.path()).await.unwrap();
        assert_eq!(records.len(), 3);
        let text = tokio::fs::read_to_string(dir.path().join(OUTBOX_FILE)).await.unwrap();
        assert_eq!(text.lines().count(), 3);
        let mut changed = records[2].clone();
        changed.attempts = 1;
        outbox.append(&changed, 3).await.unwrap();
        drop(outbox);
        let (_, again) = Outbox::open(dir.path()).await.unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again[2].attempts, 1);
    }
}
