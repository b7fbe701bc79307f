//! The job file schema: Nomad's HCL job specification, read into drover's
//! [`Job`].
//!
//! A job file holds exactly one `job "<id>" { … }` block and any number of
//! `variable` blocks. Block and attribute names are Nomad's, so a Nomad job
//! file ports by deleting what drover does not run; every default is
//! Nomad's and is written into the [`Job`] explicitly, so the server never
//! has to guess. Everything drover does not support (`template`,
//! `artifact`, `network`, drivers other than `exec` and `raw_exec`, …) is an
//! error at its position, never a silent skip, and all errors of a file are
//! reported at once.
//!
//! Reading is done by [`drover_hcl`]: this crate only says which names exist,
//! what type they have, what their defaults are and which combinations are
//! valid.
//!
//! ```
//! use drover_hcl::{Source, VarInputs};
//!
//! let text = r#"
//! job "hello" {
//!   group "web" {
//!     task "server" {
//!       driver = "raw_exec"
//!       config { command = "/bin/sleep"  args = ["60"] }
//!     }
//!   }
//! }
//! "#;
//! let job = drover_jobspec::parse_job(&Source::new("hello.nomad.hcl", text), &VarInputs::default()).unwrap();
//! assert_eq!(job.groups[0].tasks[0].config.command, "/bin/sleep");
//! assert_eq!(job.groups[0].count, 1);
//! ```

mod group;
mod job;
mod network;
mod placement;
mod policies;
mod service;
mod task;
mod task_files;
mod validate;

use std::path::Path;

pub use drover_hcl::{Diagnostic, Diagnostics, Source, VarInputs};
use drover_hcl::{Evaluation, Location};
use drover_types::Job;

/// Reads a job file.
///
/// `vars` gives values to the file's `variable` blocks (see
/// [`drover_hcl::variables`]). On failure every problem found is returned,
/// each with its file, line and column.
pub fn parse_job(source: &Source, vars: &VarInputs) -> Result<Job, Diagnostics> {
    let document = drover_hcl::parse(source)?;
    let evaluation = document.evaluate(vars);
    let job = read_file(&evaluation);
    let name = evaluation.name().to_owned();
    evaluation.finish()?;
    job.ok_or_else(|| {
        // Unreachable in practice: a missing job is always reported. Kept as
        // an error rather than a panic so that no input can crash a caller.
        Diagnostics::from(Diagnostic::new(name, Location::START, "no job could be read from this file"))
    })
}

/// Reads the job file at `path` (its name in diagnostics is `path` as
/// given).
pub fn parse_job_file(path: &Path, vars: &VarInputs) -> Result<Job, Diagnostics> {
    let source = Source::read(path)?;
    parse_job(&source, vars)
}

/// The top level of a job file: one `job` block (variables and locals are
/// read by `drover-hcl`).
fn read_file(evaluation: &Evaluation) -> Option<Job> {
    let mut root = evaluation.root();
    let had_job_blocks = root.has("job");
    let mut job_blocks = root.labeled_blocks("job").into_iter();
    root.finish();
    let Some(first) = job_blocks.next() else {
        if !had_job_blocks {
            evaluation.report(
                Location::START,
                "no job block: a job file must contain one job \"<id>\" { group \"<name>\" { task \"<name>\" { … } } }",
            );
        }
        return None;
    };
    for extra in job_blocks {
        extra.error(format!(
            "only one job block is allowed per file (the first is job \"{}\" at line {})",
            first.label(),
            first.location().line
        ));
    }
    job::read_job(first)
}
