//! `constraint`, `affinity` and `spread` blocks: where allocations may and
//! should go.

use drover_hcl::BlockReader;
use drover_hcl::expression::value_as_text;
use drover_hcl::suggest::did_you_mean;
use drover_types::{Affinity, Constraint, ConstraintOperator, Spread, SpreadTarget};

/// Operators of Nomad that drover does not implement, with what to use
/// instead.
const UNSUPPORTED_OPERATORS: [(&str, &str); 4] = [
    ("distinct_property", "spread over the attribute with a spread block instead"),
    ("semver", "use the \"version\" operator"),
    ("set_contains_all", "use \"set_contains\", which requires every value"),
    ("set_contains_any", "use one constraint per value, or \"regexp\""),
];

/// Every `constraint` block of `block`.
pub(crate) fn read_constraints(block: &mut BlockReader<'_>) -> Vec<Constraint> {
    block.blocks("constraint").into_iter().filter_map(read_constraint).collect()
}

/// Every `affinity` block of `block`.
pub(crate) fn read_affinities(block: &mut BlockReader<'_>) -> Vec<Affinity> {
    block.blocks("affinity").into_iter().filter_map(read_affinity).collect()
}

/// Every `spread` block of `block`.
pub(crate) fn read_spreads(block: &mut BlockReader<'_>) -> Vec<Spread> {
    block.blocks("spread").into_iter().filter_map(read_spread).collect()
}

/// The operator of a constraint or affinity block (`=` when absent).
fn read_operator(block: &mut BlockReader<'_>) -> Option<ConstraintOperator> {
    let Some(text) = block.string("operator") else {
        return Some(ConstraintOperator::Equal);
    };
    if let Some(operator) = ConstraintOperator::parse(&text) {
        return Some(operator);
    }
    if let Some((_, hint)) = UNSUPPORTED_OPERATORS.iter().find(|(name, _)| *name == text) {
        block.attribute_error("operator", format!("operator \"{text}\" is not supported by drover: {hint}"));
        return None;
    }
    let spellings: Vec<&str> = ConstraintOperator::ALL.iter().map(|(spelling, _)| *spelling).collect();
    block.attribute_error(
        "operator",
        format!(
            "unknown operator \"{text}\": use one of {}{}",
            spellings.join(" "),
            did_you_mean(&text, spellings.iter().copied())
        ),
    );
    None
}

/// The `value` attribute as text (bools and numbers are converted); `None`
/// when absent.
fn read_value_text(block: &mut BlockReader<'_>) -> Option<String> {
    let value = block.value("value")?;
    let text = value_as_text(&value);
    if text.is_none() {
        block.attribute_error("value", format!("{} must be a string", block.phrase("value")));
    }
    text
}

/// Checks that `value` makes sense for `operator`, reporting at the value.
/// Values holding runtime references are only checked once resolved.
fn check_operand(block: &BlockReader<'_>, operator: ConstraintOperator, value: &str) -> bool {
    match drover_types::validate::operand_problem(operator, value) {
        Some(problem) => {
            block.attribute_error("value", problem);
            false
        }
        None => true,
    }
}

fn read_constraint(mut block: BlockReader<'_>) -> Option<Constraint> {
    let constraint = constraint_from(&mut block);
    block.finish();
    constraint
}

/// Nomad's shorthand forms of a constraint, where the operator is the
/// attribute's name: `distinct_hosts = true`, `version = ">= 1.2"`,
/// `regexp = "…"`, `set_contains = "a,b"` (the last three with
/// `attribute`).
const SHORTHAND_OPERATORS: [&str; 4] = ["distinct_hosts", "version", "regexp", "set_contains"];

fn constraint_from(block: &mut BlockReader<'_>) -> Option<Constraint> {
    let attribute = block.string("attribute").unwrap_or_default();
    let shorthand = SHORTHAND_OPERATORS.into_iter().find(|name| block.has(name));
    if let Some(name) = shorthand {
        if block.has("operator") || block.has("value") {
            // Read, so that only the conflict is reported.
            for consumed in [name, "operator", "value"] {
                let _ = block.expression(consumed);
            }
            block.attribute_error(
                name,
                format!("{name} = … is the short form of operator = \"{name}\" and value = …: give one form, not both"),
            );
            return None;
        }
        let operator = ConstraintOperator::parse(name)?;
        if operator == ConstraintOperator::DistinctHosts {
            let flag = block.bool(name)?;
            if !attribute.is_empty() {
                block.attribute_error(
                    "attribute",
                    "the distinct_hosts operator compares no attribute: remove \"attribute\"".to_owned(),
                );
                return None;
            }
            return Some(Constraint { attribute, operator, value: flag.to_string() });
        }
        let value = block.string(name)?;
        if attribute.is_empty() {
            block.error(format!(
                "{} needs an attribute, e.g. attribute = \"${{attr.kernel.name}}\"",
                block.description()
            ));
            return None;
        }
        if !check_operand(block, operator, &value) {
            return None;
        }
        return Some(Constraint { attribute, operator, value });
    }
    let maybe_operator = read_operator(block);
    let given_value = read_value_text(block);
    let operator = maybe_operator?;
    let value = match operator {
        ConstraintOperator::DistinctHosts => {
            if !attribute.is_empty() {
                block.attribute_error(
                    "attribute",
                    "the distinct_hosts operator compares no attribute: remove \"attribute\"".to_owned(),
                );
                return None;
            }
            match given_value.as_deref() {
                None | Some("true") => "true".to_owned(),
                Some("false") => "false".to_owned(),
                Some(other) => {
                    block.attribute_error(
                        "value",
                        format!("the value of a distinct_hosts constraint must be true or false, not {other:?}"),
                    );
                    return None;
                }
            }
        }
        ConstraintOperator::IsSet | ConstraintOperator::IsNotSet => {
            if given_value.as_deref().is_some_and(|text| !text.is_empty()) {
                block.attribute_error("value", format!("the {operator} operator takes no value: remove \"value\""));
                return None;
            }
            if attribute.is_empty() {
                block.error(format!("{} needs an attribute, e.g. attribute = \"${{meta.rack}}\"", block.description()));
                return None;
            }
            String::new()
        }
        _ => {
            if attribute.is_empty() {
                block.error(format!(
                    "{} needs an attribute, e.g. attribute = \"${{attr.kernel.name}}\"",
                    block.description()
                ));
                return None;
            }
            let Some(compared_value) = given_value else {
                block.error(format!("{} needs a value to compare {attribute} with", block.description()));
                return None;
            };
            if !check_operand(block, operator, &compared_value) {
                return None;
            }
            compared_value
        }
    };
    Some(Constraint { attribute, operator, value })
}

fn read_affinity(mut block: BlockReader<'_>) -> Option<Affinity> {
    let affinity = affinity_from(&mut block);
    block.finish();
    affinity
}

fn affinity_from(block: &mut BlockReader<'_>) -> Option<Affinity> {
    let attribute = block.string("attribute").unwrap_or_default();
    let maybe_operator = read_operator(block);
    let given_value = read_value_text(block);
    let weight = read_affinity_weight(block);
    let operator = maybe_operator?;
    if matches!(operator, ConstraintOperator::DistinctHosts | ConstraintOperator::IsSet | ConstraintOperator::IsNotSet)
    {
        block.attribute_error("operator", format!("the {operator} operator cannot be used in an affinity"));
        return None;
    }
    if attribute.is_empty() {
        block.error(format!("{} needs an attribute, e.g. attribute = \"${{node.zone}}\"", block.description()));
        return None;
    }
    let Some(value) = given_value else {
        block.error(format!("{} needs a value to compare {attribute} with", block.description()));
        return None;
    };
    if !check_operand(block, operator, &value) {
        return None;
    }
    Some(Affinity { attribute, operator, value, weight: weight? })
}

fn read_affinity_weight(block: &mut BlockReader<'_>) -> Option<i8> {
    if !block.has("weight") {
        return Some(50);
    }
    let weight = block.integer("weight", -100, 100)?;
    if weight == 0 {
        block.attribute_error("weight", "an affinity weight of 0 has no effect: use -100 to 100, not 0".to_owned());
        return None;
    }
    i8::try_from(weight).ok()
}

fn read_spread(mut block: BlockReader<'_>) -> Option<Spread> {
    let spread = spread_from(&mut block);
    block.finish();
    spread
}

fn spread_from(block: &mut BlockReader<'_>) -> Option<Spread> {
    let given_attribute = block.string("attribute");
    let weight = if block.has("weight") {
        block.integer("weight", 0, 100).and_then(|integer| u8::try_from(integer).ok())
    } else {
        Some(50)
    };
    let mut targets: Vec<SpreadTarget> = Vec::new();
    let mut targets_valid = true;
    let description = block.description().to_owned();
    for mut target_block in block.labeled_blocks("target") {
        let location = target_block.label_location();
        let maybe_target = target_from(&mut target_block, &description);
        target_block.finish();
        match maybe_target {
            Some(target) if targets.iter().any(|existing| existing.value == target.value) => {
                block.report(location, format!("target \"{}\" appears twice in {description}", target.value));
                targets_valid = false;
            }
            Some(target) => targets.push(target),
            None => targets_valid = false,
        }
    }
    let Some(attribute) = given_attribute.filter(|text| !text.is_empty()) else {
        block.error(format!("{} needs an attribute, e.g. attribute = \"${{node.zone}}\"", block.description()));
        return None;
    };
    let total: u32 = targets.iter().map(|target| u32::from(target.percent)).sum();
    if total > 100 {
        block.error(format!("the target percentages of {} add up to {total}, more than 100", block.description()));
        return None;
    }
    if !targets_valid {
        return None;
    }
    Some(Spread { attribute, weight: weight?, targets })
}

fn target_from(block: &mut BlockReader<'_>, spread_description: &str) -> Option<SpreadTarget> {
    let value = block.label().to_owned();
    if !block.has("percent") {
        block.error(format!("target \"{value}\" in {spread_description} needs a percent, e.g. percent = 50"));
        return None;
    }
    let percent = block.integer("percent", 0, 100).and_then(|integer| u8::try_from(integer).ok())?;
    Some(SpreadTarget { value, percent })
}
