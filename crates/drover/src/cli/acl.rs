//! `drover acl …`, `drover audit`, `drover node join-token …`, `drover node
//! revoke` and `drover operator tls ca create`: who may do what, and who did it
//! (docs/security.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use drover_proto::api::{AuditQuery, JoinTokenCreateRequest, TokenCreateRequest};

use super::ServerAddress;
use super::output::{ago, local_time, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Make the first management token (once per cluster); prints its secret.
    Bootstrap {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Policies: what tokens may do.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tokens: who may do it.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Create or replace a policy from a file: `drover acl policy apply batch-ops batch-ops.hcl`.
    Apply {
        /// The policy's name.
        name: String,
        /// The policy file (HCL).
        file: PathBuf,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List policies.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show a policy's file.
    Show {
        /// The policy's name.
        name: String,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Delete a policy.
    Delete {
        /// The policy's name.
        name: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token: `drover acl token create --name alice --policy batch-ops --ttl 30d`; prints its secret once.
    Create {
        /// Who will hold it.
        #[arg(long)]
        name: String,
        /// A policy it carries; repeatable.
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// It may do everything.
        #[arg(long)]
        management: bool,
        /// How long it works (`30d`); forever without.
        #[arg(long)]
        ttl: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Show the token in use.
    #[command(name = "self")]
    Itself {
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Revoke a token: it is refused from now on.
    Revoke {
        /// Its accessor.
        accessor: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum JoinTokenCommand {
    /// Make a join token for agents: `drover node join-token create --hostgroup 'bi/batch/**' --ttl 24h --uses 500`.
    Create {
        /// A host group glob enrolled nodes may claim; repeatable (any without).
        #[arg(long = "hostgroup")]
        hostgroups: Vec<String>,
        /// How long it works.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// How many nodes it may enrol (unlimited without).
        #[arg(long)]
        uses: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// List join tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerAddress,
    },
    /// Delete a join token.
    Revoke {
        /// Its accessor.
        accessor: String,
        #[command(flatten)]
        server: ServerAddress,
    },
}

/// `drover audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only events since: a duration back (`24h`) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only events by this token name or accessor.
    #[arg(long)]
    by: Option<String>,
    /// Only events whose action is or starts with this (`exec`, `job.register`, `acl`).
    #[arg(long)]
    kind: Option<String>,
    /// Only `ok`, `refused` or `failed` events.
    #[arg(long)]
    outcome: Option<String>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerAddress,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TlsCommand {
    /// The cluster CA.
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Make a cluster CA for a multi-server cluster: give DIR/ca.pem and
    /// DIR/ca-key.pem to every server (--tls-ca-cert, --tls-ca-key).
    Create {
        /// Where to write ca.pem and ca-key.pem.
        #[arg(long)]
        out: PathBuf,
        /// A name for the cluster, in the CA's subject.
        #[arg(long, default_value = "drover")]
        cluster: String,
    },
}

pub(crate) async fn run(command: AclCommand) -> anyhow::Result<ExitCode> {
    match command {
        AclCommand::Bootstrap { json, server } => {
            let created = server.client()?.acl_bootstrap().await?;
            if json {
                print_json(&created)?;
            } else {
                println!("Accessor  {}", created.token.accessor);
                println!("Secret    {}", created.secret);
                println!();
                println!(
                    "This is a management token: it may do everything. Keep the secret safe; it is not shown again."
                );
                println!("  export DROVER_TOKEN=<secret>");
            }
        }
        AclCommand::Policy(PolicyCommand::Apply { name, file, server }) => {
            let source = drover_hcl::read_definition_file(&file)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", file.display()))?;
            let policy = server.client()?.apply_acl_policy(&name, &file.display().to_string(), &source).await?;
            println!("Policy {:?} applied: {} rules", policy.name, policy.rules.len());
        }
        AclCommand::Policy(PolicyCommand::List { json, server }) => {
            let policies = server.client()?.acl_policies().await?;
            if json {
                print_json(&policies)?;
            } else {
                let mut rows = table(&["Name", "Rules", "Description", "Modified"]);
                for policy in &policies {
                    rows.add_row(vec![
                        policy.name.clone(),
                        policy.rules.len().to_string(),
                        policy.description.clone().unwrap_or_default(),
                        ago(policy.modified_at),
                    ]);
                }
                print_table(&rows);
            }
        }
        AclCommand::Policy(PolicyCommand::Show { name, server }) => {
            print!("{}", server.client()?.acl_policy(&name).await?.source);
        }
        AclCommand::Policy(PolicyCommand::Delete { name, server }) => {
            server.client()?.delete_acl_policy(&name).await?;
            println!("Policy {name:?} deleted");
        }
        AclCommand::Token(TokenCommand::Create { name, policies, management, ttl, json, server }) => {
            let request = TokenCreateRequest { name, policies, management, ttl };
            let created = server.client()?.create_acl_token(&request).await?;
            if json {
                print_json(&created)?;
            } else {
                println!("Accessor  {}", created.token.accessor);
                println!("Secret    {}", created.secret);
                println!("Name      {}", created.token.name);
                println!("Policies  {}", created.token.policies.join(", "));
                if let Some(expiry) = created.token.expires_at {
                    println!("Expires   {}", local_time(expiry));
                }
                println!();
                println!("The secret is not shown again.");
            }
        }
        AclCommand::Token(TokenCommand::List { json, server }) => {
            let tokens = server.client()?.acl_tokens().await?;
            if json {
                print_json(&tokens)?;
            } else {
                let mut rows = table(&["Accessor", "Name", "Policies", "Created", "Expires"]);
                for token in &tokens {
                    rows.add_row(vec![
                        token.accessor.clone(),
                        token.name.clone(),
                        if token.management { "(management)".to_owned() } else { token.policies.join(", ") },
                        ago(token.created_at),
                        token.expires_at.map(local_time).unwrap_or_else(|| "never".to_owned()),
                    ]);
                }
                print_table(&rows);
            }
        }
        AclCommand::Token(TokenCommand::Itself { server }) => {
            let token = server.client()?.acl_token_self().await?;
            println!("Accessor  {}", token.accessor);
            println!("Name      {}", token.name);
            println!(
                "Policies  {}",
                if token.management { "(management)".to_owned() } else { token.policies.join(", ") }
            );
        }
        AclCommand::Token(TokenCommand::Revoke { accessor, server }) => {
            server.client()?.revoke_acl_token(&accessor).await?;
            println!("Token {accessor} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run_join_token(command: JoinTokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        JoinTokenCommand::Create { hostgroups, ttl, uses, json, server } => {
            let request = JoinTokenCreateRequest { hostgroups, ttl: Some(ttl), uses, server: false };
            let created = server.client()?.create_join_token(&request).await?;
            if json {
                print_json(&created)?;
            } else {
                println!("{}", created.token);
                eprintln!();
                eprintln!(
                    "Join token {} (expires {}). Start agents with DROVER_JOIN_TOKEN=<token> drover agent … (or --join-token-file).",
                    created.accessor,
                    local_time(created.expires_at)
                );
            }
        }
        JoinTokenCommand::List { json, server } => {
            let tokens = server.client()?.join_tokens().await?;
            if json {
                print_json(&tokens)?;
            } else {
                let mut rows = table(&["Accessor", "Host groups", "Uses", "Expires", "Created by"]);
                for token in &tokens {
                    rows.add_row(vec![
                        token.accessor.clone(),
                        if token.hostgroups.is_empty() { "(any)".to_owned() } else { token.hostgroups.join(", ") },
                        match token.max_uses {
                            Some(max) => format!("{}/{max}", token.uses),
                            None => token.uses.to_string(),
                        },
                        local_time(token.expires_at),
                        token.created_by.clone(),
                    ]);
                }
                print_table(&rows);
            }
        }
        JoinTokenCommand::Revoke { accessor, server } => {
            server.client()?.delete_join_token(&accessor).await?;
            println!("Join token {accessor} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn revoke_node(name: &str, server: &ServerAddress) -> anyhow::Result<ExitCode> {
    server.client()?.revoke_node(name).await?;
    println!("Node {name} revoked: its certificate is refused from now on (enrol it again with a join token)");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let query =
        AuditQuery { since: args.since, by: args.by, kind: args.kind, outcome: args.outcome, limit: Some(args.limit) };
    let events = args.server.client()?.audit(&query).await?;
    if args.json {
        print_json(&events)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table(&["Time", "By", "Action", "Target", "Outcome", "Details"]);
    for event in &events {
        let outcome = match &event.outcome {
            drover_types::acl::AuditOutcome::Ok => "ok".to_owned(),
            drover_types::acl::AuditOutcome::Refused(reason) => format!("refused: {reason}"),
            drover_types::acl::AuditOutcome::Failed(reason) => format!("failed: {reason}"),
        };
        rows.add_row(vec![
            local_time(event.at),
            event.name.clone(),
            event.action.clone(),
            event.target.clone(),
            outcome,
            event.details.clone(),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_tls(command: TlsCommand) -> anyhow::Result<ExitCode> {
    match command {
        TlsCommand::Ca(CaCommand::Create { out, cluster }) => {
            drover_tls::install_crypto_provider();
            drover_tls::ensure_private_dir(&out).map_err(|error| anyhow::anyhow!("{error}"))?;
            let (cert_path, key_path) = (out.join("ca.pem"), out.join("ca-key.pem"));
            if key_path.exists() {
                anyhow::bail!("{} exists; remove it first or choose another --out", key_path.display());
            }
            let ca = drover_tls::Ca::generate(&cluster).map_err(|error| anyhow::anyhow!("{error}"))?;
            drover_tls::write_public(&cert_path, ca.cert_pem()).map_err(|error| anyhow::anyhow!("{error}"))?;
            drover_tls::write_private(&key_path, ca.key_pem()).map_err(|error| anyhow::anyhow!("{error}"))?;
            println!("{}", cert_path.display());
            println!("{}", key_path.display());
            eprintln!("CA SHA-256 {}", ca.fingerprint());
        }
    }
    Ok(ExitCode::SUCCESS)
}
