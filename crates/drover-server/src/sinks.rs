//! The applied site's log sinks, run on every server for the lines it
//! indexes itself (each server indexes its own agents' lines, so each
//! sends those): started, changed and stopped as `drover apply` changes
//! the site, fed from the ingest loop's committed records
//! (`logs::LogService::committed`), reading the index again through
//! [`Server::sink_backlog`]. The clients, batching and retries are
//! `drover-sinks`'.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_react::LogSink;
use drover_sinks::SinkCounters;
use drover_sinks::runner::{Backlog, RunnerSettings};
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// Commits buffered for the sinks before a slow one misses some (and
/// reads them from the index instead).
pub(crate) const COMMITTED_BUFFER: usize = 1024;
/// A catch-up reads this much before the resume time, besides the
/// servers' `--log-max-skew`.
const LOOKBACK_MARGIN: Duration = Duration::from_secs(600);
/// How long one request to an engine may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The figures of the sinks running on this server, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunningSinks(Arc<Mutex<Vec<NamedCounters>>>);

/// A sink's name and figures.
type NamedCounters = (String, Arc<SinkCounters>);

impl RunningSinks {
    fn set(&self, sinks: Vec<NamedCounters>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = sinks;
    }

    fn get(&self) -> Vec<NamedCounters> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl Server {
    /// The log sinks' figures in the OpenMetrics text format (without
    /// `# EOF`), for `/v1/metrics`; empty without sinks.
    pub fn log_sink_metrics(&self) -> String {
        drover_sinks::render_metrics(&self.inner.logs.sinks.get())
    }
}

/// Runs the applied site's sinks until the server shuts down.
pub(crate) fn spawn_log_sinks(server: Server) {
    tokio::spawn(async move {
        let shutdown = server.shutdown_token().clone();
        let mut states = server.watch_state();
        let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot make the HTTP client of log sinks; they do not run");
                return;
            }
        };
        let mut running: BTreeMap<String, (LogSink, CancellationToken, Arc<SinkCounters>)> = BTreeMap::new();
        loop {
            let wanted: BTreeMap<String, LogSink> = {
                let state = states.borrow_and_update();
                state.react().site.as_ref().map(|doc| doc.site.log_sinks.clone()).unwrap_or_default()
            };
            let changed = running.len() != wanted.len()
                || running.iter().any(|(name, (sink, _, _))| wanted.get(name) != Some(sink));
            if changed {
                running.retain(|name, (sink, stop, _)| {
                    let keep = wanted.get(name) == Some(sink);
                    if !keep {
                        stop.cancel();
                    }
                    keep
                });
                for (name, sink) in wanted {
                    if running.contains_key(&name) {
                        continue;
                    }
                    let stop = shutdown.child_token();
                    let counters = Arc::new(SinkCounters::default());
                    start(&server, sink.clone(), client.clone(), Arc::clone(&counters), stop.clone());
                    running.insert(name, (sink, stop, counters));
                }
                server
                    .inner
                    .logs
                    .sinks
                    .set(running.iter().map(|(name, (_, _, counters))| (name.clone(), Arc::clone(counters))).collect());
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = states.changed() => if changed.is_err() { return },
            }
        }
    });
}

fn start(
    server: &Server,
    sink: LogSink,
    client: reqwest::Client,
    counters: Arc<SinkCounters>,
    stop: CancellationToken,
) {
    tracing::info!(sink = %sink.name, url = %sink.url, "log sink started");
    let backlog_server = server.clone();
    let backlog: Backlog = Arc::new(move |since, until| {
        let server = backlog_server.clone();
        Box::pin(async move { server.sink_backlog(since, until).await.map_err(|error| error.to_string()) })
    });
    let settings = RunnerSettings {
        checkpoint_dir: server.inner.logs.sink_dir.clone(),
        lookback: server.inner.logs.max_skew() + LOOKBACK_MARGIN,
    };
    let committed = server.inner.logs.committed.subscribe();
    tokio::spawn(drover_sinks::runner::run(sink, client, committed, backlog, settings, counters, stop));
}
