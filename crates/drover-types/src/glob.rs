//! The one glob of drover: `--filter`'s `=~` and `in [...]`, job `glob`
//! constraints, job `datacenters`, ACL rules and join-token host groups
//! all match with [`Glob`].
//!
//! Globs match `/`-separated paths (host groups such as
//! `bi/batch/gridworker`), the whole text and nothing less:
//!
//! - `*` is any run of characters within one segment (no `/`);
//! - `**` is any run of characters across segments, and `**/` is zero or
//!   more whole segments (`a/**/b` also matches `a/b`);
//! - `?` is one character other than `/`;
//! - `[abc]`, `[a-z]` and `[!abc]` (or `[^abc]`) are one character from (or
//!   not from) a set, never `/`; a `]` first in a set is a member (`[]x]`),
//!   as is a `-` first or last (`[-x]`, `[x-]`); inside a set every other
//!   character is itself (`[*?]`, `[\]`);
//! - `\` makes the next character literal (`\*`, `\[`, `\\`);
//! - every other character is itself.
//!
//! A `[` without its `]`, a trailing lone `\` and a backwards range
//! (`[z-a]`) are errors rather than literal text, so that a typo is
//! reported where it is written instead of silently matching nothing.
//! Node names have no `/`, so on names these are plain shell globs.
//!
//! A glob is translated once into an anchored regular expression of at
//! most [`SIZE_LIMIT`] bytes compiled, so matching is linear in the text.

use std::fmt;

use regex::{Regex, RegexBuilder};

/// The largest compiled glob (and matching cache) accepted, in bytes.
pub const SIZE_LIMIT: usize = 256 * 1024;

/// A compiled glob with the text it came from; two globs are equal when
/// their texts are.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    regex: Regex,
}

/// Why a glob does not compile, worded to follow `the glob "…" `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// A `[` opens a set that never closes.
    #[error("has a \"[\" without its \"]\"; close the set, or write \"\\[\" for a literal \"[\"")]
    UnclosedSet,
    /// The glob ends with a `\` that escapes nothing.
    #[error("ends with a lone \"\\\"; write \"\\\\\" for a backslash")]
    TrailingBackslash,
    /// A range whose end comes before its start, such as `[z-a]`.
    #[error("has the backwards range \"{start}-{end}\"; write \"{end}-{start}\"")]
    BackwardsRange {
        /// The range's first character.
        start: char,
        /// The range's last character.
        end: char,
    },
    /// The compiled glob would be larger than [`SIZE_LIMIT`].
    #[error("is too large; split it into several conditions")]
    TooLarge,
}

impl Glob {
    /// Compiles a glob (see the module documentation for its syntax).
    ///
    /// # Errors
    /// Returns why the glob is malformed (an unclosed `[`, a trailing `\`,
    /// a backwards range) or too large.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let expression = translate(pattern)?;
        let regex = RegexBuilder::new(&expression)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            // Every character is escaped and every set is balanced, so the
            // only way to fail is size.
            .map_err(|_| GlobError::TooLarge)?;
        Ok(Glob { text: pattern.to_owned(), regex })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl fmt::Display for Glob {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// Whether `pattern` uses any glob syntax (`*`, `?`, `[` or `\`); a
/// pattern without any matches only itself.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

/// Translates a glob into an anchored regular expression.
fn translate(pattern: &str) -> Result<String, GlobError> {
    let mut expression = String::with_capacity(pattern.len() * 2 + 2);
    expression.push('^');
    let characters: Vec<char> = pattern.chars().collect();
    let mut index = 0;
    while let Some(&character) = characters.get(index) {
        index += 1;
        match character {
            '*' if characters.get(index) == Some(&'*') => {
                index += 1;
                if characters.get(index) == Some(&'/') {
                    // `**/` matches zero or more whole segments.
                    index += 1;
                    expression.push_str("(?:.*/)?");
                } else {
                    expression.push_str(".*");
                }
            }
            '*' => expression.push_str("[^/]*"),
            '?' => expression.push_str("[^/]"),
            '[' => index = push_set(&characters, index, &mut expression)?,
            '\\' => {
                let Some(&escaped) = characters.get(index) else {
                    return Err(GlobError::TrailingBackslash);
                };
                index += 1;
                push_literal(&mut expression, escaped);
            }
            literal => push_literal(&mut expression, literal),
        }
    }
    expression.push('$');
    Ok(expression)
}

fn push_literal(expression: &mut String, literal: char) {
    let mut buffer = [0_u8; 4];
    expression.push_str(&regex::escape(literal.encode_utf8(&mut buffer)));
}

/// Translates the set that starts after the `[` at `characters[start - 1]`;
/// returns the index after its `]`.
fn push_set(characters: &[char], start: usize, expression: &mut String) -> Result<usize, GlobError> {
    let mut index = start;
    let negated = matches!(characters.get(index), Some('!' | '^'));
    if negated {
        index += 1;
    }
    let mut members = String::new();
    let mut first = true;
    loop {
        let Some(&character) = characters.get(index) else {
            return Err(GlobError::UnclosedSet);
        };
        index += 1;
        // A `]` right after `[` or `[!` is a member, as in shell globs.
        if character == ']' && !first {
            break;
        }
        first = false;
        // `x-y` is a range unless the `-` is the last member (`[x-]`).
        let range_end = match (characters.get(index), characters.get(index + 1)) {
            (Some('-'), Some(&end)) if end != ']' => Some(end),
            _ => None,
        };
        if let Some(end) = range_end {
            if end < character {
                return Err(GlobError::BackwardsRange { start: character, end });
            }
            index += 2;
            push_set_member(&mut members, character);
            members.push('-');
            push_set_member(&mut members, end);
        } else {
            push_set_member(&mut members, character);
        }
    }
    // A set never matches `/`, whatever its members, so that it stays
    // inside one segment as `*` and `?` do: a negated set adds `/` to what
    // it excludes, a plain one is intersected with `[^/]`.
    if negated {
        expression.push_str("[^/");
        expression.push_str(&members);
        expression.push(']');
    } else {
        expression.push('[');
        expression.push_str(&members);
        expression.push_str("&&[^/]]");
    }
    Ok(index)
}

fn push_set_member(members: &mut String, member: char) {
    // Escaping any ASCII punctuation inside a class is allowed and keeps
    // `-`, `]`, `^`, `\`, `[` and `&` literal; other characters are never
    // special.
    if member.is_ascii_punctuation() {
        members.push('\\');
    }
    members.push(member);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn glob_matches(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap_or_else(|error| panic!("{pattern:?} {error}")).matches(text)
    }

    #[test]
    fn segments_behave_as_documented() {
        let cases = [
            ("*", "production", true),
            ("*", "", true),
            ("*", "a/b", false),
            ("**", "a/b", true),
            ("a/**", "a/", true),
            ("a/**", "a/b/c", true),
            ("a/**", "a", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/*/b", "a/x/y/b", false),
            ("bi/batch/**", "bi/batch/gridworker/terminate", true),
            ("bi/batch/**", "belle2/daq", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("a.c", "abc", false),
            ("(x)+", "(x)+", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern:?} against {text:?}");
        }
    }

    /// The cases where the scheduler's `glob` constraint (which took `[`
    /// and `\` literally) and `--filter`'s `=~` used to disagree.
    #[test]
    fn sets_ranges_and_escapes_match_as_documented() {
        let cases = [
            // sets and ranges
            ("batch0[1-3]", "batch01", true),
            ("batch0[1-3]", "batch03", true),
            ("batch0[1-3]", "batch04", false),
            ("batch0[1-3]", "batch0[1-3]", false),
            ("gpu[0-9][0-9]", "gpu07", true),
            ("rack[abc]", "rackb", true),
            ("rack[abc]", "rackd", false),
            ("[a-cx-z]1", "y1", true),
            ("[a-cx-z]1", "d1", false),
            // negated sets, both spellings
            ("batch0[!1-3]", "batch04", true),
            ("batch0[!1-3]", "batch01", false),
            ("batch0[^1-3]", "batch01", false),
            ("batch0[^1-3]", "batch09", true),
            // members that would be syntax elsewhere
            ("a[]]b", "a]b", true),
            ("a[!]]b", "a]b", false),
            ("a[!]]b", "axb", true),
            ("a[-x]b", "a-b", true),
            ("a[x-]b", "a-b", true),
            ("a[.]b", "a.b", true),
            ("a[.]b", "axb", false),
            ("a[*?]b", "a*b", true),
            ("a[*?]b", "axb", false),
            ("a[&&]b", "a&b", true),
            ("a[\\]b", "a\\b", true),
            // a set never matches `/`, negated or not, even when it lists it
            ("a[!x]b", "a/b", false),
            ("a[/]b", "a/b", false),
            ("a[+-0]b", "a/b", false),
            ("a[+-0]b", "a.b", true),
            // escapes
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a\\?b", "a?b", true),
            ("a\\?b", "axb", false),
            ("rack\\[1]", "rack[1]", true),
            ("rack\\[1]", "rack1", false),
            ("a\\\\b", "a\\b", true),
            ("\\a", "a", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern:?} against {text:?}");
        }
    }

    #[test]
    fn malformed_globs_are_refused_with_the_reason() {
        assert_eq!(Glob::new("rack[1"), Err(GlobError::UnclosedSet));
        assert_eq!(Glob::new("a["), Err(GlobError::UnclosedSet));
        assert_eq!(Glob::new("a[]"), Err(GlobError::UnclosedSet));
        assert_eq!(Glob::new("a[!]"), Err(GlobError::UnclosedSet));
        assert_eq!(Glob::new("a\\"), Err(GlobError::TrailingBackslash));
        assert_eq!(Glob::new("a[z-a]"), Err(GlobError::BackwardsRange { start: 'z', end: 'a' }));
        assert_eq!(
            GlobError::UnclosedSet.to_string(),
            "has a \"[\" without its \"]\"; close the set, or write \"\\[\" for a literal \"[\""
        );
        assert_eq!(
            GlobError::BackwardsRange { start: 'z', end: 'a' }.to_string(),
            "has the backwards range \"z-a\"; write \"a-z\""
        );
        // An escaped `[` needs no `]`.
        assert!(glob_matches("rack\\[1", "rack[1"));
    }

    #[test]
    fn huge_globs_are_refused_as_too_large() {
        let pattern = "[a-z]*".repeat(20_000);
        assert_eq!(Glob::new(&pattern).err(), Some(GlobError::TooLarge));
    }

    #[test]
    fn globs_compare_by_their_text() {
        assert_eq!(Glob::new("bi/**").ok(), Glob::new("bi/**").ok());
        assert_ne!(Glob::new("bi/**").ok(), Glob::new("bi/**/").ok());
        assert_eq!(Glob::new("a[0-9]").map(|glob| glob.to_string()), Ok("a[0-9]".to_owned()));
    }

    /// Characters that are glob syntax, and some that are regex syntax.
    fn glob_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('*'),
                Just('?'),
                Just('['),
                Just(']'),
                Just('!'),
                Just('^'),
                Just('-'),
                Just('\\'),
                Just('/'),
                Just('&'),
                Just('.'),
                Just('$'),
                Just('('),
                proptest::char::range('a', 'e'),
                proptest::char::range('0', '3'),
                proptest::char::any(),
            ],
            0..40,
        )
        .prop_map(|characters| characters.into_iter().collect())
    }

    proptest! {
        #[test]
        fn arbitrary_globs_never_panic(pattern in glob_text(), text in glob_text()) {
            if let Ok(glob) = Glob::new(&pattern) {
                let _ = glob.matches(&text);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(pattern in ".{0,60}", text in ".{0,60}") {
            if let Ok(glob) = Glob::new(&pattern) {
                let _ = glob.matches(&text);
            }
        }

        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(text in "[a-z/.()+$^|{}-]{0,30}", other in "[a-z/.]{0,30}") {
            prop_assume!(!has_wildcards(&text));
            let glob = Glob::new(&text).expect("no syntax, nothing to refuse");
            prop_assert!(glob.matches(&text));
            prop_assert_eq!(glob.matches(&other), other == text);
        }

        #[test]
        fn escaping_every_character_matches_the_text_exactly(text in glob_text(), other in glob_text()) {
            let escaped: String = text.chars().flat_map(|character| ['\\', character]).collect();
            let glob = Glob::new(&escaped).expect("escaped text always compiles");
            prop_assert!(glob.matches(&text));
            prop_assert_eq!(glob.matches(&other), other == text);
        }

        #[test]
        fn a_star_never_crosses_a_slash(head in "[a-z]{0,5}", tail in "[a-z]{0,5}") {
            let glob = Glob::new("x*y").expect("valid");
            let crossing = format!("x{head}/{tail}y");
            prop_assert!(!glob.matches(&crossing));
            prop_assert!(Glob::new("x**y").expect("valid").matches(&crossing));
        }
    }
}
