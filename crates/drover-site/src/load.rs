//! Reading a site folder: every `*.hcl` file but job files, then the checks
//! that span files (duplicate names, references, the default provider).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use drover_hcl::suggest::did_you_mean;
use drover_hcl::{Diagnostic, Diagnostics, Location, Source, VarInputs};
use hcl_edit::Span;
use hcl_edit::structure::{Body, Structure};

use crate::read::{Collected, FileReader, ObjectKind, Origin, Target};
use drover_react::schema::{Provider, ProviderOperation, Site};

/// The suffix of job files, which belong to `drover job run`.
pub const JOB_FILE_SUFFIX: &str = ".nomad.hcl";

/// Whether a file name is a site file: `*.hcl` but not `*.nomad.hcl`.
pub fn is_site_file(file_name: &str) -> bool {
    file_name.ends_with(".hcl") && !file_name.ends_with(JOB_FILE_SUFFIX) && !file_name.starts_with('.')
}

/// Reads the site files of `folder` (not recursively), in name order.
pub(crate) fn load_dir(folder: &Path) -> Result<Site, Diagnostics> {
    let folder_name = folder.display().to_string();
    let entries = std::fs::read_dir(folder).map_err(|error| {
        Diagnostics::from(Diagnostic::without_position(&folder_name, format!("cannot read the site folder: {error}")))
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.file_name().and_then(|name| name.to_str()).is_some_and(is_site_file))
        .collect();
    paths.sort();
    let mut sources = Vec::with_capacity(paths.len());
    let mut diagnostics = Diagnostics::new();
    for path in &paths {
        match Source::read(path) {
            Ok(source) => sources.push(source),
            Err(problems) => problems.into_iter().for_each(|problem| diagnostics.push(problem)),
        }
    }
    if paths.is_empty() {
        diagnostics.push(Diagnostic::without_position(
            &folder_name,
            "no site files in the folder: write providers, notifiers, alerts and hammers in *.hcl files \
             (*.nomad.hcl files are jobs and are skipped)",
        ));
    }
    let result = from_sources(&sources, folder);
    match result {
        Ok(site) => diagnostics.into_result(site),
        Err(problems) => {
            problems.into_iter().for_each(|problem| diagnostics.push(problem));
            Err(diagnostics.into_result(()).err().unwrap_or_default())
        }
    }
}

/// Reads already loaded site files; runbook paths are checked against
/// `folder`.
pub(crate) fn from_sources(sources: &[Source], folder: &Path) -> Result<Site, Diagnostics> {
    let mut collected = Collected::default();
    let mut diagnostics = Diagnostics::new();
    for source in sources {
        let document = match drover_hcl::parse(source) {
            Ok(document) => document,
            Err(problems) => {
                problems.into_iter().for_each(|problem| diagnostics.push(problem));
                continue;
            }
        };
        let mut metric_blocks = BTreeSet::new();
        find_metric_blocks(document.body(), &source.text, false, &mut metric_blocks);
        let evaluation = document.evaluate(&VarInputs::default());
        let mut reader = FileReader { file: source.name.clone(), folder, metric_blocks, collected: &mut collected };
        reader.read(&evaluation);
        if let Err(problems) = evaluation.finish() {
            problems.into_iter().for_each(|problem| diagnostics.push(problem));
        }
    }
    let site = assemble(collected, &mut diagnostics);
    diagnostics.into_result(site)
}

/// Records the positions of `metric { … }` blocks directly inside `when`
/// blocks, so the reader can tell them from `metric = "…"` attributes.
fn find_metric_blocks(body: &Body, text: &str, inside_when: bool, found: &mut BTreeSet<Location>) {
    for structure in body.iter() {
        let Structure::Block(block) = structure else {
            continue;
        };
        let name = block.ident.as_str();
        if inside_when
            && name == "metric"
            && let Some(span) = block.ident.span()
        {
            found.insert(location_of(text, span.start));
        }
        find_metric_blocks(&block.body, text, name == "when", found);
    }
}

/// The one-based line and character column of a byte offset, as
/// `drover-hcl` computes them.
fn location_of(text: &str, offset: usize) -> Location {
    let clamped = offset.min(text.len());
    let before = text.get(..clamped).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    Location { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
}

fn report(diagnostics: &mut Diagnostics, origin: &Origin, message: String) {
    diagnostics.push(Diagnostic::new(origin.file.clone(), origin.location, message));
}

fn place(origin: &Origin) -> String {
    format!("{}:{}:{}", origin.file, origin.location.line, origin.location.column)
}

/// Checks what spans files and builds the site.
fn assemble(collected: Collected, diagnostics: &mut Diagnostics) -> Site {
    let Collected { definitions, providers, notifiers, alerts, hammers, log_sinks, references, default_providers } =
        collected;

    let mut first_definitions: BTreeMap<(ObjectKind, &str), &Origin> = BTreeMap::new();
    for (kind, name, origin) in &definitions {
        match first_definitions.get(&(*kind, name.as_str())) {
            Some(first) => report(
                diagnostics,
                origin,
                format!(
                    "{} \"{name}\" is defined twice (first at {}): names must be unique in a site",
                    kind.as_str(),
                    place(first)
                ),
            ),
            None => {
                first_definitions.insert((*kind, name.as_str()), origin);
            }
        }
    }
    let names_of = |wanted: ObjectKind| -> Vec<&str> {
        definitions.iter().filter(|(kind, _, _)| *kind == wanted).map(|(_, name, _)| name.as_str()).collect()
    };
    let notifier_names = names_of(ObjectKind::Notifier);
    let alert_names = names_of(ObjectKind::Alert);
    let provider_names = names_of(ObjectKind::Provider);

    if let Some(((first_name, first_origin), others)) = default_providers.split_first() {
        for (name, origin) in others {
            report(
                diagnostics,
                origin,
                format!(
                    "provider \"{name}\" is a second default provider (provider \"{first_name}\" at {} is one already): keep one default = true",
                    place(first_origin)
                ),
            );
        }
    }
    let providers_by_name: BTreeMap<&str, &Provider> =
        providers.iter().map(|provider| (provider.name.as_str(), provider)).collect();
    let default_provider: Option<&Provider> = match default_providers.first() {
        Some((name, _)) => providers_by_name.get(name.as_str()).copied(),
        None if providers.len() == 1 && provider_names.len() == 1 => providers.first(),
        None => None,
    };

    for reference in &references {
        match &reference.target {
            Target::Notifier(name) if !notifier_names.contains(&name.as_str()) => report(
                diagnostics,
                &reference.origin,
                format!(
                    "{} names notifier \"{name}\", which is not defined{}",
                    reference.from,
                    suggestion_or_hint(
                        name,
                        &notifier_names,
                        "define it with notifier \"NAME\" { webhook { url = \"…\" } }"
                    )
                ),
            ),
            Target::Alert(name) if !alert_names.contains(&name.as_str()) => report(
                diagnostics,
                &reference.origin,
                format!(
                    "{} names alert \"{name}\", which is not defined{}",
                    reference.from,
                    suggestion_or_hint(name, &alert_names, "define it with alert \"NAME\" { when { … } }")
                ),
            ),
            Target::Provider(Some(name), operation) => {
                if !provider_names.contains(&name.as_str()) {
                    report(
                        diagnostics,
                        &reference.origin,
                        format!(
                            "{} names provider \"{name}\", which is not defined{}",
                            reference.from,
                            suggestion_or_hint(
                                name,
                                &provider_names,
                                "define it with provider \"NAME\" { reboot = \"…\" }"
                            )
                        ),
                    );
                } else if let Some(provider) = providers_by_name.get(name.as_str())
                    && provider.command(*operation).is_none()
                {
                    report(
                        diagnostics,
                        &reference.origin,
                        format!(
                            "{} needs the {op} command of provider \"{name}\", which has none: add {op} = \"…\" to it",
                            reference.from,
                            op = operation.as_str()
                        ),
                    );
                }
            }
            Target::Provider(None, ProviderOperation::Console) => {
                if !providers.iter().any(|provider| provider.console.is_some()) && !provider_names.is_empty() {
                    report(
                        diagnostics,
                        &reference.origin,
                        format!(
                            "{} reads console logs, but no provider has a console command: add console = \"…\" to a provider",
                            reference.from
                        ),
                    );
                } else if provider_names.is_empty() {
                    report(
                        diagnostics,
                        &reference.origin,
                        format!(
                            "{} reads console logs, but the site has no provider: define provider \"NAME\" {{ console = \"… {{{{node.name}}}}\" }}",
                            reference.from
                        ),
                    );
                }
            }
            Target::Provider(None, operation) => match default_provider {
                Some(provider) if provider.command(*operation).is_none() => report(
                    diagnostics,
                    &reference.origin,
                    format!(
                        "{} uses the default provider \"{}\", which has no {op} command: add {op} = \"…\" to it or name another provider with provider = \"…\"",
                        reference.from,
                        provider.name,
                        op = operation.as_str()
                    ),
                ),
                Some(_) => {}
                // A provider that failed to read was reported already.
                None if provider_names.len() > providers.len() => {}
                None if provider_names.is_empty() => report(
                    diagnostics,
                    &reference.origin,
                    format!(
                        "{} needs a provider, and the site has none: define provider \"NAME\" {{ {} = \"… {{{{node.name}}}}\" }}",
                        reference.from,
                        operation.as_str()
                    ),
                ),
                None => report(
                    diagnostics,
                    &reference.origin,
                    format!(
                        "{} needs a provider: name one with provider = \"…\" ({}) or mark one with default = true",
                        reference.from,
                        provider_names.iter().map(|name| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
                    ),
                ),
            },
            Target::Notifier(_) | Target::Alert(_) => {}
        }
    }

    let single_provider = providers.len() == 1 && provider_names.len() == 1;
    let mut site = Site::default();
    for mut provider in providers {
        provider.default = provider.default || single_provider;
        site.providers.entry(provider.name.clone()).or_insert(provider);
    }
    for notifier in notifiers {
        site.notifiers.entry(notifier.name.clone()).or_insert(notifier);
    }
    for alert in alerts {
        site.alerts.entry(alert.name.clone()).or_insert(alert);
    }
    for hammer in hammers {
        site.hammers.entry(hammer.name.clone()).or_insert(hammer);
    }
    for sink in log_sinks {
        site.log_sinks.entry(sink.name.clone()).or_insert(sink);
    }
    site
}

fn suggestion_or_hint(name: &str, candidates: &[&str], hint: &str) -> String {
    let suggestion = did_you_mean(name, candidates.iter().copied());
    if suggestion.is_empty() { format!(": {hint}") } else { suggestion }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_files_exclude_job_files() {
        assert!(is_site_file("alerts.hcl"));
        assert!(!is_site_file("web.nomad.hcl"));
        assert!(!is_site_file("notes.md"));
        assert!(!is_site_file(".hidden.hcl"));
    }

    #[test]
    fn locations_count_characters() {
        assert_eq!(location_of("ab\nçd x", 6), Location { line: 2, column: 3 });
        assert_eq!(location_of("x", 0), Location { line: 1, column: 1 });
    }
}
