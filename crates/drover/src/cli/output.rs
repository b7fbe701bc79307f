//! Tables, JSON and human-friendly values for CLI output.

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use drover_types::Timestamp;

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

/// Bytes in MiB/GiB for humans.
pub(crate) fn megabytes(num_megabytes: u64) -> String {
    if num_megabytes >= 10 * 1024 {
        format!("{:.0} GiB", num_megabytes as f64 / 1024.0)
    } else {
        format!("{num_megabytes} MiB")
    }
}
