//! `drover service …`: the service catalogue (docs/services.md).

use std::process::ExitCode;

use clap::Subcommand;
use drover_proto::api::ServiceHealth;

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
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

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
        ServiceCommand::Info { name, tag, healthy, json, server } => {
            let client = server.client()?;
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
            let mut rows = table(&["Alloc", "Job", "Node", "Address", "Port", "Health", "Tags"]);
            for instance in &instances {
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
            Ok(ExitCode::SUCCESS)
        }
    }
}
