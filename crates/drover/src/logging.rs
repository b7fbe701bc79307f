//! drover's own logs: what is logged, in which format, with which decoration.
//!
//! The rules (docs/operations.md, "drover's own logs"):
//!
//! - the filter is `DROVER_LOG` when set; else `info` for drover's crates and
//!   `warn` for its libraries (openraft, tantivy, hyper, rustls, …) in the
//!   long-running roles, and `warn` for everything in CLI commands;
//! - one line per event: a message or field that holds a line break is
//!   written with `\n` escaped, so a log file or the journal never splits
//!   an event;
//! - `--log-format text` (the default) or `json` (`DROVER_LOG_FORMAT`);
//! - ANSI colour only when stderr is a terminal and `NO_COLOR` is unset;
//! - when stderr is the systemd journal (`JOURNAL_STREAM` names it), every
//!   line starts with its syslog priority (`<3>` error, `<4>` warn, `<6>`
//!   info, `<7>` debug and trace; sd-daemon(3)) and carries no timestamp,
//!   which the journal adds itself.
//!
//! Deciding the decoration is pure ([`Decoration::for_destination`]); only
//! [`init`] looks at the environment and the file descriptors.

use std::io::{IsTerminal, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter of the long-running roles when `DROVER_LOG` is unset: drover's
/// own crates (every target starting with `drover`) at info, libraries at
/// warn.
pub(crate) const ROLE_DEFAULT_FILTER: &str = "warn,drover=info";

/// The filter of CLI commands when `DROVER_LOG` is unset.
pub(crate) const CLI_DEFAULT_FILTER: &str = "warn";

/// How drover writes its own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target and the event's fields.
    Json,
}

/// What is known about where stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Destination {
    /// stderr is a terminal.
    pub(crate) terminal: bool,
    /// `NO_COLOR` is set to something other than the empty string.
    pub(crate) no_color: bool,
    /// stderr is the stream `JOURNAL_STREAM` names.
    pub(crate) journal: bool,
}

/// How log lines are decorated for their destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoration {
    /// ANSI colour and emphasis.
    pub(crate) ansi: bool,
    /// A `<N>` syslog priority prefix on every line.
    pub(crate) priority_prefix: bool,
    /// A timestamp on every line.
    pub(crate) timestamp: bool,
}

impl Decoration {
    /// Colour only on a terminal and never with `NO_COLOR`; the journal
    /// gets priorities and its own timestamps instead.
    pub(crate) fn for_destination(destination: Destination) -> Decoration {
        Decoration {
            ansi: destination.terminal && !destination.no_color && !destination.journal,
            priority_prefix: destination.journal,
            timestamp: !destination.journal,
        }
    }
}

/// The syslog priority of a level, as sd-daemon(3) prefixes it.
pub(crate) fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// `JOURNAL_STREAM`'s `DEVICE:INODE`, which systemd sets for a service whose
/// stdout or stderr is connected to the journal.
pub(crate) fn parse_journal_stream(text: &str) -> Option<(u64, u64)> {
    let (device, inode) = text.trim().split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// One event as one line: every line break but the final one becomes `\n`
/// (and a carriage return `\r`), so nothing that reads the log line by
/// line sees half an event.
pub(crate) fn one_line(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.iter().any(|byte| *byte == b'\n' || *byte == b'\r') {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut line = Vec::with_capacity(event.len() + 8);
    for byte in body {
        match byte {
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            other => line.push(*other),
        }
    }
    line.push(b'\n');
    std::borrow::Cow::Owned(line)
}

/// Sets up drover's own logging on stderr. `long_running` chooses the
/// default filter (roles log their own info, CLI commands only warnings).
pub(crate) fn init(format: LogFormat, long_running: bool) {
    let default_filter = if long_running { ROLE_DEFAULT_FILTER } else { CLI_DEFAULT_FILTER };
    let filter = match std::env::var("DROVER_LOG") {
        Ok(directives) if !directives.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&directives)
            .unwrap_or_else(|error| {
                eprintln!("drover: DROVER_LOG={directives:?} is not a log filter ({error}); using {default_filter:?}");
                tracing_subscriber::EnvFilter::new(default_filter)
            }),
        _ => tracing_subscriber::EnvFilter::new(default_filter),
    };
    let decoration = Decoration::for_destination(destination_of_stderr());
    // The filter can be replaced at run time (`log_level`, SIGHUP).
    let registry = tracing_subscriber::registry().with(crate::config::reload::reloadable_log_filter(filter));
    let layer = tracing_subscriber::fmt::layer().with_writer(OneLinePerEvent).with_ansi(decoration.ansi);
    let text = format::format().with_target(false);
    let json = format::format().json().flatten_event(true).with_current_span(false).with_span_list(false);
    // Each arm builds a subscriber of a different type, hence five `try_init`s.
    let _ = match (format, decoration.priority_prefix, decoration.timestamp) {
        (LogFormat::Text, false, true) => registry.with(layer.event_format(text)).try_init(),
        (LogFormat::Text, false, false) => registry.with(layer.event_format(text.without_time())).try_init(),
        (LogFormat::Text, true, _) => registry.with(layer.event_format(WithPriority(text.without_time()))).try_init(),
        (LogFormat::Json, false, _) => registry.with(layer.fmt_fields(JsonFields::new()).event_format(json)).try_init(),
        (LogFormat::Json, true, _) => {
            registry.with(layer.fmt_fields(JsonFields::new()).event_format(WithPriority(json))).try_init()
        }
    };
}

/// Looks at stderr and the environment.
fn destination_of_stderr() -> Destination {
    Destination {
        terminal: std::io::stderr().is_terminal(),
        no_color: std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty()),
        journal: stderr_is_the_journal(),
    }
}

/// Whether stderr is the stream `JOURNAL_STREAM` names (a child process
/// inherits the variable but maybe not the stream, so both are compared).
fn stderr_is_the_journal() -> bool {
    let Some((device, inode)) = std::env::var("JOURNAL_STREAM").ok().as_deref().and_then(parse_journal_stream) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(stat) => stat.st_dev == device && stat.st_ino == inode,
        Err(_) => false,
    }
}

/// Writes each formatted event to stderr as one line.
#[derive(Debug, Clone, Copy)]
struct OneLinePerEvent;

impl<'writer> MakeWriter<'writer> for OneLinePerEvent {
    type Writer = EventWriter;

    fn make_writer(&'writer self) -> EventWriter {
        EventWriter
    }
}

/// The writer of one event: `tracing-subscriber` hands it the whole
/// formatted event in one `write_all`.
#[derive(Debug)]
struct EventWriter;

impl Write for EventWriter {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&one_line(event))?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Prefixes another format's line with the event's `<N>` syslog priority.
#[derive(Debug)]
struct WithPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithPriority<F>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'fields> FormatFields<'fields> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(context, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_and_never_in_the_journal() {
        let terminal = Destination { terminal: true, no_color: false, journal: false };
        assert!(Decoration::for_destination(terminal).ansi);
        assert!(!Decoration::for_destination(Destination { no_color: true, ..terminal }).ansi);
        assert!(!Decoration::for_destination(Destination { terminal: false, ..terminal }).ansi);
        let journal = Decoration::for_destination(Destination { terminal: false, no_color: false, journal: true });
        assert_eq!(journal, Decoration { ansi: false, priority_prefix: true, timestamp: false });
    }

    #[test]
    fn levels_map_to_sd_daemon_priorities() {
        let priorities = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(syslog_priority);
        assert_eq!(priorities, [3, 4, 6, 7, 7]);
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:123456\n"), Some((8, 123456)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:1"), None);
    }

    #[test]
    fn an_event_with_line_breaks_stays_on_one_line() {
        assert_eq!(&*one_line(b"INFO started\n"), b"INFO started\n");
        assert_eq!(&*one_line(b"WARN bad job:\n  line 3\r\n"), b"WARN bad job:\\n  line 3\\r\n");
    }
}
