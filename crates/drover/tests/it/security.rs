//! Secure by default, with real TLS: a server that makes its CA, agents
//! that enrol with join tokens, tokens scoped by host group, revocation,
//! the audit log, and the refusals (plain HTTP, wrong CA, used-up,
//! tampered and out-of-scope join tokens, revoked tokens and nodes); and a
//! three-server cluster on one CA that keeps its ACLs and audit across a
//! leader's kill -9.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover_client::{Client, Credentials};
use drover_proto::api::{
    DrainRequest, ExecEvent, ExecRequest, ExecStatus, JoinTokenCreateRequest, LogPage, LogQuery, TokenCreateRequest,
};
use futures_util::StreamExt;

use crate::harness::{Process, drover_binary, free_port, kill_processes_under, wait_until};

mod ca_rotation;
mod own_ca;

/// A policy for the batch team: batch nodes and their logs, every job.
const BATCH_OPS: &str = r#"
description = "batch operators"
node  { hostgroup = "bi/batch/**"  capabilities = ["read", "update", "drain", "exec"] }
job   { name = "*"                 capabilities = ["read", "submit", "stop"] }
logs  { hostgroup = "bi/batch/**"  capabilities = ["read"] }
site  { capabilities = ["read"] }
"#;

/// A system job that prints one line on every node.
const SHOUT: &str = r#"
job "shout" {
  type = "system"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo shout-from-${node.unique.name}; sleep 300"]
      }
    }
  }
}
"#;

/// Secure servers (and their agents) under one temporary directory.
struct SecureCluster {
    dir: tempfile::TempDir,
    addresses: Vec<String>,
    servers: Vec<Process>,
    agents: Vec<Process>,
    /// The CA the servers use (a server's DATA_DIR/tls/ca.pem).
    ca: PathBuf,
}

impl SecureCluster {
    /// One secure server that makes its own CA.
    async fn single() -> SecureCluster {
        SecureCluster::single_with(&[]).await
    }

    /// [`SecureCluster::single`] with extra server flags.
    async fn single_with(extra: &[&str]) -> SecureCluster {
        let dir = tempfile::Builder::new().prefix("drover-it-secure-").tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut cluster = SecureCluster {
            ca: dir.path().join("server0/tls/ca.pem"),
            dir,
            addresses: vec![address],
            servers: Vec::new(),
            agents: Vec::new(),
        };
        cluster.servers.push(cluster.spawn_server(0, extra));
        cluster.wait_for_server().await;
        cluster
    }

    /// Three secure servers on a CA made with `drover operator tls ca create`.
    async fn three() -> SecureCluster {
        let dir = tempfile::Builder::new().prefix("drover-it-secure-").tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let made = Command::new(drover_binary())
            .args(["operator", "tls", "ca", "create", "--out"])
            .arg(&ca_dir)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let addresses: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let mut cluster =
            SecureCluster { ca: ca_dir.join("ca.pem"), dir, addresses, servers: Vec::new(), agents: Vec::new() };
        for index in 0..3 {
            let process = cluster.spawn_server(index, &[]);
            cluster.servers.push(process);
        }
        cluster.wait_for_server().await;
        cluster
    }

    fn spawn_server(&self, index: usize, extra: &[&str]) -> Process {
        let name = format!("server{index}");
        let mut command = Command::new(drover_binary());
        command
            .args(["server", "--bind", &self.addresses[index], "--data-dir"])
            .arg(self.dir.path().join(&name))
            .args(["--heartbeat-interval", "1s", "--heartbeat-ttl", "4s", "--min-free-disk-mb", "0"])
            .args(extra);
        if self.addresses.len() > 1 {
            let ca_dir = self.dir.path().join("ca");
            command
                .args(["--bootstrap-expect", "3", "--join", &self.addresses.join(",")])
                .arg("--tls-ca-cert")
                .arg(ca_dir.join("ca.pem"))
                .arg("--tls-ca-key")
                .arg(ca_dir.join("ca-key.pem"));
        }
        Process::spawn_for_test(&name, &mut command, self.dir.path().join(format!("{name}.log")))
    }

    fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.ca).unwrap()
    }

    /// A client with the cluster CA and `token`.
    fn client(&self, token: Option<&str>) -> Client {
        let credentials = Credentials { ca_pem: Some(self.ca_pem()), token: token.map(str::to_owned) };
        Client::secured(&self.addresses.join(","), &credentials).unwrap()
    }

    async fn wait_for_server(&self) {
        wait_until(
            "a secure server to answer",
            Duration::from_secs(60),
            || async {
                self.ca.exists() && self.client(None).leader().await.is_ok_and(|info| info.leader_id.is_some())
            },
            || self.logs(),
        )
        .await;
    }

    /// The CLI with the cluster's address, CA and `token`.
    fn cli(&self, token: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(drover_binary());
        command.args(args).env("DROVER_ADDR", self.addresses.join(",")).env("DROVER_CACERT", &self.ca);
        command.env_remove("DROVER_TOKEN");
        if let Some(token) = token {
            command.env("DROVER_TOKEN", token);
        }
        command.output().unwrap()
    }

    fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("agents").join(name)
    }

    /// Starts an agent with a join token (through the environment).
    fn spawn_agent(&mut self, name: &str, hostgroup: &str, join_token: Option<&str>) -> usize {
        let mut command = self.agent_command(name, hostgroup, join_token);
        self.spawn_agent_command(name, &mut command)
    }

    /// The command line of an agent with a join token (through the environment).
    fn agent_command(&self, name: &str, hostgroup: &str, join_token: Option<&str>) -> Command {
        let mut command = Command::new(drover_binary());
        command.args(["agent", "--servers", &self.addresses.join(","), "--data-dir"]).arg(self.agent_dir(name)).args([
            "--name",
            name,
            "--hostgroup",
            hostgroup,
        ]);
        command.env_remove("DROVER_JOIN_TOKEN");
        if let Some(token) = join_token {
            command.env("DROVER_JOIN_TOKEN", token);
        }
        command
    }

    /// Starts agent `name` with `command`; returns its index in `agents`.
    fn spawn_agent_command(&mut self, name: &str, command: &mut Command) -> usize {
        let log = self.dir.path().join(format!("agent-{name}-{}.log", self.agents.len()));
        self.agents.push(Process::spawn_for_test(&format!("agent {name}"), command, log));
        self.agents.len() - 1
    }

    async fn wait_for_node(&self, management: &Client, name: &str) {
        wait_until(
            &format!("node {name} to be ready"),
            Duration::from_secs(60),
            || async {
                management
                    .nodes()
                    .await
                    .is_ok_and(|nodes| nodes.iter().any(|node| node.name == name && node.status == "ready"))
            },
            || self.logs(),
        )
        .await;
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for process in self.servers.iter().chain(&self.agents) {
            let output = process.output();
            let lines: Vec<&str> = output.lines().collect();
            text.push_str(&format!(
                "--- {} ---\n{}\n",
                process.name,
                lines[lines.len().saturating_sub(40)..].join("\n")
            ));
        }
        text
    }
}

impl Drop for SecureCluster {
    fn drop(&mut self) {
        for process in self.agents.iter_mut().chain(self.servers.iter_mut()) {
            process.kill9();
        }
        kill_processes_under(self.dir.path());
    }
}

/// Bootstraps the ACL system; returns the management secret.
async fn bootstrap(cluster: &SecureCluster) -> String {
    let created = cluster.client(None).acl_bootstrap().await.unwrap();
    assert!(created.token.management);
    created.secret
}

async fn join_token(client: &Client, hostgroup: &str, uses: Option<u32>) -> String {
    let request = JoinTokenCreateRequest {
        hostgroups: vec![hostgroup.to_owned()],
        ttl: Some("1h".to_owned()),
        uses,
        server: false,
    };
    client.create_join_token(&request).await.unwrap().token
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Waits for a process to exit and returns its log.
fn exited_with(process: &mut Process, within: Duration) -> String {
    let status = process.wait_exit(within);
    assert!(
        status.is_some_and(|status| !status.success()),
        "{} should have stopped:\n{}",
        process.name,
        process.output()
    );
    process.output()
}

fn exec_request(nodes: &[&str], user: Option<&str>) -> ExecRequest {
    ExecRequest {
        nodes: nodes.iter().map(|node| (*node).to_owned()).collect(),
        command: vec!["id -un".to_owned()],
        timeout_ms: 20_000,
        user: user.map(str::to_owned),
        max_output_bytes: 4096,
        ..Default::default()
    }
}

async fn exec_results(client: &Client, request: &ExecRequest) -> Vec<(String, ExecStatus, String)> {
    let mut events = client.exec(request).await.unwrap();
    let mut results = Vec::new();
    while let Some(event) = events.next().await {
        if let ExecEvent::Result(result) = event.unwrap() {
            results.push((result.node, result.status, result.stdout.trim().to_owned()));
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results
}

fn plain_http_answer(address: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_server_enrols_agents_scopes_tokens_and_audits_every_action() {
    let mut cluster = SecureCluster::single().await;
    let address = cluster.addresses[0].clone();

    // Secure by default: HTTPS only, the CA and key files private.
    let answer = plain_http_answer(&address);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("speaks HTTPS only"), "{answer}");
    let tls = cluster.dir.path().join("server0/tls");
    for (file, mode) in [("ca-key.pem", 0o600), ("server-key.pem", 0o600)] {
        let metadata = std::fs::metadata(tls.join(file)).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777, mode, "{file}");
    }
    // Without the cluster CA the server is not trusted; without a token, nothing is allowed.
    let untrusted = Client::new(&format!("https://{address}"));
    assert!(untrusted.nodes().await.is_err());
    let anonymous = cluster.cli(None, &["node", "list"]);
    assert!(
        !anonymous.status.success() && text(&anonymous).contains("anonymous may not do this"),
        "{}",
        text(&anonymous)
    );

    let root_secret = bootstrap(&cluster).await;
    let again = cluster.cli(None, &["acl", "bootstrap"]);
    assert!(text(&again).contains("already bootstrapped"), "{}", text(&again));
    let root = cluster.client(Some(&root_secret));

    // Enrolment: two batch nodes on a two-use token, one belle2 node on its own.
    let batch_token = join_token(&root, "bi/batch/**", Some(2)).await;
    let belle_token = join_token(&root, "belle2/**", None).await;
    cluster.spawn_agent("batch01", "bi/batch/a", Some(&batch_token));
    cluster.spawn_agent("batch02", "bi/batch/b", Some(&batch_token));
    cluster.spawn_agent("belle01", "belle2/x", Some(&belle_token));
    for name in ["batch01", "batch02", "belle01"] {
        cluster.wait_for_node(&root, name).await;
    }
    let key = cluster.agent_dir("batch01").join("tls/node-key.pem");
    let metadata = std::fs::metadata(&key).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777, 0o600);

    // Join tokens refused: used up, for other host groups, tampered, of another cluster.
    let used_up = cluster.spawn_agent("batch03", "bi/batch/c", Some(&batch_token));
    assert!(exited_with(&mut cluster.agents[used_up], Duration::from_secs(30)).contains("used up"));
    let other_group = cluster.spawn_agent("sneaky", "belle2/x", Some(&join_token(&root, "bi/batch/**", None).await));
    assert!(
        exited_with(&mut cluster.agents[other_group], Duration::from_secs(30))
            .contains("allows host groups bi/batch/** only")
    );
    let mut tampered = belle_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let forged = cluster.spawn_agent("forged", "belle2/x", Some(&tampered));
    assert!(exited_with(&mut cluster.agents[forged], Duration::from_secs(30)).contains("not known to this cluster"));
    let (_, secret) = belle_token.rsplit_once('.').unwrap();
    let foreign = format!("drover1.{}.{secret}", "ab".repeat(32));
    let wrong_ca = cluster.spawn_agent("foreign", "belle2/x", Some(&foreign));
    assert!(
        exited_with(&mut cluster.agents[wrong_ca], Duration::from_secs(90)).contains("does not match the join token")
    );
    // An agent without a certificate cannot open a session: its attempts
    // (logged at debug) fail, twice, and no node appears.
    let mut command = cluster.agent_command("bare", "bi/batch/a", None);
    command.env("DROVER_LOG", "info,drover_agent::session=debug");
    let bare = cluster.spawn_agent_command("bare", &mut command);
    wait_until(
        "two refused connection attempts of the agent without a certificate",
        Duration::from_secs(30),
        || async { cluster.agents[bare].output().matches("cannot connect").count() >= 2 },
        || cluster.logs(),
    )
    .await;
    assert!(root.nodes().await.unwrap().iter().all(|node| node.name != "bare"));
    cluster.agents[bare].kill9();

    // A token scoped to bi/batch/** sees, runs on and drains only batch nodes, and reads only their logs.
    let policy_file = cluster.dir.path().join("batch-ops.hcl");
    std::fs::write(&policy_file, BATCH_OPS).unwrap();
    let applied =
        cluster.cli(Some(&root_secret), &["acl", "policy", "apply", "batch-ops", policy_file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let alice_token = root
        .create_acl_token(&TokenCreateRequest {
            name: "alice".to_owned(),
            policies: vec!["batch-ops".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let alice = cluster.client(Some(&alice_token.secret));
    let mut seen: Vec<String> = alice.nodes().await.unwrap().into_iter().map(|node| node.name).collect();
    seen.sort();
    assert_eq!(seen, ["batch01", "batch02"]);
    assert!(alice.node("belle01").await.is_err());

    let results = exec_results(&alice, &exec_request(&["batch01", "belle01"], Some("nobody"))).await;
    assert_eq!(results[0].0, "batch01");
    assert_eq!((results[0].1, results[0].2.as_str()), (ExecStatus::Success, "nobody"));
    assert_eq!((results[1].0.as_str(), results[1].1), ("belle01", ExecStatus::Denied));
    let mut all_or_nothing = exec_request(&["batch01", "belle01"], Some("nobody"));
    all_or_nothing.all_or_nothing = true;
    let Err(refused) = alice.exec(&all_or_nothing).await else { panic!("refused") };
    assert!(refused.to_string().contains("nothing was run"), "{refused}");
    // Without -u a command runs as the agent's exec user (nobody: the agent runs as root) …
    let results = exec_results(&alice, &exec_request(&["batch01"], None)).await;
    assert_eq!((results[0].1, results[0].2.as_str()), (ExecStatus::Success, "nobody"));
    // … and root needs exec-as-root, whether asked by name or by the agent's default.
    let Err(as_root) = alice.exec(&exec_request(&["batch01"], Some("root"))).await else { panic!("refused") };
    assert!(as_root.to_string().contains("exec-as-root"), "{as_root}");
    let results = exec_results(&root, &exec_request(&["batch01"], Some("root"))).await;
    assert_eq!((results[0].1, results[0].2.as_str()), (ExecStatus::Success, "root"));
    let drain = alice.drain_node("belle01", &DrainRequest::default()).await.expect_err("refused");
    assert!(drain.to_string().contains(r#"node { hostgroup = "belle2/x" capabilities = ["drain"] }"#), "{drain}");

    let job_file = cluster.dir.path().join("shout.nomad.hcl");
    std::fs::write(&job_file, SHOUT).unwrap();
    let ran = cluster.cli(Some(&alice_token.secret), &["job", "run", "--detach", job_file.to_str().unwrap()]);
    assert!(ran.status.success(), "{}", text(&ran));
    let query = LogQuery { q: "shout-from".to_owned(), ..Default::default() };
    wait_until(
        "every node's line to be indexed",
        Duration::from_secs(60),
        || async { root.search_logs(&query, &LogPage::default()).await.is_ok_and(|page| page.total_matching == 3) },
        || cluster.logs(),
    )
    .await;
    let page = alice.search_logs(&query, &LogPage::default()).await.unwrap();
    assert_eq!(page.total_matching, 2, "no count of the lines alice may not read");
    assert!(page.records.iter().all(|record| record.node.starts_with("batch")), "{:?}", page.records);
    let belle_only =
        LogQuery { q: "shout-from".to_owned(), filter: Some("name == \"belle01\"".to_owned()), ..Default::default() };
    assert_eq!(alice.search_logs(&belle_only, &LogPage::default()).await.unwrap().total_matching, 0);

    // A join token cannot take over an enrolled name (a second machine calling itself batch01).
    let impostor_token = join_token(&root, "bi/batch/**", None).await;
    let mut command = Command::new(drover_binary());
    command
        .args(["agent", "--servers", &address, "--data-dir"])
        .arg(cluster.dir.path().join("impostor"))
        .args(["--name", "batch01", "--hostgroup", "bi/batch/a"])
        .env("DROVER_JOIN_TOKEN", &impostor_token);
    let mut impostor = Process::spawn_for_test("impostor", &mut command, cluster.dir.path().join("impostor.log"));
    assert!(exited_with(&mut impostor, Duration::from_secs(30)).contains("enrolled already"));
    // The anonymous policy grants what it says, to callers without a token.
    let anonymous_file = cluster.dir.path().join("anonymous.hcl");
    std::fs::write(&anonymous_file, "node { hostgroup = \"belle2/**\"  capabilities = [\"read\"] }\n").unwrap();
    let applied =
        cluster.cli(Some(&root_secret), &["acl", "policy", "apply", "anonymous", anonymous_file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let seen: Vec<String> = cluster.client(None).nodes().await.unwrap().into_iter().map(|node| node.name).collect();
    assert_eq!(seen, ["belle01"]);

    // Revocation: alice's token, then node belle01 (its session ends, its certificate is refused).
    root.revoke_acl_token(&alice_token.token.accessor).await.unwrap();
    let revoked = alice.nodes().await.expect_err("revoked");
    assert!(revoked.to_string().contains("not known to this cluster"), "{revoked}");
    let revoke = cluster.cli(Some(&root_secret), &["node", "revoke", "belle01"]);
    assert!(revoke.status.success(), "{}", text(&revoke));
    wait_until(
        "belle01 to be down",
        Duration::from_secs(60),
        || async {
            root.nodes()
                .await
                .is_ok_and(|nodes| nodes.iter().any(|node| node.name == "belle01" && node.status != "ready"))
        },
        || cluster.logs(),
    )
    .await;
    let belle_index = cluster.agents.iter().position(|agent| agent.name == "agent belle01").unwrap();
    cluster.agents[belle_index].kill9();
    let restarted = cluster.spawn_agent("belle01", "belle2/x", None);
    wait_until(
        "belle01's restart to be refused",
        Duration::from_secs(30),
        || async { cluster.agents[restarted].output().contains("was revoked") },
        || cluster.logs(),
    )
    .await;

    // The audit log names who did each thing, refusals included.
    let audit = cluster.cli(Some(&root_secret), &["audit", "--json"]);
    assert!(audit.status.success(), "{}", text(&audit));
    let events: Vec<drover_types::acl::AuditEvent> = serde_json::from_slice(&audit.stdout).unwrap();
    let by_alice: Vec<&drover_types::acl::AuditEvent> = events.iter().filter(|event| event.name == "alice").collect();
    let has = |action: &str, outcome: &str| {
        by_alice.iter().any(|event| event.action == action && event.outcome.as_str() == outcome)
            && by_alice.iter().all(|event| event.accessor.as_deref() == Some(alice_token.token.accessor.as_str()))
    };
    assert!(
        has("exec.run", "ok")
            && has("exec.run", "refused")
            && has("node.drain", "refused")
            && has("job.register", "ok"),
        "{by_alice:#?}"
    );
    // The outcome of each exec, node by node.
    assert!(
        by_alice.iter().any(|event| event.action == "exec.result"
            && event.details.contains("1 success")
            && event.details.contains("1 denied")
            && event.details.contains("not successful: belle01")),
        "{by_alice:#?}"
    );
    assert!(events.iter().any(|event| event.action == "node.enroll" && event.outcome.as_str() == "refused"));
    assert!(events.iter().any(|event| event.action == "node.session"
        && event.target == "belle01"
        && event.outcome.as_str() == "refused"));
    assert!(
        events.iter().any(|event| event.name == "unknown" && event.outcome.as_str() == "refused"),
        "the revoked token's request"
    );
    let indexed = root
        .search_logs(
            &LogQuery { q: "source:audit action:exec.run".to_owned(), ..Default::default() },
            &LogPage::default(),
        )
        .await
        .unwrap();
    assert!(indexed.total_matching >= 2, "audit events are searchable like any line");
    // Secrets never reach the audit log or the server's log.
    let everything = format!("{}{}", String::from_utf8_lossy(&audit.stdout), cluster.servers[0].output());
    for secret in [&root_secret, &alice_token.secret] {
        assert!(!everything.contains(secret.as_str()));
    }

    // A key file others can read stops the server at start, naming the file.
    cluster.servers[0].kill9();
    let ca_key = cluster.dir.path().join("server0/tls/ca-key.pem");
    std::fs::set_permissions(&ca_key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut restarted = cluster.spawn_server(0, &[]);
    let output = exited_with(&mut restarted, Duration::from_secs(30));
    assert!(output.contains("ca-key.pem") && output.contains("chmod 600"), "{output}");
}

/// A snapshot restore on a secure server is one audit event, committed
/// with the restore itself, that says by whom and at which index; a
/// restore without the operator capability is refused and audited so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restore_is_audited_once_with_its_index() {
    let cluster = SecureCluster::single().await;
    let root = bootstrap(&cluster).await;
    let file = cluster.dir.path().join("state.snap");
    let saved = cluster.cli(Some(&root), &["operator", "snapshot", "save", file.to_str().unwrap()]);
    assert!(saved.status.success(), "{}", text(&saved));
    let restored = cluster.cli(Some(&root), &["operator", "snapshot", "restore", file.to_str().unwrap()]);
    assert!(restored.status.success(), "{}\n{}", text(&restored), cluster.logs());

    let policy = cluster.dir.path().join("batch-ops.hcl");
    std::fs::write(&policy, BATCH_OPS).unwrap();
    let applied = cluster.cli(Some(&root), &["acl", "policy", "apply", "batch-ops", policy.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let request =
        TokenCreateRequest { name: "alice".to_owned(), policies: vec!["batch-ops".to_owned()], ..Default::default() };
    let alice_secret = cluster.client(Some(&root)).create_acl_token(&request).await.unwrap().secret;
    let refused = cluster.cli(Some(&alice_secret), &["operator", "snapshot", "restore", file.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", text(&refused));

    // A refusal's event is committed after its answer: wait for it.
    let query =
        drover_proto::api::AuditQuery { kind: Some("operator.snapshot_restore".to_owned()), ..Default::default() };
    let root_client = cluster.client(Some(&root));
    wait_until(
        "the refused restore in the audit log",
        Duration::from_secs(30),
        || async {
            root_client.audit(&query).await.is_ok_and(|events| {
                events.iter().any(|event| matches!(event.outcome, drover_types::acl::AuditOutcome::Refused(_)))
            })
        },
        || cluster.logs(),
    )
    .await;
    let events = root_client.audit(&query).await.unwrap();
    let summary: Vec<(String, String, String)> =
        events.iter().map(|event| (event.name.clone(), event.target.clone(), format!("{:?}", event.outcome))).collect();
    assert_eq!(events.len(), 2, "one event per restore asked for: {summary:#?}");
    assert_eq!(events[0].outcome, drover_types::acl::AuditOutcome::Ok, "{summary:#?}");
    assert!(events[0].target.starts_with("at index "), "{summary:#?}");
    assert!(events[0].request_id != 0, "committed with the restore: {summary:#?}");
    assert_eq!(events[1].name, "alice", "{summary:#?}");
    assert!(matches!(events[1].outcome, drover_types::acl::AuditOutcome::Refused(_)), "{summary:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_secure_servers_on_one_ca_keep_acls_and_audit_across_a_leader_kill() {
    let mut cluster = SecureCluster::three().await;
    let root_secret = bootstrap(&cluster).await;
    let root = cluster.client(Some(&root_secret));
    let token = join_token(&root, "bi/**", None).await;
    cluster.spawn_agent("w1", "bi/batch/a", Some(&token));
    cluster.spawn_agent("g1", "bi/gpu/a", Some(&token));
    cluster.wait_for_node(&root, "w1").await;
    cluster.wait_for_node(&root, "g1").await;
    let policy_file = cluster.dir.path().join("batch-ops.hcl");
    std::fs::write(&policy_file, BATCH_OPS).unwrap();
    assert!(
        cluster
            .cli(Some(&root_secret), &["acl", "policy", "apply", "batch-ops", policy_file.to_str().unwrap()])
            .status
            .success()
    );
    let alice_token = root
        .create_acl_token(&TokenCreateRequest {
            name: "alice".to_owned(),
            policies: vec!["batch-ops".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let alice = cluster.client(Some(&alice_token.secret));
    assert_eq!(exec_results(&alice, &exec_request(&["w1", "g1"], Some("nobody"))).await[0].1, ExecStatus::Denied);

    let leader = root.leader().await.unwrap().leader_address.unwrap();
    let index = cluster.addresses.iter().position(|address| *address == leader).unwrap();
    cluster.servers[index].kill9();
    wait_until(
        "a new leader",
        Duration::from_secs(60),
        || async { root.leader().await.is_ok_and(|info| info.leader_address.is_some_and(|address| address != leader)) },
        || cluster.logs(),
    )
    .await;
    // Every server enforces the same ACLs after the leader change (once
    // w1's agent has moved to a live server) …
    let request = exec_request(&["w1", "g1"], Some("nobody"));
    wait_until(
        "w1 to run alice's command through a live server",
        Duration::from_secs(60),
        || async {
            let results = exec_results(&alice, &request).await;
            let statuses: Vec<(&str, ExecStatus)> =
                results.iter().map(|(node, status, _)| (node.as_str(), *status)).collect();
            assert_eq!(statuses[0], ("g1", ExecStatus::Denied));
            statuses[1] == ("w1", ExecStatus::Success)
        },
        || cluster.logs(),
    )
    .await;
    // … and the audit log keeps what happened before and after it (an
    // event that could not be committed during the election is committed
    // after it: nothing acknowledged is lost).
    wait_until(
        "alice's commands before and after the leader change in the audit log",
        Duration::from_secs(30),
        || async {
            let query = drover_proto::api::AuditQuery { by: Some("alice".to_owned()), ..Default::default() };
            root.audit(&query)
                .await
                .is_ok_and(|events| events.iter().filter(|event| event.action == "exec.run").count() >= 2)
        },
        || cluster.logs(),
    )
    .await;
    // Server-to-server traffic is mutual TLS: a client certificate of another CA is refused.
    let other = Command::new(drover_binary())
        .args(["operator", "tls", "ca", "create", "--out"])
        .arg(cluster.dir.path().join("other"))
        .output()
        .unwrap();
    assert!(other.status.success());
    let stranger_dir = cluster.dir.path().join("stranger");
    let stranger_address = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(drover_binary());
    command
        .args(["server", "--bind", &stranger_address, "--data-dir"])
        .arg(&stranger_dir)
        .args(["--join", &cluster.addresses.join(","), "--tls-ca-cert"])
        .arg(cluster.dir.path().join("other/ca.pem"))
        .arg("--tls-ca-key")
        .arg(cluster.dir.path().join("other/ca-key.pem"));
    let stranger = Process::spawn_for_test("stranger", &mut command, cluster.dir.path().join("stranger.log"));
    cluster.servers.push(stranger);
    // Its first attempt to join through every server has failed …
    let stranger = cluster.servers.len() - 1;
    wait_until(
        "the stranger's first attempt to join to fail",
        Duration::from_secs(60),
        || async { cluster.servers[stranger].output().contains("waiting for the other servers") },
        || cluster.logs(),
    )
    .await;
    // … and it is no member.
    let peers = cluster.cli(Some(&root_secret), &["server", "members"]);
    assert!(!text(&peers).contains(&stranger_address), "a server of another CA joined:\n{}", text(&peers));

    // A new server joins with a server join token instead of copied CA files.
    let made = cluster.cli(Some(&root_secret), &["server", "join-token", "--ttl", "10m", "--uses", "1"]);
    assert!(made.status.success(), "{}", text(&made));
    let server_token = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    assert!(server_token.starts_with("drover1."), "{server_token}");
    let agent_with_it = cluster.spawn_agent("w2", "bi/batch/b", Some(&server_token));
    assert!(
        exited_with(&mut cluster.agents[agent_with_it], Duration::from_secs(30)).contains("enrols servers, not agents")
    );
    let newcomer_address = format!("127.0.0.1:{}", free_port());
    let live: Vec<String> = cluster.addresses.iter().filter(|address| **address != leader).cloned().collect();
    let mut command = Command::new(drover_binary());
    command
        .args(["server", "--bind", &newcomer_address, "--data-dir"])
        .arg(cluster.dir.path().join("newcomer"))
        .args(["--join", &live.join(","), "--min-free-disk-mb", "0"])
        .env("DROVER_JOIN_TOKEN", &server_token);
    cluster.servers.push(Process::spawn_for_test("newcomer", &mut command, cluster.dir.path().join("newcomer.log")));
    wait_until(
        "the newcomer to be a member",
        Duration::from_secs(60),
        || async { text(&cluster.cli(Some(&root_secret), &["server", "members"])).contains(&newcomer_address) },
        || cluster.logs(),
    )
    .await;
    let fetched = std::fs::read_to_string(cluster.dir.path().join("newcomer/tls/ca.pem")).unwrap();
    assert_eq!(fetched, cluster.ca_pem(), "the newcomer has the cluster's CA");
    // The token was for one server: a second one is refused.
    let mut command = Command::new(drover_binary());
    command
        .args(["server", "--bind", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(cluster.dir.path().join("second"))
        .args(["--join", &live.join(",")])
        .env("DROVER_JOIN_TOKEN", &server_token);
    let mut second = Process::spawn_for_test("second", &mut command, cluster.dir.path().join("second.log"));
    assert!(exited_with(&mut second, Duration::from_secs(60)).contains("used up"));
}

fn serial_of(path: &Path) -> String {
    drover_tls::cert_info_pem(&std::fs::read_to_string(path).unwrap()).unwrap().serial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_renew_themselves_during_an_exec_and_a_log_stream_without_losing_anything() {
    // 30-second certificates: renewed 20 s after they are issued.
    let mut cluster = SecureCluster::single_with(&["--tls-cert-validity", "30s"]).await;
    let root_secret = bootstrap(&cluster).await;
    let root = cluster.client(Some(&root_secret));
    let token = join_token(&root, "**", None).await;
    cluster.spawn_agent("n1", "lab", Some(&token));
    cluster.wait_for_node(&root, "n1").await;
    let node_cert = cluster.agent_dir("n1").join("tls/node.pem");
    let server_cert = cluster.dir.path().join("server0/tls/server.pem");
    let (first_node_serial, first_server_serial) = (serial_of(&node_cert), serial_of(&server_cert));

    let ticker = r#"
job "ticker" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "for i in $(seq 1 30); do echo tick-$i; sleep 1; done"]
      }
    }
  }
}
"#;
    let job_file = cluster.dir.path().join("ticker.nomad.hcl");
    std::fs::write(&job_file, ticker).unwrap();
    let ran = cluster.cli(Some(&root_secret), &["job", "run", "--detach", job_file.to_str().unwrap()]);
    assert!(ran.status.success(), "{}", text(&ran));
    // A command that runs across the renewal, on the session opened before it.
    let request = ExecRequest {
        nodes: vec!["n1".to_owned()],
        command: vec!["sleep 26; echo survived".to_owned()],
        timeout_ms: 60_000,
        user: Some("nobody".to_owned()),
        max_output_bytes: 4096,
        ..Default::default()
    };
    let results = exec_results(&root, &request).await;
    assert_eq!((results[0].1, results[0].2.as_str()), (ExecStatus::Success, "survived"), "{}", cluster.logs());

    wait_until(
        "the node's and the server's certificates to be renewed",
        Duration::from_secs(30),
        || async { serial_of(&node_cert) != first_node_serial && serial_of(&server_cert) != first_server_serial },
        || cluster.logs(),
    )
    .await;
    let query = LogQuery { q: "tick-*".to_owned(), ..Default::default() };
    wait_until(
        "every line of the task's output to be indexed",
        Duration::from_secs(60),
        || async { root.search_logs(&query, &LogPage::default()).await.is_ok_and(|page| page.total_matching == 30) },
        || cluster.logs(),
    )
    .await;
    // The renewed certificate opens the next session.
    let index = cluster.agents.iter().position(|agent| agent.name == "agent n1").unwrap();
    cluster.agents[index].kill9();
    cluster.spawn_agent("n1", "lab", None);
    let results = exec_results(&root, &exec_request(&["n1"], Some("nobody"))).await;
    if results[0].1 != ExecStatus::Success {
        wait_until(
            "n1 to reconnect with its renewed certificate",
            Duration::from_secs(30),
            || async { exec_results(&root, &exec_request(&["n1"], Some("nobody"))).await[0].1 == ExecStatus::Success },
            || cluster.logs(),
        )
        .await;
    }
    assert_ne!(serial_of(&node_cert), first_node_serial, "the agent kept its renewed certificate");
}
