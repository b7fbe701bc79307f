//! A field-by-field difference between two job versions, for
//! `drover job plan` and `drover job history`.

use std::collections::BTreeMap;

use crate::job::Job;

/// Lines describing how `new` differs from `old` in anything a job file can
/// say: `+ path = value` (added), `- path = value` (removed),
/// `~ path: old => new` (changed).
pub fn job_diff(old: &Job, new: &Job) -> Vec<String> {
    let old_fields = flatten(&serde_json::to_value(old.spec_only()).unwrap_or_default());
    let new_fields = flatten(&serde_json::to_value(new.spec_only()).unwrap_or_default());
    let mut lines = Vec::new();
    for (path, old_value) in &old_fields {
        match new_fields.get(path) {
            None => lines.push(format!("- {path} = {old_value}")),
            Some(new_value) if new_value != old_value => lines.push(format!("~ {path}: {old_value} => {new_value}")),
            Some(_) => {}
        }
    }
    for (path, new_value) in &new_fields {
        if !old_fields.contains_key(path) {
            lines.push(format!("+ {path} = {new_value}"));
        }
    }
    lines
}

fn flatten(value: &serde_json::Value) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    flatten_into(value, String::new(), &mut fields);
    fields
}

fn flatten_into(value: &serde_json::Value, path: String, fields: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                flatten_into(child, child_path, fields);
            }
        }
        serde_json::Value::Array(items) => {
            for (position, child) in items.iter().enumerate() {
                // Items with a name (groups, tasks) are keyed by it, so that
                // reordering blocks is not reported as a change of each.
                let label = match child.get("name").and_then(serde_json::Value::as_str) {
                    Some(name) => format!("{path}[{name}]"),
                    None => format!("{path}[{position}]"),
                };
                flatten_into(child, label, fields);
            }
        }
        serde_json::Value::Null => {}
        leaf => {
            fields.insert(path, leaf.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_items_are_compared_by_name_and_server_fields_ignored() {
        let old: Job = serde_json::from_value(serde_json::json!({
            "id": "web", "name": "web", "type": "service", "priority": 50, "datacenters": ["*"],
            "constraints": [], "affinities": [], "spreads": [], "update": null, "periodic": null,
            "meta": {"owner": "a"}, "groups": [], "version": 3
        }))
        .unwrap();
        let mut new = old.clone();
        new.version = 4;
        assert!(job_diff(&old, &new).is_empty(), "server-managed fields are not differences");
        new.priority = 70;
        new.meta.insert("team".into(), "daq".into());
        new.meta.remove("owner");
        let lines = job_diff(&old, &new);
        assert!(lines.contains(&"~ priority: 50 => 70".to_owned()), "{lines:?}");
        assert!(lines.contains(&"+ meta.team = \"daq\"".to_owned()), "{lines:?}");
        assert!(lines.contains(&"- meta.owner = \"a\"".to_owned()), "{lines:?}");
    }
}
