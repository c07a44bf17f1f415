//! `tessera.responses`, keyed by offer id: subscribers' answers (the source document's step S104).
//! The broker's receipt stamp of each record is what the time rule is judged on.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// A subscriber answers an invitation and asks for the credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct ResponseSubmitted {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The invitation being answered.
    pub request_id: String,
    /// The responding subscriber. The record is signed with the key pinned for it (the
    /// `tessera.signature` header), which proves the sender holds the subscriber's key.
    pub subscriber_id: String,
}
