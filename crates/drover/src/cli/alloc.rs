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
    /// Restart an allocation's tasks in place (all running tasks, or TASK).
    Restart {
        /// Allocation id or unique prefix.
        alloc: String,
        /// Restart only this task.
        task: Option<String>,
        /// Restart only this task (Nomad's flag form).
        #[arg(long = "task", value_name = "TASK", conflicts_with = "task")]
        task_flag: Option<String>,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Stop an allocation and have the scheduler replace it (on this node
    /// or another), as a drain does.
    Stop {
        /// Allocation id or unique prefix.
        alloc: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Send a signal to an allocation's tasks (all running tasks, or TASK).
    Signal {
        /// The signal (`SIGHUP`, `USR1`, …).
        #[arg(short = 's', long = "signal", default_value = "SIGKILL")]
        signal: String,
        /// Allocation id or unique prefix.
        alloc: String,
        /// Signal only this task.
        task: Option<String>,
        /// Signal only this task (Nomad's flag form).
        #[arg(long = "task", value_name = "TASK", conflicts_with = "task")]
        task_flag: Option<String>,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Run a command in a task's environment (its variables, working
    /// directory and user); its output and exit code come back. No TTY:
    /// `-i`/`-t` are refused (see docs/jobs.md).
    Exec {
        /// The task (needed when the group has several).
        #[arg(long)]
        task: Option<String>,
        /// Keep stdin open and send it to the command (read to its end first).
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Allocate a TTY (not supported yet).
        #[arg(short = 't', long)]
        tty: bool,
        /// Kill the command after this long.
        #[arg(long, default_value = "5m", value_parser = crate::roles::parse_duration)]
        timeout: std::time::Duration,
        /// Allocation id or unique prefix.
        alloc: String,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
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
        AllocCommand::Restart { alloc, task, task_flag, server } => {
            let restarted = server.client()?.restart_alloc(&alloc, task.or(task_flag).as_deref()).await?;
            println!("Allocation {} restarting: {}", restarted.alloc_id.short(), restarted.tasks.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Stop { alloc, server } => {
            let stopped = server.client()?.stop_alloc(&alloc).await?;
            println!(
                "Allocation {} is stopping; evaluation {} places its replacement",
                stopped.alloc_id.short(),
                stopped.eval_id.short()
            );
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Signal { signal, alloc, task, task_flag, server } => {
            let signalled = server.client()?.signal_alloc(&alloc, task.or(task_flag).as_deref(), &signal).await?;
            println!("Sent {signal} to allocation {}: {}", signalled.alloc_id.short(), signalled.tasks.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Exec { task, interactive, tty, timeout, alloc, command, server } => {
            if tty {
                anyhow::bail!(
                    "drover alloc exec cannot allocate a TTY yet: run the command without -t \
                     (its output and exit code come back when it ends)"
                );
            }
            let stdin = if interactive {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
                bytes
            } else {
                Vec::new()
            };
            let request = drover_proto::lifecycle::AllocExecRequest {
                task,
                command,
                timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
                max_output_bytes: None,
                stdin,
            };
            let ran = server.client()?.exec_in_alloc(&alloc, &request).await?;
            std::io::stdout().write_all(&ran.stdout)?;
            std::io::stdout().flush()?;
            std::io::stderr().write_all(&ran.stderr)?;
            if ran.truncated {
                eprintln!("drover: output beyond 1 MiB per stream was dropped");
            }
            match ran.exit_code {
                Some(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
                None => {
                    eprintln!("drover: the command in task {:?} has no exit code: {}", ran.task, ran.error);
                    Ok(ExitCode::from(255))
                }
            }
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
