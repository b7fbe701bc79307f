//! Small text helpers.

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `bytes` as lowercase hex (how drover writes hashes, secrets and
/// certificate serials).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::truncated;

    #[test]
    fn cuts_at_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("abcdef", 3), "abc");
        // `é` is two bytes: a cut inside it backs off to before it.
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated("aé", 3), "aé");
    }
}
