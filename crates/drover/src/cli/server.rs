//! `drover server members|join|health` and `drover operator …`: the
//! servers themselves.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::ServerAddress;
use super::output::{print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// List the servers of the cluster and who leads.
    Members {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Add a running server (started with an empty data directory and
    /// without --bootstrap-expect) to the cluster.
    Join {
        /// The new server's address, `host:port`.
        #[arg(id = "new_server", value_name = "ADDRESS")]
        address: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Make a server join token: a new server started with it (and --join)
    /// fetches the cluster CA; prints the token once.
    JoinToken {
        /// How long it works.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// How many servers it may let join.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// The operators' checklist: every server up, one leader, Raft lag,
    /// connected agents, disk space. Exits 1 when something is wrong.
    Health {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OperatorCommand {
    /// Raft membership.
    #[command(subcommand)]
    Raft(RaftCommand),
    /// Save or restore the whole cluster state (disaster recovery).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// TLS: make a cluster CA for a multi-server cluster, rotate the
    /// cluster's CA, see its CAs.
    #[command(subcommand)]
    Tls(OperatorTlsCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum OperatorTlsCommand {
    #[command(flatten)]
    Ca(super::acl::TlsCommand),
    /// Rotate the cluster CA: a new CA is trusted alongside the old one,
    /// servers and agents get certificates of it within seconds (no
    /// restart); then `--finish` drops the old CA. The servers make the
    /// new CA, or take yours (`--new-ca-cert` and `--new-ca-key`). Needs a
    /// management token.
    RotateCa {
        /// Drop the old CA (refused while a live server or node still
        /// holds a certificate of it).
        #[arg(long, conflicts_with_all = ["new_ca_cert", "new_ca_key"])]
        finish: bool,
        /// Rotate to your CA: its certificate (PEM), checked by the servers
        /// as `--tls-ca-cert` is at start.
        #[arg(long, value_name = "FILE", requires = "new_ca_key")]
        new_ca_cert: Option<PathBuf>,
        /// Your CA's key (PEM, mode 0600), sent to the servers over the
        /// authenticated HTTPS API; from a file only.
        #[arg(long, value_name = "FILE", requires = "new_ca_cert")]
        new_ca_key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// The CAs the cluster trusts (fingerprint, expiry) and how far a
    /// rotation got: which servers and live nodes still hold a certificate
    /// of the old CA.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RaftCommand {
    /// List the Raft peers (the same as `drover server members`).
    ListPeers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Remove a server from the cluster, for example one that died for good.
    RemovePeer {
        /// The server id, from `drover server members`.
        id: u64,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Recover a cluster that lost its quorum for good, from one surviving
    /// server's data directory (the server stopped): its state is kept,
    /// its Raft data moved aside; started next without --bootstrap-expect
    /// or --join it forms a new one-server cluster with that state (add
    /// servers with --join). See docs/operations.md.
    Recover {
        /// The stopped server's data directory.
        #[arg(long, env = "DROVER_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Write the cluster's state to FILE (a consistent read; the cluster
    /// keeps running).
    Save {
        /// Where to write.
        file: PathBuf,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Replace the cluster's whole state with FILE, through Raft: every
    /// server ends up with it, and agents are told their allocations anew.
    Restore {
        /// A file written by `drover operator snapshot save`.
        file: PathBuf,
        #[command(flatten)]
        server: ServerAddress,
    },
}

pub(crate) async fn run(command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Members { json, server } => members(&server, json).await,
        ServerCommand::Join { address, server } => {
            let identity = server.client()?.join_server(&address).await?;
            println!("server {} ({}) joined the cluster", identity.server_id, identity.address);
            Ok(ExitCode::SUCCESS)
        }
        ServerCommand::Health { json, server } => health(&server, json).await,
        ServerCommand::JoinToken { ttl, uses, server } => {
            let request = drover_proto::api::JoinTokenCreateRequest {
                hostgroups: Vec::new(),
                ttl: Some(ttl),
                uses: Some(uses),
                server: true,
            };
            let created = server.client()?.create_join_token(&request).await?;
            println!("{}", created.token);
            eprintln!(
                "Server join token {} (expires {}). Start the new server with --join <servers> and DROVER_JOIN_TOKEN=<token> (or --join-token-file).",
                created.accessor,
                super::output::local_time(created.expires_at)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn run_operator(command: OperatorCommand) -> anyhow::Result<ExitCode> {
    match command {
        OperatorCommand::Tls(OperatorTlsCommand::Ca(command)) => super::acl::run_tls(command),
        OperatorCommand::Tls(OperatorTlsCommand::RotateCa { finish, new_ca_cert, new_ca_key, json, server }) => {
            let client = server.client()?;
            let status = if finish {
                client.finish_ca_rotation().await?
            } else {
                let new_ca = match (&new_ca_cert, &new_ca_key) {
                    (Some(cert), Some(key)) => Some(read_operator_ca(cert, key)?),
                    _ => None,
                };
                client.rotate_ca(&drover_proto::api::RotateCaRequest { new_ca }).await?
            };
            if json {
                print_json(&status)?;
                return Ok(ExitCode::SUCCESS);
            }
            if finish {
                println!("The CA rotation is finished: only the new CA is trusted from now on.");
                println!("Give CLI users the new CA certificate (DATA_DIR/tls/ca.pem of any server).");
            } else {
                match &new_ca_cert {
                    Some(cert) => println!(
                        "Started a rotation of the cluster CA to your CA {}. Servers and agents switch to it on their own;",
                        cert.display()
                    ),
                    None => println!(
                        "Started a rotation of the cluster CA. Servers and agents switch to the new CA on their own;"
                    ),
                }
                println!(
                    "`drover operator tls status` shows the progress, then run `drover operator tls rotate-ca --finish`."
                );
                println!("Until then DATA_DIR/tls/ca.pem of every server holds both CAs: give it to CLI users.");
            }
            print_tls_status(&status);
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Tls(OperatorTlsCommand::Status { json, server }) => {
            let status = server.client()?.tls_status().await?;
            if json {
                print_json(&status)?;
            } else {
                print_tls_status(&status);
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Raft(RaftCommand::ListPeers { json, server }) => members(&server, json).await,
        OperatorCommand::Raft(RaftCommand::Recover { data_dir }) => {
            let summary = drover_server::recover_from_data_dir(&data_dir).await?;
            println!(
                "recovered the state at Raft index {} ({} jobs, {} nodes; {} log entries replayed after the snapshot, {} of them past the recorded commit index)",
                summary.last_index,
                summary.num_jobs,
                summary.num_nodes,
                summary.num_replayed,
                summary.num_beyond_commit
            );
            println!("the old Raft data is in {}", summary.moved_aside.display());
            println!(
                "next: drover server --data-dir {} --bind <address>   (without --bootstrap-expect or --join)",
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Raft(RaftCommand::RemovePeer { id, server }) => {
            server.client()?.remove_peer(id).await?;
            println!("server {id} removed from the cluster");
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Snapshot(SnapshotCommand::Save { file, server }) => {
            let bytes = server.client()?.save_snapshot().await?;
            // Write next to the target, then rename: a crash never leaves a
            // half-written snapshot under the name the operator asked for.
            let partial = file.with_extension("partial");
            std::fs::write(&partial, &bytes).with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, &file).with_context(|| format!("cannot write {}", file.display()))?;
            println!("saved {} bytes to {}", bytes.len(), file.display());
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Snapshot(SnapshotCommand::Restore { file, server }) => {
            let bytes =
                super::bounded::read_snapshot_file(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let index = server.client()?.restore_snapshot(bytes).await?;
            println!("restored {} at Raft index {index}", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads an operator's CA for `rotate-ca --new-ca-cert/--new-ca-key`
/// through drover-tls's bounded readers. The key's mode travels with it
/// and the servers judge everything, so that a refusal is audited there.
fn read_operator_ca(cert: &Path, key: &Path) -> anyhow::Result<drover_proto::api::OperatorCaFiles> {
    let cert_pem = drover_tls::read_public(cert).with_context(|| "cannot read --new-ca-cert")?;
    let (key_pem, key_mode) = drover_tls::read_key_file(key).with_context(|| "cannot read --new-ca-key")?;
    Ok(drover_proto::api::OperatorCaFiles {
        cert: cert_pem,
        key: key_pem,
        cert_file: cert.display().to_string(),
        key_file: key.display().to_string(),
        key_mode: Some(key_mode),
    })
}

/// The CAs, then a rotation's progress, one fact a line.
fn print_tls_status(status: &drover_proto::api::TlsStatus) {
    let mut rows = table(&["CA", "SHA-256", "Not after", "Subject"]);
    for ca in &status.cas {
        let not_after =
            super::output::local_time(drover_types::Timestamp::from_millis(ca.not_after.saturating_mul(1000)));
        rows.add_row(vec![ca.role.clone(), ca.fingerprint.clone(), not_after, ca.subject.clone()]);
    }
    print_table(&rows);
    let Some(rotation) = &status.rotation else {
        println!("No CA rotation in progress.");
        return;
    };
    let total = rotation.servers.len();
    let trusting = rotation.servers.iter().filter(|server| server.trusts_new).count();
    let reissued = rotation.servers.iter().filter(|server| server.reissued).count();
    println!();
    println!(
        "Rotation started {} by {}",
        super::output::local_time(drover_types::Timestamp::from_millis(rotation.started_at)),
        rotation.started_by
    );
    println!("Servers: {trusting} of {total} trust the new CA; {reissued} of {total} hold a certificate of it");
    for server in rotation.servers.iter().filter(|server| !server.reissued) {
        println!("  server {} ({}) still holds a certificate of the old CA", server.server_id, server.address);
    }
    println!(
        "Nodes: {} hold a certificate of the new CA; {} live node(s) still on the old CA{}",
        rotation.nodes_reissued,
        rotation.nodes_on_old_ca.len(),
        if rotation.nodes_on_old_ca.is_empty() {
            String::new()
        } else {
            format!(": {}", rotation.nodes_on_old_ca.join(", "))
        }
    );
    if rotation.ready_to_finish {
        println!("Every certificate is reissued: run `drover operator tls rotate-ca --finish`.");
    } else {
        println!("Not ready to finish yet.");
    }
}

async fn members(server: &ServerAddress, json: bool) -> anyhow::Result<ExitCode> {
    let members = server.client()?.members().await?;
    if json {
        print_json(&members)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table(&["ID", "Address", "Role", "Leader", "Matched index", "Version"]);
    for member in &members {
        rows.add_row(vec![
            member.server_id.to_string(),
            member.address.clone(),
            member.role.clone(),
            if member.leader { "yes".to_owned() } else { String::new() },
            member.matched_index.map_or("-".to_owned(), |index| index.to_string()),
            version_text(member.version.as_deref(), member.commit.as_deref()),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// A server's version as `members` shows it: `0.1.0`, `0.1.0 (4f54db4)`
/// with the commit it was built from, `-` when it did not say.
fn version_text(version: Option<&str>, commit: Option<&str>) -> String {
    match (version, commit) {
        (Some(version), Some(commit)) => format!("{version} ({})", commit.get(..7).unwrap_or(commit)),
        (Some(version), None) => version.to_owned(),
        (None, _) => "-".to_owned(),
    }
}

async fn health(server: &ServerAddress, json: bool) -> anyhow::Result<ExitCode> {
    let health = server.client()?.cluster_health().await?;
    let code = if health.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if json {
        print_json(&health)?;
        return Ok(code);
    }
    let mut rows = table(&["ID", "Address", "Up", "State", "Term", "Applied", "Lag", "Agents", "Disk free"]);
    for server in &health.servers {
        let status = server.status.as_ref();
        rows.add_row(vec![
            server.server_id.to_string(),
            server.address.clone(),
            if server.up { "yes".to_owned() } else { "NO".to_owned() },
            status.map_or("-".to_owned(), |status| status.raft_state.clone()),
            status.map_or("-".to_owned(), |status| status.term.to_string()),
            status.map_or("-".to_owned(), |status| status.applied_index.to_string()),
            server.lag.map_or("-".to_owned(), |lag| lag.to_string()),
            status.map_or("-".to_owned(), |status| status.num_agents.to_string()),
            status.map_or("-".to_owned(), |status| {
                format!(
                    "{} GiB ({}%)",
                    status.disk_free_bytes / (1 << 30),
                    (status.disk_free_bytes * 100).checked_div(status.disk_total_bytes).unwrap_or(0)
                )
            }),
        ]);
    }
    print_table(&rows);
    if health.problems.is_empty() {
        println!("healthy: leader {}", health.leader_id.map_or("-".to_owned(), |id| id.to_string()));
    } else {
        for problem in &health.problems {
            println!("PROBLEM: {problem}");
        }
    }
    Ok(code)
}
