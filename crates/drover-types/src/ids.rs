//! Identifier newtypes, so that a node id is never passed where a job id is
//! expected.
//!
//! Ids are chosen by whoever creates the object *before* it is proposed to
//! Raft (see the state machine's determinism rule), so this crate only wraps
//! strings and never generates them.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an existing id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The first eight characters: what tables show, and what a user
            /// types as a prefix.
            pub fn short(&self) -> &str {
                let end = self.0.char_indices().nth(8).map_or(self.0.len(), |(index, _)| index);
                &self.0[..end]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A job's id: the label of its `job "…"` block.
    JobId
);
string_id!(
    /// A node's id: a random UUID chosen by the agent on its first start and
    /// kept in its data directory, so a node keeps its identity across
    /// restarts and renames.
    NodeId
);
string_id!(
    /// An allocation's id (a UUID).
    AllocId
);
string_id!(
    /// An evaluation's id (a UUID).
    EvalId
);
string_id!(
    /// A deployment's id (a UUID).
    DeploymentId
);
