//! A full disk stalls a server's Raft writes instead of stopping Raft for
//! good, `drover server health` says so, and writes go on by themselves
//! once space returns (hardening issue, item 9). The data directory is a
//! small tmpfs, so the test needs root (CI has it); elsewhere it skips with
//! a message, and under CI a missing privilege fails it
//! (`drover_golden::needs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drover_golden::needs::{self, Missing};
use drover_server::{Server, ServerConfig};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0_u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0_u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
}

fn items(value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("value".to_owned(), value.to_owned())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_waits_for_disk_space_and_goes_on_by_itself() {
    let tmpfs = match Tmpfs::mount("48m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            return needs::unmet(Missing::privilege(format!(
                "the disk-full test mounts a tmpfs, which failed: {reason}"
            )));
        }
    };
    let mut config = ServerConfig::new(tmpfs.path().join("server"), "127.0.0.1:1".to_owned());
    config.min_free_disk_bytes = 0;
    let server = Server::start(config).await.unwrap();
    for _ in 0..100 {
        if server.status().is_leader && server.consistent_state().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.put_variable("before/full", items("1"), None).await.unwrap();

    fill(&tmpfs.path().join("filler"));
    // Big values fill redb's free pages quickly, so the next append must
    // grow the file.
    let writer = {
        let server = server.clone();
        tokio::spawn(async move {
            for number in 0..200 {
                server.put_variable(&format!("during/full{number}"), items(&"x".repeat(60_000)), None).await?;
            }
            Ok::<_, drover_types::CodedError>(())
        })
    };
    let mut stalled = None;
    for _ in 0..200 {
        let status = server.local_status().await;
        if status.raft_write_stalled.is_some() {
            stalled = status.raft_write_stalled;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stalled = stalled.expect("a Raft write waits for disk space");
    assert!(stalled.to_lowercase().contains("space"), "{stalled}");
    let health = server.cluster_health().await;
    assert!(
        health.problems.iter().any(|problem| problem.contains("cannot write its Raft data")),
        "{:?}",
        health.problems
    );
    assert!(!writer.is_finished(), "the writes wait while the disk is full");

    std::fs::remove_file(tmpfs.path().join("filler")).unwrap();
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("the writes go on once space returns")
        .unwrap()
        .unwrap();
    assert_eq!(server.local_status().await.raft_write_stalled, None);
    // Raft did not stop: a new write is acknowledged and every write is there.
    server.put_variable("after/full", items("2"), None).await.unwrap();
    let state = server.consistent_state().await.unwrap();
    assert!(state.variable("before/full").is_some());
    assert!(state.variable("during/full199").is_some());
    assert!(state.variable("after/full").is_some());
    server.shutdown().await;
}
