//! A server's TLS material and the security decisions that need it:
//! the cluster CA, this server's certificate (renewed before it expires),
//! enrolment of agents with a join token, renewal of node certificates,
//! and the check of a connecting node's certificate.
//!
//! ```text
//!  DATA_DIR/tls/ (0700)
//!    ca.pem         the CA certificates the cluster trusts, the issuing one
//!                   first (two during a CA rotation): hand it to CLI users (DROVER_CACERT)
//!    ca-key.pem     the issuing CA's key (0600); never leaves the servers
//!    ca-next.pem    during a CA rotation, until this server issues with it:
//!    ca-next-key.pem  the new CA and its key
//!    server.pem     this server's certificate (CN server-<id>, its addresses)
//!    server-key.pem
//! ```
//!
//! Rotating the CA (`drover operator tls rotate-ca`) is in [`ca_rotation`].
//!
//! Where the CA comes from, on first start: `--tls-ca-cert/--tls-ca-key`
//! (bring your own, or the output of `drover operator tls ca create`,
//! copied to every server of a `--bootstrap-expect` cluster), or, for a
//! single server, made here. A server that already has one keeps it.
//! The CA key is kept in the servers' data directories, not in the Raft
//! state, so snapshots (`drover operator snapshot save`) never contain
//! it and a restore keeps the running cluster's CA.
//!
//! Or no CA key at all: with `--tls-cert/--tls-key/--tls-ca-cert`
//! (certificates made by the operator's CA, [`ExternalFiles`]) the server
//! presents and trusts what it is given, read from those paths at every
//! start and again every minute, and issues nothing: agents bring
//! certificates made the same way, enrolment and renewal are refused.

mod ca_rotation;

pub use ca_rotation::operator_ca;

use drover_proto::paths;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use drover_tls::{Ca, Identity, PeerRole, Roots};
use drover_types::{CodedError, ErrorCode, Timestamp};

use crate::Result;
use crate::server::Server;

/// How long server and node certificates are valid by default.
pub const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a server protects its port.
#[derive(Clone, Debug, Default)]
pub enum SecurityMode {
    /// Plain HTTP, no ACLs (`--insecure`, `drover dev`).
    #[default]
    Insecure,
    /// HTTPS and mTLS, ACLs on.
    Secure(TlsSettings),
}

/// Where a secure server's CA comes from and how long certificates live.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// A CA certificate to use instead of making one (with `ca_key`); with
    /// `cert` and no `ca_key`, the CA certificates to trust.
    pub ca_cert: Option<PathBuf>,
    /// This server's certificate, made by the operator's CA (with `key`
    /// and `ca_cert`, no `ca_key`): the server issues no certificates.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
    /// Its key.
    pub ca_key: Option<PathBuf>,
    /// A server join token: the CA is asked of the servers in `--join`.
    pub join_token: Option<String>,
    /// Validity of server and node certificates.
    pub validity: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_cert: None,
            cert: None,
            key: None,
            ca_key: None,
            join_token: None,
            validity: CERTIFICATE_VALIDITY,
        }
    }
}

/// Before a server without a CA starts: asks the servers in `join` for the
/// cluster CA with a server join token, trusting only a server whose chain
/// holds the CA the token names, and keeps it in `DATA_DIR/tls`.
pub(crate) async fn fetch_ca_with_join_token(data_dir: &Path, join: &[String], token: &str) -> Result<()> {
    drover_tls::install_crypto_provider();
    let dir = data_dir.join("tls");
    if dir.join("ca-key.pem").exists() {
        return Ok(());
    }
    let token = drover_acl::JoinTokenText::parse(token)
        .map_err(|problem| CodedError::invalid(format!("--join-token: {problem}")))?;
    let config = drover_tls::pinned_client_config(&token.ca_sha256).map_err(tls_error)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|error| CodedError::internal(format!("cannot make an HTTPS client: {error}")))?;
    let body = drover_proto::api::ServerJoinRequest { secret: token.secret.clone() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_problem = String::from("no server to join was given (--join)");
    loop {
        for address in join {
            let host = address.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            let url = format!("https://{host}{}", paths::OPERATOR_TLS_JOIN);
            match http.post(&url).json(&body).send().await {
                Ok(response) if response.status().is_success() => {
                    let answer: drover_proto::api::ServerJoinResponse = response
                        .json()
                        .await
                        .map_err(|error| CodedError::internal(format!("{address}: unreadable answer: {error}")))?;
                    // The CA received must be the one the token names.
                    let ca = Ca::from_pem(&answer.ca, &answer.ca_key).map_err(tls_error)?;
                    if ca.fingerprint() != token.ca_sha256 {
                        return Err(CodedError::invalid("the CA a server sent is not the one the join token names"));
                    }
                    drover_tls::ensure_private_dir(&dir).map_err(tls_error)?;
                    drover_tls::write_public(&dir.join("ca.pem"), ca.cert_pem()).map_err(tls_error)?;
                    drover_tls::write_private(&dir.join("ca-key.pem"), ca.key_pem()).map_err(tls_error)?;
                    tracing::info!(server = %address, "received the cluster CA with the server join token");
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<CodedError>(&text).map(|error| error.message).unwrap_or(text);
                    return Err(CodedError::new(
                        ErrorCode::Forbidden,
                        format!("{address} refused the server join token ({status}): {message}"),
                    ));
                }
                Err(error) => {
                    last_problem = format!("{address}: {}", drover_types::error::error_chain(&error));
                    if last_problem.contains("does not match the join token") {
                        return Err(CodedError::invalid(format!("cannot join: {last_problem}")));
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CodedError::new(ErrorCode::Unavailable, format!("cannot join: {last_problem}")));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What a server that issues no certificates says when asked to.
pub const EXTERNAL_CERTIFICATES: &str = "this cluster uses certificates made by its operator's CA (drover server --tls-cert): its servers hold no CA key and issue no certificates";

/// The files of a server whose certificates the operator makes: read at
/// every start and every minute from where the operator keeps them (never
/// copied), so that replacing them is how they are renewed.
#[derive(Clone, Debug)]
struct ExternalFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// How often a server or agent on external certificates reads them again.
pub const EXTERNAL_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// A secure server's TLS material.
pub struct ServerTls {
    dir: PathBuf,
    /// The CA that issues certificates now (another one after a CA
    /// rotation); `None` on certificates made by the operator.
    ca: RwLock<Option<Arc<Ca>>>,
    /// Where the operator's certificates are, when they are.
    external: Option<ExternalFiles>,
    /// The CA certificates trusted (PEM, one each), the issuing one first.
    trusted: RwLock<Vec<String>>,
    /// Serialises the steps of a CA rotation on this server.
    rotation_steps: tokio::sync::Mutex<()>,
    identity: Arc<Identity>,
    roots: Arc<Roots>,
    validity: Duration,
    addresses: Vec<String>,
    server_id: u64,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ServerTls").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn tls_error(error: impl std::fmt::Display) -> CodedError {
    CodedError::invalid(error.to_string())
}

impl ServerTls {
    /// Loads or makes the CA and this server's certificate.
    pub(crate) fn prepare(
        data_dir: &Path,
        server_id: u64,
        advertise: &str,
        settings: &TlsSettings,
        may_make_ca: bool,
    ) -> Result<ServerTls> {
        drover_tls::install_crypto_provider();
        let dir = data_dir.join("tls");
        drover_tls::ensure_private_dir(&dir).map_err(tls_error)?;
        let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        if settings.cert.is_some() || settings.key.is_some() {
            return ServerTls::prepare_external(dir, server_id, advertise, settings);
        }
        if ca_path.exists() && !ca_key_path.exists() {
            return Err(CodedError::invalid(format!(
                "{} holds a CA certificate but there is no CA key next to it: this server ran on certificates made by its operator; start it again with --tls-cert, --tls-key and --tls-ca-cert, or move {} away to start over",
                ca_path.display(),
                dir.display()
            )));
        }
        let mut trusted = Vec::new();
        let ca = if ca_key_path.exists() {
            let cert = drover_tls::read_public(&ca_path).map_err(tls_error)?;
            let key = drover_tls::read_private(&ca_key_path).map_err(tls_error)?;
            // ca.pem holds every trusted CA, the issuing one (whose key this is) first.
            trusted = drover_tls::certificate_pems(&cert)
                .map_err(|error| tls_error(format!("{}: {error}", ca_path.display())))?;
            let ca = issuing_ca_of(&cert, &trusted, &key)
                .map_err(|error| tls_error(format!("{}: {error}", ca_path.display())))?;
            let fingerprint = ca.fingerprint();
            // The issuing CA first (false sorts first).
            trusted.sort_by_key(|pem| drover_tls::pem_fingerprint(pem).ok().as_deref() != Some(fingerprint.as_str()));
            ca
        } else {
            let ca = match (&settings.ca_cert, &settings.ca_key) {
                (Some(cert_path), Some(key_path)) => Ca::read_files(cert_path, key_path)
                    .map_err(|error| CodedError::invalid(format!("--tls-ca-cert/--tls-ca-key: {error}")))?,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(CodedError::invalid(
                        "--tls-ca-cert and --tls-ca-key go together: give both or neither",
                    ));
                }
                (None, None) if may_make_ca => Ca::generate(&format!("{server_id:016x}")).map_err(tls_error)?,
                (None, None) => {
                    return Err(CodedError::invalid(
                        "a server of a multi-server secure cluster needs the cluster's CA: make one with `drover operator tls ca create --out DIR` and start every server with --tls-ca-cert DIR/ca.pem --tls-ca-key DIR/ca-key.pem (or copy ca.pem and ca-key.pem from DATA_DIR/tls of a running server), or run with --insecure",
                    ));
                }
            };
            drover_tls::write_public(&ca_path, ca.cert_pem()).map_err(tls_error)?;
            drover_tls::write_private(&ca_key_path, ca.key_pem()).map_err(tls_error)?;
            ca
        };
        let addresses = vec![advertise.to_owned()];
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server-key.pem"));
        let existing = match (drover_tls::read_public(&cert_path), drover_tls::read_private(&key_path)) {
            (Ok(cert), Ok(key)) if certificate_is_current(&cert, server_id) => Some((cert, key)),
            _ => None,
        };
        let (cert, key) = match existing {
            Some(pair) => pair,
            None => {
                let issued = ca.issue_server(server_id, &addresses, settings.validity).map_err(tls_error)?;
                drover_tls::write_public(&cert_path, &issued.cert_pem).map_err(tls_error)?;
                drover_tls::write_private(&key_path, &issued.key_pem).map_err(tls_error)?;
                (issued.cert_pem, issued.key_pem)
            }
        };
        let identity = Identity::new(&cert, &key).map_err(tls_error)?;
        if trusted.is_empty() {
            trusted.push(ca.cert_pem().to_owned());
        }
        let roots = Roots::new(&trusted).map_err(tls_error)?;
        Ok(ServerTls {
            dir,
            ca: RwLock::new(Some(Arc::new(ca))),
            external: None,
            trusted: RwLock::new(trusted),
            rotation_steps: tokio::sync::Mutex::new(()),
            identity,
            roots,
            validity: settings.validity,
            addresses,
            server_id,
        })
    }

    /// A server on certificates made by its operator: `--tls-cert` and
    /// `--tls-key` are what it presents, `--tls-ca-cert` what it trusts;
    /// it keeps a copy of the CA certificates in `DATA_DIR/tls/ca.pem` for
    /// CLI users, and nothing else.
    fn prepare_external(dir: PathBuf, server_id: u64, advertise: &str, settings: &TlsSettings) -> Result<ServerTls> {
        let (Some(cert), Some(key)) = (&settings.cert, &settings.key) else {
            return Err(CodedError::invalid("--tls-cert and --tls-key go together: give both or neither"));
        };
        let Some(ca) = &settings.ca_cert else {
            return Err(CodedError::invalid(
                "--tls-cert needs --tls-ca-cert: the certificate of the CA that made it, to verify the other servers and the agents",
            ));
        };
        if settings.ca_key.is_some() {
            return Err(CodedError::invalid(
                "--tls-cert and --tls-ca-key cannot both be set: with --tls-cert the servers issue no certificates; leave out --tls-ca-key (or leave out --tls-cert and --tls-key to have the servers issue from your CA)",
            ));
        }
        if dir.join("ca-key.pem").exists() {
            return Err(CodedError::invalid(format!(
                "{} exists: this server issues certificates from its own CA; it cannot switch to certificates made by its operator (--tls-cert) in place: move {} away first, on every server, and give every agent a certificate of your CA",
                dir.join("ca-key.pem").display(),
                dir.display()
            )));
        }
        let external = ExternalFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() };
        let trusted = drover_tls::read_ca_bundle(&external.ca).map_err(tls_error)?;
        let identity = Identity::read_files(&external.cert, &external.key).map_err(tls_error)?;
        check_external_server_certificate(&identity.info(), &external.cert)?;
        let roots = Roots::new(&trusted).map_err(tls_error)?;
        drover_tls::write_public(&dir.join("ca.pem"), &trusted.concat()).map_err(tls_error)?;
        tracing::info!(
            cert = %external.cert.display(),
            ca = %external.ca.display(),
            "using certificates made by the operator's CA: this server issues none"
        );
        Ok(ServerTls {
            dir,
            ca: RwLock::new(None),
            external: Some(external),
            trusted: RwLock::new(trusted),
            rotation_steps: tokio::sync::Mutex::new(()),
            identity,
            roots,
            validity: settings.validity,
            addresses: vec![advertise.to_owned()],
            server_id,
        })
    }

    /// Whether the operator makes this cluster's certificates (`--tls-cert`).
    pub fn external(&self) -> bool {
        self.external.is_some()
    }

    /// The CA that issues certificates now; an error on certificates made
    /// by the operator.
    fn issuing_ca(&self) -> Result<Arc<Ca>> {
        let ca = match self.ca.read() {
            Ok(ca) => ca.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        ca.ok_or_else(|| CodedError::invalid(EXTERNAL_CERTIFICATES))
    }

    /// Reads the operator's certificate, key and CA file again and uses
    /// what changed from the next handshake on. Whether anything changed.
    fn reload_external(&self, files: &ExternalFiles) -> Result<bool> {
        let trusted = drover_tls::read_ca_bundle(&files.ca).map_err(tls_error)?;
        let wanted: Vec<String> = trusted.iter().filter_map(|pem| drover_tls::pem_fingerprint(pem).ok()).collect();
        let mut changed = false;
        if wanted != self.roots.fingerprints() {
            self.roots.replace(&trusted).map_err(tls_error)?;
            drover_tls::write_public(&self.dir.join("ca.pem"), &trusted.concat()).map_err(tls_error)?;
            match self.trusted.write() {
                Ok(mut current) => *current = trusted,
                Err(poisoned) => *poisoned.into_inner() = trusted,
            }
            tracing::info!(ca = %files.ca.display(), "the CA certificates to trust changed; trusting them");
            changed = true;
        }
        let check = |info: &drover_tls::CertInfo| external_server_certificate_problem(info).map_or(Ok(()), Err);
        if self.identity.reload_files(&files.cert, &files.key, check).map_err(tls_error)? {
            tracing::info!(cert = %files.cert.display(), "this server's certificate changed; presenting it");
            changed = true;
        }
        Ok(changed)
    }

    /// The trusted CA certificates (PEM, one each), the issuing one first.
    pub fn trusted_pems(&self) -> Vec<String> {
        match self.trusted.read() {
            Ok(trusted) => trusted.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The configuration of this server's listener (read per connection:
    /// a renewed certificate applies to the next one).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        drover_tls::server_config(Arc::clone(&self.identity), Arc::clone(&self.roots)).map_err(tls_error)
    }

    /// The configuration of this server's connections to its peers (it
    /// presents its own certificate).
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        drover_tls::client_config(Arc::clone(&self.roots), Some(Arc::clone(&self.identity))).map_err(tls_error)
    }

    /// The CA certificates to trust (PEM): the issuing CA first, and
    /// during a CA rotation the other one after it.
    pub fn ca_pem(&self) -> String {
        self.trusted_pems().concat()
    }

    /// The issuing CA's key (PEM), for a server joining with a server join
    /// token (the first certificate of [`ServerTls::ca_pem`] is its CA's).
    pub(crate) fn ca_key_pem(&self) -> Result<String> {
        Ok(self.issuing_ca()?.key_pem().to_owned())
    }

    /// SHA-256 of the issuing CA certificate, hex (what join tokens carry);
    /// on certificates made by the operator, of the first CA trusted.
    pub fn ca_fingerprint(&self) -> String {
        match self.issuing_ca() {
            Ok(ca) => ca.fingerprint(),
            Err(_) => {
                self.trusted_pems().first().and_then(|pem| drover_tls::pem_fingerprint(pem).ok()).unwrap_or_default()
            }
        }
    }

    /// Where the CA certificate is, for operators.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Signs a node's certificate request for `name` with the issuing CA;
    /// returns the chain, what it says, and the SHA-256 of the CA that signed.
    pub fn sign_node(&self, csr_pem: &str, name: &str) -> Result<(String, drover_tls::CertInfo, String)> {
        let ca = self.issuing_ca()?;
        let cert = ca
            .sign_node_csr(csr_pem, name, self.validity)
            .map_err(|error| CodedError::invalid(format!("cannot sign the node's certificate request: {error}")))?;
        let info = drover_tls::cert_info_pem(&cert).map_err(tls_error)?;
        Ok((cert, info, ca.fingerprint()))
    }

    /// Reissues this server's certificate when a third of its life is
    /// left; the listener and the peer connections use it for new
    /// connections at once, live ones keep theirs.
    fn renew_if_due(&self) -> Result<bool> {
        if let Some(files) = &self.external {
            return self.reload_external(files);
        }
        let info = self.identity.info();
        if !info.renewal_due(now_seconds()) {
            return Ok(false);
        }
        self.reissue_server_certificate()?;
        tracing::info!("renewed this server's certificate");
        Ok(true)
    }

    /// Issues this server a new certificate with the issuing CA, keeps it
    /// and presents it from the next handshake on.
    fn reissue_server_certificate(&self) -> Result<()> {
        let issued =
            self.issuing_ca()?.issue_server(self.server_id, &self.addresses, self.validity).map_err(tls_error)?;
        drover_tls::write_public(&self.dir.join("server.pem"), &issued.cert_pem).map_err(tls_error)?;
        drover_tls::write_private(&self.dir.join("server-key.pem"), &issued.key_pem).map_err(tls_error)?;
        self.identity.replace(&issued.cert_pem, &issued.key_pem).map_err(tls_error)
    }
}

/// The CA of `ca.pem` whose key `ca-key.pem` is: normally the first, but
/// a crash in the middle of a CA rotation may have left the key of another.
fn issuing_ca_of(text: &str, pems: &[String], key: &str) -> drover_tls::Result<Ca> {
    match pems.iter().find_map(|pem| Ca::from_pem(pem, key).ok()) {
        Some(ca) => Ok(ca),
        // None matches: the first one's error says why.
        None => Ca::from_pem(text, key),
    }
}

/// A server's certificate made by the operator must say it is a server's
/// (the URI name `drover://server/<number>`), or the other servers would
/// not let it in.
fn check_external_server_certificate(info: &drover_tls::CertInfo, path: &Path) -> Result<()> {
    match external_server_certificate_problem(info) {
        Some(problem) => Err(CodedError::invalid(format!("{}: {problem}", path.display()))),
        None => Ok(()),
    }
}

fn external_server_certificate_problem(info: &drover_tls::CertInfo) -> Option<String> {
    match &info.role {
        Some(PeerRole::Server(_)) => None,
        other => Some(format!(
            "the certificate {} names {}, not a server: a server's certificate needs the URI name drover://server/<number> (one number per server), its addresses as DNS or IP names, and both serverAuth and clientAuth usages (docs/security.md, \"Certificates made by your CA\")",
            info.subject,
            other.as_ref().map_or("no drover:// role".to_owned(), ToString::to_string),
        )),
    }
}

fn now_seconds() -> i64 {
    Timestamp::now().as_millis().div_euclid(1000)
}

fn certificate_is_current(cert_pem: &str, server_id: u64) -> bool {
    let Ok(info) = drover_tls::cert_info_pem(cert_pem) else { return false };
    info.role == Some(PeerRole::Server(server_id)) && !info.renewal_due(now_seconds())
}

/// Renews this server's certificate when two thirds of its life are gone
/// (checked at start, then when due, at least hourly), and follows the
/// rotations of the cluster CA.
pub(crate) fn spawn_renewal(server: Server) {
    let Some(tls) = server.tls().cloned() else { return };
    ca_rotation::spawn(server.clone());
    tokio::spawn(async move {
        loop {
            let wait = match tls.renew_if_due() {
                Ok(_) if tls.external() => EXTERNAL_RELOAD_EVERY,
                Ok(_) => tls.identity.info().wait_before_renewal(now_seconds()),
                Err(error) if tls.external() => {
                    tracing::warn!(%error, "cannot read this server's certificate files again; keeping the current ones");
                    EXTERNAL_RELOAD_EVERY
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot renew this server's certificate; retrying in a minute");
                    Duration::from_secs(60)
                }
            };
            tokio::select! {
                () = server.shutdown_token().cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Why an agent cannot enrol with a cluster on the operator's certificates.
fn external_enrolment_refusal(name: &str) -> String {
    format!(
        "{EXTERNAL_CERTIFICATES}, so agents do not enrol with a join token; make this agent a certificate with your CA (URI name drover://node/{name}, clientAuth) and start it with --tls-cert FILE --tls-key FILE --tls-ca-cert FILE"
    )
}

/// Who is at the other end of a connection, as its certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// No certificate (the CLI, a browser, or an insecure server).
    None,
    /// An enrolled node.
    Node {
        /// Its name.
        name: String,
        /// The certificate's serial.
        serial: String,
    },
    /// A server of this cluster.
    Server(u64),
}

impl Peer {
    /// The peer a verified client certificate names.
    pub fn from_certificate(info: Option<&drover_tls::CertInfo>) -> Peer {
        match info.and_then(|info| info.role.clone().map(|role| (role, info.serial.clone()))) {
            Some((PeerRole::Node(name), serial)) => Peer::Node { name, serial },
            Some((PeerRole::Server(id), _)) => Peer::Server(id),
            None => Peer::None,
        }
    }
}

impl Server {
    /// This server's TLS material (`None` when insecure).
    pub fn tls(&self) -> Option<&Arc<ServerTls>> {
        self.inner.tls.as_ref()
    }

    /// Whether this server enforces ACLs (it is secure).
    pub fn acl_enabled(&self) -> bool {
        self.inner.tls.is_some()
    }

    /// Checks that a node may open a session as `name`: it presented the
    /// certificate the cluster issued it, not revoked. Insecure servers
    /// accept every node.
    pub fn check_node_peer(&self, peer: &Peer, name: &str, hostgroup: Option<&str>) -> Result<()> {
        if self.tls().is_none() {
            return Ok(());
        }
        let state = self.state();
        if let Some(certificate) = state.access().node_certificate(name)
            && !certificate.hostgroups.is_empty()
            && let Some(hostgroup) = hostgroup
            && !certificate
                .hostgroups
                .iter()
                .any(|glob| drover_filter::GlobPattern::new(glob).is_ok_and(|pattern| pattern.matches(hostgroup)))
        {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                format!(
                    "node {name} was enrolled for host groups {} only; it cannot claim {hostgroup:?}",
                    certificate.hostgroups.join(", ")
                ),
            ));
        }
        match peer {
            Peer::Node { name: certified, serial } => {
                if certified != name {
                    return Err(CodedError::new(
                        ErrorCode::Forbidden,
                        format!("the certificate is node {certified}'s; it cannot register as {name}"),
                    ));
                }
                if self.tls().is_some_and(|tls| tls.external()) {
                    // The operator's CA vouched for it; only a revocation
                    // (`drover node revoke`) keeps it out.
                    return match state.access().node_revoked_at(name) {
                        Some(at) => Err(CodedError::new(
                            ErrorCode::Forbidden,
                            format!(
                                "node {name} was revoked at {at}; on certificates made by the operator's CA a revoked name stays refused: give the machine another name and a certificate for it"
                            ),
                        )),
                        None => Ok(()),
                    };
                }
                match state.access().node_certificate_refusal(name, serial) {
                    Some(reason) => Err(CodedError::new(ErrorCode::Forbidden, reason)),
                    None => Ok(()),
                }
            }
            Peer::Server(id) => {
                Err(CodedError::new(ErrorCode::Forbidden, format!("server {id} cannot open an agent session")))
            }
            Peer::None if self.tls().is_some_and(|tls| tls.external()) => Err(CodedError::new(
                ErrorCode::Unauthorized,
                "an agent needs a node certificate made by the operator's CA: start it with --tls-cert, --tls-key and --tls-ca-cert",
            )),
            Peer::None => Err(CodedError::new(
                ErrorCode::Unauthorized,
                "an agent needs its node certificate: start it with --join-token (first start) and its --data-dir",
            )),
        }
    }

    /// Enrols a node: checks the join token and the host group it claims,
    /// signs its certificate request and records the certificate (the
    /// token loses one use). Returns the certificate and the CA (PEM).
    pub async fn enroll_node(
        &self,
        secret: &str,
        name: &str,
        hostgroup: Option<&str>,
        csr_pem: &str,
    ) -> Result<(String, String)> {
        let Some(tls) = self.tls().cloned() else {
            return Err(CodedError::invalid("this server is insecure (--insecure): agents connect without enrolling"));
        };
        if tls.external() {
            return Err(CodedError::new(ErrorCode::Forbidden, external_enrolment_refusal(name)));
        }
        if let Some(problem) = drover_types::validate::name_problem("node name", name) {
            return Err(CodedError::invalid(problem));
        }
        let hash = drover_acl::hash_secret(secret);
        let state = self.state();
        let Some(token) = state.access().join_token_by_secret_hash(&hash) else {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                "the join token is not known to this cluster (deleted, mistyped, or for another cluster)",
            ));
        };
        if state.access().node_certificate(name).is_some() {
            return Err(CodedError::new(ErrorCode::Conflict, drover_state::access::enrolled_already(name)));
        }
        if token.role != drover_types::acl::JoinRole::Agent {
            return Err(CodedError::new(ErrorCode::Forbidden, "this join token enrols servers, not agents"));
        }
        if let Some(reason) = token.refusal(Timestamp::now()) {
            return Err(CodedError::new(ErrorCode::Forbidden, reason));
        }
        if !token.hostgroups.is_empty() {
            let claimed = hostgroup.unwrap_or("");
            let allowed = token
                .hostgroups
                .iter()
                .any(|glob| drover_filter::GlobPattern::new(glob).is_ok_and(|pattern| pattern.matches(claimed)));
            if !allowed {
                return Err(CodedError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "the join token allows host groups {} only; this agent claims {:?} (--hostgroup)",
                        token.hostgroups.join(", "),
                        claimed
                    ),
                ));
            }
        }
        let (cert, info, issuer) = tls.sign_node(csr_pem, name)?;
        self.propose(drover_state::Command::Access {
            op: drover_state::access::AccessOp::SetNodeCertificate {
                name: name.to_owned(),
                serial: info.serial.clone(),
                not_after: Timestamp::from_millis(info.not_after.saturating_mul(1000)),
                join_secret_hash: Some(hash),
                hostgroups: token.hostgroups.clone(),
                now: Timestamp::now(),
            },
        })
        .await?
        .into_result()?;
        self.note_node_reissued(name, &info.serial, &issuer).await;
        tracing::info!(node = name, serial = %info.serial, "enrolled a node");
        Ok((cert, tls.ca_pem().to_owned()))
    }

    /// Renews the certificate of a connected, enrolled node.
    pub async fn renew_node(&self, peer: &Peer, csr_pem: &str) -> Result<String> {
        let Some(tls) = self.tls().cloned() else {
            return Err(CodedError::invalid("this server is insecure (--insecure): there is nothing to renew"));
        };
        if tls.external() {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                format!(
                    "{EXTERNAL_CERTIFICATES}; renew a node's certificate with your CA and replace its --tls-cert and --tls-key files (the agent reads them again every minute)"
                ),
            ));
        }
        let Peer::Node { name, .. } = peer else {
            return Err(CodedError::new(ErrorCode::Unauthorized, "renewal needs the node's current certificate"));
        };
        self.check_node_peer(peer, name, None)?;
        let (cert, info, issuer) = tls.sign_node(csr_pem, name)?;
        self.propose(drover_state::Command::Access {
            op: drover_state::access::AccessOp::SetNodeCertificate {
                name: name.clone(),
                serial: info.serial.clone(),
                not_after: Timestamp::from_millis(info.not_after.saturating_mul(1000)),
                join_secret_hash: None,
                hostgroups: Vec::new(),
                now: Timestamp::now(),
            },
        })
        .await?
        .into_result()?;
        self.note_node_reissued(name, &info.serial, &issuer).await;
        tracing::info!(node = %name, serial = %info.serial, "renewed a node's certificate");
        Ok(cert)
    }
}
