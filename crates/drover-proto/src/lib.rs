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

/// Version of the agent session protocol. A server refuses agents with a
/// different major protocol and says which drover version to run.
pub const SESSION_PROTOCOL: u32 = 3;
