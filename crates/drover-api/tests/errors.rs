//! The API's error contract, tested through `router(server)` with
//! `oneshot` (docs/dev/style.md: the router is the unit of testing): every failure is
//! `{code, message}` JSON with the right status, and bad input changes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use drover_server::Server;
use support::{call, start_server};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, body: &str) -> Request<Body> {
    Request::post(path).header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn errors_are_coded_json_with_the_right_status() {
    let (server, _dir) = start_server().await;

    let (status, body) = call(&server, get("/v1/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");

    let (status, body) = call(&server, get("/v1/job/missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("missing"));

    let (status, body) = call(&server, post_json("/v1/jobs", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_input");

    let (status, body) = call(&server, post_json("/v1/jobs", r#"{"job": {"id": "x"}}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_input");

    let request = Request::post("/v1/jobs").body(Body::from("{}")).unwrap();
    let (status, body) = call(&server, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("Content-Type"));

    let (status, body) = call(&server, get("/v1/jobs?index=abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_input");

    let (status, body) = call(&server, get("/v1/allocation/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = call(&server, get("/v1/allocation/zzz")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");

    // Nothing above changed the state.
    let (status, body) = call(&server, get("/v1/jobs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_job_without_groups_is_rejected_and_not_registered() {
    let (server, _dir) = start_server().await;
    let source = drover_jobspec_free_job();
    let (status, body) = call(&server, post_json("/v1/jobs", &source)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("no group"), "{body}");
    let (_, jobs) = call(&server, get("/v1/jobs")).await;
    assert_eq!(jobs, serde_json::json!([]));
    server.shutdown().await;
}

/// A syntactically complete job with no groups, as an API caller could send.
fn drover_jobspec_free_job() -> String {
    serde_json::json!({
        "job": {
            "id": "empty", "name": "empty", "type": "service", "priority": 50,
            "datacenters": ["*"], "constraints": [], "affinities": [], "spreads": [],
            "update": null, "periodic": null, "meta": {}, "groups": []
        }
    })
    .to_string()
}

#[tokio::test]
async fn blocking_queries_return_the_index_and_wait_for_changes() {
    let (server, _dir) = start_server().await;
    let response = drover_api::router(server.clone()).oneshot(get("/v1/jobs")).await.unwrap();
    let index: u64 = response.headers()["x-drover-index"].to_str().unwrap().parse().unwrap();
    let started = std::time::Instant::now();
    let (status, _) = call(&server, get(&format!("/v1/jobs?index={}&wait=300ms", index + 1000))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "the query waited");
    server.shutdown().await;
}

/// A valid job as the API takes it, read from a job file.
fn job_json(count: u32) -> serde_json::Value {
    let text = format!(
        r#"
job "hostile" {{
  constraint {{
    attribute = "${{node.unique.name}}"
    value     = "no-such-node"
  }}
  group "g" {{
    count = {count}
    task "t" {{
      driver = "raw_exec"
      config {{ command = "/bin/true" }}
    }}
  }}
}}
"#
    );
    let job = drover_jobspec::parse_job(&drover_jobspec::Source::new("hostile.nomad.hcl", text), &Default::default())
        .expect("a valid job file");
    serde_json::to_value(&job).unwrap()
}

async fn registered_jobs(server: &Server) -> serde_json::Value {
    call(server, get("/v1/jobs")).await.1
}

#[tokio::test]
async fn hostile_jobs_are_refused_with_the_job_file_messages_and_change_nothing() {
    let (server, _dir) = start_server().await;

    // One placement request per instance used to abort the leader.
    let mut huge = job_json(1);
    huge["groups"][0]["count"] = serde_json::json!(u32::MAX);
    let body = serde_json::json!({ "job": huge }).to_string();
    let started = std::time::Instant::now();
    let (status, answer) = call(&server, post_json("/v1/job/hostile/plan", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("more than the limit of 100000"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (status, _) = call(&server, post_json("/v1/jobs", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut zones = job_json(1);
    zones["datacenters"] = (0..100_000).map(|number| format!("dc{number}")).collect();
    let (status, answer) = call(&server, post_json("/v1/jobs", &serde_json::json!({ "job": zones }).to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("datacenters"), "{answer}");

    for bad_id in ["a\u{0}b", "../../x", "ünï", &"x".repeat(100 * 1024)] {
        let mut job = job_json(1);
        job["id"] = serde_json::json!(bad_id);
        let (status, answer) =
            call(&server, post_json("/v1/jobs", &serde_json::json!({ "job": job }).to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().unwrap().starts_with("job id"), "{answer}");
    }

    let mut zero_memory = job_json(1);
    zero_memory["groups"][0]["tasks"][0]["resources"]["memory_mb"] = serde_json::json!(0);
    let (status, answer) =
        call(&server, post_json("/v1/jobs", &serde_json::json!({ "job": zero_memory }).to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("memory = 0 is too small"), "{answer}");

    // An unknown field is refused, not ignored, with its path.
    let mut typo = job_json(1);
    typo["groups"][0]["cuont"] = serde_json::json!(3);
    let (status, answer) = call(&server, post_json("/v1/jobs", &serde_json::json!({ "job": typo }).to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("unknown field `job.groups.0.cuont`"), "{answer}");

    assert_eq!(registered_jobs(&server).await, serde_json::json!([]));

    // The valid job is accepted.
    let (status, answer) =
        call(&server, post_json("/v1/jobs", &serde_json::json!({ "job": job_json(2) }).to_string())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.shutdown().await;
}

/// A change made to a valid job's JSON.
type ChangeJob = fn(&mut serde_json::Value);

/// What the job file reader refused and the API accepted: output rotated
/// on every byte or kept without bound, a task restarted and an allocation
/// replaced without pause, a namespace drover does not have. Each is
/// refused with the job file's words, and nothing is registered.
#[tokio::test]
async fn the_api_refuses_what_the_job_file_reader_refuses() {
    let (server, _dir) = start_server().await;
    let cases: [(&str, ChangeJob, &str); 6] = [
        (
            "logs rotated on every byte",
            |job| job["groups"][0]["tasks"][0]["logs"] = serde_json::json!({ "max_files": 0, "max_file_size_mb": 0 }),
            "logs max_files must be between 1 and 1000, not 0",
        ),
        (
            "logs kept without bound",
            |job| {
                job["groups"][0]["tasks"][0]["logs"] =
                    serde_json::json!({ "max_files": u32::MAX, "max_file_size_mb": u64::MAX })
            },
            "logs max_file_size must be between 1 and 1048576 (MiB), not 18446744073709551615",
        ),
        (
            "restarts in a tight loop",
            |job| {
                job["groups"][0]["restart"]["interval"] = serde_json::json!("0s");
                job["groups"][0]["restart"]["delay"] = serde_json::json!("0s");
            },
            "the restart interval must be at least 5s",
        ),
        (
            "replacements in a tight loop",
            |job| job["groups"][0]["reschedule"]["delay"] = serde_json::json!("0s"),
            "the reschedule delay must be at least 5s",
        ),
        (
            "another namespace",
            |job| job["namespace"] = serde_json::json!("team-a"),
            "namespace \"team-a\" is not supported",
        ),
        ("a region with a NUL", |job| job["region"] = serde_json::json!("eu\u{0}"), "region"),
    ];
    for (what, change, expected) in cases {
        let mut job = job_json(1);
        change(&mut job);
        let (status, answer) =
            call(&server, post_json("/v1/jobs", &serde_json::json!({ "job": job }).to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["code"], "invalid_input", "{what}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(expected), "{what}: {answer}");
    }
    assert_eq!(registered_jobs(&server).await, serde_json::json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_coded_error() {
    let (server, _dir) = start_server().await;
    let (status, body) = call(&server, Request::put("/v1/jobs").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    assert!(body["message"].as_str().unwrap().contains("PUT"), "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn histograms_over_extreme_ranges_are_refused_not_fatal() {
    let (server, _dir) = start_server().await;
    for query in [
        "q=&since=-9000000000000000000&until=9000000000000000000&interval=1ms",
        "q=&since=-9000000000000000000&until=9000000000000000000",
        "q=&since=9223372036854775807&interval=9223372036854775807ns",
        "q=&since=0&until=7258118400000000000&interval=1ms",
    ] {
        let (status, body) = call(&server, get(&format!("/v1/logs/histogram?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "invalid_input");
    }
    // The server still answers.
    let (status, body) = call(&server, get("/v1/logs/histogram?q=&since=1h")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn dot_segments_in_variable_paths_are_refused() {
    let (server, _dir) = start_server().await;
    let request = Request::put("/v1/var/../job/hello")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"items": {"a": "b"}}"#))
        .unwrap();
    let (status, body) = call(&server, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("\"..\" segment"), "{body}");
    let request = Request::put("/v1/var/a/./b")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"items": {"a": "b"}}"#))
        .unwrap();
    let (status, _) = call(&server, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

/// The router serves every route of the URL space (`drover_proto::paths`),
/// so the client and the servers never call a path the router lacks. Only
/// a 404's body is read: a live route (the log tail) never ends its body.
#[tokio::test]
async fn every_route_of_the_url_space_is_served() {
    let (server, _dir) = start_server().await;
    for template in drover_proto::paths::ALL {
        let path = drover_proto::paths::fill(template, &["x", "x"]);
        let response = drover_api::router(server.clone()).oneshot(get(&path)).await.unwrap();
        if response.status() != StatusCode::NOT_FOUND {
            continue;
        }
        let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.starts_with("no API route"), "{template} is not routed: {body}");
    }
}
