//! The leader's loops. They run only on the current Raft leader, start when
//! this server becomes leader and stop (their token is cancelled) when it
//! stops being leader.

mod actions;
mod console;
mod deployments;
mod drainer;
mod evals;
mod heartbeats;
mod periodic;
mod react;

pub(crate) use react::log_query;

use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// Watches Raft metrics and starts or stops the leader's loops.
pub(crate) fn spawn_leadership_watch(server: Server) {
    tokio::spawn(async move {
        let mut metrics = server.raft().metrics();
        let shutdown = server.shutdown_token().clone();
        let mut leadership: Option<CancellationToken> = None;
        // A leader that cannot write its Raft data (disk full) runs no
        // leader loops: what they would decide (nodes down after its agents
        // moved away, say) must not be proposed late, once the disk frees.
        let mut disk_check = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            let is_leader =
                metrics.borrow_and_update().state == ServerState::Leader && server.inner.disk.stall().is_none();
            match (is_leader, leadership.is_some()) {
                (true, false) => {
                    let token = shutdown.child_token();
                    tracing::info!(server_id = server.id(), "became leader");
                    tokio::spawn(lead(server.clone(), token.clone()));
                    leadership = Some(token);
                }
                (false, true) => {
                    tracing::info!(server_id = server.id(), "lost leadership");
                    if let Some(token) = leadership.take() {
                        token.cancel();
                    }
                }
                _ => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = metrics.changed() => if changed.is_err() { return },
                _ = disk_check.tick() => {}
            }
        }
    });
}

/// Catches up with everything committed, then runs the loops.
async fn lead(server: Server, token: CancellationToken) {
    let leadership_started = Instant::now();
    // The new leader must apply every committed entry before acting on the
    // state, or it could re-schedule work that was already placed.
    loop {
        if token.is_cancelled() {
            return;
        }
        match server.raft().ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(_) => break,
            Err(error) => {
                tracing::debug!(%error, "leader not ready yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tokio::spawn(evals::run(server.clone(), token.clone()));
    tokio::spawn(deployments::run(server.clone(), token.clone()));
    tokio::spawn(drainer::run(server.clone(), token.clone()));
    tokio::spawn(periodic::run(server.clone(), token.clone()));
    tokio::spawn(react::run(server.clone(), token.clone()));
    tokio::spawn(heartbeats::run(server, token, leadership_started));
}
