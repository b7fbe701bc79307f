//! Real TLS over loopback: an axum router served by `TlsListener`, called
//! by reqwest with the configurations of this crate, and by misbehaving
//! raw sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use drover_tls::{
    Ca, Identity, Issued, PLAIN_HTTP_ANSWER, PeerInfo, Roots, TlsListener, cert_info_der, client_config,
    install_crypto_provider, node_csr, pinned_client_config, server_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const THIRTY_DAYS: Duration = Duration::from_secs(30 * 86_400);
const HOUR: Duration = Duration::from_secs(3600);

/// A server on a loopback port; the task ends with the test's runtime.
struct TestServer {
    address: SocketAddr,
    ca: Ca,
    identity: Arc<Identity>,
    roots: Arc<Roots>,
}

impl TestServer {
    async fn start() -> TestServer {
        TestServer::start_with(|listener| listener).await
    }

    async fn start_with(tune: impl FnOnce(TlsListener) -> TlsListener) -> TestServer {
        install_crypto_provider();
        let ca = Ca::generate("test").expect("ca");
        let issued = ca.issue_server(1, &["127.0.0.1:0".to_owned()], THIRTY_DAYS).expect("server certificate");
        let identity = Identity::new(&issued.cert_pem, &issued.key_pem).expect("identity");
        let roots = Roots::new(&[ca.cert_pem().to_owned()]).expect("roots");
        let config = server_config(Arc::clone(&identity), Arc::clone(&roots)).expect("server config");
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = tcp.local_addr().expect("address");
        let listener = tune(TlsListener::with_server_config(tcp, config));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router().into_make_service_with_connect_info::<PeerInfo>()).await;
        });
        TestServer { address, ca, identity, roots }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/whoami", self.address.port())
    }

    /// A client of this cluster, with a node certificate when `node` is given.
    fn client(&self, node: Option<&str>) -> reqwest::Client {
        let identity = node.map(|name| node_identity(&self.ca, name, None));
        https_client(client_config(Arc::clone(&self.roots), identity).expect("client config"))
    }
}

fn router() -> Router {
    Router::new().route("/whoami", get(whoami))
}

/// Who the server thinks we are, and from which port.
async fn whoami(ConnectInfo(peer): ConnectInfo<PeerInfo>) -> String {
    let who = match (peer.role(), &peer.certificate) {
        (Some(role), _) => role.to_string(),
        (None, Some(_)) => "a certificate without a role".to_owned(),
        (None, None) => "anonymous".to_owned(),
    };
    format!("{who} from port {}", peer.address.port())
}

fn https_client(config: rustls::ClientConfig) -> reqwest::Client {
    https_client_builder(config).build().expect("client")
}

fn https_client_builder(config: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(config).no_proxy().timeout(Duration::from_secs(5))
}

/// A node identity signed by `ca`, valid now or for the period given.
fn node_identity(ca: &Ca, name: &str, period: Option<(SystemTime, SystemTime)>) -> Arc<Identity> {
    let (request, key) = node_csr(name).expect("csr");
    let cert_pem = match period {
        Some((not_before, not_after)) => ca.sign_node_csr_valid_between(&request, name, not_before, not_after),
        None => ca.sign_node_csr(&request, name, THIRTY_DAYS),
    }
    .expect("sign");
    Identity::new(&cert_pem, &key).expect("identity")
}

async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|error| chain(&error))?;
    response.text().await.map_err(|error| chain(&error))
}

/// An error with all its causes, for assertions on the words that matter.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn a_client_with_a_node_certificate_is_seen_as_that_node() {
    let server = TestServer::start().await;
    let answer = get_text(&server.client(Some("web-1")), &server.url()).await.expect("served");
    assert!(answer.starts_with("node web-1 from port"), "{answer}");
}

#[tokio::test]
async fn a_client_with_a_server_certificate_is_seen_as_that_server() {
    let server = TestServer::start().await;
    let issued = server.ca.issue_server(2, &[], THIRTY_DAYS).expect("issue");
    let identity = Identity::new(&issued.cert_pem, &issued.key_pem).expect("identity");
    let client = https_client(client_config(Arc::clone(&server.roots), Some(identity)).expect("config"));
    let answer = get_text(&client, &server.url()).await.expect("served");
    assert!(answer.starts_with("server 2 from port"), "{answer}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_served_anonymously() {
    let server = TestServer::start().await;
    let answer = get_text(&server.client(None), &server.url()).await.expect("served");
    assert!(answer.starts_with("anonymous from port"), "{answer}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let server = TestServer::start().await;
    let stranger = Ca::generate("another cluster").expect("ca");
    let identity = node_identity(&stranger, "web-1", None);
    let client = https_client(client_config(Arc::clone(&server.roots), Some(identity)).expect("config"));
    let error = get_text(&client, &server.url()).await.expect_err("refused");
    assert!(error.contains("UnknownCA"), "{error}");
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let server = TestServer::start().await;
    let now = SystemTime::now();
    let identity = node_identity(&server.ca, "web-1", Some((now - 2 * HOUR, now - HOUR)));
    let client = https_client(client_config(Arc::clone(&server.roots), Some(identity)).expect("config"));
    let error = get_text(&client, &server.url()).await.expect_err("refused");
    assert!(error.contains("CertificateExpired"), "{error}");
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused_by_the_client() {
    let server = TestServer::start().await;
    let now = SystemTime::now();
    let expired = server.ca.issue_server_valid_between(1, &[], now - 2 * HOUR, now - HOUR).expect("issue");
    server.identity.replace(&expired.cert_pem, &expired.key_pem).expect("replace");
    let error = get_text(&server.client(None), &server.url()).await.expect_err("refused");
    assert!(error.contains("expired"), "{error}");
}

#[tokio::test]
async fn the_server_certificate_verifies_for_its_names_only() {
    let server = TestServer::start().await;
    let config = || client_config(Arc::clone(&server.roots), None).expect("config");
    let port = server.address.port();
    // 127.0.0.1 is covered by every other test; localhost is a name of every server.
    let by_name = https_client_builder(config()).resolve("localhost", server.address).build().expect("client");
    get_text(&by_name, &format!("https://localhost:{port}/whoami")).await.expect("localhost is a name of it");
    let wrong = https_client_builder(config()).resolve("elsewhere.example", server.address).build().expect("client");
    let error = get_text(&wrong, &format!("https://elsewhere.example:{port}/whoami")).await.expect_err("wrong name");
    assert!(error.contains("not valid for name"), "{error}");
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_a_400_quickly() {
    let server = TestServer::start().await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    stream.write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_string(&mut answer))
        .await
        .expect("answered, not hanging")
        .expect("read");
    assert_eq!(answer, PLAIN_HTTP_ANSWER);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_pinned_client_accepts_the_right_ca_and_refuses_another() {
    let server = TestServer::start().await;
    let right = https_client(pinned_client_config(&server.ca.fingerprint()).expect("config"));
    let answer = get_text(&right, &server.url()).await.expect("served");
    assert!(answer.starts_with("anonymous"), "{answer}");

    let stranger = Ca::generate("another cluster").expect("ca");
    let wrong = https_client(pinned_client_config(&stranger.fingerprint()).expect("config"));
    let error = get_text(&wrong, &server.url()).await.expect_err("refused");
    assert!(error.contains("the server's CA does not match the join token"), "{error}");

    assert!(pinned_client_config("not a hash").is_err());
}

#[tokio::test]
async fn the_pinned_client_refuses_a_chain_that_only_carries_the_pinned_ca() {
    let server = TestServer::start().await;
    // A server of another CA that appends the pinned CA to its chain: the
    // hash is there, but its certificate does not verify against it.
    let stranger = Ca::generate("another cluster").expect("ca");
    let issued = stranger.issue_server(1, &[], THIRTY_DAYS).expect("issue");
    let forged = Issued { cert_pem: format!("{}{}", issued.cert_pem, server.ca.cert_pem()), ..issued };
    server.identity.replace(&forged.cert_pem, &forged.key_pem).expect("replace");
    let client = https_client(pinned_client_config(&server.ca.fingerprint()).expect("config"));
    let error = get_text(&client, &server.url()).await.expect_err("refused");
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn a_replaced_identity_serves_new_connections_and_old_ones_carry_on() {
    let server = TestServer::start().await;
    let config = || client_config(Arc::clone(&server.roots), None).expect("config");
    let serial_seen = |response: &reqwest::Response| {
        let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("tls info");
        cert_info_der(info.peer_certificate().expect("certificate")).expect("info").serial
    };
    let old_client = https_client_builder(config()).tls_info(true).build().expect("client");
    let first = old_client.get(server.url()).send().await.expect("served");
    let old_serial = serial_seen(&first);
    let old_connection = first.text().await.expect("body");
    assert_eq!(old_serial, server.identity.info().serial);

    let renewed = server.ca.issue_server(1, &[], THIRTY_DAYS).expect("issue");
    server.identity.replace(&renewed.cert_pem, &renewed.key_pem).expect("replace");
    let new_serial = server.identity.info().serial;
    assert_ne!(new_serial, old_serial);

    // The pooled connection opened before carries on, with its certificate.
    let again = old_client.get(server.url()).send().await.expect("served");
    assert_eq!(serial_seen(&again), old_serial);
    assert_eq!(again.text().await.expect("body"), old_connection, "the same connection");

    let new_client = https_client_builder(config()).tls_info(true).build().expect("client");
    let fresh = new_client.get(server.url()).send().await.expect("served");
    assert_eq!(serial_seen(&fresh), new_serial);
}

#[tokio::test]
async fn replaced_roots_apply_to_the_next_handshake() {
    let server = TestServer::start().await;
    let next_ca = Ca::generate("test, rotated").expect("ca");
    let identity = node_identity(&next_ca, "web-2", None);
    let client_roots = Roots::new(&[server.ca.cert_pem().to_owned()]).expect("roots");
    let client =
        || https_client(client_config(Arc::clone(&client_roots), Some(Arc::clone(&identity))).expect("config"));
    let error = get_text(&client(), &server.url()).await.expect_err("the new CA is not trusted yet");
    assert!(error.contains("UnknownCA"), "{error}");

    server.roots.replace(&[server.ca.cert_pem().to_owned(), next_ca.cert_pem().to_owned()]).expect("replace");
    let answer = get_text(&client(), &server.url()).await.expect("served");
    assert!(answer.starts_with("node web-2"), "{answer}");
}

/// A CA rotation as the servers run it: trust both CAs, switch the server's
/// own certificate to the new CA (issued from a bundle file, new CA first),
/// then drop the old CA: the old CA's certificates are refused from then on.
#[tokio::test]
async fn a_ca_rotation_trusts_both_cas_then_refuses_the_old_ones() {
    let server = TestServer::start().await;
    let next_ca = Ca::generate("test, rotated").expect("ca");
    let old_node = node_identity(&server.ca, "web-1", None);
    let new_node = node_identity(&next_ca, "web-2", None);
    assert_eq!(old_node.issuer_fingerprint(), Some(server.ca.fingerprint()));
    assert_eq!(new_node.issuer_fingerprint(), Some(next_ca.fingerprint()));
    let both = [next_ca.cert_pem().to_owned(), server.ca.cert_pem().to_owned()];
    let client_roots = Roots::new(&both).expect("roots");
    let client = |identity: &Arc<Identity>| {
        https_client(client_config(Arc::clone(&client_roots), Some(Arc::clone(identity))).expect("config"))
    };

    server.roots.replace(&both).expect("trust both");
    assert!(server.roots.trusts(&server.ca.fingerprint()) && server.roots.trusts(&next_ca.fingerprint()));
    // The issuing CA read back from the bundle a server keeps (new first).
    let bundle_key = next_ca.key_pem().to_owned();
    let issuing = Ca::from_pem(&both.concat(), &bundle_key).expect("the first certificate is the CA's");
    assert_eq!(issuing.fingerprint(), next_ca.fingerprint());
    assert_eq!(drover_tls::certificate_pems(issuing.cert_pem()).expect("pems").len(), 1, "only the CA's own");
    let renewed = issuing.issue_server(1, &["127.0.0.1:0".to_owned()], THIRTY_DAYS).expect("reissue");
    server.identity.replace(&renewed.cert_pem, &renewed.key_pem).expect("switch");
    assert_eq!(server.identity.issuer_fingerprint(), Some(next_ca.fingerprint()));
    for (identity, name) in [(&old_node, "node web-1"), (&new_node, "node web-2")] {
        let answer = get_text(&client(identity), &server.url()).await.expect("both CAs are trusted");
        assert!(answer.starts_with(name), "{answer}");
    }

    server.roots.replace(&[next_ca.cert_pem().to_owned()]).expect("drop the old CA");
    assert!(!server.roots.trusts(&server.ca.fingerprint()));
    let error = get_text(&client(&old_node), &server.url()).await.expect_err("the old CA is gone");
    assert!(error.contains("UnknownCA") || error.contains("unknown ca") || error.contains("BadCertificate"), "{error}");
    let answer = get_text(&client(&new_node), &server.url()).await.expect("the new CA's certificate");
    assert!(answer.starts_with("node web-2"), "{answer}");
}

#[tokio::test]
async fn a_revoked_client_certificate_is_refused() {
    let server = TestServer::start().await;
    let identity = node_identity(&server.ca, "web-1", None);
    let client =
        || https_client(client_config(Arc::clone(&server.roots), Some(Arc::clone(&identity))).expect("config"));
    get_text(&client(), &server.url()).await.expect("served before revocation");
    server.roots.set_revoked_serials([identity.info().serial]);
    let error = get_text(&client(), &server.url()).await.expect_err("refused after revocation");
    assert!(error.contains("CertificateRevoked"), "{error}");
}

#[tokio::test]
async fn a_slow_loris_client_does_not_stop_others_and_is_closed_after_the_deadline() {
    let server = TestServer::start_with(|listener| listener.handshake_timeout(Duration::from_secs(1))).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(server.address).await.expect("connect"));
    }
    let answer = get_text(&server.client(Some("web-1")), &server.url()).await.expect("served meanwhile");
    assert!(answer.starts_with("node web-1"), "{answer}");
    assert!(started.elapsed() < Duration::from_millis(900), "served before the deadline: {:?}", started.elapsed());

    for mut stream in silent {
        let mut buffer = [0_u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer)).await.expect("closed");
        assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer: {read:?}");
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "not before the deadline: {waited:?}");
}

/// Connects from `local_ip`, sends a broken TLS record and waits for the close.
async fn fail_a_handshake(server: SocketAddr, local_ip: &str) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{local_ip}:0").parse().expect("address")).expect("bind");
    let Ok(mut stream) = socket.connect(server).await else { return };
    let _ = stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff]).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
}

fn client_from(server: &TestServer, local_ip: &str) -> reqwest::Client {
    let config = client_config(Arc::clone(&server.roots), None).expect("config");
    https_client_builder(config)
        .local_address(local_ip.parse::<std::net::IpAddr>().expect("ip"))
        // A new connection, and so a new handshake, for every request.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_peer_failing_handshakes_is_blocked_and_others_are_not() {
    let server = TestServer::start_with(|listener| listener.failure_limit(5, Duration::from_secs(60))).await;
    for _ in 0..10 {
        fail_a_handshake(server.address, "127.0.0.1").await;
    }
    // The last failures are counted just after the connection closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    get_text(&client_from(&server, "127.0.0.1"), &server.url()).await.expect_err("the failing peer is blocked");
    let answer = get_text(&client_from(&server, "127.0.0.2"), &server.url()).await.expect("another peer is served");
    assert!(answer.starts_with("anonymous"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failed_handshakes_from_one_peer_does_not_stop_a_good_client() {
    let server = TestServer::start().await;
    let address = server.address;
    let flood: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..20 {
                    fail_a_handshake(address, "127.0.0.1").await;
                }
            })
        })
        .collect();
    let good = client_from(&server, "127.0.0.2");
    for _ in 0..10 {
        let started = Instant::now();
        let answer = get_text(&good, &server.url()).await.expect("served during the flood");
        assert!(answer.starts_with("anonymous"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(2), "slow: {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for attacker in flood {
        attacker.await.expect("flood task");
    }
}

#[tokio::test]
async fn plain_tcp_serving_gives_the_same_peer_info_without_a_certificate() {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = tcp.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(tcp, router().into_make_service_with_connect_info::<PeerInfo>()).await;
    });
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let answer = get_text(&client, &format!("http://{address}/whoami")).await.expect("served");
    assert!(answer.starts_with("anonymous from port"), "{answer}");
}
