//! `tessera.requests`, keyed by offer id: the matcher's invitations (the source document's step
//! S103), one per matching subscriber.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::{OfferTerms, Recommendation};

/// An invitation to one subscriber to respond to an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct InteractionRequested {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// Identifies this invitation; a response names it. Derived from offer and subscriber, so a
    /// replay produces the same id.
    pub request_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The invited subscriber.
    pub subscriber_id: String,
    /// The invited subscriber's pinned HPKE X25519 public key (32 bytes), as the matcher folded
    /// it from `tessera.subscribers`: the timekeeper seals released halves to it.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub subscriber_key: Vec<u8>,
    /// The invited subscriber's pinned Ed25519 verifying key (32 bytes): the response must be
    /// signed with it.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub subscriber_signing_key: Vec<u8>,
    /// The offer's recommendation information, for the subscriber's decision.
    pub recommendation: Recommendation,
    /// Where the offer sat in the log and its time rule, so the subscriber knows when to answer.
    pub offer: OfferTerms,
    /// The provider's contact details.
    pub provider_contact: String,
    /// The offer's `decide_within`, so the subscriber knows before answering how long it will
    /// have to accept a released credential: milliseconds after the release, by the broker's
    /// receipt stamps; absent means no limit. Subscribers read it here, not on
    /// `tessera.offers`, which only the invited see through their invitations.
    #[serde(default)]
    #[avro(default = "null")]
    pub decide_within: Option<i64>,
}
