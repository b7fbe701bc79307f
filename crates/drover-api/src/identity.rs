//! Who is calling, and the audit of what they did: the one place every
//! request's identity is decided and every write (and every refusal) is
//! recorded.
//!
//! ```text
//!  request ─▶ identify (middleware): certificate from the TLS connection,
//!             token from X-Drover-Token / Authorization: Bearer
//!             ├─ unknown or expired token ─▶ 401, audited
//!             └─ Caller in the request's extensions ─▶ handler
//!                   handler: caller.require(scope, capability)
//!                            caller.require_on(scope, capability, subject)
//!  response ─▶ audited when the request wrote (not GET) or was refused
//! ```
//!
//! On an insecure server (`--insecure`, `drover dev`, library tests) every
//! caller may do everything and `X-Drover-User` names it; on a secure one
//! the token says who it is and the header is ignored.

use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use drover_acl::Permissions;
use drover_proto::paths;
use drover_server::security::Peer;
use drover_types::acl::{AclScope, AuditEvent, AuditOutcome, Capability};
use drover_types::{CodedError, ErrorCode, Timestamp};

use crate::AppState;
use crate::error::ApiError;

/// The identity of a request's caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// A name for audit records: the token's name, `anonymous`, or (on an
    /// insecure server) what `X-Drover-User` claims.
    pub name: String,
    /// The token's accessor.
    pub accessor: Option<String>,
    /// What the connection's certificate proves.
    pub peer: Peer,
    /// Where the request came from.
    pub source: String,
    permissions: Arc<Permissions>,
    enforced: bool,
}

impl Caller {
    /// A caller of an insecure server: may do everything.
    pub fn unrestricted(name: &str) -> Self {
        Caller {
            name: name.to_owned(),
            accessor: None,
            peer: Peer::None,
            source: String::new(),
            permissions: Arc::new(Permissions::management()),
            enforced: false,
        }
    }

    /// Whether access control applies to this caller (a secure server).
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// `Ok` when some rule grants `capability` in `scope` (for lists,
    /// which are then filtered, and scopes without a glob).
    pub fn require(&self, scope: AclScope, capability: Capability) -> Result<(), ApiError> {
        if self.permissions.allows_somewhere(scope, capability) {
            return Ok(());
        }
        let rule = match scope.pattern_attribute() {
            Some(attribute) => format!("{scope} {{ {attribute} = \"…\" capabilities = [\"{capability}\"] }}"),
            None => format!("{scope} {{ capabilities = [\"{capability}\"] }}"),
        };
        Err(ApiError(CodedError::new(
            ErrorCode::Forbidden,
            format!("{} may not do this: needs {rule} in one of its policies", self.name),
        )))
    }

    /// `Ok` when a rule grants `capability` in `scope` for `subject` (a
    /// host group, a job name, a variable path).
    pub fn require_on(&self, scope: AclScope, capability: Capability, subject: &str) -> Result<(), ApiError> {
        if self.allows(scope, capability, subject) { Ok(()) } else { Err(self.refusal(scope, capability, subject)) }
    }

    /// Whether a rule grants `capability` in `scope` for `subject`.
    pub fn allows(&self, scope: AclScope, capability: Capability, subject: &str) -> bool {
        self.permissions.allows(scope, capability, subject)
    }

    /// The globs of the rules granting `capability` in `scope`, or `None`
    /// when the caller is not narrowed (no access control, a management
    /// token, or a rule for every subject).
    pub fn patterns(&self, scope: AclScope, capability: Capability) -> Option<Vec<String>> {
        if !self.enforced {
            return None;
        }
        self.permissions.patterns(scope, capability)
    }

    /// The refusal of `capability` in `scope` for `subject`, naming the rule that is missing.
    pub fn refusal(&self, scope: AclScope, capability: Capability, subject: &str) -> ApiError {
        ApiError(CodedError::new(
            ErrorCode::Forbidden,
            format!("{} may not do this: {}", self.name, self.permissions.missing(scope, capability, subject)),
        ))
    }

    /// `Ok` for a management token (or no access control): what changes
    /// the cluster's trust itself, such as rotating its CA.
    pub fn require_management(&self) -> Result<(), ApiError> {
        if !self.enforced || self.permissions.is_management() {
            return Ok(());
        }
        Err(ApiError(CodedError::new(
            ErrorCode::Forbidden,
            format!("{} may not do this: it needs a management token", self.name),
        )))
    }

    /// `Ok` for another server of the cluster (internal routes).
    pub fn require_server(&self) -> Result<(), ApiError> {
        if !self.enforced || matches!(self.peer, Peer::Server(_)) {
            Ok(())
        } else {
            Err(ApiError(CodedError::new(
                ErrorCode::Forbidden,
                "this route is for the cluster's servers (it needs a server certificate of this cluster)",
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError(CodedError::internal("the request was not identified (the router lacks its middleware)"))
        })
    }
}

/// How long a write's answer waits for its audit event to commit.
const AUDIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a handler adds to its write's audit event.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// On what (replaces the request path).
    pub target: Option<String>,
    /// Anything worth keeping.
    pub details: String,
}

impl AuditNote {
    /// `response` carrying this note to its audit event.
    pub fn on(self, mut response: axum::response::Response) -> axum::response::Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// Marks an error response refused for what it asked (an operator's CA
/// that fails its checks), not only for who asked: audited as refused.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RefusedInput;

/// Marks a response that is not audited when it succeeds (the servers'
/// internal traffic: Raft, forwarded proposals, heartbeats).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quiet;

/// The token a request carries.
fn token_of(parts: &axum::http::HeaderMap) -> Option<String> {
    if let Some(value) = parts.get(drover_proto::api::TOKEN_HEADER).and_then(|value| value.to_str().ok()) {
        return Some(value.trim().to_owned());
    }
    let value = parts.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(|secret| secret.trim().to_owned())
}

/// Decides who the caller is, runs the request, and audits it.
pub(crate) async fn identify(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let connection = request.extensions().get::<ConnectInfo<drover_tls::PeerInfo>>().map(|info| info.0.clone());
    let source = connection.as_ref().map(|info| info.address.to_string()).unwrap_or_default();
    let peer = Peer::from_certificate(connection.as_ref().and_then(|info| info.certificate.as_ref()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request.extensions().get::<MatchedPath>().map(|matched| matched.as_str().to_owned());
    let caller = if app.server.acl_enabled() {
        // On the dashboard's pages the session cookie carries the token.
        let secret = token_of(request.headers()).or_else(|| {
            crate::routes::ui::takes_session_cookie(&path)
                .then(|| crate::routes::ui::session::cookie_of(request.headers()))
                .flatten()
        });
        match app.server.resolve_secret(secret.as_deref()) {
            Ok(resolved) => Caller {
                name: match (&peer, secret.is_some()) {
                    (Peer::Node { name, .. }, false) => format!("node:{name}"),
                    (Peer::Server(id), false) => format!("server:{id}"),
                    _ => resolved.name,
                },
                accessor: resolved.accessor,
                // The cluster's own servers (relaying an exec or a log
                // search already checked against the caller) may do anything.
                permissions: if matches!(peer, Peer::Server(_)) && secret.is_none() {
                    Arc::new(Permissions::management())
                } else {
                    resolved.permissions
                },
                peer,
                source,
                enforced: true,
            },
            Err(error) => {
                app.server.audit(AuditEvent {
                    at: Timestamp::now(),
                    accessor: None,
                    name: "unknown".to_owned(),
                    action: action_of(&method, route.as_deref().unwrap_or(&path)),
                    target: path.clone(),
                    details: String::new(),
                    outcome: AuditOutcome::Refused(error.message.clone()),
                    source,
                    request_id: 0,
                });
                if crate::routes::ui::takes_session_cookie(&path) {
                    return crate::routes::ui::login_again(&error, app.server.tls().is_some());
                }
                return ApiError(error).into_response();
            }
        }
    } else {
        let claimed = request
            .headers()
            .get(drover_proto::api::USER_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(|claimed| claimed.chars().filter(|c| !c.is_control()).take(128).collect::<String>())
            .filter(|claimed| !claimed.trim().is_empty());
        let mut caller = Caller::unrestricted(claimed.as_deref().map(str::trim).unwrap_or("anonymous"));
        caller.peer = peer;
        caller.source = source;
        caller
    };
    request.extensions_mut().insert(caller.clone());
    let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let at = Timestamp::now();
    let action = action_of(&method, route.as_deref().unwrap_or(&path));
    // A secure server commits a write's audit event with the write itself
    // (docs/security.md, "Audit"); the servers' own traffic is not audited.
    let rides_on_write =
        writes && route.is_some() && app.server.acl_enabled() && !matches!(caller.peer, Peer::Server(_));
    let (response, committed) = if rides_on_write {
        let provisional = AuditEvent {
            at,
            accessor: caller.accessor.clone(),
            name: caller.name.clone(),
            action: action.clone(),
            target: path.clone(),
            details: String::new(),
            outcome: AuditOutcome::Ok,
            source: caller.source.clone(),
            request_id: 0,
        };
        drover_server::audit::with_request_audit(provisional, next.run(request)).await
    } else {
        (next.run(request).await, None)
    };

    let status = response.status();
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        || response.extensions().get::<RefusedInput>().is_some();
    let quiet = response.extensions().get::<Quiet>().is_some() && !refused;
    if (writes || refused) && !quiet && route.is_some() {
        let error = response.extensions().get::<CodedError>().map(|error| error.message.clone());
        let note = response.extensions().get::<AuditNote>().cloned().unwrap_or_default();
        let outcome = match (refused, status.is_success() || status.is_informational() || status.is_redirection()) {
            (true, _) => AuditOutcome::Refused(error.unwrap_or_else(|| status.to_string())),
            (false, true) => AuditOutcome::Ok,
            (false, false) => AuditOutcome::Failed(error.unwrap_or_else(|| status.to_string())),
        };
        let event = AuditEvent {
            at,
            accessor: caller.accessor,
            name: caller.name,
            action,
            target: note.target.unwrap_or(path),
            details: note.details,
            outcome,
            source: caller.source,
            request_id: committed.as_ref().map_or(0, |committed| committed.request_id),
        };
        // A write is answered once its audit event is committed (so that a
        // server lost right after cannot lose it); refusals are not held up.
        // Committed with the write already and nothing to add: indexed only.
        if committed.as_ref() == Some(&event) {
            app.server.audit_committed_with_write(event);
        } else if writes && !refused && app.server.acl_enabled() {
            app.server.audit_committed(event, AUDIT_PATIENCE).await;
        } else {
            app.server.audit(event);
        }
    }
    response
}

/// Audits a successful request that the middleware does not (a read that
/// copies everything, an internal route), and waits for the commit.
pub(crate) async fn record(app: &AppState, caller: &Caller, action: &str, target: &str) {
    let event = AuditEvent {
        at: Timestamp::now(),
        accessor: caller.accessor.clone(),
        name: caller.name.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        details: String::new(),
        outcome: AuditOutcome::Ok,
        source: caller.source.clone(),
        request_id: 0,
    };
    app.server.audit_committed(event, AUDIT_PATIENCE).await;
}

/// The audit action of a route: `job.register`, `node.drain`, … (the
/// method and route for the rest).
fn action_of(method: &Method, route: &str) -> String {
    let known = match (method.as_str(), route) {
        ("POST", paths::JOBS) => "job.register",
        ("DELETE", paths::JOB) => "job.stop",
        ("POST", paths::JOB_PLAN) => "job.plan",
        ("POST", paths::JOB_PROMOTE) => "job.promote",
        ("POST", paths::JOB_REVERT) => "job.revert",
        ("POST", paths::JOB_PERIODIC_FORCE) => "job.periodic_force",
        ("POST", paths::JOB_DISPATCH) => "job.dispatch",
        ("POST", paths::JOB_SCALE) => "job.scale",
        ("POST", paths::JOB_RESTART) => "job.restart",
        ("POST", paths::ALLOCATION_RESTART) => "alloc.restart",
        ("POST", paths::ALLOCATION_SIGNAL) => "alloc.signal",
        ("POST", paths::ALLOCATION_STOP) => "alloc.stop",
        ("POST", paths::ALLOCATION_EXEC) => "alloc.exec",
        ("POST", paths::NODE_DRAIN) => "node.drain",
        ("POST", paths::NODE_ELIGIBILITY) => "node.eligibility",
        ("POST", paths::NODE_PROTECTION) => "node.protect",
        ("POST", paths::NODES_UPDATE) => "node.update",
        ("POST", paths::NODES_RETIRE) => "node.retire",
        ("POST", paths::NODES_PURGE) => "node.purge",
        ("POST", paths::WORKFLOWS) => "workflow.start",
        ("POST", paths::WORKFLOW_CANCEL) => "workflow.cancel",
        ("POST", paths::WORKFLOW_PAUSE) => "workflow.pause",
        ("POST", paths::WORKFLOW_RESUME) => "workflow.resume",
        ("POST", paths::NODE_REVOKE) => "node.revoke",
        ("POST", paths::EXEC) => "exec.run",
        ("POST", paths::LOGS_IMPORT) => "logs.import",
        ("PUT", paths::VARIABLE) => "variable.put",
        ("DELETE", paths::VARIABLE) => "variable.delete",
        ("POST", paths::SITE) => "site.apply",
        ("POST", paths::ALERT_ACK) => "alert.ack",
        ("POST", paths::SILENCES) => "alert.silence",
        ("DELETE", paths::SILENCE) => "alert.unsilence",
        ("POST", paths::HAMMERS_PAUSE) => "hammer.pause",
        ("POST", paths::HAMMER_RUN_APPROVE) => "hammer.approve",
        ("POST", paths::HAMMER_RUN_DENY) => "hammer.deny",
        ("POST", paths::OPERATOR_RAFT_JOIN) => "operator.join",
        ("POST", paths::OPERATOR_SNAPSHOT_RESTORE) => "operator.snapshot_restore",
        ("GET", paths::OPERATOR_SNAPSHOT) => "operator.snapshot_save",
        ("POST", paths::ACL_BOOTSTRAP) => "acl.bootstrap",
        ("PUT", paths::ACL_POLICY) => "acl.policy.apply",
        ("DELETE", paths::ACL_POLICY) => "acl.policy.delete",
        ("POST", paths::ACL_TOKENS) => "acl.token.create",
        ("DELETE", paths::ACL_TOKEN) => "acl.token.revoke",
        ("POST", paths::ACL_JOIN_TOKENS) => "acl.join_token.create",
        ("DELETE", paths::ACL_JOIN_TOKEN) => "acl.join_token.revoke",
        ("POST", paths::AGENT_ENROLL) => "node.enroll",
        ("POST", paths::AGENT_RENEW) => "node.renew",
        ("POST", paths::OPERATOR_TLS_JOIN) => "operator.server_join",
        ("POST", paths::OPERATOR_TLS_ROTATE_CA) => "operator.tls.rotate_ca",
        ("POST", paths::OPERATOR_TLS_ROTATE_CA_FINISH) => "operator.tls.rotate_ca_finish",
        ("GET", paths::AGENT_SESSION) => "node.session",
        // The dashboard's forms are named as the API calls they make.
        ("POST", paths::UI_HAMMER_RUN_APPROVE) => "hammer.approve",
        ("POST", paths::UI_HAMMER_RUN_DENY) => "hammer.deny",
        ("POST", paths::UI_ALERT_ACK) => "alert.ack",
        ("POST", paths::UI_ALERT_SILENCE) => "alert.silence",
        ("POST", paths::UI_SILENCE_EXPIRE) => "alert.unsilence",
        ("POST", paths::UI_JOB_PROMOTE) => "job.promote",
        ("POST", paths::UI_JOB_REVERT) => "job.revert",
        ("POST", paths::UI_EXEC) => "exec.run",
        ("POST", paths::UI_LOGIN) => "ui.login",
        ("POST", paths::UI_LOGOUT) => "ui.logout",
        _ => "",
    };
    if known.is_empty() { format!("{} {route}", method.as_str().to_lowercase()) } else { known.to_owned() }
}
