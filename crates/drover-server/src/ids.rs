//! Fresh ids, chosen before a command is proposed (never inside `apply`).

use drover_types::EvalId;

/// A new random evaluation id.
pub(crate) fn new_eval_id() -> EvalId {
    EvalId::new(uuid::Uuid::new_v4().to_string())
}
