//! An operator's own CA, with real processes and real TLS: a CA made with
//! rcgen (as openssl, cfssl or Vault would make it) given to a server with
//! `--tls-ca-cert/--tls-ca-key`, so that the servers issue from it; and
//! certificates made entirely by that CA (`--tls-cert/--tls-key`), so that
//! the servers issue nothing and agents bring their own. Bad inputs are
//! refused at start, naming the file. And the rotation of such a cluster to
//! the operator's next CA (`rotate-ca --new-ca-cert/--new-ca-key`), whose
//! bad inputs are refused naming the file, audited, nothing changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use drover_proto::api::{AuditQuery, ExecStatus};
use drover_types::acl::AuditOutcome;

use super::{SecureCluster, bootstrap, exec_request, exec_results, exited_with, join_token, text};
use crate::harness::{Process, drover_binary, free_port, wait_until};

/// An operator's CA and the files it is kept in.
struct OperatorCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    cert: PathBuf,
    key: PathBuf,
}

fn named(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

/// Writes `text` to `path` with `mode`.
fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A CA valid from `from_days` to `to_days` from now, in `dir/NAME.pem` and `dir/NAME-key.pem`.
fn operator_ca(dir: &Path, name: &str, from_days: i64, to_days: i64) -> OperatorCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = named(&format!("Example Corp {name}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    let certificate = params.self_signed(&key).unwrap();
    let (cert, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    write(&cert, &certificate.pem(), 0o644);
    write(&key_path, &key.serialize_pem(), 0o600);
    OperatorCa { cert_pem: certificate.pem(), issuer: Issuer::new(params, key), cert, key: key_path }
}

/// A certificate of `ca` for the `drover://` URI `uri` (and loopback), in
/// `dir/NAME.pem` and `dir/NAME-key.pem`; the CA follows it in the chain.
fn issue(ca: &OperatorCa, dir: &Path, name: &str, uri: &str, server: bool) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = named(name);
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params.subject_alt_names.push(SanType::DnsName("localhost".try_into().unwrap()));
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(30);
    let certificate = params.signed_by(&key, &ca.issuer).unwrap();
    let (cert, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    write(&cert, &format!("{}{}", certificate.pem(), ca.cert_pem), 0o644);
    write(&key_path, &key.serialize_pem(), 0o600);
    (cert, key_path)
}

/// An HTTPS client presenting the certificate in `cert` (with `key`), trusting `ca_pem`.
fn client_with(cert: &Path, key: &Path, ca_pem: &str) -> reqwest::Client {
    drover_tls::install_crypto_provider();
    let identity = drover_tls::Identity::read_files(cert, key).unwrap();
    let roots = drover_tls::Roots::new(&[ca_pem.to_owned()]).unwrap();
    let config = drover_tls::client_config(roots, Some(identity)).unwrap();
    reqwest::Client::builder().tls_backend_preconfigured(config).timeout(Duration::from_secs(10)).build().unwrap()
}

/// A cluster of one server (not started yet) whose CLI trusts `ca`.
fn cluster_on(ca: &Path) -> SecureCluster {
    let dir = tempfile::Builder::new().prefix("drover-it-own-ca-").tempdir().unwrap();
    SecureCluster {
        dir,
        addresses: vec![format!("127.0.0.1:{}", free_port())],
        servers: Vec::new(),
        agents: Vec::new(),
        ca: ca.to_owned(),
    }
}

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    parts.iter().map(|part| part.as_ref().to_owned()).collect()
}

/// Starts server 0 of `cluster` with `extra` and expects it to stop at
/// once with a message holding `expected`.
fn refused_at_start(cluster: &SecureCluster, name: &str, extra: &[std::ffi::OsString], expected: &str) {
    let mut command = Command::new(drover_binary());
    command
        .args(["server", "--bind", &cluster.addresses[0], "--data-dir"])
        .arg(cluster.dir.path().join(name))
        .args(extra);
    let mut process = Process::spawn_for_test(name, &mut command, cluster.dir.path().join(format!("{name}.log")));
    let output = exited_with(&mut process, Duration::from_secs(30));
    assert!(output.contains(expected), "{name}: expected {expected:?} in:\n{output}");
}

fn spawn_server(cluster: &mut SecureCluster, extra: &[std::ffi::OsString]) {
    let mut command = Command::new(drover_binary());
    command
        .args(["server", "--bind", &cluster.addresses[0], "--data-dir"])
        .arg(cluster.dir.path().join("server0"))
        .args(["--heartbeat-interval", "1s", "--heartbeat-ttl", "4s", "--min-free-disk-mb", "0"])
        .args(extra);
    cluster.servers.push(Process::spawn_for_test("server0", &mut command, cluster.dir.path().join("server0.log")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_issues_from_the_operators_ca_and_refuses_bad_ca_files() {
    let files = tempfile::tempdir().unwrap();
    let operator = operator_ca(files.path(), "root-ca", -1, 3650);
    let mut cluster = cluster_on(&operator.cert);

    // Bad inputs, each refused at start with what is wrong and which file.
    let (leaf_cert, leaf_key) = issue(&operator, files.path(), "not-a-ca", "drover://server/9", true);
    refused_at_start(
        &cluster,
        "not-a-ca",
        &args(&[&"--tls-ca-cert", &leaf_cert, &"--tls-ca-key", &leaf_key]),
        &format!(
            "{}: the CA certificate is not valid: CN=not-a-ca is not a certificate authority (its basicConstraints do not say CA:TRUE); give the certificate of the CA, not one it issued",
            leaf_cert.display()
        ),
    );
    let other = operator_ca(files.path(), "other-ca", -1, 3650);
    refused_at_start(
        &cluster,
        "wrong-key",
        &args(&[&"--tls-ca-cert", &operator.cert, &"--tls-ca-key", &other.key]),
        &format!(
            "{}: the CA key is not valid: it does not belong to the CA certificate (their public keys differ); give the key the certificate was made for",
            other.key.display()
        ),
    );
    let expired = operator_ca(files.path(), "expired-ca", -400, -1);
    refused_at_start(
        &cluster,
        "expired",
        &args(&[&"--tls-ca-cert", &expired.cert, &"--tls-ca-key", &expired.key]),
        &format!("{}: the CA certificate is not valid: CN=Example Corp expired-ca expired on ", expired.cert.display()),
    );
    let exposed = files.path().join("exposed-key.pem");
    write(&exposed, &std::fs::read_to_string(&operator.key).unwrap(), 0o644);
    refused_at_start(
        &cluster,
        "exposed",
        &args(&[&"--tls-ca-cert", &operator.cert, &"--tls-ca-key", &exposed]),
        &format!(
            "{} can be read or written by other users (mode 644); a private key must be private: run `chmod 600 {}`",
            exposed.display(),
            exposed.display()
        ),
    );
    refused_at_start(
        &cluster,
        "endless",
        &args(&[&"--tls-ca-cert", &"/dev/zero", &"--tls-ca-key", &operator.key]),
        "/dev/zero is larger than 1 MiB, more than any certificate, key or CA bundle: check the path",
    );

    // The operator's CA: the server issues its certificate and the nodes' from it.
    spawn_server(&mut cluster, &args(&[&"--tls-ca-cert", &operator.cert, &"--tls-ca-key", &operator.key]));
    cluster.wait_for_server().await;
    let tls = cluster.dir.path().join("server0/tls");
    assert_eq!(std::fs::read_to_string(tls.join("ca.pem")).unwrap(), operator.cert_pem);
    // The CLI with the operator's CA file (--ca-cert) verifies the server.
    let bootstrapped = Command::new(drover_binary())
        .args(["acl", "bootstrap", "--address", &cluster.addresses[0], "--ca-cert"])
        .arg(&operator.cert)
        .env_remove("DROVER_CACERT")
        .env_remove("DROVER_TOKEN")
        .output()
        .unwrap();
    assert!(bootstrapped.status.success(), "{}", text(&bootstrapped));
    let secret = text(&bootstrapped)
        .lines()
        .find_map(|line| line.strip_prefix("Secret").map(|rest| rest.trim().to_owned()))
        .expect("the secret is printed");
    let management = cluster.client(Some(&secret));
    let token = join_token(&management, "bi/**", Some(1)).await;
    cluster.spawn_agent("web1", "bi/web", Some(&token));
    cluster.wait_for_node(&management, "web1").await;
    // The node's certificate chains to the operator's CA: issued by it, and
    // the chain carries it.
    let chain =
        drover_tls::certificate_pems(&std::fs::read_to_string(cluster.agent_dir("web1").join("tls/node.pem")).unwrap())
            .unwrap();
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert_eq!(chain[1], operator.cert_pem);
    let node = drover_tls::cert_info_pem(&chain[0]).unwrap();
    let (_, parsed) = x509_parser::pem::parse_x509_pem(chain[0].as_bytes()).unwrap();
    let parsed = parsed.parse_x509().unwrap();
    assert_eq!(parsed.issuer().to_string(), "CN=Example Corp root-ca");
    assert_eq!(node.role, Some(drover_tls::PeerRole::Node("web1".to_owned())));
    // `node list` shows each agent's version, `server members` each server's.
    let listed = String::from_utf8_lossy(&cluster.cli(Some(&secret), &["node", "list"]).stdout).into_owned();
    let header = listed.lines().next().unwrap_or_default().to_owned();
    let row = listed.lines().find(|line| line.contains("web1")).unwrap_or_else(|| panic!("{listed}"));
    let at = header.find("Version").unwrap_or_else(|| panic!("{listed}"));
    assert!(row[at..].starts_with(env!("CARGO_PKG_VERSION")), "{listed}");
    let members = String::from_utf8_lossy(&cluster.cli(Some(&secret), &["server", "members"]).stdout).into_owned();
    assert!(members.lines().next().is_some_and(|header| header.trim_end().ends_with("Version")), "{members}");
    assert!(members.lines().nth(1).is_some_and(|row| row.trim_end().ends_with(env!("CARGO_PKG_VERSION"))), "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_certificates_made_by_the_operators_ca_the_servers_issue_none_and_agents_bring_theirs() {
    let files = tempfile::tempdir().unwrap();
    let operator = operator_ca(files.path(), "root-ca", -1, 3650);
    let mut cluster = cluster_on(&operator.cert);
    let (server_cert, server_key) = issue(&operator, files.path(), "server-1", "drover://server/1", true);
    let (node_cert, node_key) = issue(&operator, files.path(), "web1", "drover://node/web1", false);

    // Bad inputs: a key of another certificate, a node's certificate for a
    // server, a CA key next to --tls-cert.
    refused_at_start(
        &cluster,
        "wrong-key",
        &args(&[&"--tls-cert", &server_cert, &"--tls-key", &node_key, &"--tls-ca-cert", &operator.cert]),
        &format!(
            "{}: the private key is not valid: it does not belong to the certificate CN=server-1 (their public keys differ)",
            node_key.display()
        ),
    );
    refused_at_start(
        &cluster,
        "node-cert",
        &args(&[&"--tls-cert", &node_cert, &"--tls-key", &node_key, &"--tls-ca-cert", &operator.cert]),
        &format!(
            "{}: the certificate CN=web1 names node web1, not a server: a server's certificate needs the URI name drover://server/<number>",
            node_cert.display()
        ),
    );
    refused_at_start(
        &cluster,
        "with-ca-key",
        &args(&[
            &"--tls-cert",
            &server_cert,
            &"--tls-key",
            &server_key,
            &"--tls-ca-cert",
            &operator.cert,
            &"--tls-ca-key",
            &operator.key,
        ]),
        "cannot both be set: with certificates made by your CA the servers issue none, so they need no CA key",
    );
    refused_at_start(
        &cluster,
        "no-ca",
        &args(&[&"--tls-cert", &server_cert, &"--tls-key", &server_key]),
        "needs tls.ca_cert as well: the certificate of the CA that made it",
    );

    spawn_server(
        &mut cluster,
        &args(&[&"--tls-cert", &server_cert, &"--tls-key", &server_key, &"--tls-ca-cert", &operator.cert]),
    );
    cluster.wait_for_server().await;
    let tls = cluster.dir.path().join("server0/tls");
    assert!(!tls.join("ca-key.pem").exists() && !tls.join("server.pem").exists(), "the server keeps no CA key");
    assert_eq!(std::fs::read_to_string(tls.join("ca.pem")).unwrap(), operator.cert_pem, "ca.pem for CLI users");
    let secret = bootstrap(&cluster).await;
    let management = cluster.client(Some(&secret));

    // An agent with its own certificate connects; its name is the certificate's.
    let mut command = cluster.agent_command("web1", "bi/web", None);
    command.arg("--tls-cert").arg(&node_cert).arg("--tls-key").arg(&node_key).arg("--tls-ca-cert").arg(&operator.cert);
    cluster.spawn_agent_command("web1", &mut command);
    cluster.wait_for_node(&management, "web1").await;
    let ran = cluster.cli(Some(&secret), &["exec", "-u", "nobody", "web1", "--", "echo", "hello-from-web1"]);
    assert!(text(&ran).contains("hello-from-web1"), "{}", text(&ran));

    // An agent whose certificate names another node is stopped by itself.
    let mut command = cluster.agent_command("web2", "bi/web", None);
    command.arg("--tls-cert").arg(&node_cert).arg("--tls-key").arg(&node_key).arg("--tls-ca-cert").arg(&operator.cert);
    let index = cluster.spawn_agent_command("web2", &mut command);
    let output = exited_with(&mut cluster.agents[index], Duration::from_secs(30));
    assert!(
        output.contains(&format!("{}: the certificate CN=web1 names node web1, not node web2", node_cert.display())),
        "{output}"
    );
    // Enrolment with a join token is refused, saying what to do instead.
    let token = join_token(&management, "bi/**", Some(1)).await;
    let index = cluster.spawn_agent("web3", "bi/web", Some(&token));
    let output = exited_with(&mut cluster.agents[index], Duration::from_secs(60));
    assert!(
        output.contains("this cluster uses certificates made by its operator's CA (drover server --tls-cert): its servers hold no CA key and issue no certificates, so agents do not enrol with a join token; make this agent a certificate with your CA (URI name drover://node/web3, clientAuth) and start it with --tls-cert FILE --tls-key FILE --tls-ca-cert FILE"),
        "{output}"
    );
    // There is no CA key to rotate.
    let rotate = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca"]);
    assert!(!rotate.status.success());
    assert!(
        text(&rotate).contains("its servers hold no CA key and issue no certificates; to move to another CA, add its certificate to the --tls-ca-cert file"),
        "{}",
        text(&rotate)
    );
    // Nor can it take one and start issuing in place; the message says what the option is for.
    let (cert, key) = (operator.cert.to_str().unwrap(), operator.key.to_str().unwrap());
    let offered =
        cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--new-ca-cert", cert, "--new-ca-key", key]);
    assert!(!offered.status.success());
    assert!(
        text(&offered).contains("`rotate-ca --new-ca-cert/--new-ca-key` is for clusters whose servers issue from a CA (started with --tls-ca-cert/--tls-ca-key, or on the CA they made)"),
        "{}",
        text(&offered)
    );
    assert!(!tls.join("ca-key.pem").exists() && !tls.join("ca-next-key.pem").exists(), "no CA key was kept");
    // A certificate of another CA is not let in.
    let stranger = operator_ca(files.path(), "stranger-ca", -1, 3650);
    let (stranger_cert, stranger_key) = issue(&stranger, files.path(), "web4", "drover://node/web4", false);
    // The server's handshake refuses it, and takes web1's.
    let leader_url = format!("https://{}{}", cluster.addresses[0], drover_proto::paths::STATUS_LEADER);
    let with_stranger = client_with(&stranger_cert, &stranger_key, &operator.cert_pem).get(&leader_url).send().await;
    assert!(with_stranger.is_err(), "a certificate of another CA is refused in the handshake: {with_stranger:?}");
    let with_web1 = client_with(&node_cert, &node_key, &operator.cert_pem).get(&leader_url).send().await.unwrap();
    assert!(with_web1.status().is_success(), "{with_web1:?}");
}

/// SHA-256 of the CA that issued the certificate chain in `path` (its last certificate).
fn issuer_of(path: &Path) -> String {
    let chain = drover_tls::certificate_pems(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default();
    chain.last().and_then(|pem| drover_tls::pem_fingerprint(pem).ok()).unwrap_or_default()
}

/// The operator's CA events of `rotate-ca`, from the audit log.
async fn rotate_ca_events(cluster: &SecureCluster, secret: &str) -> Vec<drover_types::acl::AuditEvent> {
    let query = AuditQuery { kind: Some("operator.tls.rotate_ca".to_owned()), ..Default::default() };
    cluster.client(Some(secret)).audit(&query).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_the_operators_ca_rotates_to_the_operators_next_ca_and_refuses_bad_ones() {
    let files = tempfile::tempdir().unwrap();
    let first = operator_ca(files.path(), "ca-a", -1, 3650);
    let next = operator_ca(files.path(), "ca-b", -1, 3650);
    let next_fingerprint = drover_tls::pem_fingerprint(&next.cert_pem).unwrap();
    let mut cluster = cluster_on(&first.cert);
    spawn_server(&mut cluster, &args(&[&"--tls-ca-cert", &first.cert, &"--tls-ca-key", &first.key]));
    cluster.wait_for_server().await;
    let secret = bootstrap(&cluster).await;
    let management = cluster.client(Some(&secret));
    let token = join_token(&management, "bi/**", Some(1)).await;
    let web1 = cluster.spawn_agent("web1", "bi/web", Some(&token));
    cluster.wait_for_node(&management, "web1").await;
    let rotate = |cluster: &SecureCluster, cert: &Path, key: &Path| {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--new-ca-cert", cert, "--new-ca-key", key])
    };
    let tls_status = |cluster: &SecureCluster| {
        let shown = cluster.cli(Some(&secret), &["operator", "tls", "status", "--json"]);
        assert!(shown.status.success(), "{}", text(&shown));
        String::from_utf8_lossy(&shown.stdout).into_owned()
    };
    let before = tls_status(&cluster);

    // Bad inputs: each refused by the server naming the file, audited, nothing changed.
    let (leaf_cert, leaf_key) = issue(&next, files.path(), "not-a-ca", "drover://server/9", true);
    let other = operator_ca(files.path(), "other-ca", -1, 3650);
    let expired = operator_ca(files.path(), "expired-ca", -400, -1);
    let exposed = files.path().join("exposed-key.pem");
    write(&exposed, &std::fs::read_to_string(&next.key).unwrap(), 0o644);
    let refusals = [
        (
            &leaf_cert,
            &leaf_key,
            format!(
                "{}: the CA certificate is not valid: CN=not-a-ca is not a certificate authority (its basicConstraints do not say CA:TRUE)",
                leaf_cert.display()
            ),
        ),
        (
            &next.cert,
            &other.key,
            format!(
                "{}: the CA key is not valid: it does not belong to the CA certificate (their public keys differ)",
                other.key.display()
            ),
        ),
        (
            &expired.cert,
            &expired.key,
            format!(
                "{}: the CA certificate is not valid: CN=Example Corp expired-ca expired on ",
                expired.cert.display()
            ),
        ),
        (
            &next.cert,
            &exposed,
            format!(
                "{} can be read or written by other users (mode 644); a private key must be private: run `chmod 600 {}`",
                exposed.display(),
                exposed.display()
            ),
        ),
    ];
    for (cert, key, expected) in &refusals {
        let refused = rotate(&cluster, cert, key);
        assert!(!refused.status.success(), "{}", text(&refused));
        let said = text(&refused);
        assert!(
            said.contains("the new CA is refused, nothing changed: ") && said.contains(expected.as_str()),
            "{said}"
        );
        assert_eq!(tls_status(&cluster), before, "nothing changed after: {said}");
    }
    // Both files or neither, and never with --finish (the CLI says so).
    let half =
        cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--new-ca-cert", next.cert.to_str().unwrap()]);
    assert!(!half.status.success() && text(&half).contains("--new-ca-key"), "{}", text(&half));
    assert_eq!(tls_status(&cluster), before);
    wait_until(
        "every refusal to be audited as refused, naming its file",
        Duration::from_secs(30),
        || async {
            let events = rotate_ca_events(&cluster, &secret).await;
            refusals.iter().all(|(_, _, expected)| {
                events.iter().any(|event| {
                    event.action == "operator.tls.rotate_ca"
                        && matches!(&event.outcome, AuditOutcome::Refused(message) if message.contains(expected.as_str()))
                })
            })
        },
        || cluster.logs(),
    )
    .await;

    // The operator's next CA: trusted next to the first, then issuing.
    let started = rotate(&cluster, &next.cert, &next.key);
    assert!(started.status.success(), "{}{}", text(&started), cluster.logs());
    assert!(text(&started).contains(&format!("to your CA {}", next.cert.display())), "{}", text(&started));
    // CLI users get both CAs for the rotation (as ca.pem of a server holds).
    let both = files.path().join("both-cas.pem");
    write(&both, &format!("{}{}", next.cert_pem, first.cert_pem), 0o644);
    cluster.ca = both;
    wait_until(
        "the server and web1 to hold certificates of the next CA",
        Duration::from_secs(60),
        || async {
            let status = cluster.client(Some(&secret)).tls_status().await;
            status.is_ok_and(|status| status.rotation.is_some_and(|rotation| rotation.ready_to_finish))
        },
        || cluster.logs(),
    )
    .await;
    let node_cert = cluster.agent_dir("web1").join("tls/node.pem");
    wait_until(
        "web1 to keep its certificate of the next CA",
        Duration::from_secs(10),
        || async { issuer_of(&node_cert) == next_fingerprint },
        || cluster.logs(),
    )
    .await;
    assert_eq!(issuer_of(&cluster.dir.path().join("server0/tls/server.pem")), next_fingerprint);
    // The agent kept its process and its session.
    assert!(cluster.agents[web1].wait_exit(Duration::from_millis(100)).is_none(), "web1 is still running");
    let connections = cluster.agents[web1].output().matches("connected to server").count();
    assert_eq!(connections, 1, "web1 kept its one session:\n{}", cluster.agents[web1].output());

    let finished = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--finish"]);
    assert!(finished.status.success(), "{}", text(&finished));
    for (what, ca_file) in [
        ("the server", cluster.dir.path().join("server0/tls/ca.pem")),
        ("web1", cluster.agent_dir("web1").join("tls/ca.pem")),
    ] {
        wait_until(
            &format!("{what} to trust only the next CA"),
            Duration::from_secs(30),
            || async { std::fs::read_to_string(&ca_file).is_ok_and(|text| text == next.cert_pem) },
            || cluster.logs(),
        )
        .await;
    }
    // The CLI with the first CA cannot verify the server any more; with the next one it can.
    cluster.ca = first.cert.clone();
    let stale = cluster.cli(Some(&secret), &["node", "list"]);
    assert!(!stale.status.success(), "the first CA no longer verifies the server: {}", text(&stale));
    cluster.ca = next.cert.clone();
    let listed = cluster.cli(Some(&secret), &["node", "list"]);
    assert!(listed.status.success() && text(&listed).contains("web1"), "{}", text(&listed));
    // web1 still runs commands, on the session it opened under the first CA.
    let management = cluster.client(Some(&secret));
    let results = exec_results(&management, &exec_request(&["web1"], None)).await;
    assert!(results.len() == 1 && results[0].1 == ExecStatus::Success, "{results:?}\n{}", cluster.logs());
    assert_eq!(cluster.agents[web1].output().matches("connected to server").count(), 1);
    let status = management.tls_status().await.unwrap();
    assert!(status.rotation.is_none());
    assert_eq!(status.cas.iter().map(|ca| ca.fingerprint.as_str()).collect::<Vec<_>>(), [next_fingerprint.as_str()]);

    // The rotation is audited with the operator's file and the CA's fingerprint.
    let events = rotate_ca_events(&cluster, &secret).await;
    assert!(
        events.iter().any(|event| event.action == "operator.tls.rotate_ca"
            && event.outcome == AuditOutcome::Ok
            && event.details.contains(&next.cert.display().to_string())
            && event.details.contains(&next_fingerprint)),
        "{events:?}"
    );
}
