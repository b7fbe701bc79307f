//! An operator's own CA, with real processes and real TLS: a CA made with
//! rcgen (as openssl, cfssl or Vault would make it) given to a server with
//! `--tls-ca-cert/--tls-ca-key`, so that the servers issue from it; and
//! certificates made entirely by that CA (`--tls-cert/--tls-key`), so that
//! the servers issue nothing and agents bring their own. Bad inputs are
//! refused at start, naming the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::{SecureCluster, bootstrap, exited_with, join_token, text};
use crate::harness::{Process, drover_binary, free_port};

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
