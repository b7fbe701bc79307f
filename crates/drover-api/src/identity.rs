//! Who is calling: the one place every handler gets the caller's identity.
//!
//! Today every caller is anonymous with every capability (dev mode and
//! trusted networks). Tokens and mutual TLS plug in here — in
//! [`Caller::from_request_parts`] — without touching any handler, because
//! handlers only ever ask `caller.require(Capability::…)`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use drover_types::{CodedError, ErrorCode};

use crate::error::ApiError;

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Read jobs, nodes, allocations, evaluations.
    Read,
    /// Register, plan and stop jobs.
    SubmitJob,
    /// Read task output.
    ReadLogs,
    /// Change nodes (drain, eligibility, labels).
    WriteNode,
    /// Run commands on nodes.
    Exec,
    /// Change the servers themselves: membership, snapshots.
    Operator,
    /// Create, change and delete variables.
    WriteVariables,
    /// Server-to-server and agent-to-server traffic.
    Internal,
}

/// The identity of a request's caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// A name for audit records (`anonymous` without tokens).
    pub name: String,
    capabilities: Vec<Capability>,
}

impl Caller {
    /// The anonymous caller of a cluster without access control.
    pub fn anonymous() -> Self {
        Caller {
            name: "anonymous".to_owned(),
            capabilities: vec![
                Capability::Read,
                Capability::SubmitJob,
                Capability::ReadLogs,
                Capability::WriteNode,
                Capability::Exec,
                Capability::Operator,
                Capability::WriteVariables,
                Capability::Internal,
            ],
        }
    }

    /// `Ok` when the caller holds `capability`, else a `forbidden` error.
    pub fn require(&self, capability: Capability) -> Result<(), ApiError> {
        if self.capabilities.contains(&capability) {
            Ok(())
        } else {
            Err(ApiError(CodedError::new(
                ErrorCode::Forbidden,
                format!("{} may not do this ({capability:?} is required)", self.name),
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut caller = Caller::anonymous();
        if let Some(claimed) = parts.headers.get(drover_proto::api::USER_HEADER).and_then(|value| value.to_str().ok()) {
            let claimed: String = claimed.chars().filter(|c| !c.is_control()).take(128).collect();
            if !claimed.trim().is_empty() {
                caller.name = claimed.trim().to_owned();
            }
        }
        Ok(caller)
    }
}
