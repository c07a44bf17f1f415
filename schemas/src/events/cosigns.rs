//! `tessera.cosigns`, keyed by offer id: providers' own halves of the data key, released by the
//! provider's device after it sees the timekeeper's release (co-sign custody).

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::SealedBox;

/// The provider seals its half of the data key to a responder the timekeeper released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct ProviderShareReleased {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The release this half answers.
    pub credential_id: String,
    /// The released responder.
    pub subscriber_id: String,
    /// The provider half of the data key, sealed to the responder and bound to offer, responder
    /// and credential id.
    pub provider_half: SealedBox,
}
