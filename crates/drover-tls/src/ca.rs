//! The cluster certificate authority and the certificates it issues.
//!
//! ```text
//!   drover cluster CA <cluster id>          ECDSA P-256, 10 years, path length 0
//!     ├── server-<id>                        URI drover://server/<id>, IP/DNS names,
//!     │                                      server and client auth
//!     └── <node name>                        URI drover://node/<name>, client auth only,
//!                                            from the agent's CSR, its subject replaced
//! ```
//!
//! The CA's common name carries the cluster id so that two clusters' CAs
//! never look alike. A node certificate takes only the public key from the
//! agent's request: the name, the role and the usages are the CA's to say.
//! Issued certificates come back as a chain, the new certificate first and
//! the CA's after it, because an agent enrolling with a join token checks
//! the CA the server presents against the token's hash.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
    SerialNumber,
};
use rustls::pki_types::CertificateDer;

use crate::cert_info::{NODE_URI_PREFIX, SERVER_URI_PREFIX, certificates_from_pem, no_certificate, sha256_hex};
use crate::error::{Result, TlsError};

/// How long a generated CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// How far into the past a new certificate's validity starts, so that a
/// peer whose clock is a little behind accepts it at once.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// The longest node name a certificate carries.
pub const MAX_NODE_NAME_BYTES: usize = 128;

/// The cluster certificate authority: its certificate and its key.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        formatter.debug_struct("Ca").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

/// Which of a certificate/key pair an error is about.
enum PemPart {
    Certificate,
    Key,
}

/// A certificate and the private key made for it.
#[derive(Clone)]
pub struct Issued {
    /// The chain in PEM: the new certificate first, then the CA's.
    pub cert_pem: String,
    /// The private key in PEM (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Issued").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Ca {
    /// Makes a new CA for a cluster: ECDSA P-256, valid for ten years.
    pub fn generate(cluster_id: &str) -> Result<Ca> {
        if cluster_id.trim().is_empty() {
            return Err(TlsError::invalid("the cluster id", "it is empty"));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::generate("the CA key"))?;
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&format!("drover cluster CA {cluster_id}"));
        // Path length 0: the CA signs servers and nodes, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now), add(now, CA_VALIDITY)?)?;
        let certificate = params.self_signed(&key).map_err(TlsError::generate("the CA certificate"))?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: certificate.pem(),
            key_pem,
            cert_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Uses an existing CA (the cluster's own, or one brought by the
    /// operator): the certificate must be a CA's and the key must be its key.
    /// Of a text holding several certificates, the first is the CA's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        Ca::load(cert_pem, key_pem).map_err(|(_part, error)| error)
    }

    /// Reads the CA from its two files; the key file must be private (see
    /// [`crate::read_private`]). An error names the file it is about.
    pub fn read_files(cert_path: &Path, key_path: &Path) -> Result<Ca> {
        let cert_pem = crate::files::read_public(cert_path)?;
        // The key's mode is checked before a byte of it is read.
        let key_pem = crate::files::read_private(key_path)?;
        Ca::from_file_texts(cert_path, &cert_pem, key_path, &key_pem, None)
    }

    /// A CA whose two files were read somewhere else and sent here (the
    /// CLI of `drover operator tls rotate-ca --new-ca-cert --new-ca-key`):
    /// the checks of [`Ca::read_files`] on their texts, with the files'
    /// paths as their reader named them for the messages. `key_mode` is
    /// the key file's permission bits as its reader saw them; `None` (a
    /// key that never was in a file) skips that one check.
    pub fn from_file_texts(
        cert_path: &Path,
        cert_pem: &str,
        key_path: &Path,
        key_pem: &str,
        key_mode: Option<u32>,
    ) -> Result<Ca> {
        for (path, text) in [(cert_path, cert_pem), (key_path, key_pem)] {
            if text.len() as u64 > crate::files::MAX_PEM_FILE_BYTES {
                return Err(TlsError::FileTooLarge { path: path.to_owned(), limit: crate::files::MAX_PEM_FILE_BYTES });
            }
        }
        if let Some(mode) = key_mode {
            crate::files::check_private_mode(key_path, mode)?;
        }
        Ca::load(cert_pem, key_pem).map_err(|(part, error)| match part {
            PemPart::Certificate => error.in_file(cert_path),
            PemPart::Key => error.in_file(key_path),
        })
    }

    /// [`Ca::from_pem`], saying which of the two texts an error is about.
    fn load(cert_pem: &str, key_pem: &str) -> std::result::Result<Ca, (PemPart, TlsError)> {
        let in_certificate = |error| (PemPart::Certificate, error);
        let in_key = |error| (PemPart::Key, error);
        let certificates = certificates_from_pem(cert_pem, "the CA certificate").map_err(in_certificate)?;
        let Some(cert_der) = certificates.into_iter().next() else {
            return Err(in_certificate(no_certificate("the CA certificate")));
        };
        check_ca_certificate(&cert_der).map_err(in_certificate)?;
        let (_rest, parsed) = x509_parser::parse_x509_certificate(&cert_der).map_err(|error| {
            in_certificate(TlsError::invalid("the CA certificate", format!("it cannot be parsed as X.509: {error}")))
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(|error| {
            in_key(TlsError::invalid("the CA key", format!("it cannot be read as a PEM private key: {error}")))
        })?;
        if key.subject_public_key_info() != parsed.public_key().raw {
            return Err(in_key(TlsError::invalid(
                "the CA key",
                "it does not belong to the CA certificate (their public keys differ); give the key the certificate was made for",
            )));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|error| {
            in_certificate(TlsError::invalid("the CA certificate", format!("rcgen cannot sign with it: {error}")))
        })?;
        // Only the CA's own certificate: a bundle (the trusted CAs during a
        // rotation, issuing CA first) must not end up in issued chains.
        let own_pem = crate::cert_info::pem_of_der(&cert_der);
        Ok(Ca { cert_pem: own_pem, key_pem: key_pem.to_owned(), cert_der, issuer })
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key in PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex (64 characters):
    /// what a join token pins.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.cert_der)
    }

    /// Issues a server certificate valid from five minutes ago for `validity`.
    ///
    /// Its names: the URI `drover://server/<id>`, the host of each address
    /// (`host:port`, `[v6]:port`, or a bare host; an IP becomes an IP name,
    /// anything else a DNS name; unspecified addresses such as `0.0.0.0`
    /// are left out), and `localhost`, `127.0.0.1` and `::1`.
    pub fn issue_server(&self, server_id: u64, addresses: &[String], validity: Duration) -> Result<Issued> {
        let now = SystemTime::now();
        let not_before = now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now);
        self.issue_server_valid_between(server_id, addresses, not_before, add(now, validity)?)
    }

    /// [`Ca::issue_server`] with an explicit validity period, for
    /// certificates that must start later or have already ended (tests of
    /// expiry, mostly).
    pub fn issue_server_valid_between(
        &self,
        server_id: u64,
        addresses: &[String],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued> {
        let what = format!("the certificate of server {server_id}");
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::generate(format!("{what}'s key")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&format!("server-{server_id}"));
        params.subject_alt_names = server_names(server_id, addresses)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        set_leaf_defaults(&mut params);
        set_validity(&mut params, not_before, not_after)?;
        let certificate = params.signed_by(&key, &self.issuer).map_err(TlsError::generate(what))?;
        Ok(Issued { cert_pem: self.chain(&certificate.pem()), key_pem: key.serialize_pem() })
    }

    /// Signs an agent's certificate request: only its public key is used.
    /// The certificate names `node_name` (common name and the URI
    /// `drover://node/<name>`), allows client authentication only, and is
    /// valid from five minutes ago for `validity`. Returns the chain in PEM.
    pub fn sign_node_csr(&self, csr_pem: &str, node_name: &str, validity: Duration) -> Result<String> {
        let now = SystemTime::now();
        let not_before = now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now);
        self.sign_node_csr_valid_between(csr_pem, node_name, not_before, add(now, validity)?)
    }

    /// [`Ca::sign_node_csr`] with an explicit validity period.
    pub fn sign_node_csr_valid_between(
        &self,
        csr_pem: &str,
        node_name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<String> {
        check_node_name(node_name)?;
        let request = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|error| {
            TlsError::invalid(
                format!("the certificate signing request of node {node_name}"),
                format!("{error} (it must be a PEM `CERTIFICATE REQUEST` signed by its own key)"),
            )
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(node_name);
        params.subject_alt_names = vec![SanType::URI(ia5(&format!("{NODE_URI_PREFIX}{node_name}"))?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_leaf_defaults(&mut params);
        set_validity(&mut params, not_before, not_after)?;
        let certificate = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(TlsError::generate(format!("the certificate of node {node_name}")))?;
        Ok(self.chain(&certificate.pem()))
    }

    fn chain(&self, leaf_pem: &str) -> String {
        let mut chain = leaf_pem.trim_end().to_owned();
        chain.push('\n');
        chain.push_str(self.cert_pem.trim_end());
        chain.push('\n');
        chain
    }
}

/// Reads a file of CA certificates to trust (one or several, PEM) and
/// checks each: a CA (`CA:TRUE`, allowed to sign certificates), valid now.
/// Returns them one PEM text each, in the file's order. An error names the
/// file.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<String>> {
    let text = crate::files::read_public(path)?;
    let certificates = certificates_from_pem(&text, "the CA certificate").map_err(|error| error.in_file(path))?;
    if certificates.is_empty() {
        return Err(no_certificate("the CA certificate").in_file(path));
    }
    for certificate in &certificates {
        check_ca_certificate(certificate).map_err(|error| error.in_file(path))?;
    }
    Ok(certificates.iter().map(|der| crate::cert_info::pem_of_der(der)).collect())
}

/// Checks that a certificate is a CA's that may sign certificates now:
/// `CA:TRUE`, a key usage (if any) with keyCertSign, and a validity
/// period that holds the present.
fn check_ca_certificate(der: &[u8]) -> Result<()> {
    let (_rest, parsed) = x509_parser::parse_x509_certificate(der)
        .map_err(|error| TlsError::invalid("the CA certificate", format!("it cannot be parsed as X.509: {error}")))?;
    let is_ca = matches!(parsed.basic_constraints(), Ok(Some(constraints)) if constraints.value.ca);
    if !is_ca {
        return Err(TlsError::invalid(
            "the CA certificate",
            format!(
                "{} is not a certificate authority (its basicConstraints do not say CA:TRUE); give the certificate of the CA, not one it issued",
                parsed.subject()
            ),
        ));
    }
    if let Ok(Some(usage)) = parsed.key_usage()
        && !usage.value.key_cert_sign()
    {
        return Err(TlsError::invalid(
            "the CA certificate",
            "its key usage does not allow signing certificates (keyCertSign)",
        ));
    }
    check_valid_now(&parsed, "the CA certificate", "give a CA that is valid now")
}

/// Refuses a certificate whose validity period does not hold the present.
pub(crate) fn check_valid_now(
    parsed: &x509_parser::certificate::X509Certificate<'_>,
    what: &str,
    advice: &str,
) -> Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let validity = parsed.validity();
    if validity.not_after.timestamp() < now {
        return Err(TlsError::invalid(
            what,
            format!("{} expired on {}; {advice}", parsed.subject(), validity.not_after),
        ));
    }
    if validity.not_before.timestamp() > now {
        return Err(TlsError::invalid(
            what,
            format!(
                "{} is not valid before {} (is this machine's clock right?); {advice}",
                parsed.subject(),
                validity.not_before
            ),
        ));
    }
    Ok(())
}

/// Makes an agent's key (ECDSA P-256) and a certificate request for it.
/// Returns `(request PEM, key PEM)`; the key never leaves the agent.
pub fn node_csr(node_name: &str) -> Result<(String, String)> {
    check_node_name(node_name)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::generate("the node key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(node_name);
    let request = params.serialize_request(&key).map_err(TlsError::generate("the certificate request"))?;
    let request_pem = request.pem().map_err(TlsError::generate("the certificate request"))?;
    Ok((request_pem, key.serialize_pem()))
}

/// A node name fit for a certificate: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// [`MAX_NODE_NAME_BYTES`] long, so that it reads the same in the common
/// name and in the URI.
fn check_node_name(node_name: &str) -> Result<()> {
    let what = || format!("the node name {node_name:?}");
    let Some(first) = node_name.chars().next() else {
        return Err(TlsError::invalid("the node name", "it is empty"));
    };
    if node_name.len() > MAX_NODE_NAME_BYTES {
        return Err(TlsError::invalid(what(), format!("it is longer than {MAX_NODE_NAME_BYTES} bytes")));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(TlsError::invalid(what(), "it must start with a letter or a digit"));
    }
    if let Some(bad) = node_name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(TlsError::invalid(what(), format!("it holds {bad:?}; use letters, digits, '-', '_' and '.' only")));
    }
    Ok(())
}

fn server_names(server_id: u64, addresses: &[String]) -> Result<Vec<SanType>> {
    let mut names = vec![SanType::URI(ia5(&format!("{SERVER_URI_PREFIX}{server_id}"))?)];
    let mut push = |name: SanType| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    for address in addresses {
        let host = host_of(address);
        if host.is_empty() {
            return Err(TlsError::invalid(format!("the server address {address:?}"), "it names no host"));
        }
        match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => {}
            Ok(ip) => push(SanType::IpAddress(ip)),
            Err(_) => {
                let host = host.to_ascii_lowercase();
                // What a client can verify: rustls refuses to match names that are not DNS names.
                if rustls::pki_types::DnsName::try_from(host.as_str()).is_err() {
                    return Err(TlsError::invalid(
                        format!("the server address {address:?}"),
                        "its host is neither an IP address nor a valid DNS name",
                    ));
                }
                push(SanType::DnsName(ia5(&host)?));
            }
        }
    }
    push(SanType::DnsName(ia5("localhost")?));
    push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    Ok(names)
}

/// The host part of `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address or a bare host.
fn host_of(address: &str) -> &str {
    let address = address.trim();
    if let Ok(socket) = address.parse::<SocketAddr>() {
        // `[::1]:4646`: the host is inside the brackets.
        return match socket {
            SocketAddr::V4(_) => address.rsplit_once(':').map_or(address, |(host, _)| host),
            SocketAddr::V6(_) => address.trim_start_matches('[').split(']').next().unwrap_or(address),
        };
    }
    if address.parse::<IpAddr>().is_ok() {
        return address;
    }
    if let Some(inside) = address.strip_prefix('[') {
        return inside.split(']').next().unwrap_or(inside);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => address,
    }
}

fn set_leaf_defaults(params: &mut CertificateParams) {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
}

fn set_validity(params: &mut CertificateParams, not_before: SystemTime, not_after: SystemTime) -> Result<()> {
    if not_after <= not_before {
        return Err(TlsError::invalid("the validity period", "it ends before it starts"));
    }
    params.not_before = time::OffsetDateTime::from(not_before);
    params.not_after = time::OffsetDateTime::from(not_after);
    Ok(())
}

fn add(now: SystemTime, validity: Duration) -> Result<SystemTime> {
    now.checked_add(validity)
        .ok_or_else(|| TlsError::invalid("the validity period", format!("{validity:?} from now is too far away")))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

fn ia5(text: &str) -> Result<rcgen::string::Ia5String> {
    rcgen::string::Ia5String::try_from(text)
        .map_err(|error| TlsError::invalid(format!("the certificate name {text:?}"), error.to_string()))
}

/// 16 random bytes, positive and without a leading zero byte, so that the
/// DER integer is always 16 bytes long (RFC 5280 allows up to 20).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_handles_every_address_form() {
        assert_eq!(host_of("10.0.0.1:4646"), "10.0.0.1");
        assert_eq!(host_of("[::1]:4646"), "::1");
        assert_eq!(host_of("[fe80::1]"), "fe80::1");
        assert_eq!(host_of("fe80::1"), "fe80::1");
        assert_eq!(host_of("server1.example:4646"), "server1.example");
        assert_eq!(host_of("server1"), "server1");
        assert_eq!(host_of("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn server_names_skip_unspecified_and_duplicates() {
        let names =
            server_names(3, &["0.0.0.0:4646".into(), "127.0.0.1:4646".into(), "Db.Example:1".into()]).expect("names");
        let dns: Vec<_> = names
            .iter()
            .filter_map(|name| match name {
                SanType::DnsName(dns) => Some(dns.as_str().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(dns, ["db.example", "localhost"]);
        let ips = names.iter().filter(|name| matches!(name, SanType::IpAddress(_))).count();
        assert_eq!(ips, 2, "127.0.0.1 once and ::1, no 0.0.0.0: {names:?}");
    }

    #[test]
    fn server_names_refuse_a_host_that_is_no_dns_name() {
        let error = server_names(1, &["bad host:4646".into()]).expect_err("a space is no DNS name");
        assert!(error.to_string().contains("\"bad host:4646\""), "{error}");
    }

    #[test]
    fn node_names_are_checked() {
        assert!(check_node_name("web-1.dc1").is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("-web").is_err());
        assert!(check_node_name("web/1").is_err());
        assert!(check_node_name(&"a".repeat(MAX_NODE_NAME_BYTES + 1)).is_err());
    }

    /// `Ca::read_files` on two files, and `Ca::from_file_texts` on their
    /// texts as a reader elsewhere sends them: the two messages.
    fn both_ways(cert_pem: &str, key_pem: &str, key_mode: u32) -> (String, String) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let (cert_path, key_path) = (dir.path().join("next-ca.pem"), dir.path().join("next-ca-key.pem"));
        std::fs::write(&cert_path, cert_pem).expect("written");
        std::fs::write(&key_path, key_pem).expect("written");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(key_mode)).expect("mode set");
        let read = Ca::read_files(&cert_path, &key_path).expect_err("refused when read");
        let sent = Ca::from_file_texts(&cert_path, cert_pem, &key_path, key_pem, Some(key_mode))
            .expect_err("refused when sent");
        (read.to_string(), sent.to_string())
    }

    #[test]
    fn a_ca_sent_as_texts_meets_the_checks_of_its_files_with_the_same_messages() {
        let ca = Ca::generate("a").expect("a CA");
        let other = Ca::generate("b").expect("another CA");
        let leaf = ca.issue_server(1, &[], Duration::from_secs(3600)).expect("a server certificate");

        let (read, sent) = both_ways(ca.cert_pem(), other.key_pem(), 0o600);
        assert_eq!(read, sent);
        assert!(
            read.contains("next-ca-key.pem: the CA key is not valid: it does not belong to the CA certificate"),
            "{read}"
        );
        let (read, sent) = both_ways(&leaf.cert_pem, &leaf.key_pem, 0o600);
        assert_eq!(read, sent);
        assert!(
            read.contains("next-ca.pem: the CA certificate is not valid: CN=server-1 is not a certificate authority"),
            "{read}"
        );
        let (read, sent) = both_ways(ca.cert_pem(), ca.key_pem(), 0o644);
        assert_eq!(read, sent);
        assert!(read.contains("next-ca-key.pem can be read or written by other users (mode 644)"), "{read}");

        let named = Path::new("next-ca.pem");
        let key = Path::new("next-ca-key.pem");
        let accepted = Ca::from_file_texts(named, ca.cert_pem(), key, ca.key_pem(), Some(0o100600)).expect("accepted");
        assert_eq!(accepted.fingerprint(), ca.fingerprint());
        // A key that never was in a file: no mode to judge.
        assert!(Ca::from_file_texts(named, ca.cert_pem(), key, ca.key_pem(), None).is_ok());
        let endless = "A".repeat(usize::try_from(crate::files::MAX_PEM_FILE_BYTES).expect("fits") + 1);
        let error = Ca::from_file_texts(named, &endless, key, ca.key_pem(), None).expect_err("too large");
        assert_eq!(
            error.to_string(),
            "next-ca.pem is larger than 1 MiB, more than any certificate, key or CA bundle: check the path"
        );
    }
}
