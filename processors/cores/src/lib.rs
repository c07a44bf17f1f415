//! The processors' decision logic: pure state machines, and what they share.
//!
//! Each core (the [`matcher`], the [`timekeeper`], the [`delivery`], the ledger's
//! [`ledger::Rewards`] and [`ledger::Ledger`]) is a deterministic [`Core::apply`]: state and one
//! input in, outputs out, with no clock and no I/O, so replays, audits and property tests see
//! exactly what production saw. Around the cores, [`merge`] puts a task's input partitions into
//! the one order that depends only on their contents, and [`replay`] drives a core over that order
//! in memory. This crate depends on no Kafka client, no async runtime and no storage engine: the
//! `tessera-runtime` crate drives the same cores on Kafka inside transactions, over RocksDB.
//!
//! [`registry`] declares every processor once (its cores, topics, state, metrics port and what
//! auditing it needs); `tessera run`, `tessera audit`, the demo, the ACL plan and `tessera topics
//! describe` read it. Its module docs hold the checklist for adding a processor.

pub mod ahead;
pub mod core;
pub mod counter;
pub mod delivery;
pub mod layout;
pub mod ledger;
pub mod matcher;
pub mod merge;
pub mod news;
mod outputs;
mod prelude;
pub mod registry;
pub mod replay;
#[cfg(test)]
mod testing;
pub mod timekeeper;
pub mod timers;

pub use crate::core::{Core, Emission, Emitted, Input, Output, Position, Raw};
