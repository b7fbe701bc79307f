//! A fast, non-cryptographic hasher for the scheduler's per-evaluation maps
//! and the harness's indexes.
//!
//! The keys are ids (UUID text) and group names; the maps live for one
//! evaluation or one test, so resistance to crafted collisions is not
//! needed, while SipHash's cost showed up in every placement. This is the
//! Fx hash (rustc's): a rotate, xor and multiply per 8 bytes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A `HashSet` with [`FxHasher`].
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

const MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The Fx hasher.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add_word(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0_u8; 8];
            word.copy_from_slice(chunk);
            self.add_word(u64::from_le_bytes(word));
        }
        let remainder = chunks.remainder();
        if !remainder.is_empty() {
            let mut word = [0_u8; 8];
            word[..remainder.len()].copy_from_slice(remainder);
            // The length keeps "a" and "a\0" apart.
            self.add_word(u64::from_le_bytes(word) ^ ((remainder.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add_word(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add_word(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add_word(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add_word(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn different_strings_hash_differently() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let texts = ["", "a", "a\0", "ab", "node-00001", "node-00002", "0f8fad5b-d9cb-469f-a165-70867728950e"];
        let hashes: FastSet<u64> = texts.iter().map(|text| build.hash_one(text)).collect();
        assert_eq!(hashes.len(), texts.len());
    }
}
