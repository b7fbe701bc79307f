//! How text becomes terms, in one place for the index, the queries and
//! the live-tail matcher ([`crate::matcher`]), so that the three agree.
//!
//! - **Message words** ([`WordTokenizer`]): runs of alphanumeric characters
//!   (Unicode), lower-cased, runs of 40 bytes or more dropped (they still
//!   take a position, so a phrase does not match across them). This is
//!   exactly tantivy's `default` analyzer (`SimpleTokenizer`,
//!   `RemoveLongFilter::limit(40)`, `LowerCaser`), which format version 1
//!   indexed with, done in one pass over the bytes with a fast path for
//!   ASCII: tokenizing was a tenth of the cost of ingest.
//! - **Keyword values** ([`keyword_analyzer`]): the whole value,
//!   lower-cased the same way ([`lowercase`]).

use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer, Token, TokenStream, Tokenizer};

/// The name the message tokenizer is registered under in every partition.
pub(crate) const WORD_TOKENIZER: &str = "drover_words";

/// The tokenizer of keyword fields and extracted fields: the whole value, lower-cased.
pub(crate) const KEYWORD_TOKENIZER: &str = "drover_keyword";

/// Words of this many bytes or more are not indexed.
pub(crate) const MAX_WORD_BYTES: usize = 40;

/// The analyzer of the message.
pub(crate) fn word_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(WordTokenizer::default())
}

/// The analyzer of keyword and extracted fields.
pub(crate) fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).build()
}

/// Lower-cases as the index does: ASCII in place, anything else character
/// by character (so a final `Σ` becomes `σ`, unlike [`str::to_lowercase`]).
pub(crate) fn lowercase(text: &str) -> String {
    if text.is_ascii() { text.to_ascii_lowercase() } else { text.chars().flat_map(char::to_lowercase).collect() }
}

/// One word of a text, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// Counts every run of alphanumerics, dropped ones included.
    pub position: usize,
    pub text: String,
}

/// The words of `text` as the message index holds them.
pub(crate) fn words(text: &str) -> Vec<Word> {
    let mut tokenizer = WordTokenizer::default();
    let mut stream = tokenizer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        let token = stream.token();
        words.push(Word { position: token.position, text: token.text.clone() });
    }
    words
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct WordTokenizer {
    token: Token,
}

pub(crate) struct WordTokenStream<'a> {
    text: &'a str,
    /// Where to look for the next word.
    offset: usize,
    token: &'a mut Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordTokenStream<'a> {
        self.token.reset();
        WordTokenStream { text, offset: 0, token: &mut self.token }
    }
}

impl WordTokenStream<'_> {
    /// Whether the non-ASCII character at `offset` is alphanumeric, and its length.
    fn wide_char_at(&self, offset: usize) -> (bool, usize) {
        match self.text.get(offset..).and_then(|rest| rest.chars().next()) {
            Some(character) => (character.is_alphanumeric(), character.len_utf8()),
            None => (false, 1),
        }
    }
}

impl TokenStream for WordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        loop {
            let mut start = self.offset;
            loop {
                match bytes.get(start) {
                    None => {
                        self.offset = bytes.len();
                        return false;
                    }
                    Some(byte) if byte.is_ascii() => {
                        if byte.is_ascii_alphanumeric() {
                            break;
                        }
                        start += 1;
                    }
                    Some(_) => {
                        let (is_word, width) = self.wide_char_at(start);
                        if is_word {
                            break;
                        }
                        start += width;
                    }
                }
            }
            let mut end = start;
            let mut is_ascii = true;
            loop {
                match bytes.get(end) {
                    Some(byte) if byte.is_ascii() => {
                        if !byte.is_ascii_alphanumeric() {
                            break;
                        }
                        end += 1;
                    }
                    Some(_) => {
                        let (is_word, width) = self.wide_char_at(end);
                        if !is_word {
                            break;
                        }
                        is_ascii = false;
                        end += width;
                    }
                    None => break,
                }
            }
            self.offset = end;
            self.token.position = self.token.position.wrapping_add(1);
            if end - start >= MAX_WORD_BYTES {
                continue;
            }
            let word = &self.text[start..end];
            self.token.offset_from = start;
            self.token.offset_to = end;
            self.token.text.clear();
            if is_ascii {
                self.token.text.push_str(word);
                self.token.text.make_ascii_lowercase();
            } else {
                self.token.text.extend(word.chars().flat_map(char::to_lowercase));
            }
            return true;
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tantivy::tokenizer::{RemoveLongFilter, SimpleTokenizer};

    /// tantivy's `default` analyzer, which format version 1 used.
    fn tantivy_default(text: &str) -> Vec<(usize, String, usize, usize)> {
        let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
            .filter(LowerCaser)
            .build();
        tokens(analyzer, text)
    }

    fn ours(text: &str) -> Vec<(usize, String, usize, usize)> {
        tokens(word_analyzer(), text)
    }

    fn tokens(mut analyzer: TextAnalyzer, text: &str) -> Vec<(usize, String, usize, usize)> {
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            let token = stream.token();
            tokens.push((token.position, token.text.clone(), token.offset_from, token.offset_to));
        }
        tokens
    }

    #[test]
    fn same_words_as_tantivy_default() {
        for text in [
            "",
            "  ",
            "Failed password for root from 10.0.0.1 port 22",
            "ÉCOLE straße ΟΔΟΣ İstanbul 東京タワー x",
            "a-very-long-word-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b c",
            &"x".repeat(39),
            &"x".repeat(40),
            "jk2_init() Found child 6725 in scoreboard slot 10",
            "trailing word",
        ] {
            assert_eq!(ours(text), tantivy_default(text), "{text:?}");
        }
        assert_eq!(words("A bb").iter().map(|word| word.position).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn lowercases_like_the_index() {
        for text in ["MiXeD", "ΟΔΟΣ", "İx", "ǅ"] {
            let mut analyzer = keyword_analyzer();
            let mut stream = analyzer.token_stream(text);
            assert!(stream.advance());
            assert_eq!(lowercase(text), stream.token().text, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn same_words_as_tantivy_default_for_any_text(text in "\\PC{0,120}") {
            prop_assert_eq!(ours(&text), tantivy_default(&text));
        }

        #[test]
        fn same_words_for_log_like_text(text in "([a-zA-Z0-9]{1,45}|[ .:=/_\\-\\[\\]]|É|ß|Σ|東){0,40}") {
            prop_assert_eq!(ours(&text), tantivy_default(&text));
        }
    }
}
