//! `tessera.deliveries`, keyed by subscriber id: each subscriber's inbox of assembled credentials.
//! Delivery is at least once; subscribers deduplicate by credential id.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::SealedBox;

/// A released credential, assembled with everything its recipient needs to open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct CredentialDelivered {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The release this delivers.
    pub credential_id: String,
    /// The offer.
    pub offer_id: String,
    /// The recipient; also the record key.
    pub subscriber_id: String,
    /// The encrypted, compressed target data.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub package: Vec<u8>,
    /// The platform half of the data key, sealed to the recipient.
    pub platform_half: SealedBox,
    /// The provider half of the data key, sealed to the recipient.
    pub provider_half: SealedBox,
    /// How many delivery attempts it took (1 for the first).
    pub attempts: i32,
    /// The offer's provider, as its offer named it.
    #[serde(default)]
    #[avro(default = "\"\"")]
    pub provider_id: String,
    /// The verifying key the offer carried (32 bytes), which signed the offer and its package.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub provider_signing_key: Vec<u8>,
    /// The provider's signature over the offer id and the package, as the offer carried it: the
    /// recipient checks it before opening, so a package sealed by anyone else does not pass as
    /// the provider's.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub package_signature: Vec<u8>,
}

/// A credential could not be delivered within the retry budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct DeliveryFailed {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The release that was not delivered.
    pub credential_id: String,
    /// The offer.
    pub offer_id: String,
    /// The intended recipient; also the record key.
    pub subscriber_id: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error, as a sentence.
    pub reason: String,
}
