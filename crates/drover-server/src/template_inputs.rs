//! What the templates of a node's allocations may read: the variables of
//! their jobs and the service catalogue, pushed to the agent over its
//! session ([`ServerMessage::TemplateInputs`]) so that the agent renders
//! without asking and re-renders when they change.
//!
//! Which variables a job reads is the rule of Nomad's workload identity,
//! kept as a pure function ([`job_may_read`]): the variable `nomad/jobs`,
//! and every variable at or under `nomad/jobs/JOB` or `jobs/JOB`. A job
//! cannot name other paths to read them: submitting a job is not a grant to
//! read every variable (an operator copies what a job needs under its
//! path). Services are all readable, as in Nomad's namespace.
//!
//! [`ServerMessage::TemplateInputs`]: drover_proto::session::ServerMessage::TemplateInputs

use std::collections::BTreeMap;

use drover_proto::session::TemplateInputs;
use drover_state::State;
use drover_types::{JobId, NodeId, Variable};

use crate::services::Catalogue;

/// Whether a job's templates may read the variable at `path`.
pub fn job_may_read(job_id: &str, path: &str) -> bool {
    let under = |root: &str| path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'));
    path == "nomad/jobs" || under(&format!("nomad/jobs/{job_id}")) || under(&format!("jobs/{job_id}"))
}

/// The variables `job_id` may read, by path.
fn variables_of(state: &State, job_id: &JobId) -> Vec<Variable> {
    let mut readable: Vec<Variable> = Vec::new();
    for root in ["nomad/jobs".to_owned(), format!("jobs/{job_id}")] {
        readable.extend(
            state
                .variables_with_prefix(&root)
                .filter(|variable| job_may_read(job_id.as_str(), &variable.path))
                .map(|variable| Variable::clone(variable)),
        );
    }
    readable.sort_by(|left, right| left.path.cmp(&right.path));
    readable
}

/// What the templates on `node_id` may read, or `None` when none of its
/// live allocations has a template. `catalogue` is computed once per pass
/// by the caller, the first time a node needs it.
pub(crate) fn template_inputs_for(
    state: &State,
    node_id: &NodeId,
    catalogue: &mut Option<Catalogue>,
) -> Option<TemplateInputs> {
    let mut variables = BTreeMap::new();
    for alloc in state.allocs_on_node(node_id).filter(|alloc| !alloc.client_status.is_terminal()) {
        let Some(job) = state.job_version(&alloc.job_id, alloc.job_version).or_else(|| state.job(&alloc.job_id)) else {
            continue;
        };
        let has_template =
            job.group(&alloc.group).is_some_and(|group| group.tasks.iter().any(|task| !task.templates.is_empty()));
        if has_template && !variables.contains_key(&alloc.job_id) {
            variables.insert(alloc.job_id.clone(), variables_of(state, &alloc.job_id));
        }
    }
    if variables.is_empty() {
        return None;
    }
    let services = catalogue.get_or_insert_with(|| Catalogue::of(state)).instances().to_vec();
    Some(TemplateInputs { variables, services })
}

#[cfg(test)]
mod tests {
    use super::job_may_read;

    #[test]
    fn a_job_reads_its_own_paths_only() {
        for readable in ["nomad/jobs", "nomad/jobs/web", "nomad/jobs/web/db", "jobs/web", "jobs/web/a/b"] {
            assert!(job_may_read("web", readable), "{readable}");
        }
        for hidden in ["nomad/jobs/webx", "nomad/jobs/other", "jobs/webapp", "site/web", "nomad/jobsweb", "jobs"] {
            assert!(!job_may_read("web", hidden), "{hidden}");
        }
    }
}
