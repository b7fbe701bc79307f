//! `drover copy SRC NODES[:DST]`: one file to many nodes through their
//! agents, as `pscp` and `clush --copy` do, but with no SSH: the file is
//! the stdin of a `drover exec` of `cat > DST.drover-tmp.PID && chmod MODE …
//! && mv … DST` on every node, so a node ends with the whole file or its old
//! one, never half. Printed as `drover exec` prints (status lines, grouped
//! outputs, summary).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use drover_proto::api::ExecRequest;
use drover_react::template::shell_quote;

use super::ServerAddress;
use super::exec::{Printing, read_bounded, run_and_print};

/// `drover copy`.
#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The local file to copy (at most 3 MiB).
    #[arg(value_name = "SRC")]
    source: std::path::PathBuf,
    /// `NODES:DST`: the nodes (names, lists, brace ranges, pdsh node sets)
    /// and the absolute path on them; `NODES` alone copies to SRC's own
    /// absolute path; `:DST` with `--filter` selects by filter only.
    #[arg(value_name = "NODES[:DST]")]
    target: String,
    /// The nodes this filter matches (docs/nodes.md); with NODES, those of
    /// them it matches.
    #[arg(long)]
    filter: Option<String>,
    /// Leave these nodes out (names, lists, ranges, node sets).
    #[arg(long, short = 'x', value_name = "NODES")]
    exclude: Vec<String>,
    /// Deadline per node.
    #[arg(long, default_value = "30s", value_parser = crate::roles::parse_duration)]
    timeout: Duration,
    /// Copy to at most this many nodes at once (per server); 0: all at once.
    #[arg(long, short = 'p', default_value_t = 0)]
    parallel: usize,
    /// Write the file as this user instead of the agent's.
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// The file's mode on the nodes, in octal (default: SRC's).
    #[arg(long, value_parser = parse_mode)]
    mode: Option<u32>,
    /// Print one JSON document with every node's result instead.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerAddress,
}

pub(crate) async fn run(args: CopyArgs) -> anyhow::Result<ExitCode> {
    let (node_text, destination) = split_target(&args.target, &args.source)?;
    if node_text.is_empty() && args.filter.is_none() {
        anyhow::bail!("name the nodes to copy to: drover copy SRC NODES:DST (or :DST with --filter EXPR)");
    }
    let node_args: Vec<String> = if node_text.is_empty() { Vec::new() } else { vec![node_text] };
    let (nodes, filter) = super::exclude_nodes(
        super::expand_node_args(&node_args)?,
        args.filter.clone(),
        &super::expand_node_args(&args.exclude)?,
    );
    let file = std::fs::File::open(&args.source)
        .map_err(|error| anyhow::anyhow!("cannot open {}: {error}", args.source.display()))?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        anyhow::bail!("{} is not a regular file; drover copy copies one file", args.source.display());
    }
    let mode = args.mode.unwrap_or(metadata.permissions().mode() & 0o7777);
    let contents = read_bounded(file, &args.source.display().to_string())?;
    let request = ExecRequest {
        nodes,
        filter,
        command: vec![copy_command(&destination, mode)],
        timeout_ms: u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX),
        parallel: args.parallel,
        user: args.user.clone(),
        local: false,
        root_allowed: true,
        stdin: contents,
        // Room for the error messages of `cat`, `chmod` and `mv`.
        max_output_bytes: 64 * 1024,
        ..ExecRequest::default()
    };
    run_and_print(&request, &args.server, Printing { json: args.json, prefix: false }).await
}

/// `NODES:DST` split at the `:` before DST's leading `/` (node sets hold
/// no `:/`); `NODES` alone means SRC's own absolute path.
fn split_target(target: &str, source: &Path) -> anyhow::Result<(String, String)> {
    if let Some(at) = target.find(":/") {
        return Ok((target[..at].to_owned(), target[at + 1..].to_owned()));
    }
    if let Some((_, destination)) = target.split_once(':') {
        anyhow::bail!(
            "the destination {destination:?} is not an absolute path; write NODES:/path/on/the/nodes (relative paths would depend on each agent's directory)"
        );
    }
    let absolute = std::path::absolute(source)
        .map_err(|error| anyhow::anyhow!("cannot make {} absolute: {error}", source.display()))?;
    Ok((target.to_owned(), absolute.display().to_string()))
}

/// The shell command that writes stdin to `destination` atomically.
fn copy_command(destination: &str, mode: u32) -> String {
    // `$$`: the shell's pid, so two copies to one path never share a
    // temporary file.
    let temporary = format!("{}.$$", shell_quote(&format!("{destination}.drover-tmp")));
    let destination = shell_quote(destination);
    format!("cat > {temporary} && chmod {mode:o} {temporary} && mv -f {temporary} {destination}")
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 644 or 0755"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_splits_before_the_absolute_destination() {
        let source = Path::new("/etc/motd");
        assert_eq!(split_target("n[1-3]:/etc/x y", source).unwrap(), ("n[1-3]".to_owned(), "/etc/x y".to_owned()));
        assert_eq!(split_target(":/tmp/a", source).unwrap(), (String::new(), "/tmp/a".to_owned()));
        assert_eq!(split_target("n1,n2", source).unwrap(), ("n1,n2".to_owned(), "/etc/motd".to_owned()));
        let error = split_target("n1:tmp/a", source).unwrap_err().to_string();
        assert!(error.contains("not an absolute path"), "{error}");
    }

    #[test]
    fn the_command_quotes_paths_and_sets_the_mode() {
        assert_eq!(
            copy_command("/tmp/it's here", 0o644),
            "cat > '/tmp/it'\\''s here.drover-tmp'.$$ && chmod 644 '/tmp/it'\\''s here.drover-tmp'.$$ && mv -f '/tmp/it'\\''s here.drover-tmp'.$$ '/tmp/it'\\''s here'"
        );
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("999").is_err());
    }
}
