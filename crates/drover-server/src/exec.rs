//! `drover exec`: a command run on many nodes through their agents'
//! sessions, with no SSH.
//!
//! ```text
//!  CLI ──POST /v1/exec──▶ server A ──Request{Exec}──▶ agents connected to A
//!                            │ ──POST /v1/exec {local}──▶ server B ──▶ agents on B
//!                            ◀── NDJSON results, as each node finishes ──┘
//! ```
//!
//! Every node has its own deadline, measured from when its command was
//! sent; a node that does not answer by then is reported `timeout` (and its
//! command is cancelled), and nobody waits for it. A node whose agent is
//! connected to no server is `unreachable`.

use drover_proto::paths;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};

use drover_proto::api::{ExecEvent, ExecNodeResult, ExecRequest, ExecStatus};
use drover_proto::session::{RequestBody, ResponseBody};
use drover_types::{CodedError, ErrorCode, NodeId};

use crate::Result;
use crate::server::Server;

/// Longest deadline accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Largest output kept per stream and node.
const MAX_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Events buffered towards a slow reader before nodes wait for it.
const EVENT_BUFFER: usize = 1024;

impl Server {
    /// Starts a command on the selected nodes. The first event names the
    /// nodes; then one result per node as each finishes; then `End`.
    pub async fn exec(&self, request: ExecRequest) -> Result<mpsc::Receiver<ExecEvent>> {
        self.exec_allowed(ExecRequest { root_allowed: true, ..request }, &|_| Some(true), &|_| true).await
    }

    /// Runs one command on one node through its agent, for the leader's own
    /// work (a hammer's command, a maintenance step), as `user` (`None`:
    /// the agent's exec user) with output kept to `max_output_bytes`: the
    /// node's result, `None` when its agent gave none.
    pub(crate) async fn exec_on_node(
        &self,
        node: &drover_types::Node,
        command: &str,
        user: Option<&str>,
        timeout: Duration,
        max_output_bytes: usize,
    ) -> Result<Option<ExecNodeResult>> {
        let request = ExecRequest {
            nodes: vec![node.id.to_string()],
            filter: None,
            command: vec![command.to_owned()],
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            parallel: 0,
            user: user.map(str::to_owned),
            max_output_bytes: max_output_bytes as u64,
            local: false,
            all_or_nothing: false,
            root_allowed: true,
            stdin: Vec::new(),
        };
        let mut events = self.exec(request).await?;
        while let Some(event) = events.recv().await {
            if let ExecEvent::Result(result) = event {
                return Ok(Some(result));
            }
        }
        Ok(None)
    }

    /// The nodes `request` selects, as [`Server::exec_allowed`] would run
    /// it: those `access` lets it run on, and those it may see but not run
    /// on (the dashboard's preview before its confirmation). Refused as
    /// the run would be when nothing matches.
    pub async fn exec_preview(
        &self,
        request: &ExecRequest,
        access: &(dyn Fn(&drover_types::Node) -> Option<bool> + Sync),
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (nodes, denied) = self.exec_selection(request, access).await?;
        let names = |nodes: Vec<Arc<drover_types::Node>>| nodes.iter().map(|node| node.name.clone()).collect();
        Ok((names(nodes), names(denied)))
    }

    /// The selected nodes the caller may run on, and those it may see but
    /// not run on; a selection that matches nothing is refused.
    async fn exec_selection(
        &self,
        request: &ExecRequest,
        access: &(dyn Fn(&drover_types::Node) -> Option<bool> + Sync),
    ) -> Result<(Vec<Arc<drover_types::Node>>, Vec<Arc<drover_types::Node>>)> {
        let state = if request.local { self.state() } else { self.consistent_state().await? };
        let selected = crate::inventory::select_nodes(&state, &request.nodes, request.filter.as_deref())?;
        let (nodes, denied): (Vec<_>, Vec<_>) = selected
            .into_iter()
            .filter_map(|node| access(&node).map(|allowed| (node, allowed)))
            .partition(|(_, allowed)| *allowed);
        let nodes: Vec<_> = nodes.into_iter().map(|(node, _)| node).collect();
        let denied: Vec<_> = denied.into_iter().map(|(node, _)| node).collect();
        if nodes.is_empty() && denied.is_empty() {
            return Err(CodedError::new(ErrorCode::NotFound, "no node matches the selection"));
        }
        Ok((nodes, denied))
    }

    /// [`Server::exec`] for a caller with limits: `access` says of each
    /// selected node whether the caller may run the command there
    /// (`Some(true)`), may see it but not run it there (`Some(false)`: a
    /// `Denied` result, or with `all_or_nothing` the whole request is
    /// refused), or may not even see it (`None`: left out, as if the
    /// selection had not matched it). The command may run as root only if
    /// `root` holds for every node it runs on (agents check the uid, not
    /// the user's name).
    pub async fn exec_allowed(
        &self,
        mut request: ExecRequest,
        access: &(dyn Fn(&drover_types::Node) -> Option<bool> + Sync),
        root: &(dyn Fn(&drover_types::Node) -> bool + Sync),
    ) -> Result<mpsc::Receiver<ExecEvent>> {
        if !self.config().exec_enabled {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                "exec is disabled on this server (it was started with --disable-exec)",
            ));
        }
        if request.command.iter().all(|word| word.trim().is_empty()) {
            return Err(CodedError::invalid("no command given: drover exec [NODES | --filter EXPR] -- COMMAND ARGS…"));
        }
        let timeout = Duration::from_millis(request.timeout_ms);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(CodedError::invalid("the timeout must be more than 0 and at most 24h"));
        }
        if request.max_output_bytes > MAX_OUTPUT_BYTES {
            return Err(CodedError::invalid(format!(
                "at most {} MiB of output per stream and node can be kept",
                MAX_OUTPUT_BYTES / 1024 / 1024
            )));
        }
        if request.stdin.len() > drover_proto::api::MAX_EXEC_STDIN_BYTES {
            return Err(CodedError::invalid(format!(
                "the command's stdin is {} bytes; at most {} MiB can be sent (copy larger files another way)",
                request.stdin.len(),
                drover_proto::api::MAX_EXEC_STDIN_BYTES / 1024 / 1024
            )));
        }
        let (nodes, denied) = self.exec_selection(&request, access).await?;
        // A request relayed by another server carries that server's decision.
        request.root_allowed = request.root_allowed && nodes.iter().all(|node| root(node));
        if request.user.as_deref() == Some("root") && !request.root_allowed {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                "running commands as root needs exec-as-root on every selected node; run as another user (-u USER)",
            ));
        }
        if request.all_or_nothing && !denied.is_empty() {
            let names: Vec<&str> = denied.iter().map(|node| node.name.as_str()).collect();
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                format!(
                    "the token may not run commands on {} of the selected nodes ({}); nothing was run (--all-or-nothing)",
                    denied.len(),
                    drover_filter::fold_names(&names)
                ),
            ));
        }
        let names: HashMap<NodeId, String> = nodes.iter().map(|node| (node.id.clone(), node.name.clone())).collect();
        let connected = self.inner.sessions.connected_nodes().await;
        let (local, remote): (Vec<NodeId>, Vec<NodeId>) =
            nodes.iter().map(|node| node.id.clone()).partition(|node_id| connected.contains(node_id));

        let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
        let mut start_names: Vec<String> = nodes.iter().chain(denied.iter()).map(|node| node.name.clone()).collect();
        start_names.sort();
        // The receiver exists: the first send cannot fail.
        let _ = sender.send(ExecEvent::Start { nodes: start_names }).await;
        for node in &denied {
            let mut result =
                unreachable(node.name.clone(), node.id.clone(), "the token may not run commands on this node");
            result.status = ExecStatus::Denied;
            let _ = sender.send(ExecEvent::Result(result)).await;
        }
        let server = self.clone();
        tokio::spawn(async move {
            let request = Arc::new(request);
            let limit =
                Arc::new(Semaphore::new(if request.parallel == 0 { Semaphore::MAX_PERMITS } else { request.parallel }));
            let mut running = Vec::with_capacity(local.len() + 1);
            for node_id in local {
                let (server, request, limit, sender) =
                    (server.clone(), Arc::clone(&request), Arc::clone(&limit), sender.clone());
                let name = names.get(&node_id).cloned().unwrap_or_else(|| node_id.to_string());
                running.push(tokio::spawn(async move {
                    let Ok(_permit) = limit.acquire().await else { return };
                    let result = server.exec_on_agent(&node_id, name, &request).await;
                    server.self_metrics().exec.finished(result.status);
                    let _ = sender.send(ExecEvent::Result(result)).await;
                }));
            }
            // A peer asked with `local` answers only for its own agents.
            if !remote.is_empty() && !request.local {
                for node_id in server.exec_on_peers(&remote, &request, &sender).await {
                    let name = names.get(&node_id).cloned().unwrap_or_else(|| node_id.to_string());
                    let result = unreachable(name, node_id, "its agent is not connected to any server");
                    let _ = sender.send(ExecEvent::Result(result)).await;
                }
            }
            for task in running {
                let _ = task.await;
            }
            let _ = sender.send(ExecEvent::End).await;
        });
        Ok(receiver)
    }

    /// Runs the command on one node whose agent is connected here.
    async fn exec_on_agent(&self, node_id: &NodeId, name: String, request: &ExecRequest) -> ExecNodeResult {
        let started = Instant::now();
        let body = RequestBody::Exec {
            command: request.command.join(" "),
            user: request.user.clone(),
            timeout_ms: request.timeout_ms,
            max_output_bytes: request.max_output_bytes,
            root_allowed: request.root_allowed,
            stdin: request.stdin.clone(),
        };
        let (request_id, mut answers) = match self.request_agent(node_id, body).await {
            Ok(opened) => opened,
            Err(error) => return unreachable(name, node_id.clone(), &error.message),
        };
        let deadline = Duration::from_millis(request.timeout_ms);
        let answer = tokio::time::timeout(deadline, answers.recv()).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut result = ExecNodeResult {
            node: name,
            node_id: node_id.clone(),
            status: ExecStatus::Timeout,
            exit_code: None,
            error: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            duration_ms,
        };
        match answer {
            Err(_) => {
                self.cancel_agent_request(node_id, request_id).await;
                result.error = format!("no answer within {}", drover_types::DurationSpec(deadline));
            }
            Ok(None) => {
                result.status = ExecStatus::Unreachable;
                result.error = "the agent's session closed before it answered".to_owned();
            }
            Ok(Some(ResponseBody::Exited { exit_code, error, timed_out, stdout, stderr, truncated })) => {
                result.status = match (timed_out, exit_code) {
                    (true, _) => ExecStatus::Timeout,
                    (false, Some(0)) => ExecStatus::Success,
                    (false, _) => ExecStatus::Failure,
                };
                result.exit_code = exit_code;
                result.error = error;
                result.stdout = String::from_utf8_lossy(&stdout).into_owned();
                result.stderr = String::from_utf8_lossy(&stderr).into_owned();
                result.truncated = truncated;
            }
            Ok(Some(other)) => {
                result.status = ExecStatus::Failure;
                result.error = format!("the agent answered with {other:?}; is it the same drover version?");
            }
        }
        result
    }

    /// Asks every other server to run the command on the given nodes that
    /// are connected to it; relays their results and returns the nodes
    /// that no server answered for.
    async fn exec_on_peers(
        &self,
        node_ids: &[NodeId],
        request: &ExecRequest,
        sender: &mpsc::Sender<ExecEvent>,
    ) -> Vec<NodeId> {
        let peer_request = ExecRequest {
            nodes: node_ids.iter().map(|node_id| node_id.to_string()).collect(),
            filter: None,
            local: true,
            ..request.clone()
        };
        let peers: Vec<String> = self.peers().into_iter().map(|member| member.address).collect();
        let answered: Vec<BTreeSet<NodeId>> = futures_util::future::join_all(
            peers.iter().map(|address| self.exec_on_peer(address, &peer_request, sender)),
        )
        .await;
        let answered: BTreeSet<&NodeId> = answered.iter().flatten().collect();
        node_ids.iter().filter(|node_id| !answered.contains(node_id)).cloned().collect()
    }

    /// Relays one peer's results; returns the nodes it answered for.
    async fn exec_on_peer(
        &self,
        address: &str,
        request: &ExecRequest,
        sender: &mpsc::Sender<ExecEvent>,
    ) -> BTreeSet<NodeId> {
        let mut answered = BTreeSet::new();
        let url = format!("{}{}", self.inner.network.base_url(address), paths::EXEC);
        let Ok(response) = self.inner.network.client().post(&url).json(request).send().await else {
            return answered;
        };
        if !response.status().is_success() {
            return answered;
        }
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        // A peer that goes away mid-answer leaves the rest unanswered; the
        // caller reports those unreachable.
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                match serde_json::from_slice::<ExecEvent>(&line) {
                    Ok(ExecEvent::Result(result)) => {
                        answered.insert(result.node_id.clone());
                        let _ = sender.send(ExecEvent::Result(result)).await;
                    }
                    Ok(ExecEvent::End) => return answered,
                    Ok(ExecEvent::Start { .. }) | Err(_) => {}
                }
            }
        }
        answered
    }
}

fn unreachable(node: String, node_id: NodeId, error: &str) -> ExecNodeResult {
    ExecNodeResult {
        node,
        node_id,
        status: ExecStatus::Unreachable,
        exit_code: None,
        error: error.to_owned(),
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        duration_ms: 0,
    }
}
