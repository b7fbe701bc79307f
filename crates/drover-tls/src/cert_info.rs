//! What a certificate says about its holder: its role in the cluster, its
//! serial, fingerprint and validity.
//!
//! The role is read from a URI subject alternative name that only the
//! cluster CA writes: `drover://server/<id>` or `drover://node/<name>`.
//! The names mean something only once the certificate has been verified
//! against the cluster CA, which the TLS handshake does before any of this
//! is read.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use crate::error::{Result, TlsError};

/// The scheme and authority of the URI names that carry roles.
pub(crate) const SERVER_URI_PREFIX: &str = "drover://server/";
pub(crate) const NODE_URI_PREFIX: &str = "drover://node/";

/// The role a certificate gives its holder in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// A server, by its Raft id.
    Server(u64),
    /// A client node (an agent), by its node name.
    Node(String),
}

impl std::fmt::Display for PeerRole {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerRole::Server(id) => write!(formatter, "server {id}"),
            PeerRole::Node(name) => write!(formatter, "node {name}"),
        }
    }
}

/// What drover reads from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The role named by the certificate's `drover://` URI, if it has exactly one.
    pub role: Option<PeerRole>,
    /// The serial number, lowercase hex without leading zero bytes.
    pub serial: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The subject as text, e.g. `CN=server-1`.
    pub subject: String,
}

impl CertInfo {
    /// When the certificate should be renewed: two thirds into its validity,
    /// in Unix seconds.
    ///
    /// The validity drover gives starts [`crate::CLOCK_SKEW_ALLOWANCE`]
    /// before the certificate was issued; the two thirds are counted from
    /// the issue, so that a short-lived certificate is not due at once.
    pub fn renew_after(&self) -> i64 {
        let allowance = i64::try_from(crate::CLOCK_SKEW_ALLOWANCE.as_secs()).unwrap_or(0);
        let issued = self.not_before.saturating_add(allowance).min(self.not_after);
        let lifetime = self.not_after.saturating_sub(issued);
        issued.saturating_add(lifetime / 3 * 2)
    }

    /// Whether the certificate is due for renewal at `now` (Unix seconds).
    pub fn renewal_due(&self, now: i64) -> bool {
        now >= self.renew_after()
    }

    /// How long a renewal loop sleeps before it looks again: until the
    /// renewal is due, but at most an hour (a clock that jumps is noticed
    /// within the hour) and at least a second.
    pub fn wait_before_renewal(&self, now: i64) -> std::time::Duration {
        let seconds = self.renew_after().saturating_sub(now).clamp(1, 3600);
        std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(1))
    }
}

/// Reads a DER certificate.
pub fn cert_info_der(der: &[u8]) -> Result<CertInfo> {
    let (_rest, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|error| TlsError::invalid("the certificate", format!("it cannot be parsed as X.509: {error}")))?;
    let names = match certificate.subject_alternative_name() {
        Ok(Some(extension)) => extension.value.general_names.clone(),
        Ok(None) => Vec::new(),
        Err(error) => {
            return Err(TlsError::invalid("the certificate", format!("its subject alternative names: {error}")));
        }
    };
    let mut roles: Vec<PeerRole> = names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => role_from_uri(uri),
            _ => None,
        })
        .collect();
    roles.dedup();
    // A certificate naming two roles names none: the caller check must never guess.
    let role = if roles.len() == 1 { roles.pop() } else { None };
    Ok(CertInfo {
        role,
        serial: serial_hex(certificate.raw_serial()),
        fingerprint: sha256_hex(der),
        not_before: certificate.validity().not_before.timestamp(),
        not_after: certificate.validity().not_after.timestamp(),
        subject: certificate.subject().to_string(),
    })
}

/// Reads the first certificate of a PEM text.
pub fn cert_info_pem(pem: &str) -> Result<CertInfo> {
    let certificates = certificates_from_pem(pem, "the certificate")?;
    match certificates.first() {
        Some(first) => cert_info_der(first),
        None => Err(no_certificate("the certificate")),
    }
}

/// SHA-256 of some bytes, lowercase hex (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of the DER of the first certificate in a PEM text, lowercase hex.
pub fn pem_fingerprint(cert_pem: &str) -> Result<String> {
    let certificates = certificates_from_pem(cert_pem, "the certificate")?;
    match certificates.first() {
        Some(first) => Ok(sha256_hex(first)),
        None => Err(no_certificate("the certificate")),
    }
}

/// Each certificate of a PEM text (a bundle of CA certificates, a chain)
/// as a PEM text of its own, in order; other PEM sections are skipped.
pub fn certificate_pems(pem: &str) -> Result<Vec<String>> {
    Ok(certificates_from_pem(pem, "the certificates")?.iter().map(|der| pem_of_der(der)).collect())
}

/// A DER certificate as PEM, 64 base64 characters a line.
pub(crate) fn pem_of_der(der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // Base64 is ASCII: every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Every certificate of a PEM text, in order; other PEM sections are skipped.
pub(crate) fn certificates_from_pem(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| TlsError::invalid(what, format!("its PEM text cannot be read: {error}")))
}

pub(crate) fn no_certificate(what: &str) -> TlsError {
    TlsError::invalid(what, "it holds no `-----BEGIN CERTIFICATE-----` section")
}

fn role_from_uri(uri: &str) -> Option<PeerRole> {
    if let Some(id) = uri.strip_prefix(SERVER_URI_PREFIX) {
        return id.parse().ok().map(PeerRole::Server);
    }
    let name = uri.strip_prefix(NODE_URI_PREFIX)?;
    if name.is_empty() {
        return None;
    }
    Some(PeerRole::Node(name.to_owned()))
}

/// Lowercase hex of a DER integer's bytes, without the leading zero bytes
/// that keep it positive, so that one serial always reads the same.
fn serial_hex(raw: &[u8]) -> String {
    let significant = match raw.iter().position(|byte| *byte != 0) {
        Some(first) => &raw[first..],
        None => raw.get(raw.len().saturating_sub(1)..).unwrap_or(raw),
    };
    hex(significant)
}

pub(crate) use drover_types::text::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn serial_drops_leading_zero_bytes_but_keeps_zero() {
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn a_bundle_splits_into_one_pem_per_certificate_that_reads_back_the_same() {
        let first = crate::Ca::generate("one").expect("CA");
        let second = crate::Ca::generate("two").expect("CA");
        let bundle = format!("{}{}", first.cert_pem(), second.cert_pem());
        let pems = certificate_pems(&bundle).expect("split");
        assert_eq!(pems.len(), 2);
        assert_eq!(pem_fingerprint(&pems[0]).expect("first"), first.fingerprint());
        assert_eq!(pem_fingerprint(&pems[1]).expect("second"), second.fingerprint());
        assert!(certificate_pems("no PEM here").expect("nothing").is_empty());
    }

    #[test]
    fn roles_come_from_drover_uris_only() {
        assert_eq!(role_from_uri("drover://server/7"), Some(PeerRole::Server(7)));
        assert_eq!(role_from_uri("drover://node/web-1"), Some(PeerRole::Node("web-1".into())));
        assert_eq!(role_from_uri("drover://server/seven"), None);
        assert_eq!(role_from_uri("drover://node/"), None);
        assert_eq!(role_from_uri("https://node/web-1"), None);
    }

    fn valid_between(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            role: None,
            serial: String::new(),
            fingerprint: String::new(),
            not_before,
            not_after,
            subject: String::new(),
        }
    }

    #[test]
    fn renewal_is_due_two_thirds_into_validity_counted_from_the_issue() {
        // Issued at 300 s (validity backdated by the 5 min allowance), 30 days.
        let info = valid_between(0, 300 + 30 * 86_400);
        assert_eq!(info.renew_after(), 300 + 20 * 86_400);
        assert!(!info.renewal_due(300 + 20 * 86_400 - 1) && info.renewal_due(300 + 20 * 86_400));
        // A 30-second certificate is due 20 s after its issue, not at once.
        let short = valid_between(1_000, 1_000 + 300 + 30);
        assert_eq!(short.renew_after(), 1_000 + 300 + 20);
        assert_eq!(short.wait_before_renewal(1_300), std::time::Duration::from_secs(20));
        // The loop looks again at least hourly and at most every second.
        assert_eq!(info.wait_before_renewal(0), std::time::Duration::from_secs(3600));
        assert_eq!(info.wait_before_renewal(i64::MAX), std::time::Duration::from_secs(1));
    }
}
