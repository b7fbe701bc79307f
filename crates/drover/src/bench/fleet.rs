//! Real drover processes for benchmarks: a server and agents started from
//! this very binary, on loopback, in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_client::Client;

/// A process killed (SIGKILL) when dropped.
pub(crate) struct ChildProcess(Option<Child>);

impl ChildProcess {
    pub(crate) fn spawn(command: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child =
            command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log)).env("DROVER_LOG", "warn").spawn()?;
        Ok(Self(Some(child)))
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// kill -9 and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server and agents as real processes.
pub(crate) struct Fleet {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) address: String,
    pub(crate) server: ChildProcess,
    agents: Vec<(String, ChildProcess)>,
    pub(crate) client: Client,
}

impl Fleet {
    /// Starts a server with default settings and waits for its leader.
    pub(crate) async fn start_server() -> anyhow::Result<Fleet> {
        let dir = tempfile::Builder::new().prefix("drover-bench-").tempdir()?;
        let address = format!("127.0.0.1:{}", free_port()?);
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["server", "--insecure", "--bind", &address, "--data-dir"]).arg(dir.path().join("server"));
        let server = ChildProcess::spawn(&mut command, &dir.path().join("server.log"))?;
        let client = Client::new(&address);
        let fleet = Fleet { dir, address, server, agents: Vec::new(), client };
        let client = fleet.client.clone();
        wait_until(Duration::from_secs(30), || {
            let client = client.clone();
            async move { client.leader().await.is_ok_and(|info| info.leader_id.is_some()) }
        })
        .await?;
        Ok(fleet)
    }

    fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("agents").join(name)
    }

    /// Starts (or restarts) agent `name` and waits until its node is ready.
    pub(crate) async fn start_agent(&mut self, name: &str) -> anyhow::Result<()> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["agent", "--servers", &self.address, "--name", name, "--data-dir"]).arg(self.agent_dir(name));
        let process = ChildProcess::spawn(&mut command, &self.dir.path().join(format!("agent-{name}.log")))?;
        self.agents.retain(|(existing, _)| existing != name);
        self.agents.push((name.to_owned(), process));
        let client = self.client.clone();
        let wanted = name.to_owned();
        wait_until(Duration::from_secs(60), || {
            let client = client.clone();
            let wanted = wanted.clone();
            async move {
                client
                    .nodes()
                    .await
                    .is_ok_and(|nodes| nodes.iter().any(|node| node.name == wanted && node.status == "ready"))
            }
        })
        .await
    }

    /// Starts many agents at once (host group `bench`) and waits until all
    /// their nodes are ready.
    pub(crate) async fn start_agents(&mut self, names: &[String]) -> anyhow::Result<()> {
        for name in names {
            let mut command = Command::new(std::env::current_exe()?);
            command
                .args(["agent", "--servers", &self.address, "--name", name, "--hostgroup", "bench", "--data-dir"])
                .arg(self.agent_dir(name));
            let process = ChildProcess::spawn(&mut command, &self.dir.path().join(format!("agent-{name}.log")))?;
            self.agents.push((name.clone(), process));
        }
        self.wait_ready(names).await
    }

    /// Waits until the node of every name is ready.
    pub(crate) async fn wait_ready(&self, names: &[String]) -> anyhow::Result<()> {
        let client = self.client.clone();
        let wanted: std::collections::HashSet<String> = names.iter().cloned().collect();
        wait_until(Duration::from_secs(300), || {
            let (client, wanted) = (client.clone(), wanted.clone());
            async move {
                client.nodes().await.is_ok_and(|nodes| {
                    nodes.iter().filter(|node| node.status == "ready" && wanted.contains(&node.name)).count()
                        == wanted.len()
                })
            }
        })
        .await
    }

    /// A machine dying: kill -9 of the agent and of every process it started.
    pub(crate) fn kill_machine(&mut self, name: &str) {
        if let Some((_, agent)) = self.agents.iter_mut().find(|(existing, _)| existing == name) {
            agent.kill();
        }
        drover_exec::kill_processes_under(&self.agent_dir(name));
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, agent) in &mut self.agents {
            agent.kill();
        }
        self.server.kill();
        drover_exec::kill_processes_under(self.dir.path());
    }
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub(crate) async fn wait_until<F, Fut>(timeout: Duration, condition: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        anyhow::ensure!(started.elapsed() < timeout, "timed out after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// p50 and p99 of durations (nearest rank).
pub(crate) fn percentiles(samples: &[Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = |percent: f64| {
        let position = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[position.clamp(1, sorted.len()) - 1]
    };
    (rank(50.0), rank(99.0))
}

/// CPU seconds (user + system) a process has used.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    let clock_ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    (ticks(11) + ticks(12)) as f64 / clock_ticks
}
