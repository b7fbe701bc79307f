//! Jobs, task groups and tasks: the parsed form of a Nomad-style job file.
//!
//! The field names follow Nomad's job specification so that a Nomad user
//! recognises them. Defaults are Nomad's and are applied by the parser, so a
//! `Job` value always carries explicit settings; the table of defaults is in
//! `docs/jobs.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::JobId;
use crate::network::NetworkSpec;
use crate::resources::Resources;
use crate::time::{DurationSpec, Timestamp};

/// What kind of work a job describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    /// Keep `count` instances of every group running.
    #[default]
    Service,
    /// Run every group to completion once; successful runs are not repeated.
    Batch,
    /// One instance of every group on every feasible node, including nodes
    /// that join later.
    System,
    /// One instance of every group on every feasible node, run to
    /// completion once (Nomad's `sysbatch`): completed runs are not
    /// repeated, nodes that join later get one.
    #[serde(rename = "sysbatch")]
    SysBatch,
}

impl JobType {
    /// The name used in job files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::SysBatch => "sysbatch",
        }
    }

    /// Whether the job has one allocation per feasible node (`system`,
    /// `sysbatch`) rather than `count` of them.
    pub fn places_on_every_node(self) -> bool {
        matches!(self, JobType::System | JobType::SysBatch)
    }

    /// Whether the job's tasks run to completion and successful runs are
    /// not repeated (`batch`, `sysbatch`).
    pub fn runs_to_completion(self) -> bool {
        matches!(self, JobType::Batch | JobType::SysBatch)
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The lifecycle of a job as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Registered, nothing placed yet.
    #[default]
    Pending,
    /// At least one allocation is not terminal.
    Running,
    /// Stopped, or every allocation finished.
    Dead,
}

impl fmt::Display for JobStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Dead => "dead",
        })
    }
}

/// A versioned definition of work.
///
/// Most fields say what the job file says; the last ones, from `version`
/// on, are set by the server and never by the file. Which ones those are is
/// defined once, by [`ServerManaged`]: read them with
/// [`Job::server_managed`], write them with [`Job::set_server_managed`].
///
/// `Job::default()` is an empty job (no groups, priority 0: not valid by
/// itself), a base for struct update syntax; its server-managed fields are
/// those of a job never submitted ([`ServerManaged::default`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The label of the `job "…"` block.
    pub id: JobId,
    /// Display name; equal to the id unless set with `name = "…"`.
    pub name: String,
    /// `service`, `batch` or `system`.
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// 1 to 100; higher-priority evaluations are scheduled first.
    pub priority: u8,
    /// Zones (Nomad's datacenters) the job may run in; glob patterns, `*` for
    /// all.
    pub datacenters: Vec<String>,
    /// Constraints that apply to every group.
    pub constraints: Vec<Constraint>,
    /// Placement preferences that apply to every group.
    pub affinities: Vec<Affinity>,
    /// Spread preferences that apply to every group.
    pub spreads: Vec<Spread>,
    /// Job-level `update` block, inherited by groups without their own.
    pub update: Option<UpdateStrategy>,
    /// Set for periodic (cron) batch jobs.
    pub periodic: Option<PeriodicConfig>,
    /// Free-form metadata, available to tasks as `${NOMAD_META_*}`-style env.
    pub meta: BTreeMap<String, String>,
    /// The task groups, in file order.
    pub groups: Vec<TaskGroup>,
    /// Nomad's `region`, as written (`None`: Nomad's default, `global`).
    /// A drover cluster is one region, so this is only a label kept with
    /// the job (tasks see `NOMAD_REGION=global`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Nomad's `namespace`, as written (`None`: `default`, the only one
    /// drover has; the job file reader refuses others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Nomad's `parameterized` block: the job is a template that is never
    /// placed itself; `drover job dispatch` launches children of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameterized: Option<ParameterizedConfig>,
    /// A dispatched child's payload (at most
    /// [`ParameterizedConfig::MAX_PAYLOAD_BYTES`]), written by the agent to
    /// the file of each task's `dispatch_payload` block.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "crate::serde_bytes")]
    pub payload: Vec<u8>,

    // ----- set by the server, never by the job file: the fields of
    // `ServerManaged`, kept flat here so the stored and wire form is as
    // before -----
    /// Version number, 0 for the first registration; bumped on every change
    /// of the specification.
    #[serde(default)]
    pub version: u64,
    /// Whether the operator stopped the job.
    #[serde(default)]
    pub stop: bool,
    /// Derived lifecycle status.
    #[serde(default)]
    pub status: JobStatus,
    /// For a periodic job's launch: the parent job's id.
    #[serde(default)]
    pub parent_id: Option<JobId>,
    /// When this version was submitted.
    #[serde(default)]
    pub submit_time: Timestamp,
    /// Whether this version is stable (its deployment succeeded); reverts go
    /// to the newest stable version.
    #[serde(default)]
    pub stable: bool,
    /// Raft index at which the job was first created.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change of any kind (including status).
    #[serde(default)]
    pub modify_index: u64,
    /// Raft index of the last change of the specification.
    #[serde(default)]
    pub job_modify_index: u64,
}

impl Job {
    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.groups.iter().find(|group| group.name == name)
    }

    /// Whether `other` differs from `self` in anything a job file can say
    /// (ignores version, status, indexes and the other [`ServerManaged`]
    /// fields).
    pub fn spec_differs(&self, other: &Job) -> bool {
        self.spec_only() != other.spec_only()
    }

    /// A copy with every server-managed field reset to that of a job never
    /// submitted, for comparisons and diffs.
    pub fn spec_only(&self) -> Job {
        let mut spec = self.clone();
        spec.set_server_managed(ServerManaged::default());
        spec
    }

    /// The fields the server manages, as one value.
    pub fn server_managed(&self) -> ServerManaged {
        // Every field of `Job` is named here, so that a new one does not
        // compile until it is sorted: a field a job file can say (read it
        // in drover-jobspec's `read_job`) is ignored here; a field the
        // server sets belongs in `ServerManaged` as well.
        let Job {
            id: _,
            name: _,
            job_type: _,
            priority: _,
            datacenters: _,
            constraints: _,
            affinities: _,
            spreads: _,
            update: _,
            periodic: _,
            meta: _,
            groups: _,
            region: _,
            namespace: _,
            parameterized: _,
            payload: _,
            version,
            stop,
            status,
            parent_id,
            submit_time,
            stable,
            create_index,
            modify_index,
            job_modify_index,
        } = self;
        ServerManaged {
            version: *version,
            stop: *stop,
            status: *status,
            parent_id: parent_id.clone(),
            submit_time: *submit_time,
            stable: *stable,
            create_index: *create_index,
            modify_index: *modify_index,
            job_modify_index: *job_modify_index,
        }
    }

    /// Replaces every server-managed field with `managed`'s, leaving what
    /// the job file says as it is.
    pub fn set_server_managed(&mut self, managed: ServerManaged) {
        let ServerManaged {
            version,
            stop,
            status,
            parent_id,
            submit_time,
            stable,
            create_index,
            modify_index,
            job_modify_index,
        } = managed;
        self.version = version;
        self.stop = stop;
        self.status = status;
        self.parent_id = parent_id;
        self.submit_time = submit_time;
        self.stable = stable;
        self.create_index = create_index;
        self.modify_index = modify_index;
        self.job_modify_index = job_modify_index;
    }

    /// Whether this is a periodic parent (it launches children and never
    /// runs itself).
    pub fn is_periodic(&self) -> bool {
        self.periodic.as_ref().is_some_and(|periodic| periodic.enabled)
    }

    /// Whether this is a parameterized parent (`drover job dispatch`
    /// launches children of it; it never runs itself).
    pub fn is_parameterized(&self) -> bool {
        self.parameterized.is_some()
    }

    /// Whether the job is only a template for children, never placed
    /// itself (a periodic or parameterized parent).
    pub fn is_template(&self) -> bool {
        self.is_periodic() || self.is_parameterized()
    }

    /// The `update` block that applies to `group`: the group's own, else the
    /// job's.
    pub fn update_for<'a>(&'a self, group: &'a TaskGroup) -> Option<&'a UpdateStrategy> {
        group.update.as_ref().or(self.update.as_ref())
    }
}

/// What the server sets on a [`Job`], never the job file: the one list of
/// the job's server-managed fields. A job file (and a job submitted to the
/// API) has the default, a job never submitted; the state machine sets
/// them when it registers, stops, or marks a version stable. They are
/// stored flat in `Job` under the same names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerManaged {
    /// Version number, 0 for the first registration; bumped on every change
    /// of the specification.
    pub version: u64,
    /// Whether the operator stopped the job.
    pub stop: bool,
    /// Derived lifecycle status.
    pub status: JobStatus,
    /// For a periodic job's launch: the parent job's id.
    pub parent_id: Option<JobId>,
    /// When this version was submitted.
    pub submit_time: Timestamp,
    /// Whether this version is stable (its deployment succeeded).
    pub stable: bool,
    /// Raft index at which the job was first created.
    pub create_index: u64,
    /// Raft index of the last change of any kind (including status).
    pub modify_index: u64,
    /// Raft index of the last change of the specification.
    pub job_modify_index: u64,
}

/// A set of tasks that are always placed together on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskGroup {
    /// The label of the `group "…"` block.
    pub name: String,
    /// How many instances to run (ignored for system jobs: one per node).
    pub count: u32,
    /// Constraints for this group, in addition to the job's.
    pub constraints: Vec<Constraint>,
    /// Placement preferences, in addition to the job's (task-level
    /// affinities are merged here by the parser).
    pub affinities: Vec<Affinity>,
    /// Spread preferences, in addition to the job's.
    pub spreads: Vec<Spread>,
    /// What the agent does when a task exits.
    pub restart: RestartPolicy,
    /// What the server does when an allocation fails (`None` for system jobs).
    pub reschedule: Option<ReschedulePolicy>,
    /// Group-level `update` block.
    pub update: Option<UpdateStrategy>,
    /// How allocations leave a draining node.
    pub migrate: MigrateStrategy,
    /// What happens when the node goes silent.
    pub disconnect: Option<DisconnectStrategy>,
    /// Free-form metadata.
    pub meta: BTreeMap<String, String>,
    /// The tasks, in file order.
    pub tasks: Vec<Task>,
    /// The ports the group's tasks listen on (Nomad's group `network`
    /// block, host mode); `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// Nomad's `ephemeral_disk` block, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_disk: Option<EphemeralDisk>,
    /// Nomad's `scaling` block: the bounds of `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
}

/// Nomad's `ephemeral_disk` block: the allocation directory's size and
/// what happens to it on updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EphemeralDisk {
    /// MiB the node must have free (Nomad's `size`, default 300).
    pub size_mb: u64,
    /// Nomad's `sticky`: prefer the same node on updates (kept, not acted
    /// on yet).
    pub sticky: bool,
    /// Nomad's `migrate`: move the data with a migrating allocation (kept,
    /// not acted on yet).
    pub migrate: bool,
}

/// Nomad's group `scaling` block: the bounds `count` must stay in. Policies
/// are for an autoscaler, which drover does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scaling {
    /// The smallest count (Nomad's default: the group's count).
    pub min: u32,
    /// The largest count.
    pub max: u32,
    /// Whether an autoscaler may act (Nomad's `enabled`).
    pub enabled: bool,
    /// Whether the block has a `policy` (accepted, not acted on).
    pub has_policy: bool,
}

/// Nomad's task `logs` block: how many output files of what size the
/// agent keeps per stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogPolicy {
    /// Files kept per stream (Nomad's default 10).
    pub max_files: u32,
    /// MiB per file (Nomad's default 10).
    pub max_file_size_mb: u64,
}

impl LogPolicy {
    /// Nomad's defaults: 10 files of 10 MiB.
    pub const DEFAULT: LogPolicy = LogPolicy { max_files: 10, max_file_size_mb: 10 };
}

impl TaskGroup {
    /// Total resources of the group's tasks.
    pub fn resources(&self) -> Resources {
        self.tasks.iter().fold(Resources::default(), |total, task| total + task.resources)
    }

    /// A copy whose checks on port labels probe the ports allocated to
    /// the allocation (`ports`); a label without a port keeps port 0, which
    /// fails its check.
    pub fn with_allocated_check_ports(&self, ports: &[crate::network::AllocatedPort]) -> TaskGroup {
        let mut group = self.clone();
        for task in &mut group.tasks {
            for check in task.services.iter_mut().flat_map(|service| service.checks.iter_mut()) {
                let Some(label) = &check.port_label else { continue };
                let allocated = ports.iter().find(|port| &port.label == label).map_or(0, |port| port.value);
                match &mut check.kind {
                    CheckKind::Tcp { port, .. } | CheckKind::Http { port, .. } => *port = allocated,
                    CheckKind::Script { .. } => {}
                }
            }
        }
        group
    }

    /// Every health check declared by the group's tasks.
    pub fn checks(&self) -> impl Iterator<Item = (&Task, &Check)> {
        self.tasks.iter().flat_map(|task| {
            task.services.iter().flat_map(move |service| service.checks.iter().map(move |check| (task, check)))
        })
    }
}

/// One process to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The label of the `task "…"` block.
    pub name: String,
    /// `exec` or `raw_exec`.
    pub driver: Driver,
    /// What to run.
    pub config: TaskConfig,
    /// Environment variables (values may contain `${node.…}` references,
    /// resolved by the agent).
    pub env: BTreeMap<String, String>,
    /// CPU and memory reserved for the task.
    pub resources: Resources,
    /// User to run as; `None` runs as the agent's user.
    pub user: Option<String>,
    /// How long to wait after `kill_signal` before SIGKILL.
    pub kill_timeout: DurationSpec,
    /// Signal sent first when stopping the task (`SIGINT` by default, as in
    /// Nomad).
    pub kill_signal: String,
    /// Task-level restart policy overriding the group's.
    pub restart: Option<RestartPolicy>,
    /// Constraints for this task (merged into the group's at placement).
    pub constraints: Vec<Constraint>,
    /// Services with health checks.
    pub services: Vec<Service>,
    /// Free-form metadata.
    pub meta: BTreeMap<String, String>,
    /// How many output files the agent keeps (`None`: Nomad's defaults,
    /// [`LogPolicy::DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogPolicy>,
    /// Files rendered into the task directory before it starts (Nomad's
    /// `template` blocks), in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<crate::task_files::TaskTemplate>,
    /// Files downloaded into the task directory before it starts (Nomad's
    /// `artifact` blocks), before the templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<crate::task_files::TaskArtifact>,
    /// When the task runs relative to the group's main tasks (Nomad's
    /// `lifecycle` block); `None` for a main task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<TaskLifecycle>,
    /// Where a dispatched job's payload is written, relative to the task's
    /// `local/` directory (Nomad's `dispatch_payload { file }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_payload: Option<String>,
}

impl Task {
    /// Whether the task is one of the group's main tasks (no `lifecycle`
    /// block).
    pub fn is_main(&self) -> bool {
        self.lifecycle.is_none()
    }

    /// The task's lifecycle hook, `None` for a main task.
    pub fn hook(&self) -> Option<LifecycleHook> {
        self.lifecycle.map(|lifecycle| lifecycle.hook)
    }

    /// Whether the task keeps running beside the main tasks (a sidecar)
    /// rather than running to completion at its hook.
    pub fn is_sidecar(&self) -> bool {
        self.lifecycle.is_some_and(|lifecycle| lifecycle.sidecar)
    }
}

/// Nomad's task `lifecycle` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskLifecycle {
    /// When the task starts.
    pub hook: LifecycleHook,
    /// Keep it running for as long as the main tasks run (restarted by its
    /// restart policy, stopped when they end) instead of running it once to
    /// completion.
    pub sidecar: bool,
}

/// When a lifecycle task starts, relative to the group's main tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleHook {
    /// Before the main tasks: they start once it completed (or, for a
    /// sidecar, once it runs).
    Prestart,
    /// Once every main task runs.
    Poststart,
    /// Once every other task has stopped.
    Poststop,
}

impl LifecycleHook {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleHook::Prestart => "prestart",
            LifecycleHook::Poststart => "poststart",
            LifecycleHook::Poststop => "poststop",
        }
    }
}

/// Whether a dispatch must, may or must not carry a payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadMode {
    /// A payload may be given (Nomad's default).
    #[default]
    Optional,
    /// A dispatch without a payload is refused.
    Required,
    /// A dispatch with a payload is refused.
    Forbidden,
}

impl PayloadMode {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadMode::Optional => "optional",
            PayloadMode::Required => "required",
            PayloadMode::Forbidden => "forbidden",
        }
    }
}

/// Nomad's job `parameterized` block: what a dispatch of the job carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterizedConfig {
    /// Whether a payload is optional, required or forbidden.
    pub payload: PayloadMode,
    /// Meta keys every dispatch must give.
    #[serde(default)]
    pub meta_required: Vec<String>,
    /// Meta keys a dispatch may give.
    #[serde(default)]
    pub meta_optional: Vec<String>,
}

impl ParameterizedConfig {
    /// The largest payload a dispatch may carry (Nomad's limit: 16 KiB).
    pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
}

/// The task drivers drover runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// A process with resource limits (cgroup v2 where writable, else
    /// rlimits).
    Exec,
    /// A process without resource limits.
    RawExec,
}

impl Driver {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Exec => "exec",
            Driver::RawExec => "raw_exec",
        }
    }
}

/// The `config` block of an exec or raw_exec task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskConfig {
    /// Program to run: an absolute path, or a name looked up in `PATH`.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
}

/// Nomad's `restart` block: how the agent restarts a task that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Restarts allowed within `interval`.
    pub attempts: u32,
    /// The window in which `attempts` are counted.
    pub interval: DurationSpec,
    /// Wait before each restart.
    pub delay: DurationSpec,
    /// What to do when the attempts are used up.
    pub mode: RestartMode,
}

impl RestartPolicy {
    /// Nomad's default for service and system jobs.
    pub const SERVICE_DEFAULT: RestartPolicy = RestartPolicy {
        attempts: 2,
        interval: DurationSpec::from_secs(30 * 60),
        delay: DurationSpec::from_secs(15),
        mode: RestartMode::Fail,
    };

    /// Nomad's default for batch jobs.
    pub const BATCH_DEFAULT: RestartPolicy = RestartPolicy {
        attempts: 3,
        interval: DurationSpec::from_secs(24 * 60 * 60),
        delay: DurationSpec::from_secs(15),
        mode: RestartMode::Fail,
    };

    /// The default for a job type.
    pub fn default_for(job_type: JobType) -> RestartPolicy {
        match job_type {
            JobType::Batch | JobType::SysBatch => Self::BATCH_DEFAULT,
            JobType::Service | JobType::System => Self::SERVICE_DEFAULT,
        }
    }
}

/// What a restart policy does once its attempts are used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartMode {
    /// The task fails, and with it the allocation (the server may then
    /// reschedule it).
    Fail,
    /// Wait until the interval has passed, then start counting again.
    Delay,
}

/// Nomad's `reschedule` block: how the server replaces failed allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReschedulePolicy {
    /// Reschedules allowed within `interval` (ignored when `unlimited`).
    pub attempts: u32,
    /// The window in which `attempts` are counted.
    pub interval: DurationSpec,
    /// Wait before the first reschedule.
    pub delay: DurationSpec,
    /// How the wait grows between reschedules.
    pub delay_function: DelayFunction,
    /// Upper bound of the wait.
    pub max_delay: DurationSpec,
    /// Reschedule forever.
    pub unlimited: bool,
}

impl ReschedulePolicy {
    /// Nomad's default for service jobs.
    pub const SERVICE_DEFAULT: ReschedulePolicy = ReschedulePolicy {
        attempts: 0,
        interval: DurationSpec::from_secs(0),
        delay: DurationSpec::from_secs(30),
        delay_function: DelayFunction::Exponential,
        max_delay: DurationSpec::from_secs(60 * 60),
        unlimited: true,
    };

    /// Nomad's default for batch jobs.
    pub const BATCH_DEFAULT: ReschedulePolicy = ReschedulePolicy {
        attempts: 1,
        interval: DurationSpec::from_secs(24 * 60 * 60),
        delay: DurationSpec::from_secs(5),
        delay_function: DelayFunction::Constant,
        max_delay: DurationSpec::from_secs(0),
        unlimited: false,
    };

    /// The default for a job type (`None` for system and sysbatch jobs,
    /// which are never rescheduled).
    pub fn default_for(job_type: JobType) -> Option<ReschedulePolicy> {
        match job_type {
            JobType::Service => Some(Self::SERVICE_DEFAULT),
            JobType::Batch => Some(Self::BATCH_DEFAULT),
            JobType::System | JobType::SysBatch => None,
        }
    }
}

/// How a reschedule delay grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DelayFunction {
    /// Always `delay`.
    Constant,
    /// `delay`, then doubled each time, up to `max_delay`.
    Exponential,
    /// `delay`, `delay`, then the sum of the previous two, up to `max_delay`.
    Fibonacci,
}

/// Nomad's `update` block: how a new job version replaces the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStrategy {
    /// Allocations replaced at a time.
    pub max_parallel: u32,
    /// What makes a new allocation healthy.
    pub health_check: HealthCheckMode,
    /// How long a new allocation must stay healthy.
    pub min_healthy_time: DurationSpec,
    /// How long a new allocation has to become healthy.
    pub healthy_deadline: DurationSpec,
    /// How long the deployment may go without an allocation becoming healthy.
    pub progress_deadline: DurationSpec,
    /// Revert to the last stable version when the deployment fails.
    pub auto_revert: bool,
    /// Promote canaries automatically once they are healthy.
    pub auto_promote: bool,
    /// Canaries to start before replacing the old allocations.
    pub canary: u32,
    /// Delay between replacement batches (Nomad's `stagger`).
    pub stagger: DurationSpec,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_parallel: 1,
            health_check: HealthCheckMode::Checks,
            min_healthy_time: DurationSpec::from_secs(10),
            healthy_deadline: DurationSpec::from_secs(5 * 60),
            progress_deadline: DurationSpec::from_secs(10 * 60),
            auto_revert: false,
            auto_promote: false,
            canary: 0,
            stagger: DurationSpec::from_secs(30),
        }
    }
}

/// What decides that an allocation is healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckMode {
    /// All tasks running and all checks passing.
    Checks,
    /// All tasks running.
    TaskStates,
    /// Set by the operator through the API.
    Manual,
}

/// Nomad's `migrate` block: how allocations leave a draining node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateStrategy {
    /// Allocations of this group migrated at a time.
    pub max_parallel: u32,
    /// What makes a replacement healthy.
    pub health_check: HealthCheckMode,
    /// How long a replacement must stay healthy.
    pub min_healthy_time: DurationSpec,
    /// How long a replacement has to become healthy.
    pub healthy_deadline: DurationSpec,
}

impl Default for MigrateStrategy {
    fn default() -> Self {
        MigrateStrategy {
            max_parallel: 1,
            health_check: HealthCheckMode::Checks,
            min_healthy_time: DurationSpec::from_secs(10),
            healthy_deadline: DurationSpec::from_secs(5 * 60),
        }
    }
}

/// Nomad's `disconnect` block: what happens when a node stops heartbeating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisconnectStrategy {
    /// How long the allocations are kept as `unknown` before they are
    /// declared lost; `None` declares them lost at once.
    pub lost_after: Option<DurationSpec>,
    /// Start replacements while the node is disconnected.
    pub replace: bool,
    /// Which allocation survives when the node comes back.
    pub reconcile: ReconcileMode,
}

impl Default for DisconnectStrategy {
    fn default() -> Self {
        DisconnectStrategy { lost_after: None, replace: true, reconcile: ReconcileMode::BestScore }
    }
}

/// Which of an original and its replacement is kept after a reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileMode {
    /// The one on the better-scoring node (drover keeps the replacement when
    /// scores tie, so nothing flaps).
    BestScore,
    /// The original.
    KeepOriginal,
    /// The replacement.
    KeepReplacement,
    /// The one that has run longest.
    LongestRunning,
}

/// Nomad's `periodic` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodicConfig {
    /// Cron expressions (5 or 6 fields); a launch happens at the earliest
    /// next time of any of them.
    pub crons: Vec<String>,
    /// IANA time zone the expressions are read in.
    pub time_zone: String,
    /// Skip a launch while a previous child is still running.
    pub prohibit_overlap: bool,
    /// Whether launches happen at all.
    pub enabled: bool,
}

/// A `service` block: a name and the health checks of the task, and what
/// the service catalogue announces of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Service name (defaults to `<job>-<group>-<task>`).
    pub name: String,
    /// Port the checks probe, when they do not set their own.
    pub port: Option<u16>,
    /// Health checks.
    pub checks: Vec<Check>,
    /// The label of a port of the group's `network` block, when `port`
    /// names one (`port = "http"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_label: Option<String>,
    /// Nomad's `tags`: announced with every instance in the service
    /// catalogue (docs/services.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Nomad's `canary_tags`: announced instead of `tags` while the
    /// instance's allocation is an unpromoted canary (empty: `tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_tags: Vec<String>,
    /// Nomad's `meta`: free-form pairs announced with every instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// The address announced instead of the node's (`address = "…"`,
    /// `${…}` references resolved on the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Nomad's `address_mode`; drover runs tasks in the host's network, so
    /// both modes announce the node's address.
    #[serde(default, skip_serializing_if = "ServiceAddressMode::is_auto")]
    pub address_mode: ServiceAddressMode,
}

/// Which address a service's instances are announced on (Nomad's
/// `address_mode`; only the modes of host networking).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAddressMode {
    /// The service's `address` if set, else the node's address.
    #[default]
    Auto,
    /// The node's address.
    Host,
}

impl ServiceAddressMode {
    /// Whether this is the default, `auto`.
    pub fn is_auto(&self) -> bool {
        *self == ServiceAddressMode::Auto
    }
}

/// A health check run by the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Check name (defaults to `service: "<service>" check`).
    pub name: String,
    /// What the check does.
    pub kind: CheckKind,
    /// How often it runs.
    pub interval: DurationSpec,
    /// How long one run may take.
    pub timeout: DurationSpec,
    /// Restart the task when the check keeps failing.
    pub check_restart: Option<CheckRestart>,
    /// The label of the group's port the check probes (`port = "http"`):
    /// the port in `kind` is 0 in the job and is set to the allocated port
    /// by [`TaskGroup::with_allocated_check_ports`] on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_label: Option<String>,
}

/// The three kinds of check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect to `address:port`.
    Tcp {
        /// Host to connect to (default `127.0.0.1`).
        address: String,
        /// Port to connect to.
        port: u16,
    },
    /// An HTTP request; healthy when the status matches (any 2xx by default)
    /// and the body contains `body` when set.
    Http {
        /// Host to connect to (default `127.0.0.1`).
        address: String,
        /// Port to connect to.
        port: u16,
        /// Request path, e.g. `/health`.
        path: String,
        /// HTTP method (default `GET`).
        method: String,
        /// Required status; `None` accepts any 2xx.
        expected_status: Option<u16>,
        /// Text the body must contain.
        body: Option<String>,
    },
    /// A command run in the task's environment; exit 0 is passing, 1 is
    /// warning, anything else critical.
    Script {
        /// Program to run.
        command: String,
        /// Arguments.
        args: Vec<String>,
    },
}

/// Nomad's `check_restart` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRestart {
    /// Consecutive failures before the task is restarted (0 disables).
    pub limit: u32,
    /// Time after a (re)start before failures count.
    pub grace: DurationSpec,
    /// Treat `warning` as passing.
    pub ignore_warnings: bool,
}

/// A placement rule: `attribute operator value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Constraint {
    /// Left-hand side, usually an interpolation such as `${node.hostgroup}`
    /// or `${attr.kernel.name}`; empty for `distinct_hosts`.
    pub attribute: String,
    /// How to compare.
    pub operator: ConstraintOperator,
    /// Right-hand side, may also contain interpolations.
    pub value: String,
}

/// A placement preference: nodes matching `attribute operator value` score
/// higher (positive weight) or lower (negative weight).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Affinity {
    /// Left-hand side, as in a constraint.
    pub attribute: String,
    /// How to compare (`distinct_hosts`, `is_set` and `is_not_set` are not
    /// allowed).
    pub operator: ConstraintOperator,
    /// Right-hand side.
    pub value: String,
    /// -100 to 100, not 0.
    pub weight: i8,
}

/// A spread preference: allocations are spread over the values of
/// `attribute`, evenly or by the given target percentages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spread {
    /// The node attribute to spread over, e.g. `${node.zone}`.
    pub attribute: String,
    /// 0 to 100.
    pub weight: u8,
    /// Desired shares per value; empty means even.
    pub targets: Vec<SpreadTarget>,
}

/// One value's desired share in a [`Spread`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpreadTarget {
    /// Attribute value.
    pub value: String,
    /// Percentage of the group's allocations.
    pub percent: u8,
}

/// The comparison operators of `constraint` blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConstraintOperator {
    /// String equality (`=` or `==`).
    #[serde(rename = "=")]
    Equal,
    /// String inequality.
    #[serde(rename = "!=")]
    NotEqual,
    /// Numeric if both sides are numbers, else lexical.
    #[serde(rename = "<")]
    Less,
    /// Numeric if both sides are numbers, else lexical.
    #[serde(rename = "<=")]
    LessOrEqual,
    /// Numeric if both sides are numbers, else lexical.
    #[serde(rename = ">")]
    Greater,
    /// Numeric if both sides are numbers, else lexical.
    #[serde(rename = ">=")]
    GreaterOrEqual,
    /// The attribute matches a regular expression.
    #[serde(rename = "regexp")]
    Regexp,
    /// The attribute matches a glob: `*` within a path segment, `**` across
    /// segments, `?` one character.
    #[serde(rename = "glob")]
    Glob,
    /// The attribute satisfies a version requirement such as `>= 5.4, < 6`.
    #[serde(rename = "version")]
    Version,
    /// The attribute, a comma-separated list, contains every value of the
    /// comma-separated value.
    #[serde(rename = "set_contains")]
    SetContains,
    /// No two allocations of the job (or group, when set at group level) on
    /// one node.
    #[serde(rename = "distinct_hosts")]
    DistinctHosts,
    /// The attribute exists on the node.
    #[serde(rename = "is_set")]
    IsSet,
    /// The attribute does not exist on the node.
    #[serde(rename = "is_not_set")]
    IsNotSet,
}

impl ConstraintOperator {
    /// Every operator with its spellings in job files.
    pub const ALL: [(&'static str, ConstraintOperator); 14] = [
        ("=", ConstraintOperator::Equal),
        ("==", ConstraintOperator::Equal),
        ("!=", ConstraintOperator::NotEqual),
        ("<", ConstraintOperator::Less),
        ("<=", ConstraintOperator::LessOrEqual),
        (">", ConstraintOperator::Greater),
        (">=", ConstraintOperator::GreaterOrEqual),
        ("regexp", ConstraintOperator::Regexp),
        ("glob", ConstraintOperator::Glob),
        ("version", ConstraintOperator::Version),
        ("set_contains", ConstraintOperator::SetContains),
        ("distinct_hosts", ConstraintOperator::DistinctHosts),
        ("is_set", ConstraintOperator::IsSet),
        ("is_not_set", ConstraintOperator::IsNotSet),
    ];

    /// Reads an operator as written in a job file.
    pub fn parse(text: &str) -> Option<ConstraintOperator> {
        Self::ALL.iter().find(|(spelling, _)| *spelling == text).map(|(_, operator)| *operator)
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, operator)| *operator == self).map_or("=", |(spelling, _)| spelling)
    }
}

impl fmt::Display for ConstraintOperator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_spelling_parses_back() {
        for (spelling, operator) in ConstraintOperator::ALL {
            assert_eq!(ConstraintOperator::parse(spelling), Some(operator));
            assert_eq!(ConstraintOperator::parse(operator.as_str()), Some(operator));
        }
        assert_eq!(ConstraintOperator::parse("~="), None);
    }

    /// Every server-managed field set to something other than a new job's.
    fn managed_elsewhere() -> ServerManaged {
        ServerManaged {
            version: 7,
            stop: true,
            status: JobStatus::Dead,
            parent_id: Some(JobId::new("nightly")),
            submit_time: Timestamp::from_millis(1_700_000_000_000),
            stable: true,
            create_index: 3,
            modify_index: 9,
            job_modify_index: 8,
        }
    }

    fn web() -> Job {
        Job {
            id: JobId::new("web"),
            name: "web".to_owned(),
            priority: 50,
            datacenters: vec!["*".to_owned()],
            meta: BTreeMap::from([("team".to_owned(), "ops".to_owned())]),
            ..Job::default()
        }
    }

    fn fields(value: &impl Serialize) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(value).unwrap() {
            serde_json::Value::Object(fields) => fields,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_new_job_has_the_server_managed_fields_of_one_never_submitted() {
        assert_eq!(Job::default().server_managed(), ServerManaged::default());
        assert_eq!(web().spec_only(), web());
    }

    /// Each server-managed field on its own: written to the job's field of
    /// the same name, read back, and ignored by every spec comparison.
    #[test]
    fn jobs_differing_only_in_one_server_managed_field_have_the_same_spec() {
        let unsubmitted = fields(&ServerManaged::default());
        let elsewhere = fields(&managed_elsewhere());
        assert!(!elsewhere.is_empty());
        for (name, value) in &elsewhere {
            assert_ne!(unsubmitted[name], *value, "managed_elsewhere leaves {name} as a new job has it: change it");
            let mut one_changed = unsubmitted.clone();
            one_changed.insert(name.clone(), value.clone());
            let one_changed: ServerManaged = serde_json::from_value(serde_json::Value::Object(one_changed)).unwrap();

            let mut job = web();
            job.set_server_managed(one_changed.clone());
            assert_eq!(job.server_managed(), one_changed, "{name} does not read back");
            assert_eq!(fields(&job).get(name), Some(value), "set_server_managed does not write Job's {name}");
            assert!(!job.spec_differs(&web()), "a different {name} counts as a change of the job file");
            assert_eq!(job.spec_only(), web(), "spec_only keeps {name}");
            assert_eq!(crate::diff::job_diff(&web(), &job), Vec::<String>::new(), "the diff shows {name}");
        }
    }

    /// What is not server-managed is the job file's, and spec_only keeps it.
    #[test]
    fn spec_only_resets_exactly_the_server_managed_fields() {
        let mut job = web();
        job.set_server_managed(managed_elsewhere());
        let managed = fields(&ServerManaged::default());
        let before = fields(&job);
        let after = fields(&job.spec_only());
        assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
        for (name, value) in &after {
            let expected = managed.get(name).unwrap_or(&before[name]);
            assert_eq!(value, expected, "spec_only changed {name} wrongly");
        }
        let mut changed = web();
        changed.priority = 70;
        assert!(changed.spec_differs(&web()));
    }
}
