//! Integration tests of drover-executor against real processes: the executor
//! shim is the `drover-executor-helper` binary of this crate, tasks are `sh`
//! scripts, and every assertion looks at what really happened (files,
//! `/proc`, cgroups). One test binary, one module per area.

// Test helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used)]

mod formats;
mod isolation;
mod lifecycle;
mod logs;
mod reattach;
mod support;
