//! The durable, size-bounded on-disk spool between the sources and the servers.
//!
//! Why: an agent must not lose lines when the servers are unreachable or when
//! it restarts, yet must not fill the disk either. Lines are appended in
//! batches (one fsync per batch), numbered with a per-agent `seq` that is never
//! reused, shipped with [`Spool::read_from`] and deleted once acknowledged with
//! [`Spool::ack`]. When the spool is full, the oldest unacknowledged segments
//! are dropped and counted in `dropped_lines`.
//!
//! On disk, in the spool directory (format version 2):
//!
//! ```text
//! spool.meta.json                {version, next_seq, acked_upto, dropped_upto, dropped_lines,
//!                                 damaged_lines, damaged_seqs}, replaced atomically
//! seg-00000000000000000001.log   "DRSPOOL2" then frames, the first frame holding seq 1
//! seg-00000000000000004097.log   ...
//! frame = magic F7 5D 52 0A | len: u32 LE | seq: u64 LE | crc32(len ‖ seq ‖ payload): u32 LE | payload
//! ```
//!
//! Segments of version 1 (`"DRSPOOL1"`, written by older agents) are still
//! read, never appended to. Their frames are `len: u32 LE | crc32(payload):
//! u32 LE | payload`: no magic and no seq, a record's seq is its position.
//!
//! Damage. A frame that fails its checks (wrong magic, impossible length,
//! checksum mismatch, cut short) does not end its segment: the reader
//! resynchronises on the next frame that validates — the next magic whose
//! frame checks out and carries a seq above the last good one — and goes on,
//! in the running agent as after a restart. The seqs skipped are lost lines.
//! They are counted once into `dropped_lines` (and its part `damaged_lines`),
//! when a read that needs them finds them missing or when the spool is opened;
//! the counted ranges are kept in the metadata so that neither a later read
//! nor a restart counts them again. With version 2 frames the count is exact.
//! In a version 1 segment it is an estimate: a damaged stretch counts as one
//! line (exact when one frame is damaged, as with a flipped byte) unless the
//! next segment's first seq gives the true number; and damage that appears
//! in a version 1 segment after it was opened skips to the next indexed
//! record, losing (and counting) up to 256 records with it (`INDEX_STRIDE`).
//!
//! At open, bytes after a segment's last valid frame are cut off. In the
//! newest segment they are normally a write torn by a crash, whose lines were
//! never acknowledged to their sources and are read again; only records below
//! the metadata's `next_seq` (written at every acknowledgement) are known to
//! have been written, and only those count as lost. Known limit: records cut
//! from the end of the newest segment while the agent was down and written
//! after the last metadata write are neither counted nor known, and their
//! seqs are given to new lines (a server that already had them drops those).
//! And a power cut that persisted the pages of the last batch out of order
//! leaves valid records after a hole: they are shipped (their sources read
//! them again too, so they may arrive twice) and the hole counts as lost.
//!
//! Invariants: segments hold increasing seqs from the seq in their name, with
//! gaps only where records were damaged; only the newest segment is appended
//! to; every seq at or below `max(acked_upto, dropped_upto)` is gone or
//! deleted on the next open.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::checkpoint::{sync_parent_dir, write_atomically};
use crate::error::{Error, Result};

/// The header of the segments this agent writes.
const SEGMENT_MAGIC: &[u8; 8] = b"DRSPOOL2";
/// The header of the segments of older agents, still read.
const SEGMENT_MAGIC_V1: &[u8; 8] = b"DRSPOOL1";
const SEGMENT_HEADER_BYTES: u64 = 8;
/// The start of every version 2 frame, what a reader resynchronises on.
/// Bytes that neither ASCII text nor the usual small MessagePack values are made of.
const FRAME_MAGIC: [u8; 4] = [0xF7, 0x5D, 0x52, 0x0A];
/// magic, len, seq, crc.
const FRAME_HEADER_BYTES: u64 = 20;
const FRAME_HEADER_BYTES_V1: u64 = 8;
const META_FILE: &str = "spool.meta.json";
const META_VERSION: u32 = 2;
/// One sparse index entry every this many records, to find a seq without a full scan.
const INDEX_STRIDE: u64 = 256;
/// The hard upper bound of one record; larger lengths in a frame mean damage.
const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// How much of a segment a resynchronising scan reads at a time.
const SCAN_WINDOW_BYTES: usize = 64 * 1024;

/// How big the spool may grow and how it is cut into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// The total size of all segment files the spool keeps; the oldest
    /// unacknowledged segments are dropped beyond it. The newest segment is
    /// never dropped, so one batch larger than this is still kept.
    pub max_bytes: u64,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
}

impl SpoolOptions {
    /// Sixteen segments per spool, each between 64 KiB and 64 MiB.
    pub fn new(max_bytes: u64) -> SpoolOptions {
        SpoolOptions { max_bytes, segment_bytes: (max_bytes / 16).clamp(64 * 1024, 64 * 1024 * 1024) }
    }
}

/// A snapshot of the spool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// The seq the next appended record gets.
    pub next_seq: u64,
    /// Everything up to here was acknowledged (0: nothing yet).
    pub acked_upto: u64,
    /// The first seq still readable (equals `next_seq` when empty).
    pub first_available_seq: u64,
    /// Records lost unshipped since the spool was created: dropped because
    /// the spool was full, or damaged on disk (`damaged_lines`).
    pub dropped_lines: u64,
    /// The part of `dropped_lines` lost to damage on disk: records that
    /// failed their checks and were skipped (see the module documentation
    /// for when the count is an estimate).
    pub damaged_lines: u64,
    pub total_bytes: u64,
    pub num_segments: usize,
}

/// The metadata file, as persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MetaFile {
    version: u32,
    next_seq: u64,
    acked_upto: u64,
    dropped_upto: u64,
    /// All lines lost: dropped because the spool was full, plus `damaged_lines`.
    dropped_lines: u64,
    /// Version 2: the lines lost to damage.
    #[serde(default)]
    damaged_lines: u64,
    /// Version 2: the inclusive seq ranges already counted in
    /// `damaged_lines`, above the low-water mark.
    #[serde(default)]
    damaged_seqs: Vec<(u64, u64)>,
}

/// The metadata the spool changes through `&mut self`; the damage counts,
/// which reads change, live in the [`DamageLedger`].
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    next_seq: u64,
    acked_upto: u64,
    dropped_upto: u64,
    /// Lines dropped because the spool was full.
    full_dropped_lines: u64,
}

/// Seqs lost to damage, each counted once.
#[derive(Debug, Default)]
struct DamageLedger {
    /// Sorted, disjoint, inclusive ranges of the seqs counted, pruned below
    /// the low-water mark.
    counted: Vec<(u64, u64)>,
    num_lines: u64,
}

impl DamageLedger {
    /// How many seqs of `first..=last` are counted already.
    fn num_counted_within(&self, first: u64, last: u64) -> u64 {
        self.counted
            .iter()
            .map(|&(counted_first, counted_last)| {
                let overlap_first = counted_first.max(first);
                let overlap_last = counted_last.min(last);
                if overlap_first <= overlap_last { overlap_last - overlap_first + 1 } else { 0 }
            })
            .sum()
    }

    /// Counts the seqs of `first..=last` not counted yet; returns how many.
    fn count(&mut self, first: u64, last: u64) -> u64 {
        if first > last {
            return 0;
        }
        let num_new = (last - first + 1) - self.num_counted_within(first, last);
        if num_new == 0 {
            return 0;
        }
        self.num_lines += num_new;
        self.counted.push((first, last));
        self.counted.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.counted.len());
        for &(range_first, range_last) in &self.counted {
            match merged.last_mut() {
                Some(previous) if range_first <= previous.1.saturating_add(1) => {
                    previous.1 = previous.1.max(range_last);
                }
                _ => merged.push((range_first, range_last)),
            }
        }
        self.counted = merged;
        num_new
    }

    /// Forgets the ranges at or below `low_water`: those seqs are gone anyway.
    fn forget_upto(&mut self, low_water: u64) {
        self.counted.retain(|&(_, last)| last > low_water);
    }
}

/// The seqs `first_seq..=last_seq` are missing: their records are damaged or gone.
#[derive(Debug, Clone)]
struct Gap {
    first_seq: u64,
    last_seq: u64,
    /// The file and offset where the damage was met.
    path: PathBuf,
    offset: u64,
    reason: String,
}

/// How the frames of a segment are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentFormat {
    /// `len | crc | payload`, seqs implied by position (read only).
    V1,
    /// `magic | len | seq | crc | payload`.
    V2,
}

impl SegmentFormat {
    fn frame_header_bytes(self) -> u64 {
        match self {
            SegmentFormat::V1 => FRAME_HEADER_BYTES_V1,
            SegmentFormat::V2 => FRAME_HEADER_BYTES,
        }
    }
}

/// A frame's header, checked for everything but the payload's checksum.
#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    len: usize,
    /// Explicit in version 2 only.
    seq: Option<u64>,
    crc: u32,
}

impl FrameHeader {
    /// Parses a header of `format` from `bytes` (exactly its size), given
    /// that at most `max_len` bytes of payload can follow in the file.
    fn parse(format: SegmentFormat, bytes: &[u8], max_len: u64) -> std::result::Result<FrameHeader, String> {
        let read_u32 =
            |at: usize| bytes.get(at..at + 4).and_then(|word| <[u8; 4]>::try_from(word).ok()).map(u32::from_le_bytes);
        let header = match format {
            SegmentFormat::V1 => {
                let (Some(len), Some(crc)) = (read_u32(0), read_u32(4)) else {
                    return Err("short frame header".to_owned());
                };
                FrameHeader { len: len as usize, seq: None, crc }
            }
            SegmentFormat::V2 => {
                if bytes.get(..4) != Some(FRAME_MAGIC.as_slice()) {
                    return Err("no frame magic".to_owned());
                }
                let seq = bytes.get(8..16).and_then(|word| <[u8; 8]>::try_from(word).ok()).map(u64::from_le_bytes);
                let (Some(len), Some(seq), Some(crc)) = (read_u32(4), seq, read_u32(16)) else {
                    return Err("short frame header".to_owned());
                };
                FrameHeader { len: len as usize, seq: Some(seq), crc }
            }
        };
        if header.len > MAX_RECORD_BYTES {
            return Err(format!("length {} exceeds the maximum", header.len));
        }
        if header.len as u64 > max_len {
            return Err(format!("length {} runs past the end of the file", header.len));
        }
        Ok(header)
    }

    fn checksum_matches(&self, payload: &[u8]) -> bool {
        let checksum = match self.seq {
            None => crc32fast::hash(payload),
            Some(seq) => frame_checksum(self.len as u32, seq, payload),
        };
        checksum == self.crc
    }
}

/// The checksum of a version 2 frame: it covers the length and the seq too,
/// so a frame found while resynchronising is trusted whole.
fn frame_checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    format: SegmentFormat,
    first_seq: u64,
    /// One past the last seq this segment holds (or held, before damage).
    end_seq: u64,
    /// Valid records in the file.
    num_records: u64,
    /// The file length, header included.
    bytes: u64,
    /// `(seq, offset)` of every `INDEX_STRIDE`-th record and of the first
    /// valid record after each damaged stretch found at open, by seq.
    index: Vec<(u64, u64)>,
}

impl Segment {
    fn record_indexed(&mut self, seq: u64, offset: u64) {
        if (seq - self.first_seq).is_multiple_of(INDEX_STRIDE) {
            self.index.push((seq, offset));
        }
    }

    /// The offset of an indexed record at or before `seq`.
    fn seek_point(&self, seq: u64) -> (u64, u64) {
        let position = self.index.partition_point(|&(indexed_seq, _)| indexed_seq <= seq);
        match position.checked_sub(1).and_then(|slot| self.index.get(slot)) {
            Some(&point) => point,
            None => (self.first_seq, SEGMENT_HEADER_BYTES),
        }
    }
}

/// The spool. One per agent; not shared between processes.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    options: SpoolOptions,
    segments: VecDeque<Segment>,
    /// The open writer of the newest segment, if appending may continue there.
    active: Option<File>,
    meta: Meta,
    /// Damage found by reads, which take `&self`, hence the lock. Never held
    /// while another lock is taken.
    damage: Mutex<DamageLedger>,
    total_bytes: u64,
    write_buffer: Vec<u8>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, keeping at most `max_bytes` of segments.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Spool> {
        Spool::open_with(dir, SpoolOptions::new(max_bytes))
    }

    /// Opens (or creates) the spool in `dir`: reads the metadata, checks every
    /// segment (stepping over damaged records and counting them as lost),
    /// cuts off a torn tail and deletes acknowledged segments.
    pub fn open_with(dir: impl Into<PathBuf>, options: SpoolOptions) -> Result<Spool> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(Error::io("create spool directory", &dir))?;
        let (mut meta, mut ledger, is_meta_found) = read_meta(&dir.join(META_FILE))?;
        let low_water = meta.acked_upto.max(meta.dropped_upto);

        let mut segment_names = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(Error::io("list spool directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("list spool directory", &dir))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else { continue };
            if let Some(first_seq) = parse_segment_name(name) {
                segment_names.push((first_seq, entry.path()));
            }
        }
        segment_names.sort();

        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut gaps = Vec::new();
        let mut num_deleted = 0usize;
        for (position, (first_seq, path)) in segment_names.iter().enumerate() {
            // Records from the next segment's first seq on belong to it (the
            // rest of a failed append that could not be cut off).
            let seq_limit = segment_names.get(position + 1).map_or(u64::MAX, |(next_first_seq, _)| *next_first_seq);
            let Some((segment, segment_gaps)) = scan_segment(path, *first_seq, seq_limit)? else {
                remove_file(path)?;
                num_deleted += 1;
                continue;
            };
            if segment.num_records == 0 || segment.end_seq <= low_water + 1 {
                remove_file(path)?;
                num_deleted += 1;
                continue;
            }
            gaps.extend(segment_gaps);
            segments.push_back(segment);
        }
        if num_deleted > 0 {
            sync_parent_dir(&dir.join(META_FILE))?;
        }

        // Seqs that no segment holds although they were written: whole
        // segments or segment ends that are gone. Without metadata nothing
        // is known of what came before the first segment.
        let mut covered_upto = match (is_meta_found, segments.front()) {
            (true, _) => low_water + 1,
            (false, Some(first)) => first.first_seq,
            (false, None) => 1,
        };
        for segment in &segments {
            if segment.first_seq > covered_upto {
                gaps.push(Gap {
                    first_seq: covered_upto,
                    last_seq: segment.first_seq - 1,
                    path: segment.path.clone(),
                    offset: 0,
                    reason: "no segment holds these records".to_owned(),
                });
            }
            covered_upto = covered_upto.max(segment.end_seq);
        }
        if meta.next_seq > covered_upto {
            gaps.push(Gap {
                first_seq: covered_upto,
                last_seq: meta.next_seq - 1,
                path: segments.back().map_or_else(|| dir.clone(), |segment| segment.path.clone()),
                offset: segments.back().map_or(0, |segment| segment.bytes),
                reason: "records known to be written are missing from the end of the spool".to_owned(),
            });
        }

        let segments_end = segments.back().map_or(0, |segment| segment.end_seq);
        meta.next_seq = meta.next_seq.max(segments_end).max(low_water + 1).max(1);
        let total_bytes = segments.iter().map(|segment| segment.bytes).sum();
        let num_new = count_gaps(&mut ledger, &gaps, low_water + 1);
        let spool = Spool {
            dir,
            options,
            segments,
            active: None,
            meta,
            damage: Mutex::new(ledger),
            total_bytes,
            write_buffer: Vec::new(),
        };
        if num_new > 0 {
            // Persisted now, with `next_seq`, so the lost seqs are neither
            // counted again nor given to new lines.
            spool.write_meta()?;
        }
        Ok(spool)
    }

    /// Appends `records` as one batch and fsyncs once. Returns the first and
    /// last seq assigned, or `None` for an empty batch. On error nothing of the
    /// batch counts as written (and its seqs may be reused).
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<Option<(u64, u64)>> {
        if records.is_empty() {
            return Ok(None);
        }
        let mut batch_bytes = 0u64;
        for record in records {
            let len = record.as_ref().len();
            if len > MAX_RECORD_BYTES {
                return Err(Error::RecordTooLarge { len, max: MAX_RECORD_BYTES });
            }
            batch_bytes += FRAME_HEADER_BYTES + len as u64;
        }

        let needs_new_segment = match (&self.active, self.segments.back()) {
            (Some(_), Some(segment)) => segment.bytes >= self.options.segment_bytes,
            _ => true,
        };
        if needs_new_segment {
            self.start_segment()?;
        }
        while self.total_bytes + batch_bytes > self.options.max_bytes && self.segments.len() > 1 {
            self.drop_oldest_segment()?;
        }

        let first_seq = self.meta.next_seq;
        let Some(segment) = self.segments.back_mut() else {
            return Err(Error::Corrupt {
                path: self.dir.clone(),
                what: "spool",
                reason: "no segment to append to".to_owned(),
            });
        };
        debug_assert_eq!(segment.end_seq, first_seq, "only the newest segment is appended to");
        debug_assert_eq!(segment.format, SegmentFormat::V2, "only segments of the current format are appended to");
        self.write_buffer.clear();
        let mut offset = segment.bytes;
        let mut seq = first_seq;
        for record in records {
            let payload = record.as_ref();
            let len = payload.len() as u32;
            segment.record_indexed(seq, offset);
            self.write_buffer.extend_from_slice(&FRAME_MAGIC);
            self.write_buffer.extend_from_slice(&len.to_le_bytes());
            self.write_buffer.extend_from_slice(&seq.to_le_bytes());
            self.write_buffer.extend_from_slice(&frame_checksum(len, seq, payload).to_le_bytes());
            self.write_buffer.extend_from_slice(payload);
            offset += FRAME_HEADER_BYTES + payload.len() as u64;
            seq += 1;
        }
        let Some(file) = self.active.as_mut() else {
            return Err(Error::Corrupt {
                path: segment.path.clone(),
                what: "spool",
                reason: "no open segment writer".to_owned(),
            });
        };
        let written = file.write_all(&self.write_buffer).and_then(|()| file.sync_data());
        if let Err(err) = written {
            // Cut the half-written batch off and never append to this file again,
            // so no good frame ever follows a torn one.
            let _ = file.set_len(segment.bytes);
            segment.index.retain(|&(indexed_seq, _)| indexed_seq < first_seq);
            self.active = None;
            return Err(Error::io("append to spool segment", &segment.path)(err));
        }
        segment.num_records += records.len() as u64;
        segment.end_seq = seq;
        segment.bytes = offset;
        self.total_bytes += batch_bytes;
        self.meta.next_seq = seq;
        Ok(Some((first_seq, seq - 1)))
    }

    /// Reads records from `seq` on (or from the first available one after it),
    /// up to about `max_bytes` of payload; always at least one record if any.
    ///
    /// Damaged records are skipped: the read goes on with the next valid one,
    /// and the records it needed but could not get are counted as lost (once,
    /// and persisted; see the module documentation).
    pub fn read_from(&self, seq: u64, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut wanted = seq.max(self.low_water() + 1);
        let mut batch = ReadBatch { records: Vec::new(), num_bytes: 0, max_bytes };
        let mut gaps = Vec::new();
        let mut outcome = Ok(());
        for segment in &self.segments {
            if segment.end_seq <= wanted {
                continue;
            }
            wanted = wanted.max(segment.first_seq);
            match read_segment(segment, wanted, &mut batch, &mut gaps) {
                Ok(SegmentRead::Whole) => wanted = segment.end_seq,
                Ok(SegmentRead::BatchFull) => break,
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            }
        }
        if !gaps.is_empty() {
            // Only what this read needed: earlier seqs were shipped already.
            self.count_damage(&gaps, seq.max(self.low_water() + 1));
        }
        outcome.map(|()| batch.records)
    }

    /// Records that the servers hold everything up to `upto_seq` (persisted),
    /// and deletes the segments that are now entirely acknowledged.
    pub fn ack(&mut self, upto_seq: u64) -> Result<()> {
        let upto_seq = upto_seq.min(self.meta.next_seq - 1);
        if upto_seq <= self.meta.acked_upto {
            return Ok(());
        }
        self.meta.acked_upto = upto_seq;
        self.write_meta()?;
        let mut num_deleted = 0usize;
        while let Some(segment) = self.segments.front() {
            if segment.end_seq > upto_seq + 1 {
                break;
            }
            if self.segments.len() == 1 {
                self.active = None;
            }
            remove_file(&segment.path)?;
            self.total_bytes -= segment.bytes;
            self.segments.pop_front();
            num_deleted += 1;
        }
        if num_deleted > 0 {
            sync_parent_dir(&self.dir.join(META_FILE))?;
        }
        Ok(())
    }

    /// The spool's counters.
    pub fn stats(&self) -> SpoolStats {
        let first_available_seq =
            self.segments.front().map_or(self.meta.next_seq, |segment| segment.first_seq.max(self.low_water() + 1));
        let damaged_lines = self.damage().num_lines;
        SpoolStats {
            next_seq: self.meta.next_seq,
            acked_upto: self.meta.acked_upto,
            first_available_seq,
            dropped_lines: self.meta.full_dropped_lines + damaged_lines,
            damaged_lines,
            total_bytes: self.total_bytes,
            num_segments: self.segments.len(),
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn low_water(&self) -> u64 {
        self.meta.acked_upto.max(self.meta.dropped_upto)
    }

    fn damage(&self) -> MutexGuard<'_, DamageLedger> {
        self.damage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the seqs of `gaps` from `from_seq` on as lost, and persists the
    /// count when it grew.
    fn count_damage(&self, gaps: &[Gap], from_seq: u64) {
        let mut ledger = self.damage();
        if count_gaps(&mut ledger, gaps, from_seq) == 0 {
            return;
        }
        if let Err(error) = self.write_meta_with(&mut ledger) {
            // Kept in memory; after a restart the damage is found and counted again.
            warn!(%error, "cannot persist the count of damaged spool records");
        }
    }

    fn start_segment(&mut self) -> Result<()> {
        let first_seq = self.meta.next_seq;
        let path = self.dir.join(segment_name(first_seq));
        if let Some(segment) = self.segments.back()
            && segment.first_seq == first_seq
        {
            // An empty newest segment whose writer failed: start it again.
            self.total_bytes -= segment.bytes;
            self.segments.pop_back();
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("create spool segment", &path))?;
        file.write_all(SEGMENT_MAGIC).map_err(Error::io("write spool segment", &path))?;
        sync_parent_dir(&path)?;
        self.total_bytes += SEGMENT_HEADER_BYTES;
        self.segments.push_back(Segment {
            path,
            format: SegmentFormat::V2,
            first_seq,
            end_seq: first_seq,
            num_records: 0,
            bytes: SEGMENT_HEADER_BYTES,
            index: Vec::new(),
        });
        self.active = Some(file);
        Ok(())
    }

    fn drop_oldest_segment(&mut self) -> Result<()> {
        let Some(segment) = self.segments.front() else { return Ok(()) };
        let first_unacked = segment.first_seq.max(self.low_water() + 1);
        let last_seq = segment.end_seq - 1;
        let num_dropped = if first_unacked <= last_seq {
            // Seqs already counted as damaged are not counted twice.
            (last_seq - first_unacked + 1) - self.damage().num_counted_within(first_unacked, last_seq)
        } else {
            0
        };
        self.meta.dropped_upto = self.meta.dropped_upto.max(last_seq);
        self.meta.full_dropped_lines += num_dropped;
        // The metadata is the commit point: once it is written, the segment is
        // gone even if the deletion below does not happen before a crash.
        self.write_meta()?;
        warn!(num_dropped, first_seq = first_unacked, "spool full, dropped the oldest unshipped lines");
        remove_file(&segment.path)?;
        self.total_bytes -= segment.bytes;
        self.segments.pop_front();
        Ok(())
    }

    fn write_meta(&self) -> Result<()> {
        let mut ledger = self.damage();
        self.write_meta_with(&mut ledger)
    }

    /// Writes the metadata; the caller holds the damage ledger.
    fn write_meta_with(&self, ledger: &mut DamageLedger) -> Result<()> {
        ledger.forget_upto(self.low_water());
        let meta_file = MetaFile {
            version: META_VERSION,
            next_seq: self.meta.next_seq,
            acked_upto: self.meta.acked_upto,
            dropped_upto: self.meta.dropped_upto,
            dropped_lines: self.meta.full_dropped_lines + ledger.num_lines,
            damaged_lines: ledger.num_lines,
            damaged_seqs: ledger.counted.clone(),
        };
        let contents = serde_json::to_vec(&meta_file).map_err(|err| Error::Corrupt {
            path: self.dir.join(META_FILE),
            what: "spool metadata",
            reason: err.to_string(),
        })?;
        write_atomically(&self.dir.join(META_FILE), &contents)
    }
}

/// Counts the seqs of `gaps` from `from_seq` on into `ledger`, warning about
/// each newly lost range; returns how many seqs were new.
fn count_gaps(ledger: &mut DamageLedger, gaps: &[Gap], from_seq: u64) -> u64 {
    let mut num_new_total = 0;
    for gap in gaps {
        let first_seq = gap.first_seq.max(from_seq);
        let num_new = ledger.count(first_seq, gap.last_seq);
        if num_new > 0 {
            warn!(
                path = %gap.path.display(),
                offset = gap.offset,
                first_seq,
                last_seq = gap.last_seq,
                num_lost = num_new,
                reason = %gap.reason,
                "damaged log spool records skipped, their lines are lost"
            );
        }
        num_new_total += num_new;
    }
    num_new_total
}

/// What one read collects.
#[derive(Debug)]
struct ReadBatch {
    records: Vec<(u64, Vec<u8>)>,
    num_bytes: usize,
    max_bytes: usize,
}

/// How reading a segment ended.
#[derive(Debug, PartialEq, Eq)]
enum SegmentRead {
    /// Everything from the wanted seq to the segment's end was read.
    Whole,
    /// The batch is full; the rest is for the next read.
    BatchFull,
}

/// Reads the records of `segment` from `wanted` on into `batch`; the seqs it
/// should hold but cannot give are added to `gaps`.
fn read_segment(segment: &Segment, wanted: u64, batch: &mut ReadBatch, gaps: &mut Vec<Gap>) -> Result<SegmentRead> {
    let file = match File::open(&segment.path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            gaps.push(Gap {
                first_seq: segment.first_seq,
                last_seq: segment.end_seq - 1,
                path: segment.path.clone(),
                offset: 0,
                reason: "the segment file is gone".to_owned(),
            });
            return Ok(SegmentRead::Whole);
        }
        Err(err) => return Err(Error::io("open spool segment", &segment.path)(err)),
    };
    let file_len = file.metadata().map_err(Error::io("stat spool segment", &segment.path))?.len();
    let (seek_seq, offset) = segment.seek_point(wanted);
    // Version 1 records have no seq: after damage, only the index tells
    // where the numbering goes on.
    let resync = match segment.format {
        SegmentFormat::V1 => Resync::NextIndexed(&segment.index),
        SegmentFormat::V2 => Resync::Scan,
    };
    let mut cursor = FrameCursor::new(&file, &segment.path, segment.format, resync, file_len, segment.end_seq)
        .starting_at(seek_seq, offset)?;
    let mut payload = Vec::new();
    let outcome = loop {
        match cursor.next(&mut payload) {
            Ok(Some(frame)) => {
                if frame.seq < wanted {
                    continue;
                }
                if !batch.records.is_empty() && batch.num_bytes + payload.len() > batch.max_bytes {
                    break Ok(SegmentRead::BatchFull);
                }
                batch.num_bytes += payload.len();
                batch.records.push((frame.seq, std::mem::take(&mut payload)));
            }
            Ok(None) => break Ok(SegmentRead::Whole),
            Err(err) => break Err(err),
        }
    };
    gaps.append(&mut cursor.gaps);
    if outcome.as_ref().is_ok_and(|read| *read == SegmentRead::Whole) && cursor.expected_seq < segment.end_seq {
        gaps.push(Gap {
            first_seq: cursor.expected_seq,
            last_seq: segment.end_seq - 1,
            path: segment.path.clone(),
            offset: cursor.valid_end,
            reason: "the segment ends early (cut short or damaged to its end)".to_owned(),
        });
    }
    outcome
}

/// Where a [`FrameCursor`] goes on after a damaged frame.
#[derive(Debug, Clone, Copy)]
enum Resync<'index> {
    /// At the next offset where a whole valid frame starts.
    Scan,
    /// At the next indexed record after the damage (version 1 segments
    /// after open, whose records carry no seq).
    NextIndexed(&'index [(u64, u64)]),
}

/// A valid frame read by a [`FrameCursor`]; its payload is in the caller's buffer.
#[derive(Debug, Clone, Copy)]
struct FrameAt {
    seq: u64,
    offset: u64,
    /// The first valid frame after a damaged stretch.
    is_after_damage: bool,
}

/// Why a frame could not be read.
enum FrameError {
    /// The bytes are not a valid frame.
    Damaged(String),
    /// The file could not be read.
    Io(std::io::Error),
}

/// Reads the valid frames of one segment file in order, stepping over damage.
#[derive(Debug)]
struct FrameCursor<'file> {
    file: &'file File,
    path: &'file Path,
    reader: BufReader<&'file File>,
    format: SegmentFormat,
    resync: Resync<'file>,
    file_len: u64,
    /// Records with this seq or above are not this segment's.
    seq_limit: u64,
    /// Where the next frame starts.
    offset: u64,
    /// The seq the next record should have.
    expected_seq: u64,
    /// The end of the last valid frame (the segment header when none).
    valid_end: u64,
    is_after_damage: bool,
    /// The seqs skipped so far.
    gaps: Vec<Gap>,
}

impl<'file> FrameCursor<'file> {
    fn new(
        file: &'file File,
        path: &'file Path,
        format: SegmentFormat,
        resync: Resync<'file>,
        file_len: u64,
        seq_limit: u64,
    ) -> FrameCursor<'file> {
        FrameCursor {
            file,
            path,
            reader: BufReader::with_capacity(256 * 1024, file),
            format,
            resync,
            file_len,
            seq_limit,
            offset: SEGMENT_HEADER_BYTES,
            expected_seq: 0,
            valid_end: SEGMENT_HEADER_BYTES,
            is_after_damage: false,
            gaps: Vec::new(),
        }
    }

    /// Positions the cursor at the frame of record `seq` at `offset`.
    fn starting_at(mut self, seq: u64, offset: u64) -> Result<FrameCursor<'file>> {
        self.seek(offset)?;
        self.expected_seq = seq;
        self.valid_end = offset;
        Ok(self)
    }

    fn seek(&mut self, offset: u64) -> Result<()> {
        self.reader.seek(SeekFrom::Start(offset)).map_err(Error::io("seek spool segment", self.path))?;
        self.offset = offset;
        Ok(())
    }

    /// The next valid record (its payload in `payload`), or `None` at the end
    /// of the segment's valid records.
    fn next(&mut self, payload: &mut Vec<u8>) -> Result<Option<FrameAt>> {
        loop {
            if self.expected_seq >= self.seq_limit || self.offset >= self.file_len {
                return Ok(None);
            }
            let reason = match read_frame(&mut self.reader, self.format, self.file_len - self.offset, payload) {
                Ok(header) => {
                    let seq = header.seq.unwrap_or(self.expected_seq);
                    if seq >= self.expected_seq {
                        if seq >= self.seq_limit {
                            return Ok(None);
                        }
                        if seq > self.expected_seq {
                            self.gaps.push(Gap {
                                first_seq: self.expected_seq,
                                last_seq: seq - 1,
                                path: self.path.to_path_buf(),
                                offset: self.valid_end,
                                reason: "damaged records".to_owned(),
                            });
                        }
                        let frame = FrameAt {
                            seq,
                            offset: self.offset,
                            is_after_damage: std::mem::take(&mut self.is_after_damage),
                        };
                        self.offset += self.format.frame_header_bytes() + payload.len() as u64;
                        self.valid_end = self.offset;
                        self.expected_seq = seq + 1;
                        return Ok(Some(frame));
                    }
                    format!("record {seq} where {} was expected", self.expected_seq)
                }
                Err(FrameError::Damaged(reason)) => reason,
                Err(FrameError::Io(err)) => return Err(Error::io("read spool segment", self.path)(err)),
            };
            debug!(path = %self.path.display(), offset = self.offset, %reason, "damaged spool frame, resynchronising");
            self.is_after_damage = true;
            match self.resync {
                Resync::Scan => {
                    let found = find_next_frame(self.file, self.format, self.offset + 1, self.file_len, payload)
                        .map_err(Error::io("scan spool segment", self.path))?;
                    let Some(next_offset) = found else { return Ok(None) };
                    if self.format == SegmentFormat::V1 {
                        // The true number is unknown: the stretch counts as one record.
                        self.gaps.push(Gap {
                            first_seq: self.expected_seq,
                            last_seq: self.expected_seq,
                            path: self.path.to_path_buf(),
                            offset: self.offset,
                            reason: format!("{reason} (counted as one record)"),
                        });
                        self.expected_seq += 1;
                    }
                    self.seek(next_offset)?;
                }
                Resync::NextIndexed(index) => {
                    let damaged_at = self.offset;
                    let Some(&(seq, next_offset)) = index.iter().find(|&&(_, offset)| offset > damaged_at) else {
                        return Ok(None);
                    };
                    if seq > self.expected_seq {
                        self.gaps.push(Gap {
                            first_seq: self.expected_seq,
                            last_seq: seq - 1,
                            path: self.path.to_path_buf(),
                            offset: damaged_at,
                            reason,
                        });
                    }
                    self.expected_seq = self.expected_seq.max(seq);
                    self.seek(next_offset)?;
                }
            }
        }
    }
}

/// Reads one frame into `payload`, given that at most `available` bytes of
/// the file are left from where `reader` is.
fn read_frame(
    reader: &mut impl Read,
    format: SegmentFormat,
    available: u64,
    payload: &mut Vec<u8>,
) -> std::result::Result<FrameHeader, FrameError> {
    let header_bytes = format.frame_header_bytes();
    if available < header_bytes {
        return Err(FrameError::Damaged(format!("frame header cut short after {available} bytes")));
    }
    let mut header_buffer = [0u8; FRAME_HEADER_BYTES as usize];
    let header_slice = &mut header_buffer[..header_bytes as usize];
    reader.read_exact(header_slice).map_err(frame_read_error)?;
    let header = FrameHeader::parse(format, header_slice, available - header_bytes).map_err(FrameError::Damaged)?;
    payload.clear();
    payload.resize(header.len, 0);
    reader.read_exact(payload).map_err(frame_read_error)?;
    if !header.checksum_matches(payload) {
        return Err(FrameError::Damaged("checksum mismatch".to_owned()));
    }
    Ok(header)
}

fn frame_read_error(err: std::io::Error) -> FrameError {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Damaged("frame cut short".to_owned())
    } else {
        FrameError::Io(err)
    }
}

/// The offset of the first whole valid frame at or after `from` (its seq not
/// checked), scanning byte by byte; `scratch` is clobbered.
fn find_next_frame(
    file: &File,
    format: SegmentFormat,
    from: u64,
    file_len: u64,
    scratch: &mut Vec<u8>,
) -> std::io::Result<Option<u64>> {
    let header_bytes = format.frame_header_bytes();
    let mut window = vec![0u8; SCAN_WINDOW_BYTES];
    let mut window_start = from;
    while window_start + header_bytes <= file_len {
        let window_len = (file_len - window_start).min(SCAN_WINDOW_BYTES as u64) as usize;
        let bytes = &mut window[..window_len];
        file.read_exact_at(bytes, window_start)?;
        let num_positions = window_len - header_bytes as usize + 1;
        for position in 0..num_positions {
            let candidate = window_start + position as u64;
            let Some(header_bytes_here) = bytes.get(position..position + header_bytes as usize) else { break };
            let Ok(header) = FrameHeader::parse(format, header_bytes_here, file_len - candidate - header_bytes) else {
                continue;
            };
            // Zeroes (a hole after a truncation) read as empty version 1
            // frames; real records are never empty.
            if format == SegmentFormat::V1 && header.len == 0 {
                continue;
            }
            scratch.clear();
            scratch.resize(header.len, 0);
            file.read_exact_at(scratch, candidate + header_bytes)?;
            if header.checksum_matches(scratch) {
                return Ok(Some(candidate));
            }
        }
        // Windows overlap so that every position is seen with a whole header.
        window_start += num_positions as u64;
    }
    Ok(None)
}

/// Scans a segment at open: indexes its valid records, notes the damaged
/// ones and cuts off what follows its last valid frame. `None` when the file
/// does not even hold a complete header (a crash while creating it).
fn scan_segment(path: &Path, first_seq: u64, seq_limit: u64) -> Result<Option<(Segment, Vec<Gap>)>> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(Error::io("open spool segment", path))?;
    let file_len = file.metadata().map_err(Error::io("stat spool segment", path))?.len();
    let mut magic = [0u8; SEGMENT_HEADER_BYTES as usize];
    if (&file).read_exact(&mut magic).is_err() {
        return Ok(None);
    }
    let format = if &magic == SEGMENT_MAGIC_V1 {
        SegmentFormat::V1
    } else {
        if &magic != SEGMENT_MAGIC {
            // Version 2 frames carry their own magic and seq: a damaged
            // segment header costs nothing more.
            warn!(path = %path.display(), "spool segment header damaged, reading it as version 2");
        }
        SegmentFormat::V2
    };
    let mut segment = Segment {
        path: path.to_path_buf(),
        format,
        first_seq,
        end_seq: first_seq,
        num_records: 0,
        bytes: SEGMENT_HEADER_BYTES,
        index: Vec::new(),
    };
    let mut cursor = FrameCursor::new(&file, path, format, Resync::Scan, file_len, seq_limit)
        .starting_at(first_seq, SEGMENT_HEADER_BYTES)?;
    let mut payload = Vec::new();
    while let Some(frame) = cursor.next(&mut payload)? {
        if frame.is_after_damage {
            segment.index.push((frame.seq, frame.offset));
        } else {
            segment.record_indexed(frame.seq, frame.offset);
        }
        segment.num_records += 1;
        segment.end_seq = frame.seq + 1;
    }
    segment.bytes = cursor.valid_end;
    let gaps = std::mem::take(&mut cursor.gaps);
    if segment.bytes < file_len {
        warn!(path = %path.display(), valid_bytes = segment.bytes, file_len, "cutting the invalid end off a spool segment");
        file.set_len(segment.bytes).map_err(Error::io("truncate spool segment", path))?;
        file.sync_all().map_err(Error::io("fsync spool segment", path))?;
    }
    Ok(Some((segment, gaps)))
}

/// Reads the metadata file: the counters, the damage ledger, and whether the
/// file existed.
fn read_meta(path: &Path) -> Result<(Meta, DamageLedger, bool)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Meta { next_seq: 1, ..Meta::default() }, DamageLedger::default(), false));
        }
        Err(err) => return Err(Error::io("read spool metadata", path)(err)),
    };
    let meta_file: MetaFile = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
        path: path.to_path_buf(),
        what: "spool metadata file",
        reason: err.to_string(),
    })?;
    if meta_file.version > META_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: meta_file.version,
            supported: META_VERSION,
        });
    }
    let meta = Meta {
        next_seq: meta_file.next_seq,
        acked_upto: meta_file.acked_upto,
        dropped_upto: meta_file.dropped_upto,
        full_dropped_lines: meta_file.dropped_lines.saturating_sub(meta_file.damaged_lines),
    };
    let mut ledger = DamageLedger { counted: Vec::new(), num_lines: 0 };
    for &(first, last) in &meta_file.damaged_seqs {
        ledger.count(first, last);
    }
    // The ranges may have been pruned: the count is the persisted one.
    ledger.num_lines = meta_file.damaged_lines;
    Ok((meta, ledger, true))
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("delete spool segment", path)(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashSet};

    fn record(seq_hint: u64, len: usize) -> Vec<u8> {
        let mut bytes = format!("line {seq_hint} ").into_bytes();
        bytes.resize(len.max(bytes.len()), b'x');
        bytes
    }

    fn read_all(spool: &Spool) -> Vec<(u64, Vec<u8>)> {
        spool.read_from(0, usize::MAX).unwrap()
    }

    /// Reads everything from `from_seq` on in small batches, the way a
    /// session ships the spool.
    fn ship_all(spool: &Spool, from_seq: u64) -> Vec<(u64, Vec<u8>)> {
        let mut shipped: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut next_seq = from_seq;
        loop {
            let records = spool.read_from(next_seq, 4096).unwrap();
            let Some((last_seq, _)) = records.last() else { return shipped };
            next_seq = last_seq + 1;
            shipped.extend(records);
        }
    }

    fn seqs(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
        records.iter().map(|(seq, _)| *seq).collect()
    }

    /// Appends records `first..=last`, each `len` bytes, in batches of 100.
    fn append_numbered(spool: &mut Spool, first: u64, last: u64, len: usize) {
        let all: Vec<u64> = (first..=last).collect();
        for batch in all.chunks(100) {
            let records: Vec<Vec<u8>> = batch.iter().map(|&seq| record(seq, len)).collect();
            let (batch_first, batch_last) = spool.append(&records).unwrap().unwrap();
            assert_eq!((batch_first, batch_last), (batch[0], batch[batch.len() - 1]));
        }
    }

    fn assert_payloads_match(records: &[(u64, Vec<u8>)], len: usize) {
        for (seq, bytes) in records {
            assert_eq!(bytes, &record(*seq, len), "payload of record {seq}");
        }
    }

    fn flip_byte(path: &Path, offset: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[offset as usize] ^= 0x5a;
        std::fs::write(path, &bytes).unwrap();
    }

    fn cut_file(path: &Path, len: u64) {
        OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
    }

    /// Where record `seq` starts in a segment starting at `first_seq` whose
    /// records are all `len` bytes.
    fn frame_offset(first_seq: u64, seq: u64, len: u64) -> u64 {
        SEGMENT_HEADER_BYTES + (seq - first_seq) * (FRAME_HEADER_BYTES + len)
    }

    #[test]
    fn append_read_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(spool.append::<Vec<u8>>(&[]).unwrap(), None);
        assert_eq!(spool.append(&[b"a".as_slice(), b"b"]).unwrap(), Some((1, 2)));
        assert_eq!(spool.append(&["c"]).unwrap(), Some((3, 3)));
        assert_eq!(spool.read_from(2, 1).unwrap(), vec![(2, b"b".to_vec())]);
        spool.ack(1).unwrap();
        drop(spool);

        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(read_all(&reopened), vec![(2, b"b".to_vec()), (3, b"c".to_vec())]);
        assert_eq!(reopened.append(&["d"]).unwrap(), Some((4, 4)));
        assert_eq!(reopened.stats().acked_upto, 1);
        assert_eq!(reopened.stats().dropped_lines, 0);
    }

    #[test]
    fn seq_survives_full_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.append(&["a", "b", "c"]).unwrap();
        spool.ack(3).unwrap();
        assert_eq!(spool.stats().num_segments, 0);
        drop(spool);
        let segment_files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().starts_with("seg-"))
            .collect();
        assert!(segment_files.is_empty(), "acked segments are deleted");
        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(reopened.append(&["d"]).unwrap(), Some((4, 4)));
        assert_eq!(read_all(&reopened), vec![(4, b"d".to_vec())]);
    }

    #[test]
    fn torn_tail_is_truncated_on_open_and_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.append(&["one", "two"]).unwrap();
        let segment_path = spool.segments.back().unwrap().path.clone();
        drop(spool);
        let good_len = std::fs::metadata(&segment_path).unwrap().len();

        // A crash in the middle of writing a frame: header and half a payload.
        let mut file = OpenOptions::new().append(true).open(&segment_path).unwrap();
        file.write_all(&FRAME_MAGIC).unwrap();
        file.write_all(&10u32.to_le_bytes()).unwrap();
        file.write_all(&3u64.to_le_bytes()).unwrap();
        file.write_all(&frame_checksum(10, 3, b"0123456789").to_le_bytes()).unwrap();
        file.write_all(b"01234").unwrap();
        drop(file);

        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(std::fs::metadata(&segment_path).unwrap().len(), good_len);
        assert_eq!(read_all(&reopened), vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        assert_eq!(reopened.stats().dropped_lines, 0, "a torn write was never acknowledged: nothing is lost");
        assert_eq!(reopened.append(&["three"]).unwrap(), Some((3, 3)));
    }

    #[test]
    fn a_damaged_last_record_never_known_written_is_taken_for_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.append(&["first", "second"]).unwrap();
        let segment_path = spool.segments.back().unwrap().path.clone();
        drop(spool);
        let mut bytes = std::fs::read(&segment_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&segment_path, &bytes).unwrap();
        let reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(read_all(&reopened), vec![(1, b"first".to_vec())]);
        assert_eq!(reopened.stats().dropped_lines, 0);
    }

    #[test]
    fn half_created_segment_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.append(&["a"]).unwrap();
        drop(spool);
        std::fs::write(dir.path().join(segment_name(2)), b"DRS").unwrap();
        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(reopened.append(&["b"]).unwrap(), Some((2, 2)));
        assert_eq!(read_all(&reopened).len(), 2);
    }

    #[test]
    fn overflow_drops_oldest_segments_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions { max_bytes: 4000, segment_bytes: 1000 };
        let mut spool = Spool::open_with(dir.path(), options).unwrap();
        for batch in 0..40u64 {
            let records: Vec<Vec<u8>> = (0..5).map(|index| record(batch * 5 + index, 92)).collect();
            spool.append(&records).unwrap();
            assert!(spool.stats().total_bytes <= options.max_bytes, "{:?}", spool.stats());
        }
        let stats = spool.stats();
        let remaining = read_all(&spool);
        assert_eq!(remaining.last().unwrap().0, 200);
        assert_eq!(remaining.first().unwrap().0, stats.first_available_seq);
        assert_eq!(stats.dropped_lines + remaining.len() as u64, 200);
        assert!(stats.dropped_lines > 0);
        assert_eq!(stats.damaged_lines, 0);
        drop(spool);
        let reopened = Spool::open_with(dir.path(), options).unwrap();
        assert_eq!(reopened.stats().dropped_lines, stats.dropped_lines);
        assert_eq!(read_all(&reopened), remaining);
    }

    #[test]
    fn reading_uses_the_sparse_index_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions { max_bytes: 1 << 30, segment_bytes: 64 * 1024 };
        let mut spool = Spool::open_with(dir.path(), options).unwrap();
        for batch in 0..20u64 {
            let records: Vec<Vec<u8>> = (0..500).map(|index| record(batch * 500 + index + 1, 20)).collect();
            spool.append(&records).unwrap();
        }
        assert!(spool.stats().num_segments > 1);
        for start in [1u64, 255, 256, 257, 4999, 5000, 9999, 10000] {
            let records = spool.read_from(start, 100).unwrap();
            assert_eq!(records[0].0, start);
            assert!(records[0].1.starts_with(format!("line {start} ").as_bytes()));
            for pair in records.windows(2) {
                assert_eq!(pair[0].0 + 1, pair[1].0);
            }
        }
        assert!(spool.read_from(10001, 100).unwrap().is_empty());
    }

    /// Issue item 10: one flipped byte lost 1,994 of 3,000 lines and stopped
    /// shipping. Wherever it lands in a frame (magic, length, seq, checksum,
    /// payload), only that record is lost, counted once, and everything
    /// after it — including what is appended later — is shipped, in the
    /// running spool and after a restart.
    #[test]
    fn a_flipped_byte_loses_only_its_record_and_is_counted_once() {
        for offset_in_frame in [0u64, 2, 5, 7, 9, 15, 17, 20, 70, 119] {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
            append_numbered(&mut spool, 1, 3000, 100);
            assert_eq!(spool.stats().num_segments, 1);
            let path = spool.segments[0].path.clone();
            flip_byte(&path, frame_offset(1, 1500, 100) + offset_in_frame);

            let expected: Vec<u64> = (1..=3000).filter(|&seq| seq != 1500).collect();
            let shipped = ship_all(&spool, 1);
            assert_eq!(seqs(&shipped), expected, "byte {offset_in_frame} of the frame flipped");
            assert_payloads_match(&shipped, 100);
            assert_eq!(spool.stats().dropped_lines, 1);
            assert_eq!(spool.stats().damaged_lines, 1);
            // Read again (a reconnect): not counted twice.
            assert_eq!(seqs(&ship_all(&spool, 1)), expected);
            assert_eq!(spool.stats().dropped_lines, 1);

            append_numbered(&mut spool, 3001, 3100, 100);
            assert_eq!(seqs(&ship_all(&spool, 3001)), (3001..=3100).collect::<Vec<_>>());
            drop(spool);

            let reopened = Spool::open(dir.path(), 1 << 30).unwrap();
            let shipped_after_restart = ship_all(&reopened, 1);
            let expected_after_restart: Vec<u64> = (1..=3100).filter(|&seq| seq != 1500).collect();
            assert_eq!(seqs(&shipped_after_restart), expected_after_restart);
            assert_payloads_match(&shipped_after_restart, 100);
            assert_eq!(reopened.stats().dropped_lines, 1, "the loss is counted once across the restart");
            assert_eq!(reopened.stats().next_seq, 3101);
        }
    }

    #[test]
    fn a_byte_flipped_while_the_agent_was_down_is_counted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        append_numbered(&mut spool, 1, 3000, 100);
        let path = spool.segments[0].path.clone();
        drop(spool);
        flip_byte(&path, frame_offset(1, 1000, 100) + 50);

        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(reopened.stats().dropped_lines, 1, "counted when found, before any read");
        let shipped = ship_all(&reopened, 1);
        assert_eq!(seqs(&shipped), (1..=3000).filter(|&seq| seq != 1000).collect::<Vec<_>>());
        assert_eq!(reopened.append(&[record(3001, 100)]).unwrap(), Some((3001, 3001)));
        assert_eq!(reopened.stats().dropped_lines, 1);
        drop(reopened);
        let again = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(again.stats().dropped_lines, 1, "a second restart does not count it again");
        assert_eq!(ship_all(&again, 1).len(), 3000);
    }

    /// Issue item 10: a segment cut mid-record stopped all shipping until a
    /// restart, which then discarded everything after it.
    #[test]
    fn a_segment_cut_mid_record_loses_only_its_end_and_shipping_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions { max_bytes: 1 << 30, segment_bytes: 64 * 1024 };
        let mut spool = Spool::open_with(dir.path(), options).unwrap();
        append_numbered(&mut spool, 1, 3000, 100);
        assert!(spool.stats().num_segments >= 3, "{:?}", spool.stats());
        let (path, end_seq) = (spool.segments[0].path.clone(), spool.segments[0].end_seq);
        assert!(end_seq > 301);
        cut_file(&path, frame_offset(1, 300, 100) + 20 + 50);

        let expected: Vec<u64> = (1..=3000).filter(|&seq| !(300..end_seq).contains(&seq)).collect();
        let shipped = ship_all(&spool, 1);
        assert_eq!(seqs(&shipped), expected);
        assert_payloads_match(&shipped, 100);
        assert_eq!(spool.stats().dropped_lines, end_seq - 300);

        append_numbered(&mut spool, 3001, 3050, 100);
        assert_eq!(seqs(&ship_all(&spool, 3001)), (3001..=3050).collect::<Vec<_>>());
        drop(spool);

        let reopened = Spool::open_with(dir.path(), options).unwrap();
        let expected_after_restart: Vec<u64> = (1..=3050).filter(|&seq| !(300..end_seq).contains(&seq)).collect();
        assert_eq!(seqs(&ship_all(&reopened, 1)), expected_after_restart);
        assert_eq!(reopened.stats().dropped_lines, end_seq - 300);
    }

    #[test]
    fn the_newest_segment_cut_mid_record_keeps_the_lines_appended_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        append_numbered(&mut spool, 1, 1000, 100);
        let path = spool.segments[0].path.clone();
        cut_file(&path, frame_offset(1, 800, 100) + 10);
        // The writer goes on where it was: the new records follow a hole.
        append_numbered(&mut spool, 1001, 1100, 100);

        let expected: Vec<u64> = (1..800).chain(1001..=1100).collect();
        let shipped = ship_all(&spool, 1);
        assert_eq!(seqs(&shipped), expected);
        assert_payloads_match(&shipped, 100);
        assert_eq!(spool.stats().dropped_lines, 201);
        drop(spool);

        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(seqs(&ship_all(&reopened, 1)), expected);
        assert_eq!(reopened.stats().dropped_lines, 201);
        assert_eq!(reopened.append(&["next"]).unwrap(), Some((1101, 1101)));
    }

    #[test]
    fn records_cut_from_the_end_while_down_count_as_lost_when_known_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        append_numbered(&mut spool, 1, 1000, 100);
        // An acknowledgement writes the metadata, next_seq included.
        spool.ack(10).unwrap();
        let path = spool.segments[0].path.clone();
        drop(spool);
        cut_file(&path, frame_offset(1, 900, 100) + 30);

        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(seqs(&ship_all(&reopened, 1)), (11..900).collect::<Vec<_>>());
        assert_eq!(reopened.stats().dropped_lines, 101);
        assert_eq!(reopened.append(&["next"]).unwrap(), Some((1001, 1001)), "lost seqs are not given again");
    }

    #[test]
    fn a_deleted_segment_file_is_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions { max_bytes: 1 << 30, segment_bytes: 64 * 1024 };
        let mut spool = Spool::open_with(dir.path(), options).unwrap();
        append_numbered(&mut spool, 1, 2000, 100);
        let (path, first_seq, end_seq) =
            (spool.segments[1].path.clone(), spool.segments[1].first_seq, spool.segments[1].end_seq);
        std::fs::remove_file(&path).unwrap();
        let expected: Vec<u64> = (1..=2000).filter(|seq| !(first_seq..end_seq).contains(seq)).collect();
        assert_eq!(seqs(&ship_all(&spool, 1)), expected);
        assert_eq!(spool.stats().dropped_lines, end_seq - first_seq);
        drop(spool);
        let reopened = Spool::open_with(dir.path(), options).unwrap();
        assert_eq!(seqs(&ship_all(&reopened, 1)), expected);
        assert_eq!(reopened.stats().dropped_lines, end_seq - first_seq);
    }

    #[test]
    fn a_damaged_record_later_dropped_for_space_is_not_counted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions { max_bytes: 4000, segment_bytes: 1000 };
        let mut spool = Spool::open_with(dir.path(), options).unwrap();
        let mut num_appended = 0u64;
        for _ in 0..2 {
            let records: Vec<Vec<u8>> = (0..5).map(|index| record(num_appended + index + 1, 92)).collect();
            spool.append(&records).unwrap();
            num_appended += 5;
        }
        flip_byte(&spool.segments[0].path.clone(), frame_offset(1, 3, 92) + 40);
        assert_eq!(ship_all(&spool, 1).len(), 9);
        assert_eq!(spool.stats().damaged_lines, 1);
        while spool.segments[0].first_seq == 1 {
            let records: Vec<Vec<u8>> = (0..5).map(|index| record(num_appended + index + 1, 92)).collect();
            spool.append(&records).unwrap();
            num_appended += 5;
        }
        let stats = spool.stats();
        assert_eq!(stats.damaged_lines, 1);
        // Nothing was acknowledged: every record is either held or counted, once.
        assert_eq!(stats.dropped_lines + read_all(&spool).len() as u64, num_appended);
    }

    #[test]
    fn a_damaged_segment_header_costs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        append_numbered(&mut spool, 1, 300, 50);
        let path = spool.segments[0].path.clone();
        drop(spool);
        flip_byte(&path, 3);
        let reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(seqs(&ship_all(&reopened, 1)), (1..=300).collect::<Vec<_>>());
        assert_eq!(reopened.stats().dropped_lines, 0);
    }

    #[test]
    fn the_ledger_counts_overlapping_ranges_once() {
        let mut ledger = DamageLedger::default();
        assert_eq!(ledger.count(10, 19), 10);
        assert_eq!(ledger.count(15, 24), 5);
        assert_eq!(ledger.count(25, 25), 1);
        assert_eq!(ledger.count(5, 30), 10);
        assert_eq!(ledger.count(12, 13), 0);
        assert_eq!(ledger.counted, vec![(5, 30)]);
        assert_eq!(ledger.num_lines, 26);
        assert_eq!(ledger.num_counted_within(0, 7), 3);
        ledger.forget_upto(30);
        assert!(ledger.counted.is_empty());
        assert_eq!(ledger.num_lines, 26, "the counter only grows");
    }

    #[test]
    fn version_one_metadata_sample_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), include_str!("../tests/samples/spool.meta-v1.json")).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        // The sample says seqs up to 41 were written and only 35 are
        // accounted for, with no segment holding 36..=41: those are lost.
        assert_eq!(spool.stats().dropped_lines, 7 + 6);
        assert_eq!(spool.stats().damaged_lines, 6);
        assert_eq!(spool.append(&["x"]).unwrap(), Some((42, 42)));
    }

    /// Copies the committed version 1 spool (written by the previous code:
    /// 300 records "v1 line N", acknowledged up to 10) into a fresh directory.
    fn version_one_spool() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), include_str!("../tests/samples/spool-v1/spool.meta.json")).unwrap();
        std::fs::write(
            dir.path().join(segment_name(1)),
            include_bytes!("../tests/samples/spool-v1/seg-00000000000000000001.log"),
        )
        .unwrap();
        dir
    }

    /// The offset of record `seq` in the version 1 sample segment.
    fn version_one_frame_offset(seq: u64) -> u64 {
        (1..seq).map(|earlier| FRAME_HEADER_BYTES_V1 + format!("v1 line {earlier}").len() as u64).sum::<u64>()
            + SEGMENT_HEADER_BYTES
    }

    fn assert_version_one_payloads(records: &[(u64, Vec<u8>)]) {
        for (seq, bytes) in records {
            assert_eq!(bytes, format!("v1 line {seq}").as_bytes());
        }
    }

    #[test]
    fn version_one_segments_are_still_read() {
        let dir = version_one_spool();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let shipped = ship_all(&spool, 1);
        assert_eq!(seqs(&shipped), (11..=300).collect::<Vec<_>>());
        assert_version_one_payloads(&shipped);
        assert_eq!(spool.append(&["v2 line 301"]).unwrap(), Some((301, 301)));
        let newest = spool.segments.back().unwrap().path.clone();
        assert!(std::fs::read(&newest).unwrap().starts_with(SEGMENT_MAGIC), "new records go to a version 2 segment");
        spool.ack(100).unwrap();
        drop(spool);
        let reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        let after_restart = read_all(&reopened);
        assert_eq!(seqs(&after_restart), (101..=301).collect::<Vec<_>>());
        assert_eq!(after_restart.last().unwrap().1, b"v2 line 301");
        assert_eq!(reopened.stats().dropped_lines, 0);
    }

    #[test]
    fn damage_in_a_version_one_segment_is_skipped() {
        let dir = version_one_spool();
        flip_byte(&dir.path().join(segment_name(1)), version_one_frame_offset(150) + 10);
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let shipped = ship_all(&spool, 1);
        assert_eq!(seqs(&shipped), (11..=300).filter(|&seq| seq != 150).collect::<Vec<_>>());
        assert_version_one_payloads(&shipped);
        assert_eq!(spool.stats().damaged_lines, 1);
    }

    #[test]
    fn damage_in_an_open_version_one_segment_skips_to_the_next_indexed_record() {
        let dir = version_one_spool();
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        flip_byte(&dir.path().join(segment_name(1)), version_one_frame_offset(150) + 10);
        // Records after the damage carry no seq: the next indexed one (257)
        // is where the numbering is known again. Documented; exact count.
        let shipped = ship_all(&spool, 1);
        assert_eq!(seqs(&shipped), (11..150).chain(257..=300).collect::<Vec<_>>());
        assert_version_one_payloads(&shipped);
        assert_eq!(spool.stats().damaged_lines, 107);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<usize>),
        Ack(u64),
        Reopen,
        Read(u64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop::collection::vec(0usize..300, 0..20).prop_map(Op::Append),
            2 => (0u64..400).prop_map(Op::Ack),
            1 => Just(Op::Reopen),
            2 => (0u64..400, 0usize..2000).prop_map(|(seq, max)| Op::Read(seq, max)),
        ]
    }

    #[derive(Debug, Clone)]
    enum DamageOp {
        Append(Vec<usize>),
        Ack(u64),
        Read(u64, usize),
        /// Flips a byte of a segment, both picked by fractions of their range.
        Flip(f64, f64),
    }

    fn damage_op() -> impl Strategy<Value = DamageOp> {
        prop_oneof![
            4 => prop::collection::vec(1usize..300, 0..20).prop_map(DamageOp::Append),
            1 => (0u64..400).prop_map(DamageOp::Ack),
            2 => (0u64..400, 0usize..2000).prop_map(|(seq, max)| DamageOp::Read(seq, max)),
            2 => (0f64..1.0, 0f64..1.0).prop_map(|(segment, offset)| DamageOp::Flip(segment, offset)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Against a model that keeps every unacknowledged record: the spool
        /// holds a suffix of it, ending with the newest record, and counts
        /// exactly the records missing from the front as dropped.
        #[test]
        fn behaves_like_the_model(ops in prop::collection::vec(op(), 1..40), small in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let options = if small {
                SpoolOptions { max_bytes: 3000, segment_bytes: 700 }
            } else {
                SpoolOptions { max_bytes: 1 << 30, segment_bytes: 700 }
            };
            let mut spool = Spool::open_with(dir.path(), options).unwrap();
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            let mut next_seq = 1u64;
            let mut acked_upto = 0u64;
            for op in ops {
                match op {
                    Op::Append(lens) => {
                        let records: Vec<Vec<u8>> =
                            lens.iter().enumerate().map(|(index, &len)| record(next_seq + index as u64, len)).collect();
                        let assigned = spool.append(&records).unwrap();
                        if records.is_empty() {
                            prop_assert_eq!(assigned, None);
                        } else {
                            let last_seq = next_seq + records.len() as u64 - 1;
                            prop_assert_eq!(assigned, Some((next_seq, last_seq)));
                            for record in records {
                                model.push_back((next_seq, record));
                                next_seq += 1;
                            }
                        }
                    }
                    Op::Ack(upto) => {
                        spool.ack(upto).unwrap();
                        acked_upto = acked_upto.max(upto.min(next_seq - 1));
                        while model.front().is_some_and(|(seq, _)| *seq <= acked_upto) {
                            model.pop_front();
                        }
                    }
                    Op::Reopen => {
                        drop(spool);
                        spool = Spool::open_with(dir.path(), options).unwrap();
                    }
                    Op::Read(seq, max) => {
                        let records = spool.read_from(seq, max).unwrap();
                        let total: usize = records.iter().map(|(_, bytes)| bytes.len()).sum();
                        prop_assert!(records.len() <= 1 || total <= max);
                        for (seq_read, bytes) in &records {
                            prop_assert!(*seq_read >= seq);
                            let expected = model.iter().find(|(model_seq, _)| model_seq == seq_read);
                            prop_assert_eq!(Some(bytes), expected.map(|(_, bytes)| bytes));
                        }
                    }
                }
                let stats = spool.stats();
                prop_assert_eq!(stats.next_seq, next_seq);
                prop_assert_eq!(stats.acked_upto, acked_upto);
                prop_assert_eq!(stats.damaged_lines, 0);
                let held = read_all(&spool);
                let num_missing = model.len() - held.len();
                prop_assert!(held.iter().eq(model.iter().skip(num_missing)));
                if !small {
                    prop_assert_eq!(num_missing, 0);
                }
                // Everything missing was counted as dropped (dropped lines may
                // since have been acknowledged, so the counter can be larger).
                prop_assert!(stats.dropped_lines >= num_missing as u64);
            }
        }

        /// With bytes flipped anywhere in the segments of a running spool: a
        /// read never returns a record that differs from what was appended,
        /// a flipped byte loses at most the one record it is in, and the
        /// damage counter is exactly the number of distinct unacknowledged
        /// records a read could not return.
        #[test]
        fn flipped_bytes_lose_only_their_records(ops in prop::collection::vec(damage_op(), 1..50)) {
            let dir = tempfile::tempdir().unwrap();
            let options = SpoolOptions { max_bytes: 1 << 30, segment_bytes: 2000 };
            let mut spool = Spool::open_with(dir.path(), options).unwrap();
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            let mut next_seq = 1u64;
            let mut acked_upto = 0u64;
            let mut flipped: HashSet<(PathBuf, u64)> = HashSet::new();
            let mut lost_ever: BTreeSet<u64> = BTreeSet::new();
            for op in ops {
                match op {
                    DamageOp::Append(lens) => {
                        let records: Vec<Vec<u8>> =
                            lens.iter().enumerate().map(|(index, &len)| record(next_seq + index as u64, len)).collect();
                        spool.append(&records).unwrap();
                        for record in records {
                            model.push_back((next_seq, record));
                            next_seq += 1;
                        }
                    }
                    DamageOp::Ack(upto) => {
                        spool.ack(upto).unwrap();
                        acked_upto = acked_upto.max(upto.min(next_seq - 1));
                        while model.front().is_some_and(|(seq, _)| *seq <= acked_upto) {
                            model.pop_front();
                        }
                    }
                    DamageOp::Read(seq, max) => {
                        for (seq_read, bytes) in spool.read_from(seq, max).unwrap() {
                            let expected = model.iter().find(|(model_seq, _)| *model_seq == seq_read);
                            prop_assert_eq!(Some(&bytes), expected.map(|(_, bytes)| bytes));
                        }
                    }
                    DamageOp::Flip(segment_fraction, offset_fraction) => {
                        if spool.segments.is_empty() {
                            continue;
                        }
                        let slot = ((spool.segments.len() as f64 * segment_fraction) as usize).min(spool.segments.len() - 1);
                        let segment = &spool.segments[slot];
                        let offset = ((segment.bytes as f64 * offset_fraction) as u64).min(segment.bytes - 1);
                        // A second flip of the same byte would repair it.
                        if flipped.insert((segment.path.clone(), offset)) {
                            flip_byte(&segment.path, offset);
                        }
                    }
                }
                let held = read_all(&spool);
                for (seq, bytes) in &held {
                    let expected = model.iter().find(|(model_seq, _)| model_seq == seq);
                    prop_assert_eq!(Some(bytes), expected.map(|(_, bytes)| bytes));
                }
                let held_seqs: HashSet<u64> = held.iter().map(|(seq, _)| *seq).collect();
                lost_ever.extend(model.iter().map(|(seq, _)| *seq).filter(|seq| !held_seqs.contains(seq)));
                // One flipped byte costs at most its own record: reading resynchronises.
                prop_assert!(lost_ever.len() <= flipped.len(), "{} lost to {} flips", lost_ever.len(), flipped.len());
                prop_assert_eq!(spool.stats().damaged_lines, lost_ever.len() as u64);
                prop_assert_eq!(spool.stats().dropped_lines, lost_ever.len() as u64);
            }
        }
    }
}
