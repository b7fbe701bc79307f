//! Tables, JSON and human-friendly values for CLI output.

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

/// Prints a table (indented lines without trailing spaces).
pub(crate) fn print_table(table: &Table) {
    for line in table.to_string().lines() {
        println!("{}", line.trim_end());
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `key = value` lines with aligned `=`.
pub(crate) fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, value) in fields {
        println!("{key:<width$} = {value}");
    }
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
