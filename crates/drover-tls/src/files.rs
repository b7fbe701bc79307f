//! The PEM files on disk: a private directory, keys only their owner can
//! read, reads that stop at [`MAX_PEM_FILE_BYTES`], and writes that never
//! leave half a file behind.
//!
//! Every certificate and key drover reads, whether from its data
//! directory or from a path an operator gave (`--tls-ca-cert`,
//! `--tls-cert`, …), goes through [`read_public`] or [`read_private`], so
//! a wrong path such as `/dev/zero` is refused at once instead of being
//! read until memory runs out.
//!
//! A write goes to a temporary file in the same directory, is flushed to
//! disk, renamed over the target and the directory is flushed too, so a
//! crash leaves either the old file or the new one. Reading a key refuses a
//! file other users could read, as ssh does, rather than quietly using a key
//! that may have leaked.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, TlsError};

/// The most bytes a certificate, key or CA bundle file may hold: a
/// certificate is under 2 KiB, and a bundle of a few hundred CAs fits.
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

const PRIVATE_FILE_MODE: u32 = 0o600;
const PUBLIC_FILE_MODE: u32 = 0o644;
const PRIVATE_DIRECTORY_MODE: u32 = 0o700;

/// Writes a file only its owner can read (0600), atomically.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    write_atomically(path, contents, PRIVATE_FILE_MODE)
}

/// Writes a file everyone can read (0644), atomically.
pub fn write_public(path: &Path, contents: &str) -> Result<()> {
    write_atomically(path, contents, PUBLIC_FILE_MODE)
}

/// Reads a private file, refusing one that group or others may read or write.
pub fn read_private(path: &Path) -> Result<String> {
    let (file, mode) = open_with_mode(path)?;
    check_private_mode(path, mode)?;
    read_bounded(file, path)
}

/// Reads a key file, at most [`MAX_PEM_FILE_BYTES`] of it, and returns its
/// text with its permission bits *without* judging them: for a key checked
/// somewhere else with [`check_private_mode`] (the CLI sends an operator's
/// CA key to the servers, which refuse it as they refuse one at start).
pub fn read_key_file(path: &Path) -> Result<(String, u32)> {
    let (file, mode) = open_with_mode(path)?;
    Ok((read_bounded(file, path)?, mode))
}

/// Refuses the permission bits `mode` of the key file `path` when group or
/// others may read or write it, as ssh does.
pub fn check_private_mode(path: &Path, mode: u32) -> Result<()> {
    let mode = mode & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyFileExposed { path: path.to_owned(), mode });
    }
    Ok(())
}

/// Opens `path` and reads its permission bits: the mode of the file
/// opened, not of whatever the path names a moment later.
fn open_with_mode(path: &Path) -> Result<(File, u32)> {
    let file = File::open(path).map_err(TlsError::io("read", path))?;
    let metadata = file.metadata().map_err(TlsError::io("read", path))?;
    Ok((file, metadata.permissions().mode() & 0o777))
}

/// Reads a file anyone may read (a certificate, a bundle of CA
/// certificates), at most [`MAX_PEM_FILE_BYTES`] of it.
pub fn read_public(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(TlsError::io("read", path))?;
    read_bounded(file, path)
}

/// Reads `file` as UTF-8 text, refusing one longer than [`MAX_PEM_FILE_BYTES`]
/// after reading one byte more than that.
fn read_bounded(file: File, path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(TlsError::io("read", path))?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(TlsError::FileTooLarge { path: path.to_owned(), limit: MAX_PEM_FILE_BYTES });
    }
    String::from_utf8(bytes).map_err(|_| {
        TlsError::invalid(format!("the file {}", path.display()), "it is not text (PEM files are); check the path")
    })
}

/// Makes sure `path` is a directory other users cannot write into: creates
/// it with mode 0700 (and its missing parents) when missing, refuses an
/// existing one that group or others may write.
pub fn ensure_private_dir(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(metadata) => {
            if !metadata.is_dir() {
                return Err(TlsError::NotADirectory { path: path.to_owned() });
            }
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o022 != 0 {
                return Err(TlsError::DirectoryExposed { path: path.to_owned(), mode });
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE_DIRECTORY_MODE)
                .create(path)
                .map_err(TlsError::io("create the directory", path))?;
            // The umask may have taken bits away; say exactly what we mean.
            fs::set_permissions(path, Permissions::from_mode(PRIVATE_DIRECTORY_MODE))
                .map_err(TlsError::io("set the mode of", path))
        }
        Err(error) => Err(TlsError::io("read", path)(error)),
    }
}

fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let Some(file_name) = path.file_name() else {
        return Err(TlsError::invalid(format!("the path {}", path.display()), "it names no file"));
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let temporary = directory.join(format!(
        ".{}.{}-{:08x}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = write_new_file(&temporary, contents, mode)
        .and_then(|()| fs::rename(&temporary, path).map_err(TlsError::io("replace", path)));
    if let Err(error) = written {
        // Best effort: the error that matters is the one above.
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    File::open(&directory).and_then(|handle| handle.sync_all()).map_err(TlsError::io("flush the directory", &directory))
}

fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(TlsError::io("create", path))?;
    // The umask applies to `mode` above; the mode must be exact.
    file.set_permissions(Permissions::from_mode(mode)).map_err(TlsError::io("set the mode of", path))?;
    file.write_all(contents.as_bytes()).map_err(TlsError::io("write", path))?;
    file.sync_all().map_err(TlsError::io("flush", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_quickly_naming_it() {
        let started = std::time::Instant::now();
        let error = read_public(Path::new("/dev/zero")).expect_err("/dev/zero never ends");
        assert_eq!(
            error.to_string(),
            "/dev/zero is larger than 1 MiB, more than any certificate, key or CA bundle: check the path"
        );
        // /dev/zero is readable by everyone, which a key must not be.
        let error = read_private(Path::new("/dev/zero")).expect_err("not private");
        assert!(error.to_string().starts_with("/dev/zero can be read or written by other users"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_key_file_is_read_with_its_mode_for_a_check_made_elsewhere() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("key.pem");
        write_public(&path, "key").expect("written");
        let (text, mode) = read_key_file(&path).expect("read whatever its mode");
        assert_eq!((text.as_str(), mode), ("key", 0o644));
        let error = check_private_mode(&path, mode).expect_err("exposed");
        assert_eq!(error.to_string(), read_private(&path).expect_err("exposed").to_string());
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).expect("mode set");
        assert_eq!(read_key_file(&path).expect("read").1, 0o600);
        assert!(check_private_mode(&path, 0o100600).is_ok(), "the file type bits are not the permissions");
        assert!(matches!(read_key_file(Path::new("/dev/zero")), Err(TlsError::FileTooLarge { .. })));
    }

    #[test]
    fn a_private_file_just_under_the_limit_is_read() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("key.pem");
        let text = "a".repeat(usize::try_from(MAX_PEM_FILE_BYTES).expect("fits"));
        write_private(&path, &text).expect("written");
        assert_eq!(read_private(&path).expect("read").len(), text.len());
        write_private(&path, &format!("{text}b")).expect("written");
        assert!(matches!(read_private(&path), Err(TlsError::FileTooLarge { .. })));
    }
}
