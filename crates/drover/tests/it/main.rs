//! Multi-process tests of the real `drover` binary: servers, agents and
//! tasks are real processes on this machine, talking over loopback.
//!
//! Run with `cargo test -p drover --test it`. Each test builds its own
//! cluster in a temporary directory and kills every process it started
//! (tasks included) when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod alloc_commands;
mod config_reload;
mod copy;
mod deployments;
mod dev_mode;
mod failures;
mod fleet;
mod ha;
mod hardening;
mod inventory;
mod job_kinds;
mod job_plan;
mod log_replication;
mod logs;
mod machines;
mod new_user;
mod node_exporter_full;
mod node_identity;
mod react;
mod scheduling;
mod security;
mod self_metrics;
mod services;
mod sinks;
mod task_files;
mod templates;
mod ui;
mod upgrade;
