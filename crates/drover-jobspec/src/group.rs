//! `group` blocks: tasks placed together, with their count and policies.

use drover_hcl::BlockReader;
use drover_types::{
    DisconnectStrategy, EphemeralDisk, JobType, MigrateStrategy, NetworkSpec, ReschedulePolicy, RestartPolicy, Scaling,
    TaskGroup, UpdateStrategy,
};

use crate::network::read_group_network;
use crate::placement::{read_affinities, read_constraints, read_spreads};
use crate::policies::{read_disconnect, read_migrate, read_reschedule, read_restart, read_update};
use crate::service::{ServiceOwner, read_service};
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
const UNSUPPORTED_GROUP_PARTS: [(&str, &str); 9] = [
    ("volume", "use paths on the node directly"),
    ("consul", "drover has no Consul integration"),
    ("vault", "drover has no Vault integration"),
    ("shutdown_delay", "use kill_timeout in the tasks"),
    ("stop_after_client_disconnect", "use a disconnect block"),
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
        (Some(reschedule_block), _) if context.job_type.places_on_every_node() => {
            reschedule_block
                .error(format!("{} jobs are never rescheduled: remove the reschedule block", context.job_type));
            None
        }
        (Some(reschedule_block), Some(base)) => Some(read_reschedule(reschedule_block, base)),
        (Some(_), None) | (None, None) => None,
        (None, Some(base)) => Some(base),
    };
    let update = match block.block("update") {
        Some(update_block) if context.job_type.runs_to_completion() => {
            update_block.error(format!("{} jobs have no rolling updates: remove the update block", context.job_type));
            None
        }
        Some(update_block) => Some(read_update(update_block, context.job_update.unwrap_or_default())),
        None => None,
    };
    let migrate = block
        .block("migrate")
        .map_or(context.job_migrate, |migrate_block| read_migrate(migrate_block, context.job_migrate));
    let disconnect = read_group_disconnect(block);
    let meta = block.string_map("meta").unwrap_or_default();
    let group_network = match block.block("network") {
        Some(network_block) => read_group_network(network_block).map(Some),
        None => Some(None),
    };
    let ephemeral_disk = match block.block("ephemeral_disk") {
        Some(disk_block) => read_ephemeral_disk(disk_block).map(Some),
        None => Some(None),
    };

    let service_owner = ServiceOwner { job_id: context.job_id, group_name: &name, task_name: None };
    let group_services: Vec<_> =
        block.blocks("service").into_iter().map(|service_block| read_service(service_block, &service_owner)).collect();
    let task_context = TaskContext { job_id: context.job_id, group_name: &name, group_restart: restart };
    let mut tasks = Vec::new();
    let mut task_names: Vec<String> = Vec::new();
    let mut all_tasks_valid = true;
    let mut task_ports = Vec::new();
    let had_tasks = block.has("task");
    for task_block in block.labeled_blocks("task") {
        let task_name = task_block.label().to_owned();
        let label_location = task_block.label_location();
        let (maybe_task, extras) = read_task(task_block, &task_context);
        affinities.extend(extras.affinities);
        task_ports.extend(extras.ports);
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
    let network = merge_task_ports(block, group_network?, task_ports)?;
    // A group-level service is checked from the group's first task (its
    // script checks run there, its check_restart restarts it).
    let group_services: Vec<_> = group_services.into_iter().collect::<Option<_>>()?;
    if let Some(first) = tasks.first_mut() {
        first.services.extend(group_services);
    }
    check_port_labels(block, &tasks, network.as_ref())?;
    let count = count?;
    let scaling = match block.block("scaling") {
        Some(scaling_block) => read_scaling(scaling_block, count)?,
        None => None,
    };
    if !all_tasks_valid {
        return None;
    }
    Some(TaskGroup {
        name,
        count,
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
        network,
        ephemeral_disk: ephemeral_disk?,
        scaling,
    })
}

/// A task written directly in the job, which Nomad's HCL 1 reader accepted
/// and made a group of the same name holding only that task: the same here
/// (count 1, the job's update, reschedule and migrate policies, the task's
/// affinities and legacy ports). `job_block` reports the group's problems.
pub(crate) fn read_task_as_group(
    job_block: &BlockReader<'_>,
    task_block: BlockReader<'_>,
    context: &GroupContext<'_>,
) -> Option<TaskGroup> {
    let name = task_block.label().to_owned();
    let restart = RestartPolicy::default_for(context.job_type);
    let task_context = TaskContext { job_id: context.job_id, group_name: &name, group_restart: restart };
    let (task, extras) = read_task(task_block, &task_context);
    let network = merge_task_ports(job_block, None, extras.ports)?;
    let tasks = vec![task?];
    check_port_labels(job_block, &tasks, network.as_ref())?;
    let reschedule = if context.job_type.places_on_every_node() { None } else { context.job_reschedule };
    Some(TaskGroup {
        name,
        count: 1,
        constraints: Vec::new(),
        affinities: extras.affinities,
        spreads: Vec::new(),
        restart,
        reschedule,
        update: context.job_update.filter(|_| !context.job_type.runs_to_completion()),
        migrate: context.job_migrate,
        disconnect: None,
        meta: std::collections::BTreeMap::new(),
        tasks,
        network,
        ephemeral_disk: None,
        scaling: None,
    })
}

/// Reports service and check ports named by a label the group's network
/// does not declare.
fn check_port_labels(
    block: &BlockReader<'_>,
    tasks: &[drover_types::Task],
    network: Option<&NetworkSpec>,
) -> Option<()> {
    let declared: Vec<&str> =
        network.map(|network| network.ports.iter().map(|port| port.label.as_str()).collect()).unwrap_or_default();
    let mut valid = true;
    for service in tasks.iter().flat_map(|task| task.services.iter()) {
        let labels = service.port_label.iter().map(|label| (label, format!("service \"{}\"", service.name))).chain(
            service.checks.iter().filter(|check| check.port_label != service.port_label).filter_map(|check| {
                check
                    .port_label
                    .as_ref()
                    .map(|label| (label, format!("check \"{}\" of service \"{}\"", check.name, service.name)))
            }),
        );
        for (label, user) in labels {
            if !declared.contains(&label.as_str()) {
                block.error(format!(
                    "{user} uses port \"{label}\", which the network block of {} does not declare: add network {{ port \"{label}\" {{}} }} to the group, or give a port number{}",
                    block.description(),
                    drover_hcl::suggest::did_you_mean(label, declared.iter().copied())
                ));
                valid = false;
            }
        }
    }
    valid.then_some(())
}

/// The group's network with the ports of its tasks' legacy `resources {
/// network { … } }` blocks added; a label declared twice is reported.
fn merge_task_ports(
    block: &BlockReader<'_>,
    group_network: Option<NetworkSpec>,
    task_ports: Vec<(drover_types::PortSpec, drover_hcl::Location)>,
) -> Option<Option<NetworkSpec>> {
    if task_ports.is_empty() {
        return Some(group_network);
    }
    let mut network = group_network.unwrap_or_default();
    let mut valid = true;
    for (port, location) in task_ports {
        if network.ports.iter().any(|earlier| earlier.label == port.label) {
            block.report(
                location,
                format!(
                    "port \"{}\" is declared twice in {}: port labels must be unique in a group",
                    port.label,
                    block.description()
                ),
            );
            valid = false;
            continue;
        }
        network.ports.push(port);
    }
    valid.then_some(Some(network))
}

/// The `disconnect` block, or Nomad's older `max_client_disconnect = "…"`
/// (the same as `disconnect { lost_after = "…" }`).
fn read_group_disconnect(block: &mut BlockReader<'_>) -> Option<DisconnectStrategy> {
    let from_block = block.block("disconnect").map(read_disconnect);
    if !block.has("max_client_disconnect") {
        return from_block;
    }
    let lost_after = block.duration("max_client_disconnect")?;
    if from_block.is_some() {
        block.attribute_error(
            "max_client_disconnect",
            "set lost_after in the disconnect block instead of max_client_disconnect, not both".to_owned(),
        );
        return from_block;
    }
    Some(DisconnectStrategy { lost_after: Some(lost_after), ..DisconnectStrategy::default() })
}

/// An `ephemeral_disk` block over Nomad's defaults (300 MiB, not sticky,
/// no migration).
fn read_ephemeral_disk(mut block: BlockReader<'_>) -> Option<EphemeralDisk> {
    let size = if block.has("size") { block.u64("size") } else { Some(300) };
    let sticky = block.bool("sticky").unwrap_or(false);
    let migrate = block.bool("migrate").unwrap_or(false);
    block.finish();
    Some(EphemeralDisk { size_mb: size?, sticky, migrate })
}

/// A `scaling` block: `min` (default: the count) and `max` bound the
/// count; `enabled` and `policy` are kept for an autoscaler drover does
/// not have. `Some(None)` is never returned; `None` when invalid.
fn read_scaling(mut block: BlockReader<'_>, count: u32) -> Option<Option<Scaling>> {
    let min = if block.has("min") { block.u32("min") } else { Some(count) };
    let max = if block.has("max") {
        block.u32("max")
    } else {
        block.error(format!("{} needs max, e.g. max = {}", block.description(), count.max(1) * 2));
        None
    };
    let enabled = block.bool("enabled").unwrap_or(true);
    let has_policy = block.has("policy");
    block.skip("policy");
    let (min, max) = (min?, max?);
    let mut valid = true;
    if min > max {
        block.attribute_error("min", format!("scaling min ({min}) is larger than max ({max})"));
        valid = false;
    } else if !(min..=max).contains(&count) {
        block.error(format!(
            "count = {count} is outside the bounds of {} ({min} to {max}): change count or the bounds",
            block.description()
        ));
        valid = false;
    }
    block.finish();
    valid.then_some(Some(Scaling { min, max, enabled, has_policy }))
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
    if job_type.places_on_every_node() && count > 1 {
        block.attribute_error(
            "count",
            format!("a {job_type} job runs one allocation on every matching node: count must be 0 or 1, not {count}"),
        );
        return None;
    }
    Some(count)
}
