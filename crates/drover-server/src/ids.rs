//! Fresh ids, chosen before a command is proposed (never inside `apply`).

use drover_types::EvalId;

/// A new random evaluation id.
pub(crate) fn new_eval_id() -> EvalId {
    EvalId::new(uuid::Uuid::new_v4().to_string())
}

/// A new random id of 8 hex digits, for things humans type (silences).
pub(crate) fn new_short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}
