//! ACL tokens, policies and join tokens: creating them, and resolving the
//! secret a request carries into what it may do.
//!
//! Decisions read the replicated state, so every server enforces the same
//! thing right after a change and after a leader change. Secrets are
//! shown once, at creation; the state keeps their SHA-256.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_acl::Permissions;
use drover_state::Command;
use drover_state::access::AccessOp;
use drover_types::acl::{ANONYMOUS_POLICY, AclPolicy, AclToken, JoinRole, JoinToken};
use drover_types::{CodedError, ErrorCode, Timestamp};

use crate::Result;
use crate::server::Server;

/// The file in a server's data directory that allows `drover acl
/// bootstrap` once more: it holds the index `drover acl bootstrap`
/// reports as already bootstrapped.
pub const BOOTSTRAP_RESET_FILE: &str = "acl-bootstrap-reset";

/// Who a request is, as its token says.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The token's name (`anonymous` without a token).
    pub name: String,
    /// The token's accessor.
    pub accessor: Option<String>,
    /// What it may do.
    pub permissions: Arc<Permissions>,
}

/// Compiled permissions by token accessor, valid for one access index.
#[derive(Debug, Default)]
pub(crate) struct PermissionCache {
    entries: Mutex<(u64, HashMap<String, Arc<Permissions>>)>,
}

/// A token created, with its secret (shown once).
#[derive(Clone, Debug)]
pub struct CreatedToken {
    /// The token as stored.
    pub token: AclToken,
    /// Its secret.
    pub secret: String,
}

/// Bounds on what `drover acl token create` and `join-token create` accept.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl Server {
    /// Resolves a request's secret (or its absence) into an identity.
    /// An unknown, malformed or expired secret is refused, never treated as
    /// anonymous.
    pub fn resolve_secret(&self, secret: Option<&str>) -> Result<Resolved> {
        let state = self.state();
        let access = state.access();
        let Some(secret) = secret.map(str::trim).filter(|secret| !secret.is_empty()) else {
            let permissions = match access.policy(ANONYMOUS_POLICY) {
                Some(policy) => Arc::new(Permissions::compile(&[policy])),
                None => Arc::new(Permissions::none()),
            };
            return Ok(Resolved { name: "anonymous".to_owned(), accessor: None, permissions });
        };
        drover_acl::check_secret_shape(secret).map_err(|problem| CodedError::new(ErrorCode::Unauthorized, problem))?;
        let hash = drover_acl::hash_secret(secret);
        let Some(token) = access.token_by_secret_hash(&hash) else {
            return Err(CodedError::new(
                ErrorCode::Unauthorized,
                "the ACL token is not known to this cluster (revoked, mistyped, or for another cluster)",
            ));
        };
        if token.expired(Timestamp::now()) {
            return Err(CodedError::new(
                ErrorCode::Unauthorized,
                format!("the ACL token {} ({}) has expired; ask for a new one", token.accessor, token.name),
            ));
        }
        let permissions = self.permissions_of(token, access);
        Ok(Resolved { name: token.name.clone(), accessor: Some(token.accessor.clone()), permissions })
    }

    fn permissions_of(&self, token: &AclToken, access: &drover_state::access::AccessState) -> Arc<Permissions> {
        if token.management {
            return Arc::new(Permissions::management());
        }
        let mut cache = self.inner.permissions.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.0 != access.index {
            *cache = (access.index, HashMap::new());
        }
        if let Some(permissions) = cache.1.get(&token.accessor) {
            return Arc::clone(permissions);
        }
        let policies: Vec<&AclPolicy> = token.policies.iter().filter_map(|name| access.policy(name)).collect();
        let permissions = Arc::new(Permissions::compile(&policies));
        cache.1.insert(token.accessor.clone(), Arc::clone(&permissions));
        permissions
    }

    /// `drover acl bootstrap`: the first management token. Refused once
    /// done, unless the reset file names the bootstrap index.
    pub async fn acl_bootstrap(&self) -> Result<CreatedToken> {
        if self.tls().is_none() {
            return Err(CodedError::invalid(
                "this server runs without ACLs (--insecure or drover dev); there is nothing to bootstrap",
            ));
        }
        let reset_path = self.config().data_dir.join(BOOTSTRAP_RESET_FILE);
        let reset_index = std::fs::read_to_string(&reset_path).ok().and_then(|text| text.trim().parse::<u64>().ok());
        let secret = drover_acl::new_secret();
        let token = AclToken {
            accessor: drover_acl::new_accessor(),
            secret_hash: drover_acl::hash_secret(&secret),
            name: "bootstrap".to_owned(),
            policies: Vec::new(),
            management: true,
            created_at: Timestamp::now(),
            expires_at: None,
        };
        self.propose(Command::Access { op: AccessOp::Bootstrap { token: token.clone(), reset_index } })
            .await?
            .into_result()?;
        if reset_index.is_some() {
            let _ = std::fs::remove_file(&reset_path);
        }
        Ok(CreatedToken { token, secret })
    }

    /// `drover acl policy apply NAME FILE`.
    pub async fn apply_acl_policy(&self, name: &str, file_name: &str, source: &str) -> Result<AclPolicy> {
        drover_acl::check_policy_name(name).map_err(CodedError::invalid)?;
        let parsed = drover_acl::parse_policy(file_name, source)
            .map_err(|diagnostics| CodedError::invalid(diagnostics.to_string()))?;
        let policy = AclPolicy {
            name: name.to_owned(),
            description: parsed.description,
            rules: parsed.rules,
            source: source.to_owned(),
            modified_at: Timestamp::now(),
        };
        self.propose(Command::Access { op: AccessOp::UpsertPolicy { policy: policy.clone() } }).await?.into_result()?;
        Ok(policy)
    }

    /// `drover acl policy delete NAME`.
    pub async fn delete_acl_policy(&self, name: &str) -> Result<()> {
        self.propose(Command::Access { op: AccessOp::DeletePolicy { name: name.to_owned() } }).await?.into_result()?;
        Ok(())
    }

    /// `drover acl token create`.
    pub async fn create_acl_token(
        &self,
        name: &str,
        policies: Vec<String>,
        management: bool,
        ttl: Option<Duration>,
    ) -> Result<CreatedToken> {
        if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(CodedError::invalid("a token needs a --name of 1 to 128 printable characters"));
        }
        if policies.is_empty() && !management {
            return Err(CodedError::invalid("a token needs at least one --policy (or --management)"));
        }
        let state = self.state();
        if let Some(missing) = policies.iter().find(|policy| state.access().policy(policy).is_none()) {
            return Err(CodedError::invalid(format!(
                "no ACL policy named {missing:?}; apply it first with `drover acl policy apply {missing} FILE`"
            )));
        }
        if ttl.is_some_and(|ttl| ttl > MAX_TTL || ttl.is_zero()) {
            return Err(CodedError::invalid("--ttl must be between 1s and 10 years"));
        }
        let secret = drover_acl::new_secret();
        let now = Timestamp::now();
        let token = AclToken {
            accessor: drover_acl::new_accessor(),
            secret_hash: drover_acl::hash_secret(&secret),
            name: name.trim().to_owned(),
            policies,
            management,
            created_at: now,
            expires_at: ttl.map(|ttl| now.plus(ttl)),
        };
        self.propose(Command::Access { op: AccessOp::UpsertToken { token: token.clone() } }).await?.into_result()?;
        Ok(CreatedToken { token, secret })
    }

    /// `drover acl token revoke ACCESSOR`.
    pub async fn revoke_acl_token(&self, accessor: &str) -> Result<()> {
        self.propose(Command::Access { op: AccessOp::DeleteToken { accessor: accessor.to_owned() } })
            .await?
            .into_result()?;
        Ok(())
    }

    /// `drover server join-token create`: gives a joining server the
    /// cluster CA (certificate and key) for a server join token, which
    /// loses one use. The joining server checked this server against the
    /// CA hash in the token before sending the secret.
    pub async fn release_ca_to_server(&self, secret: &str) -> Result<(String, String)> {
        let Some(tls) = self.tls().cloned() else {
            return Err(CodedError::invalid("this server is insecure (--insecure): servers join without a token"));
        };
        let hash = drover_acl::hash_secret(secret);
        let state = self.state();
        let Some(token) = state.access().join_token_by_secret_hash(&hash) else {
            return Err(CodedError::new(
                ErrorCode::Forbidden,
                "the join token is not known to this cluster (deleted, mistyped, or for another cluster)",
            ));
        };
        if token.role != JoinRole::Server {
            return Err(CodedError::new(ErrorCode::Forbidden, "this join token enrols agents, not servers"));
        }
        let ca_key = tls.ca_key_pem()?;
        self.propose(Command::Access { op: AccessOp::UseServerJoinToken { secret_hash: hash, now: Timestamp::now() } })
            .await?
            .into_result()?;
        Ok((tls.ca_pem().to_owned(), ca_key))
    }

    /// `drover node join-token create`: returns the token and its text
    /// (`drover1.<CA sha256>.<secret>`, shown once).
    pub async fn create_join_token(
        &self,
        role: JoinRole,
        hostgroups: Vec<String>,
        ttl: Duration,
        max_uses: Option<u32>,
        created_by: &str,
    ) -> Result<(JoinToken, String)> {
        let Some(tls) = self.tls().cloned() else {
            return Err(CodedError::invalid(
                "this server is insecure (--insecure): agents connect without a join token",
            ));
        };
        if ttl > MAX_TTL || ttl.is_zero() {
            return Err(CodedError::invalid("--ttl must be between 1s and 10 years"));
        }
        if max_uses == Some(0) {
            return Err(CodedError::invalid("--uses must be at least 1"));
        }
        if role == JoinRole::Server && !hostgroups.is_empty() {
            return Err(CodedError::invalid("a server join token has no host groups (they are for agents)"));
        }
        for glob in &hostgroups {
            drover_filter::GlobPattern::new(glob)
                .map_err(|problem| CodedError::invalid(format!("--hostgroup: the glob {glob:?} {problem}")))?;
        }
        let secret = drover_acl::new_secret();
        let now = Timestamp::now();
        let token = JoinToken {
            accessor: drover_acl::new_accessor(),
            secret_hash: drover_acl::hash_secret(&secret),
            role,
            hostgroups,
            created_at: now,
            expires_at: now.plus(ttl),
            max_uses,
            uses: 0,
            created_by: created_by.to_owned(),
        };
        self.propose(Command::Access { op: AccessOp::CreateJoinToken { token: token.clone() } })
            .await?
            .into_result()?;
        let text = drover_acl::JoinTokenText { ca_sha256: tls.ca_fingerprint(), secret }.to_string();
        Ok((token, text))
    }

    /// `drover node join-token revoke ACCESSOR`.
    pub async fn delete_join_token(&self, accessor: &str) -> Result<()> {
        self.propose(Command::Access { op: AccessOp::DeleteJoinToken { accessor: accessor.to_owned() } })
            .await?
            .into_result()?;
        Ok(())
    }

    /// `drover node revoke NAME`: its certificates are refused from now on
    /// and its live session ends (on whichever server holds it).
    pub async fn revoke_node(&self, name: &str) -> Result<()> {
        if self.tls().is_none() {
            return Err(CodedError::invalid("this server is insecure (--insecure): nodes have no certificates"));
        }
        let state = self.state();
        if state.access().node_certificate(name).is_none() && state.nodes().all(|node| node.name != name) {
            return Err(CodedError::not_found("node", name));
        }
        self.propose(Command::Access { op: AccessOp::RevokeNode { name: name.to_owned(), now: Timestamp::now() } })
            .await?
            .into_result()?;
        Ok(())
    }
}

/// Ends the sessions of nodes revoked while connected (every server runs
/// it for its own sessions).
pub(crate) fn spawn_revocation_watch(server: Server) {
    if server.tls().is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut states = server.watch_state();
        let mut seen = 0u64;
        loop {
            tokio::select! {
                () = server.shutdown_token().cancelled() => return,
                changed = states.changed() => if changed.is_err() { return },
            }
            let state = states.borrow_and_update().clone();
            if state.access().index == seen {
                continue;
            }
            seen = state.access().index;
            for node_id in server.inner.sessions.connected_nodes().await {
                let Some(node) = state.node(&node_id) else { continue };
                if state.access().node_revoked_at(&node.name).is_some() {
                    tracing::warn!(node = %node.name, "node revoked: ending its session");
                    server.drop_session(&node_id).await;
                }
            }
        }
    });
}
