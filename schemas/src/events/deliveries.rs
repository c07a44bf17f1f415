//! `tessera.deliveries`, keyed by subscriber id: each subscriber's inbox. It holds the assembled
//! credentials, and notices of everything else the subscriber is told (its invitations, the
//! verdicts on its responses, the ends of its offers, its own decisions), each sealed to the
//! subscriber, so a subscriber reads one partition and learns nothing of anyone else's mail.
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

/// Something the platform tells one subscriber, sealed to it: what was noticed, and where it sat
/// on the log, opens only with the subscriber's key
/// (`tessera_contract::sealing::notices`). Others who read the inbox see only that the
/// subscriber got mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Notice {
    /// Unique id of this event, for deduplication; the sealed box is bound to it.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The recipient; also the record key. The sealed box is bound to it.
    pub subscriber_id: String,
    /// The noticed event and its position on the log, sealed to the recipient's pinned key
    /// (HPKE, `tessera/v1 notice to the subscriber`).
    pub sealed: SealedBox,
}
