//! Version skew between agents and servers (docs/operations.md,
//! "Upgrades"): a server accepts agents one session protocol older than
//! its own, sends them nothing they cannot read, and refuses with a
//! message the requests they would not understand; anything older or
//! newer is refused at the handshake, saying what to upgrade.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use drover_proto::session::{RequestBody, ServerMessage};
use drover_proto::{OLDEST_AGENT_PROTOCOL, SESSION_PROTOCOL};
use drover_types::{AllocId, fixtures};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_one_protocol_older_is_served_only_what_it_reads() {
    assert_eq!(OLDEST_AGENT_PROTOCOL + 1, SESSION_PROTOCOL, "agents may lag the servers by one protocol");
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_single_server(dir.path()).await;

    let registration = fixtures::registration("old1");
    let node_id = registration.id.clone();
    let (_session, mut outbound) = server.open_session(OLDEST_AGENT_PROTOCOL, registration).await.expect("accepted");
    let mut first = Vec::new();
    while let Ok(message) = outbound.try_recv() {
        first.push(message);
    }
    assert!(matches!(first.first(), Some(ServerMessage::Welcome { .. })), "{first:?}");
    assert!(first.iter().all(|message| message.since_protocol() <= OLDEST_AGENT_PROTOCOL), "{first:?}");

    // What it understands goes out; what it would not is refused here.
    server.request_agent(&node_id, RequestBody::Cancel { request_id: 7 }).await.expect("an old request");
    let restart = RequestBody::RestartTasks { alloc_id: AllocId::new("a1"), task: None };
    let error = server.request_agent(&node_id, restart).await.expect_err("a request the old agent cannot read");
    assert!(
        error
            .message
            .contains(&format!("speaks session protocol {OLDEST_AGENT_PROTOCOL}, and this needs {SESSION_PROTOCOL}"))
            && error.message.contains("upgrade drover on that node"),
        "{}",
        error.message
    );

    // The current protocol gets everything.
    let current = fixtures::registration("new1");
    let current_id = current.id.clone();
    let (_current_session, _current_outbound) = server.open_session(SESSION_PROTOCOL, current).await.expect("accepted");
    let restart = RequestBody::RestartTasks { alloc_id: AllocId::new("a1"), task: None };
    server.request_agent(&current_id, restart).await.expect("a current agent reads it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_two_protocols_older_or_newer_than_the_server_are_refused_saying_what_to_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_single_server(dir.path()).await;

    let error = server.open_session(OLDEST_AGENT_PROTOCOL - 1, fixtures::registration("older")).await.unwrap_err();
    assert!(error.message.contains("upgrade the agent"), "{}", error.message);
    assert!(
        error.message.contains(&format!("accepts {OLDEST_AGENT_PROTOCOL} to {SESSION_PROTOCOL}")),
        "{}",
        error.message
    );
    let error = server.open_session(SESSION_PROTOCOL + 1, fixtures::registration("newer")).await.unwrap_err();
    assert!(error.message.contains("upgrade the servers first"), "{}", error.message);
    assert_eq!(server.state().num_nodes(), 0, "a refused agent registers nothing");
}
