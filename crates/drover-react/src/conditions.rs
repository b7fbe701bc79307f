//! What the `node` and `alloc` conditions of an alert rule mean: for which
//! nodes and allocations a condition holds now.
//!
//! ```text
//!  cluster state ──(the server reads it)──▶ NodeFacts / AllocFacts ──┐
//!                                                                    ▼
//!        node_observations / alloc_observations (condition, facts, now)
//!                                                                    │
//!                          Observations (label sets, values) ◀───────┘
//!                                   │
//!                                   ▼
//!                     AlertEngine::evaluate (pending → firing → resolved)
//! ```
//!
//! The server builds the facts from its state (typed statuses, timestamps
//! of task restarts, health-check results) and hands them over with `now`;
//! nothing here reads a clock or the state. A site file names statuses as
//! text (`status = "down"`); they are read into the typed statuses once per
//! evaluation, and a name that is no status (possible only in a site sent
//! through the API unchecked) matches nothing.

use std::time::Duration;

use drover_types::{
    AllocClientStatus, AllocDesiredStatus, CheckHealth, CheckStatus, NodeEligibility, NodeStatus, Timestamp,
};

use crate::alerting::Observation;
use crate::matcher::Labels;
use crate::schema::{AllocCheck, AllocCondition, NodeCondition};

/// A node as the `node` conditions see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeFacts<'a> {
    /// The node's name: its alerts' `node` label.
    pub name: &'a str,
    /// Whether the servers hear from it.
    pub status: NodeStatus,
    /// Whether new work may be placed on it.
    pub eligibility: NodeEligibility,
    /// When its drain began, while it drains.
    pub drain_started_at: Option<Timestamp>,
    /// When this server last heard from it; `None` when it has not since it
    /// started.
    pub last_heartbeat: Option<Timestamp>,
}

/// An allocation as the `alloc` conditions see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocFacts<'a> {
    /// The allocation's id: its alerts' `alloc` label.
    pub id: &'a str,
    /// Its job: the `job` label, and what a condition's `job` selects.
    pub job: &'a str,
    /// Its task group: the `group` label.
    pub group: &'a str,
    /// The name of its node (empty when the node is gone): the `node` label.
    pub node: &'a str,
    /// What its agent reports.
    pub client_status: AllocClientStatus,
    /// What the servers want.
    pub desired_status: AllocDesiredStatus,
    /// When its tasks were restarted (their `Restarting` events).
    pub restarts: Vec<Timestamp>,
    /// The latest result of each of its health checks.
    pub checks: &'a [CheckStatus],
}

/// The state a `status = "…"` node condition names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// The node has this status (a draining or ineligible node keeps
    /// `ready`).
    Status(NodeStatus),
    /// A drain is running on the node.
    Draining,
    /// The node takes no new work.
    Ineligible,
}

impl NodeState {
    /// The state of a name a site file uses; `None` for any other text.
    pub fn from_name(name: &str) -> Option<NodeState> {
        match name {
            "draining" => Some(NodeState::Draining),
            "ineligible" => Some(NodeState::Ineligible),
            _ => NODE_STATUSES.into_iter().find(|status| status.as_str() == name).map(NodeState::Status),
        }
    }

    /// Whether the node is in this state.
    pub fn holds_for(self, node: &NodeFacts<'_>) -> bool {
        match self {
            NodeState::Status(status) => node.status == status,
            NodeState::Draining => node.drain_started_at.is_some(),
            NodeState::Ineligible => node.eligibility == NodeEligibility::Ineligible,
        }
    }
}

/// Every node status, to read their names.
const NODE_STATUSES: [NodeStatus; 4] =
    [NodeStatus::Initializing, NodeStatus::Ready, NodeStatus::Disconnected, NodeStatus::Down];

/// Every client status, to read their names.
const ALLOC_CLIENT_STATUSES: [AllocClientStatus; 6] = [
    AllocClientStatus::Pending,
    AllocClientStatus::Running,
    AllocClientStatus::Complete,
    AllocClientStatus::Failed,
    AllocClientStatus::Lost,
    AllocClientStatus::Unknown,
];

/// The client status a `status = "…"` alloc condition names.
pub fn alloc_status_named(name: &str) -> Option<AllocClientStatus> {
    ALLOC_CLIENT_STATUSES.into_iter().find(|status| status.as_str() == name)
}

/// The health a `check = "…"` alloc condition names: alert rules say
/// `failing` where a check reports `critical`.
pub fn check_health_named(name: &str) -> Option<CheckHealth> {
    match name {
        "pending" => Some(CheckHealth::Pending),
        "passing" => Some(CheckHealth::Passing),
        "warning" => Some(CheckHealth::Warning),
        "failing" => Some(CheckHealth::Critical),
        _ => None,
    }
}

/// The nodes for which `condition` holds at `now`, one observation each,
/// labelled `node`. Heartbeat and drain ages are the observed values (in
/// seconds).
pub fn node_observations<'a>(
    condition: &NodeCondition,
    nodes: impl IntoIterator<Item = NodeFacts<'a>>,
    now: Timestamp,
) -> Vec<Observation> {
    let observe = |node: &NodeFacts<'_>| -> Option<Option<f64>> {
        match condition {
            NodeCondition::Status(name) => {
                let state = NodeState::from_name(name)?;
                state.holds_for(node).then_some(None)
            }
            NodeCondition::HeartbeatAge(limit) => older_than(node.last_heartbeat?, limit.get(), now),
            NodeCondition::DrainStuck(limit) => older_than(node.drain_started_at?, limit.get(), now),
        }
    };
    nodes
        .into_iter()
        .filter_map(|node| {
            let value = observe(&node)?;
            Some(Observation { labels: Labels::from([("node".to_owned(), node.name.to_owned())]), value })
        })
        .collect()
}

/// `Some(age in seconds)` when `since` is more than `limit` before `now`.
fn older_than(since: Timestamp, limit: Duration, now: Timestamp) -> Option<Option<f64>> {
    let age = now.since(since);
    (age > limit).then_some(Some(age.as_secs_f64()))
}

/// The allocations for which `condition` holds at `now`, one observation
/// each, labelled `job`, `group`, `alloc` and `node`.
///
/// - `status`: the allocation has the status and is meant to run; a
///   `failed` one counts whatever the servers want of it (a failed
///   allocation being replaced is still a failure);
/// - `restarts`: its tasks restarted at least `count` times within the
///   window ending at `now` (the count is the value);
/// - `check`: one of its health checks is in that state.
pub fn alloc_observations<'a>(
    condition: &AllocCondition,
    allocs: impl IntoIterator<Item = AllocFacts<'a>>,
    now: Timestamp,
) -> Vec<Observation> {
    let observe = |alloc: &AllocFacts<'_>| -> Option<Option<f64>> {
        match &condition.check {
            AllocCheck::Status(name) => {
                let status = alloc_status_named(name)?;
                let holds = alloc.client_status == status
                    && (alloc.desired_status == AllocDesiredStatus::Run || status == AllocClientStatus::Failed);
                holds.then_some(None)
            }
            AllocCheck::Restarts { count, within } => {
                let since = now.minus(within.get());
                let restarts = alloc.restarts.iter().filter(|time| **time > since).count();
                (restarts >= *count as usize).then_some(Some(restarts as f64))
            }
            AllocCheck::Check(name) => {
                let health = check_health_named(name)?;
                alloc.checks.iter().any(|check| check.status == health).then_some(None)
            }
        }
    };
    allocs
        .into_iter()
        .filter(|alloc| condition.job.as_deref().is_none_or(|job| job == alloc.job))
        .filter_map(|alloc| {
            let value = observe(&alloc)?;
            let labels = Labels::from([
                ("job".to_owned(), alloc.job.to_owned()),
                ("group".to_owned(), alloc.group.to_owned()),
                ("alloc".to_owned(), alloc.id.to_owned()),
                ("node".to_owned(), alloc.node.to_owned()),
            ]);
            Some(Observation { labels, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use drover_types::DurationSpec;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(seconds * 1000)
    }

    fn node(name: &str, status: NodeStatus) -> NodeFacts<'_> {
        NodeFacts {
            name,
            status,
            eligibility: NodeEligibility::Eligible,
            drain_started_at: None,
            last_heartbeat: Some(at(100)),
        }
    }

    fn alloc(id: &str, client_status: AllocClientStatus) -> AllocFacts<'_> {
        AllocFacts {
            id,
            job: "shop",
            group: "web",
            node: "batch01",
            client_status,
            desired_status: AllocDesiredStatus::Run,
            restarts: Vec::new(),
            checks: &[],
        }
    }

    fn check(name: &str, status: CheckHealth) -> CheckStatus {
        CheckStatus {
            task: "server".to_owned(),
            name: name.to_owned(),
            status,
            output: String::new(),
            checked_at: at(0),
        }
    }

    fn status(name: &str) -> NodeCondition {
        NodeCondition::Status(name.to_owned())
    }

    fn alloc_condition(check: AllocCheck) -> AllocCondition {
        AllocCondition { job: None, check }
    }

    /// The `node` labels of the observations.
    fn node_names(observations: &[Observation]) -> Vec<&str> {
        observations.iter().map(|observation| observation.labels["node"].as_str()).collect()
    }

    /// The `alloc` labels of the observations.
    fn alloc_ids(observations: &[Observation]) -> Vec<&str> {
        observations.iter().map(|observation| observation.labels["alloc"].as_str()).collect()
    }

    #[test]
    fn a_status_condition_holds_for_the_nodes_with_that_status() {
        let nodes = [
            node("up", NodeStatus::Ready),
            node("gone", NodeStatus::Down),
            node("waiting", NodeStatus::Disconnected),
            node("new", NodeStatus::Initializing),
        ];
        for (name, expected) in
            [("down", "gone"), ("disconnected", "waiting"), ("ready", "up"), ("initializing", "new")]
        {
            let observations = node_observations(&status(name), nodes, at(100));
            assert_eq!(node_names(&observations), [expected], "status = {name:?}");
            assert_eq!(observations[0].value, None);
            assert_eq!(observations[0].labels.len(), 1, "only the node label");
        }
    }

    #[test]
    fn draining_and_ineligible_are_states_of_a_ready_node() {
        let draining = NodeFacts {
            eligibility: NodeEligibility::Ineligible,
            drain_started_at: Some(at(50)),
            ..node("draining", NodeStatus::Ready)
        };
        let ineligible = NodeFacts { eligibility: NodeEligibility::Ineligible, ..node("cordoned", NodeStatus::Ready) };
        let nodes = [node("plain", NodeStatus::Ready), draining, ineligible];
        assert_eq!(node_names(&node_observations(&status("draining"), nodes, at(100))), ["draining"]);
        assert_eq!(node_names(&node_observations(&status("ineligible"), nodes, at(100))), ["draining", "cordoned"]);
        // A draining node is still ready.
        assert_eq!(node_names(&node_observations(&status("ready"), nodes, at(100))), ["plain", "draining", "cordoned"]);
    }

    #[test]
    fn a_status_that_is_no_status_matches_nothing() {
        let nodes = [node("up", NodeStatus::Ready), node("gone", NodeStatus::Down)];
        assert!(node_observations(&status("on-fire"), nodes, at(100)).is_empty());
        assert!(node_observations(&status("Down"), nodes, at(100)).is_empty(), "names are lowercase");
    }

    #[test]
    fn heartbeat_age_holds_past_the_limit_with_the_age_as_value() {
        let limit = NodeCondition::HeartbeatAge(DurationSpec::from_secs(30));
        let fresh = NodeFacts { last_heartbeat: Some(at(80)), ..node("fresh", NodeStatus::Ready) };
        let exactly = NodeFacts { last_heartbeat: Some(at(70)), ..node("exactly", NodeStatus::Ready) };
        let stale = NodeFacts { last_heartbeat: Some(at(55)), ..node("stale", NodeStatus::Down) };
        let never = NodeFacts { last_heartbeat: None, ..node("never", NodeStatus::Down) };
        let observations = node_observations(&limit, [fresh, exactly, stale, never], at(100));
        assert_eq!(node_names(&observations), ["stale"], "at the limit is not past it; never heard is not aged");
        assert_eq!(observations[0].value, Some(45.0));
    }

    #[test]
    fn a_drain_is_stuck_once_it_runs_longer_than_the_limit() {
        let limit = NodeCondition::DrainStuck(DurationSpec::from_secs(3600));
        let recent = NodeFacts { drain_started_at: Some(at(4000)), ..node("recent", NodeStatus::Ready) };
        let stuck = NodeFacts { drain_started_at: Some(at(0)), ..node("stuck", NodeStatus::Ready) };
        let idle = node("idle", NodeStatus::Ready);
        let observations = node_observations(&limit, [recent, stuck, idle], at(5000));
        assert_eq!(node_names(&observations), ["stuck"]);
        assert_eq!(observations[0].value, Some(5000.0));
    }

    #[test]
    fn an_alloc_status_holds_for_allocations_meant_to_run() {
        let stopped_lost =
            AllocFacts { desired_status: AllocDesiredStatus::Stop, ..alloc("stopped-lost", AllocClientStatus::Lost) };
        let allocs =
            [alloc("running", AllocClientStatus::Running), alloc("lost", AllocClientStatus::Lost), stopped_lost];
        let lost = alloc_observations(&alloc_condition(AllocCheck::Status("lost".to_owned())), allocs.clone(), at(0));
        assert_eq!(alloc_ids(&lost), ["lost"], "a lost allocation the servers stopped is no alert");
        let labels = &lost[0].labels;
        assert_eq!(
            (labels["job"].as_str(), labels["group"].as_str(), labels["node"].as_str()),
            ("shop", "web", "batch01")
        );
        let running = alloc_observations(&alloc_condition(AllocCheck::Status("running".to_owned())), allocs, at(0));
        assert_eq!(alloc_ids(&running), ["running"]);
    }

    #[test]
    fn a_failed_allocation_counts_whatever_the_servers_want_of_it() {
        let replaced =
            AllocFacts { desired_status: AllocDesiredStatus::Stop, ..alloc("replaced", AllocClientStatus::Failed) };
        let allocs = [alloc("failed", AllocClientStatus::Failed), replaced, alloc("fine", AllocClientStatus::Running)];
        let observations = alloc_observations(&alloc_condition(AllocCheck::Status("failed".to_owned())), allocs, at(0));
        assert_eq!(alloc_ids(&observations), ["failed", "replaced"]);
    }

    #[test]
    fn a_job_selects_the_allocations_of_that_job() {
        let other = AllocFacts { job: "other", ..alloc("elsewhere", AllocClientStatus::Failed) };
        let allocs = [alloc("mine", AllocClientStatus::Failed), other];
        let condition = AllocCondition { job: Some("shop".to_owned()), check: AllocCheck::Status("failed".to_owned()) };
        assert_eq!(alloc_ids(&alloc_observations(&condition, allocs, at(0))), ["mine"]);
    }

    #[test]
    fn restarts_count_only_within_the_window() {
        let condition = alloc_condition(AllocCheck::Restarts { count: 3, within: DurationSpec::from_secs(600) });
        let flapping = AllocFacts {
            restarts: vec![at(100), at(500), at(900), at(1000)],
            ..alloc("flapping", AllocClientStatus::Running)
        };
        // Three restarts, but the first one left the window (at 1000 - 600).
        let recovered =
            AllocFacts { restarts: vec![at(300), at(500), at(950)], ..alloc("recovered", AllocClientStatus::Running) };
        let edge =
            AllocFacts { restarts: vec![at(400), at(401), at(402)], ..alloc("edge", AllocClientStatus::Running) };
        let observations = alloc_observations(&condition, [flapping, recovered, edge], at(1000));
        assert_eq!(alloc_ids(&observations), ["flapping"], "a restart exactly at the window's start is out");
        assert_eq!(observations[0].value, Some(3.0));
    }

    #[test]
    fn a_check_condition_holds_when_any_check_is_in_that_state() {
        let two_checks = [check("http", CheckHealth::Passing), check("disk", CheckHealth::Critical)];
        let failing = AllocFacts { checks: &two_checks, ..alloc("failing", AllocClientStatus::Running) };
        let one_check = [check("http", CheckHealth::Warning)];
        let warning = AllocFacts { checks: &one_check, ..alloc("warning", AllocClientStatus::Running) };
        let unchecked = alloc("unchecked", AllocClientStatus::Running);
        let allocs = [failing, warning, unchecked];
        let condition = alloc_condition(AllocCheck::Check("failing".to_owned()));
        assert_eq!(alloc_ids(&alloc_observations(&condition, allocs.clone(), at(0))), ["failing"]);
        let critical = alloc_condition(AllocCheck::Check("critical".to_owned()));
        assert!(alloc_observations(&critical, allocs, at(0)).is_empty(), "rules say failing, not critical");
    }

    #[test]
    fn every_status_is_read_from_its_own_name() {
        for status in NODE_STATUSES {
            assert_eq!(NodeState::from_name(status.as_str()), Some(NodeState::Status(status)));
        }
        for status in ALLOC_CLIENT_STATUSES {
            assert_eq!(alloc_status_named(status.as_str()), Some(status));
        }
        assert_eq!(alloc_status_named("dead"), None);
    }
}
