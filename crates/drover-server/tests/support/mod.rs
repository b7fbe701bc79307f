//! What several of the server's tests share: one server of its own
//! cluster, started in a temporary directory.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_server::{Server, ServerConfig};

/// Starts a single server with its data under `dir` and waits until it
/// leads its cluster.
pub async fn start_single_server(dir: &Path) -> Server {
    let server = Server::start(ServerConfig::new(dir.join("server"), "127.0.0.1:1".to_owned()))
        .await
        .expect("the server starts");
    let leader_deadline = Instant::now() + Duration::from_secs(30);
    while !server.status().is_leader {
        assert!(Instant::now() < leader_deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}
