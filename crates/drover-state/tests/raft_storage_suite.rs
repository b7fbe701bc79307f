//! openraft's own storage conformance suite, run against drover's redb log
//! store and state machine (docs/dev/style.md, convention 4).

use drover_state::{LogStore, StateMachineStore, TypeConfig};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (log_store, state_machine, _receiver) = drover_state::open_storage(directory.path(), Default::default())
            .expect("open storage in a fresh directory");
        Ok((directory, log_store, state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_storage_passes_the_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RedbStoreBuilder).await
}
