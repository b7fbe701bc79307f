//! Periodic (cron) jobs: when a parent's next launch is due, and the child
//! job it launches.
//!
//! The parent never runs itself. Each launch registers a child batch job
//! `<parent>/periodic-<unix seconds>` with `parent_id` set, visible in
//! `drover job status` like any job. Launches missed while no leader was
//! running are skipped, not caught up (as in Nomad).

use std::str::FromStr;

use chrono::TimeZone;
use croner::Cron;

use drover_types::{CodedError, Job, JobId, JobStatus, PeriodicConfig, Timestamp};

/// The first launch time strictly after `after`, over all of the job's cron
/// expressions, in its time zone.
pub(crate) fn next_launch(periodic: &PeriodicConfig, after: Timestamp) -> Result<Option<Timestamp>, CodedError> {
    let zone: chrono_tz::Tz = periodic.time_zone.parse().map_err(|_| {
        CodedError::invalid(format!(
            "unknown time zone {:?}: use an IANA name such as \"Europe/Zurich\" or \"UTC\"",
            periodic.time_zone
        ))
    })?;
    let start = zone.from_utc_datetime(&after.to_datetime().naive_utc());
    let mut earliest: Option<Timestamp> = None;
    for expression in &periodic.crons {
        let cron = Cron::from_str(expression)
            .map_err(|error| CodedError::invalid(format!("invalid cron expression {expression:?}: {error}")))?;
        if let Ok(next) = cron.find_next_occurrence(&start, false) {
            let next = Timestamp::from_millis(next.timestamp_millis());
            earliest = Some(earliest.map_or(next, |current| current.min(next)));
        }
    }
    Ok(earliest)
}

/// The child job launched by `parent` for `launch_time`.
pub(crate) fn child_job(parent: &Job, launch_time: Timestamp) -> Job {
    let seconds = launch_time.as_millis().div_euclid(1000);
    let mut child = parent.spec_only();
    child.id = JobId::new(format!("{}/periodic-{seconds}", parent.id));
    child.name = child.id.to_string();
    child.periodic = None;
    child.parent_id = Some(parent.id.clone());
    child.status = JobStatus::Pending;
    child
}

/// Whether a child of `parent_id` is still pending or running.
pub(crate) fn child_running(state: &drover_state::State, parent_id: &JobId) -> bool {
    state.jobs().any(|job| job.parent_id.as_ref() == Some(parent_id) && !job.stop && job.status != JobStatus::Dead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn periodic(crons: &[&str], time_zone: &str) -> PeriodicConfig {
        PeriodicConfig {
            crons: crons.iter().map(|cron| (*cron).to_owned()).collect(),
            time_zone: time_zone.to_owned(),
            prohibit_overlap: false,
            enabled: true,
        }
    }

    #[test]
    fn the_earliest_expression_wins_in_the_job_time_zone() {
        // 2026-11-22T10:07:00Z
        let now = Timestamp::from_millis(1_795_342_020_000);
        let next = next_launch(&periodic(&["*/15 * * * *", "0 12 * * *"], "UTC"), now).unwrap().unwrap();
        assert_eq!(next.to_string(), "2026-11-22T10:15:00.000Z");
        // 11:00 in Zurich (UTC+1 in winter) is 10:00 UTC: already passed today.
        let next = next_launch(&periodic(&["0 11 * * *"], "Europe/Zurich"), now).unwrap().unwrap();
        assert_eq!(next.to_string(), "2026-11-23T10:00:00.000Z");
        let next = next_launch(&periodic(&["@hourly"], "UTC"), now).unwrap().unwrap();
        assert_eq!(next.to_string(), "2026-11-22T11:00:00.000Z");
    }

    #[test]
    fn bad_expressions_and_zones_are_explained() {
        let now = Timestamp::from_millis(0);
        let error = next_launch(&periodic(&["61 * * * *"], "UTC"), now).unwrap_err();
        assert!(error.message.contains("invalid cron expression"), "{error}");
        let error = next_launch(&periodic(&["* * * * *"], "Mars/Olympus"), now).unwrap_err();
        assert!(error.message.contains("unknown time zone"), "{error}");
    }
}
