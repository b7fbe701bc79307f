//! The long-running roles: `server`, `agent` and `dev`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use drover_agent::{Agent, AgentConfig};
use drover_executor::DriverConfig;
use drover_server::{Bootstrap, HeartbeatConfig, Server, ServerConfig};
use drover_types::{DurationSpec, NodeLabels};

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

/// `drover server --data-dir D --bind ADDR`: run a server.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Where the Raft log and snapshots live.
    #[arg(long, env = "DROVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API (also used by agents and other servers).
    #[arg(long, default_value = "127.0.0.1:4747")]
    bind: SocketAddr,
    /// Address other servers and agents use to reach this one, when it
    /// differs from --bind (for example behind NAT).
    #[arg(long)]
    advertise: Option<String>,
    /// Form a new cluster once this many servers (this one included) are
    /// up: give the same number and the same --join list to each of them.
    #[arg(long, value_name = "N")]
    bootstrap_expect: Option<usize>,
    /// Addresses of the other servers, comma-separated. Without
    /// --bootstrap-expect: join the running cluster they belong to.
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    join: Vec<String>,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
    #[command(flatten)]
    logs: ServerLogArgs,
    /// Refuse `drover exec` on this server (and on the agents connected
    /// to it, when asked through another server).
    #[arg(long)]
    disable_exec: bool,
    /// `drover server health` reports a problem when the data directory's
    /// file system has less free than this, in MiB (0: never).
    #[arg(long, value_name = "MIB", default_value_t = drover_server::operator::MIN_FREE_DISK_BYTES / (1024 * 1024))]
    min_free_disk_mb: u64,
    /// Start as a new, empty server although the data directory belonged
    /// to a cluster: the old Raft data is moved aside and the server gets
    /// a new id. Only to recover on purpose (docs/operations.md, "What
    /// drover survives").
    #[arg(long)]
    forget_cluster: bool,
    #[command(flatten)]
    security: SecurityArgs,
}

/// How a server protects its port (docs/security.md).
#[derive(Debug, Args)]
pub(crate) struct SecurityArgs {
    /// Plain HTTP without certificates or ACLs: anyone who reaches the
    /// port may do anything. Only for trusted networks and tests.
    #[arg(long)]
    insecure: bool,
    /// Use this CA certificate (PEM) instead of making one; give the same
    /// to every server of a --bootstrap-expect cluster.
    #[arg(long, value_name = "FILE", requires = "tls_ca_key", conflicts_with = "insecure")]
    tls_ca_cert: Option<PathBuf>,
    /// The key of --tls-ca-cert (a file only its owner can read).
    #[arg(long, value_name = "FILE", requires = "tls_ca_cert", conflicts_with = "insecure")]
    tls_ca_key: Option<PathBuf>,
    /// Join a secure cluster (with --join) with a server join token
    /// (`drover server join-token create`): the cluster CA is fetched from
    /// the servers in --join on first start. Prefer DROVER_JOIN_TOKEN or
    /// --join-token-file: a flag shows in `ps`.
    #[arg(long, env = "DROVER_JOIN_TOKEN", hide_env_values = true, conflicts_with_all = ["insecure", "tls_ca_cert"])]
    join_token: Option<String>,
    /// A file holding the server join token.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["join_token", "insecure", "tls_ca_cert"])]
    join_token_file: Option<PathBuf>,
    /// Keep audit events this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "90d")]
    audit_retention: Duration,
    /// How long server and node certificates are valid; they are renewed
    /// two thirds into it, with no restart.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "30d")]
    tls_cert_validity: Duration,
}

impl SecurityArgs {
    fn mode(&self) -> anyhow::Result<drover_server::security::SecurityMode> {
        if self.insecure {
            return Ok(drover_server::security::SecurityMode::Insecure);
        }
        let join_token =
            match &self.join_token_file {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the join token file {} (--join-token-file)", path.display())
                })?),
                None => self.join_token.clone(),
            };
        Ok(drover_server::security::SecurityMode::Secure(drover_server::security::TlsSettings {
            ca_cert: self.tls_ca_cert.clone(),
            ca_key: self.tls_ca_key.clone(),
            join_token,
            validity: self.tls_cert_validity,
        }))
    }
}

/// The log index of a server.
#[derive(Debug, Args)]
pub(crate) struct ServerLogArgs {
    /// Delete indexed log lines older than this (whole hourly partitions).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    log_retention: Option<Duration>,
    /// Delete the oldest partitions while the index is bigger than this, in MiB.
    #[arg(long, value_name = "MIB")]
    log_max_mb: Option<u64>,
    /// Receive syslog (UDP and TCP) on this address, for machines without
    /// an agent and network devices.
    #[arg(long, value_name = "ADDR")]
    syslog_bind: Option<SocketAddr>,
}

impl ServerLogArgs {
    fn settings(&self) -> drover_server::LogSettings {
        drover_server::LogSettings {
            retention: drover_logs::Retention {
                max_age: self.log_retention,
                max_bytes: self.log_max_mb.map(|mib| mib * 1024 * 1024),
            },
            syslog: self.syslog_bind,
        }
    }
}

impl ServerArgs {
    fn bootstrap(&self) -> anyhow::Result<Bootstrap> {
        match (self.bootstrap_expect, self.join.is_empty()) {
            (None | Some(1), true) => Ok(Bootstrap::Single),
            (Some(0), _) => anyhow::bail!("--bootstrap-expect must be at least 1"),
            (Some(expect), true) => anyhow::bail!(
                "--bootstrap-expect {expect} needs --join with the addresses of the other servers, for example --join a:4747,b:4747"
            ),
            (expect, false) => Ok(Bootstrap::Cluster { expect: expect.unwrap_or(0), join: self.join.clone() }),
        }
    }
}

/// Heartbeat settings of a server.
#[derive(Debug, Args)]
pub(crate) struct HeartbeatArgs {
    /// How often agents heartbeat.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Silence after which a node is marked down.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    heartbeat_ttl: Duration,
}

impl HeartbeatArgs {
    fn config(&self) -> anyhow::Result<HeartbeatConfig> {
        if self.heartbeat_ttl <= self.heartbeat_interval {
            bail!(
                "--heartbeat-ttl ({}) must be longer than --heartbeat-interval ({})",
                DurationSpec(self.heartbeat_ttl),
                DurationSpec(self.heartbeat_interval)
            );
        }
        Ok(HeartbeatConfig { interval: self.heartbeat_interval, ttl: self.heartbeat_ttl, ..HeartbeatConfig::default() })
    }
}

/// `drover agent`.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Server addresses, comma-separated (`host:port`).
    #[arg(long, env = "DROVER_SERVERS", value_delimiter = ',', required = true)]
    servers: Vec<String>,
    /// Where allocation directories and task state live.
    #[arg(long, env = "DROVER_DATA_DIR")]
    data_dir: PathBuf,
    /// Node name (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    labels: LabelArgs,
    #[command(flatten)]
    logs: AgentLogArgs,
    /// Refuse every `drover exec` on this node.
    #[arg(long)]
    disable_exec: bool,
    /// Run `drover exec` commands that name no user (`-u`) as this user
    /// (default: `nobody` when the agent runs as root, else the agent's
    /// user). Root only for callers with exec-as-root who ask `-u root`.
    #[arg(long, value_name = "USER")]
    exec_user: Option<String>,
    /// Enrol with a secure cluster on first start (`drover node join-token
    /// create` prints one); later starts use the certificate kept in
    /// --data-dir. Prefer DROVER_JOIN_TOKEN or --join-token-file: a flag
    /// shows in `ps`.
    #[arg(long, env = "DROVER_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// A file holding the join token.
    #[arg(long, value_name = "FILE", conflicts_with = "join_token")]
    join_token_file: Option<PathBuf>,
}

/// Which logs an agent collects besides its tasks' output.
#[derive(Debug, Args)]
pub(crate) struct AgentLogArgs {
    /// Follow files matching this glob (`/var/log/*.log`); repeatable.
    /// Rotation by rename and by copy-truncate is followed.
    #[arg(long = "log-file", value_name = "GLOB")]
    log_files: Vec<String>,
    /// Receive syslog (RFC 3164 and 5424, UDP and TCP) on this address,
    /// for example 0.0.0.0:514.
    #[arg(long, value_name = "ADDR")]
    syslog_bind: Option<SocketAddr>,
    /// Read the systemd journal.
    #[arg(long)]
    journal: bool,
    /// Disk the log spool may use before the oldest unshipped lines are
    /// dropped (and counted), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    log_spool_mb: u64,
}

impl AgentLogArgs {
    fn config(&self) -> drover_agent::LogConfig {
        drover_agent::LogConfig {
            files: self.log_files.clone(),
            syslog: self.syslog_bind,
            journal: self.journal,
            spool_max_bytes: self.log_spool_mb.max(1) * 1024 * 1024,
        }
    }
}

/// Labels an agent reports (and `drover node update` sets).
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
    let Some(data_dir) = args.data_dir.clone() else {
        anyhow::bail!("`drover server` needs --data-dir (or DROVER_DATA_DIR): where the Raft log and state live");
    };
    let advertise = args.advertise.clone().unwrap_or_else(|| args.bind.to_string());
    let mut config = ServerConfig::new(data_dir.clone(), advertise);
    config.heartbeat = args.heartbeat.config()?;
    config.bootstrap = args.bootstrap()?;
    config.logs = args.logs.settings();
    config.exec_enabled = !args.disable_exec;
    config.min_free_disk_bytes = args.min_free_disk_mb.saturating_mul(1024 * 1024);
    config.forget_cluster = args.forget_cluster;
    if args.security.tls_cert_validity < Duration::from_secs(15) {
        bail!("--tls-cert-validity must be at least 15s (certificates are renewed two thirds into it)");
    }
    config.security = args.security.mode()?;
    config.audit_retention = args.security.audit_retention;
    let listener = bind(args.bind).await?;
    let server = Server::start(config).await.context("cannot start the server")?;
    match server.tls() {
        Some(tls) => tracing::info!(
            address = %args.bind,
            data_dir = %data_dir.display(),
            ca = %tls.ca_path().display(),
            "server running: HTTPS and mutual TLS, ACLs on; give CLI users the CA certificate (DROVER_CACERT) and run `drover acl bootstrap` once"
        ),
        None => {
            tracing::info!(address = %args.bind, data_dir = %data_dir.display(), "server running");
            spawn_insecure_warning(server.clone());
        }
    }
    serve(listener, server.clone()).await?;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let config =
        AgentConfig {
            servers: args.servers.clone(),
            data_dir: args.data_dir.clone(),
            name: args.name.clone(),
            labels: args.labels.labels(),
            executor: DriverConfig::current_exe().context("cannot find the drover executable for task executors")?,
            stop_tasks_on_shutdown: false,
            logs: args.logs.config(),
            allow_exec: !args.disable_exec,
            exec_user: args.exec_user.clone(),
            join_token: match &args.join_token_file {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the join token file {} (--join-token-file)", path.display())
                })?),
                None => args.join_token.clone(),
            },
        };
    let agent = Agent::start(config).await.context("cannot start the agent")?;
    tracing::info!(node = agent.name(), "agent running; tasks keep running when it stops");
    shutdown_signal().await;
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
    })
    .await
    .context("cannot start the agent")?;

    let address = format!("http://{}", args.bind);
    println!("drover dev: server and agent running");
    println!("  API        {address}");
    println!("  data       {}{}", data_dir.display(), if args.data_dir.is_none() { " (removed on exit)" } else { "" });
    println!("  node       {}", agent.name());
    if !args.no_example {
        let source = drover_jobspec::Source::new("examples/hello.nomad.hcl", EXAMPLE_JOB);
        let job = drover_jobspec::parse_job(&source, &drover_jobspec::VarInputs::default())
            .map_err(|diagnostics| anyhow::anyhow!("the built-in example job is invalid:\n{diagnostics}"))?;
        server.register_job(job).await.map_err(|error| anyhow::anyhow!("cannot start the example job: {error}"))?;
        println!("  example    job \"hello\" started");
    }
    println!();
    println!("In another terminal:");
    println!("  export DROVER_ADDR={address}");
    println!("  drover job status hello");
    println!("  drover alloc logs -f <alloc-id>      # the id is in the status output");
    println!("  drover job run examples/batch.nomad.hcl");
    println!();
    println!("Press Ctrl-C to stop (tasks are stopped, data removed).");

    shutdown_signal().await;
    println!("stopping: tasks first, then the server");
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
