//! The allocation manager: which allocations run on this node.
//!
//! The manager reconciles the servers' list of allocations with what runs
//! here: it starts an allocation runner ([`crate::alloc_runner`]) for every
//! new allocation, forwards changes (a stop, a new job version) to existing
//! ones, and retires runners of allocations the servers no longer list.
//!
//! Allocation specs are kept in `<data>/allocs/<id>/alloc.json` so that a
//! restarted agent restores its runners before the servers answer; the
//! directories of retired allocations are kept, up to a limit, for
//! `drover alloc logs`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::RwLock;

use tokio::sync::{Mutex, mpsc, oneshot};

use drover_executor::ExecDriver;
use drover_proto::session::AllocAssignment;
use drover_types::{AllocId, ClientAllocUpdate, Node};

use crate::alloc_runner::{
    ALLOC_FILE_VERSION, AllocFile, AllocRunner, RunnerControl, RunnerHandle, persist_assignment,
};

/// Terminal allocation directories kept for `drover alloc logs`.
const MAX_RETIRED_ALLOC_DIRS: usize = 50;

/// Runs the allocations of this node.
pub(crate) struct AllocManager {
    root: PathBuf,
    driver: ExecDriver,
    updates: mpsc::UnboundedSender<ClientAllocUpdate>,
    node: RwLock<Option<Node>>,
    runners: Mutex<HashMap<AllocId, RunnerHandle>>,
}

impl AllocManager {
    pub(crate) fn new(root: PathBuf, driver: ExecDriver, updates: mpsc::UnboundedSender<ClientAllocUpdate>) -> Self {
        AllocManager { root, driver, updates, node: RwLock::new(None), runners: Mutex::new(HashMap::new()) }
    }

    /// Where an allocation's files are.
    pub(crate) fn alloc_dir(&self, alloc_id: &AllocId) -> PathBuf {
        self.root.join(alloc_id.as_str())
    }

    /// Restarts runners for the allocations left by an earlier agent.
    pub(crate) async fn restore(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        let mut runners = self.runners.lock().await;
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.join("retired").exists() {
                continue;
            }
            let Ok(bytes) = std::fs::read(dir.join("alloc.json")) else { continue };
            let Ok(file) = serde_json::from_slice::<AllocFile>(&bytes) else {
                tracing::warn!(dir = %dir.display(), "unreadable alloc.json; leaving the directory alone");
                continue;
            };
            if file.version != ALLOC_FILE_VERSION {
                continue;
            }
            let alloc_id = file.assignment.alloc.id.clone();
            tracing::info!(alloc = %alloc_id, "restoring allocation");
            let entry = self.spawn_runner(file.assignment);
            runners.insert(alloc_id, entry);
        }
    }

    /// Applies a list of allocations from the servers: the complete set
    /// (`full`: anything not listed is retired) or a change (listed
    /// allocations the servers made terminal are retired).
    pub(crate) async fn reconcile(&self, node: Option<Node>, assignments: Vec<AllocAssignment>, full: bool) {
        if let Some(node) = node
            && let Ok(mut current) = self.node.write()
        {
            *current = Some(node);
        }
        let listed: HashSet<AllocId> = assignments.iter().map(|assignment| assignment.alloc.id.clone()).collect();
        let mut retired: Vec<AllocId> = Vec::new();
        let mut runners = self.runners.lock().await;
        for assignment in assignments {
            let alloc_id = assignment.alloc.id.clone();
            if assignment.alloc.client_status.is_terminal() {
                retired.push(alloc_id);
                continue;
            }
            match runners.get(&alloc_id) {
                Some(entry) if !entry.join.is_finished() => {
                    // The servers decided a status of their own (`unknown`
                    // while this node was silent): tell them what is true.
                    let latest = entry.latest.lock().ok().and_then(|latest| latest.clone());
                    if let Some(latest) = latest
                        && latest.client_status != assignment.alloc.client_status
                    {
                        let _ = self.updates.send(latest);
                    }
                    let _ = entry.control.send(RunnerControl::Update(Box::new(assignment)));
                }
                Some(_) => {}
                None => {
                    if let Err(error) = self.persist(&assignment) {
                        tracing::warn!(alloc = %alloc_id, %error, "cannot persist allocation");
                    }
                    let entry = self.spawn_runner(assignment);
                    runners.insert(alloc_id, entry);
                }
            }
        }
        if full {
            retired.extend(runners.keys().filter(|alloc_id| !listed.contains(*alloc_id)).cloned());
        }
        for alloc_id in retired {
            if let Some(entry) = runners.remove(&alloc_id) {
                let _ = entry.control.send(RunnerControl::Retire);
                let marker = self.alloc_dir(&alloc_id).join("retired");
                if let Err(error) = std::fs::write(&marker, b"") {
                    tracing::debug!(%error, "cannot mark allocation retired");
                }
            }
        }
        drop(runners);
        self.collect_garbage();
    }

    /// The last known update of every allocation, to send after connecting.
    pub(crate) async fn current_updates(&self) -> Vec<ClientAllocUpdate> {
        let runners = self.runners.lock().await;
        runners.values().filter_map(|entry| entry.latest.lock().ok().and_then(|latest| latest.clone())).collect()
    }

    /// Passes an operator's request to the allocation's runner. When this
    /// agent has none, the request is dropped with its reply channel, and
    /// the caller learns it from the closed channel.
    pub(crate) async fn ask_runner(&self, alloc_id: &AllocId, request: crate::alloc_runner::OperatorRequest) {
        let runners = self.runners.lock().await;
        if let Some(entry) = runners.get(alloc_id) {
            let _ = entry.control.send(RunnerControl::Operator(request));
        }
    }

    /// Stops every task and waits (dev-mode shutdown).
    pub(crate) async fn stop_all(&self) {
        let mut waiters = Vec::new();
        let runners = self.runners.lock().await;
        for entry in runners.values() {
            let (done, waiter) = oneshot::channel();
            if entry.control.send(RunnerControl::StopAll(done)).is_ok() {
                waiters.push(waiter);
            }
        }
        drop(runners);
        for waiter in waiters {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), waiter).await;
        }
    }

    /// Stops supervising, leaving tasks running for the next agent.
    pub(crate) async fn detach_all(&self) {
        let runners = self.runners.lock().await;
        for entry in runners.values() {
            let _ = entry.control.send(RunnerControl::Detach);
        }
    }

    fn persist(&self, assignment: &AllocAssignment) -> std::io::Result<()> {
        let dir = self.alloc_dir(&assignment.alloc.id);
        std::fs::create_dir_all(&dir)?;
        persist_assignment(&dir, assignment)
    }

    fn spawn_runner(&self, assignment: AllocAssignment) -> RunnerHandle {
        AllocRunner::spawn(
            self.alloc_dir(&assignment.alloc.id),
            self.driver.clone(),
            self.node.read().ok().and_then(|node| node.clone()),
            self.updates.clone(),
            assignment,
        )
    }

    /// Deletes the oldest retired allocation directories beyond the limit.
    fn collect_garbage(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        let mut retired: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let marker = entry.path().join("retired");
                let modified = std::fs::metadata(&marker).and_then(|metadata| metadata.modified()).ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        if retired.len() <= MAX_RETIRED_ALLOC_DIRS {
            return;
        }
        retired.sort();
        let excess = retired.len() - MAX_RETIRED_ALLOC_DIRS;
        for (_, dir) in retired.into_iter().take(excess) {
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::debug!(%error, dir = %dir.display(), "cannot remove old allocation directory");
            }
        }
    }
}
