//! The inventory an operator keeps: choosing nodes by name and filter,
//! bulk label changes (`drover node update`), protection, retirement and
//! purge (`drover node retire|purge`), and the audit history of each node.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use drover_proto::api::{
    NodeFieldChange, NodePurgeRequest, NodeRetireRequest, NodeSelectionResponse, NodeUpdateRequest, NodeUpdateResponse,
};
use drover_state::{Command, State};
use drover_types::{
    CodedError, DrainStrategy, DurationSpec, EvalTrigger, Evaluation, Node, NodeChange, NodeId, NodeLabels, Protection,
    Retirement, Timestamp,
};

use crate::Result;
use crate::ids::new_eval_id;
use crate::server::Server;

/// How many unknown names an error lists before "and N more".
const NAMES_SHOWN: usize = 5;

/// The most nodes one request may name (style.md 19).
const MAX_NAMED_NODES: usize = 100_000;

/// The nodes an operator named and/or a filter matched. Names are exact
/// node names, ids or unique id prefixes; with both, the named nodes the
/// filter matches. A filter alone leaves out retired nodes (name them to
/// reach them). Naming nothing is an error, so that no command reaches
/// the whole fleet by accident.
pub fn select_nodes(state: &State, names: &[String], filter: Option<&str>) -> Result<Vec<Arc<Node>>> {
    if names.len() > MAX_NAMED_NODES {
        return Err(CodedError::invalid(format!(
            "{} nodes named in one request; at most {MAX_NAMED_NODES} (use --filter, or several requests)",
            names.len()
        )));
    }
    let filter = crate::parse_node_filter(filter)?;
    let matches = |node: &Node| filter.as_ref().is_none_or(|filter| filter.matches(node));
    if names.is_empty() {
        if filter.is_none() {
            return Err(CodedError::invalid(
                "name the nodes (`batch{00..99}`, comma or space separated) or give --filter EXPR (see docs/nodes.md)",
            ));
        }
        return Ok(state
            .nodes()
            .filter(|node| node.retired.is_none() && state.holds_its_name(node) && matches(node))
            .cloned()
            .collect());
    }
    // Names through the name index, ids and id prefixes through the id
    // index (a scan per name would be quadratic).
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    let mut selected = Vec::new();
    for name in names {
        let resolved = match state.node_by_name(name) {
            Some(node) => Ok(node),
            None => state.resolve_node_id(name),
        };
        match resolved {
            Ok(node) => {
                if seen.insert(node.id.clone()) && matches(node) {
                    selected.push(Arc::clone(node));
                }
            }
            Err(error) if error.code == drover_types::ErrorCode::NotFound => unknown.push(name.as_str()),
            Err(error) => return Err(error),
        }
    }
    if !unknown.is_empty() {
        return Err(unknown_nodes(&unknown));
    }
    Ok(selected)
}

/// `node "x" not found; …` or `nodes "x", "y" and 3 more not found; …`:
/// the names in quotes, what to do after them. The caller (a label change,
/// `drover exec`) refuses the whole request, so nothing was done.
fn unknown_nodes(unknown: &[&str]) -> CodedError {
    let hint = "nothing was done (`drover node list` shows the nodes)";
    if let [name] = unknown {
        return CodedError::not_found("node", name).with_hint(hint);
    }
    let shown: Vec<String> = unknown.iter().take(NAMES_SHOWN).map(|name| format!("\"{name}\"")).collect();
    let num_more = unknown.len().saturating_sub(NAMES_SHOWN);
    let more = if num_more > 0 { format!(" and {num_more} more") } else { String::new() };
    CodedError::new(drover_types::ErrorCode::NotFound, format!("nodes {}{more} not found", shown.join(", ")))
        .with_hint(hint)
}

/// Checks the values an operator wants to set.
fn validate_labels(labels: &NodeLabels) -> Result<()> {
    if labels.is_empty() {
        return Err(CodedError::invalid(
            "nothing to change: give --hostgroup, --environment, --owner, --zone or --meta key=value",
        ));
    }
    let printable = |field: &str, value: &str| {
        if value.chars().any(char::is_control) {
            Err(CodedError::invalid(format!("{field} {value:?} contains a control character")))
        } else {
            Ok(())
        }
    };
    if let Some(hostgroup) = &labels.hostgroup {
        let valid = hostgroup.split('/').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
        if !valid {
            return Err(CodedError::invalid(format!(
                "host group {hostgroup:?} is not a path of names separated by `/` (letters, digits, `-`, `_`, `.`), for example bi/batch/gridworker"
            )));
        }
    }
    for (field, value) in [("environment", &labels.environment), ("owner", &labels.owner), ("zone", &labels.zone)] {
        if let Some(value) = value {
            printable(field, value)?;
        }
    }
    for (key, value) in &labels.meta {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(CodedError::invalid(format!(
                "meta key {key:?} may only hold letters, digits, `-`, `_` and `.`"
            )));
        }
        printable(&format!("meta.{key}"), value)?;
    }
    Ok(())
}

/// What laying `labels` over a node's overrides changes, field by field.
fn label_changes(node: &Node, labels: &NodeLabels) -> Vec<NodeFieldChange> {
    let mut changed = node.clone();
    changed.overrides.merge(labels);
    changed.apply_labels();
    node.label_diff(&changed)
        .into_iter()
        .map(|(field, from, to)| NodeFieldChange { node: node.name.clone(), node_id: node.id.clone(), field, from, to })
        .collect()
}

impl Server {
    /// Changes the labels of many nodes at once (or, with `dry_run`, only
    /// tells what would change). Every change is recorded in the nodes'
    /// histories under `by`.
    pub async fn update_nodes(&self, request: &NodeUpdateRequest, by: &str) -> Result<NodeUpdateResponse> {
        validate_labels(&request.labels)?;
        let state = self.consistent_state().await?;
        let nodes = select_nodes(&state, &request.nodes, request.filter.as_deref())?;
        let changes: Vec<NodeFieldChange> =
            nodes.iter().flat_map(|node| label_changes(node, &request.labels)).collect();
        let mut node_ids: Vec<NodeId> = changes.iter().map(|change| change.node_id.clone()).collect();
        node_ids.dedup();
        let mut response =
            NodeUpdateResponse { nodes: nodes.iter().map(|node| node.name.clone()).collect(), changes, index: 0 };
        if request.dry_run || node_ids.is_empty() {
            return Ok(response);
        }
        let now = Timestamp::now();
        let evals = evals_for_label_change(&state, &node_ids, now);
        let command =
            Command::UpdateNodeLabels { node_ids, labels: request.labels.clone(), by: by.to_owned(), evals, now };
        response.index = self.propose(command).await?.into_result()?.index();
        self.wait_for_index(response.index, Duration::from_secs(10)).await?;
        Ok(response)
    }

    /// Protects a node (with a reason) or lifts its protection.
    pub async fn set_protection(&self, name_or_id: &str, protect: bool, reason: &str, by: &str) -> Result<Node> {
        let reason = reason.trim();
        let state = self.consistent_state().await?;
        let node = state.resolve_node(name_or_id)?.clone();
        let now = Timestamp::now();
        let protection = if protect {
            if reason.is_empty() {
                return Err(CodedError::invalid(format!(
                    "say why node {} must be protected: --reason \"TEXT\" (shown whenever a destructive operation is refused)",
                    node.name
                )));
            }
            Some(Protection { reason: reason.to_owned(), by: by.to_owned(), at: now })
        } else {
            if node.protected.is_none() {
                return Err(CodedError::conflict(format!("node {} is not protected", node.name)));
            }
            None
        };
        let command = Command::SetNodeProtection {
            node_id: node.id.clone(),
            protection,
            by: by.to_owned(),
            reason: reason.to_owned(),
            now,
        };
        let index = self.propose(command).await?.into_result()?.index();
        let state = self.wait_for_index(index, Duration::from_secs(10)).await?;
        state.node(&node.id).map(|node| Node::clone(node)).ok_or_else(|| CodedError::not_found("node", &node.id))
    }

    /// Retires nodes (or, with `dry_run`, only tells which): each is
    /// drained, never scheduled again, and leaves the default node list;
    /// its record and history stay until it is purged. Nodes retired
    /// already are left out.
    pub async fn retire_nodes(&self, request: &NodeRetireRequest, by: &str) -> Result<NodeSelectionResponse> {
        let deadline = match request.deadline.as_deref() {
            Some(text) => Some(
                text.parse::<DurationSpec>().map_err(|error| CodedError::invalid(format!("deadline: {error}")))?.get(),
            ),
            None => None,
        };
        let reason = request.reason.as_deref().map(str::trim).unwrap_or_default();
        let state = self.consistent_state().await?;
        let nodes: Vec<Arc<Node>> = select_nodes(&state, &request.nodes, request.filter.as_deref())?
            .into_iter()
            .filter(|node| node.retired.is_none())
            .collect();
        if deadline.is_some() {
            for node in &nodes {
                check_protection(node, "retiring with a deadline (it stops tasks by force)", Some(reason))?;
            }
        }
        let mut response = selection(&nodes);
        if request.dry_run || nodes.is_empty() {
            return Ok(response);
        }
        let now = Timestamp::now();
        let command = Command::RetireNodes {
            node_ids: response.node_ids.clone(),
            retirement: Retirement { reason: reason.to_owned(), by: by.to_owned(), at: now },
            drain: DrainStrategy {
                started_at: now,
                deadline: deadline.map(|deadline| now.plus(deadline)),
                ignore_system_jobs: false,
            },
        };
        response.index = self.propose(command).await?.into_result()?.index();
        self.wait_for_index(response.index, Duration::from_secs(10)).await?;
        tracing::info!(num_nodes = nodes.len(), by, "nodes retired");
        Ok(response)
    }

    /// Forgets nodes entirely (or, with `dry_run`, only checks that it
    /// may): all or nothing, refused for a protected node and for one that
    /// is up and not retired ([`drover_state::purge_refusal`]).
    pub async fn purge_nodes(&self, request: &NodePurgeRequest) -> Result<NodeSelectionResponse> {
        if request.nodes.is_empty() {
            return Err(CodedError::invalid("name the nodes to purge (`batch{00..09}`, comma or space separated)"));
        }
        let state = self.consistent_state().await?;
        let nodes = select_nodes(&state, &request.nodes, None)?;
        if let Some(refusal) = nodes.iter().find_map(|node| drover_state::purge_refusal(node)) {
            return Err(refusal.with_hint("nothing was purged"));
        }
        let mut response = selection(&nodes);
        if request.dry_run {
            return Ok(response);
        }
        let evals = evals_for_node_loss(&state, &response.node_ids, Timestamp::now());
        let command = Command::PurgeNodes { node_ids: response.node_ids.clone(), evals };
        response.index = self.propose(command).await?.into_result()?.index();
        self.wait_for_index(response.index, Duration::from_secs(10)).await?;
        tracing::info!(num_nodes = nodes.len(), "nodes purged");
        Ok(response)
    }

    /// A node's audit history, oldest first.
    pub async fn node_history(&self, name_or_id: &str) -> Result<(Node, Vec<NodeChange>)> {
        let state = self.consistent_state().await?;
        let node = state.resolve_node(name_or_id)?;
        Ok((Node::clone(node), state.node_history(&node.id).cloned().collect()))
    }
}

/// Refuses a destructive operation on a protected node unless the operator
/// gave a reason to override the protection.
pub(crate) fn check_protection(node: &Node, operation: &str, reason: Option<&str>) -> Result<()> {
    let Some(protection) = &node.protected else { return Ok(()) };
    if reason.is_some_and(|reason| !reason.trim().is_empty()) {
        return Ok(());
    }
    Err(CodedError::conflict(format!(
        "node {} is protected ({:?}, by {} at {}); {operation} is refused. To do it anyway, give --reason \"why\" (recorded in `drover node history {}`), or lift the protection with `drover node unprotect {}`",
        node.name, protection.reason, protection.by, protection.at, node.name, node.name
    )))
}

/// The names and ids of `nodes`, for an answer.
fn selection(nodes: &[Arc<Node>]) -> NodeSelectionResponse {
    NodeSelectionResponse {
        nodes: nodes.iter().map(|node| node.name.clone()).collect(),
        node_ids: nodes.iter().map(|node| node.id.clone()).collect(),
        index: 0,
    }
}

/// Evaluations after nodes were forgotten (purged, or replaced by a new
/// agent with their name): one per job with live allocations on them,
/// which the scheduler then declares lost and replaces.
pub(crate) fn evals_for_node_loss(state: &State, node_ids: &[NodeId], now: Timestamp) -> Vec<Evaluation> {
    evals_for_jobs_on_nodes(state, node_ids, "node forgotten", now)
}

/// One evaluation per job with live allocations on `node_ids` (the first
/// node it was found on named as the cause), after those nodes changed.
pub(crate) fn evals_for_jobs_on_nodes(
    state: &State,
    node_ids: &[NodeId],
    description: &str,
    now: Timestamp,
) -> Vec<Evaluation> {
    let mut evals: Vec<Evaluation> = Vec::new();
    for node_id in node_ids {
        for alloc in state.live_allocs_on_node(node_id) {
            if evals.iter().any(|eval| eval.job_id == alloc.job_id) {
                continue;
            }
            let priority = state.job(&alloc.job_id).map_or(50, |job| job.priority);
            let mut eval = Evaluation::new(new_eval_id(), alloc.job_id.clone(), priority, EvalTrigger::NodeUpdate, now);
            eval.node_id = Some(node_id.clone());
            eval.status_description = description.to_owned();
            evals.push(eval);
        }
    }
    evals
}

/// Evaluations after labels changed: every running system job (the nodes
/// may now match it, or no longer) and every job with allocations on them.
fn evals_for_label_change(state: &State, node_ids: &[NodeId], now: Timestamp) -> Vec<Evaluation> {
    let mut jobs: BTreeSet<(drover_types::JobId, u8)> = state
        .jobs()
        .filter(|job| job.job_type.places_on_every_node() && !job.stop)
        .map(|job| (job.id.clone(), job.priority))
        .collect();
    for node_id in node_ids {
        for alloc in state.live_allocs_on_node(node_id) {
            if let Some(job) = state.job(&alloc.job_id)
                && !job.stop
            {
                jobs.insert((job.id.clone(), job.priority));
            }
        }
    }
    jobs.into_iter()
        .map(|(job_id, priority)| {
            let mut eval = Evaluation::new(new_eval_id(), job_id, priority, EvalTrigger::NodeUpdate, now);
            eval.status_description = "node labels changed".to_owned();
            eval
        })
        .collect()
}
