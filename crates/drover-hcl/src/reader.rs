//! [`BlockReader`]: a schema's typed view of one HCL body.
//!
//! A schema asks a reader for the attributes and blocks it knows, by name
//! and type. The reader evaluates each expression, converts the value, and
//! remembers what was asked for. At [`BlockReader::finish`] everything in
//! the body that nobody asked for is reported at its position: as "not
//! supported by drover" when the schema registered the name with
//! [`BlockReader::unsupported`], else as unknown with the nearest known name
//! as a suggestion. A reader never stops at a problem: it records it in the
//! [`Evaluation`] and answers `None`, so the schema reads on and every
//! problem of a file is reported in one run.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

use drover_types::DurationSpec;
use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body, Structure};

use crate::Evaluation;
use crate::diagnostic::Location;
use crate::expression::{describe_value, value_as_bool, value_as_integer, value_as_text};
use crate::suggest::did_you_mean;

/// A typed, consumption-tracking view of one block's body (or of the
/// top-level body of a file).
#[derive(Debug)]
pub struct BlockReader<'evaluation> {
    evaluation: &'evaluation Evaluation,
    body: &'evaluation Body,
    /// `task "web"`, `restart block of group "cache"`, `the file`.
    description: String,
    /// The nearest labelled block around this one (or this one), used to
    /// describe unlabelled children.
    owner: String,
    location: Location,
    labels: Vec<(String, Location)>,
    consumed: Vec<bool>,
    /// Every name the schema asked for (or asked about): the candidates of
    /// "did you mean" suggestions.
    known_names: RefCell<Vec<String>>,
    unsupported_names: Vec<(String, String)>,
}

impl<'evaluation> BlockReader<'evaluation> {
    pub(crate) fn root(evaluation: &'evaluation Evaluation) -> BlockReader<'evaluation> {
        let body = evaluation.body();
        BlockReader {
            evaluation,
            body,
            description: "the file".to_owned(),
            owner: "the file".to_owned(),
            location: Location::START,
            labels: Vec::new(),
            consumed: vec![false; body.len()],
            known_names: RefCell::new(Vec::new()),
            unsupported_names: Vec::new(),
        }
    }

    fn child(&self, block: &'evaluation Block) -> BlockReader<'evaluation> {
        let source = self.evaluation.source();
        let identifier = block.ident.as_str();
        let labels: Vec<(String, Location)> = block
            .labels
            .iter()
            .map(|label| (label.as_str().to_owned(), source.span_location(label.span().or_else(|| block.span()))))
            .collect();
        let description = match labels.first() {
            Some((label, _)) => format!("{identifier} \"{label}\""),
            None => format!("{identifier} block of {}", self.owner),
        };
        let owner = if labels.is_empty() { self.owner.clone() } else { description.clone() };
        BlockReader {
            evaluation: self.evaluation,
            body: &block.body,
            description,
            owner,
            location: source.span_location(block.ident.span().or_else(|| block.span())),
            labels,
            consumed: vec![false; block.body.len()],
            known_names: RefCell::new(Vec::new()),
            unsupported_names: Vec::new(),
        }
    }

    // ----- where and what -----

    /// How messages name this block: `task "web"`, `restart block of group
    /// "cache"`, `the file`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Where the block starts (its identifier).
    pub fn location(&self) -> Location {
        self.location
    }

    /// The block's first label (`web` in `task "web" { … }`), or `""`.
    pub fn label(&self) -> &str {
        self.labels.first().map_or("", |(label, _)| label.as_str())
    }

    /// Where the first label is (the block's start when it has none).
    pub fn label_location(&self) -> Location {
        self.labels.first().map_or(self.location, |(_, location)| *location)
    }

    /// Every label of the block.
    pub fn labels(&self) -> Vec<&str> {
        self.labels.iter().map(|(label, _)| label.as_str()).collect()
    }

    /// Whether the body has an attribute or a block called `name` (without
    /// reading it; the name counts as known for suggestions).
    pub fn has(&self, name: &str) -> bool {
        self.remember(name);
        self.body.iter().any(|structure| structure_name(structure) == name)
    }

    /// Where the value of attribute `name` starts (or the block called
    /// `name`, or this block when there is neither).
    pub fn attribute_location(&self, name: &str) -> Location {
        let span =
            self.body.iter().find(|structure| structure_name(structure) == name).and_then(
                |structure| match structure {
                    Structure::Attribute(attribute) => attribute.value.span().or_else(|| attribute.span()),
                    Structure::Block(block) => block.ident.span().or_else(|| block.span()),
                },
            );
        span.map_or(self.location, |range| self.evaluation.source().location(range.start))
    }

    /// Whether any problem was recorded in this file so far.
    pub fn has_errors(&self) -> bool {
        self.evaluation.has_errors()
    }

    /// Records a problem at `location`.
    pub fn report(&self, location: Location, message: impl Into<String>) {
        self.evaluation.report(location, message);
    }

    /// Records a problem about the whole block, at its start.
    pub fn error(&self, message: impl Into<String>) {
        self.evaluation.report(self.location, message);
    }

    /// Records a problem about attribute `name`, at its value.
    pub fn attribute_error(&self, name: &str, message: impl Into<String>) {
        self.evaluation.report(self.attribute_location(name), message);
    }

    /// `"count" in group "web"`: how messages name an attribute of this
    /// block.
    pub fn phrase(&self, name: &str) -> String {
        format!("\"{name}\" in {}", self.description)
    }

    // ----- schema declarations -----

    /// Declares `name` as known but not supported: if present, it is
    /// reported as "not supported by drover", followed by `hint` when that is
    /// not empty.
    pub fn unsupported(&mut self, name: &str, hint: &str) {
        self.unsupported_names.push((name.to_owned(), hint.to_owned()));
    }

    /// Marks every attribute and block called `name` as read without reading
    /// it (for parts handled elsewhere, such as `variable` blocks).
    pub fn skip(&mut self, name: &str) {
        self.remember(name);
        for (index, structure) in self.body.iter().enumerate() {
            if structure_name(structure) == name {
                self.mark(index);
            }
        }
    }

    /// Reports everything nobody asked for.
    pub fn finish(self) {
        let source = self.evaluation.source();
        for (index, structure) in self.body.iter().enumerate() {
            if self.consumed.get(index).copied().unwrap_or(true) {
                continue;
            }
            let (kind, name, span) = match structure {
                Structure::Attribute(attribute) => {
                    ("attribute", attribute.key.as_str(), attribute.key.span().or_else(|| attribute.span()))
                }
                Structure::Block(block) => ("block", block.ident.as_str(), block.ident.span().or_else(|| block.span())),
            };
            let location = source.span_location(span);
            let unsupported = self.unsupported_names.iter().find(|(unsupported_name, _)| unsupported_name == name);
            let message = match unsupported {
                Some((_, hint)) if hint.is_empty() => {
                    format!("{kind} \"{name}\" in {} is not supported by drover", self.description)
                }
                Some((_, hint)) => {
                    format!("{kind} \"{name}\" in {} is not supported by drover: {hint}", self.description)
                }
                None => format!(
                    "unknown {kind} \"{name}\" in {}{}",
                    self.description,
                    did_you_mean(name, self.known_names.borrow().iter().map(String::as_str))
                ),
            };
            self.evaluation.report(location, message);
        }
    }

    // ----- attributes -----

    /// The expression of attribute `name`, unevaluated (for attributes that
    /// are syntax rather than values, such as a variable's `type`).
    pub fn expression(&mut self, name: &str) -> Option<&'evaluation Expression> {
        self.find_attribute(name).map(|attribute| &attribute.value)
    }

    /// The evaluated value of attribute `name`; `None` when it is absent,
    /// `null`, or could not be evaluated (that problem is recorded).
    pub fn value(&mut self, name: &str) -> Option<Value> {
        let attribute = self.find_attribute(name)?;
        match self.evaluation.evaluate_expression(&attribute.value) {
            Some(Value::Null) | None => None,
            Some(value) => Some(value),
        }
    }

    /// Attribute `name` as a string (numbers and bools are converted, as HCL
    /// does).
    pub fn string(&mut self, name: &str) -> Option<String> {
        let value = self.value(name)?;
        let text = value_as_text(&value);
        if text.is_none() {
            self.attribute_error(
                name,
                format!("{} must be a string, not {}", self.phrase(name), describe_value(&value)),
            );
        }
        text
    }

    /// Attribute `name` as a whole number in `minimum..=maximum`.
    pub fn integer(&mut self, name: &str, minimum: i128, maximum: i128) -> Option<i128> {
        let value = self.value(name)?;
        let Some(integer) = value_as_integer(&value) else {
            self.attribute_error(
                name,
                format!("{} must be a whole number, not {}", self.phrase(name), describe_value(&value)),
            );
            return None;
        };
        if integer < minimum || integer > maximum {
            self.attribute_error(
                name,
                format!("{} must be between {minimum} and {maximum}, not {integer}", self.phrase(name)),
            );
            return None;
        }
        Some(integer)
    }

    /// Attribute `name` as an unsigned 32-bit number.
    pub fn u32(&mut self, name: &str) -> Option<u32> {
        self.integer(name, 0, i128::from(u32::MAX)).and_then(|integer| u32::try_from(integer).ok())
    }

    /// Attribute `name` as an unsigned 64-bit number.
    pub fn u64(&mut self, name: &str) -> Option<u64> {
        self.integer(name, 0, i128::from(u64::MAX)).and_then(|integer| u64::try_from(integer).ok())
    }

    /// Attribute `name` as a bool (`true`, `false`, or those words as
    /// strings).
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        let value = self.value(name)?;
        let flag = value_as_bool(&value);
        if flag.is_none() {
            self.attribute_error(
                name,
                format!("{} must be true or false, not {}", self.phrase(name), describe_value(&value)),
            );
        }
        flag
    }

    /// Attribute `name` as a duration string such as `"30s"` or `"1h30m"`.
    pub fn duration(&mut self, name: &str) -> Option<DurationSpec> {
        let value = self.value(name)?;
        let Value::String(text) = &value else {
            self.attribute_error(
                name,
                format!(
                    "{} must be a duration string such as \"30s\" or \"5m\", not {}",
                    self.phrase(name),
                    describe_value(&value)
                ),
            );
            return None;
        };
        match text.parse::<DurationSpec>() {
            Ok(duration) => Some(duration),
            Err(error) => {
                self.attribute_error(name, format!("{} has an {error}", self.phrase(name)));
                None
            }
        }
    }

    /// Attribute `name` as a list of strings (numbers and bools in it are
    /// converted).
    pub fn string_list(&mut self, name: &str) -> Option<Vec<String>> {
        let value = self.value(name)?;
        let Value::Array(elements) = &value else {
            self.attribute_error(
                name,
                format!(
                    "{} must be a list of strings such as [\"a\", \"b\"], not {}",
                    self.phrase(name),
                    describe_value(&value)
                ),
            );
            return None;
        };
        let mut strings = Vec::with_capacity(elements.len());
        for (index, element) in elements.iter().enumerate() {
            match value_as_text(element) {
                Some(text) => strings.push(text),
                None => {
                    self.attribute_error(
                        name,
                        format!(
                            "{} must be a list of strings, but element {index} is {}",
                            self.phrase(name),
                            describe_value(element)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(strings)
    }

    /// `name = { key = "value" }` or `name { key = "value" }` as a map of
    /// strings (numbers and bools in it are converted).
    pub fn string_map(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        self.remember(name);
        let mut result: Option<BTreeMap<String, String>> = None;
        for index in self.indexes_named(name) {
            self.mark(index);
            let found_entries = match self.body.get(index) {
                Some(Structure::Attribute(attribute)) => self.string_map_from_attribute(name, attribute),
                Some(Structure::Block(block)) => self.string_map_from_block(block),
                None => None,
            };
            if let Some(entries) = found_entries {
                result.get_or_insert_with(BTreeMap::new).extend(entries);
            }
        }
        result
    }

    fn string_map_from_attribute(&self, name: &str, attribute: &Attribute) -> Option<BTreeMap<String, String>> {
        let value = match self.evaluation.evaluate_expression(&attribute.value)? {
            Value::Null => return None,
            value => value,
        };
        let Value::Object(entries) = &value else {
            self.attribute_error(
                name,
                format!(
                    "{} must be a map such as {{ key = \"value\" }}, not {}",
                    self.phrase(name),
                    describe_value(&value)
                ),
            );
            return None;
        };
        let mut map = BTreeMap::new();
        for (key, entry) in entries {
            match value_as_text(entry) {
                Some(text) => {
                    map.insert(key.clone(), text);
                }
                None => self.attribute_error(
                    name,
                    format!("{} must map to strings, but \"{key}\" is {}", self.phrase(name), describe_value(entry)),
                ),
            }
        }
        Some(map)
    }

    fn string_map_from_block(&self, block: &'evaluation Block) -> Option<BTreeMap<String, String>> {
        let source = self.evaluation.source();
        let child = self.child(block);
        if let Some((_, location)) = child.labels.first() {
            self.report(*location, format!("{} takes no label", child.description));
        }
        let mut map = BTreeMap::new();
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    let key = attribute.key.as_str();
                    let Some(value) = self.evaluation.evaluate_expression(&attribute.value) else {
                        continue;
                    };
                    match value_as_text(&value) {
                        Some(text) => {
                            map.insert(key.to_owned(), text);
                        }
                        None => self.report(
                            source.span_location(attribute.value.span()),
                            format!("{} must be a string, not {}", child.phrase(key), describe_value(&value)),
                        ),
                    }
                }
                Structure::Block(inner) => self.report(
                    source.span_location(inner.ident.span()),
                    format!("{} holds only key = \"value\" lines, not blocks", child.description),
                ),
            }
        }
        Some(map)
    }

    // ----- blocks -----

    /// The one unlabelled block called `name`, if present. A second one is
    /// reported.
    pub fn block(&mut self, name: &str) -> Option<BlockReader<'evaluation>> {
        let mut blocks = self.blocks(name).into_iter();
        let first = blocks.next()?;
        for duplicate in blocks {
            duplicate.error(format!(
                "only one \"{name}\" block is allowed in {} (the first is at line {})",
                self.description, first.location.line
            ));
        }
        Some(first)
    }

    /// Every unlabelled block called `name`, in file order.
    pub fn blocks(&mut self, name: &str) -> Vec<BlockReader<'evaluation>> {
        self.find_blocks(name)
            .into_iter()
            .map(|block| {
                let child = self.child(block);
                if let Some((_, location)) = child.labels.first() {
                    self.report(*location, format!("\"{name}\" block in {} takes no label", self.description));
                }
                child
            })
            .collect()
    }

    /// Every block called `name` with exactly one label, in file order
    /// (blocks with another number of labels are reported and left out).
    pub fn labeled_blocks(&mut self, name: &str) -> Vec<BlockReader<'evaluation>> {
        self.find_blocks(name)
            .into_iter()
            .filter_map(|block| {
                let child = self.child(block);
                if child.labels.len() == 1 {
                    return Some(child);
                }
                child.error(format!(
                    "\"{name}\" block in {} needs exactly one label: {name} \"<name>\" {{ … }}",
                    self.description
                ));
                None
            })
            .collect()
    }

    // ----- internals -----

    fn remember(&self, name: &str) {
        let mut known_names = self.known_names.borrow_mut();
        if !known_names.iter().any(|known| known == name) {
            known_names.push(name.to_owned());
        }
    }

    fn mark(&mut self, index: usize) {
        if let Some(consumed) = self.consumed.get_mut(index) {
            *consumed = true;
        }
    }

    fn indexes_named(&self, name: &str) -> Vec<usize> {
        self.body
            .iter()
            .enumerate()
            .filter(|(_, structure)| structure_name(structure) == name)
            .map(|(index, _)| index)
            .collect()
    }

    fn find_attribute(&mut self, name: &str) -> Option<&'evaluation Attribute> {
        self.remember(name);
        let body = self.body;
        let mut found = None;
        for index in self.indexes_named(name) {
            self.mark(index);
            match body.get(index) {
                Some(Structure::Attribute(attribute)) => found = found.or(Some(attribute)),
                Some(Structure::Block(block)) => self.report_wrong_kind(
                    block.ident.span(),
                    format!("{} must be an attribute, written {name} = …, not a block", self.phrase(name)),
                ),
                None => {}
            }
        }
        found
    }

    fn find_blocks(&mut self, name: &str) -> Vec<&'evaluation Block> {
        self.remember(name);
        let body = self.body;
        let mut found = Vec::new();
        for index in self.indexes_named(name) {
            self.mark(index);
            match body.get(index) {
                Some(Structure::Block(block)) => found.push(block),
                Some(Structure::Attribute(attribute)) => self.report_wrong_kind(
                    attribute.key.span(),
                    format!("{} must be a block, written {name} {{ … }}, not an attribute", self.phrase(name)),
                ),
                None => {}
            }
        }
        found
    }

    fn report_wrong_kind(&self, span: Option<Range<usize>>, message: String) {
        let location = span.map_or(self.location, |range| self.evaluation.source().location(range.start));
        self.evaluation.report(location, message);
    }
}

fn structure_name(structure: &Structure) -> &str {
    match structure {
        Structure::Attribute(attribute) => attribute.key.as_str(),
        Structure::Block(block) => block.ident.as_str(),
    }
}
