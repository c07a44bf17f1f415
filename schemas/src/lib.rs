//! The public contract of tessera.
//!
//! Every component talks to every other only through Kafka topics, so this crate is the one place
//! that says what travels on them: the Avro schemas (the `.avsc` files under `schemas/avro/`, which
//! any Kafka client can read), the Rust types that mirror them, the single-object codec that turns
//! one into the other, and the topic catalogue that says which events live on which topic with which
//! configuration. It also holds what every reader must check the same way: signatures and the
//! identity pins they are checked against, the sealing of credentials, the time rules verdicts
//! apply, and the links that chain each task's verdicts.

pub mod avro;
pub mod codec;
pub mod events;
pub mod evolution;
pub mod examples;
pub mod identity;
pub mod links;
pub mod rules;
pub mod sealing;
pub mod signing;
pub mod topics;

pub use codec::{DecodeError, EncodeError, decode, encode};
pub use events::*;
