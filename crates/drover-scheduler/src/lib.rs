//! drover's scheduler: given a snapshot of the cluster, a job and the
//! evaluation that asks for it, compute the [`Plan`] that brings the job's
//! allocations to what the job wants.
//!
//! The crate is pure: no async runtime, no clock (`now` is an argument), no
//! I/O, and randomness comes from the caller's generator. The leader runs
//! [`schedule`] on a snapshot, re-checks the plan with [`verify_plan`]
//! against the latest state, and commits what was accepted. The design
//! follows Nomad's scheduler:
//!
//! ```text
//!  Evaluation + Job + ClusterView (snapshot)
//!        │
//!        ▼
//!  ┌────────────┐  per task group: which allocations to keep, stop,
//!  │ reconcile  │  update in place, replace (lost, failed, draining,
//!  └────────────┘  destructive update) and how many new ones to place
//!        │  placement requests                       │ stops, in-place
//!        ▼                                           │ updates, follow-up
//!  ┌────────────┐  per group, once per evaluation    │ evaluations
//!  │ feasibility│  and lazily per node: ready, zone, │
//!  └────────────┘  constraints (compiled once)       │
//!        │  feasible nodes, from a random offset     │
//!        ▼  of a shuffled order                      │
//!  ┌────────────┐  fits (capacity − usage − plan),   │
//!  │    rank    │  distinct_hosts, then score:       │
//!  └────────────┘  bin-pack, anti-affinity,          │
//!        │         affinity, spread (averaged)       │
//!        ▼                                           │
//!  ┌────────────┐  best of `limit` candidates        │
//!  │   select   │  (2 for batch, log2(nodes) for     │
//!  └────────────┘  service, all with preferences)    │
//!        │  new allocations                          │
//!        ▼                                           ▼
//!  Plan { place, stop, in_place, failed, follow_ups, annotations }
//!        │
//!        ▼  on the leader, against the latest state
//!  verify_plan: job unchanged? per node: still there, ready, fits?
//! ```
//!
//! System jobs skip the ranking: their reconciler walks every node and
//! places one allocation on each feasible node that lacks one.
//!
//! Cost: one evaluation reads the job's allocations once and the node list
//! once; a placement scores a handful of nodes and never depends on the
//! number of allocations in the cluster. The [`harness`] provides an
//! in-memory cluster, and `benches/scheduler.rs` measures placements per
//! second.
//!
//! What committing a plan must do (the state machine's side of the
//! contract, mirrored by [`harness::Cluster::apply`]):
//!
//! - `place`: insert the allocations; set `next_alloc` on the allocation
//!   named by `previous_alloc`. Placements of a group with an `update`
//!   block carry `deployment_status: Some(healthy: None)`: the health
//!   watcher sets `healthy`, and until then they hold back further
//!   destructive updates (`max_parallel`).
//! - `stop`: set `desired_status` and `desired_description`, the client
//!   status when given (`lost`), and `follow_up_eval` when given. A failed
//!   allocation waiting for a delayed reschedule gets an entry whose
//!   `desired_status` stays `run`: it only records its follow-up
//!   evaluation (see [`reasons::ALLOC_RESCHEDULE_LATER`]).
//! - `in_place`: set `job_version`.
//! - `follow_ups`: insert the evaluations (they carry `wait_until`).
//!
//! Disconnected nodes: allocations on a `disconnected` node whose group has
//! a `disconnect { lost_after = … }` block are left alone for now (they
//! should become `unknown`, which needs a plan entry drover-types does not
//! have yet); on a disconnected node without one they are lost, as on a
//! `down` node.

pub mod harness;
pub mod reasons;

mod constraint;
mod deployment;
mod fast_hash;
mod feasibility;
mod ids;
mod ledger;
mod planner;
#[cfg(test)]
mod property_tests;
mod rank;
mod reconcile;
mod reschedule;
#[cfg(test)]
mod scenario_tests;
mod select;
mod system;
mod update;
mod verify;
mod version;
mod view;

pub use constraint::{constraint_matches, glob_matches};
pub use drover_types::Plan;
pub use ids::random_uuid;
pub use planner::schedule;
pub use verify::{VerifiedPlan, verify_plan};
pub use view::ClusterView;
