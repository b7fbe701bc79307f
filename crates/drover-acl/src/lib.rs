//! Access control: reading policy files, deciding requests, and the
//! secrets of ACL and join tokens.
//!
//! The data (policies, tokens, join tokens, audit events) lives in
//! [`drover_types::acl`], as the replicated state keeps it. This crate is
//! the logic around it, with no I/O and no clock:
//!
//! - [`policy`]: [`parse_policy`] reads a policy file into rules, reporting
//!   every problem at once with its file, line and column;
//!   [`check_policy_name`] checks the name a policy is applied under.
//! - [`permissions`]: [`Permissions`] is what a token may do, compiled once
//!   from its policies (globs included); [`Permissions::allows`] decides a
//!   request and [`Permissions::missing`] words the refusal. The module
//!   documentation holds the table of scopes and capabilities.
//! - [`secret`]: new secrets and accessors, their SHA-256 (the only form in
//!   which a secret is stored), a constant-time comparison, and the text of
//!   a join token (`drover1.<CA hash>.<secret>`).
//!
//! Nothing here panics on any input, and no error message repeats a
//! secret.

pub mod permissions;
pub mod policy;
pub mod secret;

pub use drover_hcl::{Diagnostic, Diagnostics};
pub use permissions::Permissions;
pub use policy::{
    MAX_DESCRIPTION_CHARS, MAX_GLOB_CHARS, MAX_POLICY_NAME_CHARS, ParsedPolicy, check_policy_name, format_rule,
    parse_policy,
};
pub use secret::{
    JOIN_TOKEN_PREFIX, JoinTokenText, SECRET_HEX_CHARS, check_secret_shape, hash_secret, new_accessor, new_secret,
    secret_matches, sha256_hex,
};
