//! A node's console as a log source: a command polled every few seconds.
//!
//! Consoles (a serial console dump, `dmesg`, a BMC's SOL buffer) show a window
//! of recent output, not a stream. Each poll runs the command and emits only
//! the lines after the longest overlap between the end of the previous output
//! and the start of the new one; without overlap (the window moved past
//! everything seen, or the console was cleared) every line is new.
//! After an agent restart the first poll emits the whole window again.
//!
//! A poll runs through the bounded runner ([`crate::process`]): killed with
//! its whole process group at the timeout, and only the end of an output
//! longer than `max_output_bytes` is kept (a console's newest lines).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{Error, Result};
use crate::process::{BoundedCommand, Keep, StderrMode};
use crate::{LineSender, Source, SourceExit, SourceFuture, SourceKind, SourceLine};

/// The configuration of a polled console.
#[derive(Debug, Clone)]
pub struct CommandPollerConfig {
    /// The console's name, e.g. the node it belongs to.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Time between the start of two polls.
    pub interval: Duration,
    /// A poll running longer is killed with its process group (and its
    /// output ignored).
    pub timeout: Duration,
    /// Only the last this many lines of an output are compared and kept.
    pub max_lines: usize,
    /// Only the last this many bytes of an output are read; a line cut
    /// there is dropped.
    pub max_output_bytes: usize,
}

/// Room for the 10,000 lines a poll keeps by default, at 400 bytes each.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

impl CommandPollerConfig {
    /// Polls `program args` every `interval`, with a timeout of the interval.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, args: Vec<String>, interval: Duration) -> Self {
        CommandPollerConfig {
            name: name.into(),
            program: program.into(),
            args,
            interval,
            timeout: interval.max(Duration::from_secs(1)),
            max_lines: 10_000,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }
}

/// The console source.
#[derive(Debug)]
pub struct CommandPoller {
    config: CommandPollerConfig,
}

impl CommandPoller {
    pub fn new(config: CommandPollerConfig) -> CommandPoller {
        CommandPoller { config }
    }

    /// Polls until `cancel` fires or `sink` is closed; `NotAvailable` when the
    /// program cannot be started at the first poll.
    pub async fn run(self, sink: LineSender, cancel: CancellationToken) -> Result<SourceExit> {
        let source = SourceKind::Console { name: Arc::from(self.config.name.as_str()) };
        let stream: Arc<str> = Arc::from("console");
        let mut previous: Vec<String> = Vec::new();
        let mut ticker = tokio::time::interval(self.config.interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut is_first_poll = true;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = cancel.cancelled() => return Ok(SourceExit::Stopped),
                () = sink.closed() => return Ok(SourceExit::Stopped),
            }
            let current = match self.poll().await {
                Ok(lines) => lines,
                Err(reason) if is_first_poll => return Ok(SourceExit::NotAvailable { reason }),
                Err(reason) => {
                    warn!(console = %self.config.name, %reason, "console poll failed");
                    continue;
                }
            };
            is_first_poll = false;
            let received = SystemTime::now();
            for text in new_lines(&previous, &current) {
                let line = SourceLine {
                    source: source.clone(),
                    stream: stream.clone(),
                    received,
                    text: text.clone(),
                    syslog: None,
                    checkpoint: None,
                };
                tokio::select! {
                    sent = sink.send(line) => if sent.is_err() { return Ok(SourceExit::Stopped) },
                    () = cancel.cancelled() => return Ok(SourceExit::Stopped),
                }
            }
            previous = current;
        }
    }

    /// Runs the command once; its stdout as lines (the last `max_lines`,
    /// within the last `max_output_bytes`), or why it failed. The leader's
    /// console polls of providers use it too.
    pub async fn poll(&self) -> std::result::Result<Vec<String>, String> {
        let program = self.config.program.display();
        let mut command = BoundedCommand::new(&self.config.program, self.config.timeout, self.config.max_output_bytes);
        command.args(&self.config.args).stderr(StderrMode::Discard).keep(Keep::Tail);
        let finished = command.run().await.map_err(|error| match error {
            Error::Spawn { source, .. } => format!("cannot run {program}: {source}"),
            other => other.to_string(),
        })?;
        if finished.timed_out {
            return Err(format!("{program} ran longer than {:?}", self.config.timeout));
        }
        match finished.status {
            Some(status) if status.success() => {}
            Some(status) => return Err(format!("{program} exited with {status}")),
            None => return Err(format!("{program} ended without an exit status")),
        }
        let text = String::from_utf8_lossy(&finished.stdout.bytes);
        let mut lines: Vec<String> =
            text.lines().map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned()).collect();
        if finished.stdout.truncated && !lines.is_empty() {
            // The cap cut the output's start: the first line lost its beginning.
            lines.remove(0);
        }
        let num_extra = lines.len().saturating_sub(self.config.max_lines);
        lines.drain(..num_extra);
        Ok(lines)
    }
}

impl Source for CommandPoller {
    fn run(self: Box<Self>, sink: LineSender, cancel: CancellationToken) -> SourceFuture {
        Box::pin(CommandPoller::run(*self, sink, cancel))
    }
}

/// The lines of `current` after the longest prefix of it that ends `previous`.
pub fn new_lines<'a>(previous: &[String], current: &'a [String]) -> &'a [String] {
    let Some(last_previous) = previous.last() else { return current };
    let max_overlap = previous.len().min(current.len());
    for overlap in (1..=max_overlap).rev() {
        if &current[overlap - 1] == last_previous && previous[previous.len() - overlap..] == current[..overlap] {
            return &current[overlap..];
        }
    }
    current
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn poller(script: &str, timeout: Duration, max_output_bytes: usize) -> CommandPoller {
        let mut config =
            CommandPollerConfig::new("node-1", "/bin/sh", vec!["-c".to_owned(), script.to_owned()], timeout);
        config.timeout = timeout;
        config.max_output_bytes = max_output_bytes;
        CommandPoller::new(config)
    }

    #[tokio::test]
    async fn a_poll_keeps_the_end_of_a_long_output_without_the_line_cut_in_two() {
        // 8 MiB of console, 1 MiB kept: the newest lines.
        let lines = poller("seq 1 1000000; echo newest", Duration::from_secs(30), 1024 * 1024).poll().await.unwrap();
        assert_eq!(lines.last().map(String::as_str), Some("newest"));
        assert_eq!(lines[lines.len() - 2], "1000000");
        let first: u64 = lines[0].parse().unwrap();
        let second: u64 = lines[1].parse().unwrap();
        assert_eq!(second, first + 1, "the first line kept is a whole line");
    }

    #[tokio::test]
    async fn a_poll_past_its_timeout_fails_and_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("console.pid");
        let script = format!("sleep 300 & echo $! > {}; sleep 300", pid_file.display());
        let error = poller(&script, Duration::from_millis(500), 1024).poll().await.unwrap_err();
        assert_eq!(error, "/bin/sh ran longer than 500ms");
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // Gone, or a zombie waiting for init: give the kill 5 s to land.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the console command's child {pid} still runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| (*text).to_owned()).collect()
    }

    #[test]
    fn emits_only_what_is_new() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &["a", "b"], &["a", "b"]),
            (&["a", "b"], &["a", "b", "c"], &["c"]),
            (&["a", "b", "c"], &["b", "c", "d", "e"], &["d", "e"]),
            (&["a", "b"], &["a", "b"], &[]),
            (&["a", "b"], &["x", "y"], &["x", "y"]),
            (&["a"], &["a", "a"], &["a"]),
            (&["x", "a", "a"], &["a", "a", "a"], &["a"]),
        ];
        for &(previous, current, expected) in cases {
            let previous_lines = lines(previous);
            let current_lines = lines(current);
            assert_eq!(new_lines(&previous_lines, &current_lines), lines(expected), "{previous:?} -> {current:?}");
        }
    }
}
