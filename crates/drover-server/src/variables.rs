//! Variables (Nomad's Variables): writes through Raft, with check-and-set.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_state::Command;
use drover_types::{CodedError, Timestamp, Variable};

use crate::Result;
use crate::server::Server;

impl Server {
    /// Creates or replaces a variable; with `cas`, only if its modify index
    /// is that (0: only if it does not exist). Returns it as stored.
    pub async fn put_variable(
        &self,
        path: &str,
        items: BTreeMap<String, String>,
        cas: Option<u64>,
    ) -> Result<Variable> {
        // Bad input is refused before it reaches the log.
        drover_types::variable::check_new_path(path)?;
        drover_types::variable::check_items(&items)?;
        let command = Command::PutVariable { path: path.to_owned(), items, cas, now: Timestamp::now() };
        let response = self.propose(command).await?.into_result()?;
        let state = self.wait_for_index(response.index(), Duration::from_secs(10)).await?;
        state
            .variable(path)
            .filter(|variable| variable.modify_index >= response.index())
            .map(|variable| Variable::clone(variable))
            .ok_or_else(|| CodedError::conflict(format!("variable {path} was changed again at once; read it")))
    }

    /// Deletes a variable (with `cas`, only if its modify index is that).
    pub async fn delete_variable(&self, path: &str, cas: Option<u64>) -> Result<u64> {
        // Any stored path may be deleted, also one written before dot
        // segments were refused.
        drover_types::variable::check_path(path)?;
        let response = self.propose(Command::DeleteVariable { path: path.to_owned(), cas }).await?.into_result()?;
        Ok(response.index())
    }
}
