//! Filters over drover's nodes.

use std::borrow::Cow;

use drover_types::{Node, NodeEligibility};

use crate::{Field, Fields, Value};

/// An empty label is missing, so that `has owner` means "someone is named".
fn label(text: &str) -> Value<'_> {
    if text.is_empty() { Value::Missing } else { Value::Str(Cow::Borrowed(text)) }
}

impl Fields for Node {
    fn value(&self, field: &Field) -> Value<'_> {
        match field {
            Field::Name => label(&self.name),
            Field::Id => label(self.id.as_str()),
            Field::Hostgroup => label(&self.hostgroup),
            Field::Environment => label(&self.environment),
            Field::Owner => label(&self.owner),
            Field::Zone => label(&self.zone),
            Field::Status => Value::Str(Cow::Borrowed(self.display_status())),
            Field::Eligibility => Value::Str(Cow::Borrowed(match self.eligibility {
                NodeEligibility::Eligible => "eligible",
                NodeEligibility::Ineligible => "ineligible",
            })),
            Field::Eligible => Value::Bool(self.eligibility == NodeEligibility::Eligible),
            Field::Protected => Value::Bool(self.protected.is_some()),
            Field::Draining => Value::Bool(self.drain.is_some()),
            Field::Attr(name) => self.attributes.get(name).map_or(Value::Missing, |value| label(value)),
            Field::Meta(key) => self.meta.get(key).map_or(Value::Missing, |value| label(value)),
        }
    }
}
