//! drover's agent.
//!
//! An [`Agent`] runs on every machine. It fingerprints the machine, dials
//! out to a server over one WebSocket session (the servers never connect
//! to agents), registers, heartbeats, and runs the allocations the servers
//! assign to it:
//!
//! ```text
//!  session ──Allocations──▶ AllocManager ──▶ alloc runner ──▶ task runner × N
//!     ▲                                          │  │  │            │ Supervisor (restart policy)
//!     └──────────────AllocUpdates◀───────────────┘  │  │            │ ExecDriver (executor shim)
//!                                                   │  └─▶ probes (tcp, http, script checks)
//!                                  CheckWatcher ◀───┤      check_restart ──▶ TaskControl::Restart
//!                                  HealthWatcher ◀──┘      deployment health (persisted decision)
//! ```
//!
//! Tasks survive the agent: each task runs under an executor shim
//! (`drover-executor`), and the allocation specs and supervisor states are kept
//! in the data directory, so a restarted agent re-attaches to its running
//! tasks and resumes supervision.
//!
//! The agent also runs the health checks of its tasks (`checks.rs` decides,
//! `probe.rs` probes) and decides the deployment health of allocations
//! placed by a deployment (`deployment_health.rs`), as Nomad's client does.

mod alloc_control;
mod alloc_runner;
mod checks;
mod deployment_health;
mod enrol;
mod env;
mod exec;
pub mod facts;
mod logs;
mod logship;
mod manager;
mod prepare;
mod probe;
mod session;
mod task;
mod templates;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use drover_executor::{DriverConfig, ExecDriver, Isolation};
use drover_types::{NodeId, NodeLabels};

pub use crate::enrol::NodeTlsFiles;
pub use crate::logship::{DEFAULT_PARTIAL_LINE_IDLE, LogConfig};
use crate::manager::AllocManager;

/// Everything an agent needs to start.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Server addresses (`host:port`), tried in order.
    pub servers: Vec<String>,
    /// Where node identity, allocation directories and task state live.
    pub data_dir: PathBuf,
    /// Node name; the hostname when `None`.
    pub name: Option<String>,
    /// Host group, environment, owner, zone and meta reported by the agent.
    pub labels: NodeLabels,
    /// How task executor shims are started (normally the `drover` binary
    /// itself with `executor`).
    pub executor: DriverConfig,
    /// Stop every task when the agent shuts down (dev mode); otherwise tasks
    /// keep running and the next agent re-attaches to them.
    pub stop_tasks_on_shutdown: bool,
    /// Which logs to collect and ship besides the tasks' output.
    pub logs: LogConfig,
    /// Answer `drover exec` (off: every command is refused on this node).
    pub allow_exec: bool,
    /// The user `drover exec` commands run as when they name none; `None`:
    /// `nobody` when the agent runs as root, else the agent's own user.
    pub exec_user: Option<String>,
    /// The join token to enrol with on first start (a secure cluster).
    pub join_token: Option<String>,
    /// A node certificate made by the operator's CA, instead of enrolling.
    pub tls_files: Option<NodeTlsFiles>,
}

/// Errors starting an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The node's certificate could not be loaded, obtained or renewed.
    #[error("{0}")]
    Tls(String),
    /// The data directory could not be prepared.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Log collection could not start (spool, checkpoints, a syslog port).
    #[error("cannot collect logs: {0}")]
    Logs(String),
    /// No server address was given.
    #[error("no server address given: pass --servers host:port")]
    NoServers,
}

/// A running agent.
#[derive(Clone)]
pub struct Agent {
    node_id: NodeId,
    name: String,
    shutdown: CancellationToken,
    manager: Arc<AllocManager>,
    stop_tasks_on_shutdown: bool,
    session_done: Arc<tokio::sync::Notify>,
    /// What the session says in `Hello`; a change makes it register again.
    registration: Arc<tokio::sync::watch::Sender<drover_types::NodeRegistration>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Agent")
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How this agent runs `drover exec`: as `--exec-user`, or `nobody` when it
/// runs as root (root only for callers with exec-as-root who ask for it).
fn exec_policy(config: &AgentConfig) -> exec::ExecPolicy {
    let default_user =
        config.exec_user.clone().or_else(|| nix::unistd::geteuid().is_root().then(|| "nobody".to_owned()));
    exec::ExecPolicy { allowed: config.allow_exec, default_user }
}

impl Agent {
    /// Starts the agent: restores the allocations found in the data
    /// directory (re-attaching to their tasks) and connects to the servers.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        if config.servers.is_empty() {
            return Err(AgentError::NoServers);
        }
        let data_dir_error = |source| AgentError::DataDir { path: config.data_dir.clone(), source };
        // Not 0700: tasks that run as another user reach their directories
        // under it. The node's key is in `tls/` (0700, the key 0600).
        std::fs::create_dir_all(config.data_dir.join("allocs")).map_err(data_dir_error)?;
        let node_id = load_or_create_node_id(&config.data_dir).map_err(data_dir_error)?;
        let fingerprint = facts::fingerprint();
        let name = config
            .name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .or_else(|| fingerprint.attributes.get("unique.hostname").cloned())
            .unwrap_or_else(|| node_id.short().to_owned());
        let isolation = Isolation::detect();
        tracing::info!(node = %name, node_id = %node_id, isolation = isolation.mode.as_str(), reason = %isolation.reason, "agent starting");
        let driver = ExecDriver::new(config.executor.clone(), isolation.clone());
        let (updates_sender, updates_receiver) = tokio::sync::mpsc::unbounded_channel();
        let manager = Arc::new(AllocManager::new(config.data_dir.join("allocs"), driver, updates_sender));
        manager.restore().await;

        let mut attributes = fingerprint.attributes;
        attributes.insert("driver.exec.isolation".to_owned(), isolation.mode.as_str().to_owned());
        attributes.insert("driver.exec".to_owned(), "1".to_owned());
        attributes.insert("driver.raw_exec".to_owned(), "1".to_owned());
        let registration = drover_types::NodeRegistration {
            id: node_id.clone(),
            name: name.clone(),
            labels: config.labels.clone(),
            attributes,
            resources: fingerprint.resources,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let shutdown = CancellationToken::new();
        let tls = enrol::NodeTls::prepare(
            &config.data_dir,
            &name,
            config.labels.hostgroup.as_deref(),
            &config.servers,
            config.join_token.as_deref(),
            config.tls_files.as_ref(),
        )
        .await?;
        if let Some(tls) = &tls {
            enrol::spawn_renewal(Arc::clone(tls), config.servers.clone(), name.clone(), shutdown.child_token());
        }
        let shipper =
            logship::start(&config.logs, &config.data_dir, &config.data_dir.join("allocs"), shutdown.child_token())
                .await
                .map_err(AgentError::Logs)?;
        let session_done = Arc::new(tokio::sync::Notify::new());
        let (registration, registration_updates) = tokio::sync::watch::channel(registration);
        tokio::spawn(session::run(
            config.servers.clone(),
            tls,
            registration_updates,
            session::Machine::new(Arc::clone(&manager), shipper, exec_policy(&config)),
            updates_receiver,
            shutdown.clone(),
            Arc::clone(&session_done),
        ));
        Ok(Agent {
            node_id,
            name,
            shutdown,
            manager,
            stop_tasks_on_shutdown: config.stop_tasks_on_shutdown,
            session_done,
            registration: Arc::new(registration),
        })
    }

    /// The node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reports new labels (a configuration reload): the session registers
    /// the node again with them, through a new connection (tasks are not
    /// touched). Returns whether they differ from the current ones.
    pub fn update_labels(&self, labels: NodeLabels) -> bool {
        self.registration.send_if_modified(|registration| {
            if registration.labels == labels {
                return false;
            }
            registration.labels = labels;
            true
        })
    }

    /// Stops the agent. In dev mode (or with `stop_tasks_on_shutdown`) every
    /// task is stopped first; otherwise tasks keep running.
    pub async fn shutdown(&self) {
        if self.stop_tasks_on_shutdown {
            self.manager.stop_all().await;
        } else {
            self.manager.detach_all().await;
        }
        self.shutdown.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.session_done.notified()).await;
    }
}

fn load_or_create_node_id(data_dir: &std::path::Path) -> std::io::Result<NodeId> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(NodeId::new(text.trim())),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let node_id = NodeId::new(uuid::Uuid::new_v4().to_string());
    std::fs::write(&path, format!("{node_id}\n"))?;
    Ok(node_id)
}
