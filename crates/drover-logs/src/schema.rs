//! The tantivy schema of a partition, how a record becomes a document and
//! how a parsed query becomes a tantivy query.
//!
//! Layout, chosen for search speed and disk size:
//!
//! - `message`: full text (tantivy's default tokenizer: split on
//!   non-alphanumerics, lower case, words over 40 bytes dropped), with
//!   positions for phrases; not stored.
//! - `node`, `hostgroup`, `environment`, `job`, `group`, `task`, `alloc`,
//!   `source`, `stream`, `level`, `origin`: whole values, lower-cased for
//!   matching ([`KEYWORD_TOKENIZER`]); fast fields keep the original value
//!   for counting.
//! - `fields`: a JSON object of the extracted fields, indexed like the
//!   keyword fields, fast for counting.
//! - `timestamp` (`i64`, indexed and fast) and `row` (`u64`, fast): the sort
//!   key, newest first. `row` numbers the documents of a partition in
//!   ingest order; records with the same timestamp are in the same
//!   partition, so `(timestamp, row)` is unique in the store.
//! - `record`: the whole record as JSON bytes, stored (zstd-compressed
//!   blocks); nothing else is stored.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, FuzzyTermQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};

use crate::query::{Expr, Value};
use crate::record::LogRecord;

/// The tokenizer of keyword fields and extracted fields: the whole value, lower-cased.
pub const KEYWORD_TOKENIZER: &str = "drover_keyword";

/// The fields matched as whole values, in schema order.
pub const KEYWORD_FIELDS: [&str; 11] =
    ["origin", "node", "hostgroup", "environment", "job", "group", "task", "alloc", "source", "stream", "level"];

/// The fields of one partition's schema.
#[derive(Debug, Clone)]
pub(crate) struct LogSchema {
    pub schema: Schema,
    pub message: Field,
    /// In the order of [`KEYWORD_FIELDS`].
    pub keywords: [Field; KEYWORD_FIELDS.len()],
    pub fields: Field,
    pub timestamp: Field,
    pub row: Field,
    pub record: Field,
}

impl LogSchema {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let message_indexing = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let message = builder.add_text_field("message", TextOptions::default().set_indexing_options(message_indexing));
        let keyword_indexing =
            TextFieldIndexing::default().set_tokenizer(KEYWORD_TOKENIZER).set_index_option(IndexRecordOption::Basic);
        let keyword_options = TextOptions::default().set_indexing_options(keyword_indexing.clone()).set_fast("raw");
        let keywords = KEYWORD_FIELDS.map(|name| builder.add_text_field(name, keyword_options.clone()));
        let fields = builder.add_json_field(
            "fields",
            JsonObjectOptions::default().set_indexing_options(keyword_indexing).set_fast("raw"),
        );
        let timestamp = builder.add_i64_field("timestamp", INDEXED | FAST);
        let row = builder.add_u64_field("row", FAST);
        let record = builder.add_bytes_field("record", STORED);
        LogSchema { schema: builder.build(), message, keywords, fields, timestamp, row, record }
    }

    /// The keyword field called `name`, if it is one.
    pub fn keyword(&self, name: &str) -> Option<Field> {
        KEYWORD_FIELDS.iter().position(|keyword| *keyword == name).map(|index| self.keywords[index])
    }

    /// The document of `record`, numbered `row` in its partition.
    pub fn document(&self, record: &LogRecord, row: u64) -> tantivy::Result<tantivy::TantivyDocument> {
        let mut document = tantivy::TantivyDocument::new();
        document.add_text(self.message, &record.message);
        let keyword_values: [Option<&str>; KEYWORD_FIELDS.len()] = [
            Some(&record.origin),
            Some(&record.node),
            record.hostgroup.as_deref(),
            record.environment.as_deref(),
            record.job.as_deref(),
            record.group.as_deref(),
            record.task.as_deref(),
            record.alloc.as_deref(),
            Some(&record.source),
            Some(&record.stream),
            record.level.as_deref(),
        ];
        for (field, value) in self.keywords.iter().zip(keyword_values) {
            if let Some(value) = value {
                document.add_text(*field, value);
            }
        }
        if !record.fields.is_empty() {
            let object = record
                .fields
                .iter()
                .map(|(key, value)| (key.clone(), tantivy::schema::OwnedValue::Str(value.clone())))
                .collect();
            document.add_object(self.fields, object);
        }
        document.add_i64(self.timestamp, record.timestamp);
        document.add_u64(self.row, row);
        let bytes = serde_json::to_vec(record)
            .map_err(|error| tantivy::TantivyError::InternalError(format!("cannot encode a record: {error}")))?;
        document.add_bytes(self.record, &bytes);
        Ok(document)
    }

    /// The fast-field column that holds `field` for counting, or `None` for
    /// a field that cannot be counted (the message).
    pub fn count_column(&self, field: &str) -> Option<String> {
        if self.keyword(field).is_some() {
            Some(field.to_owned())
        } else if field == "message" || !crate::query::is_field_name(field) {
            None
        } else {
            Some(format!("fields.{}", escape_json_path(field)))
        }
    }

    /// The tantivy query of a parsed query.
    pub fn compile(&self, expr: &Expr) -> Box<dyn Query> {
        match expr {
            Expr::All => Box::new(AllQuery),
            Expr::Match { field, value } => self.compile_match(field.as_deref(), value),
            Expr::And(children) => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = children
                    .iter()
                    .map(|child| match child {
                        Expr::Not(inner) => (Occur::MustNot, self.compile(inner)),
                        other => (Occur::Must, self.compile(other)),
                    })
                    .collect();
                if clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Expr::Or(children) => {
                Box::new(BooleanQuery::new(children.iter().map(|child| (Occur::Should, self.compile(child))).collect()))
            }
            Expr::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.compile(inner)),
            ])),
        }
    }

    fn compile_match(&self, field: Option<&str>, value: &Value) -> Box<dyn Query> {
        let (text, is_prefix) = match value {
            Value::Word(text) | Value::Phrase(text) => (text.as_str(), false),
            Value::Prefix(text) => (text.as_str(), true),
        };
        let term = match field {
            None | Some("message") => return self.compile_full_text(text, is_prefix),
            Some(name) => match self.keyword(name) {
                Some(keyword) => Term::from_field_text(keyword, &text.to_lowercase()),
                None => {
                    let mut term = Term::from_field_json_path(self.fields, &escape_json_path(name), false);
                    term.append_type_and_str(&text.to_lowercase());
                    term
                }
            },
        };
        if is_prefix {
            Box::new(FuzzyTermQuery::new_prefix(term, 0, false))
        } else {
            Box::new(TermQuery::new(term, IndexRecordOption::Basic))
        }
    }

    fn compile_full_text(&self, text: &str, is_prefix: bool) -> Box<dyn Query> {
        let mut analyzer = message_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(self.message, &token.text));
        }
        match (terms.len(), is_prefix) {
            (0, _) => Box::new(EmptyQuery),
            (1, false) => Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
            (1, true) => Box::new(FuzzyTermQuery::new_prefix(terms.remove(0), 0, false)),
            (_, false) => Box::new(PhraseQuery::new(terms)),
            (_, true) => Box::new(PhrasePrefixQuery::new(terms)),
        }
    }

    /// `[since, until)` on the timestamp.
    pub fn time_range(&self, since: Option<i64>, until: Option<i64>) -> Option<Box<dyn Query>> {
        if since.is_none() && until.is_none() {
            return None;
        }
        let lower =
            since.map_or(Bound::Unbounded, |since| Bound::Included(Term::from_field_i64(self.timestamp, since)));
        let upper =
            until.map_or(Bound::Unbounded, |until| Bound::Excluded(Term::from_field_i64(self.timestamp, until)));
        Some(Box::new(RangeQuery::new(lower, upper)))
    }

    /// Any of these nodes (names compared case-insensitively).
    pub fn node_filter(&self, nodes: &[String]) -> Box<dyn Query> {
        let node_field = self.keywords[1];
        debug_assert_eq!(KEYWORD_FIELDS[1], "node");
        Box::new(BooleanQuery::new(
            nodes
                .iter()
                .map(|node| {
                    let query: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(node_field, &node.to_lowercase()),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, query)
                })
                .collect(),
        ))
    }
}

/// The analyzer registered as `default` by tantivy, which indexes the message.
pub(crate) fn message_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser).build()
}

/// The analyzer of keyword and extracted fields.
pub(crate) fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).build()
}

/// Dots in a key are part of the key, not nesting.
fn escape_json_path(key: &str) -> String {
    key.replace('.', "\\.")
}
