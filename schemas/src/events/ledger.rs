//! `tessera.ledger`, keyed by provider id: the providers' "value-added data", credited once per
//! accepted credential. And `tessera.ledger-credits`, the ledger's internal repartition topic:
//! outcomes are keyed by offer id but balances by provider, so the rewards an offer's outcomes
//! earn are re-keyed by provider there before they are credited.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::{Link, LogPosition};

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
    /// Its place in the ledger task's chain of credits.
    pub link: Link,
}

/// An accepted credential earned its offer's reward for the provider; the ledger credits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct RewardDue {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The provider to credit; also the record key.
    pub provider_id: String,
    /// The offer the reward belongs to.
    pub offer_id: String,
    /// The accepted credential; a credential earns at most one reward.
    pub credential_id: String,
    /// The recipient who accepted it.
    pub subscriber_id: String,
    /// Amount to credit, in minor units. Positive.
    pub amount: i64,
    /// Unit of the amount.
    pub currency: String,
    /// Where the acceptance sat in `tessera.outcomes` and its receipt stamp.
    pub accepted: LogPosition,
}
