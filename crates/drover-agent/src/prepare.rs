//! Task preparation: the files a task's `artifact` and `template` blocks
//! put into its directory before it starts (Nomad's order: artifacts
//! first, so a template may render a downloaded file).
//!
//! Artifacts are downloaded with up to [`DOWNLOAD_ATTEMPTS`] tries, their
//! `sha256` checksum verified, and `.tar.gz`/`.tgz`/`.tar`/`.zip` archives
//! unpacked; templates are rendered by [`drover_template`] with the task's
//! environment for `env`, written with their permission bits. Any failure
//! is one message naming the block and what went wrong, which the task
//! runner reports as a `Task Setup` event that fails the task.
//!
//! Unpacking is bounded ([`UnpackLimits`]: 4 GiB and 100,000 entries by
//! default), so a small archive that unpacks to terabytes (a gzip or zip
//! bomb) fails the task instead of filling the disk, and it refuses any
//! entry that would land outside the destination: `..` in a path, an
//! absolute path, a link pointing out of the directory, a device.
//!
//! The rendered files of `env = true` templates are read again each time
//! the task starts ([`template_env`]), so a restarted agent gives the task
//! the same variables, and a task restarted because its template changed
//! (`crate::templates`) gets the new ones. [`rerender_templates`] is the
//! watcher's half: render again, rewrite only what differs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use drover_template::{ClusterData, Delimiters, parse_env_file};
use drover_types::{ArtifactMode, Task, TaskArtifact, TaskTemplate, TemplateSource};
use sha2::{Digest, Sha256};

/// Tries per artifact before the task fails.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// The longest one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The largest artifact drover downloads (1 GiB): it is held in memory
/// until it is verified and placed.
pub const MAX_DOWNLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// The most an archive may unpack to, in bytes (4 GiB).
pub const MAX_UNPACKED_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The most entries (files, directories, links) an archive may hold.
pub const MAX_UNPACKED_ENTRIES: u64 = 100_000;

/// How much one archive may unpack to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnpackLimits {
    /// Bytes written, all files together.
    pub(crate) bytes: u64,
    /// Entries of any kind.
    pub(crate) entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits { bytes: MAX_UNPACKED_BYTES, entries: MAX_UNPACKED_ENTRIES }
    }
}

/// Downloads the task's artifacts, then renders its templates, into
/// `task_dir`. `env` is the task's environment (what `env "X"` reads),
/// `cluster` the variables and services its templates may read.
pub(crate) async fn prepare_task_files(
    task: &Task,
    task_dir: &Path,
    env: &BTreeMap<String, String>,
    cluster: &ClusterData,
) -> Result<(), String> {
    if !task.artifacts.is_empty() {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(DOWNLOAD_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot make an HTTP client for artifacts: {error}"))?;
        for artifact in &task.artifacts {
            fetch_artifact(&http, artifact, task_dir)
                .await
                .map_err(|error| format!("artifact {}: {error}", artifact.source))?;
        }
    }
    render_templates(task, task_dir, env, cluster)
}

/// Renders every template of `task` into `task_dir`.
pub(crate) fn render_templates(
    task: &Task,
    task_dir: &Path,
    env: &BTreeMap<String, String>,
    cluster: &ClusterData,
) -> Result<(), String> {
    for template in &task.templates {
        let rendered = render_template(template, task_dir, env, cluster)
            .map_err(|error| format!("template {}: {error}", template.destination))?;
        write_file(&in_task_dir(task_dir, &template.destination)?, rendered.as_bytes(), template.perms)
            .map_err(|error| format!("template {}: {error}", template.destination))?;
    }
    Ok(())
}

/// Renders the templates of `task` again (what they read changed) and
/// rewrites those whose output differs from their file: the indexes of
/// those templates in `task.templates`. A template whose file is not there
/// yet (the task has not been prepared) is left for the task's start.
pub(crate) fn rerender_templates(
    task: &Task,
    task_dir: &Path,
    env: &BTreeMap<String, String>,
    cluster: &ClusterData,
) -> Result<Vec<usize>, String> {
    let mut changed = Vec::new();
    for (position, template) in task.templates.iter().enumerate() {
        let destination = in_task_dir(task_dir, &template.destination)?;
        let Ok(current) = std::fs::read_to_string(&destination) else { continue };
        let rendered = render_template(template, task_dir, env, cluster)
            .map_err(|error| format!("template {}: {error}", template.destination))?;
        if rendered != current {
            write_file(&destination, rendered.as_bytes(), template.perms)
                .map_err(|error| format!("template {}: {error}", template.destination))?;
            changed.push(position);
        }
    }
    Ok(changed)
}

/// The text `template` renders to.
fn render_template(
    template: &TaskTemplate,
    task_dir: &Path,
    env: &BTreeMap<String, String>,
    cluster: &ClusterData,
) -> Result<String, String> {
    let text = match &template.source {
        TemplateSource::Data(text) => text.clone(),
        TemplateSource::File(path) => {
            let path = in_task_dir(task_dir, path)?;
            std::fs::read_to_string(&path).map_err(|error| format!("cannot read source {}: {error}", path.display()))?
        }
    };
    let delimiters = Delimiters { left: template.left_delimiter.clone(), right: template.right_delimiter.clone() };
    let rendered = drover_template::render_with(&text, &delimiters, env, cluster).map_err(|error| error.to_string())?;
    if template.env {
        parse_env_file(&rendered)
            .map_err(|error| format!("env = true, but the rendered file is not KEY=value lines: {error}"))?;
    }
    Ok(rendered)
}

/// `path` in the task directory; refused when it would leave it (the job
/// was checked when it was submitted: this is the agent's own guard, as it
/// reads and writes as root).
fn in_task_dir(task_dir: &Path, path: &str) -> Result<std::path::PathBuf, String> {
    match drover_types::task_files::task_path_problem(path) {
        None => Ok(task_dir.join(path)),
        Some(problem) => Err(format!("path {path:?} {problem}: only paths in the task directory are used")),
    }
}

/// The variables of the task's `env = true` templates, in file order (a
/// later one wins), read from their rendered files.
pub(crate) fn template_env(task: &Task, task_dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut variables = BTreeMap::new();
    for template in task.templates.iter().filter(|template| template.env) {
        let path = task_dir.join(&template.destination);
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("template {}: cannot read {}: {error}", template.destination, path.display()))?;
        variables.extend(parse_env_file(&text).map_err(|error| format!("template {}: {error}", template.destination))?);
    }
    Ok(variables)
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it)
/// with `perms`.
fn write_file(path: &Path, bytes: &[u8], perms: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let parent = path.parent().ok_or_else(|| format!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    let temporary = parent.join(format!(
        ".{}.drover-tmp",
        path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(perms)))
        .and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Downloads one artifact, verifies it and puts it in place.
async fn fetch_artifact(http: &reqwest::Client, artifact: &TaskArtifact, task_dir: &Path) -> Result<(), String> {
    let bytes = download(http, artifact).await?;
    if let Some(expected) = &artifact.checksum {
        let actual = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(format!("checksum mismatch: expected {expected}, downloaded {actual}"));
        }
    }
    let artifact = artifact.clone();
    let task_dir = task_dir.to_owned();
    tokio::task::spawn_blocking(move || place(&artifact, &task_dir, &bytes, UnpackLimits::default()))
        .await
        .map_err(|error| format!("unpacking stopped: {error}"))?
}

/// The artifact's bytes, with retries for http(s).
async fn download(http: &reqwest::Client, artifact: &TaskArtifact) -> Result<Vec<u8>, String> {
    if let Some(path) = artifact.source.strip_prefix("file://") {
        let path = path.to_owned();
        return tokio::task::spawn_blocking(move || read_at_most(Path::new(&path), MAX_DOWNLOAD_BYTES))
            .await
            .map_err(|error| format!("reading stopped: {error}"))?;
    }
    let mut last_error = String::new();
    for attempt in 1..=DOWNLOAD_ATTEMPTS {
        let mut request = http.get(&artifact.source);
        for (name, value) in &artifact.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.and_then(reqwest::Response::error_for_status);
        match response {
            Ok(mut response) => {
                if response.content_length().is_some_and(|length| length > MAX_DOWNLOAD_BYTES) {
                    return Err(too_large(MAX_DOWNLOAD_BYTES));
                }
                let mut bytes = Vec::new();
                loop {
                    match response.chunk().await {
                        Ok(Some(chunk)) => {
                            if (bytes.len() + chunk.len()) as u64 > MAX_DOWNLOAD_BYTES {
                                return Err(too_large(MAX_DOWNLOAD_BYTES));
                            }
                            bytes.extend_from_slice(&chunk);
                        }
                        Ok(None) => return Ok(bytes),
                        Err(error) => {
                            last_error = error.to_string();
                            break;
                        }
                    }
                }
            }
            // A 4xx answer will not change: no retry.
            Err(error) if error.status().is_some_and(|status| status.is_client_error()) => {
                return Err(format!("download failed: {error}"));
            }
            Err(error) => last_error = error.to_string(),
        }
        if attempt < DOWNLOAD_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Err(format!("download failed after {DOWNLOAD_ATTEMPTS} tries: {last_error}"))
}

fn too_large(limit: u64) -> String {
    format!("the download is larger than {}, the largest artifact drover fetches", bytes_text(limit))
}

/// Reads a local artifact (`file://`), refusing one larger than `limit`
/// after reading one byte more (`/dev/zero` ends at once).
fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// The archive formats drover unpacks.
#[derive(Clone, Copy)]
enum Archive {
    TarGz,
    Tar,
    Zip,
}

fn archive_of(name: &str) -> Option<Archive> {
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(Archive::TarGz)
    } else if name.ends_with(".tar") {
        Some(Archive::Tar)
    } else if name.ends_with(".zip") {
        Some(Archive::Zip)
    } else {
        None
    }
}

/// The last path segment of a URL, without query or fragment.
fn file_name_of(source: &str) -> String {
    let path = source.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/').find(|segment| !segment.is_empty()).unwrap_or("artifact").to_owned()
}

/// Puts the downloaded bytes where the artifact's mode says.
fn place(artifact: &TaskArtifact, task_dir: &Path, bytes: &[u8], limits: UnpackLimits) -> Result<(), String> {
    let name = file_name_of(&artifact.source);
    let destination = in_task_dir(task_dir, &artifact.destination)?;
    let archive = archive_of(&name).filter(|_| artifact.unpack && artifact.mode != ArtifactMode::File);
    match (artifact.mode, archive) {
        (ArtifactMode::File, _) => write_file(&destination, bytes, 0o644),
        (_, Some(archive)) => unpack(archive, bytes, &destination, limits),
        (ArtifactMode::Dir, None) => {
            Err(format!("mode = \"dir\" needs an archive (.tar.gz, .tgz, .tar or .zip), and {name} is not one"))
        }
        (ArtifactMode::Any, None) => write_file(&destination.join(&name), bytes, 0o644),
    }
}

fn unpack(archive: Archive, bytes: &[u8], directory: &Path, limits: UnpackLimits) -> Result<(), String> {
    std::fs::create_dir_all(directory).map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    let mut budget = Budget { limits, bytes: 0, entries: 0 };
    let unpacked = match archive {
        Archive::TarGz => unpack_tar(tar::Archive::new(flate2::read::GzDecoder::new(bytes)), directory, &mut budget),
        Archive::Tar => unpack_tar(tar::Archive::new(bytes), directory, &mut budget),
        Archive::Zip => unpack_zip(bytes, directory, &mut budget),
    };
    unpacked.map_err(|error| format!("cannot unpack into {}: {error}", directory.display()))
}

/// What an archive has used of its [`UnpackLimits`] so far.
struct Budget {
    limits: UnpackLimits,
    bytes: u64,
    entries: u64,
}

impl Budget {
    /// Counts one more entry.
    fn entry(&mut self) -> Result<(), String> {
        self.entries += 1;
        if self.entries > self.limits.entries {
            return Err(format!(
                "the archive holds more than {} entries, the most drover unpacks (a zip or tar bomb?); nothing more was unpacked",
                self.limits.entries
            ));
        }
        Ok(())
    }

    /// Bytes left before the limit.
    fn left(&self) -> u64 {
        self.limits.bytes.saturating_sub(self.bytes)
    }

    /// Counts `size` more bytes for `entry`.
    fn spend(&mut self, entry: &str, size: u64) -> Result<(), String> {
        if size > self.left() {
            return Err(format!(
                "{entry} would take the unpacked size past {}, the most drover unpacks from one archive (a zip or gzip bomb?); unpacking stopped",
                bytes_text(self.limits.bytes)
            ));
        }
        self.bytes += size;
        Ok(())
    }
}

fn bytes_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why an entry's path would leave the destination, if it would: `..`,
/// an absolute path, or nothing at all.
fn path_problem(path: &Path) -> Option<&'static str> {
    use std::path::Component;
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => return Some("it climbs out of the directory with `..`"),
            Component::RootDir | Component::Prefix(_) => return Some("it is an absolute path"),
        }
    }
    (depth == 0).then_some("it names no file")
}

/// Why a link at `entry` (a path inside the destination) pointing to
/// `target` would lead out of the destination, if it would. A symbolic
/// link's target is relative to the link's directory; a hard link's to
/// the archive's root.
fn link_problem(entry: &Path, target: &Path, symbolic: bool) -> Option<String> {
    use std::path::Component;
    let mut depth: i64 = if symbolic {
        entry.components().filter(|part| matches!(part, Component::Normal(_))).count() as i64 - 1
    } else {
        0
    };
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Some(format!("it links to {} outside the directory", target.display()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Some(format!("it links to the absolute path {}", target.display()));
            }
        }
    }
    None
}

fn unpack_tar<R: std::io::Read>(
    mut archive: tar::Archive<R>,
    directory: &Path,
    budget: &mut Budget,
) -> Result<(), String> {
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|error| format!("cannot read the archive: {error}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|error| format!("cannot read the archive: {error}"))?;
        budget.entry()?;
        let path = entry.path().map_err(|error| format!("an entry's path cannot be read: {error}"))?.into_owned();
        let shown = path.display().to_string();
        if let Some(problem) = path_problem(&path) {
            return Err(format!("entry {shown:?} is refused: {problem}"));
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse
            | tar::EntryType::Directory => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|error| format!("entry {shown:?}: its link cannot be read: {error}"))?
                    .ok_or_else(|| format!("entry {shown:?} is a link to nothing"))?
                    .into_owned();
                if let Some(problem) = link_problem(&path, &target, kind == tar::EntryType::Symlink) {
                    return Err(format!("entry {shown:?} is refused: {problem}"));
                }
            }
            // Long names and extended headers are read by `tar` itself.
            tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
            | tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader => continue,
            other => {
                return Err(format!(
                    "entry {shown:?} is refused: drover does not unpack {other:?} entries (devices, pipes)"
                ));
            }
        }
        budget.spend(&format!("entry {shown:?}"), entry.size())?;
        let placed = entry.unpack_in(directory).map_err(|error| format!("entry {shown:?}: {error}"))?;
        if !placed {
            return Err(format!("entry {shown:?} is refused: it would be written outside the directory"));
        }
        if kind == tar::EntryType::GNUSparse {
            // A sparse entry may be larger on disk than in the archive.
            let written = std::fs::symlink_metadata(directory.join(&path)).map(|meta| meta.len()).unwrap_or(0);
            budget.spend(&format!("entry {shown:?}"), written.saturating_sub(entry.size()))?;
        }
    }
    Ok(())
}

fn unpack_zip(bytes: &[u8], directory: &Path, budget: &mut Budget) -> Result<(), String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt;
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|error| format!("not a zip archive: {error}"))?;
    if zip.len() as u64 > budget.limits.entries {
        budget.entries = zip.len() as u64 - 1;
        budget.entry()?;
    }
    for index in 0..zip.len() {
        let mut file = zip.by_index(index).map_err(|error| format!("cannot read entry {index}: {error}"))?;
        budget.entry()?;
        let shown = file.name().to_owned();
        let Some(relative) = file.enclosed_name() else {
            let problem = path_problem(Path::new(&shown)).unwrap_or("it would be written outside the directory");
            return Err(format!("entry {shown:?} is refused: {problem}"));
        };
        let path = directory.join(&relative);
        if file.is_dir() {
            std::fs::create_dir_all(&path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
            continue;
        }
        if file.is_symlink() {
            let mut target = String::new();
            std::io::Read::take(&mut file, 4096)
                .read_to_string(&mut target)
                .map_err(|error| format!("entry {shown:?}: its link cannot be read: {error}"))?;
            if let Some(problem) = link_problem(&relative, Path::new(&target), true) {
                return Err(format!("entry {shown:?} is refused: {problem}"));
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
            }
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(&target, &path)
                .map_err(|error| format!("cannot link {}: {error}", path.display()))?;
            continue;
        }
        // The declared size may lie: count what is actually written.
        budget.spend(&format!("entry {shown:?}"), file.size())?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        // Never write through a link an earlier entry made.
        if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_symlink()) {
            return Err(format!("entry {shown:?} is refused: it would be written through a link"));
        }
        let mut out =
            std::fs::File::create(&path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        let declared = file.size();
        let allowed = declared + budget.left();
        let written = std::io::copy(&mut std::io::Read::take(&mut file, allowed + 1), &mut out)
            .map_err(|error| format!("entry {shown:?}: {error}"))?;
        if written > declared {
            budget.spend(&format!("entry {shown:?}"), written - declared)?;
        }
        if let Some(mode) = file.unix_mode() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|error| format!("cannot set the mode of {}: {error}", path.display()))?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use drover_types::{ChangeMode, DurationSpec};

    use super::*;

    fn template(source: TemplateSource, destination: &str, env: bool) -> TaskTemplate {
        TaskTemplate {
            source,
            destination: destination.to_owned(),
            change_mode: ChangeMode::Restart,
            change_signal: None,
            change_script: None,
            perms: 0o640,
            env,
            left_delimiter: "{{".to_owned(),
            right_delimiter: "}}".to_owned(),
            splay: DurationSpec::from_secs(5),
            wait: None,
        }
    }

    #[test]
    fn templates_render_into_the_task_directory_with_their_perms_and_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("local")).unwrap();
        std::fs::write(dir.path().join("local/app.tpl"), "name={{ env \"NOMAD_TASK_NAME\" }}").unwrap();
        let mut task = crate::test_support::task("web", "true", &[]);
        task.templates = vec![
            template(
                TemplateSource::Data("port = {{ env \"NOMAD_PORT_http\" }}\n".to_owned()),
                "local/app.conf",
                false,
            ),
            template(TemplateSource::File("local/app.tpl".to_owned()), "secrets/from-file.conf", false),
            template(
                TemplateSource::Data("PORT={{ env \"NOMAD_PORT_http\" }}\n# c\nMODE=\"a b\"\n".to_owned()),
                "local/app.env",
                true,
            ),
        ];
        let env = BTreeMap::from([
            ("NOMAD_PORT_http".to_owned(), "20123".to_owned()),
            ("NOMAD_TASK_NAME".to_owned(), "web".to_owned()),
        ]);
        render_templates(&task, dir.path(), &env, &ClusterData::default()).unwrap();

        let conf = dir.path().join("local/app.conf");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "port = 20123\n");
        assert_eq!(std::fs::metadata(&conf).unwrap().permissions().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read_to_string(dir.path().join("secrets/from-file.conf")).unwrap(), "name=web");
        let variables = template_env(&task, dir.path()).unwrap();
        assert_eq!(
            variables,
            BTreeMap::from([("MODE".to_owned(), "a b".to_owned()), ("PORT".to_owned(), "20123".to_owned())])
        );
    }

    #[test]
    fn a_template_that_fails_names_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let mut task = crate::test_support::task("web", "true", &[]);
        task.templates = vec![template(TemplateSource::File("local/missing.tpl".to_owned()), "local/x.conf", false)];
        let error = render_templates(&task, dir.path(), &BTreeMap::new(), &ClusterData::default()).unwrap_err();
        assert!(error.starts_with("template local/x.conf: cannot read source"), "{error}");
        task.templates = vec![template(TemplateSource::Data("not env".to_owned()), "local/x.env", true)];
        let error = render_templates(&task, dir.path(), &BTreeMap::new(), &ClusterData::default()).unwrap_err();
        assert!(error.contains("not KEY=value"), "{error}");
    }

    fn artifact(source: String, destination: &str, mode: ArtifactMode) -> TaskArtifact {
        TaskArtifact {
            source,
            destination: destination.to_owned(),
            mode,
            checksum: None,
            unpack: true,
            headers: BTreeMap::new(),
        }
    }

    /// A `.tar.gz` holding `bin/tool` and a `.zip` holding `doc.txt`, served
    /// from file:// URLs, unpacked; the same archive in file mode is kept
    /// as it is.
    #[tokio::test]
    async fn file_artifacts_are_placed_by_mode_and_archives_unpacked() {
        let sources = tempfile::tempdir().unwrap();
        let tarball = sources.path().join("tool.tar.gz");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&tarball).unwrap(),
            flate2::Compression::default(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append_data(&mut header, "bin/tool", &b"hello"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let zipped = sources.path().join("doc.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zipped).unwrap());
        zip.start_file("doc.txt", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(b"docs").unwrap();
        zip.finish().unwrap();
        let url = |path: &Path| format!("file://{}", path.display());

        let task_dir = tempfile::tempdir().unwrap();
        let mut task = crate::test_support::task("web", "true", &[]);
        task.artifacts = vec![
            artifact(url(&tarball), "local/", ArtifactMode::Any),
            artifact(url(&zipped), "local/docs", ArtifactMode::Dir),
            artifact(url(&tarball), "local/kept.tar.gz", ArtifactMode::File),
        ];
        let checksum = format!("sha256:{}", hex(&Sha256::digest(std::fs::read(&tarball).unwrap())));
        task.artifacts[0].checksum = Some(checksum);
        prepare_task_files(&task, task_dir.path(), &BTreeMap::new(), &ClusterData::default()).await.unwrap();
        let local = task_dir.path().join("local");
        assert_eq!(std::fs::read(local.join("bin/tool")).unwrap(), b"hello");
        assert_eq!(std::fs::read(local.join("docs/doc.txt")).unwrap(), b"docs");
        assert_eq!(std::fs::read(local.join("kept.tar.gz")).unwrap(), std::fs::read(&tarball).unwrap());

        task.artifacts = vec![artifact(url(&sources.path().join("absent")), "local/", ArtifactMode::Any)];
        let error =
            prepare_task_files(&task, task_dir.path(), &BTreeMap::new(), &ClusterData::default()).await.unwrap_err();
        assert!(error.starts_with("artifact file://") && error.contains("cannot read"), "{error}");
    }

    #[test]
    fn archives_are_recognised_by_name() {
        assert_eq!(file_name_of("https://host/a/tool-1.2.tar.gz?x=1"), "tool-1.2.tar.gz");
        assert!(matches!(archive_of("tool.tgz"), Some(Archive::TarGz)));
        assert!(matches!(archive_of("tool.zip"), Some(Archive::Zip)));
        assert!(archive_of("tool.sh").is_none());
    }

    #[test]
    fn an_endless_local_artifact_is_refused() {
        let error = read_at_most(Path::new("/dev/zero"), 1024 * 1024).unwrap_err();
        assert_eq!(error, "the download is larger than 1 MiB, the largest artifact drover fetches");
    }

    /// A tar entry header with a raw path (and link), as a hostile archive
    /// would have it: `tar::Builder` refuses to write such paths itself.
    fn raw_header(path: &str, kind: tar::EntryType, link: Option<&str>, size: u64) -> tar::Header {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header
    }

    fn tar_of(entries: &[(tar::Header, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (header, data) in entries {
            builder.append(header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn small(bytes: u64, entries: u64) -> UnpackLimits {
        UnpackLimits { bytes, entries }
    }

    /// 200 MB of zeros gzipped into a tarball of about 200 KB: with the
    /// limit at 10 MiB it is refused before anything is written.
    #[test]
    fn a_gzip_bomb_is_refused_before_it_fills_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_size(200_000_000);
        header.set_mode(0o644);
        builder.append_data(&mut header, "zeros", std::io::Read::take(std::io::repeat(0), 200_000_000)).unwrap();
        let bomb = builder.into_inner().unwrap().finish().unwrap();
        assert!(bomb.len() < 1_000_000, "the bomb is small: {} bytes", bomb.len());

        let started = std::time::Instant::now();
        let error = unpack(Archive::TarGz, &bomb, dir.path(), small(10 * 1024 * 1024, 100)).unwrap_err();
        assert_eq!(
            error,
            format!(
                "cannot unpack into {}: entry \"zeros\" would take the unpacked size past 10 MiB, the most drover unpacks from one archive (a zip or gzip bomb?); unpacking stopped",
                dir.path().display()
            )
        );
        assert!(!dir.path().join("zeros").exists(), "nothing was written");
        assert!(started.elapsed() < Duration::from_secs(5), "refused in {:?}", started.elapsed());
        // The default limits take it.
        unpack(Archive::TarGz, &bomb, dir.path(), UnpackLimits::default()).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("zeros")).unwrap().len(), 200_000_000);
    }

    #[test]
    fn a_zip_bomb_and_too_many_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("zeros", zip::write::SimpleFileOptions::default()).unwrap();
        std::io::copy(&mut std::io::Read::take(std::io::repeat(0), 50_000_000), &mut zip).unwrap();
        let bomb = zip.finish().unwrap().into_inner();
        let error = unpack(Archive::Zip, &bomb, dir.path(), small(1024 * 1024, 100)).unwrap_err();
        assert!(error.ends_with("entry \"zeros\" would take the unpacked size past 1 MiB, the most drover unpacks from one archive (a zip or gzip bomb?); unpacking stopped"), "{error}");

        let mut many = tar::Builder::new(Vec::new());
        for index in 0..11 {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            many.append_data(&mut header, format!("f{index}"), &b"x"[..]).unwrap();
        }
        let many = many.into_inner().unwrap();
        let error = unpack(Archive::Tar, &many, dir.path(), small(1024, 10)).unwrap_err();
        assert!(error.ends_with("the archive holds more than 10 entries, the most drover unpacks (a zip or tar bomb?); nothing more was unpacked"), "{error}");
        unpack(Archive::Tar, &many, dir.path(), small(1024, 11)).unwrap();
    }

    /// Entries that would land outside the destination are refused, each
    /// with what is wrong, and nothing lands outside.
    #[test]
    fn archives_that_climb_out_of_the_directory_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let dir = outside.path().join("task/local");
        let cases: Vec<(tar::Header, &str)> = vec![
            (
                raw_header("../escape", tar::EntryType::Regular, None, 1),
                "entry \"../escape\" is refused: it climbs out of the directory with `..`",
            ),
            (
                raw_header("a/../../escape", tar::EntryType::Regular, None, 1),
                "entry \"a/../../escape\" is refused: it climbs out of the directory with `..`",
            ),
            (
                raw_header("/tmp/escape", tar::EntryType::Regular, None, 1),
                "entry \"/tmp/escape\" is refused: it is an absolute path",
            ),
            (
                raw_header("link", tar::EntryType::Symlink, Some("../../escape"), 0),
                "entry \"link\" is refused: it links to ../../escape outside the directory",
            ),
            (
                raw_header("a/b/link", tar::EntryType::Symlink, Some("../../../x"), 0),
                "entry \"a/b/link\" is refused: it links to ../../../x outside the directory",
            ),
            (
                raw_header("passwd", tar::EntryType::Symlink, Some("/etc/passwd"), 0),
                "entry \"passwd\" is refused: it links to the absolute path /etc/passwd",
            ),
            (
                raw_header("hard", tar::EntryType::Link, Some("../escape"), 0),
                "entry \"hard\" is refused: it links to ../escape outside the directory",
            ),
            (
                raw_header("dev", tar::EntryType::Char, None, 0),
                "entry \"dev\" is refused: drover does not unpack Char entries (devices, pipes)",
            ),
        ];
        for (header, expected) in cases {
            let data: &[u8] = if header.size().unwrap() == 1 { b"x" } else { b"" };
            let archive = tar_of(&[(header, data)]);
            let error = unpack(Archive::Tar, &archive, &dir, UnpackLimits::default()).unwrap_err();
            assert_eq!(error, format!("cannot unpack into {}: {expected}", dir.display()));
        }
        assert!(!outside.path().join("task/escape").exists() && !outside.path().join("escape").exists());
        // Links that stay inside are fine.
        let inside = tar_of(&[
            (raw_header("a/b/up", tar::EntryType::Symlink, Some("../c"), 0), b""),
            (raw_header("a/c", tar::EntryType::Regular, None, 1), b"x"),
        ]);
        unpack(Archive::Tar, &inside, &dir, UnpackLimits::default()).unwrap();
        assert_eq!(std::fs::read_link(dir.join("a/b/up")).unwrap(), Path::new("../c"));

        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("../evil", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(b"x").unwrap();
        let evil = zip.finish().unwrap().into_inner();
        let error = unpack(Archive::Zip, &evil, &dir, UnpackLimits::default()).unwrap_err();
        assert!(error.ends_with("entry \"../evil\" is refused: it climbs out of the directory with `..`"), "{error}");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.add_symlink("out", "../../../etc", zip::write::SimpleFileOptions::default()).unwrap();
        let evil = zip.finish().unwrap().into_inner();
        let error = unpack(Archive::Zip, &evil, &dir, UnpackLimits::default()).unwrap_err();
        assert!(error.ends_with("entry \"out\" is refused: it links to ../../../etc outside the directory"), "{error}");
        assert!(!outside.path().join("evil").exists() && !outside.path().join("task/evil").exists());
    }
}
