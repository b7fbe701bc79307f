//! A task's `template` and `artifact` blocks: files the agent renders or
//! downloads into the task directory before the task starts. A template's
//! text is checked here (syntax and functions, by [`drover_template`]), so
//! a function drover cannot answer is refused when the file is read, not
//! when the task starts.

use drover_hcl::BlockReader;
use drover_hcl::suggest::did_you_mean;
use drover_types::validate::SIGNALS;
use drover_types::{
    ArtifactMode, ChangeMode, ChangeScript, DurationSpec, TaskArtifact, TaskTemplate, TemplateSource, TemplateWait,
};

/// Nomad's default template permissions.
const DEFAULT_PERMS: u32 = 0o644;

/// A `template` block.
pub(crate) fn read_template(mut block: BlockReader<'_>) -> Option<TaskTemplate> {
    let template = template_from(&mut block);
    block.unsupported("uid", "the file belongs to the agent's user: make it readable with perms");
    block.unsupported("gid", "the file belongs to the agent's user: make it readable with perms");
    block.unsupported("vault_grace", "drover has no Vault integration");
    block.unsupported("once", "");
    // `error_on_missing_key` tunes missing keys of Consul data, which a
    // drover template does not read: accepted as a no-op (docs/nomad.md).
    block.skip("error_on_missing_key");
    block.finish();
    template
}

fn template_from(block: &mut BlockReader<'_>) -> Option<TaskTemplate> {
    let data = block.string("data");
    let source_path = block.string("source");
    let left_delimiter = block.string("left_delimiter").unwrap_or_else(|| "{{".to_owned());
    let right_delimiter = block.string("right_delimiter").unwrap_or_else(|| "}}".to_owned());
    let source = match (data, source_path) {
        (Some(_), Some(_)) => {
            block.attribute_error("source", "a template has either data or source, not both: remove one".to_owned());
            None
        }
        (Some(text), None) => {
            let delimiters =
                drover_template::Delimiters { left: left_delimiter.clone(), right: right_delimiter.clone() };
            match drover_template::check(&text, &delimiters) {
                Ok(()) => Some(TemplateSource::Data(text)),
                Err(error) => {
                    let location = block.attribute_location("data");
                    // The error's line is within the text; a heredoc's text
                    // starts on the line after `data = <<EOF`.
                    let message = match error.line {
                        Some(line) => format!("template data, line {line} of its text: {}", error.message),
                        None => format!("template data: {}", error.message),
                    };
                    block.report(location, message);
                    None
                }
            }
        }
        (None, Some(path)) if !path.trim().is_empty() => {
            let path = in_task_dir(&path);
            match drover_types::task_files::task_path_problem(&path) {
                None => Some(TemplateSource::File(path)),
                Some(problem) => {
                    block.attribute_error(
                        "source",
                        format!(
                            "template source {path:?} {problem}: the agent reads sources in the task directory only \
                             (as Nomad's template sandbox does); put the file there with an artifact, or use data"
                        ),
                    );
                    None
                }
            }
        }
        (None, _) => {
            if !block.has("data") && !block.has("source") {
                block.error(format!(
                    "{} needs its text: data = <<EOF … EOF, or source = \"<path of a file in the task directory>\"",
                    block.description()
                ));
            } else if block.has("source") {
                block.attribute_error("source", "source must not be empty".to_owned());
            }
            None
        }
    };
    let destination = read_destination(block, "destination", None);
    let change_mode = match block.string("change_mode").as_deref() {
        None | Some("restart") => Some(ChangeMode::Restart),
        Some("signal") => Some(ChangeMode::Signal),
        Some("noop") => Some(ChangeMode::Noop),
        Some("script") => Some(ChangeMode::Script),
        Some(other) => {
            block.attribute_error(
                "change_mode",
                format!(
                    "unknown change_mode {other:?}: use \"restart\", \"signal\", \"script\" or \"noop\"{}",
                    did_you_mean(other, ["restart", "signal", "script", "noop"])
                ),
            );
            None
        }
    };
    let change_signal = read_change_signal(block, change_mode);
    let change_script = read_change_script(block, change_mode);
    let perms = read_perms(block);
    let env = block.bool("env").unwrap_or(false);
    let splay = if block.has("splay") { block.duration("splay") } else { Some(DurationSpec::from_secs(5)) };
    let wait = match block.block("wait") {
        None => Some(None),
        Some(wait) => read_wait(wait).map(Some),
    };
    Some(TaskTemplate {
        source: source?,
        destination: destination?,
        change_mode: change_mode?,
        change_signal: change_signal?,
        change_script: change_script?,
        perms: perms?,
        env,
        left_delimiter,
        right_delimiter,
        splay: splay?,
        wait: wait?,
    })
}

/// A template's `wait { min = "2s" max = "10s" }`. As consul-template,
/// `min` alone makes `max` four times `min`; `max` must not be below
/// `min`.
fn read_wait(mut block: BlockReader<'_>) -> Option<TemplateWait> {
    let min = if block.has("min") { block.duration("min") } else { Some(DurationSpec::from_secs(5)) };
    let max = if block.has("max") { block.duration("max").map(Some) } else { Some(None) };
    let wait = match (min, max) {
        (Some(min), Some(max)) => {
            let max = max.unwrap_or_else(|| DurationSpec(min.get().saturating_mul(4)));
            if max.get() < min.get() {
                block.attribute_error(
                    "max",
                    format!(
                        "the template's wait has max {max} below min {min}: max is the longest a render waits \
                         after the first change, so it must be at least min"
                    ),
                );
                None
            } else {
                Some(TemplateWait { min, max })
            }
        }
        _ => None,
    };
    block.finish();
    wait
}

/// A template's `change_script { command args timeout fail_on_error }`:
/// needed by `change_mode = "script"`, and read only with it.
fn read_change_script(block: &mut BlockReader<'_>, change_mode: Option<ChangeMode>) -> Option<Option<ChangeScript>> {
    let Some(mut script) = block.block("change_script") else {
        if change_mode == Some(ChangeMode::Script) {
            block.error(format!(
                "{} has change_mode = \"script\" and needs a change_script block, e.g. \
                 change_script {{ command = \"/local/reload.sh\" }}",
                block.description()
            ));
            return None;
        }
        return Some(None);
    };
    let wrong_mode = change_mode.is_some_and(|mode| mode != ChangeMode::Script);
    if wrong_mode {
        script.error(
            "change_script runs only with change_mode = \"script\": set change_mode = \"script\", or remove the block",
        );
    }
    let command = match script.string("command") {
        Some(command) if command.trim().is_empty() => {
            script.attribute_error("command", "the change_script's command must not be empty");
            None
        }
        Some(command) => Some(command),
        None => {
            if !script.has("command") {
                script.error("change_script needs its command, e.g. command = \"/local/reload.sh\"");
            }
            None
        }
    };
    let args = if script.has("args") { script.string_list("args") } else { Some(Vec::new()) };
    let timeout = if script.has("timeout") { script.duration("timeout") } else { Some(DurationSpec::from_secs(5)) };
    let timeout = timeout.filter(|timeout| {
        let fits = (std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600)).contains(&timeout.get());
        if !fits {
            script
                .attribute_error("timeout", format!("the change_script timeout is {timeout}: give between 1s and 1h"));
        }
        fits
    });
    let fail_on_error = if script.has("fail_on_error") { script.bool("fail_on_error") } else { Some(false) };
    script.finish();
    if wrong_mode {
        return None;
    }
    Some(Some(ChangeScript { command: command?, args: args?, timeout: timeout?, fail_on_error: fail_on_error? }))
}

fn read_change_signal(block: &mut BlockReader<'_>, change_mode: Option<ChangeMode>) -> Option<Option<String>> {
    let signal = block.string("change_signal");
    match (&signal, change_mode) {
        (None, Some(ChangeMode::Signal)) => {
            block.error(format!(
                "{} has change_mode = \"signal\" and needs change_signal, e.g. change_signal = \"SIGHUP\"",
                block.description()
            ));
            None
        }
        (Some(name), _) if !SIGNALS.contains(&name.as_str()) => {
            block.attribute_error(
                "change_signal",
                format!("unknown signal {name:?}: use a name such as \"SIGHUP\"{}", did_you_mean(name, SIGNALS)),
            );
            None
        }
        _ => Some(signal),
    }
}

fn read_perms(block: &mut BlockReader<'_>) -> Option<u32> {
    if !block.has("perms") {
        return Some(DEFAULT_PERMS);
    }
    let text = block.string("perms")?;
    match u32::from_str_radix(text.trim(), 8) {
        Ok(perms) if perms <= 0o7777 => Some(perms),
        _ => {
            block.attribute_error(
                "perms",
                format!("perms must be octal permission bits such as \"0644\", not {text:?}"),
            );
            None
        }
    }
}

/// A path in the task directory: relative, not leaving it. Nomad's
/// `${NOMAD_TASK_DIR}` and `${NOMAD_SECRETS_DIR}` at its start stand for
/// `local` and `secrets`. `default` is used when the attribute is absent.
fn read_destination(block: &mut BlockReader<'_>, name: &str, default: Option<&str>) -> Option<String> {
    let given = match (block.string(name), default) {
        (Some(text), _) => text,
        (None, Some(default)) if !block.has(name) => return Some(default.to_owned()),
        (None, _) => {
            if !block.has(name) {
                block.error(format!(
                    "{} needs {name}, a path in the task directory such as {name} = \"local/app.conf\"",
                    block.description()
                ));
            }
            return None;
        }
    };
    let path = in_task_dir(&given);
    if drover_types::task_files::task_path_problem(&path).is_some() || path.contains("${") {
        block.attribute_error(
            name,
            format!(
                "{name} {given:?} must be a path in the task directory such as \"local/app.conf\" (or start with ${{NOMAD_TASK_DIR}}, ${{NOMAD_SECRETS_DIR}} or ${{NOMAD_ALLOC_DIR}})"
            ),
        );
        return None;
    }
    Some(path)
}

/// A path as the task sees it, relative to its task directory: Nomad's
/// directory variables become the directories they name.
fn in_task_dir(given: &str) -> String {
    given.replacen("${NOMAD_TASK_DIR}", "local", 1).replacen("${NOMAD_SECRETS_DIR}", "secrets", 1).replacen(
        "${NOMAD_ALLOC_DIR}",
        "../alloc",
        1,
    )
}

/// An `artifact` block.
pub(crate) fn read_artifact(mut block: BlockReader<'_>) -> Option<TaskArtifact> {
    let artifact = artifact_from(&mut block);
    block.finish();
    artifact
}

fn artifact_from(block: &mut BlockReader<'_>) -> Option<TaskArtifact> {
    let source = match block.string("source") {
        Some(url) if ["http://", "https://", "file://"].iter().any(|scheme| url.starts_with(scheme)) => Some(url),
        Some(other) => {
            block.attribute_error(
                "source",
                format!(
                    "artifact source {other:?} is not supported: drover downloads http://, https:// and file:// URLs (go-getter's git::, s3:: and the like are not)"
                ),
            );
            None
        }
        None => {
            if !block.has("source") {
                block.error(format!("{} needs source = \"https://…\"", block.description()));
            }
            None
        }
    };
    let destination = read_destination(block, "destination", Some("local/"));
    let mode = match block.string("mode").as_deref() {
        None | Some("any") => Some(ArtifactMode::Any),
        Some("file") => Some(ArtifactMode::File),
        Some("dir") => Some(ArtifactMode::Dir),
        Some(other) => {
            block.attribute_error(
                "mode",
                format!(
                    "unknown artifact mode {other:?}: use \"any\", \"file\" or \"dir\"{}",
                    did_you_mean(other, ["any", "file", "dir"])
                ),
            );
            None
        }
    };
    let headers = block.string_map("headers").unwrap_or_default();
    let (checksum, unpack) = match block.block("options") {
        Some(options) => read_options(options)?,
        None => (None, true),
    };
    block.unsupported("chown", "the files belong to the agent's user");
    Some(TaskArtifact { source: source?, destination: destination?, mode: mode?, checksum, unpack, headers })
}

/// `options { checksum = "sha256:…"  archive = false }`.
fn read_options(mut block: BlockReader<'_>) -> Option<(Option<String>, bool)> {
    let checksum = block.string("checksum");
    let valid_checksum = match &checksum {
        Some(text) => match text.split_once(':') {
            Some(("sha256", digest)) if digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()) => true,
            _ => {
                block.attribute_error(
                    "checksum",
                    format!("checksum {text:?} must be \"sha256:<64 hex digits>\" (drover verifies sha256 only)"),
                );
                false
            }
        },
        None => true,
    };
    let archive = if block.has("archive") { block.bool("archive") } else { Some(true) };
    block.finish();
    Some((checksum.filter(|_| valid_checksum), archive?)).filter(|_| valid_checksum)
}
