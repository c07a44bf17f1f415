//! `tessera.offers`, keyed by offer id: what providers put in front of parties (the source
//! document's step S101), stamped by the broker on receipt.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::{Recommendation, SealedCredential, TimeRule};

/// A provider offers target data to whoever matches and answers in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct OfferPublished {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The provider (the source document's first terminal); credited rewards go to it.
    pub provider_id: String,
    /// The provider's Ed25519 verifying key (32 bytes). The offer is signed with it, and so must
    /// be its withdrawal and every co-sign of its credential.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub signing_key: Vec<u8>,
    /// The provider's signature over the offer id and the package's SHA-256
    /// (`tessera_contract::identity::package_signed`): it travels with the package to each
    /// recipient, who checks that the document it opens is the provider's.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub package_signature: Vec<u8>,
    /// An endorsement of the provider id and `signing_key`
    /// (`tessera_contract::identity::provider`), by the key pinned for the provider (a key
    /// rotation) or by the operator's trust anchor (a first offer where the installation vouches
    /// for parties, or a lost key replaced); absent otherwise.
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    #[avro(with, default = "null")]
    pub provider_endorsement: Option<Vec<u8>>,
    /// How responders can reach the provider; forwarded in each interaction request.
    pub provider_contact: String,
    /// What is offered, for matching and for the parties' decision.
    pub recommendation: Recommendation,
    /// When responses count, judged by their broker receipt stamps.
    pub time_rule: TimeRule,
    /// At most this many responders are released, first by receipt order; absent means no limit.
    pub capacity: Option<i32>,
    /// Credited to the provider for each accepted credential.
    pub reward: Option<Reward>,
    /// How long a recipient has to accept its credential and still earn the provider the reward:
    /// milliseconds after the release, judged by the broker's receipt stamps of the release and
    /// of the acceptance. An acceptance later than that earns nothing; absent means no limit.
    #[serde(default)]
    #[avro(default = "null")]
    pub decide_within: Option<i64>,
    /// The sealed target data and the platform's share of its key.
    pub credential: SealedCredential,
    /// Whether a subscriber that registers, or adds an interest, while the offer is open is
    /// invited too (a late invitation), rather than only those registered when it arrives. False
    /// in records written before the field existed, so a replay of them invites no one late.
    #[serde(default)]
    #[avro(default = "false")]
    pub invite_late: bool,
}

/// The source document's "value-added data": an amount in minor units of a currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Reward {
    /// Amount in minor units (e.g. cents). Positive.
    pub amount: i64,
    /// ISO 4217 code or any unit the platform agrees on, e.g. "EUR" or "points".
    pub currency: String,
}

/// The provider takes the offer back: later responses are rejected with reason Withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct OfferWithdrawn {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The provider; must match the offer's provider to take effect.
    pub provider_id: String,
    /// Free-text reason shown to parties.
    pub reason: Option<String>,
}
