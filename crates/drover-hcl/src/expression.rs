//! Evaluating attribute expressions, with runtime references kept as text.
//!
//! A job file mixes two kinds of `${…}`: references to job variables
//! (`${var.version}`), which are known when the file is read and are
//! evaluated here by `hcl::eval`, and runtime references (`${node.unique.name}`,
//! `${attr.kernel.name}`, `${meta.rack}`, `${env.HOME}`, `${NOMAD_ALLOC_ID}`),
//! which only the scheduler or the agent can resolve. Before an expression is
//! handed to `hcl::eval`, every interpolation that is exactly a runtime
//! reference is rewritten into literal text, so
//! `"/opt/${var.version}/bin/${node.unique.name}"` evaluates to
//! `/opt/3.2.1/bin/${node.unique.name}`.
//!
//! A plain interpolation of a name the file does not know, such as
//! `${SLEEP_SECS}` or `${VAULT_TOKEN}` in a heredoc script, stays literal
//! text too, as Nomad's HCL2 reader keeps it (its evaluation context turns
//! every unknown variable into the text `${name}`): the agent leaves such a
//! reference alone when it interpolates the task's values, so the shell or
//! the program expands it. Two exceptions keep typos visible: a name one
//! edit away from a known root (`${vra.x}`, `${nod.name}`) is refused with
//! "did you mean", unless it is written like an environment variable
//! (capitals, digits and `_` only), and an unknown name outside a plain
//! `${…}` interpolation (`count = foo`, `"${foo + 1}"`) is refused as before.
//!
//! The same walk checks every name the expression uses, so that unknown
//! names, undeclared variables and locals and unsupported functions are
//! reported at their own position rather than as an evaluation failure of
//! the whole attribute.

use std::collections::BTreeSet;
use std::ops::Range;

use hcl::Value;
use hcl::eval::Evaluate;
use hcl_edit::expr::{Expression, ForExpr, Traversal, TraversalOperator};
use hcl_edit::template::{Element, ForDirective};
use hcl_edit::visit_mut::{self, VisitMut};
use hcl_edit::{Decorated, Span};

use crate::diagnostic::{Diagnostic, SourceMap};
use crate::functions;
use crate::suggest::{did_you_mean, nearest};

/// The roots of runtime references: resolved on a node, never while reading
/// the file.
pub const RUNTIME_ROOTS: [&str; 4] = ["node", "attr", "meta", "env"];

/// Prefixes of runtime variables such as `NOMAD_ALLOC_ID` or
/// `DROVER_TASK_NAME`.
pub const RUNTIME_VARIABLE_PREFIXES: [&str; 2] = ["NOMAD_", "DROVER_"];

/// Every root name an expression may start with: variables, locals and the
/// runtime roots.
pub const KNOWN_ROOTS: [&str; 6] = ["var", "local", "node", "attr", "meta", "env"];

/// Whether a root name starts a runtime reference.
pub fn is_runtime_root(name: &str) -> bool {
    RUNTIME_ROOTS.contains(&name) || RUNTIME_VARIABLE_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Whether `${name}` (or `${name.x}`), with `name` no root the file knows,
/// is kept as literal text for the task's runtime, as Nomad keeps it: every
/// name but the known roots and their near misses (`vra`, `nod`); a name
/// written like an environment variable (`SLEEP_SECS`, `ENV`) is never taken
/// for a near miss.
pub fn passes_through(name: &str) -> bool {
    if KNOWN_ROOTS.contains(&name) {
        return false;
    }
    is_environment_shaped(name) || nearest(name, KNOWN_ROOTS).is_none()
}

/// Capitals, digits and `_` only, with at least one capital: how
/// environment variables are written.
fn is_environment_shaped(name: &str) -> bool {
    name.chars().any(|character| character.is_ascii_uppercase())
        && name
            .chars()
            .all(|character| character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_')
}

/// What `var.<name>` and `local.<name>` may refer to in the expressions
/// being evaluated.
#[derive(Clone, Debug, Default)]
pub(crate) enum VariableScope {
    /// Variable defaults and var files: no variable or local may be used.
    #[default]
    Forbidden,
    /// The body of a definition file.
    Declared {
        /// The file's variables.
        variables: NameScope,
        /// The file's locals (empty until they are evaluated).
        locals: NameScope,
    },
}

/// The names of one kind (variables or locals) a file declares.
#[derive(Clone, Debug, Default)]
pub(crate) struct NameScope {
    /// Every declared name.
    pub(crate) declared: BTreeSet<String>,
    /// Declared names that have no usable value (their problem was already
    /// reported, so expressions using them are skipped silently).
    pub(crate) unusable: BTreeSet<String>,
}

/// Evaluates expressions of one kind of input (a definition body, variable
/// defaults, a var file).
#[derive(Clone, Debug, Default)]
pub(crate) struct Evaluator {
    context: hcl::eval::Context<'static>,
    scope: VariableScope,
}

impl Evaluator {
    /// An evaluator where `var` cannot be used.
    pub(crate) fn without_variables() -> Evaluator {
        let mut context = hcl::eval::Context::new();
        functions::declare_all(&mut context);
        Evaluator { context, scope: VariableScope::Forbidden }
    }

    /// An evaluator where `var.<name>` is the value of each usable variable.
    pub(crate) fn with_variables(
        values: hcl::Map<String, Value>,
        declared: BTreeSet<String>,
        unusable: BTreeSet<String>,
    ) -> Evaluator {
        let mut context = hcl::eval::Context::new();
        functions::declare_all(&mut context);
        context.declare_var("var", Value::Object(values));
        context.declare_var("local", Value::Object(hcl::Map::new()));
        let variables = NameScope { declared, unusable };
        Evaluator { context, scope: VariableScope::Declared { variables, locals: NameScope::default() } }
    }

    /// Makes `local.<name>` the value of each local in `values`; `declared`
    /// names every local of the file, `unusable` those without a value.
    pub(crate) fn set_locals(
        &mut self,
        values: hcl::Map<String, Value>,
        declared: BTreeSet<String>,
        unusable: BTreeSet<String>,
    ) {
        self.context.declare_var("local", Value::Object(values));
        if let VariableScope::Declared { locals, .. } = &mut self.scope {
            *locals = NameScope { declared, unusable };
        }
    }

    /// The value of `expression`, or `None` when it cannot be evaluated; the
    /// reasons are pushed to `diagnostics` (nothing is pushed when the
    /// expression uses a variable whose own problem was already reported).
    pub(crate) fn evaluate(
        &self,
        expression: &Expression,
        source: &SourceMap,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Value> {
        let mut prepared = expression.clone();
        let mut preparer = Preparer {
            scope: &self.scope,
            problems: Vec::new(),
            uses_unusable: false,
            locals: Vec::new(),
            looking_functions: Vec::new(),
        };
        preparer.visit_expr_mut(&mut prepared);
        if !preparer.problems.is_empty() {
            for (span, message) in preparer.problems {
                diagnostics.push(source.diagnostic(span.or_else(|| expression.span()), message));
            }
            return None;
        }
        if preparer.uses_unusable {
            return None;
        }
        let converted = hcl::Expression::from(prepared);
        match converted.evaluate(&self.context) {
            Ok(value) => Some(value),
            Err(error) => {
                diagnostics.push(source.diagnostic(expression.span(), describe_evaluation_error(&error)));
                None
            }
        }
    }
}

fn describe_evaluation_error(error: &hcl::eval::Error) -> String {
    use hcl::eval::ErrorKind;
    match error.kind() {
        ErrorKind::NoSuchKey(key) => format!("no element \"{key}\" in the value"),
        ErrorKind::Index(index) => format!("index {index} is past the end of the list"),
        other => format!("cannot evaluate the expression: {other}"),
    }
}

/// The walk that rewrites runtime references and checks names.
struct Preparer<'scope> {
    scope: &'scope VariableScope,
    problems: Vec<(Option<Range<usize>>, String)>,
    uses_unusable: bool,
    /// Names introduced by enclosing `for` expressions and directives.
    locals: Vec<String>,
    /// Enclosing calls of functions that look into their arguments' text
    /// (see [`functions::TEXT_PRESERVING`]).
    looking_functions: Vec<String>,
}

impl Preparer<'_> {
    fn is_local(&self, name: &str) -> bool {
        self.locals.iter().any(|local| local == name)
    }

    /// The text of a runtime reference (`node.unique.name`) when
    /// `expression` is exactly one.
    fn runtime_reference_text(&self, expression: &Expression) -> Option<String> {
        let (root_name, operators) = match expression {
            Expression::Variable(identifier) => (identifier.as_str(), &[][..]),
            Expression::Traversal(traversal) => match &traversal.expr {
                Expression::Variable(root) => (root.as_str(), traversal.operators.as_slice()),
                _ => return None,
            },
            _ => return None,
        };
        if !(is_runtime_root(root_name) || passes_through(root_name)) || self.is_local(root_name) {
            return None;
        }
        reference_text(root_name, operators)
    }

    /// Checks a name at the root of an expression; `first_operator` is the
    /// traversal step after it, if any.
    fn check_root(&mut self, name: &str, operators: &[Decorated<TraversalOperator>], span: Option<Range<usize>>) {
        if self.is_local(name) {
            return;
        }
        if name == "var" || name == "local" {
            self.check_declared_use(name, operators.first().map(|operator| operator.value()), span);
            return;
        }
        if is_runtime_root(name) {
            let text = reference_text(name, operators).unwrap_or_else(|| name.to_owned());
            self.problems.push((
                span,
                format!(
                    "{text} is resolved on the node at run time, so it can only stand alone in a string: write \"${{{text}}}\""
                ),
            ));
            return;
        }
        let passes = if passes_through(name) {
            format!(" (only a plain \"${{{name}}}\" in a string is kept as it is, for the task's runtime to expand)")
        } else {
            String::new()
        };
        self.problems.push((
            span,
            format!(
                "unknown name \"{name}\": use var.<name> for variables, local.<name> for locals, or \"${{node.…}}\", \"${{attr.…}}\", \"${{meta.…}}\" for values of the node{}{passes}",
                did_you_mean(name, KNOWN_ROOTS)
            ),
        ));
    }

    /// Checks `var.<name>` (`root` is `var`) or `local.<name>` (`root` is
    /// `local`).
    fn check_declared_use(
        &mut self,
        root: &str,
        first_operator: Option<&TraversalOperator>,
        span: Option<Range<usize>>,
    ) {
        let VariableScope::Declared { variables, locals } = self.scope else {
            self.problems.push((
                span,
                "variable defaults, var files and -var values cannot use variables or locals: give a literal value"
                    .to_owned(),
            ));
            return;
        };
        let (names, kind, fix) = if root == "local" {
            (locals, "local", "add it to a locals { … } block")
        } else {
            (variables, "variable", "add a variable \"<name>\" {} block")
        };
        let name = match first_operator {
            Some(TraversalOperator::GetAttr(name)) => name.as_str().to_owned(),
            Some(TraversalOperator::Index(Expression::String(name))) => name.value().clone(),
            _ => return,
        };
        if names.unusable.contains(&name) {
            self.uses_unusable = true;
            return;
        }
        if !names.declared.contains(&name) {
            let suggestion = did_you_mean(&name, names.declared.iter().map(String::as_str));
            let message = if suggestion.is_empty() {
                format!("{kind} \"{name}\" is not declared: {}", fix.replace("<name>", &name))
            } else {
                format!("{kind} \"{name}\" is not declared{suggestion}")
            };
            self.problems.push((span, message));
        }
    }

    fn visit_traversal(&mut self, traversal: &mut Traversal) {
        if let Expression::Variable(root) = &traversal.expr {
            self.check_root(root.as_str(), &traversal.operators, traversal.span().or_else(|| root.span()));
        } else {
            self.visit_expr_mut(&mut traversal.expr);
        }
        for operator in &mut traversal.operators {
            if let TraversalOperator::Index(index) = operator.value_mut() {
                self.visit_expr_mut(index);
            }
        }
    }

    fn visit_for_expression(&mut self, for_expression: &mut ForExpr) {
        // The collection is evaluated outside the loop's own names.
        self.visit_expr_mut(&mut for_expression.intro.collection_expr);
        let names_before = self.locals.len();
        if let Some(key_name) = &for_expression.intro.key_var {
            self.locals.push(key_name.as_str().to_owned());
        }
        self.locals.push(for_expression.intro.value_var.as_str().to_owned());
        if let Some(key_expression) = &mut for_expression.key_expr {
            self.visit_expr_mut(key_expression);
        }
        self.visit_expr_mut(&mut for_expression.value_expr);
        if let Some(condition) = &mut for_expression.cond {
            self.visit_expr_mut(&mut condition.expr);
        }
        self.locals.truncate(names_before);
    }
}

impl VisitMut for Preparer<'_> {
    fn visit_element_mut(&mut self, element: &mut Element) {
        if let Element::Interpolation(interpolation) = element
            && let Some(text) = self.runtime_reference_text(&interpolation.expr)
        {
            if let Some(function) = self.looking_functions.last() {
                self.problems.push((
                    interpolation.expr.span(),
                    format!(
                        "${{{text}}} is resolved on the node at run time, so function \"{function}\" cannot use it while the file is read: apply it to values known now, or keep \"${{{text}}}\" as it is"
                    ),
                ));
            }
            *element = Element::Literal(hcl_edit::Spanned::new(format!("${{{text}}}")));
            return;
        }
        if let Element::Literal(literal) = element
            && let Some(restored) = crate::syntax::restore_shell_expansions(literal.value())
        {
            *element = Element::Literal(hcl_edit::Spanned::new(restored));
            return;
        }
        visit_mut::visit_element_mut(self, element);
    }

    fn visit_expr_mut(&mut self, expression: &mut Expression) {
        match expression {
            Expression::Variable(identifier) => {
                let name = identifier.as_str().to_owned();
                self.check_root(&name, &[], identifier.span());
            }
            Expression::Traversal(traversal) => self.visit_traversal(traversal),
            Expression::String(text) => {
                if let Some(restored) = crate::syntax::restore_shell_expansions(text.value()) {
                    *expression = Expression::String(hcl_edit::Decorated::new(restored));
                }
            }
            Expression::ForExpr(for_expression) => self.visit_for_expression(for_expression),
            Expression::FuncCall(call) => {
                let name = call.name.name.as_str().to_owned();
                if !call.name.namespace.is_empty() || !functions::SUPPORTED.contains(&name.as_str()) {
                    let hint = match functions::REFUSED.iter().find(|(refused, _)| *refused == name) {
                        Some((_, hint)) => format!(": {hint}"),
                        None => format!(
                            "{}; the functions drover has are {}",
                            did_you_mean(&name, functions::SUPPORTED),
                            functions::SUPPORTED.join(", ")
                        ),
                    };
                    self.problems.push((call.span(), format!("function \"{name}\" is not supported by drover{hint}")));
                    return;
                }
                let looks_into_text = !functions::TEXT_PRESERVING.contains(&name.as_str());
                if looks_into_text {
                    self.looking_functions.push(name);
                }
                for argument in call.args.iter_mut() {
                    self.visit_expr_mut(argument);
                }
                if looks_into_text {
                    self.looking_functions.pop();
                }
            }
            _ => visit_mut::visit_expr_mut(self, expression),
        }
    }

    fn visit_for_directive_mut(&mut self, directive: &mut ForDirective) {
        let for_template = &mut directive.for_expr;
        self.visit_expr_mut(&mut for_template.collection_expr);
        let names_before = self.locals.len();
        if let Some(key_name) = &for_template.key_var {
            self.locals.push(key_name.as_str().to_owned());
        }
        self.locals.push(for_template.value_var.as_str().to_owned());
        self.visit_template_mut(&mut for_template.template);
        self.locals.truncate(names_before);
    }
}

/// `node.unique.name` for a root and its traversal steps, when every step
/// is a plain name or a literal index.
fn reference_text(root_name: &str, operators: &[Decorated<TraversalOperator>]) -> Option<String> {
    let mut text = root_name.to_owned();
    for operator in operators {
        text.push('.');
        match operator.value() {
            TraversalOperator::GetAttr(name) => text.push_str(name.as_str()),
            TraversalOperator::LegacyIndex(index) => text.push_str(&index.value().to_string()),
            TraversalOperator::Index(Expression::String(key)) => text.push_str(key.value()),
            TraversalOperator::Index(Expression::Number(number)) => text.push_str(&number.value().to_string()),
            _ => return None,
        }
    }
    Some(text)
}

/// How a value is described in messages: `the string "abc"`, `a list`.
pub fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("the bool {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {text:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a map".to_owned(),
    }
}

/// A scalar value as text, the way HCL converts numbers and bools to
/// strings; `None` for null, lists and maps.
pub fn value_as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number_as_text(number)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A number as text, without a fractional part when it is whole (`3`, not
/// `3.0`).
pub fn number_as_text(number: &hcl::Number) -> String {
    if let Some(integer) = number.as_i64() {
        return integer.to_string();
    }
    if let Some(integer) = number.as_u64() {
        return integer.to_string();
    }
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && float.abs() < 1e15 => format!("{float:.0}"),
        _ => number.to_string(),
    }
}

/// A value as a whole number, accepting whole floats and numeric strings
/// (HCL converts those implicitly).
pub fn value_as_integer(value: &Value) -> Option<i128> {
    match value {
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                return Some(i128::from(integer));
            }
            if let Some(integer) = number.as_u64() {
                return Some(i128::from(integer));
            }
            let float = number.as_f64()?;
            #[allow(clippy::cast_possible_truncation)]
            let truncated = float as i128;
            (float.fract() == 0.0 && float.abs() < 1e18).then_some(truncated)
        }
        Value::String(text) => text.trim().parse::<i128>().ok(),
        _ => None,
    }
}

/// A value as a bool, accepting the strings `"true"` and `"false"`.
pub fn value_as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text == "true" => Some(true),
        Value::String(text) if text == "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluate_with(text: &str, variables: &[(&str, Value)]) -> Result<Value, String> {
        let source = SourceMap::new("test.hcl", text);
        let expression = hcl_edit::parser::parse_expr(text).map_err(|error| error.to_string())?;
        let values: hcl::Map<String, Value> =
            variables.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
        let declared = variables.iter().map(|(name, _)| (*name).to_owned()).collect();
        let evaluator = Evaluator::with_variables(values, declared, BTreeSet::new());
        let mut diagnostics = Vec::new();
        evaluator
            .evaluate(&expression, &source, &mut diagnostics)
            .ok_or_else(|| diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    }

    fn evaluate(text: &str) -> Result<Value, String> {
        evaluate_with(text, &[("version", Value::from("3.2.1")), ("count", Value::from(3))])
    }

    #[test]
    fn runtime_references_stay_literal() {
        for reference in [
            "node.unique.name",
            "attr.kernel.name",
            "meta.rack",
            "env.HOME",
            "NOMAD_ALLOC_ID",
            "DROVER_TASK_NAME",
            "node.hostgroup",
        ] {
            let text = format!("\"${{{reference}}}\"");
            assert_eq!(evaluate(&text), Ok(Value::from(format!("${{{reference}}}"))), "{text}");
        }
        assert_eq!(evaluate(r#""${ meta["rack"] }""#), Ok(Value::from("${meta.rack}")));
    }

    #[test]
    fn variables_and_runtime_references_mix() {
        assert_eq!(
            evaluate(r#""/opt/${var.version}/bin/${node.unique.name}""#),
            Ok(Value::from("/opt/3.2.1/bin/${node.unique.name}"))
        );
        assert_eq!(evaluate(r#""${var.count}""#), Ok(Value::from(3)));
        assert_eq!(evaluate(r#"["${attr.cpu.arch}", var.version]"#).map(|value| value.to_string()).ok(), {
            Some(Value::Array(vec![Value::from("${attr.cpu.arch}"), Value::from("3.2.1")]).to_string())
        });
    }

    #[test]
    fn escapes_quotes_and_backslashes_survive_evaluation() {
        assert_eq!(evaluate(r#""$${HOME} and ${var.version}""#), Ok(Value::from("${HOME} and 3.2.1")));
        assert_eq!(evaluate(r#""say \"hi\" ${var.version}""#), Ok(Value::from("say \"hi\" 3.2.1")));
        assert_eq!(evaluate(r#""a\\b\n${var.version}""#), Ok(Value::from("a\\b\n3.2.1")));
        assert_eq!(evaluate(r#""100%% ${var.version} %%{x}""#), Ok(Value::from("100%% 3.2.1 %{x}")));
        assert_eq!(
            evaluate("<<EOT\nline ${node.unique.name}\n$${x}\nEOT"),
            Ok(Value::from("line ${node.unique.name}\n${x}\n"))
        );
    }

    #[test]
    fn directives_and_for_expressions_work() {
        assert_eq!(
            evaluate(r#""%{ for item in ["a", "b"] }${item}-${node.unique.name};%{ endfor }""#),
            Ok(Value::from("a-${node.unique.name};b-${node.unique.name};"))
        );
        assert_eq!(
            evaluate(r#"[for item in ["x"] : "${item}${var.version}"]"#),
            Ok(Value::Array(vec![Value::from("x3.2.1")]))
        );
        assert_eq!(evaluate(r#"var.count > 2 ? "many" : "few""#), Ok(Value::from("many")));
    }

    #[test]
    fn plain_interpolations_of_unknown_names_stay_literal_like_nomad() {
        assert_eq!(evaluate(r#""x ${foo.bar}""#), Ok(Value::from("x ${foo.bar}")));
        assert_eq!(
            evaluate("<<EOT\nsleep ${SLEEP_SECS} # ${VAULT_TOKEN}\n${var.version}\nEOT"),
            Ok(Value::from("sleep ${SLEEP_SECS} # ${VAULT_TOKEN}\n3.2.1\n"))
        );
        assert_eq!(evaluate(r#""${ENV} ${NODE}""#), Ok(Value::from("${ENV} ${NODE}")));
        assert_eq!(evaluate(r#"format("%s:1", "${PORT}")"#), Ok(Value::from("${PORT}:1")));
    }

    #[test]
    fn unknown_names_are_reported_at_their_position() {
        assert_eq!(
            evaluate("foo"),
            Err("test.hcl:1:1: unknown name \"foo\": use var.<name> for variables, local.<name> for locals, or \"${node.…}\", \"${attr.…}\", \"${meta.…}\" for values of the node (only a plain \"${foo}\" in a string is kept as it is, for the task's runtime to expand)".to_owned())
        );
        assert_eq!(
            evaluate(r#""${vra.version}""#),
            Err("test.hcl:1:4: unknown name \"vra\": use var.<name> for variables, local.<name> for locals, or \"${node.…}\", \"${attr.…}\", \"${meta.…}\" for values of the node; did you mean \"var\"?".to_owned())
        );
        assert!(evaluate(r#""${foo + 1}""#).unwrap_err().contains("unknown name \"foo\""));
        assert!(evaluate(r#""${upper(SLEEP_SECS)}""#).unwrap_err().contains("unknown name \"SLEEP_SECS\""));
        assert!(evaluate(r#"upper("${SLEEP_SECS}")"#).unwrap_err().contains("function \"upper\" cannot use it"));
        assert_eq!(
            evaluate(r#""${var.versoin}""#),
            Err("test.hcl:1:4: variable \"versoin\" is not declared; did you mean \"version\"?".to_owned())
        );
        assert!(evaluate(r#""${nosuch(var.version)}""#).unwrap_err().contains("function \"nosuch\" is not supported"));
        assert!(
            evaluate(r#"upper("${node.unique.name}")"#).unwrap_err().contains("function \"upper\" cannot use it"),
            "{:?}",
            evaluate(r#"upper("${node.unique.name}")"#)
        );
        assert!(evaluate(r#"file("x")"#).unwrap_err().contains("paste the content"));
        assert!(evaluate("node.unique.name").unwrap_err().contains("write \"${node.unique.name}\""));
    }

    #[test]
    fn variables_are_refused_where_they_cannot_be_used() {
        let source = SourceMap::new("vars.hcl", "var.x");
        let expression = hcl_edit::parser::parse_expr("var.x").unwrap();
        let mut diagnostics = Vec::new();
        assert_eq!(Evaluator::without_variables().evaluate(&expression, &source, &mut diagnostics), None);
        assert!(
            diagnostics[0].message.starts_with("variable defaults, var files and -var values cannot use variables")
        );
    }

    #[test]
    fn unusable_variables_are_skipped_silently() {
        let source = SourceMap::new("job.hcl", "\"${var.broken}\"");
        let expression = hcl_edit::parser::parse_expr("\"${var.broken}\"").unwrap();
        let evaluator = Evaluator::with_variables(
            hcl::Map::new(),
            BTreeSet::from(["broken".to_owned()]),
            BTreeSet::from(["broken".to_owned()]),
        );
        let mut diagnostics = Vec::new();
        assert_eq!(evaluator.evaluate(&expression, &source, &mut diagnostics), None);
        assert!(diagnostics.is_empty());
    }

    #[test]
    fn nomads_pure_functions_evaluate() {
        let cases = [
            (r#"format("%s-%03d", var.version, 7)"#, Value::from("3.2.1-7")),
            (
                r#"format("%s:%d", "${attr.unique.network.ip-address}", 80)"#,
                Value::from("${attr.unique.network.ip-address}:80"),
            ),
            (r#"join(",", ["a", "b"], ["c"])"#, Value::from("a,b,c")),
            (r#"upper(var.version)"#, Value::from("3.2.1")),
            (r#"lower("ABC")"#, Value::from("abc")),
            (r#"length(split(".", var.version))"#, Value::from(3)),
            (r#"element(["a", "b"], 3)"#, Value::from("b")),
            (r#"lookup({ a = "x" }, "b", "dflt")"#, Value::from("dflt")),
            (r#"jsonencode({ a = [1, "two"] })"#, Value::from(r#"{"a":[1,"two"]}"#)),
            (r#"replace("a-b-c", "-", "_")"#, Value::from("a_b_c")),
            (r#"substr("hello", 1, 3)"#, Value::from("ell")),
            (r#"max(1, 5, 3)"#, Value::from(5)),
            (r#"trimspace("  x ")"#, Value::from("x")),
            (r#"coalesce("", "y")"#, Value::from("y")),
            (r#"contains(["a"], "a")"#, Value::Bool(true)),
        ];
        for (text, expected) in cases {
            assert_eq!(evaluate(text), Ok(expected), "{text}");
        }
        assert_eq!(
            evaluate(r#"merge({ a = 1 }, { b = 2 })"#).map(|value| value.to_string()),
            Ok(Value::Object(
                [("a".to_owned(), Value::from(1)), ("b".to_owned(), Value::from(2))].into_iter().collect()
            )
            .to_string())
        );
        assert!(evaluate(r#"format("%x", 1)"#).unwrap_err().contains("%x is not supported"));
        let uuid = evaluate("uuidv4()").unwrap();
        assert_eq!(uuid.as_str().map(|text| (text.len(), text.matches('-').count())), Some((36, 4)));
        assert_ne!(evaluate("uuidv4()").unwrap(), uuid, "a new UUID at every call");
        let now = evaluate("timestamp()").unwrap();
        let text = now.as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.ends_with('Z'), "{text}");
    }

    #[test]
    fn scalars_convert_like_hcl() {
        assert_eq!(value_as_text(&Value::from(3)), Some("3".to_owned()));
        assert_eq!(value_as_text(&Value::from(2.5)), Some("2.5".to_owned()));
        assert_eq!(value_as_text(&Value::from(true)), Some("true".to_owned()));
        assert_eq!(value_as_integer(&Value::from("42")), Some(42));
        assert_eq!(value_as_integer(&Value::from(4.0)), Some(4));
        assert_eq!(value_as_integer(&Value::from(4.5)), None);
        assert_eq!(value_as_bool(&Value::from("false")), Some(false));
    }
}
