//! The parsed form of a filter and its canonical printed form.
//!
//! Printing an expression gives the canonical filter text: keywords spelt
//! out (`and`, `or`, `not`), strings in double quotes, aliases replaced by
//! the field's own name (`datacenter` → `zone`, `node.unique.name` →
//! `name`), `x is set` as `has x`, and only the parentheses precedence
//! needs, plus those around an `and` inside an `or`. Parsing the printed text gives the same expression back.

use std::fmt::{self, Write as _};

use regex::Regex;

/// A compiled glob: drover's one glob ([`drover_types::glob`]), which job
/// `glob` constraints use too.
pub use drover_types::glob::Glob as GlobPattern;

/// A field of a node that a filter can read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `name`: the node's name.
    Name,
    /// `id`: the node's id.
    Id,
    /// `hostgroup`: a path such as `bi/batch/gridworker`.
    Hostgroup,
    /// `environment`: `production`, `qa`, ….
    Environment,
    /// `owner`: a person or a team.
    Owner,
    /// `zone` (alias `datacenter`).
    Zone,
    /// `status`: one of [`STATUSES`](crate::STATUSES), as `drover node list`
    /// shows it.
    Status,
    /// `eligibility`: `eligible` or `ineligible`.
    Eligibility,
    /// `eligible`: yes/no, whether the scheduler may place new work.
    Eligible,
    /// `protected`: yes/no, whether the node must not be destroyed.
    Protected,
    /// `draining`: yes/no, whether a drain is in progress.
    Draining,
    /// `attr.<fact>`: a fact fingerprinted by the agent, such as
    /// `attr.cpu.numcores` or `attr.kernel.name`.
    Attr(String),
    /// `meta.<key>`: a free-form meta entry, such as `meta.rack`.
    Meta(String),
}

/// The top-level field names, in the order error messages list them.
pub const FIELD_NAMES: [&str; 11] = [
    "name",
    "id",
    "hostgroup",
    "environment",
    "owner",
    "zone",
    "status",
    "eligibility",
    "eligible",
    "protected",
    "draining",
];

impl Field {
    /// Reads a field path: a top-level name, an alias (`datacenter`,
    /// Nomad's `node.unique.name`, `node.hostgroup`, …), `attr.<fact>` or
    /// `meta.<key>`. `None` when the path names no field, including
    /// `attr.` and `meta.` with an empty or malformed key.
    pub fn parse(path: &str) -> Option<Field> {
        if let Some(fact) = path.strip_prefix("attr.") {
            return valid_key(fact).then(|| Field::Attr(fact.to_owned()));
        }
        if let Some(key) = path.strip_prefix("meta.") {
            return valid_key(key).then(|| Field::Meta(key.to_owned()));
        }
        let field = match path {
            "name" | "node.unique.name" | "node.name" => Field::Name,
            "id" | "node.unique.id" | "node.id" => Field::Id,
            "hostgroup" | "node.hostgroup" => Field::Hostgroup,
            "environment" | "node.environment" => Field::Environment,
            "owner" | "node.owner" => Field::Owner,
            "zone" | "datacenter" | "node.zone" | "node.datacenter" => Field::Zone,
            "status" | "node.status" => Field::Status,
            "eligibility" | "node.eligibility" => Field::Eligibility,
            "eligible" => Field::Eligible,
            "protected" => Field::Protected,
            "draining" => Field::Draining,
            _ => return None,
        };
        Some(field)
    }

    /// Whether the field is a yes/no field that may stand alone in a
    /// filter (`protected`, `eligible`, `draining`).
    pub fn is_flag(&self) -> bool {
        matches!(self, Field::Eligible | Field::Protected | Field::Draining)
    }
}

/// Whether `key` is a usable `attr.`/`meta.` key: dot-separated non-empty
/// segments.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.split('.').all(|segment| !segment.is_empty())
}

impl fmt::Display for Field {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Field::Name => "name",
            Field::Id => "id",
            Field::Hostgroup => "hostgroup",
            Field::Environment => "environment",
            Field::Owner => "owner",
            Field::Zone => "zone",
            Field::Status => "status",
            Field::Eligibility => "eligibility",
            Field::Eligible => "eligible",
            Field::Protected => "protected",
            Field::Draining => "draining",
            Field::Attr(fact) => return write!(formatter, "attr.{fact}"),
            Field::Meta(key) => return write!(formatter, "meta.{key}"),
        };
        formatter.write_str(name)
    }
}

/// A value written in a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// A quoted string: compared as text (ordered comparisons use
    /// version-aware order), or a glob inside `in [...]`.
    Str(String),
    /// An unquoted number: compared numerically. Always finite.
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl fmt::Display for Literal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(text) => write_quoted(formatter, text),
            Literal::Num(number) => write!(formatter, "{number}"),
            Literal::Bool(value) => write!(formatter, "{value}"),
        }
    }
}

/// Writes `text` in double quotes, escaping `"`, and `\` only where the
/// reader would take it as an escape (before `"`, `\` or the closing
/// quote), so that `"^batch\d+$"` prints as written.
fn write_quoted(formatter: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    formatter.write_char('"')?;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        let needs_escape = match character {
            '"' => true,
            '\\' => matches!(characters.peek(), None | Some('"' | '\\')),
            _ => false,
        };
        if needs_escape {
            formatter.write_char('\\')?;
        }
        formatter.write_char(character)?;
    }
    formatter.write_char('"')
}

/// An ordering comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `==`
    Equal,
    /// `!=`: exactly `not (… == …)`.
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Comparison {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// A compiled regular expression with the text it came from; two are equal
/// when their texts are.
#[derive(Clone, Debug)]
pub struct RegexPattern {
    pub(crate) text: String,
    pub(crate) regex: Regex,
}

impl RegexPattern {
    /// The largest compiled size (and matching cache) accepted, so that a
    /// filter cannot make a server allocate without bound; with at most
    /// [`MAX_PATTERNS`](crate::MAX_PATTERNS) patterns a filter stays within
    /// tens of megabytes.
    const SIZE_LIMIT: usize = 256 * 1024;

    /// Compiles a regular expression (the `regex` crate's syntax).
    ///
    /// # Errors
    /// Returns the `regex` crate's message when it does not compile.
    pub fn new(text: &str) -> Result<RegexPattern, String> {
        let regex = regex::RegexBuilder::new(text)
            .size_limit(Self::SIZE_LIMIT)
            .dfa_size_limit(Self::SIZE_LIMIT)
            .build()
            .map_err(|error| match error {
                // The syntax error repeats the pattern with its own caret; keep
                // only its last line, the reason.
                regex::Error::Syntax(text) => {
                    let reason = text.lines().last().unwrap_or_default();
                    reason.strip_prefix("error: ").unwrap_or(reason).to_owned()
                }
                regex::Error::CompiledTooBig(_) => "it is too large".to_owned(),
                other => other.to_string(),
            })?;
        Ok(RegexPattern { text: text.to_owned(), regex })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the expression matches anywhere in `text` (unanchored).
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for RegexPattern {
    fn eq(&self, other: &RegexPattern) -> bool {
        self.text == other.text
    }
}

/// One element of an `in [...]` list.
#[derive(Clone, Debug, PartialEq)]
pub enum ListItem {
    /// A quoted string with glob syntax (`*`, `?`, `[` or `\\`), matched as
    /// with `=~`.
    Glob(GlobPattern),
    /// A plain string, a number or `true`/`false`, matched as with `==`.
    Value(Literal),
}

impl fmt::Display for ListItem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListItem::Glob(glob) => write_quoted(formatter, glob.as_str()),
            ListItem::Value(literal) => literal.fmt(formatter),
        }
    }
}

/// What a filter checks about one field.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// A yes/no field standing alone: `protected`.
    Flag,
    /// `has x`, `x is set`: the node has the field.
    Has,
    /// `x == v`, `x < v`, …
    Compare(Comparison, Literal),
    /// `x =~ "glob"`, or `x !~ "glob"` when `negated`.
    Glob {
        /// The pattern.
        pattern: GlobPattern,
        /// `!~`.
        negated: bool,
    },
    /// `x matches "regex"`.
    Regex(RegexPattern),
    /// `x in [...]`, or `x not in [...]` when `negated`.
    In {
        /// The list, never empty.
        items: Vec<ListItem>,
        /// `not in`.
        negated: bool,
    },
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `a or b or …`: at least two operands, none of them an `Or`.
    Or(Vec<Expr>),
    /// `a and b and …`: at least two operands, none of them an `And`.
    And(Vec<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// A check of one field.
    Test(Field, Test),
}

impl Expr {
    /// Binding strength, to print only the parentheses that are needed.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            Expr::Not(_) | Expr::Test(..) => 3,
        }
    }

    /// Writes `operand`, in parentheses when it binds no tighter than
    /// `minimum` requires.
    fn write_operand(formatter: &mut fmt::Formatter<'_>, operand: &Expr, minimum: u8) -> fmt::Result {
        if operand.precedence() < minimum { write!(formatter, "({operand})") } else { write!(formatter, "{operand}") }
    }

    /// The expression as an indented tree, one node per line, showing how
    /// it groups (used by the golden tests and for `--explain`-style
    /// output).
    pub fn tree(&self) -> String {
        let mut output = String::new();
        self.write_tree(&mut output, 0);
        output
    }

    fn write_tree(&self, output: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        match self {
            Expr::Or(operands) | Expr::And(operands) => {
                let keyword = if matches!(self, Expr::Or(_)) { "or" } else { "and" };
                let _ = writeln!(output, "{indent}{keyword}");
                for operand in operands {
                    operand.write_tree(output, depth + 1);
                }
            }
            Expr::Not(operand) => {
                let _ = writeln!(output, "{indent}not");
                operand.write_tree(output, depth + 1);
            }
            Expr::Test(..) => {
                let _ = writeln!(output, "{indent}{self}");
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(operands) | Expr::And(operands) => {
                // `and` inside `or` is parenthesised although precedence does not
                // need it: `a or (b and c)` is what people mean and read.
                let separator = if matches!(self, Expr::Or(_)) { " or " } else { " and " };
                let minimum = 3;
                for (index, operand) in operands.iter().enumerate() {
                    if index > 0 {
                        formatter.write_str(separator)?;
                    }
                    Expr::write_operand(formatter, operand, minimum)?;
                }
                Ok(())
            }
            Expr::Not(operand) => {
                formatter.write_str("not ")?;
                Expr::write_operand(formatter, operand, 3)
            }
            Expr::Test(field, test) => match test {
                Test::Flag => write!(formatter, "{field}"),
                Test::Has => write!(formatter, "has {field}"),
                Test::Compare(comparison, literal) => write!(formatter, "{field} {} {literal}", comparison.as_str()),
                Test::Glob { pattern, negated } => {
                    write!(formatter, "{field} {} ", if *negated { "!~" } else { "=~" })?;
                    write_quoted(formatter, pattern.as_str())
                }
                Test::Regex(pattern) => {
                    write!(formatter, "{field} matches ")?;
                    write_quoted(formatter, pattern.as_str())
                }
                Test::In { items, negated } => {
                    write!(formatter, "{field} {}[", if *negated { "not in " } else { "in " })?;
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            formatter.write_str(", ")?;
                        }
                        write!(formatter, "{item}")?;
                    }
                    formatter.write_char(']')
                }
            },
        }
    }
}
