//! `drover copy [-r] SRC NODES[:DST]`: a file or a directory to many nodes
//! through their agents, as `pscp` and `clush --copy` do, but with no SSH.
//! A file is the stdin of a `drover exec` of `cat > DST.drover-tmp.PID &&
//! chmod MODE … && mv … DST` on every node, so a node ends with the whole
//! file or its old one, never half. A directory (`-r`) is a tar archive made
//! here (modes and symbolic links kept, at most 3 MiB in all) that every
//! node unpacks with `tar -x` where `scp -r` would put it. Printed as `drover
//! exec` prints (status lines, grouped outputs, summary).

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
    /// The local file to copy (at most 3 MiB), or directory with `-r`.
    #[arg(value_name = "SRC")]
    source: std::path::PathBuf,
    /// Copy the directory SRC and everything under it (as `scp -r`): into
    /// DST/NAME when DST is a directory on the node, else to DST. Modes and
    /// symbolic links are kept; the archive is at most 3 MiB; needs `tar`
    /// on the nodes.
    #[arg(long, short = 'r')]
    recursive: bool,
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
    /// The file's mode on the nodes, in octal (default: SRC's); not with -r,
    /// which keeps every file's own.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<u32>,
    /// Print one JSON document with every node's result instead.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerAddress,
}

pub(crate) async fn run(args: CopyArgs) -> anyhow::Result<ExitCode> {
    let source_is_directory = std::fs::metadata(&args.source).is_ok_and(|metadata| metadata.is_dir());
    if source_is_directory && !args.recursive {
        anyhow::bail!(
            "{} is a directory; give -r to copy it and everything under it (drover copy -r SRC NODES:DST)",
            args.source.display()
        );
    }
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
    let (command, contents) = if source_is_directory {
        if args.mode.is_some() {
            anyhow::bail!("--mode sets one file's mode; drover copy -r keeps the mode of every file under SRC");
        }
        let (name, contents) = archive_directory(&args.source)?;
        let placement = if args.target.contains(':') { Placement::AsScpDoes } else { Placement::Into };
        (tree_command(&destination, &name, placement), contents)
    } else {
        let file = std::fs::File::open(&args.source)
            .map_err(|error| anyhow::anyhow!("cannot open {}: {error}", args.source.display()))?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            anyhow::bail!("{} is not a regular file or a directory; drover copy copies those", args.source.display());
        }
        let mode = args.mode.unwrap_or(metadata.permissions().mode() & 0o7777);
        (copy_command(&destination, mode), read_bounded(file, &args.source.display().to_string())?)
    };
    let request = ExecRequest {
        nodes,
        filter,
        command: vec![command],
        timeout_ms: u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX),
        parallel: args.parallel,
        user: args.user.clone(),
        local: false,
        root_allowed: true,
        stdin: contents,
        // Room for the error messages of `cat`, `chmod`, `mv` and `tar`.
        max_output_bytes: 64 * 1024,
        ..ExecRequest::default()
    };
    run_and_print(&request, &args.server, Printing { json: args.json, prefix: false }).await
}

/// `NODES:DST` split at the `:` before DST's leading `/` (node sets hold
/// no `:/`); `NODES` alone means SRC's own absolute path, or for a
/// directory the one it is in.
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
    if source.is_dir() {
        let absolute = source
            .canonicalize()
            .map_err(|error| anyhow::anyhow!("cannot find where {} is: {error}", source.display()))?;
        let parent = absolute.parent().unwrap_or(Path::new("/"));
        return Ok((target.to_owned(), parent.display().to_string()));
    }
    Ok((target.to_owned(), absolute.display().to_string()))
}

/// Where a directory lands on the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// As `scp -r SRC host:DST`: in DST/NAME when DST is a directory there,
    /// else at DST.
    AsScpDoes,
    /// Always DST/NAME (`NODES` alone: DST is the directory SRC is in).
    Into,
}

/// A tar archive of the directory `source`, at most
/// [`drover_proto::api::MAX_EXEC_STDIN_BYTES`], and the directory's name.
/// Symbolic links stay links; modes and modification times are kept.
fn archive_directory(source: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let limit = drover_proto::api::MAX_EXEC_STDIN_BYTES;
    let name = source
        .canonicalize()
        .ok()
        .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if name.is_empty() {
        anyhow::bail!("{} has no name to give the copy; name a directory below /", source.display());
    }
    let mut builder = tar::Builder::new(Bounded { bytes: Vec::new(), limit });
    builder.follow_symlinks(false);
    let archived = builder.append_dir_all(".", source).and_then(|()| builder.into_inner());
    match archived {
        Ok(bounded) => Ok((name, bounded.bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::FileTooLarge => anyhow::bail!(
            "{} holds over {} MiB, the most drover copy can send to each node; copy less, or pack it and fetch it from a web server",
            source.display(),
            limit / 1024 / 1024
        ),
        Err(error) => anyhow::bail!("cannot read the directory {}: {error}", source.display()),
    }
}

/// A buffer that refuses to grow past `limit` bytes, so a huge directory is
/// not read whole before it is refused.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buffer.len() > self.limit {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "over the copy limit"));
        }
        self.bytes.extend_from_slice(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shell command that unpacks the archive on stdin at `destination`
/// (see [`Placement`]): files are replaced one by one, as `scp -r` does, and
/// keep their modes; the owner is whoever runs the command.
fn tree_command(destination: &str, name: &str, placement: Placement) -> String {
    let choose = match placement {
        Placement::AsScpDoes => {
            format!("d={}; if [ -d \"$d\" ]; then d=\"$d\"/{}; fi", shell_quote(destination), shell_quote(name))
        }
        Placement::Into => format!("d={}/{}", shell_quote(destination), shell_quote(name)),
    };
    format!("{choose}; mkdir -p \"$d\" && tar -x -p --no-same-owner -f - -C \"$d\"")
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
    fn a_directory_lands_where_scp_would_put_it() {
        assert_eq!(
            tree_command("/srv/it's", "conf.d", Placement::AsScpDoes),
            "d='/srv/it'\\''s'; if [ -d \"$d\" ]; then d=\"$d\"/conf.d; fi; mkdir -p \"$d\" && tar -x -p --no-same-owner -f - -C \"$d\""
        );
        assert_eq!(
            tree_command("/etc", "conf.d", Placement::Into),
            "d=/etc/conf.d; mkdir -p \"$d\" && tar -x -p --no-same-owner -f - -C \"$d\""
        );
    }

    #[test]
    fn a_directory_over_the_limit_is_refused_before_it_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; drover_proto::api::MAX_EXEC_STDIN_BYTES]).unwrap();
        let error = archive_directory(dir.path()).unwrap_err().to_string();
        assert!(error.contains("holds over 3 MiB"), "{error}");
        std::fs::write(dir.path().join("big"), "small").unwrap();
        let (name, archive) = archive_directory(dir.path()).unwrap();
        assert_eq!(Some(name.as_str()), dir.path().file_name().and_then(|name| name.to_str()));
        assert!(archive.len() < 10 * 1024);
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
