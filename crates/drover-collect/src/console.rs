//! A node's console as a log source: a command polled every few seconds.
//!
//! Consoles (a serial console dump, `dmesg`, a BMC's SOL buffer) show a window
//! of recent output, not a stream. Each poll runs the command and emits only
//! the lines after the longest overlap between the end of the previous output
//! and the start of the new one; without overlap (the window moved past
//! everything seen, or the console was cleared) every line is new.
//! After an agent restart the first poll emits the whole window again.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::Result;
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
    /// A poll running longer is killed (and its output ignored).
    pub timeout: Duration,
    /// Only the last this many lines of an output are compared and kept.
    pub max_lines: usize,
}

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

    /// Runs the command once; its stdout as lines, or why it failed.
    async fn poll(&self) -> std::result::Result<Vec<String>, String> {
        let child = Command::new(&self.config.program)
            .args(&self.config.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", self.config.program.display()))?;
        let output = tokio::time::timeout(self.config.timeout, child.wait_with_output())
            .await
            .map_err(|_| format!("{} ran longer than {:?}", self.config.program.display(), self.config.timeout))?
            .map_err(|err| format!("cannot read the output of {}: {err}", self.config.program.display()))?;
        if !output.status.success() {
            return Err(format!("{} exited with {}", self.config.program.display(), output.status));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines: Vec<String> =
            text.lines().map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned()).collect();
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
    use super::*;

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
