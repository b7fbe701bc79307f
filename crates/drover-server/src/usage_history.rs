//! A node's recent usage, at two resolutions: the last 24 h a point a
//! minute, and the last hour a point every 10 seconds (each agent's
//! sampling interval), kept by a server from the samples its agents send
//! (docs/nodes.md, "Usage history").
//!
//! Pure: the time is the sample's, no clock is read. Each point holds the
//! mean of its samples, quantised to one byte per figure (a [`Slot`] of
//! five). The points are grouped in blocks of [`BLOCK_UNITS`]: a ring
//! holds only the block being filled, as it is; every closed block is
//! packed (see [`pack_block`]: per figure, in whichever of three forms is
//! smallest) and handed to a [`Blocks`] store, which the server keeps on
//! disk (`usage_blocks.rs`), so that its memory holds about 300 bytes a
//! node whatever the figures. The test `usage_history_memory` measures it.
//!
//! Saved in the server's data directory as `usage-history.bin` (a
//! versioned, checksummed, zstd-compressed file: [`encode_history`],
//! [`decode_history`]) and read back at start; the file functions at the
//! end are the only I/O here.

use drover_proto::api::UsagePoint;
use drover_types::usage::NodeSample;

/// Minutes kept: 24 h.
pub const MINUTES: usize = 24 * 60;

/// Ten-second points kept: the last hour.
pub const TEN_SECOND_POINTS: usize = 360;

/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;

/// Points in a block: half an hour of minutes, five minutes of 10-second
/// points. The open block is kept unpacked (150 bytes).
pub const BLOCK_UNITS: usize = 30;

/// A byte that holds no value (no sample at that point, or a figure the
/// agent could not measure).
const NONE: u8 = u8::MAX;

/// Percentages are kept in steps of 0.5.
const PERCENT_STEPS: f32 = 2.0;

/// Byte rates are kept as `STEPS_PER_DOUBLING × log2(1 + rate)`: steps of
/// 9 %, up to 2^31.75 bytes/s (3.6 GB/s); a higher rate reads as that.
const STEPS_PER_DOUBLING: f64 = 8.0;

/// The figures of a point.
const FIGURES: usize = 5;

/// One point, quantised: CPU, memory, disk (percent × 2), received and
/// sent bytes per second (log scale). All `NONE`: no sample then.
type Slot = [u8; FIGURES];

const EMPTY: Slot = [NONE; FIGURES];

/// The figures of one sample, before quantising: CPU, memory and disk
/// percent, received and sent bytes per second.
type Figures = [Option<f64>; FIGURES];

/// One of the two resolutions a ring keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// A point a minute over the last 24 h.
    Minute,
    /// A point every 10 seconds over the last hour.
    TenSeconds,
}

impl Step {
    /// Milliseconds between points.
    pub fn millis(self) -> i64 {
        match self {
            Step::Minute => MINUTE_MS,
            Step::TenSeconds => 10_000,
        }
    }

    /// Points kept, back from the newest.
    pub fn kept(self) -> usize {
        match self {
            Step::Minute => MINUTES,
            Step::TenSeconds => TEN_SECOND_POINTS,
        }
    }

    /// Closed blocks read: enough that with the open one they hold
    /// [`Step::kept`] points, wherever in its block the newest is. A store
    /// may drop the blocks older than that before the newest it was given.
    pub fn closed_blocks(self) -> i64 {
        (self.kept() / BLOCK_UNITS) as i64
    }
}

/// Where rings keep their closed blocks, by node, step and block number:
/// outside the rings, so that a server's memory holds only the blocks
/// being filled. The server's store is a file (`usage_blocks.rs`);
/// [`BlockMap`] keeps them in memory.
pub trait Blocks {
    /// Keeps a closed block's packed bytes (never empty) until it is
    /// older than its step reads.
    fn put(&mut self, node: &str, step: Step, block: i64, packed: Vec<u8>);

    /// A closed block's packed bytes; `None` when it had no sample or is
    /// no longer kept.
    fn get(&self, node: &str, step: Step, block: i64) -> Option<Vec<u8>>;
}

/// [`Blocks`] in memory: for tests, and for a server whose block file
/// cannot be written.
#[derive(Debug, Default)]
pub struct BlockMap {
    blocks: std::collections::HashMap<(String, Step, i64), Vec<u8>>,
    /// Per step, the blocks below this have been dropped.
    kept_from: [i64; 2],
}

impl Blocks for BlockMap {
    fn put(&mut self, node: &str, step: Step, block: i64, packed: Vec<u8>) {
        let index = step as usize;
        let oldest = block - step.closed_blocks();
        if oldest > self.kept_from[index] {
            self.kept_from[index] = oldest;
            self.blocks.retain(|(_, kept_step, kept_block), _| *kept_step != step || *kept_block >= oldest);
        }
        self.blocks.insert((node.to_owned(), step, block), packed);
    }

    fn get(&self, node: &str, step: Step, block: i64) -> Option<Vec<u8>> {
        self.blocks.get(&(node.to_owned(), step, block)).cloned()
    }
}

/// The byte counters of the previous sample, to turn counters into rates.
#[derive(Clone, Copy, Debug)]
struct Counters {
    time_ms: i64,
    rx_bytes: u64,
    tx_bytes: u64,
}

/// One node's recent usage: the minutes of the last 24 h and the
/// 10-second points of the last hour.
#[derive(Clone, Debug, Default)]
pub struct UsageRing {
    minutes: Series,
    ten_seconds: Series,
    counters: Option<Counters>,
}

impl UsageRing {
    /// Adds a sample of `node` (its `time_ms` is the server's clock); a
    /// block it closes goes to `blocks`. A sample older than the newest
    /// 10-second point (the clock went back) is ignored.
    pub fn record(&mut self, sample: &NodeSample, node: &str, blocks: &mut dyn Blocks) {
        if self.ten_seconds.is_ahead_of(Step::TenSeconds, sample.time_ms) {
            return;
        }
        let (rx_rate, tx_rate) = self.rates(sample);
        let figures = [
            Some(f64::from(sample.cpu_percent)),
            (sample.memory_total > 0).then(|| f64::from(sample.memory_used_percent())),
            sample.fullest_disk().map(|disk| f64::from(disk.used_percent())),
            rx_rate,
            tx_rate,
        ];
        let mut closing = Closing { node, blocks };
        self.minutes.record(Step::Minute, sample.time_ms, figures, &mut closing);
        self.ten_seconds.record(Step::TenSeconds, sample.time_ms, figures, &mut closing);
    }

    /// The minutes of `node` from `since_ms` on (that minute included),
    /// oldest first; minutes without a sample are left out.
    pub fn points(&self, since_ms: i64, node: &str, blocks: &dyn Blocks) -> Vec<UsagePoint> {
        self.points_every(Step::Minute, since_ms, node, blocks)
    }

    /// The points of one resolution from `since_ms` on, oldest first;
    /// points without a sample are left out.
    pub fn points_every(&self, step: Step, since_ms: i64, node: &str, blocks: &dyn Blocks) -> Vec<UsagePoint> {
        let mut points = Vec::new();
        let first_unit = since_ms.div_euclid(step.millis());
        self.series(step).for_each_slot(step, first_unit, node, blocks, |unit, slot| {
            points.push(point_of(unit * step.millis(), slot));
        });
        points
    }

    fn series(&self, step: Step) -> &Series {
        match step {
            Step::Minute => &self.minutes,
            Step::TenSeconds => &self.ten_seconds,
        }
    }

    fn series_mut(&mut self, step: Step) -> &mut Series {
        match step {
            Step::Minute => &mut self.minutes,
            Step::TenSeconds => &mut self.ten_seconds,
        }
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

/// A node and the store its closed blocks go to.
struct Closing<'a> {
    node: &'a str,
    blocks: &'a mut dyn Blocks,
}

/// The points of one resolution: the open block's slots; the closed ones
/// are in the [`Blocks`] store.
///
/// ```text
///   store: … [block b-2] [block b-1]      ring: open block b (30 slots), newest in it
/// ```
#[derive(Clone, Debug)]
struct Series {
    /// The open block's slots ([`OPEN_BYTES`]; those after `newest` are
    /// empty). Empty: nothing recorded yet.
    open: Box<[u8]>,
    /// The open block's number (units since the epoch / [`BLOCK_UNITS`]).
    open_block: i64,
    /// The newest unit with a sample (units of the step since the epoch).
    newest: i64,
    /// The newest unit's sums per figure, and how many samples had it,
    /// averaged into its slot on every sample so that the newest point
    /// reads like the others.
    sums: [(f32, u16); FIGURES],
}

/// The bytes of the open block's slots.
const OPEN_BYTES: usize = BLOCK_UNITS * FIGURES;

impl Default for Series {
    fn default() -> Self {
        Series { open: Box::new([]), open_block: i64::MIN, newest: i64::MIN, sums: [(0.0, 0); FIGURES] }
    }
}

impl Series {
    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Whether a sample at `time_ms` is older than the newest point.
    fn is_ahead_of(&self, step: Step, time_ms: i64) -> bool {
        time_ms.div_euclid(step.millis()) < self.newest
    }

    fn record(&mut self, step: Step, time_ms: i64, figures: Figures, closing: &mut Closing<'_>) {
        let unit = time_ms.div_euclid(step.millis());
        if unit < self.newest {
            return;
        }
        if unit > self.newest {
            self.advance_to(step, unit, closing);
        }
        for (sum, figure) in self.sums.iter_mut().zip(figures) {
            if let Some(value) = figure.filter(|value| value.is_finite()) {
                sum.0 += value as f32;
                sum.1 = sum.1.saturating_add(1);
            }
        }
        let mean = |index: usize| {
            let (sum, count) = self.sums[index];
            (count > 0).then(|| f64::from(sum) / f64::from(count))
        };
        let slot = [
            encode_percent(mean(0)),
            encode_percent(mean(1)),
            encode_percent(mean(2)),
            encode_rate(mean(3)),
            encode_rate(mean(4)),
        ];
        self.set_open_slot(unit, slot);
    }

    /// Sets a unit's slot as read from a saved history (units in order).
    fn restore(&mut self, step: Step, unit: i64, slot: Slot, closing: &mut Closing<'_>) {
        if unit <= self.newest && !self.is_empty() {
            return;
        }
        self.advance_to(step, unit, closing);
        self.set_open_slot(unit, slot);
    }

    fn set_open_slot(&mut self, unit: i64, slot: Slot) {
        let at = unit.rem_euclid(BLOCK_UNITS as i64) as usize * FIGURES;
        self.open[at..at + FIGURES].copy_from_slice(&slot);
    }

    fn open_slots(&self) -> [Slot; BLOCK_UNITS] {
        let mut slots = [EMPTY; BLOCK_UNITS];
        for (slot, bytes) in slots.iter_mut().zip(self.open.chunks_exact(FIGURES)) {
            slot.copy_from_slice(bytes);
        }
        slots
    }

    /// Makes `unit` the newest: when it is in a later block, the open block
    /// is packed and handed to the store (unless it holds no sample), and
    /// the new block opens empty.
    fn advance_to(&mut self, step: Step, unit: i64, closing: &mut Closing<'_>) {
        let block = unit.div_euclid(BLOCK_UNITS as i64);
        if self.is_empty() {
            self.open = vec![NONE; OPEN_BYTES].into_boxed_slice();
            self.open_block = block;
        } else if block > self.open_block {
            let packed = pack_block(&self.open_slots());
            if !packed.is_empty() {
                closing.blocks.put(closing.node, step, self.open_block, packed);
            }
            self.open.fill(NONE);
            self.open_block = block;
        }
        debug_assert_eq!(self.open_block, block);
        self.newest = unit;
        self.sums = [(0.0, 0); FIGURES];
    }

    /// Calls `each` with every unit from `first_unit` on (and within the
    /// last [`Step::kept`]) that has a sample, oldest first, reading the
    /// closed blocks from `blocks`.
    fn for_each_slot(
        &self,
        step: Step,
        first_unit: i64,
        node: &str,
        blocks: &dyn Blocks,
        mut each: impl FnMut(i64, Slot),
    ) {
        if self.is_empty() {
            return;
        }
        let first = first_unit.max(self.newest - step.kept() as i64 + 1);
        let mut emit = |block: i64, slots: &[Slot; BLOCK_UNITS]| {
            for (index, slot) in slots.iter().enumerate() {
                let unit = block * BLOCK_UNITS as i64 + index as i64;
                if unit >= first && unit <= self.newest && *slot != EMPTY {
                    each(unit, *slot);
                }
            }
        };
        let mut slots = [EMPTY; BLOCK_UNITS];
        for block in first.div_euclid(BLOCK_UNITS as i64)..self.open_block {
            if let Some(packed) = blocks.get(node, step, block) {
                unpack_block(&packed, &mut slots);
                emit(block, &slots);
            }
        }
        emit(self.open_block, &self.open_slots());
    }
}

fn point_of(time_ms: i64, slot: Slot) -> UsagePoint {
    UsagePoint {
        time_ms,
        cpu_percent: decode_percent(slot[0]),
        memory_percent: decode_percent(slot[1]),
        disk_percent: decode_percent(slot[2]),
        net_rx_bytes_per_sec: decode_rate(slot[3]),
        net_tx_bytes_per_sec: decode_rate(slot[4]),
    }
}

/// How a packed figure is written, the first 4 bits of its column.
mod column {
    /// 0 to 7: the first value, then each step to the next value
    /// Rice-coded with this parameter (for figures that drift).
    pub const RICE_MAX: u32 = 7;
    /// The same value throughout: the value, once.
    pub const CONSTANT: u32 = 8;
    /// No value at all.
    pub const ABSENT: u32 = 9;
    /// The lowest value, a width (4 bits), then each value less the lowest
    /// in that many bits (for figures that wobble about a level).
    pub const FRAME: u32 = 10;
}

/// A Rice quotient of this many ones is an escape: the step's 8 bits
/// follow as they are.
const ESCAPE: u32 = 15;

/// A closed block's slots, packed (empty for a block without a sample).
/// Per figure (a column of [`BLOCK_UNITS`] bytes), 4 bits saying how
/// ([`column`]), then the cheapest of: the value once (constant); the
/// lowest value and each value's distance above it in as few bits as the
/// largest needs (frame); the first value and each step to the next
/// (wrapping, zig-zagged: 0, −1, 1, −2 … become 0, 1, 2, 3 …) as
/// `step >> k` ones, a zero and the low `k` bits (Rice, `k` the cheapest).
fn pack_block(slots: &[Slot; BLOCK_UNITS]) -> Vec<u8> {
    if slots.iter().all(|slot| *slot == EMPTY) {
        return Vec::new();
    }
    let mut bits = BitWriter::default();
    for figure in 0..FIGURES {
        let mut column = [0u8; BLOCK_UNITS];
        for (value, slot) in column.iter_mut().zip(slots) {
            *value = slot[figure];
        }
        let first = column[0];
        if column.iter().all(|value| *value == NONE) {
            bits.write(column::ABSENT, 4);
            continue;
        }
        if column.iter().all(|value| *value == first) {
            bits.write(column::CONSTANT, 4);
            bits.write(u32::from(first), 8);
            continue;
        }
        let lowest = column.iter().copied().min().unwrap_or(0);
        let highest = column.iter().copied().max().unwrap_or(0);
        let width = u8::BITS - (highest - lowest).leading_zeros();
        let frame_bits = 4 + width * BLOCK_UNITS as u32;
        let mut steps = [0u32; BLOCK_UNITS - 1];
        for (step, pair) in steps.iter_mut().zip(column.windows(2)) {
            *step = zigzag(pair[1].wrapping_sub(pair[0]));
        }
        let rice_cost = |k: u32| steps.iter().map(|step| rice_bits(*step, k)).sum::<u32>();
        let (k, rice) =
            (0..=column::RICE_MAX).map(|k| (k, rice_cost(k))).min_by_key(|(_, cost)| *cost).unwrap_or((0, 0));
        if frame_bits <= rice {
            bits.write(column::FRAME, 4);
            bits.write(u32::from(lowest), 8);
            bits.write(width, 4);
            for value in column {
                bits.write(u32::from(value - lowest), width);
            }
            continue;
        }
        bits.write(k, 4);
        bits.write(u32::from(first), 8);
        for step in steps {
            let quotient = step >> k;
            if quotient < ESCAPE {
                bits.write((1 << quotient) - 1, quotient + 1);
                bits.write(step & ((1 << k) - 1), k);
            } else {
                bits.write((1 << ESCAPE) - 1, ESCAPE);
                bits.write(step, 8);
            }
        }
    }
    bits.finish()
}

/// Reads a block [`pack_block`] wrote back into `slots`. Bytes that run
/// short read as zero bits (a packed block is only ever this module's own).
fn unpack_block(bytes: &[u8], slots: &mut [Slot; BLOCK_UNITS]) {
    let mut bits = BitReader { bytes, at: 0 };
    for figure in 0..FIGURES {
        let how = bits.read(4);
        match how {
            column::ABSENT => slots.iter_mut().for_each(|slot| slot[figure] = NONE),
            column::CONSTANT => {
                let value = bits.read(8) as u8;
                slots.iter_mut().for_each(|slot| slot[figure] = value);
            }
            column::FRAME => {
                let lowest = bits.read(8) as u8;
                let width = bits.read(4).min(8);
                for slot in slots.iter_mut() {
                    slot[figure] = lowest.wrapping_add(bits.read(width) as u8);
                }
            }
            _ => {
                let k = how.min(column::RICE_MAX);
                let mut value = bits.read(8) as u8;
                slots[0][figure] = value;
                for slot in slots.iter_mut().skip(1) {
                    let mut quotient = 0;
                    while quotient < ESCAPE && bits.read(1) == 1 {
                        quotient += 1;
                    }
                    let step = if quotient == ESCAPE { bits.read(8) } else { (quotient << k) | bits.read(k) };
                    value = value.wrapping_add(unzigzag(step));
                    slot[figure] = value;
                }
            }
        }
    }
}

/// The bits a step takes Rice-coded with parameter `k`.
fn rice_bits(step: u32, k: u32) -> u32 {
    let quotient = step >> k;
    if quotient < ESCAPE { quotient + 1 + k } else { ESCAPE + 8 }
}

/// A byte difference as a small number: 0, −1, 1, −2, 2 … → 0, 1, 2, 3, 4 …
fn zigzag(difference: u8) -> u32 {
    let signed = i32::from(difference as i8);
    ((signed << 1) ^ (signed >> 31)) as u32 & 0xff
}

fn unzigzag(step: u32) -> u8 {
    ((step >> 1) as u8) ^ (0u8.wrapping_sub((step & 1) as u8))
}

/// Bits written low first into bytes.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    pending: u64,
    count: u32,
}

impl BitWriter {
    fn write(&mut self, value: u32, bits: u32) {
        debug_assert!(bits <= 24);
        self.pending |= u64::from(value & ((1u32 << bits) - 1)) << self.count;
        self.count += bits;
        while self.count >= 8 {
            self.bytes.push(self.pending as u8);
            self.pending >>= 8;
            self.count -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.bytes.push(self.pending as u8);
        }
        self.bytes
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    /// The next bit's position.
    at: usize,
}

impl BitReader<'_> {
    /// The next `bits` (at most 24), low first; past the end, zeros.
    fn read(&mut self, bits: u32) -> u32 {
        let first = self.at / 8;
        let mut word = [0u8; 4];
        let available = self.bytes.len().saturating_sub(first).min(4);
        if available > 0 {
            word[..available].copy_from_slice(&self.bytes[first..first + available]);
        }
        let value = (u32::from_le_bytes(word) >> (self.at % 8)) & ((1u32 << bits) - 1);
        self.at += bits as usize;
        value
    }
}

/// The history file: its name in the server's data directory, and the
/// first bytes that say what it is and in which layout.
pub const HISTORY_FILE: &str = "usage-history.bin";
const MAGIC: &[u8; 8] = b"DRVUSAGE";
/// Version 2: the body below, zstd-compressed, after the magic and the
/// version (u32, little-endian). Version 1 (minutes only) is still read.
const VERSION: u32 = 2;
/// At most this many nodes are read from (or written to) the file.
pub const MAX_NODES: usize = 200_000;
/// A node id longer than this is damage.
const MAX_ID_BYTES: usize = 256;

impl UsageRing {
    /// Appends this ring to `body` when it holds a minute newer than
    /// `oldest_minute`: its id (u16 length, bytes), then per step (the
    /// minutes, then the 10-second points) the newest unit (i64), the
    /// number of units that follow (u16, at most [`Step::kept`]; 0: none)
    /// and their slots, oldest first, from the first one with a sample.
    fn encode(&self, id: &str, blocks: &dyn Blocks, oldest_minute: i64, body: &mut Vec<u8>) -> bool {
        if self.minutes.is_empty() || self.minutes.newest < oldest_minute {
            return false;
        }
        let id_bytes = &id.as_bytes()[..id.len().min(MAX_ID_BYTES)];
        body.extend_from_slice(&(id_bytes.len() as u16).to_le_bytes());
        body.extend_from_slice(id_bytes);
        for step in [Step::Minute, Step::TenSeconds] {
            let series = self.series(step);
            let mut kept = Vec::new();
            series.for_each_slot(step, i64::MIN, id, blocks, |unit, slot| kept.push((unit, slot)));
            let first = kept.first().map_or(series.newest + 1, |(unit, _)| *unit);
            let count = if kept.is_empty() { 0 } else { series.newest - first + 1 };
            body.extend_from_slice(&series.newest.to_le_bytes());
            body.extend_from_slice(&(count as u16).to_le_bytes());
            let mut kept = kept.into_iter().peekable();
            for unit in first..first + count {
                let slot = kept.next_if(|(at, _)| *at == unit).map_or(EMPTY, |(_, slot)| slot);
                body.extend_from_slice(&slot);
            }
        }
        true
    }
}

/// The saved form of every ring that holds a minute of the last 24 h
/// before `now_ms` (at most [`MAX_NODES`], the busiest first is not
/// guaranteed: beyond it nodes are left out), ready to be written: magic,
/// version, then the zstd-compressed body (node count, the rings, a CRC-32
/// of them).
pub fn encode_history<'a>(
    rings: impl IntoIterator<Item = (&'a str, &'a UsageRing)>,
    blocks: &dyn Blocks,
    now_ms: i64,
) -> Vec<u8> {
    let oldest_minute = now_ms.div_euclid(MINUTE_MS) - MINUTES as i64 + 1;
    let mut body = vec![0u8; 4];
    let mut count: u32 = 0;
    for (id, ring) in rings {
        if count as usize == MAX_NODES {
            break;
        }
        if ring.encode(id, blocks, oldest_minute, &mut body) {
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

/// Reads a history file's bytes back into rings, dropping points older
/// than their step keeps before `now_ms` (a ring with no minute left is
/// left out). Damage (another file, another version, a cut or altered
/// body) is an error saying what is wrong; nothing is half-read.
pub fn decode_history(file: &[u8], now_ms: i64, blocks: &mut dyn Blocks) -> Result<Vec<(String, UsageRing)>, String> {
    let header = MAGIC.len() + 4;
    if file.len() < header || &file[..MAGIC.len()] != MAGIC {
        return Err("not a drover usage history file (its first bytes are not DRVUSAGE)".to_owned());
    }
    let version = u32::from_le_bytes([file[8], file[9], file[10], file[11]]);
    let steps: &[Step] = match version {
        1 => &[Step::Minute],
        VERSION => &[Step::Minute, Step::TenSeconds],
        _ => return Err(format!("version {version}, this drover reads versions 1 and {VERSION}")),
    };
    // The largest body MAX_NODES full rings make: a bound on what a
    // damaged (or hostile) compressed body may expand to.
    let per_node = 2 + MAX_ID_BYTES + 2 * (8 + 2) + (MINUTES + TEN_SECOND_POINTS) * FIGURES;
    let limit = (4 + MAX_NODES * per_node + 4) as u64;
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
    // The closed blocks go to a map first and to `blocks` only once the
    // whole file has read: nothing of a damaged file is kept.
    let mut read_blocks = BlockMap::default();
    let mut rings = Vec::with_capacity(count);
    for _ in 0..count {
        let id_len = reader.u16()? as usize;
        if id_len > MAX_ID_BYTES {
            return Err(format!("a node id of {id_len} bytes at byte {}", reader.at));
        }
        let id = String::from_utf8(reader.take(id_len)?.to_vec())
            .map_err(|_| format!("a node id that is not UTF-8 at byte {}", reader.at))?;
        let mut ring = UsageRing::default();
        for step in steps {
            let newest = i64::from_le_bytes(reader.array::<8>()?);
            let units = reader.u16()? as usize;
            let fewest = if *step == Step::Minute && version == 1 { 1 } else { 0 };
            if units < fewest || units > step.kept() {
                return Err(format!("node {id}: {units} points a {step:?}, not {fewest} to {}", step.kept()));
            }
            let oldest_kept = now_ms.div_euclid(step.millis()) - step.kept() as i64 + 1;
            let first = newest - units as i64 + 1;
            for unit in first..=newest {
                let slot = reader.array::<FIGURES>()?;
                if unit >= oldest_kept && slot != EMPTY {
                    let mut closing = Closing { node: &id, blocks: &mut read_blocks };
                    ring.series_mut(*step).restore(*step, unit, slot, &mut closing);
                }
            }
        }
        if !ring.minutes.is_empty() {
            rings.push((id, ring));
        }
    }
    if reader.at != content.len() {
        return Err(format!("{} bytes after the last node", content.len() - reader.at));
    }
    for ((node, step, block), packed) in read_blocks.blocks {
        blocks.put(&node, step, block, packed);
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
pub fn load_history_file(dir: &std::path::Path, now_ms: i64, blocks: &mut dyn Blocks) -> Loaded {
    let path = dir.join(HISTORY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
        Err(error) => return quarantine(&path, format!("cannot read it: {error}"), now_ms),
    };
    match decode_history(&bytes, now_ms, blocks) {
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

    /// A ring with its own block store, as a server holds one node's.
    struct Node {
        name: String,
        ring: UsageRing,
        blocks: BlockMap,
    }

    impl Node {
        fn named(name: &str) -> Node {
            Node { name: name.to_owned(), ring: UsageRing::default(), blocks: BlockMap::default() }
        }

        fn record(&mut self, sample: &NodeSample) {
            self.ring.record(sample, &self.name, &mut self.blocks);
        }

        fn points(&self, since_ms: i64) -> Vec<UsagePoint> {
            self.ring.points(since_ms, &self.name, &self.blocks)
        }

        fn points_every(&self, step: Step, since_ms: i64) -> Vec<UsagePoint> {
            self.ring.points_every(step, since_ms, &self.name, &self.blocks)
        }
    }

    /// The file of these nodes.
    fn save(nodes: &[&Node], now_ms: i64) -> Vec<u8> {
        let mut all = BlockMap::default();
        for node in nodes {
            all.blocks.extend(node.blocks.blocks.iter().map(|(key, packed)| (key.clone(), packed.clone())));
        }
        encode_history(nodes.iter().map(|node| (node.name.as_str(), &node.ring)), &all, now_ms)
    }

    /// The nodes of a file.
    fn load(file: &[u8], now_ms: i64) -> Result<Vec<Node>, String> {
        let mut blocks = BlockMap::default();
        let rings = decode_history(file, now_ms, &mut blocks)?;
        let node = |(name, ring): (String, UsageRing)| Node {
            name,
            ring,
            blocks: BlockMap { blocks: blocks.blocks.clone(), kept_from: blocks.kept_from },
        };
        Ok(rings.into_iter().map(node).collect())
    }

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
                ..DiskSample::default()
            }],
            net: vec![NetSample { interface: "eth0".to_owned(), rx_bytes, tx_bytes: 0, ..NetSample::default() }],
            ..NodeSample::default()
        }
    }

    #[test]
    fn the_samples_of_a_minute_are_averaged_into_one_point() {
        let mut ring = Node::named("n1");
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
        let mut ring = Node::named("n1");
        ring.record(&sample(0, 1.0, 5000));
        assert_eq!(ring.points(0)[0].net_rx_bytes_per_sec, None);
        ring.record(&sample(60, 1.0, 10));
        assert_eq!(ring.points(0)[1].net_rx_bytes_per_sec, None, "a reboot resets the counters");
    }

    #[test]
    fn unknown_figures_stay_unknown() {
        let mut ring = Node::named("n1");
        ring.record(&NodeSample { time_ms: 0, cpu_percent: 3.0, ..NodeSample::default() });
        let point = &ring.points(0)[0];
        assert_eq!(point.cpu_percent, Some(3.0));
        assert_eq!((point.memory_percent, point.disk_percent, point.net_rx_bytes_per_sec), (None, None, None));
    }

    #[test]
    fn a_day_wraps_around_and_drops_the_oldest_minutes() {
        let mut ring = Node::named("n1");
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
        let mut ring = Node::named("n1");
        for minute in 0..10 {
            ring.record(&sample(minute * 60, 50.0, 0));
        }
        // The agent is away 24 h + 5 min, then comes back: nothing of
        // before remains, even where the new minutes did not write.
        ring.record(&sample((MINUTES as i64 + 15) * 60, 7.0, 0));
        let points = ring.points(0);
        assert_eq!(points.len(), 1, "{points:?}");
        // A shorter gap clears the skipped minutes only.
        let mut ring = Node::named("n1");
        ring.record(&sample(0, 1.0, 0));
        ring.record(&sample(MINUTES as i64 * 60 - 60, 2.0, 0));
        ring.record(&sample(MINUTES as i64 * 60 + 120, 3.0, 0));
        let cpus: Vec<_> = ring.points(0).iter().map(|point| point.cpu_percent).collect();
        assert_eq!(cpus, vec![Some(2.0), Some(3.0)]);
    }

    #[test]
    fn a_sample_from_the_past_is_ignored() {
        let mut ring = Node::named("n1");
        ring.record(&sample(120, 9.0, 0));
        ring.record(&sample(0, 1.0, 0));
        let cpus: Vec<_> = ring.points(0).iter().map(|point| point.cpu_percent).collect();
        assert_eq!(cpus, vec![Some(9.0)]);
    }

    #[test]
    fn a_saved_history_reads_back_the_same_minutes_and_drops_the_stale() {
        let mut busy = Node::named("busy");
        for minute in 0..100 {
            busy.record(&sample(minute * 60, minute as f32, minute as u64 * 6000));
        }
        let mut stale = Node::named("stale");
        stale.record(&sample(-(MINUTES as i64) * 60 * 3, 1.0, 0));
        let now_ms = 1000 * MINUTE_MS + 100 * MINUTE_MS;
        let file = save(&[&busy, &stale, &Node::named("never")], now_ms);
        let rings = load(&file, now_ms).unwrap();
        assert_eq!(rings.len(), 1, "only the node with minutes in the last day");
        assert_eq!(rings[0].name, "busy");
        assert_eq!(rings[0].points(0), busy.points(0));
        // A day later, the same file holds nothing of interest any more.
        let later = now_ms + MINUTES as i64 * MINUTE_MS;
        assert!(load(&file, later).unwrap().is_empty());
        // Read 50 minutes short of a day later, the day then starts at
        // minute 1051: the 49 minutes 1051..=1099 come back.
        let half = load(&file, now_ms + (MINUTES as i64 - 50) * MINUTE_MS).unwrap();
        let points = half[0].points(0);
        assert_eq!(points.len(), 49);
        assert_eq!(points[0].time_ms, 1051 * MINUTE_MS);
    }

    #[test]
    fn a_damaged_history_is_refused_with_its_reason() {
        let mut ring = Node::named("n1");
        ring.record(&sample(0, 5.0, 0));
        let now_ms = 1000 * MINUTE_MS;
        let file = save(&[&ring], now_ms);
        let reason = |bytes: &[u8]| load(bytes, now_ms).err().unwrap_or_default();
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
        assert!(load(&file, now_ms).is_ok());
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

    /// Seeded noise for the packing tests.
    struct Noise(rand::rngs::StdRng);

    impl Noise {
        fn seeded(seed: u64) -> Noise {
            Noise(rand::SeedableRng::seed_from_u64(seed))
        }

        fn below(&mut self, bound: u64) -> u64 {
            rand::Rng::random_range(&mut self.0, 0..bound)
        }
    }

    #[test]
    fn a_packed_block_unpacks_to_the_same_slots() {
        let mut noise = Noise::seeded(7);
        for round in 0..2_000 {
            let mut slots = [EMPTY; BLOCK_UNITS];
            // Columns of every shape: absent, constant, drifting, random,
            // with holes, and the extremes of a byte.
            for figure in 0..FIGURES {
                let shape = noise.below(6);
                let mut value = noise.below(256) as u8;
                for slot in slots.iter_mut() {
                    slot[figure] = match shape {
                        0 => NONE,
                        1 => value,
                        2 => {
                            value = value.wrapping_add(noise.below(5) as u8).wrapping_sub(2);
                            value
                        }
                        3 => noise.below(256) as u8,
                        4 => [0, 254, NONE][noise.below(3) as usize],
                        _ => {
                            if noise.below(4) == 0 {
                                NONE
                            } else {
                                value.wrapping_add(noise.below(3) as u8)
                            }
                        }
                    };
                }
            }
            let packed = pack_block(&slots);
            let mut back = [[0u8; FIGURES]; BLOCK_UNITS];
            unpack_block(&packed, &mut back);
            if packed.is_empty() {
                assert!(slots.iter().all(|slot| *slot == EMPTY), "round {round}");
            } else {
                assert_eq!(back, slots, "round {round}");
            }
        }
    }

    #[test]
    fn a_still_figure_packs_to_almost_nothing_and_a_drifting_one_to_a_few_bits() {
        let mut still = [[50, 100, 80, 40, 30]; BLOCK_UNITS];
        // Five constant columns: 5 × (4 + 8) bits.
        assert_eq!(pack_block(&still).len(), 8);
        // CPU wandering by a step or two each minute: a frame of 2 bits a
        // value (it stays within 3 steps of 50).
        for (index, slot) in still.iter_mut().enumerate() {
            slot[0] = 50 + [0, 1, 3, 2, 1, 0][index % 6];
        }
        assert_eq!(pack_block(&still).len(), (4 * 12 + 4 + 8 + 4 + 2 * BLOCK_UNITS).div_ceil(8));
        // Memory climbing a step a minute: Rice steps of 3 bits (a
        // frame would take 5 bits a value).
        for (index, slot) in still.iter_mut().enumerate() {
            slot[1] = 100 + index as u8;
        }
        let expected = 3 * 12 + (4 + 8 + 4 + 2 * BLOCK_UNITS) + (4 + 8 + 3 * (BLOCK_UNITS - 1));
        assert_eq!(pack_block(&still).len(), expected.div_ceil(8));
    }

    #[test]
    fn the_last_hour_is_kept_every_ten_seconds() {
        let mut ring = Node::named("n1");
        // 70 minutes of a sample every 10 s, CPU counting up.
        for index in 0..420 {
            ring.record(&sample(index * 10, (index % 200) as f32 / 2.0, index as u64 * 10_000));
        }
        let fine = ring.points_every(Step::TenSeconds, 0);
        assert_eq!(fine.len(), TEN_SECOND_POINTS, "the last hour only");
        assert_eq!(fine[0].time_ms, 1000 * MINUTE_MS + 60 * 10_000);
        for (point, index) in fine.iter().zip(60..) {
            assert_eq!(point.time_ms, 1000 * MINUTE_MS + index * 10_000);
            assert_eq!(point.cpu_percent, Some((index % 200) as f32 / 2.0), "point {index}");
        }
        let rx = fine[5].net_rx_bytes_per_sec.unwrap_or_default();
        assert!((rx / 1000.0 - 1.0).abs() < 0.05, "about 1000 bytes/s, not {rx}");
        // The minutes: 70 of them, each the mean of its six samples.
        let minutes = ring.points(0);
        assert_eq!(minutes.len(), 70);
        // 3.0, 3.5 … 5.5: a mean of 4.25, kept to the half percent above.
        assert_eq!(minutes[1].cpu_percent, Some(4.5));
        // `since` cuts the fine points too.
        let last_minute = ring.points_every(Step::TenSeconds, 1000 * MINUTE_MS + 69 * MINUTE_MS);
        assert_eq!(last_minute.len(), 6);
        // Saved and read back at the last sample, both resolutions come back.
        let now_ms = 1000 * MINUTE_MS + 419 * 10_000;
        let rings = load(&save(&[&ring], now_ms), now_ms).unwrap();
        assert_eq!(rings[0].points_every(Step::TenSeconds, 0), fine);
        assert_eq!(rings[0].points(0), minutes);
    }

    #[test]
    fn a_version_1_history_still_reads() {
        // Version 1: per node its id, newest minute and minutes, no
        // 10-second points.
        let mut body = 1u32.to_le_bytes().to_vec();
        body.extend_from_slice(&2u16.to_le_bytes());
        body.extend_from_slice(b"n1");
        body.extend_from_slice(&1001i64.to_le_bytes());
        body.extend_from_slice(&2u16.to_le_bytes());
        body.extend_from_slice(&[20, 100, 80, 8, 0, 40, 100, 80, 16, 0]);
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend(zstd::stream::encode_all(&body[..], 1).unwrap());
        let rings = load(&file, 1002 * MINUTE_MS).unwrap();
        let cpus: Vec<_> = rings[0].points(0).iter().map(|point| (point.time_ms, point.cpu_percent)).collect();
        assert_eq!(cpus, vec![(1000 * MINUTE_MS, Some(10.0)), (1001 * MINUTE_MS, Some(20.0))]);
        assert!(rings[0].points_every(Step::TenSeconds, 0).is_empty());
    }
}
