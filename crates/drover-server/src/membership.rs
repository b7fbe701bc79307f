//! Whether this data directory belongs to a cluster, and refusing to start
//! when its Raft data does not match.
//!
//! A server records `DATA_DIR/cluster-member` (its server id) once its Raft
//! node is part of a cluster. From then on a missing or empty Raft log is
//! not a new cluster: starting one would elect an empty leader (a lone
//! server) whose agents stop every task they run, or a second voter that
//! has forgotten its vote. Such a start is refused with the ways out:
//! restore a snapshot, rejoin, or `--forget-cluster` on purpose. A
//! `server-id` that no longer matches the recorded one is refused too (it
//! would run outside its own membership).

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_types::CodedError;

use crate::Server;

/// The file that says this data directory is a cluster member.
const MEMBER_FILE: &str = "cluster-member";

fn member_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MEMBER_FILE)
}

/// The server id recorded when this data directory joined a cluster, if
/// it did.
pub(crate) fn recorded_member(data_dir: &Path) -> Result<Option<u64>, CodedError> {
    let path = member_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            CodedError::internal(format!(
                "{} does not hold a server id: restore it from a backup, or start with --forget-cluster to begin anew",
                path.display()
            ))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CodedError::internal(format!("cannot read {}: {error}", path.display()))),
    }
}

/// Refuses a `server-id` that differs from the one recorded at joining.
pub(crate) fn check_same_identity(data_dir: &Path, recorded: Option<u64>, server_id: u64) -> Result<(), CodedError> {
    match recorded {
        Some(member_id) if member_id != server_id => Err(CodedError::internal(format!(
            "{} says {server_id} but this data directory joined its cluster as server {member_id}: \
             put back the server-id file ({member_id}), or start with --forget-cluster to begin as a new server \
             (then remove the old one from the cluster with `drover operator raft remove-peer {member_id}`)",
            data_dir.join("server-id").display()
        ))),
        _ => Ok(()),
    }
}

/// Refuses to start a recorded member whose Raft log is missing or empty.
pub(crate) fn check_raft_data(data_dir: &Path, recorded: Option<u64>, initialized: bool) -> Result<(), CodedError> {
    match recorded {
        Some(member_id) if !initialized => Err(CodedError::internal(format!(
            "this server (id {member_id}) was a member of a cluster, but its Raft data in {} is missing or empty; \
             starting would make a new, empty cluster. Recover in one of these ways (docs/operations.md, \
             \"What drover survives\"): put the Raft data back from a backup; or, if the other servers still \
             have a quorum, start with --forget-cluster --join <their addresses> and remove the old id with \
             `drover operator raft remove-peer {member_id}`; or start with --forget-cluster alone and restore \
             a snapshot (`drover operator snapshot restore FILE`)",
            data_dir.join("raft").display()
        ))),
        _ => Ok(()),
    }
}

/// Moves the Raft data aside and forgets the server id and membership, so
/// that the server starts as a new one (`--forget-cluster`).
pub(crate) fn forget_cluster(data_dir: &Path) -> Result<(), CodedError> {
    let raft_dir = data_dir.join("raft");
    if raft_dir.exists() {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let aside = data_dir.join(format!("raft.forgotten-{seconds}"));
        std::fs::rename(&raft_dir, &aside)
            .map_err(|error| CodedError::internal(format!("cannot move {} aside: {error}", raft_dir.display())))?;
        tracing::warn!(moved_to = %aside.display(), "--forget-cluster: the old Raft data was moved aside");
    }
    for name in [MEMBER_FILE, "server-id"] {
        let path = data_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(CodedError::internal(format!("cannot remove {}: {error}", path.display())));
            }
        }
    }
    tracing::warn!("--forget-cluster: starting as a new server with a new id");
    Ok(())
}

/// Records membership once this server's Raft node is initialised (at
/// once, after a single-server bootstrap, or once a cluster formed or
/// let it join).
pub(crate) fn spawn_recorder(server: Server, already_recorded: bool) {
    if already_recorded {
        return;
    }
    tokio::spawn(async move {
        loop {
            if server.shutdown_token().is_cancelled() {
                return;
            }
            if server.raft().is_initialized().await.unwrap_or(false) {
                let path = member_path(&server.config().data_dir);
                let written = std::fs::write(&path, format!("{}\n", server.id()));
                if let Err(error) = written {
                    tracing::warn!(%error, path = %path.display(), "cannot record cluster membership");
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
