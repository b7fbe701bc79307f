//! The stored form of a record: one compact binary blob per document.
//!
//! Why not JSON (format version 1): the field names, quotes and decimal
//! numbers of JSON cost bytes before compression and time to write and
//! read; the blob below is about a third smaller than the JSON of a typical
//! line and is written without allocating per field. The doc store
//! compresses blocks of blobs with zstd on top.
//!
//! ```text
//! blob    = 0x03 flags origin source stream [hostgroup] [environment] [job]
//!           [group] [task] [alloc] [node] [level] message num_fields
//!           { key value } seq received_delta
//! seq, num_fields     = unsigned LEB128 varint
//! received_delta      = zigzag varint of received − timestamp (wrapping)
//! flags               = one byte: bit 0..=6 say which of hostgroup, environment,
//!                       job, group, task, alloc, level are present; bit 7 says
//!                       node is the same as origin (and is left out)
//! string              = varint byte length, then UTF-8 bytes
//! ```
//!
//! The order is for zstd, which compresses the doc store a block of
//! records at a time: what one origin repeats line after line (origin,
//! source, stream, job, …) comes first, as one run that the previous record
//! matches; what changes every line (seq, the receive time) comes last,
//! after the message. Format version 2 (tag `0x02`) wrote `seq
//! received_delta flags origin [node] source stream [hostgroup] …
//! [level] message fields`, which breaks that run into pieces: the
//! reordering took the doc store from 0.182 to 0.173 of the raw bytes in
//! `ingest_bench` (docs/benchmarks.md).
//!
//! The timestamp is not in the blob: it is in the `timestamp` fast field,
//! which the search reads anyway to order the records, and in binary form a
//! nanosecond timestamp is eight bytes that zstd cannot shrink.
//!
//! A blob of format version 1 is the record's JSON (with its timestamp); it
//! starts with `{`, which the tags `0x02` and `0x03` are not, so [`decode`]
//! reads all three.

use std::collections::BTreeMap;

use crate::record::LogRecord;

/// The first byte of a blob of format version 2.
const TAG_V2: u8 = 0x02;

/// The first byte of a blob of format version 3.
const TAG_V3: u8 = 0x03;

const NODE_IS_ORIGIN: u8 = 1 << 7;

/// Appends the blob of `record` to `out`; all of it but the timestamp.
pub(crate) fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    out.push(TAG_V3);
    let (flags, optionals) = flags_and_optionals(record);
    out.push(flags);
    write_string(out, &record.origin);
    write_string(out, &record.source);
    write_string(out, &record.stream);
    // hostgroup, environment, job, group, task, alloc: one origin's are the same line after line.
    for value in optionals[..6].iter().flatten() {
        write_string(out, value);
    }
    if flags & NODE_IS_ORIGIN == 0 {
        write_string(out, &record.node);
    }
    if let Some(level) = optionals[6] {
        write_string(out, level);
    }
    write_string(out, &record.message);
    write_varint(out, record.fields.len() as u64);
    for (key, value) in &record.fields {
        write_string(out, key);
        write_string(out, value);
    }
    write_varint(out, record.seq);
    write_varint(out, zigzag(record.received.wrapping_sub(record.timestamp)));
}

/// The flags byte of `record` and its optional strings.
fn flags_and_optionals(record: &LogRecord) -> (u8, [Option<&str>; 7]) {
    let optionals = optional_strings(record);
    let mut flags = 0u8;
    for (bit, value) in optionals.iter().enumerate() {
        if value.is_some() {
            flags |= 1 << bit;
        }
    }
    if record.node == record.origin {
        flags |= NODE_IS_ORIGIN;
    }
    (flags, optionals)
}

/// The blob format version 2 wrote (for tests: this build writes version 3).
#[cfg(test)]
fn encode_v2(record: &LogRecord, out: &mut Vec<u8>) {
    out.push(TAG_V2);
    write_varint(out, record.seq);
    write_varint(out, zigzag(record.received.wrapping_sub(record.timestamp)));
    let optionals = optional_strings(record);
    let mut flags = 0u8;
    for (bit, value) in optionals.iter().enumerate() {
        if value.is_some() {
            flags |= 1 << bit;
        }
    }
    let node_is_origin = record.node == record.origin;
    if node_is_origin {
        flags |= NODE_IS_ORIGIN;
    }
    out.push(flags);
    write_string(out, &record.origin);
    if !node_is_origin {
        write_string(out, &record.node);
    }
    write_string(out, &record.source);
    write_string(out, &record.stream);
    for value in optionals.into_iter().flatten() {
        write_string(out, value);
    }
    write_string(out, &record.message);
    write_varint(out, record.fields.len() as u64);
    for (key, value) in &record.fields {
        write_string(out, key);
        write_string(out, value);
    }
}

/// The record of a blob of either format version, or what is wrong with
/// it; `timestamp` is the record's (from the fast field).
pub(crate) fn decode(bytes: &[u8], timestamp: i64) -> Result<LogRecord, String> {
    match bytes.first() {
        Some(&TAG_V2) => decode_v2(&bytes[1..], timestamp),
        Some(&TAG_V3) => decode_v3(&bytes[1..], timestamp),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|error| error.to_string()),
        Some(other) => Err(format!("unknown record encoding 0x{other:02x}")),
        None => Err("empty record".to_owned()),
    }
}

fn optional_strings(record: &LogRecord) -> [Option<&str>; 7] {
    [
        record.hostgroup.as_deref(),
        record.environment.as_deref(),
        record.job.as_deref(),
        record.group.as_deref(),
        record.task.as_deref(),
        record.alloc.as_deref(),
        record.level.as_deref(),
    ]
}

fn decode_v3(bytes: &[u8], timestamp: i64) -> Result<LogRecord, String> {
    let mut reader = Reader { bytes, position: 0 };
    let flags = reader.byte()?;
    let origin = reader.string()?;
    let source = reader.string()?;
    let stream = reader.string()?;
    let mut optionals: [Option<String>; 7] = Default::default();
    for (bit, value) in optionals[..6].iter_mut().enumerate() {
        if flags & (1 << bit) != 0 {
            *value = Some(reader.string()?);
        }
    }
    let node = if flags & NODE_IS_ORIGIN != 0 { origin.clone() } else { reader.string()? };
    if flags & (1 << 6) != 0 {
        optionals[6] = Some(reader.string()?);
    }
    let message = reader.string()?;
    let fields = read_fields(&mut reader)?;
    let seq = reader.varint()?;
    let received = timestamp.wrapping_add(unzigzag(reader.varint()?));
    reader.finish()?;
    Ok(Parts { origin, node, source, stream, optionals, message, fields }.into_record(seq, timestamp, received))
}

fn read_fields(reader: &mut Reader<'_>) -> Result<BTreeMap<String, String>, String> {
    let num_fields = reader.varint()?;
    let mut fields = BTreeMap::new();
    for _ in 0..num_fields {
        let key = reader.string()?;
        let value = reader.string()?;
        fields.insert(key, value);
    }
    Ok(fields)
}

fn decode_v2(bytes: &[u8], timestamp: i64) -> Result<LogRecord, String> {
    let mut reader = Reader { bytes, position: 0 };
    let seq = reader.varint()?;
    let received = timestamp.wrapping_add(unzigzag(reader.varint()?));
    let flags = reader.byte()?;
    let origin = reader.string()?;
    let node = if flags & NODE_IS_ORIGIN != 0 { origin.clone() } else { reader.string()? };
    let source = reader.string()?;
    let stream = reader.string()?;
    let mut optionals: [Option<String>; 7] = Default::default();
    for (bit, value) in optionals.iter_mut().enumerate() {
        if flags & (1 << bit) != 0 {
            *value = Some(reader.string()?);
        }
    }
    let message = reader.string()?;
    let fields = read_fields(&mut reader)?;
    reader.finish()?;
    Ok(Parts { origin, node, source, stream, optionals, message, fields }.into_record(seq, timestamp, received))
}

/// What a blob holds besides its seq and times, in either layout.
struct Parts {
    origin: String,
    node: String,
    source: String,
    stream: String,
    /// hostgroup, environment, job, group, task, alloc, level.
    optionals: [Option<String>; 7],
    message: String,
    fields: BTreeMap<String, String>,
}

impl Parts {
    fn into_record(self, seq: u64, timestamp: i64, received: i64) -> LogRecord {
        let Parts { origin, node, source, stream, optionals, message, fields } = self;
        let [hostgroup, environment, job, group, task, alloc, level] = optionals;
        LogRecord {
            origin,
            seq,
            timestamp,
            received,
            node,
            hostgroup,
            environment,
            job,
            group,
            task,
            alloc,
            source,
            stream,
            level,
            message,
            fields,
        }
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    write_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    /// Nothing may follow the record.
    fn finish(&self) -> Result<(), String> {
        match self.bytes.len() - self.position {
            0 => Ok(()),
            left => Err(format!("{left} bytes left after the record")),
        }
    }
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.position).ok_or("the record ends early")?;
        self.position += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number in the record is too long".to_owned())
    }

    fn string(&mut self) -> Result<String, String> {
        self.str().map(str::to_owned)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let length = usize::try_from(self.varint()?).map_err(|_| "a string length overflows")?;
        let end = self.position.checked_add(length).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or("a string runs past the end of the record")?;
        let bytes: &'a [u8] = self.bytes;
        let text = std::str::from_utf8(&bytes[self.position..end]).map_err(|error| error.to_string())?;
        self.position = end;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> LogRecord {
        let mut record = crate::record::from_line(
            "node-1",
            7,
            "node-1",
            "task",
            "stdout",
            "2024-01-02T03:04:05Z ERROR failed user=alice",
            0,
        );
        record.job = Some("web".to_owned());
        record.alloc = Some("a1b2".to_owned());
        record
    }

    #[test]
    fn round_trips_and_reads_version_1() {
        let record = sample();
        let mut blob = Vec::new();
        encode(&record, &mut blob);
        assert_eq!(decode(&blob, record.timestamp), Ok(record.clone()));
        let json = serde_json::to_vec(&record).unwrap();
        assert!(blob.len() < json.len() / 2, "{} vs {}", blob.len(), json.len());
        assert_eq!(decode(&json, 0), Ok(record));
    }

    #[test]
    fn reads_version_2_and_writes_version_3() {
        let mut record = sample();
        record.node = "node-2".to_owned();
        record.level = None;
        let mut blob = Vec::new();
        encode_v2(&record, &mut blob);
        assert_eq!(blob[0], TAG_V2);
        assert_eq!(decode(&blob, record.timestamp), Ok(record.clone()));
        blob.clear();
        encode(&record, &mut blob);
        assert_eq!(blob[0], TAG_V3);
        assert_eq!(decode(&blob, record.timestamp), Ok(record));
    }

    #[test]
    fn rejects_damaged_blobs() {
        let mut blob = Vec::new();
        encode(&sample(), &mut blob);
        for length in 0..blob.len() {
            assert!(decode(&blob[..length], 0).is_err(), "truncated to {length}");
        }
        blob.push(0);
        assert!(decode(&blob, 0).is_err());
        assert!(decode(&[0x07], 0).is_err());
    }

    proptest! {
        #[test]
        fn any_record_round_trips(
            origin in "\\PC{0,8}",
            node in prop_oneof![Just(None), "\\PC{0,8}".prop_map(Some)],
            seq in any::<u64>(),
            timestamp in any::<i64>(),
            received in any::<i64>(),
            optionals in proptest::collection::vec(prop_oneof![Just(None), "\\PC{0,6}".prop_map(Some)], 7),
            message in "\\PC{0,60}",
            fields in proptest::collection::btree_map("[a-z.]{0,5}", "\\PC{0,5}", 0..4),
        ) {
            let record = LogRecord {
                node: node.unwrap_or_else(|| origin.clone()),
                origin,
                seq,
                timestamp,
                received,
                hostgroup: optionals[0].clone(),
                environment: optionals[1].clone(),
                job: optionals[2].clone(),
                group: optionals[3].clone(),
                task: optionals[4].clone(),
                alloc: optionals[5].clone(),
                source: "file".to_owned(),
                stream: "/var/log/x".to_owned(),
                level: optionals[6].clone(),
                message,
                fields,
            };
            let mut blob = Vec::new();
            encode(&record, &mut blob);
            prop_assert_eq!(decode(&blob, timestamp), Ok(record.clone()));
            blob.clear();
            encode_v2(&record, &mut blob);
            prop_assert_eq!(decode(&blob, timestamp), Ok(record));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for tag in [TAG_V2, TAG_V3] {
                let mut tagged = vec![tag];
                tagged.extend_from_slice(&bytes);
                let _ = decode(&tagged, 0);
            }
            let _ = decode(&bytes, 0);
        }
    }
}
