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
        if !(first.is_ascii_alphabetic() || *first == b'_' || *first == b'}') {
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
    fn nested_one_line_blocks_split_too() {
        let body = parse("service { check { type = \"tcp\"  port = 8120  interval = \"10s\" } }").unwrap();
        let service = body.get_blocks("service").next().unwrap();
        let check = service.body.get_blocks("check").next().unwrap();
        assert_eq!(check.body.attributes().count(), 3);
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
    fn unterminated_strings_are_found() {
        assert_eq!(unterminated_string_start(r#"a = "x"#), Some(4));
        assert_eq!(unterminated_string_start(r#"a = "x\"" # it's "odd"#), None);
        assert_eq!(unterminated_string_start(r#"a = "x" // "y"#), None);
        assert_eq!(unterminated_string_start(r#"a = "${b == "c"}""#), None);
    }
}
