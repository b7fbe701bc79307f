//! The durable, size-bounded on-disk spool between the sources and the servers.
//!
//! Why: an agent must not lose lines when the servers are unreachable or when
//! it restarts, yet must not fill the disk either. Lines are appended in
//! batches (one fsync per batch), numbered with a per-agent `seq` that is never
//! reused, shipped with [`Spool::read_from`] and deleted once acknowledged with
//! [`Spool::ack`]. When the spool is full, the oldest unacknowledged segments
//! are dropped and counted in `dropped_lines`.
//!
//! On disk, in the spool directory:
//!
//! ```text
//! spool.meta.json            {version, next_seq, acked_upto, dropped_upto, dropped_lines}, replaced atomically
//! seg-00000000000000000001.log   "DRSPOOL1" then frames, the first frame holding seq 1
//! seg-00000000000000004097.log   ...
//! frame = len: u32 LE | crc32(payload): u32 LE | payload
//! ```
//!
//! Invariants: segments hold consecutive seqs starting at the seq in their
//! name; only the newest segment is appended to; every seq at or below
//! `max(acked_upto, dropped_upto)` is gone or deleted on the next open; a
//! frame that fails its length or CRC check ends its segment (a torn write is
//! truncated on open).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::checkpoint::{sync_parent_dir, write_atomically};
use crate::error::{Error, Result};

const SEGMENT_MAGIC: &[u8; 8] = b"DRSPOOL1";
const FRAME_HEADER_BYTES: u64 = 8;
const META_FILE: &str = "spool.meta.json";
const META_VERSION: u32 = 1;
/// One sparse index entry every this many records, to find a seq without a full scan.
const INDEX_STRIDE: u64 = 256;
/// The hard upper bound of one record; larger lengths in a frame mean a torn write.
const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

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
    /// Records dropped unshipped because the spool was full, since it was created.
    pub dropped_lines: u64,
    pub total_bytes: u64,
    pub num_segments: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Meta {
    version: u32,
    next_seq: u64,
    acked_upto: u64,
    dropped_upto: u64,
    dropped_lines: u64,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first_seq: u64,
    num_records: u64,
    /// The file length, header included.
    bytes: u64,
    /// `(seq, offset)` of every `INDEX_STRIDE`-th record.
    index: Vec<(u64, u64)>,
}

impl Segment {
    /// One past the last seq in this segment.
    fn end_seq(&self) -> u64 {
        self.first_seq + self.num_records
    }

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
            None => (self.first_seq, SEGMENT_MAGIC.len() as u64),
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
    total_bytes: u64,
    write_buffer: Vec<u8>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, keeping at most `max_bytes` of segments.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Spool> {
        Spool::open_with(dir, SpoolOptions::new(max_bytes))
    }

    /// Opens (or creates) the spool in `dir`: reads the metadata, checks every
    /// segment, truncates a torn tail and deletes acknowledged segments.
    pub fn open_with(dir: impl Into<PathBuf>, options: SpoolOptions) -> Result<Spool> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(Error::io("create spool directory", &dir))?;
        let meta = read_meta(&dir.join(META_FILE))?;
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

        let mut segments = VecDeque::new();
        let mut num_deleted = 0usize;
        for (first_seq, path) in segment_names {
            let segment = match scan_segment(&path, first_seq)? {
                Some(segment) => segment,
                None => {
                    remove_file(&path)?;
                    num_deleted += 1;
                    continue;
                }
            };
            if segment.num_records == 0 || segment.end_seq() <= low_water + 1 {
                remove_file(&path)?;
                num_deleted += 1;
                continue;
            }
            if let Some(previous) = segments.back()
                && segment.first_seq < Segment::end_seq(previous)
            {
                return Err(Error::Corrupt {
                    path,
                    what: "spool segment",
                    reason: format!("it starts at seq {first_seq}, inside the previous segment"),
                });
            }
            segments.push_back(segment);
        }
        if num_deleted > 0 {
            sync_parent_dir(&dir.join(META_FILE))?;
        }

        let mut meta = meta;
        meta.version = META_VERSION;
        let segments_end = segments.back().map_or(0, Segment::end_seq);
        meta.next_seq = meta.next_seq.max(segments_end).max(low_water + 1).max(1);
        let total_bytes = segments.iter().map(|segment| segment.bytes).sum();
        Ok(Spool { dir, options, segments, active: None, meta, total_bytes, write_buffer: Vec::new() })
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
        debug_assert_eq!(segment.end_seq(), first_seq, "only the newest segment is appended to");
        self.write_buffer.clear();
        let mut offset = segment.bytes;
        let mut seq = first_seq;
        for record in records {
            let payload = record.as_ref();
            segment.record_indexed(seq, offset);
            self.write_buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            self.write_buffer.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
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
        segment.bytes = offset;
        self.total_bytes += batch_bytes;
        self.meta.next_seq = seq;
        Ok(Some((first_seq, seq - 1)))
    }

    /// Reads records from `seq` on (or from the first available one after it),
    /// up to about `max_bytes` of payload; always at least one record if any.
    pub fn read_from(&self, seq: u64, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut wanted = seq.max(self.low_water() + 1);
        let mut records = Vec::new();
        let mut num_bytes = 0usize;
        for segment in &self.segments {
            if segment.end_seq() <= wanted {
                continue;
            }
            wanted = wanted.max(segment.first_seq);
            let (mut current_seq, offset) = segment.seek_point(wanted);
            let file = File::open(&segment.path).map_err(Error::io("open spool segment", &segment.path))?;
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            reader.seek(SeekFrom::Start(offset)).map_err(Error::io("seek spool segment", &segment.path))?;
            let mut payload = Vec::new();
            while current_seq < segment.end_seq() {
                read_frame(&mut reader, &mut payload).map_err(|reason| Error::Corrupt {
                    path: segment.path.clone(),
                    what: "spool segment",
                    reason: format!("record {current_seq}: {reason}"),
                })?;
                if current_seq >= wanted {
                    if !records.is_empty() && num_bytes + payload.len() > max_bytes {
                        return Ok(records);
                    }
                    num_bytes += payload.len();
                    records.push((current_seq, std::mem::take(&mut payload)));
                }
                current_seq += 1;
            }
            wanted = segment.end_seq();
        }
        Ok(records)
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
            if segment.end_seq() > upto_seq + 1 {
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
        SpoolStats {
            next_seq: self.meta.next_seq,
            acked_upto: self.meta.acked_upto,
            first_available_seq,
            dropped_lines: self.meta.dropped_lines,
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
        self.total_bytes += SEGMENT_MAGIC.len() as u64;
        self.segments.push_back(Segment {
            path,
            first_seq,
            num_records: 0,
            bytes: SEGMENT_MAGIC.len() as u64,
            index: Vec::new(),
        });
        self.active = Some(file);
        Ok(())
    }

    fn drop_oldest_segment(&mut self) -> Result<()> {
        let Some(segment) = self.segments.front() else { return Ok(()) };
        let first_unacked = segment.first_seq.max(self.low_water() + 1);
        let num_dropped = segment.end_seq().saturating_sub(first_unacked);
        self.meta.dropped_upto = self.meta.dropped_upto.max(segment.end_seq() - 1);
        self.meta.dropped_lines += num_dropped;
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
        let contents = serde_json::to_vec(&self.meta).map_err(|err| Error::Corrupt {
            path: self.dir.join(META_FILE),
            what: "spool metadata",
            reason: err.to_string(),
        })?;
        write_atomically(&self.dir.join(META_FILE), &contents)
    }
}

fn read_meta(path: &Path) -> Result<Meta> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Meta { version: META_VERSION, next_seq: 1, ..Meta::default() });
        }
        Err(err) => return Err(Error::io("read spool metadata", path)(err)),
    };
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|err| Error::Corrupt {
        path: path.to_path_buf(),
        what: "spool metadata file",
        reason: err.to_string(),
    })?;
    if meta.version > META_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: meta.version,
            supported: META_VERSION,
        });
    }
    Ok(meta)
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

/// Reads one frame into `payload`; the error says why the frame is not valid.
fn read_frame(reader: &mut impl Read, payload: &mut Vec<u8>) -> std::result::Result<(), String> {
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    reader.read_exact(&mut header).map_err(|err| format!("frame header: {err}"))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES {
        return Err(format!("length {len} exceeds the maximum"));
    }
    payload.clear();
    payload.resize(len, 0);
    reader.read_exact(payload).map_err(|err| format!("payload of {len} bytes: {err}"))?;
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".to_owned());
    }
    Ok(())
}

/// Scans a segment, truncating it after its last valid frame. `None` when the
/// file does not even hold a complete header (a crash while creating it).
fn scan_segment(path: &Path, first_seq: u64) -> Result<Option<Segment>> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(Error::io("open spool segment", path))?;
    let file_len = file.metadata().map_err(Error::io("stat spool segment", path))?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, &file);
    let mut magic = [0u8; SEGMENT_MAGIC.len()];
    if reader.read_exact(&mut magic).is_err() {
        return Ok(None);
    }
    if &magic != SEGMENT_MAGIC {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            what: "spool segment",
            reason: "it does not start with the DRSPOOL1 header".to_owned(),
        });
    }
    let mut segment = Segment {
        path: path.to_path_buf(),
        first_seq,
        num_records: 0,
        bytes: SEGMENT_MAGIC.len() as u64,
        index: Vec::new(),
    };
    let mut payload = Vec::new();
    while segment.bytes < file_len {
        if let Err(reason) = read_frame(&mut reader, &mut payload) {
            warn!(path = %path.display(), valid_bytes = segment.bytes, file_len, %reason, "truncating torn spool segment");
            file.set_len(segment.bytes).map_err(Error::io("truncate spool segment", path))?;
            file.sync_all().map_err(Error::io("fsync spool segment", path))?;
            break;
        }
        let seq = segment.end_seq();
        segment.record_indexed(seq, segment.bytes);
        segment.num_records += 1;
        segment.bytes += FRAME_HEADER_BYTES + payload.len() as u64;
    }
    Ok(Some(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(seq_hint: u64, len: usize) -> Vec<u8> {
        let mut bytes = format!("line {seq_hint} ").into_bytes();
        bytes.resize(len.max(bytes.len()), b'x');
        bytes
    }

    fn read_all(spool: &Spool) -> Vec<(u64, Vec<u8>)> {
        spool.read_from(0, usize::MAX).unwrap()
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
    fn torn_tail_is_truncated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.append(&["one", "two"]).unwrap();
        let segment_path = spool.segments.back().unwrap().path.clone();
        drop(spool);
        let good_len = std::fs::metadata(&segment_path).unwrap().len();

        // A crash in the middle of writing a frame: header and half a payload.
        let mut file = OpenOptions::new().append(true).open(&segment_path).unwrap();
        file.write_all(&10u32.to_le_bytes()).unwrap();
        file.write_all(&crc32fast::hash(b"0123456789").to_le_bytes()).unwrap();
        file.write_all(b"01234").unwrap();
        drop(file);

        let mut reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(std::fs::metadata(&segment_path).unwrap().len(), good_len);
        assert_eq!(read_all(&reopened), vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        assert_eq!(reopened.append(&["three"]).unwrap(), Some((3, 3)));
    }

    #[test]
    fn corrupted_payload_ends_the_segment() {
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

    #[test]
    fn version_one_metadata_sample_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), include_str!("../tests/samples/spool.meta-v1.json")).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.stats().dropped_lines, 7);
        assert_eq!(spool.append(&["x"]).unwrap(), Some((42, 42)));
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
    }
}
