//! The processors: pure decision cores and the runtime that drives them.
//!
//! Each core (matcher, timekeeper, ledger) is a deterministic [`Core::apply`]: state and one input
//! in, outputs out, with no clock and no I/O, so replays, audits and property tests see exactly
//! what production saw. Around the cores, [`merge`] puts a task's input partitions into the one
//! order that depends only on their contents, and [`replay`] drives a core over that order in
//! memory; the Kafka runtime does the same inside transactions.

pub mod core;
pub mod counter;
pub mod delivery;
pub mod ledger;
pub mod matcher;
pub mod merge;
mod outputs;
pub mod replay;
pub mod runtime;
#[cfg(test)]
mod testing;
pub mod timekeeper;
pub mod timers;

pub use crate::core::{Core, Input, Output, Position};
