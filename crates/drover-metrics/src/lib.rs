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
//!                                                       ├─▶ Fleet, FleetText ────▶ GET /v1/metrics
//!                                                       └─▶ busiest / NodeSample ─▶ `drover node top|status`
//! ```
//!
//! - [`Sampler`] reads `/proc/stat`, `/proc/loadavg`, `/proc/meminfo`,
//!   `/proc/mounts` (plus `statvfs` per mount), `/proc/diskstats`, `/proc/net/dev`,
//!   `/proc/uptime`, `/proc/pressure/*`, `/proc/sys/kernel/*` (uname) and, per task, a cgroup v2 directory or a set of pids. It
//!   keeps the previous counters so that CPU figures are "since the previous
//!   sample". It never fails: a part that cannot be read is left empty and
//!   logged once (see [`Sampler`]).
//! - [`NodeSample`] is the plain data the agent sends every 10 s; it is small
//!   and serde-friendly, with [`DiskSample`], [`NetSample`] and
//!   [`TaskSample`] inside.
//! - [`render_fleet`] writes a [`Fleet`] (the nodes' samples, statuses and
//!   the owners of their tasks) after a registry of drover's own metrics in
//!   the OpenMetrics text format, with node_exporter's metric names and
//!   `node`, `hostgroup` and `environment` labels ([`NodeLabels`]); serve it
//!   with [`CONTENT_TYPE`]. [`render_prometheus`] renders bare samples.
//!   [`FleetText`] is the same text as chunks of about 256 kB, for a server
//!   to stream without holding the whole answer; [`GzipChunks`] compresses
//!   those chunks into one gzip stream for a scraper that accepts gzip
//!   ([`accepts_gzip`]).
//! - [`Counter`], [`Histogram`] and [`OwnText`]: the atomics a server
//!   counts its own work with (Raft, HTTP, scheduler, log ingest) and the
//!   text they are written in, placed before the fleet's `# EOF`.
//! - [`busiest`] orders nodes by a [`SortBy`] key for `drover node top`.
//!
//! The crate knows no HTTP, no async runtime and no clock: the sampler does
//! blocking file reads (well under a millisecond to a few milliseconds, so an
//! async agent calls it from `spawn_blocking`), and times are passed in as
//! Unix milliseconds.

#![warn(missing_docs)]

mod error;
mod gzip;
mod own;
mod prometheus;
mod sampler;
mod text;
mod top;

pub use drover_types::usage::{
    AgentSample, BlockDeviceSample, CpuSample, DiskSample, NetSample, NodeSample, PressureSample, TaskSample,
    UnameSample,
};
pub use error::{Error, Result};
pub use gzip::{GzipChunks, accepts_gzip};
pub use own::{Counter, Histogram, Kind, LATENCY_BUCKETS, OwnText, SLOW_BUCKETS};
pub use prometheus::{CONTENT_TYPE, Fleet, FleetNode, NodeLabels, TaskOwner, render_fleet, render_prometheus};
pub use sampler::{Sampler, TaskProbe};
pub use text::FleetText;
pub use top::{SortBy, busiest};
