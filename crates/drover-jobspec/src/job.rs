//! The `job` block: type, priority, job-wide placement and policies, groups.

use drover_hcl::BlockReader;
use drover_hcl::suggest::did_you_mean;
use drover_types::validate::limits::MAX_DATACENTERS;
use drover_types::{
    Job, JobId, JobType, MigrateStrategy, ParameterizedConfig, PayloadMode, ReschedulePolicy, UpdateStrategy,
};

use crate::group::{GroupContext, read_group, read_task_as_group};
use crate::placement::{read_affinities, read_constraints, read_spreads};
use crate::policies::{read_migrate, read_periodic, read_reschedule, read_update};
use crate::validate::check_label;

/// Parts of Nomad's job that drover does not run.
const UNSUPPORTED_JOB_PARTS: [(&str, &str); 6] = [
    ("vault", "drover has no Vault integration"),
    ("vault_token", "drover has no Vault integration"),
    ("consul", "drover has no Consul integration"),
    ("consul_token", "drover has no Consul integration"),
    ("multiregion", "drover has one region per cluster"),
    ("ui", ""),
];

/// The `job` block.
pub(crate) fn read_job(mut block: BlockReader<'_>) -> Option<Job> {
    let mut job = job_from(&mut block);
    for (name, hint) in UNSUPPORTED_JOB_PARTS {
        block.unsupported(name, hint);
    }
    // The rules and limits every job meets, however it arrives (the server
    // checks jobs from the API the same way). Several rules are also
    // checked while reading, at their own line; a file with such a problem
    // is refused already, and checking it again would say it twice.
    let reported = block.has_errors();
    if let Some(Err(problems)) = job.as_ref().filter(|_| !reported).map(Job::validate) {
        for problem in problems {
            block.report(block.label_location(), problem.to_string());
        }
        job = None;
    }
    block.finish();
    job
}

fn job_from(block: &mut BlockReader<'_>) -> Option<Job> {
    check_label(block, "job id");
    let id = block.label().to_owned();
    let job_type = read_job_type(block);
    let priority = if block.has("priority") {
        block.integer("priority", 1, 100).and_then(|integer| u8::try_from(integer).ok())
    } else {
        Some(50)
    };
    let datacenters = read_datacenters(block);
    let name = block.string("name").unwrap_or_else(|| id.clone());
    let meta = block.string_map("meta").unwrap_or_default();
    let region = block.string("region");
    let namespace = read_namespace(block);
    read_node_pool(block);
    // Deprecated in Nomad, where it has no effect either.
    block.bool("all_at_once");
    let constraints = read_constraints(block);
    let affinities = read_affinities(block);
    let spreads = read_spreads(block);
    let effective_type = job_type.unwrap_or_default();
    let update = match block.block("update") {
        Some(update_block) if effective_type.runs_to_completion() => {
            update_block.error(format!("{effective_type} jobs have no rolling updates: remove the update block"));
            None
        }
        Some(update_block) => Some(read_update(update_block, UpdateStrategy::default())),
        None => None,
    };
    let job_reschedule = match (block.block("reschedule"), ReschedulePolicy::default_for(effective_type)) {
        (Some(reschedule_block), None) => {
            reschedule_block.error(format!("{effective_type} jobs are never rescheduled: remove the reschedule block"));
            None
        }
        (Some(reschedule_block), Some(base)) => Some(read_reschedule(reschedule_block, base)),
        (None, base) => base,
    };
    let job_migrate = block
        .block("migrate")
        .map_or_else(MigrateStrategy::default, |migrate_block| read_migrate(migrate_block, MigrateStrategy::default()));
    let periodic = match block.block("periodic") {
        Some(periodic_block) if !effective_type.runs_to_completion() => {
            periodic_block.error(format!(
                "only batch and sysbatch jobs can be periodic: set type = \"batch\" in job \"{id}\" or remove the periodic block"
            ));
            None
        }
        Some(periodic_block) => read_periodic(periodic_block),
        None => None,
    };
    let parameterized = match block.block("parameterized") {
        Some(parameterized_block) => read_parameterized(parameterized_block, effective_type).map(Some),
        None => Some(None),
    };

    let context =
        GroupContext { job_id: &id, job_type: effective_type, job_update: update, job_reschedule, job_migrate };
    let had_groups = block.has("group");
    let mut groups = Vec::new();
    let mut group_names: Vec<String> = Vec::new();
    let mut all_groups_valid = true;
    for group_block in block.labeled_blocks("group") {
        let group_name = group_block.label().to_owned();
        let label_location = group_block.label_location();
        let maybe_group = read_group(group_block, &context);
        if group_names.contains(&group_name) {
            block.report(
                label_location,
                format!("group \"{group_name}\" appears twice in job \"{id}\": group names must be unique in a job"),
            );
            all_groups_valid = false;
            continue;
        }
        group_names.push(group_name);
        match maybe_group {
            Some(group) => groups.push(group),
            None => all_groups_valid = false,
        }
    }
    // Tasks written directly in the job become groups of their own name.
    let had_tasks = block.has("task");
    for task_block in block.labeled_blocks("task") {
        let task_name = task_block.label().to_owned();
        let label_location = task_block.label_location();
        let maybe_group = read_task_as_group(block, task_block, &context);
        if group_names.contains(&task_name) {
            block.report(
                label_location,
                format!(
                    "task \"{task_name}\" in job \"{id}\" makes a group of its name, and group \"{task_name}\" exists already: rename the task, or move it into that group"
                ),
            );
            all_groups_valid = false;
            continue;
        }
        group_names.push(task_name);
        match maybe_group {
            Some(group) => groups.push(group),
            None => all_groups_valid = false,
        }
    }
    if !had_groups && !had_tasks {
        block.error(format!("job \"{id}\" has no group: add group \"<name>\" {{ task \"<name>\" {{ … }} }}"));
        return None;
    }
    if !all_groups_valid {
        return None;
    }
    Some(Job {
        id: JobId::new(id),
        name,
        job_type: job_type?,
        priority: priority?,
        datacenters: datacenters?,
        constraints,
        affinities,
        spreads,
        update,
        periodic,
        meta,
        groups,
        region,
        namespace: namespace?,
        parameterized: parameterized?,
        // The server-managed fields: those of a job never submitted.
        ..Job::default()
    })
}

/// `namespace`: drover has one, `default`.
fn read_namespace(block: &mut BlockReader<'_>) -> Option<Option<String>> {
    let Some(namespace) = block.string("namespace") else {
        return Some(None);
    };
    if namespace == "default" {
        return Some(Some(namespace));
    }
    block.attribute_error(
        "namespace",
        format!(
            "namespace \"{namespace}\" is not supported by drover, which has one namespace, \"default\": remove the namespace line (give each team its own job names and an ACL policy instead)"
        ),
    );
    None
}

/// `node_pool`: every drover node is in Nomad's `default` pool, so
/// `default` and `all` place anywhere; other pools are refused.
fn read_node_pool(block: &mut BlockReader<'_>) {
    let Some(pool) = block.string("node_pool") else {
        return;
    };
    if pool != "default" && pool != "all" {
        block.attribute_error(
            "node_pool",
            format!(
                "node pool \"{pool}\" is not supported by drover, whose nodes are all in the pool \"default\": remove node_pool and select the nodes with a constraint, e.g. on ${{node.hostgroup}} or ${{meta.pool}}"
            ),
        );
    }
}

fn read_job_type(block: &mut BlockReader<'_>) -> Option<JobType> {
    if !block.has("type") {
        return Some(JobType::Service);
    }
    let text = block.string("type")?;
    match text.as_str() {
        "service" => Some(JobType::Service),
        "batch" => Some(JobType::Batch),
        "system" => Some(JobType::System),
        "sysbatch" => Some(JobType::SysBatch),
        other => {
            block.attribute_error(
                "type",
                format!(
                    "{} must be \"service\", \"batch\", \"system\" or \"sysbatch\", not {other:?}{}",
                    block.phrase("type"),
                    did_you_mean(other, ["service", "batch", "system", "sysbatch"])
                ),
            );
            None
        }
    }
}

/// A `parameterized` block: what `drover job dispatch` must and may give.
fn read_parameterized(mut block: BlockReader<'_>, job_type: JobType) -> Option<ParameterizedConfig> {
    let payload = if block.has("payload") {
        let text = block.string("payload");
        text.as_deref().and_then(|text| match text {
            "optional" => Some(PayloadMode::Optional),
            "required" => Some(PayloadMode::Required),
            "forbidden" => Some(PayloadMode::Forbidden),
            other => {
                block.attribute_error(
                    "payload",
                    format!(
                        "{} must be \"optional\", \"required\" or \"forbidden\", not {other:?}{}",
                        block.phrase("payload"),
                        did_you_mean(other, ["optional", "required", "forbidden"])
                    ),
                );
                None
            }
        })
    } else {
        Some(PayloadMode::Optional)
    };
    let meta_required = if block.has("meta_required") { block.string_list("meta_required") } else { Some(Vec::new()) };
    let meta_optional = if block.has("meta_optional") { block.string_list("meta_optional") } else { Some(Vec::new()) };
    // What was read checks on, so that every problem is reported at once.
    let read = ParameterizedConfig {
        payload: payload.unwrap_or_default(),
        meta_required: meta_required.clone().unwrap_or_default(),
        meta_optional: meta_optional.clone().unwrap_or_default(),
    };
    let problems = drover_types::validate::parameterized_problems(job_type, &read);
    for problem in &problems {
        block.error(problem.clone());
    }
    block.finish();
    payload?;
    meta_required?;
    meta_optional?;
    problems.is_empty().then_some(read)
}

fn read_datacenters(block: &mut BlockReader<'_>) -> Option<Vec<String>> {
    if !block.has("datacenters") {
        return Some(vec!["*".to_owned()]);
    }
    let datacenters = block.string_list("datacenters")?;
    if datacenters.len() > MAX_DATACENTERS {
        block.attribute_error(
            "datacenters",
            format!(
                "{} datacenters are more than the limit of {MAX_DATACENTERS}: use glob patterns such as \"dc-*\"",
                datacenters.len()
            ),
        );
        return None;
    }
    if datacenters.is_empty() || datacenters.iter().any(|datacenter| datacenter.trim().is_empty()) {
        block.attribute_error(
            "datacenters",
            "datacenters must name at least one zone, and no empty ones: use [\"*\"] for all".to_owned(),
        );
        return None;
    }
    Some(datacenters)
}
