//! `drover check`: a smoke check of the happy path, timed step by step and
//! compared against SLA expressions, for cron, CI or a periodic job
//! (Rally-style validation before and after an upgrade).
//!
//! Each run submits a tiny batch job pinned to one node, waits until it
//! starts and completes, finds its output in the log index, runs a command
//! on the node through `drover exec`, and purges the job.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;

use drover_client::Client;
use drover_proto::api::{ExecEvent, ExecRequest, ExecStatus, LogPage, LogQuery};
use drover_types::AllocClientStatus;

use super::ServerAddress;
use super::output::{print_json, print_table, table};

/// The steps, in order.
const STEPS: [&str; 6] = ["submit", "job_start", "job_complete", "logs", "exec", "cleanup"];

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Run on a node matching this filter (docs/nodes.md); any ready node by default.
    #[arg(long)]
    filter: Option<String>,
    /// A limit a step must meet: `STEP[_p50|_p95|_p99|_max] < DURATION`, e.g.
    /// `job_start_p95 < 5s` (steps: submit, job_start, job_complete, logs,
    /// exec, cleanup, total). Repeatable.
    #[arg(long = "sla", value_name = "EXPR")]
    slas: Vec<String>,
    /// Runs of the whole path (percentiles are over the runs).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// The longest any step may take before the check fails.
    #[arg(long, default_value = "60s", value_parser = crate::roles::parse_duration)]
    timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerAddress,
}

/// `STEP_pNN < DURATION`.
#[derive(Debug, Clone, PartialEq)]
struct Sla {
    text: String,
    step: String,
    quantile: Quantile,
    limit: Duration,
    inclusive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quantile {
    P(f64),
    Max,
}

fn parse_sla(text: &str) -> Result<Sla, String> {
    let (left, right, inclusive) = if let Some((left, right)) = text.split_once("<=") {
        (left, right, true)
    } else if let Some((left, right)) = text.split_once('<') {
        (left, right, false)
    } else {
        return Err(format!("bad SLA {text:?}: write STEP[_p95] < DURATION, e.g. 'job_start_p95 < 5s'"));
    };
    let left = left.trim();
    let (step, quantile) = match left.rsplit_once('_') {
        Some((step, "max")) => (step, Quantile::Max),
        Some((step, suffix))
            if suffix.starts_with('p') && suffix[1..].parse::<u8>().is_ok_and(|p| p > 0 && p < 100) =>
        {
            (step, Quantile::P(f64::from(suffix[1..].parse::<u8>().unwrap_or(50)) / 100.0))
        }
        _ => (left, Quantile::Max),
    };
    if !STEPS.contains(&step) && step != "total" {
        return Err(format!("bad SLA {text:?}: unknown step {step:?}; the steps are {}, total", STEPS.join(", ")));
    }
    let limit = right
        .trim()
        .parse::<drover_types::DurationSpec>()
        .map_err(|error| format!("bad SLA {text:?}: bad duration {:?}: {error}", right.trim()))?
        .get();
    Ok(Sla { text: text.to_owned(), step: step.to_owned(), quantile, limit, inclusive })
}

fn quantile(sorted: &[Duration], quantile: Quantile) -> Duration {
    match quantile {
        Quantile::Max => sorted.last().copied().unwrap_or_default(),
        Quantile::P(q) => {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        }
    }
}

pub(crate) async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let slas =
        args.slas.iter().map(|text| parse_sla(text)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let client = args.server.client()?;
    let filter = args.filter.clone().unwrap_or_else(|| r#"status == "ready""#.to_owned());
    let nodes = client.nodes_matching(&filter).await?;
    let Some(node) = nodes.iter().find(|node| node.status == "ready") else {
        anyhow::bail!("no ready node matches {filter:?}: nothing to check on");
    };
    let mut timings: Vec<Vec<Duration>> = vec![Vec::new(); STEPS.len() + 1];
    let mut failure = None;
    for _ in 0..args.runs {
        match one_run(&client, &node.name, args.timeout).await {
            Ok(steps) => {
                for (index, took) in steps.iter().enumerate() {
                    timings[index].push(*took);
                }
                timings[STEPS.len()].push(steps.iter().sum());
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    for values in &mut timings {
        values.sort();
    }
    let names: Vec<&str> = STEPS.iter().copied().chain(std::iter::once("total")).collect();
    let mut verdicts = Vec::new();
    for sla in &slas {
        let index = names.iter().position(|name| *name == sla.step).unwrap_or(0);
        let measured = quantile(&timings[index], sla.quantile);
        let met =
            !timings[index].is_empty() && if sla.inclusive { measured <= sla.limit } else { measured < sla.limit };
        verdicts.push((sla, measured, met));
    }
    let passed = failure.is_none() && verdicts.iter().all(|(_, _, met)| *met);
    if args.json {
        let steps: Vec<serde_json::Value> = names
            .iter()
            .zip(&timings)
            .map(|(name, values)| {
                serde_json::json!({
                    "step": name,
                    "runs": values.len(),
                    "p50_ms": quantile(values, Quantile::P(0.5)).as_secs_f64() * 1000.0,
                    "p95_ms": quantile(values, Quantile::P(0.95)).as_secs_f64() * 1000.0,
                    "max_ms": quantile(values, Quantile::Max).as_secs_f64() * 1000.0,
                })
            })
            .collect();
        let slas: Vec<serde_json::Value> = verdicts
            .iter()
            .map(|(sla, measured, met)| {
                serde_json::json!({ "sla": sla.text, "measured_ms": measured.as_secs_f64() * 1000.0, "met": met })
            })
            .collect();
        print_json(&serde_json::json!({
            "node": node.name, "passed": passed, "steps": steps, "slas": slas,
            "failure": failure.as_ref().map(ToString::to_string),
        }))?;
    } else {
        println!("Smoke check on {} ({} run{})", node.name, args.runs, if args.runs == 1 { "" } else { "s" });
        let mut rows = table(&["Step", "p50", "p95", "max"]);
        for (name, values) in names.iter().zip(&timings) {
            let show = |quantile_of: Quantile| {
                if values.is_empty() { "-".to_owned() } else { format_ms(quantile(values, quantile_of)) }
            };
            rows.add_row(vec![name.to_string(), show(Quantile::P(0.5)), show(Quantile::P(0.95)), show(Quantile::Max)]);
        }
        print_table(&rows);
        for (sla, measured, met) in &verdicts {
            println!("{} {}: {}", if *met { "PASS" } else { "FAIL" }, sla.text, format_ms(*measured));
        }
        if let Some(error) = &failure {
            println!("FAIL {error}");
        }
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn format_ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// One walk of the happy path; the time of each step, or the step that failed.
async fn one_run(client: &Client, node: &str, timeout: Duration) -> anyhow::Result<Vec<Duration>> {
    let id = format!("drover-check-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let marker = format!("{id}-output");
    let text = format!(
        r#"job "{id}" {{
  type     = "batch"
  priority = 90
  constraint {{
    attribute = "${{node.unique.name}}"
    value     = "{node}"
  }}
  group "check" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    task "hello" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo {marker}"]
      }}
      resources {{
        cpu    = 10
        memory = 16
      }}
    }}
  }}
}}
"#
    );
    let job = drover_jobspec::parse_job(&drover_hcl::Source::new("check.nomad.hcl", text), &Default::default())
        .map_err(|diagnostics| anyhow::anyhow!("the smoke job does not parse: {diagnostics}"))?;
    let mut steps = Vec::new();
    let started = Instant::now();
    client.register_job(&job).await.map_err(|error| anyhow::anyhow!("submit: {error}"))?;
    steps.push(started.elapsed());
    let result = async {
        let started = Instant::now();
        wait_step("job_start", timeout, || async {
            let allocs = client.job_allocations(&id).await?;
            if allocs.iter().any(|alloc| alloc.client_status == AllocClientStatus::Failed) {
                anyhow::bail!("the smoke job's task failed (drover job status {id})");
            }
            Ok(allocs.iter().any(|alloc| alloc.client_status != AllocClientStatus::Pending))
        })
        .await?;
        steps.push(started.elapsed());
        let started = Instant::now();
        wait_step("job_complete", timeout, || async {
            let allocs = client.job_allocations(&id).await?;
            if allocs.iter().any(|alloc| alloc.client_status == AllocClientStatus::Failed) {
                anyhow::bail!("the smoke job's task failed (drover job status {id})");
            }
            Ok(allocs.iter().any(|alloc| alloc.client_status == AllocClientStatus::Complete))
        })
        .await?;
        steps.push(started.elapsed());
        let started = Instant::now();
        let query =
            LogQuery { q: format!("job:{id} \"{marker}\""), since: Some("1h".to_owned()), ..Default::default() };
        wait_step("logs", timeout, || async {
            Ok(!client.search_logs(&query, &LogPage::default()).await?.records.is_empty())
        })
        .await?;
        steps.push(started.elapsed());
        let started = Instant::now();
        let request = ExecRequest {
            nodes: vec![node.to_owned()],
            filter: None,
            command: vec!["echo".to_owned(), marker.clone()],
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            parallel: 0,
            user: None,
            max_output_bytes: 4096,
            local: false,
            all_or_nothing: false,
            root_allowed: true,
            stdin: Vec::new(),
        };
        let mut events = client.exec(&request).await?;
        let mut succeeded = false;
        while let Some(event) = events.next().await {
            if let ExecEvent::Result(result) = event? {
                anyhow::ensure!(
                    result.status == ExecStatus::Success && result.stdout.contains(&marker),
                    "exec: {:?} on {node}: {}{}",
                    result.status,
                    result.stderr,
                    result.error
                );
                succeeded = true;
            }
        }
        anyhow::ensure!(succeeded, "exec: no result from {node}");
        steps.push(started.elapsed());
        Ok(())
    }
    .await;
    let started = Instant::now();
    let cleanup = client.deregister_job(&id, true).await;
    result?;
    cleanup.map_err(|error| anyhow::anyhow!("cleanup: {error}"))?;
    steps.push(started.elapsed());
    Ok(steps)
}

/// Polls `done` every 50 ms until it says yes, fails, or `timeout` passes.
async fn wait_step<F, Fut>(step: &str, timeout: Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if done().await.map_err(|error| anyhow::anyhow!("{step}: {error}"))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{step}: not done within {}s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slas_parse_with_quantiles_and_explain_mistakes() {
        let sla = parse_sla("job_start_p95 < 5s").unwrap();
        assert_eq!(
            (sla.step.as_str(), sla.quantile, sla.limit),
            ("job_start", Quantile::P(0.95), Duration::from_secs(5))
        );
        assert_eq!(parse_sla("total<=1m").unwrap().quantile, Quantile::Max);
        assert!(parse_sla("total<=1m").unwrap().inclusive);
        assert!(parse_sla("job_start_p95 > 5s").unwrap_err().contains("write STEP[_p95] < DURATION"));
        assert!(parse_sla("boot_p95 < 5s").unwrap_err().contains("unknown step \"boot\""));
        assert!(parse_sla("exec < soon").unwrap_err().contains("bad duration"));
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let values: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, Quantile::P(0.5)), Duration::from_millis(10));
        assert_eq!(quantile(&values, Quantile::P(0.95)), Duration::from_millis(19));
        assert_eq!(quantile(&values, Quantile::Max), Duration::from_millis(20));
        assert_eq!(quantile(&[], Quantile::Max), Duration::ZERO);
    }
}
