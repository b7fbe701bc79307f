//! A node is its name within the cluster: registration by name, and the
//! end of a node's life (retirement, purge).
//!
//! ```text
//!  agent registers (id, name)
//!    ├─ no other node has the name ............ create, or update its own record
//!    ├─ another has it and is up ............... refused (unless the name was enrolled
//!    │                                           again after that node registered)
//!    └─ another has it and is not up ........... takes its place: same labels, history,
//!                                                protection, drain and retirement under
//!                                                the new id, a `replaced` entry in the
//!                                                history; the old id is forgotten, its
//!                                                allocations are lost. A retired node
//!                                                whose name a running `create` workflow
//!                                                makes again is back in service instead
//!
//!  ready ── retire ──▶ retiring (drained, never scheduled) ── drain done ──▶ retired
//!  down or retired (not protected) ── purge (or the leader's node GC) ──▶ forgotten
//! ```
//!
//! Names are unique by construction from here on. A state written before
//! may hold twins (two ids, one name): [`State::node_by_name`] answers
//! with the one that holds the name (the up one, else the newest), the
//! others are [`State::shadowed_nodes`] until the leader's node GC purges
//! them.

use std::sync::Arc;

use drover_types::{
    CodedError, DrainStrategy, Node, NodeChange, NodeEligibility, NodeId, NodeLabels, NodeRegistration, NodeStatus,
    Retirement, Timestamp,
};

use super::State;

impl State {
    /// The nodes named `name` (one, but for twins from older states), in
    /// id order.
    pub fn nodes_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Arc<Node>> + 'a {
        self.node_names.get(name).into_iter().flat_map(|ids| ids.iter().filter_map(|id| self.nodes.get(id)))
    }

    /// The node that holds `name`: the only one so named, or among twins
    /// left by an older state the one that is up, else the newest.
    pub fn node_by_name(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes_named(name).max_by_key(|node| (node.is_up(), node.create_index))
    }

    /// Whether `node` holds its name (it is not a twin left behind): the
    /// API and the CLI show only such nodes.
    pub fn holds_its_name(&self, node: &Node) -> bool {
        self.node_by_name(&node.name).is_some_and(|holder| holder.id == node.id)
    }

    /// Twins left behind by an older state: nodes whose name another node
    /// holds.
    pub fn shadowed_nodes(&self) -> Vec<&Arc<Node>> {
        self.node_names
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .flat_map(|(name, _)| {
                let holder = self.node_by_name(name).map(|node| node.id.clone());
                self.nodes_named(name).filter(move |node| Some(&node.id) != holder.as_ref())
            })
            .collect()
    }

    /// Why `registration` may not register now, if it may not: another
    /// node holds its name and is up. Its agent is told to stop the other
    /// agent or to choose another name. In a secure cluster a name is
    /// proven by its certificate, so an agent whose name was enrolled again
    /// after that node registered (after `drover node revoke NAME`) takes
    /// its place even before it is marked down.
    pub fn registration_refusal(&self, registration: &NodeRegistration) -> Option<CodedError> {
        let twin = self
            .nodes_named(&registration.name)
            .find(|node| node.id != registration.id && node.is_up() && !self.name_enrolled_again_since(node))?;
        Some(CodedError::conflict(format!(
            "node {name} is {status} with another agent (node id {twin_id}); this agent (node id {new_id}) may not \
             take its name while it is up. Stop the other agent, or start this one with another name (--name). \
             If {name}'s machine was reinstalled, this agent takes its place as soon as the old one is marked down \
             (no heartbeat within the servers' heartbeat TTL)",
            name = registration.name,
            status = twin.status,
            twin_id = twin.id,
            new_id = registration.id,
        )))
    }

    /// Whether `node`'s name was enrolled (not renewed) after it
    /// registered: only possible after its certificate was revoked.
    fn name_enrolled_again_since(&self, node: &Node) -> bool {
        self.access.node_certificate(&node.name).is_some_and(|certificate| {
            certificate.previous_serial.is_none() && certificate.issued_at > node.registered_at
        })
    }

    /// Registers an agent: its own record, or the place of the node that
    /// had its name; refused as [`State::registration_refusal`] says.
    pub(super) fn register_node(
        &mut self,
        index: u64,
        registration: &NodeRegistration,
        now: Timestamp,
    ) -> Result<(), CodedError> {
        if let Some(refusal) = self.registration_refusal(registration) {
            return Err(refusal);
        }
        let twins: Vec<Arc<Node>> =
            self.nodes_named(&registration.name).filter(|node| node.id != registration.id).cloned().collect();
        let predecessor = twins.iter().max_by_key(|node| (node.is_up(), node.create_index)).cloned();
        let mut predecessor_history = None;
        for twin in &twins {
            let history = self.remove_node(index, &twin.id);
            if predecessor.as_ref().is_some_and(|predecessor| predecessor.id == twin.id) {
                predecessor_history = history;
            }
        }
        let by = format!("agent {}", registration.name);
        let mut changes = Vec::new();
        let node = match (self.nodes.get(&registration.id), &predecessor) {
            (Some(existing), _) => {
                let mut node = Node::clone(existing);
                take_agent_report(&mut node, registration);
                // The agent's own labels changed (it was restarted with other
                // flags): recorded like an operator's change.
                changes.extend(existing.label_diff(&node).into_iter().map(|(field, from, to)| NodeChange {
                    at: now,
                    by: by.clone(),
                    field,
                    from,
                    to,
                    reason: String::new(),
                }));
                if node.status != NodeStatus::Ready {
                    node.status = NodeStatus::Ready;
                    node.status_description = "agent registered".to_owned();
                    node.status_updated_at = now;
                }
                node
            }
            (None, Some(predecessor)) => {
                if let Some(history) = predecessor_history {
                    self.node_history.insert(registration.id.clone(), history);
                }
                let mut node = Node::clone(predecessor);
                node.id = registration.id.clone();
                take_agent_report(&mut node, registration);
                node.status = NodeStatus::Ready;
                node.status_description = format!("agent registered in place of node id {}", predecessor.id);
                node.status_updated_at = now;
                node.registered_at = now;
                node.log_dropped_lines = 0;
                node.create_index = index;
                // A retired node whose name a `create` workflow makes
                // again (its machine was deleted): the new machine is put
                // into service, not kept retired. Decided from the
                // replicated state, so every server decides alike.
                let created_again = self
                    .workflow_holding(&registration.name)
                    .is_some_and(|workflow| workflow.operation == drover_types::workflow::MachineOperation::Create);
                if let Some(retirement) = node.retired.take_if(|_| created_again) {
                    node.drain = None;
                    node.eligibility = NodeEligibility::Eligible;
                    changes.push(NodeChange {
                        at: now,
                        by: by.clone(),
                        field: "retired".to_owned(),
                        from: "yes".to_owned(),
                        to: "no".to_owned(),
                        reason: format!(
                            "a new agent took the place of the retired node (retired by {}: {})",
                            retirement.by, retirement.reason
                        ),
                    });
                }
                node
            }
            (None, None) => new_node(index, registration, now),
        };
        if let Some(predecessor) = &predecessor {
            changes.insert(
                0,
                NodeChange {
                    at: now,
                    by,
                    field: "replaced".to_owned(),
                    from: format!("node id {} ({})", predecessor.id, predecessor.status),
                    to: format!("node id {}", registration.id),
                    reason: String::new(),
                },
            );
        }
        self.put_node(index, node);
        self.record_node_changes(&registration.id, changes);
        Ok(())
    }

    /// Retires every node of `node_ids` that is not retired yet (all must
    /// exist, else nothing changes): never schedulable again, drained.
    pub(super) fn retire_nodes(
        &mut self,
        index: u64,
        node_ids: &[NodeId],
        retirement: &Retirement,
        drain: &DrainStrategy,
    ) -> Result<(), CodedError> {
        if let Some(missing) = node_ids.iter().find(|node_id| !self.nodes.contains_key(*node_id)) {
            return Err(CodedError::not_found("node", missing));
        }
        for node_id in node_ids {
            let Some(existing) = self.nodes.get(node_id) else { continue };
            if existing.retired.is_some() {
                continue;
            }
            let mut node = Node::clone(existing);
            node.retired = Some(retirement.clone());
            node.eligibility = NodeEligibility::Ineligible;
            if node.drain.is_none() {
                node.drain = Some(drain.clone());
            }
            node.status_updated_at = retirement.at;
            self.put_node(index, node);
            let change = NodeChange {
                at: retirement.at,
                by: retirement.by.clone(),
                field: "retired".to_owned(),
                from: String::new(),
                to: "yes".to_owned(),
                reason: retirement.reason.clone(),
            };
            self.record_node_changes(node_id, [change]);
        }
        Ok(())
    }

    /// Forgets every node of `node_ids`, with its history: all or nothing.
    pub(super) fn purge_nodes(&mut self, index: u64, node_ids: &[NodeId]) -> Result<(), CodedError> {
        for node_id in node_ids {
            let Some(node) = self.nodes.get(node_id) else {
                return Err(CodedError::not_found("node", node_id));
            };
            if let Some(refusal) = purge_refusal(node) {
                return Err(refusal);
            }
        }
        for node_id in node_ids {
            self.remove_node(index, node_id);
        }
        Ok(())
    }

    /// Removes a node and its indexes; returns its history. Its
    /// allocations stay, on a node that no longer exists: the scheduler
    /// declares them lost.
    fn remove_node(&mut self, index: u64, node_id: &NodeId) -> Option<imbl::Vector<NodeChange>> {
        let node = self.nodes.remove(node_id)?;
        self.unindex_name(&node.name, node_id);
        self.unready_nodes.remove(node_id);
        self.draining_nodes.remove(node_id);
        self.table_indexes.nodes = index;
        self.capacity_index = index;
        self.node_history.remove(node_id)
    }

    /// Drops `node_id` from the nodes named `name`.
    pub(super) fn unindex_name(&mut self, name: &str, node_id: &NodeId) {
        let Some(ids) = self.node_names.get_mut(name) else { return };
        ids.remove(node_id);
        if ids.is_empty() {
            self.node_names.remove(name);
        }
    }
}

/// Why a node may not be purged, if it may not: it is protected, or it is
/// up and not retired, or it is up and its retirement's drain is not done
/// (its allocations would be lost).
pub fn purge_refusal(node: &Node) -> Option<CodedError> {
    let name = &node.name;
    if let Some(protection) = &node.protected {
        return Some(CodedError::conflict(format!(
            "node {name} is protected ({:?}, by {} at {}); purge is refused. Lift the protection first with \
             `drover node unprotect {name}`",
            protection.reason, protection.by, protection.at
        )));
    }
    if !node.is_up() {
        return None;
    }
    if node.retired.is_none() {
        return Some(CodedError::conflict(format!(
            "node {name} is {} (its agent heartbeats); purge forgets only nodes that are down or retired: retire \
             it first (`drover node retire {name}`), or stop its agent and wait until it is down",
            node.status
        )));
    }
    if node.drain.is_some() {
        return Some(CodedError::conflict(format!(
            "node {name} is still being drained for its retirement; purge it once `drover node status {name}` \
             says retired (its allocations would be lost otherwise)"
        )));
    }
    None
}

/// Lays what an agent reports over its node's record.
fn take_agent_report(node: &mut Node, registration: &NodeRegistration) {
    node.name = registration.name.clone();
    node.agent_labels = registration.labels.clone();
    node.attributes = registration.attributes.clone();
    node.resources = registration.resources;
    node.agent_version = registration.agent_version.clone();
    node.apply_labels();
}

/// The record of a node never seen before.
fn new_node(index: u64, registration: &NodeRegistration, now: Timestamp) -> Node {
    let mut node = Node {
        id: registration.id.clone(),
        name: registration.name.clone(),
        hostgroup: String::new(),
        environment: String::new(),
        owner: String::new(),
        zone: String::new(),
        meta: Default::default(),
        agent_labels: registration.labels.clone(),
        overrides: NodeLabels::default(),
        attributes: registration.attributes.clone(),
        resources: registration.resources,
        status: NodeStatus::Ready,
        status_description: "agent registered".to_owned(),
        eligibility: Default::default(),
        drain: None,
        protected: None,
        retired: None,
        agent_version: registration.agent_version.clone(),
        log_dropped_lines: 0,
        registered_at: now,
        status_updated_at: now,
        create_index: index,
        modify_index: index,
    };
    node.apply_labels();
    node
}

#[cfg(test)]
#[path = "node_identity_tests.rs"]
mod tests;
