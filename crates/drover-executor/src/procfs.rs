//! The few facts about processes read from `/proc`.
//!
//! A pid is only an identity together with the process's start time: once
//! a process exits, its pid is handed to the next process that starts. So
//! everything that acts on a recorded pid first checks the start time
//! (field 22 of `/proc/<pid>/stat`) against the recorded one.

use std::fs;
use std::io;

/// The fields of `/proc/<pid>/stat` drover uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// One-letter state: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: char,
    /// Process group id.
    pub pgid: i32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether the process has exited (a zombie waiting to be reaped counts
    /// as exited).
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the text of `/proc/<pid>/stat`.
///
/// The second field is the command name in parentheses and may itself
/// contain spaces and parentheses, so fields are counted from the *last*
/// `)`: what follows it starts with field 3 (state).
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field n (1-based, as in proc(5)) is fields[n - 3].
    let state = fields.first()?.chars().next()?;
    let pgid = fields.get(5 - 3)?.parse().ok()?;
    let start_time = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat { state, pgid, start_time })
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when there is no such process.
pub(crate) fn read_stat(pid: u32) -> io::Result<Option<ProcStat>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text)
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unreadable /proc/{pid}/stat"))),
        // ESRCH shows up when the process exits while the file is read.
        Err(error) if error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(nix::libc::ESRCH) => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// What became of a recorded process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The recorded process is running.
    Running,
    /// The recorded process has exited but is not yet reaped.
    Zombie,
    /// No process has the pid any more.
    Gone,
    /// The pid belongs to a different, later process.
    Reused,
}

/// Checks whether `pid` is still the process that started at `start_time`.
pub(crate) fn liveness(pid: u32, start_time: u64) -> Liveness {
    match read_stat(pid) {
        Ok(Some(stat)) if stat.start_time != start_time => Liveness::Reused,
        Ok(Some(stat)) if stat.has_exited() => Liveness::Zombie,
        Ok(Some(_)) => Liveness::Running,
        // An unreadable stat file of an existing process is treated as
        // running: acting on it (killing) would be worse than waiting.
        Err(_) => Liveness::Running,
        Ok(None) => Liveness::Gone,
    }
}

/// The kernel's id of the current boot, to tell processes of an earlier
/// boot from the current ones.
pub(crate) fn boot_id() -> io::Result<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|text| text.trim().to_owned())
}

/// Sends SIGKILL to every process whose command line or working directory
/// lies under `dir` (except this process). Executors and the tasks they run
/// outlive their agent by design; this is how tests and benchmarks simulate
/// a machine dying, and how they clean up. Returns how many were signalled.
pub fn kill_processes_under(dir: &std::path::Path) -> usize {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let own_pid = std::process::id();
    let mut num_killed = 0;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == own_pid {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.to_string_lossy().contains(&needle) {
            let Ok(raw_pid) = i32::try_from(pid) else { continue };
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw_pid), nix::sys::signal::Signal::SIGKILL).is_ok() {
                num_killed += 1;
            }
        }
    }
    num_killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let text = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat, ProcStat { state: 'S', pgid: 4242, start_time: 987_654 });
        assert!(!stat.has_exited());
        assert_eq!(parse_stat("12 (short) S 1"), None);
    }

    #[test]
    fn the_current_process_is_running_and_a_wrong_start_time_means_reuse() {
        let pid = std::process::id();
        let stat = read_stat(pid).unwrap().unwrap();
        assert_eq!(liveness(pid, stat.start_time), Liveness::Running);
        assert_eq!(liveness(pid, stat.start_time + 1), Liveness::Reused);
        assert!(!boot_id().unwrap().is_empty());
    }
}
