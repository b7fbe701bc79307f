//! `drover job dispatch`: children of parameterized jobs (Nomad's
//! dispatch).
//!
//! A parameterized job is registered like any job but never placed. Each
//! dispatch registers a child `<parent>/dispatch-<unix seconds>-<8 hex
//! digits>` with `parent_id` set, the parent's specification, the
//! dispatch's meta added to the parent's, and the payload, which the agent
//! writes to each task's `dispatch_payload` file. The child is a batch (or
//! sysbatch) job like any other: `drover job status` follows it.

use std::collections::BTreeMap;

use drover_proto::api::{DispatchJobRequest, DispatchJobResponse};
use drover_state::{Command, CommandResponse};
use drover_types::{
    CodedError, EvalTrigger, Evaluation, Job, JobId, JobStatus, ParameterizedConfig, PayloadMode, Timestamp,
};

use crate::Result;
use crate::ids::new_eval_id;
use crate::server::Server;

impl Server {
    /// Registers a child of the parameterized job `parent_id` carrying
    /// `request`'s meta and payload.
    pub async fn dispatch_job(&self, parent_id: &JobId, request: DispatchJobRequest) -> Result<DispatchJobResponse> {
        let state = self.consistent_state().await?;
        let parent = state.job(parent_id).ok_or_else(|| CodedError::not_found("job", parent_id))?;
        if parent.stop {
            return Err(CodedError::conflict(format!(
                "job \"{parent_id}\" is stopped: run its job file again before dispatching it"
            )));
        }
        let now = Timestamp::now();
        let child = dispatched_child(parent, request.meta, request.payload, now, rand::random::<u32>())?;
        let eval = Evaluation::new(new_eval_id(), child.id.clone(), child.priority, EvalTrigger::JobRegister, now);
        let dispatched_job_id = child.id.clone();
        match self.propose(Command::RegisterJob { job: child, eval, now }).await?.into_result()? {
            CommandResponse::JobRegistered { index, eval_id, .. } => {
                tracing::info!(job = %parent_id, child = %dispatched_job_id, "parameterized job dispatched");
                Ok(DispatchJobResponse { dispatched_job_id, eval_id, index })
            }
            other => Err(CodedError::internal(format!("unexpected response to a dispatch: {other}"))),
        }
    }
}

/// The child of `parent` that a dispatch with `meta` and `payload` at
/// `now` registers (`suffix` makes its id unique), or why there is none.
pub(crate) fn dispatched_child(
    parent: &Job,
    meta: BTreeMap<String, String>,
    payload: Vec<u8>,
    now: Timestamp,
    suffix: u32,
) -> Result<Job> {
    let parent_id = &parent.id;
    let Some(parameterized) = &parent.parameterized else {
        return Err(CodedError::invalid(format!(
            "job \"{parent_id}\" is not parameterized: add a parameterized {{ … }} block to its job file, or run it with `drover job run`"
        )));
    };
    if let Some(problem) = payload_problem(parent_id, parameterized, payload.len()) {
        return Err(CodedError::invalid(problem));
    }
    let missing: Vec<&str> =
        parameterized.meta_required.iter().filter(|key| !meta.contains_key(*key)).map(String::as_str).collect();
    if !missing.is_empty() {
        let example: Vec<String> = missing.iter().map(|key| format!("-meta {key}=…")).collect();
        return Err(CodedError::invalid(format!(
            "job \"{parent_id}\" requires the meta key{} {}: add {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            example.join(" ")
        )));
    }
    let allowed = |key: &String| parameterized.meta_required.contains(key) || parameterized.meta_optional.contains(key);
    let unknown: Vec<&str> = meta.keys().filter(|key| !allowed(key)).map(String::as_str).collect();
    if !unknown.is_empty() {
        let permitted: Vec<&str> =
            parameterized.meta_required.iter().chain(&parameterized.meta_optional).map(String::as_str).collect();
        return Err(CodedError::invalid(format!(
            "job \"{parent_id}\" does not take the meta key{} {}: its parameterized block allows {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            if permitted.is_empty() { "none".to_owned() } else { permitted.join(", ") }
        )));
    }
    let seconds = now.as_millis().div_euclid(1000);
    let mut child = parent.spec_only();
    child.id = JobId::new(format!("{parent_id}/dispatch-{seconds}-{suffix:08x}"));
    child.name = child.id.to_string();
    child.parameterized = None;
    child.periodic = None;
    child.meta.extend(meta);
    child.payload = payload;
    // The child meets every rule its parent met, but for its id, which
    // holds a "/" on purpose (no job file can name a job like that).
    let mut checked = child.clone();
    checked.id = parent_id.clone();
    checked.validate().map_err(|problems| CodedError::invalid(drover_types::validate::describe(&problems)))?;
    child.parent_id = Some(parent_id.clone());
    child.status = JobStatus::Pending;
    Ok(child)
}

fn payload_problem(parent_id: &JobId, parameterized: &ParameterizedConfig, length: usize) -> Option<String> {
    if length > ParameterizedConfig::MAX_PAYLOAD_BYTES {
        return Some(format!(
            "the payload is {length} bytes, more than the limit of {} (16 KiB): pass a path or a URL in meta instead",
            ParameterizedConfig::MAX_PAYLOAD_BYTES
        ));
    }
    match parameterized.payload {
        PayloadMode::Required if length == 0 => {
            Some(format!("job \"{parent_id}\" requires a payload: give a file, or - to read it from standard input"))
        }
        PayloadMode::Forbidden if length > 0 => {
            Some(format!("job \"{parent_id}\" takes no payload (payload = \"forbidden\"): dispatch it without one"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::JobType;
    use drover_types::fixtures;

    fn parent(payload: PayloadMode) -> Job {
        let mut job = fixtures::job("build", JobType::Batch, 1);
        job.meta.insert("team".into(), "ci".into());
        job.parameterized = Some(ParameterizedConfig {
            payload,
            meta_required: vec!["commit".into()],
            meta_optional: vec!["branch".into()],
        });
        job
    }

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    fn error(result: Result<Job>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn a_child_carries_the_payload_and_meta_and_names_its_parent() {
        let now = Timestamp::from_millis(1_700_000_000_500);
        let child =
            dispatched_child(&parent(PayloadMode::Optional), meta(&[("commit", "abc")]), b"{}".to_vec(), now, 0xbeef)
                .unwrap();
        assert_eq!(child.id.as_str(), "build/dispatch-1700000000-0000beef");
        assert_eq!(child.parent_id, Some(JobId::new("build")));
        assert_eq!(child.payload, b"{}");
        assert_eq!(child.meta, meta(&[("commit", "abc"), ("team", "ci")]));
        assert!(child.parameterized.is_none());
        assert!(!child.is_template());
    }

    #[test]
    fn missing_required_meta_is_refused_with_what_to_add() {
        let message =
            error(dispatched_child(&parent(PayloadMode::Optional), meta(&[]), Vec::new(), Timestamp::ZERO, 1));
        assert!(message.contains("job \"build\" requires the meta key commit: add -meta commit=…"), "{message}");
    }

    #[test]
    fn unknown_meta_keys_and_wrong_payloads_are_refused() {
        let unknown = error(dispatched_child(
            &parent(PayloadMode::Optional),
            meta(&[("commit", "a"), ("colour", "red")]),
            Vec::new(),
            Timestamp::ZERO,
            1,
        ));
        assert!(unknown.contains("does not take the meta key colour: its parameterized block allows commit, branch"));
        let commit = meta(&[("commit", "a")]);
        let required =
            error(dispatched_child(&parent(PayloadMode::Required), commit.clone(), Vec::new(), Timestamp::ZERO, 1));
        assert!(required.contains("requires a payload"), "{required}");
        let forbidden =
            error(dispatched_child(&parent(PayloadMode::Forbidden), commit.clone(), vec![1], Timestamp::ZERO, 1));
        assert!(forbidden.contains("takes no payload"), "{forbidden}");
        let too_big = vec![0; ParameterizedConfig::MAX_PAYLOAD_BYTES + 1];
        let large = error(dispatched_child(&parent(PayloadMode::Optional), commit, too_big, Timestamp::ZERO, 1));
        assert!(large.contains("more than the limit of 16384 (16 KiB)"), "{large}");
        let plain = fixtures::job("web", JobType::Batch, 1);
        assert!(
            error(dispatched_child(&plain, meta(&[]), Vec::new(), Timestamp::ZERO, 1)).contains("not parameterized")
        );
    }
}
