//! Serving `drover alloc logs`: reading a task's rotating output files and
//! streaming them to the server as `Response` chunks.

use std::path::PathBuf;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use drover_executor::{LogOrigin, LogReader};
use drover_proto::session::{AgentMessage, ResponseBody};
use drover_types::{CodedError, ErrorCode, LogStream};

/// Largest chunk sent in one message.
const CHUNK_BYTES: usize = 64 * 1024;

/// One `ReadLogs` request.
pub(crate) struct LogRequest {
    pub(crate) request_id: u64,
    pub(crate) alloc_dir: PathBuf,
    pub(crate) task: String,
    pub(crate) stream: LogStream,
    pub(crate) follow: bool,
    pub(crate) tail_bytes: Option<u64>,
}

/// Streams one task's output as `Response` messages until the end, or,
/// when following, until cancelled.
pub(crate) async fn serve(request: LogRequest, outbound: mpsc::Sender<AgentMessage>, cancel: CancellationToken) {
    let LogRequest { request_id, alloc_dir, task, stream, follow, tail_bytes } = request;
    let log_dir = alloc_dir.join("alloc").join("logs");
    let send = |body: ResponseBody| {
        let outbound = outbound.clone();
        async move { outbound.send(AgentMessage::Response { request_id, body }).await.is_ok() }
    };
    if !log_dir.is_dir() {
        let error =
            CodedError::new(ErrorCode::NotFound, "this allocation has no output on its node (yet, or any more)");
        send(ResponseBody::End { error: Some(error) }).await;
        return;
    }
    let reader = LogReader::new(log_dir, task, stream);
    let start = match tail_bytes {
        Some(num_bytes) => reader.seek(LogOrigin::End(num_bytes)).await,
        None => reader.seek(LogOrigin::Start(0)).await,
    };
    let mut position = match start {
        Ok(position) => position,
        Err(error) => {
            send(ResponseBody::End { error: Some(CodedError::internal(error.to_string())) }).await;
            return;
        }
    };
    // What is there now.
    loop {
        if cancel.is_cancelled() {
            return;
        }
        match reader.read(position, CHUNK_BYTES).await {
            Ok(chunk) if chunk.data.is_empty() => break,
            Ok(chunk) => {
                position = chunk.next;
                if !send(ResponseBody::Chunk { data: chunk.data }).await {
                    return;
                }
            }
            Err(error) => {
                send(ResponseBody::End { error: Some(CodedError::internal(error.to_string())) }).await;
                return;
            }
        }
    }
    if !follow {
        send(ResponseBody::End { error: None }).await;
        return;
    }
    // And what comes, until cancelled.
    let mut followed = Box::pin(reader.follow(position));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            item = followed.next() => match item {
                Some(Ok(chunk)) => {
                    if !chunk.data.is_empty() && !send(ResponseBody::Chunk { data: chunk.data }).await {
                        return;
                    }
                }
                Some(Err(error)) => tracing::debug!(%error, "following output failed; retrying"),
                None => {
                    send(ResponseBody::End { error: None }).await;
                    return;
                }
            }
        }
    }
}
