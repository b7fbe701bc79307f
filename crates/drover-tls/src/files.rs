//! The PEM files on disk: a private directory, keys only their owner can
//! read, and writes that never leave half a file behind.
//!
//! A write goes to a temporary file in the same directory, is flushed to
//! disk, renamed over the target and the directory is flushed too, so a
//! crash leaves either the old file or the new one. Reading a key refuses a
//! file other users could read, as ssh does, rather than quietly using a key
//! that may have leaked.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, TlsError};

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
    let file = File::open(path).map_err(TlsError::io("read", path))?;
    // The mode of the file we opened, not of whatever the path names now.
    let metadata = file.metadata().map_err(TlsError::io("read", path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyFileExposed { path: path.to_owned(), mode });
    }
    std::io::read_to_string(file).map_err(TlsError::io("read", path))
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
