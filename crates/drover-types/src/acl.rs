//! Access control as data: policies, ACL tokens, join tokens and audit
//! events, as the replicated state keeps them.
//!
//! A policy is a list of rules; each rule grants capabilities in one
//! scope, narrowed by a glob where the scope has one (host groups for
//! nodes and logs, job names, variable paths). Secrets are never kept:
//! tokens carry the SHA-256 of their secret, hex-encoded. Parsing policy
//! files, compiling globs and deciding requests is `drover-acl`'s work;
//! these types only name things.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Where a rule applies. The glob a rule carries (if any) is matched
/// against the host group of a node (`Node`, `Logs`), the name of a job
/// (`Job`) or the path of a variable (`Variables`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclScope {
    /// Nodes, by host group.
    Node,
    /// Jobs and their allocations, evaluations and deployments, by job name.
    Job,
    /// Indexed log lines, by the host group of the node they came from.
    Logs,
    /// The site definition: alerts, hammers, notifiers, providers.
    Site,
    /// Variables, by path.
    Variables,
    /// The servers themselves: membership, snapshots, Raft.
    Operator,
    /// Tokens, policies, join tokens and the audit log.
    Acl,
}

impl AclScope {
    /// Every scope, in the order documentation lists them.
    pub const ALL: [AclScope; 7] = [
        AclScope::Node,
        AclScope::Job,
        AclScope::Logs,
        AclScope::Site,
        AclScope::Variables,
        AclScope::Operator,
        AclScope::Acl,
    ];

    /// The block name in a policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            AclScope::Node => "node",
            AclScope::Job => "job",
            AclScope::Logs => "logs",
            AclScope::Site => "site",
            AclScope::Variables => "variables",
            AclScope::Operator => "operator",
            AclScope::Acl => "acl",
        }
    }

    /// The attribute naming the rule's glob, for scopes that have one.
    pub fn pattern_attribute(self) -> Option<&'static str> {
        match self {
            AclScope::Node | AclScope::Logs => Some("hostgroup"),
            AclScope::Job => Some("name"),
            AclScope::Variables => Some("path"),
            AclScope::Site | AclScope::Operator | AclScope::Acl => None,
        }
    }

    /// The capabilities a rule of this scope may grant.
    pub fn capabilities(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            AclScope::Node => &[Read, Update, Drain, Protect, Exec, ExecAsRoot],
            AclScope::Job => &[Read, Submit, Stop],
            AclScope::Logs => &[Read],
            AclScope::Site => &[Read, Apply, HammerApprove],
            AclScope::Variables => &[Read, Write],
            AclScope::Operator => &[Read, Write],
            AclScope::Acl => &[Read, Write],
        }
    }
}

impl fmt::Display for AclScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What a rule grants within its scope (the closed list; which scope
/// takes which is [`AclScope::capabilities`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// See it.
    Read,
    /// Register, plan, revert and promote jobs.
    Submit,
    /// Stop jobs.
    Stop,
    /// Change a node's labels and eligibility.
    Update,
    /// Drain a node.
    Drain,
    /// Protect and unprotect a node.
    Protect,
    /// Run commands on a node as another user than root (`drover exec -u USER`).
    Exec,
    /// Run commands on a node as root.
    ExecAsRoot,
    /// Apply a site definition, silence and acknowledge alerts.
    Apply,
    /// Approve or deny a hammer run.
    HammerApprove,
    /// Change it (variables, servers, tokens and policies).
    Write,
}

impl Capability {
    /// The spelling in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Submit => "submit",
            Capability::Stop => "stop",
            Capability::Update => "update",
            Capability::Drain => "drain",
            Capability::Protect => "protect",
            Capability::Exec => "exec",
            Capability::ExecAsRoot => "exec-as-root",
            Capability::Apply => "apply",
            Capability::HammerApprove => "hammer-approve",
            Capability::Write => "write",
        }
    }

    /// Every capability.
    pub const ALL: [Capability; 11] = [
        Capability::Read,
        Capability::Submit,
        Capability::Stop,
        Capability::Update,
        Capability::Drain,
        Capability::Protect,
        Capability::Exec,
        Capability::ExecAsRoot,
        Capability::Apply,
        Capability::HammerApprove,
        Capability::Write,
    ];
}

impl fmt::Display for Capability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One rule of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRule {
    /// Where it applies.
    pub scope: AclScope,
    /// The glob narrowing it (`None` for scopes without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What it grants, each one valid for the scope.
    pub capabilities: Vec<Capability>,
}

/// A named set of rules, as applied with `drover acl policy apply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclPolicy {
    /// The policy's name (what tokens refer to).
    pub name: String,
    /// An optional line for listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The rules, in file order.
    pub rules: Vec<AclRule>,
    /// The policy file as it was applied.
    pub source: String,
    /// When it was last applied.
    pub modified_at: Timestamp,
}

/// The name of the policy that unauthenticated requests are given.
pub const ANONYMOUS_POLICY: &str = "anonymous";

/// An ACL token: who a request is, and what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclToken {
    /// The public id, shown in listings and audit events.
    pub accessor: String,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_hash: String,
    /// Who holds it (a person or a service).
    pub name: String,
    /// The policies it carries.
    #[serde(default)]
    pub policies: Vec<String>,
    /// A management token may do everything.
    #[serde(default)]
    pub management: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl AclToken {
    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|expiry| expiry <= now)
    }
}

/// What a join token lets its holder become.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinRole {
    /// An agent: a node certificate for its name.
    Agent,
    /// A server: the cluster CA and a server certificate.
    Server,
}

/// A join token (`drover node join-token create`): single-purpose, with a
/// lifetime, an optional number of uses and the host groups an enrolled
/// node may claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// The public id.
    pub accessor: String,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_hash: String,
    /// What it enrols.
    pub role: JoinRole,
    /// Globs of the host groups an enrolled node may claim (any when empty).
    #[serde(default)]
    pub hostgroups: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// How many enrolments it allows (unlimited when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// How many it has been used for.
    #[serde(default)]
    pub uses: u32,
    /// Who created it (token name).
    #[serde(default)]
    pub created_by: String,
}

impl JoinToken {
    /// Why the token cannot enrol one more machine at `now`, if it cannot.
    pub fn refusal(&self, now: Timestamp) -> Option<String> {
        if self.expires_at <= now {
            return Some(format!("the join token {} expired at {}", self.accessor, self.expires_at));
        }
        if let Some(max) = self.max_uses
            && self.uses >= max
        {
            return Some(format!("the join token {} is used up ({max} of {max} uses)", self.accessor));
        }
        None
    }
}

/// How an audited request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum AuditOutcome {
    /// It was done.
    Ok,
    /// The caller was not allowed, or was not who it claimed to be.
    Refused(String),
    /// It was allowed but failed (bad input, unavailable).
    Failed(String),
}

impl AuditOutcome {
    /// `ok`, `refused` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Refused(_) => "refused",
            AuditOutcome::Failed(_) => "failed",
        }
    }
}

/// One audited action: every write, and every refused request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When the server received it.
    pub at: Timestamp,
    /// The token's accessor (`None` for anonymous callers and certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessor: Option<String>,
    /// Who: the token's name, `anonymous`, `node:NAME` or `server:ID`.
    pub name: String,
    /// What, as `area.verb`: `job.register`, `node.drain`, `exec.run`, `acl.token.create`.
    pub action: String,
    /// On what: a job name, node names, a policy name.
    pub target: String,
    /// Anything else worth keeping (the command of an exec, a site diff summary).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The address the request came from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Set when the event was committed with the request's write and may
    /// be completed by a second event with the same id (0: neither).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub request_id: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}
