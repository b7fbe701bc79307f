//! drover's server runtime.
//!
//! A [`Server`] owns the Raft node (openraft over `drover-state`), the
//! transport to its peers, the registry of connected agent sessions, and —
//! while it is the leader — the leader's loops (`leader/`): the evaluation
//! loop that runs the pure scheduler and sends its plans to be committed
//! (the state machine re-checks each plan against the latest state with
//! `drover_state::verify_plan`), the heartbeat tracker that marks silent
//! nodes down, the drainer, the deployment watcher, the periodic dispatcher
//! and the reactor (alert rules and hammers). Each loop is a thin shell
//! around a pure step (`leader::on_change_or_tick`).
//!
//! ```text
//!            propose (forwarded to the leader)        apply (every server)
//!  API ───▶ Server::propose ──▶ Raft log ──▶ StateMachineStore ──▶ watch<Arc<State>>
//!                                                                   │
//!      leader only:  leader::evals ─▶ scheduler::schedule ─▶ ApplyPlan ┘
//!                    leader::heartbeats (Tracker::step) ─▶ UpdateNodeStatus
//!                    leader::{drainer, deployments, periodic, react, node_gc}
//!      every server: sessions ─▶ agents (their allocations)
//! ```

pub mod acl;
pub mod alloc_lifecycle;
pub mod audit;
pub mod cluster;
pub mod config;
pub mod exec;
mod ids;
pub mod inventory;
mod leader;
pub mod logs;
pub mod machines;
mod membership;
mod metrics;
pub use membership::{RecoverySummary, recover_from_data_dir};
mod controls;
mod dispatch;
pub mod dns;
pub mod network;
pub mod operator;
mod periodic;
pub mod react;
pub mod security;
pub mod self_metrics;
mod server;
pub mod services;
mod sessions;
mod sinks;
mod template_inputs;
mod updates;
pub mod usage;
pub mod usage_blocks;
pub mod usage_history;
mod variables;
mod view;

pub use config::{Bootstrap, HeartbeatConfig, ServerConfig};
pub use controls::DrainRequest;
pub use logs::{DEFAULT_LOG_MAX_SKEW, LogSettings};
pub use server::{Server, ServerStatus};
pub use sessions::{AgentSession, SessionOutbound};
pub use view::StateView;

/// Results of server operations: errors carry a closed code
/// ([`drover_types::ErrorCode`]) that the API maps to an HTTP status.
pub type Result<T> = std::result::Result<T, drover_types::CodedError>;

/// A node filter as given to `--filter` / `?filter=` (docs/nodes.md); empty
/// or absent means none.
pub fn parse_node_filter(text: Option<&str>) -> Result<Option<drover_filter::Filter>> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => drover_filter::Filter::parse(text)
            .map(Some)
            .map_err(|error| drover_types::CodedError::invalid(format!("bad filter: {error}\nsee docs/nodes.md"))),
        None => Ok(None),
    }
}
