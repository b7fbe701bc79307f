//! `group` blocks: tasks placed together, with their count and policies.

use drover_hcl::BlockReader;
use drover_types::{JobType, MigrateStrategy, ReschedulePolicy, RestartPolicy, TaskGroup, UpdateStrategy};

use crate::placement::{read_affinities, read_constraints, read_spreads};
use crate::policies::{read_disconnect, read_migrate, read_reschedule, read_restart, read_update};
use crate::task::{TaskContext, read_task};
use crate::validate::check_label;

/// What a group inherits from its job.
pub(crate) struct GroupContext<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) job_type: JobType,
    /// The job-level `update` block, which a group-level one refines.
    pub(crate) job_update: Option<UpdateStrategy>,
    /// The job-level `reschedule` block over the job type's default.
    pub(crate) job_reschedule: Option<ReschedulePolicy>,
    /// The job-level `migrate` block over the default.
    pub(crate) job_migrate: MigrateStrategy,
}

/// Parts of Nomad's group that drover does not run.
const UNSUPPORTED_GROUP_PARTS: [(&str, &str); 14] = [
    ("network", "drover does not allocate ports or network namespaces: give port numbers in checks"),
    ("volume", "use paths on the node directly"),
    ("scaling", "change count and run the job again"),
    ("service", "declare services inside the task they check"),
    ("consul", "drover has no Consul integration"),
    ("vault", "drover has no Vault integration"),
    ("ephemeral_disk", "drover does not manage allocation disks"),
    ("shutdown_delay", "use kill_timeout in the tasks"),
    ("stop_after_client_disconnect", "use a disconnect block"),
    ("max_client_disconnect", "use a disconnect block with lost_after"),
    ("prevent_reschedule_on_lost", "use a disconnect block with replace = false"),
    ("ui", ""),
    ("task_group", ""),
    ("identity", ""),
];

/// A `group` block; `None` when it has problems (they are reported).
pub(crate) fn read_group(mut block: BlockReader<'_>, context: &GroupContext<'_>) -> Option<TaskGroup> {
    let group = group_from(&mut block, context);
    for (name, hint) in UNSUPPORTED_GROUP_PARTS {
        block.unsupported(name, hint);
    }
    block.finish();
    group
}

fn group_from(block: &mut BlockReader<'_>, context: &GroupContext<'_>) -> Option<TaskGroup> {
    check_label(block, "group name");
    let name = block.label().to_owned();
    let count = read_count(block, context.job_type);
    let constraints = read_constraints(block);
    let mut affinities = read_affinities(block);
    let spreads = read_spreads(block);
    let restart = block.block("restart").map_or(RestartPolicy::default_for(context.job_type), |restart_block| {
        read_restart(restart_block, RestartPolicy::default_for(context.job_type))
    });
    let reschedule = match (block.block("reschedule"), context.job_reschedule) {
        (Some(reschedule_block), _) if context.job_type == JobType::System => {
            reschedule_block.error("system jobs are never rescheduled: remove the reschedule block".to_owned());
            None
        }
        (Some(reschedule_block), Some(base)) => Some(read_reschedule(reschedule_block, base)),
        (Some(_), None) | (None, None) => None,
        (None, Some(base)) => Some(base),
    };
    let update = match block.block("update") {
        Some(update_block) if context.job_type == JobType::Batch => {
            update_block.error("batch jobs have no rolling updates: remove the update block".to_owned());
            None
        }
        Some(update_block) => Some(read_update(update_block, context.job_update.unwrap_or_default())),
        None => None,
    };
    let migrate = block
        .block("migrate")
        .map_or(context.job_migrate, |migrate_block| read_migrate(migrate_block, context.job_migrate));
    let disconnect = block.block("disconnect").map(read_disconnect);
    let meta = block.string_map("meta").unwrap_or_default();

    let task_context = TaskContext { job_id: context.job_id, group_name: &name, group_restart: restart };
    let mut tasks = Vec::new();
    let mut task_names: Vec<String> = Vec::new();
    let mut all_tasks_valid = true;
    let had_tasks = block.has("task");
    for task_block in block.labeled_blocks("task") {
        let task_name = task_block.label().to_owned();
        let label_location = task_block.label_location();
        let (maybe_task, task_affinities) = read_task(task_block, &task_context);
        affinities.extend(task_affinities);
        if task_names.contains(&task_name) {
            block.report(
                label_location,
                format!(
                    "task \"{task_name}\" appears twice in {}: task names must be unique in a group",
                    block.description()
                ),
            );
            all_tasks_valid = false;
            continue;
        }
        task_names.push(task_name);
        match maybe_task {
            Some(task) => tasks.push(task),
            None => all_tasks_valid = false,
        }
    }
    if !had_tasks {
        block.error(format!(
            "{} has no task: add task \"<name>\" {{ driver = \"exec\"  config {{ command = \"…\" }} }}",
            block.description()
        ));
        return None;
    }
    if !all_tasks_valid {
        return None;
    }
    Some(TaskGroup {
        name,
        count: count?,
        constraints,
        affinities,
        spreads,
        restart,
        reschedule,
        update,
        migrate,
        disconnect,
        meta,
        tasks,
    })
}

fn read_count(block: &mut BlockReader<'_>, job_type: JobType) -> Option<u32> {
    if !block.has("count") {
        return Some(1);
    }
    let count = block.u32("count")?;
    if let Some(problem) = drover_types::validate::count_problem(count) {
        block.attribute_error("count", problem);
        return None;
    }
    if job_type == JobType::System && count > 1 {
        block.attribute_error(
            "count",
            format!("a system job runs one allocation on every matching node: count must be 0 or 1, not {count}"),
        );
        return None;
    }
    Some(count)
}
