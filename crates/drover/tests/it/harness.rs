//! A tiny DSL for running real drover clusters in tests.
//!
//! ```ignore
//! let cluster = Cluster::start().await;          // one server
//! let agent = cluster.agent("n1").start().await; // one agent
//! cluster.run_job(JOB_HCL).await;
//! cluster.wait_for("allocations running", || async { ... }).await;
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_client::Client;
use drover_proto::api::JobStatusResponse;
use drover_proto::paths;
use drover_types::{AllocClientStatus, EvalStatus, Evaluation};

/// The drover binary under test.
pub fn drover_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drover"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A port free for both UDP and TCP on 127.0.0.1, for a DNS server. Drawn
/// at random below the kernel's ephemeral range (32768 and up) and the
/// agents' dynamic task ports (20000–32000): a UDP port from
/// [`free_port`]'s range can be taken meanwhile by any client socket of a
/// test running beside (a DNS query, say), which made a server's DNS bind
/// fail with "Address already in use".
pub fn free_dns_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = 10_000 + u16::try_from(random % 10_000).unwrap_or(0);
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
}

/// A process that is killed (SIGKILL) when dropped.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output in `log`.
    pub fn spawn_for_test(name: &str, command: &mut Command, log: PathBuf) -> Process {
        Self::spawn(name, command, log)
    }

    /// Starts `command` with its output in `log`, logging at info unless
    /// the command sets `DROVER_LOG` itself.
    fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Process {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open a process log");
        if !command.get_envs().any(|(key, _)| key == "DROVER_LOG") {
            command.env("DROVER_LOG", "info,openraft=warn");
        }
        let child = command
            .stdout(Stdio::from(log_file.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Process { name: name.to_owned(), child: Some(child), log }
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process's combined output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A peer process a test started (Prometheus, an SMTP server, …), killed
/// when the test ends, even on panic.
pub struct Peer(pub std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus (Debian's `prometheus`, the caller checks it is
/// there) scraping with the `scrape_configs` YAML given, its data under
/// `dir`, stopped when dropped.
pub struct Prometheus {
    _process: Peer,
    port: u16,
}

impl Prometheus {
    pub fn start(binary: &str, dir: &std::path::Path, scrape_configs: &str) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{scrape_configs}")).unwrap();
        let process = std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus { _process: Peer(process), port }
    }

    /// The series of an instant query; `None` until Prometheus answers.
    pub async fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let response = reqwest::Client::new().get(url).query(&[("query", promql)]).send().await.ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["data"]["result"].as_array().cloned()
    }
}

/// The scrape job of docs/metrics.md's recipe: the whole fleet from one
/// server (`?fleet=true`), drover's `job` label kept, `instance` = the node.
pub fn fleet_scrape_config(address: &str) -> String {
    format!(
        "  - job_name: drover\n    metrics_path: /v1/metrics\n    \
         params:\n      fleet: ['true']\n    honor_labels: true\n    static_configs:\n      - targets: ['{address}']\n    \
         metric_relabel_configs:\n      - source_labels: [node]\n        regex: '(.+)'\n        target_label: instance\n"
    )
}

/// A cluster of servers (one, or three for high availability) and any
/// number of agents, all real processes, under one temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// Every server's address, comma-separated: agents and the CLI are given
    /// all of them, as in production.
    pub address: String,
    /// Each server's own address.
    pub addresses: Vec<String>,
    /// `servers[i]` listens on `addresses[i]`.
    pub servers: Vec<Process>,
    pub agents: Vec<Process>,
    /// Each agent's name, servers and extra flags, to restart it the same way.
    agent_specs: Vec<(String, String, Vec<String>)>,
    /// Extra flags of every server.
    server_extra: Vec<String>,
    pub client: Client,
}

impl Cluster {
    /// Starts a server and waits until it answers.
    pub async fn start() -> Cluster {
        Cluster::start_servers(1).await
    }

    /// Starts `num_servers` servers forming one cluster
    /// (`--bootstrap-expect N --join …`) and waits until it has a leader.
    pub async fn start_servers(num_servers: usize) -> Cluster {
        Cluster::start_servers_with(num_servers, &[]).await
    }

    /// Like [`Cluster::start_servers`], with extra flags for every server.
    pub async fn start_servers_with(num_servers: usize, server_extra: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new().prefix("drover-it-").tempdir().expect("temporary directory");
        Cluster::start_in(dir, num_servers, server_extra).await
    }

    /// Like [`Cluster::start_servers_with`], in a directory that may already
    /// hold data directories (`server`, `agents/NAME`) to start on.
    pub async fn start_in(dir: tempfile::TempDir, num_servers: usize, server_extra: &[&str]) -> Cluster {
        let addresses: Vec<String> = (0..num_servers).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let address = addresses.join(",");
        let server_extra: Vec<String> = server_extra.iter().map(|flag| (*flag).to_owned()).collect();
        let servers =
            (0..num_servers).map(|index| start_server(dir.path(), &addresses, index, &server_extra)).collect();
        let client = Client::new(&address);
        let cluster = Cluster {
            dir,
            address,
            addresses,
            servers,
            agents: Vec::new(),
            agent_specs: Vec::new(),
            server_extra,
            client,
        };
        cluster.wait_for_leader().await;
        cluster
    }

    /// Waits until the servers have a leader and answer consistent reads.
    pub async fn wait_for_leader(&self) {
        self.wait_for("the servers to have a leader", || async {
            self.client.leader().await.is_ok_and(|info| info.leader_id.is_some()) && self.client.jobs().await.is_ok()
        })
        .await;
    }

    /// The position in `servers` of the current leader.
    pub async fn leader_index(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(info) = self.client.leader().await
                && let Some(index) =
                    info.leader_address.and_then(|leader| self.addresses.iter().position(|address| *address == leader))
            {
                return index;
            }
            assert!(Instant::now() < deadline, "no leader after 60 s\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the (first) server with SIGKILL.
    pub fn kill_server(&mut self) {
        self.kill_server_at(0);
    }

    /// Kills server `index` with SIGKILL.
    pub fn kill_server_at(&mut self, index: usize) {
        self.servers[index].kill9();
    }

    /// Starts the (first) server again on the same address and data directory.
    pub async fn restart_server(&mut self) {
        self.restart_server_at(0).await;
    }

    /// Starts server `index` again on its address and data directory.
    pub async fn restart_server_at(&mut self, index: usize) {
        self.servers[index] = start_server(self.dir.path(), &self.addresses, index, &self.server_extra);
        self.wait_for_leader().await;
    }

    /// Starts server `index` again without waiting for anything.
    pub fn spawn_server_at(&mut self, index: usize) {
        self.servers[index] = start_server(self.dir.path(), &self.addresses, index, &self.server_extra);
    }

    /// Starts a new server that joins the running cluster
    /// (`drover server --join …`); returns its index.
    pub fn add_server(&mut self) -> usize {
        let index = self.addresses.len();
        let address = format!("127.0.0.1:{}", free_port());
        let name = format!("server{index}");
        let mut command = Command::new(drover_binary());
        command.args(["server", "--insecure", "--bind", &address, "--data-dir"]).arg(self.dir.path().join(&name));
        command.args(["--heartbeat-interval", "1s", "--heartbeat-ttl", "4s", "--join", &self.address]);
        command.args(SERVER_TEST_ARGS);
        self.servers.push(Process::spawn(&name, &mut command, self.dir.path().join(format!("{name}.log"))));
        self.addresses.push(address);
        index
    }

    /// A client of server `index` only.
    pub fn client_of(&self, index: usize) -> Client {
        Client::new(&self.addresses[index])
    }

    /// Starts an agent named `name` with extra flags.
    pub async fn start_agent(&mut self, name: &str, extra: &[&str]) -> usize {
        let servers = self.address.clone();
        self.agent_specs.push((
            name.to_owned(),
            servers.clone(),
            extra.iter().map(|flag| (*flag).to_owned()).collect(),
        ));
        self.spawn_agent(name, &servers, extra).await
    }

    /// Starts an agent that knows only server `server`.
    pub async fn start_agent_on(&mut self, name: &str, server: usize, extra: &[&str]) -> usize {
        let servers = self.addresses[server].clone();
        self.agent_specs.push((
            name.to_owned(),
            servers.clone(),
            extra.iter().map(|flag| (*flag).to_owned()).collect(),
        ));
        self.spawn_agent(name, &servers, extra).await
    }

    /// Starts several agents at once with the same extra flags and waits
    /// until every one is ready (faster than one after the other).
    pub async fn start_agents(&mut self, names: &[String], extra: &[&str]) {
        let servers = self.address.clone();
        for name in names {
            self.agent_specs.push((
                name.clone(),
                servers.clone(),
                extra.iter().map(|flag| (*flag).to_owned()).collect(),
            ));
            let data_dir = self.dir.path().join("agents").join(name);
            let mut command = Command::new(drover_binary());
            command
                .args(["agent", "--servers", &servers, "--data-dir"])
                .arg(&data_dir)
                .args(["--name", name])
                .args(extra);
            let log = self.dir.path().join(format!("agent-{name}-{}.log", self.agents.len()));
            self.agents.push(Process::spawn(&format!("agent {name}"), &mut command, log));
        }
        let client = self.client.clone();
        let wanted: std::collections::HashSet<String> = names.iter().cloned().collect();
        self.wait_for(&format!("{} agents to register", names.len()), || {
            let (client, wanted) = (client.clone(), wanted.clone());
            async move {
                client.nodes().await.is_ok_and(|nodes| {
                    nodes.iter().filter(|node| node.status == "ready" && wanted.contains(&node.name)).count()
                        == wanted.len()
                })
            }
        })
        .await;
    }

    /// The data directory of agent `name`.
    pub fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("agents").join(name)
    }

    /// The position of agent `name` in `agents`.
    pub fn agent_index(&self, name: &str) -> usize {
        self.agent_specs.iter().position(|(spec_name, _, _)| spec_name == name).expect("a started agent")
    }

    /// kill -9 of agent `name` only (its tasks keep running).
    pub fn kill_agent(&mut self, name: &str) {
        let index = self.agent_index(name);
        self.agents[index].kill9();
    }

    /// A machine dying: kill -9 of agent `name` and of every executor and
    /// task it started.
    pub fn kill_machine(&mut self, name: &str) {
        self.kill_agent(name);
        kill_processes_under(&self.agent_dir(name));
    }

    /// Starts agent `name` again with its data directory and flags.
    pub async fn restart_agent(&mut self, name: &str) {
        let index = self.agent_index(name);
        let (_, servers, extra) = self.agent_specs[index].clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.agents[index].kill9();
        let position = self.spawn_agent(name, &servers, &extra).await;
        let restarted = self.agents.remove(position);
        self.agents[index] = restarted;
    }

    /// Sends a signal to agent `name` (SIGSTOP freezes it, SIGCONT thaws it).
    pub fn signal_agent(&self, name: &str, signal: nix::sys::signal::Signal) {
        self.agents[self.agent_index(name)].signal(signal);
    }

    async fn spawn_agent(&mut self, name: &str, servers: &str, extra: &[&str]) -> usize {
        let data_dir = self.dir.path().join("agents").join(name);
        let mut command = Command::new(drover_binary());
        command.args(["agent", "--servers", servers, "--data-dir"]).arg(&data_dir).args(["--name", name]).args(extra);
        let log = self.dir.path().join(format!("agent-{name}-{}.log", self.agents.len()));
        self.agents.push(Process::spawn(&format!("agent {name}"), &mut command, log));
        let client = self.client.clone();
        let wanted = name.to_owned();
        self.wait_for(&format!("agent {name} to register"), || {
            let client = client.clone();
            let wanted = wanted.clone();
            async move {
                client
                    .nodes()
                    .await
                    .is_ok_and(|nodes| nodes.iter().any(|node| node.name == wanted && node.status == "ready"))
            }
        })
        .await;
        self.agents.len() - 1
    }

    /// Writes a job file into the cluster directory and runs
    /// `drover job run FILE --detach`.
    pub fn run_job(&self, name: &str, hcl: &str) -> std::process::Output {
        let path = self.dir.path().join(format!("{name}.nomad.hcl"));
        std::fs::write(&path, hcl).expect("write the job file");
        self.cli(&["job", "run", "--detach", path.to_str().expect("utf-8 path")])
    }

    /// Runs the CLI against this cluster as `user` (the name the audit
    /// history records), without a terminal.
    pub fn cli_as(&self, user: &str, args: &[&str]) -> std::process::Output {
        Command::new(drover_binary())
            .args(args)
            .env("DROVER_ADDR", &self.address)
            .env("DROVER_USER", user)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the drover CLI")
    }

    /// Runs the CLI against this cluster.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(drover_binary()).args(args).env("DROVER_ADDR", &self.address).output().expect("run the drover CLI")
    }

    /// Polls `condition` every 100 ms for up to 60 s.
    pub async fn wait_for<F, Fut>(&self, what: &str, condition: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        wait_until(what, Duration::from_secs(60), condition, || self.logs()).await;
    }

    /// The job's status.
    pub async fn job_status(&self, job: &str) -> JobStatusResponse {
        self.client.job_status(job, None).await.expect("job status").0
    }

    /// Waits until `count` allocations of `job` have `status`.
    pub async fn wait_for_allocs(&self, job: &str, status: AllocClientStatus, count: usize) -> JobStatusResponse {
        let what = format!("{count} allocation(s) of {job} to be {status}");
        self.wait_for(&what, || async {
            self.client.job_status(job, None).await.is_ok_and(|(status_response, _)| {
                status_response.allocs.iter().filter(|alloc| alloc.client_status == status).count() == count
            })
        })
        .await;
        self.job_status(job).await
    }

    /// A client of the current leader, once there is one: only the leader
    /// knows when each node was last heard from.
    pub async fn leader_client(&self) -> Option<Client> {
        let info = self.client.leader().await.ok()?;
        info.leader_address.map(|address| Client::new(&address))
    }

    /// Proposes a harmless write (a variable under `it-marker/`) and
    /// returns once it is applied: every Raft entry proposed before it — a
    /// node status change the heartbeat tracker decided, say — is applied
    /// too. What the servers decided before this call is then visible.
    pub async fn commit_marker(&self) {
        let items = std::collections::BTreeMap::from([("at".to_owned(), drover_types::Timestamp::now().to_string())]);
        let client = self.client.clone();
        self.wait_for("a marker write to commit", || {
            let (client, items) = (client.clone(), items.clone());
            async move { client.put_variable("it-marker/flush", &items, None).await.is_ok() }
        })
        .await;
    }

    /// Every evaluation of `job` (all of them, not the newest five that
    /// `job status` shows), from the first server that answers.
    pub async fn evaluations_of(&self, job: &str) -> Option<Vec<Evaluation>> {
        for address in &self.addresses {
            let url = format!("http://{address}{}", paths::fill(paths::JOB_EVALUATIONS, &[job]));
            let Ok(response) = reqwest::get(&url).await else { continue };
            if !response.status().is_success() {
                continue;
            }
            if let Ok(evals) = response.json::<Vec<Evaluation>>().await {
                return Some(evals);
            }
        }
        None
    }

    /// Waits until the scheduler has processed every evaluation of `job`
    /// proposed so far (a marker write commits first, so that evaluations
    /// a leader loop was proposing are among them): none is pending.
    /// Blocked evaluations count as processed: the scheduler found no room.
    pub async fn wait_until_evaluated(&self, job: &str) {
        self.commit_marker().await;
        self.wait_for(&format!("every evaluation of {job} to be processed"), || async {
            self.evaluations_of(job)
                .await
                .is_some_and(|evals| evals.iter().all(|eval| eval.status != EvalStatus::Pending))
        })
        .await;
    }

    /// Every process's output, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for server in &self.servers {
            text.push_str(&format!("--- {} ---\n{}\n", server.name, tail(&server.output(), 60)));
        }
        for agent in &self.agents {
            text.push_str(&format!("--- {} ---\n{}\n", agent.name, tail(&agent.output(), 40)));
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill9();
        }
        for server in &mut self.servers {
            server.kill9();
        }
        kill_processes_under(self.dir.path());
    }
}

/// What every test server is started with: the health checklist does not
/// judge the test machine's free disk (a CI machine may be nearly full).
const SERVER_TEST_ARGS: [&str; 2] = ["--min-free-disk-mb", "0"];

fn start_server(dir: &Path, addresses: &[String], index: usize, extra: &[String]) -> Process {
    let mut command = Command::new(drover_binary());
    let (data_dir, name) = if addresses.len() == 1 {
        (dir.join("server"), "server".to_owned())
    } else {
        (dir.join(format!("server{index}")), format!("server{index}"))
    };
    command.args(["server", "--insecure", "--bind", &addresses[index], "--data-dir"]).arg(data_dir);
    // Fast heartbeats, unless the test asks for its own.
    if !extra.iter().any(|flag| flag.starts_with("--heartbeat-")) {
        command.args(["--heartbeat-interval", "1s", "--heartbeat-ttl", "4s"]);
    }
    command.args(SERVER_TEST_ARGS).args(extra);
    if addresses.len() > 1 {
        command.args(["--bootstrap-expect", &addresses.len().to_string(), "--join", &addresses.join(",")]);
    }
    // Appends: a restarted server's log follows its earlier life.
    let log = dir.join(format!("{name}.log"));
    Process::spawn(&name, &mut command, log)
}

fn tail(text: &str, num_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(num_lines)..].join("\n")
}

/// Polls `condition` until it holds or `timeout` passes (then panics with
/// `context()`).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, condition: F, context: impl Fn() -> String)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", context());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills every process under `dir` (executors and tasks outlive agents).
pub fn kill_processes_under(dir: &Path) {
    drover_executor::kill_processes_under(dir);
}

/// When the leader behind `client` last heard from node `name` (`None`
/// when it has not since it became leader, or when `client` reaches a
/// follower).
pub async fn last_heartbeat(client: &Client, name: &str) -> Option<drover_types::Timestamp> {
    let nodes = client.nodes().await.ok()?;
    nodes.into_iter().find(|node| node.name == name)?.last_heartbeat
}

/// Whether a process exists.
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // A zombie is not alive.
    !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
}

/// What a command printed: its stdout, then its stderr.
pub fn output_text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
