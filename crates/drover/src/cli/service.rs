//! `drover service …`: the service catalogue (docs/services.md).
//!
//! `drover service info NAME --watch` follows a service with the
//! catalogue's blocking queries (`GET /v1/service/NAME?index=&wait=`): the
//! server holds each request until the catalogue moves past the index
//! last seen, and the command prints the instances again only when the
//! set it shows changed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use drover_client::{Client, Wait};
use drover_proto::api::{ServiceHealth, ServiceInstance};

use super::ServerAddress;
use super::output::{print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// List the services of the catalogue, with their instance counts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show a service's instances: where they run, on which port, healthy or not.
    Info {
        /// The service's name.
        name: String,
        /// Only the instances announcing this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only the instances whose checks pass (those DNS announces).
        #[arg(long)]
        healthy: bool,
        /// Print JSON (with --watch: one JSON array a line).
        #[arg(long)]
        json: bool,
        /// Keep running and print the instances again each time they
        /// change (an instance starts, stops, passes or fails its checks),
        /// until interrupted.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// How long the server may hold one blocking query of `--watch`.
const WATCH_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn run(command: ServiceCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::List { json, server } => {
            let services = server.client()?.services().await?;
            if json {
                print_json(&services)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["Name", "Instances", "Healthy", "Tags"]);
            for service in &services {
                rows.add_row(vec![
                    service.name.clone(),
                    service.instances.to_string(),
                    service.healthy.to_string(),
                    service.tags.join(","),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Info { name, tag, healthy, json, watch, server } => {
            let client = server.client()?;
            if watch {
                return watch_instances(&client, &name, tag.as_deref(), healthy, json).await;
            }
            let (instances, _) = client.service_instances(&name, tag.as_deref(), healthy, None).await?;
            if json {
                print_json(&instances)?;
                return Ok(ExitCode::SUCCESS);
            }
            if instances.is_empty() {
                let services = client.services().await?;
                let known = services.iter().map(|service| service.name.as_str());
                if services.iter().any(|service| service.name == name) {
                    anyhow::bail!("service {name:?} has no instance matching the --tag and --healthy given");
                }
                anyhow::bail!(
                    "no service named {name:?} runs: `drover service list` shows the services{}",
                    drover_types::suggest::did_you_mean(&name, known)
                );
            }
            print_instances(&instances);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_instances(instances: &[ServiceInstance]) {
    let mut rows = table(&["Alloc", "Job", "Node", "Address", "Port", "Health", "Tags"]);
    for instance in instances {
        let health = match instance.health {
            ServiceHealth::Passing => "passing",
            ServiceHealth::Critical => "critical",
        };
        rows.add_row(vec![
            instance.alloc_id.short().to_owned(),
            instance.job_id.to_string(),
            instance.node_name.clone(),
            instance.address.clone(),
            instance.port.map_or_else(|| "-".to_owned(), |port| port.to_string()),
            health.to_owned(),
            instance.tags.join(","),
        ]);
    }
    print_table(&rows);
}

/// `drover service info NAME --watch`: the instances now, then again each
/// time they change, until interrupted (or the servers cannot be reached).
async fn watch_instances(
    client: &Client,
    name: &str,
    tag: Option<&str>,
    healthy_only: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut index = 0;
    let mut shown: Option<Vec<ServiceInstance>> = None;
    loop {
        let wait = (index > 0).then_some(Wait { index, timeout: WATCH_WAIT });
        let (instances, answered_at) = client.service_instances(name, tag, healthy_only, wait).await?;
        // An index going back (another server answered, a restore) starts
        // over with a plain read rather than waiting for a past index.
        index = if answered_at < index { 0 } else { answered_at.max(1) };
        if shown.as_ref() == Some(&instances) {
            continue;
        }
        if json {
            println!("{}", serde_json::to_string(&instances)?);
        } else {
            let passing = instances.iter().filter(|instance| instance.health == ServiceHealth::Passing).count();
            println!("{name}: {} instance(s), {passing} passing (index {answered_at})", instances.len());
            print_instances(&instances);
            println!();
        }
        shown = Some(instances);
    }
}
