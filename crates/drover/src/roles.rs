//! The long-running roles: `server`, `agent` and `dev`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use drover_agent::{Agent, AgentConfig};
use drover_executor::DriverConfig;
use drover_server::{Server, ServerConfig};
use drover_types::{DurationSpec, NodeLabels};

use crate::config;

/// The example job `drover dev` starts.
const EXAMPLE_JOB: &str = include_str!("../../../examples/hello.nomad.hcl");

/// `drover dev`.
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Keep data here instead of a throwaway directory.
    #[arg(long, env = "DROVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:4747")]
    bind: SocketAddr,
    /// Do not start the example job.
    #[arg(long)]
    no_example: bool,
    /// Address of the DNS interface for the zone drover. (docs/services.md).
    #[arg(long, default_value = "127.0.0.1:8600")]
    dns_bind: SocketAddr,
}

/// `drover server [members|join|health]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct ServerCli {
    #[command(subcommand)]
    pub(crate) command: Option<crate::cli::server::ServerCommand>,
    #[command(flatten)]
    pub(crate) run: Box<ServerArgs>,
}

/// `drover server`: run a server. Its flags, environment variables and
/// file keys are the table `config::server::KEYS`.
#[derive(Clone, Debug)]
pub(crate) struct ServerArgs(config::RoleArgs);
config::role_args!(ServerArgs, config::server::KEYS);

/// `drover agent`: run an agent. Its flags, environment variables and file
/// keys are the table `config::agent::KEYS`.
#[derive(Clone, Debug)]
pub(crate) struct AgentArgs(config::RoleArgs);
config::role_args!(AgentArgs, config::agent::KEYS);

/// Labels `drover node update` sets (an agent's are settings of its own,
/// `config::agent::KEYS`).
#[derive(Debug, Args)]
pub(crate) struct LabelArgs {
    /// Host group, a path such as `bi/batch/gridworker`.
    #[arg(long)]
    hostgroup: Option<String>,
    /// Environment, such as `production` or `qa`.
    #[arg(long)]
    environment: Option<String>,
    /// Owner (a person or team).
    #[arg(long)]
    owner: Option<String>,
    /// Zone (Nomad's datacenter).
    #[arg(long)]
    zone: Option<String>,
    /// Free-form metadata, `key=value`; repeatable.
    #[arg(long = "meta", value_parser = parse_key_value)]
    meta: Vec<(String, String)>,
}

impl LabelArgs {
    pub(crate) fn labels(&self) -> NodeLabels {
        NodeLabels {
            hostgroup: self.hostgroup.clone(),
            environment: self.environment.clone(),
            owner: self.owner.clone(),
            zone: self.zone.clone(),
            meta: self.meta.iter().cloned().collect(),
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<DurationSpec>().map(DurationSpec::get).map_err(|error| error.to_string())
}

pub(crate) fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got {text:?}")),
    }
}

pub(crate) async fn server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let ServerArgs(args) = args;
    let mut settings = args.load_at_start(config::server::ROLE, config::server::KEYS)?;
    let plan = config::server::server_plan(&settings);
    if args.print_config {
        print!("{}", settings.render());
        return plan.map(|_| ExitCode::SUCCESS);
    }
    let config::server::ServerPlan { mut config, bind: address } = plan?;
    if let drover_server::security::SecurityMode::Secure(tls) = &mut config.security {
        tls.join_token = config::server::read_join_token(&settings)?;
    }
    config::reload::apply_log_level(&settings);
    let data_dir = config.data_dir.clone();
    let listener = bind(address).await?;
    let server = Server::start(config).await.context("cannot start the server")?;
    if let Some(dns) = config::server::dns_settings(&settings)? {
        let dns_bind = dns.bind;
        drover_server::dns::serve(&server, dns)
            .await
            .with_context(|| format!("cannot answer DNS on {dns_bind} ({})", settings.named("dns.bind")))?;
    }
    match server.tls() {
        Some(tls) => tracing::info!(
            address = %address,
            data_dir = %data_dir.display(),
            ca = %tls.ca_path().display(),
            "server running: HTTPS and mutual TLS, ACLs on; give CLI users the CA certificate (DROVER_CACERT) and run `drover acl bootstrap` once"
        ),
        None => {
            tracing::info!(address = %address, data_dir = %data_dir.display(), "server running");
            spawn_insecure_warning(server.clone());
        }
    }
    // SIGHUP: the log level is all a running server changes.
    let mut hangups = config::reload::Hangups::watch();
    let shutdown = server.shutdown_token().clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = hangups.next() => {
                    config::reload::reload(&args, &mut settings, |_, _| {});
                }
            }
        }
    });
    serve(listener, server.clone()).await?;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let AgentArgs(args) = args;
    let mut settings = args.load_at_start(config::agent::ROLE, config::agent::KEYS)?;
    let config = config::agent::agent_config(&settings);
    if args.print_config {
        print!("{}", settings.render());
        return config.map(|_| ExitCode::SUCCESS);
    }
    let mut config = config?;
    config.join_token = config::agent::read_join_token(&settings)?;
    config::reload::apply_log_level(&settings);
    let mut hangups = config::reload::Hangups::watch();
    let agent = Agent::start(config).await.context("cannot start the agent")?;
    tracing::info!(node = agent.name(), "agent running; tasks keep running when it stops");
    loop {
        tokio::select! {
            () = shutdown_signal() => break,
            () = hangups.next() => {
                // Labels and meta: the node registers again with them.
                config::reload::reload(&args, &mut settings, |running, _| {
                    agent.update_labels(config::agent::labels(running));
                });
            }
        }
    }
    agent.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let (data_dir, _temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temporary =
                tempfile::Builder::new().prefix("drover-dev-").tempdir().context("cannot create a data directory")?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let listener = bind(args.bind).await?;
    let config = ServerConfig::new(data_dir.join("server"), args.bind.to_string());
    let server = Server::start(config).await.context("cannot start the server")?;
    let serving = tokio::spawn(serve(listener, server.clone()));
    let dns = drover_server::dns::DnsSettings {
        bind: args.dns_bind,
        ttl: drover_server::dns::DEFAULT_TTL,
        recursors: Vec::new(),
    };
    if let Err(error) = drover_server::dns::serve(&server, dns).await {
        // DNS is an extra of the one-minute try: another drover dev (or a
        // Consul agent) on the port is no fault of this run, so info.
        tracing::info!(%error, address = %args.dns_bind, "DNS is off: the address is taken (--dns-bind picks another)");
    }

    let agent = Agent::start(AgentConfig {
        servers: vec![args.bind.to_string()],
        data_dir: data_dir.join("agent"),
        name: None,
        labels: NodeLabels {
            hostgroup: Some("dev".to_owned()),
            environment: Some("dev".to_owned()),
            ..Default::default()
        },
        executor: DriverConfig::current_exe().context("cannot find the drover executable for task executors")?,
        stop_tasks_on_shutdown: true,
        logs: drover_agent::LogConfig::default(),
        allow_exec: true,
        exec_user: None,
        join_token: None,
        tls_files: None,
    })
    .await
    .context("cannot start the agent")?;

    let mut example_job = None;
    if !args.no_example {
        let source = drover_jobspec::Source::new("examples/hello.nomad.hcl", EXAMPLE_JOB);
        let job = drover_jobspec::parse_job(&source, &drover_jobspec::VarInputs::default())
            .map_err(|diagnostics| anyhow::anyhow!("the built-in example job is invalid:\n{diagnostics}"))?;
        example_job = Some(job.id.to_string());
        server.register_job(job).await.map_err(|error| anyhow::anyhow!("cannot start the example job: {error}"))?;
    }
    // The banner comes last, after the start-up lines, so it stays on screen.
    // One signal listener throughout: a Ctrl-C just after the banner is not lost.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let started =
        crate::dev_banner::wait_until_started(&server, example_job.as_deref(), crate::dev_banner::START_DEADLINE);
    let example = tokio::select! {
        example = started => Some(example),
        () = &mut shutdown => None,
    };
    if let Some(example) = example {
        crate::dev_banner::print(&crate::dev_banner::Banner {
            address: args.bind,
            data_dir: &data_dir,
            removed_on_exit: args.data_dir.is_none(),
            node: agent.name(),
            example,
        });
        shutdown.await;
    }
    crate::cli::output::print_line("stopping: tasks first, then the server");
    agent.shutdown().await;
    server.shutdown().await;
    serving.abort();
    Ok(ExitCode::SUCCESS)
}

async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address}; is another drover running? choose another address with --bind")
    })
}

/// Serves the API (and agent sessions, and the servers' own traffic) on
/// one port: HTTPS with optional client certificates on a secure server,
/// plain HTTP on an insecure one.
async fn serve(listener: tokio::net::TcpListener, server: Server) -> anyhow::Result<()> {
    let router = drover_api::router(server.clone());
    let app = router.into_make_service_with_connect_info::<drover_tls::PeerInfo>();
    match server.tls().cloned() {
        Some(tls) => {
            // Built once: it reads this server's certificate afresh at
            // every handshake, so a renewal needs no new configuration.
            let config = tls.server_config().map_err(|error| anyhow::anyhow!("cannot set up TLS: {error}"))?;
            let listener = drover_tls::TlsListener::new(listener, std::sync::Arc::new(move || config.clone()));
            axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
        }
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await,
    }
    .context("the API server failed")
}

/// `--insecure`: say so at start and every hour.
fn spawn_insecure_warning(server: Server) {
    tokio::spawn(async move {
        loop {
            tracing::warn!(
                "this server is INSECURE (--insecure): plain HTTP, no certificates, no ACLs; anyone who reaches it can run commands as root on every node"
            );
            tokio::select! {
                () = server.shutdown_token().cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
