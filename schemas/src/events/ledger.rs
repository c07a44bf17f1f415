//! `tessera.ledger`, keyed by provider id: the providers' "value-added data", credited once per
//! accepted credential.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// A provider is credited the offer's reward for one accepted credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct RewardCredited {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The credited provider; also the record key.
    pub provider_id: String,
    /// The offer the reward belongs to.
    pub offer_id: String,
    /// The accepted credential; a credential is credited at most once.
    pub credential_id: String,
    /// Amount credited, in minor units.
    pub amount: i64,
    /// Unit of the amount.
    pub currency: String,
    /// The provider's balance in this currency after the credit, in minor units.
    pub balance: i64,
}
