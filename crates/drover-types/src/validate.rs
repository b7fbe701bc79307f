//! The one check every job goes through, whichever way it arrived: the job
//! file reader calls it after reading (and reports what it finds at the job
//! block), the server calls it before a job is planned or registered over
//! the API. The limits live here, once, and `docs/api.md` lists them.
//!
//! Why limits at all: the scheduler and the state machine do work in
//! proportion to a job's counts and list lengths, and a job is replayed on
//! every server restart. A number the caller chose must never make the
//! leader allocate without bound (one `count = 4294967295` used to crash the
//! leader at every start).

use std::fmt;
use std::str::FromStr;

use crate::glob::{Glob, has_wildcards};
use crate::job::{
    CheckKind, ConstraintOperator, DelayFunction, Job, LifecycleHook, LogPolicy, MigrateStrategy, ParameterizedConfig,
    PeriodicConfig, ReschedulePolicy, RestartMode, RestartPolicy, Task, TaskGroup, TaskLifecycle, UpdateStrategy,
};
use crate::time::DurationSpec;
use crate::version::VersionRequirement;

/// The size limits of a job. Every one is checked by [`Job::validate`].
pub mod limits {
    /// Characters in a job id, group name or task name.
    pub const MAX_NAME_CHARS: usize = 128;
    /// Characters in a job's display name, a service or check name, a user.
    pub const MAX_LABEL_CHARS: usize = 256;
    /// Allocations one group may ask for.
    pub const MAX_COUNT: u32 = 100_000;
    /// Allocations one job may ask for, over all its groups.
    pub const MAX_JOB_COUNT: u64 = 100_000;
    /// Groups in a job.
    pub const MAX_GROUPS: usize = 100;
    /// Tasks in a group.
    pub const MAX_TASKS: usize = 100;
    /// Entries of `datacenters`.
    pub const MAX_DATACENTERS: usize = 64;
    /// Constraints, affinities or spreads in one job, group or task.
    pub const MAX_RULES: usize = 64;
    /// Characters in a rule's attribute or value, a spread target.
    pub const MAX_RULE_CHARS: usize = 1_024;
    /// Entries of one `meta` or `env` map.
    pub const MAX_MAP_ENTRIES: usize = 256;
    /// Characters in a `meta` or `env` key.
    pub const MAX_KEY_CHARS: usize = 256;
    /// Characters in a `meta` or `env` value, a command or one argument.
    pub const MAX_VALUE_CHARS: usize = 32 * 1_024;
    /// Arguments of a task's command.
    pub const MAX_ARGS: usize = 1_024;
    /// Services of a task, checks of a service, cron expressions of a job.
    pub const MAX_ITEMS: usize = 32;
    /// The longest duration any setting may have: ten years.
    pub const MAX_DURATION_SECS: u64 = 10 * 366 * 24 * 3_600;
    /// Bytes of a job as the API receives it (JSON) and of any definition
    /// file drover reads (job, site, variable and configuration files).
    pub const MAX_DEFINITION_BYTES: u64 = 4 * 1_024 * 1_024;
    /// Files of one task's output stream (`logs { max_files }`).
    pub const MAX_LOG_FILES: u32 = 1_000;
    /// MiB of one task output file (`logs { max_file_size }`).
    pub const MAX_LOG_FILE_MB: u64 = 1_024 * 1_024;
    /// The shortest restart `interval`, in seconds.
    pub const MIN_RESTART_INTERVAL_SECS: u64 = 5;
    /// The shortest reschedule `delay`, in seconds.
    pub const MIN_RESCHEDULE_DELAY_SECS: u64 = 5;
}

use limits::*;

/// One thing wrong with a job: where (`group "web" task "server"`, empty
/// for the job itself) and what, with what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobProblem {
    /// The part of the job, as a job file names it.
    pub at: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for JobProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            formatter.write_str(&self.message)
        } else {
            write!(formatter, "{}: {}", self.at, self.message)
        }
    }
}

/// Whether `name` can be a job id, group name or task name:
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most [`MAX_NAME_CHARS`] long.
pub fn is_valid_name(name: &str) -> bool {
    let mut characters = name.chars();
    name.len() <= MAX_NAME_CHARS
        && characters.next().is_some_and(|first| first.is_ascii_alphanumeric())
        && characters.all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-'))
}

/// What is wrong with `name` as a `what` (`job id`, `group name`, `task
/// name`), or `None`.
pub fn name_problem(what: &str, name: &str) -> Option<String> {
    if is_valid_name(name) {
        return None;
    }
    let problem = if name.is_empty() {
        "must not be empty".to_owned()
    } else if name.len() > MAX_NAME_CHARS {
        format!("is {} characters long, more than the limit of {MAX_NAME_CHARS}", name.chars().count())
    } else {
        format!("{name:?} is not valid")
    };
    Some(format!("{what} {problem}: use letters, digits, \"_\", \".\" and \"-\", starting with a letter or a digit"))
}

/// What is wrong with `count` for one group, or `None`.
pub fn count_problem(count: u32) -> Option<String> {
    (count > MAX_COUNT).then(|| {
        format!("count {count} is more than the limit of {MAX_COUNT} allocations per group: split the work into several jobs")
    })
}

/// What is wrong with the right-hand side of a rule for `operator`, or
/// `None`. Values holding runtime references (`${…}`) are checked only
/// once resolved, by the scheduler.
pub fn operand_problem(operator: ConstraintOperator, value: &str) -> Option<String> {
    if value.contains("${") {
        return None;
    }
    match operator {
        ConstraintOperator::Regexp => regex::Regex::new(value).err().map(|error| {
            let full_message = error.to_string();
            let last_line = full_message.lines().last().unwrap_or_default().trim();
            let reason = last_line.strip_prefix("error: ").unwrap_or(last_line);
            format!("regular expression {value:?} does not compile: {reason}")
        }),
        ConstraintOperator::Glob => Glob::new(value).err().map(|error| format!("glob {value:?} {error}")),
        ConstraintOperator::Version => VersionRequirement::parse(value).is_none().then(|| {
            format!("version requirement {value:?} is not valid: write it like \">= 1.2, < 2\" or \"~> 5.4\"")
        }),
        _ => None,
    }
}

/// What is wrong with a cron expression, or `None`.
pub fn cron_problem(expression: &str) -> Option<String> {
    croner::Cron::from_str(expression).err().map(|error| {
        format!(
            "cron expression {expression:?} is not valid ({error}): write minute hour day-of-month month day-of-week, such as \"30 2 * * *\""
        )
    })
}

/// What is wrong with a time zone name, or `None`.
pub fn time_zone_problem(time_zone: &str) -> Option<String> {
    chrono_tz::Tz::from_str(time_zone)
        .is_err()
        .then(|| format!("unknown time zone {time_zone:?}: use an IANA name such as \"Europe/Zurich\" or \"UTC\""))
}

/// What is wrong with a periodic block: each cron expression must parse
/// and the time zone must be a known IANA name.
pub fn periodic_problems(periodic: &PeriodicConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if periodic.crons.is_empty() {
        problems.push("a periodic block needs at least one cron expression".to_owned());
    }
    if periodic.crons.len() > MAX_ITEMS {
        problems.push(format!("{} cron expressions are more than the limit of {MAX_ITEMS}", periodic.crons.len()));
    }
    problems.extend(periodic.crons.iter().filter_map(|expression| cron_problem(expression)));
    problems.extend(time_zone_problem(&periodic.time_zone));
    problems
}

/// What is wrong with a task's `lifecycle` block, or `None`.
pub fn lifecycle_problem(lifecycle: &TaskLifecycle) -> Option<String> {
    (lifecycle.hook == LifecycleHook::Poststop && lifecycle.sidecar).then(|| {
        "a poststop task cannot be a sidecar: it runs once, after the other tasks stopped; remove sidecar = true"
            .to_owned()
    })
}

/// What is wrong with the `file` of a task's `dispatch_payload` block,
/// or `None`: it is written under the task's `local/` directory.
pub fn dispatch_payload_problem(file: &str) -> Option<String> {
    crate::task_files::task_path_problem(&format!("local/{file}")).map(|problem| {
        format!(
            "dispatch_payload file {file:?} {problem}: give a file name relative to the task's local/ directory, such as \"input.json\""
        )
    })
}

/// What is wrong with a `parameterized` block on a job of `job_type`, in
/// file order.
pub fn parameterized_problems(job_type: crate::job::JobType, parameterized: &ParameterizedConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if !job_type.runs_to_completion() {
        problems.push(format!(
            "only batch and sysbatch jobs can be parameterized, not a {job_type} job: set type = \"batch\" or remove the parameterized block"
        ));
    }
    let keys = parameterized.meta_required.iter().chain(&parameterized.meta_optional);
    if parameterized.meta_required.len() + parameterized.meta_optional.len() > MAX_MAP_ENTRIES {
        problems.push(format!("parameterized names more than {MAX_MAP_ENTRIES} meta keys"));
    }
    for key in keys.clone() {
        if key.trim().is_empty() || key.len() > MAX_KEY_CHARS {
            problems.push(format!("parameterized meta key {key:?} must be 1 to {MAX_KEY_CHARS} characters long"));
        }
    }
    for key in &parameterized.meta_required {
        if parameterized.meta_optional.contains(key) {
            problems
                .push(format!("meta key {key:?} is both in meta_required and meta_optional: keep it in one of them"));
        }
    }
    problems
}

impl Job {
    /// Every problem of the job against drover's rules and limits, in job
    /// file order; `Ok` when there is none. Server-managed fields (version,
    /// status, indexes) are not looked at.
    pub fn validate(&self) -> Result<(), Vec<JobProblem>> {
        let mut checker = Checker::default();
        checker.job(self);
        if checker.problems.is_empty() { Ok(()) } else { Err(checker.problems) }
    }
}

/// Joins problems into one message, one per line.
pub fn describe(problems: &[JobProblem]) -> String {
    problems.iter().map(JobProblem::to_string).collect::<Vec<_>>().join("\n")
}

#[derive(Default)]
struct Checker {
    problems: Vec<JobProblem>,
    at: String,
}

impl Checker {
    fn report(&mut self, message: impl Into<String>) {
        self.problems.push(JobProblem { at: self.at.clone(), message: message.into() });
    }

    fn job(&mut self, job: &Job) {
        if let Some(problem) = name_problem("job id", job.id.as_str()) {
            self.report(problem);
        }
        self.label("name", &job.name);
        if !(1..=100).contains(&job.priority) {
            self.report(format!("priority {} is outside 1 to 100", job.priority));
        }
        if job.datacenters.is_empty() || job.datacenters.iter().any(|datacenter| datacenter.trim().is_empty()) {
            self.report("datacenters must name at least one zone, and no empty ones: use [\"*\"] for all");
        }
        self.length("datacenters", job.datacenters.len(), MAX_DATACENTERS);
        if job.datacenters.iter().any(|datacenter| datacenter.chars().count() > MAX_NAME_CHARS) {
            self.report(format!("a datacenter pattern is longer than the limit of {MAX_NAME_CHARS} characters"));
        }
        // Past the limit the job is refused anyway: compile no more globs.
        let patterns = job.datacenters.iter().take(MAX_DATACENTERS).filter(|datacenter| has_wildcards(datacenter));
        for datacenter in patterns {
            if let Err(error) = Glob::new(datacenter) {
                self.report(format!("datacenters: the glob {datacenter:?} {error}"));
            }
        }
        self.rules(&job.constraints, &job.affinities, &job.spreads);
        self.map("meta", &job.meta);
        if let Some(namespace) = job.namespace.as_deref().filter(|namespace| *namespace != "default") {
            self.report(format!(
                "namespace {:?} is not supported by drover, which has one namespace, \"default\": remove the namespace line (give each team its own job names and an ACL policy instead)",
                crate::text::truncated(namespace, 64)
            ));
        }
        if let Some(region) = &job.region {
            self.label("region", region);
        }
        if let Some(periodic) = &job.periodic {
            for problem in periodic_problems(periodic) {
                self.report(problem);
            }
        }
        if let Some(update) = &job.update {
            self.update(update);
        }
        if let Some(parameterized) = &job.parameterized {
            for problem in parameterized_problems(job.job_type, parameterized) {
                self.report(problem);
            }
        }
        if job.payload.len() > ParameterizedConfig::MAX_PAYLOAD_BYTES {
            self.report(format!(
                "the payload is {} bytes, more than the limit of {} (16 KiB): pass a path or a URL in meta instead",
                job.payload.len(),
                ParameterizedConfig::MAX_PAYLOAD_BYTES
            ));
        }
        if job.groups.is_empty() {
            self.report(format!(
                "job {:?} has no group: add group \"<name>\" {{ task \"<name>\" {{ … }} }}",
                job.id.as_str()
            ));
        }
        self.length("groups", job.groups.len(), MAX_GROUPS);
        let total: u64 = job.groups.iter().map(|group| u64::from(group.count)).sum();
        if total > MAX_JOB_COUNT {
            self.report(format!(
                "the groups ask for {total} allocations in all, more than the limit of {MAX_JOB_COUNT} per job: split the work into several jobs"
            ));
        }
        for (position, group) in job.groups.iter().enumerate() {
            if job.groups[..position].iter().any(|earlier| earlier.name == group.name) {
                self.report(format!("group \"{}\" appears twice: group names must be unique in a job", group.name));
            }
            self.at = format!("group {:?}", group.name);
            self.group(group);
            self.at.clear();
        }
    }

    fn group(&mut self, group: &TaskGroup) {
        if let Some(problem) = name_problem("group name", &group.name) {
            self.report(problem);
        }
        if let Some(problem) = count_problem(group.count) {
            self.report(problem);
        }
        self.rules(&group.constraints, &group.affinities, &group.spreads);
        self.map("meta", &group.meta);
        self.restart(&group.restart);
        if let Some(reschedule) = &group.reschedule {
            self.reschedule(reschedule);
        }
        if let Some(update) = &group.update {
            self.update(update);
        }
        self.migrate(&group.migrate);
        if let Some(lost_after) = group.disconnect.as_ref().and_then(|disconnect| disconnect.lost_after) {
            self.durations(&[("lost_after", lost_after)]);
        }
        if let Some(network) = &group.network {
            self.length("ports", network.ports.len(), MAX_ITEMS);
            for problem in crate::network::network_problems(network) {
                self.report(problem);
            }
        }
        if let Some(scaling) = &group.scaling {
            if scaling.min > scaling.max {
                self.report(format!("scaling min ({}) is larger than max ({})", scaling.min, scaling.max));
            } else if !(scaling.min..=scaling.max).contains(&group.count) {
                self.report(format!(
                    "count = {} is outside the scaling bounds {} to {}: change count or the scaling block",
                    group.count, scaling.min, scaling.max
                ));
            }
        }
        if group.tasks.is_empty() {
            self.report("the group has no task: add task \"<name>\" { driver = \"exec\" … }");
        } else if !group.tasks.iter().any(Task::is_main) {
            self.report(
                "every task of the group has a lifecycle block: add a main task, one without a lifecycle block",
            );
        }
        self.length("tasks", group.tasks.len(), MAX_TASKS);
        let group_at = self.at.clone();
        for (position, task) in group.tasks.iter().enumerate() {
            if group.tasks[..position].iter().any(|earlier| earlier.name == task.name) {
                self.report(format!("task \"{}\" appears twice: task names must be unique in a group", task.name));
            }
            self.at = format!("{group_at} task {:?}", task.name);
            self.task(task);
        }
        self.at = group_at;
    }

    fn task(&mut self, task: &Task) {
        if let Some(problem) = name_problem("task name", &task.name) {
            self.report(problem);
        }
        if task.config.command.trim().is_empty() {
            self.report("the task has no command: set config { command = \"/path/to/program\" }");
        }
        self.text("command", &task.config.command, MAX_VALUE_CHARS);
        self.length("args", task.config.args.len(), MAX_ARGS);
        for argument in &task.config.args {
            self.text("an argument", argument, MAX_VALUE_CHARS);
        }
        self.map("env", &task.env);
        self.map("meta", &task.meta);
        if task.resources.cpu_mhz < 1 {
            self.report("cpu must be at least 1 (MHz)");
        }
        if task.resources.memory_mb < 10 {
            self.report(format!("memory = {} is too small: give at least 10 (MiB)", task.resources.memory_mb));
        }
        if task.resources.cpu_mhz > u64::from(u32::MAX) || task.resources.memory_mb > u64::from(u32::MAX) {
            self.report(format!("cpu and memory must be at most {}", u32::MAX));
        }
        if let Some(user) = &task.user {
            self.label("user", user);
        }
        if !SIGNALS.contains(&task.kill_signal.as_str()) {
            self.report(format!(
                "kill_signal {:?} is not a signal drover knows: use one of {}",
                task.kill_signal,
                SIGNALS.join(" ")
            ));
        }
        self.durations(&[("kill_timeout", task.kill_timeout)]);
        if let Some(restart) = &task.restart {
            self.restart(restart);
        }
        if let Some(logs) = &task.logs {
            self.logs(logs);
        }
        self.rules(&task.constraints, &[], &[]);
        self.task_files(task);
        if let Some(problem) = task.lifecycle.as_ref().and_then(lifecycle_problem) {
            self.report(problem);
        }
        if let Some(file) = &task.dispatch_payload {
            self.text("the dispatch_payload file", file, MAX_RULE_CHARS);
            if let Some(problem) = dispatch_payload_problem(file) {
                self.report(problem);
            }
        }
        self.length("services", task.services.len(), MAX_ITEMS);
        for service in &task.services {
            self.label("service name", &service.name);
            self.service_tags("tags", &service.tags);
            self.service_tags("canary_tags", &service.canary_tags);
            self.map("service meta", &service.meta);
            if let Some(address) = &service.address {
                self.annotation("a service address", address, MAX_RULE_CHARS);
            }
            self.length("checks of a service", service.checks.len(), MAX_ITEMS);
            for check in &service.checks {
                self.label("check name", &check.name);
                self.durations(&[("check interval", check.interval), ("check timeout", check.timeout)]);
                if let Some(check_restart) = &check.check_restart {
                    self.durations(&[("check_restart grace", check_restart.grace)]);
                }
                match &check.kind {
                    CheckKind::Tcp { address, .. } => self.text("a check address", address, MAX_RULE_CHARS),
                    CheckKind::Http { address, path, method, body, .. } => {
                        self.text("a check address", address, MAX_RULE_CHARS);
                        self.text("a check path", path, MAX_RULE_CHARS);
                        self.text("a check method", method, MAX_NAME_CHARS);
                        if let Some(body) = body {
                            self.text("a check body", body, MAX_VALUE_CHARS);
                        }
                    }
                    CheckKind::Script { command, args } => {
                        self.text("a check command", command, MAX_VALUE_CHARS);
                        self.length("args of a check", args.len(), MAX_ARGS);
                    }
                }
            }
        }
    }

    /// The timing rules of a restart policy, as the job file reader states
    /// them: a task restarted without pause would restart in a tight loop.
    fn restart(&mut self, policy: &RestartPolicy) {
        self.durations(&[("restart interval", policy.interval), ("restart delay", policy.delay)]);
        if policy.interval.get().as_secs() < MIN_RESTART_INTERVAL_SECS {
            self.report(format!(
                "the restart interval must be at least {MIN_RESTART_INTERVAL_SECS}s, not {}",
                policy.interval
            ));
        } else if policy.delay.get().saturating_mul(policy.attempts) > policy.interval.get() {
            self.report(format!(
                "the restart policy cannot restart {} times within {} with a delay of {}: lengthen the interval or shorten the delay",
                policy.attempts, policy.interval, policy.delay
            ));
        }
        if policy.attempts == 0 && policy.mode == RestartMode::Delay {
            self.report("restart mode \"delay\" with 0 attempts is ambiguous: set attempts, or use mode = \"fail\"");
        }
    }

    /// The timing rules of a reschedule policy: without a delay, a failing
    /// allocation would be replaced as fast as the leader can plan.
    fn reschedule(&mut self, policy: &ReschedulePolicy) {
        self.durations(&[
            ("reschedule interval", policy.interval),
            ("reschedule delay", policy.delay),
            ("reschedule max_delay", policy.max_delay),
        ]);
        if policy.delay.get().as_secs() < MIN_RESCHEDULE_DELAY_SECS {
            self.report(format!(
                "the reschedule delay must be at least {MIN_RESCHEDULE_DELAY_SECS}s, not {}",
                policy.delay
            ));
        } else if policy.delay_function != DelayFunction::Constant && policy.max_delay < policy.delay {
            self.report(format!(
                "reschedule max_delay ({}) must not be shorter than delay ({})",
                policy.max_delay, policy.delay
            ));
        }
    }

    fn update(&mut self, update: &UpdateStrategy) {
        self.durations(&[
            ("min_healthy_time", update.min_healthy_time),
            ("healthy_deadline", update.healthy_deadline),
            ("progress_deadline", update.progress_deadline),
            ("stagger", update.stagger),
        ]);
        self.health_times("update", update.min_healthy_time, update.healthy_deadline);
        if !update.progress_deadline.get().is_zero() && update.healthy_deadline >= update.progress_deadline {
            self.report(format!(
                "healthy_deadline ({}) must be shorter than progress_deadline ({}) in the update block",
                update.healthy_deadline, update.progress_deadline
            ));
        }
        if update.stagger.get().is_zero() {
            self.report("stagger must be longer than 0s");
        }
        if update.auto_promote && update.canary == 0 {
            self.report("auto_promote needs canaries: set canary to 1 or more");
        }
    }

    fn migrate(&mut self, migrate: &MigrateStrategy) {
        self.durations(&[
            ("migrate min_healthy_time", migrate.min_healthy_time),
            ("migrate healthy_deadline", migrate.healthy_deadline),
        ]);
        self.health_times("migrate", migrate.min_healthy_time, migrate.healthy_deadline);
    }

    fn health_times(&mut self, block: &str, min_healthy_time: DurationSpec, healthy_deadline: DurationSpec) {
        if min_healthy_time >= healthy_deadline {
            self.report(format!(
                "min_healthy_time ({min_healthy_time}) must be shorter than healthy_deadline ({healthy_deadline}) in the {block} block"
            ));
        }
    }

    /// The bounds of a task's output files, as the job file reader has them:
    /// 0 would rotate on every byte, and no bound would fill the disk.
    fn logs(&mut self, logs: &LogPolicy) {
        if !(1..=MAX_LOG_FILES).contains(&logs.max_files) {
            self.report(format!("logs max_files must be between 1 and {MAX_LOG_FILES}, not {}", logs.max_files));
        }
        if !(1..=MAX_LOG_FILE_MB).contains(&logs.max_file_size_mb) {
            self.report(format!(
                "logs max_file_size must be between 1 and {MAX_LOG_FILE_MB} (MiB), not {}",
                logs.max_file_size_mb
            ));
        }
    }

    fn rules(
        &mut self,
        constraints: &[crate::job::Constraint],
        affinities: &[crate::job::Affinity],
        spreads: &[crate::job::Spread],
    ) {
        self.length("constraints", constraints.len(), MAX_RULES);
        self.length("affinities", affinities.len(), MAX_RULES);
        self.length("spreads", spreads.len(), MAX_RULES);
        let sides = constraints
            .iter()
            .map(|rule| (rule.operator, &rule.attribute, &rule.value))
            .chain(affinities.iter().map(|rule| (rule.operator, &rule.attribute, &rule.value)));
        let mut problems = Vec::new();
        for (operator, attribute, value) in sides {
            if attribute.chars().count() > MAX_RULE_CHARS || value.chars().count() > MAX_RULE_CHARS {
                problems.push(format!(
                    "a rule's attribute or value is longer than the limit of {MAX_RULE_CHARS} characters"
                ));
            }
            problems.extend(operand_problem(operator, value));
        }
        for spread in spreads {
            self.length("spread targets", spread.targets.len(), MAX_RULES);
            if spread.attribute.chars().count() > MAX_RULE_CHARS
                || spread.targets.iter().any(|target| target.value.chars().count() > MAX_RULE_CHARS)
            {
                problems.push(format!(
                    "a spread's attribute or target is longer than the limit of {MAX_RULE_CHARS} characters"
                ));
            }
        }
        for problem in problems {
            self.report(problem);
        }
    }

    fn map(&mut self, what: &str, map: &std::collections::BTreeMap<String, String>) {
        self.length(what, map.len(), MAX_MAP_ENTRIES);
        for (key, value) in map {
            if key.is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
                self.report(format!(
                    "{what} key {:?} is not valid: give 1 to {MAX_KEY_CHARS} characters without control characters",
                    crate::text::truncated(key, 64)
                ));
            }
            self.text(&format!("{what} {key:?}"), value, MAX_VALUE_CHARS);
        }
    }

    /// A service's `tags` or `canary_tags`: at most [`MAX_MAP_ENTRIES`],
    /// each at most [`MAX_RULE_CHARS`] (routing rules such as Traefik's
    /// travel in tags).
    fn service_tags(&mut self, what: &str, tags: &[String]) {
        self.length(&format!("service {what}"), tags.len(), MAX_MAP_ENTRIES);
        for tag in tags.iter().take(MAX_MAP_ENTRIES) {
            self.annotation(&format!("a service tag in {what}"), tag, MAX_RULE_CHARS);
        }
    }

    /// Free text announced as it is: at most `limit` characters, no control
    /// characters.
    fn annotation(&mut self, what: &str, text: &str, limit: usize) {
        if text.chars().count() > limit || text.chars().any(char::is_control) {
            self.report(format!(
                "{what} {:?} is not valid: give at most {limit} characters without control characters",
                crate::text::truncated(text, 64)
            ));
        }
    }

    fn label(&mut self, what: &str, text: &str) {
        if text.chars().count() > MAX_LABEL_CHARS || text.chars().any(char::is_control) {
            self.report(format!(
                "{what} {:?} is not valid: give at most {MAX_LABEL_CHARS} characters without control characters",
                crate::text::truncated(text, 64)
            ));
        }
    }

    /// Templates and artifacts stay in the task directory and within the
    /// limits.
    fn task_files(&mut self, task: &Task) {
        self.length("templates", task.templates.len(), MAX_ITEMS);
        self.length("artifacts", task.artifacts.len(), MAX_ITEMS);
        let mut paths: Vec<(&str, &str)> = Vec::new();
        for template in &task.templates {
            paths.push(("template destination", &template.destination));
            match (&template.change_script, template.change_mode) {
                (None, crate::task_files::ChangeMode::Script) => self.report(format!(
                    "the template {:?} has change_mode \"script\" and no change_script: add change_script {{ command = \"…\" }}",
                    template.destination
                )),
                (Some(script), mode) => {
                    if mode != crate::task_files::ChangeMode::Script {
                        self.report(format!(
                            "the template {:?} has a change_script and change_mode {:?}: the script runs only with \
                             change_mode \"script\"",
                            template.destination,
                            mode.as_str()
                        ));
                    }
                    let timeout = script.timeout.get();
                    if timeout < std::time::Duration::from_secs(1) || timeout > std::time::Duration::from_secs(3600) {
                        self.report(format!(
                            "the change_script timeout of the template {:?} is {}: give between 1s and 1h",
                            template.destination, script.timeout
                        ));
                    }
                    self.text("a change_script command", &script.command, MAX_RULE_CHARS);
                    self.length("change_script args", script.args.len(), MAX_ITEMS);
                    for arg in &script.args {
                        self.text("a change_script argument", arg, MAX_RULE_CHARS);
                    }
                }
                (None, _) => {}
            }
            if let crate::task_files::TemplateSource::File(source) = &template.source {
                paths.push(("template source", source));
            }
        }
        for artifact in &task.artifacts {
            paths.push(("artifact destination", &artifact.destination));
            self.text("an artifact source", &artifact.source, MAX_RULE_CHARS);
        }
        for (what, path) in paths {
            self.text(&format!("a {what}"), path, MAX_RULE_CHARS);
            if let Some(problem) = crate::task_files::task_path_problem(path) {
                self.report(format!(
                    "{what} {path:?} {problem}: use a path in the task directory such as \"local/app.conf\" \
                     (or under \"../alloc/\", the allocation's shared directory)"
                ));
            }
        }
    }

    fn text(&mut self, what: &str, text: &str, limit: usize) {
        if text.len() > limit {
            self.report(format!("{what} is {} bytes long, more than the limit of {limit}", text.len()));
        }
        if text.contains('\0') {
            self.report(format!("{what} contains a NUL character"));
        }
    }

    fn length(&mut self, what: &str, length: usize, limit: usize) {
        if length > limit {
            self.report(format!("{length} {what} are more than the limit of {limit}"));
        }
    }

    fn durations(&mut self, durations: &[(&str, DurationSpec)]) {
        for (what, duration) in durations {
            if duration.get().as_secs() > MAX_DURATION_SECS {
                self.report(format!("{what} = {duration} is longer than the limit of ten years"));
            }
        }
    }
}

/// The signals a task may be stopped with.
pub const SIGNALS: [&str; 20] = [
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
    "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGWINCH",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::job::{Constraint, JobType, TaskGroup};

    /// The service job `hello`: one group `web` of one task `server`.
    fn job() -> Job {
        let group = fixtures::group("web", JobType::Service, 1).with_tasks(vec![fixtures::task("server")]);
        fixtures::service_job("hello", 1).with_groups(vec![group])
    }

    fn problems(job: &Job) -> String {
        describe(&job.validate().expect_err("the job should be refused"))
    }

    #[test]
    fn a_plain_job_is_valid() {
        assert_eq!(job().validate(), Ok(()));
    }

    #[test]
    fn ids_that_are_not_names_are_refused() {
        for bad in ["", "a\0b", "../../x", "ünï", "my job", &"x".repeat(100 * 1024)] {
            let mut bad_job = job();
            bad_job.id = crate::JobId::new(bad);
            assert!(problems(&bad_job).contains("job id"), "{:?}", crate::text::truncated(bad, 20));
        }
    }

    #[test]
    fn counts_and_lists_have_limits() {
        let mut huge = job();
        huge.groups[0].count = u32::MAX;
        assert!(problems(&huge).contains("count 4294967295 is more than the limit of 100000"));

        let mut many_groups = job();
        let group = many_groups.groups[0].clone();
        many_groups.groups =
            (0..2).map(|number| TaskGroup { name: format!("g{number}"), count: 60_000, ..group.clone() }).collect();
        assert!(problems(&many_groups).contains("120000 allocations in all"));

        let mut zones = job();
        zones.datacenters = (0..100_000).map(|number| format!("dc{number}")).collect();
        assert!(problems(&zones).contains("100000 datacenters are more than the limit of 64"));
    }

    #[test]
    fn patterns_that_cannot_match_are_refused() {
        let mut regexp = job();
        regexp.constraints.push(Constraint {
            attribute: "${attr.kernel.name}".to_owned(),
            operator: ConstraintOperator::Regexp,
            value: "((linux".to_owned(),
        });
        assert!(problems(&regexp).contains("does not compile"));
        let mut version = job();
        version.groups[0].constraints.push(Constraint {
            attribute: "${attr.kernel.version}".to_owned(),
            operator: ConstraintOperator::Version,
            value: ">= banana".to_owned(),
        });
        assert!(problems(&version).contains("group \"web\": version requirement"));
        let mut glob = job();
        glob.constraints.push(Constraint {
            attribute: "${node.unique.name}".to_owned(),
            operator: ConstraintOperator::Glob,
            value: "rack[1".to_owned(),
        });
        assert!(problems(&glob).contains("glob \"rack[1\" has a \"[\" without its \"]\""));
        let mut zones = job();
        zones.datacenters = vec!["dc[1".to_owned()];
        assert!(problems(&zones).contains("datacenters: the glob \"dc[1\" has a \"[\""));
    }

    #[test]
    fn nomad_and_cargo_version_requirements_are_accepted() {
        for good in [">= 1.2, < 2", "= 5.4.0", ">=1.2.3", "~ 1.2", "^ 0.3", "~> 5.4"] {
            assert_eq!(operand_problem(ConstraintOperator::Version, good), None, "{good}");
        }
        for bad in ["banana", ">= one", ""] {
            assert!(operand_problem(ConstraintOperator::Version, bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn crons_and_time_zones_are_checked_in_full() {
        let mut periodic = job();
        periodic.job_type = JobType::Batch;
        periodic.periodic = Some(PeriodicConfig {
            crons: vec!["61 25 * * *".to_owned()],
            time_zone: "Mars/Olympus".to_owned(),
            prohibit_overlap: false,
            enabled: true,
        });
        let text = problems(&periodic);
        assert!(text.contains("cron expression \"61 25 * * *\" is not valid"), "{text}");
        assert!(text.contains("unknown time zone \"Mars/Olympus\""), "{text}");
    }

    /// What the job file reader refused and the API used to accept (issue
    /// 12, finding 13): output files rotated on every byte, tight restart
    /// and reschedule loops, a namespace drover does not have.
    #[test]
    fn templates_and_artifacts_stay_in_the_task_directory_whoever_submits_the_job() {
        use crate::task_files::{ArtifactMode, ChangeMode, TaskArtifact, TaskTemplate, TemplateSource};
        let template = |source: TemplateSource, destination: &str| TaskTemplate {
            source,
            destination: destination.to_owned(),
            change_mode: ChangeMode::Restart,
            change_signal: None,
            change_script: None,
            perms: 0o644,
            env: false,
            left_delimiter: "{{".to_owned(),
            right_delimiter: "}}".to_owned(),
            splay: DurationSpec::from_secs(5),
            wait: None,
        };
        let artifact = |destination: &str| TaskArtifact {
            source: "https://example.org/tool.tgz".to_owned(),
            destination: destination.to_owned(),
            mode: ArtifactMode::Any,
            checksum: None,
            unpack: true,
            headers: Default::default(),
        };
        let mut fine = job();
        fine.groups[0].tasks[0].templates = vec![
            template(TemplateSource::File("local/app.tpl".to_owned()), "local/app.conf"),
            template(TemplateSource::Data("x".to_owned()), "../alloc/shared.conf"),
        ];
        fine.groups[0].tasks[0].artifacts = vec![artifact("local/")];
        assert!(fine.validate().is_ok(), "{:?}", fine.validate());

        let mut escaping = job();
        escaping.groups[0].tasks[0].templates = vec![
            template(TemplateSource::File("/etc/shadow".to_owned()), "local/x"),
            template(TemplateSource::Data("x".to_owned()), "/etc/cron.d/evil"),
            template(TemplateSource::Data("x".to_owned()), "../alloc/../../evil"),
        ];
        escaping.groups[0].tasks[0].artifacts = vec![artifact("local/../../../evil")];
        let text = problems(&escaping);
        assert!(text.contains("template source \"/etc/shadow\" is absolute"), "{text}");
        assert!(text.contains("template destination \"/etc/cron.d/evil\" is absolute"), "{text}");
        assert!(text.contains("template destination \"../alloc/../../evil\" leaves the task directory"), "{text}");
        assert!(text.contains("artifact destination \"local/../../../evil\" leaves the task directory"), "{text}");

        let mut crowded = job();
        crowded.groups[0].tasks[0].artifacts = (0..=MAX_ITEMS).map(|_| artifact("local/")).collect();
        assert!(problems(&crowded).contains("artifacts"), "{}", problems(&crowded));

        // change_mode "script" needs its script, sent as JSON too.
        let mut scriptless = job();
        let mut reloading = template(TemplateSource::Data("x".to_owned()), "local/y");
        reloading.change_mode = ChangeMode::Script;
        scriptless.groups[0].tasks[0].templates = vec![reloading];
        let text = problems(&scriptless);
        assert!(text.contains("\"local/y\" has change_mode \"script\" and no change_script"), "{text}");
    }

    #[test]
    fn the_job_file_rules_for_output_timing_and_namespace_hold_for_every_job() {
        let mut no_rotation = job();
        no_rotation.groups[0].tasks[0].logs = Some(crate::job::LogPolicy { max_files: 0, max_file_size_mb: 0 });
        let text = problems(&no_rotation);
        assert!(text.contains("logs max_files must be between 1 and 1000, not 0"), "{text}");
        assert!(text.contains("logs max_file_size must be between 1 and 1048576 (MiB), not 0"), "{text}");
        let mut endless = job();
        endless.groups[0].tasks[0].logs =
            Some(crate::job::LogPolicy { max_files: u32::MAX, max_file_size_mb: u64::MAX });
        assert!(problems(&endless).contains("not 4294967295"));

        let mut tight_restarts = job();
        tight_restarts.groups[0].restart.interval = DurationSpec::from_secs(0);
        tight_restarts.groups[0].restart.delay = DurationSpec::from_secs(0);
        assert!(problems(&tight_restarts).contains("group \"web\": the restart interval must be at least 5s"));
        let mut crowded = job();
        crowded.groups[0].tasks[0].restart = Some(RestartPolicy {
            attempts: 100,
            interval: DurationSpec::from_secs(60),
            delay: DurationSpec::from_secs(15),
            mode: RestartMode::Fail,
        });
        assert!(problems(&crowded).contains("cannot restart 100 times within"));

        let mut instant_reschedule = job();
        instant_reschedule.groups[0].reschedule =
            Some(ReschedulePolicy { delay: DurationSpec::from_secs(0), ..ReschedulePolicy::SERVICE_DEFAULT });
        assert!(problems(&instant_reschedule).contains("the reschedule delay must be at least 5s"));

        let mut no_stagger = job();
        no_stagger.update = Some(UpdateStrategy { stagger: DurationSpec::from_secs(0), ..UpdateStrategy::default() });
        assert!(problems(&no_stagger).contains("stagger must be longer than 0s"));
        let mut late_health = job();
        late_health.groups[0].migrate.min_healthy_time = DurationSpec::from_secs(3_600);
        assert!(problems(&late_health).contains("must be shorter than healthy_deadline"));

        let mut namespace = job();
        namespace.namespace = Some("team-a".to_owned());
        assert!(problems(&namespace).contains("namespace \"team-a\" is not supported"));
        namespace.namespace = Some("default".to_owned());
        assert_eq!(namespace.validate(), Ok(()));
        let mut region = job();
        region.region = Some("r\0".repeat(100_000));
        assert!(problems(&region).contains("region"));
    }

    #[test]
    fn resources_names_and_text_are_checked() {
        let mut zero_memory = job();
        zero_memory.groups[0].tasks[0].resources.memory_mb = 0;
        assert!(problems(&zero_memory).contains("memory = 0 is too small"));

        let mut nul = job();
        nul.groups[0].tasks[0].env.insert("A".to_owned(), "a\0b".to_owned());
        assert!(problems(&nul).contains("group \"web\" task \"server\": env \"A\" contains a NUL character"));

        let mut long_duration = job();
        long_duration.groups[0].tasks[0].kill_timeout = DurationSpec::from_secs(u64::MAX / 2);
        assert!(problems(&long_duration).contains("kill_timeout"));

        let mut twice = job();
        let task = twice.groups[0].tasks[0].clone();
        twice.groups[0].tasks.push(task);
        assert!(problems(&twice).contains("appears twice"));
    }

    #[test]
    fn service_tags_meta_and_address_have_limits() {
        let with_service = |service: crate::job::Service| {
            let mut job = job();
            job.groups[0].tasks[0].services = vec![crate::job::Service { name: "web".to_owned(), ..service }];
            job
        };
        let fitting = crate::job::Service {
            tags: vec!["t".repeat(MAX_RULE_CHARS); MAX_MAP_ENTRIES],
            canary_tags: vec!["canary".to_owned()],
            meta: (0..MAX_MAP_ENTRIES).map(|n| (format!("k{n}"), "v".to_owned())).collect(),
            address: Some("a".repeat(MAX_RULE_CHARS)),
            ..crate::job::Service::default()
        };
        assert_eq!(with_service(fitting).validate(), Ok(()));

        let many_tags = crate::job::Service { tags: vec!["t".to_owned(); MAX_MAP_ENTRIES + 1], ..Default::default() };
        assert!(problems(&with_service(many_tags)).contains("257 service tags are more than the limit of 256"));
        let many_canary_tags = crate::job::Service { canary_tags: vec!["t".to_owned(); 1_000], ..Default::default() };
        assert!(problems(&with_service(many_canary_tags)).contains("1000 service canary_tags are more than"));
        let long_tag = crate::job::Service { tags: vec!["t".repeat(MAX_RULE_CHARS + 1)], ..Default::default() };
        let long_tag = problems(&with_service(long_tag));
        assert!(long_tag.contains("task \"server\": a service tag in tags") && long_tag.contains("1024"), "{long_tag}");
        let control = crate::job::Service { canary_tags: vec!["a\nb".to_owned()], ..Default::default() };
        assert!(problems(&with_service(control)).contains("a service tag in canary_tags \"a\\nb\" is not valid"));

        let many_meta = crate::job::Service {
            meta: (0..=MAX_MAP_ENTRIES).map(|n| (format!("k{n}"), "v".to_owned())).collect(),
            ..Default::default()
        };
        assert!(problems(&with_service(many_meta)).contains("257 service meta are more than the limit of 256"));
        let nul_meta = crate::job::Service {
            meta: std::collections::BTreeMap::from([("k".to_owned(), "a\0b".to_owned())]),
            ..Default::default()
        };
        assert!(problems(&with_service(nul_meta)).contains("service meta \"k\" contains a NUL character"));

        let long_address = crate::job::Service { address: Some("a".repeat(MAX_RULE_CHARS + 1)), ..Default::default() };
        assert!(problems(&with_service(long_address)).contains("a service address"));
    }
}
