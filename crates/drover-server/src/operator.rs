//! Operator views of the servers themselves: per-server status, the
//! cluster health checklist (`drover server health`), snapshots for
//! disaster recovery.

use drover_proto::paths;
use std::time::Duration;

pub use drover_proto::api::{ClusterHealth, LocalStatus, ServerHealth};
use drover_state::{Command, snapshot};
use drover_types::{CodedError, EvalTrigger, Evaluation};

use crate::ids::new_eval_id;

use crate::Result;
use crate::server::Server;

/// The drover version this server runs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit this binary was built from: `DROVER_BUILD_COMMIT` in the
/// environment of `cargo build`, when it was set (no script of ours sets it
/// yet), else unknown.
pub const BUILD_COMMIT: Option<&str> = option_env!("DROVER_BUILD_COMMIT");

/// How long `drover server members` waits for a server to say its version.
const VERSION_PATIENCE: Duration = Duration::from_secs(2);

/// A raft index lag above which a server counts as lagging.
pub const MAX_HEALTHY_LAG: u64 = 1_000;
/// Free disk below which a server counts as short of space, unless
/// configured otherwise (`drover server --min-free-disk-mb`).
pub const MIN_FREE_DISK_BYTES: u64 = 1024 * 1024 * 1024;
/// Below 5 % free, a server is short of space only when this is also under
/// this many bytes: 5 % of a large disk is still plenty of room for Raft.
pub const LOW_FREE_DISK_BYTES: u64 = 10 * 1024 * 1024 * 1024;

impl Server {
    /// This server's view of itself.
    pub async fn local_status(&self) -> LocalStatus {
        let metrics = {
            use openraft::async_runtime::WatchReceiver;
            self.raft().metrics().borrow_watched().clone()
        };
        let raft_state = match metrics.state {
            openraft::ServerState::Leader => "leader",
            openraft::ServerState::Follower => "follower",
            openraft::ServerState::Candidate => "candidate",
            openraft::ServerState::Learner => "learner",
            openraft::ServerState::Shutdown => "shutdown",
        };
        let (disk_free_bytes, disk_total_bytes) = nix::sys::statvfs::statvfs(&self.config().data_dir)
            .map(|stats| (stats.blocks_available() * stats.fragment_size(), stats.blocks() * stats.fragment_size()))
            .unwrap_or((0, 0));
        let num_log_entries =
            metrics.last_log_index.unwrap_or(0).saturating_sub(metrics.purged.map_or(0, |log_id| log_id.index));
        LocalStatus {
            server_id: self.id(),
            address: self.config().advertise_address.clone(),
            raft_state: raft_state.to_owned(),
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            num_log_entries,
            num_agents: self.sessions().num_connected().await,
            disk_free_bytes,
            disk_total_bytes,
            log_problems: self.log_index_problems().await,
            raft_write_stalled: self.inner.disk.stall().map(|stall| format!("{} (since {})", stall.error, stall.since)),
            version: VERSION.to_owned(),
            commit: BUILD_COMMIT.map(str::to_owned),
        }
    }

    /// The members of the cluster with the version each runs, asked of
    /// every other server at once (one that does not answer within
    /// [`VERSION_PATIENCE`] is listed without).
    pub async fn members_with_versions(&self) -> Vec<drover_proto::api::Member> {
        let members = self.members();
        let asked = members.iter().map(|member| async move {
            if member.server_id == self.id() {
                return (Some(VERSION.to_owned()), BUILD_COMMIT.map(str::to_owned));
            }
            match tokio::time::timeout(VERSION_PATIENCE, self.fetch_status(&member.address)).await {
                Ok(Ok(status)) if !status.version.is_empty() => (Some(status.version), status.commit),
                _ => (None, None),
            }
        });
        let versions = futures_util::future::join_all(asked).await;
        members
            .into_iter()
            .zip(versions)
            .map(|(member, (version, commit))| drover_proto::api::Member { version, commit, ..member })
            .collect()
    }

    /// Asks every member for its status and lists what is wrong.
    pub async fn cluster_health(&self) -> ClusterHealth {
        let members = self.members();
        let mut servers = Vec::new();
        for member in &members {
            let status = if member.server_id == self.id() {
                Some(self.local_status().await)
            } else {
                self.fetch_status(&member.address).await.ok()
            };
            servers.push(ServerHealth {
                server_id: member.server_id,
                address: member.address.clone(),
                up: status.is_some(),
                status,
                lag: None,
            });
        }
        let leader_ids: Vec<u64> = servers
            .iter()
            .filter_map(|server| server.status.as_ref())
            .filter(|status| status.raft_state == "leader")
            .map(|status| status.server_id)
            .collect();
        let leader_last_index = servers
            .iter()
            .filter_map(|server| server.status.as_ref())
            .filter(|status| status.raft_state == "leader")
            .map(|status| status.last_log_index)
            .max();
        let mut problems = Vec::new();
        match leader_ids.as_slice() {
            [] => problems.push("no server is leader: writes cannot be committed".to_owned()),
            [_] => {}
            several => {
                problems.push(format!("several servers think they lead ({several:?}); one of them is partitioned"))
            }
        }
        for server in &mut servers {
            let Some(status) = &server.status else {
                problems.push(format!("server {} ({}) does not answer", server.server_id, server.address));
                continue;
            };
            if let Some(leader_last) = leader_last_index {
                let lag = leader_last.saturating_sub(status.applied_index);
                server.lag = Some(lag);
                if lag > MAX_HEALTHY_LAG {
                    problems.push(format!("server {} lags {lag} entries behind the leader", server.server_id));
                }
            }
            if short_of_disk(status.disk_free_bytes, status.disk_total_bytes, self.config().min_free_disk_bytes) {
                problems.push(format!(
                    "server {} has {} MiB free on its data directory's file system",
                    server.server_id,
                    status.disk_free_bytes / (1024 * 1024)
                ));
            }
            if let Some(stall) = &status.raft_write_stalled {
                problems.push(format!(
                    "server {} cannot write its Raft data: {stall}; free space on its data directory's file system \
                     (it goes on by itself, and hands its agents to the other servers meanwhile)",
                    server.server_id
                ));
            }
            for problem in &status.log_problems {
                problems.push(format!("server {} {problem}", server.server_id));
            }
        }
        let voters = members.iter().filter(|member| member.role == "voter").count();
        let up_voters =
            members.iter().zip(&servers).filter(|(member, server)| member.role == "voter" && server.up).count();
        if voters > 1 && up_voters * 2 <= voters {
            problems.push(format!("only {up_voters} of {voters} voters answer: no quorum"));
        }
        ClusterHealth { leader_id: leader_ids.first().copied(), servers, problems }
    }

    pub(crate) async fn fetch_status(&self, address: &str) -> Result<LocalStatus> {
        self.get_from_peer(address, paths::INTERNAL_STATUS).await
    }

    /// The current state as a snapshot file (a consistent read).
    pub async fn save_snapshot(&self) -> Result<Vec<u8>> {
        let state = self.consistent_state().await?;
        snapshot::encode_state(&state)
            .map_err(|error| CodedError::internal(format!("cannot encode the snapshot: {error}")))
    }

    /// Replaces the whole state with a snapshot file, through Raft. With
    /// `keep_access` the running cluster's tokens, policies, enrolled nodes
    /// and audit log stay as they are (an operator's restore); without, they
    /// come from the snapshot too (recovering a lost cluster).
    pub async fn restore_snapshot(&self, bytes: Vec<u8>, keep_access: bool) -> Result<u64> {
        // Refuse garbage before it reaches the log.
        snapshot::decode_state(&bytes)
            .map_err(|error| CodedError::invalid(format!("not a drover snapshot: {error}")))?;
        let response = self.propose(Command::RestoreState { snapshot: bytes, keep_access }).await?.into_result()?;
        tracing::warn!(index = response.index(), "state restored from a snapshot");
        // Reality moved on since the snapshot was taken (tasks stopped,
        // nodes went away): evaluate every job against it.
        let state = self.wait_for_index(response.index(), Duration::from_secs(30)).await?;
        let now = drover_types::Timestamp::now();
        let evals: Vec<Evaluation> = state
            .jobs()
            .filter(|job| !job.is_periodic())
            .map(|job| {
                let mut eval =
                    Evaluation::new(new_eval_id(), job.id.clone(), job.priority, EvalTrigger::JobRegister, now);
                eval.job_modify_index = job.job_modify_index;
                eval
            })
            .collect();
        if !evals.is_empty() {
            self.propose(Command::UpsertEvals { evals }).await?.into_result()?;
        }
        Ok(response.index())
    }
}

/// Whether a server's data directory is short of space: below `min_free`,
/// or below 5 % when that is also under [`LOW_FREE_DISK_BYTES`]. An unknown
/// size (0) is not a problem; a `min_free` of 0 turns the check off.
fn short_of_disk(free_bytes: u64, total_bytes: u64, min_free: u64) -> bool {
    total_bytes > 0
        && min_free > 0
        && (free_bytes < min_free
            || (free_bytes.saturating_mul(20) < total_bytes && free_bytes < LOW_FREE_DISK_BYTES.max(min_free)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_short_of_disk_below_1_gib_or_below_5_percent_and_10_gib() {
        const GIB: u64 = 1024 * 1024 * 1024;
        // The CI machine that was flagged: 18 GiB free of 252 GiB (7 %).
        assert!(!short_of_disk(18 * GIB, 252 * GIB, MIN_FREE_DISK_BYTES));
        assert!(short_of_disk(GIB / 2, 4 * GIB, MIN_FREE_DISK_BYTES), "under 1 GiB, whatever the share");
        assert!(short_of_disk(9 * GIB, 252 * GIB, MIN_FREE_DISK_BYTES), "under 5 % and under 10 GiB");
        assert!(!short_of_disk(12 * GIB, 2000 * GIB, MIN_FREE_DISK_BYTES), "under 5 % but 12 GiB is room enough");
        assert!(!short_of_disk(3 * GIB, 10 * GIB, MIN_FREE_DISK_BYTES), "30 % free");
        assert!(!short_of_disk(0, 0, MIN_FREE_DISK_BYTES), "size unknown");
        assert!(!short_of_disk(GIB / 8, 4 * GIB, 0), "the check turned off");
        assert!(short_of_disk(2 * GIB, 4 * GIB, 3 * GIB), "a higher threshold");
    }
}
