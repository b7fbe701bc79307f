//! The node's certificate: enrolment with a join token on first start,
//! renewal before expiry, and the TLS connector of the session.
//!
//! ```text
//!  DATA_DIR/tls/ (0700)   node.pem  node-key.pem (0600)  ca.pem
//!
//!  first start, --join-token drover1.<CA sha256>.<secret>:
//!    connect to a server, accept it only if its chain holds the CA whose
//!    SHA-256 the token carries ─▶ POST /v1/agent/enroll {secret, name,
//!    host group, certificate request} ─▶ node certificate + CA, kept here
//!  later starts: the files; no token needed
//!  every hour: a third of the certificate's life left ─▶ POST /v1/agent/renew
//!    (mutual TLS with the current certificate) ─▶ the new one is used for
//!    the next connection; the live session goes on
//!  the session's `Tls` message (the CA being rotated): trust the CAs it
//!    lists (ca.pem is rewritten), and renew at once when another CA than
//!    the one it names issued the certificate
//! ```
//!
//! Or certificates made by the operator's CA (`--tls-cert`, `--tls-key`,
//! `--tls-ca-cert`, [`NodeTlsFiles`]), for a cluster whose servers issue
//! none: no enrolment, no renewal by the servers; the files are read at
//! start and again every minute, so replacing them renews them.
//!
//! Without certificates and without a join token the agent speaks plain
//! WebSocket (`ws://`), for servers started with `--insecure`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drover_proto::api::{EnrollRequest, NodeCertificateResponse, RenewRequest};
use drover_tls::{Identity, Roots};
use tokio_util::sync::CancellationToken;

use crate::AgentError;

/// How long enrolment keeps trying to reach a server at start.
const ENROL_PATIENCE: Duration = Duration::from_secs(60);

/// How often the files of [`NodeTlsFiles`] are read again.
const EXTERNAL_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// A node certificate made by the operator's CA, where the operator keeps
/// it: the agent reads these files and never writes them.
#[derive(Clone, Debug)]
pub struct NodeTlsFiles {
    /// The node's certificate (PEM; URI name `drover://node/<name>`), its chain after it.
    pub cert: PathBuf,
    /// Its key (PEM, readable by its owner only).
    pub key: PathBuf,
    /// The CA certificates to verify the servers with (PEM).
    pub ca: PathBuf,
}

/// A node's TLS material.
pub(crate) struct NodeTls {
    dir: PathBuf,
    /// The operator's files, when the operator made the certificate.
    external: Option<NodeTlsFiles>,
    identity: Arc<Identity>,
    roots: Arc<Roots>,
    /// The CA the servers issue with now (SHA-256), once a session said.
    issuer: std::sync::Mutex<Option<String>>,
    /// Wakes the renewal loop when the certificate must be reissued early.
    renew_now: tokio::sync::Notify,
}

/// How long the renewal loop waits before it asks again for a certificate
/// of the issuing CA, after a server that has not switched yet answered
/// with one of the old CA.
const REISSUE_RETRY: Duration = Duration::from_secs(3);

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NodeTls").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn tls_failure(error: impl std::fmt::Display) -> AgentError {
    AgentError::Tls(error.to_string())
}

impl NodeTls {
    /// Loads the node's certificate, or enrols with `join_token`; `None`
    /// when there is neither (an insecure cluster).
    pub(crate) async fn prepare(
        data_dir: &Path,
        name: &str,
        hostgroup: Option<&str>,
        servers: &[String],
        join_token: Option<&str>,
        files: Option<&NodeTlsFiles>,
    ) -> Result<Option<Arc<NodeTls>>, AgentError> {
        drover_tls::install_crypto_provider();
        let dir = data_dir.join("tls");
        if let Some(files) = files {
            if join_token.is_some() {
                return Err(AgentError::Tls(
                    "--join-token and --tls-cert cannot both be set: an agent with a certificate made by your CA does not enrol; leave out one of them".to_owned(),
                ));
            }
            let identity = drover_tls::Identity::read_files(&files.cert, &files.key).map_err(tls_failure)?;
            if let Some(problem) = node_certificate_problem(&identity.info(), name) {
                return Err(AgentError::Tls(format!("{}: {problem}", files.cert.display())));
            }
            let trusted = drover_tls::read_ca_bundle(&files.ca).map_err(tls_failure)?;
            let roots = Roots::new(&trusted).map_err(tls_failure)?;
            tracing::info!(node = name, cert = %files.cert.display(), "using a node certificate made by the operator's CA");
            let mut tls = NodeTls::fresh(dir, identity, roots);
            tls.external = Some(files.clone());
            return Ok(Some(Arc::new(tls)));
        }
        let (cert_path, key_path, ca_path) = (dir.join("node.pem"), dir.join("node-key.pem"), dir.join("ca.pem"));
        if key_path.exists() {
            let cert = drover_tls::read_public(&cert_path).map_err(tls_failure)?;
            let key = drover_tls::read_private(&key_path).map_err(tls_failure)?;
            let ca = drover_tls::read_public(&ca_path).map_err(tls_failure)?;
            let certified = drover_tls::cert_info_pem(&cert).map_err(tls_failure)?;
            if certified.role != Some(drover_tls::PeerRole::Node(name.to_owned())) {
                return Err(AgentError::Tls(format!(
                    "{} certifies {:?}, not node {name}; start with --name matching it, or remove {} and enrol again with --join-token",
                    cert_path.display(),
                    certified.role,
                    dir.display()
                )));
            }
            let identity = Identity::new(&cert, &key).map_err(tls_failure)?;
            let roots = Roots::new(&[ca]).map_err(tls_failure)?;
            return Ok(Some(NodeTls::new(dir, identity, roots)));
        }
        let Some(join_token) = join_token else { return Ok(None) };
        let token = drover_acl::JoinTokenText::parse(join_token)
            .map_err(|problem| AgentError::Tls(format!("--join-token: {problem}")))?;
        drover_tls::ensure_private_dir(&dir).map_err(tls_failure)?;
        let (csr, key) = drover_tls::node_csr(name).map_err(tls_failure)?;
        let config = drover_tls::pinned_client_config(&token.ca_sha256).map_err(tls_failure)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tls_backend_preconfigured(config)
            .build()
            .map_err(tls_failure)?;
        let request = EnrollRequest {
            secret: token.secret.clone(),
            name: name.to_owned(),
            hostgroup: hostgroup.map(str::to_owned),
            csr,
        };
        let deadline = tokio::time::Instant::now() + ENROL_PATIENCE;
        let mut last_problem = String::from("no server was given");
        let answer = 'enrol: loop {
            for server in servers {
                let url = format!("https://{}{}", bare(server), drover_proto::paths::AGENT_ENROLL);
                match http.post(&url).json(&request).send().await {
                    Ok(response) if response.status().is_success() => {
                        match response.json::<NodeCertificateResponse>().await {
                            Ok(answer) => break 'enrol answer,
                            Err(error) => last_problem = format!("{server}: unreadable answer: {error}"),
                        }
                    }
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        let message = serde_json::from_str::<drover_types::CodedError>(&text)
                            .map(|error| error.message)
                            .unwrap_or(text);
                        // The cluster said no: trying again will not help.
                        return Err(AgentError::Tls(format!("enrolment refused by {server} ({status}): {message}")));
                    }
                    Err(error) => {
                        last_problem = format!("{server}: {}", drover_types::error::error_chain(&error));
                        // A server whose CA is not the token's will not become it.
                        if last_problem.contains("does not match the join token") {
                            return Err(AgentError::Tls(format!("cannot enrol: {last_problem}")));
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AgentError::Tls(format!("cannot enrol: no server answered ({last_problem})")));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        drover_tls::write_public(&ca_path, &answer.ca).map_err(tls_failure)?;
        drover_tls::write_private(&key_path.with_extension("pem.new"), &key).map_err(tls_failure)?;
        drover_tls::write_public(&cert_path, &answer.certificate).map_err(tls_failure)?;
        std::fs::rename(key_path.with_extension("pem.new"), &key_path)
            .map_err(|error| AgentError::Tls(format!("cannot keep the node key: {error}")))?;
        tracing::info!(node = name, "enrolled: node certificate kept in {}", dir.display());
        let identity = Identity::new(&answer.certificate, &key).map_err(tls_failure)?;
        let roots = Roots::new(&[answer.ca]).map_err(tls_failure)?;
        Ok(Some(NodeTls::new(dir, identity, roots)))
    }

    fn new(dir: PathBuf, identity: Arc<Identity>, roots: Arc<Roots>) -> Arc<NodeTls> {
        Arc::new(NodeTls::fresh(dir, identity, roots))
    }

    fn fresh(dir: PathBuf, identity: Arc<Identity>, roots: Arc<Roots>) -> NodeTls {
        NodeTls {
            dir,
            external: None,
            identity,
            roots,
            issuer: std::sync::Mutex::new(None),
            renew_now: Default::default(),
        }
    }

    /// Reads the operator's files again; what changed is used from the
    /// next handshake on. Whether anything changed.
    fn reload_external(&self, files: &NodeTlsFiles, name: &str) -> Result<bool, AgentError> {
        let trusted = drover_tls::read_ca_bundle(&files.ca).map_err(tls_failure)?;
        let wanted: Vec<String> = trusted.iter().filter_map(|pem| drover_tls::pem_fingerprint(pem).ok()).collect();
        let mut changed = false;
        if wanted != self.roots.fingerprints() {
            self.roots.replace(&trusted).map_err(tls_failure)?;
            tracing::info!(ca = %files.ca.display(), "the CA certificates to trust changed; trusting them");
            changed = true;
        }
        let check = |info: &drover_tls::CertInfo| node_certificate_problem(info, name).map_or(Ok(()), Err);
        if self.identity.reload_files(&files.cert, &files.key, check).map_err(tls_failure)? {
            tracing::info!(cert = %files.cert.display(), "the node certificate changed; presenting it");
            changed = true;
        }
        Ok(changed)
    }

    /// What the session's `Tls` message says: trust exactly `trusted_cas`
    /// from the next handshake on (kept in `ca.pem`), and renew at once
    /// when `issuer` did not issue the current certificate.
    pub(crate) fn follow_servers(&self, trusted_cas: &[String], issuer: &str) {
        if self.external.is_some() {
            // The operator's --tls-ca-cert file says what to trust.
            return;
        }
        let wanted: Vec<String> = trusted_cas.iter().filter_map(|pem| drover_tls::pem_fingerprint(pem).ok()).collect();
        let mut current = self.roots.fingerprints();
        current.sort();
        let mut sorted = wanted.clone();
        sorted.sort();
        if !wanted.is_empty() && sorted != current {
            match self.roots.replace(trusted_cas) {
                Ok(()) => {
                    let bundle: String = trusted_cas.concat();
                    if let Err(error) = drover_tls::write_public(&self.dir.join("ca.pem"), &bundle) {
                        tracing::warn!(%error, "cannot keep the trusted CAs in ca.pem");
                    }
                    tracing::info!(cas = ?wanted, "the servers' trusted CAs changed; trusting them");
                }
                Err(error) => tracing::warn!(%error, "the servers sent CA certificates that cannot be used"),
            }
        }
        if let Ok(mut wanted_issuer) = self.issuer.lock() {
            *wanted_issuer = Some(issuer.to_owned());
        }
        if self.needs_reissue() {
            self.renew_now.notify_one();
        }
    }

    /// Whether the current certificate comes from another CA than the one
    /// the servers issue with now.
    fn needs_reissue(&self) -> bool {
        let wanted = self.issuer.lock().ok().and_then(|issuer| issuer.clone());
        wanted.is_some_and(|wanted| self.identity.issuer_fingerprint().as_deref() != Some(wanted.as_str()))
    }

    /// The TLS configuration of connections to the servers (presenting
    /// the node's current certificate).
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, AgentError> {
        drover_tls::client_config(Arc::clone(&self.roots), Some(Arc::clone(&self.identity))).map_err(tls_failure)
    }

    /// Renews the certificate when a third of its life is left, or at once
    /// when another CA than the servers' issuing one made it.
    async fn renew_if_due(&self, servers: &[String], name: &str) -> Result<bool, AgentError> {
        let info = self.identity.info();
        if !info.renewal_due(now_seconds()) && !self.needs_reissue() {
            return Ok(false);
        }
        let (csr, key) = drover_tls::node_csr(name).map_err(tls_failure)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tls_backend_preconfigured(self.client_config()?)
            .build()
            .map_err(tls_failure)?;
        let mut last_problem = String::new();
        for server in servers {
            let url = format!("https://{}{}", bare(server), drover_proto::paths::AGENT_RENEW);
            match http.post(&url).json(&RenewRequest { csr: csr.clone() }).send().await {
                Ok(response) if response.status().is_success() => {
                    let answer: NodeCertificateResponse = response.json().await.map_err(tls_failure)?;
                    drover_tls::write_private(&self.dir.join("node-key.pem.new"), &key).map_err(tls_failure)?;
                    drover_tls::write_public(&self.dir.join("node.pem"), &answer.certificate).map_err(tls_failure)?;
                    std::fs::rename(self.dir.join("node-key.pem.new"), self.dir.join("node-key.pem"))
                        .map_err(|error| AgentError::Tls(format!("cannot keep the node key: {error}")))?;
                    self.identity.replace(&answer.certificate, &key).map_err(tls_failure)?;
                    tracing::info!(node = name, "renewed the node certificate");
                    return Ok(true);
                }
                Ok(response) => last_problem = format!("{server}: {}", response.status()),
                Err(error) => last_problem = format!("{server}: {}", drover_types::error::error_chain(&error)),
            }
        }
        Err(AgentError::Tls(format!("cannot renew the node certificate: {last_problem}")))
    }
}

/// Renews the node's certificate when two thirds of its life are gone
/// (checked at start, then when due, at least hourly; a minute after a
/// failure).
pub(crate) fn spawn_renewal(tls: Arc<NodeTls>, servers: Vec<String>, name: String, shutdown: CancellationToken) {
    tokio::spawn(async move {
        if let Some(files) = tls.external.clone() {
            loop {
                if let Err(error) = tls.reload_external(&files, &name) {
                    tracing::warn!(%error, "cannot read the node certificate files again; keeping the current ones");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(EXTERNAL_RELOAD_EVERY) => {}
                }
            }
        }
        loop {
            let wait = match tls.renew_if_due(&servers, &name).await {
                Ok(_) if tls.needs_reissue() => REISSUE_RETRY,
                Ok(_) => tls.identity.info().wait_before_renewal(now_seconds()),
                Err(error) => {
                    tracing::warn!(%error, "node certificate renewal failed; retrying in a minute");
                    Duration::from_secs(60)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = tls.renew_now.notified() => {}
            }
        }
    });
}

fn now_seconds() -> i64 {
    drover_types::Timestamp::now().as_millis().div_euclid(1000)
}

/// `host:port` without a scheme.
pub(crate) fn bare(address: &str) -> &str {
    address.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/')
}

/// What is wrong with a node certificate made by the operator for node
/// `name`, if anything: it must name the node as drover does.
fn node_certificate_problem(info: &drover_tls::CertInfo, name: &str) -> Option<String> {
    match &info.role {
        Some(drover_tls::PeerRole::Node(certified)) if certified == name => None,
        other => Some(format!(
            "the certificate {} names {}, not node {name}: a node's certificate needs the URI name drover://node/{name} (its --name) and the clientAuth usage (docs/security.md, \"Certificates made by your CA\")",
            info.subject,
            other.as_ref().map_or("no drover:// role".to_owned(), ToString::to_string),
        )),
    }
}
