//! `drover man`: manual pages made from the command definitions
//! (clap_mangen), so they never disagree with `--help`.
//!
//! Without `--dir`, `drover.1` goes to stdout (`drover man | man -l -`);
//! with `--dir DIR`, `drover.1` and one page per subcommand
//! (`drover-job-status.1`, …) are written there, as the packages install
//! them in `/usr/share/man/man1`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// `drover man [--dir DIR]`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write drover.1 and one page per subcommand into this directory
    /// (created if missing) instead of printing drover.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints drover.1, or writes every page into `--dir`.
pub(crate) fn run(args: &ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    let command = command.disable_help_subcommand(true);
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        super::output::print_line(String::from_utf8_lossy(&page).trim_end());
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .map_err(|error| anyhow::anyhow!("cannot create the man page directory {}: {error}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .map_err(|error| anyhow::anyhow!("cannot write man pages into {}: {error}", dir.display()))?;
    let num_pages = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".1"))
        .count();
    eprintln!("{num_pages} man pages in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
