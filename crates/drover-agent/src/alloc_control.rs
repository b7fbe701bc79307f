//! An operator's hands on a running allocation (`drover alloc restart`,
//! `signal` and `exec`): which tasks a request reaches, and a command run
//! in a task's environment.
//!
//! ```text
//!  server ── RestartTasks|SignalTasks ─▶ session ─▶ manager ─▶ alloc runner ─▶ task runners
//!         ◀── TasksReached | End{error} ──────────────────────────┘
//!  server ── ExecInTask ─▶ session ─▶ alloc runner: the task's env, dir, user
//!         ◀── Exited ───── session runs the command (bounded, own group)
//! ```
//!
//! The choice of tasks is pure ([`choose_tasks`]); the runner owns the task
//! states it is made from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use drover_collect::Error as RunError;
use drover_collect::process::BoundedCommand;
use drover_types::{CodedError, ErrorCode};
use tokio_util::sync::CancellationToken;

use drover_proto::session::{RequestBody, ResponseBody};
use drover_types::AllocId;
use tokio::sync::oneshot;

use crate::alloc_runner::OperatorRequest;
use crate::exec::{ExecPolicy, exited, failed};
use crate::manager::AllocManager;

/// How long output pipes may stay open after the command exited.
const LINGER: Duration = Duration::from_secs(2);

/// `PATH` of a command whose task environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One task as the choice sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskCondition {
    pub(crate) name: String,
    /// It runs now (launched, running, not finished).
    pub(crate) running: bool,
    /// Its state's name, for messages (`pending`, `dead`).
    pub(crate) state: String,
}

/// The tasks a restart or signal of allocation `alloc` reaches: `requested`
/// alone (which must exist and run), or every running task (at least one).
pub(crate) fn choose_tasks(
    alloc: &str,
    tasks: &[TaskCondition],
    requested: Option<&str>,
) -> Result<Vec<String>, CodedError> {
    match requested {
        Some(name) => {
            let Some(task) = tasks.iter().find(|task| task.name == name) else {
                let known: Vec<&str> = tasks.iter().map(|task| task.name.as_str()).collect();
                return Err(CodedError::not_found("task", format!("{alloc}/{name}"))
                    .with_hint(format!("allocation {alloc} has the tasks {}", known.join(", "))));
            };
            if !task.running {
                return Err(CodedError::conflict(format!(
                    "task {name:?} of allocation {alloc} is not running (it is {}); \
                     see `drover alloc status {alloc}`",
                    task.state
                )));
            }
            Ok(vec![name.to_owned()])
        }
        None => {
            let running: Vec<String> = tasks.iter().filter(|task| task.running).map(|task| task.name.clone()).collect();
            if running.is_empty() {
                return Err(CodedError::conflict(format!(
                    "no task of allocation {alloc} is running; see `drover alloc status {alloc}`"
                )));
            }
            Ok(running)
        }
    }
}

/// Where and as whom a command runs in a task: what the task itself gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskExecSpec {
    /// The task's complete environment (its `env` block, Nomad's and
    /// drover's variables, `env = true` templates).
    pub(crate) env: BTreeMap<String, String>,
    /// The task's working directory (`local/` in its directory).
    pub(crate) working_dir: PathBuf,
    /// The task's user; `None`: the agent's own, as the task.
    pub(crate) user: Option<String>,
}

/// A task where it runs: what its processes' environment is made from.
pub(crate) struct TaskPlace<'a> {
    pub(crate) node: Option<&'a drover_types::Node>,
    pub(crate) job: &'a drover_proto::session::JobSummary,
    pub(crate) group: &'a drover_types::TaskGroup,
    pub(crate) alloc: &'a drover_types::Allocation,
    pub(crate) task: &'a drover_types::Task,
    /// The allocation's shared directory.
    pub(crate) alloc_dir: &'a std::path::Path,
    /// The task's directory.
    pub(crate) task_dir: &'a std::path::Path,
}

impl TaskPlace<'_> {
    /// The environment, directory and user of the task's processes, as
    /// `task::spawn` builds them (with `env = true` templates), and a
    /// resolver of `${…}` in that environment.
    pub(crate) fn exec_spec(&self) -> Result<(TaskExecSpec, crate::env::TaskEnvironment<'_>), String> {
        let working_dir = self.task_dir.join("local");
        let dirs = crate::env::AllocDirs { alloc_dir: self.alloc_dir, task_dir: &working_dir };
        let mut with_templates = self.task.clone();
        with_templates.env.extend(crate::prepare::template_env(self.task, self.task_dir)?);
        let environment =
            crate::env::TaskEnvironment::new(self.node, self.job, self.group, self.alloc, &with_templates, &dirs);
        let spec = TaskExecSpec { env: environment.env().clone(), working_dir, user: self.task.user.clone() };
        Ok((spec, environment))
    }
}

/// One command to run in a task.
#[derive(Clone, Debug)]
pub(crate) struct TaskExecRequest {
    pub(crate) command: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_output_bytes: usize,
    pub(crate) root_allowed: bool,
    pub(crate) stdin: Vec<u8>,
}

/// Runs `request` as `spec` says. Never fails: every problem becomes the
/// answer's `error`.
pub(crate) async fn run_in_task(
    spec: TaskExecSpec,
    request: TaskExecRequest,
    cancel: CancellationToken,
) -> ResponseBody {
    let Some((program, args)) = request.command.split_first() else {
        return failed("no command given: drover alloc exec ALLOC -- COMMAND ARGS…".to_owned());
    };
    let user = match &spec.user {
        Some(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Some(user),
            Ok(None) => return failed(format!("the task's user {name:?} does not exist on this node")),
            Err(error) => return failed(format!("cannot look up the task's user {name:?}: {error}")),
        },
        None => None,
    };
    let as_root = user.as_ref().map_or_else(|| nix::unistd::geteuid().is_root(), |user| user.uid.is_root());
    if as_root && !request.root_allowed {
        return failed(
            "this task runs as root: running a command in it needs the exec-as-root capability on the node".to_owned(),
        );
    }
    let mut command = BoundedCommand::new(program, request.timeout, request.max_output_bytes);
    command.args(args).linger(LINGER).env_clear().envs(&spec.env).current_dir(&spec.working_dir);
    if !spec.env.contains_key("PATH") {
        command.env("PATH", DEFAULT_PATH);
    }
    if let Some(user) = &user {
        command.user(user.uid.as_raw(), user.gid.as_raw());
    }
    if !request.stdin.is_empty() {
        command.stdin_bytes(request.stdin.clone());
    }
    let finished = match command.run_until_cancelled(&cancel).await {
        Ok(finished) => finished,
        Err(RunError::Spawn { source, .. }) => {
            return failed(format!("cannot start {program:?} in the task: {source}"));
        }
        Err(error) => return failed(error.to_string()),
    };
    exited(finished, request.timeout)
}

/// Answers one of the session's operator requests (`RestartTasks`,
/// `SignalTasks`, `ExecInTask`) through the allocation's runner.
pub(crate) async fn serve(
    body: RequestBody,
    manager: &AllocManager,
    policy: &ExecPolicy,
    cancel: CancellationToken,
) -> ResponseBody {
    let reached =
        |outcome: Result<Result<Vec<String>, CodedError>, oneshot::error::RecvError>, alloc: &AllocId| match outcome {
            Ok(Ok(tasks)) => ResponseBody::TasksReached { tasks },
            Ok(Err(error)) => ResponseBody::End { error: Some(error) },
            Err(_) => ResponseBody::End { error: Some(not_on_this_node(alloc.short())) },
        };
    match body {
        RequestBody::RestartTasks { alloc_id, task } => {
            let (reply, answer) = oneshot::channel();
            manager.ask_runner(&alloc_id, OperatorRequest::Restart { task, reply }).await;
            reached(answer.await, &alloc_id)
        }
        RequestBody::SignalTasks { alloc_id, task, signal } => {
            let signal = match drover_executor::parse_signal(&signal) {
                Ok(signal) => signal,
                Err(error) => return ResponseBody::End { error: Some(CodedError::invalid(error.to_string())) },
            };
            let (reply, answer) = oneshot::channel();
            manager.ask_runner(&alloc_id, OperatorRequest::Signal { task, signal, reply }).await;
            reached(answer.await, &alloc_id)
        }
        RequestBody::ExecInTask { alloc_id, task, command, timeout_ms, max_output_bytes, root_allowed, stdin } => {
            if !policy.allowed {
                return failed("exec is disabled on this node's agent (started with --disable-exec)".to_owned());
            }
            let (reply, answer) = oneshot::channel();
            manager.ask_runner(&alloc_id, OperatorRequest::ExecSpec { task, reply }).await;
            let spec = match answer.await {
                Ok(Ok(spec)) => spec,
                Ok(Err(error)) => return ResponseBody::End { error: Some(error) },
                Err(_) => return ResponseBody::End { error: Some(not_on_this_node(alloc_id.short())) },
            };
            let request = TaskExecRequest {
                command,
                timeout: Duration::from_millis(timeout_ms),
                max_output_bytes: usize::try_from(max_output_bytes).unwrap_or(usize::MAX),
                root_allowed,
                stdin,
            };
            run_in_task(spec, request, cancel).await
        }
        other => ResponseBody::End { error: Some(CodedError::internal(format!("not an operator request: {other:?}"))) },
    }
}

/// The error of a request for an allocation this agent does not run.
pub(crate) fn not_on_this_node(alloc: &str) -> CodedError {
    CodedError::new(
        ErrorCode::Conflict,
        format!("allocation {alloc} does not run on this node (any more); see `drover alloc status {alloc}`"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn task(name: &str, running: bool) -> TaskCondition {
        TaskCondition { name: name.to_owned(), running, state: if running { "running" } else { "dead" }.to_owned() }
    }

    #[test]
    fn without_a_task_every_running_task_is_reached() {
        let tasks = [task("web", true), task("init", false), task("sidecar", true)];
        assert_eq!(choose_tasks("a1", &tasks, None).unwrap(), vec!["web", "sidecar"]);
    }

    #[test]
    fn a_named_task_must_exist_and_run() {
        let tasks = [task("web", true), task("init", false)];
        assert_eq!(choose_tasks("a1", &tasks, Some("web")).unwrap(), vec!["web"]);
        let unknown = choose_tasks("a1", &tasks, Some("db")).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::NotFound);
        assert!(unknown.to_string().contains("web, init"), "{unknown}");
        let stopped = choose_tasks("a1", &tasks, Some("init")).unwrap_err();
        assert_eq!(stopped.code, ErrorCode::Conflict);
        assert!(stopped.message.contains("not running (it is dead)"), "{}", stopped.message);
    }

    #[test]
    fn nothing_running_is_refused() {
        let refused = choose_tasks("a1", &[task("web", false)], None).unwrap_err();
        assert!(refused.message.contains("no task of allocation a1 is running"), "{}", refused.message);
    }

    #[tokio::test]
    async fn a_command_sees_the_task_env_and_directory_and_returns_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TaskExecSpec {
            env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            working_dir: dir.path().to_owned(),
            user: None,
        };
        let request = TaskExecRequest {
            command: vec!["/bin/sh".into(), "-c".into(), "echo $GREETING; pwd; exit 7".into()],
            timeout: Duration::from_secs(10),
            max_output_bytes: 4096,
            root_allowed: true,
            stdin: Vec::new(),
        };
        let ResponseBody::Exited { exit_code, stdout, .. } = run_in_task(spec, request, CancellationToken::new()).await
        else {
            panic!("not an exit")
        };
        assert_eq!(exit_code, Some(7));
        let expected = format!("hello\n{}\n", dir.path().canonicalize().unwrap().display());
        assert_eq!(String::from_utf8_lossy(&stdout), expected);
    }
}
