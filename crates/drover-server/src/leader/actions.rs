//! What a hammer run does: restart allocations or a job, drain a node,
//! reboot it through its provider, rebuild, delete, create or replace its
//! machine (through a one-node machine workflow, `leader/workflows.rs`:
//! drained first while it is up), run a command on the node or on this
//! server, or call a webhook. Every action announces itself to the
//! hammer's notifiers (with its runbook), and its outcome and output are
//! proposed to Raft for the history.

use std::time::Duration;

use drover_collect::Error as RunError;
use drover_collect::process::BoundedCommand;
use drover_proto::api::ExecStatus;
use drover_proto::machines::WorkflowRequest;
use drover_react::alerting::NotificationKind;
use drover_react::hammer::{RUN_OUTPUT_MAX, RunReport};
use drover_react::hammer::{Run, RunId, hammer_notifications};
use drover_react::{Action, CommandTarget, Escape, Hammer, ProviderOperation, Template};
use drover_state::react::{ReactOp, truncate_output};
use drover_state::{Command, State};
use drover_types::workflow::{MachineOperation, Maintenance, WorkflowStatus};
use drover_types::{AllocDesiredStatus, EvalTrigger, Evaluation, Node, NodeLabels, PlanStop, Timestamp};

use crate::controls::DrainRequest;
use crate::ids::new_eval_id;
use crate::server::Server;

/// Performs a started run and records its outcome.
pub(super) async fn perform(server: &Server, run_id: RunId) {
    let state = server.state();
    let Some((hammer, run)) = lookup(&state, run_id) else { return };
    let node = node_of(&state, run.event.node.as_ref().map(|node| node.name.as_str()));
    let action = describe(&state, &hammer, node.as_deref());
    let summary = format!("hammer {}: {action} ({})", hammer.name, run.event.reason);
    server
        .notify(&hammer_notifications(&hammer, &run.event, NotificationKind::HammerAction, summary, Timestamp::now()))
        .await;
    tracing::info!(hammer = %hammer.name, run = %run_id, %action, "hammer acts");
    let (succeeded, output) = match act(server, &state, &hammer, &run, node.as_deref()).await {
        Ok(output) => (true, output),
        Err(output) => (false, output),
    };
    server.self_metrics().hammers.finished(succeeded);
    let report = RunReport { action, output, succeeded };
    if let Err(error) = server.react(ReactOp::Finish { run: run_id, report, now: Timestamp::now() }).await {
        tracing::warn!(run = %run_id, %error, "cannot record the end of a hammer run");
    }
}

/// Records what a `dry-run` hammer would have done, and says so.
pub(super) async fn dry_run(server: &Server, run_id: RunId) {
    let state = server.state();
    let Some((hammer, run)) = lookup(&state, run_id) else { return };
    let node = node_of(&state, run.event.node.as_ref().map(|node| node.name.as_str()));
    let action = format!("would {}", describe(&state, &hammer, node.as_deref()));
    let summary = format!("hammer {} (dry-run): {action} ({})", hammer.name, run.event.reason);
    server
        .notify(&hammer_notifications(&hammer, &run.event, NotificationKind::HammerAction, summary, Timestamp::now()))
        .await;
    server.self_metrics().hammers.dry_run();
    let report = RunReport { action, output: "dry-run: nothing was done".to_owned(), succeeded: true };
    if let Err(error) = server.react(ReactOp::Finish { run: run_id, report, now: Timestamp::now() }).await {
        tracing::warn!(run = %run_id, %error, "cannot record a dry run");
    }
}

fn lookup(state: &State, run_id: RunId) -> Option<(Hammer, Run)> {
    let run = state.react().guard.run(run_id)?.clone();
    let hammer = state.react().site.as_ref()?.site.hammers.get(&run.hammer)?.clone();
    Some((hammer, run))
}

fn node_of(state: &State, name: Option<&str>) -> Option<std::sync::Arc<Node>> {
    state.resolve_node(name?).ok().cloned()
}

/// The action in words, with the command it runs.
fn describe(state: &State, hammer: &Hammer, node: Option<&Node>) -> String {
    let node_name = node.map_or("(no node)", |node| node.name.as_str());
    match &hammer.action {
        Action::RestartAlloc => format!("restart the allocations on {node_name}"),
        Action::RestartJob { job } => format!("restart job {}", job.as_deref().unwrap_or("(the trigger's)")),
        Action::Drain { deadline } => format!("drain {node_name} (deadline {deadline})"),
        Action::Reboot { provider } => {
            let operation = ProviderOperation::Reboot;
            match provider_command(state, provider.as_deref(), node, operation) {
                Ok((provider, command)) => {
                    format!("{} {node_name} through provider {provider}: {command}", operation.as_str())
                }
                Err(error) => format!("{} {node_name}: {error}", operation.as_str()),
            }
        }
        Action::Rebuild { provider } | Action::Delete { provider } | Action::Create { provider } => {
            let provider = provider.as_deref().map_or_else(String::new, |name| format!(" through provider {name}"));
            let drained = if node.is_some_and(Node::is_up) && !matches!(hammer.action, Action::Create { .. }) {
                ", drained first"
            } else {
                ""
            };
            format!("{} {node_name}{provider} (a machine workflow{drained})", hammer.action.kind())
        }
        Action::Replace { provider } => {
            let provider = provider.as_deref().map_or_else(String::new, |name| format!(" through provider {name}"));
            format!("replace {node_name}{provider}: delete its machine, then create one with its name and labels")
        }
        Action::Command { on, command, .. } => {
            let rendered = node.map_or_else(|| command.text().to_owned(), |node| render(command, node));
            match on {
                CommandTarget::Node => format!("run on {node_name}: {rendered}"),
                CommandTarget::Server => format!("run on the server: {rendered}"),
            }
        }
        Action::Webhook { url } => format!("call {url}"),
    }
}

/// Does it; `Ok(output)` or `Err(what went wrong)`.
async fn act(
    server: &Server,
    state: &State,
    hammer: &Hammer,
    run: &Run,
    node: Option<&Node>,
) -> Result<String, String> {
    let job = run.event.job.as_deref();
    let need_node = || node.ok_or_else(|| "the trigger names no node to act on".to_owned());
    match &hammer.action {
        Action::RestartAlloc => restart(server, state, hammer, node.map(|node| &node.id), job).await,
        Action::RestartJob { job: named } => {
            let job = named.as_deref().or(job).ok_or("the trigger names no job and the action none either")?;
            restart(server, state, hammer, None, Some(job)).await
        }
        Action::Drain { deadline } => {
            let node = need_node()?;
            let request = DrainRequest {
                deadline: Some(deadline.get()),
                reason: Some(format!("hammer {}", hammer.name)),
                by: format!("hammer {}", hammer.name),
                ..DrainRequest::default()
            };
            server.drain_node(node.id.as_str(), request).await.map_err(|error| error.to_string())?;
            Ok(format!("drain of {} started", node.name))
        }
        Action::Rebuild { provider } => {
            machine_workflow(server, hammer, need_node()?, MachineOperation::Rebuild, provider.as_deref()).await
        }
        Action::Delete { provider } => {
            machine_workflow(server, hammer, need_node()?, MachineOperation::Delete, provider.as_deref()).await
        }
        Action::Create { provider } => {
            machine_workflow(server, hammer, need_node()?, MachineOperation::Create, provider.as_deref()).await
        }
        Action::Replace { provider } => {
            let node = need_node()?;
            let deleted = machine_workflow(server, hammer, node, MachineOperation::Delete, provider.as_deref()).await?;
            let created = machine_workflow(server, hammer, node, MachineOperation::Create, provider.as_deref())
                .await
                .map_err(|error| format!("{deleted}\nthen: {error}"))?;
            Ok(format!("{deleted}\n{created}"))
        }
        Action::Reboot { provider } => {
            let node = need_node()?;
            let operation = ProviderOperation::Reboot;
            let (_, command) = provider_command(state, provider.as_deref(), Some(node), operation)?;
            let timeout = state
                .react()
                .site
                .as_ref()
                .and_then(|doc| {
                    doc.site.provider_for(provider.as_deref().or(node.meta.get("provider").map(String::as_str)))
                })
                .map_or(Duration::from_secs(60), |provider| provider.timeout.get());
            shell(&command, timeout).await
        }
        Action::Command { on: CommandTarget::Server, command, timeout } => {
            let command = node.map_or_else(|| command.text().to_owned(), |node| render(command, node));
            shell(&command, timeout.get()).await
        }
        Action::Command { on: CommandTarget::Node, command, timeout } => {
            let node = need_node()?;
            exec_on(server, node, &render(command, node), timeout.get()).await
        }
        Action::Webhook { url } => webhook(run, url).await,
    }
}

/// Runs `operation` on `node`'s machine as a one-node machine workflow
/// (docs/machines.md) — drained first while it is up (rebuild, delete),
/// refused for a protected node, never two on one node — and waits for
/// it to end: `Ok` with its step's output when it succeeded. `create`
/// makes a machine with the node's name and labels (its record must be
/// down or gone: the new agent takes its place).
async fn machine_workflow(
    server: &Server,
    hammer: &Hammer,
    node: &Node,
    operation: MachineOperation,
    provider: Option<&str>,
) -> Result<String, String> {
    let labels = NodeLabels {
        hostgroup: Some(node.hostgroup.clone()).filter(|value| !value.is_empty()),
        environment: Some(node.environment.clone()).filter(|value| !value.is_empty()),
        owner: Some(node.owner.clone()).filter(|value| !value.is_empty()),
        zone: Some(node.zone.clone()).filter(|value| !value.is_empty()),
        meta: node.meta.clone(),
    };
    let request = WorkflowRequest {
        operation,
        nodes: vec![node.name.clone()],
        filter: None,
        provider: provider.map(str::to_owned),
        labels,
        rate_per_minute: None,
        parallel: Some(1),
        max_failures: Some(drover_types::workflow::FailureLimit::Nodes(0)),
        no_drain: !node.is_up(),
        timeout: None,
        dry_run: false,
        maintenance: Maintenance::default(),
    };
    let by = format!("hammer {}", hammer.name);
    let started = server.start_workflow(&request, &by).await.map_err(|error| format!("{operation}: {error}"))?;
    let id = started.workflow.id;
    // Drain, provider command and the agent's return each get the step
    // timeout; a little more for the workflow to settle.
    let deadline = tokio::time::Instant::now() + crate::machines::DEFAULT_STEP_TIMEOUT * 3 + Duration::from_secs(30);
    loop {
        let state = server.state();
        let Some(workflow) = state.workflow(&id) else {
            return Err(format!("{operation} workflow {id} disappeared"));
        };
        if workflow.status != WorkflowStatus::Running {
            let step = workflow.steps.first();
            let output = step.map_or_else(String::new, |step| step.output.trim_end().to_owned());
            let what = format!("{operation} of {} (workflow {id}) {}", node.name, workflow.status.as_str());
            return match (workflow.status, step) {
                (WorkflowStatus::Succeeded, _) => Ok(format!("{what}\n{output}")),
                (_, Some(step)) if !step.error.is_empty() => Err(format!("{what}: {}\n{output}", step.error)),
                _ => Err(format!("{what}: {}\n{output}", workflow.reason)),
            };
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{operation} workflow {id} of {} did not end in time; see `drover workflow status {id}`",
                node.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Replaces the running allocations of a job (on one node, or all):
/// they stop and the scheduler places new ones.
async fn restart(
    server: &Server,
    state: &State,
    hammer: &Hammer,
    node: Option<&drover_types::NodeId>,
    job: Option<&str>,
) -> Result<String, String> {
    let allocs: Vec<_> = state
        .allocs()
        .filter(|alloc| alloc.desired_status == AllocDesiredStatus::Run && !alloc.client_status.is_terminal())
        .filter(|alloc| node.is_none_or(|node| &alloc.node_id == node))
        .filter(|alloc| job.is_none_or(|job| alloc.job_id.as_str() == job))
        .cloned()
        .collect();
    if allocs.is_empty() {
        return Err("no running allocation to restart".to_owned());
    }
    let now = Timestamp::now();
    let mut jobs: Vec<_> = allocs.iter().map(|alloc| alloc.job_id.clone()).collect();
    jobs.dedup();
    let evals = jobs
        .into_iter()
        .map(|job_id| {
            let priority = state.job(&job_id).map_or(50, |job| job.priority);
            Evaluation::new(new_eval_id(), job_id, priority, EvalTrigger::AllocStop, now)
        })
        .collect();
    let stops = allocs
        .iter()
        .map(|alloc| PlanStop {
            alloc_id: alloc.id.clone(),
            node_id: alloc.node_id.clone(),
            desired_status: AllocDesiredStatus::Stop,
            description: format!("restarted by hammer {}", hammer.name),
            client_status: None,
            follow_up_eval: None,
        })
        .collect();
    server
        .propose(Command::StopAllocs { stops, evals, now })
        .await
        .and_then(|response| response.into_result())
        .map_err(|error| error.to_string())?;
    let names: Vec<String> = allocs.iter().map(|alloc| alloc.id.to_string()).collect();
    Ok(format!("replaced allocations {}", names.join(", ")))
}

/// The provider's command for a node, rendered.
fn provider_command(
    state: &State,
    provider: Option<&str>,
    node: Option<&Node>,
    operation: ProviderOperation,
) -> Result<(String, String), String> {
    let site = &state.react().site.as_ref().ok_or("no site is applied")?.site;
    let wanted = provider.or_else(|| node.and_then(|node| node.meta.get("provider").map(String::as_str)));
    let provider = site.provider_for(wanted).ok_or_else(|| match wanted {
        Some(name) => format!("no provider {name:?} in the site"),
        None => "no default provider in the site".to_owned(),
    })?;
    let template = provider
        .command(operation)
        .ok_or_else(|| format!("provider {} has no {} command", provider.name, operation.as_str()))?;
    let node = node.ok_or("the trigger names no node to act on")?;
    Ok((provider.name.clone(), render(template, node)))
}

/// A node template filled in, values quoted for the shell.
pub(crate) fn render(template: &Template, node: &Node) -> String {
    render_checked(template, node)
        .unwrap_or_else(|missing| format!("false # unknown placeholders {}", missing.join(", ")))
}

/// Renders a node template, or says which placeholders the node has no
/// value for (a `{{node.facts.X}}` its agent did not register).
pub(crate) fn render_checked(template: &Template, node: &Node) -> Result<String, Vec<String>> {
    template.render(|name| node_placeholder(node, name), Escape::Shell)
}

/// A template placeholder (`node.name`, `node.meta.rack`,
/// `node.facts.cpu.arch`, …) through the node's interpolation targets; a
/// missing meta key is empty, a missing fact has no value.
fn node_placeholder(node: &Node, name: &str) -> Option<String> {
    if let Some(key) = name.strip_prefix("node.meta.") {
        return Some(node.meta.get(key).cloned().unwrap_or_default());
    }
    if let Some(fact) = name.strip_prefix("node.facts.") {
        return node.attributes.get(fact).cloned();
    }
    let target = match name {
        "node.name" => "node.unique.name",
        "node.id" => "node.unique.id",
        other => other,
    };
    node.resolve(target)
}

/// Bytes kept of each stream of a command run on this server: one more than
/// a run's output keeps, so a stream cut here is still longer than
/// [`RUN_OUTPUT_MAX`] and [`truncate_output`] marks it as cut.
const SHELL_OUTPUT_CAP: usize = RUN_OUTPUT_MAX + 1;

/// Runs `sh -c command` on this server through the bounded runner: in its
/// own process group, killed whole at `timeout`, each stream capped.
pub(crate) async fn shell(command: &str, timeout: Duration) -> Result<String, String> {
    let mut sh = BoundedCommand::new("/bin/sh", timeout, SHELL_OUTPUT_CAP);
    sh.arg("-c").arg(command);
    let finished = sh.run().await.map_err(|error| match error {
        RunError::Spawn { source, .. } => format!("cannot run /bin/sh: {source}"),
        other => other.to_string(),
    })?;
    if finished.timed_out {
        return Err(format!("killed after {}s", timeout.as_secs()));
    }
    let mut text = String::from_utf8_lossy(&finished.stdout.bytes).into_owned();
    text.push_str(&String::from_utf8_lossy(&finished.stderr.bytes));
    truncate_output(&mut text);
    match finished.status {
        Some(status) if status.success() => Ok(text),
        Some(status) => Err(format!("{status}\n{text}")),
        None => Err(format!("ended without an exit status\n{text}")),
    }
}

async fn exec_on(server: &Server, node: &Node, command: &str, timeout: Duration) -> Result<String, String> {
    // A hammer's command is the site's, applied by an operator: it runs as
    // root, as a runbook's step would.
    let result = server
        .exec_on_node(node, command, Some("root"), timeout, RUN_OUTPUT_MAX)
        .await
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("no result from {}", node.name))?;
    let mut text = format!("{}{}{}", result.stdout, result.stderr, result.error);
    truncate_output(&mut text);
    match result.status {
        ExecStatus::Success => Ok(text),
        status => Err(format!("{status:?} (exit {:?})\n{text}", result.exit_code)),
    }
}

/// POSTs the run as JSON: hammer, run, target, node, job, reason.
async fn webhook(run: &Run, url: &str) -> Result<String, String> {
    let body = serde_json::json!({
        "hammer": run.hammer,
        "run": run.id.0,
        "target": run.target,
        "node": run.event.node.as_ref().map(|node| node.name.clone()),
        "job": run.event.job,
        "reason": run.event.reason,
        "requested_at": run.requested_at.to_string(),
    });
    // One client for every call: building one loads the system's CA
    // certificates (milliseconds), and its pool keeps connections.
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder().timeout(Duration::from_secs(30)).tcp_nodelay(true).build().unwrap_or_default()
    });
    let response = client.post(url).json(&body).send().await.map_err(|error| format!("POST {url}: {error}"))?;
    let status = response.status();
    let mut text = response.text().await.unwrap_or_default();
    truncate_output(&mut text);
    if status.is_success() { Ok(format!("{status}\n{text}")) } else { Err(format!("POST {url}: {status}\n{text}")) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Whether `pid` is gone (or a zombie waiting for init), within 5 s.
    async fn process_ends(pid: u32) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => {
                    return true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        false
    }

    #[tokio::test]
    async fn a_timed_out_server_command_leaves_no_child_running() {
        // What hammer `command { on = "server" }`, provider reboot/rebuild
        // and console polls run.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let command = format!("sleep 300 & echo $! > {}; sleep 300", pid_file.display());
        let started = std::time::Instant::now();
        let error = shell(&command, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(error, "killed after 1s");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        assert!(process_ends(pid).await, "the command's child {pid} still runs");
    }

    #[tokio::test]
    async fn a_server_commands_output_is_capped_and_marked() {
        let output = shell("yes | head -c 10485760", Duration::from_secs(60)).await.unwrap();
        assert_eq!(output.len(), RUN_OUTPUT_MAX);
        assert!(output.starts_with("y\ny\n") && output.ends_with("\n[output truncated]"), "{}", &output[16_000..]);

        let output = shell("echo out; echo err >&2", Duration::from_secs(60)).await.unwrap();
        assert_eq!(output, "out\nerr\n");
        let error = shell("echo failing; exit 3", Duration::from_secs(60)).await.unwrap_err();
        assert_eq!(error, "exit status: 3\nfailing\n");
    }
}
