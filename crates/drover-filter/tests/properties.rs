#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: no input makes the parser or the name expansion panic,
//! and the canonical form of any filter parses back to the same filter.

use drover_filter::{Filter, MapRecord, expand_names_with_limit, fold_names};
use proptest::prelude::*;

/// Pieces that filters are made of, so that random sequences often parse.
fn filter_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_owned()),
        Just("hostgroup".to_owned()),
        Just("status".to_owned()),
        Just("attr.cpu.numcores".to_owned()),
        Just("meta.rack".to_owned()),
        Just("protected".to_owned()),
        Just("draining".to_owned()),
        Just("datacenter".to_owned()),
        Just("and".to_owned()),
        Just("or".to_owned()),
        Just("not".to_owned()),
        Just("has".to_owned()),
        Just("in".to_owned()),
        Just("is".to_owned()),
        Just("set".to_owned()),
        Just("matches".to_owned()),
        Just("true".to_owned()),
        Just("&&".to_owned()),
        Just("||".to_owned()),
        Just("!".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just("==".to_owned()),
        Just("!=".to_owned()),
        Just("<=".to_owned()),
        Just(">".to_owned()),
        Just("=~".to_owned()),
        Just("!~".to_owned()),
        Just("\"ready\"".to_owned()),
        (-1000_i64..1000).prop_map(|number| number.to_string()),
        "[0-9]{1,3}\\.[0-9]{1,2}",
        "\"[a-z/*?\\[\\]\\\\\"^.$(){}0-9-]{0,8}\""
            .prop_map(|text| text.replace('"', ""))
            .prop_map(|text| format!("\"{}\"", text.replace('\\', "\\\\"))),
    ]
}

fn filter_like() -> impl Strategy<Value = String> {
    prop::collection::vec(filter_piece(), 1..14).prop_map(|pieces| pieces.join(" "))
}

/// Shapes that always parse, built recursively.
fn valid_filter() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "[a-z0-9*?/]{0,6}".prop_map(|pattern| format!("hostgroup =~ \"{pattern}\"")),
        "[a-z0-9]{0,6}".prop_map(|value| format!("meta.rack != \"{value}\"")),
        (0_u32..64).prop_map(|number| format!("attr.cpu.numcores >= {number}")),
        Just("protected".to_owned()),
        Just("meta.gpu is not set".to_owned()),
        Just("status in [\"ready\", \"down\"]".to_owned()),
        "\\^?(\\\\d+|[a-z]){0,6}\\$?".prop_map(|pattern| format!("name matches \"{pattern}\"")),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|operands| operands.join(" and ")),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|operands| operands.join(" || ")),
            inner.clone().prop_map(|operand| format!("not ({operand})")),
            inner.prop_map(|operand| format!("({operand})")),
        ]
    })
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_arbitrary_text(input in "\\PC{0,80}") {
        let _ = Filter::parse(&input).map(|filter| filter.matches(&MapRecord::new()));
    }

    #[test]
    fn the_parser_never_panics_on_filter_like_text(input in filter_like()) {
        if let Ok(filter) = Filter::parse(&input) {
            let canonical = filter.to_string();
            let reparsed = Filter::parse(&canonical);
            prop_assert_eq!(reparsed.as_ref().ok(), Some(&filter), "{} printed as {}", input, canonical);
        } else if let Err(error) = Filter::parse(&input) {
            // Every error points inside the input (or just past its end).
            prop_assert!(error.column() <= input.chars().count() + 1, "{}", error);
            let _ = error.to_string();
        }
    }

    #[test]
    fn printed_filters_parse_back_to_the_same_filter(input in valid_filter()) {
        let filter = Filter::parse(&input).map_err(|error| TestCaseError::fail(format!("{input}\n{error}")))?;
        let canonical = filter.to_string();
        let reparsed = Filter::parse(&canonical).map_err(|error| TestCaseError::fail(format!("{canonical}\n{error}")))?;
        prop_assert_eq!(&reparsed, &filter);
        prop_assert_eq!(reparsed.to_string(), canonical);
    }

    #[test]
    fn name_expansion_never_panics(input in "[a-z0-9{}.,\\- ]{0,40}") {
        if let Ok(names) = expand_names_with_limit(&input, 1000) {
            prop_assert!(names.len() <= 1000);
            prop_assert!(names.iter().all(|name| !name.is_empty()));
        }
    }

    #[test]
    fn ranges_expand_to_their_length(from in 0_u32..500, length in 1_u32..200) {
        let to = from + length - 1;
        let names = expand_names_with_limit(&format!("n{{{from}..{to}}}"), 1000).unwrap();
        prop_assert_eq!(names.len(), length as usize);
        prop_assert_eq!(names.first().cloned(), Some(format!("n{from}")));
    }

    #[test]
    fn folded_names_expand_back_to_the_same_names(
        names in proptest::collection::btree_set("(batch|gpu|r1n|login)(0|00|1|01|07|9|10|099|100|12)(-ib)?", 0..30)
    ) {
        let folded = fold_names(&names);
        let expanded: std::collections::BTreeSet<String> = if folded.is_empty() {
            Default::default()
        } else {
            expand_names_with_limit(&folded, 1000).map_err(|error| TestCaseError::fail(format!("{folded}: {error}")))?.into_iter().collect()
        };
        prop_assert_eq!(expanded, names, "folded as {}", folded);
    }
}
