//! The allocation lifecycle routes (`/v1/allocation/{id}/restart|signal|
//! stop|exec`, `/v1/job/{id}/restart`) through `router(server)` on a server
//! with ACLs: a token that may only read the job is refused each, and each
//! refusal is audited; the management token stops the allocation (a
//! migration and an evaluation), and a restart of an allocation whose
//! agent is not connected says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;

use drover_server::Server;
use drover_state::Command;
use drover_types::{
    AllocClientStatus, AllocId, Allocation, ClientAllocUpdate, EvalId, EvalStatus, EvalTrigger, Evaluation, Job, JobId,
    JobType, Plan, TaskLifecycleState, TaskState, Timestamp, fixtures,
};

use support::{call, propose, start_secure_server, token_with_policy, with_token};

fn complete_eval(id: &str, job: &str) -> Evaluation {
    let mut eval = Evaluation::new(EvalId::new(id), JobId::new(job), 50, EvalTrigger::JobRegister, Timestamp::ZERO);
    eval.status = EvalStatus::Complete;
    eval
}

/// Registers the job `shop` (group `web`, task `server`) and one running
/// allocation `s1` of it on node `n1`, as the scheduler and agent would.
async fn run_shop(server: &Server) {
    let node = fixtures::node("n1").with_hostgroup("shop/web");
    let registration = fixtures::registration_of(&node);
    propose(server, Command::RegisterNode { registration, evals: Vec::new(), now: Timestamp::ZERO }).await;
    let mut group = fixtures::group("web", JobType::Service, 1);
    group.tasks[0].name = "server".to_owned();
    let job: Job = fixtures::service_job("shop", 1).with_groups(vec![group]);
    propose(server, Command::RegisterJob { job, eval: complete_eval("shop-register", "shop"), now: Timestamp::ZERO })
        .await;
    let placed: Allocation = fixtures::alloc("s1", "shop", "web", &node.id);
    let eval = complete_eval("shop-place", "shop");
    let plan = Plan { eval_id: eval.id.clone(), job_id: JobId::new("shop"), place: vec![placed], ..Plan::default() };
    propose(server, Command::ApplyPlan { plan: Box::new(plan), eval, blocked_eval: None, now: Timestamp::ZERO }).await;
    let update = ClientAllocUpdate {
        alloc_id: AllocId::new("s1"),
        client_status: AllocClientStatus::Running,
        client_description: String::new(),
        task_states: BTreeMap::from([(
            "server".to_owned(),
            TaskState { state: TaskLifecycleState::Running, ..TaskState::default() },
        )]),
        checks: Vec::new(),
        deployment_health: None,
    };
    propose(server, Command::UpdateAllocsFromClient { updates: vec![update], evals: Vec::new(), now: Timestamp::ZERO })
        .await;
}

#[tokio::test]
async fn a_read_only_token_is_refused_every_lifecycle_action_and_each_refusal_is_audited() {
    let (server, root, _dir) = start_secure_server().await;
    run_shop(&server).await;
    let reader = token_with_policy(&server, &root, "reader", "job  { name = \"shop\"  capabilities = [\"read\"] }\nnode { hostgroup = \"shop/**\"  capabilities = [\"read\"] }\n", "shop-reader").await;

    let attempts = [
        ("/v1/allocation/s1/restart", serde_json::json!({})),
        ("/v1/allocation/s1/signal", serde_json::json!({ "signal": "SIGHUP" })),
        ("/v1/allocation/s1/stop", serde_json::json!({})),
        ("/v1/allocation/s1/exec", serde_json::json!({ "command": ["id"] })),
        ("/v1/job/shop/restart", serde_json::json!({})),
    ];
    for (path, request) in &attempts {
        let (status, body) = call(&server, with_token("POST", path, &reader, Some(request.clone()))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    // The allocation still runs: nothing was done.
    let (_, alloc) = call(&server, with_token("GET", "/v1/allocation/s1", &root, None)).await;
    assert_eq!(alloc["desired_status"], "run", "{alloc}");

    // Refusals are audited (queued, then group-committed): wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let wanted = ["alloc.restart", "alloc.signal", "alloc.stop", "alloc.exec", "job.restart"];
    loop {
        let (status, events) = call(&server, with_token("GET", "/v1/audit?outcome=refused", &root, None)).await;
        assert_eq!(status, StatusCode::OK, "{events}");
        let actions: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["name"] == "shop-reader")
            .filter_map(|event| event["action"].as_str())
            .collect();
        if wanted.iter().all(|action| actions.contains(action)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "refusals not audited within 10 s: {actions:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The management token may: a restart needs the node's agent, which
    // is not connected, and says so; a stop marks the allocation for
    // migration with an evaluation that will replace it.
    let (status, body) =
        call(&server, with_token("POST", "/v1/allocation/s1/restart", &root, Some(serde_json::json!({})))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["message"].as_str().unwrap().contains("is not connected to any server"), "{body}");
    let (status, body) = call(
        &server,
        with_token("POST", "/v1/allocation/s1/restart", &root, Some(serde_json::json!({ "task": "db" }))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("has the tasks server"), "{body}");
    let (status, body) =
        call(&server, with_token("POST", "/v1/allocation/s1/stop", &root, Some(serde_json::json!({})))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let eval_id = body["eval_id"].as_str().unwrap().to_owned();
    let state = server.consistent_state().await.unwrap();
    assert!(state.alloc(&AllocId::new("s1")).unwrap().desired_transition.migrate);
    let eval = state.eval(&EvalId::new(&eval_id)).expect("the stop's evaluation");
    assert_eq!(eval.triggered_by, EvalTrigger::AllocStop);
    server.shutdown().await;
}
