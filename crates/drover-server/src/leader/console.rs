//! Console polling: the leader runs each provider's `console` command for
//! the provider's nodes every `console_interval` — down nodes too, which
//! is the point: a machine that panicked has no agent to ship its logs —
//! and indexes the new lines as source `console` of that node.
//!
//! A console shows a window of recent output, so each poll keeps only the
//! lines after its overlap with the previous output
//! (`drover_collect::console::new_lines`). A new leader starts from the
//! console lines already indexed for the node, so it does not index (and
//! trigger hammers on) the same window again.

use std::sync::Arc;
use std::time::Duration;

use drover_collect::console::{CommandPoller, CommandPollerConfig};
use drover_proto::api::{LogPage, LogQuery};
use drover_react::{ProviderOperation, Site};
use drover_types::LogRecord;
use drover_types::Node;
use tokio_util::sync::CancellationToken;

use crate::logs::now_nanos;
use crate::server::Server;

/// Lines of a console compared between polls.
const WINDOW: usize = 10_000;

/// Starts one poller per node whose provider has a `console` command; they
/// stop with `token` (a new site, or the end of leadership). Nodes that
/// register later are picked up by the next site apply or leadership.
pub(super) fn start(server: &Server, site: &Site, token: &CancellationToken) {
    let state = server.state();
    // A retired node's machine is gone or leaving (deleted): no console.
    for node in state.nodes().filter(|node| node.retired.is_none()) {
        let provider = site.provider_for(node.meta.get("provider").map(String::as_str));
        let Some(provider) = provider else { continue };
        let Some(template) = provider.command(ProviderOperation::Console) else { continue };
        let command = super::actions::render(template, node);
        let interval = provider.console_interval.get().max(Duration::from_millis(100));
        let timeout = provider.timeout.get();
        tokio::spawn(poll(server.clone(), Arc::clone(node), command, interval, timeout, token.clone()));
    }
}

async fn poll(
    server: Server,
    node: Arc<Node>,
    command: String,
    interval: Duration,
    timeout: Duration,
    token: CancellationToken,
) {
    // The same bounded poll as an agent's console source: the newest
    // lines of the output are kept, however long it is.
    let mut config = CommandPollerConfig::new(&node.name, "/bin/sh", vec!["-c".to_owned(), command], interval);
    config.timeout = timeout;
    config.max_lines = WINDOW;
    let console = CommandPoller::new(config);
    let mut previous = indexed_console(&server, &node.name).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let origin = format!("console/{}", node.id);
    let mut seq = u64::try_from(now_nanos()).unwrap_or_default();
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let current = match console.poll().await {
            Ok(lines) => lines,
            Err(error) => {
                tracing::debug!(node = %node.name, %error, "console poll failed");
                continue;
            }
        };
        let fresh = drover_collect::console::new_lines(&previous, &current);
        if !fresh.is_empty() {
            let received = now_nanos();
            let (time, max_skew) = (server.log_line_time(received, Some(&node)), server.log_max_skew_nanos());
            let records: Vec<LogRecord> = fresh
                .iter()
                .flat_map(|text| drover_collect::split_overlong(text.clone(), drover_collect::MAX_LINE_BYTES))
                .map(|text| {
                    seq = seq.max(u64::try_from(received).unwrap_or_default()) + 1;
                    let mut record =
                        drover_logs::record::from_line(&origin, seq, &node.name, "console", "console", &text, time);
                    drover_logs::record::settle_event_time(&mut record, max_skew);
                    record.hostgroup = Some(node.hostgroup.clone()).filter(|text| !text.is_empty());
                    record.environment = Some(node.environment.clone()).filter(|text| !text.is_empty());
                    record
                })
                .collect();
            if let Err(error) = server.ingest_local(records).await {
                tracing::warn!(node = %node.name, %error, "cannot index console lines");
                continue;
            }
        }
        previous = current;
    }
}

/// The newest console lines already indexed for a node, oldest first.
async fn indexed_console(server: &Server, node: &str) -> Vec<String> {
    let query = LogQuery { q: format!("source:console node:\"{node}\""), ..LogQuery::default() };
    let page = LogPage { limit: Some(WINDOW), ..LogPage::default() };
    match server.search_logs(query, page).await {
        Ok(found) => found.records.into_iter().rev().map(|record| record.message).collect(),
        Err(error) => {
            tracing::debug!(%node, %error, "cannot read the indexed console");
            Vec::new()
        }
    }
}
