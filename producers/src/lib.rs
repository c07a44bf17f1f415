//! The client side of tessera: what providers and subscribers run (publishing, the provider's
//! agent, registering, answering, opening), a subscriber's inbox (`inbox`), their keys, the
//! readers of the log (`status`, `receipt`, `describe`, `watch`), the broker's clock as a client
//! sees it (`clock`), and the Kafka client helpers (`client`) the auditor and the webhook worker
//! share with them.
//!
//! They only write events to, and read events from, tessera's topics through the shared contract;
//! none of them calls a processor directly.

pub mod agent;
pub mod client;
pub mod clock;
pub mod describe;
pub mod inbox;
pub mod interest;
pub mod keys;
pub mod packages;
pub mod provider;
pub mod receipt;
pub mod status;
pub mod subscriber;
pub mod watch;
pub mod when;
