//! Constraint and affinity rules: one `attribute operator value` checked
//! against one node.
//!
//! Both sides are interpolated against the node (`${attr.kernel.name}`,
//! `${node.hostgroup}`, `${meta.rack}`). A side that references a target the
//! node does not have makes the rule fail; `is_not_set` exists for exactly
//! that case and is the only operator that passes then.
//!
//! Globs are [`drover_types::glob`], the glob of `--filter`'s `=~`: `*`
//! within one `/`-separated segment, `**` across segments, `?`, sets such
//! as `[1-3]` and `\` escapes.
//!
//! Patterns (regular expressions, globs, version requirements, sets) are
//! compiled once per evaluation: a right-hand side without `${…}` when the
//! rule is compiled, one with `${…}` through a [`PatternCache`] keyed by its
//! resolved text.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use drover_types::glob::Glob;
use drover_types::{Constraint, ConstraintOperator, Node, interpolate};
use regex::Regex;

use drover_types::version::VersionRequirement;

/// Whether `node` satisfies `constraint`, compiling its pattern on the spot.
///
/// `distinct_hosts` depends on other allocations, not on the node, and
/// always passes here; the scheduler checks it against the plan.
pub fn constraint_matches(constraint: &Constraint, node: &Node) -> bool {
    let rule = CompiledRule::from_constraint(constraint);
    rule.matches(node, &mut PatternCache::default())
}

/// A right-hand side turned into something that matches quickly.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// Compared as text, or as numbers when both sides are numbers.
    Text(String),
    /// `regexp`: unanchored, as in Nomad.
    Regex(Regex),
    /// `glob`: drover's one glob, as `--filter`'s `=~`.
    Glob(Glob),
    /// `version`.
    Version(VersionRequirement),
    /// `set_contains`: the values that must all be present.
    Set(Vec<String>),
    /// `is_set`, `is_not_set` and `distinct_hosts` have no pattern.
    Nothing,
    /// The pattern did not compile (a bad regular expression, glob or
    /// version requirement): the rule matches no node.
    Invalid,
}

impl Pattern {
    /// Compiles the right-hand side of a rule.
    pub(crate) fn compile(operator: ConstraintOperator, value: &str) -> Pattern {
        match operator {
            ConstraintOperator::Equal
            | ConstraintOperator::NotEqual
            | ConstraintOperator::Less
            | ConstraintOperator::LessOrEqual
            | ConstraintOperator::Greater
            | ConstraintOperator::GreaterOrEqual => Pattern::Text(value.to_owned()),
            ConstraintOperator::Regexp => Regex::new(value).map_or(Pattern::Invalid, Pattern::Regex),
            ConstraintOperator::Glob => Glob::new(value).map_or(Pattern::Invalid, Pattern::Glob),
            ConstraintOperator::Version => VersionRequirement::parse(value).map_or(Pattern::Invalid, Pattern::Version),
            ConstraintOperator::SetContains => Pattern::Set(split_set(value).map(str::to_owned).collect()),
            ConstraintOperator::DistinctHosts | ConstraintOperator::IsSet | ConstraintOperator::IsNotSet => {
                Pattern::Nothing
            }
        }
    }

    /// Whether the (resolved) attribute satisfies the pattern.
    fn matches(&self, operator: ConstraintOperator, attribute: &str) -> bool {
        match self {
            Pattern::Text(value) => compare(operator, attribute, value),
            Pattern::Regex(regex) => regex.is_match(attribute),
            Pattern::Glob(glob) => glob.matches(attribute),
            Pattern::Version(requirement) => requirement.matches(attribute),
            Pattern::Set(required) => {
                let present: Vec<&str> = split_set(attribute).collect();
                required.iter().all(|value| present.contains(&value.as_str()))
            }
            Pattern::Nothing => true,
            Pattern::Invalid => false,
        }
    }
}

fn split_set(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|value| !value.is_empty())
}

fn compare(operator: ConstraintOperator, attribute: &str, value: &str) -> bool {
    match operator {
        ConstraintOperator::Equal => attribute == value,
        ConstraintOperator::NotEqual => attribute != value,
        ConstraintOperator::Less => ordering(attribute, value) == Ordering::Less,
        ConstraintOperator::LessOrEqual => ordering(attribute, value) != Ordering::Greater,
        ConstraintOperator::Greater => ordering(attribute, value) == Ordering::Greater,
        ConstraintOperator::GreaterOrEqual => ordering(attribute, value) != Ordering::Less,
        _ => false,
    }
}

/// Numeric order when both sides are plain numbers, else lexical order.
fn ordering(attribute: &str, value: &str) -> Ordering {
    match (parse_number(attribute), parse_number(value)) {
        (Some(attribute_number), Some(value_number)) => attribute_number.total_cmp(&value_number),
        _ => attribute.cmp(value),
    }
}

/// A decimal number such as `32`, `-1.5` or `2e3`; not `inf` or `NaN`.
fn parse_number(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    let looks_numeric = !trimmed.is_empty()
        && trimmed.bytes().all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !looks_numeric {
        return None;
    }
    trimmed.parse::<f64>().ok().filter(|number| number.is_finite())
}

/// Patterns compiled from right-hand sides that contain `${…}`, keyed by
/// their resolved text; lives for one evaluation.
#[derive(Debug, Default)]
pub(crate) struct PatternCache {
    patterns: HashMap<(ConstraintOperator, String), Pattern>,
}

impl PatternCache {
    fn pattern(&mut self, operator: ConstraintOperator, value: &str) -> &Pattern {
        // Two lookups instead of `entry`, so that a hit does not allocate.
        let key = (operator, value.to_owned());
        if !self.patterns.contains_key(&key) {
            let compiled = Pattern::compile(operator, value);
            self.patterns.insert(key.clone(), compiled);
        }
        self.patterns.get(&key).unwrap_or(&Pattern::Invalid)
    }
}

/// An interpolation target (`attr.kernel.name`, `node.hostgroup`, …) parsed
/// once, and read from a node without copying.
///
/// It mirrors [`Node::resolve`] (a test keeps them in step): feasibility
/// checks read one or two targets on every node of the cluster, and
/// `Node::resolve` clones each value. Targets it does not know are handed
/// to `Node::resolve`.
#[derive(Clone, Debug)]
enum NodeTarget {
    Attribute(String),
    Meta(String),
    UniqueId,
    UniqueName,
    Hostgroup,
    Environment,
    Owner,
    Zone,
    Other(String),
}

impl NodeTarget {
    fn parse(target: &str) -> NodeTarget {
        if let Some(fact) = target.strip_prefix("attr.") {
            return NodeTarget::Attribute(fact.to_owned());
        }
        if let Some(key) = target.strip_prefix("meta.") {
            return NodeTarget::Meta(key.to_owned());
        }
        match target {
            "node.unique.id" => NodeTarget::UniqueId,
            "node.unique.name" => NodeTarget::UniqueName,
            "node.hostgroup" => NodeTarget::Hostgroup,
            "node.environment" => NodeTarget::Environment,
            "node.owner" => NodeTarget::Owner,
            "node.zone" | "node.datacenter" => NodeTarget::Zone,
            other => NodeTarget::Other(other.to_owned()),
        }
    }

    fn resolve<'value>(&'value self, node: &'value Node) -> Option<Cow<'value, str>> {
        let value = match self {
            NodeTarget::Attribute(fact) => node.attributes.get(fact)?.as_str(),
            NodeTarget::Meta(key) => node.meta.get(key)?.as_str(),
            NodeTarget::UniqueId => node.id.as_str(),
            NodeTarget::UniqueName => node.name.as_str(),
            NodeTarget::Hostgroup => node.hostgroup.as_str(),
            NodeTarget::Environment => node.environment.as_str(),
            NodeTarget::Owner => node.owner.as_str(),
            NodeTarget::Zone => node.zone.as_str(),
            NodeTarget::Other(target) => return node.resolve(target).map(Cow::Owned),
        };
        Some(Cow::Borrowed(value))
    }
}

/// One side of a rule, pre-parsed so that the common `${target}` form costs
/// a single lookup.
#[derive(Clone, Debug)]
enum Side {
    /// No `${…}`: the text itself.
    Literal(String),
    /// Exactly one `${target}` and nothing else.
    Reference(NodeTarget),
    /// Anything else: interpolated in full.
    Template(String),
}

impl Side {
    fn parse(text: &str) -> Side {
        if !text.contains("${") {
            return Side::Literal(text.to_owned());
        }
        if let Some(inner) = text.strip_prefix("${").and_then(|rest| rest.strip_suffix('}'))
            && !inner.contains('}')
            && !inner.contains("${")
        {
            return Side::Reference(NodeTarget::parse(inner.trim()));
        }
        Side::Template(text.to_owned())
    }

    /// The side's value on `node`, `None` when it references a missing target.
    fn resolve<'value>(&'value self, node: &'value Node) -> Option<Cow<'value, str>> {
        match self {
            Side::Literal(text) => Some(Cow::Borrowed(text)),
            Side::Reference(target) => target.resolve(node),
            Side::Template(text) => interpolate(text, node).map(Cow::Owned),
        }
    }
}

/// A node attribute reference such as `${node.zone}`, parsed once and read
/// from many nodes (spreads use it).
#[derive(Clone, Debug)]
pub(crate) struct NodeAttribute(Side);

impl NodeAttribute {
    /// Parses an attribute reference or template.
    pub(crate) fn new(text: &str) -> NodeAttribute {
        NodeAttribute(Side::parse(text))
    }

    /// The attribute's value on `node`, `None` when it is not set.
    pub(crate) fn resolve<'value>(&'value self, node: &'value Node) -> Option<Cow<'value, str>> {
        self.0.resolve(node)
    }
}

/// A constraint or affinity rule ready to be checked against many nodes.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    /// `attribute operator value`, as shown in placement metrics.
    pub(crate) label: String,
    pub(crate) operator: ConstraintOperator,
    attribute: Side,
    value: Side,
    /// The compiled right-hand side when it has no `${…}`.
    static_pattern: Option<Pattern>,
}

impl CompiledRule {
    /// Compiles `attribute operator value`.
    pub(crate) fn new(attribute: &str, operator: ConstraintOperator, value: &str) -> CompiledRule {
        let value_side = Side::parse(value);
        let static_pattern = match &value_side {
            Side::Literal(text) => Some(Pattern::compile(operator, text)),
            Side::Reference(_) | Side::Template(_) => None,
        };
        CompiledRule {
            label: rule_label(attribute, operator, value),
            operator,
            attribute: Side::parse(attribute),
            value: value_side,
            static_pattern,
        }
    }

    /// Compiles a constraint.
    pub(crate) fn from_constraint(constraint: &Constraint) -> CompiledRule {
        CompiledRule::new(&constraint.attribute, constraint.operator, &constraint.value)
    }

    /// Whether `node` satisfies the rule.
    pub(crate) fn matches(&self, node: &Node, cache: &mut PatternCache) -> bool {
        let attribute = self.attribute.resolve(node);
        match self.operator {
            ConstraintOperator::IsSet => return attribute.is_some(),
            ConstraintOperator::IsNotSet => return attribute.is_none(),
            ConstraintOperator::DistinctHosts => return true,
            _ => {}
        }
        let Some(attribute_value) = attribute else {
            return false;
        };
        if let Some(pattern) = &self.static_pattern {
            return pattern.matches(self.operator, &attribute_value);
        }
        let Some(resolved_value) = self.value.resolve(node) else {
            return false;
        };
        cache.pattern(self.operator, &resolved_value).matches(self.operator, &attribute_value)
    }
}

/// `attribute operator value`, without empty parts.
pub(crate) fn rule_label(attribute: &str, operator: ConstraintOperator, value: &str) -> String {
    [attribute, operator.as_str(), value].iter().filter(|part| !part.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use drover_types::fixtures;

    use super::*;

    /// `batch07` in `bi/batch/gridworker`, zone `zone-a`, rack `r12`, with
    /// 32 cores and some CPU features.
    fn node() -> Node {
        let mut node = fixtures::node("batch07").with_hostgroup("bi/batch/gridworker");
        node.zone = "zone-a".into();
        node.meta = [("rack".to_owned(), "r12".to_owned()), ("want".to_owned(), "linux".to_owned())].into();
        node.attributes.insert("cpu.numcores".into(), "32".into());
        node.attributes.insert("features".into(), "avx2, sse4, fma".into());
        node
    }

    /// One row per operator behaviour: attribute, operator, value, expected.
    const CASES: &[(&str, &str, &str, bool)] = &[
        // = and !=
        ("${attr.kernel.name}", "=", "linux", true),
        ("${attr.kernel.name}", "==", "freebsd", false),
        ("${attr.kernel.name}", "!=", "freebsd", true),
        ("${attr.kernel.name}", "!=", "linux", false),
        ("${attr.missing}", "!=", "linux", false),
        ("${attr.missing}", "=", "", false),
        // numeric when both are numbers
        ("${attr.cpu.numcores}", ">", "4", true),
        ("${attr.cpu.numcores}", ">", "100", false),
        ("${attr.cpu.numcores}", ">=", "32", true),
        ("${attr.cpu.numcores}", "<", "100", true),
        ("${attr.cpu.numcores}", "<=", "31.5", false),
        // lexical otherwise ("9.3" is a number, "9.10" too: 9.3 > 9.10)
        ("${attr.os.version}", ">", "9.10", true),
        ("${node.environment}", "<", "qa", true),
        ("${node.environment}", ">=", "production", true),
        ("${node.environment}", ">", "production", false),
        ("${attr.missing}", "<", "zzz", false),
        // regexp (unanchored)
        ("${meta.rack}", "regexp", "^r1[0-9]$", true),
        ("${meta.rack}", "regexp", "2", true),
        ("${meta.rack}", "regexp", "^r2", false),
        ("${meta.rack}", "regexp", "([unclosed", false),
        // glob
        ("${node.hostgroup}", "glob", "bi/batch/**", true),
        ("${node.hostgroup}", "glob", "bi/*/gridworker", true),
        ("${node.hostgroup}", "glob", "bi/*", false),
        ("${node.hostgroup}", "glob", "bi/**/gridworker", true),
        ("${node.hostgroup}", "glob", "bi/batch/gridworke?", true),
        ("${node.hostgroup}", "glob", "belle2/**", false),
        ("${node.unique.name}", "glob", "batch0?", true),
        ("${node.unique.name}", "glob", "batch0[5-9]", true),
        ("${node.unique.name}", "glob", "batch0[1-3]", false),
        ("${node.unique.name}", "glob", "batch0[!1-3]", true),
        ("${node.unique.name}", "glob", "batch\\[07]", false),
        ("${node.unique.name}", "glob", "batch0[7", false),
        // version
        ("${attr.kernel.version}", "version", ">= 5.4, < 6", true),
        ("${attr.kernel.version}", "version", "< 5.10", false),
        ("${attr.os.version}", "version", "~> 9.0", true),
        ("${attr.kernel.name}", "version", ">= 1", false),
        ("${attr.kernel.version}", "version", "not a requirement", false),
        // set_contains
        ("${attr.features}", "set_contains", "avx2,fma", true),
        ("${attr.features}", "set_contains", "avx2, avx512", false),
        ("${attr.features}", "set_contains", "sse4", true),
        ("${attr.missing}", "set_contains", "sse4", false),
        // is_set / is_not_set
        ("${meta.rack}", "is_set", "", true),
        ("${meta.nope}", "is_set", "", false),
        ("${meta.nope}", "is_not_set", "", true),
        ("${meta.rack}", "is_not_set", "", false),
        // distinct_hosts is checked against the plan, never against the node
        ("", "distinct_hosts", "", true),
        // interpolation on the right-hand side and in templates
        ("${attr.kernel.name}", "=", "${meta.want}", true),
        ("${attr.kernel.name}", "=", "${meta.nope}", false),
        ("${node.zone}/${meta.rack}", "=", "zone-a/r12", true),
        ("${node.zone}/${meta.nope}", "is_not_set", "", true),
        ("${node.unique.name}", "regexp", "^${node.unique.name}$", true),
        // a literal left-hand side
        ("linux", "=", "linux", true),
    ];

    #[test]
    fn every_operator_behaves_as_documented() {
        let node = node();
        let mut cache = PatternCache::default();
        for (attribute, operator_text, value, expected) in CASES {
            let operator = ConstraintOperator::parse(operator_text).expect(operator_text);
            let rule = CompiledRule::new(attribute, operator, value);
            assert_eq!(rule.matches(&node, &mut cache), *expected, "{attribute} {operator_text} {value}");
            let constraint = Constraint { attribute: (*attribute).to_owned(), operator, value: (*value).to_owned() };
            assert_eq!(constraint_matches(&constraint, &node), *expected, "{attribute} {operator_text} {value}");
        }
    }

    #[test]
    fn every_operator_has_a_case() {
        for (_, operator) in ConstraintOperator::ALL {
            assert!(
                CASES.iter().any(|(_, spelling, _, _)| ConstraintOperator::parse(spelling) == Some(operator)),
                "no case for {operator}"
            );
        }
    }

    #[test]
    fn the_fast_target_reader_agrees_with_node_resolve() {
        let node = node();
        let other_targets = ["attr.kernel.name", "attr.missing", "meta.rack", "meta.missing", "node.bogus", "attr."];
        for target in Node::NODE_TARGETS.iter().chain(other_targets.iter()) {
            let fast = NodeTarget::parse(target).resolve(&node).map(Cow::into_owned);
            assert_eq!(fast, node.resolve(target), "{target}");
        }
    }

    #[test]
    fn labels_read_like_the_job_file() {
        assert_eq!(rule_label("${node.hostgroup}", ConstraintOperator::Glob, "bi/**"), "${node.hostgroup} glob bi/**");
        assert_eq!(rule_label("", ConstraintOperator::DistinctHosts, ""), "distinct_hosts");
    }
}
