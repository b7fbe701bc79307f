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
pub(crate) fn parse_body(source_map: &SourceMap, text: &str) -> Result<Body, Diagnostics> {
    let mut attempt: Vec<u8> = text.as_bytes().to_vec();
    let mut splits = 0;
    loop {
        // Only ASCII spaces and tabs are ever replaced (by `\n`), so the
        // bytes stay valid UTF-8.
        let attempt_text = String::from_utf8_lossy(&attempt).into_owned();
        let error = match hcl_edit::parser::parse_body(&attempt_text) {
            Ok(body) => return Ok(body),
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
            && let Some(split) = split_point(&attempt, offset, error.message())
            && let Some(byte) = attempt.get_mut(split)
        {
            *byte = b'\n';
            splits += 1;
            continue;
        }
        return Err(syntax_error(source_map, text, offset, error.message()).into());
    }
}

/// Where to put a newline so that the parser can go on, when it stopped at
/// `offset` inside a one-line block: first after the block's `{`, then
/// before the next attribute, block or closing brace (for "invalid block
/// body" and "expected newline"), or before the identifier of a nested block (for "expected `=`"
/// at its `{` or label).
fn split_point(text: &[u8], offset: usize, message: &str) -> Option<usize> {
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
        if let Some(brace_index) = opening_brace
            && text.get(brace_index + 1).is_some_and(is_blank)
        {
            return Some(brace_index + 1);
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
    text.get(split).is_some_and(is_blank).then_some(split)
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
/// the offset of its `${` and its text.
fn shell_expansion_at(text: &str, line_start: usize, offset: usize) -> Option<(usize, String)> {
    let start = line_start + text.get(line_start..offset)?.rfind("${")?;
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
        parse_body(&SourceMap::new("test.hcl", text), text).map_err(|diagnostics| diagnostics.to_string())
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
    fn shell_expansions_are_explained() {
        assert_eq!(
            parse("a = <<EOT\nSLEEP=${SLEEP_SECS:-2}\nEOT\n").unwrap_err(),
            "test.hcl:2:7: syntax error: ${SLEEP_SECS:-2} is shell syntax, which HCL 2 reads as an interpolation: write $${SLEEP_SECS:-2} so that the shell gets it (Nomad 1.x refuses this line too, unless the file is read as HCL 1)"
        );
    }

    #[test]
    fn unterminated_strings_are_found() {
        assert_eq!(unterminated_string_start(r#"a = "x"#), Some(4));
        assert_eq!(unterminated_string_start(r#"a = "x\"" # it's "odd"#), None);
        assert_eq!(unterminated_string_start(r#"a = "x" // "y"#), None);
        assert_eq!(unterminated_string_start(r#"a = "${b == "c"}""#), None);
    }
}
