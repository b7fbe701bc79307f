//! The command-line interface: every command talks to a server through
//! `drover-client` and prints a table, or JSON with `--json`.

pub(crate) mod acl;
pub(crate) mod alloc;
pub(crate) mod bounded;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod copy;
pub(crate) mod eval;
pub(crate) mod exec;
pub(crate) mod job;
pub(crate) mod logs;
pub(crate) mod machines;
pub(crate) mod man;
pub(crate) mod node;
pub(crate) mod output;
pub(crate) mod react;
pub(crate) mod server;
pub(crate) mod service;
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
            Some(path) => Some(bounded::read_credential_file(path).map_err(|error| {
                anyhow::anyhow!("cannot read the cluster CA {} (--ca-cert, DROVER_CACERT): {error}", path.display())
            })?),
            None => None,
        };
        let token = match &self.token_file {
            Some(path) => Some(bounded::read_credential_file(path).map_err(|error| {
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

/// Leaves `excluded` out of a selection (`-x`, as pdsh and clush): out of
/// the named nodes, and, when a filter selects, out of what it matches.
pub(crate) fn exclude_nodes(
    nodes: Vec<String>,
    filter: Option<String>,
    excluded: &[String],
) -> (Vec<String>, Option<String>) {
    if excluded.is_empty() {
        return (nodes, filter);
    }
    let nodes: Vec<String> = nodes.into_iter().filter(|node| !excluded.contains(node)).collect();
    let filter = filter.map(|filter| {
        let quoted: Vec<String> =
            excluded.iter().map(|name| format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))).collect();
        format!("({filter}) and name not in [{}]", quoted.join(", "))
    });
    (nodes, filter)
}

/// Accepts Nomad's single-dash long flags (`-json`, `-detach`,
/// `-address=…`, `-var x=1`) everywhere, by rewriting argv before clap
/// parses it: a `-word` or `-word=value` token whose `word` is a long flag
/// (or alias) of the subcommand reached so far, its parents' global flags
/// included, becomes `--word`. Everything else stays: short flags and
/// their clusters (`-v`, `-n 5`, `-vf`) when no long flag has that name,
/// the value of an option (`--filter -x`), and every token after `--`.
pub(crate) fn normalise_arguments(
    command: &clap::Command,
    arguments: impl IntoIterator<Item = OsString>,
) -> Vec<OsString> {
    let mut root = command.clone();
    root.build();
    let mut current = &root;
    let mut normalised = Vec::new();
    let mut after_escape = false;
    let mut next_is_a_value = false;
    for (position, argument) in arguments.into_iter().enumerate() {
        let text = match argument.to_str() {
            Some(text) if position > 0 && !after_escape => text,
            _ => {
                normalised.push(argument);
                continue;
            }
        };
        if std::mem::take(&mut next_is_a_value) {
            normalised.push(argument);
            continue;
        }
        if text == "--" {
            after_escape = true;
        } else if let Some(long) = text.strip_prefix("--") {
            let (name, value) = split_value(long);
            next_is_a_value = value.is_none() && long_flag(current, name).is_some_and(takes_a_value);
        } else if let Some(single) = text.strip_prefix('-')
            && single.len() > 1
        {
            let (name, value) = split_value(single);
            if let Some(flag) = long_flag(current, name) {
                next_is_a_value = value.is_none() && takes_a_value(flag);
                normalised.push(OsString::from(format!("-{text}")));
                continue;
            }
        } else if let Some(subcommand) = current.find_subcommand(text) {
            current = subcommand;
        }
        normalised.push(argument);
    }
    normalised
}

/// `name=value` → (`name`, Some(`value`)).
fn split_value(flag: &str) -> (&str, Option<&str>) {
    match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    }
}

/// The argument of `command` with this long name or alias.
fn long_flag<'command>(command: &'command clap::Command, name: &str) -> Option<&'command clap::Arg> {
    command.get_arguments().find(|argument| {
        argument.get_long() == Some(name) || argument.get_all_aliases().is_some_and(|aliases| aliases.contains(&name))
    })
}

fn takes_a_value(argument: &clap::Arg) -> bool {
    argument.get_action().takes_values()
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::CommandFactory;

    /// A small command tree shaped like drover's.
    #[derive(Debug, clap::Parser)]
    struct Tree {
        #[command(subcommand)]
        verb: TreeVerb,
    }

    #[derive(Debug, clap::Subcommand)]
    enum TreeVerb {
        #[command(subcommand)]
        Job(TreeJob),
        Exec {
            nodes: String,
            #[arg(long)]
            filter: Option<String>,
            #[arg(short = 'v')]
            verbose: bool,
            #[arg(last = true)]
            command: Vec<String>,
        },
    }

    #[derive(Debug, clap::Subcommand)]
    enum TreeJob {
        Run {
            file: String,
            #[arg(long = "var")]
            vars: Vec<String>,
            #[arg(long = "var-file")]
            var_files: Vec<String>,
            #[arg(long)]
            detach: bool,
            #[arg(long, short = 'j', alias = "format-json")]
            json: bool,
            #[command(flatten)]
            server: ServerAddress,
        },
    }

    fn normalise(arguments: &[&str]) -> Vec<String> {
        normalise_arguments(&Tree::command(), arguments.iter().map(OsString::from))
            .into_iter()
            .map(|argument| argument.into_string().unwrap())
            .collect()
    }

    #[test]
    fn nomad_style_long_flags_become_long_flags() {
        assert_eq!(
            normalise(&["drover", "job", "run", "-var", "x=1", "-var-file=f.hcl", "-detach", "-json", "f.hcl"]),
            ["drover", "job", "run", "--var", "x=1", "--var-file=f.hcl", "--detach", "--json", "f.hcl"]
        );
        assert_eq!(
            normalise(&["drover", "job", "run", "-address=http://a:4747", "-format-json", "-help"]),
            ["drover", "job", "run", "--address=http://a:4747", "--format-json", "--help"]
        );
    }

    #[test]
    fn short_flags_values_and_everything_after_the_escape_stay() {
        assert_eq!(
            normalise(&["drover", "job", "run", "-j", "-var", "-json", "f.hcl"]),
            ["drover", "job", "run", "-j", "--var", "-json", "f.hcl"]
        );
        assert_eq!(
            normalise(&["drover", "exec", "-v", "--filter", "-filter", "n1", "--", "ls", "-filter", "-json"]),
            ["drover", "exec", "-v", "--filter", "-filter", "n1", "--", "ls", "-filter", "-json"]
        );
        // `-detach` is not a flag of exec: clap reports it as it is.
        assert_eq!(normalise(&["drover", "exec", "-detach"]), ["drover", "exec", "-detach"]);
    }
}
