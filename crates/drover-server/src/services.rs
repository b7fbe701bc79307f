//! The service catalogue: which instances of which services run where,
//! derived from the replicated state rather than stored in it.
//!
//! An allocation that runs (the agent reports it `running`, the servers
//! still want it to run) announces every `service` of its group's tasks.
//! Everything an instance says is already in the state: the job version
//! the allocation runs (names, tags, meta, port labels), the ports the
//! scheduler reserved for it, the node's address, the checks its agent
//! reports, and whether its deployment still waits for a promotion (canary
//! tags). So the catalogue needs no Raft command of its own: every server
//! derives the same catalogue from the same state, the API and DNS answer
//! from their server's state, and an instance comes and goes with the
//! allocation updates that already flow through Raft.
//!
//! ```text
//!  State ──▶ Catalogue::of(state) ──▶ GET /v1/services, /v1/service/{name}
//!                                 └─▶ DNS (dns.rs), rebuilt when the state changes
//! ```
//!
//! Everything here is pure: the derivation of one allocation's instances
//! ([`instances_of`]) is unit-tested on fixtures, the catalogue on states
//! built by applying commands.

use std::collections::{BTreeMap, BTreeSet};

use drover_proto::api::{ServiceHealth, ServiceInstance, ServiceListEntry};
use drover_state::State;
use drover_types::job::ServiceAddressMode;
use drover_types::network::ADDRESS_ATTRIBUTE;
use drover_types::{
    AllocClientStatus, Allocation, CheckHealth, Deployment, Job, Node, Service, Task, TaskLifecycleState,
    interpolate_lenient,
};

/// Every instance of every service, sorted by service name, then node
/// name, then allocation id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    instances: Vec<ServiceInstance>,
    /// The Raft index of the state it was derived from.
    index: u64,
}

impl Catalogue {
    /// The catalogue of `state`.
    pub fn of(state: &State) -> Catalogue {
        let mut instances = Vec::new();
        for alloc in state.allocs().filter(|alloc| announces_services(alloc)) {
            let Some(job) = state.job_version(&alloc.job_id, alloc.job_version).or_else(|| state.job(&alloc.job_id))
            else {
                continue;
            };
            let deployment = alloc.deployment_id.as_ref().and_then(|id| state.deployment(id));
            let node = state.node(&alloc.node_id);
            instances.extend(instances_of(alloc, job, node.map(|node| node.as_ref()), deployment.map(|d| d.as_ref())));
        }
        Catalogue::from_instances(instances, state.last_index())
    }

    /// A catalogue of `instances` (sorted here) read at `index`.
    pub fn from_instances(mut instances: Vec<ServiceInstance>, index: u64) -> Catalogue {
        instances.sort_by(|left, right| {
            (&left.service, &left.node_name, &left.alloc_id).cmp(&(&right.service, &right.node_name, &right.alloc_id))
        });
        Catalogue { instances, index }
    }

    /// The Raft index of the state it was derived from.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Every instance.
    pub fn instances(&self) -> &[ServiceInstance] {
        &self.instances
    }

    /// The instances of the service `name` (exact name).
    pub fn service(&self, name: &str) -> &[ServiceInstance] {
        let start = self.instances.partition_point(|instance| instance.service.as_str() < name);
        let end = start + self.instances[start..].partition_point(|instance| instance.service == name);
        &self.instances[start..end]
    }
}

/// Whether an allocation's services are in the catalogue: the agent says
/// it runs and the servers still want it to.
fn announces_services(alloc: &Allocation) -> bool {
    alloc.client_status == AllocClientStatus::Running && alloc.wants_to_run() && !alloc.is_terminal()
}

/// The instances `alloc` (of `job`, on `node`, created by `deployment`)
/// announces: one per service of its group's tasks.
pub fn instances_of(
    alloc: &Allocation,
    job: &Job,
    node: Option<&Node>,
    deployment: Option<&Deployment>,
) -> Vec<ServiceInstance> {
    let Some(group) = job.groups.iter().find(|group| group.name == alloc.group) else {
        return Vec::new();
    };
    let canary = alloc.deployment_status.as_ref().is_some_and(|status| status.canary)
        && deployment.is_some_and(|deployment| deployment.awaits_promotion(&alloc.group));
    let node_address = node_address(alloc, node);
    let mut instances = Vec::new();
    for task in &group.tasks {
        let resolve = |target: &str| resolve_target(target, alloc, job, task, node);
        for service in &task.services {
            let port = match &service.port_label {
                Some(label) => alloc.ports.iter().find(|port| &port.label == label).map(|port| port.value),
                None => service.port,
            };
            let address = match (&service.address, service.address_mode) {
                (Some(address), ServiceAddressMode::Auto) => interpolate_lenient(address, &resolve),
                _ => node_address.clone(),
            };
            let tags = if canary && !service.canary_tags.is_empty() { &service.canary_tags } else { &service.tags };
            instances.push(ServiceInstance {
                service: interpolate_lenient(&service.name, &resolve),
                alloc_id: alloc.id.clone(),
                job_id: alloc.job_id.clone(),
                group: alloc.group.clone(),
                task: task.name.clone(),
                node_id: alloc.node_id.clone(),
                node_name: node.map_or_else(|| alloc.node_name.clone(), |node| node.name.clone()),
                address,
                port,
                tags: tags.iter().map(|tag| interpolate_lenient(tag, &resolve)).collect(),
                meta: service
                    .meta
                    .iter()
                    .map(|(key, value)| (key.clone(), interpolate_lenient(value, &resolve)))
                    .collect(),
                canary,
                health: health_of(alloc, task, service),
            });
        }
    }
    instances
}

/// The address a node's instances are announced on: its
/// `unique.network.ip-address`, else the address its ports were reserved
/// on, else `127.0.0.1` (as `NOMAD_IP_<label>`).
pub fn node_address(alloc: &Allocation, node: Option<&Node>) -> String {
    node.and_then(|node| node.attributes.get(ADDRESS_ATTRIBUTE).cloned())
        .or_else(|| alloc.ports.first().map(|port| port.host_ip.clone()))
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

/// Passing when the service's task runs and every check of the service
/// passes (or warns, as Consul's DNS counts it), or it has none; critical
/// otherwise, a check not run yet included.
fn health_of(alloc: &Allocation, task: &Task, service: &Service) -> ServiceHealth {
    if alloc.client_status != AllocClientStatus::Running {
        return ServiceHealth::Critical;
    }
    if alloc.task_states.get(&task.name).is_some_and(|state| state.state != TaskLifecycleState::Running) {
        return ServiceHealth::Critical;
    }
    let every_check_passes = service.checks.iter().all(|check| {
        alloc.checks.iter().any(|status| {
            status.task == task.name
                && status.name == check.name
                && matches!(status.status, CheckHealth::Passing | CheckHealth::Warning)
        })
    });
    if every_check_passes { ServiceHealth::Passing } else { ServiceHealth::Critical }
}

/// The `${…}` targets a service's name, tags, meta and address may use:
/// the allocation's and its ports' `NOMAD_*` variables and the node's
/// values (`${node.unique.name}`, `${attr.…}`, `${meta.…}`).
fn resolve_target(target: &str, alloc: &Allocation, job: &Job, task: &Task, node: Option<&Node>) -> Option<String> {
    let port_of =
        |label: &str| alloc.ports.iter().find(|port| port.label == label || port.label.replace('-', "_") == label);
    let value = match target {
        "NOMAD_ALLOC_ID" => alloc.id.to_string(),
        "NOMAD_SHORT_ALLOC_ID" => alloc.id.short().to_owned(),
        "NOMAD_ALLOC_NAME" => alloc.name.clone(),
        "NOMAD_ALLOC_INDEX" => alloc.index.to_string(),
        "NOMAD_JOB_ID" => job.id.to_string(),
        "NOMAD_JOB_NAME" => job.name.clone(),
        "NOMAD_GROUP_NAME" => alloc.group.clone(),
        "NOMAD_TASK_NAME" => task.name.clone(),
        "NOMAD_NAMESPACE" => "default".to_owned(),
        "NOMAD_REGION" => "global".to_owned(),
        "NOMAD_DC" => node?.zone.clone(),
        _ => {
            if let Some(label) = target.strip_prefix("NOMAD_PORT_").or_else(|| target.strip_prefix("NOMAD_HOST_PORT_"))
            {
                return port_of(label).map(|port| port.value.to_string());
            }
            if let Some(label) = target.strip_prefix("NOMAD_IP_").or_else(|| target.strip_prefix("NOMAD_HOST_IP_")) {
                return port_of(label).map(|port| port.host_ip.clone());
            }
            if let Some(key) = target.strip_prefix("NOMAD_META_") {
                return [&task.meta, &job.meta]
                    .into_iter()
                    .flat_map(|meta| meta.iter())
                    .find(|(name, _)| name.to_uppercase().replace(['-', '.'], "_") == key)
                    .map(|(_, value)| value.clone());
            }
            return node?.resolve(target);
        }
    };
    Some(value)
}

/// The services of `instances` for `GET /v1/services`, by name.
pub fn summarize<'a>(instances: impl IntoIterator<Item = &'a ServiceInstance>) -> Vec<ServiceListEntry> {
    let mut services: BTreeMap<&str, (ServiceListEntry, BTreeSet<&str>)> = BTreeMap::new();
    for instance in instances {
        let (entry, tags) = services.entry(&instance.service).or_insert_with(|| {
            (ServiceListEntry { name: instance.service.clone(), ..ServiceListEntry::default() }, BTreeSet::new())
        });
        entry.instances += 1;
        if instance.health == ServiceHealth::Passing {
            entry.healthy += 1;
        }
        tags.extend(instance.tags.iter().map(String::as_str));
    }
    services
        .into_values()
        .map(|(entry, tags)| ServiceListEntry { tags: tags.into_iter().map(str::to_owned).collect(), ..entry })
        .collect()
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
