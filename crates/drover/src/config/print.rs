//! `--print-config`: the effective configuration as HCL that the role
//! itself reads back, each value followed by where it came from.
//!
//! Unset keys, secrets and keys that files may not set are printed as
//! comments, so the output is a valid configuration file with the same
//! effect (secrets aside).

use std::fmt::Write as _;
use std::time::Duration;

use super::{Key, Kind, Origin, Settings, Value};

/// One printed line: the HCL (or a comment) and the origin comment.
struct Line {
    text: String,
    origin: Option<String>,
}

pub(super) fn render(settings: &Settings) -> String {
    let mut output = String::new();
    let _ = writeln!(output, "# {}: the effective configuration (--print-config).", settings.role);
    if settings.files.is_empty() {
        output.push_str("# No configuration file was read (--config).\n");
    } else {
        let _ = writeln!(output, "# Files read, in order: {}", settings.files.join(", "));
    }
    output
        .push_str("# After each value, where it came from: default, FILE:LINE:COLUMN, env VARIABLE or flag --FLAG.\n");

    let top_level: Vec<&Key> = settings.keys.iter().filter(|key| key.block_and_attribute().0.is_none()).collect();
    output.push('\n');
    write_group(&mut output, settings, &top_level, "");
    let mut blocks: Vec<&str> = Vec::new();
    for block in settings.keys.iter().filter_map(|key| key.block_and_attribute().0) {
        if !blocks.contains(&block) {
            blocks.push(block);
        }
    }
    for block in blocks {
        let keys: Vec<&Key> = settings.keys.iter().filter(|key| key.block_and_attribute().0 == Some(block)).collect();
        let _ = writeln!(output, "\n{block} {{");
        write_group(&mut output, settings, &keys, "  ");
        output.push_str("}\n");
    }
    output
}

/// Writes keys with their origin comments aligned.
fn write_group(output: &mut String, settings: &Settings, keys: &[&Key], indent: &str) {
    let lines: Vec<Line> = keys.iter().flat_map(|key| lines_of(settings, key, indent)).collect();
    let width = lines.iter().filter(|line| line.origin.is_some()).map(|line| line.text.chars().count()).max();
    for line in lines {
        match (line.origin, width) {
            (Some(origin), Some(width)) => {
                let _ = writeln!(output, "{:<width$}  # {origin}", line.text);
            }
            _ => {
                let _ = writeln!(output, "{}", line.text);
            }
        }
    }
}

fn lines_of(settings: &Settings, key: &Key, indent: &str) -> Vec<Line> {
    let attribute = key.block_and_attribute().1;
    let only_on_command_line = if key.not_in_files.is_some() { " (command line only)" } else { "" };
    if key.kind == Kind::Map {
        let entries = settings.map_entries(key.name).filter(|entries| !entries.is_empty());
        let Some(entries) = entries else {
            return vec![Line { text: format!("{indent}# {attribute}: not set"), origin: None }];
        };
        let mut lines = vec![Line { text: format!("{indent}{attribute} = {{"), origin: None }];
        lines.extend(entries.iter().map(|(entry, (text, origin))| Line {
            text: format!("{indent}  {} = {}", map_key(entry), quoted(text)),
            origin: Some(origin.to_string()),
        }));
        lines.push(Line { text: format!("{indent}}}"), origin: None });
        return lines;
    }
    let Some(setting) = settings.setting(key.name) else {
        return vec![Line { text: format!("{indent}# {attribute}: not set"), origin: None }];
    };
    let origin = setting.origin.to_string();
    let text = if key.kind == Kind::Secret {
        format!("{indent}# {attribute}: set, not shown")
    } else if key.not_in_files.is_some() {
        format!("{indent}# {attribute} = {}", hcl_value(&setting.value))
    } else {
        format!("{indent}{attribute} = {}", hcl_value(&setting.value))
    };
    let origin = if matches!(setting.origin, Origin::Default) && !only_on_command_line.is_empty() {
        format!("{origin}{only_on_command_line}")
    } else {
        origin
    };
    vec![Line { text, origin: Some(origin) }]
}

fn hcl_value(value: &Value) -> String {
    match value {
        Value::Text(text) => quoted(text),
        Value::Path(path) => quoted(&path.display().to_string()),
        Value::Address(address) => quoted(&address.to_string()),
        Value::Duration(duration) => quoted(&duration_text(*duration)),
        Value::Count(count) => count.to_string(),
        Value::Switch(switch) => switch.to_string(),
        Value::List(items) => {
            format!("[{}]", items.iter().map(|item| quoted(item)).collect::<Vec<_>>().join(", "))
        }
        Value::Map(entries) => format!(
            "{{ {} }}",
            entries
                .iter()
                .map(|(key, text)| format!("{} = {}", map_key(key), quoted(text)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A duration in the largest unit that divides it: `90d`, `8s`, `250ms`.
pub(crate) fn duration_text(duration: Duration) -> String {
    const UNITS: [(u128, &str); 5] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")];
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    UNITS
        .iter()
        .find(|(size, _)| millis.is_multiple_of(*size))
        .map_or_else(|| format!("{millis}ms"), |(size, unit)| format!("{}{unit}", millis / size))
}

/// An HCL string literal.
fn quoted(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push_str("\\n"),
            '\t' => literal.push_str("\\t"),
            '\r' => literal.push_str("\\r"),
            '$' | '%' if characters.peek() == Some(&'{') => {
                literal.push(character);
                literal.push(character);
            }
            other => literal.push(other),
        }
    }
    literal.push('"');
    literal
}

/// A map key: bare when it is an identifier, else quoted.
fn map_key(key: &str) -> String {
    let mut characters = key.chars();
    let identifier = characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '-');
    if identifier { key.to_owned() } else { quoted(key) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_in_their_largest_whole_unit() {
        assert_eq!(duration_text(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(duration_text(Duration::from_secs(8)), "8s");
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }

    #[test]
    fn strings_are_escaped_for_hcl() {
        assert_eq!(quoted("a\"b\\c${x}%{y}$z"), "\"a\\\"b\\\\c$${x}%%{y}$z\"");
        assert_eq!(map_key("rack"), "rack");
        assert_eq!(map_key("a.b"), "\"a.b\"");
    }
}
