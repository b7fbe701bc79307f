//! No input makes access control panic: arbitrary text, soups of the
//! policy grammar's tokens and edits of valid policy files into the policy
//! reader; arbitrary text into the join-token and secret checks; arbitrary
//! rules and subjects into the decisions. Everything ends in `Ok`, in an
//! error that prints, or in a yes or no.
//!
//! Also here, because it is the same hostile-input question: a join token
//! printed from generated parts reads back to the same parts, and no error
//! message about a token repeats its secret.
//!
//! 512 cases per property by default; `PROPTEST_CASES=20000` searches
//! longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_acl::{
    JoinTokenText, Permissions, check_policy_name, check_secret_shape, format_rule, hash_secret, parse_policy,
    secret_matches,
};
use drover_types::Timestamp;
use drover_types::acl::{AclPolicy, AclRule, AclScope, Capability};
use proptest::prelude::*;

const SEED_FILES: [&str; 3] = [
    include_str!("golden/ok_example.hcl"),
    include_str!("golden/ok_multi_line_blocks.hcl"),
    include_str!("golden/error_many.hcl"),
];

/// Pieces of a policy file, right and wrong.
const POLICY_TOKENS: &[&str] = &[
    "description",
    "node",
    "job",
    "logs",
    "site",
    "variables",
    "operator",
    "acl",
    "nde",
    "namespace",
    "variable",
    "hostgroup",
    "name",
    "path",
    "policy",
    "capabilities",
    "\"read\"",
    "\"write\"",
    "\"exec-as-root\"",
    "\"drain\"",
    "\"raed\"",
    "\"\"",
    "\"**\"",
    "\"*\"",
    "\"bi/batch/**\"",
    "\"[\"",
    "\"a/[z-a]\"",
    "\"\\\\\"",
    "\"${var.x}\"",
    "\"${node.hostgroup}\"",
    "\"%{ if true }x%{ endif }\"",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    "\"",
    "\n",
    " ",
    "#",
    "//",
    "/*",
    "*/",
    "<<EOT\n",
    "\nEOT\n",
    "null",
    "true",
    "1e400",
    "-1",
    "é",
    "\u{feff}",
    "\0",
];

/// Pieces of join tokens and secrets.
const TOKEN_PIECES: &[&str] = &[
    "drover1.",
    "drover2.",
    "drover",
    "DROVER1.",
    ".",
    "..",
    "0123456789abcdef",
    "0123456789ABCDEF",
    "fedcba98",
    "g",
    " ",
    "\n",
    "\t",
    "é",
    "\u{301}",
    "😀",
    "",
];

fn check_policy(text: &str) {
    match parse_policy("fuzz.hcl", text) {
        Ok(policy) => {
            // What reads is printable, reads back the same, and compiles.
            let printed: Vec<String> = policy.rules.iter().map(format_rule).collect();
            let reread = parse_policy("printed.hcl", &printed.join("\n")).unwrap();
            assert_eq!(reread.rules, policy.rules, "{text:?}");
            let applied = AclPolicy {
                name: "fuzz".to_owned(),
                description: policy.description,
                rules: policy.rules,
                source: text.to_owned(),
                modified_at: Timestamp::ZERO,
            };
            let permissions = Permissions::compile(&[&applied]);
            for scope in AclScope::ALL {
                for capability in scope.capabilities() {
                    let _ = permissions.allows(scope, *capability, "bi/batch/x");
                    let _ = permissions.allows_somewhere(scope, *capability);
                }
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "{text:?}");
            assert!(diagnostics.iter().all(|diagnostic| !diagnostic.message.is_empty()), "{text:?}");
            let _ = diagnostics.to_string();
        }
    }
}

fn check_join_token(text: &str) {
    match JoinTokenText::parse(text) {
        Ok(token) => {
            assert_eq!(JoinTokenText::parse(&token.to_string()).as_ref(), Ok(&token), "{text:?}");
            assert_eq!(token.to_string(), text.trim());
        }
        Err(message) => assert!(!message.is_empty()),
    }
}

/// Text made of `tokens`.
fn soup(tokens: &'static [&'static str], max_len: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..max_len).prop_map(|pieces| pieces.concat())
}

/// `text` with the pieces at `edits` (position, piece) put in place of one
/// character each.
fn edit(text: &str, edits: &[(usize, usize)], pieces: &[&str]) -> String {
    let mut characters: Vec<char> = text.chars().collect();
    for (position, piece) in edits {
        let replacement: Vec<char> = pieces[piece % pieces.len()].chars().collect();
        if characters.is_empty() {
            characters = replacement;
            continue;
        }
        let index = position % characters.len();
        characters.splice(index..=index, replacement);
    }
    characters.into_iter().collect()
}

fn hex(length: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), length)
        .prop_map(|digits| digits.into_iter().map(char::from).collect())
}

fn scope() -> impl Strategy<Value = AclScope> {
    prop::sample::select(AclScope::ALL.to_vec())
}

/// A rule of any shape, fitting its scope or not.
fn any_rule() -> impl Strategy<Value = AclRule> {
    (
        scope(),
        prop::option::of(prop_oneof!["[a-z*?/\\[\\]\\\\!^-]{0,12}", any::<String>()]),
        prop::collection::vec(prop::sample::select(Capability::ALL.to_vec()), 0..4),
    )
        .prop_map(|(scope, pattern, capabilities)| AclRule { scope, pattern, capabilities })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn policies_of_arbitrary_text_never_panic(text in any::<String>()) {
        check_policy(&text);
    }

    #[test]
    fn policies_of_tokens_never_panic(text in soup(POLICY_TOKENS, 60)) {
        check_policy(&text);
    }

    #[test]
    fn edited_policies_never_panic(
        seed in 0..SEED_FILES.len(),
        edits in prop::collection::vec((any::<usize>(), any::<usize>()), 1..6),
    ) {
        check_policy(&edit(SEED_FILES[seed], &edits, POLICY_TOKENS));
    }

    #[test]
    fn policies_with_a_character_deleted_never_panic(seed in 0..SEED_FILES.len(), position in any::<usize>()) {
        let mut characters: Vec<char> = SEED_FILES[seed].chars().collect();
        characters.remove(position % characters.len());
        check_policy(&characters.into_iter().collect::<String>());
    }

    #[test]
    fn policy_names_never_panic(name in any::<String>()) {
        let _ = check_policy_name(&name);
    }

    #[test]
    fn join_tokens_of_arbitrary_text_never_panic(text in any::<String>()) {
        check_join_token(&text);
    }

    #[test]
    fn join_tokens_of_pieces_never_panic(text in soup(TOKEN_PIECES, 12)) {
        check_join_token(&text);
    }

    #[test]
    fn join_tokens_read_back_as_printed(ca_sha256 in hex(64), secret in hex(64)) {
        let token = JoinTokenText { ca_sha256, secret };
        prop_assert_eq!(JoinTokenText::parse(&token.to_string()), Ok(token.clone()));
        prop_assert_eq!(JoinTokenText::parse(&format!(" {token}\r\n")), Ok(token));
    }

    #[test]
    fn edited_join_tokens_are_refused_without_their_secret(
        ca_sha256 in hex(64),
        secret in hex(64),
        edits in prop::collection::vec((any::<usize>(), any::<usize>()), 1..4),
    ) {
        let token = JoinTokenText { ca_sha256, secret: secret.clone() };
        let edited = edit(&token.to_string(), &edits, TOKEN_PIECES);
        match JoinTokenText::parse(&edited) {
            Ok(parsed) => prop_assert_eq!(parsed.to_string(), edited.trim()),
            Err(message) => prop_assert!(!message.contains(&secret[..16]), "{}", message),
        }
    }

    #[test]
    fn secret_checks_never_panic(secret in any::<String>(), hash in any::<String>()) {
        if let Err(message) = check_secret_shape(&secret) {
            prop_assert!(!message.is_empty());
        }
        let _ = secret_matches(&secret, &hash);
        prop_assert!(secret_matches(&secret, &hash_secret(&secret)));
    }

    #[test]
    fn decisions_on_arbitrary_rules_never_panic(
        rules in prop::collection::vec(any_rule(), 0..6),
        subject in prop_oneof!["[a-z*?/\\[\\]\\\\-]{0,12}", any::<String>()],
    ) {
        let policy = AclPolicy {
            name: "fuzz".to_owned(),
            description: None,
            rules,
            source: String::new(),
            modified_at: Timestamp::ZERO,
        };
        let permissions = Permissions::compile(&[&policy]);
        for scope in AclScope::ALL {
            for capability in scope.capabilities() {
                let _ = permissions.allows(scope, *capability, &subject);
                let _ = permissions.allows_somewhere(scope, *capability);
                let _ = permissions.missing(scope, *capability, &subject);
            }
        }
    }
}

/// Shapes that a recursive or eager reader would choke on: each ends in
/// an error.
#[test]
fn pathological_policies_end_in_errors() {
    const DEEP: usize = 10_000;
    for text in [
        "node {".repeat(DEEP),
        format!("node {{ hostgroup = \"**\" capabilities = {} }}", "[".repeat(DEEP)),
        format!("node {{ hostgroup = \"{}\" capabilities = [\"read\"] }}", "**/".repeat(DEEP)),
        format!("node {{ hostgroup = \"{}\" capabilities = [\"read\"] }}", "[a]".repeat(DEEP)),
        format!("site {{ capabilities = [{}] }}", "\"read\",".repeat(DEEP)),
        "acl { capabilities = [\"read\"] }\n".repeat(DEEP / 10) + "nde {}",
        "\"".repeat(DEEP),
        "x".repeat(drover_hcl::MAX_DEFINITION_BYTES as usize + 1),
    ] {
        let result = parse_policy("deep.hcl", &text);
        assert!(result.is_err(), "{}…", text.chars().take(60).collect::<String>());
    }
}
