//! The rustls configurations drover uses: the server side of the one port,
//! the client side for agents, servers and the CLI, and the pinned client
//! an agent enrols with.
//!
//! None of them resumes TLS sessions: a resumed session keeps reporting the
//! certificate of its first handshake, which would defeat renewal and
//! revocation (ADR 0001). All of them offer ALPN `http/1.1` only: the API,
//! the agent WebSocket and the server-to-server routes are HTTP/1.1.
//!
//! Trust is read from [`Roots`] at every handshake through small verifiers
//! that delegate to the WebPKI verifiers `Roots` rebuilds when it changes,
//! so one configuration serves for the life of the process.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::NoServerSessionStorage;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use crate::cert_info::sha256_hex;
use crate::error::{Result, TlsError};
use crate::identity::{CurrentIdentity, Identity, Roots};
use crate::provider;

/// The one application protocol of the port.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// The server side: presents the identity's current certificate; asks for a
/// client certificate, verifies it against the current roots when one is
/// presented, and lets clients without one in (they authenticate with a
/// token, and each route decides who may call it).
pub fn server_config(identity: Arc<Identity>, roots: Arc<Roots>) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::config)?
        .with_client_cert_verifier(Arc::new(CurrentRootsClientVerifier { roots }))
        .with_cert_resolver(Arc::new(CurrentIdentity(identity)));
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client side: verifies the server against the current roots and the
/// name or IP address dialled, and presents the identity's current
/// certificate when there is one (agents and servers; the CLI has none).
pub fn client_config(roots: Arc<Roots>, identity: Option<Arc<Identity>>) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CurrentRootsServerVerifier { roots }));
    let mut config = match identity {
        Some(identity) => builder.with_client_cert_resolver(Arc::new(CurrentIdentity(identity))),
        None => builder.with_no_client_auth(),
    };
    finish_client(&mut config);
    Ok(config)
}

/// The client an agent enrols with, knowing only the CA hash of its join
/// token: the server is accepted only if the chain it presents holds a
/// certificate whose SHA-256 is `ca_sha256` *and* its certificate verifies
/// against that one for the name dialled. Presents no certificate.
pub fn pinned_client_config(ca_sha256: &str) -> Result<ClientConfig> {
    let pinned = ca_sha256.trim().to_ascii_lowercase();
    if pinned.len() != 64 || !pinned.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(TlsError::invalid(
            "the CA hash of the join token",
            format!("{ca_sha256:?} is not 64 hex characters (a SHA-256); copy the whole token again"),
        ));
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier { ca_sha256: pinned }))
        .with_no_client_auth();
    finish_client(&mut config);
    Ok(config)
}

fn finish_client(config: &mut ClientConfig) {
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
}

/// The WebPKI client verifier of the current roots, plus revocation.
#[derive(Debug)]
struct CurrentRootsClientVerifier {
    roots: Arc<Roots>,
}

impl ClientCertVerifier for CurrentRootsClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: they would have to borrow from roots that may be swapped
    /// meanwhile, and an empty list tells a client to send whatever
    /// certificate it has, which is what drover's clients do anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self.roots.client_verifier().verify_client_cert(end_entity, intermediates, now)?;
        self.roots.check_not_revoked(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.roots.client_verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.roots.client_verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.roots.client_verifier().supported_verify_schemes()
    }
}

/// The WebPKI server verifier of the current roots, plus revocation.
#[derive(Debug)]
struct CurrentRootsServerVerifier {
    roots: Arc<Roots>,
}

impl ServerCertVerifier for CurrentRootsServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verified = self.roots.server_verifier().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.roots.check_not_revoked(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.roots.server_verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.roots.server_verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.roots.server_verifier().supported_verify_schemes()
    }
}

/// Trusts the one certificate in the server's chain whose SHA-256 is the
/// pinned hash, and only for verifying that chain.
#[derive(Debug)]
struct PinnedCaVerifier {
    ca_sha256: String,
}

/// Why a pinned handshake was refused, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's CA does not match the join token: none of the {presented} certificates it presented has SHA-256 {pinned}; check that the token belongs to this cluster and that the address is one of its servers"
)]
struct CaDoesNotMatchJoinToken {
    presented: usize,
    pinned: String,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(pinned_position) =
            intermediates.iter().position(|certificate| sha256_hex(certificate) == self.ca_sha256)
        else {
            // `Error::Other` shows our words; a `CertificateError` would show its Debug form.
            return Err(rustls::Error::Other(rustls::OtherError(Arc::new(CaDoesNotMatchJoinToken {
                presented: intermediates.len() + 1,
                pinned: self.ca_sha256.clone(),
            }))));
        };
        let mut store = RootCertStore::empty();
        store.add(intermediates[pinned_position].clone().into_owned())?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .enumerate()
            .filter(|(position, _)| *position != pinned_position)
            .map(|(_, certificate)| certificate.clone())
            .collect();
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        verifier.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}
