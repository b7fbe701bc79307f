//! `{{placeholder}}` templates: provider commands, webhook bodies, e-mail
//! subjects.
//!
//! A template is checked when the site is read: every placeholder must be
//! one the context of that template knows (`{{node.name}}` in a provider
//! command, `{{alert.name}}` in a webhook body), so a typo is an error at its
//! file, line and column instead of an empty string at three in the morning.
//! Rendering escapes every substituted value for where it lands
//! ([`Escape`]): a node called `x; rm -rf /` becomes one shell word, and an
//! annotation with a quote stays valid JSON.
//!
//! `{{` … `}}` does not clash with HCL's own `${…}` interpolation, which the
//! file reader evaluates before a template is parsed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which placeholders a kind of template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceholderSet {
    /// Provider commands and hammer commands: the node acted on.
    Node,
    /// Notifier bodies and subjects: the alert (or escalation) being sent.
    Alert,
    /// A provider's `create` command: the node placeholders (filled with
    /// the new machine's name and asked-for labels) and `{{join_token}}`.
    NewMachine,
}

/// The fixed placeholders of node templates; `node.meta.<key>` and
/// `node.facts.<fact>` (a fact the agent registered, such as
/// `node.facts.cpu.arch`) are allowed too.
pub const NODE_PLACEHOLDERS: [&str; 6] =
    ["node.name", "node.id", "node.hostgroup", "node.environment", "node.owner", "node.zone"];

/// The fixed placeholders of a provider's `create` command: a fresh
/// single-use join token for the new machine's agent, and the node ones.
pub const NEW_MACHINE_PLACEHOLDERS: [&str; 7] =
    ["node.name", "node.id", "node.hostgroup", "node.environment", "node.owner", "node.zone", "join_token"];

/// The fixed placeholders of alert templates; `alert.labels.<key>` and
/// `alert.annotations.<key>` are allowed too.
pub const ALERT_PLACEHOLDERS: [&str; 9] = [
    "alert.id",
    "alert.name",
    "alert.status",
    "alert.severity",
    "alert.summary",
    "alert.runbook",
    "alert.starts_at",
    "alert.value",
    "alert.json",
];

impl PlaceholderSet {
    /// The fixed names and the prefixes under which any key is allowed.
    fn names_and_prefixes(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            PlaceholderSet::Node => (&NODE_PLACEHOLDERS, &["node.meta.", "node.facts."]),
            PlaceholderSet::Alert => (&ALERT_PLACEHOLDERS, &["alert.labels.", "alert.annotations."]),
            PlaceholderSet::NewMachine => (&NEW_MACHINE_PLACEHOLDERS, &["node.meta."]),
        }
    }

    fn allows(self, name: &str) -> bool {
        let (names, prefixes) = self.names_and_prefixes();
        names.contains(&name)
            || prefixes.iter().any(|prefix| {
                name.strip_prefix(prefix).is_some_and(|key| !key.is_empty() && key.chars().all(is_key_character))
            })
    }
}

fn is_key_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.')
}

/// How substituted values are escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Each value becomes one POSIX shell word (single-quoted when needed).
    Shell,
    /// Each value is escaped for the inside of a JSON string.
    JsonString,
    /// Values are inserted as they are (e-mail subjects).
    None,
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Text copied as written.
    Literal(String),
    /// A placeholder such as `node.name`.
    Placeholder(String),
}

/// A problem found while parsing a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Character offset of the problem in the template text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A checked template. Serialised as its text.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, accepting only placeholders of `set`. Every problem is
    /// returned, each with its character offset.
    pub fn parse(text: &str, set: PlaceholderSet) -> Result<Template, Vec<TemplateError>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut consumed_characters = 0;
        while let Some(open) = rest.find("{{") {
            literal.push_str(&rest[..open]);
            let open_offset = consumed_characters + rest[..open].chars().count();
            let after_open = &rest[open + 2..];
            let Some(close) = after_open.find("}}") else {
                errors
                    .push(TemplateError { offset: open_offset, message: "\"{{\" is not closed by \"}}\"".to_owned() });
                rest = "";
                break;
            };
            let name = after_open[..close].trim();
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            if set.allows(name) {
                parts.push(Part::Placeholder(name.to_owned()));
            } else {
                errors.push(TemplateError { offset: open_offset, message: unknown_placeholder_message(name, set) });
            }
            consumed_characters = open_offset + 2 + after_open[..close].chars().count() + 2;
            rest = &after_open[close + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if errors.is_empty() { Ok(Template { text: text.to_owned(), parts }) } else { Err(errors) }
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed pieces.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The placeholders used, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Placeholder(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the template with `lookup`'s values, escaped by `escape`.
    ///
    /// Fails with the names that `lookup` has no value for (a
    /// `{{node.meta.rack}}` on a node without that meta key): a command with
    /// a hole in it is never run.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>, escape: Escape) -> Result<String, Vec<String>> {
        let mut output = String::with_capacity(self.text.len());
        let mut missing = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => output.push_str(text),
                Part::Placeholder(name) => match lookup(name) {
                    Some(value) => escape_into(&mut output, &value, escape),
                    None => missing.push(name.clone()),
                },
            }
        }
        if missing.is_empty() { Ok(output) } else { Err(missing) }
    }
}

fn unknown_placeholder_message(name: &str, set: PlaceholderSet) -> String {
    let (names, prefixes) = set.names_and_prefixes();
    if name.is_empty() {
        return "empty placeholder \"{{}}\"".to_owned();
    }
    let suggestion = drover_types::suggest::did_you_mean(name, names.iter().copied());
    let known: Vec<String> = names
        .iter()
        .map(|known| format!("{{{{{known}}}}}"))
        .chain(prefixes.iter().map(|p| format!("{{{{{p}<key>}}}}")))
        .collect();
    format!("unknown placeholder \"{{{{{name}}}}}\"{suggestion} (known: {})", known.join(", "))
}

/// Appends `value` to `output`, escaped.
pub fn escape_into(output: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::None => output.push_str(value),
        Escape::Shell => output.push_str(&shell_quote(value)),
        Escape::JsonString => {
            for character in value.chars() {
                match character {
                    '"' => output.push_str("\\\""),
                    '\\' => output.push_str("\\\\"),
                    '\n' => output.push_str("\\n"),
                    '\r' => output.push_str("\\r"),
                    '\t' => output.push_str("\\t"),
                    control if u32::from(control) < 0x20 => {
                        output.push_str(&format!("\\u{:04x}", u32::from(control)));
                    }
                    other => output.push(other),
                }
            }
        }
    }
}

/// `value` as one POSIX shell word: unchanged when it only holds characters
/// no shell treats specially, else in single quotes (a `'` inside becomes
/// `'\''`).
pub fn shell_quote(value: &str) -> String {
    let is_plain = |character: char| character.is_ascii_alphanumeric() || "_@%+=:,./-".contains(character);
    if !value.is_empty() && value.chars().all(is_plain) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "'\\''"))
}

impl fmt::Debug for Template {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Template({:?})", self.text)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Deserialising cannot know the placeholder set, so it accepts the union
/// of all: templates in stored state were checked when the site was read
/// (a provider's `create` with `{{join_token}}` among them).
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text, PlaceholderSet::Node)
            .or_else(|_| Template::parse(&text, PlaceholderSet::NewMachine))
            .or_else(|_| Template::parse(&text, PlaceholderSet::Alert))
            .map_err(|errors| {
                serde::de::Error::custom(errors.first().map_or_else(String::new, |error| error.message.clone()))
            })
    }
}

/// The value of a node placeholder (`node.name`, `node.meta.rack`, …) for
/// `node`, or `None` when the node has no such value.
pub fn node_value(node: &drover_types::Node, placeholder: &str) -> Option<String> {
    if let Some(key) = placeholder.strip_prefix("node.meta.") {
        return node.meta.get(key).cloned();
    }
    let value = match placeholder {
        "node.name" => &node.name,
        "node.hostgroup" => &node.hostgroup,
        "node.environment" => &node.environment,
        "node.owner" => &node.owner,
        "node.zone" => &node.zone,
        "node.id" => return Some(node.id.to_string()),
        _ => return None,
    };
    Some(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_lookup(name: &str) -> Option<String> {
        match name {
            "node.name" => Some("batch07".to_owned()),
            "node.hostgroup" => Some("bi/batch".to_owned()),
            "node.meta.rack" => Some("it's r1; rm -rf /".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_create_template_with_a_join_token_survives_a_round_trip_through_json() {
        let template =
            Template::parse("boot {{node.name}} --token {{join_token}}", PlaceholderSet::NewMachine).unwrap();
        let json = serde_json::to_string(&template).unwrap();
        assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), template);
    }

    #[test]
    fn renders_node_commands_with_shell_quoting() {
        let template = Template::parse(
            "openstack server reboot --hard {{node.name}} --rack {{ node.meta.rack }}",
            PlaceholderSet::Node,
        )
        .unwrap();
        assert_eq!(
            template.render(node_lookup, Escape::Shell).unwrap(),
            "openstack server reboot --hard batch07 --rack 'it'\\''s r1; rm -rf /'"
        );
        assert_eq!(template.placeholders().collect::<Vec<_>>(), ["node.name", "node.meta.rack"]);
    }

    #[test]
    fn unknown_placeholders_are_refused_with_their_offset() {
        let errors =
            Template::parse("ipmitool -H {{node.nmae}}-bmc {{node.name}} {{alert.name}}", PlaceholderSet::Node)
                .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].offset, 12);
        assert!(errors[0].message.contains("did you mean \"node.name\""), "{}", errors[0].message);
        assert_eq!(errors[1].offset, 44);
        let unclosed = Template::parse("x {{node.name", PlaceholderSet::Node).unwrap_err();
        assert_eq!(unclosed[0].offset, 2);
    }

    #[test]
    fn missing_values_fail_the_render() {
        let template = Template::parse("ssh {{node.meta.bmc}}", PlaceholderSet::Node).unwrap();
        assert_eq!(template.render(node_lookup, Escape::Shell).unwrap_err(), ["node.meta.bmc"]);
    }

    #[test]
    fn json_escaping_keeps_bodies_valid() {
        let template = Template::parse("{\"text\": \"{{alert.summary}}\"}", PlaceholderSet::Alert).unwrap();
        let rendered = template.render(|_| Some("disk \"/tmp\"\nfull\\".to_owned()), Escape::JsonString).unwrap();
        assert_eq!(rendered, "{\"text\": \"disk \\\"/tmp\\\"\\nfull\\\\\"}");
    }

    #[test]
    fn shell_quote_cases() {
        assert_eq!(shell_quote("plain-name.example.org"), "plain-name.example.org");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }
}
