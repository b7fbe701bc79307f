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

/// How far back a completed audit event looks for the one committed with
/// its request's write (see [`crate::Command::Audited`]).
const COMPLETION_WINDOW: usize = 10_000;

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
    /// `drover operator tls rotate-ca`: a new cluster CA, trusted with the
    /// old one until every certificate is reissued. Refused while another
    /// rotation is in progress. Carries certificates only: the new CA's key
    /// stays in the servers' data directories.
    StartCaRotation {
        /// The rotation, with no progress yet.
        rotation: CaRotation,
    },
    /// A step of a server or a node in the rotation of the CA
    /// `new_fingerprint` (refused when that is not the rotation in progress).
    CaRotationProgress {
        /// SHA-256 of the new CA certificate.
        new_fingerprint: String,
        /// What happened.
        step: CaRotationStep,
    },
    /// `drover operator tls rotate-ca --finish`: the old CA is dropped and
    /// the new one is the cluster's CA.
    FinishCaRotation {
        /// SHA-256 of the new CA certificate (the rotation being finished).
        new_fingerprint: String,
    },
}

/// A rotation of the cluster CA in progress.
///
/// ```text
///  started ──every server trusts both──▶ servers issue with the new CA,
///     (all trust old + new)              agents renew at once
///                                        ──every live certificate reissued──▶ finish:
///                                                                 only the new CA is trusted
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRotation {
    /// The CA being replaced (PEM certificate).
    pub old_ca: String,
    /// SHA-256 of its certificate.
    pub old_fingerprint: String,
    /// The new CA (PEM certificate).
    pub new_ca: String,
    /// SHA-256 of its certificate.
    pub new_fingerprint: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Who started it (the token's name).
    pub started_by: String,
    /// Servers (by id) that trust the new CA.
    #[serde(default)]
    pub trusting_servers: std::collections::BTreeSet<u64>,
    /// Servers (by id) whose own certificate the new CA issued.
    #[serde(default)]
    pub reissued_servers: std::collections::BTreeSet<u64>,
    /// Nodes holding a certificate of the new CA: name → that certificate's serial.
    #[serde(default)]
    pub reissued_nodes: std::collections::BTreeMap<String, String>,
}

impl CaRotation {
    /// Whether node `name`'s current certificate is one the new CA issued.
    pub fn node_reissued(&self, name: &str, current: Option<&NodeCertificate>) -> bool {
        match (self.reissued_nodes.get(name), current) {
            (Some(serial), Some(certificate)) => *serial == certificate.serial,
            _ => false,
        }
    }
}

/// One step of a CA rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaRotationStep {
    /// A server trusts the new CA (and the old one).
    ServerTrusts {
        /// Its Raft id.
        server_id: u64,
    },
    /// A server's own certificate was reissued by the new CA.
    ServerReissued {
        /// Its Raft id.
        server_id: u64,
    },
    /// A node's certificate was issued by the new CA.
    NodeReissued {
        /// The node's name.
        name: String,
        /// The certificate's serial, hex.
        serial: String,
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
            AccessOp::StartCaRotation { .. } => "start_ca_rotation",
            AccessOp::CaRotationProgress { .. } => "ca_rotation_progress",
            AccessOp::FinishCaRotation { .. } => "finish_ca_rotation",
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
    /// The rotation of the cluster CA in progress, if one is.
    #[serde(default)]
    ca_rotation: Option<CaRotation>,
    /// The cluster CA certificate (PEM) the last finished rotation made
    /// (`None` before any: each server's `DATA_DIR/tls/ca.pem` says).
    #[serde(default)]
    cluster_ca: Option<String>,
}

/// Why a second rotation of the CA cannot start.
pub fn rotation_in_progress(rotation: &CaRotation) -> String {
    format!(
        "a CA rotation is already in progress (to {}, started {} by {}); finish it first with `drover operator tls rotate-ca --finish` (`drover operator tls status` shows what it waits for)",
        short_fingerprint(&rotation.new_fingerprint),
        rotation.started_at,
        rotation.started_by
    )
}

/// The first 16 hex digits of a fingerprint, as status lines show it.
pub fn short_fingerprint(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
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

    /// The rotation of the cluster CA in progress, if one is.
    pub fn ca_rotation(&self) -> Option<&CaRotation> {
        self.ca_rotation.as_ref()
    }

    /// The cluster CA certificate (PEM) the last finished rotation made.
    pub fn cluster_ca(&self) -> Option<&str> {
        self.cluster_ca.as_deref()
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> &Vector<AuditEvent> {
        &self.audit
    }

    /// Records the event committed with its request's write
    /// ([`crate::Command::Audited`]): the first of its request, so nothing
    /// to replace.
    pub(crate) fn record_audit_with_write(&mut self, event: AuditEvent) {
        self.audit.push_back(event);
        while self.audit.len() > AUDIT_EVENTS_KEPT {
            self.audit.pop_front();
        }
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
                    // The completion of an event committed with its write
                    // replaces it (looked for among the newest only: the
                    // two are a request's duration apart).
                    let earlier = (event.request_id != 0)
                        .then(|| {
                            let back = self
                                .audit
                                .iter()
                                .rev()
                                .take(COMPLETION_WINDOW)
                                .position(|earlier| earlier.request_id == event.request_id)?;
                            Some(self.audit.len() - 1 - back)
                        })
                        .flatten();
                    match earlier {
                        Some(position) => {
                            self.audit.set(position, event.clone());
                        }
                        None => self.audit.push_back(event.clone()),
                    }
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
            AccessOp::StartCaRotation { rotation } => {
                if let Some(current) = &self.ca_rotation {
                    return Err(CodedError::new(ErrorCode::Conflict, rotation_in_progress(current)));
                }
                if rotation.new_fingerprint == rotation.old_fingerprint {
                    return Err(CodedError::invalid("the new CA is the old one"));
                }
                self.ca_rotation = Some(rotation.clone());
            }
            AccessOp::CaRotationProgress { new_fingerprint, step } => {
                let rotation = self.rotation_of(new_fingerprint)?;
                match step {
                    CaRotationStep::ServerTrusts { server_id } => {
                        rotation.trusting_servers.insert(*server_id);
                    }
                    CaRotationStep::ServerReissued { server_id } => {
                        rotation.trusting_servers.insert(*server_id);
                        rotation.reissued_servers.insert(*server_id);
                    }
                    CaRotationStep::NodeReissued { name, serial } => {
                        rotation.reissued_nodes.insert(name.clone(), serial.clone());
                    }
                }
            }
            AccessOp::FinishCaRotation { new_fingerprint } => {
                let new_ca = self.rotation_of(new_fingerprint)?.new_ca.clone();
                self.ca_rotation = None;
                self.cluster_ca = Some(new_ca);
            }
        }
        self.index = index;
        Ok(())
    }

    /// The rotation in progress, if it is the one to `new_fingerprint`.
    fn rotation_of(&mut self, new_fingerprint: &str) -> Result<&mut CaRotation, CodedError> {
        let in_progress = self.ca_rotation.as_ref().map(|rotation| rotation.new_fingerprint.clone());
        match (&mut self.ca_rotation, in_progress) {
            (Some(rotation), Some(current)) if current == new_fingerprint => Ok(rotation),
            (_, Some(current)) => Err(CodedError::new(
                ErrorCode::Conflict,
                format!("the CA rotation in progress is to {}, not {new_fingerprint}", short_fingerprint(&current)),
            )),
            (_, None) => Err(CodedError::new(
                ErrorCode::Conflict,
                "no CA rotation is in progress; start one with `drover operator tls rotate-ca`",
            )),
        }
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

#[cfg(test)]
mod ca_rotation_tests {
    use super::*;

    fn rotation(new_fingerprint: &str) -> CaRotation {
        CaRotation {
            old_ca: "old pem".to_owned(),
            old_fingerprint: "0".repeat(64),
            new_ca: format!("{new_fingerprint} pem"),
            new_fingerprint: new_fingerprint.to_owned(),
            started_at: Timestamp::from_millis(1),
            started_by: "root".to_owned(),
            trusting_servers: Default::default(),
            reissued_servers: Default::default(),
            reissued_nodes: Default::default(),
        }
    }

    fn progress(new_fingerprint: &str, step: CaRotationStep) -> AccessOp {
        AccessOp::CaRotationProgress { new_fingerprint: new_fingerprint.to_owned(), step }
    }

    #[test]
    fn a_rotation_starts_once_records_progress_and_finishes_into_the_cluster_ca() {
        let mut access = AccessState::default();
        let finish_first = access.apply(1, &AccessOp::FinishCaRotation { new_fingerprint: "a".repeat(64) });
        assert!(finish_first.expect_err("nothing to finish").message.contains("no CA rotation is in progress"));

        access.apply(2, &AccessOp::StartCaRotation { rotation: rotation(&"a".repeat(64)) }).expect("start");
        let second = access.apply(3, &AccessOp::StartCaRotation { rotation: rotation(&"b".repeat(64)) });
        let message = second.expect_err("one at a time").message;
        assert!(
            message.contains("already in progress (to aaaaaaaaaaaaaaaa") && message.contains("--finish"),
            "{message}"
        );

        access.apply(4, &progress(&"a".repeat(64), CaRotationStep::ServerTrusts { server_id: 2 })).expect("trusts");
        access.apply(5, &progress(&"a".repeat(64), CaRotationStep::ServerReissued { server_id: 1 })).expect("issued");
        let node = CaRotationStep::NodeReissued { name: "web-1".to_owned(), serial: "ab".to_owned() };
        access.apply(6, &progress(&"a".repeat(64), node)).expect("node");
        let stale = access.apply(7, &progress(&"b".repeat(64), CaRotationStep::ServerTrusts { server_id: 3 }));
        assert!(stale.is_err(), "progress of another rotation is refused");
        let rotation_now = access.ca_rotation().expect("in progress");
        assert_eq!(rotation_now.trusting_servers.iter().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rotation_now.reissued_servers.iter().copied().collect::<Vec<_>>(), [1]);
        assert!(!rotation_now.node_reissued("web-1", None), "a node without a certificate is not reissued");

        let encoded = crate::codec::encode(&access).expect("encode");
        let decoded: AccessState = crate::codec::decode(&encoded).expect("decode");
        assert_eq!(decoded.ca_rotation(), access.ca_rotation(), "the rotation is in snapshots");

        access.apply(8, &AccessOp::FinishCaRotation { new_fingerprint: "a".repeat(64) }).expect("finish");
        assert_eq!(access.ca_rotation(), None);
        assert_eq!(access.cluster_ca(), Some(format!("{} pem", "a".repeat(64)).as_str()));
    }
}
