//! Matching one record against a query without an index, for live tail:
//! the records that arrive are shown as they come when they match.
//!
//! The answer is the one the store's search gives for the same record
//! (`tests/matcher.rs` compares both over generated records and queries):
//! message words and phrases go through the same tokenizer
//! ([`crate::tokenizer`]), keyword and extracted fields are compared whole
//! after the same lower-casing, `prefix*` is "starts with", and `AND`,
//! `OR`, `NOT` are plain boolean logic. A term that has no words (`"..."`)
//! matches nothing, as in the store. The one difference: a phrase ending in
//! a prefix (`10.0.*`) matches every word with the prefix here, while the
//! store tries only the first [`crate::MAX_PHRASE_PREFIX_WORDS`] of
//! each segment.
//!
//! Build a [`Matcher`] once per query and call [`Matcher::matches`] per
//! record: the query's words are analysed once, a record's message is
//! tokenized at most once per call, and only if a message term is asked.

use std::cell::OnceCell;

use crate::query::{Expr, Value};
use crate::record::LogRecord;
use crate::schema::{keyword_index, keyword_values};
use crate::tokenizer::{Word, lowercase, words};

/// Whether `record` matches `expr`: the answer the store's search would
/// give for it. For many records, build a [`Matcher`] once instead.
pub fn matches(expr: &Expr, record: &LogRecord) -> bool {
    Matcher::new(expr).matches(record)
}

/// A query prepared for matching records one by one.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    All,
    /// A message term without words.
    Nothing,
    /// Consecutive message words; the last one may be a prefix.
    Words {
        words: Vec<String>,
        last_is_prefix: bool,
    },
    /// A keyword field (its index in `KEYWORD_FIELDS`), lower-cased value.
    Keyword {
        index: usize,
        value: String,
        is_prefix: bool,
    },
    /// An extracted field, lower-cased value.
    Extracted {
        key: String,
        value: String,
        is_prefix: bool,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Matcher {
    /// Prepares `expr`.
    pub fn new(expr: &Expr) -> Self {
        Matcher { root: Node::of(expr) }
    }

    /// Whether `record` matches.
    pub fn matches(&self, record: &LogRecord) -> bool {
        let message_words = OnceCell::new();
        self.root.matches(&RecordView { record, message_words })
    }
}

impl Node {
    fn of(expr: &Expr) -> Node {
        match expr {
            Expr::All => Node::All,
            Expr::And(children) => Node::And(children.iter().map(Node::of).collect()),
            Expr::Or(children) => Node::Or(children.iter().map(Node::of).collect()),
            Expr::Not(child) => Node::Not(Box::new(Node::of(child))),
            Expr::Match { field, value } => {
                let (text, is_prefix) = match value {
                    Value::Word(text) | Value::Phrase(text) => (text.as_str(), false),
                    Value::Prefix(text) => (text.as_str(), true),
                };
                match field.as_deref() {
                    None | Some("message") => {
                        let query_words: Vec<String> = words(text).into_iter().map(|word| word.text).collect();
                        if query_words.is_empty() {
                            Node::Nothing
                        } else {
                            Node::Words { words: query_words, last_is_prefix: is_prefix }
                        }
                    }
                    Some(name) => match keyword_index(name) {
                        Some(index) => Node::Keyword { index, value: lowercase(text), is_prefix },
                        None => Node::Extracted { key: name.to_owned(), value: lowercase(text), is_prefix },
                    },
                }
            }
        }
    }

    fn matches(&self, view: &RecordView<'_>) -> bool {
        match self {
            Node::All => true,
            Node::Nothing => false,
            Node::Words { words, last_is_prefix } => contains_phrase(view.message_words(), words, *last_is_prefix),
            Node::Keyword { index, value, is_prefix } => keyword_values(view.record)[*index]
                .is_some_and(|field_value| value_matches(field_value, value, *is_prefix)),
            Node::Extracted { key, value, is_prefix } => {
                view.record.fields.get(key).is_some_and(|field_value| value_matches(field_value, value, *is_prefix))
            }
            Node::And(children) => children.iter().all(|child| child.matches(view)),
            Node::Or(children) => children.iter().any(|child| child.matches(view)),
            Node::Not(child) => !child.matches(view),
        }
    }
}

struct RecordView<'a> {
    record: &'a LogRecord,
    message_words: OnceCell<Vec<Word>>,
}

impl RecordView<'_> {
    fn message_words(&self) -> &[Word] {
        self.message_words.get_or_init(|| words(&self.record.message))
    }
}

/// `wanted` (already lower-case) against a field value, as the index
/// compares terms.
fn value_matches(field_value: &str, wanted: &str, is_prefix: bool) -> bool {
    let indexed = lowercase(field_value);
    if is_prefix { indexed.starts_with(wanted) } else { indexed == wanted }
}

/// Whether `wanted` occurs at consecutive positions of `message` (the
/// last word as a prefix if asked).
fn contains_phrase(message: &[Word], wanted: &[String], last_is_prefix: bool) -> bool {
    let Some((last, leading)) = wanted.split_last() else {
        return false;
    };
    let word_matches = |word: &Word, index: usize| {
        if index == leading.len() {
            if last_is_prefix { word.text.starts_with(last.as_str()) } else { word.text == *last }
        } else {
            word.text == leading[index]
        }
    };
    message.iter().enumerate().any(|(start, first)| {
        if !word_matches(first, 0) {
            return false;
        }
        (1..wanted.len()).all(|index| {
            let position = first.position + index;
            // Positions only grow, so the word at `position` is at most `index` further on.
            message[start + 1..]
                .iter()
                .take(index)
                .find(|word| word.position == position)
                .is_some_and(|word| word_matches(word, index))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;

    fn record(message: &str) -> LogRecord {
        let mut record = crate::record::from_line("web-1", 1, "Web-1", "task", "stdout", message, 0);
        record.job = Some("Frontend".to_owned());
        record
    }

    fn check(query: &str, message: &str) -> bool {
        matches(&parse(query).unwrap(), &record(message))
    }

    #[test]
    fn words_phrases_fields_and_logic() {
        let line = "ERROR Failed password for root from 10.0.0.1 user=Alice";
        let cases = [
            ("", true),
            ("failed", true),
            ("FAIL*", true),
            ("ail*", false),
            ("\"failed password\"", true),
            ("\"password failed\"", false),
            ("\"failed pass*\"", false),
            ("failed.pass*", true),
            ("10.0.0.1", true),
            ("10.0.0.2", false),
            ("10.0.*", true),
            ("level:error", true),
            ("level:err*", true),
            ("node:web-1", true),
            ("node:WEB*", true),
            ("job:frontend", true),
            ("user:alice", true),
            ("user:ali*", true),
            ("user:bob", false),
            ("nosuchfield:x", false),
            ("failed -root", false),
            ("NOT nosuch", true),
            ("(nosuch OR root) node:web*", true),
            ("\"...\"", false),
            ("NOT \"...\"", true),
            ("message:\"for root\"", true),
        ];
        for (query, expected) in cases {
            assert_eq!(check(query, line), expected, "{query:?}");
        }
    }

    #[test]
    fn phrases_do_not_cross_dropped_long_words() {
        let long = "x".repeat(45);
        assert!(!check("\"a b\"", &format!("a {long} b")));
        assert!(check("a b", &format!("a {long} b")));
        assert!(check("\"a b\"", "a, b"));
    }
}
