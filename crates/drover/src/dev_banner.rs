//! The banner of `drover dev`, printed last: once the server leads, the
//! agent's node is registered and the example job runs (or a deadline
//! passed), so the start-up log lines come before it and it is the last
//! thing on the screen: the API and dashboard URLs, the example job, and
//! what to type next.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use drover_server::Server;
use drover_state::State;
use drover_types::{AllocClientStatus, JobId};

/// How long the banner waits for the example job to run.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(30);

/// Where the example job stands when the banner is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Example {
    /// `--no-example`.
    Skipped,
    /// Running in this allocation.
    Running { job: String, alloc: String },
    /// Submitted, but not running by the deadline.
    Submitted { job: String },
}

/// What the banner says.
#[derive(Debug, Clone)]
pub(crate) struct Banner<'a> {
    pub(crate) address: SocketAddr,
    pub(crate) data_dir: &'a Path,
    pub(crate) removed_on_exit: bool,
    pub(crate) node: &'a str,
    pub(crate) example: Example,
}

/// Waits until the node is registered and, when there is one, the example
/// job has a running allocation; gives up at `deadline`. Returns where the
/// example stands.
pub(crate) async fn wait_until_started(server: &Server, example_job: Option<&str>, deadline: Duration) -> Example {
    let mut states = server.watch_state();
    let started = async {
        loop {
            let state = states.borrow_and_update().clone();
            if let Some(example) = started(&state, example_job) {
                return example;
            }
            if states.changed().await.is_err() {
                return Example::Skipped;
            }
        }
    };
    match tokio::time::timeout(deadline, started).await {
        Ok(example) => example,
        Err(_) => match example_job {
            Some(job) => Example::Submitted { job: job.to_owned() },
            None => Example::Skipped,
        },
    }
}

/// `Some` once the start-up is over.
fn started(state: &State, example_job: Option<&str>) -> Option<Example> {
    state.nodes().next()?;
    let Some(job) = example_job else { return Some(Example::Skipped) };
    let job_id = JobId::new(job);
    let running =
        state.allocs().find(|alloc| alloc.job_id == job_id && alloc.client_status == AllocClientStatus::Running)?;
    Some(Example::Running { job: job.to_owned(), alloc: running.id.short().to_owned() })
}

/// The banner's lines.
pub(crate) fn render(banner: &Banner<'_>) -> Vec<String> {
    let address = format!("http://{}", banner.address);
    let mut lines = vec![
        "drover dev is running: a server and an agent in one process".to_owned(),
        format!("  API          {address}"),
        format!("  Dashboard    {address}/ui/"),
        format!("  Node         {}", banner.node),
        format!(
            "  Data         {}{}",
            banner.data_dir.display(),
            if banner.removed_on_exit { " (removed on exit)" } else { "" }
        ),
    ];
    let alloc = match &banner.example {
        Example::Skipped => {
            lines.push("  Example      none (--no-example)".to_owned());
            None
        }
        Example::Running { job, alloc } => {
            lines.push(format!("  Example      job \"{job}\" running, allocation {alloc}"));
            Some(alloc.as_str())
        }
        Example::Submitted { job } => {
            lines.push(format!("  Example      job \"{job}\" submitted, not running yet (drover job status {job})"));
            None
        }
    };
    lines.push(String::new());
    lines.push("Next steps, in another terminal:".to_owned());
    lines.push(format!("  export DROVER_ADDR={address}"));
    let mut steps: Vec<(String, &str)> = Vec::new();
    if let Example::Running { job, .. } | Example::Submitted { job } = &banner.example {
        steps.push((format!("drover job status {job}"), "the job and its allocations"));
    }
    steps.push((format!("drover alloc logs -f {}", alloc.unwrap_or("<alloc-id>")), "follow a task's output"));
    steps.push(("drover job run examples/batch.nomad.hcl".to_owned(), "a batch job"));
    steps.push((format!("drover exec {} -- uptime", banner.node), "a command on the node"));
    steps.push(("drover logs search hello".to_owned(), "search every node's logs"));
    let width = steps.iter().map(|(command, _)| command.len()).max().unwrap_or(0);
    for (command, comment) in steps {
        lines.push(format!("  {command:<width$}  # {comment}"));
    }
    lines.push(String::new());
    lines.push("Press Ctrl-C to stop (tasks are stopped, then the server).".to_owned());
    lines
}

/// Prints the banner on stdout.
pub(crate) fn print(banner: &Banner<'_>) {
    for line in render(banner) {
        crate::cli::output::print_line(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_gives_both_urls_the_example_and_next_steps() {
        let banner = Banner {
            address: "127.0.0.1:4747".parse().unwrap(),
            data_dir: Path::new("/tmp/drover-dev-x"),
            removed_on_exit: true,
            node: "laptop",
            example: Example::Running { job: "hello".to_owned(), alloc: "1a2b3c4d".to_owned() },
        };
        let text = render(&banner).join("\n");
        assert!(text.contains("  API          http://127.0.0.1:4747\n"), "{text}");
        assert!(text.contains("  Dashboard    http://127.0.0.1:4747/ui/\n"), "{text}");
        assert!(text.contains("job \"hello\" running, allocation 1a2b3c4d"), "{text}");
        assert!(text.contains("  drover alloc logs -f 1a2b3c4d"), "{text}");
        assert!(text.contains("  drover exec laptop -- uptime"), "{text}");
        assert!(text.ends_with("Press Ctrl-C to stop (tasks are stopped, then the server)."), "{text}");
        let comment_columns: Vec<usize> =
            text.lines().filter(|line| line.starts_with("  drover")).filter_map(|line| line.find('#')).collect();
        assert!(comment_columns.windows(2).all(|pair| pair[0] == pair[1]), "{text}");
    }
}
