#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No input makes the site reader panic: random text, and random
//! rearrangements of the tokens of valid site files.

use std::path::Path;

use drover_react::Site;
use drover_site::Source;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "provider",
    "notifier",
    "alert",
    "hammer",
    "when",
    "action",
    "limits",
    "metric",
    "node",
    "alloc",
    "log",
    "webhook",
    "email",
    "alertmanager",
    "retry",
    "reboot",
    "rebuild",
    "command",
    "drain",
    "restart_alloc",
    "\"x\"",
    "\"{{node.name}}\"",
    "\"{{\"",
    "\"disk{mount=\\\"/tmp\\\"}\"",
    "\"5m\"",
    "\"-1s\"",
    "95",
    "-3",
    "0.5",
    "1e400",
    "=",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    " ",
    "for",
    "above",
    "below",
    "status",
    "matchers",
    "notify",
    "runbook",
    "\"runbooks/../x.md\"",
    "mode",
    "\"auto\"",
    "per_hour",
    "max_share",
    "fleet_max_percent",
    "true",
    "null",
    "var.x",
    "${",
    "#",
    "\"=~(\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = drover_site::from_sources(&[Source::new("fuzz.hcl", text)], Path::new("."));
    }

    #[test]
    fn token_soup_never_panics(indexes in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = indexes.iter().map(|index| TOKENS[*index]).collect::<Vec<_>>().join(" ");
        let _ = drover_site::from_sources(&[Source::new("fuzz.hcl", text)], Path::new("."));
    }
}

#[test]
fn diff_names_added_changed_and_removed_objects() {
    let old_text = r#"
notifier "chat" { webhook { url = "https://chat.example.org/a" } }
notifier "old" { webhook { url = "https://old.example.org" } }
hammer "h" {
  when { node { event = "down" } }
  action { drain {} }
  mode = "approve"
}
"#;
    let new_text = r#"
notifier "chat" { webhook { url = "https://chat.example.org/b" } }
hammer "h" {
  when { node { event = "down" } }
  action { drain {} }
  mode = "auto"
  limits { per_hour = 2 }
}
alert "node-down" {
  when {
    node { status = "down" }
  }
}
"#;
    let old = drover_site::from_sources(&[Source::new("old.hcl", old_text)], Path::new(".")).unwrap();
    let new = drover_site::from_sources(&[Source::new("new.hcl", new_text)], Path::new(".")).unwrap();
    let changes: Vec<String> = Site::diff(&old, &new)
        .iter()
        .map(|change| format!("{:?} {} {} {:?}", change.kind, change.object, change.name, change.fields))
        .collect();
    assert_eq!(
        changes,
        [
            "Changed notifier chat [\"kind\"]",
            "Removed notifier old []",
            "Added alert node-down []",
            "Changed hammer h [\"limits\", \"mode\"]",
        ]
    );
    assert!(Site::diff(&new, &new).is_empty());
}
