//! `tessera.dead-letters`, keyed by source topic: records a processor could not use, kept with
//! their provenance so nothing is silently dropped and an operator can inspect or replay them.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// A record that could not be processed, byte for byte, with where it came from and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "tessera")]
pub struct DeadLetter {
    /// Unique id of this event, for deduplication.
    #[avro(with = crate::avro::uuid)]
    pub event_id: String,
    /// The processor that gave up on the record, e.g. "timekeeper".
    pub processor: String,
    /// Topic the record was read from; also the record key.
    pub source_topic: String,
    /// Partition the record was read from.
    pub source_partition: i32,
    /// Offset of the record in that partition.
    pub source_offset: i64,
    /// The record's timestamp as read, if any.
    #[avro(with = crate::avro::optional_timestamp_millis, default = "null")]
    pub source_timestamp: Option<i64>,
    /// The record's key bytes, if any.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    #[avro(with)]
    pub key: Option<Vec<u8>>,
    /// The record's value bytes, if any.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    #[avro(with)]
    pub value: Option<Vec<u8>>,
    /// Why it could not be processed, as a sentence.
    pub reason: String,
}
