//! The client side of tessera: what providers, subscribers, auditors and load generators run.
//!
//! They only write events to, and read events from, tessera's topics through the shared contract;
//! none of them calls a processor directly.

pub mod agent;
pub mod audit;
pub mod client;
pub mod describe;
pub mod interest;
pub mod keys;
pub mod provider;
pub mod receipt;
pub mod status;
pub mod subscriber;
pub mod webhooks;
pub mod when;
