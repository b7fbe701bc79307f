//! Files the agent puts into a task's directory before the task starts:
//! Nomad's `template` blocks (rendered from text or a file on the node)
//! and `artifact` blocks (downloaded, checked, unpacked).
//!
//! Paths are relative to the task's directory (`local/app.conf` is in the
//! task's `local` directory); the job file reader refuses absolute paths
//! and paths that leave the directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::DurationSpec;

/// Nomad's `template` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTemplate {
    /// Where the template's text comes from.
    pub source: TemplateSource,
    /// Where the rendered file goes, relative to the task directory.
    pub destination: String,
    /// What happens when the rendered file changes (Nomad's
    /// `change_mode`).
    pub change_mode: ChangeMode,
    /// The signal of `change_mode = "signal"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_signal: Option<String>,
    /// The command of `change_mode = "script"` (Nomad's `change_script`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_script: Option<ChangeScript>,
    /// The file's permission bits (Nomad's `perms`, default `0644`).
    pub perms: u32,
    /// Whether the rendered file's `KEY=value` lines become environment
    /// variables of the task.
    pub env: bool,
    /// Opens an action, `{{` by default.
    pub left_delimiter: String,
    /// Closes an action, `}}` by default.
    pub right_delimiter: String,
    /// The most time a change waits before it is applied, chosen at random
    /// per allocation (Nomad's `splay`, default 5s).
    pub splay: DurationSpec,
    /// Nomad's `wait { min max }`: after the data a template reads
    /// changes, render again only once it has been quiet for `min`, and
    /// at the latest `max` after the first change (a burst of changes is
    /// one render). `None`: render at each change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<TemplateWait>,
}

/// Nomad's template `change_script` block: a command run in the task (its
/// environment, directory and user, as `drover alloc exec` runs one) after
/// the template was rendered again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeScript {
    /// The program (a path in the task's environment, or on `PATH`).
    pub command: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// How long it may run before it is killed (default 5s).
    pub timeout: DurationSpec,
    /// Whether a failing script (an exit code other than 0, a timeout)
    /// kills the task as failed; else the failure is only an event.
    pub fail_on_error: bool,
}

/// Nomad's template `wait` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateWait {
    /// Quiet time before a render.
    pub min: DurationSpec,
    /// The longest a render waits after the first change.
    pub max: DurationSpec,
}

/// The text of a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSource {
    /// Given in the job file (Nomad's `data`).
    Data(String),
    /// A file on the node, relative paths from the task directory (Nomad's
    /// `source`), read when the task starts.
    File(String),
}

/// Why `path` is not a path inside the task directory, where a template
/// or an artifact may be read from or written to: it must be relative,
/// not empty, and may leave the task directory only for the allocation's
/// shared directory (`../alloc/…`, Nomad's `${NOMAD_ALLOC_DIR}`). The agent
/// runs as root, so this sandbox is what keeps a job from reading or
/// writing the node's own files (Nomad's template sandbox does the same).
pub fn task_path_problem(path: &str) -> Option<&'static str> {
    use std::path::{Component, Path};
    if path.trim().is_empty() {
        return Some("is empty");
    }
    if Path::new(path).is_absolute() {
        return Some("is absolute");
    }
    let rest = path.strip_prefix("../alloc/").unwrap_or(path);
    if Path::new(rest).components().any(|component| matches!(component, Component::ParentDir)) {
        return Some("leaves the task directory");
    }
    None
}

/// Nomad's `change_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeMode {
    /// Restart the task.
    Restart,
    /// Send `change_signal`.
    Signal,
    /// Do nothing.
    Noop,
    /// Run `change_script` in the task.
    Script,
}

impl ChangeMode {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeMode::Restart => "restart",
            ChangeMode::Signal => "signal",
            ChangeMode::Noop => "noop",
            ChangeMode::Script => "script",
        }
    }
}

/// Nomad's `artifact` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskArtifact {
    /// An `http://`, `https://` or `file://` URL.
    pub source: String,
    /// Where it goes, relative to the task directory (Nomad's default
    /// `local/`).
    pub destination: String,
    /// Whether `destination` is a directory or the file itself.
    pub mode: ArtifactMode,
    /// The expected digest of the downloaded file, e.g. `sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Whether to unpack a `.tar.gz`, `.tgz`, `.tar` or `.zip` download
    /// (Nomad's `options { archive = false }` turns it off).
    pub unpack: bool,
    /// HTTP headers sent with the request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Nomad's artifact `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactMode {
    /// A file: `destination` is its path, or the directory it goes into
    /// when the path ends in `/`; archives are unpacked into the
    /// directory.
    Any,
    /// `destination` is the file itself; never unpacked.
    File,
    /// `destination` is a directory the archive is unpacked into.
    Dir,
}

impl ArtifactMode {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactMode::Any => "any",
            ArtifactMode::File => "file",
            ArtifactMode::Dir => "dir",
        }
    }
}
