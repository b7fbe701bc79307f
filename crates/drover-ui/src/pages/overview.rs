//! `/ui/`: is everything fine, and if not, what and where — what needs a
//! human first, then servers, nodes, allocations, alerts, hammer runs
//! awaiting approval, deployments in progress and the latest audit events.

use askama::Template;

use drover_proto::api::{AllocCounts, ClusterHealth};
use drover_proto::paths;
use drover_types::acl::{AuditEvent, AuditOutcome};
use drover_types::{Deployment, DeploymentStatus, Timestamp};

use super::react::{AlertRow, RunRow};
use super::{StateCount, Visible};
use crate::chrome::Chrome;
use crate::format;

/// The overview.
#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// The frame.
    pub chrome: Chrome,
    /// The servers (`drover server health`).
    pub servers: Visible<Vec<ServerRow>>,
    /// What is wrong with the cluster, in words.
    pub problems: Vec<String>,
    /// Nodes by status.
    pub nodes: Visible<Vec<StateCount>>,
    /// Allocations by client status.
    pub allocs: Visible<Vec<StateCount>>,
    /// Alerts firing now.
    pub alerts: Visible<Vec<AlertRow>>,
    /// Hammer runs waiting for a person.
    pub awaiting: Visible<Vec<RunRow>>,
    /// Deployments not yet over.
    pub deployments: Visible<Vec<DeploymentRow>>,
    /// The latest audit events, newest first.
    pub audit: Visible<Vec<AuditRow>>,
}

impl OverviewPage {
    /// What needs a person, worst first.
    pub fn attention(&self) -> Vec<Attention> {
        let mut items = Vec::new();
        for problem in &self.problems {
            items.push(Attention::bad(format!("Cluster: {problem}"), paths::UI));
        }
        if let Visible::Shown(alerts) = &self.alerts {
            for alert in alerts.iter().filter(|alert| alert.state == "firing" && !alert.acknowledged) {
                items.push(Attention::bad(
                    format!("Alert {} is firing: {}", alert.name, alert.summary),
                    paths::UI_ALERTS,
                ));
            }
        }
        if let Visible::Shown(counts) = &self.nodes {
            for count in counts.iter().filter(|count| count.state == "down" && count.count > 0) {
                items.push(Attention::bad(format!("{} down", format::plural(count.count, "node")), &count.href));
            }
        }
        if let Visible::Shown(counts) = &self.allocs {
            for count in
                counts.iter().filter(|count| matches!(count.state.as_str(), "failed" | "lost") && count.count > 0)
            {
                items.push(Attention::bad(
                    format!("{} {}", format::plural(count.count, "allocation"), count.state),
                    &count.href,
                ));
            }
        }
        if let Visible::Shown(deployments) = &self.deployments {
            for deployment in deployments {
                if deployment.status == "failed" {
                    items.push(Attention::bad(
                        format!("Deployment of {} failed: {}", deployment.job, deployment.description),
                        &deployment.href,
                    ));
                } else if deployment.status == "blocked" {
                    items.push(Attention::warn(
                        format!("Deployment of {} waits for promotion: {}", deployment.job, deployment.description),
                        &deployment.href,
                    ));
                }
            }
        }
        if let Visible::Shown(runs) = &self.awaiting {
            for run in runs {
                items.push(Attention::warn(
                    format!("Hammer {} on {} awaits approval (run {})", run.hammer, run.target, run.id),
                    paths::UI_HAMMERS,
                ));
            }
        }
        if let Visible::Shown(alerts) = &self.alerts {
            for alert in alerts.iter().filter(|alert| alert.state == "pending") {
                items.push(Attention::warn(
                    format!("Alert {} is pending: {}", alert.name, alert.summary),
                    paths::UI_ALERTS,
                ));
            }
        }
        items
    }
}

/// One thing that needs a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attention {
    /// `bad` (act now) or `warn` (look soon).
    pub class: &'static str,
    /// What, in words.
    pub text: String,
    /// Where to look.
    pub href: String,
}

impl Attention {
    fn bad(text: String, href: &str) -> Self {
        Attention { class: "bad", text, href: href.to_owned() }
    }

    fn warn(text: String, href: &str) -> Self {
        Attention { class: "warn", text, href: href.to_owned() }
    }
}

/// One server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRow {
    /// Raft id.
    pub id: u64,
    /// Address.
    pub address: String,
    /// `leader`, `follower`, … or `down`.
    pub state: String,
    /// How far behind the leader, in entries.
    pub lag: String,
    /// Agents connected to it.
    pub num_agents: String,
}

impl ServerRow {
    /// The rows of `drover server health`.
    pub fn from_health(health: &ClusterHealth) -> Vec<ServerRow> {
        health
            .servers
            .iter()
            .map(|server| ServerRow {
                id: server.server_id,
                address: server.address.clone(),
                state: match (&server.status, server.up) {
                    (Some(status), true) => status.raft_state.clone(),
                    _ => "down".to_owned(),
                },
                lag: server.lag.map(|lag| lag.to_string()).unwrap_or_else(|| "–".to_owned()),
                num_agents: server.status.as_ref().map(|status| status.num_agents.to_string()).unwrap_or_default(),
            })
            .collect()
    }
}

/// Nodes by status, from each visible node's status (`ready`, `down`, …).
pub fn node_counts<'a>(statuses: impl IntoIterator<Item = &'a str>) -> Vec<StateCount> {
    let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(status).or_default() += 1;
    }
    let order = ["ready", "draining", "ineligible", "disconnected", "down"];
    let mut states: Vec<&str> =
        order.iter().copied().filter(|state| counts.contains_key(state) || *state == "down").collect();
    states.extend(counts.keys().copied().filter(|state| !order.contains(state)));
    states
        .into_iter()
        .map(|state| StateCount {
            state: state.to_owned(),
            count: counts.get(state).copied().unwrap_or(0),
            href: format!("{}{}", paths::UI_NODES, format::query(&[("filter", &format!("status == \"{state}\""))])),
        })
        .collect()
}

/// Allocations by client status.
pub fn alloc_counts(counts: &AllocCounts) -> Vec<StateCount> {
    [
        ("running", counts.running),
        ("pending", counts.pending),
        ("complete", counts.complete),
        ("failed", counts.failed),
        ("lost", counts.lost),
        ("unknown", counts.unknown),
    ]
    .into_iter()
    .map(|(state, count)| StateCount {
        state: state.to_owned(),
        count: u64::from(count),
        href: paths::UI_JOBS.to_owned(),
    })
    .collect()
}

/// A deployment in progress (or just failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentRow {
    /// The job.
    pub job: String,
    /// The job's page.
    pub href: String,
    /// The version rolled out.
    pub version: u64,
    /// `running`, `blocked`, `failed`, …
    pub status: String,
    /// Why, in words.
    pub description: String,
    /// Healthy of desired, per group: `web 2/3 healthy (1 canary)`.
    pub progress: String,
}

impl DeploymentRow {
    /// The row of one deployment.
    pub fn new(deployment: &Deployment) -> Self {
        let progress: Vec<String> = deployment
            .groups
            .iter()
            .map(|(name, group)| {
                let canaries = if group.desired_canaries > 0 {
                    format!(" ({} of {} canaries placed)", group.placed_canaries.len(), group.desired_canaries)
                } else {
                    String::new()
                };
                format!("{name} {}/{} healthy{canaries}", group.healthy_allocs, group.desired_total)
            })
            .collect();
        DeploymentRow {
            job: deployment.job_id.as_str().to_owned(),
            href: paths::fill(paths::UI_JOB, &[deployment.job_id.as_str()]),
            version: deployment.job_version,
            status: deployment.status.to_string(),
            description: deployment.status_description.clone(),
            progress: progress.join(", "),
        }
    }

    /// Whether a deployment belongs on the overview: not over, or failed
    /// within the last hour.
    pub fn worth_showing(deployment: &Deployment, now: Timestamp) -> bool {
        !deployment.status.is_terminal()
            || (deployment.status == DeploymentStatus::Failed
                && now.since(deployment.modify_time) < std::time::Duration::from_secs(3_600))
    }
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// When, as an age.
    pub ago: String,
    /// When, exactly.
    pub at: String,
    /// Who.
    pub who: String,
    /// What (`job.register`, …).
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    /// Why it was refused or failed.
    pub reason: String,
}

impl AuditRow {
    /// The row of one event.
    pub fn new(event: &AuditEvent, now: Timestamp) -> Self {
        let (outcome, reason) = match &event.outcome {
            AuditOutcome::Ok => ("ok", String::new()),
            AuditOutcome::Refused(why) => ("refused", why.clone()),
            AuditOutcome::Failed(why) => ("failed", why.clone()),
        };
        AuditRow {
            ago: format::ago(event.at, now),
            at: format::time(event.at),
            who: event.name.clone(),
            action: event.action.clone(),
            target: event.target.clone(),
            outcome: outcome.to_owned(),
            reason,
        }
    }
}
