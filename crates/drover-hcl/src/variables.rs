//! `variable` blocks and their values, with Nomad's semantics.
//!
//! A file declares `variable "name" { type = …, default = …, description =
//! … }`. A variable's value comes from, lowest precedence first:
//!
//! 1. its `default`;
//! 2. the environment variable `DROVER_VAR_<name>`;
//! 3. `-var-file` files (HCL `name = value` lines), in command-line order;
//! 4. `-var name=value` arguments, in command-line order.
//!
//! The last one given wins. Text values (environment and `-var`) are
//! converted to the declared type; for `list(…)` and `map(…)` types they
//! are read as HCL expressions (`-var 'racks=["r1","r2"]'`). A `-var` or
//! var-file entry for an undeclared variable is an error (an environment
//! variable is not: the environment is shared by many files), and so is a
//! variable that ends up with no value at all.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::Structure;

use crate::diagnostic::{Diagnostic, Location, SourceMap};
use crate::expression::{Evaluator, describe_value, value_as_bool, value_as_text};
use crate::suggest::did_you_mean;
use crate::{Evaluation, Source};

/// The prefix of environment variables that set file variables.
pub const ENVIRONMENT_PREFIX: &str = "DROVER_VAR_";

/// The pseudo-file name of diagnostics about `-var` arguments.
pub const COMMAND_LINE: &str = "command line";

/// The pseudo-file name of diagnostics about `DROVER_VAR_*` variables.
pub const ENVIRONMENT: &str = "environment";

/// Values for a file's variables from outside the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VarInputs {
    /// `-var name=value` arguments in command-line order; a later one wins.
    pub cli: Vec<(String, String)>,
    /// `-var-file` contents in command-line order; a later one wins.
    pub files: Vec<Source>,
    /// Environment variables; only `DROVER_VAR_<name>` ones are used.
    pub env: BTreeMap<String, String>,
}

impl VarInputs {
    /// The `DROVER_VAR_*` variables of this process's environment (others
    /// are left out so that they never reach diagnostics).
    pub fn process_environment() -> BTreeMap<String, String> {
        std::env::vars().filter(|(name, _)| name.starts_with(ENVIRONMENT_PREFIX)).collect()
    }

    /// Splits a `-var` argument `name=value` at its first `=`.
    pub fn parse_cli_var(argument: &str) -> Result<(String, String), String> {
        match argument.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
            _ => Err(format!("-var {argument:?} must be written name=value, e.g. -var version=1.2.3")),
        }
    }
}

/// The type constraint of a variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VariableType {
    /// Any value; text from the command line stays a string.
    Any,
    /// A string (numbers and bools are converted).
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// A list whose elements have the inner type.
    List(Box<VariableType>),
    /// A map from strings to values of the inner type.
    Map(Box<VariableType>),
    /// `object({ name = type, … })`: a map; the types of its attributes are
    /// not checked (drover reads the type for Nomad's files, and a wrong
    /// attribute fails where the value is used).
    Object,
}

impl fmt::Display for VariableType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VariableType::Any => formatter.write_str("any"),
            VariableType::String => formatter.write_str("string"),
            VariableType::Number => formatter.write_str("number"),
            VariableType::Bool => formatter.write_str("bool"),
            VariableType::List(inner) => write!(formatter, "list({inner})"),
            VariableType::Map(inner) => write!(formatter, "map({inner})"),
            VariableType::Object => formatter.write_str("object"),
        }
    }
}

impl VariableType {
    /// Reads a type expression: `string`, `number`, `bool`, `any`,
    /// `list(T)`, `map(T)`, `object({ … })` (and the legacy bare `list` and
    /// `map`).
    pub fn from_expression(expression: &Expression) -> Result<VariableType, String> {
        match expression {
            Expression::Variable(identifier) => Self::from_keyword(identifier.as_str()),
            Expression::String(text) => Self::from_keyword(text.value()),
            Expression::FuncCall(call) => {
                let name = call.name.name.as_str();
                let arguments: Vec<&Expression> = call.args.iter().collect();
                let constructor: fn(Box<VariableType>) -> VariableType = match name {
                    "list" => VariableType::List,
                    "map" => VariableType::Map,
                    "object" => return Ok(VariableType::Object),
                    "set" | "tuple" => return Err(unsupported_type(name)),
                    other => return Err(unknown_type(other)),
                };
                match arguments.as_slice() {
                    [inner] => Ok(constructor(Box::new(Self::from_expression(inner)?))),
                    _ => Err(format!("type {name}(…) takes one element type, e.g. {name}(string)")),
                }
            }
            _ => Err("a type must be string, number, bool, any, list(<type>) or map(<type>)".to_owned()),
        }
    }

    fn from_keyword(keyword: &str) -> Result<VariableType, String> {
        match keyword {
            "string" => Ok(VariableType::String),
            "number" => Ok(VariableType::Number),
            "bool" => Ok(VariableType::Bool),
            "any" => Ok(VariableType::Any),
            "list" => Ok(VariableType::List(Box::new(VariableType::Any))),
            "map" => Ok(VariableType::Map(Box::new(VariableType::Any))),
            "set" | "object" | "tuple" => Err(unsupported_type(keyword)),
            other => Err(unknown_type(other)),
        }
    }

    /// Converts a value to this type the way HCL does (numbers and bools to
    /// strings, numeric strings to numbers, `"true"`/`"false"` to bools).
    /// The error says what was expected and what was found.
    pub fn convert(&self, value: Value) -> Result<Value, String> {
        let mismatch = |found: &Value| format!("expects type {self}, not {}", describe_value(found));
        match self {
            VariableType::Any => Ok(value),
            _ if value == Value::Null => Ok(value),
            VariableType::String => value_as_text(&value).map(Value::String).ok_or_else(|| mismatch(&value)),
            VariableType::Number => match &value {
                Value::Number(_) => Ok(value),
                Value::String(text) => parse_number(text).ok_or_else(|| mismatch(&value)),
                _ => Err(mismatch(&value)),
            },
            VariableType::Bool => value_as_bool(&value).map(Value::Bool).ok_or_else(|| mismatch(&value)),
            VariableType::List(inner) => match value {
                Value::Array(elements) => elements
                    .into_iter()
                    .enumerate()
                    .map(|(index, element)| {
                        inner.convert(element).map_err(|error| format!("expects type {self}: element {index} {error}"))
                    })
                    .collect::<Result<Vec<Value>, String>>()
                    .map(Value::Array),
                other => Err(mismatch(&other)),
            },
            VariableType::Object => match value {
                Value::Object(_) => Ok(value),
                other => Err(mismatch(&other)),
            },
            VariableType::Map(inner) => match value {
                Value::Object(entries) => entries
                    .into_iter()
                    .map(|(key, entry)| {
                        inner
                            .convert(entry)
                            .map(|converted| (key.clone(), converted))
                            .map_err(|error| format!("expects type {self}: \"{key}\" {error}"))
                    })
                    .collect::<Result<hcl::Map<String, Value>, String>>()
                    .map(Value::Object),
                other => Err(mismatch(&other)),
            },
        }
    }

    /// Converts text from the command line or the environment: kept as a
    /// string for `string` and `any`, parsed for numbers and bools, read as
    /// an HCL expression for lists and maps.
    pub fn convert_text(&self, text: &str) -> Result<Value, String> {
        match self {
            VariableType::Any | VariableType::String => Ok(Value::String(text.to_owned())),
            VariableType::Number | VariableType::Bool => self.convert(Value::String(text.to_owned())),
            VariableType::List(_) | VariableType::Map(_) | VariableType::Object => {
                let expression = hcl_edit::parser::parse_expr(text).map_err(|error| {
                    format!("expects type {self}, but {text:?} is not an HCL value: {}", error.message())
                })?;
                let source = SourceMap::new("", text);
                let mut problems = Vec::new();
                match Evaluator::without_variables().evaluate(&expression, &source, &mut problems) {
                    Some(value) => self.convert(value),
                    None => Err(format!(
                        "expects type {self}, but {text:?} cannot be evaluated: {}",
                        problems.first().map_or("unknown error", |problem| problem.message.as_str())
                    )),
                }
            }
        }
    }
}

fn parse_number(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(integer) = trimmed.parse::<i64>() {
        return Some(Value::from(integer));
    }
    let float = trimmed.parse::<f64>().ok().filter(|float| float.is_finite())?;
    hcl::Number::from_f64(float).map(Value::Number)
}

fn unsupported_type(name: &str) -> String {
    format!(
        "type {name} is not supported by drover: use string, number, bool, any, list(<type>), map(<type>) or object({{ … }})"
    )
}

fn unknown_type(name: &str) -> String {
    format!(
        "unknown type \"{name}\": use string, number, bool, any, list(<type>) or map(<type>){}",
        did_you_mean(name, ["string", "number", "bool", "any", "list", "map"])
    )
}

/// One `variable` block.
#[derive(Clone, Debug)]
pub(crate) struct Declaration {
    pub(crate) name: String,
    variable_type: VariableType,
    default: Option<Value>,
    location: Location,
    /// The declaration itself has a problem (already reported).
    broken: bool,
}

/// Reads every `variable` block of the file, reporting problems in them.
pub(crate) fn read_declarations(evaluation: &Evaluation) -> Vec<Declaration> {
    let mut root = evaluation.root_for_variables();
    let mut declarations: Vec<Declaration> = Vec::new();
    for mut block in root.labeled_blocks("variable") {
        let name = block.label().to_owned();
        let mut broken = false;
        if !is_identifier(&name) {
            block.report(
                block.label_location(),
                format!("variable name {name:?} must start with a letter and contain only letters, digits, _ and -"),
            );
            broken = true;
        }
        if let Some(first) = declarations.iter().find(|declaration| declaration.name == name) {
            block.report(
                block.label_location(),
                format!("variable \"{name}\" is declared twice (first at line {})", first.location.line),
            );
            continue;
        }
        let variable_type = match block.expression("type") {
            None => VariableType::Any,
            Some(expression) => match VariableType::from_expression(expression) {
                Ok(variable_type) => variable_type,
                Err(message) => {
                    block.attribute_error("type", format!("variable \"{name}\": {message}"));
                    broken = true;
                    VariableType::Any
                }
            },
        };
        let had_default = block.has("default");
        let default = match block.value("default") {
            None => {
                // A default that failed to evaluate was reported; `null`
                // means "no default".
                broken |= had_default && evaluation_failed_default(&mut block);
                None
            }
            Some(value) => match variable_type.convert(value) {
                Ok(converted) => Some(converted),
                Err(error) => {
                    block.attribute_error("default", format!("the default of variable \"{name}\" {error}"));
                    broken = true;
                    None
                }
            },
        };
        let _description = block.string("description");
        block.unsupported("validation", "check the value where it is used instead");
        block.unsupported("sensitive", "");
        block.unsupported("nullable", "");
        let location = block.label_location();
        block.finish();
        declarations.push(Declaration { name, variable_type, default, location, broken });
    }
    declarations
}

/// Whether the `default` of a block did not evaluate (as opposed to being
/// `null`): re-reading the raw expression tells the two apart.
fn evaluation_failed_default(block: &mut crate::BlockReader<'_>) -> bool {
    !matches!(block.expression("default"), Some(Expression::Null(_)))
}

fn is_identifier(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '-')
}

/// The outcome of giving values to the declared variables.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Every variable with a usable value.
    pub(crate) values: BTreeMap<String, Value>,
    /// Declared variables without a usable value (their problems were
    /// reported).
    pub(crate) unusable: BTreeSet<String>,
}

/// Gives every declared variable its value from `inputs`, reporting
/// problems into `diagnostics`.
pub(crate) fn resolve(
    declarations: &[Declaration],
    inputs: &VarInputs,
    document_name: &str,
    diagnostics: &RefCell<Vec<Diagnostic>>,
) -> Resolved {
    let mut candidates: BTreeMap<&str, Option<Value>> =
        declarations.iter().map(|declaration| (declaration.name.as_str(), declaration.default.clone())).collect();
    let mut unusable: BTreeSet<String> = declarations
        .iter()
        .filter(|declaration| declaration.broken)
        .map(|declaration| declaration.name.clone())
        .collect();
    let find = |name: &str| declarations.iter().find(|declaration| declaration.name == name);
    let declared_names = || declarations.iter().map(|declaration| declaration.name.as_str());
    let report = |diagnostic: Diagnostic| diagnostics.borrow_mut().push(diagnostic);

    for declaration in declarations {
        let key = format!("{ENVIRONMENT_PREFIX}{}", declaration.name);
        let Some(text) = inputs.env.get(&key) else {
            continue;
        };
        match declaration.variable_type.convert_text(text) {
            Ok(value) => {
                candidates.insert(&declaration.name, Some(value));
            }
            Err(error) => {
                report(Diagnostic::without_position(
                    ENVIRONMENT,
                    format!("{key}: variable \"{}\" {error}", declaration.name),
                ));
                unusable.insert(declaration.name.clone());
            }
        }
    }

    for file in &inputs.files {
        let mut source = SourceMap::new(&file.name, &file.text);
        let body = match crate::syntax::parse_body(&mut source, &file.text) {
            Ok(body) => body,
            Err(problems) => {
                diagnostics.borrow_mut().extend(problems);
                continue;
            }
        };
        for structure in body.iter() {
            let attribute = match structure {
                Structure::Attribute(attribute) => attribute,
                Structure::Block(block) => {
                    report(source.diagnostic(
                        block.ident.span(),
                        format!(
                            "a var file holds only name = value lines, not blocks like \"{}\"",
                            block.ident.as_str()
                        ),
                    ));
                    continue;
                }
            };
            let name = attribute.key.as_str();
            let Some(declaration) = find(name) else {
                report(source.diagnostic(
                    attribute.key.span(),
                    format!(
                        "variable \"{name}\" is not declared in {document_name}{}",
                        did_you_mean(name, declared_names())
                    ),
                ));
                continue;
            };
            let mut problems = Vec::new();
            let Some(value) = Evaluator::without_variables().evaluate(&attribute.value, &source, &mut problems) else {
                diagnostics.borrow_mut().extend(problems);
                unusable.insert(declaration.name.clone());
                continue;
            };
            match declaration.variable_type.convert(value) {
                Ok(converted) => {
                    candidates.insert(&declaration.name, Some(converted));
                }
                Err(error) => {
                    report(source.diagnostic(attribute.value.span(), format!("variable \"{name}\" {error}")));
                    unusable.insert(declaration.name.clone());
                }
            }
        }
    }

    for (name, text) in &inputs.cli {
        let Some(declaration) = find(name) else {
            report(Diagnostic::without_position(
                COMMAND_LINE,
                format!(
                    "-var {name}=…: variable \"{name}\" is not declared in {document_name}{}",
                    did_you_mean(name, declared_names())
                ),
            ));
            continue;
        };
        match declaration.variable_type.convert_text(text) {
            Ok(value) => {
                candidates.insert(&declaration.name, Some(value));
            }
            Err(error) => {
                report(Diagnostic::without_position(
                    COMMAND_LINE,
                    format!("-var {name}=…: variable \"{name}\" {error}"),
                ));
                unusable.insert(declaration.name.clone());
            }
        }
    }

    let mut values = BTreeMap::new();
    for declaration in declarations {
        if unusable.contains(&declaration.name) {
            continue;
        }
        match candidates.remove(declaration.name.as_str()).flatten() {
            Some(value) if value != Value::Null => {
                values.insert(declaration.name.clone(), value);
            }
            _ => {
                let name = &declaration.name;
                report(Diagnostic::new(
                    document_name,
                    declaration.location,
                    format!(
                        "variable \"{name}\" has no value: give it a default, or set it with -var {name}=<value>, a -var-file, or the environment variable {ENVIRONMENT_PREFIX}{name}"
                    ),
                ));
                unusable.insert(name.clone());
            }
        }
    }
    Resolved { values, unusable }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(text: &str) -> Result<VariableType, String> {
        VariableType::from_expression(&hcl_edit::parser::parse_expr(text).unwrap())
    }

    #[test]
    fn types_parse_and_print() {
        assert_eq!(type_of("string"), Ok(VariableType::String));
        assert_eq!(type_of("list(number)").map(|found| found.to_string()), Ok("list(number)".to_owned()));
        assert_eq!(type_of("map(list(bool))").map(|found| found.to_string()), Ok("map(list(bool))".to_owned()));
        assert!(type_of("set(string)").unwrap_err().contains("not supported by drover"));
        assert_eq!(
            type_of("list(object({ name = string, port = number }))").map(|found| found.to_string()),
            Ok("list(object)".to_owned())
        );
        assert_eq!(
            VariableType::Object.convert(Value::from("x")),
            Err("expects type object, not the string \"x\"".to_owned())
        );
        assert!(type_of("strng").unwrap_err().contains("did you mean \"string\"?"));
    }

    #[test]
    fn text_converts_to_the_declared_type() {
        assert_eq!(VariableType::Number.convert_text("3"), Ok(Value::from(3)));
        assert_eq!(VariableType::Number.convert_text("2.5"), Ok(Value::from(2.5)));
        assert_eq!(VariableType::Bool.convert_text("true"), Ok(Value::from(true)));
        assert_eq!(VariableType::Any.convert_text("3"), Ok(Value::from("3")));
        assert_eq!(
            VariableType::List(Box::new(VariableType::String)).convert_text(r#"["a", 1]"#),
            Ok(Value::Array(vec![Value::from("a"), Value::from("1")]))
        );
        assert_eq!(
            VariableType::Number.convert_text("three"),
            Err("expects type number, not the string \"three\"".to_owned())
        );
        assert!(
            VariableType::Map(Box::new(VariableType::Number))
                .convert_text("{a = \"x\"}")
                .unwrap_err()
                .contains("\"a\"")
        );
    }

    #[test]
    fn cli_arguments_split_at_the_first_equals_sign() {
        assert_eq!(VarInputs::parse_cli_var("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert_eq!(VarInputs::parse_cli_var("a="), Ok(("a".to_owned(), String::new())));
        assert!(VarInputs::parse_cli_var("novalue").is_err());
        assert!(VarInputs::parse_cli_var("=x").is_err());
    }
}
