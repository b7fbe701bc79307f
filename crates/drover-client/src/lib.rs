//! The HTTP client of drover's API.
//!
//! The CLI and the dashboard talk to servers only through this crate (as
//! Nomad's CLI only uses `api/`). Every method maps one route of
//! `docs/api.md`; errors keep the server's `{code, message}`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use drover_proto::api::{
    AllocListEntry, DeregisterJobResponse, DrainRequest, EligibilityRequest, INDEX_HEADER, JobListEntry,
    JobStatusResponse, NodeListEntry, NodeStatusResponse, PlanResponse, RegisterJobRequest, RegisterJobResponse,
    RevertJobRequest, ServerInfo,
};
use drover_proto::session::LogStream;
use drover_types::{Allocation, CodedError, Deployment, ErrorCode, Evaluation, Job, Node};

/// The default API address.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:4747";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{0}")]
    Api(CodedError),
    /// The server could not be reached.
    #[error(
        "cannot reach drover at {address}: {reason}\nIs a server running there? Start one with `drover dev`, or point the CLI at one with --address or DROVER_ADDR."
    )]
    Unreachable {
        /// The address tried.
        address: String,
        /// What failed.
        reason: String,
    },
    /// The answer could not be read.
    #[error("unexpected answer from {address}: {reason}")]
    BadResponse {
        /// The address.
        address: String,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// The error code, when the server gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(error) => Some(error.code),
            _ => None,
        }
    }
}

/// Results of client calls.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A blocking-query position: answer once the data is newer than `index`.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    /// The index last seen.
    pub index: u64,
    /// How long the server may hold the request.
    pub timeout: Duration,
}

/// A client of one server.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `address` (`host:port` or a URL).
    pub fn new(address: &str) -> Self {
        let base = if address.starts_with("http://") || address.starts_with("https://") {
            address.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Client { base, http }
    }

    /// The server's base URL.
    pub fn address(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, error: reqwest::Error) -> ClientError {
        ClientError::Unreachable { address: self.base.clone(), reason: error.to_string() }
    }

    async fn decode<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<(T, u64)> {
        let index = response
            .headers()
            .get(INDEX_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| self.unreachable(error))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<CodedError>(&bytes) {
                Ok(error) => ClientError::Api(error),
                Err(_) => ClientError::BadResponse {
                    address: self.base.clone(),
                    reason: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
                },
            });
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|error| ClientError::BadResponse { address: self.base.clone(), reason: error.to_string() })?;
        Ok((value, index))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, wait: Option<Wait>) -> Result<(T, u64)> {
        let mut request = self.http.get(self.url(path));
        if let Some(wait) = wait {
            request = request
                .query(&[("index", wait.index.to_string()), ("wait", format!("{}ms", wait.timeout.as_millis()))])
                .timeout(wait.timeout + Duration::from_secs(30));
        } else {
            request = request.timeout(Duration::from_secs(60));
        }
        let response = request.send().await.map_err(|error| self.unreachable(error))?;
        self.decode(response).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response = self
            .http
            .post(self.url(path))
            .timeout(Duration::from_secs(60))
            .json(body)
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        Ok(self.decode(response).await?.0)
    }

    /// `GET /v1/status/leader`.
    pub async fn leader(&self) -> Result<ServerInfo> {
        Ok(self.get("/v1/status/leader", None).await?.0)
    }

    /// `POST /v1/jobs`.
    pub async fn register_job(&self, job: &Job) -> Result<RegisterJobResponse> {
        self.post("/v1/jobs", &RegisterJobRequest { job: job.clone() }).await
    }

    /// `POST /v1/job/{id}/plan`.
    pub async fn plan_job(&self, job: &Job) -> Result<PlanResponse> {
        self.post(&format!("/v1/job/{}/plan", encode(job.id.as_str())), &RegisterJobRequest { job: job.clone() }).await
    }

    /// `GET /v1/jobs`.
    pub async fn jobs(&self) -> Result<Vec<JobListEntry>> {
        Ok(self.get("/v1/jobs", None).await?.0)
    }

    /// `GET /v1/job/{id}`.
    pub async fn job(&self, job_id: &str) -> Result<Job> {
        Ok(self.get(&format!("/v1/job/{}", encode(job_id)), None).await?.0)
    }

    /// `GET /v1/job/{id}/status`, optionally as a blocking query.
    pub async fn job_status(&self, job_id: &str, wait: Option<Wait>) -> Result<(JobStatusResponse, u64)> {
        self.get(&format!("/v1/job/{}/status", encode(job_id)), wait).await
    }

    /// `GET /v1/job/{id}/versions` (newest first).
    pub async fn job_versions(&self, job_id: &str) -> Result<Vec<Job>> {
        Ok(self.get(&format!("/v1/job/{}/versions", encode(job_id)), None).await?.0)
    }

    /// `GET /v1/job/{id}/allocations`.
    pub async fn job_allocations(&self, job_id: &str) -> Result<Vec<AllocListEntry>> {
        Ok(self.get(&format!("/v1/job/{}/allocations", encode(job_id)), None).await?.0)
    }

    /// `DELETE /v1/job/{id}`.
    pub async fn deregister_job(&self, job_id: &str, purge: bool) -> Result<DeregisterJobResponse> {
        let response = self
            .http
            .delete(self.url(&format!("/v1/job/{}", encode(job_id))))
            .query(&[("purge", purge)])
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        Ok(self.decode(response).await?.0)
    }

    /// `GET /v1/job/{id}/deployment`: the latest deployment.
    pub async fn job_deployment(&self, job_id: &str) -> Result<Deployment> {
        Ok(self.get(&format!("/v1/job/{}/deployment", encode(job_id)), None).await?.0)
    }

    /// `POST /v1/job/{id}/promote`.
    pub async fn promote_job(&self, job_id: &str) -> Result<Deployment> {
        self.post(&format!("/v1/job/{}/promote", encode(job_id)), &serde_json::json!({})).await
    }

    /// `POST /v1/job/{id}/revert`.
    pub async fn revert_job(&self, job_id: &str, version: u64) -> Result<RegisterJobResponse> {
        self.post(&format!("/v1/job/{}/revert", encode(job_id)), &RevertJobRequest { version }).await
    }

    /// `POST /v1/job/{id}/periodic/force`.
    pub async fn force_periodic(&self, job_id: &str) -> Result<RegisterJobResponse> {
        self.post(&format!("/v1/job/{}/periodic/force", encode(job_id)), &serde_json::json!({})).await
    }

    /// `POST /v1/node/{node}/drain`.
    pub async fn drain_node(&self, node: &str, request: &DrainRequest) -> Result<Node> {
        self.post(&format!("/v1/node/{}/drain", encode(node)), request).await
    }

    /// `POST /v1/node/{node}/eligibility`.
    pub async fn set_eligibility(&self, node: &str, eligible: bool) -> Result<Node> {
        self.post(&format!("/v1/node/{}/eligibility", encode(node)), &EligibilityRequest { eligible }).await
    }

    /// `GET /v1/node/{node}` as a blocking query.
    pub async fn node_wait(&self, node: &str, wait: Option<Wait>) -> Result<(NodeStatusResponse, u64)> {
        self.get(&format!("/v1/node/{}", encode(node)), wait).await
    }

    /// `GET /v1/allocations`.
    pub async fn allocations(&self) -> Result<Vec<AllocListEntry>> {
        Ok(self.get("/v1/allocations", None).await?.0)
    }

    /// `GET /v1/allocation/{id-or-prefix}`.
    pub async fn allocation(&self, id_prefix: &str) -> Result<Allocation> {
        Ok(self.get(&format!("/v1/allocation/{}", encode(id_prefix)), None).await?.0)
    }

    /// `GET /v1/evaluation/{id-or-prefix}`.
    pub async fn evaluation(&self, id_prefix: &str) -> Result<Evaluation> {
        Ok(self.get(&format!("/v1/evaluation/{}", encode(id_prefix)), None).await?.0)
    }

    /// `GET /v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeListEntry>> {
        Ok(self.get("/v1/nodes", None).await?.0)
    }

    /// `GET /v1/node/{name-or-id}`.
    pub async fn node(&self, node: &str) -> Result<NodeStatusResponse> {
        Ok(self.get(&format!("/v1/node/{}", encode(node)), None).await?.0)
    }

    /// `GET /v1/allocation/{id}/logs`: the task's output as a byte stream.
    pub async fn alloc_logs(
        &self,
        alloc_id: &str,
        task: Option<&str>,
        stream: LogStream,
        follow: bool,
        tail_bytes: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + use<>> {
        let mut query: Vec<(&str, String)> = vec![("type", stream.as_str().to_owned()), ("follow", follow.to_string())];
        if let Some(task) = task {
            query.push(("task", task.to_owned()));
        }
        if let Some(tail) = tail_bytes {
            query.push(("tail", tail.to_string()));
        }
        let response = self
            .http
            .get(self.url(&format!("/v1/allocation/{}/logs", encode(alloc_id))))
            .query(&query)
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        if !response.status().is_success() {
            let error = self.decode::<serde_json::Value>(response).await.err().unwrap_or_else(|| {
                ClientError::BadResponse { address: self.base.clone(), reason: "error without a body".to_owned() }
            });
            return Err(error);
        }
        let address = self.base.clone();
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|error| ClientError::Unreachable { address: address.clone(), reason: error.to_string() })
        }))
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
