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
/// it did. An empty file (a crash while it was first written) counts as not
/// recorded: it is written again once Raft is initialised.
fn recorded_member(data_dir: &Path) -> Result<Option<u64>, CodedError> {
    read_id_file(&member_path(data_dir))
}

fn read_id_file(path: &Path) -> Result<Option<u64>, CodedError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            CodedError::internal(format!(
                "{} does not hold a server id: put back the file from a backup, or write the id that \
                 `drover server members` shows for this server",
                path.display()
            ))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CodedError::internal(format!("cannot read {}: {error}", path.display()))),
    }
}

/// Checks, before anything is opened, that this data directory is what a
/// cluster member's must be: a recorded member keeps its `server-id` and
/// has Raft data (a vote or log entries in `raft/raft.redb`; a snapshot
/// alone is not enough, it lacks the vote). On a mismatch the start is
/// refused with the ways out, unless `forget_cluster` asks to begin anew
/// (then the old data is moved aside). `forget_cluster` on a consistent
/// directory does nothing but warn, so a flag left in a unit file never
/// wipes a healthy server. Returns the recorded member id.
pub(crate) async fn check_data_dir(data_dir: &Path, forget_cluster: bool) -> Result<Option<u64>, CodedError> {
    let Some(member_id) = recorded_member(data_dir)? else {
        if forget_cluster {
            tracing::warn!("--forget-cluster ignored: this data directory has not joined a cluster");
        }
        return Ok(None);
    };
    let id_path = data_dir.join("server-id");
    let refusal = match read_id_file(&id_path)? {
        Some(server_id) if server_id != member_id => Some(CodedError::internal(format!(
            "{} says {server_id} but this data directory joined its cluster as server {member_id}: \
             put back the server-id file ({member_id}), or start with --forget-cluster to begin as a new server \
             (then remove the old one from the cluster with `drover operator raft remove-peer {member_id}`)",
            id_path.display()
        ))),
        _ => {
            let raft_dir = data_dir.join("raft");
            let has_history = drover_state::recover::has_raft_history(&raft_dir).await.map_err(|error| {
                CodedError::internal(format!("cannot read the Raft data in {}: {error}", raft_dir.display()))
            })?;
            (!has_history).then(|| {
                CodedError::internal(format!(
                    "this server (id {member_id}) was a member of a cluster, but its Raft log in {} is missing or \
                     empty; starting would make a new, empty cluster or a voter that forgot its vote. Recover in \
                     one of these ways (docs/operations.md, \"What drover survives\"): put the Raft data back \
                     from a backup; or, if the other servers still have a quorum, start with --forget-cluster \
                     --join <their addresses> and remove the old id with `drover operator raft remove-peer \
                     {member_id}`; or start with --forget-cluster alone and restore a snapshot (`drover operator \
                     snapshot restore FILE`)",
                    raft_dir.display()
                ))
            })
        }
    };
    match refusal {
        None => {
            if forget_cluster {
                tracing::warn!("--forget-cluster ignored: this server's data is consistent; remove the flag");
            }
            Ok(Some(member_id))
        }
        Some(refusal) if !forget_cluster => Err(refusal),
        Some(_) => {
            forget_cluster_now(data_dir)?;
            Ok(None)
        }
    }
}

/// Moves the Raft data aside and forgets the server id and membership, so
/// that the server starts as a new one (`--forget-cluster`).
fn forget_cluster_now(data_dir: &Path) -> Result<(), CodedError> {
    if let Some(aside) = set_raft_data_aside(data_dir, "forgotten")? {
        tracing::warn!(moved_to = %aside.display(), "--forget-cluster: the old Raft data was moved aside");
    }
    tracing::warn!("--forget-cluster: starting as a new server with a new id");
    Ok(())
}

/// Moves `DATA_DIR/raft` to `raft.<label>-<unix seconds>` (returned, when
/// there was one) and forgets the server id and the membership, so that
/// the next start is a new server.
fn set_raft_data_aside(data_dir: &Path, label: &str) -> Result<Option<PathBuf>, CodedError> {
    let raft_dir = data_dir.join("raft");
    let mut moved_to = None;
    if raft_dir.exists() {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let aside = data_dir.join(format!("raft.{label}-{seconds}"));
        std::fs::rename(&raft_dir, &aside)
            .map_err(|error| CodedError::internal(format!("cannot move {} aside: {error}", raft_dir.display())))?;
        moved_to = Some(aside);
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
    Ok(moved_to)
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never a torn one: a temporary file, fsync, rename, fsync of the
/// folder.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    if let Some(folder) = path.parent() {
        std::fs::File::open(folder)?.sync_all()?;
    }
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
                let id = server.id();
                let written =
                    tokio::task::spawn_blocking(move || write_durably(&path, format!("{id}\n").as_bytes())).await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "cannot record cluster membership"),
                    Err(error) => tracing::warn!(%error, "cannot record cluster membership"),
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The state a recovered server restores once it leads its new cluster
/// (written by `drover operator raft recover`).
const RECOVER_FILE: &str = "recover.snapshot";

/// What `drover operator raft recover` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverySummary {
    /// The last Raft index the recovered state includes.
    pub last_index: u64,
    /// Log entries replayed after the latest snapshot.
    pub num_replayed: u64,
    /// Of those, entries past the commit index the server had recorded.
    pub num_beyond_commit: u64,
    /// Jobs and nodes in the recovered state.
    pub num_jobs: usize,
    /// Nodes in the recovered state.
    pub num_nodes: usize,
    /// Where the old Raft data was moved.
    pub moved_aside: PathBuf,
}

/// Prepares a stopped server's data directory to start a new one-server
/// cluster with the state it knew (offline; the server must not run): the
/// state of its snapshot and log is written to `recover.snapshot`, its Raft
/// data moved aside, its server id and membership forgotten. Started next
/// without `--bootstrap-expect`/`--join`, it forms a cluster of one and
/// restores that state once it leads.
pub async fn recover_from_data_dir(data_dir: &Path) -> Result<RecoverySummary, CodedError> {
    let raft_dir = data_dir.join("raft");
    if !raft_dir.exists() {
        return Err(CodedError::invalid(format!(
            "{} has no Raft data: give the data directory of a server of the lost cluster",
            data_dir.display()
        )));
    }
    let recovered = drover_state::recover::read_state(&raft_dir).await.map_err(|error| {
        CodedError::invalid(format!(
            "cannot read the Raft data in {}: {error}. Is the server still running? Stop it first",
            raft_dir.display()
        ))
    })?;
    let bytes = drover_state::snapshot::encode_state(&recovered.state)
        .map_err(|error| CodedError::internal(format!("cannot encode the recovered state: {error}")))?;
    let file = data_dir.join(RECOVER_FILE);
    write_durably(&file, &bytes)
        .map_err(|error| CodedError::internal(format!("cannot write {}: {error}", file.display())))?;
    let moved_aside = set_raft_data_aside(data_dir, "before-recover")?.unwrap_or_else(|| raft_dir.clone());
    Ok(RecoverySummary {
        last_index: recovered.last_index,
        num_replayed: recovered.num_replayed,
        num_beyond_commit: recovered.num_beyond_commit,
        num_jobs: recovered.state.jobs().count(),
        num_nodes: recovered.state.nodes().count(),
        moved_aside,
    })
}

/// Restores `recover.snapshot` once this server leads, then renames it, so
/// it is restored once.
pub(crate) fn spawn_recovery_restore(server: Server) {
    let file = server.config().data_dir.join(RECOVER_FILE);
    if !file.exists() {
        return;
    }
    tokio::spawn(async move {
        loop {
            if server.shutdown_token().is_cancelled() {
                return;
            }
            if server.status().is_leader && server.consistent_state().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, file = %file.display(), "cannot read the recovered state");
                return;
            }
        };
        match server.restore_snapshot(bytes, false).await {
            Ok(index) => {
                let done = file.with_extension("snapshot.restored");
                if let Err(error) = std::fs::rename(&file, &done) {
                    tracing::warn!(%error, "cannot rename the restored recovery file");
                }
                tracing::warn!(index, "the recovered state was restored into this new cluster");
            }
            Err(error) => tracing::error!(%error, "cannot restore the recovered state; restart the server to retry"),
        }
    });
}
