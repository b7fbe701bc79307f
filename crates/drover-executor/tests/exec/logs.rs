//! Output capture: rotating files, tail and follow.

use std::time::Duration;

use drover_executor::log_rotate::list_log_files;
use drover_executor::{LogOrigin, LogPosition, LogReader, LogRotation, LogStream, Signal};
use futures_util::StreamExt;

use crate::support::{TestTask, driver, eventually, wait_exit};

/// `line 100\n` … `line 299\n`: 200 lines of 9 bytes.
fn numbered_lines(prefix: &str) -> String {
    (100..300).map(|number| format!("{prefix} {number}\n")).collect()
}

#[tokio::test]
async fn output_rotates_at_line_ends_below_the_size_cap_and_the_oldest_files_are_deleted() {
    let mut task =
        TestTask::new("i=100; while [ $i -lt 300 ]; do echo \"line $i\"; echo \"errs $i\" >&2; i=$((i+1)); done");
    task.launch.log_rotation = LogRotation { max_files: 3, max_file_bytes: 100 };
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    let result = wait_exit(&handle).await;
    assert_eq!(result.exit_code, Some(0), "{result:?}");

    for (stream, prefix) in [(LogStream::Stdout, "line"), (LogStream::Stderr, "errs")] {
        let expected = numbered_lines(prefix);
        assert_eq!(expected.len(), 1800);
        // Files end at a line end: 11 lines (99 bytes) each, as a 12th would
        // pass the cap. 18 full files and one of 2 lines were written; the
        // newest 3 remain.
        let files = list_log_files(&task.launch.log_dir, "web", stream).unwrap();
        let indexes: Vec<u64> = files.iter().map(|(index, _)| *index).collect();
        assert_eq!(indexes, vec![16, 17, 18], "{stream:?}");
        let sizes: Vec<u64> = files.iter().map(|(_, path)| std::fs::metadata(path).unwrap().len()).collect();
        assert_eq!(sizes, vec![99, 99, 18], "{stream:?}");
        assert_eq!(task.output(stream), expected[1584..], "{stream:?}");

        let reader = LogReader::new(&task.launch.log_dir, "web", stream);
        assert_eq!(String::from_utf8(reader.tail(100).await.unwrap().data).unwrap(), expected[1700..]);
        assert_eq!(String::from_utf8(reader.tail(10_000).await.unwrap().data).unwrap(), expected[1584..]);
        let from_start = reader.seek(LogOrigin::Start(10)).await.unwrap();
        assert_eq!(from_start, LogPosition { file_index: 16, offset: 10 });
        let chunk = reader.read(from_start, 150).await.unwrap();
        assert_eq!(String::from_utf8(chunk.data).unwrap(), expected[1594..1744]);
        assert_eq!(chunk.next, LogPosition { file_index: 17, offset: 61 });
    }
}

#[tokio::test]
async fn follow_returns_every_byte_in_order_across_rotations() {
    let mut task = TestTask::new("for i in $(seq 1 60); do echo \"line $i\"; sleep 0.01; done");
    task.launch.log_rotation = LogRotation { max_files: 1000, max_file_bytes: 64 };
    let expected: String = (1..=60).map(|number| format!("line {number}\n")).collect();

    let reader =
        LogReader::new(&task.launch.log_dir, "web", LogStream::Stdout).with_poll_interval(Duration::from_millis(10));
    let mut follow = Box::pin(reader.follow(LogPosition::START));
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();

    let mut seen = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(30), async {
        while seen.len() < expected.len() {
            let chunk = follow.next().await.expect("follow never ends").expect("readable logs");
            seen.extend(chunk.data);
        }
    })
    .await;
    assert!(collected.is_ok(), "followed only {:?}", String::from_utf8_lossy(&seen));
    assert_eq!(String::from_utf8(seen).unwrap(), expected);
    assert_eq!(wait_exit(&handle).await.exit_code, Some(0));
    let num_files = list_log_files(&task.launch.log_dir, "web", LogStream::Stdout).unwrap().len();
    assert!(num_files >= expected.len() / 64, "only {num_files} files: no rotation happened");

    // Nothing more arrives after the task ended.
    let extra = tokio::time::timeout(Duration::from_millis(200), follow.next()).await;
    assert!(extra.is_err(), "unexpected data after the end: {extra:?}");
}

#[tokio::test]
async fn a_line_is_readable_while_the_task_still_runs() {
    let task = TestTask::new("echo ready; echo also-stderr >&2; exec sleep 1000");
    let handle = driver().start(&task.launch, &task.task_dir()).await.unwrap();
    // The task never exits by itself, so the line can only be there if the
    // shim copies output as it comes.
    let visible = eventually(Duration::from_secs(2), || {
        task.output(LogStream::Stdout) == "ready\n" && task.output(LogStream::Stderr) == "also-stderr\n"
    })
    .await;
    assert!(visible, "stdout {:?}, stderr {:?}", task.output(LogStream::Stdout), task.output(LogStream::Stderr));
    handle.stop(Signal::SIGTERM, Duration::from_secs(5)).await.unwrap();
    assert_eq!(wait_exit(&handle).await.signal, Some(15));
}
