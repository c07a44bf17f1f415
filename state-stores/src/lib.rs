//! Local state for processor tasks.
//!
//! A processor folds its input events into state (offers, invitations, verdicts so far) that must
//! survive a crash without replaying the whole log. Cores see state only through the [`State`]
//! trait, so they run unchanged on an in-memory map (tests, audits) or on a [`TaskStore`]: RocksDB,
//! one per task, which keeps the input offsets the state reflects ([`Checkpoint`]) in the same
//! atomic write as the state itself. The runtime mirrors every committed change to a compacted
//! changelog topic and rebuilds a store from it when the local copy is missing or stale.

mod checkpoint;
mod state;
mod table;
mod task_store;

pub use checkpoint::Checkpoint;
pub use state::{MemoryState, State};
pub use table::Table;
pub use task_store::{StoreError, TaskStore};
