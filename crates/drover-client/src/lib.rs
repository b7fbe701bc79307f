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
    AllocListEntry, ClusterHealth, DeregisterJobResponse, DispatchJobRequest, DispatchJobResponse, DrainRequest,
    EligibilityRequest, ExecEvent, ExecRequest, INDEX_HEADER, JobListEntry, JobStatusResponse, LogCountBy,
    LogCountResponse, LogHistogramResponse, LogInterval, LogPage, LogQuery, LogRecord, LogSearchResponse, Member,
    NodeListEntry, NodeStatusResponse, NodeUpdateRequest, NodeUpdateResponse, NodeUsageEntry, PlanResponse,
    ProtectionRequest, RegisterJobRequest, RegisterJobResponse, RevertJobRequest, ServerIdentity, ServerInfo,
    USER_HEADER,
};
use drover_proto::lifecycle::{
    AllocActionResponse, AllocExecRequest, AllocExecResponse, AllocRestartRequest, AllocSignalRequest,
    AllocStopResponse, JobRestartRequest, JobRestartResponse,
};
use drover_proto::paths;
use drover_proto::session::LogStream;
use drover_types::{Allocation, CodedError, Deployment, ErrorCode, Evaluation, Job, Node, NodeChange, Variable};

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

/// A client of the servers of one cluster.
///
/// Any server answers any request, so a client given several addresses
/// (`a:4747,b:4747,c:4747`) moves on to the next when one cannot be
/// connected to. Only connection failures move on: a request that reached
/// a server is never sent twice.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    others: Vec<String>,
    stale: bool,
    http: reqwest::Client,
}

fn base_url(address: &str) -> String {
    let address = address.trim();
    if address.starts_with("http://") || address.starts_with("https://") {
        address.trim_end_matches('/').to_owned()
    } else {
        format!("http://{}", address.trim_end_matches('/'))
    }
}

/// Whether `base` came from a part of `address` written without a scheme.
fn address_had_no_scheme(address: &str, base: &str) -> bool {
    let host = base.trim_start_matches("http://");
    address.split(',').map(str::trim).any(|part| part.trim_end_matches('/') == host)
}

/// What a client proves itself with.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The cluster CA certificate (PEM) the servers' certificates are
    /// checked against (`DROVER_CACERT`); without it only the system's
    /// roots are trusted.
    pub ca_pem: Option<String>,
    /// The ACL token's secret (`DROVER_TOKEN`).
    pub token: Option<String>,
}

/// `$USER@hostname` (or `$DROVER_USER`), for the audit history.
fn local_user() -> String {
    if let Ok(user) = std::env::var("DROVER_USER")
        && !user.trim().is_empty()
    {
        return user;
    }
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match host.trim() {
        "" => user,
        host => format!("{user}@{host}"),
    }
}

impl Client {
    /// A client of the server at `address` (`host:port` or a URL), or of
    /// several servers, comma-separated.
    pub fn new(address: &str) -> Self {
        Self::secured(address, &Credentials::default()).unwrap_or_else(|_| Self::plain(address))
    }

    fn plain(address: &str) -> Self {
        let mut bases: Vec<String> = address.split(',').filter(|part| !part.trim().is_empty()).map(base_url).collect();
        if bases.is_empty() {
            bases.push(base_url(DEFAULT_ADDRESS));
        }
        let base = bases.remove(0);
        Client { base, others: bases, stale: false, http: reqwest::Client::new() }
    }

    /// A client that checks the servers' certificates against the cluster
    /// CA and sends an ACL token (both optional: an insecure server needs
    /// neither).
    ///
    /// # Errors
    /// When the CA file cannot be read or holds no certificate, or the
    /// token cannot be sent in a header.
    pub fn secured(address: &str, credentials: &Credentials) -> Result<Self> {
        let mut client = Self::plain(address);
        if credentials.ca_pem.is_some() {
            // A cluster CA means a secure cluster: addresses without a
            // scheme are HTTPS.
            let secure = |base: &mut String| {
                if address_had_no_scheme(address, base) {
                    *base = base.replacen("http://", "https://", 1);
                }
            };
            secure(&mut client.base);
            client.others.iter_mut().for_each(secure);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(user) = reqwest::header::HeaderValue::from_str(&local_user()) {
            headers.insert(USER_HEADER, user);
        }
        if let Some(token) = credentials.token.as_deref().map(str::trim).filter(|token| !token.is_empty()) {
            let mut value = reqwest::header::HeaderValue::from_str(token).map_err(|_| {
                ClientError::Api(CodedError::invalid(
                    "the ACL token holds characters a header cannot carry; check DROVER_TOKEN".to_owned(),
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(drover_proto::api::TOKEN_HEADER, value);
        }
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).default_headers(headers);
        let builder = match &credentials.ca_pem {
            Some(ca_pem) => {
                drover_tls::install_crypto_provider();
                let roots = drover_tls::Roots::new(std::slice::from_ref(ca_pem)).map_err(|error| {
                    ClientError::Api(CodedError::invalid(format!("the cluster CA (DROVER_CACERT): {error}")))
                })?;
                let config = drover_tls::client_config(roots, None).map_err(|error| {
                    ClientError::Api(CodedError::invalid(format!("the cluster CA (DROVER_CACERT): {error}")))
                })?;
                builder.tls_backend_preconfigured(config)
            }
            None => builder,
        };
        client.http = builder.build().unwrap_or_default();
        Ok(client)
    }

    /// Reads may be answered from any server's local state, which can be
    /// slightly behind the leader (`--stale`); the default is consistent.
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// The same client, pointed at the next server of its list.
    fn next_server(&self) -> Option<Client> {
        let (next, rest) = self.others.split_first()?;
        Some(Client { base: next.clone(), others: rest.to_vec(), stale: self.stale, http: self.http.clone() })
    }

    /// Sends the request `build` makes for `path` (and its URL on the
    /// server tried), moving on to the next server only when one cannot be
    /// connected to.
    ///
    /// A path with a `.` or `..` segment is refused here: URL
    /// normalisation would silently turn `/v1/var/../job/hello` into
    /// another route (and `%2E%2E` is normalised the same way), so a name
    /// that is a dot segment cannot be sent at all.
    async fn send(
        &self,
        path: &str,
        build: impl Fn(&Client, String) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        check_segments(path)?;
        let mut client = self.clone();
        loop {
            match build(&client, client.url(path)).send().await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_connect() => match client.next_server() {
                    Some(next) => client = next,
                    None => return Err(client.unreachable(error)),
                },
                Err(error) => return Err(client.unreachable(error)),
            }
        }
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

    /// The error carried by a response whose body is not JSON data (a
    /// stream or a file) when its status is not a success.
    async fn error_of(&self, response: reqwest::Response) -> ClientError {
        self.decode::<serde_json::Value>(response).await.err().unwrap_or_else(|| ClientError::BadResponse {
            address: self.base.clone(),
            reason: "error without a body".to_owned(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, wait: Option<Wait>) -> Result<(T, u64)> {
        let response = self
            .send(path, |client, url| {
                let mut request = client.http.get(url);
                if client.stale {
                    request = request.query(&[("stale", "true")]);
                }
                match wait {
                    Some(wait) => request
                        .query(&[
                            ("index", wait.index.to_string()),
                            ("wait", format!("{}ms", wait.timeout.as_millis())),
                        ])
                        .timeout(wait.timeout + Duration::from_secs(30)),
                    None => request.timeout(Duration::from_secs(60)),
                }
            })
            .await?;
        self.decode(response).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response =
            self.send(path, |client, url| client.http.post(url).timeout(Duration::from_secs(60)).json(body)).await?;
        Ok(self.decode(response).await?.0)
    }

    async fn delete_path(&self, path: &str) -> Result<()> {
        let response = self.send(path, |client, url| client.http.delete(url).timeout(Duration::from_secs(60))).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(());
        }
        self.decode::<serde_json::Value>(response).await.map(|_| ())
    }

    /// `POST /v1/acl/bootstrap`: the first management token.
    pub async fn acl_bootstrap(&self) -> Result<drover_proto::api::TokenCreated> {
        self.post(paths::ACL_BOOTSTRAP, &serde_json::json!({})).await
    }

    /// `PUT /v1/acl/policy/{name}`.
    pub async fn apply_acl_policy(
        &self,
        name: &str,
        file_name: &str,
        source: &str,
    ) -> Result<drover_types::acl::AclPolicy> {
        let body = drover_proto::api::PolicyApplyRequest { file_name: file_name.to_owned(), source: source.to_owned() };
        let path = paths::fill(paths::ACL_POLICY, &[name]);
        let response =
            self.send(&path, |client, url| client.http.put(url).timeout(Duration::from_secs(60)).json(&body)).await?;
        Ok(self.decode(response).await?.0)
    }

    /// `GET /v1/acl/policies`.
    pub async fn acl_policies(&self) -> Result<Vec<drover_types::acl::AclPolicy>> {
        Ok(self.get(paths::ACL_POLICIES, None).await?.0)
    }

    /// `GET /v1/acl/policy/{name}`.
    pub async fn acl_policy(&self, name: &str) -> Result<drover_types::acl::AclPolicy> {
        Ok(self.get(&paths::fill(paths::ACL_POLICY, &[name]), None).await?.0)
    }

    /// `DELETE /v1/acl/policy/{name}`.
    pub async fn delete_acl_policy(&self, name: &str) -> Result<()> {
        self.delete_path(&paths::fill(paths::ACL_POLICY, &[name])).await
    }

    /// `POST /v1/acl/tokens`.
    pub async fn create_acl_token(
        &self,
        request: &drover_proto::api::TokenCreateRequest,
    ) -> Result<drover_proto::api::TokenCreated> {
        self.post(paths::ACL_TOKENS, request).await
    }

    /// `GET /v1/acl/tokens`.
    pub async fn acl_tokens(&self) -> Result<Vec<drover_proto::api::TokenEntry>> {
        Ok(self.get(paths::ACL_TOKENS, None).await?.0)
    }

    /// `GET /v1/acl/token/self`.
    pub async fn acl_token_self(&self) -> Result<drover_proto::api::TokenEntry> {
        Ok(self.get(paths::ACL_TOKEN_SELF, None).await?.0)
    }

    /// `DELETE /v1/acl/token/{accessor}`.
    pub async fn revoke_acl_token(&self, accessor: &str) -> Result<()> {
        self.delete_path(&paths::fill(paths::ACL_TOKEN, &[accessor])).await
    }

    /// `POST /v1/acl/join-tokens`.
    pub async fn create_join_token(
        &self,
        request: &drover_proto::api::JoinTokenCreateRequest,
    ) -> Result<drover_proto::api::JoinTokenCreated> {
        self.post(paths::ACL_JOIN_TOKENS, request).await
    }

    /// `GET /v1/acl/join-tokens`.
    pub async fn join_tokens(&self) -> Result<Vec<drover_proto::api::JoinTokenEntry>> {
        Ok(self.get(paths::ACL_JOIN_TOKENS, None).await?.0)
    }

    /// `DELETE /v1/acl/join-token/{accessor}`.
    pub async fn delete_join_token(&self, accessor: &str) -> Result<()> {
        self.delete_path(&paths::fill(paths::ACL_JOIN_TOKEN, &[accessor])).await
    }

    /// `POST /v1/node/{name}/revoke`.
    pub async fn revoke_node(&self, name: &str) -> Result<()> {
        let path = paths::fill(paths::NODE_REVOKE, &[name]);
        let response = self.send(&path, |client, url| client.http.post(url).timeout(Duration::from_secs(60))).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(());
        }
        self.decode::<serde_json::Value>(response).await.map(|_| ())
    }

    /// `GET /v1/audit`.
    pub async fn audit(&self, query: &drover_proto::api::AuditQuery) -> Result<Vec<drover_types::acl::AuditEvent>> {
        let response = self
            .send(paths::AUDIT, |client, url| client.http.get(url).query(query).timeout(Duration::from_secs(60)))
            .await?;
        Ok(self.decode(response).await?.0)
    }

    /// `PUT /v1/var/{path}`: creates or replaces a variable (`cas`: only if
    /// its modify index is that; 0: only if it does not exist).
    pub async fn put_variable(
        &self,
        path: &str,
        items: &std::collections::BTreeMap<String, String>,
        cas: Option<u64>,
    ) -> Result<Variable> {
        let url_path = paths::fill(paths::VARIABLE, &[path]);
        let body = serde_json::json!({ "items": items });
        let response = self
            .send(&url_path, |client, url| {
                let mut request = client.http.put(url).timeout(Duration::from_secs(60)).json(&body);
                if let Some(cas) = cas {
                    request = request.query(&[("cas", cas)]);
                }
                request
            })
            .await?;
        Ok(self.decode(response).await?.0)
    }

    /// `GET /v1/var/{path}`.
    pub async fn variable(&self, path: &str) -> Result<Variable> {
        Ok(self.get(&paths::fill(paths::VARIABLE, &[path]), None).await?.0)
    }

    /// `GET /v1/vars?prefix=`.
    pub async fn variables(&self, prefix: &str) -> Result<Vec<Variable>> {
        Ok(self.get(&format!("{}?prefix={}", paths::VARIABLES, paths::encode(prefix)), None).await?.0)
    }

    /// `DELETE /v1/var/{path}`.
    pub async fn delete_variable(&self, path: &str, cas: Option<u64>) -> Result<()> {
        let mut url_path = paths::fill(paths::VARIABLE, &[path]);
        if let Some(cas) = cas {
            url_path.push_str(&format!("?cas={cas}"));
        }
        self.delete_path(&url_path).await
    }

    /// `GET /v1/operator/health`: the servers' checklist.
    pub async fn cluster_health(&self) -> Result<ClusterHealth> {
        Ok(self.get(paths::OPERATOR_HEALTH, None).await?.0)
    }

    /// `GET /v1/operator/raft/members`.
    pub async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.get(paths::OPERATOR_RAFT_MEMBERS, None).await?.0)
    }

    /// `POST /v1/operator/raft/join`: adds the server at `address`.
    pub async fn join_server(&self, address: &str) -> Result<ServerIdentity> {
        self.post(paths::OPERATOR_RAFT_JOIN, &serde_json::json!({ "address": address })).await
    }

    /// `DELETE /v1/operator/raft/peer/{id}`.
    pub async fn remove_peer(&self, server_id: u64) -> Result<()> {
        self.delete_path(&paths::fill(paths::OPERATOR_RAFT_PEER, &[&server_id.to_string()])).await
    }

    /// `GET /v1/operator/tls`: the cluster's CAs and a CA rotation's progress.
    pub async fn tls_status(&self) -> Result<drover_proto::api::TlsStatus> {
        Ok(self.get(paths::OPERATOR_TLS, None).await?.0)
    }

    /// `POST /v1/operator/tls/rotate-ca`: starts a rotation of the cluster
    /// CA, to one the servers make or to the operator's (`request.new_ca`).
    pub async fn rotate_ca(
        &self,
        request: &drover_proto::api::RotateCaRequest,
    ) -> Result<drover_proto::api::TlsStatus> {
        self.post(paths::OPERATOR_TLS_ROTATE_CA, request).await
    }

    /// `POST /v1/operator/tls/rotate-ca/finish`: drops the old CA.
    pub async fn finish_ca_rotation(&self) -> Result<drover_proto::api::TlsStatus> {
        self.post(paths::OPERATOR_TLS_ROTATE_CA_FINISH, &serde_json::json!({})).await
    }

    /// `GET /v1/operator/snapshot`: the whole state, for disaster recovery.
    pub async fn save_snapshot(&self) -> Result<Bytes> {
        let response = self
            .send(paths::OPERATOR_SNAPSHOT, |client, url| client.http.get(url).timeout(Duration::from_secs(600)))
            .await?;
        if !response.status().is_success() {
            return Err(self.error_of(response).await);
        }
        response.bytes().await.map_err(|error| self.unreachable(error))
    }

    /// `POST /v1/operator/snapshot/restore`: replaces the whole state.
    pub async fn restore_snapshot(&self, snapshot: Vec<u8>) -> Result<u64> {
        let response = self
            .send(paths::OPERATOR_SNAPSHOT_RESTORE, |client, url| {
                client
                    .http
                    .post(url)
                    .timeout(Duration::from_secs(600))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(snapshot.clone())
            })
            .await?;
        let (restored, _): (serde_json::Value, u64) = self.decode(response).await?;
        Ok(restored.get("index").and_then(serde_json::Value::as_u64).unwrap_or(0))
    }

    /// `GET /v1/status/leader`.
    pub async fn leader(&self) -> Result<ServerInfo> {
        Ok(self.get(paths::STATUS_LEADER, None).await?.0)
    }

    /// `POST /v1/jobs`.
    pub async fn register_job(&self, job: &Job) -> Result<RegisterJobResponse> {
        self.post(paths::JOBS, &RegisterJobRequest { job: job.clone() }).await
    }

    /// `POST /v1/job/{id}/plan`.
    pub async fn plan_job(&self, job: &Job) -> Result<PlanResponse> {
        self.post(&paths::fill(paths::JOB_PLAN, &[job.id.as_str()]), &RegisterJobRequest { job: job.clone() }).await
    }

    /// `GET /v1/jobs`.
    pub async fn jobs(&self) -> Result<Vec<JobListEntry>> {
        Ok(self.get(paths::JOBS, None).await?.0)
    }

    /// `GET /v1/job/{id}`.
    pub async fn job(&self, job_id: &str) -> Result<Job> {
        Ok(self.get(&paths::fill(paths::JOB, &[job_id]), None).await?.0)
    }

    /// `GET /v1/job/{id}/status`, optionally as a blocking query.
    pub async fn job_status(&self, job_id: &str, wait: Option<Wait>) -> Result<(JobStatusResponse, u64)> {
        self.get(&paths::fill(paths::JOB_STATUS, &[job_id]), wait).await
    }

    /// `GET /v1/job/{id}/versions` (newest first).
    pub async fn job_versions(&self, job_id: &str) -> Result<Vec<Job>> {
        Ok(self.get(&paths::fill(paths::JOB_VERSIONS, &[job_id]), None).await?.0)
    }

    /// `GET /v1/job/{id}/allocations`.
    pub async fn job_allocations(&self, job_id: &str) -> Result<Vec<AllocListEntry>> {
        Ok(self.get(&paths::fill(paths::JOB_ALLOCATIONS, &[job_id]), None).await?.0)
    }

    /// `DELETE /v1/job/{id}`.
    pub async fn deregister_job(&self, job_id: &str, purge: bool) -> Result<DeregisterJobResponse> {
        let path = paths::fill(paths::JOB, &[job_id]);
        let response = self
            .send(&path, |client, url| {
                client.http.delete(url).query(&[("purge", purge)]).timeout(Duration::from_secs(60))
            })
            .await?;
        Ok(self.decode(response).await?.0)
    }

    /// `GET /v1/job/{id}/deployment`: the latest deployment.
    pub async fn job_deployment(&self, job_id: &str) -> Result<Deployment> {
        Ok(self.get(&paths::fill(paths::JOB_DEPLOYMENT, &[job_id]), None).await?.0)
    }

    /// `POST /v1/job/{id}/promote`.
    pub async fn promote_job(&self, job_id: &str) -> Result<Deployment> {
        self.post(&paths::fill(paths::JOB_PROMOTE, &[job_id]), &serde_json::json!({})).await
    }

    /// `POST /v1/job/{id}/revert`.
    pub async fn revert_job(&self, job_id: &str, version: u64) -> Result<RegisterJobResponse> {
        self.post(&paths::fill(paths::JOB_REVERT, &[job_id]), &RevertJobRequest { version }).await
    }

    /// `POST /v1/job/{id}/dispatch`: launches a child of a parameterized
    /// job.
    pub async fn dispatch_job(&self, job_id: &str, request: &DispatchJobRequest) -> Result<DispatchJobResponse> {
        self.post(&paths::fill(paths::JOB_DISPATCH, &[job_id]), request).await
    }

    /// `POST /v1/job/{id}/scale`: registers a new version of the job with
    /// `group`'s count set to `count` (refused outside its `scaling` bounds).
    pub async fn scale_job(&self, job_id: &str, group: &str, count: u32) -> Result<RegisterJobResponse> {
        self.post(&paths::fill(paths::JOB_SCALE, &[job_id]), &serde_json::json!({ "group": group, "count": count }))
            .await
    }

    /// `POST /v1/allocation/{id}/restart`: restart `task` (`None`: every
    /// running task) of an allocation in place.
    pub async fn restart_alloc(&self, alloc: &str, task: Option<&str>) -> Result<AllocActionResponse> {
        let request = AllocRestartRequest { task: task.map(str::to_owned) };
        self.post(&paths::fill(paths::ALLOCATION_RESTART, &[alloc]), &request).await
    }

    /// `POST /v1/allocation/{id}/signal`.
    pub async fn signal_alloc(&self, alloc: &str, task: Option<&str>, signal: &str) -> Result<AllocActionResponse> {
        let request = AllocSignalRequest { task: task.map(str::to_owned), signal: signal.to_owned() };
        self.post(&paths::fill(paths::ALLOCATION_SIGNAL, &[alloc]), &request).await
    }

    /// `POST /v1/allocation/{id}/stop`: stop an allocation and have it
    /// replaced.
    pub async fn stop_alloc(&self, alloc: &str) -> Result<AllocStopResponse> {
        self.post(&paths::fill(paths::ALLOCATION_STOP, &[alloc]), &serde_json::json!({})).await
    }

    /// `POST /v1/allocation/{id}/exec`: run a command in a task's
    /// environment (no overall timeout: the request carries its own).
    pub async fn exec_in_alloc(&self, alloc: &str, request: &AllocExecRequest) -> Result<AllocExecResponse> {
        let path = paths::fill(paths::ALLOCATION_EXEC, &[alloc]);
        let response = self.send(&path, |client, url| client.http.post(url).json(request)).await?;
        Ok(self.decode(response).await?.0)
    }

    /// `POST /v1/job/{id}/restart`: a rolling restart; answers once the
    /// last batch is back (no overall timeout: each batch has the group's
    /// `healthy_deadline`).
    pub async fn restart_job(&self, job_id: &str, task: Option<&str>) -> Result<JobRestartResponse> {
        let path = paths::fill(paths::JOB_RESTART, &[job_id]);
        let request = JobRestartRequest { task: task.map(str::to_owned) };
        let response = self.send(&path, |client, url| client.http.post(url).json(&request)).await?;
        Ok(self.decode(response).await?.0)
    }

    /// `POST /v1/job/{id}/periodic/force`.
    pub async fn force_periodic(&self, job_id: &str) -> Result<RegisterJobResponse> {
        self.post(&paths::fill(paths::JOB_PERIODIC_FORCE, &[job_id]), &serde_json::json!({})).await
    }

    /// `POST /v1/node/{node}/drain`.
    pub async fn drain_node(&self, node: &str, request: &DrainRequest) -> Result<Node> {
        self.post(&paths::fill(paths::NODE_DRAIN, &[node]), request).await
    }

    /// `POST /v1/node/{node}/eligibility`.
    pub async fn set_eligibility(&self, node: &str, eligible: bool) -> Result<Node> {
        self.post(&paths::fill(paths::NODE_ELIGIBILITY, &[node]), &EligibilityRequest { eligible }).await
    }

    /// `GET /v1/node/{node}` as a blocking query.
    pub async fn node_wait(&self, node: &str, wait: Option<Wait>) -> Result<(NodeStatusResponse, u64)> {
        self.get(&paths::fill(paths::NODE, &[node]), wait).await
    }

    /// `GET /v1/allocations`.
    pub async fn allocations(&self) -> Result<Vec<AllocListEntry>> {
        Ok(self.get(paths::ALLOCATIONS, None).await?.0)
    }

    /// `GET /v1/allocation/{id-or-prefix}`.
    pub async fn allocation(&self, id_prefix: &str) -> Result<Allocation> {
        Ok(self.get(&paths::fill(paths::ALLOCATION, &[id_prefix]), None).await?.0)
    }

    /// `GET /v1/services`: the services of the catalogue.
    pub async fn services(&self) -> Result<Vec<drover_proto::api::ServiceListEntry>> {
        Ok(self.get(paths::SERVICES, None).await?.0)
    }

    /// `GET /v1/service/{name}?tag=&healthy=`: a service's instances (a
    /// blocking query with `wait`), and the index of the answer.
    pub async fn service_instances(
        &self,
        name: &str,
        tag: Option<&str>,
        healthy_only: bool,
        wait: Option<Wait>,
    ) -> Result<(Vec<drover_proto::api::ServiceInstance>, u64)> {
        let mut path = paths::fill(paths::SERVICE, &[name]);
        let mut separator = '?';
        if let Some(tag) = tag {
            path.push_str(&format!("{separator}tag={}", paths::encode(tag)));
            separator = '&';
        }
        if healthy_only {
            path.push_str(&format!("{separator}healthy=true"));
        }
        self.get(&path, wait).await
    }

    /// `GET /v1/evaluation/{id-or-prefix}`.
    pub async fn evaluation(&self, id_prefix: &str) -> Result<Evaluation> {
        Ok(self.get(&paths::fill(paths::EVALUATION, &[id_prefix]), None).await?.0)
    }

    /// `GET /v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeListEntry>> {
        Ok(self.get(paths::NODES, None).await?.0)
    }

    /// `GET /v1/nodes?filter=EXPR`: the nodes the filter matches
    /// (docs/nodes.md).
    pub async fn nodes_matching(&self, filter: &str) -> Result<Vec<NodeListEntry>> {
        Ok(self.get(&format!("{}?filter={}", paths::NODES, paths::encode(filter)), None).await?.0)
    }

    /// `GET /v1/nodes/usage?filter=`: every node's latest usage.
    pub async fn nodes_usage(&self, filter: Option<&str>) -> Result<Vec<NodeUsageEntry>> {
        let path = match filter {
            Some(filter) => format!("{}?filter={}", paths::NODES_USAGE, paths::encode(filter)),
            None => paths::NODES_USAGE.to_owned(),
        };
        Ok(self.get(&path, None).await?.0)
    }

    /// `GET /v1/node/{node}/usage?since=`: the node's usage history, a
    /// point a minute (`since`: `24h`, an RFC 3339 time, …).
    pub async fn node_usage_history(&self, node: &str, since: &str) -> Result<drover_proto::api::NodeUsageHistory> {
        let path = format!("{}?since={}", paths::fill(paths::NODE_USAGE, &[node]), paths::encode(since));
        Ok(self.get(&path, None).await?.0)
    }

    /// `GET /v1/nodes?all=true[&filter=EXPR]`: retired nodes too.
    pub async fn all_nodes(&self, filter: Option<&str>) -> Result<Vec<NodeListEntry>> {
        let path = match filter {
            Some(filter) => format!("{}?all=true&filter={}", paths::NODES, paths::encode(filter)),
            None => format!("{}?all=true", paths::NODES),
        };
        Ok(self.get(&path, None).await?.0)
    }

    /// `GET /v1/node/{name-or-id}`.
    pub async fn node(&self, node: &str) -> Result<NodeStatusResponse> {
        Ok(self.get(&paths::fill(paths::NODE, &[node]), None).await?.0)
    }
    async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &LogQuery,
        extra: &(impl Serialize + Sync),
    ) -> Result<T> {
        let response = self
            .send(path, |client, url| client.http.get(url).query(query).query(extra).timeout(Duration::from_secs(120)))
            .await?;
        Ok(self.decode(response).await?.0)
    }

    /// `GET /v1/logs/search`: one page of matching log records, newest first.
    pub async fn search_logs(&self, query: &LogQuery, page: &LogPage) -> Result<LogSearchResponse> {
        self.get_query(paths::LOGS_SEARCH, query, page).await
    }

    /// `GET /v1/logs/count`: the most frequent values of a field.
    pub async fn count_logs(&self, query: &LogQuery, by: &LogCountBy) -> Result<LogCountResponse> {
        self.get_query(paths::LOGS_COUNT, query, by).await
    }

    /// `GET /v1/logs/histogram`: matching records per time bucket.
    pub async fn log_histogram(&self, query: &LogQuery, interval: &LogInterval) -> Result<LogHistogramResponse> {
        self.get_query(paths::LOGS_HISTOGRAM, query, interval).await
    }

    /// `GET /v1/logs/tail`: matching records as they arrive, until the
    /// stream is dropped.
    pub async fn tail_logs(
        &self,
        query: &LogQuery,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<LogRecord>>> {
        let response = self.send(paths::LOGS_TAIL, |client, url| client.http.get(url).query(query)).await?;
        self.ndjson(response).await
    }

    /// `GET /v1/logs/export`: every matching record, hour by hour, oldest
    /// first, and how many there are (as counted when the export started).
    /// The stream ends with an error when the server broke the export off.
    pub async fn export_logs(
        &self,
        query: &LogQuery,
    ) -> Result<(u64, futures_util::stream::BoxStream<'static, Result<LogRecord>>)> {
        let response = self.send(paths::LOGS_EXPORT, |client, url| client.http.get(url).query(query)).await?;
        let total = response
            .headers()
            .get(drover_proto::api::LOG_EXPORT_TOTAL_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        Ok((total, self.ndjson(response).await?))
    }

    /// `POST /v1/logs/import`: store a batch of exported records (each
    /// `(origin, seq)` once).
    pub async fn import_logs(
        &self,
        request: &drover_proto::api::LogImportRequest,
    ) -> Result<drover_proto::api::LogImportResponse> {
        self.post(paths::LOGS_IMPORT, request).await
    }

    /// `POST /v1/exec`: the events of a command run on many nodes, as they
    /// happen (the request has no overall timeout: each node has its own).
    pub async fn exec(
        &self,
        request: &ExecRequest,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<ExecEvent>>> {
        let response = self.send(paths::EXEC, |client, url| client.http.post(url).json(request)).await?;
        self.ndjson(response).await
    }

    /// `POST /v1/nodes/update`: change (or, with `dry_run`, preview) the
    /// labels of many nodes.
    pub async fn update_nodes(&self, request: &NodeUpdateRequest) -> Result<NodeUpdateResponse> {
        self.post(paths::NODES_UPDATE, request).await
    }

    /// `POST /v1/nodes/retire`: drain nodes, then keep them out of
    /// scheduling and of the default node list (or, with `dry_run`, tell
    /// which would be retired).
    pub async fn retire_nodes(
        &self,
        request: &drover_proto::api::NodeRetireRequest,
    ) -> Result<drover_proto::api::NodeSelectionResponse> {
        self.post(paths::NODES_RETIRE, request).await
    }

    /// `POST /v1/nodes/purge`: forget down or retired nodes entirely (or,
    /// with `dry_run`, check that they may be).
    pub async fn purge_nodes(
        &self,
        request: &drover_proto::api::NodePurgeRequest,
    ) -> Result<drover_proto::api::NodeSelectionResponse> {
        self.post(paths::NODES_PURGE, request).await
    }

    /// `POST /v1/workflows`: start a machine workflow (or, with `dry_run`,
    /// preview it).
    pub async fn start_workflow(
        &self,
        request: &drover_proto::machines::WorkflowRequest,
    ) -> Result<drover_proto::machines::WorkflowStarted> {
        self.post(paths::WORKFLOWS, request).await
    }

    /// `GET /v1/workflows`: every machine workflow, newest first.
    pub async fn workflows(&self) -> Result<Vec<drover_types::workflow::Workflow>> {
        Ok(self.get(paths::WORKFLOWS, None).await?.0)
    }

    /// `GET /v1/workflow/{id}`.
    pub async fn workflow(&self, id: &str) -> Result<drover_types::workflow::Workflow> {
        Ok(self.get(&paths::fill(paths::WORKFLOW, &[id]), None).await?.0)
    }

    /// `POST /v1/workflow/{id}/cancel`.
    pub async fn cancel_workflow(&self, id: &str) -> Result<drover_types::workflow::Workflow> {
        self.post(&paths::fill(paths::WORKFLOW_CANCEL, &[id]), &serde_json::json!({})).await
    }

    /// `POST /v1/workflow/{id}/pause` (`paused`) or `…/resume`.
    pub async fn pause_workflow(&self, id: &str, paused: bool) -> Result<drover_types::workflow::Workflow> {
        let path = if paused { paths::WORKFLOW_PAUSE } else { paths::WORKFLOW_RESUME };
        self.post(&paths::fill(path, &[id]), &serde_json::json!({})).await
    }

    /// `GET /v1/node/{node}/console`: the node's console now, through its
    /// provider.
    pub async fn node_console(&self, node: &str) -> Result<drover_proto::machines::NodeConsole> {
        Ok(self.get(&paths::fill(paths::NODE_CONSOLE, &[node]), None).await?.0)
    }

    /// `POST /v1/node/{node}/protection`.
    pub async fn set_protection(&self, node: &str, protect: bool, reason: &str) -> Result<Node> {
        let request = ProtectionRequest { protect, reason: reason.to_owned() };
        self.post(&paths::fill(paths::NODE_PROTECTION, &[node]), &request).await
    }

    /// `GET /v1/node/{node}/history`: the node's audit history, oldest first.
    pub async fn node_history(&self, node: &str) -> Result<Vec<NodeChange>> {
        Ok(self.get(&paths::fill(paths::NODE_HISTORY, &[node]), None).await?.0)
    }

    /// `GET /v1/site`: the applied site.
    pub async fn site(&self) -> Result<drover_react::api::SiteResponse> {
        Ok(self.get(paths::SITE, None).await?.0)
    }

    /// `POST /v1/site`: applies a site.
    pub async fn apply_site(
        &self,
        request: &drover_react::api::SiteApplyRequest,
    ) -> Result<drover_react::api::SiteResponse> {
        self.post(paths::SITE, request).await
    }

    /// `GET /v1/alerts`: active alerts, silences, received alerts.
    pub async fn alerts(&self) -> Result<drover_react::api::AlertsResponse> {
        Ok(self.get(paths::ALERTS, None).await?.0)
    }

    /// `GET /v1/alerts?name=RULE`: the alerts of one rule (and the received
    /// alerts of that `alertname`), with every silence.
    pub async fn alerts_named(&self, name: &str) -> Result<drover_react::api::AlertsResponse> {
        Ok(self.get(&format!("{}?name={}", paths::ALERTS, paths::encode(name)), None).await?.0)
    }

    /// `GET /v1/alerts/top?since=…`.
    pub async fn alerts_top(&self, since: &str) -> Result<Vec<drover_react::api::AlertCount>> {
        Ok(self.get(&format!("{}?since={}", paths::ALERTS_TOP, paths::encode(since)), None).await?.0)
    }

    /// `POST /v1/alert/ack`.
    pub async fn ack_alert(&self, id: &str) -> Result<serde_json::Value> {
        self.post(paths::ALERT_ACK, &drover_react::api::AckRequest { id: id.to_owned() }).await
    }

    /// `POST /v1/silences`.
    pub async fn add_silence(
        &self,
        request: &drover_react::api::SilenceRequest,
    ) -> Result<drover_react::alerting::Silence> {
        self.post(paths::SILENCES, request).await
    }

    /// `DELETE /v1/silence/{id}`.
    pub async fn expire_silence(&self, id: &str) -> Result<()> {
        self.delete_path(&paths::fill(paths::SILENCE, &[id])).await
    }

    /// `GET /v1/hammers`.
    pub async fn hammers(&self) -> Result<Vec<drover_react::api::HammerView>> {
        Ok(self.get(paths::HAMMERS, None).await?.0)
    }

    /// `GET /v1/hammers/history`: newest first.
    pub async fn hammer_history(
        &self,
        hammer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<drover_react::api::HammerHistoryEntry>> {
        let mut path = format!("{}?limit={limit}", paths::HAMMERS_HISTORY);
        if let Some(hammer) = hammer {
            path.push_str(&format!("&hammer={}", paths::encode(hammer)));
        }
        Ok(self.get(&path, None).await?.0)
    }

    /// `POST /v1/hammers/run/{run}/approve` (or `deny`).
    pub async fn decide_run(&self, run: u64, approve: bool) -> Result<serde_json::Value> {
        let route = if approve { paths::HAMMER_RUN_APPROVE } else { paths::HAMMER_RUN_DENY };
        self.post(&paths::fill(route, &[&run.to_string()]), &serde_json::json!({})).await
    }

    /// `POST /v1/hammers/pause`.
    pub async fn pause_hammer(&self, hammer: Option<&str>, paused: bool) -> Result<serde_json::Value> {
        let request = drover_react::api::PauseRequest { hammer: hammer.map(str::to_owned), paused };
        self.post(paths::HAMMERS_PAUSE, &request).await
    }

    /// `GET /v1/runbook/{name}`.
    pub async fn runbook(&self, name: &str) -> Result<drover_react::api::RunbookResponse> {
        Ok(self.get(&paths::fill(paths::RUNBOOK, &[name]), None).await?.0)
    }

    /// `GET /v1/notifications`: the server's notification deliveries.
    pub async fn notifications(&self) -> Result<Vec<drover_react::delivery::DeliveryRecord>> {
        Ok(self.get(paths::NOTIFICATIONS, None).await?.0)
    }

    /// A newline-delimited JSON answer as a stream of values.
    async fn ndjson<T: DeserializeOwned + Send + 'static>(
        &self,
        response: reqwest::Response,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<T>>> {
        if !response.status().is_success() {
            return Err(self.error_of(response).await);
        }
        let address = self.base.clone();
        let lines = futures_util::stream::unfold(
            (response.bytes_stream(), Vec::<u8>::new(), address),
            |(mut chunks, mut buffer, address)| async move {
                loop {
                    if let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        let entry = serde_json::from_slice::<T>(&line).map_err(|error| ClientError::BadResponse {
                            address: address.clone(),
                            reason: error.to_string(),
                        });
                        return Some((entry, (chunks, buffer, address)));
                    }
                    match chunks.next().await? {
                        Ok(chunk) => buffer.extend_from_slice(&chunk),
                        Err(error) => {
                            let error =
                                ClientError::Unreachable { address: address.clone(), reason: error.to_string() };
                            return Some((Err(error), (chunks, Vec::new(), address)));
                        }
                    }
                }
            },
        );
        Ok(lines.boxed())
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
        let path = paths::fill(paths::ALLOCATION_LOGS, &[alloc_id]);
        let response = self.send(&path, |client, url| client.http.get(url).query(&query)).await?;
        if !response.status().is_success() {
            return Err(self.error_of(response).await);
        }
        let address = self.base.clone();
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|error| ClientError::Unreachable { address: address.clone(), reason: error.to_string() })
        }))
    }
}

/// Refuses a path with a `.` or `..` segment (before its query string).
fn check_segments(path: &str) -> Result<()> {
    let path_only = path.split('?').next().unwrap_or_default();
    let is_dot_segment = |segment: &str| {
        let lowered = segment.to_ascii_lowercase().replace("%2e", ".");
        lowered == "." || lowered == ".."
    };
    match path_only.split('/').find(|segment| is_dot_segment(segment)) {
        Some(segment) => Err(ClientError::Api(CodedError::invalid(format!(
            "{segment:?} cannot be a name or a path segment: it would address another route; nothing was sent"
        )))),
        None => Ok(()),
    }
}
