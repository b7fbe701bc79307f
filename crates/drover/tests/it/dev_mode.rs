//! `drover dev`: the README's run command.

use std::process::Command;
use std::time::Duration;

use drover_client::Client;
use drover_types::AllocClientStatus;

use crate::harness::{Process, drover_binary, free_port, kill_processes_under, process_alive, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_runs_the_example_job_and_ctrl_c_stops_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(drover_binary());
    command.args(["dev", "--bind", &address, "--data-dir"]).arg(dir.path().join("data"));
    let mut dev = Process::spawn_for_test("dev", &mut command, dir.path().join("dev.log"));
    let client = Client::new(&address);

    let context = || dev.output();
    wait_until(
        "the example job to run",
        Duration::from_secs(60),
        || async {
            client.job_status("hello", None).await.is_ok_and(|(status, _)| {
                status.allocs.iter().any(|alloc| alloc.client_status == AllocClientStatus::Running)
            })
        },
        context,
    )
    .await;
    let (status, _) = client.job_status("hello", None).await.unwrap();
    let pid = status.allocs[0].task_states["hello"].pid.unwrap();
    assert!(process_alive(pid));
    assert!(dev.output().contains(&format!("http://{address}")), "the API address is printed");

    dev.signal(nix::sys::signal::Signal::SIGINT);
    let exit = dev.wait_exit(Duration::from_secs(30)).expect("dev mode exits on Ctrl-C");
    assert!(exit.success(), "clean exit expected: {}", dev.output());
    assert!(!process_alive(pid), "the example task is stopped on Ctrl-C");
    kill_processes_under(dir.path());
}
