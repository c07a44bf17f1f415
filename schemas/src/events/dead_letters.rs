//! `tessera.dead-letters`, keyed by source topic: records a processor could not use, kept with
//! their provenance so nothing is silently dropped and an operator can inspect or replay them.
//!
//! A letter quotes the record, but never more than [`QUOTED_KEY`] and [`QUOTED_VALUE`] bytes of
//! it: a record of any size the broker accepted must still fit in a letter, or the processor
//! could not write it and would never get past the record. The digest of the whole record (the
//! one its signature covers) and its place identify it on its source topic.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// The most of a record's key a letter quotes.
pub const QUOTED_KEY: usize = 1024;
/// The most of a record's value a letter quotes.
pub const QUOTED_VALUE: usize = 64 * 1024;

/// A record that could not be processed, quoted, with where it came from and why.
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
    /// The record's key bytes, if any: the first [`QUOTED_KEY`] of them.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    #[avro(with)]
    pub key: Option<Vec<u8>>,
    /// The record's value bytes, if any: the first [`QUOTED_VALUE`] of them.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    #[avro(with)]
    pub value: Option<Vec<u8>>,
    /// Why it could not be processed, as a sentence.
    pub reason: String,
    /// SHA-256 of the whole record's key and value (`tessera_contract::links::record_digest`,
    /// what its signature covers), so a quote can be matched to the record it was cut from.
    #[serde(with = "apache_avro::serde::bytes", default)]
    #[avro(with, default = "\"\"")]
    pub record_digest: Vec<u8>,
    /// Whether `key` or `value` holds only the start of the record's.
    #[serde(default)]
    #[avro(default = "false")]
    pub truncated: bool,
    /// The task that wrote the letter: the partition number it reads of each input. A record
    /// gets one letter per processor, from the task of its own partition number, so this equals
    /// `source_partition`; it is `None` in letters of releases that did not name it.
    #[serde(default)]
    #[avro(default = "null")]
    pub task: Option<i32>,
}

/// What a letter quotes of a record: its key and value, cut to the bounds, the digest of the
/// whole, and whether anything was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The key's first [`QUOTED_KEY`] bytes.
    pub key: Option<Vec<u8>>,
    /// The value's first [`QUOTED_VALUE`] bytes.
    pub value: Option<Vec<u8>>,
    /// [`crate::links::record_digest`] of the whole record.
    pub record_digest: Vec<u8>,
    /// Whether the key or the value was cut.
    pub truncated: bool,
}

impl Quote {
    /// The quote of a record with `key` and `value`.
    pub fn of(key: Option<&[u8]>, value: Option<&[u8]>) -> Quote {
        let cut = |bytes: Option<&[u8]>, max: usize| bytes.map(|b| b[..b.len().min(max)].to_vec());
        Quote {
            key: cut(key, QUOTED_KEY),
            value: cut(value, QUOTED_VALUE),
            record_digest: crate::links::record_digest(key, value).to_vec(),
            truncated: key.is_some_and(|k| k.len() > QUOTED_KEY)
                || value.is_some_and(|v| v.len() > QUOTED_VALUE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_is_bounded_and_names_the_whole_record() {
        let small = Quote::of(Some(b"k"), Some(b"v"));
        assert_eq!(small.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(small.value.as_deref(), Some(&b"v"[..]));
        assert!(!small.truncated);
        let key = vec![1u8; QUOTED_KEY + 1];
        let value = vec![2u8; 1_048_000];
        let big = Quote::of(Some(&key), Some(&value));
        assert_eq!(big.key.as_ref().map(Vec::len), Some(QUOTED_KEY));
        assert_eq!(big.value.as_ref().map(Vec::len), Some(QUOTED_VALUE));
        assert!(big.truncated);
        assert_eq!(
            big.record_digest,
            crate::links::record_digest(Some(&key), Some(&value)).to_vec()
        );
        let mut other = value.clone();
        other[QUOTED_VALUE + 1] ^= 1;
        let differs = Quote::of(Some(&key), Some(&other));
        assert_eq!(differs.value, big.value, "the same prefix");
        assert_ne!(differs.record_digest, big.record_digest, "another record");
        assert_eq!(Quote::of(None, None).key, None);
    }
}
