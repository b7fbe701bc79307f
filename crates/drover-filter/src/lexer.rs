//! Splitting a filter into tokens, each with its column.

use crate::error::{Error, ErrorKind, Result};

/// One token of a filter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind {
    /// A field name or a keyword: letters, digits, `_`, `-` and `.`,
    /// starting with a letter or `_`.
    Word(String),
    /// A quoted string, escapes resolved.
    Str(String),
    /// An unquoted number.
    Num(f64),
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`, `!~`.
    Operator(&'static str),
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!`
    Bang,
    End,
}

/// A token and where it is: 1-based column of its first character and its
/// width, both in characters.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) column: usize,
    pub(crate) width: usize,
}

impl Token {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Word(word) => format!("\"{word}\""),
            TokenKind::Str(text) => format!("the string \"{}\"", shorten(text)),
            TokenKind::Num(number) => format!("the number {number}"),
            TokenKind::LeftParen => "\"(\"".to_owned(),
            TokenKind::RightParen => "\")\"".to_owned(),
            TokenKind::LeftBracket => "\"[\"".to_owned(),
            TokenKind::RightBracket => "\"]\"".to_owned(),
            TokenKind::Comma => "\",\"".to_owned(),
            TokenKind::Operator(operator) => format!("\"{operator}\""),
            TokenKind::AndAnd => "\"&&\"".to_owned(),
            TokenKind::OrOr => "\"||\"".to_owned(),
            TokenKind::Bang => "\"!\"".to_owned(),
            TokenKind::End => "the end of the filter".to_owned(),
        }
    }
}

/// The first characters of a long text, for error messages.
pub(crate) fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        text.to_owned()
    } else {
        let mut shortened: String = text.chars().take(SHOWN).collect();
        shortened.push('…');
        shortened
    }
}

fn is_word_start(character: char) -> bool {
    character.is_ascii_alphabetic() || character == '_'
}

fn is_word_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.')
}

/// Splits `input` into tokens, ending with [`TokenKind::End`].
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>> {
    let characters: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let error =
        |message: String, column: usize, width: usize| Error::new(ErrorKind::Syntax, message, column, width, input);
    while let Some(&character) = characters.get(index) {
        let column = index + 1;
        let next = characters.get(index + 1).copied();
        let mut push = |kind: TokenKind, width: usize| tokens.push(Token { kind, column, width });
        match character {
            _ if character.is_whitespace() => {
                index += 1;
            }
            '(' | ')' | '[' | ']' | ',' => {
                let kind = match character {
                    '(' => TokenKind::LeftParen,
                    ')' => TokenKind::RightParen,
                    '[' => TokenKind::LeftBracket,
                    ']' => TokenKind::RightBracket,
                    _ => TokenKind::Comma,
                };
                push(kind, 1);
                index += 1;
            }
            '=' | '!' | '<' | '>' => {
                let operator = match (character, next) {
                    ('=', Some('=')) => "==",
                    ('=', Some('~')) => "=~",
                    ('!', Some('=')) => "!=",
                    ('!', Some('~')) => "!~",
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    ('>', _) => ">",
                    ('!', _) => {
                        push(TokenKind::Bang, 1);
                        index += 1;
                        continue;
                    }
                    _ => {
                        return Err(error(
                            format!("single \"=\" at column {column}; write \"==\" to compare"),
                            column,
                            1,
                        ));
                    }
                };
                push(TokenKind::Operator(operator), operator.len());
                index += operator.len();
            }
            '&' | '|' => {
                if next != Some(character) {
                    let (double, word) = if character == '&' { ("&&", "and") } else { ("||", "or") };
                    return Err(error(
                        format!("single \"{character}\" at column {column}; write \"{double}\" or \"{word}\""),
                        column,
                        1,
                    ));
                }
                push(if character == '&' { TokenKind::AndAnd } else { TokenKind::OrOr }, 2);
                index += 2;
            }
            '"' | '\'' => {
                let (text, end) = read_string(&characters, index).map_err(|message| error(message, column, 1))?;
                push(TokenKind::Str(text), end - index);
                index = end;
            }
            _ if character.is_ascii_digit()
                || (character == '-' && next.is_some_and(|digit| digit.is_ascii_digit())) =>
            {
                let start = index;
                index += 1;
                while characters.get(index).is_some_and(|character| is_word_character(*character)) {
                    index += 1;
                }
                let text: String = characters[start..index].iter().collect();
                let Some(number) = parse_number(&text) else {
                    return Err(error(
                        format!(
                            "\"{}\" at column {column} is not a number; quote it (\"{}\") to compare it as text \
                             or as a version",
                            shorten(&text),
                            shorten(&text)
                        ),
                        column,
                        index - start,
                    ));
                };
                push(TokenKind::Num(number), index - start);
            }
            _ if is_word_start(character) => {
                let start = index;
                while characters.get(index).is_some_and(|character| is_word_character(*character)) {
                    index += 1;
                }
                let word: String = characters[start..index].iter().collect();
                push(TokenKind::Word(word), index - start);
            }
            other => {
                return Err(error(
                    format!(
                        "unexpected character {other:?} at column {column}; quote values (\"…\") and use \
                         letters, digits, \"_\", \"-\" and \".\" in field names"
                    ),
                    column,
                    1,
                ));
            }
        }
    }
    tokens.push(Token { kind: TokenKind::End, column: characters.len() + 1, width: 1 });
    Ok(tokens)
}

/// Reads the string whose opening quote is at `characters[start]`; returns
/// its text and the index after the closing quote.
///
/// `\` followed by the quote or by `\` is an escape; any other `\` is kept,
/// so that regular expressions such as `"\d+"` read naturally.
fn read_string(characters: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = characters.get(start).copied().unwrap_or('"');
    let mut text = String::new();
    let mut index = start + 1;
    loop {
        let Some(&character) = characters.get(index) else {
            return Err(format!(
                "the string starting at column {} has no closing {quote}; add it, or write \\{quote} for a {quote} \
                 inside the string",
                start + 1
            ));
        };
        index += 1;
        if character == quote {
            return Ok((text, index));
        }
        if character == '\\'
            && let Some(&escaped) = characters.get(index).filter(|escaped| **escaped == quote || **escaped == '\\')
        {
            text.push(escaped);
            index += 1;
            continue;
        }
        text.push(character);
    }
}

/// Reads a decimal number: an optional `-`, digits, optionally `.` and
/// digits. `None` for anything else (exponents, `inf`, `1.2.3`) and for
/// numbers too large to be finite.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return None;
    }
    text.parse::<f64>().ok().filter(|number| number.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<TokenKind> {
        tokenize(input).unwrap_or_default().into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn tokens_keep_their_columns() {
        let tokens = tokenize("a.b >= -16 && !(x)").unwrap_or_default();
        let columns: Vec<usize> = tokens.iter().map(|token| token.column).collect();
        assert_eq!(columns, vec![1, 5, 8, 12, 15, 16, 17, 18, 19]);
        assert_eq!(tokens.first().map(|token| token.width), Some(3));
    }

    #[test]
    fn strings_resolve_only_their_own_escapes() {
        assert_eq!(kinds(r#""a\"b\\c\d""#), vec![TokenKind::Str(r#"a"b\c\d"#.into()), TokenKind::End]);
        assert_eq!(kinds(r#"'it\'s'"#), vec![TokenKind::Str("it's".into()), TokenKind::End]);
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(parse_number("16"), Some(16.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("1e5"), None);
        assert_eq!(parse_number("1.2.3"), None);
        assert_eq!(parse_number("1."), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number(&"9".repeat(400)), None);
    }
}
