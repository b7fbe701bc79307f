//! The leader's loops. They run only on the current Raft leader, start when
//! this server becomes leader and stop (their token is cancelled) when it
//! stops being leader.

mod actions;
mod console;
mod deployments;
mod drainer;
mod evals;
mod heartbeats;
mod node_gc;
mod periodic;
mod react;
#[cfg(test)]
pub(crate) mod test_support;
mod workflows;

pub(crate) use actions::render as render_provider_template;
pub(crate) use actions::render_checked as render_provider_template_checked;
pub(crate) use actions::shell as run_provider_command;
pub(crate) use react::log_query;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use drover_state::State;

use crate::server::Server;

/// Watches Raft metrics and starts or stops the leader's loops.
pub(crate) fn spawn_leadership_watch(server: Server) {
    tokio::spawn(async move {
        let mut metrics = server.raft().metrics();
        let shutdown = server.shutdown_token().clone();
        let mut leadership: Option<CancellationToken> = None;
        // A leader that cannot write its Raft data (disk full) runs no
        // leader loops: what they would decide (nodes down after its agents
        // moved away, say) must not be proposed late, once the disk frees.
        let mut disk_check = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            let is_leader =
                metrics.borrow_and_update().state == ServerState::Leader && server.inner.disk.stall().is_none();
            match (is_leader, leadership.is_some()) {
                (true, false) => {
                    let token = shutdown.child_token();
                    tracing::info!(server_id = server.id(), "became leader");
                    tokio::spawn(lead(server.clone(), token.clone()));
                    leadership = Some(token);
                }
                (false, true) => {
                    tracing::info!(server_id = server.id(), "lost leadership");
                    if let Some(token) = leadership.take() {
                        token.cancel();
                    }
                }
                _ => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = metrics.changed() => if changed.is_err() { return },
                _ = disk_check.tick() => {}
            }
        }
    });
}

/// Catches up with everything committed, then runs the loops.
async fn lead(server: Server, token: CancellationToken) {
    let leadership_started = Instant::now();
    // The new leader must apply every committed entry before acting on the
    // state, or it could re-schedule work that was already placed.
    loop {
        if token.is_cancelled() {
            return;
        }
        match server.raft().ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(_) => break,
            Err(error) => {
                tracing::debug!(%error, "leader not ready yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tokio::spawn(evals::run(server.clone(), token.clone()));
    tokio::spawn(deployments::run(server.clone(), token.clone()));
    tokio::spawn(drainer::run(server.clone(), token.clone()));
    tokio::spawn(periodic::run(server.clone(), token.clone()));
    tokio::spawn(react::run(server.clone(), token.clone()));
    tokio::spawn(node_gc::run(server.clone(), token.clone()));
    tokio::spawn(workflows::run(server.clone(), token.clone()));
    tokio::spawn(heartbeats::run(server, token, leadership_started));
}

/// What woke a leader loop's step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wake<E = ()> {
    /// The tick elapsed (the first one at once, when the loop starts).
    Tick,
    /// The cluster state changed.
    Changed,
    /// The loop's own channel delivered an event.
    Event(E),
}

/// What wakes a leader loop: its tick, and, when asked for, every change
/// of the cluster state and the events of a channel of its own.
pub(super) struct Wakes<E = ()> {
    period: Duration,
    states: Option<watch::Receiver<Arc<State>>>,
    events: Option<mpsc::Receiver<E>>,
}

impl Wakes {
    /// A tick every `period`, and nothing else.
    pub(super) fn every(period: Duration) -> Wakes {
        Wakes { period, states: None, events: None }
    }
}

impl<E> Wakes<E> {
    /// Also every change of `server`'s state (several changes between two
    /// steps wake it once).
    pub(super) fn and_on_change(self, server: &Server) -> Wakes<E> {
        Wakes { states: Some(server.watch_state()), ..self }
    }

    /// Also every event of `events`.
    pub(super) fn and_on_events<F>(self, events: mpsc::Receiver<F>) -> Wakes<F> {
        Wakes { period: self.period, states: self.states, events: Some(events) }
    }
}

/// The skeleton of every leader loop: runs `step` at once, then whenever
/// one of `wakes` fires, one step at a time, until `token` is cancelled or
/// the state stops changing for good (the server shuts down).
///
/// A step that outlasts the period is followed by one tick at once, not
/// by one per period missed.
pub(super) async fn on_change_or_tick<E>(
    token: CancellationToken,
    wakes: Wakes<E>,
    mut step: impl AsyncFnMut(Wake<E>),
) {
    let Wakes { period, mut states, mut events } = wakes;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let wake = tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => Wake::Tick,
            changed = state_changed(&mut states) => match changed {
                Ok(()) => Wake::Changed,
                Err(_) => return,
            },
            Some(event) = next_event(&mut events) => Wake::Event(event),
        };
        step(wake).await;
    }
}

/// The next state change; never, without a watch.
async fn state_changed(states: &mut Option<watch::Receiver<Arc<State>>>) -> Result<(), watch::error::RecvError> {
    match states {
        Some(states) => states.changed().await,
        None => std::future::pending().await,
    }
}

/// The next event; never, without a channel.
async fn next_event<E>(events: &mut Option<mpsc::Receiver<E>>) -> Option<E> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next wake a loop reported, within a deadline.
    async fn next_wake<E>(woken: &mut mpsc::UnboundedReceiver<Wake<E>>) -> Wake<E> {
        let wake = tokio::time::timeout(Duration::from_secs(10), woken.recv()).await;
        wake.expect("the loop steps within 10 s").expect("the loop is running")
    }

    #[tokio::test]
    async fn a_loop_steps_at_once_then_on_each_change_and_event_until_cancelled() {
        let (states, state_changes) = watch::channel(Arc::new(State::new()));
        let (events, received) = mpsc::channel(4);
        let (reports, mut woken) = mpsc::unbounded_channel();
        let token = CancellationToken::new();
        // A tick too slow to fire again during the test.
        let wakes = Wakes { period: Duration::from_secs(3600), states: Some(state_changes), events: Some(received) };
        let looping = tokio::spawn(on_change_or_tick(token.clone(), wakes, async move |wake| {
            reports.send(wake).expect("the test listens");
        }));

        assert_eq!(next_wake(&mut woken).await, Wake::Tick);
        states.send(Arc::new(State::new())).expect("the loop watches");
        assert_eq!(next_wake(&mut woken).await, Wake::Changed);
        events.send(7).await.expect("the loop listens");
        assert_eq!(next_wake(&mut woken).await, Wake::Event(7));

        token.cancel();
        tokio::time::timeout(Duration::from_secs(10), looping)
            .await
            .expect("a cancelled loop ends")
            .expect("the loop did not panic");
    }

    #[tokio::test]
    async fn a_loop_without_changes_steps_on_each_tick_and_ends_with_the_state() {
        let (states, state_changes) = watch::channel(Arc::new(State::new()));
        let (reports, mut woken) = mpsc::unbounded_channel();
        let wakes = Wakes { states: Some(state_changes), ..Wakes::every(Duration::from_millis(10)) };
        let looping = tokio::spawn(on_change_or_tick(CancellationToken::new(), wakes, async move |wake| {
            reports.send(wake).expect("the test listens");
        }));
        for _ in 0..3 {
            assert_eq!(next_wake(&mut woken).await, Wake::Tick);
        }
        // The server shuts down: its state will never change again.
        drop(states);
        tokio::time::timeout(Duration::from_secs(10), looping)
            .await
            .expect("the loop ends with the state")
            .expect("the loop did not panic");
    }
}
