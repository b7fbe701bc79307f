//! `task` blocks: one process, its driver, resources and services.

use drover_hcl::BlockReader;
use drover_hcl::suggest::did_you_mean;
use drover_types::{
    Affinity, Driver, DurationSpec, LifecycleHook, LogPolicy, PortSpec, Resources, RestartPolicy, Task, TaskConfig,
    TaskLifecycle,
};

use crate::network::read_task_network;
use crate::placement::{read_affinities, read_constraints};
use crate::policies::read_restart;
use crate::service::{ServiceOwner, read_service};
use crate::task_files::{read_artifact, read_template};
use drover_types::validate::SIGNALS;

use crate::validate::check_label;

/// What a task inherits from its job and group.
pub(crate) struct TaskContext<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) group_name: &'a str,
    /// The group's restart policy, which a task-level `restart` block
    /// refines (as in Nomad).
    pub(crate) group_restart: RestartPolicy,
}

/// Blocks and attributes of Nomad's task that drover does not run.
const UNSUPPORTED_TASK_PARTS: [(&str, &str); 14] = [
    ("vault", "drover has no Vault integration"),
    ("consul", "drover has no Consul integration"),
    ("identity", "drover has no workload identities"),
    ("volume_mount", "use paths on the node directly"),
    ("csi_plugin", "drover has no storage plugins"),
    ("scaling", "change count and run the job again"),
    ("leader", ""),
    ("kind", ""),
    ("shutdown_delay", "use kill_timeout"),
    ("action", ""),
    ("schedule", "use a periodic batch job"),
    ("secret", "drover has no secret store"),
    ("kill_signal_after", ""),
    ("service_account", ""),
];

/// What a task block gives its group besides the task.
pub(crate) struct TaskExtras {
    /// Task-level affinities (the group places with them).
    pub(crate) affinities: Vec<Affinity>,
    /// Ports of the legacy `resources { network { … } }` block, with where
    /// each label is, for the group's network.
    pub(crate) ports: Vec<(PortSpec, drover_hcl::Location)>,
}

/// A `task` block.
pub(crate) fn read_task(mut block: BlockReader<'_>, context: &TaskContext<'_>) -> (Option<Task>, TaskExtras) {
    let mut ports = Vec::new();
    let task = task_from(&mut block, context, &mut ports);
    for (name, hint) in UNSUPPORTED_TASK_PARTS {
        block.unsupported(name, hint);
    }
    let affinities = read_affinities(&mut block);
    block.finish();
    (task, TaskExtras { affinities, ports })
}

fn task_from(
    block: &mut BlockReader<'_>,
    context: &TaskContext<'_>,
    ports: &mut Vec<(PortSpec, drover_hcl::Location)>,
) -> Option<Task> {
    check_label(block, "task name");
    let name = block.label().to_owned();
    let driver = read_driver(block);
    let config = match block.block("config") {
        Some(config_block) => read_config(config_block),
        None => {
            block.error(format!(
                "{} needs a config block with the command to run: config {{ command = \"/usr/bin/…\" }}",
                block.description()
            ));
            None
        }
    };
    let env = block.string_map("env").unwrap_or_default();
    let resources = match block.block("resources") {
        Some(resources_block) => read_resources(resources_block, ports),
        None => Some(Resources::TASK_DEFAULT),
    };
    let logs = match block.block("logs") {
        Some(logs_block) => read_logs(logs_block).map(Some),
        None => Some(None),
    };
    let user = block.string("user");
    let kill_timeout =
        if block.has("kill_timeout") { block.duration("kill_timeout") } else { Some(DurationSpec::from_secs(5)) };
    let kill_signal = read_kill_signal(block);
    let restart = block.block("restart").map(|restart_block| read_restart(restart_block, context.group_restart));
    let constraints = read_constraints(block);
    let meta = block.string_map("meta").unwrap_or_default();
    let owner = ServiceOwner { job_id: context.job_id, group_name: context.group_name, task_name: Some(&name) };
    let mut services = Vec::new();
    let mut all_services_valid = true;
    for service_block in block.blocks("service") {
        match read_service(service_block, &owner) {
            Some(service) => services.push(service),
            None => all_services_valid = false,
        }
    }
    let templates: Vec<Option<_>> = block.blocks("template").into_iter().map(read_template).collect();
    let artifacts: Vec<Option<_>> = block.blocks("artifact").into_iter().map(read_artifact).collect();
    let lifecycle = match block.block("lifecycle") {
        Some(lifecycle_block) => read_lifecycle(lifecycle_block).map(Some),
        None => Some(None),
    };
    let dispatch_payload = match block.block("dispatch_payload") {
        Some(payload_block) => read_dispatch_payload(payload_block).map(Some),
        None => Some(None),
    };
    if !all_services_valid {
        return None;
    }
    Some(Task {
        name,
        driver: driver?,
        config: config?,
        env,
        resources: resources?,
        user,
        kill_timeout: kill_timeout?,
        kill_signal: kill_signal?,
        restart,
        constraints,
        services,
        meta,
        logs: logs?,
        templates: templates.into_iter().collect::<Option<Vec<_>>>()?,
        artifacts: artifacts.into_iter().collect::<Option<Vec<_>>>()?,
        lifecycle: lifecycle?,
        dispatch_payload: dispatch_payload?,
    })
}

/// A `lifecycle` block: when the task runs relative to the main tasks.
fn read_lifecycle(mut block: BlockReader<'_>) -> Option<TaskLifecycle> {
    let hook = if block.has("hook") {
        let text = block.string("hook");
        text.as_deref().and_then(|text| match text {
            "prestart" => Some(LifecycleHook::Prestart),
            "poststart" => Some(LifecycleHook::Poststart),
            "poststop" => Some(LifecycleHook::Poststop),
            other => {
                block.attribute_error(
                    "hook",
                    format!(
                        "{} must be \"prestart\", \"poststart\" or \"poststop\", not {other:?}{}",
                        block.phrase("hook"),
                        did_you_mean(other, ["prestart", "poststart", "poststop"])
                    ),
                );
                None
            }
        })
    } else {
        block
            .error(format!("{} needs a hook: hook = \"prestart\", \"poststart\" or \"poststop\"", block.description()));
        None
    };
    let sidecar = if block.has("sidecar") { block.bool("sidecar") } else { Some(false) };
    let lifecycle = hook.zip(sidecar).map(|(hook, sidecar)| TaskLifecycle { hook, sidecar });
    let problem = lifecycle.as_ref().and_then(drover_types::validate::lifecycle_problem);
    if let Some(problem) = &problem {
        block.attribute_error("sidecar", problem.clone());
    }
    block.finish();
    lifecycle.filter(|_| problem.is_none())
}

/// A `dispatch_payload` block: the file, under the task's `local/`
/// directory, that a dispatched job's payload is written to.
fn read_dispatch_payload(mut block: BlockReader<'_>) -> Option<String> {
    if !block.has("file") {
        block.error(format!("{} needs a file: file = \"input.json\"", block.description()));
        block.finish();
        return None;
    }
    let file = block.string("file")?;
    let problem = drover_types::validate::dispatch_payload_problem(&file);
    if let Some(problem) = &problem {
        block.attribute_error("file", problem.clone());
    }
    block.finish();
    problem.is_none().then_some(file)
}

fn read_driver(block: &mut BlockReader<'_>) -> Option<Driver> {
    if !block.has("driver") {
        block.error(format!("{} has no driver: set driver = \"exec\" or \"raw_exec\"", block.description()));
        return None;
    }
    let text = block.string("driver")?;
    match text.as_str() {
        "exec" => Some(Driver::Exec),
        "raw_exec" => Some(Driver::RawExec),
        other => {
            block.attribute_error(
                "driver",
                format!(
                    "driver \"{other}\" is not supported by drover: use \"exec\" or \"raw_exec\"{}",
                    did_you_mean(other, ["exec", "raw_exec"])
                ),
            );
            None
        }
    }
}

fn read_config(mut block: BlockReader<'_>) -> Option<TaskConfig> {
    let had_command = block.has("command");
    let given_command = block.string("command");
    let args = block.string_list("args");
    let had_args = block.has("args");
    block.unsupported("work_dir", "cd in the command, e.g. command = \"/bin/sh\" args = [\"-c\", \"cd /dir && …\"]");
    block.unsupported("pid_mode", "");
    block.unsupported("ipc_mode", "");
    block.unsupported("cap_add", "");
    block.unsupported("cap_drop", "");
    block.unsupported("cgroup_v2_override", "");
    block.unsupported("cgroup_v1_override", "");
    block.unsupported("oom_score_adj", "");
    block.unsupported("denied_envvars", "");
    let config = match given_command {
        Some(command) if !command.trim().is_empty() => {
            (!had_args || args.is_some()).then(|| TaskConfig { command, args: args.unwrap_or_default() })
        }
        Some(_) => {
            block.attribute_error("command", "the command must not be empty".to_owned());
            None
        }
        None => {
            if !had_command {
                block.error(format!("{} needs a command: command = \"/path/to/program\"", block.description()));
            }
            None
        }
    };
    block.finish();
    config
}

fn read_resources(mut block: BlockReader<'_>, ports: &mut Vec<(PortSpec, drover_hcl::Location)>) -> Option<Resources> {
    let cpu = if block.has("cpu") { block.integer("cpu", 1, i128::from(u32::MAX)) } else { Some(100) };
    let memory = if block.has("memory") { block.integer("memory", 10, i128::from(u32::MAX)) } else { Some(300) };
    block.unsupported("memory_max", "drover reserves and limits memory with one number: memory");
    block.unsupported("cores", "reserve CPU in MHz with cpu");
    block.unsupported("device", "drover schedules CPU and memory only");
    let mut network_valid = true;
    for network_block in block.blocks("network") {
        let location = network_block.location();
        match read_task_network(network_block) {
            Some(found) => ports.extend(found.into_iter().map(|port| (port, location))),
            None => network_valid = false,
        }
    }
    block.unsupported("numa", "");
    block.unsupported("disk", "");
    block.unsupported("iops", "");
    block.unsupported("secrets", "");
    block.finish();
    if !network_valid {
        return None;
    }
    Some(Resources { cpu_mhz: u64::try_from(cpu?).ok()?, memory_mb: u64::try_from(memory?).ok()? })
}

/// A `logs` block over Nomad's defaults (10 files of 10 MiB per stream).
fn read_logs(mut block: BlockReader<'_>) -> Option<LogPolicy> {
    let max_files = if block.has("max_files") { block.integer("max_files", 1, 1000) } else { Some(10) };
    let max_file_size =
        if block.has("max_file_size") { block.integer("max_file_size", 1, 1024 * 1024) } else { Some(10) };
    let disabled = block.bool("disabled").unwrap_or(false) || !block.bool("enabled").unwrap_or(true);
    if disabled {
        block.error(format!(
            "{} turns task output off, which drover does not do (drover logs reads it): remove it, or lower max_files",
            block.description()
        ));
    }
    block.finish();
    if disabled {
        return None;
    }
    Some(LogPolicy {
        max_files: u32::try_from(max_files?).ok()?,
        max_file_size_mb: u64::try_from(max_file_size?).ok()?,
    })
}

fn read_kill_signal(block: &mut BlockReader<'_>) -> Option<String> {
    if !block.has("kill_signal") {
        return Some("SIGINT".to_owned());
    }
    let signal = block.string("kill_signal")?;
    if SIGNALS.contains(&signal.as_str()) {
        return Some(signal);
    }
    let suggestion_source = if signal.starts_with("SIG") { signal.clone() } else { format!("SIG{signal}") };
    let suggestion = if SIGNALS.contains(&suggestion_source.as_str()) {
        format!("; did you mean \"{suggestion_source}\"?")
    } else {
        did_you_mean(&signal, SIGNALS)
    };
    block.attribute_error(
        "kill_signal",
        format!("unknown signal \"{signal}\": use a name such as \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\"{suggestion}"),
    );
    None
}
