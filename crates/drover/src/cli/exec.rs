//! `drover exec`: a command on many nodes through the agents' sessions,
//! printed as parallel-ssh does (one status line per node as it finishes),
//! then the outputs grouped by identical text as ClusterShell's `-b` does,
//! then a summary. A script on stdin (a file or a pipe, not a terminal)
//! is sent to every node's command, as `pssh -I` does.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;

use drover_proto::api::{
    ExecEvent, ExecNodeResult, ExecOutputGroup, ExecRequest, ExecStatus, exec_status_parts, group_exec_outputs,
};

use super::ServerAddress;
use super::output::print_json;

/// `drover exec`. Naming no node and giving no `--filter` is a usage
/// error (exit 2, before any server is asked): no command reaches the whole
/// fleet by accident.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selection").args(["nodes", "filter"]).required(true).multiple(true)))]
pub(crate) struct ExecArgs {
    /// Nodes: names, ids, comma-separated lists, brace ranges
    /// (`batch{00..99},gpu07`) and pdsh node sets (`batch[01-12,15]`).
    #[arg(value_name = "NODES")]
    nodes: Vec<String>,
    /// The nodes this filter matches (docs/nodes.md); with NODES, those of
    /// them it matches.
    #[arg(long)]
    filter: Option<String>,
    /// Leave these nodes out (names, lists, ranges, node sets), as pdsh's
    /// and clush's `-x`.
    #[arg(long, short = 'x', value_name = "NODES")]
    exclude: Vec<String>,
    /// Print each output line as `node: line` (stderr lines on stderr),
    /// as pdsh and clush do, for grep and sort; the status lines and the
    /// summary go to stderr.
    #[arg(long)]
    prefix: bool,
    /// Deadline per node: it reports TIMEOUT then and its command is killed.
    #[arg(long, default_value = "30s", value_parser = crate::roles::parse_duration)]
    timeout: Duration,
    /// Run on at most this many nodes at once (per server); 0: all at once.
    #[arg(long, short = 'p', default_value_t = 0)]
    parallel: usize,
    /// Run as this user instead of the agent's.
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Output kept per node and stream, in KiB (more is dropped and said).
    #[arg(long, value_name = "KIB", default_value_t = 64)]
    max_output_kb: u64,
    /// Print one JSON document with every node's result instead.
    #[arg(long)]
    json: bool,
    /// Refuse the whole command when the token may not run it on one of
    /// the selected nodes (without: those are reported DENIED, the others run).
    #[arg(long)]
    all_or_nothing: bool,
    /// Do not send this command's stdin to the nodes even when it is a file
    /// or a pipe (as `ssh -n`), e.g. in a `while read` loop.
    #[arg(long, short = 'n')]
    no_stdin: bool,
    /// The command and its arguments, after `--`; run by `/bin/sh -c`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    server: ServerAddress,
}

pub(crate) async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let (nodes, filter) = super::exclude_nodes(
        super::expand_node_args(&args.nodes)?,
        args.filter.clone(),
        &super::expand_node_args(&args.exclude)?,
    );
    let request = ExecRequest {
        nodes,
        filter,
        command: args.command.clone(),
        timeout_ms: u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX),
        parallel: args.parallel,
        user: args.user.clone(),
        max_output_bytes: args.max_output_kb.saturating_mul(1024),
        local: false,
        all_or_nothing: args.all_or_nothing,
        root_allowed: true,
        stdin: if args.no_stdin { Vec::new() } else { read_stdin()? },
    };
    run_and_print(&request, &args.server, Printing { json: args.json, prefix: args.prefix }).await
}

/// How the results are printed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Printing {
    /// One JSON document at the end.
    pub(super) json: bool,
    /// `node: line` output.
    pub(super) prefix: bool,
}

/// This process's stdin when it is a file or a pipe (never a terminal or a
/// device such as `/dev/null`), at most the server's limit; else nothing.
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let stdin = std::io::stdin();
    // A closed fd 0 is no stdin.
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else { return Ok(Vec::new()) };
    let file = std::fs::File::from(fd);
    let kind = file.metadata()?.file_type();
    if !(kind.is_file() || kind.is_fifo() || kind.is_socket()) {
        return Ok(Vec::new());
    }
    read_bounded(file, "stdin")
}

/// All of `reader`, refused when over the server's stdin limit.
pub(super) fn read_bounded(reader: impl std::io::Read, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let limit = drover_proto::api::MAX_EXEC_STDIN_BYTES;
    let mut bytes = Vec::new();
    reader
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| anyhow::anyhow!("cannot read {what}: {error}"))?;
    if bytes.len() > limit {
        anyhow::bail!(
            "{what} is over {} MiB, the most drover exec can send to each node; copy it another way (e.g. from a web server)",
            limit / 1024 / 1024
        );
    }
    Ok(bytes)
}

/// Sends `request`, prints a status line per node as each finishes, then
/// the grouped outputs (or `node: line`s, or JSON) and the summary; fails
/// (exit 1) unless every node succeeded.
pub(super) async fn run_and_print(
    request: &ExecRequest,
    server: &ServerAddress,
    args: Printing,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut events = server.client()?.exec(request).await?;
    let mut results: Vec<ExecNodeResult> = Vec::new();
    let mut expected = 0usize;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    // Where status lines and the summary go: stdout, or stderr under
    // --prefix (stdout then holds only `node: line`).
    let mut progress: &mut dyn Write = if args.prefix { &mut stderr } else { &mut stdout };
    while let Some(event) = events.next().await {
        match event? {
            ExecEvent::Start { nodes } => {
                expected = nodes.len();
                if nodes.is_empty() && !args.json {
                    writeln!(progress, "No node matches.")?;
                }
            }
            ExecEvent::Result(result) => {
                if !args.json {
                    writeln!(
                        progress,
                        "{}",
                        super::output::paint_status_words(&status_line(results.len() + 1, &result))
                    )?;
                    progress.flush()?;
                }
                results.push(result);
            }
            ExecEvent::End => break,
        }
    }
    if results.len() < expected {
        anyhow::bail!(
            "the server stopped answering after {} of {expected} nodes; see `drover server health`",
            results.len()
        );
    }
    let failed = results.iter().any(|result| result.status != ExecStatus::Success);
    if args.json {
        results.sort_by(|a, b| a.node.cmp(&b.node));
        print_json(&serde_json::json!({ "results": results, "summary": counts(&results) }))?;
    } else if args.prefix {
        print_prefixed(&mut stdout, &mut stderr, &mut results)?;
        writeln!(stderr, "{}", summary(&results, started.elapsed()))?;
    } else {
        print_groups(&mut progress, &results)?;
        writeln!(progress, "{}", summary(&results, started.elapsed()))?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `[3] 21:20:06 [FAILURE] node02 exit 2`, as parallel-ssh prints.
fn status_line(number: usize, result: &ExecNodeResult) -> String {
    let time = chrono::Local::now().format("%H:%M:%S");
    let detail = match (result.status, result.exit_code) {
        (ExecStatus::Failure, Some(code)) => format!(" exit {code}"),
        (ExecStatus::Success, _) => String::new(),
        _ if !result.error.is_empty() => format!(" ({})", result.error),
        _ => String::new(),
    };
    format!("[{number}] {time} [{}] {}{detail}", result.status.label(), result.node)
}

/// The outputs, one block per distinct text, headed by the nodes that
/// printed it (folded into brace ranges).
fn print_groups(out: &mut impl Write, results: &[ExecNodeResult]) -> std::io::Result<()> {
    // The most common output first, like ClusterShell's `-b`.
    for ExecOutputGroup { stdout, stderr, nodes } in group_exec_outputs(results) {
        let header = format!("{} ({})", drover_filter::fold_names(&nodes), nodes.len());
        let rule = "-".repeat(header.chars().count().min(78));
        writeln!(out, "{rule}\n{header}\n{rule}")?;
        for line in stdout.lines() {
            writeln!(out, "{line}")?;
        }
        for line in stderr.lines() {
            writeln!(out, "stderr: {line}")?;
        }
    }
    let truncated: Vec<&str> =
        results.iter().filter(|result| result.truncated).map(|result| result.node.as_str()).collect();
    if !truncated.is_empty() {
        writeln!(
            out,
            "Output was cut at --max-output-kb on {}: {}",
            truncated.len(),
            drover_filter::fold_names(&truncated)
        )?;
    }
    Ok(())
}

/// Every output line as `node: line`, nodes in name order, stdout lines
/// to `out` and stderr lines to `err`, as pdsh prints them.
fn print_prefixed(out: &mut impl Write, err: &mut impl Write, results: &mut [ExecNodeResult]) -> std::io::Result<()> {
    results.sort_by(|a, b| a.node.cmp(&b.node));
    for result in results.iter() {
        for line in result.stdout.lines() {
            writeln!(out, "{}: {line}", result.node)?;
        }
        for line in result.stderr.lines() {
            writeln!(err, "{}: {line}", result.node)?;
        }
    }
    Ok(())
}

fn counts(results: &[ExecNodeResult]) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        [ExecStatus::Success, ExecStatus::Failure, ExecStatus::Timeout, ExecStatus::Unreachable, ExecStatus::Denied]
            .into_iter()
            .map(|status| (status.key(), 0))
            .collect();
    for result in results {
        *counts.entry(result.status.key()).or_default() += 1;
    }
    counts
}

/// `20 nodes in 1.2 s: 18 success, 1 failure (node07), 1 timeout (node03)`.
fn summary(results: &[ExecNodeResult], elapsed: Duration) -> String {
    format!(
        "{} node{} in {:.1} s: {}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        elapsed.as_secs_f64(),
        exec_status_parts(results, |nodes| drover_filter::fold_names(nodes))
            .unwrap_or_else(|| "nothing ran".to_owned())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(node: &str, status: ExecStatus, stdout: &str) -> ExecNodeResult {
        ExecNodeResult {
            node: node.to_owned(),
            node_id: drover_types::NodeId::new(format!("id-{node}")),
            status,
            exit_code: (status == ExecStatus::Success).then_some(0),
            error: String::new(),
            stdout: stdout.to_owned(),
            stderr: String::new(),
            truncated: false,
            duration_ms: 5,
        }
    }

    #[test]
    fn identical_outputs_are_grouped_under_folded_names_most_common_first() {
        let results = vec![
            result("n03", ExecStatus::Success, "up 3 days\n"),
            result("n01", ExecStatus::Success, "up 3 days\n"),
            result("n02", ExecStatus::Success, "up 3 days\n"),
            result("n10", ExecStatus::Success, "up 1 day\n"),
            result("n04", ExecStatus::Timeout, ""),
        ];
        let mut out = Vec::new();
        print_groups(&mut out, &results).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "-------------\nn{01..03} (3)\n-------------\nup 3 days\n-------\nn10 (1)\n-------\nup 1 day\n"
        );
        let line = summary(&results, Duration::from_millis(1500));
        assert_eq!(line, "5 nodes in 1.5 s: 4 success, 1 timeout (n04)");
    }

    #[test]
    fn prefixed_output_is_one_node_colon_line_per_line_in_name_order() {
        let mut results = vec![result("n02", ExecStatus::Success, "b\nc\n"), result("n01", ExecStatus::Success, "a\n")];
        results[0].stderr = "oops\n".to_owned();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_prefixed(&mut out, &mut err, &mut results).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "n01: a\nn02: b\nn02: c\n");
        assert_eq!(String::from_utf8(err).unwrap(), "n02: oops\n");
    }

    #[test]
    fn status_lines_say_what_parallel_ssh_says() {
        let mut failed = result("n02", ExecStatus::Failure, "");
        failed.exit_code = Some(2);
        assert!(status_line(3, &failed).ends_with("[FAILURE] n02 exit 2"), "{}", status_line(3, &failed));
        let mut gone = result("n09", ExecStatus::Unreachable, "");
        gone.error = "its agent is not connected to any server".to_owned();
        assert!(status_line(1, &gone).ends_with("[UNREACHABLE] n09 (its agent is not connected to any server)"));
    }
}
