//! The tantivy schema of a partition, how a record becomes a document and
//! how a parsed query becomes a tantivy query.
//!
//! Layout, chosen for search speed and disk size:
//!
//! - `message`: full text ([`crate::tokenizer`]: split on
//!   non-alphanumerics, lower case, words of 40 bytes or more dropped), with
//!   positions for phrases; not stored.
//! - `node`, `hostgroup`, `environment`, `job`, `group`, `task`, `alloc`,
//!   `source`, `stream`, `level`, `origin`: whole values, lower-cased for
//!   matching ([`crate::tokenizer`]), without frequencies or positions.
//!   The fields one counts by ([`FAST_KEYWORD_FIELDS`]: node, job, level,
//!   …) also have a fast field that keeps the original value for counting;
//!   `origin`, `alloc`, `source` and `stream` do not (a fast field is a
//!   tenth of the cost of indexing a record): counting by them walks
//!   their terms instead and gives lower-cased values.
//! - `fields`: a JSON object of the extracted fields, indexed like the
//!   keyword fields, fast for counting.
//! - `timestamp` (`i64`, fast) and `row` (`u64`, fast): the sort key, newest
//!   first. `row` numbers the documents of a partition in ingest order;
//!   records with the same timestamp are in the same partition, so
//!   `(timestamp, row)` is unique in the store. Time ranges are answered
//!   from the fast field (format version 1 also indexed every timestamp as
//!   a term: a term and a posting list per record, a tenth of the disk).
//! - `record`: the whole record as one compact blob ([`crate::codec`]),
//!   stored (zstd-compressed blocks); nothing else is stored.
//!
//! - `replica_of`: only on a copy another server sent for safekeeping
//!   (log replication, docs/logs.md): the terms `any` and the id of the
//!   server that received the line from its agent. Not stored; the record
//!   blob of a copy is the same as the original's. Partitions written
//!   before it existed lack the field: every record in them is an original.
//!
//! No field has field norms: results are ordered by time, never scored, so
//! the byte per field and record that norms cost would buy nothing.
//!
//! The fields keep the order of format version 1, so a [`Field`] of this
//! schema names the same field in a partition written by version 1.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, EnableScoring, Explanation, FuzzyTermQuery, Occur, PhrasePrefixQuery,
    PhraseQuery, Query, RangeQuery, Scorer, TermQuery, Weight,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, JsonObjectOptions, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DocId, DocSet, Score, SeekDangerResult, SegmentReader, Term};

use crate::query::{Expr, Value};
use crate::record::LogRecord;
use crate::tokenizer::{KEYWORD_TOKENIZER, WORD_TOKENIZER, lowercase, word_analyzer};

/// A phrase ending in a prefix (`"failed pass*"` written `failed.pass*`)
/// matches the first this many words with the prefix, in each segment.
pub const MAX_PHRASE_PREFIX_WORDS: u32 = 1024;

/// The keyword fields with a fast field, for counting.
pub const FAST_KEYWORD_FIELDS: [&str; 7] = ["node", "hostgroup", "environment", "job", "group", "task", "level"];

/// Where [`crate::LogStore::count_by`] reads a field's values.
#[derive(Debug, Clone)]
pub(crate) enum CountSource {
    /// A string fast field (original values).
    Column(String),
    /// The terms of an indexed field (lower-cased values).
    Terms(Field),
}

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
    pub replica_of: Field,
}

/// The term every replica copy has in `replica_of`, next to its
/// primary's id.
const ANY_REPLICA: &str = "any";

impl LogSchema {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let message_indexing = TextFieldIndexing::default()
            .set_tokenizer(WORD_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false);
        let message = builder.add_text_field("message", TextOptions::default().set_indexing_options(message_indexing));
        let keyword_indexing = TextFieldIndexing::default()
            .set_tokenizer(KEYWORD_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false);
        let keyword_options = TextOptions::default().set_indexing_options(keyword_indexing.clone());
        let keywords = KEYWORD_FIELDS.map(|name| {
            let options = if FAST_KEYWORD_FIELDS.contains(&name) {
                keyword_options.clone().set_fast("raw")
            } else {
                keyword_options.clone()
            };
            builder.add_text_field(name, options)
        });
        let fields = builder.add_json_field(
            "fields",
            JsonObjectOptions::default().set_indexing_options(keyword_indexing).set_fast("raw"),
        );
        let timestamp = builder.add_i64_field("timestamp", FAST);
        let row = builder.add_u64_field("row", FAST);
        let record = builder.add_bytes_field("record", STORED);
        let replica_of = builder.add_text_field("replica_of", keyword_options);
        LogSchema { schema: builder.build(), message, keywords, fields, timestamp, row, record, replica_of }
    }

    /// The keyword field called `name`, if it is one.
    pub fn keyword(&self, name: &str) -> Option<Field> {
        keyword_index(name).map(|index| self.keywords[index])
    }

    /// The document of `record`, numbered `row` in its partition, a copy
    /// kept for server `replica_of` when it is one; `blob` is scratch space
    /// for the stored form.
    pub fn document(
        &self,
        record: &LogRecord,
        row: u64,
        replica_of: Option<u64>,
        blob: &mut Vec<u8>,
    ) -> tantivy::TantivyDocument {
        let mut document = tantivy::TantivyDocument::new();
        if let Some(primary) = replica_of {
            document.add_text(self.replica_of, ANY_REPLICA);
            document.add_text(self.replica_of, primary.to_string());
        }
        document.add_text(self.message, &record.message);
        let keyword_values = keyword_values(record);
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
        blob.clear();
        crate::codec::encode(record, blob);
        document.add_bytes(self.record, blob.as_slice());
        document
    }

    /// Where the values of `field` are counted from, or `None` for a field
    /// that cannot be counted (the message).
    pub fn count_source(&self, field: &str) -> Option<CountSource> {
        if let Some(keyword) = self.keyword(field) {
            if FAST_KEYWORD_FIELDS.contains(&field) {
                Some(CountSource::Column(field.to_owned()))
            } else {
                Some(CountSource::Terms(keyword))
            }
        } else if field == "message" || !crate::query::is_field_name(field) {
            None
        } else {
            Some(CountSource::Column(format!("fields.{}", escape_json_path(field))))
        }
    }

    /// The clause that keeps the `copies` a filter asks for, in a
    /// partition written with the `replica_of` field (`None`: every
    /// record). A partition without it holds originals only: see
    /// [`crate::store::Copies`] for what the store does there.
    pub fn copies_clause(&self, copies: &crate::store::Copies) -> Option<(Occur, Box<dyn Query>)> {
        let term = |text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(self.replica_of, text), IndexRecordOption::Basic))
        };
        match copies {
            crate::store::Copies::All => None,
            crate::store::Copies::Originals => Some((Occur::MustNot, term(ANY_REPLICA))),
            crate::store::Copies::ReplicasOf(servers) => {
                let query: Box<dyn Query> = match servers.as_slice() {
                    [] => Box::new(EmptyQuery),
                    [server] => term(&server.to_string()),
                    servers => Box::new(BooleanQuery::new(
                        servers.iter().map(|server| (Occur::Should, term(&server.to_string()))).collect(),
                    )),
                };
                Some((Occur::Must, query))
            }
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
                Some(keyword) => Term::from_field_text(keyword, &lowercase(text)),
                None => {
                    let mut term = Term::from_field_json_path(self.fields, &escape_json_path(name), false);
                    term.append_type_and_str(&lowercase(text));
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
        let mut analyzer = word_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(self.message, &token.text));
        }
        match (terms.len(), is_prefix) {
            (0, _) => Box::new(EmptyQuery),
            (1, false) => Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
            (1, true) => Box::new(FuzzyTermQuery::new_prefix(terms.remove(0), 0, false)),
            (_, false) => Box::new(PhraseGuard(Box::new(PhraseQuery::new(terms)))),
            (_, true) => {
                // tantivy's default stops at the first 50 words with the
                // prefix; it allocates room for all of them up front.
                let mut query = PhrasePrefixQuery::new(terms);
                query.set_max_expansions(MAX_PHRASE_PREFIX_WORDS);
                Box::new(PhraseGuard(Box::new(query)))
            }
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
                        Term::from_field_text(node_field, &lowercase(node)),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, query)
                })
                .collect(),
        ))
    }
}

/// The values of the keyword fields of `record`, in the order of [`KEYWORD_FIELDS`].
pub(crate) fn keyword_values(record: &LogRecord) -> [Option<&str>; KEYWORD_FIELDS.len()] {
    [
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
    ]
}

/// The index in [`KEYWORD_FIELDS`] of the keyword field called `name`.
pub(crate) fn keyword_index(name: &str) -> Option<usize> {
    KEYWORD_FIELDS.iter().position(|keyword| *keyword == name)
}

/// Dots in a key are part of the key, not nesting.
pub(crate) fn escape_json_path(key: &str) -> String {
    key.replace('.', "\\.")
}

/// A phrase query whose scorer answers "is this document in?" for a
/// document before the one it stands on, as tantivy's `DocSet` contract
/// allows: tantivy 0.27's phrase scorers assert against it (in debug
/// builds), and the exclusion of a boolean query (`NOT "a b"`) asks.
#[derive(Debug)]
struct PhraseGuard(Box<dyn Query>);

impl Clone for PhraseGuard {
    fn clone(&self) -> Self {
        PhraseGuard(self.0.box_clone())
    }
}

struct PhraseGuardWeight(Box<dyn Weight>);

struct PhraseGuardScorer(Box<dyn Scorer>);

impl Query for PhraseGuard {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(PhraseGuardWeight(self.0.weight(enable_scoring)?)))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.0.query_terms(visitor);
    }
}

impl Weight for PhraseGuardWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(PhraseGuardScorer(self.0.scorer(reader, boost)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }
}

impl DocSet for PhraseGuardScorer {
    fn advance(&mut self) -> DocId {
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.0.seek(target)
    }

    fn seek_danger(&mut self, target: DocId) -> SeekDangerResult {
        let doc = self.0.doc();
        if doc > target {
            // Nothing matches before the current document.
            return SeekDangerResult::SeekLowerBound(doc);
        }
        self.0.seek_danger(target)
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }

    fn cost(&self) -> u64 {
        self.0.cost()
    }
}

impl Scorer for PhraseGuardScorer {
    fn score(&mut self) -> Score {
        self.0.score()
    }
}
