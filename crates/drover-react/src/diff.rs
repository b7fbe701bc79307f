//! `drover plan DIR`: what applying a site would add, change and remove.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::schema::Site;

/// What happens to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the new site.
    Added,
    /// In both, different.
    Changed,
    /// Only in the old site.
    Removed,
}

/// One object that differs between two sites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `provider`, `notifier`, `alert`, `hammer` or `log_sink`.
    pub object: &'static str,
    /// The object's name.
    pub name: String,
    /// Added, changed or removed.
    pub kind: ChangeKind,
    /// For a change, the top-level fields that differ (`limits`, `mode`,
    /// …), in name order; empty otherwise.
    pub fields: Vec<String>,
}

/// The differences from `old` to `new`: providers, then notifiers, alerts,
/// hammers and log sinks, each in name order.
pub fn diff(old: &Site, new: &Site) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_maps("provider", &old.providers, &new.providers, &mut changes);
    diff_maps("notifier", &old.notifiers, &new.notifiers, &mut changes);
    diff_maps("alert", &old.alerts, &new.alerts, &mut changes);
    diff_maps("hammer", &old.hammers, &new.hammers, &mut changes);
    diff_maps("log_sink", &old.log_sinks, &new.log_sinks, &mut changes);
    changes
}

fn diff_maps<T: Serialize + PartialEq>(
    object: &'static str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    changes: &mut Vec<Change>,
) {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let kind = match (old.get(name), new.get(name)) {
            (Some(_), None) => ChangeKind::Removed,
            (None, Some(_)) => ChangeKind::Added,
            (Some(before), Some(after)) if before != after => ChangeKind::Changed,
            _ => continue,
        };
        let fields = match (old.get(name), new.get(name)) {
            (Some(before), Some(after)) if kind == ChangeKind::Changed => changed_fields(before, after),
            _ => Vec::new(),
        };
        changes.push(Change { object, name: name.clone(), kind, fields });
    }
}

fn changed_fields<T: Serialize>(before: &T, after: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut fields: Vec<String> =
        before.keys().chain(after.keys()).filter(|key| before.get(*key) != after.get(*key)).cloned().collect();
    fields.sort();
    fields.dedup();
    fields
}
