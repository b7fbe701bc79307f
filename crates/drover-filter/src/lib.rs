//! The node filter language used by `--filter` everywhere, brace-range
//! expansion of node names (`batch{00..99}`), and the log query language
//! ([`log_query`], used by `drover logs search` and by site files). All
//! pure: no I/O.
//!
//! A filter selects nodes by their fields:
//!
//! ```text
//! drover node list --filter 'hostgroup =~ "bi/batch/**" and environment == "qa" and not protected'
//! drover exec --filter 'attr.cpu.numcores >= 16 and meta.rack == "r12"' -- uptime
//! ```
//!
//! The crate does not know drover's `Node`: a [`Filter`] is evaluated
//! against anything that implements [`Fields`]. Parsing reports the first
//! mistake with its column, a caret under it and what to do; evaluation
//! never fails.
//!
//! # Fields
//!
//! | field | value |
//! |---|---|
//! | `name` | the node's name |
//! | `id` | the node's id |
//! | `hostgroup` | a path such as `bi/batch/gridworker` |
//! | `environment` | `production`, `qa`, … |
//! | `owner` | a person or a team |
//! | `zone` (also `datacenter`) | the node's zone |
//! | `status` | `initializing`, `ready`, `disconnected`, `down`, `draining` or `ineligible`, as `drover node list` shows it |
//! | `eligibility` | `eligible` or `ineligible` |
//! | `eligible`, `protected`, `draining` | yes/no fields, which may stand alone: `not protected` |
//! | `attr.<fact>` | a fact fingerprinted by the agent: `attr.cpu.numcores`, `attr.kernel.name`, `attr.os.version` |
//! | `meta.<key>` | a meta entry: `meta.rack` |
//!
//! Nomad's spellings from job files are accepted too (`node.unique.name`,
//! `node.unique.id`, `node.hostgroup`, `node.datacenter`, …). Field names
//! and keywords are lowercase; an unknown field is an error that suggests
//! the nearest one. Comparing `status` or `eligibility` with a value they
//! can never have (`status == "dwon"`) is an error too.
//!
//! # Grammar
//!
//! ```text
//! filter     = or
//! or         = and { ("or" | "||") and }
//! and        = unary { ("and" | "&&") unary }
//! unary      = ("not" | "!") unary | primary
//! primary    = "(" or ")"
//!            | "has" field                        the node has the field
//!            | field "is" ["not"] "set"           same as has / not has
//!            | field compare value
//!            | field ("=~" | "!~") string        glob match / no match
//!            | field "matches" string            regular expression
//!            | field ["not"] "in" "[" item { "," item } [","] "]"
//!            | flag                              eligible, protected, draining
//! compare    = "==" | "!=" | "<" | "<=" | ">" | ">="
//! value      = string | number | "true" | "false"
//! item       = value                             a string item is a glob
//! string     = '"' … '"' | "'" … "'"             \" (or \') and \\ are escapes;
//!                                                any other \ is kept as is
//! number     = ["-"] digits ["." digits]
//! field      = name | "attr." key | "meta." key   key: dot-separated parts of
//!                                                letters, digits, "_" and "-"
//! ```
//!
//! `not` binds tighter than `and`, which binds tighter than `or`:
//! `a or b and not c` is `a or (b and (not c))`. Whitespace is free; a
//! filter is at most [`MAX_INPUT_CHARS`] characters, nests at most
//! [`MAX_DEPTH`] levels and holds at most [`MAX_PATTERNS`] globs and regular
//! expressions.
//!
//! # How values compare
//!
//! - **A number** (unquoted, `attr.cpu.numcores >= 16`) compares
//!   numerically; a field whose text is not a plain decimal number
//!   (`many`, `1e3`) never equals, exceeds or falls short of a number.
//! - **A quoted string** compares as text: `==` and `!=` are exact and
//!   case-sensitive; `<`, `<=`, `>`, `>=` use version-aware order, where runs
//!   of digits compare as numbers: `"5.4" < "5.10" < "5.14.0-362"`,
//!   `"batch9" < "batch10"`. Quote a value to compare versions
//!   (`attr.kernel.version >= "5.10"`); leave it bare to compare numbers
//!   (`attr.cpu.numcores > 8`: then `"16.0" == 16`).
//! - **`true` and `false`** compare with yes/no fields (and with the texts
//!   `true`/`false`).
//! - **`=~` and `!~`** match the whole value against a glob: `*` matches
//!   within one `/`-separated segment, `**` across segments (`a/**/b` also
//!   matches `a/b`), `?` one character other than `/`, `[abc]`, `[a-z]` and
//!   `[!abc]` one character from (or not from) a set; `\` makes the next
//!   character literal. Node names have no `/`, so on names these are plain
//!   shell globs: `name =~ "batch0*"`. This is [`drover_types::glob`], the
//!   glob of job `glob` constraints too.
//! - **`matches`** searches the value with a regular expression (the
//!   `regex` crate's syntax), unanchored: write `^…$` to match the whole
//!   value.
//! - **`in [...]`** holds when any item matches: a string with glob syntax
//!   (`*`, `?`, `[`, `\\`) as with `=~`, any other item as with `==`.
//! - **A missing field** (a fact or meta entry the node does not have, a
//!   label nobody set) fails every test — `==`, `<`, `=~`, `matches`, `in`,
//!   `has`, a bare yes/no field — **except the negative operators `!=`, `!~`
//!   and `not in`, which are exact negations of `==`, `=~` and `in`**. So
//!   `meta.rack != "r12"` selects the nodes without a rack too, and means
//!   the same as `not meta.rack == "r12"`; write
//!   `has meta.rack and meta.rack != "r12"` to leave them out.
//!
//! # Node names
//!
//! [`expand_names`] turns `batch{01..03},gpu07` into
//! `batch01 batch02 batch03 gpu07`: zero-padded and plain ranges
//! (`{00..99}`, `{1..20}`, `{10..1}`, `{0..20..5}`, `{a..f}`), lists
//! (`{gpu,cpu}`, `web{,-canary}`), nested and repeated braces, and
//! comma-separated lists of such patterns, in order and without repeats; at
//! most [`MAX_NAMES`] names.

mod ast;
mod error;
mod eval;
mod lexer;
pub mod log_query;
mod names;
mod node;
mod parser;

use std::fmt;

pub use ast::{Comparison, Expr, FIELD_NAMES, Field, GlobPattern, ListItem, Literal, RegexPattern, Test};
pub use error::{Error, ErrorKind, Result};
pub use eval::{Fields, MapRecord, Value};
pub use names::{MAX_NAME_CHARS, MAX_NAMES, expand_names, expand_names_with_limit, fold_names};
pub use parser::{ELIGIBILITIES, MAX_DEPTH, MAX_INPUT_CHARS, MAX_PATTERNS, STATUSES};

/// A parsed node filter, ready to test records.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    expression: Expr,
}

impl Filter {
    /// Parses a filter.
    ///
    /// # Errors
    /// An [`Error`] that names the column of the mistake and what to do.
    pub fn parse(input: &str) -> Result<Filter> {
        parser::parse(input).map(|expression| Filter { expression })
    }

    /// Whether `record` satisfies the filter.
    pub fn matches(&self, record: &impl Fields) -> bool {
        eval::evaluate(&self.expression, record)
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expression
    }
}

impl From<Expr> for Filter {
    fn from(expression: Expr) -> Filter {
        Filter { expression }
    }
}

/// The canonical form of the filter; parsing it gives the same filter.
impl fmt::Display for Filter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expression.fmt(formatter)
    }
}

impl std::str::FromStr for Filter {
    type Err = Error;

    fn from_str(input: &str) -> Result<Filter> {
        Filter::parse(input)
    }
}
