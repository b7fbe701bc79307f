//! A small path glob: `*`, `?` and `[...]` classes inside path components.
//!
//! Why not a crate: log paths need only the shell basics, and the follower
//! also needs to test a remembered path against a pattern without touching
//! the file system. `**` is not supported (it would make a rescan every
//! second walk whole trees); a `*` never matches `/` nor a leading `.`.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub(crate) struct Glob {
    /// The fixed leading directory (everything before the first wildcard component).
    base: PathBuf,
    /// The components after `base`, each a pattern (possibly without wildcards).
    patterns: Vec<Vec<u8>>,
}

fn has_wildcard(component: &[u8]) -> bool {
    component.iter().any(|byte| matches!(byte, b'*' | b'?' | b'['))
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Result<Glob> {
        let invalid = |reason: &str| Error::Glob { pattern: pattern.to_owned(), reason: reason.to_owned() };
        if pattern.is_empty() {
            return Err(invalid("it is empty"));
        }
        if pattern.contains("**") {
            return Err(invalid("`**` is not supported; list each directory level with `*`"));
        }
        let mut base = PathBuf::new();
        let mut patterns = Vec::new();
        for component in Path::new(pattern).components() {
            let bytes = component.as_os_str().as_encoded_bytes();
            if patterns.is_empty() && !has_wildcard(bytes) {
                base.push(component);
                continue;
            }
            match component {
                Component::Normal(_) => {}
                _ => return Err(invalid("`.` and `..` may not follow a wildcard")),
            }
            if !class_brackets_balanced(bytes) {
                return Err(invalid("a `[` is not closed"));
            }
            patterns.push(bytes.to_vec());
        }
        if patterns.is_empty() {
            // A plain path: its last component is matched literally.
            let last = base.file_name().map(|name| name.as_encoded_bytes().to_vec());
            if let Some(last) = last {
                base.pop();
                patterns.push(escape(&last));
            }
        }
        if base.as_os_str().is_empty() {
            base.push(".");
        }
        Ok(Glob { base, patterns })
    }

    /// The fixed leading directory: where new matching files can appear
    /// first (the files' own directories are watched too).
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// The files that match now, sorted. Unreadable directories are skipped.
    pub(crate) fn expand(&self) -> Vec<PathBuf> {
        let mut current = vec![self.base.clone()];
        for (depth, pattern) in self.patterns.iter().enumerate() {
            let is_last = depth + 1 == self.patterns.len();
            let mut next = Vec::new();
            for dir in &current {
                let Ok(entries) = std::fs::read_dir(dir) else { continue };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if !wildcard_match(pattern, name.as_encoded_bytes()) {
                        continue;
                    }
                    let path = entry.path();
                    let is_wanted = if is_last { path.is_file() } else { path.is_dir() };
                    if is_wanted {
                        next.push(path);
                    }
                }
            }
            current = next;
        }
        current.sort();
        current
    }

    /// Whether `path` matches, by name only.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.base) else { return false };
        let components: Vec<_> = rest.components().collect();
        components.len() == self.patterns.len()
            && components
                .iter()
                .zip(&self.patterns)
                .all(|(component, pattern)| wildcard_match(pattern, component.as_os_str().as_encoded_bytes()))
    }
}

fn escape(literal: &[u8]) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(literal.len());
    for &byte in literal {
        if matches!(byte, b'*' | b'?' | b'[') {
            escaped.extend_from_slice(&[b'[', byte, b']']);
        } else {
            escaped.push(byte);
        }
    }
    escaped
}

fn class_brackets_balanced(pattern: &[u8]) -> bool {
    let mut index = 0;
    while index < pattern.len() {
        if pattern[index] == b'[' {
            match class_end(pattern, index) {
                Some(end) => index = end,
                None => return false,
            }
        }
        index += 1;
    }
    true
}

/// The index of the `]` closing the class that opens at `open`.
fn class_end(pattern: &[u8], open: usize) -> Option<usize> {
    let mut index = open + 1;
    if matches!(pattern.get(index), Some(b'!' | b'^')) {
        index += 1;
    }
    // A `]` right after the opening is a member, not the end.
    if pattern.get(index) == Some(&b']') {
        index += 1;
    }
    while index < pattern.len() {
        if pattern[index] == b']' {
            return Some(index);
        }
        index += 1;
    }
    None
}

fn class_matches(class: &[u8], byte: u8) -> bool {
    let (negated, members) = match class.first() {
        Some(b'!' | b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut found = false;
    let mut index = 0;
    while index < members.len() {
        if index + 2 < members.len() && members[index + 1] == b'-' {
            if members[index] <= byte && byte <= members[index + 2] {
                found = true;
            }
            index += 3;
        } else {
            if members[index] == byte {
                found = true;
            }
            index += 1;
        }
    }
    found != negated
}

/// Matches one path component against one pattern component.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let mut pattern_index = 0;
    let mut name_index = 0;
    // Where to resume after the last `*`: (pattern after the star, name position).
    let mut backtrack: Option<(usize, usize)> = None;
    while name_index < name.len() {
        let step = match pattern.get(pattern_index) {
            Some(b'*') => {
                backtrack = Some((pattern_index + 1, name_index));
                pattern_index += 1;
                continue;
            }
            Some(b'?') => Some(pattern_index + 1),
            Some(b'[') => match class_end(pattern, pattern_index) {
                Some(end) if class_matches(&pattern[pattern_index + 1..end], name[name_index]) => Some(end + 1),
                Some(_) => None,
                None => (name[name_index] == b'[').then_some(pattern_index + 1),
            },
            Some(&literal) => (literal == name[name_index]).then_some(pattern_index + 1),
            None => None,
        };
        match (step, backtrack) {
            (Some(next_pattern_index), _) => {
                pattern_index = next_pattern_index;
                name_index += 1;
            }
            (None, Some((star_pattern_index, star_name_index))) => {
                backtrack = Some((star_pattern_index, star_name_index + 1));
                pattern_index = star_pattern_index;
                name_index = star_name_index + 1;
            }
            (None, None) => return false,
        }
    }
    pattern[pattern_index..].iter().all(|&byte| byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.log", "app.log", true),
            ("*.log", "app.log.1", false),
            ("*.log", ".hidden.log", false),
            (".*.log", ".hidden.log", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaybzz", true),
            ("*a*b", "xxaybzz", false),
            ("[ab]x", "bx", true),
            ("[!ab]x", "bx", false),
            ("[a-c]1", "c1", true),
            ("[a-c]1", "d1", false),
            ("[]]", "]", true),
            ("", "", true),
            ("*", "", true),
        ];
        for &(pattern, name, expected) in cases {
            assert_eq!(wildcard_match(pattern.as_bytes(), name.as_bytes()), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn expands_and_matches_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("a/x.log"), "").unwrap();
        std::fs::write(dir.path().join("b/y.log"), "").unwrap();
        std::fs::write(dir.path().join("b/y.txt"), "").unwrap();
        let glob = Glob::new(&format!("{}/*/*.log", dir.path().display())).unwrap();
        assert_eq!(glob.expand(), vec![dir.path().join("a/x.log"), dir.path().join("b/y.log")]);
        assert!(glob.matches(&dir.path().join("c/z.log")));
        assert!(!glob.matches(&dir.path().join("c/z.txt")));
        let plain = Glob::new(&format!("{}/a/x.log", dir.path().display())).unwrap();
        assert_eq!(plain.expand(), vec![dir.path().join("a/x.log")]);
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("/var/**/x.log").is_err());
        assert!(Glob::new("/var/[ab.log").is_err());
    }
}
