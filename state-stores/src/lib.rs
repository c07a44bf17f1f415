//! Local state for processor tasks.
//!
//! A processor folds its input events into state (offers, invitations, verdicts so far) that must
//! survive a crash without replaying the whole log. This crate keeps that state in RocksDB, keyed
//! per task, together with the input offsets it reflects, and knows how to rebuild it from a
//! compacted changelog topic when the local copy is missing or stale.
