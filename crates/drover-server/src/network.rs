//! The Raft transport between servers: HTTP POST with MessagePack bodies
//! to `/v1/internal/raft/*` on the peer's API address.
//!
//! This is the one place outside `drover-api` and `drover-client` that
//! speaks HTTP: it is the servers' private protocol, not the public API.

use drover_proto::paths;
use std::future::Future;
use std::time::Duration;

use openraft::BasicNode;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use drover_state::codec;
use drover_state::raft_types::{Snapshot, SnapshotMeta, TypeConfig, Vote};

/// The body of a snapshot transfer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SnapshotTransfer {
    /// The leader's vote.
    pub vote: Vote,
    /// Snapshot metadata.
    pub meta: SnapshotMeta,
    /// The encoded state.
    #[serde(with = "drover_types::serde_bytes")]
    pub data: Vec<u8>,
}

/// Creates connections to peers; shares one HTTP connection pool.
#[derive(Clone, Debug)]
pub struct PeerNetwork {
    client: reqwest::Client,
    secure: bool,
}

/// POSTs a MessagePack body (`drover_state::codec`) to another server:
/// the one shape of every server-to-server call (Raft, write forwarding,
/// log copies).
pub(crate) async fn post_msgpack(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> reqwest::Result<reqwest::Response> {
    client.post(url).header("content-type", "application/msgpack").timeout(timeout).body(body).send().await
}

impl PeerNetwork {
    /// A network with a fresh connection pool: plain HTTP without `tls`,
    /// else HTTPS presenting this server's certificate (mutual TLS).
    pub fn new(tls: Option<rustls::ClientConfig>) -> Self {
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        let secure = tls.is_some();
        let builder = match tls {
            Some(config) => builder.tls_backend_preconfigured(config),
            None => builder,
        };
        let client = builder.build().unwrap_or_default();
        Self { client, secure }
    }

    /// The shared HTTP client (also used for write forwarding).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `http://addr` or `https://addr` (as this cluster speaks) unless the
    /// address already has a scheme.
    pub fn base_url(&self, address: &str) -> String {
        if address.starts_with("http://") || address.starts_with("https://") {
            address.trim_end_matches('/').to_owned()
        } else if self.secure {
            format!("https://{address}")
        } else {
            format!("http://{address}")
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        PeerConnection { target, base_url: self.base_url(&node.addr), client: self.client.clone() }
    }
}

/// One peer.
#[derive(Debug)]
pub struct PeerConnection {
    target: u64,
    base_url: String,
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl PeerConnection {
    async fn call<Request: Serialize, Response: DeserializeOwned>(
        &self,
        path: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, RPCError<TypeConfig>> {
        let body = codec::encode(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let url = format!("{}{path}", self.base_url);
        let response = post_msgpack(&self.client, &url, body, timeout).await.map_err(|error| {
            if error.is_connect() {
                RPCError::Unreachable(Unreachable::new(&TransportError(format!(
                    "server {} at {url}: {error}",
                    self.target
                ))))
            } else {
                RPCError::Network(NetworkError::new(&TransportError(format!(
                    "server {} at {url}: {error}",
                    self.target
                ))))
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| RPCError::Network(NetworkError::new(&TransportError(error.to_string()))))?;
        if !status.is_success() {
            let message = String::from_utf8_lossy(&bytes).into_owned();
            return Err(RPCError::Network(NetworkError::new(&TransportError(format!(
                "server {} answered {status}: {message}",
                self.target
            )))));
        }
        let result: Result<Response, String> =
            codec::decode(&bytes).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        result.map_err(|message| RPCError::Network(NetworkError::new(&TransportError(message))))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::INTERNAL_RAFT_APPEND, &request, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::INTERNAL_RAFT_VOTE, &request, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::INTERNAL_RAFT_PRE_VOTE, &request, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let transfer = SnapshotTransfer { vote, meta: snapshot.meta, data: snapshot.snapshot };
        let timeout = option.hard_ttl().max(Duration::from_secs(60));
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = self.call::<_, SnapshotResponse<TypeConfig>>(paths::INTERNAL_RAFT_SNAPSHOT, &transfer, timeout) => {
                result.map_err(|error| match error {
                    RPCError::Unreachable(unreachable) => StreamingError::Unreachable(unreachable),
                    RPCError::Timeout(timeout) => StreamingError::Timeout(timeout),
                    other => StreamingError::Network(NetworkError::new(&other)),
                })
            }
        }
    }
}
