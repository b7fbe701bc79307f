//! The periodic dispatcher: launches children of periodic jobs when due.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drover_types::{JobId, Timestamp};

use crate::server::Server;

pub(super) async fn run(server: Server, token: CancellationToken) {
    let started = Timestamp::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // Launches skipped for overlap, so that each is logged once.
    let mut skipped: HashMap<JobId, Timestamp> = HashMap::new();
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = server.state();
        let now = Timestamp::now();
        let parents: Vec<_> = state.jobs().filter(|job| job.is_periodic() && !job.stop).cloned().collect();
        for parent in parents {
            let Some(periodic) = parent.periodic.as_ref() else { continue };
            // Launches missed while no leader ran are skipped.
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
            if periodic.prohibit_overlap && crate::periodic::child_running(&state, &parent.id) {
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
    }
}
