//! Label matchers (`severity="critical"`, `node=~"batch.*"`) and
//! Prometheus-style metric selectors (`disk_used_percent{mount="/tmp"}`).
//!
//! Silences, `alertmanager` conditions and `alertmanager` hammer triggers
//! select alerts by their labels the way Alertmanager does: `=`, `!=`, `=~`
//! and `!~`, with regular expressions anchored at both ends.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A set of labels: `node`, `job`, `alertname`, `severity`, …
pub type Labels = BTreeMap<String, String>;

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// `=`: equal.
    #[serde(rename = "=")]
    Equal,
    /// `!=`: not equal.
    #[serde(rename = "!=")]
    NotEqual,
    /// `=~`: the whole value matches the regular expression.
    #[serde(rename = "=~")]
    Regex,
    /// `!~`: the whole value does not match the regular expression.
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One condition on one label. A missing label matches as the empty string,
/// as in Alertmanager.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "MatcherText", into = "MatcherText")]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// The anchored expression for `=~` and `!~`.
    compiled: Option<Regex>,
}

#[derive(Serialize, Deserialize)]
struct MatcherText {
    name: String,
    op: MatchOp,
    value: String,
}

impl TryFrom<MatcherText> for Matcher {
    type Error = String;
    fn try_from(text: MatcherText) -> Result<Self, Self::Error> {
        Matcher::new(text.name, text.op, text.value)
    }
}

impl From<Matcher> for MatcherText {
    fn from(matcher: Matcher) -> Self {
        MatcherText { name: matcher.name, op: matcher.op, value: matcher.value }
    }
}

impl Matcher {
    /// A matcher; fails when a regular expression does not compile.
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Matcher, String> {
        let name = name.into();
        let value = value.into();
        let compiled = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?:{value})$")).map_err(|error| {
                // The regex crate's messages span several lines;
                // the last one says what is wrong.
                let text = error.to_string();
                let reason = text.lines().last().unwrap_or_default().trim_start_matches("error: ").to_owned();
                format!("invalid regular expression {value:?} for label \"{name}\": {reason}")
            })?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher { name, op, value, compiled })
    }

    /// `name = value`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), compiled: None }
    }

    /// Parses `name=value`, `name!=value`, `name=~regex` or `name!~regex`
    /// (the value may be double-quoted).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let Some(position) = text.find(['=', '!']) else {
            return Err(format!(
                "{text:?} is not a matcher: write name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        let name = text[..position].trim();
        let rest = &text[position..];
        let (op, value) = if let Some(value) = rest.strip_prefix("=~") {
            (MatchOp::Regex, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (MatchOp::Equal, value)
        } else {
            return Err(format!(
                "{text:?} is not a matcher: write name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        check_label_name(name)?;
        let trimmed = value.trim();
        let unquoted = match trimmed.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')) {
            Some(inner) => unescape(inner),
            None => trimmed.to_owned(),
        };
        Matcher::new(name, op, unquoted)
    }

    /// The label this matcher looks at.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The comparison.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or regular expression.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.compiled) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(actual),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(actual),
            // Unreachable: `new` compiles every regex matcher.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

/// Whether every matcher is satisfied (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let valid_start = characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    if valid_start && characters.all(|character| character.is_ascii_alphanumeric() || character == '_') {
        Ok(())
    } else {
        Err(format!("{name:?} is not a label name: use letters, digits and \"_\", starting with a letter"))
    }
}

fn unescape(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            match characters.next() {
                Some('n') => output.push('\n'),
                Some(other) => output.push(other),
                None => output.push('\\'),
            }
        } else {
            output.push(character);
        }
    }
    output
}

/// A metric name with label matchers: `disk_used_percent{mount="/tmp"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The metric name.
    pub metric: String,
    /// Conditions on the sample's labels.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses a Prometheus-style instant-vector selector (no functions, no
    /// ranges): `name`, `name{}`, `name{a="x", b=~"y.*"}`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let trimmed = text.trim();
        let (metric, rest) = match trimmed.find('{') {
            Some(brace) => (trimmed[..brace].trim(), Some(&trimmed[brace + 1..])),
            None => (trimmed, None),
        };
        let valid_metric =
            metric.chars().next().is_some_and(|first| first.is_ascii_alphabetic() || "_:".contains(first))
                && metric.chars().all(|character| character.is_ascii_alphanumeric() || "_:".contains(character));
        if !valid_metric {
            return Err(format!(
                "{metric:?} is not a metric name: use letters, digits, \"_\" and \":\", as in disk_used_percent{{mount=\"/tmp\"}}"
            ));
        }
        let mut matchers = Vec::new();
        if let Some(inside) = rest {
            let Some(body) = inside.trim_end().strip_suffix('}') else {
                return Err(format!("the selector {trimmed:?} has no closing \"}}\""));
            };
            for piece in split_matchers(body)? {
                matchers.push(Matcher::parse(&piece)?);
            }
        }
        Ok(Selector { metric: metric.to_owned(), matchers })
    }
}

/// Splits `a="x", b=~"y,z"` at the commas outside quotes.
fn split_matchers(body: &str) -> Result<Vec<String>, String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for character in body.chars() {
        if escaped {
            current.push(character);
            escaped = false;
            continue;
        }
        match character {
            '\\' if in_quotes => {
                current.push(character);
                escaped = true;
            }
            '"' => {
                in_quotes = !in_quotes;
                current.push(character);
            }
            ',' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    if in_quotes {
        return Err(format!("a quoted value in {{{body}}} is not closed"));
    }
    pieces.push(current);
    Ok(pieces.into_iter().map(|piece| piece.trim().to_owned()).filter(|piece| !piece.is_empty()).collect())
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Selector::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.metric)?;
        if self.matchers.is_empty() {
            return Ok(());
        }
        let inner: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        write!(formatter, "{{{}}}", inner.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn matchers_compare_like_alertmanager() {
        let node = labels(&[("node", "batch07"), ("severity", "critical")]);
        assert!(Matcher::parse("node=batch07").unwrap().matches(&node));
        assert!(Matcher::parse("node=~\"batch0[0-9]\"").unwrap().matches(&node));
        assert!(!Matcher::parse("node=~batch").unwrap().matches(&node), "regexes are anchored");
        assert!(Matcher::parse("severity!=warning").unwrap().matches(&node));
        assert!(Matcher::parse("job!~.+").unwrap().matches(&node), "a missing label is empty");
        assert!(Matcher::parse("node=~(").is_err());
        assert!(Matcher::parse("no operator").is_err());
        assert!(Matcher::parse("1x=a").is_err());
    }

    #[test]
    fn selectors_parse_and_print() {
        let selector = Selector::parse("disk_used_percent{mount=\"/tmp\", device=~\"sd.,x\"}").unwrap();
        assert_eq!(selector.metric, "disk_used_percent");
        assert_eq!(selector.matchers.len(), 2);
        assert_eq!(selector.matchers[1].value(), "sd.,x");
        assert_eq!(selector.to_string(), "disk_used_percent{mount=\"/tmp\", device=~\"sd.,x\"}");
        assert_eq!(Selector::parse(&selector.to_string()).unwrap(), selector);
        assert_eq!(Selector::parse("up").unwrap().matchers, []);
        assert!(Selector::parse("disk{mount=\"/tmp\"").is_err());
        assert!(Selector::parse("{mount=\"/tmp\"}").is_err());
        assert!(Selector::parse("disk{mount=\"/tmp}").is_err());
    }
}
