//! `drover plan|apply DIR`, `drover alert …`, `drover hammer …`,
//! `drover runbook show`: the site folder and detect-and-react.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use drover_react::api::{SilenceRequest, SiteApplyRequest};
use drover_react::{Runbook, Site};
use drover_types::Job;

use super::ServerAddress;
use super::job::VarArgs;
use super::output::{ago, print_json, print_table, table};

/// `drover plan DIR` and `drover apply DIR`.
#[derive(Debug, Args)]
pub(crate) struct SiteArgs {
    /// The site folder: `*.hcl` site files and `*.nomad.hcl` job files.
    dir: PathBuf,
    #[command(flatten)]
    vars: VarArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerAddress,
}

/// `drover alert …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AlertCommand {
    /// Pending and firing alerts, silences, alerts received from an Alertmanager.
    List {
        /// Only the alerts of this rule (and the received alerts of this
        /// `alertname`).
        #[arg(long, value_name = "RULE")]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// How often each alert fired over a window, most first.
    Top {
        /// The window (`6h`, `7d`).
        #[arg(long, default_value = "24h")]
        since: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Acknowledge an alert: no more notifications until it resolves.
    Ack {
        /// The alert's id as `drover alert list` shows it, or a unique prefix.
        id: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Silence alerts whose labels match: `drover alert silence alertname=tmp-full node=~'batch.*' --for 2h --comment …`.
    Silence {
        /// Matchers `name=value`, `name!=value`, `name=~regex`, `name!~regex`; all must match.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long.
        #[arg(long = "for", default_value = "2h")]
        duration: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// End a silence now.
    Unsilence {
        /// The silence's id.
        id: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Notifications this server sent, and whether they arrived.
    Notifications {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// `drover hammer …`.
#[derive(Debug, Subcommand)]
pub(crate) enum HammerCommand {
    /// The hammers of the applied site.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Runs and refused triggers, newest first.
    History {
        /// Only this hammer.
        hammer: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Let a run waiting for approval act.
    Approve {
        /// The run's number (`drover hammer history`).
        run: u64,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Refuse a run waiting for approval.
    Deny {
        /// The run's number.
        run: u64,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Stop a hammer (or, without a name, every hammer) from acting.
    Pause {
        /// The hammer; every hammer when left out.
        hammer: Option<String>,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Let a paused hammer act again (and clear its tripped fleet guard).
    Resume {
        /// The hammer; lifts the pause of every hammer when left out.
        hammer: Option<String>,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// `drover runbook …`.
#[derive(Debug, Subcommand)]
pub(crate) enum RunbookCommand {
    /// Print the runbook of an alert rule or hammer.
    Show {
        /// The alert rule or hammer (or a runbook file of the site).
        name: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// The site and the jobs of a folder, or the diagnostics printed.
struct Folder {
    site: Site,
    runbooks: std::collections::BTreeMap<String, String>,
    jobs: Vec<Job>,
}

fn read_folder(dir: &Path, vars: &VarArgs) -> anyhow::Result<Result<Folder, ExitCode>> {
    let site = match drover_site::load_dir(dir) {
        Ok(site) => site,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            let count = diagnostics.len();
            eprintln!("{count} error{} in {}", if count == 1 { "" } else { "s" }, dir.display());
            return Ok(Err(ExitCode::FAILURE));
        }
    };
    let mut runbooks = std::collections::BTreeMap::new();
    let named = site
        .alerts
        .values()
        .filter_map(|rule| rule.runbook.as_ref())
        .chain(site.hammers.values().filter_map(|hammer| hammer.runbook.as_ref()));
    for runbook in named {
        if let Runbook::File(path) = runbook {
            let text = drover_hcl::read_definition_file(&dir.join(path))
                .map_err(|error| anyhow::anyhow!("cannot read runbook {}: {error}", dir.join(path).display()))?;
            runbooks.insert(path.clone(), text);
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_str().is_some_and(|name| name.ends_with(drover_site::JOB_FILE_SUFFIX)))
        .collect();
    files.sort();
    let mut jobs = Vec::new();
    for file in files {
        match super::job::parse_file(&file, vars)? {
            Ok(job) => jobs.push(job),
            Err(code) => return Ok(Err(code)),
        }
    }
    Ok(Ok(Folder { site, runbooks, jobs }))
}

/// `drover plan DIR`: what `drover apply DIR` would change.
pub(crate) async fn plan(args: SiteArgs) -> anyhow::Result<ExitCode> {
    let folder = match read_folder(&args.dir, &args.vars)? {
        Ok(folder) => folder,
        Err(code) => return Ok(code),
    };
    let client = args.server.client()?;
    let current = client.site().await?.site.unwrap_or_default();
    let changes = Site::diff(&current, &folder.site);
    if args.json {
        let mut plans = Vec::new();
        for job in &folder.jobs {
            plans.push(client.plan_job(job).await?);
        }
        print_json(&serde_json::json!({ "site": changes, "jobs": plans }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if changes.is_empty() {
        println!("Site: no changes.");
    } else {
        println!("Site:");
        for change in &changes {
            let sign = match change.kind {
                drover_react::ChangeKind::Added => "+",
                drover_react::ChangeKind::Changed => "~",
                drover_react::ChangeKind::Removed => "-",
            };
            let fields =
                if change.fields.is_empty() { String::new() } else { format!(" ({})", change.fields.join(", ")) };
            println!("  {sign} {} {:?}{fields}", change.object, change.name);
        }
    }
    for job in &folder.jobs {
        println!();
        super::job::job_plan(&client, job, false).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover apply DIR`: applies the site, then registers every job.
pub(crate) async fn apply(args: SiteArgs) -> anyhow::Result<ExitCode> {
    let folder = match read_folder(&args.dir, &args.vars)? {
        Ok(folder) => folder,
        Err(code) => return Ok(code),
    };
    let client = args.server.client()?;
    let current = client.site().await?.site.unwrap_or_default();
    let changes = Site::diff(&current, &folder.site);
    let request = SiteApplyRequest { site: folder.site, runbooks: folder.runbooks };
    let applied = client.apply_site(&request).await?;
    let mut registered = Vec::new();
    for job in folder.jobs {
        registered.push(client.register_job(&job).await?);
    }
    if args.json {
        print_json(&serde_json::json!({ "site": applied, "changes": changes, "jobs": registered }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Site version {} applied ({} change{}).",
        applied.version,
        changes.len(),
        if changes.len() == 1 { "" } else { "s" }
    );
    for response in registered {
        println!("Job registered as version {}; evaluation {}", response.job_version, response.eval_id.short());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run_alert(command: AlertCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertCommand::List { name, json, server } => {
            let client = server.client()?;
            let alerts = match &name {
                Some(name) => client.alerts_named(name).await?,
                None => client.alerts().await?,
            };
            if json {
                print_json(&alerts)?;
                return Ok(ExitCode::SUCCESS);
            }
            if alerts.alerts.is_empty() {
                println!("No active alerts.");
            } else {
                let mut rows = table(&["Alert", "State", "Severity", "Since", "Value", "Notes"]);
                for view in &alerts.alerts {
                    let alert = &view.alert;
                    let mut notes = Vec::new();
                    if let Some(ack) = &alert.acknowledged {
                        notes.push(format!("acked by {}", ack.by));
                    }
                    if let Some(silence) = &view.silenced_by {
                        notes.push(format!("silenced ({silence})"));
                    }
                    if let Some(runbook) = &view.runbook {
                        notes.push(format!("runbook: {runbook}"));
                    }
                    rows.add_row(vec![
                        alert.id.to_string(),
                        format!("{:?}", alert.state).to_lowercase(),
                        alert.labels.get("severity").cloned().unwrap_or_default(),
                        ago(alert.firing_since.unwrap_or(alert.active_since)),
                        alert.value.map(|value| format!("{value:.4}")).unwrap_or_default(),
                        notes.join("; "),
                    ]);
                }
                print_table(&rows);
            }
            let now = drover_types::Timestamp::now();
            let active: Vec<_> = alerts.silences.iter().filter(|silence| silence.is_active(now)).collect();
            if !active.is_empty() {
                println!();
                let mut rows = table(&["Silence", "Matchers", "Ends", "By", "Comment"]);
                for silence in active {
                    let matchers: Vec<String> = silence.matchers.iter().map(ToString::to_string).collect();
                    rows.add_row(vec![
                        silence.id.clone(),
                        matchers.join(", "),
                        super::output::local_time(silence.ends),
                        silence.author.clone(),
                        silence.comment.clone(),
                    ]);
                }
                print_table(&rows);
            }
            let received: Vec<_> = alerts.received.iter().filter(|alert| alert.firing).collect();
            if !received.is_empty() {
                println!();
                println!("From Alertmanager:");
                for alert in received {
                    let labels: Vec<String> =
                        alert.labels.iter().map(|(key, value)| format!("{key}={value:?}")).collect();
                    println!("  {{{}}} since {}", labels.join(", "), ago(alert.received_at));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AlertCommand::Top { since, json, server } => {
            let counts = server.client()?.alerts_top(&since).await?;
            if json {
                print_json(&counts)?;
                return Ok(ExitCode::SUCCESS);
            }
            if counts.is_empty() {
                println!("No alert fired in the last {since}.");
                return Ok(ExitCode::SUCCESS);
            }
            let widest = counts.iter().map(|count| count.count).max().unwrap_or(1).max(1);
            let mut rows = table(&["Alert", "Fired", "", "Last"]);
            for count in &counts {
                let width = usize::try_from(count.count * 30 / widest).unwrap_or(30).max(1);
                rows.add_row(vec![count.name.clone(), count.count.to_string(), "█".repeat(width), ago(count.last)]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        AlertCommand::Ack { id, server } => {
            server.client()?.ack_alert(&id).await?;
            println!("Acknowledged {id}: no more notifications until it resolves.");
            Ok(ExitCode::SUCCESS)
        }
        AlertCommand::Silence { matchers, duration, comment, server } => {
            let request = SilenceRequest { matchers, duration, comment };
            let silence = server.client()?.add_silence(&request).await?;
            println!("Silence {} until {}.", silence.id, super::output::local_time(silence.ends));
            Ok(ExitCode::SUCCESS)
        }
        AlertCommand::Unsilence { id, server } => {
            server.client()?.expire_silence(&id).await?;
            println!("Silence {id} ended.");
            Ok(ExitCode::SUCCESS)
        }
        AlertCommand::Notifications { json, server } => {
            let deliveries = server.client()?.notifications().await?;
            if json {
                print_json(&deliveries)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Queued", "Notifier", "Kind", "Name", "Status", "Attempts", "Error"]);
            for delivery in &deliveries {
                rows.add_row(vec![
                    super::output::local_time(delivery.queued_at),
                    delivery.notifier.clone(),
                    delivery.notification.kind.as_str().to_owned(),
                    delivery.notification.name.clone(),
                    delivery.status.as_str().to_owned(),
                    delivery.attempts.to_string(),
                    delivery.last_error.clone().unwrap_or_default(),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn run_hammer(command: HammerCommand) -> anyhow::Result<ExitCode> {
    match command {
        HammerCommand::List { json, server } => {
            let hammers = server.client()?.hammers().await?;
            if json {
                print_json(&hammers)?;
                return Ok(ExitCode::SUCCESS);
            }
            if hammers.is_empty() {
                println!("No hammers. Define them in the site folder and run `drover apply DIR`.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Hammer", "Trigger", "Action", "Mode", "State", "Runs (1h)", "Waiting", "Last run"]);
            for hammer in &hammers {
                rows.add_row(vec![
                    hammer.name.clone(),
                    hammer.trigger.clone(),
                    hammer.action.clone(),
                    hammer.mode.clone(),
                    if hammer.paused { "paused".to_owned() } else { "active".to_owned() },
                    format!("{}/{}", hammer.runs_last_hour, hammer.per_hour),
                    hammer.waiting.to_string(),
                    hammer.last_run.map(ago).unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        HammerCommand::History { hammer, limit, json, server } => {
            let entries = server.client()?.hammer_history(hammer.as_deref(), limit).await?;
            if json {
                print_json(&entries)?;
                return Ok(ExitCode::SUCCESS);
            }
            if entries.is_empty() {
                println!("No hammer has been triggered.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Run", "When", "Hammer", "Target", "Outcome", "Trigger", "Action / reason"]);
            for entry in &entries {
                let (run, outcome, detail) = match (&entry.run, &entry.refused) {
                    (Some(run), _) => {
                        let state = run.state.as_str().to_owned();
                        let outcome = match &run.decided_by {
                            Some(by) => format!("{state} ({by})"),
                            None => state,
                        };
                        let detail = entry.report.as_ref().map_or_else(String::new, |report| {
                            let first = report.output.lines().next().unwrap_or_default();
                            format!(
                                "{}{}",
                                report.action,
                                if first.is_empty() { String::new() } else { format!(" → {first}") }
                            )
                        });
                        (run.id.to_string(), outcome, detail)
                    }
                    (None, Some(reason)) => ("-".to_owned(), "refused".to_owned(), reason.clone()),
                    (None, None) => ("-".to_owned(), String::new(), String::new()),
                };
                rows.add_row(vec![
                    run,
                    ago(entry.at),
                    entry.hammer.clone(),
                    entry.target.clone(),
                    outcome,
                    entry.reason.clone(),
                    detail,
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        HammerCommand::Approve { run, server } => {
            server.client()?.decide_run(run, true).await?;
            println!("Run {run} approved: it acts now.");
            Ok(ExitCode::SUCCESS)
        }
        HammerCommand::Deny { run, server } => {
            server.client()?.decide_run(run, false).await?;
            println!("Run {run} denied.");
            Ok(ExitCode::SUCCESS)
        }
        HammerCommand::Pause { hammer, server } => {
            server.client()?.pause_hammer(hammer.as_deref(), true).await?;
            println!("{} paused.", hammer.map_or_else(|| "Every hammer".to_owned(), |name| format!("Hammer {name}")));
            Ok(ExitCode::SUCCESS)
        }
        HammerCommand::Resume { hammer, server } => {
            server.client()?.pause_hammer(hammer.as_deref(), false).await?;
            println!("{} resumed.", hammer.map_or_else(|| "Every hammer".to_owned(), |name| format!("Hammer {name}")));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn run_runbook(command: RunbookCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunbookCommand::Show { name, server } => {
            let runbook = server.client()?.runbook(&name).await?;
            match runbook.markdown {
                Some(markdown) => print!("{markdown}"),
                None => println!("{}", runbook.runbook),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
