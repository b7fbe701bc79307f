//! The recursive-descent parser: tokens to [`Expr`].
//!
//! Nesting (parentheses and `not`) is limited to [`MAX_DEPTH`] levels and
//! the input to [`MAX_INPUT_CHARS`] characters, so that no input can
//! exhaust the stack.

use crate::ast::{Comparison, Expr, FIELD_NAMES, Field, GlobPattern, ListItem, Literal, RegexPattern, Test};
use crate::error::{Error, ErrorKind, Result};
use crate::lexer::{Token, TokenKind, shorten, tokenize};
use drover_types::suggest::nearest;

/// The deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 64;

/// The longest filter accepted, in characters.
pub const MAX_INPUT_CHARS: usize = 64 * 1024;

/// The most globs and regular expressions one filter may hold (strings in
/// `in [...]` lists count only when they use glob syntax).
pub const MAX_PATTERNS: usize = 100;

/// The values `status` can have, as `drover node list` shows them; a filter
/// comparing `status` with anything else (without wildcards) is refused.
pub const STATUSES: [&str; 8] =
    ["initializing", "ready", "disconnected", "down", "draining", "ineligible", "retiring", "retired"];

/// The values `eligibility` can have.
pub const ELIGIBILITIES: [&str; 2] = ["eligible", "ineligible"];

const KEYWORDS: [&str; 10] = ["and", "or", "not", "in", "has", "is", "set", "matches", "true", "false"];

const OPERATORS_HINT: &str = "==, !=, <, <=, >, >=, =~, !~, matches, in, is set";

/// Parses a filter into its expression.
pub(crate) fn parse(input: &str) -> Result<Expr> {
    let num_chars = input.chars().count();
    if num_chars > MAX_INPUT_CHARS {
        return Err(Error::new(
            ErrorKind::TooComplex,
            format!(
                "the filter is {num_chars} characters long, more than the {MAX_INPUT_CHARS} accepted; \
                 select the nodes with a shorter filter"
            ),
            MAX_INPUT_CHARS + 1,
            1,
            input,
        ));
    }
    let tokens = tokenize(input)?;
    if tokens.len() == 1 {
        return Err(Error::new(
            ErrorKind::Syntax,
            "the filter is empty; write a condition such as status == \"ready\"".to_owned(),
            1,
            1,
            input,
        ));
    }
    let mut parser = Parser { input, tokens, position: 0, depth: 0, num_patterns: 0 };
    let expression = parser.parse_or()?;
    let token = parser.peek().clone();
    match token.kind {
        TokenKind::End => Ok(expression),
        TokenKind::RightParen => Err(parser
            .syntax(format!("unmatched \")\" at column {}; remove it or add a \"(\" before it", token.column), &token)),
        _ => Err(parser.syntax(
            format!(
                "unexpected {} at column {}; expected \"and\", \"or\" or the end of the filter{}",
                token.describe(),
                token.column,
                keyword_hint(&token)
            ),
            &token,
        )),
    }
}

/// `; did you mean "and"?` for `AND`, `And`, …
fn keyword_hint(token: &Token) -> String {
    match &token.kind {
        TokenKind::Word(word) => {
            let lowercase = word.to_lowercase();
            if KEYWORDS.contains(&lowercase.as_str()) && lowercase != *word {
                format!("; did you mean \"{lowercase}\"? (keywords are lowercase)")
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
    num_patterns: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with `End`, and `advance` never moves
        // past it.
        self.tokens.get(self.position).or_else(|| self.tokens.last()).unwrap_or(&END_TOKEN)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.position + 1 < self.tokens.len() {
            self.position += 1;
        }
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Word(found) if found == word)
    }

    fn error(&self, kind: ErrorKind, message: String, token: &Token) -> Error {
        Error::new(kind, message, token.column, token.width, self.input)
    }

    fn syntax(&self, message: String, token: &Token) -> Error {
        self.error(ErrorKind::Syntax, message, token)
    }

    fn enter(&mut self, token: &Token) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                ErrorKind::TooComplex,
                format!("the filter nests more than {MAX_DEPTH} levels deep at column {}; simplify it", token.column),
                token,
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// `or_expr = and_expr { ("or" | "||") and_expr }`
    fn parse_or(&mut self) -> Result<Expr> {
        let mut operands = Vec::new();
        push_flattened(&mut operands, self.parse_and()?, true);
        while self.peek_word("or") || self.peek().kind == TokenKind::OrOr {
            self.advance();
            push_flattened(&mut operands, self.parse_and()?, true);
        }
        Ok(if operands.len() == 1 { operands.remove(0) } else { Expr::Or(operands) })
    }

    /// `and_expr = unary { ("and" | "&&") unary }`
    fn parse_and(&mut self) -> Result<Expr> {
        let mut operands = Vec::new();
        push_flattened(&mut operands, self.parse_unary()?, false);
        while self.peek_word("and") || self.peek().kind == TokenKind::AndAnd {
            self.advance();
            push_flattened(&mut operands, self.parse_unary()?, false);
        }
        Ok(if operands.len() == 1 { operands.remove(0) } else { Expr::And(operands) })
    }

    /// `unary = ("not" | "!") unary | primary`
    fn parse_unary(&mut self) -> Result<Expr> {
        if self.peek_word("not") || self.peek().kind == TokenKind::Bang {
            let token = self.advance();
            self.enter(&token)?;
            let operand = self.parse_unary()?;
            self.leave();
            return Ok(Expr::Not(Box::new(operand)));
        }
        self.parse_primary()
    }

    /// `primary = "(" or_expr ")" | "has" field | field [test]`
    fn parse_primary(&mut self) -> Result<Expr> {
        let token = self.advance();
        match &token.kind {
            TokenKind::LeftParen => {
                self.enter(&token)?;
                let inner = self.parse_or()?;
                self.leave();
                let closing = self.advance();
                if closing.kind != TokenKind::RightParen {
                    return Err(self.syntax(
                        format!(
                            "expected \")\" at column {} to close the \"(\" at column {}, found {}; add the \")\"",
                            closing.column,
                            token.column,
                            closing.describe()
                        ),
                        &closing,
                    ));
                }
                Ok(inner)
            }
            TokenKind::Word(word) if word == "has" => {
                let field_token = self.advance();
                let field = self.field(&field_token, "after \"has\"")?;
                Ok(Expr::Test(field, Test::Has))
            }
            TokenKind::Word(word) if !KEYWORDS.contains(&word.as_str()) => {
                let field = self.field(&token, "")?;
                self.parse_test(field, &token)
            }
            TokenKind::End if token.column == 1 => {
                Err(self
                    .syntax("the filter is empty; write a condition such as status == \"ready\"".to_owned(), &token))
            }
            TokenKind::Str(_) | TokenKind::Num(_) => Err(self.syntax(
                format!(
                    "expected a field at column {}, found {}; a condition reads field == \"value\", \
                     such as environment == \"qa\"",
                    token.column,
                    token.describe()
                ),
                &token,
            )),
            _ => Err(self.syntax(
                format!(
                    "expected a condition at column {}, found {}; write one such as status == \"ready\"",
                    token.column,
                    token.describe()
                ),
                &token,
            )),
        }
    }

    /// The field named by `token`; `context` ("after \"has\"") completes
    /// the message when `token` is not a word at all.
    fn field(&self, token: &Token, context: &str) -> Result<Field> {
        let TokenKind::Word(word) = &token.kind else {
            return Err(self.syntax(
                format!("expected a field {context} at column {}, found {}", token.column, token.describe()),
                token,
            ));
        };
        if let Some(field) = Field::parse(word) {
            return Ok(field);
        }
        let message = if word == "attr" || word == "meta" {
            let example = if word == "attr" { "attr.cpu.numcores" } else { "meta.rack" };
            format!("\"{word}\" at column {} needs a name after a dot, such as {example}", token.column)
        } else if let Some(key) = word.strip_prefix("attr.").or_else(|| word.strip_prefix("meta.")) {
            format!(
                "\"{word}\" at column {} has an empty part in \"{key}\"; names are dot-separated, such as \
                 attr.cpu.numcores",
                token.column
            )
        } else {
            let shown = shorten(word);
            match suggest_field(word) {
                Some(suggestion) => {
                    format!("unknown field \"{shown}\" at column {}; did you mean \"{suggestion}\"?", token.column)
                }
                None => format!(
                    "unknown field \"{shown}\" at column {}; fields are {}, attr.<fact> and meta.<key> \
                     (for a meta entry, write meta.{shown})",
                    token.column,
                    FIELD_NAMES.join(", ")
                ),
            }
        };
        Err(self.error(ErrorKind::UnknownField, message, token))
    }

    /// What follows a field: an operator and its operand, or nothing for a
    /// yes/no field.
    fn parse_test(&mut self, field: Field, field_token: &Token) -> Result<Expr> {
        let operator_token = self.peek().clone();
        match &operator_token.kind {
            TokenKind::Operator(operator @ ("=~" | "!~")) => {
                self.advance();
                let pattern_token = self.advance();
                let TokenKind::Str(text) = &pattern_token.kind else {
                    return Err(self.expected_string(&pattern_token, operator, "glob", "\"bi/batch/**\""));
                };
                let pattern = self.glob(text, &pattern_token)?;
                Ok(Expr::Test(field, Test::Glob { pattern, negated: *operator == "!~" }))
            }
            TokenKind::Operator(operator) => {
                let comparison = match *operator {
                    "==" => Comparison::Equal,
                    "!=" => Comparison::NotEqual,
                    "<" => Comparison::Less,
                    "<=" => Comparison::LessOrEqual,
                    ">" => Comparison::Greater,
                    _ => Comparison::GreaterOrEqual,
                };
                self.advance();
                let value_token = self.advance();
                let literal = self.literal(&value_token, operator)?;
                if let Literal::Str(text) = &literal {
                    self.check_known_value(&field, text, &value_token)?;
                }
                Ok(Expr::Test(field, Test::Compare(comparison, literal)))
            }
            TokenKind::Word(word) if word == "matches" => {
                self.advance();
                let pattern_token = self.advance();
                let TokenKind::Str(text) = &pattern_token.kind else {
                    return Err(self.expected_string(
                        &pattern_token,
                        "matches",
                        "regular expression",
                        "\"^batch\\d+$\"",
                    ));
                };
                self.count_pattern(&pattern_token)?;
                let pattern = RegexPattern::new(text).map_err(|reason| {
                    self.error(
                        ErrorKind::BadPattern,
                        format!(
                            "the regular expression \"{}\" at column {} does not compile: {reason}",
                            shorten(text),
                            pattern_token.column
                        ),
                        &pattern_token,
                    )
                })?;
                Ok(Expr::Test(field, Test::Regex(pattern)))
            }
            TokenKind::Word(word) if word == "in" => {
                self.advance();
                let items = self.parse_list(&field)?;
                Ok(Expr::Test(field, Test::In { items, negated: false }))
            }
            TokenKind::Word(word) if word == "not" => {
                self.advance();
                let in_token = self.advance();
                if !matches!(&in_token.kind, TokenKind::Word(word) if word == "in") {
                    return Err(self.syntax(
                        format!(
                            "expected \"in\" after \"{field} not\" at column {}, found {}; write \
                             \"{field} not in [...]\", or put \"not\" before the condition",
                            in_token.column,
                            in_token.describe()
                        ),
                        &in_token,
                    ));
                }
                let items = self.parse_list(&field)?;
                Ok(Expr::Test(field, Test::In { items, negated: true }))
            }
            TokenKind::Word(word) if word == "is" => {
                self.advance();
                let negated = self.peek_word("not");
                if negated {
                    self.advance();
                }
                let set_token = self.advance();
                if !matches!(&set_token.kind, TokenKind::Word(word) if word == "set") {
                    return Err(self.syntax(
                        format!(
                            "expected \"set\" at column {}, found {}; write \"{field} is set\" or \"{field} is not set\"",
                            set_token.column,
                            set_token.describe()
                        ),
                        &set_token,
                    ));
                }
                let has = Expr::Test(field, Test::Has);
                Ok(if negated { Expr::Not(Box::new(has)) } else { has })
            }
            _ if field.is_flag() => Ok(Expr::Test(field, Test::Flag)),
            TokenKind::End | TokenKind::RightParen | TokenKind::AndAnd | TokenKind::OrOr => {
                Err(self.not_a_flag(&field, field_token))
            }
            TokenKind::Word(word) if word == "and" || word == "or" => Err(self.not_a_flag(&field, field_token)),
            _ => Err(self.syntax(
                format!(
                    "expected an operator ({OPERATORS_HINT}) after \"{field}\" at column {}, found {}",
                    operator_token.column,
                    operator_token.describe()
                ),
                &operator_token,
            )),
        }
    }

    fn not_a_flag(&self, field: &Field, field_token: &Token) -> Error {
        self.syntax(
            format!(
                "\"{field}\" at column {} is not a yes/no field; compare it ({field} == \"…\") or test it \
                 (has {field}); the yes/no fields are eligible, protected and draining",
                field_token.column
            ),
            field_token,
        )
    }

    fn expected_string(&self, token: &Token, operator: &str, what: &str, example: &str) -> Error {
        self.syntax(
            format!(
                "expected a quoted {what} after \"{operator}\" at column {}, found {}; such as {example}",
                token.column,
                token.describe()
            ),
            token,
        )
    }

    /// Counts one more pattern, refusing more than [`MAX_PATTERNS`].
    fn count_pattern(&mut self, token: &Token) -> Result<()> {
        self.num_patterns += 1;
        if self.num_patterns > MAX_PATTERNS {
            return Err(self.error(
                ErrorKind::TooComplex,
                format!(
                    "the pattern at column {} is one more than the {MAX_PATTERNS} globs and regular expressions a \
                     filter may hold; simplify the filter",
                    token.column
                ),
                token,
            ));
        }
        Ok(())
    }

    fn glob(&mut self, text: &str, token: &Token) -> Result<GlobPattern> {
        self.count_pattern(token)?;
        GlobPattern::new(text).map_err(|reason| {
            self.error(
                ErrorKind::BadPattern,
                format!("the glob \"{}\" at column {} {reason}", shorten(text), token.column),
                token,
            )
        })
    }

    /// A value after a comparison operator.
    fn literal(&self, token: &Token, operator: &str) -> Result<Literal> {
        match &token.kind {
            TokenKind::Str(text) => Ok(Literal::Str(text.clone())),
            TokenKind::Num(number) => Ok(Literal::Num(*number)),
            TokenKind::Word(word) if word == "true" => Ok(Literal::Bool(true)),
            TokenKind::Word(word) if word == "false" => Ok(Literal::Bool(false)),
            TokenKind::Word(word) => Err(self.syntax(
                format!(
                    "expected a value after \"{operator}\" at column {}, found {}; quote text: \"{}\"",
                    token.column,
                    token.describe(),
                    shorten(word)
                ),
                token,
            )),
            _ => Err(self.syntax(
                format!(
                    "expected a value (a \"quoted string\", a number, true or false) after \"{operator}\" at column \
                     {}, found {}",
                    token.column,
                    token.describe()
                ),
                token,
            )),
        }
    }

    /// `"[" item { "," item } [","] "]"`, after `in`.
    fn parse_list(&mut self, field: &Field) -> Result<Vec<ListItem>> {
        let opening = self.advance();
        if opening.kind != TokenKind::LeftBracket {
            return Err(self.syntax(
                format!(
                    "expected \"[\" after \"in\" at column {}, found {}; write a list such as {field} in [\"a\", \"b\"]",
                    opening.column,
                    opening.describe()
                ),
                &opening,
            ));
        }
        let mut items = Vec::new();
        loop {
            let token = self.advance();
            if token.kind == TokenKind::RightBracket {
                if items.is_empty() {
                    return Err(self.syntax(
                        format!(
                            "the list at column {} is empty; name at least one value, such as {field} in [\"a\"]",
                            opening.column
                        ),
                        &opening,
                    ));
                }
                return Ok(items);
            }
            let item = match &token.kind {
                TokenKind::Str(text) if drover_types::glob::has_wildcards(text) => {
                    ListItem::Glob(self.glob(text, &token)?)
                }
                TokenKind::Str(text) => {
                    self.check_known_value(field, text, &token)?;
                    ListItem::Value(Literal::Str(text.clone()))
                }
                _ => ListItem::Value(self.literal(&token, "[")?),
            };
            items.push(item);
            let separator = self.advance();
            match separator.kind {
                TokenKind::Comma => {}
                TokenKind::RightBracket => return Ok(items),
                _ => {
                    return Err(self.syntax(
                        format!(
                            "expected \",\" or \"]\" at column {} in the list that starts at column {}, found {}",
                            separator.column,
                            opening.column,
                            separator.describe()
                        ),
                        &separator,
                    ));
                }
            }
        }
    }

    /// Refuses values `status` and `eligibility` can never have, so that a
    /// typo does not silently select nothing.
    fn check_known_value(&self, field: &Field, text: &str, token: &Token) -> Result<()> {
        let (what, known): (&str, &[&str]) = match field {
            Field::Status => ("status", &STATUSES),
            Field::Eligibility => ("eligibility", &ELIGIBILITIES),
            _ => return Ok(()),
        };
        if known.contains(&text) {
            return Ok(());
        }
        let shown = shorten(text);
        let message = match nearest(text, known.iter().copied()) {
            Some(suggestion) => format!(
                "unknown {what} \"{shown}\" at column {}; did you mean \"{suggestion}\"? ({what} is one of {})",
                token.column,
                known.join(", ")
            ),
            None => {
                format!("unknown {what} \"{shown}\" at column {}; {what} is one of {}", token.column, known.join(", "))
            }
        };
        Err(self.error(ErrorKind::UnknownValue, message, token))
    }
}

static END_TOKEN: Token = Token { kind: TokenKind::End, column: 1, width: 1 };

/// Appends `operand`, splicing in the operands of a nested `or` (or `and`)
/// so that `(a or b) or c` is the same expression as `a or b or c`.
fn push_flattened(operands: &mut Vec<Expr>, operand: Expr, is_or: bool) {
    match operand {
        Expr::Or(inner) if is_or => operands.extend(inner),
        Expr::And(inner) if !is_or => operands.extend(inner),
        other => operands.push(other),
    }
}

/// The field a misspelt word probably meant: a top-level name or alias,
/// or `attr.`/`meta.` with the prefix corrected.
fn suggest_field(word: &str) -> Option<String> {
    let lowercase = word.to_lowercase();
    if lowercase != word && Field::parse(&lowercase).is_some() {
        return Some(lowercase);
    }
    if let Some((prefix, rest)) = word.split_once('.') {
        let corrected = nearest(prefix, ["attr", "meta", "node"])?;
        let candidate = format!("{corrected}.{rest}");
        return Field::parse(&candidate).map(|field| field.to_string());
    }
    let candidates = FIELD_NAMES.iter().copied().chain(["datacenter"]);
    nearest(word, candidates).map(str::to_owned)
}
