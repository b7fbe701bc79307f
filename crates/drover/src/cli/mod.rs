//! The command-line interface: every command talks to a server through
//! `drover-client` and prints a table, or JSON with `--json`.

pub(crate) mod acl;
pub(crate) mod alloc;
pub(crate) mod check;
pub(crate) mod eval;
pub(crate) mod exec;
pub(crate) mod job;
pub(crate) mod logs;
pub(crate) mod node;
pub(crate) mod output;
pub(crate) mod react;
pub(crate) mod server;
pub(crate) mod var;

use std::ffi::OsString;

use clap::Args;

use drover_client::Client;

/// Where the server is: `--address`, else `DROVER_ADDR`, else the default.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerAddress {
    /// The API address of a drover server.
    /// Several, comma-separated, are tried in turn when one cannot be reached.
    #[arg(long, env = "DROVER_ADDR", default_value = drover_client::DEFAULT_ADDRESS, global = true)]
    address: String,
    /// Answer reads from the contacted server's own state, which may lag
    /// the leader slightly; works while the cluster has no leader.
    #[arg(long, global = true)]
    stale: bool,
    /// The cluster CA certificate the servers' certificates are checked
    /// against (a secure server's DATA_DIR/tls/ca.pem).
    #[arg(long, env = "DROVER_CACERT", value_name = "FILE", global = true)]
    ca_cert: Option<std::path::PathBuf>,
    /// The ACL token's secret. Prefer DROVER_TOKEN or --token-file: a
    /// flag shows in `ps`.
    #[arg(long, env = "DROVER_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A file holding the ACL token's secret.
    #[arg(long, env = "DROVER_TOKEN_FILE", value_name = "FILE", global = true, conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
}

impl ServerAddress {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let ca_pem = match &self.ca_cert {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
                anyhow::anyhow!("cannot read the cluster CA {} (--ca-cert, DROVER_CACERT): {error}", path.display())
            })?),
            None => None,
        };
        let token = match &self.token_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
                anyhow::anyhow!("cannot read the token file {} (--token-file): {error}", path.display())
            })?),
            None => self.token.clone(),
        };
        let credentials = drover_client::Credentials { ca_pem, token };
        Ok(Client::secured(&self.address, &credentials)?.with_stale(self.stale))
    }
}

/// Node arguments as typed: each may hold comma-separated names and brace
/// ranges (`batch{00..99},gpu07`); the result keeps the order, without
/// repeats.
pub(crate) fn expand_node_args(args: &[String]) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for arg in args {
        let expanded =
            drover_filter::expand_names(arg).map_err(|error| anyhow::anyhow!("bad node list {arg:?}: {error}"))?;
        names.extend(expanded.into_iter().filter(|name| seen.insert(name.clone())));
    }
    Ok(names)
}

/// Accepts Nomad's single-dash long flags for variables (`-var x=y`,
/// `-var-file F`) by rewriting them to `--var` and `--var-file`.
pub(crate) fn normalise_arguments(arguments: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    arguments
        .into_iter()
        .map(|argument| {
            let Some(text) = argument.to_str() else { return argument };
            for flag in ["-var-file", "-var"] {
                if text == flag || text.starts_with(&format!("{flag}=")) {
                    return OsString::from(format!("-{text}"));
                }
            }
            argument
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nomad_style_variable_flags_become_long_flags() {
        let arguments = ["drover", "job", "run", "-var", "x=1", "-var-file=f.hcl", "--json", "-v"];
        let normalised: Vec<String> = normalise_arguments(arguments.map(OsString::from))
            .into_iter()
            .map(|argument| argument.into_string().unwrap())
            .collect();
        assert_eq!(normalised, ["drover", "job", "run", "--var", "x=1", "--var-file=f.hcl", "--json", "-v"]);
    }
}
