//! Deciding requests: what a token's policies allow.
//!
//! [`Permissions`] is compiled once per token from its policies (the globs
//! with them) and answers "may this caller do `capability` in `scope` on
//! `subject`?". The subject is what the scope's glob is matched against:
//! the host group of a node (`node`, `logs`), the name of a job (`job`) or
//! the path of a variable (`variables`); `""` for the other scopes. A node
//! without a host group has the subject `""`, which `*` and `**` match and
//! no other glob does.
//!
//! | Scope       | Glob, matched against                  | Capability       | Allows |
//! |-------------|----------------------------------------|------------------|--------|
//! | `node`      | `hostgroup`: the node's host group     | `read`           | seeing nodes and their attributes |
//! |             |                                        | `update`         | changing a node's labels and eligibility |
//! |             |                                        | `drain`          | draining a node |
//! |             |                                        | `protect`        | protecting and unprotecting a node |
//! |             |                                        | `exec`           | running commands on a node as a user other than root (`drover exec -u USER`) |
//! |             |                                        | `exec-as-root`   | running commands on a node as root; implies `exec` |
//! | `job`       | `name`: the job's name                 | `read`           | seeing jobs and their allocations, evaluations and deployments |
//! |             |                                        | `submit`         | registering, planning, reverting and promoting jobs |
//! |             |                                        | `stop`           | stopping jobs |
//! | `logs`      | `hostgroup`: the host group of the node a line came from | `read` | searching and reading indexed log lines |
//! | `site`      | —                                      | `read`           | seeing the site definition, alerts and hammers |
//! |             |                                        | `apply`          | applying a site definition; silencing and acknowledging alerts |
//! |             |                                        | `hammer-approve` | approving or denying a hammer run |
//! | `variables` | `path`: the variable's path            | `read`           | reading variables |
//! |             |                                        | `write`          | creating, changing and deleting variables (not reading them) |
//! | `operator`  | —                                      | `read`           | seeing the servers and Raft membership |
//! |             |                                        | `write`          | changing membership, taking and restoring snapshots |
//! | `acl`       | —                                      | `read`           | seeing tokens (never their secrets), policies, join tokens and the audit log |
//! |             |                                        | `write`          | creating and deleting tokens, policies and join tokens; this can grant anything, so it is worth a management token |
//!
//! How rules combine:
//!
//! - Nothing is allowed unless a rule grants it. Capabilities add up across
//!   the rules of a policy and the policies of a token; no rule takes
//!   anything away, so the order of rules and policies does not matter.
//! - One capability implies another: `exec-as-root` implies `exec` (who may
//!   run commands as root may run them as the exec user). Nothing else is
//!   implied; in particular no capability implies `read`, and `write` on
//!   variables does not allow reading them: list every capability a person
//!   needs.
//! - In globs, `*` and `?` stay within one `/`-separated segment and `**`
//!   crosses segments: `bi/batch/**` matches `bi/batch/x` and
//!   `bi/batch/x/y`, never `belle2/x`, nor `bi/batch` itself (write a rule
//!   for it too when nodes sit in it). Job names have no `/`, so `*` is
//!   every job.
//! - A management token allows everything, in every scope.
//! - A listing shows what the caller may read: when a rule of the scope
//!   grants the capability for some subjects ([`Permissions::allows_somewhere`]),
//!   the list is filtered to those; when none does, the request is refused.

use drover_filter::GlobPattern;
use drover_types::acl::{AclPolicy, AclRule, AclScope, Capability};

use crate::policy::format_rule;

/// What a caller may do, compiled from its token's policies.
#[derive(Clone, Debug)]
pub struct Permissions {
    management: bool,
    rules: Vec<CompiledRule>,
}

/// A rule with its glob compiled and its implied capabilities added.
#[derive(Clone, Debug)]
struct CompiledRule {
    scope: AclScope,
    /// `None` for the scopes without a glob.
    pattern: Option<GlobPattern>,
    capabilities: Vec<Capability>,
}

impl CompiledRule {
    /// The rule ready for decisions, or `None` when it does not fit its
    /// scope (a glob missing, present where the scope has none, or
    /// malformed): such a rule grants nothing. Capabilities the scope does
    /// not take are dropped.
    fn compile(rule: &AclRule) -> Option<CompiledRule> {
        let pattern = match (rule.scope.pattern_attribute(), &rule.pattern) {
            (Some(_), Some(text)) => Some(GlobPattern::new(text).ok()?),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => return None,
        };
        let mut capabilities: Vec<Capability> = rule
            .capabilities
            .iter()
            .copied()
            .filter(|capability| rule.scope.capabilities().contains(capability))
            .collect();
        if capabilities.contains(&Capability::ExecAsRoot) && !capabilities.contains(&Capability::Exec) {
            capabilities.push(Capability::Exec);
        }
        Some(CompiledRule { scope: rule.scope, pattern, capabilities })
    }

    fn grants(&self, scope: AclScope, capability: Capability) -> bool {
        self.scope == scope && self.capabilities.contains(&capability)
    }

    fn applies_to(&self, subject: &str) -> bool {
        self.pattern.as_ref().is_none_or(|pattern| pattern.matches(subject))
    }
}

impl Permissions {
    /// A management token's permissions: everything, everywhere.
    pub fn management() -> Permissions {
        Permissions { management: true, rules: Vec::new() }
    }

    /// Nothing at all.
    pub fn none() -> Permissions {
        Permissions { management: false, rules: Vec::new() }
    }

    /// The union of what `policies` grant. Policies were checked by
    /// [`crate::parse_policy`] when applied; a rule that does not fit its
    /// scope anyway (a glob that does not compile, or missing) grants
    /// nothing, and the rest of its policy still applies.
    pub fn compile(policies: &[&AclPolicy]) -> Permissions {
        let rules = policies.iter().flat_map(|policy| policy.rules.iter()).filter_map(CompiledRule::compile).collect();
        Permissions { management: false, rules }
    }

    /// Whether these are a management token's permissions.
    pub fn is_management(&self) -> bool {
        self.management
    }

    /// Whether the caller may do `capability` in `scope` on `subject` (a
    /// host group, job name or variable path; `""` for scopes without a
    /// glob and for nodes without a host group).
    ///
    /// # Panics
    /// In debug builds, when `scope` never grants `capability` (asking
    /// whether a job may be drained is a bug in the caller).
    pub fn allows(&self, scope: AclScope, capability: Capability, subject: &str) -> bool {
        debug_assert_valid(scope, capability);
        self.management || self.rules.iter().any(|rule| rule.grants(scope, capability) && rule.applies_to(subject))
    }

    /// Whether some rule grants `capability` in `scope`, for some subject:
    /// a listing is then filtered with [`Permissions::allows`] rather than
    /// refused.
    ///
    /// # Panics
    /// In debug builds, when `scope` never grants `capability`.
    pub fn allows_somewhere(&self, scope: AclScope, capability: Capability) -> bool {
        debug_assert_valid(scope, capability);
        self.management || self.rules.iter().any(|rule| rule.grants(scope, capability))
    }

    /// The globs of the rules granting `capability` in `scope`, or `None`
    /// when every subject is granted (management, or a rule whose glob is
    /// `**`): what a search is narrowed to, so that a caller never sees
    /// (nor counts) what it may not.
    pub fn patterns(&self, scope: AclScope, capability: Capability) -> Option<Vec<String>> {
        debug_assert_valid(scope, capability);
        if self.management {
            return None;
        }
        let mut globs = Vec::new();
        for rule in self.rules.iter().filter(|rule| rule.grants(scope, capability)) {
            match &rule.pattern {
                None => return None,
                Some(pattern) if pattern.as_str() == "**" => return None,
                Some(pattern) => globs.push(pattern.as_str().to_owned()),
            }
        }
        Some(globs)
    }

    /// The end of a refusal: the rule that would allow the request, such as
    /// `needs node { hostgroup = "belle2/x" capabilities = ["exec"] } in
    /// one of its policies`, to follow the caller's name (`token "ci"
    /// needs …`). The glob in it matches exactly `subject` (`"*"` for the
    /// empty subject of a node without a host group), and the rule reads as
    /// a line of a policy file (for any subject without `${`, which no host
    /// group, job name or variable path holds).
    ///
    /// # Panics
    /// In debug builds, when `scope` never grants `capability`.
    pub fn missing(&self, scope: AclScope, capability: Capability, subject: &str) -> String {
        debug_assert_valid(scope, capability);
        let pattern = scope
            .pattern_attribute()
            .map(|_| if subject.is_empty() { "*".to_owned() } else { glob_matching_exactly(subject) });
        let rule = AclRule { scope, pattern, capabilities: vec![capability] };
        format!("needs {} in one of its policies", format_rule(&rule))
    }
}

fn debug_assert_valid(scope: AclScope, capability: Capability) {
    debug_assert!(
        scope.capabilities().contains(&capability),
        "{capability} is not a capability of the {scope} scope; it never grants it"
    );
}

/// A glob that matches `text` and nothing else: the glob's special
/// characters (`*`, `?`, `[`, `\`) escaped with `\`.
fn glob_matching_exactly(text: &str) -> String {
    let mut glob = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | '\\') {
            glob.push('\\');
        }
        glob.push(character);
    }
    glob
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use drover_types::Timestamp;

    use super::*;
    use crate::parse_policy;

    fn policy(name: &str, text: &str) -> AclPolicy {
        let parsed = parse_policy(name, text).unwrap();
        AclPolicy {
            name: name.to_owned(),
            description: parsed.description,
            rules: parsed.rules,
            source: text.to_owned(),
            modified_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn host_group_globs_cross_segments_with_two_stars_only() {
        let operators = policy("ops", "node { hostgroup = \"bi/batch/**\" capabilities = [\"read\", \"drain\"] }");
        let permissions = Permissions::compile(&[&operators]);
        assert!(permissions.allows(AclScope::Node, Capability::Drain, "bi/batch/x/y"));
        assert!(permissions.allows(AclScope::Node, Capability::Drain, "bi/batch/x"));
        // Not the group itself: that takes a rule of its own.
        assert!(!permissions.allows(AclScope::Node, Capability::Drain, "bi/batch"));
        assert!(!permissions.allows(AclScope::Node, Capability::Drain, "belle2/x"));
        assert!(!permissions.allows(AclScope::Node, Capability::Drain, "bi/batchx"));
        assert!(!permissions.allows(AclScope::Node, Capability::Drain, ""));
        assert!(!permissions.allows(AclScope::Node, Capability::Exec, "bi/batch/x"));
        // The same host group in another scope is another question.
        assert!(!permissions.allows(AclScope::Logs, Capability::Read, "bi/batch/x"));

        let one_level =
            Permissions::compile(&[&policy("one", "node { hostgroup = \"bi/*\" capabilities = [\"read\"] }")]);
        assert!(one_level.allows(AclScope::Node, Capability::Read, "bi/batch"));
        assert!(!one_level.allows(AclScope::Node, Capability::Read, "bi/batch/x"));
    }

    #[test]
    fn a_node_without_a_host_group_is_matched_by_stars_only() {
        for glob in ["*", "**"] {
            let text = format!("node {{ hostgroup = \"{glob}\" capabilities = [\"read\"] }}");
            let permissions = Permissions::compile(&[&policy("all", &text)]);
            assert!(permissions.allows(AclScope::Node, Capability::Read, ""), "{glob}");
        }
    }

    #[test]
    fn capabilities_add_up_across_rules_and_policies() {
        let readers = policy(
            "readers",
            "job { name = \"*\" capabilities = [\"read\"] }\njob { name = \"web-*\" capabilities = [\"submit\"] }",
        );
        let stoppers = policy("stoppers", "job { name = \"web-1\" capabilities = [\"stop\"] }");
        let permissions = Permissions::compile(&[&readers, &stoppers]);
        assert!(permissions.allows(AclScope::Job, Capability::Read, "batch"));
        assert!(permissions.allows(AclScope::Job, Capability::Submit, "web-2"));
        assert!(!permissions.allows(AclScope::Job, Capability::Submit, "batch"));
        assert!(permissions.allows(AclScope::Job, Capability::Stop, "web-1"));
        assert!(!permissions.allows(AclScope::Job, Capability::Stop, "web-2"));
        // Order does not matter.
        let reversed = Permissions::compile(&[&stoppers, &readers]);
        assert!(reversed.allows(AclScope::Job, Capability::Stop, "web-1"));
        assert!(reversed.allows(AclScope::Job, Capability::Submit, "web-2"));
    }

    #[test]
    fn exec_as_root_implies_exec_and_nothing_else_is_implied() {
        let root =
            Permissions::compile(&[&policy("root", "node { hostgroup = \"**\" capabilities = [\"exec-as-root\"] }")]);
        assert!(root.allows(AclScope::Node, Capability::ExecAsRoot, "a"));
        assert!(root.allows(AclScope::Node, Capability::Exec, "a"));
        assert!(!root.allows(AclScope::Node, Capability::Read, "a"));

        let exec = Permissions::compile(&[&policy("exec", "node { hostgroup = \"**\" capabilities = [\"exec\"] }")]);
        assert!(!exec.allows(AclScope::Node, Capability::ExecAsRoot, "a"));

        let writers =
            Permissions::compile(&[&policy("writers", "variables { path = \"**\" capabilities = [\"write\"] }")]);
        assert!(writers.allows(AclScope::Variables, Capability::Write, "site/daq/version"));
        assert!(!writers.allows(AclScope::Variables, Capability::Read, "site/daq/version"));
    }

    #[test]
    fn scopes_without_a_glob_ignore_the_subject() {
        let permissions = Permissions::compile(&[&policy("site", "site { capabilities = [\"apply\"] }")]);
        assert!(permissions.allows(AclScope::Site, Capability::Apply, ""));
        assert!(permissions.allows(AclScope::Site, Capability::Apply, "anything"));
        assert!(!permissions.allows(AclScope::Site, Capability::HammerApprove, ""));
        assert!(!permissions.allows(AclScope::Operator, Capability::Read, ""));
    }

    #[test]
    fn management_allows_everything_and_none_nothing() {
        let management = Permissions::management();
        let none = Permissions::none();
        assert!(management.is_management());
        assert!(!none.is_management());
        assert!(!Permissions::compile(&[]).is_management());
        for scope in AclScope::ALL {
            for capability in scope.capabilities() {
                assert!(management.allows(scope, *capability, "belle2/x"));
                assert!(management.allows_somewhere(scope, *capability));
                assert!(!none.allows(scope, *capability, ""));
                assert!(!none.allows_somewhere(scope, *capability));
            }
        }
    }

    #[test]
    fn allowed_somewhere_decides_between_filtering_and_refusing() {
        let permissions =
            Permissions::compile(&[&policy("ops", "logs { hostgroup = \"bi/**\" capabilities = [\"read\"] }")]);
        assert!(permissions.allows_somewhere(AclScope::Logs, Capability::Read));
        assert!(!permissions.allows_somewhere(AclScope::Node, Capability::Read));
    }

    #[test]
    fn rules_that_do_not_fit_their_scope_grant_nothing() {
        let broken = AclPolicy {
            name: "broken".to_owned(),
            description: None,
            rules: vec![
                AclRule {
                    scope: AclScope::Node,
                    pattern: Some("bi/[x".to_owned()),
                    capabilities: vec![Capability::Read],
                },
                AclRule { scope: AclScope::Node, pattern: None, capabilities: vec![Capability::Drain] },
                AclRule { scope: AclScope::Site, pattern: Some("**".to_owned()), capabilities: vec![Capability::Read] },
                AclRule { scope: AclScope::Job, pattern: Some("*".to_owned()), capabilities: vec![Capability::Drain] },
                AclRule { scope: AclScope::Job, pattern: Some("web".to_owned()), capabilities: vec![Capability::Stop] },
            ],
            source: String::new(),
            modified_at: Timestamp::from_millis(0),
        };
        let permissions = Permissions::compile(&[&broken]);
        assert!(!permissions.allows_somewhere(AclScope::Node, Capability::Read));
        assert!(!permissions.allows_somewhere(AclScope::Node, Capability::Drain));
        assert!(!permissions.allows_somewhere(AclScope::Site, Capability::Read));
        assert!(!permissions.allows_somewhere(AclScope::Job, Capability::Read));
        assert!(permissions.allows(AclScope::Job, Capability::Stop, "web"));
    }

    #[test]
    fn refusals_name_the_missing_rule() {
        let none = Permissions::none();
        assert_eq!(
            none.missing(AclScope::Node, Capability::Exec, "belle2/x"),
            "needs node { hostgroup = \"belle2/x\" capabilities = [\"exec\"] } in one of its policies"
        );
        assert_eq!(
            none.missing(AclScope::Site, Capability::HammerApprove, ""),
            "needs site { capabilities = [\"hammer-approve\"] } in one of its policies"
        );
        assert_eq!(
            none.missing(AclScope::Node, Capability::Drain, ""),
            "needs node { hostgroup = \"*\" capabilities = [\"drain\"] } in one of its policies"
        );
        assert_eq!(
            none.missing(AclScope::Variables, Capability::Read, "odd/*name"),
            "needs variables { path = \"odd/\\\\*name\" capabilities = [\"read\"] } in one of its policies"
        );
    }

    #[test]
    fn exact_globs_match_only_their_text() {
        for text in ["a*b", "a?b", "[x]", "a\\b", "plain/path", "**"] {
            let glob = GlobPattern::new(&glob_matching_exactly(text)).unwrap();
            assert!(glob.matches(text), "{text}");
        }
        let star = GlobPattern::new(&glob_matching_exactly("a*b")).unwrap();
        assert!(!star.matches("axb"));
    }
}
