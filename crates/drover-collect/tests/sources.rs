#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sources against real files, sockets and processes.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use drover_collect::{
    CheckpointStore, CommandPoller, CommandPollerConfig, FileFollower, FileSourceConfig, JournalConfig, JournalSource,
    SourceExit, SourceKind, SourceLine, Spool, SyslogConfig, SyslogSource, SyslogTransport,
};
use drover_golden::needs;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn fast_config(dir: &Path) -> FileSourceConfig {
    let mut config = FileSourceConfig::new(vec![format!("{}/*.log", dir.display())]);
    config.poll_interval = Duration::from_millis(20);
    config.rescan_interval = Duration::from_millis(50);
    config.rotate_wait = Duration::from_millis(300);
    config
}

struct Running {
    lines: mpsc::Receiver<SourceLine>,
    cancel: CancellationToken,
    task: JoinHandle<drover_collect::Result<SourceExit>>,
}

impl Running {
    async fn next(&mut self) -> SourceLine {
        tokio::time::timeout(WAIT, self.lines.recv()).await.expect("a line within the timeout").expect("source running")
    }

    async fn texts(&mut self, count: usize) -> Vec<String> {
        let mut texts = Vec::new();
        for _ in 0..count {
            texts.push(self.next().await.text);
        }
        texts
    }

    async fn assert_quiet(&mut self) {
        let extra = tokio::time::timeout(Duration::from_millis(300), self.lines.recv()).await;
        assert!(extra.is_err(), "unexpected line {:?}", extra.ok().flatten().map(|line| line.text));
    }

    async fn stop(self) -> SourceExit {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap().unwrap()
    }
}

fn start_files(config: FileSourceConfig, checkpoints: Arc<CheckpointStore>) -> Running {
    let (sender, lines) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(FileFollower::new(config, checkpoints).run(sender, cancel.clone()));
    Running { lines, cancel, task }
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn existing_files_start_at_the_end_new_files_at_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append(&old, "before the agent\n");
    std::fs::write(dir.path().join("ignored.txt"), "not matched\n").unwrap();
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(fast_config(dir.path()), checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&old, "after start\n");
    let line = running.next().await;
    assert_eq!(line.text, "after start");
    assert_eq!(line.source, SourceKind::File { path: Arc::from(old.as_path()) });

    append(&dir.path().join("new.log"), "first of new\npartial");
    assert_eq!(running.texts(1).await, vec!["first of new"]);
    running.assert_quiet().await;
    append(&dir.path().join("new.log"), " line done\r\n");
    assert_eq!(running.texts(1).await, vec!["partial line done"]);
    assert_eq!(running.stop().await, SourceExit::Stopped);
}

#[tokio::test]
async fn writes_and_new_files_are_read_at_once_without_waiting_for_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "before\n");
    let mut config = fast_config(dir.path());
    // Only inotify can be this quick: the poll and the rescan are far away.
    config.poll_interval = Duration::from_secs(30);
    config.rescan_interval = Duration::from_secs(30);
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (file, text) in [("app.log", "written"), ("created.log", "in a new file"), ("app.log", "again")] {
        let started = std::time::Instant::now();
        append(&dir.path().join(file), &format!("{text}\n"));
        let line = tokio::time::timeout(Duration::from_secs(2), running.lines.recv()).await;
        let line = line.expect("read well before the 30 s poll").unwrap();
        assert_eq!(line.text, text);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // A file renamed away and a new one in its place (rotation).
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append(&path, "after rotation\n");
    let line = tokio::time::timeout(Duration::from_secs(2), running.lines.recv()).await.expect("rotation seen at once");
    assert_eq!(line.unwrap().text, "after rotation");
    running.stop().await;
}

#[tokio::test]
async fn a_directory_removed_and_made_again_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("app");
    std::fs::create_dir(&sub).unwrap();
    let mut config = FileSourceConfig::new(vec![format!("{}/*.log", sub.display())]);
    config.poll_interval = Duration::from_secs(10);
    config.rescan_interval = Duration::from_secs(30);
    config.rotate_wait = Duration::from_millis(100);
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    let quickly = async |running: &mut Running| {
        let line = tokio::time::timeout(Duration::from_secs(1), running.lines.recv()).await;
        line.expect("read well before the 10 s poll").unwrap().text
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The glob's directory is watched: a file created in it is found at once.
    append(&sub.join("a.log"), "first\n");
    assert_eq!(quickly(&mut running).await, "first");
    std::fs::remove_dir_all(&sub).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::create_dir(&sub).unwrap();
    // Its parent is not watched: the new directory is watched from the next
    // poll on (at most 10 s), and then its files are seen at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&sub.join("b.log"), "in the new directory\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut found = false;
    while !found && std::time::Instant::now() < deadline {
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(1), running.lines.recv()).await {
            found = line.text == "in the new directory";
        }
    }
    assert!(found, "the new directory's file is followed");
    append(&sub.join("b.log"), "written later\n");
    assert_eq!(quickly(&mut running).await, "written later");
    running.stop().await;
}

#[tokio::test]
async fn rename_rotation_reads_the_old_file_to_its_end_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(fast_config(dir.path()), checkpoints.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&path, "one\n");
    assert_eq!(running.texts(1).await, vec!["one"]);

    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    append(&rotated, "two, written late to the old file\n");
    append(&path, "three, in the new file\n");
    assert_eq!(running.texts(2).await, vec!["two, written late to the old file", "three, in the new file"]);
    // The old file is forgotten once its grace period is over.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tracked = std::fs::read_to_string(dir.path().join("checkpoints.json")).unwrap();
    assert!(!tracked.contains("app.log.1"), "{tracked}");
    running.assert_quiet().await;
    running.stop().await;
}

/// Task output is rotated by index (`web.stdout.N`, never renamed): the
/// unfinished last line of a file (a line longer than a whole file, split
/// by the executor, or a task killed mid-line) is sent as soon as the next
/// file exists, instead of waiting for a newline that never comes, and
/// before the lines of the next file.
#[tokio::test]
async fn the_unfinished_last_line_of_a_numbered_file_is_sent_once_the_next_exists() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config(dir.path());
    config.include = vec![format!("{}/web.stdout.*", dir.path().display())];
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&dir.path().join("web.stdout.0"), "one\nthe first piece of a long line");
    assert_eq!(running.texts(1).await, vec!["one"]);
    // While the file is the newest, its partial line may still be finished.
    running.assert_quiet().await;
    append(&dir.path().join("web.stdout.1"), " and the rest\ntwo\n");
    let piece = running.next().await;
    assert_eq!(piece.text, "the first piece of a long line");
    // Its position is the end of its file: a restart does not read it again.
    let first_file_len = std::fs::metadata(dir.path().join("web.stdout.0")).unwrap().len();
    match piece.checkpoint {
        Some(drover_collect::Checkpoint::File(position)) => assert_eq!(position.offset_after, first_file_len),
        other => panic!("unexpected checkpoint {other:?}"),
    }
    assert_eq!(running.texts(2).await, vec![" and the rest", "two"]);
    running.assert_quiet().await;
    running.stop().await;
}

#[tokio::test]
async fn without_ends_at_next_index_the_unfinished_line_waits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config(dir.path());
    config.include = vec![format!("{}/web.stdout.*", dir.path().display())];
    config.ends_at_next_index = false;
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&dir.path().join("web.stdout.0"), "one\npartial");
    append(&dir.path().join("web.stdout.1"), "two\n");
    let mut texts = running.texts(2).await;
    texts.sort();
    assert_eq!(texts, vec!["one", "two"]);
    running.assert_quiet().await;
    running.stop().await;
}

/// A program that exits after `printf "fatal: …"` (no newline): its last
/// line is sent once the file stops growing, not lost.
#[tokio::test]
async fn a_partial_last_line_is_sent_once_the_file_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config(dir.path());
    config.partial_line_idle = Duration::from_millis(700);
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let path = dir.path().join("task.log");
    append(&path, "one\nfatal: no newline");
    assert_eq!(running.texts(1).await, vec!["one"]);
    // Still growing within the idle time: the line may yet be finished.
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&path, " at the end");
    running.assert_quiet().await;
    let last = running.next().await;
    assert_eq!(last.text, "fatal: no newline at the end");
    match last.checkpoint {
        Some(drover_collect::Checkpoint::File(position)) => {
            assert_eq!(position.offset_after, std::fs::metadata(&path).unwrap().len());
        }
        other => panic!("unexpected checkpoint {other:?}"),
    }
    // What the writer adds later is a line of its own.
    append(&path, " (continued)\n");
    assert_eq!(running.texts(1).await, vec![" (continued)"]);
    running.assert_quiet().await;
    running.stop().await;
}

#[tokio::test]
async fn copy_truncate_restarts_at_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(fast_config(dir.path()), checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&path, "a fairly long first line\nand a second one\n");
    assert_eq!(running.texts(2).await.len(), 2);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&path, "short\n");
    let line = running.next().await;
    assert_eq!(line.text, "short");
    match line.checkpoint {
        Some(drover_collect::Checkpoint::File(position)) => {
            assert_eq!((position.generation, position.offset_after), (1, 6));
        }
        other => panic!("unexpected checkpoint {other:?}"),
    }
    running.stop().await;
}

#[tokio::test]
async fn a_file_truncated_mid_line_sends_what_was_read_of_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut config = fast_config(dir.path());
    config.partial_line_idle = Duration::from_secs(3600);
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&path, "done\nhalf a li");
    assert_eq!(running.texts(1).await, vec!["done"]);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    append(&path, "fresh\n");
    assert_eq!(running.texts(2).await, vec!["half a li", "fresh"]);
    running.stop().await;
}

/// `<dir>/<name>.log` is written by a process that records its exit in `<dir>/<name>.exit`.
fn exit_file_of(path: &Path) -> Option<std::path::PathBuf> {
    Some(path.with_extension("exit"))
}

#[tokio::test]
async fn the_partial_last_line_is_sent_as_soon_as_the_writer_exited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.log");
    let mut config = fast_config(dir.path());
    config.partial_line_idle = Duration::from_secs(3600);
    config.writer_exit_file = Some(exit_file_of);
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(config, checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'starting\\nfatal: x' >> {0}; echo 1 > {1}",
            path.display(),
            exit_file_of(&path).unwrap().display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(running.texts(2).await, vec!["starting", "fatal: x"]);
    running.stop().await;
}

#[tokio::test]
async fn a_one_megabyte_line_comes_in_marked_pieces_with_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let mut running = start_files(fast_config(dir.path()), checkpoints);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let line: String = (0..1024 * 1024).map(|index| char::from(b'a' + (index % 26) as u8)).collect();
    append(&path, &format!("{line}\nafter\n"));
    let num_pieces = line.len().div_ceil(drover_collect::MAX_LINE_BYTES);
    assert_eq!(num_pieces, 16);
    let pieces = running.texts(num_pieces + 1).await;
    assert_eq!(pieces.last().map(String::as_str), Some("after"));
    let mut joined = String::new();
    for (index, piece) in pieces[..num_pieces].iter().enumerate() {
        let is_first = index == 0;
        let is_last = index + 1 == num_pieces;
        assert_eq!(piece.starts_with(drover_collect::CONTINUED_MARKER), !is_first, "piece {index}");
        assert_eq!(piece.ends_with(drover_collect::CONTINUES_MARKER), !is_last, "piece {index}");
        let text = piece.strip_prefix(drover_collect::CONTINUED_MARKER).unwrap_or(piece);
        joined.push_str(text.strip_suffix(drover_collect::CONTINUES_MARKER).unwrap_or(text));
    }
    assert!(joined == line, "the pieces put together are the line");
    running.stop().await;
}

#[tokio::test]
async fn syslog_over_tcp_splits_long_messages_and_flushes_a_quiet_partial_one() {
    use tokio::io::AsyncWriteExt;
    let mut config = SyslogConfig::new("127.0.0.1:0".parse().unwrap());
    config.udp = None;
    config.partial_line_idle = Duration::from_millis(300);
    let source = SyslogSource::bind(config).await.unwrap();
    let address = source.tcp_addr().unwrap();
    let (sender, lines) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(sender, cancel.clone()));
    let mut running = Running { lines, cancel, task };
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = "y".repeat(150 * 1024);
    connection.write_all(format!("<11>Jun 14 15:16:01 host app[7]: {body}\n").as_bytes()).await.unwrap();
    let pieces = [running.next().await, running.next().await, running.next().await];
    for piece in &pieces {
        assert_eq!(piece.syslog.as_ref().unwrap().app_name.as_deref(), Some("app"), "every piece keeps the header");
    }
    assert!(pieces[0].text.ends_with(drover_collect::CONTINUES_MARKER));
    assert!(pieces[2].text.starts_with(drover_collect::CONTINUED_MARKER));
    let total: usize = pieces.iter().map(|piece| piece.text.matches('y').count()).sum();
    assert_eq!(total, body.len());
    // A prompt without a newline on a connection left open.
    connection.write_all(b"<13>Jun 14 15:16:02 host app[7]: password: ").await.unwrap();
    let prompt = running.next().await;
    assert_eq!(prompt.text, "password: ");
    running.stop().await;
}

#[tokio::test]
async fn restart_resumes_after_the_last_committed_line_through_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "");
    let checkpoint_path = dir.path().join("state/checkpoints.json");
    std::fs::create_dir_all(checkpoint_path.parent().unwrap()).unwrap();
    let mut config = fast_config(dir.path());
    config.read_existing_from_start = true;

    let checkpoints = CheckpointStore::open(&checkpoint_path).unwrap();
    let mut spool = Spool::open(dir.path().join("spool"), 1 << 20).unwrap();
    let mut running = start_files(config.clone(), checkpoints.clone());
    append(&path, "l1\nl2\nl3\n");
    let lines = [running.next().await, running.next().await, running.next().await];
    // Only the first two reach the spool before the "crash".
    spool.append(&[lines[0].text.as_bytes(), lines[1].text.as_bytes()]).unwrap();
    checkpoints.commit(lines[1].checkpoint.as_ref().unwrap());
    checkpoints.flush().unwrap();
    running.stop().await;
    drop(spool);
    append(&path, "l4\n");

    let reopened_checkpoints = CheckpointStore::open(&checkpoint_path).unwrap();
    let mut restarted = start_files(config, reopened_checkpoints);
    assert_eq!(restarted.texts(2).await, vec!["l3", "l4"]);
    restarted.assert_quiet().await;
    restarted.stop().await;
    let spool = Spool::open(dir.path().join("spool"), 1 << 20).unwrap();
    assert_eq!(spool.read_from(1, 1 << 20).unwrap(), vec![(1, b"l1".to_vec()), (2, b"l2".to_vec())]);
}

#[tokio::test]
async fn syslog_receives_from_the_real_logger_over_udp_and_tcp() {
    if !needs::are_met([needs::program("logger", "bsdutils")]) {
        return;
    }
    let any_port = "127.0.0.1:0".parse().unwrap();
    let source = SyslogSource::bind(SyslogConfig::new(any_port)).await.unwrap();
    let udp_port = source.udp_addr().unwrap().port().to_string();
    let tcp_port = source.tcp_addr().unwrap().port().to_string();
    let (sender, lines) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(sender, cancel.clone()));
    let mut running = Running { lines, cancel, task };

    let cases: &[(&[&str], &str, SyslogTransport, Option<&str>)] = &[
        (&["-d", "--rfc3164", "--id=42", "-p", "local3.err"], "udp 3164", SyslogTransport::Udp, Some("42")),
        (&["-d", "--rfc5424", "--id=43", "-p", "local3.err"], "udp 5424", SyslogTransport::Udp, Some("43")),
        (&["-T", "--rfc3164", "-p", "local3.err"], "tcp 3164", SyslogTransport::Tcp, None),
        (&["-T", "--rfc5424", "-p", "local3.err"], "tcp 5424", SyslogTransport::Tcp, None),
        (&["-T", "--octet-count", "-p", "local3.err"], "tcp octet", SyslogTransport::Tcp, None),
    ];
    for &(flags, message, transport, proc_id) in cases {
        let port = if transport == SyslogTransport::Udp { &udp_port } else { &tcp_port };
        let status = Command::new("logger")
            .args(["-n", "127.0.0.1", "-P", port, "-t", "drovertest"])
            .args(flags)
            .arg(message)
            .status()
            .unwrap();
        assert!(status.success());
        let line = running.next().await;
        assert_eq!(line.text, message, "{flags:?}");
        assert!(matches!(line.source, SourceKind::Syslog { transport: received, .. } if received == transport));
        let meta = line.syslog.unwrap();
        assert_eq!((meta.facility, meta.severity), (19, 3), "{flags:?}");
        assert_eq!(meta.app_name.as_deref(), Some("drovertest"), "{flags:?}");
        assert_eq!(meta.proc_id.as_deref(), proc_id, "{flags:?}");
        assert!(meta.hostname.is_some(), "{flags:?}");
        assert!(meta.timestamp.is_some(), "{flags:?}");
    }
    assert_eq!(running.stop().await, SourceExit::Stopped);
}

#[tokio::test]
async fn journal_is_not_available_without_journal_files_or_binary() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = CheckpointStore::open(dir.path().join("checkpoints.json")).unwrap();
    let (sender, _lines) = mpsc::channel(16);
    let missing_binary = JournalConfig { journalctl: "/nonexistent/journalctl".into(), ..JournalConfig::default() };
    let exit = JournalSource::new(missing_binary, checkpoints.clone()).run(sender.clone(), CancellationToken::new());
    assert!(matches!(exit.await.unwrap(), SourceExit::NotAvailable { .. }));

    if !needs::are_met([needs::program("journalctl", "systemd")]) {
        return;
    }
    let empty = JournalConfig { directory: Some(dir.path().join("empty")), ..JournalConfig::default() };
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let exit = tokio::time::timeout(WAIT, JournalSource::new(empty, checkpoints).run(sender, CancellationToken::new()))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(exit, SourceExit::NotAvailable { .. }), "{exit:?}");
}

#[tokio::test]
async fn console_poller_emits_only_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let console = dir.path().join("console.txt");
    append(&console, "boot 1\nboot 2\n");
    let config = CommandPollerConfig::new(
        "node-1",
        "sh",
        vec!["-c".into(), format!("tail -n 3 {}", console.display())],
        Duration::from_millis(50),
    );
    let (sender, lines) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(CommandPoller::new(config).run(sender, cancel.clone()));
    let mut running = Running { lines, cancel, task };
    assert_eq!(running.texts(2).await, vec!["boot 1", "boot 2"]);
    append(&console, "login:\nready\n");
    assert_eq!(running.texts(2).await, vec!["login:", "ready"]);
    running.assert_quiet().await;
    assert_eq!(running.stop().await, SourceExit::Stopped);

    let (sender, _lines) = mpsc::channel(1);
    let missing = CommandPollerConfig::new("x", "/nonexistent/console", Vec::new(), Duration::from_millis(10));
    let exit = CommandPoller::new(missing).run(sender, CancellationToken::new()).await.unwrap();
    assert!(matches!(exit, SourceExit::NotAvailable { .. }));
}
