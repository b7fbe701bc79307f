//! Nomad's `template` and `artifact` blocks end to end: the agent downloads
//! an artifact from a local HTTP server (checksum verified), renders
//! templates with the task's environment (a dynamic port included, one as
//! `env = true`), and the raw_exec task reads what was put in its
//! directory; an artifact with a wrong checksum fails its task with a
//! clear event.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use drover_types::{AllocClientStatus, TaskEventKind};

use crate::harness::Cluster;

/// Serves `body` to every request on a loopback port, on a thread that
/// lives as long as the test process; returns the port.
fn serve(body: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(header.as_bytes()).and_then(|()| stream.write_all(body));
        }
    });
    port
}

fn sha256_of(bytes: &[u8]) -> String {
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), bytes).unwrap();
    let output = Command::new("sha256sum").arg(path.path()).output().unwrap();
    String::from_utf8(output.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

const TOOL: &[u8] = b"echo \"tool ran with $LOG_LEVEL\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reads_its_rendered_templates_and_downloaded_artifact() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let port = serve(TOOL);
    let checksum = sha256_of(TOOL);
    let out = cluster.dir.path().join("task-output.txt");
    let job = format!(
        r#"
job "configured" {{
  type = "batch"
  group "g" {{
    network {{
      port "http" {{}}
    }}
    task "show" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "cat ${{NOMAD_TASK_DIR}}/app.conf > {out} && sh ${{NOMAD_TASK_DIR}}/bin/tool.sh >> {out} && stat -c %a ${{NOMAD_TASK_DIR}}/app.conf >> {out}"]
      }}
      env {{ LEVEL = "debug" }}
      artifact {{
        source      = "http://127.0.0.1:{port}/tool.sh"
        destination = "local/bin"
        options {{ checksum = "sha256:{checksum}" }}
      }}
      template {{
        data        = <<EOF
port={{{{ env "NOMAD_PORT_http" }}}} task={{{{ env "NOMAD_TASK_NAME" | toUpper }}}}
EOF
        destination = "local/app.conf"
        perms       = "0600"
      }}
      template {{
        data        = "LOG_LEVEL={{{{ env \"LEVEL\" }}}}-from-template\n"
        destination = "secrets/app.env"
        env         = true
      }}
      resources {{
        cpu    = 50
        memory = 16
      }}
    }}
  }}
}}
"#,
        out = out.display()
    );
    let output = cluster.run_job("configured", &job);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status = cluster.wait_for_allocs("configured", AllocClientStatus::Complete, 1).await;
    let alloc = cluster.client.allocation(&status.allocs[0].id.to_string()).await.unwrap();
    let port = alloc.ports.iter().find(|allocated| allocated.label == "http").expect("a port").value;
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written, format!("port={port} task=SHOW\ntool ran with debug-from-template\n600\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_with_a_wrong_checksum_fails_its_task_with_a_clear_event() {
    let mut cluster = Cluster::start().await;
    cluster.start_agent("n1", &[]).await;
    let port = serve(TOOL);
    let wrong = "0".repeat(64);
    let job = format!(
        r#"
job "tampered" {{
  type = "batch"
  group "g" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "run" {{
      driver = "raw_exec"
      config {{ command = "/bin/true" }}
      artifact {{
        source  = "http://127.0.0.1:{port}/tool.sh"
        options {{ checksum = "sha256:{wrong}" }}
      }}
    }}
  }}
}}
"#
    );
    let output = cluster.run_job("tampered", &job);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status = cluster.wait_for_allocs("tampered", AllocClientStatus::Failed, 1).await;
    let events = &status.allocs[0].task_states["run"].events;
    let setup = events.iter().find(|event| event.kind == TaskEventKind::TaskSetup).expect("a Task Setup event");
    let expected = format!("artifact http://127.0.0.1:{port}/tool.sh: checksum mismatch: expected sha256:{wrong}");
    assert!(setup.message.starts_with(&expected), "{}", setup.message);
    assert!(!events.iter().any(|event| event.kind == TaskEventKind::Started), "the task never started: {events:?}");
}
