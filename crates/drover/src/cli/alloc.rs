//! `drover alloc …`.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use futures_util::StreamExt;

use drover_proto::session::LogStream;

use super::ServerAddress;
use super::output::{ago, local_time, newest_first, print_fields, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum AllocCommand {
    /// Show an allocation: placement, status and task events.
    Status {
        /// Allocation id or unique prefix.
        alloc: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Print a task's output.
    Logs {
        /// Allocation id or unique prefix.
        alloc: String,
        /// The task (needed when the group has several).
        task: Option<String>,
        /// Keep printing new output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Print standard error instead of standard output.
        #[arg(long)]
        stderr: bool,
        /// Print only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        #[command(flatten)]
        server: ServerAddress,
    },
}

pub(crate) async fn run(command: AllocCommand) -> anyhow::Result<ExitCode> {
    match command {
        AllocCommand::Status { alloc, json, server } => {
            let alloc = server.client()?.allocation(&alloc).await?;
            if json {
                print_json(&alloc)?;
                return Ok(ExitCode::SUCCESS);
            }
            print_fields(&[
                ("ID", alloc.id.to_string()),
                ("Name", alloc.name.clone()),
                ("Node", format!("{} ({})", alloc.node_name, alloc.node_id.short())),
                ("Job", format!("{} (version {})", alloc.job_id, alloc.job_version)),
                ("Desired", format!("{} {}", alloc.desired_status, alloc.desired_description).trim().to_owned()),
                ("Status", format!("{} ({})", alloc.client_status, alloc.client_description)),
                ("Created", format!("{} ({})", local_time(alloc.create_time), ago(alloc.create_time))),
                ("Modified", ago(alloc.modify_time)),
                ("Replaces", alloc.previous_alloc.as_ref().map_or("-".to_owned(), |id| id.short().to_owned())),
                ("Replaced by", alloc.next_alloc.as_ref().map_or("-".to_owned(), |id| id.short().to_owned())),
            ]);
            for (task, state) in &alloc.task_states {
                println!();
                println!(
                    "Task {task:?} is {}{} (restarts: {}{})",
                    state.state,
                    if state.failed { ", failed" } else { "" },
                    state.restarts,
                    state.pid.map(|pid| format!(", pid {pid}")).unwrap_or_default()
                );
                let mut events = table(&["Time", "Type", "Description"]);
                for ((), event) in newest_first([((), state.events.as_slice())]) {
                    events.add_row(vec![local_time(event.time), event.kind.to_string(), event.message.clone()]);
                }
                print_table(&events);
            }
            if !alloc.reschedule_events.is_empty() {
                println!();
                println!("Reschedule history");
                for event in &alloc.reschedule_events {
                    println!(
                        "  {} replaced {} (node {}) after {}",
                        local_time(event.time),
                        event.prev_alloc_id.short(),
                        event.prev_node_id.short(),
                        event.delay
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Logs { alloc, task, follow, stderr, tail, server } => {
            let stream = if stderr { LogStream::Stderr } else { LogStream::Stdout };
            // Lines are at most a few hundred bytes in practice; ask for
            // enough bytes and cut to the lines locally.
            let tail_bytes = tail.map(|lines| (lines as u64).saturating_mul(512).max(4096));
            let client = server.client()?;
            let mut chunks = Box::pin(client.alloc_logs(&alloc, task.as_deref(), stream, follow, tail_bytes).await?);
            let mut stdout = std::io::stdout();
            if let Some(num_lines) = tail {
                // The first part up to now: keep the last N lines.
                let mut buffered = Vec::new();
                if !follow {
                    while let Some(chunk) = chunks.next().await {
                        buffered.extend_from_slice(&chunk?);
                    }
                    write_last_lines(&mut stdout, &buffered, num_lines)?;
                    return Ok(ExitCode::SUCCESS);
                }
                if let Some(chunk) = chunks.next().await {
                    buffered.extend_from_slice(&chunk?);
                }
                write_last_lines(&mut stdout, &buffered, num_lines)?;
            }
            while let Some(chunk) = chunks.next().await {
                stdout.write_all(&chunk?)?;
                stdout.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_last_lines(output: &mut impl Write, bytes: &[u8], num_lines: usize) -> std::io::Result<()> {
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let start = text
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(num_lines.saturating_sub(1))
        .map_or(0, |(position, _)| position + 1);
    if num_lines == 0 {
        return Ok(());
    }
    output.write_all(&bytes[start..])?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_are_cut_at_line_boundaries() {
        let mut output = Vec::new();
        write_last_lines(&mut output, b"a\nb\nc\n", 2).unwrap();
        assert_eq!(output, b"b\nc\n");
        let mut output = Vec::new();
        write_last_lines(&mut output, b"a\nb", 5).unwrap();
        assert_eq!(output, b"a\nb");
        let mut output = Vec::new();
        write_last_lines(&mut output, b"a\nb\n", 0).unwrap();
        assert!(output.is_empty());
    }
}
