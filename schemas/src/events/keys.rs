//! `tessera.keys`, keyed by role: the public keys parties seal to, as a compacted table, so a
//! provider or subscriber fetches the timekeeper's (and a subscriber the delivery worker's) current
//! key from the log like everything else.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// A party publishes the public key that others seal to (the timekeeper's: providers seal the
/// platform half to it) and the key its records are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct KeyPublished {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The party's role, e.g. "timekeeper"; also the record key.
    pub role: String,
    /// The HPKE suite the key is used with.
    pub suite: String,
    /// The party's X25519 public key (32 bytes).
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub public_key: Vec<u8>,
    /// The party's Ed25519 verifying key (32 bytes): its records are signed with it, this one
    /// included. Clients pin it by its fingerprint.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub signing_key: Vec<u8>,
}

impl KeyPublished {
    /// The timekeeper's role, and its record key.
    pub const TIMEKEEPER: &'static str = "timekeeper";
    /// The delivery worker's role, and its record key.
    pub const DELIVERY: &'static str = "delivery";
    /// The ledger's role, and its record key.
    pub const LEDGER: &'static str = "ledger";
}
