//! The periodic dispatcher: launches children of periodic jobs when due.
//!
//! Each pass asks [`due_launches`] which parents have a launch due and
//! launches each, or records it as skipped when the job prohibits overlap
//! and its previous child still runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drover_state::State;
use drover_types::{Job, JobId, Timestamp};

use super::{Wakes, on_change_or_tick};
use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken) {
    let started = Timestamp::now();
    // Launches skipped for overlap, so that each is logged once.
    let mut skipped: HashMap<JobId, Timestamp> = HashMap::new();
    on_change_or_tick(token, Wakes::every(Duration::from_millis(500)), async move |_| {
        let state = server.state();
        for launch in due_launches(&state, started, Timestamp::now()) {
            let DueLaunch { parent, due, overlaps } = launch;
            if overlaps {
                if skipped.insert(parent.id.clone(), due) != Some(due) {
                    tracing::info!(job = %parent.id, launch = %due, "periodic launch skipped: the previous one still runs (prohibit_overlap)");
                }
                if let Err(error) = server.record_periodic_skip(&parent.id, due).await {
                    tracing::warn!(%error, job = %parent.id, "could not record the skipped launch");
                }
                continue;
            }
            if let Err(error) = server.launch_periodic(&parent, due).await {
                tracing::warn!(%error, job = %parent.id, "periodic launch failed");
            }
        }
    })
    .await;
}

/// A launch of a periodic job that is due.
#[derive(Debug)]
pub(super) struct DueLaunch {
    /// The periodic parent.
    pub(super) parent: Arc<Job>,
    /// The launch time.
    pub(super) due: Timestamp,
    /// The job prohibits overlap and its previous child still runs: the
    /// launch is skipped.
    pub(super) overlaps: bool,
}

/// The launches due at `now` of the periodic jobs of `state`, for a leader
/// that started at `started`: launches missed while no leader ran are
/// skipped, so the earliest launch considered is the first after the later
/// of the last launch (or the submission) and the leader's start.
pub(super) fn due_launches(state: &State, started: Timestamp, now: Timestamp) -> Vec<DueLaunch> {
    let mut due_launches = Vec::new();
    for parent in state.jobs().filter(|job| job.is_periodic() && !job.stop) {
        let Some(periodic) = parent.periodic.as_ref() else { continue };
        let after = state
            .last_periodic_launch(&parent.id)
            .unwrap_or(parent.submit_time)
            .max(started.minus(Duration::from_secs(1)));
        let due = match crate::periodic::next_launch(periodic, after) {
            Ok(Some(due)) => due,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(job = %parent.id, %error, "periodic job cannot be scheduled");
                continue;
            }
        };
        if due > now {
            continue;
        }
        let overlaps = periodic.prohibit_overlap && crate::periodic::child_running(state, &parent.id);
        due_launches.push(DueLaunch { parent: Arc::clone(parent), due, overlaps });
    }
    due_launches
}

#[cfg(test)]
mod tests {
    use drover_state::Command;
    use drover_types::{EvalId, EvalTrigger, Evaluation, JobType, PeriodicConfig};

    use super::*;
    use crate::leader::test_support::{Cluster, at, group, job};

    /// The batch job `report`, every minute, submitted at 0.
    fn every_minute(prohibit_overlap: bool) -> Cluster {
        let mut parent = job("report", JobType::Batch, vec![group("run", 1, 1)]);
        parent.periodic = Some(PeriodicConfig {
            crons: vec!["* * * * *".to_owned()],
            time_zone: "UTC".to_owned(),
            prohibit_overlap,
            enabled: true,
        });
        let mut cluster = Cluster::new();
        cluster.register(parent);
        cluster
    }

    /// The launch times due, with whether each overlaps.
    fn due(cluster: &Cluster, started: Timestamp, now: Timestamp) -> Vec<(Timestamp, bool)> {
        due_launches(&cluster.state, started, now).iter().map(|launch| (launch.due, launch.overlaps)).collect()
    }

    /// Records the launch at `time`, with its child still pending.
    fn launch(cluster: &mut Cluster, time: Timestamp) {
        let parent = Arc::clone(cluster.state.job(&JobId::new("report")).expect("the parent exists"));
        let child = crate::periodic::child_job(&parent, time);
        let eval = Evaluation::new(EvalId::new("child"), child.id.clone(), 50, EvalTrigger::PeriodicJob, time);
        cluster.apply(&Command::LaunchPeriodic {
            parent_id: parent.id.clone(),
            launch_time: time,
            child,
            eval,
            now: time,
        });
    }

    #[test]
    fn a_launch_is_due_from_its_time_on_and_once() {
        let mut cluster = every_minute(false);
        assert_eq!(due(&cluster, at(0), at(59)), []);
        assert_eq!(due(&cluster, at(0), at(61)), [(at(60), false)]);
        launch(&mut cluster, at(60));
        assert_eq!(due(&cluster, at(0), at(61)), [], "launched already");
        assert_eq!(due(&cluster, at(0), at(120)), [(at(120), false)], "overlap is allowed");
    }

    #[test]
    fn launches_missed_before_the_leader_started_are_skipped() {
        let cluster = every_minute(false);
        // An hour without a leader: one launch, the first after it started.
        assert_eq!(due(&cluster, at(3600), at(3601)), [(at(3600), false)]);
    }

    #[test]
    fn prohibit_overlap_skips_a_launch_while_the_previous_child_runs() {
        let mut cluster = every_minute(true);
        launch(&mut cluster, at(60));
        assert_eq!(due(&cluster, at(0), at(121)), [(at(120), true)]);
    }

    #[test]
    fn a_disabled_parent_launches_nothing() {
        let mut cluster = every_minute(false);
        let mut disabled = Job::clone(cluster.state.job(&JobId::new("report")).expect("the parent exists"));
        if let Some(periodic) = disabled.periodic.as_mut() {
            periodic.enabled = false;
        }
        cluster.register(disabled);
        assert_eq!(due(&cluster, at(0), at(61)), []);
    }
}
