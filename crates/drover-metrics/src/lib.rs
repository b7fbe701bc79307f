//! Node and task usage metrics for drover: sampling on the agent, and the
//! Prometheus exposition of `/v1/metrics` on the server (which keeps each
//! node's latest sample; Prometheus keeps the history).
//!
//! The pieces, in the order a number travels through them:
//!
//! ```text
//!  agent                         session (MessagePack)      server
//!  Sampler::sample(now, probes) ──── NodeSample ─────▶ latest sample per node
//!    /proc, statvfs, cgroup v2                          │
//!                                                       ├─▶ render_prometheus ─▶ GET /v1/metrics
//!                                                       └─▶ busiest / NodeSample ─▶ `drover node top|status`
//! ```
//!
//! - [`Sampler`] reads `/proc/stat`, `/proc/loadavg`, `/proc/meminfo`,
//!   `/proc/mounts` (plus `statvfs` per mount), `/proc/net/dev`,
//!   `/proc/uptime` and, per task, a cgroup v2 directory or a set of pids. It
//!   keeps the previous counters so that CPU figures are "since the previous
//!   sample". It never fails: a part that cannot be read is left empty and
//!   logged once (see [`Sampler`]).
//! - [`NodeSample`] is the plain data the agent sends every 10 s; it is small
//!   and serde-friendly, with [`DiskSample`], [`NetSample`] and
//!   [`TaskSample`] inside.
//! - [`render_prometheus`] (and [`encode_node_metrics`] for a registry of
//!   drover's own metrics) writes the samples of many nodes in the
//!   OpenMetrics text format with `node`, `hostgroup` and `environment`
//!   labels ([`NodeLabels`]); serve it with [`CONTENT_TYPE`].
//! - [`busiest`] orders nodes by a [`SortBy`] key for `drover node top`.
//!
//! The crate knows no HTTP, no async runtime and no clock: the sampler does
//! blocking file reads (well under a millisecond to a few milliseconds, so an
//! async agent calls it from `spawn_blocking`), and times are passed in as
//! Unix milliseconds.

#![warn(missing_docs)]

mod error;
mod prometheus;
mod sampler;
mod top;

pub use drover_types::usage::{DiskSample, NetSample, NodeSample, TaskSample};
pub use error::{Error, Result};
pub use prometheus::{CONTENT_TYPE, NodeLabels, encode_node_metrics, render_prometheus};
pub use sampler::{Sampler, TaskProbe};
pub use top::{SortBy, busiest};
