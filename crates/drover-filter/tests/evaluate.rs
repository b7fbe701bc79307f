#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Evaluation of filters over a small fleet of sample nodes: each case is a
//! filter and the names of the nodes it must select, in fleet order.

use drover_filter::{Field, Fields, Filter, MapRecord, Value};

/// A fleet in the spirit of the product's stories: batch workers in `qa`
/// and `production`, a protected build machine, a GPU node without an
/// owner, a node that is down.
fn fleet() -> Vec<(&'static str, MapRecord)> {
    let node = |name: &'static str, hostgroup: &'static str, environment: &'static str| {
        MapRecord::new()
            .with("name", name)
            .with("id", format!("id-{name}"))
            .with("hostgroup", hostgroup)
            .with("environment", environment)
            .with("zone", "a")
            .with("status", "ready")
            .with("eligibility", "eligible")
            .with("eligible", true)
            .with("protected", false)
            .with("draining", false)
    };
    vec![
        (
            "batch01",
            node("batch01", "bi/batch/gridworker", "qa")
                .with("owner", "alice")
                .with("attr.cpu.numcores", "16")
                .with("attr.kernel.version", "5.14.0-362.el9")
                .with("meta.rack", "r12"),
        ),
        (
            "batch02",
            node("batch02", "bi/batch/gridworker", "production")
                .with("owner", "bob")
                .with("attr.cpu.numcores", "8")
                .with("attr.kernel.version", "5.4.0")
                .with("meta.rack", "r12"),
        ),
        (
            "batch10",
            node("batch10", "bi/batch/gridworker/terminate", "qa")
                .with("owner", "alice")
                .with("zone", "b")
                .with("attr.cpu.numcores", "32")
                .with("attr.kernel.version", "6.1.0")
                .with("meta.rack", "r7"),
        ),
        (
            "alibuild03",
            node("alibuild03", "alice/build", "production")
                .with("owner", "alice-release")
                .with("zone", "b")
                .with("protected", true)
                .with("attr.cpu.numcores", "64"),
        ),
        (
            "gpu07",
            node("gpu07", "bi/gpu", "qa")
                .with("attr.cpu.numcores", "16.0")
                .with("meta.gpu", "a100")
                .with("status", "draining")
                .with("draining", true)
                .with("eligible", false)
                .with("eligibility", "ineligible"),
        ),
        (
            "old05",
            node("old05", "bi/batch", "production")
                .with("owner", "carol")
                .with("status", "down")
                .with("meta.rack", "r3"),
        ),
    ]
}

fn selected(filter_text: &str) -> Vec<&'static str> {
    let filter = Filter::parse(filter_text).unwrap_or_else(|error| panic!("{filter_text}:\n{error}"));
    fleet().into_iter().filter(|(_, record)| filter.matches(record)).map(|(name, _)| name).collect()
}

#[test]
fn filters_select_the_expected_nodes() {
    let cases: &[(&str, &[&str])] = &[
        (r#"hostgroup =~ "bi/batch/**" and environment == "qa" and not protected"#, &["batch01", "batch10"]),
        (r#"hostgroup =~ "bi/batch/*""#, &["batch01", "batch02"]),
        (r#"hostgroup =~ "bi/**""#, &["batch01", "batch02", "batch10", "gpu07", "old05"]),
        (r#"hostgroup =~ "bi/batch/**""#, &["batch01", "batch02", "batch10"]),
        (r#"status == "down""#, &["old05"]),
        (r#"status != "ready""#, &["gpu07", "old05"]),
        ("attr.cpu.numcores >= 16", &["batch01", "batch10", "alibuild03", "gpu07"]),
        ("attr.cpu.numcores == 16", &["batch01", "gpu07"]),
        (r#"attr.cpu.numcores == "16""#, &["batch01"]),
        ("attr.cpu.numcores < 16", &["batch02"]),
        (r#"meta.rack == "r12""#, &["batch01", "batch02"]),
        (r#"name =~ "batch0*""#, &["batch01", "batch02"]),
        (r#"name =~ "batch[01][0-9]""#, &["batch01", "batch02", "batch10"]),
        (r#"name =~ "batch?0""#, &["batch10"]),
        (r#"owner != "alice" or (zone == "b" and eligible)"#, &["batch02", "batch10", "alibuild03", "gpu07", "old05"]),
        (r#"hostgroup in ["alice/build", "bi/batch/gridworker/**"]"#, &["batch10", "alibuild03"]),
        (r#"hostgroup not in ["bi/**"]"#, &["alibuild03"]),
        (r#"environment in ["qa"] and zone in ["b"]"#, &["batch10"]),
        ("attr.cpu.numcores in [8, 64]", &["batch02", "alibuild03"]),
        ("has meta.gpu", &["gpu07"]),
        ("meta.gpu is set", &["gpu07"]),
        ("meta.gpu is not set", &["batch01", "batch02", "batch10", "alibuild03", "old05"]),
        ("has owner", &["batch01", "batch02", "batch10", "alibuild03", "old05"]),
        ("protected", &["alibuild03"]),
        ("!protected && draining", &["gpu07"]),
        ("not eligible", &["gpu07"]),
        (r#"eligibility == "ineligible""#, &["gpu07"]),
        ("protected == true", &["alibuild03"]),
        (r#"name matches "^batch\d+$""#, &["batch01", "batch02", "batch10"]),
        (r#"name matches "0[37]""#, &["alibuild03", "gpu07"]),
        (r#"owner =~ "alice*""#, &["batch01", "batch10", "alibuild03"]),
        (r#"owner !~ "alice*""#, &["batch02", "gpu07", "old05"]),
        // Version-aware order for quoted values: 5.14 is after 5.4.
        (r#"attr.kernel.version >= "5.10""#, &["batch01", "batch10"]),
        (r#"attr.kernel.version < "6""#, &["batch01", "batch02"]),
        // Natural order of names: batch10 sorts after batch02.
        (r#"name > "batch02" and name =~ "batch*""#, &["batch10"]),
        (r#"datacenter == "b""#, &["batch10", "alibuild03"]),
        (r#"id == "id-gpu07""#, &["gpu07"]),
        (r#"name == "a" or name == "b" and name == "c""#, &[]),
    ];
    let mut failures = Vec::new();
    for (filter_text, expected) in cases {
        let actual = selected(filter_text);
        if actual != *expected {
            failures.push(format!("{filter_text}\n  expected {expected:?}\n  actual   {actual:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Missing values: every test fails except the negative ones (`!=`, `!~`,
/// `not in`), which are exact negations of their positive forms.
#[test]
fn missing_values_fail_every_test_but_the_negative_ones() {
    let empty = MapRecord::new();
    let failing = [
        r#"meta.rack == "r12""#,
        r#"meta.rack < "r12""#,
        r#"meta.rack >= "r12""#,
        "attr.cpu.numcores >= 0",
        r#"meta.rack =~ "*""#,
        r#"meta.rack matches """#,
        r#"meta.rack in ["*"]"#,
        "has meta.rack",
        "protected",
        "not not eligible",
    ];
    for filter_text in failing {
        assert!(!Filter::parse(filter_text).unwrap().matches(&empty), "{filter_text} matched a missing value");
    }
    let passing = [r#"meta.rack != "r12""#, r#"meta.rack !~ "*""#, r#"meta.rack not in ["*"]"#, "not has meta.rack"];
    for filter_text in passing {
        assert!(Filter::parse(filter_text).unwrap().matches(&empty), "{filter_text} did not match a missing value");
    }
}

/// Text that is not a number never equals or orders against a number.
#[test]
fn numbers_compare_only_with_numeric_text() {
    let record = MapRecord::new().with("attr.cpu.numcores", "many");
    for filter_text in ["attr.cpu.numcores == 4", "attr.cpu.numcores < 4", "attr.cpu.numcores > 4"] {
        assert!(!Filter::parse(filter_text).unwrap().matches(&record), "{filter_text}");
    }
    assert!(Filter::parse("attr.cpu.numcores != 4").unwrap().matches(&record));
}

/// The trait is all a record needs: borrowed values, numbers and flags
/// straight from a struct.
#[test]
fn any_type_implementing_fields_can_be_filtered() {
    struct Machine {
        name: String,
        num_cores: u32,
        protected: bool,
    }
    impl Fields for Machine {
        fn value(&self, field: &Field) -> Value<'_> {
            match field {
                Field::Name => Value::from(self.name.as_str()),
                Field::Attr(fact) if fact == "cpu.numcores" => Value::Num(f64::from(self.num_cores)),
                Field::Protected => Value::Bool(self.protected),
                _ => Value::Missing,
            }
        }
    }
    let machine = Machine { name: "batch01".to_owned(), num_cores: 16, protected: false };
    let filter = Filter::parse(r#"name =~ "batch*" and attr.cpu.numcores > 8 and not protected"#).unwrap();
    assert!(filter.matches(&machine));
    assert!(Filter::parse(r#"attr.cpu.numcores == "16""#).unwrap().matches(&machine));
    assert!(!Filter::parse("has meta.gpu").unwrap().matches(&machine));
}

#[test]
fn errors_expose_their_kind_and_column() {
    let error = Filter::parse(r#"environment == "qa" and hostgrup == "x""#).unwrap_err();
    assert_eq!(error.kind(), drover_filter::ErrorKind::UnknownField);
    assert_eq!(error.column(), 25);
    assert_eq!(error.width(), 8);
    assert_eq!(error.message(), r#"unknown field "hostgrup" at column 25; did you mean "hostgroup"?"#);
    let parsed: Result<Filter, _> = "status == \"ready\"".parse();
    assert!(parsed.is_ok());
}
