//! Rotating the cluster CA of a running three-server cluster with two
//! agents, with real processes and real TLS: `drover operator tls
//! rotate-ca`, every server and agent reissued without a restart, `--finish`
//! refused while a server is still on the old CA, then the old CA's
//! certificates refused once it is finished.

use std::path::Path;
use std::time::Duration;

use drover_proto::api::{AuditQuery, TlsStatus};

use super::{SecureCluster, bootstrap, exec_request, exec_results, join_token, text};
use crate::harness::wait_until;

/// SHA-256 of the CA that issued the certificate chain in `path` (its second certificate).
fn issuer_of(path: &Path) -> String {
    let chain = drover_tls::certificate_pems(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(chain.len(), 2, "{} holds a certificate and its CA", path.display());
    drover_tls::pem_fingerprint(&chain[1]).unwrap()
}

fn certificates_in(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| drover_tls::certificate_pems(&text).map_or(0, |pems| pems.len()))
}

/// An HTTPS client presenting `cert` (with `key`), trusting the CAs of `ca_pem`.
fn client_with(cert: &str, key: &str, ca_pem: &str) -> reqwest::Client {
    drover_tls::install_crypto_provider();
    let identity = drover_tls::Identity::new(cert, key).unwrap();
    let roots = drover_tls::Roots::new(&drover_tls::certificate_pems(ca_pem).unwrap()).unwrap();
    let config = drover_tls::client_config(roots, Some(identity)).unwrap();
    reqwest::Client::builder().tls_backend_preconfigured(config).timeout(Duration::from_secs(10)).build().unwrap()
}

async fn status(cluster: &SecureCluster, secret: &str) -> Option<TlsStatus> {
    cluster.client(Some(secret)).tls_status().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_ca_rotates_without_a_restart_and_the_old_ca_is_refused_once_finished() {
    let mut cluster = SecureCluster::three().await;
    let secret = bootstrap(&cluster).await;
    let management = cluster.client(Some(&secret));
    let token = join_token(&management, "bi/batch/**", None).await;
    cluster.spawn_agent("batch01", "bi/batch/a", Some(&token));
    cluster.spawn_agent("batch02", "bi/batch/b", Some(&token));
    cluster.wait_for_node(&management, "batch01").await;
    cluster.wait_for_node(&management, "batch02").await;
    let old_ca = cluster.ca_pem();
    let old_fingerprint = drover_tls::pem_fingerprint(&old_ca).unwrap();
    // A node certificate of the old CA, kept from before (a backup, a thief).
    let tls_dir = cluster.agent_dir("batch01").join("tls");
    let old_node_cert = std::fs::read_to_string(tls_dir.join("node.pem")).unwrap();
    let old_node_key = std::fs::read_to_string(tls_dir.join("node-key.pem")).unwrap();

    // Bad input: nothing to finish; a token that is not a management token.
    let nothing = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--finish"]);
    assert!(!nothing.status.success());
    assert!(text(&nothing).contains("no CA rotation is in progress"), "{}", text(&nothing));
    let readers = "operator { capabilities = [\"read\"] }\n";
    let policy_file = cluster.dir.path().join("readers.hcl");
    std::fs::write(&policy_file, readers).unwrap();
    let applied = cluster.cli(Some(&secret), &["acl", "policy", "apply", "readers", policy_file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    let reader = management
        .create_acl_token(&drover_proto::api::TokenCreateRequest {
            name: "reader".to_owned(),
            policies: vec!["readers".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap()
        .secret;
    let refused = cluster.cli(Some(&reader), &["operator", "tls", "rotate-ca"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("reader may not do this: it needs a management token"), "{}", text(&refused));
    let readable = cluster.cli(Some(&reader), &["operator", "tls", "status"]);
    assert!(readable.status.success(), "{}", text(&readable));
    assert!(text(&readable).contains(&old_fingerprint) && text(&readable).contains("No CA rotation in progress"));

    // A server is down: the rotation starts, every other server trusts the
    // new CA, but nobody issues with it until that server trusts it too.
    cluster.servers[2].kill9();
    let started = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca"]);
    assert!(started.status.success(), "{}{}", text(&started), cluster.logs());
    assert!(text(&started).contains("Started a rotation of the cluster CA"), "{}", text(&started));
    let server0_ca = cluster.dir.path().join("server0/tls/ca.pem");
    wait_until(
        "server0 to trust both CAs (ca.pem holds both)",
        Duration::from_secs(30),
        || async { certificates_in(&server0_ca) == 2 },
        || cluster.logs(),
    )
    .await;
    // From here on the CLI trusts what the servers hand out: both CAs.
    cluster.ca = server0_ca.clone();
    let again = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("a CA rotation is already in progress"), "{}", text(&again));
    let early = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--finish"]);
    assert!(!early.status.success());
    let early_text = text(&early);
    assert!(
        early_text.contains("the old CA is still in use") && early_text.contains("does not trust the new CA yet"),
        "{early_text}"
    );
    let waiting = status(&cluster, &secret).await.expect("status");
    let rotation = waiting.rotation.expect("a rotation in progress");
    assert!(!rotation.ready_to_finish);
    assert!(rotation.servers.iter().all(|server| !server.reissued), "nobody issues before all trust: {rotation:?}");
    assert_eq!(waiting.cas[1].fingerprint, old_fingerprint);
    let new_fingerprint = waiting.cas[0].fingerprint.clone();

    // The server comes back: everything is reissued with the new CA.
    cluster.servers[2] = cluster.spawn_server(2, &[]);
    wait_until(
        "every server and live node to hold a certificate of the new CA",
        Duration::from_secs(120),
        || async {
            status(&cluster, &secret).await.and_then(|status| status.rotation).is_some_and(|r| r.ready_to_finish)
        },
        || cluster.logs(),
    )
    .await;
    let shown = cluster.cli(Some(&secret), &["operator", "tls", "status"]);
    let shown_text = text(&shown);
    assert!(shown_text.contains("3 of 3 trust the new CA; 3 of 3 hold a certificate of it"), "{shown_text}");
    assert!(shown_text.contains("0 live node(s) still on the old CA"), "{shown_text}");
    for index in 0..3 {
        let server_cert = cluster.dir.path().join(format!("server{index}/tls/server.pem"));
        assert_eq!(issuer_of(&server_cert), new_fingerprint, "server{index} reissued");
    }
    for name in ["batch01", "batch02"] {
        let node_cert = cluster.agent_dir(name).join("tls/node.pem");
        // The servers record the reissue before they answer the agent,
        // which then keeps the certificate: wait for the file.
        wait_until(
            &format!("{name} to keep its certificate of the new CA"),
            Duration::from_secs(10),
            || async { issuer_of(&node_cert) == new_fingerprint },
            || cluster.logs(),
        )
        .await;
        assert_eq!(certificates_in(&cluster.agent_dir(name).join("tls/ca.pem")), 2, "{name} trusts both CAs");
    }
    // No agent restarted: each process is the one started above.
    for agent in &mut cluster.agents {
        assert!(agent.wait_exit(Duration::from_millis(100)).is_none(), "{} is still running", agent.name);
    }
    // Until the finish, the old CA's certificates still get through the handshake.
    let both_cas = std::fs::read_to_string(&server0_ca).unwrap();
    let leader_url = |index: usize| format!("https://{}/v1/status/leader", cluster.addresses[index]);
    let old_client = client_with(&old_node_cert, &old_node_key, &both_cas);
    assert!(old_client.get(leader_url(0)).send().await.is_ok(), "the old CA is trusted during the rotation");

    let finished = cluster.cli(Some(&secret), &["operator", "tls", "rotate-ca", "--finish"]);
    assert!(finished.status.success(), "{}", text(&finished));
    for index in 0..3 {
        let ca_file = cluster.dir.path().join(format!("server{index}/tls/ca.pem"));
        wait_until(
            &format!("server{index} to trust only the new CA"),
            Duration::from_secs(30),
            || async { certificates_in(&ca_file) == 1 },
            || cluster.logs(),
        )
        .await;
    }
    for name in ["batch01", "batch02"] {
        let ca_file = cluster.agent_dir(name).join("tls/ca.pem");
        wait_until(
            &format!("{name} to trust only the new CA"),
            Duration::from_secs(30),
            || async { certificates_in(&ca_file) == 1 },
            || cluster.logs(),
        )
        .await;
    }
    let after = status(&cluster, &secret).await.expect("status");
    assert!(after.rotation.is_none());
    assert_eq!(after.cas.iter().map(|ca| ca.fingerprint.as_str()).collect::<Vec<_>>(), [new_fingerprint.as_str()]);

    // The old certificate is refused by every server; a new one is not.
    let new_ca = std::fs::read_to_string(&server0_ca).unwrap();
    let new_node_cert = std::fs::read_to_string(tls_dir.join("node.pem")).unwrap();
    let new_node_key = std::fs::read_to_string(tls_dir.join("node-key.pem")).unwrap();
    for index in 0..3 {
        let refused = client_with(&old_node_cert, &old_node_key, &new_ca).get(leader_url(index)).send().await;
        assert!(refused.is_err(), "server{index} must refuse the old CA's certificate: {refused:?}");
        let accepted = client_with(&new_node_cert, &new_node_key, &new_ca).get(leader_url(index)).send().await;
        assert!(accepted.is_ok(), "server{index} accepts the new CA's certificate: {accepted:?}");
    }
    // A CLI with the old CA file cannot verify the servers any more; with the new one it works.
    let mut stale_cli = std::process::Command::new(crate::harness::drover_binary());
    stale_cli
        .args(["node", "list"])
        .env("DROVER_ADDR", cluster.addresses.join(","))
        .env("DROVER_CACERT", cluster.dir.path().join("ca/ca.pem"))
        .env("DROVER_TOKEN", &secret);
    assert!(!stale_cli.output().unwrap().status.success(), "the old CA no longer verifies the servers");
    let listed = cluster.cli(Some(&secret), &["node", "list"]);
    assert!(listed.status.success() && text(&listed).contains("batch01"), "{}", text(&listed));

    // An agent restarted now connects with its new certificate and the new CA, and runs commands.
    let index = cluster.agents.iter().position(|agent| agent.name == "agent batch01").expect("batch01");
    cluster.agents[index].kill9();
    let mut command = cluster.agent_command("batch01", "bi/batch/a", None);
    let restarted = cluster.spawn_agent_command("batch01", &mut command);
    wait_until(
        "the restarted batch01 to connect",
        Duration::from_secs(60),
        || async { cluster.agents[restarted].output().contains("connected to server") },
        || cluster.logs(),
    )
    .await;
    let management = cluster.client(Some(&secret));
    wait_until(
        "a command to run on both agents",
        Duration::from_secs(60),
        || async {
            let results = exec_results(&management, &exec_request(&["batch01", "batch02"], None)).await;
            results.len() == 2 && results.iter().all(|(_, status, _)| *status == drover_proto::api::ExecStatus::Success)
        },
        || cluster.logs(),
    )
    .await;

    // Both steps are audited, and so are the refusals.
    let audit =
        management.audit(&AuditQuery { kind: Some("operator.tls".to_owned()), ..Default::default() }).await.unwrap();
    let actions: Vec<(String, String)> =
        audit.iter().map(|event| (event.action.clone(), format!("{:?}", event.outcome))).collect();
    assert!(
        audit.iter().any(|event| event.action == "operator.tls.rotate_ca" && event.name == "reader"),
        "{actions:?}"
    );
    assert!(
        audit.iter().filter(|event| event.action == "operator.tls.rotate_ca_finish").count() >= 3,
        "two refused finishes and the one that worked: {actions:?}"
    );
}
