//! Small things a new user hit (issue 13), through `router(server)` with
//! `oneshot`: an unknown node is named in quotes with what to do after
//! them, and the link in an alert notification (`/v1/alerts?name=RULE`)
//! lists that rule's alerts only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use support::{call, start_server};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn exec_on_an_unknown_node_names_it_in_quotes_then_says_what_to_do() {
    let (server, _dir) = start_server().await;
    let (status, body) =
        call(&server, post_json("/v1/exec", &json!({ "nodes": ["nosuch"], "command": ["true"] }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["message"], "node \"nosuch\" not found; nothing was done (`drover node list` shows the nodes)");

    let names: Vec<String> = (1..=7).map(|number| format!("gone{number}")).collect();
    let (status, body) = call(&server, post_json("/v1/exec", &json!({ "nodes": names, "command": ["true"] }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["message"],
        "nodes \"gone1\", \"gone2\", \"gone3\", \"gone4\", \"gone5\" and 2 more not found; nothing was done (`drover node list` shows the nodes)"
    );
    server.shutdown().await;
}

/// Two alert rules, each firing for an alert received from an Alertmanager.
const SITE_FILE: &str = r#"
alert "disk-a" {
  when {
    alertmanager { matchers = ["alertname=\"DiskA\""] }
  }
  severity = "warning"
}

alert "disk-b" {
  when {
    alertmanager { matchers = ["alertname=\"DiskB\""] }
  }
  severity = "warning"
}
"#;

fn webhook(alertnames: &[&str]) -> Value {
    let alerts: Vec<Value> = alertnames
        .iter()
        .map(|alertname| {
            json!({
                "status": "firing",
                "labels": { "alertname": alertname, "instance": "batch07" },
                "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("fp-{alertname}"),
            })
        })
        .collect();
    json!({ "version": "4", "status": "firing", "alerts": alerts })
}

fn names_of(list: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> =
        list.as_array().unwrap().iter().map(|item| item.pointer(field).unwrap().as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn alerts_by_name_lists_the_alerts_of_that_rule_only() {
    let (server, _dir) = start_server().await;
    let site_source = drover_site::Source::new("site.hcl", SITE_FILE);
    let site = drover_site::from_sources(&[site_source], std::path::Path::new(".")).expect("a valid site");
    let (status, body) = call(&server, post_json("/v1/site", &json!({ "site": site }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&server, post_json("/v1/alertmanager/webhook", &webhook(&["DiskA", "DiskB"]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The leader evaluates the rules twice a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(&server, get("/v1/alerts")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if names_of(&body["alerts"], "/rule") == ["disk-a", "disk-b"] {
            break;
        }
        assert!(Instant::now() < deadline, "both rules should fire within 20 s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, body) = call(&server, get("/v1/alerts?name=disk-a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names_of(&body["alerts"], "/rule"), ["disk-a"], "{body}");
    assert_eq!(body["received"], json!([]), "no received alert is named disk-a: {body}");

    // A received alert is matched by its alertname.
    let (_, body) = call(&server, get("/v1/alerts?name=DiskB")).await;
    assert_eq!(body["alerts"], json!([]), "{body}");
    assert_eq!(names_of(&body["received"], "/labels/alertname"), ["DiskB"], "{body}");

    let (_, body) = call(&server, get("/v1/alerts?name=nosuch")).await;
    assert_eq!((&body["alerts"], &body["received"]), (&json!([]), &json!([])), "{body}");

    // Without a name, everything, as before.
    let (_, body) = call(&server, get("/v1/alerts")).await;
    assert_eq!(names_of(&body["received"], "/labels/alertname"), ["DiskA", "DiskB"], "{body}");
    server.shutdown().await;
}
