//! drover's wire types.
//!
//! - [`session`]: the messages of the long-lived agent ⇄ server session;
//! - [`api`]: request and response bodies of the HTTP API under `/v1`;
//! - [`lifecycle`]: those of the allocation lifecycle routes.
//!
//! This crate is data only: the transports (axum on the server, reqwest
//! and tungstenite on the clients) live in `drover-api`, `drover-client`
//! and `drover-agent`.

pub mod api;
pub mod lifecycle;
pub mod machines;
pub mod paths;
pub mod session;

/// Version of the agent session protocol this build speaks. Raised
/// whenever a server may send something an older agent cannot read:
///
/// | protocol | adds |
/// |---|---|
/// | 3 | the first release's session |
/// | 4 | `TemplateInputs`; the `RestartTasks`, `SignalTasks` and `ExecInTask` requests |
///
/// Messages carry named fields, so a field added with a default needs no
/// new number. [`session::ServerMessage::since_protocol`] says which
/// protocol each message needs.
pub const SESSION_PROTOCOL: u32 = 4;

/// The oldest agent protocol a server accepts: one release behind, so
/// agents are upgraded after the servers (docs/operations.md, "Upgrades").
/// A server sends such an agent nothing it cannot read and refuses, with a
/// message, the requests it would not understand.
pub const OLDEST_AGENT_PROTOCOL: u32 = 3;
