//! The CA, the certificates it issues, identities and the PEM files, without
//! a network.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use drover_tls::{
    Ca, Identity, PeerRole, Roots, TlsError, cert_info_pem, ensure_private_dir, node_csr, pem_fingerprint,
    read_private, write_private, write_public,
};
use x509_parser::extensions::GeneralName;

const THIRTY_DAYS: Duration = Duration::from_secs(30 * 86_400);

fn first_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("a certificate")
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn a_generated_ca_names_its_cluster_and_round_trips_through_pem() {
    let ca = Ca::generate("c0ffee").expect("generate");
    let info = cert_info_pem(ca.cert_pem()).expect("info");
    assert_eq!(info.subject, "CN=drover cluster CA c0ffee");
    assert_eq!(info.role, None);
    let ten_years = 10 * 365 * 86_400;
    assert!((info.not_after - info.not_before - ten_years - 300).abs() < 5, "{info:?}");

    let fingerprint = ca.fingerprint();
    assert_eq!(fingerprint.len(), 64);
    assert!(fingerprint.bytes().all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()));
    assert_eq!(pem_fingerprint(ca.cert_pem()).expect("fingerprint"), fingerprint);

    let reloaded = Ca::from_pem(ca.cert_pem(), ca.key_pem()).expect("from_pem");
    assert_eq!(reloaded.fingerprint(), fingerprint);
    // The reloaded CA signs certificates that the original CA's roots trust.
    let issued = reloaded.issue_server(1, &[], THIRTY_DAYS).expect("issue");
    assert!(issued.cert_pem.ends_with(ca.cert_pem()), "the chain ends with the CA certificate");
}

#[test]
fn from_pem_refuses_a_certificate_that_is_not_a_ca() {
    let ca = Ca::generate("c1").expect("generate");
    let server = ca.issue_server(1, &[], THIRTY_DAYS).expect("issue");
    let error = Ca::from_pem(&server.cert_pem, &server.key_pem).expect_err("a server certificate is no CA");
    let message = error.to_string();
    assert!(message.contains("is not a certificate authority"), "{message}");
    assert!(message.contains("CN=server-1"), "{message}");
}

#[test]
fn from_pem_refuses_a_key_that_is_not_the_cas() {
    let ca = Ca::generate("c1").expect("generate");
    let other = Ca::generate("c2").expect("generate");
    let error = Ca::from_pem(ca.cert_pem(), other.key_pem()).expect_err("mismatched key");
    assert!(error.to_string().contains("does not belong to the CA certificate"), "{error}");
    let error = Ca::from_pem(ca.cert_pem(), "not a key").expect_err("garbage key");
    assert!(error.to_string().contains("the CA key is not valid"), "{error}");
    let error = Ca::from_pem("", ca.key_pem()).expect_err("no certificate");
    assert!(error.to_string().contains("BEGIN CERTIFICATE"), "{error}");
}

#[test]
fn a_server_certificate_names_its_role_and_addresses() {
    let ca = Ca::generate("c1").expect("generate");
    let addresses = vec!["10.1.2.3:4646".to_owned(), "[fd00::7]:4646".to_owned(), "db1.example:4646".to_owned()];
    let issued = ca.issue_server(3, &addresses, THIRTY_DAYS).expect("issue");
    let info = cert_info_pem(&issued.cert_pem).expect("info");
    assert_eq!(info.role, Some(PeerRole::Server(3)));
    assert_eq!(info.subject, "CN=server-3");
    assert_eq!(info.serial.len(), 32, "16 random bytes: {}", info.serial);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs() as i64;
    assert!((now - 300 - info.not_before).abs() < 5, "starts five minutes ago");
    assert!((now + 30 * 86_400 - info.not_after).abs() < 5, "valid for the validity asked");

    let der = first_der(&issued.cert_pem);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("parse");
    let names = parsed.subject_alternative_name().expect("san").expect("has san").value.general_names.clone();
    let text: Vec<String> = names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("dns:{dns}"),
            GeneralName::URI(uri) => format!("uri:{uri}"),
            GeneralName::IPAddress(bytes) => format!("ip:{bytes:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert!(text.contains(&"uri:drover://server/3".to_owned()), "{text:?}");
    assert!(text.contains(&"ip:[10, 1, 2, 3]".to_owned()), "{text:?}");
    assert!(text.contains(&"dns:db1.example".to_owned()), "{text:?}");
    assert!(text.contains(&"dns:localhost".to_owned()), "{text:?}");
    assert!(text.contains(&"ip:[127, 0, 0, 1]".to_owned()), "{text:?}");
    assert!(text.iter().any(|name| name.starts_with("ip:[253, 0,")), "fd00::7: {text:?}");
    let usage = parsed.extended_key_usage().expect("eku").expect("has eku").value;
    assert!(usage.server_auth && usage.client_auth);

    let other = ca.issue_server(3, &addresses, THIRTY_DAYS).expect("issue");
    assert_ne!(cert_info_pem(&other.cert_pem).expect("info").serial, info.serial, "serials are random");
}

#[test]
fn a_node_certificate_takes_its_name_from_the_ca_not_from_the_request() {
    let ca = Ca::generate("c1").expect("generate");
    let (request, key) = node_csr("server-1").expect("csr");
    let cert_pem = ca.sign_node_csr(&request, "web-1", THIRTY_DAYS).expect("sign");
    let info = cert_info_pem(&cert_pem).expect("info");
    assert_eq!(info.role, Some(PeerRole::Node("web-1".to_owned())));
    assert_eq!(info.subject, "CN=web-1");

    let der = first_der(&cert_pem);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("parse");
    let usage = parsed.extended_key_usage().expect("eku").expect("has eku").value;
    assert!(usage.client_auth && !usage.server_auth, "client authentication only");
    assert!(!parsed.is_ca());

    // The agent's key belongs to the certificate.
    let identity = Identity::new(&cert_pem, &key).expect("identity");
    assert_eq!(identity.info().role, Some(PeerRole::Node("web-1".to_owned())));
}

#[test]
fn sign_node_csr_refuses_bad_requests_and_names() {
    let ca = Ca::generate("c1").expect("generate");
    let error = ca.sign_node_csr("garbage", "web-1", THIRTY_DAYS).expect_err("garbage");
    assert!(error.to_string().contains("certificate signing request of node web-1"), "{error}");
    let (request, _key) = node_csr("web-1").expect("csr");
    let error = ca.sign_node_csr(&request, "web/1", THIRTY_DAYS).expect_err("slash");
    assert!(error.to_string().contains("web/1"), "{error}");
    assert!(node_csr("").is_err());
}

#[test]
fn an_identity_refuses_a_key_of_another_certificate_and_keeps_the_old_one() {
    let ca = Ca::generate("c1").expect("generate");
    let one = ca.issue_server(1, &[], THIRTY_DAYS).expect("issue");
    let two = ca.issue_server(2, &[], THIRTY_DAYS).expect("issue");
    let error = Identity::new(&one.cert_pem, &two.key_pem).expect_err("mismatch");
    assert!(error.to_string().contains("does not belong to the certificate CN=server-1"), "{error}");

    let identity = Identity::new(&one.cert_pem, &one.key_pem).expect("identity");
    assert!(identity.replace(&two.cert_pem, &one.key_pem).is_err());
    assert_eq!(identity.info().role, Some(PeerRole::Server(1)), "a failed replace keeps the old identity");
    identity.replace(&two.cert_pem, &two.key_pem).expect("replace");
    assert_eq!(identity.info().role, Some(PeerRole::Server(2)));
}

#[test]
fn roots_need_at_least_one_certificate() {
    let error = Roots::new(&[]).expect_err("empty");
    assert!(error.to_string().contains("ca.pem"), "{error}");
    let one = Ca::generate("c1").expect("generate");
    let two = Ca::generate("c2").expect("generate");
    let roots = Roots::new(&[one.cert_pem().to_owned(), two.cert_pem().to_owned()]).expect("roots");
    assert_eq!(roots.fingerprints(), [one.fingerprint(), two.fingerprint()]);
}

#[test]
fn validity_must_end_after_it_starts() {
    let ca = Ca::generate("c1").expect("generate");
    let now = SystemTime::now();
    let error = ca.issue_server_valid_between(1, &[], now, now - Duration::from_secs(1)).expect_err("backwards");
    assert!(matches!(error, TlsError::Invalid { .. }), "{error}");
}

#[test]
fn keys_are_written_private_and_read_only_when_private() {
    let directory = tempfile::tempdir().expect("tempdir");
    let keys = directory.path().join("tls");
    ensure_private_dir(&keys).expect("create");
    assert_eq!(mode_of(&keys), 0o700);
    ensure_private_dir(&keys).expect("an existing private directory is fine");

    let key_path = keys.join("server.key");
    write_private(&key_path, "secret one").expect("write");
    assert_eq!(mode_of(&key_path), 0o600);
    write_private(&key_path, "secret two").expect("overwrite");
    assert_eq!(read_private(&key_path).expect("read"), "secret two");

    let cert_path = keys.join("server.pem");
    write_public(&cert_path, "public").expect("write");
    assert_eq!(mode_of(&cert_path), 0o644);
    let leftovers: Vec<_> = std::fs::read_dir(&keys)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");

    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = read_private(&key_path).expect_err("a 0644 key is refused");
    let message = error.to_string();
    assert!(message.contains(&key_path.display().to_string()), "{message}");
    assert!(message.contains("chmod 600"), "{message}");
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let error = ensure_private_dir(directory.path()).expect_err("0777 is refused");
    assert!(error.to_string().contains("chmod 700"), "{error}");
    let file = directory.path().join("file");
    std::fs::write(&file, "x").expect("write");
    assert!(matches!(ensure_private_dir(&file), Err(TlsError::NotADirectory { .. })));
}

#[test]
fn a_ca_reads_back_from_its_files() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("c1").expect("generate");
    let cert_path = directory.path().join("ca.pem");
    let key_path = directory.path().join("ca.key");
    write_public(&cert_path, ca.cert_pem()).expect("write");
    write_private(&key_path, ca.key_pem()).expect("write");
    let reloaded = Ca::read_files(&cert_path, &key_path).expect("read");
    assert_eq!(reloaded.fingerprint(), ca.fingerprint());

    let other = Ca::generate("c2").expect("generate");
    write_private(&key_path, other.key_pem()).expect("write");
    let error = Ca::read_files(&cert_path, &key_path).expect_err("mismatch");
    assert!(error.to_string().starts_with(&key_path.display().to_string()), "names the key file: {error}");
}

#[test]
fn an_identity_reads_back_from_its_files_and_errors_name_the_file() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("c1").expect("generate");
    let issued = ca.issue_server(1, &[], THIRTY_DAYS).expect("issue");
    let cert_path = directory.path().join("server.pem");
    let key_path = directory.path().join("server.key");
    write_public(&cert_path, &issued.cert_pem).expect("write");
    write_private(&key_path, &issued.key_pem).expect("write");
    let identity = Identity::read_files(&cert_path, &key_path).expect("read");
    assert_eq!(identity.info().role, Some(PeerRole::Server(1)));

    let other = ca.issue_server(2, &[], THIRTY_DAYS).expect("issue");
    write_private(&key_path, &other.key_pem).expect("write");
    let error = Identity::read_files(&cert_path, &key_path).expect_err("mismatch");
    assert!(error.to_string().starts_with(&key_path.display().to_string()), "names the key file: {error}");

    write_public(&cert_path, "no certificate here").expect("write");
    let error = Identity::read_files(&cert_path, &key_path).expect_err("no certificate");
    assert!(error.to_string().starts_with(&cert_path.display().to_string()), "names the certificate file: {error}");
}
