//! Log collection for the drover agent: the sources that read log lines from a
//! machine and the durable spool that holds them until a server accepted them.
//!
//! ```text
//!  FileFollower ──┐
//!  SyslogSource ──┤  SourceLine    ┌────────┐  Spool::append   ┌───────┐ read_from / ack   ┌────────┐
//!  JournalSource ─┼──(mpsc)──────▶ │ caller │ ───(fsync)─────▶ │ Spool │ ────────────────▶ │ server │
//!  CommandPoller ─┘                └────────┘                  └───────┘                   └────────┘
//!                                      │ after append returned: CheckpointStore::commit + flush
//! ```
//!
//! The no-loss contract: a source never advances its own checkpoint. Each line
//! carries an optional [`Checkpoint`]; the caller commits it to the
//! [`CheckpointStore`] only after the spool durably holds the line, so a crash
//! between reading and spooling re-reads the line instead of losing it.
//!
//! [`process`] is drover's one way to run a short command with a deadline
//! (its own process group killed whole, output capped), used by the console
//! poller here and by the agent's `drover exec` and script checks and the
//! server's hammer and provider commands. It lives in this crate because
//! the layering lets both the agent and the server depend on it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod checkpoint;
pub mod console;
pub mod error;
pub mod file;
mod glob;
pub mod journal;
pub mod process;
pub mod split;
pub mod spool;
pub mod syslog;
pub mod zone;

pub use checkpoint::{Checkpoint, CheckpointStore, FileId, FilePosition};
pub use console::{CommandPoller, CommandPollerConfig};
pub use error::{Error, Result};
pub use file::{FileFollower, FileSourceConfig};
pub use journal::{JournalConfig, JournalSource, JournalStart};
pub use split::{CONTINUED_MARKER, CONTINUES_MARKER, MAX_LINE_BYTES, split_overlong};
pub use spool::{Spool, SpoolOptions, SpoolStats};
pub use syslog::{SyslogConfig, SyslogMeta, SyslogSource, SyslogTransport};

/// Where a line came from. Cheap to clone: paths and names are shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A file matched by a [`FileFollower`] glob.
    File { path: Arc<Path> },
    /// The systemd journal.
    Journal,
    /// A syslog sender.
    Syslog { peer: SocketAddr, transport: SyslogTransport },
    /// A node's console, read by polling a command ([`CommandPoller`]).
    Console { name: Arc<str> },
}

/// One line of log text, as read by a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub source: SourceKind,
    /// The stream inside the source: `file`, a systemd unit, `syslog`, `stdout`.
    pub stream: Arc<str>,
    /// When the agent read the line.
    pub received: SystemTime,
    /// The text, without the line terminator; invalid UTF-8 replaced lossily.
    pub text: String,
    /// Header fields when the line came through syslog or the journal.
    pub syslog: Option<Box<SyslogMeta>>,
    /// What to commit to the [`CheckpointStore`] once the line is durable.
    pub checkpoint: Option<Checkpoint>,
}

/// The channel every source writes into. A source ends cleanly when it is closed.
pub type LineSender = mpsc::Sender<SourceLine>;

/// How a source ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceExit {
    /// Cancelled, or the receiving side of the channel was dropped.
    Stopped,
    /// The source cannot run on this machine (no journal, no binary): not an error.
    NotAvailable { reason: String },
}

/// A boxed future a [`Source`] returns from `run`.
pub type SourceFuture = Pin<Box<dyn Future<Output = Result<SourceExit>> + Send>>;

/// A running log source: built from its config, then run until cancelled.
///
/// Adding a source means adding a module with a config struct and a type
/// implementing this trait; nothing else changes.
pub trait Source: Send + std::fmt::Debug {
    /// Reads lines into `sink` until `cancel` fires or `sink` is closed.
    fn run(self: Box<Self>, sink: LineSender, cancel: CancellationToken) -> SourceFuture;
}

/// The config of any source, as it appears in an agent's configuration.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(FileSourceConfig),
    Syslog(SyslogConfig),
    Journal(JournalConfig),
    Console(CommandPollerConfig),
}

impl SourceConfig {
    /// Builds the running source. Syslog binds its sockets here, so a bad
    /// address is reported before anything runs.
    pub async fn build(self, checkpoints: Arc<CheckpointStore>) -> Result<Box<dyn Source>> {
        Ok(match self {
            SourceConfig::File(config) => Box::new(FileFollower::new(config, checkpoints)),
            SourceConfig::Syslog(config) => Box::new(SyslogSource::bind(config).await?),
            SourceConfig::Journal(config) => Box::new(JournalSource::new(config, checkpoints)),
            SourceConfig::Console(config) => Box::new(CommandPoller::new(config)),
        })
    }
}
