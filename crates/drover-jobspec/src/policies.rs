//! `restart`, `reschedule`, `update`, `migrate`, `disconnect` and `periodic`
//! blocks.
//!
//! Each reader takes the block and the policy it refines (the job type's
//! default, or the job-level block for group-level ones): an attribute the
//! block does not set keeps the base's value, as in Nomad.

use std::time::Duration;

use drover_hcl::BlockReader;
use drover_hcl::suggest::did_you_mean;
use drover_types::{
    DelayFunction, DisconnectStrategy, DurationSpec, HealthCheckMode, MigrateStrategy, PeriodicConfig, ReconcileMode,
    ReschedulePolicy, RestartMode, RestartPolicy, UpdateStrategy,
};

use drover_types::validate::{cron_problem, time_zone_problem};

use crate::validate::check_cron;

/// Attribute `name` as one of `choices` (by spelling); reports anything
/// else with the valid spellings.
pub(crate) fn read_choice<T: Copy>(block: &mut BlockReader<'_>, name: &str, choices: &[(&str, T)]) -> Option<T> {
    let text = block.string(name)?;
    if let Some((_, choice)) = choices.iter().find(|(spelling, _)| *spelling == text) {
        return Some(*choice);
    }
    let spellings: Vec<&str> = choices.iter().map(|(spelling, _)| *spelling).collect();
    let quoted: Vec<String> = spellings.iter().map(|spelling| format!("\"{spelling}\"")).collect();
    block.attribute_error(
        name,
        format!(
            "{} must be {}, not {text:?}{}",
            block.phrase(name),
            join_alternatives(&quoted),
            did_you_mean(&text, spellings.iter().copied())
        ),
    );
    None
}

/// `"a", "b" or "c"`.
pub(crate) fn join_alternatives(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

const HEALTH_CHECK_MODES: [(&str, HealthCheckMode); 3] = [
    ("checks", HealthCheckMode::Checks),
    ("task_states", HealthCheckMode::TaskStates),
    ("manual", HealthCheckMode::Manual),
];

/// The shortest restart interval Nomad accepts.
const MINIMUM_RESTART_INTERVAL: Duration = Duration::from_secs(5);

/// The shortest reschedule delay Nomad accepts.
const MINIMUM_RESCHEDULE_DELAY: Duration = Duration::from_secs(5);

/// A `restart` block over `base`.
pub(crate) fn read_restart(mut block: BlockReader<'_>, base: RestartPolicy) -> RestartPolicy {
    let attempts = block.u32("attempts");
    let interval = block.duration("interval");
    let delay = block.duration("delay");
    let mode = read_choice(&mut block, "mode", &[("fail", RestartMode::Fail), ("delay", RestartMode::Delay)]);
    block.unsupported("render_templates", "drover has no templates");
    let policy = RestartPolicy {
        attempts: attempts.unwrap_or(base.attempts),
        interval: interval.unwrap_or(base.interval),
        delay: delay.unwrap_or(base.delay),
        mode: mode.unwrap_or(base.mode),
    };
    if policy.interval.get() < MINIMUM_RESTART_INTERVAL {
        block.attribute_error("interval", format!("the restart interval must be at least 5s, not {}", policy.interval));
    } else if policy.delay.get().saturating_mul(policy.attempts) > policy.interval.get() {
        block.error(format!(
            "{} cannot restart {} times within {} with a delay of {}: lengthen the interval or shorten the delay",
            block.description(),
            policy.attempts,
            policy.interval,
            policy.delay
        ));
    }
    if policy.attempts == 0 && policy.mode == RestartMode::Delay {
        block.attribute_error(
            "mode",
            "mode \"delay\" with 0 attempts is ambiguous: set attempts, or use mode = \"fail\"".to_owned(),
        );
    }
    block.finish();
    policy
}

/// A `reschedule` block over `base`.
pub(crate) fn read_reschedule(mut block: BlockReader<'_>, base: ReschedulePolicy) -> ReschedulePolicy {
    let attempts = block.u32("attempts");
    let interval = block.duration("interval");
    let delay = block.duration("delay");
    let delay_function = read_choice(
        &mut block,
        "delay_function",
        &[
            ("constant", DelayFunction::Constant),
            ("exponential", DelayFunction::Exponential),
            ("fibonacci", DelayFunction::Fibonacci),
        ],
    );
    let max_delay = block.duration("max_delay");
    let unlimited = block.bool("unlimited");
    let policy = ReschedulePolicy {
        attempts: attempts.unwrap_or(base.attempts),
        interval: interval.unwrap_or(base.interval),
        delay: delay.unwrap_or(base.delay),
        delay_function: delay_function.unwrap_or(base.delay_function),
        max_delay: max_delay.unwrap_or(base.max_delay),
        unlimited: unlimited.unwrap_or(base.unlimited),
    };
    if policy.delay.get() < MINIMUM_RESCHEDULE_DELAY {
        block.attribute_error("delay", format!("the reschedule delay must be at least 5s, not {}", policy.delay));
    } else if policy.delay_function != DelayFunction::Constant && policy.max_delay < policy.delay {
        block.attribute_error(
            "max_delay",
            format!("max_delay ({}) must not be shorter than delay ({})", policy.max_delay, policy.delay),
        );
    }
    block.finish();
    policy
}

/// An `update` block over `base`.
pub(crate) fn read_update(mut block: BlockReader<'_>, base: UpdateStrategy) -> UpdateStrategy {
    let max_parallel = block.u32("max_parallel");
    let health_check = read_choice(&mut block, "health_check", &HEALTH_CHECK_MODES);
    let min_healthy_time = block.duration("min_healthy_time");
    let healthy_deadline = block.duration("healthy_deadline");
    let progress_deadline = block.duration("progress_deadline");
    let auto_revert = block.bool("auto_revert");
    let auto_promote = block.bool("auto_promote");
    let canary = block.u32("canary");
    let stagger = block.duration("stagger");
    let strategy = UpdateStrategy {
        max_parallel: max_parallel.unwrap_or(base.max_parallel),
        health_check: health_check.unwrap_or(base.health_check),
        min_healthy_time: min_healthy_time.unwrap_or(base.min_healthy_time),
        healthy_deadline: healthy_deadline.unwrap_or(base.healthy_deadline),
        progress_deadline: progress_deadline.unwrap_or(base.progress_deadline),
        auto_revert: auto_revert.unwrap_or(base.auto_revert),
        auto_promote: auto_promote.unwrap_or(base.auto_promote),
        canary: canary.unwrap_or(base.canary),
        stagger: stagger.unwrap_or(base.stagger),
    };
    check_health_times(&block, strategy.min_healthy_time, strategy.healthy_deadline);
    if !strategy.progress_deadline.get().is_zero() && strategy.healthy_deadline >= strategy.progress_deadline {
        block.error(format!(
            "healthy_deadline ({}) must be shorter than progress_deadline ({}) in {}",
            strategy.healthy_deadline,
            strategy.progress_deadline,
            block.description()
        ));
    }
    if strategy.stagger.get().is_zero() {
        block.attribute_error("stagger", "stagger must be longer than 0s".to_owned());
    }
    if strategy.auto_promote && strategy.canary == 0 {
        block.attribute_error("auto_promote", "auto_promote needs canaries: set canary to 1 or more".to_owned());
    }
    block.finish();
    strategy
}

fn check_health_times(block: &BlockReader<'_>, min_healthy_time: DurationSpec, healthy_deadline: DurationSpec) {
    if min_healthy_time >= healthy_deadline {
        block.error(format!(
            "min_healthy_time ({min_healthy_time}) must be shorter than healthy_deadline ({healthy_deadline}) in {}",
            block.description()
        ));
    }
}

/// A `migrate` block over `base`.
pub(crate) fn read_migrate(mut block: BlockReader<'_>, base: MigrateStrategy) -> MigrateStrategy {
    let max_parallel = block.u32("max_parallel");
    let health_check = read_choice(&mut block, "health_check", &HEALTH_CHECK_MODES);
    let min_healthy_time = block.duration("min_healthy_time");
    let healthy_deadline = block.duration("healthy_deadline");
    let strategy = MigrateStrategy {
        max_parallel: max_parallel.unwrap_or(base.max_parallel),
        health_check: health_check.unwrap_or(base.health_check),
        min_healthy_time: min_healthy_time.unwrap_or(base.min_healthy_time),
        healthy_deadline: healthy_deadline.unwrap_or(base.healthy_deadline),
    };
    check_health_times(&block, strategy.min_healthy_time, strategy.healthy_deadline);
    block.finish();
    strategy
}

/// A `disconnect` block (over the defaults).
pub(crate) fn read_disconnect(mut block: BlockReader<'_>) -> DisconnectStrategy {
    let base = DisconnectStrategy::default();
    let lost_after = block.duration("lost_after");
    let replace = block.bool("replace");
    let reconcile = read_choice(
        &mut block,
        "reconcile",
        &[
            ("best_score", ReconcileMode::BestScore),
            ("keep_original", ReconcileMode::KeepOriginal),
            ("keep_replacement", ReconcileMode::KeepReplacement),
            ("longest_running", ReconcileMode::LongestRunning),
        ],
    );
    block.unsupported("stop_on_client_after", "drover agents do not stop allocations on their own yet");
    block.finish();
    DisconnectStrategy {
        lost_after: lost_after.or(base.lost_after),
        replace: replace.unwrap_or(base.replace),
        reconcile: reconcile.unwrap_or(base.reconcile),
    }
}

/// A `periodic` block; `None` when it has no usable cron expression (that
/// problem is reported).
pub(crate) fn read_periodic(mut block: BlockReader<'_>) -> Option<PeriodicConfig> {
    let periodic = periodic_from(&mut block);
    block.finish();
    periodic
}

fn periodic_from(block: &mut BlockReader<'_>) -> Option<PeriodicConfig> {
    let had_crons = block.has("crons");
    let had_cron = block.has("cron");
    let cron_list = block.string_list("crons");
    let single_cron = block.string("cron");
    let time_zone = block.string("time_zone").unwrap_or_else(|| "UTC".to_owned());
    let prohibit_overlap = block.bool("prohibit_overlap").unwrap_or(false);
    let enabled = block.bool("enabled").unwrap_or(true);
    if had_crons && had_cron {
        block.attribute_error("cron", "set either crons (a list) or cron (a string, deprecated), not both".to_owned());
        return None;
    }
    let expressions = match (cron_list, single_cron) {
        (Some(list), _) => list,
        (None, Some(expression)) => vec![expression],
        (None, None) => {
            if !had_crons && !had_cron {
                block.error(format!("{} needs a schedule, e.g. crons = [\"*/15 * * * *\"]", block.description()));
            }
            return None;
        }
    };
    let attribute_name = if had_crons { "crons" } else { "cron" };
    if expressions.is_empty() {
        block.attribute_error(attribute_name, "crons must hold at least one cron expression".to_owned());
        return None;
    }
    let mut all_valid = true;
    for expression in &expressions {
        if let Some(message) = check_cron(expression).err().or_else(|| cron_problem(expression)) {
            block.attribute_error(attribute_name, message);
            all_valid = false;
        }
    }
    if time_zone.trim().is_empty() {
        block
            .attribute_error("time_zone", "time_zone must name an IANA time zone such as \"Europe/Zurich\"".to_owned());
        return None;
    }
    if let Some(message) = time_zone_problem(&time_zone) {
        block.attribute_error("time_zone", message);
        return None;
    }
    all_valid.then_some(PeriodicConfig { crons: expressions, time_zone, prohibit_overlap, enabled })
}
