//! The crate's one error type: what was wrong, where (a column and a caret
//! under the input), and what to do.

use std::fmt;

/// What kind of mistake an [`Error`] reports; a closed set callers may match
/// on (the message itself is for people and may change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The filter is not well formed: an unexpected or missing token, a bad
    /// string or number, a bare field that is not a yes/no field.
    Syntax,
    /// A field name the language does not know.
    UnknownField,
    /// A value that can never match, such as `status == "dwon"`.
    UnknownValue,
    /// A glob or regular expression that does not compile.
    BadPattern,
    /// The input is too long or nested too deeply.
    TooComplex,
    /// A node-name pattern such as `batch{00..99}` that does not expand.
    BadNames,
    /// A node-name pattern that expands to more than the limit.
    TooManyNames,
}

/// A filter or node-name pattern that was refused.
///
/// `Display` prints the message, then the input and a caret line under the
/// offending part:
///
/// ```text
/// unknown field "hostgrup" at column 1; did you mean "hostgroup"?
///   hostgrup == "x"
///   ^^^^^^^^
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    column: usize,
    width: usize,
    input: String,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error about the characters `column .. column + width` (1-based,
    /// counted in characters) of `input`. The message must already say
    /// where (`at column N`) and what to do.
    pub(crate) fn new(kind: ErrorKind, message: String, column: usize, width: usize, input: &str) -> Error {
        Error { kind, message, column: column.max(1), width: width.max(1), input: input.to_owned() }
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message, without the caret lines.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The 1-based column (in characters) where the mistake starts.
    pub fn column(&self) -> usize {
        self.column
    }

    /// How many characters the caret line underlines (at least one).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The input the error is about.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters (a newline in a filter read from a file, a tab)
        // are shown as spaces so that the caret stays under its column.
        let echoed: String =
            self.input.chars().map(|character| if character.is_control() { ' ' } else { character }).collect();
        let input_length = echoed.chars().count();
        let padding = " ".repeat(self.column.saturating_sub(1).min(input_length));
        let carets = "^".repeat(self.width.min(input_length.saturating_sub(self.column - 1).max(1)));
        write!(formatter, "{}\n  {echoed}\n  {padding}{carets}", self.message)
    }
}

impl std::error::Error for Error {}
