//! A small binary for drover-executor's integration tests and for debugging
//! the executor by hand, without the full `drover` binary.
//!
//! - `drover-executor-helper executor TASK_DIR` runs the executor shim, exactly
//!   as `drover executor TASK_DIR` does.
//! - `drover-executor-helper launch TASK_DIR LAUNCH_JSON` starts the task
//!   described by the [`TaskLaunch`] JSON file through the driver (with this
//!   binary as the shim), prints the executor state as JSON and exits
//!   without waiting: an agent that dies right after starting a task.

use std::path::Path;
use std::process::ExitCode;

use drover_executor::{DriverConfig, ExecDriver, Isolation, TaskLaunch, run_executor};

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["executor", task_dir] => run_executor(Path::new(task_dir)),
        ["launch", task_dir, launch_file] => match launch(Path::new(task_dir), Path::new(launch_file)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("drover-executor-helper: {message}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: drover-executor-helper executor TASK_DIR\n       drover-executor-helper launch TASK_DIR LAUNCH_JSON"
            );
            ExitCode::from(2)
        }
    }
}

fn launch(task_dir: &Path, launch_file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(launch_file).map_err(|error| format!("{}: {error}", launch_file.display()))?;
    let task_launch: TaskLaunch =
        serde_json::from_str(&text).map_err(|error| format!("{}: {error}", launch_file.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a runtime: {error}"))?;
    runtime.block_on(async {
        let driver =
            ExecDriver::new(DriverConfig::current_exe().map_err(|error| error.to_string())?, Isolation::detect());
        let handle = driver.start(&task_launch, task_dir).await.map_err(|error| error.to_string())?;
        let state = serde_json::to_string(handle.state()).map_err(|error| error.to_string())?;
        println!("{state}");
        Ok(())
    })
}
