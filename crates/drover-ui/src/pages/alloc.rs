//! `/ui/alloc/ID`: task states and events, restarts, health checks with
//! their last output, and each task's output one click away.

use askama::Template;

use drover_proto::paths;
use drover_types::{Allocation, Timestamp};

use crate::chrome::Chrome;
use crate::format;

/// One task event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// When.
    pub at: String,
    /// What kind (`started`, `terminated`, …).
    pub kind: String,
    /// Detail, with the exit code or signal.
    pub message: String,
}

/// One task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskView {
    /// Name.
    pub name: String,
    /// `running`, `dead`, …
    pub state: String,
    /// Whether it ended in failure.
    pub failed: bool,
    /// Restarts.
    pub restarts: u32,
    /// When the current or last process started.
    pub started: String,
    /// When it finished for good.
    pub finished: String,
    /// Recent events, newest first.
    pub events: Vec<EventRow>,
    /// Its standard output.
    pub stdout_href: String,
    /// Its standard error.
    pub stderr_href: String,
}

/// One health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRow {
    /// The task.
    pub task: String,
    /// The check.
    pub name: String,
    /// `passing`, `warning`, `critical`.
    pub status: String,
    /// Its last output.
    pub output: String,
    /// When, as an age.
    pub checked: String,
}

/// `/ui/alloc/ID`.
#[derive(Debug, Template)]
#[template(path = "alloc.html")]
pub struct AllocPage {
    /// The frame.
    pub chrome: Chrome,
    /// Full id.
    pub id: String,
    /// `job.group[index]`.
    pub name: String,
    /// The job.
    pub job: String,
    /// The job's page at this allocation's version.
    pub job_href: String,
    /// The job version.
    pub version: u64,
    /// The node.
    pub node: String,
    /// The node's page.
    pub node_href: String,
    /// What the agent reports.
    pub status: String,
    /// Detail.
    pub status_description: String,
    /// What the servers want, and why.
    pub desired: String,
    /// Created, as an age.
    pub created: String,
    /// Its tasks.
    pub tasks: Vec<TaskView>,
    /// Its health checks.
    pub checks: Vec<CheckRow>,
}

impl AllocPage {
    /// The page of one allocation.
    pub fn new(chrome: Chrome, alloc: &Allocation) -> Self {
        let now = chrome.now;
        let output = |task: &str, stream: &str| {
            format!(
                "{}{}",
                paths::fill(paths::UI_ALLOC_OUTPUT, &[alloc.id.as_str()]),
                format::query(&[("task", task), ("type", stream)])
            )
        };
        let when = |at: Option<Timestamp>| at.map(|at| format::ago(at, now)).unwrap_or_default();
        AllocPage {
            id: alloc.id.as_str().to_owned(),
            name: alloc.name.clone(),
            job: alloc.job_id.as_str().to_owned(),
            job_href: format!(
                "{}{}",
                paths::fill(paths::UI_JOB, &[alloc.job_id.as_str()]),
                format::query(&[("version", &alloc.job_version.to_string())])
            ),
            version: alloc.job_version,
            node: alloc.node_name.clone(),
            node_href: paths::fill(paths::UI_NODE, &[&alloc.node_name]),
            status: alloc.client_status.to_string(),
            status_description: alloc.client_description.clone(),
            desired: if alloc.desired_description.is_empty() {
                alloc.desired_status.to_string()
            } else {
                format!("{}: {}", alloc.desired_status, alloc.desired_description)
            },
            created: format::ago(alloc.create_time, now),
            tasks: alloc
                .task_states
                .iter()
                .map(|(name, state)| TaskView {
                    name: name.clone(),
                    state: state.state.to_string(),
                    failed: state.failed,
                    restarts: state.restarts,
                    started: when(state.started_at),
                    finished: when(state.finished_at),
                    events: state
                        .events
                        .iter()
                        .rev()
                        .map(|event| {
                            let mut message = event.message.clone();
                            if let Some(code) = event.exit_code {
                                message.push_str(&format!(" (exit code {code})"));
                            }
                            if let Some(signal) = event.signal {
                                message.push_str(&format!(" (signal {signal})"));
                            }
                            EventRow { at: format::time(event.time), kind: event.kind.to_string(), message }
                        })
                        .collect(),
                    stdout_href: output(name, "stdout"),
                    stderr_href: output(name, "stderr"),
                })
                .collect(),
            checks: alloc
                .checks
                .iter()
                .map(|check| CheckRow {
                    task: check.task.clone(),
                    name: check.name.clone(),
                    status: check.status.to_string(),
                    output: check.output.clone(),
                    checked: format::ago(check.checked_at, now),
                })
                .collect(),
            chrome,
        }
    }
}
