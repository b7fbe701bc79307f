//! Server configuration.

use std::path::PathBuf;
use std::time::Duration;

/// How a server finds its cluster on first start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// A cluster of one: this server initialises Raft with itself as the
    /// only voter (ignored when the data directory already holds state).
    Single,
    /// Join an existing cluster, or form one once `expect` servers are known:
    /// `join` lists peer addresses.
    Cluster {
        /// Number of voters to wait for before bootstrapping.
        expect: usize,
        /// Addresses of the other servers.
        join: Vec<String>,
    },
}

/// Heartbeat settings, decided by the servers and told to agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// How often agents heartbeat.
    pub interval: Duration,
    /// How long a node may stay silent before it is marked down.
    pub ttl: Duration,
    /// Extra time every node gets after a server becomes leader, so that a
    /// control-plane hiccup never marks the whole fleet down.
    pub leader_grace: Duration,
}

impl Default for HeartbeatConfig {
    /// Defaults that detect a dead machine within 10 s: heartbeat every 4 s,
    /// down after 8 s of silence (two heartbeats in a row must be missed;
    /// the tracker looks every 2 s). 4 s rather than less keeps 10,000 nodes
    /// under 5 % of one core (docs/benchmarks.md).
    fn default() -> Self {
        HeartbeatConfig {
            interval: Duration::from_secs(4),
            ttl: Duration::from_secs(8),
            leader_grace: Duration::from_secs(5),
        }
    }
}

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the Raft log, snapshots and the server id live.
    pub data_dir: PathBuf,
    /// The address peers and agents use to reach this server (`host:port`).
    pub advertise_address: String,
    /// How to form or join a cluster.
    pub bootstrap: Bootstrap,
    /// Heartbeat settings.
    pub heartbeat: HeartbeatConfig,
    /// Raft heartbeat interval.
    pub raft_heartbeat: Duration,
    /// Raft election timeout range.
    pub election_timeout: (Duration, Duration),
    /// Entries between two snapshots.
    pub snapshot_every: u64,
    /// Scheduler workers on the leader.
    pub num_scheduler_workers: usize,
    /// The log index: retention, syslog.
    pub logs: crate::logs::LogSettings,
    /// Whether `drover exec` may run commands through this server.
    pub exec_enabled: bool,
    /// Free disk on the data directory below which `drover server health`
    /// reports a problem (0: never).
    pub min_free_disk_bytes: u64,
    /// Start as a new, empty server although the data directory belonged
    /// to a cluster: its Raft data is moved aside and it gets a new server
    /// id (`--forget-cluster`, the deliberate way out of the refusal to
    /// start with a missing Raft log).
    pub forget_cluster: bool,
    /// HTTPS, mutual TLS and ACLs, or plain HTTP (`--insecure`).
    pub security: crate::security::SecurityMode,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// How long a node may stay down before the leader purges it
    /// (`--node-gc-after`).
    pub node_gc_after: Duration,
}

/// How long a down node is kept by default before the leader purges it.
pub const NODE_GC_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

impl ServerConfig {
    /// A configuration with drover's defaults; plain HTTP without ACLs
    /// until `security` says otherwise (the CLI's `drover server` is secure
    /// unless given `--insecure`).
    pub fn new(data_dir: PathBuf, advertise_address: String) -> Self {
        ServerConfig {
            data_dir,
            advertise_address,
            bootstrap: Bootstrap::Single,
            heartbeat: HeartbeatConfig::default(),
            raft_heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            snapshot_every: 20_000,
            num_scheduler_workers: 2,
            logs: crate::logs::LogSettings::default(),
            exec_enabled: true,
            min_free_disk_bytes: crate::operator::MIN_FREE_DISK_BYTES,
            forget_cluster: false,
            security: crate::security::SecurityMode::Insecure,
            audit_retention: crate::audit::AUDIT_RETENTION,
            node_gc_after: NODE_GC_AFTER,
        }
    }
}
