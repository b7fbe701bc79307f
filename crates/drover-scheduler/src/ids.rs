//! Random identifiers for the allocations and evaluations a plan creates.
//!
//! The scheduler never reads the operating system's randomness: ids come
//! from the caller's generator, so a seeded run produces the same plan.

use rand::Rng;

/// A random UUID (version 4) in its 36-character text form, drawn from `rng`.
pub fn random_uuid<R: Rng + ?Sized>(rng: &mut R) -> String {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0_u8; 16];
    rng.fill_bytes(&mut bytes);
    // Version 4 (random) and the RFC 4122 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (position, byte) in bytes.iter().enumerate() {
        if matches!(position, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn uuids_have_the_v4_text_format_and_differ() {
        let mut rng = StdRng::seed_from_u64(7);
        let first = random_uuid(&mut rng);
        let second = random_uuid(&mut rng);
        assert_ne!(first, second);
        assert_eq!(first.len(), 36);
        let groups: Vec<&str> = first.split('-').collect();
        assert_eq!(groups.iter().map(|group| group.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('4'), "version nibble: {first}");
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "variant: {first}");
        assert!(first.bytes().all(|byte| byte == b'-' || byte.is_ascii_hexdigit()));
    }

    #[test]
    fn the_same_seed_gives_the_same_ids() {
        let mut first_rng = StdRng::seed_from_u64(42);
        let mut second_rng = StdRng::seed_from_u64(42);
        assert_eq!(random_uuid(&mut first_rng), random_uuid(&mut second_rng));
    }
}
