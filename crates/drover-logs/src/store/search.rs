//! What the store answers: a page of records ([`LogStore::search`]), the
//! counts of a field's values ([`LogStore::count_by`]) and a histogram
//! ([`LogStore::histogram`]), with their requests and answers.
//!
//! A filter is compiled once into a tantivy query (with and without its
//! time range), then each partition that may hold matches is searched on
//! its own, newest first, under [`super::damage`]'s guard: a partition that
//! fails is left out of the answer and named in it. Searches take `&self`
//! and may run on several threads at once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError};

use tantivy::DocAddress;
use tantivy::query::{BooleanQuery, Occur, Query};

use super::collector::{CountByCollector, HistogramCollector};
use super::damage::{DamagedPartition, guarded};
use super::partition::Partition;
use super::{LogStore, index_error};
use crate::error::{Error, Result};
use crate::query;
use crate::record::LogRecord;

/// Which records a search, count or histogram looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The query text (see [`crate::query`]); empty matches every record.
    pub query: String,
    /// Only records at or after this time (nanoseconds since the epoch).
    pub since: Option<i64>,
    /// Only records before this time (nanoseconds since the epoch).
    pub until: Option<i64>,
    /// Only records of these nodes (case-insensitive); `None` for all.
    pub nodes: Option<Vec<String>>,
    /// Which copies: with log replication a server holds the lines its own
    /// agents sent (originals) and copies other servers sent it.
    pub copies: Copies,
}

/// Which of a server's records a filter looks at. With log replication
/// each line is held by two servers: as an original by the one its agent
/// sent it to, as a replica by another. Counting each line once means
/// counting the originals of every server that answers and, for a server
/// that does not, the replicas of its lines the others hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Copies {
    /// Every record, originals and replicas.
    #[default]
    All,
    /// The records this store was given as originals
    /// ([`LogStore::ingest`]), and every record of a partition written
    /// before replicas were marked.
    Originals,
    /// The replicas kept for these servers ([`LogStore::ingest_copies`]).
    ReplicasOf(Vec<u64>),
}

impl Filter {
    /// A filter of the query text alone.
    pub fn query(text: &str) -> Self {
        Filter { query: text.to_owned(), ..Filter::default() }
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// Which records.
    pub filter: Filter,
    /// At most this many records on the page.
    pub limit: usize,
    /// Only records older than this cursor (the `next_cursor` of the
    /// previous page); `None` for the newest.
    pub before: Option<Cursor>,
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Newest first.
    pub records: Vec<LogRecord>,
    /// The position of each record (same order): a server merging pages of
    /// several stores continues each store after the last record it used.
    pub cursors: Vec<Cursor>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
    /// How many records match the filter in all (on every page), in the
    /// partitions that could be read.
    pub total_matching: u64,
    /// The partitions that could not be read, left out of this answer.
    pub damaged: Vec<DamagedPartition>,
}

/// The answer to [`LogStore::count_by`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldCounts {
    /// `(value, count)`, most frequent first (ties by value).
    pub counts: Vec<(String, u64)>,
    /// The partitions that could not be read, left out of the counts.
    pub damaged: Vec<DamagedPartition>,
}

/// The answer to [`LogStore::histogram`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `(bucket start, count)` of every bucket with a record, oldest first.
    pub buckets: Vec<(i64, u64)>,
    /// The partitions that could not be read, left out of the counts.
    pub damaged: Vec<DamagedPartition>,
}

/// A position in the newest-first order of records: `(timestamp, row)`.
///
/// Written as `TIMESTAMP-ROW` (two decimal numbers, the timestamp possibly
/// negative), e.g. `1704164645000000000-17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The record's timestamp.
    pub timestamp: i64,
    /// The record's row in its partition.
    pub row: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.timestamp, self.row)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidCursor { cursor: text.to_owned() };
        let (timestamp, row) = text.rsplit_once('-').ok_or_else(invalid)?;
        Ok(Cursor { timestamp: timestamp.parse().map_err(|_| invalid())?, row: row.parse().map_err(|_| invalid())? })
    }
}

/// A filter's query, with and without its time range: a partition that
/// lies wholly inside the range skips the range (a scan of the timestamps).
struct CompiledFilter {
    without_time: Box<dyn Query>,
    with_time: Option<Box<dyn Query>>,
    /// The same for partitions written before replicas were marked (they
    /// have no `replica_of` field, and a query must not name it there).
    unmarked_without_time: Box<dyn Query>,
    unmarked_with_time: Option<Box<dyn Query>>,
    since: Option<i64>,
    until: Option<i64>,
}

impl CompiledFilter {
    fn for_partition(&self, partition: &Partition, span_nanos: i64) -> &dyn Query {
        let (without_time, with_time) = if partition.marks_replicas {
            (&self.without_time, &self.with_time)
        } else {
            (&self.unmarked_without_time, &self.unmarked_with_time)
        };
        let Some(with_time) = with_time else {
            return without_time.as_ref();
        };
        let starts_inside = self.since.is_none_or(|since| since <= partition.start);
        let ends_inside = self.until.is_none_or(|until| partition.start.saturating_add(span_nanos) <= until);
        if starts_inside && ends_inside { without_time.as_ref() } else { with_time.as_ref() }
    }
}

impl LogStore {
    /// The partitions that may hold records of `[since, until)`, newest first.
    fn partitions_in(&self, since: Option<i64>, until: Option<i64>) -> impl Iterator<Item = &Partition> {
        let span = self.span_nanos;
        self.partitions.values().rev().filter(move |partition| {
            since.is_none_or(|since| partition.start.saturating_add(span) > since)
                && until.is_none_or(|until| partition.start < until)
        })
    }

    /// The tantivy query of a filter, per partition.
    fn compile(&self, filter: &Filter) -> Result<CompiledFilter> {
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since > until
        {
            return Err(Error::InvalidRequest(format!(
                "the time range starts ({since}) after it ends ({until}): swap --since and --until"
            )));
        }
        let expr = query::parse(&filter.query)?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, self.schema.compile(&expr))];
        if let Some(nodes) = &filter.nodes {
            clauses.push((Occur::Must, self.schema.node_filter(nodes)));
        }
        let copy = |clauses: &[(Occur, Box<dyn Query>)]| -> Vec<(Occur, Box<dyn Query>)> {
            clauses.iter().map(|(occur, query)| (*occur, query.box_clone())).collect()
        };
        // A single clause goes unwrapped: a term query's count is then its
        // document frequency, where a boolean query would visit every match.
        let combined = |mut clauses: Vec<(Occur, Box<dyn Query>)>| -> Box<dyn Query> {
            if clauses.len() == 1 { clauses.remove(0).1 } else { Box::new(BooleanQuery::new(clauses)) }
        };
        let time_range = || self.schema.time_range(filter.since, filter.until);
        // Unmarked partitions hold originals only.
        let unmarked_clauses = match filter.copies {
            Copies::ReplicasOf(_) => vec![(Occur::Must, Box::new(tantivy::query::EmptyQuery) as Box<dyn Query>)],
            Copies::All | Copies::Originals => copy(&clauses),
        };
        let unmarked_without_time = combined(copy(&unmarked_clauses));
        let unmarked_with_time = time_range().map(|range| {
            let mut clauses = unmarked_clauses;
            clauses.push((Occur::Must, range));
            combined(clauses)
        });
        clauses.extend(self.schema.copies_clause(&filter.copies));
        let without_time = combined(copy(&clauses));
        let with_time = time_range().map(|range| {
            clauses.push((Occur::Must, range));
            combined(clauses)
        });
        Ok(CompiledFilter {
            without_time,
            with_time,
            unmarked_without_time,
            unmarked_with_time,
            since: filter.since,
            until: filter.until,
        })
    }

    /// The partitions that may hold records of `[since, until)` and can be
    /// read, newest first; those known to be damaged go to `damaged`.
    fn readable_partitions_in(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        damaged: &mut Vec<DamagedPartition>,
    ) -> Vec<&Partition> {
        let known_damaged = self.damaged.lock().unwrap_or_else(PoisonError::into_inner);
        let mut readable = Vec::new();
        for partition in self.partitions_in(since, until) {
            match known_damaged.get(&partition.start) {
                Some(damage) => damaged.push(damage.clone()),
                None => readable.push(partition),
            }
        }
        readable
    }

    /// One page of the records matching the request, newest first. A
    /// partition that cannot be read is left out and named in `damaged`.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage> {
        let compiled = self.compile(&request.filter)?;
        let limit = request.limit;
        let mut damaged = Vec::new();
        let partitions = self.readable_partitions_in(request.filter.since, request.filter.until, &mut damaged);
        let mut candidates: Vec<(Cursor, usize, DocAddress)> = Vec::new();
        // Per partition (same order), its matching records.
        let mut num_matching_per_partition = vec![0u64; partitions.len()];
        for (partition_index, partition) in partitions.iter().enumerate() {
            // Partitions come newest first and do not overlap in time: once
            // a page and one more are found, older partitions are only counted.
            let num_wanted = if limit == 0 || candidates.len() > limit { 0 } else { limit.saturating_add(1) };
            let query = compiled.for_partition(partition, self.span_nanos);
            match guarded(|| partition.search(query, request.before, num_wanted)) {
                Ok((num_matching, newest)) => {
                    num_matching_per_partition[partition_index] = num_matching;
                    candidates.extend(newest.into_iter().map(|(cursor, address)| (cursor, partition_index, address)));
                }
                Err(failure) => damaged.push(self.note_failure(partition, failure)),
            }
        }
        candidates.sort_unstable_by_key(|(cursor, _, _)| Reverse(*cursor));
        let has_more = candidates.len() > limit;
        candidates.truncate(limit);
        let next_cursor = if has_more { candidates.last().map(|(cursor, _, _)| *cursor) } else { None };
        let mut fetched: Vec<(Cursor, usize, LogRecord)> = Vec::with_capacity(candidates.len());
        let mut failed = vec![false; partitions.len()];
        for (cursor, partition_index, address) in candidates {
            if failed[partition_index] {
                continue;
            }
            let partition = partitions[partition_index];
            match guarded(|| partition.fetch_record(self.schema.record, address, cursor.timestamp)) {
                Ok(record) => fetched.push((cursor, partition_index, record)),
                Err(failure) => {
                    failed[partition_index] = true;
                    damaged.push(self.note_failure(partition, failure));
                }
            }
        }
        // A partition whose records cannot all be read is left out whole,
        // as one whose search failed.
        fetched.retain(|(_, partition_index, _)| !failed[*partition_index]);
        let total_matching = num_matching_per_partition
            .iter()
            .zip(&failed)
            .filter(|(_, failed)| !**failed)
            .map(|(num_matching, _)| num_matching)
            .sum();
        let (cursors, records) = fetched.into_iter().map(|(cursor, _, record)| (cursor, record)).unzip();
        Ok(SearchPage { records, cursors, next_cursor, total_matching, damaged })
    }

    /// The `top_n` most frequent values of `field` among the matching
    /// records, most frequent first (ties by value). `field` is a keyword
    /// field (`node`, `job`, `level`, …) or an extracted field; records
    /// without the field are not counted. A partition that cannot be read
    /// is left out and named in `damaged`.
    pub fn count_by(&self, filter: &Filter, field: &str, top_n: usize) -> Result<FieldCounts> {
        let Some(source) = self.schema.count_source(field) else {
            return Err(Error::InvalidRequest(format!(
                "cannot count by {field:?}: use node, job, level, another record field or an extracted field"
            )));
        };
        let compiled = self.compile(filter)?;
        let collector = CountByCollector { source };
        let mut damaged = Vec::new();
        let mut counts: HashMap<String, u64> = HashMap::new();
        for partition in self.readable_partitions_in(filter.since, filter.until, &mut damaged) {
            let counted = guarded(|| {
                let searcher = partition.reader.searcher();
                let query = compiled.for_partition(partition, self.span_nanos);
                searcher.search(query, &collector).map_err(index_error(&partition.path))
            });
            match counted {
                Ok(partition_counts) => {
                    for (value, count) in partition_counts {
                        *counts.entry(value).or_default() += count;
                    }
                }
                Err(failure) => damaged.push(self.note_failure(partition, failure)),
            }
        }
        let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
        sorted.sort_unstable_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
        sorted.truncate(top_n);
        Ok(FieldCounts { counts: sorted, damaged })
    }

    /// How many records match per time bucket of `bucket_nanos`: the start
    /// of every bucket with at least one record, oldest first. Buckets are
    /// aligned on multiples of `bucket_nanos` since the epoch. A partition
    /// that cannot be read is left out and named in `damaged`.
    pub fn histogram(&self, filter: &Filter, bucket_nanos: i64) -> Result<Histogram> {
        if bucket_nanos <= 0 {
            return Err(Error::InvalidRequest(format!(
                "histogram bucket of {bucket_nanos} ns: use a positive duration such as 5m"
            )));
        }
        let compiled = self.compile(filter)?;
        let mut damaged = Vec::new();
        let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
        for partition in self.readable_partitions_in(filter.since, filter.until, &mut damaged) {
            let counted = guarded(|| {
                let collector = HistogramCollector { bucket_nanos, sort_columns: Arc::clone(&partition.sort_columns) };
                let searcher = partition.reader.searcher();
                let query = compiled.for_partition(partition, self.span_nanos);
                searcher.search(query, &collector).map_err(index_error(&partition.path))
            });
            match counted {
                Ok(partition_counts) => {
                    for (bucket, count) in partition_counts {
                        *counts.entry(bucket).or_default() += count;
                    }
                }
                Err(failure) => damaged.push(self.note_failure(partition, failure)),
            }
        }
        Ok(Histogram { buckets: counts.into_iter().collect(), damaged })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for cursor in [Cursor { timestamp: -5, row: 3 }, Cursor { timestamp: 1_704_164_400_000_000_000, row: 0 }] {
            assert_eq!(cursor.to_string().parse::<Cursor>().ok(), Some(cursor));
        }
        assert!("12".parse::<Cursor>().is_err());
        assert!("a-b".parse::<Cursor>().is_err());
    }
}
