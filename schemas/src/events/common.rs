//! Records shared by several events: what an offer is about, when answers count, where a record
//! sat in the log, and an HPKE sealed box.

use std::collections::BTreeMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// What the provider says about the target data, so that parties can be matched to it and decide
/// whether to respond (the source document's "recommendation information").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Recommendation {
    /// The target data's identifier, e.g. a catalogue number or document name. Never empty.
    pub identifier: String,
    /// A human-readable name; its words are matched against subscribers' name terms.
    pub name: String,
    /// Feature information as key/value pairs, e.g. {"colour": "red"}.
    #[avro(with = crate::avro::string_map)]
    pub features: BTreeMap<String, String>,
    /// Concrete numeric parameters as integers, money-like ones in minor units, e.g. {"price": 9900}.
    #[avro(with = crate::avro::long_map)]
    pub parameters: BTreeMap<String, i64>,
}

/// The provider's "preset time": when a response, judged by its broker receipt stamp, counts.
/// Every bound is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera", repr = "bare_union")]
pub enum TimeRule {
    /// Met iff stamp <= at.
    Deadline(Deadline),
    /// Met iff from <= stamp <= to.
    Window(Window),
    /// Met iff stamp - (the offer's own stamp) <= duration.
    Within(Within),
}

/// An instant: responses received at or before it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Deadline {
    /// The deadline, inclusive.
    #[avro(with = crate::avro::timestamp_millis)]
    pub at: i64,
}

/// An interval: responses received between both ends, inclusive, count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Window {
    /// Start of the window, inclusive.
    #[avro(with = crate::avro::timestamp_millis)]
    pub from: i64,
    /// End of the window, inclusive.
    #[avro(with = crate::avro::timestamp_millis)]
    pub to: i64,
}

/// A duration counted from the offer's receipt stamp (the source document's "first time").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Within {
    /// Milliseconds after the offer's stamp during which responses count, inclusive. Positive.
    pub duration_ms: i64,
}

/// Where a record sits in the log and when the broker received it: the evidence a party needs to
/// check a decision without trusting the platform's word.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct LogPosition {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition the record was read from.
    pub partition: i32,
    /// Offset of the record in that partition.
    pub offset: i64,
    /// The broker's receipt stamp (LogAppendTime) of the record.
    #[avro(with = crate::avro::timestamp_millis)]
    pub stamp: i64,
}

/// A verdict's or ledger entry's place in its task's chain (`tessera_contract::links`): each one's
/// digest covers the previous one's and the input that produced it, so a record altered, injected,
/// reordered or left out on the log breaks the chain where it happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Link {
    /// The digest of the previous verdict or entry of the same task; empty for its first.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub previous: Vec<u8>,
    /// The input record that produced this event: its topic (without an installation's prefix),
    /// partition, offset and broker receipt stamp.
    pub source: LogPosition,
    /// SHA-256 of that input record's key and value, as `links::record_digest` writes them.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub input: Vec<u8>,
    /// SHA-256 of this event encoded with this field empty (which covers `previous`, `source`
    /// and `input`), after the tag `tessera/v1 link`.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub digest: Vec<u8>,
}

/// The offer a decision was made against: where it sat in the log (its stamp starts a Within
/// rule) and its time rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct OfferTerms {
    /// Where the offer sat in the log and its receipt stamp.
    pub position: LogPosition,
    /// The offer's time rule.
    pub time_rule: TimeRule,
}

/// An HPKE (RFC 9180) single-shot sealed message, suite X25519-HKDF-SHA256 / HKDF-SHA256 /
/// ChaCha20-Poly1305. What it is bound to (the `info` and `aad`) is fixed by the field that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct SealedBox {
    /// The encapsulated key (32 bytes for X25519).
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub enc: Vec<u8>,
    /// The AEAD ciphertext including its tag.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub ciphertext: Vec<u8>,
}

/// Who keeps the provider's half of the data key.
///
/// - `CoSign`: The provider keeps its half and seals it to each released responder itself; the platform alone can never read the target data.
/// - `Escrow`: The provider's half is also sealed to the timekeeper, which releases both halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
#[allow(
    missing_docs,
    reason = "the doc above names every variant: it is the Avro schema's doc"
)]
pub enum Custody {
    CoSign,
    Escrow,
}

/// The source document's goods-information credential: the target data encrypted under a fresh
/// data key, and that key split in two halves (XOR) that the responder needs both of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct SealedCredential {
    /// Who keeps the provider's half.
    pub custody: Custody,
    /// The compressed target data encrypted under the data key (AEAD, bound to the offer id).
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub package: Vec<u8>,
    /// The platform half of the data key, sealed to the timekeeper's public key.
    pub platform_half: SealedBox,
    /// Escrow mode only: the provider half, also sealed to the timekeeper.
    pub escrow_half: Option<SealedBox>,
}
