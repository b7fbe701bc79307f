//! `/ui/jobs` and `/ui/job/ID[?version=N&against=M]`: versions and the
//! difference between two, the deployment, allocations by state (the
//! newest of each, every one of a state at `?state=running&page=N`), and
//! for what is not placed, why.

use askama::Template;

use drover_proto::api::{AllocListEntry, JobListEntry, JobStatusResponse};
use drover_proto::paths;
use drover_types::{EvalStatus, Job, Timestamp};

use crate::chrome::Chrome;
use crate::format;

/// A line of the job list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Its page.
    pub href: String,
    /// `service`, `batch`, `system`.
    pub job_type: String,
    /// `running`, `pending`, `dead`.
    pub status: String,
    /// Current version.
    pub version: u64,
    /// Running allocations.
    pub running: u32,
    /// Pending allocations.
    pub pending: u32,
    /// Failed or lost allocations.
    pub failed: u32,
    /// Complete allocations.
    pub complete: u32,
    /// When the current version was submitted.
    pub submitted: String,
}

impl JobRow {
    /// The row of one job.
    pub fn new(entry: &JobListEntry, now: Timestamp) -> Self {
        JobRow {
            id: entry.id.as_str().to_owned(),
            href: paths::fill(paths::UI_JOB, &[entry.id.as_str()]),
            job_type: entry.job_type.to_string(),
            status: if entry.stop { "stopped".to_owned() } else { entry.status.to_string() },
            version: entry.version,
            running: entry.allocs.running,
            pending: entry.allocs.pending,
            failed: entry.allocs.failed + entry.allocs.lost,
            complete: entry.allocs.complete,
            submitted: format::ago(entry.submit_time, now),
        }
    }
}

/// `/ui/jobs`.
#[derive(Debug, Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    /// The frame.
    pub chrome: Chrome,
    /// The jobs the caller may see, by id.
    pub jobs: Vec<JobRow>,
}

/// A line of an allocation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocRow {
    /// The short id.
    pub id: String,
    /// Its page.
    pub href: String,
    /// `job.group[index]`.
    pub name: String,
    /// The job's page.
    pub job_href: String,
    /// The job version.
    pub version: u64,
    /// The node's name.
    pub node: String,
    /// The node's page.
    pub node_href: String,
    /// What the agent reports.
    pub status: String,
    /// What the servers want, and why.
    pub desired: String,
    /// Task restarts.
    pub restarts: u32,
    /// Deployment health: `healthy`, `unhealthy` or empty.
    pub health: String,
    /// Last change, as an age.
    pub modified: String,
}

impl AllocRow {
    /// The row of one allocation.
    pub fn new(alloc: &AllocListEntry, now: Timestamp) -> Self {
        let desired = if alloc.desired_description.is_empty() {
            alloc.desired_status.to_string()
        } else {
            format!("{}: {}", alloc.desired_status, alloc.desired_description)
        };
        AllocRow {
            id: alloc.id.short().to_owned(),
            href: paths::fill(paths::UI_ALLOC, &[alloc.id.as_str()]),
            name: alloc.name.clone(),
            job_href: paths::fill(paths::UI_JOB, &[alloc.job_id.as_str()]),
            version: alloc.job_version,
            node: alloc.node_name.clone(),
            node_href: paths::fill(paths::UI_NODE, &[&alloc.node_name]),
            status: alloc.client_status.to_string(),
            desired,
            restarts: alloc.restarts,
            health: match alloc.healthy {
                Some(true) => "healthy".to_owned(),
                Some(false) => "unhealthy".to_owned(),
                None => String::new(),
            },
            modified: format::ago(alloc.modify_time, now),
        }
    }
}

/// Allocations a state shows on the job page, newest first; the rest are
/// one link away (`?state=running`, [`ALLOCS_PER_PAGE`] a page), so that a
/// system job on 10,000 nodes stays a page of tens of kilobytes.
pub const ALLOCS_PER_STATE: usize = 50;

/// Allocations a page of one state's list shows (`?state=…&page=N`).
pub const ALLOCS_PER_PAGE: usize = 200;

/// Which allocations the job page lists: the newest of every state, or
/// one page of one state's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocView {
    /// Only this client status (`running`, …), paged.
    pub state: Option<String>,
    /// The page of that state's list, from 1.
    pub page: usize,
}

/// Allocations in one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocGroup {
    /// The client status.
    pub state: String,
    /// The allocations shown, newest first.
    pub allocs: Vec<AllocRow>,
    /// How many the job has in this state.
    pub total: usize,
    /// The position of the first shown, from 1.
    pub first: usize,
    /// Every allocation of the state, when not all are shown.
    pub all_href: Option<String>,
    /// The page before, in a state's list.
    pub prev_href: Option<String>,
    /// The page after, in a state's list.
    pub next_href: Option<String>,
}

impl AllocGroup {
    /// The position of the last shown.
    pub fn last(&self) -> usize {
        self.first + self.allocs.len().saturating_sub(1)
    }
}

/// A task group that could not be placed in full, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementRow {
    /// The group.
    pub group: String,
    /// Instances not placed.
    pub num_unplaced: u32,
    /// Why, in words: `3 nodes evaluated: 2 filtered by constraint …, 1 out of memory`.
    pub reason: String,
    /// The evaluation that said so (short id).
    pub eval: String,
}

/// A version in the version picker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionLink {
    /// The version.
    pub version: u64,
    /// Its page.
    pub href: String,
    /// Whether it is the one shown.
    pub shown: bool,
    /// Whether it was marked stable by a successful deployment.
    pub stable: bool,
    /// When it was submitted, as an age.
    pub submitted: String,
}

/// A task group of the version shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRow {
    /// Name.
    pub name: String,
    /// Instances wanted.
    pub count: u32,
    /// Its tasks: `web (exec, 500 MHz, 256 MB)`.
    pub tasks: String,
    /// Its constraints and the job's, as written.
    pub constraints: String,
}

/// A line of a difference between two versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    /// `add`, `del` or `chg`.
    pub class: &'static str,
    /// The line (`+ path = value`, `- …`, `~ path: old => new`).
    pub text: String,
}

/// A group of the latest deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentGroupRow {
    /// The group.
    pub name: String,
    /// `2 / 3`.
    pub healthy: String,
    /// Unhealthy allocations.
    pub unhealthy: u32,
    /// `1 / 1 placed, promoted` or empty without canaries.
    pub canaries: String,
}

/// The latest deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentView {
    /// Short id.
    pub id: String,
    /// The version it rolls out.
    pub version: u64,
    /// `running`, `blocked`, …
    pub status: String,
    /// Why.
    pub description: String,
    /// Per group.
    pub groups: Vec<DeploymentGroupRow>,
    /// Whether canaries await promotion.
    pub awaits_promotion: bool,
}

/// `/ui/job/ID`.
#[derive(Debug, Template)]
#[template(path = "job.html")]
pub struct JobPage {
    /// The frame.
    pub chrome: Chrome,
    /// Id.
    pub id: String,
    /// `service`, …
    pub job_type: String,
    /// `running`, …
    pub status: String,
    /// The current version.
    pub current_version: u64,
    /// The version shown.
    pub shown_version: u64,
    /// Every version kept, newest first.
    pub versions: Vec<VersionLink>,
    /// The version the difference is taken against.
    pub against: Option<u64>,
    /// How the version shown differs from `against`.
    pub diff: Vec<DiffLine>,
    /// The groups of the version shown.
    pub groups: Vec<GroupRow>,
    /// The latest deployment.
    pub deployment: Option<DeploymentView>,
    /// Whether the caller may promote (job `submit`): else no button.
    pub can_submit: bool,
    /// Groups not placed in full, and why.
    pub placement: Vec<PlacementRow>,
    /// Allocations by state (running first).
    pub allocs: Vec<AllocGroup>,
    /// Whether the page lists one state's allocations (then a link back).
    pub one_state: bool,
    /// The outcome of the last action, if any.
    pub notice: Option<String>,
}

impl JobPage {
    /// The page of a job: `versions` newest first (the current one among
    /// them), `version` the one to show (default: the current),
    /// `against` the one to compare it with (default: the one before it).
    pub fn new(
        chrome: Chrome,
        status: &JobStatusResponse,
        versions: &[Job],
        version: Option<u64>,
        against: Option<u64>,
    ) -> Self {
        JobPage::listing(chrome, status, versions, version, against, &AllocView::default())
    }

    /// The page of a job as [`JobPage::new`], listing the allocations
    /// `view` asks for.
    pub fn listing(
        chrome: Chrome,
        status: &JobStatusResponse,
        versions: &[Job],
        version: Option<u64>,
        against: Option<u64>,
        view: &AllocView,
    ) -> Self {
        let now = chrome.now;
        let job = &status.job;
        let shown_version = version.unwrap_or(job.version);
        let shown = versions.iter().find(|candidate| candidate.version == shown_version).unwrap_or(job);
        let against = against.or_else(|| {
            versions.iter().map(|candidate| candidate.version).filter(|other| *other < shown.version).max()
        });
        let diff = against
            .and_then(|other| versions.iter().find(|candidate| candidate.version == other))
            .map(|older| {
                drover_types::diff::job_diff(older, shown)
                    .into_iter()
                    .map(|text| DiffLine {
                        class: match text.chars().next() {
                            Some('+') => "add",
                            Some('-') => "del",
                            _ => "chg",
                        },
                        text,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let job_constraints: Vec<String> = shown.constraints.iter().map(constraint_text).collect();
        let groups = shown
            .groups
            .iter()
            .map(|group| GroupRow {
                name: group.name.clone(),
                count: group.count,
                tasks: group
                    .tasks
                    .iter()
                    .map(|task| {
                        format!(
                            "{} ({}, {} MHz, {})",
                            task.name,
                            task.driver.as_str(),
                            task.resources.cpu_mhz,
                            format::megabytes(task.resources.memory_mb)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                constraints: job_constraints
                    .iter()
                    .cloned()
                    .chain(group.constraints.iter().map(constraint_text))
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect();
        let deployment = status.deployment.as_ref().map(|deployment| DeploymentView {
            id: deployment.id.short().to_owned(),
            version: deployment.job_version,
            status: deployment.status.to_string(),
            description: deployment.status_description.clone(),
            groups: deployment
                .groups
                .iter()
                .map(|(name, group)| DeploymentGroupRow {
                    name: name.clone(),
                    healthy: format!("{} / {}", group.healthy_allocs, group.desired_total),
                    unhealthy: group.unhealthy_allocs,
                    canaries: if group.desired_canaries == 0 {
                        String::new()
                    } else {
                        format!(
                            "{} / {} placed{}",
                            group.placed_canaries.len(),
                            group.desired_canaries,
                            if group.promoted { ", promoted" } else { "" }
                        )
                    },
                })
                .collect(),
            awaits_promotion: deployment.groups.keys().any(|name| deployment.awaits_promotion(name)),
        });
        // The newest evaluation that could not place everything says why
        // (as `drover job status` does).
        let placement = status
            .evals
            .iter()
            .find(|eval| !eval.failed_placements.is_empty() && eval.status != EvalStatus::Canceled)
            .map(|eval| {
                eval.failed_placements
                    .iter()
                    .map(|(group, failure)| PlacementRow {
                        group: group.clone(),
                        num_unplaced: failure.num_unplaced,
                        reason: failure.summary(),
                        eval: eval.id.short().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let id = job.id.as_str().to_owned();
        let allocs = alloc_groups(&status.allocs, &id, view, now);
        JobPage {
            versions: versions
                .iter()
                .map(|candidate| VersionLink {
                    version: candidate.version,
                    href: format!(
                        "{}{}",
                        paths::fill(paths::UI_JOB, &[&id]),
                        format::query(&[("version", &candidate.version.to_string())])
                    ),
                    shown: candidate.version == shown.version,
                    stable: candidate.stable,
                    submitted: format::ago(candidate.submit_time, now),
                })
                .collect(),
            job_type: job.job_type.to_string(),
            status: if job.stop { "stopped".to_owned() } else { job.status.to_string() },
            current_version: job.version,
            shown_version: shown.version,
            against,
            diff,
            groups,
            deployment,
            can_submit: false,
            placement,
            allocs,
            one_state: view.state.is_some(),
            notice: None,
            id,
            chrome,
        }
    }

    /// Where the promote form posts.
    pub fn promote_action(&self) -> String {
        paths::fill(paths::UI_JOB_PROMOTE, &[&self.id])
    }

    /// Where the revert form posts.
    pub fn revert_action(&self) -> String {
        paths::fill(paths::UI_JOB_REVERT, &[&self.id])
    }

    /// The job's page (every state's newest allocations).
    pub fn job_href(&self) -> String {
        paths::fill(paths::UI_JOB, &[&self.id])
    }
}

fn constraint_text(constraint: &drover_types::Constraint) -> String {
    format!("{} {} {}", constraint.attribute, constraint.operator, constraint.value).trim().to_owned()
}

/// The allocation groups of the job page: running first, each newest first
/// (by last change), cut as `view` says.
fn alloc_groups(allocs: &[AllocListEntry], job_id: &str, view: &AllocView, now: Timestamp) -> Vec<AllocGroup> {
    let order = ["running", "pending", "failed", "lost", "unknown", "complete"];
    let page_href = |state: &str, page: usize| {
        let page = if page <= 1 { String::new() } else { page.to_string() };
        format!("{}{}", paths::fill(paths::UI_JOB, &[job_id]), format::query(&[("state", state), ("page", &page)]))
    };
    let mut groups = Vec::new();
    for state in order {
        if view.state.as_deref().is_some_and(|wanted| wanted != state) {
            continue;
        }
        let mut matching: Vec<&AllocListEntry> =
            allocs.iter().filter(|alloc| alloc.client_status.to_string() == state).collect();
        if matching.is_empty() {
            continue;
        }
        matching.sort_by(|left, right| right.modify_time.cmp(&left.modify_time).then(left.id.cmp(&right.id)));
        let total = matching.len();
        let (skip, take, page) = match view.state {
            None => (0, ALLOCS_PER_STATE, 1),
            Some(_) => {
                let page = view.page.clamp(1, total.div_ceil(ALLOCS_PER_PAGE).max(1));
                ((page - 1) * ALLOCS_PER_PAGE, ALLOCS_PER_PAGE, page)
            }
        };
        let rows: Vec<AllocRow> =
            matching.iter().skip(skip).take(take).map(|alloc| AllocRow::new(alloc, now)).collect();
        let paged = view.state.is_some();
        groups.push(AllocGroup {
            state: state.to_owned(),
            all_href: (!paged && rows.len() < total).then(|| page_href(state, 1)),
            prev_href: (paged && page > 1).then(|| page_href(state, page - 1)),
            next_href: (paged && skip + rows.len() < total).then(|| page_href(state, page + 1)),
            first: skip + 1,
            allocs: rows,
            total,
        });
    }
    groups
}
