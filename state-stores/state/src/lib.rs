//! The state a processor core folds its events into, as the core sees it.
//!
//! Cores read and write their task's state only through the [`State`] trait, typed by
//! [`Table`]s, so the same core runs on the in-memory [`MemoryState`] (property tests, audits,
//! replays) and on the runtime's RocksDB store (`tessera-task-store`), which keeps its writes
//! until the Kafka transaction that carries them commits. This crate holds no storage engine, so
//! a crate of pure cores can depend on it.

mod state;
mod table;

pub use state::{MemoryState, State};
pub use table::Table;
