//! The order of an allocation's tasks (Nomad's `lifecycle` hooks), as a
//! pure decision: from where every task is, which tasks start now, which
//! sidecars stop, and which tasks will never run.
//!
//! ```text
//!  prestart ──(non-sidecars completed, sidecars running)──▶ main
//!  main ──(every main task running)──▶ poststart
//!  main ──(every main task ended)──▶ stop sidecars, skip poststart not run
//!  everything else ended ──▶ poststop
//! ```
//!
//! A prestart task that fails keeps the main tasks from starting: the
//! allocation fails (the runner stops it), and the tasks that never started
//! are skipped. Poststop tasks run once every other task has ended, when at
//! least one of them ran (an allocation stopped before it started runs
//! nothing).

use drover_types::{LifecycleHook, Task};

/// Where one task of the allocation is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TaskPhase {
    pub(super) name: String,
    /// `None` for a main task.
    pub(super) hook: Option<LifecycleHook>,
    pub(super) sidecar: bool,
    /// Its task runner was started.
    pub(super) launched: bool,
    /// It runs now.
    pub(super) running: bool,
    /// It ended (or was skipped) for good.
    pub(super) finished: bool,
    /// It ended failed.
    pub(super) failed: bool,
}

impl TaskPhase {
    /// A task not launched yet.
    pub(super) fn of(task: &Task) -> TaskPhase {
        TaskPhase {
            name: task.name.clone(),
            hook: task.hook(),
            sidecar: task.is_sidecar(),
            launched: false,
            running: false,
            finished: false,
            failed: false,
        }
    }

    fn completed(&self) -> bool {
        self.finished && !self.failed
    }

    fn is_main(&self) -> bool {
        self.hook.is_none()
    }
}

/// What the runner must do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LifecycleSteps {
    /// Start these tasks' runners.
    pub(super) launch: Vec<String>,
    /// Stop these running sidecars (the main tasks ended).
    pub(super) stop: Vec<String>,
    /// Mark these tasks ended without running them.
    pub(super) skip: Vec<String>,
}

/// The next steps for `tasks`; `stopping` when the allocation is being
/// stopped (asked to, or a task failed).
pub(super) fn next_steps(tasks: &[TaskPhase], stopping: bool) -> LifecycleSteps {
    let mut steps = LifecycleSteps::default();
    let waiting = |task: &&TaskPhase| !task.launched && !task.finished;
    let mains = || tasks.iter().filter(|task| task.is_main());
    let mains_ended = mains().all(|task| task.finished);
    if stopping || mains_ended {
        // Nothing but poststop starts any more.
        for task in tasks.iter().filter(waiting).filter(|task| task.hook != Some(LifecycleHook::Poststop)) {
            steps.skip.push(task.name.clone());
        }
        if !stopping {
            let sidecars = tasks.iter().filter(|task| task.sidecar && task.launched && !task.finished);
            steps.stop.extend(sidecars.map(|task| task.name.clone()));
        }
        let others_ended = tasks
            .iter()
            .filter(|task| task.hook != Some(LifecycleHook::Poststop))
            .all(|task| task.finished || steps.skip.contains(&task.name));
        let any_ran = tasks.iter().any(|task| task.hook != Some(LifecycleHook::Poststop) && task.launched);
        if others_ended {
            let poststops = tasks.iter().filter(waiting).filter(|task| task.hook == Some(LifecycleHook::Poststop));
            let poststop_names = poststops.map(|task| task.name.clone());
            if any_ran { steps.launch.extend(poststop_names) } else { steps.skip.extend(poststop_names) }
        }
        return steps;
    }
    let prestarts = || tasks.iter().filter(|task| task.hook == Some(LifecycleHook::Prestart));
    let prestart_done =
        prestarts().all(|task| if task.sidecar { task.running || task.completed() } else { task.completed() });
    let mains_running = mains().all(|task| task.launched && (task.running || task.completed()));
    for task in tasks.iter().filter(waiting) {
        let due = match task.hook {
            Some(LifecycleHook::Prestart) => true,
            None => prestart_done,
            Some(LifecycleHook::Poststart) => prestart_done && mains_running,
            Some(LifecycleHook::Poststop) => false,
        };
        if due {
            steps.launch.push(task.name.clone());
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &str, hook: Option<LifecycleHook>, sidecar: bool) -> TaskPhase {
        TaskPhase {
            name: name.to_owned(),
            hook,
            sidecar,
            launched: false,
            running: false,
            finished: false,
            failed: false,
        }
    }

    /// A group of every kind of task, none launched.
    fn group() -> Vec<TaskPhase> {
        vec![
            phase("setup", Some(LifecycleHook::Prestart), false),
            phase("shipper", Some(LifecycleHook::Prestart), true),
            phase("main", None, false),
            phase("warm", Some(LifecycleHook::Poststart), false),
            phase("cleanup", Some(LifecycleHook::Poststop), false),
        ]
    }

    fn set(tasks: &mut [TaskPhase], name: &str, change: impl Fn(&mut TaskPhase)) {
        change(tasks.iter_mut().find(|task| task.name == name).unwrap());
    }

    fn running(task: &mut TaskPhase) {
        task.launched = true;
        task.running = true;
    }

    fn completed(task: &mut TaskPhase) {
        task.launched = true;
        task.running = false;
        task.finished = true;
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn prestart_tasks_start_first_and_main_waits_for_them() {
        let mut tasks = group();
        assert_eq!(next_steps(&tasks, false).launch, names(&["setup", "shipper"]));
        set(&mut tasks, "setup", running);
        set(&mut tasks, "shipper", running);
        assert_eq!(next_steps(&tasks, false), LifecycleSteps::default(), "main waits while setup runs");
        set(&mut tasks, "setup", completed);
        assert_eq!(next_steps(&tasks, false).launch, names(&["main"]));
    }

    #[test]
    fn main_waits_for_a_sidecar_to_run() {
        let mut tasks = group();
        set(&mut tasks, "setup", completed);
        set(&mut tasks, "shipper", |task| task.launched = true);
        assert_eq!(next_steps(&tasks, false), LifecycleSteps::default());
        set(&mut tasks, "shipper", running);
        assert_eq!(next_steps(&tasks, false).launch, names(&["main"]));
    }

    #[test]
    fn poststart_waits_for_every_main_task_to_run() {
        let mut tasks = group();
        set(&mut tasks, "setup", completed);
        set(&mut tasks, "shipper", running);
        set(&mut tasks, "main", |task| task.launched = true);
        assert_eq!(next_steps(&tasks, false), LifecycleSteps::default());
        set(&mut tasks, "main", running);
        assert_eq!(next_steps(&tasks, false).launch, names(&["warm"]));
    }

    #[test]
    fn when_the_main_tasks_end_sidecars_stop_then_poststop_runs() {
        let mut tasks = group();
        set(&mut tasks, "setup", completed);
        set(&mut tasks, "shipper", running);
        set(&mut tasks, "main", completed);
        let steps = next_steps(&tasks, false);
        assert_eq!(steps.stop, names(&["shipper"]));
        assert_eq!(steps.skip, names(&["warm"]), "a poststart task that never ran is skipped");
        assert!(steps.launch.is_empty(), "poststop waits for the sidecar to stop");
        set(&mut tasks, "shipper", completed);
        set(&mut tasks, "warm", |task| task.finished = true);
        assert_eq!(next_steps(&tasks, false).launch, names(&["cleanup"]));
    }

    #[test]
    fn a_failed_prestart_task_keeps_main_from_starting() {
        let mut tasks = group();
        set(&mut tasks, "shipper", running);
        set(&mut tasks, "setup", |task| {
            completed(task);
            task.failed = true;
        });
        assert!(next_steps(&tasks, false).launch.is_empty());
        // The runner stops the allocation: what never ran is skipped, and
        // poststop runs once the sidecar has stopped.
        let steps = next_steps(&tasks, true);
        assert_eq!(steps.skip, names(&["main", "warm"]));
        assert!(steps.launch.is_empty());
        set(&mut tasks, "shipper", completed);
        for name in ["main", "warm"] {
            set(&mut tasks, name, |task| task.finished = true);
        }
        assert_eq!(next_steps(&tasks, true).launch, names(&["cleanup"]));
    }

    #[test]
    fn an_allocation_stopped_before_it_ran_runs_nothing() {
        let steps = next_steps(&group(), true);
        assert_eq!(steps.skip, names(&["setup", "shipper", "main", "warm", "cleanup"]));
        assert!(steps.launch.is_empty());
    }

    #[test]
    fn a_group_without_lifecycle_tasks_starts_everything_at_once() {
        let tasks = vec![phase("a", None, false), phase("b", None, false)];
        assert_eq!(next_steps(&tasks, false).launch, names(&["a", "b"]));
    }
}
