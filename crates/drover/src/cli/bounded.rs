//! Reading the files a command is pointed at through a bound: the small
//! files that hold credentials (the ACL token of `--token-file`, the cluster
//! CA of `--ca-cert`, a `join_token_file`) and a snapshot to restore. Like
//! definition files (`drover_hcl::read_definition_file`), a wrong path such
//! as `/dev/zero` is refused at once instead of being read until memory
//! runs out.

use std::io::Read;
use std::path::Path;

/// The most bytes a credential file may hold: a token is under 100 bytes
/// and a bundle of CA certificates a few KiB.
pub(crate) const MAX_CREDENTIAL_BYTES: u64 = 1024 * 1024;

/// The largest snapshot the servers take in one restore request (their
/// limit for server-to-server bodies).
pub(crate) const MAX_SNAPSHOT_BYTES: u64 = 4 * 1024 * 1024 * 1024 - 1;

/// Reads a credential file as UTF-8 text, refusing one larger than
/// [`MAX_CREDENTIAL_BYTES`] after reading that many bytes.
pub(crate) fn read_credential_file(path: &Path) -> std::io::Result<String> {
    let bytes = read_at_most(path, MAX_CREDENTIAL_BYTES, "more than any token or CA certificate: check the path")?;
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is not UTF-8 text: check the path"))
}

/// Reads a snapshot file, refusing anything but a regular file (a device
/// or a pipe has no end to wait for) and one larger than the servers take.
pub(crate) fn read_snapshot_file(path: &Path) -> std::io::Result<Vec<u8>> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file: give the file `drover operator snapshot save` wrote",
        ));
    }
    read_at_most(path, MAX_SNAPSHOT_BYTES, "more than a server takes in one restore")
}

/// Reads at most `limit` bytes of `path`; a longer file is an error that
/// names the limit, followed by `why`.
fn read_at_most(path: &Path, limit: u64, why: &str) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {} MiB, {why}", limit.div_ceil(1024 * 1024)),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_and_a_token_is_read() {
        let error = read_credential_file(Path::new("/dev/zero")).expect_err("/dev/zero is refused");
        assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        assert_eq!(read_credential_file(&token).unwrap(), "s3cret\n");
    }

    #[test]
    fn a_snapshot_must_be_a_regular_file() {
        let error = read_snapshot_file(Path::new("/dev/zero")).expect_err("/dev/zero is refused");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("state.snap");
        std::fs::write(&snapshot, b"\x00\x01").unwrap();
        assert_eq!(read_snapshot_file(&snapshot).unwrap(), b"\x00\x01");
    }
}
