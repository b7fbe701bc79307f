//! Policy files: HCL with one block per rule.
//!
//! ```hcl
//! description = "batch operators"          # optional, one line
//! node      { hostgroup = "bi/batch/**"  capabilities = ["read", "update", "drain", "exec"] }
//! job       { name = "*"                 capabilities = ["read", "submit", "stop"] }
//! logs      { hostgroup = "bi/batch/**"  capabilities = ["read"] }
//! site      { capabilities = ["read"] }
//! variables { path = "bi/*"  capabilities = ["read", "write"] }
//! operator  { capabilities = ["read"] }
//! acl       { capabilities = ["read"] }
//! ```
//!
//! Each block is one [`AclRule`]: its name is the scope, `capabilities`
//! lists what it grants (each one valid for the scope, see
//! [`AclScope::capabilities`]), and scopes narrowed by a glob take it in
//! the attribute [`AclScope::pattern_attribute`] names (`hostgroup`,
//! `name`, `path`). A scope may have several blocks; the rules keep file
//! order. Policy files take no variables: a policy is stored and
//! re-read as written, so what it grants must be in its text.
//!
//! [`parse_policy`] reports every problem of a file at once, each with its
//! file, line and column and what to write instead; the server runs the
//! same function when a policy is applied, so the CLI and the server refuse
//! the same files with the same messages.

use drover_filter::GlobPattern;
use drover_hcl::suggest::did_you_mean;
use drover_hcl::{BlockReader, Diagnostic, Diagnostics, Location, MAX_DEFINITION_BYTES, Source, VarInputs};
use drover_types::acl::{AclRule, AclScope, Capability};

/// The longest policy name, in characters.
pub const MAX_POLICY_NAME_CHARS: usize = 128;

/// The longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;

/// The longest glob of a rule, in characters.
pub const MAX_GLOB_CHARS: usize = 1024;

/// The glob attribute of every scope that has one, to recognise a glob
/// written on the wrong scope.
const GLOB_ATTRIBUTES: [&str; 3] = ["hostgroup", "name", "path"];

/// What a policy file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPolicy {
    /// The `description` line, if the file has one.
    pub description: Option<String>,
    /// The rules, in file order.
    pub rules: Vec<AclRule>,
}

/// Reads a policy file; `file_name` is how diagnostics name it.
///
/// # Errors
/// Every problem of the file, in reading order, each located at
/// `file:line:column` with what to do about it. A file larger than
/// [`MAX_DEFINITION_BYTES`] is refused without being parsed.
pub fn parse_policy(file_name: &str, text: &str) -> Result<ParsedPolicy, Diagnostics> {
    if text.len() as u64 > MAX_DEFINITION_BYTES {
        return Err(Diagnostic::without_position(
            file_name,
            format!(
                "the policy file is larger than {} MiB, the limit for a definition file: split it into several policies",
                MAX_DEFINITION_BYTES / (1024 * 1024)
            ),
        )
        .into());
    }
    let source = Source::new(file_name, text);
    let document = drover_hcl::parse(&source)?;
    let evaluation = document.evaluate(&VarInputs::default());
    let mut root = evaluation.root();
    if root.has("variable") {
        root.report(
            root.attribute_location("variable"),
            "a policy file takes no variable blocks: write the host groups, job names and paths out in its rules",
        );
    }
    root.unsupported(
        "namespace",
        "drover has no namespaces; grant jobs by name, such as job { name = \"web-*\" capabilities = [\"read\"] }",
    );
    root.unsupported(
        "agent",
        "agents are governed by node rules, such as node { hostgroup = \"**\" capabilities = [\"read\"] }",
    );
    let description = read_description(&mut root);
    let mut located_rules: Vec<(Location, AclRule)> = Vec::new();
    for scope in AclScope::ALL {
        for block in root.blocks(scope.as_str()) {
            let location = block.location();
            if let Some(rule) = read_rule(scope, block) {
                located_rules.push((location, rule));
            }
        }
    }
    root.finish();
    evaluation.finish()?;
    located_rules.sort_by_key(|(location, _)| *location);
    Ok(ParsedPolicy { description, rules: located_rules.into_iter().map(|(_, rule)| rule).collect() })
}

/// Checks the name a policy is applied under: 1 to
/// [`MAX_POLICY_NAME_CHARS`] characters from `A-Z a-z 0-9 . _ -`, not
/// starting with `.`.
///
/// # Errors
/// What is wrong with the name and how to name it.
pub fn check_policy_name(name: &str) -> Result<(), String> {
    const ALLOWED: &str = "use letters, digits, \".\", \"_\" and \"-\"";
    if name.is_empty() {
        return Err(format!("the policy name is empty: name it such as batch-operators ({ALLOWED})"));
    }
    let length = name.chars().count();
    if length > MAX_POLICY_NAME_CHARS {
        return Err(format!(
            "the policy name is {length} characters long, more than the limit of {MAX_POLICY_NAME_CHARS}: shorten it"
        ));
    }
    if let Some(character) =
        name.chars().find(|character| !(character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-')))
    {
        return Err(format!("the policy name {name:?} holds {character:?}, which a policy name cannot: {ALLOWED}"));
    }
    if name.starts_with('.') {
        return Err(format!(
            "the policy name {name:?} starts with \".\": start it with a letter, a digit, \"_\" or \"-\""
        ));
    }
    Ok(())
}

/// A rule as one line of a policy file, in the form the documentation
/// writes it: `node { hostgroup = "bi/**" capabilities = ["read", "drain"] }`.
/// [`parse_policy`] reads it back to the same rule.
pub fn format_rule(rule: &AclRule) -> String {
    let capabilities: Vec<String> = rule.capabilities.iter().map(|capability| format!("\"{capability}\"")).collect();
    let glob = match (rule.scope.pattern_attribute(), &rule.pattern) {
        (Some(attribute), Some(pattern)) => format!("{attribute} = {} ", hcl_string(pattern)),
        _ => String::new(),
    };
    format!("{} {{ {glob}capabilities = [{}] }}", rule.scope, capabilities.join(", "))
}

/// `text` as a quoted HCL string that evaluates back to `text` (quotes,
/// backslashes, control characters and template openings escaped).
pub(crate) fn hcl_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '$' | '%' if characters.peek() == Some(&'{') => {
                quoted.push(character);
                quoted.push(character);
            }
            control if control.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(control))),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// `a node rule`, `an acl rule`: how messages name a rule of `scope`.
fn a_rule(scope: AclScope) -> String {
    let article = if scope.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {scope} rule")
}

/// `read, submit, stop`: the capabilities a rule of `scope` may grant.
fn capability_list(scope: AclScope) -> String {
    scope.capabilities().iter().map(|capability| capability.as_str()).collect::<Vec<_>>().join(", ")
}

/// What a scope's glob is matched against, and the glob for everything.
fn glob_meaning(scope: AclScope) -> (&'static str, &'static str, &'static str) {
    match scope {
        AclScope::Job => ("the job names", "\"*\" for every job", "\"web-*\""),
        AclScope::Variables => ("the variable paths", "\"**\" for every path", "\"site/daq/*\""),
        AclScope::Node | AclScope::Logs | AclScope::Site | AclScope::Operator | AclScope::Acl => {
            ("the host groups", "\"**\" for every host group", "\"bi/batch/**\"")
        }
    }
}

fn read_description(root: &mut BlockReader<'_>) -> Option<String> {
    let description = root.string("description")?;
    let problem = if description.trim().is_empty() {
        Some("the description is empty: remove it, or write a line that says what the policy is for".to_owned())
    } else if description.contains(['\n', '\r']) {
        Some("the description is shown in listings and must be one line: shorten it to one".to_owned())
    } else if description.chars().count() > MAX_DESCRIPTION_CHARS {
        Some(format!(
            "the description is {} characters long, more than the limit of {MAX_DESCRIPTION_CHARS}: shorten it",
            description.chars().count()
        ))
    } else {
        None
    };
    match problem {
        Some(message) => {
            root.attribute_error("description", message);
            None
        }
        None => Some(description),
    }
}

/// Reads one rule block; `None` when it has a problem (recorded).
fn read_rule(scope: AclScope, mut block: BlockReader<'_>) -> Option<AclRule> {
    block.unsupported("policy", "write the capabilities out, such as capabilities = [\"read\"]");
    let pattern = match scope.pattern_attribute() {
        Some(attribute) => read_glob(scope, attribute, &mut block),
        None => {
            let valid = refuse_globs(scope, &mut block);
            valid.then_some(None)
        }
    };
    let capabilities = read_capabilities(scope, &mut block);
    block.finish();
    Some(AclRule { scope, pattern: pattern?, capabilities: capabilities? })
}

/// Reports the glob attributes of other scopes written on a rule of
/// `scope`, which has none; whether there was none.
fn refuse_globs(scope: AclScope, block: &mut BlockReader<'_>) -> bool {
    let mut valid = true;
    for attribute in GLOB_ATTRIBUTES {
        if !block.has(attribute) {
            continue;
        }
        let users: Vec<&str> = AclScope::ALL
            .iter()
            .filter(|other| other.pattern_attribute() == Some(attribute))
            .map(|other| other.as_str())
            .collect();
        block.attribute_error(
            attribute,
            format!(
                "{} takes no {attribute} (only {} rules are narrowed by one): remove it",
                a_rule(scope),
                users.join(" and ")
            ),
        );
        block.skip(attribute);
        valid = false;
    }
    valid
}

/// Reads the glob of a rule of `scope`, which has the glob `attribute`.
/// `Some(Some(glob))` when it is valid, `None` after a problem.
fn read_glob(scope: AclScope, attribute: &'static str, block: &mut BlockReader<'_>) -> Option<Option<String>> {
    let (subjects, everything, example) = glob_meaning(scope);
    let mut wrong_attribute = false;
    for other in GLOB_ATTRIBUTES.into_iter().filter(|other| *other != attribute) {
        if block.has(other) {
            block.attribute_error(
                other,
                format!(
                    "{} is narrowed by {attribute}, not {other}: write {attribute} = \"…\", the glob of {subjects} it applies to ({everything})",
                    a_rule(scope)
                ),
            );
            block.skip(other);
            wrong_attribute = true;
        }
    }
    if !block.has(attribute) {
        if !wrong_attribute {
            block.error(format!(
                "{} needs {attribute} = \"…\", the glob of {subjects} it applies to ({everything})",
                a_rule(scope)
            ));
        }
        return None;
    }
    let glob = block.string(attribute)?;
    let problem = if glob.is_empty() {
        Some(format!("{attribute} of {} is empty: write {everything}, or a glob such as {example}", a_rule(scope)))
    } else if glob.chars().count() > MAX_GLOB_CHARS {
        Some(format!(
            "{attribute} of {} is {} characters long, more than the limit of {MAX_GLOB_CHARS}: write a shorter glob",
            a_rule(scope),
            glob.chars().count()
        ))
    } else if glob.contains("${") {
        Some(format!(
            "{attribute} of {} holds a ${{…}} reference, which policies do not evaluate: write the glob out",
            a_rule(scope)
        ))
    } else {
        GlobPattern::new(&glob).err().map(|reason| format!("the glob {glob:?} of {} {reason}", a_rule(scope)))
    };
    if let Some(message) = problem {
        block.attribute_error(attribute, message);
        return None;
    }
    if wrong_attribute {
        return None;
    }
    Some(Some(glob))
}

/// Reads `capabilities` of a rule of `scope`; `None` after a problem.
fn read_capabilities(scope: AclScope, block: &mut BlockReader<'_>) -> Option<Vec<Capability>> {
    let grants = format!("{} grants {}", a_rule(scope), capability_list(scope));
    if !block.has("capabilities") {
        block
            .error(format!("{} needs a capabilities list, such as capabilities = [\"read\"]; {grants}", a_rule(scope)));
        return None;
    }
    let names = block.string_list("capabilities")?;
    let location = block.attribute_location("capabilities");
    if names.is_empty() {
        block.report(
            location,
            format!("the capabilities of {} are empty: list what it grants; {grants}", a_rule(scope)),
        );
        return None;
    }
    let mut granted: Vec<Capability> = Vec::with_capacity(names.len());
    let mut valid = true;
    for name in &names {
        let message = match Capability::ALL.into_iter().find(|capability| capability.as_str() == name) {
            None => {
                let suggestion = did_you_mean(name, scope.capabilities().iter().map(|capability| capability.as_str()));
                format!("{name:?} is not a capability; {grants}{suggestion}")
            }
            Some(capability) if !scope.capabilities().contains(&capability) => {
                format!("{name:?} is not a capability of {}; {grants}", a_rule(scope))
            }
            Some(capability) if granted.contains(&capability) => {
                format!("{name:?} is listed twice in the capabilities of {}: remove one", a_rule(scope))
            }
            Some(capability) => {
                granted.push(capability);
                continue;
            }
        };
        block.report(location, message);
        valid = false;
    }
    valid.then_some(granted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> Result<ParsedPolicy, String> {
        parse_policy("ops.hcl", text).map_err(|diagnostics| diagnostics.to_string())
    }

    fn rule(scope: AclScope, pattern: Option<&str>, capabilities: &[Capability]) -> AclRule {
        AclRule { scope, pattern: pattern.map(str::to_owned), capabilities: capabilities.to_vec() }
    }

    #[test]
    fn the_documented_example_reads_in_file_order() {
        let text = "description = \"batch operators\"\n\
                    node      { hostgroup = \"bi/batch/**\"  capabilities = [\"read\", \"update\", \"drain\", \"exec\"] }\n\
                    job       { name = \"*\"                 capabilities = [\"read\", \"submit\", \"stop\"] }\n\
                    logs      { hostgroup = \"bi/batch/**\"  capabilities = [\"read\"] }\n\
                    site      { capabilities = [\"read\"] }\n\
                    variables { path = \"bi/*\"  capabilities = [\"read\", \"write\"] }\n\
                    operator  { capabilities = [\"read\"] }\n\
                    acl       { capabilities = [\"read\"] }\n\
                    node      { hostgroup = \"belle2/**\"  capabilities = [\"read\"] }\n";
        let policy = parse(text).unwrap();
        assert_eq!(policy.description.as_deref(), Some("batch operators"));
        use Capability::*;
        assert_eq!(
            policy.rules,
            vec![
                rule(AclScope::Node, Some("bi/batch/**"), &[Read, Update, Drain, Exec]),
                rule(AclScope::Job, Some("*"), &[Read, Submit, Stop]),
                rule(AclScope::Logs, Some("bi/batch/**"), &[Read]),
                rule(AclScope::Site, None, &[Read]),
                rule(AclScope::Variables, Some("bi/*"), &[Read, Write]),
                rule(AclScope::Operator, None, &[Read]),
                rule(AclScope::Acl, None, &[Read]),
                rule(AclScope::Node, Some("belle2/**"), &[Read]),
            ]
        );
    }

    #[test]
    fn an_empty_file_grants_nothing() {
        assert_eq!(parse("").unwrap(), ParsedPolicy { description: None, rules: Vec::new() });
        assert_eq!(parse("# nothing\n").unwrap().rules, Vec::new());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_position() {
        let text = "nde { hostgroup = \"x\" capabilities = [\"read\"] }\n\
                    job { name = \"*\" capabilities = [\"drain\"] }\n\
                    site { capabilities = [] }\n";
        assert_eq!(
            parse(text).unwrap_err(),
            "ops.hcl:1:1: unknown block \"nde\" in the file; did you mean \"node\"?\n\
             ops.hcl:2:33: \"drain\" is not a capability of a job rule; a job rule grants read, submit, stop\n\
             ops.hcl:3:23: the capabilities of a site rule are empty: list what it grants; a site rule grants read, apply, hammer-approve"
        );
    }

    #[test]
    fn unknown_capabilities_get_a_suggestion_from_their_scope() {
        assert_eq!(
            parse("node { hostgroup = \"**\" capabilities = [\"raed\", \"exec_as_root\"] }").unwrap_err(),
            "ops.hcl:1:40: \"raed\" is not a capability; a node rule grants read, update, drain, protect, exec, exec-as-root; did you mean \"read\"?\n\
             ops.hcl:1:40: \"exec_as_root\" is not a capability; a node rule grants read, update, drain, protect, exec, exec-as-root; did you mean \"exec-as-root\"?"
        );
        assert_eq!(
            parse("acl { capabilities = [\"banana\"] }").unwrap_err(),
            "ops.hcl:1:22: \"banana\" is not a capability; an acl rule grants read, write"
        );
    }

    #[test]
    fn rules_print_as_policy_lines_that_read_back() {
        let rules = vec![
            rule(AclScope::Node, Some("bi/\"x\"/%{y}\\**"), &[Capability::Read, Capability::ExecAsRoot]),
            rule(AclScope::Operator, None, &[Capability::Write]),
        ];
        let printed: Vec<String> = rules.iter().map(format_rule).collect();
        assert_eq!(printed[1], "operator { capabilities = [\"write\"] }");
        assert_eq!(
            printed[0],
            "node { hostgroup = \"bi/\\\"x\\\"/%%{y}\\\\**\" capabilities = [\"read\", \"exec-as-root\"] }"
        );
        assert_eq!(parse(&printed.join("\n")).unwrap().rules, rules);
    }

    #[test]
    fn policy_names() {
        assert_eq!(check_policy_name("batch-operators"), Ok(()));
        assert_eq!(check_policy_name("a.b_C-9"), Ok(()));
        assert_eq!(check_policy_name(&"x".repeat(MAX_POLICY_NAME_CHARS)), Ok(()));
        assert_eq!(
            check_policy_name("").unwrap_err(),
            "the policy name is empty: name it such as batch-operators (use letters, digits, \".\", \"_\" and \"-\")"
        );
        assert_eq!(
            check_policy_name(&"x".repeat(MAX_POLICY_NAME_CHARS + 1)).unwrap_err(),
            "the policy name is 129 characters long, more than the limit of 128: shorten it"
        );
        assert_eq!(
            check_policy_name("batch ops").unwrap_err(),
            "the policy name \"batch ops\" holds ' ', which a policy name cannot: use letters, digits, \".\", \"_\" and \"-\""
        );
        assert_eq!(
            check_policy_name("bi/ops").unwrap_err(),
            "the policy name \"bi/ops\" holds '/', which a policy name cannot: use letters, digits, \".\", \"_\" and \"-\""
        );
        assert_eq!(
            check_policy_name(".hidden").unwrap_err(),
            "the policy name \".hidden\" starts with \".\": start it with a letter, a digit, \"_\" or \"-\""
        );
    }
}
