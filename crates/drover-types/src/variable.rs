//! Variables: small key/value documents kept by the servers (Nomad's
//! Variables), for configuration shared by jobs, scripts and operators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CodedError;
use crate::time::Timestamp;

/// Longest variable path.
pub const MAX_PATH_BYTES: usize = 256;
/// Largest total size of a variable's items.
pub const MAX_ITEMS_BYTES: usize = 64 * 1024;

/// One variable: a path and its items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// A `/`-separated path such as `site/daq/version`.
    pub path: String,
    /// The key/value items.
    pub items: BTreeMap<String, String>,
    /// Raft index of creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change: the value to give for check-and-set.
    #[serde(default)]
    pub modify_index: u64,
    /// Creation time.
    pub create_time: Timestamp,
    /// Last change.
    pub modify_time: Timestamp,
}

/// Checks a new variable path: [`check_path`], and no `.` or `..`
/// segment (a client's URL normalisation would address another route with
/// it). Servers call it before proposing a write; the state machine keeps
/// [`check_path`] alone, so that entries written before this rule replay
/// as they applied.
pub fn check_new_path(path: &str) -> Result<(), CodedError> {
    check_path(path)?;
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(CodedError::invalid(format!(
            "variable path {path:?} has a \".\" or \"..\" segment; name each segment with letters or digits"
        )));
    }
    Ok(())
}

/// Checks a variable path: what is wrong and what to do.
pub fn check_path(path: &str) -> Result<(), CodedError> {
    if path.is_empty() {
        return Err(CodedError::invalid("the variable path is empty; give one such as site/daq/version"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(CodedError::invalid(format!(
            "the variable path is {} bytes; at most {MAX_PATH_BYTES} are allowed",
            path.len()
        )));
    }
    if path.starts_with('/') || path.ends_with('/') || path.contains("//") {
        return Err(CodedError::invalid(format!(
            "variable path {path:?} has an empty segment; write it as a/b/c, without leading, trailing or double slashes"
        )));
    }
    if let Some(bad) = path.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~'))) {
        return Err(CodedError::invalid(format!(
            "variable path {path:?} contains {bad:?}; use letters, digits and - _ . ~ separated by /"
        )));
    }
    Ok(())
}

/// Checks a variable's items.
pub fn check_items(items: &BTreeMap<String, String>) -> Result<(), CodedError> {
    if items.is_empty() {
        return Err(CodedError::invalid("a variable needs at least one item, key=value"));
    }
    if let Some(key) = items.keys().find(|key| key.is_empty()) {
        return Err(CodedError::invalid(format!("an item key is empty ({key:?}); write key=value")));
    }
    let size: usize = items.iter().map(|(key, value)| key.len() + value.len()).sum();
    if size > MAX_ITEMS_BYTES {
        return Err(CodedError::invalid(format!(
            "the variable's items take {size} bytes; at most {MAX_ITEMS_BYTES} are allowed (store large files elsewhere)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_with_advice() {
        assert!(check_path("site/daq/version").is_ok());
        assert!(check_path("").unwrap_err().message.contains("empty"));
        assert!(check_path("/a").unwrap_err().message.contains("empty segment"));
        assert!(check_path("a b").unwrap_err().message.contains("' '"));
        assert!(check_path(&"a".repeat(300)).is_err());
        assert!(check_new_path("../job/hello").unwrap_err().message.contains("\"..\" segment"));
        assert!(check_new_path("a/./b").is_err());
        assert!(check_new_path("a/.hidden/b..c").is_ok());
        // Replayed entries apply as before the rule.
        assert!(check_path("a/../b").is_ok());
    }

    #[test]
    fn items_are_checked() {
        assert!(check_items(&BTreeMap::new()).is_err());
        assert!(check_items(&BTreeMap::from([("k".to_owned(), "v".to_owned())])).is_ok());
        assert!(check_items(&BTreeMap::from([(String::new(), "v".to_owned())])).is_err());
    }
}
