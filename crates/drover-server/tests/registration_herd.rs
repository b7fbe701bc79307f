//! A thundering herd of agents (a fleet reconnecting at once after a server
//! restart) is registered quickly, its registrations sharing Raft entries
//! (hardening issue, "Load held at fleet scale"), and a refused agent among
//! them costs the others nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use drover_types::{NodeId, NodeRegistration, NodeStatus, fixtures};

/// Agent `number` of the herd: the node `herd0042` with the id `node-0042`
/// (ids and names differ, as on a real fleet).
fn registration(number: usize) -> NodeRegistration {
    NodeRegistration {
        id: NodeId::new(format!("node-{number:04}")),
        ..fixtures::registration(&format!("herd{number:04}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_registrations_share_raft_entries_and_all_succeed() {
    const NUM_AGENTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_single_server(dir.path()).await;
    let index_before = server.state().last_index();

    let started = Instant::now();
    let mut sessions = tokio::task::JoinSet::new();
    for number in 0..NUM_AGENTS {
        let server = server.clone();
        sessions.spawn(async move { server.open_session(drover_proto::SESSION_PROTOCOL, registration(number)).await });
    }
    // A bad agent in the middle of the herd is refused alone.
    let mut nameless = registration(NUM_AGENTS);
    nameless.name = String::new();
    let refused = {
        let server = server.clone();
        tokio::spawn(async move { server.open_session(drover_proto::SESSION_PROTOCOL, nameless).await })
    };
    let mut opened = Vec::new();
    while let Some(joined) = tokio::time::timeout(Duration::from_secs(30), sessions.join_next()).await.expect("in time")
    {
        opened.push(joined.unwrap().expect("registered"));
    }
    let elapsed = started.elapsed();
    let error = refused.await.unwrap().expect_err("the nameless agent is refused");
    assert!(error.message.contains("empty node name or id"), "{}", error.message);

    let state = server.state();
    assert_eq!(opened.len(), NUM_AGENTS);
    assert_eq!(state.num_nodes(), NUM_AGENTS);
    for number in 0..NUM_AGENTS {
        let node = state.node(&NodeId::new(format!("node-{number:04}"))).expect("registered node");
        assert_eq!(node.status, NodeStatus::Ready);
        assert_eq!(node.name, format!("herd{number:04}"));
    }
    assert_eq!(server.sessions().num_connected().await, NUM_AGENTS);
    let num_entries = state.last_index() - index_before;
    eprintln!("{NUM_AGENTS} registrations in {elapsed:?}, {num_entries} Raft entries");
    assert!(
        num_entries < NUM_AGENTS as u64 / 2,
        "registrations are group-committed: {num_entries} entries for {NUM_AGENTS} registrations"
    );
    drop(opened);
    server.shutdown().await;
}
