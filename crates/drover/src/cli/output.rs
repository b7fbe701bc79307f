//! Tables, JSON and human-friendly values for CLI output.
//!
//! Two rules of the output layer:
//!
//! - status words (`running`, `failed`, `SUCCESS`, `FAILURE`, log levels…)
//!   are coloured when stdout is a terminal and `NO_COLOR` is unset, never
//!   when piped ([`paint_status_words`]); colour is added after a table is
//!   laid out, so it never shifts a column;
//! - a closed stdout (`drover job status | head -1`) ends the command
//!   quietly with status 0, as `head` expects: CLI commands exit 0 on
//!   SIGPIPE (`main.rs`), and the writers here exit 0 on `BrokenPipe` for
//!   the processes that ignore SIGPIPE (`drover dev`, benchmarks).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use drover_types::{TaskEvent, Timestamp};

/// A table with drover's look: no borders, a header row.
pub(crate) fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    table
}

/// Prints a table (indented lines without trailing spaces), its status
/// words coloured on a terminal.
pub(crate) fn print_table(table: &Table) {
    for (number, line) in table.to_string().lines().enumerate() {
        let line = line.trim_end();
        if number == 0 {
            print_line(line);
        } else {
            print_line(&paint_status_words(line));
        }
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print_line(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `key = value` lines with aligned `=`, status words coloured on a
/// terminal.
pub(crate) fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, value) in fields {
        print_line(&format!("{key:<width$} = {}", paint_status_words(value)));
    }
}

/// Writes one line to stdout. A reader that went away (`| head`) ends the
/// process quietly with status 0; any other write error is reported once
/// on stderr and ends it with status 1 (there is nowhere left to print to).
pub(crate) fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        exit_on_write_error(&error);
    }
}

/// What a failed write to stdout means: `BrokenPipe` exits 0, anything
/// else exits 1 with one line on stderr.
pub(crate) fn exit_on_write_error(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {error}");
    std::process::exit(1);
}

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset (or empty)
/// and `TERM` not `dumb`. Decided once per process.
pub(crate) fn stdout_has_colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| {
        colour_wanted(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        )
    })
}

/// The pure rule behind [`stdout_has_colour`] (<https://no-color.org>).
pub(crate) fn colour_wanted(
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty()) && term.is_none_or(|term| term != "dumb")
}

/// The colour a status word is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// Done well or running as wanted.
    Good,
    /// Waiting, changing or needing a look.
    Attention,
    /// Failed or gone.
    Bad,
}

impl Tone {
    fn ansi(self) -> &'static str {
        match self {
            Tone::Good => "\x1b[32m",
            Tone::Attention => "\x1b[33m",
            Tone::Bad => "\x1b[31m",
        }
    }
}

/// The tone of a status word, if it is one (case as drover prints them:
/// lowercase statuses, uppercase exec results and log levels).
pub(crate) fn tone_of(word: &str) -> Option<Tone> {
    match word {
        "running" | "complete" | "successful" | "success" | "ready" | "healthy" | "eligible" | "alive" | "leader"
        | "SUCCESS" | "PASS" | "OK" | "INFO" => Some(Tone::Good),
        "pending" | "starting" | "draining" | "ineligible" | "disconnected" | "unknown" | "degraded" | "paused"
        | "firing" | "pending_approval" | "blocked" | "WARN" | "WARNING" | "TIMEOUT" | "DENIED" => {
            Some(Tone::Attention)
        }
        "failed" | "failure" | "lost" | "down" | "dead" | "unhealthy" | "error" | "FAILURE" | "FAIL" | "ERROR"
        | "FATAL" | "CRIT" | "UNREACHABLE" => Some(Tone::Bad),
        _ => None,
    }
}

/// Colours the status words of a line when stdout is a terminal.
pub(crate) fn paint_status_words(line: &str) -> String {
    if stdout_has_colour() { paint_words(line) } else { line.to_owned() }
}

/// Colours every status word of `line` (a word between spaces, brackets,
/// parentheses or commas), leaving everything else as it is.
pub(crate) fn paint_words(line: &str) -> String {
    let mut painted = String::with_capacity(line.len() + 16);
    let mut word_start = None;
    let is_separator = |character: char| character.is_whitespace() || "[](),".contains(character);
    let push_word = |painted: &mut String, word: &str| match tone_of(word) {
        Some(tone) => {
            painted.push_str(tone.ansi());
            painted.push_str(word);
            painted.push_str("\x1b[0m");
        }
        None => painted.push_str(word),
    };
    for (index, character) in line.char_indices() {
        if is_separator(character) {
            if let Some(start) = word_start.take() {
                push_word(&mut painted, &line[start..index]);
            }
            painted.push(character);
        } else if word_start.is_none() {
            word_start = Some(index);
        }
    }
    if let Some(start) = word_start {
        push_word(&mut painted, &line[start..]);
    }
    painted
}

/// "12s ago", "3m ago", "2h ago", "5d ago".
pub(crate) fn ago(time: Timestamp) -> String {
    if time.is_zero() {
        return "never".to_owned();
    }
    let elapsed = Timestamp::now().since(time).as_secs();
    match elapsed {
        0..60 => format!("{elapsed}s ago"),
        60..3600 => format!("{}m{}s ago", elapsed / 60, elapsed % 60),
        3600..86400 => format!("{}h{}m ago", elapsed / 3600, (elapsed % 3600) / 60),
        _ => format!("{}d{}h ago", elapsed / 86400, (elapsed % 86400) / 3600),
    }
}

/// A local wall-clock time, `2026-11-22T10:15:03+01:00`.
pub(crate) fn local_time(time: Timestamp) -> String {
    time.to_datetime().with_timezone(&chrono::Local).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Task events newest first, merged from the event lists of several tasks
/// (each list oldest first, as the agent records it), each tagged with its
/// list's key. Within a list the recorded order decides, never the clock:
/// a task that exits at once has `Started`, `Terminated` and `Not
/// Restarting` in the same millisecond. Between lists the later time comes
/// first (on a tie, the earlier list). `drover alloc status` and `drover
/// job status` both order their events with it.
pub(crate) fn newest_first<'a, K: Clone>(
    lists: impl IntoIterator<Item = (K, &'a [TaskEvent])>,
) -> Vec<(K, &'a TaskEvent)> {
    let mut remaining: Vec<(K, &'a [TaskEvent])> = lists.into_iter().collect();
    let mut merged = Vec::with_capacity(remaining.iter().map(|(_, events)| events.len()).sum());
    loop {
        let mut newest: Option<(usize, Timestamp)> = None;
        for (position, (_, events)) in remaining.iter().enumerate() {
            if let Some(last) = events.last()
                && newest.is_none_or(|(_, time)| last.time > time)
            {
                newest = Some((position, last.time));
            }
        }
        let Some((position, _)) = newest else { return merged };
        let (key, events) = &mut remaining[position];
        if let Some((last, older)) = events.split_last() {
            merged.push((key.clone(), last));
            *events = older;
        }
    }
}

/// Bytes in MiB/GiB for humans.
pub(crate) fn megabytes(num_megabytes: u64) -> String {
    if num_megabytes >= 10 * 1024 {
        format!("{:.0} GiB", num_megabytes as f64 / 1024.0)
    } else {
        format!("{num_megabytes} MiB")
    }
}

#[cfg(test)]
mod tests {
    use drover_types::TaskEventKind;

    use super::*;

    fn event(millis: i64, kind: TaskEventKind) -> TaskEvent {
        TaskEvent { time: Timestamp::from_millis(millis), kind, message: String::new(), exit_code: None, signal: None }
    }

    fn kinds<K>(events: &[(K, &TaskEvent)]) -> Vec<TaskEventKind> {
        events.iter().map(|(_, event)| event.kind).collect()
    }

    #[test]
    fn status_words_are_coloured_and_nothing_else_moves() {
        let line = "hello  service  running  2 failed  [FAILURE] node02 (pending)";
        let painted = paint_words(line);
        assert_eq!(
            painted,
            "hello  service  \x1b[32mrunning\x1b[0m  2 \x1b[31mfailed\x1b[0m  [\x1b[31mFAILURE\x1b[0m] node02 (\x1b[33mpending\x1b[0m)"
        );
        let without_escapes =
            painted.replace("\x1b[32m", "").replace("\x1b[31m", "").replace("\x1b[33m", "").replace("\x1b[0m", "");
        assert_eq!(without_escapes, line);
        assert_eq!(paint_words("runningman failed-over"), "runningman failed-over");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_wanted(true, None, Some(OsStr::new("xterm"))));
        assert!(colour_wanted(true, Some(OsStr::new("")), None));
        assert!(!colour_wanted(true, Some(OsStr::new("1")), None));
        assert!(!colour_wanted(false, None, None));
        assert!(!colour_wanted(true, None, Some(OsStr::new("dumb"))));
    }

    #[test]
    fn events_of_one_millisecond_keep_the_order_the_task_recorded() {
        // A task that exits 3 at once: every event in the same millisecond.
        let web = [
            event(1_000, TaskEventKind::Received),
            event(1_005, TaskEventKind::Started),
            event(1_005, TaskEventKind::Terminated),
            event(1_005, TaskEventKind::NotRestarting),
        ];
        let newest = newest_first([("web", &web[..])]);
        assert_eq!(
            kinds(&newest),
            [TaskEventKind::NotRestarting, TaskEventKind::Terminated, TaskEventKind::Started, TaskEventKind::Received]
        );
    }

    #[test]
    fn events_of_several_tasks_interleave_by_time() {
        let web = [event(10, TaskEventKind::Started), event(30, TaskEventKind::Terminated)];
        let sidecar = [event(20, TaskEventKind::Started), event(30, TaskEventKind::Killed)];
        let newest = newest_first([("web", &web[..]), ("sidecar", &sidecar[..]), ("idle", &[][..])]);
        let tagged: Vec<(&str, TaskEventKind)> = newest.iter().map(|(task, event)| (*task, event.kind)).collect();
        assert_eq!(
            tagged,
            [
                ("web", TaskEventKind::Terminated),
                ("sidecar", TaskEventKind::Killed),
                ("sidecar", TaskEventKind::Started),
                ("web", TaskEventKind::Started),
            ]
        );
    }
}
