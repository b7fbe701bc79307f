//! Error messages with a file name, a line and a column.
//!
//! Every problem found in a definition file becomes one [`Diagnostic`]; a
//! reader collects all of them (it never stops at the first) and hands them
//! back as [`Diagnostics`], which prints one `file:line:column: message` line
//! per problem, the format editors and terminals turn into links.

use std::fmt;
use std::ops::Range;

/// One problem in an input, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// The file (or pseudo-file such as `command line`) the problem is in.
    pub file: String,
    /// One-based line; 0 when the input has no lines (a `-var` argument).
    pub line: usize,
    /// One-based column in characters; 0 together with `line`.
    pub column: usize,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    /// A problem at a position in a file.
    pub fn new(file: impl Into<String>, location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: file.into(), line: location.line, column: location.column, message: message.into() }
    }

    /// A problem in an input that has no lines, such as a command-line
    /// argument or an environment variable.
    pub fn without_position(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: file.into(), line: 0, column: 0, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(formatter, "{}: {}", self.file, self.message)
        } else {
            write!(formatter, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

/// Every problem found in an input, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// No problems yet.
    pub fn new() -> Diagnostics {
        Diagnostics(Vec::new())
    }

    /// Adds a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Puts the problems in a stable reading order (positionless ones such as
    /// command-line errors first, then by file, line and column, keeping the
    /// order of problems at one position) and drops exact duplicates.
    pub fn sort(&mut self) {
        self.0.sort_by(|left, right| {
            (left.line != 0, &left.file, left.line, left.column).cmp(&(
                right.line != 0,
                &right.file,
                right.line,
                right.column,
            ))
        });
        let mut seen = std::collections::HashSet::new();
        self.0.retain(|diagnostic| seen.insert(diagnostic.clone()));
    }

    /// `Ok(value)` when there is no problem, else the problems in reading
    /// order.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            return Ok(value);
        }
        self.sort();
        Err(self)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("\n")?;
            }
            write!(formatter, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A one-based line and column in a source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// One-based line.
    pub line: usize,
    /// One-based column, counted in characters.
    pub column: usize,
}

impl Location {
    /// The first character of a file.
    pub const START: Location = Location { line: 1, column: 1 };
}

/// A named source text with the byte offsets of its lines, to turn the byte
/// spans of the parser into lines and columns.
#[derive(Clone, Debug)]
pub(crate) struct SourceMap {
    name: String,
    text: String,
    line_starts: Vec<usize>,
    /// Offsets (in the parsed text) where parsing inserted a newline that
    /// the text does not have, sorted; see `syntax::parse_body`.
    insertions: Vec<usize>,
}

impl SourceMap {
    pub(crate) fn new(name: &str, text: &str) -> SourceMap {
        let line_starts = std::iter::once(0)
            .chain(text.char_indices().filter(|(_, character)| *character == '\n').map(|(index, _)| index + 1))
            .collect();
        SourceMap { name: name.to_owned(), text: text.to_owned(), line_starts, insertions: Vec::new() }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Records where parsing inserted newlines (offsets in the parsed
    /// text, sorted).
    pub(crate) fn set_insertions(&mut self, insertions: Vec<usize>) {
        self.insertions = insertions;
    }

    /// The offset in the text of an offset in the parsed text.
    pub(crate) fn original_offset(&self, offset: usize) -> usize {
        offset - self.insertions.partition_point(|inserted| *inserted < offset)
    }

    /// The line and column of a byte offset of the parsed text (clamped to
    /// the text).
    pub(crate) fn location(&self, offset: usize) -> Location {
        let clamped = self.original_offset(offset).min(self.text.len());
        let line_index = self.line_starts.partition_point(|start| *start <= clamped).saturating_sub(1);
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = self.text.get(line_start..clamped).map_or(clamped - line_start, |prefix| prefix.chars().count());
        Location { line: line_index + 1, column: column + 1 }
    }

    /// The location of the start of a span, or of the file when the span is
    /// unknown.
    pub(crate) fn span_location(&self, span: Option<Range<usize>>) -> Location {
        span.map_or(Location::START, |range| self.location(range.start))
    }

    /// A diagnostic at the start of `span`.
    pub(crate) fn diagnostic(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.name, self.span_location(span), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let map = SourceMap::new("a.hcl", "ab\nçd = 1\n\nx");
        assert_eq!(map.location(0), Location { line: 1, column: 1 });
        assert_eq!(map.location(2), Location { line: 1, column: 3 });
        assert_eq!(map.location(3), Location { line: 2, column: 1 });
        // `ç` is two bytes but one column.
        assert_eq!(map.location(5), Location { line: 2, column: 2 });
        assert_eq!(map.location(11), Location { line: 3, column: 1 });
        assert_eq!(map.location(12), Location { line: 4, column: 1 });
        assert_eq!(map.location(1000), Location { line: 4, column: 2 });
    }

    #[test]
    fn diagnostics_print_one_line_each_in_reading_order() {
        let mut diagnostics = Diagnostics::new();
        diagnostics.push(Diagnostic::new("job.hcl", Location { line: 3, column: 5 }, "second"));
        diagnostics.push(Diagnostic::new("job.hcl", Location { line: 1, column: 2 }, "first"));
        diagnostics.push(Diagnostic::new("job.hcl", Location { line: 1, column: 2 }, "first"));
        diagnostics.push(Diagnostic::without_position("command line", "-var x: bad"));
        let error = diagnostics.into_result(()).unwrap_err();
        assert_eq!(error.to_string(), "command line: -var x: bad\njob.hcl:1:2: first\njob.hcl:3:5: second");
    }
}
