//! drover's TLS: the cluster certificate authority, the certificates it
//! issues, hot-reloadable identities and trusted roots, the rustls
//! configurations built on them, and the listener that serves the API, the
//! agent sessions and the server-to-server routes on one port.
//!
//! The decisions behind it are in `docs/dev/adr/0001-tls-crypto-and-one-port.md`:
//! one crypto provider (aws-lc-rs), client certificates optional on the
//! port (each route decides who may call it, from [`PeerInfo`]), no session
//! resumption, certificates renewed and CAs rotated without dropping a
//! connection.
//!
//! A server, in short:
//!
//! ```no_run
//! # async fn serve(ca: drover_tls::Ca, router: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! use drover_tls::{Identity, PeerInfo, Roots, TlsListener};
//! drover_tls::install_crypto_provider();
//! let issued = ca.issue_server(1, &["10.0.0.1:4646".to_owned()], std::time::Duration::from_secs(30 * 86_400))?;
//! let identity = Identity::new(&issued.cert_pem, &issued.key_pem)?;
//! let roots = Roots::new(&[ca.cert_pem().to_owned()])?;
//! let config = drover_tls::server_config(identity, roots)?;
//! let tcp = tokio::net::TcpListener::bind("0.0.0.0:4646").await?;
//! let listener = TlsListener::with_server_config(tcp, config);
//! axum::serve(listener, router.into_make_service_with_connect_info::<PeerInfo>()).await?;
//! # Ok(())
//! # }
//! ```

mod ca;
mod cert_info;
mod config;
mod error;
mod files;
mod identity;
mod listener;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use ca::{CA_VALIDITY, CLOCK_SKEW_ALLOWANCE, Ca, Issued, MAX_NODE_NAME_BYTES, node_csr, read_ca_bundle};
pub use cert_info::{CertInfo, PeerRole, cert_info_der, cert_info_pem, certificate_pems, pem_fingerprint, sha256_hex};
pub use config::{ALPN_HTTP_1_1, client_config, pinned_client_config, server_config};
pub use error::{Result, TlsError};
pub use files::{
    MAX_PEM_FILE_BYTES, check_private_mode, ensure_private_dir, read_key_file, read_private, read_public,
    write_private, write_public,
};
pub use identity::{Identity, Roots};
pub use listener::{
    DEFAULT_BLOCK_DURATION, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONCURRENT_HANDSHAKES,
    DEFAULT_MAX_FAILURES_PER_SECOND, PLAIN_HTTP_ANSWER, PeerInfo, ServerConfigSource, TlsListener,
};

/// Makes aws-lc-rs the process's rustls crypto provider. Call it once at
/// start; calling it again, or after something else installed a provider,
/// does nothing.
pub fn install_crypto_provider() {
    // An error only says a provider is already installed, which is the goal.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The provider the configurations of this crate use: the installed one, or
/// aws-lc-rs when none is, so that forgetting [`install_crypto_provider`]
/// is never a panic.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    match CryptoProvider::get_default() {
        Some(installed) => Arc::clone(installed),
        None => Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    }
}
