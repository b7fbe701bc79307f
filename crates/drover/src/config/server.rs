//! The settings of `drover server`, and the server configuration built from
//! them.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};

use drover_server::security::{SecurityMode, TlsSettings};
use drover_server::{Bootstrap, HeartbeatConfig, ServerConfig};
use drover_types::DurationSpec;

use super::{Key, Kind, Settings};

/// How `--print-config` and messages name the role.
pub(crate) const ROLE: &str = "drover server";

/// Every setting of `drover server`: its flags, environment variables and
/// file keys (docs/configuration.md lists them).
pub(crate) static KEYS: &[Key] = &[
    Key::new("data_dir", "data-dir", "DROVER_DATA_DIR", Kind::Path, "Where the Raft log and snapshots live"),
    Key::new(
        "bind",
        "bind",
        "DROVER_BIND",
        Kind::Address,
        "Address of the HTTP API (also used by agents and other servers)",
    )
    .default("127.0.0.1:4747"),
    Key::new(
        "advertise",
        "advertise",
        "DROVER_ADVERTISE",
        Kind::Text,
        "Address other servers and agents use to reach this one, when it differs from the bind address (behind NAT)",
    ),
    Key::new(
        "bootstrap_expect",
        "bootstrap-expect",
        "DROVER_BOOTSTRAP_EXPECT",
        Kind::Count,
        "Form a new cluster once this many servers (this one included) are up: give the same number and the same join list to each of them",
    ),
    Key::new(
        "join",
        "join",
        "DROVER_JOIN",
        Kind::List,
        "Addresses of the other servers, comma-separated; without bootstrap_expect: join the running cluster they belong to",
    ),
    Key::new(
        "disable_exec",
        "disable-exec",
        "DROVER_DISABLE_EXEC",
        Kind::Switch,
        "Refuse `drover exec` on this server (and on the agents connected to it, when asked through another server)",
    )
    .default("false"),
    Key::new(
        "min_free_disk_mb",
        "min-free-disk-mb",
        "DROVER_MIN_FREE_DISK_MB",
        Kind::Count,
        "`drover server health` reports a problem when the data directory's file system has less free than this, in MiB (0: never)",
    )
    .default("1024"),
    Key::new(
        "forget_cluster",
        "forget-cluster",
        "DROVER_FORGET_CLUSTER",
        Kind::Switch,
        "Start as a new, empty server although the data directory belonged to a cluster: the old Raft data is moved aside and the server gets a new id. Only to recover on purpose (docs/operations.md, \"What drover survives\")",
    )
    .default("false")
    .not_in_files(
        "it is a one-time recovery step, which a file would repeat at every start; give --forget-cluster once on the command line",
    ),
    super::LOG_LEVEL,
    Key::new(
        "insecure",
        "insecure",
        "DROVER_INSECURE",
        Kind::Switch,
        "Plain HTTP without certificates or ACLs: anyone who reaches the port may do anything. Only for trusted networks and tests",
    )
    .default("false"),
    Key::new(
        "join_token",
        "join-token",
        "DROVER_JOIN_TOKEN",
        Kind::Secret,
        "Join a secure cluster (with join) with a server join token (`drover server join-token create`); the cluster CA is fetched from the servers in join on first start. Prefer the environment variable or join_token_file: a flag shows in `ps`",
    ),
    Key::new(
        "join_token_file",
        "join-token-file",
        "DROVER_JOIN_TOKEN_FILE",
        Kind::Path,
        "A file holding the server join token",
    ),
    Key::new("heartbeat.interval", "heartbeat-interval", "DROVER_HEARTBEAT_INTERVAL", Kind::Duration, "How often agents heartbeat")
        .default("4s"),
    Key::new(
        "heartbeat.ttl",
        "heartbeat-ttl",
        "DROVER_HEARTBEAT_TTL",
        Kind::Duration,
        "Silence after which a node is marked down (longer than the interval)",
    )
    .default("8s"),
    Key::new(
        "logs.retention",
        "log-retention",
        "DROVER_LOG_RETENTION",
        Kind::Duration,
        "Delete indexed log lines older than this (whole hourly partitions)",
    ),
    Key::new(
        "logs.max_mb",
        "log-max-mb",
        "DROVER_LOG_MAX_MB",
        Kind::Count,
        "Delete the oldest partitions while the log index is bigger than this, in MiB",
    ),
    Key::new(
        "logs.max_skew",
        "log-max-skew",
        "DROVER_LOG_MAX_SKEW",
        Kind::Duration,
        "A log line's own timestamp is its event time only within this of when it was received (docs/logs.md, \"Event time\")",
    )
    .default("15m"),
    Key::new(
        "logs.replication",
        "log-replication",
        "DROVER_LOG_REPLICATION",
        Kind::Count,
        "How many servers hold each log line before its agent is answered: 2 (a second server keeps a copy, when there is one) or 1 (docs/logs.md, \"Replication\")",
    )
    .default("2"),
    Key::new(
        "logs.syslog_bind",
        "syslog-bind",
        "DROVER_SYSLOG_BIND",
        Kind::Address,
        "Receive syslog (UDP and TCP) on this address, for machines without an agent and network devices",
    ),
    Key::new(
        "dns.bind",
        "dns-bind",
        "DROVER_DNS_BIND",
        Kind::Address,
        "Answer DNS (UDP and TCP) on this address for the zone drover.: services and nodes (docs/services.md)",
    ),
    Key::new(
        "dns.ttl",
        "dns-ttl",
        "DROVER_DNS_TTL",
        Kind::Count,
        "The TTL of DNS answers, in seconds (0: resolvers ask again each time)",
    )
    .default("0"),
    Key::new(
        "dns.recursors",
        "dns-recursor",
        "DROVER_DNS_RECURSORS",
        Kind::List,
        "Forward DNS queries outside the zone drover. to these resolvers, in order (IP, with :port when not 53; repeatable or comma-separated); without any they are refused",
    ),
    Key::new(
        "tls.ca_cert",
        "tls-ca-cert",
        "DROVER_TLS_CA_CERT",
        Kind::Path,
        "Use this CA certificate (PEM) instead of making one; give the same to every server of a bootstrap_expect cluster (needs tls.ca_key). With tls.cert: the CA certificates to trust, without their key",
    ),
    Key::new(
        "tls.ca_key",
        "tls-ca-key",
        "DROVER_TLS_CA_KEY",
        Kind::Path,
        "The key of tls.ca_cert (a file only its owner can read)",
    ),
    Key::new(
        "tls.cert",
        "tls-cert",
        "DROVER_TLS_CERT",
        Kind::Path,
        "This server's certificate, made by your CA (needs tls.key and tls.ca_cert, no tls.ca_key): the servers then issue no certificates and agents need certificates made by your CA too. Read again every minute",
    ),
    Key::new(
        "tls.key",
        "tls-key",
        "DROVER_TLS_KEY",
        Kind::Path,
        "The key of tls.cert (a file only its owner can read)",
    ),
    Key::new(
        "tls.cert_validity",
        "tls-cert-validity",
        "DROVER_TLS_CERT_VALIDITY",
        Kind::Duration,
        "How long server and node certificates are valid (at least 15s); they are renewed two thirds into it, with no restart",
    )
    .default("30d"),
    Key::new("audit.retention", "audit-retention", "DROVER_AUDIT_RETENTION", Kind::Duration, "Keep audit events this long")
        .default("90d"),
    Key::new(
        "node_gc_after",
        "node-gc-after",
        "DROVER_NODE_GC_AFTER",
        Kind::Duration,
        "Forget a node that has been down this long (audited; protected nodes are kept)",
    )
    .default("7d"),
];

/// What `drover server` runs with.
#[derive(Debug)]
pub(crate) struct ServerPlan {
    pub(crate) config: ServerConfig,
    pub(crate) bind: SocketAddr,
}

/// Builds the server configuration, checking what no single key can.
pub(crate) fn server_plan(settings: &Settings) -> anyhow::Result<ServerPlan> {
    let Some(data_dir) = settings.path("data_dir") else {
        bail!(
            "`drover server` needs a data directory, where the Raft log and state live: --data-dir, DROVER_DATA_DIR or data_dir in the configuration file"
        );
    };
    let bind = settings.address("bind").context("bind has no value")?;
    let advertise = settings.text("advertise").unwrap_or_else(|| bind.to_string());
    let mut config = ServerConfig::new(data_dir, advertise);
    config.heartbeat = heartbeat(settings)?;
    config.bootstrap = bootstrap(settings)?;
    config.logs = drover_server::LogSettings {
        retention: drover_logs::Retention {
            max_age: settings.duration("logs.retention"),
            max_bytes: settings.count("logs.max_mb").map(|mib| mib.saturating_mul(1024 * 1024)),
        },
        syslog: settings.address("logs.syslog_bind"),
        max_skew: settings.duration("logs.max_skew").unwrap_or(drover_server::DEFAULT_LOG_MAX_SKEW),
        replication: log_replication(settings)?,
    };
    config.exec_enabled = !settings.switch("disable_exec");
    config.min_free_disk_bytes = settings.count("min_free_disk_mb").unwrap_or(0).saturating_mul(1024 * 1024);
    config.forget_cluster = settings.switch("forget_cluster");
    config.security = security(settings)?;
    config.audit_retention = settings.duration("audit.retention").unwrap_or(drover_server::audit::AUDIT_RETENTION);
    config.node_gc_after = settings.duration("node_gc_after").unwrap_or(drover_server::config::NODE_GC_AFTER);
    dns_settings(settings)?;
    Ok(ServerPlan { config, bind })
}

/// The DNS interface's settings (`dns.bind`, `dns.ttl`, `dns.recursors`),
/// `None` when `dns.bind` is not set.
pub(crate) fn dns_settings(settings: &Settings) -> anyhow::Result<Option<drover_server::dns::DnsSettings>> {
    let recursors = settings
        .list("dns.recursors")
        .iter()
        .map(|text| drover_server::dns::parse_recursor(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow::anyhow!("{} ({})", error, settings.named("dns.recursors")))?;
    let Some(bind) = settings.address("dns.bind") else {
        if !recursors.is_empty() {
            bail!(
                "{} needs dns.bind as well: recursors only serve the DNS interface, which is off without an address",
                settings.named("dns.recursors")
            );
        }
        return Ok(None);
    };
    let ttl = u32::try_from(settings.count("dns.ttl").unwrap_or(0)).unwrap_or(u32::MAX);
    Ok(Some(drover_server::dns::DnsSettings { bind, ttl, recursors }))
}

/// `logs.replication`: 1 or 2.
fn log_replication(settings: &Settings) -> anyhow::Result<u8> {
    match settings.count("logs.replication") {
        None => Ok(drover_server::logs::DEFAULT_LOG_REPLICATION),
        Some(1) => Ok(1),
        Some(2) => Ok(2),
        Some(other) => bail!(
            "log replication {other} is not supported: give 1 (each line on the server its agent sent it to) or 2 (and a copy on a second server)"
        ),
    }
}

fn heartbeat(settings: &Settings) -> anyhow::Result<HeartbeatConfig> {
    let defaults = HeartbeatConfig::default();
    let interval = settings.duration("heartbeat.interval").unwrap_or(defaults.interval);
    let ttl = settings.duration("heartbeat.ttl").unwrap_or(defaults.ttl);
    if ttl <= interval {
        bail!(
            "{} = {} must be longer than {} = {}: a node is marked down after missing heartbeats",
            settings.named("heartbeat.ttl"),
            DurationSpec(ttl),
            settings.named("heartbeat.interval"),
            DurationSpec(interval)
        );
    }
    Ok(HeartbeatConfig { interval, ttl, ..defaults })
}

fn bootstrap(settings: &Settings) -> anyhow::Result<Bootstrap> {
    let expect = settings.count("bootstrap_expect").map(|count| usize::try_from(count).unwrap_or(usize::MAX));
    let join = settings.list("join");
    match (expect, join.is_empty()) {
        (None | Some(1), true) => Ok(Bootstrap::Single),
        (Some(0), _) => bail!("{} must be at least 1", settings.named("bootstrap_expect")),
        (Some(expect), true) => bail!(
            "{} = {expect} needs the addresses of the other servers: --join a:4747,b:4747, DROVER_JOIN or join = [\"a:4747\", \"b:4747\"]",
            settings.named("bootstrap_expect")
        ),
        (expect, false) => Ok(Bootstrap::Cluster { expect: expect.unwrap_or(0), join }),
    }
}

fn security(settings: &Settings) -> anyhow::Result<SecurityMode> {
    let validity = settings.duration("tls.cert_validity").unwrap_or(Duration::from_secs(30 * 86_400));
    if validity < Duration::from_secs(15) {
        bail!(
            "{} must be at least 15s (certificates are renewed two thirds into it)",
            settings.named("tls.cert_validity")
        );
    }
    let ca_cert = settings.path("tls.ca_cert");
    let ca_key = settings.path("tls.ca_key");
    let cert = settings.path("tls.cert");
    let key = settings.path("tls.key");
    let join_token_set = settings.text("join_token").is_some();
    let join_token_file = settings.path("join_token_file");
    match (&cert, &key) {
        (Some(_), None) => bail!("{} needs tls.key, its key, as well", settings.named("tls.cert")),
        (None, Some(_)) => bail!("{} needs tls.cert, its certificate, as well", settings.named("tls.key")),
        _ => {}
    }
    if cert.is_some() {
        if ca_cert.is_none() {
            bail!(
                "{} needs tls.ca_cert as well: the certificate of the CA that made it, to verify the other servers and the agents",
                settings.named("tls.cert")
            );
        }
        if ca_key.is_some() {
            bail!(
                "{} and {} cannot both be set: with certificates made by your CA the servers issue none, so they need no CA key; leave out tls.ca_key (or leave out tls.cert and tls.key to have the servers issue from your CA)",
                settings.named("tls.cert"),
                settings.named("tls.ca_key")
            );
        }
    } else {
        match (&ca_cert, &ca_key) {
            (Some(_), None) => bail!(
                "{} needs tls.ca_key, its key, as well (or tls.cert and tls.key: certificates made by your CA)",
                settings.named("tls.ca_cert")
            ),
            (None, Some(_)) => bail!("{} needs tls.ca_cert, its certificate, as well", settings.named("tls.ca_key")),
            _ => {}
        }
    }
    if join_token_set && join_token_file.is_some() {
        bail!(
            "{} and {} are both set: give the token one way only",
            settings.named("join_token"),
            settings.named("join_token_file")
        );
    }
    if settings.switch("insecure") {
        for other in ["tls.ca_cert", "tls.cert", "join_token", "join_token_file"] {
            if settings.setting(other).is_some() {
                bail!(
                    "{} and {} cannot both be set: an insecure server uses no certificates; remove one of them",
                    settings.named("insecure"),
                    settings.named(other)
                );
            }
        }
        return Ok(SecurityMode::Insecure);
    }
    if (ca_cert.is_some() || cert.is_some()) && (join_token_set || join_token_file.is_some()) {
        let token = if join_token_set { "join_token" } else { "join_token_file" };
        bail!(
            "{} and {} cannot both be set: a server joining with a token gets the CA from the cluster",
            settings.named("tls.ca_cert"),
            settings.named(token)
        );
    }
    // The file is read at start (`read_join_token`), not by --print-config.
    let join_token = settings.text("join_token");
    Ok(SecurityMode::Secure(TlsSettings { ca_cert, cert, key, ca_key, join_token, validity }))
}

/// The join token: `join_token`, or the contents of `join_token_file`.
pub(crate) fn read_join_token(settings: &Settings) -> anyhow::Result<Option<String>> {
    match settings.path("join_token_file") {
        Some(path) => Ok(Some(crate::cli::bounded::read_credential_file(&path).with_context(|| {
            format!("cannot read the join token file {} ({})", path.display(), settings.origin("join_token_file"))
        })?)),
        None => Ok(settings.text("join_token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_default_is_the_servers_own() {
        let settings = Settings::merge(ROLE, KEYS, Vec::new(), &[]);
        assert_eq!(
            settings.count("min_free_disk_mb"),
            Some(drover_server::operator::MIN_FREE_DISK_BYTES / (1024 * 1024))
        );
        assert_eq!(settings.duration("audit.retention"), Some(drover_server::audit::AUDIT_RETENTION));
        let heartbeat = HeartbeatConfig::default();
        assert_eq!(settings.duration("heartbeat.interval"), Some(heartbeat.interval));
        assert_eq!(settings.duration("heartbeat.ttl"), Some(heartbeat.ttl));
    }
}
