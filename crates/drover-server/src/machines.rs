//! Machine workflows as the API sees them: starting one (`drover node
//! create|reboot|rebuild|delete|maintain`), listing, showing, pausing,
//! resuming and cancelling them (`drover workflow …`), and a node's
//! console now (`drover node console`). Every refusal happens here, before
//! anything is proposed: unknown or protected nodes, a provider without
//! the operation's command, a name that exists already, a node held by
//! another running workflow, a maintenance command that does not parse.
//! The leader's `leader/workflows.rs` runs them.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::machines::{NodeConsole, WorkflowRequest, WorkflowStarted};
use drover_react::{Escape, PlaceholderSet, Provider, ProviderOperation, Site, Template};
use drover_state::{Command, State};
use drover_types::workflow::{
    FailureLimit, MachineOperation, Maintenance, MaintenanceReboot, Workflow, WorkflowOp, WorkflowStatus, WorkflowStep,
};
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
        let operation = request.operation;
        let maintenance = if operation == MachineOperation::Maintain {
            checked_maintenance(&request.maintenance)?
        } else {
            Maintenance::default()
        };
        let state = self.consistent_state().await?;
        // Only a maintenance without a provider reboot needs no site.
        let needs_provider =
            operation != MachineOperation::Maintain || maintenance.reboot == MaintenanceReboot::Provider;
        let site = match state.react().site.as_ref() {
            Some(doc) => Some(&doc.site),
            None if needs_provider => {
                return Err(CodedError::conflict(
                    "no site is applied, so there is no provider; define one and `drover apply DIR`",
                ));
            }
            None => None,
        };
        let names = match operation {
            MachineOperation::Create => new_machine_names(&state, request)?,
            _ => existing_nodes(&state, request)?,
        };
        if names.len() > MAX_STEPS {
            return Err(CodedError::invalid(format!("{} nodes in one workflow; at most {MAX_STEPS}", names.len())));
        }
        let max_failures = request.max_failures.unwrap_or(FailureLimit::Nodes(1));
        let labels = if operation == MachineOperation::Create { request.labels.clone() } else { NodeLabels::default() };
        let mut commands = Vec::new();
        for name in &names {
            let node = state.node_by_name(name).map(Arc::as_ref);
            let provider_command = match site {
                Some(site) if needs_provider => {
                    let join_token = if self.tls().is_some() { "<join-token>" } else { "" };
                    let command =
                        machine_command(site, operation, request.provider.as_deref(), name, node, &labels, join_token)
                            .map_err(|error| CodedError::conflict(format!("{error}; nothing was started")))?;
                    Some(command.0)
                }
                _ => None,
            };
            let shown = match (operation, node) {
                (MachineOperation::Maintain, Some(node)) => {
                    maintenance_commands(&maintenance, node, provider_command).map_err(CodedError::invalid)?
                }
                _ => provider_command.unwrap_or_default(),
            };
            commands.push((name.clone(), shown));
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
            max_failures: max_failures.resolve(names.len()),
            max_failures_percent: max_failures.percent(),
            drain: operation == MachineOperation::Maintain
                || (!request.no_drain
                    && matches!(
                        operation,
                        MachineOperation::Rebuild | MachineOperation::Delete | MachineOperation::PowerOff
                    )),
            wait_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            maintenance,
            paused_by: None,
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
        let command = Command::Workflow { op: WorkflowOp::Start { workflow: Box::new(workflow.clone()) } };
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

impl Server {
    /// Pauses (`paused`) or resumes a running workflow: a paused one starts
    /// no new node step; the steps in flight go on.
    pub async fn pause_workflow(&self, id: &str, paused: bool, by: &str) -> Result<Workflow> {
        let state = self.consistent_state().await?;
        if state.workflow(id).is_none() {
            return Err(unknown_workflow(id));
        }
        let op = WorkflowOp::Pause { id: id.to_owned(), paused, by: by.to_owned() };
        let index = self.propose(Command::Workflow { op }).await?.into_result()?.index();
        let state = self.wait_for_index(index, Duration::from_secs(10)).await?;
        tracing::info!(workflow = id, paused, by, "machine workflow paused or resumed");
        state.workflow(id).map(|workflow| Workflow::clone(workflow)).ok_or_else(|| unknown_workflow(id))
    }

    /// A node's console now: its provider's `console` command (rendered as
    /// the console poller does), run once on this server.
    pub async fn node_console(&self, name_or_id: &str) -> Result<NodeConsole> {
        let state = self.consistent_state().await?;
        let node = state.resolve_node(name_or_id)?.clone();
        let site = &state
            .react()
            .site
            .as_ref()
            .ok_or_else(|| {
                CodedError::conflict("no site is applied, so there is no provider; define one and `drover apply DIR`")
            })?
            .site;
        let provider = provider_for(site, None, Some(&node), &NodeLabels::default()).map_err(CodedError::conflict)?;
        let template = provider.command(ProviderOperation::Console).ok_or_else(|| {
            CodedError::conflict(format!(
                "provider {} has no console command; add `console = \"…\"` to its block in the site folder",
                provider.name
            ))
        })?;
        let command = crate::leader::render_provider_template(template, &node);
        let output = crate::leader::run_provider_command(&command, provider.timeout.get()).await.map_err(|error| {
            CodedError::new(
                drover_types::ErrorCode::Internal,
                format!("the console command of provider {} failed: {error}", provider.name),
            )
        })?;
        Ok(NodeConsole { node: node.name.clone(), command, output })
    }
}

/// The maintenance asked for, checked: something to do, commands that
/// parse (with the node placeholders).
fn checked_maintenance(maintenance: &Maintenance) -> Result<Maintenance> {
    let reboot_command = match &maintenance.reboot {
        MaintenanceReboot::Command(command) => Some(command),
        _ => None,
    };
    let commands = [
        ("--run", maintenance.run.as_ref()),
        ("--reboot-command", reboot_command),
        ("--verify", maintenance.verify.as_ref()),
    ];
    if commands.iter().all(|(_, command)| command.is_none()) && maintenance.reboot == MaintenanceReboot::None {
        return Err(CodedError::invalid(
            "a maintenance does something: give --run CMD, --reboot, --reboot-command CMD and/or --verify CMD",
        ));
    }
    for (flag, command) in commands {
        let Some(command) = command else { continue };
        if command.trim().is_empty() {
            return Err(CodedError::invalid(format!("{flag} is empty")));
        }
        if let Err(errors) = Template::parse(command, PlaceholderSet::Node) {
            let problems: Vec<String> = errors.iter().map(|error| error.message.clone()).collect();
            return Err(CodedError::invalid(format!("{flag} {command:?}: {}", problems.join("; "))));
        }
    }
    Ok(maintenance.clone())
}

/// What a maintenance does on `node`, in words, its commands rendered;
/// an error naming the command and the placeholder when one uses a fact
/// the node has not registered.
fn maintenance_commands(
    maintenance: &Maintenance,
    node: &Node,
    provider_reboot: Option<String>,
) -> std::result::Result<String, String> {
    let render = |flag: &str, command: &str| match Template::parse(command, PlaceholderSet::Node) {
        Ok(template) => crate::leader::render_provider_template_checked(&template, node).map_err(|missing| {
            missing_placeholders_message(&format!("{flag} {command:?}"), &missing, node) + "; nothing was started"
        }),
        Err(_) => Ok(command.to_owned()),
    };
    let mut parts = vec!["drain".to_owned()];
    if let Some(run) = &maintenance.run {
        parts.push(format!("run: {}", render("--run", run)?));
    }
    match &maintenance.reboot {
        MaintenanceReboot::Provider => parts.push(format!("reboot: {}", provider_reboot.unwrap_or_default())),
        MaintenanceReboot::Command(command) => {
            parts.push(format!("reboot through the agent: {}", render("--reboot-command", command)?));
        }
        MaintenanceReboot::None => {}
    }
    if maintenance.reboot != MaintenanceReboot::None {
        parts.push("wait for the agent".to_owned());
    }
    if let Some(verify) = &maintenance.verify {
        parts.push(format!("verify: {}", render("--verify", verify)?));
    }
    parts.push("undrain".to_owned());
    Ok(parts.join(" → "))
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
        // A node that is not up (down, disconnected) may be made again:
        // the new agent takes its place, as it may on registration.
        if state.node_by_name(name).is_some_and(|node| node.is_up()) {
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
        if let Some(refusal) = power_refusal(node, request.operation) {
            return Err(refusal);
        }
    }
    Ok(nodes.iter().map(|node| node.name.clone()).collect())
}

/// Why `operation` may not touch `node`: its protection, with its reason
/// (powering a machine on destroys nothing, so it is not refused).
pub(crate) fn protection_refusal(node: &Node, operation: MachineOperation) -> Option<CodedError> {
    if operation == MachineOperation::PowerOn {
        return None;
    }
    let protection = node.protected.as_ref()?;
    Some(CodedError::conflict(format!(
        "node {} is protected ({:?}, by {} at {}); {operation} is refused and nothing was started. Lift the protection with `drover node unprotect {}` first",
        node.name, protection.reason, protection.by, protection.at, node.name
    )))
}

/// Why a power operation makes no sense for `node` now: powering on a node
/// whose agent is up, or off one that is down, would wait for nothing.
fn power_refusal(node: &Node, operation: MachineOperation) -> Option<CodedError> {
    let (wrong, what) = match operation {
        MachineOperation::PowerOn => (node.is_up(), "up; power-on is for a node that is down"),
        MachineOperation::PowerOff => (!node.is_up(), "down already; power-off is for a node that is up"),
        _ => return None,
    };
    wrong.then(|| {
        CodedError::conflict(format!(
            "node {} is {} ({what}); nothing was started. Leave it out of the selection (`--filter 'status == \"down\"'`)",
            node.name,
            node.status.as_str()
        ))
    })
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
/// `join_token` fills a create template's `{{join_token}}` (empty on an
/// insecure cluster). `maintain` runs the provider's `reboot` command.
pub(crate) fn machine_command(
    site: &Site,
    operation: MachineOperation,
    named_provider: Option<&str>,
    name: &str,
    node: Option<&Node>,
    labels: &NodeLabels,
    join_token: &str,
) -> std::result::Result<(String, Duration), String> {
    let provider = provider_for(site, named_provider, node, labels)?;
    let provider_operation = provider_operation_of(operation);
    let template = provider
        .command(provider_operation)
        .ok_or_else(|| format!("provider {} has no {} command", provider.name, provider_operation.as_str()))?;
    let command = match (operation, node) {
        (MachineOperation::Create, _) => template
            .render(|placeholder| new_machine_placeholder(name, labels, join_token, placeholder), Escape::Shell)
            .map_err(|missing| {
                format!(
                    "provider {}'s create command uses {} which a new machine does not have yet",
                    provider.name,
                    missing.join(", ")
                )
            })?,
        (_, Some(node)) => crate::leader::render_provider_template_checked(template, node)
            .map_err(|missing| missing_facts_message(&provider.name, provider_operation.as_str(), &missing, node))?,
        (_, None) => return Err(format!("no node named {name}")),
    };
    Ok((command, provider.timeout.get()))
}

/// Why a template could not be rendered for `node`: the facts (or other
/// placeholders) it uses that the node has no value for, and the facts it
/// has. `what` names the template (`provider ipmi's power_off command`).
pub(crate) fn missing_placeholders_message(what: &str, missing: &[String], node: &Node) -> String {
    let names: Vec<String> = missing.iter().map(|name| format!("{{{{{name}}}}}")).collect();
    let facts: Vec<&str> = node.attributes.keys().map(String::as_str).collect();
    let known = if facts.is_empty() {
        "it has registered no facts".to_owned()
    } else {
        let mut shown = facts.iter().take(20).copied().collect::<Vec<_>>().join(", ");
        if facts.len() > 20 {
            shown.push_str(&format!(", … ({} in all)", facts.len()));
        }
        format!("its facts are {shown}")
    };
    format!(
        "{what} uses {}, which node {} has not registered ({known}; `drover node status {}` lists them); fix the template or the agent's facts",
        names.join(", "),
        node.name,
        node.name
    )
}

fn missing_facts_message(provider: &str, operation: &str, missing: &[String], node: &Node) -> String {
    missing_placeholders_message(&format!("provider {provider}'s {operation} command"), missing, node)
}

/// The provider command an operation runs.
fn provider_operation_of(operation: MachineOperation) -> ProviderOperation {
    match operation {
        MachineOperation::Create => ProviderOperation::Create,
        MachineOperation::Reboot | MachineOperation::Maintain => ProviderOperation::Reboot,
        MachineOperation::Rebuild => ProviderOperation::Rebuild,
        MachineOperation::Delete => ProviderOperation::Delete,
        MachineOperation::PowerOn => ProviderOperation::PowerOn,
        MachineOperation::PowerOff => ProviderOperation::PowerOff,
    }
}

/// Whether the `create` template new machines get (through the provider
/// named, else the one their labels' `provider` meta key names, else the
/// default) has `{{join_token}}`: a token is minted only then.
pub(crate) fn create_uses_join_token(site: &Site, named_provider: Option<&str>, labels: &NodeLabels) -> bool {
    provider_for(site, named_provider, None, labels)
        .ok()
        .and_then(|provider| provider.command(ProviderOperation::Create))
        .is_some_and(|template| template.placeholders().any(|placeholder| placeholder == JOIN_TOKEN))
}

/// The placeholder of a `create` template that a fresh single-use join
/// token fills.
const JOIN_TOKEN: &str = "join_token";

/// A placeholder of a `create` template: the new machine's name, the
/// labels asked for (a missing meta key is empty) and its join token.
fn new_machine_placeholder(name: &str, labels: &NodeLabels, join_token: &str, placeholder: &str) -> Option<String> {
    if let Some(key) = placeholder.strip_prefix("node.meta.") {
        return Some(labels.meta.get(key).cloned().unwrap_or_default());
    }
    match placeholder {
        JOIN_TOKEN => Some(join_token.to_owned()),
        "node.name" | "node.unique.name" => Some(name.to_owned()),
        "node.hostgroup" => Some(labels.hostgroup.clone().unwrap_or_default()),
        "node.environment" => Some(labels.environment.clone().unwrap_or_default()),
        "node.owner" => Some(labels.owner.clone().unwrap_or_default()),
        "node.zone" | "node.datacenter" => Some(labels.zone.clone().unwrap_or_default()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use drover_types::DurationSpec;

    use super::*;

    fn site(create: &str) -> Site {
        let provider = Provider {
            name: "cloud".to_owned(),
            default: true,
            create: Some(Template::parse(create, PlaceholderSet::NewMachine).unwrap()),
            reboot: Some(Template::parse("reboot {{node.name}}", PlaceholderSet::Node).unwrap()),
            rebuild: None,
            delete: None,
            console: None,
            power_on: None,
            power_off: None,
            timeout: DurationSpec::from_secs(60),
            console_interval: DurationSpec::from_secs(30),
        };
        let mut site = Site::default();
        site.providers.insert(provider.name.clone(), provider);
        site
    }

    fn labels(hostgroup: &str) -> NodeLabels {
        NodeLabels { hostgroup: Some(hostgroup.to_owned()), ..NodeLabels::default() }
    }

    #[test]
    fn a_create_template_renders_the_join_token_given_and_empty_on_an_insecure_cluster() {
        let site = site("boot {{node.name}} --hostgroup {{node.hostgroup}} --token {{join_token}}");
        let labels = labels("bi/batch");
        assert!(create_uses_join_token(&site, None, &labels));
        let (secure, timeout) =
            machine_command(&site, MachineOperation::Create, None, "b1", None, &labels, "drover1.abc.s3cret").unwrap();
        assert_eq!(secure, "boot b1 --hostgroup bi/batch --token drover1.abc.s3cret");
        assert_eq!(timeout, Duration::from_secs(60));
        let (insecure, _) = machine_command(&site, MachineOperation::Create, None, "b1", None, &labels, "").unwrap();
        assert_eq!(insecure, "boot b1 --hostgroup bi/batch --token ''");
        // A token with shell metacharacters stays one word.
        let (quoted, _) = machine_command(&site, MachineOperation::Create, None, "b1", None, &labels, "a b;c").unwrap();
        assert!(quoted.ends_with("--token 'a b;c'"), "{quoted}");
    }

    #[test]
    fn power_commands_render_the_node_facts_and_name_a_missing_one() {
        let mut site = site("boot {{node.name}}");
        let provider = site.providers.get_mut("cloud").unwrap();
        provider.power_off =
            Some(Template::parse("ipmitool -H {{node.facts.bmc.address}} power off", PlaceholderSet::Node).unwrap());
        provider.power_on = Some(Template::parse("wake {{node.facts.cpu.arch}}", PlaceholderSet::Node).unwrap());
        let mut node = drover_types::fixtures::node("id1");
        node.attributes = [("cpu.arch".to_owned(), "amd64".to_owned())].into();
        let labels = NodeLabels::default();
        let on = machine_command(&site, MachineOperation::PowerOn, None, &node.name, Some(&node), &labels, "");
        assert_eq!(on.unwrap().0, "wake amd64");
        let off = machine_command(&site, MachineOperation::PowerOff, None, &node.name, Some(&node), &labels, "");
        assert_eq!(
            off.unwrap_err(),
            format!(
                "provider cloud's power_off command uses {{{{node.facts.bmc.address}}}}, which node {} has not registered (its facts are cpu.arch; `drover node status {}` lists them); fix the template or the agent's facts",
                node.name, node.name
            )
        );
        // A provider without the command says so.
        site.providers.get_mut("cloud").unwrap().power_on = None;
        let missing = machine_command(&site, MachineOperation::PowerOn, None, &node.name, Some(&node), &labels, "");
        assert_eq!(missing.unwrap_err(), "provider cloud has no power_on command");
    }

    #[test]
    fn no_token_is_asked_for_when_the_template_has_none() {
        let site = site("boot {{node.name}}");
        assert!(!create_uses_join_token(&site, None, &labels("bi")));
        assert!(!create_uses_join_token(&site, Some("other"), &labels("bi")));
    }

    #[test]
    fn only_create_templates_may_use_the_join_token() {
        assert!(Template::parse("reboot {{join_token}}", PlaceholderSet::Node).is_err());
        assert!(Template::parse("create {{join_token}}", PlaceholderSet::NewMachine).is_ok());
    }

    #[test]
    fn a_maintenance_must_do_something_and_its_commands_must_parse() {
        let nothing = checked_maintenance(&Maintenance::default()).unwrap_err();
        assert!(nothing.message.contains("--run CMD"), "{}", nothing.message);
        let typo = Maintenance { run: Some("touch /tmp/{{node.nmae}}".to_owned()), ..Maintenance::default() };
        let error = checked_maintenance(&typo).unwrap_err();
        assert!(error.message.contains("--run") && error.message.contains("node.nmae"), "{}", error.message);
        let reboot_only = Maintenance { reboot: MaintenanceReboot::Provider, ..Maintenance::default() };
        assert!(checked_maintenance(&reboot_only).is_ok());
    }

    #[test]
    fn a_maintenance_preview_says_each_stage_with_its_commands_rendered() {
        let node = drover_types::fixtures::node("id1");
        let maintenance = Maintenance {
            run: Some("upgrade {{node.name}}".to_owned()),
            reboot: MaintenanceReboot::Provider,
            verify: Some("check".to_owned()),
            user: None,
            drain_deadline_ms: None,
        };
        let shown = maintenance_commands(&maintenance, &node, Some("reboot x".to_owned())).unwrap();
        let expected = format!(
            "drain → run: upgrade {} → reboot: reboot x → wait for the agent → verify: check → undrain",
            node.name
        );
        assert_eq!(shown, expected);
        // A fact the node has is rendered; one it lacks is refused, named.
        let mut node = node;
        node.attributes.insert("kernel.name".to_owned(), "linux".to_owned());
        let facts = Maintenance {
            run: Some("echo {{node.facts.kernel.name}}".to_owned()),
            verify: Some("test {{node.facts.bmc.address}}".to_owned()),
            ..Maintenance::default()
        };
        let error = maintenance_commands(&facts, &node, None).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "--verify \"test {{{{node.facts.bmc.address}}}}\" uses {{{{node.facts.bmc.address}}}}, which node {} has not registered (its facts are ",
                node.name
            )),
            "{error}"
        );
        assert!(error.contains("kernel.name"), "{error}");
        let facts = Maintenance { verify: None, ..facts };
        assert_eq!(maintenance_commands(&facts, &node, None).unwrap(), "drain → run: echo linux → undrain");
    }
}
