//! The environment and interpolated command line of a task.
//!
//! Tasks get Nomad's variables (`NOMAD_ALLOC_ID`, `NOMAD_TASK_DIR`,
//! `NOMAD_META_*`, the ports of the group's `network` block as
//! `NOMAD_PORT_<label>`, `NOMAD_IP_<label>`, `NOMAD_ADDR_<label>`, …) so
//! that ported job files keep working, drover's own
//! (`DROVER_NODE_NAME`, `DROVER_HOSTGROUP`, …), a sane `PATH`, and the
//! task's `env` block. `${…}` references in `env`, `command` and `args` are
//! resolved against the node (`node.*`, `attr.*`, `meta.*`) and the
//! variables above; unknown references stay as written.
//!
//! Script health checks run "in the task's environment", so the same
//! [`TaskEnvironment`] also interpolates their command lines (see
//! `probe.rs`): a check sees exactly what its task sees.

use std::collections::BTreeMap;
use std::path::Path;

use drover_proto::session::JobSummary;
use drover_types::interpolate::interpolate_lenient;
use drover_types::{Allocation, Node, Task, TaskGroup};

/// The default `PATH` of tasks when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where an allocation's directories are.
pub(crate) struct AllocDirs<'a> {
    /// Shared by the group's tasks (`NOMAD_ALLOC_DIR`).
    pub(crate) alloc_dir: &'a Path,
    /// The task's own directory (`NOMAD_TASK_DIR`, working directory).
    pub(crate) task_dir: &'a Path,
}

/// The interpolated command, arguments and environment of a task.
pub(crate) struct TaskCommandLine {
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
}

/// The environment of a task's processes, and the `${…}` resolver that
/// goes with it.
pub(crate) struct TaskEnvironment<'a> {
    /// The variables set by the agent, before the task's `env` block: what
    /// `${…}` references may name.
    base: BTreeMap<String, String>,
    /// `base` plus the task's interpolated `env` block.
    env: BTreeMap<String, String>,
    node: Option<&'a Node>,
}

impl<'a> TaskEnvironment<'a> {
    pub(crate) fn new(
        node: Option<&'a Node>,
        job: &JobSummary,
        group: &TaskGroup,
        alloc: &Allocation,
        task: &Task,
        dirs: &AllocDirs<'_>,
    ) -> Self {
        let base = base_environment(node, job, group, alloc, task, dirs);
        let mut environment = TaskEnvironment { env: base.clone(), base, node };
        let task_env: Vec<(String, String)> =
            task.env.iter().map(|(key, value)| (key.clone(), environment.interpolate(value))).collect();
        environment.env.extend(task_env);
        environment
    }

    /// `text` with every known `${…}` reference resolved; unknown ones stay
    /// as written.
    pub(crate) fn interpolate(&self, text: &str) -> String {
        let resolve = |target: &str| -> Option<String> {
            if let Some(value) = self.base.get(target) {
                return Some(value.clone());
            }
            if let Some(name) = target.strip_prefix("env.") {
                return self.base.get(name).cloned();
            }
            self.node.and_then(|node| node.resolve(target))
        };
        interpolate_lenient(text, &resolve)
    }

    /// The full environment of the task's processes.
    pub(crate) fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}

pub(crate) fn task_command_line(
    node: Option<&Node>,
    job: &JobSummary,
    group: &TaskGroup,
    alloc: &Allocation,
    task: &Task,
    dirs: &AllocDirs<'_>,
) -> TaskCommandLine {
    let environment = TaskEnvironment::new(node, job, group, alloc, task, dirs);
    TaskCommandLine {
        command: environment.interpolate(&task.config.command),
        args: task.config.args.iter().map(|arg| environment.interpolate(arg)).collect(),
        env: environment.env,
    }
}

fn base_environment(
    node: Option<&Node>,
    job: &JobSummary,
    group: &TaskGroup,
    alloc: &Allocation,
    task: &Task,
    dirs: &AllocDirs<'_>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()));
    for passthrough in ["LANG", "LC_ALL", "TZ"] {
        if let Ok(value) = std::env::var(passthrough) {
            env.insert(passthrough.to_owned(), value);
        }
    }
    let mut set = |key: &str, value: String| {
        env.insert(key.to_owned(), value);
    };
    set("NOMAD_ALLOC_ID", alloc.id.to_string());
    set("NOMAD_SHORT_ALLOC_ID", alloc.id.short().to_owned());
    set("NOMAD_ALLOC_NAME", alloc.name.clone());
    set("NOMAD_ALLOC_INDEX", alloc.index.to_string());
    set("NOMAD_JOB_ID", job.id.to_string());
    set("NOMAD_JOB_NAME", job.name.clone());
    set("NOMAD_GROUP_NAME", group.name.clone());
    set("NOMAD_TASK_NAME", task.name.clone());
    set("NOMAD_ALLOC_DIR", dirs.alloc_dir.display().to_string());
    set("NOMAD_TASK_DIR", dirs.task_dir.display().to_string());
    set("NOMAD_CPU_LIMIT", task.resources.cpu_mhz.to_string());
    set("NOMAD_MEMORY_LIMIT", task.resources.memory_mb.to_string());
    set("NOMAD_NAMESPACE", "default".to_owned());
    set("NOMAD_REGION", "global".to_owned());
    if let Some(node) = node {
        set("NOMAD_DC", node.zone.clone());
        set("DROVER_NODE_ID", node.id.to_string());
        set("DROVER_NODE_NAME", node.name.clone());
        set("DROVER_HOSTGROUP", node.hostgroup.clone());
        set("DROVER_ENVIRONMENT", node.environment.clone());
    }
    for meta in [&job.meta, &group.meta, &task.meta] {
        for (key, value) in meta {
            set(&format!("NOMAD_META_{}", key.to_uppercase().replace(['-', '.'], "_")), value.clone());
            // Nomad sets the key as written too (`${NOMAD_META_commit}`).
            set(&format!("NOMAD_META_{}", key.replace(['-', '.'], "_")), value.clone());
        }
    }
    for (key, value) in port_variables(alloc) {
        set(&key, value);
    }
    env
}

/// Nomad's variables of the allocation's ports, per label: the port
/// (`NOMAD_PORT_`, `NOMAD_HOST_PORT_`, `NOMAD_ALLOC_PORT_`: one number, as
/// tasks listen on the node's port itself), the address it is announced on
/// (`NOMAD_IP_`, `NOMAD_HOST_IP_`) and both together (`NOMAD_ADDR_`,
/// `NOMAD_HOST_ADDR_`). A label with `-` is also given with `_`, which a
/// shell and a `${…}` reference can name.
fn port_variables(alloc: &Allocation) -> Vec<(String, String)> {
    let mut variables = Vec::new();
    for port in &alloc.ports {
        let value = port.value.to_string();
        let address = if port.host_ip.contains(':') {
            format!("[{}]:{value}", port.host_ip)
        } else {
            format!("{}:{value}", port.host_ip)
        };
        let mut labels = vec![port.label.clone()];
        if port.label.contains('-') {
            labels.push(port.label.replace('-', "_"));
        }
        for label in labels {
            for prefix in ["NOMAD_PORT_", "NOMAD_HOST_PORT_", "NOMAD_ALLOC_PORT_"] {
                variables.push((format!("{prefix}{label}"), value.clone()));
            }
            for prefix in ["NOMAD_IP_", "NOMAD_HOST_IP_"] {
                variables.push((format!("{prefix}{label}"), port.host_ip.clone()));
            }
            for prefix in ["NOMAD_ADDR_", "NOMAD_HOST_ADDR_"] {
                variables.push((format!("{prefix}{label}"), address.clone()));
            }
        }
    }
    variables
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use drover_types::AllocatedPort;

    use super::*;
    use crate::test_support;

    fn with_ports(ports: &[(&str, u16)]) -> Allocation {
        let mut alloc = test_support::allocation("alloc-ports");
        alloc.ports = ports
            .iter()
            .map(|(label, value)| AllocatedPort {
                label: (*label).to_owned(),
                value: *value,
                host_ip: "10.0.0.7".to_owned(),
            })
            .collect();
        alloc
    }

    #[test]
    fn every_port_label_gets_nomads_variables_and_interpolates_in_the_command_line() {
        let alloc = with_ports(&[("http", 23_456), ("node-exporter", 9100)]);
        let mut task = test_support::task("web", "python3", &["-m", "http.server", "${NOMAD_PORT_http}"]);
        task.env.insert("LISTEN".into(), "${NOMAD_ADDR_http}".into());
        let group = test_support::group(vec![task.clone()]);
        let (alloc_dir, task_dir) = (PathBuf::from("/alloc"), PathBuf::from("/alloc/web"));
        let dirs = AllocDirs { alloc_dir: &alloc_dir, task_dir: &task_dir };
        let line = task_command_line(None, &test_support::job(), &group, &alloc, &task, &dirs);

        assert_eq!(line.args, vec!["-m", "http.server", "23456"]);
        assert_eq!(line.env["LISTEN"], "10.0.0.7:23456");
        for (key, value) in [
            ("NOMAD_PORT_http", "23456"),
            ("NOMAD_HOST_PORT_http", "23456"),
            ("NOMAD_ALLOC_PORT_http", "23456"),
            ("NOMAD_IP_http", "10.0.0.7"),
            ("NOMAD_HOST_IP_http", "10.0.0.7"),
            ("NOMAD_ADDR_http", "10.0.0.7:23456"),
            ("NOMAD_HOST_ADDR_http", "10.0.0.7:23456"),
            ("NOMAD_PORT_node-exporter", "9100"),
            ("NOMAD_PORT_node_exporter", "9100"),
        ] {
            assert_eq!(line.env.get(key).map(String::as_str), Some(value), "{key}");
        }
    }

    #[test]
    fn unknown_references_stay_as_written_for_the_shell_to_expand() {
        // Nomad's job reader keeps `${SLEEP_SECS}` as text, and its task
        // environment leaves names it does not know alone: the shell the
        // task runs expands them.
        let alloc = with_ports(&[("http", 23_456)]);
        let task =
            test_support::task("t", "sh", &["-c", "sleep ${SLEEP_SECS}; echo ${VAULT_TOKEN} ${NOMAD_PORT_http}"]);
        let group = test_support::group(vec![task.clone()]);
        let (alloc_dir, task_dir) = (PathBuf::from("/alloc"), PathBuf::from("/alloc/t"));
        let dirs = AllocDirs { alloc_dir: &alloc_dir, task_dir: &task_dir };
        let line = task_command_line(None, &test_support::job(), &group, &alloc, &task, &dirs);
        assert_eq!(line.args, vec!["-c", "sleep ${SLEEP_SECS}; echo ${VAULT_TOKEN} 23456"]);
    }

    #[test]
    fn an_allocation_without_ports_has_no_port_variables() {
        let alloc = test_support::allocation("alloc-plain");
        assert!(port_variables(&alloc).is_empty());
    }
}

/// A real task listening on the port its allocation holds.
#[cfg(test)]
mod process_tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use drover_executor::{DriverConfig, ExecDriver, Isolation};
    use drover_types::AllocatedPort;
    use tokio::sync::mpsc;

    use crate::manager::AllocManager;
    use crate::test_support;

    const WAIT: Duration = Duration::from_secs(60);

    /// An HTTP GET of `/` on 127.0.0.1:`port`, once it answers.
    fn get_root(port: u16) -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_raw_exec_task_listens_on_nomad_port_http_and_is_reachable_there() {
        let Some(helper) = test_support::executor_helper() else { return };
        let root = tempfile::tempdir().unwrap();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut alloc = test_support::allocation("alloc-listens");
        alloc.ports = vec![AllocatedPort { label: "http".to_owned(), value: port, host_ip: "127.0.0.1".to_owned() }];
        // The port comes from the environment and from `${…}` in the
        // arguments; the page served says which address the task was given.
        let task = test_support::task(
            "web",
            "sh",
            &[
                "-c",
                "echo \"served at $NOMAD_ADDR_http\" > index.html && exec python3 -m http.server \"$NOMAD_PORT_http\" --bind ${NOMAD_IP_http}",
            ],
        );
        let assignment = test_support::assignment(alloc, test_support::group(vec![task]), None);
        let mut config = DriverConfig::new(&helper, ["executor"]);
        config.start_timeout = Duration::from_secs(30);
        let (sender, _updates) = mpsc::unbounded_channel();
        let manager = AllocManager::new(root.path().to_owned(), ExecDriver::new(config, Isolation::detect()), sender);
        manager.reconcile(None, vec![assignment], true).await;

        let deadline = tokio::time::Instant::now() + WAIT;
        let response = loop {
            if let Some(response) = tokio::task::spawn_blocking(move || get_root(port)).await.unwrap()
                && response.contains("served at")
            {
                break response;
            }
            assert!(tokio::time::Instant::now() < deadline, "nothing answered on port {port} within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        manager.stop_all().await;
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
        assert!(response.contains(&format!("served at 127.0.0.1:{port}")), "{response}");
    }
}
