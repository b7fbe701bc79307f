//! drover's centralised logs: the record ([`LogRecord`]), line enrichment
//! ([`parse::enrich`]), the query language ([`query`]) and the
//! time-partitioned tantivy store ([`LogStore`]).
//!
//! Times are `i64` nanoseconds since the Unix epoch, UTC, everywhere.

mod error;
pub mod parse;
pub mod query;
pub mod record;
mod schema;
pub mod store;

pub use error::{Error, Result};
pub use record::LogRecord;
pub use schema::KEYWORD_FIELDS;
pub use store::{
    Cursor, Filter, IngestOutcome, LogStore, Retention, RetentionOutcome, SearchPage, SearchRequest, StoreConfig,
};
