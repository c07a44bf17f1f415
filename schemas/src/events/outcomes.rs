//! `tessera.outcomes`, keyed by offer id: what recipients did with their credentials (the source
//! document's step S107).

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// The recipient opened the credential and accepted it; the provider earns the offer's reward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct CredentialAccepted {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The accepted credential.
    pub credential_id: String,
    /// The recipient.
    pub subscriber_id: String,
}

/// The recipient refused the credential; no reward is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct CredentialDeclined {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The declined credential.
    pub credential_id: String,
    /// The recipient.
    pub subscriber_id: String,
    /// Why, if the recipient said.
    pub reason: Option<String>,
}
