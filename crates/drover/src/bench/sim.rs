//! Simulated agents for benchmarks: real WebSocket sessions to a real
//! server, but no tasks. A simulated agent registers, heartbeats, and
//! acknowledges every allocation it is given as running (and every stop as
//! complete) at once, and answers every `drover exec` at once with an
//! `uptime`-like line.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use drover_proto::session::{self, AgentMessage, RequestBody, ResponseBody, ServerMessage};
use drover_state::{ClientAllocUpdate, NodeRegistration};
use drover_types::{AllocClientStatus, AllocDesiredStatus, AllocId, NodeId, NodeLabels, Resources};

/// Settings of one simulated agent.
#[derive(Clone, Debug)]
pub(crate) struct SimAgent {
    pub(crate) server: String,
    pub(crate) name: String,
    pub(crate) hostgroup: String,
    /// Counts the heartbeats sent, when set.
    pub(crate) heartbeats: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl SimAgent {
    fn registration(&self) -> NodeRegistration {
        let attributes: BTreeMap<String, String> = [
            ("kernel.name", "linux"),
            ("os.name", "debian"),
            ("cpu.arch", "amd64"),
            ("unique.hostname", self.name.as_str()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        NodeRegistration {
            id: NodeId::new(uuid::Uuid::new_v4().to_string()),
            name: self.name.clone(),
            labels: NodeLabels { hostgroup: Some(self.hostgroup.clone()), ..Default::default() },
            attributes,
            resources: Resources { cpu_mhz: 64_000, memory_mb: 256 * 1024 },
            agent_version: "simulated".to_owned(),
        }
    }

    /// Runs until `stop` is cancelled (or the session fails).
    pub(crate) async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let url = format!("ws://{}/v1/agent/session", self.server);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(session::READ_BUFFER_BYTES);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), false).await?;
        let (mut sink, mut stream) = socket.split();
        let hello = AgentMessage::Hello { protocol: drover_proto::SESSION_PROTOCOL, registration: self.registration() };
        sink.send(Message::Binary(session::encode(&hello)?.into())).await?;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
        let mut acknowledged: HashSet<AllocId> = HashSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = heartbeat.tick() => {
                    sink.send(Message::Binary(session::encode(&AgentMessage::Heartbeat)?.into())).await?;
                    if let Some(counter) = &self.heartbeats {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                frame = stream.next() => {
                    let Some(frame) = frame else { return Ok(()) };
                    let Message::Binary(bytes) = frame? else { continue };
                    match session::decode::<ServerMessage>(&bytes)? {
                        ServerMessage::Welcome { heartbeat_interval_ms, .. } => {
                            heartbeat = tokio::time::interval(Duration::from_millis(heartbeat_interval_ms.max(100)));
                        }
                        ServerMessage::Allocations { allocs, .. } => {
                            let mut updates = Vec::new();
                            for assignment in allocs {
                                let alloc = assignment.alloc;
                                let (status, description) = if alloc.desired_status == AllocDesiredStatus::Run {
                                    (AllocClientStatus::Running, "simulated")
                                } else {
                                    (AllocClientStatus::Complete, "simulated stop")
                                };
                                if status == AllocClientStatus::Running && !acknowledged.insert(alloc.id.clone()) {
                                    continue;
                                }
                                updates.push(ClientAllocUpdate {
                                    alloc_id: alloc.id,
                                    client_status: status,
                                    client_description: description.to_owned(),
                                    task_states: BTreeMap::new(),
                                    checks: Vec::new(),
                                    deployment_health: None,
                                });
                            }
                            if !updates.is_empty() {
                                let message = AgentMessage::AllocUpdates { updates };
                                sink.send(Message::Binary(session::encode(&message)?.into())).await?;
                            }
                        }
                        ServerMessage::Request { request_id, body: RequestBody::Exec { .. } } => {
                            // Answer at once, as a fast `uptime` would:
                            // what is measured is drover's path, not the command.
                            let body = ResponseBody::Exited {
                                exit_code: Some(0),
                                error: String::new(),
                                timed_out: false,
                                stdout: b" 12:00:00 up 42 days,  3:14,  0 users,  load average: 0.00, 0.01, 0.05\n".to_vec(),
                                stderr: Vec::new(),
                                truncated: false,
                            };
                            let message = AgentMessage::Response { request_id, body };
                            sink.send(Message::Binary(session::encode(&message)?.into())).await?;
                        }
                        ServerMessage::Request { .. } | ServerMessage::Refused { .. } | ServerMessage::LogsAck { .. } => {}
                    }
                }
            }
        }
    }
}

/// Starts a simulated agent per name (host group `bench`) against the
/// fleet's server and waits until every node is ready. They run until
/// `stop` is cancelled; `heartbeats` counts what they send.
pub(crate) async fn start_many(
    fleet: &super::fleet::Fleet,
    names: &[String],
    heartbeats: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    for (number, name) in names.iter().enumerate() {
        let agent = SimAgent {
            server: fleet.address.clone(),
            name: name.clone(),
            hostgroup: "bench".to_owned(),
            heartbeats: heartbeats.clone(),
        };
        let agent_stop = stop.clone();
        tokio::spawn(async move {
            if let Err(error) = agent.run(agent_stop.clone()).await
                && !agent_stop.is_cancelled()
            {
                tracing::warn!(%error, "simulated agent failed");
            }
        });
        // Pace connections so the server's accept queue keeps up.
        if number % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    fleet.wait_ready(names).await
}
