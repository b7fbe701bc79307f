//! Brace expansion of node names: `batch{00..99}` is a hundred names.
//!
//! ```text
//! list    = pattern { "," pattern }          commas outside braces separate patterns
//! pattern = { text | "{" group "}" }
//! group   = range | pattern "," pattern { "," pattern }   (a single pattern is allowed too)
//! range   = from ".." to [ ".." step ]
//! ```
//!
//! - `{1..10}` counts from 1 to 10; `{00..99}` and `{1..010}` are padded
//!   with zeros to the wider end's width; `{10..1}` counts down;
//!   `{0..20..5}` steps by 5; `{a..e}` counts letters.
//! - `{gpu,cpu}` is one name per alternative; alternatives may hold braces
//!   themselves (`{gpu{01..02},login}`).
//! - Several groups multiply: `r{1..2}n{1..3}` is six names.
//! - Spaces around the separating commas are ignored; names themselves
//!   hold no spaces.
//! - pdsh and clush node sets work too: `batch[01-12,15]` is batch01 to
//!   batch12 and batch15 (the width of each range's first number pads
//!   it, as in pdsh); brackets multiply like braces (`r[1-2]n[1-3]`), and
//!   hold numbers and `from-to` ranges only.
//! - The result keeps the order of the input and drops repeated names.
//! - More than [`MAX_NAMES`] names, or names longer than
//!   [`MAX_NAME_CHARS`] characters, are refused before anything is
//!   expanded.

use std::collections::HashSet;

use crate::error::{Error, ErrorKind, Result};

/// The most names one pattern list may expand to.
pub const MAX_NAMES: usize = 100_000;

/// The longest name a pattern may produce (a DNS name is at most 253).
pub const MAX_NAME_CHARS: usize = 255;

/// Braces nested deeper than this are refused.
const MAX_BRACE_DEPTH: usize = 32;

/// Expands a comma-separated list of node-name patterns, in order, without
/// repeats.
///
/// ```
/// let names = drover_filter::expand_names("batch{01..03},gpu07").unwrap();
/// assert_eq!(names, ["batch01", "batch02", "batch03", "gpu07"]);
/// ```
///
/// # Errors
/// [`ErrorKind::BadNames`] for malformed patterns (an unclosed `{`, a bad
/// range, an empty name) and [`ErrorKind::TooManyNames`] when the list
/// would expand to more than [`MAX_NAMES`] names; the error points at the
/// offending column.
pub fn expand_names(input: &str) -> Result<Vec<String>> {
    expand_names_with_limit(input, MAX_NAMES)
}

/// [`expand_names`] with a different limit on the number of names.
///
/// # Errors
/// As [`expand_names`], with `max_names` as the limit.
pub fn expand_names_with_limit(input: &str, max_names: usize) -> Result<Vec<String>> {
    let characters: Vec<char> = input.chars().collect();
    let mut reader = Reader { input, characters: &characters, index: 0 };
    let patterns = reader.parse_list()?;
    let mut num_names: usize = 0;
    for pattern in &patterns {
        num_names = num_names.saturating_add(count(&pattern.sequence));
        if num_names > max_names {
            return Err(Error::new(
                ErrorKind::TooManyNames,
                format!(
                    "the names expand to more than {max_names} names (counting up to the pattern at column {}); \
                     select fewer nodes at once, or use --filter",
                    pattern.column
                ),
                pattern.column,
                pattern.width,
                input,
            ));
        }
        let longest = max_length(&pattern.sequence);
        if longest > MAX_NAME_CHARS {
            return Err(Error::new(
                ErrorKind::BadNames,
                format!(
                    "the pattern at column {} makes names of up to {longest} characters; node names have at most \
                     {MAX_NAME_CHARS}",
                    pattern.column
                ),
                pattern.column,
                pattern.width,
                input,
            ));
        }
    }
    let mut seen = HashSet::new();
    let mut names = Vec::with_capacity(num_names);
    for pattern in &patterns {
        for name in expand(&pattern.sequence) {
            if name.is_empty() {
                return Err(Error::new(
                    ErrorKind::BadNames,
                    format!(
                        "the pattern at column {} makes an empty name; remove the empty alternative",
                        pattern.column
                    ),
                    pattern.column,
                    pattern.width,
                    input,
                ));
            }
            if seen.insert(name.clone()) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// One part of a pattern.
#[derive(Debug)]
enum Part {
    Text(String),
    /// `{a,b,c}`: one of several sequences.
    Choice(Vec<Vec<Part>>),
    /// `{from..to..step}`, already checked.
    Range(Range),
}

#[derive(Debug)]
enum Range {
    Numbers { from: u64, to: u64, step: u64, width: usize },
    Letters { from: char, to: char, step: u64 },
}

impl Range {
    fn count(&self) -> usize {
        let (from, to, step) = match self {
            Range::Numbers { from, to, step, .. } => (*from, *to, *step),
            Range::Letters { from, to, step } => (u64::from(*from), u64::from(*to), *step),
        };
        let span = from.abs_diff(to) / step.max(1);
        usize::try_from(span).map_or(usize::MAX, |span| span.saturating_add(1))
    }

    fn max_length(&self) -> usize {
        match self {
            Range::Numbers { from, to, width, .. } => (*width).max(from.max(to).to_string().len()),
            Range::Letters { .. } => 1,
        }
    }

    /// The values, in order; only called once the count is known to be
    /// within the limit.
    fn values(&self) -> Vec<String> {
        match self {
            Range::Numbers { from, to, step, width } => {
                counting(*from, *to, *step).map(|number| format!("{number:0width$}")).collect()
            }
            Range::Letters { from, to, step } => counting(u64::from(*from), u64::from(*to), *step)
                .filter_map(|code| u32::try_from(code).ok().and_then(char::from_u32))
                .map(String::from)
                .collect(),
        }
    }
}

/// `from`, `from ± step`, … up to `to` inclusive, counting down when
/// `to < from`.
fn counting(from: u64, to: u64, step: u64) -> impl Iterator<Item = u64> {
    let step = step.max(1);
    let num_values = from.abs_diff(to) / step + 1;
    (0..num_values).map(move |offset| {
        let distance = offset * step;
        if to >= from { from + distance } else { from - distance }
    })
}

/// A top-level pattern and where it is.
struct Pattern {
    sequence: Vec<Part>,
    column: usize,
    width: usize,
}

fn count(sequence: &[Part]) -> usize {
    sequence.iter().fold(1_usize, |product, part| {
        let part_count = match part {
            Part::Text(_) => 1,
            Part::Choice(alternatives) => {
                alternatives.iter().fold(0_usize, |sum, alternative| sum.saturating_add(count(alternative)))
            }
            Part::Range(range) => range.count(),
        };
        product.saturating_mul(part_count)
    })
}

fn max_length(sequence: &[Part]) -> usize {
    sequence
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.chars().count(),
            Part::Choice(alternatives) => {
                alternatives.iter().map(|alternative| max_length(alternative)).max().unwrap_or(0)
            }
            Part::Range(range) => range.max_length(),
        })
        .fold(0_usize, usize::saturating_add)
}

fn expand(sequence: &[Part]) -> Vec<String> {
    let mut names = vec![String::new()];
    for part in sequence {
        let suffixes: Vec<String> = match part {
            Part::Text(text) => vec![text.clone()],
            Part::Choice(alternatives) => alternatives.iter().flat_map(|alternative| expand(alternative)).collect(),
            Part::Range(range) => range.values(),
        };
        names =
            names.iter().flat_map(|prefix| suffixes.iter().map(move |suffix| format!("{prefix}{suffix}"))).collect();
    }
    names
}

struct Reader<'a> {
    input: &'a str,
    characters: &'a [char],
    index: usize,
}

impl Reader<'_> {
    fn error(&self, message: String, column: usize, width: usize) -> Error {
        Error::new(ErrorKind::BadNames, message, column, width, self.input)
    }

    fn peek(&self) -> Option<char> {
        self.characters.get(self.index).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.index += 1;
        }
    }

    /// `list = pattern { "," pattern }`
    fn parse_list(&mut self) -> Result<Vec<Pattern>> {
        let mut patterns = Vec::new();
        loop {
            self.skip_spaces();
            let start = self.index;
            let sequence = self.parse_sequence(0)?;
            let end = self.index;
            if sequence.is_empty() {
                let message = if self.characters.iter().all(|character| character.is_whitespace()) {
                    "no node names given; name at least one node, such as batch07 or batch{00..99}".to_owned()
                } else {
                    format!("empty name at column {}; remove the extra \",\"", start + 1)
                };
                return Err(self.error(message, start + 1, 1));
            }
            patterns.push(Pattern { sequence, column: start + 1, width: end - start });
            self.skip_spaces();
            match self.peek() {
                None => return Ok(patterns),
                Some(',') => self.index += 1,
                Some('}') => {
                    return Err(self.error(
                        format!("unmatched \"}}\" at column {}; remove it or add a \"{{\" before it", self.index + 1),
                        self.index + 1,
                        1,
                    ));
                }
                Some(_) => {
                    return Err(self.error(
                        format!(
                            "space inside a name at column {}; separate names with \",\"",
                            self.index.saturating_sub(1) + 1
                        ),
                        self.index,
                        1,
                    ));
                }
            }
        }
    }

    /// `pattern = { text | "{" group "}" }`, stopping before `,`, `}`, a
    /// space or the end.
    fn parse_sequence(&mut self, depth: usize) -> Result<Vec<Part>> {
        let mut parts = Vec::new();
        let mut text = String::new();
        while let Some(character) = self.peek() {
            match character {
                ',' | '}' => break,
                _ if character.is_whitespace() => break,
                '{' => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(self.parse_group(depth + 1)?);
                }
                '[' => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(self.parse_node_set()?);
                }
                ']' => {
                    return Err(self.error(
                        format!("unmatched \"]\" at column {}; remove it or add a \"[\" before it", self.index + 1),
                        self.index + 1,
                        1,
                    ));
                }
                _ => {
                    text.push(character);
                    self.index += 1;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(parts)
    }

    /// A `{…}` group, starting at its `{`.
    fn parse_group(&mut self, depth: usize) -> Result<Part> {
        let open_index = self.index;
        let open_column = open_index + 1;
        if depth > MAX_BRACE_DEPTH {
            return Err(self.error(
                format!("braces nest more than {MAX_BRACE_DEPTH} deep at column {open_column}; simplify the pattern"),
                open_column,
                1,
            ));
        }
        self.index += 1;
        if let Some(range) = self.try_range(open_column)? {
            return Ok(Part::Range(range));
        }
        let mut alternatives = Vec::new();
        loop {
            let alternative = self.parse_sequence(depth)?;
            alternatives.push(alternative);
            match self.peek() {
                Some(',') => self.index += 1,
                Some('}') => {
                    self.index += 1;
                    break;
                }
                Some(_) => {
                    return Err(self.error(
                        format!("space inside the braces at column {}; names hold no spaces", self.index + 1),
                        self.index + 1,
                        1,
                    ));
                }
                None => {
                    return Err(self.error(
                        format!("the \"{{\" at column {open_column} is never closed; add a \"}}\""),
                        open_column,
                        1,
                    ));
                }
            }
        }
        if alternatives.len() == 1 && alternatives.first().is_some_and(Vec::is_empty) {
            return Err(self.error(
                format!(
                    "empty braces at column {open_column}; write a range such as {{00..99}} or a list such as {{a,b}}"
                ),
                open_column,
                self.index - open_index,
            ));
        }
        Ok(Part::Choice(alternatives))
    }

    /// A pdsh/clush node set `[01-12,15]`, starting at its `[`: numbers
    /// and `from-to` ranges separated by commas.
    fn parse_node_set(&mut self) -> Result<Part> {
        let open_column = self.index + 1;
        let rest = self.characters.get(self.index + 1..).unwrap_or_default();
        let Some(close_offset) = rest.iter().position(|character| *character == ']') else {
            return Err(self.error(
                format!("the \"[\" at column {open_column} is never closed; add a \"]\""),
                open_column,
                1,
            ));
        };
        let content: String = rest.get(..close_offset).unwrap_or_default().iter().collect();
        let width = close_offset + 2;
        let bad_set = |reason: &str| {
            self.error(
                format!(
                    "bad node set [{content}] at column {open_column}: {reason}; write numbers and ranges such as \
                     [01-12,15]"
                ),
                open_column,
                width,
            )
        };
        let is_number = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        let mut alternatives = Vec::new();
        for item in content.split(',') {
            let item = item.trim();
            match item.split_once('-') {
                None if is_number(item) => alternatives.push(vec![Part::Text(item.to_owned())]),
                Some((from_text, to_text)) if is_number(from_text) && is_number(to_text) => {
                    let (Ok(from), Ok(to)) = (from_text.parse::<u64>(), to_text.parse::<u64>()) else {
                        return Err(bad_set("the numbers are too large"));
                    };
                    if from > to {
                        return Err(bad_set(&format!("{from_text}-{to_text} counts down")));
                    }
                    let width = if from_text.len() > 1 && from_text.starts_with('0') { from_text.len() } else { 0 };
                    alternatives.push(vec![Part::Range(Range::Numbers { from, to, step: 1, width })]);
                }
                _ if item.is_empty() => return Err(bad_set("an empty item")),
                _ => return Err(bad_set(&format!("{item:?} is neither a number nor a range"))),
            }
        }
        self.index += close_offset + 2;
        Ok(Part::Choice(alternatives))
    }

    /// Reads `from..to[..step]}` after a `{` when the group contains `..`
    /// and no nested braces or commas; `None` (reading nothing) otherwise.
    fn try_range(&mut self, open_column: usize) -> Result<Option<Range>> {
        let rest = self.characters.get(self.index..).unwrap_or_default();
        let Some(close_offset) = rest.iter().position(|character| matches!(character, '}' | '{' | ',')) else {
            return Ok(None);
        };
        if rest.get(close_offset) != Some(&'}') {
            return Ok(None);
        }
        let content: String = rest.get(..close_offset).unwrap_or_default().iter().collect();
        if !content.contains("..") {
            return Ok(None);
        }
        let width = close_offset + 2;
        let bad_range = |reason: &str| {
            self.error(
                format!(
                    "bad range {{{content}}} at column {open_column}: {reason}; write a range such as {{00..99}}, \
                     {{1..20..2}} or {{a..f}}"
                ),
                open_column,
                width,
            )
        };
        let pieces: Vec<&str> = content.split("..").collect();
        let (from_text, to_text, step_text) = match pieces.as_slice() {
            [from, to] => (*from, *to, None),
            [from, to, step] => (*from, *to, Some(*step)),
            _ => return Err(bad_range("expected two or three parts separated by \"..\"")),
        };
        let step = match step_text {
            None => 1,
            Some(text) => match text.parse::<u64>() {
                Ok(step) if step > 0 && text.bytes().all(|byte| byte.is_ascii_digit()) => step,
                _ => return Err(bad_range("the step must be a whole number above zero")),
            },
        };
        let is_number = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        let single_letter = |text: &str| {
            let mut characters = text.chars();
            match (characters.next(), characters.next()) {
                (Some(letter), None) if letter.is_ascii_alphabetic() => Some(letter),
                _ => None,
            }
        };
        let range = if is_number(from_text) && is_number(to_text) {
            let (Ok(from), Ok(to)) = (from_text.parse::<u64>(), to_text.parse::<u64>()) else {
                return Err(bad_range("the numbers are too large"));
            };
            let padded = |text: &str| text.len() > 1 && text.starts_with('0');
            let width = if padded(from_text) || padded(to_text) { from_text.len().max(to_text.len()) } else { 0 };
            Range::Numbers { from, to, step, width }
        } else if let (Some(from), Some(to)) = (single_letter(from_text), single_letter(to_text)) {
            if from.is_ascii_lowercase() != to.is_ascii_lowercase() {
                return Err(bad_range("both ends must be lowercase or both uppercase letters"));
            }
            Range::Letters { from, to, step }
        } else {
            return Err(bad_range("both ends must be whole numbers, or both single letters"));
        };
        self.index += close_offset + 1;
        Ok(Some(range))
    }
}

/// Folds names into the brace patterns [`expand_names`] reads: runs of
/// consecutive numbers with the same prefix, suffix and width become
/// ranges (`batch01`…`batch05` → `batch{01..05}`). The result expands back
/// to the same set of names, sorted.
///
/// ```
/// let folded = drover_filter::fold_names(["batch03", "batch01", "batch02", "gpu7", "login"]);
/// assert_eq!(folded, "batch{01..03},gpu7,login");
/// ```
pub fn fold_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    use std::collections::BTreeMap;
    // (prefix, width, suffix) → numbers; names without digits stand alone.
    let mut numbered: BTreeMap<(String, usize, String), Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref();
        match split_number(name) {
            Some((prefix, digits, suffix)) => match digits.parse::<u64>() {
                Ok(number) => {
                    numbered.entry((prefix.to_owned(), digits.len(), suffix.to_owned())).or_default().push(number)
                }
                Err(_) => plain.push(name.to_owned()),
            },
            None => plain.push(name.to_owned()),
        }
    }
    let mut parts: Vec<(String, String)> = plain.into_iter().map(|name| (name.clone(), name)).collect();
    for ((prefix, width, suffix), mut numbers) in numbered {
        numbers.sort_unstable();
        numbers.dedup();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for number in numbers {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == number => *end = number,
                _ => runs.push((number, number)),
            }
        }
        for (start, end) in runs {
            let text = if start == end {
                format!("{prefix}{start:0width$}{suffix}")
            } else {
                format!("{prefix}{{{start:0width$}..{end:0width$}}}{suffix}")
            };
            parts.push((format!("{prefix}{start:0width$}{suffix}"), text));
        }
    }
    parts.sort();
    parts.dedup();
    parts.into_iter().map(|(_, text)| text).collect::<Vec<_>>().join(",")
}

/// The last run of ASCII digits in a name, with what precedes and follows
/// it. Names holding characters the pattern syntax uses are left alone.
fn split_number(name: &str) -> Option<(&str, &str, &str)> {
    if name.contains(['{', '}', ',']) {
        return None;
    }
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = end - name[..end].bytes().rev().take_while(u8::is_ascii_digit).count();
    let digits = &name[start..end];
    // Widths must survive the round trip: `{8..12}` pads to 2, so a run
    // mixing widths is never formed (the width is part of the key); a
    // name like `n8` and `n12` stay apart.
    (digits.len() <= 18).then(|| (&name[..start], digits, &name[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(input: &str) -> Vec<String> {
        expand_names(input).unwrap_or_else(|error| vec![format!("error: {error}")])
    }

    #[test]
    fn ranges_count_and_pad() {
        assert_eq!(names("batch{00..03}"), ["batch00", "batch01", "batch02", "batch03"]);
        assert_eq!(names("n{8..11}"), ["n8", "n9", "n10", "n11"]);
        assert_eq!(names("n{1..010..4}"), ["n001", "n005", "n009"]);
        assert_eq!(names("n{3..1}"), ["n3", "n2", "n1"]);
        assert_eq!(names("rack{a..c}"), ["racka", "rackb", "rackc"]);
        assert_eq!(names("batch{00..99}").len(), 100);
    }

    #[test]
    fn lists_nest_and_multiply() {
        assert_eq!(names("{gpu,cpu}01"), ["gpu01", "cpu01"]);
        assert_eq!(names("{gpu{1..2},login}"), ["gpu1", "gpu2", "login"]);
        assert_eq!(names("r{1..2}n{1..2}"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(names("batch{01..03},gpu07"), ["batch01", "batch02", "batch03", "gpu07"]);
        assert_eq!(names(" a , b,a "), ["a", "b"]);
        assert_eq!(names("{a}"), ["a"]);
        assert_eq!(names("v1.2..3"), ["v1.2..3"]);
    }

    #[test]
    fn limits_are_checked_before_expanding() {
        let error = expand_names("n{0..99999}{0..9}").err();
        assert_eq!(error.map(|error| error.kind()), Some(ErrorKind::TooManyNames));
        let error = expand_names_with_limit("n{1..3},m{1..3}", 5).err();
        assert_eq!(error.map(|error| error.column()), Some(9));
        assert_eq!(expand_names("n{0..99999}").map(|names| names.len()).ok(), Some(100_000));
        let huge = expand_names("n{0..18446744073709551615}").err();
        assert_eq!(huge.map(|error| error.kind()), Some(ErrorKind::TooManyNames));
    }
}
