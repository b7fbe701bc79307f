//! `drover copy -r`: a directory tree to nodes through real agents, as
//! `scp -r` and `pscp -r` do (docs/exec.md, "A script on stdin, and copying
//! a file"): nested directories, modes and symbolic links kept; into
//! DST/NAME when DST is already a directory; a directory without `-r` and
//! one over the size limit refused before anything is sent.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::Cluster;

/// The permission bits of `path` (not following a symbolic link).
fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_r_puts_a_directory_tree_on_nodes_with_its_modes_and_links() {
    let mut cluster = Cluster::start().await;
    let names: Vec<String> = (1..=2).map(|number| format!("n{number}")).collect();
    cluster.start_agents(&names, &[]).await;

    // The tree to copy: a script, a private file, an empty directory, a
    // nested file and a symbolic link.
    let source = cluster.dir.path().join("conf.d");
    std::fs::create_dir_all(source.join("nested/deeper")).unwrap();
    std::fs::create_dir(source.join("empty")).unwrap();
    std::fs::write(source.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(source.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(source.join("secret"), "s3cret\n").unwrap();
    std::fs::set_permissions(source.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(source.join("nested/deeper/file.txt"), "deep, it's here\n").unwrap();
    std::os::unix::fs::symlink("nested/deeper/file.txt", source.join("link")).unwrap();

    // Commands may run as another user than this test's: a directory
    // anyone can write and reach.
    let shared = tempfile::Builder::new().prefix("drover-copy-r-").tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let destination = shared.path().join("new tree");

    // DST does not exist: it becomes the copy (n1 only: both agents share
    // this machine's file system).
    let target = format!("n1:{}", destination.display());
    let output = cluster.cli(&["copy", "-r", source.to_str().unwrap(), &target]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("[SUCCESS] n1") && stdout.contains("1 node in"), "{stdout}");
    assert_eq!(std::fs::read_to_string(destination.join("nested/deeper/file.txt")).unwrap(), "deep, it's here\n");
    assert_eq!(mode(&destination.join("run.sh")), 0o755);
    assert_eq!(mode(&destination.join("secret")), 0o600);
    assert!(destination.join("empty").is_dir());
    assert_eq!(std::fs::read_link(destination.join("link")).unwrap(), Path::new("nested/deeper/file.txt"));
    let ran = std::process::Command::new(destination.join("run.sh")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "ran\n");

    // DST is a directory now: the copy goes into DST/conf.d, as scp -r's.
    let target = format!("n2:{}", destination.display());
    let output = cluster.cli(&["copy", "--recursive", source.to_str().unwrap(), &target]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("[SUCCESS] n2"), "{stdout}");
    assert_eq!(mode(&destination.join("conf.d/secret")), 0o600);
    assert_eq!(std::fs::read_to_string(destination.join("conf.d/link")).unwrap(), "deep, it's here\n");

    // A directory without -r, and one over 3 MiB: refused, nothing sent.
    let output = cluster.cli(&["copy", source.to_str().unwrap(), &target]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is a directory; give -r"), "{stderr}");
    // Not sparse: the archive would hold a sparse file's holes as nothing.
    std::fs::write(source.join("big"), vec![b'x'; 4 * 1024 * 1024]).unwrap();
    let output =
        cluster.cli(&["copy", "-r", source.to_str().unwrap(), &format!("n1:{}/other", shared.path().display())]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("holds over 3 MiB"), "{stderr}");
    assert!(!shared.path().join("other").exists(), "nothing reached the node");
}
