//! Who may do what, replicated: ACL tokens and policies, join tokens, the
//! certificates of enrolled nodes, and the audit log.
//!
//! Everything here is in the Raft state so that every server enforces the
//! same thing right after a change and after a leader change. Secrets are
//! never stored: tokens carry the SHA-256 of theirs. Decisions that need
//! globs (which host groups a join token allows) are taken by the server
//! before it proposes; `apply` re-checks what can change between the two
//! (expiry, remaining uses, whether the ACL system is bootstrapped), so
//! two servers racing for the last use of a token cannot both win.
//!
//! An operator's snapshot restore (`RestoreState` with `keep_access`)
//! keeps the running cluster's access state: restoring workloads never
//! brings back a revoked token or node. Recovering a lost cluster from one
//! server's data takes it from the snapshot.

use drover_types::acl::{AclPolicy, AclToken, AuditEvent, JoinRole, JoinToken};
use drover_types::{CodedError, ErrorCode, Timestamp};
use imbl::{OrdMap, Vector};
use serde::{Deserialize, Serialize};

/// The most audit events kept, whatever their age (the oldest go first).
pub const AUDIT_EVENTS_KEPT: usize = 1_000_000;

/// One change to the access state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccessOp {
    /// `drover acl bootstrap`: the first management token. Refused once
    /// bootstrapped, unless `reset_index` is the index of the bootstrap
    /// being reset (read from the reset file in a server's data directory).
    Bootstrap {
        /// The management token.
        token: AclToken,
        /// The bootstrap index a reset file names.
        reset_index: Option<u64>,
    },
    /// Create or replace a policy.
    UpsertPolicy {
        /// The policy.
        policy: AclPolicy,
    },
    /// Delete a policy (tokens naming it lose what it granted).
    DeletePolicy {
        /// Its name.
        name: String,
    },
    /// Create or replace a token.
    UpsertToken {
        /// The token (its secret hash must be new).
        token: AclToken,
    },
    /// Revoke a token.
    DeleteToken {
        /// Its accessor.
        accessor: String,
    },
    /// Create a join token.
    CreateJoinToken {
        /// The token.
        token: JoinToken,
    },
    /// Delete a join token.
    DeleteJoinToken {
        /// Its accessor.
        accessor: String,
    },
    /// A node's certificate was issued: at enrolment (`join_secret_hash`
    /// names the join token, which loses one use) or at renewal (`None`;
    /// the node must already be enrolled).
    SetNodeCertificate {
        /// The node's name (what the certificate proves).
        name: String,
        /// The certificate's serial number, hex.
        serial: String,
        /// When it expires.
        not_after: Timestamp,
        /// The join token used, by the hash of its secret.
        join_secret_hash: Option<String>,
        /// The host groups the node may claim (the join token's; kept at renewal).
        #[serde(default)]
        hostgroups: Vec<String>,
        /// When.
        now: Timestamp,
    },
    /// A server joined with a server join token (it was given the cluster
    /// CA): the token loses one use.
    UseServerJoinToken {
        /// The join token, by the hash of its secret.
        secret_hash: String,
        /// When.
        now: Timestamp,
    },
    /// `drover node revoke`: the node's certificates are refused from now on.
    RevokeNode {
        /// The node's name.
        name: String,
        /// When.
        now: Timestamp,
    },
    /// Audit events, in the order they happened.
    RecordAudit {
        /// The events.
        events: Vec<AuditEvent>,
    },
    /// Forget audit events older than `before`.
    PruneAudit {
        /// The cut-off.
        before: Timestamp,
    },
}

impl AccessOp {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            AccessOp::Bootstrap { .. } => "acl_bootstrap",
            AccessOp::UpsertPolicy { .. } => "acl_upsert_policy",
            AccessOp::DeletePolicy { .. } => "acl_delete_policy",
            AccessOp::UpsertToken { .. } => "acl_upsert_token",
            AccessOp::DeleteToken { .. } => "acl_delete_token",
            AccessOp::CreateJoinToken { .. } => "create_join_token",
            AccessOp::DeleteJoinToken { .. } => "delete_join_token",
            AccessOp::SetNodeCertificate { .. } => "set_node_certificate",
            AccessOp::UseServerJoinToken { .. } => "use_server_join_token",
            AccessOp::RevokeNode { .. } => "revoke_node",
            AccessOp::RecordAudit { .. } => "record_audit",
            AccessOp::PruneAudit { .. } => "prune_audit",
        }
    }
}

/// The certificates a node may connect with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCertificate {
    /// The current certificate's serial, hex.
    pub serial: String,
    /// The one before (accepted until the node has its renewal in hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_serial: Option<String>,
    /// When the current one expires.
    pub not_after: Timestamp,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// Globs of the host groups the node may claim (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostgroups: Vec<String>,
}

/// The access state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessState {
    /// The index of `drover acl bootstrap` (0: not bootstrapped).
    #[serde(default)]
    pub bootstrap_index: u64,
    policies: OrdMap<String, AclPolicy>,
    tokens: OrdMap<String, AclToken>,
    #[serde(skip)]
    tokens_by_hash: OrdMap<String, String>,
    join_tokens: OrdMap<String, JoinToken>,
    #[serde(skip)]
    join_by_hash: OrdMap<String, String>,
    node_certificates: OrdMap<String, NodeCertificate>,
    revoked_nodes: OrdMap<String, Timestamp>,
    audit: Vector<AuditEvent>,
    /// The index of the last change to tokens, policies or certificates
    /// (servers rebuild their caches when it moves).
    #[serde(default)]
    pub index: u64,
}

/// Why a name that is enrolled cannot enrol again.
pub fn enrolled_already(name: &str) -> String {
    format!(
        "node {name} is enrolled already; a reinstalled machine keeps its name only after `drover node revoke {name}` (which refuses the old certificate)"
    )
}

impl AccessState {
    /// Rebuilds the lookup indexes after decoding a snapshot.
    pub fn reindex(&mut self) {
        self.tokens_by_hash =
            self.tokens.values().map(|token| (token.secret_hash.clone(), token.accessor.clone())).collect();
        self.join_by_hash =
            self.join_tokens.values().map(|token| (token.secret_hash.clone(), token.accessor.clone())).collect();
    }

    /// Whether `drover acl bootstrap` has run.
    pub fn bootstrapped(&self) -> bool {
        self.bootstrap_index > 0
    }

    /// A policy by name.
    pub fn policy(&self, name: &str) -> Option<&AclPolicy> {
        self.policies.get(name)
    }

    /// Every policy, by name.
    pub fn policies(&self) -> impl Iterator<Item = &AclPolicy> {
        self.policies.values()
    }

    /// A token by accessor.
    pub fn token(&self, accessor: &str) -> Option<&AclToken> {
        self.tokens.get(accessor)
    }

    /// The token whose secret hashes to `secret_hash`.
    pub fn token_by_secret_hash(&self, secret_hash: &str) -> Option<&AclToken> {
        self.tokens_by_hash.get(secret_hash).and_then(|accessor| self.tokens.get(accessor))
    }

    /// Every token, by accessor.
    pub fn tokens(&self) -> impl Iterator<Item = &AclToken> {
        self.tokens.values()
    }

    /// The join token whose secret hashes to `secret_hash`.
    pub fn join_token_by_secret_hash(&self, secret_hash: &str) -> Option<&JoinToken> {
        self.join_by_hash.get(secret_hash).and_then(|accessor| self.join_tokens.get(accessor))
    }

    /// Every join token, by accessor.
    pub fn join_tokens(&self) -> impl Iterator<Item = &JoinToken> {
        self.join_tokens.values()
    }

    /// The certificates an enrolled node may connect with.
    pub fn node_certificate(&self, name: &str) -> Option<&NodeCertificate> {
        self.node_certificates.get(name)
    }

    /// When a node was revoked, if it was (and has not enrolled since).
    pub fn node_revoked_at(&self, name: &str) -> Option<Timestamp> {
        self.revoked_nodes.get(name).copied()
    }

    /// Why a node presenting the certificate `serial` must be refused, if it must.
    pub fn node_certificate_refusal(&self, name: &str, serial: &str) -> Option<String> {
        if let Some(at) = self.revoked_nodes.get(name) {
            return Some(format!("node {name} was revoked at {at}; enrol it again with a join token"));
        }
        match self.node_certificates.get(name) {
            None => Some(format!("node {name} is not enrolled; start its agent with --join-token")),
            Some(certificate)
                if certificate.serial != serial && certificate.previous_serial.as_deref() != Some(serial) =>
            {
                Some(format!(
                    "the certificate {serial} of node {name} was replaced; the node holds an old certificate (enrol it again with a join token)"
                ))
            }
            Some(_) => None,
        }
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> &Vector<AuditEvent> {
        &self.audit
    }

    /// Applies one change. Deterministic: depends on the state and the op.
    pub fn apply(&mut self, index: u64, op: &AccessOp) -> Result<(), CodedError> {
        match op {
            AccessOp::Bootstrap { token, reset_index } => {
                if self.bootstrapped() && *reset_index != Some(self.bootstrap_index) {
                    return Err(CodedError::new(
                        ErrorCode::Conflict,
                        format!(
                            "the ACL system is already bootstrapped (at index {}); to bootstrap again, write {} into acl-bootstrap-reset in a server's data directory",
                            self.bootstrap_index, self.bootstrap_index
                        ),
                    ));
                }
                self.insert_token(token.clone())?;
                self.bootstrap_index = index;
            }
            AccessOp::UpsertPolicy { policy } => {
                self.policies.insert(policy.name.clone(), policy.clone());
            }
            AccessOp::DeletePolicy { name } => {
                if self.policies.remove(name).is_none() {
                    return Err(CodedError::not_found("ACL policy", name));
                }
            }
            AccessOp::UpsertToken { token } => self.insert_token(token.clone())?,
            AccessOp::DeleteToken { accessor } => match self.tokens.remove(accessor) {
                Some(token) => {
                    self.tokens_by_hash.remove(&token.secret_hash);
                }
                None => return Err(CodedError::not_found("ACL token", accessor)),
            },
            AccessOp::CreateJoinToken { token } => {
                if self.join_by_hash.contains_key(&token.secret_hash) || self.join_tokens.contains_key(&token.accessor)
                {
                    return Err(CodedError::new(ErrorCode::Conflict, "a join token with this secret already exists"));
                }
                self.join_by_hash.insert(token.secret_hash.clone(), token.accessor.clone());
                self.join_tokens.insert(token.accessor.clone(), token.clone());
            }
            AccessOp::DeleteJoinToken { accessor } => match self.join_tokens.remove(accessor) {
                Some(token) => {
                    self.join_by_hash.remove(&token.secret_hash);
                }
                None => return Err(CodedError::not_found("join token", accessor)),
            },
            AccessOp::SetNodeCertificate { name, serial, not_after, join_secret_hash, hostgroups, now } => {
                let previous = self.node_certificates.get(name).cloned();
                match join_secret_hash {
                    Some(hash) => {
                        let Some(accessor) = self.join_by_hash.get(hash).cloned() else {
                            return Err(CodedError::new(
                                ErrorCode::Forbidden,
                                "the join token is not known (deleted?)",
                            ));
                        };
                        let Some(token) = self.join_tokens.get_mut(&accessor) else {
                            return Err(CodedError::new(ErrorCode::Forbidden, "the join token is not known"));
                        };
                        if token.role != JoinRole::Agent {
                            return Err(CodedError::new(
                                ErrorCode::Forbidden,
                                "this join token enrols servers, not agents",
                            ));
                        }
                        if let Some(reason) = token.refusal(*now) {
                            return Err(CodedError::new(ErrorCode::Forbidden, reason));
                        }
                        if previous.is_some() {
                            return Err(CodedError::new(ErrorCode::Conflict, enrolled_already(name)));
                        }
                        token.uses += 1;
                        self.revoked_nodes.remove(name);
                        self.node_certificates.insert(
                            name.clone(),
                            NodeCertificate {
                                serial: serial.clone(),
                                previous_serial: None,
                                not_after: *not_after,
                                issued_at: *now,
                                hostgroups: hostgroups.clone(),
                            },
                        );
                    }
                    None => {
                        let Some(previous) = previous else {
                            return Err(CodedError::new(
                                ErrorCode::Forbidden,
                                format!("node {name} is not enrolled; it cannot renew a certificate"),
                            ));
                        };
                        if let Some(at) = self.revoked_nodes.get(name) {
                            return Err(CodedError::new(
                                ErrorCode::Forbidden,
                                format!("node {name} was revoked at {at}"),
                            ));
                        }
                        self.node_certificates.insert(
                            name.clone(),
                            NodeCertificate {
                                serial: serial.clone(),
                                previous_serial: Some(previous.serial),
                                not_after: *not_after,
                                issued_at: *now,
                                hostgroups: previous.hostgroups,
                            },
                        );
                    }
                }
            }
            AccessOp::UseServerJoinToken { secret_hash, now } => {
                let token = self
                    .join_by_hash
                    .get(secret_hash)
                    .cloned()
                    .and_then(|accessor| self.join_tokens.get_mut(&accessor));
                let Some(token) = token else {
                    return Err(CodedError::new(ErrorCode::Forbidden, "the join token is not known (deleted?)"));
                };
                if token.role != JoinRole::Server {
                    return Err(CodedError::new(ErrorCode::Forbidden, "this join token enrols agents, not servers"));
                }
                if let Some(reason) = token.refusal(*now) {
                    return Err(CodedError::new(ErrorCode::Forbidden, reason));
                }
                token.uses += 1;
            }
            AccessOp::RevokeNode { name, now } => {
                self.node_certificates.remove(name);
                self.revoked_nodes.insert(name.clone(), *now);
            }
            AccessOp::RecordAudit { events } => {
                for event in events {
                    self.audit.push_back(event.clone());
                }
                while self.audit.len() > AUDIT_EVENTS_KEPT {
                    self.audit.pop_front();
                }
                // The audit log is not a security table: no cache to rebuild.
                return Ok(());
            }
            AccessOp::PruneAudit { before } => {
                while self.audit.front().is_some_and(|event| event.at < *before) {
                    self.audit.pop_front();
                }
                return Ok(());
            }
        }
        self.index = index;
        Ok(())
    }

    fn insert_token(&mut self, token: AclToken) -> Result<(), CodedError> {
        if let Some(existing) = self.tokens_by_hash.get(&token.secret_hash)
            && *existing != token.accessor
        {
            return Err(CodedError::new(ErrorCode::Conflict, "a token with this secret already exists"));
        }
        if let Some(previous) = self.tokens.get(&token.accessor) {
            self.tokens_by_hash.remove(&previous.secret_hash);
        }
        self.tokens_by_hash.insert(token.secret_hash.clone(), token.accessor.clone());
        self.tokens.insert(token.accessor.clone(), token);
        Ok(())
    }
}
