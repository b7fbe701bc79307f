//! Machine workflows as the API sees them: starting one (`drover node
//! create|reboot|rebuild|delete`), listing, showing and cancelling them
//! (`drover workflow …`). Every refusal happens here, before anything is
//! proposed: unknown or protected nodes, a provider without the
//! operation's command, a name that exists already, a node held by
//! another running workflow. The leader's `leader/workflows.rs` runs them.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::machines::{WorkflowRequest, WorkflowStarted};
use drover_react::{Escape, Provider, ProviderOperation, Site};
use drover_state::{Command, State};
use drover_types::workflow::{MachineOperation, Workflow, WorkflowOp, WorkflowStatus, WorkflowStep};
use drover_types::{CodedError, DurationSpec, Node, NodeLabels, Timestamp};

use crate::Result;
use crate::ids::new_short_id;
use crate::server::Server;

/// How long a step waits for a drain and for its agent, unless told.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// The most nodes one workflow takes.
const MAX_STEPS: usize = 10_000;

impl Server {
    /// Starts a machine workflow (or, with `dry_run`, only says what it
    /// would run).
    pub async fn start_workflow(&self, request: &WorkflowRequest, by: &str) -> Result<WorkflowStarted> {
        let timeout = match request.timeout.as_deref() {
            Some(text) => {
                text.parse::<DurationSpec>().map_err(|error| CodedError::invalid(format!("timeout: {error}")))?.get()
            }
            None => DEFAULT_STEP_TIMEOUT,
        };
        if request.rate_per_minute == Some(0) {
            return Err(CodedError::invalid("--rate must be at least 1/min"));
        }
        let state = self.consistent_state().await?;
        let site = &state
            .react()
            .site
            .as_ref()
            .ok_or_else(|| {
                CodedError::conflict("no site is applied, so there is no provider; define one and `drover apply DIR`")
            })?
            .site;
        let operation = request.operation;
        let names = match operation {
            MachineOperation::Create => new_machine_names(&state, request)?,
            _ => existing_nodes(&state, request)?,
        };
        if names.len() > MAX_STEPS {
            return Err(CodedError::invalid(format!("{} nodes in one workflow; at most {MAX_STEPS}", names.len())));
        }
        let labels = if operation == MachineOperation::Create { request.labels.clone() } else { NodeLabels::default() };
        let mut commands = Vec::new();
        for name in &names {
            let node = state.node_by_name(name).map(Arc::as_ref);
            let command = machine_command(site, operation, request.provider.as_deref(), name, node, &labels)
                .map_err(|error| CodedError::conflict(format!("{error}; nothing was started")))?;
            commands.push((name.clone(), command.0));
        }
        if let Some(holder) = names.iter().find_map(|name| state.workflow_holding(name).map(|holder| (name, holder))) {
            let (name, workflow) = holder;
            return Err(CodedError::conflict(format!(
                "node {name} is in running workflow {} ({}); wait for it or `drover workflow cancel {}`",
                workflow.id, workflow.operation, workflow.id
            )));
        }
        let workflow = Workflow {
            id: new_short_id(),
            operation,
            provider: request.provider.clone(),
            labels,
            rate_per_minute: request.rate_per_minute,
            parallel: request.parallel.unwrap_or(1).max(1),
            max_failures: request.max_failures.unwrap_or(1),
            drain: !request.no_drain && matches!(operation, MachineOperation::Rebuild | MachineOperation::Delete),
            wait_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            by: by.to_owned(),
            created_at: Timestamp::now(),
            status: WorkflowStatus::Running,
            finished_at: None,
            reason: String::new(),
            steps: names.iter().map(|name| WorkflowStep::pending(name)).collect(),
        };
        if request.dry_run {
            return Ok(WorkflowStarted { workflow, commands });
        }
        let command = Command::Workflow { op: WorkflowOp::Start { workflow: workflow.clone() } };
        let index = self.propose(command).await?.into_result()?.index();
        self.wait_for_index(index, Duration::from_secs(10)).await?;
        tracing::info!(workflow = %workflow.id, %operation, num_nodes = names.len(), by, "machine workflow started");
        Ok(WorkflowStarted { workflow, commands })
    }

    /// Every workflow, newest first.
    pub async fn workflows(&self) -> Result<Vec<Workflow>> {
        let state = self.consistent_state().await?;
        let mut workflows: Vec<Workflow> = state.workflows().map(|workflow| Workflow::clone(workflow)).collect();
        workflows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(workflows)
    }

    /// One workflow.
    pub async fn workflow(&self, id: &str) -> Result<Workflow> {
        let state = self.consistent_state().await?;
        state.workflow(id).map(|workflow| Workflow::clone(workflow)).ok_or_else(|| unknown_workflow(id))
    }

    /// Cancels a running workflow: steps not ended stop where they are.
    pub async fn cancel_workflow(&self, id: &str, by: &str) -> Result<Workflow> {
        let state = self.consistent_state().await?;
        if state.workflow(id).is_none() {
            return Err(unknown_workflow(id));
        }
        let op = WorkflowOp::Cancel { id: id.to_owned(), by: by.to_owned(), now: Timestamp::now() };
        let index = self.propose(Command::Workflow { op }).await?.into_result()?.index();
        let state = self.wait_for_index(index, Duration::from_secs(10)).await?;
        state.workflow(id).map(|workflow| Workflow::clone(workflow)).ok_or_else(|| unknown_workflow(id))
    }
}

fn unknown_workflow(id: &str) -> CodedError {
    CodedError::not_found("workflow", id).with_hint("`drover workflow list` shows the workflows")
}

/// The names of the machines to create: given, valid, not taken.
fn new_machine_names(state: &State, request: &WorkflowRequest) -> Result<Vec<String>> {
    if request.filter.is_some() {
        return Err(CodedError::invalid("`create` takes the names of new machines, not --filter"));
    }
    if request.nodes.is_empty() {
        return Err(CodedError::invalid("name the machines to create (`batch{100..149}`)"));
    }
    let mut names = Vec::new();
    for name in &request.nodes {
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(CodedError::invalid(format!(
                "{name:?} is not a machine name (letters, digits, `-`, `_`, `.`; at most 253)"
            )));
        }
        if state.node_by_name(name).is_some() {
            return Err(CodedError::conflict(format!(
                "a node named {name} exists already; nothing was started (`drover node rebuild {name}` reinstalls it)"
            )));
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// The names of the nodes to act on: named and/or filtered, none protected.
fn existing_nodes(state: &State, request: &WorkflowRequest) -> Result<Vec<String>> {
    let nodes = crate::inventory::select_nodes(state, &request.nodes, request.filter.as_deref())?;
    if nodes.is_empty() {
        return Err(CodedError::invalid("the filter matches no node; nothing was started"));
    }
    for node in &nodes {
        if let Some(refusal) = protection_refusal(node, request.operation) {
            return Err(refusal);
        }
    }
    Ok(nodes.iter().map(|node| node.name.clone()).collect())
}

/// Why `operation` may not touch `node`: its protection, with its reason.
pub(crate) fn protection_refusal(node: &Node, operation: MachineOperation) -> Option<CodedError> {
    let protection = node.protected.as_ref()?;
    Some(CodedError::conflict(format!(
        "node {} is protected ({:?}, by {} at {}); {operation} is refused and nothing was started. Lift the protection with `drover node unprotect {}` first",
        node.name, protection.reason, protection.by, protection.at, node.name
    )))
}

/// The provider a machine operation goes through: the one named, else the
/// node's (`provider` meta key; for a new machine, the asked-for meta),
/// else the site's default.
fn provider_for<'a>(
    site: &'a Site,
    named: Option<&str>,
    node: Option<&Node>,
    labels: &NodeLabels,
) -> std::result::Result<&'a Provider, String> {
    let wanted = named
        .or_else(|| node.and_then(|node| node.meta.get("provider").map(String::as_str)))
        .or_else(|| labels.meta.get("provider").map(String::as_str));
    site.provider_for(wanted).ok_or_else(|| match wanted {
        Some(name) => format!("no provider {name:?} in the applied site"),
        None => "no default provider in the applied site (name one with --provider)".to_owned(),
    })
}

/// The provider command of `operation` for machine `name`, rendered (the
/// node's placeholders; for `create`, its name and the labels asked for),
/// and the provider's timeout.
pub(crate) fn machine_command(
    site: &Site,
    operation: MachineOperation,
    named_provider: Option<&str>,
    name: &str,
    node: Option<&Node>,
    labels: &NodeLabels,
) -> std::result::Result<(String, Duration), String> {
    let provider = provider_for(site, named_provider, node, labels)?;
    let provider_operation = match operation {
        MachineOperation::Create => ProviderOperation::Create,
        MachineOperation::Reboot => ProviderOperation::Reboot,
        MachineOperation::Rebuild => ProviderOperation::Rebuild,
        MachineOperation::Delete => ProviderOperation::Delete,
    };
    let template = provider
        .command(provider_operation)
        .ok_or_else(|| format!("provider {} has no {operation} command", provider.name))?;
    let command = match (operation, node) {
        (MachineOperation::Create, _) => template
            .render(|placeholder| new_machine_placeholder(name, labels, placeholder), Escape::Shell)
            .map_err(|missing| {
                format!(
                    "provider {}'s create command uses {} which a new machine does not have yet",
                    provider.name,
                    missing.join(", ")
                )
            })?,
        (_, Some(node)) => crate::leader::render_provider_template(template, node),
        (_, None) => return Err(format!("no node named {name}")),
    };
    Ok((command, provider.timeout.get()))
}

/// A placeholder of a `create` template: the new machine's name and the
/// labels asked for (a missing meta key is empty).
fn new_machine_placeholder(name: &str, labels: &NodeLabels, placeholder: &str) -> Option<String> {
    if let Some(key) = placeholder.strip_prefix("node.meta.") {
        return Some(labels.meta.get(key).cloned().unwrap_or_default());
    }
    match placeholder {
        "node.name" | "node.unique.name" => Some(name.to_owned()),
        "node.hostgroup" => Some(labels.hostgroup.clone().unwrap_or_default()),
        "node.environment" => Some(labels.environment.clone().unwrap_or_default()),
        "node.owner" => Some(labels.owner.clone().unwrap_or_default()),
        "node.zone" | "node.datacenter" => Some(labels.zone.clone().unwrap_or_default()),
        _ => None,
    }
}
