//! The environment and interpolated command line of a task.
//!
//! Tasks get Nomad's variables (`NOMAD_ALLOC_ID`, `NOMAD_TASK_DIR`,
//! `NOMAD_META_*`, …) so that ported job files keep working, drover's own
//! (`DROVER_NODE_NAME`, `DROVER_HOSTGROUP`, …), a sane `PATH`, and the
//! task's `env` block. `${…}` references in `env`, `command` and `args` are
//! resolved against the node (`node.*`, `attr.*`, `meta.*`) and the
//! variables above; unknown references stay as written.
//!
//! Script health checks run "in the task's environment", so the same
//! [`TaskEnvironment`] also interpolates their command lines (see
//! `probe.rs`): a check sees exactly what its task sees.

use std::collections::BTreeMap;
use std::path::Path;

use drover_proto::session::JobSummary;
use drover_types::interpolate::interpolate_lenient;
use drover_types::{Allocation, Node, Task, TaskGroup};

/// The default `PATH` of tasks when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where an allocation's directories are.
pub(crate) struct AllocDirs<'a> {
    /// Shared by the group's tasks (`NOMAD_ALLOC_DIR`).
    pub(crate) alloc_dir: &'a Path,
    /// The task's own directory (`NOMAD_TASK_DIR`, working directory).
    pub(crate) task_dir: &'a Path,
}

/// The interpolated command, arguments and environment of a task.
pub(crate) struct TaskCommandLine {
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
}

/// The environment of a task's processes, and the `${…}` resolver that
/// goes with it.
pub(crate) struct TaskEnvironment<'a> {
    /// The variables set by the agent, before the task's `env` block: what
    /// `${…}` references may name.
    base: BTreeMap<String, String>,
    /// `base` plus the task's interpolated `env` block.
    env: BTreeMap<String, String>,
    node: Option<&'a Node>,
}

impl<'a> TaskEnvironment<'a> {
    pub(crate) fn new(
        node: Option<&'a Node>,
        job: &JobSummary,
        group: &TaskGroup,
        alloc: &Allocation,
        task: &Task,
        dirs: &AllocDirs<'_>,
    ) -> Self {
        let base = base_environment(node, job, group, alloc, task, dirs);
        let mut environment = TaskEnvironment { env: base.clone(), base, node };
        let task_env: Vec<(String, String)> =
            task.env.iter().map(|(key, value)| (key.clone(), environment.interpolate(value))).collect();
        environment.env.extend(task_env);
        environment
    }

    /// `text` with every known `${…}` reference resolved; unknown ones stay
    /// as written.
    pub(crate) fn interpolate(&self, text: &str) -> String {
        let resolve = |target: &str| -> Option<String> {
            if let Some(value) = self.base.get(target) {
                return Some(value.clone());
            }
            if let Some(name) = target.strip_prefix("env.") {
                return self.base.get(name).cloned();
            }
            self.node.and_then(|node| node.resolve(target))
        };
        interpolate_lenient(text, &resolve)
    }

    /// The full environment of the task's processes.
    pub(crate) fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}

pub(crate) fn task_command_line(
    node: Option<&Node>,
    job: &JobSummary,
    group: &TaskGroup,
    alloc: &Allocation,
    task: &Task,
    dirs: &AllocDirs<'_>,
) -> TaskCommandLine {
    let environment = TaskEnvironment::new(node, job, group, alloc, task, dirs);
    TaskCommandLine {
        command: environment.interpolate(&task.config.command),
        args: task.config.args.iter().map(|arg| environment.interpolate(arg)).collect(),
        env: environment.env,
    }
}

fn base_environment(
    node: Option<&Node>,
    job: &JobSummary,
    group: &TaskGroup,
    alloc: &Allocation,
    task: &Task,
    dirs: &AllocDirs<'_>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()));
    for passthrough in ["LANG", "LC_ALL", "TZ"] {
        if let Ok(value) = std::env::var(passthrough) {
            env.insert(passthrough.to_owned(), value);
        }
    }
    let mut set = |key: &str, value: String| {
        env.insert(key.to_owned(), value);
    };
    set("NOMAD_ALLOC_ID", alloc.id.to_string());
    set("NOMAD_SHORT_ALLOC_ID", alloc.id.short().to_owned());
    set("NOMAD_ALLOC_NAME", alloc.name.clone());
    set("NOMAD_ALLOC_INDEX", alloc.index.to_string());
    set("NOMAD_JOB_ID", job.id.to_string());
    set("NOMAD_JOB_NAME", job.name.clone());
    set("NOMAD_GROUP_NAME", group.name.clone());
    set("NOMAD_TASK_NAME", task.name.clone());
    set("NOMAD_ALLOC_DIR", dirs.alloc_dir.display().to_string());
    set("NOMAD_TASK_DIR", dirs.task_dir.display().to_string());
    set("NOMAD_CPU_LIMIT", task.resources.cpu_mhz.to_string());
    set("NOMAD_MEMORY_LIMIT", task.resources.memory_mb.to_string());
    set("NOMAD_NAMESPACE", "default".to_owned());
    set("NOMAD_REGION", "global".to_owned());
    if let Some(node) = node {
        set("NOMAD_DC", node.zone.clone());
        set("DROVER_NODE_ID", node.id.to_string());
        set("DROVER_NODE_NAME", node.name.clone());
        set("DROVER_HOSTGROUP", node.hostgroup.clone());
        set("DROVER_ENVIRONMENT", node.environment.clone());
    }
    for meta in [&job.meta, &group.meta, &task.meta] {
        for (key, value) in meta {
            set(&format!("NOMAD_META_{}", key.to_uppercase().replace(['-', '.'], "_")), value.clone());
        }
    }
    env
}
