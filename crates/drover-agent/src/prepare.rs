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
//! The rendered files of `env = true` templates are read again each time
//! the task starts ([`template_env`]), so a restarted agent gives the task
//! the same variables.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use drover_template::{Delimiters, parse_env_file};
use drover_types::{ArtifactMode, Task, TaskArtifact, TaskTemplate, TemplateSource};
use sha2::{Digest, Sha256};

/// Tries per artifact before the task fails.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// The longest one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Downloads the task's artifacts, then renders its templates, into
/// `task_dir`. `env` is the task's environment (what `env "X"` reads).
pub(crate) async fn prepare_task_files(
    task: &Task,
    task_dir: &Path,
    env: &BTreeMap<String, String>,
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
    render_templates(task, task_dir, env)
}

/// Renders every template of `task` into `task_dir`.
pub(crate) fn render_templates(task: &Task, task_dir: &Path, env: &BTreeMap<String, String>) -> Result<(), String> {
    for template in &task.templates {
        render_template(template, task_dir, env)
            .map_err(|error| format!("template {}: {error}", template.destination))?;
    }
    Ok(())
}

fn render_template(template: &TaskTemplate, task_dir: &Path, env: &BTreeMap<String, String>) -> Result<(), String> {
    let text = match &template.source {
        TemplateSource::Data(text) => text.clone(),
        TemplateSource::File(path) => {
            let path = in_task_dir(task_dir, path)?;
            std::fs::read_to_string(&path).map_err(|error| format!("cannot read source {}: {error}", path.display()))?
        }
    };
    let delimiters = Delimiters { left: template.left_delimiter.clone(), right: template.right_delimiter.clone() };
    let rendered = drover_template::render(&text, &delimiters, env).map_err(|error| error.to_string())?;
    if template.env {
        parse_env_file(&rendered)
            .map_err(|error| format!("env = true, but the rendered file is not KEY=value lines: {error}"))?;
    }
    write_file(&in_task_dir(task_dir, &template.destination)?, rendered.as_bytes(), template.perms)
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
    tokio::task::spawn_blocking(move || place(&artifact, &task_dir, &bytes))
        .await
        .map_err(|error| format!("unpacking stopped: {error}"))?
}

/// The artifact's bytes, with retries for http(s).
async fn download(http: &reqwest::Client, artifact: &TaskArtifact) -> Result<Vec<u8>, String> {
    if let Some(path) = artifact.source.strip_prefix("file://") {
        return tokio::fs::read(path).await.map_err(|error| format!("cannot read {path}: {error}"));
    }
    let mut last_error = String::new();
    for attempt in 1..=DOWNLOAD_ATTEMPTS {
        let mut request = http.get(&artifact.source);
        for (name, value) in &artifact.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.and_then(reqwest::Response::error_for_status);
        match response {
            Ok(response) => match response.bytes().await {
                Ok(bytes) => return Ok(bytes.to_vec()),
                Err(error) => last_error = error.to_string(),
            },
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
fn place(artifact: &TaskArtifact, task_dir: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = file_name_of(&artifact.source);
    let destination = in_task_dir(task_dir, &artifact.destination)?;
    let archive = archive_of(&name).filter(|_| artifact.unpack && artifact.mode != ArtifactMode::File);
    match (artifact.mode, archive) {
        (ArtifactMode::File, _) => write_file(&destination, bytes, 0o644),
        (_, Some(archive)) => unpack(archive, bytes, &destination),
        (ArtifactMode::Dir, None) => {
            Err(format!("mode = \"dir\" needs an archive (.tar.gz, .tgz, .tar or .zip), and {name} is not one"))
        }
        (ArtifactMode::Any, None) => write_file(&destination.join(&name), bytes, 0o644),
    }
}

fn unpack(archive: Archive, bytes: &[u8], directory: &Path) -> Result<(), String> {
    std::fs::create_dir_all(directory).map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    let unpacked = match archive {
        Archive::TarGz => tar::Archive::new(flate2::read::GzDecoder::new(bytes)).unpack(directory),
        Archive::Tar => tar::Archive::new(bytes).unpack(directory),
        Archive::Zip => zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .and_then(|mut zip| zip.extract(directory))
            .map_err(std::io::Error::other),
    };
    unpacked.map_err(|error| format!("cannot unpack into {}: {error}", directory.display()))
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
            perms: 0o640,
            env,
            left_delimiter: "{{".to_owned(),
            right_delimiter: "}}".to_owned(),
            splay: DurationSpec::from_secs(5),
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
        render_templates(&task, dir.path(), &env).unwrap();

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
        let error = render_templates(&task, dir.path(), &BTreeMap::new()).unwrap_err();
        assert!(error.starts_with("template local/x.conf: cannot read source"), "{error}");
        task.templates = vec![template(TemplateSource::Data("not env".to_owned()), "local/x.env", true)];
        let error = render_templates(&task, dir.path(), &BTreeMap::new()).unwrap_err();
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
        prepare_task_files(&task, task_dir.path(), &BTreeMap::new()).await.unwrap();
        let local = task_dir.path().join("local");
        assert_eq!(std::fs::read(local.join("bin/tool")).unwrap(), b"hello");
        assert_eq!(std::fs::read(local.join("docs/doc.txt")).unwrap(), b"docs");
        assert_eq!(std::fs::read(local.join("kept.tar.gz")).unwrap(), std::fs::read(&tarball).unwrap());

        task.artifacts = vec![artifact(url(&sources.path().join("absent")), "local/", ArtifactMode::Any)];
        let error = prepare_task_files(&task, task_dir.path(), &BTreeMap::new()).await.unwrap_err();
        assert!(error.starts_with("artifact file://") && error.contains("cannot read"), "{error}");
    }

    #[test]
    fn archives_are_recognised_by_name() {
        assert_eq!(file_name_of("https://host/a/tool-1.2.tar.gz?x=1"), "tool-1.2.tar.gz");
        assert!(matches!(archive_of("tool.tgz"), Some(Archive::TarGz)));
        assert!(matches!(archive_of("tool.zip"), Some(Archive::Zip)));
        assert!(archive_of("tool.sh").is_none());
    }
}
