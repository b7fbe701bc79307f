//! The log query language: a hand-written lexer and recursive-descent
//! parser that turn the text of a query into an [`Expr`].
//!
//! The time range and the node filter are not part of the language: they
//! are separate parameters of a search (`--since`, `--until`, `--node`).
//!
//! # Grammar
//!
//! ```text
//! query   = [ or ] ;                    (* empty: every line *)
//! or      = and { "OR" and } ;
//! and     = unary { [ "AND" ] unary } ; (* side by side means AND *)
//! unary   = ( "NOT" | "-" ) unary | primary ;
//! primary = "(" or ")" | term ;
//! term    = [ FIELD ":" ] ( WORD | WORD "*" | PHRASE ) ;
//! FIELD   = letter or "_", then letters, digits, "_", "." or "-" ;
//! WORD    = any characters but space, "(", ")" and '"' ;
//! PHRASE  = '"' { character | '\"' | '\\' } '"' ;
//! ```
//!
//! - `NOT` binds tightest, then `AND`, then `OR`: `a b OR c` is `(a AND b)
//!   OR c`. Operators are upper case; `and`, `or` and `not` are words.
//! - A bare word or phrase searches the message, case-insensitively and by
//!   whole words: `failed` matches "Failed password" but not "unfailed".
//!   A word with punctuation (`10.0.0.1`) is the phrase of its parts.
//! - `field:value` matches a field: `node`, `hostgroup`, `environment`,
//!   `job`, `group`, `task`, `alloc`, `source`, `stream`, `level`, `origin`
//!   match their whole value, case-insensitively; `message:` is the same as
//!   a bare word; any other name is a field extracted from `key=value` or
//!   JSON lines (`user:alice`), matched as a whole value, case-insensitively.
//! - `field:prefix*` and `prefix*` match values (or message words) that
//!   start with the prefix. A `*` elsewhere is an error.
//! - `-term` is `NOT term`; a `-` inside a word is part of it (`web-1`).
//! - To search for an operator, a parenthesis or a colon, quote it:
//!   `"OR"`, `"http://x"`.
//!
//! Every error names the column (counting characters from 1) and says what
//! to do, for example `unbalanced parenthesis at column 1: add ")"`.

use std::fmt;

/// Parentheses and `NOT`s nest at most this deep (the parser recurses).
pub const MAX_DEPTH: usize = 64;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every line (the empty query).
    All,
    /// One term: a bare word or phrase (`field` is `None`) or `field:value`.
    Match {
        /// The field name as written; `None` searches the message.
        field: Option<String>,
        /// What to look for.
        value: Value,
    },
    /// All of these (two or more).
    And(Vec<Expr>),
    /// Any of these (two or more).
    Or(Vec<Expr>),
    /// Not this.
    Not(Box<Expr>),
}

/// The value side of a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A word as written.
    Word(String),
    /// The text between quotes, unescaped.
    Phrase(String),
    /// A word written with a trailing `*`, without the `*`.
    Prefix(String),
}

/// A query that does not parse: where, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}: {hint}")]
pub struct QueryError {
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Parses the text of a query.
pub fn parse(text: &str) -> Result<Expr, QueryError> {
    let tokens = Lexer::new(text).tokens()?;
    let mut parser = Parser { tokens, position: 0, text, depth: 0 };
    if parser.tokens.is_empty() {
        return Ok(Expr::All);
    }
    let expr = parser.or()?;
    match parser.tokens.get(parser.position) {
        None => Ok(expr),
        Some(token) if token.kind == TokenKind::RightParen => {
            Err(parser.error(token.offset, "unexpected \")\"", "remove it or add a matching \"(\" before it"))
        }
        // `or` stops only at the end or at ")".
        Some(token) => Err(parser.error(token.offset, "unexpected input", "remove it")),
    }
}

impl fmt::Display for Expr {
    /// The canonical form used by the golden tests: an S-expression, e.g.
    /// `(and (word "failed") (not (word level "info")))`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => write!(formatter, "(all)"),
            Expr::Match { field, value } => {
                let (kind, text) = match value {
                    Value::Word(text) => ("word", text),
                    Value::Phrase(text) => ("phrase", text),
                    Value::Prefix(text) => ("prefix", text),
                };
                match field {
                    Some(field) => write!(formatter, "({kind} {field} {text:?})"),
                    None => write!(formatter, "({kind} {text:?})"),
                }
            }
            Expr::And(children) | Expr::Or(children) => {
                write!(formatter, "({}", if matches!(self, Expr::And(_)) { "and" } else { "or" })?;
                for child in children {
                    write!(formatter, " {child}")?;
                }
                write!(formatter, ")")
            }
            Expr::Not(child) => write!(formatter, "(not {child})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    /// A term, with its field if it had one.
    Term {
        field: Option<String>,
        value: Value,
    },
    LeftParen,
    RightParen,
    And,
    Or,
    /// `NOT` or a leading `-`.
    Not,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Byte offset in the query text.
    offset: usize,
}

fn column_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(offset, |before| before.chars().count()) + 1
}

fn query_error(text: &str, offset: usize, message: &str, hint: &str) -> QueryError {
    QueryError { column: column_of(text, offset), message: message.to_owned(), hint: hint.to_owned() }
}

struct Lexer<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer { text, position: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    fn tokens(mut self) -> Result<Vec<Token>, QueryError> {
        let mut tokens = Vec::new();
        while let Some(character) = self.peek() {
            let offset = self.position;
            if character.is_whitespace() {
                self.position += character.len_utf8();
                continue;
            }
            let kind = match character {
                '(' => {
                    self.position += 1;
                    TokenKind::LeftParen
                }
                ')' => {
                    self.position += 1;
                    TokenKind::RightParen
                }
                '-' => {
                    self.position += 1;
                    match self.peek() {
                        Some(next) if !next.is_whitespace() && next != ')' => TokenKind::Not,
                        _ => {
                            return Err(query_error(
                                self.text,
                                offset,
                                "nothing to exclude after \"-\"",
                                "write -word to leave out lines with that word, or quote \"-\" to search for it",
                            ));
                        }
                    }
                }
                '"' => TokenKind::Term { field: None, value: self.phrase()? },
                _ => self.word_or_operator()?,
            };
            tokens.push(Token { kind, offset });
        }
        Ok(tokens)
    }

    /// A phrase starting at the opening quote under the cursor.
    fn phrase(&mut self) -> Result<Value, QueryError> {
        let start = self.position;
        self.position += 1;
        let mut content = String::new();
        let mut escaped = false;
        while let Some(character) = self.peek() {
            self.position += character.len_utf8();
            match (escaped, character) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    if content.trim().is_empty() {
                        return Err(query_error(self.text, start, "empty phrase", "put words between the quotes"));
                    }
                    return Ok(Value::Phrase(content));
                }
                (_, character) => {
                    content.push(character);
                    escaped = false;
                }
            }
        }
        Err(query_error(self.text, start, "unterminated phrase", "add a closing \""))
    }

    fn word_or_operator(&mut self) -> Result<TokenKind, QueryError> {
        let start = self.position;
        let rest = &self.text[start..];
        let length = rest.find(|character: char| character.is_whitespace() || matches!(character, '(' | ')' | '"'));
        let word = &rest[..length.unwrap_or(rest.len())];
        self.position += word.len();
        match word {
            "AND" => return Ok(TokenKind::And),
            "OR" => return Ok(TokenKind::Or),
            "NOT" => return Ok(TokenKind::Not),
            _ => {}
        }
        // `http://host` is a word, not the field `http`.
        if let Some(colon) = word.find(':')
            && is_field_name(&word[..colon])
            && !word[colon + 1..].starts_with("//")
        {
            let field = word[..colon].to_owned();
            let value_offset = start + colon + 1;
            let value_text = &word[colon + 1..];
            if value_text.is_empty() {
                return match self.peek() {
                    Some('"') => Ok(TokenKind::Term { field: Some(field), value: self.phrase()? }),
                    Some('(') => Err(query_error(
                        self.text,
                        value_offset,
                        &format!("a field cannot be followed by parentheses in \"{field}:(\""),
                        &format!("repeat the field in each term: ({field}:a OR {field}:b)"),
                    )),
                    _ => Err(query_error(
                        self.text,
                        value_offset,
                        &format!("missing value after \"{field}:\""),
                        &format!("write {field}:VALUE, or quote the word to search for it"),
                    )),
                };
            }
            let value = self.word_value(value_text, value_offset)?;
            return Ok(TokenKind::Term { field: Some(field), value });
        }
        let value = self.word_value(word, start)?;
        Ok(TokenKind::Term { field: None, value })
    }

    /// A word or a prefix (trailing `*`); `*` anywhere else is an error.
    fn word_value(&self, word: &str, offset: usize) -> Result<Value, QueryError> {
        let (body, is_prefix) = match word.strip_suffix('*') {
            Some(body) => (body, true),
            None => (word, false),
        };
        if let Some(star) = body.find('*') {
            return Err(query_error(
                self.text,
                offset + star,
                "a \"*\" can only end a word",
                "write a prefix such as web* , or quote the word to search for a literal *",
            ));
        }
        if is_prefix && body.is_empty() {
            return Err(query_error(
                self.text,
                offset,
                "a \"*\" needs a prefix before it",
                "write at least one character before the *; to match every line, leave the query empty",
            ));
        }
        Ok(if is_prefix { Value::Prefix(body.to_owned()) } else { Value::Word(body.to_owned()) })
    }
}

/// Letters, digits, `_`, `.`, `-`, starting with a letter or `_`.
pub fn is_field_name(name: &str) -> bool {
    name.starts_with(|first: char| first.is_ascii_alphabetic() || first == '_')
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    text: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, offset: usize, message: &str, hint: &str) -> QueryError {
        query_error(self.text, offset, message, hint)
    }

    fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.position).map(|token| &token.kind)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.position).map_or(self.text.len(), |token| token.offset)
    }

    /// The query ended where a term was expected.
    fn missing_term_at_end(&self) -> QueryError {
        let previous = self.position.checked_sub(1).and_then(|index| self.tokens.get(index));
        let Some(previous) = previous else {
            return self.error(self.text.len(), "missing term", "add a word");
        };
        let name = match previous.kind {
            TokenKind::And => "AND",
            TokenKind::Or => "OR",
            TokenKind::Not => "NOT",
            TokenKind::LeftParen => {
                return self.error(previous.offset, "unbalanced parenthesis", "add a term and \")\"");
            }
            TokenKind::Term { .. } | TokenKind::RightParen => {
                return self.error(self.text.len(), "missing term", "add a word");
            }
        };
        self.error(
            previous.offset,
            &format!("missing term after {name}"),
            &format!("add a word after it, or quote \"{name}\" to search for it"),
        )
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut children = vec![self.and()?];
        while self.peek() == Some(&TokenKind::Or) {
            self.position += 1;
            children.push(self.and()?);
        }
        Ok(combine(children, false))
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut children = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(TokenKind::And) => {
                    self.position += 1;
                    children.push(self.unary()?);
                }
                Some(TokenKind::Term { .. } | TokenKind::LeftParen | TokenKind::Not) => children.push(self.unary()?),
                _ => break,
            }
        }
        Ok(combine(children, true))
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let offset = self.offset();
        if self.depth >= MAX_DEPTH {
            return Err(self.error(
                offset,
                "the query nests too deeply",
                &format!("use at most {MAX_DEPTH} levels of parentheses and NOT"),
            ));
        }
        let Some(kind) = self.peek().cloned() else {
            return Err(self.missing_term_at_end());
        };
        match kind {
            TokenKind::Not => {
                self.position += 1;
                self.depth += 1;
                let child = self.unary();
                self.depth -= 1;
                Ok(Expr::Not(Box::new(child?)))
            }
            TokenKind::LeftParen => {
                self.position += 1;
                if self.peek() == Some(&TokenKind::RightParen) {
                    return Err(self.error(offset, "empty parentheses", "put a term inside them or remove them"));
                }
                self.depth += 1;
                let inner = self.or();
                self.depth -= 1;
                let inner = inner?;
                if self.peek() != Some(&TokenKind::RightParen) {
                    return Err(self.error(offset, "unbalanced parenthesis", "add \")\""));
                }
                self.position += 1;
                Ok(inner)
            }
            TokenKind::Term { field, value } => {
                self.position += 1;
                Ok(Expr::Match { field, value })
            }
            TokenKind::And | TokenKind::Or => {
                let name = if kind == TokenKind::And { "AND" } else { "OR" };
                Err(self.error(
                    offset,
                    &format!("missing term before {name}"),
                    &format!("add a word before it, or quote \"{name}\" to search for it"),
                ))
            }
            TokenKind::RightParen => {
                let message = match self.position.checked_sub(1).and_then(|index| self.tokens.get(index)) {
                    Some(Token { kind: TokenKind::Not, .. }) => "missing term after NOT",
                    Some(Token { kind: TokenKind::And, .. }) => "missing term after AND",
                    Some(Token { kind: TokenKind::Or, .. }) => "missing term after OR",
                    _ => "unexpected \")\"",
                };
                Err(self.error(offset, message, "add a term before the \")\""))
            }
        }
    }
}

/// One child stays itself; children of the same kind are flattened into
/// one node (`a AND (b AND c)` is `(and a b c)`).
fn combine(children: Vec<Expr>, is_and: bool) -> Expr {
    if children.len() == 1 {
        return children.into_iter().next().unwrap_or(Expr::All);
    }
    let mut flat = Vec::with_capacity(children.len());
    for child in children {
        match child {
            Expr::And(grandchildren) if is_and => flat.extend(grandchildren),
            Expr::Or(grandchildren) if !is_and => flat.extend(grandchildren),
            other => flat.push(other),
        }
    }
    if is_and { Expr::And(flat) } else { Expr::Or(flat) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(text: &str) -> String {
        match parse(text) {
            Ok(expr) => expr.to_string(),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn precedence_and_flattening() {
        assert_eq!(printed("a b OR c"), r#"(or (and (word "a") (word "b")) (word "c"))"#);
        assert_eq!(printed("a AND (b AND c)"), r#"(and (word "a") (word "b") (word "c"))"#);
        assert_eq!(printed("NOT a b"), r#"(and (not (word "a")) (word "b"))"#);
        assert_eq!(printed("-level:info"), r#"(not (word level "info"))"#);
        assert_eq!(printed("  "), "(all)");
    }

    #[test]
    fn columns_count_characters() {
        let error = parse("é (a").unwrap_err();
        assert_eq!(error.column, 3);
        assert_eq!(error.to_string(), "unbalanced parenthesis at column 3: add \")\"");
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "(".repeat(MAX_DEPTH + 10) + "a" + &")".repeat(MAX_DEPTH + 10);
        assert!(parse(&deep).unwrap_err().message.contains("nests too deeply"));
        let nots = "NOT ".repeat(10_000) + "a";
        assert!(parse(&nots).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_query_like_input(text in "([a-z]{1,3}|AND|OR|NOT|-|\\(|\\)|\"|:|\\*| |é){0,30}") {
            if let Err(error) = parse(&text) {
                proptest::prop_assert!(error.column >= 1 && error.column <= text.chars().count() + 1);
            }
        }
    }
}
