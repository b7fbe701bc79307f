//! Globs, translated to anchored regular expressions.
//!
//! Host groups are `/`-separated paths, so `*` stays within one segment and
//! `**` crosses segments (`a/**/b` also matches `a/b`), as in job-file
//! `glob` constraints. `?` is one character other than `/`; `[abc]`,
//! `[a-z]` and `[!abc]` (or `[^abc]`) are one character from (or not from)
//! a set, never `/`; `\` makes the next character literal. Node names have
//! no `/`, so on names these are ordinary shell globs.

use regex::{Regex, RegexBuilder};

/// The largest compiled glob (and matching cache) accepted.
const SIZE_LIMIT: usize = 256 * 1024;

/// Whether `pattern` uses any glob syntax; a pattern without any matches
/// only itself.
pub(crate) fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

/// Compiles a glob into an anchored regular expression.
///
/// # Errors
/// The reason, worded to follow "the glob "…" ": an unclosed `[`, an empty
/// set, a trailing `\`, or a pattern too large to compile.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
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
                    return Err("ends with a lone \"\\\"; write \"\\\\\" for a backslash".to_owned());
                };
                index += 1;
                push_literal(&mut expression, escaped);
            }
            literal => push_literal(&mut expression, literal),
        }
    }
    expression.push('$');
    RegexBuilder::new(&expression).size_limit(SIZE_LIMIT).dfa_size_limit(SIZE_LIMIT).build().map_err(
        |error| match error {
            regex::Error::CompiledTooBig(_) => "is too large; split it into several conditions".to_owned(),
            other => format!("cannot be compiled ({other})"),
        },
    )
}

fn push_literal(expression: &mut String, literal: char) {
    let mut buffer = [0_u8; 4];
    expression.push_str(&regex::escape(literal.encode_utf8(&mut buffer)));
}

/// Translates the set starting after the `[` at `characters[start - 1]`;
/// returns the index after its `]`.
fn push_set(characters: &[char], start: usize, expression: &mut String) -> Result<usize, String> {
    let mut index = start;
    let negated = matches!(characters.get(index), Some('!' | '^'));
    if negated {
        index += 1;
    }
    let mut members = String::new();
    let mut first = true;
    loop {
        let Some(&character) = characters.get(index) else {
            return Err("has a \"[\" without its \"]\"; close the set, or write \"\\[\" for a literal \"[\"".to_owned());
        };
        index += 1;
        // A `]` right after `[` or `[!` is a member, as in shell globs.
        if character == ']' && !first {
            break;
        }
        first = false;
        let is_range = characters.get(index) == Some(&'-') && characters.get(index + 1).is_some_and(|end| *end != ']');
        if is_range {
            let Some(&end) = characters.get(index + 1) else {
                return Err("has a malformed range".to_owned());
            };
            if end < character {
                return Err(format!("has the backwards range \"{character}-{end}\"; write \"{end}-{character}\""));
            }
            index += 2;
            push_set_member(&mut members, character);
            members.push('-');
            push_set_member(&mut members, end);
        } else {
            push_set_member(&mut members, character);
        }
    }
    if negated {
        expression.push_str("[^/");
    } else {
        expression.push('[');
    }
    expression.push_str(&members);
    expression.push(']');
    Ok(index)
}

fn push_set_member(members: &mut String, member: char) {
    // Escaping any ASCII punctuation inside a class is allowed and keeps
    // `-`, `]`, `^`, `\\` and `[` literal; other characters are never special.
    if member.is_ascii_punctuation() {
        members.push('\\');
    }
    members.push(member);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_matches(pattern: &str, text: &str) -> bool {
        compile(pattern).is_ok_and(|regex| regex.is_match(text))
    }

    #[test]
    fn globs_treat_segments_as_documented() {
        let cases = [
            ("*", "production", true),
            ("*", "a/b", false),
            ("**", "a/b", true),
            ("a/**", "a/", true),
            ("a/**", "a/b/c", true),
            ("a/**", "a", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/*/b", "a/x/y/b", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("a.c", "abc", false),
            ("(x)+", "(x)+", true),
            ("", "", true),
            ("", "x", false),
            ("batch0[1-3]", "batch02", true),
            ("batch0[1-3]", "batch04", false),
            ("batch0[!1-3]", "batch04", true),
            ("batch0[^1-3]", "batch01", false),
            ("a[!x]b", "a/b", false),
            ("a[]]b", "a]b", true),
            ("a[-x]b", "a-b", true),
            ("a[x-]b", "a-b", true),
            ("a[.]b", "a.b", true),
            ("a[.]b", "axb", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("gpu[0-9][0-9]", "gpu07", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern:?} against {text:?}");
        }
    }

    #[test]
    fn malformed_globs_are_refused() {
        assert!(compile("a[bc").is_err());
        assert!(compile("a[").is_err());
        assert!(compile("a\\").is_err());
        assert!(compile("a[z-a]").is_err());
    }
}
