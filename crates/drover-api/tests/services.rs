//! The service catalogue's routes through `router(server)`: empty answers
//! of a cluster without services, the blocking query, bad queries, and
//! with ACLs a token sees only the instances of jobs and nodes it may read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use std::collections::BTreeMap;

use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use drover_server::Server;
use drover_state::Command;
use drover_types::{
    AllocClientStatus, Allocation, ClientAllocUpdate, EvalId, EvalStatus, EvalTrigger, Evaluation, Job, JobId, JobType,
    NodeId, Plan, Service, TaskLifecycleState, TaskState, Timestamp, fixtures,
};

use support::{call, propose, start_secure_server, start_server, token_with_policy, with_token};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_cluster_without_services_lists_none_and_a_blocking_watch_waits() {
    let (server, _dir) = start_server().await;
    let (status, body) = call(&server, get("/v1/services")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));
    let (status, body) = call(&server, get("/v1/service/web?tag=v1&healthy=true")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));

    let response = drover_api::router(server.clone()).oneshot(get("/v1/service/web")).await.unwrap();
    let index: u64 = response.headers()["x-drover-index"].to_str().unwrap().parse().unwrap();
    let started = std::time::Instant::now();
    let (status, _) = call(&server, get(&format!("/v1/service/web?index={}&wait=300ms", index + 1000))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "the query waited for a change");

    let (status, body) = call(&server, get("/v1/service/web?healthy=maybe")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    server.shutdown().await;
}

/// The job `id` whose group `web` (task `server`) announces `service`
/// without checks (passing once running).
fn job_announcing(id: &str, service: &str) -> Job {
    let mut group = fixtures::group("web", JobType::Service, 2);
    group.tasks[0].name = "server".to_owned();
    group.tasks[0].services = vec![Service { name: service.to_owned(), port: Some(8080), ..Service::default() }];
    fixtures::service_job(id, 2).with_groups(vec![group])
}

fn complete_eval(id: &str, job: &str) -> Evaluation {
    let mut eval = Evaluation::new(EvalId::new(id), JobId::new(job), 50, EvalTrigger::JobRegister, Timestamp::ZERO);
    eval.status = EvalStatus::Complete;
    eval
}

/// Registers `job`, places `allocs` (id, node) for it and reports them
/// running, as the scheduler and the agents would.
async fn run_job(server: &Server, job: Job, allocs: &[(&str, &str)]) {
    let job_id = job.id.to_string();
    let eval = complete_eval(&format!("{job_id}-register"), &job_id);
    propose(server, Command::RegisterJob { job, eval, now: Timestamp::ZERO }).await;
    let placed: Vec<Allocation> =
        allocs.iter().map(|(id, node)| fixtures::alloc(id, &job_id, "web", &NodeId::new(*node))).collect();
    let eval = complete_eval(&format!("{job_id}-place"), &job_id);
    let plan = Plan { eval_id: eval.id.clone(), job_id: JobId::new(&job_id), place: placed.clone(), ..Plan::default() };
    propose(server, Command::ApplyPlan { plan: Box::new(plan), eval, blocked_eval: None, now: Timestamp::ZERO }).await;
    let updates = placed
        .iter()
        .map(|alloc| ClientAllocUpdate {
            alloc_id: alloc.id.clone(),
            client_status: AllocClientStatus::Running,
            client_description: String::new(),
            task_states: BTreeMap::from([(
                "server".to_owned(),
                TaskState { state: TaskLifecycleState::Running, ..TaskState::default() },
            )]),
            checks: Vec::new(),
            deployment_health: None,
        })
        .collect();
    propose(server, Command::UpdateAllocsFromClient { updates, evals: Vec::new(), now: Timestamp::ZERO }).await;
}

#[tokio::test]
async fn with_acls_a_token_sees_only_the_instances_of_jobs_and_nodes_it_may_read() {
    let (server, root, _dir) = start_secure_server().await;
    for (name, hostgroup) in [("n1", "shop/web"), ("n2", "bank/core")] {
        let node = fixtures::node(name).with_hostgroup(hostgroup);
        let registration = fixtures::registration_of(&node);
        propose(&server, Command::RegisterNode { registration, evals: Vec::new(), now: Timestamp::ZERO }).await;
    }
    // `shop` runs `web` on both nodes; `bank` runs `ledger` on n1 and `web` nowhere.
    run_job(&server, job_announcing("shop", "web"), &[("s1", "n1"), ("s2", "n2")]).await;
    run_job(&server, job_announcing("bank", "ledger"), &[("b1", "n1")]).await;

    // The management token sees everything.
    let (status, body) = call(&server, with_token("GET", "/v1/services", &root, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<(&str, u64)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["name"].as_str().unwrap(), entry["instances"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, vec![("ledger", 1), ("web", 2)], "{body}");

    // A token that may read the job `shop` on the nodes of `shop/**` only.
    let reader = token_with_policy(&server, &root, "shop", "job  { name = \"shop\"  capabilities = [\"read\"] }\nnode { hostgroup = \"shop/**\"  capabilities = [\"read\"] }\n", "shop-reader").await;

    // Only `web` with its one instance on n1: no `ledger`, and the count of
    // `web` does not include the instance on the node it may not read.
    let (status, body) = call(&server, with_token("GET", "/v1/services", &reader, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!([{ "name": "web", "instances": 1, "healthy": 1, "tags": [] }]));
    let (status, body) = call(&server, with_token("GET", "/v1/service/web", &reader, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let allocs: Vec<&str> = body.as_array().unwrap().iter().map(|i| i["alloc_id"].as_str().unwrap()).collect();
    assert_eq!(allocs, vec!["s1"], "{body}");
    let (status, body) = call(&server, with_token("GET", "/v1/service/ledger", &reader, None)).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])), "a hidden service answers as an unknown one");

    // Without a token, or with a wrong one, the catalogue is refused.
    for path in ["/v1/services", "/v1/service/web"] {
        let (status, body) = call(&server, get(path)).await;
        assert!(matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), "{path}: {status} {body}");
        assert!(!body.to_string().contains("s1"), "{body}");
        let (status, _) = call(&server, with_token("GET", path, "drover-not-a-real-token", None)).await;
        assert!(matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), "{path}: {status}");
    }
    server.shutdown().await;
}
