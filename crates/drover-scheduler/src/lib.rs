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
//!  Evaluation + Job + ClusterView (snapshot, with the job's latest deployment)
//!        │
//!        ▼
//!  ┌────────────┐  the job's deployment: join the current version's,
//!  │ deployment │  cancel a superseded one (or a stopped job's); per
//!  └────────────┘  group: free, starting, deployed (awaiting promotion?
//!        │         halted?)                                  deployment_updates
//!        ▼                                                       │
//!  ┌────────────┐  per task group: reconnects settled, then which│
//!  │ reconcile  │  allocations to keep, stop, update in place,   │ stops, in-place
//!  └────────────┘  mark unknown (disconnected node), replace     │ updates, updates
//!        │         (lost, disconnected, failed, draining,        │ (unknown, follow-up
//!        │         destructive update), how many new ones and    │ eval), follow-up
//!        │         canaries to place, the max_parallel limit     │ evaluations
//!        ▼                                                       │
//!  ┌────────────┐  a deployment starts for the groups that roll  │ deployment
//!  │ deployment │  something out; placements join it             │
//!  └────────────┘                                                │
//!        │  placement requests                                   │
//!        ▼                                                       │
//!  ┌────────────┐  per group, once per evaluation                │
//!  │ feasibility│  and lazily per node: ready, zone,             │
//!  └────────────┘  constraints (compiled once)                   │
//!        │  feasible nodes, from a random offset                 │
//!        ▼  of a shuffled order                                  │
//!  ┌────────────┐  fits (capacity − usage − plan),               │
//!  │    rank    │  distinct_hosts, then score:                   │
//!  └────────────┘  bin-pack, anti-affinity,                      │
//!        │         affinity, spread (averaged)                   │
//!        ▼                                                       │
//!  ┌────────────┐  best of `limit` candidates                    │
//!  │   select   │  (2 for batch, log2(nodes) for                 │
//!  └────────────┘  service, all with preferences)                │
//!        │  new allocations (with deployment id, canary flag)    │
//!        ▼                                                       ▼
//!  Plan { place, stop, in_place, updates, deployment, deployment_updates,
//!         failed, follow_ups, annotations }
//!        │
//!        ▼  on the leader, against the latest state
//!  verify_plan: job unchanged? per node: still there, ready, fits?
//! ```
//!
//! System jobs skip the ranking: their reconciler walks every node and
//! places one allocation on each feasible node that lacks one. They have no
//! deployments: destructive updates roll under `max_parallel` only.
//!
//! Cost: one evaluation reads the job's allocations once, the node list
//! once and the job's latest deployment once; a placement scores a handful
//! of nodes and never depends on the number of allocations in the cluster.
//! The [`harness`] builds synthetic fleets and jobs, and for the tests an
//! in-memory cluster that is the Raft state machine itself; `drover bench
//! scheduler` measures placements per second.
//!
//! What committing a plan must do (the state machine's side of the
//! contract, done once, by `drover-state`'s `ApplyPlan`, which the tests
//! commit through):
//!
//! - `deployment`: insert it before the placements, which carry its id.
//! - `deployment_updates`: store them (the scheduler only cancels: status
//!   `cancelled` and its description).
//! - `place`: insert the allocations; set `next_alloc` on the allocation
//!   named by `previous_alloc`. Placements of a group with an `update`
//!   block carry `deployment_status: Some(healthy: None)` (and `canary`):
//!   the agent decides `healthy`, and until then they hold back further
//!   destructive updates (`max_parallel`), deployment or not.
//! - `stop`: set `desired_status` and `desired_description`, and the client
//!   status when given (`lost`).
//! - `updates`: set the client status (and `client_description`) when
//!   given — `unknown` for an allocation on a disconnected node — and
//!   `follow_up_eval` when given: a failed allocation waiting for a delayed
//!   reschedule keeps its desired status `run` and records its follow-up
//!   evaluation (see [`reasons::ALLOC_RESCHEDULE_LATER`]).
//! - `in_place`: set `job_version`.
//! - `follow_ups`: insert the evaluations (they carry `wait_until`).
//!
//! Deployments are described in the `deployment` module, canaries and
//! disconnected nodes (`unknown` allocations, `lost_after`, reconnects) in
//! the `reconcile` module.

pub mod harness;
pub mod reasons;

mod constraint;
mod deployment;
mod fast_hash;
mod feasibility;
mod ids;
mod ledger;
mod planner;
mod ports;
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
mod view;

pub use constraint::constraint_matches;
pub use drover_types::Plan;
pub use ids::random_uuid;
pub use planner::schedule;
pub use verify::{VerifiedPlan, verify_plan};
pub use view::ClusterView;
