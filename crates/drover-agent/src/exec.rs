//! `drover exec` on the agent: one command line run by `/bin/sh -c` through
//! the bounded runner (`drover_collect::process`): in its own process group,
//! killed as a group at its deadline or when the server cancels it, with
//! stdout and stderr kept up to a cap each.

use std::time::Duration;

use drover_collect::Error as RunError;
use drover_collect::process::{BoundedCommand, Finished};
use tokio_util::sync::CancellationToken;

use drover_proto::session::ResponseBody;

/// How long output pipes may stay open after the command exited (a
/// background child holding them) before the group is killed.
const LINGER: Duration = Duration::from_secs(2);

/// One command to run.
#[derive(Clone, Debug)]
pub(crate) struct ExecRequest {
    pub(crate) command: String,
    /// The user asked for, else the agent's exec user, else the agent's own.
    pub(crate) user: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_output_bytes: usize,
    /// Whether it may run as uid 0.
    pub(crate) root_allowed: bool,
    /// Written to the command's stdin, then closed; empty: no stdin.
    pub(crate) stdin: Vec<u8>,
}

/// How this agent runs `drover exec` commands.
#[derive(Clone, Debug)]
pub(crate) struct ExecPolicy {
    /// Off: every command is refused (`--disable-exec`).
    pub(crate) allowed: bool,
    /// The user commands run as when the request names none (`--exec-user`).
    pub(crate) default_user: Option<String>,
}

/// Runs the command and returns the answer for the server. Never fails:
/// every problem becomes the answer's `error`.
pub(crate) async fn run(request: ExecRequest, cancel: CancellationToken) -> ResponseBody {
    let mut command = BoundedCommand::new("/bin/sh", request.timeout, request.max_output_bytes);
    command.arg("-c").arg(&request.command).linger(LINGER);
    if !request.stdin.is_empty() {
        command.stdin_bytes(request.stdin.clone());
    }
    let as_root = match &request.user {
        Some(name) => matches!(nix::unistd::User::from_name(name), Ok(Some(user)) if user.uid.is_root()),
        None => nix::unistd::geteuid().is_root(),
    };
    if as_root && !request.root_allowed {
        return failed(format!(
            "running commands as root ({}) on this node needs the exec-as-root capability; run as another user (-u USER)",
            request.user.as_deref().unwrap_or("the agent's own user")
        ));
    }
    if let Some(name) = &request.user {
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => {
                command
                    .user(user.uid.as_raw(), user.gid.as_raw())
                    .env("USER", &user.name)
                    .env("LOGNAME", &user.name)
                    .env("HOME", &user.dir);
                if user.dir.is_dir() {
                    command.current_dir(&user.dir);
                }
            }
            Ok(None) => return failed(format!("there is no user {name:?} on this node")),
            Err(error) => return failed(format!("cannot look up user {name:?}: {error}")),
        }
    }
    let finished = match command.run_until_cancelled(&cancel).await {
        Ok(finished) => finished,
        Err(RunError::Spawn { source, .. }) => return failed(format!("cannot start /bin/sh: {source}")),
        Err(error) => return failed(error.to_string()),
    };
    exited(finished, request.timeout)
}

/// The answer for a command that could not run: `error` says why.
pub(crate) fn failed(error: String) -> ResponseBody {
    ResponseBody::Exited {
        exit_code: None,
        error,
        timed_out: false,
        stdout: Vec::new(),
        stderr: Vec::new(),
        truncated: false,
    }
}

/// The answer for a command that ran (or was stopped) with `timeout`.
pub(crate) fn exited(finished: Finished, timeout: Duration) -> ResponseBody {
    let error = if finished.cancelled {
        "cancelled".to_owned()
    } else if finished.timed_out {
        format!("no exit within {}", drover_types::DurationSpec(timeout))
    } else if let Some(signal) = finished.signal() {
        format!("killed by signal {signal}")
    } else {
        String::new()
    };
    // Killed by us: no exit code of its own.
    let exit_code = if finished.timed_out || finished.cancelled { None } else { finished.exit_code() };
    let truncated = finished.truncated();
    ResponseBody::Exited {
        exit_code,
        error,
        timed_out: finished.timed_out,
        stdout: finished.stdout.bytes,
        stderr: finished.stderr.bytes,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(command: &str, timeout: Duration) -> ExecRequest {
        ExecRequest {
            command: command.to_owned(),
            user: None,
            timeout,
            max_output_bytes: 1024,
            root_allowed: true,
            stdin: Vec::new(),
        }
    }

    fn exited(body: ResponseBody) -> (Option<i32>, String, bool, String, String, bool) {
        let ResponseBody::Exited { exit_code, error, timed_out, stdout, stderr, truncated } = body else {
            panic!("not an exit: {body:?}")
        };
        (exit_code, error, timed_out, String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap(), truncated)
    }

    #[tokio::test]
    async fn a_command_reports_its_exit_code_and_both_streams() {
        let body = run(request("echo out; echo err >&2; exit 3", Duration::from_secs(5)), CancellationToken::new());
        let (code, error, timed_out, stdout, stderr, truncated) = exited(body.await);
        assert_eq!((code, error.as_str(), timed_out, truncated), (Some(3), "", false, false));
        assert_eq!((stdout.as_str(), stderr.as_str()), ("out\n", "err\n"));
    }

    #[tokio::test]
    async fn output_beyond_the_cap_is_dropped_and_said() {
        let body = run(request("yes | head -c 100000", Duration::from_secs(5)), CancellationToken::new()).await;
        let (code, _, _, stdout, _, truncated) = exited(body);
        assert_eq!(code, Some(0));
        assert_eq!(stdout.len(), 1024);
        assert!(truncated);
    }

    #[tokio::test]
    async fn the_deadline_kills_the_whole_group_and_keeps_what_was_printed() {
        let started = std::time::Instant::now();
        let body =
            run(request("echo started; sleep 30 & sleep 30", Duration::from_millis(300)), CancellationToken::new());
        let (code, error, timed_out, stdout, _, _) = exited(body.await);
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert_eq!((code, timed_out, stdout.as_str()), (None, true, "started\n"));
        assert!(error.contains("no exit within"), "{error}");
    }

    #[tokio::test]
    async fn stdin_bytes_reach_the_command_and_a_command_ignoring_them_still_ends() {
        let mut piped = request("cat; echo done", Duration::from_secs(5));
        piped.stdin = b"line one\nline two\n".to_vec();
        let (code, error, _, stdout, ..) = exited(run(piped, CancellationToken::new()).await);
        assert_eq!((code, error.as_str(), stdout.as_str()), (Some(0), "", "line one\nline two\ndone\n"));
        // More than a pipe holds, never read: the command's exit ends it.
        let started = std::time::Instant::now();
        let mut ignored = request("echo ignored", Duration::from_secs(10));
        ignored.stdin = vec![b'x'; 1024 * 1024];
        let (code, error, timed_out, stdout, ..) = exited(run(ignored, CancellationToken::new()).await);
        assert_eq!((code, error.as_str(), timed_out, stdout.as_str()), (Some(0), "", false, "ignored\n"));
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn an_unknown_user_is_refused() {
        let mut request = request("true", Duration::from_secs(5));
        request.user = Some("no-such-user-here".to_owned());
        let (code, error, ..) = exited(run(request, CancellationToken::new()).await);
        assert_eq!(code, None);
        assert!(error.contains("no user \"no-such-user-here\""), "{error}");
    }

    #[tokio::test]
    async fn root_is_refused_by_uid_without_exec_as_root() {
        // Any account with uid 0 counts, whatever its name: look one up.
        let Ok(Some(root)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0)) else {
            panic!("this machine has no uid 0 account")
        };
        let mut request = request("id -u", Duration::from_secs(5));
        request.root_allowed = false;
        request.user = Some(root.name.clone());
        let (code, error, ..) = exited(run(request.clone(), CancellationToken::new()).await);
        assert_eq!(code, None);
        assert!(error.contains("exec-as-root"), "{error}");
        if nix::unistd::geteuid().is_root() {
            // No user named: the agent's own, root here.
            request.user = None;
            let (_, error, ..) = exited(run(request.clone(), CancellationToken::new()).await);
            assert!(error.contains("exec-as-root"), "{error}");
            // Another user is fine.
            request.user = Some("nobody".to_owned());
            let (code, error, _, stdout, ..) = exited(run(request, CancellationToken::new()).await);
            assert_eq!((code, error.as_str(), stdout.trim()), (Some(0), "", "65534"));
        }
    }
}
