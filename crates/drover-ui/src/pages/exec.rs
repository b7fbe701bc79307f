//! `/ui/exec`: a command on a node selection, as `drover exec` runs it:
//! the form, then one status line per node and the outputs grouped by
//! identical text (the CLI's grouping, `drover_proto::api::group_exec_outputs`).

use askama::Template;

use drover_proto::api::{ExecNodeResult, ExecStatus, exec_status_parts, group_exec_outputs};
use drover_proto::paths;

use crate::chrome::Chrome;
use crate::format;

/// What the form holds (kept after a run, so it can be run again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecForm {
    /// Node names, ids, comma-separated lists and brace ranges.
    pub nodes: String,
    /// A filter (docs/nodes.md).
    pub filter: String,
    /// The command, run by `/bin/sh -c`.
    pub command: String,
    /// The deadline per node: `30s`.
    pub timeout: String,
}

/// One node's line: `[SUCCESS] web01`, `[FAILURE] web02 exit 2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRow {
    /// The node.
    pub node: String,
    /// `SUCCESS`, `FAILURE`, `TIMEOUT`, `UNREACHABLE`, `DENIED`.
    pub status: &'static str,
    /// `ok` or `bad`, for the badge.
    pub class: &'static str,
    /// `exit 2`, or what went wrong.
    pub detail: String,
    /// Milliseconds it took.
    pub duration_ms: u64,
}

/// Nodes that printed the same thing, headed as the CLI heads them:
/// `web{01..03} (3)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputGroup {
    /// The folded node names and their number.
    pub header: String,
    /// Their stdout.
    pub stdout: String,
    /// Their stderr.
    pub stderr: String,
}

/// What a run gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    /// One line per node, by name.
    pub rows: Vec<ExecRow>,
    /// The outputs, the most common first.
    pub groups: Vec<OutputGroup>,
    /// `3 nodes: 2 success, 1 failure (web02)`.
    pub summary: String,
    /// The nodes whose output was cut at the size limit, folded.
    pub truncated: String,
    /// While the run streams in: the selected nodes without a result yet,
    /// folded (empty once every node answered).
    pub waiting: String,
}

impl ExecOutcome {
    /// The outcome of the results, node names folded by `fold`
    /// (`drover_filter::fold_names`, which this crate does not depend on).
    pub fn new(results: &[ExecNodeResult], fold: impl Fn(&[&str]) -> String) -> Self {
        let mut rows: Vec<ExecRow> = results
            .iter()
            .map(|result| ExecRow {
                node: result.node.clone(),
                status: result.status.label(),
                class: if result.status == ExecStatus::Success { "ok" } else { "bad" },
                detail: match (result.status, result.exit_code) {
                    (ExecStatus::Failure, Some(code)) => format!("exit {code}"),
                    (ExecStatus::Success, _) => String::new(),
                    _ => result.error.clone(),
                },
                duration_ms: result.duration_ms,
            })
            .collect();
        rows.sort_by(|a, b| a.node.cmp(&b.node));
        let groups = group_exec_outputs(results)
            .into_iter()
            .map(|group| OutputGroup {
                header: format!("{} ({})", fold(&group.nodes), group.nodes.len()),
                stdout: group.stdout.to_owned(),
                stderr: group.stderr.to_owned(),
            })
            .collect();
        let summary = format!(
            "{} node{}: {}",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            exec_status_parts(results, &fold).unwrap_or_else(|| "no node matches, nothing ran".to_owned())
        );
        let truncated: Vec<&str> =
            results.iter().filter(|result| result.truncated).map(|result| result.node.as_str()).collect();
        ExecOutcome {
            rows,
            groups,
            summary,
            truncated: if truncated.is_empty() { String::new() } else { fold(&truncated) },
            waiting: String::new(),
        }
    }

    /// The outcome while the run goes on: the results so far of the
    /// `selected` nodes, and those still running.
    pub fn so_far(results: &[ExecNodeResult], selected: &[String], fold: impl Fn(&[&str]) -> String) -> Self {
        let mut outcome = ExecOutcome::new(results, &fold);
        let waiting: Vec<&str> = selected
            .iter()
            .map(String::as_str)
            .filter(|name| !results.iter().any(|result| result.node == *name))
            .collect();
        if !waiting.is_empty() {
            outcome.waiting = format!("{} ({})", fold(&waiting), waiting.len());
            outcome.summary = format!(
                "{} of {} nodes answered{}",
                results.len(),
                selected.len(),
                exec_status_parts(results, &fold).map(|parts| format!(": {parts}")).unwrap_or_default()
            );
        }
        outcome
    }
}

/// The results part of `/ui/exec`, sent again as each node answers while
/// a run streams in (the page's script swaps it in place).
#[derive(Debug, Template)]
#[template(path = "exec_outcome.html")]
pub struct ExecOutcomeFragment {
    /// The run so far.
    pub outcome: ExecOutcome,
}

/// `/ui/exec`.
#[derive(Debug, Template)]
#[template(path = "exec.html")]
pub struct ExecPage {
    /// The frame.
    pub chrome: Chrome,
    /// Why the token may not run commands (then no form and no button).
    pub refused: Option<String>,
    /// The form's values.
    pub form: ExecForm,
    /// What was wrong with the last run (a bad filter, no command, …).
    pub error: Option<String>,
    /// The last run's results.
    pub outcome: Option<ExecOutcome>,
    /// The selection shown before running, with the button that runs it.
    pub preview: Option<ExecPreview>,
}

/// What a command would run on: the confirmation step before **Run**.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecPreview {
    /// The nodes it runs on, folded (`batch{01..37}`).
    pub runs: String,
    /// How many.
    pub count: usize,
    /// The selected nodes the token may not run on, folded (reported
    /// DENIED when it runs).
    pub denied: String,
    /// How many.
    pub denied_count: usize,
}

impl ExecPreview {
    /// The preview of `runs` and `denied` (node names), folded by `fold`.
    pub fn new(runs: &[String], denied: &[String], fold: impl Fn(&[&str]) -> String) -> Self {
        let folded = |names: &[String]| fold(&names.iter().map(String::as_str).collect::<Vec<_>>());
        ExecPreview { runs: folded(runs), count: runs.len(), denied: folded(denied), denied_count: denied.len() }
    }

    /// `1 node` or `37 nodes`.
    pub fn nodes(&self) -> String {
        format::plural(self.count as u64, "node")
    }

    /// The same for the denied ones.
    pub fn denied_nodes(&self) -> String {
        format::plural(self.denied_count as u64, "node")
    }
}

impl ExecPage {
    /// Where the form posts.
    pub fn action(&self) -> &'static str {
        paths::UI_EXEC
    }
}
