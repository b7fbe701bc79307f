//! High availability: three servers, kill -9 of the leader, restarts,
//! membership changes, snapshots, and (with root and `ip`) a partition made
//! with network namespaces.
//!
//! `DROVER_HA_ROUNDS=20 cargo test -p drover --test it -- --ignored ha::`
//! runs the long randomised version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_client::Client;
use drover_golden::needs::{self, Missing};
use drover_types::{AllocClientStatus, Timestamp};

use crate::harness::{Cluster, last_heartbeat, process_alive, wait_until};

const SERVICE_JOB: &str = r#"
job "web" {
  type = "service"
  group "web" {
    count = 2
    task "web" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exec sleep 600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// A client that writes variables `acked/N` one after the other and
/// records every write the servers acknowledged.
pub(crate) struct Writer {
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub(crate) fn start(address: &str, prefix: &str) -> Writer {
        let client = Client::new(address);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let prefix = prefix.to_owned();
        let task = tokio::spawn({
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            async move {
                let mut next = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let items = BTreeMap::from([("n".to_owned(), next.to_string())]);
                    match client.put_variable(&format!("{prefix}/{next}"), &items, None).await {
                        Ok(_) => acked.lock().unwrap().push(next),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    next += 1;
                }
            }
        });
        Writer { acked, stop, task }
    }

    pub(crate) fn num_acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_for_acks(&self, more: usize, context: impl Fn() -> String) {
        let target = self.num_acked() + more;
        wait_until(
            &format!("{target} acknowledged writes"),
            Duration::from_secs(60),
            || async { self.num_acked() >= target },
            context,
        )
        .await;
    }

    pub(crate) async fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        Arc::try_unwrap(self.acked).map(|acked| acked.into_inner().unwrap()).unwrap_or_default()
    }
}

/// Every acknowledged write must be readable (a consistent read).
async fn assert_all_present(client: &Client, prefix: &str, acked: &[u64]) {
    let stored: BTreeSet<String> =
        client.variables(&format!("{prefix}/")).await.unwrap().into_iter().map(|variable| variable.path).collect();
    let missing: Vec<&u64> = acked.iter().filter(|n| !stored.contains(&format!("{prefix}/{n}"))).collect();
    assert!(missing.is_empty(), "{} acknowledged writes lost: {missing:?}", missing.len());
}

/// Waits until the current leader has heard from every node of `since`
/// after the time given for it; returns when it last heard from each.
async fn wait_for_heartbeats_after(
    cluster: &Cluster,
    since: &BTreeMap<&'static str, Timestamp>,
) -> BTreeMap<&'static str, Timestamp> {
    let heard = Mutex::new(BTreeMap::new());
    let what = format!("the leader to hear {:?} again", since.keys().collect::<Vec<_>>());
    cluster
        .wait_for(&what, || async {
            let Some(leader) = cluster.leader_client().await else { return false };
            let mut latest = BTreeMap::new();
            for (name, after) in since {
                match last_heartbeat(&leader, name).await {
                    Some(at) if at > *after => latest.insert(*name, at),
                    _ => return false,
                };
            }
            *heard.lock().unwrap() = latest;
            true
        })
        .await;
    heard.into_inner().unwrap()
}

fn pids(status: &drover_proto::api::JobStatusResponse) -> BTreeMap<String, u32> {
    status
        .allocs
        .iter()
        .filter(|alloc| alloc.client_status == AllocClientStatus::Running)
        .map(|alloc| (alloc.id.to_string(), alloc.task_states["web"].pid.unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write_and_disturbs_no_task() {
    let mut cluster = Cluster::start_servers(3).await;
    cluster.start_agent("n1", &[]).await;
    cluster.start_agent("n2", &[]).await;
    let output = cluster.run_job("web", SERVICE_JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let before = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;

    let writer = Writer::start(&cluster.address, "acked");
    writer.wait_for_acks(30, || cluster.logs()).await;
    let leader = cluster.leader_index().await;
    let mut status_changed_at = BTreeMap::new();
    for name in ["n1", "n2"] {
        status_changed_at.insert(name, cluster.client.node(name).await.unwrap().node.status_updated_at);
    }
    let killed_wall = Timestamp::now();
    cluster.kill_server_at(leader);
    let killed_at = Instant::now();
    writer.wait_for_acks(30, || cluster.logs()).await;
    let acked = writer.stop().await;
    eprintln!("{} writes acknowledged; 30 after the kill within {:?}", acked.len(), killed_at.elapsed());

    let survivor = (leader + 1) % 3;
    assert_all_present(&cluster.client_of(survivor), "acked", &acked).await;

    // Agents of the dead server moved to another, and the new leader hears
    // every node (so its heartbeat tracker has no node to mark down), twice,
    // so each agent's new session has run past its start and the
    // allocations pushed with it; the marker write commits after anything
    // the new leader proposed before.
    let heard = wait_for_heartbeats_after(&cluster, &BTreeMap::from([("n1", killed_wall), ("n2", killed_wall)])).await;
    wait_for_heartbeats_after(&cluster, &heard).await;
    cluster.commit_marker().await;
    let nodes = cluster.client.nodes().await.unwrap();
    assert!(nodes.iter().all(|node| node.status == "ready"), "{nodes:?}");
    for (name, changed_at) in &status_changed_at {
        let node = cluster.client.node(name).await.unwrap().node;
        assert_eq!(node.status_updated_at, *changed_at, "{name} was never marked down (and back): {node:?}");
    }
    let after = cluster.job_status("web").await;
    assert_eq!(pids(&after), pids(&before), "the same allocations, with the same processes");
    assert!(pids(&before).values().all(|pid| process_alive(*pid)));

    // Scheduling continues under the new leader.
    let output = cluster.run_job("web", &SERVICE_JOB.replace("count = 2", "count = 3"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.wait_for_allocs("web", AllocClientStatus::Running, 3).await;

    // The killed server comes back and catches up.
    cluster.restart_server_at(leader).await;
    let restarted = cluster.client_of(leader).with_stale(true);
    let wanted = acked.len();
    cluster
        .wait_for("the restarted server to catch up", || async {
            restarted.variables("acked/").await.is_ok_and(|variables| variables.len() >= wanted)
        })
        .await;
}

/// The long, randomised version: kill the leader at random moments,
/// `DROVER_HA_ROUNDS` times (default 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run with `cargo test -p drover --test it -- --ignored ha::`"]
async fn random_leader_kills_lose_no_acknowledged_write() {
    let rounds: usize = std::env::var("DROVER_HA_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(20);
    let mut cluster = Cluster::start_servers(3).await;
    let writer = Writer::start(&cluster.address, "random");
    for round in 0..rounds {
        let pause = Duration::from_millis(rand::random_range(100..2_000));
        tokio::time::sleep(pause).await;
        let leader = cluster.leader_index().await;
        cluster.kill_server_at(leader);
        eprintln!("round {round}: killed server {leader} after {pause:?}");
        writer.wait_for_acks(5, || cluster.logs()).await;
        cluster.restart_server_at(leader).await;
    }
    let acked = writer.stop().await;
    assert_all_present(&cluster.client, "random", &acked).await;
    eprintln!("{rounds} rounds, {} acknowledged writes, none lost", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_stopped_and_started_again_come_back_with_all_state() {
    let mut cluster = Cluster::start_servers(3).await;
    cluster.start_agent("n1", &[]).await;
    let output = cluster.run_job("web", SERVICE_JOB);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let before = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    let writer = Writer::start(&cluster.address, "kept");
    writer.wait_for_acks(50, || cluster.logs()).await;
    let acked = writer.stop().await;

    for index in 0..3 {
        cluster.kill_server_at(index);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for index in 0..3 {
        cluster.spawn_server_at(index);
    }
    cluster.wait_for_leader().await;

    assert_all_present(&cluster.client, "kept", &acked).await;
    let after = cluster.wait_for_allocs("web", AllocClientStatus::Running, 2).await;
    assert_eq!(pids(&after), pids(&before), "the same allocations, with the same processes");
    assert_eq!(after.job.version, before.job.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_join_and_leave_and_a_snapshot_restores_the_state() {
    let mut cluster = Cluster::start_servers(3).await;
    let items = BTreeMap::from([("version".to_owned(), "3.2.1".to_owned())]);
    cluster.client.put_variable("site/daq", &items, None).await.unwrap();

    // Save, change, restore: the saved state comes back.
    let snapshot_file = cluster.dir.path().join("state.snap");
    let output = cluster.cli(&["operator", "snapshot", "save", snapshot_file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let changed = BTreeMap::from([("version".to_owned(), "3.2.2".to_owned())]);
    cluster.client.put_variable("site/daq", &changed, None).await.unwrap();
    cluster.client.put_variable("site/other", &changed, None).await.unwrap();
    let output = cluster.cli(&["operator", "snapshot", "restore", snapshot_file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for index in 0..3 {
        let client = cluster.client_of(index);
        assert_eq!(client.variable("site/daq").await.unwrap().items, items, "server {index}");
        assert!(client.variable("site/other").await.is_err(), "server {index} kept a write made after the save");
    }
    // Garbage is refused and changes nothing.
    let garbage = cluster.dir.path().join("garbage.snap");
    std::fs::write(&garbage, b"not a snapshot at all").unwrap();
    let output = cluster.cli(&["operator", "snapshot", "restore", garbage.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a drover snapshot"));
    assert_eq!(cluster.client.variable("site/daq").await.unwrap().items, items);

    // `drover server health` is green, then red with a server down.
    let output = cluster.cli(&["server", "health"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let leader = cluster.leader_index().await;
    let dead = (leader + 1) % 3;
    cluster.kill_server_at(dead);
    let output = cluster.cli(&["server", "health"]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stdout).contains("does not answer"));

    // Remove the dead server; add a new one.
    let members = cluster.client.members().await.unwrap();
    let dead_id = members.iter().find(|member| member.address == cluster.addresses[dead]).unwrap().server_id;
    let output = cluster.cli(&["operator", "raft", "remove-peer", &dead_id.to_string()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let fourth = cluster.add_server();
    let joined = cluster.client_of(fourth).with_stale(true);
    cluster
        .wait_for("the new server to join and catch up", || async {
            joined.variable("site/daq").await.is_ok_and(|variable| variable.items == items)
        })
        .await;
    let members = cluster.client.members().await.unwrap();
    let addresses: BTreeSet<&str> = members.iter().map(|member| member.address.as_str()).collect();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(!addresses.contains(cluster.addresses[dead].as_str()));
    assert!(addresses.contains(cluster.addresses[fourth].as_str()));
    let output = cluster.cli(&["server", "members"]);
    assert!(output.status.success());
    // Each server says its version, the other servers' asked of them.
    let members = cluster.client.members().await.unwrap();
    assert!(members.iter().all(|member| member.version.as_deref() == Some(env!("CARGO_PKG_VERSION"))), "{members:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.lines().next().is_some_and(|header| header.trim_end().ends_with("Version")), "{table}");
    assert_eq!(table.matches(env!("CARGO_PKG_VERSION")).count(), 3, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_refuse_bad_input_and_honour_check_and_set() {
    let cluster = Cluster::start().await;
    let output = cluster.cli(&["var", "put", "site/daq", "version=1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let variable = cluster.client.variable("site/daq").await.unwrap();
    // A stale check index is refused and changes nothing.
    let output = cluster.cli(&["var", "put", "site/daq", "version=2", "--check-index", "1"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("read it again"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let index = variable.modify_index.to_string();
    let output = cluster.cli(&["var", "put", "site/daq", "version=2", "--check-index", &index]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for bad in [vec!["var", "put", "/bad//path", "a=b"], vec!["var", "put", "ok", "novalue"]] {
        let output = cluster.cli(&bad);
        assert!(!output.status.success(), "{bad:?} accepted");
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
    let output = cluster.cli(&["var", "get", "site/daq", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["items"]["version"], "2");
}

/// Three network namespaces on a bridge, one per server: cutting a
/// namespace's link partitions its server from everyone else.
struct NetnsLab {
    tag: String,
    namespaces: Vec<String>,
}

impl NetnsLab {
    const SUBNET: &'static str = "10.213.77";

    /// Builds the lab (as root, with `ip`), or says why it cannot run here.
    fn create(num: usize) -> Result<NetnsLab, String> {
        let tag = format!("dr{}", std::process::id() % 100_000);
        let lab = NetnsLab { tag: tag.clone(), namespaces: (0..num).map(|index| format!("{tag}s{index}")).collect() };
        let bridge = lab.bridge();
        let mut commands: Vec<Vec<String>> = vec![
            vec!["link".into(), "add".into(), bridge.clone(), "type".into(), "bridge".into()],
            vec!["addr".into(), "add".into(), format!("{}.1/24", Self::SUBNET), "dev".into(), bridge.clone()],
            vec!["link".into(), "set".into(), bridge.clone(), "up".into()],
        ];
        for (index, namespace) in lab.namespaces.iter().enumerate() {
            let veth = lab.veth(index);
            let inner = format!("{tag}i{index}");
            commands.extend([
                vec!["netns".into(), "add".into(), namespace.clone()],
                vec![
                    "link".into(),
                    "add".into(),
                    veth.clone(),
                    "type".into(),
                    "veth".into(),
                    "peer".into(),
                    "name".into(),
                    inner.clone(),
                ],
                vec!["link".into(), "set".into(), inner.clone(), "netns".into(), namespace.clone()],
                vec!["link".into(), "set".into(), veth.clone(), "master".into(), bridge.clone(), "up".into()],
                vec![
                    "-n".into(),
                    namespace.clone(),
                    "addr".into(),
                    "add".into(),
                    format!("{}/24", lab.ip(index)),
                    "dev".into(),
                    inner.clone(),
                ],
                vec!["-n".into(), namespace.clone(), "link".into(), "set".into(), inner, "up".into()],
                vec!["-n".into(), namespace.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
            ]);
        }
        for command in commands {
            let output = std::process::Command::new("ip").args(&command).output().map_err(|error| error.to_string())?;
            if !output.status.success() {
                return Err(format!(
                    "`ip {}` failed: {}",
                    command.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
        Ok(lab)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn veth(&self, index: usize) -> String {
        format!("{}v{index}", self.tag)
    }

    fn ip(&self, index: usize) -> String {
        format!("{}.{}", Self::SUBNET, 11 + index)
    }

    fn address(&self, index: usize) -> String {
        format!("{}:4747", self.ip(index))
    }

    fn set_link(&self, index: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        let status = std::process::Command::new("ip").args(["link", "set", &self.veth(index), state]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = std::process::Command::new("ip").args(["netns", "del", namespace]).output();
        }
        for index in 0..self.namespaces.len() {
            let _ = std::process::Command::new("ip").args(["link", "del", &self.veth(index)]).output();
        }
        let _ = std::process::Command::new("ip").args(["link", "del", &self.bridge()]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_partitioned_into_a_minority_stops_committing_and_the_majority_goes_on() {
    use crate::harness::{Process, drover_binary, kill_processes_under};

    if !needs::are_met([needs::root("making network namespaces"), needs::program("ip", "iproute2")]) {
        return;
    }
    let lab = match NetnsLab::create(3) {
        Ok(lab) => lab,
        Err(reason) => {
            return needs::unmet(Missing::privilege(format!(
                "the partition test's network namespaces failed: {reason}"
            )));
        }
    };
    let dir = tempfile::Builder::new().prefix("drover-netns-").tempdir().unwrap();
    let addresses: Vec<String> = (0..3).map(|index| lab.address(index)).collect();
    let all = addresses.join(",");
    let mut servers: Vec<Process> = (0..3)
        .map(|index| {
            let mut command = std::process::Command::new("ip");
            command.args(["netns", "exec", &lab.namespaces[index]]).arg(drover_binary());
            command.args([
                "server",
                "--insecure",
                "--bind",
                &addresses[index],
                "--bootstrap-expect",
                "3",
                "--join",
                &all,
            ]);
            command.args(["--heartbeat-interval", "1s", "--heartbeat-ttl", "4s", "--data-dir"]);
            command.arg(dir.path().join(format!("server{index}")));
            Process::spawn_for_test(
                &format!("server{index}"),
                &mut command,
                dir.path().join(format!("server{index}.log")),
            )
        })
        .collect();
    let logs = || {
        (0..3)
            .map(|index| std::fs::read_to_string(dir.path().join(format!("server{index}.log"))).unwrap_or_default())
            .chain([std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()])
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    let client = Client::new(&all);
    wait_until("a leader", Duration::from_secs(60), || async { client.jobs().await.is_ok() }, logs).await;
    let items = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    client.put_variable("before", &items, None).await.unwrap();

    let leader_address = client.leader().await.unwrap().leader_address.unwrap();
    let leader = addresses.iter().position(|address| *address == leader_address).unwrap();
    // The agent's session goes to the leader, which is about to vanish
    // silently (no RST, no FIN): the agent must notice the silence and move
    // to the majority, where the job below runs on it.
    let mut agent_servers: Vec<String> = vec![addresses[leader].clone()];
    agent_servers.extend((0..3).filter(|index| *index != leader).map(|index| addresses[index].clone()));
    let mut agent_command = std::process::Command::new(drover_binary());
    agent_command.args(["agent", "--servers", &agent_servers.join(","), "--name", "n1", "--data-dir"]);
    agent_command.arg(dir.path().join("agent"));
    let _agent = Process::spawn_for_test("agent", &mut agent_command, dir.path().join("agent.log"));
    wait_until(
        "the agent to register",
        Duration::from_secs(60),
        || async { client.nodes().await.is_ok_and(|nodes| nodes.iter().any(|node| node.status == "ready")) },
        logs,
    )
    .await;
    lab.set_link(leader, false);
    let cut_at = Instant::now();

    // The minority: a write sent to the old leader from inside its
    // namespace is never acknowledged.
    let minority_write = std::process::Command::new("timeout")
        .arg("10")
        .args(["ip", "netns", "exec", &lab.namespaces[leader]])
        .arg(drover_binary())
        .args(["var", "put", "minority", "k=v", "--address", &addresses[leader]])
        .output()
        .unwrap();
    assert!(!minority_write.status.success(), "the minority acknowledged a write");

    // The majority elects a leader and keeps scheduling.
    let majority: Vec<String> = (0..3).filter(|index| *index != leader).map(|index| addresses[index].clone()).collect();
    let majority_client = Client::new(&majority.join(","));
    wait_until(
        "the majority to accept writes",
        Duration::from_secs(30),
        || async { majority_client.put_variable("during", &items, None).await.is_ok() },
        logs,
    )
    .await;
    eprintln!("majority accepted writes {:?} after the cut", cut_at.elapsed());
    let job_file = dir.path().join("web.nomad.hcl");
    std::fs::write(&job_file, SERVICE_JOB.replace("count = 2", "count = 1")).unwrap();
    let output = std::process::Command::new(drover_binary())
        .args(["job", "run", "--detach", job_file.to_str().unwrap(), "--address", &majority.join(",")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    wait_until(
        "the job to run under the majority",
        Duration::from_secs(60),
        || async {
            majority_client.job_status("web", None).await.is_ok_and(|(status, _)| {
                status.allocs.iter().any(|alloc| alloc.client_status == AllocClientStatus::Running)
            })
        },
        logs,
    )
    .await;

    // Heal: every server converges on the majority's history.
    lab.set_link(leader, true);
    for (index, address) in addresses.iter().enumerate() {
        let server = Client::new(address).with_stale(true);
        wait_until(
            &format!("server {index} to converge"),
            Duration::from_secs(60),
            || async {
                server.variable("during").await.is_ok()
                    && server.variable("before").await.is_ok()
                    && server.job_status("web", None).await.is_ok()
            },
            logs,
        )
        .await;
        assert!(server.variable("minority").await.is_err(), "server {index} kept the minority's write");
    }
    for server in &mut servers {
        server.kill9();
    }
    kill_processes_under(dir.path());
}

/// The server an agent's session is on, from the agent's last "connected
/// to server" line.
fn connected_server(agent_output: &str) -> Option<String> {
    agent_output
        .lines()
        .rev()
        .find(|line| line.contains("connected to server"))
        .and_then(|line| line.split("server=").nth(1))
        .map(|address| address.trim().to_owned())
}

/// A server stopped on purpose (SIGTERM, as systemd stops it) says so to
/// its agents, which move to another server without a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_on_purpose_hands_its_agents_over_without_a_warning() {
    let mut cluster = Cluster::start_servers(3).await;
    let agent = cluster.start_agent("n1", &[]).await;
    let first = connected_server(&cluster.agents[agent].output()).expect("the agent says where it connected");
    let index = cluster.addresses.iter().position(|address| *address == first).expect("one of the servers");

    cluster.servers[index].signal(nix::sys::signal::Signal::SIGTERM);
    assert!(cluster.servers[index].wait_exit(Duration::from_secs(30)).is_some(), "the server stops");
    cluster
        .wait_for("the agent on another server", || async {
            connected_server(&cluster.agents[agent].output()).is_some_and(|now| now != first)
        })
        .await;

    let output = cluster.agents[agent].output();
    assert!(output.contains("the server is stopping; moving to another"), "{output}");
    let warnings: Vec<&str> = output.lines().filter(|line| line.contains("WARN")).collect();
    assert!(warnings.is_empty(), "a planned stop warns nobody: {warnings:?}");
}
