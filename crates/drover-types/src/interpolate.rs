//! `${…}` interpolation of node values into constraints, commands and
//! environment variables.
//!
//! Job files keep runtime references such as `${node.unique.name}` or
//! `${attr.kernel.name}` as text; they are resolved against a node when the
//! scheduler checks a constraint or the agent starts a task.

use crate::node::Node;

/// Something that can resolve interpolation targets (`node.hostgroup`,
/// `attr.cpu.arch`, `NOMAD_ALLOC_ID`, …).
pub trait NodeView {
    /// The value of `target`, or `None` when it is not set.
    fn resolve(&self, target: &str) -> Option<String>;
}

impl NodeView for Node {
    fn resolve(&self, target: &str) -> Option<String> {
        Node::resolve(self, target)
    }
}

impl<F: Fn(&str) -> Option<String>> NodeView for F {
    fn resolve(&self, target: &str) -> Option<String> {
        self(target)
    }
}

/// Replaces every `${target}` in `text` by its value.
///
/// Returns `None` if any target is not set (a constraint on a missing
/// attribute is then infeasible). `$${` is a literal `${`.
pub fn interpolate(text: &str, view: &impl NodeView) -> Option<String> {
    let mut output = String::with_capacity(text.len());
    let mut missing = false;
    replace_references(text, &mut output, |target, output| match view.resolve(target) {
        Some(value) => output.push_str(&value),
        None => missing = true,
    });
    (!missing).then_some(output)
}

/// Like [`interpolate`], but a target that is not set stays as written
/// (`${meta.unknown}`), the way Nomad leaves unknown references in task
/// configuration.
pub fn interpolate_lenient(text: &str, view: &impl NodeView) -> String {
    let mut output = String::with_capacity(text.len());
    replace_references(text, &mut output, |target, output| match view.resolve(target) {
        Some(value) => output.push_str(&value),
        None => {
            output.push_str("${");
            output.push_str(target);
            output.push('}');
        }
    });
    output
}

/// The targets referenced in `text`, in order.
pub fn references(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut sink = String::new();
    replace_references(text, &mut sink, |target, _| targets.push(target.to_owned()));
    targets
}

fn replace_references(text: &str, output: &mut String, mut on_reference: impl FnMut(&str, &mut String)) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        // `$${` escapes a literal `${`.
        if start > 0 && rest.as_bytes()[start - 1] == b'$' {
            output.push_str(&rest[..start - 1]);
            output.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        output.push_str(&rest[..start]);
        let target = rest[start + 2..start + 2 + length].trim();
        on_reference(target, output);
        rest = &rest[start + 2 + length + 1..];
    }
    output.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(target: &str) -> Option<String> {
        match target {
            "node.unique.name" => Some("batch07".into()),
            "attr.kernel.name" => Some("linux".into()),
            _ => None,
        }
    }

    #[test]
    fn resolves_every_reference() {
        assert_eq!(
            interpolate("hello from ${node.unique.name} on ${attr.kernel.name}", &view).as_deref(),
            Some("hello from batch07 on linux")
        );
        assert_eq!(interpolate("plain", &view).as_deref(), Some("plain"));
    }

    #[test]
    fn a_missing_reference_fails_strict_and_stays_lenient() {
        assert_eq!(interpolate("${meta.rack}", &view), None);
        assert_eq!(interpolate_lenient("x ${meta.rack} y", &view), "x ${meta.rack} y");
    }

    #[test]
    fn escapes_and_unterminated_references_are_literal() {
        assert_eq!(interpolate("$${node.unique.name}", &view).as_deref(), Some("${node.unique.name}"));
        assert_eq!(interpolate("${unterminated", &view).as_deref(), Some("${unterminated"));
        assert_eq!(references("${a} and ${ b }"), vec!["a".to_owned(), "b".to_owned()]);
    }
}
