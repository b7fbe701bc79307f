//! Real drover processes for benchmarks: a server and agents started from
//! this very binary, on loopback, in a temporary directory. The server is
//! insecure (`--insecure`) unless started with
//! [`Fleet::start_secure_server`]: HTTPS and mutual TLS with its own CA,
//! ACLs bootstrapped through the API, and a join token for the agents.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_client::{Client, Credentials};

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
    /// A client of the server (with the management token when secure).
    pub(crate) client: Client,
    /// The secure server's CA and tokens; `None` when insecure.
    pub(crate) security: Option<FleetSecurity>,
}

/// What the agents of a secure server need (its clients hold the CA and
/// the management token: [`Fleet::client`]).
#[derive(Clone)]
pub(crate) struct FleetSecurity {
    /// A join token (`drover1.<CA sha256>.<secret>`) without a use limit.
    pub(crate) join_token: String,
}

impl FleetSecurity {
    /// The SHA-256 of the CA and the secret a join token carries.
    pub(crate) fn join_parts(&self) -> anyhow::Result<(String, String)> {
        split_join_token(&self.join_token)
    }
}

impl std::fmt::Debug for FleetSecurity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets stay out of logs.
        formatter.debug_struct("FleetSecurity").finish_non_exhaustive()
    }
}

/// `drover1.<CA sha256>.<secret>` → (CA sha256, secret).
pub(crate) fn split_join_token(token: &str) -> anyhow::Result<(String, String)> {
    let mut parts = token.trim().splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("drover1"), Some(ca_sha256), Some(secret)) if !ca_sha256.is_empty() && !secret.is_empty() => {
            Ok((ca_sha256.to_owned(), secret.to_owned()))
        }
        _ => anyhow::bail!("the server answered a join token that is not drover1.<CA sha256>.<secret>"),
    }
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
        let fleet = Fleet { dir, address, server, agents: Vec::new(), client, security: None };
        wait_for_leader(&fleet.client).await?;
        Ok(fleet)
    }

    /// Starts a secure server (the default of `drover server`: HTTPS,
    /// mutual TLS, ACLs) that makes its own CA, waits for its leader,
    /// bootstraps the ACLs through the API (`drover acl bootstrap`) and
    /// creates one join token without a use limit (`drover node
    /// join-token create --ttl 24h`). [`Fleet::client`] then holds the CA
    /// and the management token.
    pub(crate) async fn start_secure_server() -> anyhow::Result<Fleet> {
        let dir = tempfile::Builder::new().prefix("drover-bench-").tempdir()?;
        let address = format!("127.0.0.1:{}", free_port()?);
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["server", "--bind", &address, "--data-dir"]).arg(dir.path().join("server"));
        let server = ChildProcess::spawn(&mut command, &dir.path().join("server.log"))?;
        let ca_path = dir.path().join("server").join("tls").join("ca.pem");
        wait_until(Duration::from_secs(30), || {
            let ca_path = ca_path.clone();
            async move { std::fs::read_to_string(&ca_path).is_ok_and(|pem| pem.contains("END CERTIFICATE")) }
        })
        .await
        .with_context(|| format!("the secure server wrote no CA certificate to {}", ca_path.display()))?;
        let ca_pem = std::fs::read_to_string(&ca_path)?;
        let anonymous = Client::secured(&address, &Credentials { ca_pem: Some(ca_pem.clone()), token: None })?;
        wait_for_leader(&anonymous).await?;
        let management_token = anonymous.acl_bootstrap().await.context("drover acl bootstrap")?.secret;
        let client = Client::secured(&address, &Credentials { ca_pem: Some(ca_pem), token: Some(management_token) })?;
        let request = drover_proto::api::JoinTokenCreateRequest {
            hostgroups: Vec::new(),
            ttl: Some("24h".to_owned()),
            uses: None,
            server: false,
        };
        let join_token = client.create_join_token(&request).await.context("creating a join token")?.token;
        let security = FleetSecurity { join_token };
        Ok(Fleet { dir, address, server, agents: Vec::new(), client, security: Some(security) })
    }

    fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("agents").join(name)
    }

    /// Starts (or restarts) agent `name` and waits until its node is ready.
    pub(crate) async fn start_agent(&mut self, name: &str) -> anyhow::Result<()> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["agent", "--servers", &self.address, "--name", name, "--data-dir"]).arg(self.agent_dir(name));
        self.give_join_token(&mut command);
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
            self.give_join_token(&mut command);
            let process = ChildProcess::spawn(&mut command, &self.dir.path().join(format!("agent-{name}.log")))?;
            self.agents.push((name.clone(), process));
        }
        self.wait_ready(names).await
    }

    /// A secure fleet's agents enrol with the join token on first start
    /// (`DROVER_JOIN_TOKEN`, as an operator would pass it).
    fn give_join_token(&self, command: &mut Command) {
        if let Some(security) = &self.security {
            command.env("DROVER_JOIN_TOKEN", &security.join_token);
        }
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
        drover_executor::kill_processes_under(&self.agent_dir(name));
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, agent) in &mut self.agents {
            agent.kill();
        }
        self.server.kill();
        drover_executor::kill_processes_under(self.dir.path());
    }
}

/// Waits until the server of `client` knows its leader.
async fn wait_for_leader(client: &Client) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(30), || {
        let client = client.clone();
        async move { client.leader().await.is_ok_and(|info| info.leader_id.is_some()) }
    })
    .await
    .context("the server elected no leader")
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
