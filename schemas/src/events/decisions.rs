//! `tessera.decisions`, keyed by offer id: the timekeeper's verdicts (the source document's steps
//! S105-S106). Every response gets exactly one verdict; each carries the evidence to check it.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::{Link, LogPosition, OfferTerms, SealedBox};

/// The response met the time rule: the platform's half of the data key is released to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct CredentialReleased {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// Identifies this release; the delivered credential, its outcome and any reward name it.
    pub credential_id: String,
    /// The released responder.
    pub subscriber_id: String,
    /// The responder's pinned Ed25519 verifying key (32 bytes), which signed the response: its
    /// outcome must be signed with it too.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub subscriber_signing_key: Vec<u8>,
    /// The invitation that was answered.
    pub request_id: String,
    /// The response: where it sat in the log and its receipt stamp.
    pub response: LogPosition,
    /// The offer the response was judged against, and its rule.
    pub offer: OfferTerms,
    /// The platform half of the data key, re-sealed to the responder's registered public key and
    /// bound to offer, responder and credential id.
    pub platform_half: SealedBox,
    /// Escrow mode only: the provider half, re-sealed to the responder the same way.
    pub provider_half: Option<SealedBox>,
    /// Its place in the timekeeper task's chain of verdicts.
    pub link: Link,
}

/// Why a response was not released.
///
/// - `TooEarly`: Received before a window opened.
/// - `TooLate`: Received after the deadline, the window or the duration.
/// - `NotInvited`: The responder was never invited to this offer.
/// - `UnknownOffer`: No such offer appeared on the log by the time the response was judged.
/// - `CapacityReached`: The offer's capacity was already taken by earlier responses.
/// - `Duplicate`: The responder already responded to this offer.
/// - `Withdrawn`: The provider withdrew the offer before the response.
/// - `InvalidOffer`: The offer itself was invalid and was rejected.
/// - `Forged`: The response is not signed by the key pinned for the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
#[allow(
    missing_docs,
    reason = "the doc above names every variant: it is the Avro schema's doc"
)]
pub enum RejectReason {
    TooEarly,
    TooLate,
    NotInvited,
    UnknownOffer,
    CapacityReached,
    Duplicate,
    Withdrawn,
    InvalidOffer,
    Forged,
}

/// The response was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct ResponseRejected {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The responder.
    pub subscriber_id: String,
    /// The invitation the response named.
    pub request_id: String,
    /// Why it was refused.
    pub reason: RejectReason,
    /// The response: where it sat in the log and its receipt stamp.
    pub response: LogPosition,
    /// The offer the response was judged against, and its rule, when an offer is known.
    pub offer: Option<OfferTerms>,
    /// A sentence a person can read, e.g. "received 09:05:00.120Z, deadline 09:00:00Z".
    pub detail: String,
    /// Its place in the timekeeper task's chain of verdicts.
    pub link: Link,
}

/// Why an offer was refused.
///
/// - `EmptyIdentifier`: The identifier is empty.
/// - `WindowEndsBeforeStart`: A window ends before it starts.
/// - `NonPositiveDuration`: A duration is zero or negative.
/// - `AlreadyEnded`: The deadline or window end had passed when the offer was received.
/// - `NonPositiveCapacity`: Capacity is zero or negative.
/// - `NonPositiveReward`: The reward amount is zero or negative.
/// - `BadCredential`: The credential cannot be used (e.g. missing halves).
/// - `DuplicateOffer`: An offer with this id was already published.
/// - `Unauthenticated`: The offer is not signed with the provider key it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
#[allow(
    missing_docs,
    reason = "the doc above names every variant: it is the Avro schema's doc"
)]
pub enum OfferProblem {
    EmptyIdentifier,
    WindowEndsBeforeStart,
    NonPositiveDuration,
    AlreadyEnded,
    NonPositiveCapacity,
    NonPositiveReward,
    BadCredential,
    DuplicateOffer,
    Unauthenticated,
}

/// An offer broke a rule; it takes no part in any interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct OfferRejected {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The provider that published it.
    pub provider_id: String,
    /// What is wrong with it.
    pub problem: OfferProblem,
    /// Where the offer sat in the log and its receipt stamp.
    pub offer: LogPosition,
    /// A sentence a person can read.
    pub detail: String,
    /// Its place in the timekeeper task's chain of verdicts.
    pub link: Link,
}

/// The offer's rule has ended on every input's stream time: no further response can be released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct OfferClosed {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The offer; also the record key.
    pub offer_id: String,
    /// The offer and the rule that ended.
    pub offer: OfferTerms,
    /// The stream time at which the offer closed (the receipt stamp that moved it past the rule).
    #[avro(with = crate::avro::timestamp_millis)]
    pub closed_at: i64,
    /// Invitations sent.
    pub requested: i32,
    /// Responses judged.
    pub responded: i32,
    /// Responses released.
    pub released: i32,
    /// Responses rejected.
    pub rejected: i32,
    /// Whether the provider withdrew the offer.
    pub withdrawn: bool,
    /// Its place in the timekeeper task's chain of verdicts.
    pub link: Link,
}
