//! Parsing text into an HCL body, with drover's one extension and readable
//! syntax errors.
//!
//! The extension: several attributes may share the line of a one-line
//! block, as drover's documentation writes them:
//!
//! ```hcl
//! restart { attempts = 10  interval = "30m"  delay = "15s"  mode = "delay" }
//! ```
//!
//! HCL 2 (and so Nomad) allows only one attribute in a one-line block. When
//! the parser stops at the start of a second attribute that follows a space,
//! that space is replaced by a newline and the text parsed again. Replacing
//! one byte by one byte keeps every offset, so positions in the parsed body
//! and in later errors still point into the text as the user wrote it.
//!
//! The same way, a quoted attribute name in a block, HCL 1's
//! `meta { "version" = "2" }` that older Nomad job files use, is read as the
//! plain name when it is one (letters, digits, `_` and `-`): both quotes are
//! replaced by spaces. A quoted name that is no plain name (`"a.b" = …`) is
//! refused at its position with how to write it.

use hcl_edit::structure::Body;

use crate::diagnostic::{Diagnostic, Diagnostics, SourceMap};

/// How many one-line blocks one text may split; a bound so that no input
/// makes parsing quadratic without end.
const MAXIMUM_LINE_SPLITS: usize = 1024;

/// Parses `text` (named by `source_map`) into a body.
pub(crate) fn parse_body(source_map: &mut SourceMap, text: &str) -> Result<Body, Diagnostics> {
    let mut attempt: Vec<u8> = text.as_bytes().to_vec();
    let mut splits = 0;
    // Where a newline was inserted (offsets in `attempt`), for the source
    // map to translate the parsed body's offsets back to the text.
    let mut insertions: Vec<usize> = Vec::new();
    mark_unambiguous_shell_expansions(&mut attempt);
    loop {
        // Only ASCII spaces and tabs are ever replaced (by `\n`), so the
        // bytes stay valid UTF-8.
        let attempt_text = String::from_utf8_lossy(&attempt).into_owned();
        let error = match hcl_edit::parser::parse_body(&attempt_text) {
            Ok(body) => {
                source_map.set_insertions(insertions);
                return Ok(body);
            }
            Err(error) => error,
        };
        let offset = error.location().offset();
        if splits < MAXIMUM_LINE_SPLITS && error.message().starts_with("invalid block body") {
            match quoted_attribute_name(&attempt, offset) {
                Some(QuotedName::Plain { opening, closing }) => {
                    attempt[opening] = b' ';
                    attempt[closing] = b' ';
                    splits += 1;
                    continue;
                }
                Some(QuotedName::Other { opening, name }) => {
                    return Err(source_map
                        .diagnostic(
                            Some(opening..opening + 1),
                            format!(
                                "syntax error: the quoted attribute name \"{name}\" is HCL 1 syntax, and it is not a plain name (letters, digits, _ and -): write the block as a map attribute, e.g. meta = {{ \"{name}\" = \"…\" }}"
                            ),
                        )
                        .into());
                }
                None => {}
            }
        }
        if splits < MAXIMUM_LINE_SPLITS
            && error.message() == "expected `}`"
            && let Some((start, _)) = shell_expansion_at(&attempt_text, line_start_of(&attempt_text, offset), offset)
            && attempt.get(start + 1) == Some(&b'{')
        {
            // `${SLEEP_SECS:-2}` stays text for the shell, as Nomad's HCL 1
            // reader kept it: its `{` becomes a marker that evaluation turns
            // back (see [`restore_shell_expansions`]).
            attempt[start + 1] = SHELL_EXPANSION_MARKER;
            splits += 1;
            continue;
        }
        if splits < MAXIMUM_LINE_SPLITS
            && let Some(split) = split_point(&attempt, offset, error.message())
        {
            match split {
                Split::Replace(index) => {
                    if let Some(byte) = attempt.get_mut(index) {
                        *byte = b'\n';
                    }
                }
                Split::Insert(index) => {
                    attempt.insert(index, b'\n');
                    for earlier in &mut insertions {
                        if *earlier >= index {
                            *earlier += 1;
                        }
                    }
                    insertions.push(index);
                    insertions.sort_unstable();
                }
            }
            splits += 1;
            continue;
        }
        // The error is located in the text itself, not through the map.
        let original_offset = offset - insertions.partition_point(|inserted| *inserted < offset);
        return Err(syntax_error(source_map, text, original_offset, error.message()).into());
    }
}

/// The byte that stands for the `{` of a shell expansion (`$\x01NAME:-2}`)
/// between parsing and evaluation: it keeps every offset, and the parser reads
/// a `$` not followed by `{` as text.
pub(crate) const SHELL_EXPANSION_MARKER: u8 = 0x01;

/// `text` with every marked shell expansion (`$\x01`) written back as `${`.
pub(crate) fn restore_shell_expansions(text: &str) -> Option<String> {
    let marked = ['$', char::from(SHELL_EXPANSION_MARKER)].iter().collect::<String>();
    text.contains(&marked).then(|| text.replace(&marked, "${"))
}

/// Marks the shell expansions that HCL would read as the start of a comment
/// (`${#NAME}`, `${NAME#prefix}`, `${NAME//a/b}`), which the parser reports
/// lines later, if at all, and shell positional parameters (`${1}`), which
/// HCL 2 would replace by the number: they are kept as text like the other
/// shell expansions, as Nomad's HCL 1 reader kept them.
fn mark_unambiguous_shell_expansions(text: &mut [u8]) {
    let is_name = |byte: &u8| byte.is_ascii_alphanumeric() || *byte == b'_';
    let mut index = 0;
    while index + 2 < text.len() {
        if text.get(index..index + 2) == Some(b"${") && text.get(index.wrapping_sub(1)) != Some(&b'$') {
            let name_length =
                text.get(index + 2..).map_or(0, |rest| rest.iter().take_while(|byte| is_name(byte)).count());
            let after = index + 2 + name_length;
            let name = text.get(index + 2..after).unwrap_or_default();
            let is_shell = match text.get(after) {
                Some(b'#') => true,
                Some(b'/') => text.get(after + 1) == Some(&b'/') && name_length > 0,
                // `${1}`, a positional parameter of a shell function.
                Some(b'}') => !name.is_empty() && name.iter().all(u8::is_ascii_digit),
                _ => false,
            };
            if is_shell {
                text[index + 1] = SHELL_EXPANSION_MARKER;
            }
        }
        index += 1;
    }
}

/// The offset where the line holding `offset` starts.
fn line_start_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).and_then(|before| before.rfind('\n')).map_or(0, |index| index + 1)
}

/// Where to put a newline so that the parser can go on, when it stopped at
/// `offset` inside a one-line block: first after the block's `{`, then
/// before the next attribute, block or closing brace (for "invalid block
/// body" and "expected newline"), or before the identifier of a nested block (for "expected `=`"
/// at its `{` or label).
fn split_point(text: &[u8], offset: usize, message: &str) -> Option<Split> {
    let is_blank = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let is_identifier = |byte: &u8| byte.is_ascii_alphanumeric() || *byte == b'_' || *byte == b'-';
    let token_start = if message.starts_with("invalid block body") || message.starts_with("expected newline") {
        let start = offset + text.get(offset..)?.iter().take_while(|byte| is_blank(byte)).count();
        let first = text.get(start)?;
        // `job "x" { datacenters = ["dc1"]` and the end of the line: the
        // block opened on this line must become multi-line.
        let ends_line = matches!(first, b'\n' | b'\r');
        if !(first.is_ascii_alphabetic() || *first == b'_' || *first == b'}' || ends_line) {
            return None;
        }
        // A block opened earlier on this line must become multi-line first.
        let before = text.get(..start)?;
        let line_start = before.iter().rposition(|byte| *byte == b'\n').map_or(0, |index| index + 1);
        let opening_brace = last_brace_outside_strings(before.get(line_start..)?).map(|index| line_start + index);
        if let Some(brace_index) = opening_brace {
            match text.get(brace_index + 1) {
                Some(byte) if is_blank(byte) => return Some(Split::Replace(brace_index + 1)),
                // `resources {memory=10 network { … } }`: no blank after
                // the brace, so a newline is inserted.
                Some(byte) if !matches!(byte, b'}' | b'\n' | b'\r') => return Some(Split::Insert(brace_index + 1)),
                _ => {}
            }
        }
        if ends_line {
            return None;
        }
        start
    } else if message.starts_with("invalid attribute; expected `=`") {
        let before = text.get(..offset)?;
        let identifier_end = before.len() - before.iter().rev().take_while(|byte| is_blank(byte)).count();
        let identifier_length =
            before.get(..identifier_end)?.iter().rev().take_while(|byte| is_identifier(byte)).count();
        if identifier_length == 0 {
            return None;
        }
        identifier_end - identifier_length
    } else {
        return None;
    };
    let split = token_start.checked_sub(1)?;
    text.get(split).is_some_and(is_blank).then_some(Split::Replace(split))
}

/// How to put a newline where the parser stopped.
enum Split {
    /// Replace the blank at this offset (offsets stay as they are).
    Replace(usize),
    /// Insert a newline at this offset (the source map shifts later offsets).
    Insert(usize),
}

/// A quoted attribute name where the parser expected a name.
enum QuotedName {
    /// `"version" = …`: the offsets of the two quotes.
    Plain { opening: usize, closing: usize },
    /// `"a.b" = …`: the offset of the opening quote and the name.
    Other { opening: usize, name: String },
}

/// The quoted attribute name (`"version" = "2"`) that starts at `offset`
/// (after blanks), if one does.
fn quoted_attribute_name(text: &[u8], offset: usize) -> Option<QuotedName> {
    let is_blank = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let opening = offset + text.get(offset..)?.iter().take_while(|byte| is_blank(byte)).count();
    if text.get(opening) != Some(&b'"') {
        return None;
    }
    let length =
        text.get(opening + 1..)?.iter().take_while(|byte| !matches!(byte, b'"' | b'\n' | b'\\' | b'$' | b'%')).count();
    let closing = opening + 1 + length;
    if text.get(closing) != Some(&b'"') {
        return None;
    }
    let after = closing + 1 + text.get(closing + 1..)?.iter().take_while(|byte| is_blank(byte)).count();
    // `=`, but not `==`.
    if text.get(after) != Some(&b'=') || text.get(after + 1) == Some(&b'=') {
        return None;
    }
    let name = String::from_utf8_lossy(text.get(opening + 1..closing)?).into_owned();
    let mut characters = name.chars();
    let is_plain = characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '-');
    Some(if is_plain { QuotedName::Plain { opening, closing } } else { QuotedName::Other { opening, name } })
}

/// The position of the last `{` of `line` that is not inside a quoted
/// string (`"disk{mount=\"/tmp\"}"` holds no block brace).
fn last_brace_outside_strings(line: &[u8]) -> Option<usize> {
    let mut last = None;
    let mut in_string = false;
    let mut escaped = false;
    for (index, byte) in line.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if *byte == b'"' {
            in_string = true;
        } else if *byte == b'{' {
            last = Some(index);
        }
    }
    last
}

/// A diagnostic for a parser error at `offset`, with a plainer message for
/// the most common mistake the parser describes badly (a string left open).
fn syntax_error(source_map: &SourceMap, text: &str, offset: usize, parser_message: &str) -> Diagnostic {
    let clamped = offset.min(text.len());
    let line_start = text.get(..clamped).and_then(|before| before.rfind('\n')).map_or(0, |index| index + 1);
    let line_end = text.get(clamped..).and_then(|after| after.find('\n')).map_or(text.len(), |index| clamped + index);
    if parser_message == "expected `}`"
        && let Some((start, expansion)) = shell_expansion_at(text, line_start, clamped)
    {
        return source_map.diagnostic(
            Some(start..start + 2),
            format!(
                "syntax error: {expansion} is shell syntax, which HCL 2 reads as an interpolation: write ${expansion} so that the shell gets it (Nomad 1.x refuses this line too, unless the file is read as HCL 1)"
            ),
        );
    }
    if let Some(line) = text.get(line_start..line_end)
        && let Some(quote_index) = unterminated_string_start(line)
    {
        return source_map.diagnostic(
            Some(line_start + quote_index..line_start + quote_index + 1),
            "syntax error: this string is not closed: add a \" before the end of the line",
        );
    }
    source_map.diagnostic(Some(clamped..clamped), format!("syntax error: {parser_message}"))
}

/// A shell parameter expansion such as `${SLEEP_SECS:-2}` or `${#NAME}`
/// around `offset` (where the parser expected the `}` of an interpolation):
/// the offset of its `${` and its text. The parser may stop at the start of
/// a quoted string's attribute (`b = "${X:-y}"`), so when no `${` comes
/// before `offset` on its line, the first one after it on the line is taken.
fn shell_expansion_at(text: &str, line_start: usize, offset: usize) -> Option<(usize, String)> {
    if let Some(index) = text.get(line_start..offset)?.rfind("${") {
        return shell_expansion_from(text, line_start + index);
    }
    let rest = text.get(offset..)?;
    let line = rest.get(..rest.find('\n').unwrap_or(rest.len()))?;
    if let Some(index) = line.find("${") {
        return shell_expansion_from(text, offset + index);
    }
    None
}

/// The shell parameter expansion whose `${` is at `start`, if it is one.
fn shell_expansion_from(text: &str, start: usize) -> Option<(usize, String)> {
    let after = text.get(start + 2..)?;
    let length = after.find(['}', '\n'])?;
    let inner = after.get(..length)?;
    let name_length =
        inner.chars().take_while(|character| character.is_ascii_alphanumeric() || *character == '_').count();
    let operator = inner.get(name_length..)?.chars().next();
    let is_shell = match operator {
        _ if inner.starts_with('#') => true,
        Some(':' | '-' | '=' | '?' | '+' | '%' | '#' | '/' | '^' | ',') => name_length > 0,
        _ => false,
    };
    is_shell.then(|| (start, format!("${{{inner}}}")))
}

/// The byte index of the quote that opens a string still open at the end of
/// `line`, if any (comments after `#` or `//` are ignored).
fn unterminated_string_start(line: &str) -> Option<usize> {
    let mut open_quote: Option<usize> = None;
    let mut escaped = false;
    let mut previous: Option<char> = None;
    for (index, character) in line.char_indices() {
        match open_quote {
            Some(_) if escaped => escaped = false,
            Some(_) if character == '\\' => escaped = true,
            Some(_) if character == '"' => open_quote = None,
            Some(_) => {}
            None if character == '"' => open_quote = Some(index),
            None if character == '#' || (character == '/' && previous == Some('/')) => return None,
            None => {}
        }
        previous = Some(character);
    }
    open_quote
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Body, String> {
        parse_body(&mut SourceMap::new("test.hcl", text), text).map_err(|diagnostics| diagnostics.to_string())
    }

    #[test]
    fn one_line_blocks_may_hold_several_attributes() {
        let text = "restart { attempts = 10  interval = \"30m\"\tmode = \"delay\" }\nnext = 1\n";
        let body = parse(text).unwrap();
        let restart = body.get_blocks("restart").next().unwrap();
        assert_eq!(restart.body.attributes().count(), 3);
        let next = body.get_attribute("next").unwrap();
        // Offsets are unchanged by the split.
        assert_eq!(hcl_edit::Span::span(next).map(|span| span.start), text.find("next"));
    }

    #[test]
    fn a_one_line_block_without_a_blank_after_its_brace_splits_too() {
        let text = "resources {memory=10 network { port \"sample\" {} } }\nbad = [\n";
        let mut source_map = SourceMap::new("test.hcl", text);
        assert!(parse_body(&mut source_map, text).is_err());
        let text = "resources {memory=10 network { port \"sample\" {} } }\nnext = 1\n";
        let mut source_map = SourceMap::new("test.hcl", text);
        let body = parse_body(&mut source_map, text).unwrap();
        let resources = body.get_blocks("resources").next().unwrap();
        assert_eq!(resources.body.attributes().count(), 1);
        let network = resources.body.get_blocks("network").next().unwrap();
        assert_eq!(network.body.get_blocks("port").count(), 1);
        // Offsets after the inserted newline still point into the text.
        let next = body.get_attribute("next").unwrap();
        let start = hcl_edit::Span::span(next).map(|span| span.start).unwrap();
        assert_eq!(source_map.location(start), crate::diagnostic::Location { line: 2, column: 1 });
    }

    #[test]
    fn a_block_opened_on_a_line_with_an_attribute_goes_on() {
        let body = parse("job \"x\" { datacenters = [\"dc1\"]\n  type = \"batch\"\n}\n").unwrap();
        let job = body.get_blocks("job").next().unwrap();
        assert_eq!(job.body.attributes().count(), 2);
    }

    #[test]
    fn nested_one_line_blocks_split_too() {
        let body = parse("service { check { type = \"tcp\"  port = 8120  interval = \"10s\" } }").unwrap();
        let service = body.get_blocks("service").next().unwrap();
        let check = service.body.get_blocks("check").next().unwrap();
        assert_eq!(check.body.attributes().count(), 3);
    }

    #[test]
    fn quoted_attribute_names_of_hcl_1_read_as_plain_names() {
        let text = "meta {\n  \"version\" = \"2\"\n  \"foo\"=\"bar\"\n}\nnext = 1\n";
        let body = parse(text).unwrap();
        let meta = body.get_blocks("meta").next().unwrap();
        let names: Vec<&str> = meta.body.attributes().map(|attribute| attribute.key.as_str()).collect();
        assert_eq!(names, ["version", "foo"]);
        let next = body.get_attribute("next").unwrap();
        assert_eq!(hcl_edit::Span::span(next).map(|span| span.start), text.find("next"));
        assert_eq!(
            parse("meta {\n  \"a.b\" = \"x\"\n}\n").unwrap_err(),
            "test.hcl:2:3: syntax error: the quoted attribute name \"a.b\" is HCL 1 syntax, and it is not a plain name (letters, digits, _ and -): write the block as a map attribute, e.g. meta = { \"a.b\" = \"…\" }"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        assert_eq!(parse("a = [1,\n  2\nb = 3\n").unwrap_err(), "test.hcl:3:1: syntax error: expected `]`");
        assert_eq!(
            parse("job \"x\" {\n  driver = \"exec\n}\n").unwrap_err(),
            "test.hcl:2:12: syntax error: this string is not closed: add a \" before the end of the line"
        );
    }

    #[test]
    fn shell_expansions_are_kept_for_the_shell() {
        let text = "a = <<EOT\nSLEEP=${SLEEP_SECS:-2} ${#LIST} ${P//:/ } $${#ESCAPED}\nEOT\nb = \"${X:-y} ${#Y}\"\n";
        let body = parse(text).unwrap();
        assert!(body.get_attribute("b").is_some());
        let marked = format!("${}SLEEP_SECS:-2}}", char::from(SHELL_EXPANSION_MARKER));
        assert_eq!(restore_shell_expansions(&marked).as_deref(), Some("${SLEEP_SECS:-2}"));
        assert_eq!(restore_shell_expansions("${X}"), None);
    }

    #[test]
    fn unterminated_strings_are_found() {
        assert_eq!(unterminated_string_start(r#"a = "x"#), Some(4));
        assert_eq!(unterminated_string_start(r#"a = "x\"" # it's "odd"#), None);
        assert_eq!(unterminated_string_start(r#"a = "x" // "y"#), None);
        assert_eq!(unterminated_string_start(r#"a = "${b == "c"}""#), None);
    }
}
