//! drover's own metrics on a server: what its Raft node, API, scheduler,
//! agent sessions, log ingest, `drover exec` and hammers have done, for
//! `GET /v1/metrics` (docs/metrics.md, "drover's own metrics").
//!
//! Every series is this server's own, so they are written in the
//! per-server scope only (a fleet scrape through a load balancer would mix
//! servers under one `instance`). Two kinds of figures:
//!
//! - read at scrape time: the Raft figures from openraft's metrics watch,
//!   the number of agent sessions;
//! - counted as the work happens: typed [`Counter`]s and [`Histogram`]s
//!   (atomics, no lock, no name looked up), held in [`SelfMetrics`] and
//!   reached with [`Server::self_metrics`]. The places that count call one
//!   method each (`leader::evals`, `leader::actions`, `logs`, `exec`,
//!   `sessions`; the HTTP middleware is `drover-api`'s `http_metrics`).
//!
//! The HTTP series are labelled with the route template axum matched
//! (`/v1/job/{job_id}`), never the raw path, so their number is bounded by
//! the routes of `drover_proto::paths`: a template not listed there, or a
//! request no route matched, is counted under `route="other"`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use drover_metrics::{Counter, Histogram, Kind, LATENCY_BUCKETS, OwnText, SLOW_BUCKETS};
use drover_proto::api::ExecStatus;
use drover_proto::paths;

use crate::server::Server;

/// Everything a server counts about its own work; see the module docs.
#[derive(Debug)]
pub struct SelfMetrics {
    /// API requests, by route, method and status.
    pub http: HttpMetrics,
    pub(crate) scheduler: SchedulerMetrics,
    pub(crate) logs: LogIngestMetrics,
    pub(crate) exec: ExecMetrics,
    pub(crate) hammers: HammerMetrics,
    /// Heartbeats received from agents connected to this server.
    pub(crate) heartbeats: Counter,
    /// New leaderships this server has seen (see [`spawn_leader_change_counter`]).
    raft_leader_changes: Counter,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self {
            http: HttpMetrics::new(paths::ALL.iter().chain(paths::UI_ALL).copied()),
            scheduler: SchedulerMetrics::default(),
            logs: LogIngestMetrics::default(),
            exec: ExecMetrics::default(),
            hammers: HammerMetrics::default(),
            heartbeats: Counter::default(),
            raft_leader_changes: Counter::default(),
        }
    }
}

/// The scheduler's work, counted on the leader that did it.
#[derive(Debug)]
pub(crate) struct SchedulerMetrics {
    evaluations: Counter,
    evaluations_failed: Counter,
    evaluation_duration: Histogram,
    /// Plans by what the plan applier's check found, in [`PLAN_RESULTS`] order.
    plans: [Counter; 3],
    placements: Counter,
}

/// The `result` label of `drover_scheduler_plans_total`.
const PLAN_RESULTS: [&str; 3] = ["accepted", "partly_rejected", "job_changed"];

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self {
            evaluations: Counter::default(),
            evaluations_failed: Counter::default(),
            evaluation_duration: Histogram::new(SLOW_BUCKETS),
            plans: Default::default(),
            placements: Counter::default(),
        }
    }
}

impl SchedulerMetrics {
    /// An evaluation was done with (committed, failed or found closed),
    /// `elapsed` after a worker took it.
    pub(crate) fn evaluated(&self, elapsed: Duration) {
        self.evaluations.increment();
        self.evaluation_duration.observe(elapsed);
    }

    /// An evaluation was marked failed: no plan could be committed.
    pub(crate) fn evaluation_failed(&self) {
        self.evaluations_failed.increment();
    }

    /// The plan applier checked a plan against the latest state.
    pub(crate) fn plan_checked(&self, job_changed: bool, num_rejected_nodes: usize) {
        let result = match (job_changed, num_rejected_nodes) {
            (true, _) => 2,
            (false, 0) => 0,
            (false, _) => 1,
        };
        self.plans[result].increment();
    }

    /// A plan was committed with `num_placed` new allocations.
    pub(crate) fn plan_committed(&self, num_placed: usize) {
        self.placements.add(num_placed as u64);
    }
}

/// Log lines this server indexed.
#[derive(Debug)]
pub(crate) struct LogIngestMetrics {
    lines: Counter,
    bytes: Counter,
    commit_duration: Histogram,
}

impl Default for LogIngestMetrics {
    fn default() -> Self {
        Self { lines: Counter::default(), bytes: Counter::default(), commit_duration: Histogram::new(LATENCY_BUCKETS) }
    }
}

impl LogIngestMetrics {
    /// A commit of `num_lines` lines (`num_bytes` of text) took `elapsed`;
    /// lines count only when `durable`.
    pub(crate) fn committed(&self, durable: bool, num_lines: usize, num_bytes: usize, elapsed: Duration) {
        self.commit_duration.observe(elapsed);
        if durable {
            self.lines.add(num_lines as u64);
            self.bytes.add(num_bytes as u64);
        }
    }
}

/// `drover exec` results of the nodes whose agents are connected here.
#[derive(Debug, Default)]
pub(crate) struct ExecMetrics {
    /// By status, in [`EXEC_STATUSES`] order.
    results: [Counter; 4],
}

/// The `status` label of `drover_exec_commands_total` (a node the caller
/// may not run commands on is not asked, so never `Denied`).
const EXEC_STATUSES: [ExecStatus; 4] =
    [ExecStatus::Success, ExecStatus::Failure, ExecStatus::Timeout, ExecStatus::Unreachable];

impl ExecMetrics {
    /// One node's result of a command run through its agent.
    pub(crate) fn finished(&self, status: ExecStatus) {
        if let Some(index) = EXEC_STATUSES.iter().position(|known| *known == status) {
            self.results[index].increment();
        }
    }
}

/// Hammer runs this server performed (as leader).
#[derive(Debug, Default)]
pub(crate) struct HammerMetrics {
    /// In [`HAMMER_OUTCOMES`] order.
    runs: [Counter; 3],
}

/// The `outcome` label of `drover_hammer_runs_total`.
const HAMMER_OUTCOMES: [&str; 3] = ["succeeded", "failed", "dry_run"];

impl HammerMetrics {
    /// A run acted and `succeeded` or not.
    pub(crate) fn finished(&self, succeeded: bool) {
        self.runs[usize::from(!succeeded)].increment();
    }

    /// A dry-run hammer recorded what it would have done.
    pub(crate) fn dry_run(&self) {
        self.runs[2].increment();
    }
}

/// The `method` label of the HTTP series; the last one stands for any other.
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"];

/// The statuses counted one by one, ascending; any other is `status="other"`.
const STATUSES: [u16; 34] = [
    101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 410, 411, 413, 414,
    415, 416, 421, 422, 429, 431, 500, 501, 502, 503, 504,
];

/// The `route` label of requests whose route is not in `drover_proto::paths`.
const OTHER_ROUTE: &str = "other";

/// API requests, by route template, method and status, and their
/// durations by route.
///
/// The routes are fixed when the server starts (those of
/// `drover_proto::paths` and [`OTHER_ROUTE`]); a route's counters are
/// allocated on its first request.
#[derive(Debug)]
pub struct HttpMetrics {
    /// Route templates by position; the last one is [`OTHER_ROUTE`].
    routes: Vec<&'static str>,
    positions: HashMap<&'static str, usize>,
    slots: Box<[OnceLock<RouteSlot>]>,
}

/// One route's figures.
#[derive(Debug)]
struct RouteSlot {
    /// By `method * (STATUSES.len() + 1) + status`.
    requests: Box<[Counter]>,
    duration: Histogram,
}

impl RouteSlot {
    fn new() -> Self {
        let requests = (0..METHODS.len() * (STATUSES.len() + 1)).map(|_| Counter::default()).collect();
        Self { requests, duration: Histogram::new(LATENCY_BUCKETS) }
    }
}

impl HttpMetrics {
    fn new(templates: impl Iterator<Item = &'static str>) -> Self {
        let mut routes: Vec<&'static str> = Vec::new();
        let mut positions = HashMap::new();
        for template in templates.chain([OTHER_ROUTE]) {
            positions.entry(template).or_insert_with(|| {
                routes.push(template);
                routes.len() - 1
            });
        }
        let slots = routes.iter().map(|_| OnceLock::new()).collect();
        Self { routes, positions, slots }
    }

    /// Counts one answered request: `route` is the template the router
    /// matched (`None`: no route matched), `elapsed` the time until the
    /// answer's head was ready.
    pub fn record(&self, route: Option<&str>, method: &str, status: u16, elapsed: Duration) {
        let other = self.routes.len() - 1;
        let position = route.and_then(|route| self.positions.get(route).copied()).unwrap_or(other);
        let slot = self.slots[position].get_or_init(RouteSlot::new);
        let method = METHODS.iter().position(|known| *known == method).unwrap_or(METHODS.len() - 1);
        let status = STATUSES.binary_search(&status).unwrap_or(STATUSES.len());
        slot.requests[method * (STATUSES.len() + 1) + status].increment();
        slot.duration.observe(elapsed);
    }

    fn write(&self, text: &mut OwnText) {
        const REQUESTS: &str = "drover_http_requests";
        const DURATION: &str = "drover_http_request_duration_seconds";
        text.family(REQUESTS, Kind::Counter, "API requests answered, by route template, method and status.");
        for (route, slot) in self.used_routes() {
            for (index, requests) in slot.requests.iter().enumerate() {
                let count = requests.get();
                if count == 0 {
                    continue;
                }
                let method = METHODS[index / (STATUSES.len() + 1)];
                let status =
                    STATUSES.get(index % (STATUSES.len() + 1)).map_or_else(|| "other".to_owned(), u16::to_string);
                text.counter(REQUESTS, &[("route", route), ("method", method), ("status", &status)], count);
            }
        }
        text.family(
            DURATION,
            Kind::Histogram,
            "Time from a request's arrival to its answer's head (a streamed body is not waited for), by route template.",
        );
        for (route, slot) in self.used_routes() {
            text.histogram(DURATION, &[("route", route)], &slot.duration);
        }
    }

    fn used_routes(&self) -> impl Iterator<Item = (&'static str, &RouteSlot)> {
        self.routes.iter().zip(self.slots.iter()).filter_map(|(route, slot)| slot.get().map(|slot| (*route, slot)))
    }
}

impl Server {
    /// What this server counts about its own work.
    pub fn self_metrics(&self) -> &SelfMetrics {
        &self.inner.self_metrics
    }

    /// The same figures, shared (for the API's request-counting layer).
    pub fn self_metrics_shared(&self) -> Arc<SelfMetrics> {
        Arc::clone(&self.inner.self_metrics)
    }

    /// drover's own series of this server in the OpenMetrics text format
    /// (without `# EOF`), for the per-server scope of `/v1/metrics`.
    pub(crate) async fn self_metrics_text(&self) -> String {
        let num_sessions = self.inner.sessions.num_connected().await;
        let metrics = self.self_metrics();
        let raft = self.inner.raft.metrics().borrow_watched().clone();
        let index_of = |log_id: Option<&drover_state::raft_types::LogId>| log_id.map_or(0, |log_id| log_id.index);
        let commit_index = index_of(raft.local_committed.as_ref());
        let applied_index = index_of(raft.last_applied.as_ref());

        let mut text = OwnText::new();
        text.single_gauge("drover_raft_term", "This server's current Raft term.", raft.current_term);
        text.single_gauge(
            "drover_raft_commit_index",
            "The last Raft log index this server knows committed.",
            commit_index,
        );
        text.single_gauge(
            "drover_raft_applied_index",
            "The last Raft log index applied to this server's state.",
            applied_index,
        );
        text.single_gauge(
            "drover_raft_last_log_index",
            "The last Raft log index in this server's log.",
            raft.last_log_index.unwrap_or(0),
        );
        text.single_gauge(
            "drover_raft_apply_lag",
            "Committed Raft entries this server has not applied yet.",
            commit_index.saturating_sub(applied_index),
        );
        text.single_gauge(
            "drover_raft_is_leader",
            "1 when this server is the Raft leader, else 0.",
            u64::from(raft.state == ServerState::Leader),
        );
        text.single_counter(
            "drover_raft_leader_changes",
            "New Raft leaderships (a term with a known leader) this server has seen, the first one included.",
            metrics.raft_leader_changes.get(),
        );

        metrics.http.write(&mut text);

        let scheduler = &metrics.scheduler;
        text.single_counter(
            "drover_scheduler_evaluations",
            "Evaluations the scheduler was done with on this server (as leader).",
            scheduler.evaluations.get(),
        );
        text.single_counter(
            "drover_scheduler_evaluations_failed",
            "Evaluations marked failed because no plan could be committed.",
            scheduler.evaluations_failed.get(),
        );
        const EVALUATION_DURATION: &str = "drover_scheduler_evaluation_duration_seconds";
        text.family(
            EVALUATION_DURATION,
            Kind::Histogram,
            "Time from a worker taking an evaluation to the evaluation being done with.",
        );
        text.histogram(EVALUATION_DURATION, &[], &scheduler.evaluation_duration);
        text.family(
            "drover_scheduler_plans",
            Kind::Counter,
            "Plans checked against the latest state before commit, by result.",
        );
        for (result, plans) in PLAN_RESULTS.iter().zip(&scheduler.plans) {
            text.counter("drover_scheduler_plans", &[("result", result)], plans.get());
        }
        text.single_counter(
            "drover_scheduler_placements",
            "Allocations placed by committed plans.",
            scheduler.placements.get(),
        );

        text.single_gauge(
            "drover_agent_sessions",
            "Agents connected to this server.",
            u64::try_from(num_sessions).unwrap_or(u64::MAX),
        );
        text.single_counter(
            "drover_agent_heartbeats",
            "Heartbeats received from agents connected to this server.",
            metrics.heartbeats.get(),
        );

        text.single_counter("drover_log_ingested_lines", "Log lines indexed by this server.", metrics.logs.lines.get());
        text.single_counter(
            "drover_log_ingested_bytes",
            "Bytes of log line text indexed by this server.",
            metrics.logs.bytes.get(),
        );
        const COMMIT_DURATION: &str = "drover_log_commit_duration_seconds";
        text.family(COMMIT_DURATION, Kind::Histogram, "Time one commit of log lines to the index took.");
        text.histogram(COMMIT_DURATION, &[], &metrics.logs.commit_duration);

        text.family(
            "drover_exec_commands",
            Kind::Counter,
            "drover exec commands run on nodes whose agents are connected to this server, by result.",
        );
        for (status, results) in EXEC_STATUSES.iter().zip(&metrics.exec.results) {
            text.counter("drover_exec_commands", &[("status", status.key())], results.get());
        }

        text.family("drover_hammer_runs", Kind::Counter, "Hammer runs this server performed, by outcome.");
        for (outcome, runs) in HAMMER_OUTCOMES.iter().zip(&metrics.hammers.runs) {
            text.counter("drover_hammer_runs", &[("outcome", outcome)], runs.get());
        }
        text.into_text()
    }
}

/// Counts the leaderships this server sees begin: each new (term, leader)
/// in openraft's metrics, the first one included.
pub(crate) fn spawn_leader_change_counter(server: Server) {
    tokio::spawn(async move {
        let mut raft_metrics = server.raft().metrics();
        let shutdown = server.shutdown_token().clone();
        let mut last_leadership = None;
        loop {
            let leadership = {
                let metrics = raft_metrics.borrow_and_update();
                metrics.current_leader.map(|leader| (metrics.current_term, leader))
            };
            if leadership.is_some() && leadership != last_leadership {
                server.self_metrics().raft_leader_changes.increment();
                last_leadership = leadership;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = raft_metrics.changed() => if changed.is_err() { return },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_text(http: &HttpMetrics) -> String {
        let mut text = OwnText::new();
        http.write(&mut text);
        text.into_text()
    }

    #[test]
    fn requests_are_counted_by_template_method_and_status_and_unknown_ones_as_other() {
        let http = HttpMetrics::new(["/v1/jobs", "/v1/job/{job_id}"].into_iter());
        let millis = Duration::from_millis;
        http.record(Some("/v1/job/{job_id}"), "GET", 404, millis(2));
        http.record(Some("/v1/job/{job_id}"), "GET", 404, millis(3));
        http.record(Some("/v1/job/{job_id}"), "DELETE", 200, millis(30));
        http.record(None, "GET", 404, millis(1));
        http.record(Some("/v1/not/listed"), "BREW", 418, millis(1));

        let text = http_text(&http);
        let requests: Vec<&str> = text.lines().filter(|line| line.starts_with("drover_http_requests_total")).collect();
        assert_eq!(
            requests,
            [
                r#"drover_http_requests_total{route="/v1/job/{job_id}",method="GET",status="404"} 2"#,
                r#"drover_http_requests_total{route="/v1/job/{job_id}",method="DELETE",status="200"} 1"#,
                r#"drover_http_requests_total{route="other",method="GET",status="404"} 1"#,
                r#"drover_http_requests_total{route="other",method="other",status="other"} 1"#,
            ]
        );
        assert!(text.contains("drover_http_request_duration_seconds_count{route=\"/v1/job/{job_id}\"} 3\n"), "{text}");
        assert!(
            text.contains("drover_http_request_duration_seconds_bucket{route=\"/v1/job/{job_id}\",le=\"0.0025\"} 1\n"),
            "{text}"
        );
        // A route nobody asked for has no series.
        assert!(!text.contains("route=\"/v1/jobs\""), "{text}");
    }

    #[test]
    fn every_listed_route_has_a_slot_and_the_statuses_are_sorted_for_the_search() {
        let http = SelfMetrics::default().http;
        assert!(STATUSES.windows(2).all(|pair| pair[0] < pair[1]));
        for route in paths::ALL.iter().chain(paths::UI_ALL) {
            assert!(http.positions.contains_key(route), "{route} has no slot");
        }
        assert_eq!(http.routes.last(), Some(&OTHER_ROUTE));
    }

    #[test]
    fn scheduler_plans_exec_results_and_hammer_runs_land_in_their_label() {
        let metrics = SelfMetrics::default();
        metrics.scheduler.plan_checked(false, 0);
        metrics.scheduler.plan_checked(false, 2);
        metrics.scheduler.plan_checked(true, 2);
        metrics.scheduler.plan_checked(true, 0);
        assert_eq!(metrics.scheduler.plans.each_ref().map(Counter::get), [1, 1, 2]);
        metrics.exec.finished(ExecStatus::Timeout);
        assert_eq!(metrics.exec.results.each_ref().map(Counter::get), [0, 0, 1, 0]);
        metrics.hammers.finished(true);
        metrics.hammers.finished(false);
        metrics.hammers.dry_run();
        metrics.hammers.dry_run();
        assert_eq!(metrics.hammers.runs.each_ref().map(Counter::get), [1, 1, 2]);
        metrics.logs.committed(false, 10, 100, Duration::from_millis(1));
        metrics.logs.committed(true, 3, 30, Duration::from_millis(1));
        assert_eq!((metrics.logs.lines.get(), metrics.logs.bytes.get()), (3, 30));
        assert_eq!(metrics.logs.commit_duration.count(), 2);
    }
}
