//! What an operator hands drover — a CA of their own (`--tls-ca-cert`,
//! `--tls-ca-key`) or certificates their CA made (`--tls-cert`, `--tls-key`)
//! — is checked when it is read, and each refusal names the file and says
//! what to give instead. The CAs here are made with rcgen, as an operator's
//! own tooling (openssl, cfssl, Vault) would make them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_tls::{Ca, Identity, PeerRole, read_ca_bundle, write_private, write_public};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// An operator's CA: its certificate and key in PEM.
struct OperatorCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn named(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

/// A CA valid between the two offsets from now (in days).
fn operator_ca(name: &str, from_days: i64, to_days: i64) -> OperatorCa {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = named(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    let certificate = params.self_signed(&key).expect("self-signed");
    OperatorCa { cert_pem: certificate.pem(), key_pem: key.serialize_pem(), issuer: Issuer::new(params, key) }
}

/// A leaf certificate of `ca` with a `drover://` URI and the given validity.
fn leaf(ca: &OperatorCa, uri: &str, from_days: i64, to_days: i64) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = named(uri);
    params.subject_alt_names = vec![
        SanType::URI(uri.try_into().expect("ia5")),
        SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    let certificate = params.signed_by(&key, &ca.issuer).expect("signed");
    (certificate.pem(), key.serialize_pem())
}

fn files(dir: &Path, name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    write_public(&cert_path, cert).expect("certificate written");
    write_private(&key_path, key).expect("key written");
    (cert_path, key_path)
}

#[test]
fn an_operator_ca_is_used_and_signs_what_chains_to_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let operator = operator_ca("Example Corp Root CA", -1, 3650);
    let (cert, key) = files(dir.path(), "ca", &operator.cert_pem, &operator.key_pem);
    let ca = Ca::read_files(&cert, &key).expect("a CA of the operator's is accepted");
    let issued = ca.issue_server(1, &["127.0.0.1:4747".to_owned()], Duration::from_secs(3600)).expect("issued");
    // The chain ends with the operator's CA, as it was given.
    assert!(issued.cert_pem.trim_end().ends_with(operator.cert_pem.trim_end()), "{}", issued.cert_pem);
    assert_eq!(
        read_ca_bundle(&cert).expect("bundle"),
        [drover_tls::certificate_pems(&operator.cert_pem).unwrap()[0].clone()]
    );
}

#[test]
fn a_certificate_that_is_no_ca_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let operator = operator_ca("Example Corp Root CA", -1, 3650);
    let (server_cert, server_key) = leaf(&operator, "drover://server/1", -1, 30);
    let (cert, key) = files(dir.path(), "not-a-ca", &server_cert, &server_key);
    let error = Ca::read_files(&cert, &key).expect_err("a leaf is no CA");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the CA certificate is not valid: CN=drover://server/1 is not a certificate authority (its basicConstraints do not say CA:TRUE); give the certificate of the CA, not one it issued",
            cert.display()
        )
    );
    let error = read_ca_bundle(&cert).expect_err("a leaf is no CA to trust either");
    assert!(error.to_string().contains("is not a certificate authority"), "{error}");
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_the_key_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let operator = operator_ca("Example Corp Root CA", -1, 3650);
    let other = operator_ca("Another CA", -1, 3650);
    let (cert, key) = files(dir.path(), "ca", &operator.cert_pem, &other.key_pem);
    let error = Ca::read_files(&cert, &key).expect_err("the key is another CA's");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the CA key is not valid: it does not belong to the CA certificate (their public keys differ); give the key the certificate was made for",
            key.display()
        )
    );
    let (server_cert, _) = leaf(&operator, "drover://server/1", -1, 30);
    let (_, other_key) = leaf(&operator, "drover://server/2", -1, 30);
    let (cert, key) = files(dir.path(), "server", &server_cert, &other_key);
    let error = Identity::read_files(&cert, &key).expect_err("the key is another server's");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the private key is not valid: it does not belong to the certificate CN=drover://server/1 (their public keys differ)",
            key.display()
        )
    );
}

#[test]
fn an_expired_or_future_ca_and_an_expired_certificate_are_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let expired = operator_ca("Old Root CA", -400, -10);
    let (cert, key) = files(dir.path(), "expired", &expired.cert_pem, &expired.key_pem);
    let error = Ca::read_files(&cert, &key).expect_err("expired");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{}: the CA certificate is not valid: CN=Old Root CA expired on ", cert.display())),
        "{text}"
    );
    assert!(text.ends_with("; give a CA that is valid now"), "{text}");
    assert!(read_ca_bundle(&cert).expect_err("expired").to_string().contains("expired on"));

    let future = operator_ca("Future Root CA", 10, 400);
    let (cert, key) = files(dir.path(), "future", &future.cert_pem, &future.key_pem);
    let text = Ca::read_files(&cert, &key).expect_err("not yet valid").to_string();
    assert!(text.contains("CN=Future Root CA is not valid before"), "{text}");
    assert!(text.contains("(is this machine's clock right?)"), "{text}");

    let operator = operator_ca("Example Corp Root CA", -1, 3650);
    let (old_cert, old_key) = leaf(&operator, "drover://node/web1", -60, -1);
    let (cert, key) = files(dir.path(), "node", &old_cert, &old_key);
    let text = Identity::read_files(&cert, &key).expect_err("expired certificate").to_string();
    assert!(
        text.starts_with(&format!(
            "{}: the certificate is not valid: CN=drover://node/web1 expired on ",
            cert.display()
        )),
        "{text}"
    );
    assert!(text.ends_with("; make a new one with your CA"), "{text}");
}

#[test]
fn a_key_file_others_may_read_is_refused_and_dev_zero_is_refused_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temporary directory");
    let operator = operator_ca("Example Corp Root CA", -1, 3650);
    let (cert, key) = files(dir.path(), "ca", &operator.cert_pem, &operator.key_pem);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = Ca::read_files(&cert, &key).expect_err("exposed");
    assert_eq!(
        error.to_string(),
        format!(
            "{} can be read or written by other users (mode 644); a private key must be private: run `chmod 600 {}`",
            key.display(),
            key.display()
        )
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let started = std::time::Instant::now();
    let zero = Path::new("/dev/zero");
    let error = Ca::read_files(zero, &key).expect_err("an endless certificate file");
    assert_eq!(
        error.to_string(),
        "/dev/zero is larger than 1 MiB, more than any certificate, key or CA bundle: check the path"
    );
    let error = Ca::read_files(&cert, zero).expect_err("an endless key file");
    assert!(error.to_string().starts_with("/dev/zero can be read or written by other users"), "{error}");
    let error = Identity::read_files(zero, &key).expect_err("an endless certificate file");
    assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
    let error = read_ca_bundle(zero).expect_err("an endless CA file");
    assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn an_identity_reloads_a_renewed_certificate_only_when_the_check_accepts_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let operator = operator_ca("Example Corp Root CA", -1, 3650);
    let (first_cert, first_key) = leaf(&operator, "drover://node/web1", -1, 30);
    let (cert, key) = files(dir.path(), "node", &first_cert, &first_key);
    let identity = Identity::read_files(&cert, &key).expect("identity");
    assert_eq!(identity.info().role, Some(PeerRole::Node("web1".into())));
    let same = identity.reload_files(&cert, &key, |_| Ok(())).expect("unchanged");
    assert!(!same);

    let (renewed_cert, renewed_key) = leaf(&operator, "drover://node/web1", -1, 60);
    files(dir.path(), "node", &renewed_cert, &renewed_key);
    let refused = identity.reload_files(&cert, &key, |_| Err("not this one".to_owned())).expect_err("refused");
    assert_eq!(refused.to_string(), format!("{}: the certificate is not valid: not this one", cert.display()));
    let before = identity.info().fingerprint;
    assert!(identity.reload_files(&cert, &key, |_| Ok(())).expect("reloaded"));
    assert_ne!(identity.info().fingerprint, before);
}
