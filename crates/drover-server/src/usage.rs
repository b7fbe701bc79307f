//! Node and task usage: the samples agents send every 10 s, the latest per
//! node kept in memory on the server the agent is connected to, and exposed
//! at `/v1/metrics` in the Prometheus format (Prometheus keeps the long
//! history); the last 24 h a point a minute and the last hour every 10 s,
//! kept beside it in a [`UsageRing`] per node (the closed blocks on disk,
//! [`UsageBlocks`]) and served at `/v1/node/{node}/usage`.
//!
//! Each server exposes the nodes whose agents are connected to it; scrape
//! every server (as with any set of Prometheus targets) to see them all.

use drover_proto::paths;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

use drover_metrics::{NodeLabels, NodeSample};
use drover_proto::api::UsagePoint;
use drover_types::usage::UsageSummary;
use drover_types::{Node, NodeId, Timestamp};

use crate::usage_blocks::UsageBlocks;
use crate::usage_history::{Step, UsageRing};

use crate::server::Server;
use crate::sessions::AgentSession;

/// Per node, the latest usage sample and the last 24 h.
#[derive(Debug, Default)]
pub(crate) struct UsageTable {
    latest: Mutex<HashMap<NodeId, NodeSample>>,
    history: Mutex<History>,
}

/// Every node's ring, and the store of their closed blocks.
#[derive(Debug, Default)]
pub(crate) struct History {
    rings: HashMap<NodeId, UsageRing>,
    blocks: UsageBlocks,
}

/// How often the closed blocks waiting in memory are written to disk.
const BLOCKS_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the usage history is written to the data directory (and
/// once more on a clean shutdown).
const HISTORY_SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl UsageTable {
    /// The table with the history saved in `data_dir` (docs/nodes.md,
    /// "Usage history"); a damaged file is moved aside and reported.
    pub(crate) fn open(data_dir: &std::path::Path) -> UsageTable {
        let (mut blocks, error) = UsageBlocks::open(data_dir);
        if let Some(error) = error {
            tracing::warn!(%error, "the usage history's closed blocks are kept in memory");
        }
        let loaded = crate::usage_history::load_history_file(data_dir, Timestamp::now().as_millis(), &mut blocks);
        if let Some((reason, moved)) = &loaded.quarantined {
            tracing::warn!(
                %reason,
                moved_to = %moved.display(),
                "the saved usage history does not read: starting without it; the file was moved aside for \
                 inspection and may be deleted"
            );
        } else if !loaded.rings.is_empty() {
            tracing::info!(nodes = loaded.rings.len(), "usage history loaded");
        }
        let rings = loaded.rings.into_iter().map(|(id, ring)| (NodeId::new(id), ring)).collect();
        UsageTable { latest: Mutex::default(), history: Mutex::new(History { rings, blocks }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, NodeSample>> {
        self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Server {
    /// Records a sample (stamped with the server's clock: agents' clocks
    /// may be off).
    pub(crate) fn on_agent_metrics(&self, session: &AgentSession, mut sample: NodeSample) {
        sample.time_ms = Timestamp::now().as_millis();
        {
            let mut history = self.inner.usage.history();
            let History { rings, blocks } = &mut *history;
            rings.entry(session.node_id.clone()).or_default().record(&sample, session.node_id.as_str(), blocks);
        }
        self.inner.usage.lock().insert(session.node_id.clone(), sample);
    }

    /// Writes the usage history to the data directory (encoded under the
    /// lock, compressed and written outside it).
    pub(crate) async fn save_usage_history(&self) {
        let file = {
            let history = self.inner.usage.history();
            crate::usage_history::encode_history(
                history.rings.iter().map(|(id, ring)| (id.as_str(), ring)),
                &history.blocks,
                Timestamp::now().as_millis(),
            )
        };
        let dir = self.inner.config.data_dir.clone();
        let written = tokio::task::spawn_blocking(move || crate::usage_history::save_history_file(&dir, &file)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot save the usage history; trying again in 5 minutes"),
            Err(error) => tracing::warn!(%error, "saving the usage history failed"),
        }
    }

    /// The usage this server kept of a node from `since_ms` on, a point a
    /// `step`, oldest first (empty when its agent never sent here).
    pub fn node_usage_history(&self, node_id: &NodeId, since_ms: i64, step: Step) -> Vec<UsagePoint> {
        let history = self.inner.usage.history();
        let points =
            history.rings.get(node_id).map(|ring| ring.points_every(step, since_ms, node_id.as_str(), &history.blocks));
        points.unwrap_or_default()
    }

    /// Writes the usage history's closed blocks waiting in memory to disk
    /// (the write outside the lock).
    pub(crate) async fn flush_usage_blocks(&self) {
        let flush = self.inner.usage.history().blocks.flush();
        let (flush, written) = match tokio::task::spawn_blocking(move || {
            let written = flush.write();
            (flush, written)
        })
        .await
        {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!(%error, "writing the usage history's blocks failed");
                return;
            }
        };
        if let Err(error) = &written {
            tracing::warn!(%error, "cannot write the usage history's blocks; they stay in memory until the next try");
        }
        self.inner.usage.history().blocks.flushed(&flush, &written);
    }

    /// The usage every server kept of a node from `since_ms` on, merged: an
    /// agent that moved between servers left part of its day on each. Where
    /// two servers hold the same point, the one with more figures wins. A
    /// server that does not answer leaves its part out.
    pub async fn node_usage_history_anywhere(&self, node_id: &NodeId, since_ms: i64, step: Step) -> Vec<UsagePoint> {
        let path = format!(
            "{}?since_ms={since_ms}&step_secs={}",
            paths::fill(paths::INTERNAL_NODE_USAGE_HISTORY, &[node_id.as_str()]),
            step.millis() / 1000
        );
        let asks = self.peers().into_iter().map(|member| {
            let path = path.clone();
            async move { self.get_from_peer::<Vec<UsagePoint>>(&member.address, &path).await }
        });
        let mut parts = vec![self.node_usage_history(node_id, since_ms, step)];
        parts.extend(futures_util::future::join_all(asks).await.into_iter().flatten());
        merge_histories(parts)
    }

    /// The latest usage of a node whose agent is connected to this server.
    pub fn node_usage(&self, node_id: &NodeId) -> Option<NodeSample> {
        self.inner.usage.lock().get(node_id).cloned()
    }

    /// The latest usage of a node, from whichever server its agent is
    /// connected to.
    pub async fn node_usage_anywhere(&self, node_id: &NodeId) -> Option<NodeSample> {
        if let Some(sample) = self.node_usage(node_id) {
            return Some(sample);
        }
        let path = paths::fill(paths::INTERNAL_NODE_USAGE, &[node_id.as_str()]);
        let asks = self.peers().into_iter().map(|member| {
            let path = path.clone();
            async move { self.get_from_peer::<Option<NodeSample>>(&member.address, &path).await }
        });
        futures_util::future::join_all(asks).await.into_iter().find_map(|answer| answer.ok().flatten())
    }

    /// The latest usage of every node whose agent is connected here.
    pub fn local_usage(&self) -> Vec<(NodeId, NodeSample)> {
        let usage = self.inner.usage.lock();
        usage.iter().map(|(node_id, sample)| (node_id.clone(), sample.clone())).collect()
    }

    /// The latest usage of every node, from every server (a server that
    /// does not answer leaves its nodes out).
    pub async fn fleet_usage(&self) -> Vec<(NodeId, NodeSample)> {
        self.fleet_of(self.local_usage(), paths::INTERNAL_USAGE, |sample| sample.time_ms).await
    }

    /// The three figures of every node connected here.
    pub fn local_usage_summary(&self) -> Vec<(NodeId, UsageSummary)> {
        let usage = self.inner.usage.lock();
        usage.iter().map(|(node_id, sample)| (node_id.clone(), sample.summary())).collect()
    }

    /// The three figures of every node, from every server (as
    /// [`Server::fleet_usage`], a fraction of the bytes).
    pub async fn fleet_usage_summary(&self) -> Vec<(NodeId, UsageSummary)> {
        self.fleet_of(self.local_usage_summary(), paths::INTERNAL_USAGE_SUMMARY, |summary| summary.time_ms).await
    }

    /// `local` merged with what every other server answers at `path` for
    /// its nodes, the newest of each node kept.
    async fn fleet_of<T: serde::de::DeserializeOwned>(
        &self,
        local: Vec<(NodeId, T)>,
        path: &str,
        time_ms: fn(&T) -> i64,
    ) -> Vec<(NodeId, T)> {
        let mut all: HashMap<NodeId, T> = local.into_iter().collect();
        let asks = self
            .peers()
            .into_iter()
            .map(|member| async move { self.get_from_peer::<Vec<(NodeId, T)>>(&member.address, path).await });
        // A server that does not answer leaves its nodes out.
        for samples in futures_util::future::join_all(asks).await.into_iter().flatten() {
            for (node_id, sample) in samples {
                let newer = all.get(&node_id).is_none_or(|known| time_ms(known) < time_ms(&sample));
                if newer {
                    all.insert(node_id, sample);
                }
            }
        }
        all.into_iter().collect()
    }

    /// `/v1/metrics`: the usage of the nodes connected to this server and
    /// their agents' dropped log lines, in the OpenMetrics text format.
    pub async fn prometheus_metrics(&self, visible: &(dyn Fn(&Node) -> bool + Sync)) -> String {
        let state = self.state();
        let connected_ids = self.sessions().connected_nodes().await;
        let connected: Vec<_> =
            connected_ids.iter().filter_map(|node_id| state.node(node_id)).filter(|node| visible(node)).collect();
        let samples: Vec<(NodeLabels, NodeSample)> = {
            let usage = self.inner.usage.lock();
            connected
                .iter()
                .filter_map(|node| {
                    let sample = usage.get(&node.id)?.clone();
                    Some((labels_of(node), sample))
                })
                .collect()
        };
        let mut text = drover_metrics::render_prometheus(samples.iter().map(|(labels, sample)| (labels, sample)));
        if text.ends_with("# EOF\n") {
            text.truncate(text.len() - "# EOF\n".len());
        }
        text.push_str("# HELP drover_node_log_dropped_lines Log lines an agent dropped because its spool was full or its records were damaged on disk.\n");
        text.push_str("# TYPE drover_node_log_dropped_lines counter\n");
        for node in &connected {
            let labels = labels_of(node);
            let _ = writeln!(
                text,
                "drover_node_log_dropped_lines_total{{node=\"{}\",hostgroup=\"{}\",environment=\"{}\"}} {}",
                escape(&labels.node),
                escape(&labels.hostgroup),
                escape(&labels.environment),
                node.log_dropped_lines
            );
        }
        text.push_str(&self.log_sink_metrics());
        text.push_str("# EOF\n");
        text
    }
}

/// One list of points from several, by time, oldest first; of two points
/// for one time the one with more figures is kept.
fn merge_histories(parts: Vec<Vec<UsagePoint>>) -> Vec<UsagePoint> {
    let figures = |point: &UsagePoint| {
        [point.cpu_percent.is_some(), point.memory_percent.is_some(), point.disk_percent.is_some()]
            .into_iter()
            .chain([point.net_rx_bytes_per_sec.is_some(), point.net_tx_bytes_per_sec.is_some()])
            .filter(|known| *known)
            .count()
    };
    let mut by_minute: std::collections::BTreeMap<i64, UsagePoint> = std::collections::BTreeMap::new();
    for point in parts.into_iter().flatten() {
        match by_minute.get(&point.time_ms) {
            Some(known) if figures(known) >= figures(&point) => {}
            _ => {
                by_minute.insert(point.time_ms, point);
            }
        }
    }
    by_minute.into_values().collect()
}

fn labels_of(node: &drover_types::Node) -> NodeLabels {
    NodeLabels { node: node.name.clone(), hostgroup: node.hostgroup.clone(), environment: node.environment.clone() }
}

/// A label value in the exposition format.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Writes the closed blocks every [`BLOCKS_FLUSH_EVERY`] and saves the
/// usage history every [`HISTORY_SAVE_EVERY`] until shutdown (which saves
/// it once more).
pub(crate) fn spawn_history_saver(server: Server) {
    tokio::spawn(async move {
        let mut save = tokio::time::interval(HISTORY_SAVE_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        save.tick().await;
        let mut flush = tokio::time::interval(BLOCKS_FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = server.inner.shutdown.cancelled() => return,
                _ = save.tick() => server.save_usage_history().await,
                _ = flush.tick() => server.flush_usage_blocks().await,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_of_several_servers_merge_by_minute() {
        let point = |minute: i64, cpu: Option<f32>, memory: Option<f32>| UsagePoint {
            time_ms: minute * 60_000,
            cpu_percent: cpu,
            memory_percent: memory,
            ..UsagePoint::default()
        };
        let here = vec![point(3, Some(1.0), None), point(4, Some(2.0), None)];
        let there = vec![point(1, Some(9.0), None), point(4, Some(8.0), Some(50.0))];
        let merged = merge_histories(vec![here, there, Vec::new()]);
        let minutes: Vec<_> = merged.iter().map(|point| (point.time_ms / 60_000, point.cpu_percent)).collect();
        assert_eq!(minutes, vec![(1, Some(9.0)), (3, Some(1.0)), (4, Some(8.0))]);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
