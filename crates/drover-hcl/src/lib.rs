//! Reading HCL definition files with source positions.
//!
//! drover's definition files (job files now, alert, hammer and provider
//! files later) are HCL in Nomad's style. This crate is the part they share:
//!
//! - [`parse`] turns a [`Source`] into a [`Document`], or into
//!   [`Diagnostics`] with the line and column of the syntax error;
//! - [`Document::evaluate`] reads the file's `variable` blocks and gives them
//!   values from their defaults, `DROVER_VAR_<name>` environment variables,
//!   `-var-file` files and `-var name=value` arguments ([`VarInputs`], in
//!   that order of precedence), then evaluates its `locals` blocks (see
//!   [`locals`]), producing an [`Evaluation`];
//! - [`Evaluation::root`] hands out a [`BlockReader`], through which a schema
//!   pulls typed attributes and sub-blocks by name. Expressions are
//!   evaluated with `hcl::eval`, except runtime references such as
//!   `${node.unique.name}`, which stay as text for the scheduler and the
//!   agent (see [`expression`]). Whatever the schema did not ask for is
//!   reported as unknown or unsupported, with its position.
//!
//! Errors are collected, never returned at the first: a user fixing a file
//! sees every problem of it in one run. Nothing here panics on any input.
//!
//! The syntax is HCL 2 with one extension: a one-line block may hold several
//! attributes (`restart { attempts = 10  delay = "15s" }`), as drover's
//! documentation writes them; HCL 2 and Nomad allow only one.
//!
//! ```
//! use drover_hcl::{Source, VarInputs};
//!
//! let source = Source::new("app.hcl", "variable \"name\" { default = \"web\" }\napp { name = \"${var.name}\" }\n");
//! let evaluation = drover_hcl::parse(&source).unwrap().evaluate(&VarInputs::default());
//! let mut root = evaluation.root();
//! let mut app = root.block("app").unwrap();
//! assert_eq!(app.string("name").as_deref(), Some("web"));
//! app.finish();
//! root.finish();
//! evaluation.finish().unwrap();
//! ```

pub mod diagnostic;
pub mod expression;
pub mod functions;
mod locals;
mod reader;
pub use drover_types::suggest;
mod syntax;
pub mod variables;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use hcl_edit::structure::Body;

use diagnostic::SourceMap;
pub use diagnostic::{Diagnostic, Diagnostics, Location};
use expression::Evaluator;
/// Evaluated HCL values, as returned by [`BlockReader::value`].
pub use hcl::Value;
pub use reader::BlockReader;
pub use variables::{VarInputs, VariableType};

/// A named text to parse: a file's contents and the name diagnostics use for
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The name shown in diagnostics (usually the path as the user typed it).
    pub name: String,
    /// The contents.
    pub text: String,
}

impl Source {
    /// A source from a name and a text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source { name: name.into(), text: text.into() }
    }

    /// Reads a file; its name in diagnostics is `path` as given. Files over
    /// [`MAX_DEFINITION_BYTES`] are refused (see [`read_definition_file`]).
    pub fn read(path: &Path) -> Result<Source, Diagnostics> {
        let name = path.display().to_string();
        match read_definition_file(path) {
            Ok(text) => Ok(Source { name, text }),
            Err(message) => Err(Diagnostic::without_position(name, message).into()),
        }
    }
}

pub use drover_types::validate::limits::MAX_DEFINITION_BYTES;

/// Reads a definition file (job, site, variable, runbook or configuration
/// file) as UTF-8 text, reading at most [`MAX_DEFINITION_BYTES`]: a larger
/// file, or an endless one such as `/dev/zero`, is refused after that many
/// bytes instead of being read without bound. The error says what to do.
pub fn read_definition_file(path: &Path) -> Result<String, String> {
    use std::io::Read;

    let file = std::fs::File::open(path).map_err(|error| format!("cannot read the file: {error}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_DEFINITION_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read the file: {error}"))?;
    if bytes.len() as u64 > MAX_DEFINITION_BYTES {
        return Err(format!(
            "the file is larger than {} MiB, the limit for a definition file: split it into several files",
            MAX_DEFINITION_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(bytes).map_err(|error| {
        format!(
            "the file is not UTF-8 text (invalid byte at offset {}): save it as UTF-8",
            error.utf8_error().valid_up_to()
        )
    })
}

/// A parsed definition file, not yet evaluated.
#[derive(Debug)]
pub struct Document {
    source: SourceMap,
    body: Body,
}

/// Parses a definition file.
///
/// A syntax error is returned as one diagnostic at the position the parser
/// stopped. Besides HCL 2, several attributes may share the line of a
/// one-line block (`restart { attempts = 10  delay = "15s" }`), as drover's
/// documentation writes them.
pub fn parse(source: &Source) -> Result<Document, Diagnostics> {
    let mut source_map = SourceMap::new(&source.name, &source.text);
    let body = syntax::parse_body(&mut source_map, &source.text)?;
    Ok(Document { source: source_map, body })
}

impl Document {
    /// The name of the source, as shown in diagnostics.
    pub fn name(&self) -> &str {
        self.source.name()
    }

    /// The parsed body, for callers that need the raw syntax tree.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Reads the `variable` blocks, gives them their values from `inputs`,
    /// evaluates the `locals` blocks and returns the evaluation through
    /// which the rest of the file is read. Problems with variables and
    /// locals are collected in the evaluation, and expressions that use a
    /// variable or local without a usable value are skipped without further
    /// messages.
    pub fn evaluate(self, inputs: &VarInputs) -> Evaluation {
        let mut evaluation = Evaluation {
            document: self,
            evaluator: Evaluator::without_variables(),
            variable_values: BTreeMap::new(),
            diagnostics: RefCell::new(Vec::new()),
        };
        let declarations = variables::read_declarations(&evaluation);
        let resolved = variables::resolve(&declarations, inputs, evaluation.document.name(), &evaluation.diagnostics);
        evaluation.evaluator = Evaluator::with_variables(
            resolved.values.iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
            declarations.iter().map(|declaration| declaration.name.clone()).collect(),
            resolved.unusable,
        );
        evaluation.variable_values = resolved.values;
        evaluation.evaluator = locals::evaluate(&evaluation);
        evaluation
    }
}

/// A document whose variables have values: the state shared by every
/// [`BlockReader`] of one file, including the problems found so far.
#[derive(Debug)]
pub struct Evaluation {
    document: Document,
    evaluator: Evaluator,
    variable_values: BTreeMap<String, Value>,
    diagnostics: RefCell<Vec<Diagnostic>>,
}

impl Evaluation {
    /// A reader over the top-level body. `variable` and `locals` blocks are
    /// already read and count as known.
    pub fn root(&self) -> BlockReader<'_> {
        let mut root = BlockReader::root(self);
        root.skip("variable");
        root.skip("locals");
        root
    }

    /// The name of the source, as shown in diagnostics.
    pub fn name(&self) -> &str {
        self.document.name()
    }

    /// The value of every variable that has one.
    pub fn variable_values(&self) -> &BTreeMap<String, Value> {
        &self.variable_values
    }

    /// Records a problem at a position of this file.
    pub fn report(&self, location: Location, message: impl Into<String>) {
        self.diagnostics.borrow_mut().push(Diagnostic::new(self.document.name(), location, message));
    }

    /// Whether a problem was recorded.
    pub fn has_errors(&self) -> bool {
        !self.diagnostics.borrow().is_empty()
    }

    /// Every problem recorded, in reading order, or `Ok` when there is none.
    pub fn finish(self) -> Result<(), Diagnostics> {
        Diagnostics(self.diagnostics.into_inner()).into_result(())
    }

    /// A reader over the top-level body that does not skip `variable`
    /// blocks, for reading them.
    pub(crate) fn root_for_variables(&self) -> BlockReader<'_> {
        BlockReader::root(self)
    }

    pub(crate) fn source(&self) -> &SourceMap {
        &self.document.source
    }

    pub(crate) fn body(&self) -> &Body {
        &self.document.body
    }

    pub(crate) fn extend_diagnostics(&self, found: Vec<Diagnostic>) {
        self.diagnostics.borrow_mut().extend(found);
    }

    pub(crate) fn evaluate_expression(&self, expression: &hcl_edit::expr::Expression) -> Option<Value> {
        let mut found = Vec::new();
        let value = self.evaluator.evaluate(expression, &self.document.source, &mut found);
        self.diagnostics.borrow_mut().extend(found);
        value
    }
}
