//! The processors: pure decision cores and the exactly-once runtime that drives them.
//!
//! Each core (matcher, timekeeper, ledger) is a deterministic `apply(state, input) -> outputs`
//! with no clock and no I/O, so replays, audits and property tests see exactly what production
//! saw. The runtime around the cores does the Kafka transactions, state stores and time keeping.
