//! Hot-reloadable TLS material: our own identity (certificate and key) and
//! the CA certificates we trust.
//!
//! Both sit behind an `ArcSwap` that every handshake reads, so a renewed
//! certificate or a rotated CA applies to the next connection while the
//! connections already open carry on with what they negotiated. The
//! rustls configurations of [`crate::config`] hold these objects, never a
//! copy of their contents.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{RootCertStore, SignatureScheme};

use crate::cert_info::{CertInfo, cert_info_der, certificates_from_pem, no_certificate, sha256_hex};
use crate::error::{Result, TlsError};
use crate::provider;

/// Our certificate chain and key, replaceable while connections use it.
pub struct Identity {
    current: ArcSwap<LoadedIdentity>,
}

struct LoadedIdentity {
    certified: Arc<CertifiedKey>,
    info: CertInfo,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Identity").field("certificate", &self.current.load().info).finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity from a PEM chain (our certificate first) and its PEM key.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Identity>> {
        let loaded = load_identity(cert_pem, key_pem)?;
        Ok(Arc::new(Identity { current: ArcSwap::from_pointee(loaded) }))
    }

    /// Reads an identity from its two files (certificates made by an
    /// operator's CA, `--tls-cert`/`--tls-key`); the key file must be
    /// private, the key the certificate's, and the certificate valid now.
    /// An error names the file it is about.
    pub fn read_files(cert_path: &Path, key_path: &Path) -> Result<Arc<Identity>> {
        let loaded = load_files(cert_path, key_path)?;
        Ok(Arc::new(Identity { current: ArcSwap::from_pointee(loaded) }))
    }

    /// Reads the two files again and swaps them in when they hold another
    /// certificate than the current one (an operator renewed it) and
    /// `check` accepts what it says. Whether the certificate changed; on
    /// error the current one stays.
    pub fn reload_files(
        &self,
        cert_path: &Path,
        key_path: &Path,
        check: impl FnOnce(&CertInfo) -> std::result::Result<(), String>,
    ) -> Result<bool> {
        let loaded = load_files(cert_path, key_path)?;
        if loaded.info.fingerprint == self.current.load().info.fingerprint {
            return Ok(false);
        }
        check(&loaded.info).map_err(|reason| TlsError::invalid("the certificate", reason).in_file(cert_path))?;
        self.current.store(Arc::new(loaded));
        Ok(true)
    }

    /// Swaps in a new certificate and key: new handshakes use them, live
    /// connections are not touched. On error the old identity stays.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let loaded = load_identity(cert_pem, key_pem)?;
        self.current.store(Arc::new(loaded));
        Ok(())
    }

    /// What the current certificate says.
    pub fn info(&self) -> CertInfo {
        self.current.load().info.clone()
    }

    /// SHA-256 of the certificate after ours in the chain (the CA that
    /// issued ours, in chains drover issues), lowercase hex; `None` for a
    /// chain of one.
    pub fn issuer_fingerprint(&self) -> Option<String> {
        self.current.load().certified.cert.get(1).map(|issuer| sha256_hex(issuer))
    }

    /// The current certificate chain and signing key, as rustls uses them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.load().certified)
    }
}

fn load_files(cert_path: &Path, key_path: &Path) -> Result<LoadedIdentity> {
    let cert_pem = crate::files::read_public(cert_path)?;
    let key_pem = crate::files::read_private(key_path)?;
    let chain = read_chain(&cert_pem).map_err(|error| error.in_file(cert_path))?;
    check_leaf_valid_now(&chain).map_err(|error| error.in_file(cert_path))?;
    let signing_key = read_key(&key_pem).map_err(|error| error.in_file(key_path))?;
    pair(chain, signing_key).map_err(|error| error.in_file(key_path))
}

/// Refuses a chain whose first certificate has expired or is not valid yet.
fn check_leaf_valid_now(chain: &[CertificateDer<'static>]) -> Result<()> {
    let Some(leaf) = chain.first() else {
        return Err(no_certificate("the certificate"));
    };
    let (_rest, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|error| TlsError::invalid("the certificate", format!("it cannot be parsed as X.509: {error}")))?;
    crate::ca::check_valid_now(&parsed, "the certificate", "make a new one with your CA")
}

fn load_identity(cert_pem: &str, key_pem: &str) -> Result<LoadedIdentity> {
    let chain = read_chain(cert_pem)?;
    let signing_key = read_key(key_pem)?;
    pair(chain, signing_key)
}

fn read_chain(cert_pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let chain = certificates_from_pem(cert_pem, "the certificate")?;
    if chain.is_empty() {
        return Err(no_certificate("the certificate"));
    }
    Ok(chain)
}

fn read_key(key_pem: &str) -> Result<Arc<dyn SigningKey>> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|error| TlsError::invalid("the private key", format!("it cannot be read as PEM: {error}")))?;
    provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::invalid("the private key", format!("rustls cannot sign with it: {error}")))
}

/// Puts a chain and a key together, refusing a key of another certificate.
fn pair(chain: Vec<CertificateDer<'static>>, signing_key: Arc<dyn SigningKey>) -> Result<LoadedIdentity> {
    let Some(leaf) = chain.first() else {
        return Err(no_certificate("the certificate"));
    };
    let info = cert_info_der(leaf)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::invalid(
                "the private key",
                format!("it does not belong to the certificate {} (their public keys differ)", info.subject),
            ));
        }
        Err(error) => return Err(TlsError::invalid("the certificate", error)),
    }
    Ok(LoadedIdentity { certified: Arc::new(certified), info })
}

/// The CA certificates we trust (several while a CA is being rotated) and
/// the serials we no longer accept.
pub struct Roots {
    current: ArcSwap<TrustedRoots>,
    revoked_serials: ArcSwap<HashSet<String>>,
}

struct TrustedRoots {
    fingerprints: Vec<String>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<WebPkiServerVerifier>,
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Roots")
            .field("fingerprints", &self.current.load().fingerprints)
            .field("revoked_serials", &self.revoked_serials.load().len())
            .finish()
    }
}

impl Roots {
    /// Trusts the CA certificates in `ca_pems` (each text may hold several).
    pub fn new(ca_pems: &[String]) -> Result<Arc<Roots>> {
        let trusted = trusted_roots(ca_pems)?;
        Ok(Arc::new(Roots {
            current: ArcSwap::from_pointee(trusted),
            revoked_serials: ArcSwap::from_pointee(HashSet::new()),
        }))
    }

    /// Trusts these CA certificates from the next handshake on. On error
    /// the old ones stay.
    pub fn replace(&self, ca_pems: &[String]) -> Result<()> {
        let trusted = trusted_roots(ca_pems)?;
        self.current.store(Arc::new(trusted));
        Ok(())
    }

    /// SHA-256 fingerprints of the trusted CA certificates.
    pub fn fingerprints(&self) -> Vec<String> {
        self.current.load().fingerprints.clone()
    }

    /// Whether the CA certificate whose SHA-256 is `fingerprint` is trusted.
    pub fn trusts(&self, fingerprint: &str) -> bool {
        self.current.load().fingerprints.iter().any(|trusted| trusted == fingerprint)
    }

    /// Refuses certificates with these serials (lowercase hex, as in
    /// [`CertInfo::serial`]) from the next handshake on, on both sides.
    /// Live connections are the caller's to end.
    pub fn set_revoked_serials(&self, serials: impl IntoIterator<Item = String>) {
        let serials: HashSet<String> = serials.into_iter().map(|serial| serial.to_ascii_lowercase()).collect();
        self.revoked_serials.store(Arc::new(serials));
    }

    /// Whether the serial (lowercase hex) has been revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.revoked_serials.load().contains(serial)
    }

    pub(crate) fn client_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.current.load().client_verifier)
    }

    pub(crate) fn server_verifier(&self) -> Arc<WebPkiServerVerifier> {
        Arc::clone(&self.current.load().server_verifier)
    }

    /// Refuses a verified end-entity certificate whose serial was revoked.
    pub(crate) fn check_not_revoked(&self, end_entity: &[u8]) -> std::result::Result<(), rustls::Error> {
        if self.revoked_serials.load().is_empty() {
            return Ok(());
        }
        let info = cert_info_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        if self.is_revoked(&info.serial) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        }
        Ok(())
    }
}

fn trusted_roots(ca_pems: &[String]) -> Result<TrustedRoots> {
    let mut store = RootCertStore::empty();
    let mut fingerprints = Vec::new();
    for ca_pem in ca_pems {
        for certificate in certificates_from_pem(ca_pem, "a trusted CA certificate")? {
            fingerprints.push(sha256_hex(&certificate));
            store.add(certificate).map_err(|error| TlsError::invalid("a trusted CA certificate", error))?;
        }
    }
    if store.is_empty() {
        return Err(TlsError::invalid(
            "the trusted CA certificates",
            "none was given; pass the cluster CA certificate (ca.pem)",
        ));
    }
    let store = Arc::new(store);
    let client_verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&store), provider())
        .allow_unauthenticated()
        .build()
        .map_err(TlsError::config)?;
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(store, provider()).build().map_err(TlsError::config)?;
    Ok(TrustedRoots { fingerprints, client_verifier, server_verifier })
}

/// Hands rustls the identity's current certificate at every handshake, on
/// either side of the connection.
#[derive(Debug)]
pub(crate) struct CurrentIdentity(pub(crate) Arc<Identity>);

impl ResolvesServerCert for CurrentIdentity {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.certified_key())
    }
}

impl ResolvesClientCert for CurrentIdentity {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
