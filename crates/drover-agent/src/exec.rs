//! `drover exec` on the agent: one command line run by `/bin/sh -c` in its
//! own process group, killed as a group at its deadline or when the server
//! cancels it, with stdout and stderr kept up to a cap each.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
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
}

/// How this agent runs `drover exec` commands.
#[derive(Clone, Debug)]
pub(crate) struct ExecPolicy {
    /// Off: every command is refused (`--disable-exec`).
    pub(crate) allowed: bool,
    /// The user commands run as when the request names none (`--exec-user`).
    pub(crate) default_user: Option<String>,
}

/// Output kept so far, shared with the reader task.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

type Shared = Arc<Mutex<Captured>>;

/// Runs the command and returns the answer for the server. Never fails:
/// every problem becomes the answer's `error`.
pub(crate) async fn run(request: ExecRequest, cancel: CancellationToken) -> ResponseBody {
    let failed = |error: String| ResponseBody::Exited {
        exit_code: None,
        error,
        timed_out: false,
        stdout: Vec::new(),
        stderr: Vec::new(),
        truncated: false,
    };
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&request.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
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
                    .uid(user.uid.as_raw())
                    .gid(user.gid.as_raw())
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
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("cannot start /bin/sh: {error}")),
    };
    let group = child.id().and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
    let stdout = Shared::default();
    let stderr = Shared::default();
    let readers = [
        child.stdout.take().map(|pipe| tokio::spawn(capture(pipe, Arc::clone(&stdout), request.max_output_bytes))),
        child.stderr.take().map(|pipe| tokio::spawn(capture(pipe, Arc::clone(&stderr), request.max_output_bytes))),
    ];
    let kill_group = || {
        if let Some(group) = group {
            // Gone already is fine.
            let _ = killpg(group, Signal::SIGKILL);
        }
    };

    let deadline = tokio::time::Instant::now() + request.timeout;
    let mut timed_out = false;
    let mut error = String::new();
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        () = tokio::time::sleep_until(deadline) => {
            timed_out = true;
            None
        }
        () = cancel.cancelled() => {
            error = "cancelled".to_owned();
            None
        }
    };
    if status.is_none() {
        kill_group();
        // Reap the shell so it does not linger as a zombie.
        let _ = child.wait().await;
    }
    // The pipes close when every process of the group is gone; a child
    // that went to the background may keep them open.
    let drained = async {
        for reader in readers.into_iter().flatten() {
            let _ = reader.await;
        }
    };
    let linger = if status.is_some() {
        LINGER.min(deadline.saturating_duration_since(tokio::time::Instant::now()))
    } else {
        Duration::from_secs(1)
    };
    if tokio::time::timeout(linger, drained).await.is_err() {
        kill_group();
    }

    let exit_code = status.and_then(|status| status.code());
    if let Some(status) = status
        && let Some(signal) = status.signal()
    {
        error = format!("killed by signal {signal}");
    }
    if timed_out {
        error = format!("no exit within {}", drover_types::DurationSpec(request.timeout));
    }
    let take = |shared: &Shared| {
        let mut captured = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (std::mem::take(&mut captured.bytes), captured.truncated)
    };
    let (stdout, stdout_truncated) = take(&stdout);
    let (stderr, stderr_truncated) = take(&stderr);
    ResponseBody::Exited {
        exit_code,
        error,
        timed_out,
        stdout,
        stderr,
        truncated: stdout_truncated || stderr_truncated,
    }
}

/// Reads a pipe to its end, keeping the first `cap` bytes.
async fn capture(mut pipe: impl AsyncRead + Unpin, shared: Shared, cap: usize) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let mut captured = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = cap.saturating_sub(captured.bytes.len());
        if read > room {
            captured.truncated = true;
        }
        captured.bytes.extend_from_slice(&buffer[..read.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(command: &str, timeout: Duration) -> ExecRequest {
        ExecRequest { command: command.to_owned(), user: None, timeout, max_output_bytes: 1024, root_allowed: true }
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
