//! `tessera.subscribers`, keyed by subscriber id: the parties and their stored needs. Compacted, so
//! it is a table: the latest registration per subscriber wins.

use std::collections::BTreeMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::common::SealedBox;

/// A party registers (or replaces) its needs and the key that credentials are sealed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct SubscriberRegistered {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The subscriber; also the record key.
    pub subscriber_id: String,
    /// How to reach the subscriber (e.g. an e-mail address), in the clear; empty when
    /// `sealed_contact` carries it.
    pub contact: String,
    /// The subscriber's HPKE X25519 public key (32 bytes); credential halves are sealed to it.
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    pub public_key: Vec<u8>,
    /// The subscriber's Ed25519 verifying key (32 bytes): its records (registrations, responses,
    /// outcomes) are signed with it. The first registration of an id pins it; a later record of
    /// the id must be signed by the pinned key (`tessera_contract::identity`).
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub signing_key: Vec<u8>,
    /// What the subscriber needs: an offer matches if it satisfies any one interest.
    pub interests: Vec<Interest>,
    /// Optional endpoint that the delivery worker also posts released credentials to, signed
    /// (`https://` through rustls, or `http://`); private, loopback and link-local targets are
    /// refused unless the operator allows them. In the clear; absent when `sealed_contact`
    /// carries it.
    pub webhook: Option<String>,
    /// The operator's trust anchor's Ed25519 signature over the subscriber id and both keys
    /// (`tessera_contract::identity`), in installations that vouch for parties; absent elsewhere.
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    #[avro(with, default = "null")]
    pub endorsement: Option<Vec<u8>>,
    /// The contact and webhook sealed to the delivery worker's key
    /// (`tessera_contract::sealing::contacts`), so that only the platform reads them: the
    /// topic is readable by every provider. Absent in a registration that carries them in the
    /// clear.
    #[serde(default)]
    #[avro(default = "null")]
    pub sealed_contact: Option<SealedBox>,
}

/// One stored need. Every condition present must hold for an offer to match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct Interest {
    /// If set, the offer's identifier must equal it exactly.
    pub identifier: Option<String>,
    /// Words that must all appear in the offer's name (case-insensitive, whole words).
    pub terms: Vec<String>,
    /// Features the offer must carry with exactly these values.
    #[avro(with = crate::avro::string_map)]
    pub features: BTreeMap<String, String>,
    /// Numeric parameters the offer must carry within these bounds.
    pub ranges: Vec<ParameterRange>,
}

/// A bound on one numeric parameter, inclusive at both ends; a missing end is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct ParameterRange {
    /// The parameter's name, e.g. "price".
    pub name: String,
    /// Smallest acceptable value, inclusive.
    pub min: Option<i64>,
    /// Largest acceptable value, inclusive.
    pub max: Option<i64>,
}

/// A party leaves: it gets no further requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct SubscriberRemoved {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The subscriber; also the record key.
    pub subscriber_id: String,
}
