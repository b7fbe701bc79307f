//! On a secure server a write's audit event is committed in the write's own
//! Raft entry (`Command::Audited`), so the request is answered after one
//! commit, not two (docs/security.md, "Audit"); when the answer says more
//! than the first event did (a failure), the completed event replaces it.
//! Either way each request leaves exactly one event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;

use drover_server::Server;
use drover_types::acl::{AuditEvent, AuditOutcome};

use support::{call, start_secure_server, with_token};

/// The audit events recorded for `target` (committed ones: the state).
fn events_for(server: &Server, target: &str) -> Vec<AuditEvent> {
    server.state().access().audit().iter().filter(|event| event.target == target).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_write_and_its_audit_event_are_one_raft_entry() {
    let (server, root, _dir) = start_secure_server().await;
    let body = serde_json::json!({ "items": { "x": "1" } });
    // The bootstrap's own event is committed: nothing else is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.state().access().audit().iter().any(|event| event.action.starts_with("acl.bootstrap")) {
        assert!(std::time::Instant::now() < deadline, "the bootstrap is audited");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = server.state().last_index();
    let (status, answer) = call(&server, with_token("PUT", "/v1/var/app/a", &root, Some(body))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(server.state().last_index(), before + 1, "one entry for the write and its audit event");

    let events = events_for(&server, "/v1/var/app/a");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, "variable.put");
    assert_eq!(events[0].outcome, AuditOutcome::Ok);
    assert_eq!(events[0].name, "bootstrap", "the management token's name");
    assert_ne!(events[0].request_id, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_state_rejects_leaves_one_event_saying_why() {
    let (server, root, _dir) = start_secure_server().await;
    let body = serde_json::json!({ "items": { "x": "1" } });
    let (status, _) = call(&server, with_token("PUT", "/v1/var/app/b", &root, Some(body.clone()))).await;
    assert_eq!(status, StatusCode::OK);

    // A check-and-set on a stale index: rejected when applied.
    let (status, answer) = call(&server, with_token("PUT", "/v1/var/app/b?cas=1", &root, Some(body))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = events_for(&server, "/v1/var/app/b");
        let failed: Vec<&AuditEvent> =
            events.iter().filter(|event| matches!(event.outcome, AuditOutcome::Failed(_))).collect();
        if events.len() == 2 && failed.len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "expected one ok and one failed event: {events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
