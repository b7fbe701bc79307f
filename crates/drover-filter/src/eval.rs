//! Evaluating a filter against one record.
//!
//! The crate does not know drover's `Node`: whatever implements [`Fields`]
//! can be filtered. Comparisons follow the rules in the crate documentation
//! ("How values compare").

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::ast::{Comparison, Expr, Field, ListItem, Literal, Test};
use crate::lexer::parse_number;

/// The value of one field of one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text; most fields are text, including numeric facts such as
    /// `attr.cpu.numcores`.
    Str(Cow<'a, str>),
    /// A number.
    Num(f64),
    /// A yes/no field.
    Bool(bool),
    /// The record does not have the field (an `attr.`/`meta.` key that is
    /// not set, or a label nobody set).
    Missing,
}

impl Value<'_> {
    /// The value as text, for globs and regular expressions; `None` when
    /// missing.
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(text) => Some(Cow::Borrowed(text.as_ref())),
            Value::Num(number) => Some(Cow::Owned(number.to_string())),
            Value::Bool(value) => Some(Cow::Borrowed(if *value { "true" } else { "false" })),
            Value::Missing => None,
        }
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(text))
    }
}

impl From<String> for Value<'_> {
    fn from(text: String) -> Self {
        Value::Str(Cow::Owned(text))
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<f64> for Value<'_> {
    fn from(number: f64) -> Self {
        Value::Num(number)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Value<'a> {
        value.map_or(Value::Missing, Into::into)
    }
}

/// Something a filter can be evaluated against: a node, or a test record.
///
/// Implementations return [`Value::Missing`] for fields the record does not
/// have. Recommended for nodes: `status` as `drover node list` shows it
/// (one of [`STATUSES`](crate::STATUSES)), `eligible`/`protected`/`draining`
/// as [`Value::Bool`], and an empty `owner` (or other label) as missing, so
/// that `has owner` means "someone is named".
pub trait Fields {
    /// The value of `field`.
    fn value(&self, field: &Field) -> Value<'_>;
}

/// A record backed by a map from field paths (`"hostgroup"`,
/// `"attr.cpu.numcores"`, `"meta.rack"`, as [`Field`] prints them) to
/// values; fields not in the map are missing. For tests and tools.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapRecord {
    values: BTreeMap<String, Value<'static>>,
}

impl MapRecord {
    /// An empty record: every field is missing.
    pub fn new() -> MapRecord {
        MapRecord::default()
    }

    /// Sets `path` (written as in a filter; aliases such as `datacenter`
    /// are resolved) to `value`. A path that names no field is kept under
    /// its own spelling and never read.
    pub fn with(mut self, path: &str, value: impl Into<Value<'static>>) -> MapRecord {
        let key = Field::parse(path).map_or_else(|| path.to_owned(), |field| field.to_string());
        self.values.insert(key, value.into());
        self
    }
}

impl Fields for MapRecord {
    fn value(&self, field: &Field) -> Value<'_> {
        self.values.get(&field.to_string()).cloned().unwrap_or(Value::Missing)
    }
}

/// Whether `record` satisfies `expression`.
pub(crate) fn evaluate(expression: &Expr, record: &impl Fields) -> bool {
    match expression {
        Expr::Or(operands) => operands.iter().any(|operand| evaluate(operand, record)),
        Expr::And(operands) => operands.iter().all(|operand| evaluate(operand, record)),
        Expr::Not(operand) => !evaluate(operand, record),
        Expr::Test(field, test) => evaluate_test(&record.value(field), test),
    }
}

fn evaluate_test(value: &Value<'_>, test: &Test) -> bool {
    match test {
        Test::Flag => match value {
            Value::Bool(flag) => *flag,
            Value::Str(text) => text == "true",
            Value::Num(number) => *number != 0.0,
            Value::Missing => false,
        },
        Test::Has => *value != Value::Missing,
        Test::Compare(Comparison::NotEqual, literal) => compare(value, literal) != Some(Ordering::Equal),
        Test::Compare(comparison, literal) => compare(value, literal).is_some_and(|ordering| match comparison {
            Comparison::Equal => ordering.is_eq(),
            Comparison::Less => ordering.is_lt(),
            Comparison::LessOrEqual => ordering.is_le(),
            Comparison::Greater => ordering.is_gt(),
            Comparison::GreaterOrEqual => ordering.is_ge(),
            Comparison::NotEqual => ordering.is_ne(),
        }),
        Test::Glob { pattern, negated } => value.text().is_some_and(|text| pattern.matches(&text)) != *negated,
        Test::Regex(pattern) => value.text().is_some_and(|text| pattern.matches(&text)),
        Test::In { items, negated } => {
            let found = items.iter().any(|item| match item {
                ListItem::Glob(pattern) => value.text().is_some_and(|text| pattern.matches(&text)),
                ListItem::Value(literal) => compare(value, literal) == Some(Ordering::Equal),
            });
            found != *negated
        }
    }
}

/// How `value` orders against `literal`; `None` when they cannot be
/// compared (a missing value, text that is not a number compared with a
/// number, …), which makes every comparison but `!=` false.
fn compare(value: &Value<'_>, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (Value::Missing, _) => None,
        (Value::Num(number), Literal::Num(wanted)) => number.partial_cmp(wanted),
        (Value::Str(text), Literal::Num(wanted)) => parse_number(text)?.partial_cmp(wanted),
        (Value::Bool(_), Literal::Num(_)) => None,
        (Value::Bool(flag), Literal::Bool(wanted)) => Some(flag.cmp(wanted)),
        (Value::Str(text), Literal::Bool(wanted)) => {
            let flag = match text.as_ref() {
                "true" => true,
                "false" => false,
                _ => return None,
            };
            Some(flag.cmp(wanted))
        }
        (Value::Num(_), Literal::Bool(_)) => None,
        (_, Literal::Str(wanted)) => Some(natural_order(&value.text()?, wanted)),
    }
}

/// Version-aware text order: runs of digits compare as numbers
/// (`batch9 < batch10`, `5.4 < 5.14`, `5.14.0-362 > 5.14.0-70`), everything
/// else character by character. Texts that differ only in leading zeros
/// (`07`, `7`) fall back to plain character order, so that the order is
/// total and `Equal` means identical.
pub(crate) fn natural_order(left: &str, right: &str) -> Ordering {
    let mut left_rest = left;
    let mut right_rest = right;
    while let (Some(left_first), Some(right_first)) = (left_rest.chars().next(), right_rest.chars().next()) {
        if left_first.is_ascii_digit() && right_first.is_ascii_digit() {
            let (left_digits, left_after) = split_digits(left_rest);
            let (right_digits, right_after) = split_digits(right_rest);
            let left_significant = left_digits.trim_start_matches('0');
            let right_significant = right_digits.trim_start_matches('0');
            let ordering = left_significant
                .len()
                .cmp(&right_significant.len())
                .then_with(|| left_significant.cmp(right_significant));
            if ordering.is_ne() {
                return ordering;
            }
            left_rest = left_after;
            right_rest = right_after;
        } else {
            let ordering = left_first.cmp(&right_first);
            if ordering.is_ne() {
                return ordering;
            }
            left_rest = &left_rest[left_first.len_utf8()..];
            right_rest = &right_rest[right_first.len_utf8()..];
        }
    }
    left_rest.len().cmp(&right_rest.len()).then_with(|| left.cmp(right))
}

/// Splits `text` after its leading ASCII digits.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text.find(|character: char| !character.is_ascii_digit()).unwrap_or(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_reads_numbers_inside_text() {
        let ascending = ["5.4", "5.10", "5.14.0-70", "5.14.0-362", "batch9", "batch10"];
        for window in ascending.windows(2) {
            if let [left, right] = window {
                assert_eq!(natural_order(left, right), Ordering::Less, "{left} < {right}");
                assert_eq!(natural_order(right, left), Ordering::Greater, "{right} > {left}");
            }
        }
        assert_eq!(natural_order("abc", "abc"), Ordering::Equal);
        assert_eq!(natural_order("", ""), Ordering::Equal);
        assert_eq!(natural_order("a", "ab"), Ordering::Less);
        assert_ne!(natural_order("07", "7"), Ordering::Equal);
    }
}
