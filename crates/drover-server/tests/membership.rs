//! A server whose data directory belonged to a cluster refuses to start
//! over missing Raft data or a changed server id (hardening issue, item 4),
//! and `--forget-cluster` is the deliberate way out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use drover_server::{Server, ServerConfig};

fn config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir.to_path_buf(), "127.0.0.1:1".to_owned());
    // Snapshots early, so that the Raft data is a snapshot plus a log, as on
    // any server that has run for a while.
    config.snapshot_every = 5;
    config
}

/// Starts a single server, writes enough for a snapshot, waits until it
/// recorded its membership, stops it.
async fn start_and_stop(data_dir: &Path) -> u64 {
    let server = Server::start(config(data_dir)).await.unwrap();
    for _ in 0..100 {
        if server.status().is_leader && data_dir.join("cluster-member").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(data_dir.join("cluster-member").exists(), "membership is recorded");
    for number in 0..12 {
        let items = std::collections::BTreeMap::from([("n".to_owned(), number.to_string())]);
        server.put_variable(&format!("v/{number}"), items, None).await.unwrap();
    }
    for _ in 0..100 {
        if data_dir.join("raft/snapshots/snapshot.bin").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(data_dir.join("raft/snapshots/snapshot.bin").exists(), "a snapshot was taken");
    let id = server.id();
    server.shutdown().await;
    id
}

#[tokio::test]
async fn a_member_without_its_raft_log_refuses_to_start_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    start_and_stop(&data_dir).await;

    // The snapshot is still there: it must not pass for the Raft data (it
    // lacks the vote).
    std::fs::remove_file(data_dir.join("raft/raft.redb")).unwrap();
    let error = Server::start(config(&data_dir)).await.expect_err("refused");
    assert!(error.message.contains("missing or empty"), "{}", error.message);
    assert!(error.message.contains("--forget-cluster"), "{}", error.message);

    // An empty file instead of the log is refused just the same.
    std::fs::write(data_dir.join("raft/raft.redb"), b"").unwrap();
    let error = Server::start(config(&data_dir)).await.expect_err("refused");
    assert!(!error.message.is_empty());

    // Deliberately: the old data moves aside and a new server starts.
    let mut forget = config(&data_dir);
    forget.forget_cluster = true;
    let server = Server::start(forget).await.unwrap();
    server.shutdown().await;
    let moved_aside = std::fs::read_dir(&data_dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().starts_with("raft.forgotten-"));
    assert!(moved_aside);
}

#[tokio::test]
async fn forget_cluster_on_a_consistent_data_directory_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let id = start_and_stop(&data_dir).await;
    let mut forget = config(&data_dir);
    forget.forget_cluster = true;
    let server = Server::start(forget).await.unwrap();
    assert_eq!(server.id(), id, "a flag left in a unit file must not wipe a healthy server");
    for _ in 0..100 {
        if server.consistent_state().await.is_ok_and(|state| state.variable("v/11").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.consistent_state().await.unwrap().variable("v/11").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_changed_server_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let id = start_and_stop(&data_dir).await;
    std::fs::write(data_dir.join("server-id"), format!("{}\n", id + 1)).unwrap();
    let error = Server::start(config(&data_dir)).await.expect_err("refused");
    assert!(error.message.contains(&format!("joined its cluster as server {id}")), "{}", error.message);

    // Put back, it starts with its state.
    std::fs::write(data_dir.join("server-id"), format!("{id}\n")).unwrap();
    let server = Server::start(config(&data_dir)).await.unwrap();
    assert_eq!(server.id(), id);
    server.shutdown().await;
}
