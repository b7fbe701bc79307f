//! drover's replicated state.
//!
//! - [`command`]: the commands of the Raft log and their responses;
//! - [`state`]: the in-memory [`State`] and its deterministic `apply`;
//! - [`react`]: the applied site, alerts, silences and hammer runs;
//! - [`log_store`]: the Raft log, vote and commit index in redb;
//! - [`disk`]: waiting out a full disk instead of stopping Raft;
//! - [`recover`]: the state of a lost cluster from one server's data;
//! - [`state_machine`]: openraft's state machine over [`State`], with
//!   snapshots on disk;
//! - [`snapshot`] and [`codec`]: the versioned persisted formats.

pub mod access;
pub mod codec;
pub mod command;
pub mod disk;
pub mod log_store;
pub mod raft_types;
pub mod react;
pub mod recover;
pub mod snapshot;
pub mod state;
pub mod state_machine;

pub use command::{Command, CommandResponse};
pub use log_store::LogStore;
pub use raft_types::TypeConfig;
pub use state::{State, TableIndexes, purge_refusal};
pub use state_machine::{SnapshotStore, StateMachineStore};

/// Opens the log store and the state machine of a server whose Raft data
/// lives in `directory` (`raft.redb` and `snapshots/`).
///
/// `health` records writes of either that wait for disk space.
pub fn open_storage(
    directory: &std::path::Path,
    health: std::sync::Arc<disk::DiskHealth>,
) -> std::io::Result<(LogStore, StateMachineStore, tokio::sync::watch::Receiver<std::sync::Arc<State>>)> {
    std::fs::create_dir_all(directory)?;
    let log_store = LogStore::open(&directory.join("raft.redb"), std::sync::Arc::clone(&health))?;
    let (state_machine, receiver) = StateMachineStore::open(&directory.join("snapshots"), health)?;
    Ok((log_store, state_machine, receiver))
}
