//! Properties of decisions: the rule a refusal names is the rule that
//! would allow the request.
//!
//! [`Permissions::missing`] tells a refused caller which line to add to
//! one of its policies; that line must read as a policy file, and with it
//! the request must be allowed. 512 cases per property by default;
//! `PROPTEST_CASES=20000` searches longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_acl::{Permissions, parse_policy};
use drover_types::Timestamp;
use drover_types::acl::{AclPolicy, AclScope, Capability};
use proptest::prelude::*;

/// A request: a scope, one of its capabilities, and a subject.
fn request() -> impl Strategy<Value = (AclScope, Capability, String)> {
    let subject = prop_oneof![
        4 => "[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}",
        1 => "[a-z*?\\[\\]\\\\/\"$%{}!^-]{0,12}",
        1 => any::<String>(),
    ];
    (prop::sample::select(AclScope::ALL.to_vec()), any::<prop::sample::Index>(), subject)
        .prop_map(|(scope, index, subject)| (scope, *index.get(scope.capabilities()), subject))
}

/// A request in a scope with a glob, on a subject that is not empty.
fn request_with_a_subject() -> impl Strategy<Value = (AclScope, Capability, String)> {
    let scopes: Vec<AclScope> = AclScope::ALL.into_iter().filter(|scope| scope.pattern_attribute().is_some()).collect();
    let subject = prop_oneof![
        4 => "[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}",
        1 => "[a-z*?\\[\\]\\\\/\"%{}!^-]{1,12}",
    ];
    (prop::sample::select(scopes), any::<prop::sample::Index>(), subject)
        .prop_map(|(scope, index, subject)| (scope, *index.get(scope.capabilities()), subject))
}

/// The policy line inside a refusal message.
fn rule_line(refusal: &str) -> &str {
    refusal.strip_prefix("needs ").and_then(|rest| rest.strip_suffix(" in one of its policies")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_missing_rule_allows_the_request((scope, capability, subject) in request()) {
        // Policies refuse `${` in globs (an unevaluated reference); no host
        // group, job name or variable path holds one.
        prop_assume!(!subject.contains("${"));
        let refusal = Permissions::none().missing(scope, capability, &subject);
        let line = rule_line(&refusal);
        let parsed = parse_policy("missing.hcl", line)
            .unwrap_or_else(|diagnostics| panic!("{refusal:?} does not read as a policy:\n{diagnostics}"));
        let policy = AclPolicy {
            name: "added".to_owned(),
            description: None,
            rules: parsed.rules,
            source: line.to_owned(),
            modified_at: Timestamp::ZERO,
        };
        let permissions = Permissions::compile(&[&policy]);
        // Subjects without a glob scope are ignored, and every subject is
        // matched when the scope has a glob.
        prop_assert!(permissions.allows(scope, capability, &subject), "{}", refusal);
        prop_assert!(permissions.allows_somewhere(scope, capability));
    }

    #[test]
    fn the_missing_rule_allows_little_else(
        (scope, capability, subject) in request_with_a_subject(),
        other in "[a-z0-9]{1,8}(/[a-z0-9]{1,8})?",
    ) {
        prop_assume!(other != subject);
        let refusal = Permissions::none().missing(scope, capability, &subject);
        let parsed = parse_policy("missing.hcl", rule_line(&refusal)).unwrap();
        let policy = AclPolicy {
            name: "added".to_owned(),
            description: None,
            rules: parsed.rules,
            source: String::new(),
            modified_at: Timestamp::ZERO,
        };
        prop_assert!(!Permissions::compile(&[&policy]).allows(scope, capability, &other));
    }
}
