//! Overlong lines: split into pieces at [`MAX_LINE_BYTES`], each piece
//! marked, never dropped.
//!
//! A piece followed by more of the same line ends with
//! [`CONTINUES_MARKER`]; a piece that continues a line starts with
//! [`CONTINUED_MARKER`]. So a 1 MB line becomes 16 records whose words are
//! all searchable, `"line continues"` finds the lines that were split,
//! and a continuation never has a time parsed from its start (the marker
//! comes first). Every source cuts at the same limit: the file follower
//! while it reads (a line is never held whole in memory), syslog over TCP
//! while it frames, and the agent's collector and the server for the
//! others (journal entries, console output, the server's own syslog).

/// The most bytes of a line's text one record holds (64 KiB); longer lines
/// are split, at a character boundary.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The end of a piece that the next record continues.
pub const CONTINUES_MARKER: &str = " [drover: line continues]";

/// The start of a piece that continues the previous record.
pub const CONTINUED_MARKER: &str = "[drover: line continued] ";

/// The most a marked piece of at most `max_bytes` of text takes.
pub fn marked_len(max_bytes: usize) -> usize {
    max_bytes + CONTINUES_MARKER.len() + CONTINUED_MARKER.len()
}

/// `text` as a piece of a split line: with [`CONTINUED_MARKER`] in front
/// when it continues one, [`CONTINUES_MARKER`] after when more follows.
pub fn mark_piece(text: String, is_continuation: bool, continues: bool) -> String {
    if !is_continuation && !continues {
        return text;
    }
    let mut marked = String::with_capacity(text.len() + CONTINUED_MARKER.len() + CONTINUES_MARKER.len());
    if is_continuation {
        marked.push_str(CONTINUED_MARKER);
    }
    marked.push_str(&text);
    if continues {
        marked.push_str(CONTINUES_MARKER);
    }
    marked
}

/// `text` as it is when it fits in a record ([`marked_len`] of
/// `max_bytes`, so that a piece already marked passes unchanged), else
/// its pieces of at most `max_bytes` bytes, marked.
pub fn split_overlong(text: String, max_bytes: usize) -> Vec<String> {
    let max_bytes = max_bytes.max(4);
    if text.len() <= marked_len(max_bytes) {
        return vec![text];
    }
    let mut pieces = Vec::with_capacity(text.len() / max_bytes + 1);
    let mut rest = text.as_str();
    let mut is_continuation = false;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max_bytes);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, after) = rest.split_at(cut);
        pieces.push(mark_piece(piece.to_owned(), is_continuation, !after.is_empty()));
        is_continuation = true;
        rest = after;
    }
    pieces
}

/// Where to cut bytes that are too long so that a multi-byte character
/// stays whole (all of `piece` when it is not valid UTF-8 anyway).
pub fn utf8_cut(piece: &[u8]) -> usize {
    match std::str::from_utf8(piece) {
        Err(err) if err.error_len().is_none() && err.valid_up_to() > 0 => err.valid_up_to(),
        _ => piece.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_fits_is_left_alone() {
        assert_eq!(split_overlong("short".to_owned(), 8), vec!["short"]);
        let marked = mark_piece("12345678".to_owned(), true, true);
        assert_eq!(split_overlong(marked.clone(), 8), vec![marked]);
    }

    #[test]
    fn a_long_line_is_split_into_marked_pieces_that_keep_every_byte() {
        let line = "é".repeat(10) + &"x".repeat(100);
        let pieces = split_overlong(line.clone(), 7);
        assert!(pieces.len() > 2);
        assert!(pieces[0].ends_with(CONTINUES_MARKER) && !pieces[0].starts_with(CONTINUED_MARKER));
        let last = pieces.last().unwrap();
        assert!(last.starts_with(CONTINUED_MARKER) && !last.ends_with(CONTINUES_MARKER));
        let joined: String = pieces
            .iter()
            .map(|piece| {
                let piece = piece.strip_prefix(CONTINUED_MARKER).unwrap_or(piece);
                piece.strip_suffix(CONTINUES_MARKER).unwrap_or(piece)
            })
            .collect();
        assert_eq!(joined, line);
        // A two-byte character is never cut in half.
        assert!(pieces.iter().all(|piece| !piece.contains('\u{fffd}')));
    }
}
