//! gzip for `/v1/metrics`: the chunks of a [`crate::FleetText`] compressed
//! one by one into one gzip stream, so that the answer stays streamed (the
//! server never holds the whole text, nor the whole compressed text).
//!
//! Prometheus asks for gzip (`Accept-Encoding: gzip`) on every scrape; the
//! text of 10,000 nodes shrinks about tenfold (docs/benchmarks.md, "Metrics
//! exposition"). The level is flate2's fast one: the text is repetitive
//! enough that higher levels gain little and cost the render time several
//! times over.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// The gzip stream of the text chunks of `chunks`, as byte chunks: each
/// input chunk is compressed and flushed (a sync flush, so a reader can
/// decode everything sent so far), and the last chunk carries the gzip
/// trailer. Concatenated, the output is one gzip member whose decoded text
/// is the concatenation of the input.
#[derive(Debug)]
pub struct GzipChunks<I> {
    chunks: I,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl<I: Iterator<Item = String>> GzipChunks<I> {
    /// Compresses `chunks` as they are pulled.
    pub fn new(chunks: I) -> Self {
        Self { chunks, encoder: Some(GzEncoder::new(Vec::new(), Compression::fast())) }
    }
}

impl<I: Iterator<Item = String>> Iterator for GzipChunks<I> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let encoder = self.encoder.as_mut()?;
        // Writing into a Vec cannot fail; an error would be a bug in flate2,
        // and ending the stream early (a truncated gzip the scraper rejects)
        // is the safe answer to it.
        let written = match self.chunks.next() {
            Some(chunk) => encoder.write_all(chunk.as_bytes()).and_then(|()| encoder.flush()),
            None => {
                let finished = self.encoder.take()?.finish();
                debug_assert!(finished.is_ok(), "gzip into a Vec failed: {finished:?}");
                return finished.ok();
            }
        };
        debug_assert!(written.is_ok(), "gzip into a Vec failed: {written:?}");
        if written.is_err() {
            self.encoder = None;
            return None;
        }
        Some(std::mem::take(encoder.get_mut()))
    }
}

/// Whether an `Accept-Encoding` header value accepts gzip: `gzip` (or `*`)
/// listed without `q=0` (RFC 9110, section 12.5.3).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|parameter| {
            parameter
                .strip_prefix("q=")
                .or_else(|| parameter.strip_prefix("Q="))
                .and_then(|quality| quality.parse::<f32>().ok())
                .is_some_and(|quality| quality <= 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn chunks_decode_to_the_text_and_each_prefix_is_readable() {
        let text = (0..20)
            .map(|chunk| (0..200).map(|line| format!("node_load1{{node=\"n{chunk}-{line}\"}} 0.5\n")).collect())
            .collect::<Vec<String>>();
        let compressed = GzipChunks::new(text.clone().into_iter()).collect::<Vec<_>>();
        assert_eq!(compressed.len(), text.len() + 1, "one per chunk and the trailer");
        let whole = compressed.concat();
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(whole.as_slice()).read_to_string(&mut decoded).unwrap();
        assert_eq!(decoded, text.concat());
        assert!(whole.len() * 5 < decoded.len(), "{} of {} bytes", whole.len(), decoded.len());

        // What was sent after the first chunk decodes to the first chunk.
        let mut first = String::new();
        let mut decoder = flate2::read::GzDecoder::new(compressed[0].as_slice());
        let _ = decoder.read_to_string(&mut first);
        assert_eq!(first, text[0]);
    }

    #[test]
    fn an_empty_text_is_an_empty_gzip() {
        let whole = GzipChunks::new(std::iter::empty()).collect::<Vec<_>>().concat();
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(whole.as_slice()).read_to_string(&mut decoded).unwrap();
        assert_eq!(decoded, "");
    }

    #[test]
    fn reads_accept_encoding() {
        for yes in ["gzip", "gzip, deflate", "deflate, GZIP;q=0.5", "*", "br;q=1.0, gzip;q=0.8, *;q=0.1"] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in ["", "identity", "deflate, br", "gzip;q=0", "gzip; q=0.000", "x-gzip"] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}
