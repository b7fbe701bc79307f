//! The closed blocks of every node's usage history, on disk: a redb file
//! (`usage-blocks.redb` in the data directory) so that a server's memory
//! holds only the blocks being filled (docs/nodes.md, "Usage history").
//!
//! A block handed over waits in memory until the next flush (every 10 s,
//! [`UsageBlocks::flush`]), which writes the waiting blocks in one
//! transaction and drops those older than their step reads. Reads look at
//! the waiting blocks first, then the file. The file is a spill area, not
//! the history's record: it is emptied when the server starts (the saved
//! `usage-history.bin` brings the history back). Its page cache is kept
//! small ([`CACHE_BYTES`]): the operating system's cache serves the rest.
//! A file that cannot be created or written leaves the blocks in memory
//! (logged), as before there was a file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::usage_history::{Blocks, Step};

/// The file, in the server's data directory.
pub const BLOCKS_FILE: &str = "usage-blocks.redb";

/// redb's page cache for the file.
pub const CACHE_BYTES: usize = 2 << 20;

/// Key: the step (1 byte), the block number (8 bytes, big-endian with the
/// sign bit flipped, so that keys sort by time), the node id.
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("usage_blocks");

const STEPS: [Step; 2] = [Step::Minute, Step::TenSeconds];

/// The blocks of every node: waiting in memory, and in the file.
pub struct UsageBlocks {
    database: Option<Arc<Database>>,
    waiting: HashMap<Vec<u8>, Vec<u8>>,
    /// Per step, the newest block handed over: blocks older than
    /// [`Step::closed_blocks`] before it are dropped at the next flush.
    newest: [i64; 2],
}

impl std::fmt::Debug for UsageBlocks {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UsageBlocks")
            .field("on_disk", &self.database.is_some())
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl Default for UsageBlocks {
    /// In memory only.
    fn default() -> Self {
        UsageBlocks { database: None, waiting: HashMap::new(), newest: [i64::MIN; 2] }
    }
}

/// What one flush writes: a copy of the waiting blocks, and the bounds
/// below which blocks are dropped.
#[derive(Debug)]
pub struct Flush {
    database: Option<Arc<Database>>,
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
    drop_below: Vec<Vec<u8>>,
}

impl UsageBlocks {
    /// The blocks in `dir/usage-blocks.redb`, created empty (an old one is
    /// removed). When it cannot be created, the blocks stay in memory; the
    /// error says why.
    pub fn open(dir: &Path) -> (UsageBlocks, Option<String>) {
        let path = dir.join(BLOCKS_FILE);
        let _ = std::fs::remove_file(&path);
        let created = Database::builder().set_cache_size(CACHE_BYTES).create(&path).map_err(|error| error.to_string());
        let created = created.and_then(|database| {
            let transaction = database.begin_write().map_err(|error| error.to_string())?;
            transaction.open_table(BLOCKS).map_err(|error| error.to_string())?;
            transaction.commit().map_err(|error| error.to_string())?;
            Ok(database)
        });
        match created {
            Ok(database) => (UsageBlocks { database: Some(Arc::new(database)), ..UsageBlocks::default() }, None),
            Err(error) => (UsageBlocks::default(), Some(format!("cannot create {}: {error}", path.display()))),
        }
    }

    /// The blocks waiting to be written, and the old ones to drop; hand it
    /// to [`Flush::write`] (outside any lock: it writes and syncs), then
    /// back to [`UsageBlocks::flushed`].
    pub fn flush(&mut self) -> Flush {
        let drop_below: Vec<Vec<u8>> = STEPS
            .iter()
            .filter(|step| self.newest[**step as usize] != i64::MIN)
            .map(|step| key(*step, self.newest[*step as usize] - step.closed_blocks(), ""))
            .collect();
        // Blocks too old to be read go from memory here (also when the
        // file cannot be written, so that they do not pile up), from the
        // file in the write.
        for bound in &drop_below {
            self.waiting.retain(|key: &Vec<u8>, _| key[0] != bound[0] || key[..9] >= bound[..9]);
        }
        if self.database.is_none() {
            return Flush { database: None, blocks: Vec::new(), drop_below: Vec::new() };
        }
        let blocks = self.waiting.iter().map(|(key, packed)| (key.clone(), packed.clone())).collect();
        Flush { database: self.database.clone(), blocks, drop_below }
    }

    /// After [`Flush::write`]: the blocks written stop waiting (unless a
    /// newer copy came meanwhile). A failed write keeps them waiting.
    pub fn flushed(&mut self, flush: &Flush, written: &Result<(), String>) {
        if written.is_err() {
            return;
        }
        for (key, packed) in &flush.blocks {
            if self.waiting.get(key) == Some(packed) {
                self.waiting.remove(key);
            }
        }
        // A block boundary closes every node's block at once: do not keep
        // the room that took.
        self.waiting.shrink_to_fit();
    }

    /// Blocks waiting in memory.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl Flush {
    /// Writes the blocks and drops the old ones, in one transaction. With
    /// no block waiting there is nothing to write, nor anything new to drop
    /// (the bounds move only with new blocks): no transaction, no fsync.
    pub fn write(&self) -> Result<(), String> {
        let Some(database) = &self.database else { return Ok(()) };
        if self.blocks.is_empty() {
            return Ok(());
        }
        let write = || -> Result<(), redb::Error> {
            let transaction = database.begin_write()?;
            {
                let mut table = transaction.open_table(BLOCKS)?;
                for (key, packed) in &self.blocks {
                    table.insert(key.as_slice(), packed.as_slice())?;
                }
                for bound in &self.drop_below {
                    let start = [bound[0]];
                    table.retain_in(start.as_slice()..bound.as_slice(), |_, _| false)?;
                }
            }
            transaction.commit()?;
            Ok(())
        };
        write().map_err(|error| error.to_string())
    }
}

impl Blocks for UsageBlocks {
    fn put(&mut self, node: &str, step: Step, block: i64, packed: Vec<u8>) {
        let newest = &mut self.newest[step as usize];
        *newest = (*newest).max(block);
        self.waiting.insert(key(step, block, node), packed);
    }

    fn get(&self, node: &str, step: Step, block: i64) -> Option<Vec<u8>> {
        let key = key(step, block, node);
        if let Some(packed) = self.waiting.get(&key) {
            return Some(packed.clone());
        }
        let database = self.database.as_ref()?;
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let transaction = database.begin_read()?;
            let table = transaction.open_table(BLOCKS)?;
            Ok(table.get(key.as_slice())?.map(|value| value.value().to_vec()))
        };
        match read() {
            Ok(packed) => packed,
            Err(error) => {
                tracing::warn!(%error, "cannot read a usage history block; its points are left out");
                None
            }
        }
    }
}

fn key(step: Step, block: i64, node: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + node.len());
    key.push(step as u8);
    key.extend_from_slice(&((block as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(node.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_back_before_and_after_a_flush_and_dropped_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let (mut blocks, error) = UsageBlocks::open(dir.path());
        assert_eq!(error, None);
        blocks.put("n1", Step::Minute, -5, vec![1, 2, 3]);
        blocks.put("n1", Step::TenSeconds, -5, vec![9]);
        blocks.put("n2", Step::Minute, 7, vec![4]);
        assert_eq!(blocks.get("n1", Step::Minute, -5), Some(vec![1, 2, 3]));
        let flush = blocks.flush();
        let written = flush.write();
        assert_eq!(written, Ok(()));
        blocks.flushed(&flush, &written);
        assert_eq!(blocks.waiting(), 0);
        assert_eq!(blocks.get("n1", Step::Minute, -5), Some(vec![1, 2, 3]), "from the file");
        assert_eq!(blocks.get("n1", Step::TenSeconds, -5), Some(vec![9]));
        assert_eq!(blocks.get("n2", Step::Minute, 7), Some(vec![4]));
        assert_eq!(blocks.get("n2", Step::Minute, 6), None);
        // A block a day later: the minutes of a day before go at the next
        // flush; the 10-second block (its own step) goes too, being older
        // than an hour before the newest 10-second block.
        blocks.put("n2", Step::Minute, 7 + Step::Minute.closed_blocks() + 1, vec![5]);
        blocks.put("n2", Step::TenSeconds, 100, vec![6]);
        let flush = blocks.flush();
        let written = flush.write();
        blocks.flushed(&flush, &written);
        assert_eq!(blocks.get("n1", Step::Minute, -5), None);
        assert_eq!(blocks.get("n2", Step::Minute, 7), None);
        assert_eq!(blocks.get("n1", Step::TenSeconds, -5), None);
        assert_eq!(blocks.get("n2", Step::TenSeconds, 100), Some(vec![6]));
    }

    #[test]
    fn without_a_file_the_blocks_stay_in_memory_and_old_ones_go() {
        let mut blocks = UsageBlocks::default();
        blocks.put("n1", Step::Minute, 1, vec![1]);
        blocks.put("n1", Step::Minute, 2 + Step::Minute.closed_blocks(), vec![2]);
        let flush = blocks.flush();
        let written = flush.write();
        blocks.flushed(&flush, &written);
        assert_eq!(blocks.get("n1", Step::Minute, 1), None);
        assert_eq!(blocks.get("n1", Step::Minute, 2 + Step::Minute.closed_blocks()), Some(vec![2]));
    }

    #[test]
    fn a_new_server_starts_with_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut blocks, _) = UsageBlocks::open(dir.path());
        blocks.put("n1", Step::Minute, 1, vec![1]);
        let flush = blocks.flush();
        let written = flush.write();
        blocks.flushed(&flush, &written);
        drop((blocks, flush));
        let (blocks, error) = UsageBlocks::open(dir.path());
        assert_eq!(error, None);
        assert_eq!(blocks.get("n1", Step::Minute, 1), None);
    }
}
