//! The settings of `drover agent`, and the agent configuration built from
//! them.

use anyhow::{Context, bail};

use drover_agent::{AgentConfig, LogConfig};
use drover_executor::DriverConfig;
use drover_types::NodeLabels;

pub(crate) use super::server::read_join_token;
use super::{Key, Kind, Settings};

/// How `--print-config` and messages name the role.
pub(crate) const ROLE: &str = "drover agent";

/// Every setting of `drover agent`: its flags, environment variables and
/// file keys (docs/configuration.md lists them).
pub(crate) static KEYS: &[Key] = &[
    Key::new("servers", "servers", "DROVER_SERVERS", Kind::List, "Server addresses, comma-separated (host:port)"),
    Key::new("data_dir", "data-dir", "DROVER_DATA_DIR", Kind::Path, "Where allocation directories and task state live"),
    Key::new("name", "name", "DROVER_NAME", Kind::Text, "Node name (default: the hostname)"),
    Key::new(
        "hostgroup",
        "hostgroup",
        "DROVER_HOSTGROUP",
        Kind::Text,
        "Host group, a path such as bi/batch/gridworker",
    )
    .reloadable(),
    Key::new("environment", "environment", "DROVER_ENVIRONMENT", Kind::Text, "Environment, such as production or qa")
        .reloadable(),
    Key::new("owner", "owner", "DROVER_OWNER", Kind::Text, "Owner (a person or team)").reloadable(),
    Key::new("zone", "zone", "DROVER_ZONE", Kind::Text, "Zone (Nomad's datacenter)").reloadable(),
    Key::new(
        "meta",
        "meta",
        "DROVER_META",
        Kind::Map,
        "Free-form metadata, key=value; repeatable (the variable: one key=value)",
    )
    .reloadable(),
    Key::new(
        "disable_exec",
        "disable-exec",
        "DROVER_DISABLE_EXEC",
        Kind::Switch,
        "Refuse every `drover exec` on this node",
    )
    .default("false"),
    Key::new(
        "exec_user",
        "exec-user",
        "DROVER_EXEC_USER",
        Kind::Text,
        "Run `drover exec` commands that name no user (-u) as this user (default: nobody when the agent runs as root, else the agent's user)",
    ),
    Key::new(
        "join_token",
        "join-token",
        "DROVER_JOIN_TOKEN",
        Kind::Secret,
        "Enrol with a secure cluster on first start (`drover node join-token create` prints one); later starts use the certificate kept in the data directory. Prefer the environment variable or join_token_file: a flag shows in `ps`",
    ),
    Key::new(
        "join_token_file",
        "join-token-file",
        "DROVER_JOIN_TOKEN_FILE",
        Kind::Path,
        "A file holding the join token",
    ),
    Key::new(
        "tls.cert",
        "tls-cert",
        "DROVER_TLS_CERT",
        Kind::Path,
        "This node's certificate, made by your CA for servers started with tls.cert (URI name drover://node/NAME); needs tls.key and tls.ca_cert, instead of a join token. Read again every minute",
    ),
    Key::new(
        "tls.key",
        "tls-key",
        "DROVER_TLS_KEY",
        Kind::Path,
        "The key of tls.cert (a file only its owner can read)",
    ),
    Key::new(
        "tls.ca_cert",
        "tls-ca-cert",
        "DROVER_TLS_CA_CERT",
        Kind::Path,
        "The CA certificates to verify the servers with, when tls.cert is set",
    ),
    super::LOG_LEVEL,
    Key::new(
        "logs.files",
        "log-file",
        "DROVER_LOG_FILE",
        Kind::List,
        "Follow files matching these globs (/var/log/*.log); repeatable or comma-separated. Rotation by rename and by copy-truncate is followed",
    ),
    Key::new(
        "logs.syslog_bind",
        "syslog-bind",
        "DROVER_SYSLOG_BIND",
        Kind::Address,
        "Receive syslog (RFC 3164 and 5424, UDP and TCP) on this address, for example 0.0.0.0:514",
    ),
    Key::new("logs.journal", "journal", "DROVER_JOURNAL", Kind::Switch, "Read the systemd journal").default("false"),
    Key::new(
        "logs.spool_mb",
        "log-spool-mb",
        "DROVER_LOG_SPOOL_MB",
        Kind::Count,
        "Disk the log spool may use before the oldest unshipped lines are dropped (and counted), in MiB",
    )
    .default("256"),
    Key::new(
        "logs.partial_line_idle",
        "log-partial-line-idle",
        "DROVER_LOG_PARTIAL_LINE_IDLE",
        Kind::Duration,
        "Send a last line without its newline once its file or syslog connection was quiet this long",
    )
    .default("5s"),
];

/// The labels the agent reports: host group, environment, owner, zone, meta.
pub(crate) fn labels(settings: &Settings) -> NodeLabels {
    NodeLabels {
        hostgroup: settings.text("hostgroup"),
        environment: settings.text("environment"),
        owner: settings.text("owner"),
        zone: settings.text("zone"),
        meta: settings.map("meta"),
    }
}

/// Builds the agent configuration, checking what no single key can.
pub(crate) fn agent_config(settings: &Settings) -> anyhow::Result<AgentConfig> {
    let servers = settings.list("servers");
    if servers.is_empty() {
        bail!(
            "`drover agent` needs the addresses of the servers: --servers a:4747,b:4747, DROVER_SERVERS or servers = [\"a:4747\"] in the configuration file"
        );
    }
    let Some(data_dir) = settings.path("data_dir") else {
        bail!(
            "`drover agent` needs a data directory, where allocations and task state live: --data-dir, DROVER_DATA_DIR or data_dir in the configuration file"
        );
    };
    let join_token_file = settings.path("join_token_file");
    if settings.text("join_token").is_some() && join_token_file.is_some() {
        bail!(
            "{} and {} are both set: give the token one way only",
            settings.named("join_token"),
            settings.named("join_token_file")
        );
    }
    // The file is read at start (`read_join_token`), not by --print-config.
    let join_token = settings.text("join_token");
    let tls_files = tls_files(settings)?;
    if tls_files.is_some() && (join_token.is_some() || join_token_file.is_some()) {
        let token = if join_token.is_some() { "join_token" } else { "join_token_file" };
        bail!(
            "{} and {} cannot both be set: an agent with a certificate made by your CA does not enrol; leave out one of them",
            settings.named("tls.cert"),
            settings.named(token)
        );
    }
    Ok(AgentConfig {
        servers,
        data_dir,
        name: settings.text("name"),
        labels: labels(settings),
        executor: DriverConfig::current_exe().context("cannot find the drover executable for task executors")?,
        stop_tasks_on_shutdown: false,
        logs: LogConfig {
            files: settings.list("logs.files"),
            syslog: settings.address("logs.syslog_bind"),
            journal: settings.switch("logs.journal"),
            spool_max_bytes: settings.count("logs.spool_mb").unwrap_or(256).max(1).saturating_mul(1024 * 1024),
            partial_line_idle: settings
                .duration("logs.partial_line_idle")
                .unwrap_or(drover_agent::DEFAULT_PARTIAL_LINE_IDLE),
        },
        allow_exec: !settings.switch("disable_exec"),
        exec_user: settings.text("exec_user"),
        join_token,
        tls_files,
    })
}

/// The node certificate made by the operator's CA: `tls.cert`, `tls.key`
/// and `tls.ca_cert` together, or none of them.
fn tls_files(settings: &Settings) -> anyhow::Result<Option<drover_agent::NodeTlsFiles>> {
    const KEYS: [&str; 3] = ["tls.cert", "tls.key", "tls.ca_cert"];
    match (settings.path("tls.cert"), settings.path("tls.key"), settings.path("tls.ca_cert")) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(drover_agent::NodeTlsFiles { cert, key, ca })),
        _ => {
            let given: Vec<String> =
                KEYS.iter().filter(|key| settings.path(key).is_some()).map(|key| settings.named(key)).collect();
            let missing: Vec<&str> = KEYS.iter().copied().filter(|key| settings.path(key).is_none()).collect();
            bail!(
                "{} {} {} as well: a certificate made by your CA, its key, and the CA certificate to verify the servers with go together",
                given.join(" and "),
                if given.len() == 1 { "needs" } else { "need" },
                missing.join(" and ")
            )
        }
    }
}
