//! A write is visible on its server once it is acknowledged: when
//! `propose` returns, `state()` already holds what it wrote. The scheduler
//! relies on it — a worker that finished one evaluation of a job hands the
//! job to the next one, which must see the allocations the first placed, or
//! it places them again (a `count = 5` job once ran 10 tasks under load).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use drover_state::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_in_the_state_its_server_shows_next() {
    const WRITERS: usize = 16;
    const WRITES_EACH: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_single_server(dir.path()).await;

    // Many writers at once, so that openraft applies several entries per
    // batch: the window in which an answer could overtake the state.
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let server = server.clone();
        writers.spawn(async move {
            let mut stale = Vec::new();
            for _ in 0..WRITES_EACH {
                let index =
                    server.propose(Command::UpsertEvals { evals: Vec::new() }).await.expect("committed").index();
                let visible = server.state().last_index();
                if visible < index {
                    stale.push((index, visible));
                }
            }
            stale
        });
    }
    let mut stale = Vec::new();
    while let Some(joined) = writers.join_next().await {
        stale.extend(joined.unwrap());
    }
    assert!(stale.is_empty(), "acknowledged writes not yet in state() (index, visible): {stale:?}");
    server.shutdown().await;
}
