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

/// A node's TLS material.
pub(crate) struct NodeTls {
    dir: PathBuf,
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
    ) -> Result<Option<Arc<NodeTls>>, AgentError> {
        drover_tls::install_crypto_provider();
        let dir = data_dir.join("tls");
        let (cert_path, key_path, ca_path) = (dir.join("node.pem"), dir.join("node-key.pem"), dir.join("ca.pem"));
        if key_path.exists() {
            let cert = read(&cert_path)?;
            let key = drover_tls::read_private(&key_path).map_err(tls_failure)?;
            let ca = read(&ca_path)?;
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
        Arc::new(NodeTls { dir, identity, roots, issuer: std::sync::Mutex::new(None), renew_now: Default::default() })
    }

    /// What the session's `Tls` message says: trust exactly `trusted_cas`
    /// from the next handshake on (kept in `ca.pem`), and renew at once
    /// when `issuer` did not issue the current certificate.
    pub(crate) fn follow_servers(&self, trusted_cas: &[String], issuer: &str) {
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

fn read(path: &Path) -> Result<String, AgentError> {
    std::fs::read_to_string(path).map_err(|error| AgentError::Tls(format!("cannot read {}: {error}", path.display())))
}
