//! No input makes the job file parser panic: random text, token soup and
//! mutations of valid job files all end in `Ok` or in diagnostics.

use drover_jobspec::{Source, VarInputs, parse_job};
use proptest::prelude::*;

const SEED_FILES: [&str; 3] = [
    include_str!("golden/belle2_nsmd2.nomad.hcl"),
    include_str!("golden/hello_service.nomad.hcl"),
    include_str!("golden/runtime_references.nomad.hcl"),
];

const TOKENS: [&str; 48] = [
    "job",
    "group",
    "task",
    "\"x\"",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    "\n",
    " ",
    "\"",
    "${",
    "$${",
    "%{",
    "}}",
    "var.",
    "node.unique.name",
    "var.daq_slc_version",
    "driver",
    "\"exec\"",
    "config",
    "command",
    "args",
    "count",
    "-1",
    "1e400",
    "99999999999999999999",
    "constraint",
    "operator",
    "\"regexp\"",
    "value",
    "\"[\"",
    "<<EOT\n",
    "\nEOT\n",
    "#",
    "//",
    "/*",
    "*/",
    "for",
    "in",
    ":",
    "?",
    ",",
    "null",
    "variable",
];

fn check_never_panics(text: &str, inputs: &VarInputs) {
    let result = parse_job(&Source::new("fuzz.nomad.hcl", text), inputs);
    if let Err(diagnostics) = result {
        // Printing must work too, and every diagnostic says something.
        let printed = diagnostics.to_string();
        assert!(!printed.is_empty());
        assert!(diagnostics.iter().all(|diagnostic| !diagnostic.message.is_empty()));
    }
}

/// A seed file with `edits` replacements of a random character by a token.
fn mutate(seed: &str, edits: &[(usize, usize)]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for (position, token_index) in edits {
        if text.is_empty() {
            break;
        }
        let index = position % text.len();
        let token: Vec<char> = TOKENS[token_index % TOKENS.len()].chars().collect();
        text.splice(index..=index, token);
    }
    text.into_iter().collect()
}

// 256 cases per property by default; `PROPTEST_CASES=20000` searches longer.
proptest! {
    #[test]
    fn random_text_never_panics(text in "[ -~\n\tçé€]{0,300}") {
        check_never_panics(&text, &VarInputs::default());
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(0..TOKENS.len(), 0..120)) {
        let text: String = tokens.into_iter().map(|index| TOKENS[index]).collect();
        check_never_panics(&text, &VarInputs::default());
    }

    #[test]
    fn mutated_job_files_never_panic(
        seed_index in 0..SEED_FILES.len(),
        edits in prop::collection::vec((0..4000_usize, 0..TOKENS.len()), 1..6),
        cli_value in "[ -~]{0,20}",
    ) {
        let text = mutate(SEED_FILES[seed_index], &edits);
        let inputs = VarInputs {
            cli: vec![("daq_slc_version".to_owned(), cli_value)],
            ..VarInputs::default()
        };
        check_never_panics(&text, &inputs);
    }

    #[test]
    fn deleting_a_character_never_panics(seed_index in 0..SEED_FILES.len(), position in 0..4000_usize) {
        let mut text: Vec<char> = SEED_FILES[seed_index].chars().collect();
        let index = position % text.len();
        text.remove(index);
        check_never_panics(&text.into_iter().collect::<String>(), &VarInputs::default());
    }
}
