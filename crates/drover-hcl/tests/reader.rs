//! The public API of drover-hcl, exercised with a small made-up schema (an
//! alert file), the way later definition files will use it.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_hcl::{Source, VarInputs};

/// What the test schema reads from one `alert "<name>"` block.
#[derive(Debug, Default, PartialEq)]
struct Alert {
    name: String,
    severity: Option<String>,
    for_duration: Option<Duration>,
    threshold: Option<u32>,
    enabled: Option<bool>,
    notify: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    runbook: Option<String>,
}

/// Reads every alert of `text`; `Err` holds the diagnostics text.
fn read_alerts(text: &str, inputs: &VarInputs) -> Result<Vec<Alert>, String> {
    let source = Source::new("site.hcl", text);
    let document = drover_hcl::parse(&source).map_err(|diagnostics| diagnostics.to_string())?;
    let evaluation = document.evaluate(inputs);
    let mut root = evaluation.root();
    let mut alerts = Vec::new();
    for mut block in root.labeled_blocks("alert") {
        let mut alert = Alert {
            name: block.label().to_owned(),
            severity: block.string("severity"),
            for_duration: block.duration("for").map(|duration| duration.get()),
            threshold: block.u32("threshold"),
            enabled: block.bool("enabled"),
            notify: block.string_list("notify"),
            labels: block.string_map("labels"),
            runbook: None,
        };
        if let Some(mut links) = block.block("links") {
            alert.runbook = links.string("runbook");
            links.finish();
        }
        block.unsupported("silence", "silence alerts with `drover alert silence`");
        block.finish();
        alerts.push(alert);
    }
    root.finish();
    evaluation.finish().map_err(|diagnostics| diagnostics.to_string())?;
    Ok(alerts)
}

#[test]
fn typed_attributes_and_blocks_are_read() {
    let alerts = read_alerts(
        r#"
alert "tmp-full" {
  severity  = "warning"
  for       = "5m"
  threshold = 95
  enabled   = true
  notify    = ["ops-chat", "mail"]
  labels { team = "ops"  tier = 1 }
  links { runbook = "https://ops.example.org/tmp-full" }
}
"#,
        &VarInputs::default(),
    )
    .unwrap();
    assert_eq!(
        alerts,
        vec![Alert {
            name: "tmp-full".into(),
            severity: Some("warning".into()),
            for_duration: Some(Duration::from_secs(300)),
            threshold: Some(95),
            enabled: Some(true),
            notify: Some(vec!["ops-chat".into(), "mail".into()]),
            labels: Some(BTreeMap::from([("team".into(), "ops".into()), ("tier".into(), "1".into())])),
            runbook: Some("https://ops.example.org/tmp-full".into()),
        }]
    );
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let error = read_alerts(
        r#"alert "a" {
  severty   = "warning"
  for       = "5 minutes"
  threshold = -1
  enabled   = "yes"
  notify    = "ops"
  labels    = ["x"]
  silence { until = "1h" }
  links = {}
}
alret "b" {}
"#,
        &VarInputs::default(),
    )
    .unwrap_err();
    assert_eq!(
        error,
        [
            r#"site.hcl:2:3: unknown attribute "severty" in alert "a"; did you mean "severity"?"#,
            r#"site.hcl:3:15: "for" in alert "a" has an invalid duration "5 minutes": expected a number and a unit such as "15s", "30m", "1h30m" or "250ms""#,
            r#"site.hcl:4:15: "threshold" in alert "a" must be between 0 and 4294967295, not -1"#,
            r#"site.hcl:5:15: "enabled" in alert "a" must be true or false, not the string "yes""#,
            r#"site.hcl:6:15: "notify" in alert "a" must be a list of strings such as ["a", "b"], not the string "ops""#,
            r#"site.hcl:7:15: "labels" in alert "a" must be a map such as { key = "value" }, not a list"#,
            r#"site.hcl:8:3: block "silence" in alert "a" is not supported by drover: silence alerts with `drover alert silence`"#,
            r#"site.hcl:9:3: "links" in alert "a" must be a block, written links { … }, not an attribute"#,
            r#"site.hcl:11:1: unknown block "alret" in the file; did you mean "alert"?"#,
        ]
        .join("\n")
    );
}

#[test]
fn syntax_errors_are_reported_at_their_position() {
    let error = read_alerts("alert \"a\" {\n  severity = [\"x\",\n}\n", &VarInputs::default()).unwrap_err();
    assert!(error.starts_with("site.hcl:3:1: syntax error:"), "{error}");
}

const VARIABLES_FILE: &str = r#"
variable "severity" { default = "info" }
variable "threshold" {
  type    = number
  default = 90
}
variable "notify" { type = list(string) }
variable "owner" {}

alert "disk" {
  severity  = var.severity
  threshold = var.threshold
  notify    = var.notify
  labels    = { owner = var.owner, host = "${node.unique.name}" }
  links { runbook = "https://ops.example.org/${var.owner}/${attr.os.name}" }
}
"#;

fn inputs(cli: &[(&str, &str)], file: Option<&str>, env: &[(&str, &str)]) -> VarInputs {
    VarInputs {
        cli: cli.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
        files: file.map(|text| Source::new("site.vars.hcl", text)).into_iter().collect(),
        env: env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
    }
}

#[test]
fn variable_values_follow_precedence() {
    let alerts = read_alerts(
        VARIABLES_FILE,
        &inputs(
            &[("owner", "cli"), ("threshold", "97")],
            Some("owner = \"file\"\nnotify = [\"a\", \"b\"]\nseverity = \"from file\"\n"),
            &[("DROVER_VAR_owner", "env"), ("DROVER_VAR_severity", "env"), ("DROVER_VAR_threshold", "50")],
        ),
    )
    .unwrap();
    let alert = &alerts[0];
    assert_eq!(alert.severity.as_deref(), Some("from file"));
    assert_eq!(alert.threshold, Some(97));
    assert_eq!(alert.notify, Some(vec!["a".to_owned(), "b".to_owned()]));
    let labels = alert.labels.clone().unwrap();
    assert_eq!(labels.get("owner").map(String::as_str), Some("cli"));
    assert_eq!(labels.get("host").map(String::as_str), Some("${node.unique.name}"));
    assert_eq!(alert.runbook.as_deref(), Some("https://ops.example.org/cli/${attr.os.name}"));

    let from_environment =
        read_alerts(VARIABLES_FILE, &inputs(&[("notify", "[\"x\"]")], None, &[("DROVER_VAR_owner", "env")])).unwrap();
    assert_eq!(from_environment[0].severity.as_deref(), Some("info"));
    assert_eq!(from_environment[0].threshold, Some(90));
    assert_eq!(from_environment[0].labels.clone().unwrap().get("owner").map(String::as_str), Some("env"));
}

#[test]
fn later_cli_values_win() {
    let alerts =
        read_alerts(VARIABLES_FILE, &inputs(&[("owner", "first"), ("notify", "[]"), ("owner", "second")], None, &[]))
            .unwrap();
    assert_eq!(alerts[0].labels.clone().unwrap().get("owner").map(String::as_str), Some("second"));
}

#[test]
fn variable_problems_are_all_reported() {
    let error = read_alerts(
        VARIABLES_FILE,
        &inputs(&[("ownr", "x"), ("threshold", "high")], Some("owner = 1\nnotfy = []\n"), &[]),
    )
    .unwrap_err();
    assert_eq!(
        error,
        [
            r#"command line: -var ownr=…: variable "ownr" is not declared in site.hcl; did you mean "owner"?"#,
            r#"command line: -var threshold=…: variable "threshold" expects type number, not the string "high""#,
            r#"site.hcl:7:10: variable "notify" has no value: give it a default, or set it with -var notify=<value>, a -var-file, or the environment variable DROVER_VAR_notify"#,
            r#"site.vars.hcl:2:1: variable "notfy" is not declared in site.hcl; did you mean "notify"?"#,
        ]
        .join("\n")
    );
}

#[test]
fn variable_values_are_visible_to_the_schema() {
    let source = Source::new("x.hcl", "variable \"a\" { default = [1, 2] }\n");
    let evaluation = drover_hcl::parse(&source).unwrap().evaluate(&VarInputs::default());
    assert_eq!(
        evaluation.variable_values().get("a"),
        Some(&drover_hcl::Value::Array(vec![drover_hcl::Value::from(1), drover_hcl::Value::from(2)]))
    );
    evaluation.root().finish();
    assert!(evaluation.finish().is_ok());
}
