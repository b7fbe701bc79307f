//! A node's usage over the last 24 h, one point a minute: the ring of
//! minutes a server keeps per node from the 10-second samples its agents
//! send (docs/nodes.md, "Usage history").
//!
//! Pure: the time is the sample's, no clock is read. Each minute holds the
//! mean of that minute's samples, quantised to one byte per figure, so a
//! node's 24 h take 1440 × 5 bytes (about 7 KB; 10,000 nodes about 72 MB,
//! measured by the test `usage_history_memory`).
//!
//! Saved in the server's data directory as `usage-history.bin` (a
//! versioned, checksummed, zstd-compressed file: [`encode_history`],
//! [`decode_history`]) and read back at start; the file functions at the
//! end are the only I/O here.

use drover_proto::api::UsagePoint;
use drover_types::usage::NodeSample;

/// Minutes kept: 24 h.
pub const MINUTES: usize = 24 * 60;

/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;

/// A byte that holds no value (no sample that minute, or a figure the
/// agent could not measure).
const NONE: u8 = u8::MAX;

/// Percentages are kept in steps of 0.5.
const PERCENT_STEPS: f32 = 2.0;

/// Byte rates are kept as `STEPS_PER_DOUBLING × log2(1 + rate)`: steps of
/// 9 %, up to 2^31.75 bytes/s (3.6 GB/s); a higher rate reads as that.
const STEPS_PER_DOUBLING: f64 = 8.0;

/// One minute, quantised: CPU, memory, disk (percent × 2), received and
/// sent bytes per second (log scale). All `NONE`: no sample that minute.
type Slot = [u8; 5];

const EMPTY: Slot = [NONE; 5];

/// The sums of the minute being filled, averaged into its slot on every
/// sample so that the current minute reads like the others.
#[derive(Clone, Debug, Default)]
struct MinuteSums {
    /// Per figure, the sum and the number of samples that had it.
    sums: [(f64, u32); 5],
}

/// The byte counters of the previous sample, to turn counters into rates.
#[derive(Clone, Copy, Debug)]
struct Counters {
    time_ms: i64,
    rx_bytes: u64,
    tx_bytes: u64,
}

/// One node's last 24 h of usage, a slot a minute.
#[derive(Clone, Debug)]
pub struct UsageRing {
    /// Indexed by minute number (since the epoch) modulo [`MINUTES`].
    slots: Box<[Slot; MINUTES]>,
    /// The minute number of the newest sample; slots older than
    /// `newest - MINUTES` have been overwritten or cleared.
    newest: i64,
    current: MinuteSums,
    counters: Option<Counters>,
}

impl Default for UsageRing {
    fn default() -> Self {
        UsageRing {
            slots: Box::new([EMPTY; MINUTES]),
            newest: i64::MIN,
            current: MinuteSums::default(),
            counters: None,
        }
    }
}

impl UsageRing {
    /// Adds a sample (its `time_ms` is the server's clock). A sample older
    /// than the newest minute (the clock went back) is ignored.
    pub fn record(&mut self, sample: &NodeSample) {
        let minute = sample.time_ms.div_euclid(MINUTE_MS);
        if minute < self.newest {
            return;
        }
        let (rx_rate, tx_rate) = self.rates(sample);
        if minute > self.newest {
            self.advance_to(minute);
        }
        let figures = [
            Some(f64::from(sample.cpu_percent)),
            (sample.memory_total > 0).then(|| f64::from(sample.memory_used_percent())),
            sample.fullest_disk().map(|disk| f64::from(disk.used_percent())),
            rx_rate,
            tx_rate,
        ];
        for (sum, figure) in self.current.sums.iter_mut().zip(figures) {
            if let Some(value) = figure.filter(|value| value.is_finite()) {
                sum.0 += value;
                sum.1 += 1;
            }
        }
        let mean = |index: usize| {
            let (sum, count) = self.current.sums[index];
            (count > 0).then(|| sum / f64::from(count))
        };
        let slot = [
            encode_percent(mean(0)),
            encode_percent(mean(1)),
            encode_percent(mean(2)),
            encode_rate(mean(3)),
            encode_rate(mean(4)),
        ];
        self.slots[slot_of(minute)] = slot;
    }

    /// The minutes from `since_ms` on (that minute included), oldest
    /// first; minutes without a sample are left out.
    pub fn points(&self, since_ms: i64) -> Vec<UsagePoint> {
        if self.newest == i64::MIN {
            return Vec::new();
        }
        let oldest_kept = self.newest - MINUTES as i64 + 1;
        let first = since_ms.div_euclid(MINUTE_MS).max(oldest_kept);
        (first..=self.newest)
            .filter_map(|minute| {
                let slot = self.slots[slot_of(minute)];
                (slot != EMPTY).then(|| UsagePoint {
                    time_ms: minute * MINUTE_MS,
                    cpu_percent: decode_percent(slot[0]),
                    memory_percent: decode_percent(slot[1]),
                    disk_percent: decode_percent(slot[2]),
                    net_rx_bytes_per_sec: decode_rate(slot[3]),
                    net_tx_bytes_per_sec: decode_rate(slot[4]),
                })
            })
            .collect()
    }

    /// Bytes this ring holds, on the heap and inline.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of::<[Slot; MINUTES]>()
    }

    /// Clears the slots of the minutes after the newest up to `minute`
    /// (all of them after a gap of a day or more) and starts that minute.
    fn advance_to(&mut self, minute: i64) {
        let gap = if self.newest == i64::MIN { MINUTES as i64 } else { minute - self.newest };
        if gap >= MINUTES as i64 {
            self.slots.fill(EMPTY);
        } else {
            for skipped in self.newest + 1..=minute {
                self.slots[slot_of(skipped)] = EMPTY;
            }
        }
        self.newest = minute;
        self.current = MinuteSums::default();
    }

    /// Received and sent bytes per second since the previous sample, over
    /// every interface; `None` for the first sample, after a counter went
    /// back (reboot, interface recreated) or with no interface at all.
    fn rates(&mut self, sample: &NodeSample) -> (Option<f64>, Option<f64>) {
        if sample.net.is_empty() {
            self.counters = None;
            return (None, None);
        }
        let now = Counters {
            time_ms: sample.time_ms,
            rx_bytes: sample.net.iter().map(|net| net.rx_bytes).sum(),
            tx_bytes: sample.net.iter().map(|net| net.tx_bytes).sum(),
        };
        let previous = self.counters.replace(now);
        let Some(previous) = previous else { return (None, None) };
        let elapsed_secs = (now.time_ms - previous.time_ms) as f64 / 1000.0;
        if elapsed_secs <= 0.0 {
            return (None, None);
        }
        let rate = |before: u64, after: u64| after.checked_sub(before).map(|bytes| bytes as f64 / elapsed_secs);
        (rate(previous.rx_bytes, now.rx_bytes), rate(previous.tx_bytes, now.tx_bytes))
    }
}

/// The history file: its name in the server's data directory, and the
/// first bytes that say what it is and in which layout.
pub const HISTORY_FILE: &str = "usage-history.bin";
const MAGIC: &[u8; 8] = b"DRVUSAGE";
/// Version 1: the body below, zstd-compressed, after the magic and the
/// version (u32, little-endian).
const VERSION: u32 = 1;
/// At most this many nodes are read from (or written to) the file.
pub const MAX_NODES: usize = 200_000;
/// A node id longer than this is damage.
const MAX_ID_BYTES: usize = 256;

impl UsageRing {
    /// Appends this ring to `body` when it holds a minute newer than
    /// `oldest_minute`: the newest minute (i64), the number of minutes
    /// that follow (u16, at most [`MINUTES`]), then their slots, oldest
    /// first, from the first one with a sample.
    fn encode(&self, id: &str, oldest_minute: i64, body: &mut Vec<u8>) -> bool {
        if self.newest == i64::MIN || self.newest < oldest_minute {
            return false;
        }
        let first_kept = (self.newest - MINUTES as i64 + 1).max(oldest_minute);
        let first = (first_kept..=self.newest).find(|minute| self.slots[slot_of(*minute)] != EMPTY);
        let Some(first) = first else { return false };
        let id = &id.as_bytes()[..id.len().min(MAX_ID_BYTES)];
        body.extend_from_slice(&(id.len() as u16).to_le_bytes());
        body.extend_from_slice(id);
        body.extend_from_slice(&self.newest.to_le_bytes());
        body.extend_from_slice(&((self.newest - first + 1) as u16).to_le_bytes());
        for minute in first..=self.newest {
            body.extend_from_slice(&self.slots[slot_of(minute)]);
        }
        true
    }
}

/// The saved form of every ring that holds a minute of the last 24 h
/// before `now_ms` (at most [`MAX_NODES`], the busiest first is not
/// guaranteed: beyond it nodes are left out), ready to be written: magic,
/// version, then the zstd-compressed body (node count, the rings, a CRC-32
/// of them).
pub fn encode_history<'a>(rings: impl IntoIterator<Item = (&'a str, &'a UsageRing)>, now_ms: i64) -> Vec<u8> {
    let oldest_minute = now_ms.div_euclid(MINUTE_MS) - MINUTES as i64 + 1;
    let mut body = vec![0u8; 4];
    let mut count: u32 = 0;
    for (id, ring) in rings {
        if count as usize == MAX_NODES {
            break;
        }
        if ring.encode(id, oldest_minute, &mut body) {
            count += 1;
        }
    }
    body[..4].copy_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let mut file = Vec::with_capacity(body.len() / 4 + 16);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&VERSION.to_le_bytes());
    // Level 1: fast, and the slots of quiet nodes compress well.
    match zstd::stream::encode_all(&body[..], 1) {
        Ok(compressed) => file.extend_from_slice(&compressed),
        Err(_) => unreachable!("compressing into memory does not fail"),
    }
    file
}

/// Reads a history file's bytes back into rings, dropping minutes older
/// than 24 h before `now_ms` (a ring with none left is left out). Damage
/// (another file, another version, a cut or altered body) is an error
/// saying what is wrong; nothing is half-read.
pub fn decode_history(file: &[u8], now_ms: i64) -> Result<Vec<(String, UsageRing)>, String> {
    let header = MAGIC.len() + 4;
    if file.len() < header || &file[..MAGIC.len()] != MAGIC {
        return Err("not a drover usage history file (its first bytes are not DRVUSAGE)".to_owned());
    }
    let version = u32::from_le_bytes([file[8], file[9], file[10], file[11]]);
    if version != VERSION {
        return Err(format!("version {version}, this drover reads version {VERSION}"));
    }
    // The largest body MAX_NODES full rings make: a bound on what a
    // damaged (or hostile) compressed body may expand to.
    let limit = (4 + MAX_NODES * (2 + MAX_ID_BYTES + 8 + 2 + MINUTES * 5) + 4) as u64;
    let mut body = Vec::new();
    let decoder = zstd::stream::Decoder::new(&file[header..]).map_err(|error| format!("cannot decompress: {error}"))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(decoder, limit + 1), &mut body)
        .map_err(|error| format!("cannot decompress: {error}"))?;
    if body.len() as u64 > limit {
        return Err(format!("its body is larger than {limit} bytes"));
    }
    if body.len() < 8 {
        return Err("its body is cut short".to_owned());
    }
    let (content, crc) = body.split_at(body.len() - 4);
    if crc32fast::hash(content) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("its checksum does not match: the file was cut or altered".to_owned());
    }
    let mut reader = Reader { bytes: content, at: 0 };
    let count = reader.u32()? as usize;
    if count > MAX_NODES {
        return Err(format!("it holds {count} nodes, more than {MAX_NODES}"));
    }
    let oldest_minute = now_ms.div_euclid(MINUTE_MS) - MINUTES as i64 + 1;
    let mut rings = Vec::with_capacity(count);
    for _ in 0..count {
        let id_len = reader.u16()? as usize;
        if id_len > MAX_ID_BYTES {
            return Err(format!("a node id of {id_len} bytes at byte {}", reader.at));
        }
        let id = String::from_utf8(reader.take(id_len)?.to_vec())
            .map_err(|_| format!("a node id that is not UTF-8 at byte {}", reader.at))?;
        let newest = i64::from_le_bytes(reader.array::<8>()?);
        let minutes = reader.u16()? as usize;
        if minutes == 0 || minutes > MINUTES {
            return Err(format!("node {id}: {minutes} minutes, not 1 to {MINUTES}"));
        }
        let mut ring = UsageRing::default();
        let first = newest - minutes as i64 + 1;
        for minute in first..=newest {
            let slot = reader.array::<5>()?;
            if minute >= oldest_minute {
                ring.slots[slot_of(minute)] = slot;
            }
        }
        if newest >= oldest_minute {
            ring.newest = newest;
            rings.push((id, ring));
        }
    }
    if reader.at != content.len() {
        return Err(format!("{} bytes after the last node", content.len() - reader.at));
    }
    Ok(rings)
}

/// What loading the history file found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The rings read (none when there was no file or it was damaged).
    pub rings: Vec<(String, UsageRing)>,
    /// A damaged file: why, and where it was moved to.
    pub quarantined: Option<(String, std::path::PathBuf)>,
}

/// Loads `dir/usage-history.bin`. No file: nothing. A file that does not
/// read is renamed `usage-history.bin.damaged-<ms>` beside it (kept for a
/// person to look at) and the server starts with an empty history.
pub fn load_history_file(dir: &std::path::Path, now_ms: i64) -> Loaded {
    let path = dir.join(HISTORY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
        Err(error) => return quarantine(&path, format!("cannot read it: {error}"), now_ms),
    };
    match decode_history(&bytes, now_ms) {
        Ok(rings) => Loaded { rings, quarantined: None },
        Err(reason) => quarantine(&path, reason, now_ms),
    }
}

fn quarantine(path: &std::path::Path, reason: String, now_ms: i64) -> Loaded {
    let moved = path.with_file_name(format!("{HISTORY_FILE}.damaged-{now_ms}"));
    let reason = match std::fs::rename(path, &moved) {
        Ok(()) => reason,
        Err(error) => format!("{reason}; and it could not be moved aside: {error}"),
    };
    Loaded { rings: Vec::new(), quarantined: Some((reason, moved)) }
}

/// Writes `file` (from [`encode_history`]) as `dir/usage-history.bin`:
/// to a temporary file first, synced, then renamed over the old one, so
/// a crash leaves the old file or the new one, never half of one.
pub fn save_history_file(dir: &std::path::Path, file: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(HISTORY_FILE);
    let temporary = dir.join(format!("{HISTORY_FILE}.tmp"));
    let mut out = std::fs::File::create(&temporary)?;
    out.write_all(file)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&temporary, &path)
}

/// Reads a body front to back; running past its end is damage.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(length).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("cut short at byte {} (wanted {length} more)", self.at));
        };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array::<2>()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }
}

fn slot_of(minute: i64) -> usize {
    minute.rem_euclid(MINUTES as i64) as usize
}

fn encode_percent(value: Option<f64>) -> u8 {
    match value {
        Some(percent) => (percent.clamp(0.0, 100.0) * f64::from(PERCENT_STEPS)).round() as u8,
        None => NONE,
    }
}

fn decode_percent(byte: u8) -> Option<f32> {
    (byte != NONE).then(|| f32::from(byte) / PERCENT_STEPS)
}

fn encode_rate(value: Option<f64>) -> u8 {
    match value {
        Some(rate) => ((1.0 + rate.max(0.0)).log2() * STEPS_PER_DOUBLING).round().min(f64::from(NONE - 1)) as u8,
        None => NONE,
    }
}

fn decode_rate(byte: u8) -> Option<f64> {
    (byte != NONE).then(|| (f64::from(byte) / STEPS_PER_DOUBLING).exp2() - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::usage::{DiskSample, NetSample};

    /// A sample at `seconds` after the epoch's minute 1000.
    fn sample(seconds: i64, cpu: f32, rx_bytes: u64) -> NodeSample {
        NodeSample {
            time_ms: 1000 * MINUTE_MS + seconds * 1000,
            cpu_percent: cpu,
            memory_total: 1000,
            memory_used: 250,
            disks: vec![DiskSample {
                mount: "/".to_owned(),
                fs_type: "ext4".to_owned(),
                total: 100,
                used: 40,
                avail: 60,
            }],
            net: vec![NetSample { interface: "eth0".to_owned(), rx_bytes, tx_bytes: 0, ..NetSample::default() }],
            ..NodeSample::default()
        }
    }

    #[test]
    fn the_samples_of_a_minute_are_averaged_into_one_point() {
        let mut ring = UsageRing::default();
        // Six samples 10 s apart in minute 1000, one in minute 1001; the
        // link receives 1000 bytes/s throughout.
        for (index, cpu) in [10.0, 20.0, 30.0, 40.0, 50.0, 60.0].into_iter().enumerate() {
            let seconds = index as i64 * 10;
            ring.record(&sample(seconds, cpu, seconds as u64 * 1000));
        }
        ring.record(&sample(60, 5.0, 60_000));
        let points = ring.points(0);
        assert_eq!(points.len(), 2, "{points:?}");
        assert_eq!(points[0].time_ms, 1000 * MINUTE_MS);
        assert_eq!(points[0].cpu_percent, Some(35.0));
        assert_eq!(points[0].memory_percent, Some(25.0));
        assert_eq!(points[0].disk_percent, Some(40.0));
        let rx = points[0].net_rx_bytes_per_sec.unwrap_or_default();
        assert!((rx / 1000.0 - 1.0).abs() < 0.05, "about 1000 bytes/s, not {rx}");
        assert_eq!(points[0].net_tx_bytes_per_sec, Some(0.0));
        assert_eq!(points[1].time_ms, 1001 * MINUTE_MS);
        assert_eq!(points[1].cpu_percent, Some(5.0));
    }

    #[test]
    fn the_first_sample_has_no_rate_and_a_counter_going_back_none_either() {
        let mut ring = UsageRing::default();
        ring.record(&sample(0, 1.0, 5000));
        assert_eq!(ring.points(0)[0].net_rx_bytes_per_sec, None);
        ring.record(&sample(60, 1.0, 10));
        assert_eq!(ring.points(0)[1].net_rx_bytes_per_sec, None, "a reboot resets the counters");
    }

    #[test]
    fn unknown_figures_stay_unknown() {
        let mut ring = UsageRing::default();
        ring.record(&NodeSample { time_ms: 0, cpu_percent: 3.0, ..NodeSample::default() });
        let point = &ring.points(0)[0];
        assert_eq!(point.cpu_percent, Some(3.0));
        assert_eq!((point.memory_percent, point.disk_percent, point.net_rx_bytes_per_sec), (None, None, None));
    }

    #[test]
    fn a_day_wraps_around_and_drops_the_oldest_minutes() {
        let mut ring = UsageRing::default();
        // 25 h of one sample a minute: only the last 24 h stay.
        let minutes = MINUTES as i64 + 60;
        for minute in 0..minutes {
            ring.record(&sample(minute * 60, (minute % 100) as f32, 0));
        }
        let points = ring.points(0);
        assert_eq!(points.len(), MINUTES);
        assert_eq!(points[0].time_ms, (1000 + 60) * MINUTE_MS, "the first hour is gone");
        assert_eq!(points.last().map(|point| point.time_ms), Some((1000 + minutes - 1) * MINUTE_MS));
        assert_eq!(points.last().and_then(|point| point.cpu_percent), Some(((minutes - 1) % 100) as f32));
        // `since` cuts the oldest.
        let last_hour = ring.points((1000 + minutes - 60) * MINUTE_MS);
        assert_eq!(last_hour.len(), 60);
    }

    #[test]
    fn a_gap_leaves_no_stale_minutes() {
        let mut ring = UsageRing::default();
        for minute in 0..10 {
            ring.record(&sample(minute * 60, 50.0, 0));
        }
        // The agent is away 24 h + 5 min, then comes back: nothing of
        // before remains, even where the new minutes did not write.
        ring.record(&sample((MINUTES as i64 + 15) * 60, 7.0, 0));
        let points = ring.points(0);
        assert_eq!(points.len(), 1, "{points:?}");
        // A shorter gap clears the skipped minutes only.
        let mut ring = UsageRing::default();
        ring.record(&sample(0, 1.0, 0));
        ring.record(&sample(MINUTES as i64 * 60 - 60, 2.0, 0));
        ring.record(&sample(MINUTES as i64 * 60 + 120, 3.0, 0));
        let cpus: Vec<_> = ring.points(0).iter().map(|point| point.cpu_percent).collect();
        assert_eq!(cpus, vec![Some(2.0), Some(3.0)]);
    }

    #[test]
    fn a_sample_from_the_past_is_ignored() {
        let mut ring = UsageRing::default();
        ring.record(&sample(120, 9.0, 0));
        ring.record(&sample(0, 1.0, 0));
        let cpus: Vec<_> = ring.points(0).iter().map(|point| point.cpu_percent).collect();
        assert_eq!(cpus, vec![Some(9.0)]);
    }

    #[test]
    fn a_saved_history_reads_back_the_same_minutes_and_drops_the_stale() {
        let mut busy = UsageRing::default();
        for minute in 0..100 {
            busy.record(&sample(minute * 60, minute as f32, minute as u64 * 6000));
        }
        let mut stale = UsageRing::default();
        stale.record(&sample(-(MINUTES as i64) * 60 * 3, 1.0, 0));
        let now_ms = 1000 * MINUTE_MS + 100 * MINUTE_MS;
        let file = encode_history([("busy", &busy), ("stale", &stale), ("never", &UsageRing::default())], now_ms);
        let rings = decode_history(&file, now_ms).unwrap();
        assert_eq!(rings.len(), 1, "only the node with minutes in the last day");
        assert_eq!(rings[0].0, "busy");
        assert_eq!(rings[0].1.points(0), busy.points(0));
        // A day later, the same file holds nothing of interest any more.
        let later = now_ms + MINUTES as i64 * MINUTE_MS;
        assert!(decode_history(&file, later).unwrap().is_empty());
        // Read 50 minutes short of a day later, the day then starts at
        // minute 1051: the 49 minutes 1051..=1099 come back.
        let half = decode_history(&file, now_ms + (MINUTES as i64 - 50) * MINUTE_MS).unwrap();
        let points = half[0].1.points(0);
        assert_eq!(points.len(), 49);
        assert_eq!(points[0].time_ms, 1051 * MINUTE_MS);
    }

    #[test]
    fn a_damaged_history_is_refused_with_its_reason() {
        let mut ring = UsageRing::default();
        ring.record(&sample(0, 5.0, 0));
        let now_ms = 1000 * MINUTE_MS;
        let file = encode_history([("n1", &ring)], now_ms);
        let reason = |bytes: &[u8]| decode_history(bytes, now_ms).err().unwrap_or_default();
        assert!(reason(b"hello").contains("not a drover usage history file"));
        let mut other_version = file.clone();
        other_version[8] = 9;
        assert!(reason(&other_version).contains("version 9"), "{}", reason(&other_version));
        assert!(reason(&file[..file.len() - 3]).contains("decompress"), "{}", reason(&file[..file.len() - 3]));
        // A body altered under a valid compression: the checksum says so.
        let mut body = zstd::stream::decode_all(&file[12..]).unwrap();
        body[10] ^= 0xff;
        let mut altered = file[..12].to_vec();
        altered.extend(zstd::stream::encode_all(&body[..], 1).unwrap());
        assert!(reason(&altered).contains("checksum"), "{}", reason(&altered));
        assert!(decode_history(&file, now_ms).is_ok());
    }

    #[test]
    fn quantisation_keeps_half_percents_and_rates_within_nine_percent() {
        for percent in [0.0, 0.5, 33.3, 99.9, 100.0, 150.0] {
            let back = decode_percent(encode_percent(Some(percent))).unwrap_or(-1.0);
            assert!((f64::from(back) - percent.min(100.0)).abs() <= 0.25, "{percent} came back as {back}");
        }
        for rate in [0.0, 1.0, 999.0, 125_000_000.0, 1.0e9] {
            let back = decode_rate(encode_rate(Some(rate))).unwrap_or(-1.0);
            assert!((back - rate).abs() <= rate * 0.045 + 0.05, "{rate} came back as {back}");
        }
        assert_eq!(decode_rate(encode_rate(Some(1.0e12))), decode_rate(NONE - 1), "capped, not unknown");
    }
}
