//! drover's centralised logs: the record ([`LogRecord`]), line enrichment
//! ([`parse::enrich`]), the query language ([`query`]) and the
//! time-partitioned tantivy store ([`LogStore`]).
//!
//! Times are `i64` nanoseconds since the Unix epoch, UTC, everywhere.

mod codec;
mod error;
pub mod matcher;
pub mod parse;
/// The log query language; it lives with the other pure selection
/// languages in `drover-filter`, so that site files can check queries
/// without linking the index.
pub use drover_filter::log_query as query;
pub mod record;
mod schema;
pub mod store;
mod tokenizer;

pub use error::{Error, Result};
pub use matcher::matches;
pub use record::LogRecord;
pub use schema::{FAST_KEYWORD_FIELDS, KEYWORD_FIELDS, MAX_PHRASE_PREFIX_WORDS};
pub use store::{
    Compaction, Copies, Cursor, DamagedPartition, FieldCounts, Filter, Histogram, IngestOutcome, LogStore,
    QuarantinedPartition, Retention, RetentionOutcome, SearchPage, SearchRequest, StoreConfig,
};
