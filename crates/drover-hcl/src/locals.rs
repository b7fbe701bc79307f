//! `locals { … }` blocks: named values computed from variables and other
//! locals, used as `local.<name>`, with Nomad's HCL2 semantics.
//!
//! A file may have several `locals` blocks, each holding `name = expression`
//! lines. Every local is evaluated once, after the variables have their
//! values, with `var.*` and the locals it uses in scope. Like Nomad, the
//! order of the lines does not matter: a local is evaluated as soon as the
//! locals it refers to have values, so `b = local.a` may come before
//! `a = …`. Locals that refer to each other in a cycle are reported, each at
//! its own line, and so are a local declared twice, a label on a `locals`
//! block and a block inside one.
//!
//! A local whose expression fails is reported once; expressions that use it
//! are then skipped without a second message, as for variables.

use std::collections::{BTreeMap, BTreeSet};

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Attribute, Structure};
use hcl_edit::visit::{self, Visit};

use crate::Evaluation;
use crate::expression::Evaluator;

/// The locals of a file, as far as they are evaluated.
#[derive(Debug, Default)]
struct EvaluatedLocals {
    /// Every local with a usable value.
    values: BTreeMap<String, Value>,
    /// Every declared local.
    declared: BTreeSet<String>,
    /// Declared locals without a usable value (their problems were
    /// reported).
    unusable: BTreeSet<String>,
}

/// Reads and evaluates every `locals` block of the file, reporting problems
/// into the evaluation, and returns the evaluation's evaluator with every
/// usable local in scope.
pub(crate) fn evaluate(evaluation: &Evaluation) -> Evaluator {
    let mut evaluator = evaluation.evaluator.clone();
    let lines = read_lines(evaluation);
    let mut locals = EvaluatedLocals {
        declared: lines.iter().map(|(name, _)| name.clone()).collect(),
        ..EvaluatedLocals::default()
    };
    let mut pending: Vec<(String, &Attribute, BTreeSet<String>)> = lines
        .into_iter()
        .map(|(name, attribute)| {
            let references = referenced_locals(&attribute.value);
            (name, attribute, references)
        })
        .collect();
    loop {
        let ready = pending.iter().position(|(_, _, references)| {
            references.iter().all(|reference| {
                locals.values.contains_key(reference)
                    || locals.unusable.contains(reference)
                    || !locals.declared.contains(reference)
            })
        });
        let Some(index) = ready else {
            break;
        };
        let (name, attribute, _) = pending.remove(index);
        evaluator.set_locals(
            locals.values.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
            locals.declared.clone(),
            locals.unusable.clone(),
        );
        let mut problems = Vec::new();
        let value = evaluator.evaluate(&attribute.value, evaluation.source(), &mut problems);
        evaluation.extend_diagnostics(problems);
        match value {
            Some(value) => {
                locals.values.insert(name, value);
            }
            None => {
                locals.unusable.insert(name);
            }
        }
    }
    for (name, attribute, references) in &pending {
        let waiting: Vec<String> = references
            .iter()
            .filter(|reference| pending.iter().any(|(other, _, _)| other == *reference))
            .map(|reference| format!("local.{reference}"))
            .collect();
        evaluation.report(
            evaluation.source().span_location(attribute.key.span().or_else(|| attribute.span())),
            format!(
                "local \"{name}\" cannot be evaluated: it uses {}, and these locals refer to each other in a cycle; compute one of them from variables instead",
                waiting.join(", ")
            ),
        );
        locals.unusable.insert(name.clone());
    }
    evaluator.set_locals(locals.values.into_iter().collect(), locals.declared, locals.unusable);
    evaluator
}

/// Every `name = expression` line of the file's `locals` blocks, in file
/// order; duplicates, labels and nested blocks are reported and left out.
fn read_lines(evaluation: &Evaluation) -> Vec<(String, &Attribute)> {
    let source = evaluation.source();
    let mut lines: Vec<(String, &Attribute)> = Vec::new();
    for structure in evaluation.body().iter() {
        let Structure::Block(block) = structure else {
            continue;
        };
        if block.ident.as_str() != "locals" {
            continue;
        }
        if let Some(label) = block.labels.first() {
            evaluation.report(
                source.span_location(label.span().or_else(|| block.span())),
                "a locals block takes no label: write locals { name = value }",
            );
        }
        for inner in block.body.iter() {
            match inner {
                Structure::Attribute(attribute) => {
                    let name = attribute.key.as_str().to_owned();
                    if let Some((_, first)) = lines.iter().find(|(known, _)| *known == name) {
                        let first_line = source.span_location(first.key.span()).line;
                        evaluation.report(
                            source.span_location(attribute.key.span()),
                            format!("local \"{name}\" is defined twice (first at line {first_line}): keep one"),
                        );
                        continue;
                    }
                    lines.push((name, attribute));
                }
                Structure::Block(nested) => evaluation.report(
                    source.span_location(nested.ident.span()),
                    format!(
                        "a locals block holds only name = value lines, not blocks like \"{}\": write {0} = {{ … }}",
                        nested.ident.as_str()
                    ),
                ),
            }
        }
    }
    lines
}

/// The names of the locals an expression refers to (`local.<name>` and
/// `local["<name>"]`).
fn referenced_locals(expression: &Expression) -> BTreeSet<String> {
    let mut collector = LocalReferences::default();
    collector.visit_expr(expression);
    collector.names
}

#[derive(Default)]
struct LocalReferences {
    names: BTreeSet<String>,
}

impl Visit for LocalReferences {
    fn visit_traversal(&mut self, traversal: &hcl_edit::expr::Traversal) {
        if let Expression::Variable(root) = &traversal.expr
            && root.as_str() == "local"
        {
            match traversal.operators.first().map(|operator| operator.value()) {
                Some(TraversalOperator::GetAttr(name)) => {
                    self.names.insert(name.as_str().to_owned());
                }
                Some(TraversalOperator::Index(Expression::String(name))) => {
                    self.names.insert(name.value().clone());
                }
                _ => {}
            }
        }
        visit::visit_traversal(self, traversal);
    }
}
