//! The tantivy collectors of the store's searches: the newest matches of
//! a page ([`NewestCollector`]), the counts of a field's values
//! ([`CountByCollector`]) and the counts per time bucket
//! ([`HistogramCollector`]). They read fast fields only; no scores.
//!
//! The `timestamp` and `row` columns they sort and bucket by are opened
//! once per segment and kept by the partition ([`SortColumns`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::index::{InvertedIndexReader, SegmentId};
use tantivy::schema::IndexRecordOption;
use tantivy::{BitSet, COLLECT_BLOCK_BUFFER_LEN, DocAddress, DocId, Score, SegmentReader};

use super::search::Cursor;
use crate::schema::CountSource;

/// The `timestamp` and `row` columns of segments, opened on first use and
/// kept: opening them by name costs more than a rare term's whole search.
#[derive(Default)]
pub(super) struct SortColumns {
    by_segment: std::sync::Mutex<HashMap<SegmentId, SegmentSortColumns>>,
}

/// The `timestamp` and `row` columns of one segment.
type SegmentSortColumns = (Column<i64>, Column<u64>);

impl SortColumns {
    fn get(&self, segment: &SegmentReader) -> tantivy::Result<SegmentSortColumns> {
        let mut by_segment = self.by_segment.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(columns) = by_segment.get(&segment.segment_id()) {
            return Ok(columns.clone());
        }
        let columns = (segment.fast_fields().i64("timestamp")?, segment.fast_fields().u64("row")?);
        by_segment.insert(segment.segment_id(), columns.clone());
        Ok(columns)
    }

    /// Forgets segments merged away (their files are freed only then).
    pub(super) fn retain_current(&self, searcher: &tantivy::Searcher) {
        let current: Vec<SegmentId> = searcher.segment_readers().iter().map(SegmentReader::segment_id).collect();
        let mut by_segment = self.by_segment.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_segment.retain(|segment_id, _| current.contains(segment_id));
    }
}

/// The newest `limit` matching documents older than `before`.
pub(super) struct NewestCollector {
    pub(super) limit: usize,
    pub(super) before: Option<Cursor>,
    pub(super) sort_columns: Arc<SortColumns>,
}

pub(super) struct NewestSegmentCollector {
    limit: usize,
    before: Option<Cursor>,
    segment_ord: u32,
    timestamps: Column<i64>,
    rows: Column<u64>,
    /// A min-heap of the newest seen so far.
    heap: BinaryHeap<Reverse<(Cursor, DocId)>>,
}

impl Collector for NewestCollector {
    type Fruit = Vec<(Cursor, DocAddress)>;
    type Child = NewestSegmentCollector;

    fn for_segment(&self, segment_ord: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        let (timestamps, rows) = self.sort_columns.get(segment)?;
        Ok(NewestSegmentCollector {
            limit: self.limit,
            before: self.before,
            segment_ord,
            timestamps,
            rows,
            heap: BinaryHeap::with_capacity(self.limit.min(4096) + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<(Cursor, DocAddress)> = fruits.into_iter().flatten().collect();
        all.sort_unstable_by_key(|(cursor, _)| Reverse(*cursor));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for NewestSegmentCollector {
    type Fruit = Vec<(Cursor, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.limit == 0 {
            return;
        }
        let cursor = Cursor {
            timestamp: self.timestamps.first(doc).unwrap_or_default(),
            row: self.rows.first(doc).unwrap_or_default(),
        };
        if self.before.is_some_and(|before| cursor >= before) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((cursor, doc)));
        } else if let Some(Reverse((oldest, _))) = self.heap.peek()
            && cursor > *oldest
        {
            self.heap.pop();
            self.heap.push(Reverse((cursor, doc)));
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if docs.len() > COLLECT_BLOCK_BUFFER_LEN {
            for chunk in docs.chunks(COLLECT_BLOCK_BUFFER_LEN) {
                self.collect_block(chunk);
            }
            return;
        }
        if self.limit == 0 {
            return;
        }
        let mut timestamps = [None; COLLECT_BLOCK_BUFFER_LEN];
        let timestamps = &mut timestamps[..docs.len()];
        self.timestamps.first_vals(docs, timestamps);
        for (doc, timestamp) in docs.iter().zip(timestamps.iter()) {
            let timestamp = timestamp.unwrap_or_default();
            // Most records of a full heap are older than its oldest: skip
            // them before reading their row.
            if self.heap.len() == self.limit
                && let Some(Reverse((oldest, _))) = self.heap.peek()
                && timestamp < oldest.timestamp
            {
                continue;
            }
            self.collect(*doc, 0.0);
        }
    }

    fn harvest(self) -> Self::Fruit {
        let segment_ord = self.segment_ord;
        self.heap.into_iter().map(|Reverse((cursor, doc))| (cursor, DocAddress::new(segment_ord, doc))).collect()
    }
}

/// Counts of the values of one field: from its string fast-field column,
/// or from its terms for a field without one.
pub(super) struct CountByCollector {
    pub(super) source: CountSource,
}

pub(super) enum CountBySegmentCollector {
    Column { column: Option<StrColumn>, counts: Vec<u64> },
    Terms { inverted_index: Arc<InvertedIndexReader>, matching: BitSet },
}

impl Collector for CountByCollector {
    type Fruit = HashMap<String, u64>;
    type Child = CountBySegmentCollector;

    fn for_segment(&self, _segment_ord: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(match &self.source {
            CountSource::Column(name) => {
                let column = segment.fast_fields().str(name)?;
                let num_terms = column.as_ref().map_or(0, |column| column.num_terms());
                CountBySegmentCollector::Column { column, counts: vec![0; num_terms] }
            }
            CountSource::Terms(field) => CountBySegmentCollector::Terms {
                inverted_index: segment.inverted_index(*field)?,
                matching: BitSet::with_max_value(segment.max_doc()),
            },
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged: HashMap<String, u64> = HashMap::new();
        for fruit in fruits {
            for (value, count) in fruit {
                *merged.entry(value).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for CountBySegmentCollector {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        match self {
            CountBySegmentCollector::Column { column: Some(column), counts } => {
                // A record has one value per field; the check for repeats
                // guards multi-valued JSON without allocating for the others.
                let mut seen: Vec<u64> = Vec::new();
                for ord in column.term_ords(doc) {
                    if seen.contains(&ord) {
                        continue;
                    }
                    if let Some(count) = usize::try_from(ord).ok().and_then(|index| counts.get_mut(index)) {
                        *count += 1;
                    }
                    seen.push(ord);
                }
            }
            CountBySegmentCollector::Column { column: None, .. } => {}
            CountBySegmentCollector::Terms { matching, .. } => {
                matching.insert(doc);
            }
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if docs.len() > COLLECT_BLOCK_BUFFER_LEN {
            for chunk in docs.chunks(COLLECT_BLOCK_BUFFER_LEN) {
                self.collect_block(chunk);
            }
            return;
        }
        let CountBySegmentCollector::Column { column: Some(column), counts } = self else {
            for doc in docs {
                self.collect(*doc, 0.0);
            }
            return;
        };
        if column.ords().get_cardinality() == Cardinality::Multivalued {
            for doc in docs {
                self.collect(*doc, 0.0);
            }
            return;
        }
        let mut ords = [None; COLLECT_BLOCK_BUFFER_LEN];
        let ords = &mut ords[..docs.len()];
        column.ords().first_vals(docs, ords);
        for ord in ords.iter().flatten() {
            if let Some(count) = usize::try_from(*ord).ok().and_then(|index| counts.get_mut(index)) {
                *count += 1;
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut fruit = HashMap::new();
        match self {
            CountBySegmentCollector::Column { column: None, .. } => {}
            CountBySegmentCollector::Column { column: Some(column), counts } => {
                for (ord, count) in counts.iter().enumerate() {
                    if *count == 0 {
                        continue;
                    }
                    let mut value = String::new();
                    if column.ord_to_str(ord as u64, &mut value).unwrap_or(false) {
                        fruit.insert(value, *count);
                    }
                }
            }
            CountBySegmentCollector::Terms { inverted_index, matching } => {
                if let Err(error) = count_terms(&inverted_index, &matching, &mut fruit) {
                    // `harvest` cannot fail; a segment that cannot be read
                    // here could not have been searched either.
                    tracing::warn!(%error, "cannot count the terms of a log segment");
                }
            }
        }
        fruit
    }
}

/// For every term of the field, how many of the `matching` documents have it.
fn count_terms(
    inverted_index: &InvertedIndexReader,
    matching: &BitSet,
    counts: &mut HashMap<String, u64>,
) -> std::io::Result<()> {
    if matching.len() == 0 {
        return Ok(());
    }
    let mut terms = inverted_index.terms().stream()?;
    while terms.advance() {
        let mut postings = inverted_index.read_block_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
        let mut count = 0u64;
        loop {
            let docs = postings.docs();
            if docs.is_empty() {
                break;
            }
            count += docs.iter().filter(|doc| matching.contains(**doc)).count() as u64;
            postings.advance();
        }
        if count > 0 {
            counts.insert(String::from_utf8_lossy(terms.key()).into_owned(), count);
        }
    }
    Ok(())
}

/// Counts per time bucket.
pub(super) struct HistogramCollector {
    pub(super) bucket_nanos: i64,
    pub(super) sort_columns: Arc<SortColumns>,
}

pub(super) struct HistogramSegmentCollector {
    bucket_nanos: i64,
    timestamps: Column<i64>,
    counts: HashMap<i64, u64>,
}

impl Collector for HistogramCollector {
    type Fruit = HashMap<i64, u64>;
    type Child = HistogramSegmentCollector;

    fn for_segment(&self, _segment_ord: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(HistogramSegmentCollector {
            bucket_nanos: self.bucket_nanos,
            timestamps: self.sort_columns.get(segment)?.0,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged: HashMap<i64, u64> = HashMap::new();
        for fruit in fruits {
            for (bucket, count) in fruit {
                *merged.entry(bucket).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for HistogramSegmentCollector {
    type Fruit = HashMap<i64, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(timestamp) = self.timestamps.first(doc) {
            let bucket = timestamp - timestamp.rem_euclid(self.bucket_nanos);
            *self.counts.entry(bucket).or_default() += 1;
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if docs.len() > COLLECT_BLOCK_BUFFER_LEN {
            for chunk in docs.chunks(COLLECT_BLOCK_BUFFER_LEN) {
                self.collect_block(chunk);
            }
            return;
        }
        let mut timestamps = [None; COLLECT_BLOCK_BUFFER_LEN];
        let timestamps = &mut timestamps[..docs.len()];
        self.timestamps.first_vals(docs, timestamps);
        // Records are mostly in time order: count runs of one bucket.
        let mut run: Option<(i64, u64)> = None;
        for timestamp in timestamps.iter().flatten() {
            let bucket = timestamp - timestamp.rem_euclid(self.bucket_nanos);
            match &mut run {
                Some((run_bucket, run_count)) if *run_bucket == bucket => *run_count += 1,
                _ => {
                    if let Some((run_bucket, run_count)) = run {
                        *self.counts.entry(run_bucket).or_default() += run_count;
                    }
                    run = Some((bucket, 1));
                }
            }
        }
        if let Some((run_bucket, run_count)) = run {
            *self.counts.entry(run_bucket).or_default() += run_count;
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.counts
    }
}
