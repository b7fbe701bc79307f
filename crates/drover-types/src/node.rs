//! Nodes: machines running a drover agent.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CodedError;
use crate::ids::NodeId;
use crate::resources::Resources;
use crate::time::Timestamp;

/// Whether the servers hear from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Registered, first heartbeat pending.
    #[default]
    Initializing,
    /// Heartbeating.
    Ready,
    /// Missed its heartbeat deadline; allocations with a `disconnect` block
    /// wait here for `lost_after`.
    Disconnected,
    /// Missed its heartbeat deadline; its allocations are lost.
    Down,
}

impl NodeStatus {
    /// The name used in output and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Initializing => "initializing",
            NodeStatus::Ready => "ready",
            NodeStatus::Disconnected => "disconnected",
            NodeStatus::Down => "down",
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Whether the scheduler may place new work on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeEligibility {
    /// New allocations may be placed.
    #[default]
    Eligible,
    /// No new allocations (existing ones keep running).
    Ineligible,
}

/// An operator's drain of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStrategy {
    /// When the drain began.
    pub started_at: Timestamp,
    /// When remaining allocations are stopped by force; `None` waits forever.
    pub deadline: Option<Timestamp>,
    /// Leave system-job allocations running.
    pub ignore_system_jobs: bool,
}

/// Why a node must not be destroyed, and who said so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Free text, shown whenever a destructive operation is refused.
    pub reason: String,
    /// Who protected the node.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// Why and since when a node is retired (`drover node retire`): it takes
/// no new work, leaves the default `drover node list` and stays in the
/// history and the log index until purged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    /// Why, when the operator said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Who retired it.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// One entry of a node's audit history (`drover node history NODE`): one
/// field changed by one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChange {
    /// When.
    pub at: Timestamp,
    /// Who (the caller's name).
    pub by: String,
    /// What changed: `hostgroup`, `environment`, `owner`, `zone`,
    /// `meta.<key>`, `protected`, `drain`, `eligibility`.
    pub field: String,
    /// The value before (empty: unset).
    pub from: String,
    /// The value after (empty: unset).
    pub to: String,
    /// Why, when the operator said (required to force a destructive
    /// operation on a protected node).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl NodeLabels {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.hostgroup.is_none()
            && self.environment.is_none()
            && self.owner.is_none()
            && self.zone.is_none()
            && self.meta.is_empty()
    }

    /// Lays `change` over these overrides: its set fields replace ours, its
    /// meta entries are added (an empty value is kept: it deletes the
    /// entry, even the agent's, see [`Node::apply_labels`]).
    pub fn merge(&mut self, change: &NodeLabels) {
        for (ours, theirs) in [
            (&mut self.hostgroup, &change.hostgroup),
            (&mut self.environment, &change.environment),
            (&mut self.owner, &change.owner),
            (&mut self.zone, &change.zone),
        ] {
            if let Some(value) = theirs {
                *ours = Some(value.clone());
            }
        }
        for (key, value) in &change.meta {
            self.meta.insert(key.clone(), value.clone());
        }
    }
}

impl Node {
    /// The effective labels as `(field, value)` pairs, for audit diffs.
    fn label_fields(&self) -> BTreeMap<String, String> {
        let mut fields: BTreeMap<String, String> = [
            ("hostgroup", &self.hostgroup),
            ("environment", &self.environment),
            ("owner", &self.owner),
            ("zone", &self.zone),
        ]
        .into_iter()
        .map(|(field, value)| (field.to_owned(), value.clone()))
        .collect();
        fields.extend(self.meta.iter().map(|(key, value)| (format!("meta.{key}"), value.clone())));
        fields
    }

    /// The effective labels that differ between this node and `after`, as
    /// `(field, from, to)` in field order (empty: unset).
    pub fn label_diff(&self, after: &Node) -> Vec<(String, String, String)> {
        let before = self.label_fields();
        let after = after.label_fields();
        let fields: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        fields
            .into_iter()
            .filter_map(|field| {
                let from = before.get(field).cloned().unwrap_or_default();
                let to = after.get(field).cloned().unwrap_or_default();
                (from != to).then(|| (field.clone(), from, to))
            })
            .collect()
    }
}

/// The labels an operator can set centrally; each set field overrides what
/// the agent reports, and the override survives agent restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeLabels {
    /// Host group, a path such as `bi/batch/gridworker`.
    pub hostgroup: Option<String>,
    /// Environment such as `production` or `qa`.
    pub environment: Option<String>,
    /// Owner (a person or a team).
    pub owner: Option<String>,
    /// Zone (Nomad's datacenter).
    pub zone: Option<String>,
    /// Meta entries; an entry set to the empty string deletes the agent's.
    pub meta: BTreeMap<String, String>,
}

/// A machine running an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Stable id chosen by the agent.
    pub id: NodeId,
    /// Name, unique in practice (the agent's `--name`, else the hostname).
    pub name: String,
    /// Effective host group (operator override, else the agent's).
    pub hostgroup: String,
    /// Effective environment.
    pub environment: String,
    /// Effective owner; empty when nobody is named.
    pub owner: String,
    /// Effective zone; `dc1` unless set, matched by a job's `datacenters`.
    pub zone: String,
    /// Effective meta.
    pub meta: BTreeMap<String, String>,
    /// Labels as the agent reported them.
    pub agent_labels: NodeLabels,
    /// Operator overrides.
    pub overrides: NodeLabels,
    /// Facts fingerprinted by the agent, with Nomad's names
    /// (`kernel.name`, `os.name`, `cpu.arch`, `unique.hostname`, …).
    pub attributes: BTreeMap<String, String>,
    /// Schedulable capacity.
    pub resources: Resources,
    /// Heartbeat status.
    pub status: NodeStatus,
    /// Why the status last changed.
    pub status_description: String,
    /// Scheduling eligibility.
    pub eligibility: NodeEligibility,
    /// Set while the node is draining.
    pub drain: Option<DrainStrategy>,
    /// Set when the node must not be destroyed.
    pub protected: Option<Protection>,
    /// Set when the node is retired: never schedulable again, hidden from
    /// the default node list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retirement>,
    /// The agent's version.
    pub agent_version: String,
    /// Log lines the agent had to drop because its spool was full or their
    /// records were damaged on disk (since the agent's data directory was
    /// created).
    #[serde(default)]
    pub log_dropped_lines: u64,
    /// When the agent first registered.
    pub registered_at: Timestamp,
    /// When the status last changed.
    pub status_updated_at: Timestamp,
    /// Raft index of creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

impl Node {
    /// Whether the scheduler may place new allocations here.
    pub fn is_schedulable(&self) -> bool {
        self.status == NodeStatus::Ready
            && self.eligibility == NodeEligibility::Eligible
            && self.drain.is_none()
            && self.retired.is_none()
    }

    /// Whether the servers consider its agent alive (`initializing` or
    /// `ready`): another agent may not take its name.
    pub fn is_up(&self) -> bool {
        matches!(self.status, NodeStatus::Initializing | NodeStatus::Ready)
    }

    /// The status an operator sees: `retiring` (drained before retirement)
    /// and `retired` win over everything, `draining` and `ineligible` over
    /// `ready`, as in `drover node list`.
    pub fn display_status(&self) -> &'static str {
        if self.retired.is_some() {
            return if self.drain.is_some() { "retiring" } else { "retired" };
        }
        match self.status {
            NodeStatus::Ready if self.drain.is_some() => "draining",
            NodeStatus::Ready if self.eligibility == NodeEligibility::Ineligible => "ineligible",
            status => status.as_str(),
        }
    }

    /// Recomputes the effective labels from the agent's and the operator's.
    pub fn apply_labels(&mut self) {
        let agent = &self.agent_labels;
        let overrides = &self.overrides;
        self.hostgroup = overrides.hostgroup.clone().or_else(|| agent.hostgroup.clone()).unwrap_or_default();
        self.environment = overrides.environment.clone().or_else(|| agent.environment.clone()).unwrap_or_default();
        self.owner = overrides.owner.clone().or_else(|| agent.owner.clone()).unwrap_or_default();
        self.zone = overrides
            .zone
            .clone()
            .or_else(|| agent.zone.clone())
            .filter(|zone| !zone.is_empty())
            .unwrap_or_else(|| "dc1".to_owned());
        let mut meta = agent.meta.clone();
        for (key, value) in &overrides.meta {
            if value.is_empty() {
                meta.remove(key);
            } else {
                meta.insert(key.clone(), value.clone());
            }
        }
        self.meta = meta;
    }

    /// Resolves an interpolation target such as `node.hostgroup`,
    /// `attr.kernel.name` or `meta.rack` (without `${ }`).
    ///
    /// Returns `None` for targets the node does not have, which constraints
    /// treat as "not set".
    pub fn resolve(&self, target: &str) -> Option<String> {
        if let Some(fact) = target.strip_prefix("attr.") {
            return self.attributes.get(fact).cloned();
        }
        if let Some(key) = target.strip_prefix("meta.") {
            return self.meta.get(key).cloned();
        }
        let value = match target {
            "node.unique.id" => self.id.to_string(),
            "node.unique.name" => self.name.clone(),
            "node.hostgroup" => self.hostgroup.clone(),
            "node.environment" => self.environment.clone(),
            "node.owner" => self.owner.clone(),
            "node.zone" | "node.datacenter" => self.zone.clone(),
            _ => return None,
        };
        Some(value)
    }

    /// The interpolation targets that always exist on a node, for error
    /// messages and documentation.
    pub const NODE_TARGETS: [&'static str; 7] = [
        "node.unique.id",
        "node.unique.name",
        "node.hostgroup",
        "node.environment",
        "node.owner",
        "node.zone",
        "node.datacenter",
    ];
}

/// What an agent reports about its machine when it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// The node's stable id.
    pub id: NodeId,
    /// Its name: a node is its name within the cluster (a new agent with
    /// the name of a node that is down takes its place).
    pub name: String,
    /// Labels from the agent's flags or configuration.
    pub labels: NodeLabels,
    /// Fingerprinted facts.
    pub attributes: BTreeMap<String, String>,
    /// Schedulable capacity.
    pub resources: Resources,
    /// Agent version.
    pub agent_version: String,
}

impl NodeRegistration {
    /// Checks what the state machine needs of a registration: a node id and
    /// a name. Depends on the registration alone: servers run it before
    /// proposing (and answer the agent with its error), and the state
    /// machine runs it again for `Command::RegisterNodes` (drover-state) so that a bad
    /// registration in a batch is skipped alone.
    pub fn validate(&self) -> Result<(), CodedError> {
        if self.name.trim().is_empty() || self.id.as_str().is_empty() {
            return Err(CodedError::invalid("the agent sent an empty node name or id"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures;

    #[test]
    fn overrides_win_and_empty_meta_deletes() {
        let mut node = fixtures::node("n1");
        node.agent_labels.hostgroup = Some("agent/group".into());
        node.agent_labels.meta.insert("rack".into(), "r1".into());
        node.agent_labels.meta.insert("gone".into(), "x".into());
        node.overrides.hostgroup = Some("bi/batch".into());
        node.overrides.meta.insert("gone".into(), String::new());
        node.apply_labels();
        assert_eq!(node.hostgroup, "bi/batch");
        assert_eq!(node.zone, "dc1");
        assert_eq!(node.meta.get("rack").map(String::as_str), Some("r1"));
        assert!(!node.meta.contains_key("gone"));
        assert_eq!(node.resolve("node.hostgroup").as_deref(), Some("bi/batch"));
        assert_eq!(node.resolve("meta.rack").as_deref(), Some("r1"));
        assert_eq!(node.resolve("attr.missing"), None);
    }
}
