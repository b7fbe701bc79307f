//! Reading configuration files: one HCL file, or every `*.hcl` file of a
//! directory in name order, against a role's key table.
//!
//! Top-level keys are attributes (`bind = "0.0.0.0:4747"`); keys named
//! `block.attribute` live in a block (`heartbeat { ttl = "8s" }`), which may
//! appear once per file. Every problem of every file is collected: unknown
//! keys (with the nearest known one), values of the wrong type, bad
//! durations and addresses, duplicate blocks, each at its file:line:column.

use std::path::Path;

use drover_hcl::{BlockReader, Diagnostic, Diagnostics, Source, VarInputs};

use super::{Found, Key, Kind, Origin, Value, check_log_filter, parse_address};

/// The files of `path` (a file, or the `*.hcl` of a directory) and what
/// they set, in merge order (later files override earlier ones).
pub(crate) fn read(path: &Path, role: &str, keys: &'static [Key]) -> Result<(Vec<String>, Vec<Found>), Diagnostics> {
    let files = files_of(path)?;
    let mut diagnostics = Diagnostics::new();
    let mut found = Vec::new();
    for file in &files {
        match read_file(file, role, keys) {
            Ok(values) => found.extend(values),
            Err(problems) => diagnostics.0.extend(problems),
        }
    }
    diagnostics.into_result((files.iter().map(|file| file.display().to_string()).collect(), found))
}

/// `path` itself, or the `*.hcl` files in it sorted by name.
fn files_of(path: &Path) -> Result<Vec<std::path::PathBuf>, Diagnostics> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|error| {
        Diagnostic::without_position(&name, format!("cannot read the configuration: {error}; check --config"))
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|error| {
        Diagnostic::without_position(&name, format!("cannot list the configuration directory: {error}"))
    })?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|file| file.extension().is_some_and(|extension| extension == "hcl") && file.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn read_file(path: &Path, role: &str, keys: &'static [Key]) -> Result<Vec<Found>, Diagnostics> {
    let source = Source::read(path)?;
    let evaluation = drover_hcl::parse(&source)?.evaluate(&VarInputs::default());
    let file = evaluation.name().to_owned();
    let mut found = Vec::new();
    let mut root = evaluation.root();
    for key in keys {
        if let (None, attribute) = key.block_and_attribute() {
            match key.not_in_files {
                None => found.extend(read_key(&mut root, key, attribute, &file)),
                Some(reason) => root.unsupported(attribute, reason),
            }
        }
    }
    let mut blocks: Vec<&str> = Vec::new();
    for block_name in keys.iter().filter_map(|key| key.block_and_attribute().0) {
        if !blocks.contains(&block_name) {
            blocks.push(block_name);
        }
    }
    for block_name in blocks {
        let Some(mut block) = root.block(block_name) else { continue };
        for key in keys {
            if let (Some(block_of_key), attribute) = key.block_and_attribute()
                && block_of_key == block_name
            {
                found.extend(read_key(&mut block, key, attribute, &file));
            }
        }
        block.finish();
    }
    root.finish();
    let diagnostics = evaluation.finish().err().map(|diagnostics| explain_unknown_keys(diagnostics, role));
    match diagnostics {
        Some(diagnostics) => Err(diagnostics),
        None => Ok(found),
    }
}

/// An unknown key without a suggestion says where the keys are listed.
fn explain_unknown_keys(diagnostics: Diagnostics, role: &str) -> Diagnostics {
    Diagnostics(
        diagnostics
            .into_iter()
            .map(|mut diagnostic| {
                if diagnostic.message.starts_with("unknown ") && !diagnostic.message.contains("did you mean") {
                    diagnostic.message.push_str(&format!(
                        "; `{role} --print-config` lists every key and docs/configuration.md explains them"
                    ));
                }
                diagnostic
            })
            .collect(),
    )
}

/// Reads one key from `reader`; a problem is recorded in the evaluation.
fn read_key(reader: &mut BlockReader<'_>, key: &'static Key, attribute: &str, file: &str) -> Option<Found> {
    let location = reader.attribute_location(attribute);
    let value = match key.kind {
        Kind::Text | Kind::Secret => Value::Text(reader.string(attribute)?),
        Kind::Path => Value::Path(reader.string(attribute)?.into()),
        Kind::Address => {
            let text = reader.string(attribute)?;
            match parse_address(&text) {
                Ok(address) => Value::Address(address),
                Err(_) => {
                    let message = format!(
                        "{} must be an address written IP:port, such as \"0.0.0.0:4747\", not {text:?}",
                        reader.phrase(attribute)
                    );
                    reader.attribute_error(attribute, message);
                    return None;
                }
            }
        }
        Kind::Duration => Value::Duration(reader.duration(attribute)?.get()),
        Kind::Count => Value::Count(reader.u64(attribute)?),
        Kind::Switch => Value::Switch(reader.bool(attribute)?),
        Kind::List => Value::List(reader.string_list(attribute)?),
        Kind::Map => Value::Map(reader.string_map(attribute)?),
        Kind::LogFilter => {
            let text = reader.string(attribute)?;
            if let Err(problem) = check_log_filter(&text) {
                let message = format!("{}: {problem}", reader.phrase(attribute));
                reader.attribute_error(attribute, message);
                return None;
            }
            Value::Text(text)
        }
    };
    Some(Found {
        key,
        value,
        origin: Origin::File { file: file.to_owned(), line: location.line, column: location.column },
    })
}
