//! Running health checks: one run of a `tcp`, `http` or `script` check
//! ([`Probe::run`]), and the [`ProbeSet`] that runs the checks of running
//! tasks every `interval` and reports each result to the alloc runner.
//!
//! This is the thin I/O half of the checks; what the results mean (status,
//! publication, `check_restart`) is decided in `checks.rs`. Every check of
//! every task runs in its own tokio task and every run is bounded by the
//! check's `timeout`, so a slow or hanging check never delays the task
//! runner, the alloc runner or another check. A script check runs in its
//! own process group, which is killed when the timeout passes or when the
//! probe is stopped mid-run (the task stopped or restarted).
//!
//! Checks are probed the way Consul and Nomad probe them: a TCP connect; an
//! HTTP request on a fresh connection (no keep-alive, so a server that no
//! longer accepts connections fails its check) without proxy; a script with
//! the task's environment in the task's `local` directory, as the task's
//! user, where exit 0 is passing, 1 warning and anything else critical.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use drover_collect::Error as RunError;
use drover_collect::process::{BoundedCommand, StderrMode};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use drover_types::{Check, CheckHealth, CheckKind};

use crate::checks::ProbeOutcome;
use crate::env::{AllocDirs, TaskEnvironment};
use crate::task::TaskContext;

/// Longest output kept from a check run.
pub(crate) const MAX_OUTPUT_BYTES: usize = 1024;
/// Longest HTTP body read when looking for the expected text.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Body bytes shown in the output of a failing HTTP check.
const BODY_EXCERPT_BYTES: usize = 512;
/// Shortest interval between two runs of a check: a zero interval from a
/// hand-written spec must not turn into a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long a script's output is still read after it exited (a background
/// child may hold the pipe open; then the script's group is killed).
const OUTPUT_DRAIN_TIME: Duration = Duration::from_millis(200);

/// One check of one task, ready to run: interpolated, with its task's
/// environment for script checks.
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    /// Check name, for logs.
    pub(crate) name: String,
    /// What to do.
    pub(crate) kind: ProbeKind,
    /// Time between the starts of two runs.
    pub(crate) interval: Duration,
    /// Longest run.
    pub(crate) timeout: Duration,
}

/// What a probe does.
#[derive(Clone, Debug)]
pub(crate) enum ProbeKind {
    /// Connect to `address:port`.
    Tcp {
        /// Host name or IP address.
        address: String,
        /// Port.
        port: u16,
    },
    /// Send `method url`.
    Http {
        /// `http://address:port/path`.
        url: String,
        /// Request method.
        method: String,
        /// Required status; any 2xx when `None`.
        expected_status: Option<u16>,
        /// Text the body must contain.
        body: Option<String>,
    },
    /// Run a program.
    Script(ScriptProbe),
}

/// A script check's command line and surroundings.
#[derive(Clone, Debug)]
pub(crate) struct ScriptProbe {
    /// Program (a path, or a name looked up in the environment's `PATH`).
    pub(crate) command: String,
    /// Arguments.
    pub(crate) args: Vec<String>,
    /// The complete environment (nothing is inherited from the agent).
    pub(crate) env: BTreeMap<String, String>,
    /// Working directory: the task's `local` directory.
    pub(crate) working_dir: PathBuf,
    /// The task's user; `None` runs as the agent's user.
    pub(crate) user: Option<String>,
}

impl Probe {
    /// The probe of `check`, with `${…}` references resolved by
    /// `interpolate` and script checks run with `script_env` in
    /// `working_dir` as `user`.
    pub(crate) fn new(
        check: &Check,
        interpolate: &dyn Fn(&str) -> String,
        script_env: &BTreeMap<String, String>,
        working_dir: PathBuf,
        user: Option<String>,
    ) -> Self {
        let kind = match &check.kind {
            CheckKind::Tcp { address, port } => ProbeKind::Tcp { address: interpolate(address), port: *port },
            CheckKind::Http { address, port, path, method, expected_status, body } => ProbeKind::Http {
                url: http_url(&interpolate(address), *port, &interpolate(path)),
                method: method.clone(),
                expected_status: *expected_status,
                body: body.clone(),
            },
            CheckKind::Script { command, args } => ProbeKind::Script(ScriptProbe {
                command: interpolate(command),
                args: args.iter().map(|arg| interpolate(arg)).collect(),
                env: script_env.clone(),
                working_dir,
                user,
            }),
        };
        Probe {
            name: check.name.clone(),
            kind,
            interval: check.interval.get().max(MIN_INTERVAL),
            timeout: check.timeout.get(),
        }
    }

    /// The probes of every check of a task, in declaration order, with the
    /// task's environment and working directory.
    pub(crate) fn for_task(context: &TaskContext) -> Vec<Probe> {
        let working_dir = context.task_dir.join("local");
        let dirs = AllocDirs { alloc_dir: &context.alloc_dir, task_dir: &working_dir };
        let environment = TaskEnvironment::new(
            context.node.as_ref(),
            &context.job,
            &context.group,
            &context.alloc,
            &context.task,
            &dirs,
        );
        let interpolate = |text: &str| environment.interpolate(text);
        context
            .task
            .services
            .iter()
            .flat_map(|service| service.checks.iter())
            .map(|check| {
                Probe::new(check, &interpolate, environment.env(), working_dir.clone(), context.task.user.clone())
            })
            .collect()
    }

    /// Runs the check once; never takes (much) longer than its timeout.
    pub(crate) async fn run(&self, http: Option<&reqwest::Client>) -> ProbeOutcome {
        match &self.kind {
            ProbeKind::Tcp { address, port } => {
                let target = format!("tcp {}", host_port(address, *port));
                bounded(self.timeout, &target, probe_tcp(address, *port, &target)).await
            }
            ProbeKind::Http { url, method, expected_status, body } => {
                let target = format!("{method} {url}");
                let request = probe_http(http, url, method, *expected_status, body.as_deref(), &target);
                bounded(self.timeout, &target, request).await
            }
            ProbeKind::Script(script) => probe_script(script, self.timeout).await,
        }
    }
}

/// `future`, or critical when it takes longer than `timeout`.
async fn bounded(
    timeout: Duration,
    target: &str,
    future: impl std::future::Future<Output = ProbeOutcome>,
) -> ProbeOutcome {
    match tokio::time::timeout(timeout, future).await {
        Ok(outcome) => outcome,
        Err(_) => critical(format!("{target}: timed out after {}", drover_types::DurationSpec::from(timeout))),
    }
}

async fn probe_tcp(address: &str, port: u16, target: &str) -> ProbeOutcome {
    match tokio::net::TcpStream::connect((address, port)).await {
        Ok(_stream) => ProbeOutcome::new(CheckHealth::Passing, format!("{target}: connected")),
        Err(error) => critical(format!("{target}: {error}")),
    }
}

async fn probe_http(
    client: Option<&reqwest::Client>,
    url: &str,
    method: &str,
    expected_status: Option<u16>,
    expected_body: Option<&str>,
    target: &str,
) -> ProbeOutcome {
    let Some(client) = client else {
        return critical(format!("{target}: the agent has no HTTP client (see its log)"));
    };
    let method = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(method) => method,
        Err(_) => return critical(format!("{target}: invalid HTTP method {method:?}")),
    };
    let mut response = match client.request(method, url).send().await {
        Ok(response) => response,
        Err(error) => return critical(format!("{target}: {}", drover_types::error::error_chain(&error))),
    };
    let status = response.status();
    let mut body: Vec<u8> = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY_BYTES - body.len())]),
            Ok(None) => break,
            Err(error) => {
                return critical(format!("{target}: reading the body: {}", drover_types::error::error_chain(&error)));
            }
        }
    }
    let status_line = format!("{target}: HTTP {status}");
    let status_ok = match expected_status {
        Some(expected) => status.as_u16() == expected,
        None => status.is_success(),
    };
    let body_text = String::from_utf8_lossy(&body);
    let body_ok = expected_body.is_none_or(|needle| body_text.contains(needle));
    if status_ok && body_ok {
        // Only the status: a body that changes on every request (a time,
        // a counter) must not make every run a change to publish.
        return ProbeOutcome::new(CheckHealth::Passing, status_line);
    }
    let mut output = status_line;
    if let Some(expected) = expected_status.filter(|_| !status_ok) {
        output.push_str(&format!(" (expected {expected})"));
    }
    if let Some(needle) = expected_body.filter(|_| !body_ok) {
        output.push_str(&format!(" (body does not contain {needle:?})"));
    }
    let excerpt = drover_types::text::truncated(body_text.trim(), BODY_EXCERPT_BYTES);
    if !excerpt.is_empty() {
        output.push('\n');
        output.push_str(excerpt);
    }
    critical(output)
}

async fn probe_script(script: &ScriptProbe, timeout: Duration) -> ProbeOutcome {
    let credentials = match &script.user {
        Some(user) => {
            let user = user.clone();
            match tokio::task::spawn_blocking(move || resolve_user(&user)).await {
                Ok(Ok(credentials)) => credentials,
                Ok(Err(message)) => return critical(message),
                Err(error) => return critical(format!("cannot look up the task's user: {error}")),
            }
        }
        None => None,
    };
    // One pipe for stdout and stderr, so the output reads as it was written.
    let mut command = BoundedCommand::new(&script.command, timeout, MAX_OUTPUT_BYTES);
    command
        .args(&script.args)
        .env_clear()
        .envs(&script.env)
        .current_dir(&script.working_dir)
        .stderr(StderrMode::IntoStdout)
        .linger(OUTPUT_DRAIN_TIME);
    if let Some((uid, gid)) = credentials {
        command.user(uid, gid);
    }
    // Dropping this future (the probe stopped) kills the script's group.
    let finished = match command.run().await {
        Ok(finished) => finished,
        Err(RunError::Spawn { source, .. }) => return critical(format!("cannot run {:?}: {source}", script.command)),
        Err(error) => return critical(error.to_string()),
    };
    let lossy_output = String::from_utf8_lossy(&finished.stdout.bytes);
    let text = drover_types::text::truncated(lossy_output.trim(), MAX_OUTPUT_BYTES);
    if finished.timed_out {
        return critical(with_context(text, &format!("timed out after {}", drover_types::DurationSpec::from(timeout))));
    }
    match (finished.exit_code(), finished.signal()) {
        (Some(0), _) => ProbeOutcome::new(CheckHealth::Passing, text),
        (Some(1), _) => ProbeOutcome::new(CheckHealth::Warning, text),
        (Some(code), _) => critical(with_context(text, &format!("exit code {code}"))),
        (None, Some(signal)) => critical(with_context(text, &format!("killed by signal {signal}"))),
        (None, None) => critical(with_context(text, "ended without an exit code")),
    }
}

/// The uid and gid to run a script check as; `None` when the agent already
/// runs as that user. As for tasks, another user needs a root agent.
fn resolve_user(name: &str) -> Result<Option<(u32, u32)>, String> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|error| format!("cannot look up user {name:?}: {error}"))?
        .ok_or_else(|| format!("user {name:?} does not exist on this node"))?;
    let current = nix::unistd::geteuid();
    if current == user.uid {
        return Ok(None);
    }
    if !current.is_root() {
        return Err(format!(
            "running a script check as user {name:?} needs the agent to run as root (it runs as uid {current})"
        ));
    }
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

fn critical(output: impl Into<String>) -> ProbeOutcome {
    ProbeOutcome::new(CheckHealth::Critical, output)
}

/// `output`, preceded by `context` on its own line when there is output.
fn with_context(output: &str, context: &str) -> String {
    if output.is_empty() { context.to_owned() } else { format!("{context}\n{output}") }
}

fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn http_url(address: &str, port: u16, path: &str) -> String {
    let separator = if path.starts_with('/') { "" } else { "/" };
    format!("http://{}{separator}{path}", host_port(address, port))
}

/// One finished run, for the alloc runner.
#[derive(Clone, Debug)]
pub(crate) struct ProbeReport {
    /// Task name.
    pub(crate) task: String,
    /// Index of the check among the task's checks.
    pub(crate) check: usize,
    /// The generation the probes were started with.
    pub(crate) generation: u64,
    /// What the run found.
    pub(crate) outcome: ProbeOutcome,
}

/// The running probes of an allocation's tasks. Dropping it stops them all.
pub(crate) struct ProbeSet {
    probes: BTreeMap<String, Vec<Arc<Probe>>>,
    running: HashMap<String, Vec<AbortHandle>>,
    reports: mpsc::UnboundedSender<ProbeReport>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for ProbeSet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProbeSet")
            .field("tasks", &self.probes.keys().collect::<Vec<_>>())
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ProbeSet {
    /// Probes for the given tasks (none runs yet); results go to `reports`.
    pub(crate) fn new(probes: BTreeMap<String, Vec<Probe>>, reports: mpsc::UnboundedSender<ProbeReport>) -> Self {
        let needs_http = probes.values().flatten().any(|probe| matches!(probe.kind, ProbeKind::Http { .. }));
        let http = if needs_http { http_client() } else { None };
        let probes = probes
            .into_iter()
            .map(|(task, task_probes)| (task, task_probes.into_iter().map(Arc::new).collect()))
            .collect();
        ProbeSet { probes, running: HashMap::new(), reports, http }
    }

    /// (Re)starts the probes of `task`: each check runs at once, then
    /// every `interval`.
    pub(crate) fn start(&mut self, task: &str, generation: u64) {
        self.stop(task);
        let Some(task_probes) = self.probes.get(task) else { return };
        let handles = task_probes
            .iter()
            .enumerate()
            .map(|(index, probe)| {
                let probe_loop = probe_loop(
                    Arc::clone(probe),
                    task.to_owned(),
                    index,
                    generation,
                    self.http.clone(),
                    self.reports.clone(),
                );
                tokio::spawn(probe_loop).abort_handle()
            })
            .collect();
        self.running.insert(task.to_owned(), handles);
    }

    /// Stops the probes of `task`; a run in progress is abandoned (a
    /// script's process group is killed).
    pub(crate) fn stop(&mut self, task: &str) {
        for handle in self.running.remove(task).into_iter().flatten() {
            handle.abort();
        }
    }
}

impl Drop for ProbeSet {
    fn drop(&mut self) {
        for handle in self.running.drain().flat_map(|(_, handles)| handles) {
            handle.abort();
        }
    }
}

async fn probe_loop(
    probe: Arc<Probe>,
    task: String,
    check: usize,
    generation: u64,
    http: Option<reqwest::Client>,
    reports: mpsc::UnboundedSender<ProbeReport>,
) {
    let mut ticker = tokio::time::interval(probe.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = probe.run(http.as_ref()).await;
        tracing::trace!(task = %task, check = %probe.name, status = %outcome.health, "check ran");
        let report = ProbeReport { task: task.clone(), check, generation, outcome };
        if reports.send(report).is_err() {
            return;
        }
    }
}

/// The client of HTTP checks: no proxy, no connection reuse.
fn http_client() -> Option<reqwest::Client> {
    match reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build() {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!(error = %drover_types::error::error_chain(&error), "cannot create the HTTP client of health checks");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::test_support;

    /// A TCP port on loopback that nothing listens on.
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A tiny HTTP/1.1 server on a real socket answering every request with
    /// `status_line` and `body`; the request lines it received arrive on the
    /// returned channel.
    async fn http_server(status_line: &'static str, body: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (requests, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let requests = requests.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(count) => head.extend_from_slice(&buffer[..count]),
                        }
                    }
                    let request_line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
                    let _ = requests.send(request_line);
                    let response = format!(
                        "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (port, received)
    }

    /// A server that accepts connections and never answers.
    async fn silent_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        port
    }

    fn http_check(port: u16, method: &str, expected_status: Option<u16>, body: Option<&str>) -> Probe {
        let kind = CheckKind::Http {
            address: "127.0.0.1".to_owned(),
            port,
            path: "/health".to_owned(),
            method: method.to_owned(),
            expected_status,
            body: body.map(str::to_owned),
        };
        probe(kind, 2_000)
    }

    fn probe(kind: CheckKind, timeout_millis: u64) -> Probe {
        let check = test_support::check("check", kind, 100, timeout_millis);
        Probe::new(&check, &|text| text.to_owned(), &test_env(), std::env::temp_dir(), None)
    }

    fn test_env() -> BTreeMap<String, String> {
        BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())])
    }

    fn script(script_text: &str, timeout_millis: u64, working_dir: &Path) -> Probe {
        let kind = CheckKind::Script { command: "sh".to_owned(), args: vec!["-c".to_owned(), script_text.to_owned()] };
        let check = test_support::check("script", kind, 100, timeout_millis);
        let mut env = test_env();
        env.insert("GREETING".to_owned(), "hello".to_owned());
        Probe::new(&check, &|text| text.to_owned(), &env, working_dir.to_owned(), None)
    }

    fn client() -> reqwest::Client {
        http_client().unwrap()
    }

    /// Whether `pid` is gone (or a zombie nobody reaps yet), waiting up to 5 s.
    async fn process_ends(pid: u32) -> bool {
        for _ in 0..100 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => {
                    return true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        false
    }

    async fn read_pid(path: &Path) -> u32 {
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no pid in {}", path.display());
    }

    #[tokio::test]
    async fn tcp_check_passes_against_a_listener_and_fails_against_a_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let passing = probe(CheckKind::Tcp { address: "127.0.0.1".to_owned(), port }, 2_000).run(None).await;
        assert_eq!(passing, ProbeOutcome::new(CheckHealth::Passing, format!("tcp 127.0.0.1:{port}: connected")));

        let closed = closed_port().await;
        let failing = probe(CheckKind::Tcp { address: "127.0.0.1".to_owned(), port: closed }, 2_000).run(None).await;
        assert_eq!(failing.health, CheckHealth::Critical);
        assert!(failing.output.starts_with(&format!("tcp 127.0.0.1:{closed}: ")), "{}", failing.output);
        assert!(failing.output.contains("refused"), "{}", failing.output);
    }

    #[tokio::test]
    async fn http_check_passes_on_2xx_and_fails_on_500() {
        let http = client();
        let (port, mut requests) = http_server("200 OK", "all good").await;
        let outcome = http_check(port, "GET", None, None).run(Some(&http)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::new(CheckHealth::Passing, format!("GET http://127.0.0.1:{port}/health: HTTP 200 OK"))
        );
        assert_eq!(requests.recv().await.unwrap(), "GET /health HTTP/1.1");

        let (port, _requests) = http_server("500 Internal Server Error", "database is down").await;
        let outcome = http_check(port, "GET", None, None).run(Some(&http)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::new(
                CheckHealth::Critical,
                format!("GET http://127.0.0.1:{port}/health: HTTP 500 Internal Server Error\ndatabase is down")
            )
        );
    }

    #[tokio::test]
    async fn http_check_uses_the_method_and_the_expected_status() {
        let http = client();
        let (port, mut requests) = http_server("204 No Content", "").await;
        let outcome = http_check(port, "HEAD", None, None).run(Some(&http)).await;
        assert_eq!(outcome.health, CheckHealth::Passing, "{}", outcome.output);
        assert_eq!(requests.recv().await.unwrap(), "HEAD /health HTTP/1.1");

        let (port, _requests) = http_server("503 Service Unavailable", "draining").await;
        let outcome = http_check(port, "GET", Some(503), None).run(Some(&http)).await;
        assert_eq!(outcome.health, CheckHealth::Passing, "{}", outcome.output);

        let (port, _requests) = http_server("200 OK", "fine").await;
        let outcome = http_check(port, "GET", Some(503), None).run(Some(&http)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::new(
                CheckHealth::Critical,
                format!("GET http://127.0.0.1:{port}/health: HTTP 200 OK (expected 503)\nfine")
            )
        );
    }

    #[tokio::test]
    async fn http_check_requires_the_expected_body_text() {
        let http = client();
        let (port, _requests) = http_server("200 OK", "{\"status\": \"ready\"}").await;
        let outcome = http_check(port, "GET", None, Some("ready")).run(Some(&http)).await;
        assert_eq!(outcome.health, CheckHealth::Passing, "{}", outcome.output);

        let (port, _requests) = http_server("200 OK", "{\"status\": \"starting\"}").await;
        let outcome = http_check(port, "GET", None, Some("ready")).run(Some(&http)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::new(
                CheckHealth::Critical,
                format!(
                    "GET http://127.0.0.1:{port}/health: HTTP 200 OK (body does not contain \"ready\")\n{{\"status\": \"starting\"}}"
                )
            )
        );
    }

    #[tokio::test]
    async fn http_check_fails_on_a_closed_port_and_on_a_server_that_never_answers() {
        let http = client();
        let closed = closed_port().await;
        let outcome = http_check(closed, "GET", None, None).run(Some(&http)).await;
        assert_eq!(outcome.health, CheckHealth::Critical);
        assert!(outcome.output.starts_with(&format!("GET http://127.0.0.1:{closed}/health: ")), "{}", outcome.output);

        let port = silent_server().await;
        let started = Instant::now();
        let kind = CheckKind::Http {
            address: "127.0.0.1".to_owned(),
            port,
            path: "health".to_owned(),
            method: "GET".to_owned(),
            expected_status: None,
            body: None,
        };
        let outcome = probe(kind, 300).run(Some(&http)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::new(
                CheckHealth::Critical,
                format!("GET http://127.0.0.1:{port}/health: timed out after 300ms")
            )
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn script_check_exit_codes_map_to_passing_warning_critical() {
        let dir = tempfile::tempdir().unwrap();
        let passing = script("echo \"$GREETING from $(pwd)\"", 5_000, dir.path()).run(None).await;
        let expected_dir = dir.path().canonicalize().unwrap();
        assert_eq!(passing, ProbeOutcome::new(CheckHealth::Passing, format!("hello from {}", expected_dir.display())));

        let warning = script("echo degraded; exit 1", 5_000, dir.path()).run(None).await;
        assert_eq!(warning, ProbeOutcome::new(CheckHealth::Warning, "degraded"));

        let critical = script("echo broken >&2; exit 2", 5_000, dir.path()).run(None).await;
        assert_eq!(critical, ProbeOutcome::new(CheckHealth::Critical, "exit code 2\nbroken"));

        let missing = script("exec /nonexistent/check", 5_000, dir.path()).run(None).await;
        assert_eq!(missing.health, CheckHealth::Critical);
        assert!(missing.output.starts_with("exit code 127\n"), "{}", missing.output);
    }

    #[tokio::test]
    async fn script_check_past_its_timeout_is_critical_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("sleep.pid");
        let script_text = format!("echo waiting; sleep 30 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let outcome = script(&script_text, 500, dir.path()).run(None).await;
        assert_eq!(outcome, ProbeOutcome::new(CheckHealth::Critical, "timed out after 500ms\nwaiting"));
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        // The script's child was killed with it.
        let sleep_pid = read_pid(&pid_file).await;
        assert!(process_ends(sleep_pid).await, "the check's child {sleep_pid} still runs");
    }

    #[tokio::test]
    async fn script_check_output_is_truncated_and_a_chatty_script_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        // 200 KB: more than a pipe holds.
        let outcome = script("head -c 200000 /dev/zero | tr '\\0' x", 5_000, dir.path()).run(None).await;
        assert_eq!(outcome.health, CheckHealth::Passing);
        assert_eq!(outcome.output, "x".repeat(MAX_OUTPUT_BYTES));
    }

    #[tokio::test]
    async fn script_check_runs_with_the_tasks_environment_and_interpolation() {
        let root = tempfile::tempdir().unwrap();
        let mut task = test_support::task("web", "sleep", &["600"]);
        task.env.insert("GREETING".to_owned(), "hi ${NOMAD_TASK_NAME}".to_owned());
        let kind = CheckKind::Script {
            command: "sh".to_owned(),
            args: vec![
                "-c".to_owned(),
                "echo \"$GREETING $NOMAD_ALLOC_ID $1\"; pwd".to_owned(),
                "sh".to_owned(),
                "${NOMAD_JOB_ID}".to_owned(),
            ],
        };
        let task = test_support::with_checks(task, vec![test_support::check("env", kind, 1_000, 5_000)]);
        let (reports, _) = mpsc::unbounded_channel();
        let context = TaskContext {
            driver: drover_executor::ExecDriver::new(
                drover_executor::DriverConfig::new("true", Vec::<String>::new()),
                drover_executor::Isolation::detect(),
            ),
            node: None,
            job: test_support::job(),
            group: test_support::group(vec![task.clone()]),
            alloc: test_support::allocation("alloc-1"),
            task,
            alloc_dir: root.path().join("alloc"),
            task_dir: root.path().join("web"),
            log_dir: root.path().join("alloc/logs"),
            reports,
        };
        std::fs::create_dir_all(root.path().join("web/local")).unwrap();
        let probes = Probe::for_task(&context);
        assert_eq!(probes.len(), 1);
        let outcome = probes[0].run(None).await;
        let local_dir = root.path().join("web/local").canonicalize().unwrap();
        assert_eq!(
            outcome,
            ProbeOutcome::new(CheckHealth::Passing, format!("hi web alloc-1 shop\n{}", local_dir.display()))
        );
    }

    #[tokio::test]
    async fn a_hanging_check_does_not_delay_the_others_and_stopping_kills_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("hang.pid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hanging = script(&format!("echo $$ > {}; exec sleep 30", pid_file.display()), 20_000, dir.path());
        let tcp = probe(CheckKind::Tcp { address: "127.0.0.1".to_owned(), port }, 1_000);
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut probes = ProbeSet::new(BTreeMap::from([("web".to_owned(), vec![hanging, tcp])]), sender);
        probes.start("web", 7);

        let mut tcp_reports = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(report)) = tokio::time::timeout_at(deadline, receiver.recv()).await {
            assert_eq!((report.task.as_str(), report.check, report.generation), ("web", 1, 7));
            assert_eq!(report.outcome.health, CheckHealth::Passing);
            tcp_reports += 1;
        }
        assert!(tcp_reports >= 3, "only {tcp_reports} tcp results in 1 s");

        let hanging_pid = read_pid(&pid_file).await;
        probes.stop("web");
        assert!(process_ends(hanging_pid).await, "the stopped check {hanging_pid} still runs");
        while receiver.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(receiver.try_recv().is_err(), "a stopped probe still reports");
    }
}
