//! The agent session: one WebSocket per agent, dialled by the agent, that
//! carries registration, heartbeats, allocation assignments, task state
//! updates and request/response streams (log reads, commands).
//!
//! ```text
//!  agent                                   server
//!    │── Hello{registration} ───────────────▶│  propose RegisterNodes (group-committed)
//!    │◀────────────── Welcome{interval, servers}
//!    │◀────────────── Allocations{index, allocs}   (whenever they change)
//!    │◀────────────── TemplateInputs{variables, services}  (nodes with templates, on change)
//!    │── Heartbeat ─────────────────────────▶│  every `interval`
//!    │── AllocUpdates{updates} ─────────────▶│  batched into UpdateAllocsFromClient
//!    │◀────────────── Request{id, ReadLogs|Exec|RestartTasks|SignalTasks|ExecInTask|Cancel}
//!    │── Response{id, Chunk|End|Exited} ────▶│
//!    │── Logs{lines} (numbered by the spool) ▶│  indexed, then
//!    │◀────────────── LogsAck{upto_seq}       │  the agent frees its spool
//!    │── LogStats{dropped_lines} ───────────▶│  when it changes
//!    │── Metrics{sample} ───────────────────▶│  every 10 s, kept in memory
//! ```
//!
//! Frames are binary: a format byte and MessagePack (see [`encode`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use drover_types::{Allocation, JobId, JobType, Node, NodeId, TaskGroup, UpdateStrategy};
use drover_types::{ClientAllocUpdate, NodeRegistration};

/// Messages from an agent to a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// First message of every session.
    Hello {
        /// [`crate::SESSION_PROTOCOL`] of the agent.
        protocol: u32,
        /// The machine.
        registration: NodeRegistration,
    },
    /// "I am alive."
    Heartbeat,
    /// Task states changed.
    AllocUpdates {
        /// One entry per changed allocation.
        updates: Vec<ClientAllocUpdate>,
    },
    /// Log lines from the agent's spool, in `seq` order. Sent again after a
    /// reconnection when they were not acknowledged: the server drops lines
    /// it already stored by `(node id, seq)`.
    Logs {
        /// The lines.
        lines: Vec<LogLine>,
    },
    /// The machine's and its tasks' resource usage, every 10 s.
    Metrics {
        /// The sample.
        sample: Box<drover_types::usage::NodeSample>,
    },
    /// The agent's spool had to drop lines (it was full): its running total.
    LogStats {
        /// Lines dropped since the agent's data directory was created.
        dropped_lines: u64,
    },
    /// A part of the answer to a server request.
    Response {
        /// The request's id.
        request_id: u64,
        /// The part.
        body: ResponseBody,
    },
}

/// Messages from a server to an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// Registration accepted.
    Welcome {
        /// The node id, echoed.
        node_id: NodeId,
        /// How often to heartbeat, in milliseconds.
        heartbeat_interval_ms: u64,
        /// Every server's address, for failover.
        servers: Vec<String>,
    },
    /// Allocations of this node. With `full`, the complete set the agent
    /// should know about (every allocation on the node that is not terminal
    /// on the client side; anything else the agent runs must be stopped).
    /// Without, only the allocations the servers changed since the last
    /// message (including ones they made terminal, such as `lost`).
    Allocations {
        /// Raft index of this view.
        index: u64,
        /// Whether this is the complete set rather than a change.
        #[serde(default)]
        full: bool,
        /// The node as the servers see it (operator overrides applied), for
        /// `${node.…}` interpolation.
        node: Option<Box<Node>>,
        /// The allocations with their specifications.
        allocs: Vec<AllocAssignment>,
    },
    /// A request that the agent answers with `Response` messages.
    Request {
        /// Id chosen by the server, unique within the session.
        request_id: u64,
        /// What is asked.
        body: RequestBody,
    },
    /// Every log line up to this seq is stored: the agent may forget it.
    LogsAck {
        /// The highest stored seq.
        upto_seq: u64,
    },
    /// The CA certificates the agent must trust from now on (PEM, one each;
    /// both CAs while the cluster CA is rotated), and the CA its own
    /// certificate should come from: an agent whose certificate another CA
    /// issued renews it at once. Sent when a session opens and when either
    /// changes.
    Tls {
        /// The CA certificates to trust.
        trusted_cas: Vec<String>,
        /// SHA-256 of the CA that issues certificates now.
        issuer: String,
    },
    /// The session is refused or ended; the agent logs the message.
    Refused {
        /// Why.
        message: String,
    },
    /// What the templates of the node's allocations may read (their
    /// `nomadVar`, `key` and `service` functions): sent before the
    /// allocations that need it and again whenever it changes, only to
    /// nodes that run a template.
    TemplateInputs(Box<TemplateInputs>),
}

/// The cluster data a node's templates read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateInputs {
    /// For each job with a template on the node, the variables it may
    /// read (see `docs/jobs.md`, "Templates that read the cluster").
    pub variables: BTreeMap<JobId, Vec<drover_types::Variable>>,
    /// Every instance of every service.
    pub services: Vec<crate::api::ServiceInstance>,
}

/// One allocation with everything the agent needs to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocAssignment {
    /// The allocation.
    pub alloc: Allocation,
    /// Its job, summarised.
    pub job: JobSummary,
    /// The task group of the allocation's job version; `None` when the job
    /// was purged (the agent then only stops the allocation).
    pub group: Option<TaskGroup>,
    /// The `update` block that applies to the group (the group's, else the
    /// job's): how the agent decides deployment health.
    #[serde(default)]
    pub update: Option<UpdateStrategy>,
}

/// The parts of a job an agent needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Job id.
    pub id: JobId,
    /// Job name.
    pub name: String,
    /// Job type (batch tasks finish, others restart).
    pub job_type: JobType,
    /// Job version.
    pub version: u64,
    /// Job meta.
    pub meta: BTreeMap<String, String>,
    /// A dispatched job's payload, written to each task's
    /// `dispatch_payload` file.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "drover_types::serde_bytes")]
    pub payload: Vec<u8>,
}

/// One log line as an agent ships it: what the agent knows; the server adds
/// the node's labels and the job of the allocation, and parses the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The agent's sequence number (from its spool); 0 inside the spool.
    #[serde(default)]
    pub seq: u64,
    /// When the agent read the line, nanoseconds since the epoch.
    pub received: i64,
    /// When the line says it was written (syslog or journal header),
    /// nanoseconds since the epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `task`, `file`, `journal`, `syslog` or `console`.
    pub source: String,
    /// The stream within the source: `stdout`/`stderr`, a file path, a
    /// unit, a syslog app name.
    pub stream: String,
    /// The machine the line is about, when it is not the agent's own (a
    /// syslog sender's host name, a console's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The allocation, for task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc: Option<String>,
    /// The task, for task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The syslog severity name or journal priority, when the header had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The text, without its line terminator.
    pub text: String,
}

/// Which output stream of a task a [`RequestBody::ReadLogs`] reads: the
/// executor's own type, so the agent passes it through unchanged.
pub use drover_types::LogStream;

/// A request for an agent, forwarded by the server that was asked to the
/// peer the agent is connected to (`POST /v1/internal/agent-request`):
/// `drover alloc restart|signal|exec` reach an allocation whichever server
/// the caller asked. The asking server checked the caller's capability and
/// audits the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardedAgentRequest {
    /// The agent's node.
    pub node_id: NodeId,
    /// What to ask it.
    pub body: RequestBody,
    /// How long to wait for its answer.
    pub patience_ms: u64,
}

/// Requests a server makes of an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Read a task's output.
    ReadLogs {
        /// Allocation.
        alloc_id: drover_types::AllocId,
        /// Task name.
        task: String,
        /// Which stream.
        stream: LogStream,
        /// Keep streaming new output.
        follow: bool,
        /// Start this many bytes before the end (`None`: from the start of
        /// the retained output).
        tail_bytes: Option<u64>,
    },
    /// Run a command (`drover exec`) and answer with one
    /// [`ResponseBody::Exited`].
    Exec {
        /// The command line, run by `/bin/sh -c`.
        command: String,
        /// Run as this user instead of the agent's exec user (`--exec-user`).
        user: Option<String>,
        /// Kill the command (its whole process group) after this long.
        timeout_ms: u64,
        /// Bytes kept of stdout and of stderr each.
        max_output_bytes: u64,
        /// Whether the caller may run it as root (uid 0, whatever the
        /// user's name); the agent refuses otherwise. Absent (an older
        /// server): allowed, as before.
        #[serde(default = "allowed")]
        root_allowed: bool,
        /// Bytes written to the command's stdin, then closed; empty (or
        /// absent, from an older server): stdin is closed from the start.
        #[serde(default, with = "drover_types::serde_bytes")]
        stdin: Vec<u8>,
    },
    /// Restart tasks of an allocation in place (`drover alloc restart`),
    /// answered by one [`ResponseBody::TasksReached`] or an `End` with an
    /// error.
    RestartTasks {
        /// Allocation.
        alloc_id: drover_types::AllocId,
        /// One task; `None`: every running task.
        task: Option<String>,
    },
    /// Send a signal to tasks of an allocation (`drover alloc signal`),
    /// answered as [`RequestBody::RestartTasks`].
    SignalTasks {
        /// Allocation.
        alloc_id: drover_types::AllocId,
        /// One task; `None`: every running task.
        task: Option<String>,
        /// The signal's name (`SIGUSR1`, `USR1`).
        signal: String,
    },
    /// Run a command in a task's environment (`drover alloc exec`): its
    /// working directory, variables and user; answered by one
    /// [`ResponseBody::Exited`].
    ExecInTask {
        /// Allocation.
        alloc_id: drover_types::AllocId,
        /// Task name.
        task: String,
        /// The program and its arguments.
        command: Vec<String>,
        /// Kill the command (its process group) after this long.
        timeout_ms: u64,
        /// Bytes kept of stdout and of stderr each.
        max_output_bytes: u64,
        /// Whether the caller may run it as root (the task's user is root).
        root_allowed: bool,
        /// Bytes written to the command's stdin, then closed.
        #[serde(default, with = "drover_types::serde_bytes")]
        stdin: Vec<u8>,
    },
    /// Stop streaming an earlier request (or kill its command).
    Cancel {
        /// The request to stop.
        request_id: u64,
    },
}

/// Parts of an agent's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResponseBody {
    /// Output bytes.
    Chunk {
        /// The bytes.
        #[serde(with = "drover_types::serde_bytes")]
        data: Vec<u8>,
    },
    /// The end of the answer; `error` is set when it failed.
    End {
        /// What went wrong.
        error: Option<drover_types::CodedError>,
    },
    /// The answer to [`RequestBody::RestartTasks`] and
    /// [`RequestBody::SignalTasks`]: the tasks it reached.
    TasksReached {
        /// Task names.
        tasks: Vec<String>,
    },
    /// The whole answer to [`RequestBody::Exec`].
    Exited {
        /// The exit code, when the command exited.
        exit_code: Option<i32>,
        /// Why there is no exit code (killed by a signal, timed out, could
        /// not start, exec disabled on this agent).
        error: String,
        /// Whether the agent killed the command at its deadline.
        timed_out: bool,
        /// Standard output, capped.
        #[serde(with = "drover_types::serde_bytes")]
        stdout: Vec<u8>,
        /// Standard error, capped.
        #[serde(with = "drover_types::serde_bytes")]
        stderr: Vec<u8>,
        /// Whether output beyond the cap was dropped.
        truncated: bool,
    },
}

/// The first protocol whose agents read [`ServerMessage::TemplateInputs`].
pub const TEMPLATE_INPUTS_SINCE: u32 = 4;

impl ServerMessage {
    /// The oldest session protocol that can read this message
    /// ([`crate::SESSION_PROTOCOL`] lists what each one added).
    pub fn since_protocol(&self) -> u32 {
        match self {
            ServerMessage::TemplateInputs(_) => TEMPLATE_INPUTS_SINCE,
            ServerMessage::Request { body, .. } => body.since_protocol(),
            // Exhaustive: a new message must say which protocol reads it.
            ServerMessage::Welcome { .. }
            | ServerMessage::Allocations { .. }
            | ServerMessage::LogsAck { .. }
            | ServerMessage::Tls { .. }
            | ServerMessage::Refused { .. } => 3,
        }
    }
}

impl RequestBody {
    /// The oldest session protocol whose agents answer this request.
    pub fn since_protocol(&self) -> u32 {
        match self {
            RequestBody::RestartTasks { .. } | RequestBody::SignalTasks { .. } | RequestBody::ExecInTask { .. } => 4,
            RequestBody::ReadLogs { .. } | RequestBody::Exec { .. } | RequestBody::Cancel { .. } => 3,
        }
    }
}

impl ResponseBody {
    /// Whether this part ends the answer.
    pub fn is_last(&self) -> bool {
        matches!(self, ResponseBody::End { .. } | ResponseBody::Exited { .. } | ResponseBody::TasksReached { .. })
    }
}

/// The WebSocket read buffer both ends of a session use. Small on purpose:
/// tungstenite zero-fills the buffer on every read, and with its 128 KiB
/// default that memset was most of the CPU cost of a heartbeat.
pub const READ_BUFFER_BYTES: usize = 1024;

/// The largest session message either end accepts, and so the largest
/// WebSocket frame: a message is sent as one frame, and both ends must take
/// an exec answer at the documented maximum output (16 MiB of stdout and
/// 16 MiB of stderr, docs/exec.md) with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The deepest nesting a session frame may have; messages nest far less
/// (a job inside an allocation inside a message is about 15 levels).
const MAX_FRAME_DEPTH: usize = 64;

/// The format byte of session frames.
const FRAME_FORMAT: u8 = 1;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[error("bad session frame: {0}")]
pub struct FrameError(String);

/// Encodes a session message as a binary frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut bytes = vec![FRAME_FORMAT];
    rmp_serde::encode::write_named(&mut bytes, message).map_err(|error| FrameError(error.to_string()))?;
    Ok(bytes)
}

/// Decodes a binary frame.
pub fn decode<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    match frame.split_first() {
        Some((&FRAME_FORMAT, payload)) => {
            let mut deserializer = rmp_serde::Deserializer::from_read_ref(payload);
            // A frame nested deeper than any message is (an unknown field
            // holding 1,000 nested arrays, say) is refused before skipping it
            // recursively overflows a worker thread's stack.
            deserializer.set_max_depth(MAX_FRAME_DEPTH);
            T::deserialize(&mut deserializer).map_err(|error| FrameError(error.to_string()))
        }
        Some((other, _)) => {
            Err(FrameError(format!("unknown frame format {other}; are agent and server the same version?")))
        }
        None => Err(FrameError("empty frame".to_owned())),
    }
}

/// What an absent `root_allowed` means: allowed (an older server).
fn allowed() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_as_binary() {
        let message = AgentMessage::Response { request_id: 7, body: ResponseBody::Chunk { data: vec![0, 1, 255] } };
        let frame = encode(&message).unwrap();
        assert_eq!(decode::<AgentMessage>(&frame).unwrap(), message);
        assert!(decode::<AgentMessage>(&[9, 1, 2]).is_err());
        assert!(decode::<AgentMessage>(&[]).is_err());
    }
}
