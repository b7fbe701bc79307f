//! The Nomad compatibility corpus: how many real-world-shaped exec and
//! raw_exec job files (`tests/nomad-corpus/`, their models named in
//! `SOURCES`) drover reads, and why it refuses the rest.
//!
//! The test prints the count, the percentage and every refusal (the first
//! diagnostic of each refused file), and fails when fewer files validate
//! than [`MINIMUM_VALID`]: the figure recorded in docs/nomad.md may only
//! rise. `DROVER_NOMAD_CORPUS=<dir>` measures the job files of another
//! folder as well (such as a checkout of third-party job files), printing
//! their figures apart; they never fail the test. `DROVER_NOMAD_CORPUS_ALL=1`
//! prints every diagnostic of a refused file instead of the first.

use std::fs;
use std::path::{Path, PathBuf};

use drover_jobspec::{Source, VarInputs, parse_job};

/// Files of `tests/nomad-corpus/` that must validate (see docs/nomad.md).
const MINIMUM_VALID: usize = 30;

/// The outcome of one folder: the files read, and the refused ones with
/// their first diagnostic.
struct Measure {
    total: usize,
    refused: Vec<(String, String)>,
}

fn job_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", directory.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            name.ends_with(".nomad") || name.ends_with(".hcl")
        })
        .collect();
    files.sort();
    files
}

fn measure(directory: &Path) -> Measure {
    let files = job_files(directory);
    let mut refused = Vec::new();
    for path in &files {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let text = fs::read_to_string(path).unwrap_or_default();
        if let Err(diagnostics) = parse_job(&Source::new(name.clone(), text), &VarInputs::default()) {
            // `DROVER_NOMAD_CORPUS_ALL=1` shows every diagnostic, not only the first.
            let shown = if std::env::var_os("DROVER_NOMAD_CORPUS_ALL").is_some() { diagnostics.0.len() } else { 1 };
            let reasons: Vec<String> = diagnostics.0.iter().take(shown).map(ToString::to_string).collect();
            refused.push((name, reasons.join("\n    ")));
        }
    }
    Measure { total: files.len(), refused }
}

fn report(title: &str, measure: &Measure) -> usize {
    let valid = measure.total - measure.refused.len();
    let percent = if measure.total == 0 { 0.0 } else { 100.0 * valid as f64 / measure.total as f64 };
    println!("{title}: {valid} of {} job files validate ({percent:.0} %)", measure.total);
    for (name, reason) in &measure.refused {
        println!("  refused {name}: {reason}");
    }
    valid
}

#[test]
fn the_nomad_corpus_validates_at_least_as_well_as_recorded() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("nomad-corpus");
    let corpus = measure(&directory);
    assert!(corpus.total >= 30, "the corpus has {} files, fewer than 30", corpus.total);
    let valid = report("tests/nomad-corpus", &corpus);
    if let Some(extra) = std::env::var_os("DROVER_NOMAD_CORPUS") {
        report(&PathBuf::from(&extra).display().to_string(), &measure(Path::new(&extra)));
    }
    assert!(
        valid >= MINIMUM_VALID,
        "only {valid} corpus files validate, fewer than the {MINIMUM_VALID} recorded in docs/nomad.md"
    );
}
