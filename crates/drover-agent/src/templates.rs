//! Templates that follow the cluster: the variables and services their
//! `nomadVar`, `key` and `service` functions read, kept up to date from the
//! servers' `TemplateInputs` session messages, and a watcher per task that
//! renders its templates again when those change and applies their
//! `change_mode`.
//!
//! ```text
//!  TemplateInputs ──▶ feed (per node) ──▶ watcher of each task with templates
//!                                            │ with a `wait`: until quiet for min (at most max)
//!                                            │ render again; rewrite files that differ
//!                                            │ none differ: wait for the next change
//!                                            ▼
//!                                     wait a random time up to the largest splay
//!                                            │
//!                   restart (any changed template says so) ─▶ TaskControl::Restart
//!                   else signal (each change_signal once)    ─▶ TaskControl::Signal
//!                    and script (each change_script once, in the task's
//!                    environment, as `drover alloc exec`)     ─▶ TaskControl::Note (an event);
//!                                       failed, fail_on_error ─▶ TaskControl::Fail
//!                   else noop                                 ─▶ nothing
//! ```
//!
//! The feed is kept per node id in this process (several agents of one
//! test process stay apart) so that the session, which receives the
//! inputs, and the task runners, which read them, need no new plumbing.
//! The session publishes inputs before it applies the allocations that
//! follow them, so a task's first render already sees them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};

use drover_proto::session::ResponseBody;
use drover_proto::session::TemplateInputs;
use drover_template::{ClusterData, ServiceEntry};
use drover_types::{ChangeMode, ChangeScript, JobId, NodeId, TaskEventKind, TaskTemplate, TemplateWait};

use crate::alloc_control::{TaskExecRequest, TaskPlace, run_in_task};
use crate::env::{AllocDirs, task_command_line};
use crate::task::{TaskContext, TaskControl};

type Feed = watch::Sender<Arc<TemplateInputs>>;

static FEEDS: LazyLock<Mutex<HashMap<NodeId, Feed>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn feed(node_id: &NodeId) -> Feed {
    let mut feeds = FEEDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    feeds.entry(node_id.clone()).or_insert_with(|| watch::Sender::new(Arc::new(TemplateInputs::default()))).clone()
}

/// Makes `inputs` what the templates on `node_id` read from now on; the
/// watchers render again only when it differs from what they had.
pub(crate) fn publish(node_id: &NodeId, inputs: TemplateInputs) {
    feed(node_id).send_if_modified(|current| {
        if **current == inputs {
            return false;
        }
        *current = Arc::new(inputs);
        true
    });
}

/// What a template of `job_id` on `node_id` may read now.
pub(crate) fn cluster_data(node_id: &NodeId, job_id: &JobId) -> ClusterData {
    cluster_data_of(&feed(node_id).borrow(), job_id)
}

/// The part of `inputs` a template of `job_id` reads.
fn cluster_data_of(inputs: &TemplateInputs, job_id: &JobId) -> ClusterData {
    let variables = inputs
        .variables
        .get(job_id)
        .map(|variables| variables.iter().map(|variable| (variable.path.clone(), variable.items.clone())).collect())
        .unwrap_or_default();
    let services = inputs
        .services
        .iter()
        .map(|instance| ServiceEntry {
            name: instance.service.clone(),
            id: format!("{}-{}-{}", instance.alloc_id, instance.task, instance.service),
            address: instance.address.clone(),
            port: instance.port.unwrap_or_default(),
            tags: instance.tags.clone(),
            meta: instance.meta.clone(),
            node: instance.node_name.clone(),
            node_id: instance.node_id.to_string(),
            alloc_id: instance.alloc_id.to_string(),
            job_id: instance.job_id.to_string(),
            healthy: instance.health == drover_proto::api::ServiceHealth::Passing,
        })
        .collect();
    ClusterData { variables, services }
}

/// What a re-render asks of the task.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ChangeAction {
    /// Restart it; the destinations that asked for it.
    Restart(Vec<String>),
    /// Send each of these signals (by name) once, then run each of these
    /// scripts once.
    InPlace { signals: Vec<String>, scripts: Vec<ChangeScript> },
    /// Nothing: the files are rewritten, the task reads them when it wants.
    Noop,
}

/// What the changed `templates` ask for together: a restart if any asks
/// for one (it re-reads everything), else their signals and scripts.
fn change_action(templates: &[&TaskTemplate]) -> ChangeAction {
    let restarting: Vec<String> = templates
        .iter()
        .filter(|template| template.change_mode == ChangeMode::Restart)
        .map(|template| template.destination.clone())
        .collect();
    if !restarting.is_empty() {
        return ChangeAction::Restart(restarting);
    }
    let mut signals: Vec<String> = templates
        .iter()
        .filter(|template| template.change_mode == ChangeMode::Signal)
        .map(|template| template.change_signal.clone().unwrap_or_else(|| "SIGHUP".to_owned()))
        .collect();
    signals.sort();
    signals.dedup();
    let mut scripts: Vec<ChangeScript> = Vec::new();
    for template in templates.iter().filter(|template| template.change_mode == ChangeMode::Script) {
        if let Some(script) = template.change_script.as_ref().filter(|script| !scripts.contains(script)) {
            scripts.push(script.clone());
        }
    }
    if signals.is_empty() && scripts.is_empty() {
        ChangeAction::Noop
    } else {
        ChangeAction::InPlace { signals, scripts }
    }
}

/// How long the change waits: a random time up to the largest splay of
/// the changed templates (so a fleet does not restart at once).
fn splay_delay(templates: &[&TaskTemplate], random_fraction: f64) -> Duration {
    let largest = templates.iter().map(|template| template.splay.get()).max().unwrap_or_default();
    largest.mul_f64(random_fraction.clamp(0.0, 1.0))
}

/// Watches what the templates of the task of `context` read, from now
/// until the task's runner ends (`control` closes).
pub(crate) fn spawn_watcher(context: &TaskContext, control: mpsc::UnboundedSender<TaskControl>) {
    if context.task.templates.is_empty() {
        return;
    }
    let mut receiver = feed(&context.alloc.node_id).subscribe();
    let context = WatchedTask {
        node: context.node.clone(),
        job: context.job.clone(),
        group: context.group.clone(),
        alloc: context.alloc.clone(),
        task: context.task.clone(),
        alloc_dir: context.alloc_dir.clone(),
        task_dir: context.task_dir.clone(),
    };
    let wait = task_wait(&context.task.templates);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = control.closed() => return,
                changed = receiver.changed() => if changed.is_err() { return },
            }
            if let Some(wait) = wait {
                tokio::select! {
                    () = control.closed() => return,
                    quiet = quiet_for(&mut receiver, wait) => if !quiet { return },
                }
            }
            let cluster = cluster_data_of(&receiver.borrow_and_update(), &context.job.id);
            let changed = match context.render_again(&cluster) {
                Ok(changed) => changed,
                Err(error) => {
                    // The old file stays; the next change may fix it.
                    tracing::warn!(alloc = %context.alloc.id, task = %context.task.name, "{error}");
                    continue;
                }
            };
            if changed.is_empty() {
                continue;
            }
            let templates: Vec<&TaskTemplate> =
                changed.iter().filter_map(|position| context.task.templates.get(*position)).collect();
            let delay = splay_delay(&templates, rand::rng().random::<f64>());
            let action = change_action(&templates);
            tracing::info!(
                alloc = %context.alloc.id, task = %context.task.name, ?action, delay_ms = delay.as_millis() as u64,
                "a template was rendered again"
            );
            tokio::select! {
                () = control.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
            apply(&action, &control, &context).await;
        }
    });
}

/// The `wait` of a task's templates together (the watcher renders them
/// together): the longest `min` and the longest `max` of those that have
/// one; `None` when none has.
fn task_wait(templates: &[TaskTemplate]) -> Option<TemplateWait> {
    templates
        .iter()
        .filter_map(|template| template.wait)
        .reduce(|left, right| TemplateWait { min: left.min.max(right.min), max: left.max.max(right.max) })
}

/// After a first change: waits until nothing changed for `wait.min`, or
/// `wait.max` after that first change, whichever comes first (Nomad's
/// template `wait`, from consul-template). `false` when the feed ended.
async fn quiet_for(receiver: &mut watch::Receiver<Arc<TemplateInputs>>, wait: TemplateWait) -> bool {
    let latest = tokio::time::Instant::now() + wait.max.get();
    loop {
        let quiet_until = (tokio::time::Instant::now() + wait.min.get()).min(latest);
        tokio::select! {
            () = tokio::time::sleep_until(quiet_until) => return true,
            changed = receiver.changed() => {
                if changed.is_err() {
                    return false;
                }
                if tokio::time::Instant::now() >= latest {
                    return true;
                }
            }
        }
    }
}

/// Sends the task runner what `action` asks.
async fn apply(action: &ChangeAction, control: &mpsc::UnboundedSender<TaskControl>, context: &WatchedTask) {
    let task = context.task.name.as_str();
    match action {
        ChangeAction::Restart(destinations) => {
            let reason = format!("Template re-rendered: {} (change_mode = \"restart\")", destinations.join(", "));
            let _ = control.send(TaskControl::Restart { reason });
        }
        ChangeAction::InPlace { signals, scripts } => {
            for name in signals {
                let signal = match drover_executor::parse_signal(name) {
                    Ok(signal) => signal,
                    Err(error) => {
                        tracing::warn!(task, "template change_signal: {error}");
                        continue;
                    }
                };
                let (reply, answer) = oneshot::channel();
                let _ = control.send(TaskControl::Signal { signal, reply });
                if let Ok(Err(problem)) = answer.await {
                    tracing::warn!(task, "template change_signal {name}: {problem}");
                }
            }
            for script in scripts {
                let (outcome, failed) = context.run_script(script, control).await;
                let kind = if failed { TaskEventKind::TaskHookFailed } else { TaskEventKind::TaskHookMessage };
                tracing::info!(alloc = %context.alloc.id, task, failed, "{outcome}");
                let _ = control.send(TaskControl::Note { kind, message: outcome });
                if failed && script.fail_on_error {
                    let reason = "Template script failed, task is being killed (change_script fail_on_error)";
                    let _ = control.send(TaskControl::Fail { reason: reason.to_owned() });
                }
            }
        }
        ChangeAction::Noop => {}
    }
}

/// What the watcher keeps of a task to render its templates again.
struct WatchedTask {
    node: Option<drover_types::Node>,
    job: drover_proto::session::JobSummary,
    group: drover_types::TaskGroup,
    alloc: drover_types::Allocation,
    task: drover_types::Task,
    alloc_dir: std::path::PathBuf,
    task_dir: std::path::PathBuf,
}

/// The most a change script's output is kept, for its event.
const SCRIPT_OUTPUT_MAX: usize = 4096;

impl WatchedTask {
    /// Runs a change script in the task, as `drover alloc exec` runs a
    /// command there (its environment, directory and user; `${…}` in the
    /// command and arguments resolved): what happened, for the task's
    /// event, and whether it failed (an exit code other than 0, a
    /// timeout, or no start).
    /// A script still running when the task's runner ends (`control`
    /// closes) is killed.
    async fn run_script(&self, script: &ChangeScript, control: &mpsc::UnboundedSender<TaskControl>) -> (String, bool) {
        let place = TaskPlace {
            node: self.node.as_ref(),
            job: &self.job,
            group: &self.group,
            alloc: &self.alloc,
            task: &self.task,
            alloc_dir: &self.alloc_dir,
            task_dir: &self.task_dir,
        };
        let (spec, command) = match place.exec_spec() {
            Ok((spec, environment)) => {
                let command: Vec<String> = std::iter::once(&script.command)
                    .chain(&script.args)
                    .map(|word| environment.interpolate(word))
                    .collect();
                (spec, command)
            }
            Err(error) => {
                return (format!("Template could not run its change script {:?}: {error}", script.command), true);
            }
        };
        let request = TaskExecRequest {
            command: command.clone(),
            timeout: script.timeout.get(),
            max_output_bytes: SCRIPT_OUTPUT_MAX,
            // The job's own command, as its user: what the task itself may do.
            root_allowed: true,
            stdin: Vec::new(),
        };
        let shown = command.join(" ");
        let cancel = tokio_util::sync::CancellationToken::new();
        let run = run_in_task(spec, request, cancel.clone());
        tokio::pin!(run);
        let answer = tokio::select! {
            answer = &mut run => answer,
            () = control.closed() => {
                cancel.cancel();
                run.await
            }
        };
        match answer {
            ResponseBody::Exited { exit_code: Some(0), error, .. } if error.is_empty() => {
                (format!("Template ran its change script on change: {shown} (exit code 0)"), false)
            }
            ResponseBody::Exited { exit_code, error, stderr, .. } => {
                let why = match exit_code {
                    Some(code) if error.is_empty() => format!("exit code {code}"),
                    _ => error,
                };
                let said = String::from_utf8_lossy(&stderr);
                let said = said.lines().find(|line| !line.trim().is_empty()).map(|line| format!(": {line}"));
                (
                    format!(
                        "Template ran its change script on change: {shown} failed ({why}){}",
                        said.unwrap_or_default()
                    ),
                    true,
                )
            }
            other => (format!("Template ran its change script on change: {shown}: {other:?}"), true),
        }
    }

    /// Renders the templates again with the environment the task started
    /// with (as `task::prepare_files` does): the positions of those
    /// rewritten.
    fn render_again(&self, cluster: &ClusterData) -> Result<Vec<usize>, String> {
        let working_dir = self.task_dir.join("local");
        let dirs = AllocDirs { alloc_dir: &self.alloc_dir, task_dir: &working_dir };
        let command_line =
            task_command_line(self.node.as_ref(), &self.job, &self.group, &self.alloc, &self.task, &dirs);
        crate::prepare::rerender_templates(&self.task, &self.task_dir, &command_line.env, cluster)
    }
}

/// For tests: the variables of a job as `TemplateInputs` carry them.
#[cfg(test)]
fn inputs_with(job_id: &JobId, variables: &[(&str, &[(&str, &str)])]) -> TemplateInputs {
    let variables = variables
        .iter()
        .map(|(path, items)| drover_types::Variable {
            path: (*path).to_owned(),
            items: items.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect(),
            create_index: 1,
            modify_index: 1,
            create_time: drover_types::Timestamp::now(),
            modify_time: drover_types::Timestamp::now(),
        })
        .collect();
    TemplateInputs { variables: std::collections::BTreeMap::from([(job_id.clone(), variables)]), services: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::{DurationSpec, TemplateSource};

    fn template(destination: &str, change_mode: ChangeMode, signal: Option<&str>, splay_ms: u64) -> TaskTemplate {
        TaskTemplate {
            source: TemplateSource::Data(String::new()),
            destination: destination.to_owned(),
            change_mode,
            change_signal: signal.map(str::to_owned),
            change_script: None,
            perms: 0o644,
            env: false,
            left_delimiter: "{{".to_owned(),
            right_delimiter: "}}".to_owned(),
            splay: DurationSpec::from_millis(splay_ms),
            wait: None,
        }
    }

    #[test]
    fn a_restart_wins_over_signals_and_signals_are_sent_once() {
        let restart = template("local/a", ChangeMode::Restart, None, 0);
        let hup = template("local/b", ChangeMode::Signal, Some("SIGHUP"), 0);
        let hup_again = template("local/c", ChangeMode::Signal, Some("SIGHUP"), 0);
        let noop = template("local/d", ChangeMode::Noop, None, 0);
        assert_eq!(change_action(&[&hup, &restart, &noop]), ChangeAction::Restart(vec!["local/a".to_owned()]));
        let hup_only = ChangeAction::InPlace { signals: vec!["SIGHUP".to_owned()], scripts: Vec::new() };
        assert_eq!(change_action(&[&hup, &hup_again, &noop]), hup_only);
        assert_eq!(change_action(&[&noop]), ChangeAction::Noop);

        // Scripts run with the signals, each once; a restart wins over them.
        let mut reload = template("local/e", ChangeMode::Script, None, 0);
        let script = ChangeScript {
            command: "/bin/reload".to_owned(),
            args: Vec::new(),
            timeout: DurationSpec::from_secs(5),
            fail_on_error: false,
        };
        reload.change_script = Some(script.clone());
        let mut reload_again = reload.clone();
        reload_again.destination = "local/f".to_owned();
        assert_eq!(
            change_action(&[&reload, &hup, &reload_again]),
            ChangeAction::InPlace { signals: vec!["SIGHUP".to_owned()], scripts: vec![script] }
        );
        assert_eq!(change_action(&[&reload, &restart]), ChangeAction::Restart(vec!["local/a".to_owned()]));
    }

    #[test]
    fn the_delay_is_a_fraction_of_the_largest_splay() {
        let short = template("a", ChangeMode::Restart, None, 1_000);
        let long = template("b", ChangeMode::Restart, None, 10_000);
        assert_eq!(splay_delay(&[&short, &long], 0.5), Duration::from_secs(5));
        assert_eq!(splay_delay(&[&short], 1.0), Duration::from_secs(1));
        assert_eq!(splay_delay(&[&short], 7.0), Duration::from_secs(1));
        assert_eq!(splay_delay(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn a_job_reads_its_own_variables_from_the_published_inputs() {
        let node_id = NodeId::new("template-feed-test");
        let job_id = JobId::new("web");
        assert!(cluster_data(&node_id, &job_id).variables.is_empty());
        publish(&node_id, inputs_with(&job_id, &[("nomad/jobs/web", &[("port", "80")])]));
        let data = cluster_data(&node_id, &job_id);
        assert_eq!(data.key("nomad/jobs/web/port"), Some("80"));
        assert!(cluster_data(&node_id, &JobId::new("other")).variables.is_empty());
    }

    fn wait(min_secs: u64, max_secs: u64) -> TemplateWait {
        TemplateWait { min: DurationSpec::from_secs(min_secs), max: DurationSpec::from_secs(max_secs) }
    }

    #[test]
    fn a_tasks_templates_wait_as_long_as_the_longest_of_theirs() {
        let mut first = template("a", ChangeMode::Restart, None, 0);
        let mut second = template("b", ChangeMode::Restart, None, 0);
        let plain = template("c", ChangeMode::Restart, None, 0);
        assert_eq!(task_wait(std::slice::from_ref(&plain)), None);
        first.wait = Some(wait(2, 30));
        second.wait = Some(wait(5, 10));
        assert_eq!(task_wait(&[first, plain, second]), Some(wait(5, 30)));
    }

    /// Changes at `offsets` (seconds after the first); how long after the
    /// first change the render may go ahead.
    async fn quiet_after(offsets: &[u64], wait: TemplateWait) -> Duration {
        let (sender, mut receiver) = watch::channel(Arc::new(TemplateInputs::default()));
        let start = tokio::time::Instant::now();
        let offsets = offsets.to_vec();
        let feeding = tokio::spawn(async move {
            for (number, offset) in offsets.into_iter().enumerate() {
                tokio::time::sleep_until(start + Duration::from_secs(offset)).await;
                let job = JobId::new(format!("j{number}"));
                sender.send_replace(Arc::new(inputs_with(&job, &[("nomad/jobs/x", &[("n", "1")])])));
            }
            // Keep the feed open long after.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        receiver.changed().await.unwrap();
        assert!(quiet_for(&mut receiver, wait).await);
        feeding.abort();
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_one_render_once_quiet_for_min_and_at_most_max_after_the_first() {
        // Quiet for 3 s after the last of a burst at 0, 1 and 2 s.
        assert_eq!(quiet_after(&[0, 1, 2], wait(3, 60)).await, Duration::from_secs(5));
        // A change every second never leaves 3 s of quiet: max (7 s) ends it.
        let endless: Vec<u64> = (0..30).collect();
        assert_eq!(quiet_after(&endless, wait(3, 7)).await, Duration::from_secs(7));
        // One change: min after it.
        assert_eq!(quiet_after(&[0], wait(2, 8)).await, Duration::from_secs(2));
    }
}
