//! A processor task's state on RocksDB.
//!
//! A processor folds its input events into state (offers, invitations, verdicts so far) that must
//! survive a crash without replaying the whole log. Cores see state only through
//! [`tessera_state::State`]; the runtime gives them a [`TaskStore`]: RocksDB, one per task, which
//! keeps the input offsets the state reflects ([`Checkpoint`]) in the same atomic write as the
//! state itself. The runtime mirrors every committed change to a compacted changelog topic and
//! rebuilds a store from it when the local copy is missing or stale.

mod checkpoint;
mod task_store;

pub use checkpoint::Checkpoint;
pub use task_store::{StoreError, TaskStore};
